//! HAProxy from Debian as the load balancer in front of relays: HTTP mode
//! (WebSockets pass as tunnels), on 127.0.0.1 and a port of its own, each
//! relay a server line, with the PROXY protocol (v2) toward them so that
//! they learn the browsers' addresses.

use std::fs;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Why HAProxy could not be started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The binary is not installed.
    #[error("haproxy not found: `bash tests/run.sh` installs Debian's haproxy")]
    NotInstalled,
    /// Spawning it or writing its config failed.
    #[error("starting haproxy: {0}")]
    Io(#[from] io::Error),
    /// It exited or never listened.
    #[error("haproxy did not listen on {addr} within {waited:?}: {log}")]
    NotReady {
        /// Its frontend address.
        addr: SocketAddr,
        /// How long we waited.
        waited: Duration,
        /// What it printed.
        log: String,
    },
}

/// A running HAProxy; stopped when dropped.
pub struct Haproxy {
    child: Child,
    dir: PathBuf,
    /// Where browsers connect (HTTP and WebSocket).
    pub addr: SocketAddr,
}

const BINARY: &str = "/usr/sbin/haproxy";

impl Haproxy {
    /// Starts HAProxy balancing over the relays' HTTP ports `relays`
    /// (least connections, health-checked on `/healthz`; a refused
    /// connection is retried on another relay), sending each the PROXY
    /// protocol v2 header, and waits until it listens.
    pub fn start(relays: &[u16]) -> Result<Haproxy, Error> {
        if !std::path::Path::new(BINARY).is_file() {
            return Err(Error::NotInstalled);
        }
        let port = crate::free_port()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let dir =
            std::env::temp_dir().join(format!("sipline-haproxy-{}-{port}", std::process::id()));
        fs::create_dir_all(&dir)?;
        let servers: String = relays
            .iter()
            .enumerate()
            .map(|(i, p)| {
                format!(
                    "    server relay{i} 127.0.0.1:{p} send-proxy-v2 check check-send-proxy inter 500 fall 2 rise 2\n"
                )
            })
            .collect();
        let config = format!(
            "global\n    maxconn 1000\n\
defaults\n    mode http\n    timeout connect 5s\n    timeout client 1h\n    timeout server 1h\n    timeout tunnel 1h\n\
frontend browsers\n    bind 127.0.0.1:{port}\n    default_backend relays\n\
backend relays\n    balance leastconn\n    retries 2\n    option redispatch 1\n    option httpchk GET /healthz\n    http-check expect string ok\n{servers}"
        );
        let cfg = dir.join("haproxy.cfg");
        fs::write(&cfg, config)?;
        let log = fs::File::create(dir.join("haproxy.log"))?;
        let child = Command::new(BINARY)
            .arg("-db") // foreground, no daemon
            .arg("-f")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut h = Haproxy { child, dir, addr };
        let waited = Duration::from_secs(5);
        let deadline = Instant::now() + waited;
        loop {
            if TcpStream::connect(addr).is_ok() {
                return Ok(h);
            }
            let exited = matches!(h.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                let log = fs::read_to_string(h.dir.join("haproxy.log")).unwrap_or_default();
                return Err(Error::NotReady { addr, waited, log });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
