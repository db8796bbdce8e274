//! The sipline relay: lets browsers speaking SIP over WebSocket (RFC 7118)
//! reach a PBX that speaks SIP over UDP, and nothing else.
//!
//! - [`signalling`]: the sans-IO proxy (flow tokens, Via, Record-Route,
//!   routing policy, transactions toward the PBX);
//! - [`media`]: the sans-IO media half (SDP rewriting, ICE-lite, DTLS-SRTP,
//!   SRTP, the port pool and the per-call session; issue 5);
//! - [`net`]: the thin tokio shells (axum WebSocket, UDP, a call's media
//!   sockets);
//! - [`ops`]: configuration and metrics;
//! - [`ids`]: the ids both halves name connections and calls' media by;
//! - [`transport`]: UDP, TCP or TLS toward a PBX.

pub mod ids;
pub mod media;
pub mod net;
pub mod ops;
pub mod signalling;
pub mod transport;
