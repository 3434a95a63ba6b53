//! Fetching: one HTTP(S) or `file://` request per source, bounded in time, size and concurrency.
//!
//! Every read is bounded: the whole request (body included) by `timeout`, the body by
//! `max_body` counted after decompression (so a gzip bomb stops at the limit instead of
//! inflating), and the number of requests in flight by a global and a per-host semaphore.
//! Content-Length is never trusted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    NotModified,
    /// A new body.
    Body(FetchedBody),
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
    /// The validators to send next time.
    pub validators: Validators,
}

/// Why a fetch failed. The messages are meant for the operator's eyes in `status.json`.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The whole request took longer than `timeout`.
    #[error("timed out after {}", humantime::format_duration(*.0))]
    Timeout(Duration),
    /// The body was longer than `max_body` once decompressed.
    #[error("body larger than {}", bytesize::ByteSize::b(*.0).display().iec())]
    TooLarge(u64),
    /// The server answered with an error status.
    #[error("HTTP {status}{}", reason.map(|r| format!(" {r}")).unwrap_or_default())]
    Status {
        /// The status code.
        status: u16,
        /// Its canonical reason phrase.
        reason: Option<&'static str>,
    },
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
}

/// The fetcher shared by all sources.
pub struct Fetcher {
    client: reqwest::Client,
    timeout: Duration,
    max_body: u64,
    in_flight: Arc<Semaphore>,
    per_host_limit: usize,
    per_host: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// The most redirects followed before a fetch fails (reqwest's default, and Miniflux's).
const MAX_REDIRECTS: usize = 10;
/// Connecting alone should never take most of the request's time.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

impl Fetcher {
    /// Builds the HTTP client with the configured limits.
    pub fn new(config: &FetchConfig) -> Result<Fetcher, FetchError> {
        let client = reqwest::Client::builder()
            .user_agent(config.user_agent.clone())
            .timeout(config.timeout)
            .connect_timeout(CONNECT_TIMEOUT.min(config.timeout))
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .gzip(true)
            .deflate(true)
            .brotli(true)
            .build()
            .map_err(|err| FetchError::Transport(format!("cannot build HTTP client: {err}")))?;
        Ok(Fetcher {
            client,
            timeout: config.timeout,
            max_body: config.max_body,
            in_flight: Arc::new(Semaphore::new(config.concurrency)),
            per_host_limit: config.per_host,
            per_host: Mutex::new(HashMap::new()),
        })
    }

    /// Fetches `url`, sending `validators` for a conditional GET.
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
        let _global = self.in_flight.acquire().await.ok();
        let _host = host_slots.acquire().await.ok();
        match tokio::time::timeout(self.timeout, self.fetch_http(url, validators)).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout(self.timeout)),
        }
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
        let mut request = self.client.get(url.clone()).header(
            header::ACCEPT,
            "application/atom+xml, application/rss+xml, application/feed+json, application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.8",
        );
        if let Some(etag) = &validators.etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        if let Some(last_modified) = &validators.last_modified {
            request = request.header(header::IF_MODIFIED_SINCE, last_modified);
        }
        let response = request.send().await.map_err(|err| self.transport(err))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(FetchOutcome::NotModified);
        }
        if !status.is_success() {
            return Err(FetchError::Status {
                status: status.as_u16(),
                reason: status.canonical_reason(),
            });
        }
        let final_url = response.url().clone();
        let headers = response.headers().clone();
        let mut body = BytesMut::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|err| self.transport(err))?;
            if body.len() as u64 + chunk.len() as u64 > self.max_body {
                return Err(FetchError::TooLarge(self.max_body));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(FetchOutcome::Body(FetchedBody {
            status: status.as_u16(),
            bytes: body.freeze(),
            content_type: header_string(&headers, header::CONTENT_TYPE),
            final_url,
            validators: Validators {
                etag: header_string(&headers, header::ETAG),
                last_modified: header_string(&headers, header::LAST_MODIFIED),
            },
        }))
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
            return Ok(FetchOutcome::NotModified);
        }
        let mut bytes = Vec::new();
        file.take(self.max_body + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(file_error)?;
        if bytes.len() as u64 > self.max_body {
            return Err(FetchError::TooLarge(self.max_body));
        }
        Ok(FetchOutcome::Body(FetchedBody {
            status: 200,
            bytes: Bytes::from(bytes),
            content_type: None,
            final_url: url.clone(),
            validators: Validators {
                etag: None,
                last_modified: modified,
            },
        }))
    }

    fn transport(&self, err: reqwest::Error) -> FetchError {
        if err.is_timeout() {
            return FetchError::Timeout(self.timeout);
        }
        if err.is_redirect() {
            return FetchError::Transport(format!("more than {MAX_REDIRECTS} redirects"));
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
