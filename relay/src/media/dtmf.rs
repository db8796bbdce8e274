//! DTMF in a recorded call: the RFC 4733 telephone-events either side
//! sent, each key press once with when it began and how long it lasted,
//! for the recording's sidecar.
//!
//! A sender repeats an event's packets as the key stays down (one RTP
//! timestamp for the whole press, the duration growing) and sends its end
//! three times: a press is told from the next by its timestamp.

use serde::Serialize;

/// The most key presses one recording lists: a bound on memory against a
/// far end that sends events without end.
pub const MAX_EVENTS: usize = 4096;

/// Which side pressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Presser {
    /// The browser's user.
    Browser,
    /// The far end.
    FarEnd,
}

/// One key press.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct KeyPress {
    /// `0`–`9`, `*`, `#`, `A`–`D`.
    pub digit: char,
    /// Who pressed it.
    pub from: Presser,
    /// Milliseconds into the recording its first packet arrived (the WAV's
    /// time line).
    pub at_ms: u64,
    /// How long it was held, as its packets said.
    pub duration_ms: u32,
}

/// The key presses of a call's two streams.
#[derive(Debug, Default)]
pub struct KeyPresses {
    /// Each side's current press: its RTP timestamp and its index in
    /// `presses`.
    current: [Option<(u32, usize)>; 2],
    presses: Vec<KeyPress>,
}

/// The key of an RFC 4733 event code, for the DTMF events (0–15).
fn digit(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        _ => None,
    }
}

impl KeyPresses {
    /// A telephone-event payload from `from`, with the packet's RTP
    /// `timestamp` on a clock of `clock` a second, arrived `at_ms` into
    /// the recording.
    pub fn packet(
        &mut self,
        from: Presser,
        at_ms: u64,
        timestamp: u32,
        clock: u32,
        payload: &[u8],
    ) {
        let [event, _, d0, d1, ..] = *payload else {
            return;
        };
        let Some(digit) = digit(event) else {
            return;
        };
        let duration_ms =
            u32::try_from(u64::from(u16::from_be_bytes([d0, d1])) * 1000 / u64::from(clock.max(1)))
                .unwrap_or(u32::MAX);
        let side = usize::from(from == Presser::FarEnd);
        match self.current[side] {
            Some((ts, i)) if ts == timestamp => {
                if let Some(p) = self.presses.get_mut(i) {
                    p.duration_ms = p.duration_ms.max(duration_ms);
                }
            }
            _ if self.presses.len() < MAX_EVENTS => {
                self.current[side] = Some((timestamp, self.presses.len()));
                self.presses.push(KeyPress {
                    digit,
                    from,
                    at_ms,
                    duration_ms,
                });
            }
            _ => {}
        }
    }

    /// The presses so far, in the order they began.
    pub fn presses(&self) -> &[KeyPress] {
        &self.presses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RFC 4733 payload: `event`, the end bit, volume 10, `duration`.
    fn event(code: u8, end: bool, duration: u16) -> [u8; 4] {
        let [d0, d1] = duration.to_be_bytes();
        [code, u8::from(end) << 7 | 10, d0, d1]
    }

    #[test]
    fn each_press_is_listed_once_with_its_longest_duration() {
        let mut k = KeyPresses::default();
        // '5' from the browser: three updates, then the end three times.
        for (at, d, end) in [(0, 160, false), (20, 320, false), (40, 480, false)] {
            k.packet(Presser::Browser, at, 1000, 8000, &event(5, end, d));
        }
        for at in [60, 60, 60] {
            k.packet(Presser::Browser, at, 1000, 8000, &event(5, true, 800));
        }
        // '#' from the far end on Opus's 48 kHz clock, meanwhile.
        k.packet(Presser::FarEnd, 30, 77, 48_000, &event(11, true, 4800));
        // A second '5': a new timestamp.
        k.packet(Presser::Browser, 500, 3000, 8000, &event(5, false, 160));
        assert_eq!(
            k.presses(),
            [
                KeyPress {
                    digit: '5',
                    from: Presser::Browser,
                    at_ms: 0,
                    duration_ms: 100
                },
                KeyPress {
                    digit: '#',
                    from: Presser::FarEnd,
                    at_ms: 30,
                    duration_ms: 100
                },
                KeyPress {
                    digit: '5',
                    from: Presser::Browser,
                    at_ms: 500,
                    duration_ms: 20
                },
            ]
        );
    }

    #[test]
    fn other_events_and_short_payloads_are_not_key_presses() {
        let mut k = KeyPresses::default();
        k.packet(Presser::Browser, 0, 1, 8000, &event(16, false, 160)); // flash
        k.packet(Presser::Browser, 0, 2, 8000, &[1, 2]);
        k.packet(Presser::Browser, 0, 3, 0, &event(12, false, 160));
        assert_eq!(k.presses().len(), 1);
        assert_eq!(k.presses()[0].digit, 'A');
        let mut many = KeyPresses::default();
        for ts in 0..(MAX_EVENTS as u32 + 10) {
            many.packet(Presser::FarEnd, 0, ts, 8000, &event(1, true, 160));
        }
        assert_eq!(many.presses().len(), MAX_EVENTS, "bounded");
    }
}
