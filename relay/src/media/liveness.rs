//! When a call's media says nobody is left on it, sans-IO: the shell tells
//! it what it heard and when, and asks at its once-a-second tick whether
//! the call is over.
//!
//! Only the browser's side counts. A browser sends RTP, RTCP and ICE
//! consent checks (RFC 7675: every few seconds, also on hold with no RTP
//! at all), so its silence means it is gone. The PBX's packets prove
//! nothing about the browser: a PBX keeps sending music on hold, or the far
//! end's voice, to a browser that closed its tab, and counting them would
//! keep such a call up for ever.

use std::time::{Duration, Instant};

/// A call not answered after this long is ended: a backstop for a
/// signalling path that never said it ended.
pub const UNANSWERED: Duration = Duration::from_secs(600);

/// One call's liveness.
#[derive(Clone, Copy, Debug)]
pub struct Liveness {
    started: Instant,
    /// The browser's silence that ends an answered call.
    idle: Duration,
    /// When the call was answered, if it was.
    answered: bool,
    /// Last time the browser showed it is there (or the answer).
    heard: Instant,
}

impl Liveness {
    /// A call whose media starts at `now`; once answered, `idle` of
    /// silence from the browser ends it.
    pub fn new(now: Instant, idle: Duration) -> Self {
        Self {
            started: now,
            idle,
            answered: false,
            heard: now,
        }
    }

    /// The call was answered at `now`: the browser's silence counts from
    /// here.
    pub fn answered(&mut self, now: Instant) {
        self.answered = true;
        self.heard = now;
    }

    /// The browser sent media, or a consent check once DTLS is up, at
    /// `at` (news older than the answer changes nothing).
    pub fn browser_heard(&mut self, at: Instant) {
        self.heard = self.heard.max(at);
    }

    /// Whether the call is over at `now`: answered and the browser silent
    /// for the idle time, or never answered in [`UNANSWERED`].
    pub fn is_over(&self, now: Instant) -> bool {
        if self.answered {
            now.saturating_duration_since(self.heard) >= self.idle
        } else {
            now.saturating_duration_since(self.started) >= UNANSWERED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(30);

    fn at(start: Instant, secs: u64) -> Instant {
        start + Duration::from_secs(secs)
    }

    #[test]
    fn an_answered_call_ends_after_the_browser_is_silent_for_the_idle_time() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, IDLE);
        l.answered(at(t0, 5));
        assert!(!l.is_over(at(t0, 34)));
        assert!(l.is_over(at(t0, 35)), "30 s after the answer");
        l.browser_heard(at(t0, 40));
        assert!(!l.is_over(at(t0, 69)), "heard again: it goes on");
        assert!(l.is_over(at(t0, 70)));
    }

    #[test]
    fn consent_checks_every_few_seconds_keep_a_held_call_up() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, IDLE);
        l.answered(t0);
        for s in (5..3600).step_by(5) {
            l.browser_heard(at(t0, s));
            assert!(!l.is_over(at(t0, s + 4)));
        }
    }

    #[test]
    fn the_browser_s_silence_before_the_answer_does_not_count() {
        let t0 = Instant::now();
        let mut l = Liveness::new(t0, IDLE);
        assert!(!l.is_over(at(t0, 120)), "ringing for two minutes");
        assert!(!l.is_over(at(t0, 599)));
        assert!(l.is_over(at(t0, 600)), "never answered: the backstop");
        l.answered(at(t0, 600));
        assert!(!l.is_over(at(t0, 601)));
    }

    #[test]
    fn time_going_backwards_is_no_silence() {
        let t0 = Instant::now() + Duration::from_secs(100);
        let mut l = Liveness::new(t0, IDLE);
        l.answered(t0);
        assert!(!l.is_over(t0 - Duration::from_secs(50)));
    }
}
