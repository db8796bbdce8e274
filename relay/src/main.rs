//! `sipline-relay`: SIP over WebSocket for browsers, SIP over UDP to the PBX.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sipline_relay::net::Relay;
use sipline_relay::ops::config::{Config, User};
use sipline_relay::signalling::pbx::Password;
use tracing::Level;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{FilterExt, filter_fn};
use tracing_subscriber::prelude::*;

/// Libraries that log what passes through them at debug or trace level:
/// tungstenite every WebSocket frame (so digest responses, nonces, SDP
/// with `ice-pwd` and `a=crypto` keys), hyper and rustls their bytes.
/// Whatever `RUST_LOG` says, they log at info at most: the relay never
/// logs message contents.
const CONTENT_LOGGERS: [&str; 10] = [
    "tungstenite",
    "tokio_tungstenite",
    "hyper",
    "hyper_util",
    "h2",
    "axum",
    "rustls",
    "tokio_rustls",
    "rtc_dtls",
    "rtc_srtp",
];

/// Whether an event from `target` at `level` may be logged.
fn loggable(target: &str, level: Level) -> bool {
    level <= Level::INFO
        || !CONTENT_LOGGERS.iter().any(|t| {
            target
                .strip_prefix(t)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
        })
}

/// Lets browsers speaking SIP over WebSocket (RFC 7118) reach one PBX over
/// UDP, and nothing else. Flags override the config file; each flag can also
/// come from the environment variable named beside it.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// TOML config file (see the README for every key).
    #[arg(long, env = "SIPLINE_CONFIG")]
    config: Option<PathBuf>,
    /// PBX address (IP:port); repeat or comma-separate for several.
    #[arg(long, env = "SIPLINE_PBX", value_delimiter = ',')]
    pbx: Vec<SocketAddr>,
    /// Where browsers connect: WebSocket on /sip, plus /healthz and /metrics.
    #[arg(long, env = "SIPLINE_HTTP_LISTEN")]
    http_listen: Option<SocketAddr>,
    /// The relay's host name as browsers know it (Via, Record-Route).
    #[arg(long, env = "SIPLINE_PUBLIC_HOST")]
    public_host: Option<String>,
    /// PEM certificate chain for wss:// (with --tls-key).
    #[arg(long, env = "SIPLINE_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// A folder to serve at / (the demo page and the SDK).
    #[arg(long, env = "SIPLINE_WEB_ROOT")]
    web_root: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "SIPLINE_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// UDP address toward the PBX.
    #[arg(long, env = "SIPLINE_SIP_LISTEN")]
    sip_listen: Option<SocketAddr>,
    /// The UDP address the PBX should use to reach the relay, if not the
    /// listen address.
    #[arg(long, env = "SIPLINE_SIP_ADVERTISE")]
    sip_advertise: Option<SocketAddr>,
    /// Largest WebSocket message accepted, in bytes (bigger: close 1009).
    #[arg(long, env = "SIPLINE_MAX_MESSAGE_BYTES")]
    max_message_bytes: Option<usize>,
    /// Seconds a silent WebSocket is kept before it is closed (pinged
    /// every third of it).
    #[arg(long, env = "SIPLINE_WS_IDLE_SECS")]
    ws_idle_secs: Option<u64>,
    /// How long the PBX may take to answer before the browser gets 408, ms.
    #[arg(long, env = "SIPLINE_REQUEST_TIMEOUT_MS")]
    request_timeout_ms: Option<u64>,
    /// HTTP connections not yet upgraded to a WebSocket, in all (beyond,
    /// the oldest is closed).
    #[arg(long, env = "SIPLINE_MAX_HTTP_CONNECTIONS")]
    max_http_connections: Option<usize>,
    /// HTTP connections not yet upgraded, from one IP address.
    #[arg(long, env = "SIPLINE_MAX_HTTP_CONNECTIONS_PER_IP")]
    max_http_connections_per_ip: Option<usize>,
    /// Seconds a request's headers may take; an idle HTTP connection is
    /// closed after as long.
    #[arg(long, env = "SIPLINE_HTTP_HEADER_TIMEOUT_SECS")]
    http_header_timeout_secs: Option<u64>,
    /// WebSocket connections allowed from one IP address.
    #[arg(long, env = "SIPLINE_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<usize>,
    /// Sustained SIP messages per second per connection.
    #[arg(long, env = "SIPLINE_MESSAGES_PER_SECOND")]
    messages_per_second: Option<u32>,
    /// Messages a connection may send in a burst.
    #[arg(long, env = "SIPLINE_MESSAGE_BURST")]
    message_burst: Option<u32>,
    /// Bearer token for GET /admin/events (the admin event stream).
    #[arg(long, env = "SIPLINE_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// On SIGTERM, how long to wait for calls in progress to end, seconds.
    #[arg(long, env = "SIPLINE_SHUTDOWN_GRACE_SECS")]
    shutdown_grace_secs: Option<u64>,
    /// SIP domain of the users: the embedded PBX's domain and realm, and
    /// what /api/config tells phone pages.
    #[arg(long, env = "SIPLINE_DOMAIN")]
    domain: Option<String>,
    /// Run the embedded mini PBX (a registrar for --user accounts that
    /// connects its browsers to each other) instead of fronting a PBX.
    #[arg(long, env = "SIPLINE_EMBEDDED_PBX")]
    embedded_pbx: bool,
    /// An embedded PBX user as NAME:PASSWORD; repeat, or comma-separate in
    /// SIPLINE_USERS (prefer the environment or the config file: command
    /// lines are visible to other local users).
    #[arg(
        long = "user",
        env = "SIPLINE_USERS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    users: Vec<String>,
    /// The media port range as MIN-MAX (each call takes four ports, six
    /// with video).
    #[arg(long, env = "SIPLINE_MEDIA_PORTS")]
    media_ports: Option<String>,
    /// The address written in the SDP to browsers (behind NAT).
    #[arg(long, env = "SIPLINE_MEDIA_ADVERTISE")]
    media_advertise: Option<std::net::IpAddr>,
    /// End an answered call after this many seconds without RTP.
    #[arg(long, env = "SIPLINE_RTP_TIMEOUT_SECS")]
    rtp_timeout_secs: Option<u64>,
}
impl Args {
    fn config(&self) -> anyhow::Result<Config> {
        let mut c = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if !self.pbx.is_empty() {
            c.pbx.addresses = self.pbx.clone();
        }
        if let Some(v) = self.http_listen {
            c.http.listen = v;
        }
        if let Some(v) = &self.public_host {
            c.http.public_host = v.clone();
        }
        if self.tls_cert.is_some() {
            c.http.tls_cert = self.tls_cert.clone();
        }
        if self.tls_key.is_some() {
            c.http.tls_key = self.tls_key.clone();
        }
        if self.web_root.is_some() {
            c.http.web_root = self.web_root.clone();
        }
        if let Some(v) = self.sip_listen {
            c.sip.listen = v;
        }
        if self.sip_advertise.is_some() {
            c.sip.advertise = self.sip_advertise;
        }
        if let Some(v) = self.max_message_bytes {
            c.limits.max_message_bytes = v;
        }
        if let Some(v) = self.ws_idle_secs {
            c.limits.ws_idle_secs = v;
        }
        if let Some(v) = self.max_http_connections {
            c.limits.max_http_connections = v;
        }
        if let Some(v) = self.max_http_connections_per_ip {
            c.limits.max_http_connections_per_ip = v;
        }
        if let Some(v) = self.http_header_timeout_secs {
            c.limits.http_header_timeout_secs = v;
        }
        if let Some(v) = self.request_timeout_ms {
            c.sip.request_timeout_ms = v;
        }
        if let Some(v) = self.max_connections_per_ip {
            c.limits.max_connections_per_ip = v;
        }
        if let Some(v) = self.messages_per_second {
            c.limits.messages_per_second = v;
        }
        if let Some(v) = self.message_burst {
            c.limits.message_burst = v;
        }
        if let Some(t) = &self.admin_token {
            c.admin.token = Some(Password(t.clone()));
        }
        if let Some(v) = self.shutdown_grace_secs {
            c.admin.shutdown_grace_secs = v;
        }
        if let Some(v) = &self.domain {
            c.client.domain = v.clone();
            c.pbx.domain = v.clone();
        }
        if self.embedded_pbx {
            c.pbx.embedded = true;
            if self.domain.is_none() {
                c.client.domain = c.pbx.domain.clone();
            }
        }
        for spec in &self.users {
            let Some((name, password)) = spec.split_once(':') else {
                anyhow::bail!("--user wants NAME:PASSWORD (the value is not shown here)");
            };
            c.pbx.users.push(User {
                name: name.to_owned(),
                password: Password(password.to_owned()),
            });
        }
        if let Some(range) = &self.media_ports {
            let parsed = range
                .split_once('-')
                .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
            let Some((min, max)) = parsed else {
                anyhow::bail!("--media-ports wants MIN-MAX, e.g. 20000-29999, not {range:?}");
            };
            (c.media.port_min, c.media.port_max) = (min, max);
        }
        if self.media_advertise.is_some() {
            c.media.advertise_browser = self.media_advertise;
        }
        if let Some(v) = self.rtp_timeout_secs {
            c.media.rtp_timeout_secs = v;
        }
        c.validate()?;
        Ok(c)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // webrtc-rs's DTLS warns about every TLS extension it does not know,
    // on every call: by default only its errors are worth a line.
    let asked =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,rtc_dtls=error"));
    let never_contents = filter_fn(|meta| loggable(meta.target(), *meta.level()));
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_filter(asked.and(never_contents)))
        .init();
    let config = Args::parse().config()?;
    raise_open_files_limit();
    let relay = Relay::start(&config).await.context("starting the relay")?;
    shutdown_signal().await;
    let grace = std::time::Duration::from_secs(config.admin.shutdown_grace_secs);
    tracing::info!(?grace, "shutting down: no new connections");
    relay.stop(grace).await.context("stopping")?;
    Ok(())
}

/// Raises the soft limit of open files to the hard one: each browser
/// holds a socket, each call a few, and Debian's default soft limit of
/// 1,024 would run out long before the relay's own bounds do.
fn raise_open_files_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open files limit"),
        Err(e) => tracing::warn!(error = %e, "could not raise the open files limit"),
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_libraries_that_log_contents_stop_at_info() {
        for target in [
            "tungstenite::protocol",
            "tokio_tungstenite",
            "hyper::proto::h1::io",
        ] {
            assert!(!loggable(target, Level::TRACE), "{target}");
            assert!(!loggable(target, Level::DEBUG), "{target}");
            assert!(loggable(target, Level::INFO), "{target}");
        }
        assert!(loggable("sipline_relay::net", Level::DEBUG));
        assert!(
            loggable("hyperion", Level::TRACE),
            "a prefix of a name is not the name"
        );
    }
}
