//! SDP rewriting, checked on real bodies: Chromium's WebRTC offer (from the
//! SIP corpus) and the plain-RTP SDP that Asterisk and FreeSWITCH write.

use std::net::{IpAddr, SocketAddr};

use sipline_core::sdp::{Direction, Sdp};
use sipline_core::sip::Message;

use super::sdp::{
    BrowserTransport, PbxSection, RewriteError, answer_to_browser, answer_to_pbx, offer_to_browser,
    offer_to_pbx,
};

fn chromium_offer() -> Vec<u8> {
    let raw =
        include_bytes!("../../../sdk-wasm/core/tests/corpus/valid/invite_chromium_webrtc_sdp.sip");
    Message::parse(raw)
        .expect("corpus INVITE parses")
        .body()
        .to_vec()
}

/// Chromium's audio offer plus a video section and a data channel.
fn chromium_av_offer() -> String {
    let audio = String::from_utf8(chromium_offer()).expect("utf8");
    audio.replace("a=group:BUNDLE 0", "a=group:BUNDLE 0 1 2")
        + "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\na=rtcp-mux\r\n\
a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\na=sctp-port:5000\r\n"
}

const ASTERISK_ANSWER: &str = "v=0\r\no=- 1938 1940 IN IP4 10.0.0.5\r\ns=Asterisk\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
m=audio 16384 RTP/AVP 0 126\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:126 telephone-event/8000\r\na=fmtp:126 0-16\r\n\
a=ptime:20\r\na=maxptime:140\r\na=sendrecv\r\n";

const FREESWITCH_HOLD_OFFER: &str = "v=0\r\no=FreeSWITCH 1700000000 1700000001 IN IP4 10.0.0.6\r\ns=FreeSWITCH\r\n\
c=IN IP4 10.0.0.6\r\nt=0 0\r\nm=audio 24000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendonly\r\na=rtcp:24001 IN IP4 10.0.0.6\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:ABC\r\n";

const RELAY: &str = "192.0.2.10";

fn transport() -> BrowserTransport<'static> {
    BrowserTransport {
        addr: "192.0.2.10:40000".parse().expect("addr"),
        ice_ufrag: "rlyU",
        ice_pwd: "relaypassword0123456789a",
        fingerprint: "sha-256 01:02:03",
    }
}

fn pbx_port(port: u16) -> Option<PbxSection> {
    Some(PbxSection::plain(SocketAddr::new(
        RELAY.parse().expect("ip"),
        port,
    )))
}

fn ip() -> IpAddr {
    RELAY.parse().expect("ip")
}

#[test]
fn chromium_offer_becomes_plain_rtp_for_the_pbx() {
    let offer = chromium_offer();
    let browser = Sdp::parse(&offer).expect("Chromium SDP parses");
    let out = offer_to_pbx(&browser, &[pbx_port(30000)], ip());
    let pbx = Sdp::parse(out.as_bytes()).expect("our SDP parses");
    let audio = &pbx.media[0];
    assert_eq!((audio.port, audio.proto), (30000, "RTP/AVP"));
    assert_eq!(
        audio.formats, "111 63 9 0 8 13 110 126",
        "every codec offered, in order"
    );
    assert_eq!(pbx.connection(), Some(RELAY));
    assert_eq!(audio.attribute("rtcp"), Some(Some("30001")));
    assert_eq!(pbx.direction(0), Direction::SendRecv);
    assert_eq!(audio.rtpmaps().count(), 8);
    assert_eq!(
        audio.attribute("fmtp"),
        Some(Some("111 minptime=10;useinbandfec=1"))
    );
    for webrtc_only in [
        "ice-ufrag",
        "ice-pwd",
        "fingerprint",
        "setup",
        "candidate",
        "mid",
        "rtcp-mux",
        "ssrc",
        "extmap",
        "msid",
        "rtcp-fb",
    ] {
        assert!(
            audio.attribute(webrtc_only).is_none(),
            "{webrtc_only} must not reach the PBX:\n{out}"
        );
    }
    assert!(pbx.attribute("group").is_none() && pbx.attribute("msid-semantic").is_none());
    assert!(
        out.starts_with("v=0\r\no=- 4611731400430051336 2 IN IP4 192.0.2.10\r\n"),
        "{out}"
    );
}

#[test]
fn pbx_answer_becomes_an_ice_lite_dtls_answer_for_the_browser() {
    let offer = chromium_offer();
    let browser = Sdp::parse(&offer).expect("parses");
    let answer = Sdp::parse(ASTERISK_ANSWER.as_bytes()).expect("parses");
    let out = answer_to_browser(&browser, &answer, &transport()).expect("pairs");
    let sdp = Sdp::parse(out.as_bytes()).expect("our SDP parses");
    assert_eq!(sdp.attribute("ice-lite"), Some(None));
    assert_eq!(sdp.attribute("group"), Some(Some("BUNDLE 0")));
    let audio = &sdp.media[0];
    assert_eq!(
        (audio.port, audio.proto, audio.formats),
        (40000, "UDP/TLS/RTP/SAVPF", "0 126")
    );
    assert_eq!(audio.connection(), Some(RELAY));
    assert_eq!(audio.attribute("mid"), Some(Some("0")), "the offer's mid");
    assert_eq!(
        audio.attribute("setup"),
        Some(Some("passive")),
        "the relay is the DTLS server"
    );
    assert_eq!(
        audio.attribute("fingerprint"),
        Some(Some("sha-256 01:02:03"))
    );
    assert_eq!(audio.attribute("ice-ufrag"), Some(Some("rlyU")));
    assert_eq!(audio.attribute("rtcp-mux"), Some(None));
    assert_eq!(
        audio.attribute("candidate"),
        Some(Some("1 1 udp 2130706431 192.0.2.10 40000 typ host"))
    );
    assert_eq!(audio.attribute("ptime"), Some(Some("20")));
    assert_eq!(audio.attribute("fmtp"), Some(Some("126 0-16")));
    assert_eq!(sdp.direction(0), Direction::SendRecv);
    assert!(
        audio.attribute("rtcp").is_none(),
        "the PBX's RTCP port means nothing to the browser"
    );
}

#[test]
fn rejected_and_unbridgeable_sections_stay_paired_by_index() {
    let offer = chromium_av_offer();
    let browser = Sdp::parse(offer.as_bytes()).expect("parses");
    // The relay has ports for audio and video; the data channel never
    // crosses to plain RTP.
    let to_pbx = offer_to_pbx(&browser, &[pbx_port(30000), pbx_port(30002), None], ip());
    let pbx = Sdp::parse(to_pbx.as_bytes()).expect("parses");
    assert_eq!(pbx.media.len(), 3);
    assert_eq!((pbx.media[1].port, pbx.media[1].formats), (30002, "96 97"));
    assert_eq!(pbx.media[2].port, 0, "data channel rejected toward the PBX");
    // The PBX takes audio, refuses video.
    let answer =
        ASTERISK_ANSWER.to_owned() + "m=video 0 RTP/AVP 96\r\nm=application 0 RTP/AVP 0\r\n";
    let answer = Sdp::parse(answer.as_bytes()).expect("parses");
    let out = answer_to_browser(&browser, &answer, &transport()).expect("pairs");
    let sdp = Sdp::parse(out.as_bytes()).expect("parses");
    assert_eq!(
        sdp.attribute("group"),
        Some(Some("BUNDLE 0")),
        "only what was accepted is bundled"
    );
    assert_eq!(
        (sdp.media[1].port, sdp.media[1].attribute("mid")),
        (0, Some(Some("1")))
    );
    assert_eq!(
        (sdp.media[2].port, sdp.media[2].attribute("mid")),
        (0, Some(Some("2")))
    );
    // An answer that does not pair with the offer fails the call.
    let short = Sdp::parse(ASTERISK_ANSWER.as_bytes()).expect("parses");
    assert_eq!(
        answer_to_browser(&browser, &short, &transport()),
        Err(RewriteError::SectionCount {
            offer: 3,
            answer: 1
        })
    );
}

#[test]
fn pbx_hold_offer_becomes_a_browser_offer_and_its_answer_goes_back() {
    let pbx_offer = Sdp::parse(FREESWITCH_HOLD_OFFER.as_bytes()).expect("parses");
    let out = offer_to_browser(&pbx_offer, &transport());
    let offer = Sdp::parse(out.as_bytes()).expect("our SDP parses");
    let audio = &offer.media[0];
    assert_eq!(
        (audio.proto, audio.formats),
        ("UDP/TLS/RTP/SAVPF", "8 0 101")
    );
    assert_eq!(
        audio.attribute("setup"),
        Some(Some("actpass")),
        "offers must say actpass (RFC 5763)"
    );
    assert_eq!(
        offer.direction(0),
        Direction::SendOnly,
        "hold passes through"
    );
    assert!(
        audio.attribute("crypto").is_none(),
        "no SDES keys toward the browser"
    );
    assert!(
        out.contains("o=FreeSWITCH 1700000000 1700000001 IN IP4 192.0.2.10\r\n"),
        "versions kept for re-offers"
    );

    // Chromium answers recvonly, active; the PBX gets plain RTP back.
    let browser_answer = "v=0\r\no=- 99 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
m=audio 9 UDP/TLS/RTP/SAVPF 8 101\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:brwU\r\na=ice-pwd:browserpassword012345678\r\n\
a=fingerprint:sha-256 AA:BB\r\na=setup:active\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n";
    let browser_answer = Sdp::parse(browser_answer.as_bytes()).expect("parses");
    let back = answer_to_pbx(&pbx_offer, &browser_answer, &[pbx_port(31000)], ip()).expect("pairs");
    let back = Sdp::parse(back.as_bytes()).expect("parses");
    assert_eq!(
        (
            back.media[0].port,
            back.media[0].proto,
            back.media[0].formats
        ),
        (31000, "RTP/AVP", "8 101")
    );
    assert_eq!(back.direction(0), Direction::RecvOnly);
    assert_eq!(back.media[0].attribute("rtcp"), Some(Some("31001")));
    // A PBX that offers rtcp-mux gets it.
    let mux_offer =
        FREESWITCH_HOLD_OFFER.replace("a=rtcp:24001 IN IP4 10.0.0.6\r\n", "a=rtcp-mux\r\n");
    let mux_offer = Sdp::parse(mux_offer.as_bytes()).expect("parses");
    let back = answer_to_pbx(&mux_offer, &browser_answer, &[pbx_port(31000)], ip()).expect("pairs");
    let back = Sdp::parse(back.as_bytes()).expect("parses");
    assert_eq!(back.media[0].attribute("rtcp-mux"), Some(None));
    assert!(back.media[0].attribute("rtcp").is_none());
}

#[test]
fn a_plain_rtp_offer_from_a_browser_is_refused() {
    let plain = Sdp::parse(ASTERISK_ANSWER.as_bytes()).expect("parses");
    let answer = Sdp::parse(ASTERISK_ANSWER.as_bytes()).expect("parses");
    assert_eq!(
        answer_to_browser(&plain, &answer, &transport()),
        Err(RewriteError::NoIce)
    );
}
