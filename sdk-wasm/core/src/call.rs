//! Calls the user agent makes (RFC 3261 §13, §15, §9), sans-IO: an INVITE
//! with the application's SDP offer, its provisional responses (ringing,
//! early media), the 2xx acknowledged and the dialog kept, a digest
//! challenge answered once, and the end of the call: BYE once answered,
//! CANCEL before (sent once a provisional response came, §9.1), with the
//! CANCEL/200 race settled by acknowledging the 2xx and sending BYE. A BYE
//! from the far end ends the call too. Incoming calls come next (issue 6).

use crate::auth::{AuthRound, Challenge, ChallengeKind, RequestInfo, push_escaped};
use crate::dialog::Dialog;
use crate::registration::Ctx;
use crate::sip::{HeaderName, Message, MessageBuilder, push_decimal, response_to};
use crate::transaction::TransactionId;
use crate::ua::Event;

/// Names one call between the application and the user agent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u32);

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

/// Methods a call's dialog accepts from the far end today.
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS";

#[derive(Debug)]
struct Call {
    id: CallId,
    state: CallState,
    call_id: String,
    from: String,
    target: String,
    offer: String,
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
    bye_tx: Option<TransactionId>,
}

/// The calls of one user agent.
#[derive(Debug, Default)]
pub(crate) struct Calls {
    calls: Vec<Call>,
    next: u32,
}

fn via(cx: &mut Ctx<'_>) -> String {
    let mut v = String::with_capacity(64);
    v.push_str("SIP/2.0/");
    v.push_str(cx.id.via_transport);
    v.push(' ');
    v.push_str(&cx.id.via_host);
    v.push_str(";branch=z9hG4bK");
    v.push_str(&cx.rng.token(16));
    v
}

/// Sends `raw` (a request we built) through a new client transaction.
fn start(cx: &mut Ctx<'_>, raw: Vec<u8>) -> Option<TransactionId> {
    let msg = Message::parse(&raw).ok()?;
    let tx = cx.txs.start_client(cx.now, &msg, &raw);
    cx.transmit.push(raw);
    Some(tx)
}

impl Calls {
    /// Calls `target` with the SDP `offer`.
    pub fn call(&mut self, cx: &mut Ctx<'_>, target: &str, offer: &str) -> Option<CallId> {
        self.next += 1;
        let id = CallId(self.next);
        let mut from = String::with_capacity(96);
        if let Some(name) = &cx.id.display_name {
            from.push('"');
            push_escaped(&mut from, name);
            from.push_str("\" ");
        }
        from.push('<');
        from.push_str(&cx.id.aor);
        from.push_str(">;tag=");
        from.push_str(&cx.rng.token(10));
        let mut call = Call {
            id,
            state: CallState::Calling,
            call_id: cx.rng.token(20),
            from,
            target: target.to_owned(),
            offer: offer.to_owned(),
            invite: Vec::new(),
            invite_cseq: 0,
            invite_tx: TransactionId::default(),
            auth: AuthRound::default(),
            cancel_wanted: false,
            dialog: None,
            ack: None,
            bye_tx: None,
        };
        send_invite(&mut call, cx)?;
        cx.events.push(Event::Calling { call: id });
        self.calls.push(call);
        Some(id)
    }

    /// Whether a transaction is one of the calls'.
    pub fn owns(&self, tx: TransactionId) -> bool {
        self.calls
            .iter()
            .any(|c| c.invite_tx == tx || c.bye_tx == Some(tx))
    }

    /// A response to one of the calls' requests (`None`: it timed out).
    pub fn on_response(&mut self, cx: &mut Ctx<'_>, tx: TransactionId, msg: Option<&Message<'_>>) {
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
            .find(|c| c.dialog.as_ref().is_some_and(|d| d.has_response(msg)))
            .and_then(|c| c.ack.clone())
        {
            cx.transmit.push(ack);
        }
    }

    /// A request that may belong to a call's dialog; returns the response
    /// to send, or `None` when no call has it.
    pub fn on_request(&mut self, cx: &mut Ctx<'_>, msg: &Message<'_>) -> Option<(u16, Vec<u8>)> {
        let i = self
            .calls
            .iter()
            .position(|c| c.dialog.as_ref().is_some_and(|d| d.has_request(msg)))?;
        let call = &mut self.calls[i];
        let dialog = call.dialog.as_mut()?;
        if dialog.receive_request(msg).is_err() {
            let resp = response_to(msg, 500, "CSeq Out of Order", None).finish(None, b"");
            return Some((500, resp));
        }
        let (code, reason) = match msg.method() {
            Some("BYE") => (200, "OK"),
            Some("OPTIONS") => (200, "OK"),
            _ => (501, "Not Implemented"),
        };
        let mut b = response_to(msg, code, reason, None);
        b.header("Allow", ALLOW);
        let resp = b.finish(None, b"");
        if msg.method() == Some("BYE") {
            let call = self.calls.remove(i);
            cx.events.push(Event::Hangup {
                call: call.id,
                code: None,
                reason: "BYE".into(),
            });
        }
        Some((code, resp))
    }

    /// The application hangs up: BYE once answered, CANCEL before.
    pub fn hangup(&mut self, cx: &mut Ctx<'_>, id: CallId) {
        let Some(call) = self.calls.iter_mut().find(|c| c.id == id) else {
            return;
        };
        match call.state {
            CallState::Confirmed => send_bye(call, cx),
            CallState::Proceeding => send_cancel(call, cx),
            CallState::Calling => call.cancel_wanted = true,
            CallState::Ending => {}
        }
    }

    /// The transport closed: every call ends (the relay may keep the far
    /// end's side; issue 6 recovers calls across reconnects).
    pub fn transport_closed(&mut self, cx: &mut Ctx<'_>) {
        for call in self.calls.drain(..) {
            cx.events.push(Event::Hangup {
                call: call.id,
                code: Some(503),
                reason: "Transport Closed".into(),
            });
        }
    }
}

/// Builds and sends the call's INVITE (again, with credentials, after a
/// challenge), with the next CSeq and a new branch.
fn send_invite(call: &mut Call, cx: &mut Ctx<'_>) -> Option<()> {
    call.invite_cseq += 1;
    let mut b = MessageBuilder::request("INVITE", &call.target);
    b.header("Via", &via(cx))
        .header("Max-Forwards", "70")
        .header("From", &call.from)
        .header_parts("To", &["<", &call.target, ">"])
        .header("Call-ID", &call.call_id)
        .header_parts("CSeq", &[&decimal(call.invite_cseq), " INVITE"])
        .header_parts("Contact", &["<", &cx.id.contact_uri, ">"])
        .header("Allow", ALLOW)
        .header("Supported", "outbound")
        .header("User-Agent", &cx.id.user_agent);
    if let Some(d) = cx.digest.as_deref_mut() {
        let info = RequestInfo {
            method: "INVITE",
            uri: &call.target,
            body: call.offer.as_bytes(),
        };
        for (name, value) in d.credentials(&info, cx.rng) {
            b.header(name, &value);
        }
    }
    let raw = b.finish(Some("application/sdp"), call.offer.as_bytes());
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
        100 => false,
        101..=199 => {
            if call.state == CallState::Calling {
                call.state = CallState::Proceeding;
            }
            if call.cancel_wanted {
                send_cancel(call, cx);
                return false;
            }
            if let Ok(invite) = Message::parse(&call.invite)
                && call.dialog.is_none()
            {
                call.dialog = Dialog::caller(&invite, msg).ok();
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
            if let Some(ack) = &call.ack {
                // A retransmission (the transaction is kept Accepted for
                // them, RFC 6026): the same ACK again, nothing new.
                cx.transmit.push(ack.clone());
                return false;
            }
            let Ok(invite) = Message::parse(&call.invite) else {
                return true;
            };
            match call.dialog.as_mut() {
                Some(d) => d.confirm(msg, true),
                None => call.dialog = Dialog::caller(&invite, msg).ok(),
            }
            let via = via(cx);
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
        401 | 407 if call.state != CallState::Ending => {
            let challenges: Vec<Challenge> = msg
                .header_lines(HeaderName::WwwAuthenticate)
                .filter_map(|v| Challenge::parse(ChallengeKind::Www, v))
                .chain(
                    msg.header_lines(HeaderName::ProxyAuthenticate)
                        .filter_map(|v| Challenge::parse(ChallengeKind::Proxy, v)),
                )
                .collect();
            let answered = cx
                .digest
                .as_deref_mut()
                .is_some_and(|d| d.on_challenges(&challenges, &mut call.auth));
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

fn decimal(n: u32) -> String {
    let mut s = String::with_capacity(10);
    push_decimal(&mut s, u64::from(n));
    s
}

fn hangup_event(call: &Call, cx: &mut Ctx<'_>, code: u16, reason: &str) {
    cx.events.push(Event::Hangup {
        call: call.id,
        code: Some(code),
        reason: reason.to_owned(),
    });
}

fn send_bye(call: &mut Call, cx: &mut Ctx<'_>) {
    let via = via(cx);
    let Some(dialog) = call.dialog.as_mut() else {
        return;
    };
    let mut b = dialog.request("BYE", &via);
    b.header("User-Agent", &cx.id.user_agent);
    call.bye_tx = start(cx, b.finish(None, b""));
    call.state = CallState::Ending;
}

/// CANCEL of the INVITE in flight (§9.1): its Request-URI, Call-ID, From,
/// To and CSeq number, and its Via branch.
fn send_cancel(call: &mut Call, cx: &mut Ctx<'_>) {
    call.cancel_wanted = false;
    call.state = CallState::Ending;
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
    // Its own transaction; the INVITE's then ends with 487.
    let _ = start(cx, b.finish(None, b""));
}
