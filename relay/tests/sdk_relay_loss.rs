//! The relay carrying a call dies (SIGKILL: no BYE, no WebSocket close
//! frame, its media gone): the SDK in headless Chromium reports the call
//! ended once the browser's media connection has failed, instead of
//! leaving the app with a call that carries nothing. Kamailio as the PBX,
//! baresip as the far end, every part real.

mod common;

use serde_json::json;
use sipline_test_harness::browser;
use sipline_test_harness::kamailio::{DOMAIN, Kamailio, Options, USERS};

use common::RelayProcess;
use common::calls::{FAR_HZ, account, assert_hears, far_end, number, outcome, tones};

#[test]
fn a_call_whose_relay_died_ends_for_the_app_when_its_media_fails() {
    let (_scratch, mic, far_tone) = tones("relay-loss");
    let kamailio = Kamailio::start(&Options::default()).expect("kamailio");
    let far = far_end(kamailio.udp_addr(), USERS[1], far_tone, true);
    let mut relay = RelayProcess::start(kamailio.udp_addr(), &["--media-ports", "37610-37699"]);
    let (bob, _) = USERS[1];
    let config = json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": account(&relay.ws_url(), USERS[0], DOMAIN)},
            {"do": "call", "target": format!("sip:{bob}@{DOMAIN}")},
            {"do": "measure", "name": "talk"},
            {"do": "mark", "event": "kill_relay"},
            // The media connection fails (Chromium: ~15 s after the last
            // answered consent check), the SDK says so, and ends the call
            // (at once: the WebSocket is down, no BYE can go).
            {"do": "wait_event", "name": "media_failed", "event": "mediaError", "timeoutMs": 45000},
            {"do": "wait_event", "name": "ended", "event": "hangup", "timeoutMs": 5000},
        ],
    });
    let out = browser::sdk(&config.to_string(), |event| {
        if event == "kill_relay" {
            relay.kill();
        }
    })
    .expect("the browser ran");
    let v = outcome(&out, &far);
    let steps = &v["steps"];
    assert_eq!(steps["call"]["state"], "established", "{v}");
    assert_hears(&steps["talk"], FAR_HZ, "before the relay died");
    let failed = &steps["media_failed"];
    assert_eq!(failed["detail"][0]["call"], 1, "{failed}");
    assert!(
        failed["detail"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("media connection failed")),
        "{failed}"
    );
    let ended = &steps["ended"];
    assert_eq!(ended["detail"][0]["state"], "ended", "{ended}");
    assert_eq!(ended["detail"][1]["code"], 503, "{ended}");
    assert!(
        number(ended, "afterMarkMs") >= number(failed, "afterMarkMs"),
        "ended when the media failed: {v}"
    );
}
