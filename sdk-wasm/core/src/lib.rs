//! The sans-IO SIP user agent of sipline.
//!
//! Nothing in this crate touches a socket, a clock or the browser. The caller
//! (the wasm web layer, the native shell of the tests, the load generator)
//! feeds it three kinds of input: bytes that arrived from the transport, the
//! current time, and what the application asks for. It returns bytes to send,
//! the next instant it wants to be woken at, and events for the application.
//! That is what lets the same code run in a browser, in `cargo test` with
//! explicit time, and under load in a native tool.
//!
//! Layout:
//! - [`sip`]: the lean zero-copy SIP message parser and builder (the relay
//!   shares it);
//! - [`transaction`]: RFC 3261 transactions for reliable transports;
//! - [`auth`]: HTTP digest (RFC 2617/7616/8760) for SIP;
//! - [`registration`]: the REGISTER client (refresh, 423, outbound);
//! - [`ua`]: the user agent that ties them together.

pub mod auth;
pub mod rand;
pub mod registration;
pub mod sip;
pub mod time;
pub mod transaction;
pub mod ua;

pub use time::Instant;
pub use ua::{Config, Event, Secret, UserAgent};
