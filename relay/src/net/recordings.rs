//! The finished recordings, for whoever may hear them: `GET
//! /admin/recordings` lists them (each one's sidecar, newest first) and
//! `GET /admin/recordings/{file}` serves one of their files (the WAV to a
//! page's `<audio>`, the pcap, the sidecar). Both need the admin token;
//! with the embedded PBX, which is a demo, they are open to its page (the
//! demo's recordings are its users' own).

use std::path::Path;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UriPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tracing::warn;

use super::Shared;
use super::admin::refusal;

/// The most recordings one listing names (the newest): the folder may hold
/// years of them.
const LISTED: usize = 200;

/// The recordings folder, if the request may read it; else the answer to
/// give it (boxed: a response is large beside a path).
fn folder<'s>(shared: &'s Shared, headers: &HeaderMap) -> Result<&'s Path, Box<Response>> {
    if !shared.recordings_open
        && let Some(refused) = refusal(shared, headers)
    {
        return Err(Box::new(refused));
    }
    shared
        .recordings
        .as_deref()
        .ok_or_else(|| Box::new((StatusCode::NOT_FOUND, "recording is off\n").into_response()))
}

/// Whether `name` is a recording's file as the writer names them: its
/// letters, digits and `-._`, no leading dot, a `.wav`, `.pcap` or
/// `.json` extension; its content type if so.
fn file_kind(name: &str) -> Option<&'static str> {
    let safe = !name.starts_with('.')
        && name.len() <= 128
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
    if !safe {
        return None;
    }
    match name.rsplit_once('.')?.1 {
        "wav" => Some("audio/wav"),
        "pcap" => Some("application/vnd.tcpdump.pcap"),
        "json" => Some("application/json"),
        _ => None,
    }
}

/// `GET /admin/recordings`: `{"recordings":[…]}`, each finished recording's
/// sidecar (`call_id`, `started_by`, `from`, `to`, times, `codec`, `dtmf`,
/// `files`…) with its own file name as `sidecar`, newest first.
pub(super) async fn list(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let dir = match folder(&shared, &headers) {
        Ok(dir) => dir,
        Err(refused) => return *refused,
    };
    let mut names = Vec::new();
    match tokio::fs::read_dir(dir).await {
        Ok(mut entries) => {
            while let Ok(Some(entry)) = entries.next_entry().await {
                let name = entry.file_name().to_string_lossy().into_owned();
                if file_kind(&name) == Some("application/json") {
                    names.push(name);
                }
            }
        }
        // Made when the first recording starts: none yet.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            warn!(error = %e, "the recordings folder is unreadable");
            return (StatusCode::INTERNAL_SERVER_ERROR, "recordings unreadable\n").into_response();
        }
    }
    // Named from their start's Unix milliseconds: newest last by name.
    names.sort_unstable_by(|a, b| b.cmp(a));
    let mut recordings = Vec::new();
    for name in names.into_iter().take(LISTED) {
        let Ok(bytes) = tokio::fs::read(dir.join(&name)).await else {
            continue;
        };
        if let Ok(Value::Object(mut sidecar)) = serde_json::from_slice::<Value>(&bytes) {
            sidecar.insert("sidecar".into(), Value::String(name));
            recordings.push(Value::Object(sidecar));
        }
    }
    axum::Json(serde_json::json!({ "recordings": recordings })).into_response()
}

/// Bytes read from a recording at a time while it is served.
const CHUNK: usize = 64 * 1024;

/// `GET /admin/recordings/{file}`: one recording's file, streamed (an
/// hour's WAV is hundreds of megabytes: never read whole into memory).
pub(super) async fn file(
    State(shared): State<Shared>,
    UriPath(name): UriPath<String>,
    headers: HeaderMap,
) -> Response {
    let dir = match folder(&shared, &headers) {
        Ok(dir) => dir,
        Err(refused) => return *refused,
    };
    let not_found = || (StatusCode::NOT_FOUND, "no such recording\n").into_response();
    let Some(kind) = file_kind(&name) else {
        return not_found();
    };
    let Ok(file) = tokio::fs::File::open(dir.join(&name)).await else {
        return not_found();
    };
    let Ok(length) = file.metadata().await.map(|m| m.len()) else {
        return not_found();
    };
    // Chunk after chunk until the end, or the first read that fails (the
    // response then ends short, and the client sees it against its length).
    let chunks = stream::unfold(Some(file), |file| async move {
        let mut file = file?;
        let mut buf = vec![0u8; CHUNK];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok(Bytes::from(buf)), Some(file)))
            }
            Err(e) => Some((Err(e), None)),
        }
    });
    (
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::CONTENT_LENGTH, length.to_string()),
        ],
        Body::from_stream(chunks),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_writer_s_own_file_names_are_served() {
        assert_eq!(file_kind("1796617568884-abc_x.wav"), Some("audio/wav"));
        assert_eq!(file_kind("1-a.pcap"), Some("application/vnd.tcpdump.pcap"));
        assert_eq!(file_kind("1-a.json"), Some("application/json"));
        for bad in [
            "../secret.json",
            "a/b.wav",
            ".hidden.wav",
            "x.toml",
            "x",
            "a%2f.wav",
            "a b.wav",
            "a\0.wav",
        ] {
            assert_eq!(file_kind(bad), None, "{bad}");
        }
        assert_eq!(file_kind(&format!("{}.wav", "a".repeat(200))), None);
    }
}
