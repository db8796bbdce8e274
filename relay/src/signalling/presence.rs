//! The embedded PBX's presence server (an RFC 6665 notifier), so that the
//! demo shows busy lamps and voicemail lights with no PBX: its users'
//! calls as dialog-info (RFC 4235: ringing, then confirmed, then gone),
//! their presence as PIDF (RFC 3863: open while they hold a binding), and
//! a voicemail summary (RFC 3842) that counts the calls each one missed.
//! Sans-IO: SUBSCRIBEs and the relay's own call and registration events
//! in, NOTIFY frames for the watchers' WebSockets out. In memory, bounded,
//! gone with the watcher's connection.

use std::collections::HashMap;
use std::time::Duration;

use sipline_core::Instant;
use sipline_core::sip::{HeaderName, Message, MessageBuilder, Method, Uri, response_to};

use super::LOCAL_PARAM;
use super::events::AdminEvent;
use crate::ids::ConnId;

/// The interval granted when none is asked, and the longest.
const DEFAULT_EXPIRES: u32 = 600;
const MAX_EXPIRES: u32 = 3600;
/// The shortest interval taken (shorter: 423).
const MIN_EXPIRES: u32 = 60;
/// Most subscriptions at once (beyond: 503), so that no browser can
/// grow the relay's memory without bound.
const MAX_WATCHES: usize = 10_000;

/// The event packages served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Dialog,
    Presence,
    Voicemail,
}

impl Kind {
    fn of(event: &str) -> Option<Kind> {
        match event.split(';').next().unwrap_or_default().trim() {
            "dialog" => Some(Kind::Dialog),
            "presence" => Some(Kind::Presence),
            "message-summary" => Some(Kind::Voicemail),
            _ => None,
        }
    }

    fn event(self) -> &'static str {
        match self {
            Kind::Dialog => "dialog",
            Kind::Presence => "presence",
            Kind::Voicemail => "message-summary",
        }
    }
}

/// One subscription: who watches whom, and its dialog.
#[derive(Debug)]
struct Watch {
    conn: ConnId,
    kind: Kind,
    user: String,
    call_id: String,
    their_tag: String,
    our_tag: String,
    /// The watcher's From (with its tag): our NOTIFYs' To.
    their_party: String,
    /// Where our NOTIFYs go (the watcher's Contact).
    target: String,
    expires_at: Instant,
    cseq: u32,
    version: u32,
}

/// A call between two users, for their lamps.
#[derive(Debug)]
struct LampCall {
    call_id: String,
    caller: String,
    callee: String,
    answered: bool,
}

/// The presence server.
#[derive(Debug)]
pub(crate) struct PresenceServer {
    domain: String,
    host: String,
    watches: Vec<Watch>,
    calls: Vec<LampCall>,
    /// Each user's bindings, by connection.
    bindings: Vec<(ConnId, String)>,
    /// Calls each user missed.
    missed: HashMap<String, u32>,
    next_tag: u64,
}

/// Frames to send: (connection, SIP message).
pub(crate) type Frames = Vec<(ConnId, Vec<u8>)>;

/// The user part of a SIP URI (`sip:alice@d` → `alice`).
fn user_of(uri: &str) -> Option<String> {
    Uri::parse(uri).and_then(|u| u.user).map(str::to_owned)
}

/// `text` with the five XML specials escaped.
fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

impl PresenceServer {
    /// A server for `domain`'s users, its Contact at `host` (the relay's
    /// name on the browser side).
    pub fn new(domain: &str, host: &str) -> Self {
        Self {
            domain: domain.to_owned(),
            host: host.to_owned(),
            watches: Vec::new(),
            calls: Vec::new(),
            bindings: Vec::new(),
            missed: HashMap::new(),
            next_tag: 0,
        }
    }

    /// A SUBSCRIBE from `conn` (initial ones already admitted by the
    /// registrar), to a user `known` says exists: the answer, and the
    /// NOTIFY that follows it.
    pub fn subscribe(
        &mut self,
        now: Instant,
        conn: ConnId,
        msg: &Message<'_>,
        known: impl Fn(&str) -> bool,
    ) -> Frames {
        let reply = |code: u16, reason: &str, extra: &[(&str, &str)]| {
            let mut b = response_to(msg, code, reason, Some("pres"));
            for (name, value) in extra {
                b.header(name, value);
            }
            vec![(conn, b.finish(None, b""))]
        };
        let Some(kind) = msg.header(HeaderName::Event).and_then(Kind::of) else {
            return reply(
                489,
                "Bad Event",
                &[("Allow-Events", "dialog, presence, message-summary")],
            );
        };
        let asked = msg
            .header(HeaderName::Expires)
            .and_then(|e| e.trim().parse::<u32>().ok())
            .unwrap_or(DEFAULT_EXPIRES);
        if asked != 0 && asked < MIN_EXPIRES {
            return reply(423, "Interval Too Brief", &[("Min-Expires", "60")]);
        }
        let expires = asked.min(MAX_EXPIRES);
        let their_tag = msg.from().tag().unwrap_or_default();
        let index = match msg.to().tag() {
            Some(ours) => {
                let found = self.watches.iter().position(|w| {
                    w.conn == conn
                        && w.call_id == msg.call_id()
                        && w.our_tag == ours
                        && w.their_tag == their_tag
                });
                match found {
                    Some(i) => i,
                    None => return reply(481, "Subscription Does Not Exist", &[]),
                }
            }
            None => {
                let Some(user) = msg.request_uri().and_then(user_of).filter(|u| known(u)) else {
                    return reply(404, "Not Found", &[]);
                };
                let target = msg
                    .header(HeaderName::Contact)
                    .and_then(sipline_core::sip::NameAddr::parse)
                    .map(|c| c.uri_text.to_owned());
                let (Some(target), false) = (target, their_tag.is_empty()) else {
                    return reply(400, "Missing Contact or From tag", &[]);
                };
                if self.watches.len() >= MAX_WATCHES {
                    return reply(503, "Too Many Subscriptions", &[("Retry-After", "60")]);
                }
                self.next_tag += 1;
                self.watches.push(Watch {
                    conn,
                    kind,
                    user,
                    call_id: msg.call_id().to_owned(),
                    their_tag: their_tag.to_owned(),
                    our_tag: format!("pres{}", self.next_tag),
                    their_party: msg.header(HeaderName::From).unwrap_or_default().to_owned(),
                    target,
                    expires_at: now,
                    cseq: 0,
                    version: 0,
                });
                self.watches.len() - 1
            }
        };
        let w = &mut self.watches[index];
        w.expires_at = now + Duration::from_secs(u64::from(expires));
        let mut b = response_to(msg, 200, "OK", Some(&w.our_tag));
        b.header("Expires", &expires.to_string()).header_parts(
            "Contact",
            &["<sip:", &w.user, "@", &self.host, ";transport=ws>"],
        );
        let mut frames = vec![(conn, b.finish(None, b""))];
        if expires == 0 {
            let mut w = self.watches.remove(index);
            w.cseq += 1;
            frames.push((w.conn, self.notify(&w, "terminated;reason=timeout", false)));
        } else {
            let state = format!("active;expires={expires}");
            frames.push((conn, self.notify_at(index, &state)));
        }
        frames
    }

    /// The relay's events (calls set up, answered and ended; bindings made
    /// and lost): the NOTIFYs of what they changed.
    pub fn events(&mut self, events: &[AdminEvent]) -> Frames {
        let mut changed: Vec<(Kind, String)> = Vec::new();
        for event in events {
            match event {
                AdminEvent::Calling(info) | AdminEvent::Ringing(info) => {
                    if self.calls.iter().any(|c| c.call_id == info.call_id) {
                        continue;
                    }
                    let (Some(caller), Some(callee)) =
                        (user_of(&info.caller), user_of(&info.callee))
                    else {
                        continue;
                    };
                    changed.push((Kind::Dialog, caller.clone()));
                    changed.push((Kind::Dialog, callee.clone()));
                    self.calls.push(LampCall {
                        call_id: info.call_id.clone(),
                        caller,
                        callee,
                        answered: false,
                    });
                }
                AdminEvent::Answered(info) => {
                    if let Some(c) = self
                        .calls
                        .iter_mut()
                        .find(|c| c.call_id == info.call_id && !c.answered)
                    {
                        c.answered = true;
                        changed.push((Kind::Dialog, c.caller.clone()));
                        changed.push((Kind::Dialog, c.callee.clone()));
                    }
                }
                AdminEvent::Hangup { call, .. } => {
                    if let Some(i) = self.calls.iter().position(|c| c.call_id == call.call_id) {
                        let c = self.calls.remove(i);
                        if !c.answered {
                            *self.missed.entry(c.callee.clone()).or_default() += 1;
                            changed.push((Kind::Voicemail, c.callee.clone()));
                        }
                        changed.push((Kind::Dialog, c.caller));
                        changed.push((Kind::Dialog, c.callee));
                    }
                }
                AdminEvent::Registered { session, client } => {
                    if let Some(user) = user_of(client)
                        && !self
                            .bindings
                            .iter()
                            .any(|(s, u)| s == session && *u == user)
                    {
                        self.bindings.push((*session, user.clone()));
                        changed.push((Kind::Presence, user));
                    }
                }
                AdminEvent::Unregistered { session, client } => {
                    if let Some(user) = user_of(client) {
                        self.bindings.retain(|(s, u)| !(s == session && *u == user));
                        changed.push((Kind::Presence, user));
                    }
                }
                AdminEvent::Disconnected { session } => {
                    for (_, user) in self.bindings.iter().filter(|(s, _)| s == session) {
                        changed.push((Kind::Presence, user.clone()));
                    }
                    self.bindings.retain(|(s, _)| s != session);
                }
                AdminEvent::Connected { .. }
                | AdminEvent::PbxDown { .. }
                | AdminEvent::PbxUp { .. } => {}
            }
        }
        changed.dedup();
        let mut frames = Vec::new();
        for i in 0..self.watches.len() {
            let w = &self.watches[i];
            if changed.iter().any(|(k, u)| *k == w.kind && *u == w.user) {
                frames.push((w.conn, self.notify_at(i, "active")));
            }
        }
        frames
    }

    /// A connection closed: its subscriptions end unannounced.
    pub fn connection_closed(&mut self, conn: ConnId) {
        self.watches.retain(|w| w.conn != conn);
    }

    /// When a subscription next expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.watches.iter().map(|w| w.expires_at).min()
    }

    /// Subscriptions not refreshed in time end, each told so.
    pub fn handle_timeout(&mut self, now: Instant) -> Frames {
        let mut frames = Vec::new();
        let mut i = 0;
        while i < self.watches.len() {
            if self.watches[i].expires_at <= now {
                let mut w = self.watches.remove(i);
                // Each NOTIFY of the dialog has the next CSeq (RFC 3261 §12.2.1.1).
                w.cseq += 1;
                frames.push((w.conn, self.notify(&w, "terminated;reason=timeout", false)));
            } else {
                i += 1;
            }
        }
        frames
    }

    /// The next NOTIFY of watch `i`, with its state now.
    fn notify_at(&mut self, i: usize, state: &str) -> Vec<u8> {
        let w = &mut self.watches[i];
        w.cseq += 1;
        w.version += 1;
        let w = &self.watches[i];
        self.notify(w, state, true)
    }

    /// A NOTIFY of `w` with `state`, and the watched user's status as its
    /// body when `with_body`.
    fn notify(&self, w: &Watch, state: &str, with_body: bool) -> Vec<u8> {
        let entity = format!("sip:{}@{}", w.user, self.domain);
        let (content_type, body) = match (with_body, w.kind) {
            (false, _) => (None, String::new()),
            (true, Kind::Dialog) => (
                Some("application/dialog-info+xml"),
                self.dialog_info(w, &entity),
            ),
            (true, Kind::Presence) => (Some("application/pidf+xml"), self.pidf(w, &entity)),
            (true, Kind::Voicemail) => {
                let missed = self.missed.get(&w.user).copied().unwrap_or(0);
                let waiting = if missed > 0 { "yes" } else { "no" };
                (
                    Some("application/simple-message-summary"),
                    format!(
                        "Messages-Waiting: {waiting}\r\nMessage-Account: {entity}\r\nVoice-Message: {missed}/0\r\n"
                    ),
                )
            }
        };
        let mut b = MessageBuilder::request(Method::Notify, &w.target);
        b.header_parts(
            "Via",
            &[
                "SIP/2.0/WSS ",
                &self.host,
                ";branch=z9hG4bKpres",
                &w.our_tag,
                "n",
                &w.cseq.to_string(),
                ";",
                LOCAL_PARAM,
            ],
        )
        .header("Max-Forwards", "70")
        .header_parts("From", &["<", &entity, ">;tag=", &w.our_tag])
        .header("To", &w.their_party)
        .header("Call-ID", &w.call_id)
        .header_parts("CSeq", &[&w.cseq.max(1).to_string(), " NOTIFY"])
        .header_parts(
            "Contact",
            &["<sip:", &w.user, "@", &self.host, ";transport=ws>"],
        )
        .header("Event", w.kind.event())
        .header("Subscription-State", state);
        b.finish(content_type, body.as_bytes())
    }

    /// RFC 4235: the user's calls, ringing (early) or up (confirmed).
    fn dialog_info(&self, w: &Watch, entity: &str) -> String {
        let mut doc = format!(
            "<?xml version=\"1.0\"?>\n<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"{}\" state=\"full\" entity=\"{}\">\n",
            w.version,
            xml(entity)
        );
        for c in self
            .calls
            .iter()
            .filter(|c| c.caller == w.user || c.callee == w.user)
        {
            let (direction, other) = if c.caller == w.user {
                ("initiator", &c.callee)
            } else {
                ("recipient", &c.caller)
            };
            let state = if c.answered { "confirmed" } else { "early" };
            doc.push_str(&format!(
                "<dialog id=\"{id}\" call-id=\"{id}\" direction=\"{direction}\"><state>{state}</state>\
<remote><identity>sip:{}@{}</identity></remote></dialog>\n",
                xml(other),
                xml(&self.domain),
                id = xml(&c.call_id)
            ));
        }
        doc.push_str("</dialog-info>\n");
        doc
    }

    /// RFC 3863: open while the user holds a binding.
    fn pidf(&self, w: &Watch, entity: &str) -> String {
        let open = self.bindings.iter().any(|(_, u)| *u == w.user);
        format!(
            "<?xml version=\"1.0\"?>\n<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" entity=\"{}\">\
<tuple id=\"sipline\"><status><basic>{}</basic></status></tuple></presence>\n",
            xml(entity),
            if open { "open" } else { "closed" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signalling::events::CallInfo;
    use sipline_core::status::{self, Lamp, Status};

    fn at(secs: u64) -> Instant {
        Instant::from_millis(secs * 1000)
    }

    fn subscribe(event: &str, to_tag: Option<&str>, expires: u32) -> String {
        let to = match to_tag {
            Some(t) => format!("<sip:bob@pbx.test>;tag={t}"),
            None => "<sip:bob@pbx.test>".into(),
        };
        format!(
            "SUBSCRIBE sip:bob@pbx.test SIP/2.0\r\nVia: SIP/2.0/WSS a.invalid;branch=z9hG4bKs{expires}{}\r\n\
Max-Forwards: 70\r\nFrom: <sip:alice@pbx.test>;tag=a1\r\nTo: {to}\r\nCall-ID: w1\r\nCSeq: 1 SUBSCRIBE\r\n\
Contact: <sip:x@a.invalid;transport=ws>\r\nEvent: {event}\r\nExpires: {expires}\r\nContent-Length: 0\r\n\r\n",
            to_tag.is_some()
        )
    }

    fn text(frame: &(ConnId, Vec<u8>)) -> String {
        String::from_utf8(frame.1.clone()).expect("utf8")
    }

    fn lamp(frame: &(ConnId, Vec<u8>)) -> Lamp {
        let t = text(frame);
        let m = Message::parse(t.as_bytes()).expect("NOTIFY parses");
        let body = String::from_utf8_lossy(m.body()).into_owned();
        match status::parse(m.header(HeaderName::ContentType).unwrap_or_default(), &body) {
            Some(Status::DialogInfo(d)) => d.lamp,
            other => panic!("{other:?}: {t}"),
        }
    }

    fn call(id: &str) -> CallInfo {
        CallInfo {
            session: ConnId(2),
            client: "sip:carol@pbx.test".into(),
            call_id: id.into(),
            caller: "sip:carol@pbx.test".into(),
            callee: "sip:bob@pbx.test".into(),
        }
    }

    #[test]
    fn a_lamp_follows_the_calls_and_the_voicemail_counts_the_missed_ones() {
        let mut p = PresenceServer::new("pbx.test", "relay.test");
        let sub = subscribe("dialog", None, 600);
        let m = Message::parse(sub.as_bytes()).expect("parses");
        let frames = p.subscribe(at(0), ConnId(1), &m, |u| u == "bob");
        assert!(text(&frames[0]).starts_with("SIP/2.0 200 OK"));
        assert_eq!(lamp(&frames[1]), Lamp::Idle);
        let notify = text(&frames[1]);
        assert!(
            notify.starts_with("NOTIFY sip:x@a.invalid;transport=ws SIP/2.0"),
            "{notify}"
        );
        assert!(
            notify.contains("Subscription-State: active;expires=600"),
            "{notify}"
        );

        let ringing = p.events(&[AdminEvent::Calling(call("c1"))]);
        assert_eq!(lamp(&ringing[0]), Lamp::Ringing);
        let busy = p.events(&[AdminEvent::Answered(call("c1"))]);
        assert_eq!(lamp(&busy[0]), Lamp::Busy);
        let idle = p.events(&[AdminEvent::Hangup {
            call: call("c1"),
            code: None,
            reason: None,
        }]);
        assert_eq!(lamp(&idle[0]), Lamp::Idle);

        // A call bob misses lights his voicemail.
        let mwi = subscribe("message-summary", None, 600).replace("Call-ID: w1", "Call-ID: w2");
        let m = Message::parse(mwi.as_bytes()).expect("parses");
        let frames = p.subscribe(at(4), ConnId(1), &m, |_| true);
        assert!(text(&frames[1]).contains("Messages-Waiting: no"));
        p.events(&[AdminEvent::Calling(call("c2"))]);
        let frames = p.events(&[AdminEvent::Hangup {
            call: call("c2"),
            code: Some(487),
            reason: None,
        }]);
        assert!(
            frames
                .iter()
                .any(|f| text(f).contains("Voice-Message: 1/0")),
            "{frames:?}"
        );
    }

    #[test]
    fn refreshes_expiry_and_refusals() {
        let mut p = PresenceServer::new("pbx.test", "relay.test");
        let known = |u: &str| u == "bob";
        let m = Message::parse(b"SUBSCRIBE sip:nobody@pbx.test SIP/2.0\r\nVia: SIP/2.0/WSS a.invalid;branch=z9hG4bKq\r\nFrom: <sip:alice@pbx.test>;tag=a1\r\nTo: <sip:nobody@pbx.test>\r\nCall-ID: q\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:x@a.invalid>\r\nEvent: dialog\r\nContent-Length: 0\r\n\r\n").expect("parses");
        assert!(text(&p.subscribe(at(0), ConnId(1), &m, known)[0]).starts_with("SIP/2.0 404"));
        for (event, expires, status) in [("conference", 600, "489"), ("dialog", 10, "423")] {
            let s = subscribe(event, None, expires);
            let m = Message::parse(s.as_bytes()).expect("parses");
            assert!(
                text(&p.subscribe(at(0), ConnId(1), &m, known)[0])
                    .starts_with(&format!("SIP/2.0 {status}"))
            );
        }
        let s = subscribe("presence", None, 120);
        let m = Message::parse(s.as_bytes()).expect("parses");
        let frames = p.subscribe(at(0), ConnId(1), &m, known);
        let ours = Message::parse(&frames[0].1)
            .expect("200")
            .to()
            .tag()
            .expect("tag")
            .to_owned();
        assert!(text(&frames[1]).contains("<basic>closed</basic>"));
        // Another connection cannot refresh it; its own can.
        let refresh = subscribe("presence", Some(&ours), 120);
        let m = Message::parse(refresh.as_bytes()).expect("parses");
        assert!(text(&p.subscribe(at(10), ConnId(9), &m, known)[0]).starts_with("SIP/2.0 481"));
        assert!(text(&p.subscribe(at(10), ConnId(1), &m, known)[0]).starts_with("SIP/2.0 200"));
        let online = p.events(&[AdminEvent::Registered {
            session: ConnId(3),
            client: "sip:bob@pbx.test".into(),
        }]);
        assert!(text(&online[0]).contains("<basic>open</basic>"));
        // Not refreshed: it ends with a terminated NOTIFY at its expiry.
        assert_eq!(p.poll_timeout(), Some(at(130)));
        assert!(p.handle_timeout(at(129)).is_empty());
        let ended = p.handle_timeout(at(130));
        assert!(text(&ended[0]).contains("Subscription-State: terminated;reason=timeout"));
        assert!(
            text(&ended[0]).contains("CSeq: 4 NOTIFY"),
            "after the NOTIFYs of the subscribe, the refresh and the binding: {}",
            text(&ended[0])
        );
        assert_eq!(p.poll_timeout(), None);
    }
}
