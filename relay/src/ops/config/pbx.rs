//! `[pbx]`: the PBXs the relay fronts (listed, weighed, or named by DNS),
//! their failover and probes, or the embedded PBX and its users.

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use super::{Config, ConfigError};
use crate::media::sdes::SrtpPolicy;
use crate::signalling::pbx::Password;
use crate::signalling::{PbxTarget, ProxyConfig};

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
    /// NAPTR, SRV `_sip._udp`, then A/AAAA), e.g. `sip:pbx.example.com`;
    /// instead of `addresses`. Looked up again as the records' TTLs run out.
    pub uri: Option<String>,
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
                problem: format!("{uri:?} is not a sip: URI with a host, e.g. sip:pbx.example.com"),
            });
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
    fn pbx_targets(&self) -> Vec<PbxTarget> {
        if self.pbx.servers.is_empty() {
            return ProxyConfig::new(self.pbx.addresses.clone(), self.sip.listen).pbx;
        }
        self.pbx
            .servers
            .iter()
            .map(|s| PbxTarget {
                addr: s.address,
                priority: s.priority,
                weight: s.weight,
            })
            .collect()
    }

    /// The host and port of `pbx.uri`, when the PBX is named so.
    pub fn pbx_name(&self) -> Option<(String, Option<u16>)> {
        let text = self.pbx.uri.as_deref()?;
        let uri = sipline_core::sip::Uri::parse(text)?;
        let plain = uri.user.is_none() && uri.rest.is_empty();
        (uri.scheme.eq_ignore_ascii_case("sip") && !uri.host.is_empty() && plain)
            .then(|| (uri.host.to_owned(), uri.port))
    }

    /// The proxy's PBXs, their failover time and their probes.
    pub(super) fn pbx_settings(&self, p: &mut ProxyConfig) {
        p.pbx = self.pbx_targets();
        p.failover_after = Duration::from_millis(self.pbx.failover_ms);
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
