//! Recording a call's media, the files' half: one thread that drains every
//! recorded call's ring ([`crate::media::record`]) and writes, per call and
//! as its formats say, a pcap of its plain RTP and RTCP both ways and a
//! stereo WAV of its audio when it is G.711, G.722 or Opus (left the
//! browser, right the far end, 16-bit, at 8 kHz or 16 kHz, decoded by
//! [`crate::media::decode`] and laid out by [`crate::media::stereo`]); and
//! when the call ends a JSON sidecar naming the files with their SHA-256,
//! the codec and the DTMF either side pressed.
//!
//! The thread wakes every [`TICK`] and drains each ring into its files'
//! buffers; every [`FLUSH`] it flushes them, so a relay killed mid-call
//! leaves a pcap whose records up to the last flush are whole (pcap has no
//! length in its header: a reader stops at the last whole record), and a
//! WAV whose header, rewritten at each flush, covers its samples up to
//! then. (Flushing at every tick cost twice the CPU a recorded packet
//! takes, in system calls: see the README's cost of recording.) Nothing
//! here runs on the packet path; a write that fails (the disk is full) ends
//! that recording, which the packet path then sees as a ring nobody reads,
//! and the call goes on.
//!
//! Each start and end is also an event on the admin stream
//! (`recording_started`, `recording_stopped` with the sidecar's content
//! and its path), for an operator's script that ships the files elsewhere.
//!
//! The pcap is `LINKTYPE_IPV4`: each packet behind an IPv4 and UDP header
//! made up here, the browser side at 192.0.2.1 and the far side (the PBX,
//! or the echo) at 192.0.2.2, each leg on its own ports (audio 5004 for
//! RTP, 5005 for RTCP; video 5006 and 5007), so Wireshark's RTP player
//! tells the streams apart (Decode As RTP on those ports, or
//! `tshark -d udp.port==5004,rtp`).

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::media::decode::{self, Codec, Decoder};
use crate::media::dtmf::{KeyPress, KeyPresses, Presser};
use crate::media::record::{Formats, HEADER_LEN, Header, Sink, Starter, Way};
use crate::media::stereo::Stereo;

/// How often the writer drains the rings.
pub const TICK: Duration = Duration::from_millis(20);

/// How often it flushes the files (and rewrites the WAVs' headers): what a
/// relay killed mid-call may lose of its recordings.
pub const FLUSH: Duration = Duration::from_millis(200);

/// Each pcap's write buffer: more than a call's packets between flushes.
const PCAP_BUFFER: usize = 32 * 1024;

/// The browser's side of the made-up IPv4 header.
const BROWSER_IP: [u8; 4] = [192, 0, 2, 1];
/// The far side's (the PBX's, or the echo's).
const FAR_IP: [u8; 4] = [192, 0, 2, 2];
/// The first leg's RTP port in the pcap; RTCP is the next, and each leg
/// after takes the next two.
const FIRST_PORT: u16 = 5004;
/// The made-up IPv4 and UDP headers' length.
const IP_UDP_LEN: usize = 28;

/// The recordings' figures for `/metrics`: kept by the writer thread,
/// read at scrape time.
#[derive(Clone, Debug, Default)]
pub struct RecordingFigures(Arc<Figures>);

#[derive(Debug, Default)]
struct Figures {
    active: AtomicU64,
    bytes: AtomicU64,
    complete: AtomicU64,
    behind: AtomicU64,
    write_failed: AtomicU64,
}

impl Collector for RecordingFigures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let f = &self.0;
        let read = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let active = ConstGauge::new(read(&f.active) as i64);
        active.encode(encoder.encode_descriptor(
            "sipline_recordings_active",
            "Calls being recorded",
            None,
            active.metric_type(),
        )?)?;
        let bytes = ConstCounter::new(read(&f.bytes));
        bytes.encode(encoder.encode_descriptor(
            "sipline_recording_bytes",
            "Bytes written to recordings",
            None,
            bytes.metric_type(),
        )?)?;
        let mut ended = encoder.encode_descriptor(
            "sipline_recordings",
            "Recordings ended, by outcome: complete, or stopped because the writer fell \
             behind or a write failed (the disk is full)",
            None,
            MetricType::Counter,
        )?;
        for (outcome, n) in [
            ("complete", &f.complete),
            ("behind", &f.behind),
            ("write_failed", &f.write_failed),
        ] {
            ConstCounter::new(read(n)).encode(ended.encode_family(&[("outcome", outcome)])?)?;
        }
        Ok(())
    }
}

/// The handle the relay starts recordings with.
#[derive(Clone, Debug)]
pub struct Recorder {
    starts: mpsc::Sender<Sink>,
}

/// The admin event stream's sender: `(name, JSON)`.
pub type AdminEvents = broadcast::Sender<(&'static str, String)>;

impl Recorder {
    /// Starts the writer thread, its files going to `dir` (made if
    /// missing), its figures kept in `figures`, its starts and ends told
    /// to `admin`.
    pub fn start(
        dir: &Path,
        formats: Formats,
        figures: RecordingFigures,
        admin: AdminEvents,
    ) -> io::Result<Recorder> {
        std::fs::create_dir_all(dir)?;
        let (starts, rx) = mpsc::channel();
        let dir = dir.to_owned();
        std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || run(&dir, formats, &rx, &figures.0, &admin))?;
        Ok(Recorder { starts })
    }

    /// Records the call whose ring `sink` reads.
    pub fn record(&self, sink: Sink) {
        if self.starts.send(sink).is_err() {
            warn!("the recorder thread is gone: a call is not recorded");
        }
    }
}

/// A recording's buffered file, shared by its pcap writer (which has no
/// way to flush what it owns) and the recording (which flushes it each
/// tick). Only the recorder thread touches it.
#[derive(Clone)]
struct Out(Rc<RefCell<BufWriter<File>>>);

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.borrow_mut().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

/// One call being recorded.
struct Recording {
    sink: Sink,
    /// The pcap's writer and its file, unless only the WAV is written.
    pcap: Option<(PcapWriter<Out>, Out)>,
    /// Whether a WAV is written.
    wav_on: bool,
    /// The files' path but for the extension (the pcap's).
    path: PathBuf,
    /// Wall-clock time of the ring's zero (its first packet), known once
    /// a packet arrived.
    zero: Option<Duration>,
    started: SystemTime,
    packets: [u64; 2],
    /// Why it stopped before the call ended.
    failure: Option<Failure>,
    /// The packet being copied out of the ring, behind its IP/UDP header.
    frame: Vec<u8>,
    /// Bytes written and not yet counted in the figures.
    unreported: u64,
    /// The audio laid out for the WAV, and its codec, once audio came.
    stereo: Option<(Stereo, Codec)>,
    /// Each side's decoder, and the payload type it decodes.
    decoders: [Option<(u8, Decoder)>; 2],
    /// The WAV, once audio it can decode arrived.
    wav: Option<hound::WavWriter<BufWriter<File>>>,
    /// A WAV was written and closed.
    wav_done: bool,
    /// A packet's decoded samples.
    samples: Vec<i16>,
    /// The DTMF either side sent.
    keys: KeyPresses,
}

/// Why a recording stopped before its call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// The writer fell behind: the ring filled.
    Behind,
    /// Writing the file failed (the disk is full).
    Write,
}

impl Failure {
    fn as_str(self) -> &'static str {
        match self {
            Failure::Behind => "the writer fell behind",
            Failure::Write => "a write failed",
        }
    }
}

/// What the sidecar says of a recording.
#[derive(Serialize)]
struct Sidecar<'a> {
    call_id: &'a str,
    /// Who started it: `policy`, `app` or `operator`.
    started_by: Starter,
    /// The URIs of the call's From and To, as the message that started
    /// the recording had them (`null` when unknown).
    from: Option<&'a str>,
    to: Option<&'a str>,
    started_unix_ms: u128,
    ended_unix_ms: u128,
    /// Whole: every packet of the call is in it.
    complete: bool,
    failure: Option<&'a str>,
    packets_from_browser: u64,
    packets_to_browser: u64,
    /// The audio codec the WAV was decoded from (`null`: no WAV).
    codec: Option<&'static str>,
    /// The keys either side pressed (RFC 4733 telephone-events), each
    /// with when in the recording it began and how long it lasted.
    dtmf: &'a [KeyPress],
    files: Vec<FileEntry>,
}

#[derive(Serialize)]
struct FileEntry {
    path: String,
    format: &'static str,
    bytes: u64,
    sha256: String,
}

/// The `recording_started` event's data.
#[derive(Serialize)]
struct Started<'a> {
    call_id: &'a str,
    started_by: Starter,
    path: String,
}

/// The `recording_stopped` event's data: the sidecar's, and where it is
/// (`null` when it could not be written).
#[derive(Serialize)]
struct Stopped<'a> {
    #[serde(flatten)]
    sidecar: &'a Sidecar<'a>,
    sidecar_path: Option<String>,
}

fn run(
    dir: &Path,
    formats: Formats,
    starts: &mpsc::Receiver<Sink>,
    figures: &Figures,
    admin: &AdminEvents,
) {
    let mut recordings: Vec<Recording> = Vec::new();
    let mut flushed = std::time::Instant::now();
    loop {
        match starts.recv_timeout(TICK) {
            Ok(sink) => match Recording::create(dir, formats, sink) {
                Ok(r) => {
                    // Where its first file goes (the WAV's when alone).
                    let path = if formats.pcap {
                        r.path.clone()
                    } else {
                        r.path.with_extension("wav")
                    };
                    info!(path = %path.display(), "recording started");
                    figures.active.fetch_add(1, Ordering::Relaxed);
                    let started = Started {
                        call_id: &r.sink.call_id,
                        started_by: r.sink.by,
                        path: path.display().to_string(),
                    };
                    if let Ok(json) = serde_json::to_string(&started) {
                        // Nobody listening is no error.
                        let _ = admin.send(("recording_started", json));
                    }
                    recordings.push(r);
                }
                Err(e) => {
                    warn!(error = %e, "a recording could not be started");
                    figures.write_failed.fetch_add(1, Ordering::Relaxed);
                }
            },
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) if recordings.is_empty() => return,
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(TICK),
        }
        let flush = flushed.elapsed() >= FLUSH;
        if flush {
            flushed = std::time::Instant::now();
        }
        for r in &mut recordings {
            let written = r.drain(flush);
            figures.bytes.fetch_add(written, Ordering::Relaxed);
        }
        // A call whose session is gone (its media ended) and whose ring is
        // empty is finished; so is one whose file failed.
        recordings.retain_mut(|r| {
            let over =
                r.failure.is_some() || (r.sink.ring.is_abandoned() && r.sink.ring.is_empty());
            if over {
                // Counted before the sidecar appears: whoever waits for it
                // finds the figures final.
                let last = r.close();
                figures.bytes.fetch_add(last, Ordering::Relaxed);
                figures.active.fetch_sub(1, Ordering::Relaxed);
                let outcome = match r.failure {
                    None => &figures.complete,
                    Some(Failure::Behind) => &figures.behind,
                    Some(Failure::Write) => &figures.write_failed,
                };
                outcome.fetch_add(1, Ordering::Relaxed);
                r.finish(admin);
            }
            !over
        });
    }
}

/// A file name from a Call-ID: its letters, digits and `-._` kept, the
/// rest `_` (a Call-ID is the far end's text).
fn file_stem(call_id: &str, started: SystemTime) -> String {
    let ms = started
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let safe: String = call_id
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-._".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{ms}-{safe}")
}

impl Recording {
    fn create(dir: &Path, formats: Formats, sink: Sink) -> io::Result<Recording> {
        let started = SystemTime::now();
        let path = dir.join(format!("{}.pcap", file_stem(&sink.call_id, started)));
        Recording::open(path, formats, started, sink)
    }

    fn open(
        path: PathBuf,
        formats: Formats,
        started: SystemTime,
        sink: Sink,
    ) -> io::Result<Recording> {
        let pcap = if formats.pcap {
            let header = PcapHeader {
                datalink: DataLink::IPV4,
                ..PcapHeader::default()
            };
            let out = Out(Rc::new(RefCell::new(BufWriter::with_capacity(
                PCAP_BUFFER,
                File::create(&path)?,
            ))));
            let pcap = PcapWriter::with_header(out.clone(), header).map_err(io::Error::other)?;
            Some((pcap, out))
        } else {
            None
        };
        Ok(Recording {
            sink,
            // The pcap file header, written already.
            unreported: if pcap.is_some() { 24 } else { 0 },
            pcap,
            wav_on: formats.wav,
            path,
            zero: None,
            started,
            packets: [0; 2],
            failure: None,
            frame: vec![0u8; IP_UDP_LEN + usize::from(u16::MAX)],
            stereo: None,
            decoders: [None, None],
            wav: None,
            wav_done: false,
            samples: Vec::with_capacity(decode::MAX_SAMPLES),
            keys: KeyPresses::default(),
        })
    }

    /// Copies every whole record out of the ring into the files' buffers,
    /// and flushes them when `flush`; the bytes written.
    fn drain(&mut self, flush: bool) -> u64 {
        let mut written = std::mem::take(&mut self.unreported);
        let mut h = [0u8; HEADER_LEN];
        while self.failure.is_none() && self.sink.ring.slots() >= HEADER_LEN {
            // The tap commits a header and its packet at once.
            if self.sink.ring.pop_entire_slice(&mut h).is_err() {
                break;
            }
            let header = Header::decode(&h);
            let len = usize::from(header.len);
            let body = &mut self.frame[IP_UDP_LEN..IP_UDP_LEN + len];
            if self.sink.ring.pop_entire_slice(body).is_err() {
                // The tap commits whole records: not reached.
                break;
            }
            let zero = *self.zero.get_or_insert_with(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
            });
            if let Some((pcap, _)) = self.pcap.as_mut() {
                ip_udp_header(&mut self.frame[..IP_UDP_LEN], &header);
                let at = zero + Duration::from_micros(header.micros);
                let data = &self.frame[..IP_UDP_LEN + len];
                let packet = PcapPacket::new(at, data.len() as u32, data);
                match pcap.write_packet(&packet) {
                    Ok(n) => written += n as u64,
                    Err(e) => {
                        self.fail(Failure::Write, &e.to_string());
                        break;
                    }
                }
            }
            self.packets[usize::from(header.way == Way::ToBrowser)] += 1;
            if header.leg == 0 && !header.rtcp {
                self.hear(&header, len);
            }
        }
        if self.failure.is_none()
            && let Err(e) = self.write_audio(false, flush)
        {
            self.fail(Failure::Write, &e.to_string());
        }
        if self.failure.is_none() && self.sink.overflowed() {
            self.fail(Failure::Behind, "the ring is full");
        }
        if flush
            && self.failure.is_none()
            && let Some((_, out)) = self.pcap.as_mut()
            && let Err(e) = out.flush()
        {
            self.fail(Failure::Write, &e.to_string());
        }
        written
    }

    /// The audio of the RTP packet behind `header` in `frame`, to the
    /// stereo layout when its codec is one the WAV can hold: the first
    /// decodable packet sets the WAV's codec and rate; a later codec of
    /// another rate (after a re-INVITE) is in the pcap only.
    fn hear(&mut self, header: &Header, len: usize) {
        let rtp = &self.frame[IP_UDP_LEN..IP_UDP_LEN + len];
        let Some((payload_type, timestamp, payload)) = rtp_payload(rtp) else {
            return;
        };
        if let Some(&(_, clock)) = self.sink.events.iter().find(|(pt, _)| *pt == payload_type) {
            let from = match header.way {
                Way::FromBrowser => Presser::Browser,
                Way::ToBrowser => Presser::FarEnd,
            };
            self.keys
                .packet(from, header.micros / 1000, timestamp, clock, payload);
            return;
        }
        if !self.wav_on {
            return;
        }
        let Some(codec) = Codec::of_static(payload_type).or_else(|| {
            self.sink
                .codecs
                .iter()
                .find(|(pt, _)| *pt == payload_type)
                .map(|(_, c)| *c)
        }) else {
            return;
        };
        if self.wav_done {
            return;
        }
        let (stereo, _) = self
            .stereo
            .get_or_insert_with(|| (Stereo::new(codec.rate()), codec));
        if stereo.rate() != u64::from(codec.rate()) {
            return;
        }
        let channel = usize::from(header.way == Way::ToBrowser);
        let decoder = match &mut self.decoders[channel] {
            Some((pt, d)) if *pt == payload_type => d,
            slot => match Decoder::new(codec) {
                Ok(d) => &mut slot.insert((payload_type, d)).1,
                Err(e) => {
                    warn!(error = %e, "no decoder: the WAV goes without this audio");
                    return;
                }
            },
        };
        // A payload that does not decode (a lost or damaged packet) is a
        // gap, silence in the WAV; the pcap has it as it came.
        if decoder.decode(payload, &mut self.samples).is_err() {
            return;
        }
        let arrived = header.micros * stereo.rate() / 1_000_000;
        stereo.add(channel, arrived, timestamp, codec.clock(), &self.samples);
        if self.wav.is_none() {
            let spec = hound::WavSpec {
                channels: 2,
                sample_rate: codec.rate(),
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            match hound::WavWriter::create(self.path.with_extension("wav"), spec) {
                Ok(w) => {
                    // Its header: 44 bytes for 16-bit PCM.
                    self.unreported += 44;
                    self.wav = Some(w);
                }
                Err(e) => self.fail(Failure::Write, &e.to_string()),
            }
        }
    }

    /// Writes the stereo frames that are ready (all of them at the end) to
    /// the WAV; with `flush`, rewrites its header and flushes it, so the
    /// file is whole up to here.
    fn write_audio(&mut self, all: bool, flush: bool) -> Result<(), hound::Error> {
        let (Some(wav), Some((stereo, _))) = (self.wav.as_mut(), self.stereo.as_mut()) else {
            return Ok(());
        };
        let frames = stereo.ready(all);
        let samples = u32::try_from(frames.len() * 2).unwrap_or(u32::MAX);
        // One bounds check for the lot, not one a sample.
        let mut writer = wav.get_i16_writer(samples);
        for [left, right] in frames {
            writer.write_sample(left);
            writer.write_sample(right);
        }
        writer.flush()?;
        self.unreported += u64::from(samples) * 2;
        if flush {
            wav.flush()?;
        }
        Ok(())
    }

    fn fail(&mut self, failure: Failure, detail: &str) {
        warn!(path = %self.path.display(), why = failure.as_str(), detail, "recording stopped");
        self.failure = Some(failure);
    }

    /// Closes the files: the WAV's last frames written and its header
    /// made final. The bytes written since the last count.
    fn close(&mut self) -> u64 {
        if let Some((_, out)) = self.pcap.as_mut() {
            let _ = out.flush();
            let _ = out.0.borrow().get_ref().sync_all();
        }
        if self.failure.is_none() {
            let _ = self.write_audio(true, true);
        }
        if let Some(wav) = self.wav.take() {
            let _ = wav.finalize();
            self.wav_done = true;
        }
        std::mem::take(&mut self.unreported)
    }

    /// Writes the sidecar beside the files (closed by [`Self::close`]),
    /// and tells `admin`.
    fn finish(&mut self, admin: &AdminEvents) {
        let wav_path = self.wav_done.then(|| self.path.with_extension("wav"));
        let ms = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis();
        let mut files = Vec::new();
        let pcap_path = self.pcap.is_some().then(|| self.path.clone());
        for (path, format) in [(pcap_path, "pcap"), (wav_path, "wav")] {
            let Some(path) = path else { continue };
            match file_digest(&path) {
                Ok((bytes, sha256)) => files.push(FileEntry {
                    path: path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    format,
                    bytes,
                    sha256,
                }),
                Err(e) => warn!(path = %path.display(), error = %e, "recording unreadable"),
            }
        }
        let parties = self.sink.parties.as_ref();
        let sidecar = Sidecar {
            call_id: &self.sink.call_id,
            started_by: self.sink.by,
            from: parties.map(|(f, _)| f.as_str()),
            to: parties.map(|(_, t)| t.as_str()),
            started_unix_ms: ms(self.started),
            ended_unix_ms: ms(SystemTime::now()),
            complete: self.failure.is_none(),
            failure: self.failure.map(Failure::as_str),
            packets_from_browser: self.packets[0],
            packets_to_browser: self.packets[1],
            codec: self
                .wav_done
                .then_some(self.stereo.as_ref())
                .flatten()
                .map(|(_, c)| c.name()),
            dtmf: self.keys.presses(),
            files,
        };
        let json_path = self.path.with_extension("json");
        let written = serde_json::to_vec_pretty(&sidecar)
            .map_err(io::Error::other)
            .and_then(|json| std::fs::write(&json_path, json));
        let sidecar_path = match written {
            Ok(()) => {
                info!(
                    path = %self.path.display(),
                    sidecar = %json_path.display(),
                    complete = sidecar.complete,
                    "recording finished"
                );
                Some(json_path.display().to_string())
            }
            Err(e) => {
                warn!(path = %json_path.display(), error = %e, "sidecar not written");
                None
            }
        };
        let stopped = Stopped {
            sidecar: &sidecar,
            sidecar_path,
        };
        if let Ok(json) = serde_json::to_string(&stopped) {
            let _ = admin.send(("recording_stopped", json));
        }
    }
}

/// An RTP packet's payload type, timestamp and payload (past its CSRCs
/// and header extension, without its padding), if it is one.
fn rtp_payload(rtp: &[u8]) -> Option<(u8, u32, &[u8])> {
    let first = *rtp.first()?;
    if first >> 6 != 2 {
        return None;
    }
    let mut start = 12 + 4 * usize::from(first & 0x0f);
    if first & 0x10 != 0 {
        let words = u16::from_be_bytes(rtp.get(start + 2..start + 4)?.try_into().ok()?);
        start += 4 + 4 * usize::from(words);
    }
    let padding = if first & 0x20 != 0 {
        usize::from(*rtp.last()?)
    } else {
        0
    };
    let payload = rtp.get(start..rtp.len().checked_sub(padding)?)?;
    let timestamp = u32::from_be_bytes(rtp.get(4..8)?.try_into().ok()?);
    Some((rtp.get(1)? & 0x7f, timestamp, payload))
}

/// The file's length and SHA-256, hex.
fn file_digest(path: &Path) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut hash = Sha256::new();
    let mut buf = [0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        total += n as u64;
    }
    let hex = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((total, hex))
}

/// The made-up IPv4 and UDP headers in front of a recorded packet (see the
/// module's text for the addresses and ports).
fn ip_udp_header(out: &mut [u8], h: &Header) {
    let udp_len = 8 + h.len;
    let total = 20 + udp_len;
    let port = FIRST_PORT + 2 * u16::from(h.leg) + u16::from(h.rtcp);
    let (src, dst) = match h.way {
        Way::FromBrowser => (BROWSER_IP, FAR_IP),
        Way::ToBrowser => (FAR_IP, BROWSER_IP),
    };
    out[..20].copy_from_slice(&[
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, src[0], src[1], src[2], src[3], dst[0], dst[1],
        dst[2], dst[3],
    ]);
    out[2..4].copy_from_slice(&total.to_be_bytes());
    let checksum = ipv4_checksum(&out[..20]);
    out[10..12].copy_from_slice(&checksum.to_be_bytes());
    out[20..22].copy_from_slice(&port.to_be_bytes());
    out[22..24].copy_from_slice(&port.to_be_bytes());
    out[24..26].copy_from_slice(&udp_len.to_be_bytes());
    // No UDP checksum: IPv4 allows none.
    out[26..28].copy_from_slice(&[0, 0]);
}

/// RFC 791's header checksum (the checksum field zero while summing).
fn ipv4_checksum(header: &[u8]) -> u16 {
    let mut sum = 0u32;
    for pair in header.chunks(2) {
        let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests;
