//! The npm package as apps get it: the packed tarball installed into an
//! example app and built by Vite, webpack 5 and esbuild with their defaults
//! (esbuild with the one step the npm README gives it), and loaded with no
//! bundler at all by a plain page with an import map
//! (`tests/bundlers/build.sh`). Each, in headless Chromium, registers with
//! the relay's embedded PBX and calls its echo, the `.wasm` found on its
//! own; packets are counted both ways.

mod common;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};
use sipline_test_harness::browser;

use common::RelayProcess;
use common::calls::{MIC_HZ, Scratch};

#[test]
fn the_package_works_built_by_vite_webpack_and_esbuild_and_in_a_plain_page() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/bundlers");
    assert!(
        here.join("node_modules/.bin/vite").is_file(),
        "the bundlers are not installed in tests/bundlers: `bash tests/run.sh` installs them"
    );
    let scratch = Scratch::new("bundlers");
    let mic = scratch.tone("mic-1khz.wav", MIC_HZ, 48_000);
    let apps = scratch.0.join("apps");
    let built = Command::new("bash")
        .arg(here.join("build.sh"))
        .arg(&apps)
        .output()
        .expect("bash runs");
    assert!(
        built.status.success(),
        "build.sh failed: {}\n{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    let relay = RelayProcess::start_embedded(
        &["--domain", "sipline.local", "--media-ports", "34900-34999"],
        "alice:alice-bundled",
    );
    let config = json!({
        "mic": mic,
        "apps": {
            "vite": apps.join("vite/dist"),
            "webpack": apps.join("webpack/dist"),
            "esbuild": apps.join("esbuild/dist"),
            "plain": apps.join("plain"),
        },
        "query": {
            "server": relay.ws_url(),
            "uri": "sip:alice@sipline.local",
            "password": "alice-bundled",
            "target": "sip:echo@sipline.local",
        },
    });
    let out = browser::script_at(
        &browser::dir().join("bundlers.mjs"),
        &config.to_string(),
        |_| {},
    )
    .expect("the browser ran");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    for app in ["vite", "webpack", "esbuild", "plain"] {
        let r = &v[app];
        assert!(r["error"].is_null(), "{app}: {r}");
        assert!(r["pageErrors"].is_null(), "{app}: {r}");
        assert_eq!(
            (&r["registered"], &r["answered"]),
            (&json!(true), &json!(true)),
            "{app}: {r}"
        );
        // A second and a half of 50 packets a second, each way (the echo
        // returns what it gets).
        for way in ["packetsSent", "packetsReceived"] {
            let n = r[way].as_u64().unwrap_or(0);
            assert!(n >= 40, "{app}: {n} {way}: {r}");
        }
    }
}
