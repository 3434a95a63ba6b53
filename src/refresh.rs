//! One refresh of one source: fetch -> parse -> store, and the source state that records it.
//!
//! Used by the daemon's scheduler and by `feedmill fetch` alike, so both behave the same.

use chrono::Utc;

use crate::config::SourceConfig;
use crate::fetch::{FetchOutcome, Fetcher};
use crate::parse::parse_feed;
use crate::store::{CommitSummary, SourceState, Store, StoreError};

/// How a refresh went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// New content was parsed and stored.
    Stored {
        /// The HTTP status (200 for files).
        status: u16,
        /// Entries parsed from the document.
        entries: usize,
        /// What changed in the store.
        summary: CommitSummary,
    },
    /// The source answered 304 (or the file is unchanged): nothing to parse.
    NotModified,
    /// The fetch or the parse failed; the reason is also in the source's state.
    Failed(String),
}

impl RefreshOutcome {
    /// Whether entries visible in output feeds may have changed.
    pub fn changed(&self) -> bool {
        matches!(self, RefreshOutcome::Stored { summary, .. } if summary.changed())
    }
}

/// Fetches `source` once, stores what it gives and records the outcome in its state.
/// Only a store failure is an error; a failing source is an outcome.
pub async fn refresh(
    source: &SourceConfig,
    fetcher: &Fetcher,
    store: &Store,
) -> Result<RefreshOutcome, StoreError> {
    let mut state = store.source_state(&source.name)?.unwrap_or_default();
    let configured_url = source.url.to_string();
    if state.url != configured_url {
        // A new or changed URL: validators of another document must not be sent.
        state = SourceState {
            url: configured_url,
            items: state.items,
            ..SourceState::default()
        };
    }
    let fetched = fetcher.fetch(&source.url, &state.validators).await;
    let now = Utc::now();
    state.last_fetch = Some(now);
    state.next_fetch = source.schedule.next_fetch(&source.name, now);
    let body = match fetched {
        Ok(FetchOutcome::NotModified) => {
            state.last_status = Some(304);
            state.last_error = None;
            state.consecutive_failures = 0;
            store.save_state(&source.name, &state)?;
            return Ok(RefreshOutcome::NotModified);
        }
        Ok(FetchOutcome::Body(body)) => body,
        Err(err) => {
            state.last_status = err.status();
            return fail(store, source, state, err.to_string());
        }
    };
    state.last_status = Some(body.status);
    let parsed = match parse_feed(&body.bytes, body.content_type.as_deref(), &body.final_url) {
        Ok(parsed) => parsed,
        Err(err) => return fail(store, source, state, err.to_string()),
    };
    state.last_error = None;
    state.consecutive_failures = 0;
    state.validators = body.validators;
    state.title = parsed.title;
    state.site_link = parsed.site_link;
    let summary = store.commit_fetch(&source.name, &mut state, &parsed.entries, now)?;
    store.flush().await?;
    tracing::debug!(source = %source.name, url = %source.url, new = summary.new, updated = summary.updated, "stored");
    Ok(RefreshOutcome::Stored {
        status: body.status,
        entries: parsed.entries.len(),
        summary,
    })
}

fn fail(
    store: &Store,
    source: &SourceConfig,
    mut state: SourceState,
    reason: String,
) -> Result<RefreshOutcome, StoreError> {
    tracing::warn!(source = %source.name, url = %source.url, error = %reason, "fetch failed");
    state.last_error = Some(reason.clone());
    state.consecutive_failures += 1;
    store.save_state(&source.name, &state)?;
    Ok(RefreshOutcome::Failed(reason))
}
