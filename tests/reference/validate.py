"""Every output of the corpus checked against the rules the W3C Feed Validation Service
reports as errors (its code, `feedvalidator`, is not on PyPI: these are its checks, written
from RFC 4287, RSS 2.0 and JSON Feed 1.1 and the validator's error list).

    python3 tests/reference/validate.py MANIFEST

Prints one line per violation (document, format, entry, rule), then
`valid N of M documents (P %)`; exits 1 when any output breaks a rule.
"""

import calendar
import json
import re
import sys
import xml.etree.ElementTree as ET

import reflib

ATOM = "{http://www.w3.org/2005/Atom}"
# The validator's mime_re (validators.py).
TOKEN = r'[^\s()<>,;:\\"/\[\]?=]+'
MIME = re.compile(rf'^{TOKEN}/{TOKEN}(\s*;\s*{TOKEN}=("(\\"|[^"])*"|{TOKEN}))*$')
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
IRI_BAD = re.compile(r'[\s<>"{}|\\^`\x00-\x1f\x7f]')
UUID = re.compile(r"^urn:uuid:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
RFC3339 = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-](\d\d):(\d\d))$")
DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
RFC822 = re.compile(
    r"^(?:(Mon|Tue|Wed|Thu|Fri|Sat|Sun), )?(\d{1,2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    r"(\d{4}) (\d\d):(\d\d)(?::(\d\d))? (UT|GMT|EST|EDT|CST|CDT|MST|MDT|PST|PDT|[A-IK-Z]|[+-]\d{4})$")
TEXT_TYPES = ("text", "html", "xhtml")


def valid_date(y, mo, d, h, mi, s):
    return (1 <= mo <= 12 and 1 <= d <= calendar.monthrange(y, mo)[1] and h < 24 and mi < 60
            and s <= 60)


def rfc3339(value):
    m = RFC3339.match(value or "")
    if not m:
        return False
    y, mo, d, h, mi, s = (int(m.group(i)) for i in range(1, 7))
    if m.group(9) and (int(m.group(9)) > 23 or int(m.group(10)) > 59):
        return False
    return valid_date(y, mo, d, h, mi, s)


def rfc822(value):
    """RFC 822 as the validator reads it, the day of the week checked (IncorrectDOW)."""
    m = RFC822.match((value or "").strip())
    if not m:
        return False
    day, y, mo, h, mi = int(m.group(2)), int(m.group(4)), MONTHS.index(m.group(3)) + 1, int(m.group(5)), int(m.group(6))
    s = int(m.group(7) or 0)
    if not valid_date(y, mo, day, h, mi, s):
        return False
    return not m.group(1) or DAYS[calendar.weekday(y, mo, day)] == m.group(1)


def iri(value):
    value = value or ""
    if not SCHEME.match(value) or IRI_BAD.search(value):
        return False
    return not value.lower().startswith("urn:uuid:") or bool(UUID.match(value))


def http_url(value):
    return iri(value) and value.lower().startswith(("http://", "https://"))


class Checker:
    def __init__(self, file):
        self.file = file
        self.violations = []

    def fail(self, fmt, where, rule):
        self.violations.append(f"{file_name(self.file)} [{fmt}] {where}: {rule}")

    def check(self, fmt, where, ok, rule):
        if not ok:
            self.fail(fmt, where, rule)


def file_name(path):
    return path.rsplit("/", 1)[-1]


def one(c, fmt, where, parent, tag, name, required=True):
    found = parent.findall(tag)
    if required:
        c.check(fmt, where, len(found) >= 1, f"MissingElement: no <{name}>")
    c.check(fmt, where, len(found) <= 1, f"DuplicateElement: {len(found)} <{name}>")
    return found[0] if found else None


def alternates(c, where, parent):
    seen = set()
    for link in parent.findall(ATOM + "link"):
        c.check("atom", where, bool(link.get("href")), "MissingHref: a <link> without href")
        if link.get("type") is not None:
            c.check("atom", where, bool(MIME.match(link.get("type"))), f"InvalidMIMEType: link type {link.get('type')!r}")
        if link.get("length") is not None:
            c.check("atom", where, link.get("length").isdigit(), f"InvalidNonNegativeInteger: link length {link.get('length')!r}")
        if link.get("href") is not None:
            c.check("atom", where, iri(link.get("href")), f"InvalidIRI: link href {link.get('href')!r}")
        if link.get("rel", "alternate") != "alternate":
            continue
        key = (link.get("type"), link.get("hreflang"))
        c.check("atom", where, key not in seen, f"DuplicateAtomLink: two alternate links of type {key[0]!r} hreflang {key[1]!r}")
        seen.add(key)
    return bool(seen)


def text_construct(c, where, element, name):
    if element is None:
        return
    kind = element.get("type", "text")
    c.check("atom", where, kind in TEXT_TYPES, f"InvalidTextType: <{name} type={kind!r}>")
    if kind == "xhtml":
        c.check("atom", where, element.find("{http://www.w3.org/1999/xhtml}div") is not None, f"MissingXhtmlDiv: <{name} type=\"xhtml\"> without an XHTML div")


def person(c, where, element, name):
    c.check("atom", where, element.find(ATOM + "name") is not None, f"MissingElement: <{name}> without <name>")


def check_atom(c, body):
    try:
        root = ET.fromstring(body)
    except ET.ParseError as error:
        c.fail("atom", "document", f"not well-formed XML: {error}")
        return
    if root.tag != ATOM + "feed":
        c.fail("atom", "document", f"the root is {root.tag}, not atom:feed")
        return
    where = "feed"
    fid = one(c, "atom", where, root, ATOM + "id", "id")
    if fid is not None:
        c.check("atom", where, iri((fid.text or "").strip()), f"InvalidIRI: feed id {fid.text!r}")
    text_construct(c, where, one(c, "atom", where, root, ATOM + "title", "title"), "title")
    text_construct(c, where, one(c, "atom", where, root, ATOM + "subtitle", "subtitle", False), "subtitle")
    up = one(c, "atom", where, root, ATOM + "updated", "updated")
    if up is not None:
        c.check("atom", where, rfc3339((up.text or "").strip()), f"InvalidRFC3339Date: feed updated {up.text!r}")
    alternates(c, where, root)
    c.check("atom", where, any(l.get("rel") == "self" for l in root.findall(ATOM + "link")), "MissingSelf: no <link rel=\"self\">")
    feed_author = root.find(ATOM + "author") is not None
    for a in root.findall(ATOM + "author"):
        person(c, where, a, "author")
    seen = {}
    for n, entry in enumerate(root.findall(ATOM + "entry"), 1):
        eid = entry.find(ATOM + "id")
        where = f"entry {n} ({(eid.text or '').strip() if eid is not None else 'no id'})"
        eid = one(c, "atom", where, entry, ATOM + "id", "id")
        if eid is not None:
            c.check("atom", where, iri((eid.text or "").strip()), f"InvalidIRI: id {eid.text!r}")
        title = one(c, "atom", where, entry, ATOM + "title", "title")
        text_construct(c, where, title, "title")
        up = one(c, "atom", where, entry, ATOM + "updated", "updated")
        if up is not None:
            c.check("atom", where, rfc3339((up.text or "").strip()), f"InvalidRFC3339Date: updated {up.text!r}")
        pub = one(c, "atom", where, entry, ATOM + "published", "published", False)
        if pub is not None:
            c.check("atom", where, rfc3339((pub.text or "").strip()), f"InvalidRFC3339Date: published {pub.text!r}")
        if eid is not None:
            key = ((eid.text or "").strip(), (up.text or "").strip() if up is not None else "")
            c.check("atom", where, key not in seen, f"DuplicateIds: the id and updated of entry {seen.get(key)}")
            seen.setdefault(key, n)
        c.check("atom", where, feed_author or entry.find(ATOM + "author") is not None, "MissingElement: no <author> in the entry nor the feed")
        for a in entry.findall(ATOM + "author") + entry.findall(ATOM + "contributor"):
            person(c, where, a, "author")
        for cat in entry.findall(ATOM + "category"):
            c.check("atom", where, bool(cat.get("term")), "MissingAttribute: <category> without term")
        has_alternate = alternates(c, where, entry)
        summary = one(c, "atom", where, entry, ATOM + "summary", "summary", False)
        text_construct(c, where, summary, "summary")
        content = one(c, "atom", where, entry, ATOM + "content", "content", False)
        c.check("atom", where, content is not None or has_alternate, "MissingContentOrAlternate: neither <content> nor an alternate link")
        if content is not None:
            kind = content.get("type", "text")
            c.check("atom", where, kind in TEXT_TYPES or bool(MIME.match(kind)), f"InvalidMIMEType: <content type={kind!r}>")
            if kind == "xhtml":
                c.check("atom", where, content.find("{http://www.w3.org/1999/xhtml}div") is not None, "MissingXhtmlDiv: xhtml content without an XHTML div")
            if content.get("src") is not None:
                c.check("atom", where, not (content.text or "").strip() and len(content) == 0, "UnexpectedText: <content src> is not empty")
                c.check("atom", where, iri(content.get("src")), f"InvalidIRI: content src {content.get('src')!r}")
            textual = kind in TEXT_TYPES or kind.startswith("text/") or kind.endswith("+xml") or kind.endswith("/xml")
            if content.get("src") is not None or not textual:
                c.check("atom", where, summary is not None, "MissingSummary: content with src or base64 content needs a <summary>")
        source = entry.find(ATOM + "source")
        if source is not None:
            sid = one(c, "atom", where + " source", source, ATOM + "id", "id", False)
            if sid is not None:
                c.check("atom", where, iri((sid.text or "").strip()), f"InvalidIRI: source id {sid.text!r}")
            sup = one(c, "atom", where + " source", source, ATOM + "updated", "updated", False)
            if sup is not None:
                c.check("atom", where, rfc3339((sup.text or "").strip()), f"InvalidRFC3339Date: source updated {sup.text!r}")
            text_construct(c, where + " source", one(c, "atom", where + " source", source, ATOM + "title", "title", False), "title")
            alternates(c, where + " source", source)


def check_rss(c, body):
    try:
        root = ET.fromstring(body)
    except ET.ParseError as error:
        c.fail("rss", "document", f"not well-formed XML: {error}")
        return
    if root.tag != "rss":
        c.fail("rss", "document", f"the root is {root.tag}, not rss")
        return
    c.check("rss", "rss", root.get("version") == "2.0", f"InvalidRSSVersion: version {root.get('version')!r}")
    channels = root.findall("channel")
    c.check("rss", "rss", len(channels) == 1, f"{len(channels)} <channel>")
    if not channels:
        return
    channel = channels[0]
    where = "channel"
    for name in ("title", "link", "description"):
        el = one(c, "rss", where, channel, name, name)
        if name == "link" and el is not None:
            c.check("rss", where, iri((el.text or "").strip()), f"InvalidURI: channel link {el.text!r}")
    for name in ("pubDate", "lastBuildDate"):
        el = one(c, "rss", where, channel, name, name, False)
        if el is not None:
            c.check("rss", where, rfc822(el.text), f"InvalidRFC2822Date: {name} {el.text!r}")
    self_links = [l for l in channel.findall(ATOM + "link") if l.get("rel") == "self"]
    c.check("rss", where, bool(self_links), "MissingAtomSelfLink: no <atom:link rel=\"self\">")
    for link in channel.findall(ATOM + "link"):
        c.check("rss", where, bool(link.get("href")) and iri(link.get("href")), f"InvalidIRI: atom:link href {link.get('href')!r}")
    guids = {}
    for n, item in enumerate(channel.findall("item"), 1):
        guid = item.find("guid")
        where = f"item {n} ({(guid.text or '').strip() if guid is not None else 'no guid'})"
        title = one(c, "rss", where, item, "title", "title", False)
        description = one(c, "rss", where, item, "description", "description", False)
        c.check("rss", where, title is not None or description is not None, "ItemMustContainTitleOrDescription")
        for name in ("link", "comments"):
            el = one(c, "rss", where, item, name, name, False)
            if el is not None:
                c.check("rss", where, iri((el.text or "").strip()), f"InvalidURI: {name} {el.text!r}")
        pub = one(c, "rss", where, item, "pubDate", "pubDate", False)
        if pub is not None:
            c.check("rss", where, rfc822(pub.text), f"InvalidRFC2822Date: pubDate {pub.text!r}")
        enclosures = item.findall("enclosure")
        c.check("rss", where, len(enclosures) <= 1, f"DuplicateEnclosure: {len(enclosures)} <enclosure> (RSS 2.0 allows one)")
        for enc in enclosures:
            for attr in ("url", "length", "type"):
                c.check("rss", where, enc.get(attr) is not None, f"MissingAttribute: <enclosure> without {attr}")
            if enc.get("url") is not None:
                c.check("rss", where, http_url(enc.get("url")), f"InvalidURLAttribute: enclosure url {enc.get('url')!r}")
            if enc.get("length") is not None:
                c.check("rss", where, enc.get("length").isdigit(), f"InvalidNonNegativeInteger: enclosure length {enc.get('length')!r}")
            if enc.get("type") is not None:
                c.check("rss", where, bool(MIME.match(enc.get("type"))), f"InvalidMIMEAttribute: enclosure type {enc.get('type')!r}")
        guid = one(c, "rss", where, item, "guid", "guid", False)
        if guid is not None:
            value = (guid.text or "").strip()
            permalink = guid.get("isPermaLink", "true")
            c.check("rss", where, permalink in ("true", "false"), f"InvalidBooleanAttribute: isPermaLink {permalink!r}")
            if permalink == "true":
                c.check("rss", where, iri(value), f"InvalidHttpGUID: a permalink guid {value!r} that is not a URL")
                c.check("rss", where, not value.lower().startswith(("tag:", "urn:uuid:")), f"InvalidPermalink: {value!r} marked isPermaLink")
            c.check("rss", where, value not in guids, f"DuplicateValue: the guid of item {guids.get(value)}")
            guids.setdefault(value, n)
        source = one(c, "rss", where, item, "source", "source", False)
        if source is not None:
            c.check("rss", where, source.get("url") is not None and iri(source.get("url")), f"MissingAttribute: <source> url {source.get('url')!r}")


def check_json(c, body):
    try:
        feed = json.loads(body)
    except ValueError as error:
        c.fail("json", "document", f"not JSON: {error}")
        return
    if not isinstance(feed, dict):
        c.fail("json", "document", "not a JSON object")
        return
    c.check("json", "feed", feed.get("version") == "https://jsonfeed.org/version/1.1", f"version {feed.get('version')!r}")
    c.check("json", "feed", isinstance(feed.get("title"), str) and feed["title"] != "", "no title")
    for key in ("home_page_url", "feed_url"):
        if key in feed:
            c.check("json", "feed", http_url(feed[key]), f"{key} {feed[key]!r} is not an absolute http(s) URL")
    items = feed.get("items")
    c.check("json", "feed", isinstance(items, list), "no items array")
    ids = {}
    for n, item in enumerate(items if isinstance(items, list) else [], 1):
        where = f"item {n} ({item.get('id')})"
        c.check("json", where, isinstance(item.get("id"), str) and item["id"] != "", "no id (a non-empty string)")
        c.check("json", where, item.get("id") not in ids, f"the id of item {ids.get(item.get('id'))}")
        ids.setdefault(item.get("id"), n)
        c.check("json", where, isinstance(item.get("content_html"), str) or isinstance(item.get("content_text"), str),
                "neither content_html nor content_text")
        for key in ("url", "external_url", "image", "banner_image"):
            if key in item:
                c.check("json", where, http_url(item[key]), f"{key} {item[key]!r} is not an absolute http(s) URL")
        for key in ("date_published", "date_modified"):
            if key in item:
                c.check("json", where, rfc3339(item[key]), f"{key} {item[key]!r} is not RFC 3339")
        for author in item.get("authors", []):
            c.check("json", where, isinstance(author, dict) and any(k in author for k in ("name", "url", "avatar")), "an author with neither name, url nor avatar")
        for attachment in item.get("attachments", []):
            c.check("json", where, isinstance(attachment.get("url"), str) and http_url(attachment["url"]), f"attachment url {attachment.get('url')!r} is not an absolute http(s) URL")
            c.check("json", where, isinstance(attachment.get("mime_type"), str) and bool(MIME.match(attachment["mime_type"])), f"attachment mime_type {attachment.get('mime_type')!r}")
            if "size_in_bytes" in attachment:
                c.check("json", where, isinstance(attachment["size_in_bytes"], int) and attachment["size_in_bytes"] >= 0, f"attachment size_in_bytes {attachment['size_in_bytes']!r}")


CHECKS = {"atom": check_atom, "rss": check_rss, "json": check_json}


def main():
    if len(sys.argv) != 2:
        reflib.die("usage: validate.py MANIFEST")
    documents = reflib.load_manifest(sys.argv[1])
    bad = 0
    by_rule = {}
    for doc in documents:
        c = Checker(doc["file"])
        for fmt, check in CHECKS.items():
            body = reflib.http_get(doc[fmt])
            if body is None:
                c.fail(fmt, "document", f"no answer from {doc[fmt]}")
                continue
            check(c, body)
        for line in c.violations:
            print(line)
            rule = line.split(": ", 2)[1].split(":")[0] if ": " in line else line
            by_rule[rule] = by_rule.get(rule, 0) + 1
        bad += bool(c.violations)
    if by_rule:
        print("violations by rule: " + ", ".join(f"{r} {n}" for r, n in sorted(by_rule.items(), key=lambda t: (-t[1], t[0]))))
    total = len(documents)
    good = total - bad
    print(f"valid {good} of {total} documents ({100.0 * good / total if total else 0:.1f} %)")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
