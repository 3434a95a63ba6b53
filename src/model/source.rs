//! What feedmill knows of one source between fetches, and how a refresh changes it: the
//! politeness rules (backoff, `Retry-After`, freshness, 410) as pure transitions that the
//! refresh applies before it hands the store the one state to write.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::failure::{RefreshFailure, GONE_LAST_ERROR};

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
    /// The replica that last wrote this state after a fetch (`[store] replica`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetched_by: Option<String>,
}

impl SourceState {
    /// The URL fetched: where redirects or autodiscovery led, else the configured one.
    pub(crate) fn url_or(&self, configured: &url::Url) -> String {
        if self.url.is_empty() {
            configured.to_string()
        } else {
            self.url.clone()
        }
    }
}

/// The first backoff after a failure; it doubles with each failure in a row.
const BACKOFF_BASE: Duration = Duration::from_secs(60);
/// The longest we ever wait because of failures, `Retry-After` or freshness.
pub(crate) const MAX_HOLD: Duration = Duration::from_secs(24 * 60 * 60);
/// The most a backoff's jitter adds: a fifth, so that sources failing together retry apart.
const MAX_JITTER: f64 = 0.2;

/// The delay after `failures` failures in a row: one minute doubling up to a day, plus up
/// to a fifth more by `jitter`, a random draw in `[0, 1)` (the caller's: this stays pure).
pub(crate) fn backoff(failures: u32, jitter: f64) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let doubled =
        BACKOFF_BASE.saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(20)));
    doubled
        .mul_f64(1.0 + jitter.clamp(0.0, 1.0) * MAX_JITTER)
        .min(MAX_HOLD)
}

/// When a transition happens, and what the world outside the state says of the next fetch:
/// the schedule's next time and a random draw for backoff's jitter. The refresh computes
/// them, so the state's rules read no clock, config or random source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Timing {
    /// When the fetch ended.
    pub(crate) now: DateTime<Utc>,
    /// The schedule's next time after `now`; `None` when it never fires again.
    pub(crate) scheduled: Option<DateTime<Utc>>,
    /// A random draw in `[0, 1)` for backoff's jitter.
    pub(crate) jitter: f64,
}

/// What a fetch that worked (a feed, or 304) tells its source's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Answer {
    /// The status of the document whose entries these are (the feed's, when an HTML page
    /// linked to it; 304 when nothing changed).
    pub(crate) status: u16,
    /// The validators to send next time.
    pub(crate) validators: Validators,
    /// Where a 301/308 chain from the source's URL moved it; never a discovered link.
    pub(crate) moved_to: Option<String>,
    /// How long the server says the document stays fresh.
    pub(crate) fresh_for: Option<Duration>,
}

/// What a parsed feed says of itself.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct FeedHead {
    /// The feed's own title.
    pub(crate) title: Option<String>,
    /// The feed's home page.
    pub(crate) site_link: Option<String>,
    /// The feed's `<ttl>`.
    pub(crate) ttl: Option<Duration>,
}

impl SourceState {
    /// The source answered 304 (or its feed link did): nothing to store; the state records
    /// the answer, and the server's freshness may stretch the wait for the next fetch.
    pub(crate) fn not_modified(&mut self, answer: Answer, at: Timing) {
        let fresh_for = answer.fresh_for;
        self.answered(answer, at);
        self.plan(at, hold(fresh_for));
    }

    /// The source answered a feed: the state takes its head, and the longer of the server's
    /// freshness and the feed's `<ttl>` may stretch the wait for the next fetch. The
    /// entries' own parts (`items`, `newest`) are the store's to set as it writes them.
    pub(crate) fn fetched_ok(&mut self, answer: Answer, feed: FeedHead, at: Timing) {
        let fresh_for = match (answer.fresh_for, feed.ttl) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.answered(answer, at);
        self.title = feed.title;
        self.site_link = feed.site_link;
        self.plan(at, hold(fresh_for));
    }

    /// What every answer that worked records: the failures in a row end.
    fn answered(&mut self, answer: Answer, at: Timing) {
        self.last_fetch = Some(at.now);
        self.last_status = Some(answer.status);
        if let Some(moved) = answer.moved_to {
            self.url = moved;
        }
        self.last_error = None;
        self.consecutive_failures = 0;
        self.validators = answer.validators;
    }

    /// The refresh failed with `failure`; `status` is what the source answered, if it
    /// answered at all. The rules:
    /// - 410 Gone disables the source until its config changes: no next fetch, no hold.
    /// - Any other failure backs off (see [`backoff`]), or longer when the server's
    ///   `Retry-After` says so, but never sooner than the schedule; one of our own network
    ///   ([`RefreshFailure::counted`]) does not add to the failures in a row.
    /// - A stored URL that is refused now ([`RefreshFailure::Restarted`]) gives way to the
    ///   configured one, without the old URL's validators.
    /// - A store failure keeps the state from before the fetch (its status too) but its
    ///   validators: the next fetch is unconditional and stores in full what this one could
    ///   not.
    pub(crate) fn failed(&mut self, failure: &RefreshFailure, status: Option<u16>, at: Timing) {
        self.last_fetch = Some(at.now);
        if failure.counted() {
            self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        }
        if matches!(failure, RefreshFailure::Gone) {
            self.last_status = Some(410);
            self.last_error = Some(GONE_LAST_ERROR.to_string());
            self.disabled = true;
            self.next_fetch = None;
            self.hold_until = None;
            return;
        }
        if failure.in_store() {
            self.validators = Validators::default();
        } else {
            self.last_status = status;
        }
        if let RefreshFailure::Restarted { configured, .. } = failure {
            self.url.clone_from(configured);
            self.validators = Validators::default();
        }
        self.last_error = Some(failure.to_string());
        let wait = backoff(self.consecutive_failures, at.jitter)
            .max(failure.retry_after().unwrap_or_default());
        self.plan(at, hold(Some(wait)));
    }

    /// Sets the next fetch: the schedule's next time, stretched (never shrunk) by `hold`.
    fn plan(&mut self, at: Timing, hold: Option<Duration>) {
        self.hold_until = hold
            .and_then(|h| chrono::Duration::from_std(h).ok())
            .map(|h| at.now + h);
        self.next_fetch = match (at.scheduled, self.hold_until) {
            (Some(s), Some(h)) => Some(s.max(h)),
            (s, h) => s.or(h),
        };
    }
}

/// A hold of `duration` at most [`MAX_HOLD`]; none for none or zero.
fn hold(duration: Option<Duration>) -> Option<Duration> {
    duration.map(|d| d.min(MAX_HOLD)).filter(|d| !d.is_zero())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HopKind;

    fn t(minutes: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).expect("a time")
            + chrono::Duration::minutes(minutes)
    }

    /// At minute 0, the schedule's next time at minute 30, no jitter.
    fn at() -> Timing {
        Timing {
            now: t(0),
            scheduled: Some(t(30)),
            jitter: 0.0,
        }
    }

    fn mins(m: u64) -> Duration {
        Duration::from_secs(m * 60)
    }

    #[test]
    fn backoff_doubles_from_a_minute_to_a_day_with_up_to_a_fifth_of_jitter() {
        for (failures, jitter, secs) in [
            (0, 0.9, 0.0),
            (1, 0.0, 60.0),
            (1, 0.5, 66.0),
            (2, 0.0, 120.0),
            (3, 0.0, 240.0),
            (6, 0.0, 1920.0),
            (6, 1.0, 2304.0),
            (6, 7.0, 2304.0),
            (6, -1.0, 1920.0),
            (12, 0.0, 86400.0),
            (u32::MAX, 0.99, 86400.0),
        ] {
            assert_eq!(
                backoff(failures, jitter).as_secs_f64(),
                secs,
                "{failures} failures, jitter {jitter}"
            );
        }
    }

    #[test]
    fn answers_plan_the_schedule_stretched_never_shrunk_by_freshness() {
        // (server freshness, feed ttl, hold_until, next_fetch)
        let cases = [
            (None, None, None, Some(t(30))),
            (Some(mins(1)), None, Some(t(1)), Some(t(30))),
            (Some(Duration::ZERO), None, None, Some(t(30))),
            (Some(mins(120)), None, Some(t(120)), Some(t(120))),
            (None, Some(mins(90)), Some(t(90)), Some(t(90))),
            (Some(mins(60)), Some(mins(90)), Some(t(90)), Some(t(90))),
            (Some(mins(100)), Some(mins(90)), Some(t(100)), Some(t(100))),
            (Some(mins(14400)), None, Some(t(1440)), Some(t(1440))),
        ];
        for (fresh_for, ttl, hold_until, next_fetch) in cases {
            let mut state = SourceState::default();
            let answer = Answer {
                status: 200,
                fresh_for,
                ..Answer::default()
            };
            let feed = FeedHead {
                ttl,
                ..FeedHead::default()
            };
            state.fetched_ok(answer, feed, at());
            assert_eq!(
                (state.hold_until, state.next_fetch),
                (hold_until, next_fetch),
                "fresh for {fresh_for:?}, ttl {ttl:?}"
            );
        }
        // A schedule that never fires again leaves only the hold.
        let mut state = SourceState::default();
        let never = Timing {
            scheduled: None,
            ..at()
        };
        let answer = Answer {
            status: 304,
            fresh_for: Some(mins(5)),
            ..Answer::default()
        };
        state.not_modified(answer, never);
        assert_eq!(state.next_fetch, Some(t(5)));
    }

    /// A source that had failed twice, at `url`, with validators.
    fn failing() -> SourceState {
        SourceState {
            config_url: "https://s.example/feed".into(),
            url: "https://moved.example/feed".into(),
            title: Some("Old".into()),
            last_status: Some(503),
            last_error: Some("HTTP 503".into()),
            consecutive_failures: 2,
            items: 7,
            validators: Validators {
                etag: Some("\"v1\"".into()),
                ..Validators::default()
            },
            ..SourceState::default()
        }
    }

    #[test]
    fn an_answer_ends_the_failures_and_takes_what_it_says() {
        let validators = Validators {
            etag: Some("\"v2\"".into()),
            ..Validators::default()
        };
        let answer = Answer {
            status: 200,
            validators: validators.clone(),
            moved_to: Some("https://new.example/feed".into()),
            fresh_for: None,
        };
        let mut ok = failing();
        let feed = FeedHead {
            title: Some("New".into()),
            site_link: Some("https://new.example/".into()),
            ttl: None,
        };
        ok.fetched_ok(answer.clone(), feed, at());
        let expected = SourceState {
            url: "https://new.example/feed".into(),
            title: Some("New".into()),
            site_link: Some("https://new.example/".into()),
            last_fetch: Some(t(0)),
            last_status: Some(200),
            last_error: None,
            consecutive_failures: 0,
            next_fetch: Some(t(30)),
            validators: validators.clone(),
            ..failing()
        };
        assert_eq!(ok, expected);
        // 304: the feed's head and the store's parts (items) stay as they were.
        let mut unchanged = failing();
        unchanged.not_modified(
            Answer {
                status: 304,
                moved_to: None,
                ..answer
            },
            at(),
        );
        let expected = SourceState {
            last_fetch: Some(t(0)),
            last_status: Some(304),
            last_error: None,
            consecutive_failures: 0,
            next_fetch: Some(t(30)),
            validators,
            ..failing()
        };
        assert_eq!(unchanged, expected);
    }

    #[test]
    fn failures_back_off_by_their_rules() {
        let refused = RefreshFailure::Refused {
            hop: HopKind::Start,
            target: "10.0.0.5:80".into(),
            name: false,
        };
        let timeout = RefreshFailure::TimedOut { after: mins(1) };
        let status = |status, retry_after| RefreshFailure::Status {
            status,
            reason: None,
            retry_after,
        };
        struct Case {
            failure: RefreshFailure,
            status: Option<u16>,
            failures: u32,
            hold_until: Option<DateTime<Utc>>,
            next_fetch: Option<DateTime<Utc>>,
            last_status: Option<u16>,
            url: &'static str,
            etag: Option<&'static str>,
        }
        let cases = [
            // The third failure in a row: four minutes, inside the schedule's half hour.
            Case {
                failure: status(500, None),
                status: Some(500),
                failures: 3,
                hold_until: Some(t(4)),
                next_fetch: Some(t(30)),
                last_status: Some(500),
                url: "https://moved.example/feed",
                etag: Some("\"v1\""),
            },
            // Retry-After longer than the backoff and the schedule wins.
            Case {
                failure: status(429, Some(mins(45))),
                status: Some(429),
                failures: 3,
                hold_until: Some(t(45)),
                next_fetch: Some(t(45)),
                last_status: Some(429),
                url: "https://moved.example/feed",
                etag: Some("\"v1\""),
            },
            // A parse failure records the status of the body it could not read.
            Case {
                failure: RefreshFailure::Empty,
                status: Some(200),
                failures: 3,
                hold_until: Some(t(4)),
                next_fetch: Some(t(30)),
                last_status: Some(200),
                url: "https://moved.example/feed",
                etag: Some("\"v1\""),
            },
            // Our own network: not counted, so the backoff of two failures.
            Case {
                failure: RefreshFailure::NetworkDown {
                    failure: Box::new(timeout.clone()),
                },
                status: None,
                failures: 2,
                hold_until: Some(t(2)),
                next_fetch: Some(t(30)),
                last_status: None,
                url: "https://moved.example/feed",
                etag: Some("\"v1\""),
            },
            // A refused stored URL: back to the configured one, without its validators.
            Case {
                failure: RefreshFailure::Restarted {
                    failure: Box::new(refused),
                    configured: "https://s.example/feed".into(),
                },
                status: None,
                failures: 3,
                hold_until: Some(t(4)),
                next_fetch: Some(t(30)),
                last_status: None,
                url: "https://s.example/feed",
                etag: None,
            },
            // The store: the status from before, no validators.
            Case {
                failure: RefreshFailure::StoreWrite {
                    reason: "No space left on device (os error 28)".into(),
                },
                status: Some(200),
                failures: 3,
                hold_until: Some(t(4)),
                next_fetch: Some(t(30)),
                last_status: Some(503),
                url: "https://moved.example/feed",
                etag: None,
            },
            // 410: disabled, nothing planned, not even a hold.
            Case {
                failure: RefreshFailure::Gone,
                status: Some(410),
                failures: 3,
                hold_until: None,
                next_fetch: None,
                last_status: Some(410),
                url: "https://moved.example/feed",
                etag: Some("\"v1\""),
            },
        ];
        for case in cases {
            let mut state = failing();
            state.failed(&case.failure, case.status, at());
            let name = format!("{:?}", case.failure);
            assert_eq!(state.last_fetch, Some(t(0)), "{name}");
            assert_eq!(state.consecutive_failures, case.failures, "{name}");
            assert_eq!(state.hold_until, case.hold_until, "{name}");
            assert_eq!(state.next_fetch, case.next_fetch, "{name}");
            assert_eq!(state.last_status, case.last_status, "{name}");
            assert_eq!(state.url, case.url, "{name}");
            assert_eq!(state.validators.etag.as_deref(), case.etag, "{name}");
            assert_eq!(
                state.disabled,
                case.failure == RefreshFailure::Gone,
                "{name}"
            );
            assert_eq!(
                (state.items, state.title.as_deref()),
                (7, Some("Old")),
                "{name}"
            );
            let said = match case.failure {
                RefreshFailure::Gone => {
                    "410 Gone: disabled (the source is gone; change its config to try again)"
                        .to_string()
                }
                other => other.to_string(),
            };
            assert_eq!(state.last_error, Some(said), "{name}");
        }
    }

    #[test]
    fn a_day_of_failures_waits_a_day_whatever_the_schedule() {
        let mut state = SourceState {
            consecutive_failures: 40,
            ..SourceState::default()
        };
        let every_minute = Timing {
            scheduled: Some(t(1)),
            jitter: 0.99,
            ..at()
        };
        state.failed(&RefreshFailure::Empty, Some(200), every_minute);
        assert_eq!(state.consecutive_failures, 41);
        assert_eq!(state.next_fetch, Some(t(1440)));
    }
}
