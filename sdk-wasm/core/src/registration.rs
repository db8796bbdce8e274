//! The REGISTER client (RFC 3261 §10, RFC 5626 outbound, RFC 7118).
//!
//! One registration per user agent: a fixed Call-ID and increasing CSeq
//! (RFC 3261 §10.2.4), refresh at 90 % of the interval the registrar
//! granted, 423 Interval Too Brief answered with its Min-Expires, digest
//! challenges answered once (again only when the server says `stale`), and
//! retries with backoff after failures that may pass (408, 5xx, transport).

use crate::prelude::*;
use core::time::Duration;

use crate::Instant;
use crate::auth::{AuthRound, Challenge, ChallengeKind, RequestInfo};
use crate::ctx::Ctx;
use crate::event::Event;
use crate::rand::Rng;
use crate::sip::{HeaderName, Message, MessageBuilder, Method, NameAddr, push_decimal, unquote};
use crate::time::earliest;
use crate::transaction::TransactionId;

/// Where the registration stands, as the application sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistrationState {
    /// No binding, none wanted (or guest mode).
    Unregistered,
    /// A REGISTER is on its way for a binding we do not hold yet.
    Registering,
    /// The registrar holds our binding.
    Registered,
    /// A REGISTER with expires 0 is on its way.
    Unregistering,
    /// The last attempt failed; a retry may be scheduled.
    Failed,
}

/// What kind of REGISTER is on its way, and what it already went through.
#[derive(Clone, Debug, Default)]
struct Attempt {
    unregister: bool,
    /// The challenges answered for this attempt.
    auth: AuthRound,
    /// 423 was already answered once.
    interval_raised: bool,
}

#[derive(Clone, Debug)]
struct Pending {
    tx: TransactionId,
    attempt: Attempt,
}

/// Flow facts learnt from the registrar, for keep-alives (RFC 5626 §4.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct FlowInfo {
    /// The registrar supports outbound: it will answer CRLF pings.
    pub outbound: bool,
    /// `Flow-Timer`: the server wants a keep-alive at least this often.
    pub flow_timer: Option<u32>,
    /// The relay says its media side is ICE-lite (`Sipline-Media:
    /// ice-lite`): offers and answers need not wait for ICE gathering.
    pub ice_lite: bool,
}

/// Longest backoff between retries after a failure.
const MAX_RETRY: Duration = Duration::from_secs(300);
/// First backoff step.
const BASE_RETRY: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(crate) struct Registration {
    state: RegistrationState,
    call_id: String,
    from_tag: String,
    cseq: u32,
    /// Interval asked for; raised by 423.
    expires: u32,
    pending: Option<Pending>,
    refresh_at: Option<Instant>,
    retry_at: Option<Instant>,
    failures: u32,
    /// The application wants a binding (register() called, or auto).
    wanted: bool,
    pub flow: FlowInfo,
}

impl Registration {
    /// A registration that registers on the first transport if `wanted`.
    pub fn new(rng: &mut Rng, expires: u32, wanted: bool) -> Self {
        Self {
            state: RegistrationState::Unregistered,
            call_id: rng.token(22),
            from_tag: rng.token(10),
            cseq: 0,
            expires,
            pending: None,
            refresh_at: None,
            retry_at: None,
            failures: 0,
            wanted,
            flow: FlowInfo::default(),
        }
    }

    pub fn state(&self) -> RegistrationState {
        self.state
    }

    pub fn wanted(&self) -> bool {
        self.wanted
    }

    /// The application wants a binding, with no transport to ask on yet.
    pub fn want(&mut self) {
        self.wanted = true;
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        earliest(self.refresh_at, self.retry_at)
    }

    /// The application (or the transport coming up) asks for a binding.
    pub fn register(&mut self, cx: &mut Ctx<'_>) {
        self.wanted = true;
        self.retry_at = None;
        if self.pending.as_ref().is_some_and(|p| !p.attempt.unregister) {
            return; // already on its way
        }
        if self.state != RegistrationState::Registered {
            self.set_state(RegistrationState::Registering, cx);
        }
        self.send(cx, false);
    }

    /// The application asks to remove the binding.
    pub fn unregister(&mut self, cx: &mut Ctx<'_>) {
        self.wanted = false;
        self.refresh_at = None;
        self.retry_at = None;
        let bound = matches!(
            self.state,
            RegistrationState::Registered | RegistrationState::Registering
        ) || self.pending.is_some();
        if !bound {
            self.state = RegistrationState::Unregistered;
            cx.events.push(Event::Unregistered {
                code: None,
                reason: String::from("not registered"),
            });
            return;
        }
        self.set_state(RegistrationState::Unregistering, cx);
        self.send(cx, true);
    }

    /// Unregistering with no transport: the binding (if any) was already
    /// reported lost when the transport closed; only the intent changes.
    pub fn unregister_offline(&mut self, cx: &mut Ctx<'_>) {
        self.wanted = false;
        self.retry_at = None;
        self.refresh_at = None;
        self.pending = None;
        if self.state != RegistrationState::Unregistered {
            self.state = RegistrationState::Unregistered;
            cx.events.push(Event::Unregistered {
                code: None,
                reason: String::from("not connected"),
            });
        }
    }

    pub fn handle_timeout(&mut self, cx: &mut Ctx<'_>) {
        let now = cx.now;
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if due(self.refresh_at) {
            self.refresh_at = None;
            if self.pending.is_none() {
                self.send(cx, false);
            }
        }
        if due(self.retry_at) {
            self.retry_at = None;
            if self.wanted && self.pending.is_none() {
                self.set_state(RegistrationState::Registering, cx);
                self.send(cx, false);
            }
        }
    }

    /// Whether `tx` is this registration's transaction.
    pub fn owns(&self, tx: TransactionId) -> bool {
        self.pending.as_ref().is_some_and(|p| p.tx == tx)
    }

    /// The transport went away. A binding on the old flow is as good as gone
    /// (RFC 5626 §4.4.1): report it, and register again once a new flow is
    /// up if a binding is still wanted.
    pub fn transport_closed(&mut self, cx: &mut Ctx<'_>) {
        let was = self.state;
        let pending = self.pending.take();
        self.refresh_at = None;
        self.retry_at = None;
        self.flow = FlowInfo::default();
        match was {
            RegistrationState::Registered | RegistrationState::Unregistering => {
                self.state = RegistrationState::Unregistered;
                cx.events.push(Event::Unregistered {
                    code: None,
                    reason: String::from("transport closed"),
                });
            }
            RegistrationState::Registering if pending.is_some() => {
                self.state = RegistrationState::Failed;
                cx.events.push(Event::RegistrationFailed {
                    code: 503,
                    reason: String::from("Transport Closed"),
                    retry_in: None,
                });
            }
            _ => {}
        }
    }

    /// A response for our transaction (a locally made 408 on timeout comes
    /// in as `timeout`).
    pub fn on_response(&mut self, cx: &mut Ctx<'_>, response: Option<&Message<'_>>) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let (code, reason) = match response {
            Some(r) => (r.status().unwrap_or(500), r.reason()),
            None => (408, "Request Timeout"),
        };
        if code < 200 {
            self.pending = Some(pending);
            return;
        }
        let mut attempt = pending.attempt;
        if let (401 | 407, Some(r)) = (code, response) {
            let kind = if code == 401 {
                ChallengeKind::Www
            } else {
                ChallengeKind::Proxy
            };
            let name = if code == 401 {
                HeaderName::WwwAuthenticate
            } else {
                HeaderName::ProxyAuthenticate
            };
            let challenges: Vec<Challenge> = r
                .header_lines(name)
                .filter_map(|v| Challenge::parse(kind, v))
                .collect();
            let retry = match cx.digest.as_deref_mut() {
                Some(d) => d.on_challenges(&challenges, &mut attempt.auth),
                None => false,
            };
            if retry {
                // Unregistering is authenticated like registering (RFC 3261
                // §22.2): a stale nonce must not leave the binding behind.
                self.send_with(cx, attempt);
                return;
            }
        }
        if attempt.unregister {
            self.state = RegistrationState::Unregistered;
            self.flow = FlowInfo::default();
            let code = (code >= 300).then_some(code);
            cx.events.push(Event::Unregistered {
                code,
                reason: reason.to_owned(),
            });
            return;
        }
        match (code, response) {
            (200..=299, Some(r)) => self.on_success(cx, r),
            (401 | 407, _) => self.fail(cx, code, reason, None),
            (423, Some(r)) => {
                let min = r
                    .header(HeaderName::MinExpires)
                    .and_then(|v| v.trim().parse::<u32>().ok());
                match min {
                    Some(min) if min > self.expires && !attempt.interval_raised => {
                        self.expires = min;
                        self.send_with(
                            cx,
                            Attempt {
                                interval_raised: true,
                                ..attempt
                            },
                        );
                    }
                    _ => self.fail(cx, code, reason, None),
                }
            }
            _ => {
                let retry_after = response
                    .and_then(|r| r.header(HeaderName::RetryAfter))
                    .and_then(|v| v.split([';', ' ', '(']).next())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s.min(3600)));
                let transient =
                    matches!(code, 408 | 480 | 500 | 502 | 503 | 504) || retry_after.is_some();
                // The server's Retry-After is honoured, but never below our
                // own backoff: `Retry-After: 0` must not become a busy loop.
                let delay = transient.then(|| {
                    let backoff = self.backoff(cx.rng);
                    retry_after.map_or(backoff, |r| r.max(backoff))
                });
                self.fail(cx, code, reason, delay);
            }
        }
    }

    fn on_success(&mut self, cx: &mut Ctx<'_>, r: &Message<'_>) {
        // Find our binding among those the registrar returns (it lists them
        // all): by instance id when outbound is on, else by Contact URI.
        let ours = r
            .header_values(HeaderName::Contact)
            .filter_map(NameAddr::parse)
            .find(
                |c| match (&cx.id.instance, c.params.value("+sip.instance")) {
                    (Some(mine), Some(theirs)) => unquote(theirs).trim_matches(['<', '>']) == mine,
                    _ => same_contact(c.uri_text, &cx.id.contact_uri),
                },
            );
        let granted = ours
            .and_then(|c| c.params.value("expires"))
            .and_then(|v| v.parse::<u32>().ok())
            .or_else(|| r.expires())
            .unwrap_or(self.expires);
        if granted == 0 {
            // The registrar removed the binding while answering 2xx.
            let delay = self.backoff(cx.rng);
            self.fail(cx, 500, "Registrar granted no binding", Some(delay));
            return;
        }
        self.flow = FlowInfo {
            outbound: r.lists(HeaderName::Require, "outbound")
                || r.lists(HeaderName::Supported, "outbound"),
            flow_timer: r
                .header(HeaderName::FlowTimer)
                .and_then(|v| v.trim().parse().ok()),
            ice_lite: r
                .header(HeaderName::Other("Sipline-Media"))
                .is_some_and(|v| {
                    v.split(',')
                        .any(|t| t.trim().eq_ignore_ascii_case("ice-lite"))
                }),
        };
        self.failures = 0;
        self.state = RegistrationState::Registered;
        // Refresh at 90 % of the granted interval, like JsSIP and SIP.js,
        // leaving time for a challenge round trip before the binding lapses.
        self.refresh_at = Some(cx.now + Duration::from_millis(u64::from(granted) * 900));
        cx.events.push(Event::Registered { expires: granted });
    }

    fn fail(&mut self, cx: &mut Ctx<'_>, code: u16, reason: &str, retry: Option<Duration>) {
        self.state = RegistrationState::Failed;
        self.refresh_at = None;
        if retry.is_none() {
            // A refusal (403, 404, a second 401): the credentials are bad,
            // do not hammer the registrar with them.
            self.wanted = false;
            if let Some(d) = cx.digest.as_deref_mut() {
                d.forget();
            }
        }
        self.retry_at = retry.filter(|_| self.wanted).map(|d| cx.now + d);
        cx.events.push(Event::RegistrationFailed {
            code,
            reason: reason.to_owned(),
            retry_in: self.retry_at.map(|t| t - cx.now),
        });
    }

    /// Exponential backoff with jitter: 5 s, 10 s, 20 s… up to 300 s, each
    /// between 75 % and 100 % of its step so that many clients that failed
    /// together do not retry together.
    fn backoff(&mut self, rng: &mut Rng) -> Duration {
        let step = BASE_RETRY
            .saturating_mul(1u32 << self.failures.min(6))
            .min(MAX_RETRY);
        self.failures = self.failures.saturating_add(1);
        let ms = step.as_millis() as u64;
        Duration::from_millis(ms - rng.below(ms / 4 + 1))
    }

    fn set_state(&mut self, state: RegistrationState, cx: &mut Ctx<'_>) {
        if self.state != state {
            self.state = state;
            match state {
                RegistrationState::Registering => cx.events.push(Event::Registering),
                RegistrationState::Unregistering => cx.events.push(Event::Unregistering),
                _ => {}
            }
        }
    }

    fn send(&mut self, cx: &mut Ctx<'_>, unregister: bool) {
        self.send_with(
            cx,
            Attempt {
                unregister,
                ..Attempt::default()
            },
        );
    }

    /// Builds and sends one REGISTER for `attempt`.
    fn send_with(&mut self, cx: &mut Ctx<'_>, attempt: Attempt) {
        self.cseq += 1;
        let expires = if attempt.unregister { 0 } else { self.expires };
        let raw = self.build(cx, expires);
        // The request was built here, so it parses; if it ever did not, the
        // registration must fail loudly rather than hang.
        let Ok(msg) = Message::parse(&raw) else {
            self.fail(cx, 500, "Could not build REGISTER", None);
            return;
        };
        let tx = cx.txs.start_client(cx.now, &msg, &raw);
        self.pending = Some(Pending { tx, attempt });
        cx.transmit.push(raw);
    }

    fn build(&self, cx: &mut Ctx<'_>, expires: u32) -> Vec<u8> {
        let id = cx.id;
        let mut b = MessageBuilder::request(Method::Register, &id.registrar);
        b.header("Via", &cx.via());
        b.header("Max-Forwards", "70");
        b.header_parts("To", &["<", &id.aor, ">"]);
        b.header("From", &id.from(&self.from_tag));
        b.header("Call-ID", &self.call_id);
        let mut cseq = String::with_capacity(20);
        push_decimal(&mut cseq, u64::from(self.cseq));
        cseq.push_str(" REGISTER");
        b.header("CSeq", &cseq);
        let mut exp = String::with_capacity(10);
        push_decimal(&mut exp, u64::from(expires));
        match &id.instance {
            Some(instance) => b.header_parts(
                "Contact",
                &[
                    "<",
                    &id.contact_uri,
                    ">;+sip.instance=\"<",
                    instance,
                    ">\";reg-id=1;expires=",
                    &exp,
                ],
            ),
            None => b.header_parts("Contact", &["<", &id.contact_uri, ">;expires=", &exp]),
        };
        b.header("Expires", &exp);
        b.header(
            "Supported",
            if id.instance.is_some() {
                "path, outbound"
            } else {
                "path"
            },
        );
        b.header("User-Agent", &id.user_agent);
        if let Some(d) = cx.digest.as_deref_mut() {
            let info = RequestInfo {
                method: Method::Register.as_str(),
                uri: &id.registrar,
                body: b"",
            };
            for (name, value) in d.credentials(&info, cx.rng) {
                b.header(name, &value);
            }
        }
        b.finish(None, b"")
    }
}

/// Whether a Contact URI in a response names our Contact: same user and host
/// (registrars may reorder or add parameters).
fn same_contact(theirs: &str, ours: &str) -> bool {
    let key = |s: &str| -> Option<(String, String)> {
        let u = crate::sip::Uri::parse(s)?;
        Some((
            u.user.unwrap_or_default().to_owned(),
            u.host.to_ascii_lowercase(),
        ))
    };
    key(theirs).is_some_and(|k| Some(k) == key(ours))
}
