//! Relay throughput and footprint, measured on the real binary:
//! `cargo bench -p sipline-relay --bench relay`.
//!
//! - SIP messages per second through the relay: WebSocket clients send
//!   OPTIONS in closed loops; a PBX stand-in on UDP answers each with 200 at
//!   once; every round trip is two messages relayed (WS → UDP, UDP → WS).
//! - Memory per idle registered WebSocket connection: the relay's resident
//!   set size before and after 1,000 browsers connect and register.
//!
//! The clients and the PBX stand-in run in this process, the relay in its
//! own, so its RSS is its own. On a 2-core machine they share the cores.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use sipline_core::sip::{Message, Method, response_to};
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

fn free_port() -> u16 {
    let s = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

/// A PBX stand-in: answers every request with 200 OK, on its own thread.
fn echo_pbx(stop: Arc<AtomicBool>) -> SocketAddr {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let addr = sock.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while !stop.load(Ordering::Relaxed) {
            let Ok((n, from)) = sock.recv_from(&mut buf) else {
                continue;
            };
            if let Ok(m) = Message::parse(&buf[..n])
                && m.is_request()
                && m.method() != Some(Method::Ack)
            {
                let ok = response_to(&m, 200, "OK", Some("pbx")).finish(None, b"");
                let _ = sock.send_to(&ok, from);
            }
        }
    });
    addr
}

struct Relay {
    child: Child,
    url: String,
}

impl Relay {
    fn start(pbx: SocketAddr) -> Relay {
        let http = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_sipline-relay"))
            .args(["--pbx", &pbx.to_string()])
            .args(["--http-listen", &format!("127.0.0.1:{http}")])
            .args(["--sip-listen", &format!("127.0.0.1:{}", free_port())])
            .args([
                "--max-connections-per-ip",
                "5000",
                "--messages-per-second",
                "1000000",
                "--message-burst",
                "1000000",
            ])
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .spawn()
            .expect("relay starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", http)).is_err() {
            assert!(Instant::now() < deadline, "relay did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Relay {
            child,
            url: format!("ws://127.0.0.1:{http}/sip"),
        }
    }

    /// Resident set size in KiB, from /proc.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Ws {
    let mut req = url.into_client_request().expect("request");
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("sip"));
    tokio_tungstenite::connect_async(req)
        .await
        .expect("handshake")
        .0
}

fn request(method: &str, client: usize, n: u64) -> String {
    format!(
        "{method} sip:pbx@sipline.test SIP/2.0\r\nVia: SIP/2.0/WS c{client}.invalid;branch=z9hG4bKc{client}n{n}\r\n\
Max-Forwards: 70\r\nTo: <sip:u{client}@sipline.test>\r\nFrom: <sip:u{client}@sipline.test>;tag=t{client}\r\n\
Call-ID: bench-{client}-{n}\r\nCSeq: {n} {method}\r\nContact: <sip:u{client}@c{client}.invalid;transport=ws>;expires=600\r\n\
Expires: 600\r\nContent-Length: 0\r\n\r\n",
        n = n + 1
    )
}

/// Sends one request and waits for its final answer.
async fn round_trip(ws: &mut Ws, text: String) -> bool {
    if ws.send(Frame::text(text)).await.is_err() {
        return false;
    }
    while let Some(Ok(frame)) = ws.next().await {
        if let Frame::Text(t) = frame
            && t.starts_with("SIP/2.0 2")
        {
            return true;
        }
    }
    false
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * p) as usize)
        .copied()
        .unwrap_or(0)
}

async fn throughput(url: &str, clients: usize, run: Duration) {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + run;
    let mut tasks = Vec::new();
    for c in 0..clients {
        let url = url.to_owned();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut ws = connect(&url).await;
            let mut latencies = Vec::new();
            let mut n = 0;
            while Instant::now() < deadline {
                let t = Instant::now();
                if !round_trip(&mut ws, request("OPTIONS", c, n)).await {
                    break;
                }
                latencies.push(t.elapsed().as_micros() as u64);
                n += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all.sort_unstable();
    let trips = done.load(Ordering::Relaxed) as f64 / run.as_secs_f64();
    println!(
        "throughput: {clients} connections, {:.0} request/response round trips/s = {:.0} SIP messages/s relayed; latency p50 {} µs, p99 {} µs",
        trips,
        trips * 2.0,
        percentile(&all, 0.50),
        percentile(&all, 0.99)
    );
}

async fn idle_memory(url: &str, relay: &Relay, connections: usize) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = relay.rss_kib();
    let mut sockets = Vec::with_capacity(connections);
    for c in 0..connections {
        let mut ws = connect(url).await;
        assert!(
            round_trip(&mut ws, request("REGISTER", c, 0)).await,
            "REGISTER {c} answered"
        );
        sockets.push(ws);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = relay.rss_kib();
    println!(
        "memory: relay RSS {before} KiB idle, {after} KiB with {connections} registered idle WebSockets = {:.1} KiB per connection",
        (after.saturating_sub(before)) as f64 / connections as f64
    );
    drop(sockets);
}

fn main() {
    // `cargo bench` passes libtest flags; this harness takes none.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let stop = Arc::new(AtomicBool::new(false));
    let pbx = echo_pbx(stop.clone());
    rt.block_on(async {
        let relay = Relay::start(pbx);
        throughput(&relay.url, 1, Duration::from_secs(3)).await;
        throughput(&relay.url, 32, Duration::from_secs(5)).await;
        drop(relay);
        let relay = Relay::start(pbx);
        idle_memory(&relay.url, &relay, 1000).await;
    });
    stop.store(true, Ordering::Relaxed);
}
