//! The media table through every offer/answer case, on Chromium's SDP and
//! the plain SDP that Asterisk and FreeSWITCH write: what each side is
//! sent, and what the shell is told.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use sipline_core::sdp::{Direction, Sdp};
use sipline_core::sip::{Message, Method};

use super::*;
use crate::media::decode::Codec;
use crate::media::record::Starter;

const CALL: &str = "call-1@browser";
const CONN: ConnId = ConnId(7);

fn chromium_offer() -> String {
    let raw = include_bytes!(
        "../../../../sdk-wasm/core/tests/corpus/valid/invite_chromium_webrtc_sdp.sip"
    );
    let body = Message::parse(raw).expect("corpus INVITE parses").body();
    String::from_utf8(body.to_vec()).expect("utf8")
}

/// Chromium's answer to an audio offer (`setup:active`, as it answers an
/// `actpass` offer).
const CHROMIUM_ANSWER: &str = "v=0\r\no=- 2381913526154937133 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
a=group:BUNDLE 0\r\na=msid-semantic: WMS\r\nm=audio 9 UDP/TLS/RTP/SAVPF 8 101\r\nc=IN IP4 0.0.0.0\r\n\
a=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:Br0w\r\na=ice-pwd:browserpassword012345678\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9:0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9\r\n\
a=setup:active\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

const ASTERISK_ANSWER: &str = "v=0\r\no=- 1938 1940 IN IP4 10.0.0.5\r\ns=Asterisk\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
m=audio 16384 RTP/AVP 0 126\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:126 telephone-event/8000\r\na=fmtp:126 0-16\r\n\
a=ptime:20\r\na=sendrecv\r\n";

const FREESWITCH_HOLD_OFFER: &str = "v=0\r\no=FreeSWITCH 1700000000 1700000001 IN IP4 10.0.0.6\r\ns=FreeSWITCH\r\n\
c=IN IP4 10.0.0.6\r\nt=0 0\r\nm=audio 24000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendonly\r\na=rtcp:24001 IN IP4 10.0.0.6\r\n";

fn table(min: u16, max: u16) -> MediaCalls {
    table_with(min, max, RecordingMode::Off)
}

fn table_with(min: u16, max: u16, recording: RecordingMode) -> MediaCalls {
    let local = IpAddr::from([127, 0, 0, 1]);
    let cfg = MediaConfig {
        recording,
        port_min: min,
        port_max: max,
        browser_bind: local,
        browser_advertised: IpAddr::from([192, 0, 2, 10]),
        pbx_bind: local,
        pbx_advertised: IpAddr::from([10, 0, 0, 2]),
        ..MediaConfig::default()
    };
    let identity = Identity::generate().expect("identity");
    MediaCalls::new(cfg, Arc::new(identity), [3; 32]).expect("range")
}

fn commands(t: &mut MediaCalls) -> Vec<Command> {
    std::iter::from_fn(|| t.poll_command()).collect()
}

fn names(cs: &[Command]) -> Vec<&'static str> {
    cs.iter()
        .map(|c| match c {
            Command::Open { .. } => "open",
            Command::Record { .. } => "record",
            Command::Tap { .. } => "tap",
            Command::Untap { .. } => "untap",
            Command::Browser { .. } => "browser",
            Command::IceRestart { .. } => "ice-restart",
            Command::Pbx { .. } => "pbx",
            Command::PbxKeys { .. } => "pbx-keys",
            Command::Answered { .. } => "answered",
            Command::PayloadLegs { .. } => "payload-legs",
            Command::Close { .. } => "close",
        })
        .collect()
}

fn pbx_target(cs: &[Command]) -> Option<(SocketAddr, SocketAddr)> {
    cs.iter().find_map(|c| match c {
        Command::Pbx { rtp, rtcp, .. } => Some((*rtp, *rtcp)),
        _ => None,
    })
}

fn sdp(text: &str) -> Sdp<'_> {
    Sdp::parse(text.as_bytes()).expect("our SDP parses")
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

/// Hands `body` to the table as the call's SDP from `from` in `carrier`.
fn carry(
    t: &mut MediaCalls,
    from: Side,
    carrier: Carrier,
    body: &str,
) -> Result<String, MediaError> {
    t.sdp(CONN, CALL, from, carrier, body.as_bytes())
        .map(|b| b.expect("part of an offer/answer exchange"))
}

fn browser_offer(t: &mut MediaCalls, body: &str) -> Result<String, MediaError> {
    carry(t, Side::Browser, Carrier::Request(Method::Invite), body)
}

#[test]
fn browser_offer_then_early_media_then_answer() {
    let mut t = table(30_000, 30_099);
    let to_pbx = browser_offer(&mut t, &chromium_offer()).expect("carried");
    let cs = commands(&mut t);
    assert_eq!(names(&cs), ["open", "browser"]);
    let Command::Open { browser, pbx, .. } = &cs[0] else {
        unreachable!("checked above")
    };
    let offer = sdp(&to_pbx);
    assert_eq!(
        offer.connection(),
        Some("10.0.0.2"),
        "the advertised address"
    );
    assert_eq!(offer.media[0].port, pbx[0].port());
    assert_eq!(offer.media[0].proto, "RTP/AVP");
    assert_eq!(t.ports(), (2, 50), "a pair per side");

    // 183 with the answer: early media; then the 200 repeats it.
    for carrier in ["183", "200"] {
        let to_browser = carry(
            &mut t,
            Side::Pbx,
            Carrier::Response(Method::Invite),
            ASTERISK_ANSWER,
        )
        .unwrap_or_else(|e| panic!("{carrier}: {e}"));
        let answer = sdp(&to_browser);
        assert_eq!(answer.attribute("ice-lite"), Some(None));
        let audio = &answer.media[0];
        assert_eq!(audio.port, browser.port(), "{carrier}");
        assert_eq!(audio.connection(), Some("192.0.2.10"));
        assert_eq!(audio.attribute("setup"), Some(Some("passive")));
        assert_eq!(audio.formats, "0 126", "the PBX's codecs, untouched");
        assert_eq!(
            pbx_target(&commands(&mut t)),
            Some((addr("10.0.0.5:16384"), addr("10.0.0.5:16385"))),
            "{carrier}: RTCP on port+1"
        );
    }
    t.answered(CONN, CALL);
    t.answered(CONN, CALL);
    assert_eq!(names(&commands(&mut t)), ["answered"], "armed once");
    assert!(t.is_answered(CONN, CALL));
    assert!(t.close(CONN, CALL).is_some());
    assert_eq!(names(&commands(&mut t)), ["close"]);
    assert_eq!(t.ports(), (0, 50), "every port given back");
    assert_eq!(t.close(CONN, CALL), None, "closing twice is harmless");
}

#[test]
fn a_recorded_call_s_session_comes_with_its_recording_and_only_once() {
    let mut t = table_with(30_000, 30_099, RecordingMode::All);
    browser_offer(&mut t, &chromium_offer()).expect("carried");
    // The signalling names the parties of the message that carried it.
    t.name_parties(CONN, CALL, "sip:alice@a.test", "sip:bob@b.test");
    let cs = commands(&mut t);
    assert_eq!(names(&cs), ["open", "record", "tap", "browser"]);
    let Command::Record { sink, .. } = &cs[1] else {
        unreachable!("checked above")
    };
    assert_eq!(sink.call_id, CALL);
    assert_eq!(sink.by, Starter::Policy);
    // The WAV decodes what the SDP maps: Chromium's Opus at 111.
    assert!(
        sink.codecs.contains(&(111, Codec::Opus)),
        "{:?}",
        sink.codecs
    );
    assert_eq!(
        sink.parties,
        Some(("sip:alice@a.test".into(), "sip:bob@b.test".into()))
    );
    assert_eq!(t.recorded_by(CONN, CALL), Some(Starter::Policy));
    // A re-offer (hold) keeps the session, and so the recording.
    browser_offer(&mut t, &chromium_offer()).expect("carried");
    assert!(!names(&commands(&mut t)).contains(&"record"));
    // The app may not stop it; the operator may, and start it again.
    assert_eq!(
        t.stop_recording(CONN, CALL, Starter::App),
        Err(RecordingError::Mandatory)
    );
    assert_eq!(t.stop_recording(CONN, CALL, Starter::Operator), Ok(true));
    assert_eq!(names(&commands(&mut t)), ["untap"]);
    assert_eq!(t.recorded_by(CONN, CALL), None);
    assert_eq!(t.start_recording(CONN, CALL, Starter::Operator), Ok(true));
    assert_eq!(names(&commands(&mut t)), ["record", "tap"]);
    drop(cs);
}

#[test]
fn on_demand_recording_starts_and_stops_when_asked_each_span_its_own() {
    let mut t = table_with(30_000, 30_099, RecordingMode::OnDemand);
    assert_eq!(
        t.start_recording(CONN, CALL, Starter::App),
        Err(RecordingError::NoCall)
    );
    browser_offer(&mut t, &chromium_offer()).expect("carried");
    t.name_parties(CONN, CALL, "sip:alice@a.test", "sip:bob@b.test");
    assert_eq!(
        names(&commands(&mut t)),
        ["open", "browser"],
        "not by itself"
    );
    assert_eq!(t.recorded_by(CONN, CALL), None);
    assert_eq!(t.stop_recording(CONN, CALL, Starter::App), Ok(false));

    assert_eq!(t.start_recording(CONN, CALL, Starter::App), Ok(true));
    let cs = commands(&mut t);
    assert_eq!(names(&cs), ["record", "tap"]);
    let Command::Record { sink, .. } = &cs[0] else {
        unreachable!("checked above")
    };
    assert_eq!(sink.by, Starter::App);
    assert_eq!(
        sink.parties,
        Some(("sip:alice@a.test".into(), "sip:bob@b.test".into())),
        "named before the recording started"
    );
    assert_eq!(t.recorded_by(CONN, CALL), Some(Starter::App));
    assert_eq!(
        t.start_recording(CONN, CALL, Starter::Operator),
        Ok(false),
        "once at a time"
    );
    assert!(commands(&mut t).is_empty());
    assert_eq!(t.stop_recording(CONN, CALL, Starter::App), Ok(true));
    assert_eq!(names(&commands(&mut t)), ["untap"]);

    // A recording its writer ended (a full disk) is over: a new start
    // makes a new one.
    assert_eq!(t.start_recording(CONN, CALL, Starter::Operator), Ok(true));
    let cs = commands(&mut t);
    assert_eq!(t.recorded_by(CONN, CALL), Some(Starter::Operator));
    drop(cs);
    assert_eq!(t.recorded_by(CONN, CALL), None, "its writer let go");
    assert_eq!(t.start_recording(CONN, CALL, Starter::App), Ok(true));
}

#[test]
fn with_recording_off_nothing_starts_or_stops() {
    let mut t = table(30_000, 30_099);
    browser_offer(&mut t, &chromium_offer()).expect("carried");
    let _ = commands(&mut t);
    for by in [Starter::App, Starter::Operator] {
        assert_eq!(
            t.start_recording(CONN, CALL, by),
            Err(RecordingError::Disabled)
        );
        assert_eq!(
            t.stop_recording(CONN, CALL, by),
            Err(RecordingError::Disabled)
        );
    }
    assert!(commands(&mut t).is_empty());
    assert_eq!(RecordingError::Disabled.status().0, 403);
}

#[test]
fn pbx_offer_gets_the_browser_s_answer() {
    let mut t = table(30_000, 30_099);
    let to_browser = carry(
        &mut t,
        Side::Pbx,
        Carrier::Request(Method::Invite),
        FREESWITCH_HOLD_OFFER,
    )
    .expect("carried");
    let cs = commands(&mut t);
    assert_eq!(names(&cs), ["open", "pbx"]);
    assert_eq!(
        pbx_target(&cs),
        Some((addr("10.0.0.6:24000"), addr("10.0.0.6:24001"))),
        "a=rtcp (RFC 3605) names RTCP"
    );
    let offer = sdp(&to_browser);
    assert_eq!(offer.media[0].attribute("setup"), Some(Some("actpass")));
    assert_eq!(offer.direction(0), Direction::SendOnly);
    assert_eq!(offer.media[0].formats, "8 101");

    let to_pbx = carry(
        &mut t,
        Side::Browser,
        Carrier::Response(Method::Invite),
        CHROMIUM_ANSWER,
    )
    .expect("carried");
    let cs = commands(&mut t);
    assert_eq!(names(&cs), ["browser", "pbx"], "DTLS starts now");
    assert!(
        matches!(
            cs[1],
            Command::Pbx {
                leg: 0,
                clock: 8000,
                ..
            }
        ),
        "jitter in the negotiated codec's clock: {:?}",
        cs[1]
    );
    let answer = sdp(&to_pbx);
    assert_eq!(answer.direction(0), Direction::RecvOnly);
    assert_eq!(answer.media[0].proto, "RTP/AVP");
    assert_eq!(answer.media[0].formats, "8 101");
    assert!(answer.media[0].attribute("fingerprint").is_none());
}

#[test]
fn offerless_invite_takes_the_offer_in_the_200_and_the_answer_in_the_ack() {
    let mut t = table(30_000, 30_099);
    t.offerless(CONN, CALL); // unknown call: nothing to forget
    let to_pbx = carry(
        &mut t,
        Side::Browser,
        Carrier::Response(Method::Invite),
        &chromium_offer(),
    )
    .expect("the 200's offer");
    assert_eq!(sdp(&to_pbx).media[0].proto, "RTP/AVP");
    let to_browser = carry(
        &mut t,
        Side::Pbx,
        Carrier::Request(Method::Ack),
        ASTERISK_ANSWER,
    )
    .expect("the ACK's answer");
    let answer = sdp(&to_browser);
    assert_eq!(answer.media[0].attribute("setup"), Some(Some("passive")));
    assert_eq!(answer.attribute("group"), Some(Some("BUNDLE 0")));
}

#[test]
fn hold_and_unhold_both_ways_keep_the_ports() {
    let mut t = table(30_000, 30_099);
    browser_offer(&mut t, &chromium_offer()).expect("offer");
    carry(
        &mut t,
        Side::Pbx,
        Carrier::Response(Method::Invite),
        ASTERISK_ANSWER,
    )
    .expect("answer");
    commands(&mut t);

    // The browser holds: re-INVITE with sendonly; the PBX answers recvonly.
    let hold = chromium_offer().replace("a=sendrecv", "a=sendonly");
    let to_pbx = browser_offer(&mut t, &hold).expect("re-offer");
    assert_eq!(sdp(&to_pbx).direction(0), Direction::SendOnly);
    let held = ASTERISK_ANSWER.replace("a=sendrecv", "a=recvonly");
    let to_browser =
        carry(&mut t, Side::Pbx, Carrier::Response(Method::Invite), &held).expect("answer");
    assert_eq!(sdp(&to_browser).direction(0), Direction::RecvOnly);
    // The PBX holds the other way (UPDATE), then resumes with inactive
    // lifted: the browser is offered each direction.
    for (dir, expect) in [
        ("a=sendonly", Direction::SendOnly),
        ("a=inactive", Direction::Inactive),
        ("a=sendrecv", Direction::SendRecv),
    ] {
        let offer = ASTERISK_ANSWER.replace("a=sendrecv", dir);
        let to_browser =
            carry(&mut t, Side::Pbx, Carrier::Request(Method::Update), &offer).expect("offer");
        assert_eq!(sdp(&to_browser).direction(0), expect, "{dir}");
        let answer =
            CHROMIUM_ANSWER.replace("a=recvonly", &format!("a={}", expect.answer().as_str()));
        carry(
            &mut t,
            Side::Browser,
            Carrier::Response(Method::Update),
            &answer,
        )
        .expect("answer");
    }
    let cs = commands(&mut t);
    assert!(
        !names(&cs).contains(&"open") && !names(&cs).contains(&"browser"),
        "no new ports, no new DTLS: {:?}",
        names(&cs)
    );
    assert_eq!(t.ports().0, 2);
}

#[test]
fn an_ice_restart_gets_new_credentials_and_keeps_dtls() {
    let mut t = table(30_000, 30_099);
    browser_offer(&mut t, &chromium_offer()).expect("offer");
    let first = carry(
        &mut t,
        Side::Pbx,
        Carrier::Response(Method::Invite),
        ASTERISK_ANSWER,
    )
    .expect("answer");
    commands(&mut t);
    let restart = chromium_offer()
        .replace("a=ice-ufrag:Kx3f", "a=ice-ufrag:New1")
        .replace("9Jq2mXo1hVb8s7PzR4tYw3nL", "newpasswordnewpassword12");
    browser_offer(&mut t, &restart).expect("re-offer");
    let second = carry(
        &mut t,
        Side::Pbx,
        Carrier::Response(Method::Invite),
        ASTERISK_ANSWER,
    )
    .expect("answer");
    let ufrag = |s: &str| {
        sdp(s).media[0]
            .attribute("ice-ufrag")
            .flatten()
            .map(str::to_owned)
    };
    assert_ne!(ufrag(&first), ufrag(&second), "new local credentials");
    assert_eq!(
        sdp(&first).media[0].port,
        sdp(&second).media[0].port,
        "same port"
    );
    assert_eq!(names(&commands(&mut t)), ["ice-restart", "pbx"]);
}

#[test]
fn audio_and_video_each_get_a_leg_and_data_channels_are_rejected() {
    let mut t = table(30_000, 30_099);
    let av = chromium_offer().replace("a=group:BUNDLE 0", "a=group:BUNDLE 0 1 2")
        + "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\n\
a=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:102 H264/90000\r\n\
a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\na=mid:2\r\n";
    let to_pbx = browser_offer(&mut t, &av).expect("offer");
    let cs = commands(&mut t);
    let Command::Open { pbx, .. } = &cs[0] else {
        panic!("the call opens first: {:?}", names(&cs))
    };
    assert_eq!(pbx.len(), 2, "a leg for audio, one for video");
    let offer = sdp(&to_pbx);
    let ports: Vec<u16> = offer.media.iter().map(|m| m.port).collect();
    assert_eq!(
        ports,
        [pbx[0].port(), pbx[1].port(), 0],
        "the data channel does not cross"
    );
    let video = &offer.media[1];
    assert_eq!(
        (video.kind, video.proto, video.formats),
        ("video", "RTP/AVP", "96 97 102")
    );
    assert_eq!(
        video.attribute("rtcp"),
        Some(Some(&*(pbx[1].port() + 1).to_string()))
    );
    assert!(
        video.attributes("fmtp").any(|f| f
            == Some("102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"))
    );

    // A video phone answers both.
    let pbx_answer = ASTERISK_ANSWER.to_owned()
        + "m=video 16390 RTP/AVP 102\r\na=rtpmap:102 H264/90000\r\na=sendrecv\r\nm=application 0 RTP/AVP 0\r\n";
    let to_browser = carry(
        &mut t,
        Side::Pbx,
        Carrier::Response(Method::Invite),
        &pbx_answer,
    )
    .expect("answer");
    let answer = sdp(&to_browser);
    assert_eq!(answer.media.len(), 3, "every offered section answered");
    assert_eq!(answer.attribute("group"), Some(Some("BUNDLE 0 1")));
    assert_eq!(
        answer.media[0].port, answer.media[1].port,
        "one bundled transport"
    );
    assert_eq!(
        answer.media[1].formats, "102",
        "the phone's codec, untouched"
    );
    assert!(answer.media[2].is_rejected());
    let targets: Vec<(usize, SocketAddr)> = commands(&mut t)
        .iter()
        .filter_map(|c| match c {
            Command::Pbx { leg, rtp, .. } => Some((*leg, *rtp)),
            _ => None,
        })
        .collect();
    assert_eq!(
        targets,
        [(0, addr("10.0.0.5:16384")), (1, addr("10.0.0.5:16390"))]
    );
    t.close(CONN, CALL);
    assert_eq!(t.ports().0, 0, "all three pairs given back");
}

#[test]
fn a_video_section_the_pbx_refuses_stays_refused_for_the_browser() {
    let mut t = table(30_000, 30_099);
    let av = chromium_offer().replace("a=group:BUNDLE 0", "a=group:BUNDLE 0 1")
        + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=rtpmap:96 VP8/90000\r\n";
    browser_offer(&mut t, &av).expect("offer");
    let pbx_answer = ASTERISK_ANSWER.to_owned() + "m=video 0 RTP/AVP 96\r\n";
    let to_browser = carry(
        &mut t,
        Side::Pbx,
        Carrier::Response(Method::Invite),
        &pbx_answer,
    )
    .expect("answer");
    let answer = sdp(&to_browser);
    assert_eq!(answer.attribute("group"), Some(Some("BUNDLE 0")));
    assert!(answer.media[1].is_rejected());
}

#[test]
fn a_full_range_refuses_with_503_and_nothing_leaks() {
    let mut t = table(30_000, 30_003); // two pairs: one call
    browser_offer(&mut t, &chromium_offer()).expect("the first call fits");
    let e = t
        .sdp(
            CONN,
            "call-2",
            Side::Browser,
            Carrier::Request(Method::Invite),
            chromium_offer().as_bytes(),
        )
        .expect_err("no ports left");
    assert_eq!(e.status(), (503, "Media Ports Exhausted"));
    assert_eq!(t.active(), 1);
    assert_eq!(t.ports(), (2, 2), "the refused call holds nothing");
    commands(&mut t);
    t.close(CONN, CALL);
    browser_offer(&mut t, &chromium_offer()).expect("ports came back");
}

#[test]
fn sdp_the_relay_cannot_carry_is_refused_with_488() {
    let mut t = table(30_000, 30_099);
    for (body, why) in [
        ("not sdp at all", "garbage"),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
            "no audio",
        ),
        (
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n",
            "no ICE",
        ),
    ] {
        let e = browser_offer(&mut t, body).expect_err(why);
        assert_eq!(e.status().0, 488, "{why}: {e}");
        assert_eq!(t.ports(), (0, 50), "{why}: nothing held");
    }
    let e = t
        .sdp(
            CONN,
            "other",
            Side::Pbx,
            Carrier::Request(Method::Ack),
            ASTERISK_ANSWER.as_bytes(),
        )
        .expect_err("an answer to nothing");
    assert!(matches!(e, MediaError::NoOffer), "{e}");
}

/// A binder that refuses the first ports it is given, as when another
/// program holds them.
#[derive(Debug, Default)]
struct Squatted {
    refused: Vec<SocketAddr>,
    bound: Vec<SocketAddr>,
}

impl PortBinder for Squatted {
    fn bind(&mut self, addr: SocketAddr, _rtcp: bool) -> std::io::Result<()> {
        if addr.port() < 30_004 {
            self.refused.push(addr);
            return Err(std::io::ErrorKind::AddrInUse.into());
        }
        self.bound.push(addr);
        Ok(())
    }

    fn unbind(&mut self, addr: SocketAddr) {
        self.bound.retain(|a| *a != addr);
    }
}

#[test]
fn ports_another_program_holds_are_passed_over() {
    let mut t = table(30_000, 30_099).with_binder(Box::<Squatted>::default());
    browser_offer(&mut t, &chromium_offer()).expect("carried");
    let Command::Open { browser, pbx, .. } = commands(&mut t).remove(0) else {
        panic!("open first")
    };
    assert_eq!((browser.port(), pbx[0].port()), (30_004, 30_006));
    assert_eq!(t.ports().0, 2, "the squatted pairs went back to the range");
}

#[test]
fn the_echo_extension_answers_with_the_first_codec_and_its_telephone_events() {
    let mut t = table(30_000, 30_099);
    let answer = t
        .echo(CONN, CALL, chromium_offer().as_bytes())
        .expect("echo answers");
    let first = sdp(&answer);
    let audio = &first.media[0];
    assert_eq!(audio.formats, "111 110", "Opus and telephone-event/48000");
    assert_eq!(audio.attribute("setup"), Some(Some("passive")));
    assert_eq!(first.direction(0), Direction::SendRecv);
    let cs = commands(&mut t);
    assert_eq!(names(&cs), ["open", "browser", "answered"]);
    // A hold re-offer is answered recvonly, on the same ports.
    let hold = chromium_offer().replace("a=sendrecv", "a=sendonly");
    let answer = t.echo(CONN, CALL, hold.as_bytes()).expect("echo answers");
    assert_eq!(sdp(&answer).direction(0), Direction::RecvOnly);
    assert_eq!(names(&commands(&mut t)), Vec::<&str>::new());
}

#[test]
fn one_connection_cannot_take_the_whole_range() {
    let mut t = MediaCalls::new(
        MediaConfig {
            port_min: 30_000,
            port_max: 30_099,
            max_calls_per_connection: 2,
            ..MediaConfig::default()
        },
        Arc::new(Identity::generate().expect("identity")),
        [3; 32],
    )
    .expect("range");
    let offer = |t: &mut MediaCalls, conn: ConnId, call: &str| {
        t.sdp(
            conn,
            call,
            Side::Browser,
            Carrier::Request(Method::Invite),
            chromium_offer().as_bytes(),
        )
    };
    offer(&mut t, CONN, "a").expect("first");
    offer(&mut t, CONN, "b").expect("second");
    let e = offer(&mut t, CONN, "c").expect_err("a third is one too many");
    assert_eq!(e.status(), (503, "Too Many Calls"));
    offer(&mut t, ConnId(8), "c").expect("another connection still calls");
    t.close(CONN, "a");
    offer(&mut t, CONN, "c").expect("a call ended: room again");
    assert_eq!(t.active(), 3);
}

#[test]
fn sdp_outside_offer_answer_is_left_alone_and_late_answers_open_nothing() {
    let mut t = table(30_000, 30_099);
    for carrier in [
        Carrier::Request(Method::Message),
        Carrier::Request(Method::Options),
        Carrier::Response(Method::Options),
        Carrier::Response(Method::Bye),
    ] {
        let out = t.sdp(CONN, CALL, Side::Pbx, carrier, ASTERISK_ANSWER.as_bytes());
        assert!(matches!(out, Ok(None)), "{carrier:?}: {out:?}");
    }
    assert_eq!(t.active(), 0);
    // An UPDATE or PRACK belongs to a call: outside one, its offer takes
    // no ports (481).
    for carrier in [
        Carrier::Request(Method::Prack),
        Carrier::Request(Method::Update),
    ] {
        let out = t.sdp(
            CONN,
            CALL,
            Side::Pbx,
            carrier,
            FREESWITCH_HOLD_OFFER.as_bytes(),
        );
        assert!(matches!(out, Err(MediaError::NoCall(_))), "{out:?}");
        assert_eq!(t.ports().0, 0);
    }
    // Within one, a PRACK with nothing pending carries an offer (RFC 3262).
    browser_offer(&mut t, &chromium_offer()).expect("offer");
    carry(
        &mut t,
        Side::Pbx,
        Carrier::Response(Method::Invite),
        ASTERISK_ANSWER,
    )
    .expect("answer");
    let out = t.sdp(
        CONN,
        CALL,
        Side::Pbx,
        Carrier::Request(Method::Prack),
        FREESWITCH_HOLD_OFFER.as_bytes(),
    );
    assert!(matches!(out, Ok(Some(_))), "{out:?}");
    // After the call ended, a retransmitted 200 with SDP opens nothing.
    t.close(CONN, CALL);
    let late = t.sdp(
        CONN,
        CALL,
        Side::Pbx,
        Carrier::Response(Method::Invite),
        ASTERISK_ANSWER.as_bytes(),
    );
    assert!(matches!(late, Err(MediaError::Ended)), "{late:?}");
    assert_eq!(t.ports().0, 0);
}

mod srtp;
