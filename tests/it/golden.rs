//! Golden outputs (issue 16): a fixed set of sources (tests/data/golden/: RSS 2.0, Atom 1.0,
//! RSS 1.0, JSON Feed and a Windows-1252 RSS; one story from three outlets, one from two,
//! media, hostile HTML, a future update time, CJK text), every entry dated long ago, rendered
//! to every output: Atom, RSS, JSON Feed and the HTML view of three output feeds (content,
//! link and no dedup; a per-source cap; include and exclude), and the home page. The bytes and
//! the ETag of each must be exactly those in tests/data/golden/expected/, which were written
//! by the build before the issue-16 restructuring: the restructuring changed no output.
//!
//! After a deliberate change of output, write the files anew with
//! `FEEDMILL_BLESS=1 cargo test --test it -- golden::`, and review the diff.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{blocking_request, Daemon};

const SOURCES: [(&str, &str); 5] = [
    ("wire", "wire.rss"),
    ("daily", "daily.atom"),
    ("desk", "desk.json"),
    ("notes", "notes.rdf"),
    ("herald", "herald.rss"),
];

/// What is compared: the path served, and the file in expected/ that holds it.
const OUTPUTS: [(&str, &str); 13] = [
    ("/feeds/all.atom", "all.atom"),
    ("/feeds/all.rss", "all.rss"),
    ("/feeds/all.json", "all.json"),
    ("/feeds/all", "all.html"),
    ("/feeds/links.atom", "links.atom"),
    ("/feeds/links.rss", "links.rss"),
    ("/feeds/links.json", "links.json"),
    ("/feeds/links", "links.html"),
    ("/feeds/filtered.atom", "filtered.atom"),
    ("/feeds/filtered.rss", "filtered.rss"),
    ("/feeds/filtered.json", "filtered.json"),
    ("/feeds/filtered", "filtered.html"),
    ("/", "home.html"),
];

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/golden")
}

fn config(sources: &Path, port: u16) -> String {
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nbase_url = \"https://planet.example/news/\"\n\
         title = \"Golden planet\"\n\n[store]\npath = \"store\"\n\n[fetch]\nschedule = \"0 0 1 1 *\"\n\n"
    );
    for (name, file) in SOURCES {
        let url = url::Url::from_file_path(sources.join(file)).expect("absolute path");
        config.push_str(&format!(
            "[[source]]\nname = \"{name}\"\nurl = \"{url}\"\n\n"
        ));
    }
    config.push_str(
        "[[feed]]\nname = \"all\"\ntitle = \"Everything\"\n\n\
         [[feed]]\nname = \"links\"\ntitle = \"Wire and daily\"\nsources = [\"wire\", \"daily\", \"herald\"]\n\
         dedup = \"link\"\nmax_per_source = 2\n\n\
         [[feed]]\nname = \"filtered\"\ntitle = \"Rail and schools, no opinion\"\ndedup = \"none\"\n\
         include = [\"rail\", \"schools\", \"FENCES\"]\nexclude = [\"opinion\"]\n",
    );
    config
}

/// What one output is: its bytes and its ETag.
struct Output {
    body: Vec<u8>,
    etag: String,
}

fn get(daemon: &Daemon, path: &str) -> Option<Output> {
    let (status, headers, body) = blocking_request(reqwest::Method::GET, &daemon.url(path), &[])?;
    let etag = headers
        .iter()
        .find(|(k, _)| *k == "etag")
        .map(|(_, v)| v.clone())?;
    (status == 200).then_some(Output { body, etag })
}

fn every_source_stored(daemon: &Daemon) -> Option<bool> {
    let status = daemon.try_status()?;
    Some(
        status.len() == SOURCES.len()
            && status
                .iter()
                .all(|s| s["last_status"].as_u64() == Some(200) && s["items"].as_u64() > Some(0)),
    )
}

/// Reads every output once the render has settled: the same bytes on reads a render apart.
fn settled_outputs(daemon: &Daemon) -> Vec<Output> {
    daemon.wait_for("every source stored", || every_source_stored(daemon));
    let read_all =
        || -> Option<Vec<Output>> { OUTPUTS.iter().map(|(p, _)| get(daemon, p)).collect() };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last: Option<Vec<Output>> = None;
    let mut same_reads = 0;
    while Instant::now() < deadline {
        if let Some(now) = read_all() {
            let same = last
                .as_ref()
                .is_some_and(|l| l.iter().zip(&now).all(|(a, b)| a.etag == b.etag));
            same_reads = if same { same_reads + 1 } else { 0 };
            if same_reads >= 5 {
                return now;
            }
            last = Some(now);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the outputs did not settle\n{}", daemon.stderr());
}

fn etags_file() -> PathBuf {
    golden_dir().join("expected/etags.txt")
}

#[test]
fn a_fixed_store_renders_to_the_same_bytes_and_etags_as_before() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = crate::support::free_port();
    let config_path = dir.path().join("feedmill.toml");
    std::fs::write(&config_path, config(&golden_dir(), port)).expect("config");
    let mut daemon = Daemon::start_at(config_path, port);
    let outputs = settled_outputs(&daemon);
    daemon.stop();

    let expected_dir = golden_dir().join("expected");
    let etag_lines: Vec<String> = OUTPUTS
        .iter()
        .zip(&outputs)
        .map(|((path, _), out)| format!("{path} {}", out.etag))
        .collect();
    if std::env::var_os("FEEDMILL_BLESS").is_some() {
        std::fs::create_dir_all(&expected_dir).expect("expected dir");
        for ((_, file), out) in OUTPUTS.iter().zip(&outputs) {
            std::fs::write(expected_dir.join(file), &out.body).expect("write golden");
        }
        std::fs::write(etags_file(), etag_lines.join("\n") + "\n").expect("write etags");
        return;
    }
    let mut differences = Vec::new();
    for ((path, file), out) in OUTPUTS.iter().zip(&outputs) {
        let expected = std::fs::read(expected_dir.join(file)).unwrap_or_default();
        if expected != out.body {
            let actual_path = dir.path().join(file);
            std::fs::write(&actual_path, &out.body).expect("write actual");
            differences.push(format!(
                "{path}: bytes differ: diff {} {}",
                expected_dir.join(file).display(),
                actual_path.display()
            ));
        }
    }
    let expected_etags = std::fs::read_to_string(etags_file()).unwrap_or_default();
    for (line, expected) in etag_lines.iter().zip(expected_etags.lines()) {
        if line != expected {
            differences.push(format!("ETag: expected {expected}, got {line}"));
        }
    }
    if !differences.is_empty() {
        // Keep the actual outputs for the diff the message names.
        let kept = dir.keep();
        panic!(
            "outputs changed (kept in {}):\n{}",
            kept.display(),
            differences.join("\n")
        );
    }
}
