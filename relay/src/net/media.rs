//! One call's media sockets: the thin tokio shell around the sans-IO
//! [`Session`]. It binds the call's ports from the [`PortPool`], moves
//! datagrams through the session in buffers allocated once per call, runs
//! the DTLS timer, and ends the call when media stops (the RTP timeout) or
//! the browser side fails.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tracing::debug;

use crate::media::dtls::DtlsError;
use crate::media::ports::{PortError, PortPair, PortPool};
use crate::media::session::{Forward, Session};

/// Biggest datagram carried; RTP over UDP stays under it. A bigger one
/// (read one byte longer, to see it) is dropped rather than cut short.
const MAX_DATAGRAM: usize = 1500;
/// Room after a read for what protecting adds (SRTCP with GCM: 20 bytes)
/// and for a STUN answer longer than its request.
const HEADROOM: usize = 128;
/// How many pairs to try when ports of the range are taken by others.
const BIND_ATTEMPTS: usize = 8;

/// Why a call got no media sockets.
#[derive(Debug, Error)]
pub enum BindError {
    /// The range is full: the call is refused with 503.
    #[error(transparent)]
    Ports(#[from] PortError),
    /// The ports of the range could not be bound (taken by another program,
    /// or an address this host does not have).
    #[error("could not bind media ports on {ip}: {source}")]
    Io {
        /// The address binding failed on.
        ip: IpAddr,
        /// The last failure.
        source: io::Error,
    },
}

/// How a call's media ended, for the signalling (which hangs up) and the
/// operator's log.
#[derive(Debug)]
pub enum Ended {
    /// The signalling ended the call.
    Stopped,
    /// No media either way for the configured time (RTP timeout).
    MediaTimeout,
    /// The DTLS handshake failed (a fingerprint not in the SDP, or a
    /// handshake that never completed).
    Dtls(DtlsError),
    /// A socket failed for good.
    Io(io::Error),
}

/// A pair bound to sockets and given back to the pool when dropped.
#[derive(Debug)]
struct Held {
    pair: PortPair,
    pool: Arc<Mutex<PortPool>>,
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.release(self.pair);
        }
    }
}

/// One call's three sockets: the browser's WebRTC port (RTP and RTCP
/// multiplexed, RFC 5761), and RTP and RTCP toward the PBX. Dropping it
/// gives the ports back.
#[derive(Debug)]
pub struct MediaSockets {
    browser: UdpSocket,
    pbx_rtp: UdpSocket,
    pbx_rtcp: UdpSocket,
    _held: [Held; 2],
}

impl MediaSockets {
    /// Binds a call's ports: one pair on `browser_ip` (the address in the
    /// browser's SDP; only its even port is bound, since WebRTC muxes RTCP),
    /// one on `pbx_ip` (the address in the PBX's). A call thus takes two
    /// pairs of the range.
    pub async fn bind(
        pool: &Arc<Mutex<PortPool>>,
        browser_ip: IpAddr,
        pbx_ip: IpAddr,
    ) -> Result<Self, BindError> {
        let (browser, browser_held) = bind_from_pool(pool, browser_ip, async |p| {
            UdpSocket::bind((browser_ip, p.rtp)).await
        })
        .await?;
        let ((pbx_rtp, pbx_rtcp), pbx_held) = bind_from_pool(pool, pbx_ip, async |p| {
            let rtp = UdpSocket::bind((pbx_ip, p.rtp)).await?;
            Ok((rtp, UdpSocket::bind((pbx_ip, p.rtcp())).await?))
        })
        .await?;
        Ok(Self {
            browser,
            pbx_rtp,
            pbx_rtcp,
            _held: [browser_held, pbx_held],
        })
    }

    /// The browser's WebRTC port, for the SDP answer to the browser.
    pub fn browser_addr(&self) -> io::Result<SocketAddr> {
        self.browser.local_addr()
    }

    /// The RTP port toward the PBX (its RTCP port is the next one), for the
    /// SDP offer to the PBX.
    pub fn pbx_addr(&self) -> io::Result<SocketAddr> {
        self.pbx_rtp.local_addr()
    }

    /// Moves the call's media until `stop` fires (or its sender is
    /// dropped), the media stops for `idle`, or the browser side fails.
    /// The session's counters then hold the call's figures.
    pub async fn run(
        &self,
        session: &mut Session,
        idle: Duration,
        mut stop: oneshot::Receiver<()>,
    ) -> Ended {
        let mut from_browser = vec![0u8; MAX_DATAGRAM + HEADROOM];
        let mut from_pbx = vec![0u8; MAX_DATAGRAM + HEADROOM];
        let mut last_media = Instant::now();
        loop {
            let idle_at = last_media + idle;
            let deadline = session
                .poll_timeout()
                .map_or(idle_at, |t| idle_at.min(Instant::from_std(t)));
            tokio::select! {
                _ = &mut stop => return Ended::Stopped,
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
                    let now = Instant::now();
                    match session.from_browser(now.into_std(), from, &mut from_browser, len) {
                        Ok(Forward::ToPbx { to, len, rtcp }) => {
                            last_media = now;
                            let socket = if rtcp { &self.pbx_rtcp } else { &self.pbx_rtp };
                            send(socket, &from_browser[..len], to).await;
                        }
                        Ok(Forward::ToBrowser { to, len }) => {
                            send(&self.browser, &from_browser[..len], to).await;
                        }
                        Ok(Forward::Nothing) => {}
                        Err(why) => debug!(?why, %from, "browser datagram dropped"),
                    }
                    if let Some(e) = session.failure() {
                        return Ended::Dtls(e.clone());
                    }
                }
                read = recv_either(&self.pbx_rtp, &self.pbx_rtcp, &mut from_pbx[..=MAX_DATAGRAM]) => {
                    let (len, from, rtcp) = match read {
                        Ok(read) => read,
                        Err(e) if transient(&e) => continue,
                        Err(e) => return Ended::Io(e),
                    };
                    if len > MAX_DATAGRAM {
                        debug!(%from, "oversized PBX datagram dropped");
                        continue;
                    }
                    match session.from_pbx(from, rtcp, &mut from_pbx, len) {
                        Ok(Forward::ToBrowser { to, len }) => {
                            last_media = Instant::now();
                            send(&self.browser, &from_pbx[..len], to).await;
                        }
                        Ok(_) => {}
                        Err(why) => debug!(?why, %from, "PBX datagram dropped"),
                    }
                }
                _ = tokio::time::sleep_until(deadline) => {
                    let now = Instant::now();
                    if now >= idle_at {
                        return Ended::MediaTimeout;
                    }
                    if let Err(e) = session.handle_timeout(now.into_std()) {
                        return Ended::Dtls(e);
                    }
                }
            }
            // Handshake flights and retransmissions (not on the media path).
            while let Some((to, datagram)) = session.poll_transmit() {
                send(&self.browser, &datagram, to).await;
            }
        }
    }
}

/// Takes pairs from the pool until `bind` succeeds on one, trying further
/// pairs when another program holds a port.
async fn bind_from_pool<T>(
    pool: &Arc<Mutex<PortPool>>,
    ip: IpAddr,
    bind: impl AsyncFn(PortPair) -> io::Result<T>,
) -> Result<(T, Held), BindError> {
    let mut last = io::Error::other("no attempt");
    for _ in 0..BIND_ATTEMPTS {
        let pair = pool
            .lock()
            .map_err(|_| io::Error::other("port pool poisoned"))
            .map_err(|source| BindError::Io { ip, source })?
            .allocate()?;
        let held = Held {
            pair,
            pool: Arc::clone(pool),
        };
        match bind(pair).await {
            Ok(bound) => return Ok((bound, held)),
            Err(e) => last = e, // `held` gives the pair back
        }
    }
    Err(BindError::Io { ip, source: last })
}

/// A read from the PBX's RTP or RTCP socket, whichever has one.
async fn recv_either(
    rtp: &UdpSocket,
    rtcp: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, bool)> {
    loop {
        tokio::select! {
            ready = rtp.readable() => ready?,
            ready = rtcp.readable() => ready?,
        }
        for (socket, is_rtcp) in [(rtp, false), (rtcp, true)] {
            match socket.try_recv_from(buf) {
                Ok((len, from)) => return Ok((len, from, is_rtcp)),
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
