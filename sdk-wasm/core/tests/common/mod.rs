//! What the core's scenario tests share: time in seconds, and what the
//! user agent sent and told, drained.

#![allow(dead_code)] // each test file uses its own part of this module

use sipline_core::sip::Message;
use sipline_core::{Event, Instant, UserAgent};

/// `secs` seconds after the tests' time origin.
pub fn at(secs: f64) -> Instant {
    Instant::from_millis((secs * 1000.0) as u64)
}

/// Every frame the agent wants sent, as text, keep-alives left out.
pub fn sent(ua: &mut UserAgent) -> Vec<String> {
    std::iter::from_fn(|| ua.poll_transmit())
        .map(|b| String::from_utf8(b).expect("utf8"))
        .filter(|t| !t.trim().is_empty())
        .collect()
}

/// Every event the agent has for the application.
pub fn events(ua: &mut UserAgent) -> Vec<Event> {
    std::iter::from_fn(|| ua.poll_event()).collect()
}

/// `text` parsed, or the test fails saying why.
pub fn parse(text: &str) -> Message<'_> {
    Message::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}: {text}"))
}
