//! Calls (RFC 3261 §13, §15, §9), sans-IO.
//!
//! Made: an INVITE with the application's SDP offer, its provisional
//! responses (ringing, early media), the 2xx acknowledged and the dialog
//! kept, a digest challenge answered once, and the end of the call: BYE
//! once answered, CANCEL before (sent once a provisional response came,
//! §9.1), with the CANCEL/200 race settled by acknowledging the 2xx and
//! sending BYE.
//!
//! Received: an INVITE is reported with its offer (or none: the offer then
//! goes in our 200 and the answer comes in the ACK); the application rings,
//! answers or declines with the code it chooses. The 2xx is retransmitted
//! until its ACK (§13.3.1.4: end to end, past UDP hops), a CANCEL ends an
//! unanswered call with 487. A BYE from the far end ends either kind.
//!
//! Re-INVITEs (§14) change a call's session either way (hold, unhold, ICE
//! restart): one at a time, glare answered `491` and retried after the
//! §14.1 random wait.
//!
//! The calls' shared state and the dispatch of what arrives are here;
//! each kind of step has its own file: `outgoing` and `incoming` calls,
//! `reinvite` (changes of a session), `session_timers`, `refer`
//! (transfers both ways) and `recovery` (calls across a new transport).

use crate::prelude::*;

mod hold;
mod incoming;
mod info;
mod outgoing;
mod recovery;
pub(crate) mod refer;
mod reinvite;
mod replaces;
mod session_timers;
mod trickle;

use self::incoming::send_callee_bye;
use self::outgoing::{on_invite_response, send_cancel};
use self::refer::transfer_progress;
use crate::Instant;
use crate::auth::AuthRound;
use crate::ctx::Ctx;
use crate::dialog::Dialog;
use crate::error::ActionError;
use crate::event::Event;
use crate::ids::{CallId, MessageId};
use crate::input::safe_text;
use crate::session_timer::SessionTimer;
use crate::sip::{Message, Method, push_decimal, response_to};
use crate::transaction::{Retransmit, RetransmitStep, TransactionId};
use core::time::Duration;

/// Where an outgoing call stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallState {
    /// INVITE sent, nothing back but perhaps `100 Trying`.
    Calling,
    /// A provisional response came (ringing, or early media).
    Proceeding,
    /// Answered: the dialog is confirmed.
    Confirmed,
    /// Hanging up: BYE or CANCEL sent.
    Ending,
}

/// Methods the user agent accepts (in calls and outside them).
pub(crate) const ALLOW: &str =
    "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, INFO, UPDATE, NOTIFY, REFER";

#[derive(Debug)]
struct Call {
    id: CallId,
    state: CallState,
    call_id: String,
    from: String,
    target: String,
    /// Our session description: the INVITE's offer, then each change's.
    local_sdp: String,
    /// The INVITE in flight, its CSeq and transaction.
    invite: Vec<u8>,
    invite_cseq: u32,
    invite_tx: TransactionId,
    auth: AuthRound,
    /// The application hung up before any provisional response: CANCEL
    /// goes out when one comes (RFC 3261 §9.1).
    cancel_wanted: bool,
    dialog: Option<Dialog>,
    /// The ACK of the 2xx, kept to answer its retransmissions.
    ack: Option<Vec<u8>>,
    /// After our CANCEL, when to stop waiting for the INVITE's final
    /// answer (64·T1, §9.1).
    give_up: Option<Instant>,
    bye_tx: Option<TransactionId>,
    /// The Session-Expires our INVITE asks for (RFC 4028), raised by a 422.
    session_expires: Option<u32>,
    /// The Min-SE our INVITE states: 90, or what a 422 demanded (§7.4).
    min_se: u32,
    /// The session timer the 2xx agreed on.
    timer: Option<SessionTimer>,
    /// The last RSeq acknowledged with PRACK, per early dialog (to-tag):
    /// reliable provisional responses (RFC 3262).
    rseqs: Vec<(String, u32)>,
    /// The early dialogs of other forks than `dialog`'s that we sent PRACKs
    /// in: their CSeq goes on counting there, for the next PRACK and for
    /// the ACK and BYE if that fork answers.
    forks: Vec<Dialog>,
    /// The application's headers for the INVITE (kept for its retries).
    headers: Vec<(String, String)>,
    /// Hung up before it was reported up (a 2xx that won the race with
    /// our CANCEL): it ends as a cancelled call would, `487`.
    cancelled: bool,
    /// The far end's early answer (a 183's SDP) and the early dialog's
    /// tag: the final answer if that fork's 2xx brings none (a reliable
    /// provisional carried it, RFC 3262 §5).
    early: Option<(String, String)>,
    /// The 2xx said the far end takes trickled candidates (RFC 8840).
    trickle: bool,
}

/// A call the user agent received.
#[derive(Debug)]
struct Incoming {
    id: CallId,
    /// The INVITE's server transaction and its text.
    tx: TransactionId,
    invite: Vec<u8>,
    local_tag: String,
    /// Made when answered.
    dialog: Option<Dialog>,
    /// Our 2xx, retransmitted until the ACK.
    ok: Option<Vec<u8>>,
    retransmit: Option<Retransmit>,
    /// The application hung up before the ACK: BYE once it comes (§15).
    bye_wanted: bool,
    /// Ended that way, never reported up: it ends as a cancelled call
    /// would, `487`.
    never_up: bool,
    bye_tx: Option<TransactionId>,
    /// The session timer our 2xx agreed on (RFC 4028).
    timer: Option<SessionTimer>,
    /// Our session description: our answer (or offer) in the 2xx, then
    /// each change's.
    local_sdp: String,
    /// The call it replaces (RFC 3891), ended once this one is up.
    replaces: Option<CallId>,
    /// The caller takes trickled candidates (RFC 8840) and is a full-ICE
    /// agent: our answer may go without them, and they follow by INFO.
    trickle: bool,
}

/// Why we sent a re-INVITE.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    /// The app changed the call (hold, unhold, ICE restart).
    App,
    /// A session-timer refresh (RFC 4028): failures other than 408/481
    /// are retried.
    Refresh,
    /// After a reconnect, the call's dialog moves to the new flow (RFC
    /// 5626 §4.2.1's target refresh): any failure means the call is lost.
    Recover,
}

/// The parts of a call's session that outgoing and incoming calls both
/// keep, borrowed together.
struct Session<'a> {
    dialog: &'a mut Option<Dialog>,
    timer: &'a mut Option<SessionTimer>,
    local_sdp: &'a mut String,
}

/// A re-INVITE of a call, ours or theirs.
#[derive(Debug)]
enum Update {
    /// Ours, in flight.
    Sent {
        call: CallId,
        method: Method,
        tx: TransactionId,
        cseq: u32,
        sdp: String,
        /// When to stop waiting for a final answer (a provisional stops
        /// the transaction's own timer): Timer C's 3 minutes.
        deadline: Instant,
        /// Why it was sent: only the app's own changes are reported.
        purpose: Purpose,
        /// The app's headers it carried, for a retry after glare.
        headers: Vec<(String, String)>,
        /// The challenges answered for it so far (RFC 3261 §22.2).
        auth: AuthRound,
    },
    /// Ours, answered with a 2xx and acknowledged: kept (until the next
    /// change or the end of the call) to acknowledge its retransmissions.
    Acked {
        call: CallId,
        tx: TransactionId,
        ack: Vec<u8>,
    },
    /// Ours, refused with 491 (glare): sent again at `at`, with the same
    /// body and the app's same headers.
    Retry {
        call: CallId,
        method: Method,
        at: Instant,
        sdp: String,
        headers: Vec<(String, String)>,
    },
    /// Ours, being made: the application reserved the call's next change
    /// ([`Calls::begin_update`]) while the browser makes its offer. The far
    /// end's offers meanwhile get `491` (one offer at a time, RFC 3264 §4).
    Preparing { call: CallId },
    /// Theirs, waiting for the application's answer.
    Received {
        call: CallId,
        tx: TransactionId,
        invite: Vec<u8>,
    },
    /// Theirs, answered: our 2xx retransmitted until its ACK.
    Answered {
        call: CallId,
        tx: TransactionId,
        ok: Vec<u8>,
        retransmit: Retransmit,
    },
}

impl Update {
    fn call(&self) -> CallId {
        match self {
            Update::Sent { call, .. }
            | Update::Acked { call, .. }
            | Update::Retry { call, .. }
            | Update::Preparing { call }
            | Update::Received { call, .. }
            | Update::Answered { call, .. } => *call,
        }
    }
}

/// What a request in a call's dialog gets.
pub(crate) enum InDialog {
    /// This response, now.
    Respond(u16, Vec<u8>),
    /// Nothing yet: the application answers it (a re-INVITE).
    Held,
    /// Answered already, with what had to follow the answer (a REFER's
    /// 202 and its first NOTIFY).
    Done,
}

/// A transfer the far end asked of us (RFC 3515: we are the one
/// transferred). The REFER's implicit subscription reports the new call's
/// progress, as `message/sipfrag` NOTIFYs in the old call's dialog.
#[derive(Debug)]
struct Referral {
    /// The call the REFER came in.
    from: CallId,
    /// Whom to call.
    target: String,
    /// The REFER's Referred-By, for the new INVITE.
    referred_by: Option<String>,
    /// The Replaces its Refer-To carried (an attended transfer), for the
    /// new INVITE.
    replaces: Option<String>,
    /// The new call, once the app followed the request.
    call: Option<CallId>,
    /// The last status NOTIFYed (100 at the start).
    reported: u16,
}

/// The calls of one user agent.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    calls: Vec<Call>,
    incoming: Vec<Incoming>,
    updates: Vec<Update>,
    /// Our REFERs in flight (blind transfers), until their final answer.
    refers: Vec<(TransactionId, CallId)>,
    /// The application's INFOs in flight, until their final answer; with
    /// `Some(on)`, a request to start or stop recording.
    infos: Vec<(TransactionId, CallId, MessageId, Option<bool>)>,
    /// Per call, the candidates we trickled so far (RFC 8840).
    trickled: Vec<(CallId, Vec<String>)>,
    /// The last INFO's id.
    next_info: u32,
    /// Our blind transfers, until their outcome is known.
    transfers: Vec<refer::OurTransfer>,
    /// The far end's REFERs we accepted, until their new call's outcome.
    referrals: Vec<Referral>,
    next: u32,
    /// The Session-Expires our INVITEs ask for; `None`: no session timers
    /// unless the far end asks.
    session_expires: Option<u32>,
    /// The transport dropped with calls up: until when they wait for a
    /// new one.
    suspended: Option<Instant>,
    /// Who holds each call, as the agreed offers said.
    holds: Vec<(CallId, hold::Hold)>,
}

/// How long calls kept through a dropped WebSocket wait for a new one.
const RECOVER_WAIT: Duration = Duration::from_secs(32);
/// How long our re-INVITE may stay without a final answer (RFC 3261 Timer C).
const TIMER_C: Duration = Duration::from_secs(180);

/// Sends `raw` (a request we built) through a new client transaction.
fn start(cx: &mut Ctx<'_>, raw: Vec<u8>) -> Option<TransactionId> {
    let msg = Message::parse(&raw).ok()?;
    let tx = cx.txs.start_client(cx.now, &msg, &raw);
    cx.transmit.push(raw);
    Some(tx)
}

impl Calls {
    /// No calls yet; INVITEs will ask for `session_expires` (RFC 4028).
    pub fn new(session_expires: Option<u32>) -> Self {
        Self {
            session_expires,
            ..Self::default()
        }
    }

    /// Whether a transaction is one of the calls'.
    pub fn owns(&self, tx: TransactionId) -> bool {
        self.calls
            .iter()
            .any(|c| c.invite_tx == tx || c.bye_tx == Some(tx))
            || self.incoming.iter().any(|c| c.bye_tx == Some(tx))
            || self.refers.iter().any(|(t, _)| *t == tx)
            || self.infos.iter().any(|(t, ..)| *t == tx)
            || self.updates.iter().any(
                |u| matches!(u, Update::Sent { tx: t, .. } | Update::Acked { tx: t, .. } if *t == tx),
            )
    }

    /// Removes a call of either kind and its session changes; a change of
    /// theirs still waiting for the app gets `487` (§15.1.2).
    fn forget(&mut self, cx: &mut Ctx<'_>, id: CallId) {
        self.calls.retain(|c| c.id != id);
        self.incoming.retain(|c| c.id != id);
        self.refers.retain(|(_, c)| *c != id);
        self.forget_infos(id);
        self.trickled.retain(|(c, _)| *c != id);
        self.transfer_ended_with_call(cx, id);
        // Its subscription ends with its dialog; a transfer it asked for
        // goes on unreported.
        self.referrals.retain(|r| r.from != id);
        self.holds.retain(|(c, _)| *c != id);
        self.drop_updates(cx, id);
    }

    /// The dialog of a call, made or received.
    fn dialog_mut(&mut self, id: CallId) -> Option<&mut Dialog> {
        self.session_mut(id)?.dialog.as_mut()
    }

    /// What both kinds of call keep of their session, found once.
    fn session_mut(&mut self, id: CallId) -> Option<Session<'_>> {
        Some(match self.calls.iter_mut().find(|c| c.id == id) {
            Some(c) => Session {
                dialog: &mut c.dialog,
                timer: &mut c.timer,
                local_sdp: &mut c.local_sdp,
            },
            None => {
                let c = self.incoming.iter_mut().find(|c| c.id == id)?;
                Session {
                    dialog: &mut c.dialog,
                    timer: &mut c.timer,
                    local_sdp: &mut c.local_sdp,
                }
            }
        })
    }

    /// Sends a request with `body` in a confirmed call's dialog (MESSAGE,
    /// INFO); its answer is not reported. `false` when the call is not up.
    pub fn send_in_dialog(
        &mut self,
        cx: &mut Ctx<'_>,
        id: CallId,
        method: Method,
        content_type: &str,
        body: &str,
    ) -> Result<(), ActionError> {
        if !safe_text(content_type) {
            return Err(ActionError::BadText("content_type"));
        }
        self.request_in_dialog(cx, id, method, &[], Some((content_type, body)))
            .map(|_| ())
    }

    /// Whether the application's id names a call of ours (set up, up, or
    /// ending).
    pub fn knows(&self, id: CallId) -> bool {
        self.calls.iter().any(|c| c.id == id) || self.incoming.iter().any(|c| c.id == id)
    }

    /// Why `id` cannot take a request in its dialog: no such call, or not
    /// answered (or already ending).
    fn not_up(&self, id: CallId) -> ActionError {
        if self.knows(id) {
            ActionError::WrongState(id)
        } else {
            ActionError::NoSuchCall(id)
        }
    }

    /// Builds and sends a request in a confirmed call's dialog, with extra
    /// `headers`, the app's, and an optional body; its transaction and
    /// CSeq, or `None` when the call is not up.
    fn request_in_dialog(
        &mut self,
        cx: &mut Ctx<'_>,
        id: CallId,
        method: Method,
        headers: &[(&str, &str)],
        body: Option<(&str, &str)>,
    ) -> Result<(TransactionId, u32), ActionError> {
        let via = cx.via();
        let confirmed = self
            .dialog_mut(id)
            .is_some_and(|d| d.state() == crate::dialog::DialogState::Confirmed);
        if !confirmed {
            return Err(self.not_up(id));
        }
        let dialog = self.dialog_mut(id).ok_or(ActionError::NoSuchCall(id))?;
        let mut b = dialog.request(method, &via);
        for (name, value) in headers {
            b.header(name, value);
        }
        b.header("User-Agent", &cx.id.user_agent);
        cx.add_app_headers(&mut b);
        let raw = match body {
            Some((content_type, body)) => b.finish(Some(content_type), body.as_bytes()),
            None => b.finish(None, b""),
        };
        let cseq = Message::parse(&raw)
            .map_err(|_| ActionError::Unsendable)?
            .cseq()
            .seq;
        Ok((start(cx, raw).ok_or(ActionError::Unsendable)?, cseq))
    }

    /// A response to one of the calls' requests (`None`: it timed out).
    pub fn on_response(&mut self, cx: &mut Ctx<'_>, tx: TransactionId, msg: Option<&Message<'_>>) {
        if self.on_info_response(cx, tx, msg) {
            return;
        }
        if let Some(i) = self.refers.iter().position(|(t, _)| *t == tx) {
            let code = msg.and_then(Message::status).unwrap_or(408);
            if code >= 200 {
                let (_, call) = self.refers.remove(i);
                // Accepted: the outcome comes in NOTIFYs.
                self.transfer_progressed(call, code, code >= 300);
                cx.events.push(Event::Transfer {
                    call,
                    code,
                    reason: msg.map_or("Request Timeout", |m| m.reason()).to_owned(),
                    done: code >= 300,
                });
            }
            return;
        }
        if let Some(i) = self
            .updates
            .iter()
            .position(|u| matches!(u, Update::Sent { tx: t, .. } if *t == tx))
        {
            self.on_update_response(cx, i, msg);
            return;
        }
        if let Some(Update::Acked { ack, .. }) = self
            .updates
            .iter()
            .find(|u| matches!(u, Update::Acked { tx: t, .. } if *t == tx))
        {
            // A retransmission of the 2xx to our re-INVITE: its ACK again.
            cx.transmit.push(ack.clone());
            return;
        }
        if let Some(i) = self.incoming.iter().position(|c| c.bye_tx == Some(tx)) {
            // Our BYE on a received call: any answer (or none) ends it;
            // one the app left before its ACK was never up: 487.
            if msg.and_then(Message::status).is_none_or(|c| c >= 200) {
                let id = self.incoming[i].id;
                let never_up = self.incoming[i].never_up;
                self.forget(cx, id);
                if never_up {
                    hangup(cx, id, Some(487), "Request Terminated");
                } else {
                    hangup(cx, id, None, "BYE");
                }
            }
            return;
        }
        let Some(i) = self
            .calls
            .iter()
            .position(|c| c.invite_tx == tx || c.bye_tx == Some(tx))
        else {
            return;
        };
        let call = &mut self.calls[i];
        let ended = if call.bye_tx == Some(tx) {
            // The BYE's answer, whatever it is, ends the call.
            let code = msg.and_then(Message::status).unwrap_or(408);
            code >= 200
        } else {
            on_invite_response(call, cx, msg)
        };
        if ended {
            let call = self.calls.remove(i);
            if call.bye_tx == Some(tx) {
                let (code, reason) = if call.cancelled {
                    (Some(487), "Request Terminated")
                } else {
                    (None, "BYE")
                };
                cx.events.push(Event::Hangup {
                    call: call.id,
                    code,
                    reason: reason.into(),
                });
            }
        }
    }

    /// A response that matched no transaction: a 2xx retransmission of an
    /// answered INVITE gets its ACK again (§13.2.2.4).
    pub fn on_stray(&mut self, cx: &mut Ctx<'_>, msg: &Message<'_>) {
        let is_2xx = msg.status().is_some_and(|c| (200..300).contains(&c));
        if !is_2xx || !msg.cseq().is(Method::Invite) {
            return;
        }
        if let Some(ack) = self
            .calls
            .iter()
            .find(|c| {
                c.invite_cseq == msg.cseq().seq
                    && c.dialog.as_ref().is_some_and(|d| d.has_response(msg))
            })
            .and_then(|c| c.ack.clone())
        {
            cx.transmit.push(ack);
        }
    }

    /// A request that may belong to a call's dialog (server transaction
    /// `tx`); `None` when no call has it.
    pub fn on_request(
        &mut self,
        cx: &mut Ctx<'_>,
        tx: TransactionId,
        msg: &Message<'_>,
        raw: &[u8],
    ) -> Option<InDialog> {
        let in_dialog = |d: &Option<Dialog>| d.as_ref().is_some_and(|d| d.has_request(msg));
        let (id, dialog) = match self.calls.iter().position(|c| in_dialog(&c.dialog)) {
            Some(i) => (self.calls[i].id, self.calls[i].dialog.as_mut()?),
            None => {
                let i = self.incoming.iter().position(|c| in_dialog(&c.dialog))?;
                (self.incoming[i].id, self.incoming[i].dialog.as_mut()?)
            }
        };
        if dialog.receive_request(msg).is_err() {
            let resp = response_to(msg, 500, "CSeq Out of Order", None).finish(None, b"");
            return Some(InDialog::Respond(500, resp));
        }
        if matches!(msg.method(), Some(Method::Invite | Method::Update)) {
            return Some(self.on_reinvite(cx, id, tx, msg, raw));
        }
        let (code, reason) = match msg.method() {
            Some(Method::Bye | Method::Options) => (200, "OK"),
            Some(Method::Message) => {
                cx.events
                    .push(crate::message::received(msg, Some(id), cx.id));
                (200, "OK")
            }
            Some(Method::Notify) => match transfer_progress(msg) {
                Some((code, reason, done)) => {
                    self.transfer_progressed(id, code, done);
                    cx.events.push(Event::Transfer {
                        call: id,
                        code,
                        reason,
                        done,
                    });
                    (200, "OK")
                }
                None => (489, "Bad Event"),
            },
            Some(Method::Refer) => match self.on_refer(id, msg) {
                Ok(event) => {
                    // 202 first, then the subscription's first NOTIFY.
                    let mut b = response_to(msg, 202, "Accepted", None);
                    b.header("Allow", ALLOW);
                    let resp = b.finish(None, b"");
                    cx.respond(tx, 202, resp);
                    self.notify_referral(cx, id, 100, "Trying");
                    cx.events.push(event);
                    return Some(InDialog::Done);
                }
                Err(refused) => refused,
            },
            Some(Method::Info) => match self.on_info(cx, id, msg) {
                200 => (200, "OK"),
                code => (code, crate::sip::reason_phrase(code)),
            },
            _ => (501, "Not Implemented"),
        };
        let mut b = response_to(msg, code, reason, None);
        b.header("Allow", ALLOW);
        let resp = b.finish(None, b"");
        if msg.method() == Some(Method::Bye) {
            // A BYE before the ACK of our 2xx: the far end had the answer,
            // so the call was up, however briefly (its ACK is late or lost).
            let unacked = self
                .incoming
                .iter()
                .any(|c| c.id == id && c.retransmit.is_some() && !c.never_up && !c.bye_wanted);
            if unacked {
                cx.events.push(Event::Accepted {
                    call: id,
                    sdp: String::new(),
                });
            }
            self.forget(cx, id);
            hangup(cx, id, None, "BYE");
        }
        Some(InDialog::Respond(code, resp))
    }

    /// When a 2xx must next be retransmitted.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let answers = self
            .incoming
            .iter()
            .filter_map(|c| c.retransmit.map(|r| r.deadline()))
            .min();
        if self.suspended.is_some() {
            // Nothing but the wait for a new transport runs meanwhile.
            return self.suspended;
        }
        let cancels = self.calls.iter().filter_map(|c| c.give_up).min();
        let cancels = crate::time::earliest(cancels, self.transfer_deadline());
        crate::time::earliest(
            crate::time::earliest(answers, cancels),
            crate::time::earliest(self.update_deadline(), self.session_deadline()),
        )
    }

    /// Retransmits due 2xx ([`Retransmit`]); one never acknowledged in
    /// 64·T1 ends its call with a BYE (§13.3.1.4).
    pub fn handle_timeout(&mut self, cx: &mut Ctx<'_>) {
        let now = cx.now;
        let mut lost = Vec::new();
        for call in &mut self.incoming {
            let Some(retransmit) = call.retransmit.as_mut() else {
                continue;
            };
            match retransmit.poll(now) {
                RetransmitStep::Wait => {}
                RetransmitStep::Send => {
                    if let Some(ok) = &call.ok
                        && cx.txs.respond(now, call.tx, 200, ok)
                    {
                        cx.transmit.push(ok.clone());
                    }
                }
                RetransmitStep::GiveUp => {
                    call.retransmit = None;
                    lost.push(call.id);
                    send_callee_bye(call, cx);
                    // Reported once, here: the BYE's own answer is not awaited.
                    call.bye_tx = None;
                }
            }
        }
        for id in lost {
            self.forget(cx, id);
            hangup(cx, id, Some(408), "No ACK");
        }
        // A CANCELled INVITE that never got its final answer (§9.1).
        let mut cancelled = Vec::new();
        self.calls.retain(|c| {
            let done = c.give_up.is_some_and(|t| t <= now);
            if done {
                cancelled.push(c.id);
            }
            !done
        });
        for id in cancelled {
            hangup(cx, id, Some(487), "Request Terminated");
        }
        if self.suspended.is_some_and(|t| t <= now) {
            // No new connection in time: the kept calls are lost.
            self.suspended = None;
            let ids: Vec<CallId> = self
                .calls
                .drain(..)
                .map(|c| c.id)
                .chain(self.incoming.drain(..).map(|c| c.id))
                .collect();
            for id in ids {
                self.forget(cx, id);
                hangup(cx, id, Some(503), "Transport Closed");
            }
            return;
        }
        if self.suspended.is_some() {
            return; // nothing can be sent until the transport is back
        }
        self.update_timeouts(cx);
        self.session_timeouts(cx);
        self.transfer_timeouts(cx);
    }

    /// The application hangs up: BYE once answered, CANCEL before (for a
    /// call it received and did not answer: `480`, as JsSIP does).
    pub fn hangup(&mut self, cx: &mut Ctx<'_>, id: CallId) {
        if let Some(call) = self.incoming.iter_mut().find(|c| c.id == id) {
            match (&call.ok, call.retransmit) {
                (None, _) => self.decline(cx, id, 480, "Temporarily Unavailable"),
                // Answered, not acknowledged yet: BYE once the ACK comes.
                (Some(_), Some(_)) => call.bye_wanted = true,
                (Some(_), None) => send_callee_bye(call, cx),
            }
            self.drop_updates(cx, id);
            return;
        }
        let Some(call) = self.calls.iter_mut().find(|c| c.id == id) else {
            return;
        };
        match call.state {
            CallState::Confirmed => {
                send_bye(call, cx);
                self.drop_updates(cx, id);
            }
            CallState::Proceeding => send_cancel(call, cx),
            CallState::Calling => call.cancel_wanted = true,
            CallState::Ending => {}
        }
    }
}

fn decimal(n: u32) -> String {
    let mut s = String::with_capacity(10);
    push_decimal(&mut s, u64::from(n));
    s
}

fn hangup_event(call: &Call, cx: &mut Ctx<'_>, code: u16, reason: &str) {
    hangup(cx, call.id, Some(code), reason);
}

fn hangup(cx: &mut Ctx<'_>, call: CallId, code: Option<u16>, reason: &str) {
    cx.events.push(Event::Hangup {
        call,
        code,
        reason: reason.to_owned(),
    });
}

/// Sends a BYE in `dialog`; its transaction.
fn bye(dialog: Option<&mut Dialog>, cx: &mut Ctx<'_>) -> Option<TransactionId> {
    let via = cx.via();
    let mut b = dialog?.request(Method::Bye, &via);
    b.header("User-Agent", &cx.id.user_agent);
    cx.add_app_headers(&mut b);
    start(cx, b.finish(None, b""))
}

fn send_bye(call: &mut Call, cx: &mut Ctx<'_>) {
    call.bye_tx = bye(call.dialog.as_mut(), cx);
    call.state = CallState::Ending;
}
