//! The relay's SIP proxy, sans-IO: WebSocket frames, UDP datagrams and time
//! in; frames, datagrams and deadlines out. The tokio shell in `net` only
//! moves bytes.
//!
//! What it does to each message (RFC 3261 §16, RFC 5626, RFC 5658, RFC 7118):
//! - browser → PBX requests: checked and decremented Max-Forwards, our own
//!   Route entries popped, our Via added (its branch derived from the
//!   browser's, so CANCEL and the ACK of an error match), a double
//!   Record-Route on dialog-creating requests, and the `.invalid` Contact
//!   rewritten onto the relay's UDP address with a signed flow token. It
//!   always goes to the configured PBX, whatever the Request-URI and Route
//!   say: never an open relay.
//! - PBX → browser requests: routed by the flow token in our Record-Route
//!   or in the Request-URI (the rewritten Contact); a token we did not sign,
//!   or whose WebSocket is gone, gets `430 Flow Failed`.
//! - responses: our Via popped; they follow the next Via, which toward UDP
//!   must name a PBX address.
//!
//! The browser side is reliable and never retransmits, so toward the PBX
//! (UDP) the relay keeps each request's client transaction: it retransmits
//! (Timers A/E) and, when the PBX stays silent (Timer B/F) or is
//! unreachable (ICMP), answers the browser `408` or `503` itself.

mod edit;
pub mod events;
pub mod flow;
mod hangup;
pub mod limits;
pub mod pbx;
mod pending;
mod shutdown;
pub use self::shutdown::SHUTTING_DOWN;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use sipline_core::Instant;
use sipline_core::sip::{
    Header, HeaderName, Message, NameAddr, Uri, Via, response_to, split_commas,
};

use self::edit::{Action, bad_request, rewrite, rewrite_body, without_first};
use self::events::{AdminEvent, CallTracker, Sender};
pub use self::flow::{ConnId, FlowKey, TokenError};
use self::hangup::{Caller, Dialog};
use self::limits::{Bucket, RateLimit};
use self::pbx::{ECHO_EXTENSION, EmbeddedPbx, MiniPbx, RegisterOutcome, Route};
use self::pending::Pending;
use crate::media::calls::{Carrier, Command, MediaCalls, MediaEnd, MediaError, MediaId, Side};
use crate::ops::metrics::{Metrics, Reject};

/// URI parameter that carries the flow token in a rewritten Contact.
const FLOW_PARAM: &str = "sl-flow";

/// Via parameter that marks a request the relay made itself toward a
/// browser (a BYE ending a call): the answer stops here.
const LOCAL_PARAM: &str = "sl-local";

/// The largest UDP datagram (IPv4's payload bound): a message that grows
/// past it when the relay adds its headers gets `513` instead.
const MAX_DATAGRAM: usize = 65_507;

/// The longest Request-URI accepted (`414` beyond): real ones are a few
/// dozen bytes, and one UDP datagram must hold the whole message.
const MAX_REQUEST_URI: usize = 4096;

/// Requests one connection may have in flight toward the PBX: one browser
/// must not fill the relay's table for everyone.
const MAX_PENDING_PER_CONN: usize = 64;

/// What the proxy needs to know about its surroundings.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The PBX addresses: browser requests go to the first one that is not
    /// known to be down, and UDP is accepted from these only.
    pub pbx: Vec<SocketAddr>,
    /// The relay's UDP address as the PBX reaches it (Via, Record-Route,
    /// Contact).
    pub sip_addr: SocketAddr,
    /// The relay's host name as browsers see it (their side's Via and
    /// Record-Route).
    pub ws_host: String,
    /// RFC 3261 T1.
    pub t1: Duration,
    /// How long a request toward the PBX may go unanswered (Timer B/F)
    /// before the browser gets `408`.
    pub request_timeout: Duration,
    /// Most requests in flight toward the PBX; more get `503`.
    pub max_pending: usize,
    /// Most Contacts remembered per connection.
    pub max_contacts_per_conn: usize,
    /// Most WebSocket connections from one IP address.
    pub max_connections_per_ip: usize,
    /// Messages per connection.
    pub rate: RateLimit,
    /// The embedded mini PBX, when the relay serves browsers on its own
    /// instead of fronting a PBX.
    pub embedded: Option<EmbeddedPbx>,
}

impl ProxyConfig {
    /// Defaults around the given PBX and the relay's own UDP address.
    pub fn new(pbx: Vec<SocketAddr>, sip_addr: SocketAddr) -> Self {
        Self {
            pbx,
            sip_addr,
            ws_host: String::from("relay.invalid"),
            t1: Duration::from_millis(500),
            request_timeout: Duration::from_secs(32),
            max_pending: 10_000,
            max_contacts_per_conn: 8,
            max_connections_per_ip: 50,
            rate: RateLimit::default(),
            embedded: None,
        }
    }
}

/// Something for the shell to send.
#[derive(Debug)]
pub enum Output {
    /// One WebSocket frame to one connection.
    Ws {
        /// Which connection.
        conn: ConnId,
        /// The SIP message (or keep-alive).
        frame: Vec<u8>,
    },
    /// One UDP datagram to the PBX.
    Udp {
        /// A PBX address.
        to: SocketAddr,
        /// The SIP message.
        datagram: Vec<u8>,
    },
    /// Work for the media shell; it comes before the message whose SDP
    /// names the ports, so that they are bound when the peer learns them.
    Media(Command),
}

/// Most dialogs remembered for ending calls on media failure.
const MAX_DIALOGS: usize = 100_000;

/// One browser connection.
#[derive(Debug)]
struct Conn {
    /// Where it comes from, for the per-address limit.
    ip: IpAddr,
    /// Its message budget.
    bucket: Bucket,
    /// Its requests in flight toward the PBX.
    in_flight: usize,
    /// Contacts rewritten for this connection: the token-bearing user part
    /// and the original URI, to restore Request-URIs and REGISTER answers.
    contacts: VecDeque<(String, String)>,
}

/// The proxy.
#[derive(Debug)]
pub struct Proxy {
    cfg: ProxyConfig,
    key: FlowKey,
    conns: HashMap<ConnId, Conn>,
    pending: HashMap<String, Pending>,
    /// When each pending request next needs attention, in order, kept in
    /// step with `pending`: no event scans the whole table.
    deadlines: std::collections::BTreeSet<(Instant, String)>,
    /// PBX addresses that sent ICMP unreachable, until when to avoid them.
    down: HashMap<SocketAddr, Instant>,
    out: VecDeque<Output>,
    calls: CallTracker,
    events: Vec<AdminEvent>,
    pbx: Option<MiniPbx>,
    /// Handshakes admitted and not yet opened, per address, until when.
    reserved: HashMap<IpAddr, Vec<Instant>>,
    /// (connection, address of record) pairs with a binding.
    registered: std::collections::HashSet<(ConnId, String)>,
    /// The calls' media, when the relay carries it.
    media: Option<MediaCalls>,
    /// Dialogs of calls with media, to end them with a BYE each way.
    dialogs: HashMap<(ConnId, String), Dialog>,
    /// Embedded PBX: the connection that took over from one that is gone
    /// (a browser that reconnected), for the dialogs whose route set still
    /// names the old one.
    successors: HashMap<ConnId, ConnId>,
    /// Calls whose media failed before they were answered: ended with
    /// BYEs once the ACK of their 2xx passes. The value says why.
    doomed: HashMap<(ConnId, String), &'static str>,
    /// Counters for `/metrics`.
    pub metrics: Metrics,
}
impl Proxy {
    /// A proxy whose flow tokens are signed with `key`.
    pub fn new(cfg: ProxyConfig, key: FlowKey) -> Self {
        let pbx = cfg.embedded.clone().map(MiniPbx::new);
        Self {
            pbx,
            registered: Default::default(),
            reserved: HashMap::new(),
            cfg,
            key,
            conns: HashMap::new(),
            pending: HashMap::new(),
            deadlines: std::collections::BTreeSet::new(),
            down: HashMap::new(),
            out: VecDeque::new(),
            calls: CallTracker::default(),
            events: Vec::new(),
            media: None,
            dialogs: HashMap::new(),
            successors: HashMap::new(),
            doomed: HashMap::new(),
            metrics: Metrics::default(),
        }
    }

    /// The proxy carrying the calls' media: their SDP is rewritten and
    /// their ports come from `media`'s range.
    pub fn with_media(mut self, media: MediaCalls) -> Self {
        self.media = Some(media);
        self
    }

    /// The `/metrics` text, with the media gauges brought up to date.
    pub fn render_metrics(&mut self) -> String {
        if let Some(m) = &self.media {
            let (used, capacity) = m.ports();
            self.metrics.media_calls = m.active();
            self.metrics.media_ports_in_use = used;
            self.metrics.media_ports_capacity = capacity;
        }
        self.metrics.render()
    }

    /// The configuration in use.
    pub fn config(&self) -> &ProxyConfig {
        &self.cfg
    }

    /// The flow token for a connection (what its rewritten Contact carries).
    pub fn token(&self, conn: ConnId) -> String {
        self.key.token(conn)
    }

    /// A browser connected.
    /// Whether another connection from `ip` may open (checked before the
    /// WebSocket handshake, which is refused with HTTP 503 otherwise). An
    /// admitted handshake holds its slot until it opens or ten seconds
    /// pass, so that parallel handshakes cannot exceed the limit.
    pub fn admit(&mut self, now: Instant, ip: IpAddr) -> bool {
        let slots = self.reserved.entry(ip).or_default();
        slots.retain(|until| *until > now);
        let held = slots.len();
        let open = self.conns.values().filter(|c| c.ip == ip).count();
        let ok = open + held < self.cfg.max_connections_per_ip;
        if ok {
            slots.push(now + Duration::from_secs(10));
        } else {
            self.metrics.reject(Reject::TooManyConnections);
        }
        if held == 0 && !ok {
            self.reserved.remove(&ip);
        }
        ok
    }

    /// A browser connected from `ip`.
    pub fn ws_opened(&mut self, now: Instant, conn: ConnId, ip: IpAddr) {
        if let Some(slots) = self.reserved.get_mut(&ip) {
            slots.pop();
            if slots.is_empty() {
                self.reserved.remove(&ip);
            }
        }
        let conn_state = Conn {
            ip,
            bucket: Bucket::new(now, self.cfg.rate),
            in_flight: 0,
            contacts: VecDeque::new(),
        };
        self.conns.insert(conn, conn_state);
        self.metrics.connections_open += 1;
        self.events.push(AdminEvent::Connected { session: conn });
    }
    /// A browser's WebSocket closed: its flow is gone, and so are the
    /// requests it had in flight.
    pub fn ws_closed(&mut self, conn: ConnId) {
        // Its unanswered calls end with it: nobody is left to answer or
        // cancel them, and their ports must come back.
        if let Some(media) = self.media.as_mut() {
            for call_id in media.unanswered_of(conn) {
                media.close(conn, &call_id);
                let key = (conn, call_id);
                self.dialogs.remove(&key);
                self.doomed.remove(&key);
            }
            self.flush_media();
        }
        if self.conns.remove(&conn).is_some() {
            self.metrics.connections_open -= 1;
            let kept = self
                .media
                .as_ref()
                .map(|m| m.calls_of(conn))
                .unwrap_or_default();
            self.calls.connection_closed(conn, &kept, &mut self.events);
            if let Some(pbx) = &mut self.pbx {
                pbx.connection_closed(conn);
            }
            self.events.push(AdminEvent::Disconnected { session: conn });
        }
        let gone: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.conn == conn)
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.take_pending(&key);
        }
    }

    /// Number of live browser connections.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Next thing to send.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Everything that happened since the last call, for the admin stream.
    /// Registration events also keep the registrations gauge.
    pub fn drain_events(&mut self) -> Vec<AdminEvent> {
        let events = std::mem::take(&mut self.events);
        for e in &events {
            match e {
                AdminEvent::Registered { session, client } => {
                    self.registered.insert((*session, client.clone()));
                }
                AdminEvent::Unregistered { session, client } => {
                    self.registered.remove(&(*session, client.clone()));
                }
                AdminEvent::Disconnected { session } => {
                    self.registered.retain(|(c, _)| c != session)
                }
                _ => {}
            }
        }
        self.metrics.registrations = self.registered.len();
        events
    }

    /// Calls being set up or in progress (a graceful shutdown waits for
    /// them).
    pub fn active_calls(&self) -> usize {
        self.calls.active()
    }
    /// When [`Self::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let pending = self.deadlines.first().map(|(t, _)| *t);
        match (pending, self.calls.next_expiry()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn ws(&mut self, conn: ConnId, frame: Vec<u8>) {
        self.out.push_back(Output::Ws { conn, frame });
    }

    fn udp(&mut self, to: SocketAddr, datagram: Vec<u8>) {
        self.out.push_back(Output::Udp { to, datagram });
    }

    /// One frame from a browser.
    pub fn handle_ws(&mut self, now: Instant, conn: ConnId, frame: &[u8]) {
        let rate = self.cfg.rate;
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if let Err(wait) = c.bucket.take(now, rate) {
            self.metrics.reject(Reject::RateLimited);
            // Requests learn when to come back; anything else is dropped.
            if let Ok(msg) = Message::parse(frame)
                && msg.is_request()
                && msg.method() != Some("ACK")
            {
                let secs = wait.as_secs().max(1).to_string();
                let mut b = response_to(&msg, 503, "Rate Limit Exceeded", Some("sl"));
                b.header("Retry-After", &secs);
                self.metrics.local_responses += 1;
                self.ws(conn, b.finish(None, b""));
            }
            return;
        }
        if !frame.is_empty() && frame.iter().all(|&b| b == b'\r' || b == b'\n') {
            if frame.len() >= 4 {
                self.ws(conn, b"\r\n".to_vec()); // RFC 5626 §3.5.1 pong
            }
            return;
        }
        let msg = match Message::parse(frame) {
            Ok(m) => m,
            Err(e) => {
                self.metrics.reject(Reject::Malformed);
                if let Some(resp) = bad_request(frame, &e.to_string()) {
                    self.ws(conn, resp);
                }
                return;
            }
        };
        self.metrics.count_in(&msg);
        if msg.is_request() {
            self.browser_request(now, conn, &msg, frame);
        } else {
            self.browser_response(now, conn, &msg);
        }
    }

    /// One datagram on the SIP port.
    pub fn handle_udp(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        if !self.cfg.pbx.contains(&from) {
            self.metrics.reject(Reject::NotPbx);
            return;
        }
        self.down.remove(&from);
        if datagram.iter().all(|&b| b == b'\r' || b == b'\n') {
            return; // keep-alive
        }
        let Ok(msg) = Message::parse(datagram) else {
            self.metrics.reject(Reject::Malformed);
            return; // RFC 3261 §18.3: a bad datagram is discarded
        };
        self.metrics.count_in(&msg);
        if msg.is_request() {
            self.pbx_request(now, from, &msg);
        } else {
            self.pbx_response(now, from, &msg);
        }
    }

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
                self.metrics.retransmissions += 1;
                self.udp(to, datagram);
            }
        }
        self.down.retain(|_, until| *until > now);
        self.calls.expire(now);
    }
    /// Removes a pending request and its deadline.
    fn take_pending(&mut self, key: &str) -> Option<Pending> {
        let p = self.pending.remove(key)?;
        self.deadlines.remove(&(p.next_deadline(), key.to_owned()));
        if let Some(c) = self.conns.get_mut(&p.conn).filter(|_| !p.local) {
            c.in_flight = c.in_flight.saturating_sub(1);
        }
        Some(p)
    }

    /// Sends the browser a response the relay makes itself for a request it
    /// forwarded (timeout, unreachable PBX).
    fn answer_locally(&mut self, now: Instant, p: &Pending, code: u16, reason: &str) {
        if p.local || p.method == "ACK" {
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
                self.metrics.local_responses += 1;
                self.ws(p.conn, resp);
            }
        }
    }

    fn pick_pbx(&self) -> Option<SocketAddr> {
        let up = self.cfg.pbx.iter().find(|a| !self.down.contains_key(a));
        up.or(self.cfg.pbx.first()).copied()
    }

    /// Which PBX a browser request goes to. A CANCEL (and the ACK of an
    /// error) follows its INVITE (RFC 3261 §9.1); a request whose route set
    /// or Request-URI names one of the configured PBXs goes to that one, so
    /// that a dialog stays with the PBX that holds it; anything else goes
    /// to the first PBX that is up. Never anywhere but a configured PBX.
    fn destination(&self, conn: ConnId, msg: &Message<'_>) -> Option<SocketAddr> {
        if matches!(msg.method(), Some("CANCEL" | "ACK")) {
            let branch = self.branch(
                &self.key.token(conn),
                msg.via().branch().unwrap_or_default(),
            );
            if let Some(p) = self.pending.get(&pending::key(&branch, "INVITE")) {
                return Some(p.to);
            }
        }
        let named = |uri: Uri<'_>| {
            self.cfg
                .pbx
                .iter()
                .copied()
                .find(|a| host_port_is(&uri, *a))
        };
        let next_route = msg
            .header_values(HeaderName::Route)
            .filter(|v| self.own_route(v).is_none())
            .find_map(|v| NameAddr::parse(v).map(|na| na.uri));
        next_route
            .and_then(named)
            .or_else(|| msg.request_uri().and_then(Uri::parse).and_then(named))
            .or_else(|| self.pick_pbx())
    }

    /// Whether a Route value names this relay (either of our Record-Route
    /// entries), and the flow token it carries if any.
    fn own_route(&self, value: &str) -> Option<Option<String>> {
        is_own_route(value, self.cfg.sip_addr, &self.cfg.ws_host)
    }

    fn browser_request(&mut self, now: Instant, conn: ConnId, msg: &Message<'_>, raw: &[u8]) {
        let method = msg.method().unwrap_or_default();
        let Some(hops) = self.check_max_forwards(msg) else {
            self.reply_ws(conn, msg, 483, "Too Many Hops");
            return;
        };
        if msg.request_uri().is_some_and(|u| u.len() > MAX_REQUEST_URI) {
            self.metrics.reject(Reject::Malformed);
            self.reply_ws(conn, msg, 414, "Request-URI Too Long");
            return;
        }
        if self.pbx.is_some() {
            self.embedded_request(now, conn, msg, hops);
            return;
        }
        let Some(pbx) = self.destination(conn, msg) else {
            self.reply_ws(conn, msg, 503, "No PBX Configured");
            return;
        };
        let is_ack = method == "ACK";
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
        let via = format!(
            "SIP/2.0/UDP {};branch={branch};rport;sl={token}",
            self.cfg.sip_addr
        );
        let record_route = needs_record_route(msg).then(|| {
            format!(
                "<sip:{};lr;r2=on>, <sip:{token}@{};transport=ws;lr;r2=on>",
                self.cfg.sip_addr, self.cfg.ws_host
            )
        });
        let mut top: Vec<(&str, &str)> = vec![("Via", &via)];
        if let Some(rr) = &record_route {
            top.push(("Record-Route", rr));
        }
        let mut hop = HopEdits::new(hops, self.leading_own_routes(msg));
        let mut rewritten = Vec::new();
        let edit = |h: &Header<'_>| {
            hop.apply(h).unwrap_or_else(|| match h.name {
                HeaderName::Contact => self.rewrite_contacts(h, &token, &mut rewritten),
                ref n if is_asserted_identity(n) => Action::Drop,
                _ => Action::Keep,
            })
        };
        let datagram = rewrite_body(msg, None, &top, edit, body_of(msg, &body));
        let datagram = with_max_forwards(msg, datagram);
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
            let p = Pending::new(
                now,
                conn,
                pbx,
                method,
                datagram.clone(),
                raw.to_vec(),
                &self.cfg,
            );
            // A repeated request replaces its earlier entry.
            self.take_pending(&key);
            self.deadlines.insert((p.next_deadline(), key.clone()));
            self.pending.insert(key, p);
            if let Some(c) = self.conns.get_mut(&conn) {
                c.in_flight += 1;
            }
        }
        self.metrics.count_out(msg);
        let cancel = (method == "INVITE" && msg.to().tag().is_none())
            .then(|| shutdown::cancel_of(&datagram))
            .flatten();
        self.udp(pbx, datagram);
        if method == "INVITE" {
            // A stateful proxy answers an INVITE `100 Trying` itself (RFC
            // 3261 §16.2): the browser may CANCEL from then on (§9.1), and
            // the PBX's own 100 stops here (§16.7).
            self.metrics.local_responses += 1;
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

    fn browser_response(&mut self, now: Instant, conn: ConnId, msg: &Message<'_>) {
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
            .and_then(|i| self.cfg.pbx.get(i).copied());
        let Some(to) = named.or_else(|| {
            vias.next()
                .and_then(Via::parse)
                .and_then(|v| via_address(&v))
        }) else {
            self.metrics.reject(Reject::NotOurs);
            return;
        };
        if !self.cfg.pbx.contains(&to) {
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
        let edit = |h: &Header<'_>| match h.name {
            HeaderName::Via if !popped => {
                popped = true;
                without_first(h.value, 1).map_or(Action::Drop, Action::Replace)
            }
            HeaderName::Contact => self.rewrite_contacts(h, &token, &mut rewritten),
            ref n if is_asserted_identity(n) => Action::Drop,
            _ => Action::Keep,
        };
        let datagram = rewrite_body(msg, None, &[], edit, body_of(msg, &body));
        self.remember_contacts(conn, rewritten);
        self.calls
            .observe(now, conn, Sender::Browser, msg, &mut self.events);
        self.metrics.count_out(msg);
        self.udp(to, datagram);
        self.media_lifecycle(now, conn, msg, Side::Browser, to);
    }

    fn pbx_request(&mut self, now: Instant, from: SocketAddr, msg: &Message<'_>) {
        let Some(hops) = self.check_max_forwards(msg) else {
            self.reply_udp(from, msg, 483, "Too Many Hops");
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
            self.reply_udp(from, msg, 404, "Not Found");
            return;
        };
        let conn = match self.key.verify(&token) {
            Ok(conn) if self.conns.contains_key(&conn) => conn,
            Ok(gone) => {
                // A BYE for a call whose browser left still ends its media.
                if msg.method() == Some("BYE") {
                    self.media_lifecycle(now, gone, msg, Side::Pbx, from);
                }
                self.metrics.reject(Reject::FlowGone);
                self.reply_udp(from, msg, 430, "Flow Failed");
                return;
            }
            // A token of an earlier run: its connection is gone too.
            Err(TokenError::Stale) => {
                self.metrics.reject(Reject::FlowGone);
                self.reply_udp(from, msg, 430, "Flow Failed");
                return;
            }
            Err(_) => {
                self.metrics.reject(Reject::FlowForged);
                self.reply_udp(from, msg, 430, "Flow Failed");
                return;
            }
        };
        let body = match self.media_body(conn, msg, Side::Pbx) {
            Ok(body) => body,
            Err(e) if msg.method() != Some("ACK") => {
                let (code, reason) = e.status();
                self.reply_udp(from, msg, code, reason);
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
        let px = self.cfg.pbx.iter().position(|a| *a == from).unwrap_or(0);
        let via = format!("SIP/2.0/WSS {};branch={branch};px={px}", self.cfg.ws_host);
        let record_route = needs_record_route(msg).then(|| {
            format!(
                "<sip:{token}@{};transport=ws;lr;r2=on>, <sip:{};lr;r2=on>",
                self.cfg.ws_host, self.cfg.sip_addr
            )
        });
        let mut top: Vec<(&str, &str)> = vec![("Via", &via)];
        if let Some(rr) = &record_route {
            top.push(("Record-Route", rr));
        }
        let mut hop = HopEdits::new(hops, routes_to_pop);
        let edit = |h: &Header<'_>| hop.apply(h).unwrap_or(Action::Keep);
        let frame = rewrite_body(msg, restored.as_deref(), &top, edit, body_of(msg, &body));
        let frame = with_max_forwards(msg, frame);
        self.calls
            .observe(now, conn, Sender::Far, msg, &mut self.events);
        self.metrics.count_out(msg);
        self.ws(conn, frame);
        self.media_lifecycle(now, conn, msg, Side::Pbx, from);
    }

    fn pbx_response(&mut self, now: Instant, from: SocketAddr, msg: &Message<'_>) {
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
        if let Some(p) = self.pending.get_mut(&key) {
            if let Some(rtt) = p.first_answer(now) {
                self.metrics.observe_pbx_rtt(rtt);
            } // A final answer ends our transaction; a provisional one ends
            // INVITE retransmissions (Timer A) and keeps Timer F running for
            // the others, as RFC 3261 §17.1 does.
            if code >= 200 || p.method == "INVITE" {
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
        let is_register = msg.cseq().method == "REGISTER";
        let mut ours_bound = false;
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
            _ => Action::Keep,
        };
        let frame = rewrite_body(msg, None, &[], edit, body_of(msg, &body));
        if is_register {
            CallTracker::observe_register(conn, msg, !ours_bound, &mut self.events);
        }
        self.calls
            .observe(now, conn, Sender::Far, msg, &mut self.events);
        self.metrics.count_out(msg);
        self.ws(conn, frame);
        self.media_lifecycle(now, conn, msg, Side::Pbx, from);
    }

    /// A browser request when the relay is the PBX: in-dialog requests
    /// follow the flow token of our Record-Route; REGISTER goes to the
    /// registrar; anything else is admitted (RFC 3261 §22.3) and routed to
    /// the callee's WebSocket.
    fn embedded_request(&mut self, now: Instant, conn: ConnId, msg: &Message<'_>, hops: u32) {
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
                self.metrics.calls_recovered += 1;
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
        if msg.method() == Some("REGISTER") {
            let (resp, outcome) = pbx.register(key, now, conn, msg);
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
            self.metrics.local_responses += 1;
            self.ws(conn, resp);
            return;
        }
        if let Some(refusal) = pbx.admit(key, now, conn, msg) {
            self.metrics.local_responses += 1;
            self.ws(conn, refusal);
            return;
        }
        match pbx.route(now, msg) {
            Route::Echo => self.echo_request(now, conn, msg),
            Route::Reply { code, reason } => {
                if msg.method() != Some("ACK") {
                    self.metrics.local_responses += 1;
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

    /// The echo extension: an INVITE (or re-INVITE) is answered at once
    /// with the browser's own media coming back; BYE ends it. Its
    /// in-dialog requests come back here by its Contact.
    fn echo_request(&mut self, now: Instant, conn: ConnId, msg: &Message<'_>) {
        let call_id = msg.call_id();
        match msg.method() {
            Some("INVITE" | "UPDATE") => {
                let answer = match self.media.as_mut() {
                    None => Err((480, "Echo Needs Media")),
                    Some(_) if !is_sdp(msg) => Err((488, "Echo Needs An Offer")),
                    Some(media) => media.echo(conn, call_id, msg.body()).map_err(|e| {
                        tracing::warn!(call_id, error = %e, "echo call refused");
                        self.metrics.media_refused(&e);
                        e.status()
                    }),
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
                self.metrics.local_responses += 1;
                self.ws(conn, response);
            }
            Some("ACK") => {}
            Some("BYE") => {
                if let Some(media) = self.media.as_mut() {
                    media.close(conn, call_id);
                }
                self.dialogs.remove(&(conn, call_id.to_owned()));
                self.flush_media();
                self.calls
                    .observe(now, conn, Sender::Browser, msg, &mut self.events);
                self.reply_ws(conn, msg, 200, "OK");
            }
            Some("OPTIONS" | "INFO") => self.reply_ws(conn, msg, 200, "OK"),
            _ => self.reply_ws(conn, msg, 405, "Method Not Allowed"),
        }
    }

    /// Sends a browser's request to another browser: our Via (naming the
    /// sender, so the answer finds its way back), our Route entries popped,
    /// Max-Forwards decremented.
    #[allow(clippy::too_many_arguments)]
    fn forward_ws(
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
    fn response_seal(&self, sender_token: &str, recipient: ConnId, branch: &str) -> String {
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
    fn successor(&self, mut conn: ConnId) -> ConnId {
        for _ in 0..8 {
            match self.successors.get(&conn) {
                Some(next) => conn = *next,
                None => break,
            }
        }
        conn
    }

    /// The count of Route values at the top that are ours (at most our two
    /// Record-Route entries).
    fn leading_own_routes(&self, msg: &Message<'_>) -> usize {
        msg.header_values(HeaderName::Route)
            .take(2)
            .take_while(|v| self.own_route(v).is_some())
            .count()
    }

    /// Max-Forwards after this hop, `None` when it is exhausted (RFC 3261
    /// §16.3 step 3).
    fn check_max_forwards(&self, msg: &Message<'_>) -> Option<u32> {
        match msg
            .header(HeaderName::MaxForwards)
            .and_then(|v| v.trim().parse::<u32>().ok())
        {
            Some(0) => None,
            Some(n) => Some(n - 1),
            None => Some(69),
        }
    }

    /// The Via branch toward the other side: a keyed hash of the flow and
    /// the incoming branch, so that a CANCEL or the ACK of an error (same
    /// incoming branch) gets the same outgoing one (RFC 3261 §16.11).
    fn branch(&self, token: &str, incoming: &str) -> String {
        let mut b = String::from("z9hG4bK");
        b.push_str(
            &self
                .key
                .digest(&[token.as_bytes(), b"|", incoming.as_bytes()]),
        );
        b
    }

    /// Rewrites every browser Contact of a header line onto the relay.
    fn rewrite_contacts(
        &self,
        h: &Header<'_>,
        token: &str,
        rewritten: &mut Vec<(String, String)>,
    ) -> Action {
        let mut values = Vec::new();
        let mut changed = false;
        for value in split_commas(h.value) {
            match NameAddr::parse(value) {
                // Every Contact from a browser is reachable only through its
                // WebSocket: none may point the PBX elsewhere.
                Some(na) => {
                    let user = na.uri.user.unwrap_or("ws");
                    let params = na.params.0;
                    values.push(format!(
                        "<sip:{user}@{};{FLOW_PARAM}={token}>{params}",
                        self.cfg.sip_addr
                    ));
                    rewritten.push((user.to_owned(), na.uri_text.to_owned()));
                    changed = true;
                }
                _ => values.push(value.to_owned()),
            }
        }
        if changed {
            Action::Replace(values.join(", "))
        } else {
            Action::Keep
        }
    }

    fn remember_contacts(&mut self, conn: ConnId, rewritten: Vec<(String, String)>) {
        let max = self.cfg.max_contacts_per_conn;
        if let Some(c) = self.conns.get_mut(&conn) {
            for (user, original) in rewritten {
                c.contacts.retain(|(u, _)| *u != user);
                c.contacts.push_back((user, original));
                while c.contacts.len() > max {
                    c.contacts.pop_front();
                }
            }
        }
    }

    fn original_contact(&self, conn: ConnId, user: &str) -> Option<String> {
        let c = self.conns.get(&conn)?;
        c.contacts
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, orig)| orig.clone())
    }

    /// In a REGISTER answer, puts back the browser's own Contact URIs so
    /// that it recognises its binding (RFC 3261 §10.2.4).
    fn restore_contacts(&self, conn: ConnId, h: &Header<'_>) -> Action {
        let mut values = Vec::new();
        let mut changed = false;
        for value in split_commas(h.value) {
            let restored = NameAddr::parse(value).and_then(|na| {
                // Only this connection's own bindings are shown as its own.
                let ours = na.uri.params.value(FLOW_PARAM) == Some(self.key.token(conn).as_str())
                    && host_port_is(&na.uri, self.cfg.sip_addr);
                if !ours {
                    return None;
                }
                let orig = self.original_contact(conn, na.uri.user.unwrap_or("ws"))?;
                Some(format!("<{orig}>{}", na.params.0))
            });
            changed |= restored.is_some();
            values.push(restored.unwrap_or_else(|| value.to_owned()));
        }
        if changed {
            Action::Replace(values.join(", "))
        } else {
            Action::Keep
        }
    }

    /// A browser that reconnected goes on with its calls (RFC 5626 flow
    /// recovery): its first request in a call's dialog from the new
    /// connection (the SDK's re-INVITE) moves the call's media and dialog
    /// to it. Only the browser itself can: the dialog's tags must match and
    /// the request must carry the browser's own `.invalid` Contact, which
    /// the relay never lets out. The old connection may still look open
    /// (a phone that changed network leaves a half-open socket behind).
    fn adopt_call(&mut self, conn: ConnId, msg: &Message<'_>) {
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
        self.metrics.calls_recovered += 1;
    }

    /// Hands a message's SDP to the media table: `Ok(Some(body))` is the
    /// body to forward instead, `Ok(None)` keeps the message's own (no SDP,
    /// or no media carried), `Err` says why the SDP cannot be carried.
    fn media_body(
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
            if msg.method() == Some("INVITE") && msg.body().is_empty() {
                media.offerless(conn, call_id);
            }
            return Ok(None);
        }
        let carrier = match msg.method() {
            Some(method) => Carrier::Request(method),
            None => Carrier::Response(msg.cseq().method),
        };
        let out = media.sdp(conn, call_id, from, carrier, msg.body());
        if let Err(e) = &out {
            tracing::warn!(call_id, error = %e, "SDP not carried");
            self.metrics.media_refused(e);
        }
        self.flush_media();
        out
    }

    /// Queues the media table's commands for the shell.
    fn flush_media(&mut self) {
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
    fn media_lifecycle(
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
            (Some("INVITE"), _) if msg.to().tag().is_none() && self.dialogs.len() < MAX_DIALOGS => {
                let caller = match from {
                    Side::Browser => Caller::Browser,
                    Side::Pbx => Caller::Pbx,
                };
                // A retransmitted INVITE must not reset what was learnt.
                self.dialogs
                    .entry(key)
                    .or_insert_with(|| Dialog::from_invite(msg, caller, Some(pbx)));
            }
            (Some("BYE"), _) => {
                media.close(conn, &key.1);
                self.dialogs.remove(&key);
                self.doomed.remove(&key);
            }
            (Some("ACK"), _) => {
                if let Some(reason) = self.doomed.remove(&key) {
                    self.hang_up(now, conn, &key.1, reason);
                }
            }
            (Some(_), _) => {
                if let Some(d) = self.dialogs.get_mut(&key) {
                    d.request(msg, from == Side::Browser);
                }
            }
            (None, Some(code)) if msg.cseq().method == "INVITE" => {
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
    fn hang_up(&mut self, now: Instant, conn: ConnId, call_id: &str, reason: &'static str) {
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
            "SIP/2.0/UDP {};branch=z9hG4bK{tag};rport;sl={token}",
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
        let pending_key = pending::key(&byes.pbx_branch, "BYE");
        let p = Pending::local(now, conn, pbx, "BYE", byes.to_pbx.clone(), &self.cfg);
        self.deadlines
            .insert((p.next_deadline(), pending_key.clone()));
        self.pending.insert(pending_key, p);
        self.udp(pbx, byes.to_pbx);
    }

    fn reply_ws(&mut self, conn: ConnId, msg: &Message<'_>, code: u16, reason: &str) {
        if msg.method() == Some("ACK") {
            return;
        }
        self.metrics.local_responses += 1;
        let resp = response_to(msg, code, reason, Some("sl")).finish(None, b"");
        self.ws(conn, resp);
    }

    fn reply_udp(&mut self, to: SocketAddr, msg: &Message<'_>, code: u16, reason: &str) {
        if msg.method() == Some("ACK") {
            return;
        }
        self.metrics.local_responses += 1;
        let resp = response_to(msg, code, reason, Some("sl")).finish(None, b"");
        self.udp(to, resp);
    }
}

/// The body to forward: the rewritten SDP, else the message's own.
fn body_of<'m>(msg: &'m Message<'_>, rewritten: &'m Option<String>) -> &'m [u8] {
    rewritten.as_deref().map_or(msg.body(), str::as_bytes)
}

/// Whether a message carries SDP (RFC 3264): `application/sdp`, with or
/// without parameters.
fn is_sdp(msg: &Message<'_>) -> bool {
    !msg.body().is_empty()
        && msg.header(HeaderName::ContentType).is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/sdp"))
        })
}

/// Dialog-creating requests get our Record-Route (RFC 3261 §16.6 step 4);
/// REGISTER must not, and in-dialog requests already follow the route set.
fn needs_record_route(msg: &Message<'_>) -> bool {
    matches!(msg.method(), Some("INVITE" | "SUBSCRIBE" | "REFER")) && msg.to().tag().is_none()
}

/// Whether every Contact value is `*` or parses: a value the relay cannot
/// read, it cannot rewrite, so it must not reach the PBX.
fn contacts_sound(msg: &Message<'_>) -> bool {
    msg.header_values(HeaderName::Contact)
        .all(|v| v == "*" || NameAddr::parse(v).is_some())
}

/// Identity headers a PBX trusts from its peers (RFC 3325 §5): a browser
/// must not be able to set them through the relay.
fn is_asserted_identity(name: &HeaderName<'_>) -> bool {
    matches!(name, HeaderName::Other(n) if n.eq_ignore_ascii_case("P-Asserted-Identity")
        || n.eq_ignore_ascii_case("Remote-Party-ID"))
}

/// Whether a Route or Record-Route value names the relay (its UDP address
/// or its WebSocket host), and the flow token it carries if any.
fn is_own_route(value: &str, sip_addr: SocketAddr, ws_host: &str) -> Option<Option<String>> {
    let na = NameAddr::parse(value)?;
    let uri = na.uri;
    let ours_udp = host_port_is(&uri, sip_addr);
    let ours_ws = uri.host.eq_ignore_ascii_case(ws_host);
    (ours_udp || ours_ws).then(|| uri.user.filter(|_| ours_ws).map(str::to_owned))
}

fn host_port_is(uri: &Uri<'_>, addr: SocketAddr) -> bool {
    host_port_matches(uri.host, uri.port, addr)
}

fn host_port_matches(host: &str, port: Option<u16>, addr: SocketAddr) -> bool {
    let host = host.trim_matches(['[', ']']);
    host.parse::<IpAddr>().is_ok_and(|ip| ip == addr.ip()) && port.unwrap_or(5060) == addr.port()
}

/// Where a response goes per a Via (RFC 3261 §18.2.2, RFC 3581): `received`
/// and `rport` when present, else the sent-by. IP literals only: the relay
/// never resolves names on behalf of the network.
fn via_address(via: &Via<'_>) -> Option<SocketAddr> {
    let ip = via
        .params
        .value("received")
        .unwrap_or(via.host)
        .trim_matches(['[', ']'])
        .parse::<IpAddr>()
        .ok()?;
    let port = via
        .params
        .value("rport")
        .and_then(|p| p.parse().ok())
        .or(via.port)
        .unwrap_or(5060);
    Some(SocketAddr::new(ip, port))
}

/// The per-hop edits every forwarded request gets (RFC 3261 §16.6):
/// Max-Forwards decremented, and the relay's own Route entries popped.
struct HopEdits {
    max_forwards: String,
    routes_to_pop: usize,
}

impl HopEdits {
    fn new(hops: u32, routes_to_pop: usize) -> Self {
        Self {
            max_forwards: hops.to_string(),
            routes_to_pop,
        }
    }

    /// The edit for `h`, if it is one of these headers.
    fn apply(&mut self, h: &Header<'_>) -> Option<Action> {
        match h.name {
            HeaderName::MaxForwards => Some(Action::Replace(self.max_forwards.clone())),
            HeaderName::Route if self.routes_to_pop > 0 => {
                let n = split_commas(h.value).count().min(self.routes_to_pop);
                self.routes_to_pop -= n;
                Some(without_first(h.value, n).map_or(Action::Drop, Action::Replace))
            }
            _ => None,
        }
    }
}

/// A forwarded request without Max-Forwards gets one (RFC 3261 §16.6
/// step 3: 70, less this hop).
fn with_max_forwards(msg: &Message<'_>, out: Vec<u8>) -> Vec<u8> {
    if msg.header(HeaderName::MaxForwards).is_some() {
        return out;
    }
    insert_after_first_line(&out, "Max-Forwards: 69")
}

/// Inserts a header line after the start line of a message we built.
fn insert_after_first_line(msg: &[u8], line: &str) -> Vec<u8> {
    let cut = msg
        .iter()
        .position(|&b| b == b'\n')
        .map_or(msg.len(), |i| i + 1);
    let mut out = Vec::with_capacity(msg.len() + line.len() + 2);
    out.extend_from_slice(&msg[..cut]);
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&msg[cut..]);
    out
}

#[cfg(test)]
mod media_tests;
#[cfg(test)]
mod tests;
