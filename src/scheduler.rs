//! The scheduler: one task per source that sleeps until its source is due, refreshes it and
//! plans the next fetch; and the supervisor that starts, restarts and stops those tasks as
//! the config changes, while proving it is alive with a heartbeat.
//!
//! A slow or failing source only ever delays itself. The heartbeat is what systemd's watchdog
//! and `/healthz` look at: if the supervisor loop stops turning (a stalled runtime, a
//! deadlock), the pings stop and systemd restarts the daemon.
//!
//! Every "now" here is read from a [`Clock`]: the system's in the daemon, one that follows
//! tokio's in tests, so that a paused tokio clock moves the scheduler's wall clock and its
//! sleeps together.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::{FetchConfig, SourceConfig};
use crate::fetch::Fetcher;
use crate::metrics::Metrics;
use crate::refresh::{current_state, first_fetch, is_store_failure, refresh, RefreshOutcome};
use crate::shutdown::{self, Shutdown, ShutdownTrigger};
use crate::store::SharedStore;

/// How often the supervisor beats.
const BEAT: Duration = Duration::from_secs(1);
/// A heartbeat older than this means the scheduler is hung.
const STALE: Duration = Duration::from_secs(10);
/// How long a source waits when its state cannot be read from the store.
const UNREADABLE_WAIT: Duration = Duration::from_secs(60);

/// Whether the scheduler is alive, as its heartbeat says (on the system's clock unless
/// made [`Health::with_clock`]).
#[derive(Debug, Default)]
pub struct Health {
    clock: Clock,
    last_beat_ms: AtomicI64,
    stopped: AtomicBool,
}

impl Health {
    /// A health that reads the time from `clock`: the scheduler's, so that its beats and
    /// their staleness are measured on the same clock.
    pub fn with_clock(clock: Clock) -> Health {
        Health {
            clock,
            ..Health::default()
        }
    }

    /// Records a beat now.
    pub fn beat(&self) {
        self.last_beat_ms
            .store(self.clock.now().timestamp_millis(), Ordering::SeqCst);
    }

    /// Marks the scheduler as stopped (shutdown).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// Whether the scheduler beat recently and was not stopped.
    pub fn alive(&self) -> bool {
        let last = self.last_beat_ms.load(Ordering::SeqCst);
        !self.stopped.load(Ordering::SeqCst)
            && last > 0
            && self.clock.now().timestamp_millis() - last < STALE.as_millis() as i64
    }
}

/// What the supervisor is asked to do.
#[derive(Debug)]
pub enum Command {
    /// Make the running source tasks match these sources (and this `[fetch]`).
    Apply {
        /// The sources now configured.
        sources: Vec<SourceConfig>,
        /// The `[fetch]` section now configured.
        fetch: FetchConfig,
        /// Told when the change is in force.
        done: tokio::sync::oneshot::Sender<()>,
    },
}

struct SourceTask {
    config: SourceConfig,
    stop: ShutdownTrigger,
    handle: JoinHandle<()>,
}

/// The supervisor's state: the running source tasks.
pub struct Scheduler {
    fetch: FetchConfig,
    fetcher: Arc<Fetcher>,
    store: SharedStore,
    metrics: Arc<Metrics>,
    changes: mpsc::UnboundedSender<String>,
    clock: Clock,
    tasks: HashMap<String, SourceTask>,
}

impl Scheduler {
    /// A scheduler with no tasks yet, on the system's clock.
    pub fn new(
        fetch: FetchConfig,
        fetcher: Arc<Fetcher>,
        store: SharedStore,
        metrics: Arc<Metrics>,
        changes: mpsc::UnboundedSender<String>,
    ) -> Scheduler {
        Scheduler {
            fetch,
            fetcher,
            store,
            metrics,
            changes,
            clock: Clock::System,
            tasks: HashMap::new(),
        }
    }

    /// The same scheduler reading the time from `clock` (before any task is started).
    pub fn with_clock(self, clock: Clock) -> Scheduler {
        Scheduler { clock, ..self }
    }

    /// Starts tasks for added sources, restarts changed ones (all of them when `[fetch]`
    /// changed) and stops removed ones. Unchanged sources keep running untouched: they are
    /// not fetched again because of a reload.
    pub async fn apply(&mut self, sources: &[SourceConfig], fetch: &FetchConfig) {
        if *fetch != self.fetch {
            match Fetcher::new(fetch) {
                Ok(fetcher) => {
                    self.fetcher = Arc::new(fetcher);
                    self.fetch = fetch.clone();
                    // Every task holds the old fetcher: restart them all.
                    for (_, task) in self.tasks.drain() {
                        stop_task(task).await;
                    }
                }
                Err(err) => tracing::error!("keeping the old [fetch] settings: {err}"),
            }
        }
        let wanted: HashMap<&str, &SourceConfig> =
            sources.iter().map(|s| (s.name.as_str(), s)).collect();
        let stale: Vec<String> = self
            .tasks
            .iter()
            .filter(|(name, task)| wanted.get(name.as_str()) != Some(&&task.config))
            .map(|(name, _)| name.clone())
            .collect();
        for name in stale {
            if let Some(task) = self.tasks.remove(&name) {
                tracing::info!(source = %name, "source removed or changed; stopping its task");
                stop_task(task).await;
            }
        }
        for source in sources {
            if !self.tasks.contains_key(&source.name) {
                self.start(source.clone());
            }
        }
    }

    fn start(&mut self, source: SourceConfig) {
        let (stop, stopped) = shutdown::channel();
        let handle = tokio::spawn(source_loop(
            source.clone(),
            self.fetcher.clone(),
            self.store.clone(),
            self.metrics.clone(),
            self.changes.clone(),
            self.clock,
            stopped,
        ));
        self.tasks.insert(
            source.name.clone(),
            SourceTask {
                config: source,
                stop,
                handle,
            },
        );
    }

    /// Stops every source task (fetches in flight are abandoned).
    pub async fn stop_all(&mut self) {
        for (_, task) in self.tasks.drain() {
            stop_task(task).await;
        }
    }

    /// The supervisor loop: beats, and applies commands, until shutdown.
    pub async fn run(
        mut self,
        health: Arc<Health>,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut shutdown: Shutdown,
    ) {
        let mut beat = tokio::time::interval(BEAT);
        loop {
            tokio::select! {
                _ = beat.tick() => health.beat(),
                command = commands.recv() => match command {
                    Some(Command::Apply { sources, fetch, done }) => {
                        self.apply(&sources, &fetch).await;
                        health.beat();
                        let _ = done.send(());
                    }
                    None => break,
                },
                _ = shutdown.recv() => break,
            }
        }
        health.stop();
        self.stop_all().await;
    }
}

async fn stop_task(task: SourceTask) {
    task.stop.fire();
    // A task stops at its next await point; a refresh's blocking parse or commit may finish
    // first, which is harmless (commits are serialized and atomic).
    if tokio::time::timeout(Duration::from_secs(5), task.handle)
        .await
        .is_err()
    {
        tracing::warn!(source = %task.config.name, "source task did not stop in time");
    }
}

/// One source's life: fetch when due, then as the refresh planned (schedule, backoff,
/// `Retry-After`, freshness).
///
/// A fetch that failed to store backs off like any failure; when the store recovers (see
/// [`Store::recover`]) the source is fetched again at once, though only once for a run of
/// failures: if that fetch fails to store as well, its backoff runs its course. When a
/// corrupt store was replaced by an empty one ([`Store::rebuild`]), it is fetched at once.
async fn source_loop(
    source: SourceConfig,
    fetcher: Arc<Fetcher>,
    store: SharedStore,
    metrics: Arc<Metrics>,
    changes: mpsc::UnboundedSender<String>,
    clock: Clock,
    mut stop: Shutdown,
) {
    let mut recoveries = store.recoveries();
    let mut seen = *recoveries.borrow_and_update();
    let mut due = loop {
        match current_state(&source, &store) {
            Ok(state) => break first_fetch(&source, &state, clock.now()),
            Err(err) => {
                tracing::error!(source = %source.name, "cannot read source state (trying again in {} s): {err}", UNREADABLE_WAIT.as_secs());
                tokio::select! {
                    _ = tokio::time::sleep(UNREADABLE_WAIT) => {}
                    _ = stop.recv() => return,
                }
            }
        }
    };
    // Whether this run of failures was already fetched again on a recovery of the store.
    let mut retried_on_recovery = false;
    while let Some(due_at) = due {
        let wait = clock.until(due_at);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            // (An error, which this task's own handle on the store rules out, only turns
            // this branch off until the next turn.)
            Ok(()) = recoveries.changed() => {
                let now = *recoveries.borrow_and_update();
                let rebuilt = now.rebuilds != seen.rebuilds;
                seen = now;
                // An empty store in place of a corrupt one: fetched at once, like at a
                // first start. Else only when this source failed to store.
                if !rebuilt {
                    let failed_to_store = store
                        .source_state(&source.name)
                        .ok()
                        .flatten()
                        .is_some_and(|s| is_store_failure(s.last_error.as_deref()));
                    if !failed_to_store || retried_on_recovery {
                        continue;
                    }
                    retried_on_recovery = true;
                }
            }
            _ = stop.recv() => return,
        }
        let outcome = tokio::select! {
            // Boxed: the fetch's state is large and needed only while it runs, not by the
            // thousands of tasks that are waiting.
            outcome = Box::pin(refresh(&source, &fetcher, &store, &metrics)) => outcome,
            // A fetch in flight is abandoned; its response was never committed.
            _ = stop.recv() => return,
        };
        match outcome {
            Ok(outcome) if outcome.changed() => {
                if let RefreshOutcome::Stored { summary, .. } = &outcome {
                    tracing::info!(source = %source.name, new = summary.new, updated = summary.updated, "entries changed");
                    // Stories this source's entries joined: feeds of their other sources too.
                    for other in &summary.joined {
                        let _ = changes.send(other.clone());
                    }
                }
                let _ = changes.send(source.name.clone());
            }
            Ok(_) => {}
            Err(err) => tracing::error!(source = %source.name, "cannot store: {err}"),
        }
        // Never sooner than the schedule's next time, nor, when the state cannot be read, than
        // a minute from now: whatever fails, a source is never fetched in a loop.
        due = match store.source_state(&source.name) {
            Ok(state) => {
                if !state
                    .as_ref()
                    .is_some_and(|s| is_store_failure(s.last_error.as_deref()))
                {
                    retried_on_recovery = false;
                }
                state.and_then(|s| s.next_fetch)
            }
            Err(err) => {
                tracing::error!(source = %source.name, "cannot read source state: {err}");
                let now = clock.now();
                let scheduled = source.schedule.next_fetch(&source.name, now);
                scheduled.map(|s| s.max(now + UNREADABLE_WAIT))
            }
        };
    }
    tracing::info!(source = %source.name, "no further fetch planned (disabled after 410 Gone, or the schedule never fires again)");
    stop.recv().await;
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    #[test]
    fn health_needs_a_recent_beat_and_no_stop() {
        let health = Health::default();
        assert!(!health.alive(), "alive before the first beat");
        health.beat();
        assert!(health.alive());
        health
            .last_beat_ms
            .store(Utc::now().timestamp_millis() - 11_000, Ordering::SeqCst);
        assert!(!health.alive(), "a hung scheduler counts as alive");
        health.beat();
        health.stop();
        assert!(!health.alive());
    }
}
