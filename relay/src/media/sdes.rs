//! SDES-SRTP toward the PBX (RFC 4568, and RFC 7714 §12 for AES-GCM): the
//! `a=crypto` attribute read and written, each side's master key and salt,
//! and the policy that says when the PBX leg is encrypted. The keys go to
//! the call's [`super::session::Session`], whose in-place SRTP transform
//! serves this leg as it serves the browser's.
//!
//! What the relay offers: `srtp = "mandatory"`, `RTP/SAVP` with one
//! `a=crypto` per suite it has (AES_CM_128_HMAC_SHA1_80 first, the one
//! every SRTP phone has, then AEAD_AES_128_GCM); `"optional"`, the same
//! lines in an `RTP/AVP` section (best-effort SRTP, as Asterisk and
//! FreeSWITCH offer it: a PBX without SRTP ignores them and the leg stays
//! plain); `"off"`, plain RTP. What it answers: the first suite of the
//! PBX's offer it has, whatever the policy (an `RTP/SAVP` offer cannot be
//! answered in plain RTP), in the offer's own profile.
//!
//! A crypto line with an MKI, several keys or a session parameter that
//! changes the transform (`UNENCRYPTED_SRTP`, `KDR`, …) is skipped, as
//! RFC 4568 §6.1 lets an answerer skip what it does not support. Keys never
//! reach a log: [`KeySalt`]'s `Debug` shows none of it.

use base64::Engine;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use sipline_core::sdp::Media;

use super::srtp::{Context, LegKeys, Profile, SrtpError, SrtpKeys};

/// When the PBX leg is SRTP, from the `[pbx]` section's `srtp` key.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SrtpPolicy {
    /// Plain RTP in the relay's offers; an SRTP offer from the PBX is
    /// still answered with SRTP (it cannot be answered otherwise).
    #[default]
    Off,
    /// SRTP offered in an `RTP/AVP` section; plain when the PBX ignores it.
    Optional,
    /// `RTP/SAVP` offered; a plain offer or answer from the PBX is refused
    /// (488), so no packet of the call crosses the PBX leg in the clear.
    Mandatory,
}

/// Why the PBX leg's SRTP could not be agreed; the SDP is refused (488).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdesError {
    /// `srtp = "mandatory"` and the PBX's offer or answer has no key the
    /// relay can use.
    #[error("pbx.srtp is mandatory and the PBX's SDP has no a=crypto the relay supports")]
    Required,
    /// An `RTP/SAVP` offer with no suite the relay has.
    #[error("the PBX's RTP/SAVP offer has no a=crypto the relay supports")]
    NoSuite,
    /// A key the SRTP transform refused.
    #[error("an SRTP key the transform refused")]
    Key,
}

/// The suites the relay has, in the order it offers them.
pub const SUITES: [Profile; 2] = [Profile::Aes128CmHmacSha1_80, Profile::AeadAes128Gcm];

/// The SDP name of a suite (RFC 4568 §6.2.1, RFC 7714 §14.2).
pub fn suite_name(p: Profile) -> &'static str {
    match p {
        Profile::Aes128CmHmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
        Profile::AeadAes128Gcm => "AEAD_AES_128_GCM",
    }
}

fn suite(name: &str) -> Option<Profile> {
    SUITES.into_iter().find(|p| suite_name(*p) == name)
}

/// The longest master key and salt of the suites above.
const MAX_KEY_SALT: usize = 30;

/// One side's master key and salt for one suite: secret.
#[derive(Clone, PartialEq, Eq)]
pub struct KeySalt {
    profile: Profile,
    bytes: [u8; MAX_KEY_SALT],
}

impl std::fmt::Debug for KeySalt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeySalt")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl KeySalt {
    /// The relay's key for `profile`, the `n`th it makes: HMAC-SHA-256 of
    /// the relay's random secret over a label and `n`, so the media table
    /// stays free of I/O (as its ICE credentials are) and no two keys are
    /// alike.
    pub fn derive(secret: &[u8; 32], n: u64, profile: Profile) -> KeySalt {
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"sipline sdes key");
        mac.update(&n.to_be_bytes());
        let out = mac.finalize().into_bytes();
        let mut bytes = [0; MAX_KEY_SALT];
        let len = profile.key_len() + profile.salt_len();
        bytes[..len].copy_from_slice(&out[..len]);
        KeySalt { profile, bytes }
    }

    /// The suite it is for.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    fn len(&self) -> usize {
        self.profile.key_len() + self.profile.salt_len()
    }

    fn from_slice(profile: Profile, b: &[u8]) -> Option<KeySalt> {
        let mut bytes = [0; MAX_KEY_SALT];
        let len = profile.key_len() + profile.salt_len();
        (b.len() == len).then(|| {
            bytes[..len].copy_from_slice(b);
            KeySalt { profile, bytes }
        })
    }

    /// An SRTP context keyed with it.
    pub fn context(&self) -> Result<Context, SrtpError> {
        let k = self.profile.key_len();
        Context::new(self.profile, &self.bytes[..k], &self.bytes[k..self.len()])
    }
}

/// One `a=crypto` line the relay can use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Crypto {
    /// Its tag, which an answer repeats.
    pub tag: u32,
    /// Its suite's key and salt.
    pub key: KeySalt,
}

/// Lenient base64 for keys read: padding or none, as implementations
/// differ.
const READ: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

impl Crypto {
    /// Reads an `a=crypto` value (`tag suite inline:key[|lifetime] [params]`),
    /// `None` when the relay cannot use it.
    pub fn parse(value: &str) -> Option<Crypto> {
        let mut fields = value.split_ascii_whitespace();
        let tag = fields.next()?.parse::<u32>().ok()?;
        let profile = suite(fields.next()?)?;
        let params = fields.next()?;
        // Session parameters: only a window size hint leaves the transform
        // as it is.
        if fields.any(|p| !p.starts_with("WSH=")) {
            return None;
        }
        // One key, no MKI: `inline:<key||salt>` and an optional lifetime.
        if params.contains(';') {
            return None;
        }
        let mut parts = params.strip_prefix("inline:")?.split('|');
        let encoded = parts.next()?;
        let lifetime = parts.next();
        if parts.next().is_some() || lifetime.is_some_and(|l| l.contains(':')) {
            return None;
        }
        let bytes = READ.decode(encoded).ok()?;
        let key = KeySalt::from_slice(profile, &bytes)?;
        Some(Crypto { tag, key })
    }

    /// The attribute's value, as written in an offer or answer.
    pub fn value(&self) -> String {
        let k = &self.key;
        format!(
            "{} {} inline:{}",
            self.tag,
            suite_name(k.profile),
            STANDARD.encode(&k.bytes[..k.len()])
        )
    }
}

/// The crypto lines of a section the relay can use, in its order.
pub fn offered<'a>(m: &'a Media<'_>) -> impl Iterator<Item = Crypto> + 'a {
    m.lines
        .iter()
        .filter_map(|l| l.attribute())
        .filter(|(name, _)| *name == "crypto")
        .filter_map(|(_, value)| Crypto::parse(value?))
}

/// Whether a section's profile is a secure one (`RTP/SAVP`, `RTP/SAVPF`).
pub fn is_savp(m: &Media<'_>) -> bool {
    m.proto.contains("SAVP")
}

/// How the relay's side of a PBX section is written: its profile and
/// crypto lines.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secure {
    /// `RTP/SAVP` rather than `RTP/AVP`.
    pub savp: bool,
    /// The `a=crypto` values (secret: written into the SDP, never logged).
    pub crypto: Vec<String>,
}

impl std::fmt::Debug for Secure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secure")
            .field("savp", &self.savp)
            .field("crypto", &self.crypto.len())
            .finish()
    }
}

/// A leg's keys changed: what its session is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyChange {
    /// Plain RTP from now on.
    Plain,
    /// SRTP with the relay's key and the PBX's.
    Keyed {
        /// The relay's key (protects what it sends).
        ours: KeySalt,
        /// The PBX's key (unprotects what it sends).
        theirs: KeySalt,
        /// The relay's key is the one in use already: its context, and the
        /// rollover counters the PBX tracks for it, carry on (only the
        /// PBX's key changed).
        same_ours: bool,
    },
}

/// One leg's SDES negotiation with the PBX, sans-IO: what the relay
/// offered or will answer, and the keys its session was last given.
#[derive(Clone, Debug, Default)]
pub struct LegSdes {
    /// The relay's keys, one per suite, made when first needed and kept
    /// for the call: a re-offer repeats them, so that the streams' state
    /// (rollover counters, replay windows) carries on.
    ours: Vec<KeySalt>,
    /// The crypto lines of the relay's last offer (tags 1, 2, …, one per
    /// suite), to match the PBX's answer against.
    offered: Vec<Crypto>,
    /// The relay's answer to the PBX's last offer, written when the
    /// browser answers.
    answer: Option<Secure>,
    /// The keys in use, (ours, the PBX's): `None` for plain RTP.
    applied: Option<(KeySalt, KeySalt)>,
}

impl LegSdes {
    /// The relay's key for `profile`, made by `mint` the first time.
    fn ours(&mut self, profile: Profile, mint: &mut dyn FnMut(Profile) -> KeySalt) -> KeySalt {
        if let Some(k) = self.ours.iter().find(|k| k.profile == profile) {
            return k.clone();
        }
        let k = mint(profile);
        self.ours.push(k.clone());
        k
    }

    /// The relay's offer toward the PBX, by `policy`.
    pub fn offer(
        &mut self,
        policy: SrtpPolicy,
        mint: &mut dyn FnMut(Profile) -> KeySalt,
    ) -> Secure {
        self.offered.clear();
        if policy == SrtpPolicy::Off {
            return Secure::default();
        }
        for (tag, profile) in (1..).zip(SUITES) {
            let key = self.ours(profile, mint);
            self.offered.push(Crypto { tag, key });
        }
        Secure {
            savp: policy == SrtpPolicy::Mandatory,
            crypto: self.offered.iter().map(Crypto::value).collect(),
        }
    }

    /// The PBX's answer to the relay's offer: the keys the leg uses from
    /// now on, when they changed.
    pub fn answered(
        &mut self,
        policy: SrtpPolicy,
        m: &Media<'_>,
    ) -> Result<Option<KeyChange>, SdesError> {
        let chosen = offered(m).find_map(|theirs| {
            let ours = self.offered.iter().find(|o| o.tag == theirs.tag)?;
            (ours.key.profile == theirs.key.profile).then(|| (ours.key.clone(), theirs.key))
        });
        if chosen.is_none() && policy == SrtpPolicy::Mandatory {
            return Err(SdesError::Required);
        }
        Ok(self.apply(chosen))
    }

    /// The PBX's offer: the first suite of it the relay has is taken (the
    /// relay's answer, written later by [`LegSdes::answer`], repeats its
    /// tag with the relay's key). Returns the keys when they changed.
    pub fn offered_by_pbx(
        &mut self,
        policy: SrtpPolicy,
        m: &Media<'_>,
        mint: &mut dyn FnMut(Profile) -> KeySalt,
    ) -> Result<Option<KeyChange>, SdesError> {
        let Some(theirs) = offered(m).next() else {
            if is_savp(m) {
                return Err(SdesError::NoSuite);
            }
            if policy == SrtpPolicy::Mandatory {
                return Err(SdesError::Required);
            }
            self.answer = Some(Secure::default());
            return Ok(self.apply(None));
        };
        let ours = self.ours(theirs.key.profile, mint);
        let line = Crypto {
            tag: theirs.tag,
            key: ours.clone(),
        };
        self.answer = Some(Secure {
            savp: is_savp(m),
            crypto: vec![line.value()],
        });
        Ok(self.apply(Some((ours, theirs.key))))
    }

    /// How the relay's answer to the PBX's last offer is written.
    pub fn answer(&self) -> Secure {
        self.answer.clone().unwrap_or_default()
    }

    fn apply(&mut self, keys: Option<(KeySalt, KeySalt)>) -> Option<KeyChange> {
        if self.applied == keys {
            return None;
        }
        let before = std::mem::replace(&mut self.applied, keys.clone());
        Some(match keys {
            None => KeyChange::Plain,
            Some((ours, theirs)) => KeyChange::Keyed {
                same_ours: before.is_some_and(|(o, _)| o == ours),
                ours,
                theirs,
            },
        })
    }
}

/// The contexts of a leg: the relay's key protects what it sends, the
/// PBX's unprotects what it receives.
pub fn keys(ours: &KeySalt, theirs: &KeySalt) -> Result<SrtpKeys, SdesError> {
    if ours.profile != theirs.profile {
        return Err(SdesError::Key);
    }
    Ok(SrtpKeys {
        profile: ours.profile,
        outbound: ours.context().map_err(|_| SdesError::Key)?,
        inbound: theirs.context().map_err(|_| SdesError::Key)?,
    })
}

/// What the leg's session is given for `change`.
pub fn leg_keys(change: &KeyChange) -> Result<LegKeys, SdesError> {
    Ok(match change {
        KeyChange::Plain => LegKeys::Plain,
        KeyChange::Keyed {
            ours,
            theirs,
            same_ours: true,
        } if ours.profile == theirs.profile => {
            LegKeys::Inbound(Box::new(theirs.context().map_err(|_| SdesError::Key)?))
        }
        KeyChange::Keyed { ours, theirs, .. } => LegKeys::Both(Box::new(keys(ours, theirs)?)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: [u8; 32] = [7; 32];

    #[test]
    fn reads_what_phones_write_and_skips_what_it_cannot_do() {
        // baresip's and RFC 4568's examples.
        let aes =
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32";
        assert_eq!(Crypto::parse(aes), None, "an MKI is not supported");
        let aes = "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20";
        let c = Crypto::parse(aes).expect("one key with a lifetime");
        assert_eq!(c.tag, 1);
        assert_eq!(c.key.profile(), Profile::Aes128CmHmacSha1_80);
        assert!(c.key.context().is_ok());
        let gcm = "2 AEAD_AES_128_GCM inline:z5hZIwe1QqZ8kKv6nUHwv8lNiCCx3qYm8Mna2g";
        assert_eq!(
            Crypto::parse(gcm).expect("GCM").key.profile(),
            Profile::AeadAes128Gcm
        );
        for refused in [
            "1 AES_CM_256_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR UNENCRYPTED_SRTP",
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtx",
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR;inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "x AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_CM_128_HMAC_SHA1_80 key:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
            "1 AES_CM_128_HMAC_SHA1_80 inline:!!!",
            "1 AES_CM_128_HMAC_SHA1_80",
            "",
        ] {
            assert_eq!(Crypto::parse(refused), None, "{refused}");
        }
        let hinted =
            "1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR WSH=64";
        assert!(Crypto::parse(hinted).is_some());
    }

    #[test]
    fn what_it_writes_it_reads_back_and_no_two_keys_are_alike() {
        for (n, p) in SUITES.into_iter().enumerate() {
            let c = Crypto {
                tag: 3,
                key: KeySalt::derive(&SECRET, n as u64, p),
            };
            assert_eq!(Crypto::parse(&c.value()), Some(c.clone()));
            assert_ne!(KeySalt::derive(&SECRET, 9, p), c.key);
            assert!(
                !format!("{c:?}").contains(&c.value()[30..40]),
                "no key in Debug"
            );
        }
        let mut leg = LegSdes::default();
        let mut n = 0;
        let secure = leg.offer(SrtpPolicy::Mandatory, &mut |p| {
            n += 1;
            KeySalt::derive(&SECRET, n, p)
        });
        assert_eq!(secure.crypto.len(), 2);
        let shown = format!("{leg:?} {secure:?}");
        for line in &secure.crypto {
            let key = line.split_once("inline:").expect("a key").1;
            assert!(!shown.contains(key), "no key in {shown}");
        }
    }

    #[test]
    fn two_sides_keyed_from_each_other_s_lines_talk() {
        let a = KeySalt::derive(&SECRET, 1, Profile::Aes128CmHmacSha1_80);
        let b = KeySalt::derive(&SECRET, 2, Profile::Aes128CmHmacSha1_80);
        let mut relay = keys(&a, &b).expect("keys");
        let mut pbx = keys(&b, &a).expect("keys");
        let mut buf = [0u8; 200];
        buf[..12].copy_from_slice(&[0x80, 0, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4]);
        buf[12..172].fill(0xff);
        let n = relay.outbound.protect_rtp(&mut buf, 172).expect("protect");
        assert_eq!(n, 182);
        assert_ne!(&buf[12..172], &[0xff; 160][..], "encrypted");
        assert_eq!(pbx.inbound.unprotect_rtp(&mut buf[..n]), Ok(172));
        assert_eq!(&buf[12..172], &[0xff; 160][..]);
        let gcm = KeySalt::derive(&SECRET, 3, Profile::AeadAes128Gcm);
        assert_eq!(keys(&a, &gcm).err(), Some(SdesError::Key));
    }
}
