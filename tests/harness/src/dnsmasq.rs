//! dnsmasq from Debian (`dnsmasq-base`: the binary, no system service) as
//! the DNS server of a test: the records it is given, on 127.0.0.1 and a
//! port of its own, answering nothing else (no upstream, no hosts file).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Why dnsmasq could not be started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The binary is not installed.
    #[error("dnsmasq not found: `bash tests/run.sh` installs Debian's dnsmasq-base")]
    NotInstalled,
    /// Spawning it failed.
    #[error("starting dnsmasq: {0}")]
    Io(#[from] io::Error),
    /// It exited or never answered.
    #[error("dnsmasq did not answer on {addr} within {waited:?}: {log}")]
    NotReady {
        /// Where it was told to listen.
        addr: SocketAddr,
        /// How long we waited.
        waited: Duration,
        /// What it printed.
        log: String,
    },
}

/// A running dnsmasq; stopped when dropped.
pub struct Dnsmasq {
    child: Child,
    log: PathBuf,
    /// Where it answers (UDP).
    pub addr: SocketAddr,
}

const BINARY: &str = "/usr/sbin/dnsmasq";

/// A DNS query for `name`'s A record, id 0x5e1e (for the readiness check).
fn query(name: &str) -> Vec<u8> {
    let mut q = vec![0x5e, 0x1e, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

impl Dnsmasq {
    /// Starts dnsmasq with `records`, each a dnsmasq option without its
    /// `--` (`host-record=pbx1.pbx.test,127.0.0.1`,
    /// `srv-host=_sip._udp.pbx.test,pbx1.pbx.test,5060,10,100`, …), their
    /// TTL `ttl` seconds, and waits until it answers.
    pub fn start(records: &[String], ttl: u32) -> Result<Dnsmasq, Error> {
        if !std::path::Path::new(BINARY).is_file() {
            return Err(Error::NotInstalled);
        }
        let port = crate::free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut cmd = Command::new(BINARY);
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--user=root",
            "--pid-file=",
            "--log-facility=-",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--local-ttl={ttl}"))
        .arg(format!("--auth-ttl={ttl}"))
        .args(records.iter().map(|r| format!("--{r}")));
        let log =
            std::env::temp_dir().join(format!("sipline-dnsmasq-{}-{port}.log", std::process::id()));
        let file = std::fs::File::create(&log)?;
        cmd.stdin(Stdio::null())
            .stdout(file.try_clone()?)
            .stderr(file);
        let child = cmd.spawn()?;
        let mut d = Dnsmasq { child, log, addr };
        let probe = UdpSocket::bind("127.0.0.1:0")?;
        probe.set_read_timeout(Some(Duration::from_millis(100)))?;
        let waited = Duration::from_secs(5);
        let deadline = Instant::now() + waited;
        let mut buf = [0u8; 512];
        loop {
            probe.send_to(&query("ready.invalid"), addr)?;
            if probe.recv(&mut buf).is_ok() {
                return Ok(d);
            }
            let exited = matches!(d.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                let log = std::fs::read_to_string(&d.log).unwrap_or_default();
                return Err(Error::NotReady { addr, waited, log });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
