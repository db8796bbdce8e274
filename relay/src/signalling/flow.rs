//! Flow tokens (RFC 5626 §5.2): an opaque string that names one WebSocket
//! connection, signed so that the PBX (or anyone who can reach the relay's
//! UDP port) cannot forge one that names another browser's connection.
//!
//! A token is the key's id, the connection id and a truncated HMAC-SHA256
//! of both under a key made at start-up, in lowercase hex (valid in a URI
//! user part, a URI parameter and a Via parameter without escaping). The
//! key lives only in memory: a restarted relay refuses old tokens, which is
//! right, since their connections are gone too. The key's id tells such a
//! token (a PBX still calling a browser registered before the restart:
//! [`TokenError::Stale`], its flow is gone) from one forged under this
//! relay's key ([`TokenError::Forged`]).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::ids::ConnId;

/// How many bytes of the MAC a token keeps: 80 bits is far beyond what an
/// attacker can guess online against a rate-limited relay.
const MAC_LEN: usize = 10;

/// Bytes of the key's id.
const KEY_ID_LEN: usize = 4;

/// Length of a token in characters: the key's id, 8 bytes of connection
/// id and the MAC, in hex.
pub const TOKEN_LEN: usize = (KEY_ID_LEN + 8 + MAC_LEN) * 2;

/// Signs and checks flow tokens.
#[derive(Clone)]
pub struct FlowKey {
    mac: Hmac<Sha256>,
    /// Names this key among the keys of earlier runs (derived from it, so
    /// as unpredictable).
    id: [u8; KEY_ID_LEN],
}

impl std::fmt::Debug for FlowKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FlowKey(***)")
    }
}

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a token at all (length or characters).
    #[error("malformed flow token")]
    Malformed,
    /// Signed under another key: an earlier run of this relay (whose
    /// connections are all gone), or another relay.
    #[error("flow token of another key")]
    Stale,
    /// Under this relay's key, but with a bad signature.
    #[error("flow token with a bad signature")]
    Forged,
}

impl FlowKey {
    /// A key from 32 secret bytes (from the OS CSPRNG in production).
    pub fn new(secret: [u8; 32]) -> Self {
        let mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        let mut key_id = mac.clone();
        key_id.update(b"sipline flow key id");
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&key_id.finalize().into_bytes()[..KEY_ID_LEN]);
        Self { mac, id }
    }

    fn tag(&self, id: ConnId) -> [u8; MAC_LEN] {
        let mut mac = self.mac.clone();
        mac.update(&self.id);
        mac.update(&id.0.to_be_bytes());
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// The token naming `id`.
    pub fn token(&self, id: ConnId) -> String {
        let mut out = String::with_capacity(TOKEN_LEN);
        let parts = [&self.id[..], &id.0.to_be_bytes(), &self.tag(id)];
        for b in parts.iter().flat_map(|p| p.iter()) {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        out
    }

    /// A keyed hash of `parts`, 16 hex characters: unpredictable to anyone
    /// without the key, stable for the same input (Via branches).
    pub fn digest(&self, parts: &[&[u8]]) -> String {
        let mut mac = self.mac.clone();
        for p in parts {
            mac.update(p);
        }
        let full = mac.finalize().into_bytes();
        let mut out = String::with_capacity(16);
        for b in &full[..8] {
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
        out
    }

    /// The connection a token names, if this relay signed it. The MAC is
    /// compared in constant time.
    pub fn verify(&self, token: &str) -> Result<ConnId, TokenError> {
        let raw = token.as_bytes();
        if raw.len() != TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut bytes = [0u8; TOKEN_LEN / 2];
        for (i, [hi, lo]) in raw.as_chunks::<2>().0.iter().enumerate() {
            let hi = hex_value(*hi).ok_or(TokenError::Malformed)?;
            let lo = hex_value(*lo).ok_or(TokenError::Malformed)?;
            bytes[i] = hi << 4 | lo;
        }
        let (key_id, rest) = bytes.split_at(KEY_ID_LEN);
        if key_id != self.id {
            return Err(TokenError::Stale);
        }
        let (id, tag) = rest.split_at(8);
        let mut mac = self.mac.clone();
        mac.update(key_id);
        mac.update(id);
        mac.verify_truncated_left(tag)
            .map_err(|_| TokenError::Forged)?;
        let mut conn = [0u8; 8];
        conn.copy_from_slice(id);
        Ok(ConnId(u64::from_be_bytes(conn)))
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_resist_forgery() {
        let key = FlowKey::new([1; 32]);
        let t = key.token(ConnId(42));
        assert_eq!(t.len(), TOKEN_LEN);
        assert_eq!(key.verify(&t), Ok(ConnId(42)));
        // Another key's token (a restarted relay's) is stale; a changed
        // connection id under this key does not verify.
        assert_eq!(FlowKey::new([2; 32]).verify(&t), Err(TokenError::Stale));
        let mut forged = t.clone().into_bytes();
        forged[23] = if forged[23] == b'0' { b'1' } else { b'0' };
        assert_eq!(
            key.verify(&String::from_utf8(forged).expect("ascii")),
            Err(TokenError::Forged)
        );
        assert_eq!(key.verify("zz"), Err(TokenError::Malformed));
        assert_eq!(
            key.verify(&"g".repeat(TOKEN_LEN)),
            Err(TokenError::Malformed)
        );
        assert_eq!(format!("{key:?}"), "FlowKey(***)");
    }
}
