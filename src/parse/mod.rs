//! Parsing: raw feed bytes (RSS 0.9x/1.0/2.0, Atom, JSON Feed) into our own [`Entry`] type.
//!
//! This is where untrusted text becomes something we republish, so everything leaves here
//! clean: titles are plain text, HTML is passed through an allow-list sanitizer with its
//! relative links made absolute, links that are not http(s) are dropped, and every entry has a
//! stable identity.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use url::Url;

use crate::model::{hex, Enclosure, Entry, RefreshFailure};
use crate::sanitize;

pub(crate) mod dates;
pub(crate) mod discover;
pub(crate) mod encoding;
mod json;
mod xml;

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
pub(crate) const MAX_ENTRIES: usize = 5000;

/// Why a body is not a feed we can read. Its message is that of its [`RefreshFailure`]
/// (one wording for both).
#[derive(Debug)]
pub enum ParseError {
    /// Nothing came back.
    Empty,
    /// An HTML page came back; `links` are the feeds it points to, if any.
    HtmlPage {
        /// The page's feed links, best first.
        links: Vec<Url>,
    },
    /// The XML is malformed or cut off.
    Xml {
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The document is not RSS, Atom or JSON Feed.
    NotAFeed(String),
}

impl ParseError {
    /// The error as a refresh's failure: the same facts, and the message users read.
    pub(crate) fn failure(&self) -> RefreshFailure {
        match self {
            ParseError::Empty => RefreshFailure::Empty,
            ParseError::HtmlPage { links } => RefreshFailure::HtmlPage {
                link: links.first().map(Url::to_string),
            },
            ParseError::Xml {
                line,
                column,
                message,
            } => RefreshFailure::Xml {
                line: *line,
                column: *column,
                message: message.clone(),
            },
            ParseError::NotAFeed(message) => RefreshFailure::NotAFeed {
                message: message.clone(),
            },
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.failure().fmt(f)
    }
}

impl std::error::Error for ParseError {}

/// The facts of a parse error, for a refresh's outcome and metrics.
impl From<ParseError> for RefreshFailure {
    fn from(err: ParseError) -> RefreshFailure {
        err.failure()
    }
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
    tracing::debug!(%url, encoding = decoded.encoding.name(), decided_by = ?decoded.source, "decoded");
    let utf8 = decoded.utf8.as_ref();
    if discover::looks_like_html(utf8, content_type) {
        let html = String::from_utf8_lossy(utf8);
        return Err(ParseError::HtmlPage {
            links: discover::feed_links(&html, url),
        });
    }
    match utf8.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'<') => read_xml(utf8, url),
        Some(b'{' | b'[') => {
            let (head, entries) = json::read(utf8, url)?;
            Ok(finish(head, entries.into_iter(), &[], url))
        }
        _ => Err(ParseError::NotAFeed(
            "the body is neither XML nor JSON (expected RSS, Atom or JSON Feed)".into(),
        )),
    }
}

/// Reads an XML document with our own reader (see [`xml`]); a document that yields no
/// entries says why.
fn read_xml(utf8: &[u8], url: &Url) -> Result<ParsedFeed, ParseError> {
    let document = xml::read(utf8, url)?;
    if document.entries.is_empty() {
        if document.foreign_items > 0 {
            return Err(ParseError::NotAFeed(format!(
                "the document has {} <item> or <entry> elements, but none in the RSS or Atom \
                 namespace (root element <{}>)",
                document.foreign_items, document.root
            )));
        }
        if !document.feed_root {
            return Err(ParseError::NotAFeed(format!(
                "the root element is <{}>, not <rss>, <rdf:RDF> or <feed>, and it holds no \
                 <item> or <entry>",
                document.root
            )));
        }
    }
    Ok(finish(
        document.head,
        document.entries.into_iter(),
        &document.entry_bases,
        url,
    ))
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

/// An entry as a reader read it (the XML reader or the JSON one), before
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

/// The parsed feed from what a parser read: entries normalized (each against the xml:base
/// in effect where it is, else the feed's URL), at most [`MAX_ENTRIES`], unique by identity.
fn finish(
    head: FeedHead,
    entries: impl Iterator<Item = RawEntry>,
    entry_bases: &[std::rc::Rc<Url>],
    url: &Url,
) -> ParsedFeed {
    let mut seen = HashSet::new();
    let entries = entries
        .take(MAX_ENTRIES)
        .enumerate()
        .map(|(i, entry)| normalize_entry(entry, entry_bases.get(i).map_or(url, AsRef::as_ref)))
        .filter(|entry| seen.insert(entry.identity.clone()))
        .collect();
    ParsedFeed {
        title: head.title.map(|t| plain_text(&t)).filter(|t| !t.is_empty()),
        site_link: head.site_link.as_deref().and_then(http_url),
        ttl: head
            .ttl_minutes
            .map(|minutes| Duration::from_secs(u64::from(minutes) * 60)),
        entries,
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

/// Normalizes one entry; `entry_base` is the xml:base in effect at the entry (else the
/// feed's URL).
fn normalize_entry(entry: RawEntry, entry_base: &Url) -> Entry {
    let title = entry.title.as_ref().map(plain_text).unwrap_or_default();
    let link = entry.link.as_deref().and_then(http_url);
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
pub(crate) fn identity_of(id: &str, link: Option<&str>, title: &str, text: Option<&str>) -> String {
    let id = id.trim();
    if !id.is_empty() {
        return id.to_string();
    }
    if let Some(link) = link {
        return link.to_string();
    }
    let mut hasher = Sha256::new();
    // Without its white space: a template that indents the text anew (between tags too)
    // has not changed it. (Issue 15 changed what the readers take for an entry's text, and
    // with it these hashes, once.)
    for word in title.split_whitespace() {
        hasher.update(word.as_bytes());
    }
    hasher.update([0]);
    for word in text.unwrap_or_default().split_whitespace() {
        hasher.update(word.as_bytes());
    }
    format!("sha256:{}", hex(&hasher.finalize()[..16]))
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
    fn an_author_with_an_address_and_wide_characters_is_read() {
        // feed-rs sliced "desk@news.example（" inside the full-width parenthesis and panicked.
        let xml = r#"<rss version="2.0"><channel><title>日报</title>
            <item><guid>1</guid><title>头条</title><author>desk@news.example（编辑部）</author></item>
            </channel></rss>"#;
        let feed = parse(xml);
        assert_eq!(feed.title.as_deref(), Some("日报"));
        assert_eq!(feed.entries.len(), 1);
        assert_eq!(feed.entries[0].title, "头条");
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
