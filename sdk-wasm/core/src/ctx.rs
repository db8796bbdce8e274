//! What the user agent lends each of its parts for one input: who we are,
//! the transactions, the digest client, randomness, and where to put
//! what to send and what to tell the application.

use crate::Instant;
use crate::auth::{DigestClient, push_escaped};
use crate::event::Event;
use crate::prelude::*;
use crate::rand::Rng;
use crate::transaction::{TransactionId, Transactions};

/// Who we are, as every request we make needs it.
#[derive(Clone, Debug)]
pub(crate) struct Identity {
    pub aor: String,
    pub display_name: Option<String>,
    pub registrar: String,
    /// The Contact URI: `sip:<rand>@<rand>.invalid;transport=ws;ob`.
    pub contact_uri: String,
    /// `urn:uuid:…` for `+sip.instance` (RFC 5626), when outbound is on.
    pub instance: Option<String>,
    /// Via sent-by host, `<rand>.invalid` (RFC 7118 §5.2).
    pub via_host: String,
    /// `WSS` on a secure WebSocket, `WS` on a plain one (RFC 7118 §5.1).
    pub via_transport: &'static str,
    pub user_agent: String,
    /// Ring (`180`) as soon as an incoming call is reported.
    pub auto_ringing: bool,
    /// Incoming headers whose names start with one of these (any case)
    /// are handed to the application (`X-`, `P-Asserted-Identity`…).
    pub header_prefixes: Vec<String>,
}

impl Identity {
    /// The headers of `msg` the application asked to see.
    pub fn picked_headers(&self, msg: &crate::sip::Message<'_>) -> Vec<(String, String)> {
        if self.header_prefixes.is_empty() {
            return Vec::new();
        }
        msg.headers()
            .iter()
            .filter(|h| {
                let name = h.name.as_str();
                self.header_prefixes.iter().any(|p| {
                    name.get(..p.len())
                        .is_some_and(|n| n.eq_ignore_ascii_case(p))
                })
            })
            .map(|h| (h.name.as_str().to_owned(), h.value.to_owned()))
            .collect()
    }

    /// Our From value with `tag`: the display name (quoted, escaped) and
    /// the address of record.
    pub fn from(&self, tag: &str) -> String {
        let mut from = String::with_capacity(96);
        if let Some(name) = &self.display_name {
            from.push('"');
            push_escaped(&mut from, name);
            from.push_str("\" ");
        }
        from.push('<');
        from.push_str(&self.aor);
        from.push_str(">;tag=");
        from.push_str(tag);
        from
    }
}

/// Everything a step of a registration, a call or a message may touch,
/// lent by the user agent for the length of one input.
pub(crate) struct Ctx<'a> {
    pub now: Instant,
    pub id: &'a Identity,
    pub txs: &'a mut Transactions,
    pub digest: Option<&'a mut DigestClient>,
    pub rng: &'a mut Rng,
    pub transmit: &'a mut Vec<Vec<u8>>,
    pub events: &'a mut Vec<Event>,
    /// The application's own headers for what the current action sends
    /// ([`crate::UserAgent::with_headers`]); empty otherwise.
    pub headers: &'a [(String, String)],
}

impl Ctx<'_> {
    /// The same context for an action the application asked for earlier
    /// (a retry), with the headers it gave then.
    pub fn with_headers<'b>(&'b mut self, headers: &'b [(String, String)]) -> Ctx<'b> {
        Ctx {
            now: self.now,
            id: self.id,
            txs: &mut *self.txs,
            digest: self.digest.as_deref_mut(),
            rng: &mut *self.rng,
            transmit: &mut *self.transmit,
            events: &mut *self.events,
            headers,
        }
    }

    /// Answers server transaction `tx` with `resp` (status `code`), unless
    /// the transaction has already answered.
    pub fn respond(&mut self, tx: TransactionId, code: u16, resp: Vec<u8>) {
        if self.txs.respond(self.now, tx, code, &resp) {
            self.transmit.push(resp);
        }
    }

    /// Adds the application's headers to a request or response it asked for.
    pub fn add_app_headers(&self, b: &mut crate::sip::MessageBuilder) {
        for (name, value) in self.headers {
            b.header(name, value);
        }
    }

    /// Our Via for a new request: `SIP/2.0/WS(S) <host>.invalid` (RFC 7118)
    /// with a fresh RFC 3261 branch.
    pub fn via(&mut self) -> String {
        let mut v = String::with_capacity(64);
        v.push_str("SIP/2.0/");
        v.push_str(self.id.via_transport);
        v.push(' ');
        v.push_str(&self.id.via_host);
        v.push_str(";branch=z9hG4bK");
        v.push_str(&self.rng.token(16));
        v
    }
}
