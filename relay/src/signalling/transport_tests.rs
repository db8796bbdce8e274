//! The proxy toward PBXs over TCP and TLS: its Via, Record-Route and
//! Contact name the transport, nothing is retransmitted (Timer B/F and the
//! failover time still run), a request fails over only to a PBX on its own
//! transport, and a `sips:` request needs TLS.

use sipline_core::sip::{HeaderName, Via};

use super::test_support::*;
use super::*;

const TCP: &str = "10.0.0.5:5060";
const TLS: &str = "10.0.0.6:5061";
const UDP: &str = "10.0.0.7:5060";
const BROWSER: ConnId = ConnId(1);

/// A proxy in front of PBXs given as (address, transport), preferred in
/// that order.
fn proxy(pbxs: &[(&str, Transport)]) -> Proxy {
    let mut cfg = ProxyConfig::new(pbxs.iter().map(|(a, _)| addr(a)).collect(), addr(RELAY));
    for (target, (_, transport)) in cfg.pbx.iter_mut().zip(pbxs) {
        target.transport = *transport;
    }
    cfg.ws_host = "relay.example".into();
    let mut p = Proxy::new(cfg, FlowKey::new([9; 32]));
    p.ws_opened(t(0), BROWSER, LOCAL);
    p
}

fn invite(uri: &str) -> String {
    format!(
        "INVITE {uri} SIP/2.0\r\n\
Via: SIP/2.0/WSS abc.invalid;branch=z9hG4bKinv1\r\nMax-Forwards: 70\r\n\
To: <{uri}>\r\nFrom: <sip:alice@sipline.test>;tag=f2\r\n\
Call-ID: call-1\r\nCSeq: 1 INVITE\r\nContact: <sip:x7@abc.invalid;transport=ws;ob>\r\n\
Content-Length: 0\r\n\r\n"
    )
}

#[test]
fn a_tcp_or_tls_pbx_is_told_its_transport_and_to_call_back_on_the_connection() {
    for (pbx, transport, param) in [
        (TCP, Transport::Tcp, ";transport=tcp"),
        (TLS, Transport::Tls, ";transport=tls"),
    ] {
        let mut p = proxy(&[(pbx, transport)]);
        p.handle_ws(t(0), BROWSER, invite("sip:bob@sipline.test").as_bytes());
        let (to_pbx, ws) = sent(&mut p);
        assert_eq!(parse(&ws[0]).status(), Some(100));
        assert_eq!(to_pbx.len(), 1);
        assert_eq!(to_pbx[0].0, addr(pbx));
        let msg = parse(&to_pbx[0].1);
        let via = msg.via();
        assert_eq!(via.transport, transport.via_name());
        assert!(via.params.get("alias").is_some(), "RFC 5923: {via:?}");
        let rr = msg.header(HeaderName::RecordRoute).expect("record-routed");
        assert!(
            rr.starts_with(&format!("<sip:{RELAY}{param};lr;r2=on>")),
            "{rr}"
        );
        let contact = msg.header(HeaderName::Contact).expect("contact");
        assert!(contact.contains(&format!("@{RELAY}{param};")), "{contact}");

        // The PBX's answer over the stream reaches the browser.
        let ringing = response_to(&msg, 180, "Ringing", Some("b1")).finish(None, b"");
        p.handle_pbx_over(t(100), addr(pbx), transport, &ringing);
        let (to_pbx, ws) = sent(&mut p);
        assert!(to_pbx.is_empty());
        assert_eq!(parse(&ws[0]).status(), Some(180));
    }
}

#[test]
fn nothing_is_retransmitted_over_a_stream_and_timer_b_still_answers() {
    let mut p = proxy(&[(TCP, Transport::Tcp)]);
    p.handle_ws(t(0), BROWSER, invite("sip:bob@sipline.test").as_bytes());
    let (to_pbx, _) = sent(&mut p);
    assert_eq!(to_pbx.len(), 1);
    let mut ws = Vec::new();
    for ms in (100..=33_000).step_by(100) {
        if p.poll_timeout().is_some_and(|d| d <= t(ms)) {
            p.handle_timeout(t(ms));
        }
        let (again, frames) = sent(&mut p);
        assert!(again.is_empty(), "retransmitted at {ms} ms");
        ws.extend(frames);
    }
    assert_eq!(ws.len(), 1, "one answer: {ws:?}");
    assert_eq!(parse(&ws[0]).status(), Some(408), "Timer B (64 T1)");
}

#[test]
fn a_request_fails_over_only_to_a_pbx_on_its_own_transport() {
    // The TCP PBX preferred, then a UDP one: the request, whose Via names
    // TCP, has nowhere to go when the first is unreachable.
    let mut p = proxy(&[(TCP, Transport::Tcp), (UDP, Transport::Udp)]);
    p.handle_ws(t(0), BROWSER, invite("sip:bob@sipline.test").as_bytes());
    let (to_pbx, _) = sent(&mut p);
    assert_eq!(to_pbx[0].0, addr(TCP));
    p.pbx_unreachable(t(10), addr(TCP));
    let (to_pbx, ws) = sent(&mut p);
    assert!(to_pbx.is_empty(), "not to the UDP PBX: {to_pbx:?}");
    assert_eq!(parse(&ws[0]).status(), Some(503));

    // Two TCP PBXs: it goes on to the second at once.
    let other = "10.0.0.8:5060";
    let mut p = proxy(&[
        (TCP, Transport::Tcp),
        (UDP, Transport::Udp),
        (other, Transport::Tcp),
    ]);
    p.handle_ws(t(0), BROWSER, invite("sip:bob@sipline.test").as_bytes());
    let (to_pbx, _) = sent(&mut p);
    assert_eq!(to_pbx[0].0, addr(TCP));
    p.pbx_unreachable(t(10), addr(TCP));
    let (to_pbx, ws) = sent(&mut p);
    assert_eq!(to_pbx.len(), 1, "{ws:?}");
    assert_eq!(to_pbx[0].0, addr(other));
    assert_eq!(parse(&to_pbx[0].1).via().transport, "TCP");
}

#[test]
fn a_sips_request_goes_only_over_tls() {
    let mut p = proxy(&[(TCP, Transport::Tcp)]);
    p.handle_ws(t(0), BROWSER, invite("sips:bob@sipline.test").as_bytes());
    let (to_pbx, ws) = sent(&mut p);
    assert!(to_pbx.is_empty());
    assert_eq!(parse(&ws[0]).status(), Some(416));

    let mut p = proxy(&[(TLS, Transport::Tls)]);
    p.handle_ws(t(0), BROWSER, invite("sips:bob@sipline.test").as_bytes());
    let (to_pbx, _) = sent(&mut p);
    assert_eq!(to_pbx.len(), 1);
    assert_eq!(
        parse(&to_pbx[0].1).request_uri(),
        Some("sips:bob@sipline.test")
    );
}

#[test]
fn a_pbx_s_request_over_tls_is_record_routed_for_tls() {
    let mut p = proxy(&[(TLS, Transport::Tls)]);
    let token = p.token(BROWSER);
    let request = format!(
        "INVITE sip:x7@{RELAY};transport=tls;sl-flow={token} SIP/2.0\r\n\
Via: SIP/2.0/TLS 10.0.0.6:5061;branch=z9hG4bKpbx1\r\nMax-Forwards: 70\r\n\
To: <sip:alice@sipline.test>\r\nFrom: <sip:bob@sipline.test>;tag=p1\r\n\
Call-ID: in-1\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@10.0.0.6:5061;transport=tls>\r\n\
Content-Length: 0\r\n\r\n"
    );
    p.handle_pbx_over(t(0), addr(TLS), Transport::Tls, request.as_bytes());
    let (_, ws) = sent(&mut p);
    let msg = parse(&ws[0]);
    assert_eq!(msg.method(), Some(Method::Invite));
    let rr: Vec<&str> = msg.header_values(HeaderName::RecordRoute).collect();
    assert!(
        rr.iter()
            .any(|r| *r == format!("<sip:{RELAY};transport=tls;lr;r2=on>")),
        "{rr:?}"
    );
    // The browser's answer goes back to the TLS PBX, its Contact for TLS.
    let ok = response_to(&msg, 200, "OK", Some("a1"));
    let mut ok = ok;
    ok.header("Contact", "<sip:x7@abc.invalid;transport=ws>");
    p.handle_ws(t(10), BROWSER, &ok.finish(None, b""));
    let (to_pbx, _) = sent(&mut p);
    assert_eq!(to_pbx[0].0, addr(TLS));
    let answer = parse(&to_pbx[0].1);
    let contact = answer.header(HeaderName::Contact).expect("contact");
    assert!(contact.contains(";transport=tls;"), "{contact}");
    assert!(Via::parse(answer.header(HeaderName::Via).expect("via")).is_some());
}

#[test]
fn probes_over_a_stream_are_sent_once() {
    let mut cfg = ProxyConfig::new(vec![addr(TCP)], addr(RELAY));
    cfg.pbx[0].transport = Transport::Tcp;
    cfg.probe_interval = Some(Duration::from_secs(10));
    let mut p = Proxy::new(cfg, FlowKey::new([9; 32]));
    let mut probes = Vec::new();
    for ms in (0..=1_900).step_by(100) {
        if p.poll_timeout().is_some_and(|d| d <= t(ms)) {
            p.handle_timeout(t(ms));
        }
        probes.extend(sent(&mut p).0);
    }
    assert_eq!(probes.len(), 1, "sent once, not retransmitted");
    let probe = parse(&probes[0].1);
    assert_eq!(probe.via().transport, "TCP");
    assert_eq!(probe.request_uri(), Some("sip:10.0.0.5:5060;transport=tcp"));
}

#[test]
fn a_large_request_for_a_udp_pbx_goes_over_tcp_when_it_takes_tcp() {
    let padding = "x".repeat(LARGE_OVER_UDP);
    let big = invite("sip:bob@sipline.test").replace(
        "Content-Length: 0",
        &format!("X-Padding: {padding}\r\nContent-Length: 0"),
    );
    for large_over_tcp in [false, true] {
        let mut p = proxy(&[(UDP, Transport::Udp)]);
        p.cfg.large_over_tcp = large_over_tcp;
        p.handle_ws(t(0), BROWSER, invite("sip:bob@sipline.test").as_bytes());
        let big = big
            .replace("call-1", "call-2")
            .replace("z9hG4bKinv1", "z9hG4bKinv2");
        p.handle_ws(t(0), BROWSER, big.as_bytes());
        let sent: Vec<(Transport, Vec<u8>)> = std::iter::from_fn(|| p.poll_output())
            .filter_map(|o| match o {
                Output::Pbx {
                    transport, message, ..
                } => Some((transport, message)),
                _ => None,
            })
            .collect();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0].0, Transport::Udp, "a small one over UDP");
        let expected = if large_over_tcp {
            Transport::Tcp
        } else {
            Transport::Udp
        };
        assert_eq!(sent[1].0, expected, "large_over_tcp: {large_over_tcp}");
        let msg = parse(&sent[1].1);
        assert_eq!(msg.via().transport, expected.via_name());
        let contact = msg.header(HeaderName::Contact).expect("contact");
        assert_eq!(
            contact.contains(";transport=tcp"),
            large_over_tcp,
            "{contact}"
        );
        // Over TCP nothing is retransmitted; over UDP both are.
        p.handle_timeout(t(600));
        let again = std::iter::from_fn(|| p.poll_output()).count();
        assert_eq!(again, if large_over_tcp { 1 } else { 2 });
    }
}

#[test]
fn an_answer_goes_back_over_the_transport_its_request_came_on() {
    // A UDP PBX that sent its request on the relay's TCP connection.
    let mut p = proxy(&[(UDP, Transport::Udp)]);
    p.cfg.large_over_tcp = true;
    let token = p.token(BROWSER);
    let request = format!(
        "INVITE sip:x7@{RELAY};transport=tcp;sl-flow={token} SIP/2.0\r\n\
Via: SIP/2.0/TCP 10.0.0.7:5060;branch=z9hG4bKpbx2\r\nMax-Forwards: 70\r\n\
To: <sip:alice@sipline.test>\r\nFrom: <sip:bob@sipline.test>;tag=p1\r\n\
Call-ID: in-2\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@10.0.0.7:5060;transport=tcp>\r\n\
Content-Length: 0\r\n\r\n"
    );
    p.handle_pbx_over(t(0), addr(UDP), Transport::Tcp, request.as_bytes());
    let (_, ws) = sent(&mut p);
    let ringing = response_to(&parse(&ws[0]), 180, "Ringing", Some("a1")).finish(None, b"");
    p.handle_ws(t(10), BROWSER, &ringing);
    match p.poll_output() {
        Some(Output::Pbx { to, transport, .. }) => {
            assert_eq!((to, transport), (addr(UDP), Transport::Tcp));
        }
        other => panic!("the answer to the PBX: {other:?}"),
    }
}

#[test]
fn a_cancel_follows_its_large_invite_over_tcp() {
    let mut p = proxy(&[(UDP, Transport::Udp)]);
    p.cfg.large_over_tcp = true;
    let big = invite("sip:bob@sipline.test").replace(
        "Content-Length: 0",
        &format!(
            "X-Padding: {}\r\nContent-Length: 0",
            "x".repeat(LARGE_OVER_UDP)
        ),
    );
    p.handle_ws(t(0), BROWSER, big.as_bytes());
    let cancel = "CANCEL sip:bob@sipline.test SIP/2.0\r\n\
Via: SIP/2.0/WSS abc.invalid;branch=z9hG4bKinv1\r\nMax-Forwards: 70\r\n\
To: <sip:bob@sipline.test>\r\nFrom: <sip:alice@sipline.test>;tag=f2\r\n\
Call-ID: call-1\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n";
    p.handle_ws(t(100), BROWSER, cancel.as_bytes());
    let transports: Vec<(Transport, String)> = std::iter::from_fn(|| p.poll_output())
        .filter_map(|o| match o {
            Output::Pbx {
                transport, message, ..
            } => Some((transport, parse(&message).cseq().method.to_owned())),
            _ => None,
        })
        .collect();
    assert_eq!(
        transports,
        [
            (Transport::Tcp, "INVITE".to_owned()),
            (Transport::Tcp, "CANCEL".to_owned())
        ]
    );
}

#[test]
fn a_broken_connection_s_requests_move_on_or_get_503_and_the_pbx_stays_up() {
    let other = "10.0.0.8:5060";
    let mut p = proxy(&[(TCP, Transport::Tcp), (other, Transport::Tcp)]);
    p.handle_ws(t(0), BROWSER, invite("sip:bob@sipline.test").as_bytes());
    let (to_pbx, _) = sent(&mut p);
    assert_eq!(to_pbx[0].0, addr(TCP));
    p.pbx_connection_lost(t(10), addr(TCP));
    let (to_pbx, ws) = sent(&mut p);
    assert_eq!(to_pbx.len(), 1, "moved on: {ws:?}");
    assert_eq!(to_pbx[0].0, addr(other));
    assert!(
        p.pbxs.is_up(addr(TCP)),
        "a broken connection is no PBX down"
    );

    // With nowhere to move: 503, at once.
    let mut p = proxy(&[(TCP, Transport::Tcp)]);
    p.handle_ws(t(0), BROWSER, invite("sip:bob@sipline.test").as_bytes());
    sent(&mut p);
    p.pbx_connection_lost(t(10), addr(TCP));
    let (to_pbx, ws) = sent(&mut p);
    assert!(to_pbx.is_empty());
    assert_eq!(parse(&ws[0]).status(), Some(503));
}

#[test]
fn a_datagram_claiming_to_come_from_a_stream_pbx_is_dropped() {
    let mut p = proxy(&[(TLS, Transport::Tls)]);
    let token = p.token(BROWSER);
    let request = format!(
        "OPTIONS sip:x7@{RELAY};sl-flow={token} SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.6:5061;branch=z9hG4bKspoof\r\nMax-Forwards: 70\r\n\
To: <sip:alice@sipline.test>\r\nFrom: <sip:bob@sipline.test>;tag=p1\r\n\
Call-ID: spoof-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    p.handle_pbx(t(0), addr(TLS), request.as_bytes());
    let (to_pbx, ws) = sent(&mut p);
    assert!(to_pbx.is_empty() && ws.is_empty(), "dropped");
    assert_eq!(p.metrics.rejected(Reject::NotPbx), 1);
    // Over its own transport it is taken.
    p.handle_pbx_over(t(1), addr(TLS), Transport::Tls, request.as_bytes());
    let (_, ws) = sent(&mut p);
    assert_eq!(ws.len(), 1);
}

#[test]
fn a_sips_request_names_the_relay_with_sips_uris() {
    let mut p = proxy(&[(TLS, Transport::Tls)]);
    p.handle_ws(t(0), BROWSER, invite("sips:bob@sipline.test").as_bytes());
    let (to_pbx, _) = sent(&mut p);
    let msg = parse(&to_pbx[0].1);
    let rr = msg.header(HeaderName::RecordRoute).expect("record-routed");
    assert!(rr.starts_with(&format!("<sips:{RELAY};lr;r2=on>")), "{rr}");
    let contact = msg.header(HeaderName::Contact).expect("contact");
    assert!(contact.starts_with("<sips:x7@"), "{contact}");
    assert!(!contact.contains("transport="), "{contact}");
}
