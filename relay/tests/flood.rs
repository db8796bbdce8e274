//! A flood of TCP connections that never become WebSockets (idle ones and
//! ones trickling a request a byte at a time), from fifty addresses, held
//! against the real relay binary: the relay bounds them (the oldest go
//! first), closes those whose headers do not come in time, keeps its file
//! descriptors in check, and meanwhile a browser registers, calls and gets
//! every packet of its audio back, and `/healthz` answers.

mod common;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::flood::{closed_by_peer, connect_from};
use common::{RelayProcess, echo_load, http_get};
use sipline_load::run::run;

/// Connections held against the relay.
const FLOOD: usize = 1500;
/// Source addresses they come from (127.0.0.2 onwards).
const SOURCES: usize = 50;

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_calls_while_1500_idle_connections_are_held_against_the_relay() {
    // The test itself holds the flood: its own soft limit must allow it.
    rlimit::increase_nofile_limit(4096).expect("raise the test's open files limit");
    let relay = RelayProcess::start_embedded(
        &[
            "--domain",
            "sipline.local",
            "--media-ports",
            "35500-35599",
            "--max-http-connections",
            "1024",
            "--http-header-timeout-secs",
            "3",
        ],
        "alice:alice-flood",
    );
    let to: SocketAddr = ([127, 0, 0, 1], relay.http_port).into();
    let mut flood = Vec::with_capacity(FLOOD);
    for n in 0..FLOOD {
        let from = IpAddr::from([127, 0, 0, 2 + (n % SOURCES) as u8]);
        let mut s = connect_from(from, to).expect("the relay accepts");
        if n.is_multiple_of(3) {
            // A request started and never finished.
            let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ");
        }
        flood.push(s);
    }
    let opened = Instant::now();
    // The third that trickles goes on, a byte a second.
    let trickle: Vec<TcpStream> = flood
        .iter()
        .step_by(3)
        .filter_map(|s| s.try_clone().ok())
        .collect();
    let trickling = std::thread::spawn(move || {
        for _ in 0..8 {
            for mut s in &trickle {
                let _ = s.write_all(b"a");
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    });

    assert!(
        http_get(relay.http_port, "/healthz").contains("200 OK"),
        "/healthz answers"
    );
    // A browser (the load generator's, with ICE, DTLS-SRTP and digest)
    // registers on its connection, calls the echo and gets its audio back.
    let report = run(
        echo_load(relay.ws_url(), 1, 2, "alice", "alice-flood"),
        None,
    )
    .await;
    assert_eq!(report.calls_up, 1, "{:?}", report.failures);
    let d = &report.to_pbx;
    assert!(d.sent >= 90, "{} packets sent in 2 s", d.sent);
    assert_eq!(d.received, d.sent, "every packet comes back");

    // The oldest were closed to let the newest in: at most 1,024 held.
    let pushed_out = flood.iter().filter(|s| closed_by_peer(s)).count();
    assert!(pushed_out >= FLOOD - 1024, "{pushed_out} of {FLOOD} closed");
    let files = open_files(relay.pid());
    assert!(files < 1024 + 64, "{files} files open in the relay");

    // Past the header deadline, none is left, trickling or not.
    let waited = opened.elapsed();
    std::thread::sleep(Duration::from_secs(5).saturating_sub(waited));
    let left = flood.iter().filter(|s| !closed_by_peer(s)).count();
    assert_eq!(left, 0, "connections with no complete request are closed");
    assert!(http_get(relay.http_port, "/healthz").contains("200 OK"));
    let _ = trickling.join();
}
