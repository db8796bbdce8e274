//! How many SIP messages per second sipline's core parses once compiled to
//! WebAssembly, measured in the browser beside JsSIP's parser on the same
//! messages (`run.sh` builds this crate, the page and runs Chromium).
//!
//! The page does the timing with `performance.now()` around one call; this
//! crate only provides loops that parse, so that the number measured is the
//! parser's and not the cost of crossing from JavaScript to wasm once per
//! message. The messages are copied into wasm memory once, by
//! [`Corpus::new`], before any timing starts. [`parse_one`] is the other
//! case, on purpose: one call per JavaScript string, copy included, which is
//! what a WebSocket frame received as text costs the SDK.
//!
//! Every loop folds something read from each parsed message into a checksum
//! that goes back to JavaScript, so the optimiser cannot drop the work.

use std::hint::black_box;

use sipline_core::auth::{Challenge, ChallengeKind};
use sipline_core::sip::{HeaderName, Message, NameAddr, Uri};
use wasm_bindgen::prelude::*;

/// What one timed loop did: how many parses succeeded, and a checksum of
/// what was read from them (returned so that the work is observable and
/// cannot be optimised away; the page also checks that it is non-zero).
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Parses that returned `Ok` (messages × iterations when all are valid).
    pub ok: u32,
    /// Wrapping sum of header counts, CSeq numbers and body lengths (and,
    /// for [`Corpus::parse_eager`], of the extra headers parsed).
    pub checksum: u32,
}

/// The benchmark's messages, already in wasm memory as bytes, so that the
/// timed calls measure parsing alone.
#[wasm_bindgen]
pub struct Corpus {
    messages: Vec<Box<[u8]>>,
}

#[wasm_bindgen]
impl Corpus {
    /// Splits `joined` at `separator` (the page uses NUL, which no SIP
    /// header may hold and these bodies do not) and copies each message into
    /// its own buffer: done once, outside the timed loop.
    #[wasm_bindgen(constructor)]
    pub fn new(joined: &str, separator: &str) -> Corpus {
        Corpus {
            messages: joined
                .split(separator)
                .filter(|m| !m.is_empty())
                .map(|m| m.as_bytes().into())
                .collect(),
        }
    }

    /// How many messages the corpus holds, for the page to check that the
    /// split matched what it sent.
    pub fn count(&self) -> u32 {
        u32::try_from(self.messages.len()).unwrap_or(u32::MAX)
    }

    /// Parses every message `iterations` times with `Message::parse`, as the
    /// core does with every frame it receives: the start line, every header
    /// line split and its name checked, and the headers the core relies on
    /// (Via, From, To, Call-ID, CSeq, Content-Length, Max-Forwards, Expires)
    /// validated; other values stay unparsed slices.
    pub fn parse(&self, iterations: u32) -> Tally {
        self.run(iterations, |m| {
            sum(m.headers().len(), m.cseq().seq as usize + m.body().len())
        })
    }

    /// As [`Corpus::parse`], then also parses the headers JsSIP's
    /// `parseMessage` parses eagerly and `Message::parse` leaves for later:
    /// the Request-URI, every Contact and Record-Route value, and
    /// WWW-/Proxy-Authenticate challenges. The closest like-for-like.
    pub fn parse_eager(&self, iterations: u32) -> Tally {
        self.run(iterations, |m| {
            sum(
                m.headers().len() + m.cseq().seq as usize + m.body().len(),
                eager_extras(m),
            )
        })
    }
}

impl Corpus {
    fn run(&self, iterations: u32, read: impl Fn(&Message<'_>) -> u32) -> Tally {
        let mut tally = Tally::default();
        for _ in 0..iterations {
            for message in &self.messages {
                // black_box: each iteration must parse again, not reuse the
                // previous (identical) result.
                if let Ok(m) = Message::parse(black_box(message)) {
                    tally.ok += 1;
                    tally.checksum = tally.checksum.wrapping_add(read(&m));
                }
            }
        }
        tally
    }
}

/// Parses `joined` (messages separated by `separator`) `iterations` times:
/// the one-call form of [`Corpus::new`] then [`Corpus::parse`]. The copy into
/// wasm memory happens once per call, not once per parse.
#[wasm_bindgen]
pub fn parse_messages(joined: &str, separator: &str, iterations: u32) -> Tally {
    Corpus::new(joined, separator).parse(iterations)
}

/// Parses one message handed over as a JavaScript string: the string is
/// copied (UTF-16 to UTF-8) into wasm memory by the generated glue on every
/// call, which is the real per-frame cost when the SDK receives text frames.
/// Returns the header count, or 0 when the message is refused.
#[wasm_bindgen]
pub fn parse_one(message: &str) -> u32 {
    Message::parse(message.as_bytes()).map_or(0, |m| sum(m.headers().len(), 0))
}

/// The extra parsing of [`Corpus::parse_eager`]: what JsSIP parses on
/// arrival that sipline parses only when asked. Returns how many values
/// parsed, so that each one counts in the checksum.
fn eager_extras(m: &Message<'_>) -> usize {
    let uri = m.request_uri().and_then(Uri::parse).is_some();
    let contacts = m
        .header_values(HeaderName::Contact)
        .filter(|v| *v == "*" || NameAddr::parse(v).is_some())
        .count();
    let routes = m
        .header_values(HeaderName::RecordRoute)
        .filter(|v| NameAddr::parse(v).is_some())
        .count();
    let challenges = m
        .header_lines(HeaderName::WwwAuthenticate)
        .filter_map(|v| Challenge::parse(ChallengeKind::Www, v))
        .chain(
            m.header_lines(HeaderName::ProxyAuthenticate)
                .filter_map(|v| Challenge::parse(ChallengeKind::Proxy, v)),
        )
        .map(|c| c.nonce.len())
        .sum::<usize>();
    usize::from(uri) + contacts + routes + challenges
}

/// Folds two counts into the 32-bit checksum (truncation is fine for a
/// checksum).
fn sum(a: usize, b: usize) -> u32 {
    a.wrapping_add(b) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The files the page loads, in the order it shows them.
    const MESSAGES: [&[u8]; 6] = [
        include_bytes!("../messages/1_invite_sdp_via_relay.sip"),
        include_bytes!("../messages/2_200_invite_sdp.sip"),
        include_bytes!("../messages/3_register.sip"),
        include_bytes!("../messages/4_401_register.sip"),
        include_bytes!("../messages/5_bye.sip"),
        include_bytes!("../messages/6_200_bye.sip"),
    ];

    fn joined() -> String {
        MESSAGES
            .iter()
            .map(|m| std::str::from_utf8(m).expect("UTF-8 message"))
            .collect::<Vec<_>>()
            .join("\0")
    }

    #[test]
    fn every_message_parses_and_every_eager_header_too() {
        for raw in MESSAGES {
            let m = Message::parse(raw).expect("valid message");
            // Content-Length matches the body exactly: no trailing bytes.
            let header_end = raw
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .expect("end of headers");
            assert_eq!(m.body().len(), raw.len() - header_end - 4);
            let wanted = usize::from(m.is_request())
                + m.header_values(HeaderName::Contact).count()
                + m.header_values(HeaderName::RecordRoute).count();
            let challenges: usize = m
                .header_lines(HeaderName::WwwAuthenticate)
                .map(|v| {
                    Challenge::parse(ChallengeKind::Www, v)
                        .expect("supported challenge")
                        .nonce
                        .len()
                })
                .sum();
            assert_eq!(eager_extras(&m), wanted + challenges);
        }
    }

    #[test]
    fn corpus_loops_count_every_parse() {
        let corpus = Corpus::new(&joined(), "\0");
        assert_eq!(corpus.count(), 6);
        let once = corpus.parse(1);
        assert_eq!(once.ok, 6);
        let thrice = corpus.parse(3);
        assert_eq!(thrice.ok, 18);
        assert_eq!(thrice.checksum, once.checksum.wrapping_mul(3));
        assert_eq!(parse_messages(&joined(), "\0", 3), thrice);
        let eager = corpus.parse_eager(1);
        assert_eq!(eager.ok, 6);
        assert!(eager.checksum > once.checksum);
    }

    #[test]
    fn parse_one_reports_header_count_or_zero() {
        let bye = std::str::from_utf8(MESSAGES[4]).expect("UTF-8");
        assert_eq!(parse_one(bye), 9);
        assert_eq!(parse_one("BYE sip:x SIP/2.0\r\n\r\n"), 0);
    }
}
