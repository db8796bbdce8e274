//! Real SDP bodies, as browsers and PBXs write them, and the fuzzer's
//! changes to them. The PBX bodies are those of the relay's media tests
//! (`relay/src/media/tests.rs`, `relay/src/media/calls/tests.rs`).

use std::sync::LazyLock;

use arbitrary::Arbitrary;
use sipline_core::sip::Message;

use crate::edit::Edit;

/// Chromium's audio offer, the body of the corpus' WebRTC INVITE.
static CHROMIUM_OFFER: LazyLock<String> = LazyLock::new(|| {
    let raw =
        include_bytes!("../../sdk-wasm/core/tests/corpus/valid/invite_chromium_webrtc_sdp.sip");
    let body = Message::parse(raw)
        .expect("the corpus INVITE parses")
        .body();
    String::from_utf8(body.to_vec()).expect("the corpus SDP is UTF-8")
});

/// Chromium's offer with a video section and a data channel.
static CHROMIUM_AV_OFFER: LazyLock<String> = LazyLock::new(|| {
    CHROMIUM_OFFER.replace("a=group:BUNDLE 0", "a=group:BUNDLE 0 1 2")
        + "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendrecv\r\n\
a=rtcp-mux\r\na=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\n\
a=fmtp:97 apt=96\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n\
a=mid:2\r\na=sctp-port:5000\r\n"
});

/// Chromium's answer to an audio offer (`setup:active`).
const CHROMIUM_ANSWER: &str = "v=0\r\no=- 2381913526154937133 2 IN IP4 127.0.0.1\r\ns=-\r\n\
t=0 0\r\na=group:BUNDLE 0\r\na=msid-semantic: WMS\r\nm=audio 9 UDP/TLS/RTP/SAVPF 8 101\r\n\
c=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\na=ice-ufrag:Br0w\r\n\
a=ice-pwd:browserpassword012345678\r\na=ice-options:trickle\r\n\
a=fingerprint:sha-256 0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9:0A:1B:2C:3D:4E:5F:60:71:82:93:A4:B5:C6:D7:E8:F9\r\n\
a=setup:active\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\n";

/// Asterisk's answer.
const ASTERISK_ANSWER: &str = "v=0\r\no=- 1938 1940 IN IP4 10.0.0.5\r\ns=Asterisk\r\n\
c=IN IP4 10.0.0.5\r\nt=0 0\r\nm=audio 16384 RTP/AVP 0 126\r\na=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:126 telephone-event/8000\r\na=fmtp:126 0-16\r\na=ptime:20\r\na=maxptime:140\r\n\
a=sendrecv\r\n";

/// FreeSWITCH putting a call on hold, with RFC 3605 RTCP and SDES keys.
const FREESWITCH_HOLD_OFFER: &str = "v=0\r\no=FreeSWITCH 1700000000 1700000001 IN IP4 10.0.0.6\r\n\
s=FreeSWITCH\r\nc=IN IP4 10.0.0.6\r\nt=0 0\r\nm=audio 24000 RTP/AVP 8 0 101\r\n\
a=rtpmap:8 PCMA/8000\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\na=ptime:20\r\na=sendonly\r\na=rtcp:24001 IN IP4 10.0.0.6\r\n\
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:ABC\r\n";

/// A PBX offering audio and video, RTCP multiplexed.
const PBX_VIDEO_OFFER: &str = "v=0\r\no=- 7 7 IN IP4 10.0.0.5\r\ns=pbx\r\nc=IN IP4 10.0.0.5\r\n\
t=0 0\r\nm=audio 16390 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:101 telephone-event/8000\r\na=rtcp-mux\r\na=sendrecv\r\n\
m=video 16392 RTP/AVP 96\r\nc=IN IP4 10.0.0.7\r\na=rtpmap:96 VP8/90000\r\na=sendrecv\r\n";

/// The simulated browser's offer (`sipline-load`): one host candidate.
const LOAD_OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
m=audio 50000 UDP/TLS/RTP/SAVPF 0 8 101\r\nc=IN IP4 127.0.0.1\r\n\
a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0\r\n\
a=ice-ufrag:LoAd\r\na=ice-pwd:loadpassword0123456789ab\r\n\
a=fingerprint:sha-256 AA:BB:CC\r\na=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n\
a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n";

/// Which real body an input starts from.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// Chromium's audio offer.
    ChromiumOffer,
    /// Chromium's offer with video and a data channel.
    ChromiumAvOffer,
    /// Chromium's answer.
    ChromiumAnswer,
    /// Asterisk's answer.
    AsteriskAnswer,
    /// FreeSWITCH's hold offer.
    FreeswitchHoldOffer,
    /// A PBX's audio and video offer.
    PbxVideoOffer,
    /// The simulated browser's offer.
    LoadOffer,
}

impl Body {
    /// The body's text.
    pub fn text(self) -> &'static str {
        match self {
            Body::ChromiumOffer => CHROMIUM_OFFER.as_str(),
            Body::ChromiumAvOffer => CHROMIUM_AV_OFFER.as_str(),
            Body::ChromiumAnswer => CHROMIUM_ANSWER,
            Body::AsteriskAnswer => ASTERISK_ANSWER,
            Body::FreeswitchHoldOffer => FREESWITCH_HOLD_OFFER,
            Body::PbxVideoOffer => PBX_VIDEO_OFFER,
            Body::LoadOffer => LOAD_OFFER,
        }
    }
}

/// SDP lines that change what a rewrite or a user agent does, for the
/// fuzzer to insert without having to spell them.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum KnownLine {
    /// Hold, from the holder.
    SendOnly,
    /// Hold, from the held.
    RecvOnly,
    /// Both held.
    Inactive,
    /// Unhold.
    SendRecv,
    /// RTCP on the RTP port.
    RtcpMux,
    /// An ICE restart's new fragment.
    NewUfrag,
    /// An ICE restart's new password.
    NewPwd,
    /// Another DTLS fingerprint.
    Fingerprint,
    /// DTLS client.
    SetupActive,
    /// DTLS server.
    SetupPassive,
    /// RFC 2543 hold.
    ConnectionZero,
    /// An IPv6 address.
    ConnectionV6,
    /// A PBX's address.
    ConnectionPbx,
    /// RFC 3605 RTCP address.
    Rtcp,
    /// A rejected audio section.
    AudioRejected,
    /// A plain RTP audio section.
    AudioPlain,
    /// A WebRTC video section.
    Video,
    /// A rejected video section.
    VideoRejected,
    /// A data channel.
    DataChannel,
    /// BUNDLE of two sections.
    Bundle,
    /// A video codec.
    VideoRtpmap,
    /// RFC 4733 events at 48 kHz.
    TelephoneEvent,
    /// An ICE host candidate.
    Candidate,
    /// ICE-lite.
    IceLite,
    /// A second mid.
    Mid1,
}

impl KnownLine {
    /// The line's text, without its line end.
    pub fn text(self) -> &'static str {
        match self {
            KnownLine::SendOnly => "a=sendonly",
            KnownLine::RecvOnly => "a=recvonly",
            KnownLine::Inactive => "a=inactive",
            KnownLine::SendRecv => "a=sendrecv",
            KnownLine::RtcpMux => "a=rtcp-mux",
            KnownLine::NewUfrag => "a=ice-ufrag:Rst2",
            KnownLine::NewPwd => "a=ice-pwd:restartpassword0123456789",
            KnownLine::Fingerprint => "a=fingerprint:sha-256 FF:EE:DD",
            KnownLine::SetupActive => "a=setup:active",
            KnownLine::SetupPassive => "a=setup:passive",
            KnownLine::ConnectionZero => "c=IN IP4 0.0.0.0",
            KnownLine::ConnectionV6 => "c=IN IP6 2001:db8::5",
            KnownLine::ConnectionPbx => "c=IN IP4 10.0.0.9",
            KnownLine::Rtcp => "a=rtcp:16001 IN IP4 10.0.0.9",
            KnownLine::AudioRejected => "m=audio 0 RTP/AVP 0",
            KnownLine::AudioPlain => "m=audio 16000 RTP/AVP 0 8 101",
            KnownLine::Video => "m=video 9 UDP/TLS/RTP/SAVPF 96",
            KnownLine::VideoRejected => "m=video 0 RTP/AVP 96",
            KnownLine::DataChannel => "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
            KnownLine::Bundle => "a=group:BUNDLE 0 1",
            KnownLine::VideoRtpmap => "a=rtpmap:96 VP8/90000",
            KnownLine::TelephoneEvent => "a=rtpmap:101 telephone-event/48000",
            KnownLine::Candidate => "a=candidate:1 1 udp 2122260223 192.0.2.7 50002 typ host",
            KnownLine::IceLite => "a=ice-lite",
            KnownLine::Mid1 => "a=mid:1",
        }
    }
}

/// One change to an SDP body.
#[derive(Arbitrary, Clone, Debug)]
pub enum SdpEdit {
    /// Inserts a known line before line `index` (wrapped).
    Insert {
        /// Before which line.
        index: u8,
        /// Which line.
        line: KnownLine,
    },
    /// Replaces line `index` with a known one.
    Replace {
        /// Which line.
        index: u8,
        /// With which.
        line: KnownLine,
    },
    /// Any other change.
    Raw(Edit),
}

/// A real SDP body, changed by the fuzzer.
#[derive(Arbitrary, Clone, Debug)]
pub struct Sdp {
    /// The body it starts from.
    pub body: Body,
    /// What to change in it.
    pub edits: Vec<SdpEdit>,
}

impl Sdp {
    /// The body after the edits.
    pub fn bytes(&self) -> Vec<u8> {
        let mut text = self.body.text().as_bytes().to_vec();
        for e in &self.edits {
            match e {
                SdpEdit::Insert { index, line } => Edit::InsertLine {
                    index: *index,
                    text: line.text().to_owned(),
                }
                .apply(&mut text),
                SdpEdit::Replace { index, line } => Edit::Line {
                    index: *index,
                    text: line.text().to_owned(),
                }
                .apply(&mut text),
                SdpEdit::Raw(edit) => edit.apply(&mut text),
            }
        }
        text
    }

    /// The body after the edits, as text (lossy: the user agent's API
    /// takes strings).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes()).into_owned()
    }
}
