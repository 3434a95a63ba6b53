//! Publishing: output feeds rendered as Atom 1.0, RSS 2.0 and JSON Feed 1.1.
//!
//! A document is rendered once per change of its entries and kept as bytes (plain and gzip)
//! with a strong ETag, so serving it is a lookup and a copy of an `Arc`. Rendering is
//! deterministic: the same entries give the same bytes and ETag, across restarts too, and the
//! `Last-Modified` of a document moves only when its bytes do.

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
                let href = other.entry.link.as_deref()?;
                Some(atom::Link {
                    title: Some(source_of(other, sources).title.clone()),
                    ..link(href, "via", Some("text/html"))
                })
            });
            let mut source_links = vec![];
            if let Some(site) = &source.site_link {
                source_links.push(link(site, "alternate", Some("text/html")));
            }
            if !source.url.is_empty() {
                source_links.push(link(&source.url, "self", None));
            }
            let authors = if e.authors.is_empty() {
                vec![source.title.clone()]
            } else {
                e.authors.clone()
            };
            atom::Entry {
                id: stored.key().urn(),
                title: atom::Text::plain(e.title.clone()),
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
                    .iter()
                    .map(|l| link(l, "alternate", Some("text/html")))
                    .chain(via)
                    .collect(),
                summary: e.summary.as_ref().map(|s| atom::Text::html(s.clone())),
                content: e.content.as_ref().map(|c| atom::Content {
                    value: Some(c.clone()),
                    content_type: Some("html".to_string()),
                    ..atom::Content::default()
                }),
                categories: e
                    .categories
                    .iter()
                    .map(|term| atom::Category {
                        term: term.clone(),
                        ..atom::Category::default()
                    })
                    .collect(),
                source: Some(atom::Source {
                    id: if source.url.is_empty() {
                        format!("{base_url}#source-{}", source.name)
                    } else {
                        source.url.clone()
                    },
                    title: atom::Text::plain(source.title.clone()),
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
        title: atom::Text::plain(feed.title.clone()),
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
                title: Some(e.title.clone()).filter(|t| !t.is_empty()),
                link: e.link.clone(),
                description: e
                    .html()
                    .map(str::to_string)
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
                        name: name.clone(),
                        domain: None,
                    })
                    .collect(),
                source: Some(rss::Source {
                    url: source.url.clone(),
                    title: Some(source.title.clone()),
                }),
                ..rss::Item::default()
            }
        })
        .collect();
    let channel = rss::Channel {
        title: feed.title.clone(),
        link: base_url.to_string(),
        description: format!("{}: aggregated by feedmill", feed.title),
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
    title: &'a str,
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
    url: Option<&'a str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    title: &'a str,
    content_html: &'a str,
    date_published: String,
    date_modified: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    authors: Vec<JsonAuthor<'a>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    tags: &'a [String],
    /// JSON Feed extensions start with an underscore.
    _feedmill: JsonExtension<'a>,
}

#[derive(Serialize)]
struct JsonAuthor<'a> {
    name: &'a str,
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
    title: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    url: Option<&'a str>,
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
                url: e.link.as_deref(),
                title: &e.title,
                content_html: e.html().unwrap_or_default(),
                date_published: stored.sort_time.to_rfc3339(),
                date_modified: entry_updated(stored).to_rfc3339(),
                authors: e.authors.iter().map(|name| JsonAuthor { name }).collect(),
                tags: &e.categories,
                _feedmill: JsonExtension {
                    about: "https://example.org/feedmill#json-extension",
                    source: JsonSource {
                        name: source.name,
                        title: source.title,
                        feed_url: source.url,
                        home_page_url: source.site_link,
                    },
                    also: story
                        .also
                        .iter()
                        .map(|other| JsonAlso {
                            source: source_of(other, sources).title.clone(),
                            title: &other.entry.title,
                            url: other.entry.link.as_deref(),
                        })
                        .collect(),
                },
            }
        })
        .collect();
    let document = JsonFeed {
        version: "https://jsonfeed.org/version/1.1",
        title: &feed.title,
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
            },
            first_seen: now,
            sort_time: now,
            same_link_as: None,
            same_text_as: None,
        }
    }

    fn publish_one(hub: Option<&str>) -> Arc<RenderedFeed> {
        let feed = FeedConfig {
            name: "all".into(),
            title: "All".into(),
            sources: vec!["a".into(), "b".into()],
            include: vec![],
            exclude: vec![],
            limit: 10,
            max_per_source: 10,
            dedup: Dedup::Content,
        };
        let server = ServerConfig {
            listen: "127.0.0.1:8080".parse().expect("address"),
            base_url: Url::parse("https://news.example/planet/").expect("url"),
            header_timeout: std::time::Duration::from_secs(10),
            write_timeout: std::time::Duration::from_secs(30),
            max_connections: 1024,
            max_connections_per_ip: 64,
            title: "t".into(),
            lang: "en".into(),
            hub: hub.map(|h| Url::parse(h).expect("url")),
        };
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
