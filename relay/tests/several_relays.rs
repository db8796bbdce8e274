//! Two relays in front of one PBX, behind a standard load balancer, every
//! part real: Kamailio as the PBX, bob a baresip behind it, HAProxy from
//! Debian balancing the browsers' WebSockets over both relays
//! (health-checked on `/healthz`, the PROXY protocol to each), and the SDK
//! in headless Chromium connecting to HAProxy only. Each relay
//! record-routes and flow-tokens through its own SIP address, so the PBX
//! reaches each browser through the relay that holds it.
//!
//! - Alice and bob, two browsers, land on different relays and call each
//!   other across them, heard both ways. Alice's relay dies (SIGKILL)
//!   while she talks to dave (a baresip) and bob to carol (another): she
//!   is registered again through bob's relay within 5 s; her call with dave
//!   is reported ended with a reason, and its BYE reaches dave through bob's
//!   relay (the dead relay's Record-Route pair is popped); bob's call with
//!   carol goes on without a missing packet; alice and bob call each other
//!   again.
//! - A relay is told to stop (SIGTERM): it drains. New browsers go to the
//!   other relay at once; its call in progress goes on and is heard until
//!   the grace is over, then ends with the relay's BYE each way; its
//!   browser registers through the other relay; the relay exits.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;
use sipline_test_harness::browser;
use sipline_test_harness::haproxy::Haproxy;
use sipline_test_harness::kamailio::{DOMAIN, Kamailio, Options, USERS};

use common::calls::{
    FAR_HZ, MIC_HZ, Scratch, account, assert_hears, assert_tone, far_end, number, outcome,
    sdk_once_ready, tones,
};
use common::{RelayProcess, http_get_from};

/// What a stopping relay gives its calls, seconds.
const GRACE: &str = "4";

/// Carol's tone (a far end on the relay that lives) and dave's (on the
/// one that dies).
const CAROL_HZ: f64 = 660.0;
const DAVE_HZ: f64 = 880.0;

/// A relay of the pair, named, trusting HAProxy's PROXY header, giving
/// its calls `grace` seconds when told to stop.
fn relay(pbx: SocketAddr, name: &str, ports: &str, grace: &str) -> RelayProcess {
    RelayProcess::start(
        pbx,
        &[
            "--trusted-proxy",
            "127.0.0.1",
            "--instance",
            name,
            "--media-ports",
            ports,
            "--shutdown-grace-secs",
            grace,
        ],
    )
}

/// `Phone.connect`'s options for `user` through HAProxy, reconnecting
/// after 0.5 s.
fn balanced(haproxy: &Haproxy, user: (&str, &str)) -> serde_json::Value {
    let mut options = account(&format!("ws://{}/sip", haproxy.addr), user, DOMAIN);
    options["reconnectMinMs"] = json!(500);
    options
}

/// A relay's `/metrics`, asked from 127.0.0.2: 127.0.0.1 is HAProxy's
/// address, whose connections must begin with a PROXY header.
fn metrics(relay: &RelayProcess) -> String {
    http_get_from(
        IpAddr::from([127, 0, 0, 2]),
        SocketAddr::from(([127, 0, 0, 1], relay.http_port)),
        "/metrics",
    )
}

/// The WebSockets a relay holds (`sipline_ws_connections`).
fn sockets(relay: &RelayProcess) -> u64 {
    metrics(relay)
        .lines()
        .find(|l| l.starts_with("sipline_ws_connections{"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

/// Opens a SIP WebSocket through `balancer` (the HTTP upgrade only) and
/// returns the connection once it was switched, or the status line.
fn upgrade(balancer: SocketAddr) -> Result<TcpStream, String> {
    let mut s = TcpStream::connect(balancer).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "GET /sip HTTP/1.1\r\nHost: {balancer}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Protocol: sip\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut head = [0u8; 256];
    let n = s.read(&mut head).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&head[..n]).into_owned();
    if text.starts_with("HTTP/1.1 101") {
        Ok(s)
    } else {
        Err(text.lines().next().unwrap_or_default().to_owned())
    }
}

#[test]
fn browsers_on_two_relays_call_each_other_and_survive_the_loss_of_one() {
    let scratch = Scratch::new("several-relays");
    let alice_mic = scratch.tone("alice-1khz.wav", MIC_HZ, 48_000);
    let bob_mic = scratch.tone("bob-440hz.wav", FAR_HZ, 48_000);
    let carol_tone = scratch.tone("carol-660hz.wav", CAROL_HZ, 8_000);
    let dave_tone = scratch.tone("dave-880hz.wav", DAVE_HZ, 8_000);
    let kamailio = Kamailio::start(&Options::default()).expect("kamailio");
    let pbx = kamailio.udp_addr();
    let carol = far_end(pbx, USERS[2], carol_tone, true);
    let dave = far_end(pbx, USERS[3], dave_tone, true);
    let mut relays = [
        relay(pbx, "relay-a", "36200-36249", "30"),
        relay(pbx, "relay-b", "36250-36299", "30"),
    ];
    let haproxy = Haproxy::start(&[relays[0].http_port, relays[1].http_port]).expect("haproxy");
    let options = |user| balanced(&haproxy, user);
    let uri = |(user, _): (&str, &str)| format!("sip:{user}@{DOMAIN}");
    // Bob: alice's call across the relays; then carol's, on his relay
    // alone, heard for 12 s while alice's relay dies; then alice's again.
    let bob_config = json!({
        "mic": bob_mic,
        "steps": [
            {"do": "connect", "options": options(USERS[1])},
            {"do": "mark", "event": "bob_ready"},
            {"do": "answer", "timeoutMs": 20000},
            {"do": "measure", "name": "talk_ab"},
            {"do": "wait_event", "name": "hangup_ab", "event": "hangup", "timeoutMs": 15000},
            {"do": "call", "name": "call_carol", "target": uri(USERS[2])},
            {"do": "measure", "name": "across_the_loss", "settleMs": 500, "ms": 8000},
            {"do": "hangup", "name": "hangup_carol"},
            {"do": "answer", "name": "answer_again", "timeoutMs": 60000},
            {"do": "measure", "name": "talk_again"},
            {"do": "mark", "event": "bob_heard_again"},
            {"do": "wait_event", "name": "hangup_again", "event": "hangup", "timeoutMs": 15000},
            {"do": "disconnect"},
        ],
    });
    // Alice: calls bob across the relays; then dave, on her relay alone,
    // which is killed during that call; back through the other relay, she
    // calls bob again.
    let alice_config = json!({
        "mic": alice_mic,
        "steps": [
            {"do": "connect", "options": options(USERS[0])},
            {"do": "call", "target": uri(USERS[1])},
            {"do": "measure", "name": "talk_ab"},
            // Bob answered a little later: his measuring ends first.
            {"do": "sleep", "ms": 1000},
            {"do": "hangup"},
            {"do": "call", "name": "call_dave", "target": uri(USERS[3])},
            {"do": "measure", "name": "talk_dave"},
            {"do": "mark", "event": "kill_her_relay"},
            {"do": "wait_event", "name": "reconnected", "event": "reconnected", "timeoutMs": 10000},
            {"do": "wait_event", "name": "registered", "event": "registered", "timeoutMs": 10000},
            {"do": "wait_event", "name": "dave_ended", "event": "hangup", "timeoutMs": 45000},
            // Bob is still talking to carol: his page takes one call at a
            // time.
            {"do": "sleep", "ms": 7000},
            {"do": "call", "name": "call_again", "target": uri(USERS[1])},
            {"do": "measure", "name": "talk_again"},
            {"do": "sleep", "ms": 1000},
            {"do": "hangup", "name": "hangup_again"},
            {"do": "disconnect"},
        ],
    });
    let bob_page = sdk_once_ready(&bob_config, "bob_ready");
    let bobs = relays
        .iter()
        .position(|r| sockets(r) == 1)
        .expect("bob's relay");
    let mut held = [0, 0];
    let alice_out = browser::sdk(&alice_config.to_string(), |event| {
        if event == "kill_her_relay" {
            held = [sockets(&relays[0]), sockets(&relays[1])];
            relays[1 - bobs].kill();
        }
    })
    .expect("alice's browser ran");
    let bob_out = bob_page
        .join()
        .expect("bob's thread")
        .expect("bob's browser ran");
    // Bob's report first: alice's last call fails when his page stopped.
    let bob = outcome(&bob_out, &carol);
    let alice = outcome(&alice_out, &dave);
    let (a, b) = (&alice["steps"], &bob["steps"]);
    assert_eq!(
        held,
        [1, 1],
        "alice and bob were each on a relay of their own"
    );

    // Across the relays, each hears the other.
    assert_hears(&a["talk_ab"], FAR_HZ, "alice hearing bob across the relays");
    assert_hears(&b["talk_ab"], MIC_HZ, "bob hearing alice across the relays");
    // Alice's relay dies: she is registered again through bob's within
    // 5 s, and the call she had there is reported ended, with a reason.
    assert_hears(
        &a["talk_dave"],
        DAVE_HZ,
        "alice's call on the relay that dies",
    );
    let registered_after = number(&a["registered"], "afterMarkMs");
    assert!(
        registered_after < 5000.0,
        "alice registered through the other relay {registered_after} ms after hers died: {alice}"
    );
    let ended = &a["dave_ended"]["detail"];
    assert_eq!(ended[0]["state"], "ended", "{ended}");
    assert!(
        ended[1]["code"].is_u64() || ended[1]["reason"].is_string(),
        "the call on the dead relay ended with a reason: {ended}"
    );
    // The BYE went through the surviving relay to the PBX and dave.
    assert!(
        dave.log().contains("BYE sip:dave"),
        "dave got the BYE of the call whose relay died:\n{}",
        dave.log_tail()
    );
    // Bob's call with carol, on the relay that lives, went on through it
    // all: 8 s of carol around the loss, no packet missing.
    let across = &b["across_the_loss"];
    assert_tone(across, CAROL_HZ, "bob's call on the surviving relay");
    let received = number(across, "received");
    assert!(
        received >= 0.95 * 50.0 * 8.0,
        "no gap in bob's audio while alice's relay died: {received} packets in 8 s: {across}"
    );
    // Both on one relay now, they call each other again.
    assert_hears(&a["talk_again"], FAR_HZ, "alice hearing bob after the loss");
    assert_hears(&b["talk_again"], MIC_HZ, "bob hearing alice after the loss");
    assert!(relays[bobs].alive(), "the surviving relay runs on");
}

#[test]
fn a_relay_told_to_stop_takes_no_new_browser_ends_its_call_after_the_grace_and_its_browser_moves() {
    let (_scratch, mic, far_tone) = tones("relay-drain");
    let kamailio = Kamailio::start(&Options::default()).expect("kamailio");
    let pbx = kamailio.udp_addr();
    let far = far_end(pbx, USERS[1], far_tone, true);
    let mut relays = [
        relay(pbx, "relay-a", "36300-36349", GRACE),
        relay(pbx, "relay-b", "36350-36399", GRACE),
    ];
    let haproxy = Haproxy::start(&[relays[0].http_port, relays[1].http_port]).expect("haproxy");
    let (bob, _) = USERS[1];
    let config = json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": balanced(&haproxy, USERS[0])},
            {"do": "call", "target": format!("sip:{bob}@{DOMAIN}")},
            {"do": "mark", "event": "drain"},
            {"do": "measure", "name": "talk_while_draining", "settleMs": 300},
            // The grace over, the relay ends the call with a BYE each way,
            // closes the WebSocket, exits; the SDK registers through the
            // other relay.
            {"do": "wait_event", "name": "ended", "event": "hangup", "timeoutMs": 15000},
            {"do": "wait_event", "name": "registered", "event": "registered", "timeoutMs": 15000},
            {"do": "disconnect"},
        ],
    });
    let mut drained = None;
    let mut newcomers = Vec::new();
    let out = browser::sdk(&config.to_string(), |event| {
        if event != "drain" {
            return;
        }
        let Some(i) = relays.iter().position(|r| sockets(r) == 1) else {
            return;
        };
        relays[i].terminate();
        drained = Some(i);
        // New browsers, each an HTTP upgrade through HAProxy, all land on
        // the other relay: the stopping one has closed its listener, so
        // HAProxy's connection to it is refused and retried on the other
        // (and its health check soon fails).
        std::thread::sleep(Duration::from_millis(300));
        newcomers = (0..4).map(|_| upgrade(haproxy.addr)).collect();
    })
    .expect("the browser ran");
    let v = outcome(&out, &far);
    let steps = &v["steps"];
    let i = drained.unwrap_or_else(|| panic!("one relay held the browser: {v}"));
    assert_eq!(steps["call"]["state"], "established", "{v}");
    assert_hears(
        &steps["talk_while_draining"],
        FAR_HZ,
        "the call goes on while its relay drains",
    );
    assert!(
        newcomers.iter().all(Result::is_ok),
        "every new browser got a WebSocket: {newcomers:?}"
    );
    // Least connections alone would send some of the four to the
    // stopping relay (it held one browser, the other none).
    assert_eq!(
        sockets(&relays[1 - i]),
        4,
        "the new browsers are all on the relay that is not stopping"
    );
    // The call ended when the grace was over, by the relay's BYE, which
    // bob got too, with the reason.
    let ended_after = number(&steps["ended"], "afterMarkMs");
    let grace_ms: f64 = GRACE.parse::<f64>().expect("seconds") * 1000.0;
    assert!(
        (grace_ms..grace_ms + 3000.0).contains(&ended_after),
        "the call ended {ended_after} ms after SIGTERM, the grace being {grace_ms} ms: {v}"
    );
    assert!(
        far.log().contains("Relay shutting down"),
        "bob got the relay's BYE with its reason:\n{}",
        far.log_tail()
    );
    // Her registration moved: through the other relay, at once.
    let registered_after = number(&steps["registered"], "afterMarkMs");
    assert!(
        registered_after < ended_after + 3000.0,
        "registered through the other relay {registered_after} ms after SIGTERM: {v}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while relays[i].alive() {
        assert!(Instant::now() < deadline, "the drained relay exits");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(newcomers);
}
