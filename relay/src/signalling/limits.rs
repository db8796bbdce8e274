//! Admission and rate limits, so that one browser (or one address) cannot
//! take the relay or the PBX down: a token bucket per connection, and a cap
//! on connections per IP address.

use std::time::Duration;

use sipline_core::Instant;

/// The limits in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained messages per second per connection.
    pub per_second: u32,
    /// Messages a connection may send at once before the rate applies.
    pub burst: u32,
}

impl Default for RateLimit {
    fn default() -> Self {
        Self {
            per_second: 20,
            burst: 100,
        }
    }
}

/// A token bucket, in thousandths of a message so that refills stay exact
/// with integer arithmetic.
#[derive(Clone, Debug)]
pub(crate) struct Bucket {
    milli_tokens: u64,
    last: Instant,
}

impl Bucket {
    pub fn new(now: Instant, limit: RateLimit) -> Self {
        Self {
            milli_tokens: u64::from(limit.burst) * 1000,
            last: now,
        }
    }

    /// Takes one token, or says how long until one is there.
    pub fn take(&mut self, now: Instant, limit: RateLimit) -> Result<(), Duration> {
        let elapsed_ms = (now - self.last).as_millis() as u64;
        self.last = now;
        let cap = u64::from(limit.burst.max(1)) * 1000;
        self.milli_tokens = (self.milli_tokens + elapsed_ms * u64::from(limit.per_second)).min(cap);
        if self.milli_tokens >= 1000 {
            self.milli_tokens -= 1000;
            return Ok(());
        }
        let missing = 1000 - self.milli_tokens;
        let per_ms = u64::from(limit.per_second.max(1));
        Err(Duration::from_millis(missing.div_ceil(per_ms)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_the_burst_then_the_rate() {
        let limit = RateLimit {
            per_second: 10,
            burst: 3,
        };
        let t = Instant::from_millis;
        let mut b = Bucket::new(t(0), limit);
        assert!((0..3).all(|_| b.take(t(0), limit).is_ok()));
        assert_eq!(b.take(t(0), limit), Err(Duration::from_millis(100)));
        assert_eq!(b.take(t(50), limit), Err(Duration::from_millis(50)));
        assert!(b.take(t(100), limit).is_ok());
        // Idle time refills up to the burst, not beyond.
        assert!((0..3).all(|_| b.take(t(60_000), limit).is_ok()));
        assert!(b.take(t(60_000), limit).is_err());
    }
}
