//! One call's media (`sipline_relay::media::session::Session`): datagrams
//! from the browser (raw, connectivity checks, SRTP and SRTCP protected
//! with the browser's real keys) and from the PBX (raw, RTP and RTCP, from
//! its addresses and others), with the PBX's addresses, payload legs,
//! latching and ICE restarts changing in between, and time passing. The
//! browser is `sipline-load`'s: a real ICE check and DTLS handshake in
//! memory, when the input asks for a connected call.
//!
//! Oracles, beyond "no panic":
//! - never an open relay: media goes to the PBX only at an address its
//!   SDP gave (`set_pbx`) or, latching, one its packets came from; to the
//!   browser only at an address whose check was answered;
//! - a check is answered to its sender, and the answer verifies with the
//!   relay's password;
//! - the browser's SRTP and SRTCP reach the PBX decrypted byte for byte,
//!   and the PBX's RTP and RTCP reach the browser as SRTP its keys
//!   decrypt back to the same bytes (the echo's too);
//! - well-formed SRTP in order is never refused as SRTP.

#![no_main]

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use rtc_dtls::extension::extension_use_srtp::SrtpProtectionProfile;
use sipline_fuzz::stun::{Check, verify_answer};
use sipline_load::peer::{BrowserKeys, BrowserPeer, RemoteTransport, connect_in_memory};
use sipline_relay::media::dtls::{DtlsServer, Identity};
use sipline_relay::media::ice::{IceLite, is_stun};
use sipline_relay::media::session::{Drop, Forward, MAX_LEGS, Session};
use sipline_relay::media::srtp::{Context, SrtpError};

/// The relay's side of the call.
const RELAY: &str = "192.0.2.10:40000";
const UFRAG: &str = "rlyU";
const PWD: &str = "relaypassword0123456789a";
const NEW_UFRAG: &str = "rly2";
const NEW_PWD: &str = "restartedpassword0123456";
/// The browser's fragment when no handshake runs.
const BROWSER_UFRAG: &str = "brwU";
/// Browser addresses (the first one connects), and PBX ones: apart, so
/// that the oracles can tell the sides.
const BROWSERS: [&str; 3] = ["192.0.2.7:50000", "192.0.2.7:50002", "[2001:db8::9]:50000"];
const PBXS: [&str; 4] = [
    "10.0.0.5:16384",
    "10.0.0.5:16385",
    "10.0.0.6:16386",
    "10.0.0.6:16387",
];
/// Room the shell's buffer has past a datagram (SRTP tags, STUN answers).
const HEADROOM: usize = 128;
/// The SSRC a raw PBX packet is given, apart from the structured ones.
const RAW_SSRC: u32 = 0xdead_0001;

/// The relay's DTLS identity: made once, as at the relay's start.
static IDENTITY: LazyLock<Arc<Identity>> =
    LazyLock::new(|| Arc::new(Identity::generate().expect("a DTLS identity")));

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a socket address")
}

fn browser(n: u8) -> SocketAddr {
    addr(BROWSERS[usize::from(n) % BROWSERS.len()])
}

fn pbx(n: u8) -> SocketAddr {
    addr(PBXS[usize::from(n) % PBXS.len()])
}

/// An RTP packet in order on its SSRC (one of four per side).
#[derive(Arbitrary, Debug)]
struct Rtp {
    ssrc: u8,
    first_seq: u16,
    /// Sequence numbers advance by 1–8.
    step: u8,
    payload_type: u8,
    payload: Vec<u8>,
}

/// An RTCP packet.
#[derive(Arbitrary, Debug)]
struct Rtcp {
    ssrc: u8,
    packet_type: u8,
    body: Vec<u8>,
}

/// What the PBX sends on a leg's port.
#[derive(Arbitrary, Debug)]
enum PbxPacket {
    Rtp(Rtp),
    Rtcp(Rtcp),
    /// Any bytes, on the RTP or (`true`) RTCP port.
    Raw(bool, Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Op {
    BrowserRaw(u8, Vec<u8>),
    /// A check with the relay's current credentials, or (`previous`) the
    /// ones from before a restart.
    BrowserCheck {
        from: u8,
        previous: bool,
        check: Check,
    },
    BrowserRtp(u8, Rtp),
    BrowserRtcp(u8, Rtcp),
    Pbx {
        leg: u8,
        from: u8,
        packet: PbxPacket,
    },
    SetPbx {
        leg: u8,
        rtp: u8,
        rtcp: u8,
    },
    PayloadLegs(Vec<(u8, u8)>),
    Latching(bool),
    ClockRate(u8, u32),
    RestartIce,
    Advance(u16),
}

#[derive(Arbitrary, Debug)]
struct Input {
    /// Run the handshake first, offering AES-GCM (`true`) or AES-CM.
    connect: Option<bool>,
    echo: bool,
    ops: Vec<Op>,
}

/// The relay's ICE fragment and password.
type Credentials = (&'static str, &'static str);

/// The fuzzer's view of the call.
struct Call {
    session: Session,
    /// The browser's SRTP contexts, after a handshake.
    keys: Option<BrowserKeys>,
    start: Instant,
    now: Duration,
    /// The browser's ICE fragment.
    browser_ufrag: String,
    /// The relay's credentials now, and before the last restart.
    credentials: Credentials,
    previous: Credentials,
    /// Addresses whose checks were answered.
    checked: Vec<SocketAddr>,
    /// Where the PBX may be sent to: its SDP's addresses, and those its
    /// packets came from while latching was on.
    pbx_targets: Vec<SocketAddr>,
    latching: bool,
    /// Last sequence number per SSRC, browser's and PBX's.
    seq: HashMap<u32, u16>,
    /// The SSRCs whose sequence numbers wrapped (rollover counter above
    /// zero), and the browser's the session decrypted: a stream the
    /// session first hears of after its wrap cannot be decrypted (the
    /// receiver starts at rollover 0, RFC 3711 §3.3.1), which is SRTP, not
    /// the relay.
    wrapped: HashSet<u32>,
    decrypted: HashSet<u32>,
}

/// The browser's packet before it protected it.
#[derive(Clone, Copy)]
struct Plain<'a> {
    bytes: &'a [u8],
    ssrc: u32,
    rtcp: bool,
}

impl Call {
    fn now(&self) -> Instant {
        self.start + self.now
    }

    /// The next sequence number of `ssrc`.
    fn seq(&mut self, ssrc: u32, p: &Rtp) -> u16 {
        let seq = match self.seq.get(&ssrc) {
            Some(&last) => {
                let next = last.wrapping_add(u16::from(p.step % 8) + 1);
                if next < last {
                    self.wrapped.insert(ssrc);
                }
                next
            }
            None => p.first_seq,
        };
        self.seq.insert(ssrc, seq);
        seq
    }

    /// What the browser makes of the relay's SRTP: the plain packet
    /// (`None` before a handshake).
    fn browser_reads(&mut self, srtp: &[u8], rtcp: bool) -> Option<Result<Vec<u8>, SrtpError>> {
        let keys = self.keys.as_mut()?;
        let mut buf = srtp.to_vec();
        let n = if rtcp {
            keys.inbound.unprotect_rtcp(&mut buf)
        } else {
            keys.inbound.unprotect_rtp(&mut buf)
        };
        Some(n.map(|n| {
            buf.truncate(n);
            buf
        }))
    }

    /// DTLS the session sends goes to a browser that passed a check.
    fn dtls_out(&mut self) {
        while let Some((to, _)) = self.session.poll_transmit() {
            assert!(
                self.checked.contains(&to),
                "DTLS to {to}, not a checked browser"
            );
        }
    }

    /// A datagram from the browser, protected from `plain` when that is
    /// given. Returns what was sent back to the browser, if anything.
    fn browser_sends(
        &mut self,
        from: SocketAddr,
        datagram: &[u8],
        plain: Option<Plain<'_>>,
    ) -> Option<Vec<u8>> {
        let mut buf = datagram.to_vec();
        buf.resize(datagram.len() + HEADROOM, 0);
        let now = self.now();
        let result = self
            .session
            .from_browser(now, from, &mut buf, datagram.len());
        let exempt = plain.is_some_and(|p| {
            !p.rtcp && self.wrapped.contains(&p.ssrc) && !self.decrypted.contains(&p.ssrc)
        });
        let reached_srtp = !matches!(
            result,
            Err(Drop::UnknownSource | Drop::NoKeys | Drop::Srtp(_))
        );
        // RTCP does not start a stream's RTP sequence: only RTP counts.
        if let Some(p) = plain.filter(|p| reached_srtp && !p.rtcp) {
            self.decrypted.insert(p.ssrc);
        }
        let plain = plain.map(|p| p.bytes);
        match result {
            Ok(Forward::ToBrowser { to, len }) => {
                assert_eq!(to, from, "the browser's datagram answered elsewhere");
                if is_stun(datagram) {
                    if !self.checked.contains(&from) {
                        self.checked.push(from);
                    }
                } else {
                    assert!(
                        self.checked.contains(&to),
                        "the echo to an unchecked browser"
                    );
                }
                if let Some(plain) = plain {
                    match self.browser_reads(&buf[..len], false) {
                        Some(Ok(echoed)) => assert!(echoed == plain, "the echo changed the packet"),
                        Some(Err(e)) => panic!("the browser cannot read its echo: {e}"),
                        None => {}
                    }
                }
                buf.truncate(len);
                return Some(buf);
            }
            Ok(Forward::ToPbx { leg, to, len, .. }) => {
                assert!(leg < MAX_LEGS);
                assert!(
                    self.pbx_targets.contains(&to),
                    "media to {to}, not the PBX's"
                );
                if let Some(plain) = plain {
                    assert!(
                        buf[..len] == *plain,
                        "the browser's packet changed on the way"
                    );
                }
            }
            Ok(Forward::Nothing) => {}
            Err(Drop::Srtp(e)) if plain.is_some() && !exempt => {
                panic!("the browser's SRTP, in order, was refused: {e}")
            }
            Err(_) => {}
        }
        None
    }

    /// A datagram from the PBX on `leg`'s port; `structured` when the
    /// browser must be able to read what the relay makes of it.
    fn pbx_sends(
        &mut self,
        leg: usize,
        from: SocketAddr,
        rtcp: bool,
        packet: &[u8],
        structured: bool,
    ) {
        if self.latching && !self.pbx_targets.contains(&from) {
            self.pbx_targets.push(from);
        }
        let mut buf = packet.to_vec();
        buf.resize(packet.len() + HEADROOM, 0);
        let now = self.now();
        let result = self
            .session
            .from_pbx(now, leg, from, rtcp, &mut buf, packet.len());
        if let Ok(Forward::ToBrowser { to, len }) = result {
            assert!(
                self.checked.contains(&to),
                "media to {to}, not a checked browser"
            );
            let read = self.browser_reads(&buf[..len], rtcp);
            match read {
                Some(Ok(plain)) if structured => {
                    assert!(plain == packet, "the PBX's packet changed on the way");
                }
                Some(Err(e)) if structured => {
                    panic!("the browser cannot read the PBX's packet: {e}");
                }
                _ => {}
            }
        } else {
            assert!(
                !matches!(result, Ok(Forward::ToPbx { .. })),
                "the PBX's packet sent back to the PBX"
            );
        }
    }
}

/// An RTP packet, version 2, no CSRC or extension.
fn rtp(ssrc: u32, seq: u16, p: &Rtp) -> Vec<u8> {
    let mut packet = vec![0x80, p.payload_type & 0x7f];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend_from_slice(&p.payload);
    packet
}

/// An RTCP packet: its type is one RTCP has (192–223, RFC 5761 §4), or
/// a browser's would be taken for RTP.
fn rtcp(ssrc: u32, p: &Rtcp) -> Vec<u8> {
    let mut packet = vec![0x80, 192 + p.packet_type % 32];
    let words = u16::try_from((4 + p.body.len()).div_ceil(4)).unwrap_or(u16::MAX);
    packet.extend_from_slice(&words.to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend_from_slice(&p.body);
    packet
}

/// Protects `plain` with the browser's keys.
fn protect(ctx: &mut Context, plain: &[u8], rtcp: bool) -> Option<Vec<u8>> {
    let mut buf = plain.to_vec();
    buf.resize(plain.len() + HEADROOM, 0);
    let n = if rtcp {
        ctx.protect_rtcp(&mut buf, plain.len())
    } else {
        ctx.protect_rtp(&mut buf, plain.len())
    }
    .ok()?;
    buf.truncate(n);
    Some(buf)
}

/// A session, connected through a real handshake when `connect` says so.
fn call(connect: Option<bool>, echo: bool) -> Call {
    let local = addr(RELAY);
    let (session, keys, checked, browser_ufrag) = match connect {
        Some(gcm) => {
            let profile = if gcm {
                SrtpProtectionProfile::Srtp_Aead_Aes_128_Gcm
            } else {
                SrtpProtectionProfile::Srtp_Aes128_Cm_Hmac_Sha1_80
            };
            let mut peer =
                BrowserPeer::with_profiles(browser(0), vec![profile]).expect("a browser");
            let mut ice = IceLite::new(UFRAG, PWD);
            ice.set_remote_ufrag(peer.ufrag());
            let dtls = DtlsServer::new(&IDENTITY, local, peer.fingerprint()).expect("a server");
            let mut session = new_session(ice, dtls, echo);
            let remote = RemoteTransport {
                addr: local,
                ufrag: UFRAG.into(),
                pwd: PWD.into(),
                fingerprint: IDENTITY.fingerprint().into(),
            };
            let keys = connect_in_memory(&mut peer, &remote, &mut session, browser(0))
                .expect("the in-memory handshake completes");
            (
                session,
                Some(keys),
                vec![browser(0)],
                peer.ufrag().to_owned(),
            )
        }
        None => {
            let mut ice = IceLite::new(UFRAG, PWD);
            ice.set_remote_ufrag(BROWSER_UFRAG);
            let dtls = DtlsServer::new(&IDENTITY, local, "sha-256 AA:BB").expect("a server");
            let session = new_session(ice, dtls, echo);
            (session, None, Vec::new(), BROWSER_UFRAG.to_owned())
        }
    };
    Call {
        session,
        keys,
        start: Instant::now(),
        now: Duration::ZERO,
        browser_ufrag,
        credentials: (UFRAG, PWD),
        previous: (UFRAG, PWD),
        checked,
        pbx_targets: Vec::new(),
        latching: false,
        seq: HashMap::new(),
        wrapped: HashSet::new(),
        decrypted: HashSet::new(),
    }
}

/// A call's session, or the echo extension's.
fn new_session(ice: IceLite, dtls: DtlsServer, echo: bool) -> Session {
    if echo {
        Session::echo(ice, dtls)
    } else {
        Session::new(ice, dtls)
    }
}

fuzz_target!(|input: Input| {
    let mut c = call(input.connect, input.echo);
    for op in &input.ops {
        match op {
            Op::BrowserRaw(from, bytes) => {
                let _ = c.browser_sends(browser(*from), bytes, None);
            }
            Op::BrowserCheck {
                from,
                previous,
                check,
            } => {
                let from = browser(*from);
                let (ufrag, pwd) = if *previous { c.previous } else { c.credentials };
                let username = format!("{ufrag}:{}", c.browser_ufrag);
                let request = check.encode(&username, pwd.as_bytes());
                if let Some(answer) = c.browser_sends(from, &request, None)
                    && let Err(e) = verify_answer(&answer, &request, from, pwd.as_bytes())
                {
                    panic!("a wrong answer to a check: {e}");
                }
            }
            Op::BrowserRtp(from, p) => {
                let ssrc = 0xb000_0000 + u32::from(p.ssrc % 4);
                let seq = c.seq(ssrc, p);
                let plain = rtp(ssrc, seq, p);
                let protected = c
                    .keys
                    .as_mut()
                    .and_then(|k| protect(&mut k.outbound, &plain, false));
                let plain = Plain {
                    bytes: &plain,
                    ssrc,
                    rtcp: false,
                };
                let _ = match protected {
                    Some(srtp) => c.browser_sends(browser(*from), &srtp, Some(plain)),
                    None => c.browser_sends(browser(*from), plain.bytes, None),
                };
            }
            Op::BrowserRtcp(from, p) => {
                let ssrc = 0xb000_0000 + u32::from(p.ssrc % 4);
                let plain = rtcp(ssrc, p);
                let protected = c
                    .keys
                    .as_mut()
                    .and_then(|k| protect(&mut k.outbound, &plain, true));
                let plain = Plain {
                    bytes: &plain,
                    ssrc,
                    rtcp: true,
                };
                let _ = match protected {
                    // The echo sends no RTCP back: only the PBX gets it.
                    Some(srtp) => c.browser_sends(browser(*from), &srtp, Some(plain)),
                    None => c.browser_sends(browser(*from), plain.bytes, None),
                };
            }
            Op::Pbx { leg, from, packet } => {
                let leg = usize::from(*leg % 3);
                let from = pbx(*from);
                match packet {
                    PbxPacket::Rtp(p) => {
                        let ssrc = 0xc000_0000 + u32::from(p.ssrc % 4);
                        let seq = c.seq(ssrc, p);
                        let packet = rtp(ssrc, seq, p);
                        c.pbx_sends(leg, from, false, &packet, true);
                    }
                    PbxPacket::Rtcp(p) => {
                        let packet = rtcp(0xc000_0000 + u32::from(p.ssrc % 4), p);
                        c.pbx_sends(leg, from, true, &packet, true);
                    }
                    PbxPacket::Raw(rtcp, bytes) => {
                        let mut packet = bytes.clone();
                        let at = if *rtcp { 4 } else { 8 };
                        if let Some(ssrc) = packet.get_mut(at..at + 4) {
                            ssrc.copy_from_slice(&RAW_SSRC.to_be_bytes());
                        }
                        c.pbx_sends(leg, from, *rtcp, &packet, false);
                    }
                }
            }
            Op::SetPbx { leg, rtp, rtcp } => {
                let (rtp, rtcp) = (pbx(*rtp), pbx(*rtcp));
                for a in [rtp, rtcp] {
                    if !c.pbx_targets.contains(&a) {
                        c.pbx_targets.push(a);
                    }
                }
                c.session.set_pbx(usize::from(*leg % 3), rtp, rtcp);
            }
            Op::PayloadLegs(map) => c.session.set_payload_legs(map),
            Op::Latching(on) => {
                c.latching |= *on;
                c.session.set_latching(*on);
            }
            Op::ClockRate(leg, hz) => c.session.set_clock_rate(usize::from(*leg % 3), *hz),
            Op::RestartIce => {
                // New credentials each time: the two sets take turns.
                let next = if c.credentials.0 == UFRAG {
                    (NEW_UFRAG, NEW_PWD)
                } else {
                    (UFRAG, PWD)
                };
                let mut ice = IceLite::new(next.0, next.1);
                ice.set_remote_ufrag(&c.browser_ufrag);
                c.session.restart_ice(ice);
                c.previous = std::mem::replace(&mut c.credentials, next);
            }
            Op::Advance(ms) => {
                c.now += Duration::from_millis(u64::from(*ms));
                let now = c.now();
                let _ = c.session.handle_timeout(now);
                let _ = (c.session.poll_timeout(), c.session.failure());
            }
        }
        c.dtls_out();
        let _ = (c.session.figures(), c.session.is_connected());
    }
});
