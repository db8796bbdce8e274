//! The browser side: axum routes for the WebSocket (`/sip`), `/healthz` and
//! `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info};

use super::{Input, Shared};
use crate::ids::ConnId;

/// What a connection's writer sends.
pub(super) enum Out {
    Frame(Vec<u8>),
    /// A WebSocket ping: a live browser answers with a pong on its own.
    Ping,
    Close(u16, &'static str),
}

/// WebSocket close code for a message that is too big (RFC 6455 §7.4.1).
const MESSAGE_TOO_BIG: u16 = 1009;
/// WebSocket close code for a peer given up on (RFC 6455 §7.4.1).
pub(super) const GOING_AWAY: u16 = 1001;

/// Bytes read from a browser's socket at a time.
const READ_BUFFER: usize = 4096;
pub(super) fn router(shared: Shared) -> Router {
    let router = Router::new()
        .route("/sip", get(sip))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/admin/events", get(super::admin::events))
        .route("/admin/calls", get(super::admin::calls))
        .route("/admin/recordings", get(super::recordings::list))
        .route("/admin/recordings/{file}", get(super::recordings::file))
        .route(
            "/admin/calls/{call_id}/recording",
            axum::routing::post(super::admin::recording),
        )
        .route("/api/config", get(super::admin::client_config));
    let router = match shared.web_root.clone() {
        Some(root) => router.fallback(get(move |uri: axum::http::Uri| async move {
            super::web::serve(&root, &uri).await
        })),
        None => router,
    };
    router.with_state(shared)
}

/// Whether the client offered the `sip` subprotocol (RFC 7118 §4.1).
fn offers_sip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("sip"))
}

async fn sip(
    State(shared): State<Shared>,
    ConnectInfo(super::tls::Peer(peer)): ConnectInfo<super::tls::Peer>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !offers_sip(&headers) {
        return (
            StatusCode::BAD_REQUEST,
            "WebSocket subprotocol \"sip\" is required (RFC 7118)\n",
        )
            .into_response();
    }
    let (reply, admitted) = oneshot::channel();
    let asked = shared
        .inputs
        .send(Input::Admit {
            ip: peer.ip(),
            reply,
        })
        .await
        .is_ok();
    if !asked || !admitted.await.unwrap_or(false) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "30")],
            "too many connections from this address\n",
        )
            .into_response();
    } // The library's own limit sits above ours, so that an oversized message
    // is read and refused with 1009 here rather than cut off in the parser.
    let hard_limit = shared.max_message * 4;
    // Small buffers: an idle browser must cost little. tungstenite's
    // defaults (128 KiB to read, 128 KiB to write) cost 137 KiB per idle
    // connection; SIP messages are a few KiB and arrive a few per second.
    ws.protocols(["sip"])
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(hard_limit)
        .max_frame_size(hard_limit)
        .on_upgrade(move |socket| connection(shared, socket, peer))
}

async fn connection(shared: Shared, socket: WebSocket, peer: SocketAddr) {
    let conn = ConnId(shared.next_conn.fetch_add(1, Ordering::Relaxed));
    let (tx, mut rx) = mpsc::channel::<Out>(256);
    let kill = Arc::new(tokio::sync::Notify::new());
    let opened = Input::Opened {
        conn,
        ip: peer.ip(),
        tx: tx.clone(),
        kill: kill.clone(),
    };
    if shared.inputs.send(opened).await.is_err() {
        return;
    }
    info!(?conn, %peer, "browser connected");
    let (mut sink, mut stream) = socket.split();
    let writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let frame = match out {
                Out::Frame(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => Frame::Text(text.into()),
                    Err(e) => Frame::Binary(e.into_bytes().into()),
                },
                Out::Ping => Frame::Ping(Default::default()),
                Out::Close(code, reason) => {
                    let _ = sink
                        .send(Frame::Close(Some(CloseFrame {
                            code,
                            reason: reason.into(),
                        })))
                        .await;
                    break;
                }
            };
            if sink.send(frame).await.is_err() {
                break;
            }
        }
    });
    // Anything the browser sends (SIP, a CRLF keep-alive, a pong) proves
    // it there; a third of the idle limit without it earns a ping, the
    // whole limit a close.
    let mut silent_since = tokio::time::Instant::now();
    let mut ping = tokio::time::interval(shared.ws_idle / 3);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ping.reset();
    loop {
        let idle_deadline = silent_since + shared.ws_idle;
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = ping.tick() => {
                let _ = tx.try_send(Out::Ping);
                continue;
            }
            _ = tokio::time::sleep_until(idle_deadline) => {
                info!(?conn, %peer, idle = ?shared.ws_idle, "browser silent: disconnected");
                let _ = tx.try_send(Out::Close(GOING_AWAY, "idle"));
                break;
            }
                        _ = kill.notified() => {
                // Its queue is full and the writer is stuck on a peer that
                // does not read: drop the socket; the browser reconnects.
                writer.abort();
                info!(?conn, %peer, "browser not reading: disconnected");
                return;
            }
        };
        let Some(frame) = frame else { break };
        silent_since = tokio::time::Instant::now();
        let bytes = match frame {
            Ok(Frame::Text(t)) => t.as_bytes().to_vec(),
            Ok(Frame::Binary(b)) => b.to_vec(),
            Ok(Frame::Close(_)) => break,
            Ok(_) => continue, // ping/pong: answered by the library
            Err(e) => {
                debug!(?conn, error = %e, "WebSocket read failed");
                // Only a size limit earns 1009; anything else ends quietly.
                let inner = e.into_inner();
                if matches!(
                    inner.downcast_ref::<tungstenite::Error>(),
                    Some(tungstenite::Error::Capacity(_))
                ) {
                    let _ = tx.try_send(Out::Close(MESSAGE_TOO_BIG, "message too big"));
                }
                break;
            }
        };
        if bytes.len() > shared.max_message {
            info!(
                ?conn,
                len = bytes.len(),
                "message too big: closing with 1009"
            );
            let _ = tx.try_send(Out::Close(MESSAGE_TOO_BIG, "message too big"));
            break;
        }
        if shared
            .inputs
            .send(Input::Frame { conn, bytes })
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = shared.inputs.send(Input::Closed { conn }).await;
    drop(tx);
    // A peer that stopped reading would hold the writer forever.
    let mut writer = writer;
    if tokio::time::timeout(std::time::Duration::from_secs(5), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    info!(?conn, %peer, "browser disconnected");
}

async fn metrics(State(shared): State<Shared>) -> Response {
    let (reply, answer) = oneshot::channel();
    if shared.inputs.send(Input::Metrics { reply }).await.is_err() {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    match answer.await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(_) => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}
