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
