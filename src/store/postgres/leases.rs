//! Source states and the leases on their fetches.
//!
//! A replica that finds a source due claims it ([`PgStore::claim`], the `feedmill_claim`
//! function of the schema, one round trip): it wins when no live lease is held by another
//! replica, the stored state is still due (no replica fetched it for this due time yet) and
//! the source's host has fewer than `per_host` fetches in flight across replicas. Saving the
//! state after the fetch ends the lease; a replica that dies holding one loses it when
//! `lease_until` passes, and the next claim takes the source over.

use chrono::{DateTime, Utc};

use super::PgStore;
use crate::model::SourceState;
use crate::store::{Claim, ClaimRequest, StoreError};

/// A state as stored: its JSON.
pub(super) fn encode_state(state: &SourceState) -> Vec<u8> {
    serde_json::to_vec(state).unwrap_or_default()
}

/// A stored state; an unreadable one is logged and read as never fetched (it is fetched
/// again), never fatal.
pub(super) fn decode_state(source: &str, bytes: &[u8]) -> SourceState {
    serde_json::from_slice(bytes).unwrap_or_else(|err| {
        tracing::warn!(
            source,
            "unreadable source state in the database ({err}); fetching the source afresh"
        );
        SourceState::default()
    })
}

/// A stored state with the count of its entries' rows.
pub(super) fn stored_state(source: &str, bytes: &[u8], items: i64) -> SourceState {
    SourceState {
        items: u64::try_from(items).unwrap_or_default(),
        ..decode_state(source, bytes)
    }
}

/// Sets the `items` of each source named in `$1` to the count of its rows (after a commit,
/// retention, an import), answering name and count.
pub(super) const COUNT_ITEMS_OF: &str = "UPDATE feedmill_sources s
    SET items = (SELECT count(*) FROM feedmill_entries e WHERE e.source = s.name)
    WHERE s.name = ANY($1) RETURNING s.name, s.items";

/// What of a state shows in the outputs (the source's title, URL and home page): when it
/// changes, so does every document that names the source.
pub(super) fn presented(state: &SourceState) -> Vec<u8> {
    let mut out = Vec::new();
    for part in [
        state.title.as_deref().unwrap_or(""),
        &state.url,
        state.site_link.as_deref().unwrap_or(""),
    ] {
        out.extend_from_slice(part.as_bytes());
        out.push(0);
    }
    out
}

/// Moves the `changed_at` of each source named in `$1` (whole seconds, always forward, so
/// that Last-Modified does): what their documents show changed.
pub(super) const TOUCH_SOURCES: &str = "UPDATE feedmill_sources
    SET changed_at = date_trunc('second', GREATEST(clock_timestamp(), changed_at))
                     + interval '1 second'
    WHERE name = ANY($1)";

/// The SQL that saves states (arrays alike: `$1` names, `$2` states, `$3` next fetches,
/// `$4` presented; `$5` this replica), ending this replica's leases and moving `changed_at` when what the
/// outputs show of the source changed. `changed_at` moves by whole seconds and always
/// forward, so that Last-Modified does.
pub(super) const SAVE_STATES: &str = r#"
    INSERT INTO feedmill_sources (name, state, next_fetch, presented)
    SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::timestamptz[], $4::bytea[])
    ON CONFLICT (name) DO UPDATE SET
        state = EXCLUDED.state,
        next_fetch = EXCLUDED.next_fetch,
        presented = EXCLUDED.presented,
        changed_at = CASE WHEN feedmill_sources.presented IS DISTINCT FROM EXCLUDED.presented
            THEN date_trunc('second', GREATEST(clock_timestamp(), feedmill_sources.changed_at))
                 + interval '1 second'
            ELSE feedmill_sources.changed_at END,
        lease_owner = CASE WHEN feedmill_sources.lease_owner = $5 THEN NULL
            ELSE feedmill_sources.lease_owner END,
        lease_until = CASE WHEN feedmill_sources.lease_owner = $5 THEN NULL
            ELSE feedmill_sources.lease_until END
"#;

impl PgStore {
    /// The saved state of `source`, if it was ever fetched.
    pub(super) fn source_state(&self, source: &str) -> Result<Option<SourceState>, StoreError> {
        let name = source.to_string();
        let row: Option<(Option<Vec<u8>>, i64)> = self.run(|pool| async move {
            sqlx::query_as("SELECT state, items FROM feedmill_sources WHERE name = $1")
                .bind(name)
                .fetch_optional(&pool)
                .await
        })?;
        Ok(row.and_then(|(state, items)| Some(stored_state(source, &state?, items))))
    }

    /// Saves the state of `source`, as fetched by this replica, and ends its lease.
    pub(super) fn save_state(&self, source: &str, state: &SourceState) -> Result<(), StoreError> {
        let mut state = state.clone();
        state.fetched_by = Some(self.inner.replica.clone());
        let (name, bytes, next, shown, me) = (
            source.to_string(),
            encode_state(&state),
            state.next_fetch,
            presented(&state),
            self.inner.replica.clone(),
        );
        self.run(|pool| async move {
            sqlx::query(SAVE_STATES)
                .bind(vec![name])
                .bind(vec![bytes])
                .bind(vec![next])
                .bind(vec![shown])
                .bind(me)
                .execute(&pool)
                .await
        })?;
        self.forget_lease(source);
        Ok(())
    }

    /// Claims the due fetch of `source` (see the module's doc).
    pub(super) fn claim(&self, source: &str, request: &ClaimRequest) -> Result<Claim, StoreError> {
        let args = (
            source.to_string(),
            self.inner.replica.clone(),
            request.now,
            request.host.clone(),
            i32::try_from(request.per_host).unwrap_or(i32::MAX),
            i64::try_from(request.lease.as_millis()).unwrap_or(i64::MAX),
            request.fingerprint.clone(),
        );
        let (outcome, state, wait_ms, items): (String, Option<Vec<u8>>, i64, i64) =
            self.run(|pool| async move {
                sqlx::query_as(
                    "SELECT outcome, state, wait_ms, items FROM feedmill_claim($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(args.0)
                .bind(args.1)
                .bind(args.2)
                .bind(args.3)
                .bind(args.4)
                .bind(args.5)
                .bind(args.6)
                .fetch_one(&pool)
                .await
            })?;
        let wait =
            std::time::Duration::from_millis(wait_ms.clamp(1, 60_000) as u64).min(request.lease);
        Ok(match outcome.as_str() {
            "won" | "taken_over" => {
                self.inner
                    .leases
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(source.to_string());
                if outcome == "taken_over" {
                    tracing::info!(source, "took over a fetch whose replica's lease ran out");
                    Claim::TakenOver
                } else {
                    Claim::Won
                }
            }
            "fetched" => {
                Claim::Fetched(state.map(|bytes| Box::new(stored_state(source, &bytes, items))))
            }
            _ => Claim::Busy(wait),
        })
    }

    /// Gives up this replica's lease on `source`, or on every source (at close: the others
    /// need not wait them out).
    pub(super) fn release(&self, source: Option<&str>) -> Result<(), StoreError> {
        let (name, me) = (source.map(str::to_string), self.inner.replica.clone());
        self.run(|pool| async move {
            sqlx::query(
                "UPDATE feedmill_sources SET lease_owner = NULL, lease_until = NULL
                 WHERE lease_owner = $1 AND ($2::text IS NULL OR name = $2)",
            )
            .bind(me)
            .bind(name)
            .execute(&pool)
            .await
        })?;
        let mut held = self.inner.leases.lock().unwrap_or_else(|p| p.into_inner());
        match source {
            Some(source) => held.remove(source),
            None => {
                held.clear();
                true
            }
        };
        Ok(())
    }

    /// Forgets the lease on `source`, which a save of its state ended.
    pub(super) fn forget_lease(&self, source: &str) {
        self.inner
            .leases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(source);
    }

    /// When the outputs of `source` last changed (the epoch for a source never stored).
    pub(super) fn changed_at(&self, source: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let name = source.to_string();
        let row: Option<(DateTime<Utc>,)> = self.run(|pool| async move {
            sqlx::query_as("SELECT changed_at FROM feedmill_sources WHERE name = $1")
                .bind(name)
                .fetch_optional(&pool)
                .await
        })?;
        Ok(Some(row.map(|(t,)| t).unwrap_or(DateTime::UNIX_EPOCH)))
    }
}
