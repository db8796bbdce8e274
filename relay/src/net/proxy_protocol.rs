//! The PROXY protocol (HAProxy's spec, v1 and v2) from the load balancers
//! the operator trusts (`http.trusted_proxies`): behind one, every browser
//! arrives from the balancer's address, and the header the balancer puts
//! before the connection's first byte names the browser's. That address is
//! then the connection's for everything: the per-address limits, the
//! proxy's admission, the logs. Only a trusted balancer's header is read
//! (anyone else could claim any address), and a trusted balancer's
//! connection must bring one.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use ppp::HeaderResult;
use ppp::{v1, v2};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The longest header accepted: v1's is at most 107 bytes; v2's addresses
/// take 216 at most, and its optional TLVs are not needed here.
const MAX_HEADER: usize = 1024;

/// What the start of a stream holds.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Parsed {
    /// Not enough bytes yet.
    Incomplete,
    /// A header of `len` bytes naming the client (the balancer itself for
    /// a LOCAL v2 header, as its health checks send, or v1 UNKNOWN).
    Header { len: usize, client: SocketAddr },
    /// Not a PROXY header.
    Invalid,
}

/// Reads a PROXY header from the start of `bytes`, sent by `balancer`.
pub(super) fn parse(bytes: &[u8], balancer: SocketAddr) -> Parsed {
    let result = HeaderResult::parse(bytes);
    if ppp::PartialResult::is_incomplete(&result) {
        return if bytes.len() >= MAX_HEADER {
            Parsed::Invalid
        } else {
            Parsed::Incomplete
        };
    }
    match result {
        HeaderResult::V2(Ok(h)) => {
            let client = match (h.command, h.addresses) {
                (v2::Command::Proxy, v2::Addresses::IPv4(a)) => {
                    SocketAddr::from((a.source_address, a.source_port))
                }
                (v2::Command::Proxy, v2::Addresses::IPv6(a)) => {
                    SocketAddr::from((a.source_address, a.source_port))
                }
                _ => balancer,
            };
            Parsed::Header {
                len: h.len(),
                client,
            }
        }
        HeaderResult::V1(Ok(h)) => {
            let client = match h.addresses {
                v1::Addresses::Tcp4(a) => SocketAddr::from((a.source_address, a.source_port)),
                v1::Addresses::Tcp6(a) => SocketAddr::from((a.source_address, a.source_port)),
                v1::Addresses::Unknown => balancer,
            };
            Parsed::Header {
                len: h.header.len(),
                client,
            }
        }
        _ => Parsed::Invalid,
    }
}

/// Reads the PROXY header at the start of `stream`, from the trusted
/// `balancer`, within `within`, taking exactly its bytes off the stream:
/// the client's address.
pub(super) async fn read_client(
    stream: &mut TcpStream,
    balancer: SocketAddr,
    within: Duration,
) -> io::Result<SocketAddr> {
    let read = async {
        let mut buf = vec![0u8; MAX_HEADER];
        let mut seen = 0;
        loop {
            // Peeked, not read: what follows the header is the client's
            // (TLS or HTTP), and stays on the stream.
            let n = stream.peek(&mut buf).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "closed before its PROXY header",
                ));
            }
            match parse(&buf[..n], balancer) {
                Parsed::Header { len, client } => {
                    stream.read_exact(&mut buf[..len]).await?;
                    return Ok(client);
                }
                Parsed::Invalid => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a trusted balancer's connection without a PROXY header",
                    ));
                }
                // More is on its way: peek returns at once while the
                // same bytes wait, so give the rest a moment.
                Parsed::Incomplete if n == seen => {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                Parsed::Incomplete => seen = n,
            }
        }
    };
    tokio::time::timeout(within, read)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no PROXY header in time"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    const BALANCER: &str = "10.0.0.9:41000";

    fn lb() -> SocketAddr {
        BALANCER.parse().expect("address")
    }

    #[test]
    fn a_v1_header_names_the_client_and_only_its_bytes_are_taken() {
        let bytes = b"PROXY TCP4 198.51.100.7 10.0.0.2 51234 443\r\nGET /sip HTTP/1.1\r\n";
        let header_len = b"PROXY TCP4 198.51.100.7 10.0.0.2 51234 443\r\n".len();
        assert_eq!(
            parse(bytes, lb()),
            Parsed::Header {
                len: header_len,
                client: "198.51.100.7:51234".parse().expect("address"),
            }
        );
        assert_eq!(parse(b"PROXY TCP4 198.51", lb()), Parsed::Incomplete);
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n", lb()),
            Parsed::Header {
                len: 15,
                client: lb()
            }
        );
    }

    #[test]
    fn a_v2_header_names_the_client_and_a_local_one_the_balancer() {
        let header = v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Proxy,
            v2::Protocol::Stream,
            (
                "[2001:db8::7]:51234"
                    .parse::<SocketAddr>()
                    .expect("address"),
                "[2001:db8::2]:443".parse::<SocketAddr>().expect("address"),
            ),
        )
        .build()
        .expect("a header");
        let mut bytes = header.clone();
        bytes.extend_from_slice(b"\x16\x03\x01"); // a TLS ClientHello follows
        assert_eq!(
            parse(&bytes, lb()),
            Parsed::Header {
                len: header.len(),
                client: "[2001:db8::7]:51234".parse().expect("address"),
            }
        );
        assert_eq!(parse(&header[..20], lb()), Parsed::Incomplete);
        let local = v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Local,
            v2::Protocol::Unspecified,
            v2::Addresses::Unspecified,
        )
        .build()
        .expect("a header");
        assert_eq!(
            parse(&local, lb()),
            Parsed::Header {
                len: local.len(),
                client: lb()
            }
        );
    }

    #[test]
    fn anything_else_is_refused() {
        assert_eq!(parse(b"GET /sip HTTP/1.1\r\n\r\n", lb()), Parsed::Invalid);
        assert_eq!(parse(b"\x16\x03\x01\x02\x00\x01", lb()), Parsed::Invalid);
        assert_eq!(parse(&[b'P'; MAX_HEADER], lb()), Parsed::Invalid);
    }
}
