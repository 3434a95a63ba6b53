//! The HTML page as a person sees it: loaded in headless Chromium (Debian's `chromium`,
//! installed by `.ci/run`), with a failing source and a source that carries script. A
//! screenshot at phone width is kept in `target/test-artifacts/home-375.png`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::support::{blocking_get, blocking_get_with, poll, Behavior, Daemon, FeedServer, Shared};

fn chromium() -> PathBuf {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
        .expect("chromium is not installed: `bash .ci/run` installs it (apt-get install chromium)")
}

/// Runs headless Chromium the way it works on this closed network.
fn headless(profile: &Path, args: &[&str]) -> std::process::Output {
    Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .output()
        .expect("chromium runs")
}

fn rss(title: &str, items: &str) -> String {
    format!("<rss version=\"2.0\"><channel><title>{title}</title><link>http://{title}.example/</link><description>d</description>{items}</channel></rss>")
}

const STORY: &str = "Departments across the Inner Mongolia Autonomous Region have organized themed education reading classes this month. Cadres studied the assigned texts in small groups, held discussions on how to apply them, and reported on the results in their daily work.";

/// One run of a daemon with a failing source and a source that carries script, its page
/// looked at once (by HTTP and in Chromium) and shared by the cases below. The daemon is
/// stopped once looked at.
struct Page {
    /// The daemon's port.
    port: u16,
    /// The status and headers `/` answered with.
    home: Option<(u16, HashMap<String, String>)>,
    /// Whether the page's own ETag answered 304 within 30 s.
    etag_answered_304: bool,
    /// What Chromium made of `/` and of `/feeds/daily-only`.
    home_dom: Dump,
    feed_dom: Dump,
    /// The screenshot at phone width, or what Chromium said when it made none.
    screenshot: Result<Vec<u8>, String>,
}

static PAGE: Shared<Page> = Shared::new();

/// The one run, made the first time a case asks for it.
fn page() -> &'static Page {
    PAGE.get(|| {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let server = runtime.block_on(FeedServer::start());
        serve_sources(&server);
        let mut config = String::from("[fetch]\nschedule = \"0 0 1 1 *\"\n");
        for name in ["daily", "repost", "evil", "down"] {
            config.push_str(&format!(
                "[[source]]\nname = \"{name}\"\nurl = \"{}\"\n",
                server.url(&format!("{name}.rss"))
            ));
        }
        config.push_str("[[feed]]\nname = \"all\"\ntitle = \"All the news\"\n[[feed]]\nname = \"daily-only\"\ntitle = \"Daily only\"\nsources = [\"daily\"]\n");
        let dir = tempfile::tempdir().expect("tempdir");
        let daemon = Daemon::start(dir.path(), &config);
        daemon.wait_for("every source to be tried, and the page to show it", || {
            let (_, body) = blocking_get(&daemon.url("/"))?;
            let page = String::from_utf8_lossy(&body).into_owned();
            Some(page.contains("Evil headline") && page.contains("failing"))
        });
        let home = blocking_get_with(&daemon.url("/"), &[])
            .map(|(status, headers, _)| (status, headers));
        // A commit of another source can still re-render the page between two requests: the
        // page's own ETag answers 304 once it stops changing.
        let etag_answered_304 = poll(Duration::from_secs(30), || {
            let (_, headers, _) = blocking_get_with(&daemon.url("/"), &[])?;
            let (status, _, _) =
                blocking_get_with(&daemon.url("/"), &[("if-none-match", &headers["etag"])])?;
            Some(status == 304)
        });
        // One profile for the three Chromiums, one after another, as a person's browser.
        let profile = tempfile::tempdir().expect("profile");
        let home_dom = dump_dom(profile.path(), &daemon.url("/"));
        let screenshot = screenshot(profile.path(), &daemon.url("/"));
        let feed_dom = dump_dom(profile.path(), &daemon.url("/feeds/daily-only"));
        Page {
            port: daemon.port,
            home,
            etag_answered_304,
            home_dom,
            feed_dom,
            screenshot,
        }
    })
}

impl Page {
    /// The daemon's URL of `path`.
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// Two sources that carry one story, one whose entry carries script, and one that fails.
fn serve_sources(server: &FeedServer) {
    server.put(
        "daily.rss",
        "application/rss+xml",
        rss(
            "daily",
            &format!("<item><guid>d1</guid><title>Reading classes across the region</title><link>https://daily.example/1</link><description>&lt;p&gt;{STORY}&lt;/p&gt;</description></item>\
             <item><guid>d2</guid><title>内蒙古日报：冬季供暖开始</title><link>https://daily.example/2</link><description>呼和浩特市今日起正式供暖。</description></item>"),
        ),
    );
    server.put(
        "repost.rss",
        "application/rss+xml",
        rss("repost", &format!("<item><guid>r1</guid><title>Reading classes (repost)</title><link>https://repost.example/1</link><description>&lt;p&gt;Reposted. {STORY}&lt;/p&gt;</description></item>")),
    );
    server.put(
        "evil.rss",
        "application/rss+xml",
        rss(
            "evil",
            "<item><guid>e1</guid><title>&lt;script&gt;document.title='pwned'&lt;/script&gt;Evil headline</title><link>javascript:alert(1)</link>\
             <description><![CDATA[<p onmouseover=\"alert(2)\">Harmless text</p><script>document.body.innerHTML='pwned'</script><img src=x onerror=\"alert(3)\"><a href=\"javascript:alert(4)\">x</a>]]></description></item>",
        ),
    );
    server.behave(
        "down.rss",
        Behavior::Status {
            status: 500,
            headers: vec![],
            body: vec![],
        },
    );
}

/// What Chromium printed of a page's DOM, and what it said on the way.
struct Dump {
    dom: String,
    stderr: String,
}

impl Dump {
    /// The DOM, which must be there.
    fn dom(&self) -> &str {
        assert!(
            self.dom.contains("<h1>"),
            "no DOM from chromium: {}",
            self.stderr
        );
        &self.dom
    }
}

/// The DOM Chromium builds of `url`, with the profile in `profile`.
fn dump_dom(profile: &Path, url: &str) -> Dump {
    let out = headless(profile, &["--dump-dom", url]);
    Dump {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A screenshot of `url` at phone width (with the profile in `profile`), kept in
/// `target/test-artifacts/home-375.png` for people to look at.
fn screenshot(profile: &Path, url: &str) -> Result<Vec<u8>, String> {
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    let shot = artifacts.join("home-375.png");
    let _ = std::fs::remove_file(&shot);
    let out = headless(
        profile,
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=375,1800",
            url,
        ],
    );
    std::fs::read(&shot).map_err(|_| String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn the_page_answers_with_the_security_headers() {
    let (status, headers) = page().home.as_ref().expect("answers");
    assert_eq!(*status, 200);
    let policy = &headers["content-security-policy"];
    assert!(
        policy.starts_with("default-src 'none'") && !policy.contains("script-src"),
        "{policy}"
    );
    assert_eq!(headers["x-content-type-options"], "nosniff");
}

/// The page validates like the feeds.
#[test]
fn the_page_answers_304_to_its_own_etag() {
    assert!(
        page().etag_answered_304,
        "the page's ETag never answered 304"
    );
}

/// Feeds with subscribe links, and autodiscovery in the head.
#[test]
fn the_page_lists_the_feeds_with_subscribe_links_and_autodiscovery() {
    let page = page();
    let dom = page.home_dom.dom();
    assert!(
        dom.contains("All the news") && dom.contains("Daily only"),
        "{dom}"
    );
    for link in [
        "/feeds/all.atom",
        "/feeds/all.rss",
        "/feeds/all.json",
        "/feeds/daily-only.atom",
    ] {
        assert!(dom.contains(&page.url(link)), "{link} missing");
    }
    assert!(dom.contains("rel=\"alternate\" type=\"application/atom+xml\""));
}

/// Entries: linked titles, their source, a time, an excerpt.
#[test]
fn the_page_shows_entries_with_their_link_time_and_excerpt() {
    let dom = page().home_dom.dom();
    assert!(
        dom.contains("href=\"https://daily.example/2\">内蒙古日报：冬季供暖开始</a>"),
        "{dom}"
    );
    assert!(dom.contains("<time datetime="));
    assert!(dom.contains("Departments across the Inner Mongolia"));
}

#[test]
fn a_story_two_sources_carry_shows_once_naming_the_other() {
    let dom = page().home_dom.dom();
    // Both are undated and seen in one round: either may be the one shown.
    let shown = [
        "href=\"https://daily.example/1\">Reading classes across the region</a></h3>",
        "href=\"https://repost.example/1\">Reading classes (repost)</a></h3>",
    ]
    .iter()
    .filter(|h| dom.contains(*h))
    .count();
    assert_eq!(shown, 1, "the shared story must show once: {dom}");
    assert!(dom.contains("Also carried by"), "{dom}");
}

/// Sources and their state, with the reason of the failure.
#[test]
fn the_page_shows_the_sources_and_why_one_fails() {
    let dom = page().home_dom.dom();
    assert!(dom.contains("HTTP 500 Internal Server Error"), "{dom}");
    assert!(dom.contains("sources.opml"));
}

/// Nothing from a feed runs: no script element, no handler, no javascript: link.
#[test]
fn nothing_from_a_feed_runs_on_the_page() {
    let dom = page().home_dom.dom();
    let lower = dom.to_lowercase();
    for bad in [
        "<script",
        "onmouseover",
        "onerror",
        "javascript:",
        "pwned</title>",
    ] {
        assert!(!lower.contains(bad), "{bad} in the DOM");
    }
    // The title is HTML (it has an end tag): its text shows, the script is gone (issue 14,
    // item 3).
    assert!(
        dom.contains("Evil headline") && !dom.contains("document.title"),
        "{dom}"
    );
    assert!(dom.contains("Harmless text"));
}

#[test]
fn a_screenshot_at_phone_width_is_not_blank() {
    let png = page()
        .screenshot
        .as_ref()
        .unwrap_or_else(|stderr| panic!("no screenshot: {stderr}"));
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "a blank screenshot?"
    );
}

/// The HTML view of one feed shows its own sources' entries only.
#[test]
fn a_feeds_own_page_shows_only_its_sources() {
    let dom = page().feed_dom.dom();
    assert!(
        dom.contains("<h1>Daily only</h1>") && dom.contains("Reading classes across the region")
    );
    assert!(
        !dom.contains("Evil headline"),
        "another source's entry in a feed view"
    );
}

/// `/sources.opml` as a feed reader imports it (Python's listparser).
#[test]
fn the_sources_opml_imports_in_a_reader() {
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start(
        dir.path(),
        "[[source]]\nname = \"a\"\nurl = \"https://a.example/feed?x=1&y=2\"\ntitle = \"A & B <news>\"\ntags = [\"news\"]\n\
         [[source]]\nname = \"b\"\nurl = \"https://b.example/atom\"\n[[feed]]\nname = \"all\"\n[fetch]\nschedule = \"0 0 1 1 *\"\n",
    );
    let script = r#"
import json, sys, listparser
result = listparser.parse(sys.argv[1])
print(json.dumps({"bozo": bool(result.bozo), "error": str(result.get("bozo_exception", "")),
    "feeds": [[f.url, f.title] for f in result.feeds]}))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(daemon.url("/sources.opml"))
        .output()
        .expect("python3 runs (bash .ci/run installs listparser)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(parsed["bozo"], false, "{}", parsed["error"]);
    assert_eq!(
        parsed["feeds"],
        serde_json::json!([
            ["https://a.example/feed?x=1&y=2", "A & B <news>"],
            ["https://b.example/atom", "b"]
        ])
    );
}

/// Excerpts read as the entry does: a space where a paragraph, a line break, a list item or
/// another block ended, never two sentences run together (issue 15, item 3).
#[test]
fn excerpts_keep_a_space_where_a_paragraph_or_a_line_break_was() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    server.put(
        "daily.rss",
        "application/rss+xml",
        rss(
            "daily",
            "<item><guid>p1</guid><title>Paragraphs</title><link>https://daily.example/p1</link>\
             <description>&lt;p&gt;Cadres reported on the results in their daily work.&lt;/p&gt;&lt;p&gt;Organizers said the classes would go on.&lt;/p&gt;\
             &lt;ul&gt;&lt;li&gt;First point&lt;/li&gt;&lt;li&gt;Second point&lt;/li&gt;&lt;/ul&gt;Line one&lt;br&gt;Line two&lt;h3&gt;Heading&lt;/h3&gt;Tail</description></item>",
        ),
    );
    let config = format!(
        "[fetch]\nschedule = \"0 0 1 1 *\"\n[[source]]\nname = \"daily\"\nurl = \"{}\"\n[[feed]]\nname = \"all\"\ntitle = \"All\"\n",
        server.url("daily.rss")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start(dir.path(), &config);
    let mut page = String::new();
    daemon.wait_for("the entry on the page", || {
        let (_, body) = blocking_get(&daemon.url("/"))?;
        page = String::from_utf8_lossy(&body).into_owned();
        Some(page.contains("Paragraphs</a>"))
    });
    let excerpt = page
        .split("<p class=\"excerpt\">")
        .nth(1)
        .and_then(|rest| rest.split("</p>").next())
        .unwrap_or_else(|| panic!("no excerpt on the page: {page}"));
    assert_eq!(
        excerpt,
        "Cadres reported on the results in their daily work. Organizers said the classes would go on. \
         First point Second point Line one Line two Heading Tail"
    );
}
