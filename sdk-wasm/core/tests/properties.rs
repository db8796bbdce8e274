//! Property tests: messages built from random parts read back the same in
//! the lean parser and in rsip, and no input, however broken, panics the
//! parser or the user agent.

use proptest::prelude::*;
use rsip::headers::ToTypedHeader;
use rsip::prelude::{HeadersExt, UntypedHeader};
use sipline_core::sip::{HeaderName, Message, MessageBuilder, Method};
use sipline_core::{Config, Instant, Secret, UserAgent};

const METHODS: &[Method] = &Method::ALL;

fn token() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9][a-zA-Z0-9.!%*_+`'~-]{0,23}"
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z][a-z0-9-]{0,12}(\\.[a-z][a-z0-9-]{0,12}){0,3}",
        (1u8..=254, 0u8..=255, 0u8..=255, 1u8..=254)
            .prop_map(|(a, b, c, d)| format!("{a}.{b}.{c}.{d}")),
    ]
}

#[derive(Debug, Clone)]
struct Parts {
    request: bool,
    method: Method,
    code: u16,
    user: String,
    host: String,
    port: Option<u16>,
    from_tag: String,
    to_tag: Option<String>,
    call_id: String,
    seq: u32,
    branch: String,
    extra: Vec<(String, String)>,
    body: Vec<u8>,
    compact: bool,
}

fn parts() -> impl Strategy<Value = Parts> {
    (
        (
            any::<bool>(),
            prop::sample::select(METHODS),
            100u16..=699,
            "[a-z0-9]{1,12}",
            host(),
            prop::option::of(1u16..),
        ),
        (
            token(),
            prop::option::of(token()),
            "[a-zA-Z0-9]{1,30}(@[a-z0-9.]{1,20})?",
            0u32..(1 << 31),
            "[a-zA-Z0-9]{1,20}",
        ),
        prop::collection::vec(("X-[A-Za-z]{1,10}", "[ -~]{0,40}"), 0..6),
        prop::collection::vec(any::<u8>(), 0..300),
        any::<bool>(),
    )
        .prop_map(
            |(
                (request, method, code, user, host, port),
                (from_tag, to_tag, call_id, seq, branch),
                extra,
                body,
                compact,
            )| Parts {
                request,
                method,
                code,
                user,
                host,
                port,
                from_tag,
                to_tag,
                call_id,
                seq,
                branch,
                extra,
                body,
                compact,
            },
        )
}

fn build(p: &Parts) -> Vec<u8> {
    let uri = match p.port {
        Some(port) => format!("sip:{}@{}:{port}", p.user, p.host),
        None => format!("sip:{}@{}", p.user, p.host),
    };
    let mut b = if p.request {
        MessageBuilder::request(p.method, &uri)
    } else {
        MessageBuilder::response(p.code, "Some Reason")
    };
    let name = |long: &'static str, short: &'static str| if p.compact { short } else { long };
    b.header(
        name("Via", "v"),
        &format!("SIP/2.0/UDP {}:5060;branch=z9hG4bK{}", p.host, p.branch),
    );
    b.header("Max-Forwards", "70");
    b.header(
        name("From", "f"),
        &format!("\"Caller\" <sip:caller@example.com>;tag={}", p.from_tag),
    );
    match &p.to_tag {
        Some(tag) => b.header(name("To", "t"), &format!("<{uri}>;tag={tag}")),
        None => b.header(name("To", "t"), &format!("<{uri}>")),
    };
    b.header(name("Call-ID", "i"), &p.call_id);
    b.header("CSeq", &format!("{} {}", p.seq, p.method.as_str()));
    for (n, v) in &p.extra {
        b.header(n, v.trim());
    }
    b.finish(Some("application/octet-stream"), &p.body)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Whatever we build, we read back exactly; so does rsip when it can
    /// (it does not know compact header names).
    #[test]
    fn built_messages_read_back_in_both_parsers(p in parts()) {
        let bytes = build(&p);
        let m = Message::parse(&bytes).map_err(|e| TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&bytes))))?;
        prop_assert_eq!(m.method(), p.request.then_some(p.method));
        prop_assert_eq!(m.status(), (!p.request).then_some(p.code));
        prop_assert_eq!(m.call_id(), p.call_id.as_str());
        prop_assert_eq!(m.cseq().seq, p.seq);
        prop_assert_eq!(m.from().tag(), Some(p.from_tag.as_str()));
        prop_assert_eq!(m.to().tag(), p.to_tag.as_deref());
        let branch = format!("z9hG4bK{}", p.branch);
        prop_assert_eq!(m.via().branch(), Some(branch.as_str()));
        prop_assert_eq!(m.body(), &p.body[..]);
        for (n, v) in &p.extra {
            prop_assert!(m.header_lines(HeaderName::parse(n)).any(|got| got == v.trim()));
        }
        if p.compact {
            return Ok(());
        }
        let r = rsip::SipMessage::try_from(&bytes[..]).map_err(|e| TestCaseError::fail(format!("rsip: {e}")))?;
        match &r {
            rsip::SipMessage::Request(req) => {
                prop_assert_eq!(req.method().to_string(), p.method.as_str());
                prop_assert_eq!(req.uri().host_with_port.host.to_string(), p.host.clone());
                prop_assert_eq!(req.uri().auth.as_ref().map(|a| a.user.clone()), Some(p.user.clone()));
            }
            rsip::SipMessage::Response(resp) => prop_assert_eq!(resp.status_code().code(), p.code),
        }
        prop_assert_eq!(r.call_id_header().map(|h| h.value().to_owned()).ok(), Some(p.call_id.clone()));
        prop_assert_eq!(r.cseq_header().ok().and_then(|h| h.seq().ok()), Some(p.seq));
        let rsip_branch = r.via_header().ok().and_then(|v| v.typed().ok()).and_then(|v| v.branch().map(|b| b.to_string()));
        prop_assert_eq!(rsip_branch, Some(branch));
        prop_assert_eq!(r.body(), &p.body);
    }

    /// Random bytes: an error or a message, never a panic.
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Message::parse(&bytes);
    }

    /// Valid messages cut short or with bytes changed: never a panic, and a
    /// cut inside the headers is always an error.
    #[test]
    fn mutated_messages_never_panic(p in parts(), cut in any::<prop::sample::Index>(), flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let bytes = build(&p);
        let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(bytes.len());
        let at = cut.index(bytes.len());
        let truncated = Message::parse(&bytes[..at]);
        if at < head_end {
            prop_assert!(truncated.is_err(), "cut at {} inside headers parsed", at);
        }
        let mut mutated = bytes.clone();
        for (i, b) in flips {
            let i = i.index(mutated.len());
            mutated[i] = b;
        }
        let _ = Message::parse(&mutated);
    }

    /// The user agent takes any frame without panicking, registered or not.
    #[test]
    fn user_agent_survives_any_frame(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 1..6), p in parts()) {
        let mut c = Config::new("sip:alice@sipline.test");
        c.password = Some(Secret::new("pw"));
        let mut ua = UserAgent::new(c, [5; 32]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        ua.transport_connected(Instant::from_millis(0));
        for (i, f) in frames.iter().enumerate() {
            let _ = ua.handle_message(Instant::from_millis(i as u64), f);
        }
        let _ = ua.handle_message(Instant::from_millis(10), &build(&p));
        ua.handle_timeout(Instant::from_millis(40_000));
        while ua.poll_transmit().is_some() {}
        while ua.poll_event().is_some() {}
    }
}

/// Text a fuzzer would not produce by flipping bytes: valid UTF-8, multi-byte
/// characters included, so that it gets past the UTF-8 check and reaches the
/// code that slices strings.
fn unicode() -> impl Strategy<Value = String> {
    "\\PC{0,12}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    /// Multi-byte text spliced into the start line and the headers the
    /// parser reads: an error or a message, never a panic.
    #[test]
    fn unicode_in_any_field_never_panics(
        method in unicode(), uri in unicode(), version in unicode(), code in unicode(),
        via in unicode(), from in unicode(), cseq in unicode(), mf in unicode(), expires in unicode(),
    ) {
        let req = format!(
            "{method} {uri} {version}\r\nVia: SIP/2.0/{via}\r\nFrom: {from}\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: 1 {cseq}\r\nMax-Forwards: {mf}\r\nExpires: {expires}\r\n\r\n"
        );
        let _ = Message::parse(req.as_bytes());
        let resp = format!("SIP/2.0 {code} {uri}\r\nVia: SIP/2.0/WSS h.invalid;{via}\r\nFrom: <sip:a@b>;tag={from}\r\nTo: <sip:a@b>\r\nCall-ID: c\r\nCSeq: {cseq}\r\n\r\n");
        let _ = Message::parse(resp.as_bytes());
    }

    /// Whatever the registrar answers to the REGISTER actually pending
    /// (random codes, challenges, Contacts, Min-Expires, Retry-After,
    /// Flow-Timer), the user agent neither panics nor loops: a bounded
    /// number of REGISTERs per answer, and time moving on.
    #[test]
    fn registration_survives_any_answer(
        answers in prop::collection::vec(
            (100u16..700, prop::option::of(unicode()), prop::option::of(unicode()), prop::option::of("[0-9]{0,12}"),
             prop::option::of("[0-9]{0,6}"), prop::option::of("[0-9]{0,6}"), any::<bool>()),
            1..12),
    ) {
        let mut c = Config::new("sip:alice@sipline.test");
        c.password = Some(Secret::new("pw"));
        let mut ua = UserAgent::new(c, [8; 32]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let mut now = 0u64;
                ua.transport_connected(Instant::from_millis(now));
        let mut queued: Option<Vec<u8>> = None;
        for (code, challenge, contact, min_expires, retry_after, flow_timer, stale) in answers {
            let next = queued.take().or_else(|| std::iter::from_fn(|| ua.poll_transmit()).find(|f| f.starts_with(b"REGISTER")));
            let Some(req) = next else {
                now += 600_000;
                ua.handle_timeout(Instant::from_millis(now));
                continue;
            };
            let m = Message::parse(&req).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut b = sipline_core::sip::response_to(&m, code, "Whatever", Some("srv"));
            if let Some(ch) = challenge {
                let stale = if stale { ", stale=true" } else { "" };
                b.header("WWW-Authenticate", &format!("Digest realm=\"r\", nonce=\"{ch}\", qop=auth{stale}, algorithm={ch}"));
                b.header("Proxy-Authenticate", &format!("Digest realm=\"{ch}\", nonce=\"n\", qop=auth"));
            }
            if let Some(ct) = contact {
                b.header("Contact", &format!("<sip:{ct}@h>;expires={ct}"));
            }
            if let Some(v) = min_expires { b.header("Min-Expires", &v); }
            if let Some(v) = retry_after { b.header("Retry-After", &v); }
            if let Some(v) = flow_timer { b.header("Flow-Timer", &v); }
            let _ = ua.handle_message(Instant::from_millis(now), &b.finish(None, b""));
                        let mut burst: Vec<Vec<u8>> = std::iter::from_fn(|| ua.poll_transmit()).filter(|f| f.starts_with(b"REGISTER")).collect();
            prop_assert!(burst.len() <= 1, "{} REGISTERs in answer to one response", burst.len());
            queued = burst.pop();
            while ua.poll_event().is_some() {}
            now += 1_000;
            ua.handle_timeout(Instant::from_millis(now));
            if let Some(next) = ua.poll_timeout() {
                prop_assert!(next.as_millis() >= now, "a deadline in the past would spin the shell");
            }
        }
    }
}
