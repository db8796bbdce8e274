//! `[recording]`: which calls are recorded, where the files go, and as
//! what.

use std::path::PathBuf;

use serde::Deserialize;

use super::ConfigError;
use crate::media::record::{Formats, RecordingFormat, RecordingMode};

/// `[recording]`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Recording {
    /// Which calls are recorded.
    pub mode: RecordingMode,
    /// Where the files go (made at start if missing); required unless
    /// `mode = "off"`.
    pub dir: Option<PathBuf>,
    /// What each recording is written as: `wav` (a stereo WAV of the
    /// audio), `pcap` (the plain RTP and RTCP of every leg), or both.
    pub formats: Vec<RecordingFormat>,
}

impl Default for Recording {
    fn default() -> Self {
        Self {
            mode: RecordingMode::Off,
            dir: None,
            formats: vec![RecordingFormat::Wav, RecordingFormat::Pcap],
        }
    }
}

impl Recording {
    /// The formats, as the writer takes them.
    pub fn formats(&self) -> Formats {
        Formats::of(&self.formats)
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.mode == RecordingMode::Off {
            return Ok(());
        }
        if self.dir.is_none() {
            return Err(ConfigError::Invalid {
                key: "recording.dir",
                problem: "recording needs a directory for its files".into(),
            });
        }
        if self.formats.is_empty() {
            return Err(ConfigError::Invalid {
                key: "recording.formats",
                problem: "name at least one of \"wav\" and \"pcap\"".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;
    use super::*;

    #[test]
    fn recording_needs_a_folder_and_a_known_mode() {
        let no_dir = Config::parse(
            Path::new("r.toml"),
            "[pbx]\naddresses = [\"127.0.0.1:5060\"]\n[recording]\nmode = \"all\"\n",
        )
        .expect("parses");
        assert!(
            no_dir
                .validate()
                .expect_err("no folder")
                .to_string()
                .starts_with("config key `recording.dir`"),
        );
        let err = Config::parse(Path::new("r.toml"), "[recording]\nmode = \"sometimes\"\n")
            .expect_err("unknown mode");
        assert!(err.to_string().contains("key `mode`"), "{err}");
        let all = Config::parse(
            Path::new("r.toml"),
            "[pbx]\naddresses = [\"127.0.0.1:5060\"]\n[recording]\nmode = \"all\"\ndir = \"/tmp/r\"\n",
        )
        .expect("parses");
        all.validate().expect("valid");
        assert_eq!(
            all.media("127.0.0.1".parse().expect("ip")).recording,
            RecordingMode::All
        );
    }

    #[test]
    fn formats_are_both_unless_named_and_never_none() {
        let base = "[pbx]\naddresses = [\"127.0.0.1:5060\"]\n[recording]\nmode = \"on-demand\"\ndir = \"/tmp/r\"\n";
        let both = Config::parse(Path::new("r.toml"), base).expect("parses");
        assert_eq!(
            both.recording.formats(),
            Formats {
                wav: true,
                pcap: true
            }
        );
        let wav = Config::parse(Path::new("r.toml"), &format!("{base}formats = [\"wav\"]\n"))
            .expect("parses");
        wav.validate().expect("valid");
        assert_eq!(
            wav.recording.formats(),
            Formats {
                wav: true,
                pcap: false
            }
        );
        let none =
            Config::parse(Path::new("r.toml"), &format!("{base}formats = []\n")).expect("parses");
        assert!(
            none.validate()
                .expect_err("nothing to write")
                .to_string()
                .starts_with("config key `recording.formats`")
        );
        let err = Config::parse(Path::new("r.toml"), &format!("{base}formats = [\"mp3\"]\n"))
            .expect_err("unknown format");
        assert!(err.to_string().contains("formats"), "{err}");
    }
}
