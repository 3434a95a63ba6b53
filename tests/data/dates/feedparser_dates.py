#!/usr/bin/env python3
"""Regenerates feedparser.jsonl: what Python's feedparser makes of each date string.

The unit test `dates::tests::agrees_with_feedparser` (src/dates.rs) reads the output and
asserts that `feedmill::dates::parse_date` gives the same instant for every row, or the
value listed among its deliberate differences.

Run it from a directory without an `html` module (feedparser imports the standard one):

    cd /tmp && python3 /path/to/feedmill/tests/data/dates/feedparser_dates.py

Each output line is a JSON object:
    {"input": "...", "feedparser": "2024-03-08T14:00:00Z" | null | "clock", "from": "table" | FILE}

- The instant is `feedparser._parse_date(input.strip())` (feedparser strips every element's
  text before it parses a date) turned into UTC by `calendar.timegm`, in whole seconds.
- null: feedparser gives no date, raises, or gives a time tuple that Python itself cannot
  turn into an instant (a year outside 1..9999).
- "clock": feedparser's ISO 8601 handler filled a missing year, month or day in from the
  current date, so its answer depends on when it runs. Found by running each string under
  two different fake clocks.
- The table's strings are below; the reference corpus's are every date feedparser reads
  from tests/data/reference/*.xml (published, updated, created, expired of the feed and of
  every entry: pubDate, dc:date, dcterms:*, Atom 0.3 issued/modified/created, ...).
"""

import calendar
import glob
import json
import os
import sys
import time
import types
import xml.sax.saxutils

os.environ["TZ"] = "UTC"  # the ISO 8601 handler uses mktime/localtime: read it in UTC
time.tzset()

import feedparser  # noqa: E402
import feedparser.datetimes.iso8601 as iso8601  # noqa: E402
from feedparser.datetimes import _parse_date  # noqa: E402

assert feedparser.__version__ == "6.0.14", feedparser.__version__

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))

TABLE = [
    # --- RFC 822 as written
    "Fri, 08 Mar 2024 14:00:00 GMT",
    "Fri, 08 Mar 2024 14:00:00 +0000",
    "Fri, 08 Mar 2024 14:00:00 -0500",
    "Fri, 08 Mar 2024 14:00:00 +0100",
    "Fri, 08 Mar 2024 14:00:00 -0000",
    "Fri, 08 Mar 2024 14:00:00 UT",
    "Fri, 08 Mar 2024 14:00:00 UTC",
    "Fri, 08 Mar 2024 14:00:00 Z",
    # --- named zones
    "Fri, 08 Mar 2024 14:00:00 EST",
    "Fri, 08 Mar 2024 14:00:00 EDT",
    "Fri, 08 Mar 2024 14:00:00 CST",
    "Fri, 08 Mar 2024 14:00:00 CDT",
    "Fri, 08 Mar 2024 14:00:00 MST",
    "Fri, 08 Mar 2024 14:00:00 MDT",
    "Fri, 08 Mar 2024 14:00:00 PST",
    "Fri, 08 Mar 2024 14:00:00 PDT",
    "Fri, 08 Mar 2024 14:00:00 AST",
    "Fri, 08 Mar 2024 14:00:00 ADT",
    "Fri, 08 Mar 2024 14:00:00 ET",
    "Fri, 08 Mar 2024 14:00:00 PT",
    "Fri, 08 Mar 2024 14:00:00 MET",
    "Fri, 08 Mar 2024 14:00:00 MEST",
    "Fri, 08 Mar 2024 14:00:00 CEST",
    "Fri, 08 Mar 2024 14:00:00 JST",
    "Fri, 08 Mar 2024 14:00:00 IST",
    "Fri, 08 Mar 2024 14:00:00 XYZ",
    # --- military letters
    "Fri, 08 Mar 2024 14:00:00 A",
    "Fri, 08 Mar 2024 14:00:00 N",
    "Fri, 08 Mar 2024 14:00:00 M",
    "Fri, 08 Mar 2024 14:00:00 Y",
    "Fri, 08 Mar 2024 14:00:00 B",
    # --- numeric zones
    "Fri, 08 Mar 2024 14:00:00 +0530",
    "Fri, 08 Mar 2024 14:00:00 +05:30",
    "Fri, 08 Mar 2024 14:00:00 -0930",
    "Fri, 08 Mar 2024 14:00:00 +0545",
    "Fri, 08 Mar 2024 14:00:00 +05",
    "Fri, 08 Mar 2024 14:00:00 GMT+05:30",
    "Fri, 08 Mar 2024 14:00:00 GMT-0800",
    "Fri, 08 Mar 2024 14:00:00 Etc/GMT",
    "Fri, 08 Mar 2024 14:00:00 +9999",
    "Fri, 08 Mar 2024 14:00:00 +99999999999999999999",
    "Fri, 08 Mar 2024 14:00:00 +",
    # --- sloppy RFC 822
    "Fri, 08 Mar 2024 14:00 GMT",
    "08 Mar 2024 14:00:00 GMT",
    "Friday, 08 Mar 2024 14:00:00 GMT",
    "Mon, 08 Mar 2024 14:00:00 GMT",
    "Fri 08 Mar 2024 14:00:00 GMT",
    "Fri, 08 March 2024 14:00:00 GMT",
    "fri, 08 mar 2024 14:00:00 gmt",
    "FRI, 08 MAR 2024 14:00:00 GMT",
    "Fri, 8 Mar 2024 14:00:00 GMT",
    "Fri,  08   Mar 2024\t14:00:00   GMT",
    "  Fri, 08 Mar 2024 14:00:00 GMT  ",
    "Fri,\u00a008 Mar 2024 14:00:00 GMT",
    "Fri, 08 Mar 2024 14:00:00 +0000 (UTC)",
    "Mar 08 2024 14:00:00 GMT",
    "Sunshine, 08 Mar 2024 14:00:00 GMT",
    "Fri, 0_8 Mar 2024 14:00:00 GMT",
    "Fri, 08 Mar 2024 14:00:00.123 GMT",
    "Fri, 08 Mar 2024 14:00:00:00 GMT",
    "Tuesday, 17 December 2024 12:00:00 GMT",
    # --- two-digit and short years (feedparser: 90..99 are 19xx, 00..89 are 20xx)
    "Fri, 08 Mar 24 14:00:00 GMT",
    "Fri, 08 Mar 89 14:00:00 GMT",
    "Fri, 08 Mar 90 14:00:00 GMT",
    "Fri, 08 Mar 99 14:00:00 GMT",
    "Fri, 08 Mar 00 14:00:00 GMT",
    "Fri, 08 Mar 69 14:00:00 GMT",
    "Fri, 08 Mar 8 14:00:00 GMT",
    "Fri, 08 Mar 024 14:00:00 GMT",
    # --- dates without a time
    "08 Mar 2024",
    "Fri, 08 Mar 2024",
    "8 March 2024",
    "08 September 2024",
    "Mar 08 2024",
    # --- out of range
    "Fri, 32 Mar 2024 14:00:00 GMT",
    "Thu, 29 Feb 2023 14:00:00 GMT",
    "Thu, 29 Feb 2024 14:00:00 GMT",
    "Fri, 08 Mar 2024 25:00:00 GMT",
    "Fri, 08 Mar 2024 14:60:00 GMT",
    "Fri, 08 Mar 2024 23:59:60 GMT",
    "Fri, 08 Mar 10000 14:00:00 GMT",
    "Mon, 01 Jan 0001 00:00:00 +0100",
    "Fri, 31 Dec 9999 23:59:59 -0100",
    # --- what feedparser cannot read and a reader can
    "Mi, 27 Nov 2024 10:00:00 +0100",
    "Lun, 25 Nov 2024 10:00:00 +0100",
    "Do., 28 Nov 2024 10:00:00 +0100",
    "Tue, 10 Dec 2024 19:45",
    "Tue, 10 Dec 2024 19:45:30",
    "10 Dec 2024 19:45",
    "Sunday, 06-Nov-94 08:49:37 GMT",
    "November 27, 2026",
    "Nov 27, 2026 08:30:00 GMT",
    "Dec 10, 2024 7:45 PM",
    "Dec 10, 2024 12:05 AM",
    "2024/03/08 14:00:00",
    "2024/03/08",
    "2024/3/8 14:00",
    "08.03.2024",
    "08.03.2024 14:00",
    "2024年03月08日 14:00:00",
    "2024年3月8日",
    "2024年3月8日 14:00",
    "27 Okt 2024",
    # --- asctime
    "Sun Nov  6 08:49:37 1994",
    "Sun Nov 6 08:49:37 +0100 1994",
    "Fri Mar  8 14:00:00 2024",
    "Fri Mar 08 14:00:00 EST 2024",
    # --- W3C-DTF
    "2024-03-08T14:00:00Z",
    "2024-03-08T14:00:00+05:30",
    "2024-03-08T14:00:00-08:00",
    "2024-03-08T14:00:00+01",
    "2024-03-08T14:00:00+0530",
    "2024-03-08T14:00:00+0100",
    "2024-03-08T14:00:00",
    "2024-03-08T14:00Z",
    "2024-03-08T14:00",
    "2024-03-08T14Z",
    "2024-03-08T14:00:00.5Z",
    "2024-03-08T14:00:00.123456+02:00",
    "2024-03-08T14:00:00.999Z",
    "2024-03-08T14:00:00,5Z",
    "2024-03-08t14:00:00z",
    "2024-03-08T14:00:00 Z",
    "2024-03-08T14:00:00EST",
    "2024-03-08",
    "2024-03",
    "2024",
    "2024-3-8",
    "2024-03-08 14:00:00",
    "2024-03-08 14:00",
    "2024-03-08 14:00:00Z",
    "2024-03-08 14:00:00 +05:30",
    "2024-03-08 14:00:00 Z",
    "2024-03-08 14:00:00 EST",
    "2024-03-08 14:00:00 PST",
    "2024-03-08 14:00:00 +05:30 x",
    "2024-03-08T14:00:00+05:30 ",
    "1970-01-01T00:00:00Z",
    "1900-01-01",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-01:00",
    # --- ISO 8601 forms that only feedparser's ISO 8601 handler reads
    "20240308T140000Z",
    "20240308T14:00:00Z",
    "20240308T14:00:00+05:30",
    "20240308",
    "2024-068",
    "2024068",
    "24-03-08",
    "240308",
    "-24-03",
    "2024-03-08T24:00:00Z",
    "2024-03-08T14:00:60Z",
    "2024-02-30",
    "2024-13-01",
    "0000-00-00",
    "1709906400",
    "2024-W10",
    "2024-W10-5",
    "12:30",
    "20",
    "--03-08",
    # --- the other formats feedparser ships
    "Fri, 2006/09/15 08:19:53 EDT",
    "Fri, 2006/09/15 08:19:53",
    "Fri, 2006/09/15 08:19:53 +0500",
    "Posted Fri, 2006/09/15 08:19:53 PST",
    "Fri, 2006/00/15 08:19:53 EDT",
    "Fri, 2006/13/15 08:19:53 EDT",
    "\u039a\u03c5\u03c1, 11 \u0399\u03bf\u03cd\u03bb 2004 12:00:00 EST",
    "\u03a4\u03c1\u03b9, 09 \u0394\u03b5\u03ba 2003 18:30:00 +0200",
    "2004-j\u00falius-13T9:15-05:00",
    "2004-okt\u00f3ber-1T14:00+01:00",
    "2004\ub144 05\uc6d4 28\uc77c  01:31:15",
    "2004-05-25 \uc624\ud6c4 11:23:17",
    # --- garbage
    "",
    "   ",
    "yesterday",
    "yesterday afternoon",
    "N/A",
    "0",
    "-1",
    "Fri, 99 Foo",
    "\u00ff\u00ff\u00ff",
    "2024-03-08T14:00:00+",
    "T",
    "Z",
    "--",
    ":",
    "2024-03-08T14:00:00Z garbage",
    "Fri, 08 Mar 2024 14:00:00 GMT" + " x" * 200,
    "9" * 300,
    "\u0662\u0660\u0662\u0664-\u0660\u0663-\u0660\u0668",
]


class FakeTime(types.ModuleType):
    """`time` for the ISO 8601 handler, with `gmtime()` (and only that) at a fixed date."""

    def __init__(self, now):
        super().__init__("time")
        self._now = now

    def gmtime(self, *args):
        return time.gmtime(*args) if args else time.gmtime(self._now)

    def __getattr__(self, name):
        return getattr(time, name)


# Two clocks in the same century that differ in year, month and day.
CLOCKS = [calendar.timegm((2025, 6, 15, 12, 0, 0)), calendar.timegm((2031, 2, 3, 12, 0, 0))]


def rfc3339(seconds):
    t = time.gmtime(seconds)
    if not 1 <= t.tm_year <= 9999:
        return None
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % tuple(t[:6])


def instant(text):
    """feedparser's reading of a stripped date string: an RFC 3339 string or None."""
    try:
        parsed = _parse_date(text)
        if parsed is None:
            return None
        return rfc3339(calendar.timegm(parsed))
    except Exception:  # feedparser raises (IndexError) or Python cannot use its tuple
        return None


def reading(text):
    real = iso8601.time
    answers = set()
    try:
        for now in CLOCKS:
            iso8601.time = FakeTime(now)
            answers.add(instant(text.strip()))
    finally:
        iso8601.time = real
    if len(answers) > 1:
        return "clock"
    (answer,) = answers
    # The same through a whole feed, where the string is an element's text.
    if answer is not None and all(c.isprintable() or c in " \t" for c in text):
        doc = "<rss version='2.0'><channel><item><title>x</title><pubDate>%s</pubDate></item></channel></rss>"
        entry = feedparser.parse(doc % xml.sax.saxutils.escape(text)).entries[0]
        through_feed = rfc3339(calendar.timegm(entry.published_parsed))
        assert through_feed == answer, (text, through_feed, answer)
    return answer


def reference_dates():
    """Every date string feedparser reads from the reference corpus, with its first file."""
    seen = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "tests/data/reference/*.xml"))):
        parsed = feedparser.parse(path)
        for item in [parsed.feed] + list(parsed.entries):
            for key in ("published", "updated", "created", "expired"):
                value = dict.get(item, key)  # not item.get: FeedParserDict falls back between keys
                if isinstance(value, str):
                    seen.setdefault(value, os.path.basename(path))
    return seen


def main():
    rows, inputs = [], set()
    for text in TABLE:
        assert text not in inputs, text
        inputs.add(text)
        rows.append({"input": text, "feedparser": reading(text), "from": "table"})
    for text, path in sorted(reference_dates().items()):
        if text not in inputs:
            inputs.add(text)
            rows.append({"input": text, "feedparser": reading(text), "from": path})
    out = os.path.join(HERE, "feedparser.jsonl")
    with open(out, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    table = sum(1 for r in rows if r["from"] == "table")
    print("%s: %d rows (%d table, %d reference)" % (out, len(rows), table, len(rows) - table), file=sys.stderr)


if __name__ == "__main__":
    main()
