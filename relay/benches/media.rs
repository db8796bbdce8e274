//! The media hot path as the relay runs it: one call's [`Session`] taking a
//! packet from the browser (SRTP → plain RTP: demultiplex, source check,
//! unprotect, loss and jitter) or from the PBX (RTP → SRTP: source check,
//! protect), in the shell's buffer, for both SRTP profiles and two payload
//! sizes, with and without the call being recorded (each packet copied
//! into the recording's ring, which a thread drains as the relay's writer
//! does). Then, with a counting allocator: allocations per packet in
//! steady state, recorded or not (must be 0), and the heap one call's
//! session holds.
//! `cargo bench -p sipline-relay --bench media`.
//!
//! The browser is `sipline-load`'s: a real ICE check and DTLS handshake in
//! memory, so the keys are the ones a call would have.

use std::alloc::System;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use sipline_load::peer::{BrowserKeys, BrowserPeer, RemoteTransport, connect_in_memory};
use sipline_relay::media::dtls::{DtlsServer, Identity};
use sipline_relay::media::ice::IceLite;
use sipline_relay::media::record::{self, HEADER_LEN, Sink};
use sipline_relay::media::session::{Forward, Session};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const RELAY: &str = "127.0.0.1:40000";
const BROWSER: &str = "127.0.0.1:50000";
const PBX: &str = "10.0.0.5:16384";
const PBX_RTCP: &str = "10.0.0.5:16385";
/// The shell's buffer: the biggest datagram plus room for SRTP and STUN.
const BUFFER: usize = 1500 + 128;
/// The recording ring of the timed runs: they send packets back to back,
/// millions a second, in bursts, so the ring is as deep as some
/// milliseconds of that (not of a call's 50 packets a second) for the
/// writer's thread to keep up.
const BENCH_RING: usize = 4 << 20;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

const PROFILES: [(SrtpProtectionProfile, &str); 2] = [
    (
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
        "AES_CM_128_HMAC_SHA1_80",
    ),
    (
        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
        "AEAD_AES_128_GCM",
    ),
];

/// Takes every whole record out of a recording's ring, as the writer
/// does (without the file): no allocation.
fn drain(sink: &mut Sink) {
    let mut packet = [0u8; BUFFER + HEADER_LEN];
    while sink.ring.slots() >= HEADER_LEN {
        let (h, rest) = packet.split_at_mut(HEADER_LEN);
        let Ok(()) = sink.ring.pop_entire_slice(h) else {
            return;
        };
        let len = usize::from(u16::from_be_bytes([h[10], h[11]]));
        let _ = sink.ring.pop_entire_slice(&mut rest[..len]);
    }
}

/// Drains `sink` on its own thread until the session's end of it goes,
/// as the relay's writer thread does (here without pausing, so that it
/// keeps up with a benchmark's packet rate); joined, whether the ring
/// ever filled (the measurement would then be of a stopped recording).
fn drain_on_a_thread(mut sink: Sink) -> std::thread::JoinHandle<bool> {
    std::thread::spawn(move || {
        while !sink.ring.is_abandoned() {
            drain(&mut sink);
            std::thread::yield_now();
        }
        sink.overflowed()
    })
}

/// Joins the benchmark's writer: the recording must have kept up.
fn writer_kept_up(writer: Option<std::thread::JoinHandle<bool>>) {
    if let Some(w) = writer {
        let overflowed = w.join().expect("the writer");
        assert!(!overflowed, "the recording's ring filled: run on two cores");
    }
}

/// A connected call: the relay's session and the browser's keys; with a
/// `ring` size, recorded, and the recording's writer end too.
fn call_recorded(
    identity: &Identity,
    profile: SrtpProtectionProfile,
    ring: Option<usize>,
) -> (Session, BrowserKeys, Option<Sink>) {
    let (mut session, keys) = call(identity, profile);
    let sink = ring.map(|bytes| {
        let (tap, sink) = record::channel("bench", record::Starter::Policy, bytes);
        session.set_tap(tap);
        sink
    });
    (session, keys, sink)
}

/// A connected call: the relay's session and the browser's keys.
fn call(identity: &Identity, profile: SrtpProtectionProfile) -> (Session, BrowserKeys) {
    let mut peer = BrowserPeer::with_profiles(addr(BROWSER), vec![profile]).expect("browser");
    let (ufrag, pwd) = ("rlyU", "relaypassword0123456789a");
    let mut ice = IceLite::new(ufrag, pwd);
    ice.set_remote_ufrag(peer.ufrag());
    let dtls = DtlsServer::new(identity, addr(RELAY), peer.fingerprint()).expect("server");
    let mut session = Session::new(ice, dtls);
    session.set_pbx(0, addr(PBX), addr(PBX_RTCP));
    let remote = RemoteTransport {
        addr: addr(RELAY),
        ufrag: ufrag.into(),
        pwd: pwd.into(),
        fingerprint: identity.fingerprint().into(),
    };
    let keys = connect_in_memory(&mut peer, &remote, &mut session, addr(BROWSER))
        .expect("the call connects");
    (session, keys)
}

fn rtp(seq: u16, payload: usize) -> Vec<u8> {
    let mut p = vec![0x80, 0];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x5eed_0001u32.to_be_bytes());
    p.resize(12 + payload, 0xd5);
    p
}

/// The browser's packet `seq`, protected, in a shell-sized buffer.
fn from_browser_packet(keys: &mut BrowserKeys, seq: u16, payload: usize) -> (Vec<u8>, usize) {
    let plain = rtp(seq, payload);
    let mut buf = plain.clone();
    buf.resize(BUFFER, 0);
    let n = keys
        .outbound
        .protect_rtp(&mut buf, plain.len())
        .expect("protect");
    (buf, n)
}

fn media(c: &mut Criterion) {
    let identity = Identity::generate().expect("identity");
    for (profile, name) in PROFILES {
        let mut group = c.benchmark_group(format!("session {name}"));
        group.throughput(Throughput::Elements(1));
        for (payload, recorded) in [(160usize, false), (1200, false), (160, true)] {
            let label = |way: &str| {
                if recorded {
                    format!("{way}, recorded")
                } else {
                    way.to_owned()
                }
            };
            group.bench_function(BenchmarkId::new(label("SRTP to RTP"), payload), |b| {
                let (mut session, mut keys, sink) =
                    call_recorded(&identity, profile, recorded.then_some(BENCH_RING));
                let writer = sink.map(drain_on_a_thread);
                let mut seq = 0u16;
                b.iter_batched_ref(
                    || {
                        seq = seq.wrapping_add(1);
                        from_browser_packet(&mut keys, seq, payload)
                    },
                    |(buf, n)| {
                        let out = session.from_browser(Instant::now(), addr(BROWSER), buf, *n);
                        assert!(matches!(out, Ok(Forward::ToPbx { .. })), "{out:?}");
                    },
                    BatchSize::SmallInput,
                );
                drop(session);
                writer_kept_up(writer);
            });
            group.bench_function(BenchmarkId::new(label("RTP to SRTP"), payload), |b| {
                let (mut session, _keys, sink) =
                    call_recorded(&identity, profile, recorded.then_some(BENCH_RING));
                let writer = sink.map(drain_on_a_thread);
                let plain = rtp(1, payload);
                let mut buf = vec![0u8; BUFFER];
                let mut seq = 0u16;
                b.iter(|| {
                    seq = seq.wrapping_add(1);
                    buf[..plain.len()].copy_from_slice(&plain);
                    buf[2..4].copy_from_slice(&seq.to_be_bytes());
                    black_box(
                        session
                            .from_pbx(Instant::now(), 0, addr(PBX), false, &mut buf, plain.len())
                            .expect("forwarded"),
                    );
                });
                drop(session);
                writer_kept_up(writer);
            });
        }
        group.finish();
    }
}

/// Allocations per packet in steady state, both ways, and the heap one
/// call's session holds (with the shell's two buffers).
fn footprint() {
    let identity = Identity::generate().expect("identity");
    let runs = PROFILES.iter().flat_map(|p| [(*p, false), (*p, true)]);
    for ((profile, name), recorded) in runs {
        let name = if recorded {
            format!("{name}, recorded")
        } else {
            name.to_owned()
        };
        let region = Region::new(GLOBAL);
        let (mut session, mut keys, mut sink) =
            call_recorded(&identity, profile, recorded.then_some(record::RING_BYTES));
        let held = region.change();
        let per_call = held.bytes_allocated.saturating_sub(held.bytes_deallocated) + 2 * BUFFER;
        // Warm: the first packet each way sets the stream's state up.
        let packets = 10_000u16;
        let inputs: Vec<(Vec<u8>, usize)> = (1..=packets)
            .map(|seq| from_browser_packet(&mut keys, seq, 160))
            .collect();
        let plain = rtp(1, 160);
        let mut out = vec![0u8; BUFFER];
        let mut inputs = inputs.into_iter();
        let mut first = inputs.next().expect("a packet");
        let _ = session.from_browser(Instant::now(), addr(BROWSER), &mut first.0, first.1);
        out[..plain.len()].copy_from_slice(&plain);
        let _ = session.from_pbx(Instant::now(), 0, addr(PBX), false, &mut out, plain.len());
        let region = Region::new(GLOBAL);
        for (mut buf, n) in inputs {
            let _ = black_box(session.from_browser(Instant::now(), addr(BROWSER), &mut buf, n));
            out[..plain.len()].copy_from_slice(&plain);
            let _ = black_box(session.from_pbx(
                Instant::now(),
                0,
                addr(PBX),
                false,
                &mut out,
                plain.len(),
            ));
            if let Some(sink) = sink.as_mut() {
                drain(sink);
            }
        }
        let stats = region.change();
        println!(
            "{name}: {} allocations for {} packets each way in steady state; one call's session holds {:.1} KiB (with the shell's buffers)",
            stats.allocations,
            packets - 1,
            per_call as f64 / 1024.0
        );
        assert_eq!(stats.allocations, 0, "the media hot path must not allocate");
        assert_eq!(session.counters.to_pbx, u64::from(packets));
    }
}

criterion_group!(benches, media);

fn main() {
    footprint();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
