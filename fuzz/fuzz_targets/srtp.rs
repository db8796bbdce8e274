//! The relay's SRTP (`sipline_relay::media::srtp::Context`), both
//! profiles: unprotect on arbitrary buffers, protect on arbitrary ones,
//! and round trips of well-formed RTP and RTCP.
//!
//! Oracles, beyond "no panic":
//! - protect then unprotect (same keys, packets in order per SSRC) gives
//!   the packet back, byte for byte, RTP and RTCP;
//! - any one bit flipped in between is refused;
//! - lengths: protect adds exactly the profile's overhead, unprotect takes
//!   it off;
//! - protect fails only with `TooManyStreams`, and only for a 17th SSRC.

#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sipline_relay::media::srtp::{Context, Profile, SrtpError};

/// Most SSRCs a context tracks.
const MAX_STREAMS: usize = 16;
/// The SSRCs round trips use: more than a context tracks.
const SSRCS: u32 = 20;

/// A well-formed RTP packet, in order on its SSRC.
#[derive(Arbitrary, Debug)]
struct Rtp {
    ssrc: u8,
    /// Sequence numbers advance by 1–16 (a few lost); the first is this.
    first_seq: u16,
    step: u8,
    marker: bool,
    payload_type: u8,
    timestamp: u32,
    csrcs: Vec<u32>,
    /// Header extension: profile and 32-bit words.
    extension: Option<(u16, Vec<u32>)>,
    payload: Vec<u8>,
    /// A bit to flip in the protected packet, tried first.
    tamper: Option<(u16, u8)>,
}

/// A well-formed RTCP packet.
#[derive(Arbitrary, Debug)]
struct Rtcp {
    ssrc: u8,
    count: u8,
    packet_type: u8,
    body: Vec<u8>,
    tamper: Option<(u16, u8)>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    UnprotectRtp(Vec<u8>),
    UnprotectRtcp(Vec<u8>),
    /// Protect of an arbitrary buffer: `len` bytes of it are the packet.
    Protect {
        rtcp: bool,
        bytes: Vec<u8>,
        len: u16,
    },
    Rtp(Rtp),
    Rtcp(Rtcp),
}

#[derive(Arbitrary, Debug)]
struct Input {
    gcm: bool,
    key: [u8; 16],
    salt: [u8; 14],
    ops: Vec<Op>,
}

/// One of the round trips' SSRCs.
fn ssrc(n: u8) -> u32 {
    0x5eed_0000 + u32::from(n) % SSRCS
}

/// Sender and receiver of the round trips, in step; the arbitrary
/// buffers go through contexts of their own, so that they cannot put the
/// pair out of step.
struct Pair {
    tx: Context,
    rx: Context,
    overhead_rtp: usize,
    overhead_rtcp: usize,
    /// The last sequence number sent per SSRC.
    seq: HashMap<u32, u16>,
    /// The SSRCs both contexts track.
    streams: Vec<u32>,
}

impl Pair {
    /// Protects `packet` with room for its overhead; `None` when the
    /// sender tracks as many SSRCs as it may and this one is new.
    fn protect(&mut self, packet: &[u8], ssrc: u32, rtcp: bool) -> Option<Vec<u8>> {
        let overhead = if rtcp {
            self.overhead_rtcp
        } else {
            self.overhead_rtp
        };
        let mut buf = packet.to_vec();
        buf.resize(packet.len() + overhead, 0);
        let result = if rtcp {
            self.tx.protect_rtcp(&mut buf, packet.len())
        } else {
            self.tx.protect_rtp(&mut buf, packet.len())
        };
        let full = self.streams.len() == MAX_STREAMS && !self.streams.contains(&ssrc);
        match result {
            Ok(n) => {
                assert!(!full, "a 17th SSRC protected");
                assert_eq!(n, packet.len() + overhead, "protect adds the overhead");
                if !self.streams.contains(&ssrc) {
                    self.streams.push(ssrc);
                }
                Some(buf)
            }
            Err(SrtpError::TooManyStreams) if full => None,
            Err(e) => panic!("protect refused a well-formed packet: {e}"),
        }
    }

    /// Unprotects `protected`, first with one bit flipped; both must come
    /// out as they should.
    fn round_trip(
        &mut self,
        packet: &[u8],
        mut protected: Vec<u8>,
        tamper: Option<(u16, u8)>,
        rtcp: bool,
    ) {
        let unprotect = |rx: &mut Context, buf: &mut [u8]| {
            if rtcp {
                rx.unprotect_rtcp(buf)
            } else {
                rx.unprotect_rtp(buf)
            }
        };
        if let Some((at, bit)) = tamper {
            let mut forged = protected.clone();
            let at = usize::from(at) % forged.len();
            forged[at] ^= 1 << (bit % 8);
            let result = unprotect(&mut self.rx, &mut forged);
            assert!(
                result.is_err(),
                "a packet with a bit flipped was accepted: {result:?}"
            );
        }
        match unprotect(&mut self.rx, &mut protected) {
            Ok(n) => {
                assert_eq!(n, packet.len(), "unprotect takes the overhead off");
                assert!(
                    protected[..n] == *packet,
                    "the round trip changed the packet"
                );
            }
            Err(e) => panic!("unprotect refused what protect wrote, in order: {e}"),
        }
    }
}

fuzz_target!(|input: Input| {
    let profile = if input.gcm {
        Profile::AeadAes128Gcm
    } else {
        Profile::Aes128CmHmacSha1_80
    };
    let salt = &input.salt[..profile.salt_len()];
    let context = || Context::new(profile, &input.key, salt).expect("keys of the right length");
    assert_eq!(
        Context::new(profile, &input.key[..15], salt).err(),
        Some(SrtpError::BadKey)
    );
    let mut pair = Pair {
        tx: context(),
        rx: context(),
        overhead_rtp: profile.rtp_overhead(),
        overhead_rtcp: profile.rtcp_overhead(),
        seq: HashMap::new(),
        streams: Vec::new(),
    };
    let (mut scratch_tx, mut scratch_rx) = (context(), context());
    for op in &input.ops {
        match op {
            Op::UnprotectRtp(bytes) => {
                let mut buf = bytes.clone();
                if let Ok(n) = scratch_rx.unprotect_rtp(&mut buf) {
                    assert_eq!(n + profile.rtp_overhead(), bytes.len());
                }
            }
            Op::UnprotectRtcp(bytes) => {
                let mut buf = bytes.clone();
                if let Ok(n) = scratch_rx.unprotect_rtcp(&mut buf) {
                    assert_eq!(n + profile.rtcp_overhead(), bytes.len());
                }
            }
            Op::Protect { rtcp, bytes, len } => {
                let mut buf = bytes.clone();
                let len = usize::from(*len);
                let result = if *rtcp {
                    scratch_tx.protect_rtcp(&mut buf, len)
                } else {
                    scratch_tx.protect_rtp(&mut buf, len)
                };
                if let Ok(n) = result {
                    assert!(n <= buf.len(), "protect wrote past the buffer");
                }
            }
            Op::Rtp(p) => {
                let ssrc = ssrc(p.ssrc);
                let seq = match pair.seq.get(&ssrc) {
                    Some(last) => last.wrapping_add(u16::from(p.step % 16) + 1),
                    None => p.first_seq,
                };
                let csrcs = &p.csrcs[..p.csrcs.len().min(15)];
                let mut packet = vec![
                    0x80 | (u8::from(p.extension.is_some()) << 4) | csrcs.len() as u8,
                    (u8::from(p.marker) << 7) | (p.payload_type & 0x7f),
                ];
                packet.extend_from_slice(&seq.to_be_bytes());
                packet.extend_from_slice(&p.timestamp.to_be_bytes());
                packet.extend_from_slice(&ssrc.to_be_bytes());
                for c in csrcs {
                    packet.extend_from_slice(&c.to_be_bytes());
                }
                if let Some((profile_id, words)) = &p.extension {
                    let words = &words[..words.len().min(64)];
                    packet.extend_from_slice(&profile_id.to_be_bytes());
                    packet.extend_from_slice(&(words.len() as u16).to_be_bytes());
                    for w in words {
                        packet.extend_from_slice(&w.to_be_bytes());
                    }
                }
                packet.extend_from_slice(&p.payload);
                if let Some(protected) = pair.protect(&packet, ssrc, false) {
                    pair.seq.insert(ssrc, seq);
                    pair.round_trip(&packet, protected, p.tamper, false);
                }
            }
            Op::Rtcp(p) => {
                let ssrc = ssrc(p.ssrc);
                let mut packet = vec![0x80 | (p.count & 0x1f), p.packet_type];
                let words = (4 + p.body.len()).div_ceil(4);
                packet.extend_from_slice(&u16::try_from(words).unwrap_or(u16::MAX).to_be_bytes());
                packet.extend_from_slice(&ssrc.to_be_bytes());
                packet.extend_from_slice(&p.body);
                if let Some(protected) = pair.protect(&packet, ssrc, true) {
                    pair.round_trip(&packet, protected, p.tamper, true);
                }
            }
        }
    }
});
