//! The store: entries and per-source state in one embedded sled database.
//!
//! Everything lives in one sled tree under key prefixes. A commit writes a response's
//! entries, then the source's index, then the source state that records its
//! ETag/Last-Modified: sled recovers its log in order, so a crash can never record a
//! validator for entries we did not keep ([`SledStore::write_commit`] says why not a `Batch`).
//!
//! | key                 | value                                                        |
//! |---------------------|--------------------------------------------------------------|
//! | `m:schema`          | schema version, decimal                                      |
//! | `s:{source}`        | [`SourceState`], JSON                                        |
//! | `n:{source}`        | the source's index: 32 bytes per entry, newest first         |
//! | `e:{source}\0{key}` | match record (link, fingerprint, stories), [`StoredEntry`] JSON |
//! | `j:{kind}{key}`     | [`stories::Join`] JSON: the story entry `{key}` began, joined |
//!
//! `{key}` is the 16-byte [`EntryKey`] of the entry's identity. A source's index holds, per
//! entry, its sort time (order-inverted, so that byte order is newest first), key and
//! first-seen time: "newest N of these sources" is a k-way merge of indexes, retention reads
//! one value per source, and an entry costs one sled key. sled's memory and start-up time
//! grow with its number of pages, which is about a tenth of its number of keys: with one key
//! per entry (schema 2 had five, schema 1 twenty-six), a million entries fit a small VPS.
//!
//! Story matching looks only at recent entries, through an in-memory index
//! ([`recent::RecentEntries`]) rebuilt from the newest `match_window` entries' match records
//! by the first commit after opening.
//!
//! Stories: when an entry is first stored it is matched against the entries of *other*
//! sources (same canonical link; near-duplicate text) and remembers the first-seen entry of
//! the story it joins ([`StoredEntry::same_link_as`], [`StoredEntry::same_text_as`]). An
//! entry that matches two or more stories joins them into one, recorded under a `j:` key,
//! so that the stories come out the same whatever the order the entries arrived in; a story
//! never holds two entries of one source (see [`stories`]). [`SledStore::story_of`] reads an
//! entry's story. Commits match their entries one at a time, and see the entries and joins
//! of the commits before them that are still being written, so that sources carrying one
//! story at the same moment still meet, as if they had come one after the other.
//!
//! Faults: everything here can be fetched again, so a store that sled cannot open, or whose
//! pages a read finds damaged (sled reports it, or panics: see [`SledStore::guard`]), is moved
//! aside with one log line and replaced by an empty one ([`SledStore::open`],
//! [`SledStore::rebuild`]). A failed write (a full disk) is recorded ([`SledStore::write_failure`]),
//! the states that could not be written are kept in memory in place of the stored ones, and
//! [`SledStore::recover`] reopens sled in place once the disk takes writes again: sled 0.34
//! fails every write after one of its background flusher failed, until it is reopened.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use chrono::{DateTime, Utc};

use crate::config::{DEFAULT_CACHE, DEFAULT_MATCH_WINDOW};
use crate::model::{CommitSummary, Entry, EntryKey, EntryRef, SourceState, StoredEntry, StoryKind};
use crate::store::matcher::Matcher;
use crate::store::stories::Joins;
use crate::store::{Recoveries, Store, StoreError, Visit, PROBE_EVERY};
use commit::*;
use faults::*;
use states::*;

mod codec;
mod commit;
mod copy;
mod faults;
mod reads;
mod retention;
mod schema;
mod states;
mod stories;
#[cfg(test)]
mod tests;

/// The layout version written in `m:schema`; bump it with a migration when the layout changes.
/// 1: a key per entry in each of five indexes and 21 LSH band keys.
/// 2: (never released) the LSH index in memory.
/// 3: one key per entry, one index value per source; see the module documentation.
/// 4: entries leave out empty fields, which a feedmill of schema 3 cannot read (its values
///    read as they are: the migration only writes the version).
/// 5: joined stories under `j:`, and entry values whose match record names the first
///    entries of their stories (format 2), which a feedmill of schema 4 cannot read (values
///    of format 1 read as they are: the migration only writes the version).
pub(crate) const SCHEMA_VERSION: u32 = 5;
/// The store handle; cheap to clone.
#[derive(Clone)]
pub struct SledStore {
    /// The sled database; `None` only while [`SledStore::recover`] reopens it. Behind a lock
    /// because sled 0.34, once a write of its background flusher failed (a full disk), fails
    /// every later write until it is opened again: reopening swaps it in place.
    db: Arc<RwLock<Option<sled::Db>>>,
    path: PathBuf,
    cache: u64,
    /// How many of the most recent entries a new one is matched against.
    match_window: usize,
    /// This process's name (`[store] replica`), which the states it saves carry as
    /// `fetched_by`.
    replica: Option<String>,
    /// What commits share: story matching's index and the entries being written. Held
    /// only while a commit matches its new entries, so that matching sees every earlier
    /// commit; the writing itself runs beside other commits.
    commits: Arc<Mutex<Commits>>,
    /// Signalled when a commit ends, for a commit of the same source waiting its turn.
    commit_ended: Arc<Condvar>,
    /// Held for reading by every write, and for writing by a flush, by retention and by a
    /// reopen: sled 0.34 can deadlock when a flush runs beside a batch (seen with a thousand
    /// sources committing at once), and retention rewrites sources' indexes.
    writes: Arc<RwLock<()>>,
    /// Every join of two stories (see [`stories`]), as stored and as matched by commits
    /// still being written: what readers follow to an entry's story. Read at open; changed
    /// only under the commits lock (joins) and the writes lock (retention).
    joins: Arc<RwLock<Joins>>,
    /// The source states read or written since opening: every render and `/status.json`
    /// read all of them, and ten thousand decodes took most of a render.
    states: Arc<Mutex<States>>,
    /// Whether writes fail or pages are damaged, and the recoveries since opening.
    health: Arc<StoreHealth>,
}

/// Whether the store works: its writes, its pages.
struct StoreHealth {
    /// Why the last write failed, while writes fail; `None` when they work.
    failure: Mutex<Option<String>>,
    /// Why the store was found corrupt since it was opened (a read that sled reported as
    /// corruption, or panicked on), until [`SledStore::rebuild`] replaces it.
    corruption: Mutex<Option<String>>,
    /// What the sources waiting on a recovery watch.
    recovered: tokio::sync::watch::Sender<Recoveries>,
}

impl Default for StoreHealth {
    fn default() -> StoreHealth {
        StoreHealth {
            failure: Mutex::new(None),
            corruption: Mutex::new(None),
            recovered: tokio::sync::watch::Sender::new(Recoveries::default()),
        }
    }
}

impl SledStore {
    /// The store matching new entries against the most recent `window` entries (call before
    /// the first commit; 0 turns story matching off).
    pub(crate) fn with_match_window(mut self, window: usize) -> SledStore {
        self.match_window = window;
        self
    }

    /// The store naming `replica` as the `fetched_by` of the states it saves.
    pub(crate) fn with_replica(mut self, replica: &str) -> SledStore {
        self.replica = Some(replica.to_string());
        self
    }

    /// Opens (or creates) the store at `path`. A store that fails to open or to read (sled
    /// reports corruption, or panics on it) is moved aside with one log line naming where,
    /// and rebuilt empty: it holds nothing that cannot be fetched again. A store in use by
    /// another process, of a newer schema, or on a disk that refuses us (full, read-only,
    /// no permission) is an error, and stays where it is.
    pub fn open(path: &Path) -> Result<SledStore, StoreError> {
        SledStore::open_with_cache(path, DEFAULT_CACHE)
    }

    /// [`SledStore::open`] with a page cache of `cache` bytes.
    pub(crate) fn open_with_cache(path: &Path, cache: u64) -> Result<SledStore, StoreError> {
        match SledStore::open_checked(path, cache) {
            Err(StoreError::Corrupt { reason, .. }) => {
                set_aside(path, &reason)?;
                SledStore::open_checked(path, cache)
            }
            other => other,
        }
    }

    /// Opens the store and reads what every command reads first (the source states), so
    /// that damage there is found now. Entries and indexes are checked as they are read
    /// (see [`SledStore::corruption`]): reading all of them at every open cost about half a
    /// second and 27 MB of sled's cache per hundred thousand entries (in a release build),
    /// which would have halved a warm `feedmill fetch` and taken a daemon of a million
    /// entries over its unit's `MemoryHigh`.
    fn open_checked(path: &Path, cache: u64) -> Result<SledStore, StoreError> {
        let store = SledStore::open_unchecked(path, cache)?;
        store.guard(|| store.read_all(b"s:"))?;
        store.guard(|| store.load_joins())?;
        Ok(store)
    }

    /// Opens sled and checks the schema, reading nothing else.
    fn open_unchecked(path: &Path, cache: u64) -> Result<SledStore, StoreError> {
        let store = SledStore {
            db: Arc::new(RwLock::new(Some(open_sled(path, cache)?))),
            path: path.to_path_buf(),
            cache,
            match_window: DEFAULT_MATCH_WINDOW,
            replica: None,
            commits: Arc::new(Mutex::new(Commits::default())),
            commit_ended: Arc::new(Condvar::new()),
            writes: Arc::new(RwLock::new(())),
            joins: Arc::new(RwLock::new(Joins::default())),
            states: Arc::new(Mutex::new(States::default())),
            health: Arc::new(StoreHealth::default()),
        };
        store
            .guard(|| store.check_schema())
            .map_err(corrupt_unless_refused)?;
        Ok(store)
    }

    /// Reads every key and value under `prefix` once: sled checks each page it reads, and
    /// reports (or panics on) a damaged one.
    fn read_all(&self, prefix: &[u8]) -> Result<u64, StoreError> {
        let mut keys = 0u64;
        for item in self.db()?.scan_prefix(prefix) {
            item.map_err(|err| StoreError::Corrupt {
                path: self.path.clone(),
                reason: describe(&err),
            })?;
            keys += 1;
        }
        Ok(keys)
    }

    /// Why the store was found corrupt since it was opened, until it is rebuilt: a read that
    /// sled reported as corruption, or panicked on inside [`SledStore::guard`]. Damage that
    /// nothing reads does no harm and is not looked for.
    pub(crate) fn corruption(&self) -> Option<String> {
        self.health
            .corruption
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn found_corrupt(&self, reason: &str) {
        let mut corruption = self
            .health
            .corruption
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if corruption.is_none() {
            // Said once, by the line that names where it goes (see `set_aside`).
            tracing::debug!(store = %self.path.display(), "the store is corrupt ({reason})");
            *corruption = Some(reason.to_string());
        }
    }

    /// Gives up this store as corrupt (a read that sled failed or panicked on): once no
    /// write is under way and no handle on the old one is left, moves it aside with one log
    /// line as [`SledStore::open`] does and puts an empty one in its place, for every clone of
    /// this handle. Every source must then be fetched again ([`Recoveries::rebuilds`]).
    /// Blocking.
    pub(crate) fn rebuild(&self, reason: &str) -> Result<(), StoreError> {
        let _alone = self.writes.write().unwrap_or_else(|p| p.into_inner());
        self.swap_db(Some(reason))?;
        Ok(())
    }

    /// Closes sled and opens it again, under the writes lock (the caller holds it): moved
    /// aside first when `corrupt` says why, or when it no longer opens. Returns whether it
    /// was replaced by an empty store.
    fn swap_db(&self, corrupt: Option<&str>) -> Result<bool, StoreError> {
        drop(self.db.write().unwrap_or_else(|p| p.into_inner()).take());
        // A reader may still hold the old handle for a moment; sled lets go of its file
        // lock when the last one is dropped.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let reopened = loop {
            match open_sled(&self.path, self.cache) {
                Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Ok(db) => match corrupt {
                    None => break Ok(db),
                    // Free now; closed again to be moved.
                    Some(reason) => {
                        drop(db);
                        break Err(reason.to_string());
                    }
                },
                Err(StoreError::Corrupt { reason, .. }) => break Err(reason),
                Err(err) => return Err(err),
            }
        };
        let (db, rebuilt) = match reopened {
            Ok(db) => (db, false),
            Err(reason) => {
                set_aside(&self.path, &reason)?;
                (open_sled(&self.path, self.cache)?, true)
            }
        };
        *self.db.write().unwrap_or_else(|p| p.into_inner()) = Some(db);
        {
            let mut states = self.cached_states();
            states.saved.clear();
            if rebuilt {
                states.unsaved.clear();
            }
        }
        {
            // Read again from what the reopened store holds, by the next commit.
            // No commit is under way (the caller holds the writes lock): nothing is pending.
            let mut commits = self.commits.lock().unwrap_or_else(|p| p.into_inner());
            commits.matcher = Matcher::new(self.match_window);
            commits.loaded = false;
        }
        self.guard(|| self.check_schema())?;
        self.guard(|| self.load_joins())?;
        if rebuilt {
            *self
                .health
                .corruption
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = None;
            *self
                .health
                .failure
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = None;
            self.health.recovered.send_modify(|r| r.rebuilds += 1);
        }
        Ok(rebuilt)
    }

    /// Runs `work` on the store, a panic of sled's included: a panic (sled panics on some
    /// damaged pages rather than report them) becomes [`StoreError::Corrupt`], and its
    /// message goes into that error instead of a panic report on stderr.
    /// The damage is recorded for [`SledStore::corruption`].
    pub(crate) fn guard<T>(
        &self,
        work: impl FnOnce() -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let result = guarded(&self.path, work);
        if let Err(StoreError::Corrupt { reason, .. }) = &result {
            self.found_corrupt(reason);
        }
        result
    }

    /// The sled database, unless it is being reopened.
    fn db(&self) -> Result<sled::Db, StoreError> {
        self.db
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or_else(|| StoreError::Reopening(self.path.clone()))
    }

    /// A failed read; sled's `Corruption` is recorded for [`SledStore::corruption`].
    fn db_error(&self, source: sled::Error) -> StoreError {
        if matches!(source, sled::Error::Corruption { .. }) {
            self.found_corrupt(&describe(&source));
        }
        read_error(&self.path, &source)
    }

    /// A failed write: recorded as the store's health until [`SledStore::recover`] succeeds.
    fn write_error(&self, source: sled::Error) -> StoreError {
        let reason = describe(&source);
        let mut failure = self
            .health
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if failure.is_none() {
            tracing::error!(store = %self.path.display(), error = %reason, "a store write failed; sources back off until writes work again (checked every {} s)", PROBE_EVERY.as_secs());
        }
        *failure = Some(reason.clone());
        StoreError::Write {
            path: self.path.clone(),
            reason,
        }
    }

    /// Why writes fail, while they do (`None` when they work): `/healthz` answers 503 with it.
    pub(crate) fn write_failure(&self) -> Option<String> {
        self.health
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes with each recovery ([`SledStore::recover`], [`SledStore::rebuild`]).
    pub(crate) fn recoveries(&self) -> tokio::sync::watch::Receiver<Recoveries> {
        self.health.recovered.subscribe()
    }

    /// After a write failure: checks whether the store can be written again and, if so,
    /// makes it whole. The file system is tried first (a small file written, synced and
    /// removed), so that nothing is closed while the disk is still full; then sled, which
    /// after a failure of its background writer fails every write until it is reopened:
    /// then it is reopened in place, once no write is under way. What the failure cost
    /// (writes sled had accepted but not yet put on disk) is as a crash would have lost:
    /// the states cached since, and what matching remembers, are forgotten and read again
    /// from disk. Blocking.
    pub(crate) fn recover(&self) -> Result<(), StoreError> {
        probe_filesystem(&self.path).map_err(|err| self.write_error(sled::Error::Io(err)))?;
        let _alone = self.writes.write().unwrap_or_else(|p| p.into_inner());
        if self.probe_write().is_err() {
            tracing::info!(store = %self.path.display(), "reopening the store after a write failure");
            if self.swap_db(None)? {
                // It no longer opened: moved aside and replaced, every source fetched again.
                return Ok(());
            }
            self.probe_write()?;
        } else {
            // Matching remembers the entries of the commits that failed as if they were
            // stored (and they hide older entries from it): read it again from the store.
            let mut commits = self.commits.lock().unwrap_or_else(|p| p.into_inner());
            commits.loaded = false;
        }
        *self
            .health
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        self.health.recovered.send_modify(|r| r.writes += 1);
        tracing::info!(store = %self.path.display(), "store writes work again; sources that failed to store are fetched again");
        Ok(())
    }

    /// One small write that must reach the disk: the schema version, written again.
    fn probe_write(&self) -> Result<(), StoreError> {
        let db = self.db()?;
        let version = db
            .get(b"m:schema")
            .map_err(|e| self.db_error(e))?
            .unwrap_or_else(|| SCHEMA_VERSION.to_string().as_bytes().into());
        db.insert(b"m:schema", version)
            .map_err(|e| self.write_error(e))?;
        db.flush().map_err(|e| self.write_error(e))?;
        Ok(())
    }

    /// The number of keys under a prefix.
    #[cfg(test)]
    pub(crate) fn count_prefix(&self, prefix: &[u8]) -> usize {
        self.db().map_or(0, |db| db.scan_prefix(prefix).count())
    }

    /// Flushes, closes the store and opens it once more, so that sled writes its snapshot
    /// now: sled 0.34 writes one only when it opens, and replays the log written since the
    /// last one, which after a large `feedmill fetch` took a second per gigabyte of the next
    /// start. Every clone of this handle is closed with it. If sled's file lock lingers
    /// (another handle to the same `sled::Db` is still alive), this only flushes.
    fn close_with_snapshot(&self) -> Result<(), StoreError> {
        {
            // Flushed and taken under the writes lock: no write slips in between.
            let _alone = self.writes.write().unwrap_or_else(|p| p.into_inner());
            let db = self.db()?;
            db.flush().map_err(|e| self.write_error(e))?;
            drop(db);
            let closed = self.db.write().unwrap_or_else(|p| p.into_inner()).take();
            drop(closed);
        }
        // sled alone: the store was read in full when it was opened.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match open_sled(&self.path, self.cache) {
                Ok(db) => {
                    return db.flush().map(|_| ()).map_err(|err| StoreError::Write {
                        path: self.path.clone(),
                        reason: describe(&err),
                    })
                }
                Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(StoreError::Locked(_)) => return Ok(()),
                Err(err) => return Err(err),
            }
        }
    }

    /// [`SledStore::open_with_cache`], waiting up to `wait` while the store is locked: sled's
    /// flusher thread lets go of the file lock a moment after the last handle is dropped.
    #[cfg(test)]
    pub(crate) fn open_when_free(
        path: &Path,
        cache: u64,
        wait: std::time::Duration,
    ) -> Result<SledStore, StoreError> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match SledStore::open_with_cache(path, cache) {
                Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => return other,
            }
        }
    }

    /// Waits until everything written so far is on disk. Alone (see [`SledStore::writes`]):
    /// sled 0.34 can deadlock when a flush runs beside a batch.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        let _alone = self.writes.write().unwrap_or_else(|p| p.into_inner());
        self.db()?
            .flush()
            .map(|_| ())
            .map_err(|e| self.write_error(e))
    }
}

impl Store for SledStore {
    fn source_state(&self, source: &str) -> Result<Option<SourceState>, StoreError> {
        self.guard(|| SledStore::source_state(self, source))
    }

    fn save_state(&self, source: &str, state: &SourceState) -> Result<(), StoreError> {
        if self.replica.is_some() && state.fetched_by != self.replica {
            let stamped = SourceState {
                fetched_by: self.replica.clone(),
                ..state.clone()
            };
            return self.guard(|| SledStore::save_state(self, source, &stamped));
        }
        self.guard(|| SledStore::save_state(self, source, state))
    }

    fn commit_fetch(
        &self,
        source: &str,
        state: &mut SourceState,
        entries: &[Entry],
        now: DateTime<Utc>,
    ) -> Result<CommitSummary, StoreError> {
        if self.replica.is_some() {
            state.fetched_by.clone_from(&self.replica);
        }
        self.guard(|| SledStore::commit_fetch(self, source, state, entries, now))
    }

    fn entry(&self, source: &str, key: &EntryKey) -> Result<Option<StoredEntry>, StoreError> {
        self.guard(|| SledStore::entry(self, source, key))
    }

    fn story_of(&self, stored: &StoredEntry, kind: StoryKind) -> EntryRef {
        SledStore::story_of(self, stored, kind)
    }

    fn visit_newest(
        &self,
        sources: &[String],
        newest: &dyn Fn(&str) -> Option<DateTime<Utc>>,
        visit: &mut dyn FnMut(StoredEntry) -> Visit,
    ) -> Result<(), StoreError> {
        self.guard(|| SledStore::visit_newest(self, sources, newest, visit))
    }

    fn prune(
        &self,
        cutoff: Option<DateTime<Utc>>,
        keep: Option<usize>,
    ) -> Result<HashMap<String, usize>, StoreError> {
        self.guard(|| SledStore::prune(self, cutoff, keep))
    }

    // A flush writes: a panic there is no sign of a damaged store (nothing is read), so it
    // is not taken for one (`guard` would have the store rebuilt).
    fn flush(&self) -> Result<(), StoreError> {
        self.flush_blocking()
    }

    fn close(&self) -> Result<(), StoreError> {
        self.close_with_snapshot()
    }

    fn corruption(&self) -> Option<String> {
        SledStore::corruption(self)
    }

    fn rebuild(&self, reason: &str) -> Result<(), StoreError> {
        SledStore::rebuild(self, reason)
    }

    fn write_failure(&self) -> Option<String> {
        SledStore::write_failure(self)
    }

    fn recover(&self) -> Result<(), StoreError> {
        self.guard(|| SledStore::recover(self))
    }

    fn recoveries(&self) -> tokio::sync::watch::Receiver<Recoveries> {
        SledStore::recoveries(self)
    }

    fn export(
        &self,
        visit: &mut dyn FnMut(crate::store::Exported) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        SledStore::export(self, visit)
    }

    fn import(&self, item: crate::store::Exported) -> Result<(), StoreError> {
        SledStore::import(self, item)
    }
}
