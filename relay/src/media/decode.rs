//! A call's audio decoded for the recordings' WAV files: which codec an RTP
//! payload type is (from the call's SDP, or RTP's static types), and its
//! decoder. G.711 is decoded by hand ([`super::g711`]); Opus through
//! libopus (Debian's, by the `opus` crate); G.722 by spandsp's
//! public-domain codec as the `ezk-g722` crate has it in Rust.

use ezk_g722::libg722::Bitrate;
use ezk_g722::libg722::decoder::Decoder as G722Decoder;

/// An audio codec a recording can decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// G.711 µ-law.
    Pcmu,
    /// G.711 A-law.
    Pcma,
    /// G.722 at 64 kbit/s (its RTP clock is 8 kHz, its audio 16 kHz: RFC
    /// 3551 §4.5.2).
    G722,
    /// Opus (RFC 7587).
    Opus,
}

/// Samples a second the WAV of an Opus call has: wideband speech, as
/// desk phones' HD voice, at a third of the disk that 48 kHz would take
/// (libopus decodes to it directly).
const OPUS_WAV_RATE: u32 = 16_000;

/// The longest Opus packet (120 ms), in samples at [`OPUS_WAV_RATE`].
pub const MAX_SAMPLES: usize = OPUS_WAV_RATE as usize * 120 / 1000;

impl Codec {
    /// The codec of an `a=rtpmap` (`encoding/clock[/channels]`).
    pub fn from_rtpmap(encoding: &str) -> Option<Codec> {
        let mut parts = encoding.split('/');
        let (name, clock) = (parts.next()?, parts.next()?);
        match (name.to_ascii_lowercase().as_str(), clock) {
            ("pcmu", "8000") => Some(Codec::Pcmu),
            ("pcma", "8000") => Some(Codec::Pcma),
            ("g722", "8000") => Some(Codec::G722),
            ("opus", "48000") => Some(Codec::Opus),
            _ => None,
        }
    }

    /// The codec of a static payload type (RFC 3551).
    pub fn of_static(payload_type: u8) -> Option<Codec> {
        match payload_type {
            0 => Some(Codec::Pcmu),
            8 => Some(Codec::Pcma),
            9 => Some(Codec::G722),
            _ => None,
        }
    }

    /// Its RTP clock rate (timestamp units a second).
    pub fn clock(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma | Codec::G722 => 8000,
            Codec::Opus => 48_000,
        }
    }

    /// The sample rate its audio is written at.
    pub fn rate(self) -> u32 {
        match self {
            Codec::Pcmu | Codec::Pcma => 8000,
            Codec::G722 | Codec::Opus => 16_000,
        }
    }

    /// Its name, for the sidecar.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::G722 => "G722",
            Codec::Opus => "opus",
        }
    }
}

/// Why a payload did not decode.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

/// One stream's decoder (a codec with state, like Opus, needs its own per
/// stream).
pub enum Decoder {
    /// G.711: a table per byte.
    G711(fn(u8) -> i16),
    /// G.722 at 64 kbit/s, 16 kHz out.
    G722(Box<G722Decoder>),
    /// Opus, mono at the codec's WAV rate.
    Opus(Box<opus::Decoder>),
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Decoder::G711(_) => "Decoder::G711",
            Decoder::G722(_) => "Decoder::G722",
            Decoder::Opus(_) => "Decoder::Opus",
        })
    }
}

impl Decoder {
    /// A decoder of `codec`.
    pub fn new(codec: Codec) -> Result<Decoder, DecodeError> {
        Ok(match codec {
            Codec::Pcmu => Decoder::G711(super::g711::ulaw),
            Codec::Pcma => Decoder::G711(super::g711::alaw),
            Codec::G722 => Decoder::G722(Box::new(G722Decoder::new(
                Bitrate::Mode1_64000,
                false,
                false,
            ))),
            Codec::Opus => Decoder::Opus(Box::new(
                opus::Decoder::new(OPUS_WAV_RATE, opus::Channels::Mono)
                    .map_err(|e| DecodeError(e.to_string()))?,
            )),
        })
    }

    /// Decodes one RTP payload into `out` (cleared first).
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), DecodeError> {
        out.clear();
        match self {
            Decoder::G711(decode) => out.extend(payload.iter().map(|&b| decode(b))),
            Decoder::G722(d) => out.extend_from_slice(&d.decode(payload)),
            Decoder::Opus(d) => {
                out.resize(MAX_SAMPLES, 0);
                let n = d
                    .decode(payload, out, false)
                    .map_err(|e| DecodeError(e.to_string()))?;
                out.truncate(n);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtpmaps_and_static_types_name_their_codecs() {
        assert_eq!(Codec::from_rtpmap("opus/48000/2"), Some(Codec::Opus));
        assert_eq!(Codec::from_rtpmap("PCMU/8000"), Some(Codec::Pcmu));
        assert_eq!(Codec::from_rtpmap("pcma/8000"), Some(Codec::Pcma));
        assert_eq!(Codec::from_rtpmap("telephone-event/8000"), None);
        assert_eq!(Codec::from_rtpmap("opus"), None, "no clock");
        assert_eq!(Codec::from_rtpmap("PCMU/16000"), None);
        assert_eq!(Codec::of_static(0), Some(Codec::Pcmu));
        assert_eq!(Codec::of_static(8), Some(Codec::Pcma));
        assert_eq!(Codec::of_static(9), Some(Codec::G722));
        assert_eq!(Codec::from_rtpmap("G722/8000"), Some(Codec::G722));
        assert_eq!(Codec::of_static(111), None);
    }

    /// 25 frames of 20 ms of a `hz` tone at 16 kHz, each encoded by
    /// `encode` and decoded by a decoder of `codec`: the last 200 ms heard,
    /// past the codec's start-up.
    fn round_trip(codec: Codec, hz: f64, mut encode: impl FnMut(&[i16]) -> Vec<u8>) -> Vec<i16> {
        let mut decoder = Decoder::new(codec).expect("a decoder");
        let mut out = Vec::new();
        let mut heard = Vec::new();
        for frame in 0..25 {
            let pcm: Vec<i16> = (0..320)
                .map(|i| {
                    let t = f64::from(frame * 320 + i) / 16_000.0;
                    ((2.0 * std::f64::consts::PI * hz * t).sin() * 8000.0) as i16
                })
                .collect();
            decoder.decode(&encode(&pcm), &mut out).expect("decoded");
            assert_eq!(out.len(), 320, "20 ms at 16 kHz");
            heard.extend_from_slice(&out);
        }
        heard.split_off(heard.len() - 3200)
    }

    #[test]
    fn opus_decodes_what_libopus_encoded_a_tone_back_to_the_tone() {
        // Encoded by libopus itself.
        let mut encoder = opus::Encoder::new(16_000, opus::Channels::Mono, opus::Application::Voip)
            .expect("an encoder");
        let tail = round_trip(Codec::Opus, 1000.0, |pcm| {
            encoder.encode_vec(pcm, 4000).expect("encoded")
        });
        let hz = sipline_test_harness::audio::zero_crossing_hz(&tail, 16_000.0);
        assert!((hz - 1000.0).abs() < 30.0, "{hz} Hz");
    }

    #[test]
    fn g722_decodes_a_tone_to_16_khz() {
        use ezk_g722::libg722::encoder::Encoder;
        let mut encoder = Encoder::new(Bitrate::Mode1_64000, false, false);
        let tail = round_trip(Codec::G722, 440.0, |pcm| {
            let packet = encoder.encode(pcm);
            assert_eq!(packet.len(), 160, "20 ms at 64 kbit/s");
            packet
        });
        let hz = sipline_test_harness::audio::zero_crossing_hz(&tail, 16_000.0);
        assert!((hz - 440.0).abs() < 15.0, "{hz} Hz");
        let peak = tail.iter().map(|s| s.unsigned_abs()).max().unwrap_or(0);
        assert!((6000..10_000).contains(&peak), "level {peak}");
    }

    #[test]
    fn any_payload_decodes_or_is_refused_never_a_panic() {
        // RTP payloads are the far end's bytes: noise must not stop the
        // writer (tests build with overflow checks on).
        let mut seed = 0x2545_f491_u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        for codec in [Codec::Pcmu, Codec::Pcma, Codec::G722, Codec::Opus] {
            let mut d = Decoder::new(codec).expect("a decoder");
            let mut out = Vec::new();
            for _ in 0..2000 {
                let len = (next() % 400) as usize;
                let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
                if d.decode(&payload, &mut out).is_ok() {
                    assert!(out.len() <= MAX_SAMPLES.max(2 * payload.len()));
                }
            }
        }
    }

    #[test]
    fn g711_decodes_byte_by_byte() {
        let mut d = Decoder::new(Codec::Pcmu).expect("a decoder");
        let mut out = vec![7; 4];
        d.decode(&[0xff, 0x00], &mut out).expect("decoded");
        assert_eq!(out, [0, -32124]);
    }
}
