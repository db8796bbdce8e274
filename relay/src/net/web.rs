//! Static files at `/`: the demo phone page and the SDK it loads, from one
//! folder (`http.web_root`). Only files of the types a web page needs are
//! served, only from inside that folder (no `..`, no symlink out of it),
//! and never a directory listing.

use std::path::{Component, Path, PathBuf};

use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// The content type of a file a page may load, by extension; `None` for
/// anything else (sources, configs, keys…), which is not served.
fn content_type(path: &Path) -> Option<&'static str> {
    Some(match path.extension()?.to_str()? {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "wasm" => "application/wasm",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "wav" => "audio/wav",
        "txt" => "text/plain; charset=utf-8",
        _ => return None,
    })
}

/// The file under `root` that `path` (a URI path) names, if it is a plain
/// relative path: `/` is `index.html`; `..`, backslashes, percent-escapes
/// and empty or dot segments are refused.
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let rel = path.strip_prefix('/')?;
    let rel = if rel.is_empty() || rel.ends_with('/') {
        format!("{rel}index.html")
    } else {
        rel.to_owned()
    };
    if rel.contains(['\\', '%', '\0']) {
        return None;
    }
    let rel = Path::new(&rel);
    if !rel
        .components()
        .all(|c| matches!(c, Component::Normal(s) if !s.to_string_lossy().starts_with('.')))
    {
        return None;
    }
    Some(root.join(rel))
}

/// Serves `uri`'s file from `root`, or 404.
pub(super) async fn serve(root: &Path, uri: &Uri) -> Response {
    let not_found = || (StatusCode::NOT_FOUND, "not found\n").into_response();
    let Some(path) = resolve(root, uri.path()) else {
        return not_found();
    };
    let Some(kind) = content_type(&path) else {
        return not_found();
    };
    // A symlink must not lead out of the folder.
    let inside = match (
        tokio::fs::canonicalize(&path).await,
        tokio::fs::canonicalize(root).await,
    ) {
        (Ok(file), Ok(root)) => file.starts_with(root),
        _ => false,
    };
    if !inside {
        return not_found();
    }
    match tokio::fs::read(&path).await {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, kind),
                // The demo is rebuilt in place: always revalidate.
                (header::CACHE_CONTROL, "no-cache"),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            body,
        )
            .into_response(),
        Err(_) => not_found(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_inside_the_root_resolve() {
        let root = Path::new("/srv/site");
        assert_eq!(resolve(root, "/"), Some(root.join("index.html")));
        assert_eq!(
            resolve(root, "/sdk/dist/index.js"),
            Some(root.join("sdk/dist/index.js"))
        );
        assert_eq!(
            resolve(root, "/calls/"),
            Some(root.join("calls/index.html"))
        );
        for bad in [
            "/../etc/passwd",
            "/sdk/../../x.js",
            "/%2e%2e/x.js",
            "/a\\..\\b.js",
            "/.git/config",
            "/sdk/.env",
            "//etc/passwd",
            "relative.js",
        ] {
            assert_eq!(resolve(root, bad), None, "{bad}");
        }
    }

    #[test]
    fn only_the_types_a_page_loads_are_served() {
        assert_eq!(content_type(Path::new("a.wasm")), Some("application/wasm"));
        assert_eq!(
            content_type(Path::new("x/index.html")),
            Some("text/html; charset=utf-8")
        );
        for other in ["relay.toml", "key.pem", "main.rs", "Makefile", "a.ts"] {
            assert_eq!(content_type(Path::new(other)), None, "{other}");
        }
    }
}
