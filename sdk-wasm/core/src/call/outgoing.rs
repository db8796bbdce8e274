//! The calls we make (RFC 3261 §13.2, §9): the INVITE with the
//! application's offer, its provisional responses (ringing, early media,
//! reliable ones acknowledged with PRACK, RFC 3262), forks beyond the
//! first answered ended, a digest challenge answered, a 422 obeyed (RFC
//! 4028), and CANCEL once a provisional response came (§9.1).

use super::{ALLOW, Call, CallState, Calls, decimal, hangup_event, send_bye, start};
use crate::auth::challenges;
use crate::auth::{AuthRound, RequestInfo};
use crate::ctx::Ctx;
use crate::dialog::Dialog;
use crate::error::ActionError;
use crate::event::Event;
use crate::ids::CallId;
use crate::input::safe_target;
use crate::prelude::*;
use crate::session_timer;
use crate::session_timer::{MIN_SE, Refresher, SessionTimer};
use crate::sip::{HeaderName, Message, MessageBuilder, Method, push_decimal};
use crate::transaction::TransactionId;

impl Calls {
    /// Calls `target` with the SDP `offer`.
    pub fn call(
        &mut self,
        cx: &mut Ctx<'_>,
        target: &str,
        offer: &str,
    ) -> Result<CallId, ActionError> {
        if !safe_target(target) {
            return Err(ActionError::BadTarget("target"));
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
            early: None,
            trickle: false,
            cancelled: false,
        };
        send_invite(&mut call, cx).ok_or(ActionError::Unsendable)?;
        cx.events.push(Event::Calling {
            call: id,
            target: target.to_owned(),
        });
        self.calls.push(call);
        Ok(id)
    }
}

/// Builds and sends the call's INVITE (again, with credentials, after a
/// challenge), with the next CSeq and a new branch.
pub(super) fn send_invite(call: &mut Call, cx: &mut Ctx<'_>) -> Option<()> {
    call.invite_cseq += 1;
    let mut b = MessageBuilder::request(Method::Invite, &call.target);
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
            b.header(
                "Supported",
                "100rel, outbound, replaces, timer, trickle-ice",
            )
            .header("Session-Expires", &decimal(secs))
            .header("Min-SE", &min_se);
        }
        None => {
            b.header("Supported", "100rel, outbound, replaces, trickle-ice");
        }
    }
    b.header("Recv-Info", super::trickle::TRICKLE);
    for (name, value) in &call.headers {
        b.header(name, value);
    }
    if let Some(d) = cx.digest.as_deref_mut() {
        let info = RequestInfo {
            method: Method::Invite.as_str(),
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
pub(super) fn on_invite_response(
    call: &mut Call,
    cx: &mut Ctx<'_>,
    msg: Option<&Message<'_>>,
) -> bool {
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
            if body.is_empty() {
                cx.events.push(Event::Ringing { call: call.id });
            } else {
                if let Some(tag) = msg.to().tag() {
                    call.early = Some((tag.to_owned(), body.clone()));
                }
                cx.events.push(Event::Progress {
                    call: call.id,
                    sdp: body,
                });
            }
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
                call.cancelled = true;
                send_bye(call, cx);
            } else {
                // No SDP in the 2xx: the answer was the early one of the
                // same dialog.
                let early = call.early.take();
                let sdp = match early {
                    Some((tag, sdp)) if body.is_empty() && msg.to().tag() == Some(&tag) => sdp,
                    _ => body,
                };
                call.trickle = super::trickle::supported(msg);
                let backfill = !sdp.is_empty()
                    && !crate::sdp::has_candidates(&call.local_sdp)
                    && !crate::sdp::is_ice_lite(&sdp);
                cx.events.push(Event::Accepted { call: call.id, sdp });
                if backfill {
                    cx.events.push(Event::CandidatesNeeded {
                        call: call.id,
                        trickle: call.trickle,
                    });
                }
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
                .is_some_and(|d| d.on_challenges(&challenges(msg), &mut call.auth));
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

/// Acknowledges a reliable provisional response with PRACK (RFC 3262
/// §4): in its early dialog, with `RAck: <RSeq> <CSeq> INVITE`. Returns
/// `false` for one to drop: a retransmission or one out of order (its RSeq
/// not one above the last).
pub(super) fn prack(call: &mut Call, cx: &mut Ctx<'_>, msg: &Message<'_>) -> bool {
    if !msg.lists(HeaderName::Require, "100rel") {
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
    let mut b = dialog.request(Method::Prack, &via);
    b.header("RAck", &rack)
        .header("User-Agent", &cx.id.user_agent);
    let _ = start(cx, b.finish(None, b""));
    true
}

/// Whether the INVITE `raw` requires reliable provisional responses.
pub(super) fn requires_100rel(raw: &[u8]) -> bool {
    Message::parse(raw).is_ok_and(|m| m.lists(HeaderName::Require, "100rel"))
}

/// ACK and BYE for a 2xx from a fork other than the one the call took
/// (in its early dialog if we PRACKed in it, so that the BYE's CSeq is
/// above the PRACKs').
pub(super) fn end_extra_fork(
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
    let _ = start(cx, fork.request(Method::Bye, &via_bye).finish(None, b""));
}

/// CANCEL of the INVITE in flight (§9.1): its Request-URI, Call-ID, From,
/// To and CSeq number, and its Via branch.
pub(super) fn send_cancel(call: &mut Call, cx: &mut Ctx<'_>) {
    call.cancel_wanted = false;
    call.state = CallState::Ending;
    call.give_up = Some(cx.now + cx.txs.timers().timer_64t1());
    let Ok(invite) = Message::parse(&call.invite) else {
        return;
    };
    let mut b = MessageBuilder::request(Method::Cancel, &call.target);
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
