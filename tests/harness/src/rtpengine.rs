//! rtpengine from Debian (`rtpengine-daemon`, userspace forwarding) as the
//! media gateway of the classic stack sipline replaces: Kamailio's
//! WebSocket in front of browsers, rtpengine turning their DTLS-SRTP and
//! ICE into plain RTP (Kamailio drives it over the ng protocol when
//! started with [`crate::kamailio::Options::rtpengine`]).

use std::fs;
use std::io;
use std::net::UdpSocket;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Why rtpengine could not be started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The binary is not installed.
    #[error("rtpengine not found: `bash tests/run.sh` installs Debian's rtpengine-daemon")]
    NotInstalled,
    /// Spawning or preparing its directory failed.
    #[error("starting rtpengine: {0}")]
    Io(#[from] io::Error),
    /// It exited or never answered a ping on its control port.
    #[error("rtpengine did not answer on 127.0.0.1:{port} within {waited:?}; its log:\n{log}")]
    NotReady {
        /// Its ng control port.
        port: u16,
        /// How long we waited.
        waited: Duration,
        /// The end of its log.
        log: String,
    },
}

/// A running rtpengine; stopped when dropped.
pub struct Rtpengine {
    child: Child,
    dir: PathBuf,
    /// Its ng control port (UDP, 127.0.0.1), for Kamailio's `rtpengine_sock`.
    pub ng_port: u16,
}

const BINARY: &str = "/usr/bin/rtpengine";

impl Rtpengine {
    /// Starts rtpengine on 127.0.0.1 with media ports `first..=last` and
    /// waits until it answers the ng protocol's ping.
    pub fn start(first: u16, last: u16) -> Result<Rtpengine, Error> {
        if !std::path::Path::new(BINARY).is_file() {
            return Err(Error::NotInstalled);
        }
        let ng_port = crate::free_port()?;
        let dir = std::env::temp_dir().join(format!(
            "sipline-rtpengine-{}-{ng_port}",
            std::process::id()
        ));
        fs::create_dir_all(&dir)?;
        let log = fs::File::create(dir.join("rtpengine.log"))?;
        let mut cmd = Command::new(BINARY);
        // Userspace only (no kernel table), no config file, in the
        // foreground with its log on stderr.
        cmd.args(["--config-file=none", "--table=-1", "--interface=127.0.0.1"])
            .arg(format!("--listen-ng=127.0.0.1:{ng_port}"))
            .arg(format!("--port-min={first}"))
            .arg(format!("--port-max={last}"))
            .args(["--foreground", "--log-stderr", "--log-level=6"])
            .arg(format!("--pidfile={}", dir.join("rtpengine.pid").display()))
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd.spawn()?;
        let mut r = Rtpengine {
            child,
            dir,
            ng_port,
        };
        let waited = Duration::from_secs(10);
        let deadline = Instant::now() + waited;
        loop {
            if r.pong()? {
                return Ok(r);
            }
            let exited = matches!(r.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                return Err(Error::NotReady {
                    port: ng_port,
                    waited,
                    log: r.log_tail(),
                });
            }
        }
    }

    /// One ng `ping` (a cookie, then a bencoded dictionary): whether it
    /// answered `pong` within 100 ms.
    fn pong(&self) -> io::Result<bool> {
        let socket = UdpSocket::bind("127.0.0.1:0")?;
        socket.set_read_timeout(Some(Duration::from_millis(100)))?;
        socket.send_to(b"ready d7:command4:pinge", ("127.0.0.1", self.ng_port))?;
        let mut buf = [0u8; 256];
        Ok(match socket.recv(&mut buf) {
            Ok(n) => buf[..n].windows(4).any(|w| w == b"pong"),
            Err(_) => false,
        })
    }

    /// The last lines it logged, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.dir.join("rtpengine.log")).unwrap_or_default();
        crate::last_lines(&text, 40)
    }
}

impl Drop for Rtpengine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
