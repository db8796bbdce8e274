//! What the PBX sends toward the browsers: requests find their browser by
//! the flow token in our Record-Route or in the Request-URI (our rewritten
//! Contact), and a token we did not sign, or whose WebSocket is gone, gets
//! `430 Flow Failed`; responses lose our Via, end their transaction, and
//! (REGISTER) show the browser its own Contacts again.

use std::net::SocketAddr;

use sipline_core::Instant;
use sipline_core::sip::{Header, HeaderName, Message, Method, Uri};

use super::call_media::body_of;
use super::contacts::FLOW_PARAM;
use super::edit::{Action, rewrite_body, without_first, without_trickle_ice};
use super::events::{CallTracker, Sender};
use super::flow::TokenError;
use super::pending;
use super::routing::{HopEdits, host_port_matches, needs_record_route, with_max_forwards};
use super::transactions::ack_for_error;
use super::{ICE_LITE_HEADER, Proxy};
use crate::media::calls::Side;
use crate::ops::metrics::{Failover, Reject};

impl Proxy {
    pub(super) fn pbx_request(&mut self, now: Instant, from: SocketAddr, msg: &Message<'_>) {
        let Some(hops) = self.check_max_forwards(msg) else {
            self.reply_pbx(from, msg, 483, "Too Many Hops");
            return;
        };
        // Which browser: the token in our Record-Route entry, else the one
        // in the Request-URI (our rewritten Contact).
        let mut token = None;
        let mut routes_to_pop = 0usize;
        for value in msg.header_values(HeaderName::Route) {
            match self.own_route(value) {
                Some(t) => {
                    routes_to_pop += 1;
                    token = token.or(t);
                }
                None => break,
            }
        }
        let ruri = msg.request_uri().and_then(Uri::parse);
        let ruri_token = ruri
            .and_then(|u| u.params.value(FLOW_PARAM))
            .map(str::to_owned);
        // The Record-Route's token names the connection the dialog began
        // on; the Request-URI's, the browser's latest Contact: after a
        // reconnect and its re-INVITE, the live one (RFC 5626 flow
        // recovery), so it wins when it is live.
        let live = |t: &String| {
            self.key
                .verify(t)
                .is_ok_and(|conn| self.conns.contains_key(&conn))
        };
        let token = match (token, ruri_token) {
            (_, Some(target)) if live(&target) => Some(target),
            (route, target) => route.or(target),
        };
        let Some(token) = token else {
            self.metrics.reject(Reject::NoFlow);
            self.reply_pbx(from, msg, 404, "Not Found");
            return;
        };
        let conn = match self.key.verify(&token) {
            Ok(conn) if self.conns.contains_key(&conn) => conn,
            Ok(gone) => {
                // A BYE for a call whose browser left still ends its media.
                if msg.method() == Some(Method::Bye) {
                    self.media_lifecycle(now, gone, msg, Side::Pbx, from);
                }
                self.metrics.reject(Reject::FlowGone);
                self.reply_pbx(from, msg, 430, "Flow Failed");
                return;
            }
            // A token of an earlier run: its connection is gone too.
            Err(TokenError::Stale) => {
                self.metrics.reject(Reject::FlowGone);
                self.reply_pbx(from, msg, 430, "Flow Failed");
                return;
            }
            Err(_) => {
                self.metrics.reject(Reject::FlowForged);
                self.reply_pbx(from, msg, 430, "Flow Failed");
                return;
            }
        };
        let body = match self.media_body(conn, msg, Side::Pbx) {
            Ok(body) => body,
            Err(e) if msg.method() != Some(Method::Ack) => {
                let (code, reason) = e.status();
                self.reply_pbx(from, msg, code, reason);
                return;
            }
            Err(_) => Some(String::new()),
        };
        let restored = ruri
            .filter(|u| u.params.value(FLOW_PARAM).is_some())
            .and_then(|u| self.original_contact(conn, u.user.unwrap_or_default()));
        let branch = self.branch(&token, msg.via().branch().unwrap_or_default());
        // Name the PBX the request came from, so that the answer goes back
        // to it even when its own Via names a host or a NATed address.
        let px = self
            .cfg
            .pbx
            .iter()
            .position(|t| t.addr == from)
            .unwrap_or(0);
        let via = format!("SIP/2.0/WSS {};branch={branch};px={px}", self.cfg.ws_host);
        let record_route = needs_record_route(msg).then(|| {
            format!(
                "<sip:{token}@{};transport=ws;lr;r2=on>, <sip:{}{};lr;r2=on>",
                self.cfg.ws_host,
                self.cfg.sip_addr,
                self.transport_to(from).uri_param()
            )
        });
        let mut top: Vec<(&str, &str)> = vec![("Via", &via)];
        if let Some(rr) = &record_route {
            top.push(("Record-Route", rr));
        }
        let mut hop = HopEdits::new(hops, routes_to_pop);
        let anchored = self.media.is_some();
        let edit = |h: &Header<'_>| {
            hop.apply(h)
                .unwrap_or_else(|| without_trickle_ice(h, anchored))
        };
        let frame = rewrite_body(msg, restored.as_deref(), &top, edit, body_of(msg, &body));
        let frame = with_max_forwards(msg, frame);
        self.calls
            .observe(now, conn, Sender::Far, msg, &mut self.events);
        self.metrics.count_out(msg);
        self.ws(conn, frame);
        self.media_lifecycle(now, conn, msg, Side::Pbx, from);
    }

    pub(super) fn pbx_response(&mut self, now: Instant, from: SocketAddr, msg: &Message<'_>) {
        let via = msg.via();
        let token = via.params.value("sl");
        let ours = host_port_matches(via.host, via.port, self.cfg.sip_addr) && token.is_some();
        let conn = token.and_then(|t| self.key.verify(t).ok());
        let (Some(conn), true) = (conn, ours) else {
            self.metrics.reject(Reject::NotOurs);
            return;
        };
        let code = msg.status().unwrap_or(500);
        let key = pending::key(via.branch().unwrap_or_default(), msg.cseq().method);
        if self.pending.get(&key).is_some_and(|p| p.local) {
            // The answer to a BYE the relay sent: it ends the transaction.
            if code >= 200 {
                self.take_pending(&key);
            }
            return;
        }
        if let Some(p) = self.pending.get(&key) {
            if p.to != from && p.tried.contains(&from) {
                // A PBX this request already left (it failed over): too
                // late, its call is with the next one now.
                self.metrics.reject(Reject::LeftPbx);
                return;
            }
            // An early 503 (RFC 3263 §4.3): the next PBX may take it; an
            // INVITE's is acknowledged here, as its client transaction
            // would (RFC 3261 §17.1.1.3).
            let ack = (code == 503 && p.is(Method::Invite))
                .then(|| Message::parse(p.datagram()).ok())
                .flatten()
                .map(|invite| ack_for_error(&invite, msg));
            if code == 503 && self.fail_over(now, &key, Failover::Refused) {
                if let Some(ack) = ack {
                    self.send_pbx(from, ack);
                }
                return;
            }
        }
        if let Some(p) = self.pending.get_mut(&key) {
            if let Some(rtt) = p.first_answer(now) {
                self.metrics.observe_pbx_rtt(rtt);
            } // A final answer ends our transaction; a provisional one ends
            // INVITE retransmissions (Timer A) and keeps Timer F running for
            // the others, as RFC 3261 §17.1 does.
            if code >= 200 || p.is(Method::Invite) {
                self.take_pending(&key);
            } else {
                let before = p.next_deadline();
                p.proceeding(now, self.cfg.t1);
                let after = p.next_deadline();
                self.deadlines.remove(&(before, key.clone()));
                self.deadlines.insert((after, key.clone()));
            }
        }
        if msg.header_values(HeaderName::Via).nth(1).is_none() {
            // Only our Via: the answer to a request the relay made itself
            // (its BYE or CANCEL), repeated after its transaction ended.
            return;
        }
        if code == 100 {
            // Hop by hop: the browser had the relay's own (RFC 3261 §16.7).
            return;
        }
        if !self.conns.contains_key(&conn) {
            // The browser left: nothing to deliver to, but a failed call
            // still gives its media back.
            self.media_lifecycle(now, conn, msg, Side::Pbx, from);
            return;
        }
        let body = self
            .media_body(conn, msg, Side::Pbx)
            .unwrap_or_else(|_| Some(String::new()));
        let mut popped = false;
        let is_register = msg.cseq().is(Method::Register);
        let mut ours_bound = false;
        let anchored = self.media.is_some();
        let edit = |h: &Header<'_>| match h.name {
            HeaderName::Via if !popped => {
                popped = true;
                without_first(h.value, 1).map_or(Action::Drop, Action::Replace)
            }
            HeaderName::Contact if is_register => {
                let action = self.restore_contacts(conn, h);
                ours_bound |= matches!(action, Action::Replace(_));
                action
            }
            _ => without_trickle_ice(h, anchored),
        };
        let tell_ice_lite = is_register
            && self.media.is_some()
            && msg.status().is_some_and(|c| (200..300).contains(&c));
        let top: &[(&str, &str)] = if tell_ice_lite {
            &[ICE_LITE_HEADER]
        } else {
            &[]
        };
        let frame = rewrite_body(msg, None, top, edit, body_of(msg, &body));
        if is_register {
            CallTracker::observe_register(conn, msg, !ours_bound, &mut self.events);
        }
        self.calls
            .observe(now, conn, Sender::Far, msg, &mut self.events);
        self.metrics.count_out(msg);
        self.ws(conn, frame);
        self.media_lifecycle(now, conn, msg, Side::Pbx, from);
    }
}
