//! One refresh of one source: fetch -> parse -> store, and the source state that records it,
//! including when the source may be fetched next.
//!
//! Used by the daemon's scheduler and by `feedmill fetch` alike, so both behave the same.
//!
//! A refresh reads the source's state once, fetches and parses, computes the next state with
//! the state's own transitions ([`SourceState::fetched_ok`], [`SourceState::not_modified`],
//! [`SourceState::failed`]) and hands the store exactly that, in one write: `commit_fetch`
//! when there are entries, else `save_state`. Only when that write fails is the failure
//! itself written (see `store_failed`).
//!
//! The politeness rules are the state's (in `model`): consecutive failures back off
//! exponentially with jitter (one minute doubling up to a day) whatever the schedule says;
//! 429/503 `Retry-After` is honoured; a server's `Cache-Control: max-age`/`Expires` and a
//! feed's `<ttl>` may stretch the interval but never shrink it; 410 Gone disables a source
//! until its config changes. What they need from outside (the schedule's next time, the
//! jitter's draw, whether our own network answers) is decided here: a failure where no server
//! answered at all does not count toward backoff while no server has answered anyone
//! recently, that is our own network being down, not the source.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::Rng;
use sha2::{Digest, Sha256};
use url::Url;

use crate::clock::Clock;
use crate::config::SourceConfig;
use crate::fetch::{FetchError, FetchOutcome, FetchedBody, Fetcher, Hop};
use crate::metrics::{ClaimOutcome, Metrics, Outcome};
use crate::model::hex;
use crate::model::{Answer, CommitSummary, FeedHead, RefreshFailure, SourceState, Timing};
use crate::model::{LinkValidators, Validators};
use crate::parse::{parse_feed, ParseError, ParsedFeed};
use crate::store::{Claim, ClaimRequest, SharedStore, StoreError};

pub(crate) use crate::model::{STORE_READ_FAILED, STORE_WRITE_FAILED};

/// How a refresh went.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum RefreshOutcome {
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
    /// The fetch, the parse or the store failed; its message is also the source's
    /// `last_error` (but for 410, whose `last_error` says more).
    Failed(RefreshFailure),
    /// Another replica fetched the source for this due time already, or is fetching it
    /// (see [`Store::claim`](crate::store::Store::claim)): nothing was fetched here.
    Unclaimed(Claim),
}

/// How the daemon's refreshes claim their fetches among replicas.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Claiming {
    /// `[fetch] per_host`, held across replicas.
    pub(crate) per_host: usize,
    /// `[store] lease`.
    pub(crate) lease: Duration,
}

impl RefreshOutcome {
    /// Whether entries visible in output feeds may have changed.
    pub(crate) fn changed(&self) -> bool {
        matches!(self, RefreshOutcome::Stored { summary, .. } if summary.changed())
    }
}

/// A digest of everything the config says about a source.
pub(crate) fn fingerprint(source: &SourceConfig) -> String {
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
pub(crate) fn current_state(
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
pub(crate) fn first_fetch(
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

/// What a state transition at `now` needs from outside the state: the schedule's next time
/// and a random draw for backoff's jitter.
fn timing(source: &SourceConfig, now: DateTime<Utc>) -> Timing {
    Timing {
        now,
        scheduled: source.schedule.next_fetch(&source.name, now),
        jitter: rand::rng().random_range(0.0..1.0),
    }
}

/// Fetches `source` once (unless it is disabled), stores what it gives and records the
/// outcome and the next fetch time in its state. A failing source is an outcome, and so is
/// a store that cannot keep what it gave (see `store_failed`).
pub(crate) async fn refresh(
    source: &SourceConfig,
    fetcher: &Fetcher,
    store: &SharedStore,
    metrics: &Metrics,
    clock: Clock,
    claiming: Option<Claiming>,
) -> Result<RefreshOutcome, StoreError> {
    // A source with nothing stored stores its whole document: fewer of those at once.
    // A store that cannot be read is not cold: `store_failed` reports it. A remote store
    // has no garbage to bound (see `Store::is_remote`).
    let cold = !store.is_remote()
        && matches!(
            store.source_state(&source.name),
            Ok(None | Some(SourceState { items: 0, .. }))
        );
    let _cold = if cold {
        fetcher.cold_slot().await
    } else {
        None
    };
    let _slot = fetcher.refresh_slot().await;
    // Claimed once a slot is ours, so that a lease covers the fetch, not the wait for one.
    if let Some(claiming) = claiming {
        let claim = claim(source, store, claiming, clock).await?;
        metrics.lease_claimed(match &claim {
            Claim::Won => ClaimOutcome::Won,
            Claim::TakenOver => ClaimOutcome::TakenOver,
            Claim::Fetched(_) => ClaimOutcome::FetchedElsewhere,
            Claim::Busy(_) => ClaimOutcome::Busy,
        });
        if !matches!(claim, Claim::Won | Claim::TakenOver) {
            return Ok(RefreshOutcome::Unclaimed(claim));
        }
    }
    let started = std::time::Instant::now();
    let mut bytes = 0;
    let outcome = match read_current_state(source, store).await {
        Ok(before) => {
            match refresh_once(source, fetcher, store, &before, &mut bytes, clock).await {
                Ok(outcome) => outcome,
                Err(err) => store_failed(source, store, Some(before), err, clock),
            }
        }
        Err(err) => store_failed(source, store, None, err, clock),
    };
    let (kind, new) = match &outcome {
        RefreshOutcome::Stored { summary, .. } => (Outcome::stored, summary.new as u64),
        RefreshOutcome::NotModified => (Outcome::not_modified, 0),
        RefreshOutcome::Disabled => (Outcome::disabled, 0),
        RefreshOutcome::Failed(failure) => {
            metrics.refresh_failed(failure.kind());
            (Outcome::failed, 0)
        }
        // Returned before anything was fetched.
        RefreshOutcome::Unclaimed(_) => return Ok(outcome),
    };
    metrics.fetched(kind, started.elapsed().as_secs_f64(), bytes, new);
    Ok(outcome)
}

/// Claims the due fetch of `source` off the async threads (a database answers it).
async fn claim(
    source: &SourceConfig,
    store: &SharedStore,
    claiming: Claiming,
    clock: Clock,
) -> Result<Claim, StoreError> {
    let request = ClaimRequest {
        now: clock.now(),
        host: match source.url.scheme() {
            "file" => None,
            _ => source.url.host_str().map(str::to_ascii_lowercase),
        },
        per_host: claiming.per_host,
        lease: claiming.lease,
        fingerprint: fingerprint(source),
    };
    let (store, name) = (store.clone(), source.name.clone());
    tokio::task::spawn_blocking(move || store.claim(&name, &request))
        .await
        .map_err(|join| StoreError::Task(join.to_string()))?
}

/// One refresh from the state `before`: fetch and parse, compute the next state, then one
/// store write (`commit_fetch` with the entries, else `save_state`). An error is the
/// store's, for `store_failed`.
async fn refresh_once(
    source: &SourceConfig,
    fetcher: &Fetcher,
    store: &SharedStore,
    before: &SourceState,
    bytes: &mut u64,
    clock: Clock,
) -> Result<RefreshOutcome, StoreError> {
    if before.disabled {
        // Written as the config sees it (`current_state` may have changed it).
        save_state(store, &source.name, before).await?;
        return Ok(RefreshOutcome::Disabled);
    }
    let url = Url::parse(&before.url).unwrap_or_else(|_| source.url.clone());
    let fetched = fetcher
        .fetch(&url, Hop::Start, &source.url, &before.validators)
        .await;
    let at = timing(source, clock.now());

    // What the source answered, if it answered: the status a failure records.
    let (found, status) = match fetched {
        Ok(FetchOutcome::NotModified { fresh_for }) => {
            let known = before.validators.feed_link.clone();
            let found = match known
                .as_deref()
                .and_then(|k| Some((Url::parse(&k.url).ok()?, k)))
            {
                // An unchanged page still links to the feed it linked to, which may have
                // changed: ask it (with its own validators).
                Some((link, known)) => follow_feed_link(&link, Some(known), source, fetcher, bytes)
                    .await
                    .map(|found| found.with_page_validators(&before.validators)),
                None => Ok(Found {
                    status: 304,
                    parsed: None,
                    moved_to: None,
                    validators: before.validators.clone(),
                    fresh_for,
                }),
            };
            (found, Some(304))
        }
        Ok(FetchOutcome::Body(body)) => {
            let status = body.status;
            *bytes = body.bytes.len() as u64;
            let known = before.validators.feed_link.as_deref();
            (
                parse_or_discover(*body, known, source, fetcher, bytes).await,
                Some(status),
            )
        }
        Err(err) => {
            let status = err.status();
            (Err(fetch_failure(source, fetcher, before, err)), status)
        }
    };
    let mut next = before.clone();
    let found = match found {
        Ok(found) => found,
        Err(failure) => {
            next.failed(&failure, status, at);
            if matches!(failure, RefreshFailure::Gone) {
                tracing::warn!(source = %source.name, url = %next.url, "410 Gone: source disabled until its config changes");
            } else {
                tracing::warn!(source = %source.name, url = %next.url, error = %failure, "fetch failed");
            }
            save_state(store, &source.name, &next).await?;
            return Ok(RefreshOutcome::Failed(failure));
        }
    };
    if let Some(moved) = &found.moved_to {
        tracing::info!(source = %source.name, from = %next.url, to = %moved, "source moved permanently; following");
    }
    let answer = Answer {
        status: found.status,
        validators: found.validators,
        moved_to: found.moved_to.map(String::from),
        fresh_for: found.fresh_for,
    };
    let Some(parsed) = found.parsed else {
        next.not_modified(answer, at);
        save_state(store, &source.name, &next).await?;
        return Ok(RefreshOutcome::NotModified);
    };
    let head = FeedHead {
        title: parsed.title,
        site_link: parsed.site_link,
        ttl: parsed.ttl,
    };
    next.fetched_ok(answer, head, at);
    let entries = parsed.entries.len();
    let summary = {
        // Encoding and writing thousands of entries is blocking work too.
        let (store, name) = (store.clone(), source.name.clone());
        let _cpu = if store.is_remote() {
            None
        } else {
            fetcher.cpu_slot().await
        };
        tokio::task::spawn_blocking(move || {
            store.commit_fetch(&name, &mut next, &parsed.entries, at.now)
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
) -> Result<Found, RefreshFailure> {
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
        Err(err) => Err(err.into()),
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
) -> Result<Found, RefreshFailure> {
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
            return Err(RefreshFailure::FeedLinkNotModified {
                link: link.to_string(),
            })
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
        ) => return Err(err.into()),
        Err(err) => {
            return Err(RefreshFailure::FeedLinkFailed {
                link: link.to_string(),
                failure: Box::new(err.into()),
            })
        }
    };
    *bytes += feed.bytes.len() as u64;
    let parsed = parse_off_thread(&feed, fetcher)
        .await
        .map_err(|err| match err {
            // Discovery follows one link; the second page's own links (a publisher's, of any
            // length) are not quoted.
            ParseError::HtmlPage { .. } => RefreshFailure::FeedLinkToPage {
                link: link.to_string(),
            },
            err => RefreshFailure::FeedLinkUnreadable {
                link: link.to_string(),
                failure: Box::new(err.into()),
            },
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

/// What a failed fetch of the source's own URL means for it: 410 disables it; a stored URL
/// that is refused now gives way to the configured one; a silence while no server has
/// answered anyone lately is our own network's, not the source's.
fn fetch_failure(
    source: &SourceConfig,
    fetcher: &Fetcher,
    before: &SourceState,
    err: FetchError,
) -> RefreshFailure {
    if err.status() == Some(410) {
        return RefreshFailure::Gone;
    }
    let counted = !err.no_answer() || fetcher.network_answered_recently();
    let moved_away = before.url != source.url.as_str();
    let restart = moved_away
        && matches!(
            err,
            FetchError::Refused {
                hop: Hop::Start,
                ..
            } | FetchError::UrlTooLong {
                hop: Hop::Start,
                ..
            }
        );
    let failure = RefreshFailure::from(err);
    if restart {
        // Where a 301/308 chain once led is no longer allowed (allow_private turned off, the
        // name now resolves to a private address, a URL stored before URLs were bounded):
        // start again from the configured URL, which the operator vouches for.
        RefreshFailure::Restarted {
            failure: Box::new(failure),
            configured: source.url.to_string(),
        }
    } else if counted {
        failure
    } else {
        RefreshFailure::NetworkDown {
            failure: Box::new(failure),
        }
    }
}

/// Whether a source's `last_error` says its last fetch failed in the store.
pub(crate) fn is_store_failure(last_error: Option<&str>) -> bool {
    last_error
        .is_some_and(|e| e.starts_with(STORE_WRITE_FAILED) || e.starts_with(STORE_READ_FAILED))
}

/// A refresh the store failed (a full disk, a read-only or failing one): the source's
/// failure, as a failed fetch is, so that it backs off instead of being fetched again at
/// once, and `/status.json` says why. The state recorded is `before`, the one before this
/// fetch (read again when that read is what failed), without its validators: the next fetch
/// is unconditional and stores in full whatever this one could not (a write sled accepted
/// may be lost with its validators). When that state cannot be written either, the store
/// keeps it in memory and answers it in its place.
fn store_failed(
    source: &SourceConfig,
    store: &SharedStore,
    before: Option<SourceState>,
    err: StoreError,
    clock: Clock,
) -> RefreshOutcome {
    let failure = store_failure(&err);
    let mut state = before
        .map_or_else(|| current_state(source, store), Ok)
        .unwrap_or_else(|_| SourceState {
            config_url: source.url.to_string(),
            url: source.url.to_string(),
            config_fingerprint: fingerprint(source),
            ..SourceState::default()
        });
    state.failed(&failure, None, timing(source, clock.now()));
    tracing::error!(source = %source.name, url = %state.url, error = %failure, next_fetch = ?state.next_fetch, "cannot store the fetch; backing off");
    // Kept in memory by the store when it cannot be written (see `Store::save_state`).
    let _ = store.save_state(&source.name, &state);
    RefreshOutcome::Failed(failure)
}

/// Runs the store call `call` on the blocking pool: a remote store's calls each wait for a
/// server, which must not hold up an async thread. An embedded store's calls are quick
/// (cached states, a log written in the background) and are made in place.
async fn off_thread<T: Send + 'static>(
    call: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(call)
        .await
        .unwrap_or_else(|join| Err(StoreError::Task(join.to_string())))
}

/// [`current_state`] of `source`, off the async threads for a remote store (see
/// [`off_thread`]).
async fn read_current_state(
    source: &SourceConfig,
    store: &SharedStore,
) -> Result<SourceState, StoreError> {
    if !store.is_remote() {
        return current_state(source, store);
    }
    let (source, store_) = (source.clone(), store.clone());
    off_thread(move || current_state(&source, &store_)).await
}

/// Saves the state of `source`, off the async threads for a remote store (see
/// [`off_thread`]).
async fn save_state(
    store: &SharedStore,
    source: &str,
    state: &SourceState,
) -> Result<(), StoreError> {
    if !store.is_remote() {
        return store.save_state(source, state);
    }
    let (store_, source, state) = (store.clone(), source.to_string(), state.clone());
    off_thread(move || store_.save_state(&source, &state)).await
}

/// A store error as a source's failure: a write that failed (or the reopening after one),
/// else a read.
fn store_failure(err: &StoreError) -> RefreshFailure {
    match err {
        StoreError::Write { .. } | StoreError::Reopening(_) => RefreshFailure::StoreWrite {
            reason: err.reason(),
        },
        other => RefreshFailure::StoreRead {
            reason: other.reason(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FailureKind, HopKind};

    fn source(schedule: &str) -> SourceConfig {
        SourceConfig {
            name: "s".into(),
            url: Url::parse("https://s.example/feed").expect("url"),
            title: None,
            schedule: crate::config::schedule::CronSchedule::parse(schedule).expect("cron"),
            tags: vec![],
        }
    }

    /// A fetcher with the default `[fetch]` settings (nothing fetched yet: no server has
    /// answered it).
    fn fetcher() -> Fetcher {
        let config = crate::config::Config::parse(
            std::path::Path::new("/etc/feedmill/feedmill.toml"),
            "[[source]]\nname = \"s\"\nurl = \"https://s.example/feed\"\n[[feed]]\nname = \"all\"\n",
        )
        .expect("config");
        Fetcher::new(&config.fetch).expect("fetcher")
    }

    #[test]
    fn a_store_failure_backs_off_and_drops_the_validators() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: SharedStore = crate::store::open_at(&dir.path().join("store")).expect("opens");
        let source = source("* * * * * *");
        let mut state = current_state(&source, &store).expect("state");
        state.validators.etag = Some("\"v1\"".into());
        state.consecutive_failures = 1;
        state.last_status = Some(200);
        store.save_state("s", &state).expect("saves");
        let full = StoreError::Write {
            path: dir.path().join("store"),
            reason: std::io::Error::from_raw_os_error(28).to_string(),
        };
        let before = Utc::now();
        let outcome = store_failed(&source, &store, Some(state), full, Clock::System);
        let state = store.source_state("s").expect("reads").expect("state");
        let error = state.last_error.as_deref().unwrap_or_default();
        assert_eq!(
            error,
            "store write failed: No space left on device (os error 28)"
        );
        let RefreshOutcome::Failed(failure) = &outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(failure.to_string(), error);
        assert_eq!(failure.kind(), FailureKind::StoreWrite);
        assert!(is_store_failure(Some(error)));
        assert_eq!(state.consecutive_failures, 2);
        assert_eq!(state.last_status, Some(200), "the status before the fetch");
        // Two minutes at least (the second failure in a row), on a schedule of a second.
        let next = state.next_fetch.expect("planned");
        assert!(next >= before + chrono::Duration::seconds(120), "{next}");
        assert_eq!(state.validators, Validators::default());
        let read = StoreError::Task("gone".into());
        assert_eq!(
            store_failure(&read),
            RefreshFailure::StoreRead {
                reason: "a store task failed: gone".into()
            }
        );
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

    /// Every fetch and parse error becomes a failure with its facts (status, Retry-After)
    /// and its message; the messages themselves are held to what they always said by
    /// `model::failure`'s `each_failure_says_what_it_said_before`.
    #[test]
    fn fetch_and_parse_errors_keep_their_messages() {
        let fetch = [
            FetchError::Timeout(Duration::from_millis(2500)),
            FetchError::TooLarge(16 * 1024 * 1024),
            FetchError::TooLarge(3000),
            FetchError::Status {
                status: 503,
                reason: Some("Service Unavailable"),
                retry_after: Some(Duration::from_secs(90)),
            },
            FetchError::Status {
                status: 404,
                reason: Some("Not Found"),
                retry_after: None,
            },
            FetchError::RedirectLoop("more than 10 redirects".into()),
            FetchError::Refused {
                hop: Hop::Redirect,
                target: "127.0.0.1:9999".into(),
                name: false,
            },
            FetchError::Refused {
                hop: Hop::FeedLink,
                target: "intranet.example:80".into(),
                name: true,
            },
            FetchError::Refused {
                hop: Hop::Start,
                target: "10.0.0.5:80".into(),
                name: false,
            },
            FetchError::UrlTooLong {
                hop: Hop::FeedLink,
                len: 9000,
            },
            FetchError::Metadata {
                hop: Hop::Start,
                target: "meta.example:80".into(),
            },
            FetchError::OwnNamePrivate {
                hop: Hop::Start,
                target: "feeds.example:80".into(),
            },
            FetchError::LocalFile {
                hop: Hop::Redirect,
                url: "file:///etc/passwd".into(),
            },
            FetchError::Transport("error sending request for url".into()),
            FetchError::File {
                path: "/srv/feed.xml".into(),
                source: std::io::Error::from_raw_os_error(2),
            },
        ];
        for err in fetch {
            let message = err.to_string();
            let status = err.status();
            let retry_after = err.retry_after();
            let failure = RefreshFailure::from(err);
            assert_eq!(failure.to_string(), message, "{failure:?}");
            assert_eq!(failure.status(), status, "{failure:?}");
            assert_eq!(failure.retry_after(), retry_after, "{failure:?}");
        }
        let parse = [
            ParseError::Empty,
            ParseError::HtmlPage { links: vec![] },
            ParseError::HtmlPage {
                links: vec![Url::parse("https://a.example/feed").expect("url")],
            },
            ParseError::Xml {
                line: 3,
                column: 14,
                message: "unexpected end of file".into(),
            },
            ParseError::NotAFeed("the root element is <html>".into()),
        ];
        for err in parse {
            let message = err.to_string();
            let failure = RefreshFailure::from(err);
            assert_eq!(failure.to_string(), message, "{failure:?}");
        }
        // The two copies of the size words agree.
        for limit in [1, 1000, 1024, 1536, 3000, 8 * 1024 * 1024, 5 * 1000 * 1000] {
            assert_eq!(
                RefreshFailure::TooLarge { limit }.to_string(),
                format!("body larger than {}", crate::model::human_size(limit))
            );
        }
    }

    #[tokio::test]
    async fn a_failed_fetch_of_the_source_url_says_what_it_means_for_the_source() {
        let fetcher = fetcher();
        let source = source("*/30 * * * *");
        let at_home = SourceState {
            url: source.url.to_string(),
            ..SourceState::default()
        };
        let status = |status| FetchError::Status {
            status,
            reason: None,
            retry_after: None,
        };
        assert_eq!(
            fetch_failure(&source, &fetcher, &at_home, status(410)),
            RefreshFailure::Gone
        );
        assert_eq!(
            fetch_failure(&source, &fetcher, &at_home, status(404)).kind(),
            FailureKind::HttpStatus
        );
        // Where a 301/308 chain once led is refused now (a real fetch, refused unsent).
        let moved = SourceState {
            url: "http://127.0.0.1:1/feed".into(),
            ..SourceState::default()
        };
        let url = Url::parse(&moved.url).expect("url");
        let err = fetcher
            .fetch(&url, Hop::Start, &source.url, &moved.validators)
            .await
            .expect_err("refused");
        let failure = fetch_failure(&source, &fetcher, &moved, err);
        assert_eq!(
            failure,
            RefreshFailure::Restarted {
                failure: Box::new(RefreshFailure::Refused {
                    hop: HopKind::Start,
                    target: "127.0.0.1:1".into(),
                    name: false,
                }),
                configured: "https://s.example/feed".into(),
            }
        );
        // A silence while no server has answered this fetcher: our network, not counted.
        let own = SourceConfig {
            url: Url::parse("http://127.0.0.1:1/feed").expect("url"),
            ..source.clone()
        };
        let err = fetcher
            .fetch(&own.url, Hop::Start, &own.url, &Validators::default())
            .await
            .expect_err("nothing listens on port 1");
        assert!(err.no_answer(), "{err:?}");
        let failure = fetch_failure(&own, &fetcher, &at_home, err);
        assert!(
            matches!(&failure, RefreshFailure::NetworkDown { failure } if failure.kind() == FailureKind::Transport),
            "{failure:?}"
        );
        assert!(!failure.counted());
    }

    /// A whole refresh of a `file://` source, through the real fetcher and store: each
    /// outcome leaves the state its transition computes, and the metrics count failures by
    /// kind.
    #[tokio::test]
    async fn refreshes_record_their_outcome_in_state_and_metrics() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: SharedStore = crate::store::open_at(&dir.path().join("store")).expect("opens");
        let fetcher = fetcher();
        let metrics = Metrics::new();
        let feed = dir.path().join("feed.xml");
        std::fs::write(
            &feed,
            "<rss><channel><title>T</title><ttl>120</ttl><item><guid>1</guid><title>One</title></item></channel></rss>",
        )
        .expect("writes");
        let source = SourceConfig {
            url: Url::from_file_path(&feed).expect("file url"),
            ..source("*/30 * * * *")
        };
        let run = || refresh(&source, &fetcher, &store, &metrics, Clock::System, None);
        let state = || store.source_state("s").expect("reads").expect("state");

        let outcome = run().await.expect("refresh");
        assert!(
            matches!(&outcome, RefreshOutcome::Stored { status: 200, entries: 1, summary } if summary.new == 1),
            "{outcome:?}"
        );
        let stored = state();
        assert_eq!(stored.title.as_deref(), Some("T"));
        assert_eq!((stored.items, stored.last_error.clone()), (1, None));
        // The feed's two-hour <ttl> stretches the half-hourly schedule.
        let ttl = stored.last_fetch.expect("fetched") + chrono::Duration::minutes(120);
        assert_eq!(stored.next_fetch, Some(ttl));

        assert_eq!(run().await.expect("refresh"), RefreshOutcome::NotModified);
        assert_eq!(state().items, 1, "the store's parts are kept");

        std::fs::remove_file(&feed).expect("removes");
        let outcome = run().await.expect("refresh");
        let RefreshOutcome::Failed(failure) = &outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(failure.kind(), FailureKind::FileUnreadable);
        let failed = state();
        assert_eq!(failed.last_error, Some(failure.to_string()));
        assert_eq!(failed.consecutive_failures, 1);
        assert_eq!(failed.items, 1);

        std::fs::write(&feed, "<rss><channel><item>").expect("writes");
        // Another Last-Modified than the first file's, which may be of the same second.
        std::fs::File::options()
            .write(true)
            .open(&feed)
            .and_then(|f| f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1 << 30)))
            .expect("sets the time");
        let outcome = run().await.expect("refresh");
        let RefreshOutcome::Failed(failure) = &outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(failure.kind(), FailureKind::Xml);
        assert_eq!(state().consecutive_failures, 2);

        let text = metrics.encode(&[]);
        for line in [
            "feedmill_fetches_total{outcome=\"failed\"} 2",
            "feedmill_refresh_failures_total{kind=\"file_unreadable\"} 1",
            "feedmill_refresh_failures_total{kind=\"xml\"} 1",
            "feedmill_refresh_failures_total{kind=\"timed_out\"} 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
