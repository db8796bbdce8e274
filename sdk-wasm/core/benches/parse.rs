//! Parse cost of the lean parser against rsip on the messages a relay and a
//! user agent handle most: a WebSocket REGISTER, a WebRTC INVITE with SDP,
//! and a Kamailio-style 200 OK. Run: `cargo bench -p sipline-core`.
//!
//! Both sides do what a proxy needs on every message: parse, then read the
//! Call-ID, CSeq and top Via branch.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rsip::headers::ToTypedHeader;
use rsip::prelude::{HeadersExt, UntypedHeader};
use sipline_core::sip::Message;

fn load(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus/valid")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn lean(bytes: &[u8]) -> usize {
    let m = Message::parse(bytes).expect("corpus message parses");
    m.call_id().len() + m.cseq().seq as usize + m.via().branch().map_or(0, str::len)
}

fn oracle(bytes: &[u8]) -> usize {
    let m = rsip::SipMessage::try_from(bytes).expect("rsip parses");
    let call_id = m.call_id_header().map(|h| h.value().len()).unwrap_or(0);
    let seq = m.cseq_header().ok().and_then(|c| c.seq().ok()).unwrap_or(0) as usize;
    let branch = m
        .via_header()
        .ok()
        .and_then(|v| v.typed().ok())
        .and_then(|v| v.branch().map(|b| b.to_string().len()))
        .unwrap_or(0);
    call_id + seq + branch
}

fn parse(c: &mut Criterion) {
    for name in [
        "register_jssip_wss.sip",
        "invite_chromium_webrtc_sdp.sip",
        "200_register_multi_contact.sip",
    ] {
        let bytes = load(name);
        let mut group = c.benchmark_group(name.trim_end_matches(".sip"));
        group.throughput(Throughput::Elements(1));
        group.bench_function("lean", |b| b.iter(|| lean(black_box(&bytes))));
        group.bench_function("rsip", |b| b.iter(|| oracle(black_box(&bytes))));
        group.finish();
    }
}

criterion_group!(benches, parse);
criterion_main!(benches);
