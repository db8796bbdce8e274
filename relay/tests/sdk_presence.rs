//! Subscriptions end to end with Kamailio's presence server (its
//! `presence`, `presence_dialoginfo`, `presence_mwi`, `pua_dialoginfo`
//! modules from Debian) behind the relay, three Chromium browsers running
//! the built npm package: alice watches bob's busy lamp (BLF) and her own
//! voicemail light (MWI). Carol calls bob, who answers after it rings a
//! while and hangs up later: alice's lamp shows ringing, then busy, then
//! idle. A voicemail summary PUBLISHed for alice lights her indicator with
//! its counts. The relay is killed and restarted: her phone reconnects,
//! subscribes again, and the next summary reaches her too.

mod common;

use serde_json::{Value, json};
use sipline_test_harness::browser;
use sipline_test_harness::kamailio::{DOMAIN, Kamailio, Options, USERS};

use common::RelayProcess;
use common::calls::{MIC_HZ, Scratch, sdk_once_ready, udp_request};

/// Publishes bob's presence (PIDF, `open`, with a note) to the presence
/// server, as his phone would; its status code.
fn publish_presence(kamailio_port: u16) -> u16 {
    let body = format!(
        "<?xml version=\"1.0\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"sip:bob@{DOMAIN}\">\
<tuple id=\"t1\"><status><basic>open</basic></status></tuple><note>At his desk</note></presence>"
    );
    publish(
        kamailio_port,
        "bob",
        3,
        "presence",
        "application/pidf+xml",
        &body,
    )
}

/// Sends a voicemail summary for alice to the presence server (as a
/// voicemail system would, with PUBLISH); its status code.
fn publish_mwi(kamailio_port: u16, seq: u32, new: u32, old: u32) -> u16 {
    let body = format!(
        "Messages-Waiting: yes\r\nMessage-Account: sip:alice@{DOMAIN}\r\nVoice-Message: {new}/{old}\r\n"
    );
    publish(
        kamailio_port,
        "alice",
        seq,
        "message-summary",
        "application/simple-message-summary",
        &body,
    )
}

/// A PUBLISH of `body` for `user`'s `event`, over UDP; its final status.
fn publish(
    kamailio_port: u16,
    user: &str,
    seq: u32,
    event: &str,
    content_type: &str,
    body: &str,
) -> u16 {
    udp_request(kamailio_port, |port| {
        format!(
            "PUBLISH sip:{user}@{DOMAIN} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKpub{seq}{port}\r\n\
Max-Forwards: 70\r\nFrom: <sip:{user}@{DOMAIN}>;tag=pub{seq}\r\nTo: <sip:{user}@{DOMAIN}>\r\n\
Call-ID: pub-{seq}-{port}@127.0.0.1\r\nCSeq: {seq} PUBLISH\r\nEvent: {event}\r\nExpires: 3600\r\n\
Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    })
}

fn parse(out: String) -> Value {
    serde_json::from_str(&out).expect("JSON")
}

/// Alice's lamp for bob, as her page logged it (`lamp_<state>` events),
/// rang, then went busy, then idle, in that order.
fn assert_lamp_rings_then_busy_then_idle(alice: &Value, pbx: &str) {
    let lamps: Vec<&str> = alice["events"]
        .as_array()
        .expect("alice's events")
        .iter()
        .filter_map(|e| e["name"].as_str())
        .filter_map(|n| n.strip_prefix("lamp_"))
        .collect();
    eprintln!("alice's lamp for bob ({pbx}): {lamps:?}");
    let first = |state: &str| lamps.iter().position(|l| *l == state);
    let last_idle = lamps.iter().rposition(|l| *l == "idle");
    assert!(
        matches!((first("ringing"), first("busy"), last_idle), (Some(r), Some(b), Some(i)) if r < b && b < i),
        "{pbx}: ringing, then busy, then idle: {lamps:?}"
    );
}

/// Bob's page in both tests: registered, he lets a call ring 2.5 s,
/// answers, talks 2.5 s and hangs up (his lamp: ringing, busy, idle).
fn bob_answers_late(mic: &str, options: Value) -> Value {
    json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": options},
            {"do": "mark", "event": "bob_ready"},
            {"do": "wait_event", "event": "incoming", "timeoutMs": 60000},
            {"do": "sleep", "ms": 2500},
            {"do": "answer"},
            {"do": "sleep", "ms": 2500},
            {"do": "hangup"},
            {"do": "disconnect"},
        ],
    })
}

/// A page that calls `target` and waits until the call is hung up.
fn calls_until_hung_up(mic: &str, options: Value, target: &str) -> Value {
    json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": options},
            {"do": "call", "target": target},
            {"do": "wait_event", "event": "hangup", "timeoutMs": 30000},
            {"do": "disconnect"},
        ],
    })
}

#[test]
fn a_busy_lamp_and_the_voicemail_light_follow_kamailio_s_presence_server() {
    let scratch = Scratch::new("presence");
    let mic = scratch
        .tone("mic-1khz.wav", MIC_HZ, 48_000)
        .to_string_lossy()
        .into_owned();
    let kamailio = Kamailio::start(&Options {
        presence: true,
        ..Options::default()
    })
    .expect("kamailio with its presence server");
    let registrar = format!("127.0.0.1:{}", kamailio.udp_port)
        .parse()
        .expect("address");
    let mut relay = RelayProcess::start(registrar, &["--media-ports", "34700-34799"]);
    let options = |user: &str| {
        let password = USERS
            .iter()
            .find(|(name, _)| *name == user)
            .map(|(_, p)| *p)
            .expect("a Kamailio user");
        json!({
            "server": relay.ws_url(),
            "uri": format!("sip:{user}@{DOMAIN}"),
            "password": password,
            "reconnectMinMs": 200,
        })
    };
    let bob_uri = format!("sip:bob@{DOMAIN}");
    let bob = bob_answers_late(&mic, options("bob"));
    let carol = calls_until_hung_up(&mic, options("carol"), &bob_uri);
    let alice = json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": options("alice")},
            {"do": "watch", "target": bob_uri},
            {"do": "voicemail"},
            {"do": "presence", "target": bob_uri},
            {"do": "mark", "event": "publish_presence"},
            {"do": "wait_event", "name": "bob_open", "event": "presence_open", "timeoutMs": 20000},
            {"do": "mark", "event": "watching"},
            {"do": "wait_event", "name": "busy", "event": "lamp_busy", "timeoutMs": 40000},
            {"do": "wait_event", "name": "idle", "event": "lamp_idle", "timeoutMs": 40000},
            {"do": "mark", "event": "publish_mwi"},
            {"do": "wait_event", "name": "mwi", "event": "mwi", "timeoutMs": 20000},
            {"do": "mark", "event": "restart_relay"},
            {"do": "wait_event", "name": "reconnected", "event": "reconnected", "timeoutMs": 20000},
            {"do": "wait_event", "name": "registered", "event": "registered", "timeoutMs": 20000},
            {"do": "sleep", "ms": 1500},
            {"do": "mark", "event": "publish_mwi_again"},
            {"do": "wait_event", "name": "mwi_again", "event": "mwi", "timeoutMs": 20000},
            {"do": "disconnect"},
        ],
    });

    let bob = sdk_once_ready(&bob, "bob_ready");
    // Alice's marks set the others going; each step waits on this thread
    // while her page runs on.
    let mut carol_out = None;
    let mut published = Vec::new();
    let alice = browser::sdk(&alice.to_string(), |event| match event {
        "watching" => {
            carol_out =
                Some(browser::sdk(&carol.to_string(), |_| {}).expect("carol's browser ran"));
        }
        "publish_presence" => published.push(publish_presence(kamailio.udp_port)),
        "publish_mwi" => published.push(publish_mwi(kamailio.udp_port, 1, 2, 8)),
        "restart_relay" => relay.restart(),
        "publish_mwi_again" => published.push(publish_mwi(kamailio.udp_port, 2, 3, 8)),
        _ => {}
    })
    .expect("alice's browser ran");
    let a = parse(alice);
    let b = parse(
        bob.join()
            .expect("bob's thread")
            .expect("bob's browser ran"),
    );
    let c = parse(carol_out.expect("carol called"));
    for (who, v) in [("alice", &a), ("bob", &b), ("carol", &c)] {
        assert!(
            v["error"].is_null(),
            "{who}: {}\n{}\nkamailio:\n{}",
            v["error"],
            v["events"],
            kamailio.log_tail()
        );
    }
    assert_eq!(
        published,
        [200, 200, 200],
        "the presence server took bob's presence and both summaries"
    );
    let open = &a["steps"]["bob_open"]["detail"];
    assert_eq!(
        open["note"], "At his desk",
        "bob's presence, as he published it: {open}"
    );

    // The lamp: ringing, then busy, then idle, in that order.
    assert_lamp_rings_then_busy_then_idle(&a, "Kamailio");
    let busy_status = &a["steps"]["busy"]["detail"];
    assert_eq!(
        busy_status["entity"],
        format!("sip:bob@{DOMAIN}"),
        "{busy_status}"
    );

    // The voicemail light, with its counts, before and after the relay
    // restarted.
    let mwi = &a["steps"]["mwi"]["detail"];
    assert_eq!(mwi["waiting"], true, "{mwi}");
    assert_eq!(
        mwi["counts"][0],
        json!({"class": "voice", "new": 2, "old": 8, "urgentNew": 0, "urgentOld": 0})
    );
    let again = &a["steps"]["mwi_again"]["detail"];
    assert_eq!(again["counts"][0]["new"], 3, "after the restart: {again}");
}

/// The same lamp and light with no PBX: the relay's embedded PBX is the
/// presence server. Carol calls bob (he answers, then hangs up): alice's
/// lamp for bob goes ringing, busy, idle. Carol then calls alice, who
/// does not answer: the missed call lights alice's voicemail.
#[test]
fn the_embedded_pbx_serves_busy_lamps_and_counts_missed_calls_as_voicemail() {
    let scratch = Scratch::new("presence-embedded");
    let mic = scratch
        .tone("mic-1khz.wav", MIC_HZ, 48_000)
        .to_string_lossy()
        .into_owned();
    let relay = RelayProcess::start_embedded(
        &["--domain", "sipline.local", "--media-ports", "34800-34899"],
        "alice:alice-p,bob:bob-p,carol:carol-p",
    );
    let options = |user: &str| {
        json!({
            "server": relay.ws_url(),
            "uri": format!("sip:{user}@sipline.local"),
            "password": format!("{user}-p"),
        })
    };
    let bob = bob_answers_late(&mic, options("bob"));
    let carol_calls_bob = calls_until_hung_up(&mic, options("carol"), "sip:bob@sipline.local");
    let carol_calls_alice = json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": options("carol")},
            {"do": "ring_then_give_up", "target": "sip:alice@sipline.local", "ms": 2000},
            {"do": "disconnect"},
        ],
    });
    let alice = json!({
        "mic": mic,
        "steps": [
            {"do": "connect", "options": options("alice")},
            {"do": "watch", "target": "sip:bob@sipline.local"},
            {"do": "voicemail"},
            {"do": "presence", "target": "sip:bob@sipline.local"},
            {"do": "wait_event", "name": "bob_online", "event": "presence_open", "timeoutMs": 10000},
            {"do": "mark", "event": "watching"},
            {"do": "wait_event", "name": "busy", "event": "lamp_busy", "timeoutMs": 40000},
            {"do": "wait_event", "name": "idle", "event": "lamp_idle", "timeoutMs": 40000},
            // Bob leaves once his call is over: his presence closes.
            {"do": "wait_event", "name": "bob_offline", "event": "presence_closed", "timeoutMs": 30000},
            {"do": "mark", "event": "call_alice"},
            {"do": "wait_event", "name": "mwi", "event": "mwi", "timeoutMs": 30000},
            {"do": "disconnect"},
        ],
    });
    let bob = sdk_once_ready(&bob, "bob_ready");
    let mut carol_runs = Vec::new();
    let alice = browser::sdk(&alice.to_string(), |event| match event {
        "watching" => {
            carol_runs.push(browser::sdk(&carol_calls_bob.to_string(), |_| {}).expect("carol ran"))
        }
        "call_alice" => carol_runs
            .push(browser::sdk(&carol_calls_alice.to_string(), |_| {}).expect("carol ran")),
        _ => {}
    })
    .expect("alice's browser ran");
    let a = parse(alice);
    let b = parse(
        bob.join()
            .expect("bob's thread")
            .expect("bob's browser ran"),
    );
    let carols: Vec<Value> = carol_runs.into_iter().map(parse).collect();
    let everyone = [("alice", &a), ("bob", &b)]
        .into_iter()
        .chain(carols.iter().map(|c| ("carol", c)));
    for (who, v) in everyone {
        assert!(
            v["error"].is_null(),
            "{who}: {}\n{}",
            v["error"],
            v["events"]
        );
    }
    assert_lamp_rings_then_busy_then_idle(&a, "embedded PBX");
    let mwi = &a["steps"]["mwi"]["detail"];
    assert_eq!(mwi["waiting"], true, "{mwi}");
    assert_eq!(mwi["counts"][0]["new"], 1, "one missed call: {mwi}");
    // Presence: open while bob was registered, closed once he left.
    let online = &a["steps"]["bob_online"]["detail"];
    assert_eq!(online["entity"], "sip:bob@sipline.local", "{online}");
    assert_eq!(a["steps"]["bob_offline"]["detail"]["open"], false);
}
