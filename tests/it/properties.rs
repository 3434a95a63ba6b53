//! Property tests (our fuzzing on the stable toolchain): parse -> normalize -> render ->
//! reparse over generated hostile feeds, and parse over arbitrary bytes. `.ci/run` runs them
//! with a bounded number of cases; set PROPTEST_CASES to run more.

use std::collections::HashMap;

use feedmill::config::{Dedup, FeedConfig, ServerConfig};
use feedmill::model::{sort_time, StoredEntry};
use feedmill::parse::parse_feed;
use feedmill::publish::{Format, Publisher, SourceInfo};
use feedmill::select::Story;
use proptest::prelude::*;
use url::Url;

fn feed_url() -> Url {
    Url::parse("http://src.example/feed").expect("url")
}

/// Text that feeds really carry, and some that attackers do.
fn nasty_text() -> impl Strategy<Value = String> {
    let pieces = prop_oneof![
        Just("<script>alert(1)</script>".to_string()),
        Just("<p onclick=\"x()\">p</p>".to_string()),
        Just("<a href=\"javascript:alert(1)\">j</a>".to_string()),
        Just("&amp;&lt;&gt;&quot;&#39;&#x4e2d;".to_string()),
        Just("&lol9;&nbsp;&undefined;".to_string()),
        Just("]]>".to_string()),
        Just("\u{0}\u{1}\u{b}\u{1b}\u{fffe}".to_string()),
        Just("内蒙古 “quotes” – é 🚀".to_string()),
        Just("<![CDATA[x]]>".to_string()),
        Just("<img src=\"x.png\" onerror=\"y()\">".to_string()),
        "[ -~]{0,20}",
        any::<String>(),
    ];
    prop::collection::vec(pieces, 0..5).prop_map(|v| v.concat())
}

fn xml_escape(text: &str) -> String {
    // Only characters XML can carry can be written at all; a feed with others is malformed.
    text.chars()
        .filter(|c| matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..))
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[derive(Debug, Clone)]
struct GenItem {
    title: String,
    body: String,
    with_guid: bool,
    date: Option<i64>,
}

fn items() -> impl Strategy<Value = Vec<GenItem>> {
    prop::collection::vec(
        (
            nasty_text(),
            nasty_text(),
            any::<bool>(),
            prop::option::of(-2_000_000_000i64..5_000_000_000),
        )
            .prop_map(|(title, body, with_guid, date)| GenItem {
                title,
                body,
                with_guid,
                date,
            }),
        0..8,
    )
}

fn document(format: u8, items: &[GenItem]) -> String {
    let date = |secs: i64| chrono::DateTime::from_timestamp(secs, 0).unwrap_or_default();
    match format % 3 {
        0 => {
            let mut out = String::from(
                "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>t</title>",
            );
            for (i, item) in items.iter().enumerate() {
                out.push_str(&format!(
                    "<item><title>{}</title><description>{}</description>",
                    xml_escape(&item.title),
                    xml_escape(&item.body)
                ));
                if item.with_guid {
                    out.push_str(&format!("<guid>g{i}</guid>"));
                }
                if let Some(d) = item.date {
                    out.push_str(&format!("<pubDate>{}</pubDate>", date(d).to_rfc2822()));
                }
                out.push_str("</item>");
            }
            out + "</channel></rss>"
        }
        1 => {
            let mut out = String::from("<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>t</title><id>urn:f</id><updated>2026-01-01T00:00:00Z</updated>");
            for (i, item) in items.iter().enumerate() {
                out.push_str(&format!(
                    "<entry><id>{}</id><title type=\"html\">{}</title><content type=\"html\">{}</content><updated>{}</updated></entry>",
                    if item.with_guid { format!("urn:e{i}") } else { String::new() },
                    xml_escape(&item.title),
                    xml_escape(&item.body),
                    date(item.date.unwrap_or(0)).to_rfc3339()
                ));
            }
            out + "</feed>"
        }
        _ => {
            let items: Vec<serde_json::Value> = items
                .iter()
                .enumerate()
                .map(|(i, item)| serde_json::json!({"id": format!("j{i}"), "title": item.title, "content_html": item.body}))
                .collect();
            serde_json::json!({"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": items}).to_string()
        }
    }
}

fn render(entries: Vec<feedmill::model::Entry>) -> [(Format, Vec<u8>); 3] {
    let now = chrono::Utc::now();
    let stories: Vec<Story> = entries
        .into_iter()
        .map(|entry| Story {
            entry: StoredEntry {
                source: "src".into(),
                sort_time: sort_time(&entry, now, now),
                first_seen: now,
                entry,
                same_link_as: None,
                same_text_as: None,
            },
            also: vec![],
        })
        .collect();
    let feed = FeedConfig {
        name: "all".into(),
        title: "All <&> \"news\"".into(),
        sources: vec!["src".into()],
        include: vec![],
        exclude: vec![],
        limit: 100,
        max_per_source: 100,
        dedup: Dedup::None,
    };
    let sources = HashMap::from([(
        "src".to_string(),
        SourceInfo {
            name: "src".into(),
            title: "Src <&>".into(),
            url: feed_url().to_string(),
            site_link: None,
        },
    )]);
    let publisher = Publisher::default();
    publisher.publish(
        &feed,
        &stories,
        &sources,
        &ServerConfig {
            listen: "127.0.0.1:8080".parse().expect("address"),
            base_url: Url::parse("http://127.0.0.1:8080/").expect("url"),
            header_timeout: std::time::Duration::from_secs(10),
            write_timeout: std::time::Duration::from_secs(30),
            max_connections: 1024,
            max_connections_per_ip: 64,
            title: "feedmill".into(),
            lang: "en".into(),
            hub: Some(Url::parse("https://hub.example/").expect("url")),
        },
        String::new(),
        chrono::Utc::now(),
    );
    let rendered = publisher.get("all").expect("published");
    [Format::Atom, Format::Rss, Format::Json].map(|f| (f, rendered.document(f).body.to_vec()))
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_feed(&bytes, None, &feed_url());
        let _ = parse_feed(&bytes, Some("text/xml; charset=gbk"), &feed_url());
    }

    #[test]
    fn mangled_feeds_never_panic(format in 0u8..3, items in items(), cut in 0usize..4096, junk in nasty_text()) {
        let doc = document(format, &items);
        let cut = cut.min(doc.len());
        let mut mangled = doc.as_bytes()[..cut].to_vec();
        mangled.extend_from_slice(junk.as_bytes());
        let _ = parse_feed(&mangled, None, &feed_url());
    }

    #[test]
    fn parse_render_reparse_round_trips(format in 0u8..3, items in items()) {
        let doc = document(format, &items);
        let parsed = parse_feed(doc.as_bytes(), None, &feed_url()).map_err(|e| TestCaseError::fail(format!("{e}\n{doc}")))?;
        let titles: Vec<String> = parsed.entries.iter().map(|e| e.title.clone()).collect();
        for entry in &parsed.entries {
            for html in [&entry.summary, &entry.content].into_iter().flatten() {
                let lower = html.to_lowercase();
                prop_assert!(!lower.contains("<script") && !lower.contains("javascript:") && !lower.contains("onclick") && !lower.contains("onerror"), "unsafe HTML kept: {html}");
            }
        }
        for (format, body) in render(parsed.entries) {
            let reparsed = feed_rs::parser::parse(body.as_slice())
                .map_err(|e| TestCaseError::fail(format!("{format:?} output does not parse: {e}\n{}", String::from_utf8_lossy(&body))))?;
            let mut got: Vec<String> = reparsed.entries.iter().map(|e| e.title.as_ref().map(|t| t.content.clone()).unwrap_or_default()).collect();
            // feed-rs trims titles; ours are folded already, so compare as sets of trimmed text.
            got.sort();
            let mut trimmed: Vec<String> = titles.iter().map(|t| t.trim().to_string()).collect();
            trimmed.sort();
            prop_assert_eq!(&got, &trimmed, "{:?} lost or changed titles", format);
        }
    }
}

// --- No URL in any output has a scheme other than http(s) (issue 14, item 2) ---

/// A piece of a generated URL, as written in the document.
#[derive(Debug, Clone)]
enum Piece {
    /// Text, escaped for where it goes.
    Text(String),
    /// A numeric character reference: XML resolves it in an attribute, HTML in its own.
    Numeric(&'static str),
    /// A named HTML reference: text to XML, a character to HTML.
    Named(&'static str),
}

/// A URL value an attacker writes: a scheme (or none), spelled to slip past checks (case,
/// white space and control characters inside, references, percent-encoding), and a payload;
/// relative one time in `1 + absolute`.
fn hostile_url(absolute_weight: u32) -> impl Strategy<Value = Vec<Piece>> {
    let scheme = prop::sample::select(vec![
        "javascript",
        "vbscript",
        "data",
        "file",
        "ftp",
        "x-custom",
        "mailto",
        "about",
        "blob",
        "livescript",
        "http",
        "https",
    ]);
    let payload = prop::sample::select(vec![
        "//x/%0Aalert(1)//",
        "//x/%0Aalert(1)//",
        "//x/%0Aalert(1)//",
        "alert(1)",
        "alert(1)//",
        "text/html,<script>alert(1)</script>",
        "text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
        "image/png;base64,iVBORw0KGgo=",
        "image/svg+xml,<svg onload=alert(1)>",
        "///etc/passwd",
        "//ok.example/dir/",
    ]);
    let noise = prop::sample::select(vec![
        Piece::Text("\t".into()),
        Piece::Text("\n".into()),
        Piece::Text("\r".into()),
        Piece::Text(" ".into()),
        Piece::Text("\u{1}".into()),
        Piece::Numeric("&#9;"),
        Piece::Numeric("&#x0A;"),
        Piece::Named("&Tab;"),
        Piece::Named("&NewLine;"),
    ]);
    let colon = prop::sample::select(vec![
        Piece::Text(":".into()),
        Piece::Text(":".into()),
        Piece::Numeric("&#58;"),
        Piece::Numeric("&#x3A;"),
        Piece::Named("&colon;"),
        Piece::Text("%3A".into()),
    ]);
    let absolute = (
        scheme,
        prop::collection::vec(any::<bool>(), 12),
        prop::option::of((0usize..12, noise)),
        any::<bool>(),
        colon,
        payload,
        any::<bool>(),
    )
        .prop_map(
            |(scheme, upper, noise, leading, colon, payload, encode_first)| {
                let mut pieces = Vec::new();
                if leading {
                    pieces.push(Piece::Text(" \u{b}".into()));
                }
                for (i, c) in scheme.chars().enumerate() {
                    if let Some((at, noise)) = &noise {
                        if *at == i && i > 0 {
                            pieces.push(noise.clone());
                        }
                    }
                    if i == 0 && encode_first && c == 'j' {
                        pieces.push(Piece::Numeric("&#106;"));
                    } else if i == 0 && encode_first && c == 'v' {
                        pieces.push(Piece::Numeric("&#x76;"));
                    } else if i == 0 && encode_first {
                        pieces.push(Piece::Text(format!("%{:02X}", c as u32)));
                    } else if upper[i % upper.len()] {
                        pieces.push(Piece::Text(c.to_ascii_uppercase().to_string()));
                    } else {
                        pieces.push(Piece::Text(c.to_string()));
                    }
                }
                pieces.push(colon);
                pieces.push(Piece::Text(payload.to_string()));
                pieces
            },
        );
    let relative = prop::sample::select(vec![
        "clickme",
        "/abs/path",
        "//evil.example/x",
        "\\\\evil.example\\x",
        "?q=1",
        "#fragment",
        "./a:b",
        "",
        " ",
    ])
    .prop_map(|r| vec![Piece::Text(r.to_string())]);
    prop_oneof![absolute_weight => absolute, 1 => relative]
}

/// `pieces` in an XML attribute (an `xml:base`, an Atom `href`).
fn in_xml(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|piece| match piece {
            Piece::Text(text) => xml_escape(text).replace('"', "&quot;"),
            Piece::Numeric(reference) => reference.to_string(),
            Piece::Named(reference) => reference.replace('&', "&amp;"),
        })
        .collect()
}

/// `pieces` in an HTML attribute, as HTML source (not yet escaped for XML).
fn in_html(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .map(|piece| match piece {
            Piece::Text(text) => text.replace('&', "&amp;").replace('"', "&quot;"),
            Piece::Numeric(reference) | Piece::Named(reference) => reference.to_string(),
        })
        .collect()
}

/// `pieces` as the text they stand for once a parser has resolved the references.
fn as_text(pieces: &[Piece], html: bool) -> String {
    pieces
        .iter()
        .map(|piece| match piece {
            Piece::Text(text) => text.clone(),
            Piece::Numeric(reference) => html_escape::decode_html_entities(reference).into_owned(),
            Piece::Named(reference) if html => {
                html_escape::decode_html_entities(reference).into_owned()
            }
            Piece::Named(reference) => reference.to_string(),
        })
        .collect()
}

#[derive(Debug, Clone)]
struct UrlCase {
    format: u8,
    /// xml:base on the feed (or channel), the entry (or item) and the content.
    bases: [Option<Vec<Piece>>; 3],
    link: Vec<Piece>,
    href: Vec<Piece>,
    src: Vec<Piece>,
    cite: Vec<Piece>,
}

fn url_cases() -> impl Strategy<Value = UrlCase> {
    let base = prop_oneof![
        3 => hostile_url(8).prop_map(Some),
        1 => Just(None),
        1 => Just(Some(vec![Piece::Text("https://ok.example/dir/".into())])),
    ];
    (
        0u8..3,
        [base.clone(), base.clone(), base],
        hostile_url(2),
        hostile_url(1),
        hostile_url(1),
        hostile_url(2),
    )
        .prop_map(|(format, bases, link, href, src, cite)| UrlCase {
            format,
            bases,
            link,
            href,
            src,
            cite,
        })
}

impl UrlCase {
    /// The item HTML, as HTML source.
    fn html(&self) -> String {
        format!(
            r#"<p><a href="{}">a</a><img src="{}"><q cite="{}">q</q><blockquote cite="{}">b</blockquote></p>"#,
            in_html(&self.href),
            in_html(&self.src),
            in_html(&self.cite),
            in_html(&self.href),
        )
    }

    fn document(&self) -> String {
        let base = |at: usize| {
            self.bases[at]
                .as_ref()
                .map(|b| format!(r#" xml:base="{}""#, in_xml(b)))
                .unwrap_or_default()
        };
        let html = xml_escape(&self.html());
        let link = in_xml(&self.link);
        match self.format {
            0 => format!(
                r#"<feed xmlns="http://www.w3.org/2005/Atom"{}><title>t</title><id>urn:f</id><updated>2026-01-01T00:00:00Z</updated>
<entry{}><id>urn:e</id><title>x</title><updated>2026-01-01T00:00:00Z</updated><link href="{link}"/><content type="html"{}>{html}</content></entry></feed>"#,
                base(0),
                base(1),
                base(2)
            ),
            1 => format!(
                r#"<rss version="2.0"{}><channel><title>t</title><link>{link}</link><item{}><guid>g</guid><title>x</title><link>{link}</link><description{}>{html}</description></item></channel></rss>"#,
                base(0),
                base(1),
                base(2)
            ),
            _ => {
                let link = as_text(&self.link, false);
                serde_json::json!({
                    "version": "https://jsonfeed.org/version/1.1",
                    "title": "t",
                    "home_page_url": link,
                    "items": [{"id": "j", "url": link, "external_url": link, "title": "x", "content_html": self.html()}],
                })
                .to_string()
            }
        }
    }

    /// The base the version before this check resolved the item HTML against: every
    /// xml:base honoured, whatever its scheme.
    fn old_base(&self) -> Url {
        let mut base = feed_url();
        if self.format < 2 {
            for declared in self.bases.iter().flatten() {
                let value = as_text(declared, false);
                if let Ok(joined) = base.join(value.trim()) {
                    base = joined;
                }
            }
        }
        base
    }
}

/// The sanitizer as it was before this check: ammonia checking schemes as written, then
/// resolving relative URLs against the base.
fn old_sanitize(html: &str, base: &Url) -> String {
    let mut builder = ammonia::Builder::default();
    builder
        .url_schemes(std::collections::HashSet::from(["http", "https", "data"]))
        .link_rel(Some("noopener noreferrer nofollow"))
        .url_relative(ammonia::UrlRelative::RewriteWithBase(base.clone()))
        .attribute_filter(|element, attribute, value| {
            let is_data = value
                .trim_start()
                .get(..5)
                .is_some_and(|s| s.eq_ignore_ascii_case("data:"));
            if is_data && !(element == "img" && attribute == "src") {
                None
            } else {
                Some(value.into())
            }
        });
    builder.clean(html).to_string()
}

/// Collects the URL attributes of HTML, as a reader's HTML parser reads them.
#[derive(Default)]
struct UrlSink {
    found: std::cell::RefCell<Vec<(String, String, String)>>,
}

impl html5ever::tokenizer::TokenSink for UrlSink {
    type Handle = ();

    fn process_token(
        &self,
        token: html5ever::tokenizer::Token,
        _line: u64,
    ) -> html5ever::tokenizer::TokenSinkResult<()> {
        if let html5ever::tokenizer::Token::TagToken(tag) = token {
            if tag.kind == html5ever::tokenizer::TagKind::StartTag {
                for attribute in &tag.attrs {
                    let name = attribute.name.local.to_string();
                    if [
                        "href",
                        "src",
                        "cite",
                        "action",
                        "formaction",
                        "poster",
                        "background",
                        "srcset",
                        "data",
                        "longdesc",
                        "ping",
                    ]
                    .contains(&name.as_str())
                    {
                        self.found.borrow_mut().push((
                            tag.name.to_string(),
                            name,
                            attribute.value.to_string(),
                        ));
                    }
                }
            }
        }
        html5ever::tokenizer::TokenSinkResult::Continue
    }
}

/// The URL attributes of `html`: (element, attribute, URL).
fn html_urls(html: &str) -> Vec<(String, String, String)> {
    let tokenizer = html5ever::tokenizer::Tokenizer::new(UrlSink::default(), Default::default());
    let input = html5ever::tokenizer::BufferQueue::default();
    input.push_back(html.into());
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    tokenizer.sink.found.take()
}

/// Whether a URL may be republished: absolute http(s), or a raster `data:` image in `<img src>`.
fn republishable(element: &str, attribute: &str, url: &str) -> bool {
    let image = element == "img"
        && attribute == "src"
        && url.starts_with("data:image/")
        && !url.starts_with("data:image/svg");
    image || Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// Every URL of an output document: (where, element, attribute, URL).
fn output_urls(format: Format, body: &[u8]) -> Vec<(String, String, String)> {
    let mut urls = Vec::new();
    if format == Format::Json {
        fn walk(value: &serde_json::Value, urls: &mut Vec<(String, String, String)>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, inner) in map {
                        match (key.as_str(), inner.as_str()) {
                            ("url" | "external_url" | "home_page_url" | "feed_url", Some(url)) => {
                                urls.push(("json".into(), key.clone(), url.to_string()))
                            }
                            ("content_html", Some(html)) => urls.extend(html_urls(html)),
                            _ => walk(inner, urls),
                        }
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, urls)),
                _ => {}
            }
        }
        let document: serde_json::Value = serde_json::from_slice(body).expect("JSON");
        walk(&document, &mut urls);
        return urls;
    }
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut current = String::new();
    // The text of the current element, references resolved.
    let mut text = String::new();
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(tag) | quick_xml::events::Event::Empty(tag)) => {
                current = tag.local_name().into_inner().to_string();
                text.clear();
                for attribute in tag.attributes().flatten() {
                    let key = attribute.key.local_name().into_inner().to_string();
                    if ["href", "src", "url", "uri"].contains(&key.as_str()) {
                        let value = attribute
                            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .map(|v| v.into_owned())
                            .unwrap_or_default();
                        urls.push((current.clone(), key, value));
                    }
                }
            }
            Ok(quick_xml::events::Event::Text(piece)) => {
                text.push_str(&piece.xml_content(quick_xml::XmlVersion::Implicit1_0));
            }
            Ok(quick_xml::events::Event::CData(piece)) => {
                text.push_str(&piece);
            }
            Ok(quick_xml::events::Event::GeneralRef(reference)) => {
                match reference.resolve_char_ref() {
                    Ok(Some(c)) => text.push(c),
                    _ => text.push_str(
                        quick_xml::escape::resolve_predefined_entity(&reference)
                            .unwrap_or_default(),
                    ),
                }
            }
            Ok(quick_xml::events::Event::End(_)) => {
                match current.as_str() {
                    "link" if !text.trim().is_empty() => {
                        urls.push(("link".into(), "text".into(), text.trim().to_string()))
                    }
                    "content" | "summary" | "description" => urls.extend(html_urls(&text)),
                    _ => {}
                }
                current.clear();
                text.clear();
            }
            Ok(quick_xml::events::Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    urls
}

#[test]
fn no_url_in_any_output_has_a_scheme_other_than_http() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let cases = std::cell::Cell::new(0);
    let old_attacks = std::cell::Cell::new(0);
    let old_base_attacks = std::cell::Cell::new(0);
    let result = runner.run(&url_cases(), |case| {
        let document = case.document();
        let Ok(parsed) = parse_feed(document.as_bytes(), None, &feed_url()) else {
            // A hostile value can make the document malformed; nothing is published then.
            return Ok(());
        };
        cases.set(cases.get() + 1);
        // Would the version before this check have published a URL of another scheme?
        let old = old_sanitize(&case.html(), &case.old_base());
        let old_bad: Vec<_> = html_urls(&old)
            .into_iter()
            .filter(|(e, a, u)| !republishable(e, a, u))
            .collect();
        if !old_bad.is_empty() {
            old_attacks.set(old_attacks.get() + 1);
        }
        // ... through a hostile xml:base: a link written relative that came out of another
        // scheme.
        let relative = |pieces: &[Piece]| {
            matches!(
                Url::parse(as_text(pieces, true).trim()),
                Err(url::ParseError::RelativeUrlWithoutBase)
            )
        };
        let through_base = old_bad.iter().any(|(_, attribute, _)| {
            (attribute == "href" && relative(&case.href))
                || (attribute == "src" && relative(&case.src))
        });
        if through_base {
            old_base_attacks.set(old_base_attacks.get() + 1);
        }
        // What the parser stores holds no such URL already (the writers check again), and a
        // hostile base is ignored rather than dropping the link: a relative link resolves
        // against the enclosing http(s) base, else the feed's URL.
        let relative_link = matches!(case.href.as_slice(), [Piece::Text(t)] if t == "clickme");
        for entry in &parsed.entries {
            if relative_link {
                prop_assert!(
                    html_urls(entry.html().unwrap_or_default())
                        .iter()
                        .any(|(e, a, u)| e == "a" && a == "href" && u.ends_with("/clickme")),
                    "the relative link is lost: {:?}\ndocument: {}",
                    entry.html(),
                    document
                );
            }
            if let Some(link) = &entry.link {
                prop_assert!(
                    republishable("a", "href", link),
                    "stored link {:?}\n{}",
                    link,
                    document
                );
            }
            for (element, attribute, url) in html_urls(entry.html().unwrap_or_default()) {
                prop_assert!(
                    republishable(&element, &attribute, &url),
                    "stored <{} {}> is {:?}\ndocument: {}",
                    element,
                    attribute,
                    url,
                    document
                );
            }
        }
        for (format, body) in render(parsed.entries) {
            let text = String::from_utf8_lossy(&body);
            prop_assert!(
                !text.contains("xml:base"),
                "{:?} output carries an xml:base",
                format
            );
            for (element, attribute, url) in output_urls(format, &body) {
                prop_assert!(
                    republishable(&element, &attribute, &url),
                    "{:?}: <{} {}> is {:?}\ndocument: {}\noutput: {}",
                    format,
                    element,
                    attribute,
                    url,
                    document,
                    text
                );
            }
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    // The generator really attacks: a good share of its cases made the old sanitizer publish
    // a URL of another scheme (through a hostile base, `cite`, or `data:` spellings).
    let (cases, old_attacks, old_base_attacks) =
        (cases.get(), old_attacks.get(), old_base_attacks.get());
    eprintln!(
        "{old_attacks} of {cases} cases attack the old code, {old_base_attacks} through xml:base"
    );
    assert!(
        cases >= 100 && old_attacks * 4 >= cases && old_base_attacks * 20 >= cases,
        "{old_attacks} of {cases} cases attack the old code, {old_base_attacks} through xml:base"
    );
}

// --- Round trip: stored entries -> each output -> feedmill's own parser (issue 15) ---
//
// Generated entries as the parser stores them (titles plain text made from markup-like
// text and entities, sanitized HTML, http(s) links, dates, media), rendered in each format
// and read back by `parse_feed`, come back the same: title, link, dates to the second, the
// text of the content, and media. The documented exceptions, each what the format allows:
// - dates: Atom writes `published` when known and `updated` (the entry's update time, else
//   its sort time); RSS has one date, `pubDate`, the sort time (published, else updated, else
//   first seen; a date in the future counts as first seen), read back as both published and
//   updated; JSON Feed writes the sort time
//   as `date_published` and the update time as `date_modified`. A date no format can write
//   (a year before 0 or after 9999) is left out, the first-seen time standing in.
// - text: Atom writes the summary as the content when an entry has no link (RFC 4287 wants
//   a content or an alternate link), so the text is compared, not which field holds it.
// - titles: a stored title whose text still reads as HTML (a character reference such as
//   `&amp;`, from a source that escaped twice) is decoded once more by every liberal reader,
//   ours included; those are counted and left out of the title comparison.
// - media: RSS keeps only the first file, and writes a length (0 when unknown, which reads
//   back as unknown) and a type (from the file name, else `application/octet-stream`);
//   JSON Feed requires a type likewise; Atom writes what is known.

/// The time the round-trip entries are rendered at; their dates keep a day away from it.
fn round_trip_now() -> chrono::DateTime<chrono::Utc> {
    chrono::Utc::now()
}

/// A date as feeds give one, relative to now: none, past, future, or one no format can
/// write.
fn gen_date() -> impl Strategy<Value = Option<i64>> {
    let day = 86_400i64;
    prop_oneof![
        2 => Just(None),
        4 => (-(40 * 365 * day)..-day).prop_map(Some),
        1 => (day..(365 * day)).prop_map(Some),
        1 => prop::sample::select(vec![-95_000_000_000i64, 600_000_000_000]).prop_map(Some),
    ]
}

/// Title text with markup-like text and entities.
fn gen_title() -> impl Strategy<Value = (String, bool)> {
    let pieces = prop_oneof![
        Just("Tom & Jerry".to_string()),
        Just("a < b > c".to_string()),
        Just("Vec<T> and <3".to_string()),
        Just("<b>bold</b> move".to_string()),
        Just("Caf&eacute;&nbsp;culture &mdash; a guide".to_string()),
        Just("&lt;script&gt;alert(1)&lt;/script&gt;".to_string()),
        Just("“quoted” — 内蒙古 🚀".to_string()),
        Just("]]> and \"quotes\" 'too'".to_string()),
        Just("AT&amp;T".to_string()),
        Just("AT&amp;amp;T, escaped twice".to_string()),
        "[ -~]{0,16}",
    ];
    (prop::collection::vec(pieces, 0..4), any::<bool>()).prop_map(|(v, html)| (v.join(" "), html))
}

fn gen_link() -> impl Strategy<Value = Option<String>> {
    let host = prop::sample::select(vec!["a.example", "news.example.org", "sub.b.example:8443"]);
    let path = prop::collection::vec("[a-z0-9_-]{1,8}", 0..4);
    let query = prop::option::of("[a-z]{1,5}=[0-9]{1,4}");
    prop::option::weighted(
        0.8,
        (any::<bool>(), host, path, query).prop_map(|(https, host, path, query)| {
            let mut link = format!(
                "{}://{host}/{}",
                if https { "https" } else { "http" },
                path.join("/")
            );
            if let Some(query) = query {
                link.push('?');
                link.push_str(&query);
            }
            link
        }),
    )
}

fn gen_html() -> impl Strategy<Value = Option<String>> {
    let pieces = prop_oneof![
        Just("<p>First paragraph.</p>".to_string()),
        Just("<p>Second &amp; last</p>".to_string()),
        Just("<b>bold</b> <i>it</i>".to_string()),
        Just("<a href=\"https://x.example/a?b=1&amp;c=2\">a link</a>".to_string()),
        Just("<a href=\"relative/page\">relative</a>".to_string()),
        Just("<img src=\"https://x.example/i.png\" alt=\"an image\">".to_string()),
        Just("<ul><li>one</li><li>two</li></ul>".to_string()),
        Just("<script>alert(1)</script>".to_string()),
        Just("&lt;not a tag&gt; 5 &lt; 6".to_string()),
        Just("内蒙古日报".to_string()),
        "[ -~&&[^<&]]{0,24}",
    ];
    prop::option::weighted(
        0.7,
        prop::collection::vec(pieces, 1..5).prop_map(|v| v.concat()),
    )
}

fn gen_enclosures() -> impl Strategy<Value = Vec<feedmill::model::Enclosure>> {
    let one = (
        "[a-z0-9]{1,8}",
        prop::sample::select(vec!["mp3", "m4a", "ogg", "mp4", "jpg", "pdf", "bin", ""]),
        prop::option::of(prop::sample::select(vec![
            "audio/mpeg",
            "video/mp4",
            "image/jpeg",
            "audio/ogg; codecs=opus",
        ])),
        prop::option::of(1u64..10_000_000_000),
    )
        .prop_map(
            |(name, extension, mime_type, length)| feedmill::model::Enclosure {
                url: if extension.is_empty() {
                    format!("https://cdn.example/media/{name}")
                } else {
                    format!("https://cdn.example/media/{name}.{extension}")
                },
                mime_type: mime_type.map(str::to_string),
                length,
            },
        );
    prop::collection::vec(one, 0..4).prop_map(|mut files| {
        let mut seen = std::collections::HashSet::new();
        files.retain(|f| seen.insert(f.url.clone()));
        files
    })
}

/// One generated entry, as the parser stores it.
fn gen_entry() -> impl Strategy<Value = feedmill::model::Entry> {
    (
        gen_title(),
        gen_link(),
        (gen_date(), gen_date()),
        (gen_html(), gen_html()),
        gen_enclosures(),
    )
        .prop_map(
            |((title, html_title), link, (published, updated), (content, summary), enclosures)| {
                let now = round_trip_now();
                let date = |offset: Option<i64>| {
                    offset.and_then(|o| now.checked_add_signed(chrono::TimeDelta::try_seconds(o)?))
                };
                let base = Url::parse("https://x.example/base/").expect("url");
                let html = |h: Option<String>| {
                    h.map(|h| feedmill::sanitize::sanitize_html(&h, &base))
                        .filter(|h| !h.trim().is_empty())
                };
                feedmill::model::Entry {
                    identity: String::new(),
                    title: feedmill::sanitize::plain_text(&title, html_title),
                    link,
                    published: date(published),
                    updated: date(updated),
                    content: html(content),
                    summary: html(summary),
                    enclosures,
                    ..feedmill::model::Entry::default()
                }
            },
        )
}

/// The entries as stored (identities, first-seen and sort times), rendered in every format.
fn render_stored(entries: &[feedmill::model::Entry]) -> (Vec<StoredEntry>, [(Format, Vec<u8>); 3]) {
    let now = round_trip_now();
    let first_seen = now - chrono::TimeDelta::hours(1);
    let stored: Vec<StoredEntry> = entries
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let mut entry = entry.clone();
            entry.identity = format!("id{i}");
            StoredEntry {
                source: "src".into(),
                sort_time: sort_time(&entry, first_seen, now),
                first_seen,
                entry,
                same_link_as: None,
                same_text_as: None,
            }
        })
        .collect();
    let stories: Vec<Story> = stored
        .iter()
        .map(|entry| Story {
            entry: entry.clone(),
            also: vec![],
        })
        .collect();
    let feed = FeedConfig {
        name: "all".into(),
        title: "All".into(),
        sources: vec!["src".into()],
        include: vec![],
        exclude: vec![],
        limit: 100,
        max_per_source: 100,
        dedup: Dedup::None,
    };
    let sources = HashMap::from([(
        "src".to_string(),
        SourceInfo {
            name: "src".into(),
            title: "Source".into(),
            url: feed_url().to_string(),
            site_link: Some("https://src.example/".into()),
        },
    )]);
    let publisher = Publisher::default();
    publisher.publish(
        &feed,
        &stories,
        &sources,
        &ServerConfig {
            listen: "127.0.0.1:8080".parse().expect("address"),
            base_url: Url::parse("http://127.0.0.1:8080/").expect("url"),
            header_timeout: std::time::Duration::from_secs(10),
            write_timeout: std::time::Duration::from_secs(30),
            max_connections: 1024,
            max_connections_per_ip: 64,
            title: "feedmill".into(),
            lang: "en".into(),
            hub: None,
        },
        String::new(),
        chrono::Utc::now(),
    );
    let rendered = publisher.get("all").expect("published");
    let documents =
        [Format::Atom, Format::Rss, Format::Json].map(|f| (f, rendered.document(f).body.to_vec()));
    (stored, documents)
}

/// A time as every format can write it (years 0 to 9999), else nothing.
fn writable(time: chrono::DateTime<chrono::Utc>) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::Datelike;
    (0..=9999).contains(&time.year()).then_some(time)
}

fn seconds(time: Option<chrono::DateTime<chrono::Utc>>) -> Option<i64> {
    time.map(|t| t.timestamp())
}

fn words(html: Option<&str>) -> String {
    feedmill::sanitize::sanitized_to_text(html.unwrap_or_default())
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The media an output says, as it reads back: (URL, type, length).
type Media = Vec<(String, Option<String>, Option<u64>)>;

/// The type a format that requires one writes for a file that has none.
fn required_type(url: &str) -> String {
    let types = [
        ("mp3", "audio/mpeg"),
        ("m4a", "audio/mp4"),
        ("ogg", "audio/ogg"),
        ("mp4", "video/mp4"),
        ("jpg", "image/jpeg"),
        ("pdf", "application/pdf"),
    ];
    types
        .iter()
        .find(|(extension, _)| url.ends_with(&format!(".{extension}")))
        .map_or("application/octet-stream", |(_, t)| t)
        .to_string()
}

/// Reads every output back and compares it with what was stored. Titles that read as HTML
/// (see above) are counted in `html_titles`; `media` compares media too.
fn round_trip(
    entries: &[feedmill::model::Entry],
    media: bool,
    html_titles: &std::cell::Cell<usize>,
) -> Result<(), TestCaseError> {
    let now = round_trip_now();
    let (stored, documents) = render_stored(entries);
    for (format, body) in documents {
        let text = String::from_utf8_lossy(&body).into_owned();
        let url = Url::parse(&format!(
            "http://127.0.0.1:8080/feeds/all.{}",
            format.extension()
        ))
        .expect("url");
        let parsed = parse_feed(&body, Some(format.content_type()), &url).map_err(|e| {
            TestCaseError::fail(format!("{format:?} does not read back: {e}\n{text}"))
        })?;
        prop_assert_eq!(
            parsed.entries.len(),
            stored.len(),
            "{:?} entries\n{}",
            format,
            text
        );
        for (stored, read) in stored.iter().zip(&parsed.entries) {
            let e = &stored.entry;
            let context = || format!("{format:?}, stored {e:#?}\nread {read:#?}\n{text}");
            if feedmill::sanitize::plain_text(&e.title, false) == e.title {
                prop_assert_eq!(&read.title, &e.title, "title: {}", context());
            } else {
                html_titles.set(html_titles.get() + 1);
            }
            prop_assert_eq!(&read.link, &e.link, "link: {}", context());
            let sort = writable(stored.sort_time).unwrap_or(stored.first_seen);
            let updated = e
                .updated
                .and_then(writable)
                .filter(|u| *u <= now)
                .unwrap_or(sort)
                .max(sort);
            let (published, updated) = match format {
                Format::Atom => (e.published.and_then(writable), Some(updated)),
                // RSS has one date, `pubDate`, and it is the published one.
                Format::Rss => (Some(sort), None),
                Format::Json => (Some(sort), Some(updated)),
            };
            prop_assert_eq!(
                seconds(read.published),
                seconds(published),
                "published: {}",
                context()
            );
            prop_assert_eq!(
                seconds(read.updated),
                seconds(updated),
                "updated: {}",
                context()
            );
            prop_assert_eq!(words(read.html()), words(e.html()), "text: {}", context());
            if media {
                let files = |entry: &feedmill::model::Entry| -> Media {
                    entry
                        .enclosures
                        .iter()
                        .map(|f| (f.url.clone(), f.mime_type.clone(), f.length))
                        .collect()
                };
                let want: Media = match format {
                    Format::Atom => files(e),
                    Format::Rss => files(e)
                        .into_iter()
                        .take(1)
                        .map(|(url, kind, length)| {
                            let kind = kind.unwrap_or_else(|| required_type(&url));
                            (url, Some(kind), length)
                        })
                        .collect(),
                    Format::Json => files(e)
                        .into_iter()
                        .map(|(url, kind, length)| {
                            let kind = kind.unwrap_or_else(|| required_type(&url));
                            (url, Some(kind), length)
                        })
                        .collect(),
                };
                prop_assert_eq!(files(read), want, "media: {}", context());
            }
        }
    }
    Ok(())
}

fn round_trip_cases(media: bool) {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let html_titles = std::cell::Cell::new(0);
    let entries = std::cell::Cell::new(0);
    let result = runner.run(
        &prop::collection::vec(gen_entry(), 0..6),
        |mut generated| {
            entries.set(entries.get() + generated.len());
            if !media {
                // Today's parser takes an Atom enclosure link for the story link: media wait
                // for the parser that reads them (below).
                generated.iter_mut().for_each(|e| e.enclosures.clear());
            }
            round_trip(&generated, media, &html_titles)
        },
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
    // The exception stays one: few titles read as HTML once stored.
    let (html_titles, entries) = (html_titles.get(), entries.get());
    eprintln!("{html_titles} of {entries} entries' titles read as HTML, left out");
    assert!(html_titles * 5 <= entries * 3, "{html_titles} of {entries}");
}

#[test]
fn stored_entries_read_back_the_same_from_every_output() {
    round_trip_cases(false);
}

/// ENCLOSURES: feedmill's parser drops media today (issue 15 item 6): run with `--ignored`
/// once the parser that reads them lands, and drop the `ignore`.
#[test]
fn stored_media_reads_back_from_every_output() {
    round_trip_cases(true);
}
