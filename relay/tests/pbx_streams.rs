//! SIP over TCP and TLS toward the PBX, every part real: Kamailio from
//! Debian listening on TCP and on TLS (its `tls` module, with a CA and a
//! certificate made for the run by `openssl`), bob a baresip registered at
//! it, the SDK in headless Chromium, and tcpdump on the PBX's stream port.
//!
//! Over each transport alice registers through the relay, calls bob, and is
//! called by him, heard both ways each time. The capture shows how: one
//! connection, opened from the relay's SIP port, carries her REGISTER and
//! INVITE out and bob's INVITE in (the PBX found the relay's connection by
//! the address its Contact names). Over TCP the SIP is on the wire; over
//! TLS none of it is, not even the SDES keys of `--pbx-srtp mandatory`,
//! and bob (SRTP only) hears and is heard. A TLS PBX whose certificate the
//! relay does not trust, and a stream PBX that is down, get the browser a
//! `503` at once. In front of a UDP PBX that takes TCP on the same port, a
//! request too big for UDP (RFC 3261 §18.1.1) goes over TCP. A PBX named
//! by DNS whose NAPTR record offers `SIPS+D2T` is reached over TLS, its
//! certificate checked for the domain.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sipline_test_harness::capture::{Capture, Datagram};
use sipline_test_harness::dnsmasq::Dnsmasq;
use sipline_test_harness::kamailio::{Kamailio, Options, USERS};

use common::calls::{alice_calls_bob_and_back, far_end, srtp_far_end, tones};
use common::native::{refused_at_once, registers};
use common::{Received, RelayProcess, raw_ws, receive, send};

fn kamailio() -> Kamailio {
    Kamailio::start(&Options {
        streams: true,
        ..Options::default()
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The bytes each way between the relay and the PBX's port `pbx`, with
/// the relay-side ports they used.
struct Wire {
    out: Vec<u8>,
    back: Vec<u8>,
    relay_ports: Vec<u16>,
}

fn wire(seen: &[Datagram], pbx: SocketAddr) -> Wire {
    let mut w = Wire {
        out: Vec::new(),
        back: Vec::new(),
        relay_ports: Vec::new(),
    };
    for d in seen {
        let relay = if d.to == pbx {
            w.out.extend_from_slice(&d.payload);
            d.from
        } else if d.from == pbx {
            w.back.extend_from_slice(&d.payload);
            d.to
        } else {
            continue;
        };
        if !w.relay_ports.contains(&relay.port()) {
            w.relay_ports.push(relay.port());
        }
    }
    w
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn over_tcp_the_browser_calls_and_is_called_on_one_connection_from_the_relay_s_sip_port() {
    let (_scratch, mic, far_tone) = tones("pbx-tcp");
    let kamailio = kamailio();
    let pbx = kamailio.tcp_addr().expect("TCP");
    let mut far = far_end(kamailio.udp_addr(), USERS[1], far_tone, true);
    let capture = Capture::tcp(&format!("port {}", pbx.port())).expect("tcpdump");
    let relay = RelayProcess::start(
        pbx,
        &["--pbx-transport", "tcp", "--media-ports", "36400-36449"],
    );
    alice_calls_bob_and_back(&relay, &mut far, &mic, "SIP over TCP");

    let w = wire(&capture.stop().expect("the capture"), pbx);
    assert_eq!(
        w.relay_ports,
        [relay.sip_port],
        "one connection, from the relay's SIP port"
    );
    for sent in ["REGISTER sip:", "INVITE sip:bob@", "Via: SIP/2.0/TCP "] {
        assert!(contains(&w.out, sent), "{sent:?} went to the PBX over TCP");
    }
    assert!(
        contains(&w.out, ";transport=tcp"),
        "the relay's Contact and Record-Route name TCP"
    );
    assert!(
        contains(&w.back, "INVITE sip:"),
        "bob's call came in on the relay's connection:\n{}",
        kamailio.log_tail()
    );
}

#[test]
fn over_tls_no_sip_and_no_key_is_in_the_clear_and_an_srtp_call_is_heard_both_ways() {
    let (_scratch, mic, far_tone) = tones("pbx-tls");
    let kamailio = kamailio();
    let pbx = kamailio.tls_addr().expect("TLS");
    let ca = kamailio.streams.as_ref().expect("streams").ca.ca.clone();
    let ca = ca.to_str().expect("a UTF-8 path");
    let mut far = srtp_far_end(kamailio.udp_addr(), USERS[1], far_tone);
    let capture = Capture::tcp(&format!("port {}", pbx.port())).expect("tcpdump");
    let relay = RelayProcess::start(
        pbx,
        &[
            "--pbx-transport",
            "tls",
            "--pbx-tls-ca",
            ca,
            "--pbx-srtp",
            "mandatory",
            "--media-ports",
            "36450-36499",
        ],
    );
    alice_calls_bob_and_back(&relay, &mut far, &mic, "SIP over TLS, SRTP");

    let w = wire(&capture.stop().expect("the capture"), pbx);
    assert_eq!(w.relay_ports, [relay.sip_port], "one connection");
    assert_eq!(w.out.first(), Some(&0x16), "a TLS handshake first");
    assert!(
        w.out.len() > 2_000 && w.back.len() > 2_000,
        "the calls' signalling crossed: {} bytes out, {} back",
        w.out.len(),
        w.back.len()
    );
    for clear in ["SIP/2.0", "REGISTER", "INVITE", "a=crypto", "inline:"] {
        assert!(
            !contains(&w.out, clear) && !contains(&w.back, clear),
            "{clear:?} crossed in the clear"
        );
    }
    assert!(
        far.log().contains("RTP/SAVP"),
        "bob's media was SDES-SRTP:\n{}",
        far.log_tail()
    );
}

#[tokio::test]
async fn a_tls_pbx_whose_certificate_is_not_trusted_gets_no_request() {
    let kamailio = kamailio();
    let pbx = kamailio.tls_addr().expect("TLS");
    let capture = Capture::tcp(&format!("port {}", pbx.port())).expect("tcpdump");
    // The system's roots, which do not hold the test CA.
    let relay = RelayProcess::start(pbx, &["--pbx-transport", "tls"]);
    refused_at_once(&relay, USERS[0]).await;
    let w = wire(&capture.stop().expect("the capture"), pbx);
    assert_eq!(w.out.first(), Some(&0x16), "a TLS handshake was tried");
    assert!(!contains(&w.out, "REGISTER"), "and nothing sent");
    // Trusted, but for another name: refused as well.
    let ca = kamailio.streams.as_ref().expect("streams").ca.ca.clone();
    let ca = ca.to_str().expect("a UTF-8 path");
    let relay = RelayProcess::start(
        pbx,
        &[
            "--pbx-transport",
            "tls",
            "--pbx-tls-ca",
            ca,
            "--pbx-tls-name",
            "other.test",
        ],
    );
    refused_at_once(&relay, USERS[0]).await;
}

#[tokio::test]
async fn a_stream_pbx_that_is_down_gets_the_browser_a_503_at_once() {
    let dead = SocketAddr::from((
        [127, 0, 0, 1],
        sipline_test_harness::free_port().expect("port"),
    ));
    let relay = RelayProcess::start(dead, &["--pbx-transport", "tcp"]);
    refused_at_once(&relay, USERS[0]).await;
}

/// A REGISTER for alice with `padding` bytes of an extra header.
fn register(n: u32, padding: usize) -> String {
    format!(
        "REGISTER sip:sipline.test SIP/2.0\r\n\
Via: SIP/2.0/WSS a.invalid;branch=z9hG4bKbig{n}\r\nMax-Forwards: 70\r\n\
To: <sip:alice@sipline.test>\r\nFrom: <sip:alice@sipline.test>;tag=f{n}\r\n\
Call-ID: big-{n}\r\nCSeq: 1 REGISTER\r\n\
Contact: <sip:a@a.invalid;transport=ws>\r\nX-Padding: {}\r\nContent-Length: 0\r\n\r\n",
        "p".repeat(padding)
    )
}

#[tokio::test]
async fn a_request_too_big_for_udp_goes_over_tcp_to_a_udp_pbx_that_takes_it() {
    let kamailio = kamailio();
    let pbx = kamailio.udp_addr();
    let udp = Capture::start(&format!("port {}", pbx.port())).expect("tcpdump");
    let tcp = Capture::tcp(&format!("port {}", pbx.port())).expect("tcpdump");
    let relay = RelayProcess::start(pbx, &["--pbx-large-over-tcp"]);
    let mut ws = raw_ws(&relay.ws_url()).await;
    for (n, padding) in [(1, 10), (2, 1_500)] {
        send(&mut ws, &register(n, padding)).await;
        match receive(&mut ws, Duration::from_secs(3)).await {
            Received::Text(t) => assert!(t.starts_with("SIP/2.0 401 "), "{t}"),
            other => panic!("Kamailio's challenge for REGISTER {n}: {other:?}"),
        }
    }
    let (udp, tcp) = (udp.stop().expect("udp"), tcp.stop().expect("tcp"));
    let over = |seen: &[Datagram], n: u32| {
        let w = wire(seen, pbx);
        contains(&w.out, &format!("Call-ID: big-{n}"))
            && contains(&w.back, &format!("Call-ID: big-{n}"))
    };
    assert!(
        over(&udp, 1) && !over(&tcp, 1),
        "the small REGISTER over UDP"
    );
    assert!(
        over(&tcp, 2) && !over(&udp, 2),
        "the big one, and its answer, over TCP"
    );
    assert_eq!(
        wire(&tcp, pbx).relay_ports,
        [relay.sip_port],
        "from the SIP port"
    );
}

#[tokio::test]
async fn a_pbx_whose_naptr_offers_tls_is_reached_over_tls_and_checked_for_its_domain() {
    let kamailio = kamailio();
    let tls = kamailio.tls_addr().expect("TLS");
    // NAPTR: TLS preferred over UDP; SRV names Kamailio's TLS port. The
    // certificate names pbx.test (and 127.0.0.1), not pbx1.pbx.test nor
    // other.test, which leads to the same server: RFC 5922 checks the
    // domain the user asked for.
    let dns = Dnsmasq::start(
        &[
            "host-record=pbx1.pbx.test,127.0.0.1".into(),
            "naptr-record=other.test,10,10,S,SIPS+D2T,,_sips._tcp.pbx.test".into(),
            "naptr-record=pbx.test,10,10,S,SIPS+D2T,,_sips._tcp.pbx.test".into(),
            "naptr-record=pbx.test,20,10,S,SIP+D2U,,_sip._udp.pbx.test".into(),
            format!(
                "srv-host=_sips._tcp.pbx.test,pbx1.pbx.test,{},10,100",
                tls.port()
            ),
            format!(
                "srv-host=_sip._udp.pbx.test,pbx1.pbx.test,{},10,100",
                kamailio.udp_port
            ),
        ],
        60,
    )
    .expect("dnsmasq");
    let dns_server = dns.addr.to_string();
    let ca = kamailio.streams.as_ref().expect("streams").ca.ca.clone();
    let capture = Capture::tcp(&format!("port {}", tls.port())).expect("tcpdump");
    let relay = RelayProcess::start_with(&[
        "--pbx-uri",
        "sip:pbx.test",
        "--dns-server",
        &dns_server,
        "--pbx-tls-ca",
        ca.to_str().expect("a UTF-8 path"),
    ]);
    registers(&relay, USERS[0]).await;
    let w = wire(&capture.stop().expect("the capture"), tls);
    assert_eq!(w.out.first(), Some(&0x16), "over TLS");
    assert!(!contains(&w.out, "REGISTER"), "encrypted");
    let m = relay.metrics();
    assert!(
        m.contains(&format!("sipline_pbx_up{{pbx=\"{tls}\"}} 1")),
        "the TLS target, and only it: {m}"
    );
    assert!(!m.contains(&format!(":{}\"}}", kamailio.udp_port)), "{m}");

    // The same server as other.test: its certificate does not name it.
    let relay = RelayProcess::start_with(&[
        "--pbx-uri",
        "sip:other.test",
        "--dns-server",
        &dns_server,
        "--pbx-tls-ca",
        ca.to_str().expect("a UTF-8 path"),
    ]);
    // Found in DNS first (before, a browser would get 503 for no PBX).
    let up = format!("sipline_pbx_up{{pbx=\"{tls}\"}}");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !relay.metrics().contains(&up) {
        assert!(Instant::now() < deadline, "{}", relay.metrics());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    refused_at_once(&relay, USERS[0]).await;
    assert!(
        relay.metrics().contains(&format!("{up} 0")),
        "down: {}",
        relay.metrics()
    );
}

#[tokio::test]
async fn a_pbx_that_wants_a_client_certificate_takes_the_relay_s() {
    let kamailio = kamailio();
    let streams = kamailio.streams.as_ref().expect("streams");
    let pbx = std::net::SocketAddr::from(([127, 0, 0, 1], streams.mtls_port));
    let path = |p: &std::path::Path| p.to_str().expect("a UTF-8 path").to_owned();
    let (ca, cert, key) = (
        path(&streams.ca.ca),
        path(&streams.ca.client_cert),
        path(&streams.ca.client_key),
    );
    let tls = ["--pbx-transport", "tls", "--pbx-tls-ca", &ca];
    // Without one, the handshake fails: refused at once.
    let relay = RelayProcess::start(pbx, &tls);
    refused_at_once(&relay, USERS[0]).await;
    drop(relay);
    let mut with_cert = tls.to_vec();
    with_cert.extend(["--pbx-tls-cert", &cert, "--pbx-tls-key", &key]);
    let relay = RelayProcess::start(pbx, &with_cert);
    registers(&relay, USERS[0]).await;
}
