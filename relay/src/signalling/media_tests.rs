//! The proxy with the media table: SDP rewritten as calls pass, ports
//! refused with 503 when the range is full, media closed when calls end,
//! and a call whose media died ended with a BYE each way.

use std::sync::Arc;

use sipline_core::sip::HeaderName;

use super::test_support::*;
use super::*;
use crate::media::calls::{MediaConfig, MediaEnd};
use crate::media::dtls::Identity;
use crate::media::record::RecordingMode;

const PBX: &str = "10.0.0.5:5060";
const BROWSER: ConnId = ConnId(1);

fn proxy(port_max: u16) -> Proxy {
    proxy_recording(port_max, RecordingMode::Off)
}

fn proxy_recording(port_max: u16, recording: RecordingMode) -> Proxy {
    let mut cfg = ProxyConfig::new(vec![addr(PBX)], addr(RELAY));
    cfg.ws_host = "relay.example".into();
    let media = MediaConfig {
        port_min: 40_000,
        port_max,
        recording,
        ..MediaConfig::default()
    };
    let identity = Arc::new(Identity::generate().expect("identity"));
    let calls = MediaCalls::new(media, identity, [5; 32]).expect("range");
    let mut p = Proxy::new(cfg, FlowKey::new([9; 32])).with_media(calls);
    p.ws_opened(t(0), BROWSER, LOCAL);
    p
}

/// Outputs, with the media commands counted apart.
fn outputs(p: &mut Proxy) -> (Vec<Output>, usize) {
    let all: Vec<Output> = std::iter::from_fn(|| p.poll_output()).collect();
    let media = all.iter().filter(|o| matches!(o, Output::Media(_))).count();
    let rest = all
        .into_iter()
        .filter(|o| !matches!(o, Output::Media(_)))
        .collect();
    (rest, media)
}

fn text(o: &Output) -> String {
    match o {
        Output::Ws { frame, .. } => String::from_utf8_lossy(frame).into_owned(),
        Output::Pbx {
            message: datagram, ..
        } => String::from_utf8_lossy(datagram).into_owned(),
        Output::Media(c) => format!("{c:?}"),
    }
}

fn chromium_sdp() -> String {
    let raw =
        include_bytes!("../../../sdk-wasm/core/tests/corpus/valid/invite_chromium_webrtc_sdp.sip");
    let body = Message::parse(raw).expect("corpus INVITE parses").body();
    String::from_utf8(body.to_vec()).expect("utf8")
}

fn invite(call_id: &str) -> String {
    let sdp = chromium_sdp();
    format!(
        "INVITE sip:bob@pbx.example SIP/2.0\r\n\
Via: SIP/2.0/WSS abc.invalid;branch=z9hG4bK{call_id}\r\n\
Max-Forwards: 70\r\n\
To: <sip:bob@pbx.example>\r\n\
From: <sip:alice@pbx.example>;tag=a1\r\n\
Call-ID: {call_id}\r\n\
CSeq: 3 INVITE\r\n\
Contact: <sip:x7@abc.invalid;transport=ws;ob>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

const ASTERISK_SDP: &str = "v=0\r\no=- 1938 1940 IN IP4 10.0.0.5\r\ns=Asterisk\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
m=audio 16384 RTP/AVP 0 126\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:126 telephone-event/8000\r\na=sendrecv\r\n";

/// The PBX's 200 to the INVITE as it went out (our Via and Record-Route
/// copied), with Kamailio's Record-Route above ours.
fn pbx_ok(forwarded: &str) -> String {
    let m = Message::parse(forwarded.as_bytes()).expect("forwarded INVITE");
    let vias: Vec<&str> = m.header_values(HeaderName::Via).collect();
    let rr = m.header(HeaderName::RecordRoute).expect("our Record-Route");
    format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nRecord-Route: <sip:10.0.0.9;lr>, {rr}\r\n\
To: <sip:bob@pbx.example>;tag=b9\r\nFrom: <sip:alice@pbx.example>;tag=a1\r\nCall-ID: {}\r\n\
CSeq: 3 INVITE\r\nContact: <sip:bob@10.0.0.7:5062>\r\nContent-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{ASTERISK_SDP}",
        vias.join(", "),
        m.call_id(),
        ASTERISK_SDP.len()
    )
}

/// Runs a browser-made call up to its ACK; returns the forwarded INVITE.
fn answered_call(p: &mut Proxy) -> String {
    p.handle_ws(t(0), BROWSER, invite("c1").as_bytes());
    let (out, media) = outputs(p);
    assert_eq!(
        media, 2,
        "ports opened, DTLS ready, before the INVITE leaves"
    );
    let forwarded = text(&out[0]);
    assert!(
        forwarded.contains("m=audio 40002 RTP/AVP 111"),
        "{forwarded}"
    );
    assert!(!forwarded.contains("fingerprint"), "{forwarded}");

    p.handle_pbx(t(50), addr(PBX), pbx_ok(&forwarded).as_bytes());
    let (out, media) = outputs(p);
    assert_eq!(
        media, 2,
        "the PBX's address, and the answer arms the timeout"
    );
    let to_browser = text(&out[0]);
    assert!(to_browser.starts_with("SIP/2.0 200 OK"), "{to_browser}");
    assert!(to_browser.contains("a=ice-lite"), "{to_browser}");
    assert!(to_browser.contains("a=setup:passive"), "{to_browser}");
    assert!(!to_browser.contains("10.0.0.5"), "no PBX address leaks");

    p.handle_ws(t(60), BROWSER, ACK.as_bytes());
    outputs(p);
    forwarded
}

/// The browser's ACK of the 200 to call `c1`.
const ACK: &str = "ACK sip:bob@10.0.0.7:5062 SIP/2.0\r\nVia: SIP/2.0/WSS abc.invalid;branch=z9hG4bKack\r\n\
Max-Forwards: 70\r\nTo: <sip:bob@pbx.example>;tag=b9\r\n\
From: <sip:alice@pbx.example>;tag=a1\r\nCall-ID: c1\r\nCSeq: 3 ACK\r\nContent-Length: 0\r\n\r\n";

#[test]
fn a_dead_call_is_ended_with_a_bye_each_way() {
    let mut p = proxy(40_099);
    answered_call(&mut p);
    let id = p
        .media
        .as_ref()
        .and_then(|m| m.id(BROWSER, "c1"))
        .expect("media");
    p.media_ended(t(60_000), id, MediaEnd::Timeout);
    let (out, media) = outputs(&mut p);
    assert_eq!(media, 1, "the media closed");
    let [to_browser, to_pbx] = &out[..] else {
        panic!("two BYEs: {out:?}")
    };
    let b = text(to_browser);
    assert!(matches!(to_browser, Output::Ws { conn: BROWSER, .. }));
    assert!(
        b.starts_with("BYE sip:x7@abc.invalid;transport=ws;ob SIP/2.0\r\n"),
        "{b}"
    );
    for line in [
        "From: <sip:bob@pbx.example>;tag=b9",
        "To: <sip:alice@pbx.example>;tag=a1",
        "Call-ID: c1",
        "Reason: SIP;cause=200;text=\"RTP timeout\"",
    ] {
        assert!(b.contains(line), "{line} in\n{b}");
    }
    let u = text(to_pbx);
    assert!(matches!(to_pbx, Output::Pbx { to, .. } if *to == addr(PBX)));
    assert!(
        u.starts_with("BYE sip:bob@10.0.0.7:5062 SIP/2.0\r\n"),
        "{u}"
    );
    for line in [
        "Route: <sip:10.0.0.9;lr>",
        "From: <sip:alice@pbx.example>;tag=a1",
        "To: <sip:bob@pbx.example>;tag=b9",
        "CSeq: 4 BYE",
    ] {
        assert!(u.contains(line), "{line} in\n{u}");
    }
    assert!(!u.contains("relay.example;"), "our own route is not in it");
    assert_eq!(p.metrics.media_ended_count(MediaEnd::Timeout), 1);
    assert_eq!(p.active_calls(), 0, "the dashboards saw the hangup");
    let hangup = hangup_event(&mut p);
    assert!(hangup.ends_with(",\"reason\":\"RTP timeout\"}"), "{hangup}");

    // Both answers stop at the relay.
    let bye = Message::parse(u.as_bytes()).expect("our BYE parses");
    let ok = response_to(&bye, 200, "OK", Some("b9")).finish(None, b"");
    p.handle_pbx(t(60_010), addr(PBX), &ok);
    let bye = Message::parse(b.as_bytes()).expect("our BYE parses");
    let ok = response_to(&bye, 200, "OK", Some("a1")).finish(None, b"");
    p.handle_ws(t(60_020), BROWSER, &ok);
    assert!(outputs(&mut p).0.is_empty(), "nothing relayed");
    assert!(p.pending.is_empty(), "the BYE transaction is over");
}

#[test]
fn a_bye_closes_the_media_and_a_full_range_gets_503() {
    let mut p = proxy(40_003); // one call's worth of ports
    answered_call(&mut p);
    p.handle_ws(t(100), BROWSER, invite("c2").as_bytes());
    let (out, media) = outputs(&mut p);
    assert_eq!(media, 0, "nothing opened");
    let [refusal] = &out[..] else {
        panic!("one answer: {out:?}")
    };
    assert!(
        text(refusal).starts_with("SIP/2.0 503 Media Ports Exhausted\r\n"),
        "{}",
        text(refusal)
    );
    assert!(
        p.render_metrics()
            .contains("sipline_media_refused_total{reason=\"ports_exhausted\"} 1")
    );

    let bye = "BYE sip:bob@10.0.0.7:5062 SIP/2.0\r\nVia: SIP/2.0/WSS abc.invalid;branch=z9hG4bKbye\r\n\
Max-Forwards: 70\r\nTo: <sip:bob@pbx.example>;tag=b9\r\nFrom: <sip:alice@pbx.example>;tag=a1\r\n\
Call-ID: c1\r\nCSeq: 4 BYE\r\nContent-Length: 0\r\n\r\n";
    p.handle_ws(t(200), BROWSER, bye.as_bytes());
    let (_, media) = outputs(&mut p);
    assert_eq!(media, 1, "closed");
    assert!(p.render_metrics().contains("sipline_media_calls 0"));
    p.handle_ws(t(300), BROWSER, invite("c3").as_bytes());
    let (out, media) = outputs(&mut p);
    assert_eq!(
        (media, out.len()),
        (2, 2),
        "the ports came back: the INVITE goes, and the browser has its 100"
    );
}

#[test]
fn a_failed_invite_gives_its_ports_back() {
    let mut p = proxy(40_099);
    p.handle_ws(t(0), BROWSER, invite("c1").as_bytes());
    let (out, _) = outputs(&mut p);
    let forwarded = text(&out[0]);
    let busy = pbx_ok(&forwarded)
        .replace("SIP/2.0 200 OK", "SIP/2.0 486 Busy Here")
        .replace("Content-Type: application/sdp\r\n", "");
    let busy = busy[..busy.find("Content-Length").expect("length")].to_owned()
        + "Content-Length: 0\r\n\r\n";
    p.handle_pbx(t(50), addr(PBX), busy.as_bytes());
    let (out, media) = outputs(&mut p);
    assert_eq!(media, 1, "closed");
    assert!(text(&out[0]).starts_with("SIP/2.0 486"));
    assert_eq!(
        p.render_metrics()
            .matches("sipline_media_port_pairs{state=\"in_use\"} 0")
            .count(),
        1
    );
}

#[test]
fn media_failing_before_the_answer_ends_the_call_after_its_ack() {
    let mut p = proxy(40_099);
    p.handle_ws(t(0), BROWSER, invite("c1").as_bytes());
    let (out, _) = outputs(&mut p);
    let forwarded = text(&out[0]);
    let id = p
        .media
        .as_ref()
        .and_then(|m| m.id(BROWSER, "c1"))
        .expect("media");
    p.media_ended(t(10), id, MediaEnd::Dtls);
    let (out, media) = outputs(&mut p);
    assert_eq!((out.len(), media), (0, 1), "closed, nothing sent yet");
    p.handle_pbx(t(50), addr(PBX), pbx_ok(&forwarded).as_bytes());
    let (out, _) = outputs(&mut p);
    assert!(text(&out[0]).starts_with("SIP/2.0 200 OK"));
    p.handle_ws(t(60), BROWSER, ACK.as_bytes());
    let (out, _) = outputs(&mut p);
    let byes: Vec<String> = out
        .iter()
        .map(text)
        .filter(|t| t.starts_with("BYE "))
        .collect();
    assert_eq!(byes.len(), 2, "{out:?}");
    assert!(
        byes[0].contains("text=\"DTLS handshake failed\""),
        "{}",
        byes[0]
    );
}

#[test]
fn a_call_nobody_answers_gives_its_ports_back() {
    // The browser leaves while its call rings.
    let mut p = proxy(40_099);
    p.handle_ws(t(0), BROWSER, invite("c1").as_bytes());
    outputs(&mut p);
    p.ws_closed(BROWSER);
    let (_, media) = outputs(&mut p);
    assert_eq!(media, 1, "closed with the WebSocket");
    assert!(
        p.render_metrics()
            .contains("sipline_media_port_pairs{state=\"in_use\"} 0")
    );

    // The PBX never answers: the relay's own 408 ends the call's media.
    let mut p = proxy(40_099);
    p.handle_ws(t(0), BROWSER, invite("c2").as_bytes());
    outputs(&mut p);
    p.handle_timeout(t(32_000));
    let (out, media) = outputs(&mut p);
    assert!(
        out.iter().any(|o| text(o).starts_with("SIP/2.0 408")),
        "{out:?}"
    );
    assert_eq!(media, 1, "closed with the 408");
    assert!(p.render_metrics().contains("sipline_media_calls 0"));
}

/// The browser's re-INVITE of call `c1` with tags `from_tag`/`to_tag`.
/// The admin stream's `hangup` event since the last drain, as JSON.
fn hangup_event(p: &mut Proxy) -> String {
    p.drain_events()
        .iter()
        .map(AdminEvent::to_json)
        .find(|e| e.contains("\"hangup\""))
        .expect("a hangup event")
}

fn reinvite(from_tag: &str, to_tag: &str) -> String {
    let sdp = chromium_sdp();
    format!(
        "INVITE sip:bob@10.0.0.7:5062 SIP/2.0\r\n\
Via: SIP/2.0/WSS def.invalid;branch=z9hG4bKre{from_tag}\r\n\
Max-Forwards: 70\r\n\
Route: <sip:tok@relay.example;transport=ws;lr;r2=on>\r\n\
To: <sip:bob@pbx.example>;tag={to_tag}\r\n\
From: <sip:alice@pbx.example>;tag={from_tag}\r\n\
Call-ID: c1\r\n\
CSeq: 4 INVITE\r\n\
Contact: <sip:x7@abc.invalid;transport=ws;ob>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

#[test]
fn a_reconnected_browser_takes_its_call_back_and_nobody_else_can() {
    const STRANGER: ConnId = ConnId(2);
    const BACK: ConnId = ConnId(3);
    let mut p = proxy(40_099);
    answered_call(&mut p);
    let held = |p: &Proxy, conn| p.media.as_ref().and_then(|m| m.id(conn, "c1"));
    let id = held(&p, BROWSER).expect("media");

    // Someone who knows the tags but not the browser's own Contact (the
    // far end, a proxy) cannot take it.
    p.ws_opened(t(100), STRANGER, LOCAL);
    p.handle_ws(
        t(100),
        STRANGER,
        reinvite("a1", "b9")
            .replace("x7@abc.invalid", "x9@abc.invalid")
            .as_bytes(),
    );
    outputs(&mut p);
    assert_eq!(held(&p, BROWSER), Some(id), "still the browser's");
    assert_ne!(held(&p, STRANGER), Some(id));

    // Its WebSocket drops; the media stays (it is answered), and so does
    // the call on the dashboards. Wrong tags from a new connection do not
    // move it.
    p.drain_events();
    p.ws_closed(BROWSER);
    assert_eq!(held(&p, BROWSER), Some(id), "kept through the drop");
    let events: Vec<String> = p.drain_events().iter().map(AdminEvent::to_json).collect();
    assert!(
        !events.iter().any(|e| e.contains("\"hangup\"")),
        "no hangup for a call kept: {events:?}"
    );
    assert_eq!(p.active_calls(), 1);
    // (Fresh connections, so that nothing they own short-cuts the check.)
    for (conn, forged) in [
        (ConnId(4), reinvite("a1", "zz")),
        (
            ConnId(5),
            reinvite("a1", "b9").replace("x7@abc.invalid", "x8@abc.invalid"),
        ),
    ] {
        p.ws_opened(t(200), conn, LOCAL);
        p.handle_ws(t(200), conn, forged.as_bytes());
        outputs(&mut p);
        assert_ne!(held(&p, conn), Some(id), "at most media of its own");
        assert_eq!(held(&p, BROWSER), Some(id), "not moved by {conn:?}");
    }

    // The browser, back on a new connection, re-INVITEs in the dialog:
    // the same media (no new ports) now belongs to that connection.
    p.ws_opened(t(300), BACK, LOCAL);
    p.handle_ws(t(300), BACK, reinvite("a1", "b9").as_bytes());
    let (out, _) = outputs(&mut p);
    assert_eq!(held(&p, BACK), Some(id), "moved, not made anew");
    assert_eq!(held(&p, BROWSER), None);
    let forwarded = text(&out[0]);
    assert!(
        forwarded.starts_with("INVITE sip:bob@10.0.0.7:5062"),
        "{forwarded}"
    );
    assert!(
        forwarded.contains("m=audio 40002 RTP/AVP"),
        "the same ports: {forwarded}"
    );
    assert_eq!(p.metrics.calls_recovered(), 1);

    // A phone that changed network: its old socket still looks open to
    // the relay, yet the browser itself takes its call to the new one.
    const MOVED: ConnId = ConnId(6);
    p.ws_opened(t(400), MOVED, LOCAL);
    let again = reinvite("a1", "b9").replace("z9hG4bKrea1", "z9hG4bKrea2");
    p.handle_ws(t(400), MOVED, again.as_bytes());
    outputs(&mut p);
    assert_eq!(
        held(&p, MOVED),
        Some(id),
        "taken from a live-looking socket"
    );
    assert_eq!(p.metrics.calls_recovered(), 2);

    // Its BYE from there ends it on the dashboards, on that session.
    p.drain_events();
    let bye = "BYE sip:bob@10.0.0.7:5062 SIP/2.0\r\n\
Via: SIP/2.0/WSS def.invalid;branch=z9hG4bKbye1\r\n\
Max-Forwards: 70\r\n\
Route: <sip:tok@relay.example;transport=ws;lr;r2=on>\r\n\
To: <sip:bob@pbx.example>;tag=b9\r\n\
From: <sip:alice@pbx.example>;tag=a1\r\n\
Call-ID: c1\r\n\
CSeq: 5 BYE\r\n\
Content-Length: 0\r\n\r\n";
    p.handle_ws(t(500), MOVED, bye.as_bytes());
    outputs(&mut p);
    let hangup = hangup_event(&mut p);
    assert!(hangup.contains("\"session\":6"), "{hangup}");
    assert_eq!(p.active_calls(), 0);
}

/// A request carrying the Chromium offer, in a dialog with tags `a1`/`b9`.
fn in_dialog_offer(method: &str, call_id: &str) -> String {
    let sdp = chromium_sdp();
    let rack = if method == "PRACK" {
        "RAck: 1 3 INVITE\r\n"
    } else {
        ""
    };
    format!(
        "{method} sip:bob@10.0.0.7:5062 SIP/2.0\r\n\
Via: SIP/2.0/WSS abc.invalid;branch=z9hG4bK{method}{call_id}\r\n\
Max-Forwards: 70\r\nTo: <sip:bob@pbx.example>;tag=b9\r\n\
From: <sip:alice@pbx.example>;tag=a1\r\nCall-ID: {call_id}\r\nCSeq: 5 {method}\r\n{rack}\
Contact: <sip:x7@abc.invalid;transport=ws;ob>\r\nContent-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

#[test]
fn an_update_or_prack_offer_outside_any_call_takes_no_ports() {
    let mut p = proxy(40_099);
    for (i, method) in ["UPDATE", "PRACK", "UPDATE", "PRACK"].iter().enumerate() {
        let call_id = format!("ghost{i}");
        p.handle_ws(t(0), BROWSER, in_dialog_offer(method, &call_id).as_bytes());
        let (out, media) = outputs(&mut p);
        assert_eq!(media, 0, "{method}: no ports opened");
        let [refusal] = &out[..] else {
            panic!("{method}: one answer, nothing to the PBX: {out:?}")
        };
        assert!(
            text(refusal).starts_with("SIP/2.0 481 Call/Transaction Does Not Exist\r\n"),
            "{}",
            text(refusal)
        );
    }
    let metrics = p.render_metrics();
    assert!(metrics.contains("sipline_media_calls 0"), "{metrics}");
    assert!(
        metrics.contains("sipline_media_port_pairs{state=\"in_use\"} 0"),
        "{metrics}"
    );
    // An UPDATE in a call that exists still carries its offer.
    answered_call(&mut p);
    p.handle_ws(t(100), BROWSER, in_dialog_offer("UPDATE", "c1").as_bytes());
    let (out, _) = outputs(&mut p);
    assert!(text(&out[0]).starts_with("UPDATE "), "{}", text(&out[0]));
}

#[test]
fn a_bare_cr_cannot_smuggle_an_sdp_line_to_the_pbx() {
    for smuggle in [
        (
            "a=rtpmap:111 opus/48000/2",
            "a=rtpmap:111 opus/48000/2\rc=IN IP4 127.0.0.2",
        ),
        (
            "UDP/TLS/RTP/SAVPF 111",
            "UDP/TLS/RTP/SAVPF 111\rc=IN IP4 127.0.0.2 0",
        ),
        ("a=rtpmap:111 opus/48000/2", "a=rtpmap:111 opus/48000/2\0"),
    ] {
        let mut p = proxy(40_099);
        let offer = invite("c1").replacen(smuggle.0, smuggle.1, 1);
        assert_ne!(offer, invite("c1"), "{smuggle:?} applies");
        let length = |s: &str| s.len() - s.find("\r\n\r\n").expect("end of headers") - 4;
        let offer = offer.replace(
            &format!("Content-Length: {}", length(&invite("c1"))),
            &format!("Content-Length: {}", length(&offer)),
        );
        p.handle_ws(t(0), BROWSER, offer.as_bytes());
        let (out, media) = outputs(&mut p);
        assert_eq!(media, 0, "no ports opened");
        let [refusal] = &out[..] else {
            panic!("one answer, nothing to the PBX: {out:?}")
        };
        assert!(
            text(refusal).starts_with("SIP/2.0 488 Not Acceptable Here\r\n"),
            "{}",
            text(refusal)
        );
    }
}

#[test]
fn a_stopping_relay_ends_answered_calls_with_byes_and_cancels_ringing_ones() {
    let mut p = proxy(40_099);
    answered_call(&mut p);
    // A second call, ringing at the PBX (its 180 ended the INVITE's
    // retransmissions).
    p.handle_ws(t(100), BROWSER, invite("c2").as_bytes());
    let (out, _) = outputs(&mut p);
    let forwarded = text(&out[0]);
    let ringing = pbx_ok(&forwarded)
        .replace("SIP/2.0 200 OK", "SIP/2.0 180 Ringing")
        .replace("Call-ID: c1", "Call-ID: c2");
    p.handle_pbx(t(150), addr(PBX), ringing.as_bytes());
    outputs(&mut p);

    assert_eq!(p.shut_down(t(200)), 2);
    let (out, _) = outputs(&mut p);
    let sent: Vec<String> = out.iter().map(text).collect();
    let reason = "Reason: SIP;cause=200;text=\"Relay shutting down\"";
    let bye_to = |udp: bool| {
        out.iter().zip(&sent).any(|(o, s)| {
            matches!(o, Output::Pbx { .. }) == udp
                && s.starts_with("BYE ")
                && s.contains("Call-ID: c1\r\n")
                && s.contains(reason)
        })
    };
    assert!(bye_to(true), "the PBX's BYE: {sent:?}");
    assert!(bye_to(false), "the browser's BYE: {sent:?}");
    let cancel = sent
        .iter()
        .find(|s| s.starts_with("CANCEL "))
        .unwrap_or_else(|| panic!("a CANCEL: {sent:?}"));
    let forwarded = Message::parse(forwarded.as_bytes()).expect("INVITE");
    let cancel = Message::parse(cancel.as_bytes()).expect("CANCEL parses");
    assert_eq!(cancel.request_uri(), forwarded.request_uri());
    assert_eq!(cancel.via().branch(), forwarded.via().branch());
    assert_eq!(cancel.cseq().seq, forwarded.cseq().seq);
    assert!(
        cancel
            .header(HeaderName::parse("Reason"))
            .is_some_and(|r| r.contains("Relay shutting down"))
    );
    // Nothing more to end: a second stop sends nothing.
    assert_eq!(p.shut_down(t(300)), 0);
}

#[test]
fn a_repeated_answer_to_the_relay_s_own_bye_stops_at_the_relay() {
    let mut p = proxy(40_099);
    answered_call(&mut p);
    assert_eq!(p.shut_down(t(100)), 1);
    let (out, _) = outputs(&mut p);
    let bye = out
        .iter()
        .find_map(|o| match o {
            Output::Pbx {
                message: datagram, ..
            } => Some(datagram.clone()),
            _ => None,
        })
        .expect("the PBX's BYE");
    let bye = Message::parse(&bye).expect("BYE parses");
    let ok = response_to(&bye, 200, "OK", Some("b9")).finish(None, b"");
    for at in [150, 5_000, 9_000] {
        p.handle_pbx(t(at), addr(PBX), &ok);
        let (out, _) = outputs(&mut p);
        assert!(out.is_empty(), "at {at} ms nothing goes on: {out:?}");
    }
}

#[test]
fn a_message_too_big_for_a_datagram_gets_513_and_a_huge_request_uri_414() {
    let mut p = proxy(40_099);
    let body = "x".repeat(65_250);
    let message = format!(
        "MESSAGE sip:bob@pbx.example SIP/2.0\r\nVia: SIP/2.0/WSS abc.invalid;branch=z9hG4bKm1\r\n\
Max-Forwards: 70\r\nTo: <sip:bob@pbx.example>\r\nFrom: <sip:alice@pbx.example>;tag=a1\r\n\
Call-ID: m1\r\nCSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    assert!(message.len() < 65_507, "it fits until the relay adds to it");
    p.handle_ws(t(0), BROWSER, message.as_bytes());
    let (out, _) = outputs(&mut p);
    let [refusal] = &out[..] else {
        panic!("one answer, nothing to the PBX: {out:?}")
    };
    assert!(text(refusal).starts_with("SIP/2.0 513 Message Too Large\r\n"));

    let long = invite("c1").replacen(
        "INVITE sip:bob@pbx.example",
        &format!("INVITE sip:{}@pbx.example", "b".repeat(60_000)),
        1,
    );
    p.handle_ws(t(10), BROWSER, long.as_bytes());
    let (out, media) = outputs(&mut p);
    assert_eq!(media, 0, "no ports opened");
    let [refusal] = &out[..] else {
        panic!("one answer, nothing to the PBX: {out:?}")
    };
    assert!(text(refusal).starts_with("SIP/2.0 414 Request-URI Too Long\r\n"));
}

#[test]
fn trickle_ice_is_not_offered_across_a_relay_that_carries_the_media() {
    let mut p = proxy(40_099);
    let trickled = invite("c1").replace(
        "CSeq: 3 INVITE\r\n",
        "CSeq: 3 INVITE\r\nSupported: replaces, trickle-ice\r\nRecv-Info: trickle-ice\r\n",
    );
    p.handle_ws(t(0), BROWSER, trickled.as_bytes());
    let (out, _) = outputs(&mut p);
    let forwarded = text(&out[0]);
    assert!(
        forwarded.contains("\r\nSupported: replaces\r\n"),
        "{forwarded}"
    );
    assert!(!forwarded.contains("trickle-ice"), "{forwarded}");
    assert!(!forwarded.contains("Recv-Info"), "{forwarded}");
    let ok = pbx_ok(&forwarded).replace(
        "CSeq: 3 INVITE\r\n",
        "CSeq: 3 INVITE\r\nSupported: timer, trickle-ice\r\nRecv-Info: trickle-ice, foo\r\n",
    );
    p.handle_pbx(t(50), addr(PBX), ok.as_bytes());
    let (out, _) = outputs(&mut p);
    let to_browser = text(&out[0]);
    assert!(
        to_browser.contains("\r\nSupported: timer\r\n"),
        "{to_browser}"
    );
    assert!(
        to_browser.contains("\r\nRecv-Info: foo\r\n"),
        "{to_browser}"
    );
    assert!(!to_browser.contains("trickle-ice"), "{to_browser}");
}

/// The browser's INFO in call `call_id` asking for recording (`Record:
/// {value}`).
fn record_info(call_id: &str, value: &str) -> String {
    format!(
        "INFO sip:bob@10.0.0.7:5062 SIP/2.0\r\n\
Via: SIP/2.0/WSS abc.invalid;branch=z9hG4bKrec{value}\r\n\
Max-Forwards: 70\r\n\
To: <sip:bob@pbx.example>;tag=b9\r\n\
From: <sip:alice@pbx.example>;tag=a1\r\n\
Call-ID: {call_id}\r\n\
CSeq: 5 INFO\r\n\
Record: {value}\r\n\
Content-Length: 0\r\n\r\n"
    )
}

/// Sends `info` from the browser; the relay's answer's status line and
/// how many media commands it gave (kept alive: a recording whose ends
/// are both dropped is over). Nothing goes to the PBX.
fn ask(p: &mut Proxy, held: &mut Vec<Output>, info: &str) -> (String, usize) {
    p.handle_ws(t(100), BROWSER, info.as_bytes());
    let (out, commands): (Vec<Output>, Vec<Output>) =
        std::iter::from_fn(|| p.poll_output()).partition(|o| !matches!(o, Output::Media(_)));
    let media = commands.len();
    held.extend(commands);
    assert_eq!(out.len(), 1, "one answer, nothing to the PBX: {out:?}");
    assert!(matches!(out[0], Output::Ws { conn: BROWSER, .. }));
    let answer = text(&out[0]);
    (answer.lines().next().unwrap_or_default().to_owned(), media)
}

#[test]
fn the_app_s_record_info_is_answered_by_the_relay_as_its_recording_mode_says() {
    // Off: refused, whatever the call.
    let mut held = Vec::new();
    let mut p = proxy(40_099);
    answered_call(&mut p);
    assert_eq!(
        ask(&mut p, &mut held, &record_info("c1", "on")),
        ("SIP/2.0 403 Recording Disabled".into(), 0)
    );

    // On demand: the app starts and stops it.
    let mut p = proxy_recording(40_099, RecordingMode::OnDemand);
    answered_call(&mut p);
    assert_eq!(
        ask(&mut p, &mut held, &record_info("c1", "on")),
        ("SIP/2.0 200 OK".into(), 2),
        "the writer's end, then the tap"
    );
    assert_eq!(
        ask(&mut p, &mut held, &record_info("c1", "ON")),
        ("SIP/2.0 200 OK".into(), 0),
        "once at a time"
    );
    assert_eq!(
        ask(&mut p, &mut held, &record_info("c1", "off")),
        ("SIP/2.0 200 OK".into(), 1),
        "the tap dropped"
    );
    assert_eq!(
        ask(&mut p, &mut held, &record_info("c1", "maybe")).0,
        "SIP/2.0 400 Record Must Be on or off"
    );
    assert_eq!(
        ask(&mut p, &mut held, &record_info("elsewhere", "on")).0,
        "SIP/2.0 481 Call Does Not Exist"
    );

    // Every call recorded: the app may not stop it.
    let mut p = proxy_recording(40_099, RecordingMode::All);
    p.handle_ws(t(0), BROWSER, invite("c1").as_bytes());
    let setup: Vec<Output> = std::iter::from_fn(|| p.poll_output()).collect();
    let media = setup
        .iter()
        .filter(|o| matches!(o, Output::Media(_)))
        .count();
    assert_eq!(media, 4, "open, record, tap, browser");
    held.extend(setup);
    assert_eq!(
        ask(&mut p, &mut held, &record_info("c1", "off")),
        ("SIP/2.0 403 Recording Is Mandatory".into(), 0)
    );
    assert_eq!(
        ask(&mut p, &mut held, &record_info("c1", "on")),
        ("SIP/2.0 200 OK".into(), 0)
    );
}
