//! What a browser sends toward the PBX (RFC 3261 §16, RFC 5626, RFC
//! 5658): requests checked (Max-Forwards, Request-URI size, Contacts),
//! given our Via and, when they start a dialog, our double Record-Route,
//! their Contacts rewritten onto the relay with a flow token, their SDP
//! handed to the media table; the relay's own `100 Trying` for an INVITE.
//! Responses lose our Via and go to the PBX the Via below names. Always a
//! configured PBX, whatever the message says: never an open relay.

use sipline_core::Instant;
use sipline_core::sip::{Header, HeaderName, Message, Method, Via, response_to};

use super::call_media::body_of;
use super::connections::MAX_LARGE;
use super::contacts::contacts_sound;
use super::edit::{Action, rewrite, rewrite_body, without_first, without_trickle_ice};
use super::events::Sender;
use super::pending::{self, Pending};
use super::recording::RECORD;
use super::routing::{
    Destination, HopEdits, is_asserted_identity, needs_record_route, via_address, with_max_forwards,
};
use super::{LARGE_OVER_UDP, LOCAL_PARAM, Proxy, shutdown};
use crate::ids::ConnId;
use crate::media::calls::Side;
use crate::ops::metrics::Reject;
use crate::transport::Transport;

/// Whether the Request-URI is a `sips:` one.
fn is_sips(msg: &Message<'_>) -> bool {
    msg.request_uri()
        .and_then(|u| u.get(..5))
        .is_some_and(|s| s.eq_ignore_ascii_case("sips:"))
}

/// The largest UDP datagram (IPv4's payload bound): a message that grows
/// past it when the relay adds its headers gets `513` instead (over TCP
/// and TLS too: no PBX takes a bigger one).
pub(super) const MAX_DATAGRAM: usize = 65_507;

/// The longest Request-URI accepted (`414` beyond): real ones are a few
/// dozen bytes, and one UDP datagram must hold the whole message.
pub(super) const MAX_REQUEST_URI: usize = 4096;

/// Requests one connection may have in flight toward the PBX: one browser
/// must not fill the relay's table for everyone.
pub(super) const MAX_PENDING_PER_CONN: usize = 64;

impl Proxy {
    pub(super) fn browser_request(
        &mut self,
        now: Instant,
        conn: ConnId,
        msg: &Message<'_>,
        raw: &[u8],
    ) {
        let method = msg.method_name().unwrap_or_default();
        let Some(hops) = self.check_max_forwards(msg) else {
            self.reply_ws(conn, msg, 483, "Too Many Hops");
            return;
        };
        if msg.request_uri().is_some_and(|u| u.len() > MAX_REQUEST_URI) {
            self.metrics.reject(Reject::Malformed);
            self.reply_ws(conn, msg, 414, "Request-URI Too Long");
            return;
        }
        if msg.method() == Some(Method::Info) && msg.header(RECORD).is_some() {
            self.record_request(conn, msg);
            return;
        }
        if self.pbx.is_some() {
            self.embedded_request(now, conn, msg, hops);
            return;
        }
        let Some(Destination { addr: pbx, chosen }) = self.destination(now, conn, msg) else {
            // Only before a PBX named by DNS was first found.
            self.reply_ws(conn, msg, 503, "No PBX Available");
            return;
        };
        let is_ack = msg.method() == Some(Method::Ack);
        if !is_ack && is_sips(msg) && self.transport_to(pbx) != Transport::Tls {
            // RFC 3261 §26.2.2: a SIPS request goes over TLS on every hop.
            self.reply_ws(conn, msg, 416, "SIPS Needs TLS Toward The PBX");
            return;
        }
        if !contacts_sound(msg) {
            self.reply_ws(conn, msg, 400, "Malformed Contact");
            return;
        }
        let in_flight = self.conns.get(&conn).map_or(0, |c| c.in_flight);
        if !is_ack
            && (self.pending.len() >= self.cfg.max_pending || in_flight >= MAX_PENDING_PER_CONN)
        {
            self.metrics.reject(Reject::Overload);
            self.reply_ws(conn, msg, 503, "Relay Overloaded");
            return;
        }
        self.adopt_call(conn, msg);
        let had_media = self
            .media
            .as_ref()
            .is_some_and(|m| m.id(conn, msg.call_id()).is_some());
        let body = match self.media_body(conn, msg, Side::Browser) {
            Ok(body) => body,
            Err(e) if !is_ack => {
                let (code, reason) = e.status();
                self.reply_ws(conn, msg, code, reason);
                return;
            }
            // An ACK cannot be refused: its unusable answer is left out.
            Err(_) => Some(String::new()),
        };
        let token = self.key.token(conn);
        let browser_branch = msg.via().branch().unwrap_or_default();
        let branch = self.branch(&token, browser_branch);
        let body = body_of(msg, &body);
        // A CANCEL or ACK goes the way its INVITE went (same branch).
        let follows_large = matches!(msg.method(), Some(Method::Cancel | Method::Ack))
            && self
                .conns
                .get(&conn)
                .is_some_and(|c| c.large.contains(&branch));
        let transport = match self.transport_to(pbx) {
            Transport::Udp if follows_large => Transport::Tcp,
            t => t,
        };
        let (mut datagram, mut rewritten) =
            self.toward_pbx(msg, (&token, &branch, transport), hops, body);
        if transport == Transport::Udp && self.cfg.large_over_tcp && datagram.len() > LARGE_OVER_UDP
        {
            // RFC 3261 §18.1.1: too big for UDP without a known path MTU.
            (datagram, rewritten) =
                self.toward_pbx(msg, (&token, &branch, Transport::Tcp), hops, body);
            if msg.method() == Some(Method::Invite)
                && let Some(c) = self.conns.get_mut(&conn)
            {
                c.large.push_back(branch.clone());
                if c.large.len() > MAX_LARGE {
                    c.large.pop_front();
                }
            }
        }
        if datagram.len() > MAX_DATAGRAM {
            // Grown past one datagram by our Via, Record-Route and Contact:
            // refused, and a call it would have started gives its ports back.
            if let Some(media) = self.media.as_mut().filter(|_| !had_media) {
                media.close(conn, msg.call_id());
                self.flush_media();
            }
            self.metrics.reject(Reject::Malformed);
            self.reply_ws(conn, msg, 513, "Message Too Large");
            return;
        }
        self.remember_contacts(conn, rewritten);
        self.calls
            .observe(now, conn, Sender::Browser, msg, &mut self.events);
        if !is_ack {
            let key = pending::key(&branch, method);
            let mut p = Pending::new(
                now,
                conn,
                pbx,
                method,
                datagram.clone(),
                raw.to_vec(),
                &self.cfg,
            );
            if chosen && self.pbxs.active() > 1 {
                p = p.may_fail_over(now, &self.cfg);
            }
            // A repeated request replaces its earlier entry.
            self.take_pending(&key);
            self.deadlines.insert((p.next_deadline(), key.clone()));
            self.pending.insert(key, p);
            if let Some(c) = self.conns.get_mut(&conn) {
                c.in_flight += 1;
            }
        }
        self.metrics.count_out(msg);
        let is_invite = msg.method() == Some(Method::Invite);
        let cancel = (is_invite && msg.to().tag().is_none())
            .then(|| shutdown::cancel_of(&datagram))
            .flatten();
        self.send_pbx(pbx, datagram);
        if is_invite {
            // A stateful proxy answers an INVITE `100 Trying` itself (RFC
            // 3261 §16.2): the browser may CANCEL from then on (§9.1), and
            // the PBX's own 100 stops here (§16.7).
            self.metrics.local_response();
            self.ws(
                conn,
                response_to(msg, 100, "Trying", None).finish(None, b""),
            );
        }
        self.media_lifecycle(now, conn, msg, Side::Browser, pbx);
        if let Some(cancel) = cancel
            && let Some(d) = self.dialogs.get_mut(&(conn, msg.call_id().to_owned()))
        {
            d.cancel = Some((pbx, cancel));
        }
    }

    /// A browser's request as it goes to the PBX over `transport`: our Via
    /// and, when it starts a dialog, our Record-Route, naming the
    /// transport; its Contacts rewritten onto the relay (returned, to be
    /// remembered); the per-hop edits; `body`.
    fn toward_pbx(
        &self,
        msg: &Message<'_>,
        (token, branch, transport): (&str, &str, Transport),
        hops: u32,
        body: &[u8],
    ) -> (Vec<u8>, Vec<(String, String)>) {
        // Over TCP and TLS, `alias` (RFC 5923) asks the PBX to send its
        // requests back on this connection.
        let alias = if transport.reliable() { ";alias" } else { "" };
        let via = format!(
            "SIP/2.0/{transport} {};branch={branch};rport{alias};sl={token}",
            self.cfg.sip_addr
        );
        let sips = is_sips(msg);
        let (scheme, param) = transport.own_uri(sips);
        let record_route = needs_record_route(msg).then(|| {
            format!(
                "<{scheme}:{}{param};lr;r2=on>, <sip:{token}@{};transport=ws;lr;r2=on>",
                self.cfg.sip_addr, self.cfg.ws_host
            )
        });
        let mut top: Vec<(&str, &str)> = vec![("Via", &via)];
        if let Some(rr) = &record_route {
            top.push(("Record-Route", rr));
        }
        let mut hop = HopEdits::new(hops, self.leading_own_routes(msg));
        let mut rewritten = Vec::new();
        let anchored = self.media.is_some();
        let edit = |h: &Header<'_>| {
            hop.apply(h).unwrap_or_else(|| match h.name {
                HeaderName::Contact => {
                    self.rewrite_contacts(h, (token, transport, sips), &mut rewritten)
                }
                ref n if is_asserted_identity(n) => Action::Drop,
                _ => without_trickle_ice(h, anchored),
            })
        };
        let message = rewrite_body(msg, None, &top, edit, body);
        (with_max_forwards(msg, message), rewritten)
    }

    pub(super) fn browser_response(&mut self, now: Instant, conn: ConnId, msg: &Message<'_>) {
        if msg.via().params.value(LOCAL_PARAM).is_some() {
            return; // the answer to a BYE the relay sent: nothing to relay
        }
        // Between two browsers (embedded PBX), our Via names the sender.
        let top = msg.via();
        if self.pbx.is_some()
            && top.host.eq_ignore_ascii_case(&self.cfg.ws_host)
            && let Some(token) = top.params.value("sl")
        {
            let branch = top.branch().unwrap_or_default();
            let sealed = top
                .params
                .value("sr")
                .is_some_and(|sr| sr == self.response_seal(token, conn, branch));
            match self.key.verify(token) {
                Ok(to) if sealed && self.conns.contains_key(&to) => {
                    let mut popped = false;
                    let frame = rewrite(msg, None, &[], |h| match h.name {
                        HeaderName::Via if !popped => {
                            popped = true;
                            without_first(h.value, 1).map_or(Action::Drop, Action::Replace)
                        }
                        _ => Action::Keep,
                    });
                    self.calls
                        .observe(now, conn, Sender::Browser, msg, &mut self.events);
                    self.metrics.count_out(msg);
                    self.ws(to, frame);
                }
                _ => self.metrics.reject(Reject::FlowGone),
            }
            return;
        }
        // Our Via on top names the PBX; else the PBX's Via below it says.
        let mut vias = msg.header_values(HeaderName::Via);
        let ours = vias.next().and_then(Via::parse);
        if !ours.is_some_and(|v| v.host.eq_ignore_ascii_case(&self.cfg.ws_host)) {
            self.metrics.reject(Reject::NotOurs);
            return;
        }
        let named = ours
            .and_then(|v| v.params.value("px"))
            .and_then(|i| i.parse::<usize>().ok())
            .and_then(|i| self.pbx_at(i));
        let Some(to) = named.or_else(|| {
            vias.next()
                .and_then(Via::parse)
                .and_then(|v| via_address(&v))
        }) else {
            self.metrics.reject(Reject::NotOurs);
            return;
        };
        if !self.is_pbx(to) {
            self.metrics.reject(Reject::NotPbx);
            return;
        }
        if !contacts_sound(msg) {
            self.metrics.reject(Reject::Malformed);
            return;
        }
        // A response cannot be refused: an unusable answer is left out.
        let body = self
            .media_body(conn, msg, Side::Browser)
            .unwrap_or_else(|_| Some(String::new()));
        let token = self.key.token(conn);
        let mut popped = false;
        let mut rewritten = Vec::new();
        let anchored = self.media.is_some();
        let edit = |h: &Header<'_>| match h.name {
            HeaderName::Via if !popped => {
                popped = true;
                without_first(h.value, 1).map_or(Action::Drop, Action::Replace)
            }
            HeaderName::Contact => {
                self.rewrite_contacts(h, (&token, self.transport_to(to), false), &mut rewritten)
            }
            ref n if is_asserted_identity(n) => Action::Drop,
            _ => without_trickle_ice(h, anchored),
        };
        let datagram = rewrite_body(msg, None, &[], edit, body_of(msg, &body));
        self.remember_contacts(conn, rewritten);
        self.calls
            .observe(now, conn, Sender::Browser, msg, &mut self.events);
        self.metrics.count_out(msg);
        self.send_pbx(to, datagram);
        self.media_lifecycle(now, conn, msg, Side::Browser, to);
    }
}
