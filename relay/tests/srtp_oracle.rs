//! The in-place SRTP transform against webrtc-srtp, the oracle: both
//! profiles, RTP and RTCP, both directions, byte for byte, across a
//! sequence-number wrap; forged and replayed packets refused.

use proptest::prelude::*;
use sipline_relay::media::srtp::{Context, Profile, SrtpError};
use webrtc_srtp::context::Context as Oracle;
use webrtc_srtp::protection_profile::ProtectionProfile;

const KEY: [u8; 16] = *b"0123456789abcdef";
const SALT: [u8; 14] = *b"sipline-salt14";

fn pair(profile: Profile) -> (Context, Oracle) {
    let salt = &SALT[..profile.salt_len()];
    let theirs = match profile {
        Profile::Aes128CmHmacSha1_80 => ProtectionProfile::Aes128CmHmacSha1_80,
        Profile::AeadAes128Gcm => ProtectionProfile::AeadAes128Gcm,
    };
    let ours = Context::new(profile, &KEY, salt).expect("keys");
    let oracle = Oracle::new(&KEY, salt, theirs, None, None).expect("oracle keys");
    (ours, oracle)
}

fn rtp(seq: u16, ts: u32, ssrc: u32, payload: &[u8], csrc: bool, ext: bool) -> Vec<u8> {
    let mut p = vec![0x80 | u8::from(csrc) | if ext { 0x10 } else { 0 }, 111];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    if csrc {
        p.extend_from_slice(&0x1122_3344u32.to_be_bytes());
    }
    if ext {
        p.extend_from_slice(&[0xbe, 0xde, 0x00, 0x01, 0x10, 0xff, 0x00, 0x00]);
    }
    p.extend_from_slice(payload);
    p
}

fn rtcp_sr(ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 200, 0x00, 0x06];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[7u8; 20]);
    p
}

fn protect_rtp(ctx: &mut Context, packet: &[u8]) -> Vec<u8> {
    let mut buf = packet.to_vec();
    buf.resize(packet.len() + ctx.profile().rtp_overhead(), 0);
    let n = ctx.protect_rtp(&mut buf, packet.len()).expect("protect");
    buf.truncate(n);
    buf
}

fn protect_rtcp(ctx: &mut Context, packet: &[u8]) -> Vec<u8> {
    let mut buf = packet.to_vec();
    buf.resize(packet.len() + ctx.profile().rtcp_overhead(), 0);
    let n = ctx.protect_rtcp(&mut buf, packet.len()).expect("protect");
    buf.truncate(n);
    buf
}

#[test]
fn agrees_with_webrtc_srtp_both_ways_across_a_wrap() {
    for profile in [Profile::Aes128CmHmacSha1_80, Profile::AeadAes128Gcm] {
        let (mut ours_tx, mut oracle_tx) = pair(profile);
        let (mut ours_rx, mut oracle_rx) = pair(profile);
        // 65530 … 65535, 0 … 9: the rollover counter must tick.
        for (n, seq) in (65530u32..65546).map(|s| s as u16).enumerate() {
            let plain = rtp(
                seq,
                160 * n as u32,
                0xcafe_f00d,
                &[n as u8; 160],
                n % 3 == 0,
                n % 4 == 0,
            );
            let mine = protect_rtp(&mut ours_tx, &plain);
            let theirs = oracle_tx.encrypt_rtp(&plain).expect("oracle encrypts");
            assert_eq!(
                mine,
                theirs.to_vec(),
                "{profile:?} seq {seq}: same SRTP bytes"
            );
            let mut buf = theirs.to_vec();
            let n = ours_rx.unprotect_rtp(&mut buf).expect("we decrypt theirs");
            assert_eq!(&buf[..n], &plain[..]);
            let back = oracle_rx.decrypt_rtp(&mine).expect("they decrypt ours");
            assert_eq!(back.to_vec(), plain);
        }
        for _ in 0..3 {
            let sr = rtcp_sr(0xcafe_f00d);
            let mine = protect_rtcp(&mut ours_tx, &sr);
            let theirs = oracle_tx.encrypt_rtcp(&sr).expect("oracle encrypts");
            assert_eq!(mine, theirs.to_vec(), "{profile:?}: same SRTCP bytes");
            let mut buf = theirs.to_vec();
            let n = ours_rx.unprotect_rtcp(&mut buf).expect("we decrypt theirs");
            assert_eq!(&buf[..n], &sr[..]);
        }
    }
}

#[test]
fn forged_damaged_and_replayed_packets_are_refused() {
    for profile in [Profile::Aes128CmHmacSha1_80, Profile::AeadAes128Gcm] {
        let (mut tx, _) = pair(profile);
        let (mut rx, _) = pair(profile);
        let packet = protect_rtp(&mut tx, &rtp(1, 0, 7, &[1; 40], false, false));
        let mut flipped = packet.clone();
        flipped[20] ^= 1;
        assert_eq!(
            rx.unprotect_rtp(&mut flipped),
            Err(SrtpError::AuthFailed),
            "{profile:?}"
        );
        let mut ok = packet.clone();
        assert!(rx.unprotect_rtp(&mut ok).is_ok());
        let mut again = packet.clone();
        assert_eq!(rx.unprotect_rtp(&mut again), Err(SrtpError::Replay));
        let (mut other_keys, _) = {
            let c = Context::new(profile, b"fedcba9876543210", &SALT[..profile.salt_len()])
                .expect("keys");
            (c, ())
        };
        let mut foreign = protect_rtp(&mut other_keys, &rtp(2, 0, 7, &[1; 40], false, false));
        assert_eq!(rx.unprotect_rtp(&mut foreign), Err(SrtpError::AuthFailed));
        assert_eq!(rx.unprotect_rtp(&mut [0u8; 5]), Err(SrtpError::Malformed));
        let mut no_room = rtp(3, 0, 7, &[0; 10], false, false);
        let len = no_room.len();
        assert_eq!(tx.protect_rtp(&mut no_room, len), Err(SrtpError::NoRoom));
    }
}

proptest! {
    /// Whatever arrives, unprotect answers without panicking.
    #[test]
    fn unprotect_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300), gcm in any::<bool>()) {
        let profile = if gcm { Profile::AeadAes128Gcm } else { Profile::Aes128CmHmacSha1_80 };
        let (mut rx, _) = pair(profile);
        let _ = rx.unprotect_rtp(&mut bytes.clone());
        let _ = rx.unprotect_rtcp(&mut bytes.clone());
    }
}
