//! Every config value is bounded; reloads that fail keep the old config; memory stays bounded (issue 14, items 7, 9, 10).

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{blocking_get, feedmill, free_port, Daemon, FeedServer};

/// The absurd values of issue 14 item 7 and their kin: `(section, key, value)`, where
/// section is `server`, `store`, `fetch`, `source` (the first `[[source]]`) or `feed`.
/// Each one `feedmill check` used to call valid (or refused without naming its key), and
/// most of them then panicked the daemon or wrapped.
const ABSURD: &[(&str, &str, &str)] = &[
    ("fetch", "concurrency", "4611686018427387904"),
    ("fetch", "per_host", "4611686018427387904"),
    ("fetch", "max_body", "\"18446744073709551615B\""),
    ("fetch", "timeout", "\"1ns\""),
    ("fetch", "user_agent", "\"feedmill\\r\\nX-Injected: yes\""),
    ("fetch", "schedule", "\"0 0 0 1 1 * 2099\""),
    ("fetch", "concurrency", "18446744073709551615"),
    ("store", "max_age_days", "4294967295"),
    ("store", "max_items_per_source", "4294967296"),
    ("store", "match_window", "4294967296"),
    ("store", "cache", "\"18446744073709551615B\""),
    ("server", "header_timeout", "\"584542046090years\""),
    ("server", "write_timeout", "\"584542046090years\""),
    ("server", "max_connections", "4611686018427387904"),
    ("server", "max_connections_per_ip", "0"),
    ("server", "listen", "\"127.0.0.1:0\""),
    ("server", "base_url", "\"http://127.0.0.1:8080/?a=b#top\""),
    ("source", "url", "\"ftp//nope\""),
    ("source", "url", "\"https//example.org/feed\""),
    ("feed", "limit", "200000"),
    ("feed", "max_per_source", "4611686018427387904"),
];

/// A whole config: loopback `port`, the store in `store/`, source `a` (and `b` with
/// `with_b`) on `server_url`, fetched every second, and `case` replacing or adding its key.
fn config_text(
    port: u16,
    source_url: &dyn Fn(&str) -> String,
    with_b: bool,
    case: Option<(&str, &str, &str)>,
) -> String {
    let mut sections: Vec<(&str, Vec<String>)> = vec![
        (
            "server",
            vec![
                format!("listen = \"127.0.0.1:{port}\""),
                format!("base_url = \"http://127.0.0.1:{port}/\""),
            ],
        ),
        ("store", vec!["path = \"store\"".to_string()]),
        ("fetch", vec!["schedule = \"* * * * * *\"".to_string()]),
        (
            "source",
            vec![
                "name = \"a\"".to_string(),
                format!("url = \"{}\"", source_url("a.rss")),
            ],
        ),
    ];
    if with_b {
        sections.push((
            "source b",
            vec![
                "name = \"b\"".to_string(),
                format!("url = \"{}\"", source_url("b.rss")),
            ],
        ));
    }
    sections.push(("feed", vec!["name = \"all\"".to_string()]));
    if let Some((section, key, value)) = case {
        let lines = &mut sections
            .iter_mut()
            .find(|(name, _)| *name == section)
            .expect("known section")
            .1;
        let line = format!("{key} = {value}");
        match lines
            .iter_mut()
            .find(|l| l.starts_with(&format!("{key} = ")))
        {
            Some(old) => *old = line,
            None => lines.push(line),
        }
    }
    let mut text = String::new();
    for (name, lines) in sections {
        let header = match name {
            "source" | "source b" => "[[source]]".to_string(),
            "feed" => "[[feed]]".to_string(),
            table => format!("[{table}]"),
        };
        text.push_str(&format!("{header}\n{}\n\n", lines.join("\n")));
    }
    text
}

/// `file:line:col` of the value of `key = value` in `text` (`feedmill.toml:7:15:`).
fn place_of(text: &str, key: &str, value: &str) -> String {
    let line = format!("{key} = {value}");
    let number = text
        .lines()
        .position(|l| l == line)
        .expect("the case's line is in the config")
        + 1;
    format!("feedmill.toml:{number}:{}:", key.len() + 4)
}

fn refused_url(path: &str) -> String {
    // The discard port: nothing listens there, and nothing leaves the machine.
    format!("http://127.0.0.1:9/{path}")
}

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    let path = dir.join("feedmill.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn check_refuses_every_absurd_value_naming_the_place_and_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut failures = Vec::new();
    for &(section, key, value) in ABSURD {
        let text = config_text(8080, &refused_url, false, Some((section, key, value)));
        let path = write(dir.path(), &text);
        let out = feedmill()
            .args(["check", "-c"])
            .arg(&path)
            .output()
            .expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let place = place_of(&text, key, value);
        if out.status.code() != Some(2)
            || !stderr.contains(&place)
            || !stderr.contains(key)
            || stderr.contains("panicked")
        {
            failures.push(format!(
                "{key} = {value}: exit {:?}, want 2 naming {place} and {key}; stdout {:?}, stderr {stderr:?}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).lines().next().unwrap_or_default()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_daemon_refuses_to_start_on_every_absurd_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    // All at once: a build that does not refuse runs on (or hangs), and each would cost
    // the whole deadline one after another.
    let mut runs = Vec::new();
    for (i, &(section, key, value)) in ABSURD.iter().enumerate() {
        let text = config_text(
            free_port(),
            &refused_url,
            false,
            Some((section, key, value)),
        );
        let case_dir = dir.path().join(format!("case{i}"));
        let path = write(&case_dir, &text);
        let stderr = std::fs::File::create(case_dir.join("stderr")).expect("log");
        let child = feedmill()
            .args(["run", "-c"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn");
        runs.push((key, value, place_of(&text, key, value), case_dir, child));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut failures = Vec::new();
    for (key, value, place, case_dir, mut child) in runs {
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = std::fs::read_to_string(case_dir.join("stderr")).unwrap_or_default();
        let code = status.and_then(|s| s.code());
        if code != Some(2) || !stderr.contains(&place) || stderr.contains("panicked") {
            failures.push(format!(
                "{key} = {value}: exit {code:?} (None: still running after 20 s), want 2 naming {place}; stderr {:?}",
                stderr.chars().take(600).collect::<String>()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn rss(name: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>{name}</title><link>https://{name}.example/</link><description>d</description>\
         <item><title>{name} news</title><link>https://{name}.example/1</link><guid>{name}-1</guid></item></channel></rss>"
    )
}

/// How many times the daemon's log says it kept the running config.
fn kept(daemon: &Daemon) -> usize {
    daemon.stderr().matches("keeping the running one").count()
}

fn healthy(daemon: &Daemon) -> bool {
    blocking_get(&daemon.url("/healthz")).is_some_and(|(status, _)| status == 200)
}

#[test]
fn a_reload_with_an_absurd_value_keeps_the_old_config_and_the_scheduler() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    server.put("a.rss", "application/rss+xml", rss("a"));
    server.put("b.rss", "application/rss+xml", rss("b"));
    let url = |path: &str| server.url(path);
    let dir = tempfile::tempdir().expect("tempdir");
    // Started on the body Daemon::start writes; every reload below writes the whole file.
    let daemon = Daemon::start(
        dir.path(),
        &format!(
            "[fetch]\nschedule = \"* * * * * *\"\n\n[[source]]\nname = \"a\"\nurl = \"{}\"\n\n[[feed]]\nname = \"all\"\n",
            url("a.rss")
        ),
    );
    daemon.wait_for("source a to be fetched", || Some(server.hits("a.rss") > 0));
    for (i, &(section, key, value)) in ABSURD.iter().enumerate() {
        let text = config_text(daemon.port, &url, false, Some((section, key, value)));
        std::fs::write(&daemon.config, &text).expect("rewrite config");
        daemon.signal(libc::SIGHUP);
        daemon.wait_for(
            &format!("the reload with {key} = {value} to be refused"),
            || Some(kept(&daemon) > i),
        );
        let log = daemon.stderr();
        let refusal = log
            .lines()
            .filter(|l| l.contains("keeping the running one"))
            .nth(i)
            .unwrap_or_default();
        assert!(
            refusal.contains(&place_of(&text, key, value)),
            "{key} = {value}: {refusal}"
        );
        assert!(
            healthy(&daemon),
            "/healthz after {key} = {value}:\n{}",
            daemon.stderr()
        );
        assert!(!daemon.stderr().contains("panicked"), "{}", daemon.stderr());
    }
    // The old config still runs: source a is fetched again, every second.
    let hits = server.hits("a.rss");
    daemon.wait_for("a further fetch of source a", || {
        Some(server.hits("a.rss") > hits)
    });
    // And the scheduler takes a good config after all those bad ones.
    std::fs::write(&daemon.config, config_text(daemon.port, &url, true, None))
        .expect("rewrite config");
    daemon.signal(libc::SIGHUP);
    daemon.wait_for("source b, added by a valid reload, to be fetched", || {
        Some(server.hits("b.rss") > 0)
    });
    daemon.wait_for("/healthz 200 after the valid reload", || {
        Some(healthy(&daemon))
    });
    let names: Vec<String> = daemon
        .status()
        .iter()
        .filter_map(|r| r["name"].as_str().map(String::from))
        .collect();
    assert_eq!(names, ["a", "b"]);
}

/// Whether `line` is one event of the daemon's log: a timestamp, then a level.
fn is_log_line(line: &str) -> bool {
    let mut words = line.split_whitespace();
    let time = words.next().unwrap_or_default();
    let level = words.next().unwrap_or_default();
    time.len() > 20
        && time.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        && time.ends_with('Z')
        && ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level)
}

#[test]
fn a_failed_reload_is_logged_on_one_line() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    server.put("a.rss", "application/rss+xml", rss("a"));
    let dir = tempfile::tempdir().expect("tempdir");
    let body = format!(
        "[[source]]\nname = \"a\"\nurl = \"{}\"\n\n[[feed]]\nname = \"all\"\n",
        server.url("a.rss")
    );
    let daemon = Daemon::start(dir.path(), &body);
    let good = std::fs::read_to_string(&daemon.config).expect("config");
    let moved = dir.path().join("elsewhere.toml");
    // A TOML syntax error (toml's message has two lines), no [[feed]] (ours had an
    // example over three), and no file at all (ours had a hint on a line of its own).
    let breakages = [
        "a TOML syntax error",
        "a config with no [[feed]]",
        "a missing config file",
    ];
    for (i, what) in breakages.iter().enumerate() {
        match i {
            0 => std::fs::write(
                &daemon.config,
                good.replace("[[feed]]", "tags = [\"a\",\n[[feed]]"),
            )
            .expect("write"),
            1 => std::fs::write(
                &daemon.config,
                good.replace("[[feed]]\nname = \"all\"\n", ""),
            )
            .expect("write"),
            _ => std::fs::rename(&daemon.config, &moved).expect("move"),
        }
        daemon.signal(libc::SIGHUP);
        daemon.wait_for(&format!("the reload of {what} to be refused"), || {
            Some(kept(&daemon) > i)
        });
    }
    let log = daemon.stderr();
    let strays: Vec<&str> = log.lines().filter(|l| !is_log_line(l)).collect();
    assert!(
        strays.is_empty(),
        "lines of the log that are no event of their own: {strays:#?}\n--- log ---\n{log}"
    );
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("keeping the running one"))
        .collect();
    assert_eq!(refusals.len(), 3, "{log}");
    assert!(refusals[0].contains("feedmill.toml:"), "{}", refusals[0]);
    assert!(refusals[1].contains("no [[feed]]"), "{}", refusals[1]);
    assert!(refusals[2].contains("-c FILE"), "{}", refusals[2]);
    assert!(healthy(&daemon));
}
