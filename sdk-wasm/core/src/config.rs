//! How the application configures the user agent, and what it may hand
//! the core: the configuration and its checks, and the headers it may add
//! to what it asks for.

use crate::prelude::*;
use core::time::Duration;

use crate::secret::Secret;
use crate::transaction::TimerConfig;

/// How the user agent presents itself and registers.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address of record, e.g. `sip:alice@pbx.example`.
    pub uri: String,
    /// Display name for From.
    pub display_name: Option<String>,
    /// Digest user name when it differs from the AoR user part.
    pub auth_username: Option<String>,
    /// Digest password; `None` means challenges cannot be answered.
    pub password: Option<Secret>,
    /// Request-URI of REGISTER; defaults to `sip:<AoR domain>`.
    pub registrar: Option<String>,
    /// Register when the transport comes up. `false` is guest mode: calls
    /// without a binding.
    pub register: bool,
    /// Interval asked for in REGISTER, in seconds.
    pub register_expires: u32,
    /// RFC 5626 instance id (`urn:uuid:…`); keep it stable per device so that
    /// re-registration replaces the old flow. Generated when `None`.
    pub instance_id: Option<String>,
    /// Use RFC 5626 outbound (`+sip.instance`, `reg-id`, `;ob`).
    pub outbound: bool,
    /// CRLF keep-alive period; a registrar's `Flow-Timer` overrides it.
    /// `None` disables pings.
    pub keepalive_interval: Option<Duration>,
    /// `User-Agent` header.
    pub user_agent: String,
    /// The WebSocket is secure (`wss://`): the Via says `WSS`, else `WS`
    /// (RFC 7118 §5.1).
    pub secure: bool,
    /// Transaction timers (T1, application request timeout).
    pub timers: TimerConfig,
    /// The session interval our INVITEs ask for (RFC 4028), in seconds (at
    /// least 90); `None` asks for none (a caller's request is still
    /// honoured). Finds calls whose far end vanished without a BYE.
    pub session_expires: Option<u32>,
    /// Incoming calls and MESSAGEs carry the headers whose names start
    /// with one of these, any case (`X-`, `P-Asserted-Identity`), as the
    /// Janus SIP plugin's `incoming_header_prefixes` do.
    pub incoming_header_prefixes: Vec<String>,
    /// Keep calls that are up when the WebSocket drops, and move them to
    /// the next connection with a re-INVITE (their media does not ride on
    /// the WebSocket). `false` ends them with 503 at once.
    pub keep_calls_on_reconnect: bool,
    /// Answer every incoming call `180 Ringing` as it is reported (the
    /// application is being told, so the caller hears ringback). `false`
    /// leaves it to the application ([`UserAgent::ringing`](crate::UserAgent::ringing)), e.g. for
    /// calls it answers at once or screens first.
    pub auto_ringing: bool,
}

impl Config {
    /// A configuration for `uri` with the defaults of a browser softphone.
    pub fn new(uri: impl Into<String>) -> Self {
        Self {
            uri: uri.into(),
            display_name: None,
            auth_username: None,
            password: None,
            registrar: None,
            register: true,
            register_expires: 600,
            instance_id: None,
            outbound: true,
            keepalive_interval: Some(Duration::from_secs(30)),
            user_agent: String::from(concat!("sipline/", env!("CARGO_PKG_VERSION"))),
            secure: true,
            timers: TimerConfig::default(),
            session_expires: Some(1800),
            incoming_header_prefixes: Vec::new(),
            keep_calls_on_reconnect: true,
            auto_ringing: true,
        }
    }
}

/// Why a [`Config`] was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The AoR is not a SIP URI with a user part.
    #[error("invalid SIP URI \"{0}\": expected sip:user@domain")]
    BadUri(String),
    /// The registrar is not a SIP URI.
    #[error("invalid registrar URI \"{0}\"")]
    BadRegistrar(String),
    /// A register interval of zero would unregister.
    #[error("register_expires must be at least 1 second")]
    BadExpires,
    /// A field that goes into SIP messages holds what they cannot carry.
    #[error("invalid {field}: {problem}")]
    BadField {
        /// The field's name.
        field: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
}

/// Checks the free-text fields that are written into messages, so that no
/// configuration can break a header or inject one.
pub(crate) fn validate_fields(config: &Config) -> Result<(), ConfigError> {
    let no_controls = |field, value: &str| {
        if value.chars().any(char::is_control) {
            return Err(ConfigError::BadField {
                field,
                problem: "control characters are not allowed",
            });
        }
        Ok(())
    };
    if let Some(name) = &config.display_name {
        no_controls("display_name", name)?;
    }
    if let Some(user) = &config.auth_username {
        no_controls("auth_username", user)?;
    }
    no_controls("user_agent", &config.user_agent)?;
    if let Some(id) = &config.instance_id {
        let urn = id.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("urn:"));
        if !urn
            || id
                .chars()
                .any(|c| c.is_control() || c.is_whitespace() || matches!(c, '<' | '>' | '"'))
        {
            return Err(ConfigError::BadField {
                field: "instance_id",
                problem: "expected a URN such as urn:uuid:…",
            });
        }
    }
    if config
        .keepalive_interval
        .is_some_and(|i| i < Duration::from_secs(1))
    {
        return Err(ConfigError::BadField {
            field: "keepalive_interval",
            problem: "must be at least 1 second",
        });
    }
    Ok(())
}

/// A header the application asked to add that cannot go on the wire.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeaderError {
    /// Not a SIP token (RFC 3261 §25.1), e.g. empty or with a space or colon.
    // Quoted by hand: `{:?}` would link Debug's escaping into the SDK.
    #[error("not a header name: \"{0}\"")]
    BadName(String),
    /// A line break or control character would forge headers.
    #[error("header {0}: the value has a line break or control character")]
    BadValue(String),
    /// The agent sets this one itself; adding another would break the
    /// message.
    #[error("header {0} is managed by the user agent")]
    Reserved(String),
}

/// The headers [`UserAgent::with_headers`](crate::UserAgent::with_headers) refuses: the ones that make the
/// message and its dialog.
const RESERVED_HEADERS: &[&str] = &[
    "via",
    "v",
    "from",
    "f",
    "to",
    "t",
    "call-id",
    "i",
    "cseq",
    "contact",
    "m",
    "content-length",
    "l",
    "content-type",
    "c",
    "max-forwards",
    "route",
    "record-route",
    "authorization",
    "proxy-authorization",
    "rack",
    "rseq",
    "session-expires",
    // Parsed and checked on every message: a bad value would make the
    // message unsendable.
    "expires",
    "x",
    "min-se",
    "refer-to",
    "r",
    "event",
    "o",
];

pub(crate) fn check_app_header(name: &str, value: &str) -> Result<(), HeaderError> {
    if !crate::sip::is_token(name) {
        return Err(HeaderError::BadName(name.to_owned()));
    }
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err(HeaderError::BadValue(name.to_owned()));
    }
    if RESERVED_HEADERS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
    {
        return Err(HeaderError::Reserved(name.to_owned()));
    }
    Ok(())
}
