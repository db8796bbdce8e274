//! A request the relay forwarded to the PBX and has not seen answered: the
//! client half of an RFC 3261 §17.1 transaction, kept because the browser,
//! on a reliable transport, will not retransmit. Over UDP the relay
//! retransmits it; over TCP and TLS it sends it once, and only Timer B/F
//! (and the failover time) run.

use std::net::SocketAddr;
use std::time::Duration;

use sipline_core::Instant;
use sipline_core::transaction::T2;

use super::ProxyConfig;
use super::routing::sent_over;
use crate::ids::ConnId;
use sipline_core::sip::Method;

/// The key of a pending request: our branch and the method (a CANCEL shares
/// its INVITE's branch but is its own transaction).
pub(crate) fn key(branch: &str, method: &str) -> String {
    let mut k = String::with_capacity(branch.len() + 1 + method.len());
    k.push_str(branch);
    k.push(' ');
    k.push_str(method);
    k
}

#[derive(Debug)]
pub(crate) struct Pending {
    pub conn: ConnId,
    pub to: SocketAddr,
    pub method: String,
    datagram: Vec<u8>,
    /// The browser's request as it arrived, to answer it ourselves.
    pub browser_request: Vec<u8>,
    next_retransmit: Instant,
    interval: Duration,
    /// Timer B / F.
    pub deadline: Instant,
    sent_at: Instant,
    /// Retransmitted, or already answered: its round trip is not measured
    /// (Karn's rule: an answer to a retransmission is ambiguous).
    rtt_done: bool,
    /// Made by the relay itself (a BYE ending a call): its answer is
    /// consumed here, and no browser waits for it.
    pub local: bool,
    /// Chosen among several PBXs: the next may take it if this one stays
    /// silent, is unreachable, or refuses it with `503` at once.
    pub chosen: bool,
    /// Any answer came (a provisional one too): it stays with this PBX.
    pub heard: bool,
    /// When it goes on to the next PBX if nothing was heard.
    failover_at: Option<Instant>,
    /// The PBXs it went to before this one.
    pub tried: Vec<SocketAddr>,
    /// Sent over TCP or TLS: never retransmitted.
    reliable: bool,
}
impl Pending {
    /// Whether it is a request with `method`.
    pub fn is(&self, method: Method) -> bool {
        self.method == method.as_str()
    }

    pub fn new(
        now: Instant,
        conn: ConnId,
        to: SocketAddr,
        method: &str,
        datagram: Vec<u8>,
        browser_request: Vec<u8>,
        cfg: &ProxyConfig,
    ) -> Self {
        let deadline = now + cfg.request_timeout.min(cfg.t1 * 64);
        let reliable = sent_over(&datagram).is_some_and(|t| t.reliable());
        Self {
            conn,
            to,
            method: method.to_owned(),
            datagram,
            browser_request,
            next_retransmit: if reliable { deadline } else { now + cfg.t1 },
            interval: cfg.t1,
            deadline,
            reliable,
            sent_at: now,
            rtt_done: false,
            local: false,
            chosen: false,
            heard: false,
            failover_at: None,
            tried: Vec::new(),
        }
    }

    /// Lets the next PBX take it if this one fails (there are several).
    pub fn may_fail_over(mut self, now: Instant, cfg: &ProxyConfig) -> Self {
        self.chosen = true;
        self.failover_at = Some(now + cfg.failover_after);
        self
    }

    /// Whether it is due to go on to the next PBX: nothing heard from this
    /// one for the failover time.
    pub fn failover_due(&self, now: Instant) -> bool {
        self.chosen && !self.heard && self.failover_at.is_some_and(|at| at <= now)
    }

    /// It stays with its PBX from now on (there is no other to go to).
    pub fn stay(&mut self) {
        self.failover_at = None;
    }

    /// Sends it to `next` instead, from the start of its retransmissions;
    /// Timer B/F keeps running from the first send, so that the browser's
    /// wait stays bounded. Returns the datagram to send.
    pub fn go_to(
        &mut self,
        now: Instant,
        next: SocketAddr,
        t1: Duration,
        failover_after: Duration,
    ) -> Vec<u8> {
        self.tried.push(std::mem::replace(&mut self.to, next));
        // The same message, over the same transport (see
        // `Proxy::fail_over`).
        if !self.reliable {
            self.next_retransmit = now + t1;
        }
        self.interval = t1;
        self.sent_at = now;
        self.rtt_done = false;
        self.failover_at = Some(now + failover_after);
        self.datagram.clone()
    }

    /// Whether it went over TCP or TLS.
    pub fn reliable(&self) -> bool {
        self.reliable
    }

    /// The request as it was sent.
    pub fn datagram(&self) -> &[u8] {
        &self.datagram
    }

    /// A request the relay makes itself, on behalf of `conn`'s call.
    pub fn local(
        now: Instant,
        conn: ConnId,
        to: SocketAddr,
        method: Method,
        datagram: Vec<u8>,
        cfg: &ProxyConfig,
    ) -> Self {
        Self {
            local: true,
            ..Self::new(now, conn, to, method.as_str(), datagram, Vec::new(), cfg)
        }
    }

    /// The round trip to the PBX, on the first answer to a request that was
    /// sent only once.
    pub fn first_answer(&mut self, now: Instant) -> Option<Duration> {
        let first = !std::mem::replace(&mut self.rtt_done, true);
        first.then(|| now - self.sent_at)
    }
    pub fn next_deadline(&self) -> Instant {
        let failover = self.failover_at.filter(|_| self.chosen && !self.heard);
        self.next_retransmit
            .min(self.deadline)
            .min(failover.unwrap_or(self.deadline))
    }

    /// The datagram again if Timer A/E fired; doubles the interval (capped
    /// at T2 for non-INVITE, RFC 3261 §17.1.2.2).
    pub fn retransmit_due(&mut self, now: Instant, t1: Duration) -> Option<Vec<u8>> {
        if self.next_retransmit > now || self.reliable {
            return None;
        }
        self.rtt_done = true;
        let doubled = self.interval.max(t1) * 2;
        self.interval = if self.is(Method::Invite) {
            doubled
        } else {
            doubled.min(T2)
        };
        self.next_retransmit = now + self.interval;
        Some(self.datagram.clone())
    }

    /// A provisional response arrived for a non-INVITE request: keep
    /// retransmitting, every T2 (RFC 3261 §17.1.2.2, Proceeding state).
    pub fn proceeding(&mut self, now: Instant, _t1: Duration) {
        self.heard = true;
        if !self.reliable {
            self.interval = T2;
            self.next_retransmit = now + T2;
        }
    }
}
