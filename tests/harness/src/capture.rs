//! tcpdump from Debian capturing UDP (or TCP) on the loopback interface
//! into a pcap file, read back with `pcap-file`: what a test shows crossed
//! the wire (that a leg is SRTP, not plain RTP; that SIP over TLS is not in
//! the clear), not what a part says it sent.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use pcap_file::pcap::PcapReader;

/// Why a capture failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The binary is not installed.
    #[error("tcpdump not found: `bash tests/run.sh` installs Debian's tcpdump")]
    NotInstalled,
    /// Spawning it or reading its file failed.
    #[error("capturing with tcpdump: {0}")]
    Io(#[from] io::Error),
    /// It exited, or never said it was listening.
    #[error("tcpdump did not start capturing within {waited:?}: {log}")]
    NotReady {
        /// How long we waited.
        waited: Duration,
        /// What it printed.
        log: String,
    },
    /// Its file could not be read.
    #[error("reading the capture: {0}")]
    Pcap(#[from] pcap_file::PcapError),
}

/// One UDP datagram (or TCP segment with a payload) seen on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Datagram {
    /// Who sent it.
    pub from: SocketAddr,
    /// To whom.
    pub to: SocketAddr,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// A running capture; stopped when dropped or read.
pub struct Capture {
    child: Child,
    /// The IP protocol kept: 17 (UDP) or 6 (TCP).
    protocol: u8,
    file: PathBuf,
    log: PathBuf,
}

const BINARY: &str = "/usr/bin/tcpdump";

impl Capture {
    /// Captures the UDP datagrams on `lo` that `filter` (a pcap filter,
    /// e.g. `portrange 40000-40099`) keeps, once tcpdump is listening.
    pub fn start(filter: &str) -> Result<Capture, Error> {
        Self::of(17, filter)
    }

    /// Captures the payloads of the TCP segments on `lo` that `filter`
    /// keeps (empty segments, the handshake and ACKs, are left out).
    pub fn tcp(filter: &str) -> Result<Capture, Error> {
        Self::of(6, filter)
    }

    fn of(protocol: u8, filter: &str) -> Result<Capture, Error> {
        let bin = [BINARY, "/usr/sbin/tcpdump"]
            .into_iter()
            .find(|p| std::path::Path::new(p).is_file())
            .ok_or(Error::NotInstalled)?;
        let stem = std::env::temp_dir().join(format!(
            "sipline-capture-{}-{}",
            std::process::id(),
            crate::free_port()?
        ));
        let file = stem.with_extension("pcap");
        let log = stem.with_extension("log");
        let out = std::fs::File::create(&log)?;
        // --immediate-mode: each packet handed over as it comes (not when
        // the kernel's buffer block fills or times out, which a short
        // capture would lose); -U: each packet written at once; -Z root: no
        // privilege drop, so it can write the file the test reads.
        let child = Command::new(bin)
            .args([
                "-i",
                "lo",
                "-n",
                "--immediate-mode",
                "-U",
                "-Z",
                "root",
                "-w",
            ])
            .arg(&file)
            .arg(format!(
                "{} and ({filter})",
                if protocol == 6 { "tcp" } else { "udp" }
            ))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()?;
        let mut c = Capture {
            child,
            protocol,
            file,
            log,
        };
        let waited = Duration::from_secs(5);
        let deadline = Instant::now() + waited;
        loop {
            let said = std::fs::read_to_string(&c.log).unwrap_or_default();
            if said.contains("listening on") {
                return Ok(c);
            }
            let exited = matches!(c.child.try_wait(), Ok(Some(_)));
            if exited || Instant::now() > deadline {
                return Err(Error::NotReady { waited, log: said });
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops capturing and returns what was seen, in order.
    pub fn stop(mut self) -> Result<Vec<Datagram>, Error> {
        // SIGINT: tcpdump flushes and closes its file.
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        let mut reader = PcapReader::new(std::fs::File::open(&self.file)?)?;
        let mut seen = Vec::new();
        while let Some(packet) = reader.next_packet() {
            if let Some(d) = payload(&packet?.data, self.protocol) {
                seen.push(d);
            }
        }
        Ok(seen)
    }
}

/// The UDP datagram (`protocol` 17) or TCP segment with a payload (6) in
/// an Ethernet frame (`lo`'s link type), if it is one.
fn payload(frame: &[u8], protocol: u8) -> Option<Datagram> {
    let ethertype = u16::from_be_bytes(frame.get(12..14)?.try_into().ok()?);
    let ip = frame.get(14..)?;
    let (src, dst, rest): (IpAddr, IpAddr, &[u8]) = match ethertype {
        0x0800 if ip.get(9) == Some(&protocol) => {
            let header = usize::from(ip.first()? & 0x0f) * 4;
            let a: [u8; 4] = ip.get(12..16)?.try_into().ok()?;
            let b: [u8; 4] = ip.get(16..20)?.try_into().ok()?;
            (
                Ipv4Addr::from(a).into(),
                Ipv4Addr::from(b).into(),
                ip.get(header..)?,
            )
        }
        0x86dd if ip.get(6) == Some(&protocol) => {
            let a: [u8; 16] = ip.get(8..24)?.try_into().ok()?;
            let b: [u8; 16] = ip.get(24..40)?.try_into().ok()?;
            (
                Ipv6Addr::from(a).into(),
                Ipv6Addr::from(b).into(),
                ip.get(40..)?,
            )
        }
        _ => return None,
    };
    let port = |at: usize| Some(u16::from_be_bytes(rest.get(at..at + 2)?.try_into().ok()?));
    let payload = if protocol == 6 {
        // The data offset, in 32-bit words; the rest of the frame is data
        // (lo pads nothing).
        let offset = usize::from(rest.get(12)? >> 4) * 4;
        let data = rest.get(offset..)?;
        if data.is_empty() {
            return None;
        }
        data.to_vec()
    } else {
        let len = usize::from(port(4)?);
        rest.get(8..len.max(8))?.to_vec()
    };
    Some(Datagram {
        from: SocketAddr::new(src, port(0)?),
        to: SocketAddr::new(dst, port(2)?),
        payload,
    })
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.file);
        let _ = std::fs::remove_file(&self.log);
    }
}
