//! The media half of the relay (issue 5), sans-IO like the signalling:
//! so far, the SDP rewriting between WebRTC and plain RTP, ICE-lite, and
//! SRTP in place.

pub mod dtls;
pub mod ice;
pub mod sdp;
pub mod srtp;

#[cfg(test)]
mod tests;
