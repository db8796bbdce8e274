//! The relay's media table (`sipline_relay::media::calls::MediaCalls`)
//! through offer/answer sequences on real SDP (Chromium's, Asterisk's,
//! FreeSWITCH's, mutated), answers, hangups, the echo extension and calls
//! moving to a browser's new connection.
//!
//! Oracles, beyond "no panic":
//! - the commands tell the truth about ports: every Open takes pairs of
//!   the range that no live call holds, every other command names a live
//!   call, and `ports().0` is always the pairs the live calls hold;
//! - `active()` is the number of calls opened and not closed;
//! - every body it returns to forward is SDP that parses;
//! - once every call is closed, every port is back: `ports().0 == 0` and
//!   `active() == 0`.

#![no_main]

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, LazyLock};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use sipline_core::sdp::Sdp as ParsedSdp;
use sipline_fuzz::bodies::Sdp;
use sipline_relay::ids::{ConnId, MediaId};
use sipline_relay::media::calls::{Carrier, Command, MediaCalls, MediaConfig, Side};
use sipline_relay::media::dtls::Identity;

/// Browser connections.
const CONNS: u8 = 3;
/// Call-IDs per connection.
const CALLS: u8 = 4;
/// The media port range's start (even: RTP ports are).
const PORT_MIN: u16 = 30_000;

/// The relay's DTLS identity: made once, as at the relay's start.
static IDENTITY: LazyLock<Arc<Identity>> =
    LazyLock::new(|| Arc::new(Identity::generate().expect("a DTLS identity")));

#[derive(Arbitrary, Debug)]
struct Setup {
    /// Port pairs in the range (small, so that it fills up).
    pairs: u8,
    max_calls_per_connection: u8,
    latch_pbx: bool,
}

/// A call: its browser connection and Call-ID.
#[derive(Arbitrary, Clone, Copy, Debug)]
struct Call {
    conn: u8,
    call: u8,
}

impl Call {
    fn conn(self) -> ConnId {
        ConnId(1 + u64::from(self.conn % CONNS))
    }

    fn call_id(self) -> String {
        format!("call-{}@browser", self.call % CALLS)
    }
}

/// Methods an SDP body may travel in (and some it may not).
#[derive(Arbitrary, Clone, Copy, Debug)]
enum Method {
    Invite,
    Update,
    Prack,
    Ack,
    Message,
    Options,
    Bye,
}

impl Method {
    fn sip(self) -> sipline_core::sip::Method {
        use sipline_core::sip::Method as M;
        match self {
            Method::Invite => M::Invite,
            Method::Update => M::Update,
            Method::Prack => M::Prack,
            Method::Ack => M::Ack,
            Method::Message => M::Message,
            Method::Options => M::Options,
            Method::Bye => M::Bye,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// A body from the browser (`true`) or the PBX, in a request or (
    /// `response`) in a response to one.
    Sdp {
        call: Call,
        browser: bool,
        response: bool,
        method: Method,
        body: Sdp,
    },
    Echo(Call, Sdp),
    Offerless(Call),
    Answered(Call),
    Close(Call),
    /// The call moves from its connection to another one's.
    Rehome(Call, u8),
    /// What the signalling asks of the table.
    Query(Call, u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    setup: Setup,
    ops: Vec<Op>,
}

/// What the commands said so far.
#[derive(Default)]
struct Model {
    /// Live calls and the ports they hold.
    live: HashMap<MediaId, Vec<u16>>,
    /// Calls that were closed.
    closed: HashSet<MediaId>,
    range: (u16, u16),
}

impl Model {
    fn in_use(&self) -> HashSet<u16> {
        self.live.values().flatten().copied().collect()
    }

    /// Checks the table's commands and its counts against each other.
    fn drain(&mut self, table: &mut MediaCalls) {
        while let Some(c) = table.poll_command() {
            let id = c.id();
            match c {
                Command::Open { browser, pbx, .. } => {
                    assert!(
                        !self.live.contains_key(&id) && !self.closed.contains(&id),
                        "{id:?} opened twice"
                    );
                    let ports: Vec<u16> = std::iter::once(browser.port())
                        .chain(pbx.iter().map(|a| a.port()))
                        .collect();
                    let in_use = self.in_use();
                    for &p in &ports {
                        assert!(
                            (self.range.0..=self.range.1).contains(&p) && p % 2 == 0,
                            "{id:?} opened port {p}, outside the range's pairs"
                        );
                        assert!(!in_use.contains(&p), "{id:?} took port {p}, held already");
                    }
                    self.live.insert(id, ports);
                }
                Command::Close { .. } => {
                    assert!(
                        self.live.remove(&id).is_some(),
                        "{id:?} closed but not live"
                    );
                    self.closed.insert(id);
                }
                _ => assert!(
                    self.live.contains_key(&id),
                    "a command for {id:?}, not live"
                ),
            }
        }
        let held: usize = self.live.values().map(Vec::len).sum();
        let (used, capacity) = table.ports();
        assert_eq!(
            used, held,
            "ports in use, against the pairs the open calls hold"
        );
        assert!(used <= capacity);
        assert_eq!(table.active(), self.live.len(), "calls with media");
    }
}

/// A body to forward must be SDP.
fn forwarded(body: &str) {
    if let Err(e) = ParsedSdp::parse(body.as_bytes()) {
        panic!("the table returned SDP that does not parse ({e}):\n{body}");
    }
}

fuzz_target!(|input: Input| {
    let pairs = u16::from(input.setup.pairs.clamp(1, 24));
    let cfg = MediaConfig {
        port_min: PORT_MIN,
        port_max: PORT_MIN + 2 * pairs - 1,
        browser_advertised: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)),
        pbx_advertised: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
        latch_pbx: input.setup.latch_pbx,
        max_calls_per_connection: usize::from(input.setup.max_calls_per_connection.clamp(1, 4)),
        ..MediaConfig::default()
    };
    let mut model = Model {
        range: (cfg.port_min, cfg.port_max),
        ..Model::default()
    };
    let mut table = MediaCalls::new(cfg, IDENTITY.clone(), [3; 32]).expect("a valid range");
    for op in &input.ops {
        match op {
            Op::Sdp {
                call,
                browser,
                response,
                method,
                body,
            } => {
                let side = if *browser { Side::Browser } else { Side::Pbx };
                let carrier = if *response {
                    Carrier::Response(method.sip())
                } else {
                    Carrier::Request(method.sip())
                };
                let bytes = body.bytes();
                match table.sdp(call.conn(), &call.call_id(), side, carrier, &bytes) {
                    Ok(Some(out)) => forwarded(&out),
                    Ok(None) => {}
                    Err(e) => {
                        let _ = (e.to_string(), e.status());
                    }
                }
            }
            Op::Echo(call, body) => match table.echo(call.conn(), &call.call_id(), &body.bytes()) {
                Ok(answer) => forwarded(&answer),
                Err(e) => {
                    let _ = (e.to_string(), e.status());
                }
            },
            Op::Offerless(call) => table.offerless(call.conn(), &call.call_id()),
            Op::Answered(call) => table.answered(call.conn(), &call.call_id()),
            Op::Close(call) => {
                let _ = table.close(call.conn(), &call.call_id());
            }
            Op::Rehome(call, to) => {
                let to = Call {
                    conn: *to,
                    call: call.call,
                };
                let _ = table.rehome(call.conn(), to.conn(), &call.call_id());
            }
            Op::Query(call, id) => {
                let (conn, call_id) = (call.conn(), call.call_id());
                let _ = (table.id(conn, &call_id), table.is_answered(conn, &call_id));
                let _ = (table.unanswered_of(conn), table.calls_of(conn));
                let _ = (
                    table.holders(&call_id),
                    table.call_of(MediaId(u64::from(*id))),
                );
                let _ = table.config();
            }
        }
        model.drain(&mut table);
    }

    // Every call ends: every port comes back.
    for conn in 0..CONNS {
        for call in 0..CALLS {
            let c = Call { conn, call };
            let _ = table.close(c.conn(), &c.call_id());
        }
    }
    model.drain(&mut table);
    assert_eq!(table.active(), 0, "calls left after closing every call");
    assert_eq!(table.ports().0, 0, "ports left after closing every call");
});
