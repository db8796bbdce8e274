//! The browser's side of one call, as a gateway sees it: a WebRTC offer
//! (ICE credentials, a DTLS fingerprint, rtcp-mux), an ICE check that
//! nominates the gateway's candidate (RFC 8445 §7.2), a DTLS client
//! handshake that checks the gateway's certificate against its SDP, and
//! the SRTP contexts exported from it (RFC 5764 §4.2). Sans-IO: datagrams
//! and time in, datagrams out. The relay's tests and benchmarks use it as
//! their browser, the load generator as many.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rtc_crypto::RTCCryptoProvider;
use rtc_dtls::config::{ConfigBuilder, HandshakeConfig};
use rtc_dtls::crypto::Certificate;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc_shared::TransportProtocol;
use sipline_relay::media::dtls::{export_srtp, fingerprint};
use sipline_relay::media::srtp::SrtpKeys;
use stun::agent::TransactionId;
use stun::attributes::{ATTR_USE_CANDIDATE, ATTR_USERNAME};
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{BINDING_REQUEST, Message, Setter};
use stun::textattrs::TextAttribute;

/// Why a call's browser side failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The certificate or DTLS configuration could not be made.
    #[error("DTLS setup: {0}")]
    Setup(String),
    /// The handshake failed (a certificate not matching the SDP, among
    /// others).
    #[error("DTLS handshake: {0}")]
    Handshake(String),
    /// The gateway's SDP lacks what WebRTC needs.
    #[error("the answer has no {0}")]
    Answer(&'static str),
    /// A STUN message could not be built.
    #[error("STUN: {0}")]
    Stun(String),
}

/// What a gateway's SDP answer says about its side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteTransport {
    /// Its ICE candidate (the answer's first host candidate, else c= and
    /// the port).
    pub addr: SocketAddr,
    /// Its ICE username fragment.
    pub ufrag: String,
    /// Its ICE password.
    pub pwd: String,
    /// Its certificate's fingerprint (`sha-256 AB:…`).
    pub fingerprint: String,
}

impl RemoteTransport {
    /// Reads an SDP answer.
    pub fn from_sdp(sdp: &str) -> Result<Self, PeerError> {
        let attr = |name: &str| {
            sdp.lines()
                .find_map(|l| l.trim_end().strip_prefix(&format!("a={name}:")))
                .map(str::to_owned)
        };
        let candidate = attr("candidate").and_then(|c| {
            let f: Vec<&str> = c.split_ascii_whitespace().collect();
            format!("{}:{}", f.get(4)?, f.get(5)?).parse().ok()
        });
        Ok(Self {
            addr: candidate.ok_or(PeerError::Answer("host candidate"))?,
            ufrag: attr("ice-ufrag").ok_or(PeerError::Answer("ice-ufrag"))?,
            pwd: attr("ice-pwd").ok_or(PeerError::Answer("ice-pwd"))?,
            fingerprint: attr("fingerprint").ok_or(PeerError::Answer("fingerprint"))?,
        })
    }
}

/// The SRTP contexts of the browser's side once DTLS is done: it protects
/// with the client write keys.
pub type BrowserKeys = SrtpKeys;

/// One simulated browser.
pub struct BrowserPeer {
    provider: Arc<dyn RTCCryptoProvider>,
    endpoint: Endpoint,
    certificate: Certificate,
    fingerprint: String,
    ufrag: String,
    pwd: String,
    profiles: Vec<SrtpProtectionProfile>,
    remote: Option<SocketAddr>,
    done: bool,
}

impl std::fmt::Debug for BrowserPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrowserPeer")
            .field("ufrag", &self.ufrag)
            .field("remote", &self.remote)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

fn random_token(len: usize) -> String {
    const CHARS: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; len];
    // A failed getrandom leaves zeros: tokens that still work, only
    // predictable, which a load generator can afford.
    let _ = getrandom::fill(&mut bytes);
    bytes
        .iter()
        .map(|b| char::from(CHARS[usize::from(*b) % CHARS.len()]))
        .collect()
}

impl BrowserPeer {
    /// A browser at `local` with a fresh certificate, offering `profiles`
    /// (both SRTP profiles, GCM first, as Chromium does, by default).
    pub fn new(local: SocketAddr) -> Result<Self, PeerError> {
        Self::with_profiles(
            local,
            vec![
                SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
                SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
            ],
        )
    }

    /// A browser offering only `profiles`.
    pub fn with_profiles(
        local: SocketAddr,
        profiles: Vec<SrtpProtectionProfile>,
    ) -> Result<Self, PeerError> {
        let provider =
            rtc_crypto::default_provider().map_err(|e| PeerError::Setup(e.to_string()))?;
        let certificate =
            Certificate::generate_self_signed(vec!["browser".to_owned()], provider.crypto())
                .map_err(|e| PeerError::Setup(e.to_string()))?;
        let der = certificate
            .certificate
            .first()
            .ok_or_else(|| PeerError::Setup("empty certificate".into()))?;
        Ok(Self {
            fingerprint: fingerprint(der.as_ref()),
            provider,
            endpoint: Endpoint::new(local, TransportProtocol::UDP, None),
            certificate,
            ufrag: random_token(8),
            pwd: random_token(24),
            profiles,
            remote: None,
            done: false,
        })
    }

    /// Its certificate's fingerprint, as its SDP says.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Its ICE username fragment.
    pub fn ufrag(&self) -> &str {
        &self.ufrag
    }

    /// A WebRTC audio offer as Chromium writes one (trimmed to what a
    /// gateway reads): one host candidate at `local`, PCMU and PCMA.
    pub fn offer(&self, local: SocketAddr) -> String {
        format!(
            "v=0\r\no=- 1 2 IN IP4 {ip}\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
m=audio {port} UDP/TLS/RTP/SAVPF 0 8 101\r\nc=IN IP4 {ip}\r\n\
a=candidate:1 1 udp 2122260223 {ip} {port} typ host generation 0\r\n\
a=ice-ufrag:{ufrag}\r\na=ice-pwd:{pwd}\r\na=fingerprint:{fp}\r\na=setup:actpass\r\na=mid:0\r\n\
a=sendrecv\r\na=rtcp-mux\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n",
            ip = local.ip(),
            port = local.port(),
            ufrag = self.ufrag,
            pwd = self.pwd,
            fp = self.fingerprint,
        )
    }

    /// The ICE connectivity check toward the gateway, nominating it
    /// (USE-CANDIDATE), signed with its password.
    pub fn check(&self, remote: &RemoteTransport) -> Result<Vec<u8>, PeerError> {
        let mut m = Message::new();
        m.build(&[
            Box::new(BINDING_REQUEST),
            Box::new(TransactionId::new()),
            Box::new(TextAttribute::new(
                ATTR_USERNAME,
                format!("{}:{}", remote.ufrag, self.ufrag),
            )),
        ])
        .map_err(|e| PeerError::Stun(e.to_string()))?;
        m.add(ATTR_USE_CANDIDATE, &[]);
        MessageIntegrity::new_short_term_integrity(remote.pwd.clone())
            .add_to(&mut m)
            .map_err(|e| PeerError::Stun(e.to_string()))?;
        FINGERPRINT
            .add_to(&mut m)
            .map_err(|e| PeerError::Stun(e.to_string()))?;
        Ok(m.raw)
    }

    /// Starts the DTLS handshake as the client (the gateway answered
    /// `setup:passive`), accepting only a certificate with the SDP's
    /// fingerprint.
    pub fn connect(&mut self, now: Instant, remote: &RemoteTransport) -> Result<(), PeerError> {
        let expected = remote.fingerprint.to_ascii_lowercase();
        let config: Arc<HandshakeConfig> = Arc::new(
            ConfigBuilder::default()
                .with_crypto_provider(self.provider.clone())
                .with_certificates(vec![self.certificate.clone()])
                .with_srtp_protection_profiles(self.profiles.clone())
                .with_insecure_skip_verify(true)
                .with_verify_peer_certificate(Some(Arc::new(
                    move |certs: &[Vec<u8>], _| match certs.first() {
                        Some(der) if fingerprint(der).to_ascii_lowercase() == expected => Ok(()),
                        _ => Err(rtc_shared::error::Error::Other(
                            "fingerprint mismatch".into(),
                        )),
                    },
                )))
                .build(true, None)
                .map_err(|e| PeerError::Setup(e.to_string()))?,
        );
        self.remote = Some(remote.addr);
        self.endpoint
            .connect(now, remote.addr, config, None)
            .map_err(|e| PeerError::Handshake(e.to_string()))
    }

    /// The next handshake datagram to send to the gateway.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.endpoint.poll_transmit().map(|t| t.message.to_vec())
    }

    /// When the handshake's retransmission timer is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.remote.and_then(|r| self.endpoint.poll_timeout(&r))
    }

    /// Runs the retransmission timer.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), PeerError> {
        match self.remote {
            Some(r) => self
                .endpoint
                .handle_timeout(r, now)
                .map_err(|e| PeerError::Handshake(e.to_string())),
            None => Ok(()),
        }
    }

    /// A DTLS datagram from the gateway; the keys once the handshake is
    /// complete.
    pub fn handle(
        &mut self,
        now: Instant,
        datagram: &[u8],
    ) -> Result<Option<BrowserKeys>, PeerError> {
        let Some(remote) = self.remote else {
            return Ok(None);
        };
        let events = self
            .endpoint
            .read(now, remote, None, datagram.into())
            .map_err(|e| PeerError::Handshake(e.to_string()))?;
        let complete = events
            .iter()
            .any(|e| matches!(e, EndpointEvent::HandshakeComplete));
        if !complete || std::mem::replace(&mut self.done, true) {
            return Ok(None);
        }
        self.keys(remote).map(Some)
    }

    fn keys(&self, remote: SocketAddr) -> Result<BrowserKeys, PeerError> {
        let state = self
            .endpoint
            .get_connection_state(remote)
            .ok_or_else(|| PeerError::Handshake("no connection state".into()))?;
        export_srtp(state, false).map_err(|e| PeerError::Handshake(e.to_string()))
    }
}

/// Connects `peer` at `from` to a relay [`Session`] in memory, as the
/// network would: the ICE check, then the DTLS handshake, datagram by
/// datagram. For tests and benchmarks of the session itself.
pub fn connect_in_memory(
    peer: &mut BrowserPeer,
    remote: &RemoteTransport,
    session: &mut sipline_relay::media::session::Session,
    from: SocketAddr,
) -> Result<BrowserKeys, PeerError> {
    use sipline_relay::media::session::Forward;
    let mut buf = vec![0u8; 2048];
    let check = peer.check(remote)?;
    buf[..check.len()].copy_from_slice(&check);
    match session.from_browser(Instant::now(), from, &mut buf, check.len()) {
        Ok(Forward::ToBrowser { .. }) => {}
        other => return Err(PeerError::Handshake(format!("ICE check: {other:?}"))),
    }
    peer.connect(Instant::now(), remote)?;
    for _ in 0..64 {
        while let Some(d) = peer.poll_transmit() {
            buf[..d.len()].copy_from_slice(&d);
            // Handshake records are answered through poll_transmit; a
            // refusal (a foreign fingerprint) shows as the session's
            // failure.
            let _ = session.from_browser(Instant::now(), from, &mut buf, d.len());
            if let Some(e) = session.failure() {
                return Err(PeerError::Handshake(e.to_string()));
            }
        }
        while let Some((_, d)) = session.poll_transmit() {
            if let Some(keys) = peer.handle(Instant::now(), &d)? {
                return Ok(keys);
            }
        }
    }
    Err(PeerError::Handshake("did not complete".into()))
}
