//! `[pbx]`: the PBXs the relay fronts (listed, weighed, or named by DNS),
//! their failover and probes, or the embedded PBX and its users.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{Config, ConfigError};
use crate::media::sdes::SrtpPolicy;
use crate::signalling::pbx::Password;
use crate::signalling::{PbxTarget, ProxyConfig};
use crate::transport::Transport;

/// `[pbx]`: either external PBXs (`addresses` or `servers`) or the
/// embedded one.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Pbx {
    /// PBX addresses (IP:port), preferred in this order: the first that is
    /// up takes the new requests; UDP from any other address is dropped.
    pub addresses: Vec<SocketAddr>,
    /// The PBXs with a priority and a weight each (instead of
    /// `addresses`): the lowest priority that is up takes the new
    /// requests, shared by weight (RFC 2782's rules).
    pub servers: Vec<PbxServer>,
    /// The PBX as a SIP URI whose host is looked up in DNS (RFC 3263:
    /// NAPTR, SRV, then A/AAAA), e.g. `sip:pbx.example.com`; instead of
    /// `addresses`. `sips:` means TLS, `;transport=tcp` (or `tls`, `udp`)
    /// that transport; without either, DNS says (NAPTR, else the first of
    /// `_sips._tcp`, `_sip._tcp` and `_sip._udp` with SRV records). Looked
    /// up again as the records' TTLs run out.
    pub uri: Option<String>,
    /// SIP toward the PBXs of `addresses` (and of `servers` that do not say
    /// otherwise): `"udp"`, `"tcp"` or `"tls"`. Over TCP and TLS the relay
    /// keeps one connection to each PBX, opened from its SIP port (so that
    /// the PBX's requests come back on it), kept alive with CRLF pings
    /// (RFC 5626 §4.4.1) and opened again when it breaks.
    pub transport: Transport,
    /// TLS: a PEM file of the CA certificates the PBX's certificate must
    /// chain to; the system's roots when unset.
    pub tls_ca: Option<PathBuf>,
    /// TLS: the name the PBX's certificate must carry; the host of `uri`,
    /// else the PBX's IP address, when unset.
    pub tls_name: Option<String>,
    /// TLS: a PEM certificate chain the relay shows the PBX (a PBX that
    /// authenticates its peers by certificate); with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// TLS: the PEM private key of `tls_cert` (never logged).
    pub tls_key: Option<PathBuf>,
    /// A request bigger than 1,300 bytes for a UDP PBX (a video call's
    /// INVITE) goes over TCP to the same address instead (RFC 3261
    /// §18.1.1): turn on when the PBXs take TCP on their UDP port. The
    /// relay then keeps a TCP connection to each of them too, and a PBX
    /// whose TCP connection cannot be made counts as unreachable.
    pub large_over_tcp: bool,
    /// TCP and TLS: a CRLF ping every this many seconds; once the PBX has
    /// answered one, a connection whose pong does not come within 10 s is
    /// reset and opened again.
    /// 0: no pings (TCP keep-alive only).
    pub keepalive_secs: u64,
    /// The DNS server for `uri` (IP:port); the system's resolv.conf when
    /// unset.
    pub dns_server: Option<SocketAddr>,
    /// A new request (outside a dialog) that its PBX leaves without any
    /// answer this long, milliseconds, goes on to the next PBX, and that
    /// PBX counts as down; so does one unreachable (ICMP) or answering
    /// `503` at once.
    pub failover_ms: u64,
    /// How often each PBX is probed with OPTIONS, milliseconds; a probe
    /// unanswered for `failover_ms` takes it down, an answer brings it back.
    /// 0: never. Unset: every 10 s when there are several PBXs (or a
    /// `uri`), never with one.
    pub probe_interval_ms: Option<u64>,
    /// SRTP toward the PBX, keyed by SDES (RFC 4568): `"off"` (plain RTP
    /// offered), `"optional"` (SRTP offered in an RTP/AVP section, plain
    /// when the PBX ignores it) or `"mandatory"` (RTP/SAVP; a PBX that
    /// answers or offers plain RTP gets 488). An SRTP offer from the PBX
    /// is answered with SRTP whatever this says. One setting for all the
    /// PBXs: a request that fails over carries the same offer on.
    pub srtp: SrtpPolicy,
    /// Run the embedded mini PBX instead: a registrar for `users` that
    /// connects its registered browsers to each other.
    pub embedded: bool,
    /// The embedded PBX's SIP domain and digest realm; the users' domain
    /// (`client.domain`) when absent.
    pub domain: Option<String>,
    /// The embedded PBX's users.
    pub users: Vec<User>,
}

impl Default for Pbx {
    fn default() -> Self {
        Self {
            addresses: Vec::new(),
            servers: Vec::new(),
            uri: None,
            transport: Transport::Udp,
            tls_ca: None,
            tls_name: None,
            tls_cert: None,
            tls_key: None,
            keepalive_secs: 30,
            large_over_tcp: false,
            dns_server: None,
            failover_ms: 2_000,
            probe_interval_ms: None,
            srtp: SrtpPolicy::Off,
            embedded: false,
            domain: None,
            users: Vec::new(),
        }
    }
}

/// `[[pbx.servers]]`: one PBX with its priority and weight.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PbxServer {
    /// Its SIP address (IP:port).
    pub address: SocketAddr,
    /// Lower is preferred; a higher one takes over when every PBX of the
    /// lower ones is down.
    #[serde(default = "default_priority")]
    pub priority: u16,
    /// Its share of new calls among the PBXs of its priority.
    #[serde(default = "default_weight")]
    pub weight: u16,
    /// Its transport; `pbx.transport` when unset.
    pub transport: Option<Transport>,
}

fn default_priority() -> u16 {
    10
}

fn default_weight() -> u16 {
    1
}

/// How often the PBXs are probed when `pbx.probe_interval_ms` is unset and
/// there are several of them.
const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(10);

/// `[[pbx.users]]`: one user of the embedded PBX.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// The user part of the address (`alice` in `sip:alice@domain`).
    pub name: String,
    /// The digest password (never logged).
    pub password: Password,
}

impl Config {
    pub(super) fn validate_pbxs(&self) -> Result<(), ConfigError> {
        let p = &self.pbx;
        let invalid = |key, problem: &str| {
            Err(ConfigError::Invalid {
                key,
                problem: problem.into(),
            })
        };
        let ways = [
            !p.addresses.is_empty(),
            !p.servers.is_empty(),
            p.uri.is_some(),
        ];
        if ways.iter().filter(|w| **w).count() > 1 {
            return invalid(
                "pbx.servers",
                "pbx.addresses, [[pbx.servers]] and pbx.uri exclude each other: name the PBXs in one",
            );
        }
        if let Some(uri) = &p.uri
            && self.pbx_name().is_none()
        {
            return Err(ConfigError::Invalid {
                key: "pbx.uri",
                problem: format!(
                    "{uri:?} is not a sip: or sips: URI with a host (and at most a transport \
                     parameter), e.g. sip:pbx.example.com or sips:pbx.example.com"
                ),
            });
        }
        if p.uri.is_some() && p.transport != Transport::Udp {
            return invalid(
                "pbx.transport",
                "a pbx.uri names its transport itself (sips:, ;transport=tcp) or leaves it to DNS",
            );
        }
        if p.tls_cert.is_some() != p.tls_key.is_some() {
            return invalid("pbx.tls_cert", "pbx.tls_cert and pbx.tls_key go together");
        }
        if p.keepalive_secs != 0 && p.keepalive_secs < 10 {
            return invalid(
                "pbx.keepalive_secs",
                "0 (no pings) or at least 10: a pong may take up to 10 s",
            );
        }
        let none = !ways.contains(&true);
        match (p.embedded, none) {
            (false, true) => {
                return invalid(
                    "pbx.addresses",
                    "at least one PBX address (IP:port) is required, or pbx.embedded = true",
                );
            }
            (true, false) => {
                return invalid(
                    "pbx.embedded",
                    "an embedded PBX and pbx.addresses (or [[pbx.servers]], pbx.uri) exclude each other",
                );
            }
            _ => {}
        }
        let targets = self.pbx_targets();
        for (i, t) in targets.iter().enumerate() {
            if targets[..i].iter().any(|o| o.addr == t.addr) {
                return Err(ConfigError::Invalid {
                    key: "pbx.addresses",
                    problem: format!("{} is listed twice", t.addr),
                });
            }
        }
        if !(100..=self.sip.request_timeout_ms.max(100)).contains(&p.failover_ms) {
            return Err(ConfigError::Invalid {
                key: "pbx.failover_ms",
                problem: format!(
                    "{} is outside 100..=sip.request_timeout_ms ({})",
                    p.failover_ms, self.sip.request_timeout_ms
                ),
            });
        }
        if p.probe_interval_ms.is_some_and(|ms| ms != 0 && ms < 500) {
            return invalid(
                "pbx.probe_interval_ms",
                "0 (never) or at least 500: probes must not load the PBX",
            );
        }
        Ok(())
    }

    /// The PBXs as the proxy weighs them: `servers` as given, or
    /// `addresses` preferred in their order.
    pub fn pbx_targets(&self) -> Vec<PbxTarget> {
        if self.pbx.servers.is_empty() {
            let mut targets = ProxyConfig::new(self.pbx.addresses.clone(), self.sip.listen).pbx;
            for t in &mut targets {
                t.transport = self.pbx.transport;
            }
            return targets;
        }
        self.pbx
            .servers
            .iter()
            .map(|s| PbxTarget {
                addr: s.address,
                transport: s.transport.unwrap_or(self.pbx.transport),
                priority: s.priority,
                weight: s.weight,
            })
            .collect()
    }

    /// The host, port and transport (if it says one) of `pbx.uri`, when
    /// the PBX is named so.
    pub fn pbx_name(&self) -> Option<(String, Option<u16>, Option<Transport>)> {
        let text = self.pbx.uri.as_deref()?;
        let uri = sipline_core::sip::Uri::parse(text)?;
        let sips = uri.scheme.eq_ignore_ascii_case("sips");
        let param = uri.params.value("transport");
        let transport = match param.map(Transport::from_param) {
            None => sips.then_some(Transport::Tls),
            // `sips:` is TLS whatever the parameter says (RFC 3261 §19.1).
            Some(Some(_)) if sips => Some(Transport::Tls),
            Some(Some(t)) => Some(t),
            Some(None) => return None,
        };
        let only_transport = uri
            .params
            .iter()
            .all(|(n, _)| n.eq_ignore_ascii_case("transport"));
        let plain = uri.user.is_none() && uri.rest.is_empty() && only_transport;
        let scheme = sips || uri.scheme.eq_ignore_ascii_case("sip");
        (scheme && !uri.host.is_empty() && plain)
            .then(|| (uri.host.to_owned(), uri.port, transport))
    }

    /// Whether any PBX may be reached over TLS (its settings are loaded at
    /// start).
    pub fn pbx_tls(&self) -> bool {
        let named = matches!(self.pbx_name(), Some((_, _, None | Some(Transport::Tls))));
        named
            || self
                .pbx_targets()
                .iter()
                .any(|t| t.transport == Transport::Tls)
    }

    /// The proxy's PBXs, their failover time and their probes.
    pub(super) fn pbx_settings(&self, p: &mut ProxyConfig) {
        p.pbx = self.pbx_targets();
        p.failover_after = Duration::from_millis(self.pbx.failover_ms);
        p.large_over_tcp = self.pbx.large_over_tcp;
        p.probe_interval = match self.pbx.probe_interval_ms {
            Some(0) => None,
            Some(ms) => Some(Duration::from_millis(ms)),
            None => (p.pbx.len() > 1 || self.pbx.uri.is_some()).then_some(DEFAULT_PROBE_INTERVAL),
        };
    }

    /// Every PBX address, in configuration order.
    pub fn pbx_addresses(&self) -> Vec<SocketAddr> {
        self.pbx_targets().iter().map(|t| t.addr).collect()
    }
}
