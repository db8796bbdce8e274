//! The embedded mini PBX: a registrar with digest authentication for the
//! users in the configuration, and the lookup that lets its registered
//! browsers call each other. With it, the relay needs no PBX at all (the
//! demo runs on it).
//!
//! Bindings belong to WebSocket connections: a binding whose connection
//! closed is gone at once (as with Kamailio's `handle_lost_tcp`), so a call
//! never goes to a browser that left.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use sipline_core::Instant;
use sipline_core::auth::verify;
use sipline_core::sip::{
    AuthParams, HeaderName, Message, MessageBuilder, Method, NameAddr, Uri, response_to,
};

use super::FlowKey;
use crate::ids::ConnId;

/// A user's password: never shown by `Debug`.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(transparent)]
pub struct Password(pub String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

/// The mini PBX's configuration.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddedPbx {
    /// The SIP domain and digest realm.
    pub domain: String,
    /// (user name, password).
    pub users: Vec<(String, Password)>,
}

/// Reserved extension names: not users, and not routable yet.
pub const ECHO_EXTENSION: &str = "echo";

/// Shortest registration accepted (shorter: 423 with this Min-Expires).
const MIN_EXPIRES: u32 = 60;
/// Longest registration granted.
const MAX_EXPIRES: u32 = 3600;
/// Nonces older than this are stale.
const NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// Bindings kept per user; the oldest goes first.
const MAX_BINDINGS_PER_USER: usize = 10;

#[derive(Clone, Debug)]
struct Binding {
    conn: ConnId,
    /// The browser's own Contact URI.
    contact: String,
    /// Its header parameters (`+sip.instance`, `reg-id`), echoed in 200s.
    params: String,
    expires_at: Instant,
}

/// Where an initial request goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// To this connection, with this Request-URI.
    Browser { conn: ConnId, uri: String },
    /// Answered here.
    Reply { code: u16, reason: &'static str },
    /// To the echo extension, which the relay answers itself.
    Echo,
}

/// What a REGISTER did, for the admin stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RegisterOutcome {
    Registered(String),
    Unregistered(String),
    Refused,
}

/// The registrar and location service.
#[derive(Debug)]
pub(crate) struct MiniPbx {
    cfg: EmbeddedPbx,
    bindings: HashMap<String, Vec<Binding>>,
}

/// Why credentials were not accepted.
enum AuthFailure {
    /// None for our realm, or a stale nonce: challenge (again).
    Challenge { stale: bool },
    /// Wrong password, unknown user, or someone else's name.
    Forbidden,
}

impl MiniPbx {
    pub fn new(cfg: EmbeddedPbx) -> Self {
        Self {
            cfg,
            bindings: HashMap::new(),
        }
    }

    /// Whether `user` is one of ours.
    pub fn knows(&self, user: &str) -> bool {
        self.password(user).is_some()
    }

    fn password(&self, user: &str) -> Option<&str> {
        self.cfg
            .users
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, p)| p.0.as_str())
    }

    /// A nonce that carries its own time and a MAC over it, so that the
    /// registrar keeps no nonce state: `<seconds in hex>.<mac>`.
    ///
    /// The MAC also covers the connection: a nonce answered on one
    /// WebSocket is worthless on another, so credentials that leak (to a
    /// callee, or off an unencrypted socket) cannot be replayed elsewhere.
    fn nonce(&self, key: &FlowKey, now: Instant, conn: ConnId) -> String {
        let secs = format!("{:x}", now.as_millis() / 1000);
        let mac = key.digest(&[b"nonce|", secs.as_bytes(), b"|", key.token(conn).as_bytes()]);
        format!("{secs}.{mac}")
    }

    /// `Ok(true)` fresh, `Ok(false)` stale, `Err` forged or another
    /// connection's.
    fn nonce_fresh(
        &self,
        key: &FlowKey,
        now: Instant,
        conn: ConnId,
        nonce: &str,
    ) -> Result<bool, ()> {
        let (secs, mac) = nonce.split_once('.').ok_or(())?;
        let expected = key.digest(&[b"nonce|", secs.as_bytes(), b"|", key.token(conn).as_bytes()]);
        let same = expected.len() == mac.len()
            && expected
                .bytes()
                .zip(mac.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !same {
            return Err(());
        }
        let issued = u64::from_str_radix(secs, 16).map_err(|_| ())?;
        Ok(now.as_millis() / 1000 <= issued + NONCE_LIFETIME.as_secs())
    }

    /// Checks the credentials in `header` for `user` (who must be the one
    /// they name).
    fn authenticate(
        &self,
        key: &FlowKey,
        now: Instant,
        conn: ConnId,
        msg: &Message<'_>,
        header: HeaderName<'static>,
        user: &str,
    ) -> Result<(), AuthFailure> {
        let ours = msg
            .header_lines(header)
            .filter_map(AuthParams::parse)
            .find(|p| p.get("realm").is_some_and(|r| r == self.cfg.domain));
        let Some(params) = ours else {
            return Err(AuthFailure::Challenge { stale: false });
        };
        let nonce = params.get("nonce").unwrap_or_default();
        match self.nonce_fresh(key, now, conn, &nonce) {
            Err(()) => return Err(AuthFailure::Challenge { stale: false }),
            Ok(false) => return Err(AuthFailure::Challenge { stale: true }),
            Ok(true) => {}
        }
        let username = params.get("username").unwrap_or_default();
        let Some(password) = self.password(&username) else {
            return Err(AuthFailure::Forbidden);
        };
        let method = msg.method_name().unwrap_or_default();
        // The answer must be for this very request (RFC 7616 §3.4.6) and
        // use qop, which brings the client nonce (no downgrade to RFC 2069).
        let for_this_request = params.get("uri").as_deref() == msg.request_uri();
        let with_qop = params.get("qop").is_some();
        if username != user
            || !for_this_request
            || !with_qop
            || !verify(&params, method, password, msg.body())
        {
            return Err(AuthFailure::Forbidden);
        }
        Ok(())
    }

    /// The `401`/`407` challenge: SHA-256 first, MD5 for older clients
    /// (RFC 8760 §2.4: in order of preference).
    fn challenge(
        &self,
        key: &FlowKey,
        now: Instant,
        conn: ConnId,
        msg: &Message<'_>,
        proxy: bool,
        stale: bool,
    ) -> Vec<u8> {
        let (code, reason, header) = if proxy {
            (407, "Proxy Authentication Required", "Proxy-Authenticate")
        } else {
            (401, "Unauthorized", "WWW-Authenticate")
        };
        let mut b = response_to(msg, code, reason, Some("pbx"));
        let nonce = self.nonce(key, now, conn);
        let stale = if stale { ", stale=true" } else { "" };
        for alg in ["SHA-256", "MD5"] {
            b.header(
                header,
                &format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", qop=\"auth\", algorithm={alg}{stale}",
                    self.cfg.domain
                ),
            );
        }
        b.finish(None, b"")
    }

    fn live(&self, user: &str, now: Instant) -> impl Iterator<Item = &Binding> {
        self.bindings
            .get(user)
            .into_iter()
            .flatten()
            .filter(move |b| b.expires_at > now)
    }

    /// Handles a REGISTER from `conn`; returns the answer and what changed.
    pub fn register(
        &mut self,
        key: &FlowKey,
        now: Instant,
        conn: ConnId,
        msg: &Message<'_>,
        ice_lite: bool,
    ) -> (Vec<u8>, RegisterOutcome) {
        let aor = msg.to().uri;
        let user = aor.user.unwrap_or_default().to_owned();
        let refuse = |code, reason| {
            (
                response_to(msg, code, reason, Some("pbx")).finish(None, b""),
                RegisterOutcome::Refused,
            )
        };
        // Unknown users are challenged like known ones and then refused,
        // so that the registrar does not tell who exists.
        if !aor.host.eq_ignore_ascii_case(&self.cfg.domain) {
            return refuse(404, "Not Found");
        }
        match self.authenticate(key, now, conn, msg, HeaderName::Authorization, &user) {
            Ok(()) => {}
            Err(AuthFailure::Challenge { stale }) => {
                return (
                    self.challenge(key, now, conn, msg, false, stale),
                    RegisterOutcome::Refused,
                );
            }
            Err(AuthFailure::Forbidden) => return refuse(403, "Forbidden"),
        }
        let default_expires = msg.expires().unwrap_or(MAX_EXPIRES);
        let contacts: Vec<&str> = msg.header_values(HeaderName::Contact).collect();
        if contacts.len() > 1 && contacts.contains(&"*") {
            return refuse(400, "Wildcard Contact Must Stand Alone");
        }
        if contacts == ["*"] {
            if default_expires != 0 {
                return refuse(400, "Wildcard Contact Needs Expires 0");
            }
            self.bindings.remove(&user);
        }
        for value in contacts.iter().filter(|v| **v != "*") {
            let Some(na) = NameAddr::parse(value) else {
                return refuse(400, "Malformed Contact");
            };
            let expires = na
                .params
                .value("expires")
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(default_expires);
            if expires != 0 && expires < MIN_EXPIRES {
                let mut b = response_to(msg, 423, "Interval Too Brief", Some("pbx"));
                b.header("Min-Expires", &MIN_EXPIRES.to_string());
                return (b.finish(None, b""), RegisterOutcome::Refused);
            }
            let list = self.bindings.entry(user.clone()).or_default();
            list.retain(|b| !(b.conn == conn && b.contact == na.uri_text));
            if expires > 0 {
                let params: String = na
                    .params
                    .iter()
                    .filter(|(n, _)| !n.eq_ignore_ascii_case("expires"))
                    .map(|(n, v)| v.map_or_else(|| format!(";{n}"), |v| format!(";{n}={v}")))
                    .collect();
                list.push(Binding {
                    conn,
                    contact: na.uri_text.to_owned(),
                    params,
                    expires_at: now + Duration::from_secs(u64::from(expires.min(MAX_EXPIRES))),
                });
                while list.len() > MAX_BINDINGS_PER_USER {
                    list.remove(0);
                }
            }
        }
        let aor_text = msg.to().uri_text.to_owned();
        let mut b = response_to(msg, 200, "OK", Some("pbx"));
        let mut ours = false;
        for binding in self.live(&user, now) {
            let left = (binding.expires_at - now).as_secs();
            b.header(
                "Contact",
                &format!("<{}>;expires={left}{}", binding.contact, binding.params),
            );
            ours |= binding.conn == conn;
        }
        let outcome = if ours {
            RegisterOutcome::Registered(aor_text)
        } else {
            RegisterOutcome::Unregistered(aor_text)
        };
        // With media, the echo is the relay's ICE-lite side; a browser's
        // call to another browser is answered with full ICE, and the SDK
        // then sends its candidates in a re-INVITE (its core's
        // `CandidatesNeeded`), so offers need not wait either way.
        if ice_lite && ours {
            b.header(super::ICE_LITE_HEADER.0, super::ICE_LITE_HEADER.1);
        }
        (b.finish(None, b""), outcome)
    }

    /// Checks who sends an initial non-REGISTER request: a browser whose
    /// connection holds a binding for the From user is known; anyone else
    /// must answer a `407` (RFC 3261 §22.3). ACK and CANCEL cannot be
    /// challenged and pass. Returns the refusal to send, if any.
    pub fn admit(
        &self,
        key: &FlowKey,
        now: Instant,
        conn: ConnId,
        msg: &Message<'_>,
    ) -> Option<Vec<u8>> {
        if matches!(msg.method(), Some(Method::Ack | Method::Cancel)) {
            return None;
        }
        // OPTIONS to the domain itself is a keep-alive probe: open to all.
        let to_domain = msg
            .request_uri()
            .and_then(Uri::parse)
            .is_some_and(|u| u.user.is_none());
        if to_domain && msg.method() == Some(Method::Options) {
            return None;
        }
        let user = msg.from().uri.user.unwrap_or_default();
        if self.live(user, now).any(|b| b.conn == conn) {
            return None;
        }
        match self.authenticate(key, now, conn, msg, HeaderName::ProxyAuthorization, user) {
            Ok(()) => None,
            Err(AuthFailure::Challenge { stale }) => {
                Some(self.challenge(key, now, conn, msg, true, stale))
            }
            Err(AuthFailure::Forbidden) => {
                Some(response_to(msg, 403, "Forbidden", Some("pbx")).finish(None, b""))
            }
        }
    }

    /// Where an initial request for one of our users goes.
    pub fn route(&self, now: Instant, msg: &Message<'_>) -> Route {
        let Some(uri) = msg.request_uri().and_then(Uri::parse) else {
            return Route::Reply {
                code: 416,
                reason: "Unsupported URI Scheme",
            };
        };
        let Some(user) = uri.user else {
            // A request for the domain itself: keep-alive probes.
            return match msg.method() {
                Some(Method::Options) => Route::Reply {
                    code: 200,
                    reason: "OK",
                },
                _ => Route::Reply {
                    code: 484,
                    reason: "Address Incomplete",
                },
            };
        };
        if user == ECHO_EXTENSION {
            return Route::Echo;
        }
        if self.password(user).is_none() {
            return Route::Reply {
                code: 404,
                reason: "Not Found",
            };
        }
        // The most recent live binding takes the call (no forking).
        match self.live(user, now).max_by_key(|b| b.expires_at) {
            Some(b) => Route::Browser {
                conn: b.conn,
                uri: b.contact.clone(),
            },
            None => Route::Reply {
                code: 480,
                reason: "Temporarily Unavailable",
            },
        }
    }

    /// A connection closed: its bindings are gone.
    pub fn connection_closed(&mut self, conn: ConnId) {
        for list in self.bindings.values_mut() {
            list.retain(|b| b.conn != conn);
        }
        self.bindings.retain(|_, l| !l.is_empty());
    }
}

/// A response with Allow and the reason, for requests answered here.
pub(crate) fn reply(msg: &Message<'_>, code: u16, reason: &str) -> Vec<u8> {
    let mut b: MessageBuilder = response_to(msg, code, reason, Some("pbx"));
    if code == 200 {
        b.header(
            "Allow",
            "INVITE, ACK, CANCEL, BYE, OPTIONS, MESSAGE, INFO, UPDATE, REFER, NOTIFY, SUBSCRIBE",
        );
    }
    b.finish(None, b"")
}
