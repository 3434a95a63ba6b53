"""Round trip: every output of the corpus (Atom, RSS, JSON), fetched again by a second
feedmill, gives the same entries.

    python3 tests/reference/roundtrip.py MANIFEST

For each document the manifest names the first daemon's outputs and, under via_atom,
via_rss and via_json, the source of the second daemon that read that output and the second
daemon's JSON Feed that shows it (its items name their source in the `_feedmill` extension).
Each is compared with the first daemon's JSON Feed of the document: titles, links, both
dates, attachment URLs and the text of content_html, entries matched whatever their order.
"""

# =====================================================================================
# WHAT A FORMAT CANNOT CARRY: the one list of round-trip exceptions. Nothing else may differ.
# =====================================================================================
EXCEPTIONS = [
    {
        "name": "rss-has-one-date",
        "format": "rss",
        "reason": "an RSS 2.0 item has one date, pubDate, which feedmill writes as the entry's "
                  "sort time (published, else updated, else first seen)",
        "normalization": "through RSS: the entry's updated time is its published time",
    },
    {
        "name": "rss-has-one-enclosure",
        "format": "rss",
        "reason": "RSS 2.0 allows one <enclosure> per item: feedmill writes the first",
        "normalization": "through RSS: only the first attachment URL is compared",
    },
    {
        "name": "dates-to-the-second",
        "format": "all",
        "reason": "RFC 822 dates carry whole seconds",
        "normalization": "every format: instants compared to the second",
    },
]

import json  # noqa: E402
import sys  # noqa: E402

import reflib  # noqa: E402

try:
    import feedparser.datetimes  # noqa: E402
except ImportError as error:
    reflib.die(f"python3 cannot import feedparser ({error}): run `bash .ci/run`, which installs feedparser==6.0.14")

FIELDS = ["title", "link", "published", "updated", "enclosures", "text"]
WEIGHTS = {"title": 3, "link": 3, "text": 2}
FORMATS = ("atom", "rss", "json")


def seconds(value):
    if not isinstance(value, str):
        return None
    return reflib.instant(feedparser.datetimes._parse_date(value))


def entries(url, source=None):
    body = reflib.http_get(url)
    if body is None:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    out = []
    for item in document.get("items", []):
        if source is not None and item.get("_feedmill", {}).get("source", {}).get("name") != source:
            continue
        out.append({
            "title": reflib.collapse(item.get("title", "")),
            "link": item.get("url"),
            "published": seconds(item.get("date_published")),
            "updated": seconds(item.get("date_modified")),
            "enclosures": [a.get("url") for a in item.get("attachments", [])],
            "text": reflib.html_to_text(item.get("content_html", "")),
        })
    return out


def through(fmt, entry):
    """What `entry` of the first daemon can be after a trip through `fmt`."""
    entry = dict(entry)
    if fmt == "rss":
        entry["updated"] = entry["published"]
        entry["enclosures"] = entry["enclosures"][:1]
    entry["enclosures"] = sorted(set(entry["enclosures"]))
    return entry


def compare(doc):
    first = entries(doc["json"])
    if first is None:
        return [("output", "a JSON Feed", f"no answer from {doc['json']}")]
    diffs = []
    for fmt in FORMATS:
        via = doc[f"via_{fmt}"]
        second = entries(via["json"], via["source"])
        if second is None:
            diffs.append((f"{fmt}: output", "a JSON Feed", f"no answer from {via['json']}"))
            continue
        expected = [[through(fmt, e)] for e in first]
        got = [dict(e, enclosures=sorted(set(e["enclosures"]))) for e in second]
        for field, want, ours in reflib.match_entries(expected, got, FIELDS, WEIGHTS):
            if field in ("count", "missing entry") and via.get("fetched"):
                ours = f"{ours}  [fetch: {via['fetched']}]"
            diffs.append((f"through {fmt}: {field}", want, ours))
    return diffs


def main():
    if len(sys.argv) != 2:
        reflib.die("usage: roundtrip.py MANIFEST")
    documents = reflib.load_manifest(sys.argv[1])
    results = [(doc["file"], doc.get("fetched", ""), compare(doc)) for doc in documents]
    sys.exit(reflib.report(results, "first", suffix=".roundtrip"))


if __name__ == "__main__":
    main()
