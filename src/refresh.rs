//! One refresh of one source: fetch -> parse -> store, and the source state that records it,
//! including when the source may be fetched next.
//!
//! Used by the daemon's scheduler and by `feedmill fetch` alike, so both behave the same.
//!
//! Politeness rules live here: consecutive failures back off exponentially with jitter
//! (one minute doubling up to a day) whatever the schedule says; 429/503 `Retry-After` is
//! honoured; a server's `Cache-Control: max-age`/`Expires` and a feed's `<ttl>` may stretch
//! the interval but never shrink it; 410 Gone disables a source until its config changes.
//! A failure where no server answered at all does not count toward backoff while no server
//! has answered anyone recently: that is our own network being down, not the source.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};
use url::Url;

use crate::config::SourceConfig;
use crate::fetch::{FetchError, FetchOutcome, FetchedBody, Fetcher, Hop};
use crate::metrics::{Metrics, Outcome};
use crate::model::hex;
use crate::model::{CommitSummary, SourceState};
use crate::model::{LinkValidators, Validators};
use crate::parse::{parse_feed, ParseError, ParsedFeed};
use crate::store::{SharedStore, StoreError};

/// The first backoff after a failure; it doubles with each failure in a row.
const BACKOFF_BASE: Duration = Duration::from_secs(60);
/// The longest we ever wait because of failures, `Retry-After` or freshness.
pub const MAX_HOLD: Duration = Duration::from_secs(24 * 60 * 60);

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
    /// The source is disabled (410 Gone) until its config changes; nothing was fetched.
    Disabled,
    /// The fetch or the parse failed; the reason is also in the source's state.
    Failed(String),
}

impl RefreshOutcome {
    /// Whether entries visible in output feeds may have changed.
    pub fn changed(&self) -> bool {
        matches!(self, RefreshOutcome::Stored { summary, .. } if summary.changed())
    }
}

/// A digest of everything the config says about a source.
pub fn fingerprint(source: &SourceConfig) -> String {
    let text = format!(
        "{}\n{}\n{:?}\n{}\n{:?}",
        source.name,
        source.url,
        source.title,
        source.schedule.expression(),
        source.tags
    );
    hex(&Sha256::digest(text.as_bytes())[..8])
}

/// The state of `source` as the current config sees it: a new URL starts afresh, any other
/// config change re-enables a disabled source.
pub fn current_state(
    source: &SourceConfig,
    store: &SharedStore,
) -> Result<SourceState, StoreError> {
    let mut state = store.source_state(&source.name)?.unwrap_or_default();
    let configured_url = source.url.to_string();
    if state.config_url != configured_url {
        state = SourceState {
            config_url: configured_url.clone(),
            url: configured_url,
            items: state.items,
            ..SourceState::default()
        };
    }
    let print = fingerprint(source);
    if state.config_fingerprint != print {
        state.config_fingerprint = print;
        state.disabled = false;
        state.hold_until = None;
    }
    Ok(state)
}

/// When a source whose state is `state` should first be fetched by a daemon starting at
/// `now`: at once if it is due by its schedule, but never before a hold (backoff,
/// `Retry-After`) that survives restarts. `None` when it is disabled or never fires.
pub fn first_fetch(
    source: &SourceConfig,
    state: &SourceState,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    if state.disabled {
        return None;
    }
    let by_schedule = if source.schedule.is_due(state.last_fetch, now) {
        now
    } else {
        source.schedule.next_fetch(&source.name, now)?
    };
    Some(by_schedule.max(state.hold_until.unwrap_or(now)))
}

/// The delay after `failures` failures in a row: one minute doubling up to a day, plus up
/// to a fifth more at random so that sources failing together retry apart.
pub fn backoff(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let doubled =
        BACKOFF_BASE.saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(20)));
    let jitter = rand::rng().random_range(0.0..0.2);
    doubled.mul_f64(1.0 + jitter).min(MAX_HOLD)
}

/// Fetches `source` once (unless it is disabled), stores what it gives and records the
/// outcome and the next fetch time in its state. A failing source is an outcome, and so is
/// a store that cannot keep what it gave (see `store_failed`).
pub async fn refresh(
    source: &SourceConfig,
    fetcher: &Fetcher,
    store: &SharedStore,
    metrics: &Metrics,
) -> Result<RefreshOutcome, StoreError> {
    // A source with nothing stored stores its whole document: fewer of those at once.
    // A store that cannot be read is not cold: `refresh_once` reports it.
    let cold = matches!(
        store.source_state(&source.name),
        Ok(None | Some(SourceState { items: 0, .. }))
    );
    let _cold = if cold {
        fetcher.cold_slot().await
    } else {
        None
    };
    let _slot = fetcher.refresh_slot().await;
    let started = std::time::Instant::now();
    let mut bytes = 0;
    let outcome = match refresh_once(source, fetcher, store, &mut bytes).await {
        Ok(outcome) => outcome,
        Err(err) => store_failed(source, store, err),
    };
    let (kind, new) = match &outcome {
        RefreshOutcome::Stored { summary, .. } => (Outcome::stored, summary.new as u64),
        RefreshOutcome::NotModified => (Outcome::not_modified, 0),
        RefreshOutcome::Disabled => (Outcome::disabled, 0),
        RefreshOutcome::Failed(_) => (Outcome::failed, 0),
    };
    metrics.fetched(kind, started.elapsed().as_secs_f64(), bytes, new);
    Ok(outcome)
}

async fn refresh_once(
    source: &SourceConfig,
    fetcher: &Fetcher,
    store: &SharedStore,
    bytes: &mut u64,
) -> Result<RefreshOutcome, StoreError> {
    let mut state = current_state(source, store)?;
    if state.disabled {
        store.save_state(&source.name, &state)?;
        return Ok(RefreshOutcome::Disabled);
    }
    let url = Url::parse(&state.url).unwrap_or_else(|_| source.url.clone());
    let fetched = fetcher
        .fetch(&url, Hop::Start, &source.url, &state.validators)
        .await;
    let now = Utc::now();
    state.last_fetch = Some(now);

    let found = match fetched {
        Ok(FetchOutcome::NotModified { fresh_for }) => {
            state.last_status = Some(304);
            let known = state.validators.feed_link.clone();
            match known
                .as_deref()
                .and_then(|k| Some((Url::parse(&k.url).ok()?, k)))
            {
                // An unchanged page still links to the feed it linked to, which may have
                // changed: ask it (with its own validators).
                Some((link, known)) => follow_feed_link(&link, Some(known), source, fetcher, bytes)
                    .await
                    .map(|found| found.with_page_validators(&state.validators)),
                None => Ok(Found {
                    status: 304,
                    parsed: None,
                    moved_to: None,
                    validators: state.validators.clone(),
                    fresh_for,
                }),
            }
        }
        Ok(FetchOutcome::Body(body)) => {
            state.last_status = Some(body.status);
            *bytes = body.bytes.len() as u64;
            let known = state.validators.feed_link.as_deref();
            parse_or_discover(*body, known, source, fetcher, bytes).await
        }
        Err(err) => return fail_fetch(source, fetcher, store, state, now, err),
    };
    let found = match found {
        Ok(found) => found,
        Err(reason) => return fail(source, store, state, now, reason, true, None),
    };
    state.last_status = Some(found.status);
    if let Some(moved) = &found.moved_to {
        tracing::info!(source = %source.name, from = %state.url, to = %moved, "source moved permanently; following");
        state.url = moved.to_string();
    }
    state.last_error = None;
    state.consecutive_failures = 0;
    state.validators = found.validators;
    let Some(parsed) = found.parsed else {
        plan(source, &mut state, now, hold(found.fresh_for));
        store.save_state(&source.name, &state)?;
        return Ok(RefreshOutcome::NotModified);
    };
    state.title = parsed.title;
    state.site_link = parsed.site_link;
    let fresh_for = match (found.fresh_for, parsed.ttl) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    plan(source, &mut state, now, hold(fresh_for));
    let entries = parsed.entries.len();
    let summary = {
        // Encoding and writing thousands of entries is blocking work too.
        let (store, name) = (store.clone(), source.name.clone());
        let _cpu = fetcher.cpu_slot().await;
        tokio::task::spawn_blocking(move || {
            store.commit_fetch(&name, &mut state, &parsed.entries, now)
        })
        .await
        .map_err(|join| StoreError::Task(join.to_string()))??
    };
    tracing::debug!(source = %source.name, url = %url, new = summary.new, updated = summary.updated, "stored");
    Ok(RefreshOutcome::Stored {
        status: found.status,
        entries,
        summary,
    })
}

/// What a fetch led to: the feed to store (if it changed), and what to remember.
struct Found {
    /// The status of the document whose entries these are (the feed's, when an HTML page
    /// linked to it).
    status: u16,
    /// The feed; `None` when it answered 304.
    parsed: Option<ParsedFeed>,
    /// Where a 301/308 chain from the source's URL moved it; never a discovered link.
    moved_to: Option<Url>,
    /// The validators to send next time.
    validators: Validators,
    /// How long the server says the feed stays fresh.
    fresh_for: Option<Duration>,
}

impl Found {
    /// The source's URL is an HTML page: its own validators go with the feed link's.
    fn with_page_validators(mut self, page: &Validators) -> Found {
        self.validators.etag.clone_from(&page.etag);
        self.validators
            .last_modified
            .clone_from(&page.last_modified);
        self
    }
}

/// Parses a body; an HTML page that links to a feed is followed to that feed once. `known`
/// is the feed link of the last fetch and its validators.
async fn parse_or_discover(
    body: FetchedBody,
    known: Option<&LinkValidators>,
    source: &SourceConfig,
    fetcher: &Fetcher,
    bytes: &mut u64,
) -> Result<Found, String> {
    match parse_off_thread(&body, fetcher).await {
        Ok(parsed) => Ok(Found {
            status: body.status,
            parsed: Some(parsed),
            moved_to: body.moved_to,
            validators: body.validators,
            fresh_for: body.fresh_for,
        }),
        Err(ParseError::HtmlPage { links }) if !links.is_empty() => {
            let link = &links[0];
            let known = known.filter(|k| k.url == link.as_str());
            let found = follow_feed_link(link, known, source, fetcher, bytes).await?;
            Ok(Found {
                moved_to: body.moved_to,
                ..found.with_page_validators(&body.validators)
            })
        }
        Err(err) => Err(err.to_string()),
    }
}

/// Fetches and parses the feed an HTML page links to. The link never becomes the source's
/// URL (only a 301/308 chain moves that): the page is asked first every time, with its own
/// validators, and the feed's validators are kept with the link (`known`) and sent to it
/// alone. The link goes through the same checks of every hop as the source's URL.
async fn follow_feed_link(
    link: &Url,
    known: Option<&LinkValidators>,
    source: &SourceConfig,
    fetcher: &Fetcher,
    bytes: &mut u64,
) -> Result<Found, String> {
    let sent = Validators {
        etag: known.and_then(|k| k.etag.clone()),
        last_modified: known.and_then(|k| k.last_modified.clone()),
        feed_link: None,
    };
    let remember = |feed: &Validators| Validators {
        feed_link: Some(Box::new(LinkValidators {
            url: link.to_string(),
            etag: feed.etag.clone(),
            last_modified: feed.last_modified.clone(),
        })),
        ..Validators::default()
    };
    let feed = match fetcher.fetch(link, Hop::FeedLink, &source.url, &sent).await {
        Ok(FetchOutcome::Body(feed)) => *feed,
        Ok(FetchOutcome::NotModified { fresh_for }) if known.is_some() => {
            return Ok(Found {
                status: 304,
                parsed: None,
                moved_to: None,
                validators: remember(&sent),
                fresh_for,
            })
        }
        Ok(FetchOutcome::NotModified { .. }) => {
            return Err(format!(
                "not a feed: HTML page linking to {link}, which answered 304 to a plain GET"
            ))
        }
        // Refused before it was sent: the error says what of the link was refused (and
        // never quotes a link too long to fetch).
        Err(
            err @ (FetchError::Refused {
                hop: Hop::FeedLink, ..
            }
            | FetchError::UrlTooLong {
                hop: Hop::FeedLink, ..
            }
            | FetchError::LocalFile {
                hop: Hop::FeedLink, ..
            }
            | FetchError::Metadata {
                hop: Hop::FeedLink, ..
            }
            | FetchError::OwnNamePrivate {
                hop: Hop::FeedLink, ..
            }),
        ) => return Err(err.to_string()),
        Err(err) => {
            return Err(format!(
                "not a feed: HTML page linking to {link}, which failed: {err}"
            ))
        }
    };
    *bytes += feed.bytes.len() as u64;
    let parsed = parse_off_thread(&feed, fetcher)
        .await
        .map_err(|err| match err {
            // Discovery follows one link; the second page's own links (a publisher's, of any
            // length) are not quoted.
            ParseError::HtmlPage { .. } => format!(
                "HTML page linking to {link}, which is another HTML page, not a feed (one feed link is followed, no further)"
            ),
            err => format!("HTML page linking to {link}, which is {err}"),
        })?;
    Ok(Found {
        status: feed.status,
        parsed: Some(parsed),
        moved_to: None,
        validators: remember(&feed.validators),
        fresh_for: feed.fresh_for,
    })
}

/// Parsing is CPU work that can take a while (a 100,000-item feed, a 5 MB title); it runs on
/// the blocking pool so that it never stalls the timers and sockets of other sources.
async fn parse_off_thread(body: &FetchedBody, fetcher: &Fetcher) -> Result<ParsedFeed, ParseError> {
    let _cpu = fetcher.cpu_slot().await;
    let (bytes, content_type, url) = (
        body.bytes.clone(),
        body.content_type.clone(),
        body.final_url.clone(),
    );
    tokio::task::spawn_blocking(move || parse_feed(&bytes, content_type.as_deref(), &url))
        .await
        .unwrap_or_else(|join| Err(ParseError::NotAFeed(format!("the parser failed: {join}"))))
}

fn hold(duration: Option<Duration>) -> Option<Duration> {
    duration.map(|d| d.min(MAX_HOLD)).filter(|d| !d.is_zero())
}

/// Sets the next fetch: the schedule's next time, stretched (never shrunk) by `hold`.
fn plan(
    source: &SourceConfig,
    state: &mut SourceState,
    now: DateTime<Utc>,
    hold: Option<Duration>,
) {
    state.hold_until = hold
        .and_then(|h| chrono::Duration::from_std(h).ok())
        .map(|h| now + h);
    let scheduled = source.schedule.next_fetch(&source.name, now);
    state.next_fetch = match (scheduled, state.hold_until) {
        (Some(s), Some(h)) => Some(s.max(h)),
        (s, h) => s.or(h),
    };
}

fn fail_fetch(
    source: &SourceConfig,
    fetcher: &Fetcher,
    store: &SharedStore,
    mut state: SourceState,
    now: DateTime<Utc>,
    err: FetchError,
) -> Result<RefreshOutcome, StoreError> {
    state.last_status = err.status();
    if err.status() == Some(410) {
        state.disabled = true;
        state.next_fetch = None;
        state.hold_until = None;
        state.last_error = Some(
            "410 Gone: disabled (the source is gone; change its config to try again)".to_string(),
        );
        state.consecutive_failures += 1;
        tracing::warn!(source = %source.name, url = %state.url, "410 Gone: source disabled until its config changes");
        store.save_state(&source.name, &state)?;
        return Ok(RefreshOutcome::Failed("410 Gone: disabled".to_string()));
    }
    let counted = !err.no_answer() || fetcher.network_answered_recently();
    let moved_away = state.url != source.url.as_str();
    let reason = if moved_away
        && matches!(
            err,
            FetchError::Refused {
                hop: Hop::Start,
                ..
            } | FetchError::UrlTooLong {
                hop: Hop::Start,
                ..
            }
        ) {
        // Where a 301/308 chain once led is no longer allowed (allow_private turned off, the
        // name now resolves to a private address, a URL stored before URLs were bounded):
        // start again from the configured URL, which the operator vouches for.
        state.url = source.url.to_string();
        state.validators = Validators::default();
        format!(
            "{err}; the next fetch starts again from the configured URL {}",
            source.url
        )
    } else if counted {
        err.to_string()
    } else {
        format!("{err} (no server has answered lately: our own network may be down; not counted toward backoff)")
    };
    fail(
        source,
        store,
        state,
        now,
        reason,
        counted,
        err.retry_after(),
    )
}

fn fail(
    source: &SourceConfig,
    store: &SharedStore,
    mut state: SourceState,
    now: DateTime<Utc>,
    reason: String,
    counted: bool,
    retry_after: Option<Duration>,
) -> Result<RefreshOutcome, StoreError> {
    tracing::warn!(source = %source.name, url = %state.url, error = %reason, "fetch failed");
    state.last_error = Some(reason.clone());
    if counted {
        state.consecutive_failures += 1;
    }
    let wait = backoff(state.consecutive_failures).max(retry_after.unwrap_or_default());
    plan(source, &mut state, now, hold(Some(wait)));
    store.save_state(&source.name, &state)?;
    Ok(RefreshOutcome::Failed(reason))
}

/// What a source's `last_error` starts with when the store could not keep its fetch.
pub const STORE_WRITE_FAILED: &str = "store write failed";
/// What a source's `last_error` starts with when the store could not be read for it.
pub const STORE_READ_FAILED: &str = "store read failed";

/// Whether a source's `last_error` says its last fetch failed in the store.
pub fn is_store_failure(last_error: Option<&str>) -> bool {
    last_error
        .is_some_and(|e| e.starts_with(STORE_WRITE_FAILED) || e.starts_with(STORE_READ_FAILED))
}

/// A refresh the store failed (a full disk, a read-only or failing one): the source's
/// failure, as a failed fetch is, so that it backs off instead of being fetched again at
/// once, and `/status.json` says why. The state recorded is the one before this fetch,
/// without its validators: the next fetch is unconditional and stores in full whatever this
/// one could not (a write sled accepted may be lost with its validators). When that state
/// cannot be written either, the store keeps it in memory and answers it in its place.
fn store_failed(source: &SourceConfig, store: &SharedStore, err: StoreError) -> RefreshOutcome {
    let reason = match &err {
        StoreError::Write { .. } | StoreError::Reopening(_) => {
            format!("{STORE_WRITE_FAILED}: {}", err.reason())
        }
        other => format!("{STORE_READ_FAILED}: {}", other.reason()),
    };
    let now = Utc::now();
    let mut state = current_state(source, store).unwrap_or_else(|_| SourceState {
        config_url: source.url.to_string(),
        url: source.url.to_string(),
        config_fingerprint: fingerprint(source),
        ..SourceState::default()
    });
    state.last_fetch = Some(now);
    state.last_error = Some(reason.clone());
    state.consecutive_failures += 1;
    state.validators = Validators::default();
    let wait = backoff(state.consecutive_failures);
    plan(source, &mut state, now, hold(Some(wait)));
    tracing::error!(source = %source.name, url = %state.url, error = %reason, next_fetch = ?state.next_fetch, "cannot store the fetch; backing off");
    // Kept in memory by the store when it cannot be written (see `Store::save_state`).
    let _ = store.save_state(&source.name, &state);
    RefreshOutcome::Failed(reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_minute_to_a_day_with_jitter() {
        assert_eq!(backoff(0), Duration::ZERO);
        for (failures, base) in [(1, 60), (2, 120), (3, 240), (6, 1920)] {
            let d = backoff(failures).as_secs_f64();
            assert!(d >= base as f64 && d < base as f64 * 1.2, "{failures}: {d}");
        }
        assert_eq!(backoff(12), MAX_HOLD);
        assert_eq!(backoff(u32::MAX), MAX_HOLD);
        let spread: std::collections::HashSet<u128> =
            (0..20).map(|_| backoff(3).as_millis()).collect();
        assert!(spread.len() > 1, "no jitter");
    }

    fn source(schedule: &str) -> SourceConfig {
        SourceConfig {
            name: "s".into(),
            url: Url::parse("https://s.example/feed").expect("url"),
            title: None,
            schedule: crate::config::schedule::CronSchedule::parse(schedule).expect("cron"),
            tags: vec![],
        }
    }

    #[test]
    fn holds_stretch_but_never_shrink_the_schedule() {
        let source = source("*/30 * * * *");
        let now = Utc::now();
        let mut state = SourceState::default();
        plan(
            &source,
            &mut state,
            now,
            hold(Some(Duration::from_secs(60))),
        );
        let scheduled = source.schedule.next_fetch("s", now).expect("fires");
        assert_eq!(
            state.next_fetch,
            Some(scheduled),
            "a short max-age must not shrink"
        );
        plan(
            &source,
            &mut state,
            now,
            hold(Some(Duration::from_secs(7200))),
        );
        assert_eq!(
            state.next_fetch,
            Some(now + chrono::Duration::seconds(7200))
        );
        plan(
            &source,
            &mut state,
            now,
            hold(Some(Duration::from_secs(10 * 86400))),
        );
        assert_eq!(
            state.next_fetch,
            Some(now + chrono::Duration::seconds(86400)),
            "capped at a day"
        );
    }

    #[test]
    fn a_store_failure_backs_off_and_drops_the_validators() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: SharedStore = std::sync::Arc::new(
            crate::store::sled::SledStore::open(&dir.path().join("store")).expect("opens"),
        );
        let source = source("* * * * * *");
        let mut state = current_state(&source, &store).expect("state");
        state.validators.etag = Some("\"v1\"".into());
        state.consecutive_failures = 1;
        store.save_state("s", &state).expect("saves");
        let full = StoreError::Write {
            path: dir.path().join("store"),
            reason: std::io::Error::from_raw_os_error(28).to_string(),
        };
        let before = Utc::now();
        let outcome = store_failed(&source, &store, full);
        let state = store.source_state("s").expect("reads").expect("state");
        let error = state.last_error.as_deref().unwrap_or_default();
        assert_eq!(
            error,
            "store write failed: No space left on device (os error 28)"
        );
        assert_eq!(outcome, RefreshOutcome::Failed(error.to_string()));
        assert!(is_store_failure(Some(error)));
        assert_eq!(state.consecutive_failures, 2);
        // Two minutes at least (the second failure in a row), on a schedule of a second.
        let next = state.next_fetch.expect("planned");
        assert!(next >= before + chrono::Duration::seconds(120), "{next}");
        assert_eq!(state.validators, Validators::default());
    }

    #[test]
    fn first_fetch_honours_holds_and_disabling() {
        let source = source("* * * * * *");
        let now = Utc::now();
        let fresh = SourceState::default();
        assert_eq!(first_fetch(&source, &fresh, now), Some(now));
        let held = SourceState {
            last_fetch: Some(now - chrono::Duration::hours(1)),
            hold_until: Some(now + chrono::Duration::minutes(5)),
            ..SourceState::default()
        };
        assert_eq!(
            first_fetch(&source, &held, now),
            Some(now + chrono::Duration::minutes(5))
        );
        let gone = SourceState {
            disabled: true,
            ..SourceState::default()
        };
        assert_eq!(first_fetch(&source, &gone, now), None);
    }
}
