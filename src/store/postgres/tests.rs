//! The PostgreSQL engine's tests, against a real server: `FEEDMILL_TEST_DATABASE_URL`
//! (`bash .ci/run` starts one). Each test makes a database of its own. Without the variable
//! they say they were skipped, unless `FEEDMILL_REQUIRE_POSTGRES=1`, when they fail.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};

use super::{PgSettings, PgStore};
use crate::model::{Entry, SourceState, StoredEntry, StoryKind};
use crate::store::{Claim, ClaimRequest, Exported, Store, StoreError, Visit};

/// A fresh database's URL, or `None` (with a line saying so) when there is no server.
pub(crate) fn fresh_database() -> Option<String> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let Ok(server) = std::env::var("FEEDMILL_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("FEEDMILL_REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "FEEDMILL_REQUIRE_POSTGRES=1 but FEEDMILL_TEST_DATABASE_URL is not set"
        );
        eprintln!("skipped: set FEEDMILL_TEST_DATABASE_URL to run the PostgreSQL tests (bash .ci/run does)");
        return None;
    };
    let name = format!(
        "feedmill_u_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&server)
            .await
            .expect("the test server answers");
        sqlx::Executor::execute(
            &mut conn,
            format!("DROP DATABASE IF EXISTS {name}").as_str(),
        )
        .await
        .expect("drop");
        sqlx::Executor::execute(&mut conn, format!("CREATE DATABASE {name}").as_str())
            .await
            .expect("create");
    });
    let mut url = url::Url::parse(&server).expect("a URL");
    url.set_path(&name);
    Some(url.to_string())
}

fn open(url: &str, replica: &str) -> PgStore {
    PgStore::open(&PgSettings {
        url: url.to_string(),
        replica: replica.to_string(),
        match_window: 1000,
        pool: 4,
        lease: Duration::from_secs(60),
    })
    .expect("opens")
}

fn at(seconds: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_800_000_000 + seconds, 0)
        .single()
        .expect("a time")
}

fn request(now: DateTime<Utc>, host: Option<&str>, per_host: usize, lease_ms: u64) -> ClaimRequest {
    ClaimRequest {
        now,
        host: host.map(str::to_string),
        per_host,
        lease: Duration::from_millis(lease_ms),
        fingerprint: String::new(),
    }
}

fn due(next: DateTime<Utc>) -> SourceState {
    SourceState {
        next_fetch: Some(next),
        last_fetch: Some(next - chrono::Duration::seconds(5)),
        ..SourceState::default()
    }
}

fn entry(identity: &str, title: &str, link: Option<&str>, published: i64) -> Entry {
    Entry {
        identity: identity.to_string(),
        title: title.to_string(),
        link: link.map(str::to_string),
        published: Some(at(published)),
        ..Entry::default()
    }
}

/// Every entry of `sources`, newest first, as (source, title, story by link, story by text).
fn river(store: &dyn Store, sources: &[&str]) -> Vec<(String, String, String, String)> {
    let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    let mut out = Vec::new();
    store
        .visit_newest(&sources, &|_| None, &mut |stored: StoredEntry| {
            let link = store.story_of(&stored, StoryKind::Link);
            let text = store.story_of(&stored, StoryKind::Text);
            out.push((
                stored.source.clone(),
                stored.entry.title.clone(),
                format!("{}/{}", link.source, link.key.urn()),
                format!("{}/{}", text.source, text.key.urn()),
            ));
            Visit::Next
        })
        .expect("reads");
    out
}

#[test]
fn migrates_once_and_refuses_a_newer_schema() {
    let Some(url) = fresh_database() else { return };
    let store = open(&url, "a");
    assert_eq!(
        store.migrate().expect("again"),
        super::schema::SCHEMA_VERSION
    );
    store
        .run(|pool| async move {
            sqlx::query("UPDATE feedmill_meta SET schema_version = 99")
                .execute(&pool)
                .await
        })
        .expect("bumps");
    drop(store);
    let refused = PgStore::open(&PgSettings {
        url: url.clone(),
        replica: "b".into(),
        match_window: 10,
        pool: 2,
        lease: Duration::from_secs(60),
    });
    let Err(err) = refused else {
        panic!("a newer schema was opened")
    };
    assert!(
        matches!(err, StoreError::NewerDatabase { found: 99, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("upgrade feedmill"), "{err}");
}

#[test]
fn each_due_fetch_goes_to_one_replica() {
    let Some(url) = fresh_database() else { return };
    let (a, b) = (open(&url, "a"), open(&url, "b"));
    let lease = 60_000;
    assert_eq!(
        a.claim("s", &request(at(0), None, 2, lease))
            .expect("claims"),
        Claim::Won
    );
    // b finds a's lease: it waits, at most the lease.
    match b
        .claim("s", &request(at(0), None, 2, lease))
        .expect("claims")
    {
        Claim::Busy(wait) => assert!(wait <= Duration::from_millis(lease), "{wait:?}"),
        other => panic!("b got {other:?} while a fetches"),
    }
    // a's fetch is saved with the next due time: b, due at the same time, finds it fetched.
    Store::save_state(&a, "s", &due(at(5))).expect("saves");
    let Ok(Claim::Fetched(Some(state))) = b.claim("s", &request(at(0), None, 2, lease)) else {
        panic!("b did not find the fetch a made")
    };
    assert_eq!(state.next_fetch, Some(at(5)));
    assert_eq!(state.fetched_by.as_deref(), Some("a"));
    // A replica whose config of the source changed (a new URL) fetches it at once.
    let changed = ClaimRequest {
        fingerprint: "another config".into(),
        ..request(at(1), None, 2, lease)
    };
    assert_eq!(b.claim("s", &changed).expect("claims"), Claim::Won);
    Store::release(&b, "s").expect("releases");
    // The next due time is b's as much as a's.
    assert_eq!(
        b.claim("s", &request(at(5), None, 2, lease))
            .expect("claims"),
        Claim::Won
    );
}

#[test]
fn a_dead_replicas_lease_runs_out_and_another_takes_over() {
    let Some(url) = fresh_database() else { return };
    let (a, b) = (open(&url, "a"), open(&url, "b"));
    assert_eq!(
        a.claim("s", &request(at(0), None, 2, 1_000))
            .expect("claims"),
        Claim::Won
    );
    drop(a); // dies without saving (its lease stays in the database)
    let started = std::time::Instant::now();
    loop {
        match b
            .claim("s", &request(at(0), None, 2, 1_000))
            .expect("claims")
        {
            Claim::TakenOver => break,
            Claim::Busy(wait) => std::thread::sleep(wait),
            other => panic!("unexpected {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "never taken over"
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_live_replica_keeps_its_lease_past_its_length() {
    let Some(url) = fresh_database() else { return };
    let settings = |replica: &str| PgSettings {
        url: url.clone(),
        replica: replica.into(),
        match_window: 10,
        pool: 2,
        lease: Duration::from_secs(3),
    };
    let a = PgStore::open(&settings("a")).expect("opens");
    let b = PgStore::open(&settings("b")).expect("opens");
    assert_eq!(
        a.claim("s", &request(at(0), None, 2, 3_000))
            .expect("claims"),
        Claim::Won
    );
    // a fetches (and commits) for longer than a lease: it renews its claim meanwhile.
    let until = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < until {
        let claim = b
            .claim("s", &request(at(0), None, 2, 3_000))
            .expect("claims");
        assert!(
            matches!(claim, Claim::Busy(_)),
            "b got {claim:?} while a was alive"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    Store::save_state(&a, "s", &due(at(0))).expect("saves");
    assert_eq!(
        b.claim("s", &request(at(0), None, 2, 3_000))
            .expect("claims"),
        Claim::Won
    );
}

#[test]
fn per_host_holds_across_replicas() {
    let Some(url) = fresh_database() else { return };
    let (a, b) = (open(&url, "a"), open(&url, "b"));
    let host = Some("news.example");
    assert_eq!(
        a.claim("one", &request(at(0), host, 1, 60_000))
            .expect("claims"),
        Claim::Won
    );
    assert!(matches!(
        b.claim("two", &request(at(0), host, 1, 60_000)),
        Ok(Claim::Busy(_))
    ));
    // Another host is not held up.
    assert_eq!(
        b.claim("three", &request(at(0), Some("other.example"), 1, 60_000))
            .expect("claims"),
        Claim::Won
    );
    Store::save_state(&a, "one", &due(at(5))).expect("saves");
    assert_eq!(
        b.claim("two", &request(at(0), host, 1, 60_000))
            .expect("claims"),
        Claim::Won
    );
    assert_eq!(b.figures().leases_held, 2);
}

#[test]
fn one_story_from_two_outlets_stored_at_once_by_two_replicas_is_one_story() {
    let Some(url) = fresh_database() else { return };
    // Opened once: after the first round, each knows the other's entries only by catching
    // up on its commits.
    let (a, b) = (open(&url, "a"), open(&url, "b"));
    for round in 0..5 {
        let link = format!("https://wire.example/story-{round}");
        let barrier = std::sync::Barrier::new(2);
        std::thread::scope(|scope| {
            for (store, source) in [(&a, format!("x{round}")), (&b, format!("y{round}"))] {
                let (link, barrier) = (link.clone(), &barrier);
                scope.spawn(move || {
                    let mut state = SourceState::default();
                    barrier.wait();
                    store
                        .commit_fetch(
                            &source,
                            &mut state,
                            &[entry("1", "Story", Some(&link), 0)],
                            at(10),
                        )
                        .expect("commits");
                });
            }
        });
        let fresh = open(&url, "c");
        let sources = [format!("x{round}"), format!("y{round}")];
        let sources: Vec<&str> = sources.iter().map(String::as_str).collect();
        for store in [&a as &dyn Store, &b, &fresh] {
            let river = river(store, &sources);
            assert_eq!(river.len(), 2);
            assert_eq!(
                river[0].2, river[1].2,
                "round {round}: two stories: {river:?}"
            );
        }
    }
}

#[test]
fn the_engines_store_and_order_alike() {
    let Some(url) = fresh_database() else { return };
    let pg = open(&url, "a");
    let dir = tempfile::tempdir().expect("tempdir");
    let sled = crate::store::sled::SledStore::open(&dir.path().join("db")).expect("opens");
    let responses: Vec<(&str, Vec<Entry>)> = vec![
        (
            "wire",
            vec![
                entry(
                    "w1",
                    "Floods in the north",
                    Some("https://wire.example/floods"),
                    100,
                ),
                entry(
                    "w2",
                    "Markets rise",
                    Some("https://wire.example/markets"),
                    50,
                ),
            ],
        ),
        (
            "portal",
            vec![
                entry(
                    "p1",
                    "Floods in the north",
                    Some("https://wire.example/floods?utm_source=x"),
                    100,
                ),
                entry("p2", "Local fair", None, 100),
            ],
        ),
        (
            "daily",
            vec![
                entry(
                    "d1",
                    "Markets rise",
                    Some("https://daily.example/markets"),
                    50,
                ),
                entry("d2", "Undated", None, 0),
            ],
        ),
        // Updated, and a new entry, of a source seen before.
        (
            "wire",
            vec![
                entry(
                    "w1",
                    "Floods in the north (update)",
                    Some("https://wire.example/floods"),
                    100,
                ),
                entry("w3", "Snow", None, 120),
            ],
        ),
    ];
    for (i, (source, entries)) in responses.iter().enumerate() {
        let now = at(1_000 + i as i64);
        for store in [&pg as &dyn Store, &sled] {
            let mut state = store
                .source_state(source)
                .expect("reads")
                .unwrap_or_default();
            store
                .commit_fetch(source, &mut state, entries, now)
                .expect("commits");
        }
    }
    let sources = ["wire", "portal", "daily"];
    assert_eq!(river(&pg, &sources), river(&sled, &sources));
    for source in sources {
        let items = |s: &dyn Store| s.source_state(source).expect("reads").map(|s| s.items);
        assert_eq!(items(&pg), items(&sled), "{source}");
    }
    // Retention alike: the newest one per source.
    let removed_pg = pg.prune(None, Some(1)).expect("prunes");
    let removed_sled = sled.prune(None, Some(1)).expect("prunes");
    assert_eq!(removed_pg, removed_sled);
    assert_eq!(river(&pg, &sources), river(&sled, &sources));
}

#[test]
fn an_unreachable_database_fails_at_once_with_its_url() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("binds")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("postgres://feedmill@127.0.0.1:{port}/feedmill");
    let started = std::time::Instant::now();
    let Err(err) = PgStore::open(&PgSettings {
        url: url.clone(),
        replica: "a".into(),
        match_window: 10,
        pool: 2,
        lease: Duration::from_secs(60),
    }) else {
        panic!("opened a database that is not there")
    };
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains(&url), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn export_and_import_keep_everything() {
    let Some(url) = fresh_database() else { return };
    let from = open(&url, "a");
    let mut state = SourceState {
        title: Some("Wire".into()),
        ..SourceState::default()
    };
    from.commit_fetch(
        "wire",
        &mut state,
        &[entry("w1", "One", Some("https://x.example/1"), 0)],
        at(1),
    )
    .expect("commits");
    let mut other = SourceState::default();
    from.commit_fetch(
        "portal",
        &mut other,
        &[entry("p1", "One", Some("https://x.example/1"), 0)],
        at(2),
    )
    .expect("commits");
    let Some(url2) = fresh_database() else { return };
    let to = open(&url2, "b");
    from.export(&mut |item| to.import(item)).expect("copies");
    let sources = ["wire", "portal"];
    assert_eq!(river(&from, &sources), river(&to, &sources));
    let mut exported = Vec::new();
    to.export(&mut |item| {
        if let Exported::Source {
            name,
            state,
            entries,
        } = item
        {
            exported.push((name, state.title, entries.len()));
        }
        Ok(())
    })
    .expect("exports");
    assert_eq!(
        exported,
        [
            ("portal".to_string(), None, 1),
            ("wire".to_string(), Some("Wire".to_string()), 1)
        ]
    );
}

#[test]
fn commits_made_at_once_are_written_together_and_each_gets_its_own_outcome() {
    let Some(url) = fresh_database() else { return };
    let store = open(&url, "a");
    // 40 sources committing at once, each three entries of its own and one story that
    // every source carries (the same link): the commits queue on the matching lock, and
    // the one that gets it writes those waiting in its transaction.
    const SOURCES: usize = 40;
    let barrier = std::sync::Barrier::new(SOURCES);
    let states: Vec<SourceState> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..SOURCES)
            .map(|i| {
                let (store, barrier) = (&store, &barrier);
                scope.spawn(move || {
                    let source = format!("s{i:02}");
                    let mut state = SourceState {
                        title: Some(format!("title {i}")),
                        ..SourceState::default()
                    };
                    let mut entries: Vec<Entry> = (0..3)
                        .map(|n| {
                            let link = format!("https://{source}.example/{n}");
                            entry(
                                &format!("own-{n}"),
                                &format!("{source} {n}"),
                                Some(&link),
                                n,
                            )
                        })
                        .collect();
                    entries.push(entry(
                        "wire",
                        "Wire story",
                        Some("https://wire.example/big-story"),
                        5,
                    ));
                    barrier.wait();
                    let summary = store
                        .commit_fetch(&source, &mut state, &entries, at(10))
                        .expect("commits");
                    assert_eq!(summary.new, 4, "{source}: {summary:?}");
                    state
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    // Each commit answered with its own state: its title, its items, its replica.
    for (i, state) in states.iter().enumerate() {
        assert_eq!(state.title.as_deref(), Some(format!("title {i}").as_str()));
        assert_eq!(state.items, 4, "s{i:02}");
        assert_eq!(state.fetched_by.as_deref(), Some("a"));
    }
    // What a fresh replica reads: every entry once, the states saved, and the wire story
    // one story across the forty.
    let fresh = open(&url, "b");
    let names: Vec<String> = (0..SOURCES).map(|i| format!("s{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let river = river(&fresh, &refs);
    assert_eq!(river.len(), SOURCES * 4);
    let wire: HashSet<&String> = river
        .iter()
        .filter(|(_, title, _, _)| title == "Wire story")
        .map(|(_, _, story, _)| story)
        .collect();
    assert_eq!(wire.len(), 1, "the wire story is {} stories", wire.len());
    for (i, name) in names.iter().enumerate() {
        let state = fresh.source_state(name).expect("reads").expect("saved");
        assert_eq!(state.title.as_deref(), Some(format!("title {i}").as_str()));
        assert_eq!(state.items, 4);
    }
}
