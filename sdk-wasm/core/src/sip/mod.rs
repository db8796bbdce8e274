//! SIP messages: a lean zero-copy parser and a builder.
//!
//! The parser checks what a user agent or a proxy must be able to trust
//! (start line, header syntax, the headers that identify a transaction,
//! Content-Length against the body) and leaves every header value as a
//! borrowed slice, parsed only when read. `rsip` is its test oracle: the
//! differential tests in `tests/` parse one corpus with both.

use crate::prelude::*;

mod build;
mod header;
mod parse;
mod values;

pub use build::{MessageBuilder, response_to};
pub use header::HeaderName;
pub(crate) use parse::is_control;
pub use parse::{Header, Limits, Message, ParseError, StartLine};
pub use values::{
    AuthParams, CSeq, NameAddr, Params, Uri, Via, split_commas, split_params, unquote,
};

/// The SIP methods this stack knows by name.
///
/// Extension methods still parse (a message keeps its method as text); this
/// enum is for the places that act on a method, such as transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// RFC 3261 INVITE.
    Invite,
    /// RFC 3261 ACK.
    Ack,
    /// RFC 3261 BYE.
    Bye,
    /// RFC 3261 CANCEL.
    Cancel,
    /// RFC 3261 REGISTER.
    Register,
    /// RFC 3261 OPTIONS.
    Options,
    /// RFC 6086 INFO.
    Info,
    /// RFC 3311 UPDATE.
    Update,
    /// RFC 3262 PRACK.
    Prack,
    /// RFC 6665 SUBSCRIBE.
    Subscribe,
    /// RFC 6665 NOTIFY.
    Notify,
    /// RFC 3515 REFER.
    Refer,
    /// RFC 3428 MESSAGE.
    Message,
    /// RFC 3903 PUBLISH.
    Publish,
}

impl Method {
    /// Every known method, for tables indexed by method.
    pub const ALL: [Method; 14] = [
        Method::Invite,
        Method::Ack,
        Method::Bye,
        Method::Cancel,
        Method::Register,
        Method::Options,
        Method::Info,
        Method::Update,
        Method::Prack,
        Method::Subscribe,
        Method::Notify,
        Method::Refer,
        Method::Message,
        Method::Publish,
    ];

    /// The method's name as it appears on the wire (methods are case-sensitive).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
        }
    }

    /// The known method spelled exactly `s`, if any.
    pub fn from_name(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// The reason phrase RFC 3261 §21 (and the RFCs that added codes) give a
/// status a user agent sends when refusing or ending a call, for an
/// application that names only the code; `Declined` for others.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        380 => "Alternative Service",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        410 => "Gone",
        415 => "Unsupported Media Type",
        480 => "Temporarily Unavailable",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        607 => "Unwanted",
        _ => "Declined",
    }
}

/// RFC 3261 `token` characters: what method names, header names and most
/// parameter names are made of.
pub(crate) fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}

/// Whether `s` is a non-empty RFC 3261 token.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// Index of the first byte `b` (ASCII) in `s`. A plain byte scan: on the
/// short slices SIP is made of it beats `str::find`'s generic char searcher
/// (measured: the searcher was 17 % of a REGISTER parse).
pub(crate) fn find_byte(s: &str, b: u8) -> Option<usize> {
    s.bytes().position(|c| c == b)
}

/// Index of the first `needle` in `s`: a plain byte scan, which UTF-8
/// makes exact (a match of whole characters can only start on a character).
/// Not `str::find(&str)`: its two-way searcher (and the slicing panic it
/// links) is kilobytes of the SDK's wasm, for needles of a few bytes.
pub(crate) fn find_str(s: &str, needle: &str) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    s.as_bytes()
        .windows(needle.len())
        .position(|w| w == needle.as_bytes())
}

// `&s[..end]`, `&s[start..]` and `&s[start..end]` without their panic
// path: a `str` index that is not on a character boundary panics through
// `core`'s slicing error, which formats the offending character with
// `Debug` and links Unicode tables, kilobytes of the SDK's wasm. Every
// index the core slices at comes from a scan of ASCII bytes, so these
// never miss; if one did, the part would read as empty instead of
// panicking on network input. (`clippy::string_slice` keeps plain string
// slicing out of the core.)

/// `s` up to byte `end`.
pub(crate) fn str_to(s: &str, end: usize) -> &str {
    s.get(..end).unwrap_or_default()
}

/// `s` from byte `start`.
pub(crate) fn str_from(s: &str, start: usize) -> &str {
    s.get(start..).unwrap_or_default()
}

/// `s` from byte `start` up to byte `end`.
pub(crate) fn str_range(s: &str, start: usize, end: usize) -> &str {
    s.get(start..end).unwrap_or_default()
}

/// `s` split around its first byte `b` (ASCII), that byte dropped.
pub(crate) fn split_at_byte(s: &str, b: u8) -> Option<(&str, &str)> {
    let i = find_byte(s, b)?;
    Some((str_to(s, i), str_from(s, i + 1)))
}

/// Appends `n` in decimal without going through `core::fmt`, which would
/// pull formatting machinery into the wasm build.
pub fn push_decimal(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &buf[i..] {
        out.push(d as char);
    }
}

/// Appends a byte as two lowercase hex digits.
pub(crate) fn push_hex_byte(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push(HEX[(b >> 4) as usize] as char);
    out.push(HEX[(b & 0xf) as usize] as char);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_names_round_trip() {
        for m in Method::ALL {
            assert_eq!(Method::from_name(m.as_str()), Some(m));
        }
        assert_eq!(Method::from_name("invite"), None);
        assert_eq!(Method::from_name("NEWMETHOD"), None);
    }

    #[test]
    fn decimal_and_hex() {
        let mut s = String::new();
        push_decimal(&mut s, 0);
        s.push(' ');
        push_decimal(&mut s, u64::MAX);
        s.push(' ');
        push_hex_byte(&mut s, 0xa5);
        assert_eq!(s, "0 18446744073709551615 a5");
    }
}
