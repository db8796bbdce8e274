//! Recording a call's media, the packet path's half: the session hands
//! each plain RTP and RTCP packet it carries (decrypted from the browser,
//! or as the PBX sent it) to its [`Tap`], which copies it into a bounded
//! lock-free ring and returns at once. The writer (`net::recorder`) drains
//! the ring on its own thread, away from the packet path, and writes the
//! files.
//!
//! No allocation, lock or system call per packet: the ring is allocated
//! when the call's recording starts, a packet is one copy into it, and
//! the two sides share nothing else but the ring's indices. When the
//! writer falls behind and the ring is full, the recording stops: the
//! packet that did not fit and every one after it are not recorded (a
//! recording with a hole in it would mislead whoever listens to it), the
//! writer is told by [`Sink::overflowed`], and the call's media goes on
//! untouched.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use rtrb::{Consumer, Producer, RingBuffer};
use serde::{Deserialize, Serialize};

use super::decode::Codec;

/// Which calls are recorded (`[recording] mode`).
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RecordingMode {
    /// None: a request to record is refused (`403`).
    #[default]
    Off,
    /// The calls the app (an in-dialog INFO with `Record: on`) or the
    /// operator (the admin API) asks for, from then until asked to stop.
    OnDemand,
    /// Every call with media, from its first packet to its end.
    All,
}

/// What a recording is written as (`[recording] formats`).
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RecordingFormat {
    /// A stereo WAV of the audio (G.711, G.722, Opus).
    Wav,
    /// A pcap of the plain RTP and RTCP of every leg, both ways.
    Pcap,
}

/// Which files each recording is written as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Formats {
    /// The stereo WAV.
    pub wav: bool,
    /// The pcap.
    pub pcap: bool,
}

impl Formats {
    /// The formats a list names.
    pub fn of(list: &[RecordingFormat]) -> Formats {
        Formats {
            wav: list.contains(&RecordingFormat::Wav),
            pcap: list.contains(&RecordingFormat::Pcap),
        }
    }
}

/// Who started a recording (the sidecar names it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Starter {
    /// The configuration (`mode = "all"`).
    Policy,
    /// The browser's app, with an INFO carrying `Record: on`.
    App,
    /// The operator, through the admin API.
    Operator,
}

/// Bytes of ring per recorded call: at 50 packets a second each way of up
/// to 200 bytes (G.711, Opus) about 3 s of audio, and half a second of a
/// 1 Mbit/s video call, against a writer that drains it every 20 ms.
/// Should the writer still fall that far behind, the recording stops
/// rather than delay anything.
pub const RING_BYTES: usize = 64 * 1024;

/// The bytes before each packet in the ring (see [`Header`]).
pub const HEADER_LEN: usize = 12;

/// Which way a recorded packet went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// From the browser (decrypted), toward the PBX or the echo.
    FromBrowser,
    /// Toward the browser (before encryption), from the PBX or the echo.
    ToBrowser,
}

/// What the ring holds before each packet: when it passed (microseconds
/// since the recording's first packet), which way, which leg (audio 0,
/// video 1), RTP or RTCP, and its length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Microseconds since the recording's first packet.
    pub micros: u64,
    /// Which way it went.
    pub way: Way,
    /// The media section (leg) it belongs to.
    pub leg: u8,
    /// RTCP rather than RTP.
    pub rtcp: bool,
    /// The packet's length in bytes.
    pub len: u16,
}

impl Header {
    /// The header's bytes: `micros` (8, big-endian), a flags byte (bit 0:
    /// toward the browser, bit 1: RTCP), the leg, the length (2).
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..8].copy_from_slice(&self.micros.to_be_bytes());
        out[8] = u8::from(self.way == Way::ToBrowser) | (u8::from(self.rtcp) << 1);
        out[9] = self.leg;
        out[10..].copy_from_slice(&self.len.to_be_bytes());
        out
    }

    /// A header read back from the ring.
    pub fn decode(b: &[u8; HEADER_LEN]) -> Header {
        let mut micros = [0u8; 8];
        micros.copy_from_slice(&b[..8]);
        Header {
            micros: u64::from_be_bytes(micros),
            way: if b[8] & 1 == 1 {
                Way::ToBrowser
            } else {
                Way::FromBrowser
            },
            rtcp: b[8] & 2 == 2,
            leg: b[9],
            len: u16::from_be_bytes([b[10], b[11]]),
        }
    }
}

/// The packet path's end of one call's recording, held by its session.
#[derive(Debug)]
pub struct Tap {
    ring: Producer<u8>,
    /// The time of the first packet: the recording's zero.
    start: Option<Instant>,
    /// Set once, when a packet did not fit: nothing more is recorded.
    overflowed: Arc<AtomicBool>,
    /// Set when the recording is over for any reason.
    over: Arc<AtomicBool>,
}

/// Tells whoever started a recording whether it is still going: it is
/// over once its writer finished it (the tap was dropped, or a write
/// failed), or the writer fell behind.
#[derive(Clone, Debug)]
pub struct Watch(Arc<AtomicBool>);

impl Watch {
    /// Whether the recording is over.
    pub fn is_over(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The writer's end of one call's recording.
#[derive(Debug)]
pub struct Sink {
    /// The packets, each after its [`Header`].
    pub ring: Consumer<u8>,
    /// The call's SIP Call-ID, for the file names and the sidecar.
    pub call_id: String,
    /// Who called and whom (the URIs of From and To), for the sidecar,
    /// when the signalling named them.
    pub parties: Option<(String, String)>,
    /// Who started it.
    pub by: Starter,
    /// The audio payload types the call's SDP named, and their codecs, for
    /// the WAV (RTP's static types are known without).
    pub codecs: Vec<(u8, Codec)>,
    /// The payload types of its telephone-events (RFC 4733), with their
    /// clock rates, for the DTMF the sidecar lists.
    pub events: Vec<(u8, u32)>,
    overflowed: Arc<AtomicBool>,
    over: Arc<AtomicBool>,
}

impl Drop for Sink {
    /// The writer is done with the recording: it is over.
    fn drop(&mut self) {
        self.over.store(true, Ordering::Release);
    }
}

impl Sink {
    /// Whether the writer fell behind and the recording stopped (the
    /// packets already in the ring are still whole and in order).
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Acquire)
    }
}

/// A recording started by `by`: its two ends, its ring of `bytes`
/// allocated now.
pub fn channel(call_id: &str, by: Starter, bytes: usize) -> (Tap, Sink) {
    let (producer, consumer) = RingBuffer::new(bytes);
    let overflowed = Arc::new(AtomicBool::new(false));
    let over = Arc::new(AtomicBool::new(false));
    (
        Tap {
            ring: producer,
            start: None,
            overflowed: overflowed.clone(),
            over: over.clone(),
        },
        Sink {
            ring: consumer,
            call_id: call_id.to_owned(),
            parties: None,
            by,
            codecs: Vec::new(),
            events: Vec::new(),
            overflowed,
            over,
        },
    )
}

impl Tap {
    /// A handle that says whether this recording is over.
    pub fn watch(&self) -> Watch {
        Watch(self.over.clone())
    }

    /// Whether nothing more is recorded: the ring filled, or the writer
    /// gave the recording up.
    pub fn is_stopped(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed) || self.ring.is_abandoned()
    }

    /// Records `packet` (plain RTP or RTCP of `leg`) that went `way` at
    /// `now`. Never blocks; a packet that does not fit stops the
    /// recording. A packet after the writer ended it (its disk failed)
    /// is not recorded either.
    pub fn packet(&mut self, now: Instant, way: Way, leg: usize, rtcp: bool, packet: &[u8]) {
        if self.is_stopped() {
            return;
        }
        let Ok(len) = u16::try_from(packet.len()) else {
            return;
        };
        let start = *self.start.get_or_insert(now);
        let header = Header {
            micros: u64::try_from(now.saturating_duration_since(start).as_micros())
                .unwrap_or(u64::MAX),
            way,
            leg: u8::try_from(leg).unwrap_or(u8::MAX),
            rtcp,
            len,
        }
        .encode();
        // One commit for the header and the packet: the writer sees whole
        // records only. (`write_chunk` zeroes the space first, then two
        // block copies fill it: faster than filling it byte by byte.)
        match self.ring.write_chunk(HEADER_LEN + packet.len()) {
            Ok(mut chunk) => {
                let (first, second) = chunk.as_mut_slices();
                copy_across(&header, first, second, 0);
                copy_across(packet, first, second, HEADER_LEN);
                chunk.commit_all();
            }
            Err(_) => {
                self.overflowed.store(true, Ordering::Release);
                self.over.store(true, Ordering::Release);
            }
        }
    }
}

/// Copies `src` to offset `at` of the space made of `first` then
/// `second` (a ring's free space, which may wrap around its end).
fn copy_across(src: &[u8], first: &mut [u8], second: &mut [u8], at: usize) {
    let in_first = first.len().saturating_sub(at).min(src.len());
    if let Some(dst) = first.get_mut(at..at + in_first) {
        dst.copy_from_slice(&src[..in_first]);
    }
    let rest = &src[in_first..];
    let from = at.saturating_sub(first.len());
    if let Some(dst) = second.get_mut(from..from + rest.len()) {
        dst.copy_from_slice(rest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Every record the ring holds, as the writer reads them.
    fn drain(sink: &mut Sink) -> Vec<(Header, Vec<u8>)> {
        let mut out = Vec::new();
        let mut h = [0u8; HEADER_LEN];
        while sink.ring.slots() >= HEADER_LEN {
            sink.ring.pop_entire_slice(&mut h).expect("a whole header");
            let header = Header::decode(&h);
            let mut body = vec![0u8; usize::from(header.len)];
            sink.ring
                .pop_entire_slice(&mut body)
                .expect("a whole packet");
            out.push((header, body));
        }
        out
    }

    #[test]
    fn packets_arrive_whole_in_order_with_their_way_leg_and_time() {
        let (mut tap, mut sink) = channel("call-1@x", Starter::Policy, 1024);
        let t0 = Instant::now();
        tap.packet(t0, Way::FromBrowser, 0, false, &[0x80, 0, 0, 1]);
        tap.packet(
            t0 + Duration::from_millis(20),
            Way::ToBrowser,
            1,
            true,
            &[0x81, 200],
        );
        let got = drain(&mut sink);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.way, Way::FromBrowser);
        assert_eq!(
            (got[0].0.micros, got[0].0.leg, got[0].0.rtcp),
            (0, 0, false)
        );
        assert_eq!(got[0].1, [0x80, 0, 0, 1]);
        assert_eq!(got[1].0.way, Way::ToBrowser);
        assert_eq!(
            (got[1].0.micros, got[1].0.leg, got[1].0.rtcp),
            (20_000, 1, true)
        );
        assert_eq!(got[1].1, [0x81, 200]);
        assert!(!sink.overflowed());
        assert_eq!(sink.call_id, "call-1@x");
    }

    #[test]
    fn records_that_wrap_around_the_ring_s_end_come_out_whole() {
        let (mut tap, mut sink) = channel("c", Starter::Policy, 100);
        let now = Instant::now();
        for round in 0..20u8 {
            let packet: Vec<u8> = (0..30).map(|i| round ^ i).collect();
            tap.packet(now, Way::FromBrowser, 0, false, &packet);
            let got = drain(&mut sink);
            assert_eq!(got.len(), 1, "round {round}");
            assert_eq!(got[0].1, packet, "round {round}");
        }
        assert!(!sink.overflowed());
    }

    #[test]
    fn a_full_ring_stops_the_recording_without_a_partial_record() {
        let (mut tap, mut sink) = channel("c", Starter::Policy, 64);
        let watch = tap.watch();
        let now = Instant::now();
        let packet = [0x80u8; 40];
        tap.packet(now, Way::FromBrowser, 0, false, &packet);
        assert!(!watch.is_over());
        // The second does not fit: the recording stops, for good.
        tap.packet(now, Way::ToBrowser, 0, false, &packet);
        assert!(sink.overflowed());
        assert!(watch.is_over());
        let got = drain(&mut sink);
        assert_eq!(got.len(), 1);
        tap.packet(now, Way::FromBrowser, 0, false, &[0x80; 4]);
        assert!(drain(&mut sink).is_empty());
    }

    #[test]
    fn a_writer_that_gave_up_is_not_written_to() {
        let (mut tap, sink) = channel("c", Starter::Policy, 64);
        let watch = tap.watch();
        assert!(!tap.is_stopped());
        assert!(!watch.is_over());
        drop(sink);
        assert!(watch.is_over(), "whoever started it sees it over");
        tap.packet(Instant::now(), Way::FromBrowser, 0, false, &[0x80; 4]);
        assert!(tap.is_stopped());
    }
}
