//! What the engine watches in the background: whether the database answers (a probe every
//! second), and the changes other replicas announce (`LISTEN`).
//!
//! A notification reaches only the connections listening when it is committed: a replica
//! whose listening connection was lost may have missed some, so after every (re)connection
//! it tells its subscribers that every source may have changed ([`EVERY_SOURCE`]), and its
//! matching index catches up on the commits it has not seen.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::postgres::PgListener;

use super::{schema::CHANNEL, Inner, PgStore};
use crate::store::EVERY_SOURCE;

/// How often the probe asks the database whether it answers.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How long the probe waits for an answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The payload announcing a commit of `replica` that changed `sources`: the replica's name,
/// a newline, the names separated by spaces. Source names are `[a-z0-9_-]+`; a payload is
/// kept under PostgreSQL's 8,000 bytes by announcing every source instead when it would not be.
pub(crate) fn payload(replica: &str, sources: &[String]) -> String {
    let mut out = format!("{replica}\n");
    let names = sources.join(" ");
    if out.len() + names.len() > 7_000 {
        out.push_str(EVERY_SOURCE);
    } else {
        out.push_str(&names);
    }
    out
}

impl PgStore {
    /// Starts the probe and the listener on the engine's runtime. They hold the shared
    /// state weakly, and end with the store.
    pub(super) fn start_watching(&self) {
        let weak = Arc::downgrade(&self.inner);
        self.handle().spawn(probe(weak.clone()));
        self.handle().spawn(listen(weak));
    }
}

impl Inner {
    /// Tells every subscriber that `source` changed; forgets subscribers that went away.
    fn announce(&self, source: &str) {
        self.subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|tx| tx.send(source.to_string()).is_ok());
    }

    /// Records that the database cannot be reached, for `reason`, and says so once per
    /// outage: to a daemon (which listens for changes) what that means for its readers.
    pub(super) fn begin_outage(&self, reason: &str) {
        let serving = !self
            .subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty();
        self.outage.send_if_modified(|outage| {
            if outage.is_some() {
                return false;
            }
            if serving {
                tracing::error!(url = %self.url, "the database is unreachable: {reason}; serving the last documents, fetching paused until it is back");
            } else {
                tracing::debug!(url = %self.url, "the database is unreachable: {reason}");
            }
            *outage = Some(reason.to_string());
            true
        });
    }
}

async fn probe(inner: Weak<Inner>) {
    let mut renewed = tokio::time::Instant::now();
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let pool = strong.pool.clone();
        let answer =
            tokio::time::timeout(PROBE_TIMEOUT, sqlx::query("SELECT 1").execute(&pool)).await;
        let reason = match answer {
            Ok(Ok(_)) => None,
            Ok(Err(err)) => Some(err.to_string()),
            // The pool waits for a connection longer than the probe: connecting alone says why.
            Err(_) => Some(why_not(&strong.options).await),
        };
        // A live replica keeps its claims while it fetches and commits, however long that
        // takes; a dead one's run out within the lease.
        if reason.is_none() && renewed.elapsed() >= strong.lease / 3 {
            renewed = tokio::time::Instant::now();
            if let Err(err) = renew(&strong).await {
                tracing::debug!("cannot renew leases (they may run out): {err}");
            }
        }
        let was_down = strong.outage.borrow().is_some();
        match (&reason, was_down) {
            (None, true) => {
                tracing::info!(url = %strong.url, "the database answers again; fetching resumes");
                strong.outage.send_replace(None);
                // What was committed meanwhile was never heard of here.
                strong.announce(EVERY_SOURCE);
            }
            (Some(reason), false) => strong.begin_outage(reason),
            _ => {}
        }
        drop(strong);
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

/// Why connecting to the database fails (or that it answers slowly).
async fn why_not(options: &sqlx::postgres::PgConnectOptions) -> String {
    use sqlx::ConnectOptions;
    match tokio::time::timeout(PROBE_TIMEOUT, options.connect()).await {
        Ok(Err(err)) => err.to_string(),
        Ok(Ok(_)) | Err(_) => format!("no answer within {} s", PROBE_TIMEOUT.as_secs()),
    }
}

/// Moves the end of every lease this replica holds to a lease from now.
async fn renew(inner: &Inner) -> Result<(), sqlx::Error> {
    let held: Vec<String> = inner
        .leases
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .cloned()
        .collect();
    if held.is_empty() {
        return Ok(());
    }
    let lease_ms = i64::try_from(inner.lease.as_millis()).unwrap_or(i64::MAX);
    sqlx::query(
        "UPDATE feedmill_sources SET lease_until = now() + $3 * interval '1 millisecond'
         WHERE lease_owner = $1 AND name = ANY($2)",
    )
    .bind(&inner.replica)
    .bind(held)
    .bind(lease_ms)
    .execute(&inner.pool)
    .await?;
    Ok(())
}

async fn listen(inner: Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let pool = strong.pool.clone();
        let replica = strong.replica.clone();
        drop(strong);
        let mut listener = match PgListener::connect_with(&pool).await {
            Ok(listener) => listener,
            Err(_) => {
                // The probe reports the outage; try again soon.
                tokio::time::sleep(PROBE_EVERY).await;
                continue;
            }
        };
        if listener.listen(CHANNEL).await.is_err() {
            tokio::time::sleep(PROBE_EVERY).await;
            continue;
        }
        // Whatever was announced before this connection listened is not heard.
        if let Some(strong) = inner.upgrade() {
            strong.announce(EVERY_SOURCE);
        }
        loop {
            // `try_recv` answers None when the connection was lost (it reconnects on the
            // next call): notifications may have been missed then.
            let heard = listener.try_recv().await;
            let Some(strong) = inner.upgrade() else {
                return;
            };
            match heard {
                Ok(Some(notification)) => {
                    let mut lines = notification.payload().splitn(2, '\n');
                    let from = lines.next().unwrap_or_default();
                    if from == replica {
                        continue;
                    }
                    for source in lines.next().unwrap_or_default().split(' ') {
                        if !source.is_empty() {
                            strong.announce(source);
                        }
                    }
                    strong.catch_up_soon();
                }
                Ok(None) => strong.announce(EVERY_SOURCE),
                Err(_) => break,
            }
        }
        tokio::time::sleep(PROBE_EVERY).await;
    }
}

impl Inner {
    /// Lets the matching index catch up on other replicas' commits off the listener's
    /// task, so that the next commit here has little left to read under the lock.
    fn catch_up_soon(self: &Arc<Inner>) {
        let inner = self.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(err) = inner.catch_up() {
                tracing::debug!("matching index catch-up failed (the next commit retries): {err}");
            }
        });
    }
}
