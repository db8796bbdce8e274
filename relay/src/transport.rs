//! The transports the relay speaks SIP over toward a PBX (RFC 3261 §18):
//! UDP, TCP, and TLS over TCP. Neutral ground: the configuration names them,
//! the proxy writes them into its Via, Record-Route and Contact, and the
//! shell opens the sockets and connections.

use std::fmt;

/// A SIP transport toward a PBX.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// Datagrams; the relay retransmits (RFC 3261 Timers A and E).
    #[default]
    Udp,
    /// One TCP connection, messages framed by Content-Length.
    Tcp,
    /// TCP with TLS; the PBX's certificate is verified.
    Tls,
}

impl Transport {
    /// How a Via header names it (`SIP/2.0/TCP`).
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The URI parameter that makes a peer use it, with its `;` (none for
    /// UDP, SIP's default).
    pub fn uri_param(self) -> &'static str {
        match self {
            Transport::Udp => "",
            Transport::Tcp => ";transport=tcp",
            Transport::Tls => ";transport=tls",
        }
    }

    /// The scheme and parameter of the relay's own URIs (Record-Route,
    /// Contact) in a request over it: `sip:` with this transport's
    /// parameter, or for a SIPS request `sips:`, TLS implied (RFC 3261
    /// §8.1.1.8, §16.6 step 4).
    pub fn own_uri(self, sips: bool) -> (&'static str, &'static str) {
        if sips {
            ("sips", "")
        } else {
            ("sip", self.uri_param())
        }
    }

    /// Whether it delivers every message (no retransmissions: RFC 3261
    /// §17.1.1.2, Timer A and E only over unreliable transports).
    pub fn reliable(self) -> bool {
        self != Transport::Udp
    }

    /// From a `transport=` URI parameter, any case.
    pub fn from_param(value: &str) -> Option<Transport> {
        [Transport::Udp, Transport::Tcp, Transport::Tls]
            .into_iter()
            .find(|t| t.via_name().eq_ignore_ascii_case(value))
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.via_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_parameters() {
        assert_eq!(Transport::from_param("TcP"), Some(Transport::Tcp));
        assert_eq!(Transport::from_param("sctp"), None);
        assert_eq!(Transport::Tls.uri_param(), ";transport=tls");
        assert_eq!(Transport::Udp.uri_param(), "");
        assert!(Transport::Tcp.reliable() && !Transport::Udp.reliable());
    }
}
