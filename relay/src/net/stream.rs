//! The PBX side over TCP and TLS: one connection per PBX, kept open.
//!
//! Each PBX reached over a stream has a task that owns its connection:
//! - it connects from the relay's own SIP address and port (every PBX's
//!   connection from the same port: `SO_REUSEPORT`), so that the PBX finds
//!   this connection under the address the relay's Via, Record-Route and
//!   Contact name, and sends its requests (an incoming call) on it. When
//!   the relay gives a connection up (a missed pong, a stalled write, bytes
//!   that cannot be framed) it resets it, leaving no TIME_WAIT that would
//!   keep it off that port. Should the port still not be had, any port
//!   will do, and the Via's `alias` (RFC 5923) asks the PBX for the same,
//!   which PBXs honour when set up to (Kamailio's `tcp_accept_aliases`);
//! - TLS verifies the PBX's certificate against the configured CA or the
//!   system's roots, for the configured name or the PBX's IP address;
//! - messages are framed by their Content-Length ([`super::framing`]) and
//!   handed to the proxy as one PBX message each, as a datagram is;
//! - a CRLF ping every keep-alive interval (RFC 5626 §4.4.1); once the PBX
//!   has shown that it answers them, a pong must come within
//!   [`PONG_WITHIN`] (a PBX that never answers keeps its connection, and
//!   TCP keep-alive finds it dead); the PBX's own pings are answered;
//! - a connection that breaks is opened again at once, and the proxy told:
//!   what went over it unanswered fails over or gets `503`, as its answer
//!   cannot come any more; one that cannot be
//!   opened, or breaks as soon as it is (a TLS 1.3 server refusing the
//!   relay's certificate), makes the PBX unreachable for the proxy (what
//!   was in flight to it fails over, or is answered `503` at once, as an
//!   ICMP unreachable does over UDP), and is tried again with a growing
//!   backoff, or at once when a message is waiting.
//!
//! No SIP rule lives here: the proxy decides what goes where.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::ClientConfig;
use tokio_rustls::rustls::pki_types::ServerName;
use tracing::{debug, info, warn};

use super::Input;
use super::framing::{Frame, Framer};
use crate::signalling::PbxTarget;
use crate::transport::Transport;

/// A connection (and its TLS handshake) must be up within this at most
/// ([`StreamSettings::connect_within`] is shorter with a short failover
/// time).
pub const CONNECT_WITHIN: Duration = Duration::from_secs(5);
/// A pong must follow a ping within this (RFC 5626 §4.4.1: 10 s).
pub const PONG_WITHIN: Duration = Duration::from_secs(10);
/// A message must be taken by the PBX's socket within this.
const WRITE_WITHIN: Duration = Duration::from_secs(10);
/// The first wait before connecting again after a failure; it doubles up
/// to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A connection that lived this long is opened again at once when it
/// breaks; a shorter one counts as a failed attempt (a PBX that accepts
/// and closes must not make the relay spin).
const STABLE_AFTER: Duration = Duration::from_secs(1);
/// Messages waiting for one PBX's connection; beyond, the proxy is told
/// that the PBX is not taking them.
const QUEUE: usize = 1024;

/// How the relay's stream connections are made.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// The relay's bound SIP address: connections are made from it.
    pub local: SocketAddr,
    /// TLS toward PBXs, when any may be reached over it.
    pub tls: Option<Arc<ClientConfig>>,
    /// The name a TLS PBX's certificate must carry; its IP address when
    /// none.
    pub tls_name: Option<String>,
    /// How often a CRLF ping goes out; none: never.
    pub keepalive: Option<Duration>,
    /// How long its pong may take ([`PONG_WITHIN`]).
    pub pong_within: Duration,
    /// How long a connection may take to open: no longer than the proxy
    /// waits before it moves a request on to the next PBX, so that a
    /// request it moved is not sent here late as well.
    pub connect_within: Duration,
    /// The longest message accepted off a stream.
    pub max_message: usize,
}

/// Why a message could not be handed to a PBX's connection.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// No connection for that address: it is not a stream PBX.
    NotOurs,
    /// Its queue is full: the PBX is not taking messages.
    Full,
}

/// The connections to the PBXs reached over TCP or TLS.
pub struct Streams {
    settings: Arc<StreamSettings>,
    conns: HashMap<SocketAddr, mpsc::Sender<Vec<u8>>>,
}

impl Streams {
    /// None yet.
    pub fn new(settings: StreamSettings) -> Self {
        Self {
            settings: Arc::new(settings),
            conns: HashMap::new(),
        }
    }

    /// Starts the connection `target` needs, if any: its own over TCP or
    /// TLS; over UDP, a TCP one to the same address when its large
    /// requests go over TCP (`large_over_tcp`).
    pub fn add_for(
        &mut self,
        target: PbxTarget,
        large_over_tcp: bool,
        inputs: &mpsc::Sender<Input>,
    ) -> io::Result<()> {
        match target.transport {
            Transport::Udp if !large_over_tcp => Ok(()),
            Transport::Udp => self.add(
                PbxTarget {
                    transport: Transport::Tcp,
                    ..target
                },
                inputs,
            ),
            _ => self.add(target, inputs),
        }
    }

    /// Starts the connection to `target` (TCP or TLS), which reports to
    /// the proxy through `inputs`. A PBX already known is left as it is.
    pub fn add(&mut self, target: PbxTarget, inputs: &mpsc::Sender<Input>) -> io::Result<()> {
        if self.conns.contains_key(&target.addr) {
            return Ok(());
        }
        let tls = match target.transport {
            Transport::Udp => return Err(io::Error::other("a UDP PBX has no stream")),
            Transport::Tcp => None,
            Transport::Tls => {
                let config = self
                    .settings
                    .tls
                    .clone()
                    .ok_or_else(|| io::Error::other("TLS toward the PBX is not configured"))?;
                let name = match &self.settings.tls_name {
                    // An address (an IPv6 one in brackets, as a URI has it)
                    // is checked as one.
                    Some(name) => match name.trim_matches(['[', ']']).parse::<IpAddr>() {
                        Ok(ip) => ServerName::from(ip),
                        Err(_) => ServerName::try_from(name.clone())
                            .map_err(|e| io::Error::other(format!("pbx.tls_name: {e}")))?,
                    },
                    None => ServerName::from(target.addr.ip()),
                };
                Some((TlsConnector::from(config), name))
            }
        };
        let (tx, rx) = mpsc::channel(QUEUE);
        self.conns.insert(target.addr, tx);
        let pbx = Pbx {
            addr: target.addr,
            tls,
            settings: self.settings.clone(),
            inputs: inputs.clone(),
        };
        tokio::spawn(pbx.run(rx));
        Ok(())
    }

    /// Whether `addr` is a PBX reached over a stream.
    pub fn has(&self, addr: SocketAddr) -> bool {
        self.conns.contains_key(&addr)
    }

    /// Hands `message` to the connection toward `to`.
    pub fn send(&self, to: SocketAddr, message: Vec<u8>) -> Result<(), SendError> {
        let tx = self.conns.get(&to).ok_or(SendError::NotOurs)?;
        tx.try_send(message).map_err(|_| SendError::Full)
    }
}

/// How a connection ended.
enum Ended {
    /// The proxy is gone: the relay stops.
    Proxy,
    /// The connection broke (why).
    Lost(String),
}

/// One PBX's connection task.
struct Pbx {
    addr: SocketAddr,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    settings: Arc<StreamSettings>,
    inputs: mpsc::Sender<Input>,
}

impl Pbx {
    async fn run(self, mut rx: mpsc::Receiver<Vec<u8>>) {
        let pbx = self.addr;
        let mut backoff = MIN_BACKOFF;
        let mut failures = 0u32;
        let mut waiting: Option<Vec<u8>> = None;
        loop {
            let opened = tokio::time::timeout(self.settings.connect_within, self.open()).await;
            let opened = opened.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()));
            let failure = match opened {
                Ok(stream) => {
                    if failures > 0 {
                        info!(%pbx, after = failures, "connected to the PBX again");
                    } else {
                        info!(%pbx, tls = self.tls.is_some(), "connected to the PBX");
                    }
                    let since = Instant::now();
                    let Opened { stream, guard } = stream;
                    let ended = match stream {
                        Stream::Tcp(s) => self.serve(s, &guard, &mut rx, waiting.take()).await,
                        Stream::Tls(s) => self.serve(*s, &guard, &mut rx, waiting.take()).await,
                    };
                    match ended {
                        Ended::Proxy => return,
                        Ended::Lost(why) if since.elapsed() >= STABLE_AFTER => {
                            warn!(%pbx, why, "connection to the PBX lost: opening it again");
                            failures = 0;
                            backoff = MIN_BACKOFF;
                            // What went over it cannot be answered; what
                            // waits for it is the proxy's to send again.
                            while rx.try_recv().is_ok() {}
                            if self.inputs.send(Input::StreamLost { pbx }).await.is_err() {
                                return;
                            }
                            continue;
                        }
                        // Closed as soon as it was open: a PBX that hangs
                        // up at once, or a TLS 1.3 server that refuses the
                        // relay's certificate after the handshake. As good
                        // as no connection.
                        Ended::Lost(why) => why,
                    }
                }
                Err(e) => e.to_string(),
            };
            failures += 1;
            if failures == 1 {
                warn!(%pbx, error = failure, "cannot connect to the PBX");
            } else {
                debug!(%pbx, error = failure, failures, "still cannot connect to the PBX");
            }
            // What waited for this connection is lost: the proxy fails
            // over, or answers its requests itself.
            waiting = None;
            while rx.try_recv().is_ok() {}
            if self.inputs.send(Input::Unreachable { pbx }).await.is_err() {
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                message = rx.recv() => match message {
                    Some(m) => waiting = Some(m),
                    None => return,
                },
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// A connection to the PBX, TLS when it wants it.
    async fn open(&self) -> io::Result<Opened> {
        let tcp = connect(self.settings.local, self.addr).await?;
        let _ = tcp.set_nodelay(true);
        // A second handle on the socket, to reset it when the relay gives
        // it up (the stream itself moves into TLS and its halves).
        let std = tcp.into_std()?;
        let guard = std.try_clone()?;
        let tcp = TcpStream::from_std(std)?;
        // A backstop for a PBX that vanishes between pings.
        let keepalive = TcpKeepalive::new()
            .with_time(Duration::from_secs(30))
            .with_interval(Duration::from_secs(10));
        let _ = SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
        let stream = match &self.tls {
            None => Stream::Tcp(tcp),
            Some((connector, name)) => {
                Stream::Tls(Box::new(connector.connect(name.clone(), tcp).await?))
            }
        };
        Ok(Opened { stream, guard })
    }

    /// Carries messages both ways until the connection breaks or the proxy
    /// is gone. A connection the relay gives up is reset through `guard`.
    async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        guard: &std::net::TcpStream,
        rx: &mut mpsc::Receiver<Vec<u8>>,
        first: Option<Vec<u8>>,
    ) -> Ended {
        // Reset (no TIME_WAIT on the relay's SIP port, which the next
        // connection needs), and why.
        let give_up = |why: String| {
            let _ = SockRef::from(guard).set_linger(Some(Duration::ZERO));
            Ended::Lost(why)
        };
        let (mut reader, mut writer) = tokio::io::split(stream);
        if let Some(m) = first
            && let Err(why) = write(&mut writer, &m).await
        {
            return give_up(why);
        }
        let mut framer = Framer::new(self.settings.max_message);
        let mut buf = vec![0u8; 16 * 1024];
        let far = Instant::now() + Duration::from_secs(86_400 * 365);
        let every = self.settings.keepalive;
        let mut next_ping = every.map_or(far, |e| Instant::now() + e);
        // Pongs are required once the PBX has shown that it sends them.
        let mut answers_pings = false;
        let mut pong_by = far;
        let transport = if self.tls.is_some() {
            Transport::Tls
        } else {
            Transport::Tcp
        };
        loop {
            tokio::select! {
                message = rx.recv() => match message {
                    None => return Ended::Proxy,
                    Some(m) => {
                        if let Err(why) = write(&mut writer, &m).await {
                            return give_up(why);
                        }
                    }
                },
                read = reader.read(&mut buf) => {
                    let n = match read {
                        Ok(0) => return Ended::Lost("closed by the PBX".into()),
                        Ok(n) => n,
                        Err(e) => return Ended::Lost(e.to_string()),
                    };
                    // Anything heard shows the connection alive.
                    pong_by = far;
                    framer.push(&buf[..n]);
                    loop {
                        match framer.next_frame() {
                            Ok(None) => break,
                            Ok(Some(Frame::Pong)) => answers_pings = true,
                            // RFC 5626 §4.4.1: the PBX's ping gets its pong.
                            Ok(Some(Frame::Ping)) => {
                                if let Err(why) = write(&mut writer, b"\r\n").await {
                                    return give_up(why);
                                }
                            }
                            Ok(Some(Frame::Message(bytes))) => {
                                let input = Input::Streamed { from: self.addr, transport, bytes };
                                if self.inputs.send(input).await.is_err() {
                                    return Ended::Proxy;
                                }
                            }
                            // RFC 3261 §18.3: a stream that cannot be framed
                            // any more is closed.
                            Err(e) => return give_up(e.to_string()),
                        }
                    }
                }
                _ = tokio::time::sleep_until(next_ping) => {
                    if let Err(why) = write(&mut writer, b"\r\n\r\n").await {
                        return give_up(why);
                    }
                    next_ping = every.map_or(far, |e| Instant::now() + e);
                    // The first unanswered ping sets the deadline; later
                    // ones must not push it back.
                    if answers_pings && pong_by == far {
                        pong_by = Instant::now() + self.settings.pong_within;
                    }
                }
                _ = tokio::time::sleep_until(pong_by) => {
                    return give_up(format!("no pong within {:?}", self.settings.pong_within));
                }
            }
        }
    }
}

/// A connection just made, and a second handle on its socket.
struct Opened {
    stream: Stream,
    guard: std::net::TcpStream,
}

enum Stream {
    Tcp(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// Writes `bytes` whole and flushes them (TLS holds what the socket did
/// not take at once until then), within [`WRITE_WITHIN`].
async fn write<W: AsyncWrite + Unpin>(writer: &mut W, bytes: &[u8]) -> Result<(), String> {
    let whole = async {
        writer.write_all(bytes).await?;
        writer.flush().await
    };
    match tokio::time::timeout(WRITE_WITHIN, whole).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("the PBX took nothing for {WRITE_WITHIN:?}")),
    }
}

/// A TCP connection to `pbx` from `local` (the relay's SIP address and
/// port) when that can be had, else from any port.
async fn connect(local: SocketAddr, pbx: SocketAddr) -> io::Result<TcpStream> {
    let fresh = || {
        if pbx.is_ipv4() {
            TcpSocket::new_v4()
        } else {
            TcpSocket::new_v6()
        }
    };
    if local.is_ipv4() == pbx.is_ipv4() {
        let socket = fresh()?;
        let bound = socket
            .set_reuseaddr(true)
            .and_then(|()| socket.set_reuseport(true))
            .and_then(|()| socket.bind(local));
        if bound.is_ok() {
            match socket.connect(pbx).await {
                Ok(stream) => return Ok(stream),
                // The same four addresses still in TIME_WAIT from the last
                // connection: any port will do.
                Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable => {
                    debug!(%pbx, "the SIP port's connection is still closing: connecting from another port");
                }
                Err(e) => return Err(e),
            }
        }
    }
    fresh()?.connect(pbx).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    fn settings(local: SocketAddr) -> StreamSettings {
        StreamSettings {
            local,
            tls: None,
            tls_name: None,
            keepalive: None,
            pong_within: PONG_WITHIN,
            connect_within: CONNECT_WITHIN,
            max_message: 65_536,
        }
    }

    fn tcp(addr: SocketAddr) -> PbxTarget {
        PbxTarget {
            addr,
            transport: Transport::Tcp,
            priority: 1,
            weight: 1,
        }
    }

    #[tokio::test]
    async fn a_connection_the_pbx_closes_is_opened_again_at_once_and_carries_on() {
        let pbx = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = pbx.local_addr().expect("addr");
        let (inputs, mut from_streams) = mpsc::channel(16);
        let mut streams = Streams::new(settings("127.0.0.1:0".parse().expect("addr")));
        streams.add(tcp(addr), &inputs).expect("started");
        let (first, _) = pbx.accept().await.expect("connected");
        // Lived long enough to be opened again without a wait.
        tokio::time::sleep(STABLE_AFTER).await;
        drop(first);
        let (mut second, _) = tokio::time::timeout(Duration::from_secs(1), pbx.accept())
            .await
            .expect("opened again at once")
            .expect("accepted");
        // The proxy learns that what went over the old one is lost (not
        // that the PBX is down).
        assert!(
            matches!(from_streams.recv().await, Some(Input::StreamLost { pbx }) if pbx == addr),
            "the loss reported"
        );
        let options = b"OPTIONS sip:x SIP/2.0\r\nl: 0\r\n\r\n";
        streams.send(addr, options.to_vec()).expect("queued");
        let mut got = vec![0u8; options.len()];
        second.read_exact(&mut got).await.expect("read");
        assert_eq!(got, options, "the next message on the new connection");
        // Its ping gets a pong.
        second.write_all(b"\r\n\r\n").await.expect("ping");
        let mut pong = [0u8; 2];
        second.read_exact(&mut pong).await.expect("pong");
        assert_eq!(&pong, b"\r\n");
        assert!(from_streams.try_recv().is_err(), "nothing more");
    }

    #[tokio::test]
    async fn pings_go_out_and_a_pbx_that_never_answers_one_is_left_for_a_new_connection() {
        let pbx = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = pbx.local_addr().expect("addr");
        let (inputs, _from_streams) = mpsc::channel(16);
        let mut streams = Streams::new(StreamSettings {
            keepalive: Some(Duration::from_millis(100)),
            pong_within: Duration::from_millis(300),
            ..settings("127.0.0.1:0".parse().expect("addr"))
        });
        streams.add(tcp(addr), &inputs).expect("started");
        let (mut answering, _) = pbx.accept().await.expect("connected");
        // Pong every ping for a while: the connection stays.
        let mut ping = [0u8; 4];
        for _ in 0..5 {
            answering.read_exact(&mut ping).await.expect("a ping");
            assert_eq!(&ping, b"\r\n\r\n");
            answering.write_all(b"\r\n").await.expect("pong");
        }
        // Then silence: the relay gives the connection up (a reset) and
        // opens another.
        let (mut silent, _) = tokio::time::timeout(Duration::from_secs(3), pbx.accept())
            .await
            .expect("a new connection after the pong was missed")
            .expect("accepted");
        let mut rest = Vec::new();
        let closed = answering.read_to_end(&mut rest).await;
        assert!(
            closed.is_err_and(|e| e.kind() == io::ErrorKind::ConnectionReset),
            "reset, not closed"
        );
        // A PBX that never answered a ping keeps its connection: pinged,
        // never given up.
        for _ in 0..8 {
            silent.read_exact(&mut ping).await.expect("pinged");
        }
        assert!(
            tokio::time::timeout(Duration::from_millis(200), pbx.accept())
                .await
                .is_err(),
            "no new connection"
        );
    }

    #[tokio::test]
    async fn a_pbx_gets_the_messages_and_its_own_come_back_whole() {
        let pbx = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = pbx.local_addr().expect("addr");
        // The relay's SIP port, taken by its UDP socket as in the relay.
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
        let local = udp.local_addr().expect("addr");
        let (inputs, mut from_streams) = mpsc::channel(16);
        let mut streams = Streams::new(settings(local));
        streams.add(tcp(addr), &inputs).expect("started");
        let (mut conn, peer) = pbx.accept().await.expect("connected at once");
        assert_eq!(peer, local, "from the relay's SIP port");
        let options = b"OPTIONS sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n";
        streams.send(addr, options.to_vec()).expect("queued");
        let mut got = vec![0u8; options.len()];
        conn.read_exact(&mut got).await.expect("read");
        assert_eq!(got, options);
        // Two messages in one write, with a pong between them.
        let mut two = options.to_vec();
        two.extend_from_slice(b"\r\n");
        two.extend_from_slice(options);
        conn.write_all(&two).await.expect("write");
        for _ in 0..2 {
            match from_streams.recv().await {
                Some(Input::Streamed {
                    from,
                    transport,
                    bytes,
                }) => {
                    assert_eq!((from, transport), (addr, Transport::Tcp));
                    assert_eq!(bytes, options);
                }
                _ => panic!("a message from the PBX"),
            }
        }
        assert_eq!(
            streams.send("127.0.0.1:9".parse().expect("addr"), Vec::new()),
            Err(SendError::NotOurs)
        );
    }

    #[tokio::test]
    async fn a_pbx_that_cannot_be_reached_is_reported_at_once() {
        // A port nobody listens on: refused.
        let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = closed.local_addr().expect("addr");
        drop(closed);
        let (inputs, mut from_streams) = mpsc::channel(16);
        let mut streams = Streams::new(settings("127.0.0.1:0".parse().expect("addr")));
        streams.add(tcp(addr), &inputs).expect("started");
        let reported = tokio::time::timeout(Duration::from_secs(2), from_streams.recv()).await;
        assert!(
            matches!(reported, Ok(Some(Input::Unreachable { pbx })) if pbx == addr),
            "unreachable within moments"
        );
    }
}
