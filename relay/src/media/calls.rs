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

//!
//! The table itself is here; how each body is rewritten and what the
//! shell is told is in `negotiation`; the types both ends of the table
//! speak, in `types` (re-exported here).

mod negotiation;
mod recording;
mod types;

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use sipline_core::sdp::Sdp;

use self::negotiation::carried;
use self::recording::CallRecording;
pub use self::recording::RecordingError;
pub use self::types::{Carrier, Command, MediaConfig, MediaEnd, MediaError, PortBinder, Side};
use super::dtls::Identity;
use super::ports::{PortError, PortPair, PortPool};
use super::sdes::LegSdes;
use crate::ids::{ConnId, MediaId};
use crate::media::decode::Codec;
use crate::media::record::RecordingMode;
use sipline_core::sip::Method;

/// How many pairs to try when ports of the range are held by others.
const BIND_ATTEMPTS: usize = 8;

/// How many ended calls are remembered, to ignore their late SDP.
const ENDED_KEPT: usize = 4096;

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
    /// The URIs of From and To, once the signalling named them (for a
    /// recording's sidecar).
    parties: Option<(String, String)>,
    /// The call's recording, while one was started.
    recording: Option<CallRecording>,
    /// The audio payload types its SDP named with a codec a recording
    /// decodes (only when calls may be recorded).
    codecs: Vec<(u8, Codec)>,
    /// Its telephone-event payload types and their clocks, likewise.
    events: Vec<(u8, u32)>,
    /// Each leg's SDES-SRTP negotiation with the PBX.
    srtp: Vec<LegSdes>,
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
    /// SRTP master keys made so far (each derived from `secret` and this).
    keys_made: u64,
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
            keys_made: 0,
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
        carrier: Carrier,
        body: &[u8],
    ) -> Result<Option<String>, MediaError> {
        let key = (conn, call_id.to_owned());
        let pending_from_other = self
            .calls
            .get(&key)
            .and_then(|c| c.offer.as_ref())
            .is_some_and(|(side, _)| *side != from);
        let is_offer = match carrier {
            Carrier::Request(Method::Invite | Method::Update) => true,
            Carrier::Request(Method::Ack) => false,
            Carrier::Request(Method::Prack)
            | Carrier::Response(Method::Invite | Method::Update | Method::Prack) => {
                !pending_from_other
            }
            _ => return Ok(None),
        };
        // A late answer (a 2xx retransmission after the BYE) must not open
        // the call again; a new INVITE may.
        let late = !matches!(carrier, Carrier::Request(Method::Invite));
        if late && !self.calls.contains_key(&key) && self.ended.contains(&key) {
            return Err(MediaError::Ended);
        }
        // Only an INVITE (its offer, or the offer in its answer when it
        // had none) makes a call; an UPDATE or PRACK belongs to one.
        if let Carrier::Request(m @ (Method::Update | Method::Prack))
        | Carrier::Response(m @ (Method::Update | Method::Prack)) = carrier
            && !self.calls.contains_key(&key)
        {
            return Err(MediaError::NoCall(m.as_str().to_owned()));
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

    /// Names call `call_id`'s parties (the URIs of From and To of the
    /// message whose SDP made its recording): a recording made by that SDP
    /// and not yet handed to the shell takes them for its sidecar.
    pub fn name_parties(&mut self, conn: ConnId, call_id: &str, from: &str, to: &str) {
        if self.cfg.recording == RecordingMode::Off {
            return;
        }
        let Some(c) = self.calls.get_mut(&(conn, call_id.to_owned())) else {
            return;
        };
        if c.parties.is_none() {
            c.parties = Some((from.to_owned(), to.to_owned()));
        }
        let id = c.id;
        for command in &mut self.commands {
            if let Command::Record { id: r, sink } = command
                && *r == id
                && sink.parties.is_none()
            {
                sink.parties = Some((from.to_owned(), to.to_owned()));
            }
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
        let mut pairs: Vec<(IpAddr, PortPair)> = (!self.shared())
            .then_some((self.cfg.browser_bind, call.browser))
            .into_iter()
            .collect();
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

    /// Whether every browser shares the engine's port (no pair of the
    /// range for the browser side).
    fn shared(&self) -> bool {
        self.cfg.browser_port != 0
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
            let id = MediaId(self.next);
            // WebRTC muxes RTCP: only the browser pair's even port is bound
            // (the engine's shared port is bound already).
            let browser = if self.shared() {
                let worker = u16::try_from(id.worker(self.cfg.workers)).unwrap_or(u16::MAX);
                PortPair {
                    rtp: self.cfg.browser_port.saturating_add(worker),
                }
            } else {
                self.take_pair(self.cfg.browser_bind, false)?
            };
            let mut taken = vec![(self.cfg.browser_bind, browser)];
            for _ in sections {
                match self.take_pair(self.cfg.pbx_bind, true) {
                    Ok(p) => taken.push((self.cfg.pbx_bind, p)),
                    Err(e) => {
                        let ours = usize::from(self.shared());
                        self.give_back(&taken[ours..]);
                        return Err(e);
                    }
                }
            }
            let pbx: Vec<PortPair> = taken[1..].iter().map(|(_, p)| *p).collect();
            let (ufrag, pwd) = self.credentials();
            self.next += 1;
            self.commands.push_back(Command::Open {
                id,
                browser: SocketAddr::new(self.cfg.browser_bind, browser.rtp),
                shared: self.shared(),
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
                    parties: None,
                    recording: None,
                    codecs: Vec::new(),
                    events: Vec::new(),
                    srtp: vec![LegSdes::default(); sections.len()],
                },
            );
        }
        self.calls
            .get_mut(&key)
            .ok_or_else(|| MediaError::Sdp("call vanished".into()))
    }
}
#[cfg(test)]
mod tests;
