//! Connections that never become WebSockets, held against the relay.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

/// A TCP connection to `to` from `from` (any loopback address works here).
pub fn connect_from(from: IpAddr, to: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.bind(&SocketAddr::new(from, 0).into())?;
    socket.connect(&to.into())?;
    Ok(socket.into())
}

/// Whether the relay closed `stream` (a read sees the end, or an error).
pub fn closed_by_peer(mut stream: &TcpStream) -> bool {
    let _ = stream.set_nonblocking(true);
    let mut buf = [0u8; 512];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a response to a trickled request, if any
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(_) => return true,
        }
    }
}

/// `count` connections from `sources` loopback addresses (127.0.0.2
/// onwards), a third of them trickling a request that never ends, each
/// opened again as soon as the relay closes it, until dropped.
pub struct Flood {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<usize>>,
}

impl Flood {
    /// Starts holding the connections against `to`.
    pub fn hold(to: SocketAddr, count: usize, sources: usize) -> Flood {
        // The test holds the flood: its own soft limit must allow it.
        rlimit::increase_nofile_limit(count as u64 + 1024).expect("raise the open files limit");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let from = |n: usize| IpAddr::from([127, 0, 0, 2 + (n % sources) as u8]);
            let open = |n: usize| {
                let mut s = connect_from(from(n), to).ok()?;
                if n.is_multiple_of(3) {
                    let _ = s.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ");
                }
                Some(s)
            };
            let mut held: Vec<Option<TcpStream>> = (0..count).map(open).collect();
            let mut reopened = 0;
            while !flag.load(Ordering::Relaxed) {
                for (n, slot) in held.iter_mut().enumerate() {
                    match slot {
                        Some(s) if !closed_by_peer(s) => {
                            if n.is_multiple_of(3) {
                                let _ = s.write_all(b"a");
                            }
                        }
                        _ => {
                            *slot = open(n);
                            reopened += 1;
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            reopened
        });
        Flood {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops, and says how many connections the relay closed meanwhile.
    pub fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or(0)
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
