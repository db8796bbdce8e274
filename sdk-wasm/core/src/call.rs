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

use crate::auth::{AuthRound, Challenge, ChallengeKind, RequestInfo};
use crate::ctx::Ctx;
use crate::dialog::Dialog;
use crate::session_timer::{self, MIN_SE, Refresher, SessionTimer};
use core::time::Duration;

use crate::Instant;
use crate::event::Event;
use crate::ids::CallId;
use crate::input::{safe_target, safe_text};
use crate::sip::{HeaderName, Message, MessageBuilder, push_decimal, response_to};
use crate::transaction::TransactionId;

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
    /// Our 2xx, retransmitted until the ACK: next time, interval, and
    /// when to give up (64·T1).
    ok: Option<Vec<u8>>,
    retransmit: Option<(Instant, Duration, Instant)>,
    /// The application hung up before the ACK: BYE once it comes (§15).
    bye_wanted: bool,
    bye_tx: Option<TransactionId>,
    /// The session timer our 2xx agreed on (RFC 4028).
    timer: Option<SessionTimer>,
    /// Our session description: our answer (or offer) in the 2xx, then
    /// each change's.
    local_sdp: String,
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
        method: &'static str,
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
        method: &'static str,
        at: Instant,
        sdp: String,
        headers: Vec<(String, String)>,
    },
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
        retransmit: (Instant, Duration, Instant),
    },
}

impl Update {
    fn call(&self) -> CallId {
        match self {
            Update::Sent { call, .. }
            | Update::Acked { call, .. }
            | Update::Retry { call, .. }
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
    /// The far end's REFERs we accepted, until their new call's outcome.
    referrals: Vec<Referral>,
    next: u32,
    /// The Session-Expires our INVITEs ask for; `None`: no session timers
    /// unless the far end asks.
    session_expires: Option<u32>,
    /// The transport dropped with calls up: until when they wait for a
    /// new one.
    suspended: Option<Instant>,
}

/// A 2xx's first retransmission (T1) and the cap of its interval (T2).
const T1: Duration = Duration::from_millis(500);
const T2: Duration = Duration::from_secs(4);
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

    /// Calls `target` with the SDP `offer`.
    pub fn call(&mut self, cx: &mut Ctx<'_>, target: &str, offer: &str) -> Option<CallId> {
        if !safe_target(target) {
            return None;
        }
        self.next += 1;
        let id = CallId(self.next);
        let tag = cx.rng.token(10);
        let from = cx.id.from(&tag);
        let mut call = Call {
            id,
            state: CallState::Calling,
            call_id: cx.rng.token(20),
            from,
            target: target.to_owned(),
            local_sdp: offer.to_owned(),
            invite: Vec::new(),
            invite_cseq: 0,
            invite_tx: TransactionId::default(),
            auth: AuthRound::default(),
            cancel_wanted: false,
            dialog: None,
            ack: None,
            give_up: None,
            bye_tx: None,
            session_expires: self.session_expires.map(|s| s.max(MIN_SE)),
            min_se: MIN_SE,
            timer: None,
            rseqs: Vec::new(),
            forks: Vec::new(),
            headers: cx.headers.to_vec(),
        };
        send_invite(&mut call, cx)?;
        cx.events.push(Event::Calling {
            call: id,
            target: target.to_owned(),
        });
        self.calls.push(call);
        Some(id)
    }

    /// The far end's REFER in call `id`'s dialog: the event for the app,
    /// or the status to refuse it with.
    fn on_refer(&mut self, id: CallId, msg: &Message<'_>) -> Result<Event, (u16, &'static str)> {
        if self.referrals.iter().any(|r| r.from == id) {
            return Err((491, "Request Pending"));
        }
        let refer_to = msg
            .header(HeaderName::ReferTo)
            .ok_or((400, "Missing Refer-To"))?
            .trim();
        let uri = match (refer_to.find('<'), refer_to.rfind('>')) {
            (Some(open), Some(close)) if open < close => &refer_to[open + 1..close],
            _ => refer_to.split(';').next().unwrap_or_default().trim(),
        };
        if uri.contains('?') {
            // Headers in the URI: Replaces, an attended transfer.
            return Err((501, "Attended Transfer Not Implemented"));
        }
        if !safe_target(uri) {
            return Err((400, "Bad Refer-To"));
        }
        let referred_by = msg
            .header(HeaderName::Other("Referred-By"))
            .map(str::trim)
            .filter(|v| safe_text(v) && !v.is_empty())
            .map(str::to_owned);
        self.referrals.push(Referral {
            from: id,
            target: uri.to_owned(),
            referred_by: referred_by.clone(),
            call: None,
            reported: 100,
        });
        Ok(Event::Referred {
            call: id,
            target: uri.to_owned(),
            referred_by,
        })
    }

    /// Whether a transfer request of the far end's is under way.
    pub fn has_referrals(&self) -> bool {
        !self.referrals.is_empty()
    }

    /// Follows the far end's transfer request of call `from`: a new call
    /// to its target with `offer`, whose progress the far end hears of.
    pub fn accept_referral(
        &mut self,
        cx: &mut Ctx<'_>,
        from: CallId,
        offer: &str,
    ) -> Option<CallId> {
        let i = self
            .referrals
            .iter()
            .position(|r| r.from == from && r.call.is_none())?;
        let target = self.referrals[i].target.clone();
        let mut headers = cx.headers.to_vec();
        if let Some(by) = &self.referrals[i].referred_by {
            headers.push(("Referred-By".to_owned(), by.clone()));
        }
        let call = self.call(&mut cx.with_headers(&headers), &target, offer);
        match call {
            Some(call) => self.referrals[i].call = Some(call),
            None => self.end_referral(cx, from, 503, "Service Unavailable"),
        }
        call
    }

    /// Refuses the far end's transfer request of call `from`.
    pub fn decline_referral(&mut self, cx: &mut Ctx<'_>, from: CallId) -> bool {
        let pending = self
            .referrals
            .iter()
            .any(|r| r.from == from && r.call.is_none());
        if pending {
            self.end_referral(cx, from, 603, "Declined");
        }
        pending
    }

    /// Reports what `events` (just produced) say of the calls made for
    /// transfer requests: 180 once ringing, then the final outcome.
    pub fn report_referrals(&mut self, cx: &mut Ctx<'_>, events: &[Event]) {
        for event in events {
            let (call, code, reason) = match event {
                Event::Ringing { call } | Event::Progress { call, .. } => (*call, 180, "Ringing"),
                Event::Accepted { call, .. } => (*call, 200, "OK"),
                Event::Hangup { call, code, reason } => {
                    (*call, code.unwrap_or(487), reason.as_str())
                }
                _ => continue,
            };
            let Some(r) = self.referrals.iter_mut().find(|r| r.call == Some(call)) else {
                continue;
            };
            if code < 200 {
                if r.reported < code {
                    r.reported = code;
                    let from = r.from;
                    self.notify_referral(cx, from, code, reason);
                }
            } else {
                let from = r.from;
                let reason = if code < 300 { "OK" } else { reason };
                self.end_referral(cx, from, code, reason);
            }
        }
        // A new call that ended unseen (its transport closed) leaves
        // nothing to report.
        let calls = &self.calls;
        self.referrals
            .retain(|r| r.call.is_none_or(|c| calls.iter().any(|x| x.id == c)));
    }

    /// The last NOTIFY of call `from`'s transfer request, with the new
    /// call's final status; the subscription ends.
    fn end_referral(&mut self, cx: &mut Ctx<'_>, from: CallId, code: u16, reason: &str) {
        self.referrals.retain(|r| r.from != from);
        self.notify_referral(cx, from, code, reason);
    }

    /// A NOTIFY of a transfer request's progress in call `from`'s dialog
    /// (RFC 3515 §2.4.4): `SIP/2.0 <code> <reason>` as `message/sipfrag`;
    /// a final status ends the subscription.
    fn notify_referral(&mut self, cx: &mut Ctx<'_>, from: CallId, code: u16, reason: &str) {
        let state = if code < 200 {
            "active;expires=60"
        } else {
            "terminated;reason=noresource"
        };
        let contact = String::from("<") + &cx.id.contact_uri + ">";
        let mut frag = String::from("SIP/2.0 ");
        frag.push_str(&code.to_string());
        frag.push(' ');
        frag.push_str(if safe_text(reason) { reason } else { "" });
        frag.push_str("\r\n");
        let headers = [
            ("Event", "refer"),
            ("Subscription-State", state),
            ("Contact", contact.as_str()),
        ];
        let _ = self.request_in_dialog(
            &mut cx.with_headers(&[]),
            from,
            "NOTIFY",
            &headers,
            Some(("message/sipfrag;version=2.0", &frag)),
        );
    }

    /// Whether a transaction is one of the calls'.
    pub fn owns(&self, tx: TransactionId) -> bool {
        self.calls
            .iter()
            .any(|c| c.invite_tx == tx || c.bye_tx == Some(tx))
            || self.incoming.iter().any(|c| c.bye_tx == Some(tx))
            || self.refers.iter().any(|(t, _)| *t == tx)
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
        // Its subscription ends with its dialog; a transfer it asked for
        // goes on unreported.
        self.referrals.retain(|r| r.from != id);
        self.drop_updates(cx, id);
    }

    /// Drops a call's session changes (it is ending); one of theirs still
    /// waiting for the app gets `487`.
    fn drop_updates(&mut self, cx: &mut Ctx<'_>, id: CallId) {
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
        method: &str,
        content_type: &str,
        body: &str,
    ) -> bool {
        safe_text(content_type)
            && self
                .request_in_dialog(cx, id, method, &[], Some((content_type, body)))
                .is_some()
    }

    /// Builds and sends a request in a confirmed call's dialog, with extra
    /// `headers`, the app's, and an optional body; its transaction and
    /// CSeq, or `None` when the call is not up.
    fn request_in_dialog(
        &mut self,
        cx: &mut Ctx<'_>,
        id: CallId,
        method: &str,
        headers: &[(&str, &str)],
        body: Option<(&str, &str)>,
    ) -> Option<(TransactionId, u32)> {
        let via = cx.via();
        let dialog = self
            .dialog_mut(id)
            .filter(|d| d.state() == crate::dialog::DialogState::Confirmed)?;
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
        let cseq = Message::parse(&raw).ok()?.cseq().seq;
        Some((start(cx, raw)?, cseq))
    }

    /// Blind transfer (RFC 3515): asks the far end, with a REFER in the
    /// call's dialog, to call `target`. Its progress arrives as
    /// [`Event::Transfer`]s: the REFER's answer, then the far end's NOTIFYs
    /// of its new call. `false` when the call is not up or `target` is not
    /// a SIP URI.
    pub fn transfer(&mut self, cx: &mut Ctx<'_>, id: CallId, target: &str) -> bool {
        if !safe_target(target) {
            return false;
        }
        let refer_to = String::from("<") + target + ">";
        let referred_by = String::from("<") + &cx.id.aor + ">";
        let contact = String::from("<") + &cx.id.contact_uri + ">";
        let headers = [
            ("Refer-To", refer_to.as_str()),
            ("Referred-By", referred_by.as_str()),
            // RFC 3515 §2.1: a REFER carries a Contact.
            ("Contact", contact.as_str()),
        ];
        match self.request_in_dialog(cx, id, "REFER", &headers, None) {
            Some((tx, _)) => {
                self.refers.push((tx, id));
                true
            }
            None => false,
        }
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
        method: &'static str,
    ) -> bool {
        let busy = self.updates.iter().any(|u| {
            u.call() == id
                && match u {
                    Update::Sent { purpose, .. } => *purpose == Purpose::App,
                    Update::Received { .. } | Update::Answered { .. } => true,
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
        if busy || !confirmed {
            return false;
        }
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
            return true;
        }
        self.send_update(cx, id, sdp, method, Purpose::App, None)
    }

    /// The calls with a change under way, ours or theirs: a waiting one
    /// (after glare, or behind a refresh) goes only once it is over.
    fn changing(&self) -> Vec<CallId> {
        self.updates
            .iter()
            .filter(|u| {
                matches!(
                    u,
                    Update::Sent { .. } | Update::Received { .. } | Update::Answered { .. }
                )
            })
            .map(Update::call)
            .collect()
    }

    /// Our current SDP of a call of either kind.
    fn local_sdp_mut(&mut self, id: CallId) -> Option<&mut String> {
        Some(self.session_mut(id)?.local_sdp)
    }

    /// Where a call of either kind keeps its session timer.
    fn timer_slot_mut(&mut self, id: CallId) -> Option<&mut Option<SessionTimer>> {
        Some(self.session_mut(id)?.timer)
    }

    /// The session timer of a call of either kind.
    fn timer_mut(&mut self, id: CallId) -> Option<&mut SessionTimer> {
        self.session_mut(id)?.timer.as_mut()
    }

    /// Sends a re-INVITE or UPDATE with `sdp`; only a change for the app
    /// ([`Purpose::App`]) is reported to it. Every change refreshes the
    /// session timer, so each carries Session-Expires (RFC 4028 §7.4).
    /// `auth`: the challenges answered for it so far, when the far end (or
    /// a proxy on the route) asked for credentials; they go with it then.
    fn send_update(
        &mut self,
        cx: &mut Ctx<'_>,
        id: CallId,
        sdp: &str,
        method: &'static str,
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
                    method,
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
        let Some((tx, cseq)) =
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
    fn on_update_response(&mut self, cx: &mut Ctx<'_>, i: usize, msg: Option<&Message<'_>>) {
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
                .is_some_and(|d| d.on_challenges(&challenges_of(m), &mut round));
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
                    if method == "INVITE" {
                        let ack = dialog.ack(cseq, &via).finish(None, b"");
                        cx.transmit.push(ack.clone());
                        acked = Some(ack);
                    }
                }
                if let Some(ack) = acked {
                    self.updates.push(Update::Acked { call, tx, ack });
                }
                let now = cx.now;
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
                    Purpose::App => cx.events.push(Event::Updated { call, sdp }),
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
    fn on_reinvite(
        &mut self,
        cx: &mut Ctx<'_>,
        id: CallId,
        tx: TransactionId,
        msg: &Message<'_>,
        raw: &[u8],
    ) -> InDialog {
        if msg.method() == Some("UPDATE") && msg.body().is_empty() {
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
            .any(|u| u.call() == id && matches!(u, Update::Sent { .. }));
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
    fn answer_update(&mut self, cx: &mut Ctx<'_>, id: CallId, sdp: &str) -> bool {
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
        let is_invite = req.method() == Some("INVITE");
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
        if !is_invite {
            return true; // an UPDATE's 200 is final: no ACK to wait for
        }
        let give_up = cx.now + cx.txs.timers().timer_64t1();
        self.updates.push(Update::Answered {
            call: id,
            tx,
            ok,
            retransmit: (cx.now + T1, T1, give_up),
        });
        true
    }

    /// The far end's re-INVITE or UPDATE (`req`) refreshes the session
    /// timer, and may renegotiate it: we are its UAS. Returns the
    /// Session-Expires for our 2xx. `sdp` is our answer, the session's SDP
    /// from now on.
    fn refreshed_by_them(
        &mut self,
        now: Instant,
        id: CallId,
        req: &Message<'_>,
        sdp: Option<&str>,
    ) -> Option<String> {
        if let (Some(sdp), Some(local)) = (sdp, self.local_sdp_mut(id)) {
            *local = sdp.to_owned();
        }
        let slot = self.timer_slot_mut(id)?;
        let Some((secs, refresher)) = session_timer::as_uas(req) else {
            // RFC 4028 §9: a change without Session-Expires turns the timer
            // off; keeping ours would end a call nobody refreshes.
            *slot = None;
            return None;
        };
        let timer = slot.get_or_insert_with(|| SessionTimer::new(now, secs, false));
        timer.interval = secs;
        timer.we_refresh = refresher == Refresher::Uas;
        timer.refreshed(now);
        Some(SessionTimer::response_header(secs, refresher))
    }

    /// Ends call `id` at once: a BYE goes, and the app hears `code`
    /// (the session expired, or a refresh found the dialog gone).
    fn end_expired(&mut self, cx: &mut Ctx<'_>, id: CallId, code: u16, reason: &str) {
        if let Some(call) = self.calls.iter_mut().find(|c| c.id == id) {
            send_bye(call, cx);
        } else if let Some(call) = self.incoming.iter_mut().find(|c| c.id == id) {
            send_callee_bye(call, cx);
        }
        self.forget(cx, id);
        hangup(cx, id, Some(code), reason);
    }

    /// Sends the refreshes that are due and ends the sessions that expired
    /// (RFC 4028 §10).
    fn session_timeouts(&mut self, cx: &mut Ctx<'_>) {
        let now = cx.now;
        // Calls being hung up are left alone: their BYE is on its way.
        let timers: Vec<(CallId, bool, bool)> = self
            .calls
            .iter()
            .filter(|c| c.state == CallState::Confirmed)
            .filter_map(|c| Some((c.id, c.timer.as_ref()?)))
            .chain(
                self.incoming
                    .iter()
                    .filter(|c| c.bye_tx.is_none() && !c.bye_wanted)
                    .filter_map(|c| Some((c.id, c.timer.as_ref()?))),
            )
            .map(|(id, t)| (id, t.expired(now), t.refresh_due(now)))
            .collect();
        for (id, expired, refresh) in timers {
            if expired {
                self.end_expired(cx, id, 408, "Session Timer Expired");
                continue;
            }
            if !refresh {
                continue;
            }
            let busy = self.updates.iter().any(|u| {
                u.call() == id && !matches!(u, Update::Retry { .. } | Update::Acked { .. })
            });
            let Some(timer) = self.timer_mut(id) else {
                continue;
            };
            if busy {
                // A change is under way (it refreshes too); look again soon.
                timer.retry_refresh(now);
                continue;
            }
            timer.refresh_sent();
            let sdp = self
                .local_sdp_mut(id)
                .map(|s| s.clone())
                .unwrap_or_default();
            self.updates
                .retain(|u| !(u.call() == id && matches!(u, Update::Acked { .. })));
            if !self.send_update(cx, id, &sdp, "INVITE", Purpose::Refresh, None)
                && let Some(timer) = self.timer_mut(id)
            {
                timer.retry_refresh(now);
            }
        }
    }

    fn session_deadline(&self) -> Option<Instant> {
        self.calls
            .iter()
            .filter_map(|c| c.timer.as_ref())
            .chain(self.incoming.iter().filter_map(|c| c.timer.as_ref()))
            .map(SessionTimer::deadline)
            .min()
    }

    /// The ACK of our 2xx to a re-INVITE: done (its body, if any, is the
    /// answer to the offer our 2xx carried). Returns whether one had it.
    fn on_update_ack(&mut self, cx: &mut Ctx<'_>, msg: &Message<'_>) -> bool {
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
    fn update_timeouts(&mut self, cx: &mut Ctx<'_>) {
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
            } => {
                let (next, interval, give_up) = *retransmit;
                if now >= give_up {
                    return false;
                }
                if now >= next {
                    if cx.txs.respond(now, *tx, 200, ok) {
                        cx.transmit.push(ok.clone());
                    }
                    let interval = (interval * 2).min(T2);
                    *retransmit = (now + interval, interval, give_up);
                }
                true
            }
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

    fn update_deadline(&self) -> Option<Instant> {
        // A waiting change has no deadline of its own while another is
        // under way: the end of that one lets it go.
        let changing = self.changing();
        self.updates
            .iter()
            .filter_map(|u| match u {
                Update::Retry { at, call, .. } if !changing.contains(call) => Some(*at),
                Update::Sent { deadline, .. } => Some(*deadline),
                Update::Answered {
                    retransmit: (next, _, give_up),
                    ..
                } => Some((*next).min(*give_up)),
                _ => None,
            })
            .min()
    }

    /// A response to one of the calls' requests (`None`: it timed out).
    pub fn on_response(&mut self, cx: &mut Ctx<'_>, tx: TransactionId, msg: Option<&Message<'_>>) {
        if let Some(i) = self.refers.iter().position(|(t, _)| *t == tx) {
            let code = msg.and_then(Message::status).unwrap_or(408);
            if code >= 200 {
                let (_, call) = self.refers.remove(i);
                cx.events.push(Event::Transfer {
                    call,
                    code,
                    reason: msg.map_or("Request Timeout", |m| m.reason()).to_owned(),
                    // Accepted: the outcome comes in NOTIFYs.
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
            // Our BYE on a received call: any answer (or none) ends it.
            if msg.and_then(Message::status).is_none_or(|c| c >= 200) {
                let id = self.incoming[i].id;
                self.forget(cx, id);
                hangup(cx, id, None, "BYE");
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
                cx.events.push(Event::Hangup {
                    call: call.id,
                    code: None,
                    reason: "BYE".into(),
                });
            }
        }
    }

    /// A response that matched no transaction: a 2xx retransmission of an
    /// answered INVITE gets its ACK again (§13.2.2.4).
    pub fn on_stray(&mut self, cx: &mut Ctx<'_>, msg: &Message<'_>) {
        let is_2xx = msg.status().is_some_and(|c| (200..300).contains(&c));
        if !is_2xx || msg.cseq().method != "INVITE" {
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
        if matches!(msg.method(), Some("INVITE" | "UPDATE")) {
            return Some(self.on_reinvite(cx, id, tx, msg, raw));
        }
        let (code, reason) = match msg.method() {
            Some("BYE" | "OPTIONS") => (200, "OK"),
            Some("MESSAGE") => {
                cx.events
                    .push(crate::message::received(msg, Some(id), cx.id));
                (200, "OK")
            }
            Some("NOTIFY") => match transfer_progress(msg) {
                Some((code, reason, done)) => {
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
            Some("REFER") => match self.on_refer(id, msg) {
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
            Some("INFO") => match crate::message::dtmf_relay(msg) {
                Some((digit, duration_ms)) => {
                    cx.events.push(Event::Dtmf {
                        call: id,
                        digit,
                        duration_ms,
                    });
                    (200, "OK")
                }
                None => (415, "Unsupported Media Type"),
            },
            _ => (501, "Not Implemented"),
        };
        let mut b = response_to(msg, code, reason, None);
        b.header("Allow", ALLOW);
        let resp = b.finish(None, b"");
        if msg.method() == Some("BYE") {
            self.forget(cx, id);
            hangup(cx, id, None, "BYE");
        }
        Some(InDialog::Respond(code, resp))
    }

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
        self.next += 1;
        let id = CallId(self.next);
        let sdp =
            (!msg.body().is_empty()).then(|| String::from_utf8_lossy(msg.body()).into_owned());
        cx.events.push(Event::Incoming {
            call: id,
            from: msg.from().uri_text.to_owned(),
            display_name: msg.from().display_name.map(str::to_owned),
            sdp,
            headers: cx.id.picked_headers(msg),
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
            bye_tx: None,
            timer: None,
            local_sdp: String::new(),
        });
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
        let mut extra: Vec<(&str, &str)> = Vec::new();
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
        let give_up = cx.now + cx.txs.timers().timer_64t1();
        call.retransmit = Some((cx.now + T1, T1, give_up));
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
            // The app hung up meanwhile: the call ends, never reported up.
            send_callee_bye(call, cx);
            return;
        }
        cx.events.push(Event::Accepted {
            call: call.id,
            sdp: String::from_utf8_lossy(msg.body()).into_owned(),
        });
    }

    /// When a 2xx must next be retransmitted.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let answers = self
            .incoming
            .iter()
            .filter_map(|c| c.retransmit.map(|(next, _, give_up)| next.min(give_up)))
            .min();
        if self.suspended.is_some() {
            // Nothing but the wait for a new transport runs meanwhile.
            return self.suspended;
        }
        let cancels = self.calls.iter().filter_map(|c| c.give_up).min();
        crate::time::earliest(
            crate::time::earliest(answers, cancels),
            crate::time::earliest(self.update_deadline(), self.session_deadline()),
        )
    }

    /// Retransmits due 2xx (T1 doubling to T2); one never acknowledged in
    /// 64·T1 ends its call with a BYE (§13.3.1.4).
    pub fn handle_timeout(&mut self, cx: &mut Ctx<'_>) {
        let now = cx.now;
        let mut lost = Vec::new();
        for call in &mut self.incoming {
            let Some((next, interval, give_up)) = call.retransmit else {
                continue;
            };
            if now >= give_up {
                call.retransmit = None;
                lost.push(call.id);
                send_callee_bye(call, cx);
                // Reported once, here: the BYE's own answer is not awaited.
                call.bye_tx = None;
            } else if now >= next {
                if let Some(ok) = &call.ok
                    && cx.txs.respond(now, call.tx, 200, ok)
                {
                    cx.transmit.push(ok.clone());
                }
                let interval = (interval * 2).min(T2);
                call.retransmit = Some((now + interval, interval, give_up));
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
            if !self.send_update(cx, id, &sdp, "INVITE", Purpose::Recover, None) {
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

/// Builds and sends the call's INVITE (again, with credentials, after a
/// challenge), with the next CSeq and a new branch.
fn send_invite(call: &mut Call, cx: &mut Ctx<'_>) -> Option<()> {
    call.invite_cseq += 1;
    let mut b = MessageBuilder::request("INVITE", &call.target);
    b.header("Via", &cx.via())
        .header("Max-Forwards", "70")
        .header("From", &call.from)
        .header_parts("To", &["<", &call.target, ">"])
        .header("Call-ID", &call.call_id)
        .header_parts("CSeq", &[&decimal(call.invite_cseq), " INVITE"])
        .header_parts("Contact", &["<", &cx.id.contact_uri, ">"])
        .header("Allow", ALLOW)
        .header("User-Agent", &cx.id.user_agent);
    match call.session_expires {
        Some(secs) => {
            let mut min_se = String::new();
            push_decimal(&mut min_se, u64::from(call.min_se));
            b.header("Supported", "100rel, outbound, timer")
                .header("Session-Expires", &decimal(secs))
                .header("Min-SE", &min_se);
        }
        None => {
            b.header("Supported", "100rel, outbound");
        }
    }
    for (name, value) in &call.headers {
        b.header(name, value);
    }
    if let Some(d) = cx.digest.as_deref_mut() {
        let info = RequestInfo {
            method: "INVITE",
            uri: &call.target,
            body: call.local_sdp.as_bytes(),
        };
        for (name, value) in d.credentials(&info, cx.rng) {
            b.header(name, &value);
        }
    }
    let raw = b.finish(Some("application/sdp"), call.local_sdp.as_bytes());
    call.invite = raw.clone();
    call.invite_tx = start(cx, raw)?;
    Some(())
}

/// Handles a response to the call's INVITE; returns whether the call is
/// over.
fn on_invite_response(call: &mut Call, cx: &mut Ctx<'_>, msg: Option<&Message<'_>>) -> bool {
    let Some(msg) = msg else {
        cx.events.push(Event::Hangup {
            call: call.id,
            code: Some(408),
            reason: "Request Timeout".into(),
        });
        return true;
    };
    let code = msg.status().unwrap_or(500);
    let body = String::from_utf8_lossy(msg.body()).into_owned();
    match code {
        100..=199 => {
            // Any provisional, 100 included, lets a CANCEL go (§9.1).
            if call.state == CallState::Calling {
                call.state = CallState::Proceeding;
            }
            if call.cancel_wanted {
                send_cancel(call, cx);
                return false;
            }
            if code == 100 || call.state == CallState::Ending {
                return false;
            }
            if let Ok(invite) = Message::parse(&call.invite)
                && call.dialog.is_none()
            {
                call.dialog = Dialog::caller(&invite, msg).ok();
            }
            if !prack(call, cx, msg) {
                return false; // a retransmitted reliable provisional
            }
            cx.events.push(if body.is_empty() {
                Event::Ringing { call: call.id }
            } else {
                Event::Progress {
                    call: call.id,
                    sdp: body,
                }
            });
            false
        }
        200..=299 => {
            let Ok(invite) = Message::parse(&call.invite) else {
                return true;
            };
            let same_dialog = |d: &Dialog| msg.to().tag() == Some(d.remote_tag());
            if call.ack.is_some() {
                if call.dialog.as_ref().is_some_and(same_dialog) {
                    // A retransmission (the transaction is kept Accepted
                    // for them, RFC 6026): the same ACK again.
                    cx.transmit.extend(call.ack.clone());
                } else {
                    // Another fork answered too (§13.2.2.4): acknowledge
                    // it and end that dialog at once.
                    end_extra_fork(&mut call.forks, call.invite_cseq, cx, &invite, msg);
                }
                return false;
            }
            match call.dialog.as_mut() {
                Some(d) if same_dialog(d) => d.confirm(msg, true),
                // The 2xx comes from another fork than the early dialog's:
                // its own early dialog if we PRACKed in it, else a new one.
                // The early dialog it replaces is kept with the forks, for
                // the BYE if that fork answers too.
                _ => {
                    call.forks.extend(call.dialog.take());
                    call.dialog = match call.forks.iter().position(same_dialog) {
                        Some(i) => {
                            let mut d = call.forks.swap_remove(i);
                            d.confirm(msg, true);
                            Some(d)
                        }
                        None => Dialog::caller(&invite, msg).ok(),
                    }
                }
            }
            let via = cx.via();
            let Some(dialog) = call.dialog.as_ref() else {
                // A 2xx without a tag or Contact: nothing to acknowledge.
                cx.events.push(Event::Hangup {
                    call: call.id,
                    code: Some(502),
                    reason: "Unusable 2xx".into(),
                });
                return true;
            };
            let ack = dialog.ack(call.invite_cseq, &via).finish(None, b"");
            cx.transmit.push(ack.clone());
            call.ack = Some(ack);
            let cancelled = call.state == CallState::Ending || call.cancel_wanted;
            call.state = CallState::Confirmed;
            // RFC 4028 §7.2: the 2xx says whether a session timer runs and
            // who refreshes (we were the UAC).
            call.timer = session_timer::parse(msg).map(|(secs, refresher)| {
                SessionTimer::new(cx.now, secs.max(MIN_SE), refresher != Some(Refresher::Uas))
            });
            if cancelled {
                // The 200 won the race with our CANCEL: end it with BYE.
                send_bye(call, cx);
            } else {
                cx.events.push(Event::Accepted {
                    call: call.id,
                    sdp: body,
                });
            }
            false
        }
        422 if call.state != CallState::Ending && !call.cancel_wanted => {
            // Session Interval Too Small: once more with the Min-SE it
            // asks for, if that is an increase (§7.4).
            let asked = session_timer::min_se(msg);
            match (asked, call.session_expires) {
                (Some(min), Some(ours)) if min > ours && min <= 86_400 => {
                    call.session_expires = Some(min);
                    call.min_se = min;
                    if send_invite(call, cx).is_some() {
                        return false;
                    }
                }
                _ => {}
            }
            hangup_event(call, cx, code, msg.reason());
            true
        }
        401 | 407 if call.state != CallState::Ending && !call.cancel_wanted => {
            let answered = cx
                .digest
                .as_deref_mut()
                .is_some_and(|d| d.on_challenges(&challenges_of(msg), &mut call.auth));
            if answered && send_invite(call, cx).is_some() {
                return false;
            }
            hangup_event(call, cx, code, msg.reason());
            true
        }
        _ => {
            hangup_event(call, cx, code, msg.reason());
            true
        }
    }
}

/// The digest challenges of a 401 or 407.
fn challenges_of(msg: &Message<'_>) -> Vec<Challenge> {
    msg.header_lines(HeaderName::WwwAuthenticate)
        .filter_map(|v| Challenge::parse(ChallengeKind::Www, v))
        .chain(
            msg.header_lines(HeaderName::ProxyAuthenticate)
                .filter_map(|v| Challenge::parse(ChallengeKind::Proxy, v)),
        )
        .collect()
}

/// Whether the INVITE `raw` requires reliable provisional responses.
fn requires_100rel(raw: &[u8]) -> bool {
    Message::parse(raw).is_ok_and(|m| {
        m.header_values(HeaderName::Require)
            .any(|v| v.eq_ignore_ascii_case("100rel"))
    })
}

/// Acknowledges a reliable provisional response with PRACK (RFC 3262
/// §4): in its early dialog, with `RAck: <RSeq> <CSeq> INVITE`. Returns
/// `false` for one to drop: a retransmission or one out of order (its RSeq
/// not one above the last).
fn prack(call: &mut Call, cx: &mut Ctx<'_>, msg: &Message<'_>) -> bool {
    let reliable = msg
        .header_values(HeaderName::Require)
        .any(|v| v.eq_ignore_ascii_case("100rel"));
    if !reliable {
        return true;
    }
    let Some(rseq) = msg
        .header(HeaderName::Other("RSeq"))
        .and_then(|v| v.trim().parse::<u32>().ok())
    else {
        return false; // §7.1: RSeq is mandatory in a reliable one
    };
    let tag = msg.to().tag().unwrap_or_default();
    match call.rseqs.iter_mut().find(|(t, _)| t == tag) {
        Some((_, last)) if rseq != last.wrapping_add(1) => return false,
        Some((_, last)) => *last = rseq,
        None => call.rseqs.push((tag.to_owned(), rseq)),
    }
    let mut rack = decimal(rseq);
    rack.push(' ');
    rack.push_str(&decimal(call.invite_cseq));
    rack.push_str(" INVITE");
    let via = cx.via();
    // The PRACK goes in the response's early dialog: the call's, or a
    // fork's of its own, kept for its next request.
    let dialog = match call.dialog.as_mut() {
        Some(d) if d.remote_tag() == tag => d,
        _ => match call.forks.iter().position(|d| d.remote_tag() == tag) {
            Some(i) => &mut call.forks[i],
            None => {
                let Ok(invite) = Message::parse(&call.invite) else {
                    return true;
                };
                let Ok(d) = Dialog::caller(&invite, msg) else {
                    return true;
                };
                call.forks.push(d);
                let last = call.forks.len() - 1;
                &mut call.forks[last]
            }
        },
    };
    let mut b = dialog.request("PRACK", &via);
    b.header("RAck", &rack)
        .header("User-Agent", &cx.id.user_agent);
    let _ = start(cx, b.finish(None, b""));
    true
}

/// ACK and BYE for a 2xx from a fork other than the one the call took
/// (in its early dialog if we PRACKed in it, so that the BYE's CSeq is
/// above the PRACKs').
fn end_extra_fork(
    forks: &mut Vec<Dialog>,
    invite_cseq: u32,
    cx: &mut Ctx<'_>,
    invite: &Message<'_>,
    ok: &Message<'_>,
) {
    let early = forks
        .iter()
        .position(|d| ok.to().tag() == Some(d.remote_tag()));
    let fork = match early {
        Some(i) => {
            let mut d = forks.swap_remove(i);
            d.confirm(ok, true);
            Ok(d)
        }
        None => Dialog::caller(invite, ok),
    };
    let Ok(mut fork) = fork else {
        return;
    };
    let via_ack = cx.via();
    cx.transmit
        .push(fork.ack(invite_cseq, &via_ack).finish(None, b""));
    let via_bye = cx.via();
    let _ = start(cx, fork.request("BYE", &via_bye).finish(None, b""));
}

/// The progress a NOTIFY of a REFER subscription reports (RFC 3515 §2.4.5):
/// the status line of its `message/sipfrag` body, and whether it is the
/// last (a final status, or the subscription terminated). `None` when the
/// NOTIFY is not about a REFER.
fn transfer_progress(msg: &Message<'_>) -> Option<(u16, String, bool)> {
    let event = msg.header(HeaderName::Event)?;
    let package = event.split(';').next().unwrap_or_default().trim();
    if !package.eq_ignore_ascii_case("refer") {
        return None;
    }
    let terminated = msg
        .header(HeaderName::Other("Subscription-State"))
        .is_some_and(|s| {
            s.trim_start()
                .to_ascii_lowercase()
                .starts_with("terminated")
        });
    let body = std::str::from_utf8(msg.body()).unwrap_or_default();
    let line = body.lines().next().unwrap_or_default();
    let mut parts = line.splitn(3, ' ');
    let status = match (
        parts.next(),
        parts.next().and_then(|c| c.parse::<u16>().ok()),
    ) {
        (Some(version), Some(code))
            if version.eq_ignore_ascii_case("SIP/2.0") && (100..700).contains(&code) =>
        {
            Some((code, parts.next().unwrap_or_default().trim().to_owned()))
        }
        _ => None,
    };
    match status {
        // The subscription ended before a final status: the outcome is
        // unknown, which is no success.
        Some((code, _)) if terminated && code < 200 => Some((
            487,
            String::from("Subscription terminated without a final status"),
            true,
        )),
        Some((code, reason)) => Some((code, reason, code >= 200)),
        // No readable sipfrag: only the end of the subscription says much.
        None if terminated => Some((
            487,
            String::from("Subscription terminated without a final status"),
            true,
        )),
        None => Some((100, String::from("Trying"), false)),
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

/// Our response to a received INVITE: its To gets our tag; a 18x or 2xx
/// also the Record-Route (§12.1.1) and our Contact; `sdp` as the body.
fn callee_response(
    call: &Incoming,
    cx: &mut Ctx<'_>,
    code: u16,
    reason: &str,
    sdp: Option<&str>,
) -> Option<Vec<u8>> {
    callee_response_with(call, cx, code, reason, sdp, &[])
}

/// [`callee_response`] with `extra` headers.
fn callee_response_with(
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

/// Sends a BYE in `dialog`; its transaction.
fn bye(dialog: Option<&mut Dialog>, cx: &mut Ctx<'_>) -> Option<TransactionId> {
    let via = cx.via();
    let mut b = dialog?.request("BYE", &via);
    b.header("User-Agent", &cx.id.user_agent);
    cx.add_app_headers(&mut b);
    start(cx, b.finish(None, b""))
}

fn send_callee_bye(call: &mut Incoming, cx: &mut Ctx<'_>) {
    call.bye_wanted = false;
    call.bye_tx = bye(call.dialog.as_mut(), cx);
}

fn send_bye(call: &mut Call, cx: &mut Ctx<'_>) {
    call.bye_tx = bye(call.dialog.as_mut(), cx);
    call.state = CallState::Ending;
}

/// CANCEL of the INVITE in flight (§9.1): its Request-URI, Call-ID, From,
/// To and CSeq number, and its Via branch.
fn send_cancel(call: &mut Call, cx: &mut Ctx<'_>) {
    call.cancel_wanted = false;
    call.state = CallState::Ending;
    call.give_up = Some(cx.now + cx.txs.timers().timer_64t1());
    let Ok(invite) = Message::parse(&call.invite) else {
        return;
    };
    let mut b = MessageBuilder::request("CANCEL", &call.target);
    b.header("Via", invite.header(HeaderName::Via).unwrap_or_default())
        .header("Max-Forwards", "70")
        .header("From", &call.from)
        .header("To", invite.header(HeaderName::To).unwrap_or_default())
        .header("Call-ID", &call.call_id)
        .header_parts("CSeq", &[&decimal(call.invite_cseq), " CANCEL"]);
    cx.add_app_headers(&mut b);
    // Its own transaction; the INVITE's then ends with 487.
    let _ = start(cx, b.finish(None, b""));
}
