//! The hostile web: every kind of broken or malicious source beside good ones, against the
//! real daemon. The daemon must stay up, keep the good sources flowing, keep its memory
//! bounded, republish nothing unsafe, fetch failing sources no more than backoff allows, and
//! say why each one fails.

use std::time::Duration;

use crate::support::{blocking_get, Behavior, Daemon, FeedServer};

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

struct Case {
    name: &'static str,
    path: &'static str,
    /// A piece of the reason `status.json` must give; `None` for sources that must work.
    error: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case {
        name: "good-a",
        path: "good/a.rss",
        error: None,
    },
    Case {
        name: "good-b",
        path: "good/b.atom",
        error: None,
    },
    Case {
        name: "billion-laughs",
        path: "h/laughs.rss",
        error: None,
    },
    Case {
        name: "xxe",
        path: "h/xxe.rss",
        error: None,
    },
    Case {
        name: "gzip-bomb",
        path: "h/bomb.rss",
        error: Some("body larger than 16 MiB"),
    },
    Case {
        name: "endless",
        path: "h/endless.rss",
        error: Some("body larger than 16 MiB"),
    },
    Case {
        name: "trickle",
        path: "h/trickle.rss",
        error: Some("timed out after 2s"),
    },
    Case {
        name: "redirect-loop",
        path: "h/loop-a",
        error: Some("redirect loop"),
    },
    Case {
        name: "redirect-chain",
        path: "h/chain/0",
        error: Some("more than 10 redirects"),
    },
    Case {
        name: "moved",
        path: "h/old.rss",
        error: None,
    },
    Case {
        name: "server-error",
        path: "h/500",
        error: Some("HTTP 500 Internal Server Error"),
    },
    Case {
        name: "rate-limited",
        path: "h/429",
        error: Some("HTTP 429 Too Many Requests (retry after 2m)"),
    },
    Case {
        name: "gone",
        path: "h/410",
        error: Some("410 Gone: disabled"),
    },
    Case {
        name: "truncated",
        path: "h/truncated.rss",
        error: Some("XML error at line 3"),
    },
    Case {
        name: "html-no-feed",
        path: "h/page.html",
        error: Some("not a feed: HTML page without a feed link"),
    },
    Case {
        name: "html-with-feed",
        path: "h/home.html",
        error: None,
    },
    Case {
        name: "empty",
        path: "h/empty",
        error: Some("empty body"),
    },
    Case {
        name: "scripted",
        path: "h/script.rss",
        error: None,
    },
    Case {
        name: "xml-base",
        path: "h/base.atom",
        error: None,
    },
    Case {
        name: "odd-dates",
        path: "h/dates.rss",
        error: None,
    },
    Case {
        name: "gbk-header",
        path: "h/gbk.rss",
        error: None,
    },
    Case {
        name: "gb2312-declared",
        path: "h/gb2312.rss",
        error: None,
    },
    Case {
        name: "cp1252-declared",
        path: "h/cp1252.rss",
        error: None,
    },
    Case {
        name: "many-items",
        path: "h/many.rss",
        error: None,
    },
    Case {
        name: "huge-title",
        path: "h/huge-title.rss",
        error: None,
    },
    Case {
        name: "max-age",
        path: "h/max-age.rss",
        error: None,
    },
    Case {
        name: "ttl",
        path: "h/ttl.rss",
        error: None,
    },
    // feed-rs panics on this author (it slices inside the full-width parenthesis).
    Case {
        name: "crash-author",
        path: "h/crash-author.rss",
        error: None,
    },
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
    for case in CASES {
        config.push_str(&format!(
            "[[source]]\nname = \"{}\"\nurl = \"{}\"\n",
            case.name,
            server.url(case.path)
        ));
    }
    config.push_str("[[feed]]\nname = \"all\"\nlimit = 200\ndedup = \"none\"\nsources = [");
    let names: Vec<String> = CASES
        .iter()
        .filter(|c| c.name != "many-items")
        .map(|c| format!("\"{}\"", c.name))
        .collect();
    config.push_str(&names.join(", "));
    config.push_str("]\n");
    config
}

#[test]
fn the_daemon_survives_the_hostile_web() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    serve_cases(&server);
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start(dir.path(), &config(&server));

    // Every source has been tried and the good ones keep flowing: three rounds of good-a.
    daemon.wait_for("every source to be tried", || {
        Some(
            daemon
                .try_status()?
                .iter()
                .all(|r| !r["last_fetch"].is_null()),
        )
    });
    daemon.wait_for("three more rounds of the good sources", || {
        Some(server.hits("good/a.rss") >= 4 && server.hits("good/b.atom") >= 4)
    });

    for case in CASES {
        let report = daemon.source(case.name);
        match case.error {
            None => assert!(report["last_error"].is_null(), "{}: {report}", case.name),
            Some(reason) => {
                let got = report["last_error"].as_str().unwrap_or_default();
                assert!(
                    got.contains(reason),
                    "{}: wanted {reason:?}, got {report}",
                    case.name
                );
                assert!(
                    report["consecutive_failures"].as_u64() >= Some(1),
                    "{}: {report}",
                    case.name
                );
            }
        }
    }

    // Failing sources were fetched once: backoff starts at a minute, whatever the schedule.
    for path in [
        "h/bomb.rss",
        "h/endless.rss",
        "h/trickle.rss",
        "h/500",
        "h/429",
        "h/410",
        "h/truncated.rss",
        "h/page.html",
        "h/empty",
    ] {
        assert_eq!(
            server.hits(path),
            1,
            "{path} was fetched more often than backoff allows"
        );
    }
    let rate_limited = daemon.source("rate-limited");
    let next = chrono::DateTime::parse_from_rfc3339(
        rate_limited["next_fetch"].as_str().expect("next_fetch"),
    )
    .expect("date");
    assert!(
        next > chrono::Utc::now() + chrono::Duration::seconds(100),
        "Retry-After ignored: {rate_limited}"
    );
    assert!(
        daemon.source("gone")["next_fetch"].is_null(),
        "a gone source must not be planned"
    );
    // A server's max-age and a feed's <ttl> stretch the every-second schedule.
    for (name, path, seconds) in [
        ("max-age", "h/max-age.rss", 3500),
        ("ttl", "h/ttl.rss", 5300),
    ] {
        let report = daemon.source(name);
        let next = chrono::DateTime::parse_from_rfc3339(
            report["next_fetch"].as_str().expect("next_fetch"),
        )
        .expect("date");
        assert!(
            next > chrono::Utc::now() + chrono::Duration::seconds(seconds),
            "{name}: {report}"
        );
        assert_eq!(
            server.hits(path),
            1,
            "{path} was fetched before it went stale"
        );
    }

    // A permanent move is followed and remembered; the old URL is not asked again.
    let moved = daemon.source("moved");
    assert_eq!(moved["url"], server.url("h/new.rss"), "{moved}");
    let old_hits = server.hits("h/old.rss");
    daemon.wait_for("two more fetches of the moved feed", || {
        Some(server.hits("h/new.rss") >= 3)
    });
    assert_eq!(
        server.hits("h/old.rss"),
        old_hits,
        "the old URL was fetched after the move"
    );
    // Autodiscovery: the HTML page led to its feed; a feed link never moves the source.
    assert_eq!(
        daemon.source("html-with-feed")["url"],
        server.url("h/home.html")
    );
    // XXE: the external entity was never fetched.
    assert_eq!(
        server.hits("h/xxe-probe"),
        0,
        "an external entity was fetched"
    );
    // Bounded work: a 100,000-item feed and a 5 MB title.
    let many = daemon.source("many-items");
    assert_eq!(
        many["items"], 5000,
        "the first 5,000 of 100,000 items are kept: {many}"
    );

    // Bounded memory: the gzip bomb was not inflated, the endless body not kept.
    let rss = daemon.rss_kib();
    assert!(rss < 150 * 1024, "daemon RSS is {rss} KiB");

    // Nothing unsafe is republished, and the text came through right.
    daemon.wait_for("the hostile items in the output", || {
        let (_, body) = blocking_get(&daemon.url("/feeds/all.atom"))?;
        Some(String::from_utf8_lossy(&body).contains("Discovered one"))
    });
    for ext in ["atom", "rss", "json"] {
        let (status, body) =
            blocking_get(&daemon.url(&format!("/feeds/all.{ext}"))).expect("answers");
        assert_eq!(status, 200);
        let text = String::from_utf8(body).expect("UTF-8 output");
        let lower = text.to_lowercase();
        for bad in [
            "<script",
            "javascript:",
            "onmouseover",
            "onerror",
            "<iframe",
            "root:x:0",
        ] {
            assert!(!lower.contains(bad), "{ext} republished {bad:?}");
        }
        assert!(
            !text.contains("lollollollol"),
            "{ext}: entities were expanded"
        );
        for wanted in [
            "Good A one",
            "Good B one",
            "Moved one",
            "Discovered one",
            "Text",
            "读书班 GBK",
            "读书班 GB2312",
            "Café",
            "Crème",
            "5€",
            "主题教育读书班",
            "http://base.example/news/2026/story.html",
            "http://base.example/about.html",
            "http://base.example/news/img/p.png",
            "Named zone",
            "Garbage date",
            "Future date",
        ] {
            assert!(text.contains(wanted), "{ext} lacks {wanted:?}");
        }
        assert!(
            !text.contains(&"B".repeat(1002)),
            "{ext}: the 5 MB title was not cut"
        );
    }
    let (_, json) = blocking_get(&daemon.url("/feeds/all.json")).expect("answers");
    let json: serde_json::Value = serde_json::from_slice(&json).expect("json");
    let now = chrono::Utc::now();
    for item in json["items"].as_array().expect("items") {
        let published =
            chrono::DateTime::parse_from_rfc3339(item["date_published"].as_str().expect("date"))
                .expect("rfc3339");
        assert!(published <= now, "a future date was kept: {item}");
        if item["title"] == "Named zone" {
            assert_eq!(item["date_published"], "2026-11-27T13:30:00+00:00");
        }
    }
    let titles: Vec<&str> = json["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["title"].as_str())
        .collect();
    // The title is HTML (it has an end tag): plain text is its text, the script gone
    // (issue 14, item 3).
    assert!(
        titles.contains(&"Scripted one"),
        "titles are plain text, markup removed: {titles:?}"
    );
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
    peak_kib: u64,
    stdout: String,
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
    loop {
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
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stdout = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Some(Cost {
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        peak_kib: usage.ru_maxrss as u64,
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

/// Documents of a few hundred kB each made the reader, the sanitizer or the serializer do
/// work (or hold memory) in the square of their size: a gigabyte for 300 kB of xml:base,
/// minutes for a text of ampersands. Through the real binary, each must cost about what a
/// document of its size and shape does.
#[test]
fn hostile_documents_cost_what_their_size_does() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    let json_items = |n: usize| {
        (0..n)
            .map(|i| format!("{{\"id\": \"{i}\", \"title\": \"Item {i}\"}}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let authors = vec!["{\"name\": \"A\"}"; 2500].join(",");
    let cases: Vec<(&str, &str, String, String)> = vec![
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
            String::new(),
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
            String::new(),
        ),
        (
            "the feed's authors for every item",
            "application/feed+json",
            format!("{{\"version\": \"https://jsonfeed.org/version/1.1\", \"title\": \"J\", \"authors\": [{authors}], \"items\": [{}]}}", json_items(2500)),
            format!(
                "{{\"version\": \"https://jsonfeed.org/version/1.1\", \"title\": \"J\", \"authors\": [{}], \"items\": [{}]}}",
                " ".repeat(authors.len()),
                json_items(2500)
            ),
        ),
        (
            "a text of ampersands",
            "application/rss+xml",
            rss(
                "A",
                &item("a1", "Ampersands", &format!("<description>{}</description>", "&amp;".repeat(100_000))),
            ),
            String::new(),
        ),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    for (i, (what, content_type, hostile, baseline)) in cases.into_iter().enumerate() {
        let baseline = if baseline.is_empty() {
            plain_rss(hostile.len())
        } else {
            baseline
        };
        let (hostile_path, plain_path) = (format!("hostile-{i}"), format!("plain-{i}"));
        server.put(&hostile_path, content_type, hostile.clone());
        server.put(&plain_path, content_type, baseline);
        let plain = fetch_cost(
            dir.path(),
            &plain_path,
            &server.url(&plain_path),
            Duration::from_secs(60),
        )
        .expect("a plain document is fetched");
        assert!(
            plain.stdout.contains(" ok "),
            "{what}, plain: {}",
            plain.stdout
        );
        // Quadratic work on these sizes takes tens of seconds: it is stopped well before.
        let budget = plain.cpu * 10 + Duration::from_secs(5);
        let Some(cost) = fetch_cost(
            dir.path(),
            &hostile_path,
            &server.url(&hostile_path),
            budget,
        ) else {
            failures.push(format!(
                "{what} ({} bytes): still running after {budget:?}",
                hostile.len()
            ));
            continue;
        };
        if !cost.stdout.contains(" ok ") {
            failures.push(format!("{what}: {}", cost.stdout.trim()));
        }
        if cost.cpu > plain.cpu * 4 + Duration::from_secs(1) {
            failures.push(format!(
                "{what} ({} bytes): {:?} of CPU, a plain document of its size {:?}",
                hostile.len(),
                cost.cpu,
                plain.cpu
            ));
        }
        if cost.peak_kib > plain.peak_kib + 64 * 1024 {
            failures.push(format!(
                "{what} ({} bytes): {} KiB at the most, a plain document of its size {} KiB",
                hostile.len(),
                cost.peak_kib,
                plain.peak_kib
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
