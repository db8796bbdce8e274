//! `sipline-relay`: SIP over WebSocket for browsers, SIP over UDP to the PBX.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use serde::Serialize;
use sipline_relay::net::Relay;
use sipline_relay::ops::config::Config;
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
/// UDP, and nothing else. Flags override the config file key by key; each
/// flag can also come from the environment variable named beside it.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// TOML config file (see the README for every key).
    #[arg(long, env = "SIPLINE_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    flags: Flags,
}

/// The flags, shaped as the config file: each serializes onto its key
/// ([`Config::layered`]); one left out keeps the file's value.
#[derive(clap::Args, Debug, Serialize)]
struct Flags {
    #[command(flatten)]
    http: HttpFlags,
    #[command(flatten)]
    sip: SipFlags,
    #[command(flatten)]
    pbx: PbxFlags,
    #[command(flatten)]
    limits: LimitsFlags,
    #[command(flatten)]
    admin: AdminFlags,
    #[command(flatten)]
    client: ClientFlags,
    #[command(flatten)]
    media: MediaFlags,
    #[command(flatten)]
    recording: RecordingFlags,
}

/// `[recording]`
#[derive(clap::Args, Debug, Serialize)]
struct RecordingFlags {
    /// Which calls to record: off, on-demand (the app or the operator
    /// asks), or all.
    #[arg(id = "record", long = "record", env = "SIPLINE_RECORD", value_parser = ["off", "on-demand", "all"])]
    mode: Option<String>,
    /// Where the recordings go.
    #[arg(id = "record-dir", long = "record-dir", env = "SIPLINE_RECORD_DIR")]
    dir: Option<PathBuf>,
    /// What each recording is written as: wav, pcap, or both (wav,pcap).
    #[arg(
        id = "record-formats",
        long = "record-formats",
        env = "SIPLINE_RECORD_FORMATS",
        value_delimiter = ',',
        value_parser = ["wav", "pcap"]
    )]
    formats: Option<Vec<String>>,
}

/// `[http]`
#[derive(clap::Args, Debug, Serialize)]
struct HttpFlags {
    /// Where browsers connect: WebSocket on /sip, plus /healthz and /metrics.
    #[arg(id = "http-listen", long = "http-listen", env = "SIPLINE_HTTP_LISTEN")]
    listen: Option<SocketAddr>,
    /// The relay's host name as browsers know it (Via, Record-Route).
    #[arg(long, env = "SIPLINE_PUBLIC_HOST")]
    public_host: Option<String>,
    /// PEM certificate chain for wss:// (with --tls-key).
    #[arg(long, env = "SIPLINE_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "SIPLINE_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// A load balancer's IP address whose connections start with a PROXY
    /// protocol header naming the browser's; repeat or comma-separate.
    #[arg(
        long = "trusted-proxy",
        env = "SIPLINE_TRUSTED_PROXIES",
        value_delimiter = ','
    )]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// A folder to serve at / (the demo page and the SDK).
    #[arg(long, env = "SIPLINE_WEB_ROOT")]
    web_root: Option<PathBuf>,
}

/// `[sip]`
#[derive(clap::Args, Debug, Serialize)]
struct SipFlags {
    /// UDP address toward the PBX.
    #[arg(id = "sip-listen", long = "sip-listen", env = "SIPLINE_SIP_LISTEN")]
    listen: Option<SocketAddr>,
    /// The UDP address the PBX should use to reach the relay, if not the
    /// listen address.
    #[arg(long = "sip-advertise", env = "SIPLINE_SIP_ADVERTISE")]
    advertise: Option<SocketAddr>,
    /// How long the PBX may take to answer before the browser gets 408, ms.
    #[arg(long, env = "SIPLINE_REQUEST_TIMEOUT_MS")]
    request_timeout_ms: Option<u64>,
}

/// `[pbx]`
#[derive(clap::Args, Debug, Serialize)]
struct PbxFlags {
    /// PBX address (IP:port); repeat or comma-separate for several.
    #[arg(long = "pbx", env = "SIPLINE_PBX", value_delimiter = ',')]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    addresses: Vec<SocketAddr>,
    /// The PBX as a SIP URI looked up in DNS (NAPTR, SRV, A/AAAA), e.g.
    /// sip:pbx.example.com, instead of --pbx.
    #[arg(long = "pbx-uri", env = "SIPLINE_PBX_URI")]
    uri: Option<String>,
    /// The DNS server for --pbx-uri (IP:port); the system's by default.
    #[arg(long = "dns-server", env = "SIPLINE_DNS_SERVER")]
    dns_server: Option<SocketAddr>,
    /// A new request its PBX leaves without any answer this long goes on to
    /// the next PBX, ms.
    #[arg(long = "pbx-failover-ms", env = "SIPLINE_PBX_FAILOVER_MS")]
    failover_ms: Option<u64>,
    /// How often each PBX is probed with OPTIONS, ms (0: never; default:
    /// every 10 s with several PBXs).
    #[arg(long = "pbx-probe-interval-ms", env = "SIPLINE_PBX_PROBE_INTERVAL_MS")]
    probe_interval_ms: Option<u64>,
    /// SIP toward the PBXs of --pbx: udp, tcp or tls.
    #[arg(long = "pbx-transport", env = "SIPLINE_PBX_TRANSPORT", value_parser = ["udp", "tcp", "tls"])]
    transport: Option<String>,
    /// PEM file of the CA certificates a TLS PBX's certificate must chain
    /// to; the system's roots by default.
    #[arg(long = "pbx-tls-ca", env = "SIPLINE_PBX_TLS_CA")]
    tls_ca: Option<std::path::PathBuf>,
    /// The name a TLS PBX's certificate must carry (default: the host of
    /// --pbx-uri, else the PBX's IP address).
    #[arg(long = "pbx-tls-name", env = "SIPLINE_PBX_TLS_NAME")]
    tls_name: Option<String>,
    /// PEM certificate chain the relay shows a TLS PBX that asks for one
    /// (with --pbx-tls-key).
    // Ids of their own: [http] has fields of the same names.
    #[arg(
        id = "pbx_tls_cert",
        long = "pbx-tls-cert",
        env = "SIPLINE_PBX_TLS_CERT"
    )]
    tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --pbx-tls-cert.
    #[arg(id = "pbx_tls_key", long = "pbx-tls-key", env = "SIPLINE_PBX_TLS_KEY")]
    tls_key: Option<std::path::PathBuf>,
    /// Requests over 1,300 bytes for a UDP PBX go over TCP to its address
    /// (RFC 3261 §18.1.1): when the PBXs take TCP on their UDP port.
    #[arg(long = "pbx-large-over-tcp", env = "SIPLINE_PBX_LARGE_OVER_TCP")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    large_over_tcp: bool,
    /// SRTP toward the PBX, keyed by SDES: off, optional or mandatory.
    #[arg(long = "pbx-srtp", env = "SIPLINE_PBX_SRTP", value_parser = ["off", "optional", "mandatory"])]
    srtp: Option<String>,
    /// Run the embedded mini PBX (a registrar for --user accounts that
    /// connects its browsers to each other) instead of fronting a PBX.
    #[arg(long = "embedded-pbx", env = "SIPLINE_EMBEDDED_PBX")]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    embedded: bool,
    /// An embedded PBX user as NAME:PASSWORD; repeat, or comma-separate in
    /// SIPLINE_USERS (prefer the environment or the config file: command
    /// lines are visible to other local users). Replaces the file's users.
    #[arg(
        long = "user",
        env = "SIPLINE_USERS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "users")]
    users: Vec<Hidden>,
}

/// `--user NAME:PASSWORD`s as `[[pbx.users]]` has them. A malformed one is
/// refused here rather than by clap, whose message would show the value.
fn users<S: serde::Serializer>(specs: &[Hidden], to: S) -> Result<S::Ok, S::Error> {
    use serde::ser::{Error, SerializeSeq};
    #[derive(Serialize)]
    struct User<'a> {
        name: &'a str,
        password: &'a str,
    }
    let mut seq = to.serialize_seq(Some(specs.len()))?;
    for Hidden(spec) in specs {
        let (name, password) = spec
            .split_once(':')
            .ok_or_else(|| S::Error::custom("--user wants NAME:PASSWORD"))?;
        seq.serialize_element(&User { name, password })?;
    }
    seq.end()
}

/// `[limits]`
#[derive(clap::Args, Debug, Serialize)]
struct LimitsFlags {
    /// Largest WebSocket message accepted, in bytes (bigger: close 1009).
    #[arg(long, env = "SIPLINE_MAX_MESSAGE_BYTES")]
    max_message_bytes: Option<usize>,
    /// Seconds a silent WebSocket is kept before it is closed (pinged
    /// every third of it).
    #[arg(long, env = "SIPLINE_WS_IDLE_SECS")]
    ws_idle_secs: Option<u64>,
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
}

/// `[admin]`
#[derive(clap::Args, Debug, Serialize)]
struct AdminFlags {
    /// Bearer token for GET /admin/events (the admin event stream).
    #[arg(
        long = "admin-token",
        env = "SIPLINE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<Hidden>,
    /// On SIGTERM, how long to wait for calls in progress to end, seconds.
    #[arg(long, env = "SIPLINE_SHUTDOWN_GRACE_SECS")]
    shutdown_grace_secs: Option<u64>,
    /// This relay's name among several: a `relay` label on every metric and
    /// a `relay` field in every admin event.
    #[arg(long, env = "SIPLINE_INSTANCE")]
    instance: Option<String>,
}

/// A secret from the command line: never shown by `Debug`.
#[derive(Clone, Serialize)]
#[serde(transparent)]
struct Hidden(String);

impl std::fmt::Debug for Hidden {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("…")
    }
}

impl From<&str> for Hidden {
    fn from(value: &str) -> Self {
        Hidden(value.to_owned())
    }
}

/// `[client]`
#[derive(clap::Args, Debug, Serialize)]
struct ClientFlags {
    /// SIP domain of the users: what /api/config tells phone pages, and
    /// the embedded PBX's domain and realm (unless pbx.domain says
    /// otherwise).
    #[arg(long, env = "SIPLINE_DOMAIN")]
    domain: Option<String>,
}

/// `[media]`
#[derive(clap::Args, Debug, Serialize)]
struct MediaFlags {
    /// The media port range as MIN-MAX (each call takes four ports, six
    /// with video).
    #[arg(long = "media-ports", env = "SIPLINE_MEDIA_PORTS", value_parser = port_range)]
    #[serde(flatten)]
    ports: Option<PortRange>,
    /// The address the browsers' media sockets bind to (IPv4 or IPv6).
    #[arg(long = "media-listen", env = "SIPLINE_MEDIA_LISTEN")]
    listen_browser: Option<std::net::IpAddr>,
    /// The address written in the SDP to browsers (behind NAT).
    #[arg(long = "media-advertise", env = "SIPLINE_MEDIA_ADVERTISE")]
    advertise_browser: Option<std::net::IpAddr>,
    /// End an answered call after this many seconds without RTP.
    #[arg(long, env = "SIPLINE_RTP_TIMEOUT_SECS")]
    rtp_timeout_secs: Option<u64>,
    /// Threads carrying the media (0: one per core).
    #[arg(long = "media-workers", env = "SIPLINE_MEDIA_WORKERS")]
    workers: Option<usize>,
    /// One UDP port for every browser's media (one more per media thread
    /// after the first); 0: a port per call from the range.
    #[arg(long = "media-browser-port", env = "SIPLINE_MEDIA_BROWSER_PORT")]
    browser_port: Option<u16>,
}

/// `--media-ports MIN-MAX` as `[media]` has it.
#[derive(Clone, Debug, Serialize)]
struct PortRange {
    port_min: u16,
    port_max: u16,
}

fn port_range(range: &str) -> Result<PortRange, String> {
    range
        .split_once('-')
        .and_then(|(a, b)| {
            Some(PortRange {
                port_min: a.trim().parse().ok()?,
                port_max: b.trim().parse().ok()?,
            })
        })
        .ok_or_else(|| format!("wants MIN-MAX, e.g. 20000-29999, not {range:?}"))
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
    let args = Args::parse();
    let config = Config::layered(args.config.as_deref(), &args.flags)?;
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

    fn layered(file: &str, argv: &[&str]) -> Result<Config, String> {
        let path = std::env::temp_dir().join(format!(
            "sipline-layered-{}-{}.toml",
            std::process::id(),
            argv.len()
        ));
        std::fs::write(&path, file).expect("write");
        let mut all = vec!["sipline-relay", "--config", path.to_str().expect("utf8")];
        all.extend_from_slice(argv);
        let args = Args::try_parse_from(all).map_err(|e| e.to_string())?;
        let config = Config::layered(args.config.as_deref(), &args.flags);
        let _ = std::fs::remove_file(&path);
        config.map_err(|e| e.to_string())
    }

    const FILE: &str = r#"
        [pbx]
        embedded = true
        users = [{ name = "alice", password = "file secret" }]
        [limits]
        message_burst = 7
        messages_per_second = 3
        [media]
        port_min = 40000
        port_max = 40099
    "#;

    #[test]
    fn the_flags_are_well_formed_and_each_sets_its_own_key() {
        use clap::CommandFactory;
        // Duplicate ids, conflicting names: what clap checks only in debug
        // builds, and in release silently merges.
        Args::command().debug_assert();
        let c = layered(
            "[pbx]\naddresses = [\"127.0.0.1:5061\"]\n",
            &[
                "--pbx-transport",
                "tls",
                "--pbx-tls-cert",
                "/etc/c.pem",
                "--pbx-tls-key",
                "/etc/k.pem",
            ],
        )
        .expect("valid");
        assert_eq!(
            c.pbx.tls_cert.as_deref(),
            Some(std::path::Path::new("/etc/c.pem"))
        );
        assert_eq!(c.http.tls_cert, None, "not the browser side's");
    }

    #[test]
    fn flags_lie_over_the_file_key_by_key() {
        let c = layered(FILE, &[]).expect("the file alone");
        assert!(c.pbx.embedded);
        assert_eq!(
            (c.limits.message_burst, c.limits.messages_per_second),
            (7, 3)
        );
        assert_eq!(c.embedded_domain(), "sipline.local", "the users' domain");

        let c = layered(
            FILE,
            &[
                "--message-burst",
                "9",
                "--user",
                "bob:flag secret",
                "--media-ports",
                "41000-41003",
                "--domain",
                "example.org",
            ],
        )
        .expect("with flags");
        assert_eq!(c.limits.message_burst, 9, "the flag wins");
        assert_eq!(c.limits.messages_per_second, 3, "the file's, unflagged");
        assert!(c.pbx.embedded, "an absent switch does not turn it off");
        assert_eq!(c.pbx.users.len(), 1, "the flags' users replace the file's");
        assert_eq!(c.pbx.users[0].name, "bob");
        assert_eq!((c.media.port_min, c.media.port_max), (41000, 41003));
        assert_eq!(c.client.domain, "example.org");
        assert_eq!(c.embedded_domain(), "example.org");
    }

    #[test]
    fn a_bad_flag_is_refused_without_its_value() {
        let e = layered(FILE, &["--user", "no colon here"]).expect_err("refused");
        assert!(
            e.contains("NAME:PASSWORD") && !e.contains("no colon"),
            "{e}"
        );
        let e = layered(FILE, &["--media-ports", "1-2"]).expect_err("refused");
        assert!(e.contains("media.port_min"), "{e}");
        let e = layered("[pbx]\nembedded = 1\n", &[]).expect_err("refused");
        assert!(e.contains("line 2") && e.contains("embedded"), "{e}");
    }

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
