//! The user agent: the one object a shell drives.
//!
//! Inputs: [`UserAgent::transport_connected`], [`UserAgent::handle_message`],
//! [`UserAgent::transport_closed`], [`UserAgent::handle_timeout`] and the
//! application's requests ([`UserAgent::register`],
//! [`UserAgent::unregister`]). Outputs: [`UserAgent::poll_transmit`],
//! [`UserAgent::poll_timeout`], [`UserAgent::poll_event`]. A shell loops:
//! feed an input, then drain all three outputs.

use core::fmt;
use core::time::Duration;

use crate::Instant;
use crate::auth::DigestClient;
use crate::call::{ALLOW, CallId, Calls, InDialog};
use crate::message::{MessageId, Messages};
use crate::rand::Rng;
use crate::registration::{Ctx, Identity, Registration, RegistrationState};
use crate::sip::{HeaderName, Message, ParseError, Uri, response_to};
use crate::time::earliest;
use crate::transaction::{Expiry, RequestVerdict, ResponseVerdict, TimerConfig, Transactions};

/// A password that never shows up in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself, for the digest computation only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

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
fn validate_fields(config: &Config) -> Result<(), ConfigError> {
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
    #[error("not a header name: {0:?}")]
    BadName(String),
    /// A line break or control character would forge headers.
    #[error("header {0}: the value has a line break or control character")]
    BadValue(String),
    /// The agent sets this one itself; adding another would break the
    /// message.
    #[error("header {0} is managed by the user agent")]
    Reserved(String),
}

/// The headers [`UserAgent::with_headers`] refuses: the ones that make the
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

fn check_app_header(name: &str, value: &str) -> Result<(), HeaderError> {
    let token = |c: char| c.is_ascii_alphanumeric() || "-.!%*_+`'~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
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

/// What the application is told. The names follow the events users of
/// JsSIP, SIP.js and the Janus SIP plugin know (see [`Event::name`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A REGISTER for a new binding is on its way.
    Registering,
    /// The registrar holds the binding for `expires` seconds (sent again on
    /// every refresh).
    Registered {
        /// Seconds granted.
        expires: u32,
    },
    /// Registration failed. `code` is the SIP status received, or 408 when
    /// the registrar did not answer in time, or 503 when the transport
    /// closed. A retry is scheduled when `retry_in` is set.
    RegistrationFailed {
        /// SIP status code.
        code: u16,
        /// Reason phrase.
        reason: String,
        /// When the next automatic attempt happens.
        retry_in: Option<Duration>,
    },
    /// A REGISTER with expires 0 is on its way.
    Unregistering,
    /// No binding any more: asked for, refused (`code`), or the transport
    /// closed under it.
    Unregistered {
        /// The error status if the unregistration itself failed.
        code: Option<u16>,
        /// Why.
        reason: String,
    },
    /// The server stopped answering CRLF keep-alives (RFC 5626 §4.4.1): the
    /// flow is dead even if the socket looks open. The shell should close
    /// and reconnect.
    KeepAliveTimeout,
    /// A call arrived: answer it ([`UserAgent::answer`]), ring
    /// ([`UserAgent::ringing`]) or decline it ([`UserAgent::decline`]).
    Incoming {
        /// Which call.
        call: CallId,
        /// The caller's URI.
        from: String,
        /// The caller's display name, if it sent one.
        display_name: Option<String>,
        /// The caller's SDP offer; `None` when our answer must carry the
        /// offer (its answer then comes with [`Event::Accepted`]).
        sdp: Option<String>,
        /// The INVITE's headers named by [`Config::incoming_header_prefixes`].
        headers: Vec<(String, String)>,
    },
    /// An outgoing call's INVITE is on its way.
    Calling {
        /// Which call.
        call: CallId,
        /// Who it calls (the INVITE's Request-URI).
        target: String,
    },
    /// The far end is ringing (a provisional response without SDP).
    Ringing {
        /// Which call.
        call: CallId,
    },
    /// Early media: a provisional response with the far end's SDP answer.
    Progress {
        /// Which call.
        call: CallId,
        /// The SDP answer (set it as the remote description).
        sdp: String,
    },
    /// The call is up: the far end answered our INVITE (its 2xx was
    /// acknowledged), or acknowledged our answer to its INVITE.
    Accepted {
        /// Which call.
        call: CallId,
        /// The far end's SDP: the answer to our offer (empty when we
        /// answered its offer: there is nothing new).
        sdp: String,
    },
    /// The far end changes the call (a re-INVITE or UPDATE: hold, unhold,
    /// ICE restart): answer with [`UserAgent::answer`] (the answer to `sdp`, or
    /// an offer when it has none).
    Updating {
        /// Which call.
        call: CallId,
        /// The far end's new offer, if it made one.
        sdp: Option<String>,
    },
    /// A change of the call's session completed: the far end's answer to
    /// our re-INVITE (or to the offer in our answer to its own).
    Updated {
        /// Which call.
        call: CallId,
        /// The far end's SDP answer.
        sdp: String,
    },
    /// Our re-INVITE was refused; the call goes on as it was.
    UpdateFailed {
        /// Which call.
        call: CallId,
        /// The SIP status (408 when unanswered).
        code: u16,
        /// The reason phrase.
        reason: String,
    },
    /// A DTMF digit the far end sent as SIP INFO (`application/dtmf-relay`).
    Dtmf {
        /// Which call.
        call: CallId,
        /// `0`–`9`, `*`, `#`, `A`–`D`.
        digit: char,
        /// How long it was pressed.
        duration_ms: u32,
    },
    /// A MESSAGE arrived (RFC 3428), in a call's dialog or outside any.
    Message {
        /// The call it came in, if any.
        call: Option<CallId>,
        /// The sender's URI.
        from: String,
        /// Its Content-Type (`text/plain`…).
        content_type: String,
        /// The text.
        body: String,
        /// Its headers named by [`Config::incoming_header_prefixes`].
        headers: Vec<(String, String)>,
    },
    /// A MESSAGE we sent was accepted (2xx).
    MessageSent {
        /// Which one.
        id: MessageId,
    },
    /// A MESSAGE we sent was refused, or not answered (408), or the
    /// transport closed (503).
    MessageFailed {
        /// Which one.
        id: MessageId,
        /// The SIP status.
        code: u16,
        /// The reason phrase.
        reason: String,
    },
    /// A blind transfer's progress ([`UserAgent::transfer`]): the REFER's
    /// answer (202: the far end will try), then each NOTIFY of the far
    /// end's call to the target (100, 180, then 200 or a failure).
    Transfer {
        /// Which call.
        call: CallId,
        /// The status: the REFER's, or the sipfrag's.
        code: u16,
        /// Its reason phrase.
        reason: String,
        /// No more progress will come: succeeded (2xx with `done`) or failed.
        done: bool,
    },
    /// The far end asks us to call `target` instead (RFC 3515: a blind
    /// transfer, we are the one transferred). The REFER was accepted
    /// (202); the app follows it with [`UserAgent::accept_referral`], whose
    /// new call's progress the far end then hears of, or refuses it with
    /// [`UserAgent::decline_referral`].
    Referred {
        /// The call the request came in.
        call: CallId,
        /// Whom to call (the Refer-To URI).
        target: String,
        /// Who asked for it (the Referred-By header), if said.
        referred_by: Option<String>,
    },
    /// A call kept through a dropped transport moved to the new one: its
    /// re-INVITE was answered with `sdp`. Nothing changed if the far end's
    /// media is the one the shell already talks to (same ICE credentials
    /// and DTLS fingerprint); a shell that finds otherwise hangs up, since
    /// the media it has can no longer reach the far end.
    Recovered {
        /// Which call.
        call: CallId,
        /// The far end's answer.
        sdp: String,
    },
    /// The call ended: `code` is the failure's SIP status (or 408/503 when
    /// the far end or the transport went silent), `None` for a BYE.
    Hangup {
        /// Which call.
        call: CallId,
        /// The SIP status of a failed call.
        code: Option<u16>,
        /// The reason phrase, or "BYE".
        reason: String,
    },
}

impl Event {
    /// The event's conventional name (`registered`, `registration_failed`…).
    pub fn name(&self) -> &'static str {
        match self {
            Event::Registering => "registering",
            Event::Registered { .. } => "registered",
            Event::RegistrationFailed { .. } => "registration_failed",
            Event::Unregistering => "unregistering",
            Event::Unregistered { .. } => "unregistered",
            Event::KeepAliveTimeout => "keepalive_timeout",
            Event::Incoming { .. } => "incoming",
            Event::Calling { .. } => "calling",
            Event::Ringing { .. } => "ringing",
            Event::Progress { .. } => "progress",
            Event::Accepted { .. } => "accepted",
            Event::Hangup { .. } => "hangup",
            Event::Transfer { .. } => "transfer",
            Event::Referred { .. } => "referred",
            Event::Recovered { .. } => "recovered",
            Event::Updating { .. } => "updating",
            Event::Updated { .. } => "updated",
            Event::UpdateFailed { .. } => "update_failed",
            Event::Dtmf { .. } => "dtmf",
            Event::Message { .. } => "message",
            Event::MessageSent { .. } => "message_sent",
            Event::MessageFailed { .. } => "message_failed",
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Registered { expires } => write!(f, "registered for {expires} s"),
            Event::RegistrationFailed { code, reason, .. } => {
                write!(f, "registration failed: {code} {reason}")
            }
            Event::Unregistered { reason, .. } => write!(f, "unregistered: {reason}"),
            other => f.write_str(other.name()),
        }
    }
}

/// How long to wait for the pong of a CRLF ping (RFC 5626 §4.4.1).
const PONG_TIMEOUT: Duration = Duration::from_secs(10);

/// The sans-IO SIP user agent.
pub struct UserAgent {
    config: Config,
    id: Identity,
    rng: Rng,
    txs: Transactions,
    digest: Option<DigestClient>,
    registration: Registration,
    calls: Calls,
    messages: Messages,
    connected: bool,
    next_ping: Option<Instant>,
    pong_deadline: Option<Instant>,
    to_tag: String,
    transmit: Vec<Vec<u8>>,
    events: Vec<Event>,
    /// The application's headers while [`UserAgent::with_headers`] runs.
    app_headers: Vec<(String, String)>,
}

/// Shows state, never the outgoing queue: a queued REGISTER carries digest
/// material (response, nonce, cnonce) that would allow offline guessing.
impl fmt::Debug for UserAgent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserAgent")
            .field("aor", &self.id.aor)
            .field("contact", &self.id.contact_uri)
            .field("connected", &self.connected)
            .field("registration", &self.registration.state())
            .field("queued_frames", &self.transmit.len())
            .finish_non_exhaustive()
    }
}

impl UserAgent {
    /// Creates a user agent. `seed` must come from a CSPRNG: it makes the
    /// tags, branches, Call-IDs and cnonces.
    pub fn new(config: Config, seed: [u8; 32]) -> Result<Self, ConfigError> {
        let aor = Uri::parse(&config.uri)
            .filter(|u| {
                (u.scheme.eq_ignore_ascii_case("sip") || u.scheme.eq_ignore_ascii_case("sips"))
                    && u.user.is_some()
            })
            .ok_or_else(|| ConfigError::BadUri(config.uri.clone()))?;
        let registrar = match &config.registrar {
            Some(r) => {
                Uri::parse(r)
                    .filter(|u| !u.host.is_empty())
                    .ok_or_else(|| ConfigError::BadRegistrar(r.clone()))?;
                r.clone()
            }
            None => {
                let mut r = String::from(aor.scheme);
                r.push(':');
                r.push_str(aor.host);
                r
            }
        };
        if config.register_expires == 0 {
            return Err(ConfigError::BadExpires);
        }
        validate_fields(&config)?;
        let mut rng = Rng::from_seed(seed);
        let user = aor.user.unwrap_or_default().to_owned();
        let digest = config.password.clone().map(|pw| {
            DigestClient::new(
                config.auth_username.clone().unwrap_or_else(|| user.clone()),
                pw,
            )
        });
        let via_host = rng.token(12) + ".invalid";
        let mut contact_uri = String::from("sip:");
        contact_uri.push_str(&rng.token(8));
        contact_uri.push('@');
        contact_uri.push_str(&via_host);
        contact_uri.push_str(";transport=ws");
        let instance = config.outbound.then(|| match &config.instance_id {
            Some(id) => id.clone(),
            None => String::from("urn:uuid:") + &rng.uuid(),
        });
        if instance.is_some() {
            contact_uri.push_str(";ob");
        }
        let id = Identity {
            aor: config.uri.clone(),
            display_name: config.display_name.clone(),
            registrar,
            contact_uri,
            instance,
            via_host,
            via_transport: if config.secure { "WSS" } else { "WS" },
            user_agent: config.user_agent.clone(),
            header_prefixes: config.incoming_header_prefixes.clone(),
        };
        let registration = Registration::new(&mut rng, config.register_expires, config.register);
        let to_tag = rng.token(10);
        let session_expires = config.session_expires;
        Ok(Self {
            txs: Transactions::new(config.timers),
            config,
            id,
            rng,
            digest,
            registration,
            calls: Calls::new(session_expires),
            messages: Messages::default(),
            connected: false,
            next_ping: None,
            pong_deadline: None,
            to_tag,
            transmit: Vec::new(),
            events: Vec::new(),
            app_headers: Vec::new(),
        })
    }

    /// The registration's current state.
    pub fn registration_state(&self) -> RegistrationState {
        self.registration.state()
    }

    /// The Contact URI this agent registers (with its `.invalid` host).
    pub fn contact_uri(&self) -> &str {
        &self.id.contact_uri
    }

    /// The registration, the calls, the messages, and what they may
    /// touch.
    fn parts(&mut self, now: Instant) -> (&mut Registration, &mut Calls, &mut Messages, Ctx<'_>) {
        (
            &mut self.registration,
            &mut self.calls,
            &mut self.messages,
            Ctx {
                now,
                id: &self.id,
                txs: &mut self.txs,
                digest: self.digest.as_mut(),
                rng: &mut self.rng,
                transmit: &mut self.transmit,
                events: &mut self.events,
                headers: &self.app_headers,
            },
        )
    }

    fn ctx(&mut self, now: Instant) -> (&mut Registration, Ctx<'_>) {
        let (reg, _, _, cx) = self.parts(now);
        (reg, cx)
    }

    fn message_ctx(&mut self, now: Instant) -> (&mut Messages, Ctx<'_>) {
        let (_, _, messages, cx) = self.parts(now);
        (messages, cx)
    }

    fn call_ctx(&mut self, now: Instant) -> (&mut Calls, Ctx<'_>) {
        let (_, calls, _, cx) = self.parts(now);
        (calls, cx)
    }

    /// Runs `action` (a call, an answer, a hangup, a MESSAGE…) with the
    /// application's `headers` added to what it sends: `X-` headers for a
    /// PBX's dialplan, a CRM id, `Priority`… Requests the agent sends on
    /// its own later keep them where they belong to the same request (a
    /// challenged INVITE's retry). Headers the agent manages itself (Via,
    /// From, To, Call-ID, CSeq, Contact, routing, auth, lengths) and
    /// malformed ones are refused before anything is sent.
    pub fn with_headers<R>(
        &mut self,
        headers: &[(&str, &str)],
        action: impl FnOnce(&mut Self) -> R,
    ) -> Result<R, HeaderError> {
        for (name, value) in headers {
            check_app_header(name, value)?;
        }
        self.app_headers = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        let r = action(self);
        self.app_headers.clear();
        Ok(r)
    }

    /// Sends a MESSAGE (RFC 3428) with `body` of `content_type` to
    /// `target`, outside any call; message_sent or message_failed follows.
    pub fn message(
        &mut self,
        now: Instant,
        target: &str,
        content_type: &str,
        body: &str,
    ) -> Option<MessageId> {
        if !self.connected {
            return None;
        }
        let (messages, mut cx) = self.message_ctx(now);
        messages.send(&mut cx, target, content_type, body)
    }

    /// Sends a MESSAGE in a call's dialog; `false` when the call is not up.
    pub fn call_message(
        &mut self,
        now: Instant,
        call: CallId,
        content_type: &str,
        body: &str,
    ) -> bool {
        if !self.connected {
            return false;
        }
        let (calls, mut cx) = self.call_ctx(now);
        calls.send_in_dialog(&mut cx, call, "MESSAGE", content_type, body)
    }

    /// Sends a DTMF digit as SIP INFO (`application/dtmf-relay`), for PBXs
    /// that do not take RFC 4733 in the media; `false` when the call is
    /// not up or `digit` is not one.
    pub fn send_dtmf_info(
        &mut self,
        now: Instant,
        call: CallId,
        digit: char,
        duration_ms: u32,
    ) -> bool {
        let digit = digit.to_ascii_uppercase();
        if !self.connected || !(digit.is_ascii_digit() || "*#ABCD".contains(digit)) {
            return false;
        }
        let body = crate::message::dtmf_body(digit, duration_ms);
        let (calls, mut cx) = self.call_ctx(now);
        calls.send_in_dialog(&mut cx, call, "INFO", "application/dtmf-relay", &body)
    }

    /// Calls `target` (a SIP URI) with the SDP `offer` (the browser's
    /// `RTCPeerConnection` offer); `None` if the INVITE could not be
    /// built or there is no transport. Events follow: calling, ringing or
    /// progress, accepted, hangup.
    pub fn call(&mut self, now: Instant, target: &str, offer: &str) -> Option<CallId> {
        if !self.connected {
            return None;
        }
        let (calls, mut cx) = self.call_ctx(now);
        calls.call(&mut cx, target, offer)
    }

    /// Hangs a call up: BYE once answered, CANCEL while it rings (an
    /// incoming call not answered yet is declined with `480`).
    pub fn hangup(&mut self, now: Instant, call: CallId) {
        let connected = self.connected;
        let mark = self.events.len();
        {
            let (calls, mut cx) = self.call_ctx(now);
            if connected {
                calls.hangup(&mut cx, call);
            } else {
                calls.abandon(&mut cx, call);
            }
        }
        self.report_referrals(now, mark);
    }

    /// Follows the far end's transfer request ([`Event::Referred`]) of
    /// `call`: a new call to its target with `offer`, whose ringing and
    /// outcome the far end hears of (NOTIFYs). `None` when there is no
    /// such request waiting, or the call could not be placed (the far end
    /// hears 503).
    pub fn accept_referral(&mut self, now: Instant, call: CallId, offer: &str) -> Option<CallId> {
        if !self.connected {
            return None;
        }
        let (calls, mut cx) = self.call_ctx(now);
        calls.accept_referral(&mut cx, call, offer)
    }

    /// Refuses the far end's transfer request of `call` (it hears 603).
    pub fn decline_referral(&mut self, now: Instant, call: CallId) -> bool {
        let (calls, mut cx) = self.call_ctx(now);
        calls.decline_referral(&mut cx, call)
    }

    /// Blind-transfers a call to `target` with a REFER (RFC 3515);
    /// `false` when the call is not up or `target` is not a SIP URI.
    /// [`Event::Transfer`]s follow; the call stays up until someone hangs
    /// up (the app, usually, once the transfer succeeded).
    pub fn transfer(&mut self, now: Instant, call: CallId, target: &str) -> bool {
        if !self.connected {
            return false;
        }
        let (calls, mut cx) = self.call_ctx(now);
        calls.transfer(&mut cx, call, target)
    }

    /// Changes a call's session with a re-INVITE carrying `sdp` (hold,
    /// unhold, ICE restart); `false` while another is under way or when
    /// the call is not up. Events follow: updated or update_failed.
    pub fn update(&mut self, now: Instant, call: CallId, sdp: &str) -> bool {
        if !self.connected {
            return false;
        }
        let (calls, mut cx) = self.call_ctx(now);
        calls.update(&mut cx, call, sdp, "INVITE")
    }

    /// [`Self::update`] with an UPDATE (RFC 3311) instead of a re-INVITE:
    /// no ACK, for PBXs that prefer it.
    pub fn update_with_update(&mut self, now: Instant, call: CallId, sdp: &str) -> bool {
        if !self.connected {
            return false;
        }
        let (calls, mut cx) = self.call_ctx(now);
        calls.update(&mut cx, call, sdp, "UPDATE")
    }

    /// An incoming call rings: `180 Ringing` to the caller.
    pub fn ringing(&mut self, now: Instant, call: CallId) {
        let (calls, mut cx) = self.call_ctx(now);
        calls.ringing(&mut cx, call);
    }

    /// Answers an incoming call, or the far end's re-INVITE
    /// ([`Event::Updating`]), with `sdp` (the answer to its offer, or an
    /// offer when it had none).
    pub fn answer(&mut self, now: Instant, call: CallId, sdp: &str) {
        let (calls, mut cx) = self.call_ctx(now);
        calls.answer(&mut cx, call, sdp);
    }

    /// Declines an incoming call with `code` and `reason` (`486 Busy
    /// Here`, `603 Decline`…): the app chooses; the agent never does.
    /// During the far end's re-INVITE ([`Event::Updating`]) it refuses
    /// that change instead (`488`), and the call goes on.
    pub fn decline(&mut self, now: Instant, call: CallId, code: u16, reason: &str) {
        let (calls, mut cx) = self.call_ctx(now);
        calls.decline(&mut cx, call, code, reason);
    }

    /// The WebSocket is open: register if configured (or if a binding was
    /// held before the transport dropped), start keep-alives, and move the
    /// calls kept through a drop to this connection.
    pub fn transport_connected(&mut self, now: Instant) {
        self.connected = true;
        self.schedule_ping(now);
        let (reg, calls, _, mut cx) = self.parts(now);
        if reg.wanted() {
            reg.register(&mut cx);
        }
        calls.transport_connected(&mut cx);
    }

    /// The WebSocket closed: pending requests fail, the binding is reported
    /// lost, and everything resumes at the next `transport_connected`.
    pub fn transport_closed(&mut self, now: Instant) {
        self.connected = false;
        self.next_ping = None;
        self.pong_deadline = None;
        self.transmit.clear();
        self.txs.transport_closed();
        let keep = self.config.keep_calls_on_reconnect;
        {
            let (_, calls, messages, mut cx) = self.parts(now);
            calls.transport_closed(&mut cx, keep);
            messages.transport_closed(&mut cx);
        }
        // The registration keeps its intent: if a binding is still wanted,
        // the next transport_connected registers again.
        let (reg, mut cx) = self.ctx(now);
        reg.transport_closed(&mut cx);
    }

    /// The application asks to register (again).
    pub fn register(&mut self, now: Instant) {
        if self.connected {
            let (reg, mut cx) = self.ctx(now);
            reg.register(&mut cx);
        } else {
            self.registration.want();
        }
    }

    /// The application asks to remove the binding.
    pub fn unregister(&mut self, now: Instant) {
        let connected = self.connected;
        let (reg, mut cx) = self.ctx(now);
        if connected {
            reg.unregister(&mut cx);
        } else {
            reg.unregister_offline(&mut cx);
        }
    }

    /// One message (one WebSocket frame) arrived. A malformed message is
    /// dropped and its error returned for the shell to log; keep-alive
    /// CRLFs are handled here.
    pub fn handle_message(&mut self, now: Instant, bytes: &[u8]) -> Result<(), ParseError> {
        if !bytes.is_empty() && bytes.iter().all(|&b| b == b'\r' || b == b'\n') {
            if bytes == b"\r\n" {
                self.pong_deadline = None; // pong (RFC 5626 §3.5.1)
            } else {
                self.transmit.push(b"\r\n".to_vec()); // a ping from the server
            }
            return Ok(());
        }
        let msg = Message::parse(bytes)?;
        // Any traffic proves the flow alive.
        self.pong_deadline = None;
        let mark = self.events.len();
        if msg.is_request() {
            self.on_request(now, &msg, bytes);
        } else if msg.header_values(HeaderName::Via).count() != 1
            || !msg.via().host.eq_ignore_ascii_case(&self.id.via_host)
        {
            // RFC 3261 §8.1.3.3 and §18.1.2: a response with more than one
            // Via, or whose Via is not ours, was misrouted; drop it.
            return Err(ParseError::BadHeader("Via"));
        } else {
            match self.txs.on_response(now, &msg) {
                ResponseVerdict::Deliver(tx) => self.deliver(now, tx, Some(&msg)),
                ResponseVerdict::DeliverAndAck(tx, ack) => {
                    self.transmit.push(ack);
                    self.deliver(now, tx, Some(&msg));
                }
                ResponseVerdict::Stray => {
                    let (calls, mut cx) = self.call_ctx(now);
                    calls.on_stray(&mut cx, &msg);
                }
            }
        }
        self.report_referrals(now, mark);
        Ok(())
    }

    /// Tells the far ends that asked for transfers how the calls made for
    /// them go, from the events produced since `mark`.
    fn report_referrals(&mut self, now: Instant, mark: usize) {
        if !self.calls.has_referrals() {
            return;
        }
        let events = self.events.get(mark..).unwrap_or_default().to_vec();
        let (calls, mut cx) = self.call_ctx(now);
        calls.report_referrals(&mut cx, &events);
    }

    fn deliver(
        &mut self,
        now: Instant,
        tx: crate::transaction::TransactionId,
        msg: Option<&Message<'_>>,
    ) {
        if self.calls.owns(tx) {
            let (calls, mut cx) = self.call_ctx(now);
            calls.on_response(&mut cx, tx, msg);
            return;
        }
        if self.messages.owns(tx) {
            let (messages, mut cx) = self.message_ctx(now);
            messages.on_response(&mut cx, tx, msg);
            return;
        }
        if self.registration.owns(tx) {
            let (reg, mut cx) = self.ctx(now);
            reg.on_response(&mut cx, msg);
            if reg.state() == RegistrationState::Registered {
                let flow = reg.flow;
                if flow.flow_timer.is_some() || flow.outbound {
                    self.schedule_ping(now);
                }
            }
        }
    }

    fn on_request(&mut self, now: Instant, msg: &Message<'_>, raw: &[u8]) {
        let tx = match self.txs.on_request(now, msg, raw) {
            RequestVerdict::New(tx) => tx,
            RequestVerdict::Retransmission(Some(resp)) => {
                self.transmit.push(resp);
                return;
            }
            RequestVerdict::AckForDialog => {
                let (calls, mut cx) = self.call_ctx(now);
                calls.on_ack(&mut cx, msg);
                return;
            }
            _ => return,
        };
        if msg.method() == Some("INVITE") && msg.to().tag().is_none() {
            let (calls, mut cx) = self.call_ctx(now);
            calls.on_invite(&mut cx, tx, msg, raw);
            return;
        }
        if msg.method() == Some("CANCEL")
            && let Some(invite) = self.txs.invite_for_cancel(msg)
        {
            let (calls, mut cx) = self.call_ctx(now);
            if calls.on_cancel(&mut cx, invite) {
                let resp = response_to(msg, 200, "OK", Some(&self.to_tag)).finish(None, b"");
                if self.txs.respond(now, tx, 200, &resp) {
                    self.transmit.push(resp);
                }
                return;
            }
        }
        // A request in one of the calls' dialogs (the far end's BYE or
        // re-INVITE).
        let in_call = {
            let (calls, mut cx) = self.call_ctx(now);
            calls.on_request(&mut cx, tx, msg, raw)
        };
        match in_call {
            Some(InDialog::Respond(code, resp)) => {
                if self.txs.respond(now, tx, code, &resp) {
                    self.transmit.push(resp);
                }
                return;
            }
            Some(InDialog::Held | InDialog::Done) => return,
            None => {}
        }
        let (code, reason) = match msg.method() {
            // A request for a dialog we do not have (§12.2.2).
            Some(m) if m != "OPTIONS" && msg.to().tag().is_some() => {
                (481, "Call/Transaction Does Not Exist")
            }
            Some("OPTIONS") => (200, "OK"),
            Some("MESSAGE") => {
                self.events
                    .push(crate::message::received(msg, None, &self.id));
                (200, "OK")
            }
            Some("CANCEL") => (481, "Call/Transaction Does Not Exist"),
            _ => (501, "Not Implemented"),
        };
        let mut b = response_to(msg, code, reason, Some(&self.to_tag));
        b.header("Allow", ALLOW);
        if code == 200 {
            b.header("Accept", "application/sdp");
            b.header("Supported", "path, outbound");
        }
        b.header("User-Agent", &self.id.user_agent);
        let resp = b.finish(None, b"");
        if self.txs.respond(now, tx, code, &resp) {
            self.transmit.push(resp);
        }
    }

    /// Time has reached `now`: run whatever timers are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mark = self.events.len();
        for expiry in self.txs.handle_timeout(now) {
            if let Expiry::Timeout(tx) = expiry {
                self.deliver(now, tx, None);
            }
        }
        while let Some(bytes) = self.txs.poll_transmit() {
            self.transmit.push(bytes);
        }
        {
            let (reg, calls, _, mut cx) = self.parts(now);
            reg.handle_timeout(&mut cx);
            calls.handle_timeout(&mut cx);
        }
        if self.pong_deadline.is_some_and(|t| t <= now) {
            self.pong_deadline = None;
            self.next_ping = None;
            self.events.push(Event::KeepAliveTimeout);
        }
        if self.connected && self.next_ping.is_some_and(|t| t <= now) {
            self.transmit.push(b"\r\n\r\n".to_vec());
            if self.registration.flow.outbound && self.pong_deadline.is_none() {
                self.pong_deadline = Some(now + PONG_TIMEOUT);
            }
            self.schedule_ping(now);
        }
        self.report_referrals(now, mark);
    }

    /// Arms the next CRLF ping at 80–100 % of the interval (RFC 5626 §4.4.1),
    /// taking the registrar's Flow-Timer when it sent one.
    fn schedule_ping(&mut self, now: Instant) {
        let interval = match self.registration.flow.flow_timer {
            Some(secs) => Some(Duration::from_secs(u64::from(secs.max(1)))),
            None => self.config.keepalive_interval,
        };
        self.next_ping = interval.map(|i| {
            let ms = i.as_millis() as u64;
            now + Duration::from_millis(ms - self.rng.below(ms / 5 + 1))
        });
    }

    /// Next bytes to send on the transport, one SIP message (or keep-alive)
    /// per WebSocket frame.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.transmit.is_empty()).then(|| self.transmit.remove(0))
    }

    /// When to call [`Self::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t = earliest(self.txs.poll_timeout(), self.registration.poll_timeout());
        let t = earliest(t, self.calls.poll_timeout());
        let t = earliest(t, self.pong_deadline);
        if self.connected {
            earliest(t, self.next_ping)
        } else {
            t
        }
    }

    /// Next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        (!self.events.is_empty()).then(|| self.events.remove(0))
    }
}
