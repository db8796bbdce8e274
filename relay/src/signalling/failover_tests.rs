//! The proxy in front of several PBXs: a new request goes on to the next PBX
//! when its own stays silent, is unreachable or refuses it with an early
//! `503`; requests inside a dialog, and requests a PBX has answered, never
//! move; the health probes.

use sipline_core::sip::HeaderName;

use super::hangup::Caller;
use super::test_support::*;
use super::*;

const A: &str = "10.0.0.5:5060";
const B: &str = "10.0.0.6:5060";
const BROWSER: ConnId = ConnId(1);

/// A proxy in front of A, then B (A preferred), failing over after 2 s.
fn proxy(probe: Option<Duration>) -> Proxy {
    let mut cfg = ProxyConfig::new(vec![addr(A), addr(B)], addr(RELAY));
    cfg.ws_host = "relay.example".into();
    cfg.probe_interval = probe;
    let mut p = Proxy::new(cfg, FlowKey::new([9; 32]));
    p.ws_opened(t(0), BROWSER, LOCAL);
    p
}

fn outputs(p: &mut Proxy) -> Vec<Output> {
    std::iter::from_fn(|| p.poll_output()).collect()
}

fn only_udp(p: &mut Proxy) -> (SocketAddr, Vec<u8>) {
    match sent(p) {
        (udp, ws) if udp.len() == 1 && ws.is_empty() => udp.into_iter().next().expect("one"),
        other => panic!("expected one datagram, got {other:?}"),
    }
}

fn answer(request: &[u8], code: u16) -> Vec<u8> {
    let req = parse(request);
    response_to(&req, code, "Whatever", (code > 100).then_some("pbx")).finish(None, b"")
}

const REGISTER: &str = "REGISTER sip:sipline.test SIP/2.0\r\n\
Via: SIP/2.0/WSS abc.invalid;branch=z9hG4bKreg1\r\nMax-Forwards: 70\r\n\
To: <sip:alice@sipline.test>\r\nFrom: <sip:alice@sipline.test>;tag=f1\r\n\
Call-ID: reg-1\r\nCSeq: 1 REGISTER\r\n\
Contact: <sip:x7@abc.invalid;transport=ws;ob>;expires=600\r\nContent-Length: 0\r\n\r\n";

const INVITE: &str = "INVITE sip:bob@sipline.test SIP/2.0\r\n\
Via: SIP/2.0/WSS abc.invalid;branch=z9hG4bKinv1\r\nMax-Forwards: 70\r\n\
To: <sip:bob@sipline.test>\r\nFrom: <sip:alice@sipline.test>;tag=f2\r\n\
Call-ID: call-1\r\nCSeq: 1 INVITE\r\nContact: <sip:x7@abc.invalid;transport=ws;ob>\r\n\
Content-Length: 0\r\n\r\n";

/// Runs the proxy's timers from `from` to `to` in 100 ms steps, collecting
/// what it sends.
fn run(p: &mut Proxy, from: u64, to: u64) -> (Vec<(u64, SocketAddr)>, Vec<Vec<u8>>) {
    let (mut udp, mut ws) = (Vec::new(), Vec::new());
    for ms in (from..=to).step_by(100) {
        if p.poll_timeout().is_some_and(|d| d <= t(ms)) {
            p.handle_timeout(t(ms));
        }
        let (u, w) = sent(p);
        udp.extend(u.into_iter().map(|(a, _)| (ms, a)));
        ws.extend(w);
    }
    (udp, ws)
}

#[test]
fn a_new_request_a_silent_pbx_leaves_goes_to_the_next_at_the_failover_time() {
    let mut p = proxy(None);
    p.handle_ws(t(0), BROWSER, REGISTER.as_bytes());
    assert_eq!(only_udp(&mut p).0, addr(A));
    let (udp, ws) = run(&mut p, 100, 2_500);
    assert!(ws.is_empty(), "the browser waits: {ws:?}");
    // Retransmitted to A at T1 and 3 T1, then sent to B at 2 s, then to B
    // again at 2 s + T1.
    assert_eq!(
        udp,
        vec![
            (500, addr(A)),
            (1_500, addr(A)),
            (2_000, addr(B)),
            (2_500, addr(B))
        ]
    );
    let events = p.drain_events();
    assert!(
        events.contains(&AdminEvent::PbxDown {
            pbx: A.into(),
            reason: "no answer"
        }),
        "{events:?}"
    );
    // B's answer reaches the browser; a new request goes straight to B.
    let last = p
        .pending
        .values()
        .next()
        .expect("pending")
        .datagram()
        .to_vec();
    p.handle_pbx(t(2_600), addr(B), &answer(&last, 401));
    let (udp, ws) = sent(&mut p);
    assert!(udp.is_empty());
    assert_eq!(parse(&ws[0]).status(), Some(401));
    p.handle_ws(
        t(2_700),
        BROWSER,
        REGISTER.replace("CSeq: 1", "CSeq: 2").as_bytes(),
    );
    assert_eq!(only_udp(&mut p).0, addr(B), "A is down");
    let m = p.render_metrics();
    assert!(
        m.contains("sipline_pbx_failovers_total{reason=\"no_answer\"} 1"),
        "{m}"
    );
    assert!(m.contains("sipline_pbx_up{pbx=\"10.0.0.5:5060\"} 0"), "{m}");
    assert!(m.contains("sipline_pbx_up{pbx=\"10.0.0.6:5060\"} 1"), "{m}");
}

#[test]
fn an_unreachable_pbx_s_new_requests_go_to_the_next_at_once() {
    let mut p = proxy(None);
    p.handle_ws(t(0), BROWSER, REGISTER.as_bytes());
    let (_, first) = only_udp(&mut p);
    p.pbx_unreachable(t(5), addr(A));
    let (to, again) = only_udp(&mut p);
    assert_eq!(to, addr(B));
    assert_eq!(again, first, "the same request, the same branch");
    let m = p.render_metrics();
    assert!(
        m.contains("sipline_pbx_failovers_total{reason=\"unreachable\"} 1"),
        "{m}"
    );
    // With B unreachable too, nothing is left: 503 at once.
    p.pbx_unreachable(t(6), addr(B));
    let (udp, ws) = sent(&mut p);
    assert!(udp.is_empty(), "never back to A");
    assert_eq!(parse(&ws[0]).status(), Some(503));
}

#[test]
fn an_early_503_is_acknowledged_and_the_invite_goes_to_the_next_pbx() {
    let mut p = proxy(None);
    p.handle_ws(t(0), BROWSER, INVITE.as_bytes());
    let (udp, ws) = sent(&mut p);
    assert_eq!(parse(&ws[0]).status(), Some(100), "the relay's own Trying");
    let (to, invite) = udp.into_iter().next().expect("the INVITE");
    assert_eq!(to, addr(A));
    // The dialog the media table keeps for a call (the relay binary always
    // carries media; this proxy does not): its PBX follows the failover.
    let key = (BROWSER, "call-1".to_owned());
    let dialog = Dialog::from_invite(&parse(INVITE.as_bytes()), Caller::Browser, Some(addr(A)));
    p.dialogs.insert(key.clone(), dialog);
    p.handle_pbx(t(50), addr(A), &answer(&invite, 503));
    let (udp, ws) = sent(&mut p);
    assert!(ws.is_empty(), "the browser never sees A's 503: {ws:?}");
    let ack = udp
        .iter()
        .find(|(to, _)| *to == addr(A))
        .expect("an ACK to A");
    let ack = parse(&ack.1);
    assert_eq!(ack.method(), Some(Method::Ack));
    assert_eq!(ack.to().tag(), Some("pbx"), "the 503's To tag");
    assert_eq!(ack.via().branch(), parse(&invite).via().branch());
    let (_, again) = udp.iter().find(|(to, _)| *to == addr(B)).expect("to B");
    assert_eq!(parse(again).method(), Some(Method::Invite));
    // A 503 is an answer: A is not down, only busy.
    assert!(p.drain_events().iter().all(|e| e.name() != "pbx_down"));
    // A late answer from A is dropped; B's reaches the browser, and the
    // browser's CANCEL follows the INVITE to B.
    p.handle_pbx(t(60), addr(A), &answer(&invite, 180));
    assert!(outputs(&mut p).is_empty());
    assert!(
        p.render_metrics()
            .contains("sipline_sip_rejected_total{reason=\"left_pbx\"} 1")
    );
    p.handle_pbx(t(70), addr(B), &answer(again, 180));
    assert_eq!(parse(&sent(&mut p).1[0]).status(), Some(180));
    let cancel = INVITE
        .replace("INVITE sip:", "CANCEL sip:")
        .replace("CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    p.handle_ws(t(80), BROWSER, cancel.as_bytes());
    assert_eq!(only_udp(&mut p).0, addr(B));
    assert_eq!(p.dialogs[&key].pbx, Some(addr(B)));
}

#[test]
fn requests_inside_a_dialog_and_answered_requests_stay_with_their_pbx() {
    let mut p = proxy(None);
    // A BYE (a To tag: inside a dialog) stays with A however silent.
    let bye = "BYE sip:bob@sipline.test SIP/2.0\r\nVia: SIP/2.0/WSS abc.invalid;branch=z9hG4bKbye1\r\n\
Max-Forwards: 70\r\nFrom: <sip:alice@sipline.test>;tag=a\r\nTo: <sip:bob@sipline.test>;tag=b\r\n\
Call-ID: d1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
    p.handle_ws(t(0), BROWSER, bye.as_bytes());
    assert_eq!(only_udp(&mut p).0, addr(A));
    let (udp, _) = run(&mut p, 100, 10_000);
    assert!(udp.iter().all(|(_, to)| *to == addr(A)), "{udp:?}");
    // A REGISTER that A answered with 100 stays with A too.
    let mut p = proxy(None);
    p.handle_ws(t(0), BROWSER, REGISTER.as_bytes());
    let (_, register) = only_udp(&mut p);
    p.handle_pbx(t(10), addr(A), &answer(&register, 100));
    let (udp, _) = run(&mut p, 100, 10_000);
    assert!(udp.iter().all(|(_, to)| *to == addr(A)), "{udp:?}");
}

#[test]
fn one_pbx_alone_keeps_today_s_timers() {
    let mut cfg = ProxyConfig::new(vec![addr(A)], addr(RELAY));
    cfg.ws_host = "relay.example".into();
    let mut p = Proxy::new(cfg, FlowKey::new([9; 32]));
    p.ws_opened(t(0), BROWSER, LOCAL);
    p.handle_ws(t(0), BROWSER, REGISTER.as_bytes());
    only_udp(&mut p);
    let (udp, ws) = run(&mut p, 100, 3_000);
    assert_eq!(
        udp,
        vec![(500, addr(A)), (1_500, addr(A))],
        "no failover, no probe"
    );
    assert!(ws.is_empty());
    assert!(
        p.drain_events()
            .iter()
            .all(|e| !e.name().starts_with("pbx_")),
        "not taken down by 2 s of silence"
    );
}

#[test]
fn probes_take_a_silent_pbx_down_and_bring_it_back_when_it_answers() {
    let mut p = proxy(Some(Duration::from_secs(5)));
    assert_eq!(p.poll_timeout(), Some(t(0)));
    p.handle_timeout(t(0));
    let (udp, ws) = sent(&mut p);
    assert!(ws.is_empty());
    let to: Vec<SocketAddr> = udp.iter().map(|(to, _)| *to).collect();
    assert_eq!(to, vec![addr(A), addr(B)]);
    let probe = parse(&udp[1].1);
    assert_eq!(probe.method(), Some(Method::Options));
    assert_eq!(probe.header(HeaderName::MaxForwards), Some("70"));
    // B answers (its answer goes nowhere else); A stays silent.
    p.handle_pbx(t(20), addr(B), &answer(&udp[1].1, 200));
    assert!(outputs(&mut p).is_empty());
    run(&mut p, 100, 2_000);
    assert!(p.drain_events().contains(&AdminEvent::PbxDown {
        pbx: A.into(),
        reason: "no answer"
    }));
    p.handle_ws(t(2_100), BROWSER, REGISTER.as_bytes());
    let (to, register) = only_udp(&mut p);
    assert_eq!(to, addr(B));
    p.handle_pbx(t(2_200), addr(B), &answer(&register, 200));
    assert_eq!(sent(&mut p).1.len(), 1, "B's 200 reaches the browser");
    // At the next round A answers, and new requests prefer it again.
    p.handle_timeout(t(5_000));
    let (udp, _) = sent(&mut p);
    let (_, to_a) = udp.iter().find(|(to, _)| *to == addr(A)).expect("A probed");
    p.handle_pbx(t(5_010), addr(A), &answer(to_a, 200));
    let events = p.drain_events();
    let pbx: Vec<_> = events
        .iter()
        .filter(|e| e.name().starts_with("pbx_"))
        .collect();
    assert_eq!(pbx, vec![&AdminEvent::PbxUp { pbx: A.into() }]);
    p.handle_ws(
        t(5_100),
        BROWSER,
        REGISTER
            .replace("CSeq: 1", "CSeq: 2")
            .replace("reg1", "reg2")
            .as_bytes(),
    );
    let (udp, _) = sent(&mut p);
    assert!(udp.iter().any(|(to, _)| *to == addr(A)), "{udp:?}");
}
