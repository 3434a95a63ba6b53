//! The command line: exit codes and messages a user sees.

use std::path::Path;

use crate::support::feedmill;

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("feedmill.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

const VALID: &str =
    "[[source]]\nname = \"a\"\nurl = \"https://a.example/feed.xml\"\n\n[[feed]]\nname = \"all\"\n";

#[test]
fn check_accepts_the_shipped_configs() {
    for file in ["config/feedmill.toml", "config/demo.toml"] {
        let out = feedmill()
            .args(["check", "-c", file])
            .output()
            .expect("runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("valid"), "{stdout}");
        assert!(stdout.contains("listen 127.0.0.1:8080"), "{stdout}");
    }
    let out = feedmill()
        .args(["check", "-c", "config/demo.toml"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("4 sources, 2 feeds"), "{stdout}");
    assert!(
        stdout.contains("http://127.0.0.1:8080/feeds/all.atom"),
        "{stdout}"
    );
}

#[test]
fn check_finds_the_config_through_the_environment_and_the_working_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), VALID);
    let out = feedmill()
        .arg("check")
        .env("FEEDMILL_CONFIG", &path)
        .output()
        .expect("runs");
    assert!(out.status.success());
    let out = feedmill()
        .arg("check")
        .current_dir(dir.path())
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn invalid_configs_exit_2_naming_the_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            format!("{VALID}colour = \"red\"\n"),
            ":7:1:",
            "unknown field `colour`",
        ),
        (
            VALID.replace("https://a.example/feed.xml", "gopher://x/"),
            ":3:7:",
            "not supported",
        ),
        (
            format!("{VALID}sources = [\"b\"]\n"),
            ":7:12:",
            "names source \"b\"",
        ),
        (
            format!("[fetch]\nschedule = \"*/61 * * * *\"\n{VALID}"),
            ":2:12:",
            "bad schedule",
        ),
    ];
    for (text, place, message) in cases {
        let path = write(dir.path(), &text);
        for command in ["check", "run"] {
            let out = feedmill()
                .arg(command)
                .arg("-c")
                .arg(&path)
                .output()
                .expect("runs");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
            assert!(
                stderr.contains(&format!("feedmill.toml{place}")),
                "{stderr}"
            );
            assert!(stderr.contains(message), "{stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}

#[test]
fn a_missing_config_says_how_to_name_one() {
    let out = feedmill()
        .args(["check", "-c", "/nonexistent/feedmill.toml"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("/nonexistent/feedmill.toml"), "{stderr}");
    assert!(stderr.contains("-c FILE"), "{stderr}");
}

#[test]
fn usage_errors_exit_2_and_help_and_version_work() {
    let out = feedmill().arg("frobnicate").output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["check", "--help"],
        &["--version"],
    ] {
        let out = feedmill().args(args).output().expect("runs");
        assert!(out.status.success(), "{args:?}");
        assert!(!out.stdout.is_empty());
    }
}

fn feed_file(dir: &Path, name: &str, items: usize) -> std::path::PathBuf {
    let items: String = (0..items)
        .map(|i| format!("<item><guid>{name}{i}</guid><title>{name} {i}</title></item>"))
        .collect();
    let path = dir.join(format!("{name}.rss"));
    std::fs::write(
        &path,
        format!("<rss version=\"2.0\"><channel><title>{name}</title><link>http://x/</link><description>d</description>{items}</channel></rss>"),
    )
    .expect("write feed");
    path
}

#[test]
fn fetch_prints_a_line_per_source_and_sources_reads_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    feed_file(dir.path(), "good", 3);
    std::fs::write(dir.path().join("broken.rss"), "<rss><channel>").expect("write");
    let config = write(
        dir.path(),
        "[store]\npath = \"store\"\n[[source]]\nname = \"good\"\nurl = \"file:good.rss\"\n[[source]]\nname = \"broken\"\nurl = \"file:broken.rss\"\n[[feed]]\nname = \"all\"\n",
    );
    let out = feedmill()
        .arg("fetch")
        .arg("-c")
        .arg(&config)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "one source worked: {stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(
        lines[0].starts_with("good")
            && lines[0].contains("ok")
            && lines[0].contains("3 entries (3 new"),
        "{stdout}"
    );
    assert!(
        lines[1].starts_with("broken")
            && lines[1].contains("FAILED")
            && lines[1].contains("XML error"),
        "{stdout}"
    );
    // Fetching one named source; the file is unchanged: 304-like.
    let out = feedmill()
        .args(["fetch", "good", "-c"])
        .arg(&config)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("not modified") && !stdout.contains("broken"),
        "{stdout}"
    );
    // Only failures: exit 1.
    let out = feedmill()
        .args(["fetch", "broken", "-c"])
        .arg(&config)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1));
    // An unknown name is a usage error.
    let out = feedmill()
        .args(["fetch", "nope", "-c"])
        .arg(&config)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no [[source]] is named \"nope\""));

    let out = feedmill()
        .args(["sources", "--json", "-c"])
        .arg(&config)
        .output()
        .expect("runs");
    assert!(out.status.success());
    let reports: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(reports[0]["name"], "good");
    assert_eq!(reports[0]["items"], 3);
    assert_eq!(reports[0]["last_status"], 304);
    assert_eq!(reports[1]["consecutive_failures"], 2);
    for field in ["url", "last_fetch", "last_error", "next_fetch"] {
        assert!(reports[1].get(field).is_some(), "{field} missing");
    }
    let out = feedmill()
        .args(["sources", "-c"])
        .arg(&config)
        .output()
        .expect("runs");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.starts_with("SOURCE") && table.contains("good") && table.contains("XML error"),
        "{table}"
    );
}

#[test]
fn commands_fail_at_once_while_a_daemon_holds_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    feed_file(dir.path(), "good", 1);
    let daemon = crate::support::Daemon::start(
        dir.path(),
        "[[source]]\nname = \"good\"\nurl = \"file:good.rss\"\n[[feed]]\nname = \"all\"\n",
    );
    for command in ["fetch", "sources"] {
        let started = std::time::Instant::now();
        let out = feedmill()
            .arg(command)
            .arg("-c")
            .arg(&daemon.config)
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {stderr}");
        assert!(
            stderr.contains("in use by another feedmill process"),
            "{stderr}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{command} hung"
        );
    }
}

const NESTED_OPML: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>Subscriptions &amp; more</title></head>
  <body>
    <outline text="News">
      <outline text="Inner Mongolia Daily" type="rss" xmlUrl="https://imdaily.example/rss.xml?x=1&amp;y=2" htmlUrl="https://imdaily.example/"/>
      <outline text="Regional &#8211; North">
        <outline text="North Wire" type="rss" xmlUrl="https://northwire.example/feed.json"/>
      </outline>
    </outline>
    <outline text="Caf&#233; Notes" type="rss" xmlUrl="https://cafe.example/atom.xml"/>
  </body>
</opml>"#;

#[test]
fn opml_round_trip_through_import_check_and_export() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opml = dir.path().join("subs.opml");
    std::fs::write(&opml, NESTED_OPML).expect("write");
    let out = feedmill()
        .args(["opml", "import"])
        .arg(&opml)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let imported = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(imported.matches("[[source]]").count(), 3, "{imported}");
    let config = write(
        dir.path(),
        &format!("{imported}\n[[feed]]\nname = \"all\"\n"),
    );
    let out = feedmill()
        .arg("check")
        .arg("-c")
        .arg(&config)
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}\n{imported}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = feedmill()
        .args(["opml", "export", "-c"])
        .arg(&config)
        .output()
        .expect("runs");
    assert!(out.status.success());
    let exported = String::from_utf8(out.stdout).expect("utf-8");
    assert!(exported.contains("<opml version=\"2.0\">"), "{exported}");
    assert!(
        exported.contains("xmlUrl=\"https://imdaily.example/rss.xml?x=1&amp;y=2\""),
        "{exported}"
    );
    assert!(exported.contains("title=\"Café Notes\""), "{exported}");
    assert!(
        exported.contains("category=\"/News,/Regional – North\""),
        "{exported}"
    );
    // And what we export, we import again to the same sources.
    std::fs::write(dir.path().join("again.opml"), &exported).expect("write");
    let out = feedmill()
        .args(["opml", "import"])
        .arg(dir.path().join("again.opml"))
        .output()
        .expect("runs");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("[[source]]")
            .count(),
        3
    );
}

#[test]
fn a_bad_opml_file_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in [
        ("html.opml", "<html><body/></html>"),
        ("broken.opml", "<opml><body><outline"),
        ("empty.opml", "<opml><body/></opml>"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        let out = feedmill()
            .args(["opml", "import"])
            .arg(&path)
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(name), "{stderr}");
    }
    let out = feedmill()
        .args(["opml", "import", "/nonexistent.opml"])
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
}

/// `feedmill fetch -c path`, running, its stdout piped.
fn spawn_fetch(path: &Path) -> std::process::Child {
    feedmill()
        .arg("fetch")
        .arg("-c")
        .arg(path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("runs")
}

/// What an ended child printed.
fn stdout_of(child: &mut std::process::Child) -> String {
    let mut out = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().expect("stdout"), &mut out)
        .expect("read");
    out
}

/// `[fetch] concurrency` bounds the refreshes under way, so the requests in flight: with 2,
/// a server that holds every request sees two at a time, never more, while seven sources
/// are fetched.
#[test]
fn fetch_keeps_at_most_concurrency_requests_in_flight() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(crate::support::FeedServer::start());
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config =
        String::from("[store]\npath = \"store\"\n[fetch]\nconcurrency = 2\nper_host = 8\n");
    for i in 0..7 {
        server.put(
            &format!("s{i}.rss"),
            "application/rss+xml",
            format!("<rss version=\"2.0\"><channel><title>s{i}</title><item><guid>s{i}-1</guid><title>one</title></item></channel></rss>"),
        );
        config.push_str(&format!(
            "[[source]]\nname = \"s{i}\"\nurl = \"{}\"\n",
            server.url(&format!("s{i}.rss"))
        ));
    }
    config.push_str("[[feed]]\nname = \"all\"\n");
    let path = write(dir.path(), &config);
    let gate = server.gate();
    let mut child = spawn_fetch(&path);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut released = 0;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "feedmill fetch hung");
        assert!(
            gate.most_held() <= 2,
            "{} requests in flight at once",
            gate.most_held()
        );
        // The bound reached (or only the last source left): let one through, and wait until
        // it has passed.
        if gate.held() >= 2 || (released == 6 && gate.held() == 1) {
            gate.let_one_through();
            released += 1;
            while gate.passed() < released {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    assert!(status.success());
    assert_eq!(released, 7);
    assert_eq!(gate.most_held(), 2, "requests in flight at once");
    let out = stdout_of(&mut child);
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("1 entries (1 new"))
            .count(),
        7,
        "{out}"
    );
}

/// Hundreds of sources committed at once: sled 0.34 deadlocked when a flush ran beside a
/// batch, which a thousand `file://` sources fetched together once showed.
#[test]
fn fetch_of_many_sources_at_once_completes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = String::from("[store]\npath = \"store\"\n[fetch]\nconcurrency = 300\n");
    for i in 0..300 {
        feed_file(dir.path(), &format!("s{i}"), 2);
        config.push_str(&format!(
            "[[source]]\nname = \"s{i}\"\nurl = \"file:s{i}.rss\"\n"
        ));
    }
    config.push_str("[[feed]]\nname = \"all\"\n");
    let path = write(dir.path(), &config);
    let mut child = spawn_fetch(&path);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("feedmill fetch hung with 300 sources");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(status.success());
    let out = stdout_of(&mut child);
    assert_eq!(
        out.lines()
            .filter(|l| l.contains("2 entries (2 new"))
            .count(),
        300
    );
}

/// Interface, Items: a document with item elements that yields no entries is an error that
/// says why, never "ok, 0 entries"; "not a feed" names the root element found.
#[test]
fn fetch_never_reports_a_silent_zero() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("foreign.xml"),
        "<rss version=\"2.0\"><channel><title>t</title><x:item xmlns:x=\"urn:x\"><title>a</title></x:item></channel></rss>",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("catalog.xml"),
        "<catalog><book>b</book></catalog>",
    )
    .expect("write");
    let config = write(
        dir.path(),
        "[store]\npath = \"store\"\n[[source]]\nname = \"foreign\"\nurl = \"file:foreign.xml\"\n[[source]]\nname = \"catalog\"\nurl = \"file:catalog.xml\"\n[[feed]]\nname = \"all\"\n",
    );
    let out = feedmill()
        .arg("fetch")
        .arg("-c")
        .arg(&config)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "every source failed: {stdout}");
    let line = |name: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_string()
    };
    let foreign = line("foreign");
    assert!(!foreign.contains(" ok "), "{stdout}");
    assert!(
        foreign.contains("<item>") && foreign.contains("namespace"),
        "{stdout}"
    );
    assert!(line("catalog").contains("<catalog>"), "{stdout}");
}
