//! baresip from Debian as the far end of the tests: a SIP phone registered
//! to the test Kamailio that answers every call, plays a tone file and
//! records what it receives (`sndfile`), with its SIP traffic in its log.

use std::fs;
use std::io;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// Why baresip could not be started.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The binary is not installed.
    #[error("baresip not found: `bash tests/run.sh` installs Debian's baresip-core")]
    NotInstalled,
    /// Spawning or preparing its directory failed.
    #[error("starting baresip: {0}")]
    Io(#[from] io::Error),
    /// It exited, or never registered (or, not registering, never got
    /// ready).
    #[error("baresip was not ready within {waited:?}; its log:\n{log}")]
    NotRegistered {
        /// How long we waited.
        waited: Duration,
        /// The end of its log.
        log: String,
    },
}

/// How to run baresip.
#[derive(Clone, Debug)]
pub struct Options {
    /// The user it registers as (`bob`).
    pub user: String,
    /// Its password.
    pub password: String,
    /// The SIP domain of the user.
    pub domain: String,
    /// The registrar (and outbound proxy) to use.
    pub registrar: SocketAddr,
    /// The 8 kHz mono WAV it plays into every call.
    pub tone: PathBuf,
    /// Whether it registers; without, it only makes calls (through the
    /// registrar as its outbound proxy). baresip 1.0 digests with MD5 only.
    pub register: bool,
    /// Its one codec family: G.711 (PCMU, PCMA), or G.722 only (wideband,
    /// as a desk phone's HD voice).
    pub codec: Codec,
    /// Its media must be SDES-SRTP, AES_CM_128_HMAC_SHA1_80 (the `srtp`
    /// module, `mediaenc=srtp-mand`): a plain offer gets `488`.
    pub srtp: bool,
}

/// The codecs a baresip offers and accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Codec {
    /// PCMU and PCMA, 8 kHz.
    #[default]
    G711,
    /// G.722 alone, 16 kHz audio.
    G722,
}

/// A running baresip; stopped when dropped.
pub struct Baresip {
    child: Child,
    /// Its console (the `stdio` and `menu` modules read commands here).
    console: std::process::ChildStdin,
    dir: PathBuf,
    /// Its SIP port on 127.0.0.1.
    pub sip_port: u16,
    /// The first and last port its media may use.
    pub rtp_ports: (u16, u16),
}

impl Baresip {
    /// Starts baresip and waits until the registrar accepted it.
    ///
    /// baresip binds its SIP port for UDP and TCP and the next one for
    /// TLS; ports are picked free but another process can take one before
    /// baresip binds it, so a start that lost that race is retried on new
    /// ports (a few times) instead of failing the test.
    pub fn start(opts: &Options) -> Result<Baresip, Error> {
        let bin = ["/usr/bin/baresip", "/usr/local/bin/baresip"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())
            .ok_or(Error::NotInstalled)?;
        let mut tries = 0;
        loop {
            match Self::start_once(&bin, opts) {
                Err(Error::NotRegistered { log, .. })
                    if log.contains("Address already in use") && tries < 3 =>
                {
                    tries += 1;
                }
                other => return other,
            }
        }
    }

    fn start_once(bin: &Path, opts: &Options) -> Result<Baresip, Error> {
        // The SIP port, and the next one free for its TLS listener.
        let sip_port = loop {
            let port = crate::free_port()?;
            if port < u16::MAX && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
                break port;
            }
        };
        let rtp = crate::free_port()?;
        let dir =
            std::env::temp_dir().join(format!("sipline-baresip-{}-{sip_port}", std::process::id()));
        let recordings = dir.join("recordings");
        fs::create_dir_all(&recordings)?;
        // Only what a measuring far end needs: its codec, the tone file as
        // the microphone, no sound card (aubridge,nil), and sndfile to
        // record.
        let (module, srate, codecs) = match opts.codec {
            Codec::G711 => ("g711", 8000, "PCMU,PCMA"),
            Codec::G722 => ("g722", 16000, "G722"),
        };
        // On the registrar's side of IPv4 and IPv6.
        let host = if opts.registrar.is_ipv6() {
            "::1"
        } else {
            "127.0.0.1"
        };
        let listen = std::net::SocketAddr::new(host.parse().map_err(io::Error::other)?, sip_port);
        let config = format!(
            "poll_method epoll\nsip_listen {listen}\nnet_interface {host}\n\
audio_source aufile,{tone}\naudio_player aubridge,nil\naudio_alert aubridge,nil\n\
audio_srate {srate}\naudio_channels 1\nrtp_ports {rtp}-{rtp_max}\n\
module_path /usr/lib/baresip/modules\nmodule stdio.so\nmodule menu.so\nmodule {module}.so\nmodule aufile.so\n\
module aubridge.so\nmodule sndfile.so\n{srtp}module account.so\nsnd_path {rec}\n",
            srtp = if opts.srtp { "module srtp.so\n" } else { "" },
            tone = opts.tone.display(),
            rtp_max = rtp.saturating_add(99),
            rec = recordings.display(),
        );
        fs::write(dir.join("config"), config)?;
        fs::write(
            dir.join("accounts"),
            format!(
                "<sip:{}@{}>;auth_pass={};outbound=\"sip:{}\";regint={};answermode=auto;audio_codecs={codecs}{}\n",
                opts.user,
                opts.domain,
                opts.password,
                opts.registrar,
                if opts.register { 600 } else { 0 },
                if opts.srtp { ";mediaenc=srtp-mand" } else { "" },
            ),
        )?;
        let log = fs::File::create(dir.join("baresip.log"))?;
        let mut cmd = Command::new(bin);
        // -s: the SIP trace goes to the log, so tests can read what the
        // far end received.
        cmd.arg("-f").arg(&dir).arg("-s").current_dir(&dir);
        cmd.process_group(0)
            .stdin(Stdio::piped()) // stdio.so reads its keys from here
            .stdout(log.try_clone()?)
            .stderr(log);
        let mut child = cmd.spawn()?;
        let console = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("no stdin"))?;
        let mut b = Baresip {
            child,
            console,
            dir,
            sip_port,
            rtp_ports: (rtp, rtp.saturating_add(99)),
        };
        let waited = Duration::from_secs(10);
        let deadline = Instant::now() + waited;
        loop {
            let log = b.log();
            let up = if opts.register {
                log.contains("200 OK") && log.contains("binding]")
            } else {
                log.contains("baresip is ready")
            };
            if up {
                return Ok(b);
            }
            let exited = matches!(b.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                return Err(Error::NotRegistered {
                    waited,
                    log: b.log_tail(),
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Calls `uri` (the `menu` module's `/dial`).
    pub fn dial(&mut self, uri: &str) -> io::Result<()> {
        use std::io::Write;
        writeln!(self.console, "/dial {uri}")?;
        self.console.flush()
    }

    /// Blind-transfers its current call to `uri` (the `menu` module's
    /// `/transfer`: a REFER to the far end).
    pub fn transfer(&mut self, uri: &str) -> io::Result<()> {
        use std::io::Write;
        writeln!(self.console, "/transfer {uri}")?;
        self.console.flush()
    }

    /// Hangs up its current call (the `menu` module's `/hangup`), which
    /// also closes that call's recording.
    pub fn hangup(&mut self) -> io::Result<()> {
        use std::io::Write;
        writeln!(self.console, "/hangup")?;
        self.console.flush()
    }

    /// Everything it logged (the SIP trace included).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("baresip.log")).unwrap_or_default()
    }

    /// The last lines it logged, for failure messages.
    pub fn log_tail(&self) -> String {
        crate::last_lines(&self.log(), 60)
    }

    /// The recordings of what it received, one per call (`*-dec.wav`).
    pub fn received(&self) -> Vec<PathBuf> {
        recordings(&self.dir.join("recordings"), "-dec.wav")
    }
}

fn recordings(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(suffix))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

impl Drop for Baresip {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.wait();
        let _ = fs::remove_dir_all(&self.dir);
    }
}
