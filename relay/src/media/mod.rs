//! The media half of the relay (issue 5), sans-IO like the signalling:
//! so far, the SDP rewriting between WebRTC and plain RTP.

pub mod sdp;

#[cfg(test)]
mod tests;
