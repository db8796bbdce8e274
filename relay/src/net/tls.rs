//! `wss://`: TLS for the browser side, with a certificate and key from PEM
//! files (rustls on ring). Each handshake runs in its connection's own task
//! with a deadline (`serve`), so that a slow or silent client never holds
//! up the others.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

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
