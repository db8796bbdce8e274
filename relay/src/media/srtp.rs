//! SRTP and SRTCP in place (RFC 3711, and RFC 7714 for AES-GCM): protect
//! and unprotect rewrite the packet in the caller's buffer and return its
//! new length. Nothing allocates per packet: the ciphers are keyed once, the
//! per-packet state is a counter block, and the per-SSRC state lives in a
//! small vector that grows only when a new SSRC appears.
//!
//! webrtc-srtp is the test oracle: the tests check byte-for-byte agreement
//! in both directions, and the benchmark compares the two.

use aes::Aes128;
use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use aes_gcm::aead::AeadInOut;
use aes_gcm::aead::Tag;
use aes_gcm::{Aes128Gcm, Nonce};
use ctr::Ctr128BE;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The SRTP protection profiles negotiated over DTLS (RFC 5764, RFC 7714).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `SRTP_AES128_CM_HMAC_SHA1_80` (0x0001): AES counter mode, 80-bit
    /// HMAC-SHA1 tag.
    Aes128CmHmacSha1_80,
    /// `SRTP_AEAD_AES_128_GCM` (0x0007): AES-GCM, 128-bit tag.
    AeadAes128Gcm,
}

impl Profile {
    /// The profile for a DTLS-SRTP protection profile id.
    pub fn from_id(id: u16) -> Option<Profile> {
        match id {
            0x0001 => Some(Profile::Aes128CmHmacSha1_80),
            0x0007 => Some(Profile::AeadAes128Gcm),
            _ => None,
        }
    }

    /// Master key length in bytes.
    pub fn key_len(self) -> usize {
        16
    }

    /// Master salt length in bytes.
    pub fn salt_len(self) -> usize {
        match self {
            Profile::Aes128CmHmacSha1_80 => 14,
            Profile::AeadAes128Gcm => 12,
        }
    }

    /// Bytes protect adds to an RTP packet.
    pub fn rtp_overhead(self) -> usize {
        match self {
            Profile::Aes128CmHmacSha1_80 => 10,
            Profile::AeadAes128Gcm => 16,
        }
    }

    /// Bytes protect adds to an RTCP packet (tag and SRTCP index).
    pub fn rtcp_overhead(self) -> usize {
        self.rtp_overhead() + 4
    }
}

/// Why a packet was not protected or unprotected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SrtpError {
    /// Master key or salt of the wrong length.
    #[error("wrong SRTP master key or salt length")]
    BadKey,
    /// Not an RTP/RTCP packet of version 2, or cut short.
    #[error("malformed RTP/RTCP packet")]
    Malformed,
    /// The buffer has no room for the tag.
    #[error("no room in the buffer for the SRTP tag")]
    NoRoom,
    /// The authentication tag does not match: forged or damaged.
    #[error("SRTP authentication failed")]
    AuthFailed,
    /// A packet already received (or too old to tell).
    #[error("SRTP replay")]
    Replay,
    /// More SSRCs than a call has: state is not made for more.
    #[error("too many SRTP streams")]
    TooManyStreams,
}

/// Most SSRCs one context tracks (audio, video, retransmission, FEC, and
/// changes of SSRC mid-call fit well within).
const MAX_STREAMS: usize = 16;

/// Key-derivation labels (RFC 3711 §4.3.2).
const LABEL_RTP_KEY: u8 = 0;
const LABEL_RTP_AUTH: u8 = 1;
const LABEL_RTP_SALT: u8 = 2;
const LABEL_RTCP_KEY: u8 = 3;
const LABEL_RTCP_AUTH: u8 = 4;
const LABEL_RTCP_SALT: u8 = 5;

/// The AES-CM PRF of RFC 3711 §4.3.3 (key derivation rate 0): `out` gets
/// the keystream for the label's key id XOR the master salt.
fn derive(master: &Aes128, salt: &[u8], label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..salt.len()].copy_from_slice(salt);
    iv[7] ^= label;
    out.fill(0);
    keystream(master, iv).apply_keystream(out);
}

/// AES-128 in counter mode from a keyed cipher and a counter block: a copy
/// of the key schedule, no allocation.
fn keystream(aes: &Aes128, iv: [u8; 16]) -> Ctr128BE<Aes128> {
    Ctr128BE::from_core(ctr::CtrCore::inner_iv_init(aes.clone(), &iv.into()))
}

/// One direction-independent set of session keys for RTP or for RTCP.
#[derive(Clone)]
enum Keys {
    Cm {
        aes: Aes128,
        auth: Hmac<Sha1>,
        salt: [u8; 14],
    },
    Gcm {
        aead: Aes128Gcm,
        salt: [u8; 12],
    },
}

impl Keys {
    fn derive(profile: Profile, master: &Aes128, master_salt: &[u8], labels: [u8; 3]) -> Keys {
        let mut key = [0u8; 16];
        derive(master, master_salt, labels[0], &mut key);
        match profile {
            Profile::Aes128CmHmacSha1_80 => {
                let mut auth = [0u8; 20];
                let mut salt = [0u8; 14];
                derive(master, master_salt, labels[1], &mut auth);
                derive(master, master_salt, labels[2], &mut salt);
                Keys::Cm {
                    aes: Aes128::new(&key.into()),
                    auth: <Hmac<Sha1> as KeyInit>::new_from_slice(&auth)
                        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
                    salt,
                }
            }
            Profile::AeadAes128Gcm => {
                let mut salt = [0u8; 12];
                derive(master, master_salt, labels[2], &mut salt);
                Keys::Gcm {
                    aead: Aes128Gcm::new(&key.into()),
                    salt,
                }
            }
        }
    }
}

/// Where a stream's packet index stands, and which recent ones were seen.
#[derive(Clone, Copy, Debug, Default)]
struct Replay {
    /// Highest index accepted.
    top: u64,
    /// Bit i: index `top - i` was accepted.
    seen: u64,
    any: bool,
}

impl Replay {
    fn check(&self, index: u64) -> Result<(), SrtpError> {
        if !self.any || index > self.top {
            return Ok(());
        }
        let age = self.top - index;
        if age >= 64 || self.seen & (1 << age) != 0 {
            return Err(SrtpError::Replay);
        }
        Ok(())
    }

    fn accept(&mut self, index: u64) {
        if !self.any {
            *self = Replay {
                top: index,
                seen: 1,
                any: true,
            };
        } else if index > self.top {
            let shift = index - self.top;
            self.seen = if shift >= 64 { 0 } else { self.seen << shift };
            self.seen |= 1;
            self.top = index;
        } else {
            self.seen |= 1 << (self.top - index);
        }
    }
}

/// Per-SSRC state.
#[derive(Clone, Debug)]
struct Stream {
    ssrc: u32,
    /// Rollover counter and highest sequence number (RFC 3711 §3.3.1).
    roc: u32,
    s_l: u16,
    started: bool,
    rtp: Replay,
    rtcp: Replay,
    /// Last SRTCP index sent. The first packet carries 1, as libsrtp (the
    /// browsers' SRTP) and webrtc-srtp send, not the 0 of RFC 3711 §3.4:
    /// receivers read the index from the packet, and a replay window that
    /// starts at 0 could take a first index 0 for a replay.
    rtcp_out: u32,
}

impl Stream {
    fn new(ssrc: u32) -> Self {
        Self {
            ssrc,
            roc: 0,
            s_l: 0,
            started: false,
            rtp: Replay::default(),
            rtcp: Replay::default(),
            rtcp_out: 0,
        }
    }

    /// The rollover counter a sequence number most likely belongs to
    /// (RFC 3711 §3.3.1).
    fn estimate_roc(&self, seq: u16) -> u32 {
        if !self.started {
            return self.roc;
        }
        if self.s_l < 0x8000 {
            if u32::from(seq) > u32::from(self.s_l) + 0x8000 {
                // Before the first wrap there is nothing earlier: never
                // below zero (a wrapped u32 would desynchronise the stream).
                return self.roc.saturating_sub(1);
            }
        } else if u32::from(seq) + 0x8000 < u32::from(self.s_l) {
            return self.roc.wrapping_add(1);
        }
        self.roc
    }

    fn update(&mut self, roc: u32, seq: u16) {
        if !self.started || roc > self.roc || (roc == self.roc && seq > self.s_l) {
            self.roc = roc;
            self.s_l = seq;
            self.started = true;
        }
    }
}

/// The SRTP contexts of one side of an association: the relay's side of
/// a call toward the browser (keyed by DTLS) or toward the PBX (keyed by
/// SDES), or, in tests and the load generator, the browser's.
#[derive(Debug)]
pub struct SrtpKeys {
    /// The negotiated profile.
    pub profile: Profile,
    /// Protects what this side sends (its own write keys).
    pub outbound: Context,
    /// Unprotects what the other side sends.
    pub inbound: Context,
}

/// What a call's PBX leg is given when its SDES keys change.
#[derive(Debug)]
pub enum LegKeys {
    /// Plain RTP from now on.
    Plain,
    /// New contexts both ways.
    Both(Box<SrtpKeys>),
    /// Only the PBX's key changed: a new context for what it sends; the
    /// relay's own carries on, its rollover counters with it.
    Inbound(Box<Context>),
}

impl LegKeys {
    /// Applies the change to a leg's `slot`. An inbound key for a leg
    /// without keys cannot come (the relay's key would be new too) and is
    /// ignored.
    pub fn apply_to(self, slot: &mut Option<Box<SrtpKeys>>) {
        match self {
            LegKeys::Plain => *slot = None,
            LegKeys::Both(keys) => *slot = Some(keys),
            LegKeys::Inbound(context) => {
                if let Some(keys) = slot.as_deref_mut() {
                    keys.inbound = *context;
                }
            }
        }
    }
}

/// The SRTP state of one direction of one call: protect for what the relay
/// sends, unprotect for what it receives (use two contexts per call).
#[derive(Clone)]
pub struct Context {
    profile: Profile,
    rtp: Keys,
    rtcp: Keys,
    streams: Vec<Stream>,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("profile", &self.profile)
            .field("streams", &self.streams.len())
            .finish_non_exhaustive()
    }
}

/// Length of an RTP header (CSRCs and extension included), checked.
fn rtp_header_len(p: &[u8]) -> Result<usize, SrtpError> {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return Err(SrtpError::Malformed);
    }
    let mut len = 12 + 4 * usize::from(p[0] & 0x0f);
    if p[0] & 0x10 != 0 {
        let ext = p.get(len + 2..len + 4).ok_or(SrtpError::Malformed)?;
        len += 4 + 4 * usize::from(u16::from_be_bytes([ext[0], ext[1]]));
    }
    if len > p.len() {
        return Err(SrtpError::Malformed);
    }
    Ok(len)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Constant-time comparison for authentication tags.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Context {
    /// A context from the master key and salt exported by DTLS.
    pub fn new(
        profile: Profile,
        master_key: &[u8],
        master_salt: &[u8],
    ) -> Result<Context, SrtpError> {
        if master_key.len() != profile.key_len() || master_salt.len() != profile.salt_len() {
            return Err(SrtpError::BadKey);
        }
        let master = Aes128::new_from_slice(master_key).map_err(|_| SrtpError::BadKey)?;
        Ok(Context {
            profile,
            rtp: Keys::derive(
                profile,
                &master,
                master_salt,
                [LABEL_RTP_KEY, LABEL_RTP_AUTH, LABEL_RTP_SALT],
            ),
            rtcp: Keys::derive(
                profile,
                &master,
                master_salt,
                [LABEL_RTCP_KEY, LABEL_RTCP_AUTH, LABEL_RTCP_SALT],
            ),
            streams: Vec::with_capacity(4),
        })
    }

    /// The profile in use.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The state of `ssrc`, made if new and room is left.
    fn stream(&mut self, ssrc: u32) -> Result<&mut Stream, SrtpError> {
        let i = match self.streams.iter().position(|s| s.ssrc == ssrc) {
            Some(i) => i,
            None if self.streams.len() < MAX_STREAMS => {
                self.streams.push(Stream::new(ssrc));
                self.streams.len() - 1
            }
            None => return Err(SrtpError::TooManyStreams),
        };
        Ok(&mut self.streams[i])
    }

    /// The state of `ssrc` for a check, without keeping anything: an
    /// unauthenticated packet must not make state (a flood of random SSRCs
    /// would grow it without bound).
    fn peek(&self, ssrc: u32) -> Stream {
        self.streams
            .iter()
            .find(|s| s.ssrc == ssrc)
            .cloned()
            .unwrap_or_else(|| Stream::new(ssrc))
    }

    /// Encrypts and authenticates the RTP packet in `buf[..len]`; `buf` must
    /// have [`Profile::rtp_overhead`] bytes of room after it. Returns the
    /// SRTP packet's length.
    pub fn protect_rtp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let overhead = self.profile.rtp_overhead();
        if buf.len() < len + overhead {
            return Err(SrtpError::NoRoom);
        }
        let header = rtp_header_len(&buf[..len])?;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = be32(&buf[8..12]);
        let stream = self.stream(ssrc)?;
        let roc = stream.estimate_roc(seq);
        stream.update(roc, seq);
        match &self.rtp {
            Keys::Cm { aes, auth, salt } => {
                let iv = cm_iv(salt, ssrc, (u64::from(roc) << 16) | u64::from(seq));
                keystream(aes, iv).apply_keystream(&mut buf[header..len]);
                let mut mac = auth.clone();
                mac.update(&buf[..len]);
                mac.update(&roc.to_be_bytes());
                let tag = mac.finalize().into_bytes();
                buf[len..len + 10].copy_from_slice(&tag[..10]);
            }
            Keys::Gcm { aead, salt } => {
                let nonce = gcm_rtp_iv(salt, ssrc, roc, seq);
                let (aad, rest) = buf.split_at_mut(header);
                let tag = aead
                    .encrypt_inout_detached(&nonce, aad, (&mut rest[..len - header]).into())
                    .map_err(|_| SrtpError::Malformed)?;
                buf[len..len + 16].copy_from_slice(tag.as_slice());
            }
        }
        Ok(len + overhead)
    }

    /// Authenticates and decrypts the SRTP packet in `buf` in place;
    /// returns the RTP packet's length. Forged, damaged and replayed
    /// packets are refused.
    pub fn unprotect_rtp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let overhead = self.profile.rtp_overhead();
        let len = buf
            .len()
            .checked_sub(overhead)
            .ok_or(SrtpError::Malformed)?;
        let header = rtp_header_len(&buf[..len])?;
        let seq = u16::from_be_bytes([buf[2], buf[3]]);
        let ssrc = be32(&buf[8..12]);
        let (roc, index) = {
            let stream = self.peek(ssrc);
            let roc = stream.estimate_roc(seq);
            let index = (u64::from(roc) << 16) | u64::from(seq);
            stream.rtp.check(index)?;
            (roc, index)
        };
        match &self.rtp {
            Keys::Cm { aes, auth, salt } => {
                let mut mac = auth.clone();
                mac.update(&buf[..len]);
                mac.update(&roc.to_be_bytes());
                let tag = mac.finalize().into_bytes();
                if !same(&tag[..10], &buf[len..]) {
                    return Err(SrtpError::AuthFailed);
                }
                let iv = cm_iv(salt, ssrc, index);
                keystream(aes, iv).apply_keystream(&mut buf[header..len]);
            }
            Keys::Gcm { aead, salt } => {
                let nonce = gcm_rtp_iv(salt, ssrc, roc, seq);
                let (aad, rest) = buf.split_at_mut(header);
                let (body, tag) = rest.split_at_mut(len - header);
                let tag = Tag::<Aes128Gcm>::try_from(&*tag).map_err(|_| SrtpError::Malformed)?;
                aead.decrypt_inout_detached(&nonce, aad, body.into(), &tag)
                    .map_err(|_| SrtpError::AuthFailed)?;
            }
        }
        let stream = self.stream(ssrc)?;
        stream.rtp.accept(index);
        stream.update(roc, seq);
        Ok(len)
    }

    /// Encrypts and authenticates the RTCP packet in `buf[..len]`; `buf`
    /// must have [`Profile::rtcp_overhead`] bytes of room after it.
    pub fn protect_rtcp(&mut self, buf: &mut [u8], len: usize) -> Result<usize, SrtpError> {
        let overhead = self.profile.rtcp_overhead();
        if buf.len() < len + overhead {
            return Err(SrtpError::NoRoom);
        }
        if len < 8 || buf[0] >> 6 != 2 {
            return Err(SrtpError::Malformed);
        }
        let ssrc = be32(&buf[4..8]);
        let stream = self.stream(ssrc)?;
        stream.rtcp_out = stream.rtcp_out.wrapping_add(1) & 0x7fff_ffff;
        let index = stream.rtcp_out;
        let e_index = (index | 0x8000_0000).to_be_bytes();
        match &self.rtcp {
            Keys::Cm { aes, auth, salt } => {
                let iv = cm_iv(salt, ssrc, u64::from(index));
                keystream(aes, iv).apply_keystream(&mut buf[8..len]);
                buf[len..len + 4].copy_from_slice(&e_index);
                let mut mac = auth.clone();
                mac.update(&buf[..len + 4]);
                let tag = mac.finalize().into_bytes();
                buf[len + 4..len + 14].copy_from_slice(&tag[..10]);
            }
            Keys::Gcm { aead, salt } => {
                let nonce = gcm_rtcp_iv(salt, ssrc, index);
                let (head, rest) = buf.split_at_mut(8);
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(head);
                aad[8..].copy_from_slice(&e_index);
                let tag = aead
                    .encrypt_inout_detached(&nonce, &aad, (&mut rest[..len - 8]).into())
                    .map_err(|_| SrtpError::Malformed)?;
                buf[len..len + 16].copy_from_slice(tag.as_slice());
                buf[len + 16..len + 20].copy_from_slice(&e_index);
            }
        }
        Ok(len + overhead)
    }

    /// Authenticates and decrypts the SRTCP packet in `buf` in place;
    /// returns the RTCP packet's length.
    pub fn unprotect_rtcp(&mut self, buf: &mut [u8]) -> Result<usize, SrtpError> {
        let overhead = self.profile.rtcp_overhead();
        let len = buf
            .len()
            .checked_sub(overhead)
            .ok_or(SrtpError::Malformed)?;
        if len < 8 || buf[0] >> 6 != 2 {
            return Err(SrtpError::Malformed);
        }
        let ssrc = be32(&buf[4..8]);
        let e_index = match self.profile {
            Profile::Aes128CmHmacSha1_80 => be32(&buf[len..len + 4]),
            Profile::AeadAes128Gcm => be32(&buf[len + 16..len + 20]),
        };
        let encrypted = e_index & 0x8000_0000 != 0;
        let index = e_index & 0x7fff_ffff;
        self.peek(ssrc).rtcp.check(u64::from(index))?;
        match &self.rtcp {
            Keys::Cm { aes, auth, salt } => {
                let mut mac = auth.clone();
                mac.update(&buf[..len + 4]);
                let tag = mac.finalize().into_bytes();
                if !same(&tag[..10], &buf[len + 4..]) {
                    return Err(SrtpError::AuthFailed);
                }
                if encrypted {
                    let iv = cm_iv(salt, ssrc, u64::from(index));
                    keystream(aes, iv).apply_keystream(&mut buf[8..len]);
                }
            }
            Keys::Gcm { aead, salt } => {
                if !encrypted {
                    // RFC 7714 allows unencrypted SRTCP; no peer here sends
                    // it, and accepting it would need another code path.
                    return Err(SrtpError::Malformed);
                }
                let nonce = gcm_rtcp_iv(salt, ssrc, index);
                let mut aad = [0u8; 12];
                aad[..8].copy_from_slice(&buf[..8]);
                aad[8..].copy_from_slice(&e_index.to_be_bytes());
                let (_, rest) = buf.split_at_mut(8);
                let (body, tail) = rest.split_at_mut(len - 8);
                let tag =
                    Tag::<Aes128Gcm>::try_from(&tail[..16]).map_err(|_| SrtpError::Malformed)?;
                aead.decrypt_inout_detached(&nonce, &aad, body.into(), &tag)
                    .map_err(|_| SrtpError::AuthFailed)?;
            }
        }
        self.stream(ssrc)?.rtcp.accept(u64::from(index));
        Ok(len)
    }
}

/// AES-CM IV (RFC 3711 §4.1.1): salt·2^16 ⊕ SSRC·2^64 ⊕ index·2^16.
fn cm_iv(salt: &[u8; 14], ssrc: u32, index: u64) -> [u8; 16] {
    let mut iv = [0u8; 16];
    iv[..14].copy_from_slice(salt);
    for (b, s) in iv[4..8].iter_mut().zip(ssrc.to_be_bytes()) {
        *b ^= s;
    }
    for (b, s) in iv[8..14].iter_mut().zip(&index.to_be_bytes()[2..]) {
        *b ^= s;
    }
    iv
}

/// AES-GCM SRTP IV (RFC 7714 §8.1): 00 00 ‖ SSRC ‖ ROC ‖ SEQ, ⊕ salt.
fn gcm_rtp_iv(salt: &[u8; 12], ssrc: u32, roc: u32, seq: u16) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[6..10].copy_from_slice(&roc.to_be_bytes());
    iv[10..12].copy_from_slice(&seq.to_be_bytes());
    for (b, s) in iv.iter_mut().zip(salt) {
        *b ^= s;
    }
    iv.into()
}

/// AES-GCM SRTCP IV (RFC 7714 §9.1): 00 00 ‖ SSRC ‖ 00 00 ‖ index, ⊕ salt.
fn gcm_rtcp_iv(salt: &[u8; 12], ssrc: u32, index: u32) -> Nonce<aes_gcm::aead::consts::U12> {
    let mut iv = [0u8; 12];
    iv[2..6].copy_from_slice(&ssrc.to_be_bytes());
    iv[8..12].copy_from_slice(&index.to_be_bytes());
    for (b, s) in iv.iter_mut().zip(salt) {
        *b ^= s;
    }
    iv.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn rfc3711_b3_key_derivation() {
        let master = Aes128::new_from_slice(&hex("E1F97A0D3E018BE0D64FA32C06DE4139")).expect("key");
        let salt = hex("0EC675AD498AFEEBB6960B3AABE6");
        let mut key = [0u8; 16];
        derive(&master, &salt, LABEL_RTP_KEY, &mut key);
        assert_eq!(key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut session_salt = [0u8; 14];
        derive(&master, &salt, LABEL_RTP_SALT, &mut session_salt);
        assert_eq!(session_salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        let mut auth = [0u8; 20];
        derive(&master, &salt, LABEL_RTP_AUTH, &mut auth);
        assert_eq!(
            auth.to_vec(),
            hex("CEBE321F6FF7716B6FD4AB49AF256A156D38BAA4")
        );
    }

    #[test]
    fn replay_window() {
        let mut r = Replay::default();
        for i in [10, 12, 11] {
            assert!(r.check(i).is_ok());
            r.accept(i);
        }
        assert_eq!(r.check(11), Err(SrtpError::Replay));
        r.accept(200);
        assert_eq!(r.check(100), Err(SrtpError::Replay), "too old to tell");
        assert!(r.check(199).is_ok());
    }

    #[test]
    fn before_the_first_wrap_the_rollover_never_goes_below_zero() {
        let mut s = Stream::new(1);
        s.update(0, 100);
        assert_eq!(s.estimate_roc(100 + 0x8001), 0);
    }

    #[test]
    fn forged_packets_make_no_state_and_streams_are_capped() {
        let mut rx = Context::new(Profile::Aes128CmHmacSha1_80, &[1; 16], &[2; 14]).expect("keys");
        for ssrc in 0..100u32 {
            let mut p = vec![0x80, 0, 0, 1, 0, 0, 0, 0];
            p.extend_from_slice(&ssrc.to_be_bytes());
            p.extend_from_slice(&[0; 30]);
            assert_eq!(rx.unprotect_rtp(&mut p), Err(SrtpError::AuthFailed));
        }
        assert!(
            rx.streams.is_empty(),
            "nothing kept for packets that failed"
        );
        let mut tx = Context::new(Profile::Aes128CmHmacSha1_80, &[1; 16], &[2; 14]).expect("keys");
        for ssrc in 0..MAX_STREAMS as u32 + 1 {
            let mut p = vec![0x80, 0, 0, 1, 0, 0, 0, 0];
            p.extend_from_slice(&ssrc.to_be_bytes());
            p.resize(12 + 20 + 10, 0);
            let result = tx.protect_rtp(&mut p, 32);
            assert_eq!(result.is_err(), ssrc as usize == MAX_STREAMS, "{ssrc}");
        }
    }

    #[test]
    fn rollover_is_estimated_across_the_wrap() {
        let mut s = Stream::new(1);
        s.update(0, 0xfff0);
        assert_eq!(s.estimate_roc(0x0005), 1, "after the wrap");
        s.update(1, 0x0005);
        assert_eq!(s.estimate_roc(0xfff8), 0, "a late packet from before it");
    }
}
