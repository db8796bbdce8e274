//! Randomness for tags, branches, Call-IDs and cnonces, from a seed the
//! caller supplies.
//!
//! The core cannot call `getrandom` (no I/O, and on wasm32 that needs the
//! browser). The shell seeds it once from its own CSPRNG
//! (`crypto.getRandomValues`, `getrandom`); tests seed it with constants and
//! get reproducible messages. The generator is xoshiro256**: tiny in wasm and
//! plenty for identifiers whose only job is to be unique and unguessable
//! within one user agent's lifetime.

use crate::prelude::*;

/// A small seeded pseudo-random generator.
#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
}

const ALPHANUM: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

impl Rng {
    /// A generator whose whole future is fixed by `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let mut s = [0u64; 4];
        for (i, word) in s.iter_mut().enumerate() {
            let mut b = [0u8; 8];
            b.copy_from_slice(&seed[i * 8..i * 8 + 8]);
            *word = u64::from_le_bytes(b);
        }
        // An all-zero state would only ever produce zeros: spread the seed
        // with splitmix64 so that every seed gives a usable state.
        let mut x = s[0] ^ s[1] ^ s[2] ^ s[3] ^ 0x9E37_79B9_7F4A_7C15;
        for word in s.iter_mut() {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            *word ^= z ^ (z >> 31);
        }
        Self { s }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// A value in `0..bound` (bound > 0), for jitter.
    pub fn below(&mut self, bound: u64) -> u64 {
        // Modulo bias is irrelevant for the small bounds used here.
        self.next_u64() % bound.max(1)
    }

    /// `len` random characters from `[0-9a-zA-Z]`: safe in any SIP token,
    /// tag, branch or URI user part without escaping.
    pub fn token(&mut self, len: usize) -> String {
        let mut out = String::with_capacity(len);
        let mut bits = 0u64;
        let mut left = 0;
        for _ in 0..len {
            if left == 0 {
                bits = self.next_u64();
                left = 10; // 10 draws of 6 bits from one word
            }
            // 6 bits give 0..64; reject 62 and 63 by folding them back, a bias
            // that does not matter for identifiers.
            let idx = (bits & 0x3f) as usize % ALPHANUM.len();
            out.push(ALPHANUM[idx] as char);
            bits >>= 6;
            left -= 1;
        }
        out
    }

    /// A version-4 UUID in `8-4-4-4-12` hex form, for `+sip.instance`.
    pub fn uuid(&mut self) -> String {
        let a = self.next_u64();
        let b = self.next_u64();
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a.to_be_bytes());
        bytes[8..].copy_from_slice(&b.to_be_bytes());
        bytes[6] = (bytes[6] & 0x0f) | 0x40;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        let mut out = String::with_capacity(36);
        for (i, byte) in bytes.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                out.push('-');
            }
            crate::sip::push_hex_byte(&mut out, *byte);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_zero_seed_works() {
        let mut a = Rng::from_seed([7; 32]);
        let mut b = Rng::from_seed([7; 32]);
        assert_eq!(a.next_u64(), b.next_u64());
        let mut z = Rng::from_seed([0; 32]);
        assert_ne!(z.next_u64(), 0);
        assert_ne!(z.next_u64(), z.next_u64());
    }

    #[test]
    fn tokens_are_alphanumeric_and_distinct() {
        let mut r = Rng::from_seed([1; 32]);
        let t1 = r.token(32);
        let t2 = r.token(32);
        assert_eq!(t1.len(), 32);
        assert!(t1.bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(t1, t2);
    }

    #[test]
    fn uuid_has_version_and_variant() {
        let u = Rng::from_seed([3; 32]).uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"));
    }
}
