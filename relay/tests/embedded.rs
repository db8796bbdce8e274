//! The relay with its embedded mini PBX: no external PBX at all. The real
//! binary, the native user agent and scripted browsers, on 127.0.0.1.

mod common;

use std::time::Duration;

use common::RelayProcess;
use common::browser::Browser;
use sipline_core::sip::Method;
use sipline_core::{Config, Event, Secret};
use sipline_ua_shell::{Backoff, Phone, ShellEvent};
use tokio::time::timeout;

const USERS: &str = "alice:alice-pw,bob:bob-pw,carol:carol-pw";

fn relay() -> RelayProcess {
    // No PBX: the embedded one, with three users in the realm sipline.test.
    RelayProcess::start_embedded(&["--domain", "sipline.test"], USERS)
}

/// The next user-agent event of `phone` that `wanted` picks (within 5 s).
async fn next_event(phone: &mut Phone, wanted: impl Fn(&Event) -> bool, what: &str) -> Event {
    timeout(Duration::from_secs(5), async {
        loop {
            match phone.next_event().await {
                Some(ShellEvent::Ua(e)) if wanted(&e) => return e,
                Some(_) => {}
                None => panic!("shell stopped"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} within 5 s"))
}

async fn outcome(phone: &mut Phone) -> Event {
    let registration = |e: &Event| {
        matches!(
            e,
            Event::Registered { .. } | Event::RegistrationFailed { .. }
        )
    };
    next_event(phone, registration, "a registration outcome").await
}

fn ua(user: &str, password: &str, expires: u32) -> Config {
    let mut c = Config::new(format!("sip:{user}@sipline.test"));
    c.password = Some(Secret::new(password));
    c.register_expires = expires;
    c
}

#[tokio::test]
async fn the_user_agent_registers_with_the_embedded_registrar() {
    let relay = relay();
    let mut phone = Phone::spawn(
        &relay.ws_url(),
        ua("alice", "alice-pw", 600),
        Backoff::default(),
    )
    .expect("shell");
    assert_eq!(
        outcome(&mut phone).await,
        Event::Registered { expires: 600 }
    );
    assert!(
        relay.metrics().contains("\nsipline_registrations 1\n"),
        "{}",
        relay.metrics()
    );
    phone.shutdown().await;

    let mut wrong =
        Phone::spawn(&relay.ws_url(), ua("bob", "nope", 600), Backoff::default()).expect("shell");
    assert_eq!(
        outcome(&mut wrong).await.to_string(),
        "registration failed: 403 Forbidden"
    );
    wrong.shutdown().await;

    let mut brief = Phone::spawn(
        &relay.ws_url(),
        ua("carol", "carol-pw", 20),
        Backoff::default(),
    )
    .expect("shell");
    assert_eq!(
        outcome(&mut brief).await,
        Event::Registered { expires: 60 },
        "423 then Min-Expires"
    );
    brief.shutdown().await;
}

#[tokio::test]
async fn two_browsers_call_each_other_and_either_can_hang_up() {
    let relay = relay();
    let url = relay.ws_url();
    let mut alice = Browser::register(&url, "alice", "alice-pw", 11).await;
    let mut bob = Browser::register(&url, "bob", "bob-pw", 12).await;
    // The relay carries media (the echo's), so it says its side is
    // ICE-lite: offers need not wait for gathering (an SDK whose call a
    // browser answers with full ICE sends its candidates by re-INVITE).
    assert!(
        bob.registered.contains("\r\nSipline-Media: ice-lite\r\n"),
        "{}",
        bob.registered
    );
    let wait = Duration::from_secs(5);

    for (call, callee_hangs_up) in [("call-1", false), ("call-2", true)] {
        let invite = alice.invite("bob", "sipline.test", call).await;
        let incoming = bob.next_request(wait).await.expect("INVITE at bob");
        assert!(
            incoming.starts_with(&format!("INVITE {} SIP/2.0", bob.contact())),
            "{incoming}"
        );
        bob.answer(&incoming, 180, "Ringing", "bobtag").await;
        bob.answer(&incoming, 200, "OK", "bobtag").await;
        let ringing = alice.any_response(wait).await.expect("180");
        assert!(ringing.starts_with("SIP/2.0 180"), "{ringing}");
        let ok = alice.any_response(wait).await.expect("200");
        assert!(
            ok.starts_with("SIP/2.0 200") && ok.contains("application/sdp"),
            "{ok}"
        );
        alice.in_dialog(Method::Ack, &invite, &ok).await;
        assert!(
            bob.next_request(wait)
                .await
                .expect("ACK")
                .starts_with("ACK ")
        );
        if callee_hangs_up {
            bob.hang_up(&incoming, "bobtag").await;
            let bye = alice.next_request(wait).await.expect("BYE at alice");
            assert!(bye.starts_with("BYE "), "{bye}");
            alice.answer(&bye, 200, "OK", "alicetag").await;
            assert!(bob.final_response().await.starts_with("SIP/2.0 200"));
        } else {
            alice.in_dialog(Method::Bye, &invite, &ok).await;
            let bye = bob.next_request(wait).await.expect("BYE at bob");
            assert!(bye.starts_with("BYE "), "{bye}");
            bob.answer(&bye, 200, "OK", "bobtag").await;
            assert!(alice.final_response().await.starts_with("SIP/2.0 200"));
        }
    }
}

#[tokio::test]
async fn calls_to_nobody_offline_users_echo_and_strangers_are_answered_clearly() {
    let relay = relay();
    let url = relay.ws_url();
    let mut alice = Browser::register(&url, "alice", "alice-pw", 21).await;
    let wait = Duration::from_secs(5);
    let status = |resp: Option<String>| resp.and_then(|r| r.split(' ').nth(1).map(str::to_owned));
    alice.invite("nobody", "sipline.test", "c-404").await;
    assert_eq!(
        status(alice.any_response(wait).await).as_deref(),
        Some("404")
    );
    alice.invite("carol", "sipline.test", "c-480").await;
    assert_eq!(
        status(alice.any_response(wait).await).as_deref(),
        Some("480"),
        "carol is not registered"
    );
    alice.invite("echo", "sipline.test", "c-echo").await;
    let echo = alice.any_response(wait).await.expect("an answer");
    // The echo answers WebRTC offers (tests/browser_calls.rs has Chromium
    // call it); this offer is plain RTP.
    assert!(
        echo.starts_with("SIP/2.0 488 Not Acceptable Here"),
        "{echo}"
    );

    // A connection that never registered must prove who it is.
    let mut stranger = common::raw_ws(&url).await;
    let invite = "INVITE sip:alice@sipline.test SIP/2.0\r\nVia: SIP/2.0/WS s.invalid;branch=z9hG4bKs1\r\nMax-Forwards: 70\r\n\
From: <sip:bob@sipline.test>;tag=s\r\nTo: <sip:alice@sipline.test>\r\nCall-ID: stranger\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
    common::send(&mut stranger, invite).await;
    match common::receive(&mut stranger, wait).await {
        common::Received::Text(t) => {
            assert!(t.starts_with("SIP/2.0 407"), "{t}");
            assert!(
                t.contains("Proxy-Authenticate: Digest realm=\"sipline.test\""),
                "{t}"
            );
            assert!(t.contains("algorithm=SHA-256"), "{t}");
        }
        other => panic!("expected a 407, got {other:?}"),
    }
    assert!(
        alice
            .next_request(Duration::from_millis(300))
            .await
            .is_none(),
        "nothing reached alice"
    );
}

#[tokio::test]
async fn a_browser_that_stops_reading_is_disconnected_not_silently_starved() {
    let relay = common::RelayProcess::start_embedded(
        &[
            "--domain",
            "sipline.test",
            "--messages-per-second",
            "1000000",
            "--message-burst",
            "1000000",
        ],
        USERS,
    );
    let mut ws = common::raw_ws(&relay.ws_url()).await;
    // Every OPTIONS to the domain is answered; this client never reads, so
    // the answers pile up in the kernel's buffers and then in the relay's
    // queue for it, until the relay gives up on it.
    let mut sent = 0;
    let flood = async {
        loop {
            let msg = format!(
                "OPTIONS sip:sipline.test SIP/2.0\r\nVia: SIP/2.0/WS f.invalid;branch=z9hG4bKf{sent}\r\nMax-Forwards: 70\r\n\
From: <sip:f@sipline.test>;tag=f\r\nTo: <sip:sipline.test>\r\nCall-ID: flood-{sent}\r\nCSeq: 1 OPTIONS\r\nX-Pad: {}\r\n\r\n",
                "p".repeat(900)
            );
            if futures_util::SinkExt::send(
                &mut ws,
                tokio_tungstenite::tungstenite::Message::text(msg),
            )
            .await
            .is_err()
            {
                return;
            }
            sent += 1;
        }
    };
    let ended = tokio::time::timeout(Duration::from_secs(30), flood).await;
    assert!(
        ended.is_ok(),
        "the relay never cut off a client that does not read ({sent} sent)"
    );
    // Others are served as before.
    let mut phone = Phone::spawn(
        &relay.ws_url(),
        ua("alice", "alice-pw", 600),
        Backoff::default(),
    )
    .expect("shell");
    assert_eq!(
        outcome(&mut phone).await,
        Event::Registered { expires: 600 }
    );
    phone.shutdown().await;
}

/// The next call event of `phone` (registration events are skipped).
async fn call_event(phone: &mut Phone) -> Event {
    let call = |e: &Event| {
        matches!(
            e,
            Event::Incoming { .. }
                | Event::Ringing { .. }
                | Event::Progress { .. }
                | Event::Accepted { .. }
                | Event::Hangup { .. }
        )
    };
    next_event(phone, call, "a call event").await
}

#[tokio::test]
async fn two_native_user_agents_call_each_other_through_the_embedded_pbx() {
    // The core's own calls (issue 6), over real WebSockets through the
    // relay: INVITE with an offer, the answer, ACK, BYE.
    let relay = relay();
    let mut alice = Phone::spawn(
        &relay.ws_url(),
        ua("alice", "alice-pw", 600),
        Backoff::default(),
    )
    .expect("shell");
    let mut bob = Phone::spawn(
        &relay.ws_url(),
        ua("bob", "bob-pw", 600),
        Backoff::default(),
    )
    .expect("shell");
    assert!(matches!(
        outcome(&mut alice).await,
        Event::Registered { .. }
    ));
    assert!(matches!(outcome(&mut bob).await, Event::Registered { .. }));
    let offer =
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
    let answer =
        "v=0\r\no=- 2 2 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n";
    let call = alice
        .call("sip:bob@sipline.test", offer)
        .await
        .expect("a call");
    let Event::Incoming {
        call: incoming,
        from,
        sdp,
        ..
    } = call_event(&mut bob).await
    else {
        panic!("bob is called")
    };
    assert_eq!(from, "sip:alice@sipline.test");
    assert_eq!(sdp.as_deref(), Some(offer), "the offer arrives untouched");
    // Bob's phone rings by itself as the call is reported.
    assert_eq!(call_event(&mut alice).await, Event::Ringing { call });
    bob.answer(incoming, answer);
    assert_eq!(
        call_event(&mut alice).await,
        Event::Accepted {
            call,
            sdp: answer.into()
        }
    );
    assert!(
        matches!(call_event(&mut bob).await, Event::Accepted { .. }),
        "the ACK came"
    );
    alice.hangup(call);
    assert!(matches!(
        call_event(&mut bob).await,
        Event::Hangup { code: None, .. }
    ));
    assert!(matches!(
        call_event(&mut alice).await,
        Event::Hangup { code: None, .. }
    ));
    alice.shutdown().await;
    bob.shutdown().await;
}
