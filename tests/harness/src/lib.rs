//! Real servers for the end-to-end tests, started and stopped by the tests:
//! Kamailio, rtpengine, dnsmasq, HAProxy, baresip as a measuring far end, headless Chromium,
//! the relay binary, the tones they play and record, and tcpdump to see
//! what crossed the wire.
//!
//! Everything binds 127.0.0.1 on ports picked at run time, so tests run in
//! parallel and never collide with a service on the machine.

pub mod audio;
pub mod baresip;
pub mod browser;
pub mod capture;
pub mod dnsmasq;
pub mod haproxy;
pub mod kamailio;
pub mod relay;
pub mod rtpengine;
pub mod test_ca;

use std::net::{TcpListener, UdpSocket};

/// The last `n` lines of `text` (a server's log, for failure messages).
pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A port that is free for both UDP and TCP on 127.0.0.1 right now.
///
/// There is a window between this check and the server's bind; with ports
/// from the ephemeral range that race is rare, and a server that loses it
/// fails to start with a clear error rather than silently.
pub fn free_port() -> std::io::Result<u16> {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0")?;
        let port = tcp.local_addr()?.port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
}
