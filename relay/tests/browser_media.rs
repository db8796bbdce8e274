//! The browser side of the relay's media, in memory, against webrtc-rs
//! playing the browser (its STUN and DTLS crates): the DTLS server alone
//! (the handshake completes, both sides export the same SRTP keys per RFC
//! 5764, a certificate not in the SDP fails the call), then a whole call's
//! session (ICE check, DTLS, SRTP ⇄ plain RTP both ways, RTCP, and the
//! packets it must refuse), and at last the same call through the relay's
//! real media sockets on 127.0.0.1 (bound as the relay binds them, the RTP timeout).

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

mod session {
    use super::*;
    use sipline_relay::media::ice::IceLite;
    use sipline_relay::media::sdes::{self, KeySalt};
    use sipline_relay::media::session::{Drop, Forward, Session};
    use sipline_relay::media::srtp::{LegKeys, SrtpError};
    use stun::agent::TransactionId;
    use stun::attributes::{ATTR_USE_CANDIDATE, ATTR_USERNAME};
    use stun::fingerprint::FINGERPRINT;
    use stun::integrity::MessageIntegrity;
    use stun::message::{BINDING_REQUEST, Message, Setter};
    use stun::textattrs::TextAttribute;

    const PBX_RTP: &str = "10.0.0.5:16384";
    const PBX_RTCP: &str = "10.0.0.5:16385";

    fn check() -> Vec<u8> {
        check_as("rlyU:brwU", "relaypassword0123456789a")
    }

    /// A nominating check as `username`, signed with `pwd`.
    fn check_as(username: &str, pwd: &str) -> Vec<u8> {
        let mut m = Message::new();
        m.build(&[
            Box::new(BINDING_REQUEST),
            Box::new(TransactionId::new()),
            Box::new(TextAttribute::new(ATTR_USERNAME, username.to_owned())),
        ])
        .expect("build");
        m.add(ATTR_USE_CANDIDATE, &[]);
        MessageIntegrity::new_short_term_integrity(pwd.to_owned())
            .add_to(&mut m)
            .expect("integrity");
        FINGERPRINT.add_to(&mut m).expect("fingerprint");
        m.raw
    }

    fn feed(session: &mut Session, from: &str, bytes: &[u8]) -> Result<(Forward, Vec<u8>), Drop> {
        let mut buf = bytes.to_vec();
        buf.resize(bytes.len().max(100) + 64, 0);
        let fwd = session.from_browser(Instant::now(), addr(from), &mut buf, bytes.len())?;
        Ok((fwd, buf))
    }

    #[test]
    fn a_call_s_media_crosses_both_ways_and_strangers_are_refused() {
        let identity = Identity::generate().expect("identity");
        let (mut client, fp, config) =
            browser(vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80]);
        let mut ice = IceLite::new("rlyU", "relaypassword0123456789a");
        ice.set_remote_ufrag("brwU");
        let dtls = DtlsServer::new(&identity, addr(RELAY), &fp).expect("server");
        let mut session = Session::new(ice, dtls);
        session.set_pbx(0, addr(PBX_RTP), addr(PBX_RTCP));

        // Before any check, the browser's address is unknown.
        assert_eq!(
            feed(&mut session, BROWSER, &rtp(1)).err(),
            Some(Drop::UnknownSource)
        );
        // The ICE check is answered, to where it came from.
        let (fwd, _) = feed(&mut session, BROWSER, &check()).expect("answered");
        assert!(matches!(fwd, Forward::ToBrowser { to, .. } if to == addr(BROWSER)));
        // Media before the handshake has no keys.
        assert_eq!(
            feed(&mut session, BROWSER, &rtp(1)).err(),
            Some(Drop::NoKeys)
        );

        // DTLS, through the session.
        client
            .connect(Instant::now(), addr(RELAY), config, None)
            .expect("connect");
        for _ in 0..32 {
            while let Some(t) = client.poll_transmit() {
                let (fwd, _) = feed(&mut session, BROWSER, &t.message).expect("handshake datagram");
                assert_eq!(fwd, Forward::Nothing);
            }
            while let Some((to, d)) = session.poll_transmit() {
                assert_eq!(to, addr(BROWSER));
                client
                    .read(Instant::now(), addr(RELAY), None, d.as_slice().into())
                    .expect("client reads");
            }
            if session.is_connected() {
                break;
            }
        }
        assert!(session.is_connected(), "DTLS completed through the session");
        let profile = Profile::Aes128CmHmacSha1_80;
        let (mut browser_out, mut browser_in) = browser_contexts(&client, addr(RELAY), profile);

        // Browser → PBX: SRTP in, plain RTP out to the PBX's RTP port.
        let plain = rtp(2);
        let srtp = sealed(&mut browser_out, &plain, false);
        let (fwd, buf) = feed(&mut session, BROWSER, &srtp).expect("forwarded");
        assert_eq!(
            fwd,
            Forward::ToPbx {
                leg: 0,
                to: addr(PBX_RTP),
                len: plain.len(),
                rtcp: false
            }
        );
        assert_eq!(&buf[..plain.len()], &plain[..]);
        // RTCP (muxed on the browser side) goes to the PBX's RTCP port.
        let sr = [
            0x80u8, 200, 0, 6, 0x11, 0x22, 0x33, 0x44, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
            14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
        ];
        let srtcp = sealed(&mut browser_out, &sr, true);
        let (fwd, buf) = feed(&mut session, BROWSER, &srtcp).expect("forwarded");
        assert_eq!(
            fwd,
            Forward::ToPbx {
                leg: 0,
                to: addr(PBX_RTCP),
                len: sr.len(),
                rtcp: true
            }
        );
        assert_eq!(&buf[..sr.len()], &sr[..]);

        // PBX → browser: plain RTP in, SRTP out to the verified address.
        let mut buf = plain.clone();
        buf.resize(plain.len() + 10, 0);
        let fwd = session
            .from_pbx(
                Instant::now(),
                0,
                addr(PBX_RTP),
                false,
                &mut buf,
                plain.len(),
            )
            .expect("forwarded");
        let Forward::ToBrowser { to, len } = fwd else {
            panic!("{fwd:?}")
        };
        assert_eq!(to, addr(BROWSER));
        let n = browser_in
            .unprotect_rtp(&mut buf[..len])
            .expect("the browser decrypts it");
        assert_eq!(&buf[..n], &plain[..]);

        // Refused: a forged SRTP packet, a replay, RTP from a stranger
        // pretending to be the PBX, media from an unchecked address.
        let mut forged = srtp.clone();
        forged[20] ^= 0xff;
        forged[2..4].copy_from_slice(&9u16.to_be_bytes());
        assert!(matches!(
            feed(&mut session, BROWSER, &forged).err(),
            Some(Drop::Srtp(SrtpError::AuthFailed))
        ));
        // The browser's earlier packet, once more.
        let (mut fresh, _) = browser_contexts(&client, addr(RELAY), profile);
        let again = sealed(&mut fresh, &rtp(2), false);
        assert!(matches!(
            feed(&mut session, BROWSER, &again).err(),
            Some(Drop::Srtp(SrtpError::Replay))
        ));
        let mut buf = plain.clone();
        buf.resize(plain.len() + 10, 0);
        assert_eq!(
            session.from_pbx(
                Instant::now(),
                0,
                addr("10.0.0.66:16384"),
                false,
                &mut buf,
                plain.len()
            ),
            Err(Drop::UnknownSource)
        );
        assert_eq!(
            feed(&mut session, "127.0.0.1:50001", &srtp).err(),
            Some(Drop::UnknownSource)
        );
        // Empty datagrams and junk DTLS records from the browser's own
        // address are dropped; the established call goes on.
        let mut junk = vec![23u8, 0xfe, 0xfd, 0, 1, 0, 0, 0, 0, 0, 9, 0, 4];
        junk.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        for bad in [&[][..], &[22u8][..], &junk[..]] {
            let outcome = feed(&mut session, BROWSER, bad).map(|(fwd, _)| fwd);
            assert!(
                matches!(outcome, Err(_) | Ok(Forward::Nothing)),
                "{bad:?}: {outcome:?}"
            );
        }
        assert_eq!(session.failure(), None);
        let srtp = sealed(&mut browser_out, &rtp(3), false);
        let (fwd, _) = feed(&mut session, BROWSER, &srtp).expect("still forwarded");
        assert!(matches!(fwd, Forward::ToPbx { .. }));
        let mut empty = vec![0x80u8; 64];
        assert_eq!(
            session.from_pbx(Instant::now(), 0, addr(PBX_RTP), false, &mut empty, 0),
            Err(Drop::Unrecognised),
            "an empty datagram from the PBX"
        );

        assert_eq!(session.counters.to_pbx, 3);
        assert_eq!(session.counters.to_browser, 1);
        assert_eq!(session.counters.srtp_failures, 2);

        // Latching, for PBX phones behind NAT: the first packet from
        // elsewhere takes the stream over, and nobody after it.
        session.set_latching(true);
        let from_pbx = |session: &mut Session, from: &str| {
            let mut buf = plain.clone();
            buf.resize(plain.len() + 32, 0);
            session.from_pbx(Instant::now(), 0, addr(from), false, &mut buf, plain.len())
        };
        assert!(matches!(
            from_pbx(&mut session, "10.0.0.66:16384"),
            Ok(Forward::ToBrowser { .. })
        ));
        for late in ["10.0.0.77:16384", PBX_RTP] {
            assert_eq!(
                from_pbx(&mut session, late),
                Err(Drop::UnknownSource),
                "{late}"
            );
        }
        let srtp = sealed(&mut browser_out, &rtp(4), false);
        let (fwd, _) = feed(&mut session, BROWSER, &srtp).expect("forwarded");
        assert!(
            matches!(fwd, Forward::ToPbx { to, .. } if to == addr("10.0.0.66:16384")),
            "the browser's RTP follows the latch: {fwd:?}"
        );
        // A new SDP from the PBX names its address again; its first packet
        // comes from there, and that locks the stream too.
        session.set_pbx(0, addr(PBX_RTP), addr(PBX_RTCP));
        assert!(matches!(
            from_pbx(&mut session, PBX_RTP),
            Ok(Forward::ToBrowser { .. })
        ));
        assert_eq!(
            from_pbx(&mut session, "10.0.0.66:16384"),
            Err(Drop::UnknownSource),
            "no stranger takes a stream latched at its SDP address"
        );

        // SDES on the PBX leg (RFC 4568): SRTP toward the PBX with the
        // relay's key, SRTP from it with the PBX's; plain RTP from the
        // PBX is refused then.
        let ours = KeySalt::derive(&[1; 32], 1, Profile::AeadAes128Gcm);
        let theirs = KeySalt::derive(&[1; 32], 2, Profile::AeadAes128Gcm);
        let keys = sdes::keys(&ours, &theirs).expect("keys");
        session.set_pbx_keys(0, LegKeys::Both(Box::new(keys)));
        let mut pbx = sdes::keys(&theirs, &ours).expect("the PBX's side");
        let srtp = sealed(&mut browser_out, &rtp(5), false);
        let (fwd, mut buf) = feed(&mut session, BROWSER, &srtp).expect("forwarded");
        let Forward::ToPbx { len, .. } = fwd else {
            panic!("{fwd:?}")
        };
        assert_eq!(len, rtp(5).len() + 16, "AES-GCM's tag toward the PBX");
        let n = pbx
            .inbound
            .unprotect_rtp(&mut buf[..len])
            .expect("the PBX decrypts it");
        assert_eq!(&buf[..n], &rtp(5)[..]);
        let fresh = rtp(6);
        let mut buf = fresh.clone();
        buf.resize(fresh.len() + 64, 0);
        let len = pbx
            .outbound
            .protect_rtp(&mut buf, fresh.len())
            .expect("sealed");
        let fwd = session
            .from_pbx(Instant::now(), 0, addr(PBX_RTP), false, &mut buf, len)
            .expect("the PBX's SRTP is decrypted and sealed for the browser");
        let Forward::ToBrowser { len, .. } = fwd else {
            panic!("{fwd:?}")
        };
        let n = browser_in
            .unprotect_rtp(&mut buf[..len])
            .expect("the browser decrypts it");
        assert_eq!(&buf[..n], &fresh[..], "the PBX's payload, whole");
        assert!(
            matches!(from_pbx(&mut session, PBX_RTP), Err(Drop::Srtp(_))),
            "plain RTP on an SRTP leg"
        );
    }

    #[test]
    fn a_dtls_fingerprint_mismatch_is_the_session_s_failure() {
        let identity = Identity::generate().expect("identity");
        let (mut client, _fp, config) =
            browser(vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80]);
        let mut ice = IceLite::new("rlyU", "relaypassword0123456789a");
        ice.set_remote_ufrag("brwU");
        let wrong = "sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
        let mut session = Session::new(
            ice,
            DtlsServer::new(&identity, addr(RELAY), wrong).expect("server"),
        );
        feed(&mut session, BROWSER, &check()).expect("answered");
        client
            .connect(Instant::now(), addr(RELAY), config, None)
            .expect("connect");
        let mut failed = false;
        for _ in 0..16 {
            while let Some(t) = client.poll_transmit() {
                failed |= matches!(
                    feed(&mut session, BROWSER, &t.message),
                    Err(Drop::Dtls(DtlsError::FingerprintMismatch))
                );
            }
            while let Some((_, d)) = session.poll_transmit() {
                let _ = client.read(Instant::now(), addr(RELAY), None, d.as_slice().into());
            }
        }
        assert!(failed, "the mismatch is reported");
        assert_eq!(session.failure(), Some(&DtlsError::FingerprintMismatch));
        assert!(!session.is_connected());
    }

    /// The RTP timeout with explicit time, on a real session: before DTLS
    /// completes the browser's checks prove nothing; after, its consent
    /// checks alone keep a call on hold up, its media too, and its silence
    /// for the idle time ends the call.
    #[test]
    fn only_a_connected_browser_keeps_an_answered_call_up() {
        use sipline_relay::ids::MediaId;
        use sipline_relay::media::call::{CHECK, CallMedia, Over};
        use sipline_relay::media::calls::Command;
        use std::time::Duration;

        const IDLE: Duration = Duration::from_secs(30);
        let secs = |t: Instant, s: u64| t + Duration::from_secs(s);
        let run = |media: &mut CallMedia, until: Instant| -> Result<(), Over> {
            while media.poll_timeout() <= until {
                media.handle_timeout(media.poll_timeout())?;
            }
            Ok(())
        };
        let input = |media: &mut CallMedia, at: Instant, bytes: &[u8]| {
            let mut buf = bytes.to_vec();
            buf.resize(bytes.len().max(100) + 64, 0);
            media.from_browser(at, addr(BROWSER), &mut buf, bytes.len())
        };
        let identity = Identity::generate().expect("identity");
        let session = |fp: &str| {
            let mut ice = IceLite::new("rlyU", "relaypassword0123456789a");
            ice.set_remote_ufrag("brwU");
            let dtls = DtlsServer::new(&identity, addr(RELAY), fp).expect("server");
            Command::Browser {
                id: MediaId(1),
                session: Box::new(Session::new(ice, dtls)),
            }
        };
        let answered = || Command::Answered { id: MediaId(1) };

        // Checks every 5 s, but DTLS never completes: the call ends 30 s
        // after the answer.
        let t0 = Instant::now();
        let mut media = CallMedia::new(t0, IDLE);
        media.apply(t0, session("sha-256 00"));
        media.apply(t0, answered());
        for s in (5..30).step_by(5) {
            assert!(matches!(
                input(&mut media, secs(t0, s), &check()),
                Ok(Forward::ToBrowser { .. })
            ));
            // The handshake's own timer gives up long after this; only
            // the check whether the call is over is run here.
            assert_eq!(run(&mut media, secs(t0, s)), Ok(()));
        }
        assert_eq!(
            run(&mut media, secs(t0, 30) + CHECK),
            Err(Over::Timeout),
            "unconnected checks keep nothing up"
        );

        // Connected: checks every 5 s keep it up for an hour on hold, then
        // media, then silence ends it.
        let (mut client, fp, config) =
            browser(vec![SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80]);
        let mut media = CallMedia::new(t0, IDLE);
        media.apply(t0, session(&fp));
        input(&mut media, t0, &check()).expect("answered");
        client
            .connect(Instant::now(), addr(RELAY), config, None)
            .expect("connect");
        for _ in 0..32 {
            while let Some(t) = client.poll_transmit() {
                input(&mut media, t0, &t.message).expect("handshake datagram");
            }
            while let Some((_, d)) = media.poll_transmit() {
                client
                    .read(Instant::now(), addr(RELAY), None, d.as_slice().into())
                    .expect("client reads");
            }
        }
        assert_eq!(media.failure(), None);
        media.apply(t0, answered());
        for s in (5..3600).step_by(5) {
            input(&mut media, secs(t0, s), &check()).expect("consent check");
            assert_eq!(run(&mut media, secs(t0, s)), Ok(()), "at {s} s");
        }
        let (mut browser_out, _) =
            browser_contexts(&client, addr(RELAY), Profile::Aes128CmHmacSha1_80);
        for (n, s) in (3601..3700).enumerate() {
            let srtp = sealed(&mut browser_out, &rtp(n as u16 + 10), false);
            assert_eq!(
                input(&mut media, secs(t0, s), &srtp).err(),
                Some(Drop::NoPbxAddress),
                "authenticated, and the PBX is not known: still the browser"
            );
            assert_eq!(run(&mut media, secs(t0, s)), Ok(()));
        }
        assert_eq!(run(&mut media, secs(t0, 3699 + 29)), Ok(()));
        assert_eq!(
            run(&mut media, secs(t0, 3699 + 30) + CHECK),
            Err(Over::Timeout),
            "30 s of silence"
        );
    }

    /// The same call through its real sockets on 127.0.0.1: the shell
    /// binds the ports from the pool, answers the check, completes DTLS,
    /// carries RTP and RTCP both ways, and gives the ports back.
    mod sockets {
        use super::*;
        use std::net::{IpAddr, Ipv4Addr};
        use std::time::Duration;

        use sipline_relay::ids::{ConnId, MediaId};
        use sipline_relay::media::calls::{
            Carrier, Command, MediaCalls, MediaConfig, PortBinder, Side,
        };
        use sipline_relay::net::engine::Engine;
        use sipline_relay::net::media::{Ended, MediaFigures, MediaSockets, SocketStash};
        use tokio::net::UdpSocket;

        const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        /// The one call these tests run.
        const CALL: MediaId = MediaId(1);

        async fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
            let mut buf = vec![0u8; 2048];
            let (n, from) =
                tokio::time::timeout(Duration::from_secs(2), socket.recv_from(&mut buf))
                    .await
                    .expect("a datagram within 2 s")
                    .expect("recv");
            buf.truncate(n);
            (buf, from)
        }

        /// A call's sockets, bound the way the relay binds them.
        fn sockets(browser: u16, pbx: u16) -> MediaSockets {
            let mut stash = SocketStash::default();
            let (browser, pbx) = (SocketAddr::new(LO, browser), SocketAddr::new(LO, pbx));
            stash.bind(browser, false).expect("bind");
            stash.bind(pbx, true).expect("bind");
            MediaSockets::take(&stash, Some(browser), &[pbx]).expect("take")
        }

        /// Completes DTLS with the relay at `relay` over `browser`; the
        /// browser's SRTP contexts, out and in.
        async fn handshake(
            browser: &UdpSocket,
            relay: SocketAddr,
            mut client: Endpoint,
            config: Arc<rtc_dtls::config::HandshakeConfig>,
        ) -> (Context, Context) {
            client
                .connect(Instant::now(), relay, config, None)
                .expect("connect");
            let mut done = false;
            for _ in 0..16 {
                while let Some(t) = client.poll_transmit() {
                    browser.send_to(&t.message, relay).await.expect("send");
                }
                if done {
                    break;
                }
                let (datagram, _) = recv(browser).await;
                let events = client
                    .read(Instant::now(), relay, None, datagram.as_slice().into())
                    .expect("client reads");
                done |= events
                    .iter()
                    .any(|e| matches!(e, EndpointEvent::HandshakeComplete));
            }
            assert!(done, "DTLS completed over UDP");
            browser_contexts(&client, relay, Profile::AeadAes128Gcm)
        }

        /// One UDP port for every browser: two browsers on the same
        /// address, each its own call, told apart by their ICE usernames
        /// and then by their ports; each call's media reaches its own PBX
        /// ports and comes back to its own browser.
        #[tokio::test]
        async fn browsers_on_one_shared_port_each_get_their_own_call() {
            let shared = SocketAddr::new(LO, 47040);
            let (engine, mut ends) = Engine::start(
                1,
                Duration::from_secs(10),
                MediaFigures::default(),
                Some(shared),
            )
            .expect("engine");
            let identity = Identity::generate().expect("identity");
            let mut stash = SocketStash::default();
            let mut calls = Vec::new();
            for (n, ours, pwd, pbx_port) in [
                (1, "rlyA", "passwordofcallA012345678", 47042),
                (2, "rlyB", "passwordofcallB012345678", 47046),
            ] {
                let id = MediaId(n);
                let pbx = SocketAddr::new(LO, pbx_port);
                stash.bind(pbx, true).expect("bind");
                let sockets = MediaSockets::take(&stash, None, &[pbx]).expect("take");
                assert!(
                    sockets.browser_addr().is_none(),
                    "the shared port serves it"
                );
                engine.open(id, sockets).expect("opened");
                let pbx_rtp = UdpSocket::bind((LO, 0)).await.expect("bind");
                engine.apply(Command::Pbx {
                    id,
                    leg: 0,
                    rtp: pbx_rtp.local_addr().expect("addr"),
                    rtcp: pbx_rtp.local_addr().expect("addr"),
                    clock: 8000,
                });
                let (client, fp, config) =
                    super::super::browser(vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm]);
                let mut ice = IceLite::new(ours, pwd);
                ice.set_remote_ufrag("brwU");
                let dtls = DtlsServer::new(&identity, shared, &fp).expect("server");
                engine.apply(Command::Browser {
                    id,
                    session: Box::new(Session::new(ice, dtls)),
                });
                let browser = UdpSocket::bind((LO, 0)).await.expect("bind");
                calls.push((id, ours, pwd, pbx, pbx_rtp, browser, Some(client), config));
            }

            // A stranger's datagram names no call: dropped, nothing breaks.
            let stranger = UdpSocket::bind((LO, 0)).await.expect("bind");
            stranger.send_to(&rtp(1), shared).await.expect("send");

            let mut contexts = Vec::new();
            for (_, ours, pwd, _, _, browser, client, config) in calls.iter_mut() {
                // Each browser's check is answered with its call's
                // password (the other call would refuse it).
                browser
                    .send_to(&check_as(&format!("{ours}:brwU"), pwd), shared)
                    .await
                    .expect("send");
                let (answer, from) = recv(browser).await;
                assert_eq!((from, &answer[..2]), (shared, &[0x01u8, 0x01][..]));
                let client = client.take().expect("one handshake each");
                contexts.push(handshake(browser, shared, client, config.clone()).await);
            }
            for (i, ((id, _, _, pbx, pbx_rtp, browser, _, _), (out, inb))) in
                calls.iter().zip(contexts.iter_mut()).enumerate()
            {
                // Browser → its own PBX ports, and back to it alone.
                let plain = rtp(100 + i as u16);
                browser
                    .send_to(&sealed(out, &plain, false), shared)
                    .await
                    .expect("send");
                let (got, from) = recv(pbx_rtp).await;
                assert_eq!((got, from), (plain.clone(), *pbx), "call {id:?}");
                pbx_rtp.send_to(&plain, *pbx).await.expect("send");
                let (mut got, from) = recv(browser).await;
                assert_eq!(from, shared);
                let n = inb
                    .unprotect_rtp(&mut got)
                    .expect("its browser decrypts it");
                assert_eq!(&got[..n], &plain[..]);
            }
            for (id, ..) in &calls {
                engine.close(*id);
            }
            for (id, ..) in &calls {
                let (ended, why) = ends.recv().await.expect("an end");
                assert_eq!(ended, *id);
                assert!(matches!(why, Ended::Stopped), "{why:?}");
            }
        }

        #[tokio::test]
        async fn a_call_s_media_crosses_real_sockets() {
            let sockets = sockets(47000, 47002);
            let relay_browser = sockets.browser_addr().expect("its own").expect("addr");
            let relay_rtp = sockets.pbx_addr().expect("addr");
            assert_eq!(relay_rtp.port() % 2, 0, "RTP on an even port");

            let browser = UdpSocket::bind((LO, 0)).await.expect("bind");
            let pbx_rtp = UdpSocket::bind((LO, 0)).await.expect("bind");
            let pbx_rtcp = UdpSocket::bind((LO, 0)).await.expect("bind");
            let identity = Identity::generate().expect("identity");
            let (client, fp, config) =
                super::super::browser(vec![SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm]);
            let mut ice = IceLite::new("rlyU", "relaypassword0123456789a");
            ice.set_remote_ufrag("brwU");
            let dtls = DtlsServer::new(&identity, relay_browser, &fp).expect("server");
            let figures = MediaFigures::default();
            let (engine, mut ends) =
                Engine::start(1, Duration::from_secs(10), figures.clone(), None).expect("engine");
            engine.open(CALL, sockets).expect("opened");
            // The PBX's address may come first (an incoming call).
            engine.apply(Command::Pbx {
                id: CALL,
                leg: 0,
                rtp: pbx_rtp.local_addr().expect("addr"),
                rtcp: pbx_rtcp.local_addr().expect("addr"),
                clock: 8000,
            });
            engine.apply(Command::Browser {
                id: CALL,
                session: Box::new(Session::new(ice, dtls)),
            });

            // ICE check, answered from the WebRTC port.
            browser
                .send_to(&check(), relay_browser)
                .await
                .expect("send");
            let (answer, from) = recv(&browser).await;
            assert_eq!((from, &answer[..2]), (relay_browser, &[0x01u8, 0x01][..]));

            // DTLS over the wire.
            let (mut out, mut inb) = handshake(&browser, relay_browser, client, config).await;

            // Browser → PBX: SRTP in, plain RTP out of the even port.
            let plain = rtp(7);
            browser
                .send_to(&sealed(&mut out, &plain, false), relay_browser)
                .await
                .expect("send");
            let (got, from) = recv(&pbx_rtp).await;
            assert_eq!((got, from), (plain.clone(), relay_rtp));
            // SRTCP in, RTCP out of the odd port to the PBX's RTCP port.
            let sr = [
                0x80u8, 200, 0, 6, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                0, 0, 0,
            ];
            browser
                .send_to(&sealed(&mut out, &sr, true), relay_browser)
                .await
                .expect("send");
            let (got, from) = recv(&pbx_rtcp).await;
            assert_eq!(got, sr.to_vec());
            assert_eq!(from.port(), relay_rtp.port() + 1);

            // PBX → browser: plain RTP and RTCP in, SRTP and SRTCP out.
            pbx_rtp.send_to(&plain, relay_rtp).await.expect("send");
            let (mut got, from) = recv(&browser).await;
            assert_eq!(from, relay_browser);
            let n = inb
                .unprotect_rtp(&mut got)
                .expect("the browser decrypts it");
            assert_eq!(&got[..n], &plain[..]);
            let rtcp_port = SocketAddr::new(LO, relay_rtp.port() + 1);
            pbx_rtcp.send_to(&sr, rtcp_port).await.expect("send");
            let (mut got, _) = recv(&browser).await;
            let n = inb
                .unprotect_rtcp(&mut got)
                .expect("the browser decrypts it");
            assert_eq!(&got[..n], &sr[..]);

            // An oversized datagram is dropped whole, never cut short.
            let mut big = rtp(8);
            big.resize(2000, 0xd5);
            pbx_rtp.send_to(&big, relay_rtp).await.expect("send");
            let next = rtp(9);
            pbx_rtp.send_to(&next, relay_rtp).await.expect("send");
            let (mut got, _) = recv(&browser).await;
            let n = inb
                .unprotect_rtp(&mut got)
                .expect("the browser decrypts it");
            assert_eq!(&got[..n], &next[..]);

            engine.close(CALL); // the signalling ends the call
            let (id, ended) = ends.recv().await.expect("the call's end");
            assert_eq!(id, CALL);
            assert!(matches!(ended, Ended::Stopped), "{ended:?}");
            let total = figures.total();
            assert_eq!(
                (total.to_pbx, total.to_browser),
                (2, 3),
                "published at the end"
            );
            assert_eq!(total.bytes_to_pbx, (plain.len() + sr.len()) as u64);
        }

        #[tokio::test]
        async fn every_call_reports_its_end_once_also_when_the_engine_stops() {
            let figures = MediaFigures::default();
            let (engine, mut ends) =
                Engine::start(2, Duration::from_secs(10), figures, None).expect("engine");
            assert_eq!(engine.workers(), 2);
            // Calls 1 and 2 land on different workers.
            engine
                .open(MediaId(1), sockets(47010, 47012))
                .expect("opened");
            engine
                .open(MediaId(2), sockets(47020, 47022))
                .expect("opened");
            engine.close(MediaId(1));
            engine.close(MediaId(1)); // twice: the second finds nothing
            let (id, ended) = ends.recv().await.expect("call 1's end");
            assert_eq!(id, MediaId(1));
            assert!(matches!(ended, Ended::Stopped), "{ended:?}");
            // A command for a call that is gone is dropped.
            engine.apply(Command::Answered { id: MediaId(1) });
            drop(engine); // the relay stops: its threads end their calls
            let (id, ended) = ends.recv().await.expect("call 2's end");
            assert_eq!(id, MediaId(2));
            assert!(matches!(ended, Ended::Stopped), "{ended:?}");
            assert!(
                ends.recv().await.is_none(),
                "nothing more, the workers gone"
            );
            // Their ports are free again.
            sockets(47010, 47012);
            sockets(47020, 47022);
        }

        /// The media table hands a pair out again as soon as its call
        /// ended; the engine's worker closes the old sockets a moment
        /// later: the bind waits for that, it does not fail.
        #[tokio::test]
        async fn a_closed_call_s_ports_bind_again_at_once() {
            let (engine, mut ends) =
                Engine::start(1, Duration::from_secs(10), MediaFigures::default(), None)
                    .expect("engine");
            let mut stash = SocketStash::default();
            // Below the kernel's ephemeral range (32768-60999): this test
            // binds its ports forty times, and in that range any other
            // test's port-0 socket (or baresip's RTP range) may take one
            // in between.
            let (browser, pbx) = (SocketAddr::new(LO, 29030), SocketAddr::new(LO, 29032));
            for round in 0..20 {
                stash.bind(browser, false).expect("bind");
                stash.bind(pbx, true).expect("bind");
                let sockets = MediaSockets::take(&stash, Some(browser), &[pbx]).expect("take");
                let call = MediaId(round);
                engine.open(call, sockets).expect("opened");
                engine.close(call);
                stash.unbind(browser);
                stash.unbind(pbx);
            }
            stash.bind(browser, false).expect("bind");
            for round in 0..20 {
                let (id, ended) = ends.recv().await.expect("an end");
                assert_eq!(id, MediaId(round));
                assert!(matches!(ended, Ended::Stopped), "{ended:?}");
            }
        }

        #[tokio::test]
        async fn a_port_another_program_holds_is_passed_over() {
            let _squatter = UdpSocket::bind((LO, 47200)).await.expect("bind 47200");
            let stash = SocketStash::default();
            let cfg = MediaConfig {
                port_min: 47200,
                port_max: 47209,
                ..MediaConfig::default()
            };
            let identity = Arc::new(Identity::generate().expect("identity"));
            let mut calls = MediaCalls::new(cfg, identity, [1; 32])
                .expect("range")
                .with_binder(Box::new(stash.clone()));
            let offer = include_str!(
                "../../sdk-wasm/core/tests/corpus/valid/invite_chromium_webrtc_sdp.sip"
            );
            let body = offer.split("\r\n\r\n").nth(1).expect("a body");
            calls
                .sdp(
                    ConnId(1),
                    "c",
                    Side::Browser,
                    Carrier::Request(sipline_core::sip::Method::Invite),
                    body.as_bytes(),
                )
                .expect("carried");
            let Some(Command::Open { browser, pbx, .. }) = calls.poll_command() else {
                panic!("the call opens first")
            };
            assert_eq!((browser.port(), pbx[0].port()), (47202, 47204));
            let sockets = MediaSockets::take(&stash, Some(browser), &pbx).expect("bound already");
            assert_eq!(sockets.pbx_addr().expect("addr"), pbx[0]);
            assert_eq!(calls.ports().0, 2, "the squatted pair went back");
        }

        #[tokio::test]
        async fn silence_after_the_answer_ends_the_call() {
            let sockets = sockets(47100, 47102);
            let identity = Identity::generate().expect("identity");
            let dtls = DtlsServer::new(
                &identity,
                sockets.browser_addr().expect("its own").expect("addr"),
                "sha-256 00",
            )
            .expect("server");
            let session = Session::new(IceLite::new("rlyU", "relaypassword0123456789a"), dtls);
            let (engine, mut ends) =
                Engine::start(1, Duration::from_millis(300), MediaFigures::default(), None)
                    .expect("engine");
            engine.open(CALL, sockets).expect("opened");
            engine.apply(Command::Browser {
                id: CALL,
                session: Box::new(session),
            });
            // Ringing is silent: no timeout before the answer.
            assert!(
                tokio::time::timeout(Duration::from_millis(600), ends.recv())
                    .await
                    .is_err(),
                "still running while unanswered"
            );
            engine.apply(Command::Answered { id: CALL });
            let (id, ended) = tokio::time::timeout(Duration::from_secs(5), ends.recv())
                .await
                .expect("ended by the RTP timeout")
                .expect("the call's end");
            assert_eq!(id, CALL);
            assert!(matches!(ended, Ended::MediaTimeout), "{ended:?}");
        }
    }
}

/// A call with an audio and a video leg, its browser from `sipline-load`.
mod video {
    use super::*;
    use sipline_load::peer::{BrowserPeer, RemoteTransport, connect_in_memory};
    use sipline_relay::media::ice::IceLite;
    use sipline_relay::media::session::{Forward, Session};

    const AUDIO_PBX: &str = "10.0.0.5:16384";
    const VIDEO_PBX: &str = "10.0.0.5:16390";

    fn packet(pt: u8, ssrc: u32, seq: u16) -> Vec<u8> {
        let mut p = rtp(seq);
        p[1] = pt;
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p
    }

    #[test]
    fn each_stream_goes_to_its_leg_by_payload_type_and_ssrc() {
        let identity = Identity::generate().expect("identity");
        let mut peer = BrowserPeer::new(addr(BROWSER)).expect("browser");
        let mut ice = IceLite::new("rlyU", "relaypassword0123456789a");
        ice.set_remote_ufrag(peer.ufrag());
        let dtls = DtlsServer::new(&identity, addr(RELAY), peer.fingerprint()).expect("server");
        let mut session = Session::new(ice, dtls);
        session.set_payload_legs(&[(0, 0), (101, 0), (96, 1), (97, 1)]);
        session.set_pbx(0, addr(AUDIO_PBX), addr("10.0.0.5:16385"));
        session.set_pbx(1, addr(VIDEO_PBX), addr("10.0.0.5:16391"));
        let remote = RemoteTransport {
            addr: addr(RELAY),
            ufrag: "rlyU".into(),
            pwd: "relaypassword0123456789a".into(),
            fingerprint: identity.fingerprint().into(),
        };
        let mut keys =
            connect_in_memory(&mut peer, &remote, &mut session, addr(BROWSER)).expect("connected");
        let mut send = |session: &mut Session, plain: &[u8], rtcp: bool| {
            let mut buf = sealed(&mut keys.outbound, plain, rtcp);
            let n = buf.len();
            buf.resize(n + 64, 0);
            session.from_browser(Instant::now(), addr(BROWSER), &mut buf, n)
        };
        let leg_of = |f: Result<Forward, _>| match f {
            Ok(Forward::ToPbx { leg, to, .. }) => Some((leg, to)),
            _ => None,
        };
        let (audio_ssrc, video_ssrc) = (0xa0d1_0000, 0x0f1d_e000);
        assert_eq!(
            leg_of(send(&mut session, &packet(0, audio_ssrc, 1), false)),
            Some((0, addr(AUDIO_PBX)))
        );
        assert_eq!(
            leg_of(send(&mut session, &packet(96, video_ssrc, 1), false)),
            Some((1, addr(VIDEO_PBX)))
        );
        assert!(
            leg_of(send(&mut session, &packet(45, video_ssrc, 2), false)).is_none(),
            "a payload type of no section is dropped"
        );
        // The video stream's sender report goes to the video leg's RTCP.
        let mut sr = vec![0x80u8, 200, 0, 6];
        sr.extend_from_slice(&video_ssrc.to_be_bytes());
        sr.resize(28, 7);
        assert_eq!(
            leg_of(send(&mut session, &sr, true)),
            Some((1, addr("10.0.0.5:16391")))
        );
        // The PBX's video comes back on the video leg.
        let mut buf = packet(96, 0x5eed, 1);
        let n = buf.len();
        buf.resize(n + 64, 0);
        let back = session.from_pbx(Instant::now(), 1, addr(VIDEO_PBX), false, &mut buf, n);
        assert!(matches!(back, Ok(Forward::ToBrowser { .. })), "{back:?}");
        let wrong_leg = session.from_pbx(Instant::now(), 0, addr(VIDEO_PBX), false, &mut buf, n);
        assert!(
            wrong_leg.is_err(),
            "the audio leg takes only the audio address"
        );
    }
}
