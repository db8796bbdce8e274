//! SDES-SRTP toward the PBX through the media table: what the relay offers
//! and answers by policy, the keys the shell is given, and the refusals.

use super::*;
use crate::media::sdes::{Crypto, SdesError, SrtpPolicy};
use crate::media::srtp::{LegKeys, Profile};

fn table_srtp(policy: SrtpPolicy) -> MediaCalls {
    let local = IpAddr::from([127, 0, 0, 1]);
    let cfg = MediaConfig {
        port_min: 30_000,
        port_max: 30_099,
        browser_bind: local,
        browser_advertised: local,
        pbx_bind: local,
        pbx_advertised: IpAddr::from([10, 0, 0, 2]),
        pbx_srtp: policy,
        ..MediaConfig::default()
    };
    let identity = Identity::generate().expect("identity");
    MediaCalls::new(cfg, Arc::new(identity), [3; 32]).expect("range")
}

/// The crypto lines of the first section.
fn cryptos(body: &str) -> Vec<Crypto> {
    sdp(body).media[0]
        .lines
        .iter()
        .filter_map(|l| l.attribute())
        .filter(|(n, _)| *n == "crypto")
        .map(|(_, v)| Crypto::parse(v.expect("a value")).expect("a crypto the relay reads"))
        .collect()
}

/// The first leg's keys commands, by kind.
fn keyed(cs: &[Command]) -> Vec<&'static str> {
    cs.iter()
        .filter_map(|c| match c {
            Command::PbxKeys { leg: 0, keys, .. } => Some(match keys {
                LegKeys::Plain => "plain",
                LegKeys::Both(_) => "both",
                LegKeys::Inbound(_) => "inbound",
            }),
            _ => None,
        })
        .collect()
}

/// A PBX's answer or offer: Asterisk's SDP, with `proto` and `crypto`.
fn pbx_sdp(proto: &str, crypto: &str) -> String {
    ASTERISK_ANSWER.replace(
        "m=audio 16384 RTP/AVP 0 126\r\n",
        &format!("m=audio 16384 {proto} 0 126\r\n{crypto}"),
    )
}

const PBX_KEY: &str =
    "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^31\r\n";

#[test]
fn mandatory_offers_savp_with_both_suites_and_keys_the_leg_from_the_answer() {
    let mut t = table_srtp(SrtpPolicy::Mandatory);
    let to_pbx = browser_offer(&mut t, &chromium_offer()).expect("carried");
    assert_eq!(sdp(&to_pbx).media[0].proto, "RTP/SAVP");
    let offered = cryptos(&to_pbx);
    assert_eq!(
        offered
            .iter()
            .map(|c| (c.tag, c.key.profile()))
            .collect::<Vec<_>>(),
        [
            (1, Profile::Aes128CmHmacSha1_80),
            (2, Profile::AeadAes128Gcm)
        ]
    );
    let _ = commands(&mut t);
    carry(
        &mut t,
        Side::Pbx,
        Carrier::Response(Method::Invite),
        &pbx_sdp("RTP/SAVP", PBX_KEY),
    )
    .expect("an SRTP answer is carried");
    assert_eq!(keyed(&commands(&mut t)), ["both"]);

    // A re-offer repeats the relay's keys; the same answer changes nothing.
    let again = browser_offer(&mut t, &chromium_offer()).expect("re-offer");
    assert_eq!(
        cryptos(&again),
        offered,
        "the same keys, so the streams carry on"
    );
    carry(
        &mut t,
        Side::Pbx,
        Carrier::Response(Method::Invite),
        &pbx_sdp("RTP/SAVP", PBX_KEY),
    )
    .expect("carried");
    assert_eq!(keyed(&commands(&mut t)), Vec::<&str>::new());

    // The PBX changes its key: only what it sends gets a new context; the
    // relay's own, with its rollover counters, carries on.
    browser_offer(&mut t, &chromium_offer()).expect("re-offer");
    let rekeyed = PBX_KEY.replace(
        "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR",
        "Hh8gISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7",
    );
    carry(
        &mut t,
        Side::Pbx,
        Carrier::Response(Method::Invite),
        &pbx_sdp("RTP/SAVP", &rekeyed),
    )
    .expect("carried");
    assert_eq!(keyed(&commands(&mut t)), ["inbound"]);
}

#[test]
fn mandatory_refuses_a_plain_answer_and_a_plain_offer() {
    let mut t = table_srtp(SrtpPolicy::Mandatory);
    browser_offer(&mut t, &chromium_offer()).expect("carried");
    let plain = carry(
        &mut t,
        Side::Pbx,
        Carrier::Response(Method::Invite),
        ASTERISK_ANSWER,
    );
    assert!(
        matches!(plain, Err(MediaError::Srtp(SdesError::Required))),
        "{plain:?}"
    );

    let mut t = table_srtp(SrtpPolicy::Mandatory);
    let e = carry(
        &mut t,
        Side::Pbx,
        Carrier::Request(Method::Invite),
        FREESWITCH_HOLD_OFFER,
    )
    .expect_err("a plain offer is refused");
    assert_eq!(e.status().0, 488, "{e}");
    assert_eq!(t.active(), 0, "nothing is left behind");
}

#[test]
fn optional_offers_keys_in_avp_and_stays_plain_when_the_pbx_ignores_them() {
    let mut t = table_srtp(SrtpPolicy::Optional);
    let to_pbx = browser_offer(&mut t, &chromium_offer()).expect("carried");
    assert_eq!(sdp(&to_pbx).media[0].proto, "RTP/AVP");
    assert_eq!(cryptos(&to_pbx).len(), 2);
    let _ = commands(&mut t);
    carry(
        &mut t,
        Side::Pbx,
        Carrier::Response(Method::Invite),
        ASTERISK_ANSWER,
    )
    .expect("a plain answer is fine");
    assert_eq!(
        keyed(&commands(&mut t)),
        Vec::<&str>::new(),
        "plain, as it was"
    );

    // A later answer with a key of an unknown tag keys nothing either.
    let unknown = PBX_KEY.replace("crypto:1", "crypto:9");
    browser_offer(&mut t, &chromium_offer()).expect("re-offer");
    carry(
        &mut t,
        Side::Pbx,
        Carrier::Response(Method::Invite),
        &pbx_sdp("RTP/AVP", &unknown),
    )
    .expect("carried");
    assert_eq!(keyed(&commands(&mut t)), Vec::<&str>::new());
}

#[test]
fn an_srtp_offer_from_the_pbx_is_answered_in_kind_even_when_off() {
    let mut t = table_srtp(SrtpPolicy::Off);
    let gcm_first = format!(
        "a=crypto:4 AEAD_AES_128_GCM inline:z5hZIwe1QqZ8kKv6nUHwv8lNiCCx3qYm8Mna2g\r\n\
a=crypto:5 AES_256_CM_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBRPS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR\r\n{PBX_KEY}"
    );
    carry(
        &mut t,
        Side::Pbx,
        Carrier::Request(Method::Invite),
        &pbx_sdp("RTP/SAVP", &gcm_first),
    )
    .expect("an SRTP offer is carried to the browser");
    assert_eq!(keyed(&commands(&mut t)), ["both"], "keyed at the offer");
    let to_pbx = carry(
        &mut t,
        Side::Browser,
        Carrier::Response(Method::Invite),
        CHROMIUM_ANSWER,
    )
    .expect("the browser's answer is carried");
    let answer = sdp(&to_pbx);
    assert_eq!(answer.media[0].proto, "RTP/SAVP");
    let ours = cryptos(&to_pbx);
    assert_eq!(ours.len(), 1, "one line: the suite taken");
    assert_eq!(
        (ours[0].tag, ours[0].key.profile()),
        (4, Profile::AeadAes128Gcm)
    );

    // An RTP/SAVP offer with no suite the relay has is refused.
    let mut t = table_srtp(SrtpPolicy::Off);
    let e = carry(
        &mut t,
        Side::Pbx,
        Carrier::Request(Method::Invite),
        &pbx_sdp("RTP/SAVP", ""),
    )
    .expect_err("nothing to answer with");
    assert!(matches!(e, MediaError::Srtp(SdesError::NoSuite)), "{e}");
}

#[test]
fn off_writes_plain_rtp_with_no_key() {
    let mut t = table_srtp(SrtpPolicy::Off);
    let to_pbx = browser_offer(&mut t, &chromium_offer()).expect("carried");
    assert_eq!(sdp(&to_pbx).media[0].proto, "RTP/AVP");
    assert!(!to_pbx.contains("a=crypto"));
}
