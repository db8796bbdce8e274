//! ICE-lite, the relay's side of a browser's connectivity checks (RFC 8445
//! §2.5 and §7.3, STUN per RFC 8489): answer each Binding Request that
//! carries our username fragment and passes MESSAGE-INTEGRITY with our
//! password, and remember where it came from. The relay has a known address
//! and never checks on its own; media goes to the address the browser
//! nominated (USE-CANDIDATE), or until then to the first verified one:
//! Chromium starts DTLS right after its first successful check, before it
//! nominates. Media is taken from every address a check verified (the last
//! few): a browser with two interfaces may move its media to a pair that
//! passed later, before it nominates one.
//!
//! Sans-IO and allocation-free per check: the answer is written into the
//! caller's buffer.

use std::net::{IpAddr, SocketAddr};

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// STUN's magic cookie (RFC 8489 §5).
const MAGIC_COOKIE: u32 = 0x2112_A442;
const BINDING_REQUEST: u16 = 0x0001;
const BINDING_SUCCESS: u16 = 0x0101;
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
const ATTR_USE_CANDIDATE: u16 = 0x0025;
const ATTR_FINGERPRINT: u16 = 0x8028;
/// XORed into the CRC-32 of FINGERPRINT (RFC 8489 §14.7).
const FINGERPRINT_XOR: u32 = 0x5354_554E;
/// Largest connectivity check handled (Chromium's are about 100 bytes).
const MAX_REQUEST: usize = 548;

/// Room an answer needs: header, XOR-MAPPED-ADDRESS (IPv6),
/// MESSAGE-INTEGRITY, FINGERPRINT.
pub const MAX_ANSWER: usize = 20 + 24 + 24 + 8;

/// Whether a datagram is STUN (RFC 7983 §7: first byte 0–3, then the
/// magic cookie), as opposed to DTLS or SRTP on the same port.
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= 20
        && datagram[0] < 4
        && u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]) == MAGIC_COOKIE
}

/// Our part of a Binding Request's USERNAME (`ours:theirs`, RFC 8445
/// §7.2.2): it names the call on a port every browser shares. Unchecked:
/// [`IceLite::handle`] authenticates the request afterwards.
pub fn local_ufrag(request: &[u8]) -> Option<&[u8]> {
    if !is_stun(request) {
        return None;
    }
    let mut at = 20;
    while at + 4 <= request.len() {
        let kind = u16::from_be_bytes([request[at], request[at + 1]]);
        let len = usize::from(u16::from_be_bytes([request[at + 2], request[at + 3]]));
        let value = request.get(at + 4..at + 4 + len)?;
        if kind == ATTR_USERNAME {
            return value.split(|b| *b == b':').next();
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}

/// Why a check was not answered (it is dropped: RFC 8445 answers only
/// authenticated checks).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IceError {
    /// Not a well-formed STUN Binding Request.
    #[error("not a STUN binding request")]
    Malformed,
    /// USERNAME missing or not `<our ufrag>:<their ufrag>`.
    #[error("STUN username does not match")]
    WrongUsername,
    /// MESSAGE-INTEGRITY missing or wrong: not from the peer of the SDP.
    #[error("STUN message integrity failed")]
    BadIntegrity,
    /// FINGERPRINT present and wrong.
    #[error("STUN fingerprint failed")]
    BadFingerprint,
    /// The caller's buffer cannot hold the answer.
    #[error("no room for the STUN answer")]
    NoRoom,
}

/// What a verified check tells the media session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Bytes of the answer written into the caller's buffer.
    pub answer_len: usize,
    /// The check carried USE-CANDIDATE.
    pub nominated: bool,
}

/// How many verified addresses are remembered (a browser's candidates
/// that passed a check: one per interface, a reflexive one, a relayed one).
const CHECKED: usize = 4;

/// The ICE-lite agent of one call's browser side.
#[derive(Clone, Debug)]
pub struct IceLite {
    local_ufrag: String,
    integrity: Hmac<Sha1>,
    remote_ufrag: Option<String>,
    verified: Option<SocketAddr>,
    nominated: Option<SocketAddr>,
    /// The latest addresses that passed a check, oldest overwritten first.
    checked: [Option<SocketAddr>; CHECKED],
    next_checked: usize,
    /// After an ICE restart, the credentials before it: still answered
    /// until a check with the new ones succeeds, in case the restart's
    /// offer was refused and the browser keeps them.
    previous: Option<Box<IceLite>>,
}

impl IceLite {
    /// An agent with our credentials (the ones in our SDP).
    pub fn new(local_ufrag: &str, local_pwd: &str) -> Self {
        Self {
            local_ufrag: local_ufrag.to_owned(),
            integrity: <Hmac<Sha1> as KeyInit>::new_from_slice(local_pwd.as_bytes())
                .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length")),
            remote_ufrag: None,
            verified: None,
            nominated: None,
            checked: [None; CHECKED],
            next_checked: 0,
            previous: None,
        }
    }

    /// Our username fragment (what the browser's checks start with).
    pub fn local_ufrag(&self) -> &str {
        &self.local_ufrag
    }

    /// The browser's username fragment, from its SDP; until it is known,
    /// any remote fragment is accepted (the password still authenticates).
    pub fn set_remote_ufrag(&mut self, ufrag: &str) {
        self.remote_ufrag = Some(ufrag.to_owned());
    }

    /// After an ICE restart (RFC 8445 §9): the address the previous
    /// credentials verified stays usable until a check with the new ones
    /// succeeds, so that media does not stop while the browser learns them.
    pub fn carry_over(&mut self, previous: &IceLite) {
        self.verified = previous.selected();
        if let Some(selected) = self.verified {
            self.remember(selected);
        }
        let mut old = previous.clone();
        old.previous = None;
        self.previous = Some(Box::new(old));
    }

    /// Where media goes: the nominated address, else the first verified.
    pub fn selected(&self) -> Option<SocketAddr> {
        self.nominated.or(self.verified)
    }

    /// Whether `from` passed a check: only such addresses may send media.
    pub fn is_verified(&self, from: SocketAddr) -> bool {
        self.nominated == Some(from) || self.checked.contains(&Some(from))
    }

    fn remember(&mut self, from: SocketAddr) {
        if !self.checked.contains(&Some(from)) {
            self.checked[self.next_checked] = Some(from);
            self.next_checked = (self.next_checked + 1) % CHECKED;
        }
    }

    /// Checks a Binding Request from `from` and writes the Binding Success
    /// answer into `out`.
    pub fn handle(
        &mut self,
        request: &[u8],
        from: SocketAddr,
        out: &mut [u8],
    ) -> Result<Verified, IceError> {
        if !is_stun(request) || u16::from_be_bytes([request[0], request[1]]) != BINDING_REQUEST {
            return Err(IceError::Malformed);
        }
        let body_len = usize::from(u16::from_be_bytes([request[2], request[3]]));
        // Connectivity checks are small; a big one is not worth hashing.
        if body_len % 4 != 0 || request.len() != 20 + body_len || request.len() > MAX_REQUEST {
            return Err(IceError::Malformed);
        }
        let mut username = None;
        let mut integrity_at = None;
        let mut fingerprint_at = None;
        let mut nominated = false;
        let mut at = 20;
        while at < request.len() {
            let head = request.get(at..at + 4).ok_or(IceError::Malformed)?;
            let kind = u16::from_be_bytes([head[0], head[1]]);
            let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let value = request
                .get(at + 4..at + 4 + len)
                .ok_or(IceError::Malformed)?;
            if integrity_at.is_some() && kind != ATTR_FINGERPRINT {
                // Only FINGERPRINT may follow MESSAGE-INTEGRITY (§14.5).
                return Err(IceError::Malformed);
            }
            match kind {
                ATTR_USERNAME => username = Some(value),
                ATTR_USE_CANDIDATE => nominated = true,
                ATTR_MESSAGE_INTEGRITY if len == 20 => integrity_at = Some(at),
                ATTR_FINGERPRINT if len == 4 => fingerprint_at = Some(at),
                _ => {}
            }
            at += 4 + len.div_ceil(4) * 4;
        }
        // The cheap check first: a check for another agent costs no hashing.
        let user = username
            .and_then(|u| std::str::from_utf8(u).ok())
            .ok_or(IceError::WrongUsername)?;
        let (ours, theirs) = user.split_once(':').ok_or(IceError::WrongUsername)?;
        if ours != self.local_ufrag {
            // A check with the credentials from before a restart.
            let previous = self.previous.as_mut().ok_or(IceError::WrongUsername)?;
            let v = previous.handle(request, from, out)?;
            if v.nominated {
                self.nominated = Some(from);
            }
            return Ok(v);
        }
        if self.remote_ufrag.as_deref().is_some_and(|r| r != theirs) {
            return Err(IceError::WrongUsername);
        }
        if let Some(fp) = fingerprint_at {
            let want = u32::from_be_bytes([
                request[fp + 4],
                request[fp + 5],
                request[fp + 6],
                request[fp + 7],
            ]);
            if crc32(&request[..fp]) ^ FINGERPRINT_XOR != want {
                return Err(IceError::BadFingerprint);
            }
        }
        let mi = integrity_at.ok_or(IceError::BadIntegrity)?;
        // The HMAC covers the message up to MESSAGE-INTEGRITY, with the
        // length field as if it ended right after it.
        let mut mac = self.integrity.clone();
        mac.update(&request[..2]);
        mac.update(
            &u16::try_from(mi + 24 - 20)
                .map_err(|_| IceError::Malformed)?
                .to_be_bytes(),
        );
        mac.update(&request[4..mi]);
        mac.verify_slice(&request[mi + 4..mi + 24])
            .map_err(|_| IceError::BadIntegrity)?;

        let answer_len = self.answer(request, from, out)?;
        // The browser uses the new credentials: the old ones are done.
        self.previous = None;
        if self.verified.is_none() {
            self.verified = Some(from);
        }
        self.remember(from);
        if nominated {
            self.nominated = Some(from);
        }
        Ok(Verified {
            answer_len,
            nominated,
        })
    }

    /// Writes a Binding Success with XOR-MAPPED-ADDRESS, MESSAGE-INTEGRITY
    /// and FINGERPRINT, as browsers require (RFC 8445 §7.3.1.4).
    fn answer(&self, request: &[u8], from: SocketAddr, out: &mut [u8]) -> Result<usize, IceError> {
        if out.len() < MAX_ANSWER {
            return Err(IceError::NoRoom);
        }
        out[..2].copy_from_slice(&BINDING_SUCCESS.to_be_bytes());
        out[4..20].copy_from_slice(&request[4..20]); // cookie and transaction id
        let mut at = 20;
        // XOR-MAPPED-ADDRESS (§14.2).
        let port = from.port() ^ (MAGIC_COOKIE >> 16) as u16;
        let (family, addr_len) = match from.ip() {
            IpAddr::V4(_) => (1u8, 4usize),
            IpAddr::V6(_) => (2u8, 16usize),
        };
        out[at..at + 2].copy_from_slice(&ATTR_XOR_MAPPED_ADDRESS.to_be_bytes());
        out[at + 2..at + 4].copy_from_slice(&((4 + addr_len) as u16).to_be_bytes());
        out[at + 4] = 0;
        out[at + 5] = family;
        out[at + 6..at + 8].copy_from_slice(&port.to_be_bytes());
        let key = &request[4..20]; // cookie, then transaction id (for IPv6)
        match from.ip() {
            IpAddr::V4(ip) => {
                for (i, b) in ip.octets().iter().enumerate() {
                    out[at + 8 + i] = b ^ key[i];
                }
            }
            IpAddr::V6(ip) => {
                for (i, b) in ip.octets().iter().enumerate() {
                    out[at + 8 + i] = b ^ key[i];
                }
            }
        }
        at += 8 + addr_len;
        // MESSAGE-INTEGRITY over everything so far, length counting itself.
        out[2..4].copy_from_slice(&((at + 24 - 20) as u16).to_be_bytes());
        let mut mac = self.integrity.clone();
        mac.update(&out[..at]);
        let hmac = mac.finalize().into_bytes();
        out[at..at + 2].copy_from_slice(&ATTR_MESSAGE_INTEGRITY.to_be_bytes());
        out[at + 2..at + 4].copy_from_slice(&20u16.to_be_bytes());
        out[at + 4..at + 24].copy_from_slice(&hmac);
        at += 24;
        // FINGERPRINT over everything so far, length counting itself.
        out[2..4].copy_from_slice(&((at + 8 - 20) as u16).to_be_bytes());
        let crc = crc32(&out[..at]) ^ FINGERPRINT_XOR;
        out[at..at + 2].copy_from_slice(&ATTR_FINGERPRINT.to_be_bytes());
        out[at + 2..at + 4].copy_from_slice(&4u16.to_be_bytes());
        out[at + 4..at + 8].copy_from_slice(&crc.to_be_bytes());
        Ok(at + 8)
    }
}

/// CRC-32 (ISO-HDLC, as in zlib), bit by bit: STUN runs about once a
/// second per call, so a table would buy nothing.
fn crc32(data: &[u8]) -> u32 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn demux_by_first_byte() {
        let mut stun = [0u8; 20];
        stun[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        assert!(is_stun(&stun));
        let mut dtls = stun;
        dtls[0] = 22; // a DTLS handshake record
        assert!(!is_stun(&dtls));
        assert!(!is_stun(&stun[..19]));
    }
}
