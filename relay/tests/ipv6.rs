//! IPv6, every part real: Kamailio from Debian listening on `[::1]`, bob
//! (baresip) registered there over IPv6, and the SDK in headless Chromium.
//! - The browser on IPv4, the PBX on IPv6: the relay's WebSocket and the
//!   browser's media stay on 127.0.0.1 while its PBX side (SIP and RTP) is
//!   on `[::1]`, and the relay bridges the two families.
//! - Everything on `::1`: the page's WebSocket (`ws://[::1]:…`), the
//!   browser's media (the relay's media sockets bind `::1` only, so ICE,
//!   DTLS and SRTP cannot be elsewhere), the relay's SIP and RTP.
//!
//! Calls both ways, heard both ways.

mod common;

use sipline_test_harness::baresip::Baresip;
use sipline_test_harness::kamailio::{Kamailio, Options, USERS};

use common::RelayProcess;
use common::calls::{Scratch, alice_calls_bob_and_back, far_end, tones};

/// Kamailio and bob on `[::1]`, and the browser's microphone tone.
fn pbx_on_ipv6(name: &str) -> (Scratch, std::path::PathBuf, Kamailio, Baresip) {
    let (scratch, mic, far_tone) = tones(name);
    let kamailio = Kamailio::start(&Options {
        ipv6: true,
        ..Options::default()
    })
    .expect("kamailio on [::1]");
    assert!(kamailio.udp_addr().is_ipv6());
    let far = far_end(kamailio.udp_addr(), USERS[1], far_tone, true);
    (scratch, mic, kamailio, far)
}

#[test]
fn a_browser_on_ipv4_calls_and_is_called_by_a_phone_behind_a_pbx_on_ipv6() {
    let (_scratch, mic, kamailio, mut far) = pbx_on_ipv6("ipv6");
    let relay = RelayProcess::start(
        kamailio.udp_addr(),
        &["--sip-listen", "[::1]:0", "--media-ports", "37730-37799"],
    );
    alice_calls_bob_and_back(&relay, &mut far, &mic, "browser on IPv4, PBX on IPv6");
    // The far end's SDP named the relay's IPv6 address, never an IPv4 one.
    let log = far.log();
    assert!(
        log.contains("c=IN IP6 ::1"),
        "the relay's SDP toward the PBX is IPv6:\n{}",
        far.log_tail()
    );
    assert!(
        !log.contains("c=IN IP4"),
        "no IPv4 address reached the IPv6 side:\n{}",
        far.log_tail()
    );
    assert!(
        relay.metrics().contains("sipline_media_calls 0"),
        "{}",
        relay.metrics()
    );
}

#[test]
fn a_call_on_ipv6_loopback_from_the_browser_to_the_phone_and_back() {
    let (_scratch, mic, kamailio, mut far) = pbx_on_ipv6("ipv6-only");
    let relay = RelayProcess::start_on_ipv6(kamailio.udp_addr(), &["--media-ports", "37722-37729"]);
    assert!(
        relay.ws_url().starts_with("ws://[::1]:"),
        "{}",
        relay.ws_url()
    );
    alice_calls_bob_and_back(&relay, &mut far, &mic, "all on ::1");
    assert!(!far.log().contains("c=IN IP4"), "{}", far.log_tail());
    let metrics = relay.metrics();
    assert!(metrics.contains("sipline_media_calls 0"), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("sipline_media_packets_total") && !l.ends_with(" 0")),
        "media crossed the relay on ::1: {metrics}"
    );
}
