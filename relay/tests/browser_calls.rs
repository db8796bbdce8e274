//! Calls with every part real, on 127.0.0.1, started and stopped here:
//! Debian's headless Chromium (a fake microphone playing 1 kHz, a plain
//! page using RTCPeerConnection with a small SIP shim), the relay binary,
//! Kamailio, and baresip registered to it as the far end, playing 440 Hz
//! and recording what it hears. The audio is measured both ways: its
//! strongest frequency and the RTP packets that carried it. Calls go both
//! ways: the browser's offer to the far end, and the far end's offer to the
//! registered browser.

mod common;

use std::path::PathBuf;

use serde_json::Value;
use sipline_test_harness::audio::{read_wav, write_tone};
use sipline_test_harness::baresip::{self, Baresip};
use sipline_test_harness::browser;
use sipline_test_harness::kamailio::{DOMAIN, Digest, Kamailio, Options, USERS};

use common::RelayProcess;

/// The browser's microphone tone and the far end's.
const MIC_HZ: f64 = 1000.0;
const FAR_HZ: f64 = 440.0;

/// Packets in a 2 s listening window at 50 per second, with room for the
/// window's edges and scheduling on a loaded machine.
const WINDOW_PACKETS: std::ops::RangeInclusive<u64> = 80..=120;

struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn number(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// A counter's value from the relay's /metrics text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

fn assert_hears(step: &Value, expected_hz: f64, what: &str) {
    let hz = number(step, "peakHz");
    assert!(
        (hz - expected_hz).abs() < 12.0,
        "{what}: the browser hears {hz:.0} Hz, not {expected_hz} Hz: {step}"
    );
    assert!(
        number(step, "peakOverMedianDb") > 30.0,
        "{what}: no clear peak: {step}"
    );
    let received = number(step, "received") as u64;
    assert!(
        WINDOW_PACKETS.contains(&received),
        "{what}: {received} RTP packets in 2 s: {step}"
    );
}

/// A scratch folder with the browser's microphone tone in it.
fn mic_tone() -> (Scratch, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "sipline-call-{}-{}",
        std::process::id(),
        sipline_test_harness::free_port().expect("a unique name")
    ));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let mic = dir.join("mic-1khz.wav");
    write_tone(&mic, MIC_HZ, 48_000, 30).expect("mic tone");
    (Scratch(dir), mic)
}

#[test]
fn the_embedded_pbx_s_echo_extension_sends_the_browser_its_own_voice() {
    let (_scratch, mic) = mic_tone();
    let relay = RelayProcess::start_embedded(
        &["--domain", "sipline.local", "--media-ports", "33100-33199"],
        "alice:alice-e2e",
    );
    let config = serde_json::json!({
        "ws": relay.ws_url(),
        "target": "sip:echo@sipline.local",
        "domain": "sipline.local",
        "user": "alice",
        "password": "alice-e2e",
        "mic": mic,
    });
    let out = browser::call(&config.to_string()).expect("the browser ran");
    let v: Value = serde_json::from_str(&out).expect("JSON from the browser");
    assert!(v["error"].is_null(), "{}", v["error"]);
    assert_hears(&v["steps"]["talk"], MIC_HZ, "echo");
    assert_eq!(v["bye"], 200, "{}", v["events"]);
    let m = relay.metrics();
    assert_eq!(metric(&m, "sipline_media_calls"), 0, "{m}");
    assert_eq!(
        metric(&m, "sipline_media_packets_total{direction=\"to_pbx\"}"),
        0
    );
    // 3.5 s of listening at 50 packets a second, all of them echoed.
    assert!(metric(&m, "sipline_media_packets_total{direction=\"to_browser\"}") > 120);
}

#[test]
fn chromium_and_the_far_end_hear_each_other_through_relay_and_kamailio_and_hold_stops_media() {
    let (scratch, mic) = mic_tone();
    let far_tone = scratch.0.join("far-440hz.wav");
    write_tone(&far_tone, FAR_HZ, 8_000, 30).expect("far tone");

    let kamailio = Kamailio::start(&Options::default()).expect("kamailio");
    let registrar = format!("127.0.0.1:{}", kamailio.udp_port);
    let (user, password) = USERS[1];
    let far = Baresip::start(&baresip::Options {
        user: user.into(),
        password: password.into(),
        domain: DOMAIN.into(),
        registrar: registrar.parse().expect("address"),
        tone: far_tone,
        register: true,
    })
    .expect("baresip registers");
    let mut relay = RelayProcess::start(
        registrar.parse().expect("address"),
        &["--media-ports", "33000-33099"],
    );

    let config = serde_json::json!({
        "ws": relay.ws_url(),
        "target": format!("sip:{user}@{DOMAIN}"),
        "domain": DOMAIN,
        "mic": mic,
        "hold": true,
    });
    let out = browser::call(&config.to_string()).expect("the browser ran");
    let v = outcome(&out, &far);

    // The browser hears the far end, and sends its own tone.
    let talk = &v["steps"]["talk"];
    assert_hears(talk, FAR_HZ, "talking");
    let sent = number(talk, "sent") as u64;
    assert!(
        WINDOW_PACKETS.contains(&sent),
        "{sent} packets sent: {talk}"
    );
    assert!(
        v["answer"]
            .as_str()
            .is_some_and(|a| a.contains("a=ice-lite") && a.contains("a=setup:passive")),
        "the relay answers as ICE-lite DTLS server: {}",
        v["answer"]
    );

    // Hold: the far end gets a re-INVITE with sendonly and stops sending;
    // the browser keeps sending. Resume brings its audio back.
    let held = &v["steps"]["held"];
    assert!(
        number(held, "received") <= 3.0,
        "media stops while held: {held}"
    );
    assert!(
        WINDOW_PACKETS.contains(&(number(held, "sent") as u64)),
        "{held}"
    );
    assert!(
        v["holdAnswer"]
            .as_str()
            .is_some_and(|a| a.contains("a=recvonly")),
        "{}",
        v["holdAnswer"]
    );
    assert_hears(&v["steps"]["resumed"], FAR_HZ, "resumed");
    let log = far.log();
    let hold_at = log.find("a=sendonly").unwrap_or_else(|| {
        panic!(
            "the far end never saw a sendonly re-INVITE:\n{}",
            far.log_tail()
        )
    });
    assert!(
        log[hold_at..].contains("a=sendrecv"),
        "the far end never saw the resuming re-INVITE"
    );
    assert_eq!(v["bye"], 200, "{}", v["events"]);

    // The far end heard the browser's tone.
    assert_far_end_heard_the_browser(&far);

    // The relay carried it, and let everything go at the BYE.
    let m = relay.metrics();
    assert!(metric(&m, "sipline_media_packets_total{direction=\"to_pbx\"}") > 300);
    assert!(metric(&m, "sipline_media_packets_total{direction=\"to_browser\"}") > 200);
    assert_eq!(metric(&m, "sipline_media_srtp_failures_total"), 0);
    for side in ["browser", "pbx"] {
        let lost = metric(
            &m,
            &format!("sipline_media_lost_packets_total{{from=\"{side}\"}}"),
        );
        assert!(lost <= 2, "{lost} packets from the {side} lost on loopback");
    }
    assert_eq!(metric(&m, "sipline_media_calls"), 0, "{m}");
    assert_eq!(metric(&m, "sipline_media_port_pairs{state=\"in_use\"}"), 0);
    assert!(relay.alive());
}

/// The browser's report, which must hold no error (the far end's log
/// helps when it does).
fn outcome(out: &str, far: &Baresip) -> Value {
    let v: Value = serde_json::from_str(out).expect("JSON from the browser");
    assert!(
        v["error"].is_null(),
        "{}\nfar end:\n{}",
        v["error"],
        far.log_tail()
    );
    v
}

/// The far end's recording holds the browser's tone.
fn assert_far_end_heard_the_browser(far: &Baresip) {
    let recordings = far.received();
    let recording = recordings
        .last()
        .unwrap_or_else(|| panic!("baresip recorded nothing:\n{}", far.log_tail()));
    let rec = read_wav(recording).expect("the recording reads");
    let (hz, ratio) = rec.dominant();
    assert!(rec.seconds() > 1.0, "{:.1} s recorded", rec.seconds());
    assert!(
        (hz - MIC_HZ).abs() <= 10.0 && ratio > 100.0,
        "the far end hears {hz} Hz ({ratio:.0}× the median), not {MIC_HZ} Hz"
    );
}

#[test]
fn the_far_end_calls_the_registered_browser_and_both_hear_each_other() {
    let (scratch, mic) = mic_tone();
    let far_tone = scratch.0.join("far-440hz.wav");
    write_tone(&far_tone, FAR_HZ, 8_000, 30).expect("far tone");
    // SHA-256 digest: the one the page can compute with WebCrypto.
    let kamailio = Kamailio::start(&Options {
        digest: Digest::Sha256,
        ..Options::default()
    })
    .expect("kamailio");
    let registrar = format!("127.0.0.1:{}", kamailio.udp_port);
    let (bob, bob_password) = USERS[1];
    let (alice, alice_password) = USERS[0];
    let mut far = Baresip::start(&baresip::Options {
        user: bob.into(),
        password: bob_password.into(),
        domain: DOMAIN.into(),
        registrar: registrar.parse().expect("address"),
        tone: far_tone,
        // baresip 1.0 digests with MD5 only; calling needs no account.
        register: false,
    })
    .expect("baresip starts");
    let relay = RelayProcess::start(
        registrar.parse().expect("address"),
        &["--media-ports", "33200-33299"],
    );
    let config = serde_json::json!({
        "ws": relay.ws_url(),
        "domain": DOMAIN,
        "user": alice,
        "password": alice_password,
        "mic": mic,
        "answer": true,
    });
    let mut dialled = Ok(());
    let out = browser::call_with_events(&config.to_string(), |event| {
        if event == "registered" {
            dialled = far.dial(&format!("sip:{alice}@{DOMAIN}"));
        }
    })
    .expect("the browser ran");
    dialled.expect("baresip dials");
    let v = outcome(&out, &far);
    // The far end's offer reached the browser as WebRTC, and the browser's
    // answer reached the far end as plain RTP.
    let offer = v["offer"].as_str().unwrap_or_default();
    assert!(
        offer.contains("a=setup:actpass") && offer.contains("a=ice-lite"),
        "{offer}"
    );
    assert_hears(&v["steps"]["talk"], FAR_HZ, "answered call");
    assert_eq!(v["bye"], 200, "{}", v["events"]);
    assert_far_end_heard_the_browser(&far);
    let m = relay.metrics();
    assert_eq!(metric(&m, "sipline_media_calls"), 0, "{m}");
}
