//! Header names, with the compact forms of RFC 3261 §7.3.3 and others.

/// A header name, resolved once at parse time so that lookups are a compare
/// of small enums instead of case-insensitive string matching.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderName<'a> {
    /// `Via` / `v`.
    Via,
    /// `From` / `f`.
    From,
    /// `To` / `t`.
    To,
    /// `Call-ID` / `i`.
    CallId,
    /// `CSeq`.
    CSeq,
    /// `Contact` / `m`.
    Contact,
    /// `Max-Forwards`.
    MaxForwards,
    /// `Expires`.
    Expires,
    /// `Min-Expires` (RFC 3261 §20.23, the 423 answer).
    MinExpires,
    /// `Content-Type` / `c`.
    ContentType,
    /// `Content-Length` / `l`.
    ContentLength,
    /// `Content-Encoding` / `e`.
    ContentEncoding,
    /// `WWW-Authenticate`.
    WwwAuthenticate,
    /// `Proxy-Authenticate`.
    ProxyAuthenticate,
    /// `Authorization`.
    Authorization,
    /// `Proxy-Authorization`.
    ProxyAuthorization,
    /// `Route`.
    Route,
    /// `Record-Route`.
    RecordRoute,
    /// `Path` (RFC 3327).
    Path,
    /// `Supported` / `k`.
    Supported,
    /// `Require`.
    Require,
    /// `Allow`.
    Allow,
    /// `User-Agent`.
    UserAgent,
    /// `Server`.
    Server,
    /// `Retry-After`.
    RetryAfter,
    /// `Flow-Timer` (RFC 5626).
    FlowTimer,
    /// `Subject` / `s`.
    Subject,
    /// `Event` / `o`.
    Event,
    /// `Refer-To` / `r`.
    ReferTo,
    /// `Session-Expires` / `x`.
    SessionExpires,
    /// Any other header, spelled as received.
    Other(&'a str),
}

/// Long forms, in the canonical spelling used when building messages.
const LONG: &[(&str, HeaderName<'static>)] = &[
    ("Via", HeaderName::Via),
    ("From", HeaderName::From),
    ("To", HeaderName::To),
    ("Call-ID", HeaderName::CallId),
    ("CSeq", HeaderName::CSeq),
    ("Contact", HeaderName::Contact),
    ("Max-Forwards", HeaderName::MaxForwards),
    ("Expires", HeaderName::Expires),
    ("Min-Expires", HeaderName::MinExpires),
    ("Content-Type", HeaderName::ContentType),
    ("Content-Length", HeaderName::ContentLength),
    ("Content-Encoding", HeaderName::ContentEncoding),
    ("WWW-Authenticate", HeaderName::WwwAuthenticate),
    ("Proxy-Authenticate", HeaderName::ProxyAuthenticate),
    ("Authorization", HeaderName::Authorization),
    ("Proxy-Authorization", HeaderName::ProxyAuthorization),
    ("Route", HeaderName::Route),
    ("Record-Route", HeaderName::RecordRoute),
    ("Path", HeaderName::Path),
    ("Supported", HeaderName::Supported),
    ("Require", HeaderName::Require),
    ("Allow", HeaderName::Allow),
    ("User-Agent", HeaderName::UserAgent),
    ("Server", HeaderName::Server),
    ("Retry-After", HeaderName::RetryAfter),
    ("Flow-Timer", HeaderName::FlowTimer),
    ("Subject", HeaderName::Subject),
    ("Event", HeaderName::Event),
    ("Refer-To", HeaderName::ReferTo),
    ("Session-Expires", HeaderName::SessionExpires),
];

impl<'a> HeaderName<'a> {
    /// Resolves a header name as received: case-insensitive, compact forms
    /// included.
    pub fn parse(name: &'a str) -> HeaderName<'a> {
        if name.len() == 1 {
            let compact = match name.as_bytes()[0].to_ascii_lowercase() {
                b'v' => Some(HeaderName::Via),
                b'f' => Some(HeaderName::From),
                b't' => Some(HeaderName::To),
                b'i' => Some(HeaderName::CallId),
                b'm' => Some(HeaderName::Contact),
                b'c' => Some(HeaderName::ContentType),
                b'l' => Some(HeaderName::ContentLength),
                b'e' => Some(HeaderName::ContentEncoding),
                b'k' => Some(HeaderName::Supported),
                b's' => Some(HeaderName::Subject),
                b'o' => Some(HeaderName::Event),
                b'r' => Some(HeaderName::ReferTo),
                b'x' => Some(HeaderName::SessionExpires),
                _ => None,
            };
            return compact.unwrap_or(HeaderName::Other(name));
        }
        LONG.iter()
            .find(|(long, _)| long.len() == name.len() && long.eq_ignore_ascii_case(name))
            .map(|(_, known)| *known)
            .unwrap_or(HeaderName::Other(name))
    }

    /// The canonical spelling, for building messages and for error texts.
    pub fn as_str(&self) -> &'a str {
        match self {
            HeaderName::Other(name) => name,
            known => LONG
                .iter()
                .find(|(_, k)| k == known)
                .map(|(long, _)| *long)
                .unwrap_or(""),
        }
    }

    /// Whether this header's value is a comma-separated list that may be
    /// split into several values (RFC 3261 §7.3.1). The authentication
    /// headers are excluded: their commas separate parameters.
    pub fn is_list(&self) -> bool {
        matches!(
            self,
            HeaderName::Via
                | HeaderName::Contact
                | HeaderName::Route
                | HeaderName::RecordRoute
                | HeaderName::Path
                | HeaderName::Supported
                | HeaderName::Require
                | HeaderName::Allow
        )
    }

    /// Whether `self` names the same header as `other` (extension headers
    /// compare case-insensitively).
    pub fn matches(&self, other: &HeaderName<'_>) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => core::mem::discriminant(a) == core::mem::discriminant(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_compact_and_odd_case() {
        assert_eq!(HeaderName::parse("v"), HeaderName::Via);
        assert_eq!(HeaderName::parse("V"), HeaderName::Via);
        assert_eq!(HeaderName::parse("cAlL-iD"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("i"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("l"), HeaderName::ContentLength);
        assert_eq!(HeaderName::parse("X-Custom"), HeaderName::Other("X-Custom"));
        assert_eq!(HeaderName::CallId.as_str(), "Call-ID");
        assert!(HeaderName::Other("x-a").matches(&HeaderName::Other("X-A")));
        assert!(!HeaderName::Via.matches(&HeaderName::To));
    }
}
