//! The machine's floor for a gateway's media path: what the relay's
//! pattern costs with nothing of a gateway in it. `forward` holds two UDP
//! sockets per call in one epoll (the relay's layout: the browser's port
//! and the PBX's) and sends each datagram it reads out of the other, as it
//! is: no ICE, no SRTP, no session. `load`, on another core, sends one
//! 172-byte datagram (RTP with 160 bytes of G.711) each way per call every
//! 20 ms and reads what comes back. The forwarder's CPU per datagram is
//! the floor a gateway's figure is set against (`tools/load/capacity.sh`
//! prints both): the kernel's loopback send and receive, the wake-ups of
//! a reader on another core, epoll over many sockets.
//!
//!   taskset -c 0 sipline-floor forward 600 12 &
//!   taskset -c 1 sipline-floor load 600 10
//!
//! `forward-shared` and `load-shared`: the browser side on one port of the
//! forwarder for every call, read in batches (`recvmmsg`, through
//! quinn-udp), the floor of the relay's `browser_port` mode.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token};

/// The forwarder's first port; the load's are after its own.
const FORWARD_BASE: u16 = 61_000;
const LOAD_BASE: u16 = 63_000;
const MAX_CALLS: usize = 1_000;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: sipline-floor forward|load CALLS [SECONDS]";
    let (Some(role), Some(calls)) = (args.get(1), args.get(2)) else {
        bail!("{usage}");
    };
    let calls: usize = calls.parse().context(usage)?;
    if calls == 0 || calls > MAX_CALLS {
        bail!("CALLS: 1 to {MAX_CALLS}");
    }
    let seconds: u64 = args.get(3).map_or(Ok(10), |s| s.parse()).context(usage)?;
    let (forward, shared) = match role.as_str() {
        "forward" => (true, false),
        "load" => (false, false),
        "forward-shared" => (true, true),
        "load-shared" => (false, true),
        _ => bail!("{usage}"),
    };
    let (ours, theirs) = if forward {
        (FORWARD_BASE, LOAD_BASE)
    } else {
        (LOAD_BASE, FORWARD_BASE)
    };
    let at = |base: u16, i: usize| {
        SocketAddr::from((Ipv4Addr::LOCALHOST, base + u16::try_from(i).unwrap_or(0)))
    };
    let mut poll = Poll::new()?;
    let mut sockets = Vec::with_capacity(2 * calls);
    for i in 0..2 * calls {
        if forward && shared && i % 2 == 0 && i > 0 {
            // The browser side is socket 0's, for every call: a stand-in
            // keeps the numbering.
            sockets.push(UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))?);
            continue;
        }
        let mut socket = UdpSocket::bind(at(ours, i)).with_context(|| at(ours, i).to_string())?;
        poll.registry()
            .register(&mut socket, Token(i), Interest::READABLE)?;
        sockets.push(socket);
    }
    let state = quinn_udp::UdpSocketState::new((&sockets[0]).into())?;
    let mut bufs = vec![[0u8; 1500]; quinn_udp::BATCH_SIZE];
    let mut slices: Vec<io::IoSliceMut> = bufs.iter_mut().map(|b| io::IoSliceMut::new(b)).collect();
    let mut meta = vec![quinn_udp::RecvMeta::default(); quinn_udp::BATCH_SIZE];
    let mut events = Events::with_capacity(1024);
    let mut buf = [0u8; 1500];
    let datagram = [0x80u8; 172];
    let start = Instant::now();
    let cpu = cpu_time()?;
    let (mut moved, mut next_send) = (0u64, start);
    while start.elapsed() < Duration::from_secs(seconds) {
        let timeout = if forward {
            Duration::from_millis(100)
        } else {
            next_send.saturating_duration_since(Instant::now())
        };
        poll.poll(&mut events, Some(timeout))?;
        for event in &events {
            let i = event.token().0;
            if forward && shared && i == 0 {
                // Every call's browser side, in batches.
                // Until WouldBlock: the socket is empty.
                while let Ok(n) = state.recv((&sockets[0]).into(), &mut slices, &mut meta) {
                    for (m, buf) in meta.iter().zip(&slices).take(n) {
                        moved += 1;
                        let call = usize::from(m.addr.port() - theirs) / 2;
                        let j = 2 * call + 1;
                        let _ = sockets[j].send_to(&buf[..m.len], at(theirs, j));
                    }
                }
                continue;
            }
            loop {
                match sockets[i].recv_from(&mut buf) {
                    Ok((len, _)) => {
                        moved += 1;
                        if forward {
                            // Out of the call's other socket (the shared
                            // one, for the browser side), to the load's
                            // socket facing it.
                            let out = if shared && i % 2 == 1 { 0 } else { i ^ 1 };
                            let _ = sockets[out].send_to(&buf[..len], at(theirs, i ^ 1));
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(_) => {}
                }
            }
        }
        if !forward && Instant::now() >= next_send {
            next_send += Duration::from_millis(20);
            for (i, socket) in sockets.iter().enumerate() {
                let to = if shared && i % 2 == 0 { 0 } else { i };
                let _ = socket.send_to(&datagram, at(theirs, to));
            }
        }
    }
    let cpu = cpu_time()? - cpu;
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "{role} {calls} calls: {moved} datagrams in {elapsed:.1} s ({:.0}/s), CPU {:.2} s: {:.2} µs per datagram",
        moved as f64 / elapsed,
        cpu.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / moved.max(1) as f64,
    );
    Ok(())
}

/// This process's CPU time (user + system), from /proc.
fn cpu_time() -> anyhow::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field =
        |n: usize| -> anyhow::Result<u64> { Ok(f.get(n).context("/proc/self/stat")?.parse()?) };
    // utime and stime, in USER_HZ (100 on every mainstream architecture).
    Ok(Duration::from_millis((field(11)? + field(12)?) * 10))
}
