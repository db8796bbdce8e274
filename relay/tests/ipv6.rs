//! IPv6, every part real: Kamailio from Debian listening on `[::1]`, bob
//! (baresip) registered there over IPv6, and the SDK in headless Chromium.
//! - The browser on IPv4, the PBX on IPv6: the relay's WebSocket and the
//!   browser's media stay on 127.0.0.1 while its PBX side (SIP and RTP) is
//!   on `[::1]`, and the relay bridges the two families.
//! - Everything on `::1`: the page's WebSocket (`ws://[::1]:…`), the
//!   browser's media (the relay's media sockets bind `::1` only, so ICE,
//!   DTLS and SRTP cannot be elsewhere), the relay's SIP and RTP.
//!
//! Calls both ways, heard both ways.

mod common;

use serde_json::{Value, json};
use sipline_test_harness::baresip::Baresip;
use sipline_test_harness::browser;
use sipline_test_harness::kamailio::{DOMAIN, Kamailio, Options, USERS};

use common::RelayProcess;
use common::calls::{
    FAR_HZ, MIC_HZ, Scratch, assert_far_end_heard_the_browser, assert_hears, far_end, outcome,
};

/// Kamailio and bob on `[::1]`, and the browser's microphone tone.
fn pbx_on_ipv6(name: &str) -> (Scratch, std::path::PathBuf, Kamailio, Baresip) {
    let scratch = Scratch::new(name);
    let mic = scratch.tone("mic-1khz.wav", MIC_HZ, 48_000);
    let far_tone = scratch.tone("far-440hz.wav", FAR_HZ, 8_000);
    let kamailio = Kamailio::start(&Options {
        ipv6: true,
        ..Options::default()
    })
    .expect("kamailio on [::1]");
    assert!(kamailio.udp_addr().is_ipv6());
    let far = far_end(kamailio.udp_addr(), USERS[1], far_tone, true);
    (scratch, mic, kamailio, far)
}

/// Alice, in Chromium through `relay`, calls bob and is called by him;
/// each call heard both ways. The page's report.
fn calls_both_ways(relay: &RelayProcess, far: &mut Baresip, mic: &std::path::Path) -> Value {
    let (alice, alice_password) = USERS[0];
    let (bob, _) = USERS[1];
    let config = json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": {
                "server": relay.ws_url(),
                "uri": format!("sip:{alice}@{DOMAIN}"),
                "password": alice_password,
            }},
            {"do": "call", "target": format!("sip:{bob}@{DOMAIN}")},
            {"do": "measure", "name": "talk_out"},
            {"do": "hangup"},
            {"do": "mark", "event": "dial"},
            {"do": "answer"},
            {"do": "measure", "name": "talk_in"},
            {"do": "hangup", "name": "hangup_in"},
            {"do": "disconnect"},
        ],
    });
    let mut dialled = Ok(());
    let out = browser::sdk(&config.to_string(), |event| {
        if event == "dial" {
            dialled = far.dial(&format!("sip:{alice}@{DOMAIN}"));
        }
    })
    .expect("the browser ran");
    dialled.expect("baresip dials");
    let v = outcome(&out, far);
    let steps = &v["steps"];
    assert_eq!(steps["connect"]["registered"], true, "{v}");
    assert_eq!(steps["call"]["state"], "established", "{v}");
    assert_hears(&steps["talk_out"], FAR_HZ, "calling out to IPv6");
    assert_eq!(
        steps["answer"]["from"],
        format!("sip:{bob}@{DOMAIN}"),
        "{v}"
    );
    assert_hears(&steps["talk_in"], FAR_HZ, "called from IPv6");
    assert_far_end_heard_the_browser(far);
    v
}

#[test]
fn a_browser_on_ipv4_calls_and_is_called_by_a_phone_behind_a_pbx_on_ipv6() {
    let (_scratch, mic, kamailio, mut far) = pbx_on_ipv6("ipv6");
    let relay = RelayProcess::start(
        kamailio.udp_addr(),
        &["--sip-listen", "[::1]:0", "--media-ports", "37730-37799"],
    );
    calls_both_ways(&relay, &mut far, &mic);
    // The far end's SDP named the relay's IPv6 address, never an IPv4 one.
    let log = far.log();
    assert!(
        log.contains("c=IN IP6 ::1"),
        "the relay's SDP toward the PBX is IPv6:\n{}",
        far.log_tail()
    );
    assert!(
        !log.contains("c=IN IP4"),
        "no IPv4 address reached the IPv6 side:\n{}",
        far.log_tail()
    );
    assert!(
        relay.metrics().contains("sipline_media_calls 0"),
        "{}",
        relay.metrics()
    );
}

#[test]
fn a_call_on_ipv6_loopback_from_the_browser_to_the_phone_and_back() {
    let (_scratch, mic, kamailio, mut far) = pbx_on_ipv6("ipv6-only");
    let relay = RelayProcess::start_on_ipv6(kamailio.udp_addr(), &["--media-ports", "37722-37729"]);
    assert!(
        relay.ws_url().starts_with("ws://[::1]:"),
        "{}",
        relay.ws_url()
    );
    calls_both_ways(&relay, &mut far, &mic);
    assert!(!far.log().contains("c=IN IP4"), "{}", far.log_tail());
    let metrics = relay.metrics();
    assert!(metrics.contains("sipline_media_calls 0"), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sipline_media_packets_total") && !l.ends_with(" 0")),
        "media crossed the relay on ::1: {metrics}"
    );
}
