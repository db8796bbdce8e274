//! The bodies of the event packages a phone watches, parsed here so that
//! apps get states, not XML: voicemail summaries (RFC 3842
//! `application/simple-message-summary`), busy lamps (RFC 4235
//! `application/dialog-info+xml`) and presence (RFC 3863
//! `application/pidf+xml`).
//!
//! A small scanner of tags, attributes and text, not an XML library: these
//! documents are shallow, the SDK's bytes count (an XML crate would cost
//! tens of KB of wasm), and what is not understood is skipped. Namespace
//! prefixes are ignored (`dm:note` is a `note`).

use crate::prelude::*;
use crate::sip::{find_byte, find_str, str_from, str_range, str_to};

/// A voicemail summary (RFC 3842 §5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageSummary {
    /// Messages are waiting (the voicemail light).
    pub waiting: bool,
    /// The mailbox, when the server names it.
    pub account: Option<String>,
    /// The counts per class of message.
    pub counts: Vec<MessageCounts>,
}

/// One class's counts: `Voice-Message: 2/8 (0/2)`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// `voice`, `fax`, `pager`, `multimedia`, `text` or `none`.
    pub class: String,
    /// New messages.
    pub new: u32,
    /// Old (heard) messages.
    pub old: u32,
    /// New urgent messages.
    pub urgent_new: u32,
    /// Old urgent messages.
    pub urgent_old: u32,
}

/// What a busy lamp shows for the watched user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lamp {
    /// No call.
    Idle,
    /// A call rings at the user.
    Ringing,
    /// The user is on a call, or placing one.
    Busy,
}

impl Lamp {
    /// `idle`, `ringing`, `busy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Lamp::Idle => "idle",
            Lamp::Ringing => "ringing",
            Lamp::Busy => "busy",
        }
    }
}

/// The watched user's calls as a lamp (RFC 4235).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DialogInfo {
    /// The watched user.
    pub entity: String,
    /// The lamp's state, from the busiest of the user's dialogs.
    pub lamp: Lamp,
    /// That dialog's direction: `true` when the user placed the call.
    pub initiator: Option<bool>,
    /// That dialog's other party, when given.
    pub other: Option<String>,
    /// The document lists every dialog (`full`), or only changes.
    pub full: bool,
}

/// Presence (RFC 3863).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Presence {
    /// The user.
    pub entity: String,
    /// Some tuple's basic status is `open` (reachable).
    pub open: bool,
    /// The first note, when there is one.
    pub note: Option<String>,
}

/// A NOTIFY body, parsed by its content type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Status {
    /// `application/simple-message-summary`.
    MessageSummary(MessageSummary),
    /// `application/dialog-info+xml`.
    DialogInfo(DialogInfo),
    /// `application/pidf+xml`.
    Presence(Presence),
}

/// `body` parsed by its `content_type`; `None` for another type or a body
/// that does not hold what the type says.
pub fn parse(content_type: &str, body: &str) -> Option<Status> {
    let media = content_type.split(';').next().unwrap_or_default().trim();
    if media.eq_ignore_ascii_case("application/simple-message-summary") {
        message_summary(body).map(Status::MessageSummary)
    } else if media.eq_ignore_ascii_case("application/dialog-info+xml") {
        dialog_info(body).map(Status::DialogInfo)
    } else if media.eq_ignore_ascii_case("application/pidf+xml") {
        presence(body).map(Status::Presence)
    } else {
        None
    }
}

/// RFC 3842 §5.2: `Messages-Waiting` (required), `Message-Account`, and a
/// line per class, `Voice-Message: new/old (urgent new/urgent old)`.
pub fn message_summary(body: &str) -> Option<MessageSummary> {
    let mut summary = MessageSummary::default();
    let mut waiting = None;
    for line in body.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        match name.as_str() {
            "messages-waiting" => waiting = Some(value.eq_ignore_ascii_case("yes")),
            "message-account" => summary.account = Some(value.to_owned()),
            _ => {
                if let Some(class) = name.strip_suffix("-message")
                    && let Some(counts) = counts(class, value)
                {
                    summary.counts.push(counts);
                }
            }
        }
    }
    summary.waiting = waiting?;
    Some(summary)
}

/// `2/8 (0/2)` of `class`.
fn counts(class: &str, value: &str) -> Option<MessageCounts> {
    let (main, urgent) = match value.split_once('(') {
        Some((main, rest)) => (main, Some(rest.trim_end().trim_end_matches(')'))),
        None => (value, None),
    };
    let pair = |s: &str| -> Option<(u32, u32)> {
        let (a, b) = s.split_once('/')?;
        Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
    };
    let (new, old) = pair(main)?;
    let (urgent_new, urgent_old) = urgent.and_then(pair).unwrap_or((0, 0));
    Some(MessageCounts {
        class: class.to_owned(),
        new,
        old,
        urgent_new,
        urgent_old,
    })
}

/// RFC 4235: the `<dialog-info>` root's entity and state, and its
/// dialogs' `<state>`, direction and `<remote><identity>`.
pub fn dialog_info(body: &str) -> Option<DialogInfo> {
    let mut info = None;
    // The dialog being read: (its state, initiator?, remote identity).
    let mut dialog: Option<(String, Option<bool>, Option<String>)> = None;
    let mut path: Vec<&str> = Vec::new();
    let mut best: Option<(Lamp, Option<bool>, Option<String>)> = None;
    for item in Scanner::new(body) {
        match item {
            Item::Start { name, attrs, empty } => {
                match name {
                    "dialog-info" => {
                        info = Some((
                            attr(attrs, "entity").unwrap_or_default(),
                            attr(attrs, "state").is_none_or(|s| s != "partial"),
                        ));
                    }
                    "dialog" if path.last() == Some(&"dialog-info") => {
                        let initiator = attr(attrs, "direction").map(|d| d == "initiator");
                        dialog = Some((String::new(), initiator, None));
                    }
                    _ => {}
                }
                if !empty {
                    path.push(name);
                }
            }
            Item::Text(text) => {
                let text = decode(text.trim());
                match (path.last(), path.iter().rev().nth(1), dialog.as_mut()) {
                    (Some(&"state"), Some(&"dialog"), Some(d)) => d.0 = text,
                    (Some(&"identity"), Some(&"remote"), Some(d)) => d.2 = Some(text),
                    _ => {}
                }
            }
            Item::End { name } => {
                if let Some(i) = path.iter().rposition(|p| *p == name) {
                    path.truncate(i);
                }
                if name == "dialog"
                    && let Some((state, initiator, other)) = dialog.take()
                {
                    let lamp = match state.to_ascii_lowercase().as_str() {
                        "confirmed" => Lamp::Busy,
                        "trying" | "proceeding" | "early" if initiator == Some(true) => Lamp::Busy,
                        "trying" | "proceeding" | "early" => Lamp::Ringing,
                        _ => Lamp::Idle,
                    };
                    let rank = |l: Lamp| match l {
                        Lamp::Idle => 0,
                        Lamp::Ringing => 1,
                        Lamp::Busy => 2,
                    };
                    if best.as_ref().is_none_or(|b| rank(lamp) > rank(b.0)) {
                        best = Some((lamp, initiator, other));
                    }
                }
            }
        }
    }
    let (entity, full) = info?;
    let (lamp, initiator, other) = best.unwrap_or((Lamp::Idle, None, None));
    let (initiator, other) = if lamp == Lamp::Idle {
        (None, None)
    } else {
        (initiator, other)
    };
    Some(DialogInfo {
        entity,
        lamp,
        initiator,
        other,
        full,
    })
}

/// RFC 3863: the `<presence>` root's entity, whether any tuple's
/// `<basic>` is `open`, and the first `<note>`.
pub fn presence(body: &str) -> Option<Presence> {
    let mut entity = None;
    let mut open = false;
    let mut note = None;
    let mut current: Option<&str> = None;
    for item in Scanner::new(body) {
        match item {
            Item::Start { name, attrs, empty } => {
                if name == "presence" {
                    entity = Some(attr(attrs, "entity").unwrap_or_default());
                }
                current = (!empty).then_some(name);
            }
            Item::Text(text) => match current {
                Some("basic") => open |= decode(text.trim()).eq_ignore_ascii_case("open"),
                Some("note") if note.is_none() => {
                    let text = decode(text.trim());
                    if !text.is_empty() {
                        note = Some(text);
                    }
                }
                _ => {}
            },
            Item::End { .. } => current = None,
        }
    }
    Some(Presence {
        entity: entity?,
        open,
        note,
    })
}

/// One piece of an XML document.
#[derive(Debug, PartialEq, Eq)]
enum Item<'a> {
    /// `<name attrs>` (or `<name attrs/>`: `empty`), the name without its
    /// prefix.
    Start {
        name: &'a str,
        attrs: &'a str,
        empty: bool,
    },
    /// `</name>`.
    End { name: &'a str },
    /// Text between tags, entities not yet decoded.
    Text(&'a str),
}

/// Tags and text in order; declarations, comments and CDATA are skipped.
struct Scanner<'a> {
    rest: &'a str,
}

impl<'a> Scanner<'a> {
    fn new(doc: &'a str) -> Self {
        Self { rest: doc }
    }
}

/// `name` without a namespace prefix.
fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

impl<'a> Iterator for Scanner<'a> {
    type Item = Item<'a>;

    fn next(&mut self) -> Option<Item<'a>> {
        loop {
            if self.rest.is_empty() {
                return None;
            }
            let Some(open) = self.rest.find('<') else {
                let text = self.rest;
                self.rest = "";
                return (!text.trim().is_empty()).then_some(Item::Text(text));
            };
            if open > 0 {
                let text = str_to(self.rest, open);
                self.rest = str_from(self.rest, open);
                if !text.trim().is_empty() {
                    return Some(Item::Text(text));
                }
                continue;
            }
            // A comment, CDATA, a declaration or processing instruction:
            // skipped to its end.
            for (start, end) in [
                ("<!--", "-->"),
                ("<![CDATA[", "]]>"),
                ("<?", "?>"),
                ("<!", ">"),
            ] {
                if self.rest.starts_with(start) {
                    self.rest = match find_str(self.rest, end) {
                        Some(at) => str_from(self.rest, at + end.len()),
                        None => "",
                    };
                    break;
                }
            }
            if !self.rest.starts_with('<')
                || self.rest.starts_with("<!")
                || self.rest.starts_with("<?")
            {
                continue;
            }
            let close = self.rest.find('>')?;
            let tag = str_range(self.rest, 1, close);
            self.rest = str_from(self.rest, close + 1);
            if let Some(name) = tag.strip_prefix('/') {
                return Some(Item::End {
                    name: local(name.trim()),
                });
            }
            let (tag, empty) = match tag.strip_suffix('/') {
                Some(tag) => (tag, true),
                None => (tag, false),
            };
            let end = tag
                .find(|c: char| c.is_ascii_whitespace())
                .unwrap_or(tag.len());
            return Some(Item::Start {
                name: local(str_to(tag, end)),
                attrs: str_from(tag, end),
                empty,
            });
        }
    }
}

/// The value of attribute `name` (its prefix ignored), decoded.
fn attr(attrs: &str, name: &str) -> Option<String> {
    let mut rest = attrs;
    loop {
        let eq = rest.find('=')?;
        let key = local(str_to(rest, eq).trim());
        let after = str_from(rest, eq + 1).trim_start();
        let quote = after.chars().next().filter(|q| *q == '"' || *q == '\'')?;
        let value_end = str_from(after, 1).find(quote)? + 1;
        if key == name {
            return Some(decode(str_range(after, 1, value_end)));
        }
        rest = str_from(after, value_end + 1);
    }
}

/// `text` with the XML entities and character references replaced.
fn decode(text: &str) -> String {
    if find_byte(text, b'&').is_none() {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(str_to(rest, at));
        rest = str_from(rest, at);
        let Some(semi) = rest.find(';').filter(|s| *s <= 10) else {
            out.push('&');
            rest = str_from(rest, 1);
            continue;
        };
        let entity = str_range(rest, 1, semi);
        let c = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = str_from(rest, semi + 1);
            }
            None => {
                out.push('&');
                rest = str_from(rest, 1);
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_voicemail_summary_gives_the_light_and_the_counts_per_class() {
        // RFC 3842 §5.2's example.
        let body = "Messages-Waiting: yes\r\nMessage-Account: sip:alice@vmail.example.com\r\n\
Voice-Message: 4/8 (1/2)\r\nFax-Message: 2/1\r\n";
        let s = message_summary(body).expect("parses");
        assert!(s.waiting);
        assert_eq!(s.account.as_deref(), Some("sip:alice@vmail.example.com"));
        assert_eq!(
            s.counts,
            [
                MessageCounts {
                    class: "voice".into(),
                    new: 4,
                    old: 8,
                    urgent_new: 1,
                    urgent_old: 2
                },
                MessageCounts {
                    class: "fax".into(),
                    new: 2,
                    old: 1,
                    urgent_new: 0,
                    urgent_old: 0
                },
            ]
        );
        assert_eq!(
            message_summary("Messages-Waiting: no\r\n").map(|s| s.waiting),
            Some(false)
        );
        assert_eq!(
            message_summary("Voice-Message: 1/0\r\n"),
            None,
            "the light is required"
        );
        assert_eq!(
            parse("application/simple-message-summary", body),
            Some(Status::MessageSummary(s))
        );
    }

    const RINGING: &str = r#"<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" entity="sip:bob@example.com">
  <dialog id="as7d900as8" call-id="a84b" local-tag="1928" direction="recipient">
    <state>early</state>
    <remote><identity display="Alice">sip:alice@example.com</identity><target uri="sip:alice@pc33.example.com"/></remote>
  </dialog>
</dialog-info>"#;

    #[test]
    fn a_lamp_rings_then_is_busy_then_idle() {
        let ringing = dialog_info(RINGING).expect("parses");
        assert_eq!(
            ringing,
            DialogInfo {
                entity: "sip:bob@example.com".into(),
                lamp: Lamp::Ringing,
                initiator: Some(false),
                other: Some("sip:alice@example.com".into()),
                full: true,
            }
        );
        let busy = RINGING.replace(
            "<state>early</state>",
            "<state event=\"answered\">confirmed</state>",
        );
        assert_eq!(dialog_info(&busy).map(|d| d.lamp), Some(Lamp::Busy));
        let calling = RINGING.replace("recipient", "initiator");
        assert_eq!(
            dialog_info(&calling).map(|d| d.lamp),
            Some(Lamp::Busy),
            "placing a call"
        );
        let ended = RINGING.replace("<state>early</state>", "<state>terminated</state>");
        let idle = dialog_info(&ended).expect("parses");
        assert_eq!((idle.lamp, idle.other), (Lamp::Idle, None));
        // No dialog at all, with prefixes and a partial document.
        let empty = r#"<d:dialog-info xmlns:d="urn:ietf:params:xml:ns:dialog-info" d:state="partial" entity="sip:bob@example.com" version="3"/>"#;
        assert_eq!(
            dialog_info(empty),
            Some(DialogInfo {
                entity: "sip:bob@example.com".into(),
                lamp: Lamp::Idle,
                initiator: None,
                other: None,
                full: false,
            })
        );
        // Of two dialogs, the busier shows.
        let two = RINGING.replace(
            "</dialog-info>",
            "<dialog id=\"x\" direction=\"initiator\"><state>confirmed</state></dialog></dialog-info>",
        );
        assert_eq!(
            dialog_info(&two).map(|d| (d.lamp, d.initiator)),
            Some((Lamp::Busy, Some(true)))
        );
        assert_eq!(dialog_info("<presence/>"), None);
    }

    #[test]
    fn presence_is_open_or_closed_with_a_note() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="pres:someone@example.com">
  <!-- a comment <basic>open</basic> -->
  <tuple id="sg89ae"><status><basic>open</basic></status><contact priority="0.8">tel:+09012345678</contact></tuple>
  <dm:note>In a meeting &amp; busy</dm:note>
</presence>"#;
        assert_eq!(
            presence(body),
            Some(Presence {
                entity: "pres:someone@example.com".into(),
                open: true,
                note: Some("In a meeting & busy".into()),
            })
        );
        let closed = body.replace(
            "<basic>open</basic></status>",
            "<basic>closed</basic></status>",
        );
        assert_eq!(presence(&closed).map(|p| p.open), Some(false));
        assert_eq!(presence("not xml at all"), None);
    }

    #[test]
    fn the_scanner_never_panics_on_broken_documents() {
        for doc in [
            "<",
            "<a",
            "<a b=\"c",
            "</",
            "<!--",
            "<![CDATA[x",
            "&#xZZ;<a>&#1114112;</a>",
            "<a b='1' c=>",
            "<a/>",
        ] {
            let _ = dialog_info(doc);
            let _ = presence(doc);
            let _ = message_summary(doc);
        }
        assert_eq!(
            decode("a &lt; b &#65;&#x42; &bogus; &"),
            "a < b AB &bogus; &"
        );
        assert_eq!(
            attr(r#" x:entity='sip:a@b' state="full""#, "entity").as_deref(),
            Some("sip:a@b")
        );
    }
}
