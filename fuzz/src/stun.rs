//! STUN Binding Requests as browsers send them (RFC 8445 §7.2.2, RFC 8489),
//! signed or deliberately mis-signed, and an independent check of the
//! relay's answers: the fuzz targets must not trust the code they test to
//! tell them what a right answer is.

use std::net::{IpAddr, SocketAddr};

use arbitrary::Arbitrary;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// STUN's magic cookie (RFC 8489 §5).
pub const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const USERNAME: u16 = 0x0006;
const MESSAGE_INTEGRITY: u16 = 0x0008;
const XOR_MAPPED_ADDRESS: u16 = 0x0020;
/// USE-CANDIDATE: the check nominates the pair.
pub const USE_CANDIDATE: u16 = 0x0025;
const SOFTWARE: u16 = 0x8022;
const FINGERPRINT: u16 = 0x8028;
const FINGERPRINT_XOR: u32 = 0x5354_554E;

/// CRC-32 (ISO-HDLC), bit by bit.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// How an integrity attribute is written.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seal {
    /// Right.
    Good,
    /// Present, one bit wrong.
    Wrong,
    /// Left out.
    Missing,
}

/// What a fuzzer chooses of a connectivity check; the credentials come
/// from the target.
#[derive(Arbitrary, Clone, Debug)]
pub struct Check {
    /// The transaction id.
    pub transaction: [u8; 12],
    /// Whether it nominates (USE-CANDIDATE).
    pub use_candidate: bool,
    /// Other attributes, before MESSAGE-INTEGRITY. USERNAME,
    /// MESSAGE-INTEGRITY and FINGERPRINT are written as SOFTWARE instead:
    /// the check's own are the ones below.
    pub extra: Vec<(u16, Vec<u8>)>,
    /// MESSAGE-INTEGRITY.
    pub integrity: Seal,
    /// FINGERPRINT.
    pub fingerprint: Seal,
}

impl Check {
    /// Whether the check carries USE-CANDIDATE, its own or among `extra`.
    pub fn nominates(&self) -> bool {
        self.use_candidate || self.extra.iter().any(|(t, _)| *t == USE_CANDIDATE)
    }

    /// The request, with USERNAME `username` and MESSAGE-INTEGRITY keyed
    /// with `key` (the answering agent's ICE password).
    pub fn encode(&self, username: &str, key: &[u8]) -> Vec<u8> {
        let mut m = Vec::with_capacity(128);
        m.extend_from_slice(&BINDING_REQUEST.to_be_bytes());
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
        m.extend_from_slice(&self.transaction);
        attribute(&mut m, USERNAME, username.as_bytes());
        if self.use_candidate {
            attribute(&mut m, USE_CANDIDATE, &[]);
        }
        for (kind, value) in &self.extra {
            let kind = match *kind {
                USERNAME | MESSAGE_INTEGRITY | FINGERPRINT => SOFTWARE,
                k => k,
            };
            attribute(&mut m, kind, value);
        }
        if self.integrity != Seal::Missing {
            let mut mac = mac(key, &mut m, 24);
            if self.integrity == Seal::Wrong {
                mac[0] ^= 1;
            }
            attribute(&mut m, MESSAGE_INTEGRITY, &mac);
        }
        if self.fingerprint != Seal::Missing {
            set_length(&mut m, 8);
            let mut crc = crc32(&m) ^ FINGERPRINT_XOR;
            if self.fingerprint == Seal::Wrong {
                crc ^= 1;
            }
            attribute(&mut m, FINGERPRINT, &crc.to_be_bytes());
        }
        set_length(&mut m, 0);
        m
    }
}

/// Appends one attribute, padded to four bytes. Values longer than a
/// length field can say are cut.
fn attribute(m: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let value = &value[..value.len().min(usize::from(u16::MAX))];
    m.extend_from_slice(&kind.to_be_bytes());
    m.extend_from_slice(&(value.len() as u16).to_be_bytes());
    m.extend_from_slice(value);
    m.resize(m.len().next_multiple_of(4), 0);
}

/// Sets the header's length field to count the attributes so far and
/// `more` bytes to come (saturating: oversized checks are the fuzzer's).
fn set_length(m: &mut [u8], more: usize) {
    let len = u16::try_from(m.len() - 20 + more).unwrap_or(u16::MAX);
    m[2..4].copy_from_slice(&len.to_be_bytes());
}

/// The HMAC-SHA1 of `m` as RFC 8489 §14.5 computes it: the length field
/// counts the MESSAGE-INTEGRITY attribute that follows (`more` bytes).
fn mac(key: &[u8], m: &mut [u8], more: usize) -> [u8; 20] {
    set_length(m, more);
    let mut h = <Hmac<Sha1> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    h.update(m);
    h.finalize().into_bytes().into()
}

/// Checks a Binding Success answer to `request` from `from`: the
/// transaction echoed, XOR-MAPPED-ADDRESS naming `from`, MESSAGE-INTEGRITY
/// keyed with `key`, and FINGERPRINT last. Says what is wrong if anything.
pub fn verify_answer(
    answer: &[u8],
    request: &[u8],
    from: SocketAddr,
    key: &[u8],
) -> Result<(), String> {
    if answer.len() < 20 || request.len() < 20 {
        return Err(format!("{} bytes is no STUN message", answer.len()));
    }
    if u16::from_be_bytes([answer[0], answer[1]]) != BINDING_SUCCESS {
        return Err("not a Binding Success".into());
    }
    if usize::from(u16::from_be_bytes([answer[2], answer[3]])) != answer.len() - 20 {
        return Err("length field does not count the attributes".into());
    }
    if answer[4..20] != request[4..20] {
        return Err("cookie or transaction id not echoed".into());
    }
    let (mut mapped, mut integrity, mut fingerprint) = (None, None, None);
    let mut at = 20;
    while at < answer.len() {
        let head = answer.get(at..at + 4).ok_or("attribute header cut short")?;
        let kind = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let value = answer
            .get(at + 4..at + 4 + len)
            .ok_or("attribute value cut short")?;
        if fingerprint.is_some() {
            return Err("an attribute after FINGERPRINT".into());
        }
        match kind {
            XOR_MAPPED_ADDRESS => mapped = Some(value),
            MESSAGE_INTEGRITY => integrity = Some((at, value)),
            FINGERPRINT => fingerprint = Some((at, value)),
            _ => {}
        }
        at += 4 + len.next_multiple_of(4);
    }
    let mapped = mapped.ok_or("no XOR-MAPPED-ADDRESS")?;
    if xor_address(mapped, &answer[4..20]) != Some(from) {
        return Err(format!("XOR-MAPPED-ADDRESS is not {from}"));
    }
    let (mi, mac_value) = integrity.ok_or("no MESSAGE-INTEGRITY")?;
    let mut signed = answer[..mi].to_vec();
    if mac(key, &mut signed, 24).as_slice() != mac_value {
        return Err("MESSAGE-INTEGRITY does not verify with the password".into());
    }
    let (fp, crc) = fingerprint.ok_or("no FINGERPRINT")?;
    let mut covered = answer[..fp].to_vec();
    set_length(&mut covered, 8);
    if (crc32(&covered) ^ FINGERPRINT_XOR).to_be_bytes().as_slice() != crc {
        return Err("FINGERPRINT does not match".into());
    }
    Ok(())
}

/// Decodes XOR-MAPPED-ADDRESS (RFC 8489 §14.2); `key` is the cookie and
/// transaction id.
fn xor_address(value: &[u8], key: &[u8]) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([*value.get(2)?, *value.get(3)?]) ^ (MAGIC_COOKIE >> 16) as u16;
    let raw = value.get(4..)?;
    let ip = match (value.get(1)?, raw.len()) {
        (1, 4) => {
            let b: [u8; 4] = std::array::from_fn(|i| raw[i] ^ key[i]);
            IpAddr::from(b)
        }
        (2, 16) => {
            let b: [u8; 16] = std::array::from_fn(|i| raw[i] ^ key[i]);
            IpAddr::from(b)
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}
