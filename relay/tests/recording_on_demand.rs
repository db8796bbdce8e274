//! Recording asked for, with every part real: on a relay that records on
//! demand (`--record on-demand`), the operator starts and stops a call's
//! recording through the admin API (`sipline-load` calling the echo), and
//! the SDK in headless Chromium starts it halfway through a call to
//! baresip (440 Hz) through Kamailio, and through an Opus call to the
//! echo. Each recording holds the span asked for, the browser's 1 kHz on
//! the left and the far end's tone on the right, as the sidecar, the admin
//! events and the demo's recordings listing say.

mod common;

use std::time::Duration;

use serde_json::Value;
use sipline_load::run::run;
use sipline_test_harness::browser;
use sipline_test_harness::kamailio::{DOMAIN, USERS};

use common::calls::{FAR_HZ, MIC_HZ, Scratch, assert_hears, far_end, outcome, tones};
use common::recordings::{
    assert_lasts, assert_tones, behind_kamailio, file_of, packets, read_sidecar, wav_channels,
};
use common::{AdminStream, RelayProcess, echo_load, http};

/// The admin API's token in these tests.
const ADMIN_TOKEN: &str = "recording-on-demand-token-0123";

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
    let meta = read_sidecar(&dir);
    assert_eq!(meta["complete"], true, "{meta}");
    assert_eq!(meta["started_by"], "operator", "{meta}");
    assert_eq!(meta["call_id"], call_id.as_str(), "{meta}");
    let (rtp, _) = packets(&file_of(&dir, &meta, "pcap"));
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

#[test]
fn the_app_records_the_second_half_of_a_call_to_baresip_from_the_sdk() {
    let (scratch, mic, far_tone) = tones("recording-sdk");
    let dir = scratch.0.join("recordings");
    let (alice, alice_password) = USERS[0];
    let (bob, _) = USERS[1];
    let (_kamailio, far, relay) = behind_kamailio(
        |registrar| far_end(registrar, USERS[1], far_tone, true),
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

    let meta = read_sidecar(&dir);
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
    let (left, right, rate) = wav_channels(&dir, &meta);
    assert_eq!(rate, 8000.0);
    assert_tones(&left, &right, rate, MIC_HZ, FAR_HZ);
    // From the request to the hang-up, not the whole call.
    let recorded_ms = at("hangup")["at"].as_f64().expect("a time")
        - steps["start"]["at"].as_f64().expect("a time");
    assert_lasts(
        left.len(),
        rate,
        recorded_ms / 1000.0,
        "recording asked for",
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

    let meta = read_sidecar(&dir);
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
    let (left, right, rate) = wav_channels(&dir, &meta);
    assert_eq!(rate, 16_000.0);
    assert_tones(&left, &right, rate, MIC_HZ, MIC_HZ);
    let hangup = v["events"]
        .as_array()
        .and_then(|es| es.iter().find(|e| e["name"] == "hangup"))
        .unwrap_or_else(|| panic!("no hangup event in {v}"));
    let recorded_ms =
        hangup["at"].as_f64().expect("a time") - steps["start"]["at"].as_f64().expect("a time");
    assert_lasts(
        left.len(),
        rate,
        recorded_ms / 1000.0,
        "recording asked for",
    );
}
