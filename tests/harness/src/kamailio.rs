//! Kamailio from Debian as the SIP server of the tests: registrar with digest
//! auth, proxy, and WebSocket server (config in `tests/kamailio/`).

use std::fs;
use std::io;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::test_ca::TestCa;

/// Why Kamailio could not be started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The binary is not installed.
    #[error("kamailio not found (looked in PATH, /usr/sbin): `bash tests/run.sh` installs it")]
    NotInstalled,
    /// Spawning or preparing its directory failed.
    #[error("starting kamailio: {0}")]
    Io(#[from] io::Error),
    /// It exited or never opened its WebSocket port.
    #[error("kamailio did not come up on 127.0.0.1:{port} within {waited:?}; its log:\n{log}")]
    NotReady {
        /// The WebSocket port it was told to open.
        port: u16,
        /// How long we waited.
        waited: Duration,
        /// The end of its log.
        log: String,
    },
}

/// Which digest algorithm Kamailio challenges with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Digest {
    /// MD5 (RFC 2617), Kamailio's default.
    Md5,
    /// SHA-256 (RFC 7616 / RFC 8760).
    Sha256,
}

/// How to run Kamailio.
#[derive(Clone, Debug)]
pub struct Options {
    /// Challenge algorithm.
    pub digest: Digest,
    /// Nonce lifetime in seconds (short values provoke `stale=true`).
    pub nonce_expire: u32,
    /// Registrar minimum interval; lower requests get `423`.
    pub min_expires: u32,
    /// Also a presence server (BLF, MWI, presence) on db_text tables
    /// copied from Kamailio's own (`kamailio-presence-modules`).
    pub presence: bool,
    /// The ng control port of an [`crate::rtpengine::Rtpengine`] that
    /// carries the media of the calls it routes between its WebSocket
    /// clients and UDP phones (`WITH_RTPENGINE`): the classic gateway.
    pub rtpengine: Option<u16>,
    /// SIP over UDP on `[::1]` instead of 127.0.0.1 (`WITH_IPV6`): a PBX
    /// on IPv6. Its WebSocket stays on 127.0.0.1.
    pub ipv6: bool,
    /// SIP over TCP too, on the UDP port (as PBXs take both on 5060), and
    /// over TLS on a port of its own, the TLS certificate from a [`TestCa`]
    /// made for this run (`WITH_STREAMS`; `kamailio-tls-modules`).
    pub streams: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            digest: Digest::Md5,
            nonce_expire: 30,
            min_expires: 60,
            presence: false,
            rtpengine: None,
            ipv6: false,
            streams: false,
        }
    }
}

/// Kamailio's db_text table definitions, which the presence server's
/// copy starts from.
const DB_TEXT_TABLES: &str = "/usr/share/kamailio/dbtext/kamailio";

/// The test users in `tests/kamailio/kamailio.cfg`: (user, password).
pub const USERS: [(&str, &str); 4] = [
    ("alice", "alice-secret"),
    ("bob", "bob-secret"),
    ("carol", "carol-secret"),
    ("dave", "dave-secret"),
];

/// The realm and domain of the test users.
pub const DOMAIN: &str = "sipline.test";

/// A running Kamailio; stopped (with all its workers) when dropped.
pub struct Kamailio {
    child: Child,
    dir: PathBuf,
    /// UDP SIP port on 127.0.0.1 (or `[::1]`, see [`Options::ipv6`]).
    pub udp_port: u16,
    ipv6: bool,
    /// WebSocket port on 127.0.0.1.
    pub ws_port: u16,
    /// SIP over TCP and TLS on 127.0.0.1 ([`Options::streams`]): the
    /// ports, and the CA that signed the TLS certificate.
    pub streams: Option<Streams>,
}

/// Where Kamailio takes SIP over TCP and TLS.
#[derive(Clone, Debug)]
pub struct Streams {
    /// SIP over TCP: the UDP port.
    pub tcp_port: u16,
    /// SIP over TLS; its certificate names `sipline.test`, `pbx.test`,
    /// 127.0.0.1 and ::1.
    pub tls_port: u16,
    /// SIP over TLS from clients that show a certificate of the test CA
    /// only (mutual TLS).
    pub mtls_port: u16,
    /// The test CA: `ca.ca` is what a client must trust.
    pub ca: TestCa,
}

fn binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|d| d.join("kamailio"))
        .find(|p| p.is_file())
}

/// The config kept in `tests/kamailio/`.
pub fn config_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kamailio/kamailio.cfg")
}

impl Kamailio {
    /// Starts Kamailio on fresh ports and waits until its WebSocket port
    /// accepts connections.
    pub fn start(opts: &Options) -> Result<Kamailio, Error> {
        let bin = binary().ok_or(Error::NotInstalled)?;
        let udp_port = crate::free_port()?;
        let ws_port = crate::free_port()?;
        let dir =
            std::env::temp_dir().join(format!("sipline-kamailio-{}-{ws_port}", std::process::id()));
        fs::create_dir_all(&dir)?;
        let log = fs::File::create(dir.join("kamailio.log"))?;
        let mut cmd = Command::new(bin);
        cmd.arg("-f")
            .arg(config_path())
            .args(["-DD", "-E", "-n", "1"])
            .arg("-Y")
            .arg(dir.join("run"))
            .arg("-P")
            .arg(dir.join("kamailio.pid"))
            .arg("-w")
            .arg(&dir)
            .arg("-A")
            .arg(format!("UDP_PORT={udp_port}"))
            .arg("-A")
            .arg(format!("WS_PORT={ws_port}"))
            .arg("-A")
            .arg(format!("NONCE_EXPIRE={}", opts.nonce_expire))
            .arg("-A")
            .arg(format!("MIN_EXPIRES={}", opts.min_expires));
        if opts.digest == Digest::Sha256 {
            cmd.args(["-A", "WITH_SHA256"]);
        }
        if opts.presence {
            let db = dir.join("db");
            fs::create_dir_all(&db)?;
            for entry in fs::read_dir(DB_TEXT_TABLES)? {
                let entry = entry?;
                fs::copy(entry.path(), db.join(entry.file_name()))?;
            }
            cmd.args(["-A", "WITH_PRESENCE", "-A"])
                .arg(format!("DBURL=\"text://{}\"", db.display()))
                .arg("-A")
                .arg(format!("PRESENCE_URI=\"sip:127.0.0.1:{udp_port}\""));
        }
        if opts.ipv6 {
            cmd.args(["-A", "WITH_IPV6"]);
        }
        let streams = match opts.streams {
            true => {
                let ca = TestCa::make(&dir.join("tls"), &[DOMAIN, "pbx.test", "127.0.0.1", "::1"])?;
                let tls_cfg = dir.join("tls.cfg");
                fs::write(
                    &tls_cfg,
                    format!(
                        "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\n\
                         require_certificate = no\nprivate_key = {}\ncertificate = {}\n\
                         ca_list = {}\n\n[client:default]\nmethod = TLSv1.2+\n\
                         verify_certificate = no\nrequire_certificate = no\n",
                        ca.key.display(),
                        ca.cert.display(),
                        ca.ca.display()
                    ),
                )?;
                // free_port() found the UDP port free for TCP as well.
                let s = Streams {
                    tcp_port: udp_port,
                    tls_port: crate::free_port()?,
                    mtls_port: crate::free_port()?,
                    ca,
                };
                let mut tls_text = fs::read_to_string(&tls_cfg)?;
                tls_text.push_str(&format!(
                    "\n[server:127.0.0.1:{}]\nmethod = TLSv1.2+\nverify_certificate = yes\n\
                     require_certificate = yes\nprivate_key = {}\ncertificate = {}\nca_list = {}\n",
                    s.mtls_port,
                    s.ca.key.display(),
                    s.ca.cert.display(),
                    s.ca.ca.display()
                ));
                fs::write(&tls_cfg, tls_text)?;
                cmd.args(["-A", "WITH_STREAMS", "-A"])
                    .arg(format!("TLS_PORT={}", s.tls_port))
                    .arg("-A")
                    .arg(format!("MTLS_PORT={}", s.mtls_port))
                    .arg("-A")
                    .arg(format!("TLS_CFG=\"{}\"", tls_cfg.display()));
                Some(s)
            }
            false => None,
        };
        if let Some(port) = opts.rtpengine {
            cmd.args(["-A", "WITH_RTPENGINE", "-A"])
                .arg(format!("RTPENGINE_SOCK=\"udp:127.0.0.1:{port}\""));
        }
        // Its own process group: Kamailio forks workers that would outlive
        // a killed main process and hold the ports.
        cmd.process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd.spawn()?;
        let mut k = Kamailio {
            child,
            dir,
            udp_port,
            ipv6: opts.ipv6,
            ws_port,
            streams,
        };
        let waited = Duration::from_secs(10);
        let deadline = Instant::now() + waited;
        loop {
            if TcpStream::connect(("127.0.0.1", ws_port)).is_ok() {
                return Ok(k);
            }
            let exited = matches!(k.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                return Err(Error::NotReady {
                    port: ws_port,
                    waited,
                    log: k.log_tail(),
                });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Its SIP address over UDP.
    pub fn udp_addr(&self) -> std::net::SocketAddr {
        let ip: std::net::IpAddr = if self.ipv6 {
            std::net::Ipv6Addr::LOCALHOST.into()
        } else {
            std::net::Ipv4Addr::LOCALHOST.into()
        };
        std::net::SocketAddr::new(ip, self.udp_port)
    }

    /// Its SIP address over TCP ([`Options::streams`]).
    pub fn tcp_addr(&self) -> Option<std::net::SocketAddr> {
        let s = self.streams.as_ref()?;
        Some(std::net::SocketAddr::from(([127, 0, 0, 1], s.tcp_port)))
    }

    /// Its SIP address over TLS ([`Options::streams`]).
    pub fn tls_addr(&self) -> Option<std::net::SocketAddr> {
        let s = self.streams.as_ref()?;
        Some(std::net::SocketAddr::from(([127, 0, 0, 1], s.tls_port)))
    }

    /// `ws://127.0.0.1:<port>/` for clients.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.ws_port)
    }

    /// The last lines Kamailio logged, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(self.dir.join("kamailio.log")).unwrap_or_default();
        crate::last_lines(&text, 40)
    }

    /// Stops every Kamailio process where it is (SIGSTOP): its ports stay
    /// open and nothing answers, as a PBX that hangs or a host that is gone
    /// behind a firewall (no ICMP unreachable).
    pub fn pause(&self) {
        self.signal_group("-STOP");
    }

    /// Lets a [`Kamailio::pause`]d Kamailio go on.
    pub fn resume(&self) {
        self.signal_group("-CONT");
    }

    fn signal_group(&self, signal: &str) {
        // `kill -SIG -- -PGID`: the whole group, workers included.
        let _ = Command::new("kill")
            .args([signal, "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.signal_group("-TERM");
        self.signal_group("-CONT"); // a paused one handles its TERM now
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        self.signal_group("-KILL");
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
