//! The daemon: wires config -> schedule -> fetch -> parse -> store -> publish -> serve.
//!
//! Tasks: the scheduler (one task per source, under a supervisor with a heartbeat), a
//! renderer that re-renders the output feeds touched by a change (coalescing bursts),
//! retention, the systemd watchdog, and the HTTP server. All of them hold a [`Shutdown`];
//! SIGTERM/SIGINT fire it, then the store is flushed. SIGHUP reloads the config.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use sd_notify::NotifyState;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::{Config, SharedConfig};
use crate::fetch::{FetchError, Fetcher};
use crate::health::Health;
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::render::{render_all, renderer};
use crate::scheduler::{Command, Scheduler};
use crate::serve::{serve, App};
use crate::shared::Shared;
use crate::shutdown::{self, Shutdown};
use crate::status::source_reports;
use crate::store::{StoreError, PROBE_EVERY};

/// Why the daemon could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DaemonError {
    /// The store could not be opened or written.
    #[error(transparent)]
    SharedStore(#[from] StoreError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Fetcher(#[from] FetchError),
    /// The listen address could not be bound.
    #[error(
        "cannot listen on {addr}: {source}; change [server] listen or stop what uses the port"
    )]
    Bind {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// How long shutdown waits for tasks before flushing the store and exiting anyway; the
/// interface promises an exit within 10 seconds of SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(7);
/// How often retention runs (and once at start).
const RETENTION_EVERY: Duration = Duration::from_secs(60 * 60);
/// How often `STATUS=` is refreshed when there is no watchdog to piggyback on.
const STATUS_EVERY: Duration = Duration::from_secs(30);

/// Runs the daemon on the config at `config.path` until SIGTERM or SIGINT.
pub(crate) async fn run(config: Config) -> Result<(), DaemonError> {
    let fetcher = Arc::new(Fetcher::new(&config.fetch)?);
    let context = open_store(config)?;
    let store = context.store.clone();
    // The one copy of the config, shared (ten thousand sources take megabytes).
    let config = context.config.get();
    // The port first: a port in use fails at once, before any work, and a reader that
    // connects while the documents render waits in the backlog instead of being refused.
    let addr = config.server.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Bind { addr, source })?;
    // What the store already holds is served at once, before any fetch. The render is
    // bounded (`limit` at most 1,000 entries, select::DOCUMENT_BUDGET of text per document).
    first_render(&context)?;
    let signal = |kind| tokio::signal::unix::signal(kind).map_err(DaemonError::Signals);
    let mut terminate = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut interrupt = signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut hangup = signal(tokio::signal::unix::SignalKind::hangup())?;

    let (trigger, shutdown) = shutdown::channel();
    let (changes, changed) = mpsc::unbounded_channel();
    let (commands, command_queue) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();

    // Other replicas' changes reach the renderer as this one's do.
    store.watch_changes(changes.clone());
    let replicated = matches!(config.store.engine, crate::config::Engine::Postgres { .. });
    let scheduler = Scheduler::new(
        config.fetch.clone(),
        fetcher,
        store.clone(),
        context.metrics.clone(),
        changes,
    )
    .with_lease(config.store.lease, replicated);
    tasks.spawn(scheduler.run(context.health.clone(), command_queue, shutdown.clone()));
    apply_sources(&commands, &config).await;
    tasks.spawn(renderer(context.clone(), changed, shutdown.clone()));
    tasks.spawn(retention_loop(context.clone(), shutdown.clone()));
    tasks.spawn(watchdog(context.clone(), shutdown.clone()));
    tasks.spawn(store_probe(context.clone(), shutdown.clone()));
    let app = App::new(context.clone());
    tasks.spawn(serve(
        listener,
        app,
        crate::serve::ConnectionLimits::from(&config.server),
        shutdown.clone(),
    ));

    tracing::info!(
        listen = %addr,
        sources = config.sources.len(),
        feeds = config.feeds.len(),
        store = %config.store.location(),
        "feedmill is running; feeds at {}feeds/",
        config.server.base_url
    );
    notify(&[NotifyState::Ready]);
    notify_status(&context);

    loop {
        tokio::select! {
            _ = terminate.recv() => {
                tracing::info!("SIGTERM received, shutting down");
                break;
            }
            _ = interrupt.recv() => {
                tracing::info!("SIGINT received, shutting down");
                break;
            }
            _ = hangup.recv() => reload(&context, &commands).await,
        }
    }
    notify(&[NotifyState::Stopping]);
    context.health.stop();
    trigger.fire();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some tasks did not stop in time; abandoning them");
        tasks.abort_all();
    }
    if let Err(err) = crate::store::flush(&store).await {
        tracing::error!("cannot flush the store on shutdown (what was fetched since its last flush is fetched again at the next start): {err}");
        return Err(err.into());
    }
    tracing::info!("store flushed; bye");
    Ok(())
}

/// Opens the store. Opening moves a store aside that sled cannot open or whose source
/// states it cannot read.
///
/// A database that cannot be reached yet is waited for (a replica started while its
/// database restarts comes up with it, rather than exit).
fn open_store(config: Config) -> Result<Shared, DaemonError> {
    let store = crate::store::open_waiting(&config.store, || false)?;
    Ok(Shared {
        config: SharedConfig::new(config),
        store,
        publisher: Arc::new(Publisher::default()),
        metrics: Arc::new(Metrics::new()),
        health: Arc::new(Health::default()),
    })
}

/// Renders what the store holds. Should the first render fail (an error, a panic of
/// sled's on an entry's page, or a panic on what an entry holds), the store is given up
/// like one that does not open and the daemon starts on an empty one, rather than exit to
/// be started again by systemd on the same store, forever.
fn first_render(context: &Shared) -> Result<(), DaemonError> {
    let rendered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        render_all(context, Utc::now())
    }));
    let failure = match rendered {
        Ok(Ok(())) => return Ok(()),
        Ok(Err(err)) => err.reason(),
        Err(panic) => panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .map_or_else(|| "a panic".to_string(), |m| format!("a panic: {m}")),
    };
    context
        .store
        .rebuild(&format!("its first render failed: {failure}"))?;
    render_all(context, Utc::now())?;
    Ok(())
}

/// Hands the config's sources to the scheduler and waits until they are in force; false
/// when the scheduler is gone (it never answered).
async fn apply_sources(commands: &mpsc::UnboundedSender<Command>, config: &Config) -> bool {
    let (done, applied) = tokio::sync::oneshot::channel();
    let command = Command::Apply {
        sources: config.sources.clone(),
        fetch: config.fetch.clone(),
        done,
    };
    commands.send(command).is_ok() && applied.await.is_ok()
}

/// Whether the scheduler can take `new`'s `[fetch]` section: it builds a fetcher from it,
/// and a reload must not hand it anything that fails (or panics) there, or the scheduler
/// would run on with the old settings while the config in force says otherwise.
fn fetch_settings_apply(old: &Config, new: &Config) -> Result<(), String> {
    if new.fetch == old.fetch {
        return Ok(());
    }
    let fetch = new.fetch.clone();
    match std::panic::catch_unwind(move || Fetcher::new(&fetch).map(drop)) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err("building the HTTP client panicked".to_string()),
    }
}

/// SIGHUP: re-reads the config file. An invalid config is logged and the running one kept;
/// a valid one replaces it without a restart: added, changed and removed sources and feeds
/// take effect, unchanged sources are left alone, connections stay open.
async fn reload(context: &Shared, commands: &mpsc::UnboundedSender<Command>) {
    notify(&[NotifyState::Reloading]);
    let old = context.config.get();
    tracing::info!(config = %old.path.display(), "SIGHUP received, reloading the config");
    let loaded = Config::load(&old.path).map_err(|err| err.to_string());
    match loaded.and_then(|new| fetch_settings_apply(&old, &new).map(|()| new)) {
        Err(err) => {
            tracing::error!("the new config is invalid; keeping the running one: {err}");
        }
        Ok(new) => {
            if new.server.listen != old.server.listen {
                tracing::warn!(
                    "[server] listen changed to {}; that takes a restart, still listening on {}",
                    new.server.listen,
                    old.server.listen
                );
            }
            if new.store.path != old.store.path {
                tracing::warn!(
                    "[store] path changed; that takes a restart, still using {}",
                    old.store.path.display()
                );
            }
            if new.store.cache != old.store.cache
                || new.store.match_window != old.store.match_window
            {
                tracing::warn!(
                    "[store] cache and match_window take a restart; still {} bytes and {} entries",
                    old.store.cache,
                    old.store.match_window
                );
            }
            let new = Arc::new(new);
            context.config.replace(new.clone());
            if !apply_sources(commands, &new).await {
                tracing::error!(
                    "the scheduler is not running, so the new sources are not fetched; restart feedmill"
                );
            }
            if let Err(err) = render_all(context, Utc::now()) {
                tracing::error!("cannot render after reload: {err}");
            }
            tracing::info!(
                sources = new.sources.len(),
                feeds = new.feeds.len(),
                "config reloaded"
            );
        }
    }
    notify(&[NotifyState::Ready]);
    notify_status(context);
}

fn notify(states: &[NotifyState]) {
    if let Err(err) = sd_notify::notify(states) {
        tracing::warn!("cannot notify systemd: {err}");
    }
}

/// Tells systemd how things stand, for `systemctl status`.
fn notify_status(context: &Shared) {
    let config = context.config.get();
    let text = match source_reports(&config.sources, &context.store) {
        Ok(reports) => {
            let failing = reports.iter().filter(|r| r.last_error.is_some()).count();
            let entries: u64 = reports.iter().map(|r| r.items).sum();
            format!(
                "{} sources: {} ok, {} failing; {} entries stored; {} feeds",
                reports.len(),
                reports.len() - failing,
                failing,
                entries,
                config.feeds.len()
            )
        }
        Err(err) => format!("store unreadable: {err}"),
    };
    let text = match context.store.write_failure() {
        Some(reason) => format!("store write failed: {reason}; {text}"),
        None => text,
    };
    notify(&[NotifyState::Status(&text)]);
}

/// Pings systemd's watchdog at half its interval while the scheduler beats and the store
/// answers; a hung scheduler or store stops the pings and systemd restarts us. Also keeps
/// `STATUS=` current.
async fn watchdog(context: Shared, mut shutdown: Shutdown) {
    let interval = sd_notify::watchdog_enabled().map(|usec| usec / 2);
    let mut tick = tokio::time::interval(interval.unwrap_or(STATUS_EVERY));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.recv() => return,
        }
        if interval.is_some()
            && context.health.alive()
            && crate::store::answers(&context.store).await
        {
            notify(&[NotifyState::Watchdog]);
        }
        notify_status(&context);
    }
}

/// Keeps the store whole: every [`PROBE_EVERY`], replaces a store that a read found
/// corrupt with an empty one ([`Store::rebuild`]; every source is then fetched again), and
/// while writes fail checks whether they work again ([`Store::recover`]): a full disk that
/// gets space again needs no restart.
async fn store_probe(context: Shared, mut shutdown: Shutdown) {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let store = context.store.clone();
        if let Some(reason) = store.corruption() {
            match tokio::task::spawn_blocking(move || store.rebuild(&reason)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::error!(
                    "cannot replace the corrupt store (trying again in {} s): {err}",
                    PROBE_EVERY.as_secs()
                ),
                Err(err) => tracing::error!("the store's repair failed: {err}"),
            }
        } else if store.write_failure().is_some() {
            match tokio::task::spawn_blocking(move || store.recover()).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::debug!("store writes still fail: {err}"),
                Err(err) => tracing::error!("the store's write check failed: {err}"),
            }
        }
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.recv() => return,
        }
    }
}

/// Prunes the store as `[store]` says, at start and then hourly.
async fn retention_loop(context: Shared, mut shutdown: Shutdown) {
    loop {
        if let Err(err) = apply_retention(&context).await {
            tracing::error!("retention failed: {err}");
        }
        tokio::select! {
            _ = tokio::time::sleep(RETENTION_EVERY) => {}
            _ = shutdown.recv() => return,
        }
    }
}

/// One retention pass: prune off the async threads, then re-render if anything went.
pub(crate) async fn apply_retention(context: &Shared) -> Result<usize, StoreError> {
    let config = context.config.get();
    // The config bounds max_age_days; checked all the same, as a panic here would end
    // retention for good.
    let cutoff = (config.store.max_age_days > 0)
        .then(|| {
            chrono::TimeDelta::try_days(i64::from(config.store.max_age_days))
                .and_then(|age| Utc::now().checked_sub_signed(age))
        })
        .flatten();
    let keep = (config.store.max_items_per_source > 0)
        .then_some(config.store.max_items_per_source as usize);
    if cutoff.is_none() && keep.is_none() {
        return Ok(0);
    }
    let pruning = context.store.clone();
    let removed = tokio::task::spawn_blocking(move || pruning.prune(cutoff, keep))
        .await
        .map_err(|join| StoreError::Task(join.to_string()))??;
    // Retention read every source's index.
    crate::memory::trim();
    let total: usize = removed.values().sum();
    if total > 0 {
        tracing::info!(removed = total, "retention pruned old entries");
        render_all(context, Utc::now())?;
    }
    Ok(total)
}
