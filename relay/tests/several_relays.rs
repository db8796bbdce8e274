//! Two relays in front of one PBX, behind a standard load balancer, every
//! part real: Kamailio as the PBX, bob a baresip behind it, HAProxy from
//! Debian balancing the browsers' WebSockets over both relays
//! (health-checked on `/healthz`, the PROXY protocol to each), and the SDK
//! in headless Chromium connecting to HAProxy only. Each relay
//! record-routes and flow-tokens through its own SIP address, so the PBX
//! reaches each browser through the relay that holds it.
//!
//! - A relay dies (SIGKILL): its browser reconnects through HAProxy to the
//!   other, re-registers within 5 s, and takes a call from bob there.
//! - A relay is told to stop (SIGTERM): it drains. New browsers go to the
//!   other relay at once, its call in progress goes on and is heard, and
//!   when that call ends the relay exits.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::json;
use sipline_test_harness::browser;
use sipline_test_harness::haproxy::Haproxy;
use sipline_test_harness::kamailio::{DOMAIN, Kamailio, Options, USERS};

use common::RelayProcess;
use common::calls::{
    FAR_HZ, MIC_HZ, Scratch, assert_far_end_heard_the_browser, assert_hears, far_end, number,
    outcome,
};

/// A relay of the pair, named, trusting HAProxy's PROXY header.
fn relay(pbx: SocketAddr, name: &str, ports: &str) -> RelayProcess {
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
            "60",
        ],
    )
}

/// A relay's `/metrics`, asked from 127.0.0.2: 127.0.0.1 is HAProxy's
/// address, whose connections must begin with a PROXY header.
fn metrics(relay: &RelayProcess) -> String {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 2], 0)).into())
        .expect("bind 127.0.0.2");
    socket
        .connect(&SocketAddr::from(([127, 0, 0, 1], relay.http_port)).into())
        .expect("connect");
    let mut s = TcpStream::from(socket);
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
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
fn a_browser_whose_relay_dies_re_registers_through_the_other_within_5_s_and_takes_a_call() {
    let scratch = Scratch::new("several-relays");
    let mic = scratch.tone("mic-1khz.wav", MIC_HZ, 48_000);
    let far_tone = scratch.tone("far-440hz.wav", FAR_HZ, 8_000);
    let kamailio = Kamailio::start(&Options::default()).expect("kamailio");
    let pbx = kamailio.udp_addr();
    let mut far = far_end(pbx, USERS[1], far_tone, true);
    let mut relays = [
        relay(pbx, "relay-a", "36200-36249"),
        relay(pbx, "relay-b", "36250-36299"),
    ];
    let haproxy = Haproxy::start(&[relays[0].http_port, relays[1].http_port]).expect("haproxy");
    let (alice, alice_password) = USERS[0];
    let (bob, _) = USERS[1];
    let config = json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": {
                "server": format!("ws://{}/sip", haproxy.addr),
                "uri": format!("sip:{alice}@{DOMAIN}"),
                "password": alice_password,
                "reconnectMinMs": 500,
            }},
            {"do": "call", "target": format!("sip:{bob}@{DOMAIN}")},
            {"do": "measure", "name": "talk_out"},
            {"do": "hangup"},
            {"do": "mark", "event": "kill_its_relay"},
            {"do": "wait_event", "name": "reconnected", "event": "reconnected", "timeoutMs": 10000},
            {"do": "wait_event", "name": "registered", "event": "registered", "timeoutMs": 10000},
            {"do": "mark", "event": "dial"},
            {"do": "answer"},
            {"do": "measure", "name": "talk_in"},
            {"do": "hangup", "name": "hangup_in"},
            {"do": "disconnect"},
        ],
    });
    let mut killed = None;
    let mut dialled = Ok(());
    let out = browser::sdk(&config.to_string(), |event| match event {
        "kill_its_relay" => {
            let holder = relays.iter().position(|r| sockets(r) == 1);
            if let Some(i) = holder {
                relays[i].kill();
            }
            killed = holder;
        }
        "dial" => dialled = far.dial(&format!("sip:{alice}@{DOMAIN}")),
        _ => {}
    })
    .expect("the browser ran");
    dialled.expect("baresip dials");
    let v = outcome(&out, &far);
    let steps = &v["steps"];
    let dead = killed.unwrap_or_else(|| panic!("one relay held the browser: {v}"));
    assert_eq!(steps["call"]["state"], "established", "{v}");
    assert_hears(&steps["talk_out"], FAR_HZ, "through the first relay");
    let registered_after = number(&steps["registered"], "afterMarkMs");
    assert!(
        registered_after < 5000.0,
        "re-registered through the other relay {registered_after} ms after the first died: {v}"
    );
    assert_eq!(
        steps["answer"]["from"],
        format!("sip:{bob}@{DOMAIN}"),
        "{v}"
    );
    assert_hears(&steps["talk_in"], FAR_HZ, "through the surviving relay");
    assert_far_end_heard_the_browser(&far);
    // The call in went through the relay that was left.
    let survivor = &relays[1 - dead];
    let metrics = metrics(survivor);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sipline_media_packets_total{") && !l.ends_with(" 0")),
        "the survivor carried the second call:\n{metrics}"
    );
}

#[test]
fn a_relay_told_to_stop_takes_no_new_browser_and_exits_when_its_call_ends() {
    let scratch = Scratch::new("relay-drain");
    let mic = scratch.tone("mic-1khz.wav", MIC_HZ, 48_000);
    let far_tone = scratch.tone("far-440hz.wav", FAR_HZ, 8_000);
    let kamailio = Kamailio::start(&Options::default()).expect("kamailio");
    let pbx = kamailio.udp_addr();
    let far = far_end(pbx, USERS[1], far_tone, true);
    let mut relays = [
        relay(pbx, "relay-a", "36300-36349"),
        relay(pbx, "relay-b", "36350-36399"),
    ];
    let haproxy = Haproxy::start(&[relays[0].http_port, relays[1].http_port]).expect("haproxy");
    let (alice, alice_password) = USERS[0];
    let (bob, _) = USERS[1];
    let config = json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": {
                "server": format!("ws://{}/sip", haproxy.addr),
                "uri": format!("sip:{alice}@{DOMAIN}"),
                "password": alice_password,
            }},
            {"do": "call", "target": format!("sip:{bob}@{DOMAIN}")},
            {"do": "mark", "event": "drain"},
            {"do": "measure", "name": "talk_while_draining"},
            {"do": "hangup"},
            {"do": "sleep", "ms": 500},
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
    // Its last call over, the stopping relay exits (well within its grace
    // of 60 s).
    let deadline = Instant::now() + Duration::from_secs(10);
    while relays[i].alive() {
        assert!(
            Instant::now() < deadline,
            "the drained relay exits once its call has ended"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(newcomers);
}
