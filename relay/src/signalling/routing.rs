//! Where a message goes and the per-hop edits on the way (RFC 3261 §16):
//! the PBX a browser request goes to (only ever a configured one), which
//! Route entries are the relay's own, Max-Forwards, our Via branch, and
//! where a response goes by its Via.

use std::net::{IpAddr, SocketAddr};

use sipline_core::Instant;
use sipline_core::sip::{Header, HeaderName, Message, Method, NameAddr, Uri, Via, split_commas};

use super::Proxy;
use super::edit::{Action, without_first};
use super::pending;
use crate::ids::ConnId;
use crate::transport::Transport;

/// Where a browser request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Destination {
    pub addr: SocketAddr,
    /// Chosen among the PBXs, not named by the request nor following its
    /// INVITE: the next PBX may take it if this one fails.
    pub chosen: bool,
}

impl Proxy {
    /// Which PBX a browser request goes to. A CANCEL (and the ACK of an
    /// error) follows its INVITE (RFC 3261 §9.1), also when that went on
    /// to another PBX; a request whose route set or Request-URI names one
    /// of the configured PBXs goes to that one, so that a dialog stays with
    /// the PBX that holds it; anything else goes to the PBX [`Pbxs::pick`]
    /// chooses for its Call-ID. Never anywhere but a configured PBX.
    ///
    /// [`Pbxs::pick`]: super::pbxs::Pbxs::pick
    pub(super) fn destination(
        &self,
        now: Instant,
        conn: ConnId,
        msg: &Message<'_>,
    ) -> Option<Destination> {
        let named = |addr| {
            Some(Destination {
                addr,
                chosen: false,
            })
        };
        if matches!(msg.method(), Some(Method::Cancel | Method::Ack)) {
            let branch = self.branch(
                &self.key.token(conn),
                msg.via().branch().unwrap_or_default(),
            );
            if let Some(p) = self
                .pending
                .get(&pending::key(&branch, Method::Invite.as_str()))
            {
                return named(p.to);
            }
            if let Some(pbx) = self
                .dialogs
                .get(&(conn, msg.call_id().to_owned()))
                .and_then(|d| d.pbx)
            {
                return named(pbx);
            }
        }
        let configured = |uri: Uri<'_>| {
            self.cfg
                .pbx
                .iter()
                .map(|t| t.addr)
                .find(|a| host_port_is(&uri, *a))
        };
        let next_route = msg
            .header_values(HeaderName::Route)
            .filter(|v| self.own_route(v).is_none())
            .find_map(|v| NameAddr::parse(v).map(|na| na.uri));
        if let Some(addr) = next_route
            .and_then(configured)
            .or_else(|| msg.request_uri().and_then(Uri::parse).and_then(configured))
        {
            return named(addr);
        }
        let addr = self.pbxs.pick(now, msg.call_id(), &[])?;
        // Only a request outside any dialog may go on to another PBX: one
        // inside a dialog belongs where the dialog is.
        let chosen =
            msg.to().tag().is_none() && !matches!(msg.method(), Some(Method::Cancel | Method::Ack));
        Some(Destination { addr, chosen })
    }

    /// Whether a Route value names this relay (either of our Record-Route
    /// entries), and the flow token it carries if any.
    pub(super) fn own_route(&self, value: &str) -> Option<Option<String>> {
        is_own_route(value, self.cfg.sip_addr, &self.cfg.ws_host)
    }

    /// The count of Route values at the top that are ours (at most our two
    /// Record-Route entries), popped before the request goes on.
    ///
    /// A browser's route set starts with the WebSocket side of the pair a
    /// relay record-routed (the service's host, which every relay of it
    /// shares), followed by that relay's PBX side. When a sibling relay
    /// record-routed the dialog and then died, its browser comes back
    /// through this one: that PBX side names a relay that is gone, so it
    /// is popped with its pair and the request goes to the PBX (as always,
    /// never anywhere else). So the BYE of a call whose relay died still
    /// reaches the PBX and the far end.
    pub(super) fn leading_own_routes(&self, msg: &Message<'_>) -> usize {
        let mut routes = msg.header_values(HeaderName::Route);
        let Some(first) = routes.next().and_then(|v| self.own_route(v)) else {
            return 0;
        };
        let websocket_side = first.is_some();
        match routes.next() {
            Some(second) if websocket_side || self.own_route(second).is_some() => 2,
            _ => 1,
        }
    }

    /// Max-Forwards after this hop, `None` when it is exhausted (RFC 3261
    /// §16.3 step 3).
    pub(super) fn check_max_forwards(&self, msg: &Message<'_>) -> Option<u32> {
        match msg
            .header(HeaderName::MaxForwards)
            .and_then(|v| v.trim().parse::<u32>().ok())
        {
            Some(0) => None,
            Some(n) => Some(n - 1),
            None => Some(69),
        }
    }

    /// The Via branch toward the other side: a keyed hash of the flow and
    /// the incoming branch, so that a CANCEL or the ACK of an error (same
    /// incoming branch) gets the same outgoing one (RFC 3261 §16.11).
    pub(super) fn branch(&self, token: &str, incoming: &str) -> String {
        let mut b = String::from("z9hG4bK");
        b.push_str(
            &self
                .key
                .digest(&[token.as_bytes(), b"|", incoming.as_bytes()]),
        );
        b
    }
}

/// Dialog-creating requests get our Record-Route (RFC 3261 §16.6 step 4);
/// REGISTER must not, and in-dialog requests already follow the route set.
pub(super) fn needs_record_route(msg: &Message<'_>) -> bool {
    matches!(
        msg.method(),
        Some(Method::Invite | Method::Subscribe | Method::Refer)
    ) && msg.to().tag().is_none()
}

/// Identity headers a PBX trusts from its peers (RFC 3325 §5): a browser
/// must not be able to set them through the relay.
pub(super) fn is_asserted_identity(name: &HeaderName<'_>) -> bool {
    matches!(name, HeaderName::Other(n) if n.eq_ignore_ascii_case("P-Asserted-Identity")
        || n.eq_ignore_ascii_case("Remote-Party-ID"))
}

/// Whether a Route or Record-Route value names the relay (its UDP address
/// or its WebSocket host), and the flow token it carries if any.
pub(super) fn is_own_route(
    value: &str,
    sip_addr: SocketAddr,
    ws_host: &str,
) -> Option<Option<String>> {
    let na = NameAddr::parse(value)?;
    let uri = na.uri;
    let ours_udp = host_port_is(&uri, sip_addr);
    let ours_ws = uri.host.eq_ignore_ascii_case(ws_host);
    (ours_udp || ours_ws).then(|| uri.user.filter(|_| ours_ws).map(str::to_owned))
}

pub(super) fn host_port_is(uri: &Uri<'_>, addr: SocketAddr) -> bool {
    host_port_matches(uri.host, uri.port, addr)
}

pub(super) fn host_port_matches(host: &str, port: Option<u16>, addr: SocketAddr) -> bool {
    let host = host.trim_matches(['[', ']']);
    host.parse::<IpAddr>().is_ok_and(|ip| ip == addr.ip()) && port.unwrap_or(5060) == addr.port()
}

/// Where a response goes per a Via (RFC 3261 §18.2.2, RFC 3581): `received`
/// and `rport` when present, else the sent-by. IP literals only: the relay
/// never resolves names on behalf of the network.
pub(super) fn via_address(via: &Via<'_>) -> Option<SocketAddr> {
    let ip = via
        .params
        .value("received")
        .unwrap_or(via.host)
        .trim_matches(['[', ']'])
        .parse::<IpAddr>()
        .ok()?;
    let port = via
        .params
        .value("rport")
        .and_then(|p| p.parse().ok())
        .or(via.port)
        .unwrap_or(5060);
    Some(SocketAddr::new(ip, port))
}

/// The per-hop edits every forwarded request gets (RFC 3261 §16.6):
/// Max-Forwards decremented, and the relay's own Route entries popped.
pub(super) struct HopEdits {
    max_forwards: String,
    routes_to_pop: usize,
}

impl HopEdits {
    pub(super) fn new(hops: u32, routes_to_pop: usize) -> Self {
        Self {
            max_forwards: hops.to_string(),
            routes_to_pop,
        }
    }

    /// The edit for `h`, if it is one of these headers.
    pub(super) fn apply(&mut self, h: &Header<'_>) -> Option<Action> {
        match h.name {
            HeaderName::MaxForwards => Some(Action::Replace(self.max_forwards.clone())),
            HeaderName::Route if self.routes_to_pop > 0 => {
                let n = split_commas(h.value).count().min(self.routes_to_pop);
                self.routes_to_pop -= n;
                Some(without_first(h.value, n).map_or(Action::Drop, Action::Replace))
            }
            _ => None,
        }
    }
}

/// A forwarded request without Max-Forwards gets one (RFC 3261 §16.6
/// step 3: 70, less this hop).
pub(super) fn with_max_forwards(msg: &Message<'_>, out: Vec<u8>) -> Vec<u8> {
    if msg.header(HeaderName::MaxForwards).is_some() {
        return out;
    }
    insert_after_first_line(&out, "Max-Forwards: 69")
}

/// Inserts a header line after the start line of a message we built.
pub(super) fn insert_after_first_line(msg: &[u8], line: &str) -> Vec<u8> {
    let cut = msg
        .iter()
        .position(|&b| b == b'\n')
        .map_or(msg.len(), |i| i + 1);
    let mut out = Vec::with_capacity(msg.len() + line.len() + 2);
    out.extend_from_slice(&msg[..cut]);
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&msg[cut..]);
    out
}

/// The transport a message to a PBX goes over: the one its top Via names
/// (RFC 3261 §18: ours on a request; on a response, the one its request
/// came over, §18.2.2). None when it names none the relay speaks.
pub(super) fn sent_over(message: &[u8]) -> Option<Transport> {
    let msg = Message::parse(message).ok()?;
    Transport::from_param(msg.via().transport)
}
