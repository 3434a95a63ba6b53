//! The differential test against the reference, Python's feedparser (issue 15, "What it must
//! show"), the round trip of every output, and the validity of every output.
//!
//! Every document of `tests/data/reference/` is served by a local server (content type by the
//! corpus naming rules: `.xml` is `application/xml`, `.json` is `application/feed+json`, a
//! `.charset-NAME` segment before the extension adds `; charset=NAME`), fetched once by
//! `feedmill fetch` into one store (one source per document), and republished by a daemon as
//! one output feed per document. The Python scripts of `tests/reference/` then compare:
//!
//! - `compare.py`: each document as feedparser reads it against its republished Atom as
//!   feedparser reads it. The differences we make on purpose are listed once, at its top.
//! - `roundtrip.py`: each output (Atom, RSS, JSON) fetched again by a second feedmill, against
//!   the first one's entries.
//! - `validate.py`: each output against the rules the W3C Feed Validation Service reports as
//!   errors.
//!
//! `FEEDMILL_REFERENCE_ONLY=substring` limits a run to the files whose name contains it;
//! `FEEDMILL_REFERENCE_REPORT=path` makes `compare.py` write its full report there as JSON.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, Weak};

use crate::support::{feedmill, Daemon, FeedServer};

/// Where the corpus and the scripts are.
fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// One corpus document and where it is served and republished.
#[derive(Clone, Debug)]
struct Document {
    /// The file name in tests/data/reference/.
    file: String,
    /// The source and feed name derived from it.
    name: String,
    content_type: String,
    /// Where the feed server serves it.
    url: String,
    /// What `feedmill fetch` printed for its source.
    fetched: String,
}

/// A source name (`[a-z0-9_-]+`, at most 64 bytes, unique) for a corpus file name
/// (`[a-z0-9.-]+`): dots become underscores, and a long name is cut and given a hash of the
/// whole, so that `-atom`, `-rss` and `-json` still fit behind it.
fn source_name(file: &str) -> String {
    let name: String = file
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' => c,
            _ => '_',
        })
        .collect();
    if name.len() <= 59 {
        return name;
    }
    // FNV-1a: stable across runs and Rust versions.
    let hash = file.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{}-{:08x}", &name[..50], hash as u32)
}

/// The `Content-Type` a corpus file is served with, by the naming rules; `None` for files that
/// are not documents (a README).
fn content_type(file: &str) -> Option<String> {
    let (stem, base) = if let Some(stem) = file.strip_suffix(".xml") {
        (stem, "application/xml")
    } else if let Some(stem) = file.strip_suffix(".json") {
        (stem, "application/feed+json")
    } else {
        return None;
    };
    Some(match stem.rsplit_once(".charset-") {
        Some((_, charset)) if !charset.is_empty() && !charset.contains('.') => {
            format!("{base}; charset={charset}")
        }
        _ => base.to_string(),
    })
}

/// The corpus files, sorted, limited by `FEEDMILL_REFERENCE_ONLY`.
fn corpus_files() -> Vec<(String, String)> {
    let dir = repo_path("tests/data/reference");
    let only = std::env::var("FEEDMILL_REFERENCE_ONLY").unwrap_or_default();
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading the corpus {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|file| file.contains(only.as_str()))
        .filter_map(|file| Some((content_type(&file)?, file)))
        .map(|(ct, file)| (file, ct))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "no corpus document in {} matches FEEDMILL_REFERENCE_ONLY={only:?}",
        dir.display()
    );
    files
}

/// Fails the test, naming the module and `.ci/run`, when python3 cannot import feedparser:
/// the reference must never be skipped silently.
fn require_feedparser() {
    let out = Command::new("python3")
        .args(["-c", "import feedparser"])
        .output();
    match out {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "python3 cannot import the module feedparser (the reference of this test): {}\nrun `bash .ci/run`, which installs feedparser==6.0.14",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!(
            "python3 does not run ({e}); this test needs python3 with the module feedparser: run `bash .ci/run`, which installs feedparser==6.0.14"
        ),
    }
}

/// One output feed and the sources (name, URL) it shows.
type FeedSpec = (String, Vec<(String, String)>);

/// The config body (after `[server]` and `[store]`) of these feeds and their sources, every
/// entry of every source shown. Yearly schedules: the daemon serves what `feedmill fetch`
/// stored and fetches nothing again.
fn config_body(feeds: &[FeedSpec]) -> String {
    let mut body = String::from(
        "[fetch]\nschedule = \"0 0 1 1 *\"\nper_host = 64\nconcurrency = 64\ntimeout = \"20s\"\n\n",
    );
    for (feed, sources) in feeds {
        let mut names = vec![];
        for (name, url) in sources {
            body.push_str(&format!(
                "[[source]]\nname = \"{name}\"\nurl = \"{url}\"\n\n"
            ));
            names.push(format!("\"{name}\""));
        }
        body.push_str(&format!(
            "[[feed]]\nname = \"{feed}\"\ntitle = \"{feed}\"\nsources = [{}]\ndedup = \"none\"\nlimit = 1000\nmax_per_source = 1000\n\n",
            names.join(", ")
        ));
    }
    body
}

/// `feedmill fetch` of every source of `feeds` into the store `Daemon::start` uses in `dir`,
/// then the daemon on it, once every feed answers. Returns the daemon and what `fetch`
/// printed for each source.
fn fetch_then_serve(dir: &Path, feeds: &[FeedSpec]) -> (Daemon, HashMap<String, String>) {
    let body = config_body(feeds);
    let body = body.as_str();
    let started = std::time::Instant::now();
    let config = dir.join("fetch.toml");
    std::fs::write(&config, format!("[store]\npath = \"store\"\n\n{body}")).expect("write config");
    let out = feedmill()
        .arg("fetch")
        .arg("-c")
        .arg(&config)
        .output()
        .expect("feedmill fetch runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.code() == Some(0) || out.status.code() == Some(1),
        "feedmill fetch failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = HashMap::new();
    for line in stdout.lines() {
        if let Some((name, rest)) = line.split_once(char::is_whitespace) {
            lines.insert(name.to_string(), rest.trim().to_string());
        }
    }
    let fetched = started.elapsed();
    let daemon = Daemon::start(dir, body);
    let atoms: Vec<String> = feeds
        .iter()
        .map(|(name, _)| daemon.url(&format!("/feeds/{name}.atom")))
        .collect();
    daemon.wait_for("every output feed to be rendered", || {
        Some(all_answer(&atoms))
    });
    eprintln!(
        "{} feeds of {} sources: fetched in {:.1} s, served after {:.1} s",
        feeds.len(),
        lines.len(),
        fetched.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    (daemon, lines)
}

/// Whether every URL answers 200 (requests 32 at a time: a corpus has hundreds).
fn all_answer(urls: &[String]) -> bool {
    use futures_util::StreamExt;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let client = reqwest::Client::new();
        futures_util::stream::iter(urls)
            .map(|url| {
                let client = client.clone();
                async move {
                    client
                        .get(url)
                        .send()
                        .await
                        .is_ok_and(|r| r.status() == 200)
                }
            })
            .buffer_unordered(32)
            .all(|ok| async move { ok })
            .await
    })
}

/// The corpus served, fetched and republished: what every test here reads.
struct Corpus {
    documents: Vec<Document>,
    daemon: Daemon,
    dir: tempfile::TempDir,
    _server: FeedServer,
    _runtime: tokio::runtime::Runtime,
}

impl Corpus {
    /// The daemon's URL of a document's output in `ext` (atom, rss, json).
    fn output(&self, doc: &Document, ext: &str) -> String {
        self.daemon.url(&format!("/feeds/{}.{ext}", doc.name))
    }
}

/// The tests running at once share one corpus daemon (it is dropped, and the daemon stopped,
/// when the last of them is done).
static CORPUS: Mutex<Weak<Corpus>> = Mutex::new(Weak::new());

/// The corpus daemon, built by the first test that asks while none is alive.
fn corpus() -> Arc<Corpus> {
    let mut shared = CORPUS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(corpus) = shared.upgrade() {
        return corpus;
    }
    let corpus = Arc::new(build_corpus());
    *shared = Arc::downgrade(&corpus);
    corpus
}

fn build_corpus() -> Corpus {
    require_feedparser();
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    let corpus_dir = repo_path("tests/data/reference");
    let mut documents: Vec<Document> = corpus_files()
        .into_iter()
        .map(|(file, content_type)| {
            let body = std::fs::read(corpus_dir.join(&file)).expect("read a corpus file");
            let path = format!("reference/{file}");
            server.put(&path, &content_type, body);
            Document {
                name: source_name(&file),
                url: server.url(&path),
                file,
                content_type,
                fetched: String::new(),
            }
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let feeds: Vec<FeedSpec> = documents
        .iter()
        .map(|d| (d.name.clone(), vec![(d.name.clone(), d.url.clone())]))
        .collect();
    let (daemon, fetched) = fetch_then_serve(dir.path(), &feeds);
    for doc in &mut documents {
        doc.fetched = fetched.get(&doc.name).cloned().unwrap_or_default();
    }
    Corpus {
        documents,
        daemon,
        dir,
        _server: server,
        _runtime: runtime,
    }
}

/// Runs `tests/reference/SCRIPT MANIFEST`, prints what it printed, and fails the test when it
/// exits non-zero.
fn run_script(script: &str, manifest: &Path) {
    let started = std::time::Instant::now();
    let out = Command::new("python3")
        .arg(repo_path(&format!("tests/reference/{script}")))
        .arg(manifest)
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!(
        "{stderr}{script} ran {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        out.status.success(),
        "{script} found disagreements ({}); its output is above, the last lines:\n{}\n{}",
        out.status,
        stdout
            .lines()
            .rev()
            .take(3)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect::<Vec<_>>()
            .join("\n"),
        stderr.trim()
    );
}

/// The manifest entry of a document: the file, how it is served, and the first daemon's
/// outputs of it.
fn manifest_entry(corpus: &Corpus, doc: &Document) -> serde_json::Value {
    serde_json::json!({
        "file": repo_path("tests/data/reference").join(&doc.file),
        "name": doc.name,
        "content_type": doc.content_type,
        "url": doc.url,
        "fetched": doc.fetched,
        "atom": corpus.output(doc, "atom"),
        "rss": corpus.output(doc, "rss"),
        "json": corpus.output(doc, "json"),
    })
}

fn write_manifest(dir: &Path, file: &str, documents: Vec<serde_json::Value>) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&serde_json::json!({ "documents": documents })).expect("json"),
    )
    .expect("write the manifest");
    path
}

/// Runs `script` over the manifest of every corpus document and its outputs.
fn check_every_document(script: &str, manifest_name: &str) {
    let corpus = corpus();
    let documents = corpus
        .documents
        .iter()
        .map(|doc| manifest_entry(&corpus, doc))
        .collect();
    let manifest = write_manifest(corpus.dir.path(), manifest_name, documents);
    run_script(script, &manifest);
}

#[test]
fn every_corpus_entry_is_republished_as_feedparser_reads_it() {
    check_every_document("compare.py", "compare.json");
}

#[test]
fn every_corpus_output_reads_back_to_the_same_entries() {
    let corpus = corpus();
    // A second feedmill whose sources are the first one's outputs, three per document, in
    // one feed per document (a feed per source is three times the daemon's start-up); the
    // JSON Feed names each item's source.
    const FORMATS: [&str; 3] = ["atom", "rss", "json"];
    let feeds: Vec<FeedSpec> = corpus
        .documents
        .iter()
        .map(|doc| {
            let sources = FORMATS
                .iter()
                .map(|ext| (format!("{}-{ext}", doc.name), corpus.output(doc, ext)))
                .collect();
            (doc.name.clone(), sources)
        })
        .collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let (second, fetched) = fetch_then_serve(dir.path(), &feeds);
    let documents = corpus
        .documents
        .iter()
        .map(|doc| {
            let mut entry = manifest_entry(&corpus, doc);
            for ext in FORMATS {
                let name = format!("{}-{ext}", doc.name);
                entry[format!("via_{ext}")] = serde_json::json!({
                    "source": name,
                    "fetched": fetched.get(&name).cloned().unwrap_or_default(),
                    "json": second.url(&format!("/feeds/{}.json", doc.name)),
                });
            }
            entry
        })
        .collect();
    let manifest = write_manifest(dir.path(), "roundtrip.json", documents);
    run_script("roundtrip.py", &manifest);
}

#[test]
fn every_corpus_output_is_valid() {
    check_every_document("validate.py", "validate.json");
}

#[test]
fn corpus_names_follow_the_rules() {
    assert_eq!(
        source_name("rss-version--missing.xml"),
        "rss-version--missing_xml"
    );
    let long = format!("enc-{}--x.charset-gbk.xml", "a".repeat(80));
    let name = source_name(&long);
    assert!(name.len() <= 59 && name.starts_with("enc-aaa"), "{name}");
    assert_ne!(name, source_name(&long.replace("--x", "--y")));
    assert_eq!(
        content_type("enc-gbk--header-only.charset-gbk.xml").as_deref(),
        Some("application/xml; charset=gbk")
    );
    assert_eq!(
        content_type("json-version--bare.json").as_deref(),
        Some("application/feed+json")
    );
    assert_eq!(content_type("README-atom.md"), None);
}
