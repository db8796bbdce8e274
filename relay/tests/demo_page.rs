//! The demo phone page (demo/, with the npm package it loads), served by
//! the relay binary's `--web-root` as `demo/run.sh` serves it, in headless
//! Chromium driven through its form and buttons: connect with the form
//! prefilled from /api/config, call the embedded PBX's echo extension, and
//! see the page's own meters show the microphone and the tone coming back.

mod common;

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};
use sipline_test_harness::browser;

use common::RelayProcess;
use common::calls::{Scratch, assert_tone};

/// A scratch folder with the demo site assembled by `demo/site.sh`, as the
/// main command assembles it.
fn site() -> (Scratch, PathBuf) {
    let scratch = Scratch::new("demo");
    let site = scratch.0.join("site");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = Command::new("bash")
        .arg(repo.join("demo/site.sh"))
        .arg(&site)
        .status()
        .expect("bash runs");
    assert!(
        built.success(),
        "demo/site.sh (run bash npm/build.sh first)"
    );
    (scratch, site)
}

#[test]
fn the_demo_page_connects_calls_the_echo_and_its_meters_move() {
    let (scratch, site) = site();
    let mic = scratch.tone("mic-1khz.wav", 1000.0, 48_000);

    let site_arg = site.display().to_string();
    let relay = RelayProcess::start_embedded(
        &[
            "--domain",
            "sipline.local",
            "--media-ports",
            "33800-33899",
            "--web-root",
            &site_arg,
        ],
        "alice:alice-demo",
    );
    let shot = scratch.0.join("demo.png");
    let config = json!({
        "url": format!("http://127.0.0.1:{}/", relay.http_port),
        "mic": mic,
        "password": "alice-demo",
        "target": "echo",
        "screenshot": shot,
    });
    let out = browser::demo(&config.to_string()).expect("the browser ran");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert!(v["error"].is_null(), "{}", v["error"]);
    assert_eq!(v["prefilled"]["uri"], "sip:alice@sipline.local", "{v}");
    assert!(
        v["prefilled"]["server"]
            .as_str()
            .is_some_and(|s| s.ends_with("/sip")),
        "{v}"
    );
    assert!(
        v["connected"]
            .as_str()
            .is_some_and(|s| s.starts_with("Registered")),
        "{v}"
    );
    assert_eq!(v["calls"][0], "sip:echo@sipline.local: in call", "{v}");
    // The page's own meters: the microphone, and the echo bringing it back.
    assert!(v["meters"]["mic"].as_f64().is_some_and(|l| l > 0.05), "{v}");
    assert!(
        v["meters"]["remote"].as_f64().is_some_and(|l| l > 0.05),
        "{v}"
    );
    assert!(
        v["stats"]["Loss"]
            .as_str()
            .is_some_and(|l| l.ends_with('%')),
        "{v}"
    );
    assert!(
        v["log"].as_array().is_some_and(|l| l
            .iter()
            .any(|e| e.as_str().is_some_and(|e| e.contains("ended")))),
        "{v}"
    );
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
}

#[test]
fn two_people_call_each_other_through_the_demo_page_and_a_third_calls_the_echo() {
    let (scratch, site) = site();
    let (alice_mic, bob_mic, carol_mic) = (
        scratch.tone("alice.wav", 1000.0, 48_000),
        scratch.tone("bob.wav", 440.0, 48_000),
        scratch.tone("carol.wav", 660.0, 48_000),
    );
    let site_arg = site.display().to_string();
    let relay = RelayProcess::start_embedded(
        &[
            "--domain",
            "sipline.local",
            "--media-ports",
            "33900-33999",
            "--web-root",
            &site_arg,
        ],
        "alice:alice-demo,bob:bob-demo,carol:carol-demo",
    );
    let shot = scratch.0.join("demo-call.png");
    let config = json!({
        "url": format!("http://127.0.0.1:{}/", relay.http_port),
        "domain": "sipline.local",
        "a": {"user": "alice", "password": "alice-demo", "mic": alice_mic},
        "b": {"user": "bob", "password": "bob-demo", "mic": bob_mic},
        "c": {"user": "carol", "password": "carol-demo", "mic": carol_mic},
        "screenshot": shot,
    });
    let out = browser::demo_call(&config.to_string()).expect("the browsers ran");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert!(v["error"].is_null(), "{}", v["error"]);
    assert!(
        v["incomingFrom"]
            .as_str()
            .is_some_and(|f| f.contains("sip:alice@sipline.local")),
        "{v}"
    );
    // Each hears the other's tone.
    assert_tone(&v["talk"]["a"], 440.0, "alice");
    assert_tone(&v["talk"]["b"], 1000.0, "bob");
    // Her dial pad's digits reach bob's page (as SIP INFO).
    assert_eq!(
        v["dtmf"],
        json!(["DTMF 1 received", "DTMF 2 received", "DTMF # received"]),
        "{v}"
    );
    // Alice holds: both pages say so, and bob's audio stops reaching her.
    let first = |who: &str| {
        v["held"]["lists"][who][0]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    assert!(first("b").contains("held by the far end"), "{v}");
    assert!(first("a").contains("on hold"), "{v}");
    assert!(
        v["held"]["a"]["peakOverMedianDb"]
            .as_f64()
            .unwrap_or_default()
            < 30.0,
        "alice still hears bob while holding: {v}"
    );
    assert_tone(&v["resumed"]["a"], 440.0, "alice, resumed");
    // Her hangup reaches bob's page.
    assert!(
        v["ended"].as_array().is_some_and(|l| l
            .iter()
            .any(|e| e.as_str().is_some_and(|e| e.contains("ended")))),
        "{v}"
    );
    // Carol hears herself through the echo extension.
    assert_tone(&v["echo"], 660.0, "carol, echo");
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"));
    // Kept for the README: target/screenshots/, or the folder named by
    // SIPLINE_SCREENSHOTS (`docs` refreshes the README's picture).
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let keep = std::env::var_os("SIPLINE_SCREENSHOTS")
        .map_or_else(|| repo.join("target/screenshots"), |d| repo.join(d));
    std::fs::create_dir_all(&keep).expect("screenshot folder");
    std::fs::write(keep.join("demo-call.png"), png).expect("screenshot kept");
}
