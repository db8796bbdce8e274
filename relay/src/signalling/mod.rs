//! The relay's SIP proxy, sans-IO: WebSocket frames, the PBXs' messages
//! (UDP datagrams, or whole messages off a TCP or TLS stream) and time in;
//! frames, messages and deadlines out. The tokio shell in `net` only
//! moves bytes.
//!
//! What it does to each message (RFC 3261 §16, RFC 5626, RFC 5658, RFC 7118):
//! - browser → PBX requests: checked and decremented Max-Forwards, our own
//!   Route entries popped, our Via added (its branch derived from the
//!   browser's, so CANCEL and the ACK of an error match), a double
//!   Record-Route on dialog-creating requests, and the `.invalid` Contact
//!   rewritten onto the relay's SIP address with a signed flow token. It
//!   always goes to the configured PBX, whatever the Request-URI and Route
//!   say: never an open relay.
//! - PBX → browser requests: routed by the flow token in our Record-Route
//!   or in the Request-URI (the rewritten Contact); a token we did not sign,
//!   or whose WebSocket is gone, gets `430 Flow Failed`.
//! - responses: our Via popped; they follow the next Via, which toward the
//!   PBX side must name a PBX address.
//!
//! Each PBX has its transport (UDP, TCP or TLS, [`Transport`]): the
//! relay's Via, Record-Route and Contact toward it name it, so that the PBX
//! answers and calls back over the same transport (over TCP and TLS, on the
//! relay's own connection: the shell opens it from the relay's SIP port).
//!
//! The browser side is reliable and never retransmits, so toward the PBX
//! the relay keeps each request's client transaction: over UDP it
//! retransmits (Timers A/E); a new request whose PBX stays silent, is
//! unreachable (ICMP, no connection) or answers an early `503` goes on to
//! the next PBX, and so does one whose TCP or TLS connection broke under
//! it; with none left, the relay answers the browser `408` (Timer B/F) or
//! `503` itself.
//!
//! One file per concern: `connections` admits and forgets browsers;
//! `from_browser` and `from_pbx` forward each side's messages; `pbxs`
//! knows which PBXs are up and which takes a new request; `routing`
//! picks the destination and makes the per-hop edits; `contacts`
//! rewrites and restores Contacts; `transactions` keeps the client
//! transactions toward the PBX; `embedded` serves browsers when the
//! relay is the PBX (its registrar and dial plan in [`pbx`]); `call_media`
//! follows calls for their media and ends them when it fails.

mod call_media;
mod connections;
mod contacts;
mod edit;
mod embedded;
pub mod events;
pub mod flow;
mod from_browser;
mod from_pbx;
mod hangup;
pub mod limits;
pub mod pbx;
mod pbxs;
mod pending;
mod presence;
mod recording;
mod routing;
mod shutdown;
mod transactions;
pub use self::pbxs::PbxTarget;
pub use self::shutdown::SHUTTING_DOWN;

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use sipline_core::Instant;
use sipline_core::sip::{Message, Method, response_to};

use self::connections::Conn;
use self::edit::bad_request;
use self::events::{AdminEvent, CallTracker};
pub use self::flow::{FlowKey, TokenError};
use self::hangup::Dialog;
use self::limits::RateLimit;
use self::pbx::{EmbeddedPbx, MiniPbx};
use self::pbxs::Pbxs;
use self::pending::Pending;
use crate::ids::ConnId;
use crate::media::calls::{Command, MediaCalls};
use crate::ops::metrics::{Metrics, Reject};
use crate::transport::Transport;

/// Via parameter that marks a request the relay made itself toward a
/// browser (a BYE ending a call): the answer stops here.
const LOCAL_PARAM: &str = "sl-local";

/// Told to browsers in the 2xx of their REGISTER when the relay carries
/// media: its WebRTC side is ICE-lite, so they find it by their own checks
/// and need not wait for ICE gathering before an offer. In front of a PBX
/// every call's media is the relay's; the embedded PBX's echo is too, and
/// a browser that answers another with full ICE gets the caller's
/// candidates in a re-INVITE (the SDK's core asks for it).
pub const ICE_LITE_HEADER: (&str, &str) = ("Sipline-Media", "ice-lite");

/// What the proxy needs to know about its surroundings.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The PBXs: a new browser request goes to one that is up, chosen by
    /// priority and weight ([`pbxs`]), and SIP is accepted from these only.
    pub pbx: Vec<PbxTarget>,
    /// A new request that its PBX leaves without any answer this long goes
    /// to the next PBX (and that one is taken as down).
    pub failover_after: Duration,
    /// This relay's name among several: the `relay` label of its metrics.
    pub instance: Option<String>,
    /// How often each PBX is probed with OPTIONS; none: never (a PBX that
    /// went down is then tried again after [`pbxs::RETRY_UNPROBED`]).
    pub probe_interval: Option<Duration>,
    /// The relay's SIP address as the PBX reaches it (Via, Record-Route,
    /// Contact), over each transport.
    pub sip_addr: SocketAddr,
    /// The relay's host name as browsers see it (their side's Via and
    /// Record-Route).
    pub ws_host: String,
    /// RFC 3261 T1.
    pub t1: Duration,
    /// How long a request toward the PBX may go unanswered (Timer B/F)
    /// before the browser gets `408`.
    pub request_timeout: Duration,
    /// A request bigger than [`LARGE_OVER_UDP`] bytes for a UDP PBX goes
    /// over TCP to the same address instead (RFC 3261 §18.1.1): the PBX
    /// takes TCP there too.
    pub large_over_tcp: bool,
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
    /// Defaults around the given PBXs, preferred in their order, and the
    /// relay's own UDP address.
    pub fn new(pbx: Vec<SocketAddr>, sip_addr: SocketAddr) -> Self {
        Self {
            pbx: (1..)
                .zip(pbx)
                .map(|(priority, addr)| PbxTarget {
                    addr,
                    transport: Transport::Udp,
                    priority,
                    weight: 1,
                })
                .collect(),
            failover_after: Duration::from_secs(2),
            probe_interval: None,
            instance: None,
            sip_addr,
            ws_host: String::from("relay.invalid"),
            t1: Duration::from_millis(500),
            request_timeout: Duration::from_secs(32),
            large_over_tcp: false,
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
    /// One SIP message to a PBX.
    Pbx {
        /// A PBX address.
        to: SocketAddr,
        /// How: the transport its top Via names.
        transport: Transport,
        /// The SIP message.
        message: Vec<u8>,
    },
    /// Work for the media shell; it comes before the message whose SDP
    /// names the ports, so that they are bound when the peer learns them.
    Media(Command),
}

/// Requests for a UDP PBX bigger than this go over TCP when
/// [`ProxyConfig::large_over_tcp`] says the PBX takes it (RFC 3261
/// §18.1.1: 1300 bytes when the path's MTU is not known).
pub const LARGE_OVER_UDP: usize = 1300;

/// Most PBX addresses known over a run (DNS may name new ones): each has
/// its index in the relay's Via toward browsers, so none is forgotten.
pub const MAX_PBXS: usize = 64;

/// Most dialogs remembered for ending calls on media failure.
const MAX_DIALOGS: usize = 100_000;

/// The proxy.
#[derive(Debug)]
pub struct Proxy {
    cfg: ProxyConfig,
    key: FlowKey,
    conns: HashMap<ConnId, Conn>,
    pending: HashMap<String, Pending>,
    /// When each pending request next needs attention, in order, kept in
    /// step with `pending`: no event scans the whole table.
    deadlines: BTreeSet<(Instant, String)>,
    /// The PBXs' health, and which takes a new request.
    pbxs: Pbxs,
    out: VecDeque<Output>,
    calls: CallTracker,
    events: Vec<AdminEvent>,
    pbx: Option<MiniPbx>,
    /// The embedded PBX's presence server (busy lamps, presence, MWI).
    presence: Option<presence::PresenceServer>,
    /// Handshakes admitted and not yet opened, per address, until when.
    reserved: HashMap<IpAddr, Vec<Instant>>,
    /// (connection, address of record) pairs with a binding.
    registered: HashSet<(ConnId, String)>,
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
        let presence = cfg
            .embedded
            .as_ref()
            .map(|e| presence::PresenceServer::new(&e.domain, &cfg.ws_host));
        Self {
            metrics: Metrics::new(cfg.instance.as_deref()),
            pbxs: Pbxs::new(&cfg.pbx, cfg.probe_interval, cfg.failover_after, cfg.t1),
            pbx,
            presence,
            registered: Default::default(),
            reserved: HashMap::new(),
            cfg,
            key,
            conns: HashMap::new(),
            pending: HashMap::new(),
            deadlines: BTreeSet::new(),
            out: VecDeque::new(),
            calls: CallTracker::default(),
            events: Vec::new(),
            media: None,
            dialogs: HashMap::new(),
            successors: HashMap::new(),
            doomed: HashMap::new(),
        }
    }

    /// The proxy carrying the calls' media: their SDP is rewritten and
    /// their ports come from `media`'s range.
    pub fn with_media(mut self, media: MediaCalls) -> Self {
        self.media = Some(media);
        self
    }

    /// The `/metrics` text, with the media and PBX gauges brought up to
    /// date.
    pub fn render_metrics(&mut self) -> String {
        self.metrics.set_pbx_health(self.pbxs.health());
        if let Some(m) = &self.media {
            let (used, capacity) = m.ports();
            self.metrics.set_media(m.active(), used, capacity);
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
    /// The embedded PBX's presence server reads them too: what they change
    /// goes to its watchers as NOTIFYs, before the shell's next outputs.
    pub fn drain_events(&mut self) -> Vec<AdminEvent> {
        let mut events = std::mem::take(&mut self.events);
        events.extend(self.pbxs.take_events());
        if let Some(p) = self.presence.as_mut() {
            for (conn, frame) in p.events(&events) {
                self.out.push_back(Output::Ws { conn, frame });
            }
        }
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
        self.metrics.set_registrations(self.registered.len());
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
        let presence = self.presence.as_ref().and_then(|p| p.poll_timeout());
        [
            pending,
            self.calls.next_expiry(),
            presence,
            self.pbxs.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn ws(&mut self, conn: ConnId, frame: Vec<u8>) {
        self.out.push_back(Output::Ws { conn, frame });
    }

    /// Sends `message` to the PBX at `to`, over the transport its top Via
    /// names (the PBX's own when it names none the relay speaks).
    fn send_pbx(&mut self, to: SocketAddr, message: Vec<u8>) {
        let transport = routing::sent_over(&message).unwrap_or_else(|| self.transport_to(to));
        self.out.push_back(Output::Pbx {
            to,
            transport,
            message,
        });
    }

    /// The transport toward the PBX at `addr` (UDP for any other address).
    fn transport_to(&self, addr: SocketAddr) -> Transport {
        self.cfg
            .pbx
            .iter()
            .find(|t| t.addr == addr)
            .map_or(Transport::Udp, |t| t.transport)
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
                && msg.method() != Some(Method::Ack)
            {
                let secs = wait.as_secs().max(1).to_string();
                let mut b = response_to(&msg, 503, "Rate Limit Exceeded", Some("sl"));
                b.header("Retry-After", &secs);
                self.metrics.local_response();
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
    pub fn handle_pbx(&mut self, now: Instant, from: SocketAddr, datagram: &[u8]) {
        self.handle_pbx_over(now, from, Transport::Udp, datagram);
    }

    /// One message from a PBX over `transport`: a datagram on the SIP port,
    /// or a whole message off the relay's TCP or TLS connection to it
    /// (framed by the shell). Taken only from a PBX, and only over its own
    /// transport (or TCP for a UDP PBX's large messages): a datagram
    /// claiming to come from a TLS PBX is someone else's.
    pub fn handle_pbx_over(
        &mut self,
        now: Instant,
        from: SocketAddr,
        transport: Transport,
        datagram: &[u8],
    ) {
        let ours = self.cfg.pbx.iter().any(|t| {
            t.addr == from
                && (t.transport == transport
                    || (t.transport == Transport::Udp
                        && transport == Transport::Tcp
                        && self.cfg.large_over_tcp))
        });
        if !ours {
            self.metrics.reject(Reject::NotPbx);
            return;
        }
        self.pbxs.heard_from(from);
        if datagram.iter().all(|&b| b == b'\r' || b == b'\n') {
            return; // keep-alive
        }
        let Ok(msg) = Message::parse(datagram) else {
            self.metrics.reject(Reject::Malformed);
            return; // RFC 3261 §18.3: a bad message is discarded
        };
        self.metrics.count_in(&msg);
        if msg.is_request() {
            self.pbx_request(now, from, &msg);
        } else if self.pbxs.probe_answered(from, &msg) {
            // The answer to a health probe: it only showed the PBX up.
        } else {
            self.pbx_response(now, from, &msg);
        }
    }

    /// A new set of PBXs (the shell resolved `pbx.uri` again): new ones
    /// are added, those gone retire (not chosen any more; what they send is
    /// still taken, for their dialogs). At most [`MAX_PBXS`] are known.
    pub fn set_pbxs(&mut self, targets: &[PbxTarget]) {
        for t in targets {
            let known = self.cfg.pbx.len();
            match self.cfg.pbx.iter_mut().find(|k| k.addr == t.addr) {
                Some(k) => *k = *t,
                None if known < MAX_PBXS => self.cfg.pbx.push(*t),
                None => {}
            }
        }
        let kept: Vec<PbxTarget> = targets
            .iter()
            .filter(|t| self.is_pbx(t.addr))
            .copied()
            .collect();
        self.pbxs.set_targets(&kept);
    }

    /// Whether `addr` is one of the configured PBXs.
    fn is_pbx(&self, addr: SocketAddr) -> bool {
        self.cfg.pbx.iter().any(|t| t.addr == addr)
    }

    /// The configured PBX at `index` (configuration order).
    fn pbx_at(&self, index: usize) -> Option<SocketAddr> {
        self.cfg.pbx.get(index).map(|t| t.addr)
    }

    fn reply_ws(&mut self, conn: ConnId, msg: &Message<'_>, code: u16, reason: &str) {
        if msg.method() == Some(Method::Ack) {
            return;
        }
        self.metrics.local_response();
        let resp = response_to(msg, code, reason, Some("sl")).finish(None, b"");
        self.ws(conn, resp);
    }

    fn reply_pbx(&mut self, to: SocketAddr, msg: &Message<'_>, code: u16, reason: &str) {
        if msg.method() == Some(Method::Ack) {
            return;
        }
        self.metrics.local_response();
        let resp = response_to(msg, code, reason, Some("sl")).finish(None, b"");
        self.send_pbx(to, resp);
    }
}

#[cfg(test)]
mod failover_tests;
#[cfg(test)]
mod media_tests;
#[cfg(test)]
mod test_support;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod transport_tests;
