//! SDES-SRTP toward the PBX (RFC 4568), every part real: Kamailio from
//! Debian as the PBX, bob a baresip whose media must be SRTP
//! (`mediaenc=srtp-mand`: a plain offer gets 488), the SDK in headless
//! Chromium, and tcpdump on the loopback interface watching bob's media
//! ports. With `--pbx-srtp mandatory` calls go both ways and are heard both
//! ways, and every packet on the PBX leg is SRTP: 10 bytes longer than the
//! RTP it carries, and decrypted by webrtc-srtp (the oracle) with a key
//! from the SDP bob's log shows. With `--pbx-srtp off` the same phone
//! refuses the relay's plain offer.

mod common;

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::json;
use sipline_test_harness::browser;
use sipline_test_harness::capture::{Capture, Datagram};
use sipline_test_harness::kamailio::{DOMAIN, Kamailio, Options, USERS};
use webrtc_srtp::context::Context as Oracle;
use webrtc_srtp::protection_profile::ProtectionProfile;

use common::RelayProcess;
use common::calls::{account, alice_calls_bob_and_back, srtp_far_end, tones};

/// Every SDES key (master key and salt: 30 bytes for AES-CM, 28 for
/// AES-GCM) bob's SIP trace shows, his and the relay's.
fn keys_in(log: &str) -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = log
        .lines()
        .filter_map(|l| l.split_once("a=crypto:")?.1.split_once("inline:"))
        .filter_map(|(_, k)| {
            let k = k.split(['|', ' ', '\r']).next()?;
            base64::engine::general_purpose::STANDARD.decode(k).ok()
        })
        .filter(|k| k.len() == 30 || k.len() == 28)
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The RTP (not RTCP) packets of each stream on the wire, by SSRC.
fn streams(seen: &[Datagram]) -> BTreeMap<u32, Vec<&Datagram>> {
    let mut out: BTreeMap<u32, Vec<&Datagram>> = BTreeMap::new();
    for d in seen {
        let p = &d.payload;
        let rtp = p.len() >= 12 && p[0] >> 6 == 2 && !(72..=76).contains(&(p[1] & 0x7f));
        if rtp {
            let ssrc = u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
            out.entry(ssrc).or_default().push(d);
        }
    }
    out
}

/// The key of `keys` that authenticates and decrypts every packet of a
/// stream, if one does.
fn decrypting_key<'k>(keys: &'k [Vec<u8>], packets: &[&Datagram]) -> Option<&'k [u8]> {
    keys.iter().map(Vec::as_slice).find(|k| {
        let profile = if k.len() == 30 {
            ProtectionProfile::Aes128CmHmacSha1_80
        } else {
            ProtectionProfile::AeadAes128Gcm
        };
        let Ok(mut oracle) = Oracle::new(&k[..16], &k[16..], profile, None, None) else {
            return false;
        };
        packets
            .iter()
            .all(|d| oracle.decrypt_rtp(&d.payload).is_ok())
    })
}

/// The relay's media ports in the SRTP test.
const MEDIA: &str = "36100-36149";

#[test]
fn with_srtp_mandatory_the_pbx_leg_is_srtp_both_ways_and_the_call_is_heard_both_ways() {
    let (_scratch, mic, far_tone) = tones("pbx-srtp");
    let kamailio = Kamailio::start(&Options::default()).expect("kamailio");
    let pbx = kamailio.udp_addr();
    let mut far = srtp_far_end(pbx, USERS[1], far_tone);
    let (lo, hi) = far.rtp_ports;
    // Between bob and this relay only: a stray stream of another test's
    // parts (a process still winding down) has no place in it.
    let capture =
        Capture::start(&format!("portrange {lo}-{hi} and portrange {MEDIA}")).expect("tcpdump");
    let relay = RelayProcess::start(pbx, &["--media-ports", MEDIA, "--pbx-srtp", "mandatory"]);
    alice_calls_bob_and_back(&relay, &mut far, &mic, "an SRTP-only phone");

    // What crossed the wire on bob's media ports.
    let seen = capture.stop().expect("the capture");
    let log = far.log();
    assert!(
        log.contains("RTP/SAVP") && log.contains("a=crypto:"),
        "the SDP between the relay and bob is SDES-SRTP:\n{}",
        far.log_tail()
    );
    let keys = keys_in(&log);
    assert!(
        keys.len() >= 2,
        "bob's and the relay's keys in the SDP: {}",
        keys.len()
    );
    let streams = streams(&seen);
    // Two calls, each a stream from the relay to bob and one back.
    let to_bob = |d: &Datagram| (lo..=hi).contains(&d.to.port());
    let mut ways = [0, 0];
    for (ssrc, packets) in &streams {
        if packets.len() < 50 {
            continue; // a stray or a stream cut short; the long ones tell
        }
        ways[usize::from(to_bob(packets[0]))] += 1;
        // AES-CM's 10-byte tag, or AES-GCM's 16, whichever bob's offer
        // named first.
        assert!(
            packets
                .iter()
                .all(|d| [12 + 160 + 10, 12 + 160 + 16].contains(&d.payload.len())),
            "stream {ssrc:#x}: every packet is 20 ms of G.711 plus an SRTP tag, lengths {:?}",
            packets
                .iter()
                .map(|d| d.payload.len())
                .take(10)
                .collect::<Vec<_>>()
        );
        assert!(
            decrypting_key(&keys, packets).is_some(),
            "stream {ssrc:#x} ({} packets) decrypts with a key of the SDP",
            packets.len()
        );
    }
    assert_eq!(ways, [2, 2], "two calls, SRTP both ways on each: {ways:?}");
    assert!(
        relay.metrics().contains("sipline_media_calls 0"),
        "{}",
        relay.metrics()
    );
}

#[test]
fn with_srtp_off_an_srtp_only_phone_refuses_the_relay_s_plain_offer() {
    let (_scratch, mic, far_tone) = tones("pbx-srtp-off");
    let kamailio = Kamailio::start(&Options::default()).expect("kamailio");
    let pbx = kamailio.udp_addr();
    let far = srtp_far_end(pbx, USERS[1], far_tone);
    let relay = RelayProcess::start(pbx, &["--media-ports", "36150-36199"]);
    let config = json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": account(&relay.ws_url(), USERS[0], DOMAIN)},
            {"do": "call", "target": format!("sip:{}@{DOMAIN}", USERS[1].0)},
        ],
    });
    let out = browser::sdk(&config.to_string(), |_| {}).expect("the browser ran");
    let v: serde_json::Value = serde_json::from_str(&out).expect("the script's report");
    let error = v["error"].as_str().unwrap_or_default();
    assert!(error.contains("488"), "the call fails with 488: {v}");
    assert!(
        far.log().contains("488"),
        "bob refused the plain offer:\n{}",
        far.log_tail()
    );
}
