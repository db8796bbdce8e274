//! Transfers (RFC 3515): our REFER of a call to a target (a blind
//! transfer) and the NOTIFYs of its progress; the far end's REFER of us,
//! accepted with 202, followed (or declined) by the application, and its
//! new call's progress NOTIFYed in the old call's dialog.

use super::{Calls, Referral};
use crate::prelude::*;
use core::time::Duration;

use crate::Instant;
use crate::ctx::Ctx;
use crate::error::ActionError;
use crate::event::Event;
use crate::ids::CallId;
use crate::input::{safe_target, safe_text};
use crate::sip::{HeaderName, Message, Method, str_range};

/// How long a blind transfer's outcome may take (the far end's call to the
/// target rings a while, but not for ever).
const TRANSFER_WAIT: Duration = Duration::from_secs(120);

/// One of our blind transfers whose outcome is not known yet.
#[derive(Debug)]
pub(super) struct OurTransfer {
    call: CallId,
    /// When to give up on hearing the outcome.
    deadline: Instant,
    /// The far end accepted the REFER (2xx): it is trying.
    accepted: bool,
}

impl OurTransfer {
    /// The call being transferred.
    pub(super) fn call(&self) -> CallId {
        self.call
    }
}

impl Calls {
    /// Our transfer of call `id` progressed to `code` (`done`: its outcome).
    pub(super) fn transfer_progressed(&mut self, id: CallId, code: u16, done: bool) {
        if done {
            self.transfers.retain(|t| t.call != id);
        } else if (200..300).contains(&code)
            && let Some(t) = self.transfers.iter_mut().find(|t| t.call == id)
        {
            t.accepted = true;
        }
    }

    /// Call `id` ends with our transfer of it unsettled: a far end that had
    /// accepted it hung up as it carried it out (PBXs do, before or instead
    /// of the last NOTIFY), which is its success; one that had not, never
    /// took it.
    pub(super) fn transfer_ended_with_call(&mut self, cx: &mut Ctx<'_>, id: CallId) {
        let Some(i) = self.transfers.iter().position(|t| t.call == id) else {
            return;
        };
        let t = self.transfers.remove(i);
        let (code, reason) = if t.accepted {
            (200, "OK")
        } else {
            (481, "Call Ended Before The Transfer Was Accepted")
        };
        cx.events.push(Event::Transfer {
            call: id,
            code,
            reason: reason.into(),
            done: true,
        });
    }

    /// When a transfer's outcome is next given up on.
    pub(super) fn transfer_deadline(&self) -> Option<Instant> {
        self.transfers.iter().map(|t| t.deadline).min()
    }

    /// Transfers whose outcome never came: failed, 408.
    pub(super) fn transfer_timeouts(&mut self, cx: &mut Ctx<'_>) {
        let now = cx.now;
        self.transfers.retain(|t| {
            let expired = t.deadline <= now;
            if expired {
                cx.events.push(Event::Transfer {
                    call: t.call,
                    code: 408,
                    reason: "Transfer Outcome Never Came".into(),
                    done: true,
                });
            }
            !expired
        });
    }

    /// The far end's REFER in call `id`'s dialog: the event for the app,
    /// or the status to refuse it with.
    pub(super) fn on_refer(
        &mut self,
        id: CallId,
        msg: &Message<'_>,
    ) -> Result<Event, (u16, &'static str)> {
        if self.referrals.iter().any(|r| r.from == id) {
            return Err((491, "Request Pending"));
        }
        let refer_to = msg
            .header(HeaderName::ReferTo)
            .ok_or((400, "Missing Refer-To"))?
            .trim();
        let uri = match (refer_to.find('<'), refer_to.rfind('>')) {
            (Some(open), Some(close)) if open < close => str_range(refer_to, open + 1, close),
            _ => refer_to.split(';').next().unwrap_or_default().trim(),
        };
        // Headers in the URI (§19.1.1): a Replaces makes it an attended
        // transfer (RFC 5589 §7), carried into the new INVITE; no other
        // header is taken from the far end.
        let (uri, replaces) = match uri.split_once('?') {
            Some((uri, headers)) => (uri, uri_replaces(headers).ok_or((400, "Bad Refer-To"))?),
            None => (uri, None),
        };
        if !safe_target(uri) {
            return Err((400, "Bad Refer-To"));
        }
        let referred_by = msg
            .header(HeaderName::Other("Referred-By"))
            .map(str::trim)
            .filter(|v| safe_text(v) && !v.is_empty())
            .map(str::to_owned);
        let attended = replaces.is_some();
        self.referrals.push(Referral {
            from: id,
            target: uri.to_owned(),
            referred_by: referred_by.clone(),
            replaces,
            call: None,
            reported: 100,
        });
        Ok(Event::Referred {
            call: id,
            target: uri.to_owned(),
            referred_by,
            attended,
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
    ) -> Result<CallId, ActionError> {
        let i = self
            .referrals
            .iter()
            .position(|r| r.from == from && r.call.is_none())
            .ok_or(ActionError::NoReferral(from))?;
        let target = self.referrals[i].target.clone();
        let mut headers = cx.headers.to_vec();
        if let Some(by) = &self.referrals[i].referred_by {
            headers.push(("Referred-By".to_owned(), by.clone()));
        }
        if let Some(replaces) = &self.referrals[i].replaces {
            headers.push(("Replaces".to_owned(), replaces.clone()));
        }
        let call = self.call(&mut cx.with_headers(&headers), &target, offer);
        match call {
            Ok(call) => self.referrals[i].call = Some(call),
            Err(_) => self.end_referral(cx, from, 503, "Service Unavailable"),
        }
        call
    }

    /// Refuses the far end's transfer request of call `from`.
    pub fn decline_referral(&mut self, cx: &mut Ctx<'_>, from: CallId) -> Result<(), ActionError> {
        let pending = self
            .referrals
            .iter()
            .any(|r| r.from == from && r.call.is_none());
        if !pending {
            return Err(ActionError::NoReferral(from));
        }
        self.end_referral(cx, from, 603, "Declined");
        Ok(())
    }

    /// Reports the progress of calls (`progress`: what the events just
    /// produced said, as [`referral_progress`] reads them) to the far ends
    /// whose transfer requests made them: 180 once ringing, then the final
    /// outcome.
    pub fn report_referrals(&mut self, cx: &mut Ctx<'_>, progress: &[(CallId, u16, String)]) {
        for (call, code, reason) in progress {
            let (call, code, reason) = (*call, *code, reason.as_str());
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
    pub(super) fn end_referral(&mut self, cx: &mut Ctx<'_>, from: CallId, code: u16, reason: &str) {
        self.referrals.retain(|r| r.from != from);
        self.notify_referral(cx, from, code, reason);
    }

    /// A NOTIFY of a transfer request's progress in call `from`'s dialog
    /// (RFC 3515 §2.4.4): `SIP/2.0 <code> <reason>` as `message/sipfrag`;
    /// a final status ends the subscription.
    pub(super) fn notify_referral(
        &mut self,
        cx: &mut Ctx<'_>,
        from: CallId,
        code: u16,
        reason: &str,
    ) {
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
            Method::Notify,
            &headers,
            Some(("message/sipfrag;version=2.0", &frag)),
        );
    }

    /// Blind transfer (RFC 3515): asks the far end, with a REFER in the
    /// call's dialog, to call `target`. Its progress arrives as
    /// [`Event::Transfer`]s: the REFER's answer, then the far end's NOTIFYs
    /// of its new call. `false` when the call is not up or `target` is not
    /// a SIP URI.
    pub fn transfer(
        &mut self,
        cx: &mut Ctx<'_>,
        id: CallId,
        target: &str,
    ) -> Result<(), ActionError> {
        if !safe_target(target) {
            return Err(ActionError::BadTarget("target"));
        }
        self.send_refer(cx, id, &(String::from("<") + target + ">"))
    }

    /// Sends the REFER of a transfer of call `id` to `refer_to` (a
    /// name-addr) and waits for its outcome.
    pub(super) fn send_refer(
        &mut self,
        cx: &mut Ctx<'_>,
        id: CallId,
        refer_to: &str,
    ) -> Result<(), ActionError> {
        let referred_by = String::from("<") + &cx.id.aor + ">";
        let contact = String::from("<") + &cx.id.contact_uri + ">";
        let headers = [
            ("Refer-To", refer_to),
            ("Referred-By", referred_by.as_str()),
            // RFC 3515 §2.1: a REFER carries a Contact.
            ("Contact", contact.as_str()),
        ];
        let (tx, _) = self.request_in_dialog(cx, id, Method::Refer, &headers, None)?;
        self.refers.push((tx, id));
        self.transfers.retain(|t| t.call != id);
        self.transfers.push(OurTransfer {
            call: id,
            deadline: cx.now + TRANSFER_WAIT,
            accepted: false,
        });
        Ok(())
    }
}

/// The `Replaces` among a Refer-To URI's headers (`a=b&c=d`), unescaped:
/// `Ok(None)` when there is none, `None` when it is malformed or would
/// break a header line.
fn uri_replaces(headers: &str) -> Option<Option<String>> {
    for pair in headers.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name.eq_ignore_ascii_case("Replaces") {
            let value = super::replaces::unescape(value)?;
            return (!value.is_empty() && safe_text(&value)).then_some(Some(value));
        }
    }
    Some(None)
}

/// The progress a NOTIFY of a REFER subscription reports (RFC 3515 §2.4.5):
/// the status line of its `message/sipfrag` body, and whether it is the
/// last (a final status, or the subscription terminated). `None` when the
/// NOTIFY is not about a REFER.
pub(super) fn transfer_progress(msg: &Message<'_>) -> Option<(u16, String, bool)> {
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
    let body = core::str::from_utf8(msg.body()).unwrap_or_default();
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

/// What `event` says of a call's progress that a transfer request's
/// NOTIFYs report: its call, the status, the reason. (Read out of the
/// events instead of copying them: a copy of the whole event type is
/// kilobytes of the SDK's wasm.)
pub(crate) fn referral_progress(event: &Event) -> Option<(CallId, u16, &str)> {
    match event {
        Event::Ringing { call } | Event::Progress { call, .. } => Some((*call, 180, "Ringing")),
        Event::Accepted { call, .. } => Some((*call, 200, "OK")),
        Event::Hangup { call, code, reason } => Some((*call, code.unwrap_or(487), reason.as_str())),
        _ => None,
    }
}
