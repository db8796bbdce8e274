//! The calls' media sockets: the thin tokio shell around the sans-IO
//! [`CallMedia`]. Ports are bound the moment the media table takes them
//! ([`SocketStash`]), then each call runs as one task that moves datagrams
//! through its call's media in buffers allocated once per call, sends what
//! it says, and runs its timer until it says the call is over. Nothing is
//! shared between calls on the packet path: the figures are published
//! once a second.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use crate::media::call::{CallMedia, Over};
use crate::media::calls::{Command, MediaEnd, PortBinder};
use crate::media::dtls::DtlsError;
use crate::media::session::{Counters, Forward, MAX_LEGS};

/// Biggest datagram carried; RTP over UDP stays under it. A bigger one
/// (read one byte longer, to see it) is dropped rather than cut short.
const MAX_DATAGRAM: usize = 1500;
/// Room after a read for what protecting adds (SRTCP with GCM: 20 bytes)
/// and for a STUN answer longer than its request.
const HEADROOM: usize = 128;
/// How often a call publishes its figures for `/metrics`.
const PUBLISH: Duration = Duration::from_secs(1);

/// Sockets bound for pairs the media table took, until the call's task
/// takes them. Touched at call setup only.
#[derive(Clone, Debug, Default)]
pub struct SocketStash {
    bound: Arc<Mutex<HashMap<SocketAddr, Vec<std::net::UdpSocket>>>>,
}

impl SocketStash {
    fn take(&self, addr: SocketAddr) -> Option<Vec<std::net::UdpSocket>> {
        self.bound
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&addr)
    }
}

fn bind_nonblocking(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(addr)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

impl PortBinder for SocketStash {
    fn bind(&mut self, addr: SocketAddr, rtcp: bool) -> io::Result<()> {
        let mut sockets = vec![bind_nonblocking(addr)?];
        if rtcp {
            let next = SocketAddr::new(addr.ip(), addr.port().saturating_add(1));
            sockets.push(bind_nonblocking(next)?);
        }
        self.bound
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(addr, sockets);
        Ok(())
    }

    fn unbind(&mut self, addr: SocketAddr) {
        self.take(addr);
    }
}

/// How a call's media ended, for the signalling (which hangs up) and the
/// operator's log.
#[derive(Debug)]
pub enum Ended {
    /// The signalling ended the call.
    Stopped,
    /// No media nor consent check from the browser for the configured
    /// time once answered, or no answer for ten minutes.
    MediaTimeout,
    /// The DTLS handshake failed (a fingerprint not in the SDP, or a
    /// broken handshake).
    Dtls(DtlsError),
    /// A socket failed for good.
    Io(io::Error),
}

impl Ended {
    /// Why the relay must end the call itself; `None` when the signalling
    /// already did.
    pub fn cause(&self) -> Option<MediaEnd> {
        match self {
            Ended::Stopped => None,
            Ended::MediaTimeout => Some(MediaEnd::Timeout),
            Ended::Dtls(_) => Some(MediaEnd::Dtls),
            Ended::Io(_) => Some(MediaEnd::Io),
        }
    }
}

/// The calls' figures for `/metrics`: the latest of each live call, and
/// the sum of the ended ones.
#[derive(Clone, Debug, Default)]
pub struct MediaFigures {
    inner: Arc<Mutex<Figures>>,
}

#[derive(Debug, Default)]
struct Figures {
    live: HashMap<u64, Counters>,
    ended: Counters,
}

fn add(sum: &mut Counters, c: &Counters) {
    sum.to_pbx += c.to_pbx;
    sum.to_browser += c.to_browser;
    sum.bytes_to_pbx += c.bytes_to_pbx;
    sum.bytes_to_browser += c.bytes_to_browser;
    sum.srtp_failures += c.srtp_failures;
    sum.dropped += c.dropped;
    sum.lost_from_browser += c.lost_from_browser;
    sum.lost_from_pbx += c.lost_from_pbx;
}

impl MediaFigures {
    fn publish(&self, call: u64, c: Counters, ended: bool) {
        let mut f = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if ended {
            f.live.remove(&call);
            add(&mut f.ended, &c);
        } else {
            f.live.insert(call, c);
        }
    }

    /// Every call's figures summed, ended calls and live ones; jitter is
    /// the mean over the live calls.
    pub fn total(&self) -> Counters {
        let f = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let mut sum = f.ended;
        sum.jitter_from_browser_us = 0;
        sum.jitter_from_pbx_us = 0;
        for c in f.live.values() {
            add(&mut sum, c);
            sum.jitter_from_browser_us += c.jitter_from_browser_us;
            sum.jitter_from_pbx_us += c.jitter_from_pbx_us;
        }
        let live = f.live.len().max(1) as u64;
        sum.jitter_from_browser_us /= live;
        sum.jitter_from_pbx_us /= live;
        sum
    }
}

/// The calls' figures join `/metrics` at scrape time: summed from the
/// snapshots the calls publish, never counted on the packet path.
impl Collector for MediaFigures {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let t = self.total();
        let per = |encoder: &mut DescriptorEncoder,
                   name: &str,
                   help: &str,
                   label: &'static str,
                   values: [(&'static str, u64); 2]|
         -> Result<(), std::fmt::Error> {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            for (value, n) in values {
                ConstCounter::new(n).encode(family.encode_family(&[(label, value)])?)?;
            }
            Ok(())
        };
        let one = |encoder: &mut DescriptorEncoder, name: &str, help: &str, n: u64| {
            let counter = ConstCounter::new(n);
            counter.encode(encoder.encode_descriptor(name, help, None, counter.metric_type())?)
        };
        per(
            &mut encoder,
            "sipline_media_packets",
            "RTP and RTCP packets carried, by direction",
            "direction",
            [("to_pbx", t.to_pbx), ("to_browser", t.to_browser)],
        )?;
        per(
            &mut encoder,
            "sipline_media_bytes",
            "RTP and RTCP bytes carried (as sent), by direction",
            "direction",
            [
                ("to_pbx", t.bytes_to_pbx),
                ("to_browser", t.bytes_to_browser),
            ],
        )?;
        one(
            &mut encoder,
            "sipline_media_srtp_failures",
            "SRTP/SRTCP packets refused (authentication, replay)",
            t.srtp_failures,
        )?;
        per(
            &mut encoder,
            "sipline_media_lost_packets",
            "RTP packets lost before reaching the relay (RFC 3550), by the side that sent them",
            "from",
            [("browser", t.lost_from_browser), ("pbx", t.lost_from_pbx)],
        )?;
        let mut jitter = encoder.encode_descriptor(
            "sipline_media_jitter_seconds",
            "Interarrival jitter of the RTP reaching the relay, mean over the calls in progress, \
             by the side that sent it",
            None,
            MetricType::Gauge,
        )?;
        for (from, us) in [
            ("browser", t.jitter_from_browser_us),
            ("pbx", t.jitter_from_pbx_us),
        ] {
            ConstGauge::new(us as f64 / 1e6).encode(jitter.encode_family(&[("from", from)])?)?;
        }
        one(
            &mut encoder,
            "sipline_media_dropped",
            "Media datagrams dropped (unknown source, no keys yet, malformed, SRTP failures)",
            t.dropped,
        )
    }
}

/// One call's sockets: the browser's WebRTC port (every stream, RTP and
/// RTCP multiplexed, RFC 5761, RFC 8843), and RTP and RTCP toward the PBX
/// for each leg (audio, video).
#[derive(Debug)]
pub struct MediaSockets {
    browser: UdpSocket,
    legs: Vec<(UdpSocket, UdpSocket)>,
}

fn from_std(socket: Option<std::net::UdpSocket>, addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = socket
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{addr} was not bound")))?;
    UdpSocket::from_std(socket)
}

impl MediaSockets {
    /// Takes a call's sockets from the stash: the browser's at `browser`,
    /// each leg's RTP toward the PBX at `pbx` and its RTCP on the next
    /// port.
    pub fn take(stash: &SocketStash, browser: SocketAddr, pbx: &[SocketAddr]) -> io::Result<Self> {
        let b = stash.take(browser).and_then(|mut s| s.pop());
        let mut legs = Vec::with_capacity(pbx.len());
        for &addr in pbx {
            let mut p = stash.take(addr).unwrap_or_default().into_iter();
            let (rtp, rtcp) = (p.next(), p.next());
            legs.push((from_std(rtp, addr)?, from_std(rtcp, addr)?));
        }
        if legs.is_empty() || legs.len() > MAX_LEGS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} legs: a call has 1 to {MAX_LEGS}", legs.len()),
            ));
        }
        Ok(Self {
            browser: from_std(b, browser)?,
            legs,
        })
    }

    /// The browser's WebRTC port.
    pub fn browser_addr(&self) -> io::Result<SocketAddr> {
        self.browser.local_addr()
    }

    /// The first leg's RTP port toward the PBX (its RTCP port is the next
    /// one).
    pub fn pbx_addr(&self) -> io::Result<SocketAddr> {
        self.legs[0].0.local_addr()
    }

    /// Moves the call's media until `control` closes (the signalling ended
    /// the call) or [`CallMedia`] says it is over (see there). Publishes
    /// its figures to `figures` as call `call`.
    pub async fn run(
        &self,
        mut control: mpsc::UnboundedReceiver<Command>,
        idle: Duration,
        figures: &MediaFigures,
        call: u64,
    ) -> Ended {
        let mut media = CallMedia::new(std::time::Instant::now(), idle);
        let ended = self
            .run_inner(&mut control, figures, call, &mut media)
            .await;
        figures.publish(call, media.figures().unwrap_or_default(), true);
        ended
    }

    async fn run_inner(
        &self,
        control: &mut mpsc::UnboundedReceiver<Command>,
        figures: &MediaFigures,
        call: u64,
        media: &mut CallMedia,
    ) -> Ended {
        let mut from_browser = vec![0u8; MAX_DATAGRAM + HEADROOM];
        let mut from_pbx = vec![0u8; MAX_DATAGRAM + HEADROOM];
        let mut next_publish = Instant::now() + PUBLISH;
        let mut pbx_turn = 0usize;
        // One timer, moved only when its deadline changes (the DTLS timer
        // during the handshake, else once a second): never re-armed per
        // packet.
        let timer = tokio::time::sleep_until(next_publish);
        tokio::pin!(timer);
        loop {
            let deadline = Instant::from_std(media.poll_timeout()).min(next_publish);
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            tokio::select! {
                command = control.recv() => match command {
                    None => return Ended::Stopped,
                    Some(command) => media.apply(Instant::now().into_std(), command),
                },
                read = self.browser.recv_from(&mut from_browser[..=MAX_DATAGRAM]) => {
                    let (len, from) = match read {
                        Ok(read) => read,
                        Err(e) if transient(&e) => continue,
                        Err(e) => return Ended::Io(e),
                    };
                    if len > MAX_DATAGRAM {
                        debug!(%from, "oversized browser datagram dropped");
                        continue;
                    }
                    match media.from_browser(Instant::now().into_std(), from, &mut from_browser, len) {
                        Ok(Forward::ToPbx { leg, to, len, rtcp }) => {
                            if let Some((rtp_socket, rtcp_socket)) = self.legs.get(leg) {
                                let socket = if rtcp { rtcp_socket } else { rtp_socket };
                                send(socket, &from_browser[..len], to).await;
                            }
                        }
                        Ok(Forward::ToBrowser { to, len }) => {
                            send(&self.browser, &from_browser[..len], to).await;
                        }
                        Ok(Forward::Nothing) => {}
                        Err(why) => debug!(?why, %from, "browser datagram dropped"),
                    }
                    if let Some(e) = media.failure() {
                        return Ended::Dtls(e.clone());
                    }
                }
                read = recv_pbx(&self.legs, &mut pbx_turn, &mut from_pbx[..=MAX_DATAGRAM]) => {
                    let (len, from, leg, rtcp) = match read {
                        Ok(read) => read,
                        Err(e) if transient(&e) => continue,
                        Err(e) => return Ended::Io(e),
                    };
                    if len > MAX_DATAGRAM {
                        debug!(%from, "oversized PBX datagram dropped");
                        continue;
                    }
                    let now = Instant::now().into_std();
                    match media.from_pbx(now, leg, from, rtcp, &mut from_pbx, len) {
                        Ok(Forward::ToBrowser { to, len }) => {
                            send(&self.browser, &from_pbx[..len], to).await;
                        }
                        Ok(_) => {}
                        Err(why) => debug!(?why, %from, "PBX datagram dropped"),
                    }
                }
                _ = &mut timer => {
                    let now = Instant::now();
                    if now >= next_publish {
                        next_publish = now + PUBLISH;
                        if let Some(counters) = media.figures() {
                            figures.publish(call, counters, false);
                        }
                    }
                    match media.handle_timeout(now.into_std()) {
                        Ok(()) => {}
                        Err(Over::Timeout) => return Ended::MediaTimeout,
                        Err(Over::Dtls(e)) => return Ended::Dtls(e),
                    }
                }
            }
            // Handshake flights and retransmissions (not on the media path).
            while let Some((to, datagram)) = media.poll_transmit() {
                send(&self.browser, &datagram, to).await;
            }
        }
    }
}

/// Waits until a leg's socket is readable (never, for a leg the call does
/// not have).
async fn readable(legs: &[(UdpSocket, UdpSocket)], leg: usize, rtcp: bool) -> io::Result<()> {
    match legs.get(leg) {
        Some((rtp_socket, rtcp_socket)) => {
            if rtcp {
                rtcp_socket.readable().await
            } else {
                rtp_socket.readable().await
            }
        }
        None => std::future::pending().await,
    }
}

/// A read from any leg's RTP or RTCP socket toward the PBX: the length,
/// the sender, the leg, and whether it is RTCP. The sockets are tried in
/// turn from `turn`, so that a flood on one cannot starve the others.
async fn recv_pbx(
    legs: &[(UdpSocket, UdpSocket)],
    turn: &mut usize,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, usize, bool)> {
    loop {
        tokio::select! {
            ready = readable(legs, 0, false) => ready?,
            ready = readable(legs, 0, true) => ready?,
            ready = readable(legs, 1, false) => ready?,
            ready = readable(legs, 1, true) => ready?,
        }
        let sockets = 2 * legs.len();
        for i in 0..sockets {
            let n = (*turn + i) % sockets;
            let (leg, is_rtcp) = (n / 2, n % 2 == 1);
            let (rtp_socket, rtcp_socket) = &legs[leg];
            let socket = if is_rtcp { rtcp_socket } else { rtp_socket };
            match socket.try_recv_from(buf) {
                Ok((len, from)) => {
                    *turn = n + 1;
                    return Ok((len, from, leg, is_rtcp));
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Errors a UDP read may report that say nothing about this socket
/// (an ICMP error for an earlier send, on some systems).
fn transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::ConnectionReset
    )
}

/// Sends one datagram; a failed send loses that packet only, as on the wire.
async fn send(socket: &UdpSocket, datagram: &[u8], to: SocketAddr) {
    if let Err(e) = socket.send_to(datagram, to).await {
        debug!(%to, error = %e, "media send failed");
    }
}
