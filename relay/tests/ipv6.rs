//! A browser on IPv4 and a PBX on IPv6, every part real: Kamailio from
//! Debian listening on `[::1]`, bob (baresip) registered there over IPv6,
//! the relay's PBX side on `[::1]` (SIP and RTP) while its WebSocket and
//! the browser's media stay on 127.0.0.1, and the SDK in headless Chromium.
//! The relay bridges the two families: calls both ways, heard both ways.

mod common;

use serde_json::json;
use sipline_test_harness::browser;
use sipline_test_harness::kamailio::{DOMAIN, Kamailio, Options, USERS};

use common::RelayProcess;
use common::calls::{
    FAR_HZ, MIC_HZ, Scratch, assert_far_end_heard_the_browser, assert_hears, far_end, outcome,
};

#[test]
fn a_browser_on_ipv4_calls_and_is_called_by_a_phone_behind_a_pbx_on_ipv6() {
    let scratch = Scratch::new("ipv6");
    let mic = scratch.tone("mic-1khz.wav", MIC_HZ, 48_000);
    let far_tone = scratch.tone("far-440hz.wav", FAR_HZ, 8_000);
    let kamailio = Kamailio::start(&Options {
        ipv6: true,
        ..Options::default()
    })
    .expect("kamailio on [::1]");
    let pbx = kamailio.udp_addr();
    assert!(pbx.is_ipv6());
    let mut far = far_end(pbx, USERS[1], far_tone, true);
    let pbx_text = pbx.to_string();
    let relay = RelayProcess::start(
        pbx,
        &["--sip-listen", "[::1]:0", "--media-ports", "37730-37799"],
    );
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
    let v = outcome(&out, &far);
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
    assert_far_end_heard_the_browser(&far);
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
        "{pbx_text}: {}",
        relay.metrics()
    );
}
