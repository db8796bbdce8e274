//! The real relay binary between the native user agent (over WebSocket) and
//! a real Kamailio acting as the PBX (over UDP), all on 127.0.0.1. The tests
//! start and stop every process themselves.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::native::{config, outcome, refused_at_once};
use common::{Received, RelayProcess, raw_ws, receive, receive_past_trying, send, send_binary};
use sipline_core::Event;
use sipline_test_harness::kamailio::{DOMAIN, Kamailio, Options};
use sipline_ua_shell::{Backoff, Phone, ShellEvent};
use tokio::time::timeout;

fn kamailio(opts: Options) -> Kamailio {
    Kamailio::start(&opts).unwrap_or_else(|e| panic!("{e}"))
}

fn pbx_addr(k: &Kamailio) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], k.udp_port))
}

/// A UDP socket standing in for a SIP peer the test controls.
fn udp_peer() -> (UdpSocket, SocketAddr) {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let a = s.local_addr().expect("addr");
    (s, a)
}

/// Final response to a request sent from `sock` to `to`, skipping 1xx.
fn request_over_udp(
    sock: &UdpSocket,
    to: SocketAddr,
    request: &str,
    within: Duration,
) -> Option<String> {
    sock.send_to(request.as_bytes(), to).expect("send");
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 65_536];
    while Instant::now() < deadline {
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("SIP/2.0 1") {
                continue;
            }
            return Some(text);
        }
    }
    None
}

fn options(ruri: &str, from: SocketAddr, call_id: &str) -> String {
    format!(
        "OPTIONS {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bK{call_id};rport\r\nMax-Forwards: 70\r\n\
From: <sip:tester@{DOMAIN}>;tag=t1\r\nTo: <{ruri}>\r\nCall-ID: {call_id}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

#[tokio::test]
async fn registers_refreshes_and_unregisters_through_the_relay() {
    let k = kamailio(Options {
        min_expires: 1,
        ..Options::default()
    });
    let mut relay = RelayProcess::start(pbx_addr(&k), &[]);
    let mut c = config("alice", "alice-secret");
    c.register_expires = 5;
    let mut phone = Phone::spawn(&relay.ws_url(), c, Backoff::default()).expect("shell");
    assert_eq!(
        outcome(&mut phone, Duration::from_secs(5)).await,
        Event::Registered { expires: 5 },
        "{}",
        k.log_tail()
    );
    // The refresh at 4.5 s goes through the relay too.
    assert_eq!(
        outcome(&mut phone, Duration::from_secs(8)).await,
        Event::Registered { expires: 5 }
    );
    phone.unregister();
    let gone = timeout(Duration::from_secs(5), async {
        loop {
            if let Some(ShellEvent::Ua(Event::Unregistered { code, .. })) = phone.next_event().await
            {
                return code;
            }
        }
    })
    .await
    .expect("unregistered");
    assert_eq!(gone, None, "unregistration accepted");
    let m = relay.metrics();
    assert!(
        m.contains("sipline_sip_messages_out_total{kind=\"request\",method=\"REGISTER\"}"),
        "{m}"
    );
    phone.shutdown().await;
    assert!(relay.alive());
}

#[tokio::test]
async fn wrong_password_gives_the_pbxs_403() {
    let k = kamailio(Options::default());
    let relay = RelayProcess::start(pbx_addr(&k), &[]);
    let mut phone =
        Phone::spawn(&relay.ws_url(), config("bob", "wrong"), Backoff::default()).expect("shell");
    let ev = outcome(&mut phone, Duration::from_secs(5)).await;
    assert_eq!(ev.to_string(), "registration failed: 403 Forbidden");
    phone.shutdown().await;
}

// Multi-threaded: the test blocks on a UDP socket while the user agent's
// task must keep running to answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pbx_requests_reach_the_registered_browser_and_forged_tokens_get_430() {
    let k = kamailio(Options::default());
    let relay = RelayProcess::start(pbx_addr(&k), &[]);
    let mut phone = Phone::spawn(
        &relay.ws_url(),
        config("carol", "carol-secret"),
        Backoff::default(),
    )
    .expect("shell");
    assert!(matches!(
        outcome(&mut phone, Duration::from_secs(5)).await,
        Event::Registered { .. }
    ));

    // Someone asks the PBX for carol: Kamailio finds her binding (the
    // relay's flow Contact), the relay finds her WebSocket, her UA answers.
    let (sock, me) = udp_peer();
    let pbx = pbx_addr(&k);
    let req = options(&format!("sip:carol@{DOMAIN}"), me, "opt-carol");
    let answer = request_over_udp(&sock, pbx, &req, Duration::from_secs(5)).expect("an answer");
    assert!(answer.starts_with("SIP/2.0 200 OK"), "{answer}");
    assert!(
        answer.contains("User-Agent: sipline/"),
        "answered by the user agent: {answer}"
    );

    // A token this relay never signed, routed by the PBX to the relay.
    let forged = format!(
        "sip:x@127.0.0.1:{};sl-flow={}",
        relay.sip_port,
        "0".repeat(36)
    );
    let req = options(&forged, me, "opt-forged");
    let answer = request_over_udp(&sock, pbx, &req, Duration::from_secs(5)).expect("an answer");
    assert!(answer.starts_with("SIP/2.0 430 Flow Failed"), "{answer}");
    phone.shutdown().await;
}

#[tokio::test]
async fn a_stopped_pbx_gives_503_within_two_seconds() {
    // Nothing listens on this port: the kernel answers ICMP unreachable.
    let dead = SocketAddr::from((
        [127, 0, 0, 1],
        sipline_test_harness::free_port().expect("port"),
    ));
    let relay = RelayProcess::start(dead, &[]);
    refused_at_once(&relay, ("alice", "alice-secret")).await;
}

#[tokio::test]
async fn a_silent_pbx_gets_retransmissions_and_the_browser_a_408() {
    let (pbx, addr) = udp_peer();
    let relay = RelayProcess::start(addr, &["--request-timeout-ms", "2000"]);
    let started = Instant::now();
    let mut phone = Phone::spawn(
        &relay.ws_url(),
        config("alice", "alice-secret"),
        Backoff::default(),
    )
    .expect("shell");
    let ev = outcome(&mut phone, Duration::from_secs(5)).await;
    assert!(
        matches!(ev, Event::RegistrationFailed { code: 408, .. }),
        "{ev:?}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "{took:?}"
    );
    // Timer E: the same REGISTER arrived more than once (0, 0.5, 1.5 s).
    let mut buf = [0u8; 65_536];
    let mut registers = 0;
    while let Ok((n, _)) = pbx.recv_from(&mut buf) {
        registers += usize::from(buf[..n].starts_with(b"REGISTER "));
    }
    assert!(registers >= 3, "only {registers} REGISTER datagrams");
    phone.shutdown().await;
}

fn invite(target: SocketAddr) -> String {
    format!(
        "INVITE sip:bob@{target} SIP/2.0\r\nVia: SIP/2.0/WSS x.invalid;branch=z9hG4bKopen1\r\nMax-Forwards: 70\r\n\
Route: <sip:{target};lr>\r\nFrom: <sip:alice@{DOMAIN}>;tag=a\r\nTo: <sip:bob@{target}>\r\nCall-ID: open-1\r\n\
CSeq: 1 INVITE\r\nContact: <sip:a@x.invalid;transport=ws>\r\nContent-Length: 0\r\n\r\n"
    )
}

#[tokio::test]
async fn requests_aimed_elsewhere_still_go_only_to_the_pbx() {
    let (pbx, pbx_addr) = udp_peer();
    let (elsewhere, target) = udp_peer();
    let relay = RelayProcess::start(pbx_addr, &[]);
    let mut ws = raw_ws(&relay.ws_url()).await;
    send(&mut ws, &invite(target)).await;
    let mut buf = [0u8; 65_536];
    let (n, _) = (0..10)
        .find_map(|_| pbx.recv_from(&mut buf).ok())
        .expect("the PBX gets the INVITE");
    assert!(buf[..n].starts_with(b"INVITE sip:bob@"));
    assert!(
        elsewhere.recv_from(&mut buf).is_err(),
        "nothing may reach the other host"
    );
}

#[tokio::test]
async fn malformed_messages_get_400_and_the_relay_lives_on() {
    let (pbx, pbx_addr) = udp_peer();
    let mut relay = RelayProcess::start(pbx_addr, &[]);
    let mut ws = raw_ws(&relay.ws_url()).await;
    send(&mut ws, "REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/WSS a.invalid;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:a@x>\r\nCall-ID: c\r\nCSeq: one REGISTER\r\n\r\n").await;
    match receive(&mut ws, Duration::from_secs(2)).await {
        Received::Text(t) => assert!(t.starts_with("SIP/2.0 400 Malformed CSeq\r\n"), "{t}"),
        other => panic!("expected a 400, got {other:?}"),
    }
    // The RFC 4475 torture messages and friends: each answered with 400 or
    // dropped, never a crash.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sdk-wasm/core/tests/corpus/invalid");
    let mut sent = 0;
    let mut refused = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus") {
        let bytes = std::fs::read(entry.expect("entry").path()).expect("read");
        if bytes.is_empty() || bytes.len() > 60_000 {
            continue;
        }
        send_binary(&mut ws, bytes).await;
        sent += 1;
        while let Received::Text(t) = receive(&mut ws, Duration::from_millis(50)).await {
            // 488: a request sound enough to parse whose SDP is not
            // WebRTC's (the torture corpus's SDP is plain RTP).
            assert!(
                t.starts_with("SIP/2.0 400 ")
                    || t.starts_with("SIP/2.0 483")
                    || t.starts_with("SIP/2.0 488"),
                "{t}"
            );
            refused += 1;
        }
    }
    assert!(sent > 30);
    assert!(
        refused >= 15,
        "only {refused} of {sent} torture messages got a 400"
    );
    assert!(relay.alive(), "relay survived the torture corpus");
    // Some torture messages are valid enough to forward; drain those, then
    // a sound request still goes through.
    let mut buf = [0u8; 65_536];
    while pbx.recv_from(&mut buf).is_ok() {}
    send(&mut ws, &invite(pbx_addr)).await;
    let got = (0..10).find_map(|_| pbx.recv_from(&mut buf).ok());
    assert!(
        got.is_some_and(|(n, _)| buf[..n].starts_with(b"INVITE ")),
        "still forwarding"
    );
    let m = relay.metrics();
    assert!(
        !m.contains("sipline_sip_rejected_total{reason=\"malformed\"} 0"),
        "{m}"
    );
}

#[tokio::test]
async fn oversized_message_closes_with_1009() {
    let (_pbx, pbx_addr) = udp_peer();
    let relay = RelayProcess::start(pbx_addr, &["--max-message-bytes", "2048"]);
    let mut ws = raw_ws(&relay.ws_url()).await;
    send(
        &mut ws,
        &format!(
            "OPTIONS sip:x SIP/2.0\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(4000)
        ),
    )
    .await;
    match receive(&mut ws, Duration::from_secs(2)).await {
        Received::Closed(Some(close)) => assert_eq!(u16::from(close.code), 1009),
        other => panic!("expected close 1009, got {other:?}"),
    }
    // Past the WebSocket library's own limit (four times ours) it is the
    // library that refuses the frame: its capacity error earns 1009 too.
    let mut ws = raw_ws(&relay.ws_url()).await;
    send(
        &mut ws,
        &format!(
            "OPTIONS sip:x SIP/2.0\r\nX-Pad: {}\r\n\r\n",
            "a".repeat(10_000)
        ),
    )
    .await;
    match receive(&mut ws, Duration::from_secs(2)).await {
        Received::Closed(Some(close)) => assert_eq!(u16::from(close.code), 1009),
        other => panic!("expected close 1009 from the library's limit, got {other:?}"),
    }
}

#[tokio::test]
async fn a_silent_websocket_is_closed_and_one_answering_pings_stays() {
    let (_pbx, pbx_addr) = udp_peer();
    let relay = RelayProcess::start(pbx_addr, &["--ws-idle-secs", "3"]);
    // One never reads, so it never answers the relay's pings (a browser
    // gone without closing); the other reads, and its library answers them.
    let mut silent = raw_ws(&relay.ws_url()).await;
    let mut alive = raw_ws(&relay.ws_url()).await;
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(5) {
        if let Received::Closed(c) = receive(&mut alive, Duration::from_millis(500)).await {
            panic!("a connection answering pings was closed: {c:?}");
        }
    }
    // Closed (with 1001, or cut: the relay does not wait on a peer that
    // does not read).
    match receive(&mut silent, Duration::from_secs(1)).await {
        Received::Closed(None) => {}
        Received::Closed(Some(close)) => assert_eq!(u16::from(close.code), 1001),
        other => panic!("the silent connection is still open: {other:?}"),
    }
    let m = relay.metrics();
    assert!(m.contains("sipline_ws_connections 1\n"), "{m}");
}

#[test]
fn the_web_root_serves_page_files_and_nothing_else() {
    let root = std::env::temp_dir().join(format!("sipline-web-{}", std::process::id()));
    std::fs::create_dir_all(root.join("sdk")).expect("dir");
    std::fs::write(
        root.join("index.html"),
        "<!doctype html><title>phone</title>",
    )
    .expect("page");
    std::fs::write(root.join("sdk/engine.wasm"), b"\0asm\x01\0\0\0").expect("wasm");
    std::fs::write(root.join("relay.toml"), "secret = 1").expect("config");
    let _ = std::os::unix::fs::symlink("/etc/hostname", root.join("escape.txt"));
    let (_pbx, pbx_addr) = udp_peer();
    let root_arg = root.display().to_string();
    let relay = RelayProcess::start(pbx_addr, &["--web-root", &root_arg]);
    let get = |path: &str| common::http_get(relay.http_port, path);
    let page = get("/");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("content-type: text/html"), "{page}");
    assert!(page.ends_with("<title>phone</title>"), "{page}");
    let wasm = get("/sdk/engine.wasm");
    assert!(wasm.contains("content-type: application/wasm"), "{wasm}");
    for refused in [
        "/relay.toml",
        "/escape.txt",
        "/../etc/passwd",
        "/sdk/",
        "/%2e%2e/etc/passwd",
    ] {
        let r = get(refused);
        assert!(r.starts_with("HTTP/1.1 404"), "{refused}: {r}");
    }
    // The relay's own routes are untouched.
    assert!(get("/healthz").ends_with("ok\n"));
    let _ = std::fs::remove_dir_all(&root);
}

#[tokio::test]
async fn handshake_without_the_sip_subprotocol_is_refused() {
    let (_pbx, pbx_addr) = udp_peer();
    let relay = RelayProcess::start(pbx_addr, &[]);
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", relay.http_port)).expect("connect");
    // The refusal keeps the connection alive: read what comes, then stop.
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    write!(
        s,
        "GET /sip HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    .expect("write");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("subprotocol \"sip\" is required"), "{out}");
    assert_eq!(
        common::http_get(relay.http_port, "/healthz").lines().last(),
        Some("ok")
    );
}

#[tokio::test]
async fn rate_and_connection_limits_answer_503_with_retry_after() {
    let (pbx, pbx_addr) = udp_peer();
    let relay = RelayProcess::start(
        pbx_addr,
        &[
            "--messages-per-second",
            "1",
            "--message-burst",
            "2",
            "--max-connections-per-ip",
            "2",
        ],
    );
    let mut ws = raw_ws(&relay.ws_url()).await;
    for i in 0..3 {
        send(
            &mut ws,
            &invite(pbx_addr).replace("z9hG4bKopen1", &format!("z9hG4bKrate{i}")),
        )
        .await;
    }
    match receive_past_trying(&mut ws, Duration::from_secs(2)).await {
        Received::Text(t) => {
            assert!(t.starts_with("SIP/2.0 503 Rate Limit Exceeded\r\n"), "{t}");
            assert!(t.contains("\r\nRetry-After: 1\r\n"), "{t}");
        }
        other => panic!("expected a 503, got {other:?}"),
    }
    let mut buf = [0u8; 65_536];
    let forwarded = std::iter::from_fn(|| pbx.recv_from(&mut buf).ok()).count();
    assert!(
        forwarded >= 2,
        "the burst went through ({forwarded} datagrams)"
    );

    let _second = raw_ws(&relay.ws_url()).await;
    match common::try_raw_ws(&relay.ws_url()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 503);
            assert_eq!(
                resp.headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()),
                Some("30")
            );
        }
        other => panic!(
            "a third connection from one address must be refused, got {:?}",
            other.map(|_| "a socket")
        ),
    }
    let m = relay.metrics();
    assert!(
        m.contains("sipline_sip_rejected_total{reason=\"rate_limited\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("sipline_sip_rejected_total{reason=\"too_many_connections\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn admin_stream_needs_its_token_and_api_config_serves_defaults() {
    let (_pbx, pbx_addr) = udp_peer();
    let token = "admin-token-for-tests-0001";
    let relay = RelayProcess::start(
        pbx_addr,
        &[
            "--admin-token",
            token,
            "--domain",
            "pbx.example",
            "--instance",
            "relay-a",
        ],
    );
    let refused = common::AdminStream::open(relay.http_port, None).await;
    assert!(
        refused.status.starts_with("HTTP/1.1 401"),
        "{}",
        refused.status
    );
    let wrong =
        common::AdminStream::open(relay.http_port, Some("admin-token-for-tests-0002")).await;
    assert!(wrong.status.starts_with("HTTP/1.1 401"), "{}", wrong.status);
    let mut admin = common::AdminStream::open(relay.http_port, Some(token)).await;
    assert!(admin.status.starts_with("HTTP/1.1 200"), "{}", admin.status);
    let ws = raw_ws(&relay.ws_url()).await;
    let (name, data) = admin.next(Duration::from_secs(3)).await.expect("an event");
    assert_eq!(name, "connected");
    // Named among several relays: every event says which.
    assert!(
        data.starts_with("{\"relay\":\"relay-a\",\"event\":\"connected\",\"session\":"),
        "{data}"
    );
    drop(ws);
    assert_eq!(
        admin
            .next(Duration::from_secs(3))
            .await
            .map(|e| e.0)
            .as_deref(),
        Some("disconnected")
    );

    let config = common::http_get(relay.http_port, "/api/config");
    let body = config.split("\r\n\r\n").nth(1).unwrap_or_default();
    assert!(
        body.contains(&format!(
            "\"server\":\"ws://127.0.0.1:{}/sip\"",
            relay.http_port
        )),
        "{body}"
    );
    assert!(body.contains("\"domain\":\"pbx.example\""), "{body}");
    assert!(body.contains("\"iceServers\":[]"), "{body}");
    // And every series carries its name.
    let m = relay.metrics();
    let series: Vec<&str> = m
        .lines()
        .filter(|l| l.starts_with("sipline_") && !l.starts_with('#'))
        .collect();
    assert!(series.len() > 50, "{m}");
    assert!(
        series.iter().all(|l| l.contains("relay=\"relay-a\"")),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_accepting_but_lets_the_call_in_progress_finish() {
    // A PBX stand-in that answers the INVITE: the call is then in progress.
    let (pbx, pbx_addr) = udp_peer();
    let mut relay = RelayProcess::start(pbx_addr, &["--shutdown-grace-secs", "3"]);
    let mut ws = raw_ws(&relay.ws_url()).await;
    send(&mut ws, &invite(pbx_addr)).await;
    let mut buf = [0u8; 65_536];
    let (n, from) = (0..10)
        .find_map(|_| pbx.recv_from(&mut buf).ok())
        .expect("INVITE at the PBX");
    let inv = sipline_core::sip::Message::parse(&buf[..n]).expect("parses");
    let ok = sipline_core::sip::response_to(&inv, 200, "OK", Some("pbx")).finish(None, b"");
    pbx.send_to(&ok, from).expect("send");
    assert!(
        matches!(receive_past_trying(&mut ws, Duration::from_secs(2)).await, Received::Text(t) if t.starts_with("SIP/2.0 200"))
    );

    let stopped_at = Instant::now();
    relay.terminate();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(relay.alive(), "a call is in progress: the relay waits");
    assert!(
        common::try_raw_ws(&relay.ws_url()).await.is_err(),
        "no new browsers once stopping"
    );
    // The grace period ends it even though the call never hung up.
    while relay.alive() {
        assert!(
            stopped_at.elapsed() < Duration::from_secs(6),
            "relay did not stop after its grace period"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        stopped_at.elapsed() >= Duration::from_secs(3),
        "stopped before the grace period"
    );
}

/// An INVITE carrying Chromium's offer (from the SIP corpus).
fn webrtc_invite(call_id: &str) -> String {
    let raw = include_str!("../../sdk-wasm/core/tests/corpus/valid/invite_chromium_webrtc_sdp.sip");
    let sdp = raw.split("\r\n\r\n").nth(1).expect("a body");
    format!(
        "INVITE sip:bob@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/WSS x.invalid;branch=z9hG4bK{call_id}\r\nMax-Forwards: 70\r\n\
From: <sip:alice@{DOMAIN}>;tag=a\r\nTo: <sip:bob@{DOMAIN}>\r\nCall-ID: {call_id}\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:a@x.invalid;transport=ws>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    )
}

#[tokio::test]
async fn a_full_media_range_refuses_with_503_and_a_failed_call_gives_its_ports_back() {
    let (pbx, pbx_addr) = udp_peer();
    // Four ports: one call's two pairs (a range no other test uses: tests
    // of other files run at the same time).
    let relay = RelayProcess::start(pbx_addr, &["--media-ports", "37600-37603"]);
    let mut ws = raw_ws(&relay.ws_url()).await;
    let mut buf = [0u8; 65_536];

    send(&mut ws, &webrtc_invite("first")).await;
    let (n, from) = (0..10)
        .find_map(|_| pbx.recv_from(&mut buf).ok())
        .expect("the PBX gets the first INVITE");
    let first = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        first.contains("m=audio 37602 RTP/AVP 111") && first.contains("c=IN IP4 127.0.0.1"),
        "plain RTP on the relay's port toward the PBX:\n{first}"
    );
    assert!(!first.contains("a=fingerprint"), "{first}");

    send(&mut ws, &webrtc_invite("second")).await;
    match receive_past_trying(&mut ws, Duration::from_secs(2)).await {
        Received::Text(t) => assert!(
            t.starts_with("SIP/2.0 503 Media Ports Exhausted\r\n"),
            "{t}"
        ),
        other => panic!("expected a 503, got {other:?}"),
    }
    assert!(
        pbx.recv_from(&mut buf).is_err(),
        "the refused call never reached the PBX"
    );
    let m = relay.metrics();
    assert!(
        m.contains("sipline_media_port_pairs{state=\"in_use\"} 2"),
        "{m}"
    );
    assert!(
        m.contains("sipline_media_refused_total{reason=\"ports_exhausted\"} 1"),
        "{m}"
    );

    // The PBX refuses the first call: its ports come back, and the next
    // call gets them.
    let invite = sipline_core::sip::Message::parse(first.as_bytes()).expect("INVITE parses");
    let busy =
        sipline_core::sip::response_to(&invite, 486, "Busy Here", Some("pbx")).finish(None, b"");
    pbx.send_to(&busy, from).expect("send");
    match receive(&mut ws, Duration::from_secs(2)).await {
        Received::Text(t) => assert!(t.starts_with("SIP/2.0 486 Busy Here\r\n"), "{t}"),
        other => panic!("expected the 486, got {other:?}"),
    }
    assert!(
        relay
            .metrics()
            .contains("sipline_media_port_pairs{state=\"in_use\"} 0")
    );
    send(&mut ws, &webrtc_invite("third")).await;
    assert!(
        (0..10).any(|_| pbx
            .recv_from(&mut buf)
            .is_ok_and(|(n, _)| buf[..n].starts_with(b"INVITE"))),
        "the third call goes through"
    );
}

#[tokio::test]
async fn after_a_restart_the_old_flow_tokens_count_as_gone_not_forged() {
    let (pbx, pbx_addr) = udp_peer();
    let mut relay = RelayProcess::start(pbx_addr, &[]);
    let mut ws = raw_ws(&relay.ws_url()).await;
    send(&mut ws, &invite(pbx_addr)).await;
    let mut buf = [0u8; 65_536];
    let (n, _) = (0..10)
        .find_map(|_| pbx.recv_from(&mut buf).ok())
        .expect("the INVITE at the PBX");
    let forwarded = String::from_utf8_lossy(&buf[..n]).into_owned();
    let contact = sipline_core::sip::Message::parse(forwarded.as_bytes())
        .ok()
        .and_then(|m| {
            m.header(sipline_core::sip::HeaderName::Contact)
                .and_then(sipline_core::sip::NameAddr::parse)
                .map(|na| na.uri_text.to_owned())
        })
        .expect("the relay's Contact, with its flow token");
    relay.restart();
    // The PBX reaches the browser it knew before the restart.
    let options = format!(
        "OPTIONS {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {pbx_addr};branch=z9hG4bKold1\r\nMax-Forwards: 70\r\n\
From: <sip:pbx@{DOMAIN}>;tag=p\r\nTo: <sip:alice@{DOMAIN}>\r\nCall-ID: old-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    let relay_sip: SocketAddr = ([127, 0, 0, 1], relay.sip_port).into();
    let answer =
        request_over_udp(&pbx, relay_sip, &options, Duration::from_secs(2)).expect("an answer");
    assert!(
        answer.starts_with("SIP/2.0 430 Flow Failed\r\n"),
        "{answer}"
    );
    let m = relay.metrics();
    assert!(
        m.contains("sipline_sip_rejected_total{reason=\"flow_gone\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("sipline_sip_rejected_total{reason=\"flow_forged\"} 0")
            || !m.contains("reason=\"flow_forged\""),
        "{m}"
    );
}
