//! The HTTP front door, in place of `axum::serve`: every TCP connection
//! passes the [`Gate`] (bounded in all and per address, oldest pushed out
//! first), TLS handshakes have a deadline, and hyper reads each request's
//! headers under a deadline that also ends an idle keep-alive connection.
//! Once a connection becomes a WebSocket it leaves the gate: from then on
//! the proxy's admission and the WebSocket's own idle limit apply. A
//! connection from a trusted load balancer first gives its PROXY protocol
//! header, and passes the gate as the browser it names.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio_rustls::TlsAcceptor;
use tower::Service;
use tracing::{debug, warn};

use super::gate::Gate;
use super::proxy_protocol;
use super::tls::Peer;

/// How long a client may take to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The front door's bounds.
#[derive(Clone, Copy, Debug)]
pub(super) struct HttpLimits {
    /// Connections not yet upgraded, in all.
    pub total: usize,
    /// Connections not yet upgraded, from one address.
    pub per_ip: usize,
    /// How long a request's headers (or the next request on an idle
    /// connection) may take to arrive.
    pub header_timeout: Duration,
}

/// Load balancers whose connections start with a PROXY protocol header.
pub(super) type Trusted = Arc<[IpAddr]>;

/// The gate and, for each connection in it, what closes it.
struct Door {
    gate: Gate,
    closers: std::collections::HashMap<u64, Arc<Notify>>,
}

/// Serves `app` on `listener` (over TLS with `tls`) until `stopping` turns
/// true; connections in progress then finish their requests and close.
pub(super) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    (limits, trusted): (HttpLimits, Trusted),
    stopping: watch::Receiver<bool>,
) {
    let door = Arc::new(Mutex::new(Door {
        gate: Gate::new(limits.total, limits.per_ip),
        closers: Default::default(),
    }));
    let mut failures = AcceptFailures::default();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = stopped(stopping.clone()) => return,
        };
        let (mut stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors (EMFILE) or a connection reset
                // before it was taken: back off a little, say it once.
                failures.note(&e);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let (door, app, tls, stopping) = (door.clone(), app.clone(), tls.clone(), stopping.clone());
        let behind_balancer = trusted.contains(&peer.ip());
        // An untrusted connection takes its place in the gate before its
        // task exists; a balancer's, once its header named the browser.
        let entered = (!behind_balancer).then(|| enter(&door, peer));
        tokio::spawn(async move {
            let (peer, (id, closer)) = match entered {
                Some(entered) => (peer, entered),
                None => {
                    match proxy_protocol::read_client(&mut stream, peer, HANDSHAKE_TIMEOUT).await {
                        Ok(client) => (client, enter(&door, client)),
                        Err(e) => {
                            debug!(balancer = %peer, error = %e, "connection dropped");
                            return;
                        }
                    }
                }
            };
            tokio::select! {
                () = connection(stream, peer, tls, app, limits.header_timeout, stopping) => {}
                () = closer.notified() => debug!(%peer, "HTTP connection closed to make room"),
            }
            let mut d = door.lock().unwrap_or_else(PoisonError::into_inner);
            d.gate.leave(id);
            d.closers.remove(&id);
        });
    }
}

/// Takes a place in the gate for a connection from `peer`, pushing the
/// oldest out when full: its id and what closes it.
fn enter(door: &Mutex<Door>, peer: SocketAddr) -> (u64, Arc<Notify>) {
    let closer = Arc::new(Notify::new());
    let mut d = door.lock().unwrap_or_else(PoisonError::into_inner);
    let (id, evicted) = d.gate.enter(peer.ip());
    for old in evicted {
        if let Some(c) = d.closers.remove(&old) {
            c.notify_one();
        }
    }
    d.closers.insert(id, closer.clone());
    (id, closer)
}

/// One connection: TLS if configured, then HTTP/1.1 until it closes or
/// becomes a WebSocket (its upgrade runs in a task of its own).
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    app: Router,
    header_timeout: Duration,
    stopping: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => http(stream, peer, app, header_timeout, stopping).await,
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => http(tls, peer, app, header_timeout, stopping).await,
                Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

async fn http<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    header_timeout: Duration,
    stopping: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(Peer(peer)));
        let mut app = app.clone();
        async move { Ok::<_, Infallible>(app.call(req).await.unwrap_or_else(|e| match e {})) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    let done = tokio::select! {
        done = conn.as_mut() => done,
        () = stopped(stopping) => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = done {
        debug!(%peer, error = %e, "HTTP connection ended");
    }
}

/// Resolves once the relay is stopping (or its stop switch is gone).
async fn stopped(mut stopping: watch::Receiver<bool>) {
    let _ = stopping.wait_for(|s| *s).await.map(|_| ());
}

/// Accept failures, logged at most once a second with how many there were.
#[derive(Default)]
struct AcceptFailures {
    last: Option<std::time::Instant>,
    since: u64,
}

impl AcceptFailures {
    fn note(&mut self, e: &std::io::Error) {
        self.since += 1;
        let now = std::time::Instant::now();
        if self.last.is_none_or(|t| now - t >= Duration::from_secs(1)) {
            warn!(error = %e, failures = self.since, "accepting HTTP connections failed");
            self.last = Some(now);
            self.since = 0;
        }
    }
}
