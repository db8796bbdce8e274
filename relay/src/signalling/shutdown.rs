//! A graceful stop: every call still up when the operator's grace is over
//! is ended as a proxy would end it, so that no side is left waiting for
//! media that will never come. Answered calls get a BYE each way with a
//! `Reason` (RFC 3326); calls still ringing toward the PBX are cancelled
//! (RFC 3261 §9.1), and the PBX's `487` reaches the browser as usual.

use sipline_core::Instant;
use sipline_core::sip::{HeaderName, Message, MessageBuilder, Method};

use super::Proxy;
use super::pending::{self, Pending};

/// The Reason text of the BYEs and CANCELs a stopping relay sends.
pub const SHUTTING_DOWN: &str = "Relay shutting down";

impl Proxy {
    /// Ends every call in progress (see the module's text); returns how
    /// many were ended. The messages are in [`Proxy::poll_output`].
    pub fn shut_down(&mut self, now: Instant) -> usize {
        let mut ended = 0;
        let keys: Vec<_> = self.dialogs.keys().cloned().collect();
        for key in keys {
            let answered = self
                .media
                .as_ref()
                .is_some_and(|m| m.is_answered(key.0, &key.1));
            if answered {
                self.hang_up(now, key.0, &key.1, SHUTTING_DOWN);
                ended += 1;
                continue;
            }
            let Some((to, cancel)) = self.dialogs.get_mut(&key).and_then(|d| d.cancel.take())
            else {
                continue;
            };
            let Ok(msg) = Message::parse(&cancel) else {
                continue;
            };
            let branch = msg.via().branch().unwrap_or_default();
            let p = Pending::local(now, key.0, to, Method::Cancel, cancel.clone(), &self.cfg);
            let cancel_key = pending::key(branch, Method::Cancel.as_str());
            self.deadlines
                .insert((p.next_deadline(), cancel_key.clone()));
            self.pending.insert(cancel_key, p);
            self.send_pbx(to, cancel);
            ended += 1;
        }
        ended
    }
}

/// The CANCEL of an INVITE the relay forwarded (RFC 3261 §9.1): its
/// Request-URI, top Via, Route set, From, To, Call-ID and CSeq number.
pub(super) fn cancel_of(invite: &[u8]) -> Option<Vec<u8>> {
    let msg = Message::parse(invite).ok()?;
    let mut b = MessageBuilder::request(Method::Cancel, msg.request_uri()?);
    b.header("Via", msg.header_values(HeaderName::Via).next()?)
        .header("Max-Forwards", "70");
    for route in msg.header_lines(HeaderName::Route) {
        b.header("Route", route);
    }
    b.header("From", msg.header(HeaderName::From)?)
        .header("To", msg.header(HeaderName::To)?)
        .header("Call-ID", msg.call_id())
        .header_parts("CSeq", &[&msg.cseq().seq.to_string(), " CANCEL"])
        .header_parts("Reason", &["SIP;cause=503;text=\"", SHUTTING_DOWN, "\""]);
    Some(b.finish(None, b""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cancel_copies_what_rfc_3261_says() {
        let invite = b"INVITE sip:bob@10.0.0.5 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bKr1;rport, SIP/2.0/WSS x.invalid;branch=z9hG4bKb1\r\n\
Route: <sip:10.0.0.5;lr>\r\nMax-Forwards: 69\r\nTo: <sip:bob@pbx>\r\nFrom: <sip:alice@pbx>;tag=a1\r\n\
Call-ID: c1\r\nCSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n";
        let cancel = cancel_of(invite).expect("a CANCEL");
        let m = Message::parse(&cancel).expect("it parses");
        assert_eq!(m.method(), Some(Method::Cancel));
        assert_eq!(m.request_uri(), Some("sip:bob@10.0.0.5"));
        assert_eq!(m.header_values(HeaderName::Via).count(), 1);
        assert_eq!(m.via().branch(), Some("z9hG4bKr1"));
        assert_eq!(m.header(HeaderName::Route), Some("<sip:10.0.0.5;lr>"));
        assert_eq!((m.cseq().seq, m.cseq().method), (7, "CANCEL"));
        assert_eq!(m.from().tag(), Some("a1"));
        assert!(m.to().tag().is_none());
    }
}
