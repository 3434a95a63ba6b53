//! Publishing: output feeds rendered as Atom 1.0, RSS 2.0 and JSON Feed 1.1.
//!
//! A document is rendered once per change of its entries and kept as bytes (plain and gzip)
//! with a strong ETag, so serving it is a lookup and a copy of an `Arc`. Rendering is
//! deterministic: the same entries give the same bytes and ETag, across restarts too, and the
//! `Last-Modified` of a document moves only when its bytes do.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use axum::http::HeaderValue;
use bytes::Bytes;
use chrono::{DateTime, FixedOffset, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};
use url::Url;

use crate::config::{FeedConfig, ServerConfig};
use crate::model::hex;
use crate::model::StoredEntry;
use crate::sanitize;
use crate::select::Story;

mod atom;
pub(crate) mod freshness;
mod json;
pub(crate) mod page;
mod rss;

use freshness::NextFetch;

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Atom 1.0, `.atom`.
    Atom,
    /// RSS 2.0, `.rss`.
    Rss,
    /// JSON Feed 1.1, `.json`.
    Json,
}

impl Format {
    /// The format served under a file extension.
    pub(crate) fn from_extension(ext: &str) -> Option<Format> {
        match ext {
            "atom" => Some(Format::Atom),
            "rss" => Some(Format::Rss),
            "json" => Some(Format::Json),
            _ => None,
        }
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Atom => "atom",
            Format::Rss => "rss",
            Format::Json => "json",
        }
    }

    /// The `Content-Type` the document is served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Atom => "application/atom+xml; charset=utf-8",
            Format::Rss => "application/rss+xml; charset=utf-8",
            Format::Json => "application/feed+json; charset=utf-8",
        }
    }
}

/// One rendered document, ready to serve.
#[derive(Debug, Clone)]
pub struct Document {
    /// The body.
    pub body: Bytes,
    /// The body, gzip-compressed.
    pub(crate) gzip: Bytes,
    /// A strong ETag of `body`, quoted.
    pub(crate) etag: String,
    /// When the bytes last changed.
    pub(crate) last_modified: SystemTime,
    /// The response headers made once, not per request: `ETag` of the plain body, of the
    /// gzip body (`-gz` suffix), and `Last-Modified`.
    pub(crate) headers: DocumentHeaders,
}

/// Ready-made validator headers of a [`Document`].
#[derive(Debug, Clone)]
pub(crate) struct DocumentHeaders {
    /// `ETag` of the plain body.
    pub(crate) etag: HeaderValue,
    /// `ETag` of the gzip body.
    pub(crate) etag_gzip: HeaderValue,
    /// `Last-Modified`.
    pub(crate) last_modified: HeaderValue,
}

impl Document {
    /// A document of `body` (and its gzip) with `etag`, last changed at `last_modified`.
    pub(crate) fn new(
        body: Bytes,
        gzip: Bytes,
        etag: String,
        last_modified: SystemTime,
    ) -> Document {
        let value = |text: &str| {
            HeaderValue::from_str(text).unwrap_or_else(|_| HeaderValue::from_static("\"\""))
        };
        let headers = DocumentHeaders {
            etag: value(&etag),
            etag_gzip: value(&format!("{}-gz\"", etag.trim_end_matches('"'))),
            last_modified: value(&httpdate::fmt_http_date(last_modified)),
        };
        Document {
            body,
            gzip,
            etag,
            last_modified,
            headers,
        }
    }
}

/// The documents of an output feed: three feed formats and an HTML view.
#[derive(Debug)]
pub struct RenderedFeed {
    atom: Document,
    rss: Document,
    json: Document,
    html: Document,
    /// The store's time the feed documents were rendered at, when they were dated by it
    /// ([`Dating::Store`]): a render of an older time never replaces them.
    store_time: Option<DateTime<Utc>>,
    /// The earliest planned fetch of the feed's sources, for `Cache-Control`.
    next_fetch: NextFetch,
}

impl RenderedFeed {
    /// The document in `format`.
    pub fn document(&self, format: Format) -> &Document {
        match format {
            Format::Atom => &self.atom,
            Format::Rss => &self.rss,
            Format::Json => &self.json,
        }
    }

    /// The HTML view.
    pub fn html(&self) -> &Document {
        &self.html
    }

    /// How many seconds readers may cache the feed's documents at `now` (the time of the
    /// request): until its sources' next fetch, and a little more (see
    /// [`freshness::max_age`]).
    pub(crate) fn max_age(&self, now: DateTime<Utc>) -> u64 {
        freshness::max_age(self.next_fetch.get(), now)
    }

    /// The earliest planned fetch of the feed's sources, as last seen.
    #[cfg(test)]
    pub(crate) fn next_fetch(&self) -> Option<DateTime<Utc>> {
        self.next_fetch.get()
    }
}

/// How a render's feed documents (Atom, RSS, JSON Feed) are dated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dating {
    /// At the time of rendering, by one process (an engine that keeps no time of change):
    /// new bytes are last modified at the render's time, but never at or before the bytes
    /// they replace; the same bytes keep their Last-Modified.
    Clock,
    /// At the store's time of the feed's last change, the same on every replica: each
    /// document is last modified exactly then (whole seconds), whether or not its bytes
    /// changed, and a render of a time before the published documents' is dropped.
    Store,
}

/// When one render of a feed happens, as [`Publisher::publish_render`] takes it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RenderTime {
    /// The time the feed documents were rendered at (see [`Dating`]).
    pub(crate) at: DateTime<Utc>,
    /// How they are dated.
    pub(crate) dating: Dating,
    /// The wall clock: the HTML view shows relative times, so it is rendered, and dated as
    /// [`Dating::Clock`] dates, at the time of rendering.
    pub(crate) clock: DateTime<Utc>,
    /// The earliest planned fetch of the feed's sources.
    pub(crate) next_fetch: Option<DateTime<Utc>>,
}

/// `body` as a document, keeping `previous` (and its Last-Modified) when the bytes are the
/// same.
///
/// New bytes are last modified `now`, but never at or before the document they replace:
/// renders overlap (the renderer, retention, a reload), and one that began earlier may
/// publish later. A Last-Modified that went back, or stayed, would answer 304 to a reader
/// asking `If-Modified-Since` for bytes it has not seen (HTTP dates count whole seconds).
fn document(previous: Option<&Document>, body: Vec<u8>, now: SystemTime) -> Document {
    let etag = etag_of(&body);
    let modified = match previous {
        Some(old) if old.etag == etag => return old.clone(),
        Some(old) => {
            let after_old = old.last_modified + std::time::Duration::from_secs(1);
            now.max(after_old)
        }
        None => now,
    };
    let compressed = gzip(&body);
    Document::new(Bytes::from(body), compressed, etag, modified)
}

/// `body` as a document last modified exactly at `at`, in whole seconds ([`Dating::Store`]),
/// whatever was published before: a replica that rendered these bytes at an earlier time of
/// change must agree with one that renders them now. `previous` only saves work: its gzip
/// when the bytes are the same, the whole document when its time is too.
fn document_at(previous: Option<&Document>, body: Vec<u8>, at: DateTime<Utc>) -> Document {
    let etag = etag_of(&body);
    // HTTP dates have whole seconds: what every replica writes and compares.
    let modified = DateTime::from_timestamp(at.timestamp(), 0)
        .map(SystemTime::from)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    match previous {
        Some(old) if old.etag == etag && old.last_modified == modified => old.clone(),
        Some(old) if old.etag == etag => {
            Document::new(old.body.clone(), old.gzip.clone(), etag, modified)
        }
        _ => {
            let compressed = gzip(&body);
            Document::new(Bytes::from(body), compressed, etag, modified)
        }
    }
}

/// The strong ETag of `body`, quoted.
fn etag_of(body: &[u8]) -> String {
    format!("\"{}\"", hex(&Sha256::digest(body)[..16]))
}

/// What an output entry says of its source.
#[derive(Debug, Clone, Default)]
pub struct SourceInfo {
    /// The configured name.
    pub name: String,
    /// The configured title, else the feed's own, else the name.
    pub title: String,
    /// The feed's URL.
    pub url: String,
    /// The feed's home page.
    pub site_link: Option<String>,
}

/// The self URL of `feed` in `format`.
pub(crate) fn feed_url(base_url: &Url, feed: &str, format: Format) -> String {
    format!("{base_url}feeds/{feed}.{}", format.extension())
}

/// The latest rendered documents of every output feed, shared between the renderer and the
/// HTTP server.
#[derive(Default)]
pub struct Publisher {
    feeds: RwLock<HashMap<String, Arc<RenderedFeed>>>,
    home: RwLock<Option<Arc<Document>>>,
}

impl Publisher {
    /// The current documents of feed `name`.
    pub fn get(&self, name: &str) -> Option<Arc<RenderedFeed>> {
        self.feeds
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Renders `feed` from its stories as of `now` and publishes it, with `html` as its HTML
    /// view. The bytes depend on `now` only where an entry claims an update time after it
    /// (not believed). A document whose bytes did not change keeps its ETag and
    /// Last-Modified; a new one is last modified `now` ([`Dating::Clock`]).
    pub fn publish(
        &self,
        feed: &FeedConfig,
        stories: &[Story],
        sources: &HashMap<String, SourceInfo>,
        server: &ServerConfig,
        html: String,
        now: DateTime<Utc>,
    ) {
        let time = RenderTime {
            at: now,
            dating: Dating::Clock,
            clock: now,
            next_fetch: None,
        };
        self.publish_render(feed, stories, sources, server, html, time);
    }

    /// Renders `feed` from its stories as of `time.at` and publishes it, dated as
    /// `time.dating` says, with `html` (rendered at `time.clock`) as its HTML view. Answers
    /// false when the render was dropped: dated by the store, and older than the documents
    /// published (an older render that finished late).
    ///
    /// When the feed config changes (a reload) but the store does not, a store-dated render
    /// writes new bytes with the same Last-Modified: replicas must agree on it, and only the
    /// store's time is the same on all of them. Their ETags tell the bytes apart.
    pub(crate) fn publish_render(
        &self,
        feed: &FeedConfig,
        stories: &[Story],
        sources: &HashMap<String, SourceInfo>,
        server: &ServerConfig,
        html: String,
        time: RenderTime,
    ) -> bool {
        let previous = self.get(&feed.name);
        let now = time.at;
        if time.dating == Dating::Store {
            let published = previous.as_ref().and_then(|p| p.store_time);
            if published.is_some_and(|published| now < published) {
                return false;
            }
        }
        let keep_or_new = |format: Format, body: Vec<u8>| {
            let previous = previous.as_ref().map(|p| p.document(format));
            match time.dating {
                Dating::Clock => document(previous, body, SystemTime::from(now)),
                Dating::Store => document_at(previous, body, now),
            }
        };
        let rendered = RenderedFeed {
            atom: keep_or_new(
                Format::Atom,
                atom::render(feed, stories, sources, server, now),
            ),
            rss: keep_or_new(
                Format::Rss,
                rss::render(feed, stories, sources, server, now),
            ),
            json: keep_or_new(
                Format::Json,
                json::render(feed, stories, sources, server, now),
            ),
            html: document(
                previous.as_ref().map(|p| p.html()),
                html.into_bytes(),
                SystemTime::from(time.clock),
            ),
            store_time: (time.dating == Dating::Store).then_some(now),
            next_fetch: NextFetch::new(time.next_fetch),
        };
        let mut feeds = self.feeds.write().unwrap_or_else(|p| p.into_inner());
        // Checked again under the lock: another render may have published meanwhile.
        if time.dating == Dating::Store {
            let published = feeds.get(&feed.name).and_then(|p| p.store_time);
            if published.is_some_and(|published| now < published) {
                return false;
            }
        }
        feeds.insert(feed.name.clone(), Arc::new(rendered));
        true
    }

    /// Sets the earliest planned fetch of feed `name`'s sources, for `Cache-Control`,
    /// without rendering it again.
    pub(crate) fn set_next_fetch(&self, name: &str, next_fetch: Option<DateTime<Utc>>) {
        if let Some(rendered) = self.get(name) {
            rendered.next_fetch.set(next_fetch);
        }
    }

    /// The home page.
    pub(crate) fn home(&self) -> Option<Arc<Document>> {
        self.home.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Publishes the home page, rendered at `now`.
    pub(crate) fn publish_home(&self, html: String, now: DateTime<Utc>) {
        let previous = self.home();
        let page = document(
            previous.as_deref(),
            html.into_bytes(),
            SystemTime::from(now),
        );
        *self.home.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(page));
    }

    /// Drops the documents of feeds that are no longer configured.
    pub(crate) fn retain(&self, names: &[&str]) {
        self.feeds
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|name, _| names.contains(&name.as_str()));
    }
}

fn gzip(body: &[u8]) -> Bytes {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing into a Vec cannot fail.
    let _ = encoder.write_all(body);
    Bytes::from(encoder.finish().unwrap_or_default())
}

/// The time the document was last updated: its newest entry's time, so that the same
/// entries always render the same bytes.
fn document_updated(stories: &[Story], now: DateTime<Utc>) -> DateTime<Utc> {
    stories
        .iter()
        .map(|s| entry_updated(&s.entry, now))
        .max()
        .unwrap_or_default()
}

/// The entry's update time as written: an update time after `now` (the render's time) is
/// not believed, and the sort time stands in for it.
fn entry_updated(stored: &StoredEntry, now: DateTime<Utc>) -> DateTime<Utc> {
    let sort_time = sort_time_out(stored);
    stored
        .entry
        .updated
        .and_then(writable)
        .filter(|u| *u <= now)
        .unwrap_or(sort_time)
        .max(sort_time)
}

/// `time` if every format can write it: RFC 3339 and RFC 2822 have four-digit years (0 to
/// 9999), and chrono panics writing RFC 2822 beyond them. A feed may date an entry in the
/// year -1000 or 20000, and its sort time is then that date.
fn writable(time: DateTime<Utc>) -> Option<DateTime<Utc>> {
    use chrono::Datelike;
    (0..=9999).contains(&time.year()).then_some(time)
}

/// The entry's sort time as written (RSS `pubDate`, JSON `date_published`): its sort time,
/// else (a date no format can write) its first-seen time.
fn sort_time_out(stored: &StoredEntry) -> DateTime<Utc> {
    writable(stored.sort_time)
        .or_else(|| writable(stored.first_seen))
        .unwrap_or_default()
}

fn fixed(time: DateTime<Utc>) -> DateTime<FixedOffset> {
    time.fixed_offset()
}

// Every URL and text a document carries is checked again as it is written, whatever the
// store holds (entries stored by an older version, a source's `file:` URL): no URL that is
// not http(s), no text that a reader rendering it as HTML takes for a tag. For what the
// parser stored, each check is a scan that changes nothing.

/// `link` if it is an absolute http(s) URL, written as a URI that validators accept: the
/// characters RFC 3986 leaves out of URIs (`|`, `^`, `[` and `]` in a path, `{`, `}`, a
/// backtick, white space, anything not ASCII) percent-encoded after the authority, as a
/// browser sends them. The W3C validator reports a link holding one as an error
/// (`InvalidUriChar`); the url crate leaves some of them in a path.
fn link_out(link: &str) -> Option<Cow<'_, str>> {
    let link = sanitize::republishable_link(link)?;
    if link.bytes().all(is_uri_byte) {
        return Some(link);
    }
    // Through the url crate first: a host in Unicode becomes its ASCII (punycode) form.
    let parsed = String::from(Url::parse(&link).ok()?);
    let authority = parsed.find("://").map_or(0, |at| at + 3);
    let path = parsed[authority..]
        .find(['/', '?', '#'])
        .map_or(parsed.len(), |at| authority + at);
    let mut out = String::with_capacity(parsed.len() + 16);
    out.push_str(&parsed[..path]);
    for c in parsed[path..].chars() {
        if c.is_ascii() && is_uri_byte(c as u8) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    Some(Cow::Owned(out))
}

/// Whether a byte may stand in a URI as it is (RFC 2396's characters, as the W3C validator
/// checks them; `%` and `#` included).
fn is_uri_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b";/?:@&=+$.-_!~*'()%,#".contains(&byte)
}

/// A media file as a document writes it.
struct Media<'a> {
    url: Cow<'a, str>,
    /// The stored type, if it is one every format can carry.
    mime_type: Option<&'a str>,
    length: Option<u64>,
}

impl Media<'_> {
    /// The type for formats that require one (RSS `<enclosure type>`, JSON Feed
    /// `mime_type`): the stored one, else the one its file name says, else
    /// `application/octet-stream`.
    fn required_type(&self) -> &str {
        self.mime_type
            .or_else(|| guessed_type(&self.url))
            .unwrap_or("application/octet-stream")
    }
}

/// The entry's media files that may be republished: each URL checked as links are.
fn media_out(entry: &crate::model::Entry) -> impl Iterator<Item = Media<'_>> {
    entry.enclosures.iter().filter_map(|enclosure| {
        Some(Media {
            url: link_out(&enclosure.url)?,
            mime_type: enclosure.mime_type.as_deref().and_then(mime_out),
            length: enclosure.length.filter(|l| *l > 0),
        })
    })
}

/// A MIME type as written: `type/subtype` and parameters (`name=value`, the value a token or
/// a quoted string) as RFC 2045 spells them and validators check them; with parameters that
/// are not so, the type alone; nothing if even that is not a type.
fn mime_out(mime: &str) -> Option<&str> {
    fn token(text: &str) -> bool {
        !text.is_empty()
            && text.len() <= 127
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    }
    let mut parts = mime.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    if !essence
        .split_once('/')
        .is_some_and(|(kind, sub)| token(kind) && token(sub))
    {
        return None;
    }
    let parameters_ok = parts.all(|parameter| {
        parameter
            .trim()
            .split_once('=')
            .is_some_and(|(name, value)| {
                let quoted = value.len() >= 2
                    && value.starts_with('"')
                    && value.ends_with('"')
                    && !value[1..value.len() - 1]
                        .chars()
                        .any(|c| c == '"' || c == '\\' || c.is_control());
                token(name) && (token(value) || quoted)
            })
    });
    if parameters_ok && mime.len() <= 255 && !mime.starts_with(char::is_whitespace) {
        Some(mime.trim_end())
    } else {
        Some(essence)
    }
}

/// The type a media file's name says (`.mp3`: `audio/mpeg`), for the few kinds feeds carry.
fn guessed_type(url: &str) -> Option<&'static str> {
    let path = url.split(['?', '#']).next().unwrap_or_default();
    let name = path.rsplit('/').next().unwrap_or_default();
    let (_, extension) = name.rsplit_once('.')?;
    let extension = extension.to_ascii_lowercase();
    Some(match extension.as_str() {
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "aac" => "audio/aac",
        "ogg" | "oga" => "audio/ogg",
        "opus" => "audio/opus",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "mp4" => "video/mp4",
        "m4v" => "video/x-m4v",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "ogv" => "video/ogg",
        "mpg" | "mpeg" => "video/mpeg",
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "epub" => "application/epub+zip",
        "zip" => "application/zip",
        "torrent" => "application/x-bittorrent",
        "vtt" => "text/vtt",
        "srt" => "application/x-subrip",
        _ => return None,
    })
}

/// A title, a name or a category, with no tag in it.
fn text_out(text: &str) -> Cow<'_, str> {
    sanitize::defang_str(text)
}

/// Item HTML with no URL that is not http(s).
fn html_out(html: &str) -> Cow<'_, str> {
    sanitize::republishable_html(html)
}

/// The URL a source is republished with: its feed's URL if that is http(s), else (a `file:`
/// source) a URL of this server that names it.
fn source_url(source: &SourceInfo, base_url: &Url) -> String {
    link_out(&source.url).map_or_else(
        || format!("{base_url}#source-{}", source.name),
        Cow::into_owned,
    )
}

fn source_of<'a>(
    stored: &StoredEntry,
    sources: &'a HashMap<String, SourceInfo>,
) -> std::borrow::Cow<'a, SourceInfo> {
    match sources.get(&stored.source) {
        Some(info) => std::borrow::Cow::Borrowed(info),
        None => std::borrow::Cow::Owned(SourceInfo {
            name: stored.source.clone(),
            title: stored.source.clone(),
            ..SourceInfo::default()
        }),
    }
}

/// The name a source is written with: its title, else (blank) its configured name.
fn source_name(source: &SourceInfo) -> &str {
    if source.title.trim().is_empty() {
        &source.name
    } else {
        &source.title
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dedup;
    use crate::model::{Enclosure, Entry};

    fn stored(source: &str, id: &str, link: &str) -> StoredEntry {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        StoredEntry {
            source: source.into(),
            entry: Entry {
                identity: id.into(),
                title: format!("Title {id}"),
                link: Some(link.into()),
                published: Some(now),
                updated: None,
                authors: vec![],
                summary: Some("<p>text</p>".into()),
                content: None,
                categories: vec![],
                ..Entry::default()
            },
            first_seen: now,
            sort_time: now,
            same_link_as: None,
            same_text_as: None,
        }
    }

    /// The output feed the tests publish: sources a and b.
    fn test_feed() -> FeedConfig {
        FeedConfig {
            name: "all".into(),
            title: "All".into(),
            sources: vec!["a".into(), "b".into()],
            include: vec![],
            exclude: vec![],
            limit: 10,
            max_per_source: 10,
            dedup: Dedup::Content,
        }
    }

    /// The `[server]` the tests publish for, naming `hub` when given.
    fn test_server(hub: Option<&str>) -> ServerConfig {
        ServerConfig {
            listen: "127.0.0.1:8080".parse().expect("address"),
            base_url: Url::parse("https://news.example/planet/").expect("url"),
            header_timeout: std::time::Duration::from_secs(10),
            write_timeout: std::time::Duration::from_secs(30),
            max_connections: 1024,
            max_connections_per_ip: 64,
            title: "t".into(),
            lang: "en".into(),
            hub: hub.map(|h| Url::parse(h).expect("url")),
        }
    }

    #[test]
    fn new_bytes_are_last_modified_after_the_bytes_they_replace_whatever_the_render_time() {
        let (feed, server) = (test_feed(), test_server(None));
        let publisher = Publisher::default();
        let at = |s: i64| chrono::DateTime::from_timestamp(1_700_000_000 + s, 0).expect("time");
        let story = |id: &str| Story {
            entry: stored("a", id, &format!("https://a.example/{id}")),
            also: vec![],
        };
        let modified = |publisher: &Publisher| {
            let rendered = publisher.get("all").expect("published");
            (
                rendered.document(Format::Atom).last_modified,
                rendered.html().last_modified,
            )
        };
        let sources = HashMap::new();
        publisher.publish(&feed, &[story("1")], &sources, &server, "1".into(), at(100));
        let first = modified(&publisher);
        assert_eq!(first.0, SystemTime::from(at(100)));
        // The same bytes keep their Last-Modified, whenever they are rendered again.
        publisher.publish(&feed, &[story("1")], &sources, &server, "1".into(), at(500));
        assert_eq!(modified(&publisher), first);
        // A render that began earlier and published later (renders overlap): new bytes are
        // still last modified after the old ones, or If-Modified-Since would answer 304.
        publisher.publish(&feed, &[story("2")], &sources, &server, "2".into(), at(40));
        let second = modified(&publisher);
        assert_eq!(second.0, SystemTime::from(at(101)));
        assert_eq!(second.1, SystemTime::from(at(101)));
        // A later render is last modified when it renders.
        publisher.publish(&feed, &[story("3")], &sources, &server, "3".into(), at(900));
        assert_eq!(modified(&publisher).0, SystemTime::from(at(900)));
    }

    /// A store-dated render at `at` (the wall clock an hour later), next fetch `next_fetch`.
    fn store_time(at: DateTime<Utc>, next_fetch: Option<DateTime<Utc>>) -> RenderTime {
        RenderTime {
            at,
            dating: Dating::Store,
            clock: at + chrono::TimeDelta::hours(1),
            next_fetch,
        }
    }

    /// What a reader compares: each feed document's ETag, Last-Modified header and bytes.
    fn validators(publisher: &Publisher) -> Vec<(String, HeaderValue, Bytes)> {
        let rendered = publisher.get("all").expect("published");
        [Format::Atom, Format::Rss, Format::Json]
            .into_iter()
            .map(|format| {
                let doc = rendered.document(format);
                (
                    doc.etag.clone(),
                    doc.headers.last_modified.clone(),
                    doc.body.clone(),
                )
            })
            .collect()
    }

    #[test]
    fn store_dated_documents_are_last_modified_at_the_store_time_whatever_was_published_before() {
        let (feed, server) = (test_feed(), test_server(None));
        let sources = HashMap::new();
        let at = |ms: i64| {
            chrono::DateTime::from_timestamp_millis(1_700_000_000_000 + ms).expect("time")
        };
        let story = |id: &str| Story {
            entry: stored("a", id, &format!("https://a.example/{id}")),
            also: vec![],
        };
        let publish = |publisher: &Publisher, id: &str, time: RenderTime| {
            publisher.publish_render(&feed, &[story(id)], &sources, &server, id.into(), time)
        };
        // A replica that has run for a while: an earlier change, then the same bytes again.
        let running = Publisher::default();
        assert!(publish(&running, "1", store_time(at(-90_000), None)));
        assert!(publish(&running, "1", store_time(at(400), None)));
        // A replica that just started renders the same store state once.
        let started = Publisher::default();
        assert!(publish(&started, "1", store_time(at(400), None)));
        let agreed = validators(&started);
        assert_eq!(validators(&running), agreed);
        // Last-Modified is the store's time in whole seconds, whatever the wall clock.
        for (_, last_modified, _) in &agreed {
            assert_eq!(last_modified, "Tue, 14 Nov 2023 22:13:20 GMT");
        }
        let doc = started.get("all").expect("published");
        assert_eq!(
            doc.document(Format::Atom).last_modified,
            SystemTime::from(at(0))
        );
        // Rendering the same time twice changes nothing.
        assert!(publish(&started, "1", store_time(at(400), None)));
        assert_eq!(validators(&started), agreed);
        // The same bytes at a later change are last modified then, on every replica alike.
        assert!(publish(&running, "1", store_time(at(60_000), None)));
        let later = validators(&running);
        for ((etag, modified, body), (old_etag, old_modified, old_body)) in
            later.iter().zip(&agreed)
        {
            assert_eq!((etag, body), (old_etag, old_body));
            assert_eq!(modified, "Tue, 14 Nov 2023 22:14:20 GMT");
            assert_ne!(modified, old_modified);
        }
        // The HTML view keeps the wall clock's rule: rendered at the time of rendering.
        assert_eq!(
            doc.html().last_modified,
            SystemTime::from(at(400) + chrono::TimeDelta::hours(1))
        );
    }

    #[test]
    fn a_store_dated_render_older_than_the_published_one_is_dropped() {
        let (feed, server) = (test_feed(), test_server(None));
        let sources = HashMap::new();
        let at = |s: i64| chrono::DateTime::from_timestamp(1_700_000_000 + s, 0).expect("time");
        let story = |id: &str| Story {
            entry: stored("a", id, &format!("https://a.example/{id}")),
            also: vec![],
        };
        let publisher = Publisher::default();
        let publish = |id: &str, time: RenderTime| {
            publisher.publish_render(&feed, &[story(id)], &sources, &server, id.into(), time)
        };
        assert!(publish("new", store_time(at(200), Some(at(900)))));
        let newer = validators(&publisher);
        // A render of an older store state that finished late: dropped, all of it.
        assert!(!publish("old", store_time(at(199), Some(at(300)))));
        assert_eq!(validators(&publisher), newer);
        let rendered = publisher.get("all").expect("published");
        assert_eq!(&rendered.html().body[..], b"new");
        assert_eq!(rendered.next_fetch(), Some(at(900)));
        // A render of the same time is not older (a reload's new bytes).
        assert!(publish("again", store_time(at(200), None)));
        assert_ne!(validators(&publisher), newer);
        assert_eq!(validators(&publisher)[0].1, newer[0].1);
    }

    #[test]
    fn the_planned_fetch_is_kept_with_the_feed_and_moves_without_a_render() {
        let (feed, server) = (test_feed(), test_server(None));
        let at = |s: i64| chrono::DateTime::from_timestamp(1_700_000_000 + s, 0).expect("time");
        let publisher = Publisher::default();
        publisher.publish_render(
            &feed,
            &[],
            &HashMap::new(),
            &server,
            String::new(),
            store_time(at(0), Some(at(600))),
        );
        let rendered = publisher.get("all").expect("published");
        assert_eq!(rendered.max_age(at(0)), 610);
        assert_eq!(rendered.max_age(at(300)), 310);
        // A 304 moved the source's next fetch: the same documents, a new max-age.
        publisher.set_next_fetch("all", Some(at(1800)));
        assert_eq!(rendered.max_age(at(300)), 1510);
        publisher.set_next_fetch("all", None);
        assert_eq!(rendered.max_age(at(300)), 300);
        // Feeds never published are left alone.
        publisher.set_next_fetch("none", Some(at(1)));
        assert!(publisher.get("none").is_none());
    }

    fn publish_one(hub: Option<&str>) -> Arc<RenderedFeed> {
        let feed = test_feed();
        let server = test_server(hub);
        let story = Story {
            entry: stored("a", "1", "https://a.example/1"),
            also: vec![stored("b", "2", "https://b.example/2")],
        };
        let publisher = Publisher::default();
        publisher.publish(
            &feed,
            &[story],
            &HashMap::new(),
            &server,
            String::new(),
            chrono::Utc::now(),
        );
        publisher.get("all").expect("published")
    }

    fn text(rendered: &RenderedFeed, format: Format) -> String {
        String::from_utf8(rendered.document(format).body.to_vec()).expect("utf-8")
    }

    #[test]
    fn documents_name_themselves_their_hub_and_the_other_carriers() {
        let rendered = publish_one(Some("https://hub.example/"));
        let atom = text(&rendered, Format::Atom);
        assert!(
            atom.contains(r#"<link href="https://news.example/planet/feeds/all.atom" rel="self""#),
            "{atom}"
        );
        assert!(
            atom.contains(r#"<link href="https://hub.example/" rel="hub"/>"#),
            "{atom}"
        );
        assert!(
            atom.contains(
                r#"<link href="https://b.example/2" rel="via" type="text/html" title="b"/>"#
            ),
            "{atom}"
        );
        let rss = text(&rendered, Format::Rss);
        assert!(
            rss.contains(r#"<atom:link href="https://hub.example/" rel="hub"/>"#),
            "{rss}"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&rendered.document(Format::Json).body).expect("json");
        assert_eq!(json["hubs"][0]["url"], "https://hub.example/");
        assert_eq!(
            json["items"][0]["_feedmill"]["also"][0]["url"],
            "https://b.example/2"
        );
        let plain = publish_one(None);
        assert!(!text(&plain, Format::Atom).contains("rel=\"hub\""));
    }

    #[test]
    fn what_the_store_holds_is_checked_again_as_it_is_written() {
        // An entry as a version before this check could store it, from a `file:` source.
        let mut hostile = stored("a", "1", "javascript://x/%0Aalert(1)//clickme");
        hostile.entry.title = "<script>alert(1)</script><img src=x onerror=alert(1)>".into();
        hostile.entry.authors = vec!["<b onmouseover=alert(1)>Ann</b>".into()];
        hostile.entry.categories = vec!["<i>tag</i>".into()];
        hostile.entry.summary = Some(
            r#"<p><a href="javascript://x/%0Aalert(1)//clickme">x</a><q cite="vbscript:x">q</q></p>"#
                .into(),
        );
        let mut other = stored("b", "2", "JAVASCRIPT:alert(2)");
        other.entry.title = "&lt;script&gt;".into();
        let story = Story {
            entry: hostile,
            also: vec![other],
        };
        let sources = HashMap::from([(
            "a".to_string(),
            SourceInfo {
                name: "a".into(),
                title: "<svg onload=alert(1)>".into(),
                url: "file:///srv/feeds/a.xml".into(),
                site_link: Some("javascript:alert(3)".into()),
            },
        )]);
        let publisher = Publisher::default();
        let feed = test_feed();
        let server = test_server(None);
        publisher.publish(
            &feed,
            &[story],
            &sources,
            &server,
            String::new(),
            chrono::Utc::now(),
        );
        let rendered = publisher.get("all").expect("published");
        for format in [Format::Atom, Format::Rss, Format::Json] {
            let body = text(&rendered, format);
            // As a reader reads the text: XML or JSON unescaped once, then as HTML.
            let read = body
                .replace("\\u003c", "<")
                .replace("\\u003e", ">")
                .replace("\\u0026", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&quot;", "\"")
                .replace("&amp;", "&");
            for bad in [
                "javascript",
                "vbscript",
                "file:",
                "<script",
                "<img",
                "<svg",
                "<b ",
                "<i>",
            ] {
                assert!(
                    !read.to_ascii_lowercase().contains(bad),
                    "{format:?} carries {bad}:\n{body}"
                );
            }
            assert!(
                read.contains("https://news.example/planet/#source-a"),
                "{format:?}: {body}"
            );
        }
    }

    fn enclosure(url: &str, mime_type: Option<&str>, length: Option<u64>) -> Enclosure {
        Enclosure {
            url: url.into(),
            mime_type: mime_type.map(str::to_string),
            length,
        }
    }

    fn publish_entries(entries: Vec<StoredEntry>) -> Arc<RenderedFeed> {
        let stories: Vec<Story> = entries
            .into_iter()
            .map(|entry| Story {
                entry,
                also: vec![],
            })
            .collect();
        let publisher = Publisher::default();
        publisher.publish(
            &test_feed(),
            &stories,
            &HashMap::new(),
            &test_server(None),
            String::new(),
            chrono::Utc::now(),
        );
        publisher.get("all").expect("published")
    }

    #[test]
    fn media_is_written_in_every_format_with_safe_urls_only() {
        let mut podcast = stored("a", "1", "https://a.example/1");
        podcast.entry.enclosures = vec![
            enclosure("javascript:alert(1)//x.mp3", Some("audio/mpeg"), Some(5)),
            enclosure("media/relative.mp3", Some("audio/mpeg"), None),
            enclosure("https://cdn.example/ep1.mp3", None, None),
            enclosure(
                "https://cdn.example/ep1.ogg",
                Some("audio/ogg; codecs=opus"),
                Some(1234),
            ),
            enclosure("https://cdn.example/notes", Some("text/plain;"), None),
        ];
        let rendered = publish_entries(vec![podcast]);
        let atom = text(&rendered, Format::Atom);
        assert!(
            atom.contains(r#"<link href="https://cdn.example/ep1.mp3" rel="enclosure"/>"#),
            "{atom}"
        );
        assert!(
            atom.contains(r#"<link href="https://cdn.example/ep1.ogg" rel="enclosure" type="audio/ogg; codecs=opus" length="1234"/>"#),
            "{atom}"
        );
        // A type with a parameter that is not one is written without it.
        assert!(
            atom.contains(
                r#"<link href="https://cdn.example/notes" rel="enclosure" type="text/plain"/>"#
            ),
            "{atom}"
        );
        let rss = text(&rendered, Format::Rss);
        // One enclosure, the first safe one, with the length and type RSS requires.
        assert_eq!(rss.matches("<enclosure").count(), 1, "{rss}");
        assert!(
            rss.contains(
                r#"<enclosure url="https://cdn.example/ep1.mp3" length="0" type="audio/mpeg"/>"#
            ),
            "{rss}"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&rendered.document(Format::Json).body).expect("json");
        assert_eq!(
            json["items"][0]["attachments"],
            serde_json::json!([
                {"url": "https://cdn.example/ep1.mp3", "mime_type": "audio/mpeg"},
                {"url": "https://cdn.example/ep1.ogg", "mime_type": "audio/ogg; codecs=opus", "size_in_bytes": 1234},
                {"url": "https://cdn.example/notes", "mime_type": "text/plain"},
            ])
        );
        for format in [Format::Atom, Format::Rss, Format::Json] {
            let body = text(&rendered, format);
            assert!(
                !body.contains("javascript") && !body.contains("relative.mp3"),
                "{format:?}: {body}"
            );
        }
        // A file whose name says nothing, with no type: the type of any file.
        let mut unknown = stored("a", "2", "https://a.example/2");
        unknown.entry.enclosures = vec![enclosure("https://cdn.example/get?id=7", None, None)];
        let rendered = publish_entries(vec![unknown]);
        assert!(text(&rendered, Format::Rss).contains(
            r#"<enclosure url="https://cdn.example/get?id=7" length="0" type="application/octet-stream"/>"#
        ));
    }

    #[test]
    fn every_atom_entry_has_content_or_an_alternate_link() {
        let mut title_only = stored("a", "1", "https://a.example/1");
        title_only.entry.link = None;
        title_only.entry.summary = None;
        let mut summary_only = stored("a", "2", "https://a.example/2");
        summary_only.entry.link = None;
        let linked = stored("a", "3", "https://a.example/3");
        let rendered = publish_entries(vec![title_only, summary_only, linked]);
        let atom = text(&rendered, Format::Atom);
        let entries: Vec<&str> = atom.split("<entry>").skip(1).collect();
        assert_eq!(entries.len(), 3, "{atom}");
        assert!(
            entries[0].contains(r#"<content type="text"></content>"#)
                && !entries[0].contains("<summary"),
            "{}",
            entries[0]
        );
        assert!(
            entries[1].contains(r#"<content type="html">&lt;p&gt;text&lt;/p&gt;</content>"#)
                && !entries[1].contains("<summary"),
            "{}",
            entries[1]
        );
        assert!(
            entries[2].contains(r#"rel="alternate""#)
                && entries[2].contains("<summary")
                && !entries[2].contains("<content"),
            "{}",
            entries[2]
        );
        // The feed names an author, entries or none (RFC 4287 §4.1.1).
        let empty = publish_entries(vec![]);
        assert!(
            text(&empty, Format::Atom).contains("<author><name>t</name></author>"),
            "{}",
            text(&empty, Format::Atom)
        );
        // RSS: a title, or a description.
        let mut nothing = stored("a", "4", "https://a.example/4");
        nothing.entry.title = String::new();
        nothing.entry.summary = None;
        let rss = text(&publish_entries(vec![nothing]), Format::Rss);
        assert!(
            rss.contains("<description><![CDATA[]]></description>"),
            "{rss}"
        );
    }

    #[test]
    fn dates_no_format_can_write_are_not_written() {
        let mut ancient = stored("a", "1", "https://a.example/1");
        let far = |year: i32| {
            chrono::NaiveDate::from_ymd_opt(year, 1, 1)
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
                .expect("a date")
        };
        ancient.entry.published = Some(far(-1000));
        ancient.entry.updated = Some(far(20_000));
        ancient.sort_time = far(-1000);
        let rendered = publish_entries(vec![ancient]);
        let atom = text(&rendered, Format::Atom);
        assert!(!atom.contains("<published>"), "{atom}");
        assert!(!atom.contains("-1000") && !atom.contains("20000"), "{atom}");
        let rss = text(&rendered, Format::Rss);
        assert!(rss.contains("<pubDate>Fri, 15 Jan 2027"), "{rss}");
    }

    #[test]
    fn links_are_written_as_uris_validators_accept() {
        assert_eq!(
            link_out("https://a.example/x").as_deref(),
            Some("https://a.example/x")
        );
        assert_eq!(
            link_out("https://a.example/a|b/[c]^{d}?q=`e`#f|g").as_deref(),
            Some("https://a.example/a%7Cb/%5Bc%5D%5E%7Bd%7D?q=%60e%60#f%7Cg")
        );
        assert_eq!(
            link_out("https://bücher.example/straße").as_deref(),
            Some("https://xn--bcher-kva.example/stra%C3%9Fe")
        );
        assert_eq!(
            link_out("https://[::1]:8080/a|b").as_deref(),
            Some("https://[::1]:8080/a%7Cb")
        );
        assert_eq!(link_out("javascript:alert(1)"), None);
        assert_eq!(mime_out("Audio/MPEG"), Some("Audio/MPEG"));
        assert_eq!(mime_out("audio/mpeg; q"), Some("audio/mpeg"));
        assert_eq!(
            mime_out(r#"text/plain; charset="utf-8""#),
            Some(r#"text/plain; charset="utf-8""#)
        );
        assert_eq!(mime_out("audio"), None);
        assert_eq!(mime_out("<b>/x"), None);
        assert_eq!(
            guessed_type("https://x.example/a/Episode.MP3?dl=1"),
            Some("audio/mpeg")
        );
        assert_eq!(guessed_type("https://x.example/a.b/file"), None);
    }

    #[test]
    fn the_same_entries_render_the_same_bytes() {
        let (a, b) = (publish_one(None), publish_one(None));
        for format in [Format::Atom, Format::Rss, Format::Json] {
            assert_eq!(
                a.document(format).etag,
                b.document(format).etag,
                "{format:?}"
            );
        }
    }
}
