//! Calls seen by their media: SDP handed to the media table and its
//! commands queued for the shell, the dialog learnt for a later BYE, the
//! media given back when the call ends, a reconnected browser's call moved
//! to its new connection (RFC 5626 flow recovery), and a call whose media
//! failed ended with a BYE each way.

use std::net::SocketAddr;

use sipline_core::Instant;
use sipline_core::sip::{HeaderName, Message, Method};

use super::events::Sender;
use super::hangup::{Caller, Dialog};
use super::pending::{self, Pending};
use super::routing::is_own_route;
use super::{LOCAL_PARAM, MAX_DIALOGS, Output, Proxy};
use crate::ids::{ConnId, MediaId};
use crate::media::calls::{Carrier, MediaEnd, MediaError, Side};
use crate::transport::Transport;

impl Proxy {
    /// A browser that reconnected goes on with its calls (RFC 5626 flow
    /// recovery): its first request in a call's dialog from the new
    /// connection (the SDK's re-INVITE) moves the call's media and dialog
    /// to it. Only the browser itself can: the dialog's tags must match and
    /// the request must carry the browser's own `.invalid` Contact, which
    /// the relay never lets out. The old connection may still look open
    /// (a phone that changed network leaves a half-open socket behind).
    pub(super) fn adopt_call(&mut self, conn: ConnId, msg: &Message<'_>) {
        if msg.to().tag().is_none() {
            return;
        }
        let call_id = msg.call_id();
        let Some(media) = self.media.as_mut() else {
            return;
        };
        if media.id(conn, call_id).is_some() {
            return; // already this connection's
        }
        let Some(old) = media.holders(call_id).into_iter().find(|old| {
            self.dialogs
                .get(&(*old, call_id.to_owned()))
                .is_some_and(|d| d.is_browser_request(msg))
        }) else {
            return;
        };
        let key = (old, call_id.to_owned());
        media.rehome(old, conn, call_id);
        if let Some(d) = self.dialogs.remove(&key) {
            self.dialogs.insert((conn, call_id.to_owned()), d);
        }
        if let Some(reason) = self.doomed.remove(&key) {
            self.doomed.insert((conn, call_id.to_owned()), reason);
        }
        self.calls.rehome(call_id, conn);
        tracing::info!(call_id, "call moved to the browser's new connection");
        self.metrics.call_recovered();
    }

    /// Hands a message's SDP to the media table: `Ok(Some(body))` is the
    /// body to forward instead, `Ok(None)` keeps the message's own (no SDP,
    /// or no media carried), `Err` says why the SDP cannot be carried.
    pub(super) fn media_body(
        &mut self,
        conn: ConnId,
        msg: &Message<'_>,
        from: Side,
    ) -> Result<Option<String>, MediaError> {
        let Some(media) = self.media.as_mut() else {
            return Ok(None);
        };
        let call_id = msg.call_id();
        if !is_sdp(msg) {
            if msg.method() == Some(Method::Invite) && msg.body().is_empty() {
                media.offerless(conn, call_id);
            }
            return Ok(None);
        }
        let carrier = match (msg.method(), Method::from_name(msg.cseq().method)) {
            (Some(method), _) => Carrier::Request(method),
            (None, Some(method)) if !msg.is_request() => Carrier::Response(method),
            // No extension method carries an offer or an answer.
            _ => return Ok(None),
        };
        let out = media.sdp(conn, call_id, from, carrier, msg.body());
        media.name_parties(conn, call_id, msg.from().uri_text, msg.to().uri_text);
        if let Err(e) = &out {
            tracing::warn!(call_id, error = %e, "SDP not carried");
            self.metrics.media_refused(e);
        }
        self.flush_media();
        out
    }

    /// Queues the media table's commands for the shell.
    pub(super) fn flush_media(&mut self) {
        if let Some(media) = self.media.as_mut() {
            while let Some(c) = media.poll_command() {
                self.out.push_back(Output::Media(c));
            }
        }
    }

    /// Follows a call's life as its messages pass (`from` sent `msg`;
    /// `pbx` is the PBX on the other end): the dialog is learnt for a
    /// later BYE, the RTP timeout is armed on the answer, and the media is
    /// given back when the call ends.
    pub(super) fn media_lifecycle(
        &mut self,
        now: Instant,
        conn: ConnId,
        msg: &Message<'_>,
        from: Side,
        pbx: SocketAddr,
    ) {
        let Some(media) = self.media.as_mut() else {
            return;
        };
        let key = (conn, msg.call_id().to_owned());
        match (msg.method(), msg.status()) {
            (Some(Method::Invite), _)
                if msg.to().tag().is_none() && self.dialogs.len() < MAX_DIALOGS =>
            {
                let caller = match from {
                    Side::Browser => Caller::Browser,
                    Side::Pbx => Caller::Pbx,
                };
                // A retransmitted INVITE must not reset what was learnt.
                self.dialogs
                    .entry(key)
                    .or_insert_with(|| Dialog::from_invite(msg, caller, Some(pbx)));
            }
            (Some(Method::Bye), _) => {
                media.close(conn, &key.1);
                self.dialogs.remove(&key);
                self.doomed.remove(&key);
            }
            (Some(Method::Ack), _) => {
                if let Some(reason) = self.doomed.remove(&key) {
                    self.hang_up(now, conn, &key.1, reason);
                }
            }
            (Some(_), _) => {
                if let Some(d) = self.dialogs.get_mut(&key) {
                    d.request(msg, from == Side::Browser);
                }
            }
            (None, Some(code)) if msg.cseq().is(Method::Invite) => {
                if (200..300).contains(&code) {
                    media.answered(conn, &key.1);
                    let (sip_addr, ws_host) = (self.cfg.sip_addr, &self.cfg.ws_host);
                    if let Some(d) = self.dialogs.get_mut(&key) {
                        d.answered(msg, |v| is_own_route(v, sip_addr, ws_host).is_some());
                    }
                } else if code >= 300 && !media.is_answered(conn, &key.1) {
                    media.close(conn, &key.1);
                    self.dialogs.remove(&key);
                    self.doomed.remove(&key);
                }
            }
            _ => {}
        }
        self.flush_media();
    }

    /// A call's media ended in the shell without the signalling asking
    /// (RTP timeout, failed DTLS, a socket error): the call is ended with a
    /// BYE each way, at once if it was answered, else once the ACK of its
    /// 2xx passes (a failed INVITE ends it anyway).
    pub fn media_ended(&mut self, now: Instant, id: MediaId, why: MediaEnd) {
        let Some(media) = self.media.as_mut() else {
            return;
        };
        let Some((conn, call_id)) = media.call_of(id) else {
            return; // already closed by the signalling
        };
        self.metrics.media_ended(why);
        tracing::info!(%call_id, reason = why.reason(), "ending the call: its media ended");
        if media.is_answered(conn, &call_id) {
            self.hang_up(now, conn, &call_id, why.reason());
        } else {
            media.close(conn, &call_id);
            self.flush_media();
            let key = (conn, call_id);
            if self.dialogs.contains_key(&key) {
                self.doomed.insert(key, why.reason());
            }
        }
    }

    /// Ends a call with a BYE to each side (with a Reason header) and
    /// gives its media back.
    pub(super) fn hang_up(
        &mut self,
        now: Instant,
        conn: ConnId,
        call_id: &str,
        reason: &'static str,
    ) {
        if let Some(media) = self.media.as_mut() {
            media.close(conn, call_id);
        }
        self.flush_media();
        let key = (conn, call_id.to_owned());
        self.doomed.remove(&key);
        let Some(dialog) = self.dialogs.remove(&key) else {
            return;
        };
        let token = self.key.token(conn);
        let tag = self
            .key
            .digest(&[b"bye|", token.as_bytes(), b"|", call_id.as_bytes()]);
        let browser_via = format!(
            "SIP/2.0/WSS {};branch=z9hG4bK{tag};{LOCAL_PARAM}",
            self.cfg.ws_host
        );
        let pbx_via = format!(
            "SIP/2.0/{} {};branch=z9hG4bK{tag};rport;sl={token}",
            dialog.pbx.map_or(Transport::Udp, |p| self.transport_to(p)),
            self.cfg.sip_addr
        );
        let Some(byes) = dialog.byes(&browser_via, &pbx_via, reason) else {
            return;
        };
        if let Ok(bye) = Message::parse(&byes.to_pbx) {
            self.calls
                .observe(now, conn, Sender::Browser, &bye, &mut self.events);
            self.metrics.count_out(&bye);
        }
        if self.conns.contains_key(&conn) {
            self.ws(conn, byes.to_browser);
        }
        let Some(pbx) = dialog.pbx else {
            return; // the echo extension: the relay was the far end
        };
        let pending_key = pending::key(&byes.pbx_branch, Method::Bye.as_str());
        let p = Pending::local(now, conn, pbx, Method::Bye, byes.to_pbx.clone(), &self.cfg);
        self.deadlines
            .insert((p.next_deadline(), pending_key.clone()));
        self.pending.insert(pending_key, p);
        self.send_pbx(pbx, byes.to_pbx);
    }
}

/// The body to forward: the rewritten SDP, else the message's own.
pub(super) fn body_of<'m>(msg: &'m Message<'_>, rewritten: &'m Option<String>) -> &'m [u8] {
    rewritten.as_deref().map_or(msg.body(), str::as_bytes)
}

/// Whether a message carries SDP (RFC 3264): `application/sdp`, with or
/// without parameters.
pub(super) fn is_sdp(msg: &Message<'_>) -> bool {
    !msg.body().is_empty()
        && msg.header(HeaderName::ContentType).is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"))
        })
}
