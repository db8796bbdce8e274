//! The relay's signalling (`sipline_relay::signalling::Proxy`), with the
//! media table and without, in front of a PBX or with the embedded one:
//! browsers opening and closing WebSockets and sending frames (raw,
//! mutated corpus messages, requests as the SDK writes them, answers to
//! what the relay sent them), datagrams from the PBX and from elsewhere,
//! time, ICMP unreachables, media failures and a graceful stop.
//!
//! Oracles, beyond "no panic":
//! - never an open relay: every datagram goes to a configured PBX, and
//!   fits in one UDP datagram (the relay promises 513 beyond);
//! - every frame and datagram it writes is CR/LF only or parses with
//!   `Message::parse`;
//! - right after `handle_timeout(now)`, `poll_timeout()` is `None` or
//!   later than `now`.

#![no_main]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sipline_core::Instant;
use sipline_core::Secret;
use sipline_core::auth::{AuthRound, Challenge, ChallengeKind, DigestClient, RequestInfo};
use sipline_core::rand::Rng;
use sipline_core::sip::{HeaderName, Message, MessageBuilder, response_to};
use sipline_fuzz::bodies::Sdp;
use sipline_fuzz::corpus::Mutated;
use sipline_fuzz::oracle::{assert_sip, is_keepalive};
use sipline_fuzz::status::Status;
use sipline_fuzz::{Dialog, remember};
use sipline_relay::ids::{ConnId, MediaId};
use sipline_relay::media::calls::{Command, MediaCalls, MediaConfig, MediaEnd};
use sipline_relay::media::dtls::Identity;
use sipline_relay::signalling::limits::RateLimit;
use sipline_relay::signalling::pbx::{EmbeddedPbx, Password};
use sipline_relay::signalling::{FlowKey, Output, Proxy, ProxyConfig};
use sipline_relay::transport::Transport;

/// The PBXs the relay fronts.
const PBX: [&str; 2] = ["10.0.0.5:5060", "10.0.0.6:5060"];
/// Where other datagrams come from: a PBX's address on another port, and
/// a stranger.
const STRANGERS: [&str; 2] = ["10.0.0.5:5061", "203.0.113.9:5060"];
/// The relay's SIP address, as the PBX reaches it.
const RELAY: &str = "192.0.2.10:5070";
/// The largest UDP datagram (IPv4).
const MAX_DATAGRAM: usize = 65_507;
/// Messages remembered to answer, dialogs to talk in.
const REMEMBERED: usize = 8;
/// The embedded PBX's users and their passwords.
const USERS: [(&str, &str); 2] = [("alice", "alice-pw"), ("bob", "bob-pw")];

/// The relay's DTLS identity: made once, as at the relay's start.
static IDENTITY: LazyLock<Arc<Identity>> =
    LazyLock::new(|| Arc::new(Identity::generate().expect("a DTLS identity")));

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a socket address")
}

#[derive(Arbitrary, Debug)]
struct Setup {
    /// The embedded mini PBX instead of a PBX's registrar.
    embedded: bool,
    /// The media table, with a range of this many port pairs (small, so
    /// that it fills up), or none.
    media: Option<u8>,
    /// The default message budget, or one that never runs out.
    generous_rate: bool,
    /// Requests in flight toward the PBX (small, so that it fills up).
    max_pending: u8,
    /// Each PBX's transport, two bits apiece (UDP, TCP, TLS).
    transports: u8,
}

impl Setup {
    fn proxy(&self) -> Proxy {
        let mut cfg = ProxyConfig::new(PBX.iter().map(|a| addr(a)).collect(), addr(RELAY));
        cfg.ws_host = "relay.example".into();
        cfg.max_pending = usize::from(self.max_pending.max(1));
        for (i, t) in cfg.pbx.iter_mut().enumerate() {
            t.transport = match (self.transports >> (2 * i)) & 3 {
                1 => Transport::Tcp,
                2 => Transport::Tls,
                _ => Transport::Udp,
            };
        }
        if self.generous_rate {
            cfg.rate = RateLimit {
                per_second: 1_000_000,
                burst: 1_000_000,
            };
        }
        if self.embedded {
            cfg.embedded = Some(EmbeddedPbx {
                domain: "sipline.test".into(),
                users: USERS
                    .iter()
                    .map(|(u, p)| ((*u).to_owned(), Password((*p).to_owned())))
                    .collect(),
            });
        }
        let proxy = Proxy::new(cfg, FlowKey::new([9; 32]));
        match self.media {
            Some(pairs) => {
                let media = MediaConfig {
                    port_min: 40_000,
                    port_max: 40_000 + 2 * u16::from(pairs.clamp(1, 32)) - 1,
                    ..MediaConfig::default()
                };
                let calls =
                    MediaCalls::new(media, IDENTITY.clone(), [5; 32]).expect("a valid port range");
                proxy.with_media(calls)
            }
            None => proxy,
        }
    }
}

/// A browser's connection (four of them).
#[derive(Arbitrary, Clone, Copy, Debug)]
struct Conn(u8);

impl Conn {
    fn id(self) -> ConnId {
        ConnId(1 + u64::from(self.0 % 4))
    }
}

/// A browser's address (three; two connections may share one).
#[derive(Arbitrary, Clone, Copy, Debug)]
struct Ip(u8);

impl Ip {
    fn addr(self) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1 + self.0 % 3))
    }
}

/// Where a datagram comes from.
#[derive(Arbitrary, Clone, Copy, Debug)]
enum Source {
    Pbx,
    SecondPbx,
    /// A PBX's address, another port.
    PbxOtherPort,
    Stranger,
}

impl Source {
    fn addr(self) -> SocketAddr {
        addr(match self {
            Source::Pbx => PBX[0],
            Source::SecondPbx => PBX[1],
            Source::PbxOtherPort => STRANGERS[0],
            Source::Stranger => STRANGERS[1],
        })
    }
}

/// Whom a browser's request is for.
#[derive(Arbitrary, Clone, Debug)]
enum Target {
    /// A user (of the embedded PBX, or behind the PBX).
    Bob,
    /// The embedded PBX's echo extension.
    Echo,
    /// The second PBX, by address.
    Pbx,
    /// The registrar itself (REGISTER's Request-URI).
    Domain,
    /// A Contact the relay wrote toward the browser (wrapped).
    Seen(u8),
    Any(String),
}

/// A Route set on a browser's request.
#[derive(Arbitrary, Clone, Copy, Debug)]
enum Route {
    None,
    /// The Record-Route the relay last gave the browser (its own entries).
    Recorded,
    /// A proxy that is not the relay: must not become an open relay.
    Evil,
    /// The second PBX.
    Pbx,
}

/// The browser's Contact.
#[derive(Arbitrary, Clone, Copy, Debug)]
enum Contact {
    None,
    /// The SDK's (`.invalid` host, `;ob`).
    Sdk,
    /// The SDK's, registering with RFC 5626 parameters.
    Outbound {
        expires: u16,
    },
    /// The wildcard of an unregister-all.
    Star,
    /// One that names another host.
    Foreign,
}

/// Methods a browser or a PBX sends.
#[derive(Arbitrary, Clone, Copy, Debug)]
enum Method {
    Register,
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
}

impl Method {
    fn name(self) -> &'static str {
        match self {
            Method::Register => "REGISTER",
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
        }
    }
}

/// A request as the SDK writes it.
#[derive(Arbitrary, Debug)]
struct BrowserRequest {
    method: Method,
    target: Target,
    /// In a dialog the relay told this browser of (wrapped), or a call of
    /// its own whose Call-ID and From tag follow from `call`.
    dialog: Option<u8>,
    call: u8,
    /// The far end's tag on a call of its own: none, or one of the PBX's.
    to_tag: Option<bool>,
    branch: u8,
    cseq: u16,
    route: Route,
    contact: Contact,
    /// Credentials for the last challenge the relay sent, as this user.
    auth: Option<bool>,
    max_forwards: Option<u8>,
    sdp: Option<Sdp>,
}

/// An answer to one of the last requests the relay sent this way.
#[derive(Arbitrary, Debug)]
struct Answer {
    /// Newest first (wrapped).
    which: u8,
    status: Status,
    /// One of two tags (two forks), or none.
    tag: Option<bool>,
    contact: bool,
    record_route: bool,
    sdp: Option<Sdp>,
}

/// A request from the PBX to a browser.
#[derive(Arbitrary, Debug)]
struct PbxRequest {
    method: Method,
    /// Request-URI: a Contact the relay gave the PBX (wrapped).
    target: u8,
    /// In a dialog the relay told the PBX of (wrapped), or a call of its
    /// own.
    dialog: Option<u8>,
    branch: u8,
    cseq: u16,
    record_route: bool,
    sdp: Option<Sdp>,
}

/// One WebSocket frame from a browser.
#[derive(Arbitrary, Debug)]
enum Frame {
    Raw(Vec<u8>),
    Corpus(Mutated),
    /// CRLFs (a ping, RFC 5626 §3.5.1).
    Keepalive(u8),
    Request(BrowserRequest),
    Answer(Answer),
}

/// One datagram on the relay's SIP port.
#[derive(Arbitrary, Debug)]
enum Datagram {
    Raw(Vec<u8>),
    Corpus(Mutated),
    Keepalive(u8),
    Request(PbxRequest),
    Answer(Answer),
}

#[derive(Arbitrary, Debug)]
enum Op {
    Open(Conn, Ip),
    Close(Conn),
    Admit(Ip),
    Ws(Conn, Frame),
    Udp(Source, Datagram),
    Advance(u32),
    NextTimer,
    Unreachable(bool),
    /// A call's media ended in the shell (wrapped among those opened).
    MediaEnded(u8, u8),
    ShutDown,
    /// What the admin pages read.
    Observe,
}

#[derive(Arbitrary, Debug)]
struct Input {
    setup: Setup,
    ops: Vec<Op>,
}

/// What the fuzzer's browsers and PBX know of what the relay sent them.
#[derive(Default)]
struct Seen {
    /// Requests relayed to browsers, per connection, newest last.
    ws_requests: Vec<(ConnId, Vec<u8>)>,
    /// Requests relayed to the PBX, newest last.
    udp_requests: Vec<Vec<u8>>,
    /// Dialogs as browsers see them, and as the PBX does.
    ws_dialogs: Vec<Dialog>,
    udp_dialogs: Vec<Dialog>,
    /// Contacts written toward browsers (remote targets) and toward the
    /// PBX (flow tokens).
    ws_contacts: Vec<String>,
    udp_contacts: Vec<String>,
    /// The last Record-Route a browser was given.
    record_route: Vec<String>,
    /// The last digest challenge a browser got (header, value).
    challenge: Option<(ChallengeKind, String)>,
    /// The media calls opened.
    media: Vec<MediaId>,
}

/// Learns from a message the relay sent toward one side: the dialog as
/// that side sees it, and the Contacts it was given.
fn learn(msg: &Message<'_>, dialogs: &mut Vec<Dialog>, contacts: &mut Vec<String>) {
    let header = |name| msg.header(name).unwrap_or_default().to_owned();
    // The side receiving a request is its To; a response, its From.
    let (ours, theirs) = if msg.is_request() {
        (header(HeaderName::To), header(HeaderName::From))
    } else {
        (header(HeaderName::From), header(HeaderName::To))
    };
    let call_id = msg.call_id().to_owned();
    dialogs.retain(|d| d.call_id != call_id);
    remember(
        dialogs,
        Dialog {
            call_id,
            ours,
            theirs,
        },
        REMEMBERED,
    );
    for c in msg.header_values(HeaderName::Contact) {
        let uri = c.trim_start_matches('<');
        let uri = uri.split('>').next().unwrap_or(uri).to_owned();
        if !contacts.contains(&uri) {
            remember(contacts, uri, REMEMBERED);
        }
    }
}

/// The proxy, the time, and what the fuzzer's browsers and PBX know.
struct Harness {
    proxy: Proxy,
    now: Instant,
    seen: Seen,
}

impl Harness {
    /// Checks every output against the oracles, and remembers what the
    /// fuzzer's peers learn from it.
    fn drain(&mut self) {
        while let Some(out) = self.proxy.poll_output() {
            match out {
                Output::Pbx {
                    to,
                    message: datagram,
                    ..
                } => {
                    assert!(
                        self.proxy.config().pbx.iter().any(|t| t.addr == to),
                        "a datagram to {to}, which is no PBX: an open relay:\n{}",
                        String::from_utf8_lossy(&datagram)
                    );
                    assert!(
                        datagram.len() <= MAX_DATAGRAM,
                        "a datagram of {} bytes",
                        datagram.len()
                    );
                    assert_sip("the relay, toward the PBX", &datagram);
                    if is_keepalive(&datagram) {
                        continue;
                    }
                    let Ok(msg) = Message::parse(&datagram) else {
                        continue;
                    };
                    let seen = &mut self.seen;
                    learn(&msg, &mut seen.udp_dialogs, &mut seen.udp_contacts);
                    if msg.is_request() {
                        remember(&mut seen.udp_requests, datagram.clone(), REMEMBERED);
                    }
                }
                Output::Ws { conn, frame } => {
                    assert_sip("the relay, toward a browser", &frame);
                    if is_keepalive(&frame) {
                        continue;
                    }
                    let Ok(msg) = Message::parse(&frame) else {
                        continue;
                    };
                    let seen = &mut self.seen;
                    learn(&msg, &mut seen.ws_dialogs, &mut seen.ws_contacts);
                    let rr: Vec<String> = msg
                        .header_values(HeaderName::RecordRoute)
                        .map(str::to_owned)
                        .collect();
                    if !rr.is_empty() {
                        seen.record_route = rr;
                    }
                    for (kind, name) in [
                        (ChallengeKind::Www, HeaderName::WwwAuthenticate),
                        (ChallengeKind::Proxy, HeaderName::ProxyAuthenticate),
                    ] {
                        if let Some(v) = msg.header(name) {
                            seen.challenge = Some((kind, v.to_owned()));
                        }
                    }
                    if msg.is_request() {
                        remember(&mut seen.ws_requests, (conn, frame.clone()), REMEMBERED);
                    }
                }
                Output::Media(command) => {
                    if let Command::Open { id, .. } = command {
                        remember(&mut self.seen.media, id, REMEMBERED);
                    }
                }
            }
        }
    }

    /// Runs the timers at `now`: afterwards, the next deadline is later.
    fn timers(&mut self) {
        self.proxy.handle_timeout(self.now);
        if let Some(next) = self.proxy.poll_timeout() {
            assert!(
                next > self.now,
                "after handle_timeout({:?}), poll_timeout() is {next:?}: the shell would spin",
                self.now
            );
        }
    }

    fn browser_request(&self, conn: ConnId, r: &BrowserRequest) -> Vec<u8> {
        let method = r.method.name();
        let seen = &self.seen;
        let ruri = match &r.target {
            Target::Bob => "sip:bob@sipline.test".to_owned(),
            Target::Echo => "sip:echo@sipline.test".to_owned(),
            Target::Pbx => "sip:1001@10.0.0.6:5060".to_owned(),
            Target::Domain => "sip:sipline.test".to_owned(),
            Target::Seen(i) if !seen.ws_contacts.is_empty() => {
                seen.ws_contacts[usize::from(*i) % seen.ws_contacts.len()].clone()
            }
            Target::Seen(_) => "sip:nobody@sipline.test".to_owned(),
            Target::Any(s) => s.clone(),
        };
        let (call_id, from, to) = match r.dialog {
            Some(i) if !seen.ws_dialogs.is_empty() => {
                let d = &seen.ws_dialogs[usize::from(i) % seen.ws_dialogs.len()];
                let mut ours = d.ours.clone();
                if !ours.contains(";tag=") {
                    ours.push_str(";tag=b");
                    ours.push_str(&r.call.to_string());
                }
                (d.call_id.clone(), ours, d.theirs.clone())
            }
            _ => {
                let user = if matches!(r.method, Method::Register) {
                    "alice"
                } else {
                    "bob"
                };
                let mut to = format!("<sip:{user}@sipline.test>");
                if let Some(second) = r.to_tag {
                    to.push_str(if second { ";tag=pbxB" } else { ";tag=pbxA" });
                }
                (
                    format!("c{}-{}", conn.0, r.call),
                    format!("<sip:alice@sipline.test>;tag=f{}", r.call),
                    to,
                )
            }
        };
        let mut b = MessageBuilder::request_named(method, &ruri);
        b.header_parts(
            "Via",
            &[
                "SIP/2.0/WSS abc.invalid;branch=z9hG4bKb",
                &r.branch.to_string(),
            ],
        );
        if let Some(hops) = r.max_forwards {
            b.header("Max-Forwards", &hops.to_string());
        }
        match r.route {
            Route::None => {}
            Route::Recorded => {
                for v in &seen.record_route {
                    b.header("Route", v);
                }
            }
            Route::Evil => {
                b.header("Route", "<sip:evil.example;lr>");
            }
            Route::Pbx => {
                b.header("Route", "<sip:10.0.0.6:5060;lr>");
            }
        }
        b.header("From", &from)
            .header("To", &to)
            .header("Call-ID", &call_id)
            .header_parts("CSeq", &[&r.cseq.to_string(), " ", method]);
        let contact = format!("<sip:x{}@abc.invalid;transport=ws;ob>", conn.0);
        match r.contact {
            Contact::None => {}
            Contact::Sdk => {
                b.header("Contact", &contact);
            }
            Contact::Outbound { expires } => {
                b.header_parts(
                    "Contact",
                    &[
                        &contact,
                        ";+sip.instance=\"<urn:uuid:1>\";reg-id=1;expires=",
                        &expires.to_string(),
                    ],
                );
            }
            Contact::Star => {
                b.header("Contact", "*").header("Expires", "0");
            }
            Contact::Foreign => {
                b.header("Contact", "<sip:x@198.51.100.7:5060>");
            }
        }
        let body = r.sdp.as_ref().map(Sdp::bytes).unwrap_or_default();
        if let (Some(second), Some((kind, challenge))) = (r.auth, &seen.challenge)
            && let Some(c) = Challenge::parse(*kind, challenge)
        {
            let (user, password) = USERS[usize::from(second)];
            let mut client = DigestClient::new(user.into(), Secret::new(password));
            client.on_challenges(&[c], &mut AuthRound::default());
            let req = RequestInfo {
                method,
                uri: &ruri,
                body: &body,
            };
            for (name, value) in client.credentials(&req, &mut Rng::from_seed([2; 32])) {
                b.header(name, &value);
            }
        }
        b.finish(Some("application/sdp"), &body)
    }

    fn answer(&self, request: &[u8], a: &Answer, contact: &str) -> Option<Vec<u8>> {
        let request = Message::parse(request).ok()?;
        let tag = a.tag.map(|second| if second { "pbxB" } else { "pbxA" });
        let mut b = response_to(&request, a.status.code(), "Fuzz", tag);
        if a.contact {
            b.header("Contact", contact);
        }
        if a.record_route {
            b.header("Record-Route", "<sip:proxy.pbx.example;lr>");
        }
        let body = a.sdp.as_ref().map(Sdp::bytes).unwrap_or_default();
        Some(b.finish(Some("application/sdp"), &body))
    }

    fn pbx_request(&self, r: &PbxRequest) -> Vec<u8> {
        let method = r.method.name();
        let seen = &self.seen;
        let ruri = if seen.udp_contacts.is_empty() {
            "sip:alice@192.0.2.10:5070".to_owned()
        } else {
            seen.udp_contacts[usize::from(r.target) % seen.udp_contacts.len()].clone()
        };
        let (call_id, from, to) = match r.dialog {
            Some(i) if !seen.udp_dialogs.is_empty() => {
                let d = &seen.udp_dialogs[usize::from(i) % seen.udp_dialogs.len()];
                let mut ours = d.ours.clone();
                if !ours.contains(";tag=") {
                    ours.push_str(";tag=pbxA");
                }
                (d.call_id.clone(), ours, d.theirs.clone())
            }
            _ => (
                format!("pbx{}@10.0.0.5", r.branch),
                format!("<sip:1001@pbx.example>;tag=p{}", r.branch),
                "<sip:alice@sipline.test>".to_owned(),
            ),
        };
        let mut b = MessageBuilder::request_named(method, &ruri);
        b.header_parts(
            "Via",
            &[
                "SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bKp",
                &r.branch.to_string(),
            ],
        )
        .header("Max-Forwards", "70");
        if r.record_route {
            b.header("Record-Route", "<sip:10.0.0.5:5060;lr>");
        }
        b.header("From", &from)
            .header("To", &to)
            .header("Call-ID", &call_id)
            .header_parts("CSeq", &[&r.cseq.to_string(), " ", method])
            .header("Contact", "<sip:1001@10.0.0.5:5060>");
        let body = r.sdp.as_ref().map(Sdp::bytes).unwrap_or_default();
        b.finish(Some("application/sdp"), &body)
    }

    fn ws(&mut self, conn: ConnId, frame: &Frame) {
        let bytes = match frame {
            Frame::Raw(b) => b.clone(),
            Frame::Corpus(m) => m.bytes(),
            Frame::Keepalive(n) => b"\r\n".repeat(usize::from(n % 4) + 1),
            Frame::Request(r) => self.browser_request(conn, r),
            Frame::Answer(a) => {
                let mine: Vec<&Vec<u8>> = self
                    .seen
                    .ws_requests
                    .iter()
                    .rev()
                    .filter(|(c, _)| *c == conn)
                    .map(|(_, r)| r)
                    .collect();
                let Some(request) = mine.get(usize::from(a.which) % mine.len().max(1)) else {
                    return;
                };
                let contact = format!("<sip:x{}@abc.invalid;transport=ws>", conn.0);
                let Some(bytes) = self.answer(request, a, &contact) else {
                    return;
                };
                bytes
            }
        };
        self.proxy.handle_ws(self.now, conn, &bytes);
    }

    fn udp(&mut self, from: SocketAddr, datagram: &Datagram) {
        let bytes = match datagram {
            Datagram::Raw(b) => b.clone(),
            Datagram::Corpus(m) => m.bytes(),
            Datagram::Keepalive(n) => b"\r\n".repeat(usize::from(n % 4) + 1),
            Datagram::Request(r) => self.pbx_request(r),
            Datagram::Answer(a) => {
                let requests = &self.seen.udp_requests;
                if requests.is_empty() {
                    return;
                }
                let request = &requests[requests.len() - 1 - usize::from(a.which) % requests.len()];
                let Some(bytes) = self.answer(request, a, "<sip:1001@10.0.0.5:5060>") else {
                    return;
                };
                bytes
            }
        };
        self.proxy.handle_pbx(self.now, from, &bytes);
    }
}

fuzz_target!(|input: Input| {
    let mut h = Harness {
        proxy: input.setup.proxy(),
        now: Instant::from_millis(0),
        seen: Seen::default(),
    };
    for op in &input.ops {
        match op {
            Op::Open(conn, ip) => h.proxy.ws_opened(h.now, conn.id(), ip.addr()),
            Op::Close(conn) => h.proxy.ws_closed(conn.id()),
            Op::Admit(ip) => {
                let _ = h.proxy.admit(h.now, ip.addr());
            }
            Op::Ws(conn, frame) => h.ws(conn.id(), frame),
            Op::Udp(source, datagram) => h.udp(source.addr(), datagram),
            Op::Advance(ms) => {
                h.now = h.now + Duration::from_millis(u64::from(*ms));
                h.timers();
            }
            Op::NextTimer => {
                if let Some(next) = h.proxy.poll_timeout() {
                    h.now = h.now.max(next);
                }
                h.timers();
            }
            Op::Unreachable(second) => h
                .proxy
                .pbx_unreachable(h.now, addr(PBX[usize::from(*second)])),
            Op::MediaEnded(which, why) => {
                if !h.seen.media.is_empty() {
                    let id = h.seen.media[usize::from(*which) % h.seen.media.len()];
                    let why =
                        [MediaEnd::Timeout, MediaEnd::Dtls, MediaEnd::Io][usize::from(*why % 3)];
                    h.proxy.media_ended(h.now, id, why);
                }
            }
            Op::ShutDown => {
                let _ = h.proxy.shut_down(h.now);
            }
            Op::Observe => {
                let _ = (h.proxy.render_metrics(), h.proxy.active_calls());
                let _ = (h.proxy.connections(), h.proxy.token(ConnId(1)));
                for e in h.proxy.drain_events() {
                    let _ = (e.name(), e.to_json());
                }
            }
        }
        h.drain();
    }
});
