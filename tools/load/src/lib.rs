//! Load for WebRTC-to-SIP gateways, and the simulated browser the relay's
//! tests use.
//!
//! [`peer`] is one browser's media side (offer, ICE check, DTLS client,
//! SRTP keys), sans-IO. [`sip`] sets calls up: the browser's side over
//! SIP-over-WebSocket (RFC 7118) and, when the load plays the PBX too, a
//! small UAS over UDP. [`run`] drives N calls at a set packet rate and
//! measures each direction: packets, loss, and latency through the gateway
//! (every packet carries its send time). The `sipline-load` command wraps
//! it; `tools/load/capacity.sh` finds how many calls one relay core
//! carries.

pub mod peer;
pub mod run;
pub mod sip;
