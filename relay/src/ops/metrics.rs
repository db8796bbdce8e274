//! The relay's signalling and media-table metrics for `/metrics`, kept with
//! `prometheus-client` and rendered in the Prometheus text format (0.0.4).
//!
//! Every series is created once, at start: counting a message is one
//! uncontended atomic add on a counter held here, never a label lookup.
//! The media shell's per-call figures join the same registry as a
//! [`Collector`] read at scrape time (see [`Metrics::register_collector`]).

use std::borrow::Cow;
use std::net::SocketAddr;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use sipline_core::sip::{Message, Method};

use crate::media::calls::{MediaEnd, MediaError};

/// Why a new request left its PBX for the next (label order of
/// `sipline_pbx_failovers_total`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failover {
    /// ICMP unreachable.
    Unreachable = 0,
    /// No answer at all within the failover time.
    Silent = 1,
    /// `503 Service Unavailable` as its first answer.
    Refused = 2,
}

/// A series' labels: a few fixed pairs.
type Labels = Vec<(&'static str, &'static str)>;

/// Why a message was refused or dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    /// Did not parse.
    Malformed,
    /// A datagram or destination that is not a configured PBX.
    NotPbx,
    /// A response whose top Via is not ours.
    NotOurs,
    /// A request from the PBX naming no browser.
    NoFlow,
    /// A valid flow token whose WebSocket is gone.
    FlowGone,
    /// A flow token this relay did not sign.
    FlowForged,
    /// The PBX did not answer in time.
    PbxTimeout,
    /// Too many requests in flight.
    Overload,
    /// A connection sent faster than its rate limit.
    RateLimited,
    /// An address opened more connections than allowed.
    TooManyConnections,
    /// An answer from a PBX its request had already left for the next.
    LeftPbx,
}

impl Reject {
    const ALL: [Reject; 11] = [
        Reject::Malformed,
        Reject::NotPbx,
        Reject::NotOurs,
        Reject::NoFlow,
        Reject::FlowGone,
        Reject::FlowForged,
        Reject::PbxTimeout,
        Reject::Overload,
        Reject::RateLimited,
        Reject::TooManyConnections,
        Reject::LeftPbx,
    ];

    fn label(self) -> &'static str {
        match self {
            Reject::Malformed => "malformed",
            Reject::NotPbx => "not_pbx",
            Reject::NotOurs => "not_ours",
            Reject::NoFlow => "no_flow",
            Reject::FlowGone => "flow_gone",
            Reject::FlowForged => "flow_forged",
            Reject::PbxTimeout => "pbx_timeout",
            Reject::Overload => "overload",
            Reject::RateLimited => "rate_limited",
            Reject::TooManyConnections => "too_many_connections",
            Reject::LeftPbx => "left_pbx",
        }
    }

    fn index(self) -> usize {
        Reject::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// Methods counted by name; the rest as "other".
const METHODS: [Method; 14] = Method::ALL;

/// Response classes counted, `1xx` to `5xx`, and `6xx`.
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "6xx"];

/// Why SDP was not carried, as labelled.
const MEDIA_REFUSED: [&str; 4] = ["ports_exhausted", "too_many_calls", "sdp", "dtls"];

/// Why a new request went on to the next PBX, in label order.
const FAILOVERS: [&str; 3] = ["unreachable", "no_answer", "503"];

/// Why the relay ended calls for their media, in label order.
const MEDIA_ENDED: [MediaEnd; 3] = [MediaEnd::Timeout, MediaEnd::Dtls, MediaEnd::Io];

fn media_end_label(why: MediaEnd) -> &'static str {
    match why {
        MediaEnd::Timeout => "rtp_timeout",
        MediaEnd::Dtls => "dtls_failed",
        MediaEnd::Io => "socket",
    }
}

/// Upper bounds of the PBX round-trip histogram, in seconds.
pub const RTT_BUCKETS: [f64; 12] = [
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

/// One direction's message counters: requests by method, responses by
/// class.
#[derive(Debug)]
struct Counts {
    requests: [Counter; METHODS.len() + 1],
    responses: [Counter; CLASSES.len()],
}

impl Counts {
    fn new(family: &Family<Labels, Counter>) -> Self {
        let method = |i: usize| METHODS.get(i).map_or("other", |m| m.as_str());
        Self {
            requests: std::array::from_fn(|i| {
                family
                    .get_or_create(&vec![("kind", "request"), ("method", method(i))])
                    .clone()
            }),
            responses: std::array::from_fn(|i| {
                family
                    .get_or_create(&vec![("kind", "response"), ("class", CLASSES[i])])
                    .clone()
            }),
        }
    }

    fn add(&self, msg: &Message<'_>) {
        match (msg.is_request(), msg.status()) {
            (true, _) => {
                let i = msg
                    .method()
                    .and_then(|m| METHODS.iter().position(|k| *k == m))
                    .unwrap_or(METHODS.len());
                self.requests[i].inc();
            }
            (false, Some(code)) => {
                if let Some(c) = usize::from(code / 100)
                    .checked_sub(1)
                    .and_then(|i| self.responses.get(i))
                {
                    c.inc();
                }
            }
            (false, None) => {}
        }
    }
}

/// The relay's signalling counters, and the registry every `/metrics`
/// series lives in.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    connections_open: Gauge,
    registrations: Gauge,
    calls_recovered: Counter,
    messages_in: Counts,
    messages_out: Counts,
    rejected: [Counter; Reject::ALL.len()],
    retransmissions: Counter,
    local_responses: Counter,
    pbx_rtt: Histogram,
    media_calls: Gauge,
    media_ports_in_use: Gauge,
    media_ports_capacity: Gauge,
    media_refused: [Counter; MEDIA_REFUSED.len()],
    media_ended: [Counter; MEDIA_ENDED.len()],
    pbx_up: Family<Vec<(&'static str, String)>, Gauge>,
    failovers: [Counter; FAILOVERS.len()],
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Metrics {
    /// Every series, labelled `relay="<instance>"` when the relay has a
    /// name among several.
    pub fn new(instance: Option<&str>) -> Self {
        let labels = instance.map(|name| (Cow::Borrowed("relay"), Cow::Owned(name.to_owned())));
        let mut registry = Registry::with_labels(labels.into_iter());
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let family = |registry: &mut Registry, name: &str, help: &str| {
            let f = Family::<Labels, Counter>::default();
            registry.register(name, help, f.clone());
            f
        };
        let connections_open = gauge(
            &mut registry,
            "sipline_ws_connections",
            "Browser WebSocket connections open now",
        );
        let registrations = gauge(
            &mut registry,
            "sipline_registrations",
            "Browsers registered through the relay now",
        );
        let calls_recovered = counter(
            &mut registry,
            "sipline_calls_recovered",
            "Calls a browser took back on a new WebSocket after its old one dropped",
        );
        let messages_in = Counts::new(&family(
            &mut registry,
            "sipline_sip_messages_in",
            "SIP messages received",
        ));
        let messages_out = Counts::new(&family(
            &mut registry,
            "sipline_sip_messages_out",
            "SIP messages forwarded",
        ));
        let rejected_family = family(
            &mut registry,
            "sipline_sip_rejected",
            "SIP messages refused or dropped, by reason",
        );
        let rejected = std::array::from_fn(|i| {
            rejected_family
                .get_or_create(&vec![("reason", Reject::ALL[i].label())])
                .clone()
        });
        let retransmissions = counter(
            &mut registry,
            "sipline_sip_retransmissions",
            "Requests retransmitted toward the PBX",
        );
        let local_responses = counter(
            &mut registry,
            "sipline_sip_local_responses",
            "Responses made by the relay itself",
        );
        let pbx_rtt = Histogram::new(RTT_BUCKETS);
        registry.register(
            "sipline_pbx_rtt_seconds",
            "Time from forwarding a request to the PBX to its first answer",
            pbx_rtt.clone(),
        );
        let media_calls = gauge(
            &mut registry,
            "sipline_media_calls",
            "Calls whose media the relay carries now",
        );
        let pairs = Family::<Labels, Gauge>::default();
        registry.register(
            "sipline_media_port_pairs",
            "Port pairs of the media range, in use and in all",
            pairs.clone(),
        );
        let refused_family = family(
            &mut registry,
            "sipline_media_refused",
            "SDP the relay could not carry, by reason (a request got 503 or 488; an ACK or a \
             response went on without its body)",
        );
        let ended_family = family(
            &mut registry,
            "sipline_media_calls_ended",
            "Calls the relay ended with a BYE each way because their media ended, by reason",
        );
        let pbx_up = Family::<Vec<(&'static str, String)>, Gauge>::default();
        registry.register(
            "sipline_pbx_up",
            "Whether each configured PBX is up (1) or down (0): it answers, or it went silent or \
             unreachable",
            pbx_up.clone(),
        );
        let failover_family = family(
            &mut registry,
            "sipline_pbx_failovers",
            "New requests sent on to the next PBX, by what the one before did",
        );
        // One statement each: a family's guard lives to the end of its
        // statement, and a second lookup under it would wait for itself.
        let media_ports_in_use = pairs.get_or_create(&vec![("state", "in_use")]).clone();
        let media_ports_capacity = pairs.get_or_create(&vec![("state", "capacity")]).clone();
        Self {
            connections_open,
            registrations,
            calls_recovered,
            messages_in,
            messages_out,
            rejected,
            retransmissions,
            local_responses,
            pbx_rtt,
            media_calls,
            media_ports_in_use,
            media_ports_capacity,
            media_refused: std::array::from_fn(|i| {
                refused_family
                    .get_or_create(&vec![("reason", MEDIA_REFUSED[i])])
                    .clone()
            }),
            media_ended: std::array::from_fn(|i| {
                ended_family
                    .get_or_create(&vec![("reason", media_end_label(MEDIA_ENDED[i]))])
                    .clone()
            }),
            pbx_up,
            failovers: std::array::from_fn(|i| {
                failover_family
                    .get_or_create(&vec![("reason", FAILOVERS[i])])
                    .clone()
            }),
            registry,
        }
    }
}

impl Metrics {
    /// Adds series read at scrape time (the media shell's figures).
    pub fn register_collector(&mut self, collector: Box<dyn Collector>) {
        self.registry.register_collector(collector);
    }

    pub(crate) fn count_in(&self, msg: &Message<'_>) {
        self.messages_in.add(msg);
    }

    pub(crate) fn count_out(&self, msg: &Message<'_>) {
        self.messages_out.add(msg);
    }

    pub(crate) fn reject(&self, why: Reject) {
        self.rejected[why.index()].inc();
    }

    pub(crate) fn connection_opened(&self) {
        self.connections_open.inc();
    }

    pub(crate) fn connection_closed(&self) {
        self.connections_open.dec();
    }

    pub(crate) fn set_registrations(&self, n: usize) {
        self.registrations.set(gauge_value(n));
    }

    /// Each PBX's health, as the scrape will show it.
    pub(crate) fn set_pbx_health(&self, health: impl Iterator<Item = (SocketAddr, bool)>) {
        for (addr, up) in health {
            self.pbx_up
                .get_or_create(&vec![("pbx", addr.to_string())])
                .set(i64::from(up));
        }
    }

    /// A new request went on to the next PBX.
    pub(crate) fn failover(&self, why: Failover) {
        self.failovers[why as usize].inc();
    }

    pub(crate) fn call_recovered(&self) {
        self.calls_recovered.inc();
    }

    pub(crate) fn retransmitted(&self) {
        self.retransmissions.inc();
    }

    pub(crate) fn local_response(&self) {
        self.local_responses.inc();
    }

    pub(crate) fn observe_pbx_rtt(&self, rtt: std::time::Duration) {
        self.pbx_rtt.observe(rtt.as_secs_f64());
    }

    /// The media table's state: calls, and port pairs in use and in all.
    pub(crate) fn set_media(&self, calls: usize, in_use: usize, capacity: usize) {
        self.media_calls.set(gauge_value(calls));
        self.media_ports_in_use.set(gauge_value(in_use));
        self.media_ports_capacity.set(gauge_value(capacity));
    }

    pub(crate) fn media_refused(&self, e: &MediaError) {
        let i = match e {
            MediaError::Ports(_) | MediaError::Bind { .. } => 0,
            MediaError::TooManyCalls(_) => 1,
            MediaError::Dtls(_) => 3,
            _ => 2,
        };
        self.media_refused[i].inc();
    }

    pub(crate) fn media_ended(&self, why: MediaEnd) {
        if let Some(i) = MEDIA_ENDED.iter().position(|w| *w == why) {
            self.media_ended[i].inc();
        }
    }

    /// Calls the relay ended because their media ended for `why`.
    pub fn media_ended_count(&self, why: MediaEnd) -> u64 {
        MEDIA_ENDED
            .iter()
            .position(|w| *w == why)
            .map_or(0, |i| self.media_ended[i].get())
    }

    /// How many messages were refused for `why`.
    pub fn rejected(&self, why: Reject) -> u64 {
        self.rejected[why.index()].get()
    }

    /// Calls browsers took back on a new connection.
    pub fn calls_recovered(&self) -> u64 {
        self.calls_recovered.get()
    }

    /// The Prometheus text exposition (0.0.4) of every series.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(8192);
        // Writing into a String cannot fail; a collector's error would
        // leave its part out, never the rest.
        if let Err(e) = prometheus_text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "/metrics: a series could not be encoded");
        }
        out
    }
}

/// A count as a gauge's value (they never come near `i64::MAX`).
fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exposition parses as Prometheus text, and carries what was
    /// counted under the names dashboards use.
    #[test]
    fn the_exposition_parses_and_carries_the_counts() {
        let m = Metrics::default();
        m.connection_opened();
        m.reject(Reject::FlowGone);
        m.reject(Reject::FlowGone);
        m.retransmitted();
        m.observe_pbx_rtt(std::time::Duration::from_millis(3));
        m.set_media(2, 3, 100);
        m.media_ended(MediaEnd::Dtls);
        let req = Message::parse(
            b"INVITE sip:b@x SIP/2.0\r\nVia: SIP/2.0/WSS h;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        )
        .expect("request");
        m.count_in(&req);
        let text = m.render();
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition");
        let value = |name: &str, labels: &[(&str, &str)]| {
            scrape
                .samples
                .iter()
                .find(|s| {
                    s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
                })
                .map(|s| match s.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => v,
                    _ => f64::NAN,
                })
                .unwrap_or_else(|| panic!("{name} {labels:?} not in:\n{text}"))
        };
        assert_eq!(value("sipline_ws_connections", &[]), 1.0);
        assert_eq!(
            value("sipline_sip_rejected_total", &[("reason", "flow_gone")]),
            2.0
        );
        assert_eq!(
            value("sipline_sip_rejected_total", &[("reason", "not_pbx")]),
            0.0
        );
        assert_eq!(value("sipline_sip_retransmissions_total", &[]), 1.0);
        assert_eq!(
            value(
                "sipline_sip_messages_in_total",
                &[("kind", "request"), ("method", "INVITE")]
            ),
            1.0
        );
        assert_eq!(
            value("sipline_media_port_pairs", &[("state", "capacity")]),
            100.0
        );
        assert_eq!(
            value(
                "sipline_media_calls_ended_total",
                &[("reason", "dtls_failed")]
            ),
            1.0
        );
        let rtt = scrape
            .samples
            .iter()
            .find(|s| s.metric == "sipline_pbx_rtt_seconds")
            .expect("the round-trip histogram");
        match &rtt.value {
            prometheus_parse::Value::Histogram(buckets) => {
                let at = |le: f64| {
                    buckets
                        .iter()
                        .find(|b| (b.less_than - le).abs() < 1e-9)
                        .map(|b| b.count)
                };
                assert_eq!(at(0.002), Some(0.0));
                assert_eq!(at(0.005), Some(1.0));
            }
            other => panic!("the round trips are not a histogram: {other:?}"),
        }
        // Every series has its HELP and TYPE.
        for s in &scrape.samples {
            let family = s
                .metric
                .trim_end_matches("_bucket")
                .trim_end_matches("_sum")
                .trim_end_matches("_count");
            assert!(
                scrape.docs.contains_key(family) || scrape.docs.contains_key(&s.metric),
                "{} has no HELP",
                s.metric
            );
        }
    }
}
