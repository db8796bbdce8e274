//! SIP dialogs as a user agent keeps them (RFC 3261 §12): made from an
//! INVITE and its response (as the caller, §12.1.2) or from a received
//! INVITE (as the callee, §12.1.1), they build the requests that follow in
//! the call (route set, remote target, tags, CSeq) and check those that
//! arrive. Calls (issue 6) are built on them; the state is plain text, so
//! that a dialog survives what the transport does.

use crate::prelude::*;
use crate::sip::{HeaderName, Message, MessageBuilder, Method, NameAddr, push_decimal};

/// Why a dialog could not be made from a message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    /// The response (or request) carries no tag for the other side.
    #[error("no tag for the other party")]
    MissingTag,
    /// No usable Contact: the other side's target is unknown.
    #[error("no usable Contact")]
    MissingContact,
    /// A request of the dialog arrived out of order (RFC 3261 §12.2.2:
    /// answered `500`).
    #[error("CSeq {got} is lower than {expected}")]
    OutOfOrder {
        /// The request's CSeq.
        got: u32,
        /// The highest CSeq the other side used.
        expected: u32,
    },
}

/// Early (a provisional response with a tag) or confirmed (a 2xx).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DialogState {
    /// Made by a 1xx with a To tag: may become confirmed, or end.
    Early,
    /// Made by a 2xx.
    Confirmed,
}

/// One dialog, from this user agent's side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dialog {
    call_id: String,
    local_tag: String,
    remote_tag: String,
    /// Our From (in our requests) header value, tag included.
    local_party: String,
    /// Their header value (our requests' To), tag included.
    remote_party: String,
    /// Where our requests go: their Contact URI.
    remote_target: String,
    /// The Route values our requests carry, in order.
    route_set: Vec<String>,
    /// The last CSeq we used; `None` until we send a request (callee).
    local_cseq: Option<u32>,
    /// The highest CSeq they used; `None` until they send a request.
    remote_cseq: Option<u32>,
    state: DialogState,
}

fn contact_uri(msg: &Message<'_>) -> Result<String, DialogError> {
    msg.header_values(HeaderName::Contact)
        .next()
        .and_then(NameAddr::parse)
        .map(|na| na.uri_text.to_owned())
        .ok_or(DialogError::MissingContact)
}

fn record_route(msg: &Message<'_>) -> Vec<String> {
    msg.header_values(HeaderName::RecordRoute)
        .map(str::to_owned)
        .collect()
}

impl Dialog {
    /// The caller's dialog, from the INVITE it sent and a response with a
    /// To tag: early for a 1xx, confirmed for a 2xx.
    pub fn caller(request: &Message<'_>, response: &Message<'_>) -> Result<Self, DialogError> {
        let remote_tag = response.to().tag().ok_or(DialogError::MissingTag)?;
        let local_tag = request.from().tag().ok_or(DialogError::MissingTag)?;
        let mut route_set = record_route(response);
        // The caller uses the Record-Route in reverse (§12.1.2).
        route_set.reverse();
        let confirmed = response.status().is_some_and(|c| (200..300).contains(&c));
        Ok(Self {
            call_id: request.call_id().to_owned(),
            local_tag: local_tag.to_owned(),
            remote_tag: remote_tag.to_owned(),
            local_party: request
                .header(HeaderName::From)
                .unwrap_or_default()
                .to_owned(),
            remote_party: response
                .header(HeaderName::To)
                .unwrap_or_default()
                .to_owned(),
            remote_target: contact_uri(response)?,
            route_set,
            local_cseq: Some(request.cseq().seq),
            remote_cseq: None,
            state: if confirmed {
                DialogState::Confirmed
            } else {
                DialogState::Early
            },
        })
    }

    /// The callee's dialog, from the INVITE it received and the tag it
    /// answers with; confirmed once it sends its 2xx ([`Self::confirm`]).
    pub fn callee(request: &Message<'_>, local_tag: &str) -> Result<Self, DialogError> {
        let remote_tag = request.from().tag().ok_or(DialogError::MissingTag)?;
        let mut local_party = String::from(request.header(HeaderName::To).unwrap_or_default());
        local_party.push_str(";tag=");
        local_party.push_str(local_tag);
        Ok(Self {
            call_id: request.call_id().to_owned(),
            local_tag: local_tag.to_owned(),
            remote_tag: remote_tag.to_owned(),
            local_party,
            remote_party: request
                .header(HeaderName::From)
                .unwrap_or_default()
                .to_owned(),
            remote_target: contact_uri(request)?,
            // The callee keeps the Record-Route's order (§12.1.1).
            route_set: record_route(request),
            local_cseq: None,
            remote_cseq: Some(request.cseq().seq),
            state: DialogState::Early,
        })
    }

    /// A subscriber's dialog (RFC 6665 §4.1.2.4), made by the first
    /// NOTIFY of its subscription: `local_party` is our From with its
    /// tag, `cseq` the last CSeq we sent before the dialog existed.
    pub fn subscriber(
        notify: &Message<'_>,
        local_party: String,
        cseq: u32,
    ) -> Result<Self, DialogError> {
        let remote_tag = notify.from().tag().ok_or(DialogError::MissingTag)?;
        let local_tag = notify.to().tag().ok_or(DialogError::MissingTag)?;
        Ok(Self {
            call_id: notify.call_id().to_owned(),
            local_tag: local_tag.to_owned(),
            remote_tag: remote_tag.to_owned(),
            local_party,
            remote_party: notify
                .header(HeaderName::From)
                .unwrap_or_default()
                .to_owned(),
            remote_target: contact_uri(notify)?,
            // Like a callee: the NOTIFY's Record-Route in its order.
            route_set: record_route(notify),
            local_cseq: Some(cseq),
            remote_cseq: Some(notify.cseq().seq),
            state: DialogState::Confirmed,
        })
    }

    /// The dialog's Call-ID.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Our tag.
    pub fn local_tag(&self) -> &str {
        &self.local_tag
    }

    /// Their tag.
    pub fn remote_tag(&self) -> &str {
        &self.remote_tag
    }

    /// Early or confirmed.
    pub fn state(&self) -> DialogState {
        self.state
    }

    /// The far end's URI, from its From or To (without tag or display name).
    pub fn remote_uri(&self) -> Option<&str> {
        NameAddr::parse(&self.remote_party).map(|na| na.uri_text)
    }

    /// Where our in-dialog requests go (their Contact).
    pub fn remote_target(&self) -> &str {
        &self.remote_target
    }

    /// The Route values our requests carry.
    pub fn route_set(&self) -> &[String] {
        &self.route_set
    }

    /// A 2xx made the dialog confirmed. As the caller, the route set and
    /// target are those of the 2xx (§12.1.2: an early dialog's are
    /// replaced); as the callee, `response` is the 2xx we sent, and
    /// nothing else changes.
    pub fn confirm(&mut self, response: &Message<'_>, as_caller: bool) {
        self.state = DialogState::Confirmed;
        if as_caller {
            let mut route_set = record_route(response);
            route_set.reverse();
            self.route_set = route_set;
            if let Ok(target) = contact_uri(response) {
                self.remote_target = target;
            }
        }
    }

    /// Whether a request we received belongs to this dialog (its To tag is
    /// ours, its From tag theirs).
    pub fn has_request(&self, msg: &Message<'_>) -> bool {
        msg.call_id() == self.call_id
            && msg.to().tag() == Some(self.local_tag.as_str())
            && msg.from().tag() == Some(self.remote_tag.as_str())
    }

    /// Whether a response belongs to this dialog (to a request we sent).
    pub fn has_response(&self, msg: &Message<'_>) -> bool {
        msg.call_id() == self.call_id
            && msg.from().tag() == Some(self.local_tag.as_str())
            && msg.to().tag() == Some(self.remote_tag.as_str())
    }

    /// A request of the dialog arrived: its CSeq must not go back
    /// (§12.2.2; ACK and CANCEL reuse their INVITE's, which is allowed), and
    /// a re-INVITE or UPDATE may move the remote target (a target refresh).
    pub fn receive_request(&mut self, msg: &Message<'_>) -> Result<(), DialogError> {
        let got = msg.cseq().seq;
        if let Some(expected) = self.remote_cseq
            && got < expected
        {
            return Err(DialogError::OutOfOrder { got, expected });
        }
        self.remote_cseq = Some(got);
        if matches!(msg.method(), Some(Method::Invite | Method::Update))
            && let Ok(target) = contact_uri(msg)
        {
            self.remote_target = target;
        }
        Ok(())
    }

    /// A 2xx to our re-INVITE or UPDATE may move the remote target.
    pub fn receive_response(&mut self, msg: &Message<'_>) {
        let refresh = (msg.cseq().is(Method::Invite) || msg.cseq().is(Method::Update))
            && msg.status().is_some_and(|c| (200..300).contains(&c));
        if refresh && let Ok(target) = contact_uri(msg) {
            self.remote_target = target;
        }
    }

    /// Starts a request in the dialog (BYE, re-INVITE, UPDATE, INFO,
    /// REFER, MESSAGE…) with the next CSeq: the Request-URI and Route per
    /// the route set (§12.2.1.1, loose or strict routing), then `via`,
    /// Max-Forwards, From, To, Call-ID and CSeq. The caller adds the rest.
    pub fn request(&mut self, method: Method, via: &str) -> MessageBuilder {
        let cseq = self.local_cseq.map_or(1, |n| n.wrapping_add(1));
        self.local_cseq = Some(cseq);
        self.build(method, via, cseq)
    }

    /// The ACK of a 2xx to our INVITE with CSeq `invite_cseq` (its own
    /// transaction, §13.2.2.4).
    pub fn ack(&self, invite_cseq: u32, via: &str) -> MessageBuilder {
        self.build(Method::Ack, via, invite_cseq)
    }

    fn build(&self, method: Method, via: &str, cseq: u32) -> MessageBuilder {
        // Loose routing when the first route says `lr` (or there is none):
        // the target stays the Request-URI. Strict routing: the first
        // route becomes it, and the target goes last.
        let strict = self
            .route_set
            .first()
            .and_then(|r| NameAddr::parse(r))
            .filter(|na| na.uri.params.get("lr").is_none());
        let (ruri, routes): (&str, Vec<&str>) = match strict {
            Some(first) => {
                let mut routes: Vec<&str> =
                    self.route_set[1..].iter().map(String::as_str).collect();
                routes.push(&self.remote_target);
                (first.uri_text, routes)
            }
            None => (
                &self.remote_target,
                self.route_set.iter().map(String::as_str).collect(),
            ),
        };
        let mut b = MessageBuilder::request(method, ruri);
        b.header("Via", via).header("Max-Forwards", "70");
        for (i, route) in routes.iter().enumerate() {
            // The remote target is a bare URI: as a Route it needs `<>`.
            let last_target = strict.is_some() && i + 1 == routes.len();
            if last_target {
                b.header_parts("Route", &["<", route, ">"]);
            } else {
                b.header("Route", route);
            }
        }
        let mut number = String::with_capacity(10);
        push_decimal(&mut number, u64::from(cseq));
        b.header("From", &self.local_party)
            .header("To", &self.remote_party)
            .header("Call-ID", &self.call_id)
            .header_parts("CSeq", &[&number, " ", method.as_str()]);
        b
    }
}

#[cfg(test)]
mod tests;
