//! The user agent: the one object a shell drives.
//!
//! Inputs: [`UserAgent::transport_connected`], [`UserAgent::handle_message`],
//! [`UserAgent::transport_closed`], [`UserAgent::handle_timeout`] and the
//! application's requests ([`UserAgent::register`],
//! [`UserAgent::unregister`]). Outputs: [`UserAgent::poll_transmit`],
//! [`UserAgent::poll_timeout`], [`UserAgent::poll_event`]. A shell loops:
//! feed an input, then drain all three outputs.

use crate::prelude::*;
use core::fmt;
use core::time::Duration;

use crate::Instant;
use crate::auth::DigestClient;
use crate::call::{ALLOW, Calls, InDialog};
use crate::config::{Config, ConfigError, HeaderError, check_app_header, validate_fields};
use crate::ctx::{Ctx, Identity};
use crate::error::ActionError;
use crate::event::Event;
use crate::ids::{CallId, MessageId};
use crate::message::Messages;
use crate::rand::Rng;
use crate::registration::{Registration, RegistrationState};
use crate::sip::{HeaderName, Message, Method, ParseError, Uri, response_to};
use crate::subscription::Subscriptions;
use crate::time::earliest;
use crate::transaction::{Expiry, RequestVerdict, ResponseVerdict, Transactions};

mod ice;
mod subscribe;

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
    subscriptions: Subscriptions,
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
            auto_ringing: config.auto_ringing,
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
            subscriptions: Subscriptions::default(),
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

    /// The registration, the calls, the messages, the subscriptions, and
    /// what they may touch.
    #[allow(clippy::type_complexity)]
    fn parts(
        &mut self,
        now: Instant,
    ) -> (
        &mut Registration,
        &mut Calls,
        &mut Messages,
        &mut Subscriptions,
        Ctx<'_>,
    ) {
        (
            &mut self.registration,
            &mut self.calls,
            &mut self.messages,
            &mut self.subscriptions,
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
        let (reg, _, _, _, cx) = self.parts(now);
        (reg, cx)
    }

    fn message_ctx(&mut self, now: Instant) -> (&mut Messages, Ctx<'_>) {
        let (_, _, messages, _, cx) = self.parts(now);
        (messages, cx)
    }

    fn call_ctx(&mut self, now: Instant) -> (&mut Calls, Ctx<'_>) {
        let (_, calls, _, _, cx) = self.parts(now);
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
        self.take_app_headers(headers)?;
        let r = action(self);
        self.app_headers.clear();
        Ok(r)
    }

    /// [`Self::with_headers`]'s checks, out of line: the generic part is
    /// copied for every action a shell exports (dozens in the SDK's wasm),
    /// this part only once.
    #[inline(never)]
    fn take_app_headers(&mut self, headers: &[(&str, &str)]) -> Result<(), HeaderError> {
        for (name, value) in headers {
            check_app_header(name, value)?;
        }
        self.app_headers = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        Ok(())
    }

    /// Sends a MESSAGE (RFC 3428) with `body` of `content_type` to
    /// `target`, outside any call; message_sent or message_failed follows.
    pub fn message(
        &mut self,
        now: Instant,
        target: &str,
        content_type: &str,
        body: &str,
    ) -> Result<MessageId, ActionError> {
        self.require_transport()?;
        let (messages, mut cx) = self.message_ctx(now);
        messages.send(&mut cx, target, content_type, body)
    }

    /// Sends a MESSAGE in a call's dialog (the call must be up).
    pub fn call_message(
        &mut self,
        now: Instant,
        call: CallId,
        content_type: &str,
        body: &str,
    ) -> Result<(), ActionError> {
        self.require_transport()?;
        let (calls, mut cx) = self.call_ctx(now);
        calls.send_in_dialog(&mut cx, call, Method::Message, content_type, body)
    }

    /// Attended transfer (RFC 5589 §7): asks the far end of `call` to call
    /// the far end of `other` (our consultation call) in its place, with
    /// Replaces; progress arrives as for [`UserAgent::transfer`], and
    /// `other`'s far end ends its call with us once replaced.
    pub fn transfer_replacing(
        &mut self,
        now: Instant,
        call: CallId,
        other: CallId,
    ) -> Result<(), ActionError> {
        self.require_transport()?;
        let (calls, mut cx) = self.call_ctx(now);
        calls.transfer_replacing(&mut cx, call, other)
    }

    /// Sends an INFO with `body` of `content_type` in a call (the call must
    /// be up); [`Event::InfoAnswered`] with the returned id follows.
    pub fn info(
        &mut self,
        now: Instant,
        call: CallId,
        content_type: &str,
        body: &str,
    ) -> Result<MessageId, ActionError> {
        self.require_transport()?;
        let (calls, mut cx) = self.call_ctx(now);
        calls.send_info(&mut cx, call, content_type, body)
    }

    /// Asks the far end to start (`on`) or stop recording `call` (the call
    /// must be up): an INFO with `Record: on|off`, which the relay answers
    /// when it records on demand; [`Event::Recording`] with the returned
    /// id follows.
    pub fn record(
        &mut self,
        now: Instant,
        call: CallId,
        on: bool,
    ) -> Result<MessageId, ActionError> {
        self.require_transport()?;
        let (calls, mut cx) = self.call_ctx(now);
        calls.send_record(&mut cx, call, on)
    }

    /// Sends a DTMF digit as SIP INFO (`application/dtmf-relay`), for PBXs
    /// that do not take RFC 4733 in the media (the call must be up).
    pub fn send_dtmf_info(
        &mut self,
        now: Instant,
        call: CallId,
        digit: char,
        duration_ms: u32,
    ) -> Result<(), ActionError> {
        let upper = digit.to_ascii_uppercase();
        if !matches!(upper, '0'..='9' | '*' | '#' | 'A'..='D') {
            return Err(ActionError::BadDigit(digit));
        }
        self.require_transport()?;
        let body = crate::message::dtmf_body(upper, duration_ms);
        let (calls, mut cx) = self.call_ctx(now);
        calls.send_in_dialog(&mut cx, call, Method::Info, "application/dtmf-relay", &body)
    }

    /// Calls `target` (a SIP URI) with the SDP `offer` (the browser's
    /// `RTCPeerConnection` offer). Events follow: calling, ringing or
    /// progress, accepted, hangup.
    pub fn call(&mut self, now: Instant, target: &str, offer: &str) -> Result<CallId, ActionError> {
        self.require_transport()?;
        let (calls, mut cx) = self.call_ctx(now);
        calls.call(&mut cx, target, offer)
    }

    /// Hangs a call up: BYE once answered, CANCEL while it rings (an
    /// incoming call not answered yet is declined with `480`). Without a
    /// transport, the call ends here and now.
    pub fn hangup(&mut self, now: Instant, call: CallId) -> Result<(), ActionError> {
        self.require_call(call)?;
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
        Ok(())
    }

    /// Follows the far end's transfer request ([`Event::Referred`]) of
    /// `call`: a new call to its target with `offer`, whose ringing and
    /// outcome the far end hears of (NOTIFYs). When the new call cannot be
    /// placed, the far end hears 503.
    pub fn accept_referral(
        &mut self,
        now: Instant,
        call: CallId,
        offer: &str,
    ) -> Result<CallId, ActionError> {
        self.require_transport()?;
        let (calls, mut cx) = self.call_ctx(now);
        calls.accept_referral(&mut cx, call, offer)
    }

    /// Refuses the far end's transfer request of `call` (it hears 603).
    pub fn decline_referral(&mut self, now: Instant, call: CallId) -> Result<(), ActionError> {
        let (calls, mut cx) = self.call_ctx(now);
        calls.decline_referral(&mut cx, call)
    }

    /// Blind-transfers a call to `target` with a REFER (RFC 3515); the
    /// call must be up. [`Event::Transfer`]s follow; the call stays up
    /// until someone hangs up (the app, usually, once the transfer
    /// succeeded).
    pub fn transfer(
        &mut self,
        now: Instant,
        call: CallId,
        target: &str,
    ) -> Result<(), ActionError> {
        self.require_transport()?;
        let (calls, mut cx) = self.call_ctx(now);
        calls.transfer(&mut cx, call, target)
    }

    /// Changes a call's session with a re-INVITE carrying `sdp` (hold,
    /// unhold, ICE restart); the call must be up, with no other change
    /// under way. Events follow: updated or update_failed.
    pub fn update(&mut self, now: Instant, call: CallId, sdp: &str) -> Result<(), ActionError> {
        self.require_transport()?;
        let (calls, mut cx) = self.call_ctx(now);
        calls.update(&mut cx, call, sdp, Method::Invite)
    }

    /// [`Self::update`] with an UPDATE (RFC 3311) instead of a re-INVITE:
    /// no ACK, for PBXs that prefer it.
    pub fn update_with_update(
        &mut self,
        now: Instant,
        call: CallId,
        sdp: &str,
    ) -> Result<(), ActionError> {
        self.require_transport()?;
        let (calls, mut cx) = self.call_ctx(now);
        calls.update(&mut cx, call, sdp, Method::Update)
    }

    /// Whether `target` can be called as given (a SIP URI that cannot forge
    /// the start line): the check [`Self::call`] makes, for an application
    /// that refuses a bad argument before it asks for the microphone.
    pub fn check_target(target: &str) -> Result<(), ActionError> {
        if crate::input::safe_target(target) {
            Ok(())
        } else {
            Err(ActionError::BadTarget("target"))
        }
    }

    /// Reserves a call's next change for an offer the application is about
    /// to make (the browser's `createOffer` takes a while): until
    /// [`Self::update`] sends it or [`Self::abandon_update`] drops it, the
    /// far end's own offers get `491` and other changes are refused with
    /// [`ActionError::ChangePending`]. Returns whether the offer must hold
    /// the call: `hold` when given, else as the call is now.
    pub fn begin_update(&mut self, call: CallId, hold: Option<bool>) -> Result<bool, ActionError> {
        self.require_transport()?;
        self.calls.begin_update(call)?;
        Ok(hold.unwrap_or_else(|| self.calls.held(call)))
    }

    /// The offer reserved with [`Self::begin_update`] will not come (the
    /// browser could not make it).
    pub fn abandon_update(&mut self, call: CallId) {
        self.calls.abandon_update(call);
    }

    /// The browser cannot take the far end's offer of `call` (in its
    /// INVITE or in a change of the call): refused with `488 Not
    /// Acceptable Here`, and a change leaves the call as it was.
    pub fn refuse_offer(&mut self, now: Instant, call: CallId) -> Result<(), ActionError> {
        self.decline(now, call, 488, "Not Acceptable Here")
    }

    /// Whether we hold `call` (our last offer the far end took was
    /// `sendonly` or `inactive`).
    pub fn held(&self, call: CallId) -> bool {
        self.calls.held(call)
    }

    /// An incoming call rings: `180 Ringing` to the caller (nothing once
    /// it is answered, or when its INVITE asks for reliable provisional
    /// responses).
    pub fn ringing(&mut self, now: Instant, call: CallId) -> Result<(), ActionError> {
        self.require_call(call)?;
        let (calls, mut cx) = self.call_ctx(now);
        calls.ringing(&mut cx, call);
        Ok(())
    }

    /// Answers an incoming call, or the far end's re-INVITE
    /// ([`Event::Updating`]), with `sdp` (the answer to its offer, or an
    /// offer when it had none).
    pub fn answer(&mut self, now: Instant, call: CallId, sdp: &str) -> Result<(), ActionError> {
        self.require_call(call)?;
        let (calls, mut cx) = self.call_ctx(now);
        calls.answer(&mut cx, call, sdp);
        Ok(())
    }

    /// The status an incoming call is declined with when the application
    /// names none: 486 Busy Here, as JsSIP and SIP.js do.
    pub const DECLINE_CODE: u16 = 486;

    /// Declines an incoming call with `code` (300 to 699) and `reason`
    /// (`486 Busy Here`, `603 Decline`…): the app chooses; the agent never
    /// does. During the far end's re-INVITE ([`Event::Updating`]) it
    /// refuses that change instead (`488`), and the call goes on.
    pub fn decline(
        &mut self,
        now: Instant,
        call: CallId,
        code: u16,
        reason: &str,
    ) -> Result<(), ActionError> {
        if !(300..=699).contains(&code) {
            return Err(ActionError::BadCode(code));
        }
        if !crate::input::safe_text(reason) {
            return Err(ActionError::BadText("reason"));
        }
        self.require_call(call)?;
        let (calls, mut cx) = self.call_ctx(now);
        calls.decline(&mut cx, call, code, reason);
        Ok(())
    }

    fn require_transport(&self) -> Result<(), ActionError> {
        if self.connected {
            Ok(())
        } else {
            Err(ActionError::NotConnected)
        }
    }

    fn require_call(&self, call: CallId) -> Result<(), ActionError> {
        if self.calls.knows(call) {
            Ok(())
        } else {
            Err(ActionError::NoSuchCall(call))
        }
    }

    /// The WebSocket is open: register if configured (or if a binding was
    /// held before the transport dropped), start keep-alives, and move the
    /// calls kept through a drop to this connection.
    pub fn transport_connected(&mut self, now: Instant) {
        self.connected = true;
        self.schedule_ping(now);
        let (reg, calls, _, subs, mut cx) = self.parts(now);
        if reg.wanted() {
            reg.register(&mut cx);
        }
        calls.transport_connected(&mut cx);
        subs.transport_connected(&mut cx);
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
            let (_, calls, messages, subs, mut cx) = self.parts(now);
            calls.transport_closed(&mut cx, keep);
            messages.transport_closed(&mut cx);
            subs.transport_closed();
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
        let progress: Vec<(CallId, u16, String)> = self
            .events
            .get(mark..)
            .unwrap_or_default()
            .iter()
            .filter_map(crate::call::refer::referral_progress)
            .map(|(call, code, reason)| (call, code, reason.to_owned()))
            .collect();
        let (calls, mut cx) = self.call_ctx(now);
        calls.report_referrals(&mut cx, &progress);
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
        if self.subscriptions.owns(tx) {
            let (_, _, _, subs, mut cx) = self.parts(now);
            subs.on_response(&mut cx, tx, msg);
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
        if msg.method() == Some(Method::Invite) && msg.to().tag().is_none() {
            let (calls, mut cx) = self.call_ctx(now);
            calls.on_invite(&mut cx, tx, msg, raw);
            return;
        }
        if msg.method() == Some(Method::Cancel)
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
        if msg.method() == Some(Method::Notify) {
            let (_, _, _, subs, mut cx) = self.parts(now);
            if subs.on_notify(&mut cx, tx, msg) {
                return;
            }
        }
        let (code, reason) = match msg.method() {
            // A request for a dialog we do not have (§12.2.2).
            Some(m) if m != Method::Options && msg.to().tag().is_some() => {
                (481, "Call/Transaction Does Not Exist")
            }
            Some(Method::Options) => (200, "OK"),
            Some(Method::Message) => {
                self.events
                    .push(crate::message::received(msg, None, &self.id));
                (200, "OK")
            }
            Some(Method::Cancel) => (481, "Call/Transaction Does Not Exist"),
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
            let (reg, calls, _, subs, mut cx) = self.parts(now);
            reg.handle_timeout(&mut cx);
            calls.handle_timeout(&mut cx);
            subs.handle_timeout(&mut cx);
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
        let t = earliest(t, self.subscriptions.poll_timeout());
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
