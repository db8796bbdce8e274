//! The relay's part of a call's set-up, in the sans-IO proxy with its
//! media table, as the relay runs it: a browser's INVITE with Chromium's
//! SDP in, and out toward the PBX (100 Trying to the browser, a port pair
//! taken, the SDP rewritten to plain RTP, our Via, Record-Route and flow
//! Contact); then the PBX's 200 in, and out to the browser (the SDP
//! rewritten to the relay's ICE-lite, DTLS answer). The shell's part
//! (binding the ports, one WebSocket frame, one datagram) is the
//! loopback's, measured apart in README's Numbers.
//! `cargo bench -p sipline-relay --bench setup`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group};
use sipline_core::Instant;
use sipline_core::sip::{HeaderName, Message};
use sipline_relay::ids::ConnId;
use sipline_relay::media::calls::{MediaCalls, MediaConfig};
use sipline_relay::media::dtls::Identity;
use sipline_relay::signalling::{FlowKey, Output, Proxy, ProxyConfig};

const PBX: &str = "10.0.0.5:5060";
const RELAY: &str = "192.0.2.10:5070";
const BROWSER: ConnId = ConnId(1);

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a socket address")
}

/// A relay in front of one PBX, with media, and one browser connected.
fn proxy(identity: &Arc<Identity>) -> Proxy {
    let mut cfg = ProxyConfig::new(vec![addr(PBX)], addr(RELAY));
    cfg.ws_host = "relay.example".into();
    let calls = MediaCalls::new(MediaConfig::default(), identity.clone(), [5; 32])
        .expect("the default port range");
    let mut p = Proxy::new(cfg, FlowKey::new([9; 32])).with_media(calls);
    p.ws_opened(
        Instant::from_millis(0),
        BROWSER,
        IpAddr::V4(Ipv4Addr::LOCALHOST),
    );
    p
}

/// Everything the proxy wants done; the datagram to the PBX, if any.
fn drain(p: &mut Proxy) -> Option<Vec<u8>> {
    let mut udp = None;
    while let Some(o) = p.poll_output() {
        if let Output::Pbx {
            message: datagram, ..
        } = o
        {
            udp = Some(datagram);
        }
    }
    udp
}

fn invite() -> Vec<u8> {
    let raw =
        include_bytes!("../../sdk-wasm/core/tests/corpus/valid/invite_chromium_webrtc_sdp.sip");
    let sdp = Message::parse(raw).expect("the corpus INVITE").body();
    let mut m = format!(
        "INVITE sip:bob@pbx.example SIP/2.0\r\nVia: SIP/2.0/WSS abc.invalid;branch=z9hG4bKbench\r\n\
Max-Forwards: 70\r\nTo: <sip:bob@pbx.example>\r\nFrom: <sip:alice@pbx.example>;tag=a1\r\n\
Call-ID: bench-1\r\nCSeq: 3 INVITE\r\nContact: <sip:x7@abc.invalid;transport=ws;ob>\r\n\
Supported: 100rel, outbound, replaces, timer, trickle-ice\r\nContent-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n",
        sdp.len()
    )
    .into_bytes();
    m.extend_from_slice(sdp);
    m
}

/// The PBX's 200 to the INVITE as the relay forwarded it.
fn pbx_ok(forwarded: &[u8]) -> Vec<u8> {
    const SDP: &str = "v=0\r\no=- 1938 1940 IN IP4 10.0.0.5\r\ns=Asterisk\r\nc=IN IP4 10.0.0.5\r\n\
t=0 0\r\nm=audio 16384 RTP/AVP 0 126\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:126 telephone-event/8000\r\n\
a=sendrecv\r\n";
    let m = Message::parse(forwarded).expect("the forwarded INVITE");
    let vias: Vec<&str> = m.header_values(HeaderName::Via).collect();
    let rr = m.header(HeaderName::RecordRoute).expect("our Record-Route");
    format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nRecord-Route: {rr}\r\nTo: <sip:bob@pbx.example>;tag=b9\r\n\
From: <sip:alice@pbx.example>;tag=a1\r\nCall-ID: {}\r\nCSeq: 3 INVITE\r\n\
Contact: <sip:bob@10.0.0.7:5062>\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{SDP}",
        vias.join(", "),
        m.call_id(),
        SDP.len()
    )
    .into_bytes()
}

fn setup(c: &mut Criterion) {
    let identity = Arc::new(Identity::generate().expect("a DTLS identity"));
    let invite = invite();
    let forwarded = {
        let mut p = proxy(&identity);
        p.handle_ws(Instant::from_millis(1), BROWSER, &invite);
        drain(&mut p).expect("the INVITE reaches the PBX")
    };
    let ok = pbx_ok(&forwarded);
    let mut group = c.benchmark_group("call set-up in the relay");
    group.bench_function("browser INVITE to the PBX (ports, SDP, 100 Trying)", |b| {
        b.iter_batched(
            || proxy(&identity),
            |mut p| {
                p.handle_ws(Instant::from_millis(1), BROWSER, black_box(&invite));
                black_box(drain(&mut p));
                p
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("PBX 200 to the browser (ICE-lite DTLS answer)", |b| {
        b.iter_batched(
            || {
                let mut p = proxy(&identity);
                p.handle_ws(Instant::from_millis(1), BROWSER, &invite);
                drain(&mut p);
                p
            },
            |mut p| {
                p.handle_pbx(Instant::from_millis(2), addr(PBX), black_box(&ok));
                black_box(drain(&mut p));
                p
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, setup);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
