//! How long readers and HTTP caches may keep a feed's documents: `Cache-Control: max-age`,
//! until the feed's sources are fetched next.
//!
//! The render keeps the earliest planned fetch of the feed's sources with the published feed
//! ([`NextFetch`]); the server turns it into a max-age at each request, against the time of
//! the request, so that the answer shrinks as the fetch nears without a store read per
//! request.

use std::sync::atomic::{AtomicI64, Ordering};

use chrono::{DateTime, Utc};

/// What a fetch and the render after it take, added to the time until the next fetch: a
/// cache that comes back at once would find the old bytes still.
pub(crate) const GRACE_SECS: i64 = 10;
/// The shortest max-age: a fetch that is overdue (or running) is not a reason to send every
/// reader back at once.
pub(crate) const MIN_MAX_AGE: u64 = 5;
/// The longest max-age: a day, the longest a source waits between fetches.
pub(crate) const MAX_MAX_AGE: u64 = 86_400;
/// The max-age when no source of the feed plans a fetch.
pub(crate) const UNPLANNED_MAX_AGE: u64 = 300;

/// How many seconds a feed's documents may be cached at `now`, when the earliest planned
/// fetch of its sources is `next_fetch`: the time until then plus [`GRACE_SECS`], within
/// [`MIN_MAX_AGE`] and [`MAX_MAX_AGE`]; [`UNPLANNED_MAX_AGE`] when nothing is planned.
pub(crate) fn max_age(next_fetch: Option<DateTime<Utc>>, now: DateTime<Utc>) -> u64 {
    let Some(next) = next_fetch else {
        return UNPLANNED_MAX_AGE;
    };
    let until = next.signed_duration_since(now).num_seconds();
    let secs = until.saturating_add(GRACE_SECS);
    u64::try_from(secs)
        .unwrap_or(0)
        .clamp(MIN_MAX_AGE, MAX_MAX_AGE)
}

/// The earliest planned fetch of a feed's sources, as the last render or source read saw
/// it; set without replacing the feed's documents, since a 304 (or another replica's fetch)
/// moves a source's next fetch without changing them.
#[derive(Debug)]
pub(crate) struct NextFetch(AtomicI64);

/// [`NextFetch`]'s value for "none planned": no millisecond timestamp chrono can hold is
/// this small.
const NONE: i64 = i64::MIN;

impl NextFetch {
    /// Holding `at`.
    pub(crate) fn new(at: Option<DateTime<Utc>>) -> NextFetch {
        NextFetch(AtomicI64::new(Self::encode(at)))
    }

    fn encode(at: Option<DateTime<Utc>>) -> i64 {
        at.map_or(NONE, |at| at.timestamp_millis())
    }

    /// The instant held.
    pub(crate) fn get(&self) -> Option<DateTime<Utc>> {
        match self.0.load(Ordering::Relaxed) {
            NONE => None,
            millis => DateTime::from_timestamp_millis(millis),
        }
    }

    /// Replaces the instant held.
    pub(crate) fn set(&self, at: Option<DateTime<Utc>>) {
        self.0.store(Self::encode(at), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_the_time_until_the_next_fetch_plus_a_grace_within_bounds() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).expect("time");
        let at = |secs: i64| Some(now + chrono::TimeDelta::seconds(secs));
        let table: [(Option<DateTime<Utc>>, u64, &str); 10] = [
            (None, 300, "nothing planned"),
            (at(600), 610, "in ten minutes"),
            (at(1), 11, "in a second"),
            (at(0), 10, "now"),
            (at(-4), 6, "four seconds overdue"),
            (at(-5), 5, "five seconds overdue"),
            (at(-3600), 5, "an hour overdue"),
            (at(86_390), 86_400, "in a day less the grace"),
            (at(10 * 86_400), 86_400, "in ten days"),
            (
                Some(now + chrono::TimeDelta::milliseconds(1500)),
                11,
                "in a second and a half: whole seconds",
            ),
        ];
        for (next, expected, case) in table {
            assert_eq!(max_age(next, now), expected, "{case}");
        }
        // The far ends of chrono's range do not overflow.
        assert_eq!(max_age(Some(DateTime::<Utc>::MAX_UTC), now), 86_400);
        assert_eq!(max_age(Some(DateTime::<Utc>::MIN_UTC), now), 5);
    }

    #[test]
    fn next_fetch_holds_an_instant_or_none() {
        let at = DateTime::from_timestamp_millis(1_800_000_000_123).expect("time");
        let next = NextFetch::new(None);
        assert_eq!(next.get(), None);
        next.set(Some(at));
        assert_eq!(next.get(), Some(at));
        next.set(None);
        assert_eq!(next.get(), None);
        assert_eq!(NextFetch::new(Some(at)).get(), Some(at));
    }
}
