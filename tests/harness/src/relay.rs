//! The relay binary as the end-to-end tests and the benchmarks run it: on
//! 127.0.0.1, its browser side (HTTP, WebSocket) and its PBX side on the
//! ports given, quiet logs, the embedded PBX's users from the environment
//! (never the command line, which other local users can read).

use std::io;
use std::net::TcpStream;
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
    cmd.arg("--http-listen")
        .arg(format!("127.0.0.1:{http_port}"))
        .arg("--sip-listen")
        .arg(format!("127.0.0.1:{sip_port}"))
        .args(args)
        .env(
            "RUST_LOG",
            // SIPLINE_RELAY_LOG (a RUST_LOG filter) to see more.
            std::env::var("SIPLINE_RELAY_LOG").unwrap_or_else(|_| "warn,rtc_dtls=error".into()),
        )
        .stdin(Stdio::null());
    if let Some(users) = users {
        cmd.env("SIPLINE_USERS", users);
    }
    cmd.spawn()
}

/// Whether 127.0.0.1:`http_port` accepted a connection within 10 s.
pub fn listening(http_port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", http_port)).is_err() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}
