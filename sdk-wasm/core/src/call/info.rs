//! INFO in a call (RFC 6086), of any content type: the application's,
//! sent and answered (each with its own id, so the app learns whether the
//! far end took it), and the far end's, reported with its type, body and
//! picked headers. DTMF's `application/dtmf-relay` is its own event
//! ([`Event::Dtmf`]); an INFO with no body (a keep-alive some PBXs send)
//! is answered and not reported.

use super::Calls;
use crate::ctx::Ctx;
use crate::error::ActionError;
use crate::event::Event;
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
        self.next_info = self.next_info.wrapping_add(1);
        let info = MessageId(self.next_info);
        self.infos.push((tx, id, info));
        Ok(info)
    }

    /// A response to one of our INFOs (`None`: none came): reported once
    /// final. `false` when `tx` is not an INFO of ours.
    pub(super) fn on_info_response(
        &mut self,
        cx: &mut Ctx<'_>,
        tx: TransactionId,
        msg: Option<&Message<'_>>,
    ) -> bool {
        let Some(i) = self.infos.iter().position(|(t, _, _)| *t == tx) else {
            return false;
        };
        let code = msg.and_then(Message::status).unwrap_or(408);
        if code >= 200 {
            let (_, call, id) = self.infos.remove(i);
            cx.events.push(Event::InfoAnswered {
                call,
                id,
                code,
                reason: msg.map_or("Request Timeout", |m| m.reason()).to_owned(),
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
        self.infos.retain(|(_, call, _)| *call != id);
    }
}
