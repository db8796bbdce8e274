//! Browsers coming and going: the per-address connection limit checked
//! before the WebSocket handshake, and what a connection leaves behind when
//! it closes (its unanswered calls, its requests in flight, its
//! registrations in the embedded PBX).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::Duration;

use sipline_core::Instant;

use super::Proxy;
use super::events::AdminEvent;
use super::limits::Bucket;
use crate::ids::ConnId;
use crate::ops::metrics::Reject;

/// One browser connection.
#[derive(Debug)]
pub(super) struct Conn {
    /// Where it comes from, for the per-address limit.
    pub(super) ip: IpAddr,
    /// Its message budget.
    pub(super) bucket: Bucket,
    /// Its requests in flight toward the PBX.
    pub(super) in_flight: usize,
    /// Contacts rewritten for this connection: the token-bearing user part
    /// and the original URI, to restore Request-URIs and REGISTER answers.
    pub(super) contacts: VecDeque<(String, String)>,
    /// The relay's branches of its latest INVITEs that went over TCP for
    /// their size (`large_over_tcp`): their CANCEL and ACK follow them
    /// (RFC 3261 §9.1, §17.1.1.3).
    pub(super) large: VecDeque<String>,
}

/// Large INVITEs remembered per connection for their CANCEL and ACK.
pub(super) const MAX_LARGE: usize = 16;

impl Proxy {
    /// Whether another connection from `ip` may open (checked before the
    /// WebSocket handshake, which is refused with HTTP 503 otherwise). An
    /// admitted handshake holds its slot until it opens or ten seconds
    /// pass, so that parallel handshakes cannot exceed the limit.
    pub fn admit(&mut self, now: Instant, ip: IpAddr) -> bool {
        let slots = self.reserved.entry(ip).or_default();
        slots.retain(|until| *until > now);
        let held = slots.len();
        let open = self.conns.values().filter(|c| c.ip == ip).count();
        let ok = open + held < self.cfg.max_connections_per_ip;
        if ok {
            slots.push(now + Duration::from_secs(10));
        } else {
            self.metrics.reject(Reject::TooManyConnections);
        }
        if held == 0 && !ok {
            self.reserved.remove(&ip);
        }
        ok
    }

    /// A browser connected from `ip`.
    pub fn ws_opened(&mut self, now: Instant, conn: ConnId, ip: IpAddr) {
        if let Some(slots) = self.reserved.get_mut(&ip) {
            slots.pop();
            if slots.is_empty() {
                self.reserved.remove(&ip);
            }
        }
        let conn_state = Conn {
            ip,
            bucket: Bucket::new(now, self.cfg.rate),
            in_flight: 0,
            contacts: VecDeque::new(),
            large: VecDeque::new(),
        };
        self.conns.insert(conn, conn_state);
        self.metrics.connection_opened();
        self.events.push(AdminEvent::Connected { session: conn });
    }

    /// A browser's WebSocket closed: its flow is gone, and so are the
    /// requests it had in flight.
    pub fn ws_closed(&mut self, conn: ConnId) {
        if let Some(p) = self.presence.as_mut() {
            p.connection_closed(conn);
        }
        // Its unanswered calls end with it: nobody is left to answer or
        // cancel them, and their ports must come back.
        if let Some(media) = self.media.as_mut() {
            for call_id in media.unanswered_of(conn) {
                media.close(conn, &call_id);
                let key = (conn, call_id);
                self.dialogs.remove(&key);
                self.doomed.remove(&key);
            }
            self.flush_media();
        }
        if self.conns.remove(&conn).is_some() {
            self.metrics.connection_closed();
            let kept = self
                .media
                .as_ref()
                .map(|m| m.calls_of(conn))
                .unwrap_or_default();
            self.calls.connection_closed(conn, &kept, &mut self.events);
            if let Some(pbx) = &mut self.pbx {
                pbx.connection_closed(conn);
            }
            self.events.push(AdminEvent::Disconnected { session: conn });
        }
        let gone: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.conn == conn)
            .map(|(k, _)| k.clone())
            .collect();
        for key in gone {
            self.take_pending(&key);
        }
    }
}
