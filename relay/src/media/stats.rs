//! Reception statistics of one RTP stream (RFC 3550 §6.4.1, A.3, A.8):
//! packets lost, from the extended highest sequence number against those
//! received, and interarrival jitter. A few integer operations per packet,
//! no allocation: it runs on the media hot path.

use std::time::Instant;

/// What a media direction's receiver has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RtpStats {
    /// The first packet's arrival, the clock jitter is measured on.
    epoch: Option<Instant>,
    /// The stream followed; another SSRC on the same leg (a video RTX
    /// stream) is not counted, unless this one fell silent (the sender
    /// restarted), which starts over.
    ssrc: u32,
    /// When it was last seen.
    seen: Option<Instant>,
    /// After a large sequence jump, the number that would confirm it.
    bad_seq: Option<u32>,
    base_seq: u32,
    /// Extended highest sequence number (cycles in the high bits).
    max_seq: u32,
    received: u64,
    /// The last packet's arrival (RTP clock units since `epoch`) and RTP
    /// timestamp.
    last: Option<(u64, u32)>,
    /// Jitter in RTP clock units, scaled by 16 (RFC 3550 A.8).
    jitter_q4: u64,
}

/// A sequence jump larger than this is a restart, not loss (A.1's
/// MAX_DROPOUT).
const MAX_DROPOUT: u32 = 3000;

/// Late packets within this many numbers are reordering, not a jump.
const MAX_MISORDER: u32 = 100;

/// A followed stream silent this long gives way to another SSRC.
const SILENT: std::time::Duration = std::time::Duration::from_secs(1);

impl RtpStats {
    /// One RTP packet (`packet` holds at least its fixed header) arrived at
    /// `now`; `clock` is its payload's RTP clock rate.
    pub fn observe(&mut self, packet: &[u8], now: Instant, clock: u32) {
        let Some(header) = packet.get(..12) else {
            return;
        };
        let seq = u32::from(u16::from_be_bytes([header[2], header[3]]));
        let timestamp = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        let ssrc = u32::from_be_bytes([header[8], header[9], header[10], header[11]]);
        let followed = self
            .seen
            .is_some_and(|at| now.saturating_duration_since(at) < SILENT);
        let epoch = match self.epoch {
            Some(epoch) if ssrc == self.ssrc => epoch,
            Some(_) if followed => return,
            _ => self.restart(ssrc, seq, now),
        };
        let delta = seq.wrapping_sub(self.max_seq & 0xffff) & 0xffff;
        if delta > 0 && delta < MAX_DROPOUT {
            // In order, maybe with a gap; a wrap adds a cycle.
            let cycles = self.max_seq & !0xffff;
            let wrapped = seq < (self.max_seq & 0xffff);
            self.max_seq = (cycles + if wrapped { 0x1_0000 } else { 0 }) | seq;
        } else if (MAX_DROPOUT..=0xffff - MAX_MISORDER).contains(&delta) {
            // A jump (A.1): two packets in sequence after it mean the
            // sender renumbered, and counting starts over; one alone is
            // not counted.
            if self.bad_seq != Some(seq) {
                self.bad_seq = Some((seq + 1) & 0xffff);
                return;
            }
            self.restart(ssrc, seq, now);
        }
        self.received += 1;
        self.seen = Some(now);
        // Jitter: the change in transit time, in RTP clock units (u64
        // microseconds: no overflow for twelve years at 48 kHz).
        let micros = now.duration_since(epoch).as_micros() as u64;
        let arrival = micros.wrapping_mul(u64::from(clock)) / 1_000_000;
        if let Some((last_arrival, last_timestamp)) = self.last {
            // D = (Rj - Ri) - (Sj - Si), the timestamps' difference taken
            // modulo 2^32 so that their wrap is no jump.
            let sent = i64::from(timestamp.wrapping_sub(last_timestamp) as i32);
            let d = (arrival.wrapping_sub(last_arrival) as i64 - sent).unsigned_abs();
            // J += (|D| - J) / 16, kept scaled by 16 to stay in integers.
            self.jitter_q4 = self.jitter_q4 + d - (self.jitter_q4 + 8) / 16;
        }
        self.last = Some((arrival, timestamp));
    }

    /// Starts counting a stream over from `seq`; returns the new epoch.
    fn restart(&mut self, ssrc: u32, seq: u32, now: Instant) -> Instant {
        *self = RtpStats {
            epoch: Some(now),
            ssrc,
            base_seq: seq,
            max_seq: seq,
            ..RtpStats::default()
        };
        now
    }

    /// Packets expected but not received (negative with duplicates is
    /// reported as 0).
    pub fn lost(&self) -> u64 {
        if self.epoch.is_none() {
            return 0;
        }
        let expected = u64::from(self.max_seq.wrapping_sub(self.base_seq)) + 1;
        expected.saturating_sub(self.received)
    }

    /// Packets received.
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Interarrival jitter in milliseconds, for a payload clocked at
    /// `clock` Hz.
    pub fn jitter_ms(&self, clock: u32) -> f64 {
        self.jitter_q4 as f64 / 16.0 * 1000.0 / f64::from(clock.max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn packet(seq: u16, ts: u32, ssrc: u32) -> [u8; 12] {
        let mut p = [0u8; 12];
        p[0] = 0x80;
        p[2..4].copy_from_slice(&seq.to_be_bytes());
        p[4..8].copy_from_slice(&ts.to_be_bytes());
        p[8..12].copy_from_slice(&ssrc.to_be_bytes());
        p
    }

    #[test]
    fn a_steady_stream_has_no_loss_and_no_jitter() {
        let start = Instant::now();
        let mut s = RtpStats::default();
        for i in 0..500u32 {
            let at = start + Duration::from_millis(20 * u64::from(i));
            // Both the sequence number and the timestamp wrap.
            let ts = (u32::MAX - 40_000).wrapping_add(160 * i);
            s.observe(&packet(65_000u16.wrapping_add(i as u16), ts, 7), at, 8000);
        }
        assert_eq!((s.received(), s.lost()), (500, 0), "across the wraps");
        assert!(s.jitter_ms(8000) < 0.01, "{}", s.jitter_ms(8000));
    }

    #[test]
    fn gaps_count_as_lost_and_uneven_arrival_as_jitter() {
        let start = Instant::now();
        let mut s = RtpStats::default();
        for i in (0..100u32).filter(|i| i % 10 != 3) {
            // Every other packet 4 ms late.
            let late = if i % 2 == 0 { 4 } else { 0 };
            let at = start + Duration::from_millis(20 * u64::from(i) + late);
            s.observe(&packet(i as u16, 160 * i, 7), at, 8000);
        }
        assert_eq!(s.lost(), 10);
        let j = s.jitter_ms(8000);
        assert!((3.0..=4.5).contains(&j), "jitter {j} ms for a 4 ms swing");
        // Another SSRC while this one flows (a retransmission stream) is
        // not counted; once it fell silent, a new SSRC (the far end
        // restarted) starts the count over.
        s.observe(
            &packet(500, 0, 8),
            start + Duration::from_millis(1990),
            8000,
        );
        assert_eq!(s.received(), 90);
        s.observe(&packet(9, 0, 8), start + Duration::from_secs(3), 8000);
        assert_eq!((s.received(), s.lost()), (1, 0));
        s.observe(&[0x80, 0], start, 8000); // too short: ignored
        assert_eq!(s.received(), 1);
        // The sender renumbers: one packet far off is not counted, two in
        // sequence start the count over.
        let later = start + Duration::from_secs(4);
        s.observe(&packet(30_000, 0, 8), later, 8000);
        assert_eq!(s.received(), 1);
        s.observe(&packet(30_001, 160, 8), later, 8000);
        s.observe(&packet(30_002, 320, 8), later, 8000);
        assert_eq!((s.received(), s.lost()), (2, 0));
    }
}
