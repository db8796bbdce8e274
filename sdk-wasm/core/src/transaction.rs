//! RFC 3261 §17 transactions for a reliable transport (WebSocket), with the
//! RFC 6026 "Accepted" states.
//!
//! On a reliable transport nothing is retransmitted by the transaction layer,
//! so timers A, E and G never run and D, I, J, K are zero. What remains:
//! - Timer B (INVITE) and F (non-INVITE): 64*T1 without a final response
//!   means the request timed out (408 to the transaction user); an
//!   application timeout may shorten them;
//! - Timer M / L (RFC 6026): after a 2xx to an INVITE, the transaction stays
//!   to absorb or pass on 2xx retransmissions (client) and to match the ACK
//!   (server);
//! - Timer H: a server INVITE transaction that sent an error waits that long
//!   for the ACK;
//! - a server INVITE transaction sends `100 Trying` if its user has not
//!   answered within 200 ms (RFC 3261 §17.2.1).
//!
//! The layer is sans-IO: it is handed parsed messages and the time, and
//! hands back what to send and which transactions ended.

use crate::prelude::*;
use core::time::Duration;

use crate::Instant;
use crate::sip::{HeaderName, Message, MessageBuilder, Method, response_to};
use crate::time::earliest;

/// Timer settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimerConfig {
    /// RFC 3261 T1, the round-trip estimate (500 ms by default).
    pub t1: Duration,
    /// Application limit on how long a client transaction waits for a final
    /// response; the effective limit is the smaller of this and 64*T1.
    pub request_timeout: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            request_timeout: Duration::from_secs(32),
        }
    }
}

impl TimerConfig {
    /// Timer B / F / H / L / M: 64*T1.
    pub fn timer_64t1(&self) -> Duration {
        self.t1 * 64
    }

    /// How long a client transaction waits for its final response.
    pub fn client_timeout(&self) -> Duration {
        self.timer_64t1().min(self.request_timeout)
    }
}

/// RFC 3261 T2: the longest interval between two retransmissions.
pub const T2: Duration = Duration::from_secs(4);

/// A message that must be repeated end to end until it is acknowledged,
/// whatever the transport of the first hop: a UAS's 2xx to an INVITE, which
/// may cross UDP hops beyond the WebSocket (RFC 3261 §13.3.1.4). First
/// after T1, the interval doubling up to T2, given up after 64·T1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retransmit {
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

/// What a [`Retransmit`] schedule says at a given time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetransmitStep {
    /// Nothing is due yet.
    Wait,
    /// Send the message again now.
    Send,
    /// Unacknowledged for 64·T1: give up.
    GiveUp,
}

impl Retransmit {
    /// The schedule of a message first sent at `now`, on `timers`' T1.
    pub fn start(now: Instant, timers: &TimerConfig) -> Self {
        Self {
            next: now + timers.t1,
            interval: timers.t1,
            give_up: now + timers.timer_64t1(),
        }
    }

    /// When [`Self::poll`] next has something to say.
    pub fn deadline(&self) -> Instant {
        self.next.min(self.give_up)
    }

    /// What is due at `now`; a [`RetransmitStep::Send`] moves the schedule
    /// on to the next interval.
    pub fn poll(&mut self, now: Instant) -> RetransmitStep {
        if now >= self.give_up {
            RetransmitStep::GiveUp
        } else if now >= self.next {
            self.interval = (self.interval * 2).min(T2);
            self.next = now + self.interval;
            RetransmitStep::Send
        } else {
            RetransmitStep::Wait
        }
    }
}

/// Names one transaction for its user, stable for its lifetime. The
/// default (0) names none: live ids start at 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(u64);

/// Client transaction states (RFC 3261 figures 5 and 6, RFC 6026 figure 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientState {
    /// Request sent, nothing heard (Calling for INVITE, Trying otherwise).
    Calling,
    /// A provisional response arrived.
    Proceeding,
    /// INVITE got a 2xx; retransmissions of it are still passed on.
    Accepted,
    /// Done.
    Terminated,
}

/// Server transaction states (RFC 3261 figures 7 and 8, RFC 6026 figure 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerState {
    /// Request received, no response sent yet.
    Trying,
    /// A provisional response was sent.
    Proceeding,
    /// INVITE: error response sent, waiting for the ACK.
    Completed,
    /// INVITE: 2xx sent; retransmitted INVITEs are absorbed.
    Accepted,
    /// Done.
    Terminated,
}

#[derive(Clone, Debug)]
struct Client {
    id: TransactionId,
    branch: String,
    method: String,
    state: ClientState,
    deadline: Option<Instant>,
    /// The INVITE itself, kept to build the ACK for an error response.
    invite: Option<Vec<u8>>,
}

#[derive(Clone, Debug)]
struct Server {
    id: TransactionId,
    branch: String,
    sent_by: String,
    method: String,
    state: ServerState,
    deadline: Option<Instant>,
    /// The INVITE, kept to send `100 Trying` on the user's behalf.
    invite: Option<Vec<u8>>,
    last_response: Option<Vec<u8>>,
}

/// What to do with a response that arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseVerdict {
    /// Pass it to the user of this transaction.
    Deliver(TransactionId),
    /// Pass it on, and send this ACK (an error response to an INVITE).
    DeliverAndAck(TransactionId, Vec<u8>),
    /// A response no live transaction expects: drop it (RFC 3261 §18.1.2).
    Stray,
}

/// What to do with a request that arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RequestVerdict {
    /// A new server transaction was created: the user must answer it.
    New(TransactionId),
    /// A retransmission: resend this response if there is one.
    Retransmission(Option<Vec<u8>>),
    /// The ACK of an error response: absorbed by the transaction.
    AckAbsorbed,
    /// An ACK for a 2xx (or one matching nothing): it belongs to the dialog
    /// layer, not to a transaction (RFC 3261 §17.2.3).
    AckForDialog,
}

/// Something that happened to a transaction on a timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expiry {
    /// A client transaction had no final response in time: the user must act
    /// as if a `408 Request Timeout` arrived (RFC 3261 §8.1.3.1).
    Timeout(TransactionId),
    /// A server INVITE transaction never got the ACK of its error response.
    NoAck(TransactionId),
}

/// All live transactions of one user agent.
#[derive(Debug, Default)]
pub struct Transactions {
    timers: TimerConfig,
    clients: Vec<Client>,
    servers: Vec<Server>,
    next_id: u64,
    outbox: Vec<Vec<u8>>,
}

impl Transactions {
    /// An empty layer with the given timers.
    pub fn new(timers: TimerConfig) -> Self {
        Self {
            timers,
            ..Self::default()
        }
    }

    /// The timer settings in use.
    pub fn timers(&self) -> &TimerConfig {
        &self.timers
    }

    fn next_id(&mut self) -> TransactionId {
        self.next_id += 1;
        TransactionId(self.next_id)
    }

    /// Starts a client transaction for a request the caller is about to
    /// send. `request` must parse (the caller built it).
    pub fn start_client(
        &mut self,
        now: Instant,
        request: &Message<'_>,
        raw: &[u8],
    ) -> TransactionId {
        let id = self.next_id();
        let method = request.method_name().unwrap_or_default();
        let is_invite = method == Method::Invite.as_str();
        self.clients.push(Client {
            id,
            branch: request.via().branch().unwrap_or_default().to_owned(),
            method: method.to_owned(),
            state: ClientState::Calling,
            deadline: Some(now + self.timers.client_timeout()),
            invite: is_invite.then(|| raw.to_vec()),
        });
        id
    }

    /// The state of a client transaction, `None` once it is gone.
    pub fn client_state(&self, id: TransactionId) -> Option<ClientState> {
        self.clients.iter().find(|c| c.id == id).map(|c| c.state)
    }

    /// The state of a server transaction, `None` once it is gone.
    pub fn server_state(&self, id: TransactionId) -> Option<ServerState> {
        self.servers.iter().find(|s| s.id == id).map(|s| s.state)
    }

    /// Matches a response to its client transaction (RFC 3261 §17.1.3: top
    /// Via branch and CSeq method) and advances it.
    pub fn on_response(&mut self, now: Instant, response: &Message<'_>) -> ResponseVerdict {
        let Some(code) = response.status() else {
            return ResponseVerdict::Stray;
        };
        let branch = response.via().branch().unwrap_or_default();
        let method = response.cseq().method;
        let m64 = self.timers.timer_64t1();
        let Some(tx) = self.clients.iter_mut().find(|c| {
            c.state != ClientState::Terminated && c.branch == branch && c.method == method
        }) else {
            return ResponseVerdict::Stray;
        };
        let id = tx.id;
        match (tx.invite.is_some(), tx.state, code) {
            // Accepted: only 2xx retransmissions go up (the user re-ACKs).
            (true, ClientState::Accepted, 200..=299) => ResponseVerdict::Deliver(id),
            (_, ClientState::Accepted, _) => ResponseVerdict::Stray,
            (_, _, 100..=199) => {
                tx.state = ClientState::Proceeding;
                if tx.invite.is_some() {
                    // Timer B guards only against silence; once the far end
                    // is proceeding, the user's own no-answer timer rules.
                    tx.deadline = None;
                }
                ResponseVerdict::Deliver(id)
            }
            (true, _, 200..=299) => {
                tx.state = ClientState::Accepted;
                tx.deadline = Some(now + m64);
                ResponseVerdict::Deliver(id)
            }
            (true, _, _) => {
                let ack = tx.invite.as_deref().and_then(|raw| {
                    Message::parse(raw)
                        .ok()
                        .map(|inv| ack_for_error(&inv, response))
                });
                tx.state = ClientState::Terminated; // Timer D = 0 on reliable transports
                self.clients.retain(|c| c.id != id);
                match ack {
                    Some(ack) => ResponseVerdict::DeliverAndAck(id, ack),
                    None => ResponseVerdict::Deliver(id),
                }
            }
            (false, _, _) => {
                // Timer K = 0 on reliable transports.
                self.clients.retain(|c| c.id != id);
                ResponseVerdict::Deliver(id)
            }
        }
    }

    /// Matches a request to a server transaction (RFC 3261 §17.2.3: branch,
    /// sent-by, and method, with ACK matching its INVITE) or creates one.
    pub fn on_request(
        &mut self,
        now: Instant,
        request: &Message<'_>,
        raw: &[u8],
    ) -> RequestVerdict {
        let method = request.method_name().unwrap_or_default();
        let via = request.via();
        let branch = via.branch().unwrap_or_default();
        let is_ack = method == Method::Ack.as_str();
        let wanted = if is_ack {
            Method::Invite.as_str()
        } else {
            method
        };
        // Only RFC 3261 branches (magic cookie) identify a transaction; the
        // RFC 2543 matching rules are not implemented, so such requests are
        // never taken for retransmissions of one another.
        let rfc3261 = branch.starts_with("z9hG4bK");
        let found = self.servers.iter_mut().find(|s| {
            rfc3261
                && s.branch == branch
                && s.method == wanted
                && sent_by_matches(&s.sent_by, via.host, via.port)
        });
        if let Some(tx) = found {
            if !is_ack {
                // RFC 6026 §7.1: in Accepted, a retransmitted INVITE is
                // absorbed; the TU retransmits its 2xx itself.
                let resend = match tx.state {
                    ServerState::Accepted => None,
                    _ => tx.last_response.clone(),
                };
                return RequestVerdict::Retransmission(resend);
            }
            return match tx.state {
                ServerState::Completed => {
                    // Confirmed, then Timer I = 0 on reliable transports.
                    tx.state = ServerState::Terminated;
                    let id = tx.id;
                    self.servers.retain(|s| s.id != id);
                    RequestVerdict::AckAbsorbed
                }
                _ => RequestVerdict::AckForDialog,
            };
        }
        if is_ack {
            return RequestVerdict::AckForDialog;
        }
        let id = self.next_id();
        let is_invite = method == Method::Invite.as_str();
        let mut sent_by = String::with_capacity(via.host.len() + 6);
        sent_by.push_str(via.host);
        if let Some(port) = via.port {
            sent_by.push(':');
            crate::sip::push_decimal(&mut sent_by, u64::from(port));
        }
        self.servers.push(Server {
            id,
            branch: branch.to_owned(),
            sent_by,
            method: method.to_owned(),
            state: ServerState::Trying,
            deadline: is_invite.then(|| now + Duration::from_millis(200)),
            invite: is_invite.then(|| raw.to_vec()),
            last_response: None,
        });
        RequestVerdict::New(id)
    }

    /// The server INVITE transaction a CANCEL is aimed at (same branch and
    /// sent-by, RFC 3261 §9.2).
    pub fn invite_for_cancel(&self, cancel: &Message<'_>) -> Option<TransactionId> {
        let via = cancel.via();
        let branch = via.branch()?;
        self.servers
            .iter()
            .find(|s| {
                s.method == Method::Invite.as_str()
                    && s.branch == branch
                    && sent_by_matches(&s.sent_by, via.host, via.port)
            })
            .map(|s| s.id)
    }

    /// Records the response the user sends on server transaction `id` and
    /// advances it. Returns `false` if the transaction is gone or already
    /// answered finally (the response must then not be sent).
    pub fn respond(&mut self, now: Instant, id: TransactionId, code: u16, raw: &[u8]) -> bool {
        let m64 = self.timers.timer_64t1();
        let Some(tx) = self.servers.iter_mut().find(|s| s.id == id) else {
            return false;
        };
        let accepted_2xx = tx.state == ServerState::Accepted && (200..300).contains(&code);
        if accepted_2xx {
            // RFC 6026 §8.5: the TU's 2xx retransmissions pass through.
            tx.last_response = Some(raw.to_vec());
            return true;
        }
        if !matches!(tx.state, ServerState::Trying | ServerState::Proceeding) {
            return false;
        }
        tx.last_response = Some(raw.to_vec());
        let is_invite = tx.method == Method::Invite.as_str();
        tx.invite = None;
        match code {
            100..=199 => {
                tx.state = ServerState::Proceeding;
                tx.deadline = None;
            }
            200..=299 if is_invite => {
                tx.state = ServerState::Accepted;
                tx.deadline = Some(now + m64); // Timer L
            }
            _ if is_invite => {
                tx.state = ServerState::Completed;
                tx.deadline = Some(now + m64); // Timer H
            }
            _ => {
                // Timer J = 0 on reliable transports.
                self.servers.retain(|s| s.id != id);
            }
        }
        true
    }

    /// Runs the timers due at `now`: returns the expiries for the user;
    /// bytes to send (100 Trying) are queued for [`Self::poll_transmit`].
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Expiry> {
        let mut expired = Vec::new();
        self.clients.retain(|c| {
            let due = c.deadline.is_some_and(|d| d <= now);
            if due && c.state != ClientState::Accepted {
                expired.push(Expiry::Timeout(c.id));
            }
            !due
        });
        let mut outbox = Vec::new();
        self.servers.retain_mut(|s| {
            if s.deadline.is_none_or(|d| d > now) {
                return true;
            }
            match s.state {
                ServerState::Trying => {
                    // The user is slow to answer the INVITE: quench
                    // retransmissions upstream with 100 Trying.
                    if let Some(trying) = s.invite.take().and_then(|raw| {
                        Message::parse(&raw)
                            .ok()
                            .map(|inv| response_to(&inv, 100, "Trying", None).finish(None, b""))
                    }) {
                        s.last_response = Some(trying.clone());
                        outbox.push(trying);
                    }
                    s.state = ServerState::Proceeding;
                    s.deadline = None;
                    true
                }
                ServerState::Completed => {
                    expired.push(Expiry::NoAck(s.id));
                    false
                }
                _ => false,
            }
        });
        self.outbox.extend(outbox);
        expired
    }

    /// Bytes the layer itself wants sent (e.g. `100 Trying`).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.outbox.is_empty()).then(|| self.outbox.remove(0))
    }

    /// When [`Self::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let c = self.clients.iter().filter_map(|c| c.deadline).min();
        let s = self.servers.iter().filter_map(|s| s.deadline).min();
        earliest(c, s)
    }

    /// The transport is gone: every client transaction fails at once (RFC
    /// 3261 §8.1.3.1 treats a transport error like a 503) and server
    /// transactions, which can no longer answer, are dropped. Returns the
    /// ids of the failed client transactions.
    pub fn transport_closed(&mut self) -> Vec<TransactionId> {
        let failed = self
            .clients
            .iter()
            .filter(|c| c.state != ClientState::Accepted)
            .map(|c| c.id)
            .collect();
        self.clients.clear();
        self.servers.clear();
        self.outbox.clear();
        failed
    }
}

/// `sent-by` comparison of RFC 3261 §17.2.3 (host case-insensitive).
fn sent_by_matches(stored: &str, host: &str, port: Option<u16>) -> bool {
    let (h, p) = match stored.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && !stored.ends_with(']') => (h, p.parse().ok()),
        _ => (stored, None),
    };
    h.eq_ignore_ascii_case(host) && p == port
}

/// The ACK for an error response to an INVITE (RFC 3261 §17.1.1.3): same
/// Request-URI, top Via, Route, From, Call-ID and CSeq number as the INVITE,
/// To from the response.
fn ack_for_error(invite: &Message<'_>, response: &Message<'_>) -> Vec<u8> {
    let mut b = MessageBuilder::request(Method::Ack, invite.request_uri().unwrap_or_default());
    if let Some(via) = invite.header_values(HeaderName::Via).next() {
        b.header("Via", via);
    }
    for route in invite.header_lines(HeaderName::Route) {
        b.header("Route", route);
    }
    b.header("Max-Forwards", "70")
        .header("From", invite.header(HeaderName::From).unwrap_or_default())
        .header("To", response.header(HeaderName::To).unwrap_or_default())
        .header("Call-ID", invite.call_id());
    let mut seq = String::with_capacity(16);
    crate::sip::push_decimal(&mut seq, u64::from(invite.cseq().seq));
    b.header_parts("CSeq", &[&seq, " ACK"]);
    b.finish(None, b"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// The times a schedule says Send, up to the one it gives up at.
    fn sends(timers: &TimerConfig) -> (Vec<u64>, u64) {
        let mut r = Retransmit::start(t(0), timers);
        let mut sent = Vec::new();
        loop {
            let now = r.deadline();
            match r.poll(now) {
                RetransmitStep::Send => sent.push(now.as_millis()),
                RetransmitStep::GiveUp => return (sent, now.as_millis()),
                RetransmitStep::Wait => panic!("nothing due at its own deadline"),
            }
        }
    }

    #[test]
    fn a_2xx_is_repeated_from_t1_doubling_to_t2_until_64_t1() {
        let (sent, gave_up) = sends(&TimerConfig::default());
        assert_eq!(
            sent,
            [
                500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500
            ]
        );
        assert_eq!(gave_up, 32_000);
        // Nothing between two deadlines.
        let mut r = Retransmit::start(t(0), &TimerConfig::default());
        assert_eq!(r.poll(t(499)), RetransmitStep::Wait);
        // The configured T1 sets the whole schedule.
        let fast = TimerConfig {
            t1: Duration::from_millis(100),
            ..TimerConfig::default()
        };
        let (sent, gave_up) = sends(&fast);
        assert_eq!(&sent[..4], [100, 300, 700, 1500]);
        assert_eq!(gave_up, 6_400);
    }

    fn request(method: Method, branch: &str) -> Vec<u8> {
        let mut b = MessageBuilder::request(method, "sip:bob@example.com");
        b.header_parts("Via", &["SIP/2.0/WSS h.invalid;branch=", branch])
            .header("Route", "<sip:proxy.example;lr>")
            .header("From", "<sip:alice@example.com>;tag=a1")
            .header("To", "<sip:bob@example.com>")
            .header("Call-ID", "call-1")
            .header_parts("CSeq", &["5 ", method.as_str()]);
        b.finish(None, b"")
    }

    fn response_for(req: &[u8], code: u16) -> Vec<u8> {
        let m = Message::parse(req).expect("request parses");
        response_to(&m, code, "Reason", (code > 100).then_some("b1")).finish(None, b"")
    }

    fn start(txs: &mut Transactions, now: Instant, raw: &[u8]) -> TransactionId {
        let m = Message::parse(raw).expect("request parses");
        txs.start_client(now, &m, raw)
    }

    fn respond(txs: &mut Transactions, now: Instant, raw: &[u8]) -> ResponseVerdict {
        txs.on_response(now, &Message::parse(raw).expect("response parses"))
    }

    #[test]
    fn non_invite_timer_f_is_64_t1() {
        let mut txs = Transactions::new(TimerConfig::default());
        let req = request(Method::Register, "z9hG4bKr1");
        let id = start(&mut txs, t(0), &req);
        assert_eq!(txs.poll_timeout(), Some(t(32_000)));
        // A provisional response does not stop Timer F.
        assert_eq!(
            respond(&mut txs, t(100), &response_for(&req, 100)),
            ResponseVerdict::Deliver(id)
        );
        assert_eq!(txs.client_state(id), Some(ClientState::Proceeding));
        assert!(txs.handle_timeout(t(31_999)).is_empty());
        assert_eq!(txs.handle_timeout(t(32_000)), vec![Expiry::Timeout(id)]);
        assert_eq!(txs.client_state(id), None);
        assert_eq!(txs.poll_timeout(), None);
    }

    #[test]
    fn app_timeout_shortens_timer_f() {
        let timers = TimerConfig {
            request_timeout: Duration::from_secs(5),
            ..TimerConfig::default()
        };
        let mut txs = Transactions::new(timers);
        let id = start(&mut txs, t(1_000), &request(Method::Options, "z9hG4bKo"));
        assert_eq!(txs.poll_timeout(), Some(t(6_000)));
        assert_eq!(txs.handle_timeout(t(6_000)), vec![Expiry::Timeout(id)]);
    }

    #[test]
    fn non_invite_final_response_ends_it_and_duplicates_are_stray() {
        let mut txs = Transactions::new(TimerConfig::default());
        let req = request(Method::Register, "z9hG4bKr2");
        let id = start(&mut txs, t(0), &req);
        let ok = response_for(&req, 200);
        assert_eq!(respond(&mut txs, t(10), &ok), ResponseVerdict::Deliver(id));
        assert_eq!(respond(&mut txs, t(11), &ok), ResponseVerdict::Stray);
        // A response for another branch or method matches nothing.
        let other = response_for(&request(Method::Register, "z9hG4bKzz"), 200);
        assert_eq!(respond(&mut txs, t(12), &other), ResponseVerdict::Stray);
    }

    #[test]
    fn invite_timer_b_stops_at_provisional_and_error_gets_ack() {
        let mut txs = Transactions::new(TimerConfig::default());
        let inv = request(Method::Invite, "z9hG4bKi1");
        let id = start(&mut txs, t(0), &inv);
        assert_eq!(txs.poll_timeout(), Some(t(32_000)));
        assert_eq!(
            respond(&mut txs, t(50), &response_for(&inv, 180)),
            ResponseVerdict::Deliver(id)
        );
        assert_eq!(txs.poll_timeout(), None, "no Timer B once proceeding");
        let busy = response_for(&inv, 486);
        let ResponseVerdict::DeliverAndAck(got, ack) = respond(&mut txs, t(60), &busy) else {
            panic!("error response to INVITE must be ACKed");
        };
        assert_eq!(got, id);
        let ack = Message::parse(&ack).expect("ACK parses");
        assert_eq!(ack.method(), Some(Method::Ack));
        assert_eq!(ack.request_uri(), Some("sip:bob@example.com"));
        assert_eq!(ack.via().branch(), Some("z9hG4bKi1"));
        assert_eq!(ack.cseq().seq, 5);
        assert_eq!(ack.cseq().method, "ACK");
        assert_eq!(ack.to().tag(), Some("b1"));
        assert_eq!(
            ack.header(HeaderName::Route),
            Some("<sip:proxy.example;lr>")
        );
        assert_eq!(
            txs.client_state(id),
            None,
            "Timer D is zero on reliable transports"
        );
    }

    #[test]
    fn invite_timer_b_fires_without_answer() {
        let mut txs = Transactions::new(TimerConfig::default());
        let id = start(&mut txs, t(0), &request(Method::Invite, "z9hG4bKi2"));
        assert_eq!(txs.handle_timeout(t(32_000)), vec![Expiry::Timeout(id)]);
    }

    #[test]
    fn invite_2xx_enters_accepted_and_passes_retransmissions_until_timer_m() {
        let mut txs = Transactions::new(TimerConfig::default());
        let inv = request(Method::Invite, "z9hG4bKi3");
        let id = start(&mut txs, t(0), &inv);
        let ok = response_for(&inv, 200);
        assert_eq!(respond(&mut txs, t(10), &ok), ResponseVerdict::Deliver(id));
        assert_eq!(txs.client_state(id), Some(ClientState::Accepted));
        assert_eq!(respond(&mut txs, t(500), &ok), ResponseVerdict::Deliver(id));
        assert_eq!(
            respond(&mut txs, t(600), &response_for(&inv, 180)),
            ResponseVerdict::Stray
        );
        assert_eq!(txs.poll_timeout(), Some(t(32_010)));
        assert!(
            txs.handle_timeout(t(32_010)).is_empty(),
            "Timer M ends it silently"
        );
        assert_eq!(txs.client_state(id), None);
    }

    #[test]
    fn server_non_invite_absorbs_retransmissions_then_ends() {
        let mut txs = Transactions::new(TimerConfig::default());
        let req = request(Method::Options, "z9hG4bKs1");
        let m = Message::parse(&req).expect("parses");
        let RequestVerdict::New(id) = txs.on_request(t(0), &m, &req) else {
            panic!("new transaction expected");
        };
        assert_eq!(txs.server_state(id), Some(ServerState::Trying));
        assert_eq!(txs.poll_timeout(), None, "no 100 Trying for non-INVITE");
        assert_eq!(
            txs.on_request(t(1), &m, &req),
            RequestVerdict::Retransmission(None)
        );
        let ok = response_for(&req, 200);
        assert!(txs.respond(t(2), id, 200, &ok));
        assert_eq!(
            txs.server_state(id),
            None,
            "Timer J is zero on reliable transports"
        );
        assert!(!txs.respond(t(3), id, 200, &ok));
    }

    #[test]
    fn server_invite_sends_trying_after_200ms_and_waits_for_ack_timer_h() {
        let mut txs = Transactions::new(TimerConfig::default());
        let inv = request(Method::Invite, "z9hG4bKs2");
        let m = Message::parse(&inv).expect("parses");
        let RequestVerdict::New(id) = txs.on_request(t(0), &m, &inv) else {
            panic!("new transaction expected");
        };
        assert_eq!(txs.poll_timeout(), Some(t(200)));
        assert!(txs.handle_timeout(t(200)).is_empty());
        let trying = txs.poll_transmit().expect("100 Trying sent");
        assert_eq!(
            Message::parse(&trying).ok().and_then(|m| m.status()),
            Some(100)
        );
        assert_eq!(txs.server_state(id), Some(ServerState::Proceeding));
        // A retransmitted INVITE gets the 100 again.
        assert_eq!(
            txs.on_request(t(250), &m, &inv),
            RequestVerdict::Retransmission(Some(trying))
        );
        let busy = response_for(&inv, 486);
        assert!(txs.respond(t(300), id, 486, &busy));
        assert_eq!(txs.server_state(id), Some(ServerState::Completed));
        assert_eq!(txs.poll_timeout(), Some(t(32_300)));
        assert_eq!(txs.handle_timeout(t(32_300)), vec![Expiry::NoAck(id)]);
        assert_eq!(txs.server_state(id), None);
    }

    #[test]
    fn server_invite_error_ack_is_absorbed_and_2xx_ack_goes_to_dialog() {
        let mut txs = Transactions::new(TimerConfig::default());
        let inv = request(Method::Invite, "z9hG4bKs3");
        let m = Message::parse(&inv).expect("parses");
        let RequestVerdict::New(id) = txs.on_request(t(0), &m, &inv) else {
            panic!("new transaction expected");
        };
        let busy = response_for(&inv, 486);
        assert!(txs.respond(t(10), id, 486, &busy));
        let ack = request(Method::Ack, "z9hG4bKs3");
        let ack_m = Message::parse(&ack).expect("parses");
        assert_eq!(
            txs.on_request(t(20), &ack_m, &ack),
            RequestVerdict::AckAbsorbed
        );
        assert_eq!(
            txs.server_state(id),
            None,
            "Timer I is zero on reliable transports"
        );

        let inv2 = request(Method::Invite, "z9hG4bKs4");
        let m2 = Message::parse(&inv2).expect("parses");
        let RequestVerdict::New(id2) = txs.on_request(t(0), &m2, &inv2) else {
            panic!("new transaction expected");
        };
        assert!(txs.respond(t(10), id2, 200, &response_for(&inv2, 200)));
        assert_eq!(txs.server_state(id2), Some(ServerState::Accepted));
        assert_eq!(
            txs.on_request(t(20), &m2, &inv2),
            RequestVerdict::Retransmission(None),
            "absorbed in Accepted (RFC 6026)"
        );
        assert!(
            txs.respond(t(25), id2, 200, &response_for(&inv2, 200)),
            "the TU may resend its 2xx"
        );
        // The 2xx ACK has its own branch: it is the dialog's business.
        let ack2 = request(Method::Ack, "z9hG4bKnew");
        assert_eq!(
            txs.on_request(t(30), &Message::parse(&ack2).expect("parses"), &ack2),
            RequestVerdict::AckForDialog
        );
        assert!(
            txs.handle_timeout(t(32_010)).is_empty(),
            "Timer L ends it silently"
        );
        assert_eq!(txs.server_state(id2), None);
    }

    #[test]
    fn requests_without_the_magic_cookie_are_never_matched() {
        let mut txs = Transactions::new(TimerConfig::default());
        let old = request(Method::Options, "legacy1");
        let m = Message::parse(&old).expect("parses");
        assert!(matches!(
            txs.on_request(t(0), &m, &old),
            RequestVerdict::New(_)
        ));
        assert!(matches!(
            txs.on_request(t(1), &m, &old),
            RequestVerdict::New(_)
        ));
    }

    #[test]
    fn cancel_finds_its_invite() {
        let mut txs = Transactions::new(TimerConfig::default());
        let inv = request(Method::Invite, "z9hG4bKc1");
        let RequestVerdict::New(id) =
            txs.on_request(t(0), &Message::parse(&inv).expect("parses"), &inv)
        else {
            panic!("new transaction expected");
        };
        let cancel = request(Method::Cancel, "z9hG4bKc1");
        let cm = Message::parse(&cancel).expect("parses");
        assert_eq!(txs.invite_for_cancel(&cm), Some(id));
        assert!(matches!(
            txs.on_request(t(1), &cm, &cancel),
            RequestVerdict::New(_)
        ));
    }

    #[test]
    fn transport_loss_fails_pending_clients() {
        let mut txs = Transactions::new(TimerConfig::default());
        let a = start(&mut txs, t(0), &request(Method::Register, "z9hG4bKa"));
        let inv = request(Method::Invite, "z9hG4bKb");
        let b = start(&mut txs, t(0), &inv);
        respond(&mut txs, t(1), &response_for(&inv, 200));
        assert_eq!(
            txs.transport_closed(),
            vec![a],
            "an accepted INVITE has not failed"
        );
        assert_eq!(txs.poll_timeout(), None);
        assert_eq!(txs.client_state(b), None);
    }

    #[test]
    fn sent_by_comparison() {
        assert!(sent_by_matches("h.invalid", "H.INVALID", None));
        assert!(sent_by_matches("10.0.0.1:5060", "10.0.0.1", Some(5060)));
        assert!(!sent_by_matches("10.0.0.1:5060", "10.0.0.1", None));
        assert!(sent_by_matches("[::1]", "[::1]", None));
        assert!(sent_by_matches("[::1]:5", "[::1]", Some(5)));
    }
}
