//! The thin tokio shells around the sans-IO proxy: axum for browsers, UDP,
//! TCP or TLS for the PBX, and one task that owns the proxy and moves
//! bytes. No SIP logic lives here.

mod admin;
mod dns;
pub mod engine;
pub mod framing;
mod gate;
pub mod media;
mod proxy_protocol;
mod recorder;
mod recordings;
mod serve;
mod stream;
mod tls;
mod udp;
mod web;
mod ws;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use sipline_core::Instant;
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::ids::{ConnId, MediaId};
use crate::media::calls::{Command, MediaCalls, RecordingError};
use crate::media::dtls::Identity;
use crate::media::record::RecordingMode;
use crate::ops::config::{Client, Config};
use crate::signalling::events::{AdminEvent, CallView};
use crate::signalling::{FlowKey, MAX_PBXS, Output, PbxTarget, Proxy};
use crate::transport::Transport;

/// What the shells tell the proxy task.
enum Input {
    Admit {
        ip: std::net::IpAddr,
        reply: oneshot::Sender<bool>,
    },
    Opened {
        conn: ConnId,
        ip: std::net::IpAddr,
        tx: mpsc::Sender<ws::Out>,
        /// Tells the connection to close (it stopped reading).
        kill: Arc<tokio::sync::Notify>,
    },
    Frame {
        conn: ConnId,
        bytes: Vec<u8>,
    },
    Closed {
        conn: ConnId,
    },
    /// One datagram on the SIP port.
    Datagram {
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    /// One message framed off a PBX's TCP or TLS connection.
    Streamed {
        from: SocketAddr,
        transport: Transport,
        bytes: Vec<u8>,
    },
    /// A PBX's TCP or TLS connection broke (it is being opened again).
    StreamLost {
        pbx: SocketAddr,
    },
    /// A PBX is unreachable: ICMP over UDP, no connection over TCP or TLS.
    Unreachable {
        pbx: SocketAddr,
    },
    /// The PBXs `pbx.uri` names now (DNS).
    Pbxs {
        targets: Vec<PbxTarget>,
    },
    Metrics {
        reply: oneshot::Sender<String>,
    },
    ActiveCalls {
        reply: oneshot::Sender<usize>,
    },
    /// `GET /admin/calls`.
    Calls {
        reply: oneshot::Sender<Vec<CallView>>,
    },
    /// The operator starts (`on`) or stops a call's recording.
    Recording {
        call_id: String,
        on: bool,
        reply: oneshot::Sender<Result<bool, RecordingError>>,
    },
    /// The relay stops: end every call still up; replies how many.
    EndCalls {
        reply: oneshot::Sender<usize>,
    },
    /// The relay stops: close every WebSocket (1001); replies how many
    /// were open.
    CloseAll {
        reply: oneshot::Sender<usize>,
    },
}

/// Asks the proxy task through `inputs`; `None` once it is gone.
async fn ask<T>(
    inputs: &mpsc::Sender<Input>,
    input: impl FnOnce(oneshot::Sender<T>) -> Input,
) -> Option<T> {
    let (reply, answer) = oneshot::channel();
    inputs.send(input(reply)).await.ok()?;
    answer.await.ok()
}

/// State shared by the HTTP handlers: a way to reach the proxy task.
#[derive(Clone)]
struct Shared {
    inputs: mpsc::Sender<Input>,
    next_conn: Arc<AtomicU64>,
    max_message: usize,
    /// A browser silent this long is gone; pinged every third of it.
    ws_idle: std::time::Duration,
    /// Relay events as (name, JSON), for the admin stream's subscribers.
    admin: broadcast::Sender<(&'static str, String)>,
    admin_token: Option<Arc<str>>,
    /// This relay's name among several, for the admin events.
    instance: Option<Arc<str>>,
    client: Arc<Client>,
    /// The folder served at `/`, if any.
    web_root: Option<Arc<std::path::Path>>,
    /// The recordings' folder, when calls may be recorded.
    recordings: Option<Arc<std::path::Path>>,
    /// The recordings are served without the admin token (the embedded
    /// PBX's demo).
    recordings_open: bool,
    /// Turns true when the relay stops: long-lived responses (the admin
    /// event stream) end then, so that shutdown is not held up.
    stopping: tokio::sync::watch::Receiver<bool>,
}

/// A running relay.
pub struct Relay {
    /// Where browsers connect (`ws://<http_addr>/sip`).
    pub http_addr: SocketAddr,
    /// The relay's SIP address toward the PBX (its UDP port; TCP and TLS
    /// connections are made from the same port).
    pub sip_addr: SocketAddr,
    stopping: tokio::sync::watch::Sender<bool>,
    inputs: mpsc::Sender<Input>,
    server: JoinHandle<()>,
}

impl Relay {
    /// Binds every socket and starts serving. Fails if an address is taken.
    pub async fn start(cfg: &Config) -> io::Result<Relay> {
        let targets = cfg.pbx_targets();
        let over_udp: Vec<SocketAddr> = targets
            .iter()
            .filter(|t| t.transport == Transport::Udp)
            .map(|t| t.addr)
            .collect();
        let sockets = udp::Sockets::bind(cfg.sip.listen, &over_udp)?;
        let sip_addr = sockets.local_addr()?;
        let pbx_tls = match cfg.pbx_tls() {
            true => {
                let p = &cfg.pbx;
                let identity = p.tls_cert.as_deref().zip(p.tls_key.as_deref());
                Some(tls::client_config(p.tls_ca.as_deref(), identity)?)
            }
            false => None,
        };
        // Load the certificate before binding anything: a bad path must stop
        // the start with its name, not leave a half-started relay.
        let tls = match (&cfg.http.tls_cert, &cfg.http.tls_key) {
            (Some(cert), Some(key)) => Some(tls::server_config(cert, key)?),
            _ => None,
        };
        let listener = tokio::net::TcpListener::bind(cfg.http.listen).await?;
        let http_addr = listener.local_addr()?;
        let random = || {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| io::Error::other(e.to_string()))?;
            Ok::<_, io::Error>(secret)
        };
        let media_cfg = cfg.media(sip_addr.ip());
        let (admin, _) = broadcast::channel(1024);
        let recordings = recorder::RecordingFigures::default();
        let recording = media_cfg.recording != RecordingMode::Off;
        let recorder = match (&cfg.recording.dir, recording) {
            (Some(dir), true) => Some(recorder::Recorder::start(
                dir,
                cfg.recording.formats(),
                recordings.clone(),
                admin.clone(),
            )?),
            _ => None,
        };
        // The DTLS certificate is made once per start (its fingerprint goes
        // in every SDP to browsers).
        let identity = Identity::generate().map_err(|e| io::Error::other(e.to_string()))?;
        let stash = media::SocketStash::default();
        let calls = MediaCalls::new(media_cfg.clone(), Arc::new(identity), random()?)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?
            .with_binder(Box::new(stash.clone()));
        let mut proxy = Proxy::new(cfg.proxy(sip_addr), FlowKey::new(random()?)).with_media(calls);
        let figures = media::MediaFigures::default();
        proxy.metrics.register_collector(Box::new(figures.clone()));
        let shared = (media_cfg.browser_port != 0)
            .then(|| SocketAddr::new(media_cfg.browser_bind, media_cfg.browser_port));
        let (engine, media_ended) =
            engine::Engine::start(media_cfg.workers, media_cfg.rtp_timeout, figures, shared)?;
        match shared {
            Some(port) => info!(
                workers = engine.workers(),
                %port,
                "media engine started: every browser on one port (one more per worker after the first)"
            ),
            None => info!(workers = engine.workers(), "media engine started"),
        }
        proxy.metrics.register_collector(Box::new(recordings));
        let (inputs, rx) = mpsc::channel(4096);
        let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
        spawn_receivers(&sockets, &inputs);
        let mut streams = stream::Streams::new(stream::StreamSettings {
            local: sip_addr,
            tls: pbx_tls,
            tls_name: cfg
                .pbx
                .tls_name
                .clone()
                .or_else(|| cfg.pbx_name().map(|n| n.0)),
            keepalive: (cfg.pbx.keepalive_secs > 0)
                .then(|| Duration::from_secs(cfg.pbx.keepalive_secs)),
            pong_within: stream::PONG_WITHIN,
            connect_within: Duration::from_millis(cfg.pbx.failover_ms)
                .clamp(Duration::from_secs(1), stream::CONNECT_WITHIN),
            max_message: cfg.limits.max_message_bytes,
        });
        let large_over_tcp = cfg.pbx.large_over_tcp;
        for t in &targets {
            streams
                .add_for(*t, large_over_tcp, &inputs)
                .map_err(|e| io::Error::other(format!("PBX {}: {e}", t.addr)))?;
        }
        let media_shell = MediaShell {
            stash,
            engine,
            ended: media_ended,
            recorder,
        };
        if let Some((host, port, transport)) = cfg.pbx_name() {
            let name = dns::PbxName {
                host,
                port,
                transport,
            };
            let resolver = dns::resolver(cfg.pbx.dns_server)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
            tokio::spawn(dns::watch(resolver, name, inputs.clone()));
        }
        tokio::spawn(run_proxy(
            proxy,
            (inputs.clone(), rx),
            (sockets, streams, large_over_tcp),
            admin.clone(),
            media_shell,
        ));
        let shared = Shared {
            inputs: inputs.clone(),
            next_conn: Arc::new(AtomicU64::new(1)),
            max_message: cfg.limits.max_message_bytes,
            ws_idle: std::time::Duration::from_secs(cfg.limits.ws_idle_secs),
            admin,
            admin_token: cfg.admin.token.as_ref().map(|t| Arc::from(t.0.as_str())),
            instance: cfg.admin.instance.as_deref().map(Arc::from),
            client: Arc::new(cfg.client.clone()),
            web_root: cfg.http.web_root.as_deref().map(Arc::from),
            recordings: recording
                .then_some(cfg.recording.dir.as_deref())
                .flatten()
                .map(Arc::from),
            recordings_open: cfg.pbx.embedded,
            stopping,
        };
        let app = ws::router(shared);
        let scheme = if tls.is_some() { "wss" } else { "ws" };
        let limits = serve::HttpLimits {
            total: cfg.limits.max_http_connections,
            per_ip: cfg.limits.max_http_connections_per_ip,
            header_timeout: Duration::from_secs(cfg.limits.http_header_timeout_secs),
        };
        let trusted: serve::Trusted = cfg.http.trusted_proxies.clone().into();
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let server = tokio::spawn(serve::serve(
            listener,
            acceptor,
            app,
            (limits, trusted),
            stopping_tx.subscribe(),
        ));
        let pbx: Vec<String> = targets
            .iter()
            .map(|t| format!("{}/{}", t.addr, t.transport))
            .collect();
        info!(%http_addr, %sip_addr, ?pbx, "relay listening: {scheme}://{http_addr}/sip");
        Ok(Relay {
            http_addr,
            sip_addr,
            stopping: stopping_tx,
            inputs,
            server,
        })
    }

    /// Calls being set up or in progress.
    pub async fn active_calls(&self) -> usize {
        self.ask(|reply| Input::ActiveCalls { reply })
            .await
            .unwrap_or(0)
    }

    /// Asks the proxy task something; `None` once it is gone.
    async fn ask<T>(&self, input: impl FnOnce(oneshot::Sender<T>) -> Input) -> Option<T> {
        ask(&self.inputs, input).await
    }

    /// Waits up to `within` for the calls to end; returns how many are
    /// left.
    async fn calls_gone(&self, within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let calls = self.active_calls().await;
            if calls == 0 || tokio::time::Instant::now() >= deadline {
                return calls;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Graceful shutdown: stop accepting new browsers at once, give the
    /// calls in progress up to `grace` to end, then end the rest as a proxy
    /// does (a BYE each way with a Reason, a CANCEL for a call still
    /// ringing), close every WebSocket with 1001 (going away), and return.
    pub async fn stop(mut self, grace: Duration) -> io::Result<()> {
        let _ = self.stopping.send(true);
        let left = self.calls_gone(grace).await;
        if left > 0 {
            let ended = self
                .ask(|reply| Input::EndCalls { reply })
                .await
                .unwrap_or(0);
            warn!(
                calls = left,
                ended,
                "shutdown grace over: ending the calls in progress (BYE or CANCEL, Reason: {})",
                crate::signalling::SHUTTING_DOWN
            );
            // Their BYEs and CANCELs are answered in a round trip; those
            // that are not are retransmitted meanwhile.
            if ended > 0 {
                self.calls_gone(SEND_OFF).await;
            }
        }
        let open = self.ask(|reply| Input::CloseAll { reply }).await;
        if open.unwrap_or(0) > 0 {
            info!(
                connections = open,
                "closing the browsers' WebSockets (1001)"
            );
            let deadline = tokio::time::Instant::now() + SEND_OFF;
            while tokio::time::Instant::now() < deadline
                && self
                    .ask(|reply| Input::CloseAll { reply })
                    .await
                    .unwrap_or(0)
                    > 0
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        // A client that never lets go of its HTTP connection must not hold
        // the process: the server gets five more seconds, then it is left.
        match tokio::time::timeout(Duration::from_secs(5), &mut self.server).await {
            Ok(result) => result.map_err(io::Error::other),
            Err(_) => {
                warn!("HTTP connections still open at shutdown: closing them");
                self.server.abort();
                Ok(())
            }
        }
    }
}

/// How long a stopping relay waits for the answers to its BYEs, and for
/// browsers to close their WebSockets.
const SEND_OFF: Duration = Duration::from_secs(2);

fn spawn_receivers(sockets: &udp::Sockets, inputs: &mpsc::Sender<Input>) {
    spawn_receiver(None, sockets.any.clone(), inputs);
    for (pbx, sock) in &sockets.pbx {
        spawn_receiver(Some(*pbx), sock.clone(), inputs);
    }
}

/// Reads one UDP socket (a PBX's connected one, or the catch-all) into the
/// proxy task.
fn spawn_receiver(pbx: Option<SocketAddr>, sock: Arc<UdpSocket>, inputs: &mpsc::Sender<Input>) {
    {
        let inputs = inputs.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65_536];
            loop {
                match sock.recv_from(&mut buf).await {
                    Ok((n, from)) => {
                        let bytes = buf[..n].to_vec();
                        if inputs.send(Input::Datagram { from, bytes }).await.is_err() {
                            return;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                        if let Some(pbx) = pbx {
                            // The proxy warns once, when the PBX goes down.
                            debug!(%pbx, "PBX unreachable (ICMP)");
                            if inputs.send(Input::Unreachable { pbx }).await.is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "UDP receive failed");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
        });
    }
}

/// The calls' media, driven by the proxy's media commands.
struct MediaShell {
    stash: media::SocketStash,
    engine: engine::Engine,
    /// Where the engine reports each call's end.
    ended: mpsc::UnboundedReceiver<(MediaId, media::Ended)>,
    /// The recordings' writer, when calls are recorded.
    recorder: Option<recorder::Recorder>,
}

impl MediaShell {
    /// Carries out one command; `Err` is a call whose sockets are gone
    /// (the proxy then ends it).
    fn command(&mut self, command: Command) -> Result<(), (MediaId, media::Ended)> {
        match command {
            Command::Open {
                id,
                browser,
                shared,
                pbx,
            } => {
                let browser = (!shared).then_some(browser);
                let sockets = media::MediaSockets::take(&self.stash, browser, &pbx)
                    .map_err(|e| (id, media::Ended::Io(e)))?;
                self.engine.open(id, sockets).map_err(|e| (id, e))?;
            }
            Command::Record { sink, .. } => {
                if let Some(recorder) = &self.recorder {
                    recorder.record(sink);
                }
            }
            Command::Close { id } => self.engine.close(id),
            // The rest is the call's own business: to its worker as it is.
            other => self.engine.apply(other),
        }
        Ok(())
    }
}

/// What woke the proxy task.
enum Wake {
    Input(Input),
    /// A call's media ended (see [`media::Ended`]).
    MediaEnded(MediaId, media::Ended),
    /// The proxy's timer.
    Timer,
}

/// The one task that owns the proxy: inputs in, outputs out, timers.
async fn run_proxy(
    mut proxy: Proxy,
    (inputs, mut rx): (mpsc::Sender<Input>, mpsc::Receiver<Input>),
    (mut sockets, mut streams, large_over_tcp): (udp::Sockets, stream::Streams, bool),
    admin: broadcast::Sender<(&'static str, String)>,
    mut media: MediaShell,
) {
    let epoch = tokio::time::Instant::now();
    let now = || Instant::from_millis(epoch.elapsed().as_millis() as u64);
    let mut conns: HashMap<ConnId, (mpsc::Sender<ws::Out>, Arc<tokio::sync::Notify>)> =
        Default::default();
    loop {
        let wake = proxy
            .poll_timeout()
            .map(|t| epoch + Duration::from_millis(t.as_millis()));
        let input = tokio::select! {
            input = rx.recv() => match input {
                Some(i) => Wake::Input(i),
                None => return,
            },
            Some((id, ended)) = media.ended.recv() => Wake::MediaEnded(id, ended),
            _ = sleep_or_never(wake) => Wake::Timer,
        };
        match input {
            Wake::MediaEnded(id, ended) => {
                if let Some(why) = ended.cause() {
                    warn!(call = id.0, ?ended, "media ended: ending the call");
                    proxy.media_ended(now(), id, why);
                }
            }
            Wake::Timer => proxy.handle_timeout(now()),
            Wake::Input(Input::Admit { ip, reply }) => {
                let _ = reply.send(proxy.admit(now(), ip));
            }
            Wake::Input(Input::Opened { conn, ip, tx, kill }) => {
                conns.insert(conn, (tx, kill));
                proxy.ws_opened(now(), conn, ip);
            }
            Wake::Input(Input::Frame { conn, bytes }) => proxy.handle_ws(now(), conn, &bytes),
            Wake::Input(Input::Closed { conn }) => {
                conns.remove(&conn);
                proxy.ws_closed(conn);
            }
            Wake::Input(Input::Datagram { from, bytes }) => proxy.handle_pbx(now(), from, &bytes),
            Wake::Input(Input::Streamed {
                from,
                transport,
                bytes,
            }) => proxy.handle_pbx_over(now(), from, transport, &bytes),
            Wake::Input(Input::StreamLost { pbx }) => proxy.pbx_connection_lost(now(), pbx),
            Wake::Input(Input::Unreachable { pbx }) => proxy.pbx_unreachable(now(), pbx),
            Wake::Input(Input::Pbxs { targets }) => {
                // Each new PBX gets its connected socket, or its
                // connection, before the proxy may send to it.
                let mut count = proxy.config().pbx.len();
                for t in &targets {
                    let known = sockets.for_pbx(t.addr).is_some() || streams.has(t.addr);
                    if known || count >= MAX_PBXS {
                        continue;
                    }
                    count += 1;
                    let added = match t.transport {
                        Transport::Udp => sockets
                            .add(t.addr)
                            .map(|sock| spawn_receiver(Some(t.addr), sock, &inputs)),
                        _ => Ok(()),
                    }
                    .and_then(|()| streams.add_for(*t, large_over_tcp, &inputs));
                    if let Err(e) = added {
                        warn!(pbx = %t.addr, error = %e, "no way to a PBX from DNS");
                    }
                }
                let usable: Vec<PbxTarget> = targets
                    .into_iter()
                    .filter(|t| match t.transport {
                        Transport::Udp => sockets.for_pbx(t.addr).is_some(),
                        _ => streams.has(t.addr),
                    })
                    .collect();
                proxy.set_pbxs(&usable);
            }
            Wake::Input(Input::Metrics { reply }) => {
                let _ = reply.send(proxy.render_metrics());
            }
            Wake::Input(Input::ActiveCalls { reply }) => {
                let _ = reply.send(proxy.active_calls());
            }
            Wake::Input(Input::Calls { reply }) => {
                let _ = reply.send(proxy.call_list(now()));
            }
            Wake::Input(Input::Recording { call_id, on, reply }) => {
                let _ = reply.send(proxy.operator_recording(&call_id, on));
            }
            Wake::Input(Input::EndCalls { reply }) => {
                let _ = reply.send(proxy.shut_down(now()));
            }
            Wake::Input(Input::CloseAll { reply }) => {
                for (tx, _) in conns.values() {
                    let _ = tx.try_send(ws::Out::Close(ws::GOING_AWAY, "relay shutting down"));
                }
                let _ = reply.send(conns.len());
            }
        }
        for event in proxy.drain_events() {
            match &event {
                AdminEvent::PbxDown { pbx, reason } => {
                    warn!(%pbx, reason, "PBX down: new requests go to another while one is up");
                }
                AdminEvent::PbxUp { pbx } => info!(%pbx, "PBX up again"),
                _ => {}
            }
            debug!(event = event.name(), "{}", event.to_json());
            // No subscriber is fine: the event is simply not kept.
            let _ = admin.send((event.name(), event.to_json()));
        }
        while let Some(out) = proxy.poll_output() {
            match out {
                Output::Ws { conn, frame } => {
                    if let Some((tx, kill)) = conns.get(&conn)
                        && tx.try_send(ws::Out::Frame(frame)).is_err()
                    {
                        // Never lose a SIP message quietly: a browser that
                        // stops reading is disconnected, and reconnects.
                        warn!(?conn, "browser not reading: closing its connection");
                        kill.notify_one();
                        conns.remove(&conn);
                        proxy.ws_closed(conn);
                    }
                }
                Output::Pbx {
                    to,
                    transport: Transport::Udp,
                    message,
                } => match sockets.for_pbx(to) {
                    Some(sock) => {
                        if let Err(e) = sock.send(&message).await {
                            debug!(%to, error = %e, "send to PBX failed");
                            if e.kind() == io::ErrorKind::ConnectionRefused {
                                proxy.pbx_unreachable(now(), to);
                            }
                        }
                    }
                    None => warn!(%to, "refusing to send UDP to a non-PBX address"),
                },
                Output::Pbx { to, message, .. } => match streams.send(to, message) {
                    Ok(()) => {}
                    Err(stream::SendError::Full) => {
                        warn!(%to, "the PBX's connection takes nothing: failing what waits for it");
                        proxy.pbx_unreachable(now(), to);
                    }
                    Err(stream::SendError::NotOurs) => {
                        warn!(%to, "refusing to send to a PBX with no connection")
                    }
                },
                Output::Media(command) => {
                    if let Err((id, ended)) = media.command(command) {
                        // Also when a call was refused before its sockets
                        // were taken: the proxy then knows it no more.
                        debug!(call = id.0, ?ended, "media sockets missing");
                        if let Some(why) = ended.cause() {
                            proxy.media_ended(now(), id, why);
                        }
                    }
                }
            }
        }
    }
}

async fn sleep_or_never(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
