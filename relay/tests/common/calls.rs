//! What the tests of calls with real parts share: scratch folders with the
//! tone files the microphones and far ends play, the far end (baresip
//! registered to the test Kamailio), and the checks of what the browser
//! scripts measured and what the far end recorded.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use serde_json::{Value, json};
use sipline_test_harness::audio::{read_wav, write_tone};
use sipline_test_harness::baresip::{self, Baresip};
use sipline_test_harness::kamailio::{DOMAIN, USERS};

/// The browser's microphone tone, and the far end's.
pub const MIC_HZ: f64 = 1000.0;
pub const FAR_HZ: f64 = 440.0;

/// Packets in a 2 s listening window at 50 per second, with room for the
/// window's edges and scheduling on a loaded machine.
pub const WINDOW_PACKETS: RangeInclusive<f64> = 80.0..=120.0;

/// A scratch folder, removed when dropped.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A new, unique folder named after `what`.
    pub fn new(what: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "sipline-{what}-{}-{}",
            std::process::id(),
            sipline_test_harness::free_port().expect("a unique name")
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    /// A WAV file `name` in it playing `hz`, 30 s at `rate` (48 kHz for
    /// Chromium's fake microphone, 8 kHz for baresip's aufile).
    pub fn tone(&self, name: &str, hz: f64, rate: u32) -> PathBuf {
        let path = self.0.join(name);
        write_tone(&path, hz, rate, 30).expect("tone file");
        path
    }
}

/// A scratch folder named after `what` with the two tones most tests
/// play: the browser's microphone (`MIC_HZ`, 48 kHz) and the far end's
/// (`FAR_HZ`, 8 kHz, for baresip).
pub fn tones(what: &str) -> (Scratch, PathBuf, PathBuf) {
    let scratch = Scratch::new(what);
    let mic = scratch.tone("mic-1khz.wav", MIC_HZ, 48_000);
    let far = scratch.tone("far-440hz.wav", FAR_HZ, 8_000);
    (scratch, mic, far)
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// baresip as `user` of the test domain, through `registrar`, playing
/// `tone` and recording what it hears; registered or (baresip 1.0 digests
/// with MD5 only) calling without an account.
pub fn far_end(
    registrar: SocketAddr,
    user: (&str, &str),
    tone: PathBuf,
    register: bool,
) -> Baresip {
    start_far_end(registrar, user, tone, register, baresip::Codec::G711, false)
}

/// [`far_end`], registered, speaking G.722 only.
pub fn wideband_far_end(registrar: SocketAddr, user: (&str, &str), tone: PathBuf) -> Baresip {
    start_far_end(registrar, user, tone, true, baresip::Codec::G722, false)
}

/// [`far_end`], registered, whose media must be SDES-SRTP (it refuses a
/// plain offer with 488).
pub fn srtp_far_end(registrar: SocketAddr, user: (&str, &str), tone: PathBuf) -> Baresip {
    start_far_end(registrar, user, tone, true, baresip::Codec::G711, true)
}

fn start_far_end(
    registrar: SocketAddr,
    (user, password): (&str, &str),
    tone: PathBuf,
    register: bool,
    codec: baresip::Codec,
    srtp: bool,
) -> Baresip {
    Baresip::start(&baresip::Options {
        user: user.into(),
        password: password.into(),
        domain: DOMAIN.into(),
        registrar,
        tone,
        register,
        codec,
        srtp,
    })
    .expect("baresip starts (and registers when asked)")
}

/// A number in a browser script's report.
pub fn number(v: &Value, key: &str) -> f64 {
    v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// A counter's value from the relay's /metrics text.
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{text}"))
}

/// A listening step heard `expected_hz`, clearly: its strongest frequency,
/// standing 30 dB above the median.
pub fn assert_tone(step: &Value, expected_hz: f64, what: &str) {
    let hz = number(step, "peakHz");
    assert!(
        (hz - expected_hz).abs() < 12.0,
        "{what}: the browser hears {hz:.0} Hz, not {expected_hz} Hz: {step}"
    );
    assert!(
        number(step, "peakOverMedianDb") > 30.0,
        "{what}: no clear peak: {step}"
    );
}

/// A listening step's RTP packets counted `way` (`received`, `sent`) are
/// a 2 s window's worth.
pub fn assert_window(step: &Value, way: &str, what: &str) {
    let n = number(step, way);
    assert!(
        WINDOW_PACKETS.contains(&n),
        "{what}: {n} RTP packets {way} in 2 s: {step}"
    );
}

/// The far end's last recording holds the browser's tone.
pub fn assert_far_end_heard_the_browser(far: &Baresip) {
    assert_far_end_heard(far, MIC_HZ);
}

/// The far end's last recording (closed by its call's end) holds `expected_hz`.
pub fn assert_far_end_heard(far: &Baresip, expected_hz: f64) {
    let recordings = far.received();
    let recording = recordings
        .last()
        .unwrap_or_else(|| panic!("baresip recorded nothing:\n{}", far.log_tail()));
    let rec = read_wav(recording).expect("the recording reads");
    let (hz, ratio) = rec.dominant();
    assert!(rec.seconds() > 1.0, "{:.1} s recorded", rec.seconds());
    assert!(
        (hz - expected_hz).abs() <= 10.0 && ratio > 100.0,
        "the far end hears {hz} Hz ({ratio:.0}× the median), not {expected_hz} Hz"
    );
}

/// A browser script's report, which must hold no error (its events and the
/// far end's log help when it does).
pub fn outcome(out: &str, far: &Baresip) -> Value {
    let v: Value = serde_json::from_str(out).expect("JSON from the browser");
    assert!(
        v["error"].is_null(),
        "{}\nevents: {}\nfar end:\n{}",
        v["error"],
        v["events"],
        far.log_tail()
    );
    v
}

/// Runs a browser script (`sdk.mjs`) in a thread of its own, and returns
/// once the page marked `ready` (a `mark` step), for scripts that must be
/// up before another starts (a callee registered before the caller dials).
pub fn sdk_once_ready(
    config: &Value,
    ready: &'static str,
) -> std::thread::JoinHandle<Result<String, sipline_test_harness::browser::Error>> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let config = config.to_string();
    let handle = std::thread::spawn(move || {
        sipline_test_harness::browser::sdk(&config, |event| {
            if event == ready {
                let _ = ready_tx.send(());
            }
        })
    });
    ready_rx
        .recv_timeout(std::time::Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("no {ready} within 30 s"));
    handle
}

/// Two browsers in one call: `callee`'s page runs until it marks `ready`,
/// then `caller`'s to its end, then the callee's is awaited. Returns both
/// reports (caller's first), each of which must hold no error; `context`
/// (a PBX's log…) is said with a failure.
pub fn caller_and_callee(
    caller: &Value,
    callee: &Value,
    ready: &'static str,
    context: impl Fn() -> String,
) -> (Value, Value) {
    let callee = sdk_once_ready(callee, ready);
    let caller = sipline_test_harness::browser::sdk(&caller.to_string(), |_| {})
        .expect("the caller's browser ran");
    let callee = callee
        .join()
        .expect("the callee's thread")
        .expect("the callee's browser ran");
    let (a, b): (Value, Value) = (
        serde_json::from_str(&caller).expect("JSON"),
        serde_json::from_str(&callee).expect("JSON"),
    );
    for (who, v) in [("caller", &a), ("callee", &b)] {
        assert!(
            v["error"].is_null(),
            "{who}: {}\n{}\n{}",
            v["error"],
            v["events"],
            context()
        );
    }
    (a, b)
}

/// Alice (`alice:alice-e2e` of the embedded PBX behind `relay`) calls its
/// echo extension from Chromium, her microphone playing `mic`: what the
/// page measured, once it ran without error and hung up with a 200.
pub fn call_the_echo(relay: &super::RelayProcess, mic: &std::path::Path) -> Value {
    let config = serde_json::json!({
        "ws": relay.ws_url(),
        "target": "sip:echo@sipline.local",
        "domain": "sipline.local",
        "user": "alice",
        "password": "alice-e2e",
        "mic": mic,
    });
    let out = sipline_test_harness::browser::call(&config.to_string()).expect("the browser ran");
    let v: Value = serde_json::from_str(&out).expect("JSON from the browser");
    assert!(v["error"].is_null(), "{}", v["error"]);
    assert_eq!(v["bye"], 200, "{}", v["events"]);
    v
}

/// The tone heard, and a 2 s window's worth of packets both ways.
pub fn assert_hears(step: &Value, expected_hz: f64, what: &str) {
    assert_tone(step, expected_hz, what);
    assert_window(step, "received", what);
    assert_window(step, "sent", what);
}

/// Sends one SIP request over UDP to 127.0.0.1:`port`, as a plain phone
/// would (`request` is given the socket's port, for its Via), and returns
/// the status of its final answer.
pub fn udp_request(port: u16, request: impl FnOnce(u16) -> String) -> u16 {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("timeout");
    let ours = socket.local_addr().expect("addr").port();
    socket
        .send_to(request(ours).as_bytes(), ("127.0.0.1", port))
        .expect("send");
    let mut buf = [0u8; 4096];
    loop {
        let n = socket.recv(&mut buf).expect("an answer to the request");
        let status: u16 = String::from_utf8_lossy(&buf[..n])
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        if status >= 200 {
            return status;
        }
    }
}

/// `Phone.connect`'s options for `user` (name, password) of `domain`,
/// through the relay's WebSocket `ws`.
pub fn account(ws: &str, (user, password): (&str, &str), domain: &str) -> Value {
    json!({"server": ws, "uri": format!("sip:{user}@{domain}"), "password": password})
}

/// Alice, in Chromium through `relay`, calls bob (`far`, a baresip of the
/// Kamailio test domain) and is then called by him; each call heard both
/// ways (`what` names the setting in a failure). The page's report.
pub fn alice_calls_bob_and_back(
    relay: &super::RelayProcess,
    far: &mut Baresip,
    mic: &std::path::Path,
    what: &str,
) -> Value {
    let (alice, bob) = (USERS[0].0, USERS[1].0);
    let config = json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": account(&relay.ws_url(), USERS[0], DOMAIN)},
            {"do": "call", "target": format!("sip:{bob}@{DOMAIN}")},
            {"do": "measure", "name": "talk_out"},
            {"do": "hangup"},
            {"do": "mark", "event": "dial"},
            {"do": "answer"},
            {"do": "measure", "name": "talk_in"},
            {"do": "hangup", "name": "hangup_in"},
            {"do": "disconnect"},
        ],
    });
    let mut dialled = Ok(());
    let out = sipline_test_harness::browser::sdk(&config.to_string(), |event| {
        if event == "dial" {
            dialled = far.dial(&format!("sip:{alice}@{DOMAIN}"));
        }
    })
    .expect("the browser ran");
    dialled.expect("baresip dials");
    let v = outcome(&out, far);
    let steps = &v["steps"];
    assert_eq!(steps["connect"]["registered"], true, "{what}: {v}");
    assert_eq!(steps["call"]["state"], "established", "{what}: {v}");
    assert_hears(&steps["talk_out"], FAR_HZ, &format!("{what}: calling bob"));
    assert_eq!(
        steps["answer"]["from"],
        format!("sip:{bob}@{DOMAIN}"),
        "{what}: {v}"
    );
    assert_hears(&steps["talk_in"], FAR_HZ, &format!("{what}: called by bob"));
    assert_far_end_heard_the_browser(far);
    v
}
