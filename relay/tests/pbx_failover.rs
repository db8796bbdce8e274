//! Two PBXs behind one relay, every part real on 127.0.0.1: two Kamailio
//! from Debian (A preferred, B second), bob (baresip) registered at B, the
//! relay binary probing both, and the SDK in headless Chromium. When A
//! stops answering (SIGSTOP: its ports stay open, so no ICMP tells), a new
//! call goes on to B after the failover time and is heard both ways; when
//! A answers again the relay sees it up; when A is gone for good (its port
//! closed: ICMP unreachable), the next call moves to B at once. The PBXs
//! are listed (`--pbx A --pbx B`) or named by DNS (`--pbx-uri
//! sip:pbx.test`, SRV records from a dnsmasq the test starts).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::json;
use sipline_test_harness::browser;
use sipline_test_harness::dnsmasq::Dnsmasq;
use sipline_test_harness::kamailio::{DOMAIN, Kamailio, Options, USERS};

use common::RelayProcess;
use common::calls::{
    FAR_HZ, account, assert_far_end_heard_the_browser, assert_hears, far_end, metric, number,
    outcome, tones,
};

/// The relay's failover time in this test, ms.
const FAILOVER_MS: u64 = 1_000;

fn udp_addr(k: &Kamailio) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], k.udp_port))
}

/// Waits until the relay's `/metrics` shows `series` at `value`.
fn wait_metric(relay: &RelayProcess, series: &str, value: u64, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let wanted = value.to_string();
    while Instant::now() < deadline {
        // The series may not exist yet (a PBX DNS has still to name).
        let text = relay.metrics();
        let now = text
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '));
        if now == Some(wanted.as_str()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn a_new_call_goes_on_to_the_second_pbx_when_the_first_stops_answering_or_is_gone() {
    let (_scratch, mic, far_tone) = tones("failover");
    let mut a = Some(Kamailio::start(&Options::default()).expect("kamailio A"));
    let b = Kamailio::start(&Options::default()).expect("kamailio B");
    let (a_addr, b_addr) = (udp_addr(a.as_ref().expect("A")), udp_addr(&b));
    let far = far_end(b_addr, USERS[1], far_tone, true);
    let b_text = b_addr.to_string();
    let failover = FAILOVER_MS.to_string();
    let relay = RelayProcess::start(
        a_addr,
        &[
            "--pbx",
            &b_text,
            "--pbx-failover-ms",
            &failover,
            "--pbx-probe-interval-ms",
            "1000",
            "--media-ports",
            "37800-37899",
        ],
    );
    let up = |addr: SocketAddr| format!("sipline_pbx_up{{pbx=\"{addr}\"}}");
    assert!(
        wait_metric(&relay, &up(a_addr), 1, Duration::from_secs(3)),
        "A answers its probes"
    );

    let (bob, _) = USERS[1];
    let bob_uri = format!("sip:{bob}@{DOMAIN}");
    let config = json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": account(&relay.ws_url(), USERS[0], DOMAIN)},
            // A hangs; the call is placed at once, before any probe could
            // tell: its INVITE goes to A, then on to B.
            {"do": "mark", "event": "pause_a"},
            {"do": "sleep", "ms": 300},
            {"do": "call", "name": "call_while_a_hangs", "target": bob_uri},
            {"do": "measure", "name": "talk_through_b"},
            {"do": "hangup", "name": "hangup_1"},
            // The harness acts on a mark while the page goes on: each
            // sleep lets it finish first.
            {"do": "mark", "event": "resume_a"},
            {"do": "sleep", "ms": 3000},
            {"do": "mark", "event": "kill_a"},
            {"do": "sleep", "ms": 500},
            {"do": "call", "name": "call_with_a_gone", "target": bob_uri},
            {"do": "measure", "name": "talk_again"},
            {"do": "hangup", "name": "hangup_2"},
            {"do": "disconnect"},
        ],
    });
    let mut came_back = None;
    let out = browser::sdk(&config.to_string(), |event| match event {
        "pause_a" => a.as_ref().expect("A").pause(),
        "resume_a" => {
            a.as_ref().expect("A").resume();
            came_back = Some(wait_metric(&relay, &up(a_addr), 1, Duration::from_secs(5)));
        }
        // Gone: its process and its port (the relay then gets ICMP port
        // unreachable for what it sends there).
        "kill_a" => drop(a.take()),
        _ => {}
    })
    .expect("the browser ran");
    let v = outcome(&out, &far);
    let steps = &v["steps"];
    assert_eq!(steps["connect"]["registered"], true, "{v}");

    // The first call: A silent, B took it within the failover time (plus
    // B's and bob's own answer), not after a 32 s transaction timeout.
    assert_eq!(steps["call_while_a_hangs"]["state"], "established", "{v}");
    let ms = number(&steps["call_while_a_hangs"], "ms");
    assert!(
        ms < (FAILOVER_MS + 5_000) as f64,
        "answered {ms} ms after the call: {v}"
    );
    assert_hears(&steps["talk_through_b"], FAR_HZ, "through the second PBX");
    assert_eq!(
        came_back,
        Some(true),
        "A answering its probes again shows up: {}",
        relay.metrics()
    );

    // The second call, with A gone: at once to B.
    assert_eq!(steps["call_with_a_gone"]["state"], "established", "{v}");
    assert_hears(&steps["talk_again"], FAR_HZ, "with the first PBX gone");
    assert_far_end_heard_the_browser(&far);

    let m = relay.metrics();
    assert!(
        metric(&m, "sipline_pbx_failovers_total{reason=\"no_answer\"}") >= 1,
        "{m}"
    );
    assert_eq!(metric(&m, &up(a_addr)), 0, "A gone is seen down: {m}");
    assert_eq!(metric(&m, &up(b_addr)), 1, "{m}");
    assert!(m.contains("sipline_media_calls 0"), "{m}");
}

#[test]
fn a_pbx_named_by_dns_is_found_through_srv_and_a_new_call_fails_over_to_its_second_target() {
    let (_scratch, mic, far_tone) = tones("failover-dns");
    let a = Kamailio::start(&Options::default()).expect("kamailio A");
    let b = Kamailio::start(&Options::default()).expect("kamailio B");
    let (a_addr, b_addr) = (udp_addr(&a), udp_addr(&b));
    let far = far_end(b_addr, USERS[1], far_tone, true);
    // pbx.test: A at priority 10, B at 20, on their own ports (RFC 2782).
    let dns = Dnsmasq::start(
        &[
            "host-record=pbx-a.pbx.test,127.0.0.1".into(),
            "host-record=pbx-b.pbx.test,127.0.0.1".into(),
            format!(
                "srv-host=_sip._udp.pbx.test,pbx-a.pbx.test,{},10,100",
                a.udp_port
            ),
            format!(
                "srv-host=_sip._udp.pbx.test,pbx-b.pbx.test,{},20,100",
                b.udp_port
            ),
        ],
        60,
    )
    .expect("dnsmasq");
    let dns_server = dns.addr.to_string();
    let failover = FAILOVER_MS.to_string();
    let relay = RelayProcess::start_with(&[
        "--pbx-uri",
        "sip:pbx.test",
        "--dns-server",
        &dns_server,
        "--pbx-failover-ms",
        &failover,
        "--pbx-probe-interval-ms",
        "1000",
        "--media-ports",
        "37900-37999",
    ]);
    let up = |addr: SocketAddr| format!("sipline_pbx_up{{pbx=\"{addr}\"}}");
    let found = |addr| wait_metric(&relay, &up(addr), 1, Duration::from_secs(5));
    assert!(
        found(a_addr) && found(b_addr),
        "both SRV targets found and answering: {}",
        relay.metrics()
    );

    let (bob, _) = USERS[1];
    let config = json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": account(&relay.ws_url(), USERS[0], DOMAIN)},
            {"do": "mark", "event": "pause_a"},
            {"do": "sleep", "ms": 300},
            {"do": "call", "target": format!("sip:{bob}@{DOMAIN}")},
            {"do": "measure", "name": "talk"},
            {"do": "hangup"},
            {"do": "disconnect"},
        ],
    });
    let out = browser::sdk(&config.to_string(), |event| {
        if event == "pause_a" {
            a.pause();
        }
    })
    .expect("the browser ran");
    let v = outcome(&out, &far);
    let steps = &v["steps"];
    assert_eq!(steps["connect"]["registered"], true, "registered at A: {v}");
    assert_eq!(steps["call"]["state"], "established", "{v}");
    let ms = number(&steps["call"], "ms");
    assert!(
        ms < (FAILOVER_MS + 5_000) as f64,
        "answered {ms} ms after the call: {v}"
    );
    assert_hears(&steps["talk"], FAR_HZ, "through the second SRV target");
    assert_far_end_heard_the_browser(&far);
    let m = relay.metrics();
    assert!(
        metric(&m, "sipline_pbx_failovers_total{reason=\"no_answer\"}") >= 1,
        "{m}"
    );
    assert_eq!(metric(&m, &up(a_addr)), 0, "{m}");
}
