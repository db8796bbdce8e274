//! Outgoing calls, driven with explicit time against a scripted far end
//! behind the relay: the INVITE with the offer, ringing and early media,
//! the 2xx acknowledged (and its retransmission acknowledged again), BYE
//! both ways, CANCEL while ringing and the CANCEL/200 race, a proxy's
//! digest challenge, refusals, the timeout and a closed transport; incoming
//! calls, re-INVITE and UPDATE both ways with glare, MESSAGE and INFO,
//! blind transfer (REFER/NOTIFY), session timers (RFC 4028) and reliable
//! provisional responses (RFC 3262).

mod common;

use common::{at, events, parse, sent};
use sipline_core::sip::{HeaderName, Method, response_to};
use sipline_core::{ActionError, CallId};
use sipline_core::{Config, Event, HeaderError, HoldBy, Recording, Secret, UserAgent};

/// An offer made after ICE gathering: it names its candidates.
const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n\
a=candidate:1 1 udp 2122260223 192.0.2.20 50000 typ host\r\n";
const ANSWER: &str =
    "v=0\r\no=- 2 2 IN IP4 192.0.2.10\r\ns=-\r\nt=0 0\r\nm=audio 40000 UDP/TLS/RTP/SAVPF 0\r\n";
const TARGET: &str = "sip:bob@pbx.example";

fn ua() -> UserAgent {
    let mut c = Config::new("sip:alice@pbx.example");
    c.register = false;
    c.password = Some(Secret::new("alice-secret"));
    // These tests ring when they choose to (the default rings at once:
    // `incoming_calls_ring_by_themselves_unless_the_app_chooses`).
    c.auto_ringing = false;
    let mut ua = UserAgent::new(c, [7; 32]).expect("valid config");
    ua.transport_connected(at(0.0));
    ua
}

/// The event of a call that failed or was refused with `code`.
fn ended(call: CallId, code: u16, reason: &str) -> Event {
    Event::Hangup {
        call,
        code: Some(code),
        reason: reason.into(),
    }
}

/// The event of a call ended by a BYE (either side's).
fn bye_ended(call: CallId) -> Event {
    Event::Hangup {
        call,
        code: None,
        reason: "BYE".into(),
    }
}

/// The far end's response to `request`, with its tag, Contact and the
/// relay's and the PBX's Record-Route, and `body` as SDP.
fn answer(request: &str, code: u16, reason: &str, body: &str) -> Vec<u8> {
    let req = parse(request);
    let mut b = response_to(&req, code, reason, Some("b9"));
    if req.method() == Some(Method::Invite) && code < 300 {
        b.header("Record-Route", "<sip:10.0.0.5;lr>");
        b.header(
            "Record-Route",
            "<sip:192.0.2.10:5070;lr;r2=on>, <sip:tok@relay.example;transport=ws;lr;r2=on>",
        );
        b.header("Contact", "<sip:bob@10.0.0.7:5062>");
    }
    let ct = (!body.is_empty()).then_some("application/sdp");
    b.finish(ct, body.as_bytes())
}

/// Calls and returns the call and its INVITE.
fn calling(ua: &mut UserAgent) -> (CallId, String) {
    let call = ua.call(at(0.0), TARGET, OFFER).expect("a call");
    let mut frames = sent(ua);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(
        events(ua),
        [Event::Calling {
            call,
            target: TARGET.into()
        }]
    );
    (call, frames.remove(0))
}

/// Calls, gets ringing and a 200; returns the call, its INVITE and ACK.
fn answered(ua: &mut UserAgent) -> (CallId, String, String) {
    let (call, invite) = calling(ua);
    ua.handle_message(at(0.1), &answer(&invite, 180, "Ringing", ""))
        .expect("parses");
    ua.handle_message(at(1.0), &answer(&invite, 200, "OK", ANSWER))
        .expect("parses");
    let mut frames = sent(ua);
    assert_eq!(frames.len(), 1, "the ACK: {frames:?}");
    assert_eq!(
        events(ua),
        [
            Event::Ringing { call },
            Event::Accepted {
                call,
                sdp: ANSWER.into()
            }
        ]
    );
    (call, invite, frames.remove(0))
}

#[test]
fn an_offer_sent_before_gathering_gets_its_candidates_to_a_full_ice_answerer() {
    // Sent at once (the relay said it is ICE-lite): no candidates yet.
    let bare = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\n";
    let lite = ANSWER.replace("t=0 0\r\n", "t=0 0\r\na=ice-lite\r\n");
    for (offer, answer_sdp, needed) in [
        // The expected gateway answered: it finds us by our checks.
        (bare, lite.as_str(), false),
        // A full-ICE browser answered: it needs our candidates.
        (bare, ANSWER, true),
        // Our offer had them already.
        (OFFER, ANSWER, false),
    ] {
        let mut ua = ua();
        let call = ua.call(at(0.0), TARGET, offer).expect("a call");
        let invite = sent(&mut ua).remove(0);
        events(&mut ua);
        ua.handle_message(at(0.5), &answer(&invite, 200, "OK", answer_sdp))
            .expect("parses");
        let mut want = vec![Event::Accepted {
            call,
            sdp: answer_sdp.into(),
        }];
        if needed {
            want.push(Event::CandidatesNeeded {
                call,
                trickle: false,
            });
        }
        assert_eq!(
            events(&mut ua),
            want,
            "offer {offer:?}, answer {answer_sdp:?}"
        );
    }
}

#[test]
fn the_invite_carries_the_offer_and_the_answer_is_acknowledged_along_the_route() {
    let mut ua = ua();
    let (_, invite, ack) = answered(&mut ua);
    let m = parse(&invite);
    assert_eq!(m.request_uri(), Some(TARGET));
    assert_eq!(m.to().uri_text, TARGET);
    assert!(m.from().tag().is_some());
    assert_eq!(m.header(HeaderName::ContentType), Some("application/sdp"));
    assert_eq!(m.body(), OFFER.as_bytes());
    assert!(
        m.header(HeaderName::Contact)
            .is_some_and(|c| c.contains(".invalid;transport=ws")),
        "{invite}"
    );
    let a = parse(&ack);
    assert_eq!(
        a.request_uri(),
        Some("sip:bob@10.0.0.7:5062"),
        "the Contact"
    );
    assert_eq!(
        a.header_values(HeaderName::Route).collect::<Vec<_>>(),
        [
            "<sip:tok@relay.example;transport=ws;lr;r2=on>",
            "<sip:192.0.2.10:5070;lr;r2=on>",
            "<sip:10.0.0.5;lr>"
        ],
        "the Record-Route reversed"
    );
    assert_eq!((a.cseq().seq, a.cseq().method), (1, "ACK"));
    assert_eq!(a.to().tag(), Some("b9"));
    assert_ne!(a.via().branch(), m.via().branch(), "its own transaction");
}

#[test]
fn a_retransmitted_200_is_acknowledged_again_and_bye_ends_the_call() {
    let mut ua = ua();
    let (call, invite, _) = answered(&mut ua);
    ua.handle_message(at(1.5), &answer(&invite, 200, "OK", ANSWER))
        .expect("parses");
    let frames = sent(&mut ua);
    assert!(
        frames.len() == 1 && frames[0].starts_with("ACK "),
        "{frames:?}"
    );
    assert!(events(&mut ua).is_empty(), "no second Accepted");

    ua.hangup(at(5.0), call).expect("hangup is taken");
    let bye = sent(&mut ua).remove(0);
    let m = parse(&bye);
    assert_eq!((m.method(), m.cseq().seq), (Some(Method::Bye), 2));
    assert_eq!(m.request_uri(), Some("sip:bob@10.0.0.7:5062"));
    ua.handle_message(at(5.1), &answer(&bye, 200, "OK", ""))
        .expect("parses");
    assert_eq!(events(&mut ua), [bye_ended(call)]);
}

#[test]
fn the_far_end_s_bye_is_answered_and_ends_the_call() {
    let mut ua = ua();
    let (call, _, ack) = answered(&mut ua);
    let a = parse(&ack);
    let bye = format!(
        "BYE {} SIP/2.0\r\nVia: SIP/2.0/WSS relay.example;branch=z9hG4bKfar\r\nMax-Forwards: 69\r\n\
From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        "sip:x@a.invalid",
        a.header(HeaderName::To).expect("to"),
        a.header(HeaderName::From).expect("from"),
        a.call_id()
    );
    ua.handle_message(at(3.0), bye.as_bytes()).expect("parses");
    let frames = sent(&mut ua);
    assert!(frames[0].starts_with("SIP/2.0 200 OK"), "{frames:?}");
    assert_eq!(events(&mut ua), [bye_ended(call)]);
}

#[test]
fn hanging_up_while_it_rings_cancels_the_invite() {
    let mut ua = ua();
    let (call, invite) = calling(&mut ua);
    // Before any provisional response, CANCEL must wait (§9.1).
    ua.hangup(at(0.05), call).expect("hangup is taken");
    assert!(sent(&mut ua).is_empty());
    ua.handle_message(at(0.1), &answer(&invite, 180, "Ringing", ""))
        .expect("parses");
    let cancel = sent(&mut ua).remove(0);
    let c = parse(&cancel);
    let i = parse(&invite);
    assert_eq!(c.method(), Some(Method::Cancel));
    assert_eq!(c.via().branch(), i.via().branch(), "the INVITE's branch");
    assert_eq!((c.cseq().seq, c.cseq().method), (1, "CANCEL"));
    assert_eq!(c.to().tag(), None);
    ua.handle_message(at(0.2), &answer(&cancel, 200, "OK", ""))
        .expect("parses");
    ua.handle_message(at(0.2), &answer(&invite, 487, "Request Terminated", ""))
        .expect("parses");
    let frames = sent(&mut ua);
    assert!(
        frames.iter().any(|f| f.starts_with("ACK ")),
        "the 487's ACK: {frames:?}"
    );
    assert_eq!(events(&mut ua), [ended(call, 487, "Request Terminated")]);
}

#[test]
fn a_200_that_wins_the_race_with_cancel_is_acknowledged_and_hung_up() {
    let mut ua = ua();
    let (call, invite) = calling(&mut ua);
    ua.handle_message(at(0.1), &answer(&invite, 183, "Session Progress", ANSWER))
        .expect("parses");
    assert_eq!(
        events(&mut ua),
        [Event::Progress {
            call,
            sdp: ANSWER.into()
        }],
        "early media"
    );
    ua.hangup(at(0.2), call).expect("hangup is taken");
    assert!(sent(&mut ua)[0].starts_with("CANCEL "));
    ua.handle_message(at(0.3), &answer(&invite, 200, "OK", ANSWER))
        .expect("parses");
    let frames = sent(&mut ua);
    assert!(
        frames.len() == 2 && frames[0].starts_with("ACK ") && frames[1].starts_with("BYE "),
        "{frames:?}"
    );
    assert!(events(&mut ua).is_empty(), "never reported as accepted");
    ua.handle_message(at(0.4), &answer(&frames[1], 200, "OK", ""))
        .expect("parses");
    // Never up: it ends as the cancelled call it was meant to be.
    assert_eq!(events(&mut ua), [ended(call, 487, "Request Terminated")]);
}

#[test]
fn an_incoming_call_hung_up_before_its_ack_ends_as_cancelled() {
    let mut ua = ua();
    let (call, _) = incoming(&mut ua, "early-bye", true);
    ua.answer(at(1.0), call, ANSWER).expect("answer is taken");
    let ok = sent(&mut ua).remove(0);
    ua.hangup(at(1.1), call).expect("hangup is taken");
    assert!(sent(&mut ua).is_empty(), "the BYE waits for the ACK");
    ua.handle_message(at(1.2), ack_of(&ok, "").as_bytes())
        .expect("parses");
    let bye = sent(&mut ua).remove(0);
    assert!(bye.starts_with("BYE "), "{bye}");
    assert!(events(&mut ua).is_empty(), "never reported up");
    ua.handle_message(at(1.3), &answer(&bye, 200, "OK", ""))
        .expect("parses");
    assert_eq!(events(&mut ua), [ended(call, 487, "Request Terminated")]);
}

#[test]
fn a_proxy_challenge_is_answered_once() {
    let mut ua = ua();
    let (call, invite) = calling(&mut ua);
    let challenge = |req: &str| {
        let m = parse(req);
        let mut b = response_to(&m, 407, "Proxy Authentication Required", Some("px"));
        b.header(
            "Proxy-Authenticate",
            "Digest realm=\"pbx.example\", nonce=\"n1\", qop=\"auth\", algorithm=SHA-256",
        );
        b.finish(None, b"")
    };
    ua.handle_message(at(0.1), &challenge(&invite))
        .expect("parses");
    let frames = sent(&mut ua);
    let again = frames
        .iter()
        .find(|f| f.starts_with("INVITE "))
        .expect("the INVITE again");
    let m = parse(again);
    assert_eq!(m.cseq().seq, 2);
    assert!(
        m.header(HeaderName::ProxyAuthorization)
            .is_some_and(|v| v.contains("username=\"alice\"") && v.contains("algorithm=SHA-256")),
        "{again}"
    );
    assert_eq!(m.body(), OFFER.as_bytes());
    // A second challenge means the password is wrong: the call fails.
    ua.handle_message(at(0.2), &challenge(again))
        .expect("parses");
    sent(&mut ua);
    assert_eq!(
        events(&mut ua),
        [ended(call, 407, "Proxy Authentication Required")]
    );
}

#[test]
fn refusals_timeouts_and_a_closed_transport_end_calls_with_their_code() {
    let mut ua = ua();
    let (busy, invite) = calling(&mut ua);
    ua.handle_message(at(0.1), &answer(&invite, 486, "Busy Here", ""))
        .expect("parses");
    assert!(sent(&mut ua).iter().any(|f| f.starts_with("ACK ")));
    assert_eq!(events(&mut ua), [ended(busy, 486, "Busy Here")]);

    let (silent, _) = calling(&mut ua);
    ua.handle_timeout(at(33.0));
    assert_eq!(events(&mut ua), [ended(silent, 408, "Request Timeout")]);

    let (dropped, _) = calling(&mut ua);
    ua.transport_closed(at(40.0));
    assert!(events(&mut ua).contains(&ended(dropped, 503, "Transport Closed")));
    assert_eq!(
        ua.call(at(41.0), TARGET, OFFER),
        Err(ActionError::NotConnected),
        "no transport, no call"
    );
}

/// An INVITE from the far end through the relay, with or without an offer.
fn incoming_invite(branch: &str, with_offer: bool) -> String {
    let body = if with_offer { OFFER } else { "" };
    let ct = if with_offer {
        "Content-Type: application/sdp\r\n"
    } else {
        ""
    };
    format!(
        "INVITE sip:x@a.invalid;transport=ws SIP/2.0\r\nVia: SIP/2.0/WSS relay.example;branch=z9hG4bK{branch}\r\n\
Max-Forwards: 69\r\nRecord-Route: <sip:tok@relay.example;transport=ws;lr;r2=on>, <sip:192.0.2.10:5070;lr;r2=on>\r\n\
From: \"Bob\" <sip:bob@pbx.example>;tag=b1\r\nTo: <sip:alice@pbx.example>\r\nCall-ID: in-{branch}\r\n\
CSeq: 10 INVITE\r\nContact: <sip:bob@10.0.0.7:5062>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

fn incoming(ua: &mut UserAgent, branch: &str, with_offer: bool) -> (CallId, String) {
    let invite = incoming_invite(branch, with_offer);
    ua.handle_message(at(0.0), invite.as_bytes())
        .expect("parses");
    let evs = events(ua);
    let [
        Event::Incoming {
            call,
            from,
            display_name,
            sdp,
            ..
        },
    ] = &evs[..]
    else {
        panic!("one incoming call: {evs:?}")
    };
    assert_eq!(
        (from.as_str(), display_name.as_deref()),
        ("sip:bob@pbx.example", Some("Bob"))
    );
    assert_eq!(sdp.is_some(), with_offer);
    (*call, invite)
}

/// The far end's ACK of our 200, in the dialog the 200 made.
fn ack_of(ok: &str, body: &str) -> String {
    let m = parse(ok);
    let ct = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/sdp\r\n"
    };
    format!(
        "ACK sip:x@a.invalid SIP/2.0\r\nVia: SIP/2.0/WSS relay.example;branch=z9hG4bKack\r\nMax-Forwards: 69\r\n\
From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 10 ACK\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        m.header(HeaderName::From).expect("from"),
        m.header(HeaderName::To).expect("to"),
        m.call_id(),
        body.len()
    )
}

#[test]
fn an_incoming_call_rings_is_answered_and_confirmed_by_its_ack() {
    let mut ua = ua();
    let (call, _) = incoming(&mut ua, "in1", true);
    ua.ringing(at(0.1), call).expect("ringing is taken");
    let ringing = sent(&mut ua).remove(0);
    let r = parse(&ringing);
    assert_eq!(r.status(), Some(180));
    let tag = r.to().tag().expect("our tag").to_owned();
    ua.answer(at(1.0), call, ANSWER).expect("answer is taken");
    let ok = sent(&mut ua).remove(0);
    let m = parse(&ok);
    assert_eq!(m.status(), Some(200));
    assert_eq!(m.to().tag(), Some(tag.as_str()), "the same tag as the 180");
    assert_eq!(m.body(), ANSWER.as_bytes());
    assert_eq!(
        m.header_values(HeaderName::RecordRoute).count(),
        2,
        "the Record-Route goes back"
    );
    assert!(m.header(HeaderName::Contact).is_some());
    // Retransmitted until the ACK (T1, then 2·T1…), end to end.
    ua.handle_timeout(at(1.5));
    assert_eq!(sent(&mut ua), std::slice::from_ref(&ok));
    ua.handle_message(at(1.7), ack_of(&ok, "").as_bytes())
        .expect("parses");
    assert_eq!(
        events(&mut ua),
        [Event::Accepted {
            call,
            sdp: String::new()
        }]
    );
    ua.handle_timeout(at(3.0));
    assert!(sent(&mut ua).is_empty(), "no retransmission after the ACK");

    // We hang up: BYE along the Record-Route in its order, our tag in From.
    ua.hangup(at(5.0), call).expect("hangup is taken");
    let bye = sent(&mut ua).remove(0);
    let b = parse(&bye);
    assert_eq!(b.request_uri(), Some("sip:bob@10.0.0.7:5062"));
    assert_eq!(
        b.header_values(HeaderName::Route).next(),
        Some("<sip:tok@relay.example;transport=ws;lr;r2=on>")
    );
    assert_eq!(b.from().tag(), Some(tag.as_str()));
    ua.handle_message(at(5.1), &answer(&bye, 200, "OK", ""))
        .expect("parses");
    assert!(matches!(
        events(&mut ua)[..],
        [Event::Hangup { code: None, .. }]
    ));
}

#[test]
fn an_offerless_invite_gets_our_offer_and_its_answer_comes_in_the_ack() {
    let mut ua = ua();
    let (call, _) = incoming(&mut ua, "in2", false);
    ua.answer(at(0.5), call, OFFER).expect("answer is taken");
    let ok = sent(&mut ua).remove(0);
    assert_eq!(parse(&ok).body(), OFFER.as_bytes());
    ua.handle_message(at(0.6), ack_of(&ok, ANSWER).as_bytes())
        .expect("parses");
    assert_eq!(
        events(&mut ua),
        [Event::Accepted {
            call,
            sdp: ANSWER.into()
        }]
    );
}

#[test]
fn declining_cancelling_and_a_lost_ack_end_incoming_calls() {
    let mut ua = ua();
    // Declined with the app's code.
    let (busy, _) = incoming(&mut ua, "in3", true);
    ua.decline(at(0.1), busy, 486, "Busy Here")
        .expect("decline is taken");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 486 Busy Here"));
    assert_eq!(events(&mut ua), [ended(busy, 486, "Busy Here")]);

    // Cancelled while it rings: 200 to the CANCEL, 487 to the INVITE.
    let (ringing, invite) = incoming(&mut ua, "in4", true);
    ua.ringing(at(0.2), ringing).expect("ringing is taken");
    sent(&mut ua);
    let cancel = invite
        .replacen("INVITE sip:", "CANCEL sip:", 1)
        .replace("CSeq: 10 INVITE", "CSeq: 10 CANCEL");
    let cancel = cancel[..cancel.find("Contact:").expect("contact")].to_owned()
        + "Content-Length: 0\r\n\r\n";
    ua.handle_message(at(0.3), cancel.as_bytes())
        .expect("parses");
    let frames = sent(&mut ua);
    assert!(
        frames.iter().any(|f| f.starts_with("SIP/2.0 487")),
        "{frames:?}"
    );
    assert!(
        frames
            .iter()
            .any(|f| f.starts_with("SIP/2.0 200") && f.contains("CANCEL")),
        "{frames:?}"
    );
    assert_eq!(events(&mut ua), [ended(ringing, 487, "Request Terminated")]);

    // Answered, but the ACK never comes: BYE after 64·T1.
    let (lost, _) = incoming(&mut ua, "in5", true);
    ua.answer(at(1.0), lost, ANSWER).expect("answer is taken");
    sent(&mut ua);
    for s in 2..=33 {
        ua.handle_timeout(at(f64::from(s)));
    }
    let frames = sent(&mut ua);
    assert!(frames.iter().any(|f| f.starts_with("BYE ")), "{frames:?}");
    assert!(events(&mut ua).contains(&ended(lost, 408, "No ACK")));
}

const HOLD: &str = "v=0\r\no=- 1 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=sendonly\r\n";

/// The far end's re-INVITE in the dialog the ACK `ack` belongs to.
fn far_reinvite(ack: &str, cseq: u32, body: &str) -> String {
    let a = parse(ack);
    format!(
        "INVITE sip:x@a.invalid SIP/2.0\r\nVia: SIP/2.0/WSS relay.example;branch=z9hG4bKre{cseq}\r\nMax-Forwards: 69\r\n\
From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:bob@10.0.0.7:5062>\r\n\
Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        a.header(HeaderName::To).expect("to"),
        a.header(HeaderName::From).expect("from"),
        a.call_id(),
        body.len()
    )
}

#[test]
fn a_re_invite_puts_the_call_on_hold_and_is_acknowledged() {
    let mut ua = ua();
    let (call, _, _) = answered(&mut ua);
    assert_eq!(ua.update(at(2.0), call, HOLD), Ok(()));
    assert_eq!(
        ua.update(at(2.0), call, OFFER),
        Err(ActionError::ChangePending(call)),
        "one re-INVITE at a time"
    );
    let reinvite = sent(&mut ua).remove(0);
    let m = parse(&reinvite);
    assert_eq!((m.method(), m.cseq().seq), (Some(Method::Invite), 2));
    assert_eq!(m.request_uri(), Some("sip:bob@10.0.0.7:5062"));
    assert_eq!(m.to().tag(), Some("b9"), "in the dialog");
    assert_eq!(m.body(), HOLD.as_bytes());
    ua.handle_message(at(2.1), &answer(&reinvite, 200, "OK", ANSWER))
        .expect("parses");
    let ack = sent(&mut ua).remove(0);
    assert!(
        ack.starts_with("ACK ") && ack.contains("CSeq: 2 ACK"),
        "{ack}"
    );
    assert_eq!(
        events(&mut ua),
        [
            Event::Updated {
                call,
                sdp: ANSWER.into()
            },
            Event::Hold {
                call,
                held: true,
                by: HoldBy::Local
            }
        ]
    );
    // A refused re-INVITE leaves the call as it was.
    assert_eq!(ua.update(at(3.0), call, OFFER), Ok(()));
    let again = sent(&mut ua).remove(0);
    ua.handle_message(at(3.1), &answer(&again, 488, "Not Acceptable Here", ""))
        .expect("parses");
    sent(&mut ua);
    assert_eq!(
        events(&mut ua),
        [Event::UpdateFailed {
            call,
            code: 488,
            reason: "Not Acceptable Here".into()
        }]
    );
}

/// A call of ours, answered with a 120 s session timer that we refresh.
fn answered_with_timer(ua: &mut UserAgent) -> CallId {
    let (call, invite) = calling(ua);
    ua.handle_message(at(1.0), &answer_with_timer(&invite, "120;refresher=uac"))
        .expect("parses");
    sent(ua);
    assert!(matches!(&events(ua)[..], [Event::Accepted { .. }]));
    call
}

#[test]
fn a_challenged_re_invite_goes_again_with_credentials_for_a_hold_and_a_refresh() {
    let challenge = |req: &str, nonce: &str| {
        let m = parse(req);
        let mut b = response_to(&m, 407, "Proxy Authentication Required", None);
        b.header(
            "Proxy-Authenticate",
            &format!("Digest realm=\"pbx.example\", nonce=\"{nonce}\", qop=\"auth\""),
        );
        b.finish(None, b"")
    };
    let authorized = |frame: &str| {
        parse(frame)
            .header(HeaderName::ProxyAuthorization)
            .is_some_and(|v| v.contains("username=\"alice\""))
    };
    let mut ua = ua();
    let call = answered_with_timer(&mut ua);

    // The app's hold, challenged: the same re-INVITE with credentials,
    // the next CSeq, and the app hears only of the outcome.
    assert_eq!(ua.update(at(2.0), call, HOLD), Ok(()));
    let hold = sent(&mut ua).remove(0);
    assert!(!authorized(&hold));
    ua.handle_message(at(2.1), &challenge(&hold, "n1"))
        .expect("parses");
    let again = sent(&mut ua)
        .into_iter()
        .find(|f| f.starts_with("INVITE "))
        .expect("the re-INVITE again");
    assert!(authorized(&again), "{again}");
    assert_eq!(parse(&again).cseq().seq, parse(&hold).cseq().seq + 1);
    assert_eq!(parse(&again).body(), HOLD.as_bytes());
    assert_eq!(events(&mut ua), [], "no failure for the app");
    ua.handle_message(at(2.2), &answer_with_timer(&again, "120;refresher=uac"))
        .expect("parses");
    sent(&mut ua);
    assert!(matches!(
        &events(&mut ua)[..],
        [Event::Updated { .. }, Event::Hold { held: true, .. }]
    ));

    // The refresh at half the interval, challenged with a new nonce: sent
    // again with credentials, and the call goes on.
    ua.handle_timeout(at(62.2));
    let refresh = sent(&mut ua).remove(0);
    ua.handle_message(at(62.3), &challenge(&refresh, "n2"))
        .expect("parses");
    let again = sent(&mut ua)
        .into_iter()
        .find(|f| f.starts_with("INVITE "))
        .expect("the refresh again");
    assert!(
        authorized(&again) && again.contains("nonce=\"n2\""),
        "{again}"
    );
    ua.handle_message(at(62.4), &answer_with_timer(&again, "120;refresher=uac"))
        .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("ACK "));
    assert_eq!(events(&mut ua), [], "a refresh is not the app's business");

    // Credentials refused (a second challenge for the same realm): the
    // app's change fails, the call stays.
    assert_eq!(ua.update(at(70.0), call, OFFER), Ok(()));
    let change = sent(&mut ua).remove(0);
    ua.handle_message(at(70.1), &challenge(&change, "n3"))
        .expect("parses");
    let again = sent(&mut ua)
        .into_iter()
        .find(|f| f.starts_with("INVITE "))
        .expect("answered once");
    ua.handle_message(at(70.2), &challenge(&again, "n4"))
        .expect("parses");
    sent(&mut ua);
    assert_eq!(
        events(&mut ua),
        [Event::UpdateFailed {
            call,
            code: 407,
            reason: "Proxy Authentication Required".into()
        }]
    );
}

#[test]
fn glare_is_answered_491_and_our_re_invite_retried_after_the_wait() {
    let mut ua = ua();
    let (call, _, ack) = answered(&mut ua);
    assert_eq!(
        ua.with_headers(&[("X-Crm-Id", "42")], |ua| ua.update(at(2.0), call, HOLD)),
        Ok(Ok(()))
    );
    let ours = sent(&mut ua).remove(0);
    // Theirs crosses ours: 491 for it.
    ua.handle_message(at(2.01), far_reinvite(&ack, 5, OFFER).as_bytes())
        .expect("parses");
    let frames = sent(&mut ua);
    assert!(
        frames[0].starts_with("SIP/2.0 491 Request Pending"),
        "{frames:?}"
    );
    // Ours gets 491 too: as the caller (owner of the Call-ID) we wait
    // 2.1–4 s (RFC 3261 §14.1), then send it again.
    ua.handle_message(at(2.02), &answer(&ours, 491, "Request Pending", ""))
        .expect("parses");
    sent(&mut ua);
    ua.handle_timeout(at(4.0));
    assert!(
        !sent(&mut ua).iter().any(|f| f.starts_with("INVITE ")),
        "not before 2.1 s"
    );
    ua.handle_timeout(at(6.1));
    let retry = sent(&mut ua);
    let retry = retry
        .iter()
        .find(|f| f.starts_with("INVITE "))
        .expect("the re-INVITE again");
    assert_eq!(parse(retry).cseq().seq, 3);
    assert_eq!(parse(retry).body(), HOLD.as_bytes());
    // The app's headers go with the retry as they went with the first.
    assert!(ours.contains("X-Crm-Id: 42"), "{ours}");
    assert!(retry.contains("X-Crm-Id: 42"), "{retry}");
    assert!(
        events(&mut ua).is_empty(),
        "glare is not the app's business"
    );
}

#[test]
fn the_far_end_s_re_invite_is_answered_by_the_app_and_acknowledged() {
    let mut ua = ua();
    let (call, _, ack) = answered(&mut ua);
    let theirs = far_reinvite(&ack, 2, HOLD);
    ua.handle_message(at(3.0), theirs.as_bytes())
        .expect("parses");
    assert_eq!(
        events(&mut ua),
        [Event::Updating {
            call,
            sdp: Some(HOLD.into())
        }]
    );
    let recvonly = HOLD.replace("sendonly", "recvonly");
    ua.answer(at(3.1), call, &recvonly)
        .expect("answer is taken");
    let ok = sent(&mut ua).remove(0);
    assert!(ok.starts_with("SIP/2.0 200 OK"), "{ok}");
    assert_eq!(parse(&ok).body(), recvonly.as_bytes());
    ua.handle_timeout(at(3.6));
    assert_eq!(sent(&mut ua), std::slice::from_ref(&ok), "until the ACK");
    let their_ack = ack_of(&ok, "").replace("CSeq: 10 ACK", "CSeq: 2 ACK");
    ua.handle_message(at(3.7), their_ack.as_bytes())
        .expect("parses");
    ua.handle_timeout(at(5.0));
    assert!(sent(&mut ua).is_empty(), "acknowledged");
    // Their sendonly offer, answered: they hold us.
    assert_eq!(
        events(&mut ua),
        [Event::Hold {
            call,
            held: true,
            by: HoldBy::Remote
        }]
    );
    assert!(!ua.held(call), "we do not hold it ourselves");
    assert_eq!(
        ua.update(at(6.0), call, OFFER),
        Ok(()),
        "the call is free again"
    );
}

#[test]
fn messages_go_out_and_come_in_with_their_outcome() {
    use sipline_core::MessageId;
    let mut ua = ua();
    let id = ua
        .message(at(0.0), "sip:bob@pbx.example", "text/plain", "hello bob")
        .expect("sent");
    let out = sent(&mut ua).remove(0);
    let m = parse(&out);
    assert_eq!(
        (m.method(), m.request_uri()),
        (Some(Method::Message), Some("sip:bob@pbx.example"))
    );
    assert_eq!(m.body(), b"hello bob");
    assert_eq!(m.header(HeaderName::ContentType), Some("text/plain"));
    ua.handle_message(at(0.1), &answer(&out, 202, "Accepted", ""))
        .expect("parses");
    assert_eq!(events(&mut ua), [Event::MessageSent { id }]);
    let refused = ua
        .message(at(1.0), "sip:nobody@pbx.example", "text/plain", "?")
        .expect("sent");
    let out = sent(&mut ua).remove(0);
    ua.handle_message(at(1.1), &answer(&out, 404, "Not Found", ""))
        .expect("parses");
    assert_eq!(
        events(&mut ua),
        [Event::MessageFailed {
            id: refused,
            code: 404,
            reason: "Not Found".into()
        }]
    );
    assert_ne!(id, MessageId(0));

    // One arrives, outside any call.
    let incoming = "MESSAGE sip:x@a.invalid SIP/2.0\r\nVia: SIP/2.0/WSS relay.example;branch=z9hG4bKm1\r\nMax-Forwards: 69\r\n\
From: <sip:bob@pbx.example>;tag=m\r\nTo: <sip:alice@pbx.example>\r\nCall-ID: msg-1\r\nCSeq: 1 MESSAGE\r\n\
Content-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi";
    ua.handle_message(at(2.0), incoming.as_bytes())
        .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 200 OK"));
    assert_eq!(
        events(&mut ua),
        [Event::Message {
            call: None,
            from: "sip:bob@pbx.example".into(),
            content_type: "text/plain".into(),
            body: "hi".into(),
            headers: vec![],
        }]
    );
}

#[test]
fn dtmf_as_sip_info_goes_both_ways_in_a_call() {
    let mut ua = ua();
    let (call, _, ack) = answered(&mut ua);
    assert_eq!(ua.send_dtmf_info(at(2.0), call, '5', 160), Ok(()));
    assert_eq!(
        ua.send_dtmf_info(at(2.0), call, 'x', 160),
        Err(ActionError::BadDigit('x')),
        "not a DTMF digit"
    );
    let info = sent(&mut ua).remove(0);
    let m = parse(&info);
    assert_eq!(m.method(), Some(Method::Info));
    assert_eq!(
        m.header(HeaderName::ContentType),
        Some("application/dtmf-relay")
    );
    assert_eq!(m.body(), b"Signal=5\r\nDuration=160\r\n");
    assert_eq!(m.to().tag(), Some("b9"), "in the call's dialog");
    assert_eq!(
        ua.call_message(at(2.1), call, "text/plain", "in call"),
        Ok(())
    );
    assert!(sent(&mut ua)[0].starts_with("MESSAGE sip:bob@10.0.0.7:5062"));

    // The far end's INFO: a digit event for the app.
    let a = parse(&ack);
    let theirs = format!(
        "INFO sip:x@a.invalid SIP/2.0\r\nVia: SIP/2.0/WSS relay.example;branch=z9hG4bKi1\r\nMax-Forwards: 69\r\n\
From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 3 INFO\r\nContent-Type: application/dtmf-relay\r\n\
Content-Length: 24\r\n\r\nSignal=#\r\nDuration=250\r\n",
        a.header(HeaderName::To).expect("to"),
        a.header(HeaderName::From).expect("from"),
        a.call_id()
    );
    ua.handle_message(at(3.0), theirs.as_bytes())
        .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 200 OK"));
    assert_eq!(
        events(&mut ua),
        [Event::Dtmf {
            call,
            digit: '#',
            duration_ms: 250
        }]
    );
}

#[test]
fn info_of_any_type_goes_both_ways_with_its_outcome() {
    let mut ua = ua();
    let (call, _, ack) = answered(&mut ua);
    let id = ua
        .info(at(2.0), call, "application/x-crm+json", r#"{"case":42}"#)
        .expect("sent");
    assert_eq!(
        ua.info(at(2.0), call, "text/plain\r\nX-Evil: 1", "x"),
        Err(ActionError::BadText("content_type"))
    );
    let info = sent(&mut ua).remove(0);
    let m = parse(&info);
    assert_eq!(m.method(), Some(Method::Info));
    assert_eq!(
        m.header(HeaderName::ContentType),
        Some("application/x-crm+json")
    );
    assert_eq!(m.body(), br#"{"case":42}"#);
    assert_eq!(m.to().tag(), Some("b9"), "in the call's dialog");
    ua.handle_message(at(2.1), &answer(&info, 200, "OK", ""))
        .expect("parses");
    assert_eq!(
        events(&mut ua),
        [Event::InfoAnswered {
            call,
            id,
            code: 200,
            reason: "OK".into()
        }]
    );
    // A refusal is reported too, with its own id.
    let id2 = ua
        .info(at(2.2), call, "text/plain", "second")
        .expect("sent");
    assert_ne!(id, id2);
    let info = sent(&mut ua).remove(0);
    ua.handle_message(at(2.3), &answer(&info, 415, "Unsupported Media Type", ""))
        .expect("parses");
    assert_eq!(
        events(&mut ua),
        [Event::InfoAnswered {
            call,
            id: id2,
            code: 415,
            reason: "Unsupported Media Type".into()
        }]
    );

    // The far end's: reported with its type and body; an empty one (a
    // keep-alive) only answered.
    let a = parse(&ack);
    let theirs = |cseq: u32, content_type: &str, body: &str| {
        format!(
            "INFO sip:x@a.invalid SIP/2.0\r\nVia: SIP/2.0/WSS relay.example;branch=z9hG4bKinfo{cseq}\r\nMax-Forwards: 69\r\n\
From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} INFO\r\nContent-Type: {content_type}\r\n\
Content-Length: {}\r\n\r\n{body}",
            a.header(HeaderName::To).expect("to"),
            a.header(HeaderName::From).expect("from"),
            a.call_id(),
            body.len()
        )
    };
    ua.handle_message(
        at(3.0),
        theirs(3, "application/vnd.queue+xml", "<queue>7</queue>").as_bytes(),
    )
    .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 200 OK"));
    assert_eq!(
        events(&mut ua),
        [Event::Info {
            call,
            content_type: "application/vnd.queue+xml".into(),
            body: "<queue>7</queue>".into(),
            headers: vec![],
        }]
    );
    ua.handle_message(at(3.1), theirs(4, "text/plain", "").as_bytes())
        .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 200 OK"));
    assert_eq!(events(&mut ua), [], "an empty INFO is a keep-alive");
    ua.handle_message(
        at(3.2),
        theirs(5, "application/dtmf-relay", "Nonsense").as_bytes(),
    )
    .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 400 Bad Request"));
}

#[test]
fn recording_is_asked_for_with_a_record_info_and_its_answer_says_where_it_stands() {
    let mut ua = ua();
    let (call, _, _) = answered(&mut ua);
    let on = ua.record(at(2.0), call, true).expect("sent");
    let info = sent(&mut ua).remove(0);
    let m = parse(&info);
    assert_eq!(m.method(), Some(Method::Info));
    assert_eq!(m.header(HeaderName::Other("Record")), Some("on"));
    assert!(m.body().is_empty(), "no body: {info}");
    assert_eq!(m.to().tag(), Some("b9"), "in the call's dialog");
    ua.handle_message(at(2.1), &answer(&info, 200, "OK", ""))
        .expect("parses");
    assert_eq!(
        events(&mut ua),
        [Event::Recording {
            call,
            id: on,
            state: Recording::Started,
            code: 200,
            reason: "OK".into()
        }]
    );
    let off = ua.record(at(3.0), call, false).expect("sent");
    let info = sent(&mut ua).remove(0);
    assert_eq!(
        parse(&info).header(HeaderName::Other("Record")),
        Some("off")
    );
    ua.handle_message(at(3.1), &answer(&info, 200, "OK", ""))
        .expect("parses");
    assert_eq!(
        events(&mut ua),
        [Event::Recording {
            call,
            id: off,
            state: Recording::Stopped,
            code: 200,
            reason: "OK".into()
        }]
    );
    // Refused (a relay that does not record on demand), or unanswered.
    let refused = ua.record(at(4.0), call, true).expect("sent");
    let info = sent(&mut ua).remove(0);
    ua.handle_message(at(4.1), &answer(&info, 403, "Recording Disabled", ""))
        .expect("parses");
    assert_eq!(
        events(&mut ua),
        [Event::Recording {
            call,
            id: refused,
            state: Recording::Failed,
            code: 403,
            reason: "Recording Disabled".into()
        }]
    );
    let lost = ua.record(at(5.0), call, true).expect("sent");
    let _ = sent(&mut ua);
    ua.handle_timeout(at(45.0));
    let ev = events(&mut ua);
    assert!(
        ev.contains(&Event::Recording {
            call,
            id: lost,
            state: Recording::Failed,
            code: 408,
            reason: "Request Timeout".into()
        }),
        "{ev:?}"
    );
    // Only in a call that is up.
    assert!(ua.record(at(46.0), CallId(999), true).is_err());
}

#[test]
fn update_changes_the_session_without_an_ack_both_ways() {
    let mut ua = ua();
    let (call, _, ack) = answered(&mut ua);
    assert_eq!(ua.update_with_update(at(2.0), call, HOLD), Ok(()));
    let update = sent(&mut ua).remove(0);
    assert!(
        update.starts_with("UPDATE sip:bob@10.0.0.7:5062"),
        "{update}"
    );
    ua.handle_message(at(2.1), &answer(&update, 200, "OK", ANSWER))
        .expect("parses");
    assert!(sent(&mut ua).is_empty(), "no ACK for an UPDATE");
    assert_eq!(
        events(&mut ua),
        [
            Event::Updated {
                call,
                sdp: ANSWER.into()
            },
            Event::Hold {
                call,
                held: true,
                by: HoldBy::Local
            }
        ]
    );
    // Theirs: answered once, nothing retransmitted.
    let theirs = far_reinvite(&ack, 2, HOLD)
        .replacen("INVITE sip:", "UPDATE sip:", 1)
        .replace("CSeq: 2 INVITE", "CSeq: 2 UPDATE");
    ua.handle_message(at(3.0), theirs.as_bytes())
        .expect("parses");
    assert!(matches!(events(&mut ua)[..], [Event::Updating { .. }]));
    ua.answer(at(3.1), call, ANSWER).expect("answer is taken");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 200 OK"));
    ua.handle_timeout(at(5.0));
    assert!(sent(&mut ua).is_empty());
    assert_eq!(ua.update(at(6.0), call, OFFER), Ok(()), "nothing pending");
}

/// `answer`, from a fork with tag `tag` and Contact host `host`.
fn fork_answer(request: &str, code: u16, reason: &str, tag: &str, host: &str) -> Vec<u8> {
    let req = parse(request);
    let mut b = response_to(&req, code, reason, Some(tag));
    b.header("Contact", &format!("<sip:bob@{host}>"));
    b.finish(Some("application/sdp"), ANSWER.as_bytes())
}

#[test]
fn forks_a_cancel_without_answer_and_a_cancel_after_100_are_handled() {
    // Early media from fork A, the 200 from fork B: the call is B's.
    let mut ua = ua();
    let (call, invite) = calling(&mut ua);
    ua.handle_message(
        at(0.1),
        &fork_answer(&invite, 183, "Session Progress", "fa", "10.0.0.21"),
    )
    .expect("parses");
    ua.handle_message(at(0.2), &fork_answer(&invite, 200, "OK", "fb", "10.0.0.22"))
        .expect("parses");
    let ack = sent(&mut ua).remove(0);
    assert!(ack.starts_with("ACK sip:bob@10.0.0.22"), "{ack}");
    assert_eq!(parse(&ack).to().tag(), Some("fb"));
    // Fork A answers too: acknowledged and hung up at once.
    ua.handle_message(at(0.3), &fork_answer(&invite, 200, "OK", "fa", "10.0.0.21"))
        .expect("parses");
    let frames = sent(&mut ua);
    assert!(
        frames.len() == 2
            && frames[0].starts_with("ACK sip:bob@10.0.0.21")
            && frames[1].starts_with("BYE sip:bob@10.0.0.21"),
        "{frames:?}"
    );
    assert!(matches!(
        events(&mut ua)[..],
        [Event::Progress { .. }, Event::Accepted { call: c, .. }] if c == call
    ));

    // A CANCEL whose INVITE never gets its final answer: given up after
    // 64·T1, reported as cancelled.
    let (call, invite) = calling(&mut ua);
    ua.handle_message(at(1.0), &answer(&invite, 100, "Trying", ""))
        .expect("parses");
    ua.hangup(at(1.1), call).expect("hangup is taken");
    assert!(
        sent(&mut ua)[0].starts_with("CANCEL "),
        "a 100 is enough to cancel"
    );
    ua.handle_timeout(at(34.0));
    assert!(events(&mut ua).contains(&ended(call, 487, "Request Terminated")));
}

#[test]
fn a_bodyless_update_is_answered_at_once_and_bye_ends_a_waiting_re_invite() {
    let mut ua = ua();
    let (call, _, ack) = answered(&mut ua);
    let refresh = far_reinvite(&ack, 2, "")
        .replacen("INVITE sip:", "UPDATE sip:", 1)
        .replace("CSeq: 2 INVITE", "CSeq: 2 UPDATE")
        .replace("Content-Type: application/sdp\r\n", "");
    ua.handle_message(at(2.0), refresh.as_bytes())
        .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 200 OK"));
    assert!(
        events(&mut ua).is_empty(),
        "a session refresh is not the app's"
    );

    // Their re-INVITE waits for the app, then they hang up: 487 for it.
    ua.handle_message(at(3.0), far_reinvite(&ack, 3, HOLD).as_bytes())
        .expect("parses");
    events(&mut ua);
    let a = parse(&ack);
    let bye = format!(
        "BYE sip:x@a.invalid SIP/2.0\r\nVia: SIP/2.0/WSS relay.example;branch=z9hG4bKb4\r\nMax-Forwards: 69\r\n\
From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 4 BYE\r\nContent-Length: 0\r\n\r\n",
        a.header(HeaderName::To).expect("to"),
        a.header(HeaderName::From).expect("from"),
        a.call_id()
    );
    ua.handle_message(at(3.5), bye.as_bytes()).expect("parses");
    let frames = sent(&mut ua);
    assert!(
        frames.iter().any(|f| f.starts_with("SIP/2.0 487")),
        "{frames:?}"
    );
    assert!(
        frames.iter().any(|f| f.starts_with("SIP/2.0 200 OK")),
        "{frames:?}"
    );
    assert_eq!(events(&mut ua), [bye_ended(call)]);
}

#[test]
fn a_re_invite_s_2xx_retransmission_is_acknowledged_and_a_stuck_one_gives_up() {
    let mut ua = ua();
    let (call, _, _) = answered(&mut ua);
    assert_eq!(ua.update(at(2.0), call, HOLD), Ok(()));
    let reinvite = sent(&mut ua).remove(0);
    let ok = answer(&reinvite, 200, "OK", ANSWER);
    ua.handle_message(at(2.1), &ok).expect("parses");
    let ack = sent(&mut ua).remove(0);
    events(&mut ua);
    ua.handle_message(at(2.6), &ok).expect("parses");
    assert_eq!(
        sent(&mut ua),
        std::slice::from_ref(&ack),
        "the same ACK, CSeq 2"
    );
    assert!(events(&mut ua).is_empty());

    // A re-INVITE answered only with 100 Trying gives up after Timer C.
    assert_eq!(ua.update(at(3.0), call, OFFER), Ok(()));
    let stuck = sent(&mut ua).remove(0);
    ua.handle_message(at(3.1), &answer(&stuck, 100, "Trying", ""))
        .expect("parses");
    ua.handle_timeout(at(200.0));
    assert!(events(&mut ua).contains(&Event::UpdateFailed {
        call,
        code: 408,
        reason: "Request Timeout".into()
    }));
    assert_eq!(
        ua.update(at(201.0), call, OFFER),
        Ok(()),
        "the call is free again"
    );
}

/// The far end's NOTIFY of a REFER subscription in the dialog of `ack`.
fn refer_notify(ack: &str, cseq: u32, state: &str, sipfrag: &str) -> String {
    let a = parse(ack);
    format!(
        "NOTIFY sip:x@a.invalid SIP/2.0\r\nVia: SIP/2.0/WSS relay.example;branch=z9hG4bKn{cseq}\r\nMax-Forwards: 69\r\n\
From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} NOTIFY\r\nEvent: refer\r\nSubscription-State: {state}\r\n\
Contact: <sip:bob@10.0.0.7:5062>\r\nContent-Type: message/sipfrag;version=2.0\r\nContent-Length: {}\r\n\r\n{sipfrag}",
        a.header(HeaderName::To).expect("to"),
        a.header(HeaderName::From).expect("from"),
        a.call_id(),
        sipfrag.len()
    )
}

fn transfer(call: CallId, code: u16, reason: &str, done: bool) -> Event {
    Event::Transfer {
        call,
        code,
        reason: reason.into(),
        done,
    }
}

#[test]
fn a_blind_transfer_sends_refer_and_reports_the_notify_progress() {
    let mut ua = ua();
    let (call, _, ack) = answered(&mut ua);
    assert_eq!(
        ua.transfer(at(2.0), call, "not a uri"),
        Err(ActionError::BadTarget("target")),
        "a SIP URI only"
    );
    assert_eq!(
        ua.transfer(at(2.0), CallId(99), "sip:carol@pbx.example"),
        Err(ActionError::NoSuchCall(CallId(99)))
    );
    assert_eq!(ua.transfer(at(2.0), call, "sip:carol@pbx.example"), Ok(()));
    let refer = sent(&mut ua).remove(0);
    let m = parse(&refer);
    assert_eq!(m.method(), Some(Method::Refer));
    assert_eq!(
        m.request_uri(),
        Some("sip:bob@10.0.0.7:5062"),
        "in the dialog"
    );
    assert_eq!(m.to().tag(), Some("b9"));
    assert_eq!(
        m.header(HeaderName::ReferTo),
        Some("<sip:carol@pbx.example>")
    );
    assert_eq!(
        m.header(HeaderName::Other("Referred-By")),
        Some("<sip:alice@pbx.example>")
    );
    assert!(m.header(HeaderName::Contact).is_some(), "RFC 3515 §2.1");
    ua.handle_message(at(2.1), &answer(&refer, 202, "Accepted", ""))
        .expect("parses");
    assert_eq!(events(&mut ua), [transfer(call, 202, "Accepted", false)]);

    // The far end's NOTIFYs: trying, ringing, then the target answered.
    let progress = [
        (
            2,
            "active;expires=60",
            "SIP/2.0 100 Trying\r\n",
            100,
            "Trying",
            false,
        ),
        (
            3,
            "active;expires=60",
            "SIP/2.0 180 Ringing\r\n",
            180,
            "Ringing",
            false,
        ),
        (
            4,
            "terminated;reason=noresource",
            "SIP/2.0 200 OK\r\n",
            200,
            "OK",
            true,
        ),
    ];
    for (cseq, state, frag, code, reason, done) in progress {
        ua.handle_message(at(3.0), refer_notify(&ack, cseq, state, frag).as_bytes())
            .expect("parses");
        let answers = sent(&mut ua);
        assert!(answers[0].starts_with("SIP/2.0 200 OK"), "{answers:?}");
        assert_eq!(events(&mut ua), [transfer(call, code, reason, done)]);
    }

    // The call stays up until hung up; a NOTIFY of another package is
    // refused (489), and a failed transfer is reported as done.
    let mut other = refer_notify(&ack, 5, "active", "");
    other = other.replace("Event: refer", "Event: dialog");
    ua.handle_message(at(3.5), other.as_bytes())
        .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 489 Bad Event"));
    assert_eq!(ua.transfer(at(4.0), call, "sip:dave@pbx.example"), Ok(()));
    let refer = sent(&mut ua).remove(0);
    ua.handle_message(at(4.1), &answer(&refer, 202, "Accepted", ""))
        .expect("parses");
    ua.handle_message(
        at(4.5),
        refer_notify(&ack, 6, "terminated", "SIP/2.0 486 Busy Here\r\n").as_bytes(),
    )
    .expect("parses");
    sent(&mut ua);
    assert_eq!(
        events(&mut ua),
        [
            transfer(call, 202, "Accepted", false),
            transfer(call, 486, "Busy Here", true)
        ]
    );

    // A subscription that ends before a final status is no success.
    assert_eq!(ua.transfer(at(4.6), call, "sip:frank@pbx.example"), Ok(()));
    let refer = sent(&mut ua).remove(0);
    ua.handle_message(at(4.7), &answer(&refer, 202, "Accepted", ""))
        .expect("parses");
    ua.handle_message(
        at(4.8),
        refer_notify(
            &ack,
            7,
            "terminated;reason=timeout",
            "SIP/2.0 180 Ringing\r\n",
        )
        .as_bytes(),
    )
    .expect("parses");
    sent(&mut ua);
    assert_eq!(
        events(&mut ua),
        [
            transfer(call, 202, "Accepted", false),
            transfer(
                call,
                487,
                "Subscription terminated without a final status",
                true
            )
        ]
    );

    // A refused REFER is the end of it.
    assert_eq!(ua.transfer(at(5.0), call, "sip:erin@pbx.example"), Ok(()));
    let refer = sent(&mut ua).remove(0);
    ua.handle_message(at(5.1), &answer(&refer, 603, "Declined", ""))
        .expect("parses");
    assert_eq!(events(&mut ua), [transfer(call, 603, "Declined", true)]);
    ua.hangup(at(6.0), call).expect("hangup is taken");
    assert!(sent(&mut ua)[0].starts_with("BYE "));
}

/// The far end's 2xx to our INVITE with `Session-Expires: <se>` (and its
/// Require: timer), as answer() builds it otherwise.
fn answer_with_timer(request: &str, se: &str) -> Vec<u8> {
    let text = String::from_utf8(answer(request, 200, "OK", ANSWER)).expect("utf8");
    text.replacen(
        "Content-Type:",
        &format!("Session-Expires: {se}\r\nRequire: timer\r\nContent-Type:"),
        1,
    )
    .into_bytes()
}

#[test]
fn session_timers_as_caller_ask_retry_a_422_and_refresh_at_half_the_interval() {
    let mut ua = ua();
    let (call, invite) = calling(&mut ua);
    let m = parse(&invite);
    assert_eq!(m.header(HeaderName::SessionExpires), Some("1800"));
    assert_eq!(m.header(HeaderName::Other("Min-SE")), Some("90"));
    assert!(m.header_values(HeaderName::Supported).any(|v| v == "timer"));

    // 422: once more with the Min-SE the far end asks for.
    let mut too_small =
        String::from_utf8(answer(&invite, 422, "Session Interval Too Small", "")).expect("utf8");
    too_small = too_small.replacen("Content-Length", "Min-SE: 3600\r\nContent-Length", 1);
    ua.handle_message(at(0.1), too_small.as_bytes())
        .expect("parses");
    let mut frames = sent(&mut ua);
    assert!(
        frames[0].starts_with("ACK "),
        "the 422 is acknowledged: {frames:?}"
    );
    let invite = frames.remove(1);
    let m = parse(&invite);
    assert_eq!(m.header(HeaderName::SessionExpires), Some("3600"));
    assert_eq!(m.header(HeaderName::Other("Min-SE")), Some("3600"), "§7.4");
    assert_eq!(m.cseq().seq, 2);
    assert_eq!(events(&mut ua), [], "nothing for the app");

    // The 2xx makes us the refresher every 120 s: at 60 s a re-INVITE with
    // the same SDP goes, and its outcome is not the app's business.
    ua.handle_message(at(1.0), &answer_with_timer(&invite, "120;refresher=uac"))
        .expect("parses");
    sent(&mut ua);
    assert!(matches!(&events(&mut ua)[..], [Event::Accepted { .. }]));
    ua.handle_timeout(at(60.9));
    assert_eq!(sent(&mut ua), Vec::<String>::new(), "not yet");
    ua.handle_timeout(at(61.0));
    let refresh = sent(&mut ua).remove(0);
    let r = parse(&refresh);
    assert_eq!(r.method(), Some(Method::Invite));
    assert_eq!(r.to().tag(), Some("b9"), "in the dialog");
    assert_eq!(r.body(), OFFER.as_bytes(), "the session unchanged");
    assert_eq!(
        r.header(HeaderName::SessionExpires),
        Some("120;refresher=uac")
    );
    ua.handle_message(at(61.1), &answer_with_timer(&refresh, "120;refresher=uac"))
        .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("ACK "));
    assert_eq!(events(&mut ua), []);
    ua.handle_timeout(at(121.0));
    assert_eq!(
        sent(&mut ua),
        Vec::<String>::new(),
        "the next refresh: at 121.1 s"
    );

    // A refresh the far end no longer knows (481): the call ends.
    ua.handle_timeout(at(121.1));
    let refresh = sent(&mut ua).remove(0);
    ua.handle_message(
        at(121.2),
        &answer(&refresh, 481, "Call/Transaction Does Not Exist", ""),
    )
    .expect("parses");
    let frames = sent(&mut ua);
    assert!(frames.iter().any(|f| f.starts_with("BYE ")), "{frames:?}");
    assert_eq!(
        events(&mut ua),
        [ended(call, 481, "Call/Transaction Does Not Exist")]
    );
}

#[test]
fn a_hold_during_a_session_refresh_waits_for_it_then_goes() {
    let mut ua = ua();
    let call = answered_with_timer(&mut ua);
    ua.handle_timeout(at(61.0));
    let refresh = sent(&mut ua).remove(0);
    // The app holds while the refresh is out: taken, and held back (one
    // re-INVITE at a time), with no timer due meanwhile.
    assert_eq!(ua.update(at(61.05), call, HOLD), Ok(()));
    assert_eq!(sent(&mut ua), Vec::<String>::new());
    assert!(
        ua.poll_timeout().is_some_and(|t| t > at(61.05)),
        "nothing to spin on while the refresh is out"
    );
    // The refresh's 2xx: then the hold goes, with the next CSeq.
    ua.handle_message(at(61.1), &answer_with_timer(&refresh, "120;refresher=uac"))
        .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("ACK "));
    assert!(ua.poll_timeout().is_some_and(|t| t <= at(61.1)));
    ua.handle_timeout(at(61.1));
    let hold = sent(&mut ua).remove(0);
    assert!(hold.starts_with("INVITE "), "{hold}");
    assert_eq!(parse(&hold).body(), HOLD.as_bytes());
    assert_eq!(parse(&hold).cseq().seq, parse(&refresh).cseq().seq + 1);
    ua.handle_message(at(61.2), &answer_with_timer(&hold, "120;refresher=uac"))
        .expect("parses");
    assert!(matches!(
        &events(&mut ua)[..],
        [Event::Updated { call: c, .. }, Event::Hold { held: true, .. }] if *c == call
    ));
}

#[test]
fn a_session_the_far_end_stops_refreshing_ends_with_bye_before_the_interval() {
    let mut ua = ua();
    let (call, invite) = calling(&mut ua);
    ua.handle_message(at(1.0), &answer_with_timer(&invite, "90;refresher=uas"))
        .expect("parses");
    let ack = sent(&mut ua).remove(0);
    events(&mut ua);
    // Their re-INVITE at 50 s refreshes it; our 2xx carries the timer.
    ua.handle_message(
        at(50.0),
        far_reinvite(&ack, 2, OFFER)
            .replace(
                "Content-Type",
                "Session-Expires: 90;refresher=uac\r\nContent-Type",
            )
            .as_bytes(),
    )
    .expect("parses");
    assert!(matches!(&events(&mut ua)[..], [Event::Updating { .. }]));
    ua.answer(at(50.1), call, ANSWER).expect("answer is taken");
    let ok = sent(&mut ua).remove(0);
    let o = parse(&ok);
    assert_eq!(
        o.header(HeaderName::SessionExpires),
        Some("90;refresher=uac")
    );
    assert_eq!(o.header(HeaderName::Require), Some("timer"));
    // They were to refresh (uac of their re-INVITE): nothing comes, and
    // 90 s minus 30 s after it the session is over.
    ua.handle_message(
        at(50.2),
        ack_of(&ok, "")
            .replace("CSeq: 10 ACK", "CSeq: 2 ACK")
            .as_bytes(),
    )
    .expect("parses");
    ua.handle_timeout(at(110.0));
    assert_eq!(sent(&mut ua), Vec::<String>::new(), "not yet");
    assert_eq!(events(&mut ua), []);
    ua.handle_timeout(at(110.1));
    let frames = sent(&mut ua);
    assert!(frames.iter().any(|f| f.starts_with("BYE ")), "{frames:?}");
    assert_eq!(events(&mut ua), [ended(call, 408, "Session Timer Expired")]);
}

#[test]
fn session_timers_as_callee_refuse_a_short_interval_and_answer_with_the_refresher() {
    let mut ua = ua();
    let short = incoming_invite("st1", true)
        .replace("CSeq: 10 INVITE", "CSeq: 10 INVITE\r\nSession-Expires: 30");
    ua.handle_message(at(0.0), short.as_bytes())
        .expect("parses");
    let refused = sent(&mut ua).remove(0);
    assert!(refused.starts_with("SIP/2.0 422 "), "{refused}");
    assert_eq!(
        parse(&refused).header(HeaderName::Other("Min-SE")),
        Some("90")
    );
    assert_eq!(events(&mut ua), [], "never reported");

    let invite = incoming_invite("st2", true).replace(
        "CSeq: 10 INVITE",
        "CSeq: 10 INVITE\r\nSession-Expires: 1800\r\nSupported: timer",
    );
    ua.handle_message(at(1.0), invite.as_bytes())
        .expect("parses");
    let Some(Event::Incoming { call, .. }) = events(&mut ua).pop() else {
        panic!("an incoming call")
    };
    ua.answer(at(2.0), call, ANSWER).expect("answer is taken");
    let ok = sent(&mut ua).remove(0);
    let o = parse(&ok);
    assert_eq!(
        o.header(HeaderName::SessionExpires),
        Some("1800;refresher=uac"),
        "the caller supports timers: it refreshes"
    );
    assert_eq!(o.header(HeaderName::Require), Some("timer"));
    ua.handle_message(at(2.1), ack_of(&ok, "").as_bytes())
        .expect("parses");
    assert!(matches!(&events(&mut ua)[..], [Event::Accepted { .. }]));
    // Expiry 1800 − 32 s after the answer, without a refresh.
    ua.handle_timeout(at(1769.9));
    assert_eq!(events(&mut ua), []);
    ua.handle_timeout(at(1770.0));
    assert!(sent(&mut ua).iter().any(|f| f.starts_with("BYE ")));
    assert_eq!(events(&mut ua), [ended(call, 408, "Session Timer Expired")]);
}

/// The far end's provisional `code` made reliable (RFC 3262) with `rseq`.
fn reliable(request: &str, code: u16, reason: &str, rseq: u32, body: &str) -> Vec<u8> {
    made_reliable(answer(request, code, reason, body), rseq)
}

/// A provisional response made reliable (RFC 3262) with `rseq`.
fn made_reliable(response: Vec<u8>, rseq: u32) -> Vec<u8> {
    let text = String::from_utf8(response).expect("utf8");
    text.replacen(
        "Content-Length",
        &format!("Require: 100rel\r\nRSeq: {rseq}\r\nContent-Length"),
        1,
    )
    .into_bytes()
}

#[test]
fn reliable_provisional_responses_are_pracked_once_each_in_order() {
    let mut ua = ua();
    let (call, invite) = calling(&mut ua);
    assert!(
        parse(&invite)
            .header_values(HeaderName::Supported)
            .any(|v| v == "100rel")
    );
    // A reliable 183 with early media: PRACK with its RSeq, in the early
    // dialog, and the progress for the app.
    ua.handle_message(
        at(0.1),
        &reliable(&invite, 183, "Session Progress", 7, ANSWER),
    )
    .expect("parses");
    let prack = sent(&mut ua).remove(0);
    let p = parse(&prack);
    assert_eq!(p.method(), Some(Method::Prack));
    assert_eq!(p.header(HeaderName::Other("RAck")), Some("7 1 INVITE"));
    assert_eq!(p.to().tag(), Some("b9"));
    assert_eq!(p.cseq().seq, 2, "the next CSeq of the dialog");
    assert_eq!(
        events(&mut ua),
        [Event::Progress {
            call,
            sdp: ANSWER.into()
        }]
    );
    // Its retransmission, and one out of order, are dropped.
    for rseq in [7, 9] {
        ua.handle_message(
            at(0.2),
            &reliable(&invite, 183, "Session Progress", rseq, ANSWER),
        )
        .expect("parses");
        assert_eq!(sent(&mut ua), Vec::<String>::new(), "RSeq {rseq}");
        assert_eq!(events(&mut ua), [], "RSeq {rseq}");
    }
    ua.handle_message(at(0.3), &reliable(&invite, 180, "Ringing", 8, ""))
        .expect("parses");
    let prack = sent(&mut ua).remove(0);
    assert_eq!(
        parse(&prack).header(HeaderName::Other("RAck")),
        Some("8 1 INVITE")
    );
    assert_eq!(events(&mut ua), [Event::Ringing { call }]);
    // The PRACK's own 200 is absorbed; the INVITE's 200 completes the call.
    ua.handle_message(at(0.4), &answer(&prack, 200, "OK", ""))
        .expect("parses");
    ua.handle_message(at(1.0), &answer(&invite, 200, "OK", ANSWER))
        .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("ACK "));
    assert!(matches!(&events(&mut ua)[..], [Event::Accepted { .. }]));
}

#[test]
fn pracks_in_another_fork_count_that_fork_s_cseq_up_to_its_bye() {
    let mut ua = ua();
    let (call, invite) = calling(&mut ua);
    let reliable_fork = |code, reason, rseq, tag: &str, host: &str| {
        made_reliable(fork_answer(&invite, code, reason, tag, host), rseq)
    };
    let cseq_of = |frame: &str| parse(frame).cseq().seq;
    // Fork A's reliable 183 makes the call's early dialog: PRACK 2 there.
    ua.handle_message(
        at(0.1),
        &reliable_fork(183, "Session Progress", 1, "fa", "10.0.0.21"),
    )
    .expect("parses");
    assert_eq!(cseq_of(&sent(&mut ua)[0]), 2);
    // Fork B's two reliable 180s: PRACKs 2 and 3 in B's own early dialog.
    for (rseq, cseq) in [(1, 2), (2, 3)] {
        ua.handle_message(
            at(0.2),
            &reliable_fork(180, "Ringing", rseq, "fb", "10.0.0.22"),
        )
        .expect("parses");
        let prack = sent(&mut ua).remove(0);
        assert!(prack.starts_with("PRACK sip:bob@10.0.0.22"), "{prack}");
        assert_eq!(parse(&prack).to().tag(), Some("fb"));
        assert_eq!(cseq_of(&prack), cseq, "RSeq {rseq}: {prack}");
    }
    // B answers: the call is B's, and its BYE comes after B's PRACKs.
    ua.handle_message(at(0.3), &fork_answer(&invite, 200, "OK", "fb", "10.0.0.22"))
        .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("ACK sip:bob@10.0.0.22"));
    // A answers too: its BYE comes after A's PRACK.
    ua.handle_message(at(0.4), &fork_answer(&invite, 200, "OK", "fa", "10.0.0.21"))
        .expect("parses");
    let frames = sent(&mut ua);
    let bye_a = frames
        .iter()
        .find(|f| f.starts_with("BYE "))
        .expect("A's BYE");
    assert!(bye_a.starts_with("BYE sip:bob@10.0.0.21"), "{bye_a}");
    assert_eq!(cseq_of(bye_a), 3, "{bye_a}");
    ua.hangup(at(1.0), call).expect("hangup is taken");
    let bye_b = sent(&mut ua).remove(0);
    assert!(bye_b.starts_with("BYE sip:bob@10.0.0.22"), "{bye_b}");
    assert_eq!(cseq_of(&bye_b), 4, "{bye_b}");
}

#[test]
fn a_caller_requiring_100rel_gets_no_unreliable_ringing_only_the_answer() {
    let mut ua = ua();
    let invite = incoming_invite("rel1", true)
        .replace("CSeq: 10 INVITE", "CSeq: 10 INVITE\r\nRequire: 100rel");
    ua.handle_message(at(0.0), invite.as_bytes())
        .expect("parses");
    let Some(Event::Incoming { call, .. }) = events(&mut ua).pop() else {
        panic!("an incoming call")
    };
    ua.ringing(at(0.1), call).expect("ringing is taken");
    assert_eq!(sent(&mut ua), Vec::<String>::new(), "no 180 without 100rel");
    ua.answer(at(1.0), call, ANSWER).expect("answer is taken");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 200 OK"));
}

#[test]
fn the_app_s_headers_go_out_checked_and_the_chosen_incoming_ones_come_in() {
    let mut c = Config::new("sip:alice@pbx.example");
    c.register = false;
    c.incoming_header_prefixes = vec!["x-".into()];
    let mut ua = UserAgent::new(c, [7; 32]).expect("valid config");
    ua.transport_connected(at(0.0));

    // Out: on the INVITE, and on the CANCEL of a hangup.
    let call = ua
        .with_headers(&[("X-Crm-Id", "42"), ("Priority", "urgent")], |ua| {
            ua.call(at(0.0), TARGET, OFFER)
        })
        .expect("valid headers")
        .expect("a call");
    let invite = sent(&mut ua).remove(0);
    let m = parse(&invite);
    assert_eq!(m.header(HeaderName::Other("X-Crm-Id")), Some("42"));
    assert_eq!(m.header(HeaderName::Other("Priority")), Some("urgent"));
    for (name, value, error) in [
        ("Call-ID", "x", HeaderError::Reserved("Call-ID".into())),
        ("Expires", "soon", HeaderError::Reserved("Expires".into())),
        (
            "X-A",
            "1\r\nVia: forged",
            HeaderError::BadValue("X-A".into()),
        ),
        ("X B", "1", HeaderError::BadName("X B".into())),
        ("", "1", HeaderError::BadName(String::new())),
    ] {
        assert_eq!(
            ua.with_headers(&[(name, value)], |ua| ua.hangup(at(0.1), call)),
            Err(error)
        );
    }
    assert_eq!(sent(&mut ua), Vec::<String>::new(), "nothing went");
    ua.handle_message(at(0.2), &answer(&invite, 180, "Ringing", ""))
        .expect("parses");
    ua.with_headers(&[("X-Reason", "agent-busy")], |ua| ua.hangup(at(0.3), call))
        .expect("valid")
        .expect("taken");
    let cancel = sent(&mut ua).remove(0);
    assert!(cancel.starts_with("CANCEL "), "{cancel}");
    assert!(cancel.contains("X-Reason: agent-busy\r\n"), "{cancel}");
    events(&mut ua);

    // In: only the headers the prefixes name, on the call and its answer.
    let invite = incoming_invite("hdr1", true).replace(
        "CSeq: 10 INVITE",
        "CSeq: 10 INVITE\r\nX-Queue: sales\r\nP-Asserted-Identity: <sip:+15551234@pbx>",
    );
    ua.handle_message(at(1.0), invite.as_bytes())
        .expect("parses");
    let Some(Event::Incoming { call, headers, .. }) = events(&mut ua).pop() else {
        panic!("an incoming call")
    };
    assert_eq!(headers, [("X-Queue".to_owned(), "sales".to_owned())]);
    // By default the call rings as it is reported.
    let ringing = sent(&mut ua);
    assert!(
        ringing[0].starts_with("SIP/2.0 180 Ringing\r\n"),
        "{ringing:?}"
    );
    ua.with_headers(&[("X-Agent", "7")], |ua| ua.answer(at(2.0), call, ANSWER))
        .expect("valid")
        .expect("taken");
    let ok = sent(&mut ua).remove(0);
    assert!(
        ok.starts_with("SIP/2.0 200 OK") && ok.contains("X-Agent: 7\r\n"),
        "{ok}"
    );
}

#[test]
fn several_calls_live_side_by_side_on_one_registration() {
    let mut ua = ua();
    // Call A is up; B comes in meanwhile: A goes on hold, B is answered.
    let (a, invite_a, ack_a) = answered(&mut ua);
    let (b, invite_b) = incoming(&mut ua, "multi1", true);
    assert_ne!(a, b);
    assert_eq!(ua.update(at(2.0), a, HOLD), Ok(()));
    let hold = sent(&mut ua).remove(0);
    assert_eq!(parse(&hold).call_id(), parse(&invite_a).call_id());
    ua.handle_message(at(2.1), &answer(&hold, 200, "OK", ANSWER))
        .expect("parses");
    sent(&mut ua);
    ua.answer(at(2.2), b, ANSWER).expect("answer is taken");
    let ok_b = sent(&mut ua).remove(0);
    assert_eq!(parse(&ok_b).call_id(), parse(&invite_b).call_id());
    ua.handle_message(at(2.3), ack_of(&ok_b, "").as_bytes())
        .expect("parses");
    let evs = events(&mut ua);
    assert!(
        matches!(evs[0], Event::Updated { call, .. } if call == a),
        "{evs:?}"
    );
    assert!(
        matches!(evs[1], Event::Hold { call, held: true, by: HoldBy::Local } if call == a),
        "{evs:?}"
    );
    assert!(
        matches!(evs[2], Event::Accepted { call, .. } if call == b),
        "{evs:?}"
    );

    // A third, outgoing, with its own dialog; each call's requests stay
    // in their own dialog.
    let c = ua
        .call(at(3.0), "sip:carol@pbx.example", OFFER)
        .expect("a third call");
    let invite_c = sent(&mut ua).remove(0);
    events(&mut ua);
    let ids = [&invite_a, &invite_b, &invite_c].map(|i| parse(i).call_id().to_owned());
    assert!(ids[0] != ids[1] && ids[1] != ids[2] && ids[0] != ids[2]);
    assert_eq!(ua.send_dtmf_info(at(3.1), b, '1', 100), Ok(()));
    let info = sent(&mut ua).remove(0);
    assert_eq!(parse(&info).call_id(), ids[1]);

    // A's far end hangs up: only A ends.
    let m = parse(&ack_a);
    let bye = format!(
        "BYE sip:x@a.invalid SIP/2.0\r\nVia: SIP/2.0/WSS relay.example;branch=z9hG4bKbyeA\r\nMax-Forwards: 69\r\n\
From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 5 BYE\r\nContent-Length: 0\r\n\r\n",
        m.header(HeaderName::To).expect("to"),
        m.header(HeaderName::From).expect("from"),
        m.call_id()
    );
    ua.handle_message(at(4.0), bye.as_bytes()).expect("parses");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 200 OK"));
    assert_eq!(events(&mut ua), [bye_ended(a)]);
    ua.hangup(at(4.1), c).expect("hangup is taken");
    ua.handle_message(at(4.2), &answer(&invite_c, 180, "Ringing", ""))
        .expect("parses");
    assert!(sent(&mut ua).iter().any(|f| f.starts_with("CANCEL ")));
    assert_eq!(
        ua.call_message(at(4.3), b, "text/plain", "B is still up"),
        Ok(())
    );
}

#[test]
fn a_refused_offer_keeps_the_call_and_a_lost_dialog_ends_it() {
    let mut ua = ua();
    let (call, _, ack) = answered(&mut ua);
    // Their re-INVITE the app cannot take: 488, and the call goes on.
    ua.handle_message(at(2.0), far_reinvite(&ack, 2, OFFER).as_bytes())
        .expect("parses");
    assert!(matches!(&events(&mut ua)[..], [Event::Updating { .. }]));
    ua.decline(at(2.1), call, 488, "Not Acceptable Here")
        .expect("decline is taken");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 488 Not Acceptable Here"));
    assert_eq!(events(&mut ua), [], "no hangup");
    // Our re-INVITE answered 481: the far end lost the dialog.
    assert_eq!(ua.update(at(3.0), call, HOLD), Ok(()));
    let reinvite = sent(&mut ua).remove(0);
    ua.handle_message(
        at(3.1),
        &answer(&reinvite, 481, "Call/Transaction Does Not Exist", ""),
    )
    .expect("parses");
    assert!(sent(&mut ua).iter().any(|f| f.starts_with("BYE ")));
    assert_eq!(
        events(&mut ua),
        [
            Event::UpdateFailed {
                call,
                code: 481,
                reason: "Call/Transaction Does Not Exist".into()
            },
            ended(call, 481, "Call/Transaction Does Not Exist")
        ]
    );
}

#[test]
fn an_invite_without_from_tag_or_contact_gets_400_and_no_call() {
    let mut ua = ua();
    for (from, to) in [
        (";tag=b1\r\n", "\r\n"),
        ("Contact: <sip:bob@10.0.0.7:5062>\r\n", ""),
    ] {
        let invite = incoming_invite("bad1", true).replacen(from, to, 1);
        ua.handle_message(at(0.0), invite.as_bytes())
            .expect("parses");
        let answer = sent(&mut ua).remove(0);
        assert!(answer.starts_with("SIP/2.0 400 Missing"), "{answer}");
        assert_eq!(events(&mut ua), []);
    }
}

#[test]
fn calls_that_are_up_survive_a_dropped_websocket_and_move_to_the_new_one() {
    let mut ua = ua();
    let (out, _, _) = answered(&mut ua);
    let (inc, _) = incoming(&mut ua, "keep1", true);
    ua.answer(at(1.5), inc, ANSWER).expect("answer is taken");
    let ok = sent(&mut ua).remove(0);
    ua.handle_message(at(1.6), ack_of(&ok, "").as_bytes())
        .expect("parses");
    events(&mut ua);
    let (ringing, invite) = calling(&mut ua);
    ua.handle_message(at(1.7), &answer(&invite, 180, "Ringing", ""))
        .expect("parses");
    events(&mut ua);

    // The WebSocket drops: only the call still ringing ends.
    ua.transport_closed(at(2.0));
    assert_eq!(events(&mut ua), [ended(ringing, 503, "Transport Closed")]);
    assert_eq!(
        ua.update(at(2.1), out, HOLD),
        Err(ActionError::NotConnected),
        "nothing can be sent meanwhile"
    );

    // The new connection: a re-INVITE per call, with its unchanged SDP.
    ua.transport_connected(at(3.0));
    let frames = sent(&mut ua);
    assert_eq!(frames.len(), 2, "{frames:?}");
    let (a, b) = (parse(&frames[0]), parse(&frames[1]));
    assert_eq!(
        (a.method(), a.body()),
        (Some(Method::Invite), OFFER.as_bytes())
    );
    assert_eq!(
        (b.method(), b.body()),
        (Some(Method::Invite), ANSWER.as_bytes())
    );
    assert!(
        a.to().tag().is_some() && b.to().tag().is_some(),
        "in their dialogs"
    );
    // One is taken (the shell is handed the answer to check that the media
    // is the same), the other is lost (481): BYE.
    ua.handle_message(at(3.1), &answer(&frames[0], 200, "OK", ANSWER))
        .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("ACK "));
    assert_eq!(
        events(&mut ua),
        [Event::Recovered {
            call: out,
            sdp: ANSWER.into()
        }]
    );
    ua.handle_message(
        at(3.2),
        &answer(&frames[1], 481, "Call/Transaction Does Not Exist", ""),
    )
    .expect("parses");
    assert!(sent(&mut ua).iter().any(|f| f.starts_with("BYE ")));
    assert_eq!(
        events(&mut ua),
        [ended(inc, 481, "Call/Transaction Does Not Exist")]
    );
    assert_eq!(ua.update(at(4.0), out, HOLD), Ok(()), "the kept call works");

    // Dropped again, and no new connection within 32 s: the call is lost;
    // hanging up meanwhile ends a call at once.
    sent(&mut ua);
    ua.transport_closed(at(5.0));
    events(&mut ua);
    ua.handle_timeout(at(36.9));
    assert_eq!(events(&mut ua), []);
    ua.handle_timeout(at(37.0));
    assert_eq!(events(&mut ua), [ended(out, 503, "Transport Closed")]);
}

#[test]
fn hanging_up_while_disconnected_ends_the_call_at_once() {
    let mut ua = ua();
    let (call, _, _) = answered(&mut ua);
    ua.transport_closed(at(2.0));
    assert_eq!(events(&mut ua), []);
    ua.hangup(at(2.5), call).expect("hangup is taken");
    assert_eq!(events(&mut ua), [ended(call, 503, "Transport Closed")]);
    ua.transport_connected(at(3.0));
    assert_eq!(sent(&mut ua), Vec::<String>::new(), "nothing left to move");
}

#[test]
fn a_relay_that_stays_away_ends_kept_calls_32_s_after_the_first_drop() {
    let mut ua = ua();
    let (call, _, _) = answered(&mut ua);
    ua.transport_closed(at(2.0));
    // Reconnect attempts that fail close again and again: the wait does
    // not start over, and the core sleeps until it ends.
    for t in [5.0, 15.0, 30.0] {
        ua.transport_closed(at(t));
        assert_eq!(ua.poll_timeout(), Some(at(34.0)));
    }
    ua.handle_timeout(at(34.0));
    assert_eq!(events(&mut ua), [ended(call, 503, "Transport Closed")]);
}

#[test]
fn targets_and_texts_that_would_forge_a_message_are_refused() {
    let mut ua = ua();
    for target in [
        "sip:x@pbx SIP/2.0\r\nFoo: bar",
        "sip:bob@pbx.example>;x=<",
        "tel:+15551234",
        "",
    ] {
        let bad = Some(ActionError::BadTarget("target"));
        assert_eq!(ua.call(at(0.0), target, OFFER).err(), bad, "{target:?}");
        assert_eq!(ua.message(at(0.0), target, "text/plain", "hi").err(), bad);
    }
    assert_eq!(
        ua.message(at(0.0), TARGET, "text/plain\r\nX: y", "hi"),
        Err(ActionError::BadText("content_type"))
    );
    assert_eq!(sent(&mut ua), Vec::<String>::new());
    let (call, _) = incoming(&mut ua, "forge1", true);
    assert_eq!(
        ua.decline(at(0.1), call, 999, "Busy"),
        Err(ActionError::BadCode(999))
    );
    assert_eq!(
        ua.decline(at(0.1), call, 486, "Busy\r\nX-Forged: 1"),
        Err(ActionError::BadText("reason"))
    );
    assert_eq!(sent(&mut ua), Vec::<String>::new(), "nothing sent");
    ua.decline(at(0.1), call, 699, "Declined")
        .expect("decline is taken");
    let refused = sent(&mut ua).remove(0);
    assert!(refused.starts_with("SIP/2.0 699 Declined\r\n"), "{refused}");
}

#[test]
fn a_far_end_change_without_session_expires_turns_the_timer_off() {
    let mut ua = ua();
    let (call, invite) = calling(&mut ua);
    ua.handle_message(at(1.0), &answer_with_timer(&invite, "90;refresher=uas"))
        .expect("parses");
    let ack = sent(&mut ua).remove(0);
    events(&mut ua);
    ua.handle_message(at(30.0), far_reinvite(&ack, 2, OFFER).as_bytes())
        .expect("parses");
    events(&mut ua);
    ua.answer(at(30.1), call, ANSWER).expect("answer is taken");
    let ok = sent(&mut ua).remove(0);
    assert_eq!(parse(&ok).header(HeaderName::SessionExpires), None, "{ok}");
    // No refresh will come, and none is expected: the call stays.
    ua.handle_timeout(at(500.0));
    assert!(!sent(&mut ua).iter().any(|f| f.starts_with("BYE ")));
    assert!(
        !events(&mut ua)
            .iter()
            .any(|e| matches!(e, Event::Hangup { .. }))
    );
}

/// The far end's REFER asking us to call `refer_to`, in the dialog of the
/// call whose ACK is `ack`.
fn far_refer(ack: &str, cseq: u32, refer_to: &str) -> String {
    let a = parse(ack);
    format!(
        "REFER sip:x@a.invalid SIP/2.0\r\nVia: SIP/2.0/WSS relay.example;branch=z9hG4bKrf{cseq}\r\n\
Max-Forwards: 69\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} REFER\r\n\
Contact: <sip:bob@10.0.0.7:5062>\r\nRefer-To: {refer_to}\r\nReferred-By: <sip:bob@pbx.example>\r\n\
Content-Length: 0\r\n\r\n",
        a.header(HeaderName::To).expect("to"),
        a.header(HeaderName::From).expect("from"),
        a.call_id(),
    )
}

/// A NOTIFY of a transfer's progress: its sipfrag and Subscription-State.
fn progress_notify(frame: &str) -> (String, String) {
    let m = parse(frame);
    assert_eq!(m.method(), Some(Method::Notify), "{frame}");
    assert_eq!(m.header(HeaderName::Event), Some("refer"), "{frame}");
    assert_eq!(
        m.header(HeaderName::ContentType),
        Some("message/sipfrag;version=2.0")
    );
    (
        String::from_utf8_lossy(m.body()).trim_end().to_owned(),
        m.header(HeaderName::Other("Subscription-State"))
            .unwrap_or_default()
            .to_owned(),
    )
}

#[test]
fn a_transfer_the_far_end_asks_for_is_followed_and_reported_until_answered() {
    let mut ua = ua();
    let (call, _, ack) = answered(&mut ua);
    ua.handle_message(
        at(2.0),
        far_refer(&ack, 2, "<sip:carol@pbx.example>").as_bytes(),
    )
    .expect("parses");
    let frames = sent(&mut ua);
    assert!(frames[0].starts_with("SIP/2.0 202 Accepted"), "{frames:?}");
    assert_eq!(
        progress_notify(&frames[1]),
        ("SIP/2.0 100 Trying".into(), "active;expires=60".into())
    );
    assert_eq!(
        events(&mut ua),
        [Event::Referred {
            call,
            target: "sip:carol@pbx.example".into(),
            referred_by: Some("<sip:bob@pbx.example>".into()),
            attended: false,
        }]
    );
    // One at a time.
    ua.handle_message(
        at(2.1),
        far_refer(&ack, 3, "<sip:dave@pbx.example>").as_bytes(),
    )
    .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 491"));

    // The app follows it: a new call to carol, naming who referred it.
    let carol = ua
        .accept_referral(at(2.5), call, OFFER)
        .expect("a new call");
    let invite = sent(&mut ua).remove(0);
    let m = parse(&invite);
    assert_eq!(m.request_uri(), Some("sip:carol@pbx.example"));
    assert_eq!(
        m.header(HeaderName::Other("Referred-By")),
        Some("<sip:bob@pbx.example>")
    );
    assert!(matches!(&events(&mut ua)[..], [Event::Calling { call: c, .. }] if *c == carol));
    // Bob hears of its ringing, then of its answer, which ends his
    // subscription.
    ua.handle_message(at(2.6), &answer(&invite, 180, "Ringing", ""))
        .expect("parses");
    let frames = sent(&mut ua);
    assert_eq!(
        progress_notify(&frames[0]),
        ("SIP/2.0 180 Ringing".into(), "active;expires=60".into())
    );
    ua.handle_message(at(3.0), &answer(&invite, 200, "OK", ANSWER))
        .expect("parses");
    let frames = sent(&mut ua);
    assert!(frames[0].starts_with("ACK "), "{frames:?}");
    assert_eq!(
        progress_notify(&frames[1]),
        (
            "SIP/2.0 200 OK".into(),
            "terminated;reason=noresource".into()
        )
    );
    // Both calls are the app's: bob's BYE ends only his.
    events(&mut ua);
    let bye = far_reinvite(&ack, 4, "")
        .replacen("INVITE sip:", "BYE sip:", 1)
        .replace("CSeq: 4 INVITE", "CSeq: 4 BYE");
    ua.handle_message(at(3.5), bye.as_bytes()).expect("parses");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 200 OK"));
    assert_eq!(
        events(&mut ua),
        [Event::Hangup {
            call,
            code: None,
            reason: "BYE".into()
        }]
    );
    ua.hangup(at(4.0), carol).expect("hangup is taken");
    assert!(sent(&mut ua)[0].starts_with("BYE sip:"));
}

#[test]
fn a_transfer_request_declined_failed_or_malformed_is_reported_so() {
    let mut ua = ua();
    let (call, _, ack) = answered(&mut ua);
    // A Replaces that would break a header line, or a Refer-To that is no
    // SIP URI, is refused.
    for (cseq, refer_to, status) in [
        (
            2,
            "<sip:carol@pbx.example?Replaces=abc%0D%0AX-Evil%3A%201>",
            "SIP/2.0 400",
        ),
        (3, "<tel:+15551234>", "SIP/2.0 400"),
    ] {
        ua.handle_message(at(2.0), far_refer(&ack, cseq, refer_to).as_bytes())
            .expect("parses");
        let frames = sent(&mut ua);
        assert!(frames[0].starts_with(status), "{refer_to}: {frames:?}");
        assert_eq!(events(&mut ua), [], "{refer_to}");
    }
    // Declined by the app: 603, and the subscription ends.
    ua.handle_message(
        at(3.0),
        far_refer(&ack, 4, "sip:carol@pbx.example").as_bytes(),
    )
    .expect("parses");
    sent(&mut ua);
    events(&mut ua);
    assert_eq!(ua.decline_referral(at(3.1), call), Ok(()));
    assert_eq!(
        progress_notify(&sent(&mut ua)[0]),
        (
            "SIP/2.0 603 Declined".into(),
            "terminated;reason=noresource".into()
        )
    );
    assert_eq!(
        ua.decline_referral(at(3.2), call),
        Err(ActionError::NoReferral(call)),
        "nothing left to decline"
    );
    // Followed, but carol is busy: bob hears 486.
    ua.handle_message(
        at(4.0),
        far_refer(&ack, 5, "<sip:carol@pbx.example>").as_bytes(),
    )
    .expect("parses");
    sent(&mut ua);
    events(&mut ua);
    ua.accept_referral(at(4.1), call, OFFER)
        .expect("a new call");
    let invite = sent(&mut ua).remove(0);
    ua.handle_message(at(4.2), &answer(&invite, 486, "Busy Here", ""))
        .expect("parses");
    let notify = sent(&mut ua)
        .into_iter()
        .find(|f| f.starts_with("NOTIFY "))
        .expect("a NOTIFY");
    assert_eq!(
        progress_notify(&notify),
        (
            "SIP/2.0 486 Busy Here".into(),
            "terminated;reason=noresource".into()
        )
    );
}

#[test]
fn incoming_calls_ring_by_themselves_unless_the_app_chooses() {
    // The default: 180 as the call is reported, once.
    let mut c = Config::new("sip:alice@pbx.example");
    c.register = false;
    let mut phone = UserAgent::new(c, [7; 32]).expect("valid config");
    phone.transport_connected(at(0.0));
    phone
        .handle_message(at(0.0), incoming_invite("ring1", true).as_bytes())
        .expect("parses");
    let frames = sent(&mut phone);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert!(
        frames[0].starts_with("SIP/2.0 180 Ringing\r\n"),
        "{frames:?}"
    );
    // Asked to choose (as `ua()` does): nothing until the app rings.
    let mut ua = ua();
    let (call, _) = incoming(&mut ua, "ring2", true);
    assert_eq!(sent(&mut ua), Vec::<String>::new());
    ua.ringing(at(0.1), call).expect("ringing is taken");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 180 Ringing\r\n"));
    assert_eq!(
        ua.ringing(at(0.2), CallId(99)),
        Err(ActionError::NoSuchCall(CallId(99)))
    );
}

/// Our change of `call` to `sdp`, answered 200 and acknowledged; the
/// events it brought.
fn change(ua: &mut UserAgent, call: CallId, t: f64, sdp: &str) -> Vec<Event> {
    ua.update(at(t), call, sdp).expect("the change goes");
    let reinvite = sent(ua).remove(0);
    ua.handle_message(at(t + 0.1), &answer(&reinvite, 200, "OK", ANSWER))
        .expect("parses");
    sent(ua);
    events(ua)
}

#[test]
fn holding_and_resuming_is_told_once_per_change_and_side() {
    let mut ua = ua();
    let (call, _, ack) = answered(&mut ua);
    let hold = |held, by| Event::Hold { call, held, by };
    let updated = Event::Updated {
        call,
        sdp: ANSWER.into(),
    };
    // Ours: told once the far end took the offer, and only on a change.
    assert_eq!(
        change(&mut ua, call, 2.0, HOLD),
        [updated.clone(), hold(true, HoldBy::Local)]
    );
    assert!(ua.held(call));
    let inactive = HOLD.replace("sendonly", "inactive");
    assert_eq!(
        change(&mut ua, call, 3.0, &inactive),
        std::slice::from_ref(&updated)
    );
    assert_eq!(
        change(&mut ua, call, 4.0, OFFER),
        [updated.clone(), hold(false, HoldBy::Local)]
    );
    assert!(!ua.held(call));
    // A refused change holds nothing.
    ua.update(at(5.0), call, HOLD).expect("the change goes");
    let refused = sent(&mut ua).remove(0);
    ua.handle_message(at(5.1), &answer(&refused, 488, "Not Here", ""))
        .expect("parses");
    sent(&mut ua);
    assert!(
        !events(&mut ua)
            .iter()
            .any(|e| matches!(e, Event::Hold { .. }))
    );
    assert!(!ua.held(call));
    // Theirs: told once their offer is answered.
    for (cseq, sdp, told) in [
        (2, HOLD, Some(true)),
        (3, HOLD, None),
        (4, OFFER, Some(false)),
    ] {
        ua.handle_message(at(6.0), far_reinvite(&ack, cseq, sdp).as_bytes())
            .expect("parses");
        events(&mut ua);
        ua.answer(at(6.1), call, ANSWER).expect("answer is taken");
        let ok = sent(&mut ua).remove(0);
        let their_ack = ack_of(&ok, "").replace("CSeq: 10 ACK", &format!("CSeq: {cseq} ACK"));
        ua.handle_message(at(6.2), their_ack.as_bytes())
            .expect("parses");
        let expected: Vec<Event> = told.map(|h| hold(h, HoldBy::Remote)).into_iter().collect();
        assert_eq!(events(&mut ua), expected, "their offer {cseq}");
    }
}

#[test]
fn an_early_answer_is_the_final_one_when_the_2xx_brings_none() {
    let mut ua = ua();
    let (call, invite) = calling(&mut ua);
    ua.handle_message(at(0.1), &answer(&invite, 183, "Session Progress", ANSWER))
        .expect("parses");
    assert_eq!(
        events(&mut ua),
        [Event::Progress {
            call,
            sdp: ANSWER.into()
        }]
    );
    ua.handle_message(at(1.0), &answer(&invite, 200, "OK", ""))
        .expect("parses");
    assert_eq!(
        events(&mut ua),
        [Event::Accepted {
            call,
            sdp: ANSWER.into()
        }]
    );
}

#[test]
fn a_reserved_change_makes_the_far_end_wait_and_can_be_dropped() {
    let mut ua = ua();
    let (call, _, ack) = answered(&mut ua);
    // Reserved while the browser makes the offer: the far end's own offer
    // meanwhile gets 491, and no other change may start.
    assert_eq!(ua.begin_update(call, Some(true)), Ok(true));
    assert_eq!(
        ua.begin_update(call, None),
        Err(ActionError::ChangePending(call))
    );
    ua.handle_message(at(2.0), far_reinvite(&ack, 2, HOLD).as_bytes())
        .expect("parses");
    let glare = sent(&mut ua).remove(0);
    assert!(glare.starts_with("SIP/2.0 491 "), "{glare}");
    assert!(
        events(&mut ua).is_empty(),
        "glare is not the app's business"
    );
    // The offer fills the reservation.
    assert_eq!(
        change(&mut ua, call, 2.1, HOLD),
        [
            Event::Updated {
                call,
                sdp: ANSWER.into()
            },
            Event::Hold {
                call,
                held: true,
                by: HoldBy::Local
            }
        ]
    );
    // A reservation whose offer never comes is dropped; the hold state
    // stays what was agreed.
    assert_eq!(ua.begin_update(call, None), Ok(true));
    ua.abandon_update(call);
    assert_eq!(ua.begin_update(call, Some(false)), Ok(false));
    ua.abandon_update(call);
    // Not up: nothing to reserve.
    assert_eq!(
        ua.begin_update(CallId(99), None),
        Err(ActionError::NoSuchCall(CallId(99)))
    );
}

#[test]
fn an_offer_the_browser_cannot_take_is_refused_488() {
    let mut ua = ua();
    let (call, _, ack) = answered(&mut ua);
    ua.handle_message(at(2.0), far_reinvite(&ack, 2, HOLD).as_bytes())
        .expect("parses");
    events(&mut ua);
    ua.refuse_offer(at(2.1), call).expect("refused");
    let refused = sent(&mut ua).remove(0);
    assert!(
        refused.starts_with("SIP/2.0 488 Not Acceptable Here\r\n"),
        "{refused}"
    );
    assert!(events(&mut ua).is_empty(), "the call goes on as it was");
    assert!(!ua.held(call));
}

#[test]
fn a_bye_before_the_ack_of_our_answer_ends_a_call_that_was_up() {
    let mut ua = ua();
    let (call, invite) = incoming(&mut ua, "bye-first", true);
    ua.answer(at(1.0), call, ANSWER).expect("answer is taken");
    let ok = sent(&mut ua).remove(0);
    // The far end had our 200 (its BYE is in the dialog); its ACK is late.
    let ack = ack_of(&ok, "");
    let bye = ack
        .replacen("ACK ", "BYE ", 1)
        .replace("CSeq: 10 ACK", "CSeq: 11 BYE")
        .replace("z9hG4bK", "z9hG4bKbye");
    ua.handle_message(at(1.1), bye.as_bytes()).expect("parses");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 200 OK"));
    assert_eq!(
        events(&mut ua),
        [
            Event::Accepted {
                call,
                sdp: String::new()
            },
            Event::Hangup {
                call,
                code: None,
                reason: "BYE".into()
            }
        ],
        "{invite}"
    );
}

#[test]
fn a_blind_transfer_s_outcome_is_always_told_once() {
    // The far end took it and hung up before its last NOTIFY: success.
    let mut ua = self::ua();
    let (call, _, ack) = answered(&mut ua);
    ua.transfer(at(2.0), call, "sip:carol@pbx.example")
        .expect("the transfer goes");
    let refer = sent(&mut ua).remove(0);
    ua.handle_message(at(2.1), &answer(&refer, 202, "Accepted", ""))
        .expect("parses");
    events(&mut ua);
    let bye = refer_notify(&ack, 5, "active", "")
        .replacen("NOTIFY ", "BYE ", 1)
        .replace("CSeq: 5 NOTIFY", "CSeq: 5 BYE");
    ua.handle_message(at(3.0), bye.as_bytes()).expect("parses");
    assert_eq!(
        events(&mut ua),
        [
            transfer(call, 200, "OK", true),
            Event::Hangup {
                call,
                code: None,
                reason: "BYE".into()
            }
        ]
    );

    // The call ended before the far end accepted it: a failure.
    let mut ua = self::ua();
    let (call, _, ack) = answered(&mut ua);
    ua.transfer(at(2.0), call, "sip:carol@pbx.example")
        .expect("the transfer goes");
    sent(&mut ua);
    let bye = refer_notify(&ack, 5, "active", "")
        .replacen("NOTIFY ", "BYE ", 1)
        .replace("CSeq: 5 NOTIFY", "CSeq: 5 BYE");
    ua.handle_message(at(2.5), bye.as_bytes()).expect("parses");
    let evs = events(&mut ua);
    assert_eq!(
        evs[0],
        transfer(
            call,
            481,
            "Call Ended Before The Transfer Was Accepted",
            true
        ),
        "{evs:?}"
    );

    // Accepted, then nothing for two minutes: given up, 408, once.
    let mut ua = self::ua();
    let (call, _, _) = answered(&mut ua);
    ua.transfer(at(2.0), call, "sip:carol@pbx.example")
        .expect("the transfer goes");
    let refer = sent(&mut ua).remove(0);
    ua.handle_message(at(2.1), &answer(&refer, 202, "Accepted", ""))
        .expect("parses");
    events(&mut ua);
    assert_eq!(ua.poll_timeout().map(|t| t <= at(122.0)), Some(true));
    ua.handle_timeout(at(122.0));
    assert_eq!(
        events(&mut ua),
        [transfer(call, 408, "Transfer Outcome Never Came", true)]
    );
    ua.handle_timeout(at(300.0));
    assert!(
        !events(&mut ua)
            .iter()
            .any(|e| matches!(e, Event::Transfer { .. })),
        "told once"
    );
}

#[test]
fn attended_transfer_refers_the_far_end_to_the_consultation_with_its_dialog() {
    let mut ua = ua();
    let (first, _, first_ack) = answered(&mut ua);
    let (consult, _, consult_ack) = answered(&mut ua);
    assert_eq!(
        ua.transfer_replacing(at(2.0), first, first),
        Err(ActionError::BadTarget("other"))
    );
    ua.transfer_replacing(at(2.0), first, consult)
        .expect("the REFER goes");
    let refer = sent(&mut ua).remove(0);
    let m = parse(&refer);
    assert_eq!(m.method(), Some(Method::Refer));
    assert_eq!(
        m.call_id(),
        parse(&first_ack).call_id(),
        "in the first call"
    );
    // The consultation's far end, with its dialog as that far end sees it:
    // its own tag as to-tag, ours as from-tag.
    let c = parse(&consult_ack);
    let refer_to = m.header(HeaderName::ReferTo).expect("Refer-To");
    let expected = format!(
        "<{TARGET}?Replaces={}%3Bto-tag%3D{}%3Bfrom-tag%3D{}>",
        c.call_id().replace('@', "%40"),
        c.to().tag().expect("their tag"),
        c.from().tag().expect("our tag"),
    );
    assert_eq!(refer_to, expected);
}

#[test]
fn the_transferee_calls_the_target_with_the_replaces_it_was_given() {
    let mut ua = ua();
    let (call, _, ack) = answered(&mut ua);
    ua.handle_message(
        at(2.0),
        far_refer(
            &ack,
            2,
            "<sip:carol@pbx.example?Replaces=c1%40h.example%3Bto-tag%3Dcarol%3Bfrom-tag%3Dbob>",
        )
        .as_bytes(),
    )
    .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 202 Accepted"));
    assert_eq!(
        events(&mut ua),
        [Event::Referred {
            call,
            target: "sip:carol@pbx.example".into(),
            referred_by: Some("<sip:bob@pbx.example>".into()),
            attended: true,
        }]
    );
    ua.accept_referral(at(2.5), call, OFFER)
        .expect("a new call");
    let invite = sent(&mut ua).remove(0);
    let m = parse(&invite);
    assert_eq!(
        m.request_uri(),
        Some("sip:carol@pbx.example"),
        "no headers in it"
    );
    assert_eq!(
        m.header(HeaderName::Other("Replaces")),
        Some("c1@h.example;to-tag=carol;from-tag=bob")
    );
}

/// An INVITE from carol replacing the dialog `(call_id, our tag, bob's
/// tag)`, with `extra` in the Replaces.
fn replacing_invite(call_id: &str, ours: &str, theirs: &str, extra: &str) -> String {
    let n = call_id.len() + ours.len() + extra.len();
    format!(
        "INVITE sip:x@a.invalid;transport=ws SIP/2.0\r\nVia: SIP/2.0/WSS relay.example;branch=z9hG4bKrep{n}\r\n\
Max-Forwards: 69\r\nFrom: <sip:carol@pbx.example>;tag=c7\r\nTo: <sip:alice@pbx.example>\r\nCall-ID: rep-{n}\r\n\
CSeq: 1 INVITE\r\nContact: <sip:carol@10.0.0.8:5062>\r\nReplaces: {call_id};to-tag={ours};from-tag={theirs}{extra}\r\n\
Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{OFFER}",
        OFFER.len()
    )
}

#[test]
fn the_target_lets_an_invite_with_replaces_take_the_place_of_its_call() {
    let mut ua = ua();
    let (old, _) = incoming(&mut ua, "in1", true);
    ua.answer(at(1.0), old, ANSWER).expect("answered");
    let ok = sent(&mut ua).remove(0);
    ua.handle_message(at(1.1), ack_of(&ok, "").as_bytes())
        .expect("parses");
    events(&mut ua);
    let ours = parse(&ok).to().tag().expect("our tag").to_owned();

    // Naming no dialog of ours, or only an early one: refused.
    for (invite, status) in [
        (replacing_invite("in-in1", "nope", "b1", ""), "SIP/2.0 481"),
        (
            replacing_invite("in-in1", &ours, "b1", ";early-only"),
            "SIP/2.0 486",
        ),
        (replacing_invite("other", &ours, "b1", ""), "SIP/2.0 481"),
    ] {
        ua.handle_message(at(2.0), invite.as_bytes())
            .expect("parses");
        let frames = sent(&mut ua);
        assert!(frames[0].starts_with(status), "{frames:?}");
        assert_eq!(events(&mut ua), [], "nothing for the app");
    }

    // Naming the call: a new call that says so; once it is up, the old
    // one ends with a BYE.
    ua.handle_message(
        at(3.0),
        replacing_invite("in-in1", &ours, "b1", "").as_bytes(),
    )
    .expect("parses");
    let evs = events(&mut ua);
    let [
        Event::Incoming {
            call: new,
            replaces,
            ..
        },
    ] = &evs[..]
    else {
        panic!("{evs:?}")
    };
    assert_eq!(*replaces, Some(old));
    let new = *new;
    ua.answer(at(3.1), new, ANSWER).expect("answered");
    let ok = sent(&mut ua)
        .into_iter()
        .find(|f| f.starts_with("SIP/2.0 200"))
        .expect("200");
    ua.handle_message(at(3.2), ack_of(&ok, "").as_bytes())
        .expect("parses");
    assert_eq!(
        events(&mut ua),
        [
            Event::Accepted {
                call: new,
                sdp: String::new()
            },
            Event::Replaced { call: old, by: new },
        ]
    );
    let bye = sent(&mut ua).remove(0);
    let b = parse(&bye);
    assert_eq!(b.method(), Some(Method::Bye));
    assert_eq!(b.call_id(), "in-in1", "the old call ends");
    ua.handle_message(at(3.3), &answer(&bye, 200, "OK", ""))
        .expect("parses");
    assert!(matches!(
        events(&mut ua)[..],
        [Event::Hangup { call, code: None, .. }] if call == old
    ));
}
