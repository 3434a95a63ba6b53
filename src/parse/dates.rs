//! Feed dates, read as Python's feedparser 6.0.14 reads them.
//!
//! feedparser is the reference for what a feed's date means, so this is a port of its
//! `feedparser/datetimes/` handlers, tried in feedparser's order: W3C-DTF (with MSSQL's
//! space), RFC 822, ISO 8601, asctime, Perforce, Hungarian, Greek, Korean (OnBlog). Every
//! string feedparser reads gives the same instant, in whole seconds, and so do its quirks,
//! which a feed written for feedparser-based readers already lives with:
//! - a zone name it does not know (`CEST`, `JST`, `IST`, military letters other than
//!   A, N, M, Y, Z) is UTC, and `EST`/`CST`/... are the US zones RFC 822 names;
//! - two-digit RFC 822 years 90..99 are 19xx and 00..89 are 20xx;
//! - W3C-DTF `+0530` (no colon) is read as `+05:00`, only the hour counts;
//! - fractions of a second are dropped; `2024-03-08T14:00:60Z` and `2024-02-30` roll over
//!   into the next minute or month (ISO 8601 handler);
//! - ISO 8601's basic format needs colons in the time: `20240308T140000Z` is midnight;
//! - a date, a space, a time and a zone *name* with a `t` in it (`2024-03-08 14:00:00 EST`)
//!   is the date at midnight UTC, and so is Korean "Nate" (`2004-05-25 오후 11:23:17`),
//!   which feedparser's ISO 8601 handler reads before its Nate handler can.
//!
//! The unit test `agrees_with_feedparser` holds this to feedparser's answers for every
//! string in `tests/data/dates/feedparser.jsonl`: the everyday and sloppy forms, garbage,
//! and every date in the reference corpus, written by `tests/data/dates/feedparser_dates.py`.
//!
//! # Deliberate differences from feedparser
//!
//! Each is a row of the differential test's table of deliberate differences.
//! - feedparser's ISO 8601 handler fills a missing year, month or day in from today's date
//!   (`2024/03/08` becomes the first of the current month, `12:30` today at 12:30): the
//!   answer changes with the day it is read, so an entry would move on every refetch. Here
//!   those strings give `None` (the entry's first-seen time stands in, which is what that
//!   guess approximates), except the forms below that a reader knows.
//! - Read where feedparser gives `None` or today's date, each to the instant a reader
//!   would see, in UTC when no zone is written:
//!   - an RFC 822 date after a first word that is not an English weekday, such as a
//!     weekday in another language (`Mi, 27 Nov 2024 10:00:00 +0100`, `Do., ...`), or
//!     after any weekday without a time zone (`Tue, 10 Dec 2024 19:45`: feedparser reads
//!     that only without the weekday); the year has two or four digits;
//!   - RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`), a comma after the day (`November 27,
//!     2026`, `Nov 27, 2026 08:30:00 GMT`), and a 12-hour clock (`Dec 10, 2024 7:45 PM`);
//!   - `2024/03/08 [14:00[:00]] [zone]`, `08.03.2024 [14:00]` (day first, as in Europe),
//!     `2024年3月8日 [14:00[:00]]`;
//!   - the Hungarian (`2004-július-13T9:15-05:00`) and Korean OnBlog (`2004년 05월 28일
//!     01:31:15`, +09:00) forms feedparser ships handlers for, which its ISO 8601 handler
//!     reaches first and reads as the first of the current month.
//! - Digits are ASCII: feedparser (Python's `int` and `\d`) also reads Arabic-Indic and
//!   other Unicode digits.
//! - A string longer than 256 characters is `None` (bounded work per untrusted string);
//!   feedparser reads an RFC 822 date followed by any amount of text.
//!
//! A date that cannot be read is `None`, and the entry's first-seen time stands in: an
//! entry is never dropped for its date.

use chrono::{DateTime, Datelike, Utc};

/// Longer strings are not dates; the cap bounds the work an untrusted string can cause.
const MAX_CHARS: usize = 256;

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z: Python's `datetime` range, outside
/// which feedparser's handlers fail (or hand back a tuple Python cannot use).
const MIN_SECONDS: i128 = -62_135_596_800;
const MAX_SECONDS: i128 = 253_402_300_799;

/// Saturation bound for integers read from a date: far outside every valid field, so a
/// huge number stays a (failing) number, as Python's unbounded `int` is.
const INT_LIMIT: i128 = 1_000_000_000_000_000_000;

/// W3C-DTF zone names (feedparser `w3dtf.timezonenames`), in hours.
const W3DTF_ZONES: &[(&str, i128)] = &[
    ("ut", 0),
    ("gmt", 0),
    ("z", 0),
    ("adt", -3),
    ("ast", -4),
    ("at", -4),
    ("edt", -4),
    ("est", -5),
    ("et", -5),
    ("cdt", -5),
    ("cst", -6),
    ("ct", -6),
    ("mdt", -6),
    ("mst", -7),
    ("mt", -7),
    ("pdt", -7),
    ("pst", -8),
    ("pt", -8),
    ("a", -1),
    ("n", 1),
    ("m", -12),
    ("y", 12),
];

/// RFC 822 zone names (feedparser `rfc822.timezone_names`): the W3C-DTF ones and two more.
const RFC822_EXTRA_ZONES: &[(&str, i128)] = &[("met", 1), ("mest", 2)];

const DAY_NAMES: &[&str] = &["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Parses a feed date as feedparser does; `None` when it is not a date we can read.
pub(crate) fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    if text.len() > MAX_CHARS * 4 {
        return None;
    }
    // feedparser strips every element's text before it reads a date.
    let text = text.trim_matches(py_space);
    if text.is_empty() || text.chars().count() > MAX_CHARS {
        return None;
    }
    let seconds = feedparser(text).or_else(|| beyond_feedparser(text))?;
    DateTime::from_timestamp(i64::try_from(seconds).ok()?, 0)
}

/// feedparser's handlers in its order (`datetimes/__init__.py`): the first that reads the
/// string wins. Its Korean "Nate" handler is left out: its strings start with a date that
/// the ISO 8601 handler reads first, so feedparser never reaches it.
fn feedparser(text: &str) -> Option<i128> {
    w3dtf(text)
        .or_else(|| rfc822(text))
        .or_else(|| iso8601(text))
        .or_else(|| asctime(text))
        .or_else(|| perforce(text))
        .or_else(|| hungarian(text))
        .or_else(|| greek(text))
        .or_else(|| onblog(text))
}

// ---------------------------------------------------------------------------------------
// Python's building blocks, as the handlers use them.

/// Python's `str.isspace`, which `split()`, `strip()`, `int()` and the regex `\s` use:
/// Unicode White_Space plus the four ASCII information separators.
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.split()` without arguments.
fn split_ws(text: &str) -> impl Iterator<Item = &str> {
    text.split(py_space).filter(|part| !part.is_empty())
}

/// Python's `text[from:to]`, counted in characters and clamped.
fn py_slice(text: &str, from: usize, to: usize) -> &str {
    let byte = |n: usize| text.char_indices().nth(n).map_or(text.len(), |(i, _)| i);
    let (start, end) = (byte(from), byte(to));
    if start >= end {
        ""
    } else {
        &text[start..end]
    }
}

/// Python's `int(text)`: surrounding spaces, a sign, digits with single underscores
/// between them. Saturates at [`INT_LIMIT`].
fn py_int(text: &str) -> Option<i128> {
    let text = text.trim_matches(py_space);
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let mut value: i128 = 0;
    let mut after_digit = false;
    for c in digits.chars() {
        if c == '_' && after_digit {
            after_digit = false;
            continue;
        }
        let digit = c.to_digit(10).filter(|_| c.is_ascii_digit())?;
        value = (value * 10 + i128::from(digit)).min(INT_LIMIT);
        after_digit = true;
    }
    if !after_digit {
        return None;
    }
    Some(if negative { -value } else { value })
}

/// Python's `int(float(text))`: a decimal or exponent number, truncated toward zero.
fn py_float_trunc(text: &str) -> Option<i128> {
    let text = text.trim_matches(py_space);
    if !text.is_empty() && text.len() <= 18 && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    if !text.is_ascii() {
        return None;
    }
    let bytes = text.as_bytes();
    // Python allows an underscore only between two digits; Rust allows none.
    for (i, &b) in bytes.iter().enumerate() {
        let digit_at =
            |j: Option<usize>| j.and_then(|j| bytes.get(j)).is_some_and(u8::is_ascii_digit);
        if b == b'_' && !(digit_at(i.checked_sub(1)) && digit_at(Some(i + 1))) {
            return None;
        }
    }
    let value: f64 = text.replace('_', "").parse().ok()?;
    if !value.is_finite() {
        return None;
    }
    // Truncation toward zero; the cast saturates, and the bound keeps it a failing field.
    Some((value.trunc() as i128).clamp(-INT_LIMIT, INT_LIMIT))
}

fn zone_hours(zones: &[(&str, i128)], name: &str) -> Option<i128> {
    zones
        .iter()
        .find(|(zone, _)| *zone == name)
        .map(|(_, hours)| *hours)
}

fn month_number(name: &str) -> Option<i128> {
    MONTHS
        .iter()
        .position(|m| *m == name)
        .map(|i| i as i128 + 1)
}

fn is_leap(year: i128) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i128, month: i128) -> i128 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given day of the proleptic Gregorian calendar, for a month
/// in 1..=12 and any day (out-of-month days count on linearly, as `timegm` does).
fn days_from_civil(year: i128, month: i128, day: i128) -> i128 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn in_range(seconds: i128) -> Option<i128> {
    (MIN_SECONDS..=MAX_SECONDS)
        .contains(&seconds)
        .then_some(seconds)
}

/// `datetime.datetime(year, month, day, hour, minute, second)` as seconds since the epoch;
/// `None` where Python raises ValueError.
fn py_datetime(
    year: i128,
    month: i128,
    day: i128,
    hour: i128,
    minute: i128,
    second: i128,
) -> Option<i128> {
    let valid = (1..=9999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=days_in_month(year, month)).contains(&day)
        && (0..24).contains(&hour)
        && (0..60).contains(&minute)
        && (0..60).contains(&second);
    valid.then(|| days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// `stamp - timedelta(hours=hours, minutes=minutes)`, `None` where Python overflows.
fn minus_offset(stamp: i128, hours: i128, minutes: i128) -> Option<i128> {
    in_range(stamp - hours * 3_600 - minutes * 60)
}

// ---------------------------------------------------------------------------------------
// The handlers.

/// `_parse_date_w3dtf`: W3C-DTF, with a space allowed between date, time and zone.
fn w3dtf(text: &str) -> Option<i128> {
    // The year is the first four characters and goes through `int`: a digit or `+` first.
    if !text.starts_with(|c: char| c.is_ascii_digit() || c == '+') {
        return None;
    }
    let lower = lowercase(text);
    // Python's `parts`: the date, the time, and for MSSQL's `date time zone` the zone.
    let (date, time, spaced_zone) = {
        let mut pieces = lower.split('t');
        let first = pieces.next()?;
        match (pieces.next(), pieces.next()) {
            (Some(time), None) => (first, time, None),
            (Some(_), Some(_)) => return None,
            (None, _) => {
                let mut words = split_ws(first);
                let date = words.next()?;
                match words.next() {
                    None => (date, "00:00:00z", None),
                    Some(time) => (date, time, words.next()),
                }
            }
        }
    };
    let mut fields = date.splitn(3, '-');
    let year = fields.next()?;
    if year.chars().count() != 4 {
        return None;
    }
    let (year, month, day) = (
        py_int(year)?,
        py_int(fields.next().unwrap_or("1"))?,
        py_int(fields.next().unwrap_or("1"))?,
    );
    let (time, z) = match time.strip_suffix('z') {
        Some(time) => (time, true),
        None => (time, false),
    };
    let zone_at = time
        .find('-')
        .or_else(|| time.find('+'))
        .unwrap_or(time.len());
    let (time, numeric_zone) = time.split_at(zone_at);
    let zone = spaced_zone.unwrap_or(if z { "z" } else { numeric_zone });
    let (zone_hour, zone_minute) = if zone.starts_with(['-', '+']) {
        // `zone[4:]`: the minutes of `+05:30`, and the last digit of `+0530`.
        let (hours, minutes) = (
            py_int(py_slice(zone, 1, 3))?,
            py_int(py_slice(zone, 4, usize::MAX))?,
        );
        if zone.starts_with('-') {
            (-hours, -minutes)
        } else {
            (hours, minutes)
        }
    } else {
        (zone_hours(W3DTF_ZONES, zone).unwrap_or(0), 0)
    };
    let mut clock = time.splitn(3, ':');
    let mut next = || py_float_trunc(clock.next().unwrap_or("0"));
    let (hour, minute, second) = (next()?, next()?, next()?);
    let stamp = py_datetime(year, month, day, hour, minute, second)?;
    minus_offset(stamp, zone_hour, zone_minute)
}

/// Python's `str.lower()`.
fn lowercase(text: &str) -> String {
    if text.is_ascii() {
        text.to_ascii_lowercase()
    } else {
        text.to_lowercase()
    }
}

/// `_parse_date_rfc822`: RFC 822 and its sloppy forms (two-digit years, swapped day and
/// month, any word starting with a day name, a missing time or zone).
fn rfc822(text: &str) -> Option<i128> {
    let lower = lowercase(text);
    let mut parts: Vec<&str> = split_ws(&lower).collect();
    if parts.len() < 5 {
        parts.extend(["00:00:00", "0000"]);
    }
    if DAY_NAMES.contains(&py_slice(parts[0], 0, 3)) {
        parts.remove(0);
    }
    if parts.len() < 5 {
        return None;
    }
    let mut month = month_number(py_slice(parts[1], 0, 3));
    let day = match py_int(parts[0]) {
        Some(day) => day,
        None => {
            // The month first: `Mar 08 2024`.
            let swapped = month_number(py_slice(parts[0], 0, 3))?;
            let day = py_int(parts[1])?;
            month = Some(swapped);
            day
        }
    };
    let month = month?;
    let mut year = py_int(parts[2])?;
    if parts[2].chars().count() <= 2 {
        year += if year < 90 { 2000 } else { 1900 };
    }
    let mut time: Vec<&str> = parts[3].split(':').collect();
    if time.len() > 3 {
        return None;
    }
    time.resize(3, "0");
    let (hour, minute, second) = (py_int(time[0])?, py_int(time[1])?, py_int(time[2])?);
    let mut zone = parts[4].strip_prefix("etc/").unwrap_or(parts[4]).to_owned();
    if let Some(rest) = zone.strip_prefix("gmt") {
        // `GMT+05:30` is `+0530`; `GMT` stays.
        let offset = rest.replace(':', "");
        zone = if offset.is_empty() {
            "gmt".to_owned()
        } else {
            offset
        };
    }
    let (zone_hour, zone_minute) = if zone.starts_with(['-', '+']) {
        let minutes_from = if zone.contains(':') { 4 } else { 3 };
        let hours = py_int(py_slice(&zone, 1, 3))?;
        let minutes = py_int(py_slice(&zone, minutes_from, usize::MAX))?;
        if zone.starts_with('-') {
            (-hours, -minutes)
        } else {
            (hours, minutes)
        }
    } else {
        let hours =
            zone_hours(W3DTF_ZONES, &zone).or_else(|| zone_hours(RFC822_EXTRA_ZONES, &zone));
        (hours.unwrap_or(0), 0)
    };
    let stamp = py_datetime(year, month, day, hour, minute, second)?;
    minus_offset(stamp, zone_hour, zone_minute)
}

#[derive(Clone, Copy)]
enum Digit {
    Any,
    ZeroOne,
    ZeroToThree,
}

impl Digit {
    fn accepts(self, c: char) -> bool {
        match self {
            Digit::Any => c.is_ascii_digit(),
            Digit::ZeroOne => matches!(c, '0' | '1'),
            Digit::ZeroToThree => matches!(c, '0'..='3'),
        }
    }
}

#[derive(Clone, Copy)]
enum Slot {
    Year = 0,
    Month = 1,
    Day = 2,
    Ordinal = 3,
    Century = 4,
}

/// One piece of feedparser's ISO 8601 templates (`YYYY-?MM-?DD`, ...).
#[derive(Clone, Copy)]
enum Piece {
    Lit(char),
    OptLit(char),
    Field(Slot, &'static [Digit]),
    OptField(Slot, &'static [Digit]),
    End,
}

const YEAR4: &[Digit] = &[Digit::Any; 4];
const YEAR2: &[Digit] = &[Digit::Any; 2];
const MONTH2: &[Digit] = &[Digit::ZeroOne, Digit::Any];
const DAY2: &[Digit] = &[Digit::ZeroToThree, Digit::Any];
const ORDINAL3: &[Digit] = &[Digit::ZeroToThree, Digit::Any, Digit::Any];

/// feedparser's `_iso8601_tmpl`, in its order: the first that matches the start wins.
const ISO8601_TEMPLATES: &[&[Piece]] = {
    use Piece::*;
    use Slot::*;
    &[
        &[
            Field(Year, YEAR4),
            OptLit('-'),
            Field(Month, MONTH2),
            OptLit('-'),
            Field(Day, DAY2),
        ],
        &[
            Field(Year, YEAR4),
            Lit('-'),
            Lit('0'),
            OptField(Month, MONTH2),
            OptLit('-'),
            Field(Day, DAY2),
        ],
        &[Field(Year, YEAR4), Lit('-'), Field(Month, MONTH2)],
        &[Field(Year, YEAR4), OptLit('-'), Field(Ordinal, ORDINAL3)],
        &[
            Field(Year, YEAR2),
            OptLit('-'),
            Field(Month, MONTH2),
            OptLit('-'),
            Field(Day, DAY2),
        ],
        &[Field(Year, YEAR2), OptLit('-'), Field(Ordinal, ORDINAL3)],
        &[Field(Year, YEAR4)],
        &[
            Lit('-'),
            Field(Year, YEAR2),
            OptLit('-'),
            Field(Month, MONTH2),
        ],
        &[Lit('-'), Field(Ordinal, ORDINAL3)],
        &[Lit('-'), Field(Year, YEAR2)],
        &[
            Lit('-'),
            Lit('-'),
            Field(Month, MONTH2),
            OptLit('-'),
            Field(Day, DAY2),
        ],
        &[Lit('-'), Lit('-'), Field(Month, MONTH2)],
        &[Lit('-'), Lit('-'), Lit('-'), Field(Day, DAY2)],
        &[Field(Century, YEAR2), End],
        &[],
    ]
};

/// Where each slot matched: a range of the characters.
type Captures = [Option<(usize, usize)>; 5];

/// A regex match of the template at `at`, trying an optional piece before skipping it, as
/// Python's backtracking does. Templates have at most three optional pieces.
fn match_template(
    pieces: &[Piece],
    chars: &[char],
    at: usize,
    mut captures: Captures,
) -> Option<(usize, Captures)> {
    let Some((piece, rest)) = pieces.split_first() else {
        return Some((at, captures));
    };
    let field = |digits: &[Digit]| {
        let end = at + digits.len();
        let matches = chars.len() >= end
            && digits
                .iter()
                .zip(&chars[at..end])
                .all(|(d, c)| d.accepts(*c));
        matches.then_some(end)
    };
    match *piece {
        Piece::Lit(c) => (chars.get(at) == Some(&c))
            .then(|| match_template(rest, chars, at + 1, captures))
            .flatten(),
        Piece::OptLit(c) => (chars.get(at) == Some(&c))
            .then(|| match_template(rest, chars, at + 1, captures))
            .flatten()
            .or_else(|| match_template(rest, chars, at, captures)),
        Piece::Field(slot, digits) => {
            let end = field(digits)?;
            captures[slot as usize] = Some((at, end));
            match_template(rest, chars, end, captures)
        }
        Piece::OptField(slot, digits) => {
            let taken = field(digits).and_then(|end| {
                let mut with = captures;
                with[slot as usize] = Some((at, end));
                match_template(rest, chars, end, with)
            });
            taken.or_else(|| match_template(rest, chars, at, captures))
        }
        Piece::End => (at == chars.len())
            .then(|| match_template(rest, chars, at, captures))
            .flatten(),
    }
}

/// The optional time after an ISO 8601 template:
/// `(T?HH:MM(:SS)?(\.\d+)?([+-]HH(:MM)?|Z)?)?`, case-sensitive.
struct IsoTime {
    hour: i128,
    minute: i128,
    second: i128,
    /// Hours and minutes to add to reach UTC.
    to_utc: (i128, i128),
}

fn iso8601_time(chars: &[char], at: usize) -> Option<IsoTime> {
    let digits2 = |i: usize| -> Option<i128> {
        let (a, b) = (chars.get(i)?.to_digit(10)?, chars.get(i + 1)?.to_digit(10)?);
        (chars[i].is_ascii_digit() && chars[i + 1].is_ascii_digit())
            .then_some(i128::from(a * 10 + b))
    };
    let hour_minute = |i: usize| {
        Some((
            digits2(i)?,
            (chars.get(i + 2) == Some(&':')).then_some(())?,
            digits2(i + 3)?,
        ))
    };
    let mut at = at;
    let (hour, _, minute) = match hour_minute(at + 1).filter(|_| chars.get(at) == Some(&'T')) {
        Some(found) => {
            at += 1;
            found
        }
        None => hour_minute(at)?,
    };
    at += 5;
    let mut second = 0;
    if chars.get(at) == Some(&':') {
        if let Some(s) = digits2(at + 1) {
            second = s;
            at += 3;
        }
    }
    if chars.get(at) == Some(&'.') && chars.get(at + 1).is_some_and(char::is_ascii_digit) {
        at += 1;
        while chars.get(at).is_some_and(char::is_ascii_digit) {
            at += 1;
        }
    }
    let mut to_utc = (0, 0);
    match chars.get(at) {
        Some(&sign @ ('+' | '-')) if digits2(at + 1).is_some() => {
            let hours = digits2(at + 1).unwrap_or(0);
            let minutes = match chars.get(at + 3) {
                Some(':') => digits2(at + 4).unwrap_or(0),
                _ => 0,
            };
            to_utc = if sign == '-' {
                (hours, minutes)
            } else {
                (-hours, -minutes)
            };
        }
        // `Z`, or nothing: already UTC.
        _ => {}
    }
    Some(IsoTime {
        hour,
        minute,
        second,
        to_utc,
    })
}

/// `_parse_date_iso8601`, without the readings that depend on today's date (`None`).
/// Fields out of range roll over, as `time.mktime` normalizes them.
fn iso8601(text: &str) -> Option<i128> {
    // Every template starts with a digit or `-`, the bare time with a digit or `T`.
    if !text.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == 'T') {
        return None;
    }
    let chars: Vec<char> = text.chars().collect();
    let (end, captures) = ISO8601_TEMPLATES
        .iter()
        .find_map(|template| match_template(template, &chars, 0, [None; 5]))?;
    let time = iso8601_time(&chars, end);
    if end == 0 && time.is_none() {
        return None;
    }
    let value = |slot: Slot| -> Option<i128> {
        let (from, to) = captures[slot as usize]?;
        chars[from..to].iter().collect::<String>().parse().ok()
    };
    let ordinal = value(Slot::Ordinal).unwrap_or(0);
    let year = match (value(Slot::Century), captures[Slot::Year as usize]) {
        (Some(century), _) => (century - 1) * 100 + 1,
        // Two digits are a year of the current century.
        (None, Some((from, to))) if to - from == 2 => {
            i128::from(Utc::now().year()) / 100 * 100 + value(Slot::Year)?
        }
        (None, Some(_)) => value(Slot::Year)?,
        (None, None) => return None, // this year
    };
    let month = match value(Slot::Month) {
        Some(month) => month,
        None if ordinal != 0 => 1,
        None => return None, // this month
    };
    let day = match value(Slot::Day) {
        Some(day) => day,
        None if ordinal != 0 => ordinal,
        None if captures[Slot::Century as usize].is_some()
            || captures[Slot::Year as usize].is_some()
            || captures[Slot::Month as usize].is_some() =>
        {
            1
        }
        None => return None, // today
    };
    let (hour, minute, second, (to_utc_hours, to_utc_minutes)) = match time {
        Some(t) => (t.hour, t.minute, t.second, t.to_utc),
        None => (0, 0, 0, (0, 0)),
    };
    let (year, month) = (
        year + (month - 1).div_euclid(12),
        (month - 1).rem_euclid(12) + 1,
    );
    let days = days_from_civil(year, month, 1) + day - 1;
    in_range(
        days * 86_400 + (hour + to_utc_hours) * 3_600 + (minute + to_utc_minutes) * 60 + second,
    )
}

/// `_parse_date_asctime`: `Sun Nov  6 08:49:37 [+0100] 1994`, reordered into RFC 822.
fn asctime(text: &str) -> Option<i128> {
    let mut parts: Vec<&str> = split_ws(text).collect();
    if parts.len() == 5 {
        parts.insert(4, "+0000");
    }
    if parts.len() != 6 {
        return None;
    }
    rfc822(&[parts[0], parts[2], parts[1], parts[5], parts[3], parts[4]].join(" "))
}

/// Python's `\w`.
fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `_parse_date_perforce`: `Fri, 2006/09/15 08:19:53 EDT` anywhere in the string, read
/// through the standard library's `email._parseaddr.parsedate_tz`.
fn perforce(text: &str) -> Option<i128> {
    if !text.contains(", ") || !text.contains('/') {
        return None;
    }
    let chars: Vec<char> = text.chars().collect();
    let [weekday, year, month, day, hour, minute, second, zone] =
        (0..chars.len()).find_map(|start| perforce_at(&chars, start))?;
    let month = match py_int(&month)? {
        // `months[int(month) - 1]`: 0 is December, above 12 raises.
        0 => "Dec",
        m @ 1..=12 => [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ][m as usize - 1],
        _ => return None,
    };
    let (year, month, day, hour, minute, second, offset) = parsedate_tz(&format!(
        "{weekday}, {day} {month} {year} {hour}:{minute}:{second} {zone}"
    ))?;
    // `calendar.timegm`: a real year and month, the rest counted on linearly.
    if !(1..=9999).contains(&year) {
        return None;
    }
    let days = days_from_civil(year, month, 1) + day - 1;
    in_range(days * 86_400 + hour * 3_600 + minute * 60 + second - offset)
}

/// The regex `(\w{,3}), (\d{,4})/(\d{,2})/(\d{2}) (\d{,2}):(\d{2}):(\d{2}) (\w{,3})`
/// matched at `start`. Each bounded run is followed by a character it cannot contain, so
/// the regex's backtracking comes down to "the whole run, if it is short enough".
fn perforce_at(chars: &[char], start: usize) -> Option<[String; 8]> {
    let mut at = start;
    let mut run = |max: usize, class: fn(char) -> bool, then: Option<char>| -> Option<String> {
        let len = chars[at..].iter().take_while(|c| class(**c)).count();
        let len = if then.is_none() { len.min(max) } else { len };
        if len > max {
            return None;
        }
        let taken: String = chars[at..at + len].iter().collect();
        at += len;
        if let Some(then) = then {
            (chars.get(at) == Some(&then)).then_some(())?;
            at += 1;
        }
        Some(taken)
    };
    let digit: fn(char) -> bool = |c| c.is_ascii_digit();
    let weekday = run(3, is_word, Some(','))?;
    run(0, digit, Some(' '))?;
    let year = run(4, digit, Some('/'))?;
    let month = run(2, digit, Some('/'))?;
    let day = run(2, digit, Some(' ')).filter(|d| d.len() == 2)?;
    let hour = run(2, digit, Some(':'))?;
    let minute = run(2, digit, Some(':')).filter(|d| d.len() == 2)?;
    let second = run(2, digit, Some(' ')).filter(|d| d.len() == 2)?;
    let zone = run(3, is_word, None)?;
    Some([weekday, year, month, day, hour, minute, second, zone])
}

/// Python's `email._parseaddr._parsedate_tz` (then `parsedate_tz`, where no zone is 0):
/// year, month, day, hour, minute, second and the zone's offset in seconds.
#[allow(clippy::type_complexity)]
fn parsedate_tz(data: &str) -> Option<(i128, i128, i128, i128, i128, i128, i128)> {
    const NAMES: &[&str] = &[
        "jan",
        "feb",
        "mar",
        "apr",
        "may",
        "jun",
        "jul",
        "aug",
        "sep",
        "oct",
        "nov",
        "dec",
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    const ZONES: &[(&str, i128)] = &[
        ("UT", 0),
        ("UTC", 0),
        ("GMT", 0),
        ("Z", 0),
        ("AST", -400),
        ("ADT", -300),
        ("EST", -500),
        ("EDT", -400),
        ("CST", -600),
        ("CDT", -500),
        ("MST", -700),
        ("MDT", -600),
        ("PST", -800),
        ("PDT", -700),
    ];
    let mut data: Vec<String> = split_ws(data).map(str::to_owned).collect();
    let first = data.first()?.clone();
    if first.ends_with(',') || DAY_NAMES.contains(&first.to_lowercase().as_str()) {
        data.remove(0);
    } else if let Some(comma) = first.rfind(',') {
        data[0] = first[comma + 1..].to_owned();
    }
    if data.len() == 3 {
        let stuff: Vec<String> = data[0].split('-').map(str::to_owned).collect();
        if stuff.len() == 3 {
            data = stuff.into_iter().chain(data[1..].iter().cloned()).collect();
        }
    }
    if data.len() == 4 {
        let s = data[3].clone();
        let sign = s.find('+').or_else(|| s.find('-')).filter(|i| *i > 0);
        match sign {
            Some(i) => {
                data.truncate(3);
                data.extend([s[..i].to_owned(), s[i..].to_owned()]);
            }
            None => data.push(String::new()),
        }
    }
    if data.len() < 5 {
        return None;
    }
    let (mut dd, mut mm, mut yy, mut tm, mut tz) = (
        data[0].clone(),
        data[1].to_lowercase(),
        data[2].clone(),
        data[3].clone(),
        data[4].clone(),
    );
    if dd.is_empty() || mm.is_empty() || yy.is_empty() {
        return None;
    }
    if !NAMES.contains(&mm.as_str()) {
        (dd, mm) = (mm, dd.to_lowercase());
        if !NAMES.contains(&mm.as_str()) {
            return None;
        }
    }
    let mut month = NAMES.iter().position(|n| *n == mm)? as i128 + 1;
    if month > 12 {
        month -= 12;
    }
    if let Some(stripped) = dd.strip_suffix(',') {
        dd = stripped.to_owned();
    }
    if yy.find(':').is_some_and(|i| i > 0) {
        (yy, tm) = (tm, yy);
    }
    if let Some(stripped) = yy.strip_suffix(',') {
        yy = stripped.to_owned();
    }
    if yy.is_empty() || tm.is_empty() {
        return None;
    }
    if !yy.starts_with(|c: char| c.is_ascii_digit()) {
        (yy, tz) = (tz, yy);
    }
    if let Some(stripped) = tm.strip_suffix(',') {
        tm = stripped.to_owned();
    }
    let mut clock: Vec<&str> = tm.split(':').collect();
    if clock.len() == 1 && tm.contains('.') {
        clock = tm.split('.').collect();
    }
    let (thh, tmm, tss) = match clock[..] {
        [h, m] => (h, m, "0"),
        [h, m, s] => (h, m, s),
        _ => return None,
    };
    let (mut year, day) = (py_int(&yy)?, py_int(&dd)?);
    let (hour, minute, second) = (py_int(thh)?, py_int(tmm)?, py_int(tss)?);
    if year < 100 {
        year += if year > 68 { 1900 } else { 2000 };
    }
    let tz = tz.to_uppercase();
    let offset = zone_hours(ZONES, &tz).or_else(|| py_int(&tz)).unwrap_or(0);
    let (sign, magnitude) = (offset.signum(), offset.abs());
    let offset = sign * ((magnitude / 100) * 3_600 + (magnitude % 100) * 60);
    Some((year, month, day, hour, minute, second, offset))
}

/// A run of ASCII digits at `*at` of `min..=max` characters, then `then` (if any); `*at`
/// moves past both.
fn digit_run(
    chars: &[char],
    at: &mut usize,
    min: usize,
    max: usize,
    then: Option<char>,
) -> Option<String> {
    let len = chars[*at..]
        .iter()
        .take_while(|c| c.is_ascii_digit())
        .count();
    if !(min..=max).contains(&len) {
        return None;
    }
    let after = *at + len;
    if let Some(then) = then {
        (chars.get(after) == Some(&then)).then_some(())?;
    }
    let run = chars[*at..after].iter().collect();
    *at = after + usize::from(then.is_some());
    Some(run)
}

/// `_parse_date_hungarian`: `2004-július-13T9:15-05:00`.
fn hungarian(text: &str) -> Option<i128> {
    const MONTHS: &[(&str, &str)] = &[
        ("január", "01"),
        ("februári", "02"),
        ("március", "03"),
        ("április", "04"),
        ("máujus", "05"),
        ("június", "06"),
        ("július", "07"),
        ("augusztus", "08"),
        ("szeptember", "09"),
        ("október", "10"),
        ("november", "11"),
        ("december", "12"),
    ];
    // `(\d{4})-([^-]+)-(\d{,2})T(\d{,2}):(\d{2})([+-](\d{,2}:\d{2}))`
    if !text.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let chars: Vec<char> = text.chars().collect();
    let mut at = 0;
    let year = digit_run(&chars, &mut at, 4, 4, Some('-'))?;
    let name_len = chars[at..].iter().take_while(|c| **c != '-').count();
    (name_len > 0 && chars.get(at + name_len) == Some(&'-')).then_some(())?;
    let name: String = chars[at..at + name_len].iter().collect();
    at += name_len + 1;
    let month = MONTHS.iter().find(|(n, _)| *n == name)?.1;
    let day = digit_run(&chars, &mut at, 0, 2, Some('T'))?;
    let hour = digit_run(&chars, &mut at, 0, 2, Some(':'))?;
    let minute = digit_run(&chars, &mut at, 2, 2, None)?;
    let sign = *chars.get(at).filter(|c| matches!(c, '+' | '-'))?;
    at += 1;
    let zone_hours = digit_run(&chars, &mut at, 0, 2, Some(':'))?;
    let zone_minutes = digit_run(&chars, &mut at, 2, 2, None)?;
    // Rebuilt as feedparser does (one-digit day and hour padded), read by W3C-DTF rules.
    let pad = |s: String| if s.len() == 1 { format!("0{s}") } else { s };
    let (day, hour) = (pad(day), pad(hour));
    w3dtf(&format!(
        "{year}-{month}-{day}T{hour}:{minute}{sign}{zone_hours}:{zone_minutes}"
    ))
}

/// `_parse_date_greek`: `Κυρ, 11 Ιούλ 2004 12:00:00 EST`.
fn greek(text: &str) -> Option<i128> {
    const MONTHS: &[(&str, &str)] = &[
        ("Ιαν", "Jan"),
        ("Φεβ", "Feb"),
        ("Μάώ", "Mar"),
        ("Μαώ", "Mar"),
        ("Απρ", "Apr"),
        ("Μάι", "May"),
        ("Μαϊ", "May"),
        ("Μαι", "May"),
        ("Ιούν", "Jun"),
        ("Ιον", "Jun"),
        ("Ιούλ", "Jul"),
        ("Ιολ", "Jul"),
        ("Αύγ", "Aug"),
        ("Αυγ", "Aug"),
        ("Σεπ", "Sep"),
        ("Οκτ", "Oct"),
        ("Νοέ", "Nov"),
        ("Νοε", "Nov"),
        ("Δεκ", "Dec"),
    ];
    const DAYS: &[(&str, &str)] = &[
        ("Κυρ", "Sun"),
        ("Δευ", "Mon"),
        ("Τρι", "Tue"),
        ("Τετ", "Wed"),
        ("Πεμ", "Thu"),
        ("Παρ", "Fri"),
        ("Σαβ", "Sat"),
    ];
    // `([^,]+),\s+(\d{2})\s+([^\s]+)\s+(\d{4})\s+(\d{2}):(\d{2}):(\d{2})\s+([^\s]+)`
    let (weekday, rest) = text.split_once(',')?;
    let weekday = DAYS.iter().find(|(g, _)| *g == weekday)?.1;
    let spaced = |s: &str| {
        s.starts_with(py_space)
            .then(|| s.trim_start_matches(py_space).to_owned())
    };
    let take = |s: &str, n: usize, class: fn(char) -> bool| -> Option<(String, String)> {
        let taken: String = s.chars().take(n).collect();
        (taken.chars().count() == n && taken.chars().all(class))
            .then(|| (taken.clone(), s[taken.len()..].to_owned()))
    };
    let digit: fn(char) -> bool = |c| c.is_ascii_digit();
    let (day, rest) = take(&spaced(rest)?, 2, digit)?;
    let rest = spaced(&rest)?;
    let month_len = rest.find(py_space)?;
    let month = MONTHS.iter().find(|(g, _)| *g == &rest[..month_len])?.1;
    let (year, rest) = take(&spaced(&rest[month_len..])?, 4, digit)?;
    let (hour, rest) = take(&spaced(&rest)?, 2, digit)?;
    let (minute, rest) = take(rest.strip_prefix(':')?, 2, digit)?;
    let (second, rest) = take(rest.strip_prefix(':')?, 2, digit)?;
    let rest = spaced(&rest)?;
    let zone: String = rest.chars().take_while(|c| !py_space(*c)).collect();
    if zone.is_empty() {
        return None;
    }
    rfc822(&format!(
        "{weekday}, {day} {month} {year} {hour}:{minute}:{second} {zone}"
    ))
}

/// `_parse_date_onblog`: `2004년 05월 28일  01:31:15`, Korean time.
fn onblog(text: &str) -> Option<i128> {
    let mut rest = text;
    let mut fields = Vec::with_capacity(6);
    for (len, then) in [
        (4, Some('년')),
        (2, Some('월')),
        (2, Some('일')),
        (2, Some(':')),
        (2, Some(':')),
        (2, None),
    ] {
        let field = rest
            .get(..len)
            .filter(|f| f.chars().all(|c| c.is_ascii_digit()))?;
        rest = &rest[len..];
        if let Some(then) = then {
            rest = rest.strip_prefix(then)?;
            if then != ':' {
                rest = rest.strip_prefix(py_space)?.trim_start_matches(py_space);
            }
        }
        fields.push(field);
    }
    let [y, mo, d, h, mi, s] = fields[..] else {
        return None;
    };
    w3dtf(&format!("{y}-{mo}-{d}T{h}:{mi}:{s}+09:00"))
}

// ---------------------------------------------------------------------------------------
// Beyond feedparser: dates it cannot read (or reads as today's) that a reader knows.

fn beyond_feedparser(text: &str) -> Option<i128> {
    sloppy_rfc822(text).or_else(|| numeric_date(text))
}

/// RFC 822 after a weekday in any language or without a zone, RFC 850's `06-Nov-94`, a
/// comma after the day, a 12-hour clock: tidied, then read by feedparser's own rules (so an
/// unknown zone name is UTC there too).
fn sloppy_rfc822(text: &str) -> Option<i128> {
    let mut tokens: Vec<String> = Vec::new();
    for token in split_ws(text) {
        let lower = token.to_lowercase();
        let meridiem = ["am", "pm", "a.m.", "p.m."]
            .into_iter()
            .find(|m| lower.ends_with(m) && (lower.len() == m.len() || lower.contains(':')));
        match meridiem {
            Some(m) => {
                let clock = &lower[..lower.len() - m.len()];
                if !clock.is_empty() {
                    tokens.push(clock.to_owned());
                }
                let previous = tokens.last_mut().filter(|t| t.contains(':'))?;
                let (hour, rest) = previous.split_once(':')?;
                let hour = py_int(hour).filter(|h| (1..=12).contains(h))? % 12;
                let hour = if m.starts_with('p') { hour + 12 } else { hour };
                *previous = format!("{hour}:{rest}");
            }
            None => tokens.push(token.trim_end_matches([',', '.']).to_owned()),
        }
    }
    tokens.retain(|t| !t.is_empty());
    // RFC 850: `06-Nov-94`.
    if let Some(i) = tokens.iter().position(|t| {
        let pieces: Vec<&str> = t.split('-').collect();
        pieces.len() == 3 && month_number(py_slice(&pieces[1].to_lowercase(), 0, 3)).is_some()
    }) {
        let pieces: Vec<String> = tokens[i].split('-').map(str::to_owned).collect();
        tokens.splice(i..=i, pieces);
    }
    let first_is_word = tokens
        .first()
        .is_some_and(|t| t.chars().count() >= 2 && t.chars().all(char::is_alphabetic));
    let without_first = first_is_word.then(|| &tokens[1..]);
    for tokens in [without_first, Some(&tokens[..])].into_iter().flatten() {
        if plausible_year(tokens) {
            if let Some(seconds) = rfc822(&tokens.join(" ")) {
                return Some(seconds);
            }
        }
    }
    None
}

/// feedparser reads a three-digit RFC 822 year as it stands (`024` is the year 24); beyond
/// what it reads, only a two- or four-digit year is a date.
fn plausible_year(tokens: &[String]) -> bool {
    let tokens = match tokens.first() {
        Some(first) if DAY_NAMES.contains(&py_slice(&first.to_lowercase(), 0, 3)) => &tokens[1..],
        _ => tokens,
    };
    tokens
        .get(2)
        .is_some_and(|year| matches!(year.len(), 2 | 4) && year.chars().all(|c| c.is_ascii_digit()))
}

/// `2024/03/08`, `08.03.2024` (day first) and `2024年3月8日`, each with an optional time
/// (`14:00`, `14:00:00`, a fraction) and zone (`Z`, `+0800`, `+08:00`, `+08`, an RFC 822
/// name).
fn numeric_date(text: &str) -> Option<i128> {
    let chars: Vec<char> = text.chars().collect();
    let mut at = 0;
    let number = |at: &mut usize, min: usize, max: usize, then: Option<char>| -> Option<i128> {
        digit_run(&chars, at, min, max, then)?.parse().ok()
    };
    let year_first = chars.iter().take_while(|c| c.is_ascii_digit()).count() == 4;
    let (year, month, day) = if year_first {
        let year = number(&mut at, 4, 4, None)?;
        let (after_month, after_day) = match chars.get(at)? {
            '/' => ('/', None),
            '年' => ('月', Some('日')),
            _ => return None,
        };
        at += 1;
        let month = number(&mut at, 1, 2, Some(after_month))?;
        let day = number(&mut at, 1, 2, after_day)?;
        (year, month, day)
    } else {
        let day = number(&mut at, 1, 2, Some('.'))?;
        let month = number(&mut at, 1, 2, Some('.'))?;
        (number(&mut at, 4, 4, None)?, month, day)
    };
    let rest: String = chars[at..].iter().collect();
    let (hour, minute, second, zone) = time_and_zone(rest.trim_matches(py_space))?;
    let stamp = py_datetime(year, month, day, hour, minute, second)?;
    minus_offset(stamp, 0, zone)
}

/// An optional `HH:MM[:SS[.fff]]` and an optional zone after it; the zone in minutes.
fn time_and_zone(text: &str) -> Option<(i128, i128, i128, i128)> {
    if text.is_empty() {
        return Some((0, 0, 0, 0));
    }
    let (clock, zone) =
        match text.find(|c: char| py_space(c) || c == '+' || c == '-' || c.is_alphabetic()) {
            Some(i) => (&text[..i], text[i..].trim_start_matches(py_space)),
            None => (text, ""),
        };
    let mut fields = clock.splitn(3, ':');
    let field = |f: Option<&str>, max: usize| -> Option<i128> {
        let f = f?;
        (!f.is_empty() && f.len() <= max && f.chars().all(|c| c.is_ascii_digit()))
            .then(|| f.parse().ok())?
    };
    let hour = field(fields.next(), 2)?;
    let minute = field(fields.next(), 2)?;
    let second = match fields.next() {
        None => 0,
        Some(s) => {
            let whole = s.split_once(['.', ',']).map_or(s, |(whole, fraction)| {
                if fraction.chars().all(|c| c.is_ascii_digit()) {
                    whole
                } else {
                    "x"
                }
            });
            field(Some(whole), 2)?
        }
    };
    let zone = zone.to_lowercase();
    let minutes = if zone.is_empty() {
        0
    } else if let Some(hours) =
        zone_hours(W3DTF_ZONES, &zone).or_else(|| zone_hours(RFC822_EXTRA_ZONES, &zone))
    {
        hours * 60
    } else {
        let sign = match zone.chars().next()? {
            '+' => 1,
            '-' => -1,
            _ => return None,
        };
        let digits = zone[1..].replacen(':', "", 1);
        if !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let (hours, minutes) = match digits.len() {
            2 => (digits.parse::<i128>().ok()?, 0),
            4 => (
                digits[..2].parse::<i128>().ok()?,
                digits[2..].parse::<i128>().ok()?,
            ),
            _ => return None,
        };
        if hours > 23 || minutes > 59 {
            return None;
        }
        sign * (hours * 60 + minutes)
    };
    Some((hour, minute, second, minutes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    /// What feedparser makes of each string: tests/data/dates/feedparser.jsonl, written by
    /// tests/data/dates/feedparser_dates.py (its strings and how to run it are there).
    const FEEDPARSER: &str = include_str!("../../tests/data/dates/feedparser.jsonl");

    /// Where we differ from feedparser on purpose (see the module's documentation), with
    /// what we read: every `"clock"` row must be here.
    fn deliberate() -> Vec<(String, Option<&'static str>)> {
        let rows: &[(&str, Option<&str>)] = &[
            // A weekday in another language, or a weekday and no zone.
            (
                "Mi, 27 Nov 2024 10:00:00 +0100",
                Some("2024-11-27T09:00:00Z"),
            ),
            (
                "Mi, 27 Nov 2024 17:00:00 +0100",
                Some("2024-11-27T16:00:00Z"),
            ),
            (
                "Lun, 25 Nov 2024 10:00:00 +0100",
                Some("2024-11-25T09:00:00Z"),
            ),
            (
                "Do., 28 Nov 2024 10:00:00 +0100",
                Some("2024-11-28T09:00:00Z"),
            ),
            ("Tue, 10 Dec 2024 19:45", Some("2024-12-10T19:45:00Z")),
            ("Tue, 10 Dec 2024 19:45:30", Some("2024-12-10T19:45:30Z")),
            // RFC 850, a comma after the day, a 12-hour clock.
            (
                "Sunday, 06-Nov-94 08:49:37 GMT",
                Some("1994-11-06T08:49:37Z"),
            ),
            ("November 27, 2026", Some("2026-11-27T00:00:00Z")),
            ("Nov 27, 2026 08:30:00 GMT", Some("2026-11-27T08:30:00Z")),
            ("Dec 10, 2024 7:45 PM", Some("2024-12-10T19:45:00Z")),
            ("Dec 10, 2024 12:05 AM", Some("2024-12-10T00:05:00Z")),
            // Numeric dates; feedparser reads the year-first ones as this month's first.
            ("2024/03/08 14:00:00", Some("2024-03-08T14:00:00Z")),
            ("2024/03/08", Some("2024-03-08T00:00:00Z")),
            ("2024/3/8 14:00", Some("2024-03-08T14:00:00Z")),
            ("08.03.2024", Some("2024-03-08T00:00:00Z")),
            ("08.03.2024 14:00", Some("2024-03-08T14:00:00Z")),
            ("2024年03月08日 14:00:00", Some("2024-03-08T14:00:00Z")),
            ("2024年3月8日", Some("2024-03-08T00:00:00Z")),
            ("2024年3月8日 14:00", Some("2024-03-08T14:00:00Z")),
            // feedparser's own Hungarian and OnBlog handlers, which it never reaches.
            ("2004-július-13T9:15-05:00", Some("2004-07-13T14:15:00Z")),
            ("2004-október-1T14:00+01:00", Some("2004-10-01T13:00:00Z")),
            ("2004년 05월 28일  01:31:15", Some("2004-05-27T16:31:15Z")),
            // feedparser fills in today's year, month or day: no reading.
            ("2024-W10", None),
            ("2024-W10-5", None),
            ("12:30", None),
            ("20", None),
            ("--03-08", None),
            // ASCII digits only.
            ("٢٠٢٤-٠٣-٠٨", None),
        ];
        let mut rows: Vec<(String, Option<&str>)> =
            rows.iter().map(|(s, t)| (s.to_string(), *t)).collect();
        // At most 256 characters (feedparser: a clock reading, and the date before the text).
        rows.push(("9".repeat(300), None));
        rows.push((
            format!("Fri, 08 Mar 2024 14:00:00 GMT{}", " x".repeat(200)),
            None,
        ));
        rows
    }

    /// Our reading as the table writes instants; a fraction of a second would show.
    fn read(text: &str) -> Option<String> {
        parse_date(text).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true))
    }

    struct Row {
        input: String,
        feedparser: Option<String>,
        from: String,
    }

    fn rows() -> Vec<Row> {
        FEEDPARSER
            .lines()
            .map(|line| {
                let row: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
                Row {
                    input: row["input"].as_str().expect("input").to_owned(),
                    feedparser: row["feedparser"].as_str().map(str::to_owned),
                    from: row["from"].as_str().expect("from").to_owned(),
                }
            })
            .collect()
    }

    #[test]
    fn agrees_with_feedparser() {
        let rows = rows();
        let deliberate = deliberate();
        let deliberate: HashMap<&str, Option<&str>> =
            deliberate.iter().map(|(s, t)| (s.as_str(), *t)).collect();
        assert!(rows.iter().filter(|r| r.from == "table").count() >= 120);
        let mut failures = Vec::new();
        for row in &rows {
            let expected = match deliberate.get(row.input.as_str()) {
                Some(ours) => ours.map(str::to_owned),
                None if row.feedparser.as_deref() == Some("clock") => {
                    failures.push(format!(
                        "{:?} ({}): feedparser's reading depends on today's date; list it in deliberate()",
                        row.input, row.from
                    ));
                    continue;
                }
                None => row.feedparser.clone(),
            };
            let ours = read(&row.input);
            if ours != expected {
                failures.push(format!(
                    "{:?} ({}): feedparser {:?}, expected {expected:?}, parse_date {ours:?}",
                    row.input, row.from, row.feedparser
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} disagreements:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn every_deliberate_difference_is_one() {
        let rows = rows();
        let by_input: HashMap<&str, &Row> = rows.iter().map(|r| (r.input.as_str(), r)).collect();
        let mut seen = HashSet::new();
        for (input, ours) in deliberate() {
            assert!(seen.insert(input.clone()), "{input:?} listed twice");
            let row = by_input
                .get(input.as_str())
                .unwrap_or_else(|| panic!("{input:?} is not in the table"));
            assert_ne!(
                row.feedparser.as_deref(),
                ours,
                "{input:?}: feedparser agrees, not a difference"
            );
        }
    }

    #[test]
    fn everyday_forms() {
        for (text, expected) in [
            ("Fri, 27 Nov 2026 08:30:00 +0800", "2026-11-27T00:30:00Z"),
            ("Fri, 27 Nov 2026 08:30:00 EST", "2026-11-27T13:30:00Z"),
            ("27 Nov 26 08:30:00", "2026-11-27T08:30:00Z"),
            ("2026-11-27T08:30:00+08:00", "2026-11-27T00:30:00Z"),
            ("2026-11-27T08:30:00.123Z", "2026-11-27T08:30:00Z"),
            ("2026-11-27 08:30:00", "2026-11-27T08:30:00Z"),
            ("2026-11-27", "2026-11-27T00:00:00Z"),
            (
                "\n  Fri, 27 Nov 2026 08:30:00 GMT\n",
                "2026-11-27T08:30:00Z",
            ),
        ] {
            assert_eq!(read(text).as_deref(), Some(expected), "{text:?}");
        }
    }

    #[test]
    fn garbage_is_none_and_never_panics() {
        for garbage in [
            "",
            "yesterday",
            "32 Nov 2026",
            "0000-00-00",
            "Fri, 99 Foo",
            "ÿÿÿ",
            "+",
            "T-",
            "年",
            "1/",
        ] {
            assert_eq!(read(garbage), None, "{garbage:?}");
        }
        // Every prefix and suffix of real dates, with odd characters around, must not panic.
        for base in [
            "Κυρ, 11 Ιούλ 2004 12:00:00 EST",
            "2004-július-13T9:15-05:00",
            "Fri, 2006/09/15 08:19:53 EDT",
        ] {
            let chars: Vec<char> = base.chars().collect();
            for i in 0..=chars.len() {
                let (head, tail): (String, String) =
                    (chars[..i].iter().collect(), chars[i..].iter().collect());
                for text in [
                    head.clone(),
                    tail.clone(),
                    format!("{head}ű{tail}"),
                    format!("{head}年{tail}"),
                ] {
                    let _ = parse_date(&text);
                }
            }
        }
        assert_eq!(parse_date(&"9".repeat(10_000)), None);
        assert_eq!(parse_date(&"Fri, ".repeat(10_000)), None);
    }
}
