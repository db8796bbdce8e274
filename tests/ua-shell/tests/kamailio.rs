//! The core, through the native shell, against a real Kamailio over a real
//! WebSocket on 127.0.0.1. Each test starts and stops its own Kamailio.

use std::time::Duration;

use sipline_core::transaction::TimerConfig;
use sipline_core::{Config, Event, Secret};
use sipline_test_harness::kamailio::{DOMAIN, Digest, Kamailio, Options};
use sipline_ua_shell::{Backoff, Phone, ShellEvent};
use tokio::time::timeout;

fn config(user: &str, password: &str) -> Config {
    let mut c = Config::new(format!("sip:{user}@{DOMAIN}"));
    c.password = Some(Secret::new(password));
    c
}

fn start(opts: Options) -> Kamailio {
    Kamailio::start(&opts).unwrap_or_else(|e| panic!("{e}"))
}

fn fast_backoff() -> Backoff {
    Backoff {
        min: Duration::from_millis(100),
        max: Duration::from_secs(1),
    }
}

/// Waits for the first event matching `want`, failing with everything seen.
async fn expect(
    phone: &mut Phone,
    within: Duration,
    what: &str,
    want: impl Fn(&ShellEvent) -> bool,
) -> ShellEvent {
    let mut seen = Vec::new();
    let found = timeout(within, async {
        while let Some(ev) = phone.next_event().await {
            if want(&ev) {
                return Some(ev);
            }
            seen.push(ev);
        }
        None
    })
    .await;
    match found {
        Ok(Some(ev)) => ev,
        _ => panic!("no {what} within {within:?}; saw {seen:#?}"),
    }
}

fn registered(ev: &ShellEvent) -> bool {
    matches!(ev, ShellEvent::Ua(Event::Registered { .. }))
}

fn registration_outcome(ev: &ShellEvent) -> bool {
    registered(ev) || matches!(ev, ShellEvent::Ua(Event::RegistrationFailed { .. }))
}

fn unregistered(ev: &ShellEvent) -> bool {
    matches!(ev, ShellEvent::Ua(Event::Unregistered { .. }))
}

#[tokio::test]
async fn registers_refreshes_through_a_stale_nonce_and_unregisters() {
    // Short intervals so the refresh happens within the test: 5 s granted
    // means a refresh at 4.5 s, after the 3 s nonce has expired, so the
    // refresh's cached credentials meet a `stale=true` challenge.
    let k = start(Options {
        nonce_expire: 3,
        min_expires: 1,
        ..Options::default()
    });
    let mut c = config("alice", "alice-secret");
    c.register_expires = 5;
    let mut phone = Phone::spawn(&k.ws_url(), c, Backoff::default()).expect("shell starts");
    let wait = Duration::from_secs(5);
    expect(&mut phone, wait, "connected", |e| {
        *e == ShellEvent::Connected
    })
    .await;
    let first = expect(&mut phone, wait, "registration", registration_outcome).await;
    assert_eq!(
        first,
        ShellEvent::Ua(Event::Registered { expires: 5 }),
        "{}",
        k.log_tail()
    );
    let refresh = expect(
        &mut phone,
        Duration::from_secs(8),
        "refresh",
        registration_outcome,
    )
    .await;
    assert_eq!(
        refresh,
        ShellEvent::Ua(Event::Registered { expires: 5 }),
        "{}",
        k.log_tail()
    );
    phone.unregister();
    let gone = expect(&mut phone, wait, "unregistered", unregistered).await;
    assert_eq!(
        gone,
        ShellEvent::Ua(Event::Unregistered {
            code: None,
            reason: "OK".into()
        })
    );
    phone.shutdown().await;
}

#[tokio::test]
async fn wrong_password_reports_kamailios_403() {
    let k = start(Options::default());
    let c = config("bob", "not-bobs-password");
    let mut phone = Phone::spawn(&k.ws_url(), c, Backoff::default()).expect("shell starts");
    let ev = expect(
        &mut phone,
        Duration::from_secs(5),
        "registration outcome",
        registration_outcome,
    )
    .await;
    let ShellEvent::Ua(failure) = ev else {
        unreachable!("filtered on Ua events")
    };
    assert_eq!(failure.to_string(), "registration failed: 403 Forbidden");
    assert_eq!(
        failure,
        Event::RegistrationFailed {
            code: 403,
            reason: "Forbidden".into(),
            retry_in: None
        }
    );
    phone.shutdown().await;
}

#[tokio::test]
async fn registers_with_sha256_digest() {
    let k = start(Options {
        digest: Digest::Sha256,
        ..Options::default()
    });
    let c = config("carol", "carol-secret");
    let mut phone = Phone::spawn(&k.ws_url(), c, Backoff::default()).expect("shell starts");
    let ev = expect(
        &mut phone,
        Duration::from_secs(5),
        "registration outcome",
        registration_outcome,
    )
    .await;
    assert_eq!(
        ev,
        ShellEvent::Ua(Event::Registered { expires: 600 }),
        "{}",
        k.log_tail()
    );
    phone.shutdown().await;
}

#[tokio::test]
async fn interval_too_brief_is_raised_to_kamailios_min_expires() {
    let k = start(Options {
        min_expires: 120,
        ..Options::default()
    });
    let mut c = config("alice", "alice-secret");
    c.register_expires = 30;
    let mut phone = Phone::spawn(&k.ws_url(), c, Backoff::default()).expect("shell starts");
    let ev = expect(
        &mut phone,
        Duration::from_secs(5),
        "registration outcome",
        registration_outcome,
    )
    .await;
    assert_eq!(
        ev,
        ShellEvent::Ua(Event::Registered { expires: 120 }),
        "{}",
        k.log_tail()
    );
    phone.shutdown().await;
}

#[tokio::test]
async fn dropped_websocket_is_reconnected_and_reregistered() {
    let k = start(Options::default());
    let c = config("bob", "bob-secret");
    let mut phone = Phone::spawn(&k.ws_url(), c, fast_backoff()).expect("shell starts");
    let wait = Duration::from_secs(5);
    expect(&mut phone, wait, "registered", registered).await;
    phone.drop_connection();
    let lost = expect(&mut phone, wait, "unregistered", unregistered).await;
    assert_eq!(
        lost,
        ShellEvent::Ua(Event::Unregistered {
            code: None,
            reason: "transport closed".into()
        })
    );
    expect(&mut phone, wait, "disconnected", |e| {
        matches!(e, ShellEvent::Disconnected { .. })
    })
    .await;
    expect(&mut phone, wait, "reconnected", |e| {
        *e == ShellEvent::Connected
    })
    .await;
    let again = expect(&mut phone, wait, "registration", registration_outcome).await;
    assert_eq!(
        again,
        ShellEvent::Ua(Event::Registered { expires: 600 }),
        "{}",
        k.log_tail()
    );
    phone.shutdown().await;
}

#[tokio::test]
async fn stopped_server_is_reported_and_reconnection_keeps_trying() {
    let k = start(Options::default());
    let c = config("alice", "alice-secret");
    let mut phone = Phone::spawn(&k.ws_url(), c, fast_backoff()).expect("shell starts");
    let wait = Duration::from_secs(5);
    expect(&mut phone, wait, "registered", registered).await;
    drop(k);
    expect(&mut phone, wait, "unregistered", unregistered).await;
    expect(&mut phone, wait, "disconnected", |e| {
        matches!(e, ShellEvent::Disconnected { .. })
    })
    .await;
    // Nothing listens now: each attempt fails and is retried.
    expect(
        &mut phone,
        wait,
        "refused reconnection",
        |e| matches!(e, ShellEvent::Disconnected { reason, .. } if reason.contains("refused")),
    )
    .await;
    phone.shutdown().await;
}

/// A WebSocket server that accepts `sip` connections and never answers:
/// a dead registrar behind a live socket.
#[allow(clippy::result_large_err)] // tungstenite's callback signature
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("ws://{}/", listener.local_addr().expect("addr"));
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let answer = |_: &Request, mut resp: Response| {
                    resp.headers_mut().insert(
                        "Sec-WebSocket-Protocol",
                        "sip".parse().expect("valid header"),
                    );
                    Ok(resp)
                };
                if let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, answer).await {
                    while ws.next().await.is_some() {}
                }
            });
        }
    });
    (url, task)
}

#[tokio::test]
async fn silent_registrar_gives_408_after_the_request_timeout() {
    let (url, server) = silent_server().await;
    let mut c = config("alice", "alice-secret");
    c.timers = TimerConfig {
        request_timeout: Duration::from_secs(2),
        ..TimerConfig::default()
    };
    let mut phone = Phone::spawn(&url, c, Backoff::default()).expect("shell starts");
    let started = tokio::time::Instant::now();
    let ev = expect(
        &mut phone,
        Duration::from_secs(5),
        "registration outcome",
        registration_outcome,
    )
    .await;
    assert!(
        matches!(
            ev,
            ShellEvent::Ua(Event::RegistrationFailed {
                code: 408,
                retry_in: Some(_),
                ..
            })
        ),
        "{ev:?}"
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(4),
        "{took:?}"
    );
    phone.shutdown().await;
    server.abort();
}
