//! Fetching: one HTTP(S) or `file://` request per source, bounded in time, size and concurrency.
//!
//! Every read is bounded: the whole request (body included) by `timeout`, the body by
//! `max_body` counted after decompression (so a gzip bomb stops at the limit instead of
//! inflating), and the number of requests in flight by the refresh slots
//! ([`Fetcher::refresh_slot`], which every fetch is made under) and a per-host semaphore.
//! Content-Length is never trusted.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap, HeaderValue};
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;
use url::Url;

use crate::config::FetchConfig;

/// The validators of the last response, sent back for a conditional GET.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validators {
    /// The last `ETag`.
    pub etag: Option<String>,
    /// The last `Last-Modified`.
    pub last_modified: Option<String>,
}

/// A successful fetch.
#[derive(Debug)]
pub enum FetchOutcome {
    /// The source has not changed since the validators were issued (HTTP 304).
    NotModified {
        /// How long the server says the document stays fresh.
        fresh_for: Option<Duration>,
    },
    /// A new body.
    Body(Box<FetchedBody>),
}

/// A body and what came with it.
#[derive(Debug)]
pub struct FetchedBody {
    /// The HTTP status (200 for files).
    pub status: u16,
    /// The body, decompressed.
    pub bytes: Bytes,
    /// The `Content-Type` header, if any (it may name the charset).
    pub content_type: Option<String>,
    /// The URL the body came from, after redirects.
    pub final_url: Url,
    /// Set when every redirect on the way was permanent (301/308): where the source now lives.
    pub moved_to: Option<Url>,
    /// The validators to send next time.
    pub validators: Validators,
    /// How long the server says the document stays fresh (`Cache-Control: max-age`, `Expires`).
    pub fresh_for: Option<Duration>,
}

/// Why a fetch failed. The messages are meant for the operator's eyes in `status.json`.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The whole request took longer than `timeout`.
    #[error("timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The body was longer than `max_body` once decompressed.
    #[error("body larger than {}", human_size(*.0))]
    TooLarge(u64),
    /// The server answered with an error status.
    #[error("HTTP {status}{}{}", reason.map(|r| format!(" {r}")).unwrap_or_default(),
        retry_after.map(|d| format!(" (retry after {})", humantime::format_duration(d))).unwrap_or_default())]
    Status {
        /// The status code.
        status: u16,
        /// Its canonical reason phrase.
        reason: Option<&'static str>,
        /// The server's `Retry-After`, for 429 and 503.
        retry_after: Option<Duration>,
    },
    /// Redirects went round in a circle or on for too long.
    #[error("redirect loop: {0}")]
    RedirectLoop(String),
    /// Connecting, TLS, redirects or reading the body failed.
    #[error("{0}")]
    Transport(String),
    /// A `file://` source could not be read.
    #[error("cannot read {path}: {source}")]
    File {
        /// The local path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl FetchError {
    /// The HTTP status behind the error, if the server answered at all.
    pub fn status(&self) -> Option<u16> {
        match self {
            FetchError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long the server asked us to wait (429/503 `Retry-After`).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the server never answered (connect, TLS, DNS, timeout): the failures that a
    /// network outage on our side causes too.
    pub fn no_answer(&self) -> bool {
        matches!(self, FetchError::Timeout(_) | FetchError::Transport(_))
    }
}

/// The fetcher shared by all sources.
pub struct Fetcher {
    client: reqwest::Client,
    timeout: Duration,
    max_body: u64,
    /// Refreshes under way (fetch, parse, store), at most `concurrency`, and so the requests
    /// in flight too: a fetched body and
    /// its parsed entries are held until stored, so this bounds the memory of a start with
    /// thousands of sources due at once (without it, 800 MiB for ten thousand).
    refreshing: Semaphore,
    /// Parses and commits at once: [`CPU_SLOTS_PER_CORE`] per core.
    cpu_work: Semaphore,
    per_host_limit: usize,
    per_host: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// When any server last answered anything (ms since the epoch; 0: never).
    last_answer_ms: AtomicI64,
}

/// How recently some server must have answered for a silent one to count as failing,
/// rather than our own network being down.
const NETWORK_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The most redirects followed before a fetch fails (reqwest's default, and Miniflux's).
const MAX_REDIRECTS: usize = 10;
/// Connecting alone should never take most of the request's time.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses and commits at once per core. Not one: a commit also waits (for sled's log, for
/// the allocator), and with one per core a cold refresh left the cores idle a quarter of
/// the time; three took 25 % off its time, four no more. Each holds its entries in memory,
/// so the number stays small.
const CPU_SLOTS_PER_CORE: usize = 3;

impl Fetcher {
    /// Builds the HTTP client with the configured limits.
    pub fn new(config: &FetchConfig) -> Result<Fetcher, FetchError> {
        let client = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .timeout(config.timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(config.timeout))
            // Redirects are followed by hand, to learn whether a chain was permanent and to
            // refuse anything but http(s) targets.
            .redirect(reqwest::redirect::Policy::none())
            .gzip(true)
            .deflate(true)
            .brotli(true)
            .build()
            .map_err(|err| FetchError::Transport(format!("cannot build HTTP client: {err}")))?;
        Ok(Fetcher {
            client,
            timeout: config.timeout,
            max_body: config.max_body,
            refreshing: Semaphore::new(config.concurrency),
            cpu_work: Semaphore::new(
                CPU_SLOTS_PER_CORE
                    * std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get),
            ),
            per_host_limit: config.per_host,
            per_host: Mutex::new(HashMap::new()),
            last_answer_ms: AtomicI64::new(0),
        })
    }

    /// Fetches `url`, sending `validators` for a conditional GET. Call it under a
    /// [`Fetcher::refresh_slot`]: that is what bounds the requests in flight.
    pub async fn fetch(
        &self,
        url: &Url,
        validators: &Validators,
    ) -> Result<FetchOutcome, FetchError> {
        if url.scheme() == "file" {
            return self.fetch_file(url, validators).await;
        }
        let host_slots = self.host_semaphore(url.host_str().unwrap_or_default());
        // Semaphores are never closed, so acquiring cannot fail; a closed one would only
        // mean no limit, which is the safer failure for a fetch in progress.
        let _host = host_slots.acquire().await.ok();
        match tokio::time::timeout(self.timeout, self.fetch_http(url, validators)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout(self.timeout)),
        }
    }

    /// A slot for one refresh of a source, from its fetch to its commit. Semaphores are never
    /// closed, so this always gets one (after waiting its turn).
    pub async fn refresh_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.refreshing.acquire().await.ok()
    }

    /// A slot for CPU-bound work (parsing, storing); see [`Fetcher::refresh_slot`].
    pub async fn cpu_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.cpu_work.acquire().await.ok()
    }

    /// Whether any server answered (with any status) within the last fifteen minutes.
    pub fn network_answered_recently(&self) -> bool {
        let last = self.last_answer_ms.load(Ordering::Relaxed);
        last > 0 && now_ms().saturating_sub(last) < NETWORK_WINDOW.as_millis() as i64
    }

    fn host_semaphore(&self, host: &str) -> Arc<Semaphore> {
        let mut hosts = self.per_host.lock().unwrap_or_else(|p| p.into_inner());
        hosts
            .entry(host.to_ascii_lowercase())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_host_limit)))
            .clone()
    }

    async fn fetch_http(
        &self,
        url: &Url,
        validators: &Validators,
    ) -> Result<FetchOutcome, FetchError> {
        let mut current = url.clone();
        let mut visited = vec![current.clone()];
        let mut all_permanent = true;
        let response = loop {
            let response = self.send(&current, validators).await?;
            let status = response.status();
            if !status.is_redirection() || status == reqwest::StatusCode::NOT_MODIFIED {
                break response;
            }
            let next = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|location| current.join(location).ok())
                .ok_or_else(|| {
                    FetchError::Transport(format!("HTTP {status} without a usable Location header"))
                })?;
            if !matches!(next.scheme(), "http" | "https") {
                return Err(FetchError::Transport(format!(
                    "redirect to {next} refused: only http and https are followed"
                )));
            }
            if visited.contains(&next) {
                return Err(FetchError::RedirectLoop(format!(
                    "{next} redirects back to itself"
                )));
            }
            if visited.len() > MAX_REDIRECTS {
                return Err(FetchError::RedirectLoop(format!(
                    "more than {MAX_REDIRECTS} redirects, last to {next}"
                )));
            }
            all_permanent &= matches!(status.as_u16(), 301 | 308);
            visited.push(next.clone());
            current = next;
        };
        let moved_to = (all_permanent && visited.len() > 1).then(|| current.clone());
        let status = response.status();
        let headers = response.headers().clone();
        let fresh_for = freshness(&headers);
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(FetchOutcome::NotModified { fresh_for });
        }
        if !status.is_success() {
            let retry_after = matches!(status.as_u16(), 429 | 503)
                .then(|| header_string(&headers, header::RETRY_AFTER))
                .flatten()
                .and_then(|v| parse_retry_after(&v, SystemTime::now()));
            return Err(FetchError::Status {
                status: status.as_u16(),
                reason: status.canonical_reason(),
                retry_after,
            });
        }
        let mut body = BytesMut::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|err| self.transport(err))?;
            if body.len() as u64 + chunk.len() as u64 > self.max_body {
                return Err(FetchError::TooLarge(self.max_body));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(FetchOutcome::Body(Box::new(FetchedBody {
            status: status.as_u16(),
            bytes: body.freeze(),
            content_type: header_string(&headers, header::CONTENT_TYPE),
            final_url: current,
            moved_to,
            validators: Validators {
                etag: header_string(&headers, header::ETAG),
                last_modified: header_string(&headers, header::LAST_MODIFIED),
            },
            fresh_for,
        })))
    }

    async fn send(
        &self,
        url: &Url,
        validators: &Validators,
    ) -> Result<reqwest::Response, FetchError> {
        let mut request = self.client.get(url.clone()).header(
            header::ACCEPT,
            "application/atom+xml, application/rss+xml, application/feed+json, application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.5, */*;q=0.1",
        );
        if let Some(etag) = &validators.etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        if let Some(last_modified) = &validators.last_modified {
            request = request.header(header::IF_MODIFIED_SINCE, last_modified);
        }
        let response = request.send().await.map_err(|err| self.transport(err))?;
        self.last_answer_ms.store(now_ms(), Ordering::Relaxed);
        Ok(response)
    }

    /// Local files answer like a server that sends `Last-Modified` from the file's mtime.
    async fn fetch_file(
        &self,
        url: &Url,
        validators: &Validators,
    ) -> Result<FetchOutcome, FetchError> {
        let path = url
            .to_file_path()
            .map_err(|()| FetchError::Transport(format!("{url} is not a local file path")))?;
        let file_error = |source| FetchError::File {
            path: path.display().to_string(),
            source,
        };
        let file = tokio::fs::File::open(&path).await.map_err(file_error)?;
        let modified = file
            .metadata()
            .await
            .and_then(|m| m.modified())
            .ok()
            .map(httpdate::fmt_http_date);
        if modified.is_some() && modified == validators.last_modified {
            return Ok(FetchOutcome::NotModified { fresh_for: None });
        }
        let mut bytes = Vec::new();
        file.take(self.max_body + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(file_error)?;
        if bytes.len() as u64 > self.max_body {
            return Err(FetchError::TooLarge(self.max_body));
        }
        Ok(FetchOutcome::Body(Box::new(FetchedBody {
            status: 200,
            bytes: Bytes::from(bytes),
            content_type: None,
            final_url: url.clone(),
            moved_to: None,
            validators: Validators {
                etag: None,
                last_modified: modified,
            },
            fresh_for: None,
        })))
    }

    fn transport(&self, err: reqwest::Error) -> FetchError {
        if err.is_timeout() {
            return FetchError::Timeout(self.timeout);
        }
        // reqwest's Display names only the outermost layer; the causes say what happened.
        let mut message = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        FetchError::Transport(message)
    }
}

fn header_string(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::to_string)
}

/// A size as people write it: "8 MiB", "512 KiB", else bytesize's rounding.
pub fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    match bytes {
        b if b >= MIB && b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b >= KIB && b % KIB == 0 => format!("{} KiB", b / KIB),
        b => bytesize::ByteSize::b(b).display().iec().to_string(),
    }
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `Retry-After` as a delay from `now`: delta-seconds or an HTTP-date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// How long a response says it stays fresh: `Cache-Control: max-age`, else `Expires`.
fn freshness(headers: &HeaderMap) -> Option<Duration> {
    let max_age = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|directive| {
            let (name, value) = directive.split_once('=')?;
            (name.trim().eq_ignore_ascii_case("max-age"))
                .then(|| value.trim().trim_matches('"').parse::<u64>().ok())
                .flatten()
        });
    if let Some(seconds) = max_age {
        return Some(Duration::from_secs(seconds));
    }
    let expires = httpdate::parse_http_date(&header_string(headers, header::EXPIRES)?).ok()?;
    Some(
        expires
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_written() {
        assert_eq!(
            FetchError::TooLarge(8 * 1024 * 1024).to_string(),
            "body larger than 8 MiB"
        );
        assert_eq!(human_size(512 * 1024), "512 KiB");
        assert_eq!(human_size(1000), "1000 B");
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sat, 28 Nov 2026 10:00:00 GMT").expect("date");
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 10:05:00 GMT", now),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn freshness_reads_max_age_then_expires() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
        assert_eq!(freshness(&headers), Some(Duration::from_secs(3600)));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::EXPIRES,
            HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
        );
        assert_eq!(freshness(&headers), Some(Duration::ZERO));
        assert_eq!(freshness(&HeaderMap::new()), None);
    }
}
