//! The PBX side: UDP sockets on one local address.
//!
//! One socket per PBX, bound with SO_REUSEPORT to the relay's SIP address
//! and `connect()`ed to that PBX: the kernel then delivers that PBX's
//! datagrams to it, and reports an ICMP unreachable as `ECONNREFUSED`, which
//! lets a browser learn within moments, not 32 s, that the PBX is down. One
//! more, unconnected, socket on the same address catches everything else, so
//! that strangers' datagrams are counted before they are dropped.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;

/// The relay's UDP sockets.
pub struct Sockets {
    /// The unconnected catch-all socket.
    pub any: Arc<UdpSocket>,
    /// One connected socket per PBX address.
    pub pbx: Vec<(SocketAddr, Arc<UdpSocket>)>,
}

fn socket(local: SocketAddr, peer: Option<SocketAddr>) -> io::Result<UdpSocket> {
    let s = Socket::new(Domain::for_address(local), Type::DGRAM, Some(Protocol::UDP))?;
    s.set_reuse_port(true)?;
    s.set_nonblocking(true)?;
    s.bind(&local.into())?;
    if let Some(peer) = peer {
        s.connect(&peer.into())?;
    }
    UdpSocket::from_std(s.into())
}

impl Sockets {
    /// Binds `listen` (port 0 picks one) for the given PBX addresses.
    pub fn bind(listen: SocketAddr, pbx: &[SocketAddr]) -> io::Result<Sockets> {
        let any = socket(listen, None)?;
        let local = any.local_addr()?;
        let pbx = pbx
            .iter()
            .map(|&peer| Ok((peer, Arc::new(socket(local, Some(peer))?))))
            .collect::<io::Result<_>>()?;
        Ok(Sockets {
            any: Arc::new(any),
            pbx,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.any.local_addr()
    }

    /// Adds a connected socket toward `peer` (a PBX DNS named).
    pub fn add(&mut self, peer: SocketAddr) -> io::Result<Arc<UdpSocket>> {
        let sock = Arc::new(socket(self.local_addr()?, Some(peer))?);
        self.pbx.push((peer, sock.clone()));
        Ok(sock)
    }

    /// The connected socket for `to`, if it is a PBX.
    pub fn for_pbx(&self, to: SocketAddr) -> Option<&Arc<UdpSocket>> {
        self.pbx.iter().find(|(a, _)| *a == to).map(|(_, s)| s)
    }
}
