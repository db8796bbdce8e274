//! The ICE-lite responder against the `stun` crate (webrtc-rs) as the
//! oracle: requests built as a browser builds them are answered, and the
//! answers pass the oracle's MESSAGE-INTEGRITY, FINGERPRINT and
//! XOR-MAPPED-ADDRESS checks; forgeries are refused.

use std::net::SocketAddr;

use sipline_relay::media::ice::{IceError, IceLite, MAX_ANSWER, is_stun};
use stun::agent::TransactionId;
use stun::attributes::{ATTR_PRIORITY, ATTR_USE_CANDIDATE, ATTR_USERNAME};
use stun::fingerprint::FINGERPRINT;
use stun::integrity::MessageIntegrity;
use stun::message::{BINDING_REQUEST, BINDING_SUCCESS, Getter, Message, Setter};
use stun::textattrs::TextAttribute;
use stun::xoraddr::XorMappedAddress;

const LOCAL_UFRAG: &str = "rlyU";
const LOCAL_PWD: &str = "relaypassword0123456789a";

/// A Binding Request as Chromium sends it.
fn request(username: &str, pwd: &str, nominate: bool) -> Message {
    let mut m = Message::new();
    m.build(&[
        Box::new(BINDING_REQUEST),
        Box::new(TransactionId::new()),
        Box::new(TextAttribute::new(ATTR_USERNAME, username.to_owned())),
    ])
    .expect("build");
    m.add(ATTR_PRIORITY, &1_853_824_767u32.to_be_bytes());
    if nominate {
        m.add(ATTR_USE_CANDIDATE, &[]);
    }
    MessageIntegrity::new_short_term_integrity(pwd.to_owned())
        .add_to(&mut m)
        .expect("integrity");
    FINGERPRINT.add_to(&mut m).expect("fingerprint");
    m
}

fn check_answer(answer: &[u8], req: &Message, from: SocketAddr) {
    let mut resp = Message::new();
    resp.unmarshal_binary(answer)
        .expect("the oracle parses our answer");
    assert_eq!(resp.typ, BINDING_SUCCESS);
    assert_eq!(resp.transaction_id, req.transaction_id);
    let mut xor = XorMappedAddress::default();
    xor.get_from(&resp).expect("XOR-MAPPED-ADDRESS");
    assert_eq!(SocketAddr::new(xor.ip, xor.port), from);
    MessageIntegrity::new_short_term_integrity(LOCAL_PWD.to_owned())
        .check(&mut resp)
        .expect("integrity with our password");
    FINGERPRINT.check(&resp).expect("fingerprint");
}

#[test]
fn browser_checks_are_answered_and_nomination_selects_the_path() {
    let mut ice = IceLite::new(LOCAL_UFRAG, LOCAL_PWD);
    ice.set_remote_ufrag("brwU");
    let mut out = [0u8; MAX_ANSWER];
    for (from, nominate) in [("192.0.2.7:50000", false), ("[2001:db8::7]:50002", true)] {
        let from: SocketAddr = from.parse().expect("addr");
        let req = request("rlyU:brwU", LOCAL_PWD, nominate);
        assert!(is_stun(&req.raw));
        let v = ice.handle(&req.raw, from, &mut out).expect("a valid check");
        assert_eq!(v.nominated, nominate);
        check_answer(&out[..v.answer_len], &req, from);
    }
    // Media follows the nomination; the first verified address stays allowed.
    assert_eq!(
        ice.selected(),
        Some("[2001:db8::7]:50002".parse().expect("addr"))
    );
    assert!(ice.is_verified("192.0.2.7:50000".parse().expect("addr")));
    assert!(ice.is_verified("[2001:db8::7]:50002".parse().expect("addr")));
    assert!(
        !ice.is_verified("192.0.2.8:50000".parse().expect("addr")),
        "never checked"
    );
}

#[test]
fn a_restart_keeps_the_path_and_the_old_credentials_until_the_new_ones_are_used() {
    let mut old = IceLite::new(LOCAL_UFRAG, LOCAL_PWD);
    old.set_remote_ufrag("brwU");
    let from: SocketAddr = "192.0.2.7:50000".parse().expect("addr");
    let mut out = [0u8; MAX_ANSWER];
    old.handle(&request("rlyU:brwU", LOCAL_PWD, true).raw, from, &mut out)
        .expect("valid");
    let mut new = IceLite::new("newU", "newpasswordnewpassword12");
    new.set_remote_ufrag("brw2");
    new.carry_over(&old);
    assert_eq!(new.selected(), Some(from), "media keeps flowing meanwhile");
    // The restart's offer may have been refused: the old checks still work.
    let req = request("rlyU:brwU", LOCAL_PWD, false);
    let v = new
        .handle(&req.raw, from, &mut out)
        .expect("old credentials");
    check_answer(&out[..v.answer_len], &req, from);
    // Once the browser uses the new ones, the old ones are done.
    new.handle(
        &request("newU:brw2", "newpasswordnewpassword12", true).raw,
        from,
        &mut out,
    )
    .expect("new credentials");
    assert_eq!(
        new.handle(&request("rlyU:brwU", LOCAL_PWD, false).raw, from, &mut out),
        Err(IceError::WrongUsername)
    );
}

#[test]
fn first_verified_address_is_used_before_nomination() {
    let mut ice = IceLite::new(LOCAL_UFRAG, LOCAL_PWD);
    let from: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    let mut out = [0u8; MAX_ANSWER];
    assert_eq!(ice.selected(), None);
    ice.handle(
        &request("rlyU:anything", LOCAL_PWD, false).raw,
        from,
        &mut out,
    )
    .expect("valid");
    assert_eq!(
        ice.selected(),
        Some(from),
        "Chromium sends DTLS before it nominates"
    );
    assert!(!ice.is_verified("127.0.0.1:40001".parse().expect("addr")));
}

/// A browser with two interfaces checks both pairs and may move its media
/// to the second before it nominates either (Chromium does, under load):
/// media from either is taken, and goes to the first until a nomination.
#[test]
fn every_verified_address_may_send_media_before_nomination() {
    let mut ice = IceLite::new(LOCAL_UFRAG, LOCAL_PWD);
    let mut out = [0u8; MAX_ANSWER];
    let pairs: Vec<SocketAddr> = (0..6)
        .map(|i| format!("192.0.2.{}:4000{i}", i + 1).parse().expect("addr"))
        .collect();
    for &from in &pairs[..2] {
        ice.handle(&request("rlyU:brwU", LOCAL_PWD, false).raw, from, &mut out)
            .expect("valid");
    }
    assert!(ice.is_verified(pairs[0]) && ice.is_verified(pairs[1]));
    assert_eq!(ice.selected(), Some(pairs[0]));
    // A long list of candidates: the latest four are remembered.
    for &from in &pairs[2..] {
        ice.handle(&request("rlyU:brwU", LOCAL_PWD, false).raw, from, &mut out)
            .expect("valid");
    }
    assert!(!ice.is_verified(pairs[0]) && !ice.is_verified(pairs[1]));
    assert!(pairs[2..].iter().all(|&p| ice.is_verified(p)));
    ice.handle(
        &request("rlyU:brwU", LOCAL_PWD, true).raw,
        pairs[1],
        &mut out,
    )
    .expect("valid");
    assert_eq!(ice.selected(), Some(pairs[1]), "the nominated pair wins");
    assert!(ice.is_verified(pairs[1]));
}

#[test]
fn forged_and_foreign_checks_are_refused() {
    let mut ice = IceLite::new(LOCAL_UFRAG, LOCAL_PWD);
    ice.set_remote_ufrag("brwU");
    let from: SocketAddr = "192.0.2.7:50000".parse().expect("addr");
    let mut out = [0u8; MAX_ANSWER];
    let wrong_pwd = request("rlyU:brwU", "not-our-password-at-all!", true);
    assert_eq!(
        ice.handle(&wrong_pwd.raw, from, &mut out),
        Err(IceError::BadIntegrity)
    );
    let wrong_user = request("someoneelse:brwU", LOCAL_PWD, true);
    assert_eq!(
        ice.handle(&wrong_user.raw, from, &mut out),
        Err(IceError::WrongUsername)
    );
    let other_peer = request("rlyU:intruder", LOCAL_PWD, true);
    assert_eq!(
        ice.handle(&other_peer.raw, from, &mut out),
        Err(IceError::WrongUsername)
    );
    let mut tampered = request("rlyU:brwU", LOCAL_PWD, true).raw;
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    assert_eq!(
        ice.handle(&tampered, from, &mut out),
        Err(IceError::BadFingerprint)
    );
    let mut cut = request("rlyU:brwU", LOCAL_PWD, true).raw;
    cut.truncate(cut.len() - 4);
    assert_eq!(ice.handle(&cut, from, &mut out), Err(IceError::Malformed));
    assert_eq!(ice.selected(), None, "nothing forged selects a path");
    let mut small = [0u8; 10];
    let valid = request("rlyU:brwU", LOCAL_PWD, false);
    assert_eq!(
        ice.handle(&valid.raw, from, &mut small),
        Err(IceError::NoRoom)
    );
}

proptest::proptest! {
    #[test]
    fn random_datagrams_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        let mut ice = IceLite::new(LOCAL_UFRAG, LOCAL_PWD);
        let mut out = [0u8; MAX_ANSWER];
        let mut b = bytes.clone();
        if b.len() >= 8 {
            b[0] = 0;
            b[1] = 1;
            b[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
        }
        let _ = ice.handle(&b, "127.0.0.1:1".parse().expect("addr"), &mut out);
        let _ = ice.handle(&bytes, "127.0.0.1:1".parse().expect("addr"), &mut out);
    }
}
