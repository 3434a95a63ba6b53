//! RSS 2.0 through the `rss` crate, for the documents it reads exactly as feed-rs does.
//!
//! feed-rs reads every format; for the commonest one, plain RSS 2.0, the `rss` crate does the
//! same work in a third of the time (a parse was about a tenth of a cold refresh). The two
//! differ in corners: feed-rs keeps every `<link>` of an item and the `rss` crate the last,
//! feed-rs keeps `<content:encoded>` untrimmed, reads `<comments>` as a link, resolves a
//! blank `<link>` to the feed's URL, knows the MediaRSS, iTunes and Podcast namespaces, and
//! so on. So [`Shape`] watches the XML check's pass over the document and says whether it
//! stays clear of every such corner; only then does [`read`] use the `rss` crate, and it
//! gives back nothing (feed-rs then reads the document) if the `rss` crate refuses it.
//! Either way an entry comes out the same: `tests::both_parsers_agree` holds them to it.

use quick_xml::events::{BytesRef, BytesStart};
use url::Url;

use super::{http_url, FeedHead, RawEntry, RawText};
use crate::dates;

/// The namespaces feed-rs gives a meaning to (its `NS`); any other is ignored by both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Namespace {
    Rss,
    Atom,
    Content,
    DublinCore,
    MediaRss,
    Itunes,
    Podcast,
    CommentApi,
    Other,
}

impl Namespace {
    fn of(uri: &str) -> Namespace {
        match uri {
            "http://purl.org/rss/1.0/" => Namespace::Rss,
            "http://www.w3.org/2005/Atom" => Namespace::Atom,
            "http://purl.org/rss/1.0/modules/content/" => Namespace::Content,
            "http://purl.org/dc/elements/1.1/" => Namespace::DublinCore,
            "http://search.yahoo.com/mrss/" => Namespace::MediaRss,
            "http://www.itunes.com/dtds/podcast-1.0.dtd" => Namespace::Itunes,
            "https://podcastindex.org/namespace/1.0" => Namespace::Podcast,
            "http://wellformedweb.org/CommentAPI/" => Namespace::CommentApi,
            _ => Namespace::Other,
        }
    }
}

/// An element whose text is watched, and what about that text matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watched {
    /// A `<link>`: feed-rs resolves it untrimmed, and a blank one to the feed's URL.
    Link,
    /// `<ttl>`: feed-rs parses it untrimmed.
    Ttl,
    /// `<content:encoded>`: feed-rs keeps it untrimmed.
    Content,
    /// `<author>`, `<dc:creator>`: feed-rs reads "name (email)" forms.
    Person,
    /// Any other: only that it has no child elements.
    Text,
}

/// The text of the watched element: its first and last characters, and whether it has an
/// `@`. What feed-rs and the `rss` crate both read is the coalesced text, references
/// resolved.
#[derive(Debug)]
struct Seen {
    first: Option<char>,
    last: Option<char>,
    /// The first and last characters that are not ASCII whitespace.
    first_solid: Option<char>,
    last_solid: Option<char>,
    all_whitespace: bool,
    at_sign: bool,
}

impl Default for Seen {
    fn default() -> Seen {
        Seen {
            first: None,
            last: None,
            first_solid: None,
            last_solid: None,
            all_whitespace: true,
            at_sign: false,
        }
    }
}

impl Seen {
    fn add(&mut self, piece: &str) {
        let mut chars = piece.chars();
        if let Some(first) = chars.next() {
            self.first.get_or_insert(first);
            self.last = Some(chars.next_back().unwrap_or(first));
        }
        let solid = piece.trim_matches(|c: char| c.is_ascii_whitespace());
        let mut chars = solid.chars();
        if let Some(first) = chars.next() {
            self.first_solid.get_or_insert(first);
            self.last_solid = Some(chars.next_back().unwrap_or(first));
        }
        if self.all_whitespace {
            self.all_whitespace = piece.chars().all(char::is_whitespace);
        }
        self.at_sign |= piece.contains('@');
    }

    /// Whether there is text and all of it is whitespace.
    fn blank(&self) -> bool {
        self.first.is_some() && self.all_whitespace
    }

    /// Whether the text neither starts nor ends with whitespace.
    fn trimmed(&self) -> bool {
        [self.first, self.last]
            .into_iter()
            .flatten()
            .all(|c| !c.is_whitespace())
    }

    /// Whether the text, once rid of ASCII whitespace at its ends (what a URL parser
    /// strips), neither starts nor ends with whitespace.
    fn trimmed_but_ascii(&self) -> bool {
        [self.first_solid, self.last_solid]
            .into_iter()
            .flatten()
            .all(|c| !c.is_whitespace())
    }
}

/// How many of each one-only element the current item has.
#[derive(Debug, Default)]
struct ItemCounts {
    title: u8,
    link: u8,
    description: u8,
    guid: u8,
    date: u8,
    content: u8,
    author: u8,
    creator: u8,
}

/// Says whether a document, seen event by event, is plain RSS 2.0 (see the module doc).
/// Depths: 0 is `<rss>`, 1 `<channel>`, 2 its children, 3 an item's children.
#[derive(Debug)]
pub(super) struct Shape {
    plain: bool,
    channels: u8,
    /// The namespaces the root declares, by prefix.
    prefixes: Vec<(String, Namespace)>,
    /// `<title>`, `<link>`, `<ttl>` of the channel.
    channel_counts: [u8; 3],
    in_item: bool,
    item: ItemCounts,
    /// The element whose text is watched, its depth, and its text so far.
    watched: Option<(Watched, usize, Seen)>,
}

impl Default for Shape {
    fn default() -> Shape {
        Shape {
            plain: true,
            channels: 0,
            prefixes: Vec::new(),
            channel_counts: [0; 3],
            in_item: false,
            item: ItemCounts::default(),
            watched: None,
        }
    }
}

impl Shape {
    /// Whether the document was plain RSS 2.0 to its end.
    pub(super) fn plain(&self) -> bool {
        self.plain && self.channels == 1
    }

    /// An element starts at `depth` (an empty one is a start and an end).
    pub(super) fn start(&mut self, depth: usize, start: &BytesStart) {
        if self.plain {
            self.plain = self.element_is_plain(depth, start);
        }
    }

    fn element_is_plain(&mut self, depth: usize, start: &BytesStart) -> bool {
        if self.watched.is_some() {
            // The watched elements hold text only.
            return false;
        }
        let name = start.name().0;
        for attribute in start.attributes() {
            let Ok(attribute) = attribute else {
                return false;
            };
            let key = attribute.key.0;
            if key == "xml:base" || key == "xmlns" {
                return false;
            }
            if let Some(prefix) = key.strip_prefix("xmlns:") {
                let uri = attribute.value.as_ref();
                let namespace = Namespace::of(uri);
                // The `rss` crate takes `content:encoded` by its prefix alone.
                let content_elsewhere = prefix == "content" && namespace != Namespace::Content;
                if depth != 0 || uri.contains('&') || content_elsewhere {
                    return false;
                }
                self.prefixes.push((prefix.to_string(), namespace));
            }
        }
        let (namespace, local) = match name.split_once(':') {
            None => (Namespace::Rss, name),
            Some((prefix, local)) => {
                match self.prefixes.iter().find(|(p, _)| p == prefix) {
                    // Only prefixes other than RSS's own keep the default namespace apart.
                    Some((_, Namespace::Rss)) | None => return false,
                    Some((_, namespace)) => (*namespace, local),
                }
            }
        };
        let prefixed = name.contains(':');
        match depth {
            0 => {
                name == "rss"
                    && start
                        .attributes()
                        .flatten()
                        .any(|a| a.key.0 == "version" && a.value == "2.0")
            }
            1 => {
                self.channels += 1;
                name == "channel" && self.channels == 1
            }
            2 => match (prefixed, namespace, local) {
                (false, _, "item") => {
                    self.in_item = true;
                    self.item = ItemCounts::default();
                    true
                }
                (false, _, "title") => {
                    self.watch(Watched::Text, depth, |c| &mut c.channel_counts[0])
                }
                (false, _, "link") => {
                    self.watch(Watched::Link, depth, |c| &mut c.channel_counts[1])
                }
                (false, _, "ttl") => self.watch(Watched::Ttl, depth, |c| &mut c.channel_counts[2]),
                (false, _, _) => true,
                // feed-rs takes an atom:link of the channel as a candidate for the site's
                // link, "alternate" when it has no rel; the `rss` crate keeps none apart.
                (true, Namespace::Atom, "link") => {
                    let attributes: Vec<_> = start.attributes().flatten().collect();
                    let value =
                        |key: &str| attributes.iter().find(|a| a.key.0 == key).map(|a| &a.value);
                    // Nor do they read a value the same way if it has references or
                    // whitespace (the `rss` crate normalizes it).
                    let simple = |v: &str| !v.contains(|c: char| c == '&' || c.is_whitespace());
                    value("rel").is_some_and(|rel| rel != "alternate" && simple(rel))
                        && value("href").is_some_and(|href| simple(href))
                }
                (true, Namespace::Itunes | Namespace::Podcast | Namespace::MediaRss, _) => false,
                (true, _, _) => true,
            },
            3 if self.in_item => match (prefixed, namespace, local) {
                (false, _, "title") => self.watch(Watched::Text, depth, |c| &mut c.item.title),
                (false, _, "link") => self.watch(Watched::Link, depth, |c| &mut c.item.link),
                (false, _, "description") => {
                    self.watch(Watched::Text, depth, |c| &mut c.item.description)
                }
                (false, _, "guid") => self.watch(Watched::Text, depth, |c| &mut c.item.guid),
                (false, _, "pubDate") | (true, Namespace::DublinCore, "date") => {
                    self.watch(Watched::Text, depth, |c| &mut c.item.date)
                }
                (false, _, "author") => self.watch(Watched::Person, depth, |c| &mut c.item.author),
                (true, Namespace::DublinCore, "creator") => {
                    self.item.creator = self.item.creator.saturating_add(1);
                    self.watched = Some((Watched::Person, depth, Seen::default()));
                    true
                }
                (true, Namespace::Content, "encoded") => {
                    self.watch(Watched::Content, depth, |c| &mut c.item.content)
                }
                (false, _, "comments" | "updated") => false,
                (false, _, _) => {
                    self.watched = Some((Watched::Text, depth, Seen::default()));
                    true
                }
                (true, Namespace::Content | Namespace::DublinCore | Namespace::Other, _) => {
                    self.watched = Some((Watched::Text, depth, Seen::default()));
                    true
                }
                (true, _, _) => false,
            },
            // Below a channel element that is not an item (an image's url, say).
            _ => !self.in_item,
        }
    }

    /// Counts a one-only element and watches its text.
    fn watch(
        &mut self,
        what: Watched,
        depth: usize,
        count: impl Fn(&mut Shape) -> &mut u8,
    ) -> bool {
        let counter = count(self);
        *counter = counter.saturating_add(1);
        let once = *counter == 1;
        self.watched = Some((what, depth, Seen::default()));
        once
    }

    /// Text or CDATA inside the current element.
    pub(super) fn text(&mut self, text: &str) {
        if let Some((_, _, seen)) = &mut self.watched {
            seen.add(text);
        }
    }

    /// A character or entity reference inside the current element, resolved as both parsers
    /// resolve it (an unknown entity stays as written).
    pub(super) fn reference(&mut self, reference: &BytesRef) {
        let Some((_, _, seen)) = &mut self.watched else {
            return;
        };
        match reference.resolve_char_ref() {
            Ok(Some(c)) => seen.add(c.encode_utf8(&mut [0; 4])),
            Ok(None) => match quick_xml::escape::resolve_predefined_entity(reference) {
                Some(resolved) => seen.add(resolved),
                None => seen.add(&format!("&{};", &**reference)),
            },
            Err(_) => self.plain = false,
        }
    }

    /// The element started at `depth` ends.
    pub(super) fn end(&mut self, depth: usize) {
        if let Some((what, at, seen)) = &self.watched {
            if *at == depth {
                let fine = match what {
                    // Only what a URL parser strips too may surround a link.
                    Watched::Link => seen.trimmed_but_ascii() && !seen.blank(),
                    Watched::Ttl | Watched::Content => seen.trimmed(),
                    Watched::Person => !seen.at_sign,
                    Watched::Text => true,
                };
                self.plain &= fine;
                self.watched = None;
            }
        }
        if depth == 2 && self.in_item {
            self.in_item = false;
            let counts = &self.item;
            let once = [
                counts.title,
                counts.link,
                counts.description,
                counts.guid,
                counts.date,
                counts.content,
                counts.author,
            ];
            // feed-rs keeps authors and creators in document order; the `rss` crate apart.
            self.plain &=
                once.iter().all(|n| *n <= 1) && (counts.author == 0 || counts.creator == 0);
        }
    }
}

/// Reads a plain RSS 2.0 `document` (see [`Shape`]) fetched from `url` with the `rss`
/// crate, as feed-rs would read it; nothing if the `rss` crate refuses it.
pub(super) fn read(document: &[u8], url: &Url) -> Option<(FeedHead, Vec<RawEntry>)> {
    let channel = rss::Channel::read_from(document).ok()?;
    let site_link = link_of(&channel.link, url).or_else(|| {
        // feed-rs falls back to any link of the channel, in document order.
        channel
            .atom_ext
            .iter()
            .flat_map(|atom| &atom.links)
            .find_map(|link| link_of(&link.href, url))
    });
    let head = FeedHead {
        title: Some(plain(channel.title)),
        site_link,
        ttl_minutes: channel.ttl.and_then(|ttl| ttl.parse().ok()),
    };
    let entries = channel
        .items
        .into_iter()
        .map(|item| {
            let dublin_core = item.dublin_core_ext.unwrap_or_default();
            let date = item
                .pub_date
                .or_else(|| dublin_core.dates.into_iter().next());
            let published = date.as_deref().and_then(dates::parse_date);
            RawEntry {
                id: item.guid.map(|guid| guid.value).unwrap_or_default(),
                title: item.title.map(plain),
                link: item.link.as_deref().and_then(|link| link_of(link, url)),
                content_base: None,
                summary: item.description.map(html),
                content: item.content.map(html),
                published,
                // feed-rs: an item without its own update time was updated when published.
                updated: published,
                authors: item
                    .author
                    .into_iter()
                    .chain(dublin_core.creators)
                    .collect(),
                categories: item.categories.into_iter().map(|c| c.name).collect(),
                enclosures: Vec::new(),
            }
        })
        .collect();
    Some((head, entries))
}

fn plain(text: String) -> RawText {
    RawText { text, html: false }
}

fn html(text: String) -> RawText {
    RawText { text, html: true }
}

/// A link as feed-rs resolves it (against `base` when relative, else as written), if it
/// is http(s).
fn link_of(href: &str, base: &Url) -> Option<String> {
    if href.is_empty() {
        return None;
    }
    let resolved = match Url::parse(href) {
        Err(url::ParseError::RelativeUrlWithoutBase) => base.join(href),
        parsed => parsed,
    };
    match resolved {
        // What `http_url` would make of the URL's text, without parsing it again.
        Ok(url) => matches!(url.scheme(), "http" | "https").then(|| url.into()),
        // feed-rs keeps the text as written.
        Err(_) => http_url(href.trim()),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::{check_xml, read_with_feed_rs, read_with_rss, ParsedFeed};
    use super::*;

    fn url() -> Url {
        Url::parse("https://news.example/feeds/rss.xml").expect("valid")
    }

    /// Whether the shape check calls `xml` plain, and what each parser makes of it.
    fn both(xml: &str) -> (bool, Result<ParsedFeed, String>, Option<ParsedFeed>) {
        let checked = check_xml(xml.as_bytes(), &url()).expect("well-formed");
        let by_feed_rs = read_with_feed_rs(&checked.document, &checked.entry_bases, &url())
            .map_err(|e| e.to_string());
        let by_rss = read_with_rss(&checked.document, &url());
        (checked.plain_rss, by_feed_rs, by_rss)
    }

    fn rss(items: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:atom="http://www.w3.org/2005/Atom">
<channel><title> The &amp; Daily </title><link>/</link><ttl>60</ttl>
<atom:link rel="self" href="https://news.example/feeds/rss.xml"/>
{items}</channel></rss>"#
        )
    }

    #[test]
    fn a_plain_feed_reads_the_same_either_way() {
        let xml = rss(r#"
<item><title>One &lt;b&gt;bold&lt;/b&gt; &#8212; <![CDATA[and <i>more</i>]]></title>
  <link> /2026/one.html </link><guid isPermaLink="false"> urn:one </guid>
  <pubDate>Fri, 27 Nov 2026 10:00:00 +0100</pubDate>
  <description><![CDATA[<p onclick="x()">Body <a href="rel/x">link</a></p><script>1</script>]]></description>
  <content:encoded>&lt;p&gt;Full &lt;img src="i.png"&gt;&lt;/p&gt;</content:encoded>
  <category> World </category><category>Politics</category><category/>
  <dc:creator>Ann Writer</dc:creator><dc:creator> Bo </dc:creator>
  <enclosure url="https://news.example/a.mp3" length="1" type="audio/mpeg"/>
  <source url="https://other.example/rss">Other</source><x-unknown>ignored</x-unknown>
</item>
<item><title>No guid</title><link>https://news.example/two</link><dc:date>2026-11-27T09:00:00Z</dc:date><author>Cy Reporter</author></item>
<item><title>Neither guid nor link</title><description>Plain body</description></item>
<item><guid>urn:one</guid><title>Same guid again</title></item>
<item><title>Relative nothing</title><link>mailto:desk@news.example</link></item>"#);
        let (plain, by_feed_rs, by_rss) = both(&xml);
        assert!(plain, "the shape check refused a plain feed");
        let by_feed_rs = by_feed_rs.expect("feed-rs reads it");
        assert_eq!(by_rss.as_ref(), Some(&by_feed_rs));
        assert_eq!(by_feed_rs.entries.len(), 4, "{by_feed_rs:#?}");
        assert_eq!(
            by_feed_rs.entries[0].link.as_deref(),
            Some("https://news.example/2026/one.html")
        );
        assert_eq!(
            by_feed_rs.site_link.as_deref(),
            Some("https://news.example/")
        );
    }

    #[test]
    fn the_demo_feed_is_plain_and_reads_the_same_either_way() {
        let demo = include_str!("../../config/demo/imdaily.rss");
        let (plain, by_feed_rs, by_rss) = both(demo);
        assert!(plain, "the demo feed is plain RSS 2.0");
        let by_feed_rs = by_feed_rs.expect("feed-rs reads it");
        assert!(!by_feed_rs.entries.is_empty());
        assert_eq!(by_rss, Some(by_feed_rs));
    }

    #[test]
    fn documents_the_rss_crate_reads_differently_are_left_to_feed_rs() {
        let corners = [
            // Two links: feed-rs keeps the first http(s) one, the rss crate the last.
            rss("<item><guid>a</guid><link>https://x.example/1</link><link>https://x.example/2</link></item>"),
            // A blank link is the feed's own URL to feed-rs, nothing to the rss crate.
            rss("<item><guid>a</guid><link> </link></item>"),
            // feed-rs keeps content untrimmed.
            rss("<item><guid>a</guid><content:encoded> <![CDATA[<p>x</p>]]> </content:encoded></item>"),
            // feed-rs takes comments as the link when there is none.
            rss("<item><guid>a</guid><comments>https://x.example/c</comments></item>"),
            // Unescaped markup: feed-rs reads the text before the first child only.
            rss("<item><guid>a</guid><description>Hello <b>world</b> again</description></item>"),
            // "Name (email)": feed-rs keeps the name.
            rss("<item><guid>a</guid><author>desk@x.example (The Desk)</author></item>"),
            // An untrimmed ttl is no ttl to feed-rs.
            rss("<item><guid>a</guid></item>").replace("<ttl>60</ttl>", "<ttl> 60 </ttl>"),
            // An atom:link without rel is "alternate" to feed-rs.
            rss("").replace(r#"<atom:link rel="self" "#, "<atom:link ").replace("<link>/</link>", ""),
            // Authors and creators mixed: feed-rs keeps document order.
            rss("<item><guid>a</guid><dc:creator>B</dc:creator><author>A</author></item>"),
        ];
        let mut differing = 0;
        for xml in &corners {
            let (plain, by_feed_rs, by_rss) = both(xml);
            assert!(!plain, "taken as plain:\n{xml}");
            if by_rss != by_feed_rs.ok() {
                differing += 1;
            }
        }
        // Most corners are real differences, so the shape check is what keeps them apart.
        assert!(
            differing >= corners.len() - 2,
            "only {differing} corners differ"
        );
        let others = [
            r#"<rss version="0.91"><channel><title>t</title></channel></rss>"#,
            r#"<rss version="2.0" xml:base="https://b.example/"><channel><title>t</title></channel></rss>"#,
            r#"<rss version="2.0"><channel><item xmlns:m="http://search.yahoo.com/mrss/"><m:title>t</m:title></item></channel></rss>"#,
            r#"<rss version="2.0"><channel><title>a</title></channel><channel><title>b</title></channel></rss>"#,
            r#"<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title></feed>"#,
        ];
        for xml in others {
            let checked = check_xml(xml.as_bytes(), &url()).expect("well-formed");
            assert!(!checked.plain_rss, "taken as plain:\n{xml}");
        }
    }

    /// Pieces of item text, from tame to hostile.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just(" ".to_string()),
            Just("\n  ".to_string()),
            Just("\u{a0}".to_string()),
            "[a-zA-Z0-9 ]{1,12}",
            Just("&amp;".to_string()),
            Just("&#32;".to_string()),
            Just("&#xA0;".to_string()),
            Just("&nbsp;".to_string()),
            Just("&lt;p&gt;".to_string()),
            Just("<![CDATA[ <b>x</b> ]]>".to_string()),
            Just("a@b.example".to_string()),
            Just("https://x.example/p?q=1&amp;r=2".to_string()),
            Just("/rel/path".to_string()),
            Just("Fri, 27 Nov 2026 10:00:00 GMT".to_string()),
            Just("<!-- c -->".to_string()),
            Just("x\r\ny\t".to_string()),
            Just("&#13;&#10;".to_string()),
            Just("日报（编辑部）".to_string()),
        ]
    }

    fn element() -> impl Strategy<Value = String> {
        let names = prop_oneof![
            Just("title"),
            Just("link"),
            Just("description"),
            Just("guid"),
            Just("pubDate"),
            Just("author"),
            Just("category"),
            Just("comments"),
            Just("content:encoded"),
            Just("dc:creator"),
            Just("dc:date"),
            Just("x-other"),
        ];
        let attributes = prop_oneof![
            Just(""),
            Just(r#" isPermaLink="false""#),
            Just(r#" domain="d&amp;x""#),
            Just(r#" xml:lang="zh""#),
        ];
        (
            names,
            attributes,
            prop::collection::vec(text(), 0..4),
            any::<bool>(),
        )
            .prop_map(|(name, attributes, pieces, empty)| {
                if empty && pieces.is_empty() {
                    format!("<{name}{attributes}/>")
                } else {
                    format!("<{name}{attributes}>{}</{name}>", pieces.concat())
                }
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn whenever_the_shape_check_says_plain_both_parsers_agree(
            items in prop::collection::vec(prop::collection::vec(element(), 0..7), 0..4),
            channel_link in text(),
        ) {
            let items: String = items
                .iter()
                .map(|elements| format!("<item>{}</item>\n", elements.concat()))
                .collect();
            let xml = rss(&items).replace("<link>/</link>", &format!("<link>{channel_link}</link>"));
            let (plain, by_feed_rs, by_rss) = both(&xml);
            // The rss crate may still refuse a document (feed-rs then reads it).
            if let (true, Some(by_rss)) = (plain, by_rss) {
                prop_assert_eq!(Some(by_rss), by_feed_rs.ok(), "{}", xml);
            }
        }
    }
}
