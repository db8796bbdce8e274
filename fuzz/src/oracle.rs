//! Oracles several targets assert on what sipline sends.

use sipline_core::sip::Message;

/// A keep-alive (RFC 5626 §3.5.1): CR and LF only, nothing else.
pub fn is_keepalive(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| b == b'\r' || b == b'\n')
}

/// Panics unless `bytes`, which sipline sent (`what` says where), is a
/// keep-alive or a message its own parser accepts: a peer running
/// sipline must never have to drop what another one wrote.
pub fn assert_sip(what: &str, bytes: &[u8]) {
    if is_keepalive(bytes) {
        return;
    }
    if let Err(e) = Message::parse(bytes) {
        panic!(
            "{what} sent a message its own parser refuses ({e}):\n{}",
            String::from_utf8_lossy(bytes)
        );
    }
}
