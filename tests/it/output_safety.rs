//! Nothing republished can run in a reader: URLs, titles, names; hostile HTML costs what its size costs (issue 14, items 2, 3, 8).
//!
//! Each test serves hostile sources from a local server, lets the real daemon fetch them, and
//! reads every output (the three feed documents and the page) as a reader would: the XML with
//! Python's ElementTree and feedparser, the JSON with `json`, the HTML inside them and the
//! page with `html.parser`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{blocking_get, Daemon, FeedServer};

/// Reads one output and reports, as JSON, every URL it carries (where, and the URL), every
/// title, name and category (where, as written, and decoded once more as a reader rendering
/// it as HTML would), its entry titles, and whether feedparser calls it malformed.
const READER: &str = r#"
import html, json, sys
from html.parser import HTMLParser
import xml.etree.ElementTree as ET

kind, path = sys.argv[1], sys.argv[2]
data = open(path, "rb").read()
urls, texts, titles = [], [], []
bozo = False
URL_ATTRIBUTES = {
    "href", "src", "cite", "action", "formaction", "poster", "background", "longdesc",
    "usemap", "codebase", "classid", "data", "manifest", "icon", "profile", "dynsrc",
    "lowsrc", "xlink:href", "srcset", "imagesrcset", "ping", "archive", "url", "uri",
}

class Html(HTMLParser):
    def __init__(self, where):
        super().__init__(convert_charrefs=True)
        self.where = where
    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in URL_ATTRIBUTES:
                urls.append([f"{self.where}: <{tag} {name}>", value or ""])
    handle_startendtag = handle_starttag

def html_urls(where, fragment):
    parser = Html(where)
    parser.feed(fragment)
    parser.close()

def local(tag):
    return tag.rsplit("}", 1)[-1]

if kind in ("atom", "rss"):
    import feedparser
    parsed = feedparser.parse(data)
    bozo = bool(parsed.bozo)
    for entry in parsed.entries:
        titles.append(entry.get("title", ""))
        for link in entry.get("links", []):
            urls.append(["feedparser link", link.get("href", "")])
    for element in ET.fromstring(data).iter():
        name = local(element.tag)
        for key, value in element.attrib.items():
            key = local(key)
            if key in URL_ATTRIBUTES:
                urls.append([f"<{name} {key}>", value])
            if key in ("title", "label", "term"):
                texts.append([f"<{name} {key}>", value])
        text = element.text or ""
        if len(element) == 0:
            if name in ("link", "url", "uri", "icon", "logo", "docs", "comments") and text.strip():
                urls.append([f"<{name}>", text.strip()])
            if name in ("title", "name", "author", "category", "source", "creator"):
                texts.append([f"<{name}>", text])
            if name in ("content", "summary", "description", "encoded", "subtitle"):
                html_urls(f"<{name}>", text)
elif kind == "json":
    document = json.loads(data)
    titles = [item.get("title", "") for item in document.get("items", [])]
    URL_KEYS = ("url", "external_url", "feed_url", "home_page_url", "image", "banner_image",
                "icon", "favicon", "avatar", "next_url")
    def walk(value, where):
        if isinstance(value, dict):
            for key, inner in value.items():
                at = f"{where}.{key}"
                if isinstance(inner, str):
                    if key in URL_KEYS:
                        urls.append([at, inner])
                    if key in ("title", "name", "source", "summary"):
                        texts.append([at, inner])
                    if key == "content_html":
                        html_urls(at, inner)
                else:
                    walk(inner, at)
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                if isinstance(inner, str):
                    texts.append([f"{where}[{index}]", inner])
                else:
                    walk(inner, f"{where}[{index}]")
    walk(document, "")
else:
    html_urls("page", data.decode("utf-8"))
print(json.dumps({
    "urls": urls,
    "texts": [[where, text, html.unescape(text)] for where, text in texts],
    "titles": titles,
    "bozo": bozo,
}))
"#;

/// What [`READER`] found in one output.
struct Read {
    urls: Vec<(String, String)>,
    texts: Vec<(String, String, String)>,
    titles: Vec<String>,
}

/// The outputs of feed `all`: the three documents and the page, each read by [`READER`].
fn read_outputs(daemon: &Daemon, dir: &Path) -> Vec<(&'static str, Read)> {
    let reader = dir.join("reader.py");
    std::fs::write(&reader, READER).expect("write the reader");
    [
        ("atom", "/feeds/all.atom"),
        ("rss", "/feeds/all.rss"),
        ("json", "/feeds/all.json"),
        ("page", "/"),
    ]
    .into_iter()
    .map(|(kind, path)| {
        let (status, body) = blocking_get(&daemon.url(path)).expect("the daemon answers");
        assert_eq!(status, 200, "{path}");
        let file = dir.join(format!("output.{kind}"));
        std::fs::write(&file, &body).expect("write the output");
        let output = std::process::Command::new("python3")
            .arg(&reader)
            .arg(kind)
            .arg(&file)
            .output()
            .expect("python3 runs (bash .ci/run installs feedparser)");
        assert!(
            output.status.success(),
            "reading {path} failed: {}\n{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&body)
        );
        let report: serde_json::Value =
            serde_json::from_slice(&output.stdout).expect("the reader prints JSON");
        assert_eq!(report["bozo"], false, "feedparser finds {path} malformed");
        let strings = |value: &serde_json::Value| -> Vec<String> {
            value
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| s.as_str().unwrap_or_default().to_string())
                .collect()
        };
        let read = Read {
            urls: report["urls"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|pair| {
                    let pair = strings(pair);
                    (pair[0].clone(), pair[1].clone())
                })
                .collect(),
            texts: report["texts"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|triple| {
                    let triple = strings(triple);
                    (triple[0].clone(), triple[1].clone(), triple[2].clone())
                })
                .collect(),
            titles: strings(&report["titles"]),
        };
        (kind, read)
    })
    .collect()
}

/// Whether a reader that renders `text` as HTML finds a tag in it.
fn has_tag(text: &str) -> bool {
    text.as_bytes()
        .windows(2)
        .any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || b"/!?".contains(&w[1])))
}

/// Every URL is absolute http(s), or a raster `data:` image in an `<img src>`.
fn assert_http_only(kind: &str, read: &Read) {
    for (at, url) in &read.urls {
        let image = at.ends_with("<img src>")
            && url.starts_with("data:image/")
            && !url.starts_with("data:image/svg");
        let http = url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        assert!(image || http, "{kind}: {at} is {url:?}");
    }
}

/// Starts a daemon on `sources` (name, URL) with one output feed, and waits until every
/// source has been fetched once.
fn daemon_for(dir: &Path, sources: &[(&str, String)]) -> Daemon {
    let mut config = String::new();
    for (name, url) in sources {
        config.push_str(&format!("[[source]]\nname = \"{name}\"\nurl = \"{url}\"\n"));
    }
    config.push_str("[[feed]]\nname = \"all\"\ntitle = \"All\"\nlimit = 50\ndedup = \"none\"\n");
    let daemon = Daemon::start(dir, &config);
    daemon.wait_for("every source fetched once", || {
        let status = daemon.try_status()?;
        Some(status.iter().all(|s| !s["last_fetch"].is_null()))
    });
    daemon
}

fn wait_for_titles(daemon: &Daemon, titles: &[&str]) {
    daemon.wait_for("the entries in /feeds/all.json", || {
        let (_, body) = blocking_get(&daemon.url("/feeds/all.json"))?;
        let text = String::from_utf8_lossy(&body).into_owned();
        Some(titles.iter().all(|t| text.contains(t)))
    });
}

/// Item 2: `xml:base="javascript://x/%0Aalert(1)//"` with a relative `href="clickme"` made
/// `javascript:` links in all three formats; other schemes and spellings are refused too.
#[test]
fn no_url_in_any_output_has_a_scheme_other_than_http() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    server.put(
        "base.atom",
        "application/atom+xml",
        r#"<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="javascript://x/%0Aalert(1)//">
<title>Base attack</title><id>urn:base</id><updated>2026-01-01T00:00:00Z</updated><link href="home"/>
<entry xml:base="JaVaScRiPt://x/%0Aalert(2)//"><id>urn:a1</id><title>Atom one</title><updated>2026-01-02T00:00:00Z</updated>
<link href="clickme"/>
<author><name>A</name><uri>javascript:alert(5)</uri></author>
<content type="html" xml:base="vbscript://x/">&lt;a href="clickme"&gt;a&lt;/a&gt;&lt;img src="i.png"&gt;&lt;a href="&amp;#106;avascript:alert(3)"&gt;b&lt;/a&gt;&lt;q cite="java&amp;#x09;script:alert(4)"&gt;q&lt;/q&gt;&lt;blockquote cite="javascript:alert(10)"&gt;bq&lt;/blockquote&gt;</content>
</entry>
<entry><id>urn:a2</id><title>Atom two</title><updated>2026-01-03T00:00:00Z</updated>
<link xml:base="data:text/html,x/" href="clickme2"/>
<summary type="html">&lt;a href=" javascript:alert(6)"&gt;s&lt;/a&gt;&lt;img src="data:image/svg+xml,&amp;lt;svg onload=alert(7)&amp;gt;"&gt;&lt;a href="file:///etc/passwd"&gt;f&lt;/a&gt;</summary>
</entry>
</feed>"#,
    );
    server.put(
        "base.rss",
        "application/rss+xml",
        r#"<?xml version="1.0"?>
<rss version="2.0" xml:base="javascript://x/%0Aalert(1)//"><channel><title>RSS base</title><link>home</link><description>d</description>
<item xml:base="file:///etc/"><title>RSS one</title><link>clickme</link><guid>r1</guid>
<description><![CDATA[<a href="clickme">a</a><img src="passwd"><a href="JAVASCRIPT:alert(1)">b</a><a href="java&#x0A;script:alert(2)">c</a>]]></description></item>
</channel></rss>"#,
    );
    server.put(
        "links.json",
        "application/feed+json",
        serde_json::json!({
            "version": "https://jsonfeed.org/version/1.1",
            "title": "JSON links",
            "home_page_url": "javascript:alert(1)",
            "items": [{
                "id": "j1",
                "url": "javascript:alert(2)",
                "external_url": "javascript:alert(5)",
                "title": "JSON one",
                "content_html": "<a href=\"clickme\">a</a><a href=\"javascript:alert(3)\">b</a><img src=\"\u{1}javascript:alert(4)\"><a href=\"vbscript:x\">v</a>"
            }]
        })
        .to_string(),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = daemon_for(
        dir.path(),
        &[
            ("atom", server.url("base.atom")),
            ("rss", server.url("base.rss")),
            ("json", server.url("links.json")),
        ],
    );
    wait_for_titles(&daemon, &["Atom one", "Atom two", "RSS one", "JSON one"]);
    let outputs = read_outputs(&daemon, dir.path());
    for (kind, read) in &outputs {
        assert_http_only(kind, read);
        if *kind != "page" {
            let mut titles = read.titles.clone();
            titles.sort();
            assert_eq!(
                titles,
                ["Atom one", "Atom two", "JSON one", "RSS one"],
                "{kind}"
            );
        }
    }
    // The hostile bases are ignored: relative links resolve against the feed's own URL.
    let origin = server.url("");
    let (_, atom) = &outputs[0];
    assert!(
        atom.urls
            .iter()
            .any(|(at, url)| at == "feedparser link" && *url == format!("{origin}clickme")),
        "the entry's link resolves against the feed's URL: {:?}",
        atom.urls
    );
    assert!(
        atom.urls
            .iter()
            .any(|(at, url)| at.contains("<a href>") && *url == format!("{origin}clickme")),
        "the content's link resolves against the feed's URL: {:?}",
        atom.urls
    );
}

/// Item 3: RSS titles in CDATA, JSON Feed titles and author names, Atom `type="html"`
/// titles were republished with their tags as text, which readers that render titles as
/// HTML would run.
#[test]
fn no_title_or_name_in_any_output_carries_a_tag() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    server.put(
        "titles.rss",
        "application/rss+xml",
        r#"<?xml version="1.0"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel><title><![CDATA[<b>RSS</b> source <script>alert(1)</script>]]></title><link>http://rss.example/</link><description>d</description>
<item><title><![CDATA[<script>alert(1)</script><img src=x onerror=alert(1)>Safe one]]></title><guid>r1</guid><link>http://rss.example/1</link>
<dc:creator><![CDATA[<img src=x onerror=alert(4)>Bob]]></dc:creator><category><![CDATA[<svg onload=alert(5)>]]></category></item>
<item><title>&lt;img src=x onerror=alert(2)&gt;Safe two</title><guid>r2</guid><link>http://rss.example/2</link></item>
<item><title>Caf&amp;eacute; a &lt; b</title><guid>r3</guid><link>http://rss.example/3</link></item>
</channel></rss>"#,
    );
    server.put(
        "titles.json",
        "application/feed+json",
        serde_json::json!({
            "version": "https://jsonfeed.org/version/1.1",
            "title": "<script>alert(6)</script>JSON source",
            "items": [{
                "id": "j1",
                "url": "http://json.example/1",
                "title": "<script>alert(6)</script>JSON safe<img src=x onerror=alert(6)>",
                "authors": [{"name": "<img src=x onerror=alert(7)>Carol"}],
                "tags": ["<b onclick=alert(8)>tag</b>"],
                "content_html": "<p>text</p>"
            }]
        })
        .to_string(),
    );
    server.put(
        "titles.atom",
        "application/atom+xml",
        r#"<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title type="html">&lt;i&gt;Atom&lt;/i&gt; source</title><id>urn:t</id><updated>2026-01-01T00:00:00Z</updated>
<entry><id>urn:t1</id><title type="html">&lt;script&gt;alert(8)&lt;/script&gt;&lt;b&gt;Atom&lt;/b&gt; safe</title><updated>2026-01-02T00:00:00Z</updated><link href="http://atom.example/1"/>
<author><name>&lt;i onmouseover="alert(9)"&gt;Dan&lt;/i&gt;</name></author></entry>
<entry><id>urn:t2</id><title type="html">&amp;lt;img src=x onerror=alert(10)&amp;gt;Atom escaped</title><updated>2026-01-03T00:00:00Z</updated><link href="http://atom.example/2"/></entry>
</feed>"#,
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = daemon_for(
        dir.path(),
        &[
            ("rss", server.url("titles.rss")),
            ("json", server.url("titles.json")),
            ("atom", server.url("titles.atom")),
        ],
    );
    wait_for_titles(
        &daemon,
        &[
            "Safe one",
            "Safe two",
            "JSON safe",
            "Atom safe",
            "Atom escaped",
        ],
    );
    for (kind, read) in read_outputs(&daemon, dir.path()) {
        if kind == "page" {
            continue;
        }
        for (at, text, decoded) in &read.texts {
            assert!(
                !has_tag(text) && !has_tag(decoded),
                "{kind}: {at} carries a tag: {text:?} (decoded once more: {decoded:?})"
            );
        }
        for title in &read.titles {
            assert!(!has_tag(title), "{kind}: the title {title:?}");
        }
        let titles = read.titles.join(" | ");
        for kept in [
            "Safe one",
            "Safe two",
            "JSON safe",
            "Atom safe",
            "Atom escaped",
            "Café a < b",
        ] {
            assert!(titles.contains(kept), "{kind}: {kept:?} is not in {titles}");
        }
        let texts: Vec<&str> = read
            .texts
            .iter()
            .map(|(_, text, _)| text.as_str())
            .collect();
        for name in ["Bob", "Carol", "Dan"] {
            assert!(
                texts.iter().any(|t| t.contains(name)) || kind == "rss",
                "{kind}: the name {name} is missing: {texts:?}"
            );
        }
    }
}

/// Sends SIGTERM and expects exit status 0 within 10 s; on failure the daemon is killed (as
/// `Daemon` is dropped), not left parsing.
fn assert_stops_at_once(daemon: &mut Daemon) {
    daemon.signal(libc::SIGTERM);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = daemon.try_wait() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not exit within 10 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
}

/// 100,000 nested `<div>` in an item (1.1 MB).
fn nested_divs() -> String {
    "&lt;div&gt;".repeat(100_000) + "deep text"
}

/// Item 8: one item of 100,000 nested `<div>` cost 18 s of CPU, held a parse slot so that a
/// good source waited three minutes, and SIGTERM then took 133 s. Beside it, a good source is
/// served at once, the hostile one's fetch completes, and SIGTERM exits at once.
#[test]
fn hostile_html_delays_no_source_and_no_shutdown() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    server.put(
        "hostile.rss",
        "application/rss+xml",
        format!(
            "<rss version=\"2.0\"><channel><title>Hostile</title><link>http://h.example/</link><description>d</description>\
             <item><title>Deep</title><guid>h1</guid><link>http://h.example/1</link><description>{}</description></item>\
             </channel></rss>",
            nested_divs()
        ),
    );
    server.put(
        "hostile.json",
        "application/feed+json",
        serde_json::json!({
            "version": "https://jsonfeed.org/version/1.1",
            "title": "Hostile JSON",
            "items": [
                {"id": "d", "title": "Deep JSON", "content_html": "<div>".repeat(100_000) + "deep text"},
                {"id": "f", "title": "Reopened JSON", "content_html": (0..20_000).map(|i| format!("<p><b title={i}>t</p>")).collect::<String>()},
            ]
        })
        .to_string(),
    );
    server.put(
        "good.rss",
        "application/rss+xml",
        "<rss version=\"2.0\"><channel><title>Good</title><link>http://g.example/</link><description>d</description>\
         <item><title>Good news</title><guid>g1</guid><link>http://g.example/1</link><description>fine</description></item>\
         </channel></rss>",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let config = format!(
        "[[source]]\nname = \"hostile\"\nurl = \"{}\"\n[[source]]\nname = \"hostile-json\"\nurl = \"{}\"\n\
         [[source]]\nname = \"good\"\nurl = \"{}\"\n[[feed]]\nname = \"all\"\ndedup = \"none\"\n",
        server.url("hostile.rss"),
        server.url("hostile.json"),
        server.url("good.rss")
    );
    let mut daemon = Daemon::start(dir.path(), &config);
    wait_for_titles(&daemon, &["Good news"]);
    let good_after = started.elapsed();
    assert!(
        good_after < Duration::from_secs(15),
        "the good source's entries took {good_after:?}"
    );
    daemon.wait_for("the hostile sources' entries", || {
        let status = daemon.try_status()?;
        Some(
            status
                .iter()
                .all(|s| s["items"].as_u64().unwrap_or_default() >= 1 && s["last_error"].is_null()),
        )
    });
    wait_for_titles(&daemon, &["Deep", "Deep JSON", "Reopened JSON"]);
    let (_, body) = blocking_get(&daemon.url("/feeds/all.json")).expect("answers");
    let feed: serde_json::Value = serde_json::from_slice(&body).expect("json");
    for item in feed["items"].as_array().expect("items") {
        let html = item["content_html"].as_str().unwrap_or_default();
        assert!(html.len() < 1_000_000, "{} bytes of content", html.len());
        if item["title"] != "Reopened JSON" && item["title"] != "Good news" {
            assert!(
                html.contains("deep text"),
                "the text stays: {}",
                &html[..html.len().min(200)]
            );
        }
    }
    assert_stops_at_once(&mut daemon);
}

/// SIGTERM while the daemon parses a hostile document: exit 0 within 10 s.
#[test]
fn sigterm_during_a_hostile_parse_exits_at_once() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    let items: String = (0..2)
        .map(|i| format!("<item><title>Deep {i}</title><guid>h{i}</guid><description>{}</description></item>", nested_divs()))
        .collect();
    server.put(
        "hostile.rss",
        "application/rss+xml",
        format!("<rss version=\"2.0\"><channel><title>Hostile</title><link>http://h.example/</link><description>d</description>{items}</channel></rss>"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut daemon = Daemon::start(
        dir.path(),
        &format!(
            "[[source]]\nname = \"hostile\"\nurl = \"{}\"\n[[feed]]\nname = \"all\"\n",
            server.url("hostile.rss")
        ),
    );
    // SIGTERM while it parses: once it has spent a second and a half of CPU on the document
    // (or is done with it).
    daemon.wait_for("the daemon parsing the hostile document", || {
        let fetched = daemon
            .try_status()?
            .iter()
            .any(|s| !s["last_fetch"].is_null());
        Some(fetched || daemon.cpu_time() >= Duration::from_millis(1500))
    });
    assert_stops_at_once(&mut daemon);
}
