//! Building messages by appending text: no templates, no `format!`, so the
//! wasm build stays small and the output is exactly what is written.

use super::{HeaderName, Message, Method, push_decimal};
use crate::prelude::*;

/// Writes a SIP message line by line; `finish` adds Content-Length.
#[derive(Clone, Debug)]
pub struct MessageBuilder {
    buf: String,
}

impl MessageBuilder {
    /// Starts a request: `METHOD uri SIP/2.0`.
    pub fn request(method: Method, uri: &str) -> Self {
        Self::request_named(method.as_str(), uri)
    }

    /// Starts a request with any method, as a proxy forwards an extension
    /// method it does not know.
    pub fn request_named(method: &str, uri: &str) -> Self {
        let mut buf = String::with_capacity(512);
        buf.push_str(method);
        buf.push(' ');
        buf.push_str(uri);
        buf.push_str(" SIP/2.0\r\n");
        Self { buf }
    }

    /// Starts a response: `SIP/2.0 code reason`.
    pub fn response(code: u16, reason: &str) -> Self {
        let mut buf = String::with_capacity(512);
        buf.push_str("SIP/2.0 ");
        push_decimal(&mut buf, u64::from(code));
        buf.push(' ');
        // A reason phrase cannot hold line breaks: keep the message sound
        // whatever text the caller passes (it may come from an error).
        buf.extend(reason.chars().map(|c| if c.is_control() { ' ' } else { c }));
        buf.push_str("\r\n");
        Self { buf }
    }

    /// Appends `name: value`.
    pub fn header(&mut self, name: &str, value: &str) -> &mut Self {
        self.header_parts(name, &[value])
    }

    /// Appends `name: ` followed by the concatenation of `parts`, which saves
    /// the caller from building a temporary string.
    pub fn header_parts(&mut self, name: &str, parts: &[&str]) -> &mut Self {
        self.buf.push_str(name);
        self.buf.push_str(": ");
        for part in parts {
            self.buf.push_str(part);
        }
        self.buf.push_str("\r\n");
        self
    }

    /// Appends `name: n`.
    pub fn header_number(&mut self, name: &str, n: u64) -> &mut Self {
        self.buf.push_str(name);
        self.buf.push_str(": ");
        push_decimal(&mut self.buf, n);
        self.buf.push_str("\r\n");
        self
    }

    /// Ends the headers with Content-Type (when there is a body) and
    /// Content-Length, then appends the body.
    pub fn finish(mut self, content_type: Option<&str>, body: &[u8]) -> Vec<u8> {
        if let (Some(ct), false) = (content_type, body.is_empty()) {
            self.header("Content-Type", ct);
        }
        self.header_number("Content-Length", body.len() as u64);
        self.buf.push_str("\r\n");
        let mut out = self.buf.into_bytes();
        out.extend_from_slice(body);
        out
    }
}

/// Starts a response to `request` with the headers RFC 3261 §8.2.6.2 says to
/// copy: every Via, From, To (with `to_tag` added when To has none), Call-ID
/// and CSeq.
pub fn response_to(
    request: &Message<'_>,
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
) -> MessageBuilder {
    let mut b = MessageBuilder::response(code, reason);
    for via in request.header_lines(HeaderName::Via) {
        b.header("Via", via);
    }
    b.header("From", request.header(HeaderName::From).unwrap_or_default());
    let to = request.header(HeaderName::To).unwrap_or_default();
    match to_tag {
        Some(tag) if request.to().tag().is_none() => {
            b.header_parts("To", &[to, ";tag=", tag]);
        }
        _ => {
            b.header("To", to);
        }
    }
    b.header("Call-ID", request.call_id());
    b.header("CSeq", request.header(HeaderName::CSeq).unwrap_or_default());
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_what_the_parser_reads() {
        let mut b = MessageBuilder::request(Method::Message, "sip:bob@b.example");
        b.header("Via", "SIP/2.0/WSS h.invalid;branch=z9hG4bK1")
            .header("From", "<sip:a@a.example>;tag=x")
            .header("To", "<sip:bob@b.example>")
            .header("Call-ID", "c1")
            .header_parts("CSeq", &["1", " ", "MESSAGE"])
            .header_number("Max-Forwards", 70);
        let bytes = b.finish(Some("text/plain"), b"hi");
        let m = Message::parse(&bytes).expect("round trip");
        assert_eq!(m.method(), Some(Method::Message));
        assert_eq!(m.body(), b"hi");
        assert_eq!(m.header(HeaderName::ContentType), Some("text/plain"));
        assert_eq!(m.header(HeaderName::ContentLength), Some("2"));

        let mut r = response_to(&m, 200, "OK\r\nInjected: yes", Some("tt"));
        r.header("Server", "x");
        let resp = r.finish(None, b"");
        let parsed = Message::parse(&resp).expect("response round trip");
        assert_eq!(parsed.status(), Some(200));
        assert_eq!(parsed.to().tag(), Some("tt"));
        assert_eq!(parsed.cseq(), m.cseq());
        assert!(parsed.header(HeaderName::Other("Injected")).is_none());
    }
}
