"""The differential test against the reference: every corpus document as Python's feedparser
reads it, against the Atom feedmill republishes it as, read by feedparser too.

    python3 tests/reference/compare.py MANIFEST

Compared per entry: title, link, published and updated instants, enclosure URLs, and the
text of the content (content[0] else summary, HTML read as text, whitespace collapsed).
Entries are matched whatever their order. One line per disagreeing document (file, field,
feedparser's value, ours), then `agree N of M documents (P %)`; exit 1 when any disagrees.
$FEEDMILL_REFERENCE_ONLY=substring limits the run to matching files;
$FEEDMILL_REFERENCE_REPORT=path writes the full report as JSON.
"""

# =====================================================================================
# WHERE FEEDMILL DIFFERS FROM FEEDPARSER ON PURPOSE: the one list. Nothing else may differ.
# Each entry: its name, why we differ, and the normalization applied (to the reference
# side, or to both), which applies only where its reason does. The report counts how often
# each one applied.
# =====================================================================================
DIFFERENCES = [
    {
        "name": "titles-are-plain-text",
        "reason": "feedmill publishes titles as plain text (entities decoded, markup removed); "
                  "feedparser keeps sanitized markup in an HTML title",
        "normalization": "both sides: the title's text (an HTML title read as text, a plain one "
                         "as it is), whitespace collapsed",
    },
    {
        "name": "titles-decode-entities",
        "reason": "interface: Titles are plain text, HTML entities decoded (Caf&amp;eacute; is "
                  "Café) in every title; feedparser keeps an entity reference of a plain-text "
                  "(Atom type=\"text\") title as written",
        "normalization": "both sides: the HTML entity references left in a title are decoded",
    },
    {
        "name": "titles-carry-no-tag",
        "reason": "no title feedmill republishes carries a tag (interface: Nothing republished "
                  "can run in a reader): a '<' that would open one is followed by U+2060 WORD "
                  "JOINER",
        "normalization": "ours: a U+2060 right after a '<' in a title is removed",
    },
    {
        "name": "feedparser-entity-bugs",
        "reason": "in a document that is not well-formed, feedparser writes an unknown entity "
                  "reference &name; of an HTML text as '&name', a DTD-declared one as "
                  "'&value;', and a raw '&name ' as '&name; '",
        "normalization": "ours: an unknown entity reference &name; in a text reads '&name'; "
                         "reference: '&' + one character + ';' reads as that character, an "
                         "unknown '&name;' the document does not contain as '&name'",
    },
    {
        "name": "our-sanitizer-is-not-feedparsers",
        "reason": "feedmill sanitizes HTML with its own allow-list (ammonia); the markup that "
                  "survives differs from feedparser's",
        "normalization": "both sides: the text of the content (content[0] else summary; HTML "
                         "read as text, script and style dropped with their text, a space at "
                         "block boundaries), whitespace collapsed",
    },
    {
        "name": "links-are-http-only",
        "reason": "no URL feedmill republishes has a scheme other than http(s): a javascript:, "
                  "data:, mailto: (or urn:, tag:) link or enclosure is dropped",
        "normalization": "reference: a link or enclosure URL whose scheme is not http or https "
                         "counts as absent",
    },
    {
        "name": "enclosure-urls-are-absolute",
        "reason": "feedmill resolves every URL it republishes; feedparser leaves an RSS "
                  "<enclosure url> as written",
        "normalization": "reference: a relative enclosure URL is resolved against the entry's "
                         "base (xml:base, else the document's URL)",
    },
    {
        "name": "media-are-enclosures",
        "reason": "Media RSS media:content and media:thumbnail are enclosures to feedmill "
                  "(interface: Media survive); feedparser keeps them apart",
        "normalization": "reference: the URLs of media_content and media_thumbnail join the "
                         "enclosure URLs",
    },
    {
        "name": "enclosures-unique-by-url",
        "reason": "feedmill keeps one enclosure per URL",
        "normalization": "both sides: enclosure URLs compared as a set",
    },
    {
        "name": "updated-not-before-published",
        "reason": "feedmill's Atom <updated> is never earlier than the entry's published time "
                  "(the time it sorts by)",
        "normalization": "reference, entries whose updated is earlier than their published: "
                         "updated is the published time",
    },
    {
        "name": "atom-needs-dates",
        "reason": "every Atom entry has an <updated> (RFC 4287): feedmill writes one when the "
                  "source has none",
        "normalization": "updated is compared only where feedparser reads one from the "
                         "document, published likewise",
    },
    {
        "name": "one-entry-per-identity",
        "reason": "entries of one document with the same guid/id (else link) are one entry to "
                  "feedmill (interface: Items, identity)",
        "normalization": "reference: such entries count once; ours may match any of them",
    },
    {
        "name": "binary-is-no-text",
        "reason": "interface: a field that cannot be read (bad base64, or base64 of bytes that "
                  "are not text, like an image/png content) loses that field; feedparser keeps "
                  "the base64 text itself as the field's text",
        "normalization": "reference: a title, summary or content of a base64 type (not text/*, "
                         "not XML) whose value is still base64 (nothing but its alphabet) is "
                         "empty",
    },
    {
        "name": "a-guid-link-is-absolute",
        "reason": "a permalink <guid> (or Atom <id>) is the story link only when it is an "
                  "absolute http(s) URL; feedparser resolves any guid against the document's "
                  "URL (Content-Location), so a guid 'patch-tuesday-2024-05' links to the feed "
                  "server's /reference/patch-tuesday-2024-05, a page that does not exist",
        "normalization": "reference: a link taken from a guid (guidislink) that the document "
                         "does not write as it is (it was relative) is no link",
    },
    {
        "name": "labels-the-bytes-contradict",
        "reason": "feedparser decodes a document by its label (HTTP charset, declaration) as "
                  "long as the bytes decode without error, giving mojibake where the label is "
                  "wrong (KOI8-R over UTF-8 bytes, Windows-1251 bytes labelled UTF-8, real UTF-8 "
                  "beside stray Windows-1252 bytes); feedmill reads the bytes as what they are "
                  "(a BOM, valid UTF-8, or chardetng's guess)",
        "normalization": "reference: titles and texts of the documents named in MISLABELLED "
                         "are not compared (their links, dates and media are)",
    },
    {
        "name": "json-feed-reference",
        "reason": "feedparser 6.0.14 has no JSON Feed reader (it reads a JSON document with 0 "
                  "entries): JSON documents are read by the JSON Feed 1.1 mapping below, as "
                  "later feedparser releases map it",
        "normalization": "reference for .json documents: items -> id, url (link), title, "
                         "content_html (HTML) else content_text else summary, date_published, "
                         "date_modified, attachments (enclosures); version URL, bare version "
                         "or none",
    },
]

import html  # noqa: E402
import html.entities  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from urllib.parse import urljoin, urlsplit  # noqa: E402

import reflib  # noqa: E402

try:
    import feedparser  # noqa: E402
except ImportError as error:
    reflib.die(f"python3 cannot import feedparser ({error}): run `bash .ci/run`, which installs feedparser==6.0.14")

FIELDS = ["title", "link", "published", "updated", "enclosures", "text"]
# The documents "labels-the-bytes-contradict" applies to, each checked by hand: feedparser's
# text is mojibake, ours is the text the bytes hold.
MISLABELLED = {
    "enc-disagree--header-koi8r-utf8-bytes.charset-koi8-r.xml",
    "enc-wrong--1251-declared-utf8.xml",
    "rss-c1raw--utf8-declared-mixed-real-utf8.xml",
}
BASE64_ALPHABET = re.compile(r"^[A-Za-z0-9+/=\s]+$")


def is_base64_type(content_type):
    t = (content_type or "").lower()
    return not (t.startswith("text/") or t.endswith("+xml") or t.endswith("/xml") or t in reflib.HTML_TYPES or t in ("text", "html", "xhtml"))


def binary_text(value, content_type):
    """The reference side of "binary-is-no-text": '' for base64 that stayed base64."""
    if value and is_base64_type(content_type) and BASE64_ALPHABET.match(value) and " " not in value.strip():
        fired("binary-is-no-text")
        return ""
    return value
WEIGHTS = {"title": 3, "link": 3, "text": 2}
FIRED = {d["name"]: 0 for d in DIFFERENCES}


def fired(name):
    FIRED[name] += 1


def is_http(url):
    return urlsplit(url or "").scheme.lower() in ("http", "https")


def http_or_none(url):
    if url is None:
        return None
    if is_http(url):
        return url
    fired("links-are-http-only")
    return None


def detail_text(entry, key):
    value = dict.get(entry, key)
    if value is None:
        return ""
    detail = dict.get(entry, key + "_detail") or {}
    if (detail.get("type") or "").lower() in reflib.HTML_TYPES:
        fired("our-sanitizer-is-not-feedparsers")
    return reflib.text_of(binary_text(value, detail.get("type")), detail.get("type"))


def content_text(entry):
    """content[0], else the summary: the first that has text (an out-of-line content, src=,
    has none)."""
    content = dict.get(entry, "content") or []
    if content:
        text = reflib.text_of(binary_text(content[0].get("value", ""), content[0].get("type")), content[0].get("type"))
        if (content[0].get("type") or "").lower() in reflib.HTML_TYPES:
            fired("our-sanitizer-is-not-feedparsers")
        # feedparser copies a content into the summary (with no type) when there is no
        # summary: that copy is the same text, not a second one.
        if text or dict.get(entry, "summary") == content[0].get("value"):
            return text
    return detail_text(entry, "summary")


ENTITY = re.compile(r"&(#[0-9]+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")


def title_text(entry, ours):
    return normalize_title(detail_text(entry, "title"), ours)


def normalize_title(title, ours):
    if ENTITY.search(title):
        decoded = reflib.collapse(html.unescape(title))
        if decoded != title and not ours:
            fired("titles-decode-entities")
        title = decoded
    if ours and "<\u2060" in title:
        fired("titles-carry-no-tag")
        title = title.replace("<\u2060", "<")
    return title


UNKNOWN_ENTITY = re.compile(r"&([A-Za-z][A-Za-z0-9]*);")
ONE_CHAR_ENTITY = re.compile(r"&([^A-Za-z0-9#\s&;]);")


def entity_bugs(text, ours, source=None):
    """What feedparser does to entity references in a sloppy document (see the table): on
    our side an unknown &name; is written as feedparser writes it; on the reference side an
    '&' + one character + ';' is that character, and an unknown '&name;' that the document
    does not contain is '&name' (a raw '&' that feedparser completed)."""
    if ours:
        fixed = UNKNOWN_ENTITY.sub(lambda m: m.group(0) if m.group(0) in html.entities.html5 else "&" + m.group(1), text)
    else:
        fixed = ONE_CHAR_ENTITY.sub(r"\1", text)
        if source is not None:
            fixed = UNKNOWN_ENTITY.sub(
                lambda m: m.group(0) if m.group(0) in html.entities.html5 or m.group(0) in source else "&" + m.group(1), fixed)
    if fixed != text:
        fired("feedparser-entity-bugs")
    return fixed


def base_of(entry, fallback):
    for key in ("summary_detail", "title_detail"):
        detail = dict.get(entry, key) or {}
        if detail.get("base"):
            return detail["base"]
    content = dict.get(entry, "content") or []
    if content and content[0].get("base"):
        return content[0]["base"]
    return fallback


def alternate_links(entry):
    return [l.get("href") for l in dict.get(entry, "links") or [] if l.get("rel", "alternate") == "alternate"]


def enclosure_urls(urls):
    urls = [u for u in urls if u]
    unique = sorted(set(urls))
    if len(unique) != len(urls):
        fired("enclosures-unique-by-url")
    return unique


def reference_entry(entry, doc_url, source):
    """One entry as feedparser read it from the source, normalized by the table."""
    if (dict.get(entry, "title_detail") or {}).get("type") in reflib.HTML_TYPES:
        fired("titles-are-plain-text")
    link = dict.get(entry, "link")
    base = base_of(entry, doc_url)
    urls = []
    for other in dict.get(entry, "links") or []:
        if other.get("rel") == "enclosure" and other.get("href"):
            href = other["href"]
            if not urlsplit(href).scheme:
                fired("enclosure-urls-are-absolute")
                href = urljoin(base, href)
            urls.append(http_or_none(href))
    media = [m.get("url") for key in ("media_content", "media_thumbnail") for m in (dict.get(entry, key) or [])]
    if any(media):
        fired("media-are-enclosures")
        urls += [http_or_none(urljoin(base, m)) for m in media if m]
    if link and dict.get(entry, "guidislink") and link == dict.get(entry, "id") and link not in source:
        fired("a-guid-link-is-absolute")
        link = None
    published = reflib.instant(dict.get(entry, "published_parsed"))
    updated = reflib.instant(dict.get(entry, "updated_parsed"))
    if published is None or updated is None:
        fired("atom-needs-dates")
    elif updated < published:
        fired("updated-not-before-published")
        updated = published
    return {
        "title": entity_bugs(title_text(entry, False), False, source),
        "link": http_or_none(link),
        "published": reflib.SKIP if published is None else published,
        "updated": reflib.SKIP if updated is None else updated,
        "enclosures": enclosure_urls(urls),
        "text": entity_bugs(content_text(entry), False, source),
    }


def our_entry(entry):
    """One entry of our Atom, as feedparser read it. An entry we publish without a link has
    only its urn:uuid id, which feedparser would take as its link: no link."""
    link = dict.get(entry, "link")
    return {
        "title": title_text(entry, True),
        "link": link if link in alternate_links(entry) else None,
        "published": reflib.instant(dict.get(entry, "published_parsed")),
        "updated": reflib.instant(dict.get(entry, "updated_parsed")),
        "enclosures": enclosure_urls([l.get("href") for l in dict.get(entry, "links") or [] if l.get("rel") == "enclosure"]),
        "text": entity_bugs(content_text(entry), True),
    }


def identity(entry):
    """The identity rule: guid/id, else link, else title and text."""
    return dict.get(entry, "id") or dict.get(entry, "link") or (title_text(entry, False), content_text(entry))


def collapse_identities(entries, normalize):
    groups = {}
    order = []
    for entry in entries:
        key = identity(entry)
        if key not in groups:
            groups[key] = []
            order.append(key)
        groups[key].append(normalize(entry))
    if len(order) != len(entries):
        fired("one-entry-per-identity")
    return [groups[k] for k in order]


# ---- the JSON Feed reference (see "json-feed-reference" above) ----

def _json_date(value):
    if not isinstance(value, str):
        return None
    parsed = feedparser.datetimes._parse_date(value)
    return reflib.instant(parsed)


def json_reference(body, doc_url):
    fired("json-feed-reference")
    try:
        document = json.loads(body.decode("utf-8-sig"))
    except (ValueError, UnicodeDecodeError):
        return []
    items = document.get("items") if isinstance(document, dict) else None
    if not isinstance(items, list):
        return []
    out = {}
    order = []
    for item in items:
        if not isinstance(item, dict):
            continue
        text_of = lambda key: item[key] if isinstance(item.get(key), str) else None  # noqa: E731
        if text_of("content_html") is not None:
            text = reflib.html_to_text(text_of("content_html"))
        elif text_of("content_text") is not None:
            text = reflib.collapse(text_of("content_text"))
        else:
            text = reflib.collapse(text_of("summary") or "")
        link = text_of("url")
        link = urljoin(doc_url, link) if link else None
        urls = []
        for attachment in item.get("attachments") or []:
            if isinstance(attachment, dict) and isinstance(attachment.get("url"), str):
                urls.append(http_or_none(urljoin(doc_url, attachment["url"])))
        published = _json_date(item.get("date_published"))
        updated = _json_date(item.get("date_modified"))
        if published is None or updated is None:
            fired("atom-needs-dates")
        entry = {
            "title": entity_bugs(normalize_title(reflib.collapse(text_of("title") or ""), False), False),
            "link": http_or_none(link),
            "published": reflib.SKIP if published is None else published,
            "updated": reflib.SKIP if updated is None else updated,
            "enclosures": enclosure_urls(urls),
            "text": text,
        }
        ident = item.get("id")
        key = str(ident) if isinstance(ident, (str, int)) and str(ident) else (link or (entry["title"], text))
        if key not in out:
            out[key] = []
            order.append(key)
        out[key].append(entry)
    if len(order) != sum(len(v) for v in out.values()):
        fired("one-entry-per-identity")
    return [out[k] for k in order]


def is_json(doc, body):
    return "json" in doc["content_type"] or body.lstrip()[:1] in (b"{", b"[")


def compare(doc):
    with open(doc["file"], "rb") as f:
        body = f.read()
    headers = {"content-type": doc["content_type"], "content-location": doc["url"]}
    if is_json(doc, body) and not feedparser.parse(body, response_headers=headers).entries:
        reference = json_reference(body, doc["url"])
    else:
        parsed = feedparser.parse(body, response_headers=headers)
        source = body.decode("latin-1")
        reference = collapse_identities(parsed.entries, lambda e: reference_entry(e, doc["url"], source))
        if doc["file"].rsplit("/", 1)[-1] in MISLABELLED:
            fired("labels-the-bytes-contradict")
            for group in reference:
                for entry in group:
                    entry["title"] = entry["text"] = reflib.SKIP
    atom = reflib.http_get(doc["atom"])
    if atom is None:
        return [("output", "an Atom document", f"no answer from {doc['atom']}")]
    ours = [our_entry(e) for e in feedparser.parse(atom).entries]
    if not reference:
        return [("reference", "feedparser reads no entry: the corpus rules exclude such a document", len(ours))]
    return reflib.match_entries(reference, ours, FIELDS, WEIGHTS)


def main():
    if len(sys.argv) != 2:
        reflib.die("usage: compare.py MANIFEST")
    documents = reflib.load_manifest(sys.argv[1])
    started = time.monotonic()
    results = [(doc["file"], doc.get("fetched", ""), compare(doc)) for doc in documents]
    applied = "deliberate differences applied: " + ", ".join(f"{name} {n}" for name, n in FIRED.items())
    code = reflib.report(results, "feedparser", [applied, f"compared in {time.monotonic() - started:.1f} s"])
    sys.exit(code)


if __name__ == "__main__":
    main()
