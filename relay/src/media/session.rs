//! One call's media through the relay, sans-IO: datagrams in (from the
//! browser on the call's WebRTC port, from the PBX on its RTP/RTCP ports),
//! datagrams out, in the caller's buffer.
//!
//! Browser side: ICE-lite checks, DTLS handshake, then SRTP/SRTCP,
//! demultiplexed by the first byte (RFC 7983), accepted only from the
//! ICE-verified address. All the call's streams share that one transport
//! (BUNDLE, RFC 8843). PBX side: one leg per carried media section (audio,
//! and video when the call has it), each plain RTP and RTCP on its own
//! ports, accepted only from the address the PBX's SDP gave. The browser's
//! RTP goes to the leg its payload type belongs to; its RTCP to the leg of
//! the sender SSRC it reports on. A leg keyed by SDES (RFC 4568) is SRTP
//! toward the PBX too, with its own keys. Codecs and payloads pass
//! through: a packet is decrypted or encrypted in place and sent on,
//! nothing more.

use std::net::SocketAddr;
use std::time::Instant;

use super::dtls::{DtlsError, DtlsServer};
use super::ice::{IceLite, MAX_ANSWER};
use super::record::{Tap, Way};
use super::srtp::{LegKeys, SrtpError, SrtpKeys};
use super::stats::RtpStats;

/// What to do with the buffer after a datagram was handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forward {
    /// Send the buffer's first `len` bytes to the browser.
    ToBrowser {
        /// The browser's ICE-verified address.
        to: SocketAddr,
        /// Bytes of the buffer to send.
        len: usize,
    },
    /// Send the buffer's first `len` bytes to the PBX.
    ToPbx {
        /// Which leg (media section) of the call.
        leg: usize,
        /// The PBX's RTP or RTCP address, from its SDP.
        to: SocketAddr,
        /// Bytes of the buffer to send.
        len: usize,
        /// RTCP: sent from the call's RTCP port, as the PBX expects.
        rtcp: bool,
    },
    /// Nothing to send (a handshake step, or a dropped packet, counted).
    Nothing,
}

/// Why a datagram was dropped, for the metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Drop {
    /// A DTLS record failed: before the keys exist the call must end (see
    /// [`Session::failure`]); after, the record is only dropped.
    Dtls(DtlsError),
    /// From an address that is neither ICE-verified nor the PBX's.
    UnknownSource,
    /// Not STUN, DTLS, RTP or RTCP.
    Unrecognised,
    /// Media before the keys exist.
    NoKeys,
    /// SRTP that failed authentication or replay checks.
    Srtp(SrtpError),
    /// A STUN check that failed.
    Ice,
    /// The PBX's address is not known yet.
    NoPbxAddress,
    /// The browser has not been verified yet.
    NoBrowserAddress,
    /// The browser's SDP is not known yet: nothing to check against.
    NoSession,
}

/// Counters of one call (summed into the relay's metrics).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Media packets browser → PBX.
    pub to_pbx: u64,
    /// Media packets PBX → browser.
    pub to_browser: u64,
    /// Bytes sent to the PBX (RTP/RTCP, or SRTP/SRTCP on an SDES leg).
    pub bytes_to_pbx: u64,
    /// Bytes sent to the browser (SRTP/SRTCP).
    pub bytes_to_browser: u64,
    /// SRTP packets refused (authentication, replay), from either side.
    pub srtp_failures: u64,
    /// Datagrams dropped for any reason.
    pub dropped: u64,
    /// RTP packets lost on the way from the browser (RFC 3550 §6.4.1).
    pub lost_from_browser: u64,
    /// RTP packets lost on the way from the PBX.
    pub lost_from_pbx: u64,
    /// Interarrival jitter of the browser's RTP, in microseconds.
    pub jitter_from_browser_us: u64,
    /// Interarrival jitter of the PBX's RTP, in microseconds.
    pub jitter_from_pbx_us: u64,
}

/// Most legs a call has: audio and video.
pub const MAX_LEGS: usize = 2;

/// No leg for this payload type.
const NO_LEG: u8 = u8::MAX;

/// SSRCs remembered per call to route the browser's RTCP.
const SSRCS: usize = 8;

/// One media section's PBX side.
#[derive(Clone, Copy, Debug, Default)]
struct Leg {
    /// The PBX's RTP and RTCP addresses (from its SDP, or latched).
    rtp: Option<SocketAddr>,
    rtcp: Option<SocketAddr>,
    /// Whether RTP and RTCP latched since the PBX's last SDP.
    latched: [bool; 2],
    /// The RTP clock rate of its codec, for jitter.
    clock: u32,
    /// Reception statistics of each side's RTP.
    from_browser: RtpStats,
    from_pbx: RtpStats,
}

/// One call's media state.
#[derive(Debug)]
pub struct Session {
    ice: IceLite,
    dtls: DtlsServer,
    keys: Option<SrtpKeys>,
    legs: [Leg; MAX_LEGS],
    /// Each leg's SDES-SRTP keys toward the PBX, when it is encrypted.
    pbx_keys: [Option<Box<SrtpKeys>>; MAX_LEGS],
    /// The leg of each RTP payload type the browser sends (all leg 0 until
    /// told otherwise: an audio-only call needs no table).
    payload_legs: [u8; 128],
    /// The browser's SSRCs and their legs, learnt from its RTP, for its
    /// RTCP.
    ssrc_legs: [(u32, u8); SSRCS],
    failed: Option<DtlsError>,
    /// The echo extension: the browser's RTP goes back to it.
    echo: bool,
    /// Latching: the PBX's media may come from another address than its
    /// SDP says (a phone behind NAT); the first RTP (and RTCP) packet from
    /// it redirects that stream. Off unless configured.
    latch: bool,
    /// When the browser last proved it is there: authenticated SRTP or
    /// SRTCP, or a verified consent check once DTLS is up (RFC 7675).
    heard: Option<Instant>,
    /// Where the call's plain packets go when it is recorded.
    tap: Option<Tap>,
    /// Counters for the metrics.
    pub counters: Counters,
}

/// RFC 7983 demultiplexing by the first byte.
fn is_dtls(b: u8) -> bool {
    (20..=63).contains(&b)
}

fn is_rtp_or_rtcp(b: u8) -> bool {
    (128..=191).contains(&b)
}

/// With rtcp-mux, RTCP is told from RTP by its packet type (RFC 5761 §4).
fn is_rtcp(packet: &[u8]) -> bool {
    packet.get(1).is_some_and(|pt| (192..=223).contains(pt))
}

impl Session {
    /// A session with its ICE credentials and DTLS server ready; the PBX's
    /// address comes from its SDP, later.
    pub fn new(ice: IceLite, dtls: DtlsServer) -> Self {
        Self {
            ice,
            dtls,
            keys: None,
            legs: [Leg {
                clock: 8000,
                ..Leg::default()
            }; MAX_LEGS],
            pbx_keys: [None, None],
            payload_legs: [0; 128],
            ssrc_legs: [(0, NO_LEG); SSRCS],
            failed: None,
            echo: false,
            latch: false,
            heard: None,
            tap: None,
            counters: Counters::default(),
        }
    }

    /// The echo extension's session: the browser's RTP is decrypted and
    /// sent back to it encrypted again (its RTCP, which describes its own
    /// streams, is not).
    pub fn echo(ice: IceLite, dtls: DtlsServer) -> Self {
        Self {
            echo: true,
            ..Self::new(ice, dtls)
        }
    }

    /// Where the PBX receives `leg`'s RTP (RTCP on `rtcp`, its port+1
    /// unless it muxes), from its SDP.
    pub fn set_pbx(&mut self, leg: usize, rtp: SocketAddr, rtcp: SocketAddr) {
        if let Some(l) = self.legs.get_mut(leg) {
            l.rtp = Some(rtp);
            l.rtcp = Some(rtcp);
            l.latched = [false; 2];
        }
    }

    /// Keys `leg`'s PBX side with SDES-SRTP, or makes it plain RTP.
    pub fn set_pbx_keys(&mut self, leg: usize, keys: LegKeys) {
        if let Some(slot) = self.pbx_keys.get_mut(leg) {
            keys.apply_to(slot);
        }
    }

    /// Which leg each of the browser's payload types goes to (`(pt, leg)`
    /// pairs from its SDP); the others are dropped.
    pub fn set_payload_legs(&mut self, map: &[(u8, u8)]) {
        self.payload_legs = [NO_LEG; 128];
        // A leg the call does not have is ignored, as by `set_pbx`.
        for &(pt, leg) in map.iter().filter(|(_, leg)| usize::from(*leg) < MAX_LEGS) {
            if let Some(slot) = self.payload_legs.get_mut(usize::from(pt)) {
                *slot = leg;
            }
        }
    }

    /// Turns latching on: the first RTP and RTCP from the PBX's side after
    /// each of its SDPs, from the SDP's address or another, fix where that
    /// stream comes from and goes to; nobody after it can take it (for PBX
    /// phones behind NAT; whoever sends first wins, hence off by default).
    pub fn set_latching(&mut self, on: bool) {
        self.latch = on;
    }

    /// Records the call from now on: each plain RTP and RTCP packet it
    /// carries, either way, is handed to `tap`.
    pub fn set_tap(&mut self, tap: Tap) {
        self.tap = Some(tap);
    }

    /// Stops recording the call: its tap is dropped, and the writer, seeing
    /// nobody feeds the recording any more, finishes its files.
    pub fn clear_tap(&mut self) {
        self.tap = None;
    }

    /// `leg`'s codec's RTP clock rate (jitter is measured in it).
    pub fn set_clock_rate(&mut self, leg: usize, hz: u32) {
        if let Some(l) = self.legs.get_mut(leg) {
            l.clock = hz.max(1);
        }
    }

    /// The counters, with loss (all legs) and jitter (the first leg's,
    /// audio's) brought up to date.
    pub fn figures(&self) -> Counters {
        let first = &self.legs[0];
        let us = |s: &RtpStats| (s.jitter_ms(first.clock) * 1000.0) as u64;
        Counters {
            lost_from_browser: self.legs.iter().map(|l| l.from_browser.lost()).sum(),
            lost_from_pbx: self.legs.iter().map(|l| l.from_pbx.lost()).sum(),
            jitter_from_browser_us: us(&first.from_browser),
            jitter_from_pbx_us: us(&first.from_pbx),
            ..self.counters
        }
    }

    /// The leg of a browser RTP packet (by payload type), remembering its
    /// SSRC's leg for the RTCP that will report on it.
    fn rtp_leg(&mut self, packet: &[u8]) -> Option<usize> {
        let leg = *self.payload_legs.get(usize::from(packet.get(1)? & 0x7f))?;
        if leg == NO_LEG {
            return None;
        }
        let ssrc = u32::from_be_bytes(packet.get(8..12)?.try_into().ok()?);
        if !self.ssrc_legs.iter().any(|(s, _)| *s == ssrc) {
            // A new stream takes a free slot, else the oldest one's.
            let slot = self
                .ssrc_legs
                .iter()
                .position(|(_, l)| *l == NO_LEG)
                .unwrap_or(0);
            self.ssrc_legs.copy_within(slot + 1.., slot);
            self.ssrc_legs[SSRCS - 1] = (ssrc, leg);
        }
        Some(usize::from(leg))
    }

    /// The leg of a browser RTCP packet: that of the sender SSRC it
    /// carries (an SR's or RR's), else the first.
    fn rtcp_leg(&self, packet: &[u8]) -> usize {
        let ssrc = packet
            .get(4..8)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes);
        self.ssrc_legs
            .iter()
            .find(|(s, l)| Some(*s) == ssrc && *l != NO_LEG)
            .map_or(0, |(_, l)| usize::from(*l))
    }

    /// An ICE restart (RFC 8445 §9): new credentials; media keeps flowing
    /// to the address already verified until a check with them succeeds.
    /// The DTLS association and its keys stay.
    pub fn restart_ice(&mut self, mut ice: IceLite) {
        ice.carry_over(&self.ice);
        self.ice = ice;
    }

    /// Why the browser side failed, if it did: the call must then end
    /// with a clear event (a fingerprint mismatch means someone other than
    /// the SDP's peer answered).
    pub fn failure(&self) -> Option<&DtlsError> {
        self.failed.as_ref()
    }

    /// Whether SRTP keys exist (the browser side is up).
    pub fn is_connected(&self) -> bool {
        self.keys.is_some()
    }

    /// When the browser last proved it is there (see [`super::call`]):
    /// authenticated media, or a verified consent check once DTLS is up.
    /// Before DTLS completes, checks alone prove nothing.
    pub fn heard(&self) -> Option<Instant> {
        self.heard
    }

    /// The browser side's ICE agent.
    pub fn ice(&self) -> &IceLite {
        &self.ice
    }

    fn drop(&mut self, why: Drop) -> Result<Forward, Drop> {
        self.counters.dropped += 1;
        if let Drop::Srtp(_) = why {
            self.counters.srtp_failures += 1;
        }
        Err(why)
    }

    /// A datagram on the call's WebRTC port, `buf[..len]`; `buf` must have
    /// room for a STUN answer ([`MAX_ANSWER`]). The answer or the decrypted
    /// packet is left in `buf`.
    pub fn from_browser(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> Result<Forward, Drop> {
        let len = len.min(buf.len());
        let Some(&first) = buf[..len].first() else {
            return self.drop(Drop::Unrecognised);
        };
        if super::ice::is_stun(&buf[..len]) {
            let mut answer = [0u8; MAX_ANSWER];
            return match self.ice.handle(&buf[..len], from, &mut answer) {
                Ok(v) => {
                    if self.keys.is_some() {
                        self.heard = Some(now);
                    }
                    buf[..v.answer_len].copy_from_slice(&answer[..v.answer_len]);
                    Ok(Forward::ToBrowser {
                        to: from,
                        len: v.answer_len,
                    })
                }
                Err(_) => self.drop(Drop::Ice),
            };
        }
        if !self.ice.is_verified(from) {
            return self.drop(Drop::UnknownSource);
        }
        if is_dtls(first) {
            return match self.dtls.handle(now, from, &buf[..len]) {
                Ok(Some(keys)) => {
                    self.keys = Some(keys);
                    Ok(Forward::Nothing)
                }
                Ok(None) => Ok(Forward::Nothing),
                // Once the keys exist, a bad DTLS record (stray, or forged
                // from the browser's address) is dropped: the call goes on.
                Err(e) if self.keys.is_some() => self.drop(Drop::Dtls(e)),
                Err(e) => {
                    self.failed = Some(e.clone());
                    self.drop(Drop::Dtls(e))
                }
            };
        }
        if !is_rtp_or_rtcp(first) {
            return self.drop(Drop::Unrecognised);
        }
        let rtcp = is_rtcp(&buf[..len]);
        let Some(keys) = self.keys.as_mut() else {
            return self.drop(Drop::NoKeys);
        };
        let result = if rtcp {
            keys.inbound.unprotect_rtcp(&mut buf[..len])
        } else {
            keys.inbound.unprotect_rtp(&mut buf[..len])
        };
        let plain = match result {
            Ok(n) => n,
            Err(e) => return self.drop(Drop::Srtp(e)),
        };
        self.heard = Some(now);
        if self.echo {
            if let Some(tap) = self.tap.as_mut() {
                tap.packet(now, Way::FromBrowser, 0, rtcp, &buf[..plain]);
            }
            return self.echo_back(now, from, rtcp, buf, plain);
        }
        let leg = if rtcp {
            self.rtcp_leg(&buf[..plain])
        } else {
            match self.rtp_leg(&buf[..plain]) {
                Some(leg) => leg,
                None => return self.drop(Drop::Unrecognised),
            }
        };
        if let Some(tap) = self.tap.as_mut() {
            tap.packet(now, Way::FromBrowser, leg, rtcp, &buf[..plain]);
        }
        let l = &mut self.legs[leg];
        if !rtcp {
            l.from_browser.observe(&buf[..plain], now, l.clock);
        }
        let Some(to) = (if rtcp { l.rtcp } else { l.rtp }) else {
            return self.drop(Drop::NoPbxAddress);
        };
        let len = match self.pbx_keys[leg].as_mut() {
            None => plain,
            Some(k) if rtcp => match k.outbound.protect_rtcp(buf, plain) {
                Ok(n) => n,
                Err(e) => return self.drop(Drop::Srtp(e)),
            },
            Some(k) => match k.outbound.protect_rtp(buf, plain) {
                Ok(n) => n,
                Err(e) => return self.drop(Drop::Srtp(e)),
            },
        };
        self.counters.to_pbx += 1;
        self.counters.bytes_to_pbx += len as u64;
        Ok(Forward::ToPbx { leg, to, len, rtcp })
    }

    /// The echo extension's turn: RTP back to the browser, protected with
    /// the outbound keys.
    fn echo_back(
        &mut self,
        now: Instant,
        to: SocketAddr,
        rtcp: bool,
        buf: &mut [u8],
        len: usize,
    ) -> Result<Forward, Drop> {
        if rtcp {
            return Ok(Forward::Nothing);
        }
        if let Some(tap) = self.tap.as_mut() {
            tap.packet(now, Way::ToBrowser, 0, false, &buf[..len]);
        }
        let Some(keys) = self.keys.as_mut() else {
            return self.drop(Drop::NoKeys);
        };
        match keys.outbound.protect_rtp(buf, len) {
            Ok(n) => {
                self.counters.to_browser += 1;
                self.counters.bytes_to_browser += n as u64;
                Ok(Forward::ToBrowser { to, len: n })
            }
            Err(e) => self.drop(Drop::Srtp(e)),
        }
    }

    /// A datagram from the PBX on `leg`'s RTP (or, `rtcp`, RTCP) port,
    /// `buf[..len]`; `buf` must have room for the SRTP overhead. The
    /// encrypted packet is left in `buf`.
    pub fn from_pbx(
        &mut self,
        now: Instant,
        leg: usize,
        from: SocketAddr,
        rtcp: bool,
        buf: &mut [u8],
        len: usize,
    ) -> Result<Forward, Drop> {
        if !buf[..len.min(buf.len())]
            .first()
            .is_some_and(|b| is_rtp_or_rtcp(*b))
        {
            return self.drop(Drop::Unrecognised);
        }
        let latch = self.latch;
        let Some(l) = self.legs.get_mut(leg) else {
            return self.drop(Drop::UnknownSource);
        };
        let (expected, latched) = if rtcp {
            (&mut l.rtcp, &mut l.latched[1])
        } else {
            (&mut l.rtp, &mut l.latched[0])
        };
        if latch && expected.is_some() && !*latched {
            // The first packet after the PBX's SDP, from wherever it comes
            // (the SDP's address too), fixes the stream's source.
            *latched = true;
            *expected = Some(from);
        } else if *expected != Some(from) {
            let why = if expected.is_none() {
                Drop::NoPbxAddress
            } else {
                Drop::UnknownSource
            };
            return self.drop(why);
        }
        let Some(to) = self.ice.selected() else {
            return self.drop(Drop::NoBrowserAddress);
        };
        if self.keys.is_none() {
            return self.drop(Drop::NoKeys);
        }
        // An SDES leg's SRTP from the PBX, decrypted in place first.
        let len = match self.pbx_keys[leg].as_mut() {
            None => len,
            Some(k) => {
                let Some(packet) = buf.get_mut(..len) else {
                    return self.drop(Drop::Unrecognised);
                };
                let result = if rtcp {
                    k.inbound.unprotect_rtcp(packet)
                } else {
                    k.inbound.unprotect_rtp(packet)
                };
                match result {
                    Ok(n) => n,
                    Err(e) => return self.drop(Drop::Srtp(e)),
                }
            }
        };
        let Some(keys) = self.keys.as_mut() else {
            return self.drop(Drop::NoKeys);
        };
        if let Some(tap) = self.tap.as_mut() {
            tap.packet(now, Way::ToBrowser, leg, rtcp, &buf[..len]);
        }
        let result = if rtcp {
            keys.outbound.protect_rtcp(buf, len)
        } else {
            let l = &mut self.legs[leg];
            l.from_pbx.observe(&buf[..len], now, l.clock);
            keys.outbound.protect_rtp(buf, len)
        };
        match result {
            Ok(n) => {
                self.counters.to_browser += 1;
                self.counters.bytes_to_browser += n as u64;
                Ok(Forward::ToBrowser { to, len: n })
            }
            Err(e) => self.drop(Drop::Srtp(e)),
        }
    }

    /// DTLS datagrams the handshake wants sent (flights, retransmissions).
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.dtls.poll_transmit()
    }

    /// When the DTLS handshake needs its timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.keys.is_some() {
            None
        } else {
            self.dtls.poll_timeout()
        }
    }

    /// Runs the DTLS retransmission timer.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), DtlsError> {
        self.dtls.handle_timeout(now)
    }
}
