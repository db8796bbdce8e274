//! Recording by policy, with every part real: the relay binary started with
//! `--record all`, Debian's headless Chromium (a fake microphone playing
//! 1 kHz) calling the embedded PBX's echo through it. The recording is read
//! back as an operator would: the sidecar JSON names the pcap and its
//! SHA-256, and the pcap holds the call's RTP both ways, whole, in order and
//! 20 ms apart, as a pcap reader decodes it. A call to baresip (440 Hz)
//! through Kamailio, in G.711, is also a stereo WAV: the browser's 1 kHz on
//! the left, the far end's 440 Hz on the right. And a relay killed with
//! SIGKILL mid-call (`sipline-load`'s browsers calling the echo, in G.711)
//! leaves pcaps and WAVs readers open, with the media up to the kill; and a full disk (a
//! small tmpfs the test mounts: it runs as root, as the test command does)
//! stops the recordings, counted, while every packet of the calls still
//! goes both ways.

mod common;

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pcap_file::DataLink;
use pcap_file::pcap::PcapReader;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sipline_test_harness::audio::zero_crossing_hz as frequency_at;
use sipline_test_harness::browser;

use common::calls::{
    FAR_HZ, MIC_HZ, Scratch, assert_hears, far_end, metric, outcome, wideband_far_end,
};
use common::{AdminStream, RelayProcess, echo_load, http};
use sipline_test_harness::kamailio::{DOMAIN, Kamailio, Options, USERS};

/// The admin stream's token in these tests.
const ADMIN_TOKEN: &str = "recording-test-token-0123";
use sipline_load::run::run;

/// The sidecar the relay writes when the call's recording ends.
fn sidecar(dir: &Path, within: Duration) -> PathBuf {
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

/// One RTP packet of the pcap: its source address, SSRC, sequence number
/// and time.
struct Rtp {
    from: [u8; 4],
    ssrc: u32,
    seq: u16,
    at: Duration,
}

/// The RTP packets of the pcap (IPv4, UDP, then RTP version 2), and the
/// sources of its RTCP packets.
fn packets(path: &Path) -> (Vec<Rtp>, Vec<[u8; 4]>) {
    packets_up_to(path, false)
}

/// [`packets`], reading only up to a last record cut short when `cut` (a
/// file whose writer was killed).
fn packets_up_to(path: &Path, cut: bool) -> (Vec<Rtp>, Vec<[u8; 4]>) {
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
    let config = serde_json::json!({
        "ws": relay.ws_url(),
        "target": "sip:echo@sipline.local",
        "domain": "sipline.local",
        "user": "alice",
        "password": "alice-e2e",
        "mic": mic,
    });
    let out = browser::call(&config.to_string()).expect("the browser ran");
    let v: Value = serde_json::from_str(&out).expect("JSON from the browser");
    assert!(v["error"].is_null(), "{}", v["error"]);
    // Recording changes nothing for the call.
    assert_hears(&v["steps"]["talk"], MIC_HZ, "echo");
    assert_eq!(v["bye"], 200, "{}", v["events"]);

    let meta: Value = serde_json::from_slice(
        &std::fs::read(sidecar(&dir, Duration::from_secs(5))).expect("the sidecar"),
    )
    .expect("JSON");
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
    let (left, right) = wav_channels(&dir, &meta);
    let mid = left.len() / 2;
    let second = mid - 8000..mid + 8000;
    for (side, samples) in [("left", &left), ("right", &right)] {
        let hz = frequency_at(&samples[second.clone()], 16_000.0);
        assert!((hz - MIC_HZ).abs() < 30.0, "{side} is {hz:.0} Hz");
    }
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

/// [`frequency_at`] 8 kHz (G.711).
fn frequency(samples: &[i16]) -> f64 {
    frequency_at(samples, 8000.0)
}

#[test]
fn a_call_through_kamailio_to_baresip_is_a_stereo_wav_the_browser_left_the_far_end_right() {
    let scratch = Scratch::new("recording-wav");
    let mic = scratch.tone("mic-1khz.wav", MIC_HZ, 48_000);
    let far_tone = scratch.tone("far-440hz.wav", FAR_HZ, 8_000);
    let dir = scratch.0.join("recordings");
    let kamailio = Kamailio::start(&Options::default()).expect("kamailio");
    let registrar = format!("127.0.0.1:{}", kamailio.udp_port);
    let (user, _) = USERS[1];
    let far = far_end(
        registrar.parse().expect("address"),
        USERS[1],
        far_tone,
        true,
    );
    let relay = RelayProcess::start(
        registrar.parse().expect("address"),
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

    let meta: Value = serde_json::from_slice(
        &std::fs::read(sidecar(&dir, Duration::from_secs(5))).expect("the sidecar"),
    )
    .expect("JSON");
    assert_eq!(meta["complete"], true, "{meta}");
    let file = |format: &str| {
        let f = meta["files"]
            .as_array()
            .and_then(|fs| fs.iter().find(|f| f["format"] == format))
            .unwrap_or_else(|| panic!("no {format} in {meta}"));
        dir.join(f["path"].as_str().expect("a file name"))
    };
    let mut reader = hound::WavReader::open(file("wav")).expect("a WAV");
    assert_eq!(reader.spec().channels, 2);
    let all: Vec<i16> = reader
        .samples::<i16>()
        .map(|s| s.expect("a sample"))
        .collect();
    let left: Vec<i16> = all.iter().step_by(2).copied().collect();
    let right: Vec<i16> = all.iter().skip(1).step_by(2).copied().collect();
    // The middle second of the call, where both sides play their tones.
    let mid = left.len() / 2;
    let second = mid - 4000..mid + 4000;
    let (l, r) = (frequency(&left[second.clone()]), frequency(&right[second]));
    assert!((l - MIC_HZ).abs() < 30.0, "left (the browser) is {l:.0} Hz");
    assert!(
        (r - FAR_HZ).abs() < 30.0,
        "right (the far end) is {r:.0} Hz"
    );
    // As long as the call's media: its first to last RTP packet.
    let (rtp, _) = packets(&file("pcap"));
    let span = rtp.iter().map(|p| p.at).max().expect("packets")
        - rtp.iter().map(|p| p.at).min().expect("packets");
    let secs = left.len() as f64 / 8000.0;
    assert!(
        (secs - span.as_secs_f64()).abs() < 0.5,
        "{secs:.2} s of WAV for {span:?} of media"
    );
}

/// The body of an HTTP answer (past its blank line).
fn body(answer: &str) -> &str {
    answer.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// What the admin API answers `method path` with `json`, with the token.
fn admin(relay: &RelayProcess, method: &str, path: &str, json: Option<&str>) -> String {
    let auth = format!("Authorization: Bearer {ADMIN_TOKEN}\r\n");
    http(relay.http_port, method, path, &auth, json)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_lists_the_calls_and_records_one_for_as_long_as_asked() {
    let scratch = Scratch::new("recording-admin");
    let dir = scratch.0.join("recordings");
    let relay = RelayProcess::start_embedded(
        &[
            "--domain",
            "sipline.local",
            "--media-ports",
            "37200-37299",
            "--record",
            "on-demand",
            "--record-dir",
            dir.to_str().expect("a UTF-8 path"),
            "--admin-token",
            ADMIN_TOKEN,
        ],
        "alice:alice-load",
    );
    let mut events = AdminStream::open(relay.http_port, Some(ADMIN_TOKEN)).await;
    // One call to the echo with 7 s of media.
    let call = tokio::spawn(run(
        echo_load(relay.ws_url(), 1, 7, "alice", "alice-load"),
        None,
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Without the token, nothing.
    let refused = http(relay.http_port, "GET", "/admin/calls", "", None);
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
    let listed = admin(&relay, "GET", "/admin/calls", None);
    assert!(listed.starts_with("HTTP/1.1 200"), "{listed}");
    let list: Value = serde_json::from_str(body(&listed)).expect("JSON");
    let calls = list["calls"].as_array().expect("a list of calls");
    assert_eq!(calls.len(), 1, "{list}");
    assert_eq!(calls[0]["state"], "answered", "{list}");
    assert_eq!(calls[0]["callee"], "sip:echo@sipline.local", "{list}");
    assert!(calls[0]["recording"].is_null(), "on demand: not yet {list}");
    let call_id = calls[0]["call_id"].as_str().expect("a Call-ID").to_owned();
    // A Call-ID may hold characters a path may not.
    let encoded: String = call_id
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let path = format!("/admin/calls/{encoded}/recording");

    let bad = admin(&relay, "POST", &path, Some(r#"{"action":"pause"}"#));
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    let unknown = admin(
        &relay,
        "POST",
        "/admin/calls/nobody/recording",
        Some(r#"{"action":"start"}"#),
    );
    assert!(unknown.starts_with("HTTP/1.1 404"), "{unknown}");

    let started = admin(&relay, "POST", &path, Some(r#"{"action":"start"}"#));
    assert!(started.starts_with("HTTP/1.1 200"), "{started}");
    let started: Value = serde_json::from_str(body(&started)).expect("JSON");
    assert_eq!(started["changed"], true, "{started}");
    let again = admin(&relay, "POST", &path, Some(r#"{"action":"start"}"#));
    assert!(body(&again).contains(r#""changed":false"#), "{again}");
    let listed = admin(&relay, "GET", "/admin/calls", None);
    assert!(
        body(&listed).contains(r#""recording":"operator""#),
        "{listed}"
    );

    // Two seconds recorded, then stopped; the call goes on.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopped = admin(&relay, "POST", &path, Some(r#"{"action":"stop"}"#));
    assert!(stopped.starts_with("HTTP/1.1 200"), "{stopped}");
    assert!(body(&stopped).contains(r#""changed":true"#), "{stopped}");
    let meta: Value = serde_json::from_slice(
        &std::fs::read(sidecar(&dir, Duration::from_secs(5))).expect("the sidecar"),
    )
    .expect("JSON");
    assert_eq!(meta["complete"], true, "{meta}");
    assert_eq!(meta["started_by"], "operator", "{meta}");
    assert_eq!(meta["call_id"], call_id.as_str(), "{meta}");
    let pcap = dir.join(meta["files"][0]["path"].as_str().expect("a file name"));
    let (rtp, _) = packets(&pcap);
    for from in [[192, 0, 2, 1], [192, 0, 2, 2]] {
        let n = rtp.iter().filter(|p| p.from == from).count();
        // Two seconds at 50 packets a second, give or take the time the
        // requests took.
        assert!((80..=130).contains(&n), "{n} RTP packets from {from:?}");
    }
    // The embedded PBX's demo page lists and plays its recordings without
    // the token.
    let listed = http(relay.http_port, "GET", "/admin/recordings", "", None);
    assert!(listed.starts_with("HTTP/1.1 200"), "{listed}");
    let listed: Value = serde_json::from_str(body(&listed)).expect("JSON");
    assert_eq!(
        listed["recordings"][0]["started_by"], "operator",
        "{listed}"
    );
    let pcap_name = meta["files"][0]["path"].as_str().expect("a name");
    let served = http(
        relay.http_port,
        "GET",
        &format!("/admin/recordings/{pcap_name}"),
        "",
        None,
    );
    assert!(
        served.contains("content-type: application/vnd.tcpdump.pcap"),
        "{}",
        served.lines().next().unwrap_or_default()
    );
    // Streamed whole: its length, and its first bytes the pcap's magic.
    let pcap_bytes = std::fs::read(dir.join(pcap_name)).expect("the pcap");
    assert!(
        served.contains(&format!("content-length: {}\r\n", pcap_bytes.len())),
        "{}",
        served.lines().take(6).collect::<Vec<_>>().join(" | ")
    );
    assert_eq!(
        served.split_once("\r\n\r\n").map(|(_, b)| b.len()),
        Some(String::from_utf8_lossy(&pcap_bytes).len()),
        "the whole file"
    );
    for bad in [
        "/admin/recordings/..%2Fsecret.json",
        "/admin/recordings/x.toml",
    ] {
        let refused = http(relay.http_port, "GET", bad, "", None);
        assert!(refused.starts_with("HTTP/1.1 404"), "{bad}: {refused}");
    }
    let report = call.await.expect("the load ran");
    assert_eq!(report.calls_up, 1, "{:?}", report.failures);
    assert_eq!(
        report.to_pbx.received, report.to_pbx.sent,
        "the call never noticed"
    );

    // The admin stream told of the start and the stop, naming who.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let Some((name, data)) = events.next(Duration::from_secs(5)).await else {
            panic!("recording events missing: {seen:?}");
        };
        if name.starts_with("recording_") {
            let data: Value = serde_json::from_str(&data).expect("JSON");
            assert_eq!(data["started_by"], "operator", "{data}");
            seen.push(name);
        }
    }
    assert_eq!(seen, ["recording_started", "recording_stopped"]);
}

/// The WAV a sidecar names: its left and right channels.
fn wav_channels(dir: &Path, meta: &Value) -> (Vec<i16>, Vec<i16>) {
    let wav = meta["files"]
        .as_array()
        .and_then(|fs| fs.iter().find(|f| f["format"] == "wav"))
        .unwrap_or_else(|| panic!("no WAV in {meta}"));
    let mut reader = hound::WavReader::open(dir.join(wav["path"].as_str().expect("a file name")))
        .expect("a WAV");
    assert_eq!(reader.spec().channels, 2);
    let all: Vec<i16> = reader
        .samples::<i16>()
        .map(|s| s.expect("a sample"))
        .collect();
    let left = all.iter().step_by(2).copied().collect();
    let right = all.iter().skip(1).step_by(2).copied().collect();
    (left, right)
}

#[test]
fn the_app_records_the_second_half_of_a_call_to_baresip_from_the_sdk() {
    let scratch = Scratch::new("recording-sdk");
    let mic = scratch.tone("mic-1khz.wav", MIC_HZ, 48_000);
    let far_tone = scratch.tone("far-440hz.wav", FAR_HZ, 8_000);
    let dir = scratch.0.join("recordings");
    let kamailio = Kamailio::start(&Options::default()).expect("kamailio");
    let registrar = format!("127.0.0.1:{}", kamailio.udp_port);
    let (alice, alice_password) = USERS[0];
    let (bob, _) = USERS[1];
    let far = far_end(
        registrar.parse().expect("address"),
        USERS[1],
        far_tone,
        true,
    );
    let relay = RelayProcess::start(
        registrar.parse().expect("address"),
        &[
            "--media-ports",
            "37300-37399",
            "--record",
            "on-demand",
            "--record-dir",
            dir.to_str().expect("a UTF-8 path"),
        ],
    );
    let config = serde_json::json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": {
                "server": relay.ws_url(),
                "uri": format!("sip:{alice}@{DOMAIN}"),
                "password": alice_password,
            }},
            {"do": "call", "target": format!("sip:{bob}@{DOMAIN}")},
            // The first half is not recorded: nobody asked yet.
            {"do": "sleep", "ms": 2500},
            {"do": "recording", "name": "start"},
            {"do": "measure", "name": "talk"},
            // Keys pressed while recorded are in the sidecar.
            {"do": "dtmf", "digits": "12#"},
            {"do": "sleep", "ms": 1000},
            {"do": "hangup"},
        ],
    });
    let out = browser::sdk(&config.to_string(), |_| {}).expect("the browser ran");
    let v = outcome(&out, &far);
    let steps = &v["steps"];
    assert_eq!(steps["start"]["ok"], true, "{v}");
    assert_hears(&steps["talk"], FAR_HZ, "while recorded");
    let events = v["events"].as_array().expect("the page's events");
    let at = |name: &str| {
        events
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("no {name} event in {v}"))
    };
    assert!(
        at("recording")["detail"].to_string().contains("started"),
        "{v}"
    );

    let meta: Value = serde_json::from_slice(
        &std::fs::read(sidecar(&dir, Duration::from_secs(5))).expect("the sidecar"),
    )
    .expect("JSON");
    assert_eq!(meta["complete"], true, "{meta}");
    assert_eq!(meta["started_by"], "app", "{meta}");
    // In front of a PBX, the recordings are the operator's: not without the
    // admin token (none is set here, so there is no admin API at all).
    let listed = http(relay.http_port, "GET", "/admin/recordings", "", None);
    assert!(listed.starts_with("HTTP/1.1 404"), "{listed}");
    let dtmf = meta["dtmf"].as_array().expect("the key presses");
    let keys: String = dtmf
        .iter()
        .map(|k| k["digit"].as_str().expect("a digit"))
        .collect();
    assert_eq!(keys, "12#", "{meta}");
    for k in dtmf {
        assert_eq!(k["from"], "browser", "{k}");
        // The SDK's 100 ms presses (the WAV's time line: after the talk).
        let ms = k["duration_ms"].as_u64().expect("a duration");
        assert!((80..=140).contains(&ms), "{k}");
        assert!(k["at_ms"].as_u64().expect("a time") > 3000, "{k}");
    }
    let (left, right) = wav_channels(&dir, &meta);
    let mid = left.len() / 2;
    let second = mid - 4000..mid + 4000;
    let (l, r) = (frequency(&left[second.clone()]), frequency(&right[second]));
    assert!((l - MIC_HZ).abs() < 30.0, "left (the browser) is {l:.0} Hz");
    assert!(
        (r - FAR_HZ).abs() < 30.0,
        "right (the far end) is {r:.0} Hz"
    );
    // From the request to the hang-up, not the whole call.
    let recorded_ms = at("hangup")["at"].as_f64().expect("a time")
        - steps["start"]["at"].as_f64().expect("a time");
    let secs = left.len() as f64 / 8000.0;
    assert!(
        (secs - recorded_ms / 1000.0).abs() < 0.5,
        "{secs:.2} s of WAV for {recorded_ms} ms recorded"
    );
}

#[test]
fn an_opus_call_to_the_echo_recorded_from_halfway_by_the_sdk_is_a_16_khz_wav_of_the_tone() {
    let scratch = Scratch::new("recording-opus");
    let mic = scratch.tone("mic-1khz.wav", MIC_HZ, 48_000);
    let dir = scratch.0.join("recordings");
    let relay = RelayProcess::start_embedded(
        &[
            "--domain",
            "sipline.local",
            "--media-ports",
            "37400-37499",
            "--record",
            "on-demand",
            "--record-dir",
            dir.to_str().expect("a UTF-8 path"),
            // The WAV alone: no pcap is written.
            "--record-formats",
            "wav",
        ],
        "alice:alice-e2e",
    );
    let config = serde_json::json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": {
                "server": relay.ws_url(),
                "uri": "sip:alice@sipline.local",
                "password": "alice-e2e",
            }},
            {"do": "call", "target": "sip:echo@sipline.local"},
            {"do": "sleep", "ms": 2000},
            {"do": "recording", "name": "start"},
            {"do": "measure", "name": "talk"},
            {"do": "hangup"},
        ],
    });
    let out = browser::sdk(&config.to_string(), |_| {}).expect("the browser ran");
    let v: Value = serde_json::from_str(&out).expect("JSON from the browser");
    assert!(v["error"].is_null(), "{}\n{}", v["error"], v["events"]);
    let steps = &v["steps"];
    assert_eq!(steps["start"]["ok"], true, "{v}");
    assert_hears(&steps["talk"], MIC_HZ, "the echo, recorded");

    let meta: Value = serde_json::from_slice(
        &std::fs::read(sidecar(&dir, Duration::from_secs(5))).expect("the sidecar"),
    )
    .expect("JSON");
    assert_eq!(meta["complete"], true, "{meta}");
    assert_eq!(meta["started_by"], "app", "{meta}");
    assert_eq!(meta["codec"], "opus", "{meta}");
    assert_eq!(meta["files"].as_array().map(Vec::len), Some(1), "{meta}");
    assert!(
        std::fs::read_dir(&dir)
            .expect("the folder")
            .filter_map(Result::ok)
            .all(|e| e.path().extension().is_some_and(|x| x != "pcap")),
        "no pcap"
    );
    let (left, right) = wav_channels(&dir, &meta);
    let mid = left.len() / 2;
    let second = mid - 8000..mid + 8000;
    for (side, samples) in [("left", &left), ("right", &right)] {
        let hz = frequency_at(&samples[second.clone()], 16_000.0);
        assert!((hz - MIC_HZ).abs() < 30.0, "{side} is {hz:.0} Hz");
    }
    let hangup = v["events"]
        .as_array()
        .and_then(|es| es.iter().find(|e| e["name"] == "hangup"))
        .unwrap_or_else(|| panic!("no hangup event in {v}"));
    let recorded_ms =
        hangup["at"].as_f64().expect("a time") - steps["start"]["at"].as_f64().expect("a time");
    let secs = left.len() as f64 / 16_000.0;
    assert!(
        (secs - recorded_ms / 1000.0).abs() < 0.5,
        "{secs:.2} s of WAV for {recorded_ms} ms recorded"
    );
}

#[test]
fn a_g722_call_to_baresip_is_a_16_khz_wav_the_browser_left_the_far_end_right() {
    let scratch = Scratch::new("recording-g722");
    let mic = scratch.tone("mic-1khz.wav", MIC_HZ, 48_000);
    let far_tone = scratch.tone("far-440hz-16k.wav", FAR_HZ, 16_000);
    let dir = scratch.0.join("recordings");
    let kamailio = Kamailio::start(&Options::default()).expect("kamailio");
    let registrar = format!("127.0.0.1:{}", kamailio.udp_port);
    let (user, _) = USERS[1];
    // baresip speaks G.722 only: Chromium's offer has it (payload type 9).
    let far = wideband_far_end(registrar.parse().expect("address"), USERS[1], far_tone);
    let relay = RelayProcess::start(
        registrar.parse().expect("address"),
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

    let meta: Value = serde_json::from_slice(
        &std::fs::read(sidecar(&dir, Duration::from_secs(5))).expect("the sidecar"),
    )
    .expect("JSON");
    assert_eq!(meta["complete"], true, "{meta}");
    assert_eq!(meta["codec"], "G722", "{meta}");
    let (left, right) = wav_channels(&dir, &meta);
    let mid = left.len() / 2;
    let second = mid - 8000..mid + 8000;
    let (l, r) = (
        frequency_at(&left[second.clone()], 16_000.0),
        frequency_at(&right[second], 16_000.0),
    );
    assert!((l - MIC_HZ).abs() < 30.0, "left (the browser) is {l:.0} Hz");
    assert!(
        (r - FAR_HZ).abs() < 30.0,
        "right (the far end) is {r:.0} Hz"
    );
    let (rtp, _) = packets(&dir.join(meta["files"][0]["path"].as_str().expect("a name")));
    let span = rtp.iter().map(|p| p.at).max().expect("packets")
        - rtp.iter().map(|p| p.at).min().expect("packets");
    let secs = left.len() as f64 / 16_000.0;
    assert!(
        (secs - span.as_secs_f64()).abs() < 0.5,
        "{secs:.2} s of WAV for {span:?} of media"
    );
}
