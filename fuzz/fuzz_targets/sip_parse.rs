//! The SIP parser and every value parser behind it, on raw bytes.
//!
//! Oracles, beyond "no panic":
//! - a parsed message is consistent: its body and header values lie in the
//!   input, Content-Length is the body's length, a request's CSeq method is
//!   its own, Call-ID has no whitespace, status codes are 100–699;
//! - tighter [`Limits`] only ever refuse more;
//! - a known header name spelled canonically resolves to itself;
//! - the response a user agent or the relay writes to a parsed request
//!   (`response_to`) parses, with the request's Call-ID and CSeq and the
//!   To tag given;
//! - a digest challenge answered by the client's credentials verifies on
//!   the server side, with the same password;
//! - SDP (the raw input, and a parsed message's body) written back by
//!   `Display` parses to the same body.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sipline_core::Secret;
use sipline_core::auth::{AuthRound, Challenge, ChallengeKind, DigestClient, RequestInfo, verify};
use sipline_core::rand::Rng;
use sipline_core::sdp::Sdp;
use sipline_core::sip::{
    AuthParams, CSeq, HeaderName, Limits, Message, Method, NameAddr, Uri, Via, response_to,
    split_commas, split_params, unquote,
};

/// Every header name the parser knows, to look each one up.
const KNOWN: [HeaderName<'static>; 30] = [
    HeaderName::Via,
    HeaderName::From,
    HeaderName::To,
    HeaderName::CallId,
    HeaderName::CSeq,
    HeaderName::Contact,
    HeaderName::MaxForwards,
    HeaderName::Expires,
    HeaderName::MinExpires,
    HeaderName::ContentType,
    HeaderName::ContentLength,
    HeaderName::ContentEncoding,
    HeaderName::WwwAuthenticate,
    HeaderName::ProxyAuthenticate,
    HeaderName::Authorization,
    HeaderName::ProxyAuthorization,
    HeaderName::Route,
    HeaderName::RecordRoute,
    HeaderName::Path,
    HeaderName::Supported,
    HeaderName::Require,
    HeaderName::Allow,
    HeaderName::UserAgent,
    HeaderName::Server,
    HeaderName::RetryAfter,
    HeaderName::FlowTimer,
    HeaderName::Subject,
    HeaderName::Event,
    HeaderName::ReferTo,
    HeaderName::SessionExpires,
];

/// The tag `response_to` is asked to add.
const TAG: &str = "fz7";

/// Panics unless `part` lies inside `whole`.
fn assert_within(whole: &[u8], part: &[u8], what: &str) {
    let (w, p) = (whole.as_ptr() as usize, part.as_ptr() as usize);
    assert!(
        p >= w && p + part.len() <= w + whole.len(),
        "{what} is not a slice of the input"
    );
}

/// Every value parser on one value, and on each of its comma-separated
/// parts.
fn values(value: &str) {
    let one = |v: &str| {
        if let Some(na) = NameAddr::parse(v) {
            let _ = (na.tag(), na.uri.transport(), na.display_name);
            assert!(v.contains(na.uri_text), "the URI text comes from the value");
        }
        if let Some(via) = Via::parse(v) {
            let _ = (via.branch(), via.transport, via.host, via.port);
        }
        if let Some(uri) = Uri::parse(v) {
            let _ = (uri.transport(), uri.params.iter().count(), uri.rest);
        }
        let _ = CSeq::parse(v);
        let params = split_params(v);
        for (name, _) in params.iter() {
            let _ = (params.get(name), params.value(name));
        }
        let _ = unquote(v);
    };
    one(value);
    for part in split_commas(value) {
        assert!(!part.is_empty(), "split_commas drops empty values");
        one(part);
    }
    if let Some(auth) = AuthParams::parse(value) {
        for name in [
            "realm",
            "nonce",
            "qop",
            "algorithm",
            "opaque",
            "stale",
            "uri",
        ] {
            let _ = auth.get(name);
        }
    }
}

/// A challenge our client answers must verify on our server side.
fn digest_round_trip(kind: ChallengeKind, value: &str, msg: &Message<'_>) {
    let Some(challenge) = Challenge::parse(kind, value) else {
        return;
    };
    let (method, uri) = (msg.cseq().method, msg.request_uri().unwrap_or("sip:x"));
    let mut client = DigestClient::new("alice".into(), Secret::new("secret \"pw\""));
    assert!(
        client.on_challenges(std::slice::from_ref(&challenge), &mut AuthRound::default()),
        "a first challenge is answered"
    );
    let req = RequestInfo {
        method,
        uri,
        body: msg.body(),
    };
    for (_, credentials) in client.credentials(&req, &mut Rng::from_seed([1; 32])) {
        let params = AuthParams::parse(&credentials)
            .unwrap_or_else(|| panic!("our credentials parse: {credentials}"));
        assert!(
            verify(&params, method, "secret \"pw\"", msg.body()),
            "our server refuses our client's answer to {value:?}: {credentials}"
        );
    }
}

/// SDP written back by `Display` reads as the same body.
fn sdp_round_trip(body: &[u8]) {
    let Ok(sdp) = Sdp::parse(body) else {
        return;
    };
    for i in 0..sdp.media.len() {
        let m = &sdp.media[i];
        let _ = (sdp.direction(i), m.connection(), m.is_rejected());
        let _ = (m.payload_types().count(), m.rtpmaps().count());
        let _ = m.attribute("rtcp");
    }
    let _ = (sdp.connection(), sdp.attribute("group"));
    let text = sdp.to_string();
    match Sdp::parse(text.as_bytes()) {
        Ok(again) => assert_eq!(again, sdp, "SDP written back reads differently:\n{text}"),
        Err(e) => panic!("SDP written back does not parse ({e}):\n{text}"),
    }
}

fuzz_target!(|data: &[u8]| {
    sdp_round_trip(data);
    let tight = Limits {
        max_headers: 8,
        max_header_len: 64,
    };
    let strict = Message::parse_with(data, &tight);
    let Ok(msg) = Message::parse(data) else {
        assert!(
            strict.is_err(),
            "tighter limits accepted what defaults refuse"
        );
        return;
    };

    // The start line.
    assert_eq!(msg.is_request(), msg.method_name().is_some());
    assert_eq!(msg.is_request(), msg.request_uri().is_some());
    assert_eq!(msg.is_request(), msg.status().is_none());
    let _ = (msg.start_line(), msg.reason());
    if let Some(code) = msg.status() {
        assert!((100..=699).contains(&code), "status {code}");
    }
    if let Some(method) = msg.method_name() {
        assert_eq!(msg.cseq().method, method, "CSeq method");
        assert_eq!(
            msg.method().map(|m| m.as_str()),
            Method::from_name(method).map(|m| m.as_str())
        );
        assert!(msg.method().is_none_or(|m| msg.cseq().is(m)));
    }
    if let Some(uri) = msg.request_uri() {
        values(uri);
    }

    // The headers the parser vouches for.
    let call_id = msg.call_id();
    assert!(!call_id.is_empty() && !call_id.contains(char::is_whitespace));
    assert_eq!(msg.header(HeaderName::CallId), Some(call_id));
    let _ = (msg.from().tag(), msg.to().tag(), msg.via().branch());
    let _ = msg.expires();

    // The body.
    let body = msg.body();
    assert_within(data, body, "the body");
    if let Some(length) = msg.header(HeaderName::ContentLength) {
        assert_eq!(length.trim().parse::<usize>().ok(), Some(body.len()));
    }
    sdp_round_trip(body);

    // Every header, by itself and by name.
    for h in msg.headers() {
        assert_within(data, h.value.as_bytes(), "a header value");
        assert_eq!(h.value, h.value.trim_matches([' ', '\t', '\r', '\n']));
        assert!(h.name.matches(&h.name));
        assert!(
            msg.header(h.name).is_some(),
            "{} looked up",
            h.name.as_str()
        );
        let canonical = HeaderName::parse(h.name.as_str());
        assert!(canonical.matches(&h.name), "{} resolves", h.name.as_str());
        let _ = h.name.is_list();
        values(h.value);
        match h.name {
            HeaderName::WwwAuthenticate => digest_round_trip(ChallengeKind::Www, h.value, &msg),
            HeaderName::ProxyAuthenticate => digest_round_trip(ChallengeKind::Proxy, h.value, &msg),
            HeaderName::Authorization | HeaderName::ProxyAuthorization => {
                if let Some(creds) = AuthParams::parse(h.value) {
                    let _ = verify(&creds, msg.cseq().method, "secret", body);
                }
            }
            _ => {}
        }
    }
    for name in KNOWN {
        assert_eq!(HeaderName::parse(name.as_str()), name, "canonical spelling");
        let _ = msg.header_lines(name).count();
        for v in msg.header_values(name) {
            assert!(!v.is_empty());
        }
    }

    // What the stack answers a request with must read back.
    if msg.is_request() {
        let mut b = response_to(&msg, 200, "OK", Some(TAG));
        b.header("Server", "fuzz");
        let bytes = b.finish(None, b"");
        let resp = Message::parse(&bytes).unwrap_or_else(|e| {
            panic!(
                "our response to a request does not parse ({e}):\n{}",
                String::from_utf8_lossy(&bytes)
            )
        });
        assert_eq!(resp.call_id(), msg.call_id());
        assert_eq!(resp.cseq(), msg.cseq());
        let tag = msg.to().tag().unwrap_or(TAG);
        assert_eq!(resp.to().tag(), Some(tag), "the To tag");
    }

    // Tighter limits never accept what the defaults refuse; what they
    // accept reads the same.
    if let Ok(small) = strict {
        assert_eq!(small.headers(), msg.headers());
        assert_eq!(small.body(), msg.body());
    }
});
