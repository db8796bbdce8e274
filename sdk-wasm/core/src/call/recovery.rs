//! Calls across a dropped transport (RFC 5626 flow recovery): calls wait
//! for a new WebSocket, then each re-INVITEs the far end so that its
//! dialog follows the new flow; calls that cannot be kept are ended.

use super::{CallState, Calls, Purpose, RECOVER_WAIT, Update, hangup};
use crate::ctx::Ctx;
use crate::event::Event;
use crate::ids::CallId;
use crate::prelude::*;
use crate::sip::Method;

impl Calls {
    /// The transport closed. What was in flight fails (changes and
    /// transfers with 503). Calls that are up stay when `keep` is set:
    /// their media runs over ICE, not over the WebSocket, and the relay
    /// keeps it, so on the next connection a re-INVITE moves each dialog
    /// to the new flow ([`Self::transport_connected`]). The others end
    /// with 503.
    pub fn transport_closed(&mut self, cx: &mut Ctx<'_>, keep: bool) {
        for u in self.updates.drain(..) {
            if let Update::Sent {
                call,
                purpose: Purpose::App,
                ..
            } = u
            {
                cx.events.push(Event::UpdateFailed {
                    call,
                    code: 503,
                    reason: "Transport Closed".into(),
                });
            }
        }
        for (_, call) in self.refers.drain(..) {
            // Its REFER is lost with the transport: that transfer is over.
            self.transfers.retain(|t| t.call() != call);
            cx.events.push(Event::Transfer {
                call,
                code: 503,
                reason: "Transport Closed".into(),
                done: true,
            });
        }
        let mut ended = Vec::new();
        self.calls.retain(|c| {
            let stays = keep && c.state == CallState::Confirmed;
            if !stays {
                ended.push(c.id);
            }
            stays
        });
        self.incoming.retain(|c| {
            let stays = keep
                && c.ok.is_some()
                && c.retransmit.is_none()
                && !c.bye_wanted
                && c.bye_tx.is_none();
            if !stays {
                ended.push(c.id);
            }
            stays
        });
        for id in ended {
            hangup(cx, id, Some(503), "Transport Closed");
        }
        if !self.calls.is_empty() || !self.incoming.is_empty() {
            // The first drop starts the wait; failed attempts to reconnect
            // (each one closes again) do not extend it.
            self.suspended.get_or_insert(cx.now + RECOVER_WAIT);
        }
    }

    /// A new connection: each call kept through the drop sends a re-INVITE
    /// with its unchanged SDP, from the new flow (its Contact, rewritten by
    /// the relay, names the new connection). A failure ends the call.
    pub fn transport_connected(&mut self, cx: &mut Ctx<'_>) {
        if self.suspended.take().is_none() {
            return;
        }
        let ids: Vec<CallId> = self
            .calls
            .iter()
            .map(|c| c.id)
            .chain(self.incoming.iter().map(|c| c.id))
            .collect();
        for id in ids {
            let sdp = self
                .local_sdp_mut(id)
                .map(|s| s.clone())
                .unwrap_or_default();
            if !self.send_update(cx, id, &sdp, Method::Invite, Purpose::Recover, None) {
                self.forget(cx, id);
                hangup(cx, id, Some(503), "Transport Closed");
            }
        }
    }

    /// The app hangs up a call while there is no transport: no BYE can
    /// go, so the call is over here at once (the far end's session timer
    /// or the relay's RTP timeout ends its side).
    pub fn abandon(&mut self, cx: &mut Ctx<'_>, id: CallId) {
        if self.calls.iter().any(|c| c.id == id) || self.incoming.iter().any(|c| c.id == id) {
            self.forget(cx, id);
            hangup(cx, id, Some(503), "Transport Closed");
        }
    }
}
