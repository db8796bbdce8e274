//! `sipline-load`: N simulated browsers calling through a WebRTC-to-SIP
//! gateway at a set packet rate, with the PBX side played too (or the
//! gateway's echo), and what each direction measured.
//!
//! ```text
//! sipline-relay --pbx 127.0.0.1:5090 ... &
//! sipline-load --ws ws://127.0.0.1:8080/sip --pbx-listen 127.0.0.1:5090 --calls 200
//! sipline-load --ws ws://127.0.0.1:8080/sip --echo echo --domain sipline.local --calls 50
//! ```

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use clap::Parser;
use sipline_load::run::{DirectionReport, IdleReport, LoadConfig, Report, run};
use sipline_load::sip::PbxUas;

/// Load for WebRTC-to-SIP gateways.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// The gateway's SIP-over-WebSocket URL.
    #[arg(long, default_value = "")]
    ws: String,
    /// Play the PBX too: its SIP address (the gateway's PBX must be this).
    #[arg(long, conflicts_with = "echo")]
    pbx_listen: Option<SocketAddr>,
    /// Call the gateway's echo extension (this user) instead.
    #[arg(long)]
    echo: Option<String>,
    /// The user to authenticate as when the gateway challenges (it also
    /// becomes the caller's address).
    #[arg(long, requires = "password")]
    user: Option<String>,
    /// That user's password (better from the environment).
    #[arg(long, env = "SIPLINE_LOAD_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// The SIP domain of the targets.
    #[arg(long, default_value = "load.invalid")]
    domain: String,
    /// Concurrent calls.
    #[arg(long, default_value_t = 10)]
    calls: usize,
    /// Packets per second each way per call.
    #[arg(long, default_value_t = 50)]
    rate: u32,
    /// RTP payload bytes (at most 1,472: one datagram).
    #[arg(long, default_value_t = 160, value_parser = clap::value_parser!(u16).range(8..=1472))]
    payload: u16,
    /// Seconds of media once all calls are up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Calls set up at once.
    #[arg(long, default_value_t = 20)]
    setup_parallel: usize,
    /// The address the browsers bind.
    #[arg(long, default_value = "127.0.0.1")]
    local_ip: IpAddr,
    /// The gateway's process id, to report its CPU and memory.
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// No gateway at all: each call's two ends talk directly, to measure
    /// this tool's own latency at the same load (subtract it).
    #[arg(long)]
    baseline: bool,
    /// Find the capacity: for each call count listed, a baseline run and
    /// a run through the gateway, one table row each (the gateway's CPU
    /// per packet and the p99 latency it adds over the baseline).
    #[arg(long, value_delimiter = ',', conflicts_with_all = ["baseline", "json"])]
    ramp: Vec<usize>,
    /// Also hold this many registered WebSockets that only send
    /// keep-alives (agents' open tabs between calls), and report how many
    /// the gateway lost.
    #[arg(long, default_value_t = 0)]
    idle: usize,
    /// Print one JSON line instead of the table.
    #[arg(long)]
    json: bool,
}

fn direction_json(d: &DirectionReport) -> String {
    format!(
        "{{\"sent\":{},\"received\":{},\"loss\":{:.6},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"max_us\":{}}}",
        d.sent,
        d.received,
        d.loss(),
        d.p50_us,
        d.p99_us,
        d.p999_us,
        d.max_us
    )
}

fn json(args: &Args, r: &Report, idle: Option<&IdleReport>) -> String {
    let opt = |v: Option<String>| v.unwrap_or_else(|| "null".into());
    format!(
        "{{\"calls\":{},\"calls_up\":{},\"rate\":{},\"payload\":{},\"seconds\":{},\"profile\":{},\
\"to_pbx\":{},\"to_browser\":{},\"gateway_cores\":{},\"gateway_bytes_per_call\":{},\"failures\":{},\
\"idle_registered\":{},\"idle_lost\":{}}}",
        args.calls,
        r.calls_up,
        args.rate,
        args.payload,
        r.seconds,
        opt(r.profile.map(|p| format!("\"{p:?}\""))),
        direction_json(&r.to_pbx),
        direction_json(&r.to_browser),
        opt(r.gateway_cores.map(|c| format!("{c:.3}"))),
        opt(r.gateway_bytes_per_call.map(|b| b.to_string())),
        r.failures.len(),
        opt(idle.map(|i| i.registered.to_string())),
        opt(idle.map(|i| i.lost.to_string())),
    )
}

fn table(r: &Report) {
    println!(
        "calls up: {} ({} failed), profile {:?}",
        r.calls_up,
        r.failures.len(),
        r.profile
    );
    for e in r.failures.iter().take(3) {
        println!("  failure: {e}");
    }
    println!(
        "{:<12} {:>9} {:>9} {:>8} {:>8} {:>8} {:>9} {:>8}",
        "direction", "sent", "received", "loss", "p50 µs", "p99 µs", "p99.9 µs", "max µs"
    );
    for (name, d) in [("to PBX", &r.to_pbx), ("to browser", &r.to_browser)] {
        println!(
            "{name:<12} {:>9} {:>9} {:>7.3}% {:>8} {:>8} {:>9} {:>8}",
            d.sent,
            d.received,
            d.loss() * 100.0,
            d.p50_us,
            d.p99_us,
            d.p999_us,
            d.max_us
        );
    }
    if let Some(c) = r.gateway_cores {
        println!("gateway CPU: {:.1}% of one core", c * 100.0);
    }
    if let Some(b) = r.gateway_bytes_per_call {
        println!("gateway memory: {:.1} KiB per call", b as f64 / 1024.0);
    }
}

/// The worse direction's p99.
fn p99(r: &Report) -> u64 {
    r.to_pbx.p99_us.max(r.to_browser.p99_us)
}

async fn ramp(args: &Args, cfg: LoadConfig, pbx: Option<PbxUas>) -> anyhow::Result<()> {
    println!(
        "{:>6} {:>9} {:>10} {:>11} {:>9} {:>11} {:>10} {:>7} {:>10}",
        "calls",
        "pps",
        "gw CPU %",
        "gw µs/pkt",
        "p99 µs",
        "base p99",
        "added p99",
        "loss %",
        "KiB/call"
    );
    for &calls in &args.ramp {
        let base = run(
            LoadConfig {
                calls,
                baseline: true,
                gateway_pid: None,
                ..cfg.clone()
            },
            None,
        )
        .await;
        let r = run(
            LoadConfig {
                calls,
                ..cfg.clone()
            },
            pbx.clone(),
        )
        .await;
        anyhow::ensure!(
            r.calls_up == calls,
            "only {} of {calls} calls came up: {:?}",
            r.calls_up,
            r.failures.first()
        );
        // Packets through the gateway per second, both ways.
        let pps = (r.to_pbx.received + r.to_browser.received) as f64 / r.seconds;
        let cores = r.gateway_cores.unwrap_or(f64::NAN);
        let loss = r.to_pbx.loss().max(r.to_browser.loss()) * 100.0;
        println!(
            "{calls:>6} {pps:>9.0} {:>10.1} {:>11.2} {:>9} {:>11} {:>10} {loss:>7.3} {:>10.1}",
            cores * 100.0,
            cores * 1e6 / pps,
            p99(&r),
            p99(&base),
            p99(&r).saturating_sub(p99(&base)),
            r.gateway_bytes_per_call.unwrap_or(0) as f64 / 1024.0
        );
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pbx = match args.pbx_listen {
        Some(addr) => Some(PbxUas::start(addr).await?),
        None => None,
    };
    anyhow::ensure!(
        args.baseline || (!args.ws.is_empty() && (pbx.is_some() || args.echo.is_some())),
        "give --ws and --pbx-listen (play the PBX) or --echo USER (call the gateway's echo), or --baseline"
    );
    let cfg = LoadConfig {
        ws: args.ws.clone(),
        domain: args.domain.clone(),
        echo_user: args.echo.clone().unwrap_or_default(),
        credentials: args.user.clone().zip(args.password.clone()),
        calls: args.calls,
        rate: args.rate,
        payload: usize::from(args.payload),
        duration: Duration::from_secs(args.seconds),
        setup_parallel: args.setup_parallel,
        local_ip: args.local_ip,
        gateway_pid: args.gateway_pid,
        baseline: args.baseline,
        keep_alive: Duration::from_secs(20),
    };
    if !args.ramp.is_empty() {
        return ramp(&args, cfg, pbx).await;
    }
    let (ready_tx, ready) = tokio::sync::oneshot::channel();
    let (stop, stop_rx) = tokio::sync::oneshot::channel();
    let idle = (args.idle > 0).then(|| {
        tokio::spawn(sipline_load::run::hold_idle(
            cfg.clone(),
            args.idle,
            ready_tx,
            stop_rx,
        ))
    });
    if idle.is_some() {
        let _ = ready.await;
    }
    let report = run(cfg, pbx).await;
    let _ = stop.send(());
    let idle = match idle {
        Some(task) => Some(task.await?),
        None => None,
    };
    if args.json {
        println!("{}", json(&args, &report, idle.as_ref()));
    } else {
        table(&report);
        if let Some(i) = &idle {
            println!("idle registered: {} ({} lost)", i.registered, i.lost);
            for e in i.failures.iter().take(3) {
                println!("  idle failure: {e}");
            }
        }
    }
    anyhow::ensure!(report.calls_up > 0, "no call reached media");
    Ok(())
}
