//! What the proxy's unit tests share: explicit time, addresses, the relay's
//! own place, and a parse that shows the message it could not read.

use std::net::{IpAddr, SocketAddr};

use sipline_core::Instant;
use sipline_core::sip::Message;

use super::{Output, Proxy};

/// The relay's SIP address in the tests.
pub(super) const RELAY: &str = "192.0.2.10:5070";
/// Where the tests' browsers connect from.
pub(super) const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// `ms` milliseconds on the tests' clock.
pub(super) fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

pub(super) fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

pub(super) fn parse(bytes: &[u8]) -> Message<'_> {
    Message::parse(bytes).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(bytes)))
}

/// Messages to PBXs, each with where it went.
pub(super) type ToPbx = Vec<(SocketAddr, Vec<u8>)>;

/// What the proxy sent since the last look: to PBXs, and the frames to
/// browsers.
pub(super) fn sent(p: &mut Proxy) -> (ToPbx, Vec<Vec<u8>>) {
    let (mut pbx, mut ws) = (Vec::new(), Vec::new());
    while let Some(out) = p.poll_output() {
        match out {
            Output::Pbx { to, message, .. } => pbx.push((to, message)),
            Output::Ws { frame, .. } => ws.push(frame),
            Output::Media(_) => {}
        }
    }
    (pbx, ws)
}
