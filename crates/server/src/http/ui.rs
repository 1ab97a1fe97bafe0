//! The web app: the static files of `ui/` (HTML, CSS, ES modules; no build step), embedded in the
//! binary at compile time by `rust-embed` (debug builds read them from disk, so editing a page
//! needs no rebuild) and served here.
//!
//! URLs: `/` redirects to `/app/`; `/app/` is the agents' app (`ui/app/index.html`), whose assets
//! live under `/app/js/`, `/app/css/` and `/app/img/` (`ui/js/...`, ...); `/simulator` is the
//! customer's phone of the built-in WhatsApp simulator (`ui/simulator/index.html`). Anything else
//! is a 404. Only keys of the embedded folder are ever looked up, after every path segment was
//! checked, so a path cannot leave `ui/`.

use std::borrow::Cow;

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

#[derive(rust_embed::Embed)]
#[folder = "../../ui/"]
struct Assets;

const APP_INDEX: &str = "app/index.html";
const SIMULATOR_INDEX: &str = "simulator/index.html";
/// Folders of `ui/` served under `/app/`.
const ASSET_FOLDERS: &[&str] = &["js/", "css/", "img/"];

/// The pages only load what this server serves; nothing inline, nothing from elsewhere.
const PAGE_CSP: &str = "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; \
    style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    frame-ancestors 'none'; form-action 'self'";

pub async fn root() -> Redirect {
    Redirect::temporary("/app/")
}

pub async fn app_index(headers: HeaderMap) -> Response {
    serve(APP_INDEX, &headers)
}

pub async fn app_path(Path(path): Path<String>, headers: HeaderMap) -> Response {
    match app_key(&path) {
        Some(key) => serve(&key, &headers),
        None => not_found(),
    }
}

pub async fn simulator(headers: HeaderMap) -> Response {
    serve(SIMULATOR_INDEX, &headers)
}

/// The embedded key for a path under `/app/`, or None when it is not one the app serves.
fn app_key(path: &str) -> Option<String> {
    if path.is_empty() || path == "index.html" {
        return Some(APP_INDEX.to_owned());
    }
    if !path.split('/').all(safe_segment) {
        return None;
    }
    ASSET_FOLDERS
        .iter()
        .any(|f| path.starts_with(f))
        .then(|| path.to_owned())
}

/// A file or folder name: no empty, hidden or parent segments, no separators or odd characters.
fn safe_segment(segment: &str) -> bool {
    !segment.is_empty()
        && !segment.starts_with('.')
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

fn serve(key: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(key) else {
        return not_found();
    };
    let etag = format!("\"{}\"", hex::encode(&file.metadata.sha256_hash()[..16]));
    let is_page = key.ends_with(".html");
    let mut response = if if_none_match(headers, &etag) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let body = match file.data {
            Cow::Borrowed(bytes) => axum::body::Body::from(bytes),
            Cow::Owned(bytes) => axum::body::Body::from(bytes),
        };
        ([(header::CONTENT_TYPE, content_type(key))], body).into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    // File names carry no content hash, so the browser revalidates every time (a cheap 304).
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    if is_page {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_CSP),
        );
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    }
    response
}

fn if_none_match(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag == etag || tag.strip_prefix("W/") == Some(etag))
}

fn content_type(key: &str) -> String {
    let extension = key
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "html" => "text/html; charset=utf-8".to_owned(),
        "css" => "text/css; charset=utf-8".to_owned(),
        "js" | "mjs" => "text/javascript; charset=utf-8".to_owned(),
        "json" => "application/json".to_owned(),
        "svg" => "image/svg+xml".to_owned(),
        _ => mime_guess::from_path(key)
            .first_or_octet_stream()
            .essence_str()
            .to_owned(),
    }
}

fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "404: página não encontrada",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_app_paths_to_keys() {
        assert_eq!(app_key("").as_deref(), Some(APP_INDEX));
        assert_eq!(app_key("index.html").as_deref(), Some(APP_INDEX));
        assert_eq!(app_key("js/app.js").as_deref(), Some("js/app.js"));
        assert_eq!(app_key("css/app.css").as_deref(), Some("css/app.css"));
        for bad in [
            "../Cargo.toml",
            "js/../../Cargo.toml",
            "js/%2e%2e/x",
            "js//app.js",
            "js/.hidden",
            "js\\app.js",
            "simulator/index.html",
            "app/index.html",
            "js",
            "/etc/passwd",
        ] {
            assert_eq!(app_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("app/index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("js/app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("css/app.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("img/logo.png"), "image/png");
        assert_eq!(content_type("img/x.unknownext"), "application/octet-stream");
    }

    #[test]
    fn every_page_and_module_is_embedded() {
        for key in [
            APP_INDEX,
            SIMULATOR_INDEX,
            "js/app.js",
            "js/i18n.js",
            "js/simulator.js",
            "css/app.css",
        ] {
            assert!(Assets::get(key).is_some(), "{key} is missing from ui/");
        }
    }

    #[test]
    fn etag_matching() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"a\", W/\"b\""),
        );
        assert!(if_none_match(&headers, "\"b\""));
        assert!(if_none_match(&headers, "\"a\""));
        assert!(!if_none_match(&headers, "\"c\""));
    }
}
