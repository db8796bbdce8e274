//! The user agent (`sipline_core::UserAgent`) driven like a shell drives
//! it: frames from the server (raw, mutated corpus messages, well-formed
//! answers to the requests it sent, and the far end's requests in and out
//! of its dialogs), the application's calls, time, and the WebSocket
//! closing and opening again.
//!
//! Oracles, beyond "no panic":
//! - everything it transmits is a CRLF keep-alive or parses with
//!   `Message::parse`;
//! - `poll_timeout` says when to call `handle_timeout` next: right after
//!   `handle_timeout(now)` it is `None` or later than `now`, else a shell
//!   that sleeps until it would spin.

#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sipline_core::CallId;
use sipline_core::sip::{HeaderName, Message, MessageBuilder, response_to};
use sipline_core::{Config, Event, Instant, Secret, UserAgent};
use sipline_fuzz::bodies::Sdp;
use sipline_fuzz::corpus::Mutated;
use sipline_fuzz::oracle::{assert_sip, is_keepalive};
use sipline_fuzz::status::Status;
use sipline_fuzz::{Dialog, remember};

/// Requests and dialogs remembered to answer and to talk in.
const REMEMBERED: usize = 8;

/// The configuration, within what `Config` documents as valid.
#[derive(Arbitrary, Debug)]
struct Setup {
    register: bool,
    outbound: bool,
    password: bool,
    secure: bool,
    keep_calls_on_reconnect: bool,
    /// CRLF keep-alive period in seconds (at least 1), or none.
    keepalive: Option<u8>,
    /// Session interval asked for (90 s at least), or none.
    session_expires: Option<u16>,
    /// Registration interval (1 s at least).
    register_expires: u16,
    seed: [u8; 4],
}

impl Setup {
    fn config(&self) -> Config {
        let mut c = Config::new("sip:alice@pbx.example");
        c.display_name = Some("Alice \"A\"".into());
        c.register = self.register;
        c.outbound = self.outbound;
        c.password = self.password.then(|| Secret::new("alice-secret"));
        c.secure = self.secure;
        c.keep_calls_on_reconnect = self.keep_calls_on_reconnect;
        c.keepalive_interval = self
            .keepalive
            .map(|s| Duration::from_secs(u64::from(s.max(1))));
        c.session_expires = self.session_expires.map(|s| u32::from(s).max(90));
        c.register_expires = u32::from(self.register_expires.max(1));
        c.incoming_header_prefixes = vec!["X-".into()];
        c
    }
}

/// The far end's tag: none, or one of two (two forks of one INVITE).
#[derive(Arbitrary, Clone, Copy, Debug)]
enum Tag {
    None,
    A,
    B,
}

impl Tag {
    fn text(self) -> Option<&'static str> {
        match self {
            Tag::None => None,
            Tag::A => Some("farA"),
            Tag::B => Some("farB"),
        }
    }
}

/// Digest algorithms a challenge may name.
#[derive(Arbitrary, Clone, Copy, Debug)]
enum Algorithm {
    Md5,
    Md5Sess,
    Sha256,
    Sha512_256,
    Unknown,
}

/// Headers the agent reads, with values it acts on.
#[derive(Arbitrary, Clone, Debug)]
enum Extra {
    /// The far end's Contact.
    Contact,
    /// A Contact for the agent's own binding (a REGISTER's 200).
    Binding {
        expires: u32,
    },
    RecordRoute,
    /// A reliable provisional response (RFC 3262).
    Reliable {
        rseq: u32,
    },
    SessionExpires {
        secs: u16,
        refresher_uac: bool,
    },
    MinSe(u16),
    Expires(u32),
    MinExpires(u32),
    FlowTimer(u16),
    RetryAfter(u16),
    Challenge {
        proxy: bool,
        algorithm: Algorithm,
        qop: bool,
        stale: bool,
        nonce: u8,
    },
    Supported,
    ReferTo(Target),
    ReferredBy,
    Event {
        refer: bool,
    },
    SubscriptionState {
        terminated: bool,
    },
    RAck {
        rseq: u32,
        cseq: u32,
    },
    /// A header the application asked to see.
    XHeader(String),
    Custom {
        name: String,
        value: String,
    },
}

impl Extra {
    fn write(&self, b: &mut MessageBuilder, contact: &str) {
        match self {
            Extra::Contact => {
                b.header("Contact", "<sip:far@192.0.2.50:5060;transport=ws>");
            }
            Extra::Binding { expires } => {
                b.header_parts(
                    "Contact",
                    &["<", contact, ">;expires=", &expires.to_string()],
                );
            }
            Extra::RecordRoute => {
                b.header("Record-Route", "<sip:proxy.example;lr>");
            }
            Extra::Reliable { rseq } => {
                b.header("Require", "100rel")
                    .header("RSeq", &rseq.to_string());
            }
            Extra::SessionExpires {
                secs,
                refresher_uac,
            } => {
                let who = if *refresher_uac { "uac" } else { "uas" };
                b.header_parts("Session-Expires", &[&secs.to_string(), ";refresher=", who])
                    .header("Require", "timer");
            }
            Extra::MinSe(v) => {
                b.header("Min-SE", &v.to_string());
            }
            Extra::Expires(v) => {
                b.header("Expires", &v.to_string());
            }
            Extra::MinExpires(v) => {
                b.header("Min-Expires", &v.to_string());
            }
            Extra::FlowTimer(v) => {
                b.header("Flow-Timer", &v.to_string());
            }
            Extra::RetryAfter(v) => {
                b.header("Retry-After", &v.to_string());
            }
            Extra::Challenge {
                proxy,
                algorithm,
                qop,
                stale,
                nonce,
            } => {
                let name = if *proxy {
                    "Proxy-Authenticate"
                } else {
                    "WWW-Authenticate"
                };
                let alg = match algorithm {
                    Algorithm::Md5 => "MD5",
                    Algorithm::Md5Sess => "MD5-sess",
                    Algorithm::Sha256 => "SHA-256",
                    Algorithm::Sha512_256 => "SHA-512-256",
                    Algorithm::Unknown => "SHA-1",
                };
                let nonce = nonce.to_string();
                b.header_parts(
                    name,
                    &[
                        "Digest realm=\"pbx.example\", nonce=\"n",
                        &nonce,
                        "\", algorithm=",
                        alg,
                        if *qop { ", qop=\"auth\"" } else { "" },
                        if *stale { ", stale=true" } else { "" },
                    ],
                );
            }
            Extra::Supported => {
                b.header("Supported", "100rel, timer, outbound, path");
            }
            Extra::ReferTo(target) => {
                b.header_parts("Refer-To", &["<", &target.uri(), ">"]);
            }
            Extra::ReferredBy => {
                b.header("Referred-By", "<sip:carol@pbx.example>");
            }
            Extra::Event { refer } => {
                b.header("Event", if *refer { "refer" } else { "presence" });
            }
            Extra::SubscriptionState { terminated } => {
                b.header(
                    "Subscription-State",
                    if *terminated {
                        "terminated;reason=noresource"
                    } else {
                        "active;expires=60"
                    },
                );
            }
            Extra::RAck { rseq, cseq } => {
                b.header_parts(
                    "RAck",
                    &[&rseq.to_string(), " ", &cseq.to_string(), " INVITE"],
                );
            }
            Extra::XHeader(value) => {
                b.header("X-Fuzz", value);
            }
            Extra::Custom { name, value } => {
                b.header(name, value);
            }
        }
    }
}

/// Whom the application calls, transfers or messages.
#[derive(Arbitrary, Clone, Debug)]
enum Target {
    Bob,
    Pbx,
    Any(String),
}

impl Target {
    fn uri(&self) -> String {
        match self {
            Target::Bob => "sip:bob@pbx.example".into(),
            Target::Pbx => "sip:1001@192.0.2.50:5060;transport=udp".into(),
            Target::Any(s) => s.clone(),
        }
    }
}

/// A body of the far end's request.
#[derive(Arbitrary, Clone, Debug)]
enum RequestBody {
    Sdp(Sdp),
    Dtmf { digit: u8, duration: u16 },
    Sipfrag(Status),
    Text(String),
}

impl RequestBody {
    fn render(&self) -> (&'static str, Vec<u8>) {
        match self {
            RequestBody::Sdp(sdp) => ("application/sdp", sdp.bytes()),
            RequestBody::Dtmf { digit, duration } => (
                "application/dtmf-relay",
                format!("Signal={}\r\nDuration={duration}\r\n", char::from(*digit)).into_bytes(),
            ),
            RequestBody::Sipfrag(status) => (
                "message/sipfrag;version=2.0",
                format!("SIP/2.0 {} Fuzz\r\n", status.code()).into_bytes(),
            ),
            RequestBody::Text(t) => ("text/plain", t.clone().into_bytes()),
        }
    }
}

/// Methods the far end sends.
#[derive(Arbitrary, Clone, Copy, Debug)]
enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Info,
    Update,
    Prack,
    Notify,
    Refer,
    Message,
    Subscribe,
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Subscribe => "SUBSCRIBE",
        }
    }
}

/// The far end's answer to one of the last requests the agent sent.
#[derive(Arbitrary, Debug)]
struct Reply {
    /// Which request, newest first (wrapped).
    which: u8,
    status: Status,
    tag: Tag,
    extras: Vec<Extra>,
    sdp: Option<Sdp>,
}

/// A request from the far end.
#[derive(Arbitrary, Debug)]
struct Incoming {
    method: Method,
    /// In one of the dialogs seen (wrapped), or outside any (a new call
    /// whose Call-ID and From tag follow from `branch`).
    dialog: Option<u8>,
    /// The Via branch: equal ones are retransmissions, or a CANCEL's
    /// INVITE.
    branch: u8,
    /// Our tag when the dialog's far side has none yet.
    tag: Tag,
    cseq: u16,
    extras: Vec<Extra>,
    body: Option<RequestBody>,
}

/// Which call an application call names.
#[derive(Arbitrary, Clone, Copy, Debug)]
enum Pick {
    /// One the events named (wrapped).
    Seen(u8),
    Raw(u32),
}

/// What the application asks for.
#[derive(Arbitrary, Debug)]
enum App {
    Register,
    Unregister,
    Call(Target, Sdp),
    Hangup(Pick),
    Answer(Pick, Sdp),
    Decline(Pick, u16, String),
    Ringing(Pick),
    Update(Pick, Sdp),
    UpdateWithUpdate(Pick, Sdp),
    Transfer(Pick, Target),
    AcceptReferral(Pick, Sdp),
    DeclineReferral(Pick),
    Message(Target, String),
    CallMessage(Pick, String),
    Dtmf(Pick, char, u16),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Connected,
    Closed,
    /// Time passes by this many milliseconds, then the timers run.
    Advance(u32),
    /// Time jumps to the agent's next deadline, and the timers run.
    NextTimer,
    Frame(Vec<u8>),
    Corpus(Mutated),
    Reply(Reply),
    Request(Incoming),
    /// An application call, with headers of the application's own.
    App {
        headers: Option<Vec<(String, String)>>,
        action: App,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    setup: Setup,
    ops: Vec<Op>,
}

/// The fuzzer's side of the connection.
struct Harness {
    ua: UserAgent,
    now: Instant,
    /// The last requests sent, newest last.
    sent: Vec<Vec<u8>>,
    dialogs: Vec<Dialog>,
    calls: Vec<CallId>,
}

impl Harness {
    /// Checks and remembers what the agent sent; collects its events.
    fn drain(&mut self) {
        while let Some(bytes) = self.ua.poll_transmit() {
            assert_sip("the user agent", &bytes);
            if is_keepalive(&bytes) {
                continue;
            }
            let Ok(msg) = Message::parse(&bytes) else {
                continue;
            };
            let header = |name| msg.header(name).unwrap_or_default().to_owned();
            let (ours, theirs) = if msg.is_request() {
                (header(HeaderName::From), header(HeaderName::To))
            } else {
                (header(HeaderName::To), header(HeaderName::From))
            };
            let call_id = msg.call_id().to_owned();
            let is_request = msg.is_request();
            self.dialogs.retain(|d| d.call_id != call_id);
            remember(
                &mut self.dialogs,
                Dialog {
                    call_id,
                    ours,
                    theirs,
                },
                REMEMBERED,
            );
            if is_request {
                remember(&mut self.sent, bytes, REMEMBERED);
            }
        }
        while let Some(event) = self.ua.poll_event() {
            let _ = (event.name(), event.to_string());
            if let Event::Incoming { call, .. } | Event::Calling { call, .. } = event
                && !self.calls.contains(&call)
            {
                remember(&mut self.calls, call, REMEMBERED);
            }
        }
    }

    /// Runs the timers at `now`: afterwards, the next deadline is later.
    fn timers(&mut self) {
        self.ua.handle_timeout(self.now);
        if let Some(next) = self.ua.poll_timeout() {
            assert!(
                next > self.now,
                "after handle_timeout({:?}), poll_timeout() is {next:?}: a shell would spin",
                self.now
            );
        }
    }

    fn reply(&mut self, r: &Reply) {
        if self.sent.is_empty() {
            return;
        }
        let raw = &self.sent[self.sent.len() - 1 - usize::from(r.which) % self.sent.len()];
        let Ok(request) = Message::parse(raw) else {
            return;
        };
        let mut b = response_to(&request, r.status.code(), "Fuzz", r.tag.text());
        for e in &r.extras {
            e.write(&mut b, self.ua.contact_uri());
        }
        let body = r.sdp.as_ref().map(Sdp::bytes).unwrap_or_default();
        let frame = b.finish(Some("application/sdp"), &body);
        let _ = self.ua.handle_message(self.now, &frame);
    }

    fn request(&mut self, r: &Incoming) {
        let method = r.method.name();
        let (call_id, from, to) = match r.dialog {
            Some(i) if !self.dialogs.is_empty() => {
                let d = &self.dialogs[usize::from(i) % self.dialogs.len()];
                let mut theirs = d.theirs.clone();
                if let (false, Some(tag)) = (theirs.contains(";tag="), r.tag.text()) {
                    theirs.push_str(";tag=");
                    theirs.push_str(tag);
                }
                (d.call_id.clone(), theirs, d.ours.clone())
            }
            _ => (
                format!("in{}@pbx.example", r.branch),
                format!("\"Bob\" <sip:bob@pbx.example>;tag=c{}", r.branch),
                "<sip:alice@pbx.example>".to_owned(),
            ),
        };
        let mut b = MessageBuilder::request_named(method, self.ua.contact_uri());
        b.header_parts(
            "Via",
            &[
                "SIP/2.0/WSS pbx.example;branch=z9hG4bKfz",
                &r.branch.to_string(),
            ],
        )
        .header("Max-Forwards", "70")
        .header("From", &from)
        .header("To", &to)
        .header("Call-ID", &call_id)
        .header_parts("CSeq", &[&r.cseq.to_string(), " ", method])
        .header("Contact", "<sip:bob@192.0.2.50:5060;transport=ws>");
        for e in &r.extras {
            e.write(&mut b, self.ua.contact_uri());
        }
        let frame = match &r.body {
            Some(body) => {
                let (content_type, bytes) = body.render();
                b.finish(Some(content_type), &bytes)
            }
            None => b.finish(None, b""),
        };
        let _ = self.ua.handle_message(self.now, &frame);
    }
}

/// The call `pick` names.
fn pick(calls: &[CallId], pick: Pick) -> CallId {
    match pick {
        Pick::Seen(i) if !calls.is_empty() => calls[usize::from(i) % calls.len()],
        Pick::Seen(_) => CallId(0),
        Pick::Raw(n) => CallId(n),
    }
}

/// Runs one application call at `now`; `calls` are those the events named.
fn app(ua: &mut UserAgent, now: Instant, calls: &[CallId], action: &App) {
    let call = |p: &Pick| pick(calls, *p);
    match action {
        App::Register => ua.register(now),
        App::Unregister => ua.unregister(now),
        App::Call(target, sdp) => {
            let _ = ua.call(now, &target.uri(), &sdp.text());
        }
        App::Hangup(p) => {
            let _ = ua.hangup(now, call(p));
        }
        App::Answer(p, sdp) => {
            let _ = ua.answer(now, call(p), &sdp.text());
        }
        App::Decline(p, code, reason) => {
            let _ = ua.decline(now, call(p), *code, reason);
        }
        App::Ringing(p) => {
            let _ = ua.ringing(now, call(p));
        }
        App::Update(p, sdp) => {
            let _ = ua.update(now, call(p), &sdp.text());
        }
        App::UpdateWithUpdate(p, sdp) => {
            let _ = ua.update_with_update(now, call(p), &sdp.text());
        }
        App::Transfer(p, target) => {
            let _ = ua.transfer(now, call(p), &target.uri());
        }
        App::AcceptReferral(p, sdp) => {
            let _ = ua.accept_referral(now, call(p), &sdp.text());
        }
        App::DeclineReferral(p) => {
            let _ = ua.decline_referral(now, call(p));
        }
        App::Message(target, text) => {
            let _ = ua.message(now, &target.uri(), "text/plain", text);
        }
        App::CallMessage(p, text) => {
            let _ = ua.call_message(now, call(p), "text/plain", text);
        }
        App::Dtmf(p, digit, duration) => {
            let _ = ua.send_dtmf_info(now, call(p), *digit, u32::from(*duration));
        }
    }
}

fuzz_target!(|input: Input| {
    let mut seed = [0u8; 32];
    seed[..4].copy_from_slice(&input.setup.seed);
    let ua = UserAgent::new(input.setup.config(), seed)
        .expect("the configuration is valid by construction");
    let mut h = Harness {
        ua,
        now: Instant::from_millis(0),
        sent: Vec::new(),
        dialogs: Vec::new(),
        calls: Vec::new(),
    };
    for op in &input.ops {
        match op {
            Op::Connected => h.ua.transport_connected(h.now),
            Op::Closed => h.ua.transport_closed(h.now),
            Op::Advance(ms) => {
                h.now = h.now + Duration::from_millis(u64::from(*ms));
                h.timers();
            }
            Op::NextTimer => {
                if let Some(next) = h.ua.poll_timeout() {
                    h.now = h.now.max(next);
                }
                h.timers();
            }
            Op::Frame(bytes) => {
                let _ = h.ua.handle_message(h.now, bytes);
            }
            Op::Corpus(m) => {
                let _ = h.ua.handle_message(h.now, &m.bytes());
            }
            Op::Reply(r) => h.reply(r),
            Op::Request(r) => h.request(r),
            Op::App { headers, action } => match headers {
                Some(headers) => {
                    let headers: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str()))
                        .collect();
                    let (now, calls) = (h.now, &h.calls);
                    let _ =
                        h.ua.with_headers(&headers, |ua| app(ua, now, calls, action));
                }
                None => app(&mut h.ua, h.now, &h.calls, action),
            },
        }
        h.drain();
    }
});
