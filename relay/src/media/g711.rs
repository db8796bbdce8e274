//! G.711 (ITU-T G.711) decoding, µ-law and A-law to 16-bit linear PCM, for
//! the recordings' WAV files.
//!
//! By hand rather than a crate: each law is a dozen lines of the
//! standard's own arithmetic, and the crates that have it bring whole
//! codec frameworks.

/// RTP's static payload type of µ-law (RFC 3551).
pub const PCMU: u8 = 0;
/// RTP's static payload type of A-law.
pub const PCMA: u8 = 8;

/// One µ-law byte as a linear sample.
pub fn ulaw(byte: u8) -> i16 {
    let b = !byte;
    let exponent = (b >> 4) & 0x07;
    let mantissa = i32::from(b & 0x0f);
    let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84;
    let sample = if b & 0x80 != 0 { -magnitude } else { magnitude };
    sample as i16
}

/// One A-law byte as a linear sample.
pub fn alaw(byte: u8) -> i16 {
    let b = byte ^ 0x55;
    let exponent = (b >> 4) & 0x07;
    let mantissa = i32::from(b & 0x0f);
    let magnitude = if exponent == 0 {
        (mantissa << 4) + 8
    } else {
        ((mantissa << 4) + 0x108) << (exponent - 1)
    };
    let sample = if b & 0x80 != 0 { magnitude } else { -magnitude };
    sample as i16
}

/// The decoder of an RTP payload type, when it is G.711's.
pub fn decoder(payload_type: u8) -> Option<fn(u8) -> i16> {
    match payload_type {
        PCMU => Some(ulaw),
        PCMA => Some(alaw),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_s_reference_points_decode_as_it_says() {
        // µ-law: 0xFF and 0x7F are the two zeros, 0x00/0x80 the extremes.
        assert_eq!(ulaw(0xff), 0);
        assert_eq!(ulaw(0x7f), 0);
        assert_eq!(ulaw(0x00), -32124);
        assert_eq!(ulaw(0x80), 32124);
        // A-law: 0xD5 and 0x55 are the smallest steps either side of zero,
        // 0xAA/0x2A the extremes.
        assert_eq!(alaw(0xd5), 8);
        assert_eq!(alaw(0x55), -8);
        assert_eq!(alaw(0xaa), 32256);
        assert_eq!(alaw(0x2a), -32256);
    }

    #[test]
    fn both_laws_are_monotonic_over_each_half_of_their_codes() {
        // Codes 0x80..=0xFF are the positive half in µ-law, falling toward
        // zero as the code rises.
        let pos: Vec<i16> = (0x80u8..=0xff).map(ulaw).collect();
        assert!(pos.windows(2).all(|w| w[0] >= w[1]));
        assert!(decoder(PCMU).is_some() && decoder(PCMA).is_some() && decoder(111).is_none());
    }
}
