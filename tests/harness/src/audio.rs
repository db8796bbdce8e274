//! Tones in and out of the tests: WAV files of a known frequency for the
//! fake microphone and the far end to play, and the measurement of what a
//! recording holds (its strongest frequency, by Goertzel, and its level).

use std::fs;
use std::io;
use std::path::Path;

/// The frequency of a pure tone in `samples` at `rate` samples a second,
/// by counting its zero crossings (what the recordings' tests read a WAV's
/// channel with).
pub fn zero_crossing_hz(samples: &[i16], rate: f64) -> f64 {
    let crossings = samples
        .windows(2)
        .filter(|w| (w[0] < 0) != (w[1] < 0))
        .count();
    crossings as f64 / 2.0 / (samples.len() as f64 / rate)
}

/// Writes a mono 16-bit PCM WAV of a sine at `hz`.
pub fn write_tone(path: &Path, hz: f64, rate: u32, seconds: u32) -> io::Result<()> {
    let samples = rate * seconds;
    let mut data = Vec::with_capacity(44 + 2 * samples as usize);
    let riff = |out: &mut Vec<u8>, tag: &[u8], len: u32| {
        out.extend_from_slice(tag);
        out.extend_from_slice(&len.to_le_bytes());
    };
    riff(&mut data, b"RIFF", 36 + 2 * samples);
    data.extend_from_slice(b"WAVE");
    riff(&mut data, b"fmt ", 16);
    data.extend_from_slice(&1u16.to_le_bytes()); // PCM
    data.extend_from_slice(&1u16.to_le_bytes()); // mono
    data.extend_from_slice(&rate.to_le_bytes());
    data.extend_from_slice(&(rate * 2).to_le_bytes());
    data.extend_from_slice(&2u16.to_le_bytes());
    data.extend_from_slice(&16u16.to_le_bytes());
    riff(&mut data, b"data", 2 * samples);
    for i in 0..samples {
        let t = f64::from(i) / f64::from(rate);
        // A quarter of full scale: loud, and far from clipping in codecs.
        let v = (8192.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16;
        data.extend_from_slice(&v.to_le_bytes());
    }
    fs::write(path, data)
}

/// A mono 16-bit PCM recording.
#[derive(Clone, Debug)]
pub struct Recording {
    /// Samples per second.
    pub rate: u32,
    /// The samples.
    pub samples: Vec<i16>,
}

/// Reads a 16-bit PCM WAV (the first channel of it).
pub fn read_wav(path: &Path) -> io::Result<Recording> {
    let bytes = fs::read(path)?;
    let bad = |what: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {what}", path.display()),
        )
    };
    if bytes.get(..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(bad("not a WAV file"));
    }
    let (mut rate, mut channels, mut at) = (0u32, 1usize, 12usize);
    while at + 8 <= bytes.len() {
        let tag = &bytes[at..at + 4];
        let len = u32::from_le_bytes([bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]])
            as usize;
        let body = bytes
            .get(at + 8..(at + 8 + len).min(bytes.len()))
            .unwrap_or_default();
        match tag {
            b"fmt " if body.len() >= 16 => {
                channels = usize::from(u16::from_le_bytes([body[2], body[3]])).max(1);
                rate = u32::from_le_bytes([body[4], body[5], body[6], body[7]]);
                if u16::from_le_bytes([body[14], body[15]]) != 16 {
                    return Err(bad("not 16-bit PCM"));
                }
            }
            b"data" => {
                let samples = body
                    .chunks_exact(2 * channels)
                    .map(|c| i16::from_le_bytes([c[0], c[1]]))
                    .collect();
                return Ok(Recording { rate, samples });
            }
            _ => {}
        }
        at += 8 + len + (len & 1);
    }
    Err(bad("no data chunk"))
}

impl Recording {
    /// Seconds of audio.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / f64::from(self.rate.max(1))
    }

    /// Root-mean-square level, in sample units.
    pub fn rms(&self) -> f64 {
        let sum: f64 = self.samples.iter().map(|&s| f64::from(s).powi(2)).sum();
        (sum / self.samples.len().max(1) as f64).sqrt()
    }

    /// The power at `hz` (Goertzel over all samples).
    pub fn power_at(&self, hz: f64) -> f64 {
        let k = 2.0 * (2.0 * std::f64::consts::PI * hz / f64::from(self.rate)).cos();
        let (mut s1, mut s2) = (0.0f64, 0.0f64);
        for &x in &self.samples {
            let s = f64::from(x) + k * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        s1 * s1 + s2 * s2 - k * s1 * s2
    }

    /// The strongest frequency between 100 Hz and 3.5 kHz, in 10 Hz steps,
    /// and how many times stronger it is than the median of the others.
    pub fn dominant(&self) -> (f64, f64) {
        let mut powers: Vec<(f64, f64)> = (10..=350)
            .map(|step| {
                let hz = f64::from(step) * 10.0;
                (hz, self.power_at(hz))
            })
            .collect();
        let peak = powers
            .iter()
            .copied()
            .fold((0.0, 0.0), |best, p| if p.1 > best.1 { p } else { best });
        powers.sort_by(|a, b| a.1.total_cmp(&b.1));
        let median = powers[powers.len() / 2].1.max(f64::MIN_POSITIVE);
        (peak.0, peak.1 / median)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_tone_reads_back_at_its_frequency() {
        let path = std::env::temp_dir().join(format!("sipline-tone-{}.wav", std::process::id()));
        write_tone(&path, 440.0, 8000, 1).expect("write");
        let rec = read_wav(&path).expect("read");
        let _ = fs::remove_file(&path);
        assert_eq!((rec.rate, rec.samples.len()), (8000, 8000));
        let (hz, ratio) = rec.dominant();
        assert_eq!(hz, 440.0);
        assert!(ratio > 1000.0, "{ratio}");
        assert!((rec.rms() - 8192.0 / 2f64.sqrt()).abs() < 50.0);
    }
}
