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
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::{FetchConfig, SourceConfig};
use crate::fetch::Fetcher;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::refresh::{
    current_state, first_fetch, is_store_failure, refresh, Claiming, RefreshOutcome,
};
use crate::shutdown::{self, Shutdown, ShutdownTrigger};
use crate::store::{Claim, SharedStore};

/// How often the supervisor beats.
const BEAT: Duration = Duration::from_secs(1);
/// How long a source waits when its state cannot be read from the store.
const UNREADABLE_WAIT: Duration = Duration::from_secs(60);

/// What the supervisor is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
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
pub(crate) struct Scheduler {
    fetch: FetchConfig,
    fetcher: Arc<Fetcher>,
    store: SharedStore,
    metrics: Arc<Metrics>,
    changes: mpsc::UnboundedSender<String>,
    clock: Clock,
    claiming: Claiming,
    /// Replicas share the store: each waits a random moment before claiming a due fetch,
    /// so that the fetches spread over them rather than going to the quickest.
    spread: bool,
    tasks: HashMap<String, SourceTask>,
}

impl Scheduler {
    /// A scheduler with no tasks yet, on the system's clock.
    pub(crate) fn new(
        fetch: FetchConfig,
        fetcher: Arc<Fetcher>,
        store: SharedStore,
        metrics: Arc<Metrics>,
        changes: mpsc::UnboundedSender<String>,
    ) -> Scheduler {
        Scheduler {
            claiming: Claiming {
                per_host: fetch.per_host,
                lease: crate::config::DEFAULT_LEASE,
            },
            fetch,
            fetcher,
            store,
            metrics,
            changes,
            clock: Clock::System,
            spread: false,
            tasks: HashMap::new(),
        }
    }

    /// The same scheduler claiming each fetch for `lease` among replicas that share the
    /// store (`replicated`), which spreads the fetches over them.
    pub(crate) fn with_lease(self, lease: Duration, replicated: bool) -> Scheduler {
        Scheduler {
            claiming: Claiming {
                lease,
                ..self.claiming
            },
            spread: replicated,
            ..self
        }
    }

    #[cfg(test)]
    /// The same scheduler reading the time from `clock` (before any task is started).
    pub(crate) fn with_clock(self, clock: Clock) -> Scheduler {
        Scheduler { clock, ..self }
    }

    /// Starts tasks for added sources, restarts changed ones (all of them when `[fetch]`
    /// changed) and stops removed ones. Unchanged sources keep running untouched: they are
    /// not fetched again because of a reload.
    pub(crate) async fn apply(&mut self, sources: &[SourceConfig], fetch: &FetchConfig) {
        if *fetch != self.fetch {
            match Fetcher::new(fetch) {
                Ok(fetcher) => {
                    self.fetcher = Arc::new(fetcher);
                    self.fetch = fetch.clone();
                    self.claiming.per_host = fetch.per_host;
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
            (self.claiming, self.spread),
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
    pub(crate) async fn stop_all(&mut self) {
        for (_, task) in self.tasks.drain() {
            stop_task(task).await;
        }
    }

    /// The supervisor loop: beats, and applies commands, until shutdown.
    pub(crate) async fn run(
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
#[allow(clippy::too_many_arguments)]
async fn source_loop(
    source: SourceConfig,
    fetcher: Arc<Fetcher>,
    store: SharedStore,
    metrics: Arc<Metrics>,
    changes: mpsc::UnboundedSender<String>,
    clock: Clock,
    (claiming, spread): (Claiming, bool),
    mut stop: Shutdown,
) {
    let mut outage = store.outage();
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
        // While the database is away, nothing is fetched: what would be fetched could not be
        // stored. The due time stands; the claim then decides who fetches it.
        if !wait_for_store(&source, &mut outage, &mut stop).await {
            return;
        }
        if spread {
            let moment = Duration::from_millis(rand::random_range(0..SPREAD_MS));
            tokio::select! {
                _ = tokio::time::sleep(moment) => {}
                _ = stop.recv() => return,
            }
        }
        let outcome = tokio::select! {
            // Boxed: the fetch's state is large and needed only while it runs, not by the
            // thousands of tasks that are waiting.
            outcome = Box::pin(refresh(&source, &fetcher, &store, &metrics, clock, Some(claiming))) => outcome,
            // A fetch in flight is abandoned; its response was never committed, and its
            // lease is given back for another replica to take.
            _ = stop.recv() => {
                let (store, name) = (store.clone(), source.name.clone());
                let _ = tokio::task::spawn_blocking(move || store.release(&name)).await;
                return;
            }
        };
        if outage.borrow().is_some() {
            // The database went away during the refresh: once it is back, try again at once.
            if !wait_for_store(&source, &mut outage, &mut stop).await {
                return;
            }
            due = Some(clock.now());
            continue;
        }
        match outcome {
            Ok(RefreshOutcome::Unclaimed(claim)) => {
                due = match claim {
                    // Fetched by another replica: due when it planned.
                    Claim::Fetched(state) => state.and_then(|s| s.next_fetch),
                    Claim::Busy(wait) => Some(clock.now() + wait),
                    Claim::Won | Claim::TakenOver => Some(clock.now()),
                };
                continue;
            }
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

/// The longest random moment a replica waits before claiming a due fetch.
const SPREAD_MS: u64 = 250;

/// Waits while the store cannot be reached; false when stopped meanwhile.
async fn wait_for_store(
    source: &SourceConfig,
    outage: &mut tokio::sync::watch::Receiver<Option<String>>,
    stop: &mut Shutdown,
) -> bool {
    loop {
        if outage.borrow_and_update().is_none() {
            return true;
        }
        tracing::debug!(source = %source.name, "waiting for the database before fetching");
        tokio::select! {
            changed = outage.changed() => if changed.is_err() {
                // The store is gone (closing): nothing to wait for.
                return true;
            },
            _ = stop.recv() => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::{DateTime, Utc};
    use url::Url;

    use super::*;
    use crate::config::schedule::CronSchedule;
    use crate::config::Config;
    use crate::model::{SourceState, MAX_HOLD};
    use crate::refresh::current_state;

    /// The longest a test may take in real time. Under a paused clock a fetch loop (a source
    /// due again at once, forever) keeps the runtime busy, so virtual time never reaches the
    /// test's next step: without this bound the test would hang instead of failing.
    const REAL_TIME_BOUND: Duration = Duration::from_secs(10);

    /// A store, metrics and `file:` sources in a tempdir, on a clock that follows tokio's.
    struct Harness {
        dir: tempfile::TempDir,
        store: SharedStore,
        metrics: Arc<Metrics>,
        clock: Clock,
        fetch: FetchConfig,
        /// Turns true once [`REAL_TIME_BOUND`] has passed in real time.
        too_long: tokio::sync::watch::Receiver<bool>,
    }

    impl Harness {
        fn new() -> Harness {
            let dir = tempfile::tempdir().expect("tempdir");
            let store: SharedStore =
                crate::store::open_at(&dir.path().join("store")).expect("store opens");
            let config = Config::parse(
                Path::new("/x/feedmill.toml"),
                "[fetch]\n\n[[feed]]\nname = \"all\"\n",
            )
            .expect("config");
            let (tell, too_long) = tokio::sync::watch::channel(false);
            // A thread, not a task: tokio's timers run on the paused clock.
            std::thread::spawn(move || {
                std::thread::sleep(REAL_TIME_BOUND);
                let _ = tell.send(true);
            });
            Harness {
                dir,
                store,
                metrics: Arc::new(Metrics::new()),
                clock: Clock::tokio(),
                fetch: config.fetch,
                too_long,
            }
        }

        /// A scheduler on this harness's store, metrics and clock.
        fn scheduler(&self) -> Scheduler {
            let fetcher = Arc::new(Fetcher::new(&self.fetch).expect("fetcher"));
            // Nobody renders: what changed is not listened to.
            let (changes, _) = mpsc::unbounded_channel();
            Scheduler::new(
                self.fetch.clone(),
                fetcher,
                self.store.clone(),
                self.metrics.clone(),
                changes,
            )
            .with_clock(self.clock)
        }

        /// A source that reads the file `file` of the tempdir.
        fn source(&self, name: &str, file: &str, schedule: &str) -> SourceConfig {
            SourceConfig {
                name: name.into(),
                url: Url::from_file_path(self.dir.path().join(file)).expect("file url"),
                title: None,
                schedule: CronSchedule::parse(schedule).expect("cron"),
                tags: vec![],
            }
        }

        /// Makes `file` a good feed; a source reading it succeeds.
        fn publish(&self, file: &str) {
            std::fs::write(
                self.dir.path().join(file),
                "<rss version=\"2.0\"><channel><title>T</title><link>https://t.example/</link>\
                 <item><guid>1</guid><title>One</title><link>https://t.example/1</link></item>\
                 </channel></rss>",
            )
            .expect("write feed");
        }

        /// Lets `duration` of virtual time pass, with everything that falls due meanwhile run
        /// to its end: the runtime moves the paused clock on only when every task waits for a
        /// timer (a fetch's file reads and commits on the blocking pool hold it still).
        async fn pass(&self, duration: Duration) {
            let mut too_long = self.too_long.clone();
            tokio::select! {
                () = tokio::time::sleep(duration) => {}
                _ = too_long.wait_for(|late| *late) => panic!(
                    "virtual time stopped moving for {REAL_TIME_BOUND:?} of real time: a source is fetched in a loop"
                ),
            }
        }

        /// Lets virtual time pass until `offset` after `time` (a negative offset: before it).
        async fn pass_until(&self, time: DateTime<Utc>, offset: chrono::Duration) {
            self.pass(self.clock.until(time + offset)).await;
        }

        /// Every fetch so far, whatever its outcome, as the metrics count them.
        fn fetches(&self) -> u64 {
            self.metrics
                .encode(&[])
                .lines()
                .filter(|line| line.starts_with("feedmill_fetches_total{"))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
                .sum()
        }

        fn state(&self, name: &str) -> SourceState {
            self.store
                .source_state(name)
                .expect("state reads")
                .unwrap_or_else(|| panic!("{name} has no state"))
        }

        fn planned(&self, name: &str) -> DateTime<Utc> {
            let state = self.state(name);
            state
                .next_fetch
                .unwrap_or_else(|| panic!("{name} has no next fetch: {state:?}"))
        }
    }

    fn seconds(seconds: i64) -> chrono::Duration {
        chrono::Duration::seconds(seconds)
    }

    /// A yearly schedule whose next time is some two hundred days away: a source on it is
    /// fetched at once and then not again while a test runs.
    fn far_schedule() -> String {
        let at = Utc::now() + chrono::Duration::days(200);
        at.format("%M %H %d %m *").to_string()
    }

    /// Backoff as a refresh plans it ([`crate::model::backoff`]: one minute doubling, up to a
    /// fifth more of jitter, capped at a day) and the scheduler keeping to that plan to the
    /// second, over a day of virtual time.
    #[tokio::test(start_paused = true)]
    async fn a_failing_source_is_fetched_only_when_its_backoff_runs_out() {
        let h = Harness::new();
        // Fetched every second but for backoff; its file does not exist.
        let source = h.source("s", "missing.rss", "* * * * * *");
        let mut scheduler = h.scheduler();
        scheduler
            .apply(std::slice::from_ref(&source), &h.fetch)
            .await;
        h.pass(Duration::from_secs(1)).await;
        assert_eq!(h.fetches(), 1, "not fetched at once");
        for failures in 1..=12u32 {
            let state = h.state("s");
            assert_eq!(state.consecutive_failures, failures, "{state:?}");
            let next = h.planned("s");
            let waited = (next - state.last_fetch.expect("fetched"))
                .to_std()
                .expect("later");
            let base = Duration::from_secs(60 << (failures - 1));
            if base < MAX_HOLD {
                assert!(
                    waited >= base && waited < base.mul_f64(1.2),
                    "failure {failures}: backed off {waited:?}"
                );
            } else {
                assert_eq!(waited, MAX_HOLD, "failure {failures}: not capped at a day");
                // The first capped plan is the last one checked: refresh counts from the
                // wall clock, which stands still here, so a further day-long plan would fall
                // due at once on the paused clock.
                break;
            }
            h.pass_until(next, seconds(-1)).await;
            assert_eq!(h.fetches(), u64::from(failures), "fetched before {next}");
            h.pass(Duration::from_secs(2)).await;
            assert_eq!(
                h.fetches(),
                u64::from(failures) + 1,
                "not fetched at {next}"
            );
        }
        // (The last plan was checked unfetched; the loop ends on the cap, never by running out.)
        assert_eq!(h.state("s").consecutive_failures, 12);
        scheduler.stop_all().await;
    }

    /// A hold in the store (backoff, Retry-After) survives a restart: a scheduler started
    /// later, its clock on, fetches the source when the hold ends and not before.
    #[tokio::test(start_paused = true)]
    async fn a_new_scheduler_keeps_the_hold_it_finds_in_the_store() {
        let h = Harness::new();
        let source = h.source("s", "missing.rss", "* * * * * *");
        // Ten minutes on: the scheduler's clock and the wall clock differ from now on, so a
        // scheduler that read the wall clock would wait ten minutes too long.
        h.pass(Duration::from_secs(600)).await;
        let now = h.clock.now();
        // Four failures: eight minutes from the last fetch. (The fifth failure's sixteen
        // minutes, which refresh counts from the wall clock, then end after the virtual now.)
        let last_fetch = now - seconds(300);
        let hold_until = last_fetch + seconds(480);
        let state = SourceState {
            last_fetch: Some(last_fetch),
            last_error: Some("timed out".into()),
            consecutive_failures: 4,
            hold_until: Some(hold_until),
            next_fetch: Some(hold_until),
            ..current_state(&source, &h.store).expect("state")
        };
        h.store.save_state("s", &state).expect("saves");
        let mut scheduler = h.scheduler();
        scheduler
            .apply(std::slice::from_ref(&source), &h.fetch)
            .await;
        h.pass_until(hold_until, seconds(-1)).await;
        assert_eq!(h.fetches(), 0, "fetched before its hold ended");
        h.pass(Duration::from_secs(2)).await;
        assert_eq!(h.fetches(), 1, "not fetched when its hold ended");
        assert_eq!(h.state("s").consecutive_failures, 5);
        scheduler.stop_all().await;
    }

    /// `Command::Apply` through the supervisor's queue: a removed source stops being
    /// fetched, re-adding it starts it again where its state left off, a changed one is
    /// restarted, and an unchanged one is never fetched again because of a reload.
    #[tokio::test(start_paused = true)]
    async fn sources_stop_and_start_again_through_the_command_queue() {
        let h = Harness::new();
        h.publish("keep.rss");
        h.publish("fixed.rss");
        let keep = h.source("keep", "keep.rss", &far_schedule());
        // Fetched every second but for backoff; its file does not exist.
        let failing = h.source("failing", "missing.rss", "* * * * * *");
        let health = Arc::new(Health::with_clock(h.clock));
        let (commands, queue) = mpsc::unbounded_channel();
        let (stop, stopped) = shutdown::channel();
        let supervisor = tokio::spawn(h.scheduler().run(health.clone(), queue, stopped));
        let apply = |sources: Vec<SourceConfig>| {
            let (done, applied) = tokio::sync::oneshot::channel();
            commands
                .send(Command::Apply {
                    sources,
                    fetch: h.fetch.clone(),
                    done,
                })
                .expect("the supervisor listens");
            applied
        };

        apply(vec![keep.clone(), failing.clone()])
            .await
            .expect("applied");
        h.pass(Duration::from_secs(1)).await;
        let kept = h.state("keep");
        assert!(kept.last_error.is_none() && kept.items == 1, "{kept:?}");
        assert_eq!(h.state("failing").consecutive_failures, 1);
        // Running: fetched again when its backoff runs out.
        h.pass_until(h.planned("failing"), seconds(1)).await;
        assert_eq!(h.state("failing").consecutive_failures, 2);
        assert_eq!(h.fetches(), 3);

        // Removed: no longer fetched, though its plan falls due.
        apply(vec![keep.clone()]).await.expect("applied");
        h.pass_until(h.planned("failing"), seconds(60)).await;
        assert_eq!(
            h.state("failing").consecutive_failures,
            2,
            "fetched after it was removed"
        );
        assert_eq!(h.fetches(), 3);

        // Added again: due (its backoff ran out meanwhile), so fetched at once, and its
        // failures count on.
        apply(vec![keep.clone(), failing.clone()])
            .await
            .expect("applied");
        h.pass(Duration::from_secs(1)).await;
        assert_eq!(h.state("failing").consecutive_failures, 3);
        assert_eq!(h.fetches(), 4);

        // Changed (a new URL, which starts its state afresh): restarted and fetched at once.
        let fixed = SourceConfig {
            url: h.source("failing", "fixed.rss", "* * * * *").url,
            schedule: CronSchedule::parse(&far_schedule()).expect("cron"),
            ..failing.clone()
        };
        apply(vec![keep.clone(), fixed]).await.expect("applied");
        h.pass(Duration::from_secs(1)).await;
        let state = h.state("failing");
        assert!(
            state.last_error.is_none() && state.consecutive_failures == 0 && state.items == 1,
            "{state:?}"
        );
        assert_eq!(h.fetches(), 5);
        assert_eq!(
            h.state("keep").last_fetch,
            kept.last_fetch,
            "an unchanged source was fetched again by a reload"
        );

        assert!(health.alive(), "no beat on the scheduler's clock");
        stop.fire();
        supervisor.await.expect("the supervisor stops");
        assert!(!health.alive());
    }

    // The two tests below are ignored: refresh plans the next fetch from the wall clock
    // (`Utc::now()`), which stands still under a paused tokio clock, so a source that it
    // planned on its schedule falls due again at once on the scheduler's clock and is fetched
    // in a loop (they fail after REAL_TIME_BOUND). They pass once refresh plans with the
    // scheduler's clock.

    /// Over an hour of virtual time, a source on a five-minute schedule is fetched at once
    /// and then once at each of its due times, never before.
    #[tokio::test(start_paused = true)]
    async fn a_source_on_a_five_minute_schedule_is_fetched_once_per_due_time() {
        let h = Harness::new();
        h.publish("s.rss");
        let source = h.source("s", "s.rss", "*/5 * * * *");
        let mut scheduler = h.scheduler();
        let start = h.clock.now();
        scheduler
            .apply(std::slice::from_ref(&source), &h.fetch)
            .await;
        h.pass(Duration::from_secs(1)).await;
        let mut fetches = 1;
        assert_eq!(h.fetches(), fetches, "not fetched at once");
        let mut due = source.schedule.next_fetch("s", start).expect("fires");
        while due <= start + chrono::Duration::hours(1) {
            assert_eq!(h.planned("s"), due, "not planned on its schedule");
            h.pass_until(due, seconds(-1)).await;
            assert_eq!(h.fetches(), fetches, "fetched before {due}");
            h.pass(Duration::from_secs(2)).await;
            fetches += 1;
            assert_eq!(h.fetches(), fetches, "not fetched at {due}");
            due = source.schedule.next_fetch("s", due).expect("fires");
        }
        // Twelve due times in the hour (eleven when it started in its jitter's window).
        assert!(fetches >= 12, "{fetches}");
        scheduler.stop_all().await;
    }

    /// A failing source backs off; its first success puts it back on its schedule.
    #[tokio::test(start_paused = true)]
    async fn a_success_puts_a_failing_source_back_on_its_schedule() {
        let h = Harness::new();
        let source = h.source("s", "s.rss", "* * * * * *");
        let mut scheduler = h.scheduler();
        scheduler
            .apply(std::slice::from_ref(&source), &h.fetch)
            .await;
        h.pass(Duration::from_secs(1)).await;
        // The second failure; then the file is there for the third fetch.
        h.pass_until(h.planned("s"), seconds(1)).await;
        assert_eq!(h.state("s").consecutive_failures, 2);
        h.publish("s.rss");
        let backoff = h.planned("s");
        h.pass_until(backoff, seconds(-1)).await;
        assert_eq!(h.fetches(), 2, "fetched before its backoff ran out");
        h.pass(Duration::from_secs(1) + Duration::from_millis(50))
            .await;
        assert_eq!(h.fetches(), 3, "not fetched when its backoff ran out");
        let state = h.state("s");
        assert!(
            state.last_error.is_none() && state.consecutive_failures == 0,
            "{state:?}"
        );
        // Every second again (its jitter is under a tenth of a second).
        let mut due = h.planned("s");
        assert_eq!(
            Some(due),
            source
                .schedule
                .next_fetch("s", state.last_fetch.expect("fetched"))
        );
        for fetches in 3..8 {
            h.pass_until(due, chrono::Duration::milliseconds(-50)).await;
            assert_eq!(h.fetches(), fetches, "fetched before {due}");
            h.pass(Duration::from_millis(100)).await;
            assert_eq!(h.fetches(), fetches + 1, "not fetched at {due}");
            assert_eq!(h.planned("s"), due + seconds(1));
            due = h.planned("s");
        }
        scheduler.stop_all().await;
    }
}
