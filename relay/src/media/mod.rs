//! The media half of the relay (issue 5), sans-IO like the signalling:
//! SDP rewriting between WebRTC and plain RTP, ICE-lite, DTLS-SRTP, SDES-SRTP
//! toward the PBX, SRTP in place, the media port range, and the per-call
//! session that joins them.
//! The sockets, and the threads that move every call's datagrams, are in
//! [`crate::net::engine`] and [`crate::net::media`].

pub mod call;
pub mod calls;
pub mod decode;
pub mod dtls;
pub mod dtmf;
pub mod g711;
pub mod ice;
pub mod liveness;
pub mod ports;
pub mod record;
pub mod sdes;
pub mod sdp;
pub mod session;
pub mod srtp;
pub mod stats;
pub mod stereo;

#[cfg(test)]
mod tests;
