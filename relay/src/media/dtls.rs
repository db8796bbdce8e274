//! DTLS-SRTP toward the browser (RFC 5763, RFC 5764): the relay is always
//! the DTLS server. Its certificate is made at start-up and its fingerprint
//! goes into every SDP the relay writes; the browser's certificate must
//! match the fingerprint in the browser's SDP, or the call fails. When the
//! handshake completes, the SRTP keys are exported into two in-place SRTP
//! contexts.
//!
//! Sans-IO over webrtc-rs's `rtc-dtls` endpoint: datagrams and time in,
//! datagrams and deadlines out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rtc_crypto::RTCCryptoProvider;
use rtc_dtls::config::{ClientAuthType, ConfigBuilder, HandshakeConfig};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc_shared::TransportProtocol;
use sha2::{Digest, Sha256};

use super::srtp::{Context, Profile, SrtpError, SrtpKeys};

/// Why a DTLS session failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DtlsError {
    /// Making the certificate or the configuration failed.
    #[error("DTLS setup failed: {0}")]
    Setup(String),
    /// The browser's certificate does not match the SDP's fingerprint:
    /// someone else answered.
    #[error("DTLS fingerprint mismatch: the peer is not the one in the SDP")]
    FingerprintMismatch,
    /// The handshake failed for another reason.
    #[error("DTLS handshake failed: {0}")]
    Handshake(String),
    /// No SRTP profile both sides support.
    #[error("no common SRTP protection profile")]
    NoSrtpProfile,
    /// The exported keys did not make SRTP contexts.
    #[error("SRTP keys: {0}")]
    Keys(#[from] SrtpError),
}

/// The relay's DTLS identity, made once at start-up.
pub struct Identity {
    certificate: Certificate,
    fingerprint: String,
    provider: Arc<dyn RTCCryptoProvider>,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("fingerprint", &self.fingerprint)
            .finish_non_exhaustive()
    }
}

/// `sha-256 AB:CD:…` of a DER certificate, as SDP writes it (RFC 8122).
pub fn fingerprint(der: &[u8]) -> String {
    let digest = Sha256::digest(der);
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    format!("sha-256 {}", hex.join(":"))
}

impl Identity {
    /// A fresh self-signed certificate (ECDSA P-256, as browsers use).
    pub fn generate() -> Result<Identity, DtlsError> {
        let provider =
            rtc_crypto::default_provider().map_err(|e| DtlsError::Setup(e.to_string()))?;
        let certificate =
            Certificate::generate_self_signed(vec!["sipline-relay".to_owned()], provider.crypto())
                .map_err(|e| DtlsError::Setup(e.to_string()))?;
        let der = certificate
            .certificate
            .first()
            .ok_or_else(|| DtlsError::Setup("empty certificate".into()))?;
        let fingerprint = fingerprint(der.as_ref());
        Ok(Identity {
            certificate,
            fingerprint,
            provider,
        })
    }

    /// The `a=fingerprint` value for the relay's SDP.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }
}

/// The SRTP contexts a completed DTLS connection exports (RFC 5764 §4.2:
/// client key, server key, client salt, server salt), seen from the
/// server's side when `server`, else from the client's: what it sends is
/// protected with its own write keys.
pub fn export_srtp(state: &rtc_dtls::state::State, server: bool) -> Result<SrtpKeys, DtlsError> {
    let profile = match state.srtp_protection_profile() {
        SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80 => Profile::Aes128CmHmacSha1_80,
        SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm => Profile::AeadAes128Gcm,
        _ => return Err(DtlsError::NoSrtpProfile),
    };
    let (k, s) = (profile.key_len(), profile.salt_len());
    let material = state
        .export_keying_material(SRTP_LABEL, &[], 2 * (k + s))
        .map_err(|e| DtlsError::Handshake(e.to_string()))?;
    let m: &[u8] = material.as_ref();
    let client = Context::new(profile, &m[..k], &m[2 * k..2 * k + s])?;
    let server_write = Context::new(profile, &m[k..2 * k], &m[2 * k + s..2 * (k + s)])?;
    let (outbound, inbound) = if server {
        (server_write, client)
    } else {
        (client, server_write)
    };
    Ok(SrtpKeys {
        profile,
        outbound,
        inbound,
    })
}

/// One call's DTLS server.
pub struct DtlsServer {
    endpoint: Endpoint,
    peer: Option<SocketAddr>,
    done: bool,
}

impl std::fmt::Debug for DtlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DtlsServer")
            .field("peer", &self.peer)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// The label RFC 5764 §4.2 exports SRTP keys under.
const SRTP_LABEL: &str = "EXTRACTOR-dtls_srtp";

/// Compares `sha-256 AB:CD…` forms case-insensitively.
fn same_fingerprint(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.trim().to_ascii_lowercase();
    norm(a) == norm(b)
}

impl DtlsServer {
    /// A server for a browser whose SDP says `a=fingerprint:<remote>`.
    pub fn new(
        identity: &Identity,
        local: SocketAddr,
        remote_fingerprint: &str,
    ) -> Result<DtlsServer, DtlsError> {
        let expected = remote_fingerprint.to_owned();
        let config = ConfigBuilder::default()
            .with_crypto_provider(identity.provider.clone())
            .with_certificates(vec![identity.certificate.clone()])
            .with_srtp_protection_profiles(vec![
                SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
            ])
            // WebRTC authenticates by the SDP's fingerprint, not by a CA.
            .with_client_auth(ClientAuthType::RequireAnyClientCert)
            .with_insecure_skip_verify(true)
            .with_verify_peer_certificate(Some(Arc::new(move |certs: &[Vec<u8>], _| {
                match certs.first() {
                    Some(der) if same_fingerprint(&fingerprint(der), &expected) => Ok(()),
                    _ => Err(rtc_shared::error::Error::Other(
                        "fingerprint mismatch".into(),
                    )),
                }
            })))
            .build(false, None)
            .map_err(|e| DtlsError::Setup(e.to_string()))?;
        Ok(DtlsServer {
            endpoint: Endpoint::new(
                local,
                TransportProtocol::UDP,
                Some(Arc::new(config) as Arc<HandshakeConfig>),
            ),
            peer: None,
            done: false,
        })
    }

    /// A DTLS datagram from the browser (at an ICE-verified address).
    /// Returns the SRTP keys once, when the handshake completes.
    pub fn handle(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<Option<SrtpKeys>, DtlsError> {
        if self.peer.is_some_and(|p| p != from) && !self.done {
            // One peer per call: a second source mid-handshake is ignored.
            return Ok(None);
        }
        self.peer.get_or_insert(from);
        let events = self
            .endpoint
            .read(now, from, None, datagram.into())
            .map_err(|e| classify(&e.to_string()))?;
        let complete = events
            .iter()
            .any(|e| matches!(e, EndpointEvent::HandshakeComplete));
        if !complete || self.done {
            return Ok(None);
        }
        self.done = true;
        self.export(from).map(Some)
    }

    fn export(&self, peer: SocketAddr) -> Result<SrtpKeys, DtlsError> {
        let state = self
            .endpoint
            .get_connection_state(peer)
            .ok_or_else(|| DtlsError::Handshake("no connection state".into()))?;
        export_srtp(state, true)
    }

    /// Next datagram to send, and where.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.endpoint
            .poll_transmit()
            .map(|t| (t.transport.peer_addr, t.message.to_vec()))
    }

    /// When to call [`Self::handle_timeout`] (handshake retransmissions).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.peer.and_then(|p| self.endpoint.poll_timeout(&p))
    }

    /// Time has passed: retransmit a flight if due.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsError> {
        match self.peer {
            Some(p) => self
                .endpoint
                .handle_timeout(p, now)
                .map_err(|e| classify(&e.to_string())),
            None => Ok(()),
        }
    }

    /// Whether the handshake completed.
    pub fn is_done(&self) -> bool {
        self.done
    }
}

/// Names a handshake failure: a fingerprint mismatch is reported as such,
/// because it means someone other than the SDP's peer answered.
fn classify(message: &str) -> DtlsError {
    if message.contains("fingerprint mismatch") {
        DtlsError::FingerprintMismatch
    } else {
        DtlsError::Handshake(message.to_owned())
    }
}
