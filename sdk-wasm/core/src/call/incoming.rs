//! The calls we receive (RFC 3261 §13.3): the INVITE reported with its
//! offer (or none), the application's ringing, answer or refusal, our 2xx
//! retransmitted until its ACK, a CANCEL before the answer ending it with
//! 487.

use super::outgoing::requires_100rel;
use super::replaces::Refusal;
use super::{ALLOW, Calls, Incoming, Update, bye, decimal, hangup};
use crate::ctx::Ctx;
use crate::dialog::Dialog;
use crate::event::Event;
use crate::ids::CallId;
use crate::input::safe_text;
use crate::prelude::*;
use crate::session_timer;
use crate::session_timer::{MIN_SE, Refresher, SessionTimer};
use crate::sip::{HeaderName, Message, response_to};
use crate::transaction::{Retransmit, TransactionId};

impl Calls {
    /// A new INVITE outside any dialog (server transaction `tx`): a call
    /// for the application, with the caller's offer if it made one.
    pub fn on_invite(
        &mut self,
        cx: &mut Ctx<'_>,
        tx: TransactionId,
        msg: &Message<'_>,
        raw: &[u8],
    ) {
        if msg.from().tag().is_none() || msg.header(HeaderName::Contact).is_none() {
            // §8.1.1.3 and §8.1.1.8: without them there is no dialog to
            // make.
            let reason = if msg.from().tag().is_none() {
                "Missing From tag"
            } else {
                "Missing Contact"
            };
            let resp = response_to(msg, 400, reason, Some(&cx.rng.token(10))).finish(None, b"");
            cx.respond(tx, 400, resp);
            return;
        }
        if session_timer::parse(msg).is_some_and(|(secs, _)| secs < MIN_SE) {
            // RFC 4028 §8.1: too short an interval is refused, with ours.
            let mut b = response_to(
                msg,
                422,
                "Session Interval Too Small",
                Some(&cx.rng.token(10)),
            );
            b.header("Min-SE", &decimal(MIN_SE));
            let resp = b.finish(None, b"");
            cx.respond(tx, 422, resp);
            return;
        }
        let replaces = match self.replaced_by(msg) {
            Ok(replaces) => replaces,
            Err(Refusal(code, reason)) => {
                let resp =
                    response_to(msg, code, reason, Some(&cx.rng.token(10))).finish(None, b"");
                cx.respond(tx, code, resp);
                return;
            }
        };
        self.next += 1;
        let id = CallId(self.next);
        let sdp =
            (!msg.body().is_empty()).then(|| String::from_utf8_lossy(msg.body()).into_owned());
        let trickle = super::trickle::supported(msg)
            && sdp.as_deref().is_some_and(|o| !crate::sdp::is_ice_lite(o));
        cx.events.push(Event::Incoming {
            call: id,
            from: msg.from().uri_text.to_owned(),
            display_name: msg.from().display_name.map(str::to_owned),
            sdp,
            headers: cx.id.picked_headers(msg),
            replaces,
        });
        self.incoming.push(Incoming {
            id,
            tx,
            invite: raw.to_vec(),
            local_tag: cx.rng.token(10),
            dialog: None,
            ok: None,
            retransmit: None,
            bye_wanted: false,
            never_up: false,
            bye_tx: None,
            timer: None,
            local_sdp: String::new(),
            replaces,
            trickle,
        });
        if cx.id.auto_ringing {
            self.ringing(cx, id);
        }
    }

    /// The application says the call rings: `180 Ringing`.
    ///
    /// A caller that requires reliable provisional responses (`Require:
    /// 100rel`) gets none: we do not send them, and RFC 3262 §3 lets a UAS
    /// go straight to the final answer.
    pub fn ringing(&mut self, cx: &mut Ctx<'_>, id: CallId) {
        if let Some(call) = self.incoming.iter().find(|c| c.id == id && c.ok.is_none())
            && !requires_100rel(&call.invite)
            && let Some(resp) = callee_response(call, cx, 180, "Ringing", None)
            && cx.txs.respond(cx.now, call.tx, 180, &resp)
        {
            cx.transmit.push(resp);
        }
    }

    /// The application answers with its SDP (the answer to the caller's
    /// offer, or its own offer when the INVITE had none).
    pub fn answer(&mut self, cx: &mut Ctx<'_>, id: CallId, sdp: &str) {
        if self.answer_update(cx, id, sdp) {
            return;
        }
        let Some(call) = self
            .incoming
            .iter_mut()
            .find(|c| c.id == id && c.ok.is_none())
        else {
            return;
        };
        // RFC 4028 §9: a caller that asked for a session timer gets one.
        let timer = Message::parse(&call.invite)
            .ok()
            .and_then(|invite| session_timer::as_uas(&invite));
        let header = timer.map(|(secs, refresher)| SessionTimer::response_header(secs, refresher));
        let mut extra: Vec<(&str, &str)> = vec![
            ("Supported", super::trickle::TRICKLE),
            ("Recv-Info", super::trickle::TRICKLE),
        ];
        if let Some(h) = &header {
            extra.push(("Session-Expires", h));
            if timer.is_some_and(|(_, r)| r == Refresher::Uac) {
                extra.push(("Require", "timer"));
            }
        }
        let Some(resp) = callee_response_with(call, cx, 200, "OK", Some(sdp), &extra) else {
            return;
        };
        call.timer = timer
            .map(|(secs, refresher)| SessionTimer::new(cx.now, secs, refresher == Refresher::Uas));
        call.local_sdp = sdp.to_owned();
        let (Ok(invite), Ok(ok)) = (Message::parse(&call.invite), Message::parse(&resp)) else {
            return;
        };
        let Ok(mut dialog) = Dialog::callee(&invite, &call.local_tag) else {
            return;
        };
        dialog.confirm(&ok, false);
        call.dialog = Some(dialog);
        cx.respond(call.tx, 200, resp.clone());
        call.ok = Some(resp);
        call.retransmit = Some(Retransmit::start(cx.now, cx.txs.timers()));
    }

    /// The application declines the call with `code` (486, 603…).
    ///
    /// With the far end's re-INVITE or UPDATE waiting ([`Event::Updating`]),
    /// it is that change that is refused (`488 Not Acceptable Here` when
    /// the offer cannot be taken): the call goes on as it was.
    pub fn decline(&mut self, cx: &mut Ctx<'_>, id: CallId, code: u16, reason: &str) {
        if let Some(i) = self
            .updates
            .iter()
            .position(|u| matches!(u, Update::Received { call, .. } if *call == id))
        {
            if let Update::Received { tx, invite, .. } = self.updates.remove(i)
                && let Ok(req) = Message::parse(&invite)
            {
                let code = code.clamp(300, 699);
                let reason = if safe_text(reason) { reason } else { "Refused" };
                let mut b = response_to(&req, code, reason, None);
                cx.add_app_headers(&mut b);
                let resp = b.finish(None, b"");
                cx.respond(tx, code, resp);
            }
            return;
        }
        let Some(i) = self
            .incoming
            .iter()
            .position(|c| c.id == id && c.ok.is_none())
        else {
            return;
        };
        let call = self.incoming.remove(i);
        let code = code.clamp(300, 699);
        let reason = if safe_text(reason) {
            reason
        } else {
            "Declined"
        };
        if let Some(resp) = callee_response(&call, cx, code, reason, None)
            && cx.txs.respond(cx.now, call.tx, code, &resp)
        {
            cx.transmit.push(resp);
        }
        hangup(cx, id, Some(code), reason);
    }

    /// A CANCEL for an INVITE we received (`invite_tx`): the call ends with
    /// `487` if it was not answered yet. Returns whether a call had it.
    pub fn on_cancel(&mut self, cx: &mut Ctx<'_>, invite_tx: TransactionId) -> bool {
        // Their re-INVITE, not answered yet: 487 for it.
        if let Some(i) = self
            .updates
            .iter()
            .position(|u| matches!(u, Update::Received { tx, .. } if *tx == invite_tx))
        {
            if let Update::Received { tx, invite, .. } = self.updates.remove(i)
                && let Ok(req) = Message::parse(&invite)
            {
                let resp = response_to(&req, 487, "Request Terminated", None).finish(None, b"");
                cx.respond(tx, 487, resp);
            }
            return true;
        }
        let Some(i) = self.incoming.iter().position(|c| c.tx == invite_tx) else {
            // A re-INVITE of theirs already answered: the CANCEL gets its
            // 200 (§9.2) and changes nothing.
            return self
                .updates
                .iter()
                .any(|u| matches!(u, Update::Answered { tx, .. } if *tx == invite_tx));
        };
        if self.incoming[i].ok.is_none() {
            let call = self.incoming.remove(i);
            if let Some(resp) = callee_response(&call, cx, 487, "Request Terminated", None)
                && cx.txs.respond(cx.now, call.tx, 487, &resp)
            {
                cx.transmit.push(resp);
            }
            hangup(cx, call.id, Some(487), "Request Terminated");
        }
        true
    }

    /// The ACK of a 2xx we sent: the call is up (its body is the answer
    /// when our 200 carried the offer).
    pub fn on_ack(&mut self, cx: &mut Ctx<'_>, msg: &Message<'_>) {
        if self.on_update_ack(cx, msg) {
            return;
        }
        let Some(call) = self.incoming.iter_mut().find(|c| {
            c.retransmit.is_some() && c.dialog.as_ref().is_some_and(|d| d.has_request(msg))
        }) else {
            return;
        };
        call.retransmit = None;
        if call.bye_wanted {
            // The app hung up meanwhile: the call ends, never reported up
            // (the BYE's answer reports it ended, 487).
            call.never_up = true;
            send_callee_bye(call, cx);
            return;
        }
        cx.events.push(Event::Accepted {
            call: call.id,
            sdp: String::from_utf8_lossy(msg.body()).into_owned(),
        });
        // Our answer left before gathering, to a caller that takes
        // trickled candidates: they follow in the confirmed dialog.
        if call.trickle && !crate::sdp::has_candidates(&call.local_sdp) {
            cx.events.push(Event::CandidatesNeeded {
                call: call.id,
                trickle: true,
            });
        }
        if let Some(old) = call.replaces {
            let new = call.id;
            self.replaced(cx, new, old);
        }
    }
}

/// Our response to a received INVITE: its To gets our tag; a 18x or 2xx
/// also the Record-Route (§12.1.1) and our Contact; `sdp` as the body.
pub(super) fn callee_response(
    call: &Incoming,
    cx: &mut Ctx<'_>,
    code: u16,
    reason: &str,
    sdp: Option<&str>,
) -> Option<Vec<u8>> {
    callee_response_with(call, cx, code, reason, sdp, &[])
}

/// [`callee_response`] with `extra` headers.
pub(super) fn callee_response_with(
    call: &Incoming,
    cx: &mut Ctx<'_>,
    code: u16,
    reason: &str,
    sdp: Option<&str>,
    extra: &[(&str, &str)],
) -> Option<Vec<u8>> {
    let invite = Message::parse(&call.invite).ok()?;
    let mut b = response_to(&invite, code, reason, Some(&call.local_tag));
    for (name, value) in extra {
        b.header(name, value);
    }
    cx.add_app_headers(&mut b);
    if code < 300 {
        for rr in invite.header_lines(HeaderName::RecordRoute) {
            b.header("Record-Route", rr);
        }
        b.header_parts("Contact", &["<", &cx.id.contact_uri, ">"]);
        b.header("Allow", ALLOW);
    }
    b.header("User-Agent", &cx.id.user_agent);
    Some(match sdp {
        Some(sdp) => b.finish(Some("application/sdp"), sdp.as_bytes()),
        None => b.finish(None, b""),
    })
}

pub(super) fn send_callee_bye(call: &mut Incoming, cx: &mut Ctx<'_>) {
    call.bye_wanted = false;
    call.bye_tx = bye(call.dialog.as_mut(), cx);
}
