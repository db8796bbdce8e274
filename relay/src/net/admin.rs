//! Operations endpoints: the admin event stream (server-sent events, for
//! call-centre dashboards), the calls in progress and their recording
//! (for a CRM's back end), and `/api/config` (the defaults a phone page
//! needs).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use tokio::sync::broadcast;

use super::{Input, Shared, ask};
use crate::media::calls::RecordingError;

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

/// The answer to a request without the admin token (404 when no token is
/// configured: the admin API does not exist); `None` when it has it.
pub(super) fn refusal(shared: &Shared, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = shared.admin_token.as_deref() else {
        return Some(
            (
                StatusCode::NOT_FOUND,
                "admin API disabled: set admin.token\n",
            )
                .into_response(),
        );
    };
    if bearer(headers).is_some_and(|t| same_secret(t.as_bytes(), token.as_bytes())) {
        return None;
    }
    Some(
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "admin token required\n",
        )
            .into_response(),
    )
}

/// The answer when the proxy task is gone (the relay is stopping).
fn stopping() -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, "the relay is stopping\n").into_response()
}

/// `GET /admin/calls`: the calls set up or in progress, as
/// `{"calls":[{"session","client","call_id","caller","callee","state",
/// "seconds","recording"}]}` (`recording`: who started it, or `null`).
/// Needs the admin token.
pub(super) async fn calls(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(refused) = refusal(&shared, &headers) {
        return refused;
    }
    match ask(&shared.inputs, |reply| Input::Calls { reply }).await {
        Some(calls) => axum::Json(serde_json::json!({ "calls": calls })).into_response(),
        None => stopping(),
    }
}

/// What `POST /admin/calls/{call-id}/recording` asks.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecordingAction {
    /// `start` or `stop`.
    action: Action,
}

#[derive(Clone, Copy, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum Action {
    Start,
    Stop,
}

/// `POST /admin/calls/{call-id}/recording` with `{"action":"start"}` or
/// `{"action":"stop"}`: the operator starts or stops a call's recording
/// (the Call-ID percent-encoded in the path). `200` with
/// `{"call_id","recording","changed"}`; `404` for no such call with media;
/// `403` when recording is off. Needs the admin token.
pub(super) async fn recording(
    State(shared): State<Shared>,
    Path(call_id): Path<String>,
    headers: HeaderMap,
    body: Result<axum::Json<RecordingAction>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Some(refused) = refusal(&shared, &headers) {
        return refused;
    }
    let on = match body {
        Ok(axum::Json(RecordingAction { action })) => matches!(action, Action::Start),
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("expected {{\"action\": \"start\" or \"stop\"}}: {e}\n"),
            )
                .into_response();
        }
    };
    let asked = ask(&shared.inputs, |reply| Input::Recording {
        call_id: call_id.clone(),
        on,
        reply,
    })
    .await;
    match asked {
        Some(Ok(changed)) => axum::Json(serde_json::json!({
            "call_id": call_id,
            "recording": on,
            "changed": changed,
        }))
        .into_response(),
        Some(Err(e)) => {
            let status = match e {
                RecordingError::NoCall => StatusCode::NOT_FOUND,
                RecordingError::Disabled | RecordingError::Mandatory => StatusCode::FORBIDDEN,
            };
            (status, format!("{e}\n")).into_response()
        }
        None => stopping(),
    }
}

/// `GET /admin/events`: one SSE event per relay event (`event: registered`,
/// `data: {json}`). Needs `Authorization: Bearer <admin token>`; without a
/// configured token the stream does not exist.
pub(super) async fn events(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    if let Some(refused) = refusal(&shared, &headers) {
        return refused;
    }
    let rx = shared.admin.subscribe();
    let stopping = shared.stopping.clone();
    let instance = shared.instance.clone();
    let events = stream::unfold((rx, stopping), move |(mut rx, mut stopping)| {
        let instance = instance.clone();
        async move {
            let received = tokio::select! {
                r = rx.recv() => r,
                _ = stopping.wait_for(|s| *s) => return None,
            };
            let event = match received {
                Ok((name, json)) => Event::default()
                    .event(name)
                    .data(with_relay(&json, instance.as_deref())),
                // A slow reader missed events: say so, and go on.
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    Event::default().event("lagged").data(with_relay(
                        &format!("{{\"missed\":{n}}}"),
                        instance.as_deref(),
                    ))
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            };
            Some((Ok::<Event, Infallible>(event), (rx, stopping)))
        }
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// An event's JSON object with the relay's name as its first field,
/// `"relay"`, when the relay has one.
fn with_relay(json: &str, instance: Option<&str>) -> String {
    match (instance, json.strip_prefix('{')) {
        (Some(name), Some(rest)) => {
            let name = serde_json::Value::from(name);
            let sep = if rest.starts_with('}') { "" } else { "," };
            format!("{{\"relay\":{name}{sep}{rest}")
        }
        _ => json.to_owned(),
    }
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

    #[test]
    fn events_carry_the_relay_s_name_when_it_has_one() {
        let json = r#"{"event":"connected","session":3}"#;
        assert_eq!(with_relay(json, None), json);
        assert_eq!(
            with_relay(json, Some("relay-b")),
            r#"{"relay":"relay-b","event":"connected","session":3}"#
        );
        assert_eq!(with_relay("{}", Some("r1")), r#"{"relay":"r1"}"#);
        let parsed: serde_json::Value =
            serde_json::from_str(&with_relay(json, Some("r.1_x-2"))).expect("still JSON");
        assert_eq!(parsed["relay"], "r.1_x-2");
    }
}
