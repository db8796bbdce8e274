//! The core's events as the JSON records JavaScript reads:
//! `["name", { detail }]`, the detail's fields named as the npm package's
//! events name them. The SDP a media step needs rides along as `sdp` (the
//! package's engine applies it and takes it off before the app sees the
//! event).

use sipline_core::Event;
use sipline_core::status::Status;

use crate::json::Json;
use crate::prelude::*;

/// `event` as its record.
pub(crate) fn record(event: Event) -> String {
    let mut j = Json::new();
    j.open_list(None).str(None, event.name()).open(None);
    match event {
        Event::Registering | Event::Unregistering | Event::KeepAliveTimeout => {}
        Event::Registered { expires } => {
            j.num("expires", expires.into());
        }
        Event::RegistrationFailed {
            code,
            reason,
            retry_in,
        } => {
            j.num("code", code.into()).str(Some("reason"), &reason);
            j.opt_num(
                "retryInMs",
                retry_in.map(|d| d.as_secs() * 1000 + u64::from(d.subsec_millis())),
            );
        }
        Event::Unregistered { code, reason } => {
            j.opt_num("code", code.map(u64::from))
                .str(Some("reason"), &reason);
        }
        Event::Incoming {
            call,
            from,
            display_name,
            sdp,
            headers,
            replaces,
        } => {
            j.num("call", call.0.into())
                .str(Some("from"), &from)
                .opt_str("displayName", display_name.as_deref())
                .bool("hasOffer", sdp.is_some())
                .opt_str("sdp", sdp.as_deref())
                .opt_num("replaces", replaces.map(|c| c.0.into()));
            header_object(&mut j, &headers);
        }
        Event::Calling { call, target } => {
            j.num("call", call.0.into()).str(Some("to"), &target);
        }
        Event::Ringing { call } => {
            j.num("call", call.0.into());
        }
        Event::Progress { call, sdp }
        | Event::Accepted { call, sdp }
        | Event::Updated { call, sdp }
        | Event::Recovered { call, sdp } => {
            j.num("call", call.0.into()).str(Some("sdp"), &sdp);
        }
        Event::Updating { call, sdp } => {
            j.num("call", call.0.into()).opt_str("sdp", sdp.as_deref());
        }
        Event::CandidatesNeeded { call, trickle } => {
            j.num("call", call.0.into()).bool("trickle", trickle);
        }
        Event::RemoteCandidates {
            call,
            candidates,
            end,
        } => {
            j.num("call", call.0.into()).bool("end", end);
            j.open_list(Some("candidates"));
            for c in &candidates {
                j.open(None)
                    .str(Some("candidate"), &c.candidate)
                    .opt_str("mid", c.mid.as_deref())
                    .num("index", c.index as u64)
                    .close();
            }
            j.close_list();
        }
        Event::Hold { call, held, by } => {
            j.num("call", call.0.into())
                .bool("held", held)
                .str(Some("by"), by.as_str());
        }
        Event::UpdateFailed { call, code, reason } => {
            j.num("call", call.0.into())
                .num("code", code.into())
                .str(Some("reason"), &reason);
        }
        Event::Dtmf {
            call,
            digit,
            duration_ms,
        } => {
            j.num("call", call.0.into())
                .str(Some("digit"), digit.encode_utf8(&mut [0; 4]))
                .num("durationMs", duration_ms.into());
        }
        Event::Message {
            call,
            from,
            content_type,
            body,
            headers,
        } => {
            j.opt_num("call", call.map(|c| c.0.into()))
                .str(Some("from"), &from)
                .str(Some("contentType"), &content_type)
                .str(Some("body"), &body);
            header_object(&mut j, &headers);
        }
        Event::Transfer {
            call,
            code,
            reason,
            done,
        } => {
            j.num("call", call.0.into())
                .num("code", code.into())
                .str(Some("reason"), &reason)
                .bool("done", done);
        }
        Event::Referred {
            call,
            target,
            referred_by,
            attended,
        } => {
            j.num("call", call.0.into())
                .str(Some("target"), &target)
                .opt_str("referredBy", referred_by.as_deref())
                .bool("attended", attended);
        }
        Event::Replaced { call, by } => {
            j.num("call", call.0.into()).num("by", by.0.into());
        }
        Event::Info {
            call,
            content_type,
            body,
            headers,
        } => {
            j.num("call", call.0.into())
                .str(Some("contentType"), &content_type)
                .str(Some("body"), &body);
            header_object(&mut j, &headers);
        }
        Event::InfoAnswered {
            call,
            id,
            code,
            reason,
        } => {
            j.num("call", call.0.into())
                .num("id", id.0.into())
                .num("code", code.into())
                .str(Some("reason"), &reason);
        }
        Event::Recording {
            call,
            id,
            state,
            code,
            reason,
        } => {
            j.num("call", call.0.into())
                .num("id", id.0.into())
                .str(Some("state"), state.as_str())
                .num("code", code.into())
                .str(Some("reason"), &reason);
        }
        Event::SubscriptionActive {
            subscription,
            expires,
        } => {
            j.num("subscription", subscription.0.into())
                .num("expires", expires.into());
        }
        Event::Notify {
            subscription,
            state,
            content_type,
            body,
            status,
        } => {
            j.num("subscription", subscription.0.into())
                .str(Some("state"), &state)
                .str(Some("contentType"), &content_type)
                .str(Some("body"), &body);
            if let Some(status) = status {
                status_object(&mut j, status);
            }
        }
        Event::SubscriptionEnded {
            subscription,
            code,
            reason,
        } => {
            j.num("subscription", subscription.0.into())
                .opt_num("code", code.map(u64::from))
                .str(Some("reason"), &reason);
        }
        Event::MessageSent { id } => {
            j.num("id", id.0.into());
        }
        Event::MessageFailed { id, code, reason } => {
            j.num("id", id.0.into())
                .num("code", code.into())
                .str(Some("reason"), &reason);
        }
        Event::Hangup { call, code, reason } => {
            j.num("call", call.0.into())
                .opt_num("code", code.map(u64::from))
                .str(Some("reason"), &reason);
        }
    }
    j.close().close_list();
    j.finish()
}

/// The headers an incoming request carried for the app, as `headers: {}`.
fn header_object(j: &mut Json, headers: &[(String, String)]) {
    j.open(Some("headers"));
    for (name, value) in headers {
        j.str(Some(name), value);
    }
    j.close();
}

/// A NOTIFY's parsed body as `status: { kind, … }`: a lamp, a voicemail
/// summary or presence (the core parsed it; this only spells it out).
fn status_object(j: &mut Json, status: Status) {
    j.open(Some("status"));
    match status {
        Status::DialogInfo(d) => {
            j.str(Some("kind"), "dialog")
                .str(Some("entity"), &d.entity)
                .str(Some("lamp"), d.lamp.as_str())
                .opt_str(
                    "direction",
                    d.initiator.map(|i| if i { "outgoing" } else { "incoming" }),
                )
                .opt_str("other", d.other.as_deref())
                .bool("full", d.full);
        }
        Status::MessageSummary(s) => {
            j.str(Some("kind"), "message-summary")
                .bool("waiting", s.waiting)
                .opt_str("account", s.account.as_deref());
            j.open_list(Some("counts"));
            for c in &s.counts {
                j.open(None)
                    .str(Some("class"), &c.class)
                    .num("new", c.new.into())
                    .num("old", c.old.into())
                    .num("urgentNew", c.urgent_new.into())
                    .num("urgentOld", c.urgent_old.into())
                    .close();
            }
            j.close_list();
        }
        Status::Presence(p) => {
            j.str(Some("kind"), "presence")
                .str(Some("entity"), &p.entity)
                .bool("open", p.open)
                .opt_str("note", p.note.as_deref());
        }
    }
    j.close();
}

#[cfg(test)]
mod tests {
    use super::*;
    use sipline_core::{CallId, RemoteCandidate};

    #[test]
    fn events_become_named_records() {
        assert_eq!(record(Event::Registering), r#"["registering",{}]"#);
        let incoming = Event::Incoming {
            call: CallId(3),
            from: "sip:bob@x".into(),
            display_name: None,
            sdp: Some("v=0\r\n".into()),
            headers: vec![("X-Crm".into(), "42".into())],
            replaces: None,
        };
        assert_eq!(
            record(incoming),
            r#"["incoming",{"call":3,"from":"sip:bob@x","hasOffer":true,"sdp":"v=0\u000d\u000a","headers":{"X-Crm":"42"}}]"#
        );
        let candidates = Event::RemoteCandidates {
            call: CallId(1),
            candidates: vec![RemoteCandidate {
                candidate: "candidate:1 1 udp 1 10.0.0.1 9 typ host".into(),
                mid: Some("0".into()),
                index: 0,
            }],
            end: true,
        };
        assert_eq!(
            record(candidates),
            r#"["remote_candidates",{"call":1,"end":true,"candidates":[{"candidate":"candidate:1 1 udp 1 10.0.0.1 9 typ host","mid":"0","index":0}]}]"#
        );
        let failed = Event::RegistrationFailed {
            code: 503,
            reason: "Service Unavailable".into(),
            retry_in: Some(core::time::Duration::from_millis(1500)),
        };
        assert_eq!(
            record(failed),
            r#"["registration_failed",{"code":503,"reason":"Service Unavailable","retryInMs":1500}]"#
        );
    }
}
