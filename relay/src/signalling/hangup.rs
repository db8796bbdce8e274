//! What the relay needs to end a call itself, when its media dies (no RTP
//! for the configured time, a failed DTLS handshake): the dialog as both
//! sides know it, learnt from the INVITE and its 2xx as they pass, so that
//! it can send each side a BYE that side accepts (RFC 3261 §12.2.1.1), the
//! way Kamailio's dialog module ends a call for rtpengine.

use std::net::SocketAddr;

use sipline_core::sip::{HeaderName, Message, MessageBuilder, Method, NameAddr, split_commas};

/// Who sent the INVITE that made the dialog.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Caller {
    Browser,
    Pbx,
}

/// One dialog, from the relay's seat between the two.
#[derive(Debug, Clone)]
pub(crate) struct Dialog {
    caller: Caller,
    /// The PBX that holds the dialog; none when the relay itself is the
    /// far end (the echo extension).
    pub pbx: Option<SocketAddr>,
    /// Whether the 2xx was seen (later ones are re-INVITEs').
    answered: bool,
    call_id: String,
    /// The browser's From or To value, tag included.
    browser_party: String,
    /// The PBX side's From or To value, tag included (once answered).
    pbx_party: Option<String>,
    /// The browser's own Contact URI (the `.invalid` one).
    browser_target: Option<String>,
    /// The PBX's Contact URI.
    pbx_target: Option<String>,
    /// Route toward the PBX beyond the relay, from the Record-Route.
    pbx_route: Vec<String>,
    /// The highest CSeq each side has used.
    browser_cseq: u32,
    pbx_cseq: u32,
    /// While a browser's call rings: the CANCEL of its INVITE as the relay
    /// forwarded it, and where it went (a stopping relay sends it).
    pub cancel: Option<(SocketAddr, Vec<u8>)>,
}

/// The two BYEs that end a dialog.
pub(crate) struct Byes {
    pub to_browser: Vec<u8>,
    pub to_pbx: Vec<u8>,
    /// The branch of the BYE to the PBX (its transaction key).
    pub pbx_branch: String,
}

fn contact_uri(msg: &Message<'_>) -> Option<String> {
    msg.header_values(HeaderName::Contact)
        .next()
        .and_then(NameAddr::parse)
        .map(|na| na.uri_text.to_owned())
}

impl Dialog {
    /// Whether `msg`, sent by a browser, belongs to this dialog: its From
    /// and To tags are the browser's and the PBX's, and its Contact is the
    /// browser's own. This is what lets a browser that reconnected take its
    /// call back, and nobody else.
    pub fn is_browser_request(&self, msg: &Message<'_>) -> bool {
        let tag = |party: &str| NameAddr::parse(party).and_then(|na| na.tag().map(str::to_owned));
        let ours = tag(&self.browser_party);
        let theirs = self.pbx_party.as_deref().and_then(tag);
        // The Contact too: the browser's `.invalid` URI never reaches the
        // PBX (the relay rewrites it), so the far end, which knows the
        // tags, cannot present it.
        ours.is_some()
            && ours.as_deref() == msg.from().tag()
            && theirs.is_some()
            && theirs.as_deref() == msg.to().tag()
            && self.browser_target.is_some()
            && contact_uri(msg) == self.browser_target
    }

    /// Starts from an initial INVITE as the relay received it, from the
    /// browser (`Caller::Browser`) or from the PBX.
    pub fn from_invite(msg: &Message<'_>, caller: Caller, pbx: Option<SocketAddr>) -> Self {
        let cseq = msg.cseq().seq;
        let (browser_party, browser_cseq, pbx_cseq) = match caller {
            Caller::Browser => (msg.header(HeaderName::From), cseq, 0),
            Caller::Pbx => (msg.header(HeaderName::To), 0, cseq),
        };
        let target = contact_uri(msg);
        Self {
            caller,
            pbx,
            answered: false,
            call_id: msg.call_id().to_owned(),
            browser_party: browser_party.unwrap_or_default().to_owned(),
            pbx_party: (caller == Caller::Pbx)
                .then(|| msg.header(HeaderName::From).unwrap_or_default().to_owned()),
            browser_target: (caller == Caller::Browser)
                .then(|| target.clone())
                .flatten(),
            pbx_target: (caller == Caller::Pbx).then_some(target).flatten(),
            pbx_route: Vec::new(),
            browser_cseq,
            pbx_cseq,
            cancel: None,
        }
    }

    /// The 2xx to the INVITE, as it arrived: it names the callee's tag,
    /// Contact and the route set. `own` tells the relay's Record-Route
    /// entries apart.
    pub fn answered(&mut self, msg: &Message<'_>, own: impl Fn(&str) -> bool) {
        self.cancel = None;
        if std::mem::replace(&mut self.answered, true) {
            return;
        }
        let to = msg.header(HeaderName::To).unwrap_or_default().to_owned();
        let target = contact_uri(msg);
        let entries: Vec<&str> = msg
            .header_values(HeaderName::RecordRoute)
            .flat_map(split_commas)
            .collect();
        let mut route: Vec<String> = entries
            .iter()
            .filter(|v| !own(v))
            .map(|v| (*v).to_owned())
            .collect();
        match self.caller {
            Caller::Browser => {
                // The browser is the UAC: the PBX side's entries are above
                // ours, and a UAC reverses the list (§12.1.2).
                route.reverse();
                self.pbx_party = Some(to);
                self.pbx_target = target;
            }
            Caller::Pbx => {
                self.browser_party = to;
                self.browser_target = target;
            }
        }
        self.pbx_route = route;
    }

    /// A later request in the dialog: its CSeq is the sender's new high.
    pub fn request(&mut self, msg: &Message<'_>, from_browser: bool) {
        let n = msg.cseq().seq;
        let high = if from_browser {
            &mut self.browser_cseq
        } else {
            &mut self.pbx_cseq
        };
        *high = (*high).max(n);
    }

    /// The BYEs, with a Reason (RFC 3326) that says why; `None` before the
    /// dialog is known to both sides. `browser_via` and `pbx_via` are the
    /// relay's Via values toward each side; `branch` is unique per BYE.
    pub fn byes(&self, browser_via: &str, pbx_via: &str, reason: &str) -> Option<Byes> {
        let pbx_party = self.pbx_party.as_deref()?;
        let browser_target = self.browser_target.as_deref()?;
        let pbx_target = self.pbx_target.as_deref()?;
        let reason_header = format!("SIP;cause=200;text=\"{reason}\"");
        let mut b = MessageBuilder::request(Method::Bye, browser_target);
        b.header("Via", browser_via)
            .header("Max-Forwards", "70")
            .header("From", pbx_party)
            .header("To", &self.browser_party)
            .header("Call-ID", &self.call_id)
            .header_parts("CSeq", &[&(self.pbx_cseq + 1).to_string(), " BYE"])
            .header("Reason", &reason_header);
        let to_browser = b.finish(None, b"");
        let mut b = MessageBuilder::request(Method::Bye, pbx_target);
        b.header("Via", pbx_via).header("Max-Forwards", "70");
        for r in &self.pbx_route {
            b.header("Route", r);
        }
        b.header("From", &self.browser_party)
            .header("To", pbx_party)
            .header("Call-ID", &self.call_id)
            .header_parts("CSeq", &[&(self.browser_cseq + 1).to_string(), " BYE"])
            .header("Reason", &reason_header);
        let to_pbx = b.finish(None, b"");
        let pbx_branch = pbx_via
            .split(';')
            .find_map(|p| p.strip_prefix("branch="))
            .unwrap_or_default()
            .to_owned();
        Some(Byes {
            to_browser,
            to_pbx,
            pbx_branch,
        })
    }
}
