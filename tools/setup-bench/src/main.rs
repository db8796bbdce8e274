//! How fast a call starts, for sipline and the JavaScript SIP libraries, on
//! one machine: `run.sh` builds and fetches what this needs, then runs it.
//!
//! It starts the real parts on 127.0.0.1: Kamailio (registrar and proxy),
//! baresip registered there as `bob` (answers every call at once and plays
//! a tone), a release relay in front of Kamailio, and a second relay with
//! its embedded PBX (whose `echo` extension answers at once). Then
//! `driver.mjs` runs each library in headless Chromium: calls out to
//! baresip and to the echo, and calls in from baresip, which this program
//! dials when the driver says so; and first, each library's start-up, from
//! its import to registered with the embedded PBX.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Child;

use anyhow::{Context, Result, bail};
use clap::Parser;
use sipline_test_harness::{audio, baresip, browser, free_port, kamailio, relay};

#[derive(Parser)]
#[command(about = "Call set-up times of sipline, JsSIP and SIP.js through the relay")]
struct Args {
    /// The relay binary (a release build).
    #[arg(long)]
    relay: PathBuf,
    /// The folder with jssip.js and sipjs.js, as run.sh bundles them.
    #[arg(long)]
    libs: PathBuf,
    /// Calls measured per library, direction and scenario.
    #[arg(long, default_value_t = 50)]
    calls: usize,
    /// Calls made first and not counted (the first call also compiles
    /// code paths and opens the devices).
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Start-ups measured per library (a fresh page each, cache off): from
    /// the library's import to registered with the embedded PBX.
    #[arg(long, default_value_t = 20)]
    startup_runs: usize,
    /// Only the start-ups, no calls.
    #[arg(long)]
    startup_only: bool,
    /// Only these libraries (sipline, jssip, sipjs).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where the tones and the JSON results go.
    #[arg(long, default_value = "target/setup-bench")]
    out: PathBuf,
}

/// A relay process, killed when dropped.
struct Relay {
    child: Child,
    http_port: u16,
}

impl Relay {
    fn start(binary: &Path, args: &[&str], users: Option<&str>) -> Result<Relay> {
        let http_port = free_port()?;
        let sip_port = free_port()?;
        let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        let child = relay::launch(binary, http_port, sip_port, &args, users)
            .with_context(|| format!("starting {}", binary.display()))?;
        let started = Relay { child, http_port };
        if !relay::listening(http_port) {
            bail!("the relay did not listen on {http_port}");
        }
        Ok(started)
    }

    fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/sip", self.http_port)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out)?;
    let mic = args.out.join("browser-440hz-48k.wav");
    let far = args.out.join("far-1000hz-8k.wav");
    audio::write_tone(&mic, 440.0, 48_000, 30)?;
    audio::write_tone(&far, 1000.0, 8_000, 30)?;

    let kamailio = kamailio::Kamailio::start(&kamailio::Options::default())?;
    let registrar: SocketAddr = ([127, 0, 0, 1], kamailio.udp_port).into();
    let (bob, bob_password) = kamailio::USERS[1];
    let mut far_end = baresip::Baresip::start(&baresip::Options {
        user: bob.into(),
        password: bob_password.into(),
        domain: kamailio::DOMAIN.into(),
        registrar,
        tone: far,
        register: true,
        codec: baresip::Codec::G711,
        srtp: false,
    })?;
    let in_front = Relay::start(
        &args.relay,
        &[
            "--pbx",
            &registrar.to_string(),
            "--media-ports",
            "36200-36399",
        ],
        None,
    )?;
    let embedded = Relay::start(
        &args.relay,
        &[
            "--embedded-pbx",
            "--domain",
            "sipline.local",
            "--media-ports",
            "36400-36599",
        ],
        Some("alice:alice-bench"),
    )?;
    let (alice, alice_password) = kamailio::USERS[0];
    let scenarios = serde_json::json!([
        {
            "name": "relay + Kamailio + baresip",
            "server": in_front.ws_url(),
            "uri": format!("sip:{alice}@{}", kamailio::DOMAIN),
            "password": alice_password,
            "target": format!("sip:{bob}@{}", kamailio::DOMAIN),
            "incoming": true,
        },
        {
            "name": "relay's embedded PBX, echo",
            "server": embedded.ws_url(),
            "uri": "sip:alice@sipline.local",
            "password": "alice-bench",
            "target": "sip:echo@sipline.local",
            "incoming": false,
        },
    ]);
    let config = serde_json::json!({
        "mic": mic,
        "libs": args.libs.canonicalize().context("the bundles' folder")?,
        "calls": args.calls,
        "warmup": args.warmup,
        "only": if args.only.is_empty() { None } else { Some(&args.only) },
        "startup": (args.startup_runs > 0).then(|| serde_json::json!({
            "runs": args.startup_runs,
            "server": embedded.ws_url(),
            "uri": "sip:alice@sipline.local",
            "password": "alice-bench",
        })),
        "scenarios": if args.startup_only { serde_json::json!([]) } else { scenarios },
    });
    let driver = Path::new(env!("CARGO_MANIFEST_DIR")).join("driver.mjs");
    let alice_uri = format!("sip:{alice}@{}", kamailio::DOMAIN);
    let mut dial_error = None;
    let output = browser::script_at(&driver, &config.to_string(), |event| {
        if event == "dial"
            && let Err(e) = far_end.dial(&alice_uri)
        {
            dial_error.get_or_insert(e);
        }
    })?;
    if let Some(e) = dial_error {
        bail!("baresip could not dial: {e}");
    }
    let results: serde_json::Value = serde_json::from_str(&output)?;
    let file = args.out.join("results.json");
    std::fs::write(&file, serde_json::to_string_pretty(&results)?)?;
    println!(
        "{}",
        results["table"]
            .as_str()
            .unwrap_or("(the driver printed no table)")
    );
    println!(
        "\nmedian / p90 in ms over {} start-ups and {} calls each; every one's marks: {}",
        args.startup_runs,
        args.calls,
        file.display()
    );
    Ok(())
}
