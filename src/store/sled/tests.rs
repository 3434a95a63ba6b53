//! The sled engine's tests.

use std::collections::HashSet;

use super::codec::*;
use super::*;
use crate::model::sort_time;
use crate::model::Validators;
use crate::store::matcher::Change;
use crate::store::stories::Join;

fn entry(identity: &str, title: &str, published: Option<DateTime<Utc>>) -> Entry {
    Entry {
        identity: identity.to_string(),
        title: title.to_string(),
        link: None,
        published,
        updated: None,
        authors: vec![],
        summary: None,
        content: None,
        categories: vec![],
        ..Entry::default()
    }
}

fn open() -> (tempfile::TempDir, SledStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(&dir.path().join("db")).expect("opens");
    (dir, store)
}

/// The titles of the newest `limit` entries of `sources`, as the merge reads them.
fn titles(store: &SledStore, sources: &[&str], limit: usize) -> Vec<String> {
    let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
    let mut out = Vec::new();
    store
        .visit_newest(
            &sources,
            |_| None,
            |stored| {
                out.push(stored.entry.title);
                if out.len() >= limit {
                    Visit::Stop
                } else {
                    Visit::Next
                }
            },
        )
        .expect("reads");
    out
}

#[test]
fn refetch_updates_in_place_and_never_duplicates() {
    let (_dir, store) = open();
    let now = from_millis(1_800_000_000_000);
    let mut state = SourceState::default();
    let first = vec![
        entry("a", "A", Some(from_millis(1_000))),
        entry("b", "B", None),
    ];
    let summary = store
        .commit_fetch("s", &mut state, &first, now)
        .expect("commit");
    assert_eq!((summary.new, summary.updated), (2, 0));
    let same = store
        .commit_fetch("s", &mut state, &first, now)
        .expect("commit");
    assert!(!same.changed());
    let edited = vec![entry("a", "A edited", Some(from_millis(2_000)))];
    let summary = store
        .commit_fetch("s", &mut state, &edited, now)
        .expect("commit");
    assert_eq!((summary.new, summary.updated), (0, 1));
    assert_eq!(titles(&store, &["s"], 10), ["B", "A edited"]);
    assert_eq!(state.items, 2);
}

#[test]
fn merge_is_newest_first_across_sources_and_stops_at_limit() {
    let (_dir, store) = open();
    let now = from_millis(1_800_000_000_000);
    let mut state = SourceState::default();
    let a = vec![
        entry("1", "a1", Some(from_millis(1_000))),
        entry("3", "a3", Some(from_millis(3_000))),
    ];
    let b = vec![
        entry("2", "b2", Some(from_millis(2_000))),
        entry("4", "b4", Some(from_millis(4_000))),
    ];
    store
        .commit_fetch("a", &mut state, &a, now)
        .expect("commit");
    store
        .commit_fetch("b", &mut state, &b, now)
        .expect("commit");
    assert_eq!(titles(&store, &["a", "b"], 10), ["b4", "a3", "b2", "a1"]);
    assert_eq!(titles(&store, &["b", "a"], 3), ["b4", "a3", "b2"]);
    assert_eq!(titles(&store, &["a"], 10), ["a3", "a1"]);
}

#[test]
fn future_dates_sort_as_first_seen() {
    let now = from_millis(10_000);
    let future = entry("f", "F", Some(from_millis(99_000)));
    assert_eq!(
        sort_time(&future, from_millis(9_000), now),
        from_millis(9_000)
    );
}

#[test]
fn a_second_open_is_refused_with_a_clear_message() {
    let (dir, _store) = open();
    match SledStore::open(&dir.path().join("db")) {
        Err(err @ StoreError::Locked(_)) => assert!(err.to_string().contains("daemon running")),
        Err(other) => panic!("unexpected error {other}"),
        Ok(_) => panic!("second open succeeded"),
    }
}

/// The names in `dir`.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

#[test]
fn a_corrupt_store_goes_beside_itself_or_else_into_a_directory_of_its_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("store");
    std::fs::create_dir(&path).expect("mkdir");
    std::fs::write(path.join("db"), b"old").expect("write");
    let aside = set_aside(&path, "testing").expect("moves");
    assert_eq!(aside.parent(), Some(dir.path()));
    assert!(aside
        .file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("store.corrupt-")));
    assert_eq!(std::fs::read(aside.join("db")).expect("moved"), b"old");
    assert!(!path.exists());
    // Twice in the same second: a new name, nothing overwritten.
    std::fs::create_dir(&path).expect("mkdir");
    let again = set_aside(&path, "testing").expect("moves");
    assert_ne!(again, aside);
    assert!(aside.join("db").exists() && again.is_dir());

    // What is done instead when the directory cannot be renamed (a mount point,
    // systemd's StateDirectory= whose parent is not ours): its files move inside.
    let store = dir.path().join("kept");
    std::fs::create_dir_all(store.join("corrupt-earlier")).expect("mkdir");
    std::fs::write(store.join("db"), b"old").expect("write");
    std::fs::write(store.join("conf"), b"conf").expect("write");
    let inside = store.join("corrupt-now");
    move_contents(&store, &inside).expect("moves the files");
    assert_eq!(names_in(&store), ["corrupt-earlier", "corrupt-now"]);
    assert_eq!(names_in(&inside), ["conf", "db"]);
    // sled starts afresh beside them.
    let opened = SledStore::open(&store).expect("opens");
    assert_eq!(opened.source_state("s").expect("reads"), None);
}

#[test]
fn a_store_found_corrupt_is_replaced_in_place_for_every_handle() {
    let (dir, store) = open();
    let other = store.clone();
    let mut recoveries = other.recoveries();
    let mut state = SourceState::default();
    store
        .commit_fetch("s", &mut state, &[article("s", 1)], from_millis(1_000))
        .expect("commits");
    assert_eq!(store.corruption(), None);
    // As a read that sled reports as corruption records it.
    let _ = store.db_error(sled::Error::Corruption { at: None, bt: () });
    assert_eq!(other.corruption().as_deref(), Some("corrupted data"));
    store.rebuild("corrupted data").expect("rebuilds");
    assert_eq!(other.corruption(), None);
    assert!(recoveries.has_changed().expect("watching"));
    assert_eq!(recoveries.borrow_and_update().rebuilds, 1);
    // Every handle sees the empty store; the old one is beside it.
    assert!(titles(&other, &["s"], 10).is_empty());
    assert_eq!(other.source_state("s").expect("reads"), None);
    let names = names_in(dir.path());
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[1].starts_with("db.corrupt-"), "{names:?}");
    // And it works.
    store
        .commit_fetch(
            "s",
            &mut SourceState::default(),
            &[article("s", 2)],
            from_millis(2_000),
        )
        .expect("commits");
    assert_eq!(titles(&other, &["s"], 10), ["s 2"]);
}

#[test]
fn a_locked_or_newer_store_stays_where_it_is() {
    let (dir, store) = open();
    let path = dir.path().join("db");
    assert!(matches!(SledStore::open(&path), Err(StoreError::Locked(_))));
    store
        .db()
        .expect("open")
        .insert(b"m:schema", b"99")
        .expect("writes");
    store.flush_blocking().expect("flushes");
    drop(store);
    let reopened =
        SledStore::open_when_free(&path, DEFAULT_CACHE, std::time::Duration::from_secs(10));
    assert!(
        matches!(reopened, Err(StoreError::NewerSchema { found: 99, .. })),
        "{:?}",
        reopened.err()
    );
    assert_eq!(names_in(dir.path()), ["db"], "something was moved aside");
}

#[test]
fn a_panic_inside_the_guard_is_a_corrupt_store_with_its_message() {
    let path = Path::new("/somewhere/store");
    let caught: Result<(), StoreError> =
        guarded(path, || panic!("tried to serialize Uninitialized"));
    match caught {
        Err(StoreError::Corrupt { path: p, reason }) => {
            assert_eq!(p, path);
            assert!(
                reason.contains("tried to serialize Uninitialized"),
                "{reason}"
            );
            assert!(reason.contains(file!()), "no location: {reason}");
        }
        other => panic!("{other:?}"),
    }
    // Work that does not panic passes through; errors too.
    assert_eq!(guarded(path, || Ok(7)).ok(), Some(7));
    assert!(matches!(
        guarded::<()>(path, || Err(StoreError::Task("x".into()))),
        Err(StoreError::Task(_))
    ));
    // A guard inside a guard catches its own panic and leaves the outer one guarding.
    let nested = guarded(path, || {
        let inner: Result<(), StoreError> = guarded(path, || panic!("inner"));
        assert!(matches!(inner, Err(StoreError::Corrupt { .. })));
        GUARDED.with(|g| assert_eq!(g.get(), 1));
        Ok(())
    });
    assert!(nested.is_ok());
    GUARDED.with(|g| assert_eq!(g.get(), 0));
}

#[test]
fn sled_io_errors_read_as_the_system_says_them() {
    let full = std::io::Error::from_raw_os_error(28);
    assert_eq!(
        describe(&sled::Error::Io(full)),
        "No space left on device (os error 28)"
    );
    // As sled hands out the error that stopped its flusher: a copy in Debug form.
    let copied = sled::Error::Io(std::io::Error::from_raw_os_error(28)).clone();
    assert_eq!(describe(&copied), "No space left on device (os error 28)");
    let other = std::io::Error::other("something else");
    assert_eq!(describe(&sled::Error::Io(other)), "something else");
    assert!(refused(&std::io::Error::from_raw_os_error(28)));
    assert!(refused(&std::io::Error::from_raw_os_error(13)));
    assert!(!refused(&std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        "short read"
    )));
}

#[test]
fn state_and_entries_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    {
        let store = SledStore::open(&path).expect("opens");
        let mut state = SourceState {
            validators: Validators {
                etag: Some("\"x\"".into()),
                last_modified: None,
                feed_link: None,
            },
            ..SourceState::default()
        };
        store
            .commit_fetch(
                "s",
                &mut state,
                &[entry("a", "A", None)],
                from_millis(5_000),
            )
            .expect("commit");
    }
    let store = reopen(&path);
    let state = store.source_state("s").expect("reads").expect("exists");
    assert_eq!(state.validators.etag.as_deref(), Some("\"x\""));
    assert_eq!(titles(&store, &["s"], 10), ["A"]);
}

/// Opens the store at `path` again once the last handle is gone.
fn reopen(path: &Path) -> SledStore {
    SledStore::open_when_free(path, DEFAULT_CACHE, std::time::Duration::from_secs(10))
        .expect("reopens")
}

/// Stores `article(outlet, 1)`, then, through `between`, the same text from "dept",
/// and says which entry the repost names as its story's first.
fn repost_root(path: &Path, between: impl FnOnce(SledStore) -> SledStore) -> Option<EntryKey> {
    let store = SledStore::open(path).expect("opens");
    let original = article("outlet", 1);
    store
        .commit_fetch(
            "outlet",
            &mut SourceState::default(),
            std::slice::from_ref(&original),
            from_millis(1_000),
        )
        .expect("commit");
    let store = between(store);
    let repost = Entry {
        identity: "repost-1".into(),
        link: Some("https://dept.example/r1".into()),
        ..original
    };
    store
        .commit_fetch(
            "dept",
            &mut SourceState::default(),
            &[repost],
            from_millis(2_000),
        )
        .expect("commit");
    let stored = store
        .entry("dept", &EntryKey::new("dept", "repost-1"))
        .expect("read")
        .expect("stored");
    stored.same_text_as.map(|r| r.key)
}

#[test]
fn known_newest_times_change_nothing_in_the_merge() {
    let (_dir, store) = open();
    let names: Vec<String> = (0..30).map(|s| format!("s{s}")).collect();
    for (s, source) in names.iter().enumerate() {
        let entries: Vec<Entry> = (0..4)
            .map(|n| {
                // Interleaved times, some equal across sources (ties break by name).
                let at = from_millis(1_000 * ((s * 7 + n * 13) % 40) as i64);
                entry(&format!("{source}-{n}"), &format!("{source} {n}"), Some(at))
            })
            .collect();
        let mut state = SourceState::default();
        store
            .commit_fetch(source, &mut state, &entries, from_millis(100_000))
            .expect("commit");
        assert_eq!(
            state.newest,
            entries.iter().filter_map(|e| e.published).max()
        );
    }
    let read = |newest: &dyn Fn(&str) -> Option<DateTime<Utc>>| {
        let mut out = Vec::new();
        store
            .visit_newest(&names, newest, |stored| {
                out.push(stored.entry.title);
                if out.len() >= 25 {
                    Visit::Stop
                } else {
                    Visit::Next
                }
            })
            .expect("reads");
        out
    };
    let blind = read(&|_| None);
    let informed = read(&|s| store.source_state(s).ok().flatten()?.newest);
    assert_eq!(blind.len(), 25);
    assert_eq!(informed, blind);
}

#[test]
fn closing_with_a_snapshot_keeps_everything_and_writes_a_newer_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let newest_snapshot = || {
        std::fs::read_dir(&path)
            .expect("store directory")
            .filter_map(|f| f.ok()?.file_name().into_string().ok())
            .filter(|name| name.starts_with("snap."))
            .max()
    };
    let store = SledStore::open(&path).expect("opens");
    let mut state = SourceState::default();
    store
        .commit_fetch("s", &mut state, &[article("s", 1)], from_millis(5_000))
        .expect("commit");
    store.flush_blocking().expect("flushes");
    let before = newest_snapshot();
    store.close_with_snapshot().expect("closes");
    assert!(newest_snapshot() > before, "{before:?}");
    let store = reopen(&path);
    assert_eq!(titles(&store, &["s"], 10), ["s 1"]);
    assert_eq!(
        store.source_state("s").expect("reads").map(|s| s.items),
        Some(1)
    );
}

#[test]
fn stories_are_matched_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let root = repost_root(&path, |store| {
        drop(store);
        reopen(&path)
    });
    assert_eq!(root, Some(EntryKey::new("outlet", "outlet-1")));
}

#[test]
fn a_schema_1_store_is_migrated_and_its_stories_still_match() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let root = repost_root(&path, |store| {
        // Turn the store back into schema 1: JSON-only entry values, an index key per
        // entry and band, no index values.
        for item in store.db().expect("open").scan_prefix(b"e:") {
            let (k, v) = item.expect("reads");
            let (_, json) = split_entry(&v).expect("an entry value");
            let json = json.to_vec();
            store.db().expect("open").insert(&k, json).expect("inserts");
            for prefix in [b"i:", b"f:", b"c:", b"b:", b"h:"] {
                let old_key = [prefix.as_slice(), &k[2..]].concat();
                store
                    .db()
                    .expect("open")
                    .insert(old_key, &[])
                    .expect("inserts");
            }
        }
        for item in store.db().expect("open").scan_prefix(b"n:") {
            store
                .db()
                .expect("open")
                .remove(item.expect("reads").0)
                .expect("removes");
        }
        store
            .db()
            .expect("open")
            .insert(b"m:schema", b"1")
            .expect("inserts");
        store.flush_blocking().expect("flushes");
        drop(store);
        let store = reopen(&path);
        for prefix in ["i:", "f:", "c:", "b:", "h:"] {
            assert_eq!(store.count_prefix(prefix.as_bytes()), 0, "{prefix}");
        }
        assert_eq!(store.count_prefix(b"n:"), 1);
        assert!(store.db().expect("open").scan_prefix(b"e:").all(|item| item
            .ok()
            .and_then(|(_, v)| split_entry(&v).map(|(record, _)| record))
            .is_some_and(|record| record.fingerprint.is_some() && record.link.is_some())));
        assert_eq!(titles(&store, &["outlet"], 10), ["outlet 1"]);
        assert_eq!(
            store
                .db()
                .expect("open")
                .get(b"m:schema")
                .expect("reads")
                .as_deref(),
            Some(SCHEMA_VERSION.to_string().as_bytes())
        );
        store
    });
    assert_eq!(root, Some(EntryKey::new("outlet", "outlet-1")));
}

fn article(source: &str, n: usize) -> Entry {
    let words: String = (0..40).map(|w| format!("{source}word{n}x{w} ")).collect();
    Entry {
        link: Some(format!("https://{source}.example/{n}")),
        summary: Some(format!("<p>{words}</p>")),
        ..entry(&format!("{source}-{n}"), &format!("{source} {n}"), None)
    }
}

#[test]
fn pruning_removes_exactly_what_retention_says_from_every_index() {
    let (_dir, store) = open();
    for source in ["a", "b"] {
        let mut state = SourceState::default();
        let old: Vec<Entry> = (0..5).map(|n| article(source, n)).collect();
        let new: Vec<Entry> = (5..10).map(|n| article(source, n)).collect();
        store
            .commit_fetch(source, &mut state, &old, from_millis(1_000_000))
            .expect("commit");
        store
            .commit_fetch(source, &mut state, &new, from_millis(2_000_000))
            .expect("commit");
        assert_eq!(state.items, 10);
    }
    let count = |prefix: &str| store.count_prefix(prefix.as_bytes());
    assert_eq!(count("e:a\0"), 10);
    assert_eq!(count("e:"), 20);
    assert_eq!(count("n:"), 2);

    // By age: the five first seen before 1,500 s go.
    let removed = store
        .prune(Some(from_millis(1_500_000)), None)
        .expect("prune");
    assert_eq!(removed.get("a"), Some(&5));
    assert_eq!(removed.get("b"), Some(&5));
    // By count: the newest three of each source stay.
    store.prune(None, Some(3)).expect("prune");
    for source in ["a", "b"] {
        assert_eq!(count(&format!("e:{source}\0")), 3, "{source}");
        assert_eq!(store.index(source).expect("reads").len(), 3, "{source}");
        let kept = titles(&store, &[source], 100);
        // Undated: the first in the document is the newest.
        assert_eq!(kept, [5, 6, 7].map(|n| format!("{source} {n}")));
        assert_eq!(
            store
                .source_state(source)
                .expect("read")
                .expect("state")
                .items,
            3
        );
    }
    assert_eq!(count("e:"), 6);
}

#[test]
fn a_story_still_being_written_is_found_by_the_commit_beside_it() {
    let (_dir, store) = open();
    let original = article("outlet", 1);
    let key = EntryKey::new("outlet", &original.identity);
    let change =
        |source: &str, entry| Change::new(0, entry, EntryKey::new(source, &entry.identity), None);
    // Matched and remembered by a commit that has not written it yet.
    let mut commits = store.lock_commits().expect("locks");
    let now = from_millis(1_000);
    commits
        .matcher
        .match_commit(
            "outlet",
            vec![change("outlet", &original)],
            now,
            &store.joins,
            &store,
        )
        .expect("matches");
    let repost = Entry {
        identity: "repost-1".into(),
        link: Some("https://outlet.example/1?utm_source=x".into()),
        ..original.clone()
    };
    let matched = commits
        .matcher
        .match_commit(
            "dept",
            vec![change("dept", &repost)],
            now,
            &store.joins,
            &store,
        )
        .expect("matches");
    let stored = &matched.written[0].1.stored;
    assert_eq!(stored.same_link_as.as_ref().map(|r| r.key), Some(key));
    assert_eq!(stored.same_text_as.as_ref().map(|r| r.key), Some(key));
    assert_eq!(store.entry("outlet", &key).expect("reads"), None);
}

#[test]
fn a_schema_3_store_opens_as_the_current_schema_as_it_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let store = SledStore::open(&path).expect("opens");
    let mut state = SourceState::default();
    store
        .commit_fetch("a", &mut state, &[article("a", 1)], from_millis(1_000))
        .expect("commits");
    store
        .db()
        .expect("open")
        .insert(b"m:schema", b"3")
        .expect("writes");
    drop(store);
    let store = reopen(&path);
    assert_eq!(
        store
            .db()
            .expect("open")
            .get(b"m:schema")
            .expect("reads")
            .as_deref(),
        Some(SCHEMA_VERSION.to_string().as_bytes())
    );
    assert_eq!(titles(&store, &["a"], 10), ["a 1"]);
}

#[test]
fn entries_written_without_their_index_are_indexed_by_the_next_commit() {
    let (_dir, store) = open();
    let entries: Vec<Entry> = (0..3).map(|n| article("cut", n)).collect();
    let mut state = SourceState::default();
    store
        .commit_fetch("cut", &mut state, &entries, from_millis(1_000))
        .expect("commits");
    // A crash after the entries were written, before the index and the state.
    store
        .db()
        .expect("open")
        .remove(index_key("cut"))
        .expect("removes");
    assert!(titles(&store, &["cut"], 10).is_empty());
    let mut state = SourceState::default();
    let summary = store
        .commit_fetch("cut", &mut state, &entries, from_millis(2_000))
        .expect("commits");
    // Stored anew: they were never shown.
    assert_eq!(summary.new, 3);
    assert_eq!(titles(&store, &["cut"], 10).len(), 3);
    assert_eq!(state.items, 3);
    assert_eq!(
        store.source_state("cut").expect("reads").map(|s| s.items),
        Some(3)
    );
}

#[test]
fn concurrent_commits_of_one_source_lose_nothing() {
    let (_dir, store) = open();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for round in 0..5 {
                    let mut state = store
                        .source_state("shared")
                        .expect("reads")
                        .unwrap_or_default();
                    let entries: Vec<Entry> = (0..10)
                        .map(|n| article("shared", t * 100 + round * 10 + n))
                        .collect();
                    store
                        .commit_fetch("shared", &mut state, &entries, from_millis(1_000))
                        .expect("commits");
                    let own = format!("own{t}");
                    let mut own_state = SourceState::default();
                    store
                        .commit_fetch(&own, &mut own_state, &entries[..2], from_millis(1_000))
                        .expect("commits");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().expect("joins");
    }
    assert_eq!(store.index("shared").expect("reads").len(), 400);
    assert_eq!(
        store.count_prefix(&entry_key("shared", &EntryKey([0; 16]))[..9]),
        400
    );
    for t in 0..8 {
        assert_eq!(store.index(&format!("own{t}")).expect("reads").len(), 10);
    }
    assert_eq!(
        store.commits.lock().expect("locks").matcher.pending_len(),
        0
    );
}

#[test]
fn a_story_is_matched_across_sources_never_within_one() {
    let (_dir, store) = open();
    let mut state = SourceState::default();
    let original = article("outlet", 1);
    store
        .commit_fetch(
            "outlet",
            &mut state,
            std::slice::from_ref(&original),
            from_millis(1_000),
        )
        .expect("commit");
    // A repost elsewhere: own identity and link, the same text.
    let repost = Entry {
        identity: "repost-1".into(),
        link: Some("https://dept.example/r1".into()),
        ..original.clone()
    };
    // The portal links to the original, with tracking parameters.
    let portal = Entry {
        identity: "portal-1".into(),
        link: Some("http://outlet.example/1?utm_source=portal#top".into()),
        summary: Some("<p>See the story.</p>".into()),
        ..original.clone()
    };
    store
        .commit_fetch("dept", &mut state, &[repost], from_millis(2_000))
        .expect("commit");
    store
        .commit_fetch("portal", &mut state, &[portal], from_millis(3_000))
        .expect("commit");
    // The same text again in the outlet itself: never merged with its own source.
    let again = Entry {
        identity: "outlet-again".into(),
        link: Some("https://outlet.example/again".into()),
        ..original.clone()
    };
    store
        .commit_fetch("outlet", &mut state, &[again], from_millis(4_000))
        .expect("commit");

    let root = EntryKey::new("outlet", &original.identity);
    let dept = store
        .entry("dept", &EntryKey::new("dept", "repost-1"))
        .expect("read")
        .expect("stored");
    assert_eq!(dept.same_text_as.as_ref().map(|r| r.key), Some(root));
    assert_eq!(dept.same_link_as, None);
    let portal = store
        .entry("portal", &EntryKey::new("portal", "portal-1"))
        .expect("read")
        .expect("stored");
    assert_eq!(portal.same_link_as.as_ref().map(|r| r.key), Some(root));
    assert_eq!(portal.same_text_as.as_ref().map(|r| r.key), Some(root));
    let again = store
        .entry("outlet", &EntryKey::new("outlet", "outlet-again"))
        .expect("read")
        .expect("stored");
    assert_eq!(again.same_text_as, None, "merged with its own source");
}

// One story whatever the order: four outlets of one story where only neighbours in the
// chain repost - outlet - portal - wire match (the portal links to the outlet's page and
// carries the wire's text; the repost carries the outlet's text under its own link).

/// An entry of `source` telling `story` (40 words of its own), under `header`.
fn told(source: &str, link: &str, header: &str, story: &str) -> Entry {
    let words: String = (0..40).map(|w| format!("{story}word{w} ")).collect();
    Entry {
        link: Some(link.to_string()),
        summary: Some(format!("<p>{header}</p><p>{words}</p>")),
        ..entry(link, &format!("{source} {story}"), None)
    }
}

fn carrier(source: &str) -> Entry {
    match source {
        "outlet" => told(source, "https://imdaily.example/fire", "", "fire"),
        "wire" => told(source, "https://wire.example/991", "", "wire"),
        "portal" => told(
            source,
            "http://IMDAILY.example/fire/?utm_source=portal#top",
            "From the wires:",
            "wire",
        ),
        "repost" => told(
            source,
            "https://dept.example/1201",
            "Reposted from the outlet",
            "fire",
        ),
        other => panic!("no carrier {other}"),
    }
}

/// Stores `entries` as one response of `source`, seen at `ms`.
fn commit(store: &SledStore, source: &str, entries: &[Entry], ms: i64) -> CommitSummary {
    let mut state = store
        .source_state(source)
        .expect("reads")
        .unwrap_or_default();
    store
        .commit_fetch(source, &mut state, entries, from_millis(ms))
        .expect("commits")
}

fn stored(store: &SledStore, source: &str, entry: &Entry) -> StoredEntry {
    store
        .entry(source, &EntryKey::new(source, &entry.identity))
        .expect("reads")
        .expect("stored")
}

/// The first entry of `entry`'s story of `kind`, after joins.
fn story(store: &SledStore, kind: StoryKind, source: &str, entry: &Entry) -> EntryKey {
    store.story_of(&stored(store, source, entry), kind).key
}

/// What a feed of `sources` with `dedup` shows: each story's entry's source and the
/// sources it names.
fn shown(store: &SledStore, sources: &[&str], dedup: Dedup) -> Vec<(String, Vec<String>)> {
    let feed = FeedConfig {
        name: "all".to_string(),
        title: "All".to_string(),
        sources: sources.iter().map(|s| s.to_string()).collect(),
        include: vec![],
        exclude: vec![],
        limit: 50,
        max_per_source: 50,
        dedup,
    };
    let mut out: Vec<(String, Vec<String>)> =
        crate::select::select(store as &dyn crate::store::Store, &feed, &|_| None)
            .expect("selects")
            .into_iter()
            .map(|story| {
                let mut also: Vec<String> = story.also.into_iter().map(|a| a.source).collect();
                also.sort();
                (story.entry.source, also)
            })
            .collect();
    out.sort();
    out
}

use crate::config::{Dedup, FeedConfig};

fn orders(items: &[&'static str]) -> Vec<Vec<&'static str>> {
    if items.len() <= 1 {
        return vec![items.to_vec()];
    }
    let mut out = Vec::new();
    for (i, first) in items.iter().enumerate() {
        let mut rest = items.to_vec();
        rest.remove(i);
        for mut tail in orders(&rest) {
            tail.insert(0, first);
            out.push(tail);
        }
    }
    out
}

/// Checks that `sources`' carriers are one story by text, whose first entry is the
/// first stored (`order[0]`), and by link only the outlet's and the portal's.
fn assert_one_story(store: &SledStore, order: &[&str]) {
    let first = EntryKey::new(order[0], &carrier(order[0]).identity);
    for source in order {
        assert_eq!(
            story(store, StoryKind::Text, source, &carrier(source)),
            first,
            "{source}, stored in the order {order:?}"
        );
    }
    let by_link = |source: &str| story(store, StoryKind::Link, source, &carrier(source));
    assert_eq!(by_link("outlet"), by_link("portal"), "{order:?}");
    for source in order.iter().filter(|s| !["outlet", "portal"].contains(s)) {
        let alone = EntryKey::new(source, &carrier(source).identity);
        assert_eq!(by_link(source), alone, "{order:?}");
    }
    // As a feed shows it: once, naming the others.
    let shown = shown(store, order, Dedup::Content);
    assert_eq!(shown.len(), 1, "{order:?}: {shown:?}");
    assert_eq!(shown[0].1.len(), order.len() - 1, "{order:?}: {shown:?}");
}

#[test]
fn an_entry_that_matches_two_stories_joins_them_whatever_the_order() {
    for order in orders(&["outlet", "wire", "portal"]) {
        let (_dir, store) = open();
        let mut last = CommitSummary::default();
        for (step, source) in order.iter().enumerate() {
            last = commit(
                &store,
                source,
                &[carrier(source)],
                1_000 * (step as i64 + 1),
            );
        }
        assert_one_story(&store, &order);
        // The bridge last: it matched the outlet's story by link and the wire's by text
        // (link then text when the outlet came first, text then link when the wire did),
        // and joined them: one join stored, and the feeds of both told.
        let bridged = order[2] == "portal";
        assert_eq!(store.count_prefix(b"j:"), usize::from(bridged), "{order:?}");
        let told: &[&str] = if bridged { &["outlet", "wire"] } else { &[] };
        assert_eq!(last.joined, told, "{order:?}");
    }
}

#[test]
fn four_outlets_are_one_story_in_every_order_across_reopening() {
    for order in orders(&["outlet", "wire", "portal", "repost"]) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let mut store = SledStore::open(&path).expect("opens");
        for (step, source) in order.iter().enumerate() {
            if step == 2 {
                // Half of them stored by an earlier run: matching and joins read again.
                drop(store);
                store = reopen(&path);
            }
            commit(
                &store,
                source,
                &[carrier(source)],
                1_000 * (step as i64 + 1),
            );
        }
        assert_one_story(&store, &order);
        drop(store);
        let store = reopen(&path);
        assert_one_story(&store, &order);
    }
}

#[test]
fn a_joined_story_is_stored_and_keeps_matching_after_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let store = SledStore::open(&path).expect("opens");
    for (step, source) in ["outlet", "wire", "portal"].into_iter().enumerate() {
        commit(
            &store,
            source,
            &[carrier(source)],
            1_000 * (step as i64 + 1),
        );
    }
    let outlet = EntryKey::new("outlet", &carrier("outlet").identity);
    drop(store);
    let store = reopen(&path);
    assert_eq!(store.count_prefix(b"j:"), 1);
    assert_eq!(
        story(&store, StoryKind::Text, "wire", &carrier("wire")),
        outlet
    );
    // The wire's text again from an agency: it joins the story through the wire's
    // entry, whose story was joined into the outlet's.
    let agency = told("agency", "https://agency.example/7", "Agency copy", "wire");
    commit(&store, "agency", std::slice::from_ref(&agency), 9_000);
    assert_eq!(story(&store, StoryKind::Text, "agency", &agency), outlet);
    // The wire's text in another entry of the wire: the story holds the wire already,
    // as the stories' sources read again at opening tell.
    let again = told("wire", "https://wire.example/992", "Updated", "wire");
    commit(&store, "wire", std::slice::from_ref(&again), 10_000);
    assert_eq!(
        story(&store, StoryKind::Text, "wire", &again),
        EntryKey::new("wire", &again.identity)
    );
    assert_eq!(
        shown(
            &store,
            &["outlet", "wire", "portal", "agency"],
            Dedup::Content
        )
        .len(),
        2
    );
}

#[test]
fn a_story_never_holds_two_entries_of_one_source() {
    // Two entries of one source ("live": the first report and the full story) and an
    // entry of another that links to the first and carries the text of the second.
    let first = told("live", "https://live.example/1", "", "first");
    let second = told("live", "https://live.example/2", "", "second");
    let bridge = told(
        "agg",
        "https://live.example/1?utm_source=agg",
        "Via",
        "second",
    );
    let entries = [("live", &first), ("live", &second), ("agg", &bridge)];
    for order in orders(&["first", "second", "bridge"]) {
        let (_dir, store) = open();
        for (step, name) in order.iter().enumerate() {
            let (source, entry) = match *name {
                "first" => entries[0],
                "second" => entries[1],
                _ => entries[2],
            };
            commit(
                &store,
                source,
                std::slice::from_ref(entry),
                1_000 * (step as i64 + 1),
            );
        }
        let of = |source, entry| story(&store, StoryKind::Text, source, entry);
        assert_ne!(of("live", &first), of("live", &second), "{order:?}");
        assert_eq!(store.count_prefix(b"j:"), 0, "{order:?}");
        // The bridge is in one of them, with the entry of "live" seen first but for
        // when it came first itself and was joined by the first "live" entry to come.
        let bridged = of("agg", &bridge);
        let came_first = |a: &str, b: &str| {
            order.iter().position(|n| *n == a) < order.iter().position(|n| *n == b)
        };
        let with = if came_first("first", "second") {
            of("live", &first)
        } else {
            of("live", &second)
        };
        assert_eq!(bridged, with, "{order:?}");
        let shown = shown(&store, &["live", "agg"], Dedup::Content);
        assert_eq!(shown.len(), 2, "{order:?}: {shown:?}");
    }

    // A new entry never joins a story that holds an entry of its source, first or not.
    let (_dir, store) = open();
    commit(&store, "outlet", &[carrier("outlet")], 1_000);
    commit(&store, "repost", &[carrier("repost")], 2_000);
    let again = told("repost", "https://dept.example/1202", "Again", "fire");
    commit(&store, "repost", std::slice::from_ref(&again), 3_000);
    assert_eq!(
        story(&store, StoryKind::Text, "repost", &again),
        EntryKey::new("repost", &again.identity)
    );
    // Nor do two stories that each hold one of a source join.
    let outlet2 = told("outlet", "https://imdaily.example/fire2", "", "smoke");
    let repost2 = told("repost", "https://dept.example/1203", "Reposted", "smoke");
    commit(&store, "outlet", std::slice::from_ref(&outlet2), 4_000);
    commit(&store, "repost", std::slice::from_ref(&repost2), 5_000);
    let both = told("portal", "https://imdaily.example/fire", "", "smoke");
    commit(&store, "portal", std::slice::from_ref(&both), 6_000);
    assert_eq!(store.count_prefix(b"j:"), 0);
    let outlet = EntryKey::new("outlet", &carrier("outlet").identity);
    // Matched the fire story by link, the smoke story by text: it joins the earlier.
    assert_eq!(story(&store, StoryKind::Text, "portal", &both), outlet);
    assert_eq!(
        story(&store, StoryKind::Text, "repost", &repost2),
        EntryKey::new("outlet", &outlet2.identity)
    );
}

#[test]
fn commits_side_by_side_join_stories_as_one_after_the_other_do() {
    for run in 0..20 {
        let (_dir, store) = open();
        let sources = ["outlet", "wire", "portal", "repost"];
        let start = std::sync::Barrier::new(sources.len());
        std::thread::scope(|scope| {
            for source in sources {
                let (store, start) = (&store, &start);
                scope.spawn(move || {
                    start.wait();
                    commit(store, source, &[carrier(source)], 1_000);
                });
            }
        });
        let text: HashSet<EntryKey> = sources
            .iter()
            .map(|s| story(&store, StoryKind::Text, s, &carrier(s)))
            .collect();
        assert_eq!(text.len(), 1, "run {run}");
        assert_eq!(
            shown(&store, &sources, Dedup::Content).len(),
            1,
            "run {run}"
        );
        assert_eq!(shown(&store, &sources, Dedup::Link).len(), 3, "run {run}");
    }
}

#[test]
fn values_written_before_schema_5_still_name_their_stories() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let store = SledStore::open(&path).expect("opens");
    commit(&store, "outlet", &[carrier("outlet")], 1_000);
    commit(&store, "repost", &[carrier("repost")], 2_000);
    // The values as schema 4 wrote them: format 1, the stories only in the JSON.
    for item in store.db().expect("open").scan_prefix(b"e:") {
        let (k, v) = item.expect("reads");
        let (record, json) = split_entry(&v).expect("an entry value");
        assert!(record.firsts.is_some());
        let mut old = vec![RECORD_FORMAT, 3];
        old.extend_from_slice(&record.link.expect("a link").to_be_bytes());
        old.extend_from_slice(&record.fingerprint.expect("a fingerprint").to_bytes());
        old.extend_from_slice(json);
        let (again, _) = split_entry(&old).expect("format 1 reads");
        assert_eq!(again.firsts, None);
        store.db().expect("open").insert(k, old).expect("writes");
    }
    drop(store);
    let store = reopen(&path);
    // The repost's story holds the repost: another entry of it stays apart.
    let again = told("repost", "https://dept.example/1202", "Again", "fire");
    commit(&store, "repost", std::slice::from_ref(&again), 3_000);
    assert_eq!(
        story(&store, StoryKind::Text, "repost", &again),
        EntryKey::new("repost", &again.identity)
    );
    // And the format 2 value names its stories in its record.
    let value = store
        .db()
        .expect("open")
        .get(entry_key(
            "repost",
            &EntryKey::new("repost", "https://dept.example/1201"),
        ))
        .expect("reads")
        .expect("stored");
    let (record, _) = split_entry(&value).expect("reads");
    assert_eq!(record.firsts, None, "untouched values keep their format");
    let mut updated = carrier("repost");
    updated.title.push_str(" (updated)");
    commit(&store, "repost", &[updated], 4_000);
    let value = store
        .db()
        .expect("open")
        .get(entry_key(
            "repost",
            &EntryKey::new("repost", "https://dept.example/1201"),
        ))
        .expect("reads")
        .expect("stored");
    let (record, _) = split_entry(&value).expect("reads");
    let firsts = record.firsts.expect("format 2");
    assert_eq!(firsts[0], None);
    assert_eq!(
        firsts[1].as_ref().map(|r| r.key),
        Some(EntryKey::new("outlet", "https://imdaily.example/fire"))
    );
}

#[test]
fn an_entry_whose_commit_failed_joins_its_story_again_once_the_store_recovers() {
    let (_dir, store) = open();
    commit(&store, "outlet", &[carrier("outlet")], 1_000);
    commit(&store, "repost", &[carrier("repost")], 2_000);
    // As if the repost's commit had failed: matched and remembered, not stored (and it
    // hides the outlet's entry from matching, as the latest carrier of its bands).
    let db = store.db().expect("open");
    let key = EntryKey::new("repost", &carrier("repost").identity);
    db.remove(entry_key("repost", &key)).expect("removes");
    db.remove(index_key("repost")).expect("removes");
    db.remove(state_key("repost")).expect("removes");
    store.cached_states().saved.clear();
    store.recover().expect("recovers");
    commit(&store, "repost", &[carrier("repost")], 3_000);
    assert_eq!(
        story(&store, StoryKind::Text, "repost", &carrier("repost")),
        EntryKey::new("outlet", &carrier("outlet").identity)
    );
}

#[test]
fn retention_forgets_a_join_with_the_entries_it_joined() {
    let (_dir, store) = open();
    for (step, source) in ["outlet", "wire", "portal"].into_iter().enumerate() {
        commit(
            &store,
            source,
            &[carrier(source)],
            1_000 * (step as i64 + 1),
        );
    }
    assert_eq!(store.count_prefix(b"j:"), 1);
    // The wire's entry, the story joined, was first seen at 2 s.
    store.prune(Some(from_millis(2_000)), None).expect("prunes");
    assert_eq!(store.count_prefix(b"j:"), 1);
    assert_eq!(
        story(&store, StoryKind::Text, "wire", &carrier("wire")),
        EntryKey::new("outlet", "https://imdaily.example/fire")
    );
    store.prune(Some(from_millis(2_001)), None).expect("prunes");
    assert_eq!(store.count_prefix(b"j:"), 0);
    assert_eq!(store.joins.read().expect("lock").len(), 0);
}

#[test]
fn a_failed_commit_s_joins_are_written_by_the_next() {
    let (_dir, store) = open();
    commit(&store, "outlet", &[carrier("outlet")], 1_000);
    commit(&store, "wire", &[carrier("wire")], 2_000);
    // As a commit whose write failed leaves them: joined in memory, not on disk.
    let join = Join {
        into: stored(&store, "outlet", &carrier("outlet")).to_ref(),
        until_ms: 2_000,
    };
    let wire = EntryKey::new("wire", "https://wire.example/991");
    store
        .joins
        .write()
        .expect("lock")
        .insert(StoryKind::Text, wire, join.clone());
    store
        .commits
        .lock()
        .expect("lock")
        .matcher
        .keep_unwritten(vec![(StoryKind::Text, wire, join)]);
    commit(
        &store,
        "other",
        &[told("other", "https://o.example/", "", "else")],
        3_000,
    );
    assert_eq!(store.count_prefix(b"j:"), 1);
    assert_eq!(
        store.commits.lock().expect("lock").matcher.unwritten_len(),
        0
    );
}

#[test]
fn output_ids_are_stable_urns() {
    let key = EntryKey::new("imdaily", "urn:a");
    assert_eq!(key, EntryKey::new("imdaily", "urn:a"));
    assert_ne!(key, EntryKey::new("other", "urn:a"));
    let urn = key.urn();
    assert!(urn.starts_with("urn:uuid:") && urn.len() == 45, "{urn}");
}
