//! The PostgreSQL engine: one database shared by any number of replicas (`engine =
//! "postgres"`).
//!
//! - [`schema`]: the tables, created and migrated by feedmill itself.
//! - [`leases`]: claims of due fetches (`FOR UPDATE SKIP LOCKED` and a `lease_until`), the
//!   host budget, and the states.
//! - [`reads`]: an entry, newest first across sources, export and import.
//! - [`commit`]: one response's entries, matched against every replica's stories under the
//!   matching lock, then the state, in one transaction.
//! - [`watch`]: the database's reachability and the changes other replicas announce.
//!
//! The store interface is synchronous (the sled engine blocks on its files); this engine runs
//! sqlx on a small runtime of its own and the calling thread waits for each query's answer
//! ([`PgStore::run`]). Its own runtime means a caller on any thread (a blocking task, a CLI
//! command's main thread) can wait without starving the tasks that drive the connections.
//! While the database cannot be reached, every call answers [`StoreError::Unreachable`] at
//! once instead of waiting out a timeout, so that nothing piles up behind a dead database;
//! [`watch`] notices when it is back.

use std::collections::HashSet;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::{mpsc, watch as channel};

use crate::store::matcher::Matcher;
use crate::store::stories::Joins;
use crate::store::{Recoveries, StoreError};

mod commit;
mod leases;
mod reads;
pub(crate) mod schema;
#[cfg(test)]
pub(crate) mod tests;
mod trait_impl;
mod watch;

/// How long a query may wait for a connection, and a connection may take to open, before the
/// database counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What this engine needs to open.
#[derive(Debug, Clone)]
pub(crate) struct PgSettings {
    /// The libpq-style URL (no password: that comes from `PGPASSWORD` or `.pgpass`).
    pub(crate) url: String,
    /// This process's name among the replicas.
    pub(crate) replica: String,
    /// How many of the most recent entries a new one is matched against.
    pub(crate) match_window: usize,
    /// Connections at most.
    pub(crate) pool: u32,
    /// `[store] lease`: how long a claim lasts unless renewed (a live replica renews its
    /// claims while it fetches and commits).
    pub(crate) lease: Duration,
}

/// The state every thread of the engine shares (its background tasks too).
pub(crate) struct Inner {
    /// The engine's runtime, where queries run.
    handle: tokio::runtime::Handle,
    pool: PgPool,
    /// How to connect, for the probe to say why it cannot.
    options: PgConnectOptions,
    lease: Duration,
    url: String,
    replica: String,
    /// Why the database cannot be reached, while it cannot.
    outage: channel::Sender<Option<String>>,
    /// Never sent: a database has no files of ours to recover.
    recoveries: channel::Sender<Recoveries>,
    /// Every join of stories, read at open and kept current by commits and catch-ups.
    joins: RwLock<Joins>,
    /// The matching index and the last commit it has seen (`None` until the first commit
    /// loads it, and again after a commit failed midway).
    matching: Mutex<Option<Matching>>,
    /// Commits waiting for `matching`, to be written together by whichever gets it first.
    waiting: Mutex<std::collections::VecDeque<commit::Job>>,
    match_window: usize,
    /// The sources this process holds a lease on.
    leases: Mutex<HashSet<String>>,
    /// Where to send the names of sources other replicas changed.
    subscribers: Mutex<Vec<mpsc::UnboundedSender<String>>>,
}

/// The matching index, caught up to commit `seq` (entries and joins).
pub(crate) struct Matching {
    matcher: Matcher,
    seq: i64,
}

/// A PostgreSQL store handle.
pub(crate) struct PgStore {
    inner: Arc<Inner>,
    /// Runs the connections and the background tasks; shut down when the store drops.
    runtime: Option<tokio::runtime::Runtime>,
}

impl PgStore {
    /// Connects to the database `settings` names and creates or migrates its schema. Fails
    /// at once when the database cannot be reached (see [`PgStore::open_waiting`]).
    pub(crate) fn open(settings: &PgSettings) -> Result<PgStore, StoreError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("feedmill-db")
            .enable_all()
            .build()
            .map_err(|err| StoreError::Task(format!("cannot start the database runtime: {err}")))?;
        let options = PgConnectOptions::from_str(&settings.url)
            .map_err(|err| StoreError::Database {
                url: settings.url.clone(),
                reason: format!("the URL is not one PostgreSQL reads ({err}); fix [store] url"),
            })?
            .application_name("feedmill")
            // The server's notices ("relation already exists, skipping") are not news.
            .options([("client_min_messages", "warning")]);
        let pool = {
            let _entered = runtime.enter();
            PgPoolOptions::new()
                .max_connections(settings.pool.max(2))
                .min_connections(0)
                .acquire_timeout(CONNECT_TIMEOUT)
                // A pooled connection may have died with a restarted server: check it.
                .test_before_acquire(true)
                .idle_timeout(Some(Duration::from_secs(300)))
                .connect_lazy_with(options.clone())
        };
        let store = PgStore {
            inner: Arc::new(Inner {
                handle: runtime.handle().clone(),
                pool,
                options,
                lease: settings.lease,
                url: settings.url.clone(),
                replica: settings.replica.clone(),
                outage: channel::channel(None).0,
                recoveries: channel::channel(Recoveries::default()).0,
                joins: RwLock::new(Joins::default()),
                matching: Mutex::new(None),
                waiting: Mutex::new(std::collections::VecDeque::new()),
                match_window: settings.match_window,
                leases: Mutex::new(HashSet::new()),
                subscribers: Mutex::new(Vec::new()),
            }),
            runtime: Some(runtime),
        };
        store.migrate()?;
        store.load_joins()?;
        store.start_watching();
        Ok(store)
    }

    /// [`PgStore::open`], trying again every few seconds while the database cannot be reached
    /// (a replica started while the database restarts waits for it), until `give_up` says so.
    pub(crate) fn open_waiting(
        settings: &PgSettings,
        give_up: impl Fn() -> bool,
    ) -> Result<PgStore, StoreError> {
        let mut logged = false;
        loop {
            match PgStore::open(settings) {
                Err(StoreError::Unreachable { reason, .. }) if !give_up() => {
                    if !logged {
                        tracing::warn!(url = %settings.url, "waiting for the database: {reason}");
                        logged = true;
                    }
                    std::thread::sleep(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }

    fn handle(&self) -> &tokio::runtime::Handle {
        &self.inner.handle
    }

    /// Runs `query` on the engine's runtime and waits for its answer (see [`Inner::run`]).
    pub(crate) fn run<T, F>(&self, query: impl FnOnce(PgPool) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, sqlx::Error>> + Send + 'static,
    {
        self.inner.run(query)
    }

    /// [`Inner::run_anyway`].
    fn run_anyway<T, F>(&self, query: impl FnOnce(PgPool) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, sqlx::Error>> + Send + 'static,
    {
        self.inner.run_anyway(query)
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which tokio forbids on its own threads: a store may be
        // dropped by an async task.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Inner {
    /// Runs `query` on the engine's runtime and waits for its answer; fails at once while
    /// the database is known to be unreachable. Never called on the engine's own async
    /// threads (it would block one of the two that drive the connections).
    pub(crate) fn run<T, F>(&self, query: impl FnOnce(PgPool) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, sqlx::Error>> + Send + 'static,
    {
        if let Some(reason) = self.outage.borrow().clone() {
            return Err(self.unreachable(reason));
        }
        self.run_anyway(query)
    }

    /// [`Inner::run`] even while the database is thought unreachable (opening).
    fn run_anyway<T, F>(&self, query: impl FnOnce(PgPool) -> F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Future<Output = Result<T, sqlx::Error>> + Send + 'static,
    {
        let future = query(self.pool.clone());
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.handle.spawn(async move {
            let _ = tx.send(future.await);
        });
        match rx.recv() {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(err)) => Err(self.error(err)),
            Err(_) => Err(StoreError::Task("a database task failed".to_string())),
        }
    }

    /// The error a failed query means: an unreachable database (which starts an outage),
    /// else what the database said.
    pub(crate) fn error(&self, err: sqlx::Error) -> StoreError {
        if let Some(reason) = unreachable_reason(&err) {
            self.begin_outage(&reason);
            return self.unreachable(reason);
        }
        StoreError::Database {
            url: self.url.clone(),
            reason: with_advice(&err),
        }
    }

    fn unreachable(&self, reason: String) -> StoreError {
        StoreError::Unreachable {
            url: self.url.clone(),
            reason,
        }
    }
}

/// What the database said, and for a refused login or a missing database what to change.
fn with_advice(err: &sqlx::Error) -> String {
    let said = err.to_string();
    let code = match err {
        sqlx::Error::Database(db) => db.code().unwrap_or_default().into_owned(),
        _ => return said,
    };
    // Class 28: invalid authorization (a pg_hba.conf rule, a wrong password); 3D000: no
    // such database.
    if code.starts_with("28") {
        format!("{said}: the server refused this login; check the url's user and sslmode, PGPASSWORD or the .pgpass file, and the server's pg_hba.conf")
    } else if code == "3D000" {
        format!("{said}: create it (createdb -O USER NAME) or name another in the url")
    } else {
        said
    }
}

/// Why `err` means the database cannot be reached now (so that callers wait rather than
/// count a failure), if it does.
fn unreachable_reason(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_) => {
            let said = err.to_string();
            // rustls's words alone ("invalid peer certificate: UnknownIssuer") do not say
            // what to change.
            Some(if said.contains("certificate") {
                format!("{said} (the server's certificate must be signed by the CA in the url's sslrootcert, or one the system trusts, and name the url's host)")
            } else {
                said
            })
        }
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            // Class 08: connection exceptions; 57P01-57P03: the server shutting down or
            // starting; 53300: too many connections.
            (code.starts_with("08") || code.starts_with("57P") || code == "53300")
                .then(|| db.message().to_string())
        }
        _ => None,
    }
}
