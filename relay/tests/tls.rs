//! `wss://`: the relay terminates TLS with a certificate from PEM files.

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use sipline_relay::signalling::pbx::ECHO_EXTENSION;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// A self-signed certificate for 127.0.0.1 and localhost, written as PEM.
fn certificate(
    dir: &std::path::Path,
) -> (
    std::path::PathBuf,
    std::path::PathBuf,
    CertificateDer<'static>,
) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("certificate");
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).expect("write cert");
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).expect("write key");
    (cert_path, key_path, cert.cert.der().clone())
}

#[tokio::test]
async fn browsers_connect_with_wss_and_a_bad_certificate_path_stops_the_start() {
    let dir = std::env::temp_dir().join(format!("sipline-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert, key, der) = certificate(&dir);
    let (cert, key) = (
        cert.to_string_lossy().into_owned(),
        key.to_string_lossy().into_owned(),
    );
    let relay = common::RelayProcess::start_embedded(
        &[
            "--domain",
            "sipline.test",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
        "alice:alice-pw",
    );

    let mut roots = RootCertStore::empty();
    roots.add(der).expect("trust the test certificate");
    let client = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let url = format!("wss://127.0.0.1:{}/sip", relay.http_port);
    let mut req = url.into_client_request().expect("request");
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("sip"));
    let connector = tokio_tungstenite::Connector::Rustls(Arc::new(client));
    let (mut ws, _) =
        tokio_tungstenite::connect_async_tls_with_config(req, None, false, Some(connector))
            .await
            .expect("wss handshake");
    let options = "OPTIONS sip:sipline.test SIP/2.0\r\nVia: SIP/2.0/WSS t.invalid;branch=z9hG4bKtls1\r\nMax-Forwards: 70\r\n\
From: <sip:probe@sipline.test>;tag=p\r\nTo: <sip:sipline.test>\r\nCall-ID: tls-1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    ws.send(Frame::text(options)).await.expect("send");
    let answer = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("an answer in time");
    let Some(Ok(Frame::Text(text))) = answer else {
        panic!("expected a SIP answer, got {answer:?}")
    };
    assert!(text.starts_with("SIP/2.0 200 OK\r\n"), "{text}");

    // Plain ws:// against the TLS port does not get a WebSocket.
    assert!(
        common::try_raw_ws(&format!("ws://127.0.0.1:{}/sip", relay.http_port))
            .await
            .is_err()
    );

    // A certificate path that does not exist: the relay refuses to start,
    // naming the file.
    let missing = dir.join("missing.pem");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sipline-relay"))
        .args([
            "--embedded-pbx",
            "--user",
            &format!("{ECHO_EXTENSION}x:pw"),
            "--http-listen",
            "127.0.0.1:0",
            "--sip-listen",
            "127.0.0.1:0",
        ])
        .arg("--tls-cert")
        .arg(&missing)
        .arg("--tls-key")
        .arg(&key)
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing.pem"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}
