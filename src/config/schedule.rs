//! Schedules: when each source is due.
//!
//! Cron expressions come in two dialects. The classic 5-field form (`min hour dom month dow`,
//! Sunday = 0 or 7) is what people write in crontabs; the `cron` crate reads the Quartz form
//! with seconds first and Sunday = 1. A 5-field expression is translated into the Quartz form
//! here, numeric days of the week included, so `0 9 * * 1` means Monday as everywhere else.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// A parsed cron schedule that remembers the expression it was written as.
#[derive(Clone)]
pub(crate) struct CronSchedule {
    expression: Arc<str>,
    /// Shared: the sources without a schedule of their own all clone the default one, and a
    /// parsed schedule holds a few kilobytes of value sets.
    schedule: Arc<cron::Schedule>,
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronSchedule({:?})", self.expression)
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.expression == other.expression
    }
}

/// The longest a fetch is moved off its cron time to keep sources from firing together.
const MAX_JITTER: Duration = Duration::from_secs(120);

impl CronSchedule {
    /// Parses a 5-field (minutes) or 6/7-field (seconds first, optional year) cron expression.
    pub(crate) fn parse(expression: &str) -> Result<CronSchedule, String> {
        let fields: Vec<&str> = expression.split_whitespace().collect();
        let quartz = match fields.len() {
            5 => {
                let dow = translate_day_of_week(fields[4])?;
                format!(
                    "0 {} {} {} {} {}",
                    fields[0], fields[1], fields[2], fields[3], dow
                )
            }
            6 | 7 => fields.join(" "),
            n => return Err(format!("a cron expression has 5, 6 or 7 fields, not {n}")),
        };
        let schedule = cron::Schedule::from_str(&quartz).map_err(|err| err.to_string())?;
        if schedule.upcoming(Utc).next().is_none() {
            return Err("it never fires again".to_string());
        }
        Ok(CronSchedule {
            expression: expression.into(),
            schedule: Arc::new(schedule),
        })
    }

    /// The expression as written in the config.
    pub(crate) fn expression(&self) -> &str {
        &self.expression
    }

    /// The first fire time strictly after `time`.
    pub(crate) fn next_after(&self, time: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule.after(&time).next()
    }

    /// Whether a source last fetched at `last_fetch` is due at `now`: never fetched, or a fire
    /// time has passed since its last fetch.
    pub(crate) fn is_due(&self, last_fetch: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
        match last_fetch {
            None => true,
            Some(last) => self.next_after(last).is_none_or(|next| next <= now),
        }
    }

    /// The interval between the two fire times that follow `time`.
    pub(crate) fn period_after(&self, time: DateTime<Utc>) -> Duration {
        let mut upcoming = self.schedule.after(&time);
        match (upcoming.next(), upcoming.next()) {
            (Some(a), Some(b)) => (b - a).to_std().unwrap_or_default(),
            _ => Duration::ZERO,
        }
    }

    /// The next time a source called `source` should be fetched after `now`: the next fire time
    /// moved later by a jitter that is stable per source (a tenth of the period, at most two
    /// minutes), so that sources on the same schedule spread out rather than fire together.
    pub(crate) fn next_fetch(&self, source: &str, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let next = self.next_after(now)?;
        let spread = (self.period_after(now) / 10).min(MAX_JITTER);
        Some(next + jitter(source, spread))
    }
}

/// A stable pseudo-random offset in `[0, spread)` for `source`.
pub(crate) fn jitter(source: &str, spread: Duration) -> chrono::Duration {
    let spread_ms = spread.as_millis() as u64;
    if spread_ms == 0 {
        return chrono::Duration::zero();
    }
    let digest = Sha256::digest(source.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    chrono::Duration::milliseconds((u64::from_le_bytes(first) % spread_ms) as i64)
}

/// Translates a classic day-of-week field (Sunday = 0 or 7) into the Quartz one (Sunday = 1).
/// Names (`MON-FRI`) are the same in both and pass through.
fn translate_day_of_week(field: &str) -> Result<String, String> {
    let quartz_day = |text: &str| -> Result<Option<u32>, String> {
        if !text.bytes().all(|b| b.is_ascii_digit()) || text.is_empty() {
            return Ok(None);
        }
        match text.parse::<u32>() {
            Ok(day @ 0..=6) => Ok(Some(day + 1)),
            Ok(7) => Ok(Some(1)),
            _ => Err(format!("day of week {text} is out of range 0-7")),
        }
    };
    let mut items = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        let with_step = |base: String| match step {
            Some(step) => format!("{base}/{step}"),
            None => base,
        };
        match range.split_once('-') {
            Some((start, end)) => match (quartz_day(start)?, quartz_day(end)?) {
                (Some(a), Some(b)) if a <= b => items.push(with_step(format!("{a}-{b}"))),
                // A range that ends on Sunday (`5-7`) wraps in Quartz numbering.
                (Some(a), Some(b)) if step.is_none() => {
                    items.push(format!("{a}-7"));
                    items.push(format!("1-{b}"));
                }
                (Some(_), Some(_)) => {
                    return Err(format!(
                        "day-of-week range {range} with a step wraps past Sunday"
                    ))
                }
                _ => items.push(item.to_string()),
            },
            None => match quartz_day(range)? {
                Some(day) => items.push(with_step(day.to_string())),
                None => items.push(item.to_string()),
            },
        }
    }
    Ok(items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Timelike, Weekday};

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("valid time")
    }

    #[test]
    fn five_fields_fire_on_minutes() {
        let schedule = CronSchedule::parse("*/30 * * * *").expect("valid");
        let next = schedule
            .next_after(at(2026, 11, 28, 10, 5, 7))
            .expect("fires");
        assert_eq!(next, at(2026, 11, 28, 10, 30, 0));
        assert_eq!(
            schedule.period_after(at(2026, 11, 28, 10, 5, 7)),
            Duration::from_secs(1800)
        );
    }

    #[test]
    fn six_fields_have_seconds_first() {
        let schedule = CronSchedule::parse("0 */10 * * * *").expect("valid");
        let next = schedule
            .next_after(at(2026, 11, 28, 10, 5, 7))
            .expect("fires");
        assert_eq!(next, at(2026, 11, 28, 10, 10, 0));
        let every_second = CronSchedule::parse("* * * * * *").expect("valid");
        assert_eq!(every_second.period_after(next), Duration::from_secs(1));
    }

    #[test]
    fn seven_fields_take_a_year() {
        let schedule = CronSchedule::parse("0 0 12 1 1 * 2030").expect("valid");
        let next = schedule
            .next_after(at(2026, 11, 28, 0, 0, 0))
            .expect("fires");
        assert_eq!(next, at(2030, 1, 1, 12, 0, 0));
    }

    #[test]
    fn classic_day_of_week_numbers_mean_what_crontab_means() {
        // 2026-11-28 is a Saturday.
        let saturday = at(2026, 11, 28, 12, 0, 0);
        let monday = CronSchedule::parse("0 9 * * 1").expect("valid");
        let next = monday.next_after(saturday).expect("fires");
        assert_eq!(next.weekday(), Weekday::Mon);
        assert_eq!(next.hour(), 9);
        for sunday in ["0 9 * * 0", "0 9 * * 7", "0 9 * * SUN"] {
            let next = CronSchedule::parse(sunday)
                .expect("valid")
                .next_after(saturday)
                .expect("fires");
            assert_eq!(next.weekday(), Weekday::Sun, "{sunday}");
        }
        let weekend = CronSchedule::parse("0 9 * * 6-7").expect("valid");
        let first = weekend.next_after(saturday).expect("fires");
        assert_eq!(first.weekday(), Weekday::Sun);
        let weekdays = CronSchedule::parse("0 9 * * 1-5").expect("valid");
        let days: Vec<Weekday> = weekdays
            .schedule
            .after(&saturday)
            .take(5)
            .map(|t| t.weekday())
            .collect();
        assert_eq!(
            days,
            [
                Weekday::Mon,
                Weekday::Tue,
                Weekday::Wed,
                Weekday::Thu,
                Weekday::Fri
            ]
        );
    }

    #[test]
    fn bad_expressions_are_rejected() {
        for bad in [
            "",
            "* * *",
            "61 * * * *",
            "* * * * 9",
            "every hour",
            "1 2 3 4 5 6 7 8",
            "0 0 0 1 1 * 2001",
        ] {
            assert!(CronSchedule::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn due_when_never_fetched_or_a_fire_time_passed() {
        let schedule = CronSchedule::parse("*/30 * * * *").expect("valid");
        let now = at(2026, 11, 28, 10, 45, 0);
        assert!(schedule.is_due(None, now));
        assert!(schedule.is_due(Some(at(2026, 11, 28, 10, 29, 0)), now));
        assert!(!schedule.is_due(Some(at(2026, 11, 28, 10, 31, 0)), now));
    }

    #[test]
    fn jitter_is_stable_bounded_and_spreads_sources() {
        let spread = Duration::from_secs(180);
        let a = jitter("imdaily", spread);
        assert_eq!(a, jitter("imdaily", spread));
        assert!(a < chrono::Duration::seconds(180) && a >= chrono::Duration::zero());
        let distinct: std::collections::HashSet<i64> = (0..50)
            .map(|i| jitter(&format!("source-{i}"), spread).num_milliseconds())
            .collect();
        assert!(distinct.len() > 40);
        let schedule = CronSchedule::parse("*/30 * * * *").expect("valid");
        let now = at(2026, 11, 28, 10, 5, 0);
        let next = schedule.next_fetch("imdaily", now).expect("fires");
        assert!(next >= at(2026, 11, 28, 10, 30, 0) && next < at(2026, 11, 28, 10, 32, 0));
    }
}
