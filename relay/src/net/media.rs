//! The calls' media sockets and what the media engine reports: ports are
//! bound the moment the media table takes them ([`SocketStash`]) and
//! handed to the engine ([`super::engine`]) as one call's
//! [`MediaSockets`]; a call's end comes back as [`Ended`], and its figures
//! are published once a second into [`MediaFigures`] for `/metrics`.

use std::collections::HashMap;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::media::calls::{MediaEnd, PortBinder};
use crate::media::dtls::DtlsError;
use crate::media::session::{Counters, MAX_LEGS};

/// How long a bind waits for the engine to close an ended call's socket
/// on the same port (its worker does so within its turn; this is the
/// bound, not the usual wait). Only a nearly full range hands a port out
/// again that soon: the table walks it round-robin.
const RELEASE_WAIT: Duration = Duration::from_millis(100);

/// Sockets bound for pairs the media table took, until the engine
/// takes them, and the addresses the engine's calls hold. Touched at call
/// setup and end only.
#[derive(Clone, Debug, Default)]
pub struct SocketStash {
    bound: Arc<Mutex<HashMap<SocketAddr, Vec<UdpSocket>>>>,
    /// How many of the engine's calls hold each address: a closing call
    /// may still count one when the next call on its port already does.
    held: Arc<(Mutex<HashMap<SocketAddr, usize>>, Condvar)>,
}

impl SocketStash {
    fn take(&self, addr: SocketAddr) -> Option<Vec<UdpSocket>> {
        self.bound
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&addr)
    }

    /// Binds `addr`. The media table hands a pair out again as soon as
    /// its call ended, while the engine's worker may still be closing that
    /// call's sockets: a port the engine holds is waited for (briefly).
    fn bind_one(&self, addr: SocketAddr) -> io::Result<UdpSocket> {
        let socket = match UdpSocket::bind(addr) {
            Err(e) if e.kind() == io::ErrorKind::AddrInUse && self.released(addr) => {
                UdpSocket::bind(addr)?
            }
            bound => bound?,
        };
        socket.set_nonblocking(true)?;
        Ok(socket)
    }

    /// Whether the engine held `addr` and let it go within
    /// [`RELEASE_WAIT`].
    fn released(&self, addr: SocketAddr) -> bool {
        let (held, closed) = &*self.held;
        let held = held.lock().unwrap_or_else(PoisonError::into_inner);
        if !held.contains_key(&addr) {
            return false;
        }
        let (_held, wait) = closed
            .wait_timeout_while(held, RELEASE_WAIT, |held| held.contains_key(&addr))
            .unwrap_or_else(PoisonError::into_inner);
        !wait.timed_out()
    }

    fn hold(&self, addrs: Vec<SocketAddr>) -> Held {
        let (held, _) = &*self.held;
        let mut held = held.lock().unwrap_or_else(PoisonError::into_inner);
        for &addr in &addrs {
            *held.entry(addr).or_default() += 1;
        }
        Held {
            addrs,
            stash: Arc::clone(&self.held),
        }
    }
}

/// A call's addresses as long as the engine holds its sockets: dropped
/// after them, it tells a bind waiting for one of them (see
/// [`SocketStash::bind_one`]).
#[derive(Debug)]
pub struct Held {
    addrs: Vec<SocketAddr>,
    stash: Arc<(Mutex<HashMap<SocketAddr, usize>>, Condvar)>,
}

impl Drop for Held {
    fn drop(&mut self) {
        let (held, closed) = &*self.stash;
        let mut held = held.lock().unwrap_or_else(PoisonError::into_inner);
        for addr in &self.addrs {
            if let Some(n) = held.get_mut(addr) {
                *n -= 1;
                if *n == 0 {
                    held.remove(addr);
                }
            }
        }
        closed.notify_all();
    }
}

impl PortBinder for SocketStash {
    fn bind(&mut self, addr: SocketAddr, rtcp: bool) -> io::Result<()> {
        let mut sockets = vec![self.bind_one(addr)?];
        if rtcp {
            let next = SocketAddr::new(addr.ip(), addr.port().saturating_add(1));
            sockets.push(self.bind_one(next)?);
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
    pub(super) fn publish(&self, call: u64, c: Counters, ended: bool) {
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
/// RTCP multiplexed, RFC 5761, RFC 8843) unless the engine's shared port
/// serves it, and RTP and RTCP toward the PBX for each leg (audio, video).
#[derive(Debug)]
pub struct MediaSockets {
    browser: Option<UdpSocket>,
    legs: Vec<(UdpSocket, UdpSocket)>,
    held: Held,
}

fn taken(socket: Option<UdpSocket>, addr: SocketAddr) -> io::Result<UdpSocket> {
    socket.ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("{addr} was not bound")))
}

impl MediaSockets {
    /// Takes a call's sockets from the stash: the browser's at `browser`
    /// (none when the call uses the engine's shared port), each leg's RTP
    /// toward the PBX at `pbx` and its RTCP on the next port.
    pub fn take(
        stash: &SocketStash,
        browser: Option<SocketAddr>,
        pbx: &[SocketAddr],
    ) -> io::Result<Self> {
        let browser = match browser {
            Some(addr) => Some(taken(stash.take(addr).and_then(|mut s| s.pop()), addr)?),
            None => None,
        };
        let mut legs = Vec::with_capacity(pbx.len());
        for &addr in pbx {
            let mut p = stash.take(addr).unwrap_or_default().into_iter();
            let (rtp, rtcp) = (p.next(), p.next());
            legs.push((taken(rtp, addr)?, taken(rtcp, addr)?));
        }
        if legs.is_empty() || legs.len() > MAX_LEGS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} legs: a call has 1 to {MAX_LEGS}", legs.len()),
            ));
        }
        let mut addrs = Vec::with_capacity(1 + 2 * legs.len());
        if let Some(browser) = &browser {
            addrs.push(browser.local_addr()?);
        }
        for (rtp, rtcp) in &legs {
            addrs.extend([rtp.local_addr()?, rtcp.local_addr()?]);
        }
        Ok(Self {
            browser,
            legs,
            held: stash.hold(addrs),
        })
    }

    /// The browser's WebRTC port, when the call has its own.
    pub fn browser_addr(&self) -> Option<io::Result<SocketAddr>> {
        self.browser.as_ref().map(UdpSocket::local_addr)
    }

    /// The first leg's RTP port toward the PBX (its RTCP port is the next
    /// one).
    pub fn pbx_addr(&self) -> io::Result<SocketAddr> {
        self.legs[0].0.local_addr()
    }

    /// The sockets by their place in a call: 0 the browser's, then each
    /// leg's RTP (`1 + 2 * leg`) and RTCP (`2 + 2 * leg`); and their
    /// addresses, to drop once they are closed.
    pub(super) fn into_parts(self) -> (Held, impl Iterator<Item = (usize, UdpSocket)>) {
        let legs = self.legs.into_iter().flat_map(|(rtp, rtcp)| [rtp, rtcp]);
        let sockets = std::iter::once(self.browser)
            .chain(legs.map(Some))
            .enumerate()
            .filter_map(|(idx, socket)| Some((idx, socket?)));
        (self.held, sockets)
    }
}
