//! A thin tokio shell around the sans-IO [`sipline_core::UserAgent`].
//!
//! It owns the WebSocket (subprotocol `sip`, RFC 7118), the clock and the
//! reconnection policy, and nothing else: every SIP decision is the core's.
//! The same core runs in the browser behind the wasm layer; this shell lets
//! tests and the load generator drive it natively.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sipline_core::rand::Rng;
use sipline_core::{ActionError, CallId};
use sipline_core::{Config, Event, Instant, UserAgent};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant as TokioInstant, sleep_until};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Bytes, Message as Frame};
use tracing::{debug, info, warn};

/// Why the shell could not start.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// The core refused the configuration.
    #[error(transparent)]
    Config(#[from] sipline_core::ConfigError),
    /// No randomness to seed the core with.
    #[error("no OS randomness: {0}")]
    Random(getrandom::Error),
    /// The server URL is not a ws:// or wss:// URL.
    #[error("invalid WebSocket URL {0:?}")]
    Url(String),
}

/// What the shell reports: the core's events plus the transport's own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShellEvent {
    /// The WebSocket is open.
    Connected,
    /// The WebSocket closed or could not be opened; a reconnection follows
    /// after `retry_in`.
    Disconnected {
        /// What happened.
        reason: String,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
    /// An event from the user agent core.
    Ua(Event),
}

/// Reconnection backoff: a step doubling from `min` to `max`, each wait a
/// random 50-100 % of the step.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    /// First delay.
    pub min: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            min: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

enum Command {
    Register,
    Unregister,
    DropConnection,
    Shutdown,
    Call {
        target: String,
        sdp: String,
        reply: tokio::sync::oneshot::Sender<Result<CallId, ActionError>>,
    },
    Answer {
        call: CallId,
        sdp: String,
    },
    Hangup {
        call: CallId,
    },
}

impl Command {
    /// Carries out a command that only needs the core (not the socket).
    fn apply(self, ua: &mut UserAgent, now: Instant) {
        match self {
            Command::Register => ua.register(now),
            Command::Unregister => ua.unregister(now),
            Command::Call { target, sdp, reply } => {
                let _ = reply.send(ua.call(now, &target, &sdp));
            }
            // A call that ended meanwhile has nothing left to answer or
            // hang up: the test sees its hangup event.
            Command::Answer { call, sdp } => {
                let _ = ua.answer(now, call, &sdp);
            }
            Command::Hangup { call } => {
                let _ = ua.hangup(now, call);
            }
            Command::DropConnection | Command::Shutdown => {}
        }
    }
}

/// A running user agent. Dropping it stops the task.
pub struct Phone {
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<ShellEvent>,
    task: JoinHandle<()>,
}

impl Phone {
    /// Starts the user agent against `url` (`ws://` or `wss://`).
    pub fn spawn(url: &str, mut config: Config, backoff: Backoff) -> Result<Phone, ShellError> {
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(ShellError::Url(url.to_owned()));
        }
        // The Via says WS or WSS after the socket's real kind (RFC 7118).
        config.secure = url.starts_with("wss://");
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(ShellError::Random)?;
        let ua = UserAgent::new(config, seed)?;
        getrandom::fill(&mut seed).map_err(ShellError::Random)?;
        let jitter = Rng::from_seed(seed);
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(url.to_owned(), ua, backoff, jitter, cmd_rx, ev_tx));
        Ok(Phone {
            commands: cmd_tx,
            events: ev_rx,
            task,
        })
    }

    /// The next event; `None` once the shell has stopped.
    pub async fn next_event(&mut self) -> Option<ShellEvent> {
        self.events.recv().await
    }

    /// Asks the core to register (again).
    pub fn register(&self) {
        let _ = self.commands.send(Command::Register);
    }

    /// Asks the core to remove its binding.
    pub fn unregister(&self) {
        let _ = self.commands.send(Command::Unregister);
    }

    /// Closes the WebSocket abruptly, as a network failure would; the shell
    /// then reconnects. For tests of recovery.
    pub fn drop_connection(&self) {
        let _ = self.commands.send(Command::DropConnection);
    }

    /// Calls `target` with the SDP `offer`; the core's refusal (no
    /// connection, a bad target) as it gave it.
    pub async fn call(&self, target: &str, offer: &str) -> Result<CallId, ActionError> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let _ = self.commands.send(Command::Call {
            target: target.to_owned(),
            sdp: offer.to_owned(),
            reply,
        });
        // The task is gone only when the phone is: no transport either.
        answer.await.unwrap_or(Err(ActionError::NotConnected))
    }

    /// Answers an incoming call with `sdp`.
    pub fn answer(&self, call: CallId, sdp: &str) {
        let _ = self.commands.send(Command::Answer {
            call,
            sdp: sdp.to_owned(),
        });
    }

    /// Hangs a call up.
    pub fn hangup(&self, call: CallId) {
        let _ = self.commands.send(Command::Hangup { call });
    }

    /// Closes the WebSocket and stops.
    pub async fn shutdown(mut self) {
        let _ = self.commands.send(Command::Shutdown);
        let _ = (&mut self.task).await;
    }
}

impl Drop for Phone {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Maps the shell's monotonic clock onto the core's instants.
struct Clock(TokioInstant);

impl Clock {
    fn now(&self) -> Instant {
        Instant::from_millis(self.0.elapsed().as_millis() as u64)
    }

    fn deadline(&self, at: Instant) -> TokioInstant {
        self.0 + Duration::from_millis(at.as_millis())
    }
}

/// How one connection ended.
enum Ended {
    Closed(String),
    Shutdown,
}

async fn run(
    url: String,
    mut ua: UserAgent,
    backoff: Backoff,
    mut jitter: Rng,
    mut commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<ShellEvent>,
) {
    let clock = Clock(TokioInstant::now());
    let mut delay = backoff.min;
    loop {
        let ended = match connect(&url).await {
            Ok(ws) => {
                delay = backoff.min;
                let _ = events.send(ShellEvent::Connected);
                info!(%url, "connected");
                let ended = session(ws, &mut ua, &clock, &mut commands, &events).await;
                ua.transport_closed(clock.now());
                drain_events(&mut ua, &events);
                ended
            }
            Err(e) => Ended::Closed(e),
        };
        let reason = match ended {
            Ended::Shutdown => return,
            Ended::Closed(reason) => reason,
        };
        // Wait a random 50-100 % of the step (as RFC 5626 §4.5 does), so that
        // clients that lost the server together do not come back together.
        let step = delay.as_millis() as u64;
        let retry_in = Duration::from_millis(step - jitter.below(step / 2 + 1));
        warn!(%reason, ?retry_in, "disconnected");
        let _ = events.send(ShellEvent::Disconnected { reason, retry_in });
        let wake = TokioInstant::now() + retry_in;
        loop {
            tokio::select! {
                _ = sleep_until(wake) => break,
                cmd = commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => return,
                    Some(cmd) => cmd.apply(&mut ua, clock.now()),
                },
            }
            drain_events(&mut ua, &events);
        }
        delay = (delay * 2).min(backoff.max);
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(url: &str) -> Result<Ws, String> {
    let mut request = url.into_client_request().map_err(|e| e.to_string())?;
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("sip"));
    // tungstenite refuses a handshake whose answer lacks the subprotocol we
    // asked for, which is what RFC 7118 §4.1 wants of a client.
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(|e| e.to_string())?;
    Ok(ws)
}

fn drain_events(ua: &mut UserAgent, events: &mpsc::UnboundedSender<ShellEvent>) {
    while let Some(ev) = ua.poll_event() {
        info!(event = ev.name(), "{ev}");
        let _ = events.send(ShellEvent::Ua(ev));
    }
}

async fn session(
    mut ws: Ws,
    ua: &mut UserAgent,
    clock: &Clock,
    commands: &mut mpsc::UnboundedReceiver<Command>,
    events: &mpsc::UnboundedSender<ShellEvent>,
) -> Ended {
    ua.transport_connected(clock.now());
    loop {
        while let Some(bytes) = ua.poll_transmit() {
            // One SIP message per frame; text when it is UTF-8 (it nearly
            // always is), binary otherwise (RFC 7118 §5.1).
            let frame = match String::from_utf8(bytes) {
                Ok(text) => Frame::text(text),
                Err(e) => Frame::Binary(Bytes::from(e.into_bytes())),
            };
            if let Err(e) = ws.send(frame).await {
                return Ended::Closed(e.to_string());
            }
        }
        let mut flow_dead = false;
        while let Some(ev) = ua.poll_event() {
            flow_dead |= ev == Event::KeepAliveTimeout;
            info!(event = ev.name(), "{ev}");
            let _ = events.send(ShellEvent::Ua(ev));
        }
        if flow_dead {
            let _ = ws.close(None).await;
            return Ended::Closed("keep-alive pong missing".into());
        }
        let wake = ua.poll_timeout().map(|t| clock.deadline(t));
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(Frame::Text(text))) => feed(ua, clock, text.as_bytes()),
                Some(Ok(Frame::Binary(bytes))) => feed(ua, clock, &bytes),
                Some(Ok(Frame::Close(close))) => {
                    return Ended::Closed(close.map_or_else(|| "closed by server".into(), |c| c.reason.to_string()));
                }
                Some(Ok(_)) => {} // ping/pong: tungstenite answers pings itself
                Some(Err(e)) => return Ended::Closed(e.to_string()),
                None => return Ended::Closed("connection ended".into()),
            },
            cmd = commands.recv() => match cmd {
                Some(Command::DropConnection) => return Ended::Closed("dropped on request".into()),
                None | Some(Command::Shutdown) => {
                    let _ = ws.close(None).await;
                    return Ended::Shutdown;
                }
                Some(cmd) => cmd.apply(ua, clock.now()),
            },
            _ = sleep_or_never(wake) => ua.handle_timeout(clock.now()),
        }
    }
}

fn feed(ua: &mut UserAgent, clock: &Clock, bytes: &[u8]) {
    if let Err(e) = ua.handle_message(clock.now(), bytes) {
        // Never log the message: it may carry credentials.
        warn!(error = %e, len = bytes.len(), "dropped malformed SIP message");
    } else {
        debug!(len = bytes.len(), "message in");
    }
}

async fn sleep_or_never(at: Option<TokioInstant>) {
    match at {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}
