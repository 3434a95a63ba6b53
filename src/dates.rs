//! Dates as feeds really write them: RFC 3339 and RFC 822 (with named zones, wrong weekdays,
//! two-digit years), ISO 8601 without a zone, dates without times, Chinese dates. Anything
//! else is `None`, and the entry's first-seen time stands in: an entry is never dropped for
//! its date.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Zone abbreviations beyond the ones RFC 822 defines (UT, GMT, EST ... PDT, which chrono
/// knows). `CST` stays US Central as RFC 822 says.
const ZONES: &[(&str, i32)] = &[
    ("UTC", 0),
    ("Z", 0),
    ("WET", 0),
    ("BST", 60),
    ("IST", 330),
    ("CET", 60),
    ("CEST", 120),
    ("MET", 60),
    ("MEST", 120),
    ("WEST", 60),
    ("EET", 120),
    ("EEST", 180),
    ("MSK", 180),
    ("HKT", 480),
    ("SGT", 480),
    ("AWST", 480),
    ("JST", 540),
    ("KST", 540),
    ("ACST", 570),
    ("AEST", 600),
    ("AEDT", 660),
    ("NZST", 720),
    ("NZDT", 780),
    ("AKST", -540),
    ("AKDT", -480),
    ("HST", -600),
];

/// Parses a feed date; `None` when it is not a date we can read.
pub fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() || text.len() > 100 {
        return None;
    }
    rfc3339(&text)
        .or_else(|| rfc2822(&text))
        .or_else(|| without_zone(&text))
        .or_else(|| date_only(&text))
}

fn rfc3339(text: &str) -> Option<DateTime<Utc>> {
    let normalized = text.replacen(' ', "T", 1).replace('z', "Z");
    DateTime::parse_from_rfc3339(&normalized)
        .or_else(|_| DateTime::parse_from_str(&normalized, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .or_else(|_| DateTime::parse_from_str(&normalized, "%Y-%m-%dT%H:%M%:z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn rfc2822(text: &str) -> Option<DateTime<Utc>> {
    // A wrong weekday must not lose the date: drop it.
    let without_weekday = match text.split_once(',') {
        Some((day, rest)) if day.chars().all(char::is_alphabetic) => rest.trim(),
        _ => text,
    };
    if let Ok(t) = DateTime::parse_from_rfc2822(without_weekday) {
        return Some(t.with_timezone(&Utc));
    }
    // A zone abbreviation chrono does not know, or none at all.
    let (rest, zone) = match without_weekday.rsplit_once(' ') {
        Some((rest, zone)) if zone.chars().all(|c| c.is_ascii_alphabetic()) => {
            let minutes = ZONES
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(zone))
                .map(|(_, m)| *m)?;
            (rest, FixedOffset::east_opt(minutes * 60)?)
        }
        _ => (without_weekday, FixedOffset::east_opt(0)?),
    };
    // Two-digit years first: `%Y` would read "26" as the year 26.
    for format in [
        "%d %b %y %H:%M:%S",
        "%d %b %y %H:%M",
        "%d %b %Y %H:%M:%S",
        "%d %b %Y %H:%M",
        "%d %B %Y %H:%M:%S",
    ] {
        if let Ok(naive) = NaiveDateTime::parse_from_str(rest, format) {
            return zone
                .from_local_datetime(&naive)
                .single()
                .map(|t| t.with_timezone(&Utc));
        }
    }
    None
}

fn without_zone(text: &str) -> Option<DateTime<Utc>> {
    const FORMATS: &[&str] = &[
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y/%m/%d %H:%M:%S",
        "%Y/%m/%d %H:%M",
        "%Y年%m月%d日 %H:%M:%S",
        "%Y年%m月%d日 %H:%M",
        "%Y年%m月%d日%H:%M",
    ];
    FORMATS
        .iter()
        .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
        .map(|naive| naive.and_utc())
}

fn date_only(text: &str) -> Option<DateTime<Utc>> {
    const FORMATS: &[&str] = &[
        "%Y-%m-%d",
        "%Y/%m/%d",
        "%d %b %Y",
        "%d %B %Y",
        "%b %d, %Y",
        "%B %d, %Y",
        "%d.%m.%Y",
        "%Y年%m月%d日",
    ];
    let text = match text.split_once(',') {
        Some((day, rest)) if day.chars().all(char::is_alphabetic) && day.len() <= 9 => rest.trim(),
        _ => text,
    };
    FORMATS
        .iter()
        .find_map(|format| NaiveDate::parse_from_str(text, format).ok())
        .and_then(|date| date.and_hms_opt(0, 0, 0))
        .map(|naive| naive.and_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> String {
        parse_date(text)
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|| "none".to_string())
    }

    #[test]
    fn standard_forms() {
        assert_eq!(
            utc("2026-11-27T08:30:00+08:00"),
            "2026-11-27T00:30:00+00:00"
        );
        assert_eq!(
            utc("2026-11-27T08:30:00.123Z"),
            "2026-11-27T08:30:00.123+00:00"
        );
        assert_eq!(
            utc("Fri, 27 Nov 2026 08:30:00 +0800"),
            "2026-11-27T00:30:00+00:00"
        );
        assert_eq!(
            utc("Fri, 27 Nov 2026 08:30:00 GMT"),
            "2026-11-27T08:30:00+00:00"
        );
    }

    #[test]
    fn named_zones() {
        assert_eq!(
            utc("Fri, 27 Nov 2026 08:30:00 EST"),
            "2026-11-27T13:30:00+00:00"
        );
        assert_eq!(
            utc("Fri, 27 Nov 2026 08:30:00 PDT"),
            "2026-11-27T15:30:00+00:00"
        );
        assert_eq!(
            utc("Fri, 27 Nov 2026 08:30:00 CEST"),
            "2026-11-27T06:30:00+00:00"
        );
        assert_eq!(utc("27 Nov 2026 08:30:00 JST"), "2026-11-26T23:30:00+00:00");
        assert_eq!(utc("Fri, 27 Nov 2026 08:30:00 XYZ"), "none");
    }

    #[test]
    fn sloppy_forms() {
        // A wrong weekday, extra spaces, no seconds, no zone, two-digit year.
        assert_eq!(
            utc("Mon, 27 Nov 2026 08:30:00 +0000"),
            "2026-11-27T08:30:00+00:00"
        );
        assert_eq!(
            utc("  Fri,  27 Nov 2026   08:30 GMT "),
            "2026-11-27T08:30:00+00:00"
        );
        assert_eq!(utc("27 Nov 26 08:30:00"), "2026-11-27T08:30:00+00:00");
        assert_eq!(utc("2026-11-27 08:30:00"), "2026-11-27T08:30:00+00:00");
        assert_eq!(utc("2026-11-27T08:30"), "2026-11-27T08:30:00+00:00");
        assert_eq!(utc("2026年11月27日 08:30"), "2026-11-27T08:30:00+00:00");
    }

    #[test]
    fn dates_without_times() {
        assert_eq!(utc("2026-11-27"), "2026-11-27T00:00:00+00:00");
        assert_eq!(utc("27 November 2026"), "2026-11-27T00:00:00+00:00");
        assert_eq!(utc("November 27, 2026"), "2026-11-27T00:00:00+00:00");
        assert_eq!(utc("Friday, 27 Nov 2026"), "2026-11-27T00:00:00+00:00");
        assert_eq!(utc("2026年11月27日"), "2026-11-27T00:00:00+00:00");
    }

    #[test]
    fn garbage_is_none() {
        for garbage in [
            "",
            "yesterday",
            "32 Nov 2026",
            "2026-13-01",
            "0000-00-00",
            "Fri, 99 Foo",
            "ÿÿÿ",
        ] {
            assert_eq!(utc(garbage), "none", "{garbage:?}");
        }
        assert_eq!(parse_date(&"9".repeat(10_000)), None);
    }
}
