//! TLS (rustls on ring): `wss://` for the browser side, with a certificate
//! and key from PEM files, and the client side toward PBXs reached over
//! TLS. Each browser handshake runs in its connection's own task with a
//! deadline (`serve`), so that a slow or silent client never holds up the
//! others.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, ServerConfig};
use tracing::warn;

/// Loads the certificate chain and key; the error names the file.
pub(super) fn server_config(cert: &Path, key: &Path) -> io::Result<Arc<ServerConfig>> {
    let named = |path: &Path, e: &dyn std::fmt::Display| {
        io::Error::other(format!("{}: {e}", path.display()))
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| named(cert, &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| named(cert, &e))?;
    if certs.is_empty() {
        return Err(named(cert, &"no certificate in the file"));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| named(key, &e))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(io::Error::other)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The browser's address, for plain and TLS connections alike.
#[derive(Clone, Copy, Debug)]
pub(super) struct Peer(pub SocketAddr);

/// The TLS client toward PBXs: their certificates verified against the CA
/// certificates in `ca` (a PEM file), else the system's roots; with
/// `identity` (certificate chain and key files), the relay shows its own
/// certificate to PBXs that ask for one. Errors name the file.
pub(super) fn client_config(
    ca: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> io::Result<Arc<ClientConfig>> {
    let named = |path: &Path, e: &dyn std::fmt::Display| {
        io::Error::other(format!("{}: {e}", path.display()))
    };
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| named(path, &e))? {
                roots
                    .add(cert.map_err(|e| named(path, &e))?)
                    .map_err(|e| named(path, &e))?;
            }
            if roots.is_empty() {
                return Err(named(path, &"no CA certificate in the file"));
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                warn!(error = %e, "reading the system's CA certificates");
            }
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                warn!(
                    "no CA certificate in the system's store: no TLS PBX can be verified (set pbx.tls_ca)"
                );
            }
        }
    }
    let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| named(cert, &e))?
                .collect::<Result<_, _>>()
                .map_err(|e| named(cert, &e))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| named(key, &e))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| named(cert, &e))?
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
