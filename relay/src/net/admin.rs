//! Operations endpoints: the admin event stream (server-sent events, for
//! call-centre dashboards) and `/api/config` (the defaults a phone page
//! needs).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use tokio::sync::broadcast;

use super::Shared;

/// Whether `given` equals `expected`, in time that does not depend on where
/// they differ (the token guards call details).
fn same_secret(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// `GET /admin/events`: one SSE event per relay event (`event: registered`,
/// `data: {json}`). Needs `Authorization: Bearer <admin token>`; without a
/// configured token the stream does not exist.
pub(super) async fn events(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let Some(token) = shared.admin_token.as_deref() else {
        return (
            StatusCode::NOT_FOUND,
            "admin event stream disabled: set admin.token\n",
        )
            .into_response();
    };
    if !bearer(&headers).is_some_and(|t| same_secret(t.as_bytes(), token.as_bytes())) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "admin token required\n",
        )
            .into_response();
    }
    let rx = shared.admin.subscribe();
    let stopping = shared.stopping.clone();
    let events = stream::unfold((rx, stopping), |(mut rx, mut stopping)| async move {
        let received = tokio::select! {
            r = rx.recv() => r,
            _ = stopping.wait_for(|s| *s) => return None,
        };
        let event = match received {
            Ok((name, json)) => Event::default().event(name).data(json),
            // A slow reader missed events: say so, and go on.
            Err(broadcast::error::RecvError::Lagged(n)) => Event::default()
                .event("lagged")
                .data(format!("{{\"missed\":{n}}}")),
            Err(broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok::<Event, Infallible>(event), (rx, stopping)))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// `GET /api/config`: what a phone page needs to connect, so that it can be
/// served without hard-coded addresses.
pub(super) async fn client_config(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let client = &shared.client;
    let server = client.server_url.clone().unwrap_or_else(|| {
        // Derive it from how this request reached us.
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let secure = headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
            .is_some_and(|p| p.eq_ignore_ascii_case("https"));
        format!("{}://{host}/sip", if secure { "wss" } else { "ws" })
    });
    let body = ClientConfigJson {
        server,
        domain: client.domain.clone(),
        register: client.register,
        ice_servers: client
            .ice_servers
            .iter()
            .map(|u| IceServer { urls: u.clone() })
            .collect(),
    };
    axum::Json(body).into_response()
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct ClientConfigJson {
    server: String,
    domain: String,
    register: bool,
    ice_servers: Vec<IceServer>,
}

#[derive(serde::Serialize)]
struct IceServer {
    urls: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abd", b"abc"));
        assert!(!same_secret(b"ab", b"abc"));
    }
}
