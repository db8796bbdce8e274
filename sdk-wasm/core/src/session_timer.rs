//! Session timers (RFC 4028): a call whose far end vanished without a BYE
//! (a crashed phone, a PBX restart, a lost network) is found and ended.
//!
//! The two ends agree, in the INVITE and its 2xx, on an interval and on who
//! refreshes. The refresher sends a re-INVITE with the unchanged SDP at half
//! the interval; the other side ends the call with a BYE when no refresh
//! came before the interval minus a margin (§10). This module holds the
//! rules and the clock of one call; `call.rs` sends the requests.

use crate::prelude::*;
use core::time::Duration;

use crate::Instant;
use crate::sip::{HeaderName, Message};

/// The smallest interval we accept and ask for (RFC 4028 §4: Min-SE is at
/// least 90 s).
pub(crate) const MIN_SE: u32 = 90;

/// Who sends the refreshes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refresher {
    /// The side that sent the INVITE (or the refresh).
    Uac,
    /// The side that answered it.
    Uas,
}

impl Refresher {
    fn as_str(self) -> &'static str {
        match self {
            Refresher::Uac => "uac",
            Refresher::Uas => "uas",
        }
    }
}

/// `Session-Expires: <secs>[;refresher=uac|uas]`.
pub(crate) fn parse(msg: &Message<'_>) -> Option<(u32, Option<Refresher>)> {
    let value = msg.header(HeaderName::SessionExpires)?;
    let mut parts = value.split(';');
    let secs = parts.next()?.trim().parse().ok()?;
    let refresher = parts.find_map(|p| {
        let (name, v) = p.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("refresher") {
            return None;
        }
        match v.trim() {
            r if r.eq_ignore_ascii_case("uac") => Some(Refresher::Uac),
            r if r.eq_ignore_ascii_case("uas") => Some(Refresher::Uas),
            _ => None,
        }
    });
    Some((secs, refresher))
}

/// The interval a 422's `Min-SE` demands.
pub(crate) fn min_se(msg: &Message<'_>) -> Option<u32> {
    msg.header(HeaderName::Other("Min-SE"))?
        .split(';')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Whether `msg` lists `timer` in Supported or Require.
pub(crate) fn supports_timer(msg: &Message<'_>) -> bool {
    [HeaderName::Supported, HeaderName::Require]
        .into_iter()
        .any(|h| {
            msg.header_values(h)
                .any(|v| v.eq_ignore_ascii_case("timer"))
        })
}

/// One call's session timer.
#[derive(Clone, Debug)]
pub(crate) struct SessionTimer {
    /// The agreed interval, in seconds.
    pub interval: u32,
    /// We send the refreshes.
    pub we_refresh: bool,
    /// When our next refresh goes (when we refresh).
    refresh_at: Option<Instant>,
    /// When the session is over without a refresh.
    expires_at: Instant,
}

impl SessionTimer {
    /// A timer of `interval` seconds starting `now`.
    pub fn new(now: Instant, interval: u32, we_refresh: bool) -> Self {
        let mut t = Self {
            interval,
            we_refresh,
            refresh_at: None,
            expires_at: now,
        };
        t.refreshed(now);
        t
    }

    /// A refresh (or any accepted session change) happened `now`.
    pub fn refreshed(&mut self, now: Instant) {
        let interval = u64::from(self.interval.max(MIN_SE));
        self.refresh_at = self
            .we_refresh
            .then(|| now + Duration::from_secs(interval / 2));
        // §10: the side that does not refresh waits the interval minus
        // min(32 s, a third of it), so a refresh late by a round trip
        // still counts.
        let margin = (interval / 3).min(32);
        self.expires_at = now + Duration::from_secs(interval - margin);
    }

    /// Our refresh failed for a reason that does not end the dialog: try
    /// again a little later (still before expiry).
    pub fn retry_refresh(&mut self, now: Instant) {
        if self.we_refresh {
            self.refresh_at = Some(now + Duration::from_secs(5));
        }
    }

    /// A refresh is due now.
    pub fn refresh_due(&self, now: Instant) -> bool {
        self.refresh_at.is_some_and(|t| t <= now) && !self.expired(now)
    }

    /// The refresh went out: wait for its answer, not another slot.
    pub fn refresh_sent(&mut self) {
        self.refresh_at = None;
    }

    /// No refresh came in time: the session is over.
    pub fn expired(&self, now: Instant) -> bool {
        self.expires_at <= now
    }

    /// The next instant this timer needs the clock.
    pub fn deadline(&self) -> Instant {
        self.refresh_at
            .map_or(self.expires_at, |r| r.min(self.expires_at))
    }

    /// The header of a refresh we send (we are its UAC and the refresher).
    pub fn request_header(&self) -> String {
        let mut v = String::new();
        crate::sip::push_decimal(&mut v, u64::from(self.interval));
        v.push_str(";refresher=uac");
        v
    }

    /// The value of `Session-Expires` for our 2xx to a request whose
    /// refresher was `their_choice` (they are its UAC).
    pub fn response_header(interval: u32, refresher: Refresher) -> String {
        let mut v = String::new();
        crate::sip::push_decimal(&mut v, u64::from(interval));
        v.push_str(";refresher=");
        v.push_str(refresher.as_str());
        v
    }
}

/// What we answer to an INVITE (or refresh) that carried `Session-Expires`
/// as its UAS: the interval, who refreshes (their choice, else the UAC
/// when it supports timers, §9), and whether we must `Require: timer`.
pub(crate) fn as_uas(msg: &Message<'_>) -> Option<(u32, Refresher)> {
    let (secs, refresher) = parse(msg)?;
    let refresher = refresher.unwrap_or(if supports_timer(msg) {
        Refresher::Uac
    } else {
        Refresher::Uas
    });
    Some((secs.max(MIN_SE), refresher))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(headers: &str) -> Vec<u8> {
        format!(
            "INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/WSS x.invalid;branch=z9hG4bK1\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\n{headers}Content-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    #[test]
    fn session_expires_is_read_with_its_refresher_and_compact_form() {
        let raw = msg("Session-Expires: 1800;refresher=UAS\r\n");
        let m = Message::parse(&raw).expect("parses");
        assert_eq!(parse(&m), Some((1800, Some(Refresher::Uas))));
        let raw = msg("x: 600\r\nSupported: timer, 100rel\r\n");
        let m = Message::parse(&raw).expect("parses");
        assert_eq!(parse(&m), Some((600, None)));
        assert_eq!(as_uas(&m), Some((600, Refresher::Uac)), "they support it");
        let raw = msg("Session-Expires: 30\r\n");
        let m = Message::parse(&raw).expect("parses");
        assert_eq!(as_uas(&m), Some((MIN_SE, Refresher::Uas)));
        let raw = msg("Min-SE: 120\r\n");
        let m = Message::parse(&raw).expect("parses");
        assert_eq!(min_se(&m), Some(120));
    }

    #[test]
    fn the_refresher_refreshes_at_half_and_the_other_side_expires_before_the_end() {
        let t0 = Instant::from_millis(0);
        let ours = SessionTimer::new(t0, 1800, true);
        assert_eq!(ours.deadline(), Instant::from_millis(900_000));
        assert!(ours.refresh_due(Instant::from_millis(900_000)));
        let theirs = SessionTimer::new(t0, 90, false);
        // 90 s minus a third (30 s): 60 s.
        assert_eq!(theirs.deadline(), Instant::from_millis(60_000));
        assert!(theirs.expired(Instant::from_millis(60_000)));
        assert!(!theirs.refresh_due(Instant::from_millis(60_000)));
        let long = SessionTimer::new(t0, 1800, false);
        assert_eq!(
            long.deadline(),
            Instant::from_millis(1_768_000),
            "32 s margin"
        );
    }
}
