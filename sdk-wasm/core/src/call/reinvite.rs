//! Changes of a call's session (RFC 3261 §14, RFC 3311): our re-INVITE
//! or UPDATE one at a time, its answer or refusal, glare answered `491`
//! and retried after the §14.1 random wait; the far end's, held for the
//! application's answer and our 2xx retransmitted until its ACK.

use super::hold::offer_holds;
use super::{ALLOW, CallState, Calls, InDialog, Purpose, TIMER_C, Update};
use crate::auth::challenges;
use crate::auth::{AuthRound, RequestInfo};
use crate::ctx::Ctx;
use crate::error::ActionError;
use crate::event::{Event, HoldBy};
use crate::ids::CallId;
use crate::prelude::*;
use crate::session_timer::{MIN_SE, Refresher, SessionTimer};
use crate::sip::{Message, Method, response_to};
use crate::transaction::{Retransmit, RetransmitStep, TransactionId};
use crate::{Instant, session_timer};
use core::time::Duration;

impl Calls {
    /// Drops a call's session changes (it is ending); one of theirs still
    /// waiting for the app gets `487`.
    pub(super) fn drop_updates(&mut self, cx: &mut Ctx<'_>, id: CallId) {
        for u in self.updates.iter().filter(|u| u.call() == id) {
            if let Update::Received { tx, invite, .. } = u
                && let Ok(req) = Message::parse(invite)
            {
                let resp = response_to(&req, 487, "Request Terminated", None).finish(None, b"");
                cx.respond(*tx, 487, resp);
            }
        }
        self.updates.retain(|u| u.call() != id);
    }

    /// Changes a confirmed call's session with a re-INVITE (or, `method`
    /// `UPDATE`, RFC 3311) carrying `sdp` (hold: `sendonly`; unhold:
    /// `sendrecv`; an ICE restart's new offer). `false` while another
    /// change of the app's or the far end's is under way (§14.1: one at a
    /// time), or when the call is not up. During the agent's own refresh or
    /// recovery re-INVITE, the change waits for it and then goes.
    pub fn update(
        &mut self,
        cx: &mut Ctx<'_>,
        id: CallId,
        sdp: &str,
        method: Method,
    ) -> Result<(), ActionError> {
        // Its own reservation is what this change fills.
        self.may_change(id, false)?;
        let internal = self
            .updates
            .iter()
            .any(|u| u.call() == id && matches!(u, Update::Sent { .. }));
        self.updates
            .retain(|u| u.call() != id || matches!(u, Update::Sent { .. }));
        if internal {
            self.updates.push(Update::Retry {
                call: id,
                method,
                at: cx.now,
                sdp: sdp.to_owned(),
                headers: cx.headers.to_vec(),
            });
            return Ok(());
        }
        if self.send_update(cx, id, sdp, method, Purpose::App, None) {
            Ok(())
        } else {
            Err(ActionError::Unsendable)
        }
    }

    /// Reserves call `id`'s next change for an offer the application is
    /// making ([`Update::Preparing`]): the same checks as
    /// [`Self::update`], which then fills it, or [`Self::abandon_update`]
    /// frees it.
    pub fn begin_update(&mut self, id: CallId) -> Result<(), ActionError> {
        self.may_change(id, true)?;
        self.updates.push(Update::Preparing { call: id });
        Ok(())
    }

    /// The offer reserved with [`Self::begin_update`] will not come.
    pub fn abandon_update(&mut self, id: CallId) {
        self.updates
            .retain(|u| !matches!(u, Update::Preparing { call } if *call == id));
    }

    /// Whether the app may change call `id` now: up, and no other change
    /// of the app's or the far end's under way (§14.1: one at a time); a
    /// reservation counts as one unless it is the one being filled.
    fn may_change(&self, id: CallId, reserving: bool) -> Result<(), ActionError> {
        let busy = self.updates.iter().any(|u| {
            u.call() == id
                && match u {
                    Update::Sent { purpose, .. } => *purpose == Purpose::App,
                    Update::Received { .. } | Update::Answered { .. } => true,
                    Update::Preparing { .. } => reserving,
                    Update::Retry { .. } | Update::Acked { .. } => false,
                }
        });
        let confirmed = self
            .calls
            .iter()
            .any(|c| c.id == id && c.state == CallState::Confirmed)
            || self
                .incoming
                .iter()
                .any(|c| c.id == id && c.ok.is_some() && c.retransmit.is_none());
        if !confirmed {
            return Err(self.not_up(id));
        }
        if busy {
            return Err(ActionError::ChangePending(id));
        }
        Ok(())
    }

    /// The calls with a change under way, ours or theirs: a waiting one
    /// (after glare, or behind a refresh) goes only once it is over.
    pub(super) fn changing(&self) -> Vec<CallId> {
        self.updates
            .iter()
            .filter(|u| {
                matches!(
                    u,
                    Update::Sent { .. }
                        | Update::Preparing { .. }
                        | Update::Received { .. }
                        | Update::Answered { .. }
                )
            })
            .map(Update::call)
            .collect()
    }

    /// Our current SDP of a call of either kind.
    pub(super) fn local_sdp_mut(&mut self, id: CallId) -> Option<&mut String> {
        Some(self.session_mut(id)?.local_sdp)
    }

    /// Sends a re-INVITE or UPDATE with `sdp`; only a change for the app
    /// ([`Purpose::App`]) is reported to it. Every change refreshes the
    /// session timer, so each carries Session-Expires (RFC 4028 §7.4).
    /// `auth`: the challenges answered for it so far, when the far end (or
    /// a proxy on the route) asked for credentials; they go with it then.
    pub(super) fn send_update(
        &mut self,
        cx: &mut Ctx<'_>,
        id: CallId,
        sdp: &str,
        method: Method,
        purpose: Purpose,
        auth: Option<AuthRound>,
    ) -> bool {
        let contact = String::from("<") + &cx.id.contact_uri + ">";
        let session_expires = self.timer_mut(id).map(|t| {
            if t.we_refresh {
                t.request_header()
            } else {
                SessionTimer::response_header(t.interval, Refresher::Uas)
            }
        });
        let mut headers = vec![("Contact", contact.as_str()), ("Allow", ALLOW)];
        if let Some(se) = &session_expires {
            headers.extend([("Session-Expires", se.as_str()), ("Supported", "timer")]);
        }
        let credentials = match (&auth, self.dialog_mut(id)) {
            (Some(_), Some(dialog)) => {
                let uri = dialog.remote_target().to_owned();
                let info = RequestInfo {
                    method: method.as_str(),
                    uri: &uri,
                    body: sdp.as_bytes(),
                };
                cx.digest
                    .as_deref_mut()
                    .map(|d| d.credentials(&info, cx.rng))
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        };
        headers.extend(
            credentials
                .iter()
                .map(|(name, value)| (*name, value.as_str())),
        );
        let Ok((tx, cseq)) =
            self.request_in_dialog(cx, id, method, &headers, Some(("application/sdp", sdp)))
        else {
            return false;
        };
        self.updates.push(Update::Sent {
            call: id,
            method,
            tx,
            cseq,
            sdp: sdp.to_owned(),
            deadline: cx.now + TIMER_C,
            purpose,
            headers: cx.headers.to_vec(),
            auth: auth.unwrap_or_default(),
        });
        true
    }

    /// A response to our re-INVITE `i`.
    pub(super) fn on_update_response(
        &mut self,
        cx: &mut Ctx<'_>,
        i: usize,
        msg: Option<&Message<'_>>,
    ) {
        let Update::Sent {
            call,
            cseq,
            method,
            tx,
            purpose,
            ..
        } = self.updates[i]
        else {
            return;
        };
        let code = msg.and_then(Message::status).unwrap_or(408);
        if code < 200 {
            return;
        }
        let Update::Sent {
            sdp, headers, auth, ..
        } = self.updates.remove(i)
        else {
            return;
        };
        // A challenge: the same change again with credentials, once per
        // realm; a refused answer is a failure like any other.
        if let (401 | 407, Some(m)) = (code, msg) {
            let mut round = auth;
            let again = cx
                .digest
                .as_deref_mut()
                .is_some_and(|d| d.on_challenges(&challenges(m), &mut round));
            if again
                && self.send_update(
                    &mut cx.with_headers(&headers),
                    call,
                    &sdp,
                    method,
                    purpose,
                    Some(round),
                )
            {
                return;
            }
        }
        match (code, msg) {
            (200..=299, Some(msg)) => {
                let via = cx.via();
                let mut acked = None;
                if let Some(dialog) = self.dialog_mut(call) {
                    dialog.receive_response(msg);
                    // A re-INVITE's 2xx is acknowledged; an UPDATE's not.
                    if method == Method::Invite {
                        let ack = dialog.ack(cseq, &via).finish(None, b"");
                        cx.transmit.push(ack.clone());
                        acked = Some(ack);
                    }
                }
                if let Some(ack) = acked {
                    self.updates.push(Update::Acked { call, tx, ack });
                }
                let now = cx.now;
                let ours_holds = offer_holds(sdp.as_bytes());
                if let Some(local) = self.local_sdp_mut(call) {
                    *local = sdp;
                }
                if let Some(timer) = self.timer_mut(call) {
                    // Their 2xx may renegotiate it (we were its UAC).
                    if let Some((secs, refresher)) = session_timer::parse(msg) {
                        timer.interval = secs.max(MIN_SE);
                        timer.we_refresh = refresher != Some(Refresher::Uas);
                    }
                    timer.refreshed(now);
                }
                let sdp = String::from_utf8_lossy(msg.body()).into_owned();
                match purpose {
                    Purpose::App => {
                        cx.events.push(Event::Updated { call, sdp });
                        self.offer_settled(cx, call, ours_holds, HoldBy::Local);
                    }
                    // The shell checks that the far end's media is still
                    // the one it talks to.
                    Purpose::Recover => cx.events.push(Event::Recovered { call, sdp }),
                    Purpose::Refresh => {}
                }
            }
            // After a reconnect, any failure: the call did not survive.
            _ if purpose == Purpose::Recover => {
                self.end_expired(
                    cx,
                    call,
                    code,
                    msg.map_or("Request Timeout", |m| m.reason()),
                );
            }
            (408 | 481, _) if purpose == Purpose::Refresh => {
                // The far end no longer has the dialog (§12.2.1.2).
                self.end_expired(
                    cx,
                    call,
                    code,
                    msg.map_or("Request Timeout", |m| m.reason()),
                );
            }
            _ if purpose == Purpose::Refresh => {
                let now = cx.now;
                if let Some(timer) = self.timer_mut(call) {
                    timer.retry_refresh(now);
                }
            }
            (491, _) if purpose == Purpose::App => {
                // Glare (§14.1): the owner of the Call-ID (the caller)
                // waits 2.1–4 s, the other side 0–2 s, in 10 ms steps.
                let caller = self.calls.iter().any(|c| c.id == call);
                let (base, spread) = if caller { (210, 190) } else { (0, 200) };
                let wait = Duration::from_millis((base + cx.rng.below(spread + 1)) * 10);
                self.updates.push(Update::Retry {
                    call,
                    method,
                    at: cx.now + wait,
                    sdp,
                    headers,
                });
            }
            _ => {
                let reason = msg.map_or("Request Timeout", |m| m.reason());
                cx.events.push(Event::UpdateFailed {
                    call,
                    code,
                    reason: reason.to_owned(),
                });
                if matches!(code, 408 | 481) {
                    // The far end lost the dialog (§12.2.1.2): the call is over.
                    self.end_expired(cx, call, code, reason);
                }
            }
        }
    }

    /// The far end's re-INVITE or UPDATE in a call's dialog (transaction
    /// `tx`): `491` while ours is under way, else reported for the
    /// application to answer with [`Self::answer`].
    pub(super) fn on_reinvite(
        &mut self,
        cx: &mut Ctx<'_>,
        id: CallId,
        tx: TransactionId,
        msg: &Message<'_>,
        raw: &[u8],
    ) -> InDialog {
        if msg.method() == Some(Method::Update) && msg.body().is_empty() {
            // No offer (a session-timer refresh): nothing for the app, and
            // no glare (RFC 3311 §5.2).
            let mut b = response_to(msg, 200, "OK", None);
            b.header_parts("Contact", &["<", &cx.id.contact_uri, ">"]);
            if let Some(se) = self.refreshed_by_them(cx.now, id, msg, None) {
                b.header("Session-Expires", &se);
            }
            return InDialog::Respond(200, b.finish(None, b""));
        }
        let ours = self
            .updates
            .iter()
            .any(|u| u.call() == id && matches!(u, Update::Sent { .. } | Update::Preparing { .. }));
        let theirs = self.updates.iter().any(|u| {
            u.call() == id && matches!(u, Update::Received { .. } | Update::Answered { .. })
        });
        if ours {
            let resp = response_to(msg, 491, "Request Pending", None).finish(None, b"");
            return InDialog::Respond(491, resp);
        }
        if theirs {
            // Their own change is still under way (§14.2).
            let mut b = response_to(msg, 500, "Previous Request Pending", None);
            b.header("Retry-After", "1");
            return InDialog::Respond(500, b.finish(None, b""));
        }
        let sdp =
            (!msg.body().is_empty()).then(|| String::from_utf8_lossy(msg.body()).into_owned());
        cx.events.push(Event::Updating { call: id, sdp });
        self.updates.push(Update::Received {
            call: id,
            tx,
            invite: raw.to_vec(),
        });
        InDialog::Held
    }

    /// Answers the far end's re-INVITE of call `id` with `sdp`; `false` if
    /// it has none waiting.
    pub(super) fn answer_update(&mut self, cx: &mut Ctx<'_>, id: CallId, sdp: &str) -> bool {
        let Some(i) = self
            .updates
            .iter()
            .position(|u| matches!(u, Update::Received { call, .. } if *call == id))
        else {
            return false;
        };
        let Update::Received { tx, invite, .. } = self.updates.remove(i) else {
            return false;
        };
        let Ok(req) = Message::parse(&invite) else {
            return true;
        };
        let is_invite = req.method() == Some(Method::Invite);
        let mut b = response_to(&req, 200, "OK", None);
        b.header_parts("Contact", &["<", &cx.id.contact_uri, ">"])
            .header("Allow", ALLOW)
            .header("User-Agent", &cx.id.user_agent);
        if let Some(se) = self.refreshed_by_them(cx.now, id, &req, Some(sdp)) {
            b.header("Session-Expires", &se);
            if se.ends_with("uac") {
                b.header("Require", "timer");
            }
        }
        cx.add_app_headers(&mut b);
        let ok = b.finish(Some("application/sdp"), sdp.as_bytes());
        cx.respond(tx, 200, ok.clone());
        if !req.body().is_empty() {
            self.offer_settled(cx, id, offer_holds(req.body()), HoldBy::Remote);
        }
        if !is_invite {
            return true; // an UPDATE's 200 is final: no ACK to wait for
        }
        self.updates.push(Update::Answered {
            call: id,
            tx,
            ok,
            retransmit: Retransmit::start(cx.now, cx.txs.timers()),
        });
        true
    }

    /// The ACK of our 2xx to a re-INVITE: done (its body, if any, is the
    /// answer to the offer our 2xx carried). Returns whether one had it.
    pub(super) fn on_update_ack(&mut self, cx: &mut Ctx<'_>, msg: &Message<'_>) -> bool {
        let Some(i) = self.updates.iter().position(|u| match u {
            Update::Answered { call, .. } => {
                let call = *call;
                self.calls
                    .iter()
                    .find(|c| c.id == call)
                    .and_then(|c| c.dialog.as_ref())
                    .or_else(|| self.incoming.iter().find(|c| c.id == call)?.dialog.as_ref())
                    .is_some_and(|d| d.has_request(msg))
            }
            _ => false,
        }) else {
            return false;
        };
        let call = self.updates.remove(i).call();
        if !msg.body().is_empty() {
            cx.events.push(Event::Updated {
                call,
                sdp: String::from_utf8_lossy(msg.body()).into_owned(),
            });
        }
        true
    }

    /// Runs the re-INVITEs' timers: retries after glare, 2xx
    /// retransmissions until the ACK.
    pub(super) fn update_timeouts(&mut self, cx: &mut Ctx<'_>) {
        let now = cx.now;
        let mut retries = Vec::new();
        let mut failed = Vec::new();
        // A waiting change goes once no other is under way (§14.1).
        let changing = self.changing();
        self.updates.retain_mut(|u| match u {
            Update::Retry {
                call,
                method,
                at,
                sdp,
                headers,
            } if *at <= now && !changing.contains(call) => {
                retries.push((
                    *call,
                    *method,
                    core::mem::take(sdp),
                    core::mem::take(headers),
                ));
                false
            }
            Update::Sent {
                call,
                deadline,
                purpose,
                ..
            } if *deadline <= now => {
                failed.push((*call, *purpose));
                false
            }
            Update::Answered {
                tx, ok, retransmit, ..
            } => match retransmit.poll(now) {
                RetransmitStep::GiveUp => false,
                RetransmitStep::Send => {
                    if cx.txs.respond(now, *tx, 200, ok) {
                        cx.transmit.push(ok.clone());
                    }
                    true
                }
                RetransmitStep::Wait => true,
            },
            _ => true,
        });
        for (call, method, sdp, headers) in retries {
            self.send_update(
                &mut cx.with_headers(&headers),
                call,
                &sdp,
                method,
                Purpose::App,
                None,
            );
        }
        for (call, purpose) in failed {
            if purpose != Purpose::App {
                self.end_expired(cx, call, 408, "Request Timeout");
            } else {
                cx.events.push(Event::UpdateFailed {
                    call,
                    code: 408,
                    reason: "Request Timeout".into(),
                });
            }
        }
    }

    pub(super) fn update_deadline(&self) -> Option<Instant> {
        // A waiting change has no deadline of its own while another is
        // under way: the end of that one lets it go.
        let changing = self.changing();
        self.updates
            .iter()
            .filter_map(|u| match u {
                Update::Retry { at, call, .. } if !changing.contains(call) => Some(*at),
                Update::Sent { deadline, .. } => Some(*deadline),
                Update::Answered { retransmit, .. } => Some(retransmit.deadline()),
                _ => None,
            })
            .min()
    }
}
