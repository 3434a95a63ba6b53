//! The commit protocol: one response of one source, written entries first, state last.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, MutexGuard};

use chrono::{DateTime, Utc};
use rustc_hash::FxHashSet;

use super::{codec::*, SledStore};
use crate::model::{CommitSummary, Entry, EntryKey, EntryRef, SourceState, StoryKind};
use crate::store::matcher::{Change, Matcher, Written};
use crate::store::matching::NamedFirsts;
use crate::store::stories::Join;
use crate::store::StoreError;

/// The state commits share; see [`SledStore::commits`].
pub(super) struct Commits {
    /// Story matching's state (see [`crate::store::matcher`]).
    pub(super) matcher: Matcher,
    /// Whether `matcher` remembers the store's recent entries: loaded by the first commit
    /// after opening, and again after the store was reopened.
    pub(super) loaded: bool,
    /// Sources with a commit in flight: a source commits one response at a time.
    pub(super) committing: FxHashSet<String>,
}

impl Default for Commits {
    fn default() -> Commits {
        Commits {
            // Sized when it is loaded: the window is set after opening.
            matcher: Matcher::new(0),
            loaded: false,
            committing: FxHashSet::default(),
        }
    }
}

/// A source's turn to commit (see [`SledStore::commit_turn`]); ending it forgets the pending
/// entries it wrote, written or not (a failed write is fetched again in full).
pub(super) struct CommitTurn<'a> {
    pub(super) store: &'a SledStore,
    pub(super) source: String,
    pub(super) written: Vec<EntryKey>,
}

impl Drop for CommitTurn<'_> {
    fn drop(&mut self) {
        let mut commits = self.store.commits.lock().unwrap_or_else(|p| p.into_inner());
        commits.matcher.forget_pending(&self.written);
        commits.committing.remove(&self.source);
        drop(commits);
        self.store.commit_ended.notify_all();
    }
}

impl SledStore {
    /// Takes the commits lock and, on first use, loads the matching index of the newest
    /// `match_window` entries by first-seen time (their match records, not their JSON, but
    /// for values written before schema 5), and the sources of their stories.
    pub(super) fn lock_commits(&self) -> Result<MutexGuard<'_, Commits>, StoreError> {
        let mut guard = self.commits.lock().unwrap_or_else(|p| p.into_inner());
        if !guard.loaded {
            // The newest WINDOW (first seen, source, key), with a bounded min-heap.
            let mut newest: BinaryHeap<Reverse<(i64, Arc<str>, EntryKey)>> = BinaryHeap::new();
            let db = self.db()?;
            for item in db.scan_prefix(b"n:") {
                let (k, v) = item.map_err(|e| self.db_error(e))?;
                let source: Arc<str> = String::from_utf8_lossy(&k[2..]).into();
                for indexed in decode_index(&v) {
                    newest.push(Reverse((indexed.seen_ms, source.clone(), indexed.key)));
                    if newest.len() > self.match_window {
                        newest.pop();
                    }
                }
            }
            let matcher = &mut guard.matcher;
            matcher.reset(self.match_window);
            let joins = self.joins.read().unwrap_or_else(|p| p.into_inner());
            // Oldest first: a later entry wins a shared band.
            for Reverse((seen, source, key)) in newest.into_sorted_vec().into_iter().rev() {
                let Some(value) = db
                    .get(entry_key(&source, &key))
                    .map_err(|e| self.db_error(e))?
                else {
                    continue;
                };
                let Some((mut record, json)) = split_entry(&value) else {
                    continue;
                };
                if record.firsts.is_none() {
                    // Written before schema 5: its JSON names them.
                    record.firsts = Some(decode::<NamedFirsts>(json, "entry").map_or_else(
                        || [None, None],
                        |named| [named.same_link_as, named.same_text_as],
                    ));
                }
                let me = EntryRef {
                    source: source.to_string(),
                    key,
                    first_seen: from_millis(seen),
                };
                matcher.remember(&joins, &me, &record);
            }
            drop(joins);
            guard.loaded = true;
            // Reading a hundred thousand entries went through sled's cache and the heap.
            crate::memory::trim();
        }
        Ok(guard)
    }

    /// Writes the entries of one response, then the source's index, then its new state
    /// with the validators (see [`SledStore::write_commit`]).
    /// Known entries are updated in place (keeping their first-seen time and story), new ones
    /// added and matched against other sources' stories; entries absent from `entries` are
    /// left alone. `state.items` is kept up to date. An entry stored by a commit that a crash
    /// cut short before the index was written is stored anew by the next commit that sees it.
    pub fn commit_fetch(
        &self,
        source: &str,
        state: &mut SourceState,
        entries: &[Entry],
        now: DateTime<Utc>,
    ) -> Result<CommitSummary, StoreError> {
        let _writing = self.writes.read().unwrap_or_else(|p| p.into_inner());
        let mut turn = self.commit_turn(source);
        // The source's entries, index and state are ours until the turn ends. First the
        // costly part that needs no other source: which entries changed, their match records.
        let index = self.index(source)?;
        let indexed: FxHashSet<EntryKey> = index.iter().map(|i| i.key).collect();
        let mut changed = Vec::new();
        for (position, entry) in entries.iter().enumerate() {
            let key = EntryKey::new(source, &entry.identity);
            // An entry outside the index is new: either never stored, or written by a
            // commit that a crash cut short before its index, and never shown.
            let old = if indexed.contains(&key) {
                self.entry(source, &key)?
            } else {
                None
            };
            if old.as_ref().is_some_and(|old| old.entry == *entry) {
                continue;
            }
            changed.push(Change::new(position, entry, key, old));
        }
        // Matching, under the commits lock: each new entry joins the stories of every commit
        // before it, written or still pending.
        let matched = {
            let mut commits = self.lock_commits()?;
            let matched = commits
                .matcher
                .match_commit(source, changed, now, &self.joins, self)?;
            turn.written
                .extend(matched.written.iter().map(|(key, _)| *key));
            matched
        };
        if let Err(err) = self.write_commit(source, state, index, &matched.written, &matched.joins)
        {
            // Its entries are fetched again (their validators were not saved), but the
            // stories they joined are joined in memory already: the next commit writes that.
            self.commits
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .matcher
                .keep_unwritten(matched.joins);
            return Err(err);
        }
        Ok(matched.summary)
    }

    /// Waits for `source`'s turn to commit: one commit per source at a time, so that its
    /// entries, index and state are read and written by one commit alone.
    pub(super) fn commit_turn(&self, source: &str) -> CommitTurn<'_> {
        let mut commits = self.commits.lock().unwrap_or_else(|p| p.into_inner());
        while commits.committing.contains(source) {
            commits = self
                .commit_ended
                .wait(commits)
                .unwrap_or_else(|p| p.into_inner());
        }
        commits.committing.insert(source.to_string());
        CommitTurn {
            store: self,
            source: source.to_string(),
            written: Vec::new(),
        }
    }

    /// Writes a commit's joins of stories and matched entries, then the source's index, then
    /// its state. One
    /// write each, not one sled batch: sled 0.34 runs a batch alone, holding up every other
    /// read and write, and commits stood in line for it. The order keeps the promise a batch
    /// kept: sled recovers its log in order (it never recovers a segment whose predecessor
    /// was lost; see its `pagecache/segment.rs`), so validators are never ahead of the
    /// entries (see [`SledStore::commit_fetch`] for entries written without their index).
    pub(super) fn write_commit(
        &self,
        source: &str,
        state: &mut SourceState,
        mut index: Vec<Indexed>,
        written: &[(EntryKey, Arc<Written>)],
        joined: &[(StoryKind, EntryKey, Join)],
    ) -> Result<(), StoreError> {
        let db = self.db()?;
        // The joins first: an entry that names the story they made is never on disk
        // without them.
        for (kind, key, join) in joined {
            db.insert(
                join_key(*kind, key),
                serde_json::to_vec(join).unwrap_or_default(),
            )
            .map_err(|e| self.write_error(e))?;
        }
        for (key, entry) in written {
            if !entry.new {
                index.retain(|i| i.key != *key);
            }
            index.push(Indexed::of(&entry.stored));
            state.newest = state.newest.max(Some(entry.stored.sort_time));
            db.insert(
                entry_key(source, key),
                encode_entry(&entry.stored, &entry.record),
            )
            .map_err(|e| self.write_error(e))?;
        }
        if !written.is_empty() {
            index.sort_unstable();
            db.insert(index_key(source), encode_index(&index))
                .map_err(|e| self.write_error(e))?;
        }
        // The index is the truth; a count kept by adding up could drift after a crash.
        state.items = index.len() as u64;
        // Not flushed here: sled flushes every 500 ms, and a commit lost to a crash takes its
        // validators with it, so the next fetch is unconditional and stores it again. A flush
        // per commit was a quarter of a cold refresh's time.
        db.insert(
            state_key(source),
            serde_json::to_vec(state).unwrap_or_default(),
        )
        .map_err(|e| self.write_error(e))?;
        self.cache_state(source, state);
        Ok(())
    }
}
