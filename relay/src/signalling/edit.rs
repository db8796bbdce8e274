//! Rewriting a parsed message into a new one: the same message, with some
//! headers dropped, replaced or added. Header values are copied as slices;
//! only what changes is new.

use sipline_core::sip::{
    CSeq, Header, HeaderName, Message, MessageBuilder, Method, NameAddr, StartLine, Via,
    split_commas,
};

/// The option tag and INFO package of trickle ICE over SIP (RFC 8840).
const TRICKLE_ICE: &str = "trickle-ice";

/// Where the relay carries a call's media (`anchored`) it is the
/// browser's ICE agent, and the PBX's RTP side has no ICE: trickle ICE is
/// neither side's to offer across it. A `Supported` or `Recv-Info` header
/// that names it goes on without it (dropped when nothing is left); any
/// other header, or any header when the media is not the relay's, as it
/// came.
pub(crate) fn without_trickle_ice(h: &Header<'_>, anchored: bool) -> Action {
    let listed = match &h.name {
        HeaderName::Supported => true,
        HeaderName::Other(n) => n.eq_ignore_ascii_case("Recv-Info"),
        _ => false,
    };
    if !anchored
        || !listed
        || !split_commas(h.value).any(|t| t.trim().eq_ignore_ascii_case(TRICKLE_ICE))
    {
        return Action::Keep;
    }
    let rest: Vec<&str> = split_commas(h.value)
        .map(str::trim)
        .filter(|t| !t.is_empty() && !t.eq_ignore_ascii_case(TRICKLE_ICE))
        .collect();
    if rest.is_empty() {
        Action::Drop
    } else {
        Action::Replace(rest.join(", "))
    }
}

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
            MessageBuilder::request_named(method, uri.unwrap_or(old))
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

/// Keeps `value` in `slot` if it is the first and sound; a second one makes
/// the header unusable, whatever it says.
fn once<'t>(slot: &mut Option<Option<&'t str>>, value: &'t str, sound: bool) {
    *slot = match slot {
        None if sound => Some(Some(value)),
        _ => Some(None),
    };
}

/// A fallback `400` for a request too broken to parse, with the headers a
/// response must echo (RFC 3261 §8.2.6.2: every Via, From, To, Call-ID and
/// CSeq) copied from the raw text; `None` (the request is dropped and
/// counted) when they are not all there once each and sound, for an ACK
/// (never answered), or when the answer would not parse itself: the sender
/// could not match such an answer to anything.
pub(crate) fn bad_request(raw: &[u8], reason: &str) -> Option<Vec<u8>> {
    let text = core::str::from_utf8(raw.get(..raw.len().min(16 * 1024))?).ok()?;
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let first = lines.next()?;
    // Answer only what reads as a request line: never a response, never
    // binary noise.
    let mut parts = first.split(' ').filter(|p| !p.is_empty());
    let (Some(method), Some(_), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return None;
    };
    if !is_token(method)
        || method == Method::Ack.as_str()
        || !version
            .get(..4)
            .is_some_and(|v| v.eq_ignore_ascii_case("SIP/"))
    {
        return None;
    }
    let mut vias = Vec::new();
    let (mut from, mut to, mut call_id, mut cseq) = (None, None, None, None);
    for line in lines.take_while(|l| !l.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match HeaderName::parse(name.trim()) {
            HeaderName::Via if Via::parse(value).is_some() => vias.push(value),
            HeaderName::Via => return None,
            HeaderName::From => once(&mut from, value, NameAddr::parse(value).is_some()),
            HeaderName::To => once(&mut to, value, NameAddr::parse(value).is_some()),
            HeaderName::CallId => once(
                &mut call_id,
                value,
                !value.is_empty() && !value.contains(|c: char| c.is_whitespace() || c.is_control()),
            ),
            HeaderName::CSeq => once(&mut cseq, value, CSeq::parse(value).is_some()),
            _ => {}
        }
    }
    let (Some(Some(from)), Some(Some(to)), Some(Some(call_id))) = (from, to, call_id) else {
        return None;
    };
    if vias.is_empty() {
        return None;
    }
    let mut b = MessageBuilder::response(400, reason);
    for via in vias {
        b.header("Via", via);
    }
    b.header("From", from)
        .header("To", to)
        .header("Call-ID", call_id);
    match cseq {
        Some(Some(cseq)) => {
            b.header("CSeq", cseq);
        }
        // The CSeq was the broken part: a zero CSeq with the request's
        // method still lets the sender see which request failed.
        _ => {
            b.header_parts("CSeq", &["0 ", method]);
        }
    }
    let answer = b.finish(None, b"");
    Message::parse(&answer).is_ok().then_some(answer)
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
        let raw = b"INVITE sip:x@y SIP/2.0\r\nVia: SIP/2.0/WSS h.invalid;branch=z9hG4bK1\r\nCSeq: bogus\r\nCall-ID: c\r\nFrom: <sip:a@y>;tag=1\r\nTo: <sip:x@y>\r\n\r\n";
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
        // Found by fuzzing (fuzz/corpus/relay_proxy): a From missing or
        // doubled, a Call-ID with a control character, an ACK.
        let no_from = std::str::from_utf8(raw)
            .expect("text")
            .replace("From: <sip:a@y>;tag=1\r\n", "");
        assert_eq!(bad_request(no_from.as_bytes(), "x"), None);
        let two_froms = std::str::from_utf8(raw)
            .expect("text")
            .replace("From:", "From: <sip:b@y>;tag=2\r\nFrom:");
        assert_eq!(bad_request(two_froms.as_bytes(), "x"), None);
        let nul = std::str::from_utf8(raw)
            .expect("text")
            .replace("Call-ID: c", "Call-ID: c\u{0}");
        assert_eq!(bad_request(nul.as_bytes(), "x"), None);
        let ack = std::str::from_utf8(raw)
            .expect("text")
            .replace("INVITE sip", "ACK sip");
        assert_eq!(bad_request(ack.as_bytes(), "x"), None);
        assert_eq!(bad_request(b"", "x"), None);
    }
}
