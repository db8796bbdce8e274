//! The relay never panics: random and mutated frames and datagrams, in
//! both modes (fronting a PBX, and with the embedded PBX), through the
//! sans-IO proxy with explicit time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use proptest::prelude::*;
use sipline_core::Instant;
use sipline_relay::ids::ConnId;
use sipline_relay::signalling::pbx::{EmbeddedPbx, Password};
use sipline_relay::signalling::{FlowKey, Output, Proxy, ProxyConfig};

const PBX: &str = "10.0.0.5:5060";

fn proxy(embedded: bool) -> Proxy {
    let pbx: SocketAddr = PBX.parse().expect("addr");
    let mut cfg = ProxyConfig::new(
        if embedded { vec![] } else { vec![pbx] },
        "10.0.0.2:5070".parse().expect("addr"),
    );
    cfg.ws_host = "relay.example".into();
    if embedded {
        cfg.embedded = Some(EmbeddedPbx {
            domain: "sipline.test".into(),
            users: vec![
                ("alice".into(), Password("pw".into())),
                ("bob".into(), Password("pw".into())),
            ],
        });
    }
    let mut p = Proxy::new(cfg, FlowKey::new([3; 32]));
    for c in 1..=3 {
        p.ws_opened(
            Instant::from_millis(0),
            ConnId(c),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        );
    }
    p
}

/// SIP-shaped text: a start line and headers built from pieces that matter
/// to the proxy (its own host, flow-token-like strings, Via and Route
/// forms), mixed with arbitrary (multi-byte) text.
fn sipish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just("relay.example".to_owned()),
        Just("10.0.0.2:5070".to_owned()),
        Just("10.0.0.5:5060".to_owned()),
        "[0-9a-f]{36}",
        // Real tokens of the three connections, so that routing by token
        // and in-dialog routing between browsers run too.
        (1u64..=3).prop_map(|c| FlowKey::new([3; 32]).token(ConnId(c))),
        "[a-z]{1,8}\\.invalid",
        "\\PC{0,10}",
    ];
    let start = prop_oneof![
        token
            .clone()
            .prop_map(|t| format!("INVITE sip:bob@{t} SIP/2.0")),
        token
            .clone()
            .prop_map(|t| format!("BYE sip:x@{t};sl-flow={t} SIP/2.0")),
        Just("REGISTER sip:sipline.test SIP/2.0".to_owned()),
        Just("SIP/2.0 200 OK".to_owned()),
        "\\PC{0,20}",
    ];
    let header = prop_oneof![
        token.clone().prop_map(|t| format!("Via: SIP/2.0/WSS {t};branch=z9hG4bK{t};sl={t}")),
        token.clone().prop_map(|t| format!("Via: SIP/2.0/UDP {t};received={t};rport={t}")),
                token.clone().prop_map(|t| format!("Route: <sip:{t}@relay.example;lr>, <sip:{t};lr>")),
        (token.clone(), token.clone()).prop_map(|(a, b)| format!("Route: <sip:{a}@relay.example;transport=ws;lr;r2=on>, <sip:{b}@relay.example;transport=ws;lr;r2=on>")),
        Just("To: <sip:bob@sipline.test>;tag=b".to_owned()),
        Just("CSeq: 2 BYE".to_owned()),
        token.clone().prop_map(|t| format!("Record-Route: <sip:{t};lr>")),
        token.clone().prop_map(|t| format!("Contact: <sip:a@{t};transport=ws>;expires={t}")),
        token.clone().prop_map(|t| format!("Authorization: Digest username=\"alice\", realm=\"sipline.test\", nonce=\"{t}\", uri=\"sip:x\", response=\"{t}\"")),
        Just("From: <sip:alice@sipline.test>;tag=a".to_owned()),
        Just("To: <sip:bob@sipline.test>".to_owned()),
        Just("Call-ID: c1".to_owned()),
        Just("CSeq: 1 INVITE".to_owned()),
        Just("CSeq: 1 REGISTER".to_owned()),
        "Max-Forwards: [0-9]{1,3}",
        "\\PC{0,30}",
    ];
    (start, prop::collection::vec(header, 0..12), "\\PC{0,40}").prop_map(|(s, hs, body)| {
        let mut m = s;
        m.push_str("\r\n");
        for h in hs {
            m.push_str(&h);
            m.push_str("\r\n");
        }
        m.push_str("\r\n");
        m.push_str(&body);
        m.into_bytes()
    })
}

#[derive(Debug, Clone)]
enum Input {
    Ws(u64, Vec<u8>),
    Udp(bool, Vec<u8>),
    Close(u64),
    Time(u64),
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        4 => (1u64..=3, sipish()).prop_map(|(c, b)| Input::Ws(c, b)),
        3 => (any::<bool>(), sipish()).prop_map(|(pbx, b)| Input::Udp(pbx, b)),
        1 => (1u64..=3, prop::collection::vec(any::<u8>(), 0..200)).prop_map(|(c, b)| Input::Ws(c, b)),
        1 => (1u64..=3).prop_map(Input::Close),
        1 => (0u64..40_000).prop_map(Input::Time),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_input_panics_the_proxy_or_escapes_to_a_stranger(embedded in any::<bool>(), inputs in prop::collection::vec(input(), 1..40)) {
        let mut p = proxy(embedded);
        let mut now = 0u64;
        let pbx: SocketAddr = PBX.parse().expect("addr");
        for i in inputs {
            match i {
                Input::Ws(c, b) => p.handle_ws(Instant::from_millis(now), ConnId(c), &b),
                Input::Udp(from_pbx, b) => {
                    let from = if from_pbx { pbx } else { "203.0.113.1:5060".parse().expect("addr") };
                    p.handle_pbx(Instant::from_millis(now), from, &b);
                }
                Input::Close(c) => p.ws_closed(ConnId(c)),
                Input::Time(dt) => {
                    now += dt;
                    p.handle_timeout(Instant::from_millis(now));
                }
            }
            while let Some(out) = p.poll_output() {
                // Never an open relay: datagrams go to the PBX only.
                if let Output::Pbx { to, .. } = out {
                    prop_assert_eq!(to, pbx);
                    prop_assert!(!embedded, "the embedded PBX sends no UDP");
                }
            }
            let _ = p.drain_events();
            if let Some(t) = p.poll_timeout() {
                prop_assert!(t.as_millis() + 64_000 >= now, "deadline far in the past");
            }
        }
    }
}
