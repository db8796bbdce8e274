//! Counters for `/metrics`, kept by the proxy itself (one task owns the
//! proxy, so plain integers suffice: no atomics, no locks), rendered in the
//! Prometheus text format.

use std::fmt::Write as _;

use sipline_core::sip::{Message, Method};

use crate::media::calls::{MediaEnd, MediaError};

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
}

impl Reject {
    const ALL: [Reject; 10] = [
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
        }
    }
}

/// Methods counted by name; the rest as "other".
const METHODS: [Method; 14] = Method::ALL;

/// Per-direction message counts: requests by method, responses by class.
#[derive(Clone, Debug, Default)]
pub struct Counts {
    requests: [u64; METHODS.len() + 1],
    responses: [u64; 6],
}

impl Counts {
    fn add(&mut self, msg: &Message<'_>) {
        match (msg.method(), msg.status()) {
            (Some(m), _) => {
                let i = METHODS
                    .iter()
                    .position(|k| k.as_str() == m)
                    .unwrap_or(METHODS.len());
                self.requests[i] += 1;
            }
            (None, Some(code)) => self.responses[usize::from(code / 100) % 6] += 1,
            (None, None) => {}
        }
    }

    fn render(&self, out: &mut String, name: &str) {
        for (i, n) in self.requests.iter().enumerate() {
            let method = METHODS.get(i).map_or("other", |m| m.as_str());
            let _ = writeln!(out, "{name}{{kind=\"request\",method=\"{method}\"}} {n}");
        }
        for (class, n) in self.responses.iter().enumerate().skip(1) {
            let _ = writeln!(out, "{name}{{kind=\"response\",class=\"{class}xx\"}} {n}");
        }
    }
}

/// The relay's signalling counters.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Browser WebSocket connections open now.
    pub connections_open: i64,
    /// Registered bindings (connection and address of record) now.
    pub registrations: usize,
    /// Messages received, by method / class.
    pub messages_in: Counts,
    /// Messages forwarded, by method / class.
    pub messages_out: Counts,
    /// Refused or dropped, by reason.
    rejected: [u64; Reject::ALL.len()],
    /// Requests retransmitted toward the PBX.
    pub retransmissions: u64,
    /// Responses the relay made itself (408, 430, 503…).
    pub local_responses: u64,
    /// PBX round trips: counts per bucket of [`RTT_BUCKETS_MS`], then the
    /// overflow.
    rtt_buckets: [u64; RTT_BUCKETS_MS.len() + 1],
    rtt_sum_ms: f64,
    rtt_count: u64,
    /// Calls with media now, and the range's port pairs in use and in all.
    pub media_calls: usize,
    /// Port pairs of the media range in use.
    pub media_ports_in_use: usize,
    /// Port pairs of the media range.
    pub media_ports_capacity: usize,
    /// SDP refused: the range full, the connection's calls at their limit,
    /// unreadable or unmappable SDP, DTLS setup.
    media_refused: [u64; 4],
    /// Calls ended by the relay for their media: timeout, DTLS, socket.
    media_ended: [u64; 3],
    /// Calls a browser took back on a new connection after its WebSocket
    /// dropped.
    pub calls_recovered: u64,
}

const MEDIA_REFUSED: [&str; 4] = ["ports_exhausted", "too_many_calls", "sdp", "dtls"];
const MEDIA_ENDED: [MediaEnd; 3] = [MediaEnd::Timeout, MediaEnd::Dtls, MediaEnd::Io];

fn media_end_label(why: MediaEnd) -> &'static str {
    match why {
        MediaEnd::Timeout => "rtp_timeout",
        MediaEnd::Dtls => "dtls_failed",
        MediaEnd::Io => "socket",
    }
}

/// Upper bounds of the PBX round-trip histogram, in milliseconds.
pub const RTT_BUCKETS_MS: [u64; 12] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];

impl Metrics {
    pub(crate) fn count_in(&mut self, msg: &Message<'_>) {
        self.messages_in.add(msg);
    }

    pub(crate) fn count_out(&mut self, msg: &Message<'_>) {
        self.messages_out.add(msg);
    }

    pub(crate) fn reject(&mut self, why: Reject) {
        if let Some(i) = Reject::ALL.iter().position(|r| *r == why) {
            self.rejected[i] += 1;
        }
    }

    pub(crate) fn observe_pbx_rtt(&mut self, rtt: std::time::Duration) {
        let ms = rtt.as_secs_f64() * 1000.0;
        let i = RTT_BUCKETS_MS
            .iter()
            .position(|&b| ms <= b as f64)
            .unwrap_or(RTT_BUCKETS_MS.len());
        self.rtt_buckets[i] += 1;
        self.rtt_sum_ms += ms;
        self.rtt_count += 1;
    }

    pub(crate) fn media_refused(&mut self, e: &MediaError) {
        let i = match e {
            MediaError::Ports(_) | MediaError::Bind { .. } => 0,
            MediaError::TooManyCalls(_) => 1,
            MediaError::Dtls(_) => 3,
            _ => 2,
        };
        self.media_refused[i] += 1;
    }

    pub(crate) fn media_ended(&mut self, why: MediaEnd) {
        if let Some(i) = MEDIA_ENDED.iter().position(|w| *w == why) {
            self.media_ended[i] += 1;
        }
    }

    /// Calls the relay ended because their media ended for `why`.
    pub fn media_ended_count(&self, why: MediaEnd) -> u64 {
        MEDIA_ENDED
            .iter()
            .position(|w| *w == why)
            .map_or(0, |i| self.media_ended[i])
    }

    /// How many messages were refused for `why`.
    pub fn rejected(&self, why: Reject) -> u64 {
        Reject::ALL
            .iter()
            .position(|r| *r == why)
            .map_or(0, |i| self.rejected[i])
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP sipline_ws_connections Browser WebSocket connections open now.\n");
        out.push_str("# TYPE sipline_ws_connections gauge\n");
        let _ = writeln!(out, "sipline_ws_connections {}", self.connections_open);
        out.push_str("# HELP sipline_registrations Browsers registered through the relay now.\n");
        out.push_str("# TYPE sipline_registrations gauge\n");
        let _ = writeln!(out, "sipline_registrations {}", self.registrations);
        out.push_str("# HELP sipline_calls_recovered_total Calls a browser took back on a new WebSocket after its old one dropped.\n");
        out.push_str("# TYPE sipline_calls_recovered_total counter\n");
        let _ = writeln!(
            out,
            "sipline_calls_recovered_total {}",
            self.calls_recovered
        );
        out.push_str("# HELP sipline_sip_messages_in_total SIP messages received.\n");
        out.push_str("# TYPE sipline_sip_messages_in_total counter\n");
        self.messages_in
            .render(&mut out, "sipline_sip_messages_in_total");
        out.push_str("# HELP sipline_sip_messages_out_total SIP messages forwarded.\n");
        out.push_str("# TYPE sipline_sip_messages_out_total counter\n");
        self.messages_out
            .render(&mut out, "sipline_sip_messages_out_total");
        out.push_str(
            "# HELP sipline_sip_rejected_total SIP messages refused or dropped, by reason.\n",
        );
        out.push_str("# TYPE sipline_sip_rejected_total counter\n");
        for (r, n) in Reject::ALL.iter().zip(self.rejected) {
            let _ = writeln!(
                out,
                "sipline_sip_rejected_total{{reason=\"{}\"}} {n}",
                r.label()
            );
        }
        out.push_str(
            "# HELP sipline_sip_retransmissions_total Requests retransmitted toward the PBX.\n",
        );
        out.push_str("# TYPE sipline_sip_retransmissions_total counter\n");
        let _ = writeln!(
            out,
            "sipline_sip_retransmissions_total {}",
            self.retransmissions
        );
        out.push_str(
            "# HELP sipline_sip_local_responses_total Responses made by the relay itself.\n",
        );
        out.push_str("# TYPE sipline_sip_local_responses_total counter\n");
        let _ = writeln!(
            out,
            "sipline_sip_local_responses_total {}",
            self.local_responses
        );
        out.push_str("# HELP sipline_pbx_rtt_seconds Time from forwarding a request to the PBX to its first answer.\n");
        out.push_str("# TYPE sipline_pbx_rtt_seconds histogram\n");
        let mut cumulative = 0;
        for (bound, n) in RTT_BUCKETS_MS.iter().zip(self.rtt_buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "sipline_pbx_rtt_seconds_bucket{{le=\"{}\"}} {cumulative}",
                *bound as f64 / 1000.0
            );
        }
        let _ = writeln!(
            out,
            "sipline_pbx_rtt_seconds_bucket{{le=\"+Inf\"}} {}",
            self.rtt_count
        );
        let _ = writeln!(
            out,
            "sipline_pbx_rtt_seconds_sum {}",
            self.rtt_sum_ms / 1000.0
        );
        let _ = writeln!(out, "sipline_pbx_rtt_seconds_count {}", self.rtt_count);
        self.render_media(&mut out);
        out
    }

    fn render_media(&self, out: &mut String) {
        out.push_str("# HELP sipline_media_calls Calls whose media the relay carries now.\n");
        out.push_str("# TYPE sipline_media_calls gauge\n");
        let _ = writeln!(out, "sipline_media_calls {}", self.media_calls);
        out.push_str(
            "# HELP sipline_media_port_pairs Port pairs of the media range, in use and in all.\n",
        );
        out.push_str("# TYPE sipline_media_port_pairs gauge\n");
        let _ = writeln!(
            out,
            "sipline_media_port_pairs{{state=\"in_use\"}} {}",
            self.media_ports_in_use
        );
        let _ = writeln!(
            out,
            "sipline_media_port_pairs{{state=\"capacity\"}} {}",
            self.media_ports_capacity
        );
        out.push_str("# HELP sipline_media_refused_total SDP the relay could not carry, by reason (a request got 503 or 488; an ACK or a response went on without its body).\n");
        out.push_str("# TYPE sipline_media_refused_total counter\n");
        for (label, n) in MEDIA_REFUSED.iter().zip(self.media_refused) {
            let _ = writeln!(out, "sipline_media_refused_total{{reason=\"{label}\"}} {n}");
        }
        out.push_str("# HELP sipline_media_calls_ended_total Calls the relay ended with a BYE each way because their media ended, by reason.\n");
        out.push_str("# TYPE sipline_media_calls_ended_total counter\n");
        for (why, n) in MEDIA_ENDED.iter().zip(self.media_ended) {
            let _ = writeln!(
                out,
                "sipline_media_calls_ended_total{{reason=\"{}\"}} {n}",
                media_end_label(*why)
            );
        }
    }
}
