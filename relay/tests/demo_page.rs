//! The demo phone page (demo/, with the npm package it loads), served by
//! `demo/serve.sh`, the main command's own last step, with the relay binary
//! under test: headless Chromium and Firefox driven through its form and
//! buttons. Connect with the form prefilled from /api/config, call the
//! embedded PBX's echo extension and see the page's own meters move; two
//! people call each other (audio both ways, hold, DTMF, hangup); Firefox
//! and Chromium call each other; and the page in front of a real PBX
//! (Kamailio) calls a phone behind it (baresip).

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};
use sipline_test_harness::kamailio::{DOMAIN, Kamailio, Options, USERS};
use sipline_test_harness::{browser, free_port, relay};

use common::calls::{
    FAR_HZ, Scratch, assert_far_end_heard_the_browser, assert_tone, far_end, outcome, tones,
};
use common::flood::Flood;

/// `demo/serve.sh` running: the site assembled in a scratch folder, the
/// relay with its embedded PBX and demo users, as `demo/run.sh` runs them,
/// but with the relay binary under test. Dropping it is Ctrl-C.
struct Demo {
    script: Child,
    /// The page's address, as the script printed it.
    url: String,
}

impl Demo {
    /// With the embedded PBX and its demo users.
    fn serve(scratch: &Scratch, media_ports: &str) -> Demo {
        Self::launch(scratch, media_ports, None)
    }

    /// In front of `pbx`, whose users are of `domain`, as the README's
    /// guide to trying the page beside an existing PBX says.
    fn in_front_of(scratch: &Scratch, media_ports: &str, pbx: SocketAddr, domain: &str) -> Demo {
        Self::launch(scratch, media_ports, Some((pbx, domain)))
    }

    fn launch(scratch: &Scratch, media_ports: &str, pbx: Option<(SocketAddr, &str)>) -> Demo {
        let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut command = Command::new("bash");
        if let Some((pbx, domain)) = pbx {
            command
                .env("SIPLINE_PBX", pbx.to_string())
                .env("SIPLINE_DOMAIN", domain);
        }
        if let Some(port) = relay::shared_browser_port().expect("a free port") {
            command
                .env("SIPLINE_MEDIA_BROWSER_PORT", port.to_string())
                .env("SIPLINE_MEDIA_WORKERS", "1");
        }
        let mut script = command
            .arg(repo.join("demo/serve.sh"))
            .env(
                "SIPLINE_HTTP_PORT",
                free_port().expect("free port").to_string(),
            )
            .env("SIPLINE_MEDIA_PORTS", media_ports)
            .env("SIPLINE_RELAY", env!("CARGO_BIN_EXE_sipline-relay"))
            .env("SIPLINE_SITE", scratch.0.join("site"))
            .env("SIPLINE_RECORD_DIR", scratch.0.join("recordings"))
            .env(
                "RUST_LOG",
                std::env::var("SIPLINE_RELAY_LOG").unwrap_or_else(|_| "warn,rtc_dtls=error".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // Its own process group, so that dropping it stops the relay too.
            .process_group(0)
            .spawn()
            .expect("bash runs demo/serve.sh");
        let stdout = script.stdout.take().expect("piped stdout");
        // Read on aside to the end, so that the script never blocks on a
        // full pipe; the URL line comes back.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.trim().strip_prefix("Open") {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("demo/serve.sh printed the URL (run bash npm/build.sh first)");
        Demo { script, url }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let group = format!("-{}", self.script.id());
        let _ = Command::new("kill").args(["-INT", "--", &group]).status();
        let _ = self.script.wait();
    }
}

#[test]
fn the_demo_page_connects_calls_the_echo_and_its_meters_move() {
    let scratch = Scratch::new("demo");
    let mic = scratch.tone("mic-1khz.wav", 1000.0, 48_000);
    let demo = Demo::serve(&scratch, "33800-33899");
    let shot = scratch.0.join("demo.png");
    let config = json!({
        "url": demo.url,
        "mic": mic,
        "password": "alice-demo",
        "target": "echo",
        "screenshot": shot,
        "record": true,
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

    // Recorded from the Record button: listed on the page, which loads it
    // (about the call's 4 s), and the relay's WAV holds the echoed tone.
    assert_eq!(v["recordButton"], "Stop recording", "{v}");
    let rec = &v["recording"];
    assert!(
        rec["title"]
            .as_str()
            .is_some_and(|t| t.contains("sip:alice@sipline.local → sip:echo@sipline.local")),
        "{v}"
    );
    let secs = rec["seconds"].as_f64().unwrap_or_default();
    assert!((3.0..8.0).contains(&secs), "{secs} s: {v}");
    let wav_path = rec["src"]
        .as_str()
        .and_then(|s| s.strip_prefix("/admin/recordings/"))
        .expect("served by the relay");
    let mut wav =
        hound::WavReader::open(scratch.0.join("recordings").join(wav_path)).expect("the WAV");
    assert_eq!(wav.spec().sample_rate, 16_000, "Opus, to the echo");
    let left: Vec<i16> = wav
        .samples::<i16>()
        .step_by(2)
        .map(|s| s.expect("a sample"))
        .collect();
    let mid = left.len() / 2;
    let hz = sipline_test_harness::audio::zero_crossing_hz(&left[mid - 8000..mid + 8000], 16_000.0);
    assert!((hz - 1000.0).abs() < 30.0, "the browser's side is {hz} Hz");
}

#[test]
fn the_page_registers_and_calls_while_1500_idle_connections_are_held_against_the_relay() {
    let scratch = Scratch::new("demo-flood");
    let mic = scratch.tone("mic-1khz.wav", 1000.0, 48_000);
    let demo = Demo::serve(&scratch, "36000-36099");
    let port: u16 = demo
        .url
        .trim_end_matches('/')
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("the URL's port");
    // Idle and trickling sockets from 50 addresses, reopened as fast as the
    // relay closes them, for as long as the browser works.
    let flood = Flood::hold(([127, 0, 0, 1], port).into(), 1500, 50);
    std::thread::sleep(Duration::from_secs(1));
    let config = json!({
        "url": demo.url,
        "mic": mic,
        "password": "alice-demo",
        "target": "echo",
        "screenshot": scratch.0.join("flood.png"),
    });
    let out = browser::demo(&config.to_string()).expect("the browser ran");
    let healthz = common::http_get(port, "/healthz");
    let closed = flood.stop();
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert!(v["error"].is_null(), "{}", v["error"]);
    assert!(
        v["connected"]
            .as_str()
            .is_some_and(|s| s.starts_with("Registered")),
        "{v}"
    );
    assert_eq!(v["calls"][0], "sip:echo@sipline.local: in call", "{v}");
    assert!(
        v["meters"]["remote"].as_f64().is_some_and(|l| l > 0.05),
        "the echo brought the microphone back: {v}"
    );
    assert!(healthz.contains("200 OK"), "{healthz}");
    assert!(
        closed >= 476,
        "the relay pushed out the oldest: {closed} closed"
    );
}

#[test]
fn two_people_call_each_other_through_the_demo_page_and_a_third_calls_the_echo() {
    let scratch = Scratch::new("demo-call");
    let (alice_mic, bob_mic, carol_mic) = (
        scratch.tone("alice.wav", 1000.0, 48_000),
        scratch.tone("bob.wav", 440.0, 48_000),
        scratch.tone("carol.wav", 660.0, 48_000),
    );
    let demo = Demo::serve(&scratch, "33900-33999");
    let shot = scratch.0.join("demo-call.png");
    let config = json!({
        "url": demo.url,
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
    // Carol's page watched bob's lamp: busy in the call, idle after it.
    assert!(
        v["lampBusy"].as_str().is_some_and(|l| l.contains("busy")),
        "{v}"
    );
    assert_eq!(v["lampIdle"], true, "{v}");
    // Consult, then transfer: bob and carol talk, alice's calls ended.
    assert_tone(&v["joined"]["b"], 660.0, "bob, after the attended transfer");
    assert_tone(
        &v["joined"]["c"],
        440.0,
        "carol, after the attended transfer",
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

#[test]
fn firefox_and_chromium_call_each_other_through_the_demo_page_and_firefox_calls_the_echo() {
    let scratch = Scratch::new("demo-firefox");
    let bob_mic = scratch.tone("bob.wav", 440.0, 48_000);
    let demo = Demo::serve(&scratch, "34000-34099");
    let config = json!({
        "url": demo.url,
        "domain": "sipline.local",
        "firefox": {"user": "carol", "password": "carol-demo", "toneHz": 880},
        "chromium": {"user": "bob", "password": "bob-demo", "mic": bob_mic},
    });
    let out = browser::demo_firefox(&config.to_string()).expect("the browsers ran");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert!(v["error"].is_null(), "{}", v["error"]);
    assert_eq!(
        v["firefoxStatus"], "Registered as sip:carol@sipline.local",
        "{v}"
    );
    // Firefox answered Chromium's offer: each hears the other.
    assert_tone(&v["talk"]["firefox"], 440.0, "Firefox");
    assert_tone(&v["talk"]["chromium"], 880.0, "Chromium");
    // The page reads Firefox's own statistics.
    assert!(v["firefoxMeter"].as_f64().is_some_and(|l| l > 0.01), "{v}");
    assert!(
        v["firefoxStats"]["Jitter"]
            .as_str()
            .is_some_and(|j| j.ends_with(" ms")),
        "{v}"
    );
    // Firefox's hangup reaches Chromium's page.
    assert!(
        v["chromiumLog"].as_array().is_some_and(|l| l
            .iter()
            .any(|e| e.as_str().is_some_and(|e| e.contains("ended")))),
        "{v}"
    );
    // Firefox's own offer, to the echo: it hears its 880 Hz back.
    assert_tone(&v["echo"], 880.0, "Firefox, echo");
}

#[test]
fn the_demo_page_in_front_of_a_pbx_calls_a_phone_behind_it() {
    let (scratch, mic, far_tone) = tones("demo-pbx");
    let kamailio = Kamailio::start(&Options::default()).expect("kamailio");
    let pbx: SocketAddr = format!("127.0.0.1:{}", kamailio.udp_port)
        .parse()
        .expect("address");
    let bob = far_end(pbx, USERS[1], far_tone, true);
    let demo = Demo::in_front_of(&scratch, "34100-34199", pbx, DOMAIN);
    let (alice, password) = USERS[0];
    let config = json!({
        "url": demo.url,
        "mic": mic,
        "uri": format!("sip:{alice}@{DOMAIN}"),
        "password": password,
        "target": USERS[1].0,
        "listen": true,
    });
    let out = browser::demo(&config.to_string()).expect("the browser ran");
    let v = outcome(&out, &bob);
    // The page's form took the PBX's domain from /api/config.
    assert_eq!(v["prefilled"]["uri"], format!("sip:alice@{DOMAIN}"), "{v}");
    assert_eq!(
        v["connected"],
        format!("Registered as sip:{alice}@{DOMAIN}"),
        "{v}"
    );
    assert_eq!(
        v["calls"][0],
        format!("sip:{}@{DOMAIN}: in call", USERS[1].0),
        "{v}"
    );
    assert_tone(
        &v["heard"],
        FAR_HZ,
        "the page, from the phone behind the PBX",
    );
    drop(demo);
    assert_far_end_heard_the_browser(&bob);
}
