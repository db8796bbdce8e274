//! The SDK's whole public API misused in Chromium (issue 22): the built npm
//! package, on a phone registered at the relay's embedded PBX and in a call
//! with its echo, takes 10,000 generated calls with wrong arguments
//! (tests/browser/misuse.js: wrong types, undefined, null, NaN, negative
//! and huge numbers, huge strings, CR/LF, objects, Symbols, a `Call` where
//! a URI goes). Each must fail with a `TypeError` or `RangeError` naming
//! the argument: no WebAssembly trap, no other error, no unhandled
//! rejection. A disconnected phone refuses every method with an
//! `InvalidStateError`. Afterwards the same phone is still registered, its
//! call still carries the echo both ways, and a new call does too.

mod common;

use serde_json::{Value, json};
use sipline_test_harness::browser;

use common::RelayProcess;
use common::calls::{MIC_HZ, Scratch, assert_tone, assert_window};

fn assert_echo(step: &Value, what: &str) {
    assert_tone(step, MIC_HZ, what);
    assert_window(step, "received", what);
    assert_window(step, "sent", what);
}

#[test]
fn ten_thousand_misuses_get_named_errors_and_the_phone_still_calls() {
    let scratch = Scratch::new("misuse");
    let mic = scratch.tone("mic-1khz.wav", MIC_HZ, 48_000);
    let relay = RelayProcess::start_embedded(
        &["--domain", "sipline.local", "--media-ports", "34300-34399"],
        "alice:alice-misuse",
    );
    let options = json!({
        "server": relay.ws_url(),
        "uri": "sip:alice@sipline.local",
        "password": "alice-misuse",
    });
    let config = json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": options},
            {"do": "call", "target": "sip:echo@sipline.local"},
            {"do": "measure", "name": "before"},
            {"do": "misuse", "count": 10_000, "seed": 22, "options": options},
            {"do": "measure", "name": "after"},
            {"do": "hangup"},
            {"do": "call", "name": "again", "target": "sip:echo@sipline.local"},
            {"do": "measure", "name": "again_heard"},
            {"do": "hangup", "name": "hangup_again"},
            {"do": "disconnect"},
        ],
    });
    let out = browser::sdk(&config.to_string(), |_| {}).expect("the browser ran");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert!(v["error"].is_null(), "{}\n{}", v["error"], v["events"]);
    let steps = &v["steps"];
    let m = &steps["misuse"];
    eprintln!("misuse: {m}");
    assert_eq!(m["calls"], 10_000, "{m}");
    assert_eq!(m["traps"], 0, "no WebAssembly trap: {m}");
    assert_eq!(m["unhandled"], 0, "no unhandled rejection: {m}");
    assert_eq!(m["wrong"], 0, "every misuse got its named error: {m}");
    assert!(
        m["typeErrors"].as_u64().unwrap_or(0) > 5_000
            && m["rangeErrors"].as_u64().unwrap_or(0) > 500,
        "both kinds of refusal: {m}"
    );
    for method in [
        "phone.call",
        "phone.message",
        "call.answer",
        "call.decline",
        "call.hangup",
        "call.hold",
        "call.sendDtmf",
        "call.transfer",
        "call.message",
        "call.info",
        "Phone.connect",
    ] {
        assert!(
            m["byMethod"][method].as_u64().unwrap_or(0) > 300,
            "{method}: {m}"
        );
    }
    for method in ["call", "message", "register", "unregister"] {
        assert_eq!(
            m["afterDisconnect"][method], "disconnected",
            "{method} on a disconnected phone: {m}"
        );
    }
    assert_eq!(m["afterDisconnect"]["disconnectAgain"], "ok", "{m}");
    assert_eq!(m["state"], "established", "the call lived through it: {m}");
    assert_eq!(m["registered"], true, "still registered: {m}");
    assert_echo(&steps["before"], "the echo before");
    assert_echo(&steps["after"], "the echo after 10,000 misuses");
    assert_eq!(steps["again"]["state"], "established", "{}", steps["again"]);
    assert_echo(&steps["again_heard"], "a new call after them");
}
