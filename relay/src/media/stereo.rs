//! Two RTP audio streams (the browser's and the far end's) laid side by
//! side as stereo frames at the WAV's rate (8 kHz for G.711, 16 kHz for
//! G.722 and Opus), for the recordings' WAV files: left the browser, right the far
//! end.
//!
//! Each stream is placed by its RTP timestamps, anchored where its first
//! packet arrived: so the two line up as they were heard, whatever their
//! timestamps' bases. Where a stream sent nothing (a gap, hold, one-way
//! audio) its channel is silence. A stream whose timestamps jump (a new
//! source after a re-INVITE, a far end that restarted) is anchored again
//! where it arrived. Frames are handed out once both streams are past
//! them, or once the leading stream is [`LAG`] ahead (a silent stream does
//! not hold the file back).

use std::collections::VecDeque;

/// How far the leading stream may run ahead before the other's frames are
/// taken as silence, in a fraction of a second: 200 ms, more than a jitter
/// buffer's worth.
const LAG_PER_SECOND: u64 = 5;
/// A timestamp more than this many seconds away from where the packet's
/// arrival puts it re-anchors the stream.
const JUMP_SECONDS: i64 = 2;

/// One stream's place in the recording.
#[derive(Debug, Default)]
struct Stream {
    /// The RTP timestamp and frame index it is anchored at.
    anchor: Option<(u32, u64)>,
    /// The frame after its last sample.
    end: u64,
}

/// The two streams and the frames not yet handed out.
#[derive(Debug)]
pub struct Stereo {
    /// Frames a second.
    rate: u64,
    streams: [Stream; 2],
    /// Frames from `written` on, left and right.
    pending: VecDeque<[i16; 2]>,
    /// Frames handed out so far.
    written: u64,
}

impl Stereo {
    /// Two streams laid out at `rate` frames a second.
    pub fn new(rate: u32) -> Stereo {
        Stereo {
            rate: u64::from(rate.max(1)),
            streams: Default::default(),
            pending: VecDeque::new(),
            written: 0,
        }
    }

    /// Frames a second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// How far the leading stream may run ahead of the other, in frames.
    pub fn lag(&self) -> u64 {
        self.rate / LAG_PER_SECOND
    }

    /// Places `samples` of `channel` (0 left, 1 right), whose RTP
    /// timestamp is `timestamp` on a clock of `clock` a second, that
    /// arrived `arrived` frames into the recording.
    pub fn add(
        &mut self,
        channel: usize,
        arrived: u64,
        timestamp: u32,
        clock: u32,
        samples: &[i16],
    ) {
        let (rate, clock) = (self.rate as i64, i64::from(clock.max(1)));
        let Some(stream) = self.streams.get_mut(channel) else {
            return;
        };
        let at = match stream.anchor {
            Some((ts, frame)) => {
                let delta = i64::from(timestamp.wrapping_sub(ts) as i32) * rate / clock;
                let at = frame as i64 + delta;
                if (at - arrived as i64).abs() > JUMP_SECONDS * rate {
                    stream.anchor = Some((timestamp, arrived));
                    arrived
                } else {
                    at.max(0) as u64
                }
            }
            None => {
                stream.anchor = Some((timestamp, arrived));
                arrived
            }
        };
        stream.end = stream.end.max(at + samples.len() as u64);
        for (i, &s) in samples.iter().enumerate() {
            let frame = at + i as u64;
            // Too late: those frames are in the file already.
            let Some(offset) = frame.checked_sub(self.written) else {
                continue;
            };
            let offset = offset as usize;
            if self.pending.len() <= offset {
                self.pending.resize(offset + 1, [0, 0]);
            }
            self.pending[offset][channel] = s;
        }
    }

    /// The frames ready to be written: up to where both streams are, or
    /// [`Self::lag`] behind the leading one; everything when `all` (the
    /// end).
    pub fn ready(&mut self, all: bool) -> impl ExactSizeIterator<Item = [i16; 2]> + '_ {
        let lag = self.lag();
        let [a, b] = [&self.streams[0], &self.streams[1]];
        let both = a.end.min(b.end);
        let lead = a.end.max(b.end);
        let up_to = if all {
            self.written + self.pending.len() as u64
        } else {
            both.max(lead.saturating_sub(lag))
        };
        let n = up_to
            .saturating_sub(self.written)
            .min(self.pending.len() as u64) as usize;
        self.written += n as u64;
        self.pending.drain(..n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(s: &mut Stereo, all: bool) -> Vec<[i16; 2]> {
        s.ready(all).collect()
    }

    #[test]
    fn two_streams_line_up_by_arrival_whatever_their_timestamp_bases() {
        let mut s = Stereo::new(8000);
        // The browser's stream from timestamp 1000, the far end's from
        // 555_000, both arriving at frame 160.
        for k in 0..5u32 {
            s.add(0, 160 + u64::from(k) * 160, 1000 + k * 160, 8000, &[1; 160]);
            s.add(
                1,
                160 + u64::from(k) * 160,
                555_000 + k * 160,
                8000,
                &[2; 160],
            );
        }
        let frames = take(&mut s, false);
        assert_eq!(frames.len(), 160 + 5 * 160);
        assert!(frames[..160].iter().all(|f| *f == [0, 0]), "silence before");
        assert!(frames[160..].iter().all(|f| *f == [1, 2]));
    }

    #[test]
    fn a_gap_is_silence_and_a_silent_side_does_not_hold_the_file_back() {
        let mut s = Stereo::new(8000);
        // 20 packets of the browser's, the 4th and 5th lost; the far end
        // sends nothing.
        for k in (0..20u32).filter(|k| !(3..5).contains(k)) {
            s.add(0, u64::from(k) * 160, k * 160, 8000, &[5; 160]);
        }
        // Frames come out 200 ms behind the browser.
        let frames = take(&mut s, false);
        assert_eq!(frames.len() as u64, 20 * 160 - 1600);
        assert!(frames[..480].iter().all(|f| *f == [5, 0]));
        assert!(frames[480..800].iter().all(|f| *f == [0, 0]), "the gap");
        assert!(frames[800..].iter().all(|f| *f == [5, 0]));
        let rest = take(&mut s, true);
        assert_eq!(frames.len() + rest.len(), 20 * 160);
    }

    #[test]
    fn a_timestamp_jump_re_anchors_where_the_packet_arrived() {
        let mut s = Stereo::new(8000);
        s.add(1, 0, 100, 8000, &[1; 160]);
        // A new source after a re-INVITE: its timestamps start elsewhere.
        s.add(1, 160, 9_000_000, 8000, &[2; 160]);
        let frames = take(&mut s, true);
        assert_eq!(frames.len(), 320);
        assert!(frames[160..].iter().all(|f| *f == [0, 2]));
    }

    #[test]
    fn a_late_packet_does_not_rewrite_what_was_written() {
        let mut s = Stereo::new(8000);
        s.add(0, 0, 0, 8000, &[1; 160]);
        s.add(1, 0, 0, 8000, &[1; 160]);
        assert_eq!(take(&mut s, false).len(), 160);
        s.add(0, 200, 0, 8000, &[9; 160]);
        assert!(take(&mut s, true).is_empty());
    }

    #[test]
    fn a_faster_clock_is_scaled_to_the_rate_opus_at_48_khz_into_16() {
        let mut s = Stereo::new(16_000);
        // 20 ms packets: 960 ticks of Opus's 48 kHz clock, 320 frames.
        for k in 0..5u32 {
            s.add(0, u64::from(k) * 320, 7 + k * 960, 48_000, &[3; 320]);
        }
        // One lost in between: its 20 ms are silence, not squeezed out.
        s.add(0, 6 * 320, 7 + 6 * 960, 48_000, &[4; 320]);
        let frames = take(&mut s, true);
        assert_eq!(frames.len(), 7 * 320);
        assert!(frames[..5 * 320].iter().all(|f| *f == [3, 0]));
        assert!(frames[5 * 320..6 * 320].iter().all(|f| *f == [0, 0]));
        assert!(frames[6 * 320..].iter().all(|f| *f == [4, 0]));
    }
}
