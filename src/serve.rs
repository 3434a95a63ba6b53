//! Serving: the read-only HTTP interface (axum).
//!
//! Feed documents are served from the bytes the publisher rendered, with ETag/Last-Modified
//! validation and pre-compressed gzip. Nothing on this server changes state.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::config::Config;
use crate::publish::{Document, Format, Publisher};
use crate::status::source_reports;
use crate::store::Store;

/// What the handlers need.
#[derive(Clone)]
pub struct ServeState {
    /// The rendered documents.
    pub publisher: Arc<Publisher>,
    /// The store, for status.
    pub store: Store,
    /// The configuration in force (replaced on reload).
    pub config: Arc<RwLock<Arc<Config>>>,
    /// Set while the scheduler runs.
    pub scheduler_alive: Arc<AtomicBool>,
}

impl ServeState {
    fn config(&self) -> Arc<Config> {
        self.config
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The router of every route.
pub fn router(state: ServeState) -> Router {
    Router::new()
        .route("/feeds/{file}", get(feed))
        .route("/status.json", get(status))
        .route("/healthz", get(healthz))
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

async fn feed(
    State(state): State<ServeState>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    let found = file.rsplit_once('.').and_then(|(name, ext)| {
        let format = Format::from_extension(ext)?;
        Some((state.publisher.get(name)?, format))
    });
    match found {
        Some((rendered, format)) => {
            serve_document(rendered.document(format), format.content_type(), &headers)
        }
        None => not_found().await,
    }
}

async fn status(State(state): State<ServeState>) -> Response {
    let config = state.config();
    match source_reports(&config.sources, &state.store) {
        Ok(reports) => ([(header::CACHE_CONTROL, "no-cache")], axum::Json(reports)).into_response(),
        Err(err) => (StatusCode::SERVICE_UNAVAILABLE, format!("{err}\n")).into_response(),
    }
}

async fn healthz(State(state): State<ServeState>) -> Response {
    let store_ok = state.store.source_state("").is_ok();
    let scheduler_ok = state.scheduler_alive.load(Ordering::SeqCst);
    match (store_ok, scheduler_ok) {
        (true, true) => (StatusCode::OK, "ok\n").into_response(),
        (false, _) => (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n").into_response(),
        (_, false) => (StatusCode::SERVICE_UNAVAILABLE, "scheduler not running\n").into_response(),
    }
}

/// Strips the weak marker and our gzip suffix: validators of both representations match.
fn etag_core(tag: &str) -> &str {
    let tag = tag.trim().trim_start_matches("W/").trim_matches('"');
    tag.strip_suffix("-gz").unwrap_or(tag)
}

fn not_modified(doc: &Document, headers: &HeaderMap) -> bool {
    if let Some(inm) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        let ours = etag_core(&doc.etag);
        return inm
            .split(',')
            .any(|t| t.trim() == "*" || etag_core(t) == ours);
    }
    let since = headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok());
    match since {
        // HTTP dates have whole seconds.
        Some(since) => {
            doc.last_modified.duration_since(since).unwrap_or_default() < Duration::from_secs(1)
        }
        None => false,
    }
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

fn serve_document(doc: &Document, content_type: &'static str, headers: &HeaderMap) -> Response {
    let gzip = accepts_gzip(headers);
    let etag = if gzip {
        format!("{}-gz\"", doc.etag.trim_end_matches('"'))
    } else {
        doc.etag.clone()
    };
    let last_modified = httpdate::fmt_http_date(doc.last_modified);
    let mut response = if not_modified(doc, headers) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let body = if gzip {
            doc.gzip.clone()
        } else {
            doc.body.clone()
        };
        let mut response = Response::new(Body::from(body));
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if gzip {
            response
                .headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        response
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&last_modified) {
        h.insert(header::LAST_MODIFIED, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn doc() -> Document {
        Document {
            body: Bytes::from_static(b"<feed/>"),
            gzip: Bytes::from_static(b"gz"),
            etag: "\"abc\"".to_string(),
            last_modified: httpdate::parse_http_date("Sat, 28 Nov 2026 10:00:00 GMT")
                .expect("valid date"),
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn etags_of_both_encodings_validate() {
        for tag in ["\"abc\"", "\"abc-gz\"", "W/\"abc\"", "\"x\", \"abc\"", "*"] {
            let h = headers(&[("if-none-match", tag)]);
            assert!(not_modified(&doc(), &h), "{tag}");
        }
        assert!(!not_modified(
            &doc(),
            &headers(&[("if-none-match", "\"abd\"")])
        ));
    }

    #[test]
    fn if_modified_since_compares_whole_seconds() {
        let same = headers(&[("if-modified-since", "Sat, 28 Nov 2026 10:00:00 GMT")]);
        assert!(not_modified(&doc(), &same));
        let older = headers(&[("if-modified-since", "Sat, 28 Nov 2026 09:59:59 GMT")]);
        assert!(!not_modified(&doc(), &older));
        let mismatched_etag_wins = headers(&[
            ("if-none-match", "\"old\""),
            ("if-modified-since", "Sat, 28 Nov 2026 10:00:00 GMT"),
        ]);
        assert!(!not_modified(&doc(), &mismatched_etag_wins));
    }

    #[test]
    fn gzip_negotiation_honours_q_zero() {
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "gzip, deflate, br"
        )])));
        assert!(accepts_gzip(&headers(&[(
            "accept-encoding",
            "br;q=1.0, gzip;q=0.5"
        )])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "gzip;q=0")])));
        assert!(!accepts_gzip(&headers(&[("accept-encoding", "identity")])));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}
