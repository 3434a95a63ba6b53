//! Three replicas on one PostgreSQL database (issue 17): 100 loopback sources on a 5-second
//! schedule, each fetched once per due time by one of the three; byte-identical documents on
//! every replica; the seed story from three outlets once; a replica killed with `kill -9`
//! whose leased fetches the others take over when the lease runs out (not before, and soon
//! after), with nothing stored twice; and a database stopped for 10 seconds while the feeds
//! are still served. A second, smaller test holds the item counts right when a fetch that
//! outlives its lease is made twice.
//!
//! The test starts a PostgreSQL cluster of its own (so that it can stop and start it), from
//! Debian's binaries in `/usr/lib/postgresql/*/bin/`, as the `postgres` user when run as
//! root. Without them it says "skipped" loudly and passes, unless
//! `FEEDMILL_REQUIRE_POSTGRES=1` (CI) makes that a failure.
//!
//! When a fetch happens, with `schedule = "*/5 * * * * *"` (config/schedule.rs,
//! model/source.rs, scheduler.rs): a source is due at each cron time `T` (:00, :05, ...) plus
//! its stable jitter, a tenth of the period at most (`[0, 500 ms)`); a replica waits a random
//! moment (`[0, 250 ms)`) before claiming it, and the next due time is planned from the end of
//! the fetch as the first cron time strictly after it, plus the jitter. So a fetch for `T`
//! reaches the server in `[T, T + 750 ms + latency)`, and its successor is planned for
//! `T + 5 s`: as long as a fetch takes less than about 4 seconds, every source has exactly one
//! request in every 5-second window `[T, T + 5 s)`. That is what is counted.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::Response;

use crate::cluster::Postgres;
use crate::support::{blocking_get, blocking_get_with, free_port, poll, Daemon};

/// Sources in all.
const SOURCES: usize = 100;
/// Items every source carries (the seed story's three carriers one more).
const ITEMS: usize = 2;
/// The sources that carry the seed story.
const SEED_CARRIERS: [usize; 3] = [0, 1, 2];
/// Sources whose server answers a second late: while they are fetched, their replica
/// holds a lease long enough to be caught holding it.
const SLOW: std::ops::Range<usize> = 90..100;
/// How late the slow sources answer.
const SLOW_BY: Duration = Duration::from_secs(1);
/// The schedule's period.
const PERIOD_MS: u64 = 5_000;
/// `[store] lease`.
const LEASE: Duration = Duration::from_secs(3);
/// How long the database is stopped.
const OUTAGE: Duration = Duration::from_secs(10);
/// The documents every replica serves.
const DOCUMENTS: [&str; 6] = [
    "/feeds/all.atom",
    "/feeds/all.rss",
    "/feeds/all.json",
    "/feeds/none.atom",
    "/feeds/none.rss",
    "/feeds/none.json",
];
/// The seed story's link and text, the same at its three carriers.
const SEED_LINK: &str = "https://harbour.example/news/2026/12/01/bridge-opens.html";
const SEED_TEXT: &str = "The new harbour bridge opened to traffic on Tuesday morning after four years of construction, linking the old town with the container terminal on the far shore. The first buses crossed at six, and the ferry service that carried commuters across the water for ninety years will run a reduced timetable until the end of the month before it stops.";

// ---- The outlets: one local server for the 100 sources, which logs when each was asked ----

/// One request the outlets' server answered: for which path, when it arrived, and how.
#[derive(Clone, Debug)]
struct Hit {
    path: String,
    at: SystemTime,
    status: u16,
}

struct Doc {
    body: String,
    etag: String,
    last_modified: String,
}

#[derive(Default)]
struct OutletsInner {
    docs: HashMap<String, Doc>,
    version: u64,
    log: Vec<Hit>,
    /// Paths answered late, and how late.
    late: HashMap<String, Duration>,
}

/// The server every source is on: a document per path with ETag and Last-Modified, 304 to a
/// matching `If-None-Match` (a 304 is a fetch too: it is logged), some paths answered late
/// on purpose.
#[derive(Clone)]
struct Outlets {
    inner: Arc<Mutex<OutletsInner>>,
    addr: SocketAddr,
}

impl Outlets {
    async fn start() -> Outlets {
        let inner = Arc::new(Mutex::new(OutletsInner::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the outlets' server");
        let addr = listener.local_addr().expect("local addr");
        let app = axum::Router::new()
            .route("/{file}", axum::routing::get(answer))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Outlets { inner, addr }
    }

    /// Serves `body` at `/{path}` with a fresh ETag and Last-Modified.
    fn put(&self, path: &str, body: String) {
        let mut inner = self.inner.lock().expect("lock");
        inner.version += 1;
        let version = inner.version;
        inner.docs.insert(
            path.to_string(),
            Doc {
                body,
                etag: format!("\"v{version}\""),
                last_modified: httpdate::fmt_http_date(
                    UNIX_EPOCH + Duration::from_secs(1_790_000_000 + version),
                ),
            },
        );
    }

    /// Answers `/{path}` `by` late (logged when it arrives).
    fn delay(&self, path: &str, by: Duration) {
        self.inner
            .lock()
            .expect("lock")
            .late
            .insert(path.to_string(), by);
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}/{path}", self.addr)
    }

    fn log(&self) -> Vec<Hit> {
        self.inner.lock().expect("lock").log.clone()
    }
}

async fn answer(
    State(inner): State<Arc<Mutex<OutletsInner>>>,
    UrlPath(path): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    // When the request arrived, before anything else: that is what the windows count.
    let at = SystemTime::now();
    let (response, late) = {
        let mut inner = inner.lock().expect("lock");
        let if_none_match = headers
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok());
        let response = match inner.docs.get(&path) {
            None => Response::builder()
                .status(StatusCode::NOT_FOUND)
                .body(Body::from("no such feed")),
            Some(doc) if if_none_match == Some(doc.etag.as_str()) => Response::builder()
                .status(StatusCode::NOT_MODIFIED)
                .header(header::ETAG, &doc.etag)
                .body(Body::empty()),
            Some(doc) => Response::builder()
                .header(header::CONTENT_TYPE, "application/rss+xml")
                .header(header::ETAG, &doc.etag)
                .header(header::LAST_MODIFIED, &doc.last_modified)
                .body(Body::from(doc.body.clone())),
        }
        .expect("response");
        inner.log.push(Hit {
            path: path.clone(),
            at,
            status: response.status().as_u16(),
        });
        (response, inner.late.get(&path).copied())
    };
    if let Some(late) = late {
        tokio::time::sleep(late).await;
    }
    response
}

fn source_name(s: usize) -> String {
    format!("s{s:03}")
}

fn source_path(s: usize) -> String {
    format!("{}.rss", source_name(s))
}

/// A word of letters only, different for every `n` (fingerprints see words, and numbers
/// may not count as words).
fn word(mut n: u64) -> String {
    let mut out = String::new();
    loop {
        out.push(char::from(b'a' + (n % 26) as u8));
        n /= 26;
        if n == 0 {
            return out;
        }
    }
}

/// A text of 40 words no other item shares, so that no two items are near duplicates.
fn unique_text(s: usize, n: usize) -> String {
    (0..40u64)
        .map(|k| {
            let seed = ((s as u64) * 1_000 + n as u64) * 64 + k;
            // A multiplicative hash spreads neighbouring seeds over unrelated words.
            word(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn rss_item(guid: &str, title: &str, link: &str, date: i64, text: &str) -> String {
    let date = chrono::DateTime::from_timestamp(date, 0)
        .expect("valid date")
        .to_rfc2822();
    format!("<item><guid isPermaLink=\"false\">{guid}</guid><title>{title}</title><link>{link}</link><pubDate>{date}</pubDate><description>{text}</description></item>")
}

/// Source `s`'s document: its `ITEMS + extra` own items, and the seed story if it carries
/// it (newer than everything else, so that it leads the combined feed).
fn source_document(s: usize, extra: usize) -> String {
    let mut items = String::new();
    if SEED_CARRIERS.contains(&s) {
        items.push_str(&rss_item(
            &format!("seed-at-{s}"),
            &format!("Harbour bridge opens (outlet {s})"),
            SEED_LINK,
            1_790_100_000 + s as i64 * 60,
            SEED_TEXT,
        ));
    }
    for n in (0..ITEMS + extra).rev() {
        items.push_str(&rss_item(
            &format!("{}-{n}", source_name(s)),
            &format!("Outlet {s} story {n}"),
            &format!("https://outlet{s}.example/story/{n}"),
            1_790_000_000 + (n * SOURCES + s) as i64 * 60,
            &unique_text(s, n),
        ));
    }
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><rss version=\"2.0\"><channel><title>Outlet {s}</title><link>https://outlet{s}.example/</link><description>d</description>{items}</channel></rss>"
    )
}

/// The items source `s` should hold.
fn expected_items(s: usize, extra: usize) -> u64 {
    (ITEMS + extra + usize::from(SEED_CARRIERS.contains(&s))) as u64
}

// ---- The replicas ----

/// What every replica of one test shares: the outlets, the database, how many sources
/// (`s000`, `s001`, ...) and `[fetch] timeout`.
struct Setup<'a> {
    outlets: &'a Outlets,
    database: &'a Postgres,
    sources: usize,
    timeout: &'a str,
}

/// One replica's config: the same sources, feeds and `base_url` on every replica (documents
/// name their self link: replicas behind one name serve the same bytes), its own port and
/// replica name.
fn replica_config(setup: &Setup<'_>, name: &str, port: u16) -> String {
    let mut config = format!(
        "[server]\nlisten = \"127.0.0.1:{port}\"\nbase_url = \"http://feeds.example/\"\n\n\
         [store]\nengine = \"postgres\"\nurl = \"{}\"\nlease = \"{}s\"\nreplica = \"{name}\"\n\n\
         [fetch]\nschedule = \"*/5 * * * * *\"\nper_host = 64\ntimeout = \"{}\"\n\n",
        setup.database.url(),
        LEASE.as_secs(),
        setup.timeout,
    );
    for s in 0..setup.sources {
        config.push_str(&format!(
            "[[source]]\nname = \"{}\"\nurl = \"{}\"\n",
            source_name(s),
            setup.outlets.url(&source_path(s))
        ));
    }
    config.push_str("\n[[feed]]\nname = \"all\"\n");
    config.push_str(
        "\n[[feed]]\nname = \"none\"\ndedup = \"none\"\nlimit = 500\nmax_per_source = 500\n",
    );
    config
}

struct Replica {
    name: String,
    daemon: Daemon,
}

fn start_replica(dir: &Path, setup: &Setup<'_>, name: &str) -> Replica {
    let dir = dir.join(name);
    std::fs::create_dir_all(&dir).expect("replica dir");
    let port = free_port();
    let config = dir.join("feedmill.toml");
    std::fs::write(&config, replica_config(setup, name, port)).expect("config");
    Replica {
        name: name.to_string(),
        daemon: Daemon::start_at(config, port),
    }
}

/// A document as a replica served it: status, body, and the validators a cache keys on.
#[derive(Debug, Clone, PartialEq)]
struct Served {
    status: u16,
    etag: Option<String>,
    last_modified: Option<String>,
    body: Vec<u8>,
}

fn fetch_doc(daemon: &Daemon, path: &str) -> Option<Served> {
    let (status, headers, body) = blocking_get_with(&daemon.url(path), &[])?;
    Some(Served {
        status,
        etag: headers.get("etag").cloned(),
        last_modified: headers.get("last-modified").cloned(),
        body,
    })
}

/// Every document of one replica.
fn documents(daemon: &Daemon) -> Option<Vec<Served>> {
    DOCUMENTS
        .iter()
        .map(|path| fetch_doc(daemon, path))
        .collect()
}

/// The documents, when every replica serves them byte for byte alike (validators too).
fn agreed_documents(replicas: &[&Replica]) -> Option<Vec<Served>> {
    compare_documents(replicas).ok()
}

/// The documents every replica serves alike, or how they differ.
fn compare_documents(replicas: &[&Replica]) -> Result<Vec<Served>, String> {
    let first = documents(&replicas[0].daemon).ok_or("r1 did not answer")?;
    for (path, doc) in DOCUMENTS.iter().zip(&first) {
        if doc.status != 200 || doc.etag.is_none() || doc.last_modified.is_none() {
            return Err(format!(
                "{} answered {path} with {} (ETag {:?}, Last-Modified {:?})",
                replicas[0].name, doc.status, doc.etag, doc.last_modified
            ));
        }
    }
    for other in &replicas[1..] {
        let theirs =
            documents(&other.daemon).ok_or_else(|| format!("{} did not answer", other.name))?;
        for ((path, a), b) in DOCUMENTS.iter().zip(&first).zip(&theirs) {
            if a == b {
                continue;
            }
            let bodies = if a.body == b.body {
                "the same body".to_string()
            } else {
                let at = a
                    .body
                    .iter()
                    .zip(&b.body)
                    .position(|(x, y)| x != y)
                    .unwrap_or(a.body.len().min(b.body.len()));
                let around = |body: &[u8]| {
                    let start = at.saturating_sub(80).min(body.len());
                    String::from_utf8_lossy(&body[start..(at + 80).min(body.len())]).into_owned()
                };
                format!(
                    "bodies differ at byte {at}:\n  {}\n  {}",
                    around(&a.body),
                    around(&b.body)
                )
            };
            return Err(format!(
                "{path}: {} answered {} (ETag {:?}, Last-Modified {:?}, {} bytes), {} answered {} (ETag {:?}, Last-Modified {:?}, {} bytes); {bodies}",
                replicas[0].name,
                a.status,
                a.etag,
                a.last_modified,
                a.body.len(),
                other.name,
                b.status,
                b.etag,
                b.last_modified,
                b.body.len(),
            ));
        }
    }
    Ok(first)
}

fn json_items(doc: &Served) -> Vec<serde_json::Value> {
    serde_json::from_slice::<serde_json::Value>(&doc.body).expect("a JSON feed")["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// What a replica's `/status.json` shows that differs from what the outlets serve (every
/// source fetched, with its item count); empty when it holds everything.
fn not_held(daemon: &Daemon, slow_extra: usize) -> Vec<String> {
    let Some(status) = daemon.try_status() else {
        return vec!["/status.json does not answer".to_string()];
    };
    let by_name: HashMap<&str, &serde_json::Value> = status
        .iter()
        .filter_map(|r| Some((r["name"].as_str()?, r)))
        .collect();
    (0..SOURCES)
        .filter_map(|s| {
            let extra = if SLOW.contains(&s) { slow_extra } else { 0 };
            let name = source_name(s);
            let report = by_name.get(name.as_str());
            let good = report.is_some_and(|r| {
                r["last_status"].is_u64() && r["items"].as_u64() == Some(expected_items(s, extra))
            });
            (!good).then(|| {
                format!(
                    "{name} (expected {} items): {}",
                    expected_items(s, extra),
                    report.map_or("missing".to_string(), |r| r.to_string())
                )
            })
        })
        .collect()
}

/// Waits until every replica holds what the outlets serve; fails saying what is missing.
fn wait_until_held(
    replicas: &[&Replica],
    database: &Postgres,
    within: Duration,
    slow_extra: usize,
    when: &str,
) {
    let mut missing = Vec::new();
    let held = poll(within, || {
        missing = replicas
            .iter()
            .flat_map(|r| {
                not_held(&r.daemon, slow_extra)
                    .into_iter()
                    .map(|m| format!("{}: {m}", r.name))
            })
            .collect();
        Some(missing.is_empty())
    });
    if !held {
        fail_with_logs(
            replicas,
            database,
            &format!(
                "{when}: timed out waiting for every source stored on every replica; not yet:\n{}",
                missing.join("\n")
            ),
        );
    }
}

/// The fetches a replica made (its `/metrics` `feedmill_fetches_total`, all outcomes).
fn fetches_made(daemon: &Daemon) -> Option<u64> {
    let (status, body) = blocking_get(&daemon.url("/metrics"))?;
    (status == 200).then_some(())?;
    Some(
        String::from_utf8_lossy(&body)
            .lines()
            .filter(|l| l.starts_with("feedmill_fetches_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64,
    )
}

// ---- Windows ----

fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// The 5-second window `at` falls in (window `w` is `[w * 5 s, (w + 1) * 5 s)`: the cron
/// times are at :00, :05, ...).
fn window_of(at: SystemTime) -> u64 {
    millis(at) / PERIOD_MS
}

fn window_now() -> u64 {
    window_of(SystemTime::now())
}

/// Waits (without a deadline: it is the wall clock, which always gets there) until window
/// `w` has ended and every request that arrived in it has been logged.
fn wait_for_end_of(w: u64) {
    let end = UNIX_EPOCH + Duration::from_millis((w + 1) * PERIOD_MS + 300);
    while SystemTime::now() < end {
        let left = end.duration_since(SystemTime::now()).unwrap_or_default();
        std::thread::sleep(left.min(Duration::from_millis(100)));
    }
}

/// Requests per source per window, for windows `from..to`, of the sources `sources`.
fn counts(log: &[Hit], from: u64, to: u64, sources: &[usize]) -> BTreeMap<(String, u64), usize> {
    let mut counts = BTreeMap::new();
    for s in sources {
        for w in from..to {
            counts.insert((source_path(*s), w), 0);
        }
    }
    for hit in log {
        if let Some(count) = counts.get_mut(&(hit.path.clone(), window_of(hit.at))) {
            *count += 1;
        }
    }
    counts
}

/// Fails unless each of `sources` had exactly one request in each window `from..to`.
fn assert_once_per_window(log: &[Hit], from: u64, to: u64, sources: &[usize], when: &str) {
    let wrong: Vec<String> = counts(log, from, to, sources)
        .into_iter()
        .filter(|(_, n)| *n != 1)
        .map(|((path, w), n)| format!("{path}: {n} requests in window {}", w - from))
        .collect();
    assert!(
        wrong.is_empty(),
        "{when}: every source fetched once per due time, but {} (source, window) pairs were not:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

fn fail_with_logs(replicas: &[&Replica], database: &Postgres, what: &str) -> ! {
    let mut text = format!("{what}\n");
    for replica in replicas {
        let log = replica.daemon.stderr();
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        text.push_str(&format!("--- {} log (last 40 lines) ---\n", replica.name));
        for line in tail.into_iter().rev() {
            text.push_str(line);
            text.push('\n');
        }
    }
    let server = database.log();
    let tail: Vec<&str> = server.lines().rev().take(20).collect();
    text.push_str("--- postgres log (last 20 lines) ---\n");
    for line in tail.into_iter().rev() {
        text.push_str(line);
        text.push('\n');
    }
    panic!("{text}");
}

fn wait_or_fail(
    replicas: &[&Replica],
    database: &Postgres,
    within: Duration,
    what: &str,
    check: impl FnMut() -> Option<bool>,
) {
    if !poll(within, check) {
        fail_with_logs(replicas, database, &format!("timed out waiting for {what}"));
    }
}

/// Waits until the replicas serve the same documents and none.json (dedup = "none") holds
/// `items` items: the documents follow the store by a notification and a render, so a
/// replica whose `/status.json` already counts an item may not show it yet. Fails saying how
/// they differ.
fn wait_for_agreement(
    replicas: &[&Replica],
    database: &Postgres,
    within: Duration,
    items: u64,
    when: &str,
) -> Vec<Served> {
    let mut last = Err("not compared".to_string());
    if poll(within, || {
        last = compare_documents(replicas).and_then(|docs| {
            let shown = json_items(&docs[5]).len() as u64;
            if shown == items {
                Ok(docs)
            } else {
                Err(format!("none.json shows {shown} items, not {items}"))
            }
        });
        Some(last.is_ok())
    }) {
        if let Ok(docs) = last {
            return docs;
        }
    }
    let why = last.err().unwrap_or_default();
    fail_with_logs(
        replicas,
        database,
        &format!("{when}: the replicas do not serve identical documents: {why}"),
    )
}

// ---- The tests ----

/// The scenario, one phase after another on one cluster and three replicas (see the
/// module's doc): warm-up, four windows of three replicas, a kill and two windows of two,
/// an outage and a window after it. About 70 s.
#[test]
fn three_replicas_share_the_fetches_serve_the_same_bytes_and_outlive_one_of_them_and_the_database()
{
    let started = Instant::now();
    let Some(database) = Postgres::start() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let outlets = runtime.block_on(Outlets::start());
    for s in 0..SOURCES {
        outlets.put(&source_path(s), source_document(s, 0));
    }
    let all: Vec<usize> = (0..SOURCES).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    for s in SLOW {
        outlets.delay(&source_path(s), SLOW_BY);
    }
    let setup = Setup {
        outlets: &outlets,
        database: &database,
        sources: SOURCES,
        // Well inside the lease: a fetch outliving it would be taken over.
        timeout: "2s",
    };
    let r1 = start_replica(dir.path(), &setup, "r1");
    let r2 = start_replica(dir.path(), &setup, "r2");
    let r3 = start_replica(dir.path(), &setup, "r3");
    let three = [&r1, &r2, &r3];

    // Warm-up: every source stored, and the three replicas' documents alike.
    wait_until_held(&three, &database, Duration::from_secs(40), 0, "warm-up");
    eprintln!(
        "replicas: every source stored at {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let total: u64 = (0..SOURCES).map(|s| expected_items(s, 0)).sum();
    let docs = wait_for_agreement(&three, &database, Duration::from_secs(20), total, "warm-up");

    // The seed story, carried by three outlets (the same link and text): one story, the
    // first seen kept, the other two named as `via` links (Atom) and in `also` (JSON).
    let all_json = json_items(&docs[2]);
    let seed: Vec<&serde_json::Value> = all_json
        .iter()
        .filter(|i| {
            i["title"]
                .as_str()
                .is_some_and(|t| t.starts_with("Harbour bridge opens"))
        })
        .collect();
    assert_eq!(seed.len(), 1, "the seed story once in all.json: {seed:#?}");
    let also = seed[0]["_feedmill"]["also"].as_array().map_or(0, Vec::len);
    assert_eq!(
        also, 2,
        "the seed story names its two other carriers: {:#}",
        seed[0]
    );
    let atom = String::from_utf8_lossy(&docs[0].body);
    assert_eq!(
        atom.matches("Harbour bridge opens").count(),
        1,
        "the seed story once in all.atom"
    );
    assert_eq!(
        atom.matches("rel=\"via\"").count(),
        2,
        "two via links (the seed story's other carriers) in all.atom"
    );
    // dedup = "none" shows every stored item: each once.
    let none_json = json_items(&docs[5]);
    assert_eq!(
        none_json.len() as u64,
        total,
        "none.json holds every item once"
    );

    // Once per due time, spread over the three: four whole windows after the warm-up.
    let before: Vec<u64> = three
        .iter()
        .map(|r| fetches_made(&r.daemon).expect("metrics"))
        .collect();
    let from = window_now() + 1;
    let to = from + 4;
    wait_for_end_of(to - 1);
    let after: Vec<u64> = three
        .iter()
        .map(|r| fetches_made(&r.daemon).expect("metrics"))
        .collect();
    assert_once_per_window(&outlets.log(), from, to, &all, "three replicas");
    let made: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    eprintln!("replicas: fetches per replica over ~4 windows: {made:?}");
    for (replica, count) in three.iter().zip(&made) {
        assert!(
            *count > 0,
            "replica {} made none of the fetches ({made:?} over r1, r2, r3)",
            replica.name
        );
    }
    // Where `/status.json` names the replica that made each source's last fetch
    // (`fetched_by`), each of the three made the last fetch of some source.
    let status = r1.daemon.status();
    let fetched_by: HashSet<&str> = status
        .iter()
        .filter_map(|r| r["fetched_by"].as_str())
        .collect();
    if !fetched_by.is_empty() {
        assert_eq!(
            fetched_by,
            HashSet::from(["r1", "r2", "r3"]),
            "the replicas /status.json names as fetched_by"
        );
    }
    assert_eq!(
        agreed_documents(&three).as_ref(),
        Some(&docs),
        "documents unchanged (and alike) while nothing changed at the outlets"
    );

    // The slow sources gain an item each, then r3 is killed while it holds leases.
    for s in SLOW {
        outlets.put(&source_path(s), source_document(s, 1));
    }
    // Stopped first (SIGSTOP), so that what it holds cannot change while the database is
    // asked; a replica caught between two fetches is let go on and caught again.
    let leases_of_r3 = "SELECT name, (extract(epoch FROM lease_until) * 1000)::bigint FROM feedmill_sources WHERE lease_owner = 'r3' AND lease_until > now() ORDER BY name";
    let leases = |database: &Postgres| -> Vec<(String, u64)> {
        database
            .query(leases_of_r3)
            .lines()
            .filter_map(|line| {
                let (name, until) = line.split_once('|')?;
                Some((name.to_string(), until.parse().ok()?))
            })
            .collect()
    };
    let mut attempts = 0;
    let (orphaned, killed_at) = loop {
        attempts += 1;
        assert!(attempts <= 10, "r3 was never caught holding a lease");
        wait_or_fail(
            &three,
            &database,
            Duration::from_secs(20),
            "r3 to hold a lease",
            || Some(!leases(&database).is_empty()),
        );
        r3.daemon.signal(libc::SIGSTOP);
        let stopped_at = SystemTime::now();
        // A statement it sent just before may still be landing.
        std::thread::sleep(Duration::from_millis(200));
        let held = leases(&database);
        if !held.is_empty() {
            break (held, stopped_at);
        }
        r3.daemon.signal(libc::SIGCONT);
    };
    let _ = r3.daemon.kill9();
    eprintln!(
        "replicas: r3 killed at {:.1} s holding the leases of {orphaned:?}",
        started.elapsed().as_secs_f64()
    );
    let two = [&r1, &r2];
    // Each is fetched again by r1 or r2 once its lease has run out, not before, and soon
    // after (a claim that found the lease waits until it runs out, plus the spread).
    for (name, until_ms) in &orphaned {
        let path = format!("{name}.rss");
        let mut taken_over = None;
        wait_or_fail(
            &two,
            &database,
            LEASE + Duration::from_secs(10),
            &format!("{name}, leased by the killed r3, to be fetched by another replica"),
            || {
                taken_over = outlets
                    .log()
                    .into_iter()
                    .find(|h| h.path == path && h.at > killed_at)
                    .map(|h| millis(h.at));
                Some(taken_over.is_some())
            },
        );
        let at = taken_over.expect("taken over");
        eprintln!(
            "replicas: {name} taken over {} ms after its lease ran out",
            at as i64 - *until_ms as i64
        );
        assert!(
            at + 50 >= *until_ms,
            "{name} fetched again {} ms before the killed replica's lease ran out",
            until_ms - at
        );
        assert!(
            at <= until_ms + 2_500,
            "{name} fetched again {} ms after the killed replica's lease ran out",
            at - until_ms
        );
        // The state the takeover wrote names who fetched it (once its slow answer is in).
        let fetched_by = format!(
            "SELECT convert_from(state, 'UTF8')::json->>'fetched_by' FROM feedmill_sources WHERE name = '{name}'"
        );
        wait_or_fail(
            &two,
            &database,
            Duration::from_secs(10),
            &format!("{name}'s state to be written by r1 or r2"),
            || Some(["r1", "r2"].contains(&database.query(&fetched_by).trim())),
        );
    }
    let killed_window = window_of(killed_at);
    // Nothing stored twice: the slow sources' new items once each, on both replicas alike.
    let total = total + SLOW.len() as u64;
    wait_until_held(
        &two,
        &database,
        Duration::from_secs(20),
        1,
        "after the kill",
    );
    // Within the 5 s a change has to reach every replica's documents (and a second for
    // the polling's own requests: twelve documents a round).
    let docs = wait_for_agreement(
        &two,
        &database,
        Duration::from_secs(6),
        total,
        "after the kill",
    );
    assert_eq!(
        json_items(&docs[5]).len() as u64,
        total,
        "none.json holds every item once after the kill"
    );
    let ids: HashSet<String> = json_items(&docs[5])
        .iter()
        .filter_map(|i| i["id"].as_str().map(String::from))
        .collect();
    assert_eq!(
        ids.len() as u64,
        total,
        "every item once in none.json after the kill"
    );
    // The kill's window and the next are the takeover's (a fetch taken over late in a
    // window plans the one after next); from then on, once per window by the two left.
    let from = (killed_window + 2).max(window_now() + 1);
    let to = from + 2;
    let before: Vec<u64> = two
        .iter()
        .map(|r| fetches_made(&r.daemon).expect("metrics"))
        .collect();
    wait_for_end_of(to - 1);
    assert_once_per_window(&outlets.log(), from, to, &all, "after r3 was killed");
    for (replica, before) in two.iter().zip(&before) {
        let made = fetches_made(&replica.daemon).expect("metrics") - before;
        assert!(
            made > 0,
            "replica {} made none of the fetches after the kill",
            replica.name
        );
    }

    // The database stops for 10 s: the feeds are still served, byte for byte, /healthz says
    // why it is unhealthy, nothing is fetched; then everything resumes by itself.
    let docs = agreed_documents(&two).expect("r1 and r2 agree before the outage");
    database.stop_server();
    eprintln!(
        "replicas: database stopped at {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let stopped = Instant::now();
    let mut unhealthy = HashMap::new();
    let mut paused_from = None;
    while stopped.elapsed() < OUTAGE {
        for replica in two {
            for (path, before) in DOCUMENTS.iter().zip(&docs) {
                let served = fetch_doc(&replica.daemon, path);
                assert_eq!(
                    served.as_ref(),
                    Some(before),
                    "{} serves {path} as before while the database is down",
                    replica.name
                );
            }
            if let Some((status, body)) = blocking_get(&replica.daemon.url("/healthz")) {
                if status == 503 {
                    unhealthy.insert(
                        replica.name.clone(),
                        String::from_utf8_lossy(&body).into_owned(),
                    );
                }
            }
        }
        if paused_from.is_none() && unhealthy.len() == two.len() {
            // Both know: whatever was in flight when it stopped has been sent by now.
            paused_from = Some(SystemTime::now() + Duration::from_secs(1));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    for replica in two {
        let reason = unhealthy.get(&replica.name).unwrap_or_else(|| {
            fail_with_logs(
                &two,
                &database,
                &format!(
                    "{}'s /healthz never answered 503 while the database was down",
                    replica.name
                ),
            )
        });
        assert!(
            reason.contains("store") || reason.contains("database"),
            "{}'s /healthz 503 gives the store as the reason: {reason:?}",
            replica.name
        );
        eprintln!(
            "replicas: {} /healthz while the database was down: {:?}",
            replica.name,
            reason.trim()
        );
    }
    let paused_from = paused_from.expect("both unhealthy");
    let restarted_at = SystemTime::now();
    let fetched_meanwhile: Vec<Hit> = outlets
        .log()
        .into_iter()
        .filter(|h| h.at > paused_from && h.at < restarted_at)
        .collect();
    assert!(
        fetched_meanwhile.is_empty(),
        "fetches while the database was down: {fetched_meanwhile:?}"
    );
    database.start_server();
    eprintln!(
        "replicas: database started again at {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let back = SystemTime::now();
    wait_or_fail(
        &two,
        &database,
        Duration::from_secs(30),
        "/healthz 200 on r1 and r2 once the database is back",
        || {
            Some(
                two.iter().all(|r| {
                    blocking_get(&r.daemon.url("/healthz")).is_some_and(|(s, _)| s == 200)
                }),
            )
        },
    );
    wait_or_fail(
        &two,
        &database,
        Duration::from_secs(20),
        "every source fetched again once the database is back",
        || {
            let fetched: HashSet<String> = outlets
                .log()
                .into_iter()
                .filter(|h| h.at > back && (h.status == 200 || h.status == 304))
                .map(|h| h.path)
                .collect();
            Some((0..SOURCES).all(|s| fetched.contains(&source_path(s))))
        },
    );
    // The window of the catch-up is the outage's; the next is on schedule again.
    let from = window_now() + 1;
    wait_for_end_of(from);
    assert_once_per_window(
        &outlets.log(),
        from,
        from + 1,
        &all,
        "after the database came back",
    );
    assert_eq!(
        agreed_documents(&two).as_ref(),
        Some(&docs),
        "the same documents after the outage"
    );
}

/// A fetch that outlives its lease is made once: the replica making it renews its lease
/// (every third of it) while it waits for the answer, so the other replica never takes the
/// source over meanwhile. When the answer is stored, both replicas count the source's items
/// as the rows the store holds.
#[test]
fn a_fetch_outliving_its_lease_is_not_made_twice_and_leaves_the_item_counts_right() {
    let Some(database) = Postgres::start() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let outlets = runtime.block_on(Outlets::start());
    let path = source_path(0);
    outlets.put(&path, source_document(0, 0));
    // Twice the lease: without renewal the other replica would fetch again while this
    // request is in flight.
    let late = LEASE * 2;
    outlets.delay(&path, late);
    let setup = Setup {
        outlets: &outlets,
        database: &database,
        sources: 1,
        timeout: "10s",
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let r1 = start_replica(dir.path(), &setup, "r1");
    let r2 = start_replica(dir.path(), &setup, "r2");
    let two = [&r1, &r2];
    let mut first = None;
    wait_or_fail(
        &two,
        &database,
        Duration::from_secs(30),
        "a first request for the slow source",
        || {
            first = outlets.log().first().map(|hit| hit.at);
            Some(first.is_some())
        },
    );
    let first = first.expect("found above");
    let answered = first + late;
    wait_or_fail(
        &two,
        &database,
        Duration::from_secs(30),
        "the slow answer to be stored",
        || {
            let report = r1.daemon.try_status()?.into_iter().next()?;
            let last_fetch = report["last_fetch"].as_str()?;
            let last_fetch = chrono::DateTime::parse_from_rfc3339(last_fetch).ok()?;
            Some(millis(answered) <= last_fetch.timestamp_millis() as u64)
        },
    );
    let in_flight: Vec<u64> = outlets
        .log()
        .iter()
        .filter(|hit| first < hit.at && hit.at < answered)
        .map(|hit| millis(hit.at) - millis(first))
        .collect();
    assert!(
        in_flight.is_empty(),
        "the source was requested again while its first fetch was in flight (ms after the \
         first: {in_flight:?}): the lease was not renewed"
    );
    for replica in two {
        let report = replica.daemon.source(&source_name(0));
        assert_eq!(
            report["items"],
            expected_items(0, 0),
            "{}'s /status.json counts the items the store holds: {report}",
            replica.name
        );
    }
    let none = fetch_doc(&r1.daemon, "/feeds/none.json").expect("none.json");
    assert_eq!(json_items(&none).len() as u64, expected_items(0, 0));
}
