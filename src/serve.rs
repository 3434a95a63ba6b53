//! Serving: the read-only HTTP interface (axum on hyper, HTTP/1.1).
//!
//! Feed documents are served from the bytes the publisher rendered, with ETag/Last-Modified
//! validation and pre-compressed gzip. Nothing on this server changes state.
//!
//! Connections are bounded: axum's own `serve` sets no timer, so a client that opens a
//! connection and sends nothing (or a byte a minute) would hold it forever. We serve through
//! hyper with a timer: headers must arrive within `[server] header_timeout`, and at most
//! [`MAX_CONNECTIONS`] connections are open at once.
//!
//! Feed documents are the hot path (readers poll them, mostly to hear 304): [`App`] answers
//! `GET /feeds/{file}` itself, without the router, boxed middleware futures or a copy of the
//! request's headers, and sends everything else through the router. Every response gets the
//! security headers and is counted in one place.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tower::ServiceExt;

use crate::config::SharedConfig;
use crate::metrics::Metrics;
use crate::publish::{Document, Format, Publisher};
use crate::scheduler::Health;
use crate::shutdown::Shutdown;
use crate::status::source_reports;
use crate::store::Store;

/// Open connections at most; more wait in the kernel's accept queue.
pub const MAX_CONNECTIONS: usize = 1024;

/// What the handlers need.
#[derive(Clone)]
pub struct ServeState {
    /// The rendered documents.
    pub publisher: Arc<Publisher>,
    /// The store, for status.
    pub store: Store,
    /// The configuration in force (replaced on reload).
    pub config: SharedConfig,
    /// The scheduler's heartbeat.
    pub health: Arc<Health>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
}

/// The HTTP application: feed documents directly, the rest through the router; see the
/// module documentation. Cheap to clone (one per connection).
#[derive(Clone)]
pub struct App(Arc<AppParts>);

struct AppParts {
    state: ServeState,
    router: Router,
}

impl App {
    /// The application serving `state`.
    pub fn new(state: ServeState) -> App {
        let router = Router::new()
            .route("/", get(home))
            .route("/feeds/{file}", get(feed))
            .route("/status.json", get(status))
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics))
            .route("/sources.opml", get(sources_opml))
            .fallback(not_found)
            .with_state(state.clone());
        App(Arc::new(AppParts { state, router }))
    }

    /// Answers one request.
    pub async fn handle(self, request: axum::http::Request<hyper::body::Incoming>) -> Response {
        let route = route_label(request.uri().path());
        let mut response = match request.uri().path().strip_prefix("/feeds/") {
            // HEAD and percent-encoded names go through the router, which handles both.
            Some(file) if request.method() == Method::GET && !file.contains(['/', '%']) => {
                feed_response(&self.0.state, file, request.headers())
            }
            _ => match self.0.router.clone().oneshot(request.map(Body::new)).await {
                Ok(response) => response,
                Err(never) => match never {},
            },
        };
        add_security_headers(response.headers_mut());
        self.0
            .state
            .metrics
            .request(route, response.status().as_u16());
        response
    }
}

/// The metrics label of a path: one of our route templates, never the path itself (whose
/// variety is the client's to choose).
fn route_label(path: &str) -> &'static str {
    match path {
        "/" => "/",
        "/status.json" => "/status.json",
        "/healthz" => "/healthz",
        "/metrics" => "/metrics",
        "/sources.opml" => "/sources.opml",
        _ => match path.strip_prefix("/feeds/") {
            Some(file) if !file.is_empty() && !file.contains('/') => "/feeds/{file}",
            _ => "unmatched",
        },
    }
}

/// Serves `app` on `listener` until `shutdown`, then lets requests in flight finish (for a
/// few seconds at most).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    header_timeout: Duration,
    mut shutdown: Shutdown,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.recv() => break,
        };
        let (stream, _) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: back off a little, keep serving.
                tracing::warn!("accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |request| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.handle(request).await) }
        });
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    if tokio::time::timeout(Duration::from_secs(3), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP connections did not close in time");
    }
}

async fn metrics(State(state): State<ServeState>) -> Response {
    let config = state.config.get();
    let reports = source_reports(&config.sources, &state.store).unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(&reports),
    )
        .into_response()
}

async fn sources_opml(State(state): State<ServeState>) -> Response {
    let config = state.config.get();
    (
        [
            (header::CONTENT_TYPE, "text/x-opml; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        crate::opml::export(&config),
    )
        .into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// The content type of the HTML pages.
const HTML: &str = "text/html; charset=utf-8";

async fn home(State(state): State<ServeState>, headers: HeaderMap) -> Response {
    match state.publisher.home() {
        Some(page) => serve_document(&page, HTML, &headers),
        None => not_found().await,
    }
}

async fn feed(
    State(state): State<ServeState>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    feed_response(&state, &file, &headers)
}

/// `/feeds/{name}` is the HTML view; `/feeds/{name}.{atom,rss,json}` the documents.
fn feed_response(state: &ServeState, file: &str, headers: &HeaderMap) -> Response {
    // A document's extension first: one lookup for the requests readers make.
    let document = file
        .rsplit_once('.')
        .and_then(|(name, ext)| Some((name, Format::from_extension(ext)?)));
    if document.is_none() {
        if let Some(rendered) = state.publisher.get(file) {
            return serve_document(rendered.html(), HTML, headers);
        }
    }
    let found = document.and_then(|(name, format)| Some((state.publisher.get(name)?, format)));
    match found {
        Some((rendered, format)) => {
            let mut response =
                serve_document(rendered.document(format), format.content_type(), headers);
            // Web-based readers fetch feeds from other origins.
            response.headers_mut().insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
            response
        }
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

/// The usual security headers on every response; the strict policy of HTML pages (no
/// script, our stylesheet by hash) on everything, since nothing else we serve needs more.
fn add_security_headers(headers: &mut HeaderMap) {
    static POLICY: std::sync::OnceLock<Option<HeaderValue>> = std::sync::OnceLock::new();
    let policy =
        POLICY.get_or_init(|| HeaderValue::from_str(crate::page::content_security_policy()).ok());
    if let Some(policy) = policy {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy.clone());
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    headers.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        "permissions-policy",
        HeaderValue::from_static("camera=(), microphone=(), geolocation=()"),
    );
}

async fn status(State(state): State<ServeState>) -> Response {
    let config = state.config.get();
    match source_reports(&config.sources, &state.store) {
        Ok(reports) => ([(header::CACHE_CONTROL, "no-cache")], axum::Json(reports)).into_response(),
        Err(err) => (StatusCode::SERVICE_UNAVAILABLE, format!("{err}\n")).into_response(),
    }
}

/// 200 when the store answers, takes writes and the scheduler beats; else 503 with every
/// reason, one a line (a full disk: "store write failed: No space left on device ...").
async fn healthz(State(state): State<ServeState>) -> Response {
    let mut reasons = Vec::new();
    if !crate::daemon::store_answers(&state.store).await {
        reasons.push("store unavailable".to_string());
    }
    if let Some(failure) = state.store.write_failure() {
        reasons.push(format!(
            "store write failed: {failure} (retried every {} s)",
            crate::store::PROBE_EVERY.as_secs()
        ));
    }
    if !state.health.alive() {
        reasons.push("scheduler not running".to_string());
    }
    if reasons.is_empty() {
        (StatusCode::OK, "ok\n").into_response()
    } else {
        let body = reasons.join("\n") + "\n";
        (StatusCode::SERVICE_UNAVAILABLE, body).into_response()
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
    let etag = if gzip {
        &doc.headers.etag_gzip
    } else {
        &doc.headers.etag
    };
    h.insert(header::ETAG, etag.clone());
    h.insert(header::LAST_MODIFIED, doc.headers.last_modified.clone());
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
        Document::new(
            Bytes::from_static(b"<feed/>"),
            Bytes::from_static(b"gz"),
            "\"abc\"".to_string(),
            httpdate::parse_http_date("Sat, 28 Nov 2026 10:00:00 GMT").expect("valid date"),
        )
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
