//! The relay as the PBX (no PBX behind it): REGISTER goes to the embedded
//! registrar, a new call is admitted by it and routed to the callee's
//! WebSocket or to the echo extension, and in-dialog requests follow the
//! flow tokens of our Record-Route, only between the dialog's two browsers.
//! The registrar, its credentials and its dial plan are in [`super::pbx`].

use sipline_core::Instant;
use sipline_core::sip::{HeaderName, Message, Method, response_to};

use super::call_media::is_sdp;
use super::edit::{Action, rewrite};
use super::events::{AdminEvent, Sender};
use super::hangup::{Caller, Dialog};
use super::pbx::{self, ECHO_EXTENSION, RegisterOutcome, Route};
use super::routing::{HopEdits, needs_record_route, with_max_forwards};
use super::{MAX_DIALOGS, Proxy};
use crate::ids::ConnId;
use crate::ops::metrics::Reject;

impl Proxy {
    /// A browser request when the relay is the PBX: in-dialog requests
    /// follow the flow token of our Record-Route; REGISTER goes to the
    /// registrar; anything else is admitted (RFC 3261 §22.3) and routed to
    /// the callee's WebSocket.
    pub(super) fn embedded_request(
        &mut self,
        now: Instant,
        conn: ConnId,
        msg: &Message<'_>,
        hops: u32,
    ) {
        if msg.method() == Some(Method::Subscribe) && msg.to().tag().is_some() {
            // A refresh or end of one of the presence server's
            // subscriptions (its Contact is the relay; no Route).
            self.presence_subscribe(now, conn, msg);
            return;
        }
        let own: Vec<Option<String>> = msg
            .header_values(HeaderName::Route)
            .take(2)
            .map_while(|v| self.own_route(v))
            .collect();
        let mut parties: Vec<ConnId> = own
            .iter()
            .filter_map(|t| t.as_deref().and_then(|t| self.key.verify(t).ok()))
            .map(|c| self.successor(c))
            .collect();
        if parties.len() == 2 && !parties.contains(&conn) && msg.to().tag().is_some() {
            // A browser that reconnected, in a dialog of its old connection:
            // the route set (whose tokens only the dialog's two browsers
            // saw) names its gone connection and its live peer. The new
            // connection takes the gone one's place for this and later
            // requests both ways.
            let gone: Vec<ConnId> = parties
                .iter()
                .copied()
                .filter(|p| !self.conns.contains_key(p))
                .collect();
            if let [old] = gone[..] {
                if self.successors.len() >= MAX_DIALOGS {
                    self.successors.clear();
                }
                self.successors.insert(old, conn);
                for p in &mut parties {
                    if *p == old {
                        *p = conn;
                    }
                }
                self.metrics.call_recovered();
                tracing::info!(
                    call_id = msg.call_id(),
                    "dialog moved to the browser's new connection"
                );
            }
        }
        if !parties.is_empty() {
            // In-dialog only, and only between the dialog's two parties:
            // a token seen in an earlier call must not let anyone reach
            // that browser without the PBX's admission (RFC 5658: of our
            // two entries, the one that is not the sender names the peer).
            let target = parties.iter().copied().find(|p| *p != conn);
            let in_dialog = msg.to().tag().is_some() && parties.contains(&conn);
            match target.filter(|c| in_dialog && self.conns.contains_key(c)) {
                Some(to) => self.forward_ws(now, conn, to, msg, None, own.len(), None, hops),
                None => {
                    self.metrics.reject(Reject::FlowGone);
                    self.reply_ws(conn, msg, 430, "Flow Failed");
                }
            }
            return;
        }
        // A Route naming the relay without a token (a preloaded outbound
        // proxy) is popped; the request is then an initial one.
        let preloaded = own.len();
        let key = &self.key;
        let Some(pbx) = self.pbx.as_mut() else { return };
        if msg.method() == Some(Method::Register) {
            let ice_lite = self.media.is_some();
            let (resp, outcome) = pbx.register(key, now, conn, msg, ice_lite);
            match outcome {
                RegisterOutcome::Registered(client) => self.events.push(AdminEvent::Registered {
                    session: conn,
                    client,
                }),
                RegisterOutcome::Unregistered(client) => {
                    self.events.push(AdminEvent::Unregistered {
                        session: conn,
                        client,
                    })
                }
                RegisterOutcome::Refused => {}
            }
            self.metrics.local_response();
            self.ws(conn, resp);
            return;
        }
        if let Some(refusal) = pbx.admit(key, now, conn, msg) {
            self.metrics.local_response();
            self.ws(conn, refusal);
            return;
        }
        if msg.method() == Some(Method::Subscribe) {
            self.presence_subscribe(now, conn, msg);
            return;
        }
        match pbx.route(now, msg) {
            Route::Echo => self.echo_request(now, conn, msg),
            Route::Reply { code, reason } => {
                if msg.method() != Some(Method::Ack) {
                    self.metrics.local_response();
                    self.ws(conn, pbx::reply(msg, code, reason));
                }
            }
            Route::Browser { conn: to, uri } => {
                let record_route = needs_record_route(msg).then(|| {
                    let host = &self.cfg.ws_host;
                    format!(
                        "<sip:{}@{host};transport=ws;lr;r2=on>, <sip:{}@{host};transport=ws;lr;r2=on>",
                        self.key.token(to),
                        self.key.token(conn)
                    )
                });
                self.forward_ws(
                    now,
                    conn,
                    to,
                    msg,
                    Some(&uri),
                    preloaded,
                    record_route,
                    hops,
                );
            }
        }
    }

    /// A SUBSCRIBE for the presence server: its answer and NOTIFY.
    fn presence_subscribe(&mut self, now: Instant, conn: ConnId, msg: &Message<'_>) {
        let (Some(presence), Some(pbx)) = (self.presence.as_mut(), self.pbx.as_ref()) else {
            return;
        };
        let frames = presence.subscribe(now, conn, msg, |user| pbx.knows(user));
        self.metrics.local_response();
        for (to, frame) in frames {
            self.ws(to, frame);
        }
    }

    /// The echo extension: an INVITE (or re-INVITE) is answered at once
    /// with the browser's own media coming back; BYE ends it. Its
    /// in-dialog requests come back here by its Contact.
    pub(super) fn echo_request(&mut self, now: Instant, conn: ConnId, msg: &Message<'_>) {
        let call_id = msg.call_id();
        match msg.method() {
            Some(Method::Invite | Method::Update) => {
                let answer = match self.media.as_mut() {
                    None => Err((480, "Echo Needs Media")),
                    Some(_) if !is_sdp(msg) => Err((488, "Echo Needs An Offer")),
                    Some(media) => {
                        let answer = media.echo(conn, call_id, msg.body());
                        media.name_parties(conn, call_id, msg.from().uri_text, msg.to().uri_text);
                        answer.map_err(|e| {
                            tracing::warn!(call_id, error = %e, "echo call refused");
                            self.metrics.media_refused(&e);
                            e.status()
                        })
                    }
                };
                self.flush_media();
                self.calls
                    .observe(now, conn, Sender::Browser, msg, &mut self.events);
                let response = match answer {
                    Ok(sdp) => {
                        let mut b = response_to(msg, 200, "OK", Some("echo"));
                        b.header(
                            "Contact",
                            &format!("<sip:{ECHO_EXTENSION}@{};transport=ws>", self.cfg.ws_host),
                        );
                        b.finish(Some("application/sdp"), sdp.as_bytes())
                    }
                    Err((code, reason)) => {
                        response_to(msg, code, reason, Some("echo")).finish(None, b"")
                    }
                };
                if let Ok(answer) = Message::parse(&response) {
                    self.calls
                        .observe(now, conn, Sender::Far, &answer, &mut self.events);
                    // The dialog, so that a dead echo call is hung up too.
                    let key = (conn, call_id.to_owned());
                    let initial = msg.to().tag().is_none() && answer.status() == Some(200);
                    if initial && self.dialogs.len() < MAX_DIALOGS {
                        let mut dialog = Dialog::from_invite(msg, Caller::Browser, None);
                        dialog.answered(&answer, |_| false);
                        self.dialogs.insert(key, dialog);
                    }
                }
                self.metrics.local_response();
                self.ws(conn, response);
            }
            Some(Method::Ack) => {}
            Some(Method::Bye) => {
                if let Some(media) = self.media.as_mut() {
                    media.close(conn, call_id);
                }
                self.dialogs.remove(&(conn, call_id.to_owned()));
                self.flush_media();
                self.calls
                    .observe(now, conn, Sender::Browser, msg, &mut self.events);
                self.reply_ws(conn, msg, 200, "OK");
            }
            Some(Method::Options | Method::Info) => self.reply_ws(conn, msg, 200, "OK"),
            _ => self.reply_ws(conn, msg, 405, "Method Not Allowed"),
        }
    }

    /// Sends a browser's request to another browser: our Via (naming the
    /// sender, so the answer finds its way back), our Route entries popped,
    /// Max-Forwards decremented.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn forward_ws(
        &mut self,
        now: Instant,
        from: ConnId,
        to: ConnId,
        msg: &Message<'_>,
        uri: Option<&str>,
        routes_to_pop: usize,
        record_route: Option<String>,
        hops: u32,
    ) {
        let from_token = self.key.token(from);
        let branch = self.branch(&from_token, msg.via().branch().unwrap_or_default());
        // The answer must come from `to` and go back to `from`: both are
        // bound to this branch by a MAC, so a Via copied from one call
        // cannot send responses anywhere else.
        let seal = self.response_seal(&from_token, to, &branch);
        let via = format!(
            "SIP/2.0/WSS {};branch={branch};sl={from_token};sr={seal}",
            self.cfg.ws_host
        );
        let mut top: Vec<(&str, &str)> = vec![("Via", &via)];
        if let Some(rr) = &record_route {
            top.push(("Record-Route", rr));
        }
        let mut hop = HopEdits::new(hops, routes_to_pop);
        let frame = rewrite(msg, uri, &top, |h| {
            // Credentials were for the relay's own PBX: consumed here, never
            // shown to the callee (RFC 3261 §22.3).
            let credentials = matches!(
                h.name,
                HeaderName::Authorization | HeaderName::ProxyAuthorization
            );
            hop.apply(h).unwrap_or(if credentials {
                Action::Drop
            } else {
                Action::Keep
            })
        });
        let frame = with_max_forwards(msg, frame);
        self.calls
            .observe(now, from, Sender::Browser, msg, &mut self.events);
        self.metrics.count_out(msg);
        self.ws(to, frame);
    }

    /// The MAC that binds a browser-to-browser Via to its sender, its
    /// recipient and its branch.
    pub(super) fn response_seal(
        &self,
        sender_token: &str,
        recipient: ConnId,
        branch: &str,
    ) -> String {
        let recipient = self.key.token(recipient);
        self.key.digest(&[
            b"resp|",
            sender_token.as_bytes(),
            b"|",
            recipient.as_bytes(),
            b"|",
            branch.as_bytes(),
        ])
    }

    /// The connection that now stands for `conn` (itself, unless a browser
    /// reconnected and took its dialogs over, perhaps more than once).
    pub(super) fn successor(&self, mut conn: ConnId) -> ConnId {
        for _ in 0..8 {
            match self.successors.get(&conn) {
                Some(next) => conn = *next,
                None => break,
            }
        }
        conn
    }
}
