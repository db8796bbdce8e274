//! The native user agent (`sipline-ua-shell`: the SDK's core over a real
//! WebSocket) as a test's phone, for what needs no browser.

use std::time::Duration;

use sipline_core::{Config, Event, Secret};
use sipline_test_harness::kamailio::DOMAIN;
use sipline_ua_shell::{Backoff, Phone, ShellEvent};
use tokio::time::timeout;

/// `user` of the Kamailio test domain, with `password`.
pub fn config(user: &str, password: &str) -> Config {
    let mut c = Config::new(format!("sip:{user}@{DOMAIN}"));
    c.password = Some(Secret::new(password));
    c
}

/// The phone's first registration outcome (registered, or failed with a
/// code) within `within`; panics, naming what else it saw, without one.
pub async fn outcome(phone: &mut Phone, within: Duration) -> Event {
    let mut seen = Vec::new();
    let got = timeout(within, async {
        while let Some(ev) = phone.next_event().await {
            match ev {
                ShellEvent::Ua(
                    e @ (Event::Registered { .. } | Event::RegistrationFailed { .. }),
                ) => return Some(e),
                other => seen.push(other),
            }
        }
        None
    })
    .await;
    got.ok()
        .flatten()
        .unwrap_or_else(|| panic!("no registration outcome within {within:?}; saw {seen:#?}"))
}

/// `user` registers through `relay` within 5 s.
pub async fn registers(relay: &super::RelayProcess, (user, password): (&str, &str)) {
    let mut phone =
        Phone::spawn(&relay.ws_url(), config(user, password), Backoff::default()).expect("shell");
    let ev = outcome(&mut phone, Duration::from_secs(5)).await;
    assert!(matches!(ev, Event::Registered { .. }), "{ev:?}");
    phone.shutdown().await;
}

/// `user`'s registration through `relay` is refused with `503` within 2 s.
pub async fn refused_at_once(relay: &super::RelayProcess, (user, password): (&str, &str)) {
    let started = std::time::Instant::now();
    let mut phone =
        Phone::spawn(&relay.ws_url(), config(user, password), Backoff::default()).expect("shell");
    let ev = outcome(&mut phone, Duration::from_secs(5)).await;
    assert!(
        matches!(ev, Event::RegistrationFailed { code: 503, .. }),
        "{ev:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    phone.shutdown().await;
}
