//! Reading back what the relay recorded, as an operator would: the sidecar
//! it writes when a recording ends, the pcap's RTP (through a pcap reader)
//! and the WAV's two channels (through a WAV reader), with the checks the
//! recording tests share.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pcap_file::DataLink;
use pcap_file::pcap::PcapReader;
use serde_json::Value;
use sipline_test_harness::audio::zero_crossing_hz;
use sipline_test_harness::baresip::Baresip;
use sipline_test_harness::kamailio::{Kamailio, Options};

use super::RelayProcess;

/// The sidecar the relay writes when the call's recording ends.
pub fn sidecar(dir: &Path, within: Duration) -> PathBuf {
    let until = Instant::now() + within;
    loop {
        let found = std::fs::read_dir(dir)
            .expect("the recording folder")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "json"));
        if let Some(path) = found {
            return path;
        }
        assert!(Instant::now() < until, "no sidecar in {}", dir.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The content of the first sidecar in `dir`, waited for up to 5 s.
pub fn read_sidecar(dir: &Path) -> Value {
    serde_json::from_slice(
        &std::fs::read(sidecar(dir, Duration::from_secs(5))).expect("the sidecar"),
    )
    .expect("JSON")
}

/// Where the file of `format` the sidecar `meta` names is.
pub fn file_of(dir: &Path, meta: &Value, format: &str) -> PathBuf {
    let f = meta["files"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["format"] == format))
        .unwrap_or_else(|| panic!("no {format} in {meta}"));
    dir.join(f["path"].as_str().expect("a file name"))
}

/// One RTP packet of the pcap: its source address, SSRC, sequence number
/// and time.
pub struct Rtp {
    pub from: [u8; 4],
    pub ssrc: u32,
    pub seq: u16,
    pub at: Duration,
}

/// The RTP packets of the pcap (IPv4, UDP, then RTP version 2), and the
/// sources of its RTCP packets.
pub fn packets(path: &Path) -> (Vec<Rtp>, Vec<[u8; 4]>) {
    packets_up_to(path, false)
}

/// [`packets`], reading only up to a last record cut short when `cut` (a
/// file whose writer was killed).
pub fn packets_up_to(path: &Path, cut: bool) -> (Vec<Rtp>, Vec<[u8; 4]>) {
    let mut reader = PcapReader::new(File::open(path).expect("the pcap")).expect("a pcap file");
    assert_eq!(reader.header().datalink, DataLink::IPV4);
    let mut out = Vec::new();
    let mut rtcp = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let p = match packet {
            Ok(p) => p,
            Err(e) if cut => {
                assert!(
                    reader.next_packet().is_none(),
                    "only the last record may be cut: {e}"
                );
                break;
            }
            Err(e) => panic!("a record cut short: {e}"),
        };
        let d = &p.data;
        assert_eq!(d[0], 0x45, "IPv4 without options");
        assert_eq!(d[9], 17, "UDP");
        let rtp = &d[28..];
        assert_eq!(rtp[0] >> 6, 2, "RTP version 2");
        let from = [d[12], d[13], d[14], d[15]];
        if (192..=223).contains(&rtp[1]) {
            rtcp.push(from);
            continue;
        }
        out.push(Rtp {
            from,
            ssrc: u32::from_be_bytes([rtp[8], rtp[9], rtp[10], rtp[11]]),
            seq: u16::from_be_bytes([rtp[2], rtp[3]]),
            at: p.timestamp,
        });
    }
    (out, rtcp)
}

/// The time from the pcap's first RTP packet to its last.
pub fn media_span(pcap: &Path) -> Duration {
    let (rtp, _) = packets(pcap);
    rtp.iter().map(|p| p.at).max().expect("packets")
        - rtp.iter().map(|p| p.at).min().expect("packets")
}

/// The WAV a sidecar names: its left and right channels, and its rate.
pub fn wav_channels(dir: &Path, meta: &Value) -> (Vec<i16>, Vec<i16>, f64) {
    let mut reader = hound::WavReader::open(file_of(dir, meta, "wav")).expect("a WAV");
    assert_eq!(reader.spec().channels, 2);
    let rate = f64::from(reader.spec().sample_rate);
    let all: Vec<i16> = reader
        .samples::<i16>()
        .map(|s| s.expect("a sample"))
        .collect();
    let left = all.iter().step_by(2).copied().collect();
    let right = all.iter().skip(1).step_by(2).copied().collect();
    (left, right, rate)
}

/// The middle second of the channels holds `left_hz` on the left and
/// `right_hz` on the right (within 30 Hz, by zero crossings).
pub fn assert_tones(left: &[i16], right: &[i16], rate: f64, left_hz: f64, right_hz: f64) {
    let half = rate as usize / 2;
    let mid = left.len() / 2;
    let second = mid - half..mid + half;
    let (l, r) = (
        zero_crossing_hz(&left[second.clone()], rate),
        zero_crossing_hz(&right[second], rate),
    );
    assert!(
        (l - left_hz).abs() < 30.0,
        "left (the browser) is {l:.0} Hz"
    );
    assert!(
        (r - right_hz).abs() < 30.0,
        "right (the far end) is {r:.0} Hz"
    );
}

/// `frames` at `rate` last `secs` within half a second.
pub fn assert_lasts(frames: usize, rate: f64, secs: f64, what: &str) {
    let got = frames as f64 / rate;
    assert!(
        (got - secs).abs() < 0.5,
        "{got:.3} s of WAV for {secs:.3} s of {what}"
    );
}

/// Kamailio from Debian, a far end registered behind it (`far`, given the
/// registrar's address), and the relay binary in front of it with `args`.
pub fn behind_kamailio(
    far: impl FnOnce(SocketAddr) -> Baresip,
    args: &[&str],
) -> (Kamailio, Baresip, RelayProcess) {
    let kamailio = Kamailio::start(&Options::default()).expect("kamailio");
    let registrar: SocketAddr = ([127, 0, 0, 1], kamailio.udp_port).into();
    let far = far(registrar);
    let relay = RelayProcess::start(registrar, args);
    (kamailio, far, relay)
}
