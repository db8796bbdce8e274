//! The client transactions toward the PBX (RFC 3261 §17.1): the browser's
//! transport is reliable and never retransmits, so the relay does it over
//! UDP (Timers A/E), and answers the browser itself when the PBX stays
//! silent (`408`, Timer B/F) or is unreachable (`503`, ICMP). One
//! transaction's own state is a [`Pending`].

use std::net::SocketAddr;
use std::time::Duration;

use sipline_core::Instant;
use sipline_core::sip::{Message, Method, response_to};

use super::Proxy;
use super::events::Sender;
use super::pending::Pending;
use crate::media::calls::Side;
use crate::ops::metrics::Reject;

impl Proxy {
    /// The PBX at `addr` is unreachable (ICMP port/host unreachable): fail
    /// what is in flight toward it at once with `503` rather than making
    /// browsers wait for the timeout, and prefer another PBX for a while.
    pub fn pbx_unreachable(&mut self, now: Instant, addr: SocketAddr) {
        self.down.insert(addr, now + Duration::from_secs(30));
        let failed: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.to == addr)
            .map(|(k, _)| k.clone())
            .collect();
        for key in failed {
            if let Some(p) = self.take_pending(&key) {
                self.answer_locally(now, &p, 503, "Service Unavailable");
            }
        }
    }

    /// Time has reached `now`: retransmit, and time out what must.
    pub fn handle_timeout(&mut self, now: Instant) {
        // Only what is due is visited: the deadline set is ordered.
        while let Some((due, key)) = self.deadlines.first().cloned() {
            if due > now {
                break;
            }
            let timed_out = self.pending.get(&key).is_some_and(|p| p.deadline <= now);
            if timed_out {
                if let Some(p) = self.take_pending(&key) {
                    self.metrics.reject(Reject::PbxTimeout);
                    self.answer_locally(now, &p, 408, "Request Timeout");
                }
                continue;
            }
            self.deadlines.remove(&(due, key.clone()));
            let Some(p) = self.pending.get_mut(&key) else {
                continue;
            };
            if let Some(datagram) = p.retransmit_due(now, self.cfg.t1) {
                let to = p.to;
                self.deadlines.insert((p.next_deadline(), key));
                self.metrics.retransmitted();
                self.udp(to, datagram);
            }
        }
        self.down.retain(|_, until| *until > now);
        self.calls.expire(now);
        if let Some(p) = self.presence.as_mut() {
            for (conn, frame) in p.handle_timeout(now) {
                self.ws(conn, frame);
            }
        }
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
