//! The daemon: wires config -> schedule -> fetch -> parse -> store -> publish -> serve.
//!
//! Tasks: one per source (sleep until due, refresh, repeat), one renderer that re-renders the
//! output feeds touched by a change (coalescing bursts), and the HTTP server. All of them hold
//! a [`Shutdown`]; SIGTERM/SIGINT fire it, then the store is flushed.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::config::{Config, FeedConfig, SourceConfig};
use crate::fetch::{FetchError, Fetcher};
use crate::publish::{Publisher, SourceInfo};
use crate::refresh::{current_state, first_fetch, refresh, RefreshOutcome};
use crate::select::select;
use crate::serve::{router, ServeState};
use crate::shutdown::{self, Shutdown};
use crate::store::{Store, StoreError};

/// Why the daemon could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The store could not be opened or written.
    #[error(transparent)]
    Store(#[from] StoreError),
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

/// The titles and URLs that output entries name as their source.
pub fn source_infos(
    config: &Config,
    store: &Store,
) -> Result<HashMap<String, SourceInfo>, StoreError> {
    config
        .sources
        .iter()
        .map(|source| {
            let state = store.source_state(&source.name)?.unwrap_or_default();
            let title = source
                .title
                .clone()
                .or(state.title)
                .unwrap_or_else(|| source.name.clone());
            let url = if state.url.is_empty() {
                source.url.to_string()
            } else {
                state.url
            };
            Ok((
                source.name.clone(),
                SourceInfo {
                    name: source.name.clone(),
                    title,
                    url,
                    site_link: state.site_link,
                },
            ))
        })
        .collect()
}

/// Renders one output feed from the store and publishes it.
pub fn render_feed(
    config: &Config,
    feed: &FeedConfig,
    store: &Store,
    publisher: &Publisher,
    sources: &HashMap<String, SourceInfo>,
) -> Result<(), StoreError> {
    let stories = select(store, feed)?;
    publisher.publish(feed, &stories, sources, &config.server.base_url);
    Ok(())
}

/// Renders every output feed.
pub fn render_all(config: &Config, store: &Store, publisher: &Publisher) -> Result<(), StoreError> {
    let sources = source_infos(config, store)?;
    for feed in &config.feeds {
        render_feed(config, feed, store, publisher, &sources)?;
    }
    Ok(())
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), DaemonError> {
    let config = Arc::new(config);
    let store = Store::open(&config.store.path)?;
    let fetcher = Arc::new(Fetcher::new(&config.fetch)?);
    let publisher = Arc::new(Publisher::default());
    // What the store already holds is served at once, before any fetch.
    render_all(&config, &store, &publisher)?;

    let addr = config.server.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| DaemonError::Bind { addr, source })?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(DaemonError::Signals)?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(DaemonError::Signals)?;

    let (trigger, shutdown) = shutdown::channel();
    let scheduler_alive = Arc::new(AtomicBool::new(true));
    let (changes, changed) = mpsc::unbounded_channel();
    let mut tasks = JoinSet::new();

    tasks.spawn(renderer(
        config.clone(),
        store.clone(),
        publisher.clone(),
        changed,
        shutdown.clone(),
    ));
    tasks.spawn(retention_loop(
        config.clone(),
        store.clone(),
        publisher.clone(),
        shutdown.clone(),
    ));
    for source in &config.sources {
        tasks.spawn(source_loop(
            source.clone(),
            fetcher.clone(),
            store.clone(),
            changes.clone(),
            shutdown.clone(),
        ));
    }
    let app = router(ServeState {
        publisher: publisher.clone(),
        store: store.clone(),
        config: Arc::new(RwLock::new(config.clone())),
        scheduler_alive: scheduler_alive.clone(),
    });
    let mut server_shutdown = shutdown.clone();
    tasks.spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { server_shutdown.recv().await })
            .await;
        if let Err(err) = served {
            tracing::error!("HTTP server failed: {err}");
        }
    });

    tracing::info!(
        listen = %addr,
        sources = config.sources.len(),
        feeds = config.feeds.len(),
        store = %config.store.path.display(),
        "feedmill is running; feeds at {}feeds/",
        config.server.base_url
    );
    notify(&[sd_notify::NotifyState::Ready]);

    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = interrupt.recv() => tracing::info!("SIGINT received, shutting down"),
    }
    notify(&[sd_notify::NotifyState::Stopping]);
    scheduler_alive.store(false, Ordering::SeqCst);
    trigger.fire();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some tasks did not stop in time; abandoning them");
        tasks.abort_all();
    }
    store.flush().await?;
    tracing::info!("store flushed; bye");
    Ok(())
}

fn notify(states: &[sd_notify::NotifyState]) {
    if let Err(err) = sd_notify::notify(states) {
        tracing::warn!("cannot notify systemd: {err}");
    }
}

/// One source's life: fetch when due, then follow its schedule. A slow or failing source
/// only ever delays itself.
async fn source_loop(
    source: SourceConfig,
    fetcher: Arc<Fetcher>,
    store: Store,
    changes: mpsc::UnboundedSender<String>,
    mut shutdown: Shutdown,
) {
    let mut due = match current_state(&source, &store) {
        Ok(state) => first_fetch(&source, &state, Utc::now()),
        Err(err) => {
            tracing::error!(source = %source.name, "cannot read source state: {err}");
            return;
        }
    };
    while let Some(due_at) = due {
        let wait = (due_at - Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.recv() => return,
        }
        let outcome = tokio::select! {
            outcome = refresh(&source, &fetcher, &store) => outcome,
            // A fetch in flight is abandoned; its response was never committed.
            _ = shutdown.recv() => return,
        };
        match outcome {
            Ok(outcome) if outcome.changed() => {
                if let RefreshOutcome::Stored { summary, .. } = &outcome {
                    tracing::info!(source = %source.name, new = summary.new, updated = summary.updated, "entries changed");
                }
                let _ = changes.send(source.name.clone());
            }
            Ok(_) => {}
            Err(err) => tracing::error!(source = %source.name, "cannot store: {err}"),
        }
        // The refresh planned the next fetch (schedule, backoff, Retry-After, freshness).
        due = match store.source_state(&source.name) {
            Ok(state) => state.and_then(|s| s.next_fetch),
            Err(err) => {
                tracing::error!(source = %source.name, "cannot read source state: {err}");
                source.schedule.next_fetch(&source.name, Utc::now())
            }
        };
    }
    tracing::info!(source = %source.name, "no further fetch planned (disabled after 410 Gone, or the schedule never fires again)");
    shutdown.recv().await;
}

/// How often retention runs (and once at start).
const RETENTION_EVERY: Duration = Duration::from_secs(60 * 60);

/// Prunes the store as `[store]` says, at start and then hourly, and re-renders the feeds
/// when anything went.
async fn retention_loop(
    config: Arc<Config>,
    store: Store,
    publisher: Arc<Publisher>,
    mut shutdown: Shutdown,
) {
    loop {
        if let Err(err) = apply_retention(&config, &store, &publisher).await {
            tracing::error!("retention failed: {err}");
        }
        tokio::select! {
            _ = tokio::time::sleep(RETENTION_EVERY) => {}
            _ = shutdown.recv() => return,
        }
    }
}

/// One retention pass: prune off the async threads, then re-render if needed.
pub async fn apply_retention(
    config: &Config,
    store: &Store,
    publisher: &Publisher,
) -> Result<usize, StoreError> {
    let cutoff = (config.store.max_age_days > 0)
        .then(|| Utc::now() - chrono::Duration::days(i64::from(config.store.max_age_days)));
    let keep = (config.store.max_items_per_source > 0)
        .then_some(config.store.max_items_per_source as usize);
    if cutoff.is_none() && keep.is_none() {
        return Ok(0);
    }
    let pruning = store.clone();
    let removed = tokio::task::spawn_blocking(move || pruning.prune(cutoff, keep))
        .await
        .map_err(|join| StoreError::Task(join.to_string()))??;
    let total: usize = removed.values().sum();
    if total > 0 {
        tracing::info!(removed = total, "retention pruned old entries");
        render_all(config, store, publisher)?;
    }
    Ok(total)
}

/// Re-renders the output feeds whose sources changed. Changes that arrive while a render
/// runs are coalesced into the next one.
async fn renderer(
    config: Arc<Config>,
    store: Store,
    publisher: Arc<Publisher>,
    mut changed: mpsc::UnboundedReceiver<String>,
    mut shutdown: Shutdown,
) {
    loop {
        let first = tokio::select! {
            name = changed.recv() => match name {
                Some(name) => name,
                None => break,
            },
            _ = shutdown.recv() => break,
        };
        let mut dirty = HashSet::from([first]);
        while let Ok(name) = changed.try_recv() {
            dirty.insert(name);
        }
        let sources = match source_infos(&config, &store) {
            Ok(sources) => sources,
            Err(err) => {
                tracing::error!("cannot render: {err}");
                continue;
            }
        };
        for feed in config
            .feeds
            .iter()
            .filter(|f| f.sources.iter().any(|s| dirty.contains(s)))
        {
            if let Err(err) = render_feed(&config, feed, &store, &publisher, &sources) {
                tracing::error!(feed = %feed.name, "cannot render: {err}");
            }
        }
    }
}
