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
        // (length, first, last) is unique among the known names: one match
        // picks the only candidate, one compare confirms it.
        let b = name.as_bytes();
        let (Some(first), Some(last)) = (b.first(), b.last()) else {
            return HeaderName::Other(name);
        };
        let candidate = match (
            b.len(),
            first.to_ascii_lowercase(),
            last.to_ascii_lowercase(),
        ) {
            (2, b't', b'o') => HeaderName::To,
            (3, b'v', b'a') => HeaderName::Via,
            (4, b'c', b'q') => HeaderName::CSeq,
            (4, b'f', b'm') => HeaderName::From,
            (4, b'p', b'h') => HeaderName::Path,
            (5, b'a', b'w') => HeaderName::Allow,
            (5, b'e', b't') => HeaderName::Event,
            (5, b'r', b'e') => HeaderName::Route,
            (6, b's', b'r') => HeaderName::Server,
            (7, b'c', b'd') => HeaderName::CallId,
            (7, b'c', b't') => HeaderName::Contact,
            (7, b'e', b's') => HeaderName::Expires,
            (7, b'r', b'e') => HeaderName::Require,
            (7, b's', b't') => HeaderName::Subject,
            (8, b'r', b'o') => HeaderName::ReferTo,
            (9, b's', b'd') => HeaderName::Supported,
            (10, b'f', b'r') => HeaderName::FlowTimer,
            (10, b'u', b't') => HeaderName::UserAgent,
            (11, b'm', b's') => HeaderName::MinExpires,
            (11, b'r', b'r') => HeaderName::RetryAfter,
            (12, b'c', b'e') => HeaderName::ContentType,
            (12, b'm', b's') => HeaderName::MaxForwards,
            (12, b'r', b'e') => HeaderName::RecordRoute,
            (13, b'a', b'n') => HeaderName::Authorization,
            (14, b'c', b'h') => HeaderName::ContentLength,
            (15, b's', b's') => HeaderName::SessionExpires,
            (16, b'c', b'g') => HeaderName::ContentEncoding,
            (16, b'w', b'e') => HeaderName::WwwAuthenticate,
            (18, b'p', b'e') => HeaderName::ProxyAuthenticate,
            (19, b'p', b'n') => HeaderName::ProxyAuthorization,
            _ => return HeaderName::Other(name),
        };
        if candidate.as_str().eq_ignore_ascii_case(name) {
            candidate
        } else {
            HeaderName::Other(name)
        }
    }

    /// The canonical spelling, for building messages and for error texts.
    pub fn as_str(&self) -> &'a str {
        match self {
            HeaderName::To => "To",
            HeaderName::Via => "Via",
            HeaderName::CSeq => "CSeq",
            HeaderName::From => "From",
            HeaderName::Path => "Path",
            HeaderName::Allow => "Allow",
            HeaderName::Event => "Event",
            HeaderName::Route => "Route",
            HeaderName::Server => "Server",
            HeaderName::CallId => "Call-ID",
            HeaderName::Contact => "Contact",
            HeaderName::Expires => "Expires",
            HeaderName::Require => "Require",
            HeaderName::Subject => "Subject",
            HeaderName::ReferTo => "Refer-To",
            HeaderName::Supported => "Supported",
            HeaderName::FlowTimer => "Flow-Timer",
            HeaderName::UserAgent => "User-Agent",
            HeaderName::MinExpires => "Min-Expires",
            HeaderName::RetryAfter => "Retry-After",
            HeaderName::ContentType => "Content-Type",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::RecordRoute => "Record-Route",
            HeaderName::Authorization => "Authorization",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::SessionExpires => "Session-Expires",
            HeaderName::ContentEncoding => "Content-Encoding",
            HeaderName::WwwAuthenticate => "WWW-Authenticate",
            HeaderName::ProxyAuthenticate => "Proxy-Authenticate",
            HeaderName::ProxyAuthorization => "Proxy-Authorization",
            HeaderName::Other(name) => name,
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

    const KNOWN: [HeaderName<'static>; 30] = [
        HeaderName::To,
        HeaderName::Via,
        HeaderName::CSeq,
        HeaderName::From,
        HeaderName::Path,
        HeaderName::Allow,
        HeaderName::Event,
        HeaderName::Route,
        HeaderName::Server,
        HeaderName::CallId,
        HeaderName::Contact,
        HeaderName::Expires,
        HeaderName::Require,
        HeaderName::Subject,
        HeaderName::ReferTo,
        HeaderName::Supported,
        HeaderName::FlowTimer,
        HeaderName::UserAgent,
        HeaderName::MinExpires,
        HeaderName::RetryAfter,
        HeaderName::ContentType,
        HeaderName::MaxForwards,
        HeaderName::RecordRoute,
        HeaderName::Authorization,
        HeaderName::ContentLength,
        HeaderName::SessionExpires,
        HeaderName::ContentEncoding,
        HeaderName::WwwAuthenticate,
        HeaderName::ProxyAuthenticate,
        HeaderName::ProxyAuthorization,
    ];

    #[test]
    fn every_known_name_round_trips_in_any_case() {
        for known in KNOWN {
            let long = known.as_str();
            assert_eq!(HeaderName::parse(long), known);
            assert_eq!(HeaderName::parse(&long.to_ascii_uppercase()), known);
            assert_eq!(HeaderName::parse(&long.to_ascii_lowercase()), known);
        }
        // Same length, first and last letters as a known name, yet another.
        assert_eq!(HeaderName::parse("Cxxxxxd"), HeaderName::Other("Cxxxxxd"));
        assert_eq!(HeaderName::parse(""), HeaderName::Other(""));
    }

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
