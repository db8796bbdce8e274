//! The user agent's registration behaviour, driven with explicit time
//! against a scripted registrar: no sockets, no clock.

mod common;

use common::{at, events};
use std::time::Duration;

use md5::{Digest, Md5};
use sipline_core::registration::RegistrationState;
use sipline_core::sip::{AuthParams, HeaderName, Message, Method, NameAddr, response_to};
use sipline_core::transaction::TimerConfig;
use sipline_core::{Config, Event, Instant, Secret, UserAgent};

const REALM: &str = "sipline.test";

fn config() -> Config {
    let mut c = Config::new("sip:alice@sipline.test");
    c.password = Some(Secret::new("alice-secret"));
    c.display_name = Some("Alice".into());
    c
}

fn ua(c: Config) -> UserAgent {
    UserAgent::new(c, [42; 32]).expect("valid config")
}

/// Every frame the UA wants sent right now.
fn sent(ua: &mut UserAgent) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| ua.poll_transmit()).collect()
}

/// The one REGISTER the UA just sent.
fn one(ua: &mut UserAgent) -> Vec<u8> {
    let mut frames = sent(ua);
    assert_eq!(
        frames.len(),
        1,
        "expected exactly one frame, got {frames:?}"
    );
    frames.remove(0)
}

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A registrar that knows one password and checks digests independently of
/// the code under test.
struct Registrar {
    password: &'static str,
    nonce: String,
    stale_next: bool,
    min_expires: Option<u32>,
    /// Says, like the sipline relay, that its media side is ICE-lite.
    ice_lite: bool,
}

impl Registrar {
    fn new() -> Self {
        Self {
            password: "alice-secret",
            nonce: "n0nce-1".into(),
            stale_next: false,
            min_expires: None,
            ice_lite: false,
        }
    }

    fn challenge(&self, req: &Message<'_>, stale: bool) -> Vec<u8> {
        let mut b = response_to(req, 401, "Unauthorized", Some("reg"));
        let mut v = format!(
            "Digest realm=\"{REALM}\", nonce=\"{}\", qop=\"auth\"",
            self.nonce
        );
        if stale {
            v.push_str(", stale=true");
        }
        b.header("WWW-Authenticate", &v);
        b.finish(None, b"")
    }

    /// Answers one REGISTER like a real registrar would.
    fn answer(&mut self, raw: &[u8]) -> Vec<u8> {
        let req = Message::parse(raw).expect("UA sends valid SIP");
        let Some(auth) = req.header(HeaderName::Authorization) else {
            return self.challenge(&req, false);
        };
        let p = AuthParams::parse(auth).expect("credentials parse");
        let get = |n: &str| p.get(n).map(|v| v.into_owned()).unwrap_or_default();
        if get("nonce") != self.nonce || self.stale_next {
            self.stale_next = false;
            self.nonce.push('x');
            return self.challenge(&req, true);
        }
        let ha1 = md5_hex(&format!("{}:{REALM}:{}", get("username"), self.password));
        let ha2 = md5_hex(&format!("REGISTER:{}", get("uri")));
        let want = md5_hex(&format!(
            "{ha1}:{}:{}:{}:auth:{ha2}",
            get("nonce"),
            get("nc"),
            get("cnonce")
        ));
        if get("response") != want {
            return response_to(&req, 403, "Forbidden", Some("reg")).finish(None, b"");
        }
        let expires = req.expires().expect("REGISTER carries Expires");
        if let Some(min) = self.min_expires.filter(|&m| expires != 0 && expires < m) {
            let mut b = response_to(&req, 423, "Interval Too Brief", Some("reg"));
            b.header("Min-Expires", &min.to_string());
            return b.finish(None, b"");
        }
        let mut b = response_to(&req, 200, "OK", Some("reg"));
        if expires > 0 {
            let contact = req.header(HeaderName::Contact).expect("Contact");
            let contact = contact.replace(
                &format!("expires={expires}"),
                &format!("expires={}", expires.min(3600)),
            );
            b.header(
                "Contact",
                &format!("<sip:other@10.0.0.9>;expires=30, {contact}"),
            );
            b.header("Require", "outbound");
        }
        if self.ice_lite {
            b.header("Sipline-Media", "ice-lite");
        }
        b.finish(None, b"")
    }
}

/// Drives the REGISTER exchange to its end; returns the REGISTERs seen.
fn exchange(ua: &mut UserAgent, reg: &mut Registrar, now: Instant) -> Vec<Vec<u8>> {
    let mut seen = Vec::new();
    while let Some(req) = ua.poll_transmit() {
        let resp = reg.answer(&req);
        seen.push(req);
        ua.handle_message(now, &resp)
            .expect("registrar response parses");
    }
    seen
}

#[test]
fn registers_with_digest_and_outbound_contact() {
    let mut ua = ua(config());
    let mut reg = Registrar::new();
    ua.transport_connected(at(0.0));
    let seen = exchange(&mut ua, &mut reg, at(0.1));
    assert_eq!(
        seen.len(),
        2,
        "REGISTER, 401, REGISTER with credentials, 200"
    );
    assert_eq!(
        events(&mut ua),
        vec![Event::Registering, Event::Registered { expires: 600 }]
    );
    assert_eq!(ua.registration_state(), RegistrationState::Registered);

    let first = Message::parse(&seen[0]).expect("parses");
    let second = Message::parse(&seen[1]).expect("parses");
    assert_eq!(first.request_uri(), Some("sip:sipline.test"));
    assert_eq!(first.via().transport, "WSS");
    assert!(first.via().host.ends_with(".invalid"));
    assert!(
        first
            .via()
            .branch()
            .is_some_and(|b| b.starts_with("z9hG4bK"))
    );
    assert_eq!(first.from().display_name, Some("Alice"));
    assert!(first.from().tag().is_some());
    assert_eq!(first.to().uri_text, "sip:alice@sipline.test");
    assert_eq!(first.expires(), Some(600));
    let contact = NameAddr::parse(first.header(HeaderName::Contact).expect("Contact"))
        .expect("Contact parses");
    assert!(contact.uri.host.ends_with(".invalid"));
    assert_eq!(contact.uri.transport(), Some("ws"));
    assert_eq!(contact.uri.params.get("ob"), Some(None));
    assert_eq!(contact.params.value("reg-id"), Some("1"));
    assert!(
        contact
            .params
            .value("+sip.instance")
            .is_some_and(|v| v.starts_with("\"<urn:uuid:"))
    );
    assert!(
        first
            .header_values(HeaderName::Supported)
            .any(|v| v == "outbound")
    );
    // RFC 3261 §10.2.4: same Call-ID, CSeq up by one, new branch.
    assert_eq!(second.call_id(), first.call_id());
    assert_eq!(second.cseq().seq, first.cseq().seq + 1);
    assert_ne!(second.via().branch(), first.via().branch());
}

#[test]
fn refreshes_at_ninety_percent_with_cached_credentials() {
    let mut ua = ua(config());
    let mut reg = Registrar::new();
    ua.transport_connected(at(0.0));
    exchange(&mut ua, &mut reg, at(0.0));
    events(&mut ua);
    // Refresh at 540 s of 600, not before; keep-alives come earlier.
    let mut now = at(0.0);
    while now < at(540.0) {
        now = ua.poll_timeout().expect("timer");
        ua.handle_timeout(now);
        let frames = sent(&mut ua);
        if now < at(540.0) {
            assert!(
                frames.iter().all(|f| f == b"\r\n\r\n"),
                "only keep-alives before 540 s"
            );
            ua.handle_message(now, b"\r\n").expect("pong");
        } else {
            assert_eq!(frames.len(), 1);
            let refresh = Message::parse(&frames[0]).expect("refresh parses");
            assert_eq!(refresh.method(), Some(Method::Register));
            let auth = refresh
                .header(HeaderName::Authorization)
                .expect("pre-emptive credentials");
            assert!(auth.contains("nc=00000002"), "{auth}");
            let resp = reg.answer(&frames[0]);
            ua.handle_message(now, &resp).expect("200");
        }
    }
    assert_eq!(now, at(540.0), "the refresh went out at 90 % of 600 s");
    assert_eq!(events(&mut ua), vec![Event::Registered { expires: 600 }]);
}

#[test]
fn wrong_password_fails_with_the_servers_403() {
    let mut c = config();
    c.password = Some(Secret::new("not-the-password"));
    let mut ua = ua(c);
    ua.transport_connected(at(0.0));
    exchange(&mut ua, &mut Registrar::new(), at(0.0));
    let evs = events(&mut ua);
    assert_eq!(
        evs.last(),
        Some(&Event::RegistrationFailed {
            code: 403,
            reason: "Forbidden".into(),
            retry_in: None
        })
    );
    assert_eq!(
        evs.last().map(|e| e.to_string()).as_deref(),
        Some("registration failed: 403 Forbidden")
    );
    assert_eq!(ua.registration_state(), RegistrationState::Failed);
    // No retry after a refusal: run the clock for an hour.
    while let Some(next) = ua.poll_timeout().filter(|t| *t < at(3600.0)) {
        ua.handle_timeout(next);
        for frame in sent(&mut ua) {
            assert_eq!(frame, b"\r\n\r\n", "only keep-alives after a refusal");
        }
    }
    // Nor after the transport comes back: the credentials are still bad.
    ua.transport_closed(at(3600.0));
    ua.transport_connected(at(3601.0));
    assert!(
        sent(&mut ua).is_empty(),
        "no REGISTER with refused credentials"
    );
}

#[test]
fn second_challenge_without_stale_fails_with_401() {
    let mut ua = ua(config());
    ua.transport_connected(at(0.0));
    let req = one(&mut ua);
    let r = Registrar::new();
    let m = Message::parse(&req).expect("parses");
    ua.handle_message(at(0.0), &r.challenge(&m, false))
        .expect("401");
    let req2 = one(&mut ua);
    let m2 = Message::parse(&req2).expect("parses");
    ua.handle_message(at(0.0), &r.challenge(&m2, false))
        .expect("401 again");
    assert!(sent(&mut ua).is_empty(), "no third attempt");
    assert!(matches!(
        events(&mut ua).last(),
        Some(Event::RegistrationFailed { code: 401, .. })
    ));
}

#[test]
fn stale_nonce_is_retried_transparently() {
    let mut ua = ua(config());
    let mut reg = Registrar::new();
    reg.stale_next = true;
    ua.transport_connected(at(0.0));
    let seen = exchange(&mut ua, &mut reg, at(0.0));
    assert_eq!(seen.len(), 3, "401, stale 401, 200");
    assert_eq!(
        events(&mut ua),
        vec![Event::Registering, Event::Registered { expires: 600 }]
    );
}

#[test]
fn interval_too_brief_is_raised_to_min_expires() {
    let mut c = config();
    c.register_expires = 30;
    let mut ua = ua(c);
    let mut reg = Registrar::new();
    reg.min_expires = Some(120);
    ua.transport_connected(at(0.0));
    let seen = exchange(&mut ua, &mut reg, at(0.0));
    let last = Message::parse(seen.last().expect("sent")).expect("parses");
    assert_eq!(last.expires(), Some(120));
    assert_eq!(
        events(&mut ua).last(),
        Some(&Event::Registered { expires: 120 })
    );
}

#[test]
fn dead_registrar_reported_at_timer_f_then_retried() {
    let mut ua = ua(config());
    ua.transport_connected(at(0.0));
    one(&mut ua);
    ua.handle_timeout(at(31.9));
    assert!(
        !events(&mut ua)
            .iter()
            .any(|e| matches!(e, Event::RegistrationFailed { .. }))
    );
    ua.handle_timeout(at(32.0));
    let evs = events(&mut ua);
    let Some(Event::RegistrationFailed {
        code: 408,
        retry_in: Some(retry),
        ..
    }) = evs.last()
    else {
        panic!("expected a 408 with a retry, got {evs:?}");
    };
    assert!(
        *retry >= Duration::from_millis(3750) && *retry <= Duration::from_secs(5),
        "{retry:?}"
    );
    let t = at(32.0) + *retry;
    ua.handle_timeout(t);
    let frames = sent(&mut ua);
    assert!(
        frames.iter().any(|f| f.starts_with(b"REGISTER ")),
        "retried"
    );
    assert!(events(&mut ua).contains(&Event::Registering));
}

#[test]
fn app_request_timeout_is_shorter_than_timer_f() {
    let mut c = config();
    c.timers = TimerConfig {
        request_timeout: Duration::from_secs(4),
        ..TimerConfig::default()
    };
    let mut ua = ua(c);
    ua.transport_connected(at(0.0));
    one(&mut ua);
    ua.handle_timeout(at(4.0));
    assert!(matches!(
        events(&mut ua).last(),
        Some(Event::RegistrationFailed { code: 408, .. })
    ));
}

#[test]
fn service_unavailable_honours_retry_after() {
    let mut ua = ua(config());
    ua.transport_connected(at(0.0));
    let req = one(&mut ua);
    let m = Message::parse(&req).expect("parses");
    let mut b = response_to(&m, 503, "Service Unavailable", Some("x"));
    b.header("Retry-After", "20");
    ua.handle_message(at(1.0), &b.finish(None, b""))
        .expect("503");
    assert_eq!(
        events(&mut ua).last(),
        Some(&Event::RegistrationFailed {
            code: 503,
            reason: "Service Unavailable".into(),
            retry_in: Some(Duration::from_secs(20))
        })
    );
}

#[test]
fn unregister_sends_expires_zero() {
    let mut ua = ua(config());
    let mut reg = Registrar::new();
    ua.transport_connected(at(0.0));
    exchange(&mut ua, &mut reg, at(0.0));
    events(&mut ua);
    ua.unregister(at(5.0));
    let seen = exchange(&mut ua, &mut reg, at(5.0));
    let unreg = Message::parse(&seen[0]).expect("parses");
    assert_eq!(unreg.expires(), Some(0));
    assert!(
        unreg
            .header(HeaderName::Contact)
            .is_some_and(|c| c.ends_with("expires=0"))
    );
    assert_eq!(
        events(&mut ua),
        vec![
            Event::Unregistering,
            Event::Unregistered {
                code: None,
                reason: "OK".into()
            }
        ]
    );
    assert_eq!(ua.registration_state(), RegistrationState::Unregistered);
}

#[test]
fn guest_mode_sends_no_register() {
    let mut c = config();
    c.register = false;
    let mut ua = ua(c);
    ua.transport_connected(at(0.0));
    assert!(sent(&mut ua).is_empty());
    assert!(events(&mut ua).is_empty());
}

#[test]
fn keepalive_pings_and_detects_a_dead_flow() {
    let mut ua = ua(config());
    let mut reg = Registrar::new();
    ua.transport_connected(at(0.0));
    exchange(&mut ua, &mut reg, at(0.0)); // 200 says Require: outbound
    events(&mut ua);
    let ping_at = ua.poll_timeout().expect("ping scheduled");
    assert!(ping_at >= at(24.0) && ping_at <= at(30.0), "{ping_at:?}");
    ua.handle_timeout(ping_at);
    assert_eq!(sent(&mut ua), vec![b"\r\n\r\n".to_vec()]);
    // No pong within 10 s: the flow is dead.
    ua.handle_timeout(ping_at + Duration::from_secs(10));
    assert_eq!(events(&mut ua), vec![Event::KeepAliveTimeout]);
    // A server ping is answered with a pong.
    ua.handle_message(at(60.0), b"\r\n\r\n").expect("ping");
    assert_eq!(sent(&mut ua), vec![b"\r\n".to_vec()]);
}

#[test]
fn transport_loss_reports_and_reconnect_reregisters() {
    let mut ua = ua(config());
    let mut reg = Registrar::new();
    ua.transport_connected(at(0.0));
    exchange(&mut ua, &mut reg, at(0.0));
    events(&mut ua);
    ua.transport_closed(at(10.0));
    assert_eq!(
        events(&mut ua),
        vec![Event::Unregistered {
            code: None,
            reason: "transport closed".into()
        }]
    );
    assert_eq!(ua.poll_timeout(), None, "nothing to do without a transport");
    ua.transport_connected(at(12.0));
    exchange(&mut ua, &mut reg, at(12.0));
    assert_eq!(
        events(&mut ua),
        vec![Event::Registering, Event::Registered { expires: 600 }]
    );
}

#[test]
fn answers_options_refuses_what_it_cannot_do_and_rejects_garbage() {
    let mut ua = ua(config());
    ua.transport_connected(at(0.0));
    sent(&mut ua);
    let options = "OPTIONS sip:x@y.invalid;transport=ws SIP/2.0\r\nVia: SIP/2.0/WS 127.0.0.1:5060;branch=z9hG4bKo1\r\n\
From: <sip:k@sipline.test>;tag=k1\r\nTo: <sip:alice@sipline.test>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    ua.handle_message(at(1.0), options.as_bytes())
        .expect("OPTIONS");
    let resp = sent(&mut ua);
    let r = Message::parse(&resp[0]).expect("response parses");
    assert_eq!((r.status(), r.to().tag().is_some()), (Some(200), true));
    let info = options
        .replace("OPTIONS", "INFO")
        .replace("z9hG4bKo1", "z9hG4bKo2");
    ua.handle_message(at(1.0), info.as_bytes()).expect("INFO");
    let resp = sent(&mut ua);
    assert_eq!(
        Message::parse(&resp[0]).expect("parses").status(),
        Some(501)
    );
    assert!(ua.handle_message(at(1.0), b"\x16\x03\x01garbage").is_err());
    assert!(
        ua.handle_message(at(1.0), b"SIP/2.0 200 OK\r\n\r\n")
            .is_err()
    );
    assert!(sent(&mut ua).is_empty(), "nothing answered to garbage");
}

#[test]
fn bad_configs_are_refused() {
    for uri in ["alice@sipline.test", "sip:sipline.test", "tel:+123", ""] {
        assert!(UserAgent::new(Config::new(uri), [0; 32]).is_err(), "{uri}");
    }
    let mut c = config();
    c.register_expires = 0;
    assert!(UserAgent::new(c, [0; 32]).is_err());
    assert_eq!(format!("{:?}", Secret::new("hunter2")), "Secret(***)");
}

#[test]
fn challenged_unregister_is_authenticated_not_abandoned() {
    let mut ua = ua(config());
    let mut reg = Registrar::new();
    ua.transport_connected(at(0.0));
    exchange(&mut ua, &mut reg, at(0.0));
    events(&mut ua);
    // By now the nonce has expired: the de-REGISTER meets a stale challenge.
    reg.stale_next = true;
    ua.unregister(at(400.0));
    let seen = exchange(&mut ua, &mut reg, at(400.0));
    assert_eq!(
        seen.len(),
        2,
        "de-REGISTER, stale 401, de-REGISTER with the new nonce, 200"
    );
    assert!(
        seen.iter()
            .all(|r| Message::parse(r).ok().and_then(|m| m.expires()) == Some(0))
    );
    assert_eq!(
        events(&mut ua),
        vec![
            Event::Unregistering,
            Event::Unregistered {
                code: None,
                reason: "OK".into()
            }
        ]
    );
}

#[test]
fn endless_stale_challenges_are_cut_short() {
    let mut ua = ua(config());
    ua.transport_connected(at(0.0));
    let mut count = 0;
    while let Some(req) = ua.poll_transmit() {
        count += 1;
        assert!(count <= 3, "REGISTER loop");
        let m = Message::parse(&req).expect("parses");
        let stale = if m.header(HeaderName::Authorization).is_some() {
            ", stale=true"
        } else {
            ""
        };
        let mut b = response_to(&m, 401, "Unauthorized", Some("r"));
        b.header(
            "WWW-Authenticate",
            &format!("Digest realm=\"{REALM}\", nonce=\"n{count}\", qop=auth{stale}"),
        );
        ua.handle_message(at(0.0), &b.finish(None, b""))
            .expect("401");
    }
    assert_eq!(count, 3, "fresh, answered, one stale retry");
    assert!(matches!(
        events(&mut ua).last(),
        Some(Event::RegistrationFailed { code: 401, .. })
    ));
}

#[test]
fn proxy_407_then_registrar_401_are_both_answered() {
    let mut ua = ua(config());
    ua.transport_connected(at(0.0));
    let first = one(&mut ua);
    let m = Message::parse(&first).expect("parses");
    let mut b = response_to(&m, 407, "Proxy Authentication Required", Some("p"));
    b.header(
        "Proxy-Authenticate",
        "Digest realm=\"edge\", nonce=\"p1\", qop=auth",
    );
    ua.handle_message(at(0.0), &b.finish(None, b""))
        .expect("407");
    let second = one(&mut ua);
    let m = Message::parse(&second).expect("parses");
    assert!(m.header(HeaderName::ProxyAuthorization).is_some());
    let mut b = response_to(&m, 401, "Unauthorized", Some("r"));
    b.header(
        "WWW-Authenticate",
        &format!("Digest realm=\"{REALM}\", nonce=\"r1\", qop=auth"),
    );
    ua.handle_message(at(0.0), &b.finish(None, b""))
        .expect("401");
    let third = one(&mut ua);
    let m = Message::parse(&third).expect("parses");
    assert!(
        m.header(HeaderName::ProxyAuthorization)
            .is_some_and(|v| v.contains("realm=\"edge\""))
    );
    assert!(
        m.header(HeaderName::Authorization)
            .is_some_and(|v| v.contains("realm=\"sipline.test\""))
    );
    let ok = response_to(&m, 200, "OK", Some("r")).finish(None, b"");
    ua.handle_message(at(0.0), &ok).expect("200");
    assert_eq!(
        events(&mut ua).last(),
        Some(&Event::Registered { expires: 600 })
    );
}

#[test]
fn via_names_the_websocket_flavour_and_display_names_are_escaped() {
    let mut c = config();
    c.secure = false;
    c.display_name = Some("Alice \"Al\" \\ Smith".into());
    let mut ua = ua(c);
    ua.transport_connected(at(0.0));
    let req = one(&mut ua);
    let m = Message::parse(&req).expect("parses");
    assert_eq!(m.via().transport, "WS", "plain ws:// is WS (RFC 7118 §5.1)");
    assert_eq!(m.from().display_name, Some("Alice \\\"Al\\\" \\\\ Smith"));
}

#[test]
fn misrouted_responses_are_dropped() {
    let mut ua = ua(config());
    ua.transport_connected(at(0.0));
    let req = one(&mut ua);
    let m = Message::parse(&req).expect("parses");
    let mut b = response_to(&m, 200, "OK", Some("x"));
    b.header("Via", "SIP/2.0/UDP extra.example;branch=z9hG4bKx");
    assert!(
        ua.handle_message(at(0.0), &b.finish(None, b"")).is_err(),
        "two Vias: RFC 3261 §8.1.3.3"
    );
    assert!(events(&mut ua).iter().all(|e| *e == Event::Registering));
}

#[test]
fn config_fields_cannot_inject_headers() {
    let mut c = config();
    c.display_name = Some("Alice\r\nX-Injected: 1".into());
    assert!(UserAgent::new(c, [0; 32]).is_err());
    let mut c = config();
    c.user_agent = "x\r\ny".into();
    assert!(UserAgent::new(c, [0; 32]).is_err());
    let mut c = config();
    c.instance_id = Some("<urn:uuid:1>".into());
    assert!(UserAgent::new(c, [0; 32]).is_err());
    let mut c = config();
    c.keepalive_interval = Some(Duration::ZERO);
    assert!(UserAgent::new(c, [0; 32]).is_err());
}

#[test]
fn only_an_ice_lite_far_side_spares_the_gathering_wait() {
    for ice_lite in [false, true] {
        let mut ua = ua(config());
        let mut reg = Registrar::new();
        reg.ice_lite = ice_lite;
        ua.transport_connected(at(0.0));
        assert!(!ua.peer_ice_lite(), "not before the registrar says so");
        exchange(&mut ua, &mut reg, at(0.0));
        assert_eq!(ua.peer_ice_lite(), ice_lite);
        // Our offers go at once when the relay said so, unless the app
        // says otherwise either way.
        assert_eq!(ua.candidates_optional(None, None), ice_lite);
        assert!(ua.candidates_optional(None, Some(true)));
        assert!(!ua.candidates_optional(None, Some(false)));
        // An answer goes at once exactly when the offer is an ICE-lite
        // agent's: a full-ICE offerer needs our candidates, whatever the
        // relay or the app said.
        let full = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n\
a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host\r\n";
        let lite = full.replace("t=0 0\r\n", "t=0 0\r\na=ice-lite\r\n");
        let call = sipline_core::CallId(1);
        for app in [None, Some(true), Some(false)] {
            assert!(!ua.candidates_optional(Some((call, full)), app));
            assert!(ua.candidates_optional(Some((call, &lite)), app));
        }
    }
}
