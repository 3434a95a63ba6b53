//! Parsing: raw feed bytes (RSS 0.9x/1.0/2.0, Atom, JSON Feed) into our own [`Entry`] type.
//!
//! This is where untrusted text becomes something we republish, so everything leaves here
//! clean: titles are plain text, HTML is passed through an allow-list sanitizer with its
//! relative links made absolute, links that are not http(s) are dropped, and every entry has a
//! stable identity (never feed-rs's random UUID fallback).

use std::borrow::Cow;
use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use feed_rs::model;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use url::Url;

use crate::{dates, discover, encoding, sanitize};

mod json;
mod rss2;

/// One item of a source, normalized and sanitized.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The stable identity within the source: guid/id, else link, else a hash of title + text.
    pub identity: String,
    /// Plain text (no markup).
    pub title: String,
    /// The absolute http(s) link to the original.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// When the item was published, as the source says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<DateTime<Utc>>,
    /// When the item was last updated, as the source says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated: Option<DateTime<Utc>>,
    /// Author names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authors: Vec<String>,
    /// Sanitized HTML summary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Sanitized HTML content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Category terms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Media files: RSS `<enclosure>`, Atom `rel="enclosure"`, Media RSS `media:content` and
    /// `media:thumbnail`, JSON Feed `attachments`; unique by URL, in document order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub enclosures: Vec<Enclosure>,
}

/// A media file of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enclosure {
    /// The absolute http(s) URL of the file.
    pub url: String,
    /// Its MIME type, as the source says (`audio/mpeg`), when it says one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    /// Its size in bytes, when the source gives a positive one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
}

impl Entry {
    /// The text of the entry as HTML: its content, else its summary.
    pub fn html(&self) -> Option<&str> {
        self.content.as_deref().or(self.summary.as_deref())
    }
}

/// A parsed source document.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedFeed {
    /// The feed's own title, plain text.
    pub title: Option<String>,
    /// The feed's home page.
    pub site_link: Option<String>,
    /// The feed's `<ttl>`: how long it may be cached.
    pub ttl: Option<Duration>,
    /// The entries, in document order, unique by identity, at most [`MAX_ENTRIES`].
    pub entries: Vec<Entry>,
}

/// The most entries taken from one document; a CMS that dumps its archive into its feed
/// must not flood the store in one fetch.
pub const MAX_ENTRIES: usize = 5000;

/// Why a body is not a feed we can read.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Nothing came back.
    #[error("empty body: the source sent no content")]
    Empty,
    /// An HTML page came back; `links` are the feeds it points to, if any.
    #[error("not a feed: HTML page {}", if links.is_empty() { "without a feed link".to_string() } else { format!("linking to {}", links[0]) })]
    HtmlPage {
        /// The page's feed links, best first.
        links: Vec<Url>,
    },
    /// The XML is malformed or cut off.
    #[error("XML error at line {line}, column {column}: {message}")]
    Xml {
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The document is not RSS, Atom or JSON Feed.
    #[error("not a feed: {0}")]
    NotAFeed(String),
    /// feed-rs failed on the document (a bug in it), and it is not RSS 2.0 that the rss
    /// crate reads instead.
    #[error("the feed parser (feed-rs) crashed on this document; please report the feed's URL to feedmill")]
    ParserPanicked,
}

/// Parses `body`, fetched from `url`. `content_type` is the HTTP header, whose charset wins
/// over the document's own declaration.
pub fn parse_feed(
    body: &[u8],
    content_type: Option<&str>,
    url: &Url,
) -> Result<ParsedFeed, ParseError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ParseError::Empty);
    }
    let decoded = encoding::decode(body, content_type);
    let utf8 = decoded.utf8.as_ref();
    if discover::looks_like_html(utf8, content_type) {
        let html = String::from_utf8_lossy(utf8);
        return Err(ParseError::HtmlPage {
            links: discover::feed_links(&html, url),
        });
    }
    if matches!(
        utf8.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    ) {
        let (head, entries) = json::read(utf8, url)?;
        return Ok(finish(head, entries.into_iter(), &[], url));
    }
    let checked;
    let (utf8, entry_bases) = if utf8.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'<') {
        checked = check_xml(utf8, url)?;
        if checked.plain_rss {
            if let Some(parsed) = read_with_rss(&checked.document, url) {
                return Ok(parsed);
            }
        }
        (checked.document.as_ref(), checked.entry_bases.as_slice())
    } else {
        (utf8, &[][..])
    };
    match read_with_feed_rs(utf8, entry_bases, url) {
        // The rss crate reads RSS 2.0 well enough when feed-rs cannot.
        Err(ParseError::ParserPanicked) => {
            read_with_rss(utf8, url).ok_or(ParseError::ParserPanicked)
        }
        parsed => parsed,
    }
}

/// Reads RSS with the rss crate (see [`rss2`]); nothing if it refuses the document.
fn read_with_rss(document: &[u8], url: &Url) -> Option<ParsedFeed> {
    let (head, entries) = rss2::read(document, url)?;
    Some(finish(head, entries.into_iter(), &[], url))
}

/// Reads a checked document (or JSON) with feed-rs.
fn read_with_feed_rs(
    utf8: &[u8],
    entry_bases: &[Url],
    url: &Url,
) -> Result<ParsedFeed, ParseError> {
    let parser = feed_rs::parser::Builder::new()
        .base_uri(Some(url.as_str()))
        .sanitize_content(false)
        .timestamp_parser(dates::parse_date)
        // An empty id marks "no id in the document"; `identity_of` then decides.
        .id_generator(|_, _, _| String::new())
        .build();
    // feed-rs panics on some input (an author "name@example.org" followed by a non-ASCII
    // character slices a string inside that character): a hostile feed must not.
    keep_feed_rs_panics_quiet();
    IN_FEED_RS.with(|inside| inside.set(true));
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| parser.parse(utf8)));
    IN_FEED_RS.with(|inside| inside.set(false));
    let feed = parsed
        .map_err(|_| {
            let panic = FEED_RS_PANIC.with(|panic| panic.take()).unwrap_or_default();
            tracing::warn!(url = %url, "feed-rs failed on this document ({panic})");
            ParseError::ParserPanicked
        })?
        .map_err(|err| ParseError::NotAFeed(describe_parse_error(&err)))?;

    let head = FeedHead {
        title: feed.title.map(RawText::from),
        site_link: alternate_link(&feed.links),
        ttl_minutes: feed.ttl,
    };
    let entries = feed.entries.into_iter().map(RawEntry::from);
    Ok(finish(head, entries, entry_bases, url))
}

/// What a parser read of the feed itself.
struct FeedHead {
    title: Option<RawText>,
    /// Already resolved, http(s) only.
    site_link: Option<String>,
    ttl_minutes: Option<u32>,
}

/// A text as a parser read it: plain text or HTML, not yet cleaned.
struct RawText {
    text: String,
    html: bool,
}

impl From<model::Text> for RawText {
    fn from(text: model::Text) -> RawText {
        RawText {
            html: text.content_type.subty() != "plain",
            text: text.content,
        }
    }
}

/// An entry as a parser read it (feed-rs, or the rss crate for plain RSS 2.0), before
/// [`normalize_entry`]: both parsers end in this, so both are cleaned the same way.
struct RawEntry {
    /// The guid or id; empty when the document has none.
    id: String,
    title: Option<RawText>,
    /// Already resolved, http(s) only.
    link: Option<String>,
    /// The xml:base of the entry's content element itself, which refines the entry's.
    content_base: Option<String>,
    summary: Option<RawText>,
    content: Option<RawText>,
    published: Option<DateTime<Utc>>,
    updated: Option<DateTime<Utc>>,
    /// Author names, as written.
    authors: Vec<String>,
    /// Category labels (else terms), as written.
    categories: Vec<String>,
    /// Media files, their URLs already resolved (against the xml:base in effect where each
    /// is written); [`normalize_entry`] keeps the http(s) ones.
    enclosures: Vec<RawEnclosure>,
}

/// A media file as a parser read it.
struct RawEnclosure {
    /// Resolved, not yet checked.
    url: String,
    /// The `type` as written.
    mime_type: Option<String>,
    /// The `length` (or `size_in_bytes`, `fileSize`) as written.
    length: Option<String>,
}

impl From<model::Entry> for RawEntry {
    fn from(entry: model::Entry) -> RawEntry {
        let content = entry.content.and_then(|c| {
            Some(RawText {
                html: c.content_type.subty() != "plain",
                text: c.body?,
            })
        });
        RawEntry {
            link: alternate_link(&entry.links),
            id: entry.id,
            title: entry.title.map(RawText::from),
            content_base: entry.base,
            summary: entry.summary.map(RawText::from),
            content,
            published: entry.published,
            updated: entry.updated,
            authors: entry.authors.into_iter().filter_map(|p| p.name).collect(),
            categories: entry
                .categories
                .into_iter()
                .map(|c| c.label.unwrap_or(c.term))
                .collect(),
            enclosures: Vec::new(),
        }
    }
}

/// The parsed feed from what a parser read: entries normalized (each against the xml:base
/// in effect where it is, else the feed's URL), at most [`MAX_ENTRIES`], unique by identity.
fn finish(
    head: FeedHead,
    entries: impl Iterator<Item = RawEntry>,
    entry_bases: &[Url],
    url: &Url,
) -> ParsedFeed {
    let mut seen = HashSet::new();
    let entries = entries
        .take(MAX_ENTRIES)
        .enumerate()
        .map(|(i, entry)| normalize_entry(entry, entry_bases.get(i).unwrap_or(url)))
        .filter(|entry| seen.insert(entry.identity.clone()))
        .collect();
    ParsedFeed {
        title: head.title.map(|t| plain_text(&t)).filter(|t| !t.is_empty()),
        site_link: head.site_link,
        ttl: head
            .ttl_minutes
            .map(|minutes| Duration::from_secs(u64::from(minutes) * 60)),
        entries,
    }
}

thread_local! {
    /// Whether this thread is inside feed-rs, whose panics [`read_with_feed_rs`] catches.
    static IN_FEED_RS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// What feed-rs's last caught panic said.
    static FEED_RS_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// A panic inside feed-rs is kept for [`read_with_feed_rs`] to log with the feed's URL,
/// instead of the default hook's message on stderr; every other panic is reported as before.
fn keep_feed_rs_panics_quiet() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_FEED_RS.with(std::cell::Cell::get) {
                FEED_RS_PANIC.with(|panic| *panic.borrow_mut() = Some(info.to_string()));
            } else {
                default(info);
            }
        }));
    });
}

/// What [`check_xml`] learned of a document.
struct CheckedXml<'a> {
    /// The document, cut after [`MAX_ENTRIES`] items.
    document: Cow<'a, [u8]>,
    /// The xml:base in effect at each item/entry, in document order.
    entry_bases: Vec<Url>,
    /// Whether the rss crate reads this document as feed-rs would (see [`rss2`]).
    plain_rss: bool,
}

/// Reads the XML once with quick-xml, before feed-rs sees it:
/// - to report malformed or truncated documents with their line and column (feed-rs reports
///   neither, and accepts a document cut off mid-way);
/// - to cut a document after its first [`MAX_ENTRIES`] items, so that a feed of 100,000 items
///   costs the parser and the memory of 5,000;
/// - to learn the xml:base inherited by each entry, which feed-rs uses for links but does
///   not expose for resolving the entry's HTML;
/// - to blank out (with spaces, so that line and column stay) every xml:base that does not
///   resolve to an http(s) URL, so that neither feed-rs nor we resolve anything against a
///   `javascript:` (or `file:`, `data:`, ...) base: the enclosing base applies instead.
fn check_xml<'a>(utf8: &'a [u8], url: &Url) -> Result<CheckedXml<'a>, ParseError> {
    let mut reader = quick_xml::Reader::from_reader(utf8);
    // Open elements with the base in effect inside each, as a position in `bases`: most
    // documents have one base, and a URL per element was most of this pass.
    let mut open: Vec<(Vec<u8>, usize)> = Vec::new();
    let mut bases: Vec<Url> = vec![url.clone()];
    let mut entry_bases = Vec::new();
    // The byte ranges of xml:base attributes that are not honoured (see `declared_base`).
    let mut blanks: Vec<std::ops::Range<usize>> = Vec::new();
    let mut shape = rss2::Shape::default();
    let at = |offset: u64, message: String| {
        let (line, column) = line_col(utf8, offset as usize);
        ParseError::Xml {
            line,
            column,
            message,
        }
    };
    loop {
        let before = reader.buffer_position() as usize;
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(start)) => {
                shape.start(open.len(), &start);
                let parent = open.last().map_or(0, |(_, base)| *base);
                let declared = declared_base(&start, &bases[parent]);
                let base = match declared {
                    Some(Ok(declared)) => {
                        bases.push(declared);
                        bases.len() - 1
                    }
                    Some(Err(())) => {
                        blank_base(utf8, before, reader.buffer_position() as usize, &mut blanks);
                        parent
                    }
                    None => parent,
                };
                let is_item = matches!(start.local_name().into_inner(), "item" | "entry");
                if is_item && open.len() <= 2 {
                    if entry_bases.len() == MAX_ENTRIES {
                        let mut cut = utf8[..before].to_vec();
                        blank_out(&mut cut, &blanks);
                        for (name, _) in open.iter().rev() {
                            cut.extend_from_slice(b"</");
                            cut.extend_from_slice(name);
                            cut.push(b'>');
                        }
                        return Ok(CheckedXml {
                            document: Cow::Owned(cut),
                            entry_bases,
                            plain_rss: shape.plain(),
                        });
                    }
                    entry_bases.push(bases[base].clone());
                }
                open.push((start.name().0.as_bytes().to_vec(), base));
            }
            Ok(quick_xml::events::Event::Empty(empty)) => {
                shape.start(open.len(), &empty);
                shape.end(open.len());
                // An empty element's own attributes resolve against its xml:base too.
                let parent = open.last().map_or(0, |(_, base)| *base);
                if let Some(Err(())) = declared_base(&empty, &bases[parent]) {
                    blank_base(utf8, before, reader.buffer_position() as usize, &mut blanks);
                }
            }
            Ok(quick_xml::events::Event::Text(text)) => shape.text(&text),
            Ok(quick_xml::events::Event::CData(cdata)) => shape.text(&cdata),
            Ok(quick_xml::events::Event::GeneralRef(reference)) => shape.reference(&reference),
            Ok(quick_xml::events::Event::End(_)) => {
                open.pop();
                shape.end(open.len());
                // Only the bases of open elements are needed.
                bases.truncate(open.last().map_or(0, |(_, base)| *base) + 1);
            }
            Ok(quick_xml::events::Event::Eof) => break,
            Ok(_) => {}
            Err(err) => return Err(at(reader.error_position(), err.to_string())),
        }
    }
    let document = if blanks.is_empty() {
        Cow::Borrowed(utf8)
    } else {
        let mut blanked = utf8.to_vec();
        blank_out(&mut blanked, &blanks);
        Cow::Owned(blanked)
    };
    match open.last() {
        None => Ok(CheckedXml {
            document,
            entry_bases,
            plain_rss: shape.plain(),
        }),
        Some((name, _)) => Err(at(
            reader.buffer_position(),
            format!(
                "the document ends before <{}> is closed (truncated?)",
                String::from_utf8_lossy(name)
            ),
        )),
    }
}

/// The xml:base `element` declares, resolved against `parent`: `None` when it declares none,
/// `Err` when it is not to be honoured. Only a base that resolves to http(s) is, read both as
/// XML normalizes attribute values and as written with references resolved (feed-rs reads
/// the latter), so that no reading of it leaves another scheme.
fn declared_base(element: &quick_xml::events::BytesStart, parent: &Url) -> Option<Result<Url, ()>> {
    let attribute = element
        .attributes()
        .flatten()
        .find(|a| a.key.0 == "xml:base")?;
    let resolve = |value: &str| {
        parent
            .join(value.trim())
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https"))
    };
    let normalized = attribute
        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
        .ok()
        .and_then(|v| resolve(&v));
    let as_written = quick_xml::escape::unescape(&attribute.value)
        .ok()
        .and_then(|v| resolve(&v));
    Some(match (normalized, as_written) {
        (Some(base), Some(_)) => Ok(base),
        _ => Err(()),
    })
}

/// Records the byte range of the xml:base attribute of the tag at `tag_start..tag_end`, to be
/// blanked out. A tag whose attributes do not scan (quick-xml accepted it, so they do) keeps
/// it: links resolved against it are still refused later, as every link that is not http(s).
fn blank_base(
    document: &[u8],
    tag_start: usize,
    tag_end: usize,
    blanks: &mut Vec<std::ops::Range<usize>>,
) {
    let Some(tag) = document.get(tag_start..tag_end.min(document.len())) else {
        return;
    };
    if let Some(span) = attribute_span(tag, b"xml:base") {
        blanks.push(tag_start + span.start..tag_start + span.end);
    }
}

/// Overwrites `blanks` with spaces, keeping line breaks (so errors keep their line).
fn blank_out(document: &mut [u8], blanks: &[std::ops::Range<usize>]) {
    for blank in blanks {
        // A cut document ends before the tag that made the cut.
        let Some(bytes) = document.get_mut(blank.start..blank.end) else {
            continue;
        };
        for byte in bytes {
            if *byte != b'\n' {
                *byte = b' ';
            }
        }
    }
}

/// Where attribute `name` (name, `=` and quoted value) is in an XML start tag `<...>`.
fn attribute_span(tag: &[u8], name: &[u8]) -> Option<std::ops::Range<usize>> {
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let mut at = tag
        .iter()
        .position(|b| space(b) || *b == b'/' || *b == b'>')?;
    loop {
        while tag.get(at).is_some_and(space) {
            at += 1;
        }
        let start = at;
        while tag
            .get(at)
            .is_some_and(|b| !space(b) && !matches!(b, b'=' | b'/' | b'>'))
        {
            at += 1;
        }
        if at == start {
            return None;
        }
        let key = &tag[start..at];
        while tag.get(at).is_some_and(space) {
            at += 1;
        }
        if tag.get(at) != Some(&b'=') {
            return None;
        }
        at += 1;
        while tag.get(at).is_some_and(space) {
            at += 1;
        }
        let quote = *tag.get(at).filter(|q| matches!(q, b'"' | b'\''))?;
        let close = at + 1 + tag[at + 1..].iter().position(|b| *b == quote)?;
        at = close + 1;
        if key == name {
            return Some(start..at);
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &[u8], offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    (
        line,
        String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1,
    )
}

fn describe_parse_error(err: &feed_rs::parser::ParseFeedError) -> String {
    use feed_rs::parser::ParseFeedError as E;
    match err {
        E::ParseError(kind) => format!("{kind} (expected RSS, Atom or JSON Feed)"),
        E::IoError(err) => format!("read error: {err}"),
        E::JsonSerde(err) => format!(
            "JSON error at line {}, column {}: {err}",
            err.line(),
            err.column()
        ),
        E::JsonUnsupportedVersion(version) => format!("unsupported JSON Feed version {version}"),
        E::XmlReader(err) => format!("XML error: {err}"),
    }
}

/// Normalizes one entry; `entry_base` is the xml:base in effect at the entry (else the
/// feed's URL).
fn normalize_entry(entry: RawEntry, entry_base: &Url) -> Entry {
    let title = entry.title.as_ref().map(plain_text).unwrap_or_default();
    let link = entry.link;
    let base = entry
        .content_base
        .as_deref()
        .and_then(|b| entry_base.join(b.trim()).ok())
        .filter(|b| matches!(b.scheme(), "http" | "https"))
        .unwrap_or_else(|| entry_base.clone());
    let summary = entry
        .summary
        .as_ref()
        .map(|t| text_to_html(t, &base))
        .filter(|html| !html.trim().is_empty());
    let content = entry
        .content
        .as_ref()
        .map(|t| text_to_html(t, &base))
        .filter(|html| !html.trim().is_empty());
    let identity = identity_of(
        &entry.id,
        link.as_deref(),
        &title,
        content.as_deref().or(summary.as_deref()),
    );
    Entry {
        identity,
        title,
        link,
        published: entry.published,
        updated: entry.updated,
        authors: entry
            .authors
            .iter()
            .map(|name| sanitize::plain_text(name, false))
            .filter(|n| !n.is_empty())
            .collect(),
        summary,
        content,
        categories: entry
            .categories
            .iter()
            .map(|c| sanitize::plain_text(c, false))
            .filter(|c| !c.is_empty())
            .collect(),
        enclosures: enclosures(entry.enclosures),
    }
}

/// The most media files kept of one entry.
const MAX_ENCLOSURES: usize = 32;

/// The entry's media files that are http(s), unique by URL, at most [`MAX_ENCLOSURES`].
fn enclosures(raw: Vec<RawEnclosure>) -> Vec<Enclosure> {
    let mut kept: Vec<Enclosure> = Vec::new();
    for enclosure in raw {
        let Some(url) = http_url(&enclosure.url) else {
            continue;
        };
        let mime_type = enclosure
            .mime_type
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| is_mime_type(t));
        let length = enclosure
            .length
            .and_then(|l| l.trim().parse::<u64>().ok())
            .filter(|l| *l > 0);
        let room = kept.len() < MAX_ENCLOSURES;
        match kept.iter_mut().find(|k| k.url == url) {
            // Media RSS and RSS often name one file twice; keep what either says.
            Some(same) => {
                same.mime_type = same.mime_type.take().or(mime_type);
                same.length = same.length.or(length);
            }
            None if room => kept.push(Enclosure {
                url,
                mime_type,
                length,
            }),
            None => {}
        }
    }
    kept
}

/// Whether `text` is a MIME type (`type/subtype`, parameters allowed) that can be written
/// into any output as it is.
fn is_mime_type(text: &str) -> bool {
    let essence = text.split(';').next().unwrap_or_default().trim();
    let token = |t: &str| {
        !t.is_empty()
            && t.len() <= 127
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    text.len() <= 255
        && !text
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '<' || c == '>')
        && essence
            .split_once('/')
            .is_some_and(|(kind, sub)| token(kind) && token(sub))
}

/// The identity of an entry: its own id, else its link, else a hash of its title and text.
pub fn identity_of(id: &str, link: Option<&str>, title: &str, text: Option<&str>) -> String {
    let id = id.trim();
    if !id.is_empty() {
        return id.to_string();
    }
    if let Some(link) = link {
        return link.to_string();
    }
    let mut hasher = Sha256::new();
    hasher.update(title.as_bytes());
    hasher.update([0]);
    hasher.update(text.unwrap_or_default().as_bytes());
    format!("sha256:{}", hex(&hasher.finalize()[..16]))
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The first `alternate` (or untyped) http(s) link; feed-rs already resolved it against
/// xml:base and the feed URL.
fn alternate_link(links: &[model::Link]) -> Option<String> {
    links
        .iter()
        .filter(|l| matches!(l.rel.as_deref(), None | Some("alternate")))
        .chain(links.iter())
        .find_map(|l| http_url(&l.href))
}

/// `href` as an absolute http(s) URL, or nothing.
fn http_url(href: &str) -> Option<String> {
    Url::parse(href.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .map(String::from)
}

/// A feed text as plain text that no reader takes for markup (see [`sanitize::plain_text`]).
fn plain_text(text: &RawText) -> String {
    sanitize::plain_text(&text.text, text.html)
}

/// A text as sanitized HTML; relative URLs in HTML resolve against `base`.
fn text_to_html(text: &RawText, base: &Url) -> String {
    if text.html {
        sanitize::sanitize_html(&text.text, base)
    } else {
        sanitize::text_to_html(&text.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url() -> Url {
        Url::parse("https://news.example/feeds/rss.xml").expect("valid")
    }

    fn parse(xml: &str) -> ParsedFeed {
        parse_feed(xml.as_bytes(), None, &url()).expect("parses")
    }

    #[test]
    fn identity_prefers_guid_then_link_then_hash() {
        assert_eq!(identity_of(" g-1 ", Some("https://x/"), "t", None), "g-1");
        assert_eq!(identity_of("", Some("https://x/"), "t", None), "https://x/");
        let hashed = identity_of("", None, "Title", Some("text"));
        assert!(hashed.starts_with("sha256:"));
        assert_eq!(hashed, identity_of("", None, "Title", Some("text")));
        assert_ne!(hashed, identity_of("", None, "Title", Some("other text")));
        assert_ne!(
            identity_of("", None, "ab", Some("c")),
            identity_of("", None, "a", Some("bc"))
        );
    }

    #[test]
    fn rss_without_guid_or_link_gets_the_same_identity_every_time() {
        let xml = r#"<rss version="2.0"><channel><title>t</title>
            <item><title>No id</title><description>Body</description></item>
            </channel></rss>"#;
        let first = parse(xml);
        let second = parse(xml);
        assert_eq!(first.entries[0].identity, second.entries[0].identity);
        assert!(first.entries[0].identity.starts_with("sha256:"));
    }

    #[test]
    fn rss_guid_and_link_become_identity_and_absolute_link() {
        let xml = r#"<rss version="2.0"><channel><title>Daily</title><link>https://news.example/</link>
            <item><title>A</title><link>/2026/a.html</link><guid>urn:a</guid></item>
            <item><title>B</title><link>b.html</link></item>
            </channel></rss>"#;
        let feed = parse(xml);
        assert_eq!(feed.title.as_deref(), Some("Daily"));
        assert_eq!(feed.entries[0].identity, "urn:a");
        assert_eq!(
            feed.entries[0].link.as_deref(),
            Some("https://news.example/2026/a.html")
        );
        assert_eq!(
            feed.entries[1].identity,
            "https://news.example/feeds/b.html"
        );
    }

    #[test]
    fn atom_xml_base_resolves_links_and_content_urls() {
        let xml = r#"<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://other.example/base/">
            <title>T</title><id>urn:f</id><updated>2026-01-01T00:00:00Z</updated>
            <entry xml:base="/posts/"><id>urn:e</id><title type="html">&lt;b&gt;Bold&lt;/b&gt; &amp;amp; co</title>
              <updated>2026-01-01T00:00:00Z</updated>
              <link href="one.html"/>
              <content type="html">&lt;a href="two.html"&gt;x&lt;/a&gt;&lt;img src="i.png"&gt;</content>
            </entry></feed>"#;
        let feed = parse(xml);
        let entry = &feed.entries[0];
        assert_eq!(entry.title, "Bold & co");
        assert_eq!(
            entry.link.as_deref(),
            Some("https://other.example/posts/one.html")
        );
        let html = entry.content.as_deref().expect("content");
        assert!(
            html.contains("href=\"https://other.example/posts/two.html\""),
            "{html}"
        );
        assert!(
            html.contains("src=\"https://other.example/posts/i.png\""),
            "{html}"
        );
    }

    #[test]
    fn hostile_html_is_sanitized() {
        let xml = r#"<rss version="2.0"><channel><title>t</title><item><guid>1</guid><title>&lt;script&gt;alert(1)&lt;/script&gt;Hi</title>
            <description><![CDATA[<p onclick="x()">ok</p><script>alert(1)</script><a href="javascript:alert(1)">j</a><iframe src="https://e/"></iframe><style>p{}</style>]]></description>
            </item></channel></rss>"#;
        let entry = &parse(xml).entries[0];
        let html = entry.summary.as_deref().expect("summary");
        for bad in ["script", "onclick", "javascript:", "iframe", "style"] {
            assert!(!html.contains(bad), "{bad} survived in {html}");
        }
        assert!(html.contains("<p>ok</p>"), "{html}");
        // The title is HTML (it has a closing tag): the script goes, with its text.
        assert_eq!(entry.title, "Hi");
    }

    #[test]
    fn each_entry_resolves_against_the_xml_base_in_effect_where_it_is() {
        let atom = r#"<feed xmlns="http://www.w3.org/2005/Atom" xml:base="http://a.example/x/"><title>B</title><id>urn:b</id>
<entry xml:base="sub/"><id>urn:1</id><title>One</title><content type="html">&lt;a href="p"&gt;one&lt;/a&gt;</content></entry>
<entry><id>urn:2</id><title>Two</title><content type="html">&lt;a href="p"&gt;two&lt;/a&gt;</content></entry>
<entry xml:base="http://c.example/"><id>urn:3</id><title>Three</title><content xml:base="deeper/" type="html">&lt;a href="p"&gt;three&lt;/a&gt;</content></entry>
</feed>"#;
        let url = Url::parse("http://feed.example/feed.atom").expect("url");
        let parsed = parse_feed(atom.as_bytes(), None, &url).expect("parses");
        let hrefs: Vec<String> = parsed
            .entries
            .iter()
            .map(|e| {
                let html = e.html().unwrap_or_default();
                let start = html.find("href=\"").expect("a link") + 6;
                html[start..][..html[start..].find('"').expect("closed")].to_string()
            })
            .collect();
        assert_eq!(
            hrefs,
            [
                "http://a.example/x/sub/p",
                "http://a.example/x/p",
                "http://c.example/deeper/p"
            ]
        );
    }

    /// The href of the first link in an entry's HTML.
    fn first_href(entry: &Entry) -> String {
        let html = entry.html().unwrap_or_default();
        let Some(start) = html.find("href=\"").map(|at| at + 6) else {
            return String::new();
        };
        html[start..][..html[start..].find('"').expect("closed")].to_string()
    }

    #[test]
    fn an_xml_base_that_is_not_http_is_ignored() {
        let url = Url::parse("https://feed.example/dir/feed.atom").expect("url");
        let bad_bases = [
            "javascript://x/%0Aalert(1)//",
            "JavaScript:alert(1)//",
            "java&#x9;script:alert(1)//",
            " vbscript:x/",
            "data:text/html,x/",
            "file:///etc/",
            "ftp://ftp.example/",
            "http://[bad",
        ];
        for bad in bad_bases {
            // On the feed: the feed's URL applies.
            let atom = format!(
                r#"<feed xmlns="http://www.w3.org/2005/Atom" xml:base="{bad}"><title>T</title><id>urn:f</id>
<entry><id>urn:1</id><title>One</title><link href="clickme"/><content type="html">&lt;a href="clickme"&gt;x&lt;/a&gt;</content></entry>
</feed>"#
            );
            let feed = parse_feed(atom.as_bytes(), None, &url).expect("parses");
            let entry = &feed.entries[0];
            assert_eq!(
                entry.link.as_deref(),
                Some("https://feed.example/dir/clickme"),
                "{bad}"
            );
            assert_eq!(
                first_href(entry),
                "https://feed.example/dir/clickme",
                "{bad}"
            );
            // On an entry, its content, a link: the enclosing base applies.
            let atom = format!(
                r#"<feed xmlns="http://www.w3.org/2005/Atom" xml:base="https://good.example/g/"><title>T</title><id>urn:f</id>
<entry xml:base="{bad}"><id>urn:1</id><title>One</title><link xml:base="{bad}" href="clickme"/><content xml:base="{bad}" type="html">&lt;a href="clickme"&gt;x&lt;/a&gt;</content></entry>
</feed>"#
            );
            let feed = parse_feed(atom.as_bytes(), None, &url).expect("parses");
            let entry = &feed.entries[0];
            assert_eq!(
                entry.link.as_deref(),
                Some("https://good.example/g/clickme"),
                "{bad}"
            );
            assert_eq!(first_href(entry), "https://good.example/g/clickme", "{bad}");
            // RSS with xml:base.
            let rss = format!(
                r#"<rss version="2.0" xml:base="{bad}"><channel xml:base="{bad}"><title>T</title><link>home</link>
<item xml:base="{bad}"><guid>1</guid><title>One</title><link>clickme</link><description>&lt;a href="clickme"&gt;x&lt;/a&gt;&lt;img src="i.png"&gt;</description></item>
</channel></rss>"#
            );
            let feed = parse_feed(rss.as_bytes(), None, &url).expect("parses");
            let entry = &feed.entries[0];
            assert_eq!(
                feed.site_link.as_deref(),
                Some("https://feed.example/dir/home")
            );
            assert_eq!(
                entry.link.as_deref(),
                Some("https://feed.example/dir/clickme"),
                "{bad}"
            );
            assert_eq!(
                first_href(entry),
                "https://feed.example/dir/clickme",
                "{bad}"
            );
            assert!(
                entry
                    .html()
                    .unwrap_or_default()
                    .contains("src=\"https://feed.example/dir/i.png\""),
                "{bad}: {entry:?}"
            );
        }
    }

    #[test]
    fn a_cut_document_keeps_its_blanks_in_range() {
        let items: String = (0..MAX_ENTRIES + 2)
            .map(|i| {
                format!("<item xml:base=\"javascript:x/\"><guid>{i}</guid><link>l</link></item>")
            })
            .collect();
        let feed = parse(&format!(
            "<rss version=\"2.0\"><channel><title>t</title>{items}</channel></rss>"
        ));
        assert_eq!(feed.entries.len(), MAX_ENTRIES);
        assert_eq!(
            feed.entries[0].link.as_deref(),
            Some("https://news.example/feeds/l")
        );
    }

    #[test]
    fn ignored_bases_are_blanked_in_place() {
        let xml = "<feed xmlns=\"http://www.w3.org/2005/Atom\">\n<entry xml:base=\"javascript:\nx/\" a='b'><id>1</id></entry><link xml:base='file:/' href='h'/></feed>";
        let checked = check_xml(xml.as_bytes(), &url()).expect("well-formed");
        let document = String::from_utf8(checked.document.to_vec()).expect("utf-8");
        assert_eq!(document.len(), xml.len());
        assert_eq!(document.lines().count(), xml.lines().count());
        assert!(!document.contains("xml:base"), "{document}");
        assert!(
            document.contains("<entry        ") && document.contains("a='b'"),
            "{document}"
        );
        assert_eq!(checked.entry_bases, [url()]);
    }

    #[test]
    fn hostile_html_in_every_format_is_bounded() {
        let nested = "<div>".repeat(20_000) + "deep text";
        let escaped = nested.replace('<', "&lt;").replace('>', "&gt;");
        let documents = [
            format!("<rss version=\"2.0\"><channel><title>t</title><item><guid>1</guid><title>{escaped}</title><description>{escaped}</description></item></channel></rss>"),
            format!("<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>t</title><entry><id>1</id><title type=\"html\">{escaped}</title><content type=\"html\">{escaped}</content></entry></feed>"),
            serde_json::json!({"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": [{"id": "1", "title": nested, "content_html": nested}]}).to_string(),
        ];
        for document in documents {
            let feed = parse(&document);
            let entry = &feed.entries[0];
            let html = entry.html().unwrap_or_default();
            assert!(html.contains("deep text"), "{html}");
            assert!(
                html.matches("<div>").count() <= sanitize::MAX_DEPTH,
                "{} divs",
                html.matches("<div>").count()
            );
            // Markup the format marks or that looks like HTML is removed; the rest opens no tag.
            assert!(!entry.title.contains("<div"), "{}", entry.title);
        }
    }

    /// Times hostile documents of about 1 MB against a plain one of the same size:
    /// `cargo test --release --lib parse::tests::hostile_documents_cost -- --ignored
    /// --nocapture`.
    #[test]
    #[ignore]
    fn hostile_documents_cost_about_what_a_plain_one_does() {
        let n = 100_000;
        let time = |doc: &str| {
            let started = std::time::Instant::now();
            let parsed = parse_feed(doc.as_bytes(), None, &url());
            (started.elapsed(), parsed.map(|f| f.entries.len()))
        };
        let plain = format!(
            "<rss version=\"2.0\"><channel><title>t</title>{}</channel></rss>",
            (0..n / 25)
                .map(|i| format!("<item><guid>{i}</guid><description>&lt;div&gt;x&lt;/div&gt;</description></item>"))
                .collect::<String>()
        );
        let (plain_time, _) = time(&plain);
        eprintln!("plain, {} bytes: {plain_time:?}", plain.len());
        let hostile = [
            ("nested HTML in an item", format!("<rss version=\"2.0\"><channel><title>t</title><item><guid>1</guid><description>{}x</description></item></channel></rss>", "&lt;div&gt;".repeat(n))),
            ("nested XHTML", format!("<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>t</title><entry><id>1</id><content type=\"xhtml\"><div xmlns=\"http://www.w3.org/1999/xhtml\">{}x{}</div></content></entry></feed>", "<div>".repeat(n), "</div>".repeat(n))),
            ("nested XML elements", format!("<rss version=\"2.0\"><channel><title>t</title><item><guid>1</guid>{}x{}</item></channel></rss>", "<x>".repeat(n), "</x>".repeat(n))),
            ("XML attributes", format!("<rss version=\"2.0\"><channel><title>t</title><item {}><guid>1</guid></item></channel></rss>", (0..n).map(|i| format!("a{i}=\"1\" ")).collect::<String>())),
            ("HTML attributes", format!("<rss version=\"2.0\"><channel><title>t</title><item><guid>1</guid><description>&lt;p {}&gt;x</description></item></channel></rss>", (0..n).map(|i| format!("a{i}=1 ")).collect::<String>())),
            ("nested JSON Feed content_html", serde_json::json!({"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": [{"id": "1", "content_html": "<div>".repeat(2 * n)}]}).to_string()),
            ("nested title", format!("<rss version=\"2.0\"><channel><title>t</title><item><guid>1</guid><title>{}x</title></item></channel></rss>", "&lt;div&gt;".repeat(n))),
        ];
        for (what, document) in hostile {
            let (elapsed, parsed) = time(&document);
            eprintln!(
                "{what}, {} bytes: {elapsed:?} ({parsed:?}), {:.2} x plain",
                document.len(),
                elapsed.as_secs_f64() / plain_time.as_secs_f64() * plain.len() as f64
                    / document.len() as f64
            );
        }
    }

    #[test]
    fn json_feed_items_parse() {
        let json = r#"{"version":"https://jsonfeed.org/version/1.1","title":"J","items":[
            {"id":"1","url":"https://j.example/1","title":"One","content_html":"<p>x</p>","date_published":"2026-11-01T10:00:00Z"}]}"#;
        let feed = parse(json);
        assert_eq!(feed.entries[0].identity, "1");
        assert_eq!(feed.entries[0].content.as_deref(), Some("<p>x</p>"));
        assert!(feed.entries[0].published.is_some());
    }

    #[test]
    fn header_charset_wins_and_decodes_gbk() {
        let (gbk, _, _) = encoding_rs::GBK.encode(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><rss version=\"2.0\"><channel><title>内蒙古日报</title></channel></rss>",
        );
        let feed = parse_feed(&gbk, Some("text/xml; charset=GBK"), &url()).expect("parses");
        assert_eq!(feed.title.as_deref(), Some("内蒙古日报"));
    }

    #[test]
    fn long_feeds_are_cut_at_the_entry_limit() {
        let items: String = (0..MAX_ENTRIES + 10)
            .map(|i| format!("<item><guid>{i}</guid><title>t{i}</title></item>"))
            .collect();
        let feed = parse(&format!(
            "<rss version=\"2.0\"><channel><title>t</title>{items}</channel></rss>"
        ));
        assert_eq!(feed.entries.len(), MAX_ENTRIES);
        assert_eq!(
            feed.entries[MAX_ENTRIES - 1].identity,
            (MAX_ENTRIES - 1).to_string()
        );
    }

    #[test]
    fn malformed_and_truncated_xml_name_the_line() {
        let err = parse_feed(
            b"<rss version=\"2.0\">\n<channel>\n<title>x</titel>",
            None,
            &url(),
        )
        .expect_err("malformed");
        assert!(
            err.to_string().starts_with("XML error at line 3, column"),
            "{err}"
        );
        let err = parse_feed(
            b"<rss version=\"2.0\">\n<channel><title>x</title>\n<item><title>cut",
            None,
            &url(),
        )
        .expect_err("truncated");
        assert!(err.to_string().contains("line 3"), "{err}");
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn an_author_that_crashes_feed_rs_is_read_by_the_rss_crate() {
        // feed-rs slices "desk@news.example（" inside the full-width parenthesis and panics.
        let xml = r#"<rss version="2.0"><channel><title>日报</title>
            <item><guid>1</guid><title>头条</title><author>desk@news.example（编辑部）</author></item>
            </channel></rss>"#;
        let feed = parse(xml);
        assert_eq!(feed.title.as_deref(), Some("日报"));
        assert_eq!(feed.entries.len(), 1);
        assert_eq!(feed.entries[0].title, "头条");
        // Not RSS 2.0: whatever reads it, the answer is a result, not a panic.
        let rdf = "<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\" \
            xmlns=\"http://purl.org/rss/1.0/\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\">\
            <channel><title>t</title></channel><item><title>x</title>\
            <dc:creator>a@b.example\u{a0}</dc:creator></item></rdf:RDF>";
        let _ = parse_feed(rdf.as_bytes(), None, &url());
    }

    #[test]
    fn empty_and_html_bodies_are_errors() {
        assert!(matches!(
            parse_feed(b"  \n", None, &url()),
            Err(ParseError::Empty)
        ));
        let err =
            parse_feed(b"<html><body>hi</body></html>", None, &url()).expect_err("not a feed");
        assert!(err.to_string().starts_with("not a feed"), "{err}");
    }
}
