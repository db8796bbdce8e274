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
//! - [`sdp`]: the offer/answer bodies, parsed and rewritten;
//! - `session_timer`: RFC 4028 session timers of calls;
//! - [`ua`]: the user agent that ties them together.
//!
//! A shell's whole job, in miniature (here the "server" is a canned 200):
//!
//! ```
//! use sipline_core::{Config, Event, Instant, Secret, UserAgent};
//! use sipline_core::sip::{response_to, Message, Method};
//!
//! let mut config = Config::new("sip:alice@sipline.test");
//! config.password = Some(Secret::new("alice-secret"));
//! let mut ua = UserAgent::new(config, [7; 32]).expect("valid config");
//!
//! let now = Instant::from_millis(0);
//! ua.transport_connected(now); // the WebSocket opened
//! let register = ua.poll_transmit().expect("a REGISTER to send");
//! let request = Message::parse(&register).expect("valid SIP");
//! assert_eq!(request.method(), Some(Method::Register));
//!
//! // The registrar's answer arrives as one WebSocket frame.
//! let ok = response_to(&request, 200, "OK", Some("srv")).finish(None, b"");
//! ua.handle_message(now, &ok).expect("well-formed");
//! assert_eq!(ua.poll_event(), Some(Event::Registering));
//! assert_eq!(ua.poll_event(), Some(Event::Registered { expires: 600 }));
//!
//! // The shell sleeps until the core's next deadline (a keep-alive or
//! // the refresh at 90 % of 600 s), then calls handle_timeout.
//! assert!(ua.poll_timeout().is_some());
//! ```

#![no_std]
#![cfg_attr(not(test), deny(clippy::string_slice))]

// The core needs a heap (`alloc`) and nothing else of `std`, so the browser
// SDK's wasm carries no `std` (its panic and formatting machinery are the
// bytes a page would pay for); the relay and the tests use it with `std`.
extern crate alloc;
#[cfg(test)]
extern crate std;

mod prelude;

pub mod auth;
pub mod call;
pub mod config;
mod ctx;
pub mod dialog;
pub mod error;
pub mod event;
pub mod ids;
mod input;
pub mod message;
pub mod rand;
pub mod registration;
pub mod sdp;
pub mod secret;
mod session_timer;
pub mod sip;
pub mod status;
mod subscription;
pub mod time;
pub mod transaction;
pub mod ua;

pub use config::{Config, ConfigError, HeaderError};
pub use error::ActionError;
pub use event::{Event, HoldBy, Recording, RemoteCandidate};
pub use ids::{CallId, MessageId, SubscriptionId};
pub use secret::Secret;
pub use time::Instant;
pub use ua::UserAgent;
