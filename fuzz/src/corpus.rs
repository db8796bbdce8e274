//! The SIP parser's corpus of valid messages (`sdk-wasm/core/tests/corpus/
//! valid/`: RFC 4475's torture tests and real captures from browsers and
//! PBXs), compiled in as the starting points of mutated frames and
//! datagrams.

use arbitrary::Arbitrary;

use crate::edit::{Edit, apply_all, fix_content_length};

macro_rules! valid {
    ($($name:literal),* $(,)?) => {
        &[$(include_bytes!(concat!(
            "../../sdk-wasm/core/tests/corpus/valid/",
            $name,
            ".sip"
        ))),*]
    };
}

/// Every message of the valid corpus.
pub const VALID: &[&[u8]] = valid![
    "100_trying",
    "180_ringing",
    "183_session_progress_sdp",
    "200_invite_compact_headers",
    "200_register_multi_contact",
    "401_register_md5",
    "401_register_sha256_stale",
    "407_invite_proxy_auth",
    "423_interval_too_brief",
    "487_request_terminated",
    "ack_2xx",
    "badbranch",
    "bcast",
    "bext01",
    "bye",
    "bye_via_comma_list",
    "cancel",
    "cparam01",
    "cparam02",
    "dblreq",
    "esc01",
    "esc02",
    "escnull",
    "folded_headers_200_register",
    "info_dtmf_relay",
    "intmeth",
    "invite_asterisk_kamailio_udp",
    "invite_chromium_webrtc_sdp",
    "invut",
    "longreq",
    "lwsdisp",
    "message_text_utf8",
    "mpart01",
    "noreason",
    "notify_refer_sipfrag",
    "novelsc",
    "odd_case_headers_401",
    "options_keepalive",
    "regaut01",
    "regescrt",
    "register_jssip_wss",
    "register_sipjs_auth",
    "register_unregister_wildcard",
    "sdp01",
    "semiuri",
    "transports",
    "unkscm",
    "unksm2",
    "unreason",
    "wsinv",
    "zeromf",
];

/// A corpus message, changed by the fuzzer.
#[derive(Arbitrary, Clone, Debug)]
pub struct Mutated {
    /// Which message (wrapped).
    pub index: u8,
    /// What to change in it.
    pub edits: Vec<Edit>,
    /// Whether to make Content-Length match the body afterwards.
    pub fix_length: bool,
}

impl Mutated {
    /// The message's bytes after the edits.
    pub fn bytes(&self) -> Vec<u8> {
        let mut m = VALID[usize::from(self.index) % VALID.len()].to_vec();
        apply_all(&mut m, &self.edits);
        if self.fix_length {
            fix_content_length(&mut m);
        }
        m
    }
}
