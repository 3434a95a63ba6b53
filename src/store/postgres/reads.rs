//! Reads (an entry, newest first across sources, the joins), retention, export and import.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::leases::{encode_state, presented, stored_state, COUNT_ITEMS_OF, TOUCH_SOURCES};
use super::PgStore;
use crate::model::{EntryKey, StoredEntry, StoryKind};
use crate::store::matching::Prepared;
use crate::store::stories::{kind_of_tag, kind_tag, Join, Joins};
use crate::store::{Exported, StoreError, Visit};

/// An entry's row, as written: `(key, first_seen ms, sort_inv, link hash, fingerprint, body)`.
pub(super) struct EntryRow {
    pub(super) key: Vec<u8>,
    pub(super) first_seen: i64,
    pub(super) sort_inv: i64,
    pub(super) link_hash: Option<i64>,
    pub(super) fingerprint: Option<Vec<u8>>,
    pub(super) body: Vec<u8>,
}

impl EntryRow {
    /// The row of `stored`, with the match record its entry makes.
    pub(super) fn of(stored: &StoredEntry) -> EntryRow {
        let record = Prepared::of(&stored.entry).record;
        EntryRow::with_record(stored, record.link, record.fingerprint.as_ref())
    }

    /// The row of `stored` with a match record already made.
    pub(super) fn with_record(
        stored: &StoredEntry,
        link: Option<u64>,
        fingerprint: Option<&crate::dedup::Fingerprint>,
    ) -> EntryRow {
        EntryRow {
            key: stored.key().0.to_vec(),
            first_seen: stored.first_seen.timestamp_millis(),
            sort_inv: -stored.sort_time.timestamp_millis(),
            // The hash's bits, as PostgreSQL has no unsigned integers.
            link_hash: link.map(|l| l as i64),
            fingerprint: fingerprint.map(crate::dedup::Fingerprint::to_bytes),
            body: serde_json::to_vec(stored).unwrap_or_default(),
        }
    }
}

/// An entry key from a row's bytes.
pub(super) fn entry_key(bytes: &[u8]) -> Option<EntryKey> {
    Some(EntryKey(bytes.try_into().ok()?))
}

/// A stored entry from a row's body; an unreadable one is logged and skipped, never fatal.
pub(super) fn decode_entry(body: &[u8]) -> Option<StoredEntry> {
    serde_json::from_slice(body)
        .map_err(|err| tracing::warn!("skipping an unreadable entry in the database: {err}"))
        .ok()
}

/// The rows `visit_newest` reads at a time: a first page for the usual feed of a few
/// dozen entries, then larger ones.
const FIRST_PAGE: i64 = 128;
const LAST_PAGE: i64 = 4096;

impl PgStore {
    /// Reads every join into memory, replacing what was there.
    pub(super) fn load_joins(&self) -> Result<(), StoreError> {
        let rows: Vec<(i8, Vec<u8>, Vec<u8>)> = self.run(|pool| async move {
            sqlx::query_as("SELECT kind, joined, body FROM feedmill_joins")
                .fetch_all(&pool)
                .await
        })?;
        let mut joins = Joins::default();
        for (kind, joined, body) in rows {
            if let Some((kind, joined, join)) = decode_join(kind, &joined, &body) {
                joins.insert(kind, joined, join);
            }
        }
        *self.inner.joins.write().unwrap_or_else(|p| p.into_inner()) = joins;
        Ok(())
    }

    /// The stored entry `key` of `source`.
    pub(super) fn entry(
        &self,
        source: &str,
        key: &EntryKey,
    ) -> Result<Option<StoredEntry>, StoreError> {
        let (name, key) = (source.to_string(), key.0.to_vec());
        let row: Option<(Vec<u8>,)> = self.run(|pool| async move {
            sqlx::query_as("SELECT body FROM feedmill_entries WHERE source = $1 AND key = $2")
                .bind(name)
                .bind(key)
                .fetch_optional(&pool)
                .await
        })?;
        Ok(row.and_then(|(body,)| decode_entry(&body)))
    }

    /// Shows the entries of `sources` to `visit`, newest first, ties by source name (bytes)
    /// then key, as the sled engine orders them; page by page, so that a feed of the newest
    /// 50 reads a page, whatever the size of the store.
    pub(super) fn visit_newest(
        &self,
        sources: &[String],
        visit: &mut dyn FnMut(StoredEntry) -> Visit,
    ) -> Result<(), StoreError> {
        let mut names: Vec<String> = sources.to_vec();
        names.sort_unstable();
        names.dedup();
        let mut dropped: Vec<String> = Vec::new();
        let mut after: Option<(i64, String, Vec<u8>)> = None;
        let mut page = FIRST_PAGE;
        loop {
            let (wanted, from) = (
                names
                    .iter()
                    .filter(|n| !dropped.contains(n))
                    .cloned()
                    .collect::<Vec<_>>(),
                after.clone(),
            );
            if wanted.is_empty() {
                return Ok(());
            }
            let rows: Vec<(i64, String, Vec<u8>, Vec<u8>)> = self.run(move |pool| async move {
                match from {
                    None => {
                        sqlx::query_as(
                            "SELECT sort_inv, source, key, body FROM feedmill_entries
                         WHERE source = ANY($1) ORDER BY sort_inv, source, key LIMIT $2",
                        )
                        .bind(wanted)
                        .bind(page)
                        .fetch_all(&pool)
                        .await
                    }
                    Some((sort, source, key)) => {
                        sqlx::query_as(
                            "SELECT sort_inv, source, key, body FROM feedmill_entries
                         WHERE source = ANY($1) AND (sort_inv, source, key) > ($3, $4, $5)
                         ORDER BY sort_inv, source, key LIMIT $2",
                        )
                        .bind(wanted)
                        .bind(page)
                        .bind(sort)
                        .bind(source)
                        .bind(key)
                        .fetch_all(&pool)
                        .await
                    }
                }
            })?;
            let full = rows.len() as i64 == page;
            for (sort, source, key, body) in rows {
                after = Some((sort, source.clone(), key));
                if dropped.contains(&source) {
                    continue;
                }
                let Some(stored) = decode_entry(&body) else {
                    continue;
                };
                match visit(stored) {
                    Visit::Stop => return Ok(()),
                    Visit::DropSource => dropped.push(source),
                    Visit::Next => {}
                }
            }
            if !full {
                return Ok(());
            }
            page = (page * 2).min(LAST_PAGE);
        }
    }

    /// Retention, by one replica at a time (the others find the lock taken and skip):
    /// entries first seen before `cutoff`, beyond the newest `keep` of each source, and the
    /// joins of stories removed whole. The sources that lost entries are announced.
    pub(super) fn prune(
        &self,
        cutoff: Option<DateTime<Utc>>,
        keep: Option<usize>,
    ) -> Result<HashMap<String, usize>, StoreError> {
        let cutoff_ms = cutoff.map(|c| c.timestamp_millis());
        let keep = keep.map(|k| i64::try_from(k).unwrap_or(i64::MAX));
        let replica = self.inner.replica.clone();
        let (removed, gone_joins) = self.run(move |pool| async move {
            let mut tx = pool.begin().await?;
            let (mine,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_xact_lock($1)")
                .bind(super::schema::RETENTION_LOCK)
                .fetch_one(&mut *tx)
                .await?;
            if !mine {
                return Ok((Vec::new(), Vec::new()));
            }
            let mut removed: Vec<(String,)> = Vec::new();
            if let Some(cutoff_ms) = cutoff_ms {
                removed.extend(
                    sqlx::query_as::<_, (String,)>(
                        "DELETE FROM feedmill_entries WHERE first_seen < $1 RETURNING source",
                    )
                    .bind(cutoff_ms)
                    .fetch_all(&mut *tx)
                    .await?,
                );
            }
            if let Some(keep) = keep {
                removed.extend(
                    sqlx::query_as::<_, (String,)>(
                        "DELETE FROM feedmill_entries e USING (
                             SELECT source, key FROM (
                                 SELECT source, key, row_number() OVER
                                     (PARTITION BY source ORDER BY sort_inv, key) AS position
                                 FROM feedmill_entries) ranked
                             WHERE position > $1) doomed
                         WHERE e.source = doomed.source AND e.key = doomed.key
                         RETURNING e.source",
                    )
                    .bind(keep)
                    .fetch_all(&mut *tx)
                    .await?,
                );
            }
            let gone_joins: Vec<(i8, Vec<u8>)> = match cutoff_ms {
                Some(cutoff_ms) => {
                    sqlx::query_as(
                        "DELETE FROM feedmill_joins WHERE until_ms < $1 RETURNING kind, joined",
                    )
                    .bind(cutoff_ms)
                    .fetch_all(&mut *tx)
                    .await?
                }
                None => Vec::new(),
            };
            let mut counts: HashMap<String, usize> = HashMap::new();
            for (source,) in removed {
                *counts.entry(source).or_default() += 1;
            }
            let touched: Vec<String> = counts.keys().cloned().collect();
            // The items counts, from the rows that are left; the documents showing these
            // sources change.
            sqlx::query(COUNT_ITEMS_OF)
                .bind(&touched)
                .fetch_all(&mut *tx)
                .await?;
            sqlx::query(TOUCH_SOURCES)
                .bind(&touched)
                .execute(&mut *tx)
                .await?;
            if !touched.is_empty() {
                sqlx::query("SELECT pg_notify($1, $2)")
                    .bind(super::schema::CHANNEL)
                    .bind(super::watch::payload(&replica, &touched))
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            let counts: Vec<(String, usize)> = counts.into_iter().collect();
            Ok((counts, gone_joins))
        })?;
        if !gone_joins.is_empty() {
            let mut joins = self.inner.joins.write().unwrap_or_else(|p| p.into_inner());
            for (kind, joined) in gone_joins {
                if let (Some(kind), Some(joined)) = (kind_of_tag(kind as u8), entry_key(&joined)) {
                    joins.remove(kind, &joined);
                }
            }
        }
        Ok(removed.into_iter().collect())
    }

    /// Every source's state and entries, one source at a time, then every join.
    pub(super) fn export(
        &self,
        visit: &mut dyn FnMut(Exported) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let names: Vec<(String, Vec<u8>, i64)> = self.run(|pool| async move {
            sqlx::query_as(
                "SELECT name, state, items FROM feedmill_sources WHERE state IS NOT NULL ORDER BY name",
            )
            .fetch_all(&pool)
            .await
        })?;
        for (name, state, items) in names {
            let source = name.clone();
            let bodies: Vec<(Vec<u8>,)> = self.run(|pool| async move {
                sqlx::query_as("SELECT body FROM feedmill_entries WHERE source = $1 ORDER BY key")
                    .bind(source)
                    .fetch_all(&pool)
                    .await
            })?;
            let entries = bodies
                .iter()
                .filter_map(|(body,)| decode_entry(body))
                .collect();
            visit(Exported::Source {
                state: Box::new(stored_state(&name, &state, items)),
                name,
                entries,
            })?;
        }
        let joins: Vec<(i8, Vec<u8>, Vec<u8>)> = self.run(|pool| async move {
            sqlx::query_as("SELECT kind, joined, body FROM feedmill_joins ORDER BY kind, joined")
                .fetch_all(&pool)
                .await
        })?;
        for (kind, joined, body) in joins {
            if let Some((kind, joined, join)) = decode_join(kind, &joined, &body) {
                visit(Exported::Join { kind, joined, join })?;
            }
        }
        Ok(())
    }

    /// Writes what an export showed, replacing what the database held of that source (its
    /// entries get new commit numbers, so that every replica's matching index catches up
    /// on them).
    pub(super) fn import(&self, item: Exported) -> Result<(), StoreError> {
        match item {
            Exported::Source {
                name,
                state,
                entries,
            } => {
                let rows: Vec<EntryRow> = entries.iter().map(EntryRow::of).collect();
                let (bytes, next, shown) =
                    (encode_state(&state), state.next_fetch, presented(&state));
                let source = name.clone();
                self.run(move |pool| async move {
                    let mut tx = pool.begin().await?;
                    sqlx::query("SELECT 1 FROM feedmill_meta WHERE id = 1 FOR UPDATE")
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("DELETE FROM feedmill_entries WHERE source = $1")
                        .bind(&source)
                        .execute(&mut *tx)
                        .await?;
                    super::commit::insert_entries(&mut tx, &source, rows).await?;
                    sqlx::query(
                        "INSERT INTO feedmill_sources (name, state, next_fetch, presented, changed_at)
                         VALUES ($1, $2, $3, $4, date_trunc('second', clock_timestamp()) + interval '1 second')
                         ON CONFLICT (name) DO UPDATE SET state = EXCLUDED.state,
                             next_fetch = EXCLUDED.next_fetch, presented = EXCLUDED.presented,
                             changed_at = GREATEST(EXCLUDED.changed_at,
                                                   feedmill_sources.changed_at + interval '1 second'),
                             lease_owner = NULL, lease_until = NULL",
                    )
                    .bind(&source)
                    .bind(bytes)
                    .bind(next)
                    .bind(shown)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(COUNT_ITEMS_OF)
                        .bind(vec![source.clone()])
                        .fetch_optional(&mut *tx)
                        .await?;
                    tx.commit().await
                })?;
            }
            Exported::Join { kind, joined, join } => {
                let body = serde_json::to_vec(&join).unwrap_or_default();
                let until = join.until_ms;
                self.run(move |pool| async move {
                    sqlx::query(
                        "INSERT INTO feedmill_joins (kind, joined, seq, until_ms, body)
                         VALUES ($1, $2, nextval('feedmill_seq'), $3, $4)
                         ON CONFLICT (kind, joined) DO UPDATE SET seq = EXCLUDED.seq,
                             until_ms = EXCLUDED.until_ms, body = EXCLUDED.body",
                    )
                    .bind(kind_tag(kind) as i8)
                    .bind(joined.0.to_vec())
                    .bind(until)
                    .bind(body)
                    .execute(&pool)
                    .await
                })?;
                self.inner
                    .joins
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(kind, joined, join);
            }
        }
        // The matching index is rebuilt from what is stored now, at the next commit.
        *self
            .inner
            .matching
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }
}

/// A join from its row; an unreadable one is logged and skipped.
pub(super) fn decode_join(
    kind: i8,
    joined: &[u8],
    body: &[u8],
) -> Option<(StoryKind, EntryKey, Join)> {
    let kind = kind_of_tag(kind as u8)?;
    let joined = entry_key(joined)?;
    let join = serde_json::from_slice(body)
        .map_err(|err| tracing::warn!("skipping an unreadable story join in the database: {err}"))
        .ok()?;
    Some((kind, joined, join))
}
