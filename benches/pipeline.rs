//! The stages of the pipeline, each against a baseline measured in the same run:
//!
//! - parse: feed bytes to entries (feedmill's whole parse: charset, the XML reader,
//!   sanitizing, identity), against quick-xml's raw event scan of the same bytes (the floor
//!   any XML parse stands on) and serde_json's parse into a `Value` for JSON Feed;
//! - render: 50 stories to Atom, RSS, JSON Feed and their gzip;
//! - store: identity, fingerprint and write per entry, in batches of 100.
//!
//! `cargo bench --bench pipeline`; figures in `docs/benchmarks.md`.

// The allocator the binary runs on (src/main.rs), so that the figures are the daemon's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::collections::HashMap;
use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use feedmill::config::{Dedup, FeedConfig, ServerConfig};
use feedmill::model::Entry;
use feedmill::model::{sort_time, SourceState, StoredEntry};
use feedmill::parse::parse_feed;
use feedmill::publish::{Publisher, SourceInfo};
use feedmill::select::Story;
use feedmill::store::sled::SledStore;
use url::Url;

const ITEMS: usize = 100;

fn paragraph(i: usize) -> String {
    format!(
        "<p>Departments across the region held reading class number {i} this week. Cadres studied the texts in groups, discussed how to apply them, and reported the results in their daily work. <a href=\"/story/{i}\">Read more</a> &amp; <em>share</em>.</p>"
    )
}

fn rss() -> Vec<u8> {
    let items: String = (0..ITEMS)
        .map(|i| {
            format!(
                "<item><title>Story {i}: reading classes</title><link>https://news.example/{i}</link><guid>news-{i}</guid><pubDate>Fri, 27 Nov 2026 08:{:02}:00 +0800</pubDate><category>Politics</category><description><![CDATA[{}]]></description></item>",
                i % 60,
                paragraph(i)
            )
        })
        .collect();
    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><rss version=\"2.0\"><channel><title>News</title><link>https://news.example/</link><description>d</description>{items}</channel></rss>").into_bytes()
}

fn atom() -> Vec<u8> {
    let entries: String = (0..ITEMS)
        .map(|i| {
            format!(
                "<entry><title>Story {i}: reading classes</title><link href=\"https://news.example/{i}\"/><id>urn:news:{i}</id><updated>2026-11-27T08:{:02}:00+08:00</updated><author><name>Desk</name></author><content type=\"html\">{}</content></entry>",
                i % 60,
                paragraph(i).replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
            )
        })
        .collect();
    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><feed xmlns=\"http://www.w3.org/2005/Atom\"><title>News</title><id>urn:news</id><updated>2026-11-27T08:00:00Z</updated>{entries}</feed>").into_bytes()
}

fn json() -> Vec<u8> {
    let items: Vec<serde_json::Value> = (0..ITEMS)
        .map(|i| {
            serde_json::json!({
                "id": format!("news-{i}"),
                "url": format!("https://news.example/{i}"),
                "title": format!("Story {i}: reading classes"),
                "content_html": paragraph(i),
                "date_published": format!("2026-11-27T08:{:02}:00+08:00", i % 60),
            })
        })
        .collect();
    serde_json::json!({"version": "https://jsonfeed.org/version/1.1", "title": "News", "items": items})
        .to_string()
        .into_bytes()
}

/// quick-xml's raw event scan: what reading the bytes costs at the very least.
fn quick_xml_scan(bytes: &[u8]) -> usize {
    let mut reader = quick_xml::Reader::from_reader(bytes);
    let mut buf = Vec::new();
    let mut events = 0;
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(quick_xml::events::Event::Eof) | Err(_) => break,
            Ok(_) => events += 1,
        }
        buf.clear();
    }
    events
}

fn parse(c: &mut Criterion) {
    let url = Url::parse("https://news.example/feed").expect("url");
    let mut group = c.benchmark_group("parse");
    for (format, bytes) in [("rss", rss()), ("atom", atom()), ("json", json())] {
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(BenchmarkId::new("feedmill", format), &bytes, |b, bytes| {
            b.iter(|| parse_feed(black_box(bytes), None, &url).map(|f| f.entries.len()))
        });
        if format == "json" {
            group.bench_with_input(BenchmarkId::new("baseline", format), &bytes, |b, bytes| {
                b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(bytes)).is_ok())
            });
        } else {
            group.bench_with_input(BenchmarkId::new("baseline", format), &bytes, |b, bytes| {
                b.iter(|| quick_xml_scan(black_box(bytes)))
            });
        }
    }
    group.finish();
}

fn stories(n: usize) -> Vec<Story> {
    let url = Url::parse("https://news.example/feed").expect("url");
    let parsed = parse_feed(&rss(), None, &url).expect("parses");
    let now = Utc.timestamp_opt(1_800_000_000, 0).single().expect("time");
    parsed
        .entries
        .into_iter()
        .take(n)
        .map(|entry| Story {
            entry: StoredEntry {
                source: "news".into(),
                sort_time: sort_time(&entry, now, now),
                first_seen: now,
                entry,
                same_link_as: None,
                same_text_as: None,
            },
            also: vec![],
        })
        .collect()
}

fn render(c: &mut Criterion) {
    let feed = FeedConfig {
        name: "all".into(),
        title: "All news".into(),
        sources: vec!["news".into()],
        include: vec![],
        exclude: vec![],
        limit: 50,
        max_per_source: 50,
        dedup: Dedup::Content,
    };
    let server = ServerConfig {
        listen: "127.0.0.1:8080".parse().expect("address"),
        base_url: Url::parse("http://127.0.0.1:8080/").expect("url"),
        header_timeout: std::time::Duration::from_secs(10),
        write_timeout: std::time::Duration::from_secs(30),
        max_connections: 1024,
        max_connections_per_ip: 64,
        title: "feedmill".into(),
        lang: "en".into(),
        hub: None,
    };
    let sources = HashMap::from([(
        "news".to_string(),
        SourceInfo {
            name: "news".into(),
            title: "News".into(),
            url: "https://news.example/feed".into(),
            site_link: Some("https://news.example/".into()),
        },
    )]);
    let stories = stories(50);
    let publisher = Publisher::default();
    c.bench_function("render 50 entries: atom + rss + json + gzip", |b| {
        b.iter(|| {
            publisher.publish(
                &feed,
                black_box(&stories),
                &sources,
                &server,
                String::new(),
                chrono::Utc::now(),
            )
        })
    });
}

fn store_write(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(&dir.path().join("db")).expect("store");
    let url = Url::parse("https://news.example/feed").expect("url");
    let template: Vec<Entry> = parse_feed(&rss(), None, &url).expect("parses").entries;
    let mut round = 0usize;
    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(ITEMS as u64));
    group.bench_function(
        "identity + fingerprint + write, per batch of 100 new entries",
        |b| {
            b.iter(|| {
                round += 1;
                let entries: Vec<Entry> = template
                    .iter()
                    .map(|e| Entry {
                        identity: format!("{}-{round}", e.identity),
                        ..e.clone()
                    })
                    .collect();
                let mut state = SourceState::default();
                let now = Utc.timestamp_opt(1_800_000_000, 0).single().expect("time");
                // A source of its own each round: a source's index value is rewritten by each
                // of its commits, and in the daemon retention keeps it to 1,000 entries.
                store
                    .commit_fetch(&format!("s{round}"), &mut state, &entries, now)
                    .expect("commit")
            })
        },
    );
    group.finish();
}

criterion_group!(benches, parse, render, store_write);
criterion_main!(benches);
