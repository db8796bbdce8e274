//! Every SDP body in the SIP corpus (Chromium's WebRTC offer, FreeSWITCH's
//! early media, Asterisk's offer, RFC 4475's) parses and writes back byte
//! for byte; random input never panics the SDP parser.

use std::path::Path;

use proptest::prelude::*;
use sipline_core::sdp::Sdp;
use sipline_core::sip::{HeaderName, Message};

#[test]
fn corpus_sdp_bodies_round_trip() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/valid");
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("corpus") {
        let path = entry.expect("entry").path();
        let bytes = std::fs::read(&path).expect("read");
        let Ok(msg) = Message::parse(&bytes) else {
            continue;
        };
        let is_sdp = msg
            .header(HeaderName::ContentType)
            .is_some_and(|ct| ct.trim().eq_ignore_ascii_case("application/sdp"));
        if !is_sdp || msg.body().is_empty() {
            continue;
        }
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let sdp = Sdp::parse(msg.body()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!sdp.media.is_empty(), "{name}: no media");
        let original = String::from_utf8_lossy(msg.body()).replace("\r\n", "\n");
        assert_eq!(sdp.to_string().replace("\r\n", "\n"), original, "{name}");
        checked.push(name);
    }
    checked.sort();
    assert!(
        checked.iter().any(|n| n.contains("chromium")),
        "{checked:?}"
    );
    assert!(checked.len() >= 6, "only {checked:?}");
}

proptest! {
    #[test]
    fn random_sdp_never_panics(body in prop::collection::vec(any::<u8>(), 0..600), text in "(\\PC{0,30}\r?\n){0,20}") {
        let _ = Sdp::parse(&body);
        let with_version = format!("v=0\r\n{text}");
        if let Ok(sdp) = Sdp::parse(with_version.as_bytes()) {
            for i in 0..sdp.media.len() + 1 {
                let _ = sdp.direction(i);
            }
            let _ = sdp.to_string();
        }
    }
}
