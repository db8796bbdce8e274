//! The browser side of the relay's media, in memory, against webrtc-rs
//! playing the browser (its STUN and DTLS crates): the DTLS server alone
//! (the handshake completes, both sides export the same SRTP keys per RFC
//! 5764, a certificate not in the SDP fails the call), then a whole call's
//! session (ICE check, DTLS, SRTP ⇄ plain RTP both ways, RTCP, and the
//! packets it must refuse), and at last the same call through the relay's
//! real media sockets on 127.0.0.1 (bound as the relay binds them, the RTP timeout).
//! The shared helpers are here; `session.rs`, `session/sockets.rs` and
//! `video.rs` hold the tests of each part.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use rtc_dtls::config::ConfigBuilder;
use rtc_dtls::crypto::Certificate;
use rtc_dtls::endpoint::{Endpoint, EndpointEvent};
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use rtc_shared::TransportProtocol;
use sipline_relay::media::dtls::{DtlsError, DtlsServer, Identity, fingerprint};
use sipline_relay::media::srtp::{Context, Profile};

const RELAY: &str = "127.0.0.1:40000";
const BROWSER: &str = "127.0.0.1:50000";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

/// A browser-like DTLS client with its own certificate, offering `profiles`.
fn browser(
    profiles: Vec<SrtpProtectionProfile>,
) -> (Endpoint, String, Arc<rtc_dtls::config::HandshakeConfig>) {
    let provider = rtc_crypto::default_provider().expect("provider");
    let cert = Certificate::generate_self_signed(vec!["browser".to_owned()], provider.crypto())
        .expect("cert");
    let fp = fingerprint(cert.certificate[0].as_ref());
    let config = ConfigBuilder::default()
        .with_crypto_provider(provider)
        .with_certificates(vec![cert])
        .with_srtp_protection_profiles(profiles)
        .with_insecure_skip_verify(true)
        .build(true, None)
        .expect("client config");
    (
        Endpoint::new(addr(BROWSER), TransportProtocol::UDP, None),
        fp,
        Arc::new(config),
    )
}

/// Runs the handshake to its end; returns the relay's keys and the client.
fn handshake(
    server: &mut DtlsServer,
    client: &mut Endpoint,
    config: Arc<rtc_dtls::config::HandshakeConfig>,
) -> Result<sipline_relay::media::srtp::SrtpKeys, DtlsError> {
    client
        .connect(Instant::now(), addr(RELAY), config, None)
        .expect("connect");
    let mut keys = None;
    let mut client_done = false;
    for _ in 0..32 {
        while let Some(t) = client.poll_transmit() {
            if let Some(k) = server.handle(Instant::now(), addr(BROWSER), &t.message)? {
                keys = Some(k);
            }
        }
        while let Some((to, datagram)) = server.poll_transmit() {
            assert_eq!(to, addr(BROWSER));
            let events = client
                .read(
                    Instant::now(),
                    addr(RELAY),
                    None,
                    datagram.as_slice().into(),
                )
                .expect("client reads");
            client_done |= events
                .iter()
                .any(|e| matches!(e, EndpointEvent::HandshakeComplete));
        }
        if keys.is_some() && client_done {
            break;
        }
    }
    assert!(client_done, "the browser side completed too");
    keys.ok_or_else(|| DtlsError::Handshake("did not complete".into()))
}

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 160, 0x11, 0x22, 0x33, 0x44];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&[0xd5; 160]);
    p
}

/// The browser's SRTP contexts (outbound, inbound), from its side of the
/// DTLS export laid out as RFC 5764 §4.2 says: client key, server key,
/// client salt, server salt.
fn browser_contexts(client: &Endpoint, relay: SocketAddr, profile: Profile) -> (Context, Context) {
    let state = client.get_connection_state(relay).expect("client state");
    let (k, s) = (profile.key_len(), profile.salt_len());
    let m = state
        .export_keying_material("EXTRACTOR-dtls_srtp", &[], 2 * (k + s))
        .expect("export");
    let m: &[u8] = m.as_ref();
    (
        Context::new(profile, &m[..k], &m[2 * k..2 * k + s]).expect("client write"),
        Context::new(profile, &m[k..2 * k], &m[2 * k + s..]).expect("server write"),
    )
}

/// `plain` protected by `ctx`, as SRTCP when `rtcp`, else as SRTP.
fn sealed(ctx: &mut Context, plain: &[u8], rtcp: bool) -> Vec<u8> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + 32, 0);
    let n = if rtcp {
        ctx.protect_rtcp(&mut buf, plain.len())
    } else {
        ctx.protect_rtp(&mut buf, plain.len())
    }
    .expect("protect");
    buf.truncate(n);
    buf
}

#[test]
fn handshake_exports_matching_srtp_keys_for_both_profiles() {
    let identity = Identity::generate().expect("identity");
    assert!(
        identity.fingerprint().starts_with("sha-256 ") && identity.fingerprint().len() == 8 + 95
    );
    for (offered, want) in [
        (
            SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80,
            Profile::Aes128CmHmacSha1_80,
        ),
        (
            SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm,
            Profile::AeadAes128Gcm,
        ),
    ] {
        let (mut client, fp, config) = browser(vec![offered]);
        let mut server = DtlsServer::new(&identity, addr(RELAY), &fp).expect("server");
        let mut keys = handshake(&mut server, &mut client, config).expect("handshake");
        assert_eq!(keys.profile, want);
        assert!(server.is_done());

        // The browser's side of the keys, exported the same way.
        let (mut browser_out, mut browser_in) = browser_contexts(&client, addr(RELAY), want);

        // Browser → relay.
        let plain = rtp(7);
        let mut buf = sealed(&mut browser_out, &plain, false);
        assert_eq!(buf.len(), plain.len() + want.rtp_overhead());
        let n = keys
            .inbound
            .unprotect_rtp(&mut buf)
            .expect("the relay decrypts the browser");
        assert_eq!(&buf[..n], &plain[..]);
        // Relay → browser.
        let mut buf = plain.clone();
        buf.resize(plain.len() + want.rtp_overhead(), 0);
        let n = keys
            .outbound
            .protect_rtp(&mut buf, plain.len())
            .expect("protect");
        let n = browser_in
            .unprotect_rtp(&mut buf[..n])
            .expect("the browser decrypts the relay");
        assert_eq!(&buf[..n], &plain[..]);
    }
}

#[test]
fn a_certificate_not_in_the_sdp_fails_the_call() {
    let identity = Identity::generate().expect("identity");
    let (mut client, _real, config) =
        browser(vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80]);
    let other = "sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
    let mut server = DtlsServer::new(&identity, addr(RELAY), other).expect("server");
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        handshake(&mut server, &mut client, config)
    }));
    match result {
        Ok(Err(e)) => assert_eq!(e, DtlsError::FingerprintMismatch),
        Ok(Ok(_)) => panic!("a foreign certificate must not complete the handshake"),
        Err(_) => panic!("handshake helper panicked instead of reporting the mismatch"),
    }
    assert!(!server.is_done());
}

/// A call's whole session in memory, then through the relay's real media
/// sockets.
mod session;
/// A call with an audio and a video leg, its browser from `sipline-load`.
mod video;
