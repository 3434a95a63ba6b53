//! The PostgreSQL schema: created and migrated by feedmill itself, one numbered step at a
//! time, each in a transaction; a database migrated by a newer feedmill is refused.
//!
//! Tables:
//! - `feedmill_meta`: one row, the schema version. Its row lock is the matching lock:
//!   every commit that stores entries takes it, so that story matching is serialized across
//!   replicas as it is inside one process.
//! - `feedmill_sources`: a source's state (the model's `SourceState` as JSON, but for its
//!   `items`, which the `items` column counts from the rows: a state saved by a replica that
//!   read it before another's commit never undoes the count), when it is due
//!   (`next_fetch`), its host, the lease of the replica fetching it, and when its outputs last
//!   changed (`changed_at`, what every replica renders at).
//! - `feedmill_entries`: one row per item, `(source, key)` unique: the database, not a hope,
//!   keeps one identity per item. `seq` is the commit order (from `feedmill_seq`, assigned
//!   under the matching lock), which replicas catch up on; `sort_inv` is the negated sort
//!   time, so that newest first is an ascending index.
//! - `feedmill_joins`: the joins of stories, with their `seq` too.
//! - `feedmill_hosts`: one row per host, locked while a claim counts that host's fetches in
//!   flight, so that `per_host` holds across replicas.
//!
//! Every text column that is ordered is `COLLATE "C"`: sled orders by bytes, and the two
//! engines must order ties the same way for their documents to be byte-identical.

/// The newest schema this build writes and reads.
pub(crate) const SCHEMA_VERSION: i32 = 1;

/// The steps from version `n - 1` to `n`, at index `n - 1`.
pub(crate) const STEPS: &[&str] = &[
    // 1: the first schema.
    r#"
    CREATE SEQUENCE feedmill_seq;
    CREATE TABLE feedmill_sources (
        name        text COLLATE "C" PRIMARY KEY,
        state       bytea,
        next_fetch  timestamptz,
        host        text COLLATE "C",
        lease_owner text,
        lease_until timestamptz,
        presented   bytea,
        items       bigint NOT NULL DEFAULT 0,
        changed_at  timestamptz NOT NULL DEFAULT 'epoch'
    );
    CREATE INDEX feedmill_sources_host ON feedmill_sources (host) WHERE lease_until IS NOT NULL;
    CREATE TABLE feedmill_entries (
        source      text COLLATE "C" NOT NULL,
        key         bytea NOT NULL,
        seq         bigint NOT NULL,
        first_seen  bigint NOT NULL,
        sort_inv    bigint NOT NULL,
        link_hash   bigint,
        fingerprint bytea,
        body        bytea NOT NULL,
        PRIMARY KEY (source, key)
    );
    CREATE INDEX feedmill_entries_newest ON feedmill_entries (sort_inv, source, key);
    CREATE INDEX feedmill_entries_by_source ON feedmill_entries (source, sort_inv, key);
    CREATE INDEX feedmill_entries_seq ON feedmill_entries (seq);
    CREATE INDEX feedmill_entries_first_seen ON feedmill_entries (first_seen);
    CREATE TABLE feedmill_joins (
        kind   "char" NOT NULL,
        joined bytea NOT NULL,
        seq    bigint NOT NULL,
        until_ms bigint NOT NULL,
        body   bytea NOT NULL,
        PRIMARY KEY (kind, joined)
    );
    CREATE INDEX feedmill_joins_seq ON feedmill_joins (seq);
    CREATE TABLE feedmill_hosts (
        host text COLLATE "C" PRIMARY KEY
    );
    -- A claim in one round trip (see `Store::claim`): the source's row is locked with SKIP
    -- LOCKED (a replica claiming it this instant makes the others wait a moment, not queue),
    -- then its lease, its due time and its host's fetches in flight decide.
    CREATE FUNCTION feedmill_claim(p_name text, p_owner text, p_now timestamptz,
                                   p_host text, p_per_host int, p_lease_ms bigint,
                                   p_fingerprint text)
    RETURNS TABLE (outcome text, state bytea, wait_ms bigint, items bigint)
    LANGUAGE plpgsql AS $$
    DECLARE
        r feedmill_sources%ROWTYPE;
        in_flight int;
    BEGIN
        INSERT INTO feedmill_sources (name) VALUES (p_name) ON CONFLICT (name) DO NOTHING;
        SELECT * INTO r FROM feedmill_sources WHERE name = p_name FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            RETURN QUERY SELECT 'busy'::text, NULL::bytea, 200::bigint, 0::bigint;
            RETURN;
        END IF;
        IF r.lease_until IS NOT NULL AND r.lease_until > now()
           AND r.lease_owner IS DISTINCT FROM p_owner THEN
            RETURN QUERY SELECT 'busy'::text, NULL::bytea,
                GREATEST(1, (EXTRACT(EPOCH FROM r.lease_until - now()) * 1000)::bigint), 0::bigint;
            RETURN;
        END IF;
        -- Not due, unless the source's config changed since that state was saved (a new
        -- URL is fetched at once, a disabled source is tried again).
        IF r.state IS NOT NULL AND (r.next_fetch IS NULL OR r.next_fetch > p_now)
           AND (convert_from(r.state, 'UTF8')::jsonb ->> 'config_fingerprint')
               IS NOT DISTINCT FROM p_fingerprint THEN
            RETURN QUERY SELECT 'fetched'::text, r.state, 0::bigint, r.items;
            RETURN;
        END IF;
        IF p_host IS NOT NULL THEN
            INSERT INTO feedmill_hosts (host) VALUES (p_host) ON CONFLICT (host) DO NOTHING;
            PERFORM 1 FROM feedmill_hosts WHERE host = p_host FOR UPDATE;
            SELECT count(*) INTO in_flight FROM feedmill_sources
                WHERE host = p_host AND lease_until > now() AND name <> p_name;
            IF in_flight >= p_per_host THEN
                RETURN QUERY SELECT 'host'::text, NULL::bytea, 100::bigint, 0::bigint;
                RETURN;
            END IF;
        END IF;
        UPDATE feedmill_sources
            SET lease_owner = p_owner, lease_until = now() + p_lease_ms * interval '1 millisecond',
                host = p_host
            WHERE name = p_name;
        RETURN QUERY SELECT
            CASE WHEN r.lease_owner IS NOT NULL AND r.lease_owner <> p_owner
                 THEN 'taken_over' ELSE 'won' END,
            r.state, 0::bigint, r.items;
    END
    $$;
    "#,
];

/// Creates the meta table if missing (with version 0), so that every later step reads and
/// bumps one row.
pub(crate) const BOOTSTRAP: &str = r#"
    CREATE TABLE IF NOT EXISTS feedmill_meta (
        id             int PRIMARY KEY CHECK (id = 1),
        schema_version int NOT NULL,
        last_prune     timestamptz
    );
    INSERT INTO feedmill_meta (id, schema_version) VALUES (1, 0) ON CONFLICT (id) DO NOTHING;
"#;

/// Serializes migrations of replicas starting at once (a transaction-scoped advisory lock:
/// a singleton job).
pub(crate) const MIGRATION_LOCK: i64 = 0x6665_6564_6d69_6c01;
/// Lets one replica prune at a time.
pub(crate) const RETENTION_LOCK: i64 = 0x6665_6564_6d69_6c02;
/// The channel changes are announced on.
pub(crate) const CHANNEL: &str = "feedmill_changes";

impl super::PgStore {
    /// Creates or upgrades the schema (replicas starting at once take turns); refuses a
    /// database a newer feedmill migrated. Answers the version it is now at.
    pub(crate) fn migrate(&self) -> Result<i32, StoreError> {
        let found = self.run_anyway(migrate_in)?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::NewerDatabase {
                url: self.inner.url.clone(),
                found,
                understood: SCHEMA_VERSION,
            });
        }
        if found < SCHEMA_VERSION {
            tracing::info!(url = %self.inner.url, from = found, to = SCHEMA_VERSION, "migrated the database schema");
        }
        Ok(SCHEMA_VERSION)
    }
}

use crate::store::StoreError;

/// The migration, in one transaction: waits for any other replica migrating, then runs the
/// steps past the version found (none when it is newer than ours). Answers the version found.
async fn migrate_in(pool: sqlx::PgPool) -> Result<i32, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let conn: &mut sqlx::PgConnection = &mut tx;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *conn)
        .await?;
    // A query string without arguments goes as a simple query: several statements.
    sqlx::Executor::execute(&mut *conn, BOOTSTRAP).await?;
    let (found,): (i32,) = sqlx::query_as("SELECT schema_version FROM feedmill_meta WHERE id = 1")
        .fetch_one(&mut *conn)
        .await?;
    if found > SCHEMA_VERSION {
        return Ok(found);
    }
    for (index, step) in STEPS.iter().enumerate().skip(found.max(0) as usize) {
        sqlx::Executor::execute(&mut *conn, *step).await?;
        sqlx::query("UPDATE feedmill_meta SET schema_version = $1 WHERE id = 1")
            .bind(index as i32 + 1)
            .execute(&mut *conn)
            .await?;
    }
    tx.commit().await?;
    Ok(found)
}
