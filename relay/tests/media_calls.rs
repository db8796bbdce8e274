//! Calls through the real relay binary with `sipline-load` playing the
//! browsers (SIP over WebSocket, ICE, DTLS-SRTP over UDP) and the PBX
//! (plain RTP over UDP), on 127.0.0.1: every packet crosses both ways, and
//! a call whose media stops is ended by the relay with a BYE each way.

mod common;

use std::time::Duration;

use common::{RelayProcess, echo_load, load};
use sipline_load::run::{LoadConfig, run, set_up};
use sipline_load::sip::PbxUas;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_packet_of_five_calls_crosses_the_relay_both_ways() {
    let pbx = PbxUas::start("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("the PBX side binds");
    let relay = RelayProcess::start(pbx.addr(), &["--media-ports", "35000-35099"]);
    let report = run(load(relay.ws_url(), 5, 2), Some(pbx.clone())).await;
    assert_eq!(report.calls_up, 5, "{:?}", report.failures);
    for (name, d) in [
        ("to PBX", &report.to_pbx),
        ("to browser", &report.to_browser),
    ] {
        assert!(d.sent >= 5 * 90, "{name}: {} sent in 2 s", d.sent);
        assert_eq!(d.received, d.sent, "{name}: every packet arrives");
    }
    // The load hung up: the relay let everything go.
    let m = relay.metrics();
    assert!(m.contains("sipline_media_calls 0"), "{m}");
    assert!(
        m.contains("sipline_media_port_pairs{state=\"in_use\"} 0"),
        "{m}"
    );
    assert!(m.contains("sipline_media_srtp_failures_total 0"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_media_stops_is_ended_with_a_bye_each_way() {
    let pbx = PbxUas::start("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("the PBX side binds");
    let relay = RelayProcess::start(
        pbx.addr(),
        &["--media-ports", "35100-35199", "--rtp-timeout-secs", "5"],
    );
    let cfg = load(relay.ws_url(), 1, 0);
    let mut call = set_up(&cfg, Some(&pbx), 0).await.expect("the call is up");
    // Nobody sends: after the timeout the relay ends the call both ways.
    let bye = call.next_request(Duration::from_secs(10)).await;
    assert_hung_up(bye, &pbx, &relay, "RTP timeout", "rtp_timeout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_browser_s_call_ends_although_the_pbx_keeps_sending() {
    let pbx = PbxUas::start("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("the PBX side binds");
    let relay = RelayProcess::start(
        pbx.addr(),
        &["--media-ports", "35800-35899", "--rtp-timeout-secs", "5"],
    );
    let cfg = load(relay.ws_url(), 1, 0);
    let mut call = set_up(&cfg, Some(&pbx), 0).await.expect("the call is up");
    // The browser is gone (nothing from it: no RTP, no consent checks);
    // the PBX goes on sending 20 ms packets of PCMU.
    let mut packet = vec![0u8; 172];
    packet[0] = 0x80;
    let talk = async {
        let mut seq = 0u16;
        loop {
            packet[2..4].copy_from_slice(&seq.to_be_bytes());
            packet[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
            call.send_from_pbx(&packet).await.expect("PBX sends");
            seq = seq.wrapping_add(1);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // Five seconds of the browser's silence, checked once a second.
    tokio::select! {
        () = talk => {}
        () = tokio::time::sleep(Duration::from_secs(8)) => {}
    }
    let bye = call.next_request(Duration::from_secs(1)).await;
    assert_hung_up(bye, &pbx, &relay, "RTP timeout", "rtp_timeout").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_relay_ends_its_calls_with_a_bye_each_way_and_closes_with_1001() {
    let pbx = PbxUas::start("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("the PBX side binds");
    let mut relay = RelayProcess::start(
        pbx.addr(),
        &["--media-ports", "35900-35999", "--shutdown-grace-secs", "1"],
    );
    let cfg = load(relay.ws_url(), 2, 0);
    let mut calls = Vec::new();
    for n in 0..2 {
        calls.push(set_up(&cfg, Some(&pbx), n).await.expect("the call is up"));
    }
    relay.terminate();
    for call in &mut calls {
        let bye = call.next_request(Duration::from_secs(5)).await;
        let bye = bye.expect("the relay ends the call");
        assert!(bye.starts_with("BYE "), "{bye}");
        assert!(
            bye.contains("Reason: SIP;cause=200;text=\"Relay shutting down\""),
            "{bye}"
        );
    }
    for call in &mut calls {
        assert_eq!(call.next_request(Duration::from_secs(5)).await, None);
        assert_eq!(call.close_code(), Some(1001), "a close frame: going away");
    }
    // The PBX's BYEs go by UDP at the same moment as the browsers': under
    // load they may land a little after the close frames.
    for _ in 0..100 {
        if pbx.byes() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pbx.byes(), 2, "the PBX got a BYE for each call");
    for _ in 0..100 {
        if !relay.alive() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the relay did not exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_longer_than_the_websocket_idle_limit_are_hung_up_by_their_browsers() {
    let pbx = PbxUas::start("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("the PBX side binds");
    let relay = RelayProcess::start(
        pbx.addr(),
        &["--media-ports", "35700-35799", "--ws-idle-secs", "3"],
    );
    // Media for twice the idle limit: the browsers' keep-alives hold
    // their WebSockets, so their BYEs go through at the end.
    let report = run(
        LoadConfig {
            keep_alive: Duration::from_millis(500),
            ..load(relay.ws_url(), 2, 6)
        },
        Some(pbx.clone()),
    )
    .await;
    assert_eq!(report.calls_up, 2, "{:?}", report.failures);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.to_pbx.received, report.to_pbx.sent);
    assert_eq!(pbx.byes(), 2, "the PBX got both BYEs");
    let m = relay.metrics();
    assert!(m.contains("sipline_media_calls 0"), "{m}");
}

/// The relay ended the call: the browser got `bye` with the reason, the
/// PBX its own BYE, and the metrics count it under `label`.
async fn assert_hung_up(
    bye: Option<String>,
    pbx: &PbxUas,
    relay: &RelayProcess,
    reason: &str,
    label: &str,
) {
    let bye = bye.expect("the relay ends the call");
    assert!(bye.starts_with("BYE "), "{bye}");
    assert!(
        bye.contains(&format!("Reason: SIP;cause=200;text=\"{reason}\"")),
        "the browser learns why: {bye}"
    );
    for _ in 0..50 {
        if pbx.byes() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pbx.byes(), 1, "the PBX got its BYE");
    let m = relay.metrics();
    assert!(
        m.contains(&format!(
            "sipline_media_calls_ended_total{{reason=\"{label}\"}} 1"
        )),
        "{m}"
    );
    assert!(m.contains("sipline_media_calls 0"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_echo_extension_returns_every_packet_of_three_calls() {
    let relay = RelayProcess::start_embedded(
        &["--domain", "sipline.local", "--media-ports", "35200-35299"],
        "alice:alice-load",
    );
    let cfg = echo_load(relay.ws_url(), 3, 2, "alice", "alice-load");
    let report = run(cfg, None).await;
    assert_eq!(report.calls_up, 3, "{:?}", report.failures);
    let d = &report.to_pbx;
    assert!(d.sent >= 3 * 90, "{} sent in 2 s", d.sent);
    assert_eq!(d.received, d.sent, "every packet comes back");
    let m = relay.metrics();
    assert!(
        m.contains("sipline_media_calls 0"),
        "hung up, with digest: {m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_whose_certificate_is_not_its_sdp_s_is_hung_up_with_the_reason() {
    use sipline_load::peer::{BrowserPeer, RemoteTransport};
    use sipline_load::sip::Uac;
    use std::time::Instant;
    use tokio::net::UdpSocket;

    let pbx = PbxUas::start("127.0.0.1:0".parse().expect("address"))
        .await
        .expect("the PBX side binds");
    let relay = RelayProcess::start(pbx.addr(), &["--media-ports", "35300-35399"]);
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let local = socket.local_addr().expect("address");
    let mut peer = BrowserPeer::new(local).expect("browser");
    // The SDP names another certificate than the one the handshake shows.
    let other = BrowserPeer::new(local).expect("another certificate");
    let offer = peer
        .offer(local)
        .replace(peer.fingerprint(), other.fingerprint());
    let _leg = pbx.expect("liar");
    let mut uac = Uac::connect(&relay.ws_url(), None)
        .await
        .expect("WebSocket");
    let dialog = uac
        .call("sip:liar@pbx.test", "sip:load@pbx.test", &offer)
        .await
        .expect("the PBX answers");
    let remote = RemoteTransport::from_sdp(&dialog.answer).expect("a WebRTC answer");
    socket.connect(remote.addr).await.expect("connect");
    socket
        .send(&peer.check(&remote).expect("check"))
        .await
        .expect("send");
    let mut buf = vec![0u8; 2048];
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.recv(&mut buf)).await;
    peer.connect(Instant::now(), &remote)
        .expect("handshake starts");
    // Drive the handshake until the relay stops answering.
    for _ in 0..20 {
        while let Some(d) = peer.poll_transmit() {
            socket.send(&d).await.expect("send");
        }
        match tokio::time::timeout(Duration::from_millis(300), socket.recv(&mut buf)).await {
            Ok(Ok(n)) => {
                if peer.handle(Instant::now(), &buf[..n]).is_err() {
                    break;
                }
            }
            _ => break,
        }
    }
    let bye = uac.next_request(Duration::from_secs(5)).await;
    assert_hung_up(bye, &pbx, &relay, "DTLS handshake failed", "dtls_failed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_echo_call_is_hung_up_too() {
    let relay = RelayProcess::start_embedded(
        &[
            "--domain",
            "sipline.local",
            "--media-ports",
            "35400-35499",
            "--rtp-timeout-secs",
            "5",
        ],
        "alice:alice-load",
    );
    let cfg = echo_load(relay.ws_url(), 1, 0, "alice", "alice-load");
    let mut call = set_up(&cfg, None, 0).await.expect("the echo answers");
    let bye = call
        .next_request(Duration::from_secs(10))
        .await
        .expect("the relay ends the call");
    assert!(
        bye.starts_with("BYE ") && bye.contains("text=\"RTP timeout\""),
        "{bye}"
    );
    assert!(relay.metrics().contains("sipline_media_calls 0"));
}
