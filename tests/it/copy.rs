//! `feedmill store copy` and `feedmill store migrate` (issue 17): a store copied to another
//! serves the same documents, byte for byte and ETag for ETag; a copy into (or from) a store
//! a daemon holds fails at once, naming it; one store is never copied onto itself; a store
//! made by `migrate` is one the daemon starts on.
//!
//! The sources: the golden set (tests/data/golden: every dialect, media, hostile HTML, a
//! future update time, CJK text, one story from three outlets and one from two) and three
//! written here whose story is joined: an outlet, a wire, and a portal that links to the
//! outlet's page and carries the wire's text, fetched last so that it joins the outlet's
//! story and the wire's into one. The portal's item is undated: it is dated by its
//! first-seen time, which the copy must keep.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use crate::support::{blocking_request, feedmill, free_port, Daemon, Engine};

const GOLDEN: [(&str, &str); 5] = [
    ("wire", "wire.rss"),
    ("daily", "daily.atom"),
    ("desk", "desk.json"),
    ("notes", "notes.rdf"),
    ("herald", "herald.rss"),
];

/// The outlet, the wire and the bridging portal: name, link, text's story, date.
const JOINED: [(&str, &str, &str, Option<&str>); 3] = [
    (
        "outlet",
        "https://imdaily.example/fire",
        "fire",
        Some("Mon, 02 Mar 2020 10:00:00 GMT"),
    ),
    (
        "agency",
        "https://agency.example/991",
        "depot",
        Some("Mon, 02 Mar 2020 11:00:00 GMT"),
    ),
    (
        "portal",
        "http://IMDAILY.example/fire/?utm_source=portal#top",
        "depot",
        None,
    ),
];

const FEEDS: [&str; 3] = ["all", "links", "separate"];
const FORMATS: [&str; 3] = ["atom", "rss", "json"];

/// The `[store]` table of a sled store in `path` (relative to the config's directory).
fn sled_store(path: &str) -> String {
    format!("[store]\npath = \"{path}\"\n")
}

/// A store the copy goes through: its `[store]` table, and its name as `feedmill store
/// copy` says it (the sled directory, the PostgreSQL URL).
struct Destination {
    table: String,
    name: String,
}

/// A fresh sled store in `dir`.
fn sled_destination(dir: &Path) -> Destination {
    Destination {
        table: sled_store("store-b"),
        name: path_str(&dir.join("store-b")).to_string(),
    }
}

/// An RSS file of one item telling `story` in 40 words of its own.
fn joined_feed(name: &str, link: &str, story: &str, date: Option<&str>) -> String {
    let words: String = (0..40).map(|w| format!("{story}word{w} ")).collect();
    let date = date.map_or(String::new(), |d| format!("<pubDate>{d}</pubDate>"));
    format!(
        "<?xml version=\"1.0\"?>\n<rss version=\"2.0\"><channel><title>The {name}</title>\
         <link>https://{name}.example/</link><description>{name}</description>\
         <item><title>{name} {story}</title><link>{link}</link><guid>{name}-1</guid>{date}\
         <description>&lt;p&gt;{name} reports:&lt;/p&gt;&lt;p&gt;{words}&lt;/p&gt;</description>\
         </item></channel></rss>\n"
    )
}

/// Writes the joined story's feeds into `dir`; the config's sources and feeds.
fn sources(dir: &Path) -> String {
    let mut out = String::new();
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden");
    for (name, file) in GOLDEN {
        let url = url::Url::from_file_path(golden.join(file)).expect("absolute path");
        out.push_str(&format!(
            "[[source]]\nname = \"{name}\"\nurl = \"{url}\"\n\n"
        ));
    }
    for (name, link, story, date) in JOINED {
        let file = format!("{name}.rss");
        std::fs::write(dir.join(&file), joined_feed(name, link, story, date)).expect("feed");
        out.push_str(&format!(
            "[[source]]\nname = \"{name}\"\nurl = \"file:{file}\"\n\n"
        ));
    }
    out.push_str(
        "[[feed]]\nname = \"all\"\ntitle = \"Everything\"\n\n\
         [[feed]]\nname = \"links\"\ntitle = \"By link\"\ndedup = \"link\"\nmax_per_source = 2\n\n\
         [[feed]]\nname = \"separate\"\ntitle = \"Every entry\"\ndedup = \"none\"\n",
    );
    out
}

/// Writes a config named `name` in `dir`: the same server (but its port), fetching
/// schedule, sources and feeds for every store, so that only the store differs.
fn write_config(dir: &Path, name: &str, store: &str, sources: &str) -> (PathBuf, u16) {
    let port = free_port();
    let path = dir.join(name);
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nbase_url = \"https://planet.example/news/\"\n\
             title = \"Copied planet\"\n\n{store}\n[fetch]\nschedule = \"0 0 1 1 *\"\n\n{sources}"
        ),
    )
    .expect("config");
    (path, port)
}

/// Runs `feedmill ARGS`.
fn run(args: &[&str]) -> Output {
    feedmill().args(args).output().expect("runs feedmill")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("a UTF-8 path")
}

/// What one document is: its bytes and its ETag.
#[derive(Debug, PartialEq)]
struct Document {
    path: String,
    etag: String,
    body: Vec<u8>,
}

fn documents_once(daemon: &Daemon) -> Option<Vec<Document>> {
    let mut out = Vec::new();
    for feed in FEEDS {
        for format in FORMATS {
            let path = format!("/feeds/{feed}.{format}");
            let (status, headers, body) =
                blocking_request(reqwest::Method::GET, &daemon.url(&path), &[])?;
            if status != 200 {
                return None;
            }
            let etag = headers.get("etag")?.clone();
            out.push(Document { path, etag, body });
        }
    }
    Some(out)
}

/// Every feed document, once they are rendered and the same on two reads in a row.
fn documents(daemon: &Daemon) -> Vec<Document> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = None;
    while Instant::now() < deadline {
        let now = documents_once(daemon);
        if now.is_some() && now == last {
            return now.unwrap_or_default();
        }
        last = now;
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the documents did not settle\n{}", daemon.stderr());
}

/// `feedmill sources --json` of a config: every source's state as the store holds it.
fn states(config: &Path) -> serde_json::Value {
    let out = run(&["sources", "--json", "-c", path_str(config)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// The three numbers of "copied N sources, M entries, J story joins from A to B".
fn copied(stdout: &str, from: &str, to: &str) -> (u64, u64, u64) {
    let line = stdout.trim();
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    assert!(
        line.starts_with("copied ") && line.ends_with(&format!(" from {from} to {to}")),
        "{line}"
    );
    assert_eq!(numbers.len(), 3, "{line}");
    (numbers[0], numbers[1], numbers[2])
}

/// Fills a sled store from the sources (the portal last), serves it, copies it into the
/// store `destination` makes in a directory, and from there into another sled store, and
/// checks that each serves every document with the same bytes and ETag as the first.
fn outputs_survive_copies(destination: impl FnOnce(&Path) -> Destination) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sources = sources(dir.path());
    let destination = destination(dir.path());
    let (a, port_a) = write_config(dir.path(), "a.toml", &sled_store("store-a"), &sources);
    let (b, port_b) = write_config(dir.path(), "b.toml", &destination.table, &sources);
    let (c, port_c) = write_config(dir.path(), "c.toml", &sled_store("store-c"), &sources);

    // The outlet and the agency first: the portal then matches both and joins them.
    let first = run(&["fetch", "-c", path_str(&a), "outlet", "agency"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let all = run(&["fetch", "-c", path_str(&a)]);
    assert!(all.status.success(), "{}", text(&all.stderr));
    assert!(
        !text(&all.stdout).contains("FAILED"),
        "{}",
        text(&all.stdout)
    );

    let mut daemon = Daemon::start_at(a.clone(), port_a);
    let served = documents(&daemon);
    assert!(daemon.stop().success());
    // The story of the three is one entry in a feed that merges stories, three in one
    // that does not.
    let count = |feed: &str, needle: &str| {
        let doc = served
            .iter()
            .find(|d| d.path == format!("/feeds/{feed}.atom"))
            .expect("served");
        text(&doc.body).matches(needle).count()
    };
    assert_eq!(
        count("separate", "depotword7 "),
        2,
        "the agency and the portal"
    );
    assert_eq!(count("all", "depotword7 ") + count("all", "fireword7 "), 1);

    let out = run(&["store", "copy", "--from", path_str(&a), "-c", path_str(&b)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let store_a = dir.path().join("store-a");
    let (sources_copied, entries, joins) =
        copied(&text(&out.stdout), path_str(&store_a), &destination.name);
    let before = states(&a);
    let items: u64 = before
        .as_array()
        .expect("an array")
        .iter()
        .map(|s| s["items"].as_u64().unwrap_or_default())
        .sum();
    assert_eq!((sources_copied, entries), (GOLDEN.len() as u64 + 3, items));
    assert!(joins >= 1, "the portal's join is copied: {joins}");
    assert_eq!(
        states(&b),
        before,
        "every state as it was, validators and all"
    );

    let mut daemon = Daemon::start_at(b.clone(), port_b);
    assert_documents_equal(&served, &documents(&daemon), "the copy");
    assert!(daemon.stop().success());

    // And back to sled, from the copy.
    let out = run(&["store", "copy", "--from", path_str(&b), "-c", path_str(&c)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(states(&c), before);
    let mut daemon = Daemon::start_at(c, port_c);
    assert_documents_equal(&served, &documents(&daemon), "the copy of the copy");
    assert!(daemon.stop().success());
}

fn assert_documents_equal(before: &[Document], after: &[Document], what: &str) {
    for (old, new) in before.iter().zip(after) {
        assert_eq!(old.path, new.path);
        assert_eq!(old.etag, new.etag, "{} of {what}", old.path);
        assert!(
            old.body == new.body,
            "{} of {what} differs:\n--- before\n{}\n--- after\n{}",
            old.path,
            text(&old.body),
            text(&new.body)
        );
    }
    assert_eq!(before.len(), after.len());
}

#[test]
fn sled_to_sled_and_back_serves_the_same_bytes() {
    outputs_survive_copies(sled_destination);
}

#[test]
fn sled_to_postgres_and_back_serves_the_same_bytes() {
    Engine::Postgres.run(module_path!(), |engine| {
        // Kept alive for the test: the database is dropped with it.
        let store = engine.store();
        let url = store.url().expect("a database").to_string();
        outputs_survive_copies(|_| Destination {
            table: store.section(),
            name: url,
        });
    });
}

#[test]
fn a_copy_into_or_from_a_store_a_daemon_holds_fails_at_once_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body = "[[source]]\nname = \"good\"\nurl = \"file:good.rss\"\n[[feed]]\nname = \"all\"\n";
    std::fs::write(
        dir.path().join("good.rss"),
        joined_feed("good", "https://good.example/1", "good", None),
    )
    .expect("feed");
    let (other, _) = write_config(dir.path(), "other.toml", &sled_store("other-store"), body);
    assert!(run(&["fetch", "-c", path_str(&other)]).status.success());
    let daemon = Daemon::start(dir.path(), body);
    let held = dir.path().join("store");
    for (from, to) in [(&other, &daemon.config), (&daemon.config, &other)] {
        let started = Instant::now();
        let out = run(&[
            "store",
            "copy",
            "--from",
            path_str(from),
            "-c",
            path_str(to),
        ]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("in use by another feedmill process")
                && stderr.contains(path_str(&held)),
            "{stderr}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "it waited");
    }
    // The daemon's store is as it was, and it goes on.
    daemon.wait_for("the source stored", || {
        Some(daemon.try_status()?.first()?["items"].as_u64() == Some(1))
    });
}

#[test]
fn a_store_is_never_copied_onto_itself() {
    let dir = tempfile::tempdir().expect("tempdir");
    let body =
        "[[source]]\nname = \"a\"\nurl = \"https://a.example/feed\"\n[[feed]]\nname = \"all\"\n";
    let (a, _) = write_config(dir.path(), "a.toml", &sled_store("store"), body);
    std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
    // Another config, elsewhere, naming the same directory.
    let (same, _) = write_config(
        &dir.path().join("sub"),
        "b.toml",
        &sled_store("../store"),
        body,
    );
    for to in [&a, &same] {
        let out = run(&["store", "copy", "--from", path_str(&a), "-c", path_str(to)]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains("both configs name the same store"),
            "{stderr}"
        );
    }
    assert!(!dir.path().join("store").exists(), "nothing was opened");
}

#[test]
fn migrate_makes_a_store_the_daemon_starts_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("good.rss"),
        joined_feed("good", "https://good.example/1", "good", None),
    )
    .expect("feed");
    let body = "[[source]]\nname = \"good\"\nurl = \"file:good.rss\"\n[[feed]]\nname = \"all\"\n";
    let (config, port) = write_config(dir.path(), "feedmill.toml", &sled_store("store"), body);
    let store = dir.path().join("store");
    let out = run(&["store", "migrate", "-c", path_str(&config)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with(&format!(
            "store {} created at schema version ",
            store.display()
        )),
        "{}",
        text(&out.stdout)
    );
    let again = run(&["store", "migrate", "-c", path_str(&config)]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert!(
        text(&again.stdout)
            .starts_with(&format!("store {} is at schema version ", store.display())),
        "{}",
        text(&again.stdout)
    );
    let daemon = Daemon::start_at(config.clone(), port);
    daemon.wait_for("the source stored", || {
        Some(daemon.try_status()?.first()?["items"].as_u64() == Some(1))
    });
    // While the daemon holds it, migrate fails at once, naming it.
    let held = run(&["store", "migrate", "-c", path_str(&config)]);
    assert_eq!(held.status.code(), Some(1));
    assert!(
        text(&held.stderr).contains(&format!("the store {} is in use", store.display())),
        "{}",
        text(&held.stderr)
    );
}
