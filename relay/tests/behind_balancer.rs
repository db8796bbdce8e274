//! The relay behind HAProxy from Debian, which names each browser's address
//! in a PROXY protocol v2 header: the per-address limits count browsers,
//! not the balancer. Browsers are WebSocket clients bound to their own
//! loopback addresses (127.0.0.2, 127.0.0.3), as distinct hosts would be.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sipline_test_harness::haproxy::Haproxy;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error, Message};

use common::RelayProcess;

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

/// A SIP WebSocket to `to` from the host `source` (a loopback address).
async fn ws_from(source: [u8; 4], to: SocketAddr) -> Result<Ws, Error> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let stream = socket.connect(to).await?;
    let mut req = format!("ws://{to}/sip").into_client_request()?;
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("sip"));
    Ok(tokio_tungstenite::client_async(req, stream).await?.0)
}

fn refused_with_503(result: Result<Ws, Error>) -> bool {
    matches!(result, Err(Error::Http(r)) if r.status() == 503)
}

#[tokio::test(flavor = "multi_thread")]
async fn behind_haproxy_each_browser_counts_as_itself() {
    let relay = RelayProcess::start(
        "127.0.0.1:9".parse().expect("address"),
        &[
            "--trusted-proxy",
            "127.0.0.1",
            "--max-connections-per-ip",
            "1",
        ],
    );
    let haproxy = Haproxy::start(&[relay.http_port]).expect("haproxy");
    // Until HAProxy's health checks (with their own PROXY headers) find
    // the relay up.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut first = loop {
        match ws_from([127, 0, 0, 2], haproxy.addr).await {
            Ok(ws) => break ws,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no WebSocket through HAProxy: {e}"),
        }
    };
    // A second host through the same balancer is its own address: let in,
    // where the balancer's one address would have been refused.
    let mut second = ws_from([127, 0, 0, 3], haproxy.addr)
        .await
        .expect("a second browser through HAProxy");
    // The first host's second connection passes its own limit.
    assert!(
        refused_with_503(ws_from([127, 0, 0, 2], haproxy.addr).await),
        "one connection per address"
    );
    // Both live and answered (a CRLF keep-alive gets its CRLF).
    for ws in [&mut first, &mut second] {
        futures_util::SinkExt::send(ws, Message::text("\r\n\r\n"))
            .await
            .expect("send");
        let pong = tokio::time::timeout(Duration::from_secs(5), futures_util::StreamExt::next(ws))
            .await
            .expect("a pong in time");
        assert!(matches!(pong, Some(Ok(m)) if m.to_text().is_ok_and(|t| t == "\r\n")));
    }

    // Straight to the relay from the balancer's address without a header:
    // dropped, never taken for the balancer's browsers.
    let direct = SocketAddr::from(([127, 0, 0, 1], relay.http_port));
    assert!(
        ws_from([127, 0, 0, 1], direct).await.is_err(),
        "a trusted balancer's connection must bring its PROXY header"
    );
    // Anyone else straight to the relay is read as before.
    let mut plain = ws_from([127, 0, 0, 4], direct)
        .await
        .expect("a browser not behind the balancer");
    futures_util::SinkExt::send(&mut plain, Message::text("\r\n\r\n"))
        .await
        .expect("send");
}
