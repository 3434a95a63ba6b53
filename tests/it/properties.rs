//! Property tests (our fuzzing on the stable toolchain): parse -> normalize -> render ->
//! reparse over generated hostile feeds, and parse over arbitrary bytes. `.ci/run` runs them
//! with a bounded number of cases; set PROPTEST_CASES to run more.

use std::collections::HashMap;

use feedmill::config::{Dedup, FeedConfig, ServerConfig};
use feedmill::parse::parse_feed;
use feedmill::publish::{Format, Publisher, SourceInfo};
use feedmill::select::Story;
use feedmill::store::{sort_time, StoredEntry};
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

fn render(entries: Vec<feedmill::parse::Entry>) -> [(Format, Vec<u8>); 3] {
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

/// A URL piece as a hostile feed writes one: a scheme in any case, spacing, encoding or
/// entity spelling (most of them not http), then a path that may escape into script.
fn hostile_url() -> impl Strategy<Value = String> {
    let scheme = prop_oneof![
        Just("javascript:"),
        Just("JaVaScRiPt:"),
        Just(" javascript:"),
        Just("java\tscript:"),
        Just("java\nscript:"),
        Just("\u{1}javascript:"),
        Just("javascript&#58;"),
        Just("&#106;avascript:"),
        Just("&#x6A;avascript:"),
        Just("%6A%61vascript:"),
        Just("javascript%3A"),
        Just("vbscript:"),
        Just("VBScript:"),
        Just("data:text/html,"),
        Just("data:image/png;base64,"),
        Just("DATA:image/svg+xml,"),
        Just("file:"),
        Just("ftp:"),
        Just("custom-scheme:"),
        Just("http:"),
        Just("https:"),
        Just("HTTP:"),
        Just("//"),
        Just(""),
    ];
    let rest = prop_oneof![
        Just("//x/%0Aalert(1)//"),
        Just("alert(1)"),
        Just("clickme"),
        Just("x/y?q=1#f"),
        Just("%0A%0Dalert(1)"),
        Just("\\\\evil/"),
        Just("iVBORw0KGgo="),
        Just(""),
    ];
    (scheme, rest).prop_map(|(s, r)| format!("{s}{r}"))
}

/// `text` as an XML attribute value.
fn xml_attr(text: &str) -> String {
    xml_escape(text).replace('"', "&quot;")
}

/// An Atom or RSS document whose bases, links, enclosures and HTML attributes are `urls`.
fn document_with_urls(rss: bool, urls: &[String; 6]) -> String {
    let [feed_base, entry_base, link, href, src, enclosure] = urls.each_ref().map(|u| xml_attr(u));
    // In the HTML field the attribute is escaped once for HTML and once more for XML.
    let html = format!(
        "<p><a href=\"{href}\">link</a> <img src=\"{src}\"> <a href=\"{link}\">again</a></p>"
    );
    let html = xml_escape(&html);
    if rss {
        format!(
            "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel xml:base=\"{feed_base}\"><title>t</title><link>{link}</link><description>d</description>\
             <item xml:base=\"{entry_base}\"><title>Item</title><guid isPermaLink=\"false\">g</guid><link>{link}</link>\
             <enclosure url=\"{enclosure}\" type=\"audio/mpeg\" length=\"1\"/><description>{html}</description></item></channel></rss>"
        )
    } else {
        format!(
            "<?xml version=\"1.0\"?><feed xmlns=\"http://www.w3.org/2005/Atom\" xml:base=\"{feed_base}\"><title>t</title><id>urn:t</id>\
             <updated>2026-11-30T08:00:00Z</updated><link href=\"{link}\"/><entry xml:base=\"{entry_base}\"><title>Item</title><id>urn:t:1</id>\
             <updated>2026-11-30T08:00:00Z</updated><link href=\"{link}\"/><link rel=\"enclosure\" href=\"{enclosure}\" type=\"audio/mpeg\" length=\"1\"/>\
             <author><name>n</name><uri>{link}</uri></author><content type=\"html\">{html}</content></entry></feed>"
        )
    }
}

/// Every scheme an output names, read as a reader would: entities decoded (twice, for HTML
/// inside XML), tabs and newlines dropped; `data:` counted apart when it is an `<img src>`.
fn output_schemes(body: &[u8]) -> (Vec<String>, usize) {
    let text = String::from_utf8_lossy(body);
    // JSON escapes `<`, `>` and `&` as \u003c and the like; read them back.
    let text = text
        .replace("\\u003c", "<")
        .replace("\\u003e", ">")
        .replace("\\u0026", "&")
        .replace("\\/", "/")
        .replace("\\\"", "\"");
    let once = html_escape::decode_html_entities(&text).into_owned();
    let twice = html_escape::decode_html_entities(&once).into_owned();
    let cleaned: String = twice
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect::<String>()
        .to_ascii_lowercase();
    let attribute = regex::Regex::new(
        r#"(?:href|src|srcset|cite|action|poster|background|longdesc|uri|url|"url"|"external_url"|"image"|"home_page_url"|"feed_url"|"favicon"|"icon")\s*[=:]\s*["']?\s*([a-z][a-z0-9+.\-]*):"#,
    )
    .expect("regex");
    let data_images = regex::Regex::new(r#"<img[^>]*\ssrc\s*=\s*["']?\s*data:"#)
        .expect("regex")
        .find_iter(&cleaned)
        .count();
    let schemes = attribute
        .captures_iter(&cleaned)
        .map(|c| c[1].to_string())
        .collect();
    (schemes, data_images)
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]

    /// Issue 14, item 2: whatever `xml:base`, `href` and `src` say, no URL in any output has
    /// a scheme other than http(s), and `data:` only as an `<img src>`.
    #[test]
    fn no_output_url_has_a_scheme_but_http(rss in any::<bool>(), urls in prop::array::uniform6(hostile_url())) {
        let doc = document_with_urls(rss, &urls);
        let Ok(parsed) = parse_feed(doc.as_bytes(), None, &feed_url()) else {
            return Ok(());
        };
        for (format, body) in render(parsed.entries) {
            let (schemes, data_images) = output_schemes(&body);
            let data = schemes.iter().filter(|s| *s == "data").count();
            for scheme in &schemes {
                prop_assert!(
                    matches!(scheme.as_str(), "http" | "https" | "data"),
                    "{:?} output names a {} URL\n{}\nfrom\n{}", format, scheme, String::from_utf8_lossy(&body), doc
                );
            }
            prop_assert!(
                data <= data_images,
                "{:?} output has data: outside an <img src>\n{}\nfrom\n{}", format, String::from_utf8_lossy(&body), doc
            );
        }
    }
}
