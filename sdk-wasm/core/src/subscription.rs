//! Subscriptions (RFC 6665), sans-IO: the application watches a busy
//! lamp (`dialog`, RFC 4235), a voicemail light (`message-summary`, RFC
//! 3842), presence (`presence`, RFC 3856) or any other event package.
//!
//! A SUBSCRIBE goes out of any dialog; the notifier's 2xx says how long it
//! lasts, and it is refreshed in its dialog before then (at 90 %). The
//! first NOTIFY (which may come before the 2xx) makes the dialog; every
//! NOTIFY is answered and reported with its state and its body, parsed
//! for the packages above ([`crate::status`]). A digest challenge is answered
//! once per round, `423` raises the interval to the Min-Expires asked for,
//! `481` to a refresh starts a new subscription. `terminated` ends it,
//! except where RFC 6665 §4.1.3 says to try again (`deactivated` and
//! `timeout` at once, `probation` and `giveup` after the Retry-After).
//! Unsubscribing sends Expires: 0 and ends at the final NOTIFY (or its
//! answer, or after 32 s). A new transport re-subscribes every
//! subscription from scratch: its old dialog's flow is gone.

use crate::prelude::*;
use core::time::Duration;

use crate::Instant;
use crate::auth::{AuthRound, RequestInfo, challenges};
use crate::ctx::Ctx;
use crate::dialog::Dialog;
use crate::error::ActionError;
use crate::event::Event;
use crate::ids::SubscriptionId;
use crate::input::{safe_target, safe_text};
use crate::sip::{
    HeaderName, Message, MessageBuilder, Method, is_token, push_decimal, response_to,
};
use crate::transaction::TransactionId;

/// The shortest interval asked for: below it, refreshes would flood.
pub const MIN_EXPIRES: u32 = 60;
/// The interval asked for when the application names none.
pub const DEFAULT_EXPIRES: u32 = 600;

/// The body type a package's NOTIFYs carry, asked for (Accept) when the
/// application names none: the ones [`crate::status`] parses.
fn default_accept(event: &str) -> Option<&'static str> {
    match package(event).to_ascii_lowercase().as_str() {
        "dialog" => Some("application/dialog-info+xml"),
        "message-summary" => Some("application/simple-message-summary"),
        "presence" => Some("application/pidf+xml"),
        _ => None,
    }
}
/// How long an unsubscription waits for its final NOTIFY (64·T1).
const UNSUBSCRIBE_WAIT: Duration = Duration::from_secs(32);
/// How long before trying again after a refresh the notifier could not
/// take (408, 5xx) or a termination with no Retry-After that asks for one.
const RETRY_WAIT: Duration = Duration::from_secs(30);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// SUBSCRIBE sent, or the subscription is up (its refreshes included).
    Live,
    /// Expires: 0 sent; ends at the final NOTIFY.
    Ending,
}

#[derive(Debug)]
struct Sub {
    id: SubscriptionId,
    target: String,
    event: String,
    /// The Accept header, if any (else the package's default body).
    accept: Option<String>,
    expires: u32,
    /// The application's headers, for every SUBSCRIBE of it.
    headers: Vec<(String, String)>,
    call_id: String,
    local_tag: String,
    /// The last CSeq of a SUBSCRIBE sent outside the dialog.
    cseq: u32,
    dialog: Option<Dialog>,
    tx: Option<TransactionId>,
    auth: AuthRound,
    state: State,
    /// The 2xx came: the application heard it is active.
    accepted: bool,
    /// When to refresh (in the dialog), to subscribe again (from
    /// scratch), or to stop waiting for the final NOTIFY.
    refresh_at: Option<Instant>,
    resubscribe_at: Option<Instant>,
    give_up_at: Option<Instant>,
}

/// The subscriptions of one user agent.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    subs: Vec<Sub>,
    next: u32,
}

/// A Subscription-State header: `active;expires=600`,
/// `terminated;reason=timeout;retry-after=30`.
#[derive(Debug, Default, PartialEq, Eq)]
struct SubscriptionState<'a> {
    state: &'a str,
    expires: Option<u32>,
    reason: Option<&'a str>,
    retry_after: Option<u32>,
}

fn subscription_state(value: &str) -> SubscriptionState<'_> {
    let mut parts = value.split(';').map(str::trim);
    let mut s = SubscriptionState {
        state: parts.next().unwrap_or_default(),
        ..SubscriptionState::default()
    };
    for part in parts {
        let (name, v) = part.split_once('=').unwrap_or((part, ""));
        match name.trim().to_ascii_lowercase().as_str() {
            "expires" => s.expires = v.trim().parse().ok(),
            "reason" => s.reason = Some(v.trim()),
            "retry-after" => s.retry_after = v.trim().parse().ok(),
            _ => {}
        }
    }
    s
}

/// When to refresh a subscription granted for `secs`: at 90 %.
fn refresh_in(secs: u32) -> Duration {
    Duration::from_millis(u64::from(secs.max(1)) * 900)
}

/// The package of an Event header (`dialog;id=1` → `dialog`).
fn package(event: &str) -> &str {
    event.split(';').next().unwrap_or_default().trim()
}

impl Subscriptions {
    /// Subscribes to `event` of `target`, accepting `accept` bodies (by
    /// default the one the package is known to carry), for `expires`
    /// seconds (at least [`MIN_EXPIRES`], [`DEFAULT_EXPIRES`] unless
    /// said), refreshed until [`Subscriptions::unsubscribe`]; events about
    /// it follow.
    pub fn subscribe(
        &mut self,
        cx: &mut Ctx<'_>,
        target: &str,
        event: &str,
        accept: Option<&str>,
        expires: Option<u32>,
    ) -> Result<SubscriptionId, ActionError> {
        if !safe_target(target) {
            return Err(ActionError::BadTarget("target"));
        }
        if !is_token(package(event)) || !safe_text(event) {
            return Err(ActionError::BadText("event"));
        }
        if accept.is_some_and(|a| !safe_text(a)) {
            return Err(ActionError::BadText("accept"));
        }
        let accept = accept.or(default_accept(event)).map(str::to_owned);
        self.next += 1;
        let id = SubscriptionId(self.next);
        let mut sub = Sub {
            id,
            target: target.to_owned(),
            event: event.to_owned(),
            accept,
            expires: expires.unwrap_or(DEFAULT_EXPIRES).max(MIN_EXPIRES),
            headers: cx.headers.to_vec(),
            call_id: String::new(),
            local_tag: String::new(),
            cseq: 0,
            dialog: None,
            tx: None,
            auth: AuthRound::default(),
            state: State::Live,
            accepted: false,
            refresh_at: None,
            resubscribe_at: None,
            give_up_at: None,
        };
        fresh(&mut sub, cx);
        send_again(&mut sub, cx).ok_or(ActionError::Unsendable)?;
        self.subs.push(sub);
        Ok(id)
    }

    /// Ends subscription `id`: Expires: 0, then the notifier's final
    /// NOTIFY ends it ([`Event::SubscriptionEnded`]).
    pub fn unsubscribe(&mut self, cx: &mut Ctx<'_>, id: SubscriptionId) -> Result<(), ActionError> {
        let i = self
            .subs
            .iter()
            .position(|s| s.id == id && s.state == State::Live)
            .ok_or(ActionError::NoSuchSubscription(id))?;
        let sub = &mut self.subs[i];
        if sub.dialog.is_none() {
            // Nothing to end on the other side yet (no NOTIFY came): the
            // notifier's subscription, if its 2xx is on its way, lapses.
            let sub = self.subs.remove(i);
            ended(cx, sub.id, None, "Unsubscribed");
            return Ok(());
        }
        sub.state = State::Ending;
        sub.refresh_at = None;
        sub.resubscribe_at = None;
        sub.give_up_at = Some(cx.now + UNSUBSCRIBE_WAIT);
        let _ = send(sub, cx, 0);
        Ok(())
    }

    /// Whether a client transaction is a SUBSCRIBE of ours.
    pub fn owns(&self, tx: TransactionId) -> bool {
        self.subs.iter().any(|s| s.tx == Some(tx))
    }

    /// The answer to one of our SUBSCRIBEs (`None`: it timed out).
    pub fn on_response(&mut self, cx: &mut Ctx<'_>, tx: TransactionId, msg: Option<&Message<'_>>) {
        let Some(i) = self.subs.iter().position(|s| s.tx == Some(tx)) else {
            return;
        };
        let code = msg.and_then(Message::status).unwrap_or(408);
        if code < 200 {
            return;
        }
        let sub = &mut self.subs[i];
        sub.tx = None;
        if sub.state == State::Ending {
            if code >= 300 {
                // The notifier no longer knows it: it is over.
                let sub = self.subs.remove(i);
                ended(cx, sub.id, None, "Unsubscribed");
            }
            return;
        }
        match (code, msg) {
            (200..=299, _) => {
                let granted = msg
                    .and_then(|m| m.header(HeaderName::Expires))
                    .and_then(|e| e.trim().parse::<u32>().ok())
                    .unwrap_or(sub.expires);
                sub.refresh_at = Some(cx.now + refresh_in(granted));
                if !sub.accepted {
                    sub.accepted = true;
                    cx.events.push(Event::SubscriptionActive {
                        subscription: sub.id,
                        expires: granted,
                    });
                }
            }
            (401 | 407, Some(m))
                if cx
                    .digest
                    .as_deref_mut()
                    .is_some_and(|d| d.on_challenges(&challenges(m), &mut sub.auth)) =>
            {
                let _ = send_again(sub, cx);
            }
            (423, Some(m)) => {
                let min = m
                    .header(HeaderName::MinExpires)
                    .and_then(|e| e.trim().parse::<u32>().ok())
                    .filter(|min| *min > sub.expires && *min <= 86_400);
                match min {
                    Some(min) => {
                        sub.expires = min;
                        let _ = send(sub, cx, min);
                    }
                    None => self.end(cx, i, Some(code), m.reason()),
                }
            }
            (481, _) if sub.dialog.is_some() => {
                // The notifier lost it: a new subscription.
                fresh(sub, cx);
                let _ = send_again(sub, cx);
            }
            (408 | 500..=599, _) if sub.accepted => {
                // A refresh the notifier could not take: again later; the
                // subscription lasts until then.
                sub.resubscribe_at = Some(cx.now + RETRY_WAIT);
            }
            _ => {
                let reason = msg.map_or("Request Timeout", |m| m.reason()).to_owned();
                self.end(cx, i, Some(code), &reason);
            }
        }
    }

    /// A NOTIFY (server transaction `tx`): answered and reported if it is
    /// for one of our subscriptions; `false` when it is not (the user
    /// agent answers it `481`).
    pub fn on_notify(&mut self, cx: &mut Ctx<'_>, tx: TransactionId, msg: &Message<'_>) -> bool {
        let to_tag = msg.to().tag().unwrap_or_default();
        let Some(i) = self
            .subs
            .iter()
            .position(|s| s.call_id == msg.call_id() && s.local_tag == to_tag)
        else {
            return false;
        };
        let respond = |cx: &mut Ctx<'_>, code: u16, reason: &str| {
            let resp = response_to(msg, code, reason, None).finish(None, b"");
            cx.respond(tx, code, resp);
        };
        let sub = &mut self.subs[i];
        let event = msg.header(HeaderName::Event).unwrap_or_default();
        if !package(event).eq_ignore_ascii_case(package(&sub.event)) {
            respond(cx, 489, "Bad Event");
            return true;
        }
        match &mut sub.dialog {
            Some(d) if Some(d.remote_tag()) != msg.from().tag() => {
                // Another notifier (a forked SUBSCRIBE): one is enough.
                respond(cx, 481, "Subscription Does Not Exist");
                return true;
            }
            Some(d) => {
                if d.receive_request(msg).is_err() {
                    respond(cx, 500, "CSeq Out of Order");
                    return true;
                }
            }
            None => match Dialog::subscriber(msg, cx.id.from(&sub.local_tag), sub.cseq) {
                Ok(d) => sub.dialog = Some(d),
                Err(_) => {
                    respond(cx, 400, "Bad NOTIFY");
                    return true;
                }
            },
        }
        respond(cx, 200, "OK");
        let state = subscription_state(
            msg.header(HeaderName::Other("Subscription-State"))
                .unwrap_or("active"),
        );
        let content_type = msg
            .header(HeaderName::ContentType)
            .unwrap_or_default()
            .trim();
        let body = String::from_utf8_lossy(msg.body());
        let status = (!body.is_empty())
            .then(|| crate::status::parse(content_type, &body))
            .flatten();
        cx.events.push(Event::Notify {
            subscription: sub.id,
            state: state.state.to_ascii_lowercase(),
            content_type: content_type.to_owned(),
            body: body.into_owned(),
            status,
        });
        if !state.state.eq_ignore_ascii_case("terminated") {
            if let (Some(secs), State::Live) = (state.expires, sub.state) {
                let at = cx.now + refresh_in(secs);
                sub.refresh_at = Some(sub.refresh_at.map_or(at, |r| r.min(at)));
            }
            return true;
        }
        if sub.state == State::Ending {
            let sub = self.subs.remove(i);
            ended(cx, sub.id, None, "Unsubscribed");
            return true;
        }
        // RFC 6665 §4.1.3: when to try again, if at all.
        let retry = match state.reason.map(str::to_ascii_lowercase).as_deref() {
            Some("deactivated" | "timeout") => Some(Duration::ZERO),
            Some("probation" | "giveup") => Some(
                state
                    .retry_after
                    .map_or(RETRY_WAIT, |s| Duration::from_secs(u64::from(s))),
            ),
            _ => None,
        };
        match retry {
            Some(wait) => {
                sub.dialog = None;
                sub.refresh_at = None;
                sub.resubscribe_at = Some(cx.now + wait);
            }
            None => {
                let reason = state.reason.unwrap_or("terminated").to_owned();
                self.end(cx, i, None, &reason);
            }
        }
        true
    }

    /// When a subscription next needs a timer.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.subs
            .iter()
            .flat_map(|s| [s.refresh_at, s.resubscribe_at, s.give_up_at])
            .flatten()
            .min()
    }

    /// Refreshes, subscriptions tried again, and unsubscriptions given up
    /// on, as their time comes.
    pub fn handle_timeout(&mut self, cx: &mut Ctx<'_>) {
        let now = cx.now;
        let mut i = 0;
        while i < self.subs.len() {
            let sub = &mut self.subs[i];
            if sub.give_up_at.is_some_and(|t| t <= now) {
                let sub = self.subs.remove(i);
                ended(cx, sub.id, None, "Unsubscribed");
                continue;
            }
            if sub.resubscribe_at.is_some_and(|t| t <= now) && sub.tx.is_none() {
                sub.resubscribe_at = None;
                fresh(sub, cx);
                let _ = send_again(sub, cx);
            } else if sub.refresh_at.is_some_and(|t| t <= now) && sub.tx.is_none() {
                sub.refresh_at = None;
                let _ = send_again(sub, cx);
            }
            i += 1;
        }
    }

    /// The transport closed: what was in flight is lost, and the dialogs
    /// with it (their flow); each subscription starts again on the next.
    pub fn transport_closed(&mut self) {
        for sub in &mut self.subs {
            sub.tx = None;
            sub.dialog = None;
            sub.refresh_at = None;
            sub.resubscribe_at = None;
        }
    }

    /// A new transport: every live subscription subscribes again; one
    /// being ended is over.
    pub fn transport_connected(&mut self, cx: &mut Ctx<'_>) {
        let mut i = 0;
        while i < self.subs.len() {
            if self.subs[i].state == State::Ending {
                let sub = self.subs.remove(i);
                ended(cx, sub.id, None, "Unsubscribed");
                continue;
            }
            let sub = &mut self.subs[i];
            if sub.tx.is_none() && sub.dialog.is_none() {
                fresh(sub, cx);
                let _ = send_again(sub, cx);
            }
            i += 1;
        }
    }

    /// Subscription `i` is over: the application hears why.
    fn end(&mut self, cx: &mut Ctx<'_>, i: usize, code: Option<u16>, reason: &str) {
        let sub = self.subs.remove(i);
        ended(cx, sub.id, code, reason);
    }
}

fn ended(cx: &mut Ctx<'_>, id: SubscriptionId, code: Option<u16>, reason: &str) {
    cx.events.push(Event::SubscriptionEnded {
        subscription: id,
        code,
        reason: reason.to_owned(),
    });
}

/// A new subscription for `sub`: new Call-ID and tag, no dialog.
fn fresh(sub: &mut Sub, cx: &mut Ctx<'_>) {
    sub.call_id = cx.rng.token(20);
    sub.local_tag = cx.rng.token(10);
    sub.cseq = 0;
    sub.dialog = None;
    sub.auth = AuthRound::default();
}

/// Sends `sub`'s SUBSCRIBE for its interval.
fn send_again(sub: &mut Sub, cx: &mut Ctx<'_>) -> Option<()> {
    let expires = sub.expires;
    send(sub, cx, expires)
}

/// Sends `sub`'s SUBSCRIBE for `expires` seconds: in its dialog once it
/// has one, else outside any.
fn send(sub: &mut Sub, cx: &mut Ctx<'_>, expires: u32) -> Option<()> {
    let via = cx.via();
    let mut b = match sub.dialog.as_mut() {
        Some(d) => d.request(Method::Subscribe, &via),
        None => {
            sub.cseq += 1;
            let mut cseq = String::with_capacity(20);
            push_decimal(&mut cseq, u64::from(sub.cseq));
            cseq.push_str(" SUBSCRIBE");
            let mut b = MessageBuilder::request(Method::Subscribe, &sub.target);
            b.header("Via", &via)
                .header("Max-Forwards", "70")
                .header("From", &cx.id.from(&sub.local_tag))
                .header_parts("To", &["<", &sub.target, ">"])
                .header("Call-ID", &sub.call_id)
                .header("CSeq", &cseq);
            b
        }
    };
    let mut secs = String::with_capacity(10);
    push_decimal(&mut secs, u64::from(expires));
    b.header_parts("Contact", &["<", &cx.id.contact_uri, ">"])
        .header("Event", &sub.event)
        .header("Expires", &secs)
        .header("User-Agent", &cx.id.user_agent);
    if let Some(accept) = &sub.accept {
        b.header("Accept", accept);
    }
    for (name, value) in &sub.headers {
        b.header(name, value);
    }
    if let Some(d) = cx.digest.as_deref_mut() {
        let uri = sub
            .dialog
            .as_ref()
            .map_or(sub.target.as_str(), |d| d.remote_target());
        let info = RequestInfo {
            method: Method::Subscribe.as_str(),
            uri,
            body: b"",
        };
        for (name, value) in d.credentials(&info, cx.rng) {
            b.header(name, &value);
        }
    }
    let raw = b.finish(None, b"");
    let msg = Message::parse(&raw).ok()?;
    sub.tx = Some(cx.txs.start_client(cx.now, &msg, &raw));
    cx.transmit.push(raw);
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_state_reads_its_parameters() {
        assert_eq!(
            subscription_state("terminated; reason=probation;retry-after=30"),
            SubscriptionState {
                state: "terminated",
                expires: None,
                reason: Some("probation"),
                retry_after: Some(30),
            }
        );
        assert_eq!(subscription_state("active;expires=600").expires, Some(600));
        assert_eq!(package("dialog;id=x"), "dialog");
        assert_eq!(refresh_in(600), Duration::from_secs(540));
    }
}
