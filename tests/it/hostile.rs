//! The hostile web: every kind of broken or malicious source beside good ones, against the
//! real daemon. The daemon must stay up, keep the good sources flowing, keep its memory
//! bounded, republish nothing unsafe, fetch failing sources no more than backoff allows, and
//! say why each one fails.

use std::time::Duration;

use crate::support::{blocking_get, poll, Answer, Behavior, Daemon, FeedServer, Logged, Shared};

fn rss(title: &str, items: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><rss version=\"2.0\"><channel><title>{title}</title><link>http://good.example/</link><description>d</description>{items}</channel></rss>")
}

fn item(guid: &str, title: &str, extra: &str) -> String {
    format!("<item><guid>{guid}</guid><title>{title}</title><link>http://good.example/{guid}</link>{extra}</item>")
}

/// A gzip body that inflates to 1 GiB of spaces: one fixed-Huffman deflate block of a literal
/// and 4 million "copy 258 bytes from 1 back" matches, about 7 MB on the wire. Built bit by
/// bit because compressing 1 GiB in a debug build takes too long. Its CRC is left zero: a
/// reader that got as far as the trailer has already failed the test.
fn gzip_bomb() -> Vec<u8> {
    struct Bits {
        out: Vec<u8>,
        used: u32,
    }
    impl Bits {
        fn bit(&mut self, bit: u32) {
            if self.used.is_multiple_of(8) {
                self.out.push(0);
            }
            if bit != 0 {
                *self.out.last_mut().expect("byte") |= 1 << (self.used % 8);
            }
            self.used += 1;
        }
        /// Huffman codes go most significant bit first.
        fn code(&mut self, code: u32, len: u32) {
            for i in (0..len).rev() {
                self.bit((code >> i) & 1);
            }
        }
    }
    let matches = (1u64 << 30) / 258;
    let mut bits = Bits {
        out: vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff],
        used: 80,
    };
    bits.bit(1); // BFINAL
    bits.bit(1); // BTYPE = 01 (fixed Huffman), least significant bit first
    bits.bit(0);
    bits.code(0x30 + u32::from(b' '), 8); // the literal ' '
    for _ in 0..matches {
        bits.code(0b1100_0101, 8); // length code 285: 258 bytes
        bits.code(0, 5); // distance code 0: 1 back
    }
    bits.code(0, 7); // end of block
    let inflated = 1 + matches * 258;
    let mut out = bits.out;
    out.extend_from_slice(&[0, 0, 0, 0]);
    out.extend_from_slice(&(inflated as u32).to_le_bytes());
    out
}

/// Every source of the hostile web, by name and the path it is served at.
const SOURCES: &[(&str, &str)] = &[
    ("good-a", "good/a.rss"),
    ("good-b", "good/b.atom"),
    ("billion-laughs", "h/laughs.rss"),
    ("xxe", "h/xxe.rss"),
    ("gzip-bomb", "h/bomb.rss"),
    ("endless", "h/endless.rss"),
    ("trickle", "h/trickle.rss"),
    ("redirect-loop", "h/loop-a"),
    ("redirect-chain", "h/chain/0"),
    ("moved", "h/old.rss"),
    ("server-error", "h/500"),
    ("rate-limited", "h/429"),
    ("gone", "h/410"),
    ("truncated", "h/truncated.rss"),
    ("html-no-feed", "h/page.html"),
    ("html-with-feed", "h/home.html"),
    ("empty", "h/empty"),
    ("scripted", "h/script.rss"),
    ("xml-base", "h/base.atom"),
    ("odd-dates", "h/dates.rss"),
    ("gbk-header", "h/gbk.rss"),
    ("gb2312-declared", "h/gb2312.rss"),
    ("cp1252-declared", "h/cp1252.rss"),
    ("many-items", "h/many.rss"),
    ("huge-title", "h/huge-title.rss"),
    ("max-age", "h/max-age.rss"),
    ("ttl", "h/ttl.rss"),
    // feed-rs panics on this author (it slices inside the full-width parenthesis).
    ("crash-author", "h/crash-author.rss"),
];

fn serve_cases(server: &FeedServer) {
    let xml = "application/rss+xml";
    server.put(
        "good/a.rss",
        xml,
        rss("Good A", &item("a1", "Good A one", "")),
    );
    server.put(
        "good/b.atom",
        "application/atom+xml",
        "<feed xmlns=\"http://www.w3.org/2005/Atom\"><title>Good B</title><id>urn:b</id><updated>2026-01-01T00:00:00Z</updated><entry><id>urn:b1</id><title>Good B one</title><updated>2026-01-01T00:00:00Z</updated><link href=\"http://good.example/b1\"/></entry></feed>",
    );
    let laughs = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE rss [<!ENTITY lol \"lol\">{}]>{}",
        (1..10)
            .map(|i| format!(
                "<!ENTITY lol{i} \"{}\">",
                format!("&lol{};", i - 1).replace("lol0", "lol").repeat(10)
            ))
            .collect::<String>(),
        &rss(
            "Laughs",
            &item(
                "l1",
                "Laugh &lol9; end",
                "<description>&lol9;</description>"
            )
        )[38..]
    );
    server.put("h/laughs.rss", xml, laughs);
    server.put(
        "h/crash-author.rss",
        xml,
        rss(
            "Crash",
            &item("c1", "头条", "<author>desk@news.example（编辑部）</author>"),
        ),
    );
    let probe = server.url("h/xxe-probe");
    server.put(
        "h/xxe.rss",
        xml,
        format!(
            "<?xml version=\"1.0\"?><!DOCTYPE rss [<!ENTITY file SYSTEM \"file:///etc/passwd\"><!ENTITY net SYSTEM \"{probe}\">]>{}",
            &rss("XXE", &item("x1", "XXE &file; &net; end", "<description>&file;&net;</description>"))[38..]
        ),
    );
    server.behave(
        "h/bomb.rss",
        Behavior::Gzipped {
            body: gzip_bomb(),
            content_type: xml.into(),
        },
    );
    server.behave("h/endless.rss", Behavior::Endless);
    server.behave(
        "h/trickle.rss",
        Behavior::Trickle {
            every: Duration::from_secs(1),
        },
    );
    server.behave(
        "h/loop-a",
        Behavior::Redirect {
            status: 302,
            location: "/h/loop-b".into(),
        },
    );
    server.behave(
        "h/loop-b",
        Behavior::Redirect {
            status: 301,
            location: "loop-a".into(),
        },
    );
    for i in 0..12 {
        server.behave(
            &format!("h/chain/{i}"),
            Behavior::Redirect {
                status: 307,
                location: format!("/h/chain/{}", i + 1),
            },
        );
    }
    server.behave(
        "h/old.rss",
        Behavior::Redirect {
            status: 301,
            location: "/h/middle.rss".into(),
        },
    );
    server.behave(
        "h/middle.rss",
        Behavior::Redirect {
            status: 308,
            location: server.url("h/new.rss"),
        },
    );
    server.put("h/new.rss", xml, rss("Moved", &item("m1", "Moved one", "")));
    server.behave(
        "h/500",
        Behavior::Status {
            status: 500,
            headers: vec![],
            body: b"oops".to_vec(),
        },
    );
    server.behave(
        "h/429",
        Behavior::Status {
            status: 429,
            headers: vec![("retry-after", "120".into())],
            body: vec![],
        },
    );
    server.behave(
        "h/410",
        Behavior::Status {
            status: 410,
            headers: vec![],
            body: vec![],
        },
    );
    server.put("h/truncated.rss", xml, "<?xml version=\"1.0\"?>\n<rss version=\"2.0\"><channel><title>T</title>\n<item><guid>t1</guid><title>Cut off in the mid");
    server.put(
        "h/page.html",
        "text/html",
        "<!DOCTYPE html><html><head><title>Home</title></head><body>No feed</body></html>",
    );
    server.put(
        "h/home.html",
        "text/html; charset=utf-8",
        "<!DOCTYPE html><html><head><link rel=\"alternate\" type=\"application/rss+xml\" href=\"/h/discovered.rss\"></head><body></body></html>",
    );
    server.put(
        "h/discovered.rss",
        xml,
        rss("Discovered", &item("d1", "Discovered one", "")),
    );
    server.put("h/empty", xml, "");
    server.put(
        "h/script.rss",
        xml,
        rss(
            "Scripted",
            &item(
                "s1",
                "&lt;script&gt;alert('title')&lt;/script&gt;Scripted one",
                "<description><![CDATA[<p onmouseover=\"steal()\">Text</p><script>alert('body')</script><a href=\"javascript:alert(1)\">click</a><iframe src=\"http://evil.example/\"></iframe><img src=\"x.png\" onerror=\"steal()\">]]></description>",
            ),
        ),
    );
    server.put(
        "h/base.atom",
        "application/atom+xml",
        "<feed xmlns=\"http://www.w3.org/2005/Atom\" xml:base=\"http://base.example/news/\"><title>Base</title><id>urn:base</id><updated>2026-01-01T00:00:00Z</updated><entry><id>urn:base1</id><title>Relative one</title><updated>2026-01-01T00:00:00Z</updated><link href=\"2026/story.html\"/><content type=\"html\">&lt;a href=\"../about.html\"&gt;about&lt;/a&gt; &lt;img src=\"img/p.png\"&gt;</content></entry></feed>",
    );
    server.put(
        "h/dates.rss",
        xml,
        rss(
            "Dates",
            &[
                item(
                    "d-est",
                    "Named zone",
                    "<pubDate>Fri, 27 Nov 2026 08:30:00 EST</pubDate>",
                ),
                item("d-iso", "ISO", "<pubDate>2026-11-27T08:30:00</pubDate>"),
                item("d-day", "Date only", "<pubDate>2026-11-20</pubDate>"),
                item(
                    "d-junk",
                    "Garbage date",
                    "<pubDate>the day after tomorrow</pubDate>",
                ),
                item(
                    "d-future",
                    "Future date",
                    "<pubDate>Fri, 01 Jan 2100 00:00:00 GMT</pubDate>",
                ),
            ]
            .concat(),
        ),
    );
    let chinese = |title: &str| {
        rss(
            "内蒙古日报",
            &item("c1", title, "<description>主题教育读书班</description>"),
        )
    };
    let encoded = |encoding: &'static encoding_rs::Encoding, text: String| {
        encoding.encode(&text).0.into_owned()
    };
    // The header says GBK, the document (wrongly) says UTF-8: the header wins.
    server.put(
        "h/gbk.rss",
        "application/rss+xml; charset=GBK",
        encoded(encoding_rs::GBK, chinese("读书班 GBK")),
    );
    let gb2312 = chinese("读书班 GB2312").replace("encoding=\"utf-8\"", "encoding=\"gb2312\"");
    server.put(
        "h/gb2312.rss",
        "application/xml",
        encoded(encoding_rs::GBK, gb2312),
    );
    let cp1252 = rss("Café", &item("w1", "Café “Crème” – 5€", ""))
        .replace("encoding=\"utf-8\"", "encoding=\"windows-1252\"");
    server.put(
        "h/cp1252.rss",
        "text/xml",
        encoded(encoding_rs::WINDOWS_1252, cp1252),
    );
    let many: String = (0..100_000)
        .map(|i| format!("<item><guid>m{i}</guid><title>Item {i}</title></item>"))
        .collect();
    server.put("h/many.rss", xml, rss("Many", &many));
    server.put(
        "h/huge-title.rss",
        xml,
        rss("Huge", &item("big", &"B".repeat(5 * 1024 * 1024), "")),
    );
    server.behave(
        "h/max-age.rss",
        Behavior::Status {
            status: 200,
            headers: vec![
                ("cache-control", "public, max-age=3600".into()),
                ("content-type", xml.into()),
            ],
            body: rss("Cached", &item("c1", "Cached one", "")).into_bytes(),
        },
    );
    server.put(
        "h/ttl.rss",
        xml,
        rss(
            "TTL",
            &format!("<ttl>90</ttl>{}", item("t1", "TTL one", "")),
        ),
    );
}

fn config(server: &FeedServer) -> String {
    let mut config = String::from(
        "[fetch]\nschedule = \"* * * * * *\"\ntimeout = \"2s\"\nmax_body = \"16MiB\"\nper_host = 16\n\n",
    );
    for (name, path) in SOURCES {
        config.push_str(&format!(
            "[[source]]\nname = \"{name}\"\nurl = \"{}\"\n",
            server.url(path)
        ));
    }
    config.push_str("[[feed]]\nname = \"all\"\nlimit = 200\ndedup = \"none\"\nsources = [");
    let names: Vec<String> = SOURCES
        .iter()
        .filter(|(name, _)| *name != "many-items")
        .map(|(name, _)| format!("\"{name}\""))
        .collect();
    config.push_str(&names.join(", "));
    config.push_str("]\n");
    config
}

/// One run of the hostile web: every source at once against one daemon, watched once and
/// shared by the cases below, each of which judges what the daemon made of one source (or
/// what one costly document cost, measured beside it). The daemon must come through all of
/// them together. It is stopped once watched, so nothing keeps fetching for the rest of the
/// test process.
struct Web {
    /// The feed server's address.
    addr: std::net::SocketAddr,
    /// The server's log once every source had been tried.
    tried_log: Vec<Logged>,
    /// `status.json` and the server's log once the good sources had been fetched three
    /// more times, and when that was.
    settled: Vec<serde_json::Value>,
    settled_log: Vec<Logged>,
    settled_at: chrono::DateTime<chrono::Utc>,
    /// The daemon's memory once the moved feed had been fetched three times.
    rss_kib: u64,
    /// `/feeds/all.{atom,rss,json}` (status and body) once the discovered feed showed in
    /// them, or as they were after 30 s.
    outputs: Vec<(&'static str, Answer)>,
    /// The server's log when the daemon was stopped.
    ended_log: Vec<Logged>,
    /// What the costly documents cost through `feedmill fetch`, measured while the daemon
    /// ran: its run is mostly waiting for its schedule, and their work fills the wait.
    costs: Vec<Measured>,
}

static WEB: Shared<Web> = Shared::new();

/// The one run, made the first time a case asks for it.
fn web() -> &'static Web {
    WEB.get(|| {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let server = runtime.block_on(FeedServer::start());
        let dir = tempfile::tempdir().expect("tempdir");
        let costs_dir = dir.path().join("costs");
        std::fs::create_dir(&costs_dir).expect("costs dir");
        // Scoped: the measuring thread is joined even when watching the daemon fails, so no
        // `feedmill fetch` outlives the tests.
        std::thread::scope(|scope| {
            let costs = scope.spawn(|| measure_costly_documents(&server, &costs_dir));
            serve_cases(&server);
            let mut web = watch(&server, dir.path());
            web.costs = costs.join().expect("the costly documents measured");
            web
        })
    })
}

/// Runs a daemon in `dir` against the hostile web `server` serves, and watches it.
fn watch(server: &FeedServer, dir: &std::path::Path) -> Web {
    let daemon = Daemon::start(dir, &config(server));
    // Every source has been tried and the good ones keep flowing: three more rounds.
    daemon.wait_for("every source to be tried", || {
        Some(
            daemon
                .try_status()?
                .iter()
                .all(|r| !r["last_fetch"].is_null()),
        )
    });
    let tried_log = server.log();
    daemon.wait_for("three more rounds of the good sources", || {
        Some(server.hits("good/a.rss") >= 4 && server.hits("good/b.atom") >= 4)
    });
    let (settled, settled_log, settled_at) = (daemon.status(), server.log(), chrono::Utc::now());
    // The waits below are what one case judges: if one times out, that case says so.
    poll(Duration::from_secs(30), || {
        Some(server.hits("h/new.rss") >= 3)
    });
    let rss_kib = daemon.rss_kib();
    poll(Duration::from_secs(30), || {
        let (_, body) = blocking_get(&daemon.url("/feeds/all.atom"))?;
        Some(String::from_utf8_lossy(&body).contains("Discovered one"))
    });
    let outputs = ["atom", "rss", "json"]
        .into_iter()
        .map(|ext| (ext, blocking_get(&daemon.url(&format!("/feeds/all.{ext}")))))
        .collect();
    Web {
        addr: server.addr,
        tried_log,
        settled,
        settled_log,
        settled_at,
        rss_kib,
        outputs,
        ended_log: server.log(),
        costs: Vec::new(),
    }
}

impl Web {
    /// The feed server's URL of `path`.
    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    /// A source's report in `status.json` once the web had settled.
    fn report(&self, name: &str) -> &serde_json::Value {
        self.settled
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no source {name} in status.json"))
    }

    /// `name` worked: it reports no error.
    fn works(&self, name: &str) {
        let report = self.report(name);
        assert!(report["last_error"].is_null(), "{name}: {report}");
    }

    /// `name` failed, says why, and counted the failure toward backoff.
    fn fails_with(&self, name: &str, reason: &str) {
        let report = self.report(name);
        let got = report["last_error"].as_str().unwrap_or_default();
        assert!(
            got.contains(reason),
            "{name}: wanted {reason:?}, got {report}"
        );
        assert!(
            report["consecutive_failures"].as_u64() >= Some(1),
            "{name}: {report}"
        );
    }

    /// How many requests `path` had had once the web had settled.
    fn hits(&self, path: &str) -> usize {
        self.settled_log.iter().filter(|l| l.path == path).count()
    }

    /// How many requests `path` had had once every source had been tried.
    fn hits_when_tried(&self, path: &str) -> usize {
        self.tried_log.iter().filter(|l| l.path == path).count()
    }

    /// How many requests `path` had had when the daemon was stopped.
    fn hits_at_end(&self, path: &str) -> usize {
        self.ended_log.iter().filter(|l| l.path == path).count()
    }

    /// A failing source was fetched once while the good ones were fetched four times:
    /// backoff starts at a minute, whatever the schedule.
    fn fetched_once(&self, path: &str) {
        assert_eq!(
            self.hits(path),
            1,
            "{path} was fetched more often than backoff allows"
        );
    }

    /// `name`'s next fetch was planned more than `seconds` after the web had settled.
    fn next_fetch_later_than(&self, name: &str, seconds: i64, why: &str) {
        let report = self.report(name);
        let next = chrono::DateTime::parse_from_rfc3339(
            report["next_fetch"].as_str().expect("next_fetch"),
        )
        .expect("date");
        assert!(
            next > self.settled_at + chrono::Duration::seconds(seconds),
            "{why}: {report}"
        );
    }

    /// Every output's text, by extension (whether each answered, and in UTF-8, is one
    /// case's to judge).
    fn outputs(&self) -> impl Iterator<Item = (&str, std::borrow::Cow<'_, str>)> {
        self.outputs.iter().map(|(ext, answer)| {
            let body = answer.as_ref().map_or(&[][..], |(_, body)| body);
            (*ext, String::from_utf8_lossy(body))
        })
    }

    /// Every output carries each of `wanted`.
    fn every_output_has(&self, wanted: &[&str]) {
        for (ext, text) in self.outputs() {
            for wanted in wanted {
                assert!(text.contains(wanted), "{ext} lacks {wanted:?}");
            }
        }
    }

    /// No output carries `bad`, in any case of letters.
    fn no_output_has(&self, bad: &[&str]) {
        for (ext, text) in self.outputs() {
            let lower = text.to_lowercase();
            for bad in bad {
                assert!(!lower.contains(bad), "{ext} republished {bad:?}");
            }
        }
    }

    /// The items of the JSON Feed output.
    fn json_items(&self) -> Vec<serde_json::Value> {
        let (_, json) = self
            .outputs()
            .find(|(ext, _)| *ext == "json")
            .expect("json");
        let json: serde_json::Value = serde_json::from_str(&json).expect("json");
        json["items"].as_array().expect("items").clone()
    }
}

#[test]
fn the_good_sources_keep_flowing_beside_the_hostile_ones() {
    let web = web();
    web.works("good-a");
    web.works("good-b");
    // Three more rounds while the hostile sources failed (the run waits for them, and
    // fails every case if they never come: no case could judge backoff without them).
    for path in ["good/a.rss", "good/b.atom"] {
        assert!(web.hits(path) >= 4, "{path} stopped being fetched");
    }
    web.every_output_has(&["Good A one", "Good B one"]);
}

#[test]
fn every_output_answers_in_utf_8() {
    for (ext, answer) in &web().outputs {
        let (status, body) = answer.as_ref().expect("answers");
        assert_eq!(*status, 200, "{ext}");
        assert!(std::str::from_utf8(body).is_ok(), "{ext}: not UTF-8 output");
    }
}

#[test]
fn the_daemons_memory_stays_bounded() {
    // The gzip bomb was not inflated, the endless body not kept.
    let rss = web().rss_kib;
    assert!(rss < 150 * 1024, "daemon RSS is {rss} KiB");
}

#[test]
fn a_gzip_bomb_is_cut_at_max_body() {
    web().fails_with("gzip-bomb", "body larger than 16 MiB");
    web().fetched_once("h/bomb.rss");
}

#[test]
fn an_endless_body_is_cut_at_max_body() {
    web().fails_with("endless", "body larger than 16 MiB");
    web().fetched_once("h/endless.rss");
}

#[test]
fn a_trickling_body_times_out() {
    web().fails_with("trickle", "timed out after 2s");
    web().fetched_once("h/trickle.rss");
}

#[test]
fn a_redirect_loop_is_named_as_one() {
    web().fails_with("redirect-loop", "redirect loop");
}

#[test]
fn a_chain_of_more_than_ten_redirects_is_not_followed() {
    web().fails_with("redirect-chain", "more than 10 redirects");
}

#[test]
fn a_permanent_move_is_followed_and_remembered() {
    let web = web();
    web.works("moved");
    let moved = web.report("moved");
    assert_eq!(moved["url"], web.url("h/new.rss"), "{moved}");
    // Once moved, the old URL is not asked again, while the new one is.
    assert!(
        web.hits_at_end("h/new.rss") >= 3,
        "the moved feed was not fetched again"
    );
    assert_eq!(
        web.hits_at_end("h/old.rss"),
        web.hits_when_tried("h/old.rss"),
        "the old URL was fetched after the move"
    );
    web.every_output_has(&["Moved one"]);
}

#[test]
fn a_server_error_waits_out_its_backoff() {
    web().fails_with("server-error", "HTTP 500 Internal Server Error");
    web().fetched_once("h/500");
}

#[test]
fn a_rate_limited_source_waits_as_long_as_retry_after_says() {
    let web = web();
    web.fails_with(
        "rate-limited",
        "HTTP 429 Too Many Requests (retry after 2m)",
    );
    web.fetched_once("h/429");
    web.next_fetch_later_than("rate-limited", 100, "Retry-After ignored");
}

#[test]
fn a_gone_source_is_disabled() {
    let web = web();
    web.fails_with("gone", "410 Gone: disabled");
    web.fetched_once("h/410");
    assert!(
        web.report("gone")["next_fetch"].is_null(),
        "a gone source must not be planned"
    );
}

#[test]
fn a_truncated_document_says_where_it_breaks() {
    web().fails_with("truncated", "XML error at line 3");
    web().fetched_once("h/truncated.rss");
}

#[test]
fn an_html_page_without_a_feed_link_is_no_feed() {
    web().fails_with("html-no-feed", "not a feed: HTML page without a feed link");
    web().fetched_once("h/page.html");
}

/// Autodiscovery: the HTML page led to its feed; a feed link never moves the source.
#[test]
fn an_html_page_leads_to_its_feed_without_moving_the_source() {
    let web = web();
    web.works("html-with-feed");
    assert_eq!(web.report("html-with-feed")["url"], web.url("h/home.html"));
    web.every_output_has(&["Discovered one"]);
}

#[test]
fn an_empty_body_is_reported_as_empty() {
    web().fails_with("empty", "empty body");
    web().fetched_once("h/empty");
}

#[test]
fn entities_are_not_expanded() {
    let web = web();
    web.works("billion-laughs");
    for (ext, text) in web.outputs() {
        assert!(
            !text.contains("lollollollol"),
            "{ext}: entities were expanded"
        );
    }
}

#[test]
fn external_entities_are_neither_read_nor_fetched() {
    let web = web();
    web.works("xxe");
    assert_eq!(
        web.hits_at_end("h/xxe-probe"),
        0,
        "an external entity was fetched"
    );
    web.no_output_has(&["root:x:0"]);
}

#[test]
fn nothing_unsafe_is_republished() {
    let web = web();
    web.works("scripted");
    web.no_output_has(&[
        "<script",
        "javascript:",
        "onmouseover",
        "onerror",
        "<iframe",
    ]);
    web.every_output_has(&["Text"]);
    let items = web.json_items();
    let titles: Vec<&str> = items.iter().filter_map(|i| i["title"].as_str()).collect();
    // The title is HTML (it has an end tag): plain text is its text, the script gone
    // (issue 14, item 3).
    assert!(
        titles.contains(&"Scripted one"),
        "titles are plain text, markup removed: {titles:?}"
    );
}

#[test]
fn relative_links_resolve_against_xml_base() {
    let web = web();
    web.works("xml-base");
    web.every_output_has(&[
        "http://base.example/news/2026/story.html",
        "http://base.example/about.html",
        "http://base.example/news/img/p.png",
    ]);
}

#[test]
fn odd_dates_are_read_and_future_ones_not_kept() {
    let web = web();
    web.works("odd-dates");
    web.every_output_has(&["Named zone", "Garbage date", "Future date"]);
    let now = chrono::Utc::now();
    for item in web.json_items() {
        let published =
            chrono::DateTime::parse_from_rfc3339(item["date_published"].as_str().expect("date"))
                .expect("rfc3339");
        assert!(published <= now, "a future date was kept: {item}");
        if item["title"] == "Named zone" {
            assert_eq!(item["date_published"], "2026-11-27T13:30:00+00:00");
        }
    }
}

/// The header says GBK, the document (wrongly) says UTF-8: the header wins.
#[test]
fn a_charset_in_the_header_wins_over_the_document() {
    web().works("gbk-header");
    web().every_output_has(&["读书班 GBK", "主题教育读书班"]);
}

#[test]
fn a_charset_the_document_declares_is_decoded() {
    let web = web();
    web.works("gb2312-declared");
    web.works("cp1252-declared");
    web.every_output_has(&["读书班 GB2312", "主题教育读书班", "Café", "Crème", "5€"]);
}

#[test]
fn a_feed_of_100000_items_keeps_the_first_5000() {
    let web = web();
    web.works("many-items");
    let many = web.report("many-items");
    assert_eq!(
        many["items"], 5000,
        "the first 5,000 of 100,000 items are kept: {many}"
    );
}

#[test]
fn a_5_mb_title_is_cut() {
    let web = web();
    web.works("huge-title");
    for (ext, text) in web.outputs() {
        assert!(
            !text.contains(&"B".repeat(1002)),
            "{ext}: the 5 MB title was not cut"
        );
    }
}

/// A server's max-age stretches the every-second schedule.
#[test]
fn a_servers_max_age_stretches_the_schedule() {
    let web = web();
    web.works("max-age");
    web.next_fetch_later_than("max-age", 3500, "max-age");
    assert_eq!(
        web.hits("h/max-age.rss"),
        1,
        "h/max-age.rss was fetched before it went stale"
    );
}

/// A feed's `<ttl>` stretches the every-second schedule.
#[test]
fn a_feeds_ttl_stretches_the_schedule() {
    let web = web();
    web.works("ttl");
    web.next_fetch_later_than("ttl", 5300, "ttl");
    assert_eq!(
        web.hits("h/ttl.rss"),
        1,
        "h/ttl.rss was fetched before it went stale"
    );
}

#[test]
fn an_author_that_made_feed_rs_panic_is_read() {
    web().works("crash-author");
}

/// When no server answers at all, the fault is more likely ours (the network is down) than
/// every source's: such failures are reported but do not push the sources into backoff.
#[test]
fn a_network_outage_does_not_count_toward_backoff() {
    let closed = crate::support::free_port();
    let mut config = String::from("[fetch]\nschedule = \"* * * * * *\"\n");
    for i in 0..3 {
        config.push_str(&format!(
            "[[source]]\nname = \"down{i}\"\nurl = \"http://127.0.0.1:{closed}/{i}.rss\"\n"
        ));
    }
    config.push_str("[[feed]]\nname = \"all\"\n");
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start(dir.path(), &config);
    daemon.wait_for("a first round of failed fetches", || {
        Some(
            daemon
                .try_status()?
                .iter()
                .all(|r| r["last_error"].is_string()),
        )
    });
    let first: Vec<serde_json::Value> = daemon
        .status()
        .into_iter()
        .map(|r| r["last_fetch"].clone())
        .collect();
    daemon.wait_for("two more rounds", || {
        let now: Vec<serde_json::Value> = daemon
            .status()
            .into_iter()
            .map(|r| r["last_fetch"].clone())
            .collect();
        Some(now.iter().zip(&first).all(|(a, b)| a != b))
    });
    for report in daemon.status() {
        assert_eq!(report["consecutive_failures"], 0, "{report}");
        let error = report["last_error"].as_str().expect("an error");
        assert!(error.contains("our own network may be down"), "{report}");
    }
}

// ---- Small documents that cost the square of their size (issue 15, attack review) ----

/// What one `feedmill fetch` of one source cost the process: CPU time and peak memory.
struct Cost {
    cpu: Duration,
    /// Its memory's high-water mark as /proc showed it, sampled every 10 ms while it ran.
    peak_kib: u64,
    stdout: String,
}

/// The most memory the running process `pid` has held (`VmHWM`), in KiB; 0 once it is gone.
/// Read from /proc while it runs, not taken from wait4's `ru_maxrss`: a child started with
/// posix_spawn (a vfork) takes this test process's own high-water mark with it through exec,
/// and that one grows with whatever the other tests hold.
fn high_water_kib(pid: libc::pid_t) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Runs `feedmill fetch` of the one source at `url`, with a store of its own in `dir`;
/// `None` when it was still running after `budget` (and was killed).
// The child is reaped with wait4, which reports its resource usage, not with `wait()`.
#[allow(clippy::zombie_processes)]
fn fetch_cost(dir: &std::path::Path, name: &str, url: &str, budget: Duration) -> Option<Cost> {
    use std::io::Read;
    let config = dir.join(format!("{name}.toml"));
    let store = dir.join(format!("store-{name}"));
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"{}\"\n\n[[source]]\nname = \"s\"\nurl = \"{url}\"\n\n[[feed]]\nname = \"all\"\n",
            store.display()
        ),
    )
    .expect("write config");
    let mut child = crate::support::feedmill()
        .arg("fetch")
        .arg("-c")
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("runs");
    let pid = child.id() as libc::pid_t;
    let started = std::time::Instant::now();
    // SAFETY: rusage is plain data that wait4 fills in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut status = 0;
    let mut peak_kib = 0;
    loop {
        peak_kib = peak_kib.max(high_water_kib(pid));
        // SAFETY: waits for our own child only; writes the two out-parameters.
        let waited = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if waited == pid {
            break;
        }
        if started.elapsed() > budget {
            let _ = child.kill();
            // SAFETY: as above, blocking this time (the child was just killed).
            unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Some(Cost {
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        peak_kib,
        stdout,
    })
}

/// An RSS document of about `size` bytes of plain items.
fn plain_rss(size: usize) -> String {
    let mut items = String::new();
    let mut i = 0;
    while items.len() < size {
        items.push_str(&format!(
            "<item><guid>p{i}</guid><title>Item {i}</title><description>&lt;p&gt;Text of item {i}&lt;/p&gt;</description></item>"
        ));
        i += 1;
    }
    rss("Plain", &items)
}

/// What a costly document is, its content type, the document, and the document it is held
/// to (`None`: plain items of its size).
type CostlyDocument = (&'static str, &'static str, String, Option<String>);

/// Documents of a few hundred kB each made the reader, the sanitizer or the serializer do
/// work (or hold memory) in the square of their size: a gigabyte for 300 kB of xml:base,
/// minutes for a text of ampersands. Each is held to a document of its size and shape.
fn costly_documents() -> Vec<CostlyDocument> {
    let authors = vec!["{\"name\": \"A\"}"; 2500].join(",");
    let json_feed = |authors: &str| {
        format!(
            "{{\"version\": \"https://jsonfeed.org/version/1.1\", \"title\": \"J\", \"authors\": [{authors}], \"items\": [{}]}}",
            (0..2500)
                .map(|i| format!("{{\"id\": \"{i}\", \"title\": \"Item {i}\"}}"))
                .collect::<Vec<_>>()
                .join(",")
        )
    };
    vec![
        (
            "a long xml:base over every item",
            "application/rss+xml",
            format!(
                "<rss version=\"2.0\"><channel xml:base=\"http://base.example/{}/\"><title>B</title>{}</channel></rss>",
                "a".repeat(100_000),
                (0..5000)
                    .map(|i| format!("<item><guid>b{i}</guid><description>x</description></item>"))
                    .collect::<String>()
            ),
            None,
        ),
        (
            "nested relative xml:base",
            "application/rss+xml",
            format!(
                "<rss version=\"2.0\"><channel><title>N</title>{}{}{}</channel></rss>",
                "<x xml:base=\"a/\">".repeat(15_000),
                "</x>".repeat(15_000),
                item("n1", "Nested", "")
            ),
            None,
        ),
        (
            "the feed's authors for every item",
            "application/feed+json",
            json_feed(&authors),
            // The same items, the authors white space of the same length.
            Some(json_feed(&" ".repeat(authors.len()))),
        ),
        (
            "a text of ampersands",
            "application/rss+xml",
            rss(
                "A",
                &item("a1", "Ampersands", &format!("<description>{}</description>", "&amp;".repeat(100_000))),
            ),
            None,
        ),
    ]
}

/// What one costly document and the plain one of its size cost through `feedmill fetch`.
struct Measured {
    what: &'static str,
    size: usize,
    /// `None`: the plain document was still being fetched after a minute.
    plain: Option<Cost>,
    /// `None`: the costly one was still being fetched after `budget`.
    hostile: Option<Cost>,
    budget: Duration,
}

/// Measures each of [`costly_documents`], served by `server`, with stores in `dir`: two at a
/// time, as what one costs is its own process's CPU time and memory.
fn measure_costly_documents(server: &FeedServer, dir: &std::path::Path) -> Vec<Measured> {
    let documents: Vec<_> = costly_documents().into_iter().enumerate().collect();
    let (first, second) = documents.split_at(documents.len() / 2);
    let measure_all = |documents: &[(usize, CostlyDocument)]| -> Vec<Measured> {
        documents
            .iter()
            .map(|(i, document)| measure(server, dir, *i, document))
            .collect()
    };
    std::thread::scope(|scope| {
        let second = scope.spawn(|| measure_all(second));
        let mut measured = measure_all(first);
        measured.extend(second.join().expect("the costly documents measured"));
        measured
    })
}

/// Measures one of [`costly_documents`], the `i`th, and the plain document of its size.
fn measure(
    server: &FeedServer,
    dir: &std::path::Path,
    i: usize,
    (what, content_type, hostile, baseline): &CostlyDocument,
) -> Measured {
    let baseline = baseline.clone().unwrap_or_else(|| plain_rss(hostile.len()));
    let (hostile_path, plain_path) = (format!("hostile-{i}"), format!("plain-{i}"));
    server.put(&hostile_path, content_type, hostile.clone());
    server.put(&plain_path, content_type, baseline);
    let plain = fetch_cost(
        dir,
        &plain_path,
        &server.url(&plain_path),
        Duration::from_secs(60),
    );
    // Quadratic work on these sizes takes tens of seconds: it is stopped well before.
    let budget = plain.as_ref().map_or(Duration::ZERO, |p| p.cpu * 10) + Duration::from_secs(5);
    let cost = plain
        .as_ref()
        .and_then(|_| fetch_cost(dir, &hostile_path, &server.url(&hostile_path), budget));
    Measured {
        what,
        size: hostile.len(),
        plain,
        hostile: cost,
        budget,
    }
}

/// Through the real binary, the costly document `what` costs about what a document of its
/// size and shape does: CPU time and peak memory.
fn costs_what_its_size_does(what: &str) {
    let measured = web()
        .costs
        .iter()
        .find(|m| m.what == what)
        .unwrap_or_else(|| panic!("{what} was not measured"));
    let size = measured.size;
    let plain = measured
        .plain
        .as_ref()
        .expect("a plain document is fetched");
    assert!(
        plain.stdout.contains(" ok "),
        "{what}, plain: {}",
        plain.stdout
    );
    let cost = measured.hostile.as_ref().unwrap_or_else(|| {
        panic!(
            "{what} ({size} bytes): still running after {:?}",
            measured.budget
        )
    });
    let mut failures = Vec::new();
    if !cost.stdout.contains(" ok ") {
        failures.push(format!("{what}: {}", cost.stdout.trim()));
    }
    if cost.cpu > plain.cpu * 4 + Duration::from_secs(1) {
        failures.push(format!(
            "{what} ({size} bytes): {:?} of CPU, a plain document of its size {:?}",
            cost.cpu, plain.cpu
        ));
    }
    if cost.peak_kib > plain.peak_kib + 64 * 1024 {
        failures.push(format!(
            "{what} ({size} bytes): {} KiB at the most, a plain document of its size {} KiB",
            cost.peak_kib, plain.peak_kib
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_long_xml_base_over_every_item_costs_what_its_size_does() {
    costs_what_its_size_does("a long xml:base over every item");
}

#[test]
fn nested_relative_xml_bases_cost_what_their_size_does() {
    costs_what_its_size_does("nested relative xml:base");
}

#[test]
fn a_feeds_authors_for_every_item_cost_what_their_size_does() {
    costs_what_its_size_does("the feed's authors for every item");
}

#[test]
fn a_text_of_ampersands_costs_what_its_size_does() {
    costs_what_its_size_does("a text of ampersands");
}
