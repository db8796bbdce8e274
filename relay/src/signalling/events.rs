//! What the relay sees happen, for dashboards (the admin event stream) and
//! for a graceful shutdown (which waits for calls in progress).
//!
//! The proxy stays stateless about dialogs for routing; this tracker only
//! watches the messages that pass: a bounded map from Call-ID to a call's
//! state, forgotten when the call ends or goes stale.

use std::collections::HashMap;
use std::time::Duration;

use serde::Serialize;
use sipline_core::Instant;
use sipline_core::sip::{Message, Method};

use crate::ids::ConnId;
use crate::media::record::Starter;

/// One thing that happened, in the names the Janus SIP plugin and gateway
/// dashboards use; on the stream, its name is the `event` field.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum AdminEvent {
    /// A browser opened a WebSocket.
    Connected {
        /// The connection (session) id.
        session: ConnId,
    },
    /// A browser's WebSocket closed.
    Disconnected {
        /// The connection (session) id.
        session: ConnId,
    },
    /// The registrar accepted a binding.
    Registered {
        /// The connection.
        session: ConnId,
        /// The address of record (`sip:alice@…`).
        client: String,
    },
    /// A binding was removed.
    Unregistered {
        /// The connection.
        session: ConnId,
        /// The address of record.
        client: String,
    },
    /// A call is being set up.
    Calling(CallInfo),
    /// The callee is ringing (180/183).
    Ringing(CallInfo),
    /// The callee answered.
    Answered(CallInfo),
    /// The call ended, or failed with `code`.
    Hangup {
        /// Which call.
        #[serde(flatten)]
        call: CallInfo,
        /// SIP status for a failed or refused call; `None` for a BYE/CANCEL.
        #[serde(skip_serializing_if = "Option::is_none")]
        code: Option<u16>,
        /// Why, from the BYE's Reason header (RFC 3326), e.g. the relay's
        /// own "RTP timeout" or "DTLS handshake failed".
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A PBX stopped answering or is unreachable: new requests go to the
    /// next one.
    PbxDown {
        /// Its address.
        pbx: String,
        /// `unreachable` (ICMP) or `no answer` (a request or a probe).
        reason: &'static str,
    },
    /// A PBX that was down answers again.
    PbxUp {
        /// Its address.
        pbx: String,
    },
}

/// The details of a call that every call event carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallInfo {
    /// The browser connection the call involves.
    pub session: ConnId,
    /// The browser's own address: the caller when it calls, the callee
    /// when it is called.
    pub client: String,
    /// The Call-ID.
    pub call_id: String,
    /// From URI.
    pub caller: String,
    /// To URI.
    pub callee: String,
}

impl AdminEvent {
    /// The event's name on the stream.
    pub fn name(&self) -> &'static str {
        match self {
            AdminEvent::Connected { .. } => "connected",
            AdminEvent::Disconnected { .. } => "disconnected",
            AdminEvent::Registered { .. } => "registered",
            AdminEvent::Unregistered { .. } => "unregistered",
            AdminEvent::Calling(_) => "calling",
            AdminEvent::Ringing(_) => "ringing",
            AdminEvent::Answered(_) => "answered",
            AdminEvent::Hangup { .. } => "hangup",
            AdminEvent::PbxDown { .. } => "pbx_down",
            AdminEvent::PbxUp { .. } => "pbx_up",
        }
    }

    /// The event as one line of JSON: `{"event":"<name>", …fields}`.
    pub fn to_json(&self) -> String {
        // Plain strings and integers only: serialising cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The `text` of a Reason header (RFC 3326), bounded.
fn reason_text(msg: &Message<'_>) -> Option<String> {
    let value = msg.header(sipline_core::sip::HeaderName::Other("Reason"))?;
    let text = value.split_once("text=")?.1.trim_start_matches('"');
    Some(bounded(text.split('"').next().unwrap_or(text)))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum CallState {
    Calling,
    Ringing,
    Answered,
}

#[derive(Debug)]
struct Call {
    info: CallInfo,
    state: CallState,
    /// When its INVITE passed.
    since: Instant,
    touched: Instant,
}

/// A call set up or in progress, as `GET /admin/calls` lists it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CallView {
    /// Its details, as its events carry them.
    #[serde(flatten)]
    pub info: CallInfo,
    /// `calling`, `ringing` or `answered`.
    state: CallState,
    /// Seconds since its INVITE.
    pub seconds: u64,
    /// Who started its recording, while it is recorded (`null` if not).
    pub recording: Option<Starter>,
}

/// Calls older than this without a message are forgotten (a BYE lost with
/// a crashed browser must not hold a shutdown or leak memory).
const STALE: Duration = Duration::from_secs(4 * 3600);

/// Most calls tracked at once, and per connection; beyond, new calls are
/// not tracked (they are still relayed).
const MAX_CALLS: usize = 100_000;
const MAX_CALLS_PER_SESSION: usize = 64;

/// Longest text kept from a message (URIs, Call-ID): dashboards need no
/// more, and memory stays bounded.
const MAX_TEXT: usize = 256;

fn bounded(s: &str) -> String {
    let mut end = s.len().min(MAX_TEXT);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// Who sent a message the tracker sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Sender {
    /// The browser on the session.
    Browser,
    /// The PBX (or, with the embedded PBX, another browser).
    Far,
}

/// Watches INVITE dialogs as their messages pass.
#[derive(Debug, Default)]
pub(crate) struct CallTracker {
    calls: HashMap<String, Call>,
    /// When the next sweep for stale calls is due (none without calls).
    next_sweep: Option<Instant>,
}

/// How often stale calls are looked for.
const SWEEP: Duration = Duration::from_secs(60);

impl CallTracker {
    /// Calls set up or in progress.
    pub fn active(&self) -> usize {
        self.calls.len()
    }

    /// The calls set up or in progress, by Call-ID (their recording left
    /// for the media table to say).
    pub fn list(&self, now: Instant) -> Vec<CallView> {
        let mut calls: Vec<CallView> = self
            .calls
            .values()
            .map(|c| CallView {
                info: c.info.clone(),
                state: c.state,
                seconds: now.as_millis().saturating_sub(c.since.as_millis()) / 1000,
                recording: None,
            })
            .collect();
        calls.sort_by(|a, b| a.info.call_id.cmp(&b.info.call_id));
        calls
    }

    /// Looks at one message relayed for browser connection `session`.
    pub fn observe(
        &mut self,
        now: Instant,
        session: ConnId,
        sender: Sender,
        msg: &Message<'_>,
        out: &mut Vec<AdminEvent>,
    ) {
        let call_id = msg.call_id();
        let cseq = msg.cseq();
        match (msg.method(), msg.status()) {
            (Some(Method::Invite), _) if msg.to().tag().is_none() => {
                let per_session = self
                    .calls
                    .values()
                    .filter(|c| c.info.session == session)
                    .count();
                if self.calls.contains_key(call_id)
                    || self.calls.len() >= MAX_CALLS
                    || per_session >= MAX_CALLS_PER_SESSION
                {
                    return;
                }
                let own = if sender == Sender::Browser {
                    msg.from()
                } else {
                    msg.to()
                };
                let info = CallInfo {
                    session,
                    client: bounded(own.uri_text),
                    call_id: bounded(call_id),
                    caller: bounded(msg.from().uri_text),
                    callee: bounded(msg.to().uri_text),
                };
                out.push(AdminEvent::Calling(info.clone()));
                self.calls.insert(
                    call_id.to_owned(),
                    Call {
                        info,
                        state: CallState::Calling,
                        since: now,
                        touched: now,
                    },
                );
                self.next_sweep.get_or_insert(now + SWEEP);
            }
            (Some(Method::Bye | Method::Cancel), _) => {
                if let Some(call) = self.calls.remove(call_id) {
                    out.push(AdminEvent::Hangup {
                        call: call.info,
                        code: None,
                        reason: reason_text(msg),
                    });
                }
            }
            (None, Some(code)) if cseq.is(Method::Invite) => {
                let Some(call) = self.calls.get_mut(call_id) else {
                    return;
                };
                call.touched = now;
                match code {
                    180 | 183 if call.state == CallState::Calling => {
                        call.state = CallState::Ringing;
                        out.push(AdminEvent::Ringing(call.info.clone()));
                    }
                    200..=299 if call.state != CallState::Answered => {
                        call.state = CallState::Answered;
                        out.push(AdminEvent::Answered(call.info.clone()));
                    }
                    300..=699 if call.state != CallState::Answered => {
                        if let Some(call) = self.calls.remove(call_id) {
                            out.push(AdminEvent::Hangup {
                                call: call.info,
                                code: Some(code),
                                reason: None,
                            });
                        }
                    }
                    _ => {}
                }
            }
            _ => {
                if let Some(call) = self.calls.get_mut(call_id) {
                    call.touched = now;
                }
            }
        }
    }

    /// Registration outcomes, from the 2xx answers to REGISTER: registered
    /// when the answer still lists this connection's binding.
    pub fn observe_register(
        session: ConnId,
        msg: &Message<'_>,
        binding_gone: bool,
        out: &mut Vec<AdminEvent>,
    ) {
        if !msg.cseq().is(Method::Register)
            || !msg.status().is_some_and(|c| (200..300).contains(&c))
        {
            return;
        }
        let client = msg.to().uri_text.to_owned();
        let gone = binding_gone;
        out.push(if gone {
            AdminEvent::Unregistered { session, client }
        } else {
            AdminEvent::Registered { session, client }
        });
    }

    /// A browser went away: its calls end with it, but for those in `kept`
    /// (answered, their media held for the browser to take back on a new
    /// connection): they end when their BYE passes, whoever sends it.
    pub fn connection_closed(
        &mut self,
        session: ConnId,
        kept: &[String],
        out: &mut Vec<AdminEvent>,
    ) {
        let ended: Vec<String> = self
            .calls
            .iter()
            .filter(|(k, c)| c.info.session == session && !kept.contains(k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in ended {
            if let Some(call) = self.calls.remove(&key) {
                out.push(AdminEvent::Hangup {
                    call: call.info,
                    code: None,
                    reason: None,
                });
            }
        }
    }

    /// Call `call_id` goes on on browser connection `session` (the browser
    /// reconnected and took it back).
    pub fn rehome(&mut self, call_id: &str, session: ConnId) {
        if let Some(call) = self.calls.get_mut(call_id) {
            call.info.session = session;
        }
    }

    /// When the next sweep for stale calls is due, for the owner's timer.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.next_sweep
    }

    /// Forgets calls that have been silent for hours (at most once a
    /// minute: a sweep visits every call).
    pub fn expire(&mut self, now: Instant) {
        if self.next_sweep.is_some_and(|t| t <= now) {
            self.calls.retain(|_, c| now - c.touched < STALE);
            self.next_sweep = (!self.calls.is_empty()).then(|| now + SWEEP);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_escaped() {
        let e = AdminEvent::Registered {
            session: ConnId(7),
            client: "sip:a\"b\\c\u{1}@x".into(),
        };
        assert_eq!(
            e.to_json(),
            r#"{"event":"registered","session":7,"client":"sip:a\"b\\c\u0001@x"}"#
        );
        let call = CallInfo {
            session: ConnId(1),
            client: "sip:a@x".into(),
            call_id: "c".into(),
            caller: "sip:a@x".into(),
            callee: "sip:b@x".into(),
        };
        assert_eq!(
            AdminEvent::Hangup {
                call,
                code: Some(486),
                reason: None,
            }
            .to_json(),
            r#"{"event":"hangup","session":1,"client":"sip:a@x","call_id":"c","caller":"sip:a@x","callee":"sip:b@x","code":486}"#
        );
    }
}
