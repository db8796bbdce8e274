//! SDP (RFC 8866), the offer/answer bodies of calls: a lean zero-copy model
//! shared by the user agent (hold directions, what was negotiated) and the
//! relay (which rewrites every offer and answer between WebRTC and plain
//! RTP).
//!
//! Lines are kept in order and as written, so that a rewrite changes only
//! what it means to and writes everything else back byte for byte.

use crate::prelude::*;
use crate::sip::str_from;
use core::fmt;

/// Why an SDP body was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Not UTF-8 text.
    #[error("SDP is not UTF-8")]
    NotUtf8,
    /// The body does not start with `v=0`.
    #[error("SDP must start with v=0")]
    BadVersion,
    /// A line is not `<letter>=<value>`.
    #[error("malformed SDP line {0}")]
    BadLine(usize),
    /// An `m=` line is not `media port proto fmt…`.
    #[error("malformed m= line {0}")]
    BadMediaLine(usize),
    /// A control character (a bare CR, NUL…) inside line {0}: some stacks
    /// end lines at a bare CR, so passing it on would smuggle lines past
    /// whoever rewrote the SDP.
    #[error("control character in SDP line {0}")]
    ControlChar(usize),
    /// More lines or media sections than any real call uses.
    #[error("SDP too large")]
    TooLarge,
}

/// Most lines accepted (Chromium's offers with video and simulcast stay
/// well under 200).
const MAX_LINES: usize = 1000;

/// One `<type>=<value>` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// The type letter (`v`, `o`, `c`, `a`…).
    pub kind: u8,
    /// Everything after the `=`.
    pub value: &'a str,
}

impl<'a> Line<'a> {
    /// For an `a=` line: the attribute's name and its value, if any.
    pub fn attribute(&self) -> Option<(&'a str, Option<&'a str>)> {
        if self.kind != b'a' {
            return None;
        }
        Some(match self.value.split_once(':') {
            Some((name, value)) => (name, Some(value)),
            None => (self.value, None),
        })
    }
}

/// The media direction of a section (RFC 3264 §6.1, RFC 8866 §6.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Both ways (the default).
    SendRecv,
    /// We send, the other side only receives (hold, from the holder).
    SendOnly,
    /// We receive only.
    RecvOnly,
    /// Neither.
    Inactive,
}

impl Direction {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    fn from_attribute(name: &str) -> Option<Direction> {
        match name {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        }
    }

    /// The direction an answerer takes to an offer with this direction
    /// (RFC 3264 §6.1): sendonly is answered recvonly and vice versa.
    pub fn answer(self) -> Direction {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }
}

/// One media section: its `m=` line and the lines that follow it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Media<'a> {
    /// `audio`, `video`, `application`…
    pub kind: &'a str,
    /// The transport port; 0 means the stream is rejected or disabled.
    pub port: u16,
    /// The port field as written (`9`, or `49170/2` with a port count).
    pub port_field: &'a str,
    /// The transport protocol (`RTP/AVP`, `UDP/TLS/RTP/SAVPF`…).
    pub proto: &'a str,
    /// The formats (RTP payload types), space-separated as written.
    pub formats: &'a str,
    /// The lines after the `m=` line, in order.
    pub lines: Vec<Line<'a>>,
}

impl<'a> Media<'a> {
    /// The values of every `a=<name>` line (`None` for a flag).
    pub fn attributes(&self, name: &'a str) -> impl Iterator<Item = Option<&'a str>> + '_ {
        attributes(&self.lines, name)
    }

    /// The value of the first `a=<name>` line; `Some(None)` for a flag.
    pub fn attribute(&self, name: &'a str) -> Option<Option<&'a str>> {
        self.attributes(name).next()
    }

    /// The section's `c=` address, if it has its own.
    pub fn connection(&self) -> Option<&'a str> {
        connection(&self.lines)
    }

    /// Whether the stream was rejected or disabled (port 0).
    pub fn is_rejected(&self) -> bool {
        self.port == 0
    }

    /// The payload types, in preference order.
    pub fn payload_types(&self) -> impl Iterator<Item = &'a str> {
        self.formats.split_ascii_whitespace()
    }

    /// `(payload type, encoding/clock[/channels])` of every `a=rtpmap`.
    pub fn rtpmaps(&self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        self.attributes("rtpmap")
            .flatten()
            .filter_map(|v| v.split_once(' '))
    }
}

/// A parsed SDP body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sdp<'a> {
    /// The session-level lines, `v=` first.
    pub session: Vec<Line<'a>>,
    /// The media sections, in order (their index is the m-line index that
    /// offer/answer pairs by).
    pub media: Vec<Media<'a>>,
}

impl<'a> Sdp<'a> {
    /// Parses an SDP body. Lenient where RFC 8866 lets receivers be (bare
    /// LF line ends, unknown line types), strict where a rewrite depends on
    /// it (the `m=` lines).
    pub fn parse(body: &'a [u8]) -> Result<Sdp<'a>, SdpError> {
        let text = core::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
        let mut session = Vec::new();
        let mut media: Vec<Media<'a>> = Vec::new();
        let mut count = 0;
        for (i, raw) in text.split('\n').enumerate() {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if raw.is_empty() {
                continue;
            }
            count += 1;
            if count > MAX_LINES || media.len() > 64 {
                return Err(SdpError::TooLarge);
            }
            let b = raw.as_bytes();
            if b.iter().any(|&c| crate::sip::is_control(c)) {
                return Err(SdpError::ControlChar(i + 1));
            }
            if b.len() < 2 || b[1] != b'=' || !b[0].is_ascii_lowercase() {
                return Err(SdpError::BadLine(i + 1));
            }
            let line = Line {
                kind: b[0],
                value: str_from(raw, 2),
            };
            if count == 1 && (line.kind != b'v' || line.value.trim() != "0") {
                return Err(SdpError::BadVersion);
            }
            if line.kind == b'm' {
                media.push(parse_media_line(line.value).ok_or(SdpError::BadMediaLine(i + 1))?);
            } else if let Some(m) = media.last_mut() {
                m.lines.push(line);
            } else {
                session.push(line);
            }
        }
        if count == 0 {
            return Err(SdpError::BadVersion);
        }
        Ok(Sdp { session, media })
    }

    /// The value of the first session-level `a=<name>`.
    pub fn attribute(&self, name: &'a str) -> Option<Option<&'a str>> {
        attributes(&self.session, name).next()
    }

    /// The session-level `c=` address.
    pub fn connection(&self) -> Option<&'a str> {
        connection(&self.session)
    }

    /// A section's direction: its own attribute, else the session's, else
    /// sendrecv (RFC 8866 §6.7).
    pub fn direction(&self, media: usize) -> Direction {
        let own = self.media.get(media).and_then(|m| direction(&m.lines));
        own.or_else(|| direction(&self.session))
            .unwrap_or(Direction::SendRecv)
    }
}

fn attributes<'a, 'l>(
    lines: &'l [Line<'a>],
    name: &'a str,
) -> impl Iterator<Item = Option<&'a str>> + 'l {
    lines
        .iter()
        .filter_map(Line::attribute)
        .filter(move |(n, _)| *n == name)
        .map(|(_, v)| v)
}

fn connection<'a>(lines: &[Line<'a>]) -> Option<&'a str> {
    let c = lines.iter().find(|l| l.kind == b'c')?;
    // c=IN IP4 192.0.2.1 (a TTL or count after '/' is multicast-only).
    let addr = c.value.split_ascii_whitespace().nth(2)?;
    Some(addr.split('/').next().unwrap_or(addr))
}

fn direction(lines: &[Line<'_>]) -> Option<Direction> {
    lines
        .iter()
        .filter_map(Line::attribute)
        .find_map(|(n, v)| v.is_none().then(|| Direction::from_attribute(n)).flatten())
}

fn parse_media_line(value: &str) -> Option<Media<'_>> {
    let mut parts = value.splitn(4, ' ');
    let kind = parts.next().filter(|k| !k.is_empty())?;
    let port_field = parts.next()?;
    let proto = parts.next().filter(|p| !p.is_empty())?;
    let formats = parts.next().map(str::trim).filter(|f| !f.is_empty())?;
    let port_text = port_field.split('/').next().unwrap_or(port_field);
    if port_text.is_empty() || port_text.len() > 5 || !port_text.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(Media {
        kind,
        port_field,
        port: port_text.parse().ok()?,
        proto,
        formats,
        lines: Vec::new(),
    })
}

/// Writes SDP line by line (CRLF endings), for rewritten bodies.
#[derive(Clone, Debug, Default)]
pub struct SdpWriter {
    out: String,
}

impl SdpWriter {
    /// An empty body.
    pub fn new() -> Self {
        Self {
            out: String::with_capacity(1024),
        }
    }

    /// Appends `<kind>=<value>`.
    pub fn line(&mut self, kind: u8, value: &str) -> &mut Self {
        self.out.push(char::from(kind));
        self.out.push('=');
        self.out.push_str(value);
        self.out.push_str("\r\n");
        self
    }

    /// Appends a line as it was.
    pub fn copy(&mut self, line: &Line<'_>) -> &mut Self {
        self.line(line.kind, line.value)
    }

    /// Appends `a=<name>` or `a=<name>:<value>`.
    pub fn attribute(&mut self, name: &str, value: Option<&str>) -> &mut Self {
        self.out.push_str("a=");
        self.out.push_str(name);
        if let Some(v) = value {
            self.out.push(':');
            self.out.push_str(v);
        }
        self.out.push_str("\r\n");
        self
    }

    /// Appends `m=<kind> <port> <proto> <formats>`.
    pub fn media(&mut self, kind: &str, port: u16, proto: &str, formats: &str) -> &mut Self {
        self.out.push_str("m=");
        self.out.push_str(kind);
        self.out.push(' ');
        crate::sip::push_decimal(&mut self.out, u64::from(port));
        self.out.push(' ');
        self.out.push_str(proto);
        self.out.push(' ');
        self.out.push_str(formats);
        self.out.push_str("\r\n");
        self
    }

    /// The body.
    pub fn finish(self) -> String {
        self.out
    }
}

impl fmt::Display for Sdp<'_> {
    /// The body again, CRLF line ends: what a parse read, written back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in &self.session {
            write!(f, "{}={}\r\n", char::from(l.kind), l.value)?;
        }
        for m in &self.media {
            write!(
                f,
                "m={} {} {} {}\r\n",
                m.kind, m.port_field, m.proto, m.formats
            )?;
            for l in &m.lines {
                write!(f, "{}={}\r\n", char::from(l.kind), l.value)?;
            }
        }
        Ok(())
    }
}

/// Whether `sdp` names any ICE candidate (`a=candidate`, in any section).
pub fn has_candidates(sdp: &str) -> bool {
    sdp.lines().any(|l| l.starts_with("a=candidate:"))
}

/// Whether `sdp` is from an ICE-lite agent (a session-level `a=ice-lite`,
/// RFC 8839 §5.3). Unparseable SDP is not.
pub fn is_ice_lite(sdp: &str) -> bool {
    Sdp::parse(sdp.as_bytes()).is_ok_and(|s| s.attribute("ice-lite").is_some())
}

/// Whether two descriptions name the same transport: the first section's
/// (else the session's) `ice-ufrag` and `fingerprint` are equal. After a
/// reconnect, an answer that names another one comes from a far end that
/// lost the call's media (a restarted relay).
pub fn same_transport(a: &str, b: &str) -> bool {
    fn identity(sdp: &str) -> Option<(&str, &str)> {
        let sdp = Sdp::parse(sdp.as_bytes()).ok()?;
        let value = |name: &'static str| {
            sdp.media
                .first()
                .and_then(|m| m.attribute(name).flatten())
                .or_else(|| sdp.attribute(name).flatten())
        };
        Some((value("ice-ufrag")?, value("fingerprint")?))
    }
    let a = identity(a);
    a.is_some() && a == identity(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 46117317 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0\r\n\
a=msid-semantic: WMS\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 0 8 126\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n\
a=ice-ufrag:abcd\r\na=ice-pwd:0123456789abcdefghijklmn\r\na=fingerprint:sha-256 AB:CD\r\na=setup:actpass\r\n\
a=mid:0\r\na=sendonly\r\na=rtcp-mux\r\na=rtpmap:111 opus/48000/2\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:126 telephone-event/8000\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=inactive\r\n";

    #[test]
    fn ice_lite_is_a_session_attribute() {
        assert!(!is_ice_lite(OFFER));
        assert!(is_ice_lite(
            &OFFER.replace("t=0 0\r\n", "t=0 0\r\na=ice-lite\r\n")
        ));
        // Only at session level (RFC 8839 §5.3), and only in valid SDP.
        assert!(!is_ice_lite(
            &OFFER.replace("a=mid:0\r\n", "a=mid:0\r\na=ice-lite\r\n")
        ));
        assert!(!is_ice_lite("a=ice-lite\r\n"));
    }

    #[test]
    fn the_same_transport_is_the_same_ufrag_and_fingerprint() {
        assert!(same_transport(OFFER, OFFER));
        let restarted = OFFER.replace("ice-ufrag:abcd", "ice-ufrag:wxyz");
        assert!(!same_transport(OFFER, &restarted));
        let other_cert = OFFER.replace("AB:CD", "AB:CE");
        assert!(!same_transport(OFFER, &other_cert));
        // A description without them names nothing.
        let plain = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        assert!(!same_transport(plain, plain));
    }

    #[test]
    fn parses_a_webrtc_offer_and_writes_it_back() {
        let sdp = Sdp::parse(OFFER.as_bytes()).expect("valid");
        assert_eq!(sdp.media.len(), 2);
        let audio = &sdp.media[0];
        assert_eq!(
            (audio.kind, audio.port, audio.proto),
            ("audio", 9, "UDP/TLS/RTP/SAVPF")
        );
        assert_eq!(
            audio.payload_types().collect::<Vec<_>>(),
            ["111", "0", "8", "126"]
        );
        assert_eq!(audio.attribute("ice-ufrag"), Some(Some("abcd")));
        assert_eq!(audio.attribute("rtcp-mux"), Some(None));
        assert_eq!(audio.connection(), Some("0.0.0.0"));
        assert_eq!(
            audio.rtpmaps().find(|(pt, _)| *pt == "126").map(|(_, e)| e),
            Some("telephone-event/8000")
        );
        assert_eq!(sdp.direction(0), Direction::SendOnly);
        assert_eq!(sdp.direction(0).answer(), Direction::RecvOnly);
        assert_eq!(sdp.direction(1), Direction::Inactive);
        assert!(sdp.media[1].is_rejected());
        assert_eq!(sdp.attribute("group"), Some(Some("BUNDLE 0")));
        assert_eq!(sdp.to_string(), OFFER, "written back byte for byte");
    }

    #[test]
    fn session_level_direction_and_connection_apply_to_sections() {
        let body = "v=0\no=- 1 1 IN IP4 10.0.0.5\ns=x\nc=IN IP4 10.0.0.5/127\nt=0 0\na=recvonly\nm=audio 4000 RTP/AVP 0\n";
        let sdp = Sdp::parse(body.as_bytes()).expect("LF line ends are accepted");
        assert_eq!(sdp.connection(), Some("10.0.0.5"));
        assert_eq!(sdp.media[0].connection(), None);
        assert_eq!(sdp.direction(0), Direction::RecvOnly);
    }

    #[test]
    fn malformed_bodies_are_refused_with_the_line() {
        let cases: &[(&[u8], SdpError)] = &[
            (b"", SdpError::BadVersion),
            (b"o=- 1 1 IN IP4 1.2.3.4\r\n", SdpError::BadVersion),
            (b"v=1\r\n", SdpError::BadVersion),
            (b"v=0\r\nnot a line\r\n", SdpError::BadLine(2)),
            (b"v=0\r\nX=upper\r\n", SdpError::BadLine(2)),
            (b"v=0\r\nm=audio\r\n", SdpError::BadMediaLine(2)),
            (
                b"v=0\r\nm=audio port RTP/AVP 0\r\n",
                SdpError::BadMediaLine(2),
            ),
            (
                b"v=0\r\nm=audio 99999999 RTP/AVP 0\r\n",
                SdpError::BadMediaLine(2),
            ),
            (
                b"v=0\r\nm=audio 4000 RTP/AVP\r\n",
                SdpError::BadMediaLine(2),
            ),
            (b"v=0\r\n\xff\r\n", SdpError::NotUtf8),
            (
                b"v=0\r\na=rtpmap:0 PCMU/8000\rc=IN IP4 127.0.0.2\r\n",
                SdpError::ControlChar(2),
            ),
            (
                b"v=0\r\nm=audio 9 RTP/AVP 0\r8\r\n",
                SdpError::ControlChar(2),
            ),
            (b"v=0\r\ns=a\x00b\r\n", SdpError::ControlChar(2)),
        ];
        for (body, want) in cases {
            assert_eq!(
                Sdp::parse(body).err().as_ref(),
                Some(want),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        let huge = "v=0\r\n".to_owned() + &"a=x\r\n".repeat(2000);
        assert_eq!(Sdp::parse(huge.as_bytes()).err(), Some(SdpError::TooLarge));
    }

    #[test]
    fn writer_builds_what_the_parser_reads() {
        let mut w = SdpWriter::new();
        w.line(b'v', "0")
            .line(b's', "-")
            .media("audio", 40000, "RTP/AVP", "0 101");
        w.attribute("rtpmap", Some("101 telephone-event/8000"))
            .attribute("sendrecv", None);
        let body = w.finish();
        let sdp = Sdp::parse(body.as_bytes()).expect("valid");
        assert_eq!(sdp.media[0].port, 40000);
        assert_eq!(sdp.direction(0), Direction::SendRecv);
        assert_eq!(sdp.to_string(), body);
    }
}
