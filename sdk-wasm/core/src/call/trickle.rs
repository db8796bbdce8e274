//! Trickle ICE over SIP (RFC 8838, RFC 8840), as far as calls need it to
//! start without waiting for ICE gathering toward a full-ICE far end.
//!
//! Both sides say they take it with `Supported: trickle-ice` and
//! `Recv-Info: trickle-ice` in the INVITE and its 2xx. Then an offer or
//! answer of ours may leave with no candidates: they follow in INFOs of
//! the `trickle-ice` package as the browser gathers them, in the confirmed
//! dialog (`application/trickle-ice-sdpfrag`: our ICE credentials, each
//! section's `m=` line and `a=mid`, the candidates not sent before, and
//! `a=end-of-candidates` in the last). The far end's INFOs of that package go to the
//! browser as [`Event::RemoteCandidates`]. Toward a far end that does not
//! take it, our candidates go in a re-INVITE instead.

use super::Calls;
use crate::ctx::Ctx;
use crate::error::ActionError;
use crate::event::{Event, RemoteCandidate};
use crate::ids::CallId;
use crate::prelude::*;
use crate::sdp::Sdp;
use crate::sip::{HeaderName, Message, Method};

/// The option tag and the INFO package's name.
pub(super) const TRICKLE: &str = "trickle-ice";
/// The INFO package's body type.
const SDPFRAG: &str = "application/trickle-ice-sdpfrag";

/// Whether `msg` (an INVITE or its 2xx) says its sender takes trickled
/// candidates: the option tag, and the package among those it receives.
pub(super) fn supported(msg: &Message<'_>) -> bool {
    msg.lists(HeaderName::Supported, TRICKLE) && msg.lists(HeaderName::Other("Recv-Info"), TRICKLE)
}

/// Whether `msg` is an INFO of the trickle-ice package (a header of one
/// value, RFC 6086 §8.2.1).
pub(super) fn is_trickle_info(msg: &Message<'_>) -> bool {
    msg.header(HeaderName::Other("Info-Package"))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case(TRICKLE))
}

/// The sdpfrag of the candidates in our local description `sdp` that are
/// not in `sent`, ending with `a=end-of-candidates` when gathering is
/// `complete`; with the candidates it names. `None` when there is nothing
/// to say (no new candidate, and not the end).
pub(super) fn sdpfrag(sdp: &str, sent: &[String], complete: bool) -> Option<(String, Vec<String>)> {
    let parsed = Sdp::parse(sdp.as_bytes()).ok()?;
    let credential = |name: &'static str| {
        parsed.attribute(name).flatten().or_else(|| {
            parsed
                .media
                .iter()
                .find_map(|m| m.attribute(name).flatten())
        })
    };
    let mut out = String::new();
    for name in ["ice-ufrag", "ice-pwd"] {
        out.push_str("a=");
        out.push_str(name);
        out.push(':');
        out.push_str(credential(name)?);
        out.push_str("\r\n");
    }
    // Every section, with or without candidates (a bundled one has
    // none), so that a section's index here is its m-line index.
    let mut new: Vec<String> = Vec::new();
    for m in &parsed.media {
        for part in [
            "m=",
            m.kind,
            " ",
            m.port_field,
            " ",
            m.proto,
            " ",
            m.formats,
            "\r\n",
        ] {
            out.push_str(part);
        }
        if let Some(mid) = m.attribute("mid").flatten() {
            out.push_str("a=mid:");
            out.push_str(mid);
            out.push_str("\r\n");
        }
        for c in m.attributes("candidate").flatten() {
            if sent.iter().chain(&new).any(|s| s == c) {
                continue;
            }
            out.push_str("a=candidate:");
            out.push_str(c);
            out.push_str("\r\n");
            new.push(c.to_owned());
        }
    }
    if complete {
        out.push_str("a=end-of-candidates\r\n");
    } else if new.is_empty() {
        return None;
    }
    Some((out, new))
}

/// The far end's sdpfrag: each candidate with its section's mid and index
/// (the m-line index, when the fragment lists every section as ours
/// does), and whether it ended gathering.
pub(super) fn parse_sdpfrag(body: &str) -> (Vec<RemoteCandidate>, bool) {
    let mut candidates = Vec::new();
    let mut end = false;
    let mut section: Option<usize> = None;
    let mut mid: Option<String> = None;
    for line in body.lines().map(str::trim_end) {
        if line.starts_with("m=") {
            section = Some(section.map_or(0, |i| i + 1));
            mid = None;
        } else if let Some(v) = line.strip_prefix("a=mid:") {
            mid = Some(v.trim().to_owned());
        } else if let Some(v) = line.strip_prefix("a=candidate:") {
            candidates.push(RemoteCandidate {
                candidate: ["candidate:", v.trim()].concat(),
                mid: mid.clone(),
                index: section.unwrap_or(0),
            });
        } else if line == "a=end-of-candidates" {
            end = true;
        }
    }
    (candidates, end)
}

impl Calls {
    /// Whether our answer to incoming call `id`, not answered yet, may go
    /// without candidates: its caller takes them trickled.
    pub fn answer_may_trickle(&self, id: CallId) -> bool {
        self.incoming
            .iter()
            .any(|c| c.id == id && c.ok.is_none() && c.trickle)
    }

    /// Trickles our candidates to call `id`'s far end in an INFO of the
    /// trickle-ice package: those of our local description `sdp` not sent
    /// yet, and the end of them once gathering is `complete`. The
    /// [`Event::CandidatesNeeded`] step when it said `trickle`, called as
    /// candidates come; an INFO goes only when there is something new.
    pub fn send_candidates(
        &mut self,
        cx: &mut Ctx<'_>,
        id: CallId,
        sdp: &str,
        complete: bool,
    ) -> Result<(), ActionError> {
        let sent = self
            .trickled
            .iter()
            .find(|(c, _)| *c == id)
            .map_or(&[][..], |(_, s)| &s[..]);
        let Some((body, new)) = sdpfrag(sdp, sent, complete) else {
            return Ok(());
        };
        let headers = [
            ("Info-Package", TRICKLE),
            ("Content-Disposition", "Info-Package"),
        ];
        self.request_in_dialog(cx, id, Method::Info, &headers, Some((SDPFRAG, &body)))?;
        match self.trickled.iter_mut().find(|(c, _)| *c == id) {
            Some((_, sent)) => sent.extend(new),
            None => self.trickled.push((id, new)),
        }
        Ok(())
    }

    /// The far end's INFO of the trickle-ice package in call `id`: its
    /// candidates for the browser; the status to answer with.
    pub(super) fn on_trickle_info(
        &mut self,
        cx: &mut Ctx<'_>,
        id: CallId,
        msg: &Message<'_>,
    ) -> u16 {
        let content_type = msg.header(HeaderName::ContentType).unwrap_or_default();
        if !content_type.trim().eq_ignore_ascii_case(SDPFRAG) {
            return 415;
        }
        let (candidates, end) = parse_sdpfrag(&String::from_utf8_lossy(msg.body()));
        if !candidates.is_empty() || end {
            cx.events.push(Event::RemoteCandidates {
                call: id,
                candidates,
                end,
            });
        }
        200
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n\
m=audio 50000 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 127.0.0.1\r\n\
a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0\r\n\
a=candidate:2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active\r\n\
a=ice-ufrag:AbCd\r\na=ice-pwd:0123456789abcdefghijkl\r\na=ice-options:trickle\r\na=mid:0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:AbCd\r\na=mid:1\r\n";

    #[test]
    fn our_candidates_become_one_sdpfrag_that_reads_back() {
        let (frag, new) = sdpfrag(LOCAL, &[], true).expect("candidates");
        assert_eq!(new.len(), 2);
        assert_eq!(
            frag,
            "a=ice-ufrag:AbCd\r\na=ice-pwd:0123456789abcdefghijkl\r\n\
m=audio 50000 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\n\
a=candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0\r\n\
a=candidate:2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\n\
a=end-of-candidates\r\n"
        );
        let (candidates, end) = parse_sdpfrag(&frag);
        assert!(end);
        assert_eq!(candidates.len(), 2);
        assert_eq!(
            candidates[0],
            RemoteCandidate {
                candidate: "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host generation 0"
                    .into(),
                mid: Some("0".into()),
                index: 0,
            }
        );
    }

    #[test]
    fn nothing_to_trickle_and_odd_fragments() {
        let bare = LOCAL
            .lines()
            .filter(|l| !l.starts_with("a=candidate"))
            .collect::<Vec<_>>()
            .join("\r\n");
        assert_eq!(sdpfrag(&bare, &[], false), None, "no candidates, no INFO");
        assert!(
            sdpfrag(&bare, &[], true).is_some_and(|(f, _)| f.ends_with("a=end-of-candidates\r\n")),
            "but the end of them is news"
        );
        assert_eq!(sdpfrag("not sdp", &[], true), None);
        // What went already does not go again.
        let (_, first) = sdpfrag(LOCAL, &[], false).expect("candidates");
        let (frag, new) = sdpfrag(LOCAL, &first[..1], false).expect("one left");
        assert_eq!(new, first[1..]);
        assert!(!frag.contains(&first[0]), "{frag}");
        assert_eq!(sdpfrag(LOCAL, &first, false), None);
        // No mid: the section's index says where; the end alone counts.
        let (c, end) = parse_sdpfrag(
            "m=audio 9 RTP/AVP 0\na=candidate:1 1 UDP 1 192.0.2.1 5000 typ host\nm=video 9 RTP/AVP 96\na=candidate:2 1 UDP 1 192.0.2.1 5002 typ host\n",
        );
        assert!(!end);
        assert_eq!((c[0].index, c[1].index), (0, 1));
        assert_eq!(c[1].mid, None);
        assert_eq!(parse_sdpfrag("a=end-of-candidates\r\n"), (Vec::new(), true));
    }
}
