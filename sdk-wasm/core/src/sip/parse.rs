//! The zero-copy parser: a [`Message`] borrows every slice from the input.

use super::values::{CSeq, NameAddr, Via, is_lws, trim_lws};
use super::{HeaderName, Method, find_byte, is_token, split_at_byte, str_from, str_to};
use crate::prelude::*;

/// Bounds on what the parser accepts, so that a hostile peer cannot make it
/// do unbounded work or keep unbounded state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most header lines (folded continuations count with their header).
    pub max_headers: usize,
    /// Longest header, in bytes, continuations included.
    pub max_header_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_headers: 128,
            max_header_len: 16 * 1024,
        }
    }
}

/// Why a message was refused. The `Display` text is written to be the reason
/// phrase of a `400 Bad Request` (RFC 3261 §21.4.1 suggests saying which
/// header is wrong).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but whitespace.
    #[error("Empty message")]
    Empty,
    /// The header section never ends with an empty line.
    #[error("Truncated message: no end of headers")]
    Truncated,
    /// The start line or a header is not UTF-8.
    #[error("Headers are not valid UTF-8")]
    NotUtf8,
    /// The first line is neither a request line nor a status line.
    #[error("Malformed start line")]
    BadStartLine,
    /// The method is not a token.
    #[error("Malformed method")]
    BadMethod,
    /// The Request-URI is empty or holds characters a URI cannot.
    #[error("Malformed Request-URI")]
    BadRequestUri,
    /// A SIP version other than 2.0.
    #[error("Unsupported SIP version")]
    BadVersion,
    /// A status code that is not three digits from 100 to 699.
    #[error("Malformed status code")]
    BadStatusCode,
    /// A header line with no colon.
    #[error("Header line without a colon")]
    MissingColon,
    /// A carriage return inside a line: some stacks end lines there, so a
    /// proxy must not pass it on (header smuggling).
    #[error("Bare CR in a header line")]
    BareCr,
    /// A control character (other than tab) inside a line: no SIP text
    /// carries one (RFC 3261 §25.1), and stacks disagree on what it means.
    #[error("Control character in a header line")]
    ControlChar,
    /// A header name that is not a token.
    #[error("Malformed header name")]
    BadHeaderName,
    /// A header longer than [`Limits::max_header_len`].
    #[error("Header too long")]
    HeaderTooLong,
    /// More headers than [`Limits::max_headers`].
    #[error("Too many headers")]
    TooManyHeaders,
    /// A header every request and response must carry is absent.
    #[error("Missing {0} header")]
    MissingHeader(&'static str),
    /// A header that may appear once appears more often.
    #[error("Duplicate {0} header")]
    DuplicateHeader(&'static str),
    /// Content-Length is not a number, or is too large.
    #[error("Malformed Content-Length")]
    BadContentLength,
    /// Fewer body bytes than Content-Length says.
    #[error("Body shorter than Content-Length")]
    BodyTruncated,
    /// CSeq is not "number method".
    #[error("Malformed CSeq")]
    BadCSeq,
    /// The CSeq method differs from the request method.
    #[error("CSeq method does not match the request method")]
    CSeqMismatch,
    /// A header the stack relies on could not be parsed.
    #[error("Malformed {0} header")]
    BadHeader(&'static str),
}

/// The first line of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLine<'a> {
    /// `METHOD Request-URI SIP/2.0`.
    Request {
        /// The method, case preserved (methods are case-sensitive).
        method: &'a str,
        /// The Request-URI as received.
        uri: &'a str,
    },
    /// `SIP/2.0 code reason`.
    Response {
        /// The status code, 100..=699.
        code: u16,
        /// The reason phrase, possibly empty.
        reason: &'a str,
    },
}

/// One header line: a resolved name and its raw value.
///
/// The value is trimmed but otherwise untouched: a folded header keeps its
/// CRLF + whitespace, which every value parser here treats as whitespace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// The header's name.
    pub name: HeaderName<'a>,
    /// The header's value as received, without surrounding whitespace.
    pub value: &'a str,
}

/// A parsed SIP message that borrows from the bytes it was parsed from.
///
/// Construction validates the start line, header syntax, Content-Length,
/// and the headers that identify a transaction and a dialog (Via, From,
/// To, Call-ID, CSeq), so that code holding a `Message` may rely on them.
#[derive(Clone, Debug)]
pub struct Message<'a> {
    start: StartLine<'a>,
    headers: Vec<Header<'a>>,
    body: &'a [u8],
    call_id: &'a str,
    cseq: CSeq<'a>,
    from: NameAddr<'a>,
    to: NameAddr<'a>,
    via: Via<'a>,
}

impl<'a> Message<'a> {
    /// Parses one message (one WebSocket frame or one UDP datagram) with the
    /// default [`Limits`].
    pub fn parse(input: &'a [u8]) -> Result<Self, ParseError> {
        Self::parse_with(input, &Limits::default())
    }

    /// Parses one message with explicit limits.
    pub fn parse_with(input: &'a [u8], limits: &Limits) -> Result<Self, ParseError> {
        // RFC 3261 §7.5: ignore CRLFs before the start line.
        let start = input
            .iter()
            .position(|&b| b != b'\r' && b != b'\n')
            .ok_or(ParseError::Empty)?;
        let input = &input[start..];
        let mut lines = Lines { input, pos: 0 };
        let first = lines.next_line()?;
        let start = parse_start_line(utf8(first)?)?;

        let mut headers = Vec::with_capacity(16);
        let mut singles = Singles::default();
        let rest = loop {
            let line_start = lines.pos;
            let mut line = lines.next_line()?;
            if line.is_empty() {
                break &input[lines.pos..];
            }
            // Swallow folded continuation lines into this header.
            while matches!(input.get(lines.pos), Some(b' ' | b'\t')) {
                let cont = lines.next_line()?;
                let end = cont.as_ptr() as usize - input.as_ptr() as usize + cont.len();
                line = &input[line_start..end];
            }
            if line.len() > limits.max_header_len {
                return Err(ParseError::HeaderTooLong);
            }
            if headers.len() == limits.max_headers {
                return Err(ParseError::TooManyHeaders);
            }
            let line = utf8(line)?;
            let colon = find_byte(line, b':').ok_or(ParseError::MissingColon)?;
            let name = str_to(line, colon).trim_end_matches([' ', '\t']);
            if !is_token(name) {
                return Err(ParseError::BadHeaderName);
            }
            let header = Header {
                name: HeaderName::parse(name),
                value: trim_lws(str_from(line, colon + 1)),
            };
            singles.note(&header)?;
            headers.push(header);
        };

        let body = match singles.content_length {
            Some(value) => {
                let len = parse_content_length(value)?;
                // On a message transport, bytes past Content-Length are
                // discarded (RFC 3261 §18.3); fewer bytes are an error.
                rest.get(..len).ok_or(ParseError::BodyTruncated)?
            }
            None => rest,
        };

        let call_id = singles
            .call_id
            .filter(|v| !v.is_empty() && !v.contains(is_lws))
            .ok_or(ParseError::MissingHeader("Call-ID"))?;
        let cseq = CSeq::parse(singles.cseq.ok_or(ParseError::MissingHeader("CSeq"))?)
            .ok_or(ParseError::BadCSeq)?;
        if let StartLine::Request { method, .. } = start
            && cseq.method != method
        {
            return Err(ParseError::CSeqMismatch);
        }
        let from = singles
            .from
            .ok_or(ParseError::MissingHeader("From"))
            .and_then(|v| NameAddr::parse(v).ok_or(ParseError::BadHeader("From")))?;
        let to = singles
            .to
            .ok_or(ParseError::MissingHeader("To"))
            .and_then(|v| NameAddr::parse(v).ok_or(ParseError::BadHeader("To")))?;
        let via = singles
            .via
            .ok_or(ParseError::MissingHeader("Via"))
            .and_then(|v| {
                super::split_commas(v)
                    .next()
                    .and_then(Via::parse)
                    .ok_or(ParseError::BadHeader("Via"))
            })?;
        // 1*DIGIT (leading zeros allowed, RFC 4475 §3.1.1.1), at most 255.
        if let Some(mf) = singles.max_forwards
            && parse_delta_seconds(mf).is_none_or(|hops| hops > 255)
        {
            return Err(ParseError::BadHeader("Max-Forwards"));
        }
        if let Some(exp) = singles.expires
            && parse_delta_seconds(exp).is_none()
        {
            return Err(ParseError::BadHeader("Expires"));
        }

        Ok(Message {
            start,
            headers,
            body,
            call_id,
            cseq,
            from,
            to,
            via,
        })
    }

    /// The request or status line.
    pub fn start_line(&self) -> StartLine<'a> {
        self.start
    }

    /// The method of a request if it is one of the [`Method`]s; `None`
    /// for a response or an extension method (see [`Message::method_name`]).
    pub fn method(&self) -> Option<Method> {
        self.method_name().and_then(Method::from_name)
    }

    /// The method's name as written, any method; `None` for a response.
    pub fn method_name(&self) -> Option<&'a str> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI of a request, `None` for a response.
    pub fn request_uri(&self) -> Option<&'a str> {
        match self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The status code of a response, `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response (empty for a request).
    pub fn reason(&self) -> &'a str {
        match self.start {
            StartLine::Response { reason, .. } => reason,
            StartLine::Request { .. } => "",
        }
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// Every header line, in order.
    pub fn headers(&self) -> &[Header<'a>] {
        &self.headers
    }

    /// The value of the first header line called `name`.
    pub fn header(&self, name: HeaderName<'_>) -> Option<&'a str> {
        self.header_lines(name).next()
    }

    /// The values of every header line called `name`, in order.
    pub fn header_lines<'s>(&'s self, name: HeaderName<'s>) -> impl Iterator<Item = &'a str> + 's {
        self.headers
            .iter()
            .filter(move |h| h.name.matches(&name))
            .map(|h| h.value)
    }

    /// Every value of a list header (Via, Contact, Route…): all lines, each
    /// split at the commas that are not inside quotes or angle brackets.
    pub fn header_values<'s>(&'s self, name: HeaderName<'s>) -> impl Iterator<Item = &'a str> + 's {
        self.header_lines(name).flat_map(super::split_commas)
    }

    /// Whether a list header (Supported, Require, Recv-Info…) names
    /// `token`, in any case: an option tag, an INFO package.
    pub fn lists(&self, name: HeaderName<'_>, token: &str) -> bool {
        self.header_lines(name)
            .flat_map(super::split_commas)
            .any(|v| v.eq_ignore_ascii_case(token))
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &'a str {
        self.call_id
    }

    /// The parsed CSeq.
    pub fn cseq(&self) -> CSeq<'a> {
        self.cseq
    }

    /// The parsed From.
    pub fn from(&self) -> &NameAddr<'a> {
        &self.from
    }

    /// The parsed To.
    pub fn to(&self) -> &NameAddr<'a> {
        &self.to
    }

    /// The topmost Via: the one that names the transaction.
    pub fn via(&self) -> &Via<'a> {
        &self.via
    }

    /// The `Expires` header as seconds, if present.
    pub fn expires(&self) -> Option<u32> {
        self.header(HeaderName::Expires)
            .and_then(parse_delta_seconds)
    }

    /// The body (exactly Content-Length bytes when that header is present).
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
}

/// `delta-seconds` (RFC 3261 §25.1), saturating at `u32::MAX` as the RFC
/// asks for overlarge values.
pub(crate) fn parse_delta_seconds(s: &str) -> Option<u32> {
    let s = trim_lws(s);
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u32>().unwrap_or(u32::MAX))
}

/// Content-Length with a sanity bound: no SIP message is anywhere near 16 MB,
/// and RFC 4475's huge values must not be taken at face value.
fn parse_content_length(s: &str) -> Result<usize, ParseError> {
    if s.is_empty() || s.len() > 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParseError::BadContentLength);
    }
    s.parse().map_err(|_| ParseError::BadContentLength)
}

/// The headers the parser validates, found in the same pass that splits the
/// header lines (so validation costs no second scan).
#[derive(Default)]
struct Singles<'a> {
    content_length: Option<&'a str>,
    call_id: Option<&'a str>,
    cseq: Option<&'a str>,
    from: Option<&'a str>,
    to: Option<&'a str>,
    max_forwards: Option<&'a str>,
    expires: Option<&'a str>,
    /// The first Via line (the top Via is its first value).
    via: Option<&'a str>,
}

impl<'a> Singles<'a> {
    fn note(&mut self, h: &Header<'a>) -> Result<(), ParseError> {
        let (slot, label) = match h.name {
            HeaderName::ContentLength => (&mut self.content_length, "Content-Length"),
            HeaderName::CallId => (&mut self.call_id, "Call-ID"),
            HeaderName::CSeq => (&mut self.cseq, "CSeq"),
            HeaderName::From => (&mut self.from, "From"),
            HeaderName::To => (&mut self.to, "To"),
            HeaderName::MaxForwards => (&mut self.max_forwards, "Max-Forwards"),
            HeaderName::Expires => (&mut self.expires, "Expires"),
            HeaderName::Via => {
                self.via.get_or_insert(h.value);
                return Ok(());
            }
            _ => return Ok(()),
        };
        if slot.replace(h.value).is_some() {
            return Err(ParseError::DuplicateHeader(label));
        }
        Ok(())
    }
}

/// The header section, line by line, straight from the input bytes.
struct Lines<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Lines<'a> {
    /// The next line without its ending (CRLF, or leniently a bare LF).
    /// Running out of input before the empty line that ends the headers
    /// means the message was cut short.
    fn next_line(&mut self) -> Result<&'a [u8], ParseError> {
        let rest = &self.input[self.pos..];
        let nl = find_newline(rest).ok_or(ParseError::Truncated)?;
        self.pos += nl + 1;
        let line = &rest[..nl];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        // A control character may only be escaped in a quoted-pair
        // (RFC 3261 §25.1: `\` then anything but CR and LF, as RFC 4475's
        // torture tests do); anywhere else, it is refused.
        let mut bytes = line.iter();
        while let Some(&b) = bytes.next() {
            if b == b'\\' {
                if let Some(b'\r' | b'\n') = bytes.next() {
                    return Err(ParseError::BareCr);
                }
            } else if b == b'\r' {
                return Err(ParseError::BareCr);
            } else if is_control(b) {
                return Err(ParseError::ControlChar);
            }
        }
        Ok(line)
    }
}

/// A control character that no line of SIP or SDP text may hold: every C0
/// byte but horizontal tab, and DEL. CR and LF only end lines.
pub(crate) fn is_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

fn utf8(bytes: &[u8]) -> Result<&str, ParseError> {
    core::str::from_utf8(bytes).map_err(|_| ParseError::NotUtf8)
}

/// Index of the first `\n`, eight bytes at a time: line splitting is most of
/// what a parser does, and a byte loop costs about a nanosecond a byte.
fn find_newline(b: &[u8]) -> Option<usize> {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    const NL: u64 = LO * b'\n' as u64;
    let (words, rest) = b.as_chunks::<8>();
    let mut offset = 0;
    for word in words {
        let x = u64::from_le_bytes(*word) ^ NL;
        // The lowest flagged byte is always a real zero byte of `x`.
        let zero = x.wrapping_sub(LO) & !x & HI;
        if zero != 0 {
            return Some(offset + (zero.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    rest.iter().position(|&c| c == b'\n').map(|i| offset + i)
}

fn parse_start_line(line: &str) -> Result<StartLine<'_>, ParseError> {
    if let Some(rest) = strip_version(line) {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase
        let rest = rest.strip_prefix(' ').ok_or(ParseError::BadStartLine)?;
        let (code, reason) = split_at_byte(rest, b' ').ok_or(ParseError::BadStatusCode)?;
        if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::BadStatusCode);
        }
        let code: u16 = code.parse().map_err(|_| ParseError::BadStatusCode)?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::BadStatusCode);
        }
        if reason.bytes().any(|b| b < 0x20 && b != b'\t') {
            return Err(ParseError::BadStartLine);
        }
        return Ok(StartLine::Response { code, reason });
    }
    if line.starts_with("SIP/") || line.starts_with("sip/") {
        return Err(ParseError::BadVersion);
    }
    // Request-Line = Method SP Request-URI SP SIP-Version: single spaces.
    let mut parts = line.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::BadStartLine);
    };
    if !is_token(method) {
        return Err(ParseError::BadMethod);
    }
    match strip_version(version) {
        Some("") => {}
        Some(_) => return Err(ParseError::BadStartLine),
        None if version
            .get(..4)
            .is_some_and(|v| v.eq_ignore_ascii_case("SIP/")) =>
        {
            return Err(ParseError::BadVersion);
        }
        None => return Err(ParseError::BadStartLine),
    }
    let scheme_ok = find_byte(uri, b':').is_some_and(|i| {
        i > 0
            && uri.as_bytes()[0].is_ascii_alphabetic()
            && str_to(uri, i)
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    });
    if !scheme_ok
        || uri
            .bytes()
            .any(|b| b <= 0x20 || b == b'<' || b == b'>' || b == 0x7f)
    {
        return Err(ParseError::BadRequestUri);
    }
    Ok(StartLine::Request { method, uri })
}

/// `Some(rest)` if `s` starts with `SIP/2.0` (case-insensitive, as ABNF
/// literals are).
fn strip_version(s: &str) -> Option<&str> {
    let v = s.get(..7)?;
    v.eq_ignore_ascii_case("SIP/2.0").then(|| str_from(s, 7))
}

#[cfg(test)]
mod tests {
    use super::*;

    const REGISTER: &str = "REGISTER sip:sipline.test SIP/2.0\r\n\
Via: SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKasudf\r\n\
Max-Forwards: 70\r\n\
To: <sip:alice@sipline.test>\r\n\
From: \"Alice\" <sip:alice@sipline.test>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 1 REGISTER\r\n\
Contact: <sip:x@df7jal23ls0d.invalid;transport=ws;ob>;reg-id=1\r\n\
Expires: 600\r\n\
Content-Length: 0\r\n\r\n";

    fn parse(s: &str) -> Result<Message<'_>, ParseError> {
        Message::parse(s.as_bytes())
    }

    #[test]
    fn parses_a_register() {
        let m = parse(REGISTER).expect("valid REGISTER");
        assert_eq!(m.method(), Some(Method::Register));
        assert_eq!(m.request_uri(), Some("sip:sipline.test"));
        assert_eq!(m.call_id(), "a84b4c76e66710");
        assert_eq!(m.cseq().seq, 1);
        assert_eq!(m.from().tag(), Some("1928301774"));
        assert_eq!(m.to().tag(), None);
        assert_eq!(m.via().branch(), Some("z9hG4bKasudf"));
        assert_eq!(m.via().transport, "WSS");
        assert_eq!(m.expires(), Some(600));
        assert_eq!(m.body(), b"");
        assert_eq!(m.header_values(HeaderName::Contact).count(), 1);
    }

    #[test]
    fn response_with_body_and_compact_headers() {
        let msg = "SIP/2.0 200 OK\r\nv: SIP/2.0/UDP a.example;branch=z9hG4bK1, SIP/2.0/UDP b.example;branch=z9hG4bK2\r\n\
f: <sip:a@x>;tag=1\r\nt: <sip:b@x>;tag=2\r\ni: abc\r\nCSeq: 7 INVITE\r\nc: text/plain\r\nl: 5\r\n\r\nhelloEXTRA";
        let m = parse(msg).expect("valid response");
        assert_eq!(m.status(), Some(200));
        assert_eq!(m.reason(), "OK");
        assert_eq!(m.body(), b"hello");
        assert_eq!(m.via().host, "a.example");
        assert_eq!(m.header_values(HeaderName::Via).count(), 2);
        assert_eq!(m.header(HeaderName::ContentType), Some("text/plain"));
    }

    #[test]
    fn folded_header_and_leading_crlf() {
        let msg = "\r\n\r\nOPTIONS sip:x@y SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKa\r\nSubject: one\r\n two\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\n\r\n";
        let m = parse(msg).expect("valid OPTIONS");
        assert_eq!(m.header(HeaderName::Subject), Some("one\r\n two"));
    }

    #[test]
    fn rejections_name_the_problem() {
        let cases: &[(&str, ParseError)] = &[
            ("", ParseError::Empty),
            ("\r\n\r\n", ParseError::Empty),
            ("REGISTER sip:x SIP/2.0", ParseError::Truncated),
            (
                "REGISTER sip:x SIP/2.0\r\nVia: x\r\n",
                ParseError::Truncated,
            ),
            ("REGISTER  sip:x SIP/2.0\r\n\r\n", ParseError::BadStartLine),
            ("REGISTER sip:x SIP/7.0\r\n\r\n", ParseError::BadVersion),
            ("SIP/7.0 200 OK\r\n\r\n", ParseError::BadVersion),
            ("SIP/2.0 2000 OK\r\n\r\n", ParseError::BadStatusCode),
            ("SIP/2.0 20 OK\r\n\r\n", ParseError::BadStatusCode),
            ("SIP/2.0 200\r\n\r\n", ParseError::BadStatusCode),
            ("REG@STER sip:x SIP/2.0\r\n\r\n", ParseError::BadMethod),
            (
                "REGISTER <sip:x> SIP/2.0\r\n\r\n",
                ParseError::BadRequestUri,
            ),
            (
                "REGISTER sip:x SIP/2.0\r\nNoColon\r\n\r\n",
                ParseError::MissingColon,
            ),
            (
                "REGISTER sip:x SIP/2.0\r\nBad Name: x\r\n\r\n",
                ParseError::BadHeaderName,
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).err().as_ref(), Some(want), "input {input:?}");
        }
    }

    #[test]
    fn rejects_bad_cseq_and_missing_headers() {
        let bad_cseq = REGISTER.replace("CSeq: 1 REGISTER", "CSeq: abc REGISTER");
        assert_eq!(parse(&bad_cseq).err(), Some(ParseError::BadCSeq));
        let no_method = REGISTER.replace("CSeq: 1 REGISTER", "CSeq: 1");
        assert_eq!(parse(&no_method).err(), Some(ParseError::BadCSeq));
        let mismatch = REGISTER.replace("CSeq: 1 REGISTER", "CSeq: 1 INVITE");
        assert_eq!(parse(&mismatch).err(), Some(ParseError::CSeqMismatch));
        let no_call_id = REGISTER.replace("Call-ID: a84b4c76e66710\r\n", "");
        assert_eq!(
            parse(&no_call_id).err(),
            Some(ParseError::MissingHeader("Call-ID"))
        );
        let two_to = REGISTER.replace("To:", "To: <sip:b@c>\r\nTo:");
        assert_eq!(
            parse(&two_to).err(),
            Some(ParseError::DuplicateHeader("To"))
        );
        let bad_len = REGISTER.replace("Content-Length: 0", "Content-Length: 10");
        assert_eq!(parse(&bad_len).err(), Some(ParseError::BodyTruncated));
        let neg_len = REGISTER.replace("Content-Length: 0", "Content-Length: -1");
        assert_eq!(parse(&neg_len).err(), Some(ParseError::BadContentLength));
        let bad_mf = REGISTER.replace("Max-Forwards: 70", "Max-Forwards: seventy");
        assert_eq!(
            parse(&bad_mf).err(),
            Some(ParseError::BadHeader("Max-Forwards"))
        );
        let big_mf = REGISTER.replace("Max-Forwards: 70", "Max-Forwards: 300");
        assert_eq!(
            parse(&big_mf).err(),
            Some(ParseError::BadHeader("Max-Forwards"))
        );
        let zeros = REGISTER.replace("Max-Forwards: 70", "Max-Forwards: 0068");
        assert!(parse(&zeros).is_ok());
    }

    #[test]
    fn limits_are_enforced() {
        let huge = REGISTER.replace("Expires: 600", &format!("X-Big: {}", "a".repeat(100_000)));
        assert_eq!(parse(&huge).err(), Some(ParseError::HeaderTooLong));
        let many: String = (0..200).map(|i| format!("X-{i}: v\r\n")).collect();
        let too_many = REGISTER.replace("Expires: 600\r\n", &many);
        assert_eq!(parse(&too_many).err(), Some(ParseError::TooManyHeaders));
    }

    #[test]
    fn newline_search_matches_a_byte_scan() {
        let text = b"0123456789abcdef\n\x8a\x0a\xff\n";
        for start in 0..text.len() {
            for end in start..=text.len() {
                let s = &text[start..end];
                assert_eq!(
                    find_newline(s),
                    s.iter().position(|&c| c == b'\n'),
                    "{start}..{end}"
                );
            }
        }
    }

    #[test]
    fn multibyte_text_where_ascii_is_expected_is_an_error_not_a_panic() {
        // Byte 4 of the version falls inside 'é': slicing there would panic.
        assert_eq!(
            parse("A sip:x abc\u{e9}\r\n\r\n").err(),
            Some(ParseError::BadStartLine)
        );
        assert_eq!(
            parse("A sip:x SI\u{e9}\r\n\r\n").err(),
            Some(ParseError::BadStartLine)
        );
        assert!(parse("\u{e9}\u{e9} sip:x SIP/2.0\r\n\r\n").is_err());
        assert!(parse("SIP/2.0 2\u{e9} OK\r\n\r\n").is_err());
    }

    #[test]
    fn a_bare_cr_cannot_smuggle_a_header() {
        let smuggled = REGISTER.replace("Expires: 600", "Subject: x\rContact: <sip:a@203.0.113.9>");
        assert_eq!(parse(&smuggled).err(), Some(ParseError::BareCr));
        let in_start = REGISTER.replace("REGISTER sip:sipline.test", "REGISTER sip:sipline.test\r");
        assert!(parse(&in_start).is_err());
    }

    #[test]
    fn control_characters_in_a_line_are_refused_tabs_are_not() {
        for c in ['\0', '\x01', '\x0b', '\x0c', '\x1b', '\x7f'] {
            let bad = REGISTER.replace("Expires: 600", &format!("Subject: a{c}b"));
            assert_eq!(parse(&bad).err(), Some(ParseError::ControlChar), "{c:?}");
        }
        let tab = REGISTER.replace("Expires: 600", "Expires:\t600");
        assert!(parse(&tab).is_ok());
        // Escaped in a quoted-pair (RFC 4475 §3.1.1.3), all but CR and LF.
        let pair = REGISTER.replace("Expires: 600", "Subject: \"a\\\x07\\\0\"");
        assert!(parse(&pair).is_ok(), "{pair:?}");
        let escaped_cr = REGISTER.replace("Expires: 600", "Subject: \"a\\\rContact: <sip:x>\"");
        assert_eq!(parse(&escaped_cr).err(), Some(ParseError::BareCr));
    }

    #[test]
    fn a_to_a_response_could_not_tag_is_refused() {
        // Found by fuzzing (fuzz/corpus/sip_parse): a tag with no value, and
        // an unquoted `<` as a parameter value, which swallowed the tag a
        // response appends.
        for to in [
            "To: <sip:bob@sipline.test>;tag",
            "To: <sip:bob@sipline.test>;x=<",
        ] {
            let bad = REGISTER.replace("To: <sip:alice@sipline.test>", to);
            assert_eq!(parse(&bad).err(), Some(ParseError::BadHeader("To")), "{to}");
        }
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(Message::parse(&[0xff, 0xfe, 0x00, 0x13, b'\n', b'\n']).is_err());
        assert!(Message::parse(b"\x00\x01\x02").is_err());
    }

    #[test]
    fn error_texts_read_as_reason_phrases() {
        assert_eq!(
            ParseError::MissingHeader("Call-ID").to_string(),
            "Missing Call-ID header"
        );
        assert_eq!(
            ParseError::BadHeader("Via").to_string(),
            "Malformed Via header"
        );
    }
}
