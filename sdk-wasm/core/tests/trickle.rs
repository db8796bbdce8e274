//! Trickle ICE over SIP (RFC 8840) between two user agents that both take
//! it, driven with explicit time: whoever sent its SDP before ICE
//! gathering ended sends its candidates in one INFO of the `trickle-ice`
//! package once the dialog is confirmed, and the far end's INFO becomes
//! the browser's candidates. A far end that does not take it gets a
//! re-INVITE instead (`tests/calls.rs`).

mod common;

use common::{at, events, parse, sent};
use sipline_core::sip::{HeaderName, Method, response_to};
use sipline_core::{CallId, Config, Event, RemoteCandidate, UserAgent};

/// SDP sent before gathering: no candidates.
const BARE: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:Ours\r\n\
a=ice-pwd:ours-password-0123456789\r\na=ice-options:trickle\r\na=mid:0\r\n";
/// The same once gathered.
const GATHERED: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n\
m=audio 50000 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 192.0.2.20\r\n\
a=candidate:1 1 udp 2122260223 192.0.2.20 50000 typ host\r\na=ice-ufrag:Ours\r\n\
a=ice-pwd:ours-password-0123456789\r\na=ice-options:trickle\r\na=mid:0\r\n";
/// A full-ICE far end's SDP, with its candidates.
const THEIRS: &str = "v=0\r\no=- 2 2 IN IP4 192.0.2.30\r\ns=-\r\nt=0 0\r\n\
m=audio 40000 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 192.0.2.30\r\n\
a=candidate:7 1 udp 2122260223 192.0.2.30 40000 typ host\r\na=ice-ufrag:Them\r\n\
a=ice-pwd:their-password-012345678\r\na=mid:0\r\n";
const TRICKLE_HEADERS: &str = "Supported: trickle-ice\r\nRecv-Info: trickle-ice\r\n";

fn ua() -> UserAgent {
    let mut c = Config::new("sip:alice@pbx.example");
    c.register = false;
    let mut ua = UserAgent::new(c, [9; 32]).expect("valid config");
    ua.transport_connected(at(0.0));
    ua
}

/// The caller's INVITE with `THEIRS` as its offer and `extra` headers.
fn invite(extra: &str) -> String {
    format!(
        "INVITE sip:x@a.invalid;transport=ws SIP/2.0\r\nVia: SIP/2.0/WSS relay.example;branch=z9hG4bKtr1\r\n\
Max-Forwards: 69\r\nFrom: <sip:bob@pbx.example>;tag=b1\r\nTo: <sip:alice@pbx.example>\r\nCall-ID: trickle-in\r\n\
CSeq: 10 INVITE\r\nContact: <sip:bob@10.0.0.7:5062>\r\n{extra}Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{THEIRS}",
        THEIRS.len()
    )
}

/// The caller's request `method` in the dialog our 200 `ok` made.
fn in_dialog(ok: &str, method: &str, cseq: u32, extra: &str, body: &str) -> String {
    let m = parse(ok);
    format!(
        "{method} sip:x@a.invalid SIP/2.0\r\nVia: SIP/2.0/WSS relay.example;branch=z9hG4bK{method}{cseq}\r\n\
Max-Forwards: 69\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        m.header(HeaderName::From).expect("from"),
        m.header(HeaderName::To).expect("to"),
        m.call_id(),
        body.len()
    )
}

/// Answers an incoming call from a caller that takes trickled candidates
/// (or not, `trickle`); returns the call and our 200.
fn answered_incoming(ua: &mut UserAgent, trickle: bool) -> (CallId, String) {
    let extra = if trickle { TRICKLE_HEADERS } else { "" };
    ua.handle_message(at(0.0), invite(extra).as_bytes())
        .expect("parses");
    let call = match &events(ua)[..] {
        [Event::Incoming { call, .. }] => *call,
        other => panic!("{other:?}"),
    };
    sent(ua);
    assert_eq!(
        ua.candidates_optional(Some((call, THEIRS)), None),
        trickle,
        "our answer waits for candidates unless they can follow"
    );
    ua.answer(at(0.1), call, if trickle { BARE } else { GATHERED })
        .expect("answers");
    let ok = sent(ua).remove(0);
    (call, ok)
}

#[test]
fn our_answer_goes_at_once_and_its_candidates_follow_in_one_info() {
    let mut ua = ua();
    let (call, ok) = answered_incoming(&mut ua, true);
    // Our 200 says we take them too.
    let m = parse(&ok);
    assert!(
        m.header_values(HeaderName::Supported)
            .any(|v| v == "trickle-ice"),
        "{ok}"
    );
    assert_eq!(
        m.header(HeaderName::Other("Recv-Info")),
        Some("trickle-ice")
    );
    // Not before the ACK: then the candidates are asked for.
    assert!(events(&mut ua).is_empty());
    ua.handle_message(at(0.2), in_dialog(&ok, "ACK", 10, "", "").as_bytes())
        .expect("parses");
    assert_eq!(
        events(&mut ua),
        [
            Event::Accepted {
                call,
                sdp: String::new()
            },
            Event::CandidatesNeeded {
                call,
                trickle: true
            }
        ]
    );
    // The first candidate as it comes, then the end of them: each INFO
    // says only what is new.
    ua.send_candidates(at(0.3), call, GATHERED, false)
        .expect("the call is up");
    let info = sent(&mut ua).remove(0);
    ua.send_candidates(at(0.35), call, GATHERED, false)
        .expect("nothing new");
    assert!(sent(&mut ua).is_empty(), "nothing new, no INFO");
    ua.send_candidates(at(0.4), call, GATHERED, true)
        .expect("gathering ended");
    let end = sent(&mut ua).remove(0);
    assert!(
        parse(&end)
            .body()
            .ends_with(b"a=mid:0\r\na=end-of-candidates\r\n"),
        "{end}"
    );
    let m = parse(&info);
    assert_eq!(m.method(), Some(Method::Info));
    assert_eq!(m.call_id(), "trickle-in");
    assert_eq!(
        m.header(HeaderName::Other("Info-Package")),
        Some("trickle-ice")
    );
    assert_eq!(
        m.header(HeaderName::ContentType),
        Some("application/trickle-ice-sdpfrag")
    );
    assert_eq!(
        String::from_utf8_lossy(m.body()),
        "a=ice-ufrag:Ours\r\na=ice-pwd:ours-password-0123456789\r\n\
m=audio 50000 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
a=candidate:1 1 udp 2122260223 192.0.2.20 50000 typ host\r\n"
    );
}

#[test]
fn toward_a_caller_without_trickle_the_answer_waits_and_nothing_follows() {
    let mut ua = ua();
    let (call, ok) = answered_incoming(&mut ua, false);
    ua.handle_message(at(0.2), in_dialog(&ok, "ACK", 10, "", "").as_bytes())
        .expect("parses");
    assert_eq!(
        events(&mut ua),
        [Event::Accepted {
            call,
            sdp: String::new()
        }]
    );
}

#[test]
fn the_far_end_s_trickled_candidates_reach_the_browser() {
    let mut ua = ua();
    let (call, ok) = answered_incoming(&mut ua, true);
    ua.handle_message(at(0.2), in_dialog(&ok, "ACK", 10, "", "").as_bytes())
        .expect("parses");
    events(&mut ua);
    let frag = "a=ice-ufrag:Them\r\na=ice-pwd:their-password-012345678\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
a=mid:0\r\na=candidate:8 1 udp 1686052607 203.0.113.9 40001 typ srflx raddr 0.0.0.0 rport 0\r\n\
a=end-of-candidates\r\n";
    let headers = "Info-Package: trickle-ice\r\nContent-Disposition: Info-Package\r\n\
Content-Type: application/trickle-ice-sdpfrag\r\n";
    ua.handle_message(
        at(0.3),
        in_dialog(&ok, "INFO", 11, headers, frag).as_bytes(),
    )
    .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 200 OK\r\n"));
    assert_eq!(
        events(&mut ua),
        [Event::RemoteCandidates {
            call,
            candidates: vec![RemoteCandidate {
                candidate:
                    "candidate:8 1 udp 1686052607 203.0.113.9 40001 typ srflx raddr 0.0.0.0 rport 0"
                        .into(),
                mid: Some("0".into()),
                index: 0,
            }],
            end: true,
        }]
    );
    // The package with another body type is refused, not misread.
    let wrong = headers.replace("application/trickle-ice-sdpfrag", "text/plain");
    ua.handle_message(at(0.4), in_dialog(&ok, "INFO", 12, &wrong, "x").as_bytes())
        .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 415 "));
    assert!(events(&mut ua).is_empty());
}

#[test]
fn our_offer_s_candidates_go_by_info_when_the_answerer_takes_them_trickled() {
    let mut ua = ua();
    ua.call(at(0.0), "sip:bob@pbx.example", BARE)
        .expect("a call");
    let invite = sent(&mut ua).remove(0);
    let m = parse(&invite);
    assert!(
        m.header_values(HeaderName::Supported)
            .any(|v| v == "trickle-ice"),
        "{invite}"
    );
    assert_eq!(
        m.header(HeaderName::Other("Recv-Info")),
        Some("trickle-ice")
    );
    for (trickle, headers) in [(true, TRICKLE_HEADERS), (false, "")] {
        let mut ua = self::ua();
        let call = ua
            .call(at(0.0), "sip:bob@pbx.example", BARE)
            .expect("a call");
        let invite = sent(&mut ua).remove(0);
        events(&mut ua);
        let req = parse(&invite);
        let mut b = response_to(&req, 200, "OK", Some("b9"));
        b.header("Contact", "<sip:bob@10.0.0.7:5062>");
        for line in headers.lines() {
            if let Some((name, value)) = line.split_once(": ") {
                b.header(name, value);
            }
        }
        let ok = b.finish(Some("application/sdp"), THEIRS.as_bytes());
        ua.handle_message(at(0.2), &ok).expect("parses");
        assert_eq!(
            events(&mut ua),
            [
                Event::Accepted {
                    call,
                    sdp: THEIRS.into()
                },
                Event::CandidatesNeeded { call, trickle }
            ]
        );
    }
}
