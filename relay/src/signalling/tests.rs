//! The proxy, driven with explicit time and canned messages.

use sipline_core::sip::{HeaderName, NameAddr};

use super::contacts::FLOW_PARAM;
use super::from_browser::MAX_PENDING_PER_CONN;
use super::limits::RateLimit;
use super::test_support::*;
use super::*;

const PBX: &str = "10.0.0.5:5060";

fn proxy() -> Proxy {
    let mut cfg = ProxyConfig::new(vec![addr(PBX)], addr(RELAY));
    cfg.ws_host = "relay.example".into();
    let mut p = Proxy::new(cfg, FlowKey::new([9; 32]));
    p.ws_opened(t(0), ConnId(1), LOCAL);
    p
}

fn outputs(p: &mut Proxy) -> Vec<Output> {
    std::iter::from_fn(|| p.poll_output()).collect()
}

fn only_udp(p: &mut Proxy) -> (SocketAddr, Vec<u8>) {
    match outputs(p).as_slice() {
        [
            Output::Pbx {
                to,
                message: datagram,
                ..
            },
        ] => (*to, datagram.clone()),
        other => panic!("expected one datagram, got {other:?}"),
    }
}

fn only_ws(p: &mut Proxy) -> (ConnId, Vec<u8>) {
    match outputs(p).as_slice() {
        [Output::Ws { conn, frame }] => (*conn, frame.clone()),
        other => panic!("expected one frame, got {other:?}"),
    }
}

const REGISTER: &str = "REGISTER sip:sipline.test SIP/2.0\r\n\
Via: SIP/2.0/WSS abc.invalid;branch=z9hG4bKbrowser1\r\n\
Max-Forwards: 70\r\n\
To: <sip:alice@sipline.test>\r\n\
From: <sip:alice@sipline.test>;tag=f1\r\n\
Call-ID: reg-1\r\n\
CSeq: 1 REGISTER\r\n\
Contact: <sip:x7@abc.invalid;transport=ws;ob>;+sip.instance=\"<urn:uuid:1>\";reg-id=1;expires=600\r\n\
Expires: 600\r\n\
Content-Length: 0\r\n\r\n";

fn invite(to_host: &str) -> String {
    format!(
        "INVITE sip:bob@{to_host} SIP/2.0\r\n\
Via: SIP/2.0/WSS abc.invalid;branch=z9hG4bKinv1\r\n\
Max-Forwards: 70\r\n\
Route: <sip:evil.example;lr>\r\n\
To: <sip:bob@{to_host}>\r\n\
From: <sip:alice@sipline.test>;tag=f2\r\n\
Call-ID: call-1\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:x7@abc.invalid;transport=ws;ob>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n"
    )
}

#[test]
fn register_goes_to_the_pbx_with_our_via_and_a_flow_contact() {
    let mut p = proxy();
    p.handle_ws(t(0), ConnId(1), REGISTER.as_bytes());
    let (to, dgram) = only_udp(&mut p);
    assert_eq!(to, addr(PBX));
    let m = parse(&dgram);
    let vias: Vec<&str> = m.header_values(HeaderName::Via).collect();
    assert_eq!(vias.len(), 2);
    assert!(
        vias[0].starts_with("SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK"),
        "{}",
        vias[0]
    );
    assert!(vias[1].contains("abc.invalid"));
    assert_eq!(m.header(HeaderName::MaxForwards), Some("69"));
    assert!(
        m.header(HeaderName::RecordRoute).is_none(),
        "REGISTER is never record-routed"
    );
    let contact = NameAddr::parse(m.header(HeaderName::Contact).expect("Contact")).expect("parses");
    assert_eq!(
        (contact.uri.host, contact.uri.port),
        ("192.0.2.10", Some(5070))
    );
    assert_eq!(contact.uri.user, Some("x7"));
    let token = contact.uri.params.value(FLOW_PARAM).expect("flow token");
    assert_eq!(p.key.verify(token), Ok(ConnId(1)));
    assert_eq!(
        contact.params.value("reg-id"),
        Some("1"),
        "header params kept"
    );
    assert_eq!(m.body(), b"");
}

#[test]
fn pbx_answer_returns_to_the_browser_with_its_own_contact_restored() {
    let mut p = proxy();
    p.handle_ws(t(0), ConnId(1), REGISTER.as_bytes());
    let (_, dgram) = only_udp(&mut p);
    let req = parse(&dgram);
    let rewritten = req.header(HeaderName::Contact).expect("Contact");
    let mut ok = response_to(&req, 200, "OK", Some("k1"));
    ok.header("Contact", rewritten);
    p.handle_pbx(t(10), addr(PBX), &ok.finish(None, b""));
    let (conn, frame) = only_ws(&mut p);
    assert_eq!(conn, ConnId(1));
    let m = parse(&frame);
    assert_eq!(m.status(), Some(200));
    assert_eq!(
        m.header_values(HeaderName::Via).count(),
        1,
        "our Via popped"
    );
    assert_eq!(m.via().branch(), Some("z9hG4bKbrowser1"));
    let c = NameAddr::parse(m.header(HeaderName::Contact).expect("Contact")).expect("parses");
    assert_eq!(c.uri_text, "sip:x7@abc.invalid;transport=ws;ob");
    assert_eq!(c.params.value("expires"), Some("600"));
    assert_eq!(p.poll_timeout(), None, "transaction done");
}

#[test]
fn invite_goes_to_the_pbx_whatever_its_uri_and_route_say() {
    let mut p = proxy();
    p.handle_ws(t(0), ConnId(1), invite("evil.example").as_bytes());
    let (to, dgram) = forwarded_invite_and_trying(&mut p);
    assert_eq!(to, addr(PBX), "never an open relay");
    let m = parse(&dgram);
    let rr: Vec<&str> = m.header_values(HeaderName::RecordRoute).collect();
    assert_eq!(rr.len(), 2, "double Record-Route (RFC 5658)");
    assert!(rr[0].starts_with("<sip:192.0.2.10:5070;lr;r2=on>"));
    assert!(rr[1].contains("@relay.example;transport=ws;lr;r2=on"));
    assert_eq!(
        m.header(HeaderName::Route),
        Some("<sip:evil.example;lr>"),
        "foreign routes are left for the PBX to judge"
    );
    assert_eq!(m.body(), b"v=0\n");
    assert_eq!(m.header(HeaderName::ContentLength), Some("4"));
}

#[test]
fn requests_are_retransmitted_on_udp_and_time_out_with_408() {
    let mut p = proxy();
    p.handle_ws(t(0), ConnId(1), invite("sipline.test").as_bytes());
    let (_, first) = forwarded_invite_and_trying(&mut p);
    // Timer A: 500 ms, 1 s, 2 s…
    let mut sent_at = Vec::new();
    while let Some(at) = p.poll_timeout() {
        p.handle_timeout(at);
        for o in outputs(&mut p) {
            match o {
                Output::Pbx {
                    message: datagram, ..
                } => {
                    assert_eq!(datagram, first);
                    sent_at.push(at.as_millis());
                }
                Output::Ws { frame, .. } => {
                    let m = parse(&frame);
                    assert_eq!((m.status(), m.reason()), (Some(408), "Request Timeout"));
                    assert_eq!(at, t(32_000), "Timer B = 64*T1");
                    assert_eq!(sent_at, [500, 1_500, 3_500, 7_500, 15_500, 31_500]);
                    return;
                }
                other => panic!("no media without a media table: {other:?}"),
            }
        }
    }
    panic!("no 408");
}

/// The INVITE forwarded to the PBX, and the relay's own `100 Trying` to
/// the browser (RFC 3261 §16.2).
fn forwarded_invite_and_trying(p: &mut Proxy) -> (SocketAddr, Vec<u8>) {
    match outputs(p).as_slice() {
        [
            Output::Pbx {
                to,
                message: datagram,
                ..
            },
            Output::Ws { frame, .. },
        ] => {
            let trying = parse(frame);
            assert_eq!((trying.status(), trying.reason()), (Some(100), "Trying"));
            assert_eq!(trying.via().branch(), Some("z9hG4bKinv1"));
            assert!(trying.to().tag().is_none(), "a 100 makes no dialog");
            (*to, datagram.clone())
        }
        other => panic!("expected the INVITE and a 100, got {other:?}"),
    }
}

#[test]
fn provisional_answer_stops_invite_retransmissions() {
    let mut p = proxy();
    p.handle_ws(t(0), ConnId(1), invite("sipline.test").as_bytes());
    let (_, dgram) = forwarded_invite_and_trying(&mut p);
    let req = parse(&dgram);
    p.handle_pbx(
        t(100),
        addr(PBX),
        &response_to(&req, 100, "Trying", None).finish(None, b""),
    );
    assert!(
        outputs(&mut p).is_empty(),
        "the PBX's 100 is hop by hop: the browser had the relay's"
    );
    p.handle_pbx(
        t(200),
        addr(PBX),
        &response_to(&req, 180, "Ringing", Some("b1")).finish(None, b""),
    );
    let (_, frame) = only_ws(&mut p);
    assert_eq!(parse(&frame).status(), Some(180));
    // No retransmission is due any more: the only timer left is the call
    // tracker's once-a-minute sweep.
    assert!(
        p.poll_timeout().is_none_or(|d| d >= t(60_000)),
        "{:?}",
        p.poll_timeout()
    );
}

#[test]
fn unreachable_pbx_gives_503_at_once() {
    let mut p = proxy();
    p.handle_ws(t(0), ConnId(1), REGISTER.as_bytes());
    only_udp(&mut p);
    p.pbx_unreachable(t(5), addr(PBX));
    let (_, frame) = only_ws(&mut p);
    assert_eq!(parse(&frame).status(), Some(503));
}

#[test]
fn pbx_request_reaches_the_right_browser_by_flow_token() {
    let mut p = proxy();
    p.ws_opened(t(0), ConnId(2), LOCAL);
    p.handle_ws(t(0), ConnId(1), REGISTER.as_bytes());
    let (_, dgram) = only_udp(&mut p);
    let contact =
        NameAddr::parse(parse(&dgram).header(HeaderName::Contact).expect("c")).expect("na");
    let target = contact.uri_text.to_owned();
    let options = format!(
        "OPTIONS {target} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKpbx1\r\nMax-Forwards: 70\r\n\
From: <sip:pbx@sipline.test>;tag=p1\r\nTo: <sip:alice@sipline.test>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    p.handle_pbx(t(1), addr(PBX), options.as_bytes());
    let (conn, frame) = only_ws(&mut p);
    assert_eq!(conn, ConnId(1));
    let m = parse(&frame);
    assert_eq!(
        m.request_uri(),
        Some("sip:x7@abc.invalid;transport=ws;ob"),
        "Request-URI restored"
    );
    assert!(m.via().host == "relay.example" && m.via().transport == "WSS");
    assert_eq!(m.header(HeaderName::MaxForwards), Some("69"));
    // A PBX that sends no Max-Forwards still gets one added (§16.6).
    p.handle_pbx(
        t(1),
        addr(PBX),
        options
            .replace("Max-Forwards: 70\r\n", "")
            .replace("pbx1", "pbx2")
            .as_bytes(),
    );
    let (_, frame) = only_ws(&mut p);
    assert_eq!(parse(&frame).header(HeaderName::MaxForwards), Some("69"));
    // The browser answers; the answer goes back to the PBX only.
    let ok = response_to(&m, 200, "OK", Some("b1")).finish(None, b"");
    p.handle_ws(t(2), ConnId(1), &ok);
    let (to, back) = only_udp(&mut p);
    assert_eq!(to, addr(PBX));
    assert_eq!(parse(&back).via().branch(), Some("z9hG4bKpbx1"));
}

#[test]
fn forged_or_stale_tokens_get_430_and_strangers_are_ignored() {
    let mut p = proxy();
    let options = |token: &str| {
        format!(
            "OPTIONS sip:x@192.0.2.10:5070;sl-flow={token} SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKf\r\n\
From: <sip:pbx@sipline.test>;tag=p1\r\nTo: <sip:x@sipline.test>\r\nCall-ID: f1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
    };
    // A token of an earlier run (another key): its flow is gone, and it
    // is counted so, not as forged.
    let earlier_run = FlowKey::new([1; 32]).token(ConnId(1));
    p.handle_pbx(t(0), addr(PBX), options(&earlier_run).as_bytes());
    let (to, resp) = only_udp(&mut p);
    assert_eq!((to, parse(&resp).status()), (addr(PBX), Some(430)));
    assert_eq!(p.metrics.rejected(Reject::FlowGone), 1);
    assert_eq!(p.metrics.rejected(Reject::FlowForged), 0);
    // Under this relay's key with a signature that does not match: forged.
    let mut forged = p.token(ConnId(1)).into_bytes();
    let last = forged.len() - 1;
    forged[last] = if forged[last] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).expect("hex");
    p.handle_pbx(t(0), addr(PBX), options(&forged).as_bytes());
    let (to, resp) = only_udp(&mut p);
    assert_eq!((to, parse(&resp).status()), (addr(PBX), Some(430)));
    assert_eq!(p.metrics.rejected(Reject::FlowForged), 1);
    let gone = p.token(ConnId(7));
    p.handle_pbx(t(0), addr(PBX), options(&gone).as_bytes());
    let (_, resp) = only_udp(&mut p);
    assert_eq!(parse(&resp).status(), Some(430));
    // Not from the PBX: not even answered.
    p.handle_pbx(t(0), addr("203.0.113.9:5060"), options(&gone).as_bytes());
    assert!(outputs(&mut p).is_empty());
    assert_eq!(p.metrics.rejected(Reject::NotPbx), 1);
}

#[test]
fn malformed_browser_message_gets_400_with_a_reason() {
    let mut p = proxy();
    let bad = REGISTER.replace("CSeq: 1 REGISTER", "CSeq: one REGISTER");
    p.handle_ws(t(0), ConnId(1), bad.as_bytes());
    let (_, frame) = only_ws(&mut p);
    let m = parse(&frame);
    assert_eq!((m.status(), m.reason()), (Some(400), "Malformed CSeq"));
    p.handle_ws(t(0), ConnId(1), b"\x16\x03\x01\x00garbage");
    assert!(
        outputs(&mut p).is_empty(),
        "binary garbage has nothing to answer"
    );
    assert_eq!(p.metrics.rejected(Reject::Malformed), 2);
}

#[test]
fn exhausted_max_forwards_is_483_and_keepalive_is_answered() {
    let mut p = proxy();
    p.handle_ws(
        t(0),
        ConnId(1),
        REGISTER
            .replace("Max-Forwards: 70", "Max-Forwards: 0")
            .as_bytes(),
    );
    assert_eq!(parse(&only_ws(&mut p).1).status(), Some(483));
    p.handle_ws(t(0), ConnId(1), b"\r\n\r\n");
    assert_eq!(only_ws(&mut p).1, b"\r\n");
}

#[test]
fn closed_connection_drops_its_transactions() {
    let mut p = proxy();
    p.handle_ws(t(0), ConnId(1), REGISTER.as_bytes());
    only_udp(&mut p);
    p.ws_closed(ConnId(1));
    assert_eq!(p.poll_timeout(), None);
    assert_eq!(p.connections(), 0);
}

#[test]
fn a_chatty_connection_gets_503_with_retry_after() {
    let mut cfg = ProxyConfig::new(vec![addr(PBX)], addr(RELAY));
    cfg.rate = RateLimit {
        per_second: 20,
        burst: 50,
    };
    let mut p = Proxy::new(cfg, FlowKey::new([9; 32]));
    p.ws_opened(t(0), ConnId(1), LOCAL);
    let mut answered = Vec::new();
    for i in 0..150 {
        let msg = REGISTER.replace("z9hG4bKbrowser1", &format!("z9hG4bKb{i}"));
        p.handle_ws(t(0), ConnId(1), msg.as_bytes());
        answered.extend(outputs(&mut p));
    }
    let refused: Vec<_> = answered
        .iter()
        .filter_map(|o| match o {
            Output::Ws { frame, .. } => Some(frame.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(
        refused.len(),
        100,
        "a burst of 50 forwarded, the rest refused"
    );
    let m = parse(&refused[0]);
    assert_eq!(
        (m.status(), m.header(HeaderName::RetryAfter)),
        (Some(503), Some("1"))
    );
    assert_eq!(p.metrics.rejected(Reject::RateLimited), 100);
}

#[test]
fn connections_per_address_are_capped() {
    let mut p = proxy();
    let ip: IpAddr = "198.51.100.7".parse().expect("ip");
    let max = p.config().max_connections_per_ip;
    // Handshakes in parallel: each admission holds a slot before it opens.
    for _ in 0..max {
        assert!(p.admit(t(0), ip));
    }
    assert!(
        !p.admit(t(0), ip),
        "no more than the limit, even before any opened"
    );
    for i in 0..max {
        p.ws_opened(t(1), ConnId(100 + i as u64), ip);
    }
    assert!(!p.admit(t(2), ip));
    assert!(p.admit(t(2), LOCAL), "other addresses are not affected");
    p.ws_closed(ConnId(100));
    assert!(p.admit(t(3), ip));
    // A handshake that never completes frees its slot after ten seconds.
    assert!(!p.admit(t(4), ip));
    assert!(p.admit(t(10_004), ip));
}

#[test]
fn one_connection_cannot_fill_the_pending_table() {
    let mut p = proxy();
    let mut overloaded = 0;
    for i in 0..80 {
        let msg = REGISTER.replace("z9hG4bKbrowser1", &format!("z9hG4bKp{i}"));
        p.handle_ws(t(0), ConnId(1), msg.as_bytes());
        for o in outputs(&mut p) {
            if let Output::Ws { frame, .. } = o {
                let m = parse(&frame);
                overloaded += usize::from(m.status() == Some(503));
            }
        }
    }
    assert_eq!(overloaded, 80 - MAX_PENDING_PER_CONN);
    // Another browser is not affected.
    p.ws_opened(t(0), ConnId(2), LOCAL);
    p.handle_ws(t(0), ConnId(2), REGISTER.as_bytes());
    assert!(matches!(outputs(&mut p).as_slice(), [Output::Pbx { .. }]));
}

#[test]
fn browser_contacts_always_point_at_the_relay_and_asserted_identity_is_stripped() {
    let mut p = proxy();
    let msg = REGISTER
        .replace(
            "<sip:x7@abc.invalid;transport=ws;ob>",
            "<sip:x7@198.51.100.7:5060>",
        )
        .replace(
            "Expires: 600",
            "Expires: 600\r\nP-Asserted-Identity: <sip:ceo@sipline.test>",
        );
    p.handle_ws(t(0), ConnId(1), msg.as_bytes());
    let (_, dgram) = only_udp(&mut p);
    let m = parse(&dgram);
    let c = NameAddr::parse(m.header(HeaderName::Contact).expect("Contact")).expect("parses");
    assert_eq!(
        (c.uri.host, c.uri.port),
        ("192.0.2.10", Some(5070)),
        "never the browser's chosen host"
    );
    assert!(m.header(HeaderName::Other("P-Asserted-Identity")).is_none());
    let bad = REGISTER.replace(
        "<sip:x7@abc.invalid;transport=ws;ob>",
        "<sip:x7@abc.invalid",
    );
    p.handle_ws(t(0), ConnId(1), bad.as_bytes());
    assert_eq!(parse(&only_ws(&mut p).1).status(), Some(400));
}

/// A proxy with the embedded PBX and three browsers.
fn embedded() -> Proxy {
    let mut cfg = ProxyConfig::new(vec![], addr(RELAY));
    cfg.ws_host = "relay.example".into();
    cfg.embedded = Some(pbx::EmbeddedPbx {
        domain: "sipline.test".into(),
        users: vec![
            ("alice".into(), pbx::Password("a".into())),
            ("bob".into(), pbx::Password("b".into())),
        ],
    });
    let mut p = Proxy::new(cfg, FlowKey::new([9; 32]));
    for c in 1..=3 {
        p.ws_opened(t(0), ConnId(c), LOCAL);
    }
    p
}

#[test]
fn a_leaked_flow_token_opens_no_door() {
    let mut p = embedded();
    let bob = p.token(ConnId(2));
    // Connection 3 knows bob's token (say, from an earlier call) and tries
    // to reach bob directly, as a new call or as someone else's dialog.
    let direct = format!(
        "INVITE sip:bob@sipline.test SIP/2.0\r\nVia: SIP/2.0/WS c.invalid;branch=z9hG4bKc1\r\nMax-Forwards: 70\r\n\
Route: <sip:{bob}@relay.example;transport=ws;lr;r2=on>\r\nFrom: <sip:alice@sipline.test>;tag=x\r\nTo: <sip:bob@sipline.test>\r\n\
Call-ID: leak-1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    p.handle_ws(t(0), ConnId(3), direct.as_bytes());
    assert_eq!(
        parse(&only_ws(&mut p).1).status(),
        Some(430),
        "not in a dialog"
    );
    let in_dialog = direct.replace(
        "To: <sip:bob@sipline.test>",
        "To: <sip:bob@sipline.test>;tag=b",
    );
    p.handle_ws(t(0), ConnId(3), in_dialog.as_bytes());
    assert_eq!(
        parse(&only_ws(&mut p).1).status(),
        Some(430),
        "not a party to it"
    );
    // A response with a Via naming bob as the sender, but not sealed for
    // connection 3, goes nowhere.
    let forged = format!(
        "SIP/2.0 200 OK\r\nVia: SIP/2.0/WSS relay.example;branch=z9hG4bKx;sl={bob};sr=0000000000000000\r\n\
From: <sip:bob@sipline.test>;tag=b\r\nTo: <sip:x@sipline.test>;tag=c\r\nCall-ID: leak-2\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    p.handle_ws(t(0), ConnId(3), forged.as_bytes());
    assert!(outputs(&mut p).is_empty());
}

#[test]
fn a_dialog_stays_with_its_pbx_and_cancel_follows_its_invite() {
    let second: SocketAddr = "10.0.0.6:5060".parse().expect("addr");
    let mut cfg = ProxyConfig::new(vec![addr(PBX), second], addr(RELAY));
    cfg.ws_host = "relay.example".into();
    let mut p = Proxy::new(cfg, FlowKey::new([9; 32]));
    p.ws_opened(t(0), ConnId(1), LOCAL);
    // An in-dialog BYE whose route set names the second PBX goes there.
    let bye = "BYE sip:bob@10.0.0.9 SIP/2.0\r\nVia: SIP/2.0/WSS abc.invalid;branch=z9hG4bKbye1\r\nMax-Forwards: 70\r\n\
Route: <sip:10.0.0.6:5060;lr>\r\nFrom: <sip:alice@sipline.test>;tag=a\r\nTo: <sip:bob@sipline.test>;tag=b\r\n\
Call-ID: d1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
    p.handle_ws(t(0), ConnId(1), bye.as_bytes());
    assert_eq!(only_udp(&mut p).0, second);
    // The first PBX goes down; an INVITE goes to the second; its CANCEL
    // follows it even once the first is back.
    p.pbx_unreachable(t(0), addr(PBX));
    p.handle_ws(t(1), ConnId(1), invite("sipline.test").as_bytes());
    assert_eq!(forwarded_invite_and_trying(&mut p).0, second);
    p.handle_pbx(t(2), addr(PBX), b"\r\n\r\n"); // the first PBX is heard from again
    let cancel = invite("sipline.test")
        .replace("INVITE sip:", "CANCEL sip:")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    p.handle_ws(t(3), ConnId(1), cancel.as_bytes());
    assert_eq!(
        only_udp(&mut p).0,
        second,
        "CANCEL goes where its INVITE went"
    );
}

#[test]
fn a_browser_that_reconnected_keeps_its_dialog_with_another_browser() {
    let mut p = embedded();
    let (alice, bob) = (p.token(ConnId(1)), p.token(ConnId(2)));
    // The route set a call between alice (1) and bob (2) was given.
    let request = |method: &str, from: &str, to: &str| {
        format!(
            "{method} sip:peer@x.invalid;transport=ws SIP/2.0\r\nVia: SIP/2.0/WS n.invalid;branch=z9hG4bK{method}{from}\r\n\
Max-Forwards: 70\r\nRoute: <sip:{bob}@relay.example;transport=ws;lr;r2=on>, <sip:{alice}@relay.example;transport=ws;lr;r2=on>\r\n\
From: <sip:{from}@sipline.test>;tag=f\r\nTo: <sip:{to}@sipline.test>;tag=t\r\nCall-ID: moved-1\r\nCSeq: 5 {method}\r\n\
Contact: <sip:n@n.invalid;transport=ws>\r\nContent-Length: 0\r\n\r\n"
        )
    };
    // Alice's WebSocket drops; she comes back on connection 4 and
    // re-INVITEs in the dialog: it reaches bob.
    p.ws_closed(ConnId(1));
    p.ws_opened(t(1), ConnId(4), LOCAL);
    p.handle_ws(
        t(1),
        ConnId(4),
        request("INVITE", "alice", "bob").as_bytes(),
    );
    let (to, frame) = only_ws(&mut p);
    assert_eq!(to, ConnId(2), "{}", String::from_utf8_lossy(&frame));
    // Bob's BYE, routed by the same set, reaches her new connection.
    p.handle_ws(t(2), ConnId(2), request("BYE", "bob", "alice").as_bytes());
    let (to, frame) = only_ws(&mut p);
    assert_eq!(to, ConnId(4), "{}", String::from_utf8_lossy(&frame));
    assert_eq!(p.metrics.calls_recovered(), 1);
    // With both browsers connected, a third connection that learnt the
    // route set takes nothing over.
    p.handle_ws(t(3), ConnId(3), request("BYE", "alice", "bob").as_bytes());
    assert_eq!(parse(&only_ws(&mut p).1).status(), Some(430));
}

#[test]
fn a_dialog_record_routed_by_a_sibling_relay_that_died_still_reaches_the_pbx() {
    let mut p = proxy();
    // The route set alice's call got through another relay of the same
    // service (same WebSocket host, its own SIP address and flow key),
    // then Kamailio's entry; that relay died and she reconnected here.
    let sibling = FlowKey::new([4; 32]).token(ConnId(77));
    let bye = format!(
        "BYE sip:bob@10.0.0.9:5090 SIP/2.0\r\nVia: SIP/2.0/WSS abc.invalid;branch=z9hG4bKbye9\r\n\
Max-Forwards: 70\r\nRoute: <sip:{sibling}@relay.example;transport=ws;lr;r2=on>, <sip:192.0.2.11:5070;lr;r2=on>\r\n\
Route: <sip:10.0.0.5:5060;lr>\r\nFrom: <sip:alice@sipline.test>;tag=a\r\nTo: <sip:bob@sipline.test>;tag=b\r\n\
Call-ID: orphan-1\r\nCSeq: 3 BYE\r\nContent-Length: 0\r\n\r\n"
    );
    p.handle_ws(t(0), ConnId(1), bye.as_bytes());
    let (to, dgram) = only_udp(&mut p);
    assert_eq!(to, addr(PBX), "to the PBX, never to the dead relay");
    let m = parse(&dgram);
    let routes: Vec<&str> = m.header_values(HeaderName::Route).collect();
    assert_eq!(
        routes,
        ["<sip:10.0.0.5:5060;lr>"],
        "the dead relay's pair popped"
    );
    assert_eq!(m.method(), Some(Method::Bye));
}
