//! Calls with every part real, on 127.0.0.1, started and stopped here:
//! Debian's headless Chromium (a fake microphone playing 1 kHz, a plain
//! page using RTCPeerConnection with a small SIP shim), the relay binary,
//! Kamailio, and baresip registered to it as the far end, playing 440 Hz
//! and recording what it hears. The audio is measured both ways: its
//! strongest frequency and the RTP packets that carried it. Calls go both
//! ways: the browser's offer to the far end, and the far end's offer to the
//! registered browser.

mod common;

use serde_json::Value;
use sipline_test_harness::browser;
use sipline_test_harness::kamailio::{DOMAIN, Digest, Kamailio, Options, USERS};

use common::RelayProcess;
use common::calls::{
    FAR_HZ, MIC_HZ, Scratch, assert_far_end_heard_the_browser, assert_tone, assert_window,
    call_the_echo, far_end, metric, number, outcome,
};

/// The tone heard, and a 2 s window's worth of packets received.
fn assert_hears(step: &Value, expected_hz: f64, what: &str) {
    assert_tone(step, expected_hz, what);
    assert_window(step, "received", what);
}

/// A scratch folder with the browser's microphone tone in it.
fn mic_tone() -> (Scratch, std::path::PathBuf) {
    let scratch = Scratch::new("call");
    let mic = scratch.tone("mic-1khz.wav", MIC_HZ, 48_000);
    (scratch, mic)
}

#[test]
fn the_embedded_pbx_s_echo_extension_sends_the_browser_its_own_voice() {
    let (_scratch, mic) = mic_tone();
    let relay = RelayProcess::start_embedded(
        &["--domain", "sipline.local", "--media-ports", "33100-33199"],
        "alice:alice-e2e",
    );
    let v = call_the_echo(&relay, &mic);
    assert_hears(&v["steps"]["talk"], MIC_HZ, "echo");
    let m = relay.metrics();
    assert_eq!(metric(&m, "sipline_media_calls"), 0, "{m}");
    assert_eq!(
        metric(&m, "sipline_media_packets_total{direction=\"to_pbx\"}"),
        0
    );
    // 3.5 s of listening at 50 packets a second, all of them echoed.
    assert!(metric(&m, "sipline_media_packets_total{direction=\"to_browser\"}") > 120);
}

/// The same with one UDP port for every browser (`--media-browser-port`):
/// Chromium's checks find the call by their ICE username, its media by its
/// address, and it hears its own voice back.
#[test]
fn with_one_shared_browser_port_the_echo_extension_sends_the_browser_its_own_voice() {
    let (_scratch, mic) = mic_tone();
    let relay = RelayProcess::start_embedded(
        &[
            "--domain",
            "sipline.local",
            "--media-ports",
            "37700-37719",
            "--media-browser-port",
            "37720",
            "--media-workers",
            "2",
        ],
        "alice:alice-e2e",
    );
    let v = call_the_echo(&relay, &mic);
    assert_hears(&v["steps"]["talk"], MIC_HZ, "echo");
    let m = relay.metrics();
    assert!(metric(&m, "sipline_media_packets_total{direction=\"to_browser\"}") > 120);
    // Every pair of the range is back.
    assert_eq!(
        metric(&m, "sipline_media_port_pairs{state=\"in_use\"}"),
        0,
        "{m}"
    );
}

#[test]
fn chromium_and_the_far_end_hear_each_other_through_relay_and_kamailio_and_hold_stops_media() {
    let (scratch, mic) = mic_tone();
    let far_tone = scratch.tone("far-440hz.wav", FAR_HZ, 8_000);

    let kamailio = Kamailio::start(&Options::default()).expect("kamailio");
    let registrar = format!("127.0.0.1:{}", kamailio.udp_port);
    let (user, _) = USERS[1];
    let far = far_end(
        registrar.parse().expect("address"),
        USERS[1],
        far_tone,
        true,
    );
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
    assert_window(talk, "sent", "talking");
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
    assert_window(held, "sent", "held");
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

#[test]
fn the_far_end_calls_the_registered_browser_and_both_hear_each_other() {
    let (scratch, mic) = mic_tone();
    let far_tone = scratch.tone("far-440hz.wav", FAR_HZ, 8_000);
    // SHA-256 digest: the one the page can compute with WebCrypto.
    let kamailio = Kamailio::start(&Options {
        digest: Digest::Sha256,
        ..Options::default()
    })
    .expect("kamailio");
    let registrar = format!("127.0.0.1:{}", kamailio.udp_port);
    let (alice, alice_password) = USERS[0];
    // baresip 1.0 digests with MD5 only; calling needs no account.
    let mut far = far_end(
        registrar.parse().expect("address"),
        USERS[1],
        far_tone,
        false,
    );
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
