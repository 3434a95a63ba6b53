//! Running as a service: systemd notifications, reload, clean shutdown, crash safety,
//! metrics and slow clients.
//!
//! The cases that go through the store run on each engine (`CASE::sled`, `CASE::postgres`:
//! see `support::on_each_engine!`); the slow clients' one never reaches it, and runs on the
//! default engine only.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use crate::support::{blocking_get, on_each_engine, Daemon, Engine, FeedServer};

fn rss(name: &str, items: std::ops::Range<usize>) -> String {
    let items: String = items
        .map(|i| {
            format!(
                "<item><guid>{name}-{i}</guid><title>{name} item {i}</title><link>http://{name}.example/{i}</link></item>"
            )
        })
        .collect();
    format!("<rss version=\"2.0\"><channel><title>{name}</title><link>http://{name}.example/</link><description>d</description>{items}</channel></rss>")
}

/// Sources that are fetched once at start and then not for a year.
fn sources(server: &FeedServer, names: &[&str]) -> String {
    let mut config = String::from("[fetch]\nschedule = \"0 0 1 1 *\"\n");
    for name in names {
        config.push_str(&format!(
            "[[source]]\nname = \"{name}\"\nurl = \"{}\"\n",
            server.url(&format!("{name}.rss"))
        ));
    }
    config
}

fn systemd_hears_ready_watchdog_status_and_stopping(engine: Engine) {
    let dir = tempfile::tempdir().expect("tempdir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    server.put("a.rss", "application/rss+xml", rss("a", 0..3));
    let socket_env = socket_path.to_str().expect("utf-8 path").to_string();
    let store = engine.store();
    let mut daemon = Daemon::start_env_on(
        dir.path(),
        &store.section(),
        &format!("{}[[feed]]\nname = \"all\"\n", sources(&server, &["a"])),
        // A 2 s watchdog: pings every second.
        &[("NOTIFY_SOCKET", &socket_env), ("WATCHDOG_USEC", "2000000")],
    );
    let mut seen: Vec<String> = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.iter().filter(|m| m.contains("WATCHDOG=1")).count() < 3 {
        assert!(Instant::now() < deadline, "only heard {seen:?}");
        let n = socket.recv(&mut buf).expect("a notification");
        seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(seen.iter().any(|m| m.contains("READY=1")), "{seen:?}");
    assert!(
        seen.iter()
            .any(|m| m.starts_with("STATUS=") && m.contains("1 sources")),
        "{seen:?}"
    );
    let ready = seen
        .iter()
        .position(|m| m.contains("READY=1"))
        .expect("ready");
    let first_ping = seen
        .iter()
        .position(|m| m.contains("WATCHDOG=1"))
        .expect("ping");
    assert!(ready < first_ping, "a ping before READY: {seen:?}");

    // SIGHUP: RELOADING=1, then READY=1 again.
    daemon.signal(libc::SIGHUP);
    let mut reload = Vec::new();
    while !reload.iter().any(|m: &String| m.contains("READY=1")) {
        let n = socket.recv(&mut buf).expect("a notification");
        reload.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        reload.iter().any(|m| m.contains("RELOADING=1")),
        "{reload:?}"
    );

    let status = daemon.stop();
    assert!(status.success(), "{status}");
    let mut last = Vec::new();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    while let Ok(n) = socket.recv(&mut buf) {
        last.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(last.iter().any(|m| m.contains("STOPPING=1")), "{last:?}");
    assert!(daemon.try_wait().is_none());
}

fn hits_by_path(server: &FeedServer) -> HashMap<String, usize> {
    let mut hits = HashMap::new();
    for entry in server.log() {
        *hits.entry(entry.path).or_insert(0) += 1;
    }
    hits
}

fn sighup_reloads_sources_and_feeds_and_keeps_a_good_config_over_a_bad_one(engine: Engine) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    for name in ["keep", "change", "changed", "remove", "add"] {
        server.put(
            &format!("{name}.rss"),
            "application/rss+xml",
            rss(name, 0..2),
        );
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = engine.store();
    let first = format!(
        "{}[[feed]]\nname = \"all\"\n[[feed]]\nname = \"old\"\n",
        sources(&server, &["keep", "change", "remove"])
    );
    let daemon = Daemon::start_on(dir.path(), &store.section(), &first);
    daemon.wait_for("the first fetches", || {
        Some(daemon.try_status()?.iter().all(|r| r["items"] == 2))
    });

    // Add a source, change one's URL, remove one, replace a feed.
    let second = format!(
        "{}[[source]]\nname = \"change\"\nurl = \"{}\"\n[[feed]]\nname = \"all\"\n[[feed]]\nname = \"new\"\nsources = [\"add\"]\n",
        sources(&server, &["keep", "add"]),
        server.url("changed.rss")
    );
    daemon.rewrite_config(&second);
    daemon.signal(libc::SIGHUP);
    // `change` still holds its two entries from its old URL: what says its new URL was
    // fetched is the server's log (and then its state, the new URL, in /status.json).
    daemon.wait_for("the reloaded sources", || {
        let status = daemon.try_status()?;
        let names: Vec<&str> = status.iter().filter_map(|r| r["name"].as_str()).collect();
        let hits = hits_by_path(&server);
        Some(
            names == ["keep", "add", "change"]
                && status.iter().all(|r| r["items"].as_u64() >= Some(2))
                && hits.contains_key("add.rss")
                && hits.contains_key("changed.rss")
                && status
                    .iter()
                    .any(|r| r["name"] == "change" && r["url"] == server.url("changed.rss")),
        )
    });
    let hits = hits_by_path(&server);
    assert_eq!(
        hits.get("keep.rss"),
        Some(&1),
        "an unchanged source was fetched again"
    );
    assert_eq!(hits.get("add.rss"), Some(&1));
    assert_eq!(hits.get("changed.rss"), Some(&1));
    assert_eq!(daemon.source("change")["url"], server.url("changed.rss"));
    daemon.wait_for("the new feed", || {
        let (status, body) = blocking_get(&daemon.url("/feeds/new.json"))?;
        Some(status == 200 && String::from_utf8_lossy(&body).contains("add item 1"))
    });
    let (status, _) = blocking_get(&daemon.url("/feeds/old.atom")).expect("answers");
    assert_eq!(status, 404, "a removed feed is still served");
    let (_, all) = blocking_get(&daemon.url("/feeds/all.json")).expect("answers");
    let all = String::from_utf8_lossy(&all);
    assert!(
        !all.contains("remove item"),
        "a removed source's entries are still shown"
    );
    // The changed source's entries are rendered once its fetch is stored (on PostgreSQL
    // that render follows the commit's notification): wait for them.
    daemon.wait_for("the changed source's entries in all.json", || {
        let (status, body) = blocking_get(&daemon.url("/feeds/all.json"))?;
        Some(status == 200 && String::from_utf8_lossy(&body).contains("changed item 0"))
    });

    // An invalid config is logged and the running one kept.
    daemon.rewrite_config("[[source]]\nname = \"Bad Name\"\n");
    daemon.signal(libc::SIGHUP);
    daemon.wait_for("the reload error in the log", || {
        Some(daemon.stderr().contains("keeping the running one"))
    });
    assert!(
        daemon.stderr().contains("feedmill.toml:"),
        "the error names the file"
    );
    let names: Vec<String> = daemon
        .status()
        .iter()
        .filter_map(|r| r["name"].as_str().map(String::from))
        .collect();
    assert_eq!(names, ["keep", "add", "change"]);
    let (status, _) = blocking_get(&daemon.url("/feeds/new.atom")).expect("answers");
    assert_eq!(status, 200);
}

fn sigterm_exits_cleanly_within_ten_seconds_with_a_fetch_in_flight(engine: Engine) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    server.put("a.rss", "application/rss+xml", rss("a", 0..2));
    server.behave(
        "slow.rss",
        crate::support::Behavior::Trickle {
            every: Duration::from_secs(1),
        },
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let store = engine.store();
    let mut daemon = Daemon::start_on(
        dir.path(),
        &store.section(),
        &format!(
            "[fetch]\ntimeout = \"60s\"\n{}[[feed]]\nname = \"all\"\n",
            sources(&server, &["a", "slow"]).replace("[fetch]\n", "")
        ),
    );
    daemon.wait_for("the slow fetch to be in flight", || {
        Some(server.hits("slow.rss") == 1)
    });
    let started = Instant::now();
    let status = daemon.stop();
    assert!(status.success(), "{status}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        daemon.stderr().contains("store flushed"),
        "{}",
        daemon.stderr()
    );
}

/// `kill -9` at random moments while sources change and are fetched every second: after a
/// restart every item is there exactly once.
fn sigkill_at_random_moments_loses_nothing_and_duplicates_nothing(engine: Engine) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    const SOURCES: usize = 12;
    let mut published = vec![0usize; SOURCES];
    let publish = |server: &FeedServer, published: &mut Vec<usize>, round: usize| {
        for (s, count) in published.iter_mut().enumerate() {
            // Each round adds a few items to some sources; documents keep their last 40.
            *count += (round * 7 + s * 3) % 5 + 1;
            let name = format!("s{s}");
            server.put(
                &format!("{name}.rss"),
                "application/rss+xml",
                rss(&name, count.saturating_sub(40)..*count),
            );
        }
    };
    publish(&server, &mut published, 0);
    let mut config = String::from("[fetch]\nschedule = \"* * * * * *\"\n");
    for s in 0..SOURCES {
        config.push_str(&format!(
            "[[source]]\nname = \"s{s}\"\nurl = \"{}\"\n",
            server.url(&format!("s{s}.rss"))
        ));
    }
    config.push_str(
        "[[feed]]\nname = \"all\"\nlimit = 1000\nmax_per_source = 1000\ndedup = \"none\"\n",
    );
    let dir = tempfile::tempdir().expect("tempdir");
    // A killed daemon's claims on the fetches it had in flight hold until their lease ends
    // (a restarted daemon is another replica): a short one, so that those sources wait
    // seconds, not the default minute, after each kill.
    let store = engine.store();
    let mut daemon = Daemon::start_on(dir.path(), &store.section_with("lease = \"5s\"\n"), &config);
    // A fixed pseudo-random sequence: the moments differ, the test does not.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 1..=6 {
        publish(&server, &mut published, round);
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let hits_before = server.log().len();
        // Kill after a random number (1-30) of requests: in the middle of a round.
        let wait_for = 1 + (seed % 30) as usize;
        daemon.wait_for("fetching to be under way", || {
            Some(server.log().len() >= hits_before + wait_for)
        });
        let left = daemon.kill9();
        daemon = Daemon::start_again(left);
    }
    // Let every source catch up with the last round.
    let expected: usize = published.iter().sum();
    daemon.wait_for("every item", || {
        let (_, body) = blocking_get(&daemon.url("/feeds/all.json"))?;
        let doc: serde_json::Value = serde_json::from_slice(&body).ok()?;
        Some(doc["items"].as_array()?.len() >= expected)
    });
    let (_, body) = blocking_get(&daemon.url("/feeds/all.json")).expect("answers");
    let doc: serde_json::Value = serde_json::from_slice(&body).expect("json");
    let mut titles: Vec<String> = doc["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["title"].as_str().map(String::from))
        .collect();
    assert_eq!(titles.len(), expected, "items lost or duplicated");
    titles.sort();
    titles.dedup();
    assert_eq!(titles.len(), expected, "an item appears twice");
    for (s, &count) in published.iter().enumerate() {
        for i in 0..count {
            let title = format!("s{s} item {i}");
            assert!(titles.binary_search(&title).is_ok(), "{title} is missing");
        }
    }
    let items: u64 = daemon
        .status()
        .iter()
        .map(|r| r["items"].as_u64().unwrap_or_default())
        .sum();
    assert_eq!(items as usize, expected, "the item counts drifted");
}

fn metrics_and_health_tell_the_truth(engine: Engine) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    server.put("a.rss", "application/rss+xml", rss("a", 0..4));
    let dir = tempfile::tempdir().expect("tempdir");
    let store = engine.store();
    let body = format!(
        "{}[[source]]\nname = \"broken\"\nurl = \"{}\"\n[[feed]]\nname = \"all\"\n",
        sources(&server, &["a"]),
        server.url("missing.rss")
    );
    let daemon = Daemon::start_on(dir.path(), &store.section(), &body);
    daemon.wait_for("both fetches", || {
        Some(
            daemon
                .try_status()?
                .iter()
                .all(|r| !r["last_fetch"].is_null()),
        )
    });
    // Rendering follows the commit: wait for the render that shows the entries (the home
    // page comes after the feeds, and is not counted below), or the conditional request
    // below may meet a newer document.
    daemon.wait_for("a's entries rendered", || {
        let (_, body) = blocking_get(&daemon.url("/"))?;
        Some(String::from_utf8_lossy(&body).contains("a item 3"))
    });
    // A document, then the same again conditionally: both counted, both with the security
    // headers and CORS (documents are answered without the router).
    let (status, headers, _) =
        crate::support::blocking_get_with(&daemon.url("/feeds/all.atom"), &[]).expect("answers");
    assert_eq!(status, 200);
    let (status, again, _) = crate::support::blocking_get_with(
        &daemon.url("/feeds/all.atom"),
        &[("if-none-match", &headers["etag"])],
    )
    .expect("answers");
    assert_eq!(status, 304);
    for headers in [&headers, &again] {
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["access-control-allow-origin"], "*");
        assert!(headers.contains_key("content-security-policy"));
    }
    let _ = blocking_get(&daemon.url("/nope"));
    let (status, headers, body) =
        crate::support::blocking_get_with(&daemon.url("/metrics"), &[]).expect("answers");
    assert_eq!(status, 200);
    assert!(headers["content-type"].starts_with("application/openmetrics-text"));
    let text = String::from_utf8(body).expect("utf-8");
    for line in [
        "feedmill_fetches_total{outcome=\"stored\"} 1",
        "feedmill_fetches_total{outcome=\"failed\"} 1",
        "feedmill_source_entries{source=\"a\"} 4",
        "feedmill_source_entries{source=\"broken\"} 0",
        "feedmill_sources_failing 1",
        "feedmill_entries 4",
        "feedmill_http_requests_total{route=\"/feeds/{file}\",status=\"200\"} 1",
        "feedmill_http_requests_total{route=\"/feeds/{file}\",status=\"304\"} 1",
        "feedmill_http_requests_total{route=\"unmatched\",status=\"404\"} 1",
        "feedmill_fetch_duration_seconds_count 2",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(text.contains("feedmill_renders_total"));
    assert!(text.contains("feedmill_fetched_bytes_total"));
    let (status, body) = blocking_get(&daemon.url("/healthz")).expect("answers");
    assert_eq!((status, body.as_slice()), (200, &b"ok\n"[..]));
}

on_each_engine!(
    systemd_hears_ready_watchdog_status_and_stopping,
    sighup_reloads_sources_and_feeds_and_keeps_a_good_config_over_a_bad_one,
    sigterm_exits_cleanly_within_ten_seconds_with_a_fetch_in_flight,
    sigkill_at_random_moments_loses_nothing_and_duplicates_nothing,
    metrics_and_health_tell_the_truth,
);

#[test]
fn slow_and_idle_clients_are_cut_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = crate::support::free_port();
    std::fs::write(
        dir.path().join("feedmill.toml"),
        format!("[server]\nlisten = \"127.0.0.1:{port}\"\nheader_timeout = \"1s\"\n[store]\npath = \"store\"\n[[feed]]\nname = \"all\"\n"),
    )
    .expect("config");
    let mut child = crate::support::feedmill()
        .args(["run", "-c"])
        .arg(dir.path().join("feedmill.toml"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let url = format!("http://127.0.0.1:{port}/healthz");
    let deadline = Instant::now() + Duration::from_secs(20);
    while blocking_get(&url).is_none() {
        assert!(Instant::now() < deadline, "the daemon did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    // A request that never finishes its headers, and a connection that says nothing.
    let mut dribbler = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    dribbler
        .write_all(b"GET /feeds/all.atom HTTP/1.1\r\nHost: x\r\n")
        .expect("write");
    let mut silent = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    for stream in [&mut dribbler, &mut silent] {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let started = Instant::now();
        let mut buf = [0u8; 512];
        // The server closes the connection (perhaps after a 408): read hits EOF.
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(_) => continue,
                Err(err) => panic!("the connection was held open: {err}"),
            }
        }
        assert!(started.elapsed() < Duration::from_secs(4));
    }
    // And the server still answers others.
    assert_eq!(blocking_get(&url).map(|(s, _)| s), Some(200));
    let _ = child.kill();
    let _ = child.wait();
}
