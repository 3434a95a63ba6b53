//! Serving: the read-only HTTP interface (axum on hyper, HTTP/1.1).
//!
//! Feed documents are served from the bytes the publisher rendered, with ETag/Last-Modified
//! validation and pre-compressed gzip. Nothing on this server changes state.
//!
//! Connections are bounded so that no client can hold what others need (see
//! docs/http.md, "Connections"). axum's own `serve` sets no timer, so we serve through hyper
//! with one: a request's headers must arrive within `[server] header_timeout`, on a new
//! connection and between requests on a kept-alive one (hyper arms its header timer again
//! whenever a connection goes idle). A client that does not read its responses is cut off by
//! [`Guarded`], which arms a timer whenever a write cannot go on: no progress for
//! `[server] write_timeout` closes the connection. The accept loop never waits: a connection
//! over `max_connections_per_ip` (one client: an IPv4 address or an IPv6 /64) or over
//! `max_connections` is answered a fixed 503 and closed at once, without a task or a slot.
//!
//! Feed documents are the hot path (readers poll them, mostly to hear 304): [`App`] answers
//! `GET /feeds/{file}` itself, without the router, boxed middleware futures or a copy of the
//! request's headers, and sends everything else through the router. Every response gets the
//! security headers and is counted in one place.

use std::collections::hash_map::{Entry, HashMap};
use std::convert::Infallible;
use std::future::Future;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;

use crate::config::ServerConfig;
use crate::metrics::{Metrics, StoreFigures};
use crate::publish::{Document, Format, RenderedFeed};
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use crate::status::{source_reports, SourceReport};

/// The HTTP application: feed documents directly, the rest through the router; see the
/// module documentation. Cheap to clone (one per connection).
#[derive(Clone)]
pub(crate) struct App(Arc<AppParts>);

struct AppParts {
    state: Shared,
    router: Router,
}

impl App {
    /// The application serving `state`.
    pub(crate) fn new(state: Shared) -> App {
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
    pub(crate) async fn handle(
        self,
        request: axum::http::Request<hyper::body::Incoming>,
    ) -> Response {
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

/// How the server bounds its connections: the `[server]` values, read once at start (a
/// reload does not change them).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionLimits {
    /// A request's headers must arrive within this, on a new connection and between
    /// requests on a kept-alive one.
    pub(crate) header_timeout: Duration,
    /// A response write that makes no progress for this long closes the connection.
    pub(crate) write_timeout: Duration,
    /// Open connections at most, from all clients.
    pub(crate) max_connections: usize,
    /// Open connections at most from one client: an IPv4 address or an IPv6 /64.
    pub(crate) max_connections_per_ip: usize,
}

impl From<&ServerConfig> for ConnectionLimits {
    fn from(server: &ServerConfig) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: server.header_timeout,
            write_timeout: server.write_timeout,
            max_connections: server.max_connections,
            max_connections_per_ip: server.max_connections_per_ip,
        }
    }
}

/// Serves `app` on `listener` until `shutdown`, within `limits` (see the module
/// documentation), then lets requests in flight finish (for a few seconds at most).
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    app: App,
    limits: ConnectionLimits,
    mut shutdown: Shutdown,
) {
    // A client's handshake completes in the kernel's accept queue; when the queue is full,
    // the kernel drops new ones, whoever they come from. The default (128) is filled by one
    // burst of connects, so we wait on a longer one (the kernel caps it at
    // net.core.somaxconn, 4096 by default).
    if let Err(err) = socket2::SockRef::from(&listener).listen(LISTEN_BACKLOG) {
        tracing::warn!("cannot lengthen the listen backlog to {LISTEN_BACKLOG}: {err}");
    }
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let metrics = app.0.state.metrics.clone();
    let admission = Arc::new(Admission::new(limits, metrics.clone()));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.recv() => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: back off a little, keep serving.
                tracing::warn!("accept failed: {err}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = match Admission::admit(&admission, peer.ip()) {
            Ok(slot) => slot,
            Err(_) => {
                refuse(stream);
                continue;
            }
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |request| {
            let app = app.clone();
            async move { Ok::<_, Infallible>(app.handle(request).await) }
        });
        let io = TokioIo::new(Guarded::new(stream, limits.write_timeout, slot));
        let connection = graceful.watch(http.serve_connection(io, service));
        let metrics = metrics.clone();
        tokio::spawn(async move {
            // hyper's header timer fires the same error on a new connection, on a request
            // half sent, and on a kept-alive connection left idle.
            if let Err(err) = connection.await {
                if err.is_timeout() {
                    metrics.connection_timed_out(HEADER_TIMEOUT);
                }
            }
        });
    }
    if tokio::time::timeout(Duration::from_secs(3), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some HTTP connections did not close in time");
    }
}

/// Handshaken connections the kernel queues for `accept`.
const LISTEN_BACKLOG: i32 = 4096;

/// The metrics reasons of the timeouts.
const HEADER_TIMEOUT: &str = "header_timeout";
const WRITE_TIMEOUT: &str = "write_timeout";

/// What a connection over a cap is told, in one write that never waits, before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
content-length: 21\r\n\
retry-after: 5\r\n\
connection: close\r\n\
\r\n\
too many connections\n";

/// Answers [`BUSY`] if the socket takes it at once, and closes the connection.
fn refuse(stream: TcpStream) {
    // Through std: tokio's `try_write` does not even try before the reactor has seen the new
    // socket writable. Taking it out of the reactor costs what dropping it would.
    if let Ok(stream) = stream.into_std() {
        let _ = (&stream).write(BUSY);
    }
}

/// An address's first connections are light, and may take any free slot; the others only
/// the first three quarters of `max_connections`. So a crowd of addresses each at its cap
/// still leaves room for clients that open a connection or a browser's few (and one address
/// never holds every slot, whatever `max_connections_per_ip` says).
const LIGHT: usize = 8;

/// One client, as the per-address cap counts it: an IPv4 address, or an IPv6 /64 (one host
/// commonly has a whole /64 to pick addresses from; IPv4-mapped addresses count as IPv4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Client {
    V4(u32),
    V6(u64),
}

impl Client {
    fn of(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(v4) => Client::V4(v4.into()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::V4(v4.into()),
                None => Client::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Its client holds `max_connections_per_ip`.
    PerAddress,
    /// Every slot it may take is taken.
    Total,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::PerAddress => "per_address",
            Refusal::Total => "total",
        }
    }
}

/// The open connections, in all and per client.
#[derive(Debug, Default)]
struct Counts {
    open: usize,
    by_client: HashMap<Client, usize>,
    /// When a refusal was last logged (at most one line a minute), and how many since.
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl Counts {
    fn admit(&mut self, client: Client, limits: &ConnectionLimits) -> Result<(), Refusal> {
        let held = self.by_client.get(&client).copied().unwrap_or(0);
        if held >= limits.max_connections_per_ip {
            return Err(Refusal::PerAddress);
        }
        let reserve = limits.max_connections / 4;
        let limit = if held >= LIGHT.min(reserve) {
            limits.max_connections - reserve
        } else {
            limits.max_connections
        };
        if self.open >= limit {
            return Err(Refusal::Total);
        }
        self.open += 1;
        *self.by_client.entry(client).or_insert(0) += 1;
        Ok(())
    }

    fn release(&mut self, client: Client) {
        self.open = self.open.saturating_sub(1);
        if let Entry::Occupied(mut held) = self.by_client.entry(client) {
            *held.get_mut() -= 1;
            if *held.get() == 0 {
                held.remove();
            }
        }
    }
}

/// Decides which connections are served, and counts them.
struct Admission {
    limits: ConnectionLimits,
    counts: Mutex<Counts>,
    metrics: Arc<Metrics>,
}

impl Admission {
    fn new(limits: ConnectionLimits, metrics: Arc<Metrics>) -> Admission {
        Admission {
            limits,
            counts: Mutex::default(),
            metrics,
        }
    }

    /// A slot for a connection from `ip`, or why not.
    fn admit(admission: &Arc<Admission>, ip: IpAddr) -> Result<Slot, Refusal> {
        let client = Client::of(ip);
        let mut counts = admission
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match counts.admit(client, &admission.limits) {
            Ok(()) => {
                drop(counts);
                admission.metrics.connection(true);
                Ok(Slot {
                    admission: admission.clone(),
                    client,
                })
            }
            Err(refusal) => {
                counts.unlogged += 1;
                let now = Instant::now();
                let due = counts
                    .last_logged
                    .is_none_or(|last| now.duration_since(last) >= Duration::from_secs(60));
                if due {
                    let refused = std::mem::take(&mut counts.unlogged);
                    counts.last_logged = Some(now);
                    let (open, held) = (counts.open, counts.by_client.get(&client).copied());
                    drop(counts);
                    tracing::warn!(
                        "refused a connection from {ip} ({} open from its address, {open} in \
                         all; {refused} refused since the last such line): {}; raise \
                         [server] {} if this is not an attack",
                        held.unwrap_or(0),
                        match refusal {
                            Refusal::PerAddress => "at max_connections_per_ip",
                            Refusal::Total => "no free connection slot",
                        },
                        match refusal {
                            Refusal::PerAddress => "max_connections_per_ip",
                            Refusal::Total => "max_connections",
                        },
                    );
                }
                admission.metrics.connection_refused(refusal.reason());
                Err(refusal)
            }
        }
    }
}

/// A connection's place in the counts, given back when it closes.
struct Slot {
    admission: Arc<Admission>,
    client: Client,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.admission
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .release(self.client);
        self.admission.metrics.connection(false);
    }
}

/// The error a write gets once it has made no progress for `write_timeout`.
#[derive(Debug, thiserror::Error)]
#[error("the client read nothing for {0:?} ([server] write_timeout); connection closed")]
struct WriteTimedOut(Duration);

/// A client's TCP stream with a write timeout: whenever a write (or flush) cannot go on, a
/// timer is armed, and any progress disarms it; when it fires, the write fails, and hyper
/// drops the connection. The timer measures "no progress", like nginx's `send_timeout`,
/// not the whole response: a deadline per response would cut off a reader on a slow link
/// fetching a large document, and would not stop a hoarder, who can keep a connection
/// busy with small responses; what a slow but reading client can hold is bounded by the
/// caps instead. The timer is allocated at the connection's first blocked write, so a
/// client that reads promptly costs nothing more.
struct Guarded {
    stream: TcpStream,
    write_timeout: Duration,
    deadline: Option<Pin<Box<Sleep>>>,
    armed: bool,
    timed_out: bool,
    slot: Slot,
}

impl Guarded {
    fn new(stream: TcpStream, write_timeout: Duration, slot: Slot) -> Guarded {
        Guarded {
            stream,
            write_timeout,
            deadline: None,
            armed: false,
            timed_out: false,
            slot,
        }
    }

    fn timed_out_error(&self) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, WriteTimedOut(self.write_timeout))
    }

    /// Disarms the timer when a write went on (or failed), arms it when it could not.
    fn writing<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if polled.is_ready() {
            self.armed = false;
            return polled;
        }
        if !self.armed {
            // A deadline past what `Instant` can hold is no deadline.
            let Some(at) = Instant::now().checked_add(self.write_timeout) else {
                return Poll::Pending;
            };
            match &mut self.deadline {
                Some(deadline) => deadline.as_mut().reset(at),
                None => self.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            self.armed = true;
        }
        let fired = match &mut self.deadline {
            Some(deadline) => deadline.as_mut().poll(cx).is_ready(),
            None => false,
        };
        if !fired {
            return Poll::Pending;
        }
        self.timed_out = true;
        self.slot
            .admission
            .metrics
            .connection_timed_out(WRITE_TIMEOUT);
        // The client reads nothing: reset rather than leave the unsent bytes to the kernel
        // for minutes.
        let _ = self.stream.set_zero_linger();
        Poll::Ready(Err(self.timed_out_error()))
    }
}

impl AsyncRead for Guarded {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.timed_out {
            return Poll::Ready(Err(this.timed_out_error()));
        }
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.writing(cx, polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.timed_out {
            return Poll::Ready(Err(this.timed_out_error()));
        }
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.writing(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.timed_out {
            return Poll::Ready(Err(this.timed_out_error()));
        }
        let polled = Pin::new(&mut this.stream).poll_flush(cx);
        this.writing(cx, polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // A TCP shutdown never waits.
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Every source's report, read off the async threads: a database engine answers one
/// query per source, and those must not stall the requests served meanwhile.
async fn read_reports(state: &Shared) -> Result<Vec<SourceReport>, String> {
    let config = state.config.get();
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || source_reports(&config.sources, &store))
        .await
        .map_err(|failed| format!("reading the sources' state failed: {failed}"))?
        .map_err(|err| err.to_string())
}

async fn metrics(State(state): State<Shared>) -> Response {
    let reports = read_reports(&state).await.unwrap_or_default();
    let figures = state.store.figures();
    state.metrics.store_figures(StoreFigures {
        pool_size: figures.pool_size,
        pool_idle: figures.pool_idle,
        pool_max: figures.pool_max,
        leases_held: figures.leases_held,
    });
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(&reports),
    )
        .into_response()
}

async fn sources_opml(State(state): State<Shared>) -> Response {
    let config = state.config.get();
    (
        [
            (header::CONTENT_TYPE, "text/x-opml; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        crate::config::opml::export(&config),
    )
        .into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found\n").into_response()
}

/// The content type of the HTML pages.
const HTML: &str = "text/html; charset=utf-8";

/// The `Cache-Control` of the home page: it is rendered anew every minute.
const HOME_CACHE: HeaderValue = HeaderValue::from_static("public, max-age=60");

async fn home(State(state): State<Shared>, headers: HeaderMap) -> Response {
    match state.publisher.home() {
        Some(page) => serve_document(&page, HTML, &headers, HOME_CACHE),
        None => not_found().await,
    }
}

async fn feed(
    State(state): State<Shared>,
    Path(file): Path<String>,
    headers: HeaderMap,
) -> Response {
    feed_response(&state, &file, &headers)
}

/// `/feeds/{name}` is the HTML view; `/feeds/{name}.{atom,rss,json}` the documents.
fn feed_response(state: &Shared, file: &str, headers: &HeaderMap) -> Response {
    // A document's extension first: one lookup for the requests readers make.
    let document = file
        .rsplit_once('.')
        .and_then(|(name, ext)| Some((name, Format::from_extension(ext)?)));
    if document.is_none() {
        if let Some(rendered) = state.publisher.get(file) {
            return serve_document(rendered.html(), HTML, headers, feed_cache(&rendered));
        }
    }
    let found = document.and_then(|(name, format)| Some((state.publisher.get(name)?, format)));
    match found {
        Some((rendered, format)) => {
            let mut response = serve_document(
                rendered.document(format),
                format.content_type(),
                headers,
                feed_cache(&rendered),
            );
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

/// The `Cache-Control` of a feed's documents now: cacheable until its sources' next fetch
/// (see [`crate::publish::freshness::max_age`]), from the instant the last render or source
/// read kept, without a store read.
fn feed_cache(rendered: &RenderedFeed) -> HeaderValue {
    let max_age = rendered.max_age(chrono::Utc::now());
    HeaderValue::from_str(&format!("public, max-age={max_age}"))
        .unwrap_or_else(|_| HeaderValue::from_static("public, max-age=5"))
}

/// The usual security headers on every response; the strict policy of HTML pages (no
/// script, our stylesheet by hash) on everything, since nothing else we serve needs more.
fn add_security_headers(headers: &mut HeaderMap) {
    static POLICY: std::sync::OnceLock<Option<HeaderValue>> = std::sync::OnceLock::new();
    let policy = POLICY.get_or_init(|| {
        HeaderValue::from_str(crate::publish::page::content_security_policy()).ok()
    });
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

async fn status(State(state): State<Shared>) -> Response {
    match read_reports(&state).await {
        Ok(reports) => ([(header::CACHE_CONTROL, "no-cache")], axum::Json(reports)).into_response(),
        Err(err) => (StatusCode::SERVICE_UNAVAILABLE, format!("{err}\n")).into_response(),
    }
}

/// 200 when the store is reachable, answers, takes writes and the scheduler beats; else
/// 503 with every reason, one a line (a full disk: "store write failed: No space left on
/// device ..."; a database gone: "store unreachable: ...").
async fn healthz(State(state): State<Shared>) -> Response {
    let mut reasons = Vec::new();
    // The engine's own word on reachability first: a read of an unreachable database would
    // only wait its second to say less.
    let outage = state.store.outage().borrow().clone();
    match outage {
        Some(reason) => reasons.push(format!("store unreachable: {reason}")),
        None => {
            if !crate::store::answers(&state.store).await {
                reasons.push("store unavailable".to_string());
            }
        }
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

/// `doc` (or 304) as `content_type`, negotiating gzip, with its validators and
/// `cache_control`.
fn serve_document(
    doc: &Document,
    content_type: &'static str,
    headers: &HeaderMap,
    cache_control: HeaderValue,
) -> Response {
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
    h.insert(header::CACHE_CONTROL, cache_control);
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

    fn limits(max_connections: usize, max_connections_per_ip: usize) -> ConnectionLimits {
        ConnectionLimits {
            header_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            max_connections,
            max_connections_per_ip,
        }
    }

    fn client(ip: &str) -> Client {
        Client::of(ip.parse().expect("an address"))
    }

    #[test]
    fn a_client_is_an_ipv4_address_or_an_ipv6_slash_64() {
        assert_eq!(client("2001:db8:1:2::1"), client("2001:db8:1:2:ffff::9"));
        assert_ne!(client("2001:db8:1:2::1"), client("2001:db8:1:3::1"));
        assert_eq!(client("::ffff:192.0.2.1"), client("192.0.2.1"));
        assert_ne!(client("192.0.2.1"), client("192.0.2.2"));
    }

    #[test]
    fn the_caps_refuse_past_the_per_address_cap_and_keep_a_quarter_for_light_addresses() {
        let limits = limits(1024, 64);
        let mut counts = Counts::default();
        let admit_all = |counts: &mut Counts, client, n| {
            for _ in 0..n {
                assert_eq!(counts.admit(client, &limits), Ok(()));
            }
        };
        // Twelve addresses at their cap hold three quarters of the slots.
        for n in 0..12 {
            admit_all(&mut counts, Client::V4(n), 64);
            assert_eq!(
                counts.admit(Client::V4(n), &limits),
                Err(Refusal::PerAddress)
            );
        }
        assert_eq!(counts.open, 768);
        // Past that, an address gets its first few connections only.
        admit_all(&mut counts, Client::V4(100), LIGHT);
        assert_eq!(counts.admit(Client::V4(100), &limits), Err(Refusal::Total));
        for n in 101..132 {
            admit_all(&mut counts, Client::V4(n), LIGHT);
        }
        assert_eq!(counts.open, 1024);
        assert_eq!(counts.admit(Client::V4(200), &limits), Err(Refusal::Total));
        // A connection that closes gives its slot back, and its address's count.
        counts.release(Client::V4(131));
        assert_eq!(counts.admit(Client::V4(200), &limits), Ok(()));
        for _ in 0..64 {
            counts.release(Client::V4(0));
        }
        assert!(!counts.by_client.contains_key(&Client::V4(0)));
        assert_eq!(counts.open, 1024 - 64);
    }

    #[test]
    fn one_address_never_holds_every_slot_whatever_the_per_address_cap() {
        for max in [1, 2, 3, 4, 5, 8, 100, 1024] {
            let limits = limits(max, usize::MAX);
            let mut counts = Counts::default();
            while counts.admit(Client::V4(1), &limits).is_ok() {}
            let others = max - counts.open;
            assert!(others >= max / 4, "{others} of {max} slots left for others");
            assert!(others > 0 || max < 4, "no slot left of {max}");
        }
    }

    #[test]
    fn the_refusal_is_one_whole_http_response() {
        let text = std::str::from_utf8(BUSY).expect("ascii");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head");
        assert!(head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"));
        let length = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length: "))
            .and_then(|v| v.parse::<usize>().ok());
        assert_eq!(length, Some(body.len()));
    }

    /// A connected pair: a writer with a small send buffer, and its peer.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_send_buffer_size(32 * 1024).expect("sndbuf");
        let addr = listener.local_addr().expect("addr");
        let (writer, accepted) = tokio::join!(socket.connect(addr), listener.accept());
        (writer.expect("connect"), accepted.expect("accept").0)
    }

    fn guarded(stream: TcpStream, write_timeout: Duration) -> (Guarded, Arc<Metrics>) {
        let metrics = Arc::new(Metrics::new());
        let admission = Arc::new(Admission::new(limits(4, 4), metrics.clone()));
        let slot = Admission::admit(&admission, [127, 0, 0, 1].into()).expect("a slot");
        (Guarded::new(stream, write_timeout, slot), metrics)
    }

    #[tokio::test]
    async fn a_write_that_makes_no_progress_for_write_timeout_fails() {
        use tokio::io::AsyncWriteExt;
        let (writer, _reader_that_never_reads) = pair().await;
        let (mut io, metrics) = guarded(writer, Duration::from_millis(300));
        let chunk = vec![0u8; 65536];
        let started = Instant::now();
        let err = loop {
            if let Err(err) = io.write_all(&chunk).await {
                break err;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never timed out"
            );
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("write_timeout"), "{err}");
        assert!(started.elapsed() >= Duration::from_millis(300));
        let text = metrics.encode(&[]);
        assert!(
            text.contains("feedmill_http_connections_timed_out_total{reason=\"write_timeout\"} 1"),
            "{text}"
        );
        drop(io);
        assert!(text.contains("feedmill_http_connections 1"), "{text}");
        assert!(metrics.encode(&[]).contains("feedmill_http_connections 0"));
    }

    #[tokio::test]
    async fn writes_to_a_slow_reader_that_keeps_reading_never_time_out() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (writer, mut reader) = pair().await;
        let (mut io, _metrics) = guarded(writer, Duration::from_millis(500));
        // A read of 64 KiB (a loopback segment) every 0.1 s: each lets the writer go on.
        let slow_reader = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            let mut total = 0;
            loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                match reader.read(&mut buf).await {
                    Ok(0) | Err(_) => return total,
                    Ok(n) => total += n,
                }
            }
        });
        // Longer than write_timeout in all, with every write waiting on the reader.
        let chunk = vec![0u8; 16384];
        let started = Instant::now();
        let (mut written, mut longest_wait) = (0, Duration::ZERO);
        while started.elapsed() < Duration::from_millis(1500) {
            let write = Instant::now();
            io.write_all(&chunk)
                .await
                .expect("progress keeps the connection");
            longest_wait = longest_wait.max(write.elapsed());
            written += chunk.len();
        }
        io.shutdown().await.expect("shutdown");
        drop(io);
        let read = slow_reader.await.expect("reader");
        assert_eq!(read, written);
        assert!(
            longest_wait >= Duration::from_millis(50),
            "the writer never waited for the reader: {longest_wait:?}"
        );
    }

    #[tokio::test]
    async fn healthz_answers_503_with_the_reason_while_the_store_is_unreachable() {
        use crate::render::tests::{shared, Replicated};
        let dir = tempfile::tempdir().expect("tempdir");
        let store = |outage: Option<&str>| -> crate::store::SharedStore {
            Arc::new(Replicated {
                inner: crate::store::open_at(&dir.path().join("store")).expect("opens"),
                changed: std::collections::HashMap::new(),
                outage: outage.map(str::to_string),
            })
        };
        let answer = |state: Shared| async move {
            state.health.beat();
            let response = healthz(State(state)).await;
            let status = response.status();
            let body = axum::body::to_bytes(response.into_body(), 4096)
                .await
                .expect("body");
            (status, String::from_utf8_lossy(&body).into_owned())
        };
        let (status, body) = answer(shared(store(None))).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
        let (status, body) = answer(shared(store(Some("connection refused")))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "store unreachable: connection refused\n");
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
