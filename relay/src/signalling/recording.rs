//! The app's recording requests: an INFO in a call with a `Record: on` or
//! `Record: off` header, as desk phones send for on-demand recording, is
//! answered by the relay itself (the relay records, not the PBX): `200`
//! once the recording started or stopped, `403` when recording is off on
//! this relay (or, with every call recorded, for a request to stop),
//! `481` for a call without media here, `400` for another value. The
//! recording's start and end reach the admin stream from its writer.

use sipline_core::sip::{HeaderName, Message};

use sipline_core::Instant;

use super::Proxy;
use super::events::CallView;
use crate::ids::ConnId;
use crate::media::calls::RecordingError;
use crate::media::record::Starter;

/// The header that asks for recording (the value `on` or `off`).
pub(super) const RECORD: HeaderName<'static> = HeaderName::Other("Record");

impl Proxy {
    /// Answers the browser's INFO carrying a `Record` header.
    pub(super) fn record_request(&mut self, conn: ConnId, msg: &Message<'_>) {
        let value = msg.header(RECORD).unwrap_or_default().trim();
        let on = if value.eq_ignore_ascii_case("on") {
            true
        } else if value.eq_ignore_ascii_case("off") {
            false
        } else {
            self.reply_ws(conn, msg, 400, "Record Must Be on or off");
            return;
        };
        let call_id = msg.call_id();
        let result = match self.media.as_mut() {
            // Without media the relay has nothing to record.
            None => Err(RecordingError::Disabled),
            Some(_) if msg.to().tag().is_none() => Err(RecordingError::NoCall),
            Some(media) if on => media.start_recording(conn, call_id, Starter::App),
            Some(media) => media.stop_recording(conn, call_id, Starter::App),
        };
        self.flush_media();
        match result {
            Ok(changed) => {
                tracing::info!(call_id, on, changed, "recording asked for by the app");
                self.reply_ws(conn, msg, 200, "OK");
            }
            Err(e) => {
                tracing::info!(call_id, on, error = %e, "recording request refused");
                let (code, reason) = e.status();
                self.reply_ws(conn, msg, code, reason);
            }
        }
    }
}

impl Proxy {
    /// The calls set up or in progress, each with who records it.
    pub fn call_list(&self, now: Instant) -> Vec<CallView> {
        let mut calls = self.calls.list(now);
        if let Some(media) = &self.media {
            for c in &mut calls {
                c.recording = media.recorded_by(c.info.session, &c.info.call_id);
            }
        }
        calls
    }

    /// The operator starts (`on`) or stops call `call_id`'s recording;
    /// `Ok(false)` when it already was (or was not) recorded.
    pub fn operator_recording(&mut self, call_id: &str, on: bool) -> Result<bool, RecordingError> {
        let media = self.media.as_mut().ok_or(RecordingError::Disabled)?;
        // With the embedded PBX, both ends' browsers hold media for one
        // Call-ID, each a leg of the same call: one leg is recorded (the
        // first connection's, the caller's), and a stop stops any.
        let mut holders = media.holders(call_id);
        holders.sort();
        let Some(&first) = holders.first() else {
            return Err(RecordingError::NoCall);
        };
        let recorded = holders
            .iter()
            .any(|&c| media.recorded_by(c, call_id).is_some());
        let mut changed = false;
        if on && !recorded {
            changed = media.start_recording(first, call_id, Starter::Operator)?;
        } else if !on {
            for conn in holders {
                changed |= media.stop_recording(conn, call_id, Starter::Operator)?;
            }
        }
        self.flush_media();
        tracing::info!(call_id, on, changed, "recording asked for by the operator");
        Ok(changed)
    }
}
