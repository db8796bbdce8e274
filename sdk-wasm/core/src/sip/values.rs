//! Typed, borrowed views of the header values the stack reads.
//!
//! Each parser returns `None` on malformed input; the caller decides whether
//! that is a 400 (a header the transaction needs) or ignorable.

use crate::prelude::*;
use alloc::borrow::Cow;

use super::{Method, find_byte, is_token, split_at_byte, str_from, str_range, str_to};

/// Linear whitespace as it may appear in a raw (possibly folded) value.
pub(crate) fn is_lws(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Trims linear whitespace, folding included, from both ends.
pub(crate) fn trim_lws(s: &str) -> &str {
    s.trim_matches(is_lws)
}

/// Splits `s` at every `sep` that is not inside a quoted string or `<…>`.
fn split_outside<'a>(s: &'a str, sep: u8) -> impl Iterator<Item = &'a str> + 'a {
    let bytes = s.as_bytes();
    let mut pos = 0;
    let mut done = false;
    core::iter::from_fn(move || {
        if done {
            return None;
        }
        let (mut quoted, mut angle, mut escaped) = (false, false, false);
        let mut i = pos;
        while i < bytes.len() {
            let c = bytes[i];
            if quoted {
                if escaped {
                    escaped = false;
                } else if c == b'\\' {
                    escaped = true;
                } else if c == b'"' {
                    quoted = false;
                }
            } else if c == b'"' {
                quoted = true;
            } else if c == b'<' {
                angle = true;
            } else if c == b'>' {
                angle = false;
            } else if c == sep && !angle {
                break;
            }
            i += 1;
        }
        let part = str_range(s, pos, i);
        if i >= bytes.len() {
            done = true;
        } else {
            pos = i + 1;
        }
        Some(part)
    })
}

/// The values of a comma-separated list header, trimmed, empty ones dropped.
pub fn split_commas(s: &str) -> impl Iterator<Item = &str> {
    split_outside(s, b',')
        .map(trim_lws)
        .filter(|v| !v.is_empty())
}

/// `;name=value` parameters, trimmed; a leading `;` is optional.
pub fn split_params(s: &str) -> Params<'_> {
    Params(s)
}

/// Removes the quotes of a quoted-string and its `\` escapes. Allocates only
/// when an escape is present. A value without quotes is returned as is.
pub fn unquote(s: &str) -> Cow<'_, str> {
    let s = trim_lws(s);
    let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else {
        return Cow::Borrowed(s);
    };
    if find_byte(inner, b'\\').is_none() {
        return Cow::Borrowed(inner);
    }
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// A parameter list (`;a=1;b;c="x"`), searched lazily.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Params<'a>(pub &'a str);

impl<'a> Params<'a> {
    /// Each parameter as `(name, value)`; a flag parameter has no value.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Option<&'a str>)> + 'a {
        split_outside(self.0, b';')
            .map(trim_lws)
            .filter(|p| !p.is_empty())
            .map(|p| match split_at_byte(p, b'=') {
                Some((n, v)) => (trim_lws(n), Some(trim_lws(v))),
                None => (p, None),
            })
    }

    /// `Some(value)` if the parameter is present (`Some(None)` for a flag).
    /// Names compare case-insensitively.
    pub fn get(&self, name: &str) -> Option<Option<&'a str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The value of a parameter that carries one.
    pub fn value(&self, name: &str) -> Option<&'a str> {
        self.get(name).flatten()
    }

    /// Whether the list is syntactically sound: every name a token and
    /// every value a token, a host or a quoted string.
    fn is_well_formed(&self) -> bool {
        let list = trim_lws(self.0);
        let list = list.strip_prefix(';').unwrap_or(list);
        if list.is_empty() {
            return self.0.trim_matches(is_lws).is_empty();
        }
        split_outside(list, b';').all(|p| {
            let (n, v) = match split_at_byte(p, b'=') {
                Some((n, v)) => (trim_lws(n), Some(trim_lws(v))),
                None => (trim_lws(p), None),
            };
            is_token(n)
                && v.is_none_or(|v| {
                    (v.len() >= 2 && v.starts_with('"') && v.ends_with('"'))
                        || (!v.is_empty()
                            && !v.contains(|c: char| is_lws(c) || matches!(c, '"' | '<' | '>')))
                })
        })
    }
}

/// A SIP URI split into its parts, or an opaque URI of another scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Uri<'a> {
    /// `sip`, `sips`, `tel`… as written.
    pub scheme: &'a str,
    /// The user part, still %-escaped.
    pub user: Option<&'a str>,
    /// The host (brackets kept for IPv6); empty for non-SIP schemes.
    pub host: &'a str,
    /// The port, when given.
    pub port: Option<u16>,
    /// URI parameters after the host.
    pub params: Params<'a>,
    /// Everything after the scheme for a non-SIP URI; the `?headers` part
    /// for a SIP URI.
    pub rest: &'a str,
}

impl<'a> Uri<'a> {
    /// Parses an absolute URI; SIP and SIPS URIs are split into parts.
    pub fn parse(s: &'a str) -> Option<Uri<'a>> {
        let (scheme, rest) = split_at_byte(s, b':')?;
        if scheme.is_empty()
            || !scheme.as_bytes()[0].is_ascii_alphabetic()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
            || rest.is_empty()
            || rest.contains(|c: char| c.is_ascii_whitespace() || c.is_ascii_control())
        {
            return None;
        }
        let sip = scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips");
        if !sip {
            return Some(Uri {
                scheme,
                user: None,
                host: "",
                port: None,
                params: Params(""),
                rest,
            });
        }
        // A raw '@' can only end the userinfo (it is not allowed in host,
        // parameters or headers), and the user part may hold '?' and ';'
        // (RFC 3261 §25.1 user-unreserved), so split at '@' first.
        let (user, after_user) = match rest.rfind('@') {
            Some(at) => (Some(str_to(rest, at)), str_from(rest, at + 1)),
            None => (None, rest),
        };
        let (hostpart, headers) = split_at_byte(after_user, b'?').unwrap_or((after_user, ""));
        if user.is_some_and(|u| u.is_empty()) {
            return None;
        }
        let (host, after) = if hostpart.starts_with('[') {
            let end = find_byte(hostpart, b']')?;
            (str_to(hostpart, end + 1), str_from(hostpart, end + 1))
        } else {
            let end = hostpart
                .bytes()
                .position(|c| c == b':' || c == b';')
                .unwrap_or(hostpart.len());
            (str_to(hostpart, end), str_from(hostpart, end))
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.[]:_".contains(&b))
        {
            return None;
        }
        let (port, params) = match after.strip_prefix(':') {
            Some(p) => {
                let end = find_byte(p, b';').unwrap_or(p.len());
                let digits = str_to(p, end);
                if digits.is_empty()
                    || digits.len() > 5
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                {
                    return None;
                }
                (Some(digits.parse().ok()?), str_from(p, end))
            }
            None => (None, after),
        };
        if !params.is_empty() && !params.starts_with(';') {
            return None;
        }
        Some(Uri {
            scheme,
            user,
            host,
            port,
            params: Params(params),
            rest: headers,
        })
    }

    /// The `transport` URI parameter.
    pub fn transport(&self) -> Option<&'a str> {
        self.params.value("transport")
    }
}

/// `name-addr` or `addr-spec` with header parameters: From, To, Contact,
/// Route, Record-Route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// The display name, quotes kept off, escapes left as received.
    pub display_name: Option<&'a str>,
    /// The URI text (inside `<>` when they were used).
    pub uri_text: &'a str,
    /// The parsed URI.
    pub uri: Uri<'a>,
    /// Header parameters after the URI (`tag`, `expires`, `+sip.instance`…).
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// Parses a From/To/Contact/Route value.
    pub fn parse(s: &'a str) -> Option<NameAddr<'a>> {
        let s = trim_lws(s);
        let (display_name, uri_text, params) = if let Some(rest) = s.strip_prefix('"') {
            let end = closing_quote(rest)?;
            let display = str_to(rest, end);
            let after = trim_lws(str_from(rest, end + 1));
            let inner = after.strip_prefix('<')?;
            let close = find_byte(inner, b'>')?;
            (
                Some(display),
                str_to(inner, close),
                str_from(inner, close + 1),
            )
        } else if let Some(open) = find_byte(s, b'<') {
            let display = trim_lws(str_to(s, open));
            // An unquoted display name is a sequence of tokens.
            if !display.split(is_lws).all(|t| t.is_empty() || is_token(t)) {
                return None;
            }
            let inner = str_from(s, open + 1);
            let close = find_byte(inner, b'>')?;
            let display = (!display.is_empty()).then_some(display);
            (display, str_to(inner, close), str_from(inner, close + 1))
        } else {
            // addr-spec: the URI cannot hold ';' parameters, they belong to
            // the header (RFC 3261 §20.10).
            if s.contains(['>', '"', '?']) {
                return None;
            }
            let end = find_byte(s, b';').unwrap_or(s.len());
            (None, trim_lws(str_to(s, end)), str_from(s, end))
        };
        let params = trim_lws(params);
        if !params.is_empty() && !params.starts_with(';') {
            return None;
        }
        let params = Params(params);
        // A tag names a dialog's side: `tag` with no value names none, and
        // a response could not add one that reads (RFC 3261 §25.1).
        if !params.is_well_formed() || params.get("tag") == Some(None) {
            return None;
        }
        let uri = Uri::parse(uri_text)?;
        Some(NameAddr {
            display_name,
            uri_text,
            uri,
            params,
        })
    }

    /// The `tag` parameter, which names one side of a dialog.
    pub fn tag(&self) -> Option<&'a str> {
        self.params.value("tag")
    }
}

/// Index of the quote that closes a quoted string whose opening quote was
/// already consumed.
fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (i, b) in s.bytes().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return Some(i),
            _ => {}
        }
    }
    None
}

/// One Via value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Via<'a> {
    /// The transport of `SIP/2.0/<transport>` (`UDP`, `WS`, `WSS`…).
    pub transport: &'a str,
    /// The sent-by host (brackets kept for IPv6).
    pub host: &'a str,
    /// The sent-by port, when given.
    pub port: Option<u16>,
    /// Via parameters (`branch`, `received`, `rport`…).
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    /// Parses one Via value (not a comma-separated list).
    pub fn parse(s: &'a str) -> Option<Via<'a>> {
        let s = trim_lws(s);
        let mut parts = s.splitn(3, '/');
        let (name, version, rest) = (parts.next()?, parts.next()?, parts.next()?);
        if !trim_lws(name).eq_ignore_ascii_case("SIP") || trim_lws(version) != "2.0" {
            return None;
        }
        let rest = trim_lws(rest);
        let t_end = rest.find(is_lws)?;
        let transport = str_to(rest, t_end);
        let rest = trim_lws(str_from(rest, t_end));
        let sb_end = find_byte(rest, b';').unwrap_or(rest.len());
        let sent_by = trim_lws(str_to(rest, sb_end));
        let params = Params(str_from(rest, sb_end));
        if !is_token(transport) || !params.is_well_formed() {
            return None;
        }
        let uri = Uri::parse_host_port(sent_by)?;
        Some(Via {
            transport,
            host: uri.0,
            port: uri.1,
            params,
        })
    }

    /// The `branch` parameter: the transaction id (RFC 3261 §17.2.3).
    pub fn branch(&self) -> Option<&'a str> {
        self.params.value("branch")
    }
}

impl Uri<'_> {
    /// Parses `host[:port]`, as in a Via sent-by.
    fn parse_host_port(s: &str) -> Option<(&str, Option<u16>)> {
        let (host, port) = if s.starts_with('[') {
            let end = find_byte(s, b']')?;
            let after = str_from(s, end + 1);
            // After the bracket: nothing, or ":port".
            if !after.is_empty() && !after.starts_with(':') {
                return None;
            }
            (str_to(s, end + 1), after.strip_prefix(':'))
        } else {
            match split_at_byte(s, b':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        if host.is_empty()
            || !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.[]:_".contains(&b))
        {
            return None;
        }
        let port = match port.map(trim_lws) {
            Some(p) if (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) => {
                Some(p.parse().ok()?)
            }
            Some(_) => return None,
            None => None,
        };
        Some((host, port))
    }
}

/// The CSeq header: sequence number and method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CSeq<'a> {
    /// The sequence number (below 2**31, RFC 3261 §8.1.1.5).
    pub seq: u32,
    /// The method, which must equal the request's.
    pub method: &'a str,
}

impl<'a> CSeq<'a> {
    /// Whether its method is `method`.
    pub fn is(&self, method: Method) -> bool {
        self.method == method.as_str()
    }

    /// Parses `1*DIGIT LWS Method`.
    pub fn parse(s: &'a str) -> Option<CSeq<'a>> {
        let s = trim_lws(s);
        let end = s.find(is_lws)?;
        let (num, method) = (str_to(s, end), trim_lws(str_from(s, end)));
        if num.is_empty() || num.len() > 10 || !num.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let seq: u32 = num.parse().ok()?;
        if seq >= 1 << 31 || !is_token(method) {
            return None;
        }
        Some(CSeq { seq, method })
    }
}

/// The parameters of a `Digest` challenge or credentials
/// (`WWW-Authenticate`, `Proxy-Authenticate`, `Authorization`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthParams<'a> {
    /// The auth scheme (`Digest`).
    pub scheme: &'a str,
    params: &'a str,
}

impl<'a> AuthParams<'a> {
    /// Splits `Scheme param=value, param="value"`.
    pub fn parse(s: &'a str) -> Option<AuthParams<'a>> {
        let s = trim_lws(s);
        let end = s.find(is_lws).unwrap_or(s.len());
        let scheme = str_to(s, end);
        if !is_token(scheme) {
            return None;
        }
        let params = trim_lws(str_from(s, end));
        let mut rest = params;
        while let Some(open) = find_byte(rest, b'"') {
            let close = closing_quote(str_from(rest, open + 1))?;
            rest = str_from(rest, open + 1 + close + 1);
        }
        Some(AuthParams { scheme, params })
    }

    /// A parameter's value, quotes removed. Names compare case-insensitively.
    pub fn get(&self, name: &str) -> Option<Cow<'a, str>> {
        split_commas(self.params).find_map(|p| {
            let (n, v) = split_at_byte(p, b'=')?;
            trim_lws(n).eq_ignore_ascii_case(name).then(|| unquote(v))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_parts() {
        let u = Uri::parse("sip:alice:pw@[::1]:5060;transport=ws;ob?subject=x").expect("uri");
        assert_eq!(u.scheme, "sip");
        assert_eq!(u.user, Some("alice:pw"));
        assert_eq!(u.host, "[::1]");
        assert_eq!(u.port, Some(5060));
        assert_eq!(u.transport(), Some("ws"));
        assert_eq!(u.params.get("ob"), Some(None));
        assert_eq!(u.rest, "subject=x");
        let semi = Uri::parse("sip:user;par=u%40example.net@example.com").expect("semi");
        assert_eq!(semi.user, Some("user;par=u%40example.net"));
        assert_eq!(semi.host, "example.com");
        let odd = Uri::parse("sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com")
            .expect("odd user");
        assert_eq!(odd.host, "example.com");
        let hdr = Uri::parse("sip:user@example.com?Route=%3Csip:example.com%3E").expect("headers");
        assert_eq!(
            (hdr.host, hdr.rest),
            ("example.com", "Route=%3Csip:example.com%3E")
        );
        let tel = Uri::parse("tel:+1-201-555-0123").expect("tel");
        assert_eq!((tel.scheme, tel.rest), ("tel", "+1-201-555-0123"));
        for bad in [
            "",
            "sip:",
            "sip:@host",
            "sip:a@",
            "sip:a@h:99999",
            "sip:a b@h",
            "nocolon",
            "1x:y",
        ] {
            assert_eq!(Uri::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn name_addr_forms() {
        let n =
            NameAddr::parse("\"Bob \\\"B\\\"\" <sip:bob@b.example>;tag=a6c85cf").expect("quoted");
        assert_eq!(n.display_name, Some("Bob \\\"B\\\""));
        assert_eq!(n.tag(), Some("a6c85cf"));
        let n = NameAddr::parse("Alice Smith <sip:a@x;transport=ws>;expires=60").expect("tokens");
        assert_eq!(n.display_name, Some("Alice Smith"));
        assert_eq!(n.uri.transport(), Some("ws"));
        assert_eq!(n.params.value("expires"), Some("60"));
        let n = NameAddr::parse("sip:a@x;tag=9").expect("addr-spec");
        assert_eq!(n.uri.host, "x");
        assert_eq!(n.tag(), Some("9"));
        let n = NameAddr::parse("<sip:x@h;ob>;+sip.instance=\"<urn:uuid:1-2>\";reg-id=1")
            .expect("outbound");
        assert_eq!(n.params.value("+sip.instance"), Some("\"<urn:uuid:1-2>\""));
        for bad in [
            "\"unbalanced <sip:a@b>",
            "Bell, Alex <sip:a@b>",
            "<sip:a@b",
            "<sip:a@b> junk",
            "sip:a@b>",
            "sip:a@b?Route=x",
            "<sip:a@b>;;tag=1",
        ] {
            assert_eq!(NameAddr::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn via_forms() {
        let v =
            Via::parse("SIP / 2.0 / UDP 192.0.2.1:5060 ;received=1.2.3.4;rport=9;branch=z9hG4bK77")
                .expect("via");
        assert_eq!(
            (v.transport, v.host, v.port),
            ("UDP", "192.0.2.1", Some(5060))
        );
        assert_eq!(v.branch(), Some("z9hG4bK77"));
        assert_eq!(v.params.value("rport"), Some("9"));
        let v = Via::parse("SIP/2.0/WSS df7jal23ls0d.invalid;branch=z9hG4bKx").expect("ws via");
        assert_eq!(
            (v.transport, v.host, v.port),
            ("WSS", "df7jal23ls0d.invalid", None)
        );
        let v = Via::parse("SIP/2.0/UDP [2001:db8::9]:5070;branch=z9hG4bKy").expect("v6");
        assert_eq!((v.host, v.port), ("[2001:db8::9]", Some(5070)));
        for bad in [
            "SIP/3.0/UDP h",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP h:port",
            "junk",
            "SIP/2.0/UDP [::1]junk",
            "SIP/2.0/UDP h:+5060",
            "SIP/2.0/UDP h:123456",
        ] {
            assert_eq!(Via::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn cseq_bounds() {
        assert_eq!(
            CSeq::parse("4711 INVITE"),
            Some(CSeq {
                seq: 4711,
                method: "INVITE"
            })
        );
        assert_eq!(
            CSeq::parse("2147483647 BYE").map(|c| c.seq),
            Some(2_147_483_647)
        );
        for bad in [
            "2147483648 BYE",
            "abc REGISTER",
            "1",
            "1 ",
            "-1 BYE",
            "99999999999999 BYE",
            "1 IN VITE",
        ] {
            assert_eq!(CSeq::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn lists_and_quotes() {
        let v: Vec<_> = split_commas("<sip:a@b>;q=1, \"x, y\" <sip:c@d>,sip:e@f").collect();
        assert_eq!(v, ["<sip:a@b>;q=1", "\"x, y\" <sip:c@d>", "sip:e@f"]);
        assert_eq!(unquote("\"a\\\"b\""), "a\"b");
        assert_eq!(unquote("plain"), "plain");
        let ch = AuthParams::parse("Digest realm=\"sipline.test\", nonce=\"a,b\", qop=\"auth,auth-int\", algorithm=MD5, stale=TRUE")
            .expect("challenge");
        assert_eq!(ch.scheme, "Digest");
        assert_eq!(ch.get("REALM").as_deref(), Some("sipline.test"));
        assert_eq!(ch.get("nonce").as_deref(), Some("a,b"));
        assert_eq!(ch.get("qop").as_deref(), Some("auth,auth-int"));
        assert_eq!(ch.get("stale").as_deref(), Some("TRUE"));
        assert_eq!(ch.get("opaque"), None);
        assert_eq!(AuthParams::parse("Digest realm=\"x\", nonce=\"open"), None);
    }
}
