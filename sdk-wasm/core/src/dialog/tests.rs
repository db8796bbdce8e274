//! Dialogs made from real-shaped messages, both sides, with the route set
//! a proxy chain leaves (the relay's double Record-Route and a PBX's).

use super::*;
use crate::sip::Method;

fn parse(text: &str) -> Message<'_> {
    Message::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

const INVITE: &str = "INVITE sip:bob@pbx.example SIP/2.0\r\n\
Via: SIP/2.0/WSS a.invalid;branch=z9hG4bK1\r\nMax-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@pbx.example>;tag=a1\r\nTo: <sip:bob@pbx.example>\r\n\
Call-ID: c1\r\nCSeq: 7 INVITE\r\nContact: <sip:x7@a.invalid;transport=ws;ob>\r\nContent-Length: 0\r\n\r\n";

/// The 200 as the caller gets it: the PBX's Record-Route above the
/// relay's two.
const OK: &str = "SIP/2.0 200 OK\r\nVia: SIP/2.0/WSS a.invalid;branch=z9hG4bK1\r\n\
Record-Route: <sip:10.0.0.5;lr>\r\n\
Record-Route: <sip:192.0.2.10:5070;lr;r2=on>, <sip:tok@relay.example;transport=ws;lr;r2=on>\r\n\
From: \"Alice\" <sip:alice@pbx.example>;tag=a1\r\nTo: <sip:bob@pbx.example>;tag=b9\r\n\
Call-ID: c1\r\nCSeq: 7 INVITE\r\nContact: <sip:bob@10.0.0.7:5062>\r\nContent-Length: 0\r\n\r\n";

fn text(b: MessageBuilder) -> String {
    String::from_utf8(b.finish(None, b"")).expect("utf8")
}

#[test]
fn the_caller_reverses_the_record_route_and_counts_on() {
    let mut d = Dialog::caller(&parse(INVITE), &parse(OK)).expect("a dialog");
    assert_eq!(d.state(), DialogState::Confirmed);
    assert_eq!((d.local_tag(), d.remote_tag()), ("a1", "b9"));
    let bye = text(d.request(Method::Bye, "SIP/2.0/WSS a.invalid;branch=z9hG4bK2"));
    let m = parse(&bye);
    assert_eq!(
        m.request_uri(),
        Some("sip:bob@10.0.0.7:5062"),
        "loose routing"
    );
    let routes: Vec<&str> = m.header_values(HeaderName::Route).collect();
    assert_eq!(
        routes,
        [
            "<sip:tok@relay.example;transport=ws;lr;r2=on>",
            "<sip:192.0.2.10:5070;lr;r2=on>",
            "<sip:10.0.0.5;lr>"
        ]
    );
    assert_eq!(
        m.header(HeaderName::From),
        Some("\"Alice\" <sip:alice@pbx.example>;tag=a1")
    );
    assert_eq!(m.to().tag(), Some("b9"));
    assert_eq!((m.cseq().seq, m.cseq().method), (8, "BYE"));
    let ack = text(d.ack(7, "SIP/2.0/WSS a.invalid;branch=z9hG4bK3"));
    assert!(ack.contains("CSeq: 7 ACK\r\n"), "{ack}");
    // The dialog knows its own messages.
    assert!(d.has_response(&parse(OK)));
    assert!(
        !d.has_request(&parse(INVITE)),
        "no To tag: not in the dialog"
    );
}

#[test]
fn an_early_dialog_takes_the_2xx_s_route_and_target() {
    let ringing = OK
        .replace("SIP/2.0 200 OK", "SIP/2.0 180 Ringing")
        .replace("Record-Route: <sip:10.0.0.5;lr>\r\n", "")
        .replace("10.0.0.7:5062", "10.0.0.8");
    let mut d = Dialog::caller(&parse(INVITE), &parse(&ringing)).expect("early");
    assert_eq!(d.state(), DialogState::Early);
    assert_eq!(d.route_set().len(), 2);
    d.confirm(&parse(OK), true);
    assert_eq!(d.state(), DialogState::Confirmed);
    assert_eq!(d.route_set().len(), 3);
    assert_eq!(d.remote_target(), "sip:bob@10.0.0.7:5062");
}

#[test]
fn the_callee_keeps_the_order_and_starts_its_own_cseq() {
    let request = parse(
        "INVITE sip:alice@a.invalid;transport=ws SIP/2.0\r\nVia: SIP/2.0/WSS relay.example;branch=z9hG4bKp\r\n\
Record-Route: <sip:tok@relay.example;transport=ws;lr;r2=on>, <sip:192.0.2.10:5070;lr;r2=on>\r\n\
Record-Route: <sip:10.0.0.5;lr>\r\nFrom: <sip:bob@pbx.example>;tag=b1\r\nTo: <sip:alice@pbx.example>\r\n\
Call-ID: c2\r\nCSeq: 101 INVITE\r\nContact: <sip:bob@10.0.0.7:5062>\r\nContent-Length: 0\r\n\r\n",
    );
    let mut d = Dialog::callee(&request, "a2").expect("a dialog");
    assert_eq!(d.state(), DialogState::Early);
    let bye = text(d.request(Method::Bye, "SIP/2.0/WSS a.invalid;branch=z9hG4bK9"));
    let m = parse(&bye);
    assert_eq!(m.request_uri(), Some("sip:bob@10.0.0.7:5062"));
    assert_eq!(
        m.header_values(HeaderName::Route).next(),
        Some("<sip:tok@relay.example;transport=ws;lr;r2=on>")
    );
    assert_eq!(
        m.header(HeaderName::From),
        Some("<sip:alice@pbx.example>;tag=a2")
    );
    assert_eq!(
        m.header(HeaderName::To),
        Some("<sip:bob@pbx.example>;tag=b1")
    );
    assert_eq!(m.cseq().seq, 1, "the callee's own numbering");

    // Their requests must not go back in CSeq; a re-INVITE moves the target.
    let reinvite = |cseq: u32, contact: &str| {
        format!(
            "INVITE sip:alice@a.invalid SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.7;branch=z9hG4bKr{cseq}\r\n\
From: <sip:bob@pbx.example>;tag=b1\r\nTo: <sip:alice@pbx.example>;tag=a2\r\nCall-ID: c2\r\n\
CSeq: {cseq} INVITE\r\nContact: <{contact}>\r\nContent-Length: 0\r\n\r\n"
        )
    };
    let refresh = reinvite(102, "sip:bob@10.0.0.9:5062");
    assert!(d.has_request(&parse(&refresh)));
    d.receive_request(&parse(&refresh)).expect("in order");
    assert_eq!(d.remote_target(), "sip:bob@10.0.0.9:5062");
    assert_eq!(
        d.receive_request(&parse(&reinvite(100, "sip:x@y"))),
        Err(DialogError::OutOfOrder {
            got: 100,
            expected: 102
        })
    );
}

#[test]
fn strict_routing_puts_the_target_last() {
    let strict = OK
        .replace("Record-Route: <sip:10.0.0.5;lr>\r\n", "")
        .replace(
            "Record-Route: <sip:192.0.2.10:5070;lr;r2=on>, <sip:tok@relay.example;transport=ws;lr;r2=on>",
            "Record-Route: <sip:old.proxy.example>",
        );
    let mut d = Dialog::caller(&parse(INVITE), &parse(&strict)).expect("a dialog");
    let m_text = text(d.request(Method::Bye, "SIP/2.0/WSS a.invalid;branch=z9hG4bK4"));
    let m = parse(&m_text);
    assert_eq!(m.request_uri(), Some("sip:old.proxy.example"));
    assert_eq!(
        m.header_values(HeaderName::Route).collect::<Vec<_>>(),
        ["<sip:bob@10.0.0.7:5062>"]
    );
}

#[test]
fn a_response_without_a_tag_or_contact_makes_no_dialog() {
    let untagged = OK.replace(";tag=b9", "");
    assert_eq!(
        Dialog::caller(&parse(INVITE), &parse(&untagged)),
        Err(DialogError::MissingTag)
    );
    let no_contact = OK.replace("Contact: <sip:bob@10.0.0.7:5062>\r\n", "");
    assert_eq!(
        Dialog::caller(&parse(INVITE), &parse(&no_contact)),
        Err(DialogError::MissingContact)
    );
}
