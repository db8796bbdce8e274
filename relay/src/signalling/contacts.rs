//! Contacts across the relay (RFC 5626 §5): every browser Contact becomes
//! the relay's SIP address (with the PBX's transport) and a flow token, so that the PBX reaches the
//! browser only through its WebSocket; the originals are remembered per
//! connection to restore Request-URIs and show a REGISTER's answer its own
//! bindings (RFC 3261 §10.2.4).

use sipline_core::sip::{Header, HeaderName, Message, NameAddr, split_commas};

use super::Proxy;
use super::edit::Action;
use super::routing::host_port_is;
use crate::ids::ConnId;
use crate::transport::Transport;

/// URI parameter that carries the flow token in a rewritten Contact.
pub(super) const FLOW_PARAM: &str = "sl-flow";

impl Proxy {
    /// Rewrites every browser Contact of a header line onto the relay, as
    /// the PBX reaches it: over `transport`, with a `sips:` URI for a SIPS
    /// request.
    pub(super) fn rewrite_contacts(
        &self,
        h: &Header<'_>,
        (token, transport, sips): (&str, Transport, bool),
        rewritten: &mut Vec<(String, String)>,
    ) -> Action {
        let (scheme, param) = transport.own_uri(sips);
        let mut values = Vec::new();
        let mut changed = false;
        for value in split_commas(h.value) {
            match NameAddr::parse(value) {
                // Every Contact from a browser is reachable only through its
                // WebSocket: none may point the PBX elsewhere.
                Some(na) => {
                    let user = na.uri.user.unwrap_or("ws");
                    let params = na.params.0;
                    values.push(format!(
                        "<{scheme}:{user}@{}{param};{FLOW_PARAM}={token}>{params}",
                        self.cfg.sip_addr
                    ));
                    rewritten.push((user.to_owned(), na.uri_text.to_owned()));
                    changed = true;
                }
                _ => values.push(value.to_owned()),
            }
        }
        if changed {
            Action::Replace(values.join(", "))
        } else {
            Action::Keep
        }
    }

    pub(super) fn remember_contacts(&mut self, conn: ConnId, rewritten: Vec<(String, String)>) {
        let max = self.cfg.max_contacts_per_conn;
        if let Some(c) = self.conns.get_mut(&conn) {
            for (user, original) in rewritten {
                c.contacts.retain(|(u, _)| *u != user);
                c.contacts.push_back((user, original));
                while c.contacts.len() > max {
                    c.contacts.pop_front();
                }
            }
        }
    }

    pub(super) fn original_contact(&self, conn: ConnId, user: &str) -> Option<String> {
        let c = self.conns.get(&conn)?;
        c.contacts
            .iter()
            .find(|(u, _)| u == user)
            .map(|(_, orig)| orig.clone())
    }

    /// In a REGISTER answer, puts back the browser's own Contact URIs so
    /// that it recognises its binding (RFC 3261 §10.2.4).
    pub(super) fn restore_contacts(&self, conn: ConnId, h: &Header<'_>) -> Action {
        let mut values = Vec::new();
        let mut changed = false;
        for value in split_commas(h.value) {
            let restored = NameAddr::parse(value).and_then(|na| {
                // Only this connection's own bindings are shown as its own.
                let ours = na.uri.params.value(FLOW_PARAM) == Some(self.key.token(conn).as_str())
                    && host_port_is(&na.uri, self.cfg.sip_addr);
                if !ours {
                    return None;
                }
                let orig = self.original_contact(conn, na.uri.user.unwrap_or("ws"))?;
                Some(format!("<{orig}>{}", na.params.0))
            });
            changed |= restored.is_some();
            values.push(restored.unwrap_or_else(|| value.to_owned()));
        }
        if changed {
            Action::Replace(values.join(", "))
        } else {
            Action::Keep
        }
    }
}

/// Whether every Contact value is `*` or parses: a value the relay cannot
/// read, it cannot rewrite, so it must not reach the PBX.
pub(super) fn contacts_sound(msg: &Message<'_>) -> bool {
    msg.header_values(HeaderName::Contact)
        .all(|v| v == "*" || NameAddr::parse(v).is_some())
}
