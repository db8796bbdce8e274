//! The demo phone page (demo/, with the npm package it loads), served by
//! the relay binary's `--web-root` as `demo/run.sh` serves it, in headless
//! Chromium driven through its form and buttons: connect with the form
//! prefilled from /api/config, call the embedded PBX's echo extension, and
//! see the page's own meters show the microphone and the tone coming back.

mod common;

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};
use sipline_test_harness::audio::write_tone;
use sipline_test_harness::browser;

use common::RelayProcess;

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_demo_page_connects_calls_the_echo_and_its_meters_move() {
    let dir = std::env::temp_dir().join(format!(
        "sipline-demo-{}-{}",
        std::process::id(),
        sipline_test_harness::free_port().expect("a unique name")
    ));
    std::fs::create_dir_all(&dir).expect("scratch");
    let scratch = Scratch(dir);
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
    let mic = scratch.0.join("mic-1khz.wav");
    write_tone(&mic, 1000.0, 48_000, 30).expect("mic tone");

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
