//! Offer and answer across the relay: each SDP body rewritten for the
//! other side (WebRTC toward the browser, plain RTP toward the PBX), the
//! ports and legs a call needs taken as its first offer names them, what
//! each side now sends and receives told to the media shell, and the echo
//! extension's own answer.

use std::net::{IpAddr, SocketAddr};

use sipline_core::sdp::{Media, Sdp};

use super::types::{Command, MediaConfig, MediaError, Side};
use super::{Call, MediaCalls};
use crate::ids::ConnId;
use crate::media::dtls::DtlsServer;
use crate::media::ice::IceLite;
use crate::media::record::{RecordingMode, Starter};
use crate::media::sdes::{self, KeySalt};
use crate::media::sdp::{
    BrowserTransport, PbxSection, RewriteError, answer_to_browser, answer_to_pbx, offer_to_browser,
    offer_to_pbx,
};
use crate::media::session::{MAX_LEGS, Session};
use crate::media::srtp::Profile;

impl MediaCalls {
    pub(super) fn offer(
        &mut self,
        key: (ConnId, String),
        from: Side,
        sdp: &Sdp<'_>,
        body: &[u8],
    ) -> Result<String, MediaError> {
        // The legs are set by the first offer; later ones keep them.
        let sections = match self.calls.get(&key) {
            Some(c) => c.sections.clone(),
            None => carried(sdp),
        };
        if sections.is_empty() {
            return Err(MediaError::NoAudio);
        }
        let new = !self.calls.contains_key(&key);
        let out = self.offer_inner(&key, from, sdp, &sections);
        if out.is_err() && new {
            // A refused first offer leaves nothing behind.
            let _ = self.close(key.0, &key.1);
        } else if out.is_ok()
            && let Some(c) = self.calls.get_mut(&key)
        {
            c.offer = Some((from, String::from_utf8_lossy(body).into_owned()));
        }
        out
    }

    pub(super) fn offer_inner(
        &mut self,
        key: &(ConnId, String),
        from: Side,
        sdp: &Sdp<'_>,
        sections: &[usize],
    ) -> Result<String, MediaError> {
        let cfg = self.cfg.clone();
        self.call(key.clone(), sections)?;
        self.learn_codecs(key, sdp);
        match from {
            Side::Browser => {
                self.browser_sdp(key, sdp, true)?;
                let ports = self.pbx_sections(key, sdp.media.len(), true);
                Ok(offer_to_pbx(sdp, &ports, cfg.pbx_advertised))
            }
            Side::Pbx => {
                self.pbx_sdp(key, sdp, false)?;
                let c = &self.calls[key];
                let t = transport(&cfg, c, self.identity.fingerprint());
                Ok(offer_to_browser(&only(sdp, &c.sections), &t))
            }
        }
    }

    /// The relay's side of each section of an SDP toward the PBX with
    /// `count` sections: a carried one gets its leg's pair and SRTP (as
    /// the relay offers it, or as it answers the PBX's offer), the others
    /// are rejected.
    pub(super) fn pbx_sections(
        &mut self,
        key: &(ConnId, String),
        count: usize,
        offering: bool,
    ) -> Vec<Option<PbxSection>> {
        let (policy, ip) = (self.cfg.pbx_srtp, self.cfg.pbx_advertised);
        let mut mint = minter(self.secret, &mut self.keys_made);
        let Some(c) = self.calls.get_mut(key) else {
            return vec![None; count];
        };
        (0..count)
            .map(|i| {
                let leg = c.sections.iter().position(|&s| s == i)?;
                let sdes = c.srtp.get_mut(leg)?;
                let secure = if offering {
                    sdes.offer(policy, &mut mint)
                } else {
                    sdes.answer()
                };
                Some(PbxSection {
                    addr: SocketAddr::new(ip, c.pbx.get(leg)?.rtp),
                    secure,
                })
            })
            .collect()
    }

    pub(super) fn answer(
        &mut self,
        key: (ConnId, String),
        from: Side,
        sdp: &Sdp<'_>,
    ) -> Result<String, MediaError> {
        let cfg = self.cfg.clone();
        let c = self.calls.get(&key).ok_or(MediaError::NoOffer)?;
        let sections = c.sections.clone();
        let offer_text = c
            .offer
            .as_ref()
            .map(|(_, t)| t.clone())
            .ok_or(MediaError::NoOffer)?;
        let offer =
            Sdp::parse(offer_text.as_bytes()).map_err(|e| MediaError::Sdp(e.to_string()))?;
        self.learn_codecs(&key, sdp);
        match from {
            Side::Pbx => {
                self.pbx_sdp(&key, sdp, true)?;
                let c = &self.calls[&key];
                let t = transport(&cfg, c, self.identity.fingerprint());
                Ok(answer_to_browser(&offer, &only(sdp, &sections), &t)?)
            }
            Side::Browser => {
                self.browser_sdp(&key, sdp, false)?;
                self.negotiated_clocks(&key, sdp);
                let ports = self.pbx_sections(&key, sdp.media.len(), false);
                Ok(answer_to_pbx(
                    &only(&offer, &sections),
                    sdp,
                    &ports,
                    cfg.pbx_advertised,
                )?)
            }
        }
    }

    /// Reads the browser's ICE and DTLS parameters: the first SDP starts
    /// the browser side, a new ufrag in an offer restarts ICE.
    pub(super) fn browser_sdp(
        &mut self,
        key: &(ConnId, String),
        sdp: &Sdp<'_>,
        is_offer: bool,
    ) -> Result<(), MediaError> {
        let ufrag = browser_attribute(sdp, "ice-ufrag").ok_or(RewriteError::NoIce)?;
        let fingerprint = browser_attribute(sdp, "fingerprint").ok_or(MediaError::NoFingerprint)?;
        let restart = self.calls[key]
            .remote_ufrag
            .as_deref()
            .is_some_and(|old| old != ufrag);
        if restart && is_offer {
            let (u, p) = self.credentials();
            let c = self.calls.get_mut(key).ok_or(MediaError::NoOffer)?;
            (c.ufrag, c.pwd) = (u, p);
        }
        let c = self.calls.get_mut(key).ok_or(MediaError::NoOffer)?;
        let mut ice = IceLite::new(&c.ufrag, &c.pwd);
        ice.set_remote_ufrag(ufrag);
        c.remote_ufrag = Some(ufrag.to_owned());
        let id = c.id;
        // Each carried section's payload types go to its leg.
        let map: Vec<(u8, u8)> = c
            .sections
            .iter()
            .zip(0u8..)
            .filter_map(|(&i, leg)| Some((sdp.media.get(i)?, leg)))
            .flat_map(|(m, leg)| {
                m.payload_types()
                    .filter_map(move |pt| Some((pt.parse::<u8>().ok().filter(|p| *p < 128)?, leg)))
            })
            .collect();
        if !c.has_session {
            let local = SocketAddr::new(self.cfg.browser_bind, c.browser.rtp);
            let dtls = DtlsServer::new(&self.identity, local, fingerprint)?;
            c.has_session = true;
            let mut session = if c.echo {
                Session::echo(ice, dtls)
            } else {
                Session::new(ice, dtls)
            };
            session.set_latching(self.cfg.latch_pbx);
            session.set_payload_legs(&map);
            let recorded = c.recording.is_some();
            c.payload_legs = map;
            // By policy, from the first packet (unless the operator
            // started one already, while the call rang).
            if self.cfg.recording == RecordingMode::All && !recorded {
                self.begin_recording(key, Starter::Policy);
            }
            self.commands.push_back(Command::Browser {
                id,
                session: Box::new(session),
            });
        } else {
            if restart {
                self.commands.push_back(Command::IceRestart {
                    id,
                    ice: Box::new(ice),
                });
            }
            if c.payload_legs != map {
                c.payload_legs = map.clone();
                self.commands.push_back(Command::PayloadLegs { id, map });
            }
        }
        Ok(())
    }

    /// The browser answered the PBX's offer: each leg's codec is the
    /// answer's first, whose clock jitter is measured in.
    pub(super) fn negotiated_clocks(&mut self, key: &(ConnId, String), answer: &Sdp<'_>) {
        let Some(c) = self.calls.get(key) else { return };
        for (leg, &i) in c.sections.iter().enumerate() {
            let (Some(m), Some(Some((rtp, rtcp)))) = (answer.media.get(i), c.pbx_targets.get(leg))
            else {
                continue;
            };
            if !m.is_rejected() {
                self.commands.push_back(Command::Pbx {
                    id: c.id,
                    leg,
                    rtp: *rtp,
                    rtcp: *rtcp,
                    clock: clock_rate(m),
                });
            }
        }
    }

    /// Reads where the PBX receives each leg's media, and its SRTP keys.
    /// An address of `0.0.0.0` (the old way to hold, RFC 2543) keeps the
    /// one known.
    pub(super) fn pbx_sdp(
        &mut self,
        key: &(ConnId, String),
        sdp: &Sdp<'_>,
        answer: bool,
    ) -> Result<(), MediaError> {
        let policy = self.cfg.pbx_srtp;
        let mut mint = minter(self.secret, &mut self.keys_made);
        let Some(c) = self.calls.get_mut(key) else {
            return Ok(());
        };
        // Every leg's SRTP is agreed, or none changes: a refused re-offer
        // leaves the call as it was.
        let mut srtp = c.srtp.clone();
        let mut keyed = Vec::new();
        for (leg, &i) in c.sections.iter().enumerate() {
            let (Some(m), Some(sdes)) = (
                sdp.media.get(i).filter(|m| !m.is_rejected()),
                srtp.get_mut(leg),
            ) else {
                continue;
            };
            let change = if answer {
                sdes.answered(policy, m)?
            } else {
                sdes.offered_by_pbx(policy, m, &mut mint)?
            };
            if let Some(change) = change {
                keyed.push(Command::PbxKeys {
                    id: c.id,
                    leg,
                    keys: sdes::leg_keys(&change)?,
                });
            }
        }
        c.srtp = srtp;
        self.commands.extend(keyed);
        for (leg, &i) in c.sections.iter().enumerate() {
            let Some(m) = sdp.media.get(i).filter(|m| !m.is_rejected()) else {
                continue;
            };
            let Some(ip) = m
                .connection()
                .or_else(|| sdp.connection())
                .and_then(|a| a.parse::<IpAddr>().ok())
                .filter(|ip| !ip.is_unspecified())
            else {
                continue;
            };
            let rtp = SocketAddr::new(ip, m.port);
            // rtcp-mux toward the PBX only when it offered it (an answer to
            // our offer cannot: we never offer mux to the PBX).
            let mux = !answer && m.attribute("rtcp-mux").is_some();
            let rtcp = if mux { rtp } else { rtcp_address(m, ip) };
            if let Some(target) = c.pbx_targets.get_mut(leg) {
                *target = Some((rtp, rtcp));
            }
            self.commands.push_back(Command::Pbx {
                id: c.id,
                leg,
                rtp,
                rtcp,
                clock: clock_rate(m),
            });
        }
        Ok(())
    }

    pub(super) fn echo_inner(
        &mut self,
        key: &(ConnId, String),
        sdp: &Sdp<'_>,
        audio: usize,
    ) -> Result<String, MediaError> {
        self.call(key.clone(), &[audio])?.echo = true;
        self.learn_codecs(key, sdp);
        self.browser_sdp(key, sdp, true)?;
        let answer = echo_answer(sdp, audio, self.cfg.browser_advertised);
        let answer = Sdp::parse(answer.as_bytes()).map_err(|e| MediaError::Sdp(e.to_string()))?;
        let c = &self.calls[key];
        let t = transport(&self.cfg, c, self.identity.fingerprint());
        let out = answer_to_browser(sdp, &answer, &t)?;
        self.answered(key.0, &key.1);
        Ok(out)
    }
}

/// Makes the relay's SRTP master keys, each derived from `secret` and
/// the count `made` so far.
fn minter(secret: [u8; 32], made: &mut u64) -> impl FnMut(Profile) -> KeySalt + '_ {
    move |profile| {
        *made += 1;
        KeySalt::derive(&secret, *made, profile)
    }
}

/// What the echo extension answers, in the PBX's plain dialect (the
/// browser's transport is added as for any PBX answer): the offer's first
/// audio codec and the telephone-event of its clock rate, the answering
/// direction; other sections rejected.
pub(super) fn echo_answer(offer: &Sdp<'_>, audio: usize, ip: IpAddr) -> String {
    let mut w = sipline_core::sdp::SdpWriter::new();
    let c = format!("IN {} {ip}", if ip.is_ipv4() { "IP4" } else { "IP6" });
    w.line(b'v', "0")
        .line(b'o', &format!("- 1 1 {c}"))
        .line(b's', "echo")
        .line(b'c', &c)
        .line(b't', "0 0");
    for (i, m) in offer.media.iter().enumerate() {
        if i != audio {
            w.media(m.kind, 0, "RTP/AVP", m.formats);
            continue;
        }
        let rtpmaps: Vec<(&str, &str)> = m.rtpmaps().collect();
        let codec = m.payload_types().next().unwrap_or("0");
        let clock = rtpmaps
            .iter()
            .find(|(pt, _)| *pt == codec)
            .and_then(|(_, enc)| enc.split('/').nth(1))
            .unwrap_or("8000");
        let events = rtpmaps
            .iter()
            .find(|(_, enc)| enc.eq_ignore_ascii_case(&format!("telephone-event/{clock}")));
        let mut formats = vec![codec];
        formats.extend(events.map(|(pt, _)| *pt));
        w.media("audio", 9, "RTP/AVP", &formats.join(" "));
        for line in &m.lines {
            let keep = line.attribute().is_some_and(|(name, value)| {
                matches!(name, "rtpmap" | "fmtp")
                    && value
                        .and_then(|v| v.split(' ').next())
                        .is_some_and(|pt| formats.contains(&pt))
            });
            if keep {
                w.copy(line);
            }
        }
        w.attribute(offer.direction(audio).answer().as_str(), None);
    }
    w.finish()
}

/// The sections the relay carries, in leg order: the first audio section
/// with a port (none: nothing to carry) and the first such video section.
pub(super) fn carried(sdp: &Sdp<'_>) -> Vec<usize> {
    let first = |kind: &str| {
        sdp.media
            .iter()
            .position(|m| m.kind == kind && !m.is_rejected())
    };
    let Some(audio) = first("audio") else {
        return Vec::new();
    };
    let mut legs = vec![audio];
    legs.extend(first("video"));
    legs.truncate(MAX_LEGS);
    legs
}

/// `sdp` with every section but those in `keep` rejected (port 0): the
/// browser is then offered, or answered, only what the relay carries.
pub(super) fn only<'a>(sdp: &Sdp<'a>, keep: &[usize]) -> Sdp<'a> {
    let mut out = sdp.clone();
    for (i, m) in out.media.iter_mut().enumerate() {
        if !keep.contains(&i) {
            *m = Media {
                port: 0,
                port_field: "0",
                ..m.clone()
            };
        }
    }
    out
}

/// The RTP clock rate of a section's first codec: its `a=rtpmap`, else
/// 8000 (the static payload types a PBX lists bare are G.711 and kin).
pub(super) fn clock_rate(m: &Media<'_>) -> u32 {
    let first = m.payload_types().next().unwrap_or_default();
    m.rtpmaps()
        .find(|(pt, _)| *pt == first)
        .and_then(|(_, enc)| enc.split('/').nth(1)?.parse().ok())
        .unwrap_or(8000)
}

/// The RTCP address of a plain-RTP section: `a=rtcp` (RFC 3605), else the
/// next port.
pub(super) fn rtcp_address(m: &Media<'_>, ip: IpAddr) -> SocketAddr {
    let attr = m.attribute("rtcp").flatten().unwrap_or_default();
    let mut fields = attr.split_ascii_whitespace();
    let port = fields.next().and_then(|p| p.parse::<u16>().ok());
    let addr = fields.nth(2).and_then(|a| a.parse::<IpAddr>().ok());
    SocketAddr::new(
        addr.unwrap_or(ip),
        port.unwrap_or_else(|| m.port.saturating_add(1)),
    )
}

/// A browser SDP attribute, at session level or in the first section that
/// has it (browsers write them per section).
pub(super) fn browser_attribute<'a>(sdp: &Sdp<'a>, name: &'a str) -> Option<&'a str> {
    sdp.attribute(name)
        .flatten()
        .or_else(|| sdp.media.iter().find_map(|m| m.attribute(name).flatten()))
}

pub(super) fn transport<'a>(
    cfg: &MediaConfig,
    c: &'a Call,
    fingerprint: &'a str,
) -> BrowserTransport<'a> {
    BrowserTransport {
        addr: SocketAddr::new(cfg.browser_advertised, c.browser.rtp),
        ice_ufrag: &c.ufrag,
        ice_pwd: &c.pwd,
        fingerprint,
    }
}
