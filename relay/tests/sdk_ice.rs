//! How the browser SDK's offers and answers carry ICE candidates toward a
//! full-ICE peer, with every part real on 127.0.0.1: two headless
//! Chromiums running the built npm package, straight on Kamailio's
//! WebSocket (no relay, so no one says the far side is ICE-lite). The SIP
//! each page sent and received is checked (`wire` steps), and audio is
//! measured both ways. (Toward the relay, offers and answers leave without
//! candidates: `sdk_browser.rs`, `sdk_rtpengine.rs` for rtpengine.)

mod common;

use serde_json::{Value, json};
use sipline_test_harness::kamailio::{DOMAIN, Kamailio, Options, USERS};

use common::calls::{FAR_HZ, MIC_HZ, Scratch, assert_hears, caller_and_callee};

/// The SIP messages a browser script's `wire` step saw going `dir`
/// (`out`, `in`) whose first line starts with `line` and CSeq method is
/// `method`.
fn on_wire<'a>(run: &'a Value, dir: &str, line: &str, method: &str) -> Vec<&'a Value> {
    run["steps"]["wire"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|m| {
                    m["dir"] == dir
                        && m["method"] == method
                        && m["line"].as_str().is_some_and(|t| t.starts_with(line))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// ICE candidates in the first such message (see [`on_wire`]).
fn candidates_in(run: &Value, dir: &str, line: &str, method: &str) -> i64 {
    on_wire(run, dir, line, method)
        .first()
        .and_then(|m| m["candidates"].as_i64())
        .unwrap_or_else(|| panic!("no {dir} {line} ({method}): {}", run["steps"]["wire"]))
}

/// Trickle ICE INFOs a browser sent (`out`) or got (`in`).
fn trickle_infos(run: &Value, dir: &str) -> usize {
    on_wire(run, dir, "INFO", "INFO")
        .iter()
        .filter(|m| m["infoPackage"] == "trickle-ice")
        .count()
}

/// Two browsers registered straight to Kamailio's WebSocket, no relay, so
/// no one says the far side is ICE-lite:
/// - toward a full-ICE peer without trickle ICE (bob's page hides it, as a
///   SIP library without it would), the caller's offer waits for ICE
///   gathering (bounded) and carries its candidates, and so does bob's
///   answer; nothing follows;
/// - when bob takes trickled candidates (RFC 8840), his answer goes at
///   once and his candidates follow in INFOs;
/// - and when alice's app says to offer at once too (`iceLite`), both
///   sides' candidates follow in INFOs.
///
/// Audio is measured both ways each time.
#[test]
fn toward_a_full_ice_peer_candidates_go_in_the_sdp_or_trickle_in_infos() {
    let scratch = Scratch::new("sdk-ice");
    let alice_mic = scratch.tone("mic-1khz.wav", MIC_HZ, 48_000);
    let bob_mic = scratch.tone("bob-440hz-48k.wav", FAR_HZ, 48_000);
    let kamailio = Kamailio::start(&Options::default()).expect("kamailio");
    let options = |(user, password): (&str, &str), ice_lite: bool| {
        let mut o = json!({
            "server": kamailio.ws_url(),
            "uri": format!("sip:{user}@{DOMAIN}"),
            "password": password,
        });
        if ice_lite {
            o["iceLite"] = json!(true);
        }
        o
    };
    for (bob_trickles, alice_at_once) in [(false, false), (true, false), (true, true)] {
        let what = format!("bob trickles: {bob_trickles}, alice offers at once: {alice_at_once}");
        let mut bob_steps = vec![
            json!({"do": "connect", "options": options(USERS[1], false)}),
            json!({"do": "mark", "event": "bob_ready"}),
            json!({"do": "answer", "timeoutMs": 20000}),
            json!({"do": "measure", "name": "talk"}),
            json!({"do": "wait_event", "name": "hangup", "event": "hangup", "timeoutMs": 30000}),
            json!({"do": "wire"}),
            json!({"do": "disconnect"}),
        ];
        if !bob_trickles {
            bob_steps.insert(0, json!({"do": "no_trickle"}));
        }
        let bob_config = json!({"mic": bob_mic, "steps": bob_steps});
        let alice_config = json!({
            "mic": alice_mic,
            "steps": [
                {"do": "connect", "options": options(USERS[0], alice_at_once)},
                {"do": "call", "target": format!("sip:bob@{DOMAIN}")},
                {"do": "measure", "name": "talk"},
                // Bob's own measuring started a little later.
                {"do": "sleep", "ms": 2000},
                {"do": "hangup"},
                {"do": "wire"},
                {"do": "disconnect"},
            ],
        });
        let (a, b) = caller_and_callee(&alice_config, &bob_config, "bob_ready", || {
            format!("{what}\n{}", kamailio.log_tail())
        });
        let offer = candidates_in(&a, "out", "INVITE", "INVITE");
        let answer = candidates_in(&b, "out", "SIP/2.0 200", "INVITE");
        assert_eq!(
            offer == 0,
            alice_at_once,
            "{what}: {offer} candidates in the offer"
        );
        assert_eq!(answer == 0, bob_trickles, "{what}: {answer} in the answer");
        // Whoever sent no candidates trickled them, and the other got them.
        assert_eq!(
            trickle_infos(&a, "out") > 0,
            alice_at_once,
            "{what}: alice's INFOs"
        );
        assert_eq!(
            trickle_infos(&b, "out") > 0,
            bob_trickles,
            "{what}: bob's INFOs"
        );
        assert_eq!(trickle_infos(&b, "in"), trickle_infos(&a, "out"), "{what}");
        assert_eq!(trickle_infos(&a, "in"), trickle_infos(&b, "out"), "{what}");
        // No re-INVITE was needed.
        let names: Vec<&str> = b["events"]
            .as_array()
            .map(|l| l.iter().filter_map(|e| e["name"].as_str()).collect())
            .unwrap_or_default();
        assert!(!names.contains(&"updating"), "{what}: bob: {names:?}");
        assert_hears(&a["steps"]["talk"], FAR_HZ, &format!("{what}: alice"));
        assert_hears(&b["steps"]["talk"], MIC_HZ, &format!("{what}: bob"));
    }
}
