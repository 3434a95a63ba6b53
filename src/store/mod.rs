//! The store: what the rest of feedmill needs of a database of entries and source states,
//! as one trait ([`Store`]), and its engines.
//!
//! - [`sled`] (the default): one embedded sled database; its module says how it lays out
//!   keys, commits, matches stories and recovers from faults.
//! - [`matching`], [`recent`] and [`stories`]: story matching's engine-independent parts
//!   (match records, the in-memory index of recent entries, joins of stories), which every
//!   engine shares.
//!
//! The invariants every engine keeps: one identity per item and no duplicates; a commit
//! writes a response's entries before the source state that records its validators, so that
//! a crash never records validators for entries not kept; a read never panics on what the
//! engine holds; memory is bounded whatever the number of entries.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::config::{Engine, StoreConfig};
use crate::model::{CommitSummary, Entry, EntryKey, EntryRef, SourceState, StoredEntry, StoryKind};

pub(crate) mod copy;
pub(crate) mod matcher;
pub(crate) mod matching;
pub(crate) mod postgres;
pub(crate) mod recent;
pub mod sled;
pub(crate) mod stories;

/// A store error, with the store's path where it helps.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (usually the running daemon) holds the store.
    #[error("the store {} is in use by another feedmill process (is the daemon running?); stop it or point [store] path elsewhere", .0.display())]
    Locked(PathBuf),
    /// The store was written by a newer feedmill.
    #[error("the store {} has schema version {found}, newer than this feedmill understands ({understood}); upgrade feedmill", path.display())]
    NewerSchema {
        /// The store directory.
        path: PathBuf,
        /// The version found.
        found: u32,
        /// The newest version this build reads.
        understood: u32,
    },
    /// The store cannot be read as it is: sled reported corruption, or panicked on it.
    /// Opening moves such a store aside and starts afresh; this error is seen only when that
    /// failed too.
    #[error("the store {} is corrupt ({reason})", path.display())]
    Corrupt {
        /// The store directory.
        path: PathBuf,
        /// What was wrong, in words.
        reason: String,
    },
    /// A corrupt store could not be moved aside.
    #[error("the store {} is corrupt ({reason}) and could not be moved aside: {source}; move or delete it by hand (everything in it is fetched again)", path.display())]
    SetAside {
        /// The store directory.
        path: PathBuf,
        /// Why it is corrupt.
        reason: String,
        /// Why it could not be moved.
        source: std::io::Error,
    },
    /// The store is being reopened after a write failure (for a moment).
    #[error("the store {} is being reopened after a write failure; try again in a moment", .0.display())]
    Reopening(PathBuf),
    /// A write failed: the disk is full, read-only, or failing.
    #[error("cannot write the store {}: {reason}; free space on its disk (or fix the disk)", path.display())]
    Write {
        /// The store directory.
        path: PathBuf,
        /// What the engine said, in words.
        reason: String,
    },
    /// A blocking store task died.
    #[error("a store task failed: {0}")]
    Task(String),
    /// The system refused the store's files (permissions, a read-only or full disk):
    /// nothing is wrong with what the store holds.
    #[error("store {}: {reason}", path.display())]
    Refused {
        /// The store directory.
        path: PathBuf,
        /// What the system said, in words.
        reason: String,
    },
    /// The database cannot be reached now (it went away, or refuses connections); callers
    /// wait for it rather than count a failure.
    #[error("cannot reach the database {url}: {reason}; check that the server is up and that [store] url (host, port, sslmode, sslrootcert) is right")]
    Unreachable {
        /// `[store] url`.
        url: String,
        /// What the connection said.
        reason: String,
    },
    /// The database refused a query.
    #[error("database {url}: {reason}")]
    Database {
        /// `[store] url`.
        url: String,
        /// What the database said.
        reason: String,
    },
    /// The database was migrated by a newer feedmill.
    #[error("the database {url} has schema version {found}, newer than this feedmill understands ({understood}); upgrade feedmill")]
    NewerDatabase {
        /// `[store] url`.
        url: String,
        /// The version found.
        found: i32,
        /// The newest version this build reads.
        understood: i32,
    },
    /// The engine failed to read.
    #[error("store {}: {reason}", path.display())]
    Db {
        /// The store directory.
        path: PathBuf,
        /// What the engine said, in words.
        reason: String,
    },
}

impl StoreError {
    /// What went wrong, in words, without the store's path: what a source's `last_error`
    /// shows after a write failed ("No space left on device (os error 28)").
    pub(crate) fn reason(&self) -> String {
        match self {
            StoreError::Write { reason, .. }
            | StoreError::Database { reason, .. }
            | StoreError::Db { reason, .. }
            | StoreError::Refused { reason, .. } => reason.clone(),
            StoreError::Corrupt { reason, .. } => format!("the store is corrupt ({reason})"),
            other => other.to_string(),
        }
    }
}

/// How often a daemon whose store writes fail checks whether they work again
/// ([`Store::recover`]). Sources back off as after a failed fetch meanwhile; when writes
/// work again, those whose last attempt failed to store are fetched again at once.
pub(crate) const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The recoveries of a store since it was opened (see [`Store::recoveries`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Recoveries {
    /// Recoveries from a write failure ([`Store::recover`]): what was stored is still there.
    pub(crate) writes: u64,
    /// Corrupt stores replaced by an empty one ([`Store::rebuild`]): every source must be
    /// fetched again.
    pub(crate) rebuilds: u64,
}

/// What a visitor of [`Store::visit_newest`] wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visit {
    /// The next entry.
    Next,
    /// No more entries of this entry's source.
    DropSource,
    /// Nothing more.
    Stop,
}

/// What feedmill needs of a store. Methods block (the sled engine reads and writes its
/// files in the calling thread): async code calls them from `spawn_blocking`. An engine
/// catches its own panics on damaged data and answers [`StoreError::Corrupt`].
pub(crate) trait Store: Send + Sync {
    /// The saved state of `source`, if it was ever fetched.
    fn source_state(&self, source: &str) -> Result<Option<SourceState>, StoreError>;

    /// Saves the state of `source` alone (a failure, a 304). When the write fails, the state
    /// is still what [`Store::source_state`] answers, until a write of it works.
    fn save_state(&self, source: &str, state: &SourceState) -> Result<(), StoreError>;

    /// Stores the entries of one response of `source`, matched against other sources'
    /// stories, then `state` (whose `items` and `newest` it keeps up to date): the entries
    /// first, so that the validators in `state` are never ahead of them.
    fn commit_fetch(
        &self,
        source: &str,
        state: &mut SourceState,
        entries: &[Entry],
        now: DateTime<Utc>,
    ) -> Result<CommitSummary, StoreError>;

    /// One stored entry.
    fn entry(&self, source: &str, key: &EntryKey) -> Result<Option<StoredEntry>, StoreError>;

    /// The first entry of the story `stored` is part of, by link or by text, after every
    /// join: entries of one story answer the same, whichever order they came in.
    fn story_of(&self, stored: &StoredEntry, kind: StoryKind) -> EntryRef;

    /// Shows the entries of `sources` to `visit`, newest first (ties by source, then key),
    /// until it says stop. `newest` gives each source's [`SourceState::newest`] where known,
    /// so that a source is read only once the merge reaches its newest time.
    fn visit_newest(
        &self,
        sources: &[String],
        newest: &dyn Fn(&str) -> Option<DateTime<Utc>>,
        visit: &mut dyn FnMut(StoredEntry) -> Visit,
    ) -> Result<(), StoreError>;

    /// Retention: removes entries first seen before `cutoff`, and beyond the newest `keep`
    /// of each source; answers how many it removed per source.
    fn prune(
        &self,
        cutoff: Option<DateTime<Utc>>,
        keep: Option<usize>,
    ) -> Result<HashMap<String, usize>, StoreError>;

    /// Waits until everything written so far is durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// Flushes and closes the store for good (the last thing a command does).
    fn close(&self) -> Result<(), StoreError>;

    /// Why the store was found damaged since it was opened, if it was.
    fn corruption(&self) -> Option<String>;

    /// Replaces a damaged store with an empty one (everything in it is fetched again).
    fn rebuild(&self, reason: &str) -> Result<(), StoreError>;

    /// Why writes fail, while they fail.
    fn write_failure(&self) -> Option<String>;

    /// Tries to make writes work again after [`Store::write_failure`].
    fn recover(&self) -> Result<(), StoreError>;

    /// The recoveries since opening, for the sources waiting on one.
    fn recoveries(&self) -> tokio::sync::watch::Receiver<Recoveries>;

    /// Claims the due fetch of `source` for this process: with several replicas, exactly
    /// one of them fetches each due time (see [`Claim`]). The claim ends with the next
    /// [`Store::save_state`] or [`Store::commit_fetch`] of the source, or [`Store::release`],
    /// else when its lease runs out. One process alone always wins.
    fn claim(&self, _source: &str, _request: &ClaimRequest) -> Result<Claim, StoreError> {
        Ok(Claim::Won)
    }

    /// Gives up this process's claim on `source` without fetching it (a stopped task).
    fn release(&self, _source: &str) -> Result<(), StoreError> {
        Ok(())
    }

    /// Whether the store's calls wait on a server over the network rather than on this
    /// machine's CPU and disk. A refresh then holds no CPU slot while it commits (the
    /// commit waits for the database, not for a core) and first refreshes are bounded by
    /// `[fetch] concurrency` alone (the slots for them bound an embedded store's garbage).
    fn is_remote(&self) -> bool {
        false
    }

    /// Why the store cannot be reached now (a database that went away), while it cannot;
    /// the receiver is told when that changes. An embedded store is always reachable.
    fn outage(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        tokio::sync::watch::channel(None).1
    }

    /// Sends the names of sources whose entries another process changed, as they change
    /// ([`EVERY_SOURCE`] when changes may have been missed), for as long as the store is
    /// open. One process alone has no one else's changes to hear of.
    fn watch_changes(&self, _changed: tokio::sync::mpsc::UnboundedSender<String>) {}

    /// When the outputs of `source` last changed, by the store's own account, where the
    /// store keeps one: replicas that render at that time make the same bytes, ETags and
    /// Last-Modified. `None`: documents are rendered at the time of rendering.
    fn changed_at(&self, _source: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        Ok(None)
    }

    /// Figures for `/metrics`: the connection pool and the leases.
    fn figures(&self) -> EngineFigures {
        EngineFigures::default()
    }

    /// Shows every source's state and entries to `visit`, one source at a time, then every
    /// join of stories (`feedmill store copy`).
    fn export(
        &self,
        visit: &mut dyn FnMut(Exported) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;

    /// Writes what [`Store::export`] showed, as it was: every entry keeps its first-seen
    /// time, sort time and story, every state its validators. Replaces what the store held
    /// of those sources.
    fn import(&self, item: Exported) -> Result<(), StoreError>;
}

/// The name [`Store::watch_changes`] sends when any source may have changed.
pub(crate) const EVERY_SOURCE: &str = "*";

/// What a claim asks (see [`Store::claim`]).
#[derive(Debug, Clone)]
pub(crate) struct ClaimRequest {
    /// The time the claimer believes it is; a source whose stored `next_fetch` is later was
    /// fetched by another replica already.
    pub(crate) now: DateTime<Utc>,
    /// The host of the source's URL, whose fetches in flight across replicas are held to
    /// `per_host`; `None` for `file:` sources.
    pub(crate) host: Option<String>,
    /// `[fetch] per_host`.
    pub(crate) per_host: usize,
    /// `[store] lease`.
    pub(crate) lease: std::time::Duration,
    /// The digest of the source's config as the claimer has it: a stored state saved under
    /// another config is due whatever its `next_fetch` (a changed URL is fetched at once).
    pub(crate) fingerprint: String,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Claim {
    /// This process fetches the source now.
    Won,
    /// This process fetches the source now, in place of a replica whose lease ran out.
    TakenOver,
    /// Another replica fetched it already: its stored state says when it is due next.
    Fetched(Option<Box<SourceState>>),
    /// Another replica is fetching it, or its host has `per_host` fetches in flight: ask
    /// again after this long (the lease's end, at most).
    Busy(std::time::Duration),
}

/// The engine's figures for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct EngineFigures {
    /// Connections open in the pool.
    pub(crate) pool_size: u64,
    /// Of those, idle.
    pub(crate) pool_idle: u64,
    /// The pool's limit.
    pub(crate) pool_max: u64,
    /// Leases this process holds now.
    pub(crate) leases_held: u64,
}

/// One piece of a store's contents, as [`Store::export`] shows it.
#[derive(Debug, Clone)]
pub(crate) enum Exported {
    /// A source: its state and every entry, in no particular order.
    Source {
        /// The source's name.
        name: String,
        /// Its state.
        state: Box<SourceState>,
        /// Its entries.
        entries: Vec<StoredEntry>,
    },
    /// The join of the story `joined` began into another.
    Join {
        /// Which kind of story.
        kind: StoryKind,
        /// The first entry of the joined story.
        joined: EntryKey,
        /// Where it was joined.
        join: stories::Join,
    },
}

/// A store handle, shared by every task; cheap to clone.
pub(crate) type SharedStore = Arc<dyn Store>;

/// Opens the store `config` names. A database that cannot be reached fails at once (see
/// [`open_waiting`]).
pub(crate) fn open(config: &StoreConfig) -> Result<SharedStore, StoreError> {
    open_until(config, || true)
}

/// [`open`], waiting for a database that cannot be reached yet until `give_up` says so (a
/// replica starting while its database restarts waits for it).
pub(crate) fn open_waiting(
    config: &StoreConfig,
    give_up: impl Fn() -> bool,
) -> Result<SharedStore, StoreError> {
    open_until(config, give_up)
}

fn open_until(config: &StoreConfig, give_up: impl Fn() -> bool) -> Result<SharedStore, StoreError> {
    match &config.engine {
        Engine::Sled => {
            let store = sled::SledStore::open_with_cache(&config.path, config.cache)?
                .with_match_window(config.match_window)
                .with_replica(&config.replica);
            Ok(Arc::new(store))
        }
        Engine::Postgres { url } => {
            let settings = postgres::PgSettings {
                url: url.clone(),
                replica: config.replica.clone(),
                match_window: config.match_window,
                pool: config.pool,
                lease: config.lease,
            };
            Ok(Arc::new(postgres::PgStore::open_waiting(
                &settings, give_up,
            )?))
        }
    }
}

/// The default engine's store at `path`, with the default settings (for tests).
#[cfg(test)]
pub(crate) fn open_at(path: &std::path::Path) -> Result<SharedStore, StoreError> {
    Ok(Arc::new(sled::SledStore::open(path)?))
}

/// [`Store::flush`] from async code.
pub(crate) async fn flush(store: &SharedStore) -> Result<(), StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || store.flush())
        .await
        .map_err(|join| StoreError::Task(join.to_string()))?
}

/// Whether a read of the store completes within a second.
pub(crate) async fn answers(store: &SharedStore) -> bool {
    let probe = store.clone();
    let read = tokio::task::spawn_blocking(move || probe.source_state("").is_ok());
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(1), read).await,
        Ok(Ok(true))
    )
}
