//! The UDP ports the relay may bind for media, handed out per call leg and
//! taken back when the call ends. Sans-IO: the shell binds what it is given
//! and reports the ports it could not bind.
//!
//! Ports go out in blocks of two, an even one for RTP and the next for RTCP
//! (RFC 3550 §11): plain-RTP PBXes assume that pairing unless told otherwise
//! with `a=rtcp` (RFC 3605). A cursor walks the range round-robin, so a block
//! a call just gave back is the last to be handed out again: late packets
//! of an old call do not land in a new one.

use thiserror::Error;

/// Why a port range cannot be used, or why a call found no ports.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PortError {
    /// The range holds no even-aligned pair: the operator's setting is wrong.
    #[error("media port range {min}-{max} holds no even RTP port with its RTCP port")]
    EmptyRange {
        /// The configured first port.
        min: u16,
        /// The configured last port.
        max: u16,
    },
    /// Every pair is taken: the call is refused (the signalling answers 503).
    #[error("all {blocks} media port pairs are in use")]
    Exhausted {
        /// How many pairs the range holds, for the operator's log.
        blocks: usize,
    },
}

/// An RTP port and its RTCP port, `rtp + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortPair {
    /// Even; RTP (and RTCP too, when multiplexed per RFC 5761).
    pub rtp: u16,
}

impl PortPair {
    /// RTCP's port when it is not multiplexed with RTP.
    pub fn rtcp(self) -> u16 {
        self.rtp + 1
    }
}

/// The media port range and which of its pairs are in use.
#[derive(Debug)]
pub struct PortPool {
    /// The first even port of the range.
    base: u16,
    /// One bit per pair: set while a call holds it.
    used: Vec<u64>,
    blocks: usize,
    in_use: usize,
    /// The next pair to try: the one after the last handed out.
    cursor: usize,
}

impl PortPool {
    /// A pool over `min..=max`; an odd `min` starts at the next even port
    /// and a pair whose RTCP port would pass `max` is left out.
    pub fn new(min: u16, max: u16) -> Result<Self, PortError> {
        let base = min.checked_add(min % 2).filter(|b| *b > 0);
        let blocks = match base {
            // `max - base + 1` ports make that many halved, rounded down.
            Some(base) if max > base => usize::from((max - base).div_ceil(2)),
            _ => 0,
        };
        let Some(base) = base.filter(|_| blocks > 0) else {
            return Err(PortError::EmptyRange { min, max });
        };
        Ok(Self {
            base,
            used: vec![0; blocks.div_ceil(64)],
            blocks,
            in_use: 0,
            cursor: 0,
        })
    }

    /// How many pairs the range holds.
    pub fn capacity(&self) -> usize {
        self.blocks
    }

    /// How many pairs calls hold now (the metric operators size ranges by).
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// A free pair, the least recently handed out.
    pub fn allocate(&mut self) -> Result<PortPair, PortError> {
        if self.in_use == self.blocks {
            return Err(PortError::Exhausted {
                blocks: self.blocks,
            });
        }
        for step in 0..self.blocks {
            let i = (self.cursor + step) % self.blocks;
            let (word, bit) = (i / 64, 1u64 << (i % 64));
            if self.used[word] & bit == 0 {
                self.used[word] |= bit;
                self.in_use += 1;
                self.cursor = (i + 1) % self.blocks;
                return Ok(self.pair(i));
            }
        }
        Err(PortError::Exhausted {
            blocks: self.blocks,
        })
    }

    /// Gives a pair back at the end of its call. Releasing a pair that is
    /// not held (twice, or never from this pool) changes nothing.
    pub fn release(&mut self, pair: PortPair) {
        let Some(i) = self.index(pair) else { return };
        let (word, bit) = (i / 64, 1u64 << (i % 64));
        if self.used[word] & bit != 0 {
            self.used[word] &= !bit;
            self.in_use -= 1;
        }
    }

    fn pair(&self, i: usize) -> PortPair {
        // `i < blocks`, and the last block's RTCP port is at most `max`.
        let offset = u16::try_from(i * 2).unwrap_or(u16::MAX);
        PortPair {
            rtp: self.base.saturating_add(offset),
        }
    }

    fn index(&self, pair: PortPair) -> Option<usize> {
        let offset = pair.rtp.checked_sub(self.base)?;
        let i = usize::from(offset / 2);
        (offset % 2 == 0 && i < self.blocks).then_some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_even_and_stay_inside_the_range() {
        let mut pool = PortPool::new(10001, 10006).expect("range");
        assert_eq!(pool.capacity(), 2, "10002/3 and 10004/5; 10006 has no RTCP");
        let a = pool.allocate().expect("a");
        let b = pool.allocate().expect("b");
        assert_eq!(
            (a.rtp, a.rtcp(), b.rtp, b.rtcp()),
            (10002, 10003, 10004, 10005)
        );
        assert_eq!(
            pool.allocate(),
            Err(PortError::Exhausted { blocks: 2 }),
            "a full range refuses the call"
        );
        assert_eq!(
            PortError::Exhausted { blocks: 2 }.to_string(),
            "all 2 media port pairs are in use"
        );
    }

    #[test]
    fn a_released_pair_is_the_last_to_come_back() {
        let mut pool = PortPool::new(20000, 20007).expect("range");
        let first = pool.allocate().expect("first");
        pool.release(first);
        let order: Vec<u16> = (0..4).map(|_| pool.allocate().expect("pair").rtp).collect();
        assert_eq!(order, [20002, 20004, 20006, 20000]);
        assert_eq!(pool.in_use(), 4);
    }

    #[test]
    fn double_or_foreign_release_changes_nothing() {
        let mut pool = PortPool::new(30000, 30003).expect("range");
        let a = pool.allocate().expect("a");
        pool.release(a);
        pool.release(a);
        pool.release(PortPair { rtp: 30001 });
        pool.release(PortPair { rtp: 40000 });
        pool.release(PortPair { rtp: 2 });
        assert_eq!(pool.in_use(), 0);
        assert_eq!(pool.allocate().map(|p| p.rtp), Ok(30002));
        assert_eq!(pool.allocate().map(|p| p.rtp), Ok(30000));
        assert!(pool.allocate().is_err());
    }

    #[test]
    fn unusable_ranges_are_refused_with_their_bounds() {
        for (min, max) in [
            (5000, 5000),
            (5001, 5002),
            (6000, 5000),
            (0, 1),
            (65535, 65535),
        ] {
            assert_eq!(
                PortPool::new(min, max).err(),
                Some(PortError::EmptyRange { min, max }),
                "{min}-{max}"
            );
        }
        let top = PortPool::new(65534, 65535).expect("the last pair");
        assert_eq!(top.capacity(), 1);
        let whole = PortPool::new(1024, 65535).expect("everything");
        assert_eq!(whole.capacity(), 32256);
    }

    proptest::proptest! {
        /// Whatever the calls do, the pool agrees with a plain set of held
        /// pairs: no pair is handed out twice, every free one can be had.
        #[test]
        fn the_pool_matches_a_set_of_held_pairs(
            min in 1000u16..1100,
            len in 0u16..40,
            ops in proptest::collection::vec((proptest::bool::ANY, 0usize..64), 0..200),
        ) {
            let Ok(mut pool) = PortPool::new(min, min + len) else {
                proptest::prop_assert!(len == 0 || (len == 1 && min % 2 == 1));
                return Ok(());
            };
            let mut held = std::collections::BTreeSet::new();
            for (take, pick) in ops {
                if take {
                    match pool.allocate() {
                        Ok(p) => {
                            proptest::prop_assert!(p.rtp % 2 == 0 && p.rtp >= min && p.rtcp() <= min + len);
                            proptest::prop_assert!(held.insert(p));
                        }
                        Err(_) => proptest::prop_assert_eq!(held.len(), pool.capacity()),
                    }
                } else if let Some(p) = held.iter().nth(pick % held.len().max(1)).copied() {
                    held.remove(&p);
                    pool.release(p);
                }
                proptest::prop_assert_eq!(pool.in_use(), held.len());
            }
        }
    }

    #[test]
    fn every_pair_of_a_large_range_is_handed_out_once() {
        let mut pool = PortPool::new(10000, 10999).expect("range");
        let mut seen = std::collections::BTreeSet::new();
        while let Ok(p) = pool.allocate() {
            assert!(seen.insert(p.rtp) && p.rtcp() <= 10999);
        }
        assert_eq!(seen.len(), 500);
        assert_eq!(pool.in_use(), 500);
        for rtp in seen {
            pool.release(PortPair { rtp });
        }
        assert_eq!(pool.in_use(), 0);
    }
}
