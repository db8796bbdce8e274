//! Instant messages (RFC 3428) and DTMF sent as SIP INFO
//! (`application/dtmf-relay`, the de facto format PBXs accept): MESSAGE out
//! of any dialog, or in a call's; INFO in a call's. What arrives is
//! reported as events; what the application sends is tracked to its final
//! answer.

use crate::ctx::Ctx;
use crate::error::ActionError;
use crate::event::Event;
use crate::ids::{CallId, MessageId};
use crate::input::{safe_target, safe_text};
use crate::prelude::*;
use crate::sip::{HeaderName, Message, MessageBuilder, Method, push_decimal};
use crate::transaction::TransactionId;

/// The MESSAGEs in flight.
#[derive(Debug, Default)]
pub(crate) struct Messages {
    pending: Vec<(TransactionId, MessageId)>,
    next: u32,
}

impl Messages {
    /// Sends `text` (of `content_type`) to `target`, outside any dialog.
    pub fn send(
        &mut self,
        cx: &mut Ctx<'_>,
        target: &str,
        content_type: &str,
        text: &str,
    ) -> Result<MessageId, ActionError> {
        if !safe_target(target) {
            return Err(ActionError::BadTarget("target"));
        }
        if !safe_text(content_type) {
            return Err(ActionError::BadText("content_type"));
        }
        let mut b = MessageBuilder::request(Method::Message, target);
        b.header("Via", &cx.via())
            .header("Max-Forwards", "70")
            .header_parts("From", &["<", &cx.id.aor, ">;tag=", &cx.rng.token(10)])
            .header_parts("To", &["<", target, ">"])
            .header("Call-ID", &cx.rng.token(20))
            .header("CSeq", "1 MESSAGE")
            .header("User-Agent", &cx.id.user_agent);
        cx.add_app_headers(&mut b);
        let raw = b.finish(Some(content_type), text.as_bytes());
        let msg = Message::parse(&raw).map_err(|_| ActionError::Unsendable)?;
        let tx = cx.txs.start_client(cx.now, &msg, &raw);
        cx.transmit.push(raw);
        self.next += 1;
        let id = MessageId(self.next);
        self.pending.push((tx, id));
        Ok(id)
    }

    /// Whether a transaction is one of the MESSAGEs'.
    pub fn owns(&self, tx: TransactionId) -> bool {
        self.pending.iter().any(|(t, _)| *t == tx)
    }

    /// A MESSAGE's answer (`None`: it timed out): delivered or failed.
    pub fn on_response(&mut self, cx: &mut Ctx<'_>, tx: TransactionId, msg: Option<&Message<'_>>) {
        let code = msg.and_then(Message::status).unwrap_or(408);
        if code < 200 {
            return;
        }
        let Some(i) = self.pending.iter().position(|(t, _)| *t == tx) else {
            return;
        };
        let (_, id) = self.pending.remove(i);
        cx.events.push(if code < 300 {
            Event::MessageSent { id }
        } else {
            Event::MessageFailed {
                id,
                code,
                reason: msg.map_or("Request Timeout", |m| m.reason()).to_owned(),
            }
        });
    }

    /// The transport closed: the MESSAGEs in flight failed.
    pub fn transport_closed(&mut self, cx: &mut Ctx<'_>) {
        for (_, id) in self.pending.drain(..) {
            cx.events.push(Event::MessageFailed {
                id,
                code: 503,
                reason: "Transport Closed".into(),
            });
        }
    }
}

/// A received MESSAGE as an event (`call`: the call whose dialog it came
/// in).
pub(crate) fn received(
    msg: &Message<'_>,
    call: Option<CallId>,
    id: &crate::ctx::Identity,
) -> Event {
    Event::Message {
        call,
        from: msg.from().uri_text.to_owned(),
        content_type: msg
            .header(HeaderName::ContentType)
            .unwrap_or("text/plain")
            .to_owned(),
        body: String::from_utf8_lossy(msg.body()).into_owned(),
        headers: id.picked_headers(msg),
    }
}

/// The digit and duration of an `application/dtmf-relay` body
/// (`Signal=5\r\nDuration=160`), if it is one.
pub(crate) fn dtmf_relay(msg: &Message<'_>) -> Option<(char, u32)> {
    let ct = msg.header(HeaderName::ContentType)?;
    if !ct.trim().eq_ignore_ascii_case("application/dtmf-relay") {
        return None;
    }
    let body = core::str::from_utf8(msg.body()).ok()?;
    let mut digit = None;
    let mut duration = 160;
    for line in body.lines() {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "signal" => digit = value.trim().chars().next(),
            "duration" => duration = value.trim().parse().unwrap_or(duration),
            _ => {}
        }
    }
    digit
        .filter(|d| matches!(d, '0'..='9' | '*' | '#' | 'A'..='D' | 'a'..='d'))
        .map(|d| (d.to_ascii_uppercase(), duration))
}

/// The body of a DTMF INFO.
pub(crate) fn dtmf_body(digit: char, duration_ms: u32) -> String {
    let mut body = String::with_capacity(32);
    body.push_str("Signal=");
    body.push(digit);
    body.push_str("\r\nDuration=");
    push_decimal(&mut body, u64::from(duration_ms));
    body.push_str("\r\n");
    body
}
