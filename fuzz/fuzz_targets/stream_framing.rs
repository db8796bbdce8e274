//! The relay's framing of SIP over TCP and TLS (`net::framing`), on a raw
//! byte stream cut into arbitrary reads.
//!
//! Oracles, beyond "no panic" and no endless loop:
//! - how the stream is cut into reads changes nothing: the frames (and the
//!   error, if any) are those of the whole stream pushed at once;
//! - every message is a run of the input, in order, no longer than the
//!   limit, and its header ends before its Content-Length's body.

#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use sipline_relay::net::framing::{Frame, Framer, FramingError};

#[derive(Arbitrary, Debug)]
struct Input {
    /// The limit, small so that it is reached.
    max: u16,
    /// Where the reads end (each a length, modulo what is left).
    cuts: Vec<u8>,
    stream: Vec<u8>,
}

/// Every frame until the bytes run out or the stream is refused.
fn drain(f: &mut Framer, out: &mut Vec<Frame>) -> Option<FramingError> {
    loop {
        match f.next_frame() {
            Ok(Some(frame)) => out.push(frame),
            Ok(None) => return None,
            Err(e) => return Some(e),
        }
    }
}

fuzz_target!(|input: Input| {
    let max = usize::from(input.max).max(16);
    let mut whole = Framer::new(max);
    whole.push(&input.stream);
    let mut expected = Vec::new();
    let expected_error = drain(&mut whole, &mut expected);

    let mut cut = Framer::new(max);
    let mut got = Vec::new();
    let mut error = None;
    let mut rest = &input.stream[..];
    let mut cuts = input.cuts.iter().cycle();
    while !rest.is_empty() && error.is_none() {
        let n = cuts
            .next()
            .map_or(rest.len(), |&c| usize::from(c).max(1))
            .min(rest.len());
        cut.push(&rest[..n]);
        rest = &rest[n..];
        error = drain(&mut cut, &mut got);
    }
    // Keep-alive bytes come as they arrive (a ping cut apart is pongs):
    // compare runs of them as one.
    let runs = |frames: &[Frame]| {
        let mut v: Vec<Option<&Vec<u8>>> = frames
            .iter()
            .map(|f| match f {
                Frame::Message(m) => Some(m),
                Frame::Ping | Frame::Pong => None,
            })
            .collect();
        v.dedup();
        v.len()
    };
    let messages = |frames: &[Frame]| -> Vec<Vec<u8>> {
        frames
            .iter()
            .filter_map(|f| match f {
                Frame::Message(m) => Some(m.clone()),
                Frame::Ping | Frame::Pong => None,
            })
            .collect()
    };
    assert_eq!(
        messages(&got),
        messages(&expected),
        "the reads changed the messages"
    );
    assert_eq!(
        runs(&got),
        runs(&expected),
        "the reads changed the keep-alives"
    );
    assert_eq!(error, expected_error, "the reads changed the verdict");

    let mut at = 0;
    for m in messages(&expected) {
        assert!(m.len() <= max, "a message longer than the limit");
        let found = input.stream[at..]
            .windows(m.len())
            .position(|w| w == m)
            .expect("every message is a run of the input, in order");
        at += found + m.len();
        assert!(m.windows(4).any(|w| w == b"\r\n\r\n"), "a whole header");
    }
});
