//! The daemon end to end: 30 sources in three formats behind a local HTTP server.
//!
//! Every case runs on each store engine (`CASE::sled`, `CASE::postgres`: see
//! `support::on_each_engine!`).

use std::collections::{HashMap, HashSet};

use crate::support::{
    blocking_get, blocking_get_with, blocking_request, on_each_engine, Daemon, Engine, FeedServer,
};

const SOURCES: usize = 30;
const ITEMS: usize = 5;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Rss,
    Atom,
    Json,
}

fn kind_of(source: usize) -> Kind {
    match source % 3 {
        0 => Kind::Rss,
        1 => Kind::Atom,
        _ => Kind::Json,
    }
}

/// Item `n` of source `s`: a unique title and a distinct time (newer for higher n).
fn title(s: usize, n: usize) -> String {
    format!("Source {s} story {n}")
}

fn date(s: usize, n: usize) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_790_000_000 + (n * 1000 + s) as i64 * 60, 0).expect("valid")
}

/// The document of source `s` carrying items `items` (newest last in the list).
fn document(s: usize, items: &[usize]) -> (String, &'static str) {
    let mut out = String::new();
    match kind_of(s) {
        Kind::Rss => {
            out.push_str(&format!("<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>Feed {s}</title><link>http://site{s}.example/</link><description>d</description>"));
            for &n in items.iter().rev() {
                out.push_str(&format!(
                    "<item><title>{}</title><link>http://site{s}.example/{n}</link><guid>s{s}-i{n}</guid><pubDate>{}</pubDate><description>&lt;p&gt;Body {s}/{n}&lt;/p&gt;</description></item>",
                    title(s, n),
                    date(s, n).to_rfc2822()
                ));
            }
            out.push_str("</channel></rss>");
            (out, "application/rss+xml")
        }
        Kind::Atom => {
            out.push_str(&format!("<?xml version=\"1.0\"?><feed xmlns=\"http://www.w3.org/2005/Atom\"><title>Feed {s}</title><id>urn:feed:{s}</id><updated>2026-01-01T00:00:00Z</updated><link href=\"http://site{s}.example/\"/>"));
            for &n in items.iter().rev() {
                out.push_str(&format!(
                    "<entry><title>{}</title><id>urn:s{s}:i{n}</id><link href=\"/{n}.html\"/><updated>{}</updated><content type=\"html\">&lt;p&gt;Body {s}/{n}&lt;/p&gt;</content></entry>",
                    title(s, n),
                    date(s, n).to_rfc3339()
                ));
            }
            out.push_str("</feed>");
            (out, "application/atom+xml")
        }
        Kind::Json => {
            let items: Vec<serde_json::Value> = items
                .iter()
                .rev()
                .map(|&n| {
                    serde_json::json!({
                        "id": format!("s{s}-i{n}"),
                        "url": format!("http://site{s}.example/{n}"),
                        "title": title(s, n),
                        "content_html": format!("<p>Body {s}/{n}</p>"),
                        "date_published": date(s, n).to_rfc3339(),
                    })
                })
                .collect();
            let feed = serde_json::json!({
                "version": "https://jsonfeed.org/version/1.1",
                "title": format!("Feed {s}"),
                "items": items,
            });
            (feed.to_string(), "application/feed+json")
        }
    }
}

fn path_of(s: usize) -> String {
    let ext = match kind_of(s) {
        Kind::Rss => "rss",
        Kind::Atom => "atom",
        Kind::Json => "json",
    };
    format!("feeds/{s}.{ext}")
}

fn publish(server: &FeedServer, s: usize, items: &[usize]) {
    let (body, content_type) = document(s, items);
    server.put(&path_of(s), content_type, body);
}

fn config(server: &FeedServer) -> String {
    let mut config = String::from("[fetch]\nschedule = \"* * * * * *\"\n\n");
    for s in 0..SOURCES {
        config.push_str(&format!(
            "[[source]]\nname = \"s{s}\"\nurl = \"{}\"\n\n",
            server.url(&path_of(s))
        ));
    }
    config.push_str(
        "[[feed]]\nname = \"all\"\ntitle = \"Everything\"\nlimit = 1000\ndedup = \"none\"\n",
    );
    config
}

/// An output document's entries as (id, title), in document order.
fn entries(daemon: &Daemon, ext: &str) -> Vec<(String, String)> {
    try_entries(daemon, ext).expect("the feed answers")
}

/// [`entries`] for polls: `None` when the daemon does not answer.
fn try_entries(daemon: &Daemon, ext: &str) -> Option<Vec<(String, String)>> {
    let (status, body) = blocking_get(&daemon.url(&format!("/feeds/all.{ext}")))?;
    assert_eq!(status, 200);
    let feed = feed_rs::parser::parse(body.as_slice())
        .unwrap_or_else(|e| panic!("all.{ext} does not parse: {e}"));
    Some(
        feed.entries
            .into_iter()
            .map(|e| (e.id, e.title.map(|t| t.content).unwrap_or_default()))
            .collect(),
    )
}

fn all_fetched_with(daemon: &Daemon, status: u64) -> Option<bool> {
    let reports = daemon.try_status()?;
    Some(
        reports.len() == SOURCES
            && reports
                .iter()
                .all(|r| r["last_status"].as_u64() == Some(status)),
    )
}

fn thirty_sources_end_to_end(engine: Engine) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    let initial: Vec<usize> = (0..ITEMS).collect();
    for s in 0..SOURCES {
        publish(&server, s, &initial);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = engine.store();
    let daemon = Daemon::start_on(dir.path(), &store.section(), &config(&server));

    // Every item appears exactly once in each format.
    let expected: HashSet<String> = (0..SOURCES)
        .flat_map(|s| (0..ITEMS).map(move |n| title(s, n)))
        .collect();
    // Wait for the stored items, not for a status: the next round (304) may come at once.
    daemon.wait_for("every source to be fetched", || {
        let reports = daemon.try_status()?;
        Some(
            reports.len() == SOURCES
                && reports
                    .iter()
                    .all(|r| r["items"].as_u64() == Some(ITEMS as u64)),
        )
    });
    daemon.wait_for("all entries in the output", || {
        Some(try_entries(&daemon, "json")?.len() == SOURCES * ITEMS)
    });
    for ext in ["atom", "rss", "json"] {
        let got = entries(&daemon, ext);
        let titles: Vec<&String> = got.iter().map(|(_, t)| t).collect();
        let unique_titles: HashSet<String> = titles.iter().map(|t| t.to_string()).collect();
        assert_eq!(titles.len(), SOURCES * ITEMS, "{ext}: wrong entry count");
        assert_eq!(unique_titles, expected, "{ext}: entries differ");
        let unique_ids: HashSet<&String> = got.iter().map(|(id, _)| id).collect();
        assert_eq!(
            unique_ids.len(),
            got.len(),
            "{ext}: output ids are not unique"
        );
        // Newest first: the dates are distinct and grow with (n, s).
        let order: Vec<String> = (0..ITEMS)
            .rev()
            .flat_map(|n| (0..SOURCES).rev().map(move |s| title(s, n)))
            .collect();
        assert_eq!(
            titles.into_iter().cloned().collect::<Vec<_>>(),
            order,
            "{ext}: order"
        );
    }
    // The same entry has the same id in every format.
    let atom_ids: Vec<String> = entries(&daemon, "atom")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let json_ids: Vec<String> = entries(&daemon, "json")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(atom_ids, json_ids);

    // The next round is conditional and answered 304, for every source.
    daemon.wait_for("a 304 round for every source", || {
        all_fetched_with(&daemon, 304)
    });
    let log = server.log();
    for s in 0..SOURCES {
        let path = path_of(s);
        let etag = server.served(&path).etag;
        let last_modified = server.served(&path).last_modified;
        let conditional = log
            .iter()
            .find(|l| l.path == path && l.status == 304)
            .unwrap_or_else(|| panic!("no 304 for {path}"));
        assert_eq!(conditional.if_none_match.as_deref(), Some(etag.as_str()));
        assert_eq!(
            conditional.if_modified_since.as_deref(),
            Some(last_modified.as_str())
        );
        let first = log.iter().find(|l| l.path == path).expect("fetched");
        assert_eq!(
            first.if_none_match, None,
            "the first fetch of {path} must be unconditional"
        );
    }

    // New items appear; items that left the source's window stay.
    publish(&server, 0, &[1, 2, 3, 4, 5]);
    publish(&server, 1, &[2, 3, 4, 5, 6]);
    daemon.wait_for("the new items", || {
        let titles: HashSet<String> = try_entries(&daemon, "atom")?
            .into_iter()
            .map(|(_, t)| t)
            .collect();
        Some(titles.contains(&title(0, 5)) && titles.contains(&title(1, 6)))
    });
    let after: Vec<(String, String)> = entries(&daemon, "atom");
    let titles: Vec<&String> = after.iter().map(|(_, t)| t).collect();
    for gone in [title(0, 0), title(1, 0), title(1, 1)] {
        assert_eq!(
            titles.iter().filter(|t| ***t == gone).count(),
            1,
            "{gone} left the store"
        );
    }
    assert_eq!(after.len(), SOURCES * ITEMS + 3);

    // The output answers 304 to its own validators.
    for ext in ["atom", "rss", "json"] {
        let url = daemon.url(&format!("/feeds/all.{ext}"));
        let (status, headers, _) = blocking_get_with(&url, &[]).expect("answers");
        assert_eq!(status, 200);
        let etag = headers.get("etag").expect("ETag").clone();
        let last_modified = headers.get("last-modified").expect("Last-Modified").clone();
        let (status, _, body) =
            blocking_get_with(&url, &[("if-none-match", &etag)]).expect("answers");
        assert_eq!((status, body.len()), (304, 0), "{ext}: If-None-Match");
        let (status, _, _) =
            blocking_get_with(&url, &[("if-modified-since", &last_modified)]).expect("answers");
        assert_eq!(status, 304, "{ext}: If-Modified-Since");
        let (status, headers, gz) =
            blocking_get_with(&url, &[("accept-encoding", "gzip")]).expect("answers");
        assert_eq!(status, 200);
        assert_eq!(
            headers.get("content-encoding").map(String::as_str),
            Some("gzip")
        );
        let mut plain = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz.as_slice()), &mut plain)
            .expect("valid gzip");
        assert!(feed_rs::parser::parse(plain.as_slice()).is_ok());
    }

    // A restart changes no output id and no order.
    let before: HashMap<&str, Vec<(String, String)>> = ["atom", "rss", "json"]
        .into_iter()
        .map(|ext| (ext, entries(&daemon, ext)))
        .collect();
    let daemon = daemon.restart();
    daemon.wait_for("the refetch after the restart", || {
        let reports = daemon.try_status()?;
        Some(
            reports
                .iter()
                .all(|r| r["last_status"].as_u64() == Some(304)),
        )
    });
    for ext in ["atom", "rss", "json"] {
        assert_eq!(
            entries(&daemon, ext),
            before[ext],
            "{ext} changed across a restart"
        );
    }
}

fn unknown_feeds_and_routes_are_404_and_nothing_changes_state(engine: Engine) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    publish(&server, 0, &[0]);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = engine.store();
    let daemon = Daemon::start_on(
        dir.path(),
        &store.section(),
        &format!(
            "[[source]]\nname = \"s0\"\nurl = \"{}\"\n\n[[feed]]\nname = \"all\"\n",
            server.url(&path_of(0))
        ),
    );
    for path in [
        "/feeds/nope.atom",
        "/feeds/all.xml",
        "/feeds/nope",
        "/nope",
        "/feeds/",
    ] {
        let (status, _) = blocking_get(&daemon.url(path)).expect("answers");
        assert_eq!(status, 404, "{path}");
    }
    for method in [
        reqwest::Method::POST,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let (status, _, _) =
            blocking_request(method.clone(), &daemon.url("/feeds/all.atom"), &[]).expect("answers");
        assert_eq!(status, 405, "{method}");
    }
    let (status, _) = blocking_get(&daemon.url("/feeds/all.atom")).expect("answers");
    assert_eq!(status, 200);
}

/// The outputs, fetched and read by a real feed reader library (Python's feedparser, over
/// HTTP with its own headers): no parse errors,
/// every entry with its title, link, id and source.
fn outputs_parse_in_feedparser(engine: Engine) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    for s in 0..3 {
        publish(&server, s, &[0, 1, 2]);
    }
    // Titles that need escaping, and text in Chinese.
    server.put(
        "feeds/hostile.rss",
        "application/rss+xml; charset=utf-8",
        "<rss version=\"2.0\"><channel><title>内蒙古日报</title><link>http://h.example/</link><description>d</description>\
         <item><title>A &lt;b&gt; &amp; &quot;quotes&quot; 读书班</title><link>http://h.example/1</link><guid>h1</guid>\
         <description>&lt;p onclick=\"x()\"&gt;正文&lt;script&gt;alert(1)&lt;/script&gt;&lt;/p&gt;</description></item></channel></rss>",
    );
    let mut config = String::new();
    for s in 0..3 {
        config.push_str(&format!(
            "[[source]]\nname = \"s{s}\"\nurl = \"{}\"\n",
            server.url(&path_of(s))
        ));
    }
    config.push_str(&format!(
        "[[source]]\nname = \"hostile\"\nurl = \"{}\"\n[[feed]]\nname = \"all\"\n",
        server.url("feeds/hostile.rss")
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let store = engine.store();
    let daemon = Daemon::start_on(dir.path(), &store.section(), &config);
    daemon.wait_for("all entries", || {
        Some(try_entries(&daemon, "json")?.len() == 10)
    });
    for ext in ["atom", "rss", "json"] {
        // feedparser 6.0 reads Atom and RSS; JSON Feed goes through jsonfeed-util plus the
        // spec's own rules (content type, RFC 3339 dates).
        let script = r#"
import json, sys, urllib.request, datetime
url = sys.argv[1]
if url.endswith(".json"):
    import jsonfeed
    with urllib.request.urlopen(url) as r:
        ctype, raw = r.headers.get("content-type"), r.read().decode("utf-8")
    doc = json.loads(raw)
    feed = jsonfeed.Feed.parse(doc)
    for i in feed.items:
        datetime.datetime.fromisoformat(i.date_published)
    out = {
        "bozo": not (ctype.startswith("application/feed+json") and doc["version"] == "https://jsonfeed.org/version/1.1"),
        "error": ctype, "version": doc["version"],
        "titles": [i.title for i in feed.items], "links": [i.url for i in feed.items],
        "ids": [i.id for i in feed.items],
        "sources": [d["_feedmill"]["source"]["title"] for d in doc["items"]],
        "text": " ".join(i.content_html or "" for i in feed.items),
    }
else:
    import feedparser
    d = feedparser.parse(url)
    out = {
        "bozo": bool(d.bozo), "error": str(d.get("bozo_exception", "")), "version": d.version,
        "titles": [e.get("title") for e in d.entries],
        "links": [e.get("link") for e in d.entries],
        "ids": [e.get("id") for e in d.entries],
        "sources": [(e.get("source") or {}).get("title") for e in d.entries],
        "text": " ".join(e.get("summary", "") for e in d.entries),
    }
print(json.dumps(out))
"#;
        let output = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(daemon.url(&format!("/feeds/all.{ext}")))
            .output()
            .expect("python3 runs (bash .ci/run installs feedparser and jsonfeed-util)");
        assert!(
            output.status.success(),
            "feedparser failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let parsed: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
        assert_eq!(parsed["bozo"], false, "{ext}: {}", parsed["error"]);
        let titles: Vec<&str> = parsed["titles"]
            .as_array()
            .expect("titles")
            .iter()
            .filter_map(|t| t.as_str())
            .collect();
        assert_eq!(titles.len(), 10, "{ext}: {parsed}");
        // The literal `<b>` gets an invisible U+2060 after its `<`: it reads the same, and no
        // reader that renders titles as HTML takes it for a tag (issue 14, item 3).
        assert!(
            titles.contains(&"A <\u{2060}b> & \"quotes\" 读书班"),
            "{ext}: {titles:?}"
        );
        assert!(
            parsed["links"]
                .as_array()
                .expect("links")
                .iter()
                .all(|l| l.as_str().is_some_and(|l| l.starts_with("http://"))),
            "{ext}"
        );
        assert!(
            parsed["ids"]
                .as_array()
                .expect("ids")
                .iter()
                .all(|i| i.as_str().is_some_and(|i| i.starts_with("urn:uuid:"))),
            "{ext}"
        );
        let text = parsed["text"].as_str().expect("text");
        assert!(
            text.contains("正文") && !text.contains("alert") && !text.contains("onclick"),
            "{ext}: {text}"
        );
        assert!(
            parsed["sources"]
                .as_array()
                .expect("sources")
                .iter()
                .all(|s| s.is_string()),
            "{ext}: {parsed}"
        );
    }
}

/// The README's demo: the shipped feeds through `file://`, the shared story shown once as the
/// outlet's, naming the department that reposted it.
fn the_demo_serves_the_shared_story_once(engine: Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config");
    std::fs::create_dir(dir.path().join("demo")).expect("mkdir");
    for file in std::fs::read_dir(demo.join("demo")).expect("demo feeds") {
        let file = file.expect("entry").path();
        std::fs::copy(
            &file,
            dir.path()
                .join("demo")
                .join(file.file_name().expect("name")),
        )
        .expect("copy");
    }
    let config = std::fs::read_to_string(demo.join("demo.toml")).expect("demo.toml");
    let sources = &config[config.find("[fetch]").expect("a [fetch] section")..];
    let store = engine.store();
    let daemon = Daemon::start_on(dir.path(), &store.section(), sources);
    daemon.wait_for("the demo entries", || {
        let (_, body) = blocking_get(&daemon.url("/feeds/all.json"))?;
        let doc: serde_json::Value = serde_json::from_slice(&body).ok()?;
        Some(doc["items"].as_array()?.len() == 7)
    });
    let (_, body) = blocking_get(&daemon.url("/feeds/all.json")).expect("answers");
    let doc: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let story: Vec<&serde_json::Value> = doc["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|i| {
            i["title"]
                .as_str()
                .is_some_and(|t| t.contains("Reading Classes"))
        })
        .collect();
    assert_eq!(story.len(), 1, "{story:?}");
    assert_eq!(story[0]["_feedmill"]["source"]["name"], "imdaily");
    assert_eq!(
        story[0]["_feedmill"]["also"][0]["source"],
        "Department of Education of Inner Mongolia"
    );
}

on_each_engine!(
    thirty_sources_end_to_end,
    unknown_feeds_and_routes_are_404_and_nothing_changes_state,
    outputs_parse_in_feedparser,
    the_demo_serves_the_shared_story_once,
);
