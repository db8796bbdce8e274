//! What the media table and its users say to each other: its settings,
//! which side sent a body and in what, the commands for the media shell,
//! and why media is refused or ends.

use sipline_core::sip::Method;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::ids::MediaId;
use crate::media::dtls::DtlsError;
use crate::media::ice::IceLite;
use crate::media::ports::PortError;
use crate::media::record::{RecordingMode, Sink, Tap};
use crate::media::sdes::{SdesError, SrtpPolicy};
use crate::media::sdp::RewriteError;
use crate::media::session::Session;
use crate::media::srtp::LegKeys;

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
    /// When the PBX leg is SRTP keyed by SDES.
    pub pbx_srtp: SrtpPolicy,
    /// Calls with media one browser connection may have at once.
    pub max_calls_per_connection: usize,
    /// Which calls' media is recorded.
    pub recording: RecordingMode,
    /// One UDP port for every browser's media (0: a port of the range per
    /// call). The engine's worker `i` listens on `browser_port + i`; a
    /// call is on worker [`MediaId::worker`].
    pub browser_port: u16,
    /// The engine's worker threads.
    pub workers: usize,
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
            pbx_srtp: SrtpPolicy::Off,
            max_calls_per_connection: 16,
            recording: RecordingMode::Off,
            browser_port: 0,
            workers: 1,
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
pub enum Carrier {
    /// A request with this method.
    Request(Method),
    /// A response (any status) to a request with this method.
    Response(Method),
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
        /// `browser` is the engine's port that every browser shares
        /// ([`MediaConfig::browser_port`]): nothing to bind for it.
        shared: bool,
        /// The PBX-side RTP socket address of each leg (audio, video).
        pbx: Vec<SocketAddr>,
    },
    /// Record the call: its session's packets arrive at `sink` (sent
    /// before the session that feeds it).
    Record {
        /// The call.
        id: MediaId,
        /// The writer's end of the recording.
        sink: Sink,
    },
    /// Hand the call's packets to `tap` from now on (its recording
    /// started; the shell has its [`Command::Record`] already).
    Tap {
        /// The call.
        id: MediaId,
        /// The packet path's end of the recording.
        tap: Tap,
    },
    /// Stop recording the call: drop its tap (the writer then finishes
    /// the files).
    Untap {
        /// The call.
        id: MediaId,
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
        ice: Box<IceLite>,
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
    /// A leg's SRTP keys toward the PBX changed (SDES, RFC 4568): its
    /// packets to and from the PBX are SRTP with these, or plain.
    PbxKeys {
        /// The call.
        id: MediaId,
        /// Which leg.
        leg: usize,
        /// The new contexts (secret; `Debug` shows none of it).
        keys: LegKeys,
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
            | Command::Record { id, .. }
            | Command::Tap { id, .. }
            | Command::Untap { id }
            | Command::Browser { id, .. }
            | Command::IceRestart { id, .. }
            | Command::Pbx { id, .. }
            | Command::PbxKeys { id, .. }
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
    /// The PBX leg's SRTP could not be agreed.
    #[error(transparent)]
    Srtp(#[from] SdesError),
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
