//! SDP rewriting between the browser's WebRTC dialect and the PBX's plain
//! RTP, for every offer/answer direction (RFC 3264, RFC 8829 JSEP, RFC 8843
//! BUNDLE, RFC 5763/5764 DTLS-SRTP, RFC 8445 ICE-lite).
//!
//! Media sections pair up by index, and each keeps its kind, payload types,
//! codec attributes and direction: nothing is transcoded, so the codecs the
//! two ends agree on pass through unchanged. Only an allow-list of
//! attributes crosses: the transport dialect of each side is the relay's
//! own to write.
//!
//! Toward the browser the relay offers one transport for all sections
//! (BUNDLE), ICE-lite with one host candidate, DTLS with its certificate's
//! fingerprint (passive in answers, `actpass` in offers: it is always the
//! DTLS server), and rtcp-mux. Toward the PBX: RTP/AVP on one port per
//! section, RTCP on the next port, or on the same one when the PBX offers
//! rtcp-mux; `RTP/SAVP` and `a=crypto` where the leg is SDES-SRTP
//! (see [`super::sdes`]).

use std::net::SocketAddr;

use sipline_core::sdp::{Line, Media, Sdp, SdpWriter};

use super::sdes::Secure;

/// The relay's side of one PBX section: where it receives, and how the
/// leg is secured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PbxSection {
    /// The relay's RTP address for the section (RTCP on the next port).
    pub addr: SocketAddr,
    /// Its profile and crypto lines.
    pub secure: Secure,
}

impl PbxSection {
    /// A plain RTP section at `addr`.
    pub fn plain(addr: SocketAddr) -> Self {
        Self {
            addr,
            secure: Secure::default(),
        }
    }
}

/// What the relay presents to the browser for one call.
#[derive(Clone, Debug)]
pub struct BrowserTransport<'a> {
    /// The relay's address for this call's ICE/DTLS/SRTP (its one host
    /// candidate, shared by every section through BUNDLE).
    pub addr: SocketAddr,
    /// ICE username fragment.
    pub ice_ufrag: &'a str,
    /// ICE password.
    pub ice_pwd: &'a str,
    /// `sha-256 AB:CD:…` of the relay's DTLS certificate.
    pub fingerprint: &'a str,
}

/// Why an SDP could not be rewritten; the call must then fail (488).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    /// An answer whose sections do not pair with the offer's.
    #[error("the answer has {answer} media sections, the offer {offer}")]
    SectionCount {
        /// Sections in the offer.
        offer: usize,
        /// Sections in the answer.
        answer: usize,
    },
    /// The browser's offer is not WebRTC (no ICE credentials).
    #[error("the browser's SDP has no ICE credentials")]
    NoIce,
}

/// Attributes that describe codecs and directions: the only ones carried
/// from one side's SDP into the other's.
const CARRIED: &[&str] = &[
    "rtpmap",
    "fmtp",
    "ptime",
    "maxptime",
    "framerate",
    "sendrecv",
    "sendonly",
    "recvonly",
    "inactive",
];

fn carried(line: &Line<'_>) -> bool {
    line.attribute()
        .is_some_and(|(name, _)| CARRIED.contains(&name))
}

/// The `o=` line with its address replaced: username, session id and
/// version stay the source's, so that a re-offer keeps versioning right.
fn origin(sdp: &Sdp<'_>, ip: std::net::IpAddr) -> String {
    let o = sdp
        .session
        .iter()
        .find(|l| l.kind == b'o')
        .map_or("", |l| l.value);
    let mut f = o.split_ascii_whitespace();
    let (user, id, version) = (
        f.next().unwrap_or("-"),
        f.next().unwrap_or("0"),
        f.next().unwrap_or("0"),
    );
    format!("{user} {id} {version} IN {} {ip}", ip_kind(ip))
}

fn ip_kind(ip: std::net::IpAddr) -> &'static str {
    if ip.is_ipv4() { "IP4" } else { "IP6" }
}

fn connection(ip: std::net::IpAddr) -> String {
    format!("IN {} {ip}", ip_kind(ip))
}

/// Session-level direction, carried into each section that has none.
fn session_direction<'a>(sdp: &Sdp<'a>) -> Option<&'a str> {
    sdp.session
        .iter()
        .filter_map(Line::attribute)
        .find(|(n, v)| {
            v.is_none() && matches!(*n, "sendrecv" | "sendonly" | "recvonly" | "inactive")
        })
        .map(|(n, _)| n)
}

fn has_direction(media: &Media<'_>) -> bool {
    media
        .lines
        .iter()
        .filter_map(Line::attribute)
        .any(|(n, v)| v.is_none() && matches!(n, "sendrecv" | "sendonly" | "recvonly" | "inactive"))
}

/// Writes a PBX-side section: RTP (or SRTP) on its port, RTCP on port+1
/// unless `mux`.
fn pbx_section(
    w: &mut SdpWriter,
    from: &Sdp<'_>,
    m: &Media<'_>,
    pbx: Option<&PbxSection>,
    mux: bool,
) {
    let Some(p) = pbx.filter(|_| !m.is_rejected() && m.kind != "application") else {
        w.media(m.kind, 0, "RTP/AVP", m.formats);
        return;
    };
    let proto = if p.secure.savp { "RTP/SAVP" } else { "RTP/AVP" };
    w.media(m.kind, p.addr.port(), proto, m.formats);
    if mux {
        w.attribute("rtcp-mux", None);
    } else {
        let rtcp = format!("{}", p.addr.port().saturating_add(1));
        w.attribute("rtcp", Some(&rtcp));
    }
    for crypto in &p.secure.crypto {
        w.attribute("crypto", Some(crypto));
    }
    for line in m.lines.iter().filter(|l| carried(l)) {
        w.copy(line);
    }
    if !has_direction(m)
        && let Some(d) = session_direction(from)
    {
        w.attribute(d, None);
    }
}

/// Writes a browser-side section: SRTP over the bundled ICE/DTLS transport.
fn browser_section(
    w: &mut SdpWriter,
    from: &Sdp<'_>,
    m: &Media<'_>,
    mid: &str,
    t: &BrowserTransport<'_>,
    setup: &str,
    rejected: bool,
) {
    let proto = "UDP/TLS/RTP/SAVPF";
    if rejected {
        w.media(m.kind, 0, proto, m.formats);
        w.attribute("mid", Some(mid));
        return;
    }
    w.media(m.kind, t.addr.port(), proto, m.formats);
    w.line(b'c', &connection(t.addr.ip()));
    w.attribute("mid", Some(mid));
    w.attribute("ice-ufrag", Some(t.ice_ufrag));
    w.attribute("ice-pwd", Some(t.ice_pwd));
    w.attribute("fingerprint", Some(t.fingerprint));
    w.attribute("setup", Some(setup));
    w.attribute("rtcp-mux", None);
    for line in m.lines.iter().filter(|l| carried(l)) {
        w.copy(line);
    }
    if !has_direction(m)
        && let Some(d) = session_direction(from)
    {
        w.attribute(d, None);
    }
    let candidate = format!(
        "1 1 udp 2130706431 {} {} typ host",
        t.addr.ip(),
        t.addr.port()
    );
    w.attribute("candidate", Some(&candidate));
    w.attribute("end-of-candidates", None);
}

fn session_to_pbx(w: &mut SdpWriter, from: &Sdp<'_>, ip: std::net::IpAddr) {
    w.line(b'v', "0")
        .line(b'o', &origin(from, ip))
        .line(b's', "-");
    w.line(b'c', &connection(ip)).line(b't', "0 0");
}

fn session_to_browser(w: &mut SdpWriter, from: &Sdp<'_>, ip: std::net::IpAddr, mids: &[String]) {
    w.line(b'v', "0")
        .line(b'o', &origin(from, ip))
        .line(b's', "-")
        .line(b't', "0 0");
    w.attribute("ice-lite", None);
    if !mids.is_empty() {
        w.attribute("group", Some(&format!("BUNDLE {}", mids.join(" "))));
    }
}

/// The browser's offer, as the PBX gets it. `pbx[i]` is the relay's side
/// of section `i` (`None`: the relay rejects it, e.g. no port left or a
/// data channel, which does not cross to plain RTP).
pub fn offer_to_pbx(
    offer: &Sdp<'_>,
    pbx: &[Option<PbxSection>],
    relay_ip: std::net::IpAddr,
) -> String {
    let mut w = SdpWriter::new();
    session_to_pbx(&mut w, offer, relay_ip);
    for (i, m) in offer.media.iter().enumerate() {
        pbx_section(&mut w, offer, m, pbx.get(i).and_then(Option::as_ref), false);
    }
    w.finish()
}

/// The PBX's answer to what the browser offered, as the browser gets it.
pub fn answer_to_browser(
    browser_offer: &Sdp<'_>,
    pbx_answer: &Sdp<'_>,
    t: &BrowserTransport<'_>,
) -> Result<String, RewriteError> {
    if browser_offer.media.len() != pbx_answer.media.len() {
        return Err(RewriteError::SectionCount {
            offer: browser_offer.media.len(),
            answer: pbx_answer.media.len(),
        });
    }
    let has_ice = browser_offer.attribute("ice-ufrag").is_some()
        || browser_offer
            .media
            .iter()
            .any(|m| m.attribute("ice-ufrag").is_some());
    if !has_ice {
        return Err(RewriteError::NoIce);
    }
    let mid = |i: usize| -> String {
        browser_offer.media[i]
            .attribute("mid")
            .flatten()
            .map_or_else(|| i.to_string(), str::to_owned)
    };
    let bundled: Vec<String> = (0..pbx_answer.media.len())
        .filter(|&i| !pbx_answer.media[i].is_rejected())
        .map(mid)
        .collect();
    let offered_bundle = browser_offer
        .attribute("group")
        .flatten()
        .is_some_and(|g| g.starts_with("BUNDLE"));
    let mut w = SdpWriter::new();
    session_to_browser(
        &mut w,
        pbx_answer,
        t.addr.ip(),
        if offered_bundle { &bundled } else { &[] },
    );
    for (i, m) in pbx_answer.media.iter().enumerate() {
        browser_section(
            &mut w,
            pbx_answer,
            m,
            &mid(i),
            t,
            "passive",
            m.is_rejected(),
        );
    }
    Ok(w.finish())
}

/// The PBX's offer (an incoming call, or its re-INVITE), as the browser
/// gets it: the relay offers `actpass` and takes the server role when the
/// browser answers `active`, as browsers do.
pub fn offer_to_browser(pbx_offer: &Sdp<'_>, t: &BrowserTransport<'_>) -> String {
    let accepted: Vec<String> = (0..pbx_offer.media.len())
        .filter(|&i| !pbx_offer.media[i].is_rejected() && pbx_offer.media[i].kind != "application")
        .map(|i| i.to_string())
        .collect();
    let mut w = SdpWriter::new();
    session_to_browser(&mut w, pbx_offer, t.addr.ip(), &accepted);
    for (i, m) in pbx_offer.media.iter().enumerate() {
        let rejected = m.is_rejected() || m.kind == "application";
        browser_section(&mut w, pbx_offer, m, &i.to_string(), t, "actpass", rejected);
    }
    w.finish()
}

/// The browser's answer to the PBX's offer, as the PBX gets it.
pub fn answer_to_pbx(
    pbx_offer: &Sdp<'_>,
    browser_answer: &Sdp<'_>,
    pbx: &[Option<PbxSection>],
    relay_ip: std::net::IpAddr,
) -> Result<String, RewriteError> {
    if pbx_offer.media.len() != browser_answer.media.len() {
        return Err(RewriteError::SectionCount {
            offer: pbx_offer.media.len(),
            answer: browser_answer.media.len(),
        });
    }
    let mut w = SdpWriter::new();
    session_to_pbx(&mut w, browser_answer, relay_ip);
    for (i, m) in browser_answer.media.iter().enumerate() {
        // rtcp-mux toward the PBX only when the PBX offered it.
        let mux = pbx_offer.media[i].attribute("rtcp-mux").is_some();
        pbx_section(
            &mut w,
            browser_answer,
            m,
            pbx.get(i).and_then(Option::as_ref),
            mux,
        );
    }
    Ok(w.finish())
}
