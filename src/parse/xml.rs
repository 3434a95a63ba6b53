//! One liberal reader for every XML feed dialect: RSS 0.90 to 2.0 whatever its `version`
//! (or none), RSS in the Userland namespace, RSS 1.0/RDF, Atom 0.3 and 1.0, and the
//! elements of one dialect written inside another (`atom:content` in an RSS item).
//!
//! It reads a document as Python's feedparser does, because feedparser is what Planet,
//! rawdog and most readers rest on, and what a feed's author tested against:
//! - The RSS and Atom vocabularies are one: `<item>` and `<entry>` both start an entry,
//!   `<description>`, `<summary>` and `<itunes:summary>` are its summary (a second one, with
//!   no content yet, is its content), `<content>`, `<content:encoded>`, `<fullitem>` and
//!   `<xhtml:body>` its content, `<pubDate>`, `<published>`, `<issued>` and `dcterms:issued`
//!   its published date, and so on.
//! - A text element's `type` (or Atom 0.3's `mode`) says how to read it; base64 is decoded
//!   (RFC 4287 §4.1.3.3); a type we do not know is read as text, and a text we cannot read
//!   (bad base64, binary) loses that field only.
//! - Markup written unescaped inside a text element is kept as markup.
//! - The story link is the last alternate HTML link (`<link>` text, or `rel="alternate"`,
//!   or no rel), else a permalink `<guid>` (or Atom `<id>`) that is an http(s) URL.
//! - References to HTML's named entities (`&eacute;`, common in RSS 0.91) are read as the
//!   characters they name; no entity declared in the document is ever expanded.
//! - Every text is repaired as feedparser repairs it ([`encoding::repair_text`]): UTF-8
//!   decoded twice is read once, and C1 control characters (U+0080..U+009F), which only
//!   mislabelled Windows-1252 text contains, are the Windows-1252 characters they stand for.
//!
//! One pass with quick-xml, which also reports malformed and truncated documents with
//! their line and column, and stops after [`MAX_ENTRIES`] entries.
//!
//! A document costs what its size does, whatever it holds: elements are followed
//! [`MAX_DEPTH`] deep, an xml:base of at most [`MAX_BASE_LEN`] bytes (shared by everything
//! under it, not copied), at most [`MAX_PER_ENTRY`] authors, categories and media files of
//! an entry and only its first content; in the XHTML written back from a text element, only
//! names that are names (an attribute name may hold quotes and `>` for quick-xml).

use std::borrow::Cow;
use std::rc::Rc;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::name::ResolveResult;
use url::Url;

use super::{dates, encoding};
use super::{line_col, FeedHead, ParseError, RawEnclosure, RawEntry, RawText, MAX_ENTRIES};

/// What one XML document holds.
pub(super) struct Document {
    pub(super) head: FeedHead,
    pub(super) entries: Vec<RawEntry>,
    /// The xml:base in effect at each entry's text (its content, else its summary, else the
    /// entry), in the order of `entries`. Shared: a thousand entries under one long base
    /// hold one copy of it.
    pub(super) entry_bases: Vec<Rc<Url>>,
    /// The root element's name as written.
    pub(super) root: String,
    /// Whether the root is one a feed has (`rss`, `rdf:RDF`, `feed`, `channel`).
    pub(super) feed_root: bool,
    /// Elements named `item` or `entry` in some other vocabulary (not read as entries).
    pub(super) foreign_items: usize,
}

/// The vocabularies an element may belong to, by namespace (else by the prefix written).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Vocabulary {
    /// RSS (every version and namespace) and Atom (0.3 and 1.0): one vocabulary.
    Core,
    DublinCore,
    DcTerms,
    Content,
    Itunes,
    Media,
    Xhtml,
    Other,
}

impl Vocabulary {
    fn of_namespace(uri: &str) -> Option<Vocabulary> {
        let uri = uri.trim();
        let lower = uri.to_ascii_lowercase();
        Some(match lower.as_str() {
            "http://purl.org/rss/1.0/"
            | "http://my.netscape.com/rdf/simple/0.9/"
            | "http://blogs.law.harvard.edu/tech/rss"
            | "http://purl.org/atom/ns#"
            | "http://www.w3.org/2005/atom"
            | "http://purl.org/rss/1.0/modules/rss091#"
            | "http://purl.org/echo/"
            | "http://purl.org/pie/"
            | "http://example.com/newformat#"
            | "http://example.com/necho"
            | "uri/of/echo/namespace#" => Vocabulary::Core,
            _ if lower.contains("backend.userland.com/rss") => Vocabulary::Core,
            "http://purl.org/dc/elements/1.1/" => Vocabulary::DublinCore,
            "http://purl.org/dc/terms/" => Vocabulary::DcTerms,
            "http://purl.org/rss/1.0/modules/content/" => Vocabulary::Content,
            "http://www.itunes.com/dtds/podcast-1.0.dtd"
            | "http://example.com/dtds/podcast-1.0.dtd" => Vocabulary::Itunes,
            "http://search.yahoo.com/mrss" | "http://search.yahoo.com/mrss/" => Vocabulary::Media,
            "http://www.w3.org/1999/xhtml" => Vocabulary::Xhtml,
            _ => return None,
        })
    }

    /// An unknown or undeclared namespace is known by the prefix written, as feedparser does.
    fn of_prefix(prefix: Option<&str>) -> Vocabulary {
        match prefix.map(str::to_ascii_lowercase).as_deref() {
            None | Some("") | Some("atom") | Some("rss") => Vocabulary::Core,
            Some("dc") => Vocabulary::DublinCore,
            Some("dcterms") => Vocabulary::DcTerms,
            Some("content") => Vocabulary::Content,
            Some("itunes") => Vocabulary::Itunes,
            Some("media") => Vocabulary::Media,
            Some("xhtml") => Vocabulary::Xhtml,
            Some(_) => Vocabulary::Other,
        }
    }
}

/// The text fields read from text elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    FeedTitle,
    FeedLink,
    Ttl,
    Title,
    /// A summary element (`description` reads as HTML by default, the others as text).
    Summary,
    Content,
    /// A `<link>` whose URL is its text.
    Link,
    /// A `<guid>` (permalink unless `isPermaLink` says otherwise) or Atom `<id>`.
    Id {
        permalink: bool,
    },
    Published,
    Updated,
    Created,
    /// An Atom author's `<name>`.
    AuthorName,
    Category,
}

impl Field {
    /// Whether the field is a text construct: typed, possibly markup.
    fn is_construct(self) -> bool {
        matches!(
            self,
            Field::FeedTitle | Field::Title | Field::Summary | Field::Content
        )
    }
}

/// How a text construct is to be read.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TextType {
    /// The MIME type, feedparser's way (`text` is `text/plain`, `html` `text/html`,
    /// `xhtml` `application/xhtml+xml`), lower case.
    mime: String,
    base64: bool,
}

impl TextType {
    fn new(given: Option<&str>, default: &str, mode: Option<&str>) -> TextType {
        let mime = match given.map(|t| t.trim().to_ascii_lowercase()) {
            Some(t) if t == "text" || t == "plain" => "text/plain".to_string(),
            Some(t) if t == "html" => "text/html".to_string(),
            Some(t) if t == "xhtml" => "application/xhtml+xml".to_string(),
            Some(t) => t,
            None => default.to_string(),
        };
        let base64 = mode.is_some_and(|m| m.trim().eq_ignore_ascii_case("base64"))
            || !(mime.starts_with("text/") || mime.ends_with("+xml") || mime.ends_with("/xml"));
        TextType { mime, base64 }
    }

    fn is_xhtml(&self) -> bool {
        self.mime == "application/xhtml+xml"
    }

    fn is_html(&self) -> bool {
        self.mime == "text/html" || self.is_xhtml()
    }
}

/// A text element being read.
struct Collecting {
    field: Field,
    /// The depth of the element (the number of elements open around it).
    depth: usize,
    text: String,
    kind: TextType,
    /// The xml:base in effect at the element.
    base: usize,
    /// Elements open inside it (their markup is kept for a text construct).
    inner: Vec<String>,
    /// Whether the element holds XML data whose text is not read.
    data_only: bool,
    /// The parts of a multipart text seen so far.
    parts: usize,
}

/// An entry being read.
#[derive(Default)]
struct EntryDraft {
    id: Option<String>,
    id_is_link: bool,
    title: Option<(RawText, usize)>,
    link: Option<String>,
    /// The base in effect at the entry.
    base: Option<Rc<Url>>,
    /// The summary, its depth, and the base in effect at it.
    summary: Option<(RawText, usize, Rc<Url>)>,
    /// The first content, with the base in effect at it (feedparser's `content[0]`).
    content: Option<(RawText, Rc<Url>)>,
    has_content: bool,
    published: Option<Option<DateTime<Utc>>>,
    updated: Option<Option<DateTime<Utc>>>,
    created: Option<Option<DateTime<Utc>>>,
    authors: Vec<String>,
    /// The author element open, if any.
    author: Option<AuthorDraft>,
    categories: Vec<String>,
    enclosures: Vec<RawEnclosure>,
}

/// An author element being read: RSS writes `email (Name)` as its text, Atom a `<name>`.
struct AuthorDraft {
    depth: usize,
    own: String,
    name: Option<String>,
}

/// How many open elements an end tag may close at once (see `end_named`).
const END_TAG_REACH: usize = 64;

/// Where the `;` that ends a reference is, looked for in the next 32 bytes only: no name is
/// longer, and a text of a million `&` must not be scanned a million times.
fn semicolon_within(rest: &str) -> Option<usize> {
    rest.as_bytes().iter().take(33).position(|b| *b == b';')
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncate(text: &str, max: usize) -> &str {
    let mut end = max.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// The most open elements followed; deeper ones are read as text of their ancestors.
const MAX_DEPTH: usize = 512;

/// The longest xml:base followed, in bytes; a longer one is passed over as one that is not
/// http(s) is. Real bases are a site's address; a document of relative bases nested a
/// thousand deep, each longer than its parent's, must not cost the square of its size.
const MAX_BASE_LEN: usize = 2048;

/// The most authors, categories and media files read of one entry (no entry has as many),
/// and the longest author text read (an RSS `<author>`'s own text, around its children).
pub(super) const MAX_PER_ENTRY: usize = 256;
const MAX_AUTHOR_TEXT: usize = 4096;

/// Reads `document` (already decoded to UTF-8), fetched from `url`.
pub(super) fn read(document: &[u8], url: &Url) -> Result<Document, ParseError> {
    let text = match std::str::from_utf8(document) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(document),
    };
    let (text, escapes) = match escape_lone_angles(&text) {
        Some((repaired, escapes)) => (Cow::Owned(repaired), escapes),
        None => (text, Vec::new()),
    };
    let mut reader = Reader::new(&text, url);
    reader.escapes = escapes;
    reader.run()
}

/// Whether the rest of a text after a `<` cannot open markup (`a < b`, `1 <2`, `<=`).
fn is_lone_angle(rest: &str) -> bool {
    rest.chars().next().is_none_or(|c| {
        c.is_whitespace() || c.is_ascii_digit() || matches!(c, '<' | '=' | '-' | ')' | '(')
    })
}

/// The document with every `<` that cannot open markup escaped, outside CDATA sections and
/// comments, and where each `&lt;` written is in it; nothing when it has none (the usual
/// case, found without copying).
fn escape_lone_angles(text: &str) -> Option<(String, Vec<usize>)> {
    let mut escapes = Vec::new();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut at = 0;
    while let Some(found) = text[at..].find('<') {
        let pos = at + found;
        let rest = &text[pos + 1..];
        if let Some(skip) = opaque_len(rest) {
            at = pos + 1 + skip;
        } else if is_lone_angle(rest) {
            let out = out.get_or_insert_with(|| String::with_capacity(text.len() + 16));
            out.push_str(&text[copied..pos]);
            escapes.push(out.len());
            out.push_str("&lt;");
            copied = pos + 1;
            at = pos + 1;
        } else {
            at = pos + 1;
        }
    }
    let mut out = out?;
    out.push_str(&text[copied..]);
    Some((out, escapes))
}

/// The length of a CDATA section or comment starting right after its `<` (to the end of the
/// text when unterminated).
fn opaque_len(rest: &str) -> Option<usize> {
    let (open, close) = if rest.starts_with("![CDATA[") {
        ("![CDATA[", "]]>")
    } else if rest.starts_with("!--") {
        ("!--", "-->")
    } else {
        return None;
    };
    Some(
        rest[open.len()..]
            .find(close)
            .map_or(rest.len(), |end| open.len() + end + close.len()),
    )
}

struct Reader<'a> {
    xml: quick_xml::NsReader<&'a [u8]>,
    source: &'a str,
    /// Where `source` has a `&lt;` for a lone `<` of the document (see `escape_lone_angles`).
    escapes: Vec<usize>,
    /// Bases in effect: `bases[open[i].base]` at open element `i`.
    bases: Vec<Rc<Url>>,
    /// Per open element: its base, and whether it is a container we entered.
    open: Vec<Open>,
    atom: bool,
    head: FeedHead,
    feed_title_depth: Option<usize>,
    entries: Vec<RawEntry>,
    entry_bases: Vec<Rc<Url>>,
    entry: Option<(EntryDraft, usize)>,
    collecting: Option<Collecting>,
    /// The depth of a subtree whose content is not the entry's or the feed's (`<image>`,
    /// `<textinput>`, `<source>`, an author's children other than name).
    skipping: Option<usize>,
    root: Option<String>,
    feed_root: bool,
    foreign_items: usize,
}

struct Open {
    /// The base in effect inside, as a position in `bases`.
    base: usize,
    /// Whether the element declared that base (and `bases` drops it when it ends).
    declares_base: bool,
    /// Its name as written, to match end tags liberally.
    name: Box<str>,
}

impl<'a> Reader<'a> {
    fn new(text: &'a str, url: &Url) -> Reader<'a> {
        let mut xml = quick_xml::NsReader::from_reader(text.as_bytes());
        let config = xml.config_mut();
        // `AT&T` and `?a=1&b=2` in text are common and harmless.
        config.allow_dangling_amp = true;
        // An unclosed `<br>` or `<p>` in a title is common too: end tags are matched here,
        // as an HTML parser would (see `end_named`).
        config.check_end_names = false;
        config.allow_unmatched_ends = true;
        Reader {
            xml,
            source: text,
            escapes: Vec::new(),
            bases: vec![Rc::new(url.clone())],
            open: Vec::new(),
            atom: false,
            head: FeedHead {
                title: None,
                site_link: None,
                ttl_minutes: None,
            },
            feed_title_depth: None,
            entries: Vec::new(),
            entry_bases: Vec::new(),
            entry: None,
            collecting: None,
            skipping: None,
            root: None,
            feed_root: false,
            foreign_items: 0,
        }
    }

    fn error_at(&self, offset: u64, message: String) -> ParseError {
        let offset = (offset as usize).min(self.source.len());
        let (line, column) = line_col(self.source.as_bytes(), offset);
        // Each `&lt;` written for a lone `<` before the place on its line is 3 more
        // characters than the document has.
        let line_start = self.source.as_bytes()[..offset]
            .iter()
            .rposition(|b| *b == b'\n')
            .map_or(0, |at| at + 1);
        let written = self
            .escapes
            .iter()
            .filter(|at| **at >= line_start && **at + 4 <= offset)
            .count();
        let column = column - 3 * written;
        ParseError::Xml {
            line,
            column,
            message,
        }
    }

    fn run(mut self) -> Result<Document, ParseError> {
        loop {
            let event = match self.xml.read_event() {
                Ok(event) => event,
                Err(err) => {
                    use quick_xml::name::NamespaceError;
                    let (at, message) = match err {
                        // Found once the whole start tag is read (quick-xml keeps no
                        // position for them).
                        quick_xml::Error::Namespace(NamespaceError::TooManyBindings(most)) => (
                            self.xml.buffer_position(),
                            format!(
                                "more than {most} namespaces declared at once, which is more \
                                 than feedmill reads"
                            ),
                        ),
                        quick_xml::Error::Namespace(NamespaceError::TooDeeplyNested(most)) => (
                            self.xml.buffer_position(),
                            format!("elements nested more than {most} deep"),
                        ),
                        quick_xml::Error::Namespace(err) => {
                            (self.xml.buffer_position(), err.to_string())
                        }
                        err => (self.xml.error_position(), err.to_string()),
                    };
                    return Err(self.error_at(at, message));
                }
            };
            match event {
                Event::Start(start) => self.start(&start, false),
                Event::Empty(empty) => {
                    self.start(&empty, true);
                    self.end();
                }
                Event::End(end) => self.end_named(end.name().0),
                Event::Text(text) => {
                    self.text(&text.xml_content(quick_xml::XmlVersion::Implicit1_0))
                }
                Event::CData(cdata) => {
                    let content = cdata.xml_content(quick_xml::XmlVersion::Implicit1_0);
                    self.text(&content)
                }
                Event::GeneralRef(reference) => {
                    let resolved = resolve_reference(&reference);
                    self.text(&resolved)
                }
                Event::Eof => break,
                _ => {}
            }
            if self.entries.len() == MAX_ENTRIES {
                return Ok(self.finish());
            }
        }
        if let Some(open) = self.open.last() {
            let at = self.xml.buffer_position();
            let name = open.name.to_string();
            return Err(self.error_at(
                at,
                format!("the document ends before <{name}> is closed (truncated?)"),
            ));
        }
        Ok(self.finish())
    }

    fn finish(self) -> Document {
        Document {
            head: self.head,
            entries: self.entries,
            entry_bases: self.entry_bases,
            root: self.root.unwrap_or_default(),
            feed_root: self.feed_root,
            foreign_items: self.foreign_items,
        }
    }

    fn base(&self) -> usize {
        self.open.last().map_or(0, |o| o.base)
    }

    fn start(&mut self, start: &BytesStart, empty: bool) {
        let depth = self.open.len();
        let parent = self.base();
        // Only the bases of elements that are read count (none inside a text element, a
        // skipped subtree or past the depth followed), and only so long.
        let read = self.collecting.is_none() && self.skipping.is_none() && depth < MAX_DEPTH;
        let declared = read
            .then(|| attribute(start, "xml:base"))
            .flatten()
            .and_then(|declared| self.bases[parent].join(declared.trim()).ok())
            // A base that is not http(s) is ignored: the enclosing one applies.
            .filter(|url| matches!(url.scheme(), "http" | "https"))
            .filter(|url| url.as_str().len() <= MAX_BASE_LEN);
        let declares_base = declared.is_some();
        if let Some(url) = declared {
            self.bases.push(Rc::new(url));
        }
        let base = if declares_base {
            self.bases.len() - 1
        } else {
            parent
        };
        self.open.push(Open {
            base,
            declares_base,
            name: start.name().0.into(),
        });

        if let Some(collecting) = &mut self.collecting {
            if collecting.field.is_construct() {
                open_inner(collecting, start, empty);
            }
            return;
        }
        if self.skipping.is_some() || depth >= MAX_DEPTH {
            return;
        }

        let (vocabulary, local) = self.classify(start);
        let local = local.to_ascii_lowercase();
        if self.root.is_none() {
            self.root = Some(start.name().0.to_string());
            self.feed_root = matches!(local.as_str(), "rss" | "rdf" | "feed" | "channel");
        }
        if vocabulary == Vocabulary::Core && local == "feed" {
            self.atom = true;
        }
        let in_entry = self.entry.is_some();
        // Attributes are looked up only for the elements that use them.
        let typed = |default: &str| {
            TextType::new(
                attribute(start, "type").as_deref(),
                default,
                attribute(start, "mode").as_deref(),
            )
        };
        use Vocabulary::*;
        match (vocabulary, local.as_str(), in_entry) {
            (Core, "item" | "entry", false) => {
                let mut draft = EntryDraft {
                    base: Some(Rc::clone(&self.bases[base])),
                    ..EntryDraft::default()
                };
                if let Some(about) = attribute(start, "rdf:about") {
                    draft.id = Some(about);
                }
                self.entry = Some((draft, depth));
            }
            (_, "item" | "entry", false) => self.foreign_items += 1,
            (Core, "image" | "textinput" | "source", _) => self.skipping = Some(depth),
            (Core, "title", false) | (DublinCore, "title", false) => {
                self.collect(Field::FeedTitle, depth, typed("text/plain"), base)
            }
            (Core, "link", false) => {
                let rel = attribute(start, "rel").map(|r| r.trim().to_ascii_lowercase());
                match link_href(start) {
                    Some(href) => {
                        if is_alternate(rel.as_deref(), attribute(start, "type").as_deref()) {
                            self.head.site_link =
                                resolve(&self.bases[base], &href).or(self.head.site_link.take());
                        }
                    }
                    None => self.collect(Field::FeedLink, depth, typed("text/plain"), base),
                }
            }
            (Core, "ttl", false) => self.collect(Field::Ttl, depth, typed("text/plain"), base),
            (_, _, false) => {}
            (Core, "title", true) | (DublinCore, "title", true) => {
                self.collect(Field::Title, depth, typed("text/plain"), base)
            }
            (Core, "description", true) | (DublinCore, "description", true) => {
                self.summary_or_content(depth, start, "text/html", base)
            }
            (Media, "description", true) => {
                self.summary_or_content(depth, start, "text/html", base)
            }
            (Media, "title", true) => self.collect(Field::Title, depth, typed("text/plain"), base),
            (Core, "summary", true) | (Itunes, "summary", true) => {
                self.summary_or_content(depth, start, "text/plain", base)
            }
            (Core, "content", true) => {
                if let Some((draft, _)) = &mut self.entry {
                    draft.has_content = true;
                }
                if attribute(start, "src").is_some() {
                    // Out-of-line content: nothing to read here.
                    return;
                }
                self.collect(Field::Content, depth, typed("text/plain"), base)
            }
            (Content, "encoded", true) | (Core, "fullitem", true) => {
                if let Some((draft, _)) = &mut self.entry {
                    draft.has_content = true;
                }
                self.collect(Field::Content, depth, typed("text/html"), base)
            }
            (Xhtml, "body", true) | (Core, "body", true) => self.collect(
                Field::Content,
                depth,
                TextType::new(None, "application/xhtml+xml", None),
                base,
            ),
            (Core, "link", true) => {
                let rel = attribute(start, "rel").map(|r| r.trim().to_ascii_lowercase());
                let kind = attribute(start, "type");
                // `href=""` is the base itself (RFC 3986 §5.2), as feedparser reads it.
                let empty = attribute(start, "href").filter(|href| href.trim().is_empty());
                match link_href(start).or(empty) {
                    Some(href) => {
                        let resolved = match href.trim() {
                            "" => Some(self.bases[base].to_string()),
                            href => resolve(&self.bases[base], href),
                        };
                        let Some((draft, _)) = &mut self.entry else {
                            return;
                        };
                        if rel.as_deref() == Some("enclosure") {
                            if let Some(url) =
                                resolved.filter(|_| draft.enclosures.len() < MAX_PER_ENTRY)
                            {
                                draft.enclosures.push(RawEnclosure {
                                    url,
                                    mime_type: kind,
                                    length: attribute(start, "length"),
                                });
                            }
                        } else if is_alternate(rel.as_deref(), kind.as_deref()) {
                            // A link that is not http(s) is no story link, and does not
                            // replace one that is.
                            if let Some(url) = resolved.as_deref().and_then(super::http_url) {
                                draft.link = Some(url);
                            }
                        }
                    }
                    None => self.collect(Field::Link, depth, typed("text/plain"), base),
                }
            }
            (Core, "guid" | "id", true) => {
                // feedparser's test, to the letter: "True" is not "true".
                let permalink = attribute(start, "ispermalink").is_none_or(|v| v == "true");
                self.collect(Field::Id { permalink }, depth, typed("text/plain"), base)
            }
            (Core, "pubdate" | "published" | "issued", true) | (DcTerms, "issued", true) => {
                self.collect(Field::Published, depth, typed("text/plain"), base)
            }
            (Core, "updated" | "modified" | "lastbuilddate", true)
            | (DublinCore, "date", true)
            | (DcTerms, "modified", true) => {
                self.collect(Field::Updated, depth, typed("text/plain"), base)
            }
            (Core, "created", true) | (DcTerms, "created", true) => {
                self.collect(Field::Created, depth, typed("text/plain"), base)
            }
            (Core, "author", true)
            | (DublinCore, "creator" | "author", true)
            | (Itunes, "author", true) => {
                if let Some((draft, _)) = &mut self.entry {
                    draft.author = Some(AuthorDraft {
                        depth,
                        own: String::new(),
                        name: None,
                    });
                }
            }
            (Core, "name", true) if self.in_author() => {
                self.collect(Field::AuthorName, depth, typed("text/plain"), base)
            }
            (Core, "email" | "uri" | "url", true) if self.in_author() => {
                self.skipping = Some(depth)
            }
            (Core, "category", true) | (DublinCore, "subject", true) => {
                let label = attribute(start, "label").or_else(|| attribute(start, "term"));
                match label.filter(|l| !l.trim().is_empty()) {
                    Some(label) => {
                        if let Some((draft, _)) = &mut self.entry {
                            if draft.categories.len() < MAX_PER_ENTRY {
                                draft.categories.push(label);
                            }
                        }
                    }
                    None => self.collect(Field::Category, depth, typed("text/plain"), base),
                }
            }
            (Core, "enclosure", true) | (Media, "content" | "thumbnail", true) => {
                let url = link_href(start).and_then(|href| resolve(&self.bases[base], &href));
                if let (Some(url), Some((draft, _))) = (url, &mut self.entry) {
                    if draft.enclosures.len() >= MAX_PER_ENTRY {
                        return;
                    }
                    draft.enclosures.push(RawEnclosure {
                        url,
                        mime_type: attribute(start, "type"),
                        length: attribute(start, "length").or_else(|| attribute(start, "filesize")),
                    });
                }
            }
            (Core, "contributor", true) => self.skipping = Some(depth),
            _ => {}
        }
    }

    fn in_author(&self) -> bool {
        self.entry
            .as_ref()
            .is_some_and(|(draft, _)| draft.author.is_some())
    }

    /// The vocabulary of an element and its local name.
    fn classify<'n>(&self, start: &'n BytesStart) -> (Vocabulary, &'n str) {
        let (resolved, local) = self.xml.resolver().resolve_element(start.name());
        let prefix = start.name().prefix().map(|p| p.into_inner());
        let vocabulary = match resolved {
            ResolveResult::Bound(namespace) => Vocabulary::of_namespace(namespace.0)
                .unwrap_or_else(|| Vocabulary::of_prefix(prefix)),
            ResolveResult::Unbound => Vocabulary::Core,
            ResolveResult::Unknown(_) => Vocabulary::of_prefix(prefix),
        };
        (vocabulary, local.into_inner())
    }

    /// `<description>`, `<summary>`, `<itunes:summary>`: the summary, or, when the entry has
    /// a summary already and no content, its content (feedparser's rule).
    fn summary_or_content(&mut self, depth: usize, start: &BytesStart, default: &str, base: usize) {
        let mode = attribute(start, "mode");
        let given = attribute(start, "type");
        let as_content = self
            .entry
            .as_ref()
            .is_some_and(|(draft, _)| draft.summary.is_some() && !draft.has_content);
        if as_content {
            if let Some((draft, _)) = &mut self.entry {
                draft.has_content = true;
            }
            let kind = TextType::new(given.as_deref(), "text/plain", mode.as_deref());
            self.collect(Field::Content, depth, kind, base);
        } else {
            let kind = TextType::new(given.as_deref(), default, mode.as_deref());
            self.collect(Field::Summary, depth, kind, base);
        }
    }

    fn collect(&mut self, field: Field, depth: usize, kind: TextType, base: usize) {
        self.collecting = Some(Collecting {
            field,
            depth,
            text: String::new(),
            kind,
            base,
            inner: Vec::new(),
            data_only: false,
            parts: 0,
        });
    }

    fn text(&mut self, text: &str) {
        let Some(collecting) = &mut self.collecting else {
            if let Some((draft, _)) = &mut self.entry {
                // An author element's own text, around its children.
                if let (Some(author), None) = (&mut draft.author, self.skipping) {
                    let room = MAX_AUTHOR_TEXT.saturating_sub(author.own.len());
                    author.own.push_str(truncate(text, room));
                }
            }
            return;
        };
        if !collecting.inner.is_empty()
            && (!collecting.field.is_construct() || collecting.data_only)
        {
            // Text of a child of a plain field belongs to the child (feedparser).
            return;
        }
        if collecting.kind.is_xhtml() {
            html_escape::encode_double_quoted_attribute_to_string(text, &mut collecting.text);
        } else {
            collecting.text.push_str(text);
        }
    }

    /// An end tag: it closes the innermost open element of its name and every element
    /// left open inside that one; an end tag that closes nothing is ignored.
    fn end_named(&mut self, name: &str) {
        // Only the innermost elements are looked at: an end tag that closes something
        // further out is rarer than a flood of stray end tags that would each scan it all.
        let window = self.open.len().saturating_sub(END_TAG_REACH);
        let Some(at) = self.open[window..]
            .iter()
            .rposition(|open| &*open.name == name)
            .map(|at| window + at)
        else {
            return;
        };
        while self.open.len() > at {
            self.end();
        }
    }

    fn end(&mut self) {
        let Some(open) = self.open.pop() else {
            return;
        };
        self.close(self.open.len());
        if open.declares_base {
            self.bases.pop();
        }
    }

    /// Ends the element at `depth`.
    fn close(&mut self, depth: usize) {
        if let Some(collecting) = &mut self.collecting {
            if collecting.depth < depth {
                if collecting.field.is_construct() {
                    close_inner(collecting);
                } else {
                    collecting.inner.pop();
                }
                return;
            }
            if let Some(collecting) = self.collecting.take() {
                self.store(collecting);
            }
            return;
        }
        if let Some(skip) = self.skipping {
            if skip == depth {
                self.skipping = None;
            }
            return;
        }
        if let Some((draft, entry_depth)) = &mut self.entry {
            if *entry_depth == depth {
                let draft = std::mem::take(draft);
                self.entry = None;
                let (entry, base) = draft.finish();
                self.entries.push(entry);
                self.entry_bases
                    .push(base.unwrap_or_else(|| Rc::clone(&self.bases[0])));
            } else if draft.author.as_ref().is_some_and(|a| a.depth == depth) {
                if let Some(author) = draft.author.take() {
                    let name = author.name.unwrap_or_else(|| name_of_author(&author.own));
                    if !name.trim().is_empty() && draft.authors.len() < MAX_PER_ENTRY {
                        draft.authors.push(name);
                    }
                }
            }
        }
    }

    /// Keeps what a text element said.
    fn store(&mut self, collecting: Collecting) {
        let atom = self.atom;
        let base = &self.bases[collecting.base];
        let Some(raw) = finish_text(collecting.text, &collecting.kind, atom) else {
            return;
        };
        let plain = || raw.text.trim().to_string();
        match collecting.field {
            Field::FeedTitle => {
                if self
                    .feed_title_depth
                    .is_none_or(|known| collecting.depth < known)
                    && !raw.text.trim().is_empty()
                {
                    self.feed_title_depth = Some(collecting.depth);
                    self.head.title = Some(raw);
                }
            }
            Field::FeedLink => {
                if let Some(link) = resolve(base, &plain()) {
                    self.head.site_link = Some(link);
                }
            }
            Field::Ttl => self.head.ttl_minutes = plain().parse().ok(),
            _ => {
                let text_base = Rc::clone(base);
                let Some((draft, _)) = &mut self.entry else {
                    return;
                };
                match collecting.field {
                    Field::Title => {
                        if draft
                            .title
                            .as_ref()
                            .is_none_or(|(_, known)| collecting.depth < *known)
                            && !raw.text.trim().is_empty()
                        {
                            draft.title = Some((raw, collecting.depth));
                        }
                    }
                    Field::Summary => {
                        if draft
                            .summary
                            .as_ref()
                            .is_none_or(|(_, known, _)| collecting.depth <= *known)
                        {
                            draft.summary = Some((raw, collecting.depth, text_base));
                        }
                    }
                    Field::Content => {
                        if draft.content.is_none() {
                            draft.content = Some((raw, text_base));
                        }
                    }
                    Field::Link => {
                        let resolved = resolve(base, &plain());
                        if let Some(link) = resolved.as_deref().and_then(super::http_url) {
                            draft.link = Some(link);
                        }
                    }
                    Field::Id { permalink } => {
                        let id = plain();
                        if !id.is_empty() {
                            draft.id_is_link = permalink;
                            draft.id = Some(id);
                        }
                    }
                    Field::Published => draft.published = Some(dates::parse_date(&plain())),
                    Field::Updated => draft.updated = Some(dates::parse_date(&plain())),
                    Field::Created => draft.created = Some(dates::parse_date(&plain())),
                    Field::AuthorName => {
                        if let Some(author) = &mut draft.author {
                            author.name = Some(plain());
                        }
                    }
                    Field::Category => {
                        let label = plain();
                        if !label.is_empty() && draft.categories.len() < MAX_PER_ENTRY {
                            draft.categories.push(label);
                        }
                    }
                    Field::FeedTitle | Field::FeedLink | Field::Ttl => {}
                }
            }
        }
    }
}

impl EntryDraft {
    /// The entry, and the base of its text (see [`Document::entry_bases`]).
    fn finish(self) -> (RawEntry, Option<Rc<Url>>) {
        // A permalink guid (or an Atom id, feedparser's way) is the link when no link is
        // given; only an absolute http(s) one: a guid like "12345" is not a page.
        let link = self.link.or_else(|| {
            self.id
                .as_deref()
                .filter(|_| self.id_is_link)
                .and_then(|id| Url::parse(id).ok())
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .map(String::from)
        });
        let content = self.content;
        let text_base = content
            .as_ref()
            .map(|(_, base)| base)
            .or(self.summary.as_ref().map(|(_, _, base)| base))
            .or(self.base.as_ref())
            .cloned();
        let entry = RawEntry {
            id: self.id.unwrap_or_default(),
            title: self.title.map(|(title, _)| title),
            link,
            // The base of the text is the entry's in `entry_bases`.
            content_base: None,
            summary: self.summary.map(|(summary, _, _)| summary),
            content: content.map(|(content, _)| content),
            published: self.published.flatten().or(self.created.flatten()),
            updated: self.updated.flatten(),
            authors: self.authors,
            categories: self.categories,
            enclosures: self.enclosures,
        };
        (entry, text_base)
    }
}

/// Opens a child element inside a text construct: its markup is kept (feedparser turns
/// the text into XHTML), except `<div>` right inside escaped HTML.
fn open_inner(collecting: &mut Collecting, start: &BytesStart, empty: bool) {
    let local = start.local_name().into_inner().to_ascii_lowercase();
    let multipart = collecting.parts > 0 || collecting.kind.mime.starts_with("multipart/");
    if multipart && collecting.inner.is_empty() {
        // Atom 0.3's multipart/alternative: the first part is the text (feedparser's
        // reading); the others are the same text again.
        if collecting.parts == 0 {
            collecting.kind =
                TextType::new(attribute(start, "type").as_deref(), "text/plain", None);
        } else {
            collecting.data_only = true;
        }
        collecting.parts += 1;
        collecting.inner.push(String::new());
        return;
    }
    if collecting.kind.mime.ends_with("xml") && !collecting.kind.is_xhtml() {
        // Data in XML (`application/xml`) is no text to republish (feedparser reads none).
        collecting.inner.push(String::new());
        collecting.data_only = true;
        return;
    }
    if !collecting.kind.mime.ends_with("xml") {
        // A `<div>` right inside escaped HTML is left out (TypePad's habit).
        if local == "div" && collecting.inner.is_empty() {
            collecting.inner.push(String::new());
            return;
        }
        // Markup in a text that says it is escaped HTML (or plain text): it is markup.
        collecting.kind.mime = "application/xhtml+xml".into();
    }
    if !is_markup_name(&local) {
        // Not a name an HTML parser reads back as one (`p"><a href=...`): the element is
        // left out, its content kept.
        if !empty {
            collecting.inner.push(String::new());
        }
        return;
    }
    collecting.text.push('<');
    collecting.text.push_str(&local);
    for attr in start.attributes().with_checks(false).flatten() {
        let key = attr.key.local_name().into_inner().to_ascii_lowercase();
        if key.starts_with("xmlns") || attr.key.0.starts_with("xmlns") || !is_markup_name(&key) {
            continue;
        }
        let value = unescape_lenient(&attr.value);
        collecting.text.push(' ');
        collecting.text.push_str(&key);
        collecting.text.push_str("=\"");
        html_escape::encode_double_quoted_attribute_to_string(&value, &mut collecting.text);
        collecting.text.push('"');
    }
    if empty {
        collecting.text.push_str(" />");
        // `close_inner` is called by `end` for the empty element too.
        collecting.inner.push(String::new());
    } else {
        collecting.text.push('>');
        collecting.inner.push(local);
    }
}

/// Whether `name` (of an element or an attribute inside a text construct) is written back
/// as the one name it is: quick-xml ends a name at white space, `=`, `/` or `>` only, so a
/// name may hold quotes and, inside them, `>` and whole tags, which written back would be
/// markup the document never had.
fn is_markup_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| {
            c.is_alphanumeric()
                || matches!(c, '-' | '_' | '.' | ':')
                || !(c.is_ascii() || c.is_whitespace() || c.is_control())
        })
}

fn close_inner(collecting: &mut Collecting) {
    match collecting.inner.pop() {
        Some(name) if !name.is_empty() => {
            collecting.text.push_str("</");
            collecting.text.push_str(&name);
            collecting.text.push('>');
        }
        _ => {}
    }
}

/// The text of a text element as its type says: base64 decoded, markup kept as HTML,
/// C1 characters read as Windows-1252. `None` when it cannot be read as text.
fn finish_text(text: String, kind: &TextType, atom: bool) -> Option<RawText> {
    let trimmed = text.trim();
    // Markup is not base64, whatever the type said.
    let text = if kind.base64 && !kind.is_xhtml() {
        let words = trimmed
            .chars()
            .any(|c| !is_base64_char(c) && !matches!(c, '=' | '\n' | '\r' | '\t'));
        match decode_base64(trimmed) {
            Base64::Text(decoded) => decoded,
            // Words that are not base64 (`type=""` on a plain title) are read as they are,
            // as feedparser does.
            _ if words => trimmed.to_string(),
            // Base64 of bytes that are not text (an image), or bad base64: no text.
            Base64::Binary | Base64::Invalid => return None,
        }
    } else {
        trimmed.to_string()
    };
    let text = encoding::repair_text(text.trim()).into_owned();
    let html = kind.is_html() || (!atom && kind.mime == "text/plain" && looks_like_html(&text));
    Some(RawText { text, html })
}

/// What base64 decoding gave.
enum Base64 {
    Text(String),
    Binary,
    Invalid,
}

/// Base64 decoded as Python's `base64.decodebytes` does (characters outside the alphabet
/// skipped, padding required), kept when the result is UTF-8 text.
fn decode_base64(text: &str) -> Base64 {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    let compact: String = text
        .chars()
        .filter(|c| is_base64_char(*c) || *c == '=')
        .collect();
    if !compact.len().is_multiple_of(4) {
        return Base64::Invalid;
    }
    match LENIENT.decode(compact.as_bytes()) {
        Ok(bytes) => String::from_utf8(bytes).map_or(Base64::Binary, Base64::Text),
        Err(_) => Base64::Invalid,
    }
}

/// Whether `c` is in base64's alphabet.
fn is_base64_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '/')
}

/// Whether a text that claims to be plain is in fact HTML: it has a closing tag or a
/// character reference, and only HTML's tags and entities (feedparser's test).
fn looks_like_html(text: &str) -> bool {
    let has_close_tag = text.match_indices("</").any(|(at, _)| {
        let rest = &text[at + 2..];
        let name_len = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        name_len > 0 && rest[name_len..].starts_with('>')
    });
    let references: Vec<&str> = references_in(text).collect();
    if !has_close_tag && references.is_empty() {
        return false;
    }
    let tags_known = text.match_indices('<').all(|(at, _)| {
        let rest = text[at + 1..].strip_prefix('/').unwrap_or(&text[at + 1..]);
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        name.is_empty() || HTML_ELEMENTS.contains(&name.to_ascii_lowercase().as_str())
    });
    let entities_known = references.iter().all(|name| {
        name.starts_with('#') || markup5ever::data::NAMED_ENTITIES.contains_key(&format!("{name};"))
    });
    tags_known && entities_known
}

/// The names in the `&name;` references of a text (`#123` for character references).
fn references_in(text: &str) -> impl Iterator<Item = &str> {
    text.match_indices('&').filter_map(|(at, _)| {
        let rest = &text[at + 1..];
        let end = semicolon_within(rest)?;
        let name = &rest[..end];
        let body = name.strip_prefix('#').unwrap_or(name);
        (!body.is_empty() && body.chars().all(|c| c.is_alphanumeric() || c == '_')).then_some(name)
    })
}

/// The elements feedparser's sanitizer accepts, which [`looks_like_html`] allows.
const HTML_ELEMENTS: &[&str] = &[
    "a",
    "abbr",
    "acronym",
    "address",
    "area",
    "article",
    "aside",
    "audio",
    "b",
    "big",
    "blockquote",
    "br",
    "button",
    "canvas",
    "caption",
    "center",
    "cite",
    "code",
    "col",
    "colgroup",
    "command",
    "datagrid",
    "datalist",
    "dd",
    "del",
    "details",
    "dfn",
    "dialog",
    "dir",
    "div",
    "dl",
    "dt",
    "em",
    "event",
    "fieldset",
    "figcaption",
    "figure",
    "font",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "i",
    "img",
    "input",
    "ins",
    "kbd",
    "keygen",
    "label",
    "legend",
    "li",
    "m",
    "map",
    "menu",
    "meter",
    "multicol",
    "nav",
    "nextid",
    "noscript",
    "ol",
    "optgroup",
    "option",
    "output",
    "p",
    "pre",
    "progress",
    "q",
    "s",
    "samp",
    "section",
    "select",
    "small",
    "sound",
    "source",
    "spacer",
    "span",
    "strike",
    "strong",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "textarea",
    "tfoot",
    "th",
    "thead",
    "time",
    "tr",
    "tt",
    "u",
    "ul",
    "var",
    "video",
];

/// The text a reference stands for: the predefined five, character references (C1 ones
/// read as Windows-1252), and HTML's named entities; anything else stays as written.
fn resolve_reference(reference: &BytesRef) -> String {
    let name: &str = reference;
    if reference.is_char_ref() {
        return match reference.resolve_char_ref() {
            Ok(Some(c)) => c.to_string(),
            _ => format!("&{name};"),
        };
    }
    named_entity(name).unwrap_or_else(|| format!("&{name};"))
}

/// The characters of a predefined or HTML named entity (`eacute` is "é").
fn named_entity(name: &str) -> Option<String> {
    match name {
        "lt" => return Some("<".into()),
        "gt" => return Some(">".into()),
        "amp" => return Some("&".into()),
        "quot" => return Some("\"".into()),
        "apos" => return Some("'".into()),
        _ => {}
    }
    let (first, second) = markup5ever::data::NAMED_ENTITIES.get(format!("{name};").as_str())?;
    let mut text = String::new();
    text.extend(char::from_u32(*first));
    if *second != 0 {
        text.extend(char::from_u32(*second));
    }
    Some(text)
}

/// An attribute value with its references resolved as [`resolve_reference`] does.
fn unescape_lenient(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let resolved = semicolon_within(after).and_then(|end| {
            let name = &after[..end];
            let text = match name.strip_prefix('#') {
                Some(number) => {
                    let code = match number.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok(),
                        None => number.parse().ok(),
                    };
                    code.and_then(char::from_u32)
                        .filter(|c| *c != '\0')
                        .map(String::from)
                }
                None => named_entity(name),
            }?;
            Some((text, end))
        });
        match resolved {
            Some((text, end)) => {
                out.push_str(&text);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// An attribute's value by name (case-insensitive, as feedparser lowercases names), with
/// references resolved.
fn attribute(start: &BytesStart, name: &str) -> Option<String> {
    start
        .attributes()
        .with_checks(false)
        .flatten()
        .find(|a| a.key.0.eq_ignore_ascii_case(name))
        .map(|a| unescape_lenient(&a.value))
}

/// The URL of a link-like element: `href`, else `url`, else `uri` (feedparser's order is
/// url, uri, href; one element rarely has two).
fn link_href(start: &BytesStart) -> Option<String> {
    attribute(start, "url")
        .or_else(|| attribute(start, "uri"))
        .or_else(|| attribute(start, "href"))
        .filter(|href| !href.trim().is_empty())
}

/// Whether a link is the alternate HTML page: `rel` alternate (or none), type HTML (or none).
fn is_alternate(rel: Option<&str>, kind: Option<&str>) -> bool {
    let rel_ok = rel.is_none_or(|r| r == "alternate");
    let type_ok = kind.is_none_or(|t| {
        let t = t.trim().to_ascii_lowercase();
        t == "text/html" || t == "application/xhtml+xml" || t == "html" || t == "xhtml"
    });
    rel_ok && type_ok
}

/// `href` resolved against `base`: an absolute URL, of any scheme (the caller keeps the
/// http(s) ones).
fn resolve(base: &Url, href: &str) -> Option<String> {
    let href = href.trim();
    if href.is_empty() {
        return None;
    }
    base.join(href).ok().map(String::from)
}

/// The name in an RSS author text: `jane@example.org (Jane Doe)` is "Jane Doe", `Jane Doe
/// <jane@example.org>` too; an address alone is no name.
fn name_of_author(text: &str) -> String {
    let without_email: Vec<&str> = text
        .split_whitespace()
        .filter(|word| !word.contains('@'))
        .collect();
    let name = without_email.join(" ");
    let name = name.replace("()", "").replace("<>", "");
    let name = name.trim();
    let name = name.strip_prefix('(').unwrap_or(name);
    let name = name.strip_suffix(')').unwrap_or(name);
    name.trim().to_string()
}

/// What reading a document costs, for the tests: relative to a plain document of the same
/// size, never absolute (the machine may be loaded, and a debug build is slow).
#[cfg(test)]
pub(super) mod cost {
    use std::time::Duration;

    use url::Url;

    use crate::parse::parse_feed;

    /// A plain RSS document of about `size` bytes: items with a short HTML description.
    pub(crate) fn plain(size: usize) -> String {
        let item = |i: usize| {
            format!(
                "<item><guid>{i}</guid><description>&lt;div&gt;x&lt;/div&gt;</description></item>"
            )
        };
        let mut items = String::new();
        let mut i = 0;
        while items.len() < size {
            items.push_str(&item(i));
            i += 1;
        }
        format!("<rss version=\"2.0\"><channel><title>t</title>{items}</channel></rss>")
    }

    /// The CPU time this thread has used.
    fn thread_time() -> Duration {
        let mut now = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec it is given, nothing else.
        unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
        Duration::new(now.tv_sec as u64, now.tv_nsec as u32)
    }

    /// The bytes allocated and the CPU time used while parsing `document` (the least of two
    /// runs: the time is of this thread alone, but a loaded machine still disturbs it).
    pub(crate) fn measure(document: &str, content_type: Option<&str>) -> (u64, Duration) {
        let url = Url::parse("https://news.example/feed.xml").expect("url");
        let allocated = || {
            tikv_jemalloc_ctl::thread::allocatedp::read()
                .expect("jemalloc statistics")
                .get()
        };
        let (mut bytes, mut time) = (u64::MAX, Duration::MAX);
        for _ in 0..2 {
            let (bytes_before, time_before) = (allocated(), thread_time());
            let parsed = parse_feed(document.as_bytes(), content_type, &url);
            drop(parsed);
            bytes = bytes.min(allocated() - bytes_before);
            time = time.min(thread_time() - time_before);
        }
        (bytes, time)
    }

    /// What `document` costs per byte, over what `baseline` (of the same kind) costs per
    /// byte: (allocation, CPU time).
    fn relative_to(
        (document, content_type): (&str, Option<&str>),
        (plain, plain_content_type): (&str, Option<&str>),
    ) -> (f64, f64) {
        let (plain_bytes, plain_time) = measure(plain, plain_content_type);
        let (bytes, time) = measure(document, content_type);
        let per_byte = |x: f64, len: usize| x / len as f64;
        (
            per_byte(bytes as f64, document.len()) / per_byte(plain_bytes as f64, plain.len()),
            per_byte(time.as_secs_f64(), document.len())
                / per_byte(plain_time.as_secs_f64(), plain.len()),
        )
    }

    /// Fails unless `document` costs about what a plain document of its size does: at most
    /// twice its allocation and five times its CPU time per byte (quadratic work on a
    /// document of 100 kB is hundreds of times more).
    pub(crate) fn assert_linear(what: &str, document: &str, content_type: Option<&str>) {
        let plain = plain(document.len());
        let (bytes, time) = relative_to((document, content_type), (&plain, None));
        check(what, document, (bytes, time), "a plain document");
    }

    /// Fails unless `document(4 * n)` costs at most twice per byte what `document(n)` does:
    /// quadratic work costs four times; constant factors (html5ever's per `&`) cancel out.
    pub(crate) fn assert_scales_linearly(
        what: &str,
        document: impl Fn(usize) -> String,
        n: usize,
        content_type: Option<&str>,
    ) {
        let (small, large) = (document(n), document(4 * n));
        let (bytes, time) = relative_to((&large, content_type), (&small, content_type));
        assert!(
            bytes <= 2.0 && time <= 2.0,
            "{what}: {} bytes cost {bytes:.1} x the allocation and {time:.1} x the time per \
             byte of {} bytes",
            large.len(),
            small.len()
        );
    }

    /// [`assert_linear`] against `baseline`, a document of the same kind and shape.
    pub(crate) fn assert_costs_as(
        what: &str,
        document: &str,
        baseline: &str,
        content_type: Option<&str>,
    ) {
        let relative = relative_to((document, content_type), (baseline, content_type));
        check(what, document, relative, "its baseline");
    }

    fn check(what: &str, document: &str, (bytes, time): (f64, f64), baseline: &str) {
        assert!(
            bytes <= 2.0 && time <= 5.0,
            "{what} ({} bytes) costs {bytes:.1} x the allocation and {time:.1} x the time of \
             {baseline}",
            document.len()
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::model::Entry;
    use crate::parse::{parse_feed, ParsedFeed};
    use url::Url;

    fn url() -> Url {
        Url::parse("https://news.example/feed.xml").expect("valid")
    }

    fn parse(xml: &str) -> ParsedFeed {
        parse_feed(xml.as_bytes(), None, &url()).expect("parses")
    }

    fn one(xml: &str) -> Entry {
        let mut feed = parse(xml);
        assert_eq!(feed.entries.len(), 1, "{:?}", feed.entries);
        feed.entries.remove(0)
    }

    const ITEM: &str = "<item><title>Story</title><link>https://news.example/a</link>\
        <description>Text of the story</description></item>";

    #[test]
    fn every_rss_version_and_none_is_read() {
        for version in [
            "",
            " version=\"\"",
            " version=\"0.90\"",
            " version=\"0.93\"",
            " version=\"0.94\"",
            " version=\"2.01\"",
            " version=\"3.0\"",
            " version=\"2.0\"",
        ] {
            let entry = one(&format!(
                "<rss{version}><channel><title>T</title>{ITEM}</channel></rss>"
            ));
            assert_eq!(entry.title, "Story", "{version}");
            assert_eq!(entry.link.as_deref(), Some("https://news.example/a"));
        }
        // Items without a channel, and the Userland and Netscape namespaces.
        one(&format!("<rss version=\"2.0\">{ITEM}</rss>"));
        one(&format!("<rss version=\"2.0\" xmlns=\"http://backend.userland.com/rss2\"><channel>{ITEM}</channel></rss>"));
        one(&format!("<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\" xmlns=\"http://my.netscape.com/rdf/simple/0.9/\"><channel><title>T</title></channel>{ITEM}</rdf:RDF>"));
        let rdf = one("<rdf:RDF xmlns:rdf=\"http://www.w3.org/1999/02/22-rdf-syntax-ns#\" xmlns=\"http://purl.org/rss/1.0/\">\
            <item rdf:about=\"urn:x:1\"><title>No link</title></item></rdf:RDF>");
        assert_eq!(rdf.title, "No link");
        assert_eq!(rdf.identity, "urn:x:1");
    }

    #[test]
    fn atom_03_is_read_with_its_dates_and_modes() {
        let feed = parse("<feed version=\"0.3\" xmlns=\"http://purl.org/atom/ns#\"><title>T</title>\
            <entry><title>Escaped</title><link rel=\"alternate\" type=\"text/html\" href=\"https://news.example/1\"/>\
            <id>tag:news.example,2004:1</id><issued>2004-01-02T03:04:05Z</issued><modified>2004-01-03T00:00:00Z</modified>\
            <content type=\"text/html\" mode=\"escaped\">&lt;p&gt;Hello &lt;b&gt;there&lt;/b&gt;&lt;/p&gt;</content></entry>\
            <entry><title>Base64</title><id>2</id><created>2004-01-01T00:00:00Z</created>\
            <content type=\"text/html\" mode=\"base64\">PHA+QmFzZSBzaXh0eS1mb3VyPC9wPg==</content></entry>\
            <entry><title>Inline</title><id>3</id><content type=\"application/xhtml+xml\" mode=\"xml\"><div xmlns=\"http://www.w3.org/1999/xhtml\"><p>In <i>line</i></p></div></content></entry>\
            </feed>");
        assert_eq!(feed.entries.len(), 3);
        let [escaped, base64, inline] = &feed.entries[..] else {
            unreachable!()
        };
        assert_eq!(escaped.link.as_deref(), Some("https://news.example/1"));
        assert_eq!(
            escaped.published.map(|d| d.to_rfc3339()).as_deref(),
            Some("2004-01-02T03:04:05+00:00")
        );
        assert!(escaped.updated.is_some());
        assert!(
            escaped
                .content
                .as_deref()
                .is_some_and(|c| c.contains("<b>there</b>")),
            "{escaped:?}"
        );
        assert!(
            base64
                .content
                .as_deref()
                .is_some_and(|c| c.contains("Base sixty-four")),
            "{base64:?}"
        );
        assert!(
            base64.published.is_some(),
            "created is the published date when nothing else is"
        );
        assert!(
            inline
                .content
                .as_deref()
                .is_some_and(|c| c.contains("<i>line</i>")),
            "{inline:?}"
        );
    }

    #[test]
    fn a_bad_type_loses_the_field_not_the_feed() {
        let feed = parse("<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>T</title>\
            <entry><id>1</id><title type=\"\">Empty type</title></entry>\
            <entry><id>2</id><title type=\"application/octet-stream\">QmFzZTY0IHRpdGxl</title>\
              <content type=\"application/octet-stream\">Qm9keSB0ZXh0</content></entry>\
            <entry><id>3</id><title type=\"text/x-custom\">Custom</title><summary type=\"application/xhtml+xml\"><div xmlns=\"http://www.w3.org/1999/xhtml\">X <b>y</b></div></summary></entry>\
            <entry><id>4</id><title>Good</title><content type=\"image/png\">iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==</content></entry>\
            </feed>");
        let titles: Vec<&str> = feed.entries.iter().map(|e| e.title.as_str()).collect();
        assert_eq!(titles, ["Empty type", "Base64 title", "Custom", "Good"]);
        assert!(feed.entries[1]
            .content
            .as_deref()
            .is_some_and(|c| c.contains("Body text")));
        assert!(feed.entries[2]
            .summary
            .as_deref()
            .is_some_and(|c| c.contains("<b>y</b>")));
        assert_eq!(feed.entries[3].content, None, "an image is no text");
    }

    #[test]
    fn text_is_read_as_the_author_meant_it() {
        let entry = one("<rss version=\"2.0\"><channel><title>Caf&amp;eacute; news</title><item>\
            <title>Caf&amp;eacute;&amp;nbsp;culture &amp;mdash; a guide</title><guid>1</guid>\
            <author>desk@news.example (Caf&amp;eacute; Desk)</author>\
            <description>Hello <b>world</b> end, don\u{92}t &#146;quote&#148;</description></item></channel></rss>");
        assert_eq!(entry.title, "Café culture — a guide");
        let html = entry.html().unwrap_or_default();
        assert!(html.contains("Hello <b>world</b> end"), "{html}");
        assert!(
            html.contains("don\u{2019}t \u{2019}quote\u{201d}"),
            "{html}"
        );
        assert_eq!(entry.authors, ["Café Desk"]);
        let feed = parse(
            "<rss><channel><title>Caf&amp;eacute; news</title>\
            <item><title>x</title></item></channel></rss>",
        );
        assert_eq!(feed.title.as_deref(), Some("Café news"));
        let atom = one(
            "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><id>1</id><title>t</title>\
            <content type=\"html\">Example <a href=\"x\">test</a> more</content></entry></feed>",
        );
        assert!(
            atom.content
                .as_deref()
                .is_some_and(|c| c.contains(">test</a> more")),
            "{atom:?}"
        );
    }

    #[test]
    fn fallbacks_fill_what_is_missing() {
        let feed = parse("<rss version=\"2.0\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\" \
            xmlns:itunes=\"http://www.itunes.com/dtds/podcast-1.0.dtd\" xmlns:atom=\"http://www.w3.org/2005/Atom\" \
            xmlns:content=\"http://purl.org/rss/1.0/modules/content/\" xmlns:xhtml=\"http://www.w3.org/1999/xhtml\"><channel>\
            <item><dc:title>Dublin</dc:title><dc:description>Core text</dc:description></item>\
            <item><title>Pod</title><itunes:summary>Show notes</itunes:summary></item>\
            <item><title>Atom</title><atom:published>2020-01-02T00:00:00Z</atom:published><atom:content type=\"html\">&lt;p&gt;A&lt;/p&gt;</atom:content></item>\
            <item><title>Enc</title><content:encoded><![CDATA[<p>Encoded</p>]]></content:encoded></item>\
            <item><title>Body</title><xhtml:body><xhtml:p>Xhtml body</xhtml:p></xhtml:body></item>\
            <item><title>Body</title><body xmlns=\"http://www.w3.org/1999/xhtml\"><p>Plain body</p></body></item>\
            <item><title>Full</title><fullitem>&lt;p&gt;Full item&lt;/p&gt;</fullitem></item>\
            </channel></rss>");
        let texts: Vec<String> = feed
            .entries
            .iter()
            .map(|e| format!("{}|{}", e.title, e.html().unwrap_or_default()))
            .collect();
        assert_eq!(feed.entries.len(), 7, "{texts:?}");
        assert!(
            texts[0].starts_with("Dublin|") && texts[0].contains("Core text"),
            "{texts:?}"
        );
        assert!(texts[1].contains("Show notes"));
        assert!(texts[2].contains("<p>A</p>") && feed.entries[2].published.is_some());
        assert!(texts[3].contains("<p>Encoded</p>"));
        assert!(texts[4].contains("Xhtml body"), "{texts:?}");
        assert!(texts[5].contains("Plain body"), "{texts:?}");
        assert!(texts[6].contains("Full item"));
    }

    #[test]
    fn the_story_link_is_the_alternate_link() {
        let feed = parse("<feed xmlns=\"http://www.w3.org/2005/Atom\">\
            <entry><id>1</id><title>a</title><link rel=\"license\" href=\"https://cc.example/by\"/></entry>\
            <entry><id>2</id><title>b</title><link rel=\"related\" href=\"https://r.example/\"/><link href=\"/two\"/></entry>\
            </feed>");
        assert_eq!(feed.entries[0].link, None);
        assert_eq!(
            feed.entries[1].link.as_deref(),
            Some("https://news.example/two")
        );
        let feed = parse("<rss xmlns:wfw=\"http://wellformedweb.org/CommentAPI/\"><channel>\
            <item><title>c</title><comments>https://news.example/c#comments</comments><wfw:commentRss>https://news.example/c/feed</wfw:commentRss></item>\
            <item><title>p</title><guid>https://news.example/p</guid></item>\
            <item><title>f</title><guid isPermaLink=\"false\">https://news.example/f</guid></item>\
            </channel></rss>");
        let links: Vec<Option<&str>> = feed.entries.iter().map(|e| e.link.as_deref()).collect();
        assert_eq!(links, [None, Some("https://news.example/p"), None]);
    }

    #[test]
    fn dcterms_dates_are_read() {
        let feed = parse(
            "<rss xmlns:dcterms=\"http://purl.org/dc/terms/\"><channel>\
            <item><title>i</title><dcterms:issued>2021-03-04T05:06:07Z</dcterms:issued></item>\
            <item><title>c</title><dcterms:created>2021-03-04T05:06:07Z</dcterms:created></item>\
            <item><title>m</title><dcterms:modified>2021-03-04T05:06:07Z</dcterms:modified></item>\
            </channel></rss>",
        );
        assert!(feed.entries[0].published.is_some());
        assert!(feed.entries[1].published.is_some());
        assert!(feed.entries[2].updated.is_some());
    }

    #[test]
    fn media_are_kept() {
        let entry = one("<rss xmlns:media=\"http://search.yahoo.com/mrss/\"><channel><item><title>Pod</title>\
            <enclosure url=\"/ep1.mp3\" length=\"1234\" type=\"audio/mpeg\"/>\
            <media:group><media:content url=\"https://cdn.example/v.mp4\" type=\"video/mp4\" fileSize=\"99\"/></media:group>\
            <media:thumbnail url=\"https://cdn.example/t.jpg\"/><enclosure url=\"javascript:alert(1)\" type=\"audio/mpeg\"/>\
            </item></channel></rss>");
        let urls: Vec<(&str, Option<&str>, Option<u64>)> = entry
            .enclosures
            .iter()
            .map(|e| (e.url.as_str(), e.mime_type.as_deref(), e.length))
            .collect();
        assert_eq!(
            urls,
            [
                (
                    "https://news.example/ep1.mp3",
                    Some("audio/mpeg"),
                    Some(1234)
                ),
                ("https://cdn.example/v.mp4", Some("video/mp4"), Some(99)),
                ("https://cdn.example/t.jpg", None, None),
            ]
        );
        let atom = one("<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><id>1</id><title>p</title>\
            <link rel=\"enclosure\" href=\"https://cdn.example/p.jpg\" type=\"image/jpeg\" length=\"5\"/></entry></feed>");
        assert_eq!(atom.enclosures.len(), 1);
        assert_eq!(atom.link, None);
    }

    #[test]
    fn no_silent_zero() {
        let err = parse_feed(b"<rss><channel><foo:item xmlns:foo=\"urn:foo\"><title>x</title></foo:item></channel></rss>", None, &url()).expect_err("no entries");
        assert!(err.to_string().contains("<item>"), "{err}");
        let err = parse_feed(b"<catalog><book/></catalog>", None, &url()).expect_err("not a feed");
        assert!(err.to_string().contains("<catalog>"), "{err}");
        // An empty feed is a feed.
        assert!(parse("<rss version=\"2.0\"></rss>").entries.is_empty());
    }

    #[test]
    fn xml_base_costs_what_the_document_does() {
        use super::cost::assert_linear;
        // Nested relative bases: each one longer than its parent's.
        let nested = format!(
            "<rss version=\"2.0\"><channel><title>t</title>{}<item><guid>1</guid><link>l</link></item>{}</channel></rss>",
            "<x xml:base=\"a/\">".repeat(6000),
            "</x>".repeat(6000)
        );
        assert_linear("nested xml:base", &nested, None);
        // One long base, and every entry (and its text) in it.
        let long = format!(
            "<rss version=\"2.0\"><channel xml:base=\"https://x.example/{}/\"><title>t</title>{}</channel></rss>",
            "a".repeat(20_000),
            (0..4000)
                .map(|i| format!("<item><guid>{i}</guid><description>x</description></item>"))
                .collect::<String>()
        );
        assert_linear("a long xml:base", &long, None);
        // A base of its own on each entry's content.
        let per_content = format!(
            "<feed xmlns=\"http://www.w3.org/2005/Atom\" xml:base=\"https://x.example/{}/\"><title>t</title>{}</feed>",
            "a".repeat(20_000),
            (0..3000)
                .map(|i| format!("<entry><id>{i}</id><content xml:base=\"b/\" type=\"html\">x</content></entry>"))
                .collect::<String>()
        );
        assert_linear("a base per content", &per_content, None);
        // Bases still resolve (deep enough for any feed), and one that is too long is
        // passed over as a base that is not http(s) is.
        let deep = format!(
            "<rss version=\"2.0\" xml:base=\"https://x.example/\"><channel><title>t</title>{}<item><guid>1</guid><link>l</link></item>{}</channel></rss>",
            "<x xml:base=\"a/\">".repeat(20),
            "</x>".repeat(20)
        );
        assert_eq!(
            parse(&deep).entries[0].link.as_deref(),
            Some(format!("https://x.example/{}l", "a/".repeat(20)).as_str())
        );
        let too_long = format!(
            "<rss version=\"2.0\" xml:base=\"https://x.example/{}/\"><channel><title>t</title><item><guid>1</guid><link>l</link></item></channel></rss>",
            "a".repeat(5000)
        );
        assert_eq!(
            parse(&too_long).entries[0].link.as_deref(),
            Some("https://news.example/l")
        );
    }

    #[test]
    fn markup_in_names_stays_out_of_the_text() {
        // An attribute name may hold quotes and `>` (quick-xml ends a name at `=` or white
        // space only): written back as it is, it would be markup of its own.
        let documents = [
            "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><id>1</id><title type=\"xhtml\">T<b x\"><img/src=\"https://evil.example/t.png\"/y\"=\"1\">t</b></title><content type=\"xhtml\"><b x\"><a/href=\"https://evil.example/\"/title\"=\"v\">click</b></content></entry></feed>",
            "<rss version=\"2.0\"><channel><item><guid>1</guid><title>A<b x\"></b><img/src=\"https://evil.example/\"/onload\"=\"1\">B</title><description>A<b x\"></b><img/src=\"https://evil.example/t.png\"/q\"=\"1\">B</description></item></channel></rss>",
            "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><id>1</id><title type=\"xhtml\">T</title><content type=\"xhtml\"><p\"><a/href=\"https://evil.example/x\">click</a>\">x</p\"><a/href=\"https://evil.example/x\">click</a>\"></content></entry></feed>",
            "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><id>1</id><title type=\"xhtml\">T</title><content type=\"xhtml\"><p x'><a/href='https://evil.example/x'>click</a>'='v'>x</p></content></entry></feed>",
        ];
        for document in documents {
            let entry = one(document);
            let html = entry.html().unwrap_or_default();
            assert!(
                !html.contains("evil.example") && !entry.title.contains("evil"),
                "{document}\ngave {entry:?}"
            );
        }
        // Names of every kind that are names stay.
        let entry = one("<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><id>1</id><title>t</title><content type=\"xhtml\"><div xmlns=\"http://www.w3.org/1999/xhtml\"><abbr title=\"x-y_z.1\" lang=\"fr\">a</abbr><a href=\"https://ok.example/\">b</a></div></content></entry></feed>");
        let html = entry.html().unwrap_or_default();
        assert!(
            html.contains("<abbr title=\"x-y_z.1\" lang=\"fr\">a</abbr>"),
            "{html}"
        );
        assert!(html.contains("href=\"https://ok.example/\""), "{html}");
    }

    #[test]
    fn the_lists_of_an_entry_are_bounded() {
        use super::cost::assert_linear;
        let n = 20_000;
        let rss = |inner: String| {
            format!("<rss version=\"2.0\" xmlns:media=\"http://search.yahoo.com/mrss/\"><channel><item><guid>1</guid>{inner}</item></channel></rss>")
        };
        let cases = [
            ("categories", rss("<category>c</category>".repeat(n))),
            (
                "categories by label",
                "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><id>1</id>".to_string()
                    + &"<category term=\"c\"/>".repeat(n)
                    + "</entry></feed>",
            ),
            ("authors", rss("<author>a@b (N)</author>".repeat(n))),
            (
                "enclosures",
                rss("<enclosure url=\"http://x.example/a\"/>".repeat(n)),
            ),
            (
                "media",
                rss("<media:content url=\"/a\" type=\"audio/mpeg\"/>".repeat(n)),
            ),
            (
                "contents",
                rss("<content:encoded xmlns:content=\"http://purl.org/rss/1.0/modules/content/\">t</content:encoded>".repeat(n)),
            ),
            (
                "an author's text",
                rss(format!("<author>{}</author>", "a ".repeat(5 * n))),
            ),
        ];
        for (what, document) in cases {
            assert_linear(what, &document, None);
            let entry = one(&document);
            assert!(
                entry.categories.len() <= 256 && entry.authors.len() <= 256,
                "{what}: {} categories, {} authors",
                entry.categories.len(),
                entry.authors.len()
            );
        }
    }

    #[test]
    fn reindenting_a_document_keeps_its_identities() {
        // Entries without a guid or a link are known by a hash of their text: white space
        // that a CMS's template moves about is no change of the text.
        let pairs = [
            (
                "<rss version=\"2.0\"><channel><title>t</title><item><title>Hello</title><description>One two three</description></item></channel></rss>",
                "<rss version=\"2.0\">\n  <channel>\n    <title>t</title>\n    <item>\n      <title>\n        Hello\n      </title>\n      <description>\n        One two\n        three\n      </description>\n    </item>\n  </channel>\n</rss>\n",
            ),
            (
                "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><title>Hello</title><content type=\"xhtml\"><div xmlns=\"http://www.w3.org/1999/xhtml\"><p>One</p><p>two</p></div></content></entry></feed>",
                "<feed xmlns=\"http://www.w3.org/2005/Atom\">\n <entry>\n  <title>Hello</title>\n  <content type=\"xhtml\">\n   <div xmlns=\"http://www.w3.org/1999/xhtml\">\n    <p>One</p>\n    <p>two</p>\n   </div>\n  </content>\n </entry>\n</feed>",
            ),
            (
                "{\"items\": [{\"title\": \"Hello\", \"content_html\": \"<p>One</p><p>two</p>\"}]}",
                "{\"items\": [{\"title\": \" Hello \", \"content_html\": \"\\n<p>One</p>\\n<p>two</p>\\n\"}]}",
            ),
        ];
        for (compact, indented) in pairs {
            let (a, b) = (one(compact), one(indented));
            assert!(a.identity.starts_with("sha256:"), "{a:?}");
            assert_eq!(a.identity, b.identity, "{a:?}\n{b:?}");
            assert_eq!(a.identity, one(compact).identity, "parsed twice");
        }
        // Different texts stay different.
        let other = one("<rss version=\"2.0\"><channel><title>t</title><item><title>Hello</title><description>One two four</description></item></channel></rss>");
        assert_ne!(other.identity, one(pairs[0].0).identity);
    }

    #[test]
    fn texts_of_many_references_cost_what_their_size_does() {
        use super::cost::assert_scales_linearly;
        // html5ever's serializer looks for the next `<` or `>` after every `&` and every
        // character of U+0080..U+00BF it writes: in a text (or an attribute value) without
        // them, each look went to its end.
        let rss = |inner: String| {
            format!("<rss version=\"2.0\"><channel><title>t</title><item><guid>1</guid>{inner}</item></channel></rss>")
        };
        let cases: [(&str, &dyn Fn(usize) -> String); 7] = [
            ("&amp; in HTML", &|n| {
                rss(format!("<description>{}</description>", "&amp;".repeat(n)))
            }),
            ("bare & in HTML", &|n| {
                rss(format!("<description>{}</description>", "&".repeat(n)))
            }),
            ("unknown references in HTML", &|n| {
                rss(format!("<description>{}</description>", "&xx;".repeat(n)))
            }),
            ("Latin-1 signs in HTML", &|n| {
                rss(format!(
                    "<description>&lt;span&gt;x&lt;/span&gt;{}</description>",
                    "©".repeat(n)
                ))
            }),
            ("& in an attribute value", &|n| {
                rss(format!(
                    "<description>&lt;abbr title=\"{}\"&gt;x&lt;/abbr&gt;</description>",
                    "&amp;amp;".repeat(n)
                ))
            }),
            ("& in a title marked as HTML", &|n| {
                format!(
                    "<feed xmlns=\"http://www.w3.org/2005/Atom\"><entry><id>1</id><title type=\"html\">{}</title></entry></feed>",
                    "&amp;amp;".repeat(n)
                )
            }),
            ("& in JSON content_html", &|n| {
                format!(
                    "{{\"items\": [{{\"id\": \"1\", \"content_html\": \"{}\"}}]}}",
                    "&".repeat(n)
                )
            }),
        ];
        for (what, document) in cases {
            assert_scales_linearly(what, document, 10_000, None);
        }
        // The text is all there.
        let n = 10_000;
        let entry = one(&rss(format!(
            "<description>a{}b</description>",
            "&amp;".repeat(n)
        )));
        assert_eq!(
            entry.html().unwrap_or_default(),
            format!("a{}b", "&amp;".repeat(n))
        );
        let entry = one(&rss(format!(
            "<description>&lt;span&gt;{}&lt;/span&gt;</description>",
            "&amp;&#169;&xx;".repeat(n)
        )));
        assert_eq!(
            entry.html().unwrap_or_default(),
            format!("<span>{}</span>", "&amp;©&amp;xx;".repeat(n))
        );
    }

    #[test]
    fn namespace_errors_name_their_place_in_the_document() {
        let declarations: String = (0..200)
            .map(|i| format!(" xmlns:a{i}=\"urn:{i}\""))
            .collect();
        let cases = [
            (
                format!("<rss version=\"2.0\">\n<channel>\n<item{declarations}><guid>1</guid></item></channel></rss>"),
                "line 3",
                "more than 128 namespaces",
            ),
            (
                format!("<rss version=\"2.0\">\n<channel>\n{}</channel></rss>", "<x>".repeat(70_000)),
                "line 3",
                "nested more than",
            ),
            (
                "<rss version=\"2.0\">\n<channel>\n<item xmlns:xml=\"urn:not-xml\"><guid>1</guid></item></channel></rss>".to_string(),
                "line 3",
                "'xml'",
            ),
        ];
        for (document, place, what) in cases {
            let err = parse_feed(document.as_bytes(), None, &url())
                .expect_err("not readable")
                .to_string();
            assert!(
                err.contains(place) && err.contains(what) && !err.contains("NamespaceResolver"),
                "{err}"
            );
        }
    }

    #[test]
    fn errors_after_a_lone_angle_name_the_column_as_written() {
        // `a < b` is read as `a &lt; b`: the column is still the document's.
        for (document, column) in [
            (
                "<rss version=\"2.0\"><channel><title>a < b < c < d</title><item><title>x</titel>",
                79,
            ),
            (
                "<rss version=\"2.0\"><channel><title>a b c d</title><item><title>x</titel>",
                73,
            ),
            (
                "<rss>\n<title>1 < 2</title>\n<item><title>x < y</title><guid>é</gui",
                34,
            ),
        ] {
            let err = parse_feed(document.as_bytes(), None, &url()).expect_err("malformed");
            assert!(
                matches!(err, crate::parse::ParseError::Xml { column: c, .. } if c == column),
                "{document}: {err}"
            );
        }
    }

    #[test]
    fn an_html_page_of_many_feed_links_costs_its_size() {
        // Each link was compared with every one kept before it.
        let page = |n: usize| {
            format!(
                "<!DOCTYPE html><html><head>{}</head></html>",
                (0..n)
                    .map(|i| format!("<link rel=alternate type=application/rss+xml href=/f{i}>"))
                    .collect::<String>()
            )
        };
        super::cost::assert_scales_linearly("feed links", page, 5000, Some("text/html"));
        let Err(crate::parse::ParseError::HtmlPage { links }) =
            parse_feed(page(100).as_bytes(), Some("text/html"), &url())
        else {
            panic!("an HTML page");
        };
        assert_eq!(links[0].as_str(), "https://news.example/f0");
    }
}
