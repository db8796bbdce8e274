//! Time as the core sees it: an instant handed in by the caller.
//!
//! `std::time::Instant` panics on `wasm32-unknown-unknown`, and a sans-IO core
//! must never read a clock anyway. The shells convert their own clock
//! (`performance.now()`, `tokio::time::Instant`) into this type.

use core::ops::{Add, Sub};
use core::time::Duration;

/// A point in time, in milliseconds since an epoch the caller chooses.
///
/// Only differences between instants mean anything, so the shell may start
/// its epoch at zero when it creates the user agent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(u64);

impl Instant {
    /// The instant `ms` milliseconds after the caller's epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the caller's epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, rhs: Duration) -> Instant {
        let ms = u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ms))
    }
}

impl Sub<Instant> for Instant {
    type Output = Duration;

    fn sub(self, rhs: Instant) -> Duration {
        self.saturating_duration_since(rhs)
    }
}

/// The earlier of two optional deadlines, for `poll_timeout` implementations.
pub(crate) fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Instant::from_millis(1_000);
        assert_eq!((t + Duration::from_millis(500)).as_millis(), 1_500);
        assert_eq!(t - Instant::from_millis(2_000), Duration::ZERO);
        assert_eq!(
            Instant::from_millis(u64::MAX) + Duration::from_secs(1),
            Instant::from_millis(u64::MAX)
        );
        assert_eq!(earliest(Some(t), None), Some(t));
        assert_eq!(
            earliest(Some(t), Some(Instant::from_millis(3))),
            Some(Instant::from_millis(3))
        );
    }
}
