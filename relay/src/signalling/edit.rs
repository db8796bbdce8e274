//! Rewriting a parsed message into a new one: the same message, with some
//! headers dropped, replaced or added. Header values are copied as slices;
//! only what changes is new.

use sipline_core::sip::{
    CSeq, Header, HeaderName, Message, MessageBuilder, NameAddr, StartLine, Via, split_commas,
};

/// What to do with one header line.
pub(crate) enum Action {
    /// Copy it.
    Keep,
    /// Leave it out.
    Drop,
    /// Write this value instead.
    Replace(String),
}

/// Writes `msg` anew: `uri` replaces the Request-URI when given, `top` lines
/// go first, then every header through `edit`, then the body with a fresh
/// Content-Length.
pub(crate) fn rewrite(
    msg: &Message<'_>,
    uri: Option<&str>,
    top: &[(&str, &str)],
    edit: impl FnMut(&Header<'_>) -> Action,
) -> Vec<u8> {
    rewrite_body(msg, uri, top, edit, msg.body())
}

/// [`rewrite`] with another body (a rewritten SDP).
pub(crate) fn rewrite_body(
    msg: &Message<'_>,
    uri: Option<&str>,
    top: &[(&str, &str)],
    mut edit: impl FnMut(&Header<'_>) -> Action,
    body: &[u8],
) -> Vec<u8> {
    let mut b = match msg.start_line() {
        StartLine::Request { method, uri: old } => {
            MessageBuilder::request(method, uri.unwrap_or(old))
        }
        StartLine::Response { code, reason } => MessageBuilder::response(code, reason),
    };
    for (name, value) in top {
        b.header(name, value);
    }
    for h in msg.headers() {
        if h.name == HeaderName::ContentLength {
            continue; // recomputed by finish()
        }
        if h.name == HeaderName::ContentType && body.is_empty() {
            continue; // a body left out takes its type along
        }
        match edit(h) {
            Action::Keep => b.header(h.name.as_str(), h.value),
            Action::Drop => &mut b,
            Action::Replace(v) => b.header(h.name.as_str(), &v),
        };
    }
    b.finish(None, body)
}

/// The values of a list header line after dropping its first `n`, joined
/// again; `None` when nothing is left (drop the line).
pub(crate) fn without_first(value: &str, n: usize) -> Option<String> {
    let rest: Vec<&str> = split_commas(value).skip(n).collect();
    (!rest.is_empty()).then(|| rest.join(", "))
}

/// Whether `s` is an RFC 3261 token (a method name).
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c))
}

/// The lines of a fallback `400` for a request too broken to parse: the
/// headers a response must echo, copied from the raw text where they can be
/// found. Over a WebSocket the connection itself routes the answer, so even
/// a response without a usable Via reaches the sender.
pub(crate) fn bad_request(raw: &[u8], reason: &str) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(raw.get(..raw.len().min(16 * 1024))?);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let first = lines.next()?;
    // Answer only what reads as a request line: never a response, never
    // binary noise.
    let mut parts = first.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(_), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    if !is_token(method)
        || !version
            .get(..4)
            .is_some_and(|v| v.eq_ignore_ascii_case("SIP/"))
    {
        return None;
    }
    let mut b = MessageBuilder::response(400, reason);
    let mut cseq_written = false;
    let mut via_written = false;
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        // Echo only what parses, so that the sender can read the answer.
        let sound = match HeaderName::parse(name.trim()) {
            HeaderName::Via => {
                via_written |= Via::parse(value).is_some();
                Via::parse(value).is_some()
            }
            HeaderName::From | HeaderName::To => NameAddr::parse(value).is_some(),
            HeaderName::CallId => !value.is_empty() && !value.contains(char::is_whitespace),
            HeaderName::CSeq => {
                cseq_written |= CSeq::parse(value).is_some();
                CSeq::parse(value).is_some()
            }
            _ => false,
        };
        if sound {
            b.header(HeaderName::parse(name.trim()).as_str(), value);
        }
    }
    if !via_written {
        // Nothing to match an answer to (RFC 3261 §8.2.6.2 copies the
        // Via first): noise that only looks like a request line.
        return None;
    }
    if !cseq_written && is_token(method) {
        // The CSeq was the broken part: a zero CSeq with the request's
        // method still lets the sender see which request failed.
        b.header_parts("CSeq", &["0 ", method]);
    }
    Some(b.finish(None, b""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_values_are_popped() {
        assert_eq!(
            without_first("<sip:a;lr>, <sip:b;lr>", 1).as_deref(),
            Some("<sip:b;lr>")
        );
        assert_eq!(without_first("<sip:a;lr>", 1), None);
    }

    #[test]
    fn fallback_400_echoes_what_it_can() {
        let raw = b"INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/WSS h.invalid;branch=z9hG4bK1\r\nCSeq: bogus\r\nCall-ID: c\r\n\r\n";
        let resp = bad_request(raw, "Malformed CSeq").expect("a 400");
        let text = String::from_utf8(resp).expect("utf8");
        assert!(text.starts_with("SIP/2.0 400 Malformed CSeq\r\n"));
        assert!(text.contains("Via: SIP/2.0/WSS h.invalid;branch=z9hG4bK1\r\n"));
        assert!(text.contains("Call-ID: c\r\n"));
        assert!(text.contains("CSeq: 0 INVITE\r\n"), "{text}");
        assert_eq!(bad_request(b"SIP/2.0 200 OK\r\n\r\n", "x"), None);
        assert_eq!(
            bad_request(b"GET / SIP/2.0\r\nX: y\r\nCSeq: 1 GET\r\n\r\n", "x"),
            None,
            "no Via: nothing to answer"
        );
        assert_eq!(bad_request(b"", "x"), None);
    }
}
