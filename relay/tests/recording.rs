//! Recording by policy (`--record all`), with every part real: the relay
//! binary, Debian's headless Chromium (a fake microphone playing 1 kHz)
//! calling the embedded PBX's echo through it, or baresip (440 Hz) through
//! Kamailio. The recording is read back as an operator would: the sidecar
//! JSON names the files and their SHA-256; the pcap holds the call's RTP
//! both ways, whole, in order and 20 ms apart, as a pcap reader decodes
//! it; the stereo WAV (G.711, G.722, Opus) has the browser's tone on the
//! left, the far end's on the right, as long as the media. A relay killed
//! with SIGKILL mid-call (`sipline-load`'s browsers calling the echo, in
//! G.711) leaves pcaps and WAVs readers open, with the media up to the
//! kill; and a full disk (a small tmpfs the test mounts: it runs as root,
//! as the test command does) stops the recordings, counted, while every
//! packet of the calls still goes both ways. Recording asked for by the
//! app or the operator is in `recording_on_demand.rs`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use sipline_load::run::run;
use sipline_test_harness::browser;
use sipline_test_harness::kamailio::{DOMAIN, USERS};

use common::calls::{
    FAR_HZ, MIC_HZ, Scratch, assert_hears, call_the_echo, far_end, metric, outcome, tones,
    wideband_far_end,
};
use common::recordings::{
    Rtp, assert_lasts, assert_tones, behind_kamailio, file_of, media_span, packets, packets_up_to,
    read_sidecar, wav_channels,
};
use common::{AdminStream, RelayProcess, echo_load};

/// The admin stream's token in these tests.
const ADMIN_TOKEN: &str = "recording-test-token-0123";

#[test]
fn a_call_recorded_by_policy_leaves_a_pcap_of_both_ways_and_a_sidecar_that_vouches_for_it() {
    let scratch = Scratch::new("recording");
    let mic = scratch.tone("mic-1khz.wav", MIC_HZ, 48_000);
    let dir = scratch.0.join("recordings");
    let relay = RelayProcess::start_embedded(
        &[
            "--domain",
            "sipline.local",
            "--media-ports",
            "36800-36899",
            "--record",
            "all",
            "--record-dir",
            dir.to_str().expect("a UTF-8 path"),
        ],
        "alice:alice-e2e",
    );
    let v = call_the_echo(&relay, &mic);
    // Recording changes nothing for the call.
    assert_hears(&v["steps"]["talk"], MIC_HZ, "echo");

    let meta = read_sidecar(&dir);
    assert_eq!(meta["complete"], true, "{meta}");
    assert!(
        meta["call_id"].as_str().is_some_and(|c| !c.is_empty()),
        "{meta}"
    );
    assert_eq!(meta["from"], "sip:alice@sipline.local", "{meta}");
    assert_eq!(meta["to"], "sip:echo@sipline.local", "{meta}");
    // Chromium's first codec, which the echo takes: Opus, whose WAV is
    // 16 kHz, the tone on both sides.
    assert_eq!(meta["codec"], "opus", "{meta}");
    let (left, right, rate) = wav_channels(&dir, &meta);
    assert_eq!(rate, 16_000.0);
    assert_tones(&left, &right, rate, MIC_HZ, MIC_HZ);
    let file = &meta["files"][0];
    assert_eq!(file["format"], "pcap");
    let pcap = dir.join(file["path"].as_str().expect("a file name"));
    let bytes = std::fs::read(&pcap).expect("the pcap");
    assert_eq!(file["bytes"], bytes.len());
    let sha256: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(file["sha256"], sha256);

    // The call's RTP both ways: the browser's (192.0.2.1) and the echo's
    // (192.0.2.2), each one stream, in order, at the 20 ms cadence.
    let (rtp, rtcp) = packets(&pcap);
    let mut ways: HashMap<[u8; 4], Vec<&Rtp>> = HashMap::new();
    for p in &rtp {
        ways.entry(p.from).or_default().push(p);
    }
    for (from, what) in [
        ([192, 0, 2, 1], "from the browser"),
        ([192, 0, 2, 2], "to the browser"),
    ] {
        let stream = ways.get(&from).map(Vec::as_slice).unwrap_or_default();
        // The browser talks for several seconds at 50 packets a second.
        assert!(stream.len() > 150, "{} RTP packets {what}", stream.len());
        assert!(
            stream.iter().all(|p| p.ssrc == stream[0].ssrc),
            "one stream {what}"
        );
        // In order; a packet the network lost before the relay is not in
        // the recording either (loopback under a full test run drops one
        // now and then), so a few may be missing, no more.
        let steps: Vec<u16> = stream
            .windows(2)
            .map(|w| w[1].seq.wrapping_sub(w[0].seq))
            .collect();
        assert!(
            steps.iter().all(|s| (1..100).contains(s)),
            "in order, {what}"
        );
        let missing: u32 = steps.iter().map(|s| u32::from(s - 1)).sum();
        assert!(
            missing * 100 <= stream.len() as u32,
            "{missing} of {} missing {what}",
            stream.len()
        );
        let span = stream[stream.len() - 1].at - stream[0].at;
        let cadence = span / u32::try_from(stream.len() - 1).expect("a count");
        assert!(
            (Duration::from_millis(15)..Duration::from_millis(25)).contains(&cadence),
            "{cadence:?} between packets {what}"
        );
    }
    let m = relay.metrics();
    assert_eq!(metric(&m, "sipline_recordings_active"), 0, "{m}");
    // Every byte of the pcap and the WAV is counted.
    let files: u64 = meta["files"]
        .as_array()
        .expect("the files")
        .iter()
        .map(|f| f["bytes"].as_u64().expect("a length"))
        .sum();
    assert_eq!(metric(&m, "sipline_recording_bytes_total"), files, "{m}");
    assert_eq!(
        metric(&m, "sipline_recordings_total{outcome=\"complete\"}"),
        1,
        "{m}"
    );
    assert_eq!(
        metric(&m, "sipline_recordings_total{outcome=\"behind\"}"),
        0,
        "{m}"
    );
    // The sidecar counts every record, RTCP included, each way.
    let records = |from: [u8; 4]| {
        rtp.iter().filter(|p| p.from == from).count() + rtcp.iter().filter(|f| **f == from).count()
    };
    assert_eq!(
        meta["packets_from_browser"],
        records([192, 0, 2, 1]),
        "{meta}"
    );
    assert_eq!(
        meta["packets_to_browser"],
        records([192, 0, 2, 2]),
        "{meta}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_call_leaves_recordings_a_reader_opens_up_to_the_kill() {
    let scratch = Scratch::new("recording-kill");
    let dir = scratch.0.join("recordings");
    let relay = RelayProcess::start_embedded(
        &[
            "--domain",
            "sipline.local",
            "--media-ports",
            "36900-36999",
            "--record",
            "all",
            "--record-dir",
            dir.to_str().expect("a UTF-8 path"),
        ],
        "alice:alice-load",
    );
    // Two calls to the echo with 6 s of media; the relay dies 3 s in.
    let calls = tokio::spawn(run(
        echo_load(relay.ws_url(), 2, 6, "alice", "alice-load"),
        None,
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &relay.pid().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let _ = calls.await;

    let files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the recording folder")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    let of = |ext: &str| -> Vec<&PathBuf> {
        files
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect()
    };
    // sipline-load speaks G.711: a pcap and a WAV a call, and no sidecar.
    assert_eq!((of("pcap").len(), of("wav").len()), (2, 2), "{files:?}");
    assert!(of("json").is_empty(), "{files:?}");
    for pcap in of("pcap") {
        let (rtp, _) = packets_up_to(pcap, true);
        for from in [[192, 0, 2, 1], [192, 0, 2, 2]] {
            let n = rtp.iter().filter(|p| p.from == from).count();
            // About 2.5 s of media at 50 packets a second each way before
            // the kill, less the call's set-up.
            assert!(
                n > 75,
                "{n} RTP packets from {from:?} in {}",
                pcap.display()
            );
        }
    }
    for wav in of("wav") {
        // Its header was rewritten at the last flush: a standard reader
        // opens it and finds the audio up to the kill.
        let mut reader = hound::WavReader::open(wav).expect("a WAV a reader opens");
        let spec = reader.spec();
        assert_eq!((spec.channels, spec.sample_rate), (2, 8000));
        let samples: Vec<i16> = reader
            .samples::<i16>()
            .map(|s| s.expect("a whole sample"))
            .collect();
        let secs = samples.len() as f64 / 2.0 / 8000.0;
        assert!(secs > 1.5, "{secs} s of audio in {}", wav.display());
        for channel in 0..2 {
            let sound = samples
                .iter()
                .skip(channel)
                .step_by(2)
                .filter(|s| **s != 0)
                .count();
            assert!(
                sound > 8000,
                "channel {channel} of {} is silent",
                wav.display()
            );
        }
    }
}

/// A small tmpfs mounted at a folder, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).expect("the mount point");
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs needs root");
        Tmpfs(dir.to_owned())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_stops_the_recordings_and_the_calls_go_on_both_ways() {
    let scratch = Scratch::new("recording-full");
    let dir = scratch.0.join("recordings");
    // 48 KiB: about a second of two calls' recordings.
    let _disk = Tmpfs::mount(&dir, "48k");
    let relay = RelayProcess::start_embedded(
        &[
            "--domain",
            "sipline.local",
            "--media-ports",
            "37000-37099",
            "--record",
            "all",
            "--record-dir",
            dir.to_str().expect("a UTF-8 path"),
            "--admin-token",
            ADMIN_TOKEN,
        ],
        "alice:alice-load",
    );
    let mut admin = AdminStream::open(relay.http_port, Some(ADMIN_TOKEN)).await;
    assert!(admin.status.contains(" 200 "), "{}", admin.status);
    let report = run(echo_load(relay.ws_url(), 2, 4, "alice", "alice-load"), None).await;
    assert_eq!(report.calls_up, 2, "{:?}", report.failures);
    let d = &report.to_pbx;
    assert!(d.sent >= 2 * 180, "{} sent in 4 s", d.sent);
    assert_eq!(
        d.received, d.sent,
        "every packet comes back, recorded or not"
    );
    let m = relay.metrics();
    assert!(
        metric(&m, "sipline_recordings_total{outcome=\"write_failed\"}") >= 1,
        "{m}"
    );
    assert_eq!(
        metric(&m, "sipline_recordings_total{outcome=\"complete\"}"),
        0,
        "{m}"
    );
    assert_eq!(metric(&m, "sipline_recordings_active"), 0, "{m}");
    // The operator hears of each start and of each stop and why.
    let mut stopped = Vec::new();
    while stopped.len() < 2 {
        let Some((name, data)) = admin.next(Duration::from_secs(5)).await else {
            panic!("no recording_stopped on the admin stream: {stopped:?}");
        };
        if name == "recording_stopped" {
            stopped.push(serde_json::from_str::<Value>(&data).expect("JSON"));
        }
    }
    for s in &stopped {
        assert_eq!(s["complete"], false, "{s}");
        assert_eq!(s["failure"], "a write failed", "{s}");
        // No room for the sidecar either: the event is the only record.
        assert!(s["sidecar_path"].is_null(), "{s}");
    }
}

#[test]
fn a_call_through_kamailio_to_baresip_is_a_stereo_wav_the_browser_left_the_far_end_right() {
    let (scratch, mic, far_tone) = tones("recording-wav");
    let dir = scratch.0.join("recordings");
    let (user, _) = USERS[1];
    let (_kamailio, far, relay) = behind_kamailio(
        |registrar| far_end(registrar, USERS[1], far_tone, true),
        &[
            "--media-ports",
            "37100-37199",
            "--record",
            "all",
            "--record-dir",
            dir.to_str().expect("a UTF-8 path"),
        ],
    );
    let config = serde_json::json!({
        "ws": relay.ws_url(),
        "target": format!("sip:{user}@{DOMAIN}"),
        "domain": DOMAIN,
        "mic": mic,
    });
    let out = browser::call(&config.to_string()).expect("the browser ran");
    let v = outcome(&out, &far);
    assert_hears(&v["steps"]["talk"], FAR_HZ, "talking");

    let meta = read_sidecar(&dir);
    assert_eq!(meta["complete"], true, "{meta}");
    let (left, right, rate) = wav_channels(&dir, &meta);
    assert_eq!(rate, 8000.0);
    // The middle second of the call, where both sides play their tones.
    assert_tones(&left, &right, rate, MIC_HZ, FAR_HZ);
    // As long as the call's media: its first to last RTP packet.
    let span = media_span(&file_of(&dir, &meta, "pcap"));
    assert_lasts(left.len(), rate, span.as_secs_f64(), "media");
}

#[test]
fn a_g722_call_to_baresip_is_a_16_khz_wav_the_browser_left_the_far_end_right() {
    let scratch = Scratch::new("recording-g722");
    let mic = scratch.tone("mic-1khz.wav", MIC_HZ, 48_000);
    let far_tone = scratch.tone("far-440hz-16k.wav", FAR_HZ, 16_000);
    let dir = scratch.0.join("recordings");
    let (user, _) = USERS[1];
    // baresip speaks G.722 only: Chromium's offer has it (payload type 9).
    let (_kamailio, far, relay) = behind_kamailio(
        |registrar| wideband_far_end(registrar, USERS[1], far_tone),
        &[
            "--media-ports",
            "37500-37599",
            "--record",
            "all",
            "--record-dir",
            dir.to_str().expect("a UTF-8 path"),
        ],
    );
    let config = serde_json::json!({
        "ws": relay.ws_url(),
        "target": format!("sip:{user}@{DOMAIN}"),
        "domain": DOMAIN,
        "mic": mic,
    });
    let out = browser::call(&config.to_string()).expect("the browser ran");
    let v = outcome(&out, &far);
    assert_hears(&v["steps"]["talk"], FAR_HZ, "talking, in G.722");

    let meta = read_sidecar(&dir);
    assert_eq!(meta["complete"], true, "{meta}");
    assert_eq!(meta["codec"], "G722", "{meta}");
    let (left, right, rate) = wav_channels(&dir, &meta);
    assert_eq!(rate, 16_000.0);
    assert_tones(&left, &right, rate, MIC_HZ, FAR_HZ);
    let span = media_span(&file_of(&dir, &meta, "pcap"));
    assert_lasts(left.len(), rate, span.as_secs_f64(), "media");
}
