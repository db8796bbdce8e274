//! The relay never logs message contents, whatever `RUST_LOG` says: at
//! `trace`, a call with digest authentication, ICE and DTLS-SRTP through
//! the real binary leaves no password, digest response, nonce, ICE
//! password or SDP body in its log.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::echo_load;
use sipline_load::run::run;
use sipline_test_harness::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_trace_level_no_secret_and_no_message_reaches_the_log() {
    let http_port = free_port().expect("free port");
    let log = std::env::temp_dir().join(format!("sipline-trace-{http_port}.log"));
    let file = std::fs::File::create(&log).expect("log file");
    let mut relay = Command::new(env!("CARGO_BIN_EXE_sipline-relay"))
        .args(["--embedded-pbx", "--domain", "sipline.local"])
        .args(["--media-ports", "35600-35699"])
        .arg("--http-listen")
        .arg(format!("127.0.0.1:{http_port}"))
        .arg("--sip-listen")
        .arg(format!("127.0.0.1:{}", free_port().expect("free port")))
        .env("SIPLINE_USERS", "alice:hunter2-trace")
        .env("RUST_LOG", "trace")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("log file"))
        .stderr(file)
        .spawn()
        .expect("relay binary starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", http_port)).is_err() {
        assert!(Instant::now() < deadline, "the relay listens");
        std::thread::sleep(Duration::from_millis(20));
    }
    let ws = format!("ws://127.0.0.1:{http_port}/sip");
    let report = run(echo_load(ws, 1, 1, "alice", "hunter2-trace"), None).await;
    let _ = relay.kill();
    let _ = relay.wait();
    assert_eq!(report.calls_up, 1, "{:?}", report.failures);
    let text = std::fs::read_to_string(&log).expect("the log");
    let _ = std::fs::remove_file(&log);
    assert!(
        text.contains("DEBUG") || text.contains("TRACE"),
        "trace logging is on: {} lines",
        text.lines().count()
    );
    for secret in [
        "hunter2-trace",
        "response=",
        "nonce=",
        "ice-pwd",
        "a=crypto",
        "Authorization",
        "v=0",
        "INVITE sip:",
        "SIP/2.0 200",
    ] {
        let hit = text.lines().find(|l| l.contains(secret));
        assert!(hit.is_none(), "{secret:?} in the log: {hit:?}");
    }
}
