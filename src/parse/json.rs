//! JSON Feed 1.0 and 1.1, and the documents that pass for them, read as feedparser reads
//! them: any JSON object with an `items` array is a feed, whatever its `version` says (the
//! version URL, a bare `"1.1"`, nothing) and with or without a `title`.
//!
//! Every field is read on its own and a bad one (a number where a string belongs, a `null`,
//! an array where an object belongs) is lost alone: never the item, never the feed. Fields
//! nobody reads are skipped without being built, and items after the first
//! [`MAX_ENTRIES`] are only scanned: a document costs its size, whatever it holds.
//!
//! Where this reader differs from feedparser's (its `parsers/json.py`, which the released
//! 6.0.x does not have yet), on purpose:
//! - `content_html` is the content when there is one; feedparser prefers `content_text`.
//!   Both say the same by the spec, and the HTML keeps its links.
//! - `date_modified` is the updated time; feedparser looks for `date_updated` (a typo) and
//!   never has one.
//! - The authors of an item (`authors`, else `author`, else the feed's first four) are kept,
//!   at most [`MAX_PER_ENTRY`]; feedparser reads an item's `author` and drops it.
//! - An item without an `id` has none (its link, else its text, is its identity); feedparser
//!   gives every such item the id `"null"`, the same one. A `true`/`false` id is not one.
//! - URLs are resolved against the feed's URL; feedparser leaves them as written.
//! - The item's `image` is kept as a media file after its `attachments` (as Media RSS
//!   thumbnails are); feedparser drops it.
//! - Text fields are repaired as feedparser repairs XML text ([`encoding::repair_text`]: C1
//!   controls and UTF-8 decoded twice), which its JSON reader does not do.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use url::Url;

use super::xml::MAX_PER_ENTRY;
use super::{dates, encoding};
use super::{http_url, FeedHead, ParseError, RawEnclosure, RawEntry, RawText, MAX_ENTRIES};

/// Reads a JSON Feed (in UTF-8) fetched from `url`.
pub(super) fn read(body: &[u8], url: &Url) -> Result<(FeedHead, Vec<RawEntry>), ParseError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let document = TopLevel::deserialize(&mut deserializer)
        .and_then(|top| deserializer.end().map(|()| top))
        .map_err(json_error)?;
    let document = match document {
        TopLevel::Object(document) => document,
        TopLevel::Other(kind) => {
            return Err(ParseError::NotAFeed(format!(
                "the JSON document is {kind}, not a JSON Feed object; check that the source's URL is the feed's"
            )))
        }
    };
    let (items, others) = match document.items {
        Items::Missing => {
            return Err(ParseError::NotAFeed(
                "JSON without an \"items\" array, so not a JSON Feed; check that the source's URL is the feed's"
                    .to_string(),
            ))
        }
        Items::Other(kind) => {
            return Err(ParseError::NotAFeed(format!(
                "the JSON Feed's \"items\" is {kind}, not an array of items"
            )))
        }
        Items::Array { items, others } => (items, others),
    };
    if let (true, Some(first)) = (items.is_empty(), others.first) {
        return Err(ParseError::NotAFeed(format!(
            "none of the JSON Feed's {} items is an object (the first is {first})",
            others.count
        )));
    }
    // Every item without authors of its own has the feed's: a few of them, or a feed of
    // many authors and many items would cost their product.
    let mut feed_authors = authors(&document.authors, &document.author);
    feed_authors.truncate(MAX_INHERITED_AUTHORS);
    let head = FeedHead {
        title: text(&document.title, false),
        site_link: link(&document.home_page_url, url),
        ttl_minutes: None,
    };
    let entries = items
        .iter()
        .map(|item| entry(item, url, &feed_authors))
        .collect();
    Ok((head, entries))
}

/// The most of the feed's authors that an item without its own is given.
const MAX_INHERITED_AUTHORS: usize = 4;

/// A serde_json error as a user reads it: where, and what.
fn json_error(err: serde_json::Error) -> ParseError {
    let message = if err.is_eof() {
        "the document ends before its JSON is closed (truncated?)".to_string()
    } else {
        let full = err.to_string();
        // serde_json appends " at line L column C", which we say first.
        let suffix = format!(" at line {} column {}", err.line(), err.column());
        full.strip_suffix(&suffix).unwrap_or(&full).to_string()
    };
    ParseError::NotAFeed(format!(
        "JSON error at line {}, column {}: {message}",
        err.line(),
        err.column()
    ))
}

/// One item as a [`RawEntry`].
fn entry(item: &Item, url: &Url, feed_authors: &[String]) -> RawEntry {
    let content = text(&item.content_html, true).or_else(|| text(&item.content_text, false));
    let mut authors = authors(&item.authors, &item.author);
    if authors.is_empty() {
        authors = feed_authors.to_vec();
    }
    let attachments = match &item.attachments {
        Value::Array(attachments) => attachments.iter().collect(),
        one @ Value::Object(_) => vec![one],
        _ => Vec::new(),
    };
    let mut enclosures: Vec<RawEnclosure> = attachments
        .into_iter()
        .filter_map(|attachment| {
            Some(RawEnclosure {
                url: resolve(string(attachment.get("url")?)?, url)?,
                mime_type: string(attachment.get("mime_type").unwrap_or(&Value::Null))
                    .map(str::to_string),
                length: attachment.get("size_in_bytes").and_then(size),
            })
        })
        .collect();
    if let Some(image) = string(&item.image).and_then(|image| resolve(image, url)) {
        enclosures.push(RawEnclosure {
            url: image,
            mime_type: None,
            length: None,
        });
    }
    RawEntry {
        id: id(&item.id),
        title: text(&item.title, false),
        link: link(&item.url, url),
        content_base: None,
        summary: text(&item.summary, false),
        content,
        published: string(&item.date_published).and_then(dates::parse_date),
        updated: string(&item.date_modified).and_then(dates::parse_date),
        authors,
        categories: tags(&item.tags),
        enclosures,
    }
}

/// A string field, trimmed; nothing when it is not a string or blank.
fn string(value: &Value) -> Option<&str> {
    match value {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim()),
        _ => None,
    }
}

/// A text field, repaired ([`encoding::repair_text`]); `html` says the format marks it as
/// HTML (`content_html`). Plain text that looks like HTML is read as HTML later, as in XML.
fn text(value: &Value, html: bool) -> Option<RawText> {
    let Value::String(text) = value else {
        return None;
    };
    (!text.trim().is_empty()).then(|| RawText {
        text: encoding::repair_text(text).into_owned(),
        html,
    })
}

/// The id: a string, or a number as JSON Feed says to read one (as a string). Anything else
/// (a `null`, `true`, an object) is no id, and the entry's link or text identify it.
fn id(value: &Value) -> String {
    match value {
        Value::String(id) => id.trim().to_string(),
        Value::Number(number) => number.to_string(),
        _ => String::new(),
    }
}

/// A URL field resolved against the feed's URL: http(s) only.
fn link(value: &Value, url: &Url) -> Option<String> {
    resolve(string(value)?, url)
}

/// `href` resolved against `base`, when it is http(s).
fn resolve(href: &str, base: &Url) -> Option<String> {
    http_url(base.join(href).ok()?.as_str())
}

/// `size_in_bytes`: a whole number of bytes (or the digits of one, as a string).
fn size(value: &Value) -> Option<String> {
    match value {
        Value::Number(number) => number
            .as_u64()
            .or_else(|| {
                number
                    .as_f64()
                    .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < u64::MAX as f64)
                    .map(|f| f as u64)
            })
            .map(|n| n.to_string()),
        Value::String(digits) => Some(digits.trim().to_string()),
        _ => None,
    }
}

/// Author names: JSON Feed 1.1's `authors` (objects with a `name`), else 1.0's `author`
/// (an object; an array of them or a bare name string are read too).
fn authors(authors: &Value, author: &Value) -> Vec<String> {
    let name = |person: &Value| match person {
        Value::Object(person) => person
            .get("name")
            .and_then(|name| text(name, false))
            .map(|t| t.text),
        Value::String(_) => text(person, false).map(|t| t.text),
        _ => None,
    };
    let names = |value: &Value| -> Vec<String> {
        match value {
            Value::Array(people) => people.iter().filter_map(name).take(MAX_PER_ENTRY).collect(),
            person => name(person).into_iter().collect(),
        }
    };
    let from_authors = names(authors);
    if from_authors.is_empty() {
        names(author)
    } else {
        from_authors
    }
}

/// `tags`: the strings of an array (a lone string is one tag).
fn tags(value: &Value) -> Vec<String> {
    let tag = |tag: &Value| text(tag, false).map(|t| t.text);
    match value {
        Value::Array(tags) => tags.iter().filter_map(tag).take(MAX_PER_ENTRY).collect(),
        one => tag(one).into_iter().collect(),
    }
}

/// The JSON document: a feed object, or something else (`kind` says what, for the error).
enum TopLevel {
    Object(Document),
    Other(&'static str),
}

/// The fields of a JSON Feed object that we read.
#[derive(Default)]
struct Document {
    title: Value,
    home_page_url: Value,
    author: Value,
    authors: Value,
    items: Items,
}

/// The `items` of a feed object.
#[derive(Default)]
enum Items {
    /// No `items` key.
    #[default]
    Missing,
    /// `items` is not an array: `kind` says what it is.
    Other(&'static str),
    /// The object items (at most [`MAX_ENTRIES`]), and what each item that is not an
    /// object is.
    Array { items: Vec<Item>, others: Others },
}

/// The elements of `items` that are not objects: how many, and what the first one is.
#[derive(Default)]
struct Others {
    count: usize,
    first: Option<&'static str>,
}

/// The fields of an item that we read; each as JSON, read by the functions above.
#[derive(Default)]
struct Item {
    id: Value,
    url: Value,
    title: Value,
    content_html: Value,
    content_text: Value,
    summary: Value,
    image: Value,
    date_published: Value,
    date_modified: Value,
    author: Value,
    authors: Value,
    tags: Value,
    attachments: Value,
}

/// What a JSON value that is not an object is, for error messages.
struct Kind(&'static str);

/// Says what kind of value each `visit_*` of a visitor sees, for values that are not the
/// object the visitor wants: `$on_other` turns the kind into the visitor's value, and
/// arrays are drained unread.
macro_rules! other_kinds {
    ($on_other:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($on_other(Kind("true or false")))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($on_other(Kind("a number")))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($on_other(Kind("a number")))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($on_other(Kind("a number")))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($on_other(Kind("a string")))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($on_other(Kind("null")))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($on_other(Kind("null")))
        }
    };
}

/// Drains the rest of a sequence unread.
fn drain<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<(), A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(())
}

impl TopLevel {
    fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<TopLevel, D::Error> {
        struct TopVisitor;
        impl<'de> Visitor<'de> for TopVisitor {
            type Value = TopLevel;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON Feed object")
            }
            other_kinds!(|kind: Kind| TopLevel::Other(kind.0));
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<TopLevel, A::Error> {
                drain(seq)?;
                Ok(TopLevel::Other("an array"))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<TopLevel, A::Error> {
                let mut document = Document::default();
                while let Some(key) = map.next_key::<String>()? {
                    // A key given twice: the last one counts, as in Python's json.
                    match key.as_str() {
                        "title" => document.title = map.next_value_seed(Bounded::FIELD)?,
                        "home_page_url" => {
                            document.home_page_url = map.next_value_seed(Bounded::FIELD)?
                        }
                        "author" => document.author = map.next_value_seed(Bounded::FIELD)?,
                        "authors" => document.authors = map.next_value_seed(Bounded::FIELD)?,
                        "items" => document.items = map.next_value_seed(ItemsSeed)?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(TopLevel::Object(document))
            }
        }
        deserializer.deserialize_any(TopVisitor)
    }
}

/// Reads `items`: at most [`MAX_ENTRIES`] object items, the rest scanned.
struct ItemsSeed;

impl<'de> DeserializeSeed<'de> for ItemsSeed {
    type Value = Items;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Items, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed {
    type Value = Items;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of items")
    }
    other_kinds!(|kind: Kind| Items::Other(kind.0));
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Items, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Items::Other("an object"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Items, A::Error> {
        let (mut items, mut others) = (Vec::new(), Others::default());
        while items.len() < MAX_ENTRIES {
            match seq.next_element_seed(ItemSeed)? {
                Some(Ok(item)) => items.push(item),
                Some(Err(kind)) => {
                    others.count += 1;
                    others.first.get_or_insert(kind.0);
                }
                None => return Ok(Items::Array { items, others }),
            }
        }
        drain(seq)?;
        Ok(Items::Array { items, others })
    }
}

/// Reads one element of `items`: an item, or what it is instead.
struct ItemSeed;

impl<'de> DeserializeSeed<'de> for ItemSeed {
    type Value = Result<Item, Kind>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ItemSeed {
    type Value = Result<Item, Kind>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an item object")
    }
    other_kinds!(Err);
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        drain(seq)?;
        Ok(Err(Kind("an array")))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut item = Item::default();
        while let Some(key) = map.next_key::<String>()? {
            let field = match key.as_str() {
                "id" => &mut item.id,
                "url" => &mut item.url,
                "title" => &mut item.title,
                "content_html" => &mut item.content_html,
                "content_text" => &mut item.content_text,
                "summary" => &mut item.summary,
                "image" => &mut item.image,
                "date_published" => &mut item.date_published,
                "date_modified" => &mut item.date_modified,
                "author" => &mut item.author,
                "authors" => &mut item.authors,
                "tags" => &mut item.tags,
                "attachments" => &mut item.attachments,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *field = map.next_value_seed(Bounded::FIELD)?;
        }
        Ok(Ok(item))
    }
}

/// Reads a field's value as JSON, keeping at most `.0` levels of arrays and objects (what
/// the deepest field needs: `attachments`, an array of objects of scalars) and skipping
/// what is deeper unread, as `null`. A field nested 100,000 deep costs a scan, and loses
/// itself instead of failing the document on serde_json's recursion limit. Of an array,
/// the first [`MAX_PER_ENTRY`] elements are kept; of an object, the members anybody reads
/// ([`MEMBERS`]): a list of a million tags, or an attachment of a million keys, is scanned,
/// not built.
#[derive(Clone, Copy)]
struct Bounded(u8);

impl Bounded {
    /// The nesting every field gets.
    const FIELD: Bounded = Bounded(3);
}

/// The members read of the objects in a field: an author's, an attachment's.
const MEMBERS: [&str; 4] = ["name", "url", "mime_type", "size_in_bytes"];

impl<'de> DeserializeSeed<'de> for Bounded {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Bounded {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }
    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Value, E> {
        Ok(Value::from(n))
    }
    fn visit_str<E: de::Error>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_string()))
    }
    fn visit_string<E: de::Error>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let Some(inner) = self.0.checked_sub(1).map(Bounded) else {
            drain(seq)?;
            return Ok(Value::Null);
        };
        let mut values = Vec::new();
        while values.len() < MAX_PER_ENTRY {
            match seq.next_element_seed(inner)? {
                Some(value) => values.push(value),
                None => return Ok(Value::Array(values)),
            }
        }
        drain(seq)?;
        Ok(Value::Array(values))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let Some(inner) = self.0.checked_sub(1).map(Bounded) else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Value::Null);
        };
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if MEMBERS.contains(&key.as_str()) {
                let value = map.next_value_seed(inner)?;
                object.insert(key, value);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Entry;
    use crate::parse::{parse_feed, ParsedFeed};
    use crate::sanitize;

    fn url() -> Url {
        Url::parse("https://news.example/feeds/feed.json").expect("valid")
    }

    fn parse(json: &str) -> ParsedFeed {
        parse_feed(json.as_bytes(), Some("application/feed+json"), &url()).expect("parses")
    }

    fn error(json: &str) -> String {
        parse_feed(json.as_bytes(), Some("application/feed+json"), &url())
            .expect_err("not a feed")
            .to_string()
    }

    /// One item with `fields` (JSON members, without braces).
    fn one(fields: &str) -> Entry {
        let feed = parse(&format!(
            "{{\"version\": \"1.1\", \"items\": [{{{fields}}}]}}"
        ));
        assert_eq!(feed.entries.len(), 1, "{fields}");
        feed.entries.into_iter().next().expect("one")
    }

    fn text_of(entry: &Entry) -> String {
        sanitize::html_to_text(entry.html().unwrap_or_default())
    }

    #[test]
    fn every_version_and_none_is_read() {
        for version in [
            "\"https://jsonfeed.org/version/1\"",
            "\"https://jsonfeed.org/version/1.1\"",
            "\"http://jsonfeed.org/version/1\"",
            "\"1\"",
            "\"1.0\"",
            "\"1.1\"",
            "1.1",
            "null",
            "\"something else\"",
        ] {
            let feed = parse(&format!(
                "{{\"version\": {version}, \"items\": [{{\"id\": \"1\", \"title\": \"One\"}}]}}"
            ));
            assert_eq!(feed.entries.len(), 1, "{version}");
            assert_eq!(feed.entries[0].title, "One", "{version}");
            assert_eq!(feed.title, None, "no top-level title: {version}");
        }
        let feed = parse("{\"items\": [{\"id\": \"1\", \"title\": \"One\"}]}");
        assert_eq!(feed.entries[0].identity, "1");
    }

    #[test]
    fn the_feed_has_its_title_and_home_page() {
        let feed = parse(
            r#"{"version": "1.1", "title": "Caf&eacute; daily", "home_page_url": "/home", "items": []}"#,
        );
        assert_eq!(feed.title.as_deref(), Some("Café daily"));
        assert_eq!(feed.site_link.as_deref(), Some("https://news.example/home"));
        assert!(feed.entries.is_empty(), "an empty feed is a feed");
        let feed = parse(r#"{"title": 7, "home_page_url": "javascript:alert(1)", "items": []}"#);
        assert_eq!((feed.title, feed.site_link), (None, None));
    }

    #[test]
    fn ids_are_strings_or_numbers() {
        let identity =
            |id: &str| one(&format!("\"id\": {id}, \"url\": \"/p\", \"title\": \"t\"")).identity;
        assert_eq!(identity("\"abc\""), "abc");
        assert_eq!(identity("\"  abc \""), "abc");
        assert_eq!(identity("42"), "42");
        assert_eq!(identity("1.5"), "1.5");
        assert_eq!(identity("-7"), "-7");
        // Not an id: the link identifies the entry.
        for not_an_id in ["null", "true", "false", "{}", "[1]", "\"\"", "\"  \""] {
            assert_eq!(identity(not_an_id), "https://news.example/p", "{not_an_id}");
        }
        // No id and no link: a hash of the text, the same every time.
        let hashed = one("\"title\": \"t\", \"content_text\": \"x\"").identity;
        assert!(hashed.starts_with("sha256:"), "{hashed}");
        assert_eq!(
            hashed,
            one("\"title\": \"t\", \"content_text\": \"x\"").identity
        );
    }

    #[test]
    fn every_field_is_read() {
        let entry = one(
            r#""id": "e1", "url": "/posts/1", "external_url": "https://elsewhere.example/",
               "title": "Title", "summary": "A summary", "content_html": "<p>Body <a href=\"rel\">link</a></p>",
               "image": "/img/1.png", "date_published": "2024-03-01T10:00:00Z",
               "date_modified": "2024-03-02T11:00:00+01:00", "authors": [{"name": "Ann"}, {"name": "Bob", "url": "https://b.example/"}],
               "tags": ["news", "local"],
               "attachments": [{"url": "/a.mp3", "mime_type": "audio/mpeg", "size_in_bytes": 1000}]"#,
        );
        assert_eq!(entry.identity, "e1");
        assert_eq!(entry.title, "Title");
        // The story link is `url`; `external_url` names the thing the story is about.
        assert_eq!(entry.link.as_deref(), Some("https://news.example/posts/1"));
        assert_eq!(entry.summary.as_deref(), Some("A summary"));
        let content = entry.content.as_deref().expect("content");
        assert!(
            content.contains("href=\"https://news.example/feeds/rel\""),
            "{content}"
        );
        assert_eq!(
            entry.published.map(|t| t.to_rfc3339()).as_deref(),
            Some("2024-03-01T10:00:00+00:00")
        );
        assert_eq!(
            entry.updated.map(|t| t.to_rfc3339()).as_deref(),
            Some("2024-03-02T10:00:00+00:00")
        );
        assert_eq!(entry.authors, ["Ann", "Bob"]);
        assert_eq!(entry.categories, ["news", "local"]);
        let enclosures: Vec<_> = entry
            .enclosures
            .iter()
            .map(|e| (e.url.as_str(), e.mime_type.as_deref(), e.length))
            .collect();
        assert_eq!(
            enclosures,
            [
                ("https://news.example/a.mp3", Some("audio/mpeg"), Some(1000)),
                ("https://news.example/img/1.png", None, None),
            ]
        );
    }

    #[test]
    fn content_html_is_the_content_and_content_text_stays_text() {
        let both =
            one(r#""id": "1", "content_html": "<p><b>Bold</b></p>", "content_text": "Bold""#);
        assert_eq!(both.content.as_deref(), Some("<p><b>Bold</b></p>"));
        let text = one(r#""id": "1", "content_text": "1 < 2 & <b>not markup</b>""#);
        assert_eq!(
            text.content.as_deref(),
            Some("1 &lt; 2 &amp; &lt;b&gt;not markup&lt;/b&gt;")
        );
        // A bad content_html loses itself, not the text.
        let bad = one(r#""id": "1", "content_html": {"html": "x"}, "content_text": "Kept""#);
        assert_eq!(bad.content.as_deref(), Some("Kept"));
    }

    #[test]
    fn a_bad_field_loses_the_field_not_the_item() {
        let entry = one(
            r#""id": "1", "url": ["https://x.example/"], "title": 5, "summary": {"a": 1},
               "content_html": null, "content_text": 3, "image": false, "date_published": 20240301,
               "date_modified": "not a date", "author": "Jane", "authors": {"name": "Not an array"},
               "tags": ["a", 5, null, {"t": 1}, "b"],
               "attachments": [{"url": 5}, "x", {"mime_type": "audio/mpeg"}, {"url": "https://m.example/ok.mp3", "mime_type": 7, "size_in_bytes": "big"}]"#,
        );
        assert_eq!(entry.identity, "1");
        assert_eq!(entry.title, "");
        assert_eq!(entry.link, None);
        assert_eq!((entry.summary, entry.content), (None, None));
        assert_eq!((entry.published, entry.updated), (None, None));
        // `authors` as one object is read as the one author it names; then `author` is not.
        assert_eq!(entry.authors, ["Not an array"]);
        assert_eq!(entry.categories, ["a", "b"]);
        assert_eq!(entry.enclosures.len(), 1);
        assert_eq!(entry.enclosures[0].url, "https://m.example/ok.mp3");
        assert_eq!(
            (
                entry.enclosures[0].mime_type.as_deref(),
                entry.enclosures[0].length
            ),
            (None, None)
        );
        // The other items of the feed are untouched by a bad one.
        let feed = parse(
            r#"{"items": [{"id": "1", "title": ["x"]}, {"id": "2", "title": "Fine", "url": "https://ok.example/"}]}"#,
        );
        assert_eq!(feed.entries.len(), 2);
        assert_eq!(feed.entries[1].title, "Fine");
        assert_eq!(feed.entries[1].link.as_deref(), Some("https://ok.example/"));
    }

    #[test]
    fn authors_come_from_the_item_else_the_feed() {
        let feed = parse(
            r#"{"authors": [{"name": "Feed Author"}], "items": [
                {"id": "1", "author": {"name": "Old Style"}},
                {"id": "2", "authors": [{"name": "New"}, {"url": "https://nameless.example/"}, 5]},
                {"id": "3"},
                {"id": "4", "author": [{"name": "In An Array"}]}]}"#,
        );
        let authors: Vec<_> = feed.entries.iter().map(|e| e.authors.clone()).collect();
        assert_eq!(
            authors,
            [
                vec!["Old Style"],
                vec!["New"],
                vec!["Feed Author"],
                vec!["In An Array"]
            ]
        );
        let feed = parse(r#"{"author": {"name": "One Point Oh"}, "items": [{"id": "1"}]}"#);
        assert_eq!(feed.entries[0].authors, ["One Point Oh"]);
    }

    #[test]
    fn attachments_keep_url_type_and_size() {
        let entry = one(r#""id": "1", "attachments": [
                {"url": "https://cdn.example/a.mp3", "mime_type": "audio/mpeg", "size_in_bytes": 12345678},
                {"url": "b.m4a", "mime_type": "audio/mp4", "size_in_bytes": 2.0E3},
                {"url": "https://cdn.example/c.ogg", "mime_type": "audio/ogg", "size_in_bytes": "77"},
                {"url": "javascript:alert(1)", "mime_type": "audio/mpeg"},
                {"url": "https://cdn.example/d.ogg", "size_in_bytes": -5}]"#);
        let enclosures: Vec<_> = entry
            .enclosures
            .iter()
            .map(|e| (e.url.as_str(), e.mime_type.as_deref(), e.length))
            .collect();
        assert_eq!(
            enclosures,
            [
                (
                    "https://cdn.example/a.mp3",
                    Some("audio/mpeg"),
                    Some(12345678)
                ),
                (
                    "https://news.example/feeds/b.m4a",
                    Some("audio/mp4"),
                    Some(2000)
                ),
                ("https://cdn.example/c.ogg", Some("audio/ogg"), Some(77)),
                ("https://cdn.example/d.ogg", None, None),
            ]
        );
        // One attachment object where an array belongs is still that attachment.
        let entry = one(r#""id": "1", "attachments": {"url": "https://cdn.example/one.mp3"}"#);
        assert_eq!(entry.enclosures[0].url, "https://cdn.example/one.mp3");
    }

    #[test]
    fn links_resolve_against_the_feed_url_and_only_http_survives() {
        let link = |href: &str| one(&format!("\"id\": \"1\", \"url\": {href}")).link;
        assert_eq!(
            link("\"../p/1\"").as_deref(),
            Some("https://news.example/p/1")
        );
        assert_eq!(
            link("\" https://other.example/x \"").as_deref(),
            Some("https://other.example/x")
        );
        for bad in [
            "\"javascript:alert(1)\"",
            "\"data:text/html,x\"",
            "\"file:///etc/passwd\"",
            "\"\"",
        ] {
            assert_eq!(link(bad), None, "{bad}");
        }
    }

    #[test]
    fn text_is_repaired_and_titles_are_plain() {
        // Each field on its own, as feedparser repairs them (a field with both stays as is).
        let entry = one(
            r#""id": "1", "title": "<b>Caf\u00c3\u00a9</b> &amp; co", "content_text": "don\u0092t", "authors": [{"name": "Ren\u00c3\u00a9e"}]"#,
        );
        assert_eq!(entry.title, "Café & co");
        assert_eq!(entry.content.as_deref(), Some("don’t"));
        assert_eq!(entry.authors, ["Renée"]);
    }

    #[test]
    fn a_key_given_twice_counts_once_the_last_time() {
        let feed =
            parse(r#"{"items": "no", "items": [{"id": "1", "title": "First", "title": "Last"}]}"#);
        assert_eq!(feed.entries[0].title, "Last");
    }

    #[test]
    fn items_beyond_the_limit_are_only_scanned() {
        let items: Vec<String> = (0..MAX_ENTRIES + 5)
            .map(|i| format!("{{\"id\": \"{i}\", \"title\": \"t{i}\"}}"))
            .collect();
        let feed = parse(&format!(
            "{{\"items\": [\"not an item\", {}]}}",
            items.join(",")
        ));
        assert_eq!(feed.entries.len(), MAX_ENTRIES);
        assert_eq!(
            feed.entries[MAX_ENTRIES - 1].identity,
            (MAX_ENTRIES - 1).to_string()
        );
        // Items after the limit must still be JSON.
        let err = error(&format!(
            "{{\"items\": [{}, {{\"id\": }}]}}",
            items.join(",")
        ));
        assert!(err.contains("JSON error at line 1"), "{err}");
    }

    #[test]
    fn errors_say_what_is_wrong_and_where() {
        let err = error("{\"version\": \"1.1\",\n \"items\": [\n  {\"id\": 1,}\n]}");
        assert!(
            err.starts_with("not a feed: JSON error at line 3, column"),
            "{err}"
        );
        let err = error("{\"version\": \"1.1\", \"items\": [{\"id\": \"1\", \"title\": \"cut");
        assert!(
            err.contains("JSON error at line 1") && err.contains("truncated"),
            "{err}"
        );
        let err = error("{\"items\": []} {\"more\": 1}");
        assert!(err.contains("trailing characters"), "{err}");
        let err = error("[{\"id\": \"1\"}]");
        assert!(err.contains("the JSON document is an array"), "{err}");
        let err = error("{\"version\": \"https://jsonfeed.org/version/1.1\", \"title\": \"x\"}");
        assert!(err.contains("without an \"items\" array"), "{err}");
        let err = error("{\"items\": {\"id\": \"1\"}}");
        assert!(
            err.contains("\"items\" is an object, not an array"),
            "{err}"
        );
        let err = error("{\"items\": \"none\"}");
        assert!(err.contains("\"items\" is a string"), "{err}");
        // Items that yield no entries: an error naming why, not "ok, 0 entries".
        let err = error("{\"items\": [1, \"two\", null, [3]]}");
        assert!(
            err.contains("none of the JSON Feed's 4 items is an object (the first is a number)"),
            "{err}"
        );
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |depth: usize| format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
        // Deep in a field nobody reads, or in one we read: the field is lost, not the feed.
        for field in ["_ext", "title", "attachments", "tags"] {
            for depth in [100, 100_000] {
                let feed = parse(&format!(
                    "{{\"items\": [{{\"id\": \"1\", \"{field}\": {}, \"url\": \"/ok\"}}]}}",
                    nested(depth)
                ));
                assert_eq!(feed.entries.len(), 1, "{field}, {depth}");
                assert_eq!(
                    feed.entries[0].link.as_deref(),
                    Some("https://news.example/ok")
                );
            }
        }
        let feed = parse(&format!(
            "{{\"title\": {}, \"items\": [{{\"id\": \"1\"}}]}}",
            nested(100_000)
        ));
        assert_eq!((feed.title, feed.entries.len()), (None, 1));
        // Items themselves are objects, one level down: an array of arrays is not one.
        let err = error(&format!("{{\"items\": [{}]}}", nested(100_000)));
        assert!(err.contains("the first is an array"), "{err}");
    }

    #[test]
    fn json_in_utf16_reads_the_same() {
        let json = r#"{"version": "1.1", "items": [{"id": "1", "title": "Iñtërnâtiônàlizætiøn"}]}"#;
        let mut utf16 = vec![];
        for unit in json.encode_utf16() {
            utf16.extend(unit.to_be_bytes());
        }
        let feed = parse_feed(&utf16, Some("application/feed+json"), &url()).expect("parses");
        assert_eq!(feed.entries[0].title, "Iñtërnâtiônàlizætiøn");
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend(json.as_bytes());
        let feed = parse_feed(&bom, None, &url()).expect("parses");
        assert_eq!(feed.entries[0].title, "Iñtërnâtiônàlizætiøn");
    }

    /// What feedparser's JSON reader (the development version's `parsers/json.py`; 6.0.14,
    /// the release installed, reads no JSON) gives for each document, taken by hand: a
    /// transcription of its item code run on 6.0.14's date parser and sanitizer. Per entry:
    /// title, link, published (UTC, to the second), content as text, enclosure URLs. Where
    /// we differ on purpose (see the module doc) the documents stay clear of it.
    /// An entry as the comparison sees it: title, link, published, text, enclosure URLs.
    type Summary = (String, Option<String>, Option<String>, String, Vec<String>);

    #[test]
    fn feedparser_reads_these_documents_the_same() {
        type Expected<'a> = (
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            &'a str,
            &'a [&'a str],
        );
        let cases: &[(&str, Option<&str>, &[Expected])] = &[
            (
                r#"{"version": "https://jsonfeed.org/version/1.1", "title": "Daily", "home_page_url": "https://j.example/", "items": [
                 {"id": "1", "url": "https://j.example/1", "title": "One", "content_html": "<p>First <a href=\"https://j.example/x\">post</a></p>", "date_published": "2024-03-01T10:00:00Z"},
                 {"id": "2", "url": "https://j.example/2", "title": "Two", "content_html": "<p>Second</p>", "date_published": "2024-03-02T08:30:00+02:00"}]}"#,
                Some("Daily"),
                &[
                    (
                        "One",
                        Some("https://j.example/1"),
                        Some("2024-03-01T10:00:00Z"),
                        "First post",
                        &[],
                    ),
                    (
                        "Two",
                        Some("https://j.example/2"),
                        Some("2024-03-02T06:30:00Z"),
                        "Second",
                        &[],
                    ),
                ],
            ),
            (
                r#"{"version": "https://jsonfeed.org/version/1", "title": "Old", "items": [
                 {"id": "a", "url": "https://j.example/a", "title": "Alpha", "content_text": "Plain text body.", "date_published": "2023-12-31T23:59:59-05:00", "author": {"name": "Ann"}}]}"#,
                Some("Old"),
                &[(
                    "Alpha",
                    Some("https://j.example/a"),
                    Some("2024-01-01T04:59:59Z"),
                    "Plain text body.",
                    &[],
                )],
            ),
            (
                r#"{"version": "1.1", "items": [{"id": 42, "url": "https://j.example/42", "title": "The answer", "content_text": "Forty-two."}]}"#,
                None,
                &[(
                    "The answer",
                    Some("https://j.example/42"),
                    None,
                    "Forty-two.",
                    &[],
                )],
            ),
            (
                r#"{"version": "1.0", "title": "T", "items": [{"id": "x1", "url": "https://j.example/x1", "title": "Ex", "content_html": "<p>x</p>", "date_published": "2024-01-02"}]}"#,
                Some("T"),
                &[(
                    "Ex",
                    Some("https://j.example/x1"),
                    Some("2024-01-02T00:00:00Z"),
                    "x",
                    &[],
                )],
            ),
            (
                r#"{"items": [{"id": "n1", "url": "https://j.example/n1", "title": "No version", "content_text": "Still a feed."}, {"id": "n2", "title": "No link", "content_text": "Two."}]}"#,
                None,
                &[
                    (
                        "No version",
                        Some("https://j.example/n1"),
                        None,
                        "Still a feed.",
                        &[],
                    ),
                    ("No link", None, None, "Two.", &[]),
                ],
            ),
            (
                r#"{"version": "https://jsonfeed.org/version/1.1", "title": "Pod", "items": [{"id": "ep1", "url": "https://pod.example/1", "title": "Episode 1", "content_text": "Show notes.", "date_published": "2024-02-10T06:00:00Z",
                  "attachments": [{"url": "https://cdn.pod.example/ep1.mp3", "mime_type": "audio/mpeg", "size_in_bytes": 12345678, "duration_in_seconds": 1800}, {"url": "https://cdn.pod.example/ep1.m4a", "mime_type": "audio/mp4"}]}]}"#,
                Some("Pod"),
                &[(
                    "Episode 1",
                    Some("https://pod.example/1"),
                    Some("2024-02-10T06:00:00Z"),
                    "Show notes.",
                    &[
                        "https://cdn.pod.example/ep1.mp3",
                        "https://cdn.pod.example/ep1.m4a",
                    ],
                )],
            ),
            (
                r#"{"version": "https://jsonfeed.org/version/1.1", "title": "Bad", "items": [
                 {"id": "b1", "url": "https://j.example/b1", "title": "Good title", "content_html": "<p>ok</p>", "date_published": null, "tags": ["a", 5, null, "b"], "author": ["not", "an object"]},
                 {"id": "b2", "url": "https://j.example/b2", "title": "Second good", "summary": "Sum", "content_text": "Text", "date_published": "not a date"}]}"#,
                Some("Bad"),
                &[
                    ("Good title", Some("https://j.example/b1"), None, "ok", &[]),
                    (
                        "Second good",
                        Some("https://j.example/b2"),
                        None,
                        "Text",
                        &[],
                    ),
                ],
            ),
            (
                r#"{"version": "1.1", "items": [
                 {"id": 1.5, "url": "https://j.example/f", "title": "Float id", "content_text": "f"},
                 {"url": "https://j.example/m", "title": "Missing id", "content_text": "m"},
                 {"id": "  spaced  ", "url": "https://j.example/s", "title": "Spaced id", "content_text": "s"}]}"#,
                None,
                &[
                    ("Float id", Some("https://j.example/f"), None, "f", &[]),
                    ("Missing id", Some("https://j.example/m"), None, "m", &[]),
                    ("Spaced id", Some("https://j.example/s"), None, "s", &[]),
                ],
            ),
            (
                r#"{"version": "1.1", "items": [
                 {"id": "d1", "url": "https://j.example/d1", "title": "RFC 3339 offset", "content_text": "d", "date_published": "2024-05-06T07:08:09.123-07:00"},
                 {"id": "d2", "url": "https://j.example/d2", "title": "RFC 822", "content_text": "d", "date_published": "Mon, 06 May 2024 07:08:09 GMT"},
                 {"id": "d3", "url": "https://j.example/d3", "title": "Date only", "content_text": "d", "date_published": "2024-05-06"}]}"#,
                None,
                &[
                    (
                        "RFC 3339 offset",
                        Some("https://j.example/d1"),
                        Some("2024-05-06T14:08:09Z"),
                        "d",
                        &[],
                    ),
                    (
                        "RFC 822",
                        Some("https://j.example/d2"),
                        Some("2024-05-06T07:08:09Z"),
                        "d",
                        &[],
                    ),
                    (
                        "Date only",
                        Some("https://j.example/d3"),
                        Some("2024-05-06T00:00:00Z"),
                        "d",
                        &[],
                    ),
                ],
            ),
            (
                r#"{"version": "1.1", "title": "Mixed", "items": [1, "two", null, [3], {"id": "real", "url": "https://j.example/real", "title": "The real one", "content_html": "<p>Real</p>"}]}"#,
                Some("Mixed"),
                &[(
                    "The real one",
                    Some("https://j.example/real"),
                    None,
                    "Real",
                    &[],
                )],
            ),
            (
                r#"{"version": "1.1", "title": "内蒙古日报", "items": [{"id": "u1", "url": "https://j.example/%E6%97%A5", "title": "读书班 Iñtërnâtiônàlizætiøn", "content_html": "<p>日报 — “quoted”</p>", "date_published": "2024-06-01T00:00:00+08:00"}]}"#,
                Some("内蒙古日报"),
                &[(
                    "读书班 Iñtërnâtiônàlizætiøn",
                    Some("https://j.example/%E6%97%A5"),
                    Some("2024-05-31T16:00:00Z"),
                    "日报 — “quoted”",
                    &[],
                )],
            ),
            (
                r#"{"version": "1.1", "items": [{"id": "s1", "url": "https://j.example/s1", "title": "Scripted", "content_html": "<p onclick=\"x()\">Hello <script>alert(1)</script><b>world</b></p>", "date_published": "2024-07-01T12:00:00Z"}]}"#,
                None,
                &[(
                    "Scripted",
                    Some("https://j.example/s1"),
                    Some("2024-07-01T12:00:00Z"),
                    "Hello world",
                    &[],
                )],
            ),
            (
                r#"{"version": "1.1", "items": [{"id": "k1", "title": "First", "title": "Last wins", "url": "https://j.example/k1", "content_text": "k"}]}"#,
                None,
                &[("Last wins", Some("https://j.example/k1"), None, "k", &[])],
            ),
        ];
        for (json, title, expected) in cases {
            let feed = parse(json);
            assert_eq!(feed.title.as_deref(), *title, "{json}");
            let got: Vec<Summary> = feed
                .entries
                .iter()
                .map(|e| {
                    (
                        e.title.clone(),
                        e.link.clone(),
                        e.published
                            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
                        text_of(e),
                        e.enclosures.iter().map(|e| e.url.clone()).collect(),
                    )
                })
                .collect();
            let expected: Vec<Summary> = expected
                .iter()
                .map(|(title, link, published, text, enclosures)| {
                    (
                        title.to_string(),
                        link.map(String::from),
                        published.map(String::from),
                        text.to_string(),
                        enclosures.iter().map(|e| e.to_string()).collect(),
                    )
                })
                .collect();
            assert_eq!(got, expected, "{json}");
        }
    }

    #[test]
    fn the_feeds_authors_are_not_copied_into_every_item_without_bound() {
        // Each item without authors has the feed's: a short list of both made their product.
        let n = 1500;
        let document = |authors: &str| {
            format!(
                "{{\"authors\": [{authors}], \"items\": [{}]}}",
                (0..n)
                    .map(|i| format!("{{\"id\": \"{i}\"}}"))
                    .collect::<Vec<_>>()
                    .join(",")
            )
        };
        let authors = vec!["\"a\""; n].join(",");
        let json = document(&authors);
        // Against the same items with no authors (JSON items of a few bytes each cost more
        // per byte than a plain RSS feed's).
        crate::parse::xml::cost::assert_costs_as(
            "feed authors",
            &json,
            &document(&" ".repeat(authors.len())),
            Some("application/feed+json"),
        );
        let feed = parse(&json);
        assert_eq!(feed.entries.len(), n);
        assert!(feed.entries[0].authors.len() <= 256);
    }

    #[test]
    fn long_arrays_and_objects_cost_what_they_weigh() {
        let n = 50_000;
        let list = |element: &str| vec![element; n].join(",");
        let item = |fields: String| format!("{{\"items\": [{{\"id\": \"1\", {fields}}}]}}");
        let cases = [
            ("tags", item(format!("\"tags\": [{}]", list("\"a\"")))),
            (
                "numbers as tags",
                item(format!("\"tags\": [{}]", list("0"))),
            ),
            (
                "empty attachments",
                item(format!("\"attachments\": [{}]", list("{}"))),
            ),
            (
                "arrays as attachments",
                item(format!("\"attachments\": [{}]", list("[]"))),
            ),
            (
                "attachments",
                item(format!("\"attachments\": [{}]", list("{\"url\": \"/a\"}"))),
            ),
            ("authors", item(format!("\"authors\": [{}]", list("{}")))),
            (
                "an attachment of many keys",
                item(format!(
                    "\"attachments\": [{{{}}}]",
                    (0..n / 2)
                        .map(|i| format!("\"k{i}\": 0"))
                        .collect::<Vec<_>>()
                        .join(",")
                )),
            ),
            (
                "items that are not objects",
                format!("{{\"items\": [{}, {{\"id\": \"1\"}}]}}", list("0")),
            ),
        ];
        for (what, json) in cases {
            crate::parse::xml::cost::assert_linear(what, &json, Some("application/feed+json"));
            let entry = one_of(&json);
            assert!(
                entry.categories.len() <= 256 && entry.authors.len() <= 256,
                "{what}: {} categories, {} authors",
                entry.categories.len(),
                entry.authors.len()
            );
        }
        // What is read of a long list is its beginning.
        let entry = one_of(&item(format!(
            "\"tags\": [{}], \"attachments\": [{{\"url\": \"/first\"}}, {}]",
            list("\"a\""),
            list("{}")
        )));
        assert_eq!(entry.categories[0], "a");
        assert_eq!(entry.enclosures[0].url, "https://news.example/first");
    }

    fn one_of(json: &str) -> Entry {
        let mut feed = parse(json);
        assert_eq!(feed.entries.len(), 1, "{json:.200}");
        feed.entries.remove(0)
    }
}
