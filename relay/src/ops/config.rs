//! The relay's configuration, in layers: the defaults, one TOML file, then
//! whatever the command line (or its `SIPLINE_*` environment variables)
//! sets, each layer laid over the one before key by key
//! ([`Config::layered`]). The schema below is the one list of keys.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use self::pbx::{Pbx, PbxServer, User};
pub use self::recording::Recording;
use crate::media::calls::MediaConfig;
pub use crate::media::record::RecordingMode;
use crate::signalling::ProxyConfig;
use crate::signalling::limits::RateLimit;
use crate::signalling::pbx::{ECHO_EXTENSION, EmbeddedPbx, Password};

mod pbx;
mod recording;
/// Why the configuration was refused. Each message names the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema (unknown key, wrong type).
    /// The line and key are named, the value never: it may be a password.
    #[error("{path}: line {line}, key `{key}`: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line of the error.
        line: usize,
        /// The key on that line.
        key: String,
        /// What toml says.
        message: String,
    },
    /// A flag (or its environment variable) does not fit the schema. The
    /// value is never named: it may be a password.
    #[error("command line: {message}")]
    Flags {
        /// What toml says.
        message: String,
    },
    /// A value is out of range or missing.
    #[error("config key `{key}`: {problem}")]
    Invalid {
        /// The dotted key.
        key: &'static str,
        /// What is wrong with it.
        problem: String,
    },
}

/// The whole configuration file.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The browser side: HTTP and WebSocket.
    pub http: Http,
    /// The PBX side: SIP over UDP.
    pub sip: Sip,
    /// The PBX the relay serves.
    pub pbx: Pbx,
    /// Limits that protect the relay.
    pub limits: Limits,
    /// Operations: the admin event stream, shutdown.
    pub admin: Admin,
    /// What `/api/config` tells phone pages.
    pub client: Client,
    /// The calls' media: ports, addresses, the RTP timeout.
    pub media: MediaSection,
    /// Recording the calls' media.
    pub recording: Recording,
}

/// `[media]`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MediaSection {
    /// First UDP port of the media range; each call takes two pairs (the
    /// browser's WebRTC port, the PBX's RTP and RTCP), three with video.
    pub port_min: u16,
    /// Last UDP port of the range.
    pub port_max: u16,
    /// The address browsers' media (ICE, DTLS-SRTP) arrives on.
    pub listen_browser: IpAddr,
    /// The address written in the SDP to browsers, when they reach the
    /// relay by another (1:1 NAT, a public address).
    pub advertise_browser: Option<IpAddr>,
    /// The address the PBX's RTP arrives on; `sip.listen`'s by default.
    pub listen_pbx: Option<IpAddr>,
    /// The address written in the SDP to the PBX; `sip.advertise`'s, else
    /// `listen_pbx`, by default.
    pub advertise_pbx: Option<IpAddr>,
    /// An answered call with no RTP or RTCP either way, and no ICE consent
    /// check from the browser, for this long is ended with a BYE each way.
    pub rtp_timeout_secs: u64,
    /// Latch onto the PBX side's first media packet's source instead of
    /// requiring the address its SDP gave (PBX phones behind NAT).
    pub latch_pbx: bool,
    /// Threads carrying the media; 0: one per core the relay may run on.
    pub workers: usize,
    /// One UDP port for every browser's media instead of one per call
    /// (0: off); each media thread takes the next port from it.
    pub browser_port: u16,
}

impl Default for MediaSection {
    fn default() -> Self {
        let d = MediaConfig::default();
        Self {
            port_min: d.port_min,
            port_max: d.port_max,
            listen_browser: d.browser_bind,
            advertise_browser: None,
            listen_pbx: None,
            advertise_pbx: None,
            rtp_timeout_secs: d.rtp_timeout.as_secs(),
            latch_pbx: d.latch_pbx,
            workers: 0,
            browser_port: 0,
        }
    }
}

/// `[admin]`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// Bearer token for `GET /admin/events`; without one the stream is off.
    /// Never shown by `Debug`.
    pub token: Option<Password>,
    /// On SIGTERM: stop accepting, then wait this long for calls to end.
    pub shutdown_grace_secs: u64,
    /// This relay's name among several: the `relay` label of every metric
    /// and the `relay` field of every admin event. None: left out.
    pub instance: Option<String>,
}

impl Default for Admin {
    fn default() -> Self {
        Self {
            token: None,
            shutdown_grace_secs: 30,
            instance: None,
        }
    }
}

/// `[client]`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Client {
    /// The WebSocket URL pages should use; derived from the request's Host
    /// (and `X-Forwarded-Proto`) when absent.
    pub server_url: Option<String>,
    /// The SIP domain of the users' addresses.
    pub domain: String,
    /// Whether pages should register (false: guest calls only).
    pub register: bool,
    /// STUN/TURN URLs for the browser's RTCPeerConnection.
    pub ice_servers: Vec<String>,
}

impl Default for Client {
    fn default() -> Self {
        Self {
            server_url: None,
            domain: String::from("sipline.local"),
            register: true,
            ice_servers: Vec::new(),
        }
    }
}

/// `[http]`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Http {
    /// Where to listen for browsers (WebSocket on `/sip`, `/healthz`,
    /// `/metrics`).
    pub listen: SocketAddr,
    /// The relay's name as browsers know it, used in the Via and
    /// Record-Route entries on their side.
    pub public_host: String,
    /// PEM certificate chain: with `tls_key`, browsers connect with
    /// `wss://` (required by browsers outside localhost).
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// A folder served at `/` (the demo phone page and the SDK it loads);
    /// none by default: a production relay serves no pages.
    pub web_root: Option<PathBuf>,
    /// Load balancers in front of the relay (their IP addresses) that put
    /// a PROXY protocol header (v1 or v2) before each connection: the
    /// browser's address it names counts for the per-address limits and
    /// the logs. Their connections must bring one; nobody else's is read.
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for Http {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_host: String::from("relay.invalid"),
            tls_cert: None,
            tls_key: None,
            web_root: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// `[sip]`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Sip {
    /// The UDP address to send from and receive on.
    pub listen: SocketAddr,
    /// The address the PBX must use to reach the relay, when `listen` is a
    /// wildcard or behind NAT.
    pub advertise: Option<SocketAddr>,
    /// RFC 3261 T1 in milliseconds.
    pub t1_ms: u64,
    /// How long a request may go unanswered by the PBX before the browser
    /// gets `408`, in milliseconds (at most 64*T1).
    pub request_timeout_ms: u64,
}

impl Default for Sip {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5070)),
            advertise: None,
            t1_ms: 500,
            request_timeout_ms: 32_000,
        }
    }
}

/// `[limits]`
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest WebSocket message accepted; bigger ones close the connection
    /// with code 1009.
    pub max_message_bytes: usize,
    /// Requests in flight toward the PBX; beyond, browsers get `503`.
    pub max_pending: usize,
    /// WebSocket connections from one IP address; beyond, the handshake
    /// gets HTTP `503` with `Retry-After`.
    pub max_connections_per_ip: usize,
    /// Sustained SIP messages per second per connection; beyond, requests
    /// get `503` with `Retry-After`.
    pub messages_per_second: u32,
    /// Messages a connection may send in a burst before the rate applies.
    pub message_burst: u32,
    /// Calls with media one connection may have at once; beyond, a new
    /// call gets `503`. Keeps one browser from taking the port range.
    pub max_calls_per_connection: usize,
    /// A connection that sends nothing for this long (no SIP, no CRLF
    /// keep-alive, no answer to the relay's WebSocket pings, sent every
    /// third of it) is closed: a browser gone without closing (a closed
    /// laptop, a changed network) must not hold its flow and registration.
    pub ws_idle_secs: u64,
    /// HTTP connections not (yet) upgraded to a WebSocket, in all; beyond,
    /// the oldest of them is closed to let the new one in, so that idle or
    /// trickling sockets cannot lock browsers out (nor use up the
    /// process's file descriptors).
    pub max_http_connections: usize,
    /// The same, from one IP address.
    pub max_http_connections_per_ip: usize,
    /// How long a request's headers may take to arrive, and how long an
    /// idle HTTP connection is kept waiting for its next request.
    pub http_header_timeout_secs: u64,
}
impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            max_pending: 10_000,
            max_connections_per_ip: 50,
            messages_per_second: 20,
            message_burst: 100,
            max_calls_per_connection: 16,
            ws_idle_secs: 90,
            max_http_connections: 1024,
            max_http_connections_per_ip: 32,
            http_header_timeout_secs: 10,
        }
    }
}

/// Lays `top` over `base`: tables merge key by key, any other value (an
/// array too) replaces the one below.
fn lay_over(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(below)), toml::Value::Table(above)) => lay_over(below, above),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// toml's message with whatever it quotes (the offending value, which may
/// be a password) blanked out.
fn without_quoted(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut inside: Option<char> = None;
    for c in message.chars() {
        match inside {
            Some(q) if c == q => {
                inside = None;
                out.push(c);
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '`' || c == '"' {
                    inside = Some(c);
                    out.push('…');
                }
            }
        }
    }
    out
}

impl Config {
    /// Parses TOML text; `path` only names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| {
            let at = e.span().map_or(0, |s| s.start.min(text.len()));
            let line = text[..at].matches('\n').count() + 1;
            let key = text
                .lines()
                .nth(line - 1)
                .and_then(|l| l.split_once('='))
                .map_or("", |(k, _)| k.trim())
                .to_owned();
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                key,
                message: without_quoted(e.message()),
            }
        })
    }

    /// The defaults, then the file at `file` if one is given, then
    /// `overrides` laid over them key by key: any value that serializes to
    /// the file's shape (the command line's flags, grouped by section as
    /// in the file; a key it leaves out keeps the value below). Checked
    /// with [`Config::validate`].
    pub fn layered(file: Option<&Path>, overrides: &impl Serialize) -> Result<Config, ConfigError> {
        let text = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_owned(),
                    source,
                })?;
                // The file alone first, for errors that name its line.
                Self::parse(path, &text)?;
                text
            }
            None => String::new(),
        };
        let flags_error = |e: &dyn std::fmt::Display| ConfigError::Flags {
            message: without_quoted(&e.to_string()),
        };
        let mut table: toml::Table = toml::from_str(&text).map_err(|e| flags_error(&e))?;
        lay_over(
            &mut table,
            toml::Table::try_from(overrides).map_err(|e| flags_error(&e))?,
        );
        let config = Config::deserialize(table).map_err(|e| flags_error(&e))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_pbxs()?;
        self.validate_instance()?;
        if self.pbx.embedded {
            self.validate_users()?;
        }
        self.validate_media()?;
        self.recording.validate()?;
        if self.sip.advertise.is_none() && self.sip.listen.ip().is_unspecified() {
            return Err(ConfigError::Invalid {
                key: "sip.advertise",
                problem: format!(
                    "required when sip.listen is a wildcard ({})",
                    self.sip.listen
                ),
            });
        }
        // T1 must stay below T2 (4 s), which caps non-INVITE retransmissions.
        if !(10..=4_000).contains(&self.sip.t1_ms) {
            return Err(ConfigError::Invalid {
                key: "sip.t1_ms",
                problem: format!("{} is outside 10..=4000", self.sip.t1_ms),
            });
        }
        if self.sip.request_timeout_ms < 1_000 {
            return Err(ConfigError::Invalid {
                key: "sip.request_timeout_ms",
                problem: "below one second a PBX cannot answer".into(),
            });
        }
        if self.http.tls_cert.is_some() != self.http.tls_key.is_some() {
            return Err(ConfigError::Invalid {
                key: "http.tls_cert",
                problem: "http.tls_cert and http.tls_key go together".into(),
            });
        }
        if self.admin.token.as_ref().is_some_and(|t| t.0.len() < 16) {
            return Err(ConfigError::Invalid {
                key: "admin.token",
                problem: "use at least 16 characters".into(),
            });
        }
        if self.limits.messages_per_second == 0 || self.limits.message_burst == 0 {
            return Err(ConfigError::Invalid {
                key: "limits.messages_per_second",
                problem: "the rate and the burst must both be at least 1".into(),
            });
        }
        if self.limits.ws_idle_secs < 3 {
            return Err(ConfigError::Invalid {
                key: "limits.ws_idle_secs",
                problem: "must be at least 3 seconds".into(),
            });
        }
        if self.limits.max_http_connections == 0 || self.limits.max_http_connections_per_ip == 0 {
            return Err(ConfigError::Invalid {
                key: "limits.max_http_connections",
                problem: "the total and the per-address bound must both be at least 1".into(),
            });
        }
        if self.limits.http_header_timeout_secs == 0 {
            return Err(ConfigError::Invalid {
                key: "limits.http_header_timeout_secs",
                problem: "must be at least 1 second".into(),
            });
        }
        if self.limits.max_message_bytes < 1024 {
            return Err(ConfigError::Invalid {
                key: "limits.max_message_bytes",
                problem: "below 1024 no real SIP message fits".into(),
            });
        }
        if self.http.public_host.is_empty()
            || self
                .http
                .public_host
                .contains(|c: char| c.is_whitespace() || c == '@')
        {
            return Err(ConfigError::Invalid {
                key: "http.public_host",
                problem: format!("{:?} is not a host name", self.http.public_host),
            });
        }
        Ok(())
    }

    fn validate_users(&self) -> Result<(), ConfigError> {
        let invalid = |problem: String| ConfigError::Invalid {
            key: "pbx.users",
            problem,
        };
        if self.pbx.users.is_empty() {
            return Err(invalid("the embedded PBX needs at least one user".into()));
        }
        let domain = self.embedded_domain();
        let domain_ok = !domain.is_empty()
            && domain
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-');
        if !domain_ok {
            return Err(ConfigError::Invalid {
                key: if self.pbx.domain.is_some() {
                    "pbx.domain"
                } else {
                    "client.domain"
                },
                problem: format!("{domain:?} is not a domain name"),
            });
        }
        for (i, u) in self.pbx.users.iter().enumerate() {
            let name_ok = !u.name.is_empty()
                && u.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !name_ok {
                return Err(invalid(format!(
                    "{:?}: use letters, digits, '-', '_' or '.'",
                    u.name
                )));
            }
            if u.name == ECHO_EXTENSION {
                return Err(invalid(format!(
                    "{ECHO_EXTENSION:?} is a reserved extension"
                )));
            }
            if u.password.0.is_empty() {
                return Err(invalid(format!("{}: empty password", u.name)));
            }
            if self.pbx.users[..i].iter().any(|o| o.name == u.name) {
                return Err(invalid(format!("{}: listed twice", u.name)));
            }
        }
        Ok(())
    }

    /// The embedded PBX's domain: its own, else the users'.
    pub fn embedded_domain(&self) -> &str {
        self.pbx.domain.as_deref().unwrap_or(&self.client.domain)
    }

    /// The media table's view, once the SIP socket's address is known.
    pub fn media(&self, sip_bound: IpAddr) -> MediaConfig {
        let m = &self.media;
        let pbx_bind = m.listen_pbx.unwrap_or(sip_bound);
        MediaConfig {
            port_min: m.port_min,
            port_max: m.port_max,
            browser_bind: m.listen_browser,
            browser_advertised: m.advertise_browser.unwrap_or(m.listen_browser),
            pbx_bind,
            pbx_advertised: m
                .advertise_pbx
                .or(self.sip.advertise.map(|a| a.ip()))
                .unwrap_or(pbx_bind),
            rtp_timeout: Duration::from_secs(m.rtp_timeout_secs),
            latch_pbx: m.latch_pbx,
            pbx_srtp: self.pbx.srtp,
            max_calls_per_connection: self.limits.max_calls_per_connection,
            recording: self.recording.mode,
            browser_port: m.browser_port,
            workers: self.media_workers(),
        }
    }

    /// The media engine's threads: as configured, else one per core the
    /// process may run on (`taskset` and cgroup limits count).
    pub fn media_workers(&self) -> usize {
        match self.media.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }

    fn validate_media(&self) -> Result<(), ConfigError> {
        let m = &self.media;
        if m.port_min < 1024 || m.port_min > m.port_max || m.port_max - m.port_min < 3 {
            return Err(ConfigError::Invalid {
                key: "media.port_min",
                problem: format!(
                    "{}..={} must lie above 1023 and hold at least 4 ports (one call)",
                    m.port_min, m.port_max
                ),
            });
        }
        if m.browser_port != 0 {
            let last = usize::from(m.browser_port) + self.media_workers() - 1;
            let ours = usize::from(m.port_min)..=usize::from(m.port_max);
            if m.browser_port < 1024
                || last > 65_535
                || ours.contains(&usize::from(m.browser_port))
                || ours.contains(&last)
            {
                return Err(ConfigError::Invalid {
                    key: "media.browser_port",
                    problem: format!(
                        "{}..={last} (one port per media thread) must lie above 1023 and outside media.port_min..=media.port_max",
                        m.browser_port
                    ),
                });
            }
        }
        if m.advertise_browser.is_none() && m.listen_browser.is_unspecified() {
            return Err(ConfigError::Invalid {
                key: "media.advertise_browser",
                problem: format!(
                    "required when media.listen_browser is a wildcard ({})",
                    m.listen_browser
                ),
            });
        }
        if self.limits.max_calls_per_connection == 0 {
            return Err(ConfigError::Invalid {
                key: "limits.max_calls_per_connection",
                problem: "at least 1, or no browser could call".into(),
            });
        }
        if m.rtp_timeout_secs < 5 {
            return Err(ConfigError::Invalid {
                key: "media.rtp_timeout_secs",
                problem: "below 5 s, a pause in RTP would end calls".into(),
            });
        }
        Ok(())
    }

    fn validate_instance(&self) -> Result<(), ConfigError> {
        let Some(name) = &self.admin.instance else {
            return Ok(());
        };
        let fits = (1..=64).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if fits {
            return Ok(());
        }
        Err(ConfigError::Invalid {
            key: "admin.instance",
            problem: format!("{name:?}: 1 to 64 of A-Z a-z 0-9 . - _"),
        })
    }

    /// The proxy's view, once the UDP socket's real address is known.
    pub fn proxy(&self, bound: SocketAddr) -> ProxyConfig {
        let mut p = ProxyConfig::new(Vec::new(), self.sip.advertise.unwrap_or(bound));
        self.pbx_settings(&mut p);
        p.instance.clone_from(&self.admin.instance);
        p.ws_host = self.http.public_host.clone();
        p.t1 = Duration::from_millis(self.sip.t1_ms);
        p.request_timeout = Duration::from_millis(self.sip.request_timeout_ms);
        p.max_pending = self.limits.max_pending;
        p.max_connections_per_ip = self.limits.max_connections_per_ip;
        p.rate = RateLimit {
            per_second: self.limits.messages_per_second,
            burst: self.limits.message_burst,
        };
        p.embedded = self.pbx.embedded.then(|| EmbeddedPbx {
            domain: self.embedded_domain().to_owned(),
            users: self
                .pbx
                .users
                .iter()
                .map(|u| (u.name.clone(), u.password.clone()))
                .collect(),
        });
        p
    }
}

#[cfg(test)]
mod tests;
