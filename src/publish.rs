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
use crate::parse::hex;
use crate::sanitize;
use crate::select::Story;
use crate::store::StoredEntry;

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
    pub fn from_extension(ext: &str) -> Option<Format> {
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
    pub gzip: Bytes,
    /// A strong ETag of `body`, quoted.
    pub etag: String,
    /// When the bytes last changed.
    pub last_modified: SystemTime,
    /// The response headers made once, not per request: `ETag` of the plain body, of the
    /// gzip body (`-gz` suffix), and `Last-Modified`.
    pub headers: DocumentHeaders,
}

/// Ready-made validator headers of a [`Document`].
#[derive(Debug, Clone)]
pub struct DocumentHeaders {
    /// `ETag` of the plain body.
    pub etag: HeaderValue,
    /// `ETag` of the gzip body.
    pub etag_gzip: HeaderValue,
    /// `Last-Modified`.
    pub last_modified: HeaderValue,
}

impl Document {
    /// A document of `body` (and its gzip) with `etag`, last changed at `last_modified`.
    pub fn new(body: Bytes, gzip: Bytes, etag: String, last_modified: SystemTime) -> Document {
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
#[derive(Debug, Clone)]
pub struct RenderedFeed {
    atom: Document,
    rss: Document,
    json: Document,
    html: Document,
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
}

/// `body` as a document, keeping `previous` (and its Last-Modified) when the bytes are the
/// same.
fn document(previous: Option<&Document>, body: Vec<u8>, now: SystemTime) -> Document {
    let etag = format!("\"{}\"", hex(&Sha256::digest(&body)[..16]));
    match previous {
        Some(old) if old.etag == etag => old.clone(),
        _ => {
            let compressed = gzip(&body);
            Document::new(Bytes::from(body), compressed, etag, now)
        }
    }
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
pub fn feed_url(base_url: &Url, feed: &str, format: Format) -> String {
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

    /// Renders `feed` from its stories and publishes it, with `html` as its HTML view. A
    /// document whose bytes did not change keeps its ETag and Last-Modified.
    pub fn publish(
        &self,
        feed: &FeedConfig,
        stories: &[Story],
        sources: &HashMap<String, SourceInfo>,
        server: &ServerConfig,
        html: String,
    ) {
        let previous = self.get(&feed.name);
        let now = SystemTime::now();
        let keep_or_new = |format: Format, body: Vec<u8>| {
            document(previous.as_ref().map(|p| p.document(format)), body, now)
        };
        let rendered = RenderedFeed {
            atom: keep_or_new(Format::Atom, render_atom(feed, stories, sources, server)),
            rss: keep_or_new(Format::Rss, render_rss(feed, stories, sources, server)),
            json: keep_or_new(Format::Json, render_json(feed, stories, sources, server)),
            html: document(previous.as_ref().map(|p| p.html()), html.into_bytes(), now),
        };
        self.feeds
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(feed.name.clone(), Arc::new(rendered));
    }

    /// The home page.
    pub fn home(&self) -> Option<Arc<Document>> {
        self.home.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Publishes the home page.
    pub fn publish_home(&self, html: String) {
        let previous = self.home();
        let page = document(previous.as_deref(), html.into_bytes(), SystemTime::now());
        *self.home.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(page));
    }

    /// Drops the documents of feeds that are no longer configured.
    pub fn retain(&self, names: &[&str]) {
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
fn document_updated(stories: &[Story]) -> DateTime<Utc> {
    stories
        .iter()
        .map(|s| entry_updated(&s.entry))
        .max()
        .unwrap_or_default()
}

fn entry_updated(stored: &StoredEntry) -> DateTime<Utc> {
    stored
        .entry
        .updated
        .filter(|u| *u <= Utc::now())
        .unwrap_or(stored.sort_time)
        .max(stored.sort_time)
}

fn fixed(time: DateTime<Utc>) -> DateTime<FixedOffset> {
    time.fixed_offset()
}

// Every URL and text a document carries is checked again as it is written, whatever the
// store holds (entries stored by an older version, a source's `file:` URL): no URL that is
// not http(s), no text that a reader rendering it as HTML takes for a tag. For what the
// parser stored, each check is a scan that changes nothing.

/// `link` if it is an absolute http(s) URL.
fn link_out(link: &str) -> Option<Cow<'_, str>> {
    sanitize::republishable_link(link)
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

fn render_atom(
    feed: &FeedConfig,
    stories: &[Story],
    sources: &HashMap<String, SourceInfo>,
    server: &ServerConfig,
) -> Vec<u8> {
    let base_url = &server.base_url;
    use atom_syndication as atom;
    let self_url = feed_url(base_url, &feed.name, Format::Atom);
    let link = |href: &str, rel: &str, mime: Option<&str>| atom::Link {
        href: href.to_string(),
        rel: rel.to_string(),
        mime_type: mime.map(str::to_string),
        ..atom::Link::default()
    };
    let atom_entries = stories
        .iter()
        .map(|story| {
            let stored = &story.entry;
            let e = &stored.entry;
            let source = source_of(stored, sources);
            // The other carriers of the story, as `via` links (RFC 4287: a source of the
            // information), titled with their source.
            let via = story.also.iter().filter_map(|other| {
                let href = link_out(other.entry.link.as_deref()?)?.into_owned();
                Some(atom::Link {
                    title: Some(text_out(&source_of(other, sources).title).into_owned()),
                    ..link(&href, "via", Some("text/html"))
                })
            });
            let mut source_links = vec![];
            if let Some(site) = source
                .site_link
                .as_deref()
                .and_then(link_out)
                .map(Cow::into_owned)
            {
                source_links.push(link(&site, "alternate", Some("text/html")));
            }
            let own_url = link_out(&source.url).map(Cow::into_owned);
            if let Some(url) = &own_url {
                source_links.push(link(url, "self", None));
            }
            let authors = if e.authors.is_empty() {
                vec![text_out(&source.title).into_owned()]
            } else {
                e.authors
                    .iter()
                    .map(|name| text_out(name).into_owned())
                    .collect()
            };
            atom::Entry {
                id: stored.key().urn(),
                title: atom::Text::plain(text_out(&e.title).into_owned()),
                updated: fixed(entry_updated(stored)),
                published: e.published.map(fixed),
                authors: authors
                    .into_iter()
                    .map(|name| atom::Person {
                        name,
                        ..atom::Person::default()
                    })
                    .collect(),
                links: e
                    .link
                    .as_deref()
                    .and_then(link_out)
                    .map(Cow::into_owned)
                    .iter()
                    .map(|l| link(l, "alternate", Some("text/html")))
                    .chain(via)
                    .collect(),
                summary: e
                    .summary
                    .as_deref()
                    .map(|s| atom::Text::html(html_out(s).into_owned())),
                content: e.content.as_deref().map(|c| atom::Content {
                    value: Some(html_out(c).into_owned()),
                    content_type: Some("html".to_string()),
                    ..atom::Content::default()
                }),
                categories: e
                    .categories
                    .iter()
                    .map(|term| atom::Category {
                        term: text_out(term).into_owned(),
                        ..atom::Category::default()
                    })
                    .collect(),
                source: Some(atom::Source {
                    id: own_url.unwrap_or_else(|| source_url(&source, base_url)),
                    title: atom::Text::plain(text_out(&source.title).into_owned()),
                    links: source_links,
                    updated: fixed(stored.sort_time),
                    ..atom::Source::default()
                }),
                ..atom::Entry::default()
            }
        })
        .collect();
    let document = atom::Feed {
        id: self_url.clone(),
        title: atom::Text::plain(text_out(&feed.title).into_owned()),
        updated: fixed(document_updated(stories)),
        links: [
            link(&self_url, "self", Some("application/atom+xml")),
            link(base_url.as_str(), "alternate", Some("text/html")),
        ]
        .into_iter()
        .chain(server.hub.iter().map(|hub| link(hub.as_str(), "hub", None)))
        .collect(),
        generator: Some(atom::Generator {
            value: "feedmill".to_string(),
            uri: None,
            version: Some(env!("CARGO_PKG_VERSION").to_string()),
        }),
        entries: atom_entries,
        ..atom::Feed::default()
    };
    document.to_string().into_bytes()
}

fn render_rss(
    feed: &FeedConfig,
    stories: &[Story],
    sources: &HashMap<String, SourceInfo>,
    server: &ServerConfig,
) -> Vec<u8> {
    let base_url = &server.base_url;
    let self_url = feed_url(base_url, &feed.name, Format::Rss);
    let items = stories
        .iter()
        .map(|story| {
            let stored = &story.entry;
            let e = &stored.entry;
            let source = source_of(stored, sources);
            rss::Item {
                title: Some(text_out(&e.title).into_owned()).filter(|t| !t.is_empty()),
                link: e.link.as_deref().and_then(link_out).map(Cow::into_owned),
                description: e
                    .html()
                    .map(|html| html_out(html).into_owned())
                    .or_else(|| Some(String::new()).filter(|_| e.title.is_empty())),
                guid: Some(rss::Guid {
                    value: stored.key().urn(),
                    permalink: false,
                }),
                pub_date: Some(stored.sort_time.to_rfc2822()),
                categories: e
                    .categories
                    .iter()
                    .map(|name| rss::Category {
                        name: text_out(name).into_owned(),
                        domain: None,
                    })
                    .collect(),
                source: Some(rss::Source {
                    url: source_url(&source, base_url),
                    title: Some(text_out(&source.title).into_owned()),
                }),
                ..rss::Item::default()
            }
        })
        .collect();
    let channel = rss::Channel {
        title: text_out(&feed.title).into_owned(),
        link: base_url.to_string(),
        description: format!(
            "{}: aggregated by feedmill",
            text_out(&feed.title).into_owned()
        ),
        generator: Some(format!("feedmill {}", env!("CARGO_PKG_VERSION"))),
        last_build_date: Some(document_updated(stories).to_rfc2822()),
        atom_ext: Some(rss::extension::atom::AtomExtension {
            links: std::iter::once(rss::extension::atom::Link {
                href: self_url,
                rel: "self".to_string(),
                mime_type: Some("application/rss+xml".to_string()),
                ..rss::extension::atom::Link::default()
            })
            .chain(server.hub.iter().map(|hub| rss::extension::atom::Link {
                href: hub.to_string(),
                rel: "hub".to_string(),
                ..rss::extension::atom::Link::default()
            }))
            .collect(),
        }),
        items,
        ..rss::Channel::default()
    };
    channel.to_string().into_bytes()
}

#[derive(Serialize)]
struct JsonFeed<'a> {
    version: &'static str,
    title: Cow<'a, str>,
    home_page_url: &'a str,
    feed_url: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    hubs: Vec<JsonHub<'a>>,
    items: Vec<JsonItem<'a>>,
}

#[derive(Serialize)]
struct JsonHub<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    url: &'a str,
}

#[derive(Serialize)]
struct JsonItem<'a> {
    id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "str::is_empty")]
    title: Cow<'a, str>,
    content_html: Cow<'a, str>,
    date_published: String,
    date_modified: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<JsonAuthor<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tags: Vec<Cow<'a, str>>,
    /// JSON Feed extensions start with an underscore.
    _feedmill: JsonExtension<'a>,
}

#[derive(Serialize)]
struct JsonAuthor<'a> {
    name: Cow<'a, str>,
}

#[derive(Serialize)]
struct JsonExtension<'a> {
    about: &'static str,
    source: JsonSource,
    /// The other carriers of the story.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    also: Vec<JsonAlso<'a>>,
}

#[derive(Serialize)]
struct JsonAlso<'a> {
    source: String,
    title: Cow<'a, str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct JsonSource {
    name: String,
    title: String,
    feed_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    home_page_url: Option<String>,
}

fn render_json(
    feed: &FeedConfig,
    stories: &[Story],
    sources: &HashMap<String, SourceInfo>,
    server: &ServerConfig,
) -> Vec<u8> {
    let base_url = &server.base_url;
    let items = stories
        .iter()
        .map(|story| {
            let stored = &story.entry;
            let e = &stored.entry;
            let source = source_of(stored, sources).into_owned();
            JsonItem {
                id: stored.key().urn(),
                url: e.link.as_deref().and_then(link_out),
                title: text_out(&e.title),
                content_html: html_out(e.html().unwrap_or_default()),
                date_published: stored.sort_time.to_rfc3339(),
                date_modified: entry_updated(stored).to_rfc3339(),
                authors: e
                    .authors
                    .iter()
                    .map(|name| JsonAuthor {
                        name: text_out(name),
                    })
                    .collect(),
                tags: e.categories.iter().map(|tag| text_out(tag)).collect(),
                _feedmill: JsonExtension {
                    about: "https://example.org/feedmill#json-extension",
                    source: JsonSource {
                        feed_url: source_url(&source, base_url),
                        name: source.name,
                        title: text_out(&source.title).into_owned(),
                        home_page_url: source
                            .site_link
                            .as_deref()
                            .and_then(link_out)
                            .map(Cow::into_owned),
                    },
                    also: story
                        .also
                        .iter()
                        .map(|other| JsonAlso {
                            source: text_out(&source_of(other, sources).title).into_owned(),
                            title: text_out(&other.entry.title),
                            url: other.entry.link.as_deref().and_then(link_out),
                        })
                        .collect(),
                },
            }
        })
        .collect();
    let document = JsonFeed {
        version: "https://jsonfeed.org/version/1.1",
        title: text_out(&feed.title),
        home_page_url: base_url.as_str(),
        feed_url: feed_url(base_url, &feed.name, Format::Json),
        hubs: server
            .hub
            .iter()
            .map(|hub| JsonHub {
                kind: "WebSub",
                url: hub.as_str(),
            })
            .collect(),
        items,
    };
    escape_json_html(&serde_json::to_vec_pretty(&document).unwrap_or_default())
}

/// Writes `<`, `>` and `&` in JSON strings as `\u003c`, `\u003e` and `\u0026` (as Go's
/// encoder does): the same JSON to any parser, but a feed title like `<script>` can no longer
/// break out of a page that embeds the document. Outside strings JSON has no such bytes.
fn escape_json_html(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + json.len() / 16);
    for &byte in json {
        match byte {
            b'<' => out.extend_from_slice(b"\\u003c"),
            b'>' => out.extend_from_slice(b"\\u003e"),
            b'&' => out.extend_from_slice(b"\\u0026"),
            _ => out.push(byte),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dedup;
    use crate::parse::Entry;

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

    fn publish_one(hub: Option<&str>) -> Arc<RenderedFeed> {
        let feed = test_feed();
        let server = test_server(hub);
        let story = Story {
            entry: stored("a", "1", "https://a.example/1"),
            also: vec![stored("b", "2", "https://b.example/2")],
        };
        let publisher = Publisher::default();
        publisher.publish(&feed, &[story], &HashMap::new(), &server, String::new());
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
        publisher.publish(&feed, &[story], &sources, &server, String::new());
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
