//! Attended transfer end to end (RFC 5589 §7: REFER with Replaces), three
//! Chromium browsers running the built npm package, each with its own
//! tone: alice (1 kHz) calls bob (440 Hz), holds him, calls carol (660 Hz)
//! to consult, and transfers bob to carol with `call.transfer(consult)`.
//! Bob's page accepts the (attended) transfer request and calls carol with
//! the Replaces alice gave; carol's page lets that call take the place of
//! alice's without ringing (`replaced`). Then bob and carol hear each
//! other, and both of alice's calls have ended. Through the relay's
//! embedded PBX, and through Kamailio as the PBX.

mod common;

use serde_json::{Value, json};
use sipline_test_harness::browser;
use sipline_test_harness::kamailio::{DOMAIN, Kamailio, Options, USERS};

use common::RelayProcess;
use common::calls::{FAR_HZ, MIC_HZ, Scratch, assert_hears, number, sdk_once_ready};

const CAROL_HZ: f64 = 660.0;

/// Runs bob's and carol's pages, each until it marks itself ready, then
/// alice's; their reports.
fn three(alice: Value, bob: Value, carol: Value) -> (Value, Value, Value) {
    let bob = sdk_once_ready(&bob, "bob_ready");
    let carol = sdk_once_ready(&carol, "carol_ready");
    let alice = browser::sdk(&alice.to_string(), |_| {}).expect("alice's browser ran");
    let parse = |out: String| -> Value { serde_json::from_str(&out).expect("JSON") };
    let bob = bob
        .join()
        .expect("bob's thread")
        .expect("bob's browser ran");
    let carol = carol
        .join()
        .expect("carol's thread")
        .expect("carol's browser ran");
    let (a, b, c) = (parse(alice), parse(bob), parse(carol));
    for (who, v) in [("alice", &a), ("bob", &b), ("carol", &c)] {
        assert!(
            v["error"].is_null(),
            "{who}: {}\n{}",
            v["error"],
            v["events"]
        );
    }
    (a, b, c)
}

/// The three pages' steps, with `options(user)` to connect and
/// `domain` in the URIs.
fn transfer(options: impl Fn(&str) -> Value, domain: &str, mics: [String; 3]) {
    let [alice_mic, bob_mic, carol_mic] = mics;
    let bob = json!({
        "mic": bob_mic,
        "steps": [
            {"do": "connect", "options": options("bob")},
            {"do": "mark", "event": "bob_ready"},
            {"do": "answer", "timeoutMs": 30000},
            {"do": "measure", "name": "with_alice"},
            {"do": "accept_referral", "timeoutMs": 30000},
            {"do": "measure", "name": "with_carol"},
            {"do": "sleep", "ms": 500},
            {"do": "hangup"},
            {"do": "disconnect"},
        ],
    });
    let carol = json!({
        "mic": carol_mic,
        "steps": [
            {"do": "connect", "options": options("carol")},
            {"do": "mark", "event": "carol_ready"},
            {"do": "answer", "timeoutMs": 30000},
            {"do": "measure", "name": "with_alice"},
            {"do": "wait_replaced", "timeoutMs": 30000},
            {"do": "mark", "event": "replaced"},
            {"do": "measure", "name": "with_bob"},
            {"do": "wait_event", "name": "hangup", "event": "hangup", "timeoutMs": 30000},
            {"do": "disconnect"},
        ],
    });
    let alice = json!({
        "mic": alice_mic,
        "steps": [
            {"do": "connect", "options": options("alice")},
            {"do": "call", "target": format!("sip:bob@{domain}")},
            {"do": "measure", "name": "with_bob"},
            {"do": "sleep", "ms": 1000},
            {"do": "hold"},
            {"do": "call", "name": "consult", "target": format!("sip:carol@{domain}"), "keep": true},
            {"do": "measure", "name": "with_carol"},
            {"do": "sleep", "ms": 1000},
            {"do": "attended_transfer"},
            {"do": "disconnect"},
        ],
    });
    let (a, b, c) = three(alice, bob, carol);
    let (alice, bob, carol) = (&a["steps"], &b["steps"], &c["steps"]);
    assert_hears(&alice["with_bob"], FAR_HZ, "alice hears bob");
    assert_hears(&bob["with_alice"], MIC_HZ, "bob hears alice");
    assert_hears(&alice["with_carol"], CAROL_HZ, "alice hears carol");
    assert_hears(&carol["with_alice"], MIC_HZ, "carol hears alice");

    // Bob was asked for an attended transfer to carol, and carol's page
    // let his call replace alice's.
    let referral = &bob["accept_referral"];
    assert_eq!(referral["attended"], true, "{referral}");
    assert_eq!(
        referral["target"],
        format!("sip:carol@{domain}"),
        "{referral}"
    );
    assert_eq!(referral["state"], "established", "{referral}");
    let replaced = &carol["wait_replaced"];
    assert_eq!(replaced["state"], "established", "{replaced}");
    assert_eq!(
        replaced["old"], "ended",
        "alice's call with carol ended: {replaced}"
    );
    assert!(
        replaced["from"]
            .as_str()
            .unwrap_or_default()
            .contains("bob"),
        "{replaced}"
    );
    let rang = c["events"]
        .as_array()
        .expect("carol's events")
        .iter()
        .filter(|e| e["name"] == "incoming")
        .count();
    assert_eq!(
        rang, 1,
        "only alice's call rang, not bob's replacing one: {}",
        c["events"]
    );

    // Bob and carol hear each other; alice's two calls ended.
    assert_hears(&bob["with_carol"], CAROL_HZ, "bob hears carol");
    assert_hears(&carol["with_bob"], FAR_HZ, "carol hears bob");
    let t = &alice["attended_transfer"];
    assert_eq!(
        (t["first"].as_str(), t["consult"].as_str()),
        (Some("ended"), Some("ended")),
        "{t}"
    );
    let progress = t["progress"].as_array().expect("progress");
    assert_eq!(
        progress.first().map(|p| number(p, "code")),
        Some(202.0),
        "{t}"
    );
    assert_eq!(
        progress.last().map(|p| number(p, "code")),
        Some(200.0),
        "{t}"
    );
}

fn mics(scratch: &Scratch) -> [String; 3] {
    [
        scratch.tone("alice-1khz.wav", MIC_HZ, 48_000),
        scratch.tone("bob-440hz.wav", FAR_HZ, 48_000),
        scratch.tone("carol-660hz.wav", CAROL_HZ, 48_000),
    ]
    .map(|p| p.to_string_lossy().into_owned())
}

#[test]
fn an_attended_transfer_through_the_embedded_pbx_joins_bob_and_carol() {
    let scratch = Scratch::new("attended-embedded");
    let relay = RelayProcess::start_embedded(
        &["--domain", "sipline.local", "--media-ports", "34500-34599"],
        "alice:alice-at,bob:bob-at,carol:carol-at",
    );
    let options = |user: &str| {
        json!({
            "server": relay.ws_url(),
            "uri": format!("sip:{user}@sipline.local"),
            "password": format!("{user}-at"),
        })
    };
    transfer(options, "sipline.local", mics(&scratch));
    let m = relay.metrics();
    assert!(m.contains("sipline_media_calls 0"), "{m}");
}

#[test]
fn an_attended_transfer_through_kamailio_joins_bob_and_carol() {
    let scratch = Scratch::new("attended-kamailio");
    let kamailio = Kamailio::start(&Options::default()).expect("kamailio");
    let registrar = format!("127.0.0.1:{}", kamailio.udp_port)
        .parse()
        .expect("address");
    let relay = RelayProcess::start(registrar, &["--media-ports", "34600-34699"]);
    let password = |user: &str| {
        USERS
            .iter()
            .find(|(name, _)| *name == user)
            .map(|(_, p)| *p)
            .expect("a Kamailio user")
    };
    let options = |user: &str| {
        json!({
            "server": relay.ws_url(),
            "uri": format!("sip:{user}@{DOMAIN}"),
            "password": password(user),
        })
    };
    transfer(options, DOMAIN, mics(&scratch));
    let m = relay.metrics();
    assert!(m.contains("sipline_media_calls 0"), "{m}");
}
