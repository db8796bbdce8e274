//! The browser SDK on the classic stack sipline replaces, with no sipline
//! relay at all: headless Chromium runs the built npm package against
//! Kamailio's WebSocket, Kamailio drives Debian's rtpengine (ICE-lite and
//! DTLS-SRTP toward the browser, plain RTP toward the phone), and baresip
//! is the far end. The fast set-up paths hold there too: the app says the
//! gateway is ICE-lite (`iceLite: true`), so the INVITE leaves without
//! waiting for ICE gathering, and rtpengine's offers say `a=ice-lite`, so
//! the SDK answers them at once. Audio is measured both ways, each way.

mod common;

use std::net::SocketAddr;

use serde_json::json;
use sipline_test_harness::browser;
use sipline_test_harness::kamailio::{DOMAIN, Kamailio, Options, USERS};
use sipline_test_harness::rtpengine::Rtpengine;

use common::calls::{
    FAR_HZ, assert_far_end_heard_the_browser, assert_hears, far_end, outcome, tones,
};

#[test]
fn through_kamailio_and_rtpengine_calls_start_without_waiting_both_ways() {
    let (_scratch, mic, far_tone) = tones("sdk-rtpengine");
    let rtpengine = Rtpengine::start(36600, 36699).expect("rtpengine");
    let kamailio = Kamailio::start(&Options {
        rtpengine: Some(rtpengine.ng_port),
        ..Options::default()
    })
    .expect("kamailio in front of rtpengine");
    let registrar: SocketAddr = format!("127.0.0.1:{}", kamailio.udp_port)
        .parse()
        .expect("address");
    let mut far = far_end(registrar, USERS[1], far_tone, true);
    let (alice, alice_password) = USERS[0];
    let config = json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": {
                "server": kamailio.ws_url(),
                "uri": format!("sip:{alice}@{DOMAIN}"),
                "password": alice_password,
                "iceLite": true,
            }},
            {"do": "call", "target": format!("sip:{}@{DOMAIN}", USERS[1].0)},
            {"do": "candidates", "name": "out_sdp"},
            {"do": "measure", "name": "out_talk"},
            {"do": "hangup", "name": "out_hangup"},
            {"do": "mark", "event": "dial"},
            {"do": "answer"},
            {"do": "candidates", "name": "in_sdp"},
            {"do": "measure", "name": "in_talk"},
            {"do": "hangup", "name": "in_hangup"},
            {"do": "disconnect"},
        ],
    });
    let mut dialled = Ok(());
    let out = browser::sdk(&config.to_string(), |event| {
        if event == "dial" {
            dialled = far.dial(&format!("sip:{alice}@{DOMAIN}"));
        }
    })
    .unwrap_or_else(|e| panic!("the browser ran: {e}\nrtpengine:\n{}", rtpengine.log_tail()));
    dialled.expect("baresip dials");
    let v = outcome(&out, &far);
    let steps = &v["steps"];
    // rtpengine's answer, and its offer, are an ICE-lite agent's with its
    // candidates; the offer is what the SDK answered without waiting.
    for sdp in ["out_sdp", "in_sdp"] {
        assert_eq!(steps[sdp]["remoteIceLite"], true, "{sdp}: {}", steps[sdp]);
        assert!(
            steps[sdp]["remote"].as_i64().unwrap_or(0) > 0,
            "{sdp}: {}",
            steps[sdp]
        );
    }
    assert_hears(&steps["out_talk"], FAR_HZ, "alice calling bob");
    assert_hears(&steps["in_talk"], FAR_HZ, "bob calling alice");
    // Her BYE ended the second call, which closed bob's recording of it.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_far_end_heard_the_browser(&far);
}
