//! INFO in a call (RFC 6086), of any content type: the application's,
//! sent and answered (each with its own id, so the app learns whether the
//! far end took it), and the far end's, reported with its type, body and
//! picked headers. DTMF's `application/dtmf-relay` is its own event
//! ([`Event::Dtmf`]); an INFO with no body (a keep-alive some PBXs send)
//! is answered and not reported.

use super::Calls;
use crate::ctx::Ctx;
use crate::error::ActionError;
use crate::event::{Event, Recording};
use crate::ids::{CallId, MessageId};
use crate::input::safe_text;
use crate::prelude::*;
use crate::sip::{HeaderName, Message, Method};
use crate::transaction::TransactionId;

impl Calls {
    /// Sends an INFO with `body` of `content_type` in a confirmed call;
    /// [`Event::InfoAnswered`] with the returned id follows.
    pub fn send_info(
        &mut self,
        cx: &mut Ctx<'_>,
        id: CallId,
        content_type: &str,
        body: &str,
    ) -> Result<MessageId, ActionError> {
        if content_type.is_empty() || !safe_text(content_type) {
            return Err(ActionError::BadText("content_type"));
        }
        let (tx, _) =
            self.request_in_dialog(cx, id, Method::Info, &[], Some((content_type, body)))?;
        Ok(self.track_info(tx, id, None))
    }

    /// Asks the far end to start (`on`) or stop recording call `id`: an
    /// INFO without a body carrying `Record: on` or `Record: off`, as desk
    /// phones send for on-demand recording (the relay answers it when it
    /// records). [`Event::Recording`] with the returned id follows.
    pub fn send_record(
        &mut self,
        cx: &mut Ctx<'_>,
        id: CallId,
        on: bool,
    ) -> Result<MessageId, ActionError> {
        let value = if on { "on" } else { "off" };
        let (tx, _) = self.request_in_dialog(cx, id, Method::Info, &[("Record", value)], None)?;
        Ok(self.track_info(tx, id, Some(on)))
    }

    /// An INFO of ours in flight, under a new id.
    fn track_info(&mut self, tx: TransactionId, call: CallId, record: Option<bool>) -> MessageId {
        self.next_info = self.next_info.wrapping_add(1);
        let info = MessageId(self.next_info);
        self.infos.push((tx, call, info, record));
        info
    }

    /// A response to one of our INFOs (`None`: none came): reported once
    /// final. `false` when `tx` is not an INFO of ours.
    pub(super) fn on_info_response(
        &mut self,
        cx: &mut Ctx<'_>,
        tx: TransactionId,
        msg: Option<&Message<'_>>,
    ) -> bool {
        let Some(i) = self.infos.iter().position(|(t, ..)| *t == tx) else {
            return false;
        };
        let code = msg.and_then(Message::status).unwrap_or(408);
        if code >= 200 {
            let (_, call, id, record) = self.infos.remove(i);
            let reason = msg.map_or("Request Timeout", |m| m.reason()).to_owned();
            cx.events.push(match record {
                None => Event::InfoAnswered {
                    call,
                    id,
                    code,
                    reason,
                },
                Some(on) => Event::Recording {
                    call,
                    id,
                    state: match (code < 300, on) {
                        (true, true) => Recording::Started,
                        (true, false) => Recording::Stopped,
                        (false, _) => Recording::Failed,
                    },
                    code,
                    reason,
                },
            });
        }
        true
    }

    /// The far end's INFO in call `id`: its status.
    pub(super) fn on_info(&mut self, cx: &mut Ctx<'_>, id: CallId, msg: &Message<'_>) -> u16 {
        if super::trickle::is_trickle_info(msg) {
            return self.on_trickle_info(cx, id, msg);
        }
        if let Some((digit, duration_ms)) = crate::message::dtmf_relay(msg) {
            cx.events.push(Event::Dtmf {
                call: id,
                digit,
                duration_ms,
            });
            return 200;
        }
        let content_type = msg
            .header(HeaderName::ContentType)
            .unwrap_or_default()
            .trim();
        if msg.body().is_empty() {
            return 200;
        }
        if content_type.eq_ignore_ascii_case("application/dtmf-relay") {
            // DTMF's type with a body that names no digit.
            return 400;
        }
        cx.events.push(Event::Info {
            call: id,
            content_type: content_type.to_owned(),
            body: String::from_utf8_lossy(msg.body()).into_owned(),
            headers: cx.id.picked_headers(msg),
        });
        200
    }

    /// The call `id` ended: its INFOs' answers no longer matter.
    pub(super) fn forget_infos(&mut self, id: CallId) {
        self.infos.retain(|(_, call, ..)| *call != id);
    }
}
