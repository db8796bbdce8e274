//! Subscriptions (RFC 6665) against a scripted notifier, with explicit
//! time: a busy lamp's SUBSCRIBE, its 2xx and NOTIFYs (the first one
//! possibly before the 2xx), the lamp parsed; refreshes in the dialog at
//! 90 % of the interval; a digest challenge, 423 and 489; terminations
//! that end it and those that ask to try again; unsubscribing; several
//! subscriptions at once; a new transport subscribing again.

mod common;

use common::{at, events, parse, sent};
use sipline_core::sip::{HeaderName, Method, response_to};
use sipline_core::status::{DialogInfo, Lamp, MessageCounts, MessageSummary, Status};
use sipline_core::{ActionError, Config, Event, Secret, SubscriptionId, UserAgent};

const BOB: &str = "sip:bob@pbx.example";
const LAMP: &str = "application/dialog-info+xml";

fn ua() -> UserAgent {
    let mut c = Config::new("sip:alice@pbx.example");
    c.register = false;
    c.password = Some(Secret::new("alice-secret"));
    let mut ua = UserAgent::new(c, [9; 32]).expect("valid config");
    ua.transport_connected(at(0.0));
    ua
}

/// The notifier's answer to `request`, with its tag and `headers`.
fn answer(request: &str, code: u16, reason: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut b = response_to(&parse(request), code, reason, Some("n1"));
    if code < 300 {
        b.header("Contact", "<sip:presence@10.0.0.5>");
    }
    for (name, value) in headers {
        b.header(name, value);
    }
    b.finish(None, b"")
}

/// A NOTIFY in the dialog of `subscribe` (CSeq `cseq`), with its state
/// and `body` of `content_type`.
fn notify(subscribe: &str, cseq: u32, state: &str, content_type: &str, body: &str) -> String {
    let s = parse(subscribe);
    let ct = if body.is_empty() {
        String::new()
    } else {
        format!("Content-Type: {content_type}\r\n")
    };
    format!(
        "NOTIFY sip:alice@a.invalid;transport=ws SIP/2.0\r\nVia: SIP/2.0/WSS relay.example;branch=z9hG4bKn{cseq}x{}\r\n\
Max-Forwards: 69\r\nFrom: <{BOB}>;tag=n1\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} NOTIFY\r\n\
Contact: <sip:presence@10.0.0.5>\r\nEvent: {}\r\nSubscription-State: {state}\r\n{ct}Content-Length: {}\r\n\r\n{body}",
        s.call_id().len(),
        s.header(HeaderName::From).expect("from"),
        s.call_id(),
        s.header(HeaderName::Event).expect("event"),
        body.len()
    )
}

fn lamp_body(state: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"1\" state=\"full\" entity=\"{BOB}\">\
<dialog id=\"d1\" direction=\"recipient\"><state>{state}</state><remote><identity>sip:carol@pbx.example</identity></remote></dialog></dialog-info>"
    )
}

/// Subscribes to bob's lamp; the SUBSCRIBE.
fn watch(ua: &mut UserAgent) -> (SubscriptionId, String) {
    let id = ua
        .subscribe(at(0.0), BOB, "dialog", None, None)
        .expect("subscribed");
    let mut frames = sent(ua);
    assert_eq!(frames.len(), 1, "{frames:?}");
    (id, frames.remove(0))
}

#[test]
fn a_lamp_is_watched_notified_and_refreshed_in_its_dialog() {
    let mut ua = ua();
    let (id, subscribe) = watch(&mut ua);
    let m = parse(&subscribe);
    assert_eq!(m.method(), Some(Method::Subscribe));
    assert_eq!(m.request_uri(), Some(BOB));
    assert_eq!(m.header(HeaderName::Event), Some("dialog"));
    assert_eq!(m.header(HeaderName::Other("Accept")), Some(LAMP));
    assert_eq!(m.header(HeaderName::Expires), Some("600"));
    assert!(m.header(HeaderName::Contact).is_some());

    // The first NOTIFY may come before the 2xx: it makes the dialog.
    let first = notify(
        &subscribe,
        1,
        "active;expires=600",
        LAMP,
        &lamp_body("early"),
    );
    ua.handle_message(at(0.1), first.as_bytes())
        .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 200 OK"));
    ua.handle_message(
        at(0.2),
        &answer(&subscribe, 200, "OK", &[("Expires", "600")]),
    )
    .expect("parses");
    let ringing = Status::DialogInfo(DialogInfo {
        entity: BOB.into(),
        lamp: Lamp::Ringing,
        initiator: Some(false),
        other: Some("sip:carol@pbx.example".into()),
        full: true,
    });
    assert_eq!(
        events(&mut ua),
        [
            Event::Notify {
                subscription: id,
                state: "active".into(),
                content_type: LAMP.into(),
                body: lamp_body("early"),
                status: Some(ringing),
            },
            Event::SubscriptionActive {
                subscription: id,
                expires: 600
            },
        ]
    );
    let busy = notify(
        &subscribe,
        2,
        "active;expires=590",
        LAMP,
        &lamp_body("confirmed"),
    );
    ua.handle_message(at(5.0), busy.as_bytes()).expect("parses");
    sent(&mut ua);
    assert!(matches!(
        &events(&mut ua)[..],
        [Event::Notify { status: Some(Status::DialogInfo(d)), .. }] if d.lamp == Lamp::Busy
    ));

    // The refresh at 90 % of what the last NOTIFY said (590 s at 5 s:
    // 536 s), in the dialog: the notifier's tag and Contact.
    ua.handle_timeout(at(535.9));
    let early = sent(&mut ua);
    assert!(early.is_empty(), "not yet: {early:?}");
    ua.handle_timeout(at(536.0));
    let refresh = sent(&mut ua).remove(0);
    let r = parse(&refresh);
    assert_eq!(r.method(), Some(Method::Subscribe));
    assert_eq!(r.request_uri(), Some("sip:presence@10.0.0.5"));
    assert_eq!(r.to().tag(), Some("n1"));
    assert_eq!(r.call_id(), m.call_id());
    assert_eq!(r.cseq().seq, 2, "after the SUBSCRIBE that made the dialog");
    ua.handle_message(
        at(540.1),
        &answer(&refresh, 200, "OK", &[("Expires", "600")]),
    )
    .expect("parses");
    assert_eq!(events(&mut ua), [], "a refresh is not news");

    // A NOTIFY for nothing of ours, and one of another package.
    let stranger = notify(&subscribe, 3, "active", LAMP, "").replace(m.call_id(), "other-call");
    ua.handle_message(at(541.0), stranger.as_bytes())
        .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 481"));
    let wrong =
        notify(&subscribe, 4, "active", LAMP, "").replace("Event: dialog", "Event: presence");
    ua.handle_message(at(541.1), wrong.as_bytes())
        .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 489"));
}

#[test]
fn a_challenge_423_and_489_are_handled() {
    let mut ua = ua();
    let (id, subscribe) = watch(&mut ua);
    let mut b = response_to(
        &parse(&subscribe),
        407,
        "Proxy Authentication Required",
        Some("px"),
    );
    b.header(
        "Proxy-Authenticate",
        "Digest realm=\"pbx.example\", nonce=\"n1\", qop=\"auth\"",
    );
    ua.handle_message(at(0.1), &b.finish(None, b""))
        .expect("parses");
    let again = sent(&mut ua).remove(0);
    let a = parse(&again);
    assert_eq!(a.cseq().seq, 2);
    assert!(a.header(HeaderName::ProxyAuthorization).is_some_and(|v| {
        v.contains("username=\"alice\"") && v.contains("uri=\"sip:bob@pbx.example\"")
    }));
    ua.handle_message(
        at(0.2),
        &answer(
            &again,
            423,
            "Interval Too Brief",
            &[("Min-Expires", "1800")],
        ),
    )
    .expect("parses");
    let longer = sent(&mut ua).remove(0);
    assert_eq!(parse(&longer).header(HeaderName::Expires), Some("1800"));
    ua.handle_message(at(0.3), &answer(&longer, 489, "Bad Event", &[]))
        .expect("parses");
    assert_eq!(
        events(&mut ua),
        [Event::SubscriptionEnded {
            subscription: id,
            code: Some(489),
            reason: "Bad Event".into()
        }]
    );
    assert_eq!(
        ua.unsubscribe(at(1.0), id),
        Err(ActionError::NoSuchSubscription(id))
    );
}

#[test]
fn terminations_end_it_or_subscribe_again_as_their_reason_says() {
    let mut ua = ua();
    let (id, subscribe) = watch(&mut ua);
    ua.handle_message(
        at(0.1),
        &answer(&subscribe, 200, "OK", &[("Expires", "600")]),
    )
    .expect("parses");
    events(&mut ua);
    // timeout: again at once, a new subscription.
    let ended = notify(&subscribe, 1, "terminated;reason=timeout", LAMP, "");
    ua.handle_message(at(1.0), ended.as_bytes())
        .expect("parses");
    assert!(sent(&mut ua)[0].starts_with("SIP/2.0 200"));
    ua.handle_timeout(at(1.0));
    let again = sent(&mut ua).remove(0);
    let a = parse(&again);
    assert_eq!(a.method(), Some(Method::Subscribe));
    assert_ne!(
        a.call_id(),
        parse(&subscribe).call_id(),
        "a new subscription"
    );
    assert!(a.to().tag().is_none());
    ua.handle_message(at(1.1), &answer(&again, 200, "OK", &[]))
        .expect("parses");
    events(&mut ua);
    // probation: again after its Retry-After.
    let probation = notify(
        &again,
        1,
        "terminated;reason=probation;retry-after=20",
        LAMP,
        "",
    );
    ua.handle_message(at(2.0), probation.as_bytes())
        .expect("parses");
    sent(&mut ua);
    ua.handle_timeout(at(21.9));
    assert!(sent(&mut ua).is_empty());
    ua.handle_timeout(at(22.0));
    let third = sent(&mut ua).remove(0);
    ua.handle_message(at(22.1), &answer(&third, 200, "OK", &[]))
        .expect("parses");
    events(&mut ua);
    // rejected: over.
    let rejected = notify(&third, 1, "terminated;reason=rejected", LAMP, "");
    ua.handle_message(at(23.0), rejected.as_bytes())
        .expect("parses");
    sent(&mut ua);
    let evs = events(&mut ua);
    assert_eq!(
        evs.last(),
        Some(&Event::SubscriptionEnded {
            subscription: id,
            code: None,
            reason: "rejected".into()
        })
    );
    ua.handle_timeout(at(100.0));
    assert!(sent(&mut ua).is_empty(), "nothing more");
}

#[test]
fn unsubscribing_ends_at_the_final_notify_and_several_live_at_once() {
    let mut ua = ua();
    let (lamp, subscribe) = watch(&mut ua);
    let mwi = ua
        .subscribe(
            at(0.0),
            "sip:alice@pbx.example",
            "message-summary",
            None,
            Some(3600),
        )
        .expect("subscribed");
    let mwi_subscribe = sent(&mut ua).remove(0);
    assert_ne!(lamp, mwi);
    for (s, n) in [(&subscribe, 1), (&mwi_subscribe, 1)] {
        ua.handle_message(at(0.1), &answer(s, 200, "OK", &[]))
            .expect("parses");
        ua.handle_message(at(0.2), notify(s, n, "active", "", "").as_bytes())
            .expect("parses");
    }
    sent(&mut ua);
    events(&mut ua);
    let waiting = notify(
        &mwi_subscribe,
        2,
        "active",
        "application/simple-message-summary",
        "Messages-Waiting: yes\r\nVoice-Message: 2/3\r\n",
    );
    ua.handle_message(at(1.0), waiting.as_bytes())
        .expect("parses");
    sent(&mut ua);
    assert!(matches!(
        &events(&mut ua)[..],
        [Event::Notify { subscription, status: Some(Status::MessageSummary(MessageSummary { waiting: true, counts, .. })), .. }]
            if *subscription == mwi && counts == &[MessageCounts { class: "voice".into(), new: 2, old: 3, urgent_new: 0, urgent_old: 0 }]
    ));

    ua.unsubscribe(at(2.0), lamp).expect("unsubscribing");
    let off = sent(&mut ua).remove(0);
    let o = parse(&off);
    assert_eq!(o.header(HeaderName::Expires), Some("0"));
    assert_eq!(o.to().tag(), Some("n1"), "in its dialog");
    ua.handle_message(at(2.1), &answer(&off, 200, "OK", &[]))
        .expect("parses");
    assert_eq!(events(&mut ua), [], "until the final NOTIFY");
    ua.handle_message(
        at(2.2),
        notify(&subscribe, 2, "terminated;reason=timeout", LAMP, "").as_bytes(),
    )
    .expect("parses");
    sent(&mut ua);
    let evs = events(&mut ua);
    assert_eq!(
        evs.last(),
        Some(&Event::SubscriptionEnded {
            subscription: lamp,
            code: None,
            reason: "Unsubscribed".into()
        })
    );
    ua.handle_timeout(at(10.0));
    assert!(sent(&mut ua).is_empty(), "no new subscription for the lamp");

    // The transport drops and comes back: the voicemail one subscribes
    // again, from scratch.
    ua.transport_closed(at(20.0));
    ua.transport_connected(at(21.0));
    let frames = sent(&mut ua);
    let again: Vec<_> = frames
        .iter()
        .filter(|f| f.starts_with("SUBSCRIBE "))
        .collect();
    assert_eq!(again.len(), 1, "{frames:?}");
    let a = parse(again[0]);
    assert_eq!(a.header(HeaderName::Event), Some("message-summary"));
    assert!(a.to().tag().is_none());
}

#[test]
fn bad_arguments_are_refused_before_anything_is_sent() {
    let mut ua = ua();
    assert_eq!(
        ua.subscribe(at(0.0), "not a uri", "dialog", None, None),
        Err(ActionError::BadTarget("target"))
    );
    assert_eq!(
        ua.subscribe(at(0.0), BOB, "dia log", None, None),
        Err(ActionError::BadText("event"))
    );
    assert_eq!(
        ua.subscribe(at(0.0), BOB, "dialog", Some("a\r\nb"), None),
        Err(ActionError::BadText("accept"))
    );
    assert!(sent(&mut ua).is_empty());
}
