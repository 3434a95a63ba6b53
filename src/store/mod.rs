//! The store: entries and per-source state in one embedded sled database.
//!
//! Everything lives in one sled tree under key prefixes. A commit writes a response's
//! entries, then the source's index, then the source state that records its
//! ETag/Last-Modified: sled recovers its log in order, so a crash can never record a
//! validator for entries we did not keep ([`Store::write_commit`] says why not a `Batch`).
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
//! never holds two entries of one source (see [`stories`]). [`Store::story_of`] reads an
//! entry's story. Commits match their entries one at a time, and see the entries and joins
//! of the commits before them that are still being written, so that sources carrying one
//! story at the same moment still meet, as if they had come one after the other.
//!
//! Faults: everything here can be fetched again, so a store that sled cannot open, or whose
//! pages a read finds damaged (sled reports it, or panics: see [`Store::guard`]), is moved
//! aside with one log line and replaced by an empty one ([`Store::open`],
//! [`Store::rebuild`]). A failed write (a full disk) is recorded ([`Store::write_failure`]),
//! the states that could not be written are kept in memory in place of the stored ones, and
//! [`Store::recover`] reopens sled in place once the disk takes writes again: sled 0.34
//! fails every write after one of its background flusher failed, until it is reopened.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

use chrono::{DateTime, TimeZone, Utc};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Deserialize;
use xxhash_rust::xxh3::xxh3_64;

use crate::dedup::fingerprint_text;
use crate::dedup::{canonical_link, Fingerprint};

mod recent;
pub mod stories;
use crate::model::{
    sort_time, CommitSummary, Entry, EntryKey, EntryRef, SourceState, StoredEntry, StoryKind,
};
use recent::{MatchKeys, RecentEntries};
use stories::{kind_of_tag, kind_tag, share_a_source, story_order, Join, Joins, Members};

/// The layout version written in `m:schema`; bump it with a migration when the layout changes.
/// 1: a key per entry in each of five indexes and 21 LSH band keys.
/// 2: (never released) the LSH index in memory.
/// 3: one key per entry, one index value per source; see the module documentation.
/// 4: entries leave out empty fields, which a feedmill of schema 3 cannot read (its values
///    read as they are: the migration only writes the version).
/// 5: joined stories under `j:`, and entry values whose match record names the first
///    entries of their stories (format 2), which a feedmill of schema 4 cannot read (values
///    of format 1 read as they are: the migration only writes the version).
pub const SCHEMA_VERSION: u32 = 5;
/// sled's page cache when the config does not say: its own default (1 GiB) is far more than
/// a small VPS can spare. With one key per entry, 16 MiB writes as fast as 64 MiB (a cold
/// refresh of 20,000 entries differs within the noise) and keeps the daemon with ten
/// thousand sources and a million entries under 150 MB.
pub const DEFAULT_CACHE: u64 = 16 * 1024 * 1024;
/// How many of the most recent entries a new one is matched against when the config does not
/// say (`[store] match_window`): news outlets carry a story within hours or days of each
/// other, and at about 200 bytes an entry this keeps a daemon with ten thousand sources and a
/// million entries under 150 MB.
pub const DEFAULT_MATCH_WINDOW: usize = 50_000;

/// A store error, with the store's path where it helps.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (usually the running daemon) holds the store.
    #[error("the store {} is in use by another feedmill process (is the daemon running?); stop it or point [store] path elsewhere", .0.display())]
    Locked(PathBuf),
    /// The store was written by a newer feedmill.
    #[error("the store {} has schema version {found}, newer than this feedmill understands ({SCHEMA_VERSION}); upgrade feedmill", path.display())]
    NewerSchema {
        /// The store directory.
        path: PathBuf,
        /// The version found.
        found: u32,
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
    #[error("cannot write the store {}: {}; free space on its disk (or fix the disk)", path.display(), describe(source))]
    Write {
        /// The store directory.
        path: PathBuf,
        /// The sled error.
        source: sled::Error,
    },
    /// A blocking store task died.
    #[error("a store task failed: {0}")]
    Task(String),
    /// sled failed.
    #[error("store {}: {}", path.display(), describe(source))]
    Db {
        /// The store directory.
        path: PathBuf,
        /// The sled error.
        source: sled::Error,
    },
}

impl StoreError {
    /// What went wrong, in words, without the store's path: what a source's `last_error`
    /// shows after a write failed ("No space left on device (os error 28)").
    pub fn reason(&self) -> String {
        match self {
            StoreError::Write { source, .. } | StoreError::Db { source, .. } => describe(source),
            StoreError::Corrupt { reason, .. } => format!("the store is corrupt ({reason})"),
            other => other.to_string(),
        }
    }
}

/// A sled error in words. sled hands the I/O error that stopped its background writer to
/// every later call as a copy whose text is the original's `Debug` form
/// (`Os { code: 28, kind: StorageFull, message: "No space left on device" }`): that is
/// turned back into the system's words.
pub fn describe(err: &sled::Error) -> String {
    match err {
        sled::Error::Io(io) => describe_io(io),
        sled::Error::Corruption { at, .. } => match at {
            Some(at) => format!("corrupted data at {at:?} in its db file"),
            None => "corrupted data".to_string(),
        },
        other => other.to_string(),
    }
}

fn describe_io(io: &std::io::Error) -> String {
    if io.raw_os_error().is_some() {
        return io.to_string();
    }
    let text = io.to_string();
    let code = text
        .strip_prefix("Os { code: ")
        .and_then(|rest| rest.split(',').next())
        .and_then(|code| code.trim().parse::<i32>().ok());
    match code {
        Some(code) => std::io::Error::from_raw_os_error(code).to_string(),
        None => text,
    }
}

/// How often a daemon whose store writes fail checks whether they work again
/// ([`Store::recover`]). Sources back off as after a failed fetch meanwhile; when writes
/// work again, those whose last attempt failed to store are fetched again at once.
pub const PROBE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Opens sled at `path`, a panic included: see [`Store::open`] for what is corruption.
fn open_sled(path: &Path, cache: u64) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new()
        .path(path)
        .cache_capacity(cache)
        .flush_every_ms(Some(500));
    match guarded(path, || Ok(config.open())) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(sled::Error::Io(err))) if err.to_string().contains("could not acquire lock") => {
            Err(StoreError::Locked(path.to_path_buf()))
        }
        // The disk or the system refuses us: moving the store aside would not help, and
        // would lose a good store.
        Ok(Err(sled::Error::Io(err))) if refused(&err) => Err(StoreError::Db {
            path: path.to_path_buf(),
            source: sled::Error::Io(err),
        }),
        Ok(Err(err)) => Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: describe(&err),
        }),
        Err(panicked) => Err(panicked),
    }
}

/// A read error of a store being opened is corruption, unless the system refused us.
fn corrupt_unless_refused(err: StoreError) -> StoreError {
    match err {
        StoreError::Db { path, source } => match &source {
            sled::Error::Io(io) if refused(io) => StoreError::Db { path, source },
            _ => StoreError::Corrupt {
                reason: describe(&source),
                path,
            },
        },
        other => other,
    }
}

/// Whether an I/O error comes from the system rather than from what is in the store.
fn refused(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        err.kind(),
        PermissionDenied
            | StorageFull
            | QuotaExceeded
            | ReadOnlyFilesystem
            | NotADirectory
            | OutOfMemory
            | ResourceBusy
    ) || matches!(err.raw_os_error(), Some(24 | 23)) // EMFILE, ENFILE: too many open files
}

thread_local! {
    /// Set while this thread runs [`guarded`] work: its panics are caught, not reported.
    static GUARDED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// The last panic caught on this thread: message and where.
    static CAUGHT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs `work`; a panic becomes [`StoreError::Corrupt`] with its message, and is not
/// printed as a panic report (the error is logged on one line by whoever handles it).
/// Panics of other threads are reported as before.
fn guarded<T>(path: &Path, work: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(|g| g.get()) > 0 {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_string());
                let place = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                CAUGHT.with(|c| *c.borrow_mut() = Some(format!("{message}{place}")));
            } else {
                previous(info);
            }
        }));
    });
    GUARDED.with(|g| g.set(g.get() + 1));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    GUARDED.with(|g| g.set(g.get() - 1));
    result.unwrap_or_else(|_| {
        let caught = CAUGHT.with(|c| c.borrow_mut().take());
        Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "sled panicked reading it: {}",
                caught.unwrap_or_else(|| "a panic".to_string())
            ),
        })
    })
}

/// Moves the corrupt store at `path` aside, to `PATH.corrupt-TIME` beside it, and says so
/// in one log line. A directory that cannot be renamed (a mount point, or systemd's
/// `StateDirectory=` whose parent we may not write) keeps its place and has its files
/// moved into `PATH/corrupt-TIME/` instead. Returns where the store went.
fn set_aside(path: &Path, reason: &str) -> Result<PathBuf, StoreError> {
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".to_string());
    let unused = |candidate: &dyn Fn(usize) -> PathBuf| {
        (0..)
            .map(candidate)
            .find(|p| std::fs::symlink_metadata(p).is_err())
            .unwrap_or_else(|| candidate(0))
    };
    let numbered = |base: String| {
        move |n: usize| {
            if n == 0 {
                base.clone()
            } else {
                format!("{base}-{n}")
            }
        }
    };
    let beside = numbered(format!("{name}.corrupt-{stamp}"));
    let aside = unused(&|n| path.with_file_name(beside(n)));
    let failed = |source| StoreError::SetAside {
        path: path.to_path_buf(),
        reason: reason.to_string(),
        source,
    };
    let aside = match std::fs::rename(path, &aside) {
        Ok(()) => aside,
        Err(_) => {
            let inside = numbered(format!("corrupt-{stamp}"));
            let aside = unused(&|n| path.join(inside(n)));
            move_contents(path, &aside).map_err(failed)?;
            aside
        }
    };
    tracing::error!(
        store = %path.display(),
        moved_to = %aside.display(),
        "the store is corrupt ({reason}); moved it to {} and starting with an empty store (every source is fetched again; delete the old one once you no longer need it)",
        aside.display()
    );
    Ok(aside)
}

/// Moves the files of the store directory `from` into the new directory `to` inside it,
/// leaving earlier `corrupt-*` directories where they are.
fn move_contents(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if entry.path() == to || name.to_string_lossy().starts_with("corrupt-") {
            continue;
        }
        std::fs::rename(entry.path(), to.join(&name))?;
    }
    Ok(())
}

/// Whether the file system of the store directory takes a write now: 64 KiB written,
/// synced and removed again.
fn probe_filesystem(path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let probe = path.join(".feedmill-write-probe");
    let written = std::fs::File::create(&probe).and_then(|mut file| {
        file.write_all(&[0; 64 * 1024])?;
        file.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    written
}

/// The store handle; cheap to clone.
#[derive(Clone)]
pub struct Store {
    /// The sled database; `None` only while [`Store::recover`] reopens it. Behind a lock
    /// because sled 0.34, once a write of its background flusher failed (a full disk), fails
    /// every later write until it is opened again: reopening swaps it in place.
    db: Arc<RwLock<Option<sled::Db>>>,
    path: PathBuf,
    cache: u64,
    /// How many of the most recent entries a new one is matched against.
    match_window: usize,
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

/// The source states a [`Store`] keeps in memory.
#[derive(Default)]
struct States {
    /// As stored (`None`: none stored). Written through: a state is cached only after its
    /// write went to sled.
    saved: HashMap<String, Option<SourceState>>,
    /// States whose write failed (a full disk): read in place of the stored ones, so that
    /// the failure, its backoff and its next fetch are seen (`/status.json`, the scheduler)
    /// while the store cannot record them. Dropped when the source's state is next written.
    unsaved: HashMap<String, SourceState>,
}

/// Whether the store works: its writes, its pages.
struct StoreHealth {
    /// Why the last write failed, while writes fail; `None` when they work.
    failure: Mutex<Option<String>>,
    /// Why the store was found corrupt since it was opened (a read that sled reported as
    /// corruption, or panicked on), until [`Store::rebuild`] replaces it.
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

/// The recoveries of a store since it was opened (see [`Store::recoveries`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recoveries {
    /// Recoveries from a write failure ([`Store::recover`]): what was stored is still there.
    pub writes: u64,
    /// Corrupt stores replaced by an empty one ([`Store::rebuild`]): every source must be
    /// fetched again.
    pub rebuilds: u64,
}

/// The state commits share; see [`Store::commits`].
#[derive(Default)]
struct Commits {
    /// The recent entries' matching index, loaded by the first commit after opening.
    recent: Option<RecentEntries>,
    /// The sources of the recent stories, loaded with `recent`.
    members: Members,
    /// Joins matched by a commit whose write failed: written by the next commit.
    unwritten: Vec<(StoryKind, EntryKey, Join)>,
    /// Entries a commit has matched but not yet written: a commit beside it finds them here.
    pending: FxHashMap<EntryKey, Arc<Written>>,
    /// Sources with a commit in flight: a source commits one response at a time.
    committing: FxHashSet<String>,
}

/// An entry as a commit writes it.
struct Written {
    stored: StoredEntry,
    record: MatchRecord,
    /// Not stored before.
    new: bool,
}

/// A source's turn to commit (see [`Store::commit_turn`]); ending it forgets the pending
/// entries it wrote, written or not (a failed write is fetched again in full).
struct CommitTurn<'a> {
    store: &'a Store,
    source: String,
    written: Vec<EntryKey>,
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

/// What a visitor of [`Store::visit_newest`] wants next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    /// The next entry.
    Next,
    /// No more entries of this entry's source.
    DropSource,
    /// Nothing more.
    Stop,
}

/// The first byte of an entry value that carries a [`MatchRecord`] (a JSON-only value, as
/// schema 1 wrote them, starts with `{`) without the first entries of its stories, as
/// schemas 3 and 4 wrote them.
const RECORD_FORMAT: u8 = 1;
/// The first byte of an entry value whose [`MatchRecord`] also names the first entries of
/// its stories (schema 5), so that the stories' sources are rebuilt at open without reading
/// entries' JSON.
const RECORD_WITH_STORIES: u8 = 2;

fn entry_key(source: &str, key: &EntryKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + source.len() + 16);
    k.extend_from_slice(b"e:");
    k.extend_from_slice(source.as_bytes());
    k.push(0);
    k.extend_from_slice(&key.0);
    k
}

/// Splits the `{source}\0{key}` tail of an entry key.
fn split_entry_key(k: &[u8]) -> Option<(String, EntryKey)> {
    let tail = k.strip_prefix(b"e:")?;
    if tail.len() < 18 {
        return None;
    }
    let (source, key) = tail.split_at(tail.len() - 16);
    let source = source.strip_suffix(&[0])?;
    Some((
        String::from_utf8(source.to_vec()).ok()?,
        EntryKey(key.try_into().ok()?),
    ))
}

fn join_key(kind: StoryKind, joined: &EntryKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(19);
    k.extend_from_slice(b"j:");
    k.push(kind_tag(kind));
    k.extend_from_slice(&joined.0);
    k
}

fn split_join_key(k: &[u8]) -> Option<(StoryKind, EntryKey)> {
    let tail = k.strip_prefix(b"j:")?;
    let kind = kind_of_tag(*tail.first()?)?;
    Some((kind, EntryKey(tail.get(1..)?.try_into().ok()?)))
}

fn index_key(source: &str) -> Vec<u8> {
    [b"n:".as_slice(), source.as_bytes()].concat()
}

fn state_key(source: &str) -> Vec<u8> {
    [b"s:".as_slice(), source.as_bytes()].concat()
}

/// Newest first: the order-inverted, sign-corrected milliseconds of `time`.
fn inverted_millis(time: DateTime<Utc>) -> [u8; 8] {
    (!((time.timestamp_millis() as u64) ^ (1 << 63))).to_be_bytes()
}

/// One entry in its source's index: ordered newest first (inverted sort time, then key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Indexed {
    sort: [u8; 8],
    key: EntryKey,
    seen_ms: i64,
}

impl Indexed {
    const LEN: usize = 32;

    fn of(stored: &StoredEntry) -> Indexed {
        Indexed {
            sort: inverted_millis(stored.sort_time),
            key: stored.key(),
            seen_ms: stored.first_seen.timestamp_millis(),
        }
    }
}

fn encode_index(index: &[Indexed]) -> Vec<u8> {
    let mut out = Vec::with_capacity(index.len() * Indexed::LEN);
    for item in index {
        out.extend_from_slice(&item.sort);
        out.extend_from_slice(&item.key.0);
        out.extend_from_slice(&item.seen_ms.to_be_bytes());
    }
    out
}

fn decode_index(bytes: &[u8]) -> Vec<Indexed> {
    bytes
        .chunks_exact(Indexed::LEN)
        .filter_map(|chunk| {
            Some(Indexed {
                sort: chunk.get(..8)?.try_into().ok()?,
                key: EntryKey(chunk.get(8..24)?.try_into().ok()?),
                seen_ms: i64::from_be_bytes(chunk.get(24..32)?.try_into().ok()?),
            })
        })
        .collect()
}

/// What story matching needs of an entry, stored ahead of its JSON so that a candidate is
/// checked without decoding it.
#[derive(Debug, Clone, Default, PartialEq)]
struct MatchRecord {
    /// The hash of its canonical link.
    link: Option<u64>,
    /// Its text's fingerprint.
    fingerprint: Option<Fingerprint>,
    /// The first entries of its stories by link and by text, as stored
    /// ([`StoredEntry::same_link_as`], [`StoredEntry::same_text_as`]); `None` when the value
    /// does not say (format 1: read them from its JSON).
    firsts: Option<[Option<EntryRef>; 2]>,
}

/// The first entries an entry names, by kind.
fn firsts_of(stored: &StoredEntry) -> [Option<EntryRef>; 2] {
    [stored.same_link_as.clone(), stored.same_text_as.clone()]
}

/// Writes `r` as a length-prefixed source, key and first-seen milliseconds; false (and
/// nothing written) for a source name too long for the prefix.
fn encode_ref(out: &mut Vec<u8>, r: &EntryRef) -> bool {
    let Ok(len) = u16::try_from(r.source.len()) else {
        return false;
    };
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(r.source.as_bytes());
    out.extend_from_slice(&r.key.0);
    out.extend_from_slice(&r.first_seen.timestamp_millis().to_be_bytes());
    true
}

/// Reads what [`encode_ref`] wrote from the front of `rest`.
fn decode_ref(rest: &mut &[u8]) -> Option<EntryRef> {
    let len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let source = std::str::from_utf8(rest.get(2..2 + len)?).ok()?.to_string();
    let key = EntryKey(rest.get(2 + len..18 + len)?.try_into().ok()?);
    let ms = i64::from_be_bytes(rest.get(18 + len..26 + len)?.try_into().ok()?);
    *rest = rest.get(26 + len..)?;
    Some(EntryRef {
        source,
        key,
        first_seen: from_millis(ms),
    })
}

/// What a new or changed entry of a response needs for matching, computed before the
/// commits lock is taken.
struct Prepared {
    record: MatchRecord,
    keys: MatchKeys,
    canonical_link: Option<String>,
}

impl Prepared {
    fn of(entry: &Entry) -> Prepared {
        let canonical_link = entry.link.as_deref().and_then(canonical_link);
        let record = MatchRecord {
            link: canonical_link
                .as_deref()
                .map(|canonical| xxh3_64(canonical.as_bytes())),
            fingerprint: Fingerprint::of(&fingerprint_text(entry)),
            // Named when the entry is stored (see `encode_entry`).
            firsts: None,
        };
        Prepared {
            keys: MatchKeys::of(&record),
            record,
            canonical_link,
        }
    }
}

/// The first entries an entry's JSON names (for values written before schema 5, whose match
/// record does not).
#[derive(Deserialize)]
struct NamedFirsts {
    #[serde(default)]
    same_link_as: Option<EntryRef>,
    #[serde(default)]
    same_text_as: Option<EntryRef>,
}

/// Counts the entry `me`, remembered by the matching index as `seq`, among the members of
/// the stories whose first entries it names (`firsts`, by kind), after joins.
fn count_member(
    members: &mut Members,
    recent: &mut RecentEntries,
    joins: &Joins,
    me: &EntryRef,
    firsts: &[Option<EntryRef>; 2],
    seq: Option<u32>,
) {
    for kind in StoryKind::BOTH {
        let named = firsts[kind.index()].as_ref().unwrap_or(me);
        let first = joins.resolve(kind, named);
        if first.key == me.key {
            // The first entry of its story: the others count it.
            members.touch(kind, &first.key, seq);
            continue;
        }
        let entries = [
            (recent.intern(&me.source), me.key),
            (recent.intern(&named.source), named.key),
            (recent.intern(&first.source), first.key),
        ];
        members.add(
            kind,
            first.key,
            &entries,
            seq,
            me.first_seen.timestamp_millis(),
        );
    }
}

/// An entry value: format byte, flags, link hash, fingerprint, the first entries of its
/// stories by link and by text (those it names; flags say which), then the entry's JSON.
fn encode_entry(stored: &StoredEntry, record: &MatchRecord) -> Vec<u8> {
    // Room for the record and a typical entry's JSON: one allocation.
    let mut out = Vec::with_capacity(
        330 + stored.entry.html().map_or(0, str::len) + stored.entry.title.len() + 512,
    );
    let firsts = firsts_of(stored);
    let mut named = Vec::new();
    let mut flags = u8::from(record.link.is_some()) | (u8::from(record.fingerprint.is_some()) << 1);
    let recorded = firsts.iter().enumerate().all(|(i, first)| match first {
        Some(first) => {
            flags |= 4 << i;
            encode_ref(&mut named, first)
        }
        None => true,
    });
    let format = if recorded {
        RECORD_WITH_STORIES
    } else {
        flags &= 3;
        RECORD_FORMAT
    };
    out.extend_from_slice(&[format, flags]);
    if let Some(link) = record.link {
        out.extend_from_slice(&link.to_be_bytes());
    }
    if let Some(fingerprint) = &record.fingerprint {
        out.extend_from_slice(&fingerprint.to_bytes());
    }
    if recorded {
        out.extend_from_slice(&named);
    }
    // Writing to a Vec cannot fail, nor can serializing these types.
    let _ = serde_json::to_writer(&mut out, stored);
    out
}

/// The record and the JSON of an entry value (of any format).
fn split_entry(bytes: &[u8]) -> Option<(MatchRecord, &[u8])> {
    match bytes.first()? {
        b'{' => Some((MatchRecord::default(), bytes)),
        &format @ (RECORD_FORMAT | RECORD_WITH_STORIES) => {
            let flags = *bytes.get(1)?;
            let mut rest = bytes.get(2..)?;
            let mut record = MatchRecord::default();
            if flags & 1 != 0 {
                record.link = Some(u64::from_be_bytes(rest.get(..8)?.try_into().ok()?));
                rest = rest.get(8..)?;
            }
            if flags & 2 != 0 {
                const PRINT: usize = crate::dedup::SIGNATURE_LEN * 4;
                record.fingerprint = Some(Fingerprint::from_bytes(rest.get(..PRINT)?)?);
                rest = rest.get(PRINT..)?;
            }
            if format == RECORD_WITH_STORIES {
                let mut firsts = [None, None];
                for (i, first) in firsts.iter_mut().enumerate() {
                    if flags & (4 << i) != 0 {
                        *first = Some(decode_ref(&mut rest)?);
                    }
                }
                record.firsts = Some(firsts);
            }
            Some((record, rest))
        }
        _ => None,
    }
}

impl Store {
    /// The store matching new entries against the most recent `window` entries (call before
    /// the first commit; 0 turns story matching off).
    pub fn with_match_window(mut self, window: usize) -> Store {
        self.match_window = window;
        self
    }

    /// Opens (or creates) the store at `path`. A store that fails to open or to read (sled
    /// reports corruption, or panics on it) is moved aside with one log line naming where,
    /// and rebuilt empty: it holds nothing that cannot be fetched again. A store in use by
    /// another process, of a newer schema, or on a disk that refuses us (full, read-only,
    /// no permission) is an error, and stays where it is.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with_cache(path, DEFAULT_CACHE)
    }

    /// [`Store::open`] with a page cache of `cache` bytes.
    pub fn open_with_cache(path: &Path, cache: u64) -> Result<Store, StoreError> {
        match Store::open_checked(path, cache) {
            Err(StoreError::Corrupt { reason, .. }) => {
                set_aside(path, &reason)?;
                Store::open_checked(path, cache)
            }
            other => other,
        }
    }

    /// Opens the store and reads what every command reads first (the source states), so
    /// that damage there is found now. Entries and indexes are checked as they are read
    /// (see [`Store::corruption`]): reading all of them at every open cost about half a
    /// second and 27 MB of sled's cache per hundred thousand entries (in a release build),
    /// which would have halved a warm `feedmill fetch` and taken a daemon of a million
    /// entries over its unit's `MemoryHigh`.
    fn open_checked(path: &Path, cache: u64) -> Result<Store, StoreError> {
        let store = Store::open_unchecked(path, cache)?;
        store.guard(|| store.read_all(b"s:"))?;
        store.guard(|| store.load_joins())?;
        Ok(store)
    }

    /// Opens sled and checks the schema, reading nothing else.
    fn open_unchecked(path: &Path, cache: u64) -> Result<Store, StoreError> {
        let store = Store {
            db: Arc::new(RwLock::new(Some(open_sled(path, cache)?))),
            path: path.to_path_buf(),
            cache,
            match_window: DEFAULT_MATCH_WINDOW,
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

    /// Reads every join of two stories into memory (a few keys: one per entry that joined
    /// two stories), replacing what was there.
    fn load_joins(&self) -> Result<(), StoreError> {
        let mut joins = Joins::default();
        for item in self.db()?.scan_prefix(b"j:") {
            let (k, v) = item.map_err(|e| self.db_error(e))?;
            let Some((kind, joined)) = split_join_key(&k) else {
                continue;
            };
            if let Some(join) = decode::<Join>(&v, "story join") {
                joins.insert(kind, joined, join);
            }
        }
        *self.joins.write().unwrap_or_else(|p| p.into_inner()) = joins;
        Ok(())
    }

    /// The first entry of the story that `stored` is part of, by link or by text, after
    /// every join: entries of one story answer the same, whichever order they came in.
    /// Itself when it is the first (or only) entry of its story.
    pub fn story_of(&self, stored: &StoredEntry, kind: StoryKind) -> EntryRef {
        let named = match kind {
            StoryKind::Link => stored.same_link_as.as_ref(),
            StoryKind::Text => stored.same_text_as.as_ref(),
        };
        let first = named.cloned().unwrap_or_else(|| stored.to_ref());
        self.joins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .resolve(kind, &first)
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why the store was found corrupt since it was opened, until it is rebuilt: a read that
    /// sled reported as corruption, or panicked on inside [`Store::guard`]. Damage that
    /// nothing reads does no harm and is not looked for.
    pub fn corruption(&self) -> Option<String> {
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
    /// line as [`Store::open`] does and puts an empty one in its place, for every clone of
    /// this handle. Every source must then be fetched again ([`Recoveries::rebuilds`]).
    /// Blocking.
    pub fn rebuild(&self, reason: &str) -> Result<(), StoreError> {
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
            let mut commits = self.commits.lock().unwrap_or_else(|p| p.into_inner());
            commits.recent = None;
            commits.members = Members::default();
            commits.unwritten.clear();
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
    /// The damage is recorded for [`Store::corruption`].
    pub fn guard<T>(&self, work: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
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

    /// A failed read; sled's `Corruption` is recorded for [`Store::corruption`].
    fn db_error(&self, source: sled::Error) -> StoreError {
        if matches!(source, sled::Error::Corruption { .. }) {
            self.found_corrupt(&describe(&source));
        }
        StoreError::Db {
            path: self.path.clone(),
            source,
        }
    }

    /// A failed write: recorded as the store's health until [`Store::recover`] succeeds.
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
        *failure = Some(reason);
        StoreError::Write {
            path: self.path.clone(),
            source,
        }
    }

    /// Why writes fail, while they do (`None` when they work): `/healthz` answers 503 with it.
    pub fn write_failure(&self) -> Option<String> {
        self.health
            .failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes with each recovery ([`Store::recover`], [`Store::rebuild`]).
    pub fn recoveries(&self) -> tokio::sync::watch::Receiver<Recoveries> {
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
    pub fn recover(&self) -> Result<(), StoreError> {
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
            commits.recent = None;
            commits.members = Members::default();
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

    fn check_schema(&self) -> Result<(), StoreError> {
        let found = self
            .db()?
            .get(b"m:schema")
            .map_err(|e| self.db_error(e))?
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u32>().ok());
        match found {
            Some(found) if found > SCHEMA_VERSION => Err(StoreError::NewerSchema {
                path: self.path.clone(),
                found,
            }),
            Some(found) if found < SCHEMA_VERSION => self.migrate(found),
            Some(_) => Ok(()),
            None => {
                self.db()?
                    .insert(b"m:schema", SCHEMA_VERSION.to_string().as_bytes())
                    .map_err(|e| self.write_error(e))?;
                Ok(())
            }
        }
    }

    /// Schemas 1 and 2 to 3: every entry value gets its match record, each source's index
    /// becomes one `n:` value, and the per-entry index keys (`i:`, `f:`, `c:`, `b:`, `h:`)
    /// go. Entries and source states are kept. The schema version is written last and every
    /// step reads both value formats, so an interrupted migration simply runs again.
    fn migrate(&self, from: u32) -> Result<(), StoreError> {
        tracing::info!(store = %self.path.display(), from, to = SCHEMA_VERSION, "updating the store's layout");
        if from >= 3 {
            return self
                .db()?
                .insert(b"m:schema", SCHEMA_VERSION.to_string().as_bytes())
                .map(|_| ())
                .map_err(|e| self.db_error(e));
        }
        let mut batch = sled::Batch::default();
        let mut pending = 0;
        let apply = |batch: &mut sled::Batch, pending: &mut usize, force: bool| {
            if *pending >= 1000 || (force && *pending > 0) {
                *pending = 0;
                self.db()?
                    .apply_batch(std::mem::take(batch))
                    .map_err(|e| self.db_error(e))
            } else {
                Ok(())
            }
        };
        let mut indexes: HashMap<String, Vec<Indexed>> = HashMap::new();
        for item in self.db()?.scan_prefix(b"e:") {
            let (k, v) = item.map_err(|e| self.db_error(e))?;
            let Some((source, _)) = split_entry_key(&k) else {
                continue;
            };
            let Some(stored) = split_entry(&v).and_then(|(_, json)| decode(json, "entry")) else {
                continue;
            };
            let stored: StoredEntry = stored;
            indexes
                .entry(source)
                .or_default()
                .push(Indexed::of(&stored));
            batch.insert(
                k,
                encode_entry(&stored, &Prepared::of(&stored.entry).record),
            );
            pending += 1;
            apply(&mut batch, &mut pending, false)?;
        }
        for prefix in [b"i:", b"f:", b"c:", b"b:", b"h:"] {
            for item in self.db()?.scan_prefix(prefix) {
                let (k, _) = item.map_err(|e| self.db_error(e))?;
                batch.remove(k);
                pending += 1;
                apply(&mut batch, &mut pending, false)?;
            }
        }
        for (source, mut index) in indexes {
            index.sort_unstable();
            batch.insert(index_key(&source), encode_index(&index));
            pending += 1;
            apply(&mut batch, &mut pending, false)?;
        }
        apply(&mut batch, &mut pending, true)?;
        self.db()?
            .insert(b"m:schema", SCHEMA_VERSION.to_string().as_bytes())
            .map_err(|e| self.db_error(e))?;
        Ok(())
    }

    /// Takes the commits lock and, on first use, loads the matching index of the newest
    /// `match_window` entries by first-seen time (their match records, not their JSON, but
    /// for values written before schema 5), and the sources of their stories.
    fn lock_commits(&self) -> Result<MutexGuard<'_, Commits>, StoreError> {
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

    /// The saved state of `source`, if it was ever fetched.
    pub fn source_state(&self, source: &str) -> Result<Option<SourceState>, StoreError> {
        {
            let states = self.cached_states();
            if let Some(unsaved) = states.unsaved.get(source) {
                return Ok(Some(unsaved.clone()));
            }
            if let Some(known) = states.saved.get(source) {
                return Ok(known.clone());
            }
        }
        let value = self
            .db()?
            .get(state_key(source))
            .map_err(|e| self.db_error(e))?;
        let state: Option<SourceState> = value.and_then(|v| decode(&v, "source state"));
        self.cached_states()
            .saved
            .entry(source.to_string())
            .or_insert_with(|| state.clone());
        Ok(state)
    }

    fn cached_states(&self) -> MutexGuard<'_, States> {
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a state that is now in sled.
    fn cache_state(&self, source: &str, state: &SourceState) {
        let mut states = self.cached_states();
        states.unsaved.remove(source);
        states.saved.insert(source.to_string(), Some(state.clone()));
    }

    /// Saves the state of `source` alone (a failure, a 304). When the write fails, the
    /// state is still what [`Store::source_state`] answers from now on, until a write of
    /// this source's state works (see `States::unsaved`).
    pub fn save_state(&self, source: &str, state: &SourceState) -> Result<(), StoreError> {
        let value = serde_json::to_vec(state).unwrap_or_default();
        let _writing = self.writes.read().unwrap_or_else(|p| p.into_inner());
        let written = self.db().and_then(|db| {
            db.insert(state_key(source), value)
                .map_err(|e| self.write_error(e))
        });
        match written {
            Ok(_) => {
                self.cache_state(source, state);
                Ok(())
            }
            Err(err) => {
                self.cached_states()
                    .unsaved
                    .insert(source.to_string(), state.clone());
                Err(err)
            }
        }
    }

    /// The index of `source`, newest first.
    fn index(&self, source: &str) -> Result<Vec<Indexed>, StoreError> {
        Ok(self
            .db()?
            .get(index_key(source))
            .map_err(|e| self.db_error(e))?
            .map(|v| decode_index(&v))
            .unwrap_or_default())
    }

    /// Writes the entries of one response, then the source's index, then its new state
    /// with the validators (see [`Store::write_commit`]).
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

    /// Matches a commit's changed entries under the commits lock, one at a time, and
    /// remembers them for the commits after it; `joined` collects the joins of stories that
    /// new entries made.
    #[allow(clippy::too_many_arguments)]
    fn match_entries(
        &self,
        commits: &mut Commits,
        source: &str,
        changed: Vec<(usize, &Entry, EntryKey, Option<StoredEntry>, Prepared)>,
        now: DateTime<Utc>,
        turn: &mut CommitTurn<'_>,
        summary: &mut CommitSummary,
        written: &mut Vec<(EntryKey, Arc<Written>)>,
        joined: &mut Vec<(StoryKind, EntryKey, Join)>,
    ) -> Result<(), StoreError> {
        let Commits {
            recent,
            pending,
            members,
            ..
        } = commits;
        let recent = recent.get_or_insert_with(|| RecentEntries::new(self.match_window));
        for (position, entry, key, old, prepared) in changed {
            let new = old.is_none();
            let stored = match old {
                Some(old) => {
                    summary.updated += 1;
                    StoredEntry {
                        entry: entry.clone(),
                        sort_time: sort_time(entry, old.first_seen, now),
                        ..old
                    }
                }
                None => {
                    // Undated entries of one response keep their document order (newest
                    // first).
                    let first_seen = now - chrono::Duration::milliseconds(position as i64);
                    summary.new += 1;
                    let [same_link_as, same_text_as] = self.join_stories(
                        source,
                        key,
                        &prepared,
                        recent,
                        pending,
                        members,
                        joined,
                        &mut summary.joined,
                    )?;
                    StoredEntry {
                        source: source.to_string(),
                        entry: entry.clone(),
                        first_seen,
                        sort_time: sort_time(entry, first_seen, now),
                        same_link_as,
                        same_text_as,
                    }
                }
            };
            let seq = recent.insert(
                source,
                key,
                stored.first_seen.timestamp_millis(),
                &prepared.keys,
            );
            {
                let joins = self.joins.read().unwrap_or_else(|p| p.into_inner());
                count_member(
                    members,
                    recent,
                    &joins,
                    &stored.to_ref(),
                    &firsts_of(&stored),
                    seq,
                );
            }
            members.prune(recent.seals(), |seq| recent.remembers(seq));
            let written_entry = Arc::new(Written {
                stored,
                record: prepared.record,
                new,
            });
            pending.insert(key, written_entry.clone());
            turn.written.push(key);
            written.push((key, written_entry));
        }
        Ok(())
    }

    /// The stories the new entry `key` of `source` is part of, by link and by text: of the
    /// stories it matches (see [`Store::find_stories`]), those that hold no other entry of
    /// its source, and of those, the earliest and each that shares no source with the ones
    /// before it (a story never holds two entries of one source). When that is more than
    /// one, the later ones are joined into the earliest, here and in `joined` (to be
    /// written), and the sources of the stories joined are added to `touched`.
    #[allow(clippy::too_many_arguments)]
    fn join_stories(
        &self,
        source: &str,
        key: EntryKey,
        prepared: &Prepared,
        recent: &mut RecentEntries,
        pending: &FxHashMap<EntryKey, Arc<Written>>,
        members: &mut Members,
        joined: &mut Vec<(StoryKind, EntryKey, Join)>,
        touched: &mut Vec<String>,
    ) -> Result<[Option<EntryRef>; 2], StoreError> {
        let found = {
            let joins = self.joins.read().unwrap_or_else(|p| p.into_inner());
            self.find_stories(source, prepared, recent, pending, &joins)?
        };
        let me = (recent.intern(source), key);
        let mut firsts = [None, None];
        for kind in StoryKind::BOTH {
            // The entries of the stories chosen so far, by source.
            let mut held: FxHashMap<u32, EntryKey> = FxHashMap::from_iter([me]);
            let mut chosen: Vec<EntryRef> = Vec::new();
            for story in &found[kind.index()] {
                let first_source = recent.intern(&story.source);
                let entries = members.of(kind, &story.key, first_source);
                if share_a_source(&entries, &held) {
                    continue;
                }
                for &(source, key) in entries.iter() {
                    held.entry(source).or_insert(key);
                }
                chosen.push(story.clone());
            }
            if chosen.len() > 1 {
                touched.extend(
                    held.keys()
                        .filter_map(|&id| recent.name(id))
                        .map(String::from),
                );
            }
            let mut chosen = chosen.into_iter();
            let Some(first) = chosen.next() else {
                continue;
            };
            for other in chosen {
                let until_ms = members
                    .newest_ms(kind, &other.key)
                    .unwrap_or_default()
                    .max(other.first_seen.timestamp_millis());
                members.join(
                    kind,
                    &other.key,
                    recent.intern(&other.source),
                    first.key,
                    recent.intern(&first.source),
                );
                let join = Join {
                    into: first.clone(),
                    until_ms,
                };
                self.joins
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(kind, other.key, join.clone());
                joined.push((kind, other.key, join));
            }
            firsts[kind.index()] = Some(first);
        }
        Ok(firsts)
    }

    /// Waits for `source`'s turn to commit: one commit per source at a time, so that its
    /// entries, index and state are read and written by one commit alone.
    fn commit_turn(&self, source: &str) -> CommitTurn<'_> {
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
    /// entries (see [`Store::commit_fetch`] for entries written without their index).
    fn write_commit(
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

    /// The stored entry `key` of `source`.
    pub fn entry(&self, source: &str, key: &EntryKey) -> Result<Option<StoredEntry>, StoreError> {
        Ok(self
            .db()?
            .get(entry_key(source, key))
            .map_err(|e| self.db_error(e))?
            .and_then(|v| decode(split_entry(&v)?.1, "entry")))
    }

    /// The stories a new entry of `source` matches, by link and by text, each named by its
    /// first entry after joins, earliest first (see [`stories::story_order`]): the stories
    /// of the other sources' recent entries with the same canonical link (by link, and by
    /// text) and with nearly the same text (by text). Only recent entries are candidates
    /// (see [`recent`]); each is checked against its match record, and decoded only when it
    /// matches. Every band is looked at, not only until one story is found: the entry may
    /// be the one that tells two stories are one.
    fn find_stories(
        &self,
        source: &str,
        prepared: &Prepared,
        recent: &RecentEntries,
        pending: &FxHashMap<EntryKey, Arc<Written>>,
        joins: &Joins,
    ) -> Result<[Vec<EntryRef>; 2], StoreError> {
        let mut found: [Vec<EntryRef>; 2] = [Vec::new(), Vec::new()];
        let mut note = |kind: StoryKind, named: Option<&EntryRef>, carrier: &StoredEntry| {
            let first = match named {
                Some(named) => joins.resolve(kind, named),
                None => joins.resolve(kind, &carrier.to_ref()),
            };
            let stories = &mut found[kind.index()];
            if !stories.iter().any(|s| s.key == first.key) {
                stories.push(first);
            }
        };
        let mut seen = HashSet::new();
        if let (Some(link), Some(canonical)) = (prepared.keys.link, &prepared.canonical_link) {
            for carrier in recent.carriers(link) {
                // The story of an entry of this source holds this source: never joined.
                if recent.source(&carrier) == source {
                    continue;
                }
                let same_hash = |theirs: &MatchRecord| theirs.link == prepared.record.link;
                let Some(found) = self.candidate(pending, recent, &carrier, same_hash)? else {
                    continue;
                };
                // The same link, not only the same hash.
                if found
                    .entry
                    .link
                    .as_deref()
                    .and_then(canonical_link)
                    .as_ref()
                    != Some(canonical)
                {
                    continue;
                }
                seen.insert(carrier);
                note(StoryKind::Link, found.same_link_as.as_ref(), &found);
                note(StoryKind::Text, found.same_text_as.as_ref(), &found);
            }
        }
        if let Some(fingerprint) = &prepared.record.fingerprint {
            let same_story = |theirs: &MatchRecord| {
                theirs
                    .fingerprint
                    .as_ref()
                    .is_some_and(|theirs| theirs.same_story(fingerprint))
            };
            for &band in &prepared.keys.bands {
                for carrier in recent.carriers(band) {
                    if !seen.insert(carrier) || recent.source(&carrier) == source {
                        continue;
                    }
                    if let Some(found) = self.candidate(pending, recent, &carrier, same_story)? {
                        note(StoryKind::Text, found.same_text_as.as_ref(), &found);
                    }
                }
            }
        }
        for stories in &mut found {
            stories.sort_by(|a, b| story_order(a).cmp(&story_order(b)));
        }
        Ok(found)
    }

    /// A remembered entry, if its match record passes `check`: from a commit still being
    /// written, else from sled (gone when retention removed it). Decoded only if it passes.
    fn candidate(
        &self,
        pending: &FxHashMap<EntryKey, Arc<Written>>,
        recent: &RecentEntries,
        carrier: &recent::Remembered,
        check: impl FnOnce(&MatchRecord) -> bool,
    ) -> Result<Option<StoredEntry>, StoreError> {
        if let Some(written) = pending.get(&carrier.key) {
            return Ok(check(&written.record).then(|| written.stored.clone()));
        }
        let value = self
            .db()?
            .get(entry_key(recent.source(carrier), &carrier.key))
            .map_err(|e| self.db_error(e))?;
        let Some((record, json)) = value.as_deref().and_then(split_entry) else {
            return Ok(None);
        };
        Ok(if check(&record) {
            decode(json, "entry")
        } else {
            None
        })
    }

    /// Removes what retention says: entries first seen before `cutoff` (if any), and beyond
    /// the newest `keep` of each source (if set), and with the age cutoff the joins of
    /// stories it removed whole. Works in small batches so that commits are never held up
    /// for long. Returns the entries removed per source.
    pub fn prune(
        &self,
        cutoff: Option<DateTime<Utc>>,
        keep: Option<usize>,
    ) -> Result<HashMap<String, usize>, StoreError> {
        const BATCH: usize = 500;
        let cutoff_ms = cutoff.map(|c| c.timestamp_millis());
        let mut removed = HashMap::new();
        for (source, _) in self.source_states()? {
            loop {
                let _alone = self.writes.write().unwrap_or_else(|p| p.into_inner());
                // The first BATCH entries retention removes, in index order; the rest stay
                // in order, so the index needs no sorting.
                let (mut left, mut removing) = (Vec::new(), Vec::new());
                let mut more = false;
                for (position, item) in self.index(&source)?.into_iter().enumerate() {
                    let doomed = cutoff_ms.is_some_and(|c| item.seen_ms < c)
                        || keep.is_some_and(|k| position >= k);
                    if doomed && removing.len() < BATCH {
                        removing.push(item);
                    } else {
                        more |= doomed;
                        left.push(item);
                    }
                }
                if removing.is_empty() {
                    break;
                }
                let this_time = removing.len();
                let mut batch = sled::Batch::default();
                for item in &removing {
                    batch.remove(entry_key(&source, &item.key));
                }
                batch.insert(index_key(&source), encode_index(&left));
                let state = self.source_state(&source)?.map(|mut state| {
                    state.items = state.items.saturating_sub(this_time as u64);
                    batch.insert(
                        state_key(&source),
                        serde_json::to_vec(&state).unwrap_or_default(),
                    );
                    state
                });
                self.db()?
                    .apply_batch(batch)
                    .map_err(|e| self.write_error(e))?;
                if let Some(state) = state {
                    self.cache_state(&source, &state);
                }
                *removed.entry(source.clone()).or_insert(0) += this_time;
                if !more {
                    break;
                }
            }
        }
        if let Some(cutoff_ms) = cutoff_ms {
            self.prune_joins(cutoff_ms)?;
        }
        Ok(removed)
    }

    /// Forgets the joins of stories whose entries were all first seen before `cutoff_ms`:
    /// retention has removed them, and no later entry names such a story (it names the
    /// story it was joined into).
    fn prune_joins(&self, cutoff_ms: i64) -> Result<(), StoreError> {
        let _alone = self.writes.write().unwrap_or_else(|p| p.into_inner());
        let mut batch = sled::Batch::default();
        let mut gone = Vec::new();
        for item in self.db()?.scan_prefix(b"j:") {
            let (k, v) = item.map_err(|e| self.db_error(e))?;
            let joined = split_join_key(&k);
            let stale = decode::<Join>(&v, "story join").is_none_or(|j| j.until_ms < cutoff_ms);
            if stale {
                batch.remove(k);
                gone.extend(joined);
            }
        }
        if !gone.is_empty() {
            self.db()?
                .apply_batch(batch)
                .map_err(|e| self.write_error(e))?;
            let mut joins = self.joins.write().unwrap_or_else(|p| p.into_inner());
            for (kind, joined) in &gone {
                joins.remove(*kind, joined);
            }
        }
        Ok(())
    }

    /// The number of keys under a prefix (for tests and metrics).
    pub fn count_prefix(&self, prefix: &[u8]) -> usize {
        self.db().map_or(0, |db| db.scan_prefix(prefix).count())
    }

    /// Waits until everything written so far is on disk. Alone (see [`Store::writes`]):
    /// sled 0.34 can deadlock when a flush runs beside a batch.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.flush_blocking())
            .await
            .map_err(|join| StoreError::Task(join.to_string()))?
    }

    /// Flushes, closes the store and opens it once more, so that sled writes its snapshot
    /// now: sled 0.34 writes one only when it opens, and replays the log written since the
    /// last one, which after a large `feedmill fetch` took a second per gigabyte of the next
    /// start. Needs every clone of the store dropped; if one lingers, this only flushes.
    pub fn close_with_snapshot(self) -> Result<(), StoreError> {
        self.flush_blocking()?;
        let (path, cache) = (self.path.clone(), self.cache);
        drop(self);
        // sled alone: the store was read in full when it was opened.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match open_sled(&path, cache) {
                Ok(db) => {
                    return db.flush().map(|_| ()).map_err(|source| StoreError::Write {
                        path: path.clone(),
                        source,
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

    /// [`Store::open_with_cache`], waiting up to `wait` while the store is locked: sled's
    /// flusher thread lets go of the file lock a moment after the last handle is dropped.
    pub fn open_when_free(
        path: &Path,
        cache: u64,
        wait: std::time::Duration,
    ) -> Result<Store, StoreError> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            match Store::open_with_cache(path, cache) {
                Err(StoreError::Locked(_)) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                other => return other,
            }
        }
    }

    /// Like [`Store::flush`], for callers outside an async runtime.
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        let _alone = self.writes.write().unwrap_or_else(|p| p.into_inner());
        self.db()?
            .flush()
            .map(|_| ())
            .map_err(|e| self.write_error(e))
    }

    /// Shows the entries of `sources` to `visit`, newest first, until it says stop. A k-way
    /// merge of the sources' indexes (one value each), so it decodes only the entries it
    /// shows, whatever the size of the store. Ties are broken by source name, then key.
    ///
    /// `newest` gives each source's [`SourceState::newest`] where known: a source's index is
    /// read only once the merge reaches its newest time, so a feed of the newest 50 of ten
    /// thousand sources reads a few dozen indexes, not ten thousand.
    pub fn visit_newest(
        &self,
        sources: &[String],
        newest: impl Fn(&str) -> Option<DateTime<Utc>>,
        mut visit: impl FnMut(StoredEntry) -> Visit,
    ) -> Result<(), StoreError> {
        let mut names: Vec<&str> = sources.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        // Unknown first (read at once), then newest first, as inverted times.
        let mut unopened: Vec<(Option<[u8; 8]>, usize)> = names
            .iter()
            .enumerate()
            .map(|(i, name)| (newest(name).map(inverted_millis), i))
            .collect();
        unopened.sort_unstable();
        let mut unopened = unopened.into_iter().peekable();
        let mut indexes: Vec<(Vec<Indexed>, usize)> =
            names.iter().map(|_| (Vec::new(), 0)).collect();
        // Min-heap on (inverted time, source position, key): the smallest is the newest.
        let mut heap: BinaryHeap<Reverse<([u8; 8], usize, EntryKey)>> = BinaryHeap::new();
        loop {
            // Read every source that may hold something as new as the heap's newest.
            while let Some(&(bound, i)) = unopened.peek() {
                let may_lead = match (bound, heap.peek()) {
                    (Some(bound), Some(Reverse((top, _, _)))) => bound <= *top,
                    _ => true,
                };
                if !may_lead {
                    break;
                }
                unopened.next();
                let index = self.index(names[i])?;
                if let Some(head) = index.first() {
                    heap.push(Reverse((head.sort, i, head.key)));
                }
                indexes[i] = (index, 0);
            }
            let Some(Reverse((_, i, key))) = heap.pop() else {
                break;
            };
            let (index, position) = &mut indexes[i];
            *position += 1;
            let next = index.get(*position).map(|n| Reverse((n.sort, i, n.key)));
            let Some(stored) = self.entry(names[i], &key)? else {
                heap.extend(next);
                continue;
            };
            match visit(stored) {
                Visit::Stop => break,
                Visit::DropSource => continue,
                Visit::Next => heap.extend(next),
            }
        }
        Ok(())
    }

    /// The state of every source that was ever fetched, by name.
    pub fn source_states(&self) -> Result<Vec<(String, SourceState)>, StoreError> {
        self.db()?
            .scan_prefix(b"s:")
            .map(|item| {
                let (k, v) = item.map_err(|e| self.db_error(e))?;
                let name = String::from_utf8_lossy(&k[2..]).into_owned();
                Ok(decode(&v, "source state").map(|state| (name, state)))
            })
            .filter_map(Result::transpose)
            .collect()
    }
}

/// Decodes a stored value; an undecodable one is logged and skipped, never fatal.
fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Option<T> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Some(value),
        Err(err) => {
            tracing::warn!("skipping an unreadable {what} in the store: {err}");
            None
        }
    }
}

/// A UTC time from milliseconds, for tests and callers that store them.
pub fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Validators;

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

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("opens");
        (dir, store)
    }

    /// The titles of the newest `limit` entries of `sources`, as the merge reads them.
    fn titles(store: &Store, sources: &[&str], limit: usize) -> Vec<String> {
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
        match Store::open(&dir.path().join("db")) {
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
        let opened = Store::open(&store).expect("opens");
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
        assert!(matches!(Store::open(&path), Err(StoreError::Locked(_))));
        store
            .db()
            .expect("open")
            .insert(b"m:schema", b"99")
            .expect("writes");
        store.flush_blocking().expect("flushes");
        drop(store);
        let reopened =
            Store::open_when_free(&path, DEFAULT_CACHE, std::time::Duration::from_secs(10));
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
            let store = Store::open(&path).expect("opens");
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
    fn reopen(path: &Path) -> Store {
        Store::open_when_free(path, DEFAULT_CACHE, std::time::Duration::from_secs(10))
            .expect("reopens")
    }

    /// Stores `article(outlet, 1)`, then, through `between`, the same text from "dept",
    /// and says which entry the repost names as its story's first.
    fn repost_root(path: &Path, between: impl FnOnce(Store) -> Store) -> Option<EntryKey> {
        let store = Store::open(path).expect("opens");
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
        let store = Store::open(&path).expect("opens");
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
        let first_seen = from_millis(1_000);
        let key = EntryKey::new("outlet", &original.identity);
        let prepared = Prepared::of(&original);
        // Matched and remembered by a commit that has not written it yet.
        let mut commits = store.lock_commits().expect("locks");
        let Commits {
            recent, pending, ..
        } = &mut *commits;
        let recent = recent.get_or_insert_with(|| RecentEntries::new(100));
        recent.insert("outlet", key, 1_000, &prepared.keys);
        pending.insert(
            key,
            Arc::new(Written {
                stored: StoredEntry {
                    source: "outlet".into(),
                    entry: original.clone(),
                    first_seen,
                    sort_time: first_seen,
                    same_link_as: None,
                    same_text_as: None,
                },
                record: prepared.record,
                new: true,
            }),
        );
        let repost = Entry {
            identity: "repost-1".into(),
            link: Some("https://outlet.example/1?utm_source=x".into()),
            ..original.clone()
        };
        let joins = Joins::default();
        let [by_link, by_text] = store
            .find_stories("dept", &Prepared::of(&repost), recent, pending, &joins)
            .expect("matches");
        assert_eq!(by_link.iter().map(|r| r.key).collect::<Vec<_>>(), [key]);
        assert_eq!(by_text.iter().map(|r| r.key).collect::<Vec<_>>(), [key]);
        assert_eq!(store.entry("outlet", &key).expect("reads"), None);
    }

    #[test]
    fn a_schema_3_store_opens_as_the_current_schema_as_it_is() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("db");
        let store = Store::open(&path).expect("opens");
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
        assert!(store.commits.lock().expect("locks").pending.is_empty());
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
    fn commit(store: &Store, source: &str, entries: &[Entry], ms: i64) -> CommitSummary {
        let mut state = store
            .source_state(source)
            .expect("reads")
            .unwrap_or_default();
        store
            .commit_fetch(source, &mut state, entries, from_millis(ms))
            .expect("commits")
    }

    fn stored(store: &Store, source: &str, entry: &Entry) -> StoredEntry {
        store
            .entry(source, &EntryKey::new(source, &entry.identity))
            .expect("reads")
            .expect("stored")
    }

    /// The first entry of `entry`'s story of `kind`, after joins.
    fn story(store: &Store, kind: StoryKind, source: &str, entry: &Entry) -> EntryKey {
        store.story_of(&stored(store, source, entry), kind).key
    }

    /// What a feed of `sources` with `dedup` shows: each story's entry's source and the
    /// sources it names.
    fn shown(store: &Store, sources: &[&str], dedup: Dedup) -> Vec<(String, Vec<String>)> {
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
        let mut out: Vec<(String, Vec<String>)> = crate::select::select(store, &feed, &|_| None)
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
    fn assert_one_story(store: &Store, order: &[&str]) {
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
            let mut store = Store::open(&path).expect("opens");
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
        let store = Store::open(&path).expect("opens");
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
        let store = Store::open(&path).expect("opens");
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
            .unwritten
            .push((StoryKind::Text, wire, join));
        commit(
            &store,
            "other",
            &[told("other", "https://o.example/", "", "else")],
            3_000,
        );
        assert_eq!(store.count_prefix(b"j:"), 1);
        assert!(store.commits.lock().expect("lock").unwritten.is_empty());
    }

    #[test]
    fn output_ids_are_stable_urns() {
        let key = EntryKey::new("imdaily", "urn:a");
        assert_eq!(key, EntryKey::new("imdaily", "urn:a"));
        assert_ne!(key, EntryKey::new("other", "urn:a"));
        let urn = key.urn();
        assert!(urn.starts_with("urn:uuid:") && urn.len() == 45, "{urn}");
    }
}
