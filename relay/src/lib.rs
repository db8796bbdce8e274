//! The sipline relay: lets browsers speaking SIP over WebSocket (RFC 7118)
//! reach a PBX that speaks SIP over UDP, and nothing else.
//!
//! - [`signalling`]: the sans-IO proxy (flow tokens, Via, Record-Route,
//!   routing policy, transactions toward the PBX);
//! - [`media`]: the sans-IO media half (SDP rewriting so far, issue 5);
//! - [`net`]: the thin tokio shells (axum WebSocket, UDP);
//! - [`ops`]: configuration and metrics.

pub mod media;
pub mod net;
pub mod ops;
pub mod signalling;
