//! What is republished cannot run in a reader (issue 14, items 2 and 3): no URL with a
//! scheme other than http(s) whatever `xml:base` says, and titles and author names without
//! a tag, in every output format and on the page. Each output is read by Python (the XML
//! and JSON parsers of its standard library) exactly as a reader would see it.

use crate::support::{Daemon, FeedServer};

const UPDATED: &str = "2026-11-30T08:00:00Z";

/// An Atom feed whose base (and an entry's) is a `javascript:` URL, with relative links in
/// the entry's link, content and enclosure.
fn atom_with_hostile_base() -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:base="javascript://x/%0Aalert(1)//">
<title>Base attack</title><id>urn:base-attack</id><updated>{UPDATED}</updated>
<entry xml:base="JaVaScRiPt://x/%0Aalert(2)//">
  <title>Atom base attack</title><id>urn:base-attack:1</id><updated>{UPDATED}</updated>
  <link href="clickme"/>
  <link rel="enclosure" href="clip.mp3" type="audio/mpeg" length="10"/>
  <content type="html">&lt;p&gt;&lt;a href="clickme"&gt;read&lt;/a&gt; &lt;img src="pic.png"&gt; &lt;a href="vbscript:msgbox(1)"&gt;vb&lt;/a&gt; &lt;a href=" java&amp;#x09;script:alert(3)"&gt;tab&lt;/a&gt;&lt;/p&gt;</content>
</entry>
</feed>"#
    )
}

/// An RSS feed with `xml:base` on its channel and item.
fn rss_with_hostile_base() -> String {
    r#"<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:xml="http://www.w3.org/XML/1998/namespace"><channel xml:base="javascript://x/%0Aalert(4)//">
<title>RSS base attack</title><link>http://r.example/</link><description>d</description>
<item xml:base="javascript://x/%0Aalert(5)//"><title>RSS base attack item</title><guid isPermaLink="false">r1</guid>
<description>&lt;a href="clickme"&gt;read&lt;/a&gt;</description></item>
</channel></rss>"#
        .to_string()
}

/// Titles and names that carry markup in RSS CDATA, JSON Feed and Atom `type="html"`.
fn rss_with_markup_titles() -> String {
    r#"<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/"><channel>
<title><![CDATA[<b onmouseover="alert(1)">Channel</b> title]]></title><link>http://t.example/</link><description>d</description>
<item><title><![CDATA[<script>alert(1)</script><img src=x onerror=alert(2)>Breaking news]]></title>
<link>http://t.example/1</link><guid>t1</guid><dc:creator><![CDATA[<img src=x onerror=alert(3)>Eve]]></dc:creator>
<description>body</description></item>
</channel></rss>"#
        .to_string()
}

fn json_with_markup_titles() -> String {
    serde_json::json!({
        "version": "https://jsonfeed.org/version/1.1",
        "title": "<script>alert(4)</script>JSON source",
        "home_page_url": "http://j.example/",
        "items": [{
            "id": "j1",
            "url": "http://j.example/1",
            "title": "<script>alert(5)</script><img src=x onerror=alert(6)>JSON title",
            "authors": [{"name": "<img src=x onerror=alert(7)>Mallory"}],
            "content_html": "<p>body</p>",
            "date_published": UPDATED,
        }]
    })
    .to_string()
}

fn atom_with_markup_titles() -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
<title type="html">&lt;script&gt;alert(8)&lt;/script&gt;Atom source</title><id>urn:markup</id><updated>{UPDATED}</updated>
<entry><title type="html">&lt;script&gt;alert(9)&lt;/script&gt;&amp;lt;img src=x onerror=alert(10)&amp;gt;Atom title</title>
<id>urn:markup:1</id><updated>{UPDATED}</updated><link href="http://a.example/1"/>
<author><name>&lt;b&gt;Trudy&lt;/b&gt;</name></author><content type="html">body</content></entry>
</feed>"#
    )
}

/// Starts a daemon on one server carrying `documents` (path, content type, body) as
/// sources, and waits until every source's entries are in every format.
/// The runtime returned runs the server: keep it while the daemon fetches.
fn daemon_on(
    documents: &[(&str, &str, String)],
    entries: usize,
) -> (tokio::runtime::Runtime, tempfile::TempDir, Daemon) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    let mut config = String::new();
    for (i, (path, content_type, body)) in documents.iter().enumerate() {
        server.put(path, content_type, body.clone());
        config.push_str(&format!(
            "[[source]]\nname = \"s{i}\"\nurl = \"{}\"\n",
            server.url(path)
        ));
    }
    config.push_str("[[feed]]\nname = \"all\"\ndedup = \"none\"\n");
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start(dir.path(), &config);
    daemon.wait_for("every entry in every format", || {
        let count = |ext: &str, marker: &str| {
            crate::support::blocking_get(&daemon.url(&format!("/feeds/all.{ext}")))
                .map(|(_, body)| String::from_utf8_lossy(&body).matches(marker).count())
        };
        Some(
            count("json", "\"id\":")? >= entries
                && count("atom", "<entry")? >= entries
                && count("rss", "<item")? >= entries,
        )
    });
    (runtime, dir, daemon)
}

/// Reads one output with Python the way a reader would: every URL (attributes of the
/// document, and attributes inside its HTML fields, entities decoded as a browser would) and
/// every title and name (the text a reader shows, or renders as HTML).
fn read_output(url: &str) -> serde_json::Value {
    let script = r#"
import html, json, re, sys, urllib.request
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

url = sys.argv[1]
raw = urllib.request.urlopen(url).read().decode("utf-8")
urls, titles, names, html_fields = [], [], [], []

class Links(HTMLParser):
    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("href", "src", "cite", "action", "poster", "background", "longdesc", "srcset") and v is not None:
                urls.append({"tag": tag, "attr": k, "url": v})

def local(tag):
    return tag.rsplit("}", 1)[-1]

if url.endswith(".json"):
    doc = json.loads(raw)
    titles.append(doc.get("title", ""))
    for key in ("home_page_url", "feed_url", "icon", "favicon"):
        if doc.get(key): urls.append({"tag": "doc", "attr": key, "url": doc[key]})
    for item in doc["items"]:
        titles.append(item.get("title", ""))
        for a in item.get("authors", []) + ([item["author"]] if "author" in item else []):
            names.append(a.get("name", ""))
            if a.get("url"): urls.append({"tag": "author", "attr": "url", "url": a["url"]})
        for key in ("url", "external_url", "image", "banner_image"):
            if item.get(key): urls.append({"tag": "item", "attr": key, "url": item[key]})
        for att in item.get("attachments", []):
            urls.append({"tag": "attachment", "attr": "url", "url": att["url"]})
        ext = item.get("_feedmill", {}).get("source", {})
        titles.append(ext.get("title", ""))
        for key, value in ext.items():
            if key != "title" and isinstance(value, str) and "/" in value:
                urls.append({"tag": "source", "attr": key, "url": value})
        for key in ("content_html", "summary"):
            if item.get(key): html_fields.append(item[key])
elif url.endswith(".atom") or url.endswith(".rss"):
    root = ET.fromstring(raw)
    for el in root.iter():
        name = local(el.tag)
        for k, v in el.attrib.items():
            if local(k) in ("href", "src", "url", "uri", "base"):
                urls.append({"tag": name, "attr": local(k), "url": v})
        text = el.text or ""
        if name in ("link", "uri", "comments", "docs", "icon", "logo", "url") and text.strip():
            urls.append({"tag": name, "attr": "text", "url": text.strip()})
        if name == "title":
            titles.append(text)
        if name in ("name", "creator", "author", "managingEditor", "webMaster"):
            names.append(text)
        if name in ("content", "summary", "description", "encoded"):
            html_fields.append(text)
else:
    html_fields.append(raw)

for field in html_fields:
    Links().feed(field)
print(json.dumps({"urls": urls, "titles": titles, "names": names, "raw": raw}))
"#;
    let output = std::process::Command::new("python3")
        .args(["-c", script, url])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "reading {url} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json")
}

/// The scheme of a URL as a browser reads it: surrounding whitespace and the tabs and
/// newlines inside it are ignored.
fn scheme_of(url: &str) -> Option<String> {
    let cleaned: String = url
        .trim_matches(|c: char| c.is_ascii_whitespace() || c.is_ascii_control())
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .collect();
    let colon = cleaned.find(':')?;
    let scheme = &cleaned[..colon];
    (!scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then(|| scheme.to_ascii_lowercase())
}

#[test]
fn no_output_url_has_a_scheme_but_http_whatever_xml_base_says() {
    let (_server, _dir, daemon) = daemon_on(
        &[
            (
                "a/base.atom",
                "application/atom+xml",
                atom_with_hostile_base(),
            ),
            ("r/base.rss", "application/rss+xml", rss_with_hostile_base()),
        ],
        2,
    );
    let server_root = {
        let status = daemon.status();
        let url = status
            .iter()
            .find(|s| s["name"] == "s0")
            .and_then(|s| s["url"].as_str())
            .expect("s0's url")
            .to_string();
        url.trim_end_matches("a/base.atom").to_string()
    };
    for path in ["/feeds/all.atom", "/feeds/all.rss", "/feeds/all.json", "/"] {
        let read = read_output(&daemon.url(path));
        let raw = read["raw"]
            .as_str()
            .unwrap_or_default()
            .to_ascii_lowercase();
        assert!(
            !raw.contains("javascript") && !raw.contains("vbscript") && !raw.contains("alert("),
            "{path} republishes the script: {raw}"
        );
        let urls = read["urls"].as_array().expect("urls");
        assert!(!urls.is_empty(), "{path}: no URL read at all");
        for found in urls {
            let url = found["url"].as_str().unwrap_or_default();
            let scheme = scheme_of(url);
            let allowed = match scheme.as_deref() {
                Some("http" | "https") => true,
                Some("data") => found["tag"] == "img" && found["attr"] == "src",
                _ => false,
            };
            assert!(allowed, "{path}: {found} is not an http(s) URL");
        }
        if path != "/" {
            // The hostile base is ignored: the relative link is taken from the feed's URL.
            let resolved = format!("{server_root}a/clickme");
            assert!(
                urls.iter().any(|u| u["url"] == resolved.as_str()),
                "{path}: {resolved} missing from {urls:?}"
            );
        }
    }
}

/// Whether `text` would open a tag in a reader that renders it as HTML, as it is or once
/// more entity-decoded.
fn opens_a_tag(text: &str) -> bool {
    let decoded = html_escape::decode_html_entities(text).into_owned();
    [text, decoded.as_str()].iter().any(|t| {
        t.as_bytes()
            .windows(2)
            .any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || b"/!?".contains(&w[1])))
    })
}

#[test]
fn titles_and_names_carry_no_markup_in_any_output() {
    let (_server, _dir, daemon) = daemon_on(
        &[
            (
                "t/markup.rss",
                "application/rss+xml",
                rss_with_markup_titles(),
            ),
            (
                "j/markup.json",
                "application/feed+json",
                json_with_markup_titles(),
            ),
            (
                "a/markup.atom",
                "application/atom+xml",
                atom_with_markup_titles(),
            ),
        ],
        3,
    );
    for ext in ["atom", "rss", "json"] {
        let read = read_output(&daemon.url(&format!("/feeds/all.{ext}")));
        let texts: Vec<&str> = ["titles", "names"]
            .iter()
            .flat_map(|k| read[*k].as_array().into_iter().flatten())
            .filter_map(|t| t.as_str())
            .collect();
        for text in &texts {
            assert!(!opens_a_tag(text), "{ext}: {text:?} carries a tag");
            // Script elements go with their text. (A lone tag-like run without a closing
            // tag, such as `<img src=x onerror=alert(3)>`, may stay as visible text: it is
            // neutralized, as `opens_a_tag` checks, so that `Vec<T>` stays `Vec<T>`.)
            for script in [1, 4, 5, 8, 9].map(|n| format!("alert({n})")) {
                assert!(!text.contains(&script), "{ext}: {text:?} keeps {script}");
            }
        }
        // The words survive, without their markup.
        let all = texts.join(" | ");
        for words in ["Breaking news", "JSON title", "Atom title"] {
            assert!(all.contains(words), "{ext}: {words:?} lost from {all}");
        }
        // RSS 2.0 output names no authors (its <author> is an e-mail address).
        if ext != "rss" {
            for name in ["Mallory", "Trudy", "Eve"] {
                assert!(all.contains(name), "{ext}: author {name:?} lost from {all}");
            }
        }
    }
}
