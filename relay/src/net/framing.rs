//! SIP messages out of a byte stream (RFC 3261 §18.3): over TCP and TLS a
//! message ends where its Content-Length says, which every message on a
//! stream must carry. CRLFs between messages are keep-alive traffic (RFC
//! 5626 §3.5.1): a `CRLFCRLF` ping (to be answered), or a `CRLF` pong. Pure: bytes in, messages out, so that it is tested (and fuzzed)
//! without a socket.

/// What came off the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// One whole SIP message.
    Message(Vec<u8>),
    /// A keep-alive ping (four or more CR/LF bytes together): answer it.
    Ping,
    /// A keep-alive pong (fewer), or a ping's bytes that came apart.
    Pong,
}

/// Why a stream cannot go on: the connection is closed.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    /// A message (or its header) longer than the limit.
    #[error("message longer than {0} bytes")]
    TooLong(usize),
    /// A message without a usable Content-Length.
    #[error("message without a valid Content-Length")]
    NoLength,
}

/// Splits a stream into messages.
#[derive(Debug)]
pub struct Framer {
    buf: Vec<u8>,
    /// Where the search for the header's end resumes: bytes before it were
    /// already searched (no quadratic rescans of a slow sender's bytes).
    searched: usize,
    /// The length of the message being read, once its header is whole.
    total: Option<usize>,
    max: usize,
}

impl Framer {
    /// A framer that refuses messages longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self {
            buf: Vec::new(),
            searched: 0,
            total: None,
            max,
        }
    }

    /// Bytes read off the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole frame, if the bytes so far hold one.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FramingError> {
        let total = match self.total {
            Some(total) => total,
            None => {
                let crlfs = self
                    .buf
                    .iter()
                    .take_while(|&&b| b == b'\r' || b == b'\n')
                    .count();
                if crlfs > 0 {
                    self.buf.drain(..crlfs);
                    self.searched = 0;
                    return Ok(Some(if crlfs >= 4 { Frame::Ping } else { Frame::Pong }));
                }
                let from = self.searched.saturating_sub(3);
                let Some(end) = find(&self.buf[from..], b"\r\n\r\n").map(|i| from + i + 4) else {
                    if self.buf.len() > self.max {
                        return Err(FramingError::TooLong(self.max));
                    }
                    self.searched = self.buf.len();
                    return Ok(None);
                };
                // Too long whatever its length says, as it would be found
                // had its bytes come one by one.
                if end > self.max {
                    return Err(FramingError::TooLong(self.max));
                }
                let body = content_length(&self.buf[..end]).ok_or(FramingError::NoLength)?;
                let total = end.checked_add(body).ok_or(FramingError::NoLength)?;
                if total > self.max {
                    return Err(FramingError::TooLong(self.max));
                }
                self.total = Some(total);
                total
            }
        };
        if self.buf.len() < total {
            return Ok(None);
        }
        let rest = self.buf.split_off(total);
        let message = std::mem::replace(&mut self.buf, rest);
        self.searched = 0;
        self.total = None;
        Ok(Some(Frame::Message(message)))
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The Content-Length (or its compact form `l`) of a message's header;
/// none when it is missing, malformed, or given twice with two values.
fn content_length(head: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(head).ok()?;
    let mut found = None;
    // The start line first; folded lines (RFC 3261 §7.3.1) start with
    // white space and are no header of their own.
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim_end();
        if !(name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l")) {
            continue;
        }
        let value = value.trim();
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: usize = value.parse().ok()?;
        if found.is_some_and(|f| f != n) {
            return None;
        }
        found = Some(n);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] =
        b"OPTIONS sip:a SIP/2.0\r\nVia: SIP/2.0/TCP h\r\nContent-Length: 0\r\n\r\n";

    fn frames(f: &mut Framer) -> Vec<Frame> {
        std::iter::from_fn(|| f.next_frame().expect("well framed")).collect()
    }

    #[test]
    fn messages_are_cut_where_their_content_length_says() {
        let with_body = b"MESSAGE sip:a SIP/2.0\r\nl: 5\r\n\r\nhello";
        let mut f = Framer::new(65_536);
        let mut stream = Vec::new();
        stream.extend_from_slice(b"\r\n\r\n");
        stream.extend_from_slice(OPTIONS);
        stream.extend_from_slice(with_body);
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(OPTIONS);
        // One byte at a time: every split point.
        let mut got = Vec::new();
        for b in &stream {
            f.push(std::slice::from_ref(b));
            got.extend(frames(&mut f));
        }
        // Keep-alive bytes come as they arrive (here one by one: pongs).
        got.dedup();
        assert_eq!(
            got,
            vec![
                Frame::Pong,
                Frame::Message(OPTIONS.to_vec()),
                Frame::Message(with_body.to_vec()),
                Frame::Pong,
                Frame::Message(OPTIONS.to_vec()),
            ]
        );
        // All at once: the ping is one.
        let mut f = Framer::new(65_536);
        f.push(&stream);
        assert_eq!(
            frames(&mut f),
            vec![
                Frame::Ping,
                Frame::Message(OPTIONS.to_vec()),
                Frame::Message(with_body.to_vec()),
                Frame::Pong,
                Frame::Message(OPTIONS.to_vec()),
            ]
        );
    }

    #[test]
    fn a_message_without_a_length_or_too_long_ends_the_stream() {
        let mut f = Framer::new(65_536);
        f.push(b"OPTIONS sip:a SIP/2.0\r\nVia: x\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::NoLength));
        let mut f = Framer::new(65_536);
        f.push(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 5\r\nl: 6\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::NoLength), "two lengths");
        let mut f = Framer::new(65_536);
        f.push(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: -1\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::NoLength));
        let mut f = Framer::new(100);
        f.push(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 1000\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::TooLong(100)));
        let mut f = Framer::new(100);
        f.push(&[b'A'; 101]);
        assert_eq!(f.next_frame(), Err(FramingError::TooLong(100)), "no end");
        let mut f = Framer::new(100);
        f.push(b"OPTIONS sip:a SIP/2.0\r\nContent-Length: 99999999999999999999999\r\n\r\n");
        assert_eq!(f.next_frame(), Err(FramingError::NoLength), "overflow");
    }
}
