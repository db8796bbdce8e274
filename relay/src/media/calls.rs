//! The calls whose media the relay carries, sans-IO: the signalling hands
//! over every SDP body that passes, and gets back the body to forward and
//! commands for the media shell (bind these ports, here is the browser
//! side's state, the PBX now receives there, close).
//!
//! Offer or answer is read from where a body travels (RFC 3261 §13.2.1,
//! RFC 3262, RFC 3311); only INVITE, UPDATE, PRACK and ACK and the
//! responses to the first three take part. A body in INVITE or UPDATE is an
//! offer; in ACK, or in a PRACK or response that follows the other side's
//! offer, an answer; in a response to an offerless INVITE (or a PRACK with
//! nothing pending), an offer. Each call keeps the last offer's text, since
//! the answer is rewritten against it. SDP anywhere else (a MESSAGE, an
//! OPTIONS answer) is not media, and is left alone.
//!
//! A call holds pairs of the port range: the browser's WebRTC port (ICE,
//! DTLS and SRTP for every section, BUNDLE) and one RTP/RTCP pair toward
//! the PBX per carried section, its leg. It carries the first audio section
//! and the first video section, as the first offer has them; other
//! sections are rejected toward the PBX (port 0), so both ends see the
//! same answer.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use sipline_core::sdp::{Media, Sdp};

use super::dtls::{DtlsError, DtlsServer, Identity};
use super::ice::IceLite;
use super::ports::{PortError, PortPair, PortPool};
use super::sdp::{
    BrowserTransport, RewriteError, answer_to_browser, answer_to_pbx, offer_to_browser,
    offer_to_pbx,
};
use super::session::{MAX_LEGS, Session};
use crate::ids::{ConnId, MediaId};

/// Where the relay's media lives and what it tells each side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediaConfig {
    /// First port of the range (RTP on even ports, RTCP on the odd next).
    pub port_min: u16,
    /// Last port of the range.
    pub port_max: u16,
    /// The address the browser-side sockets bind to.
    pub browser_bind: IpAddr,
    /// The address written into the browser's SDP (a public address when
    /// the relay is behind 1:1 NAT); `browser_bind` when the same.
    pub browser_advertised: IpAddr,
    /// The address the PBX-side sockets bind to.
    pub pbx_bind: IpAddr,
    /// The address written into the PBX's SDP.
    pub pbx_advertised: IpAddr,
    /// No RTP or RTCP either way, and no ICE consent check from the
    /// browser, for this long once answered ends the call (a browser that
    /// vanished without a BYE; a call on hold still has its checks).
    pub rtp_timeout: Duration,
    /// Accept the PBX side's media from wherever its first packet comes
    /// (PBX phones behind NAT); off: only from the address its SDP gave.
    pub latch_pbx: bool,
    /// Calls with media one browser connection may have at once.
    pub max_calls_per_connection: usize,
}

impl Default for MediaConfig {
    fn default() -> Self {
        let local = IpAddr::from([127, 0, 0, 1]);
        Self {
            port_min: 20_000,
            port_max: 29_999,
            browser_bind: local,
            browser_advertised: local,
            pbx_bind: local,
            pbx_advertised: local,
            rtp_timeout: Duration::from_secs(60),
            latch_pbx: false,
            max_calls_per_connection: 16,
        }
    }
}

/// Why a call's media ended without the signalling asking; the call is
/// then ended with a BYE each way, carrying [`MediaEnd::reason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaEnd {
    /// No RTP, RTCP or ICE consent check for the configured time.
    Timeout,
    /// The DTLS handshake failed (a certificate whose fingerprint is not
    /// the SDP's, or a broken handshake; one that never starts ends the
    /// call by the timeout, since only a connected browser's checks count).
    Dtls,
    /// A media socket failed (its port could not be bound, or it broke).
    Io,
}

impl MediaEnd {
    /// The words for the BYE's Reason header and the log.
    pub fn reason(self) -> &'static str {
        match self {
            MediaEnd::Timeout => "RTP timeout",
            MediaEnd::Dtls => "DTLS handshake failed",
            MediaEnd::Io => "media socket failed",
        }
    }
}

/// Binds a pair's sockets the moment it is taken from the range, so that
/// a port another program holds is skipped before any SDP names it. The
/// shell's binder keeps the sockets for [`Command::Open`]; a table without
/// one only counts ports.
pub trait PortBinder: std::fmt::Debug + Send {
    /// Binds `addr` (and the next port too, for RTCP, when `rtcp`).
    fn bind(&mut self, addr: SocketAddr, rtcp: bool) -> std::io::Result<()>;
    /// Closes what was bound at `addr` that no [`Command::Open`] took.
    fn unbind(&mut self, addr: SocketAddr);
}

/// How many pairs to try when ports of the range are held by others.
const BIND_ATTEMPTS: usize = 8;

/// How many ended calls are remembered, to ignore their late SDP.
const ENDED_KEPT: usize = 4096;

/// Which side sent a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// The browser, over its WebSocket.
    Browser,
    /// The PBX, over UDP.
    Pbx,
}

/// What carried a body, which says whether it is an offer or an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Carrier<'a> {
    /// A request with this method.
    Request(&'a str),
    /// A response (any status) to a request with this method.
    Response(&'a str),
}

/// What the media shell must do, in order.
#[derive(Debug)]
pub enum Command {
    /// Bind the call's sockets: the browser's WebRTC port at `browser`,
    /// each leg's RTP toward the PBX at `pbx` (RTCP on the next port).
    Open {
        /// The call.
        id: MediaId,
        /// The browser-side socket address.
        browser: SocketAddr,
        /// The PBX-side RTP socket address of each leg (audio, video).
        pbx: Vec<SocketAddr>,
    },
    /// The browser side is known (its SDP was seen): start ICE and DTLS.
    Browser {
        /// The call.
        id: MediaId,
        /// The call's browser-side state.
        session: Box<Session>,
    },
    /// The browser restarted ICE: new credentials, the DTLS association
    /// stays (RFC 8445 §9).
    IceRestart {
        /// The call.
        id: MediaId,
        /// The agent with the new credentials.
        ice: IceLite,
    },
    /// Where the PBX now receives a leg's RTP and RTCP (its SDP said so).
    Pbx {
        /// The call.
        id: MediaId,
        /// Which leg.
        leg: usize,
        /// The PBX's RTP address.
        rtp: SocketAddr,
        /// The PBX's RTCP address (the same with rtcp-mux).
        rtcp: SocketAddr,
        /// The RTP clock rate of its first codec, for jitter.
        clock: u32,
    },
    /// Which leg each of the browser's payload types goes to (its SDP
    /// changed them).
    PayloadLegs {
        /// The call.
        id: MediaId,
        /// `(payload type, leg)` pairs.
        map: Vec<(u8, u8)>,
    },
    /// The call was answered: the RTP timeout runs from now on (ringing is
    /// silent).
    Answered {
        /// The call.
        id: MediaId,
    },
    /// The call ended: stop and give the ports back.
    Close {
        /// The call.
        id: MediaId,
    },
}

impl Command {
    /// The call it is for.
    pub fn id(&self) -> MediaId {
        match self {
            Command::Open { id, .. }
            | Command::Browser { id, .. }
            | Command::IceRestart { id, .. }
            | Command::Pbx { id, .. }
            | Command::PayloadLegs { id, .. }
            | Command::Answered { id }
            | Command::Close { id } => *id,
        }
    }
}

/// Why a body could not be carried; the message is answered with the
/// given status instead of being forwarded, when it is a request.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The media port range is full.
    #[error(transparent)]
    Ports(#[from] PortError),
    /// The connection has as many calls as it may.
    #[error("{0} calls on this connection already")]
    TooManyCalls(usize),
    /// The range's ports could not be bound (held by another program, or
    /// an address this host does not have).
    #[error("could not bind media ports on {addr}: {source}")]
    Bind {
        /// The last address tried.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The body is not SDP the relay can read.
    #[error("unreadable SDP: {0}")]
    Sdp(String),
    /// The SDP cannot be mapped (see the error).
    #[error(transparent)]
    Rewrite(#[from] RewriteError),
    /// No section the relay can carry (an audio section with a port).
    #[error("no audio section to carry")]
    NoAudio,
    /// The browser's SDP has no DTLS fingerprint.
    #[error("the browser's SDP has no fingerprint")]
    NoFingerprint,
    /// The DTLS side could not be set up.
    #[error(transparent)]
    Dtls(#[from] DtlsError),
    /// An answer with no offer before it.
    #[error("an SDP answer without an offer")]
    NoOffer,
    /// SDP for a call that has just ended (a late or retransmitted
    /// answer): it must not open the call again.
    #[error("SDP for a call that has ended")]
    Ended,
    /// An offer in an UPDATE or PRACK (or their answers) for a call the
    /// relay has no media for: only an INVITE starts a call, so that
    /// requests in dialogs that do not exist cannot hold ports.
    #[error("SDP in a {0} for a call with no media")]
    NoCall(String),
}

impl MediaError {
    /// The SIP status that refuses a request for this reason.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            MediaError::Ports(_) | MediaError::Bind { .. } => (503, "Media Ports Exhausted"),
            MediaError::TooManyCalls(_) => (503, "Too Many Calls"),
            MediaError::Dtls(_) => (500, "Media Setup Failed"),
            MediaError::NoCall(_) => (481, "Call/Transaction Does Not Exist"),
            _ => (488, "Not Acceptable Here"),
        }
    }
}

/// One call's media state as the signalling sees it.
#[derive(Debug)]
struct Call {
    id: MediaId,
    browser: PortPair,
    /// One pair toward the PBX per leg.
    pbx: Vec<PortPair>,
    /// The SDP section each leg carries (indexes into both sides' SDP).
    sections: Vec<usize>,
    /// The browser's payload types and their legs, as last told.
    payload_legs: Vec<(u8, u8)>,
    /// Where the PBX receives each leg's RTP and RTCP, as last told.
    pbx_targets: Vec<Option<(SocketAddr, SocketAddr)>>,
    /// Our ICE credentials toward the browser.
    ufrag: String,
    pwd: String,
    /// The browser's ICE username fragment, once known.
    remote_ufrag: Option<String>,
    /// Whether the shell has the browser side.
    has_session: bool,
    /// The echo extension's call: the browser's media comes back to it.
    echo: bool,
    /// The last offer, who made it, and its text.
    offer: Option<(Side, String)>,
    answered: bool,
}

/// Every call's media, keyed by browser connection and Call-ID.
#[derive(Debug)]
pub struct MediaCalls {
    cfg: MediaConfig,
    pool: PortPool,
    identity: Arc<Identity>,
    /// Seeds the ICE credentials: unpredictable, yet no randomness here.
    secret: [u8; 32],
    calls: HashMap<(ConnId, String), Call>,
    /// Calls per connection, for its limit.
    per_conn: HashMap<ConnId, usize>,
    /// Calls that ended lately: their late SDP must not open them again.
    ended: VecDeque<(ConnId, String)>,
    next: u64,
    commands: VecDeque<Command>,
    binder: Option<Box<dyn PortBinder>>,
}

/// Characters of ICE credentials (RFC 8445 §5.3: ice-char).
const ICE_CHARS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

impl MediaCalls {
    /// The calls' table over `cfg`'s port range; `secret` must be random.
    pub fn new(
        cfg: MediaConfig,
        identity: Arc<Identity>,
        secret: [u8; 32],
    ) -> Result<Self, PortError> {
        Ok(Self {
            pool: PortPool::new(cfg.port_min, cfg.port_max)?,
            cfg,
            identity,
            secret,
            calls: HashMap::new(),
            per_conn: HashMap::new(),
            ended: VecDeque::new(),
            next: 1,
            commands: VecDeque::new(),
            binder: None,
        })
    }

    /// Binds every pair as it is taken (see [`PortBinder`]).
    pub fn with_binder(mut self, binder: Box<dyn PortBinder>) -> Self {
        self.binder = Some(binder);
        self
    }

    /// The configuration in use.
    pub fn config(&self) -> &MediaConfig {
        &self.cfg
    }

    /// Calls with media.
    pub fn active(&self) -> usize {
        self.calls.len()
    }

    /// Port pairs in use and the range's size, for the metrics.
    pub fn ports(&self) -> (usize, usize) {
        (self.pool.in_use(), self.pool.capacity())
    }

    /// The next command for the media shell.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// The media of a call, if it has any.
    pub fn id(&self, conn: ConnId, call_id: &str) -> Option<MediaId> {
        self.calls.get(&(conn, call_id.to_owned())).map(|c| c.id)
    }

    /// A body of `application/sdp` sent by `from` in `carrier`; returns the
    /// body to forward instead, or `None` when the message is not part of
    /// an offer/answer exchange (its body is left as it is).
    pub fn sdp(
        &mut self,
        conn: ConnId,
        call_id: &str,
        from: Side,
        carrier: Carrier<'_>,
        body: &[u8],
    ) -> Result<Option<String>, MediaError> {
        let key = (conn, call_id.to_owned());
        let pending_from_other = self
            .calls
            .get(&key)
            .and_then(|c| c.offer.as_ref())
            .is_some_and(|(side, _)| *side != from);
        let is_offer = match carrier {
            Carrier::Request("INVITE" | "UPDATE") => true,
            Carrier::Request("ACK") => false,
            Carrier::Request("PRACK") | Carrier::Response("INVITE" | "UPDATE" | "PRACK") => {
                !pending_from_other
            }
            _ => return Ok(None),
        };
        // A late answer (a 2xx retransmission after the BYE) must not open
        // the call again; a new INVITE may.
        let late = !matches!(carrier, Carrier::Request("INVITE"));
        if late && !self.calls.contains_key(&key) && self.ended.contains(&key) {
            return Err(MediaError::Ended);
        }
        // Only an INVITE (its offer, or the offer in its answer when it
        // had none) makes a call; an UPDATE or PRACK belongs to one.
        if let Carrier::Request(m @ ("UPDATE" | "PRACK"))
        | Carrier::Response(m @ ("UPDATE" | "PRACK")) = carrier
            && !self.calls.contains_key(&key)
        {
            return Err(MediaError::NoCall(m.to_owned()));
        }
        let sdp = Sdp::parse(body).map_err(|e| MediaError::Sdp(e.to_string()))?;
        if is_offer {
            self.offer(key, from, &sdp, body).map(Some)
        } else if pending_from_other {
            self.answer(key, from, &sdp).map(Some)
        } else {
            Err(MediaError::NoOffer)
        }
    }

    /// The echo extension answers the browser's offer itself: the first
    /// audio codec offered (and its telephone-event), sent back as it
    /// comes. Returns the answer for the browser.
    pub fn echo(&mut self, conn: ConnId, call_id: &str, body: &[u8]) -> Result<String, MediaError> {
        let sdp = Sdp::parse(body).map_err(|e| MediaError::Sdp(e.to_string()))?;
        let audio = *carried(&sdp).first().ok_or(MediaError::NoAudio)?;
        let key = (conn, call_id.to_owned());
        let new = !self.calls.contains_key(&key);
        let out = self.echo_inner(&key, &sdp, audio);
        if out.is_err() && new {
            let _ = self.close(conn, call_id);
        }
        out
    }

    fn echo_inner(
        &mut self,
        key: &(ConnId, String),
        sdp: &Sdp<'_>,
        audio: usize,
    ) -> Result<String, MediaError> {
        self.call(key.clone(), &[audio])?.echo = true;
        self.browser_sdp(key, sdp, true)?;
        let answer = echo_answer(sdp, audio, self.cfg.browser_advertised);
        let answer = Sdp::parse(answer.as_bytes()).map_err(|e| MediaError::Sdp(e.to_string()))?;
        let c = &self.calls[key];
        let t = transport(&self.cfg, c, self.identity.fingerprint());
        let out = answer_to_browser(sdp, &answer, &t)?;
        self.answered(key.0, &key.1);
        Ok(out)
    }

    /// A request without a body that may start an offer/answer exchange
    /// (an offerless INVITE): the offer will come in its answer.
    pub fn offerless(&mut self, conn: ConnId, call_id: &str) {
        if let Some(c) = self.calls.get_mut(&(conn, call_id.to_owned())) {
            c.offer = None;
        }
    }

    /// The INVITE was answered with a 2xx: the call is up.
    pub fn answered(&mut self, conn: ConnId, call_id: &str) {
        if let Some(c) = self.calls.get_mut(&(conn, call_id.to_owned()))
            && !std::mem::replace(&mut c.answered, true)
        {
            self.commands.push_back(Command::Answered { id: c.id });
        }
    }

    /// Whether the call was answered (a failure then needs a BYE; before,
    /// the INVITE's final answer ends it).
    pub fn is_answered(&self, conn: ConnId, call_id: &str) -> bool {
        self.calls
            .get(&(conn, call_id.to_owned()))
            .is_some_and(|c| c.answered)
    }

    /// The call ended (BYE, a failed INVITE, media failure): its ports go
    /// back to the range. Returns its id if it had media.
    pub fn close(&mut self, conn: ConnId, call_id: &str) -> Option<MediaId> {
        let key = (conn, call_id.to_owned());
        let call = self.calls.remove(&key)?;
        if self.ended.len() == ENDED_KEPT {
            self.ended.pop_front();
        }
        self.ended.push_back(key);
        if let Some(n) = self.per_conn.get_mut(&conn) {
            *n -= 1;
            if *n == 0 {
                self.per_conn.remove(&conn);
            }
        }
        // Sockets a failed Open left in the binder's hands are closed too.
        let mut pairs = vec![(self.cfg.browser_bind, call.browser)];
        pairs.extend(call.pbx.iter().map(|p| (self.cfg.pbx_bind, *p)));
        self.give_back(&pairs);
        self.commands.push_back(Command::Close { id: call.id });
        Some(call.id)
    }

    /// The calls of a connection that were not answered: when its
    /// WebSocket closes, nobody will answer or cancel them any more
    /// (answered calls go on: their media does not need the WebSocket, and
    /// the RTP timeout ends them if the browser is gone).
    pub fn unanswered_of(&self, conn: ConnId) -> Vec<String> {
        self.calls
            .iter()
            .filter(|((c, _), call)| *c == conn && !call.answered)
            .map(|((_, id), _)| id.clone())
            .collect()
    }

    /// The calls connection `conn` has media for.
    pub fn calls_of(&self, conn: ConnId) -> Vec<String> {
        self.calls
            .keys()
            .filter(|(c, _)| *c == conn)
            .map(|(_, id)| id.clone())
            .collect()
    }

    /// The connections that have media for a call `call_id` (one, but a
    /// Call-ID is the browser's word, and two may claim the same).
    pub fn holders(&self, call_id: &str) -> Vec<ConnId> {
        self.calls
            .keys()
            .filter(|(_, id)| id == call_id)
            .map(|(conn, _)| *conn)
            .collect()
    }

    /// Moves call `call_id` from connection `from` to `to`: its browser
    /// reconnected and goes on with it (RFC 5626 flow recovery). The media
    /// session itself is untouched: it never rode on the WebSocket.
    pub fn rehome(&mut self, from: ConnId, to: ConnId, call_id: &str) -> bool {
        // Onto a connection with media for the same Call-ID: that call's
        // ports would be lost with it.
        if from == to || self.calls.contains_key(&(to, call_id.to_owned())) {
            return false;
        }
        let Some(call) = self.calls.remove(&(from, call_id.to_owned())) else {
            return false;
        };
        if let Some(n) = self.per_conn.get_mut(&from) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_conn.remove(&from);
            }
        }
        *self.per_conn.entry(to).or_default() += 1;
        self.calls.insert((to, call_id.to_owned()), call);
        true
    }

    /// The call a media id belongs to (its connection and Call-ID).
    pub fn call_of(&self, id: MediaId) -> Option<(ConnId, String)> {
        self.calls
            .iter()
            .find(|(_, c)| c.id == id)
            .map(|(k, _)| k.clone())
    }

    fn credentials(&mut self) -> (String, String) {
        let n = self.next;
        self.next += 1;
        let digest = Sha256::new()
            .chain_update(self.secret)
            .chain_update(n.to_be_bytes())
            .finalize();
        let chars: String = digest
            .iter()
            .map(|b| char::from(ICE_CHARS[usize::from(b & 63)]))
            .collect();
        (chars[..8].to_owned(), chars[8..32].to_owned())
    }

    /// A pair from the range, bound on `ip` when there is a binder;
    /// pairs whose ports another program holds are passed over.
    fn take_pair(&mut self, ip: IpAddr, rtcp: bool) -> Result<PortPair, MediaError> {
        let mut attempts = 0;
        loop {
            let pair = self.pool.allocate()?;
            let Some(binder) = self.binder.as_mut() else {
                return Ok(pair);
            };
            let addr = SocketAddr::new(ip, pair.rtp);
            match binder.bind(addr, rtcp) {
                Ok(()) => return Ok(pair),
                Err(source) => {
                    self.pool.release(pair);
                    attempts += 1;
                    if attempts == BIND_ATTEMPTS {
                        return Err(MediaError::Bind { addr, source });
                    }
                }
            }
        }
    }

    /// Gives pairs back to the range, and closes what was bound for them.
    fn give_back(&mut self, pairs: &[(IpAddr, PortPair)]) {
        for &(ip, pair) in pairs {
            self.pool.release(pair);
            if let Some(binder) = self.binder.as_mut() {
                binder.unbind(SocketAddr::new(ip, pair.rtp));
            }
        }
    }

    /// The call for `key`, made if new, with a leg per section of
    /// `sections` (ports and all).
    fn call(&mut self, key: (ConnId, String), sections: &[usize]) -> Result<&mut Call, MediaError> {
        if !self.calls.contains_key(&key) {
            let limit = self.cfg.max_calls_per_connection;
            if self.per_conn.get(&key.0).copied().unwrap_or(0) >= limit {
                return Err(MediaError::TooManyCalls(limit));
            }
            // WebRTC muxes RTCP: only the browser pair's even port is bound.
            let mut taken = vec![(
                self.cfg.browser_bind,
                self.take_pair(self.cfg.browser_bind, false)?,
            )];
            for _ in sections {
                match self.take_pair(self.cfg.pbx_bind, true) {
                    Ok(p) => taken.push((self.cfg.pbx_bind, p)),
                    Err(e) => {
                        self.give_back(&taken);
                        return Err(e);
                    }
                }
            }
            let browser = taken[0].1;
            let pbx: Vec<PortPair> = taken[1..].iter().map(|(_, p)| *p).collect();
            let (ufrag, pwd) = self.credentials();
            let id = MediaId(self.next);
            self.next += 1;
            self.commands.push_back(Command::Open {
                id,
                browser: SocketAddr::new(self.cfg.browser_bind, browser.rtp),
                pbx: pbx
                    .iter()
                    .map(|p| SocketAddr::new(self.cfg.pbx_bind, p.rtp))
                    .collect(),
            });
            *self.per_conn.entry(key.0).or_default() += 1;
            self.calls.insert(
                key.clone(),
                Call {
                    id,
                    browser,
                    pbx,
                    sections: sections.to_vec(),
                    payload_legs: Vec::new(),
                    pbx_targets: vec![None; sections.len()],
                    ufrag,
                    pwd,
                    remote_ufrag: None,
                    has_session: false,
                    echo: false,
                    offer: None,
                    answered: false,
                },
            );
        }
        self.calls
            .get_mut(&key)
            .ok_or_else(|| MediaError::Sdp("call vanished".into()))
    }

    fn offer(
        &mut self,
        key: (ConnId, String),
        from: Side,
        sdp: &Sdp<'_>,
        body: &[u8],
    ) -> Result<String, MediaError> {
        // The legs are set by the first offer; later ones keep them.
        let sections = match self.calls.get(&key) {
            Some(c) => c.sections.clone(),
            None => carried(sdp),
        };
        if sections.is_empty() {
            return Err(MediaError::NoAudio);
        }
        let new = !self.calls.contains_key(&key);
        let out = self.offer_inner(&key, from, sdp, &sections);
        if out.is_err() && new {
            // A refused first offer leaves nothing behind.
            let _ = self.close(key.0, &key.1);
        } else if out.is_ok()
            && let Some(c) = self.calls.get_mut(&key)
        {
            c.offer = Some((from, String::from_utf8_lossy(body).into_owned()));
        }
        out
    }

    fn offer_inner(
        &mut self,
        key: &(ConnId, String),
        from: Side,
        sdp: &Sdp<'_>,
        sections: &[usize],
    ) -> Result<String, MediaError> {
        let cfg = self.cfg.clone();
        self.call(key.clone(), sections)?;
        match from {
            Side::Browser => {
                self.browser_sdp(key, sdp, true)?;
                let ports = self.pbx_ports(key, sdp.media.len());
                Ok(offer_to_pbx(sdp, &ports, cfg.pbx_advertised))
            }
            Side::Pbx => {
                self.pbx_sdp(key, sdp, false);
                let c = &self.calls[key];
                let t = transport(&cfg, c, self.identity.fingerprint());
                Ok(offer_to_browser(&only(sdp, &c.sections), &t))
            }
        }
    }

    /// The relay's PBX-side address for each section of an SDP with
    /// `count` sections: a carried one gets its leg's pair, the others
    /// are rejected.
    fn pbx_ports(&self, key: &(ConnId, String), count: usize) -> Vec<Option<SocketAddr>> {
        let c = &self.calls[key];
        (0..count)
            .map(|i| {
                let leg = c.sections.iter().position(|&s| s == i)?;
                Some(SocketAddr::new(self.cfg.pbx_advertised, c.pbx[leg].rtp))
            })
            .collect()
    }

    fn answer(
        &mut self,
        key: (ConnId, String),
        from: Side,
        sdp: &Sdp<'_>,
    ) -> Result<String, MediaError> {
        let cfg = self.cfg.clone();
        let c = self.calls.get(&key).ok_or(MediaError::NoOffer)?;
        let sections = c.sections.clone();
        let offer_text = c
            .offer
            .as_ref()
            .map(|(_, t)| t.clone())
            .ok_or(MediaError::NoOffer)?;
        let offer =
            Sdp::parse(offer_text.as_bytes()).map_err(|e| MediaError::Sdp(e.to_string()))?;
        match from {
            Side::Pbx => {
                self.pbx_sdp(&key, sdp, true);
                let c = &self.calls[&key];
                let t = transport(&cfg, c, self.identity.fingerprint());
                Ok(answer_to_browser(&offer, &only(sdp, &sections), &t)?)
            }
            Side::Browser => {
                self.browser_sdp(&key, sdp, false)?;
                self.negotiated_clocks(&key, sdp);
                let ports = self.pbx_ports(&key, sdp.media.len());
                Ok(answer_to_pbx(
                    &only(&offer, &sections),
                    sdp,
                    &ports,
                    cfg.pbx_advertised,
                )?)
            }
        }
    }

    /// Reads the browser's ICE and DTLS parameters: the first SDP starts
    /// the browser side, a new ufrag in an offer restarts ICE.
    fn browser_sdp(
        &mut self,
        key: &(ConnId, String),
        sdp: &Sdp<'_>,
        is_offer: bool,
    ) -> Result<(), MediaError> {
        let ufrag = browser_attribute(sdp, "ice-ufrag").ok_or(RewriteError::NoIce)?;
        let fingerprint = browser_attribute(sdp, "fingerprint").ok_or(MediaError::NoFingerprint)?;
        let restart = self.calls[key]
            .remote_ufrag
            .as_deref()
            .is_some_and(|old| old != ufrag);
        if restart && is_offer {
            let (u, p) = self.credentials();
            let c = self.calls.get_mut(key).ok_or(MediaError::NoOffer)?;
            (c.ufrag, c.pwd) = (u, p);
        }
        let c = self.calls.get_mut(key).ok_or(MediaError::NoOffer)?;
        let mut ice = IceLite::new(&c.ufrag, &c.pwd);
        ice.set_remote_ufrag(ufrag);
        c.remote_ufrag = Some(ufrag.to_owned());
        let id = c.id;
        // Each carried section's payload types go to its leg.
        let map: Vec<(u8, u8)> = c
            .sections
            .iter()
            .zip(0u8..)
            .filter_map(|(&i, leg)| Some((sdp.media.get(i)?, leg)))
            .flat_map(|(m, leg)| {
                m.payload_types()
                    .filter_map(move |pt| Some((pt.parse::<u8>().ok().filter(|p| *p < 128)?, leg)))
            })
            .collect();
        if !c.has_session {
            let local = SocketAddr::new(self.cfg.browser_bind, c.browser.rtp);
            let dtls = DtlsServer::new(&self.identity, local, fingerprint)?;
            c.has_session = true;
            let mut session = if c.echo {
                Session::echo(ice, dtls)
            } else {
                Session::new(ice, dtls)
            };
            session.set_latching(self.cfg.latch_pbx);
            session.set_payload_legs(&map);
            c.payload_legs = map;
            self.commands.push_back(Command::Browser {
                id,
                session: Box::new(session),
            });
        } else {
            if restart {
                self.commands.push_back(Command::IceRestart { id, ice });
            }
            if c.payload_legs != map {
                c.payload_legs = map.clone();
                self.commands.push_back(Command::PayloadLegs { id, map });
            }
        }
        Ok(())
    }

    /// The browser answered the PBX's offer: each leg's codec is the
    /// answer's first, whose clock jitter is measured in.
    fn negotiated_clocks(&mut self, key: &(ConnId, String), answer: &Sdp<'_>) {
        let Some(c) = self.calls.get(key) else { return };
        for (leg, &i) in c.sections.iter().enumerate() {
            let (Some(m), Some(Some((rtp, rtcp)))) = (answer.media.get(i), c.pbx_targets.get(leg))
            else {
                continue;
            };
            if !m.is_rejected() {
                self.commands.push_back(Command::Pbx {
                    id: c.id,
                    leg,
                    rtp: *rtp,
                    rtcp: *rtcp,
                    clock: clock_rate(m),
                });
            }
        }
    }

    /// Reads where the PBX receives each leg's media. An address of
    /// `0.0.0.0` (the old way to hold, RFC 2543) keeps the one known.
    fn pbx_sdp(&mut self, key: &(ConnId, String), sdp: &Sdp<'_>, answer: bool) {
        let Some(c) = self.calls.get_mut(key) else {
            return;
        };
        for (leg, &i) in c.sections.iter().enumerate() {
            let Some(m) = sdp.media.get(i).filter(|m| !m.is_rejected()) else {
                continue;
            };
            let Some(ip) = m
                .connection()
                .or_else(|| sdp.connection())
                .and_then(|a| a.parse::<IpAddr>().ok())
                .filter(|ip| !ip.is_unspecified())
            else {
                continue;
            };
            let rtp = SocketAddr::new(ip, m.port);
            // rtcp-mux toward the PBX only when it offered it (an answer to
            // our offer cannot: we never offer mux to the PBX).
            let mux = !answer && m.attribute("rtcp-mux").is_some();
            let rtcp = if mux { rtp } else { rtcp_address(m, ip) };
            if let Some(target) = c.pbx_targets.get_mut(leg) {
                *target = Some((rtp, rtcp));
            }
            self.commands.push_back(Command::Pbx {
                id: c.id,
                leg,
                rtp,
                rtcp,
                clock: clock_rate(m),
            });
        }
    }
}

/// What the echo extension answers, in the PBX's plain dialect (the
/// browser's transport is added as for any PBX answer): the offer's first
/// audio codec and the telephone-event of its clock rate, the answering
/// direction; other sections rejected.
fn echo_answer(offer: &Sdp<'_>, audio: usize, ip: IpAddr) -> String {
    let mut w = sipline_core::sdp::SdpWriter::new();
    let c = format!("IN {} {ip}", if ip.is_ipv4() { "IP4" } else { "IP6" });
    w.line(b'v', "0")
        .line(b'o', &format!("- 1 1 {c}"))
        .line(b's', "echo")
        .line(b'c', &c)
        .line(b't', "0 0");
    for (i, m) in offer.media.iter().enumerate() {
        if i != audio {
            w.media(m.kind, 0, "RTP/AVP", m.formats);
            continue;
        }
        let rtpmaps: Vec<(&str, &str)> = m.rtpmaps().collect();
        let codec = m.payload_types().next().unwrap_or("0");
        let clock = rtpmaps
            .iter()
            .find(|(pt, _)| *pt == codec)
            .and_then(|(_, enc)| enc.split('/').nth(1))
            .unwrap_or("8000");
        let events = rtpmaps
            .iter()
            .find(|(_, enc)| enc.eq_ignore_ascii_case(&format!("telephone-event/{clock}")));
        let mut formats = vec![codec];
        formats.extend(events.map(|(pt, _)| *pt));
        w.media("audio", 9, "RTP/AVP", &formats.join(" "));
        for line in &m.lines {
            let keep = line.attribute().is_some_and(|(name, value)| {
                matches!(name, "rtpmap" | "fmtp")
                    && value
                        .and_then(|v| v.split(' ').next())
                        .is_some_and(|pt| formats.contains(&pt))
            });
            if keep {
                w.copy(line);
            }
        }
        w.attribute(offer.direction(audio).answer().as_str(), None);
    }
    w.finish()
}

/// The sections the relay carries, in leg order: the first audio section
/// with a port (none: nothing to carry) and the first such video section.
fn carried(sdp: &Sdp<'_>) -> Vec<usize> {
    let first = |kind: &str| {
        sdp.media
            .iter()
            .position(|m| m.kind == kind && !m.is_rejected())
    };
    let Some(audio) = first("audio") else {
        return Vec::new();
    };
    let mut legs = vec![audio];
    legs.extend(first("video"));
    legs.truncate(MAX_LEGS);
    legs
}

/// `sdp` with every section but those in `keep` rejected (port 0): the
/// browser is then offered, or answered, only what the relay carries.
fn only<'a>(sdp: &Sdp<'a>, keep: &[usize]) -> Sdp<'a> {
    let mut out = sdp.clone();
    for (i, m) in out.media.iter_mut().enumerate() {
        if !keep.contains(&i) {
            *m = Media {
                port: 0,
                port_field: "0",
                ..m.clone()
            };
        }
    }
    out
}

/// The RTP clock rate of a section's first codec: its `a=rtpmap`, else
/// 8000 (the static payload types a PBX lists bare are G.711 and kin).
fn clock_rate(m: &Media<'_>) -> u32 {
    let first = m.payload_types().next().unwrap_or_default();
    m.rtpmaps()
        .find(|(pt, _)| *pt == first)
        .and_then(|(_, enc)| enc.split('/').nth(1)?.parse().ok())
        .unwrap_or(8000)
}

/// The RTCP address of a plain-RTP section: `a=rtcp` (RFC 3605), else the
/// next port.
fn rtcp_address(m: &Media<'_>, ip: IpAddr) -> SocketAddr {
    let attr = m.attribute("rtcp").flatten().unwrap_or_default();
    let mut fields = attr.split_ascii_whitespace();
    let port = fields.next().and_then(|p| p.parse::<u16>().ok());
    let addr = fields.nth(2).and_then(|a| a.parse::<IpAddr>().ok());
    SocketAddr::new(
        addr.unwrap_or(ip),
        port.unwrap_or_else(|| m.port.saturating_add(1)),
    )
}

/// A browser SDP attribute, at session level or in the first section that
/// has it (browsers write them per section).
fn browser_attribute<'a>(sdp: &Sdp<'a>, name: &'a str) -> Option<&'a str> {
    sdp.attribute(name)
        .flatten()
        .or_else(|| sdp.media.iter().find_map(|m| m.attribute(name).flatten()))
}

fn transport<'a>(cfg: &MediaConfig, c: &'a Call, fingerprint: &'a str) -> BrowserTransport<'a> {
    BrowserTransport {
        addr: SocketAddr::new(cfg.browser_advertised, c.browser.rtp),
        ice_ufrag: &c.ufrag,
        ice_pwd: &c.pwd,
        fingerprint,
    }
}

#[cfg(test)]
mod tests;
