//! One call's session in memory: the ICE check, DTLS, SRTP ⇄ RTP both
//! ways (SDES-SRTP on the PBX leg too), RTCP, latching, and the packets it
//! must refuse.

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
        0x80u8, 200, 0, 6, 0x11, 0x22, 0x33, 0x44, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
        15, 16, 17, 18, 19, 20, 21, 22, 23, 24,
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
    let (mut browser_out, _) = browser_contexts(&client, addr(RELAY), Profile::Aes128CmHmacSha1_80);
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
mod sockets;
