//! Calls through the relay with real parts on 127.0.0.1: SIPp (Debian's
//! sip-tester) as a caller behind Kamailio, scripted browsers behind the
//! relay. The INVITE must reach the right WebSocket, and in-dialog requests
//! must follow the Record-Route set both ways.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::RelayProcess;
use common::browser::Browser;
use sipline_test_harness::free_port;
use sipline_test_harness::kamailio::{Kamailio, Options};

/// Runs a SIPp scenario from `tests/sipp/` against the PBX, calling `who`.
async fn sipp(pbx: SocketAddr, scenario: &str, who: &str) -> tokio::process::Child {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/sipp")
        .join(scenario);
    let port = free_port().expect("port");
    let dir = std::env::temp_dir().join(format!("sipline-sipp-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    tokio::process::Command::new("sipp")
        .arg(pbx.to_string())
        .arg("-sf")
        .arg(path)
        .args([
            "-s",
            who,
            "-m",
            "1",
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .args(["-timeout", "15", "-timeout_error", "-nostdin", "-trace_err"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp runs (Debian package sip-tester; tests/run.sh installs it)")
}

async fn sipp_ok(mut child: tokio::process::Child) {
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("sipp finished")
        .expect("sipp status");
    assert!(status.success(), "sipp scenario failed: {status}");
}

const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

fn setup() -> (Kamailio, RelayProcess, SocketAddr) {
    let k = Kamailio::start(&Options::default()).unwrap_or_else(|e| panic!("{e}"));
    let pbx = SocketAddr::from(([127, 0, 0, 1], k.udp_port));
    let relay = RelayProcess::start(pbx, &["--admin-token", ADMIN_TOKEN]);
    (k, relay, pbx)
}

#[tokio::test]
async fn pbx_caller_reaches_the_right_browser_and_hangs_up_through_the_record_route() {
    let (_k, relay, pbx) = setup();
    let mut admin = common::AdminStream::open(relay.http_port, Some(ADMIN_TOKEN)).await;
    assert!(admin.status.starts_with("HTTP/1.1 200"), "{}", admin.status);
    let mut alice = Browser::register(&relay.ws_url(), "alice", "alice-secret", 1).await;
    let mut bob = Browser::register(&relay.ws_url(), "bob", "bob-secret", 2).await;
    // The relay tells browsers its media side is ICE-lite (no gathering
    // wait before offers), in the 2xx it passes on from the PBX.
    assert!(
        alice.registered.contains("\r\nSipline-Media: ice-lite\r\n"),
        "{}",
        alice.registered
    );
    let caller = sipp(pbx, "uac_bye.xml", "bob").await;

    let invite = bob
        .next_request(Duration::from_secs(10))
        .await
        .expect("INVITE for bob");
    assert!(
        invite.starts_with(&format!("INVITE {} SIP/2.0", bob.contact())),
        "Request-URI restored: {invite}"
    );
    assert!(
        alice
            .next_request(Duration::from_millis(300))
            .await
            .is_none(),
        "nothing for alice"
    );
    bob.answer(&invite, 180, "Ringing", "bobtag").await;
    bob.answer(&invite, 200, "OK", "bobtag").await;
    let ack = bob.next_request(Duration::from_secs(5)).await.expect("ACK");
    assert!(ack.starts_with("ACK "), "{ack}");
    let bye = bob
        .next_request(Duration::from_secs(5))
        .await
        .expect("BYE from the caller");
    assert!(bye.starts_with("BYE "), "{bye}");
    bob.answer(&bye, 200, "OK", "bobtag").await;
    sipp_ok(caller).await;

    // The dashboard saw it all, with the call's details.
    let events = admin
        .until("hangup", Duration::from_secs(5))
        .await
        .expect("events through hangup");
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    let from_calling = &names[names.iter().position(|n| *n == "calling").expect("calling")..];
    assert_eq!(
        from_calling,
        ["calling", "ringing", "answered", "hangup"],
        "{events:?}"
    );
    assert!(
        names.iter().filter(|n| **n == "registered").count() >= 2,
        "{names:?}"
    );
    let (_, calling) = &events[names.iter().position(|n| *n == "calling").expect("calling")];
    assert!(
        calling.contains("\"callee\":\"sip:bob@sipline.test\""),
        "{calling}"
    );
    assert!(
        calling.contains("\"caller\":\"sip:sipp@127.0.0.1:"),
        "{calling}"
    );
    assert!(calling.contains("\"call_id\":\""), "{calling}");
    assert!(
        calling.contains("\"client\":\"sip:bob@sipline.test\""),
        "the browser's side: {calling}"
    );
}

#[tokio::test]
async fn browser_hangs_up_through_the_record_route() {
    let (_k, relay, pbx) = setup();
    let mut carol = Browser::register(&relay.ws_url(), "carol", "carol-secret", 3).await;
    let caller = sipp(pbx, "uac_remote_bye.xml", "carol").await;
    let invite = carol
        .next_request(Duration::from_secs(10))
        .await
        .expect("INVITE for carol");
    carol.answer(&invite, 200, "OK", "caroltag").await;
    let ack = carol
        .next_request(Duration::from_secs(5))
        .await
        .expect("ACK");
    assert!(ack.starts_with("ACK "), "{ack}");
    carol.hang_up(&invite, "caroltag").await;
    let ok = carol.final_response().await;
    assert!(
        ok.starts_with("SIP/2.0 200"),
        "the caller answered the BYE: {ok}"
    );
    sipp_ok(caller).await;
}
