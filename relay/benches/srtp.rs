//! The media hot path's crypto: in-place SRTP against webrtc-srtp, per
//! packet, for both profiles and two payload sizes (an Opus/G.711 audio
//! frame and a full video packet), and the allocations each makes.
//! `cargo bench -p sipline-relay --bench srtp`.

use std::alloc::System;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use sipline_relay::media::srtp::{Context, Profile};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use webrtc_srtp::context::Context as Oracle;
use webrtc_srtp::protection_profile::ProtectionProfile;

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const KEY: [u8; 16] = *b"0123456789abcdef";
const SALT: [u8; 14] = *b"sipline-salt14";
const PROFILES: [(Profile, ProtectionProfile, &str); 2] = [
    (
        Profile::Aes128CmHmacSha1_80,
        ProtectionProfile::Aes128CmHmacSha1_80,
        "AES_CM_128_HMAC_SHA1_80",
    ),
    (
        Profile::AeadAes128Gcm,
        ProtectionProfile::AeadAes128Gcm,
        "AEAD_AES_128_GCM",
    ),
];

fn rtp(seq: u16, payload: usize) -> Vec<u8> {
    let mut p = vec![0x80, 111];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 960).to_be_bytes());
    p.extend_from_slice(&0xcafe_f00du32.to_be_bytes());
    p.resize(12 + payload, 0x5a);
    p
}

fn contexts(p: Profile) -> (Context, Context) {
    let salt = &SALT[..p.salt_len()];
    (
        Context::new(p, &KEY, salt).expect("keys"),
        Context::new(p, &KEY, salt).expect("keys"),
    )
}

/// Protect then unprotect one packet in one buffer: the relay's two
/// transforms of a packet that crosses it, with no copy but the refill.
fn round_trip(tx: &mut Context, rx: &mut Context, buf: &mut [u8], plain: &[u8], seq: u16) {
    buf[..plain.len()].copy_from_slice(plain);
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    let n = tx.protect_rtp(buf, plain.len()).expect("protect");
    let m = rx.unprotect_rtp(&mut buf[..n]).expect("unprotect");
    black_box(m);
}

fn srtp(c: &mut Criterion) {
    for (ours, theirs, name) in PROFILES {
        let mut group = c.benchmark_group(format!("srtp {name}"));
        for payload in [160usize, 1200] {
            group.throughput(Throughput::Elements(1));
            let plain = rtp(0, payload);
            group.bench_with_input(
                BenchmarkId::new("in-place protect", payload),
                &plain,
                |b, plain| {
                    let (mut tx, _) = contexts(ours);
                    let mut buf = vec![0u8; plain.len() + 16];
                    let mut seq = 0u16;
                    b.iter(|| {
                        buf[..plain.len()].copy_from_slice(plain);
                        buf[2..4].copy_from_slice(&seq.to_be_bytes());
                        seq = seq.wrapping_add(1);
                        black_box(tx.protect_rtp(&mut buf, plain.len()).expect("protect"))
                    });
                },
            );
            group.bench_with_input(
                BenchmarkId::new("in-place protect+unprotect", payload),
                &plain,
                |b, plain| {
                    let (mut tx, mut rx) = contexts(ours);
                    let mut buf = vec![0u8; plain.len() + 16];
                    let mut seq = 0u16;
                    b.iter(|| {
                        round_trip(&mut tx, &mut rx, &mut buf, plain, seq);
                        seq = seq.wrapping_add(1);
                    });
                },
            );
            group.bench_with_input(
                BenchmarkId::new("webrtc-srtp encrypt", payload),
                &plain,
                |b, plain| {
                    let mut tx = Oracle::new(&KEY, &SALT[..ours.salt_len()], theirs, None, None)
                        .expect("keys");
                    let mut p = plain.clone();
                    let mut seq = 0u16;
                    b.iter(|| {
                        p[2..4].copy_from_slice(&seq.to_be_bytes());
                        seq = seq.wrapping_add(1);
                        black_box(tx.encrypt_rtp(&p).expect("encrypt"))
                    });
                },
            );
            group.bench_with_input(
                BenchmarkId::new("webrtc-srtp encrypt+decrypt", payload),
                &plain,
                |b, plain| {
                    let mut tx = Oracle::new(&KEY, &SALT[..ours.salt_len()], theirs, None, None)
                        .expect("keys");
                    let mut rx = Oracle::new(&KEY, &SALT[..ours.salt_len()], theirs, None, None)
                        .expect("keys");
                    let mut p = plain.clone();
                    let mut seq = 0u16;
                    b.iter(|| {
                        p[2..4].copy_from_slice(&seq.to_be_bytes());
                        seq = seq.wrapping_add(1);
                        let e = tx.encrypt_rtp(&p).expect("encrypt");
                        black_box(rx.decrypt_rtp(&e).expect("decrypt"))
                    });
                },
            );
        }
        group.finish();
    }
}

/// Allocations per packet in steady state (after the SSRC's state exists).
fn allocations() {
    for (ours, theirs, name) in PROFILES {
        let (mut tx, mut rx) = contexts(ours);
        let plain = rtp(0, 160);
        let mut buf = vec![0u8; plain.len() + 16];
        round_trip(&mut tx, &mut rx, &mut buf, &plain, 0);
        let packets = 10_000u16;
        let region = Region::new(GLOBAL);
        for seq in 1..=packets {
            round_trip(&mut tx, &mut rx, &mut buf, &plain, seq);
        }
        let ours_allocs = region.change().allocations as f64 / f64::from(packets);

        let salt = &SALT[..ours.salt_len()];
        let mut otx = Oracle::new(&KEY, salt, theirs, None, None).expect("keys");
        let mut orx = Oracle::new(&KEY, salt, theirs, None, None).expect("keys");
        let mut p = plain.clone();
        let region = Region::new(GLOBAL);
        for seq in 1..=packets {
            p[2..4].copy_from_slice(&seq.to_be_bytes());
            let e = otx.encrypt_rtp(&p).expect("encrypt");
            black_box(orx.decrypt_rtp(&e).expect("decrypt"));
        }
        let theirs_allocs = region.change().allocations as f64 / f64::from(packets);
        println!(
            "allocations per packet, protect+unprotect, {name}: in-place {ours_allocs:.2}, webrtc-srtp {theirs_allocs:.2}"
        );
        assert_eq!(ours_allocs, 0.0, "the hot path must not allocate");
    }
}

criterion_group!(benches, srtp);

fn main() {
    allocations();
    benches();
    criterion::Criterion::default()
        .configure_from_args()
        .final_summary();
}
