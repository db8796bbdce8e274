//! A PBX given by name (`pbx.uri`), found as RFC 3263 §4 says: the host's
//! NAPTR records that offer SIP over UDP, TCP or TLS (`SIP+D2U`,
//! `SIP+D2T`, `SIPS+D2T`; only the URI's transport when it names one) name
//! the SRV records to read, best first; without NAPTR, the SRV records of
//! the URI's transport, or else the first of `_sips._tcp`, `_sip._tcp` and
//! `_sip._udp` that has any; without those, the host's own addresses on
//! port 5060 (5061 for TLS), or the URI's port, which skips NAPTR and SRV.
//! Each SRV target brings its priority, weight and transport to the proxy's
//! choice ([`crate::signalling::PbxTarget`]).
//!
//! The names are looked up again when their records' TTL runs out (at least
//! [`MIN_REFRESH`] apart, at most [`MAX_REFRESH`]); a failed lookup keeps
//! the PBXs known so far and is tried again after [`RETRY`].

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::{Resolver, TokioResolver};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::Input;
use crate::signalling::PbxTarget;
use crate::transport::Transport;

/// Lookups at most this often, whatever the TTLs say.
pub const MIN_REFRESH: Duration = Duration::from_secs(5);
/// And at least this often.
pub const MAX_REFRESH: Duration = Duration::from_secs(3600);
/// After a failed lookup.
pub const RETRY: Duration = Duration::from_secs(10);

/// SIP's port when neither the URI nor SRV give one (RFC 3261 §19.1.2).
fn default_port(transport: Transport) -> u16 {
    match transport {
        Transport::Tls => 5061,
        _ => 5060,
    }
}

/// The SRV service name of a transport (RFC 3263 §4.1).
fn srv_prefix(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "_sip._udp",
        Transport::Tcp => "_sip._tcp",
        Transport::Tls => "_sips._tcp",
    }
}

/// The transport a NAPTR service field offers (RFC 3263 §4.1).
fn naptr_transport(service: &[u8]) -> Option<Transport> {
    [
        (&b"SIP+D2U"[..], Transport::Udp),
        (b"SIP+D2T", Transport::Tcp),
        (b"SIPS+D2T", Transport::Tls),
    ]
    .into_iter()
    .find(|(s, _)| s.eq_ignore_ascii_case(service))
    .map(|(_, t)| t)
}

/// Why a PBX name could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The resolver could not be set up (no resolv.conf).
    #[error("setting up the DNS resolver: {0}")]
    Setup(String),
    /// A lookup failed (no such name, no answer, no server).
    #[error("looking up {name}: {reason}")]
    Lookup {
        /// The name looked up.
        name: String,
        /// What the resolver said.
        reason: String,
    },
}

/// The host and port of `pbx.uri` (checked by the configuration).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PbxName {
    /// A domain name, or an IP address (then no lookup is made).
    pub host: String,
    /// The URI's port, when it has one.
    pub port: Option<u16>,
    /// The URI's transport (`sips:`, `;transport=`); none: DNS says.
    pub transport: Option<Transport>,
}

/// A resolver using `server`, or the system's (`/etc/resolv.conf`).
pub fn resolver(server: Option<SocketAddr>) -> Result<TokioResolver, DnsError> {
    let builder = match server {
        Some(addr) => {
            let mut connection = ConnectionConfig::udp();
            connection.port = addr.port();
            let ns = NameServerConfig::new(addr.ip(), true, vec![connection]);
            Resolver::builder_with_config(
                ResolverConfig::from_name_servers(vec![ns]),
                TokioRuntimeProvider::default(),
            )
        }
        None => TokioResolver::builder_tokio().map_err(|e| DnsError::Setup(e.to_string()))?,
    };
    builder.build().map_err(|e| DnsError::Setup(e.to_string()))
}

/// A name as a fully qualified one, so that no search domain is tried.
fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_owned()
    } else {
        format!("{name}.")
    }
}

fn lookup_error(name: &str, e: impl std::fmt::Display) -> DnsError {
    DnsError::Lookup {
        name: name.to_owned(),
        reason: e.to_string(),
    }
}

/// What RFC 3263 reads of a NAPTR record.
#[derive(Debug)]
struct Naptr {
    order: u16,
    preference: u16,
    flags: Vec<u8>,
    services: Vec<u8>,
    replacement: String,
}

/// The SRV names a host's NAPTR records offer for SIP (over `only`, when
/// given), with their transports, best first (by order, then preference);
/// none when it has no NAPTR records.
fn naptr_srv_names(records: &[Naptr], only: Option<Transport>) -> Vec<(String, Transport)> {
    let mut usable: Vec<(&Naptr, Transport)> = records
        .iter()
        .filter(|n| n.flags.eq_ignore_ascii_case(b"s"))
        .filter_map(|n| Some((n, naptr_transport(&n.services)?)))
        .filter(|(_, t)| only.is_none_or(|o| o == *t))
        .collect();
    usable.sort_by_key(|(n, _)| (n.order, n.preference));
    usable
        .into_iter()
        .map(|(n, t)| (n.replacement.clone(), t))
        .collect()
}

/// Resolves `name` once: the PBXs, and how long the answer holds.
pub async fn resolve(
    r: &TokioResolver,
    name: &PbxName,
) -> Result<(Vec<PbxTarget>, Duration), DnsError> {
    // RFC 3263 §4.1: an address or a port in the URI means UDP unless
    // the URI says otherwise.
    let given = name.transport.unwrap_or(Transport::Udp);
    if let Ok(ip) = name.host.trim_matches(['[', ']']).parse::<IpAddr>() {
        let target = PbxTarget {
            addr: SocketAddr::new(ip, name.port.unwrap_or(default_port(given))),
            transport: given,
            priority: 1,
            weight: 1,
        };
        return Ok((vec![target], MAX_REFRESH));
    }
    let host = fqdn(&name.host);
    if let Some(port) = name.port {
        return addresses(r, &host, (port, given), 1, 1).await;
    }
    let mut ttl = MAX_REFRESH;
    // NAPTR first; a server with none (or none for UDP) leads to SRV.
    let naptr = r.lookup(host.as_str(), RecordType::NAPTR).await;
    let mut srv_names = Vec::new();
    if let Ok(lookup) = naptr {
        ttl = ttl.min(left(lookup.valid_until()));
        let records: Vec<_> = lookup
            .answers()
            .iter()
            .filter_map(|rec| match &rec.data {
                RData::NAPTR(n) => Some(Naptr {
                    order: n.order,
                    preference: n.preference,
                    flags: n.flags.to_vec(),
                    services: n.services.to_vec(),
                    replacement: n.replacement.to_ascii(),
                }),
                _ => None,
            })
            .collect();
        srv_names = naptr_srv_names(&records, name.transport);
    }
    if srv_names.is_empty() {
        let transports = match name.transport {
            Some(t) => vec![t],
            // The most secure first.
            None => vec![Transport::Tls, Transport::Tcp, Transport::Udp],
        };
        srv_names = transports
            .into_iter()
            .map(|t| (format!("{}.{host}", srv_prefix(t)), t))
            .collect();
    }
    let mut targets = Vec::new();
    for (srv_name, transport) in &srv_names {
        let Ok(lookup) = r.lookup(srv_name.as_str(), RecordType::SRV).await else {
            continue;
        };
        ttl = ttl.min(left(lookup.valid_until()));
        for rec in lookup.answers() {
            let RData::SRV(srv) = &rec.data else {
                continue;
            };
            let target = srv.target.to_ascii();
            let at = (srv.port, *transport);
            match addresses(r, &target, at, srv.priority, srv.weight).await {
                Ok((found, held)) => {
                    ttl = ttl.min(held);
                    targets.extend(found);
                }
                Err(e) => warn!(error = %e, "a PBX's SRV target has no address"),
            }
        }
        if !targets.is_empty() {
            break;
        }
    }
    if targets.is_empty() {
        // No SRV: the host itself (RFC 3263 §4.2).
        return addresses(r, &host, (default_port(given), given), 1, 1).await;
    }
    Ok((targets, ttl))
}

/// How long from now until `until`.
fn left(until: std::time::Instant) -> Duration {
    until.saturating_duration_since(std::time::Instant::now())
}

/// `host`'s addresses (A and AAAA) on `port` over `transport`, each with
/// the priority and weight given.
async fn addresses(
    r: &TokioResolver,
    host: &str,
    (port, transport): (u16, Transport),
    priority: u16,
    weight: u16,
) -> Result<(Vec<PbxTarget>, Duration), DnsError> {
    let lookup = r.lookup_ip(host).await.map_err(|e| lookup_error(host, e))?;
    let targets: Vec<PbxTarget> = lookup
        .iter()
        .map(|ip| PbxTarget {
            addr: SocketAddr::new(ip, port),
            transport,
            priority,
            weight,
        })
        .collect();
    if targets.is_empty() {
        return Err(lookup_error(host, "no address"));
    }
    Ok((targets, left(lookup.valid_until())))
}

/// Keeps the proxy's PBXs in step with `name`'s records: resolves at once,
/// then whenever the answer's TTL runs out, and hands each new set to the
/// proxy task. Ends with the proxy task.
pub async fn watch(r: TokioResolver, name: PbxName, inputs: mpsc::Sender<Input>) {
    let mut known: Vec<PbxTarget> = Vec::new();
    loop {
        let wait = match resolve(&r, &name).await {
            Ok((mut targets, ttl)) => {
                targets.sort_by_key(|t| (t.priority, t.addr));
                targets.dedup_by_key(|t| t.addr);
                if targets != known {
                    info!(pbx = %name.host, targets = ?targets, "PBXs from DNS");
                    known.clone_from(&targets);
                    if inputs.send(Input::Pbxs { targets }).await.is_err() {
                        return;
                    }
                }
                ttl.clamp(MIN_REFRESH, MAX_REFRESH)
            }
            Err(e) => {
                warn!(error = %e, known = known.len(), "PBX lookup failed; keeping the PBXs known");
                RETRY
            }
        };
        tokio::time::sleep(wait).await;
        if inputs.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naptr_records_for_sip_over_udp_lead_to_their_srv_names_in_order() {
        let rec = |order, preference, flags: &str, services: &str, name: &str| Naptr {
            order,
            preference,
            flags: flags.as_bytes().to_vec(),
            services: services.as_bytes().to_vec(),
            replacement: name.to_owned(),
        };
        let records = vec![
            rec(20, 10, "S", "SIP+D2U", "_sip._udp.b.test."),
            rec(10, 10, "S", "SIPS+D2T", "_sips._tcp.a.test."),
            rec(10, 20, "s", "sip+d2u", "_sip._udp.a.test."),
            rec(10, 5, "A", "SIP+D2U", "x.test."),
        ];
        let names = |only| -> Vec<String> {
            naptr_srv_names(&records, only)
                .into_iter()
                .map(|(n, _)| n)
                .collect()
        };
        assert_eq!(
            names(None),
            vec![
                "_sips._tcp.a.test.",
                "_sip._udp.a.test.",
                "_sip._udp.b.test."
            ],
            "non-SRV records left out; by order, then preference"
        );
        assert_eq!(
            naptr_srv_names(&records, Some(Transport::Tls)),
            vec![("_sips._tcp.a.test.".to_owned(), Transport::Tls)],
            "only the URI's transport"
        );
        assert_eq!(
            names(Some(Transport::Udp)),
            vec!["_sip._udp.a.test.", "_sip._udp.b.test."]
        );
        assert!(naptr_srv_names(&[], None).is_empty());
    }

    #[test]
    fn names_are_looked_up_fully_qualified() {
        assert_eq!(fqdn("pbx.test"), "pbx.test.");
        assert_eq!(fqdn("pbx.test."), "pbx.test.");
    }

    #[tokio::test]
    async fn an_address_in_the_uri_needs_no_lookup() {
        let r = resolver(Some("127.0.0.1:9".parse().expect("addr"))).expect("resolver");
        let name = PbxName {
            host: "[::1]".into(),
            port: None,
            transport: None,
        };
        let (targets, _) = resolve(&r, &name).await.expect("no lookup");
        assert_eq!(
            targets[0].addr,
            "[::1]:5060".parse::<SocketAddr>().expect("addr")
        );
        let tls = PbxName {
            transport: Some(Transport::Tls),
            ..name
        };
        let (targets, _) = resolve(&r, &tls).await.expect("no lookup");
        assert_eq!(targets[0].addr.port(), 5061, "TLS's own port");
        assert_eq!(targets[0].transport, Transport::Tls);
    }
}
