//! Starting and stopping a call's recording, sans-IO: by policy when its
//! media starts (`mode = "all"`), or when the app (an in-dialog INFO with
//! `Record: on|off`) or the operator (the admin API) asks. A start hands
//! the shell the writer's end of a new recording ([`Command::Record`]) and
//! then the packet path's ([`Command::Tap`]); a stop drops the packet
//! path's end ([`Command::Untap`]), and the writer finishes the files.
//! Each start makes new files: a call stopped and started again has one
//! recording per span.

use sipline_core::sdp::Sdp;

use super::{Command, MediaCalls};
use crate::ids::ConnId;
use crate::media::decode::Codec;
use crate::media::record::{self, RecordingMode, Starter, Watch};

/// Why a recording was not started or stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordingError {
    /// `[recording] mode = "off"`.
    #[error("recording is off on this relay")]
    Disabled,
    /// `mode = "all"`: the app may not stop a recording (the operator may).
    #[error("every call is recorded on this relay")]
    Mandatory,
    /// No call with media by that Call-ID.
    #[error("no call with media by that Call-ID")]
    NoCall,
}

impl RecordingError {
    /// The SIP status for a request that asked for it.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            RecordingError::Disabled => (403, "Recording Disabled"),
            RecordingError::Mandatory => (403, "Recording Is Mandatory"),
            RecordingError::NoCall => (481, "Call Does Not Exist"),
        }
    }
}

/// A call's recording as the table knows it: who started it, and whether
/// its writer is still at it (a full disk ends it without the table
/// asking).
#[derive(Debug)]
pub(super) struct CallRecording {
    by: Starter,
    watch: Watch,
}

impl MediaCalls {
    /// Who started call `call_id`'s recording, while it is recorded.
    pub fn recorded_by(&self, conn: ConnId, call_id: &str) -> Option<Starter> {
        self.calls
            .get(&(conn, call_id.to_owned()))?
            .recording
            .as_ref()
            .filter(|r| !r.watch.is_over())
            .map(|r| r.by)
    }

    /// Starts recording call `call_id` for `by`; `Ok(false)` when it is
    /// recorded already.
    pub fn start_recording(
        &mut self,
        conn: ConnId,
        call_id: &str,
        by: Starter,
    ) -> Result<bool, RecordingError> {
        if self.cfg.recording == RecordingMode::Off {
            return Err(RecordingError::Disabled);
        }
        let key = (conn, call_id.to_owned());
        if !self.calls.contains_key(&key) {
            return Err(RecordingError::NoCall);
        }
        if self.recorded_by(conn, call_id).is_some() {
            return Ok(false);
        }
        self.begin_recording(&key, by);
        Ok(true)
    }

    /// Stops recording call `call_id` at `by`'s request; `Ok(false)` when
    /// it was not recorded.
    pub fn stop_recording(
        &mut self,
        conn: ConnId,
        call_id: &str,
        by: Starter,
    ) -> Result<bool, RecordingError> {
        match self.cfg.recording {
            RecordingMode::Off => return Err(RecordingError::Disabled),
            RecordingMode::All if by != Starter::Operator => {
                return Err(RecordingError::Mandatory);
            }
            _ => {}
        }
        let c = self
            .calls
            .get_mut(&(conn, call_id.to_owned()))
            .ok_or(RecordingError::NoCall)?;
        let was = c.recording.take().is_some_and(|r| !r.watch.is_over());
        if was {
            self.commands.push_back(Command::Untap { id: c.id });
        }
        Ok(was)
    }

    /// Starts a recording of call `key` for `by`: the writer's end to the
    /// shell first, then the packet path's.
    pub(super) fn begin_recording(&mut self, key: &(ConnId, String), by: Starter) {
        let Some(c) = self.calls.get_mut(key) else {
            return;
        };
        let (tap, mut sink) = record::channel(&key.1, by, record::RING_BYTES);
        sink.parties = c.parties.clone();
        sink.codecs = c.codecs.clone();
        sink.events = c.events.clone();
        c.recording = Some(CallRecording {
            by,
            watch: tap.watch(),
        });
        self.commands.push_back(Command::Record { id: c.id, sink });
        self.commands.push_back(Command::Tap { id: c.id, tap });
    }

    /// Notes the codecs of call `key`'s audio (its first leg) that `sdp`
    /// maps to payload types, for its recordings' WAV, and its
    /// telephone-events, for their DTMF. A payload type keeps the codec it
    /// was first given.
    pub(super) fn learn_codecs(&mut self, key: &(ConnId, String), sdp: &Sdp<'_>) {
        if self.cfg.recording == RecordingMode::Off {
            return;
        }
        let Some(c) = self.calls.get_mut(key) else {
            return;
        };
        let Some(audio) = c.sections.first().and_then(|&i| sdp.media.get(i)) else {
            return;
        };
        for (pt, encoding) in audio.rtpmaps() {
            // Payload types are 0–127: the lists stay that short.
            let Ok(pt) = pt.parse::<u8>() else { continue };
            if pt >= 128
                || c.codecs.iter().any(|(p, _)| *p == pt)
                || c.events.iter().any(|(p, _)| *p == pt)
            {
                continue;
            }
            if let Some(codec) = Codec::from_rtpmap(encoding) {
                c.codecs.push((pt, codec));
            } else if let Some(clock) = encoding
                .split_once('/')
                .filter(|(name, _)| name.eq_ignore_ascii_case("telephone-event"))
                .and_then(|(_, clock)| clock.parse::<u32>().ok())
            {
                c.events.push((pt, clock));
            }
        }
    }
}
