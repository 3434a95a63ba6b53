//! The commit: one response of one source, in one transaction.
//!
//! Story matching must see every replica's entries, as it sees every source's in one
//! process. So a commit that stores entries takes the matching lock (the row lock of
//! `feedmill_meta`), brings this replica's matching index up to date with the commits it
//! has not seen (by `seq`, the commit order), matches, writes the joins, the entries and the
//! state, announces the change, and commits, which releases the lock. Two replicas storing
//! the same story from two outlets at once thus make one story, and the `(source, key)`
//! primary key keeps one row per item whatever happens. Entries and state are one
//! transaction: validators are never ahead of their entries.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::mpsc::TryRecvError;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use sqlx::{Postgres, Transaction};

use super::leases::{encode_state, presented, COUNT_ITEMS_OF, SAVE_STATES, TOUCH_SOURCES};
use super::reads::{decode_entry, decode_join, entry_key, EntryRow};
use super::{schema, watch, Inner, Matching, PgStore};
use crate::model::{CommitSummary, Entry, EntryKey, EntryRef, SourceState, StoredEntry};
use crate::store::matcher::{Candidates, Change, Matcher};
use crate::store::matching::{MatchRecord, NamedFirsts, Prepared};
use crate::store::stories::kind_tag;
use crate::store::StoreError;

type Tx = Transaction<'static, Postgres>;

/// Catch-up reads this many commits' rows at a time.
const CATCH_UP_PAGE: i64 = 5_000;

impl Inner {
    /// Runs `future` on the engine's runtime and waits for it (for futures that carry a
    /// transaction from one step to the next).
    fn block_on<T: Send + 'static>(
        &self,
        future: impl Future<Output = Result<T, sqlx::Error>> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.run(|_| future)
    }

    /// Brings the matching index up to date with what other replicas committed (when it is
    /// loaded; else the next commit loads it whole).
    pub(super) fn catch_up(&self) -> Result<(), StoreError> {
        let mut matching = self.matching.lock().unwrap_or_else(|p| p.into_inner());
        let Some(loaded) = matching.as_mut() else {
            return Ok(());
        };
        let pool = self.pool.clone();
        let tx = self.block_on(async move { pool.begin().await })?;
        let tx = self.catch_up_in(tx, loaded)?;
        drop(tx);
        Ok(())
    }

    /// Reads, in `tx`, the joins and entries committed after `matching.seq`, and remembers
    /// them.
    fn catch_up_in(&self, tx: Tx, matching: &mut Matching) -> Result<Tx, StoreError> {
        let mut tx = tx;
        let after = matching.seq;
        let (back, joins): (Tx, Vec<JoinRow>) = self.block_on(async move {
            let rows = sqlx::query_as(
                "SELECT kind, joined, body, seq FROM feedmill_joins WHERE seq > $1 ORDER BY seq",
            )
            .bind(after)
            .fetch_all(&mut *tx)
            .await?;
            Ok((tx, rows))
        })?;
        tx = back;
        {
            let mut held = self.joins.write().unwrap_or_else(|p| p.into_inner());
            for (kind, joined, body, seq) in joins {
                if let Some((kind, joined, join)) = decode_join(kind, &joined, &body) {
                    held.insert(kind, joined, join);
                }
                matching.seq = matching.seq.max(seq);
            }
        }
        let mut after = after;
        loop {
            let (back, rows) = self.block_on(async move {
                let rows: Vec<RememberRow> = sqlx::query_as(
                    "SELECT source, key, first_seen, link_hash, fingerprint, body, seq
                     FROM feedmill_entries WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(after)
                .bind(CATCH_UP_PAGE)
                .fetch_all(&mut *tx)
                .await?;
                Ok((tx, rows))
            })?;
            tx = back;
            let full = rows.len() as i64 == CATCH_UP_PAGE;
            let joins = self.joins.read().unwrap_or_else(|p| p.into_inner());
            for row in rows {
                after = after.max(row.6);
                matching.seq = matching.seq.max(row.6);
                if let Some((me, record)) = remembered(&row) {
                    matching.matcher.remember(&joins, &me, &record);
                }
            }
            drop(joins);
            if !full {
                return Ok(tx);
            }
        }
    }

    /// Loads the matching index in `tx` (under the matching lock): the joins, then the newest
    /// `match_window` entries by first-seen time, oldest first, as the sled engine does.
    fn load_in(&self, tx: Tx) -> Result<(Tx, Matching), StoreError> {
        let mut tx = tx;
        let window = i64::try_from(self.match_window).unwrap_or(i64::MAX);
        let (back, joins, rows, seq) = self.block_on(async move {
            let joins: Vec<(i8, Vec<u8>, Vec<u8>)> =
                sqlx::query_as("SELECT kind, joined, body FROM feedmill_joins")
                    .fetch_all(&mut *tx)
                    .await?;
            let rows: Vec<RememberRow> = sqlx::query_as(
                "SELECT * FROM (SELECT source, key, first_seen, link_hash, fingerprint, body, seq
                                FROM feedmill_entries ORDER BY first_seen DESC, source, key LIMIT $1) newest
                 ORDER BY first_seen, source, key",
            )
            .bind(window)
            .fetch_all(&mut *tx)
            .await?;
            let (seq,): (i64,) = sqlx::query_as(
                "SELECT GREATEST((SELECT coalesce(max(seq), 0) FROM feedmill_entries),
                                 (SELECT coalesce(max(seq), 0) FROM feedmill_joins))",
            )
            .fetch_one(&mut *tx)
            .await?;
            Ok((tx, joins, rows, seq))
        })?;
        let mut held = crate::store::stories::Joins::default();
        for (kind, joined, body) in joins {
            if let Some((kind, joined, join)) = decode_join(kind, &joined, &body) {
                held.insert(kind, joined, join);
            }
        }
        let mut matcher = Matcher::new(self.match_window);
        for row in &rows {
            if let Some((me, record)) = remembered(row) {
                matcher.remember(&held, &me, &record);
            }
        }
        *self.joins.write().unwrap_or_else(|p| p.into_inner()) = held;
        crate::memory::trim();
        Ok((back, Matching { matcher, seq }))
    }
}

/// A join's row: kind, joined, body, seq.
type JoinRow = (i8, Vec<u8>, Vec<u8>, i64);

/// A candidate's row: link hash, fingerprint, body.
type CandidateRow = (Option<i64>, Option<Vec<u8>>, Vec<u8>);

/// An entry row as matching remembers it: source, key, first seen, link hash, fingerprint,
/// body, seq.
type RememberRow = (
    String,
    Vec<u8>,
    i64,
    Option<i64>,
    Option<Vec<u8>>,
    Vec<u8>,
    i64,
);

/// What matching remembers of a stored row.
fn remembered(row: &RememberRow) -> Option<(EntryRef, MatchRecord)> {
    let (source, key, first_seen, link, fingerprint, body, _) = row;
    let named: NamedFirsts = serde_json::from_slice(body).ok()?;
    let me = EntryRef {
        source: source.clone(),
        key: entry_key(key)?,
        first_seen: DateTime::from_timestamp_millis(*first_seen)?,
    };
    let record = MatchRecord {
        link: link.map(|l| l as u64),
        fingerprint: fingerprint
            .as_deref()
            .and_then(crate::dedup::Fingerprint::from_bytes),
        firsts: Some([named.same_link_as, named.same_text_as]),
    };
    Some((me, record))
}

/// Candidates for matching, read from what is committed (under the matching lock, every
/// other replica's commits are).
struct Committed<'a>(&'a Inner);

impl Candidates for Committed<'_> {
    fn candidate(
        &self,
        source: &str,
        key: &EntryKey,
        check: &dyn Fn(&MatchRecord) -> bool,
    ) -> Result<Option<StoredEntry>, StoreError> {
        let (name, key) = (source.to_string(), key.0.to_vec());
        let row: Option<CandidateRow> = self.0.run(|pool| async move {
            sqlx::query_as(
                "SELECT link_hash, fingerprint, body FROM feedmill_entries WHERE source = $1 AND key = $2",
            )
            .bind(name)
            .bind(key)
            .fetch_optional(&pool)
            .await
        })?;
        Ok(row.and_then(|row| checked(&row, check)))
    }
}

/// The entry of a candidate's row, if its match record passes `check` (decoded only then).
fn checked(row: &CandidateRow, check: &dyn Fn(&MatchRecord) -> bool) -> Option<StoredEntry> {
    let (link, fingerprint, body) = row;
    let record = MatchRecord {
        link: link.map(|l| l as u64),
        fingerprint: fingerprint
            .as_deref()
            .and_then(crate::dedup::Fingerprint::from_bytes),
        firsts: None,
    };
    if check(&record) {
        decode_entry(body)
    } else {
        None
    }
}

/// A prefetched candidate's row: source, key, link hash, fingerprint, body.
type PrefetchedRow = (String, Vec<u8>, Option<i64>, Option<Vec<u8>>, Vec<u8>);

/// Candidates read in one query before a batch is matched ([`Matcher::lookups`]): a
/// lookup per candidate would be a round trip each while the matching lock is held. What
/// was read is answered from here (`None`: no longer stored); anything else is asked for.
struct Prefetched<'a> {
    rows: HashMap<(String, EntryKey), Option<CandidateRow>>,
    committed: Committed<'a>,
}

impl Candidates for Prefetched<'_> {
    fn candidate(
        &self,
        source: &str,
        key: &EntryKey,
        check: &dyn Fn(&MatchRecord) -> bool,
    ) -> Result<Option<StoredEntry>, StoreError> {
        match self.rows.get(&(source.to_string(), *key)) {
            Some(row) => Ok(row.as_ref().and_then(|row| checked(row, check))),
            None => self.committed.candidate(source, key, check),
        }
    }
}

impl Inner {
    /// Reads the candidates `wanted` in one query (see [`Prefetched`]).
    fn prefetch(&self, mut wanted: Vec<(String, EntryKey)>) -> Result<Prefetched<'_>, StoreError> {
        wanted.sort_unstable();
        wanted.dedup();
        let mut rows: HashMap<(String, EntryKey), Option<CandidateRow>> = HashMap::new();
        if !wanted.is_empty() {
            let sources: Vec<String> = wanted.iter().map(|(s, _)| s.clone()).collect();
            let keys: Vec<Vec<u8>> = wanted.iter().map(|(_, k)| k.0.to_vec()).collect();
            let found: Vec<PrefetchedRow> = self.run(|pool| async move {
                sqlx::query_as(
                    "SELECT e.source, e.key, e.link_hash, e.fingerprint, e.body
                         FROM UNNEST($1::text[], $2::bytea[]) AS w(source, key)
                         JOIN feedmill_entries e ON e.source = w.source AND e.key = w.key",
                )
                .bind(sources)
                .bind(keys)
                .fetch_all(&pool)
                .await
            })?;
            rows.extend(wanted.into_iter().map(|k| (k, None)));
            for (source, key, link, fingerprint, body) in found {
                if let Some(key) = entry_key(&key) {
                    rows.insert((source, key), Some((link, fingerprint, body)));
                }
            }
        }
        Ok(Prefetched {
            rows,
            committed: Committed(self),
        })
    }
}

/// Inserts (or, for entries stored before, updates) `rows` of `source`, each with a new
/// commit number; answers the largest.
pub(super) async fn insert_entries(
    tx: &mut Tx,
    source: &str,
    rows: Vec<EntryRow>,
) -> Result<i64, sqlx::Error> {
    let rows = rows
        .into_iter()
        .map(|row| (source.to_string(), row))
        .collect();
    insert_rows(tx, rows).await
}

/// Inserts (or updates) entry rows, each of its source, in one statement, each with a new
/// commit number; answers the largest. A row may appear once (a statement may not write a
/// row twice).
async fn insert_rows(tx: &mut Tx, rows: Vec<(String, EntryRow)>) -> Result<i64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut sources = Vec::with_capacity(rows.len());
    let mut keys = Vec::with_capacity(rows.len());
    let mut seen = Vec::with_capacity(rows.len());
    let mut sorts = Vec::with_capacity(rows.len());
    let mut links = Vec::with_capacity(rows.len());
    let mut prints = Vec::with_capacity(rows.len());
    let mut bodies = Vec::with_capacity(rows.len());
    for (source, row) in rows {
        sources.push(source);
        keys.push(row.key);
        seen.push(row.first_seen);
        sorts.push(row.sort_inv);
        links.push(row.link_hash);
        prints.push(row.fingerprint);
        bodies.push(row.body);
    }
    let (max,): (Option<i64>,) = sqlx::query_as(
        "WITH written AS (
             INSERT INTO feedmill_entries
                 (source, key, seq, first_seen, sort_inv, link_hash, fingerprint, body)
             SELECT n, k, nextval('feedmill_seq'), f, s, l, p, b
             FROM UNNEST($1::text[], $2::bytea[], $3::int8[], $4::int8[], $5::int8[],
                         $6::bytea[], $7::bytea[])
                 AS t(n, k, f, s, l, p, b)
             ON CONFLICT (source, key) DO UPDATE SET
                 seq = EXCLUDED.seq, sort_inv = EXCLUDED.sort_inv,
                 link_hash = EXCLUDED.link_hash, fingerprint = EXCLUDED.fingerprint,
                 body = EXCLUDED.body
             RETURNING seq)
         SELECT max(seq) FROM written",
    )
    .bind(sources)
    .bind(keys)
    .bind(seen)
    .bind(sorts)
    .bind(links)
    .bind(prints)
    .bind(bodies)
    .fetch_one(&mut **tx)
    .await?;
    Ok(max.unwrap_or(0))
}

/// The most commits one transaction carries. Commits wait for the matching lock one after
/// another; the one that gets it takes every commit waiting (up to this many) into its
/// transaction: one lock, one catch-up, one insert of their entries, one save of their
/// states, one flush of the log, where each would have paid for its own.
const BATCH_MAX: usize = 64;

/// One source's commit, prepared off the lock, waiting for it in [`Inner::waiting`].
pub(super) struct Job {
    source: String,
    state: SourceState,
    /// The new and changed entries, with [`Job::changes`] alike.
    entries: Vec<Entry>,
    /// For each of `entries`: its position in the response, key, stored row and what
    /// matching needs of it.
    changes: Vec<(usize, EntryKey, Option<StoredEntry>, Prepared)>,
    now: DateTime<Utc>,
    /// Where the commit's outcome goes: the summary and the state as written.
    reply: std::sync::mpsc::Sender<Result<(CommitSummary, SourceState), StoreError>>,
}

/// A job matched, waiting for the batch's write.
struct MatchedJob {
    job: Job,
    matched: crate::store::matcher::Matched,
    rows: Vec<EntryRow>,
}

/// The same error again, for each commit of a batch that failed together.
fn again(err: &StoreError) -> StoreError {
    match err {
        StoreError::Unreachable { url, reason } => StoreError::Unreachable {
            url: url.clone(),
            reason: reason.clone(),
        },
        StoreError::Database { url, reason } => StoreError::Database {
            url: url.clone(),
            reason: reason.clone(),
        },
        StoreError::NewerDatabase {
            url,
            found,
            understood,
        } => StoreError::NewerDatabase {
            url: url.clone(),
            found: *found,
            understood: *understood,
        },
        other => StoreError::Task(other.to_string()),
    }
}

/// Takes the waiting commits for one batch, oldest first: at most [`BATCH_MAX`], and one
/// per source (a statement may not write a row twice).
fn take_batch(waiting: &Mutex<VecDeque<Job>>) -> Vec<Job> {
    let mut waiting = waiting.lock().unwrap_or_else(|p| p.into_inner());
    let mut batch: Vec<Job> = Vec::new();
    let mut left = VecDeque::new();
    while let Some(job) = waiting.pop_front() {
        if batch.len() < BATCH_MAX && batch.iter().all(|b| b.source != job.source) {
            batch.push(job);
        } else {
            left.push_back(job);
        }
    }
    *waiting = left;
    batch
}

/// The error of a commit whose batch ended without an answer (its writer panicked).
fn lost() -> StoreError {
    StoreError::Task("the batch carrying this commit failed without an answer".into())
}

/// Answers every job of a batch that failed with `err`.
fn fail_all(jobs: impl IntoIterator<Item = Job>, err: &StoreError) {
    for job in jobs {
        let _ = job.reply.send(Err(again(err)));
    }
}

impl PgStore {
    /// Stores one response of `source` (see the module's doc), in a batch with the
    /// commits waiting beside it.
    pub(super) fn commit_fetch(
        &self,
        source: &str,
        state: &mut SourceState,
        entries: &[Entry],
        now: DateTime<Utc>,
    ) -> Result<CommitSummary, StoreError> {
        let inner = &self.inner;
        state.fetched_by = Some(inner.replica.clone());
        // Which entries changed: read this source's rows for the response's keys. Only the
        // replica holding the lease commits this source, so they stay as read.
        let keyed: Vec<(usize, &Entry, EntryKey)> = entries
            .iter()
            .enumerate()
            .map(|(position, entry)| (position, entry, EntryKey::new(source, &entry.identity)))
            .collect();
        let (name, keys) = (
            source.to_string(),
            keyed
                .iter()
                .map(|(_, _, k)| k.0.to_vec())
                .collect::<Vec<_>>(),
        );
        let olds: Vec<(Vec<u8>, Vec<u8>)> = self.run(|pool| async move {
            sqlx::query_as(
                "SELECT key, body FROM feedmill_entries WHERE source = $1 AND key = ANY($2)",
            )
            .bind(name)
            .bind(keys)
            .fetch_all(&pool)
            .await
        })?;
        let mut olds: HashMap<EntryKey, StoredEntry> = olds
            .into_iter()
            .filter_map(|(key, body)| Some((entry_key(&key)?, decode_entry(&body)?)))
            .collect();
        let mut changed_entries = Vec::new();
        let mut changes = Vec::new();
        for (position, entry, key) in keyed {
            let old = olds.remove(&key);
            if old.as_ref().is_some_and(|old| old.entry == *entry) {
                continue;
            }
            changes.push((position, key, old, Prepared::of(entry)));
            changed_entries.push(entry.clone());
        }
        if changes.is_empty() {
            PgStore::save_state(self, source, state)?;
            return Ok(CommitSummary::default());
        }

        let (reply, answer) = std::sync::mpsc::channel();
        inner
            .waiting
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push_back(Job {
                source: source.to_string(),
                state: state.clone(),
                entries: changed_entries,
                changes,
                now,
                reply,
            });
        loop {
            let mut matching = inner.matching.lock().unwrap_or_else(|p| p.into_inner());
            // A batch before may have carried this commit: it answers before it lets go of
            // the lock.
            let outcome = match answer.try_recv() {
                Ok(outcome) => outcome,
                Err(TryRecvError::Disconnected) => Err(lost()),
                Err(TryRecvError::Empty) => {
                    let batch = take_batch(&inner.waiting);
                    self.commit_batch(&mut matching, batch);
                    drop(matching);
                    match answer.try_recv() {
                        Ok(outcome) => outcome,
                        // Not in this batch (it was full): wait for the lock again.
                        Err(TryRecvError::Empty) => continue,
                        Err(TryRecvError::Disconnected) => Err(lost()),
                    }
                }
            };
            return outcome.map(|(summary, written)| {
                *state = written;
                summary
            });
        }
    }

    /// Matches and writes `jobs` in one transaction under the matching lock, and answers
    /// each.
    fn commit_batch(&self, matching: &mut Option<Matching>, jobs: Vec<Job>) {
        let inner = &self.inner;
        if jobs.is_empty() {
            return;
        }
        let pool = inner.pool.clone();
        let locked = inner.block_on(async move {
            let mut tx = pool.begin().await?;
            sqlx::query("SELECT 1 FROM feedmill_meta WHERE id = 1 FOR UPDATE")
                .execute(&mut *tx)
                .await?;
            Ok(tx)
        });
        let caught_up = locked.and_then(|tx| match matching.as_mut() {
            Some(loaded) => inner.catch_up_in(tx, loaded),
            None => {
                let (tx, loaded) = inner.load_in(tx)?;
                *matching = Some(loaded);
                Ok(tx)
            }
        });
        let (tx, loaded) = match (caught_up, matching.as_mut()) {
            (Ok(tx), Some(loaded)) => (tx, loaded),
            (Err(err), _) => return fail_all(jobs, &err),
            (Ok(_), None) => {
                let err = StoreError::Task("the matching index is not loaded".into());
                return fail_all(jobs, &err);
            }
        };
        let mut wanted = Vec::new();
        for job in &jobs {
            for (_, _, _, prepared) in &job.changes {
                loaded.matcher.lookups(&job.source, prepared, &mut wanted);
            }
        }
        let candidates = match inner.prefetch(wanted) {
            Ok(candidates) => candidates,
            Err(err) => return fail_all(jobs, &err),
        };
        let mut matched_jobs = Vec::with_capacity(jobs.len());
        let mut jobs = jobs.into_iter();
        while let Some(mut job) = jobs.next() {
            let changes: Vec<Change<'_>> = job
                .entries
                .iter()
                .zip(std::mem::take(&mut job.changes))
                .map(|(entry, (position, key, old, prepared))| Change {
                    position,
                    entry,
                    key,
                    old,
                    prepared,
                })
                .collect();
            let matched = loaded.matcher.match_commit(
                &job.source,
                changes,
                job.now,
                &inner.joins,
                &candidates,
            );
            let matched = match matched {
                Ok(matched) => matched,
                Err(err) => {
                    // What matching did in memory was never written: the next commit loads
                    // the index and the joins afresh from what is stored.
                    *matching = None;
                    let _ = job.reply.send(Err(again(&err)));
                    fail_all(matched_jobs.into_iter().map(|m: MatchedJob| m.job), &err);
                    return fail_all(jobs, &err);
                }
            };
            let mut rows = Vec::with_capacity(matched.written.len());
            for (_, written) in &matched.written {
                job.state.newest = job.state.newest.max(Some(written.stored.sort_time));
                rows.push(EntryRow::with_record(
                    &written.stored,
                    written.record.link,
                    written.record.fingerprint.as_ref(),
                ));
            }
            matched_jobs.push(MatchedJob { job, matched, rows });
        }
        match inner.block_on(write_batch(
            tx,
            inner.replica.clone(),
            batch_writes(&mut matched_jobs),
        )) {
            Ok((top, items)) => {
                loaded.seq = loaded.seq.max(top);
                for MatchedJob {
                    mut job, matched, ..
                } in matched_jobs
                {
                    loaded
                        .matcher
                        .forget_pending(matched.written.iter().map(|(key, _)| key));
                    job.state.items = items.get(&job.source).copied().unwrap_or(0);
                    self.forget_lease(&job.source);
                    let _ = job.reply.send(Ok((matched.summary, job.state)));
                }
            }
            Err(err) => {
                *matching = None;
                fail_all(matched_jobs.into_iter().map(|m| m.job), &err);
            }
        }
    }
}

/// A state's row: name, state, next fetch, presented.
type StateRow = (String, Vec<u8>, Option<DateTime<Utc>>, Vec<u8>);

/// What a batch writes, gathered from its matched jobs.
struct BatchWrites {
    /// Joins: kind, joined key, until, body.
    joins: Vec<(i8, Vec<u8>, i64, Vec<u8>)>,
    /// Entry rows, each with its source.
    rows: Vec<(String, EntryRow)>,
    /// States: name, state, next fetch, presented.
    states: Vec<StateRow>,
    /// The sources whose documents change: the committed ones and those whose stories
    /// their entries joined.
    announced: Vec<String>,
}

fn batch_writes(jobs: &mut [MatchedJob]) -> BatchWrites {
    let mut writes = BatchWrites {
        joins: Vec::new(),
        rows: Vec::new(),
        states: Vec::new(),
        announced: Vec::new(),
    };
    for MatchedJob { job, matched, rows } in jobs.iter_mut() {
        writes
            .joins
            .extend(matched.joins.iter().map(|(kind, key, join)| {
                (
                    kind_tag(*kind) as i8,
                    key.0.to_vec(),
                    join.until_ms,
                    serde_json::to_vec(join).unwrap_or_default(),
                )
            }));
        writes.rows.extend(
            std::mem::take(rows)
                .into_iter()
                .map(|row| (job.source.clone(), row)),
        );
        writes.states.push((
            job.source.clone(),
            encode_state(&job.state),
            job.state.next_fetch,
            presented(&job.state),
        ));
        writes.announced.push(job.source.clone());
        writes
            .announced
            .extend(matched.summary.joined.iter().cloned());
    }
    writes.announced.sort_unstable();
    writes.announced.dedup();
    writes
}

/// Writes a batch in `tx` (which holds the matching lock) and commits: the joins, the
/// entries, the states, the items counted from the rows, the times of change, and the
/// announcement. Answers the largest commit number written and each source's items.
async fn write_batch(
    mut tx: Tx,
    replica: String,
    writes: BatchWrites,
) -> Result<(i64, HashMap<String, u64>), sqlx::Error> {
    let mut top = 0;
    for (kind, joined, until, body) in writes.joins {
        let (seq,): (i64,) = sqlx::query_as(
            "INSERT INTO feedmill_joins (kind, joined, seq, until_ms, body)
             VALUES ($1, $2, nextval('feedmill_seq'), $3, $4)
             ON CONFLICT (kind, joined) DO UPDATE SET seq = EXCLUDED.seq,
                 until_ms = EXCLUDED.until_ms, body = EXCLUDED.body
             RETURNING seq",
        )
        .bind(kind)
        .bind(joined)
        .bind(until)
        .bind(body)
        .fetch_one(&mut *tx)
        .await?;
        top = top.max(seq);
    }
    top = top.max(insert_rows(&mut tx, writes.rows).await?);
    let mut names = Vec::with_capacity(writes.states.len());
    let mut states = Vec::with_capacity(writes.states.len());
    let mut nexts = Vec::with_capacity(writes.states.len());
    let mut shown = Vec::with_capacity(writes.states.len());
    for (name, state, next, presented) in writes.states {
        names.push(name);
        states.push(state);
        nexts.push(next);
        shown.push(presented);
    }
    sqlx::query(SAVE_STATES)
        .bind(&names)
        .bind(states)
        .bind(nexts)
        .bind(shown)
        .bind(&replica)
        .execute(&mut *tx)
        .await?;
    // The rows are the truth; a count kept by adding up could drift.
    let items: Vec<(String, i64)> = sqlx::query_as(COUNT_ITEMS_OF)
        .bind(&names)
        .fetch_all(&mut *tx)
        .await?;
    // Every document showing these sources changes: the sources', and those of the
    // sources whose stories their entries joined (their "via" links).
    sqlx::query(TOUCH_SOURCES)
        .bind(&writes.announced)
        .execute(&mut *tx)
        .await?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(schema::CHANNEL)
        .bind(watch::payload(&replica, &writes.announced))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let items = items
        .into_iter()
        .map(|(name, n)| (name, u64::try_from(n).unwrap_or(0)))
        .collect();
    Ok((top, items))
}
