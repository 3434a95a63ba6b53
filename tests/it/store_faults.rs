//! A corrupt store never crash-loops; a full disk is an error, not a hot loop (issue 14, items 5, 6).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{blocking_get, feedmill, Daemon, FeedServer};

/// An RSS document of `items` entries with some text each (a store of about a megabyte for
/// 300: several of sled's pages, so that damage in the middle of its file hits live data).
fn rss(name: &str, items: usize) -> String {
    let items: String = (0..items)
        .map(|i| {
            let words: String = (0..40).map(|w| format!("{name}word{i}x{w} ")).collect();
            format!(
                "<item><guid>{name}-{i}</guid><title>{name} item {i}</title><link>http://{name}.example/{i}</link><description>{words}</description></item>"
            )
        })
        .collect();
    format!("<rss version=\"2.0\"><channel><title>{name}</title><link>http://{name}.example/</link><description>d</description>{items}</channel></rss>")
}

/// The sources `names` (each `NAME.rss`) on `schedule`, and a feed of them.
fn config_body(server: &FeedServer, names: &[&str], schedule: &str) -> String {
    let mut body = format!("[fetch]\nschedule = \"{schedule}\"\n");
    for name in names {
        body.push_str(&format!(
            "[[source]]\nname = \"{name}\"\nurl = \"{}\"\n",
            server.url(&format!("{name}.rss"))
        ));
    }
    body + "[[feed]]\nname = \"all\"\n"
}

/// Once a year: fetched at start when never fetched, then not again during a test.
const YEARLY: &str = "0 0 1 1 *";

/// Serves `items` entries for each of `names`, and fills `dir/store` with them through
/// `feedmill fetch` and a config of its own there.
fn fill_store(dir: &Path, server: &FeedServer, names: &[&str], items: usize) -> PathBuf {
    for name in names {
        server.put(
            &format!("{name}.rss"),
            "application/rss+xml",
            rss(name, items),
        );
    }
    let config = dir.join("fetch.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\npath = \"store\"\n{}",
            config_body(server, names, YEARLY)
        ),
    )
    .expect("write config");
    let out = feedmill()
        .args(["fetch", "-c"])
        .arg(&config)
        .output()
        .expect("feedmill fetch runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.matches(&format!("{items} new")).count() == names.len(),
        "filling the store failed: {out:?}"
    );
    config
}

#[derive(Debug, Clone, Copy)]
enum Damage {
    /// The `db` file cut to half its length.
    CutToHalf,
    /// 4 KiB of random bytes in the middle of it.
    Scribbled,
    /// Its second half zeroed.
    ZeroedTail,
}

/// Damages the store's `db` file as `how` says.
fn damage(store: &Path, how: Damage) {
    let db = store.join("db");
    let mut bytes = std::fs::read(&db).expect("read db");
    let len = bytes.len();
    assert!(
        len > 64 * 1024,
        "a store of {len} bytes is too small to damage"
    );
    match how {
        Damage::CutToHalf => bytes.truncate(len / 2),
        Damage::Scribbled => {
            // xorshift: the same bytes on every run.
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
            for byte in &mut bytes[len / 2 - 2048..len / 2 + 2048] {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *byte = x as u8;
            }
        }
        Damage::ZeroedTail => bytes[len / 2..].fill(0),
    }
    std::fs::write(&db, bytes).expect("write db");
}

/// The log lines that say the store was moved aside, and the path each names.
fn moved_aside(log: &str) -> Vec<(String, PathBuf)> {
    log.lines()
        .filter(|line| line.contains("moved it to "))
        .map(|line| {
            let path = line
                .split("moved it to ")
                .nth(1)
                .and_then(|rest| rest.split(" and starting").next())
                .unwrap_or_default();
            (line.to_string(), PathBuf::from(path))
        })
        .collect()
}

/// Checks that `log` says once, on one line, where the store went, that it is there, and
/// that no panic report was printed.
fn assert_moved_aside_once(log: &str, store: &Path) {
    let moved = moved_aside(log);
    assert_eq!(
        moved.len(),
        1,
        "want one line naming where the store went:\n{log}"
    );
    let (line, aside) = &moved[0];
    assert!(line.contains("corrupt"), "{line}");
    assert!(aside.is_dir(), "{} does not exist: {line}", aside.display());
    assert_ne!(aside, store);
    assert!(
        aside.join("db").exists(),
        "the old db is not in {}",
        aside.display()
    );
    // The report Rust prints for a panic: "thread 'main' (123) panicked at src/x.rs:1:2:"
    // then the message and a backtrace, on several lines.
    assert!(!log.contains("panicked at"), "a panic report:\n{log}");
    assert!(!log.contains("stack backtrace"), "a panic report:\n{log}");
}

/// A store of `items` entries for each of `names`, damaged as `how` says, then the daemon
/// started on it, with every source due and changed: whatever opening did not find, the
/// first render or commit reads (a damaged page nothing reads does no harm, and is not
/// looked for).
fn daemon_starts_on_a_damaged_store(names: &[&str], items: usize, how: Damage) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    let dir = tempfile::tempdir().expect("tempdir");
    fill_store(dir.path(), &server, names, items);
    damage(&dir.path().join("store"), how);
    for name in names {
        server.put(
            &format!("{name}.rss"),
            "application/rss+xml",
            rss(name, items),
        );
    }
    let hits = || {
        names
            .iter()
            .map(|n| server.hits(&format!("{n}.rss")))
            .sum::<usize>()
    };
    let hits_before = hits();

    // Start answers /healthz 200 (or the test fails with the daemon's log).
    let mut daemon = Daemon::start(dir.path(), &config_body(&server, names, "* * * * * *"));
    // Fetched again into the new store, and served.
    daemon.wait_for("the sources' entries in the new store", || {
        let status = daemon.try_status()?;
        Some(status.iter().all(|s| s["items"] == items))
    });
    daemon.wait_for("the entries in the feed", || {
        let (status, body) = blocking_get(&daemon.url("/feeds/all.atom"))?;
        let body = String::from_utf8_lossy(&body);
        Some(
            status == 200
                && names
                    .iter()
                    .any(|n| body.contains(&format!("{n} item 10<"))),
        )
    });
    assert!(daemon.try_wait().is_none(), "the daemon exited");
    assert_moved_aside_once(&daemon.stderr(), &dir.path().join("store"));
    assert!(hits() > hits_before, "not fetched again");
    let (status, _) = blocking_get(&daemon.url("/healthz")).expect("healthz answers");
    assert_eq!(status, 200);

    // The new store is a good one: a restart starts on it, moving nothing.
    let daemon = daemon.restart();
    assert!(daemon.status().iter().all(|s| s["items"] == items));
    assert!(
        moved_aside(&daemon.stderr()).is_empty(),
        "{}",
        daemon.stderr()
    );
}

#[test]
fn the_daemon_starts_on_a_store_cut_to_half() {
    daemon_starts_on_a_damaged_store(&["a"], 300, Damage::CutToHalf);
}

#[test]
fn the_daemon_starts_on_a_scribbled_store() {
    daemon_starts_on_a_damaged_store(&["a"], 300, Damage::Scribbled);
}

#[test]
fn the_daemon_starts_on_a_store_with_a_zeroed_tail() {
    daemon_starts_on_a_damaged_store(&["a"], 300, Damage::ZeroedTail);
}

/// sled panics inside `open` on most such stores ("index out of bounds" in its
/// `segment.rs`: the cut leaves fewer segments than its snapshot names) and reports
/// corruption on the others (its background flusher decides the layout): either way, one
/// log line and no panic report.
#[test]
fn the_daemon_starts_on_a_larger_store_cut_to_half() {
    daemon_starts_on_a_damaged_store(&["a", "b", "c"], 1000, Damage::CutToHalf);
}

#[test]
fn fetch_and_sources_never_panic_on_a_damaged_store_and_fetch_rebuilds_it() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    for how in [Damage::CutToHalf, Damage::Scribbled, Damage::ZeroedTail] {
        for command in ["sources", "fetch"] {
            let dir = tempfile::tempdir().expect("tempdir");
            let config = fill_store(dir.path(), &server, &["a"], 300);
            damage(&dir.path().join("store"), how);
            // A new version of the document: `fetch` stores it, reading what it holds.
            server.put("a.rss", "application/rss+xml", rss("a", 300));
            let out = feedmill()
                .arg(command)
                .arg("-c")
                .arg(&config)
                .output()
                .expect("runs");
            let (stdout, stderr) = (
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
            );
            assert!(
                out.status.success(),
                "{command} on a store {how:?}: {}\n{stdout}\n{stderr}",
                out.status
            );
            if command == "fetch" {
                // Whether opening or the commit finds the damage: moved aside once, and
                // everything fetched into the new store.
                assert_moved_aside_once(&stderr, &dir.path().join("store"));
                assert!(stdout.contains("300 new"), "fetch {how:?}: {stdout}");
            } else {
                // `sources` reads the source states alone: moved aside if they are damaged,
                // else shown as they are (damaged entries are the daemon's or fetch's to find).
                assert!(!stderr.contains("panicked at"), "a panic report:\n{stderr}");
                let moved = moved_aside(&stderr).len();
                assert!(moved <= 1, "{stderr}");
                if moved == 1 {
                    assert_moved_aside_once(&stderr, &dir.path().join("store"));
                }
                assert!(stdout.contains("\na "), "sources {how:?}: {stdout}");
            }
        }
    }
}

#[test]
fn a_store_in_use_or_of_a_newer_schema_is_never_moved_aside() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    server.put("a.rss", "application/rss+xml", rss("a", 3));
    let dir = tempfile::tempdir().expect("tempdir");
    let daemon = Daemon::start(dir.path(), &config_body(&server, &["a"], YEARLY));
    daemon.wait_for("the entries", || {
        Some(daemon.try_status()?.first()?["items"] == 3)
    });
    let started = Instant::now();
    let out = feedmill()
        .args(["sources", "-c"])
        .arg(&daemon.config)
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(started.elapsed() < Duration::from_secs(5), "it waited");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use"), "{stderr}");
    assert!(moved_aside(&stderr).is_empty(), "{stderr}");
    let siblings: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| name.contains("corrupt"))
        .collect();
    assert!(siblings.is_empty(), "{siblings:?}");
    assert_eq!(daemon.source("a")["items"], 3, "the live store changed");

    // Written by a feedmill of a newer schema: refused, and left as it is.
    let mut daemon = daemon;
    assert!(daemon.stop().success());
    let store = dir.path().join("store");
    {
        let db = sled::open(&store).expect("sled opens the store");
        db.insert(b"m:schema", b"99").expect("writes");
        db.flush().expect("flushes");
    }
    let out = feedmill()
        .args(["sources", "-c"])
        .arg(&daemon.config)
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stderr.contains("newer"), "{stderr}");
    assert!(moved_aside(&stderr).is_empty(), "{stderr}");
    assert!(
        sled::open(&store)
            .expect("still there")
            .get(b"m:schema")
            .expect("reads")
            .is_some_and(|v| v.as_ref() == b"99"),
        "the store was touched"
    );
}

/// A tmpfs mounted at a directory for the life of the guard (unmounted on drop, a panic
/// included).
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` (with the reason) when mounting is not permitted here.
    fn mount(at: &Path, size_kib: u64) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_kib}k"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            Ok(Tmpfs(at.to_path_buf()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Busy (a process still has a file open): detach it now, gone when let go.
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

/// Writes `path` until the file system is full.
fn fill_up(path: &Path) {
    let mut file = std::fs::File::create(path).expect("create filler");
    let chunk = vec![0xa5u8; 4096];
    loop {
        match file.write_all(&chunk).and_then(|()| file.sync_data()) {
            Ok(()) => {}
            Err(err) if err.raw_os_error() == Some(28) => break,
            Err(err) => panic!("filling {}: {err}", path.display()),
        }
    }
}

fn body_of(daemon: &Daemon, path: &str) -> Option<(u16, String)> {
    blocking_get(&daemon.url(path)).map(|(s, b)| (s, String::from_utf8_lossy(&b).into_owned()))
}

#[test]
fn a_full_disk_backs_off_reports_503_and_recovers_by_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    // The store's directory is on the tmpfs (through a link, as the harness names it
    // `store`); the config and the daemon's log stay off it.
    let _tmpfs = match Tmpfs::mount(&dir.path().join("small"), 8 * 1024) {
        Ok(tmpfs) => tmpfs,
        Err(why) => {
            eprintln!("skipping the full-disk test: cannot mount a tmpfs here ({why})");
            return;
        }
    };
    std::fs::create_dir(dir.path().join("small/store")).expect("store dir");
    std::os::unix::fs::symlink(dir.path().join("small/store"), dir.path().join("store"))
        .expect("link");

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    let names = ["a", "b", "c"];
    let mut body = String::from("[fetch]\nschedule = \"* * * * * *\"\n");
    for name in names {
        server.put(&format!("{name}.rss"), "application/rss+xml", rss(name, 3));
        body.push_str(&format!(
            "[[source]]\nname = \"{name}\"\nurl = \"{}\"\n",
            server.url(&format!("{name}.rss"))
        ));
    }
    body.push_str("[[feed]]\nname = \"all\"\n");
    let daemon = Daemon::start(dir.path(), &body);
    daemon.wait_for("every source stored", || {
        let status = daemon.try_status()?;
        Some(status.len() == 3 && status.iter().all(|s| s["items"] == 3))
    });

    let hits = || names.map(|n| server.hits(&format!("{n}.rss")));
    fill_up(&dir.path().join("small/filler"));
    let before = hits();
    // Something to write: every source's next fetch has new entries.
    for name in names {
        server.put(&format!("{name}.rss"), "application/rss+xml", rss(name, 30));
    }
    daemon.wait_for("every source to report the failed write", || {
        let status = daemon.try_status()?;
        Some(status.iter().all(|s| {
            let error = s["last_error"].as_str().unwrap_or_default();
            error.contains("store write failed")
                && error.contains("No space left on device")
                && s["consecutive_failures"].as_u64() >= Some(1)
        }))
    });
    let (status, reason) = body_of(&daemon, "/healthz").expect("healthz answers");
    assert_eq!(status, 503, "{reason}");
    assert!(reason.contains("No space left on device"), "{reason}");
    // Backoff, not a hot loop: on a schedule of every second, a few seconds more bring
    // no fetch (each source was fetched at most three times since the disk filled up: one
    // whose write sled accepted and then could not put on disk, the one that failed).
    let failing = hits();
    // (A sleep: what is checked is that nothing happens meanwhile.)
    std::thread::sleep(Duration::from_secs(4));
    let later = hits();
    for (i, name) in names.iter().enumerate() {
        assert!(
            later[i] - before[i] <= 3,
            "{name} was fetched {} times on a full disk\n{}",
            later[i] - before[i],
            daemon.stderr()
        );
        assert_eq!(
            later[i], failing[i],
            "{name} fetched again while backing off"
        );
    }
    let (status, _) = body_of(&daemon, "/healthz").expect("healthz answers");
    assert_eq!(status, 503);

    // Space again: no restart, well within the minute of backoff.
    std::fs::remove_file(dir.path().join("small/filler")).expect("remove filler");
    let freed = Instant::now();
    daemon.wait_for("/healthz 200 again", || {
        Some(body_of(&daemon, "/healthz")?.0 == 200)
    });
    daemon.wait_for("the new entries stored", || {
        let status = daemon.try_status()?;
        Some(
            status
                .iter()
                .all(|s| s["items"] == 30 && s["last_error"].is_null()),
        )
    });
    // (Newest first, 50 entries: the first of each document.)
    daemon.wait_for("the new entries in the feed", || {
        let (status, body) = body_of(&daemon, "/feeds/all.atom")?;
        Some(
            status == 200
                && names
                    .iter()
                    .all(|n| body.contains(&format!("{n} item 10<"))),
        )
    });
    assert!(
        freed.elapsed() < Duration::from_secs(30),
        "recovery took {:?}",
        freed.elapsed()
    );
    assert!(
        daemon.stderr().contains("store writes work again"),
        "{}",
        daemon.stderr()
    );
}
