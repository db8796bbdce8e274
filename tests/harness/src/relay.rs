//! The relay binary as the end-to-end tests and the benchmarks run it: on
//! 127.0.0.1, its browser side (HTTP, WebSocket) and its PBX side on the
//! ports given, quiet logs, the embedded PBX's users from the environment
//! (never the command line, which other local users can read).

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts the relay `binary` with `args` after its listening addresses;
/// `users` (`NAME:PASSWORD,…`) for its embedded PBX.
pub fn launch(
    binary: &Path,
    http_port: u16,
    sip_port: u16,
    args: &[String],
    users: Option<&str>,
) -> io::Result<Child> {
    let mut cmd = Command::new(binary);
    // A test may put either side elsewhere (`[::1]`, for IPv6).
    if !args.iter().any(|a| a == "--http-listen") {
        cmd.arg("--http-listen")
            .arg(format!("127.0.0.1:{http_port}"));
    }
    if !args.iter().any(|a| a == "--sip-listen") {
        cmd.arg("--sip-listen").arg(format!("127.0.0.1:{sip_port}"));
    }
    cmd.args(args)
        .env(
            "RUST_LOG",
            // SIPLINE_RELAY_LOG (a RUST_LOG filter) to see more.
            std::env::var("SIPLINE_RELAY_LOG").unwrap_or_else(|_| "warn,rtc_dtls=error".into()),
        )
        .stdin(Stdio::null());
    if let Some(port) = shared_browser_port()?
        && !args.iter().any(|a| a == "--media-browser-port")
    {
        cmd.arg("--media-browser-port")
            .arg(port.to_string())
            .args(["--media-workers", "1"]);
    }
    if let Some(users) = users {
        cmd.env("SIPLINE_USERS", users);
    }
    cmd.spawn()
}

/// With `SIPLINE_TEST_BROWSER_PORT` set, the browser tests run again with
/// one UDP port for every browser: the port their relay takes (with one
/// media thread), else `None`.
pub fn shared_browser_port() -> io::Result<Option<u16>> {
    match std::env::var_os("SIPLINE_TEST_BROWSER_PORT") {
        Some(_) => free_udp_port().map(Some),
        None => Ok(None),
    }
}

/// A UDP port free on 127.0.0.1 now, from 38000–38999 (outside every
/// test's media range), tried from a place this process's id picks so that
/// tests starting together seldom try the same.
fn free_udp_port() -> io::Result<u16> {
    let start = std::process::id() % 1000;
    (0..1000)
        .map(|i| 38_000 + ((start + i) % 1000) as u16)
        .find(|&port| std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "38000-38999 all taken"))
}

/// Whether 127.0.0.1:`http_port` accepted a connection within 10 s.
pub fn listening(http_port: u16) -> bool {
    listening_at(SocketAddr::from(([127, 0, 0, 1], http_port)))
}

/// Whether `addr` accepted a connection within 10 s.
pub fn listening_at(addr: SocketAddr) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
