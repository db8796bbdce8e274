//! The recorder's tests: real files in a scratch folder, read back with
//! pcap and WAV readers.

use super::*;
use sipline_test_harness::audio::zero_crossing_hz as frequency_at;

use crate::media::decode::Codec;
use crate::media::g711;
use crate::media::record::Formats;
use crate::media::record::channel;
use pcap_file::pcap::PcapReader;
use std::time::Instant;

/// Both files, as by default.
const BOTH: Formats = Formats {
    wav: true,
    pcap: true,
};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sipline-rec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The sidecar the writer leaves in `dir` once a recording ends.
fn sidecar_in(dir: &Path) -> PathBuf {
    loop {
        let found = std::fs::read_dir(dir)
            .expect("dir")
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "json"));
        if let Some(p) = found {
            return p;
        }
        std::thread::sleep(TICK);
    }
}

#[test]
fn a_recorded_call_becomes_a_pcap_of_both_ways_and_a_sidecar_with_its_digest() {
    let dir = scratch("pcap");
    let figures = RecordingFigures::default();
    let (admin, mut events) = broadcast::channel(8);
    let recorder = Recorder::start(&dir, BOTH, figures.clone(), admin).expect("recorder");
    let (mut tap, sink) = channel("abc@x/y", Starter::Policy, 64 * 1024);
    recorder.record(sink);
    let t0 = Instant::now();
    // Payload type 111 (Opus): a pcap only, no WAV.
    let rtp = |seq: u8| [0x80, 111, 0, seq, 0, 0, 0, 160, 1, 2, 3, 4, 0xff, 0xfe];
    for seq in 0..10u8 {
        let at = t0 + Duration::from_millis(20 * u64::from(seq));
        tap.packet(at, Way::FromBrowser, 0, false, &rtp(seq));
        tap.packet(at, Way::ToBrowser, 0, false, &rtp(seq));
    }
    tap.packet(t0, Way::ToBrowser, 1, true, &[0x81, 200, 0, 1, 9, 9, 9, 9]);
    drop(tap); // the call's media ended
    let sidecar = sidecar_in(&dir);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&sidecar).expect("sidecar")).expect("JSON");
    assert_eq!(meta["call_id"], "abc@x/y");
    assert_eq!(meta["started_by"], "policy");
    assert_eq!(meta["complete"], true);
    assert_eq!(
        meta["files"].as_array().map(Vec::len),
        Some(1),
        "no WAV of Opus"
    );
    assert_eq!(meta["packets_from_browser"], 10);
    assert_eq!(meta["packets_to_browser"], 11);
    let file = dir.join(meta["files"][0]["path"].as_str().expect("path"));
    assert!(
        file.file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with("-abc_x_y.pcap"))
    );
    let (bytes, sha) = file_digest(&file).expect("digest");
    assert_eq!(meta["files"][0]["sha256"], sha);
    assert_eq!(meta["files"][0]["bytes"], bytes);
    assert_eq!(figures.0.bytes.load(Ordering::Relaxed), bytes);
    assert_eq!(figures.0.complete.load(Ordering::Relaxed), 1);
    assert_eq!(figures.0.active.load(Ordering::Relaxed), 0);
    // The stop is told once the sidecar is written: wait for it.
    let mut told = Vec::new();
    for _ in 0..250 {
        match events.try_recv() {
            Ok(event) => told.push(event),
            Err(_) if told.len() == 2 => break,
            Err(_) => std::thread::sleep(TICK),
        }
    }
    let names: Vec<&str> = told.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["recording_started", "recording_stopped"]);
    assert!(told[0].1.contains("abc@x/y"), "{}", told[0].1);
    let stopped: serde_json::Value = serde_json::from_str(&told[1].1).expect("JSON");
    assert_eq!(stopped["files"][0]["sha256"], sha);
    assert_eq!(stopped["sidecar_path"], sidecar.display().to_string());
    let mut reader = PcapReader::new(File::open(&file).expect("pcap")).expect("a pcap");
    assert_eq!(reader.header().datalink, DataLink::IPV4);
    let mut seen = Vec::new();
    while let Some(p) = reader.next_packet() {
        let p = p.expect("a whole record");
        let d = &p.data;
        assert_eq!(ipv4_checksum(&d[..20]), 0, "the IPv4 checksum holds");
        let src = [d[12], d[13], d[14], d[15]];
        let port = u16::from_be_bytes([d[22], d[23]]);
        seen.push((src, port, d[IP_UDP_LEN..].to_vec(), p.timestamp));
    }
    assert_eq!(seen.len(), 21);
    assert_eq!(seen[0].0, BROWSER_IP);
    assert_eq!(seen[1].0, FAR_IP);
    assert_eq!(seen[0].2, rtp(0));
    assert_eq!(seen[20].1, 5007, "video RTCP on its own port");
    // Times as the packets passed: 20 ms apart.
    assert_eq!(seen[2].3 - seen[0].3, Duration::from_millis(20));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_write_that_fails_stops_the_recording_and_the_packet_path_stops_feeding_it() {
    // /dev/full takes the open and fails every write with ENOSPC, as a
    // full disk does.
    let (mut tap, sink) = channel("c", Starter::Operator, 4096);
    let mut r = Recording::open(PathBuf::from("/dev/full"), BOTH, SystemTime::now(), sink)
        .expect("/dev/full opens");
    tap.packet(Instant::now(), Way::FromBrowser, 0, false, &[0x80; 12]);
    r.drain(true);
    assert_eq!(r.failure, Some(Failure::Write));
    // The writer lets the recording go: the packet path sees a ring
    // nobody reads and stops copying into it.
    drop(r);
    tap.packet(Instant::now(), Way::FromBrowser, 0, false, &[0x80; 12]);
    assert!(tap.is_stopped());
}

/// µ-law of a sample (the inverse of [`g711::ulaw`], to the nearest
/// code), for making test tones.
fn to_ulaw(sample: i16) -> u8 {
    (0..=255u8)
        .min_by_key(|&b| (i32::from(g711::ulaw(b)) - i32::from(sample)).abs())
        .unwrap_or(0xff)
}

/// A stereo WAV's format, and its left and right channels.
fn stereo(path: &Path) -> (hound::WavSpec, Vec<i16>, Vec<i16>) {
    let mut reader = hound::WavReader::open(path).expect("a WAV");
    let all: Vec<i16> = reader
        .samples::<i16>()
        .map(|s| s.expect("a sample"))
        .collect();
    let left = all.iter().step_by(2).copied().collect();
    let right = all.iter().skip(1).step_by(2).copied().collect();
    (reader.spec(), left, right)
}

/// The frequency of a channel at 8 kHz.
fn frequency(samples: &[i16]) -> f64 {
    frequency_at(samples, 8000.0)
}

#[test]
fn g711_audio_becomes_a_stereo_wav_browser_left_far_end_right() {
    let dir = scratch("wav");
    let figures = RecordingFigures::default();
    let (admin, _) = broadcast::channel(8);
    let recorder = Recorder::start(&dir, BOTH, figures.clone(), admin).expect("recorder");
    let (mut tap, sink) = channel("wav@x", Starter::App, 64 * 1024);
    recorder.record(sink);
    let t0 = Instant::now();
    let tone = |hz: f64, n: usize| -> Vec<u8> {
        (0..160)
            .map(|i| {
                let t = (n * 160 + i) as f64 / 8000.0;
                to_ulaw((8000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16)
            })
            .collect()
    };
    // 2 s of 1 kHz from the browser and 440 Hz from the far end, with
    // unrelated timestamp bases; the far end starts 100 ms later.
    for n in 0..100usize {
        let at = t0 + Duration::from_millis(20 * n as u64);
        for (way, hz, base, delay) in [
            (Way::FromBrowser, 1000.0, 7_000u32, 0u64),
            (Way::ToBrowser, 440.0, 3_000_000, 100),
        ] {
            let ts = base.wrapping_add(160 * n as u32);
            let mut p = vec![0x80, 0, 0, n as u8];
            p.extend_from_slice(&ts.to_be_bytes());
            p.extend_from_slice(&[9, 9, 9, 9]);
            p.extend_from_slice(&tone(hz, n));
            tap.packet(at + Duration::from_millis(delay), way, 0, false, &p);
        }
    }
    drop(tap);
    let wav_path = sidecar_in(&dir).with_extension("wav");
    let (spec, left, right) = stereo(&wav_path);
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16)
    );
    // 2 s and the far end's 100 ms: the length of the call.
    let secs = left.len() as f64 / 8000.0;
    assert!((2.0..2.2).contains(&secs), "{secs} s");
    let steady = 1600..left.len() - 1600;
    assert!((frequency(&left[steady.clone()]) - 1000.0).abs() < 20.0);
    assert!((frequency(&right[steady]) - 440.0).abs() < 20.0);
    // The far end's first 100 ms: silence on the right.
    assert!(
        right[..700].iter().all(|&s| s == 0),
        "silence before it spoke"
    );
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(wav_path.with_extension("json")).expect("sidecar"))
            .expect("JSON");
    assert_eq!(sidecar["files"][1]["format"], "wav");
    let (bytes, sha) = file_digest(&wav_path).expect("digest");
    assert_eq!(sidecar["files"][1]["sha256"], sha);
    let pcap_bytes = sidecar["files"][0]["bytes"].as_u64().expect("bytes");
    assert_eq!(figures.0.bytes.load(Ordering::Relaxed), pcap_bytes + bytes);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn opus_audio_becomes_a_16_khz_stereo_wav_placed_by_its_48_khz_timestamps() {
    let dir = scratch("opus");
    let (admin, _) = broadcast::channel(8);
    let recorder =
        Recorder::start(&dir, BOTH, RecordingFigures::default(), admin).expect("recorder");
    let (mut tap, mut sink) = channel("opus@x", Starter::Policy, 64 * 1024);
    // Chromium's payload type for Opus, as the SDP named it.
    sink.codecs = vec![(111, Codec::Opus)];
    recorder.record(sink);
    let mut encoders = [1000.0, 440.0].map(|hz| {
        let e = opus::Encoder::new(48_000, opus::Channels::Mono, opus::Application::Voip)
            .expect("an encoder");
        (e, hz)
    });
    let t0 = Instant::now();
    // 2 s each way, 20 ms packets (960 ticks of the 48 kHz clock); the far
    // end's 10th packet is lost.
    for n in 0..100usize {
        for (way, (encoder, hz)) in [Way::FromBrowser, Way::ToBrowser]
            .into_iter()
            .zip(encoders.iter_mut())
        {
            if way == Way::ToBrowser && n == 10 {
                continue;
            }
            let pcm: Vec<i16> = (0..960)
                .map(|i| {
                    let t = (n * 960 + i) as f64 / 48_000.0;
                    (8000.0 * (2.0 * std::f64::consts::PI * *hz * t).sin()) as i16
                })
                .collect();
            let ts = 5_000u32.wrapping_add(960 * n as u32);
            let mut p = vec![0x80, 111, 0, n as u8];
            p.extend_from_slice(&ts.to_be_bytes());
            p.extend_from_slice(&[9, 9, 9, 9]);
            p.extend_from_slice(&encoder.encode_vec(&pcm, 1000).expect("encoded"));
            tap.packet(t0 + Duration::from_millis(20 * n as u64), way, 0, false, &p);
        }
    }
    drop(tap);
    let wav_path = sidecar_in(&dir).with_extension("wav");
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(wav_path.with_extension("json")).expect("sidecar"))
            .expect("JSON");
    assert_eq!(sidecar["codec"], "opus", "{sidecar}");
    let (spec, left, right) = stereo(&wav_path);
    assert_eq!((spec.channels, spec.sample_rate), (2, 16_000));
    let secs = left.len() as f64 / 16_000.0;
    assert!((1.95..2.05).contains(&secs), "{secs} s");
    let steady = 8000..left.len() - 3200;
    let (l, r) = (
        frequency_at(&left[steady.clone()], 16_000.0),
        frequency_at(&right[steady], 16_000.0),
    );
    assert!((l - 1000.0).abs() < 20.0, "left {l} Hz");
    assert!((r - 440.0).abs() < 20.0, "right {r} Hz");
    // The lost packet's 20 ms (frames 3200–3520): silence on the right,
    // the packets after it in their place.
    assert!(right[3200..3520].iter().all(|&s| s == 0), "the gap");
    assert!(right[3600..3700].iter().any(|&s| s != 0), "after the gap");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_keys_either_side_pressed_are_listed_in_the_sidecar_once_each() {
    let dir = scratch("dtmf");
    let (admin, _) = broadcast::channel(8);
    let recorder =
        Recorder::start(&dir, BOTH, RecordingFigures::default(), admin).expect("recorder");
    let (mut tap, mut sink) = channel("dtmf@x", Starter::App, 64 * 1024);
    sink.events = vec![(101, 8000)];
    recorder.record(sink);
    let t0 = Instant::now();
    let event = |ts: u32, code: u8, end: bool, duration: u16| {
        let mut p = vec![0x80, 101, 0, 1];
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&[9, 9, 9, 9, code, u8::from(end) << 7 | 10]);
        p.extend_from_slice(&duration.to_be_bytes());
        p
    };
    // The browser's '7' held 120 ms (its end sent three times), then the
    // far end's '#' 1 s in.
    for (ms, duration, end) in [
        (0, 160, false),
        (20, 480, false),
        (40, 960, true),
        (40, 960, true),
        (40, 960, true),
    ] {
        let at = t0 + Duration::from_millis(ms);
        tap.packet(
            at,
            Way::FromBrowser,
            0,
            false,
            &event(5000, 7, end, duration),
        );
    }
    let at = t0 + Duration::from_millis(1000);
    tap.packet(at, Way::ToBrowser, 0, false, &event(90, 11, true, 800));
    drop(tap);
    let sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sidecar_in(&dir)).expect("sidecar")).expect("JSON");
    assert_eq!(
        sidecar["dtmf"],
        serde_json::json!([
            {"digit": "7", "from": "browser", "at_ms": 0, "duration_ms": 120},
            {"digit": "#", "from": "far_end", "at_ms": 1000, "duration_ms": 100},
        ]),
        "{sidecar}"
    );
    assert!(sidecar["codec"].is_null(), "no audio, no WAV: {sidecar}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn only_the_formats_asked_for_are_written() {
    for (formats, expected) in [
        (
            Formats {
                wav: true,
                pcap: false,
            },
            ["wav"],
        ),
        (
            Formats {
                wav: false,
                pcap: true,
            },
            ["pcap"],
        ),
    ] {
        let dir = scratch("formats");
        let (admin, _) = broadcast::channel(8);
        let recorder =
            Recorder::start(&dir, formats, RecordingFigures::default(), admin).expect("recorder");
        let (mut tap, sink) = channel("f@x", Starter::Policy, 64 * 1024);
        recorder.record(sink);
        let t0 = Instant::now();
        for n in 0..10u8 {
            let mut p = vec![0x80, 0, 0, n];
            p.extend_from_slice(&(u32::from(n) * 160).to_be_bytes());
            p.extend_from_slice(&[9, 9, 9, 9]);
            p.extend_from_slice(&[0x55; 160]);
            tap.packet(
                t0 + Duration::from_millis(20 * u64::from(n)),
                Way::FromBrowser,
                0,
                false,
                &p,
            );
        }
        drop(tap);
        let sidecar: serde_json::Value =
            serde_json::from_slice(&std::fs::read(sidecar_in(&dir)).expect("sidecar"))
                .expect("JSON");
        let listed: Vec<&str> = sidecar["files"]
            .as_array()
            .expect("files")
            .iter()
            .map(|f| f["format"].as_str().expect("a format"))
            .collect();
        assert_eq!(listed, expected, "{sidecar}");
        let on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("dir")
            .filter_map(Result::ok)
            .filter_map(|e| {
                e.path()
                    .extension()
                    .map(|x| x.to_string_lossy().into_owned())
            })
            .filter(|x| x != "json")
            .collect();
        assert_eq!(on_disk, expected);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn names_keep_only_safe_characters_of_the_call_id() {
    let t = UNIX_EPOCH + Duration::from_millis(1234);
    assert_eq!(file_stem("a/../b c@d", t), "1234-a_.._b_c_d");
}
