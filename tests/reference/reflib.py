"""What compare.py, roundtrip.py and validate.py share: the manifest, fetching, text
normalization, matching two lists of entries without depending on their order, and the
report (one line per disagreeing document, a tally by construct, the summary line).

The manifest (written by tests/it/reference.rs) is JSON: {"documents": [{"file": path,
"name": source name, "content_type": served Content-Type, "url": served URL, "fetched": what
`feedmill fetch` printed for the source, "atom"/"rss"/"json": the daemon's outputs}, ...]}.
"""

import calendar
import html
import json
import os
import re
import sys
import urllib.request
from html.parser import HTMLParser

# Elements whose start or end is a break between words when HTML is read as text.
BLOCK = {
    "address", "article", "aside", "blockquote", "br", "dd", "div", "dl", "dt", "figcaption",
    "figure", "footer", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main",
    "nav", "ol", "p", "pre", "section", "table", "tbody", "td", "tfoot", "th", "thead", "tr",
    "ul",
}
# Elements whose text is never shown (both sanitizers drop them with their text).
HIDDEN = {"script", "style"}


def load_manifest(path):
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    only = os.environ.get("FEEDMILL_REFERENCE_ONLY", "")
    return [d for d in manifest["documents"] if only in os.path.basename(d["file"])]


def http_get(url):
    """The body at url (a loopback URL of the test), or None when it does not answer 200."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            return response.read()
    except Exception:  # noqa: BLE001 - a missing output is reported as such
        return None


class _Text(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts = []
        self.hidden = 0

    def handle_starttag(self, tag, attrs):
        if tag in HIDDEN:
            self.hidden += 1
        if tag in BLOCK:
            self.parts.append(" ")

    def handle_startendtag(self, tag, attrs):
        if tag in BLOCK:
            self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in HIDDEN and self.hidden:
            self.hidden -= 1
        if tag in BLOCK:
            self.parts.append(" ")

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)


def collapse(text):
    """Whitespace runs (any Unicode space, no-break space included) become one space."""
    return " ".join((text or "").split())


def html_to_text(fragment):
    """The text a reader shows for an HTML fragment, whitespace collapsed."""
    parser = _Text()
    try:
        parser.feed(fragment or "")
        parser.close()
    except Exception:  # noqa: BLE001 - html.parser gives up on some garbage: keep what it read
        pass
    return collapse("".join(parser.parts))


HTML_TYPES = ("text/html", "application/xhtml+xml", "html", "xhtml")


def text_of(value, content_type):
    """The text of a feedparser text construct: HTML (html, xhtml) read as text, anything
    else taken as it is; whitespace collapsed either way."""
    if (content_type or "").lower() in HTML_TYPES:
        return html_to_text(value)
    return collapse(value)


def instant(struct):
    """A feedparser date (time.struct_time, UTC) as seconds since the epoch, or None."""
    if struct is None:
        return None
    try:
        return calendar.timegm(struct)
    except (TypeError, ValueError, OverflowError):
        return None


def show_instant(seconds):
    import datetime

    if seconds is None:
        return None
    try:
        return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return str(seconds)


def short(value, width=90):
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


SKIP = object()  # a reference field that is not compared for this entry (see the tables)


def _score(ref, ours, fields):
    return sum(1 for f in fields if ref.get(f, SKIP) is SKIP or ref[f] == ours.get(f))


def _best(alternatives, ours, fields):
    return max(alternatives, key=lambda ref: _score(ref, ours, fields))


def match_entries(reference, ours, fields, weights=None):
    """Pairs each reference entry with one of ours, whatever their order, and returns the
    disagreements as (field, reference value, our value) triples.

    A reference entry is a list of alternatives (several source entries that are one entry
    to us); ours are dicts. Exact matches pair first, then the most alike pairs, greedily.
    """
    weights = weights or {}
    diffs = []
    if len(reference) != len(ours):
        diffs.append(("count", len(reference), len(ours)))
    left = list(range(len(reference)))
    right = list(range(len(ours)))
    pairs = []

    def score(i, j):
        ref = _best(reference[i], ours[j], fields)
        return sum(weights.get(f, 1) for f in fields if ref.get(f, SKIP) is SKIP or ref[f] == ours[j].get(f))

    full = sum(weights.get(f, 1) for f in fields)
    scores = sorted(((score(i, j), i, j) for i in left for j in right), key=lambda t: (-t[0], t[1], t[2]))
    used_i, used_j = set(), set()
    for s, i, j in scores:
        if i in used_i or j in used_j:
            continue
        used_i.add(i)
        used_j.add(j)
        pairs.append((i, j, s == full))
    for i, j, exact in sorted(pairs):
        if exact:
            continue
        ref = _best(reference[i], ours[j], fields)
        for f in fields:
            want = ref.get(f, SKIP)
            if want is not SKIP and want != ours[j].get(f):
                diffs.append((f, want, ours[j].get(f)))
    for i in left:
        if i not in used_i:
            diffs.append(("missing entry", reference[i][0].get("title"), None))
    for j in right:
        if j not in used_j:
            diffs.append(("extra entry", None, ours[j].get("title")))
    return diffs


def construct_of(file):
    """GROUP-CONSTRUCT of GROUP-CONSTRUCT--CASE.EXT."""
    base = os.path.basename(file)
    return base.split("--", 1)[0] if "--" in base else base.rsplit(".", 1)[0]


def shown(field, value):
    if field.endswith(("published", "updated")) and isinstance(value, int):
        return show_instant(value)
    return value


def report(results, what, extra=None, suffix=""):
    """Prints one line per disagreeing document, a tally by construct and by field, and the
    summary line; writes the whole as JSON to $FEEDMILL_REFERENCE_REPORT (with `suffix` before
    its extension); returns the exit code (1 when any document disagrees).

    results: [(file, fetched line, [(field, reference, ours), ...])]."""
    bad = [(f, fetched, d) for f, fetched, d in results if d]
    for file, fetched, diffs in bad:
        field, want, got = diffs[0]
        more = f"  (+{len(diffs) - 1} more)" if len(diffs) > 1 else ""
        note = f"  [fetch: {fetched}]" if fetched and field in ("count", "missing entry") else ""
        print(f"{os.path.basename(file)}: {field}: {what}={short(shown(field, want))} ours={short(shown(field, got))}{more}{note}")
    if bad:
        by_construct, by_field = {}, {}
        totals = {}
        for file, _, diffs in results:
            totals[construct_of(file)] = totals.get(construct_of(file), 0) + 1
        for file, _, diffs in bad:
            by_construct[construct_of(file)] = by_construct.get(construct_of(file), 0) + 1
            for field in {d[0] for d in diffs}:
                by_field[field] = by_field.get(field, 0) + 1
        print("disagreeing documents by construct: " + ", ".join(
            f"{c} {n}/{totals[c]}" for c, n in sorted(by_construct.items(), key=lambda t: (-t[1], t[0]))))
        print("disagreeing documents by field: " + ", ".join(
            f"{f} {n}" for f, n in sorted(by_field.items(), key=lambda t: (-t[1], t[0]))))
    if extra:
        for line in extra:
            print(line)
    total = len(results)
    agree = total - len(bad)
    share = 100.0 * agree / total if total else 0.0
    print(f"agree {agree} of {total} documents ({share:.1f} %)")
    path = os.environ.get("FEEDMILL_REFERENCE_REPORT")
    if path and suffix:
        stem, ext = os.path.splitext(path)
        path = f"{stem}{suffix}{ext or '.json'}"
    if path:
        with open(path, "w", encoding="utf-8") as f:
            json.dump({
                "agree": agree,
                "documents": total,
                "results": [{
                    "file": os.path.basename(file),
                    "fetched": fetched,
                    "disagreements": [{"field": fl, what: shown(fl, w), "ours": shown(fl, g)} for fl, w, g in diffs],
                } for file, fetched, diffs in results],
            }, f, ensure_ascii=False, indent=1, default=str)
    return 1 if bad else 0


def die(message):
    print(message, file=sys.stderr)
    sys.exit(2)
