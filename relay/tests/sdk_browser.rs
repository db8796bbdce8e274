//! The browser SDK end to end, every part real, on 127.0.0.1: Debian's
//! headless Chromium runs the built npm package `sipline` (npm/dist and
//! npm/wasm, loaded by tests/browser/sdk.html as an app would) with a fake
//! microphone playing 1 kHz; the relay binary; Kamailio as the PBX; baresip
//! as the far end, playing 440 Hz and recording what it hears. Audio is
//! measured both ways, by its strongest frequency and the packets that
//! carried it.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use sipline_test_harness::baresip::Baresip;
use sipline_test_harness::browser;
use sipline_test_harness::kamailio::{DOMAIN, Kamailio, Options, USERS};

use common::RelayProcess;
use common::calls::{
    FAR_HZ, MIC_HZ, Scratch, assert_far_end_heard, assert_far_end_heard_the_browser, assert_hears,
    assert_window, caller_and_callee, far_end, number, outcome, tones, udp_request,
};

/// Kamailio as the PBX, bob (baresip, playing `far_tone`) behind it, and
/// the relay in front with the media ports `ports`.
fn pbx_and_bob(
    far_tone: PathBuf,
    register: bool,
    ports: &str,
) -> (Kamailio, Baresip, RelayProcess) {
    let kamailio = Kamailio::start(&Options::default()).expect("kamailio");
    let registrar: SocketAddr = format!("127.0.0.1:{}", kamailio.udp_port)
        .parse()
        .expect("address");
    let bob = far_end(registrar, USERS[1], far_tone, register);
    let relay = RelayProcess::start(registrar, &["--media-ports", ports]);
    (kamailio, bob, relay)
}

/// The second far end's tone: carol, whom transfers go to.
const CAROL_HZ: f64 = 660.0;

/// [`pbx_and_bob`] (bob registered), and carol (a second baresip, playing
/// 660 Hz) behind the same Kamailio.
fn pbx_bob_and_carol(
    scratch: &Scratch,
    far_tone: PathBuf,
    ports: &str,
) -> (Kamailio, Baresip, Baresip, RelayProcess) {
    let (kamailio, bob, relay) = pbx_and_bob(far_tone, true, ports);
    let registrar: SocketAddr = format!("127.0.0.1:{}", kamailio.udp_port)
        .parse()
        .expect("address");
    let carol_tone = scratch.tone("carol-660hz.wav", CAROL_HZ, 8_000);
    let carol = far_end(registrar, USERS[2], carol_tone, true);
    (kamailio, bob, carol, relay)
}

/// Sends a MESSAGE into Kamailio for `to`, as a plain UDP phone would, and
/// returns the status of its final answer.
fn send_message(kamailio_port: u16, to: &str, text: &str) -> u16 {
    udp_request(kamailio_port, |port| {
        format!(
            "MESSAGE {to} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-sdk-msg;rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:carol@{DOMAIN}>;tag=sdk-test\r\nTo: <{to}>\r\n\
Call-ID: sdk-message-{port}\r\nCSeq: 1 MESSAGE\r\nX-Queue: sales\r\nContent-Type: text/plain\r\n\
Content-Length: {}\r\n\r\n{text}",
            text.len()
        )
    })
}

#[test]
fn the_sdk_calls_holds_sends_dtmf_and_messages_through_relay_and_kamailio() {
    let (_scratch, mic, far_tone) = tones("sdk");
    let (kamailio, far, relay) = pbx_and_bob(far_tone, true, "33300-33399");
    let (alice, alice_password) = USERS[0];
    let (bob, _) = USERS[1];
    let bob_uri = format!("sip:{bob}@{DOMAIN}");
    let config = json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": {
                "server": relay.ws_url(),
                "uri": format!("sip:{alice}@{DOMAIN}"),
                "password": alice_password,
                "displayName": "Alice SDK",
                "incomingHeaderPrefixes": ["X-"],
            }},
            {"do": "call", "target": bob_uri, "headers": {"X-Crm-Id": "case-42"}},
            {"do": "measure", "name": "talk"},
            {"do": "hold"},
            {"do": "measure", "name": "held"},
            {"do": "unhold"},
            {"do": "measure", "name": "resumed"},
            {"do": "restart_ice"},
            {"do": "measure", "name": "ice_restarted"},
            {"do": "mute"},
            {"do": "measure", "name": "muted", "settleMs": 500},
            {"do": "mute", "name": "unmute", "on": false},
            {"do": "measure", "name": "unmuted", "settleMs": 500},
            {"do": "dtmf", "name": "dtmf_rtp", "digits": "159#"},
            {"do": "dtmf", "name": "dtmf_info", "digits": "7", "method": "info"},
            {"do": "message", "target": bob_uri, "text": "hello from sipline"},
            {"do": "mark", "event": "send_message"},
            {"do": "wait_event", "event": "message"},
            {"do": "stats"},
            {"do": "hangup"},
            {"do": "disconnect"},
        ],
    });
    let mut message_status = 0;
    let out = browser::sdk(&config.to_string(), |event| {
        if event == "send_message" {
            message_status = send_message(
                kamailio.udp_port,
                &format!("sip:{alice}@{DOMAIN}"),
                "hello from the PBX side",
            );
        }
    })
    .expect("the browser ran");
    let v = outcome(&out, &far);
    let steps = &v["steps"];

    assert_eq!(steps["connect"]["registered"], true, "{v}");
    assert_eq!(steps["call"]["state"], "established", "{v}");
    assert!(
        far.log().contains("X-Crm-Id: case-42"),
        "the app's header reaches the far end"
    );
    assert_hears(&steps["talk"], FAR_HZ, "talking");

    // Hold: a sendonly re-INVITE reaches the far end, which stops sending
    // while the browser goes on; unhold brings its audio back.
    assert_eq!(steps["hold"]["held"], true);
    assert!(
        number(&steps["held"], "received") <= 3.0,
        "media stops while held: {}",
        steps["held"]
    );
    // Silent hold: the browser sends nothing while it holds.
    assert!(
        number(&steps["held"], "sent") <= 3.0,
        "nothing is sent while held: {}",
        steps["held"]
    );
    assert_eq!(steps["unhold"]["held"], false);
    assert_hears(&steps["resumed"], FAR_HZ, "resumed");
    assert_hears(&steps["ice_restarted"], FAR_HZ, "after an ICE restart");
    // Mute: no renegotiation (packets keep flowing both ways), the
    // microphone's level as sent drops to silence, and comes back.
    assert_eq!(steps["mute"]["muted"], true);
    assert_hears(&steps["muted"], FAR_HZ, "while muted");
    assert!(
        number(&steps["muted"], "localLevel") < 0.001,
        "{}",
        steps["muted"]
    );
    assert!(
        number(&steps["unmuted"], "localLevel") > 0.01,
        "{}",
        steps["unmuted"]
    );
    let log = far.log();
    let hold_at = log
        .find("a=sendonly")
        .unwrap_or_else(|| panic!("no sendonly re-INVITE at the far end:\n{}", far.log_tail()));
    assert!(
        log[hold_at..].contains("a=sendrecv"),
        "no resuming re-INVITE"
    );

    // DTMF: RFC 4733 telephone-events in the media, and SIP INFO.
    // baresip logs the first as "received event", the second as
    // "received DTMF".
    for digit in ["1", "5", "9", "#"] {
        assert!(
            log.contains(&format!("received event: '{digit}'")),
            "the far end did not receive telephone-event {digit}:\n{}",
            far.log_tail()
        );
    }
    assert!(
        log.contains("Content-Type: application/dtmf-relay") && log.contains("received DTMF: '7'"),
        "the far end did not receive the INFO DTMF 7:\n{}",
        far.log_tail()
    );

    // MESSAGE both ways.
    assert_eq!(steps["message"]["ok"], true, "{}", steps["message"]);
    assert!(
        log.contains("\"hello from sipline\""),
        "the far end did not show the MESSAGE:\n{}",
        far.log_tail()
    );
    assert_eq!(message_status, 200, "the browser accepts the MESSAGE");
    let got = &steps["wait_event"]["detail"][0];
    assert_eq!(got["body"], "hello from the PBX side", "{got}");
    assert_eq!(got["from"], format!("sip:carol@{DOMAIN}"), "{got}");
    assert_eq!(
        got["headers"],
        json!({"X-Queue": "sales"}),
        "the X- headers"
    );

    // Quality figures from getStats.
    let stats = &steps["stats"];
    assert!(number(stats, "packetsReceived") > 200.0, "{stats}");
    assert!(number(stats, "rttMs") < 50.0, "{stats}");
    assert!(number(stats, "mos") > 4.0, "{stats}");

    assert!(
        steps["hangup"]["code"].is_null(),
        "a BYE: {}",
        steps["hangup"]
    );
    // One microphone stream per call, released when the call ends (the
    // browser's recording indicator goes off).
    assert_eq!(
        steps["hangup"]["sameLocalStream"], true,
        "{}",
        steps["hangup"]
    );
    assert_eq!(steps["hangup"]["micReleased"], true, "{}", steps["hangup"]);
    assert_far_end_heard_the_browser(&far);
    let m = relay.metrics();
    assert!(m.contains("sipline_media_calls 0"), "{m}");
}

#[test]
fn after_the_relay_dies_the_sdk_reconnects_re_registers_and_takes_a_call() {
    let (_scratch, mic, far_tone) = tones("sdk");
    // baresip 1.0 digests with MD5 only; calling needs no account.
    let (_kamailio, mut far, mut relay) = pbx_and_bob(far_tone, false, "33400-33499");
    let (alice, alice_password) = USERS[0];
    let (bob, _) = USERS[1];
    let config = json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": {
                "server": relay.ws_url(),
                "uri": format!("sip:{alice}@{DOMAIN}"),
                "password": alice_password,
                "reconnectMinMs": 500,
            }},
            {"do": "mark", "event": "kill_relay"},
            {"do": "wait_event", "name": "reconnecting", "event": "reconnecting"},
            {"do": "wait_event", "name": "reconnected", "event": "reconnected", "timeoutMs": 5000},
            {"do": "wait_event", "name": "registered", "event": "registered", "timeoutMs": 5000},
            {"do": "mark", "event": "dial"},
            {"do": "answer"},
            {"do": "measure", "name": "talk"},
            {"do": "hangup"},
            {"do": "disconnect"},
        ],
    });
    let mut dialled = Ok(());
    let out = browser::sdk(&config.to_string(), |event| match event {
        "kill_relay" => relay.restart(),
        "dial" => dialled = far.dial(&format!("sip:{alice}@{DOMAIN}")),
        _ => {}
    })
    .expect("the browser ran");
    dialled.expect("baresip dials");
    let v = outcome(&out, &far);
    let steps = &v["steps"];
    let registered_after = number(&steps["registered"], "afterMarkMs");
    assert!(
        registered_after < 5000.0,
        "re-registered {registered_after} ms after the relay died"
    );
    assert_eq!(
        steps["answer"]["from"],
        format!("sip:{bob}@{DOMAIN}"),
        "{v}"
    );
    assert_hears(&steps["talk"], FAR_HZ, "the call after the reconnect");
    assert_far_end_heard_the_browser(&far);
}

#[test]
fn a_blind_transfer_sends_the_far_end_to_a_second_one_who_hears_it() {
    let (scratch, mic, far_tone) = tones("sdk");
    let (_kamailio, bob, mut carol, relay) = pbx_bob_and_carol(&scratch, far_tone, "33500-33599");
    let (alice, alice_password) = USERS[0];
    let config = json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": {
                "server": relay.ws_url(),
                "uri": format!("sip:{alice}@{DOMAIN}"),
                "password": alice_password,
            }},
            {"do": "call", "target": format!("sip:{}@{DOMAIN}", USERS[1].0)},
            {"do": "measure", "name": "talk"},
            {"do": "transfer", "target": format!("sip:{}@{DOMAIN}", USERS[2].0)},
            {"do": "sleep", "ms": 3000},
            {"do": "disconnect"},
        ],
    });
    let out = browser::sdk(&config.to_string(), |_| {}).expect("the browser ran");
    let v = outcome(&out, &bob);
    let steps = &v["steps"];
    assert_hears(&steps["talk"], FAR_HZ, "before the transfer");
    // The REFER accepted, then bob's NOTIFYs up to carol's 200; the SDK
    // then hung its own call up.
    let progress = steps["transfer"]["progress"].as_array().expect("progress");
    assert_eq!(progress[0]["code"], 202, "{progress:?}");
    let last = progress.last().expect("a NOTIFY");
    assert_eq!(
        (last["code"].as_u64(), last["done"].as_bool()),
        (Some(200), Some(true)),
        "{progress:?}"
    );
    assert_eq!(steps["transfer"]["state"], "ended", "{v}");

    // Bob got the REFER and called Carol, who answered and heard his tone:
    // the transferred call is between them, without the browser.
    let log = bob.log();
    assert!(log.contains("REFER sip:"), "{}", bob.log_tail());
    let carol_log = carol.log();
    assert!(
        carol_log.contains("Referred-By:") || carol_log.contains("From: <sip:bob@"),
        "carol never got bob's call:\n{}",
        carol.log_tail()
    );
    // Her hangup closes the recording.
    carol.hangup().expect("carol hangs up");
    std::thread::sleep(Duration::from_millis(500));
    assert_far_end_heard(&carol, FAR_HZ);
    let m = relay.metrics();
    assert!(m.contains("sipline_media_calls 0"), "{m}");
}

#[test]
fn the_far_end_transfers_the_browser_to_a_second_one_and_each_hears_the_other() {
    let (scratch, mic, far_tone) = tones("sdk");
    let (_kamailio, mut bob, mut carol, relay) =
        pbx_bob_and_carol(&scratch, far_tone, "34200-34299");
    let (alice, alice_password) = USERS[0];
    let carol_uri = format!("sip:{}@{DOMAIN}", USERS[2].0);
    let config = json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": {
                "server": relay.ws_url(),
                "uri": format!("sip:{alice}@{DOMAIN}"),
                "password": alice_password,
            }},
            {"do": "call", "target": format!("sip:{}@{DOMAIN}", USERS[1].0)},
            {"do": "measure", "name": "talk"},
            // Bob transfers the browser to carol (his REFER).
            {"do": "mark", "event": "transfer_me"},
            {"do": "accept_referral"},
            {"do": "measure", "name": "after"},
            {"do": "hangup"},
            {"do": "disconnect"},
        ],
    });
    let out = browser::sdk(&config.to_string(), |event| {
        if event == "transfer_me" {
            bob.transfer(&carol_uri).expect("bob transfers");
        }
    })
    .expect("the browser ran");
    let v = outcome(&out, &bob);
    let steps = &v["steps"];
    assert_hears(&steps["talk"], FAR_HZ, "before the transfer");
    // The request reached the app, which followed it: a new call to carol,
    // who answered; the browser hears her.
    assert_eq!(steps["accept_referral"]["target"], carol_uri, "{v}");
    assert_eq!(steps["accept_referral"]["state"], "established", "{v}");
    assert_hears(&steps["after"], CAROL_HZ, "after the transfer");
    // Bob heard how it went: NOTIFYs of the refer event up to carol's 200.
    let log = bob.log();
    let notifies: Vec<&str> = log.split("NOTIFY sip:").skip(1).collect();
    let notified = |frag: &str, state: &str| {
        notifies
            .iter()
            .any(|n| n.contains("Event: refer") && n.contains(frag) && n.contains(state))
    };
    assert!(
        notified("SIP/2.0 100 Trying", "Subscription-State: active"),
        "{}",
        bob.log_tail()
    );
    assert!(
        notified("SIP/2.0 200 OK", "Subscription-State: terminated"),
        "{}",
        bob.log_tail()
    );
    // The browser's hangup closes carol's recording: she heard its 1 kHz.
    std::thread::sleep(Duration::from_millis(500));
    assert_far_end_heard_the_browser(&carol);
    let _ = carol.hangup();
    let m = relay.metrics();
    assert!(m.contains("sipline_media_calls 0"), "{m}");
}

#[test]
fn a_call_survives_its_websocket_dropping_and_moves_to_the_new_one() {
    let (_scratch, mic, far_tone) = tones("sdk");
    let (_kamailio, far, relay) = pbx_and_bob(far_tone, true, "33600-33699");
    let (alice, alice_password) = USERS[0];
    let (bob, _) = USERS[1];
    let config = json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": {
                "server": relay.ws_url(),
                "uri": format!("sip:{alice}@{DOMAIN}"),
                "password": alice_password,
                "reconnectMinMs": 200,
            }},
            {"do": "call", "target": format!("sip:{bob}@{DOMAIN}")},
            {"do": "measure", "name": "before"},
            {"do": "mark", "event": "drop"},
            {"do": "drop_ws"},
            {"do": "wait_event", "name": "reconnected", "event": "reconnected"},
            {"do": "wait_event", "name": "registered", "event": "registered"},
            {"do": "measure", "name": "after"},
            {"do": "hangup"},
            {"do": "disconnect"},
        ],
    });
    let out = browser::sdk(&config.to_string(), |_| {}).expect("the browser ran");
    let v = outcome(&out, &far);
    let steps = &v["steps"];
    assert_hears(&steps["before"], FAR_HZ, "before the drop");
    assert_eq!(steps["drop_ws"]["calls"], 1, "the call is kept: {v}");
    assert!(
        number(&steps["reconnected"], "afterMarkMs") < 5000.0,
        "{}",
        steps["reconnected"]
    );
    assert_hears(&steps["after"], FAR_HZ, "after the reconnect");
    // The BYE went through the new connection and the far end took it.
    assert!(steps["hangup"]["code"].is_null(), "{}", steps["hangup"]);
    assert_far_end_heard_the_browser(&far);
    let m = relay.metrics();
    assert!(m.contains("sipline_calls_recovered_total 1"), "{m}");
    assert!(m.contains("sipline_media_calls 0"), "{m}");
}

#[test]
fn two_browsers_on_the_embedded_pbx_keep_their_call_when_one_websocket_drops() {
    let (scratch, alice_mic, _) = tones("sdk");
    let bob_mic = scratch.tone("bob-440hz-48k.wav", FAR_HZ, 48_000);
    let relay = RelayProcess::start_embedded(
        &["--domain", "sipline.local", "--media-ports", "33700-33799"],
        "alice:alice-e2e,bob:bob-e2e",
    );
    let options = |user: &str, password: &str| {
        json!({
            "server": relay.ws_url(),
            "uri": format!("sip:{user}@sipline.local"),
            "password": password,
            "reconnectMinMs": 200,
        })
    };
    // Bob's page hides trickle ICE, as a SIP library without it would.
    let bob_config = json!({
        "mic": bob_mic,
        "steps": [
            {"do": "no_trickle"},
            {"do": "connect", "options": options("bob", "bob-e2e")},
            {"do": "mark", "event": "bob_ready"},
            {"do": "answer", "timeoutMs": 20000},
            {"do": "measure", "name": "talk"},
            {"do": "wait_event", "name": "hangup", "event": "hangup", "timeoutMs": 30000},
            {"do": "disconnect"},
        ],
    });
    let alice_config = json!({
        "mic": alice_mic,
        "steps": [
            {"do": "connect", "options": options("alice", "alice-e2e")},
            {"do": "call", "target": "sip:bob@sipline.local"},
            {"do": "measure", "name": "before"},
            {"do": "drop_ws"},
            {"do": "wait_event", "name": "reconnected", "event": "reconnected"},
            {"do": "wait_event", "name": "registered", "event": "registered"},
            {"do": "measure", "name": "after"},
            {"do": "hangup"},
            {"do": "disconnect"},
        ],
    });
    let (a, b) = caller_and_callee(&alice_config, &bob_config, "bob_ready", String::new);
    // Alice's INVITE left before ICE gathering (the relay says its media
    // side is ICE-lite), and bob, a full-ICE browser without trickle ICE,
    // answered: her core then sent her candidates in a re-INVITE, which
    // bob took at once (and later her reconnect's, which keeps the call).
    let at = |name: &str| {
        b["events"]
            .as_array()
            .and_then(|l| l.iter().find(|e| e["name"] == name))
            .and_then(|e| e["at"].as_i64())
            .unwrap_or_else(|| panic!("bob had no {name}: {}", b["events"]))
    };
    let after = at("updating") - at("accepted");
    assert!(
        (0..1000).contains(&after),
        "alice's candidates came {after} ms after the answer: {}",
        b["events"]
    );
    // Each hears the other, before and after alice's reconnect.
    assert_hears(&a["steps"]["before"], FAR_HZ, "alice, before");
    assert_hears(&b["steps"]["talk"], MIC_HZ, "bob");
    assert_hears(&a["steps"]["after"], FAR_HZ, "alice, after her reconnect");
    // Her BYE from the new connection reaches bob, who hears it as a BYE.
    assert!(
        a["steps"]["hangup"]["code"].is_null(),
        "{}",
        a["steps"]["hangup"]
    );
    let bob_hangup = &b["steps"]["hangup"]["detail"][1];
    assert!(bob_hangup["code"].is_null(), "bob's hangup: {bob_hangup}");
    let m = relay.metrics();
    assert!(m.contains("sipline_calls_recovered_total 1"), "{m}");
}

#[test]
fn a_browser_on_hold_sends_nothing_its_far_end_could_hear_and_info_of_any_type_goes_both_ways() {
    let (scratch, alice_mic, _) = tones("sdk");
    let bob_mic = scratch.tone("bob-440hz-48k.wav", FAR_HZ, 48_000);
    let relay = RelayProcess::start_embedded(
        &["--domain", "sipline.local", "--media-ports", "34400-34499"],
        "alice:alice-hold,bob:bob-hold",
    );
    let options = |user: &str, password: &str| {
        json!({
            "server": relay.ws_url(),
            "uri": format!("sip:{user}@sipline.local"),
            "password": password,
            "incomingHeaderPrefixes": ["X-"],
        })
    };
    // Bob answers and listens: before alice holds, while she holds (each
    // of her hold events after a mark, so the second wait is not the
    // first), and after she resumes.
    let bob_config = json!({
        "mic": bob_mic,
        "steps": [
            {"do": "connect", "options": options("bob", "bob-hold")},
            {"do": "mark", "event": "bob_ready"},
            {"do": "answer", "timeoutMs": 20000},
            {"do": "measure", "name": "talk"},
            {"do": "mark", "event": "bob_heard"},
            {"do": "wait_event", "name": "held", "event": "hold", "timeoutMs": 20000},
            {"do": "measure", "name": "while_held", "settleMs": 500},
            {"do": "mark", "event": "bob_heard_hold"},
            {"do": "wait_event", "name": "resumed", "event": "hold", "timeoutMs": 20000},
            {"do": "mark", "event": "bob_resumed"},
            {"do": "sleep", "ms": 3000},
            {"do": "measure", "name": "after", "settleMs": 500},
            // INFO of a custom type, from alice, then one back.
            {"do": "wait_event", "name": "info_in", "event": "info", "timeoutMs": 20000},
            {"do": "info", "name": "info_back", "contentType": "application/vnd.queue+xml",
             "body": "<queue>sales</queue>"},
            {"do": "wait_event", "name": "hangup", "event": "hangup", "timeoutMs": 30000},
            {"do": "disconnect"},
        ],
    });
    let alice_config = json!({
        "mic": alice_mic,
        "steps": [
            {"do": "connect", "options": options("alice", "alice-hold")},
            {"do": "call", "target": "sip:bob@sipline.local"},
            {"do": "sleep", "ms": 4500},
            {"do": "hold"},
            {"do": "measure", "name": "while_held"},
            {"do": "sleep", "ms": 1500},
            {"do": "mute"},
            {"do": "unhold"},
            {"do": "measure", "name": "resumed_muted", "settleMs": 500},
            {"do": "mute", "name": "unmute", "on": false},
            {"do": "sleep", "ms": 4000},
            {"do": "mark", "event": "info"},
            {"do": "info", "name": "info_out", "contentType": "application/x-crm+json",
             "body": "{\"case\":42}", "headers": {"X-Crm-Id": "42"}},
            {"do": "wait_event", "name": "info_in", "event": "info", "timeoutMs": 10000},
            {"do": "hangup"},
            {"do": "disconnect"},
        ],
    });
    let (a, b) = caller_and_callee(&alice_config, &bob_config, "bob_ready", String::new);
    let (alice, bob) = (&a["steps"], &b["steps"]);
    assert_hears(&bob["talk"], MIC_HZ, "bob, before the hold");
    assert_eq!(
        bob["held"]["detail"][1],
        json!({"held": true, "by": "remote"})
    );
    // While held, alice sends nothing and bob hears nothing of her.
    assert!(
        number(&alice["while_held"], "sent") <= 3.0,
        "{}",
        alice["while_held"]
    );
    let held = &bob["while_held"];
    assert!(
        number(held, "received") <= 3.0,
        "bob gets no packets: {held}"
    );
    // What bob plays of her: her tone's level against the same figure
    // before the hold. While held, only the jitter buffer's fading
    // concealment of her last tone is left, far below it.
    let tone_db = |step: &Value| number(step, "peakDb");
    let before = tone_db(&bob["talk"]);
    eprintln!(
        "bob hears alice's tone at {before:.1} dB, {:.1} dB while she holds, {:.1} dB after",
        tone_db(held),
        tone_db(&bob["after"])
    );
    assert!(
        tone_db(held) < before - 40.0,
        "bob hears nothing of alice while she holds: {held} against {}",
        bob["talk"]
    );
    // Mute is her own: muted across the resume, she sends silence until
    // she unmutes, then her tone is back at bob's.
    assert!(
        number(&alice["resumed_muted"], "localLevel") < 0.001,
        "still muted after the resume: {}",
        alice["resumed_muted"]
    );
    assert_window(&alice["resumed_muted"], "sent", "resumed, muted");
    assert_eq!(
        bob["resumed"]["detail"][1],
        json!({"held": false, "by": "remote"})
    );
    assert_hears(&bob["after"], MIC_HZ, "bob, after the resume and unmute");
    assert!(tone_db(&bob["after"]) > before - 6.0, "{}", bob["after"]);

    // INFO both ways, each taken (2xx) and logged by the other side with
    // its type, body and picked header.
    assert_eq!(alice["info_out"]["ok"], true, "{}", alice["info_out"]);
    assert_eq!(
        bob["info_in"]["detail"][1],
        json!({"contentType": "application/x-crm+json", "body": "{\"case\":42}",
               "headers": {"X-Crm-Id": "42"}})
    );
    assert_eq!(bob["info_back"]["ok"], true, "{}", bob["info_back"]);
    assert_eq!(
        alice["info_in"]["detail"][1],
        json!({"contentType": "application/vnd.queue+xml", "body": "<queue>sales</queue>",
               "headers": {}})
    );
}
