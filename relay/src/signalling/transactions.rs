//! The client transactions toward the PBX (RFC 3261 §17.1): the browser's
//! transport is reliable and never retransmits, so the relay does it over
//! UDP (Timers A/E; over TCP and TLS nothing is retransmitted, RFC 3261
//! §17.1.1.2); a new request its PBX leaves silent for the failover
//! time, or that is unreachable (ICMP) or refuses it with an early `503`,
//! goes on to the next PBX (RFC 3263 §4.3); with none left, the relay
//! answers the browser itself (`408` at Timer B/F, `503` for ICMP). One
//! transaction's own state is a [`Pending`].

use std::net::SocketAddr;

use sipline_core::Instant;
use sipline_core::sip::{HeaderName, Message, MessageBuilder, Method, response_to};

use super::Proxy;
use super::events::Sender;
use super::pbxs::DownReason;
use super::pending::Pending;
use crate::media::calls::Side;
use crate::ops::metrics::{Failover, Reject};

impl Proxy {
    /// The PBX at `addr` is unreachable (ICMP port/host unreachable over
    /// UDP; over TCP and TLS, no connection could be made, or it broke): what
    /// is in flight toward it and unanswered goes on to the next PBX, or,
    /// with none left, fails at once with `503` rather than making browsers
    /// wait for the timeout; new requests avoid it while it is down.
    pub fn pbx_unreachable(&mut self, now: Instant, addr: SocketAddr) {
        self.pbxs.failed(now, addr, DownReason::Unreachable);
        self.fail_pending(now, |p| p.to == addr);
    }

    /// The relay's TCP or TLS connection to the PBX at `addr` broke (and
    /// is being opened again): what went over it unanswered has lost its
    /// answer, for nothing is retransmitted on a stream and the PBX cannot
    /// reach the relay but through it. A new request goes on to the next
    /// PBX, anything else is answered `503` (RFC 3261 §8.1.3.1: a
    /// transport error). The PBX itself is not taken as down: its new
    /// connection tells.
    pub fn pbx_connection_lost(&mut self, now: Instant, addr: SocketAddr) {
        self.fail_pending(now, |p| p.to == addr && p.reliable());
    }

    /// The pending requests `lost` picks cannot be answered where they went:
    /// each goes on to the next PBX if it may, else gets `503` at once.
    fn fail_pending(&mut self, now: Instant, lost: impl Fn(&Pending) -> bool) {
        let keys: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| lost(p))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if self.fail_over(now, &key, Failover::Unreachable) {
                continue;
            }
            if let Some(p) = self.take_pending(&key) {
                self.answer_locally(now, &p, 503, "Service Unavailable");
            }
        }
    }

    /// Time has reached `now`: retransmit, fail over, and time out what
    /// must.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Only what is due is visited: the deadline set is ordered.
        while let Some((due, key)) = self.deadlines.first().cloned() {
            if due > now {
                break;
            }
            // Taken out here; whatever is done below puts the request's
            // next deadline back in.
            self.deadlines.remove(&(due, key.clone()));
            let Some(p) = self.pending.get(&key) else {
                continue;
            };
            if p.deadline <= now {
                if let Some(p) = self.take_pending(&key) {
                    self.metrics.reject(Reject::PbxTimeout);
                    self.answer_locally(now, &p, 408, "Request Timeout");
                }
                continue;
            }
            if p.failover_due(now) {
                let silent = p.to;
                self.pbxs.failed(now, silent, DownReason::Silent);
                if self.fail_over(now, &key, Failover::Silent) {
                    continue;
                }
                // Nowhere else to go: it stays, until Timer B/F.
                self.update_pending(&key, Pending::stay);
            }
            let t1 = self.cfg.t1;
            let Some(Some((to, datagram))) = self.update_pending(&key, |p| {
                let to = p.to;
                p.retransmit_due(now, t1).map(|d| (to, d))
            }) else {
                continue;
            };
            self.metrics.retransmitted();
            self.send_pbx(to, datagram);
        }
        for (to, probe) in self.pbxs.handle_timeout(now, self.cfg.sip_addr) {
            self.send_pbx(to, probe);
        }
        self.calls.expire(now);
        if let Some(p) = self.presence.as_mut() {
            for (conn, frame) in p.handle_timeout(now) {
                self.ws(conn, frame);
            }
        }
    }

    /// Sends a new request its PBX failed (`why`) to the next PBX, if it
    /// may go on and one is left; whether it did. Its call's dialog (for a
    /// CANCEL or a shutdown) follows it.
    pub(super) fn fail_over(&mut self, now: Instant, key: &str, why: Failover) -> bool {
        let Some(p) = self.pending.get(key).filter(|p| p.chosen && !p.heard) else {
            return false;
        };
        let Ok(request) = Message::parse(&p.browser_request) else {
            return false;
        };
        let call_id = request.call_id().to_owned();
        let (conn, is_invite) = (p.conn, p.is(Method::Invite));
        let mut tried = p.tried.clone();
        tried.push(p.to);
        // Only to a PBX on the same transport: the request's Via,
        // Record-Route and Contact name it.
        let transport = self.transport_to(p.to);
        tried.extend(
            self.cfg
                .pbx
                .iter()
                .filter(|t| t.transport != transport)
                .map(|t| t.addr),
        );
        let Some(next) = self.pbxs.pick(now, &call_id, &tried) else {
            return false;
        };
        let (t1, after) = (self.cfg.t1, self.cfg.failover_after);
        let Some(datagram) = self.update_pending(key, |p| p.go_to(now, next, t1, after)) else {
            return false;
        };
        self.metrics.failover(why);
        if is_invite && let Some(d) = self.dialogs.get_mut(&(conn, call_id)) {
            d.pbx = Some(next);
            if let Some(cancel) = d.cancel.as_mut() {
                cancel.0 = next;
            }
        }
        self.send_pbx(next, datagram);
        true
    }

    /// Changes a pending request with `f`, keeping its deadline in step.
    pub(super) fn update_pending<R>(
        &mut self,
        key: &str,
        f: impl FnOnce(&mut Pending) -> R,
    ) -> Option<R> {
        let p = self.pending.get_mut(key)?;
        let before = p.next_deadline();
        let r = f(p);
        self.deadlines.remove(&(before, key.to_owned()));
        self.deadlines.insert((p.next_deadline(), key.to_owned()));
        Some(r)
    }

    /// Removes a pending request and its deadline.
    pub(super) fn take_pending(&mut self, key: &str) -> Option<Pending> {
        let p = self.pending.remove(key)?;
        self.deadlines.remove(&(p.next_deadline(), key.to_owned()));
        if let Some(c) = self.conns.get_mut(&p.conn).filter(|_| !p.local) {
            c.in_flight = c.in_flight.saturating_sub(1);
        }
        Some(p)
    }

    /// Sends the browser a response the relay makes itself for a request it
    /// forwarded (timeout, unreachable PBX).
    pub(super) fn answer_locally(&mut self, now: Instant, p: &Pending, code: u16, reason: &str) {
        if p.local || p.is(Method::Ack) {
            return;
        }
        if let Ok(req) = Message::parse(&p.browser_request) {
            let resp = response_to(&req, code, reason, Some("sl")).finish(None, b"");
            // A call that fails here ends for the dashboards, and gives
            // its media back, as if the PBX had answered so.
            if let Ok(answer) = Message::parse(&resp) {
                self.calls
                    .observe(now, p.conn, Sender::Far, &answer, &mut self.events);
                self.media_lifecycle(now, p.conn, &answer, Side::Pbx, p.to);
            }
            if self.conns.contains_key(&p.conn) {
                self.metrics.local_response();
                self.ws(p.conn, resp);
            }
        }
    }
}

/// The ACK for an error response to an INVITE the relay forwarded, sent by
/// the relay itself when the browser never sees that response (an early
/// 503 that failed over): same Request-URI, top Via, Route, From, Call-ID
/// and CSeq number as the INVITE, To from the response (RFC 3261
/// §17.1.1.3). The core has the same for the SDK, private: made public
/// for this, it grew the SDK's wasm by 17.5 KB gzipped (measured with
/// `npm/size.sh`), so the relay keeps its own.
pub(super) fn ack_for_error(invite: &Message<'_>, response: &Message<'_>) -> Vec<u8> {
    let mut b = MessageBuilder::request(Method::Ack, invite.request_uri().unwrap_or_default());
    if let Some(via) = invite.header_values(HeaderName::Via).next() {
        b.header("Via", via);
    }
    for route in invite.header_lines(HeaderName::Route) {
        b.header("Route", route);
    }
    let seq = invite.cseq().seq.to_string();
    b.header("Max-Forwards", "70")
        .header("From", invite.header(HeaderName::From).unwrap_or_default())
        .header("To", response.header(HeaderName::To).unwrap_or_default())
        .header("Call-ID", invite.call_id())
        .header_parts("CSeq", &[&seq, " ACK"]);
    b.finish(None, b"")
}
