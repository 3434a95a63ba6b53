//! What feedmill knows of one source between fetches.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// What we know of one source between fetches.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SourceState {
    /// The URL the config gave when this state began; a new one starts the state afresh.
    pub config_url: String,
    /// A digest of the source's whole config; a change re-enables a disabled source.
    pub config_fingerprint: String,
    /// The URL fetched: the configured one, or where permanent redirects or autodiscovery
    /// led.
    pub url: String,
    /// The feed's own title.
    pub title: Option<String>,
    /// The feed's home page.
    pub site_link: Option<String>,
    /// When the last fetch ended.
    pub last_fetch: Option<DateTime<Utc>>,
    /// The HTTP status of the last fetch (200 for files), if there was an answer.
    pub last_status: Option<u16>,
    /// Why the last fetch failed, in words; `None` when it worked.
    pub last_error: Option<String>,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// When the next fetch is planned.
    pub next_fetch: Option<DateTime<Utc>>,
    /// No fetch before this time (backoff, `Retry-After`, the server's freshness), even
    /// across restarts.
    pub hold_until: Option<DateTime<Utc>>,
    /// Set when the source answered 410 Gone; it is not fetched until its config changes.
    pub disabled: bool,
    /// Entries stored for this source.
    pub items: u64,
    /// The validators of the last 200 response.
    pub validators: Validators,
    /// The newest sort time ever stored for this source: never older than any of its
    /// entries (pruning and updates leave it), so that reading newest first across thousands
    /// of sources opens only those that can come first. `None` for stores older than it.
    pub newest: Option<DateTime<Utc>>,
}

impl SourceState {
    /// The URL fetched: where redirects or autodiscovery led, else the configured one.
    pub fn url_or(&self, configured: &url::Url) -> String {
        if self.url.is_empty() {
            configured.to_string()
        } else {
            self.url.clone()
        }
    }
}

/// The validators of the last response, sent back for a conditional GET.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Validators {
    /// The last `ETag`.
    pub etag: Option<String>,
    /// The last `Last-Modified`.
    pub last_modified: Option<String>,
    /// When the URL fetched is an HTML page: the feed link it led to and that feed's own
    /// validators. [`Fetcher::fetch`] never sends these; the refresh sends them to that link
    /// only, never to the page (whose own validators are `etag` and `last_modified`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed_link: Option<Box<LinkValidators>>,
}

/// A discovered feed link and the validators of its last answer.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkValidators {
    /// The link as the page wrote it (absolute), before any redirect.
    pub url: String,
    /// The feed's last `ETag`.
    pub etag: Option<String>,
    /// The feed's last `Last-Modified`.
    pub last_modified: Option<String>,
}
