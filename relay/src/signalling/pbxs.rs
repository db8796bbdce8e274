//! The PBXs the relay fronts: which of them are up, which one takes a new
//! request, and the OPTIONS probes that tell (as Kamailio's dispatcher
//! pings its destinations).
//!
//! Choice (RFC 3263 §4.4 and RFC 2782's order): the lowest priority among
//! the PBXs that are up, and within it a weighted rendezvous hash of the
//! Call-ID, so that every request of a call (its CANCEL, the ACK of an
//! error, a re-REGISTER) goes to the same PBX without any table, each PBX
//! takes its weight's share of new calls, and a PBX that goes down hands on
//! only its own share (Kamailio's dispatcher hashes the Call-ID too).
//!
//! Health: any datagram from a PBX shows it up. It goes down when it sends
//! ICMP unreachable, leaves a new request unanswered for the failover time,
//! or leaves a probe unanswered as long. With probes, a PBX that is down is
//! up again when it answers one (any status: it is alive); without them,
//! it is tried again after [`RETRY_UNPROBED`].

use std::net::SocketAddr;
use std::time::Duration;

use sipline_core::Instant;
use sipline_core::sip::{Message, MessageBuilder, Method};
use sipline_core::transaction::T2;

use super::events::AdminEvent;
use crate::transport::Transport;

/// How long a PBX that went down is avoided when there are no probes to
/// tell when it is back.
pub const RETRY_UNPROBED: Duration = Duration::from_secs(30);

/// One configured PBX: where, and its share of new requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PbxTarget {
    /// Its SIP address.
    pub addr: SocketAddr,
    /// How the relay reaches it.
    pub transport: Transport,
    /// Lower is preferred (RFC 2782); the next priority takes over only
    /// when every PBX of this one is down.
    pub priority: u16,
    /// Its share of new requests among the PBXs of its priority.
    pub weight: u16,
}

/// Why a PBX went down, for the admin stream and the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// ICMP port or host unreachable.
    Unreachable,
    /// A new request, or a probe, went unanswered for the failover time.
    Silent,
}

impl DownReason {
    /// The name on the admin stream.
    pub fn as_str(self) -> &'static str {
        match self {
            DownReason::Unreachable => "unreachable",
            DownReason::Silent => "no answer",
        }
    }
}

/// An OPTIONS probe in flight.
#[derive(Debug)]
struct Probe {
    branch: String,
    datagram: Vec<u8>,
    retransmit_at: Instant,
    interval: Duration,
    give_up_at: Instant,
}

#[derive(Debug)]
struct State {
    target: PbxTarget,
    /// No longer in the PBX set (DNS dropped it): never chosen nor probed,
    /// but what it sends is still taken (its dialogs go on).
    retired: bool,
    up: bool,
    /// Without probes: when a PBX that is down may be tried again.
    retry_at: Option<Instant>,
    next_probe: Instant,
    probe: Option<Probe>,
}

impl State {
    /// A PBX just configured (or named by DNS): up, its first probe due at
    /// once.
    fn new(target: PbxTarget) -> Self {
        Self {
            target,
            retired: false,
            up: true,
            retry_at: None,
            next_probe: Instant::from_millis(0),
            probe: None,
        }
    }
}

/// The set of PBXs and their health.
#[derive(Debug)]
pub(super) struct Pbxs {
    all: Vec<State>,
    /// How often each PBX is probed; none: never.
    probe_every: Option<Duration>,
    /// How long a probe (or a new request) may go unanswered.
    answer_within: Duration,
    t1: Duration,
    /// Probes sent, for their branches and Call-IDs.
    probes: u64,
    /// Up and down changes since the last [`Pbxs::take_events`].
    events: Vec<AdminEvent>,
}

impl Pbxs {
    pub fn new(
        targets: &[PbxTarget],
        probe_every: Option<Duration>,
        answer_within: Duration,
        t1: Duration,
    ) -> Self {
        let all = targets.iter().map(|&target| State::new(target)).collect();
        Self {
            all,
            probe_every,
            answer_within,
            t1,
            probes: 0,
            events: Vec::new(),
        }
    }

    /// A new PBX set (from DNS): PBXs in it keep their health and take
    /// its priority and weight, new ones start up, the others retire.
    pub fn set_targets(&mut self, targets: &[PbxTarget]) {
        for s in &mut self.all {
            match targets.iter().find(|t| t.addr == s.target.addr) {
                Some(t) => {
                    s.target = *t;
                    s.retired = false;
                }
                None => s.retired = true,
            }
        }
        for t in targets {
            if !self.all.iter().any(|s| s.target.addr == t.addr) {
                self.all.push(State::new(*t));
            }
        }
    }

    /// How many PBXs a new request may go to.
    pub fn active(&self) -> usize {
        self.all.iter().filter(|s| !s.retired).count()
    }

    fn state(&mut self, addr: SocketAddr) -> Option<&mut State> {
        self.all.iter_mut().find(|s| s.target.addr == addr)
    }

    /// Whether `addr` is up (as far as the relay knows).
    #[cfg(test)]
    pub fn is_up(&self, addr: SocketAddr) -> bool {
        self.all.iter().any(|s| s.target.addr == addr && s.up)
    }

    /// Each PBX in the set and whether it is up, in configuration order.
    pub fn health(&self) -> impl Iterator<Item = (SocketAddr, bool)> + '_ {
        self.all
            .iter()
            .filter(|s| !s.retired)
            .map(|s| (s.target.addr, s.up))
    }

    /// The PBX for a new request of the call `call_id`, not one of
    /// `tried`. When every other PBX is down: the best of them anyway if
    /// nothing was tried yet (a request must go somewhere, and the PBX may
    /// be back), none when this is a failover (the caller answers itself).
    pub fn pick(&self, now: Instant, call_id: &str, tried: &[SocketAddr]) -> Option<SocketAddr> {
        let open = |s: &&State| !s.retired && !tried.contains(&s.target.addr);
        let usable = |s: &&State| s.up || s.retry_at.is_some_and(|at| at <= now);
        let best = |candidates: Vec<&State>| {
            let priority = candidates.iter().map(|s| s.target.priority).min()?;
            let group: Vec<&State> = candidates
                .into_iter()
                .filter(|s| s.target.priority == priority)
                .collect();
            let weighted = group.iter().any(|s| s.target.weight > 0);
            group
                .into_iter()
                .filter(|s| !weighted || s.target.weight > 0)
                .map(|s| (score(call_id, s.target.addr, s.target.weight.max(1)), s))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, s)| s.target.addr)
        };
        best(self.all.iter().filter(open).filter(usable).collect()).or_else(|| {
            tried
                .is_empty()
                .then(|| best(self.all.iter().filter(|s| !s.retired).collect()))
                .flatten()
        })
    }

    /// A datagram came from `addr`: it is up.
    pub fn heard_from(&mut self, addr: SocketAddr) {
        let Some(s) = self.state(addr) else {
            return;
        };
        s.retry_at = None;
        if !std::mem::replace(&mut s.up, true) {
            self.events.push(AdminEvent::PbxUp {
                pbx: addr.to_string(),
            });
        }
    }

    /// `addr` failed a request or a probe: it is down.
    pub fn failed(&mut self, now: Instant, addr: SocketAddr, why: DownReason) {
        let probed = self.probe_every.is_some();
        let Some(s) = self.state(addr) else {
            return;
        };
        s.retry_at = (!probed).then_some(now + RETRY_UNPROBED);
        // Its probe in flight has its answer too.
        s.probe = None;
        if std::mem::replace(&mut s.up, false) {
            self.events.push(AdminEvent::PbxDown {
                pbx: addr.to_string(),
                reason: why.as_str(),
            });
        }
    }

    /// Whether a response is the answer to one of the probes; it ends the
    /// probe, and shows its PBX up.
    pub fn probe_answered(&mut self, from: SocketAddr, msg: &Message<'_>) -> bool {
        let branch = msg.via().branch().unwrap_or_default();
        let answered = self.state(from).is_some_and(|s| {
            let ours = s.probe.as_ref().is_some_and(|p| p.branch == branch);
            if ours && msg.status().is_some_and(|c| c >= 200) {
                s.probe = None;
            }
            ours
        });
        answered && msg.cseq().is(Method::Options)
    }

    /// When [`Pbxs::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.probe_every?;
        self.all
            .iter()
            .filter(|s| !s.retired)
            .map(|s| match &s.probe {
                Some(p) => p.retransmit_at.min(p.give_up_at),
                None => s.next_probe,
            })
            .min()
    }

    /// Probes due by `now`, sent as `sip_addr`, and their retransmissions:
    /// what to send where. A probe left unanswered takes its PBX down.
    pub fn handle_timeout(
        &mut self,
        now: Instant,
        sip_addr: SocketAddr,
    ) -> Vec<(SocketAddr, Vec<u8>)> {
        let Some(every) = self.probe_every else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut silent = Vec::new();
        for s in self.all.iter_mut().filter(|s| !s.retired) {
            let PbxTarget {
                addr, transport, ..
            } = s.target;
            if let Some(p) = &mut s.probe {
                if p.give_up_at <= now {
                    s.probe = None;
                    silent.push(addr);
                } else if p.retransmit_at <= now {
                    p.interval = (p.interval * 2).min(T2);
                    p.retransmit_at = now + p.interval;
                    out.push((addr, p.datagram.clone()));
                }
            }
            if s.probe.is_none() && s.next_probe <= now {
                self.probes += 1;
                let branch = format!("z9hG4bK-sl-probe-{}", self.probes);
                let datagram = options(sip_addr, s.target, &branch, self.probes);
                out.push((addr, datagram.clone()));
                s.probe = Some(Probe {
                    branch,
                    datagram,
                    // Over TCP and TLS a probe is sent once.
                    retransmit_at: now
                        + if transport.reliable() {
                            self.answer_within
                        } else {
                            self.t1
                        },
                    interval: self.t1,
                    give_up_at: now + self.answer_within,
                });
                s.next_probe = now + every;
            }
        }
        for addr in silent {
            self.failed(now, addr, DownReason::Silent);
        }
        out
    }

    /// The up and down changes since the last call.
    pub fn take_events(&mut self) -> Vec<AdminEvent> {
        std::mem::take(&mut self.events)
    }
}

/// The OPTIONS the relay probes a PBX with.
fn options(sip_addr: SocketAddr, pbx: PbxTarget, branch: &str, n: u64) -> Vec<u8> {
    let uri = format!("sip:{}{}", pbx.addr, pbx.transport.uri_param());
    let mut b = MessageBuilder::request(Method::Options, &uri);
    b.header_parts(
        "Via",
        &[
            "SIP/2.0/",
            pbx.transport.via_name(),
            " ",
            &sip_addr.to_string(),
            ";branch=",
            branch,
            ";rport",
        ],
    )
    .header("Max-Forwards", "70")
    .header_parts(
        "From",
        &["<sip:sipline@", &sip_addr.to_string(), ">;tag=probe"],
    )
    .header_parts("To", &["<", &uri, ">"])
    .header_parts(
        "Call-ID",
        &["sl-probe-", &n.to_string(), "@", &sip_addr.to_string()],
    )
    .header_parts("CSeq", &[&n.to_string(), " OPTIONS"]);
    b.finish(None, b"")
}

/// The weighted rendezvous score of `addr` for `call_id` (the highest wins):
/// `weight / -ln(u)` with `u` a uniform hash in (0, 1), which gives each
/// PBX its weight's share of Call-IDs (Schindelhauer and Schomaker's
/// weighted distributed hash tables).
fn score(call_id: &str, addr: SocketAddr, weight: u16) -> f64 {
    // FNV-1a over the Call-ID and the address, then a 64-bit finaliser
    // (SplitMix64's) so that close inputs spread: the same on every relay
    // and every run, which std's hasher does not promise.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(call_id.as_bytes());
    eat(&[0]);
    eat(addr.to_string().as_bytes());
    h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 31;
    // 53 bits into (0, 1): never 0 (ln 0) nor 1 (a zero divisor).
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(weight) / -u.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn target(addr: &str, priority: u16, weight: u16) -> PbxTarget {
        PbxTarget {
            addr: addr.parse().expect("address"),
            transport: Transport::Udp,
            priority,
            weight,
        }
    }

    const A: &str = "10.0.0.1:5060";
    const B: &str = "10.0.0.2:5060";
    const C: &str = "10.0.0.3:5060";

    fn a(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    fn shares(pbxs: &Pbxs, tried: &[SocketAddr]) -> [usize; 3] {
        let mut n = [0; 3];
        for i in 0..3000 {
            let picked = pbxs.pick(t(0), &format!("call-{i}@host"), tried);
            let at = [A, B, C].iter().position(|x| Some(a(x)) == picked);
            n[at.expect("a PBX")] += 1;
        }
        n
    }

    #[test]
    fn the_lowest_priority_takes_everything_and_weights_share_it() {
        let second = Duration::from_secs(2);
        let pbxs = Pbxs::new(
            &[target(A, 10, 3), target(B, 10, 1), target(C, 20, 5)],
            None,
            second,
            Duration::from_millis(500),
        );
        let [x, y, z] = shares(&pbxs, &[]);
        assert_eq!(z, 0, "a higher priority waits while one of 10 is up");
        // 3:1 within priority 10, to a few percent.
        assert!((2100..2400).contains(&x), "{x} {y}");
        assert_eq!(x + y, 3000);
        // The same Call-ID always lands on the same PBX.
        let once = pbxs.pick(t(0), "sticky", &[]);
        assert!((0..100).all(|_| pbxs.pick(t(0), "sticky", &[]) == once));
    }

    #[test]
    fn a_pbx_that_goes_down_hands_on_only_its_own_share() {
        let mut pbxs = Pbxs::new(
            &[target(A, 10, 1), target(B, 10, 1), target(C, 10, 1)],
            Some(Duration::from_secs(10)),
            Duration::from_secs(2),
            Duration::from_millis(500),
        );
        let before: Vec<_> = (0..300)
            .map(|i| pbxs.pick(t(0), &format!("c{i}"), &[]))
            .collect();
        pbxs.failed(t(1), a(B), DownReason::Silent);
        for (i, was) in before.iter().enumerate() {
            let now = pbxs.pick(t(1), &format!("c{i}"), &[]);
            assert_ne!(now, Some(a(B)));
            if *was != Some(a(B)) {
                assert_eq!(now, *was, "a call on an up PBX stays where it was");
            }
        }
        assert_eq!(
            pbxs.take_events(),
            vec![AdminEvent::PbxDown {
                pbx: B.into(),
                reason: "no answer"
            }]
        );
        // Heard from again: up, once.
        pbxs.heard_from(a(B));
        pbxs.heard_from(a(B));
        assert_eq!(
            pbxs.take_events(),
            vec![AdminEvent::PbxUp { pbx: B.into() }]
        );
    }

    #[test]
    fn a_failover_never_goes_back_nor_to_a_pbx_that_is_down() {
        let mut pbxs = Pbxs::new(
            &[target(A, 1, 1), target(B, 2, 1), target(C, 3, 1)],
            Some(Duration::from_secs(10)),
            Duration::from_secs(2),
            Duration::from_millis(500),
        );
        assert_eq!(pbxs.pick(t(0), "x", &[]), Some(a(A)));
        assert_eq!(pbxs.pick(t(0), "x", &[a(A)]), Some(a(B)));
        pbxs.failed(t(0), a(B), DownReason::Unreachable);
        assert_eq!(pbxs.pick(t(0), "x", &[a(A)]), Some(a(C)));
        pbxs.failed(t(0), a(C), DownReason::Unreachable);
        assert_eq!(pbxs.pick(t(0), "x", &[a(A)]), None, "nobody left");
        pbxs.failed(t(0), a(A), DownReason::Unreachable);
        assert_eq!(
            pbxs.pick(t(0), "x", &[]),
            Some(a(A)),
            "all down: a new request still tries the best"
        );
    }

    #[test]
    fn a_new_set_keeps_health_adds_and_retires() {
        let mut pbxs = Pbxs::new(
            &[target(A, 10, 1), target(B, 10, 1)],
            None,
            Duration::from_secs(2),
            Duration::from_millis(500),
        );
        pbxs.failed(t(0), a(A), DownReason::Unreachable);
        pbxs.set_targets(&[target(A, 10, 1), target(C, 20, 1)]);
        assert_eq!(pbxs.active(), 2);
        assert!(!pbxs.is_up(a(A)), "A keeps its health");
        assert_eq!(pbxs.pick(t(1), "x", &[]), Some(a(C)), "B retired, A down");
        let health: Vec<_> = pbxs.health().collect();
        assert_eq!(health, vec![(a(A), false), (a(C), true)]);
        pbxs.heard_from(a(B));
        assert_eq!(
            pbxs.pick(t(1), "x", &[]),
            Some(a(C)),
            "a retired PBX is not chosen"
        );
    }

    #[test]
    fn without_probes_a_pbx_is_tried_again_after_a_while() {
        let mut pbxs = Pbxs::new(
            &[target(A, 1, 1), target(B, 2, 1)],
            None,
            Duration::from_secs(2),
            Duration::from_millis(500),
        );
        pbxs.failed(t(0), a(A), DownReason::Unreachable);
        assert_eq!(pbxs.pick(t(1), "x", &[]), Some(a(B)));
        let later = t(RETRY_UNPROBED.as_millis() as u64);
        assert_eq!(pbxs.pick(later, "x", &[]), Some(a(A)));
        assert!(pbxs.poll_timeout().is_none(), "no probes, no timers");
    }

    #[test]
    fn an_unanswered_probe_takes_its_pbx_down_and_an_answer_brings_it_back() {
        let mut pbxs = Pbxs::new(
            &[target(A, 1, 1), target(B, 2, 1)],
            Some(Duration::from_secs(5)),
            Duration::from_secs(2),
            Duration::from_millis(500),
        );
        let relay: SocketAddr = "192.0.2.1:5070".parse().expect("address");
        assert_eq!(pbxs.poll_timeout(), Some(t(0)), "the first probes at once");
        let sent = pbxs.handle_timeout(t(0), relay);
        assert_eq!(sent.len(), 2);
        let probe_a = Message::parse(&sent[0].1).expect("an OPTIONS");
        assert_eq!(probe_a.method(), Some(Method::Options));
        assert_eq!(probe_a.request_uri(), Some("sip:10.0.0.1:5060"));
        // B answers (a 404 is an answer too); A stays silent.
        let answer = |probe: &[u8], code: &str| {
            let p = Message::parse(probe).expect("probe");
            format!(
                "SIP/2.0 {code} Whatever\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=x\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
                p.header(sipline_core::sip::HeaderName::Via).expect("via"),
                p.header(sipline_core::sip::HeaderName::From).expect("from"),
                p.header(sipline_core::sip::HeaderName::To).expect("to"),
                p.call_id(),
                p.header(sipline_core::sip::HeaderName::CSeq).expect("cseq"),
            )
        };
        let b_answer = answer(&sent[1].1, "404");
        let msg = Message::parse(b_answer.as_bytes()).expect("answer");
        assert!(pbxs.probe_answered(a(B), &msg));
        assert!(!pbxs.probe_answered(a(A), &msg), "only from its PBX");
        // A's probe is sent again at T1, 2 T1, then given up at 2 s.
        assert_eq!(pbxs.handle_timeout(t(500), relay).len(), 1);
        assert_eq!(pbxs.handle_timeout(t(1500), relay).len(), 1);
        assert!(pbxs.is_up(a(A)));
        pbxs.handle_timeout(t(2000), relay);
        assert!(!pbxs.is_up(a(A)) && pbxs.is_up(a(B)));
        assert_eq!(pbxs.pick(t(2000), "x", &[]), Some(a(B)));
        // The next round: A answers, and is up again.
        let sent = pbxs.handle_timeout(t(5000), relay);
        let to_a = sent.iter().find(|(to, _)| *to == a(A)).expect("A probed");
        let a_answer = answer(&to_a.1, "200");
        let msg = Message::parse(a_answer.as_bytes()).expect("answer");
        assert!(pbxs.probe_answered(a(A), &msg));
        pbxs.heard_from(a(A));
        assert!(pbxs.is_up(a(A)));
        assert_eq!(pbxs.pick(t(5001), "x", &[]), Some(a(A)));
    }
}
