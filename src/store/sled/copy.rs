//! Export and import (`feedmill store copy`): every source's state and entries, one source
//! at a time, then every join of stories, written back as they were.
//!
//! An import writes what a commit writes, in a commit's order: the entries (with their match
//! records, which name the first entries of their stories), then the source's index, then
//! its state, so that the validators in the state are never ahead of the entries; only then
//! are the source's old entries that the import does not hold removed. A crash part way
//! leaves either the old source or the new one, never validators without their entries.

use rustc_hash::{FxHashMap, FxHashSet};

use super::{codec::*, SledStore};
use crate::model::{EntryKey, SourceState, StoredEntry};
use crate::store::matching::{firsts_of, Prepared};
use crate::store::stories::Join;
use crate::store::{Exported, StoreError};

impl SledStore {
    /// Shows every source to `visit` (its state, and the entries of its index), one at a
    /// time, in name order, then every join. A source with an index but no state (a commit
    /// cut short between the two) comes with an empty state: its entries are shown in feeds,
    /// so they are copied. Entries outside an index are never shown and are not copied.
    /// Only the store's reads are guarded (see [`SledStore::guard`]): what `visit` does is
    /// another store's business, and its failure is not this store's corruption.
    pub(crate) fn export(
        &self,
        visit: &mut dyn FnMut(Exported) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for name in self.guard(|| self.exported_sources())? {
            let Some((state, entries)) = self.guard(|| self.export_source(&name))? else {
                continue;
            };
            visit(Exported::Source {
                name,
                state: Box::new(state),
                entries,
            })?;
        }
        for (kind, joined, join) in self.guard(|| self.exported_joins())? {
            visit(Exported::Join { kind, joined, join })?;
        }
        Ok(())
    }

    /// The names of the sources with a state or an index, sorted (names only: one source's
    /// entries are in memory at a time).
    fn exported_sources(&self) -> Result<Vec<String>, StoreError> {
        let db = self.db()?;
        let mut names = std::collections::BTreeSet::new();
        for prefix in [b"s:", b"n:"] {
            for key in db.scan_prefix(prefix).keys() {
                let key = key.map_err(|e| self.db_error(e))?;
                names.insert(String::from_utf8_lossy(&key[2..]).into_owned());
            }
        }
        Ok(names.into_iter().collect())
    }

    /// The state and the indexed entries of `source`; `None` when it has neither (gone
    /// since its name was read).
    fn export_source(
        &self,
        source: &str,
    ) -> Result<Option<(SourceState, Vec<StoredEntry>)>, StoreError> {
        let db = self.db()?;
        let state: Option<SourceState> = db
            .get(state_key(source))
            .map_err(|e| self.db_error(e))?
            .and_then(|v| decode(&v, "source state"));
        let index = self.index(source)?;
        if state.is_none() && index.is_empty() {
            return Ok(None);
        }
        let mut entries = Vec::with_capacity(index.len());
        for item in &index {
            // An index item whose entry is gone or unreadable is skipped, as reads skip it.
            if let Some(stored) = self.entry(source, &item.key)? {
                entries.push(stored);
            }
        }
        let state = state.unwrap_or_else(|| SourceState {
            items: entries.len() as u64,
            newest: entries.iter().map(|e| e.sort_time).max(),
            ..SourceState::default()
        });
        Ok(Some((state, entries)))
    }

    /// Every join of stories, as stored.
    fn exported_joins(&self) -> Result<Vec<(crate::model::StoryKind, EntryKey, Join)>, StoreError> {
        let mut joins = Vec::new();
        for item in self.db()?.scan_prefix(b"j:") {
            let (k, v) = item.map_err(|e| self.db_error(e))?;
            let Some((kind, joined)) = split_join_key(&k) else {
                continue;
            };
            if let Some(join) = decode::<Join>(&v, "story join") {
                joins.push((kind, joined, join));
            }
        }
        Ok(joins)
    }

    /// Writes one piece of an export as it was (see the module documentation for the
    /// order). A source replaces what the store held of it; a join is added to the joins
    /// readers follow. Story matching's memory of recent entries is forgotten, to be read
    /// again from the store by the next commit, which then sees the imported entries.
    pub(crate) fn import(&self, item: Exported) -> Result<(), StoreError> {
        match item {
            Exported::Source {
                name,
                state,
                entries,
            } => self.guard(|| self.import_source(&name, *state, entries))?,
            Exported::Join { kind, joined, join } => self.guard(|| {
                let _writing = self.writes.read().unwrap_or_else(|p| p.into_inner());
                self.db()?
                    .insert(
                        join_key(kind, &joined),
                        serde_json::to_vec(&join).unwrap_or_default(),
                    )
                    .map_err(|e| self.write_error(e))?;
                // Joins change under the commits lock (see `SledStore::joins`), which a
                // commit takes after the writes lock, as here.
                let _commits = self.commits.lock().unwrap_or_else(|p| p.into_inner());
                self.joins
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(kind, joined, join);
                Ok(())
            })?,
        }
        self.forget_matching();
        Ok(())
    }

    /// [`SledStore::import`] of one source: its entries, its index, its state, then the
    /// removal of its old entries that the import does not hold. Under the source's commit
    /// turn, so that no commit of it runs beside.
    fn import_source(
        &self,
        source: &str,
        mut state: SourceState,
        entries: Vec<StoredEntry>,
    ) -> Result<(), StoreError> {
        let _writing = self.writes.read().unwrap_or_else(|p| p.into_inner());
        let _turn = self.commit_turn(source);
        // By key, the last of a key winning: an index holds each entry once.
        let mut by_key: FxHashMap<EntryKey, StoredEntry> = FxHashMap::default();
        for stored in entries {
            if stored.source != source {
                // Its key (and output id) is made from its own source: stored under this
                // one, it would be an entry that no read finds.
                return Err(StoreError::Db {
                    path: self.path.clone(),
                    reason: format!(
                        "the export of source {source:?} holds an entry of source {:?}",
                        stored.source
                    ),
                });
            }
            by_key.insert(stored.key(), stored);
        }
        let db = self.db()?;
        let old = self.stored_keys(source)?;
        let mut index = Vec::with_capacity(by_key.len());
        for (key, stored) in &by_key {
            let mut record = Prepared::of(&stored.entry).record;
            record.firsts = Some(firsts_of(stored));
            db.insert(entry_key(source, key), encode_entry(stored, &record))
                .map_err(|e| self.write_error(e))?;
            index.push(Indexed::of(stored));
        }
        index.sort_unstable();
        db.insert(index_key(source), encode_index(&index))
            .map_err(|e| self.write_error(e))?;
        // The index is the truth (as a commit keeps it).
        state.items = index.len() as u64;
        db.insert(
            state_key(source),
            serde_json::to_vec(&state).unwrap_or_default(),
        )
        .map_err(|e| self.write_error(e))?;
        self.cache_state(source, &state);
        for key in old.iter().filter(|key| !by_key.contains_key(key)) {
            db.remove(entry_key(source, key))
                .map_err(|e| self.write_error(e))?;
        }
        Ok(())
    }

    /// The keys of every entry stored under `source`, indexed or not (a commit cut short
    /// leaves entries outside the index).
    fn stored_keys(&self, source: &str) -> Result<FxHashSet<EntryKey>, StoreError> {
        let mut prefix = b"e:".to_vec();
        prefix.extend_from_slice(source.as_bytes());
        prefix.push(0);
        let mut keys = FxHashSet::default();
        for key in self.db()?.scan_prefix(&prefix).keys() {
            let key = key.map_err(|e| self.db_error(e))?;
            // Exactly this source's: a name holding a NUL could share the prefix.
            if key.len() != prefix.len() + 16 {
                continue;
            }
            if let Some((_, entry)) = split_entry_key(&key) {
                keys.insert(entry);
            }
        }
        Ok(keys)
    }

    /// Drops story matching's memory of recent entries and their stories: the next commit
    /// reads it again from what the store holds now.
    fn forget_matching(&self) {
        let mut commits = self.commits.lock().unwrap_or_else(|p| p.into_inner());
        commits.loaded = false;
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};

    use super::super::codec::from_millis;
    use super::super::SledStore;
    use crate::model::{Entry, EntryKey, SourceState, StoredEntry, StoryKind, Validators};
    use crate::store::{Exported, Store};

    fn open() -> (tempfile::TempDir, SledStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SledStore::open(&dir.path().join("db")).expect("opens");
        (dir, store)
    }

    /// An entry of `source` telling `story` (40 words of its own) under `header`, at `link`.
    fn told(link: &str, header: &str, story: &str, published: Option<DateTime<Utc>>) -> Entry {
        let words: String = (0..40).map(|w| format!("{story}word{w} ")).collect();
        Entry {
            identity: link.to_string(),
            title: format!("{story} {link}"),
            link: Some(link.to_string()),
            published,
            summary: Some(format!("<p>{header}</p><p>{words}</p>")),
            ..Entry::default()
        }
    }

    /// The outlet, the wire and the portal that links to the outlet and carries the wire's
    /// text, stored in that order: the portal joins the two stories.
    fn carriers() -> [(&'static str, Entry); 3] {
        [
            (
                "outlet",
                told("https://imdaily.example/fire", "", "fire", None),
            ),
            (
                "wire",
                told(
                    "https://wire.example/991",
                    "",
                    "wire",
                    Some(from_millis(1_600_000_000_000)),
                ),
            ),
            (
                "portal",
                told(
                    "http://IMDAILY.example/fire/?utm_source=portal#top",
                    "From the wires:",
                    "wire",
                    None,
                ),
            ),
        ]
    }

    /// A store holding the carriers (each with a state carrying validators) and more
    /// entries of the outlet.
    fn filled() -> (tempfile::TempDir, SledStore) {
        let (dir, store) = open();
        for (step, (source, entry)) in carriers().into_iter().enumerate() {
            let mut state = SourceState {
                url: format!("https://{source}.example/feed"),
                validators: Validators {
                    etag: Some(format!("\"{source}-v1\"")),
                    last_modified: Some("Tue, 01 Dec 2026 10:00:00 GMT".into()),
                    ..Validators::default()
                },
                last_status: Some(200),
                ..SourceState::default()
            };
            let mut entries = vec![entry];
            if source == "outlet" {
                entries.extend((0..5).map(|n| Entry {
                    identity: format!("more-{n}"),
                    title: format!("More {n}"),
                    ..Entry::default()
                }));
            }
            store
                .commit_fetch(
                    source,
                    &mut state,
                    &entries,
                    from_millis(1_700_000_000_000 + 1_000 * step as i64),
                )
                .expect("commits");
        }
        assert_eq!(
            store.count_prefix(b"j:"),
            1,
            "the portal joined two stories"
        );
        (dir, store)
    }

    /// Everything an export shows, sorted: states, entries, joins.
    fn exported(store: &SledStore) -> Vec<String> {
        let mut out = Vec::new();
        Store::export(store, &mut |item| {
            match item {
                Exported::Source {
                    name,
                    state,
                    mut entries,
                } => {
                    entries.sort_by_key(StoredEntry::key);
                    out.push(format!("{name} {state:?} {entries:?}"));
                }
                Exported::Join { kind, joined, join } => {
                    out.push(format!("join {kind:?} {joined:?} {join:?}"));
                }
            }
            Ok(())
        })
        .expect("exports");
        out.sort();
        out
    }

    fn copy(from: &SledStore, to: &SledStore) {
        Store::export(from, &mut |item| Store::import(to, item)).expect("copies");
    }

    /// The stories of every carrier, as readers see them.
    fn stories(store: &SledStore) -> Vec<(EntryKey, EntryKey)> {
        carriers()
            .iter()
            .map(|(source, entry)| {
                let stored = store
                    .entry(source, &EntryKey::new(source, &entry.identity))
                    .expect("reads")
                    .expect("stored");
                (
                    store.story_of(&stored, StoryKind::Link).key,
                    store.story_of(&stored, StoryKind::Text).key,
                )
            })
            .collect()
    }

    #[test]
    fn an_export_imported_into_a_fresh_store_reads_the_same() {
        let (_a, from) = filled();
        let (dir, to) = open();
        copy(&from, &to);
        assert_eq!(exported(&to), exported(&from));
        assert_eq!(stories(&to), stories(&from));
        for (source, _) in carriers() {
            assert_eq!(
                to.source_state(source).expect("reads"),
                from.source_state(source).expect("reads"),
                "{source}"
            );
        }
        // One story by text for all three, by link the outlet's and the portal's.
        let read = stories(&to);
        let outlet = EntryKey::new("outlet", &carriers()[0].1.identity);
        assert!(read.iter().all(|(_, text)| *text == outlet), "{read:?}");
        assert_eq!(read[2].0, outlet);
        // And so it stays once it is read again from disk.
        drop(to);
        let path = dir.path().join("db");
        let to = SledStore::open_when_free(
            &path,
            crate::config::DEFAULT_CACHE,
            std::time::Duration::from_secs(10),
        )
        .expect("reopens");
        assert_eq!(exported(&to), exported(&from));
        assert_eq!(stories(&to), stories(&from));
    }

    #[test]
    fn an_import_replaces_what_the_store_held_of_the_source() {
        let (_a, from) = filled();
        let (_b, to) = open();
        // The destination held other entries of the outlet, and a source of its own.
        let mut state = SourceState::default();
        let stale = Entry {
            identity: "stale".into(),
            title: "Stale".into(),
            ..Entry::default()
        };
        to.commit_fetch(
            "outlet",
            &mut state,
            std::slice::from_ref(&stale),
            from_millis(1_000),
        )
        .expect("commits");
        to.commit_fetch(
            "own",
            &mut SourceState::default(),
            std::slice::from_ref(&stale),
            from_millis(1_000),
        )
        .expect("commits");
        copy(&from, &to);
        assert_eq!(
            to.entry("outlet", &EntryKey::new("outlet", "stale"))
                .expect("reads"),
            None
        );
        assert_eq!(
            to.source_state("outlet").expect("reads").map(|s| s.items),
            Some(6)
        );
        assert!(to
            .entry("own", &EntryKey::new("own", "stale"))
            .expect("reads")
            .is_some());
    }

    #[test]
    fn commits_after_an_import_match_the_imported_stories() {
        let (_a, from) = filled();
        let (_b, to) = open();
        // A commit before the import loads matching's memory (of nothing): the import
        // must make it read again.
        to.commit_fetch(
            "other",
            &mut SourceState::default(),
            &[],
            from_millis(1_000),
        )
        .expect("commits");
        copy(&from, &to);
        let agency = told("https://agency.example/7", "Agency copy", "wire", None);
        to.commit_fetch(
            "agency",
            &mut SourceState::default(),
            std::slice::from_ref(&agency),
            from_millis(1_800_000_000_000),
        )
        .expect("commits");
        let stored = to
            .entry("agency", &EntryKey::new("agency", &agency.identity))
            .expect("reads")
            .expect("stored");
        assert_eq!(
            to.story_of(&stored, StoryKind::Text).key,
            EntryKey::new("outlet", &carriers()[0].1.identity),
            "the agency joins the imported story through the joined wire"
        );
    }

    #[test]
    fn an_entry_of_another_source_is_refused() {
        let (_b, to) = open();
        let stored = StoredEntry {
            source: "b".into(),
            entry: Entry {
                identity: "x".into(),
                ..Entry::default()
            },
            first_seen: from_millis(1_000),
            sort_time: from_millis(1_000),
            same_link_as: None,
            same_text_as: None,
        };
        let err = Store::import(
            &to,
            Exported::Source {
                name: "a".into(),
                state: Box::default(),
                entries: vec![stored],
            },
        )
        .expect_err("refused");
        assert!(err.to_string().contains("entry of source \"b\""), "{err}");
        assert_eq!(to.source_state("a").expect("reads"), None);
    }
}
