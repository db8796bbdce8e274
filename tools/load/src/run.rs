//! A load run: N calls set up through the gateway, then media at a set
//! packet rate both ways for a set time, every packet stamped with its
//! send time so that the far side measures its latency through the
//! gateway; then BYE. In PBX mode the load also plays the PBX (plain RTP
//! on its own sockets, one-way latency each way); in echo mode the gateway
//! sends the browser's packets back (round trip).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sipline_relay::media::srtp::Profile;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

use crate::peer::{BrowserKeys, BrowserPeer, RemoteTransport};
use crate::sip::{Dialog, PbxLeg, PbxUas, Uac};

/// What to run.
#[derive(Clone, Debug)]
pub struct LoadConfig {
    /// The gateway's WebSocket URL.
    pub ws: String,
    /// The SIP domain of the targets (`sip:load-<n>@<domain>`).
    pub domain: String,
    /// The target's user part in echo mode (`echo`).
    pub echo_user: String,
    /// User and password for the gateway's digest challenges, if any.
    pub credentials: Option<(String, String)>,
    /// Concurrent calls.
    pub calls: usize,
    /// Packets per second each way per call (50: 20 ms audio frames).
    pub rate: u32,
    /// RTP payload bytes (160: a 20 ms G.711 frame).
    pub payload: usize,
    /// How long media runs once every call is up.
    pub duration: Duration,
    /// Calls set up at once.
    pub setup_parallel: usize,
    /// The address the browsers' sockets bind.
    pub local_ip: IpAddr,
    /// The gateway's process, to read its CPU time and memory.
    pub gateway_pid: Option<u32>,
    /// No gateway: each call's two ends send to each other directly, to
    /// measure the load generator's own latency at this load.
    pub baseline: bool,
    /// The longest a call's WebSocket goes without a keep-alive during its
    /// media (at most 20 s, well under a third of the relay's idle limit).
    pub keep_alive: Duration,
}

/// One direction's figures.
#[derive(Clone, Debug, Default)]
pub struct DirectionReport {
    /// Packets sent.
    pub sent: u64,
    /// Packets received.
    pub received: u64,
    /// Latency percentiles and maximum, in microseconds.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Maximum.
    pub max_us: u64,
}

impl DirectionReport {
    /// Packets that did not arrive, as a fraction of those sent.
    pub fn loss(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        self.sent.saturating_sub(self.received) as f64 / self.sent as f64
    }
}

/// Registered WebSockets that say nothing but keep-alives, as the open
/// tabs of agents between calls: their count, and how many the gateway
/// closed or that failed to register.
#[derive(Clone, Debug, Default)]
pub struct IdleReport {
    /// Registered (2xx to their REGISTER).
    pub registered: usize,
    /// Refused, or closed by the gateway, at any time until the end.
    pub lost: usize,
    /// Why (first few).
    pub failures: Vec<String>,
}

/// Opens `count` WebSockets, registers each (as `cfg.credentials`' user in
/// `cfg.domain`), and keeps them alive until `stop` fires; `ready` fires
/// once all are registered.
pub async fn hold_idle(
    cfg: LoadConfig,
    count: usize,
    ready: tokio::sync::oneshot::Sender<()>,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> IdleReport {
    let mut report = IdleReport::default();
    let credentials = cfg
        .credentials
        .as_ref()
        .map(|(u, p)| (u.as_str(), p.as_str()));
    let aor = format!(
        "sip:{}@{}",
        credentials.map_or("load", |(u, _)| u),
        cfg.domain
    );
    let mut held = Vec::with_capacity(count);
    for chunk in (0..count)
        .collect::<Vec<_>>()
        .chunks(cfg.setup_parallel.max(1))
    {
        let tries = chunk.iter().map(|_| async {
            let mut uac = Uac::connect(&cfg.ws, credentials)
                .await
                .map_err(|e| e.to_string())?;
            match uac.register(&aor, 3600).await {
                Ok(200..=299) => Ok(uac),
                Ok(code) => Err(format!("REGISTER answered {code}")),
                Err(e) => Err(e.to_string()),
            }
        });
        for outcome in futures_util::future::join_all(tries).await {
            match outcome {
                Ok(uac) => held.push(uac),
                Err(e) => {
                    report.lost += 1;
                    if report.failures.len() < 5 {
                        report.failures.push(e);
                    }
                }
            }
        }
    }
    report.registered = held.len();
    let _ = ready.send(());
    let mut keep_alive = tokio::time::interval(cfg.keep_alive.min(KEEP_ALIVE));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = keep_alive.tick() => {
                let mut alive = Vec::with_capacity(held.len());
                for mut uac in held.drain(..) {
                    match uac.keep_alive().await {
                        Ok(()) => alive.push(uac),
                        Err(e) => {
                            report.lost += 1;
                            if report.failures.len() < 5 {
                                report.failures.push(format!("closed: {e}"));
                            }
                        }
                    }
                }
                held = alive;
            }
        }
    }
    // Each must still be open: one the gateway closed has its close frame
    // (or a reset) waiting to be read.
    let open = futures_util::future::join_all(
        held.iter_mut()
            .map(|uac| uac.still_open(Duration::from_millis(200))),
    )
    .await;
    report.lost += open.iter().filter(|o| !**o).count();
    report
}

/// What a run measured.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Calls that reached media.
    pub calls_up: usize,
    /// Why the others did not (first few).
    pub failures: Vec<String>,
    /// The SRTP profile the gateway chose.
    pub profile: Option<Profile>,
    /// Browser → PBX (or, in echo mode, browser → browser round trip).
    pub to_pbx: DirectionReport,
    /// PBX → browser (empty in echo mode).
    pub to_browser: DirectionReport,
    /// The gateway's CPU use during the media phase, in cores (1.0 = one
    /// core busy).
    pub gateway_cores: Option<f64>,
    /// The gateway's resident memory growth per call, in bytes.
    pub gateway_bytes_per_call: Option<u64>,
    /// Seconds the media phase lasted.
    pub seconds: f64,
}

/// A latency histogram: 1 µs buckets to 2 ms, 100 µs buckets to 100 ms.
#[derive(Clone, Debug)]
struct Histogram {
    buckets: Vec<u32>,
    max_us: u64,
    count: u64,
}

const FINE: u64 = 2_000;
const COARSE_STEP: u64 = 100;
const BUCKETS: usize = (FINE + (100_000 - FINE) / COARSE_STEP + 1) as usize;

impl Histogram {
    fn new() -> Self {
        Self {
            buckets: vec![0; BUCKETS],
            max_us: 0,
            count: 0,
        }
    }

    fn record(&mut self, us: u64) {
        let i = if us < FINE {
            us
        } else {
            FINE + (us - FINE) / COARSE_STEP
        };
        let i = (i as usize).min(BUCKETS - 1);
        self.buckets[i] += 1;
        self.max_us = self.max_us.max(us);
        self.count += 1;
    }

    fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.max_us = self.max_us.max(other.max_us);
        self.count += other.count;
    }

    fn percentile(&self, p: f64) -> u64 {
        let want = ((self.count as f64) * p).ceil() as u64;
        let mut seen = 0u64;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += u64::from(*n);
            if seen >= want.max(1) {
                let i = i as u64;
                return if i < FINE {
                    i
                } else {
                    FINE + (i - FINE) * COARSE_STEP
                };
            }
        }
        self.max_us
    }
}

/// One call with its media ready: its SIP dialog (none in a baseline
/// run) and its media ends.
pub struct Call {
    signalling: Option<(Uac, Dialog)>,
    media: Media,
}

/// A call's media ends: the browser's socket (connected to the gateway),
/// its SRTP keys (none in a baseline run: plain RTP), and the PBX's.
struct Media {
    browser: UdpSocket,
    keys: Option<BrowserKeys>,
    pbx: Option<PbxLeg>,
}

/// Waits for a datagram up to `within`.
async fn recv_within(socket: &UdpSocket, buf: &mut [u8], within: Duration) -> Option<usize> {
    tokio::time::timeout(within, socket.recv(buf))
        .await
        .ok()?
        .ok()
}

impl Call {
    /// The next request the gateway sends the browser (answered 200), as
    /// text: a BYE when the gateway ends the call.
    pub async fn next_request(&mut self, within: Duration) -> Option<String> {
        let (uac, _) = self.signalling.as_mut()?;
        uac.next_request(within).await
    }

    /// The code of the gateway's WebSocket close frame, once one came.
    pub fn close_code(&self) -> Option<u16> {
        self.signalling
            .as_ref()
            .and_then(|(uac, _)| uac.close_code())
    }

    /// Sends `packet` from the PBX's RTP socket to the gateway, as a PBX
    /// that goes on talking; an error when the call has no PBX leg.
    pub async fn send_from_pbx(&self, packet: &[u8]) -> std::io::Result<()> {
        let leg = self.media.pbx.as_ref().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no PBX leg in this call")
        })?;
        leg.socket.send_to(packet, leg.gateway).await.map(|_| ())
    }
}

/// Sets up call `n`: SIP, ICE, DTLS, and the PBX leg in PBX mode.
pub async fn set_up(cfg: &LoadConfig, pbx: Option<&PbxUas>, n: usize) -> Result<Call, String> {
    let browser = UdpSocket::bind((cfg.local_ip, 0))
        .await
        .map_err(|e| e.to_string())?;
    let local = browser.local_addr().map_err(|e| e.to_string())?;
    let mut peer = BrowserPeer::new(local).map_err(|e| e.to_string())?;
    let user = match pbx {
        Some(_) => format!("load-{n}"),
        None => cfg.echo_user.clone(),
    };
    let leg = pbx.map(|p| p.expect(&user));
    let credentials = cfg
        .credentials
        .as_ref()
        .map(|(u, p)| (u.as_str(), p.as_str()));
    let mut uac = Uac::connect(&cfg.ws, credentials)
        .await
        .map_err(|e| e.to_string())?;
    let target = format!("sip:{user}@{}", cfg.domain);
    let caller = credentials.map_or("load", |(u, _)| u);
    let dialog = uac
        .call(
            &target,
            &format!("sip:{caller}@{}", cfg.domain),
            &peer.offer(local),
        )
        .await
        .map_err(|e| e.to_string())?;
    let remote = RemoteTransport::from_sdp(&dialog.answer).map_err(|e| e.to_string())?;
    browser
        .connect(remote.addr)
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; 2048];
    // ICE: a nominating check, retried as a browser would.
    let mut checked = false;
    for _ in 0..5 {
        let check = peer.check(&remote).map_err(|e| e.to_string())?;
        browser.send(&check).await.map_err(|e| e.to_string())?;
        if let Some(n) = recv_within(&browser, &mut buf, Duration::from_millis(500)).await
            && buf[..n].starts_with(&[0x01, 0x01])
        {
            checked = true;
            break;
        }
    }
    if !checked {
        return Err("no answer to the ICE check".into());
    }
    // DTLS as the client.
    peer.connect(Instant::now(), &remote)
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let keys = loop {
        while let Some(d) = peer.poll_transmit() {
            browser.send(&d).await.map_err(|e| e.to_string())?;
        }
        if Instant::now() > deadline {
            return Err("DTLS handshake timed out".into());
        }
        let wait = peer
            .poll_timeout()
            .map_or(Duration::from_millis(200), |t| {
                t.saturating_duration_since(Instant::now())
            })
            .max(Duration::from_millis(1));
        match recv_within(&browser, &mut buf, wait).await {
            Some(n) => {
                if let Some(keys) = peer
                    .handle(Instant::now(), &buf[..n])
                    .map_err(|e| e.to_string())?
                {
                    break keys;
                }
            }
            None => peer
                .handle_timeout(Instant::now())
                .map_err(|e| e.to_string())?,
        }
    };
    let pbx = match leg {
        Some(rx) => Some(rx.await.map_err(|_| "the PBX never got the INVITE")?),
        None => None,
    };
    Ok(Call {
        signalling: Some((uac, dialog)),
        media: Media {
            browser,
            keys: Some(keys),
            pbx,
        },
    })
}

/// A baseline call: the browser's socket and the PBX's talking directly,
/// plain, so that a run measures the load generator's own latency.
async fn baseline(cfg: &LoadConfig) -> Result<Call, String> {
    let browser = UdpSocket::bind((cfg.local_ip, 0))
        .await
        .map_err(|e| e.to_string())?;
    let pbx = UdpSocket::bind((cfg.local_ip, 0))
        .await
        .map_err(|e| e.to_string())?;
    let (b, p) = (
        browser.local_addr().map_err(|e| e.to_string())?,
        pbx.local_addr().map_err(|e| e.to_string())?,
    );
    browser.connect(p).await.map_err(|e| e.to_string())?;
    Ok(Call {
        signalling: None,
        media: Media {
            browser,
            keys: None,
            pbx: Some(PbxLeg {
                socket: pbx,
                gateway: b,
            }),
        },
    })
}

/// One call's media figures.
struct CallFigures {
    to_pbx: (u64, u64, Histogram),
    to_browser: (u64, u64, Histogram),
}

/// Largest payload that fits a 1,500-byte datagram with its RTP header and
/// SRTP's overhead.
pub const MAX_PAYLOAD: usize = 1500 - 12 - 16;

/// RTP header + payload, the send time (ns since `epoch`) at the payload's
/// start; the timestamp advances `step` per packet (8 kHz clock ÷ rate).
fn stamp(buf: &mut [u8], seq: u16, step: u32, ssrc: u32, payload: usize, epoch: Instant) -> usize {
    buf[0] = 0x80;
    buf[1] = 0;
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
    buf[4..8].copy_from_slice(&(u32::from(seq).wrapping_mul(step)).to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
    let ns = epoch.elapsed().as_nanos() as u64;
    buf[12..20].copy_from_slice(&ns.to_be_bytes());
    12 + payload.clamp(8, MAX_PAYLOAD)
}

/// Microseconds since a stamped packet was sent.
fn latency_us(packet: &[u8], epoch: Instant) -> Option<u64> {
    let sent = u64::from_be_bytes(packet.get(12..20)?.try_into().ok()?);
    let now = epoch.elapsed().as_nanos() as u64;
    Some(now.saturating_sub(sent) / 1_000)
}

/// How often a call's WebSocket gets a keep-alive during its media: well
/// under a third of any gateway's idle limit (the relay's default is 90 s).
const KEEP_ALIVE: Duration = Duration::from_secs(20);

/// Runs one call's media until `end`, with a phase `offset` into the
/// packet interval so that calls do not send in lockstep; its WebSocket
/// (`uac`) gets a keep-alive meanwhile, so that the gateway does not close
/// it as silent before the call's BYE.
async fn media(
    call: &mut Media,
    mut uac: Option<&mut Uac>,
    cfg: &LoadConfig,
    epoch: Instant,
    offset: Duration,
    end: tokio::time::Instant,
) -> CallFigures {
    let interval = Duration::from_secs(1) / cfg.rate.max(1);
    // PCMU's 8 kHz clock: 160 per packet at 50 packets a second.
    let step = 8000 / cfg.rate.max(1);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + offset, interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut out = vec![0u8; 1600];
    let mut pbx_out = vec![0u8; 1600];
    let mut in_browser = vec![0u8; 1600];
    let mut in_pbx = vec![0u8; 1600];
    let mut f = CallFigures {
        to_pbx: (0, 0, Histogram::new()),
        to_browser: (0, 0, Histogram::new()),
    };
    let mut ssrc = [0u8; 4];
    let _ = getrandom::fill(&mut ssrc);
    let ssrc = u32::from_be_bytes(ssrc);
    let mut seq = 0u16;
    // Packets still on their way are counted for a moment after the end.
    let drain = end + Duration::from_millis(200);
    let keep_alive_every = KEEP_ALIVE.min(cfg.keep_alive);
    let mut keep_alive = tokio::time::interval_at(
        tokio::time::Instant::now() + keep_alive_every,
        keep_alive_every,
    );
    loop {
        let sending = tokio::time::Instant::now() < end;
        tokio::select! {
            _ = keep_alive.tick(), if uac.is_some() => {
                if let Some(uac) = uac.as_deref_mut() {
                    let _ = uac.keep_alive().await;
                }
            }
            _ = ticker.tick(), if sending => {
                seq = seq.wrapping_add(1);
                let len = stamp(&mut out, seq, step, ssrc, cfg.payload, epoch);
                let n = match call.keys.as_mut() {
                    Some(keys) => keys.outbound.protect_rtp(&mut out, len).ok(),
                    None => Some(len),
                };
                if let Some(n) = n
                    && call.browser.send(&out[..n]).await.is_ok()
                {
                    f.to_pbx.0 += 1;
                }
                if let Some(leg) = &call.pbx {
                    let len = stamp(&mut pbx_out, seq, step, !ssrc, cfg.payload, epoch);
                    if leg.socket.send_to(&pbx_out[..len], leg.gateway).await.is_ok() {
                        f.to_browser.0 += 1;
                    }
                }
            }
            read = call.browser.recv(&mut in_browser) => {
                let Ok(n) = read else { continue };
                let m = match call.keys.as_mut() {
                    Some(keys) => keys.inbound.unprotect_rtp(&mut in_browser[..n]).ok(),
                    None => Some(n),
                };
                if let Some(m) = m
                    && let Some(us) = latency_us(&in_browser[..m], epoch)
                {
                    // In echo mode these are the browser's own packets back.
                    let d = if call.pbx.is_some() { &mut f.to_browser } else { &mut f.to_pbx };
                    d.1 += 1;
                    d.2.record(us);
                }
            }
            read = async {
                match &call.pbx {
                    Some(leg) => leg.socket.recv(&mut in_pbx).await,
                    None => std::future::pending().await,
                }
            } => {
                let Ok(n) = read else { continue };
                if let Some(us) = latency_us(&in_pbx[..n], epoch) {
                    f.to_pbx.1 += 1;
                    f.to_pbx.2.record(us);
                }
            }
            _ = tokio::time::sleep_until(drain) => break,
        }
    }
    f
}

/// The gateway's CPU time (user + system), from /proc.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis: utime is the 12th,
    // stime the 13th (14th and 15th of the line).
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // Linux reports in USER_HZ, 100 on every mainstream architecture.
    Some(Duration::from_millis(ticks * 10))
}

/// The gateway's resident memory, from /proc.
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

fn direction((sent, received, h): (u64, u64, Histogram)) -> DirectionReport {
    DirectionReport {
        sent,
        received,
        p50_us: h.percentile(0.50),
        p99_us: h.percentile(0.99),
        p999_us: h.percentile(0.999),
        max_us: h.max_us,
    }
}

/// Runs the load: PBX mode when `pbx` is given, echo mode otherwise.
pub async fn run(cfg: LoadConfig, pbx: Option<PbxUas>) -> Report {
    let rss_before = cfg.gateway_pid.and_then(resident_bytes);
    let gate = Arc::new(Semaphore::new(cfg.setup_parallel.max(1)));
    let cfg = Arc::new(cfg);
    let mut setups = Vec::with_capacity(cfg.calls);
    for n in 0..cfg.calls {
        let (cfg, pbx, gate) = (cfg.clone(), pbx.clone(), gate.clone());
        setups.push(tokio::spawn(async move {
            let _permit = gate.acquire().await;
            if cfg.baseline {
                baseline(&cfg).await
            } else {
                set_up(&cfg, pbx.as_ref(), n).await
            }
        }));
    }
    let mut ready = Vec::with_capacity(cfg.calls);
    let mut report = Report::default();
    for s in setups {
        match s.await {
            Ok(Ok(call)) => ready.push(call),
            Ok(Err(e)) => report.failures.push(e),
            Err(e) => report.failures.push(e.to_string()),
        }
    }
    report.calls_up = ready.len();
    report.profile = ready
        .first()
        .and_then(|c| c.media.keys.as_ref())
        .map(|k| k.profile);
    let rss_up = cfg.gateway_pid.and_then(resident_bytes);
    if let (Some(before), Some(up), false) = (rss_before, rss_up, ready.is_empty()) {
        report.gateway_bytes_per_call = Some(up.saturating_sub(before) / ready.len() as u64);
    }

    let epoch = Instant::now();
    let cpu_before = cfg.gateway_pid.and_then(cpu_time);
    let end = tokio::time::Instant::now() + cfg.duration;
    let count = ready.len().max(1) as u32;
    let period = Duration::from_secs(1) / cfg.rate.max(1);
    let mut tasks = Vec::with_capacity(ready.len());
    for (i, mut call) in ready.into_iter().enumerate() {
        let cfg = cfg.clone();
        let offset = period * (i as u32 % count) / count;
        tasks.push(tokio::spawn(async move {
            let uac = call.signalling.as_mut().map(|(uac, _)| uac);
            let figures = media(&mut call.media, uac, &cfg, epoch, offset, end).await;
            let hung_up = match call.signalling.as_mut() {
                Some((uac, dialog)) => match uac.hang_up(dialog).await {
                    Ok(200..=299) => Ok(()),
                    Ok(code) => Err(format!("call {i}: BYE answered {code}")),
                    Err(e) => Err(format!("call {i}: BYE failed: {e}")),
                },
                None => Ok(()),
            };
            (figures, hung_up)
        }));
    }
    let mut to_pbx = (0, 0, Histogram::new());
    let mut to_browser = (0, 0, Histogram::new());
    for t in tasks {
        if let Ok((f, hung_up)) = t.await {
            if let Err(e) = hung_up {
                report.failures.push(e);
            }
            to_pbx.0 += f.to_pbx.0;
            to_pbx.1 += f.to_pbx.1;
            to_pbx.2.merge(&f.to_pbx.2);
            to_browser.0 += f.to_browser.0;
            to_browser.1 += f.to_browser.1;
            to_browser.2.merge(&f.to_browser.2);
        }
    }
    report.seconds = cfg.duration.as_secs_f64();
    if let (Some(pid), Some(before)) = (cfg.gateway_pid, cpu_before)
        && let Some(after) = cpu_time(pid)
    {
        report.gateway_cores = Some((after - before).as_secs_f64() / epoch.elapsed().as_secs_f64());
    }
    report.to_pbx = direction(to_pbx);
    report.to_browser = direction(to_browser);
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_come_from_the_buckets() {
        let mut h = Histogram::new();
        for us in 1..=1000 {
            h.record(us);
        }
        h.record(5_432);
        assert_eq!(h.percentile(0.5), 501);
        assert_eq!(h.percentile(0.99), 991);
        assert_eq!(h.percentile(1.0), 5_400, "coarse above 2 ms");
        assert_eq!(h.max_us, 5_432);
    }

    #[test]
    fn a_stamped_packet_reads_back_its_age() {
        let epoch = Instant::now();
        let mut buf = [0u8; 200];
        let len = stamp(&mut buf, 7, 160, 9, 160, epoch);
        assert_eq!(len, 172);
        assert_eq!(&buf[2..4], &7u16.to_be_bytes());
        let age = latency_us(&buf[..len], epoch).expect("a stamp");
        assert!(age < 1_000_000);
    }
}
