//! The commit protocol: one response of one source, written entries first, state last.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, MutexGuard};

use chrono::{DateTime, Utc};
use rustc_hash::{FxHashMap, FxHashSet};

use super::{codec::*, SledStore};
use crate::model::{CommitSummary, Entry, EntryKey, EntryRef, SourceState, StoredEntry, StoryKind};
use crate::store::matching::*;
use crate::store::recent::{MatchKeys, RecentEntries};
use crate::store::stories::{Join, Members};
use crate::store::StoreError;

/// The state commits share; see [`SledStore::commits`].
#[derive(Default)]
pub(super) struct Commits {
    /// The recent entries' matching index, loaded by the first commit after opening.
    pub(super) recent: Option<RecentEntries>,
    /// The sources of the recent stories, loaded with `recent`.
    pub(super) members: Members,
    /// Joins matched by a commit whose write failed: written by the next commit.
    pub(super) unwritten: Vec<(StoryKind, EntryKey, Join)>,
    /// Entries a commit has matched but not yet written: a commit beside it finds them here.
    pub(super) pending: FxHashMap<EntryKey, Arc<Written>>,
    /// Sources with a commit in flight: a source commits one response at a time.
    pub(super) committing: FxHashSet<String>,
}

/// An entry as a commit writes it.
pub(super) struct Written {
    pub(super) stored: StoredEntry,
    pub(super) record: MatchRecord,
    /// Not stored before.
    pub(super) new: bool,
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
        for key in &self.written {
            commits.pending.remove(key);
        }
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
        if guard.recent.is_none() {
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
            let mut recent = RecentEntries::new(self.match_window);
            let mut members = Members::default();
            let joins = self.joins.read().unwrap_or_else(|p| p.into_inner());
            // Oldest first: a later entry wins a shared band.
            for Reverse((seen, source, key)) in newest.into_sorted_vec().into_iter().rev() {
                let Some(value) = db
                    .get(entry_key(&source, &key))
                    .map_err(|e| self.db_error(e))?
                else {
                    continue;
                };
                let Some((record, json)) = split_entry(&value) else {
                    continue;
                };
                let seq = recent.insert(&source, key, seen, &MatchKeys::of(&record));
                if seq.is_none() {
                    // Never a candidate: nothing to know of its stories.
                    continue;
                }
                let firsts = match record.firsts {
                    Some(firsts) => firsts,
                    None => decode::<NamedFirsts>(json, "entry").map_or_else(
                        || [None, None],
                        |named| [named.same_link_as, named.same_text_as],
                    ),
                };
                let me = EntryRef {
                    source: source.to_string(),
                    key,
                    first_seen: from_millis(seen),
                };
                count_member(&mut members, &mut recent, &joins, &me, &firsts, seq);
            }
            drop(joins);
            guard.recent = Some(recent);
            guard.members = members;
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
            changed.push((position, entry, key, old, Prepared::of(entry)));
        }
        // Matching, under the commits lock: each new entry joins the stories of every commit
        // before it, written or still pending.
        let mut written = Vec::with_capacity(changed.len());
        let mut summary = CommitSummary::default();
        let mut joined = Vec::new();
        {
            let mut commits = self.lock_commits()?;
            // The joins of a commit whose write failed go with this one.
            joined.append(&mut commits.unwritten);
            let matched = self.match_entries(
                &mut commits,
                source,
                changed,
                now,
                &mut turn,
                &mut summary,
                &mut written,
                &mut joined,
            );
            if let Err(err) = matched {
                commits.unwritten.append(&mut joined);
                return Err(err);
            }
            summary.joined.retain(|other| other != source);
            summary.joined.sort_unstable();
            summary.joined.dedup();
        }
        if let Err(err) = self.write_commit(source, state, index, &written, &joined) {
            // Its entries are fetched again (their validators were not saved), but the
            // stories they joined are joined in memory already: the next commit writes that.
            self.commits
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .unwritten
                .append(&mut joined);
            return Err(err);
        }
        Ok(summary)
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
