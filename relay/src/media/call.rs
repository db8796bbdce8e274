//! One call's media as the media engine drives it, sans-IO: the browser side's
//! [`Session`] once the browser's SDP is known, the PBX's addresses that
//! came before it, and whether anybody is still on the call
//! ([`Liveness`]). The shell (`net::engine`) hands it the signalling's
//! commands and the datagrams, sends what it says, and wakes it at
//! [`CallMedia::poll_timeout`]; every rule is here, tested with explicit
//! time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::calls::Command;
use super::dtls::DtlsError;
use super::liveness::Liveness;
use super::record::Tap;
use super::session::{Counters, Drop, Forward, MAX_LEGS, Session};
use super::srtp::{LegKeys, SrtpKeys};

/// How often the call checks whether it is over.
pub const CHECK: Duration = Duration::from_secs(1);

/// Why a call's media ended it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Over {
    /// Answered and the browser silent for the idle time, or never
    /// answered (see [`Liveness`]).
    Timeout,
    /// The DTLS handshake failed (a fingerprint not in the SDP, or a
    /// broken handshake).
    Dtls(DtlsError),
}

/// One call's media.
#[derive(Debug)]
pub struct CallMedia {
    session: Option<Box<Session>>,
    /// Each leg's PBX addresses and clock, when they come before the
    /// browser side.
    pbx: [Option<(SocketAddr, SocketAddr, u32)>; MAX_LEGS],
    /// Each leg's SDES keys, when they come before the browser side.
    pbx_keys: [Option<Box<SrtpKeys>>; MAX_LEGS],
    liveness: Liveness,
    next_check: Instant,
    /// A recording started before the browser side was known.
    tap: Option<Tap>,
}

impl CallMedia {
    /// A call whose media starts at `now`; once answered, `idle` of
    /// silence from the browser ends it.
    pub fn new(now: Instant, idle: Duration) -> Self {
        Self {
            session: None,
            pbx: [None; MAX_LEGS],
            pbx_keys: [None, None],
            liveness: Liveness::new(now, idle),
            next_check: now + CHECK,
            tap: None,
        }
    }

    /// Applies what the signalling decided. Opening and closing are the
    /// shell's, not the call's: they are ignored here.
    pub fn apply(&mut self, now: Instant, command: Command) {
        match command {
            Command::Browser { mut session, .. } => {
                for (leg, pbx) in self.pbx.iter().enumerate() {
                    if let Some((rtp, rtcp, clock)) = *pbx {
                        session.set_pbx(leg, rtp, rtcp);
                        session.set_clock_rate(leg, clock);
                    }
                }
                for (leg, keys) in self.pbx_keys.iter_mut().enumerate() {
                    if let Some(keys) = keys.take() {
                        session.set_pbx_keys(leg, LegKeys::Both(keys));
                    }
                }
                if let Some(tap) = self.tap.take() {
                    session.set_tap(tap);
                }
                self.session = Some(session);
            }
            Command::PayloadLegs { map, .. } => {
                if let Some(s) = self.session.as_mut() {
                    s.set_payload_legs(&map);
                }
            }
            Command::IceRestart { ice, .. } => {
                if let Some(s) = self.session.as_mut() {
                    s.restart_ice(*ice);
                }
            }
            Command::Pbx {
                leg,
                rtp,
                rtcp,
                clock,
                ..
            } => {
                if let Some(pending) = self.pbx.get_mut(leg) {
                    *pending = Some((rtp, rtcp, clock));
                }
                if let Some(s) = self.session.as_mut() {
                    s.set_pbx(leg, rtp, rtcp);
                    s.set_clock_rate(leg, clock);
                }
            }
            Command::PbxKeys { leg, keys, .. } => match self.session.as_mut() {
                Some(s) => s.set_pbx_keys(leg, keys),
                None => {
                    if let Some(pending) = self.pbx_keys.get_mut(leg) {
                        keys.apply_to(pending);
                    }
                }
            },
            Command::Tap { tap, .. } => match self.session.as_mut() {
                Some(s) => s.set_tap(tap),
                None => self.tap = Some(tap),
            },
            Command::Untap { .. } => {
                self.tap = None;
                if let Some(s) = self.session.as_mut() {
                    s.clear_tap();
                }
            }
            Command::Answered { .. } => self.liveness.answered(now),
            Command::Open { .. } | Command::Record { .. } | Command::Close { .. } => {}
        }
    }

    /// A datagram from the browser (see [`Session::from_browser`]); before
    /// the browser's SDP is known there is nothing to check it against.
    pub fn from_browser(
        &mut self,
        now: Instant,
        from: SocketAddr,
        buf: &mut [u8],
        len: usize,
    ) -> Result<Forward, Drop> {
        match self.session.as_mut() {
            Some(s) => s.from_browser(now, from, buf, len),
            None => Err(Drop::NoSession),
        }
    }

    /// A datagram from the PBX (see [`Session::from_pbx`]). The PBX's
    /// packets say nothing of whether the browser is there (see
    /// [`Liveness`]).
    pub fn from_pbx(
        &mut self,
        now: Instant,
        leg: usize,
        from: SocketAddr,
        rtcp: bool,
        buf: &mut [u8],
        len: usize,
    ) -> Result<Forward, Drop> {
        match self.session.as_mut() {
            Some(s) => s.from_pbx(now, leg, from, rtcp, buf, len),
            None => Err(Drop::NoSession),
        }
    }

    /// Whether `from` passed a connectivity check of this call.
    pub fn is_verified(&self, from: SocketAddr) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.ice().is_verified(from))
    }

    /// Why the browser side failed, if it did: the call must end.
    pub fn failure(&self) -> Option<&DtlsError> {
        self.session.as_ref().and_then(|s| s.failure())
    }

    /// DTLS datagrams to send to the browser.
    pub fn poll_transmit(&mut self) -> Option<(SocketAddr, Vec<u8>)> {
        self.session.as_mut().and_then(|s| s.poll_transmit())
    }

    /// When to call [`CallMedia::handle_timeout`]: the DTLS timer during
    /// the handshake, else the next check. It moves once a second at
    /// most, never per packet.
    pub fn poll_timeout(&self) -> Instant {
        self.session
            .as_ref()
            .and_then(|s| s.poll_timeout())
            .map_or(self.next_check, |at| at.min(self.next_check))
    }

    /// Runs the timers due at `now`: the DTLS handshake's, and the check
    /// whether the call is over.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), Over> {
        if now >= self.next_check {
            self.next_check = now + CHECK;
            if let Some(heard) = self.session.as_ref().and_then(|s| s.heard()) {
                self.liveness.browser_heard(heard);
            }
            if self.liveness.is_over(now) {
                return Err(Over::Timeout);
            }
        }
        match self.session.as_mut() {
            Some(s) => s.handle_timeout(now).map_err(Over::Dtls),
            None => Ok(()),
        }
    }

    /// The call's counters, once the browser side exists.
    pub fn figures(&self) -> Option<Counters> {
        self.session.as_ref().map(|s| s.figures())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::MediaId;
    use crate::media::liveness::UNANSWERED;

    const IDLE: Duration = Duration::from_secs(30);
    const CALL: MediaId = MediaId(1);

    /// Runs the call's timer at each deadline up to `until`, as the shell
    /// would; the first reason it ended, if it did.
    fn run(media: &mut CallMedia, until: Instant) -> Result<(), Over> {
        loop {
            let at = media.poll_timeout();
            if at > until {
                return Ok(());
            }
            media.handle_timeout(at)?;
        }
    }

    #[test]
    fn a_ringing_call_ends_only_at_the_unanswered_backstop() {
        let t0 = Instant::now();
        let mut media = CallMedia::new(t0, IDLE);
        assert_eq!(media.poll_timeout(), t0 + CHECK, "checked once a second");
        assert_eq!(run(&mut media, t0 + UNANSWERED - CHECK), Ok(()));
        assert_eq!(run(&mut media, t0 + UNANSWERED), Err(Over::Timeout));
    }

    #[test]
    fn an_answered_call_with_no_browser_media_ends_after_the_idle_time() {
        let t0 = Instant::now();
        let mut media = CallMedia::new(t0, IDLE);
        assert_eq!(run(&mut media, t0 + Duration::from_secs(100)), Ok(()));
        media.apply(
            t0 + Duration::from_secs(100),
            Command::Answered { id: CALL },
        );
        assert_eq!(run(&mut media, t0 + Duration::from_secs(129)), Ok(()));
        assert_eq!(
            run(&mut media, t0 + Duration::from_secs(131)),
            Err(Over::Timeout),
            "30 s of silence from the browser after the answer"
        );
    }

    #[test]
    fn no_datagram_is_taken_before_the_browser_side_exists() {
        let t0 = Instant::now();
        let mut media = CallMedia::new(t0, IDLE);
        let pbx: SocketAddr = "10.0.0.5:16384".parse().expect("addr");
        media.apply(
            t0,
            Command::Pbx {
                id: CALL,
                leg: 0,
                rtp: pbx,
                rtcp: pbx,
                clock: 8000,
            },
        );
        let mut buf = [0x80u8; 200];
        assert_eq!(
            media.from_pbx(t0, 0, pbx, false, &mut buf, 172),
            Err(Drop::NoSession)
        );
        assert_eq!(
            media.from_browser(t0, pbx, &mut buf, 172),
            Err(Drop::NoSession)
        );
        assert_eq!(media.figures(), None);
        assert!(media.poll_transmit().is_none());
    }
}
