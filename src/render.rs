//! Rendering: the stories each output feed selects, rendered to every format and the HTML
//! views, published for the server. A render reads the store and the config; the time it
//! renders at is passed in (`now`), so that the same store, config and time always make the
//! same bytes.
//!
//! Which time: a store that keeps the time each source's outputs last changed
//! ([`Store::changed_at`], PostgreSQL) has every replica render a feed's documents at the
//! latest of its sources' times, and date them by it ([`Dating::Store`]), so that replicas
//! serve the same bytes, ETag and Last-Modified. Otherwise (sled, one process) the feed
//! documents are rendered at the wall clock ([`Dating::Clock`]). The HTML views and the home
//! page are always rendered at the wall clock: they show relative times ("5 minutes ago").

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::config::{Config, FeedConfig};
use crate::publish::page;
use crate::publish::{Dating, Publisher, RenderTime, SourceInfo};
use crate::select::select;
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use crate::status::{report, SourceReport};
use crate::store::{SharedStore, Store, StoreError};

/// How often the home page is rendered anew without a change: it shows source states and
/// relative times ("5 minutes ago"), which change without new entries.
const PAGE_EVERY: Duration = Duration::from_secs(60);

/// What rendering needs of every source, from one read of each source's state.
pub(crate) struct SourcesNow {
    /// The titles and URLs that output entries name as their source.
    pub(crate) infos: HashMap<String, SourceInfo>,
    /// The reports of the page's source table.
    pub(crate) reports: Vec<SourceReport>,
    /// Each source's newest sort time, where known.
    pub(crate) newest: HashMap<String, DateTime<Utc>>,
    /// Each source's next planned fetch, where one is planned; none for a disabled source,
    /// which is not fetched whatever its state says.
    pub(crate) next_fetch: HashMap<String, DateTime<Utc>>,
}

impl SourcesNow {
    /// The newest sort time of `source`, where known.
    pub(crate) fn newest(&self, source: &str) -> Option<DateTime<Utc>> {
        self.newest.get(source).copied()
    }

    /// The earliest planned fetch of `feed`'s sources: until then its documents stay as
    /// they are (`Cache-Control`).
    pub(crate) fn next_fetch(&self, feed: &FeedConfig) -> Option<DateTime<Utc>> {
        feed.sources
            .iter()
            .filter_map(|s| self.next_fetch.get(s))
            .min()
            .copied()
    }
}

/// Reads [`SourcesNow`] from the store.
pub(crate) fn source_infos(config: &Config, store: &SharedStore) -> Result<SourcesNow, StoreError> {
    let mut infos = HashMap::with_capacity(config.sources.len());
    let mut reports = Vec::with_capacity(config.sources.len());
    let mut newest = HashMap::with_capacity(config.sources.len());
    let mut next_fetch = HashMap::with_capacity(config.sources.len());
    for source in &config.sources {
        let state = store.source_state(&source.name)?.unwrap_or_default();
        reports.push(report(source, &state));
        if let Some(time) = state.newest {
            newest.insert(source.name.clone(), time);
        }
        if let Some(time) = state.next_fetch.filter(|_| !state.disabled) {
            next_fetch.insert(source.name.clone(), time);
        }
        let title = source
            .title
            .clone()
            .or_else(|| state.title.clone())
            .unwrap_or_else(|| source.name.clone());
        infos.insert(
            source.name.clone(),
            SourceInfo {
                name: source.name.clone(),
                title,
                url: state.url_or(&source.url),
                site_link: state.site_link,
            },
        );
    }
    Ok(SourcesNow {
        infos,
        reports,
        newest,
        next_fetch,
    })
}

/// The store's times of change of sources, each read once per render however many feeds
/// draw from it.
#[derive(Default)]
struct ChangeTimes(HashMap<String, Option<DateTime<Utc>>>);

impl ChangeTimes {
    /// The latest time of change of `feed`'s sources that the store keeps, if it keeps any.
    fn of(
        &mut self,
        store: &dyn Store,
        feed: &FeedConfig,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut latest = None;
        for source in &feed.sources {
            let changed = match self.0.get(source) {
                Some(changed) => *changed,
                None => {
                    let changed = store.changed_at(source)?;
                    self.0.insert(source.clone(), changed);
                    changed
                }
            };
            latest = latest.max(changed);
        }
        Ok(latest)
    }
}

/// When and how `feed` is rendered, given the store's time of its last change (`changed`)
/// and the wall clock (`clock`): see the module documentation.
fn render_time(
    changed: Option<DateTime<Utc>>,
    clock: DateTime<Utc>,
    next_fetch: Option<DateTime<Utc>>,
) -> RenderTime {
    let (at, dating) = match changed {
        Some(changed) => (changed, Dating::Store),
        None => (clock, Dating::Clock),
    };
    RenderTime {
        at,
        dating,
        clock,
        next_fetch,
    }
}

/// Renders the output feeds `which` selects, from the store, and publishes them; then the
/// home page. `now` is the wall clock: the time of the HTML views and the home page, and of
/// the feed documents unless the store keeps a time of change (see the module
/// documentation).
fn render_feeds(
    shared: &Shared,
    config: &Config,
    which: impl Fn(&FeedConfig) -> bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let now_sources = source_infos(config, &shared.store)?;
    let sources = &now_sources.infos;
    // Every time of change is read before any entry: a commit landing between the two reads
    // then makes new bytes at the old time, which the change's own render moves to the new
    // one; read the other way round, old bytes would be dated by the new change, and a
    // reader given them would be told 304 for the new ones.
    let mut changes = ChangeTimes::default();
    let mut rendering = Vec::new();
    for (i, feed) in config.feeds.iter().enumerate().filter(|(_, f)| which(f)) {
        let changed = changes.of(&*shared.store, feed)?;
        rendering.push((i, feed, changed));
    }
    let mut river = None;
    for (i, feed, changed) in rendering {
        let stories = select(&*shared.store, feed, &|s| now_sources.newest(s))?;
        let html = page::render_feed_page(config, feed, &stories, sources, now);
        let time = render_time(changed, now, now_sources.next_fetch(feed));
        let published =
            shared
                .publisher
                .publish_render(feed, &stories, sources, &config.server, html, time);
        if published {
            shared.metrics.rendered();
        } else {
            tracing::debug!(feed = %feed.name, "dropped a render older than the published one");
        }
        if i == 0 {
            river = Some(stories);
        }
    }
    let names: Vec<&str> = config.feeds.iter().map(|f| f.name.as_str()).collect();
    shared.publisher.retain(&names);
    render_home(shared, config, &now_sources, river, now)
}

/// Sets every published feed's earliest planned fetch from `sources`: a 304, or another
/// replica's fetch, moves a source's next fetch without a render.
fn refresh_next_fetches(publisher: &Publisher, config: &Config, sources: &SourcesNow) {
    for feed in &config.feeds {
        publisher.set_next_fetch(&feed.name, sources.next_fetch(feed));
    }
}

/// Renders the home page at `now`, the wall clock (it shows relative times); the river is
/// the first output feed (`river`, when its stories were just selected). Also refreshes the
/// feeds' planned fetches (see [`refresh_next_fetches`]), as the page's source table is
/// read anew each time.
fn render_home(
    shared: &Shared,
    config: &Config,
    sources: &SourcesNow,
    river: Option<Vec<crate::select::Story>>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let river = match (river, config.feeds.first()) {
        (Some(stories), _) => stories,
        (None, Some(feed)) => select(&*shared.store, feed, &|s| sources.newest(s))?,
        (None, None) => Vec::new(),
    };
    let html = page::render_home(config, &river, &sources.reports, &sources.infos, now);
    shared.publisher.publish_home(html, now);
    refresh_next_fetches(&shared.publisher, config, sources);
    Ok(())
}

/// Renders every output feed of the config in force, as of `now` (the wall clock; see
/// [`render_feeds`]).
pub(crate) fn render_all(shared: &Shared, now: DateTime<Utc>) -> Result<(), StoreError> {
    render_feeds(shared, &shared.config.get(), |_| true, now)
}

/// Re-renders the output feeds whose sources changed. Changes that arrive while a render
/// runs are coalesced into the next one.
pub(crate) async fn renderer(
    shared: Shared,
    mut changed: mpsc::UnboundedReceiver<String>,
    mut shutdown: Shutdown,
) {
    // The page shows source states and relative times, which change without new entries;
    // its render also refreshes the feeds' planned fetches, for `Cache-Control`.
    let mut refresh_page = tokio::time::interval(PAGE_EVERY);
    refresh_page.tick().await;
    loop {
        let first = tokio::select! {
            name = changed.recv() => match name {
                Some(name) => name,
                None => break,
            },
            _ = refresh_page.tick() => {
                let rendering = shared.clone();
                let rendered = tokio::task::spawn_blocking(move || {
                    let config = rendering.config.get();
                    let sources = source_infos(&config, &rendering.store)?;
                    render_home(&rendering, &config, &sources, None, Utc::now())
                })
                .await;
                if let Ok(Err(err)) = rendered {
                    tracing::error!("cannot render the home page: {err}");
                }
                continue;
            }
            _ = shutdown.recv() => break,
        };
        let mut dirty = HashSet::from([first]);
        while let Ok(name) = changed.try_recv() {
            dirty.insert(name);
        }
        let config = shared.config.get();
        let rendering = shared.clone();
        let started = std::time::Instant::now();
        let rendered = tokio::task::spawn_blocking(move || {
            // A damaged store is reported by its reads (see `store_probe`).
            // Another replica's changes may have been missed: every feed.
            let every = dirty.contains(crate::store::EVERY_SOURCE);
            let which = |feed: &FeedConfig| every || feed.sources.iter().any(|s| dirty.contains(s));
            render_feeds(&rendering, &config, which, Utc::now())
        })
        .await;
        crate::memory::trim();
        tracing::debug!(
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "rendered feeds"
        );
        match rendered {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::error!("cannot render: {err}"),
            Err(err) => tracing::error!("the renderer failed: {err}"),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use chrono::TimeDelta;

    use super::*;
    use crate::config::SharedConfig;
    use crate::health::Health;
    use crate::metrics::Metrics;
    use crate::model::{
        CommitSummary, Entry, EntryKey, EntryRef, SourceState, StoredEntry, StoryKind,
    };
    use crate::publish::Format;
    use crate::store::{Exported, Recoveries, Visit};

    /// A store that keeps a time of change per source, as a replicated engine does, over the
    /// default engine's entries; unreachable when `outage` says why.
    pub(crate) struct Replicated {
        pub(crate) inner: SharedStore,
        pub(crate) changed: HashMap<String, DateTime<Utc>>,
        pub(crate) outage: Option<String>,
    }

    impl Store for Replicated {
        fn source_state(&self, source: &str) -> Result<Option<SourceState>, StoreError> {
            self.inner.source_state(source)
        }
        fn save_state(&self, source: &str, state: &SourceState) -> Result<(), StoreError> {
            self.inner.save_state(source, state)
        }
        fn commit_fetch(
            &self,
            source: &str,
            state: &mut SourceState,
            entries: &[Entry],
            now: DateTime<Utc>,
        ) -> Result<CommitSummary, StoreError> {
            self.inner.commit_fetch(source, state, entries, now)
        }
        fn entry(&self, source: &str, key: &EntryKey) -> Result<Option<StoredEntry>, StoreError> {
            self.inner.entry(source, key)
        }
        fn story_of(&self, stored: &StoredEntry, kind: StoryKind) -> EntryRef {
            self.inner.story_of(stored, kind)
        }
        fn visit_newest(
            &self,
            sources: &[String],
            newest: &dyn Fn(&str) -> Option<DateTime<Utc>>,
            visit: &mut dyn FnMut(StoredEntry) -> Visit,
        ) -> Result<(), StoreError> {
            self.inner.visit_newest(sources, newest, visit)
        }
        fn prune(
            &self,
            cutoff: Option<DateTime<Utc>>,
            keep: Option<usize>,
        ) -> Result<HashMap<String, usize>, StoreError> {
            self.inner.prune(cutoff, keep)
        }
        fn flush(&self) -> Result<(), StoreError> {
            self.inner.flush()
        }
        fn close(&self) -> Result<(), StoreError> {
            self.inner.close()
        }
        fn corruption(&self) -> Option<String> {
            self.inner.corruption()
        }
        fn rebuild(&self, reason: &str) -> Result<(), StoreError> {
            self.inner.rebuild(reason)
        }
        fn write_failure(&self) -> Option<String> {
            self.inner.write_failure()
        }
        fn recover(&self) -> Result<(), StoreError> {
            self.inner.recover()
        }
        fn recoveries(&self) -> tokio::sync::watch::Receiver<Recoveries> {
            self.inner.recoveries()
        }
        fn outage(&self) -> tokio::sync::watch::Receiver<Option<String>> {
            tokio::sync::watch::channel(self.outage.clone()).1
        }
        fn changed_at(&self, source: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
            // A source never changed: the UNIX epoch, as the engine answers it.
            Ok(Some(self.changed.get(source).copied().unwrap_or_default()))
        }
        fn export(
            &self,
            visit: &mut dyn FnMut(Exported) -> Result<(), StoreError>,
        ) -> Result<(), StoreError> {
            self.inner.export(visit)
        }
        fn import(&self, item: Exported) -> Result<(), StoreError> {
            self.inner.import(item)
        }
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("time")
    }

    /// Sources a, b and c (c never fetched); feed `all` of a and b, `only_a`, `only_c`.
    fn config() -> Config {
        let mut text = String::new();
        for name in ["a", "b", "c"] {
            text.push_str(&format!(
                "[[source]]\nname = \"{name}\"\nurl = \"https://{name}.example/feed\"\n"
            ));
        }
        text.push_str(
            "[[feed]]\nname = \"all\"\nsources = [\"a\", \"b\"]\n\
             [[feed]]\nname = \"only_a\"\nsources = [\"a\"]\n\
             [[feed]]\nname = \"only_c\"\nsources = [\"c\"]\n",
        );
        Config::parse(std::path::Path::new("/etc/feedmill/feedmill.toml"), &text).expect("config")
    }

    /// A store with entries of a and b, whose next fetches are in 10 and 20 minutes.
    fn store(dir: &std::path::Path) -> SharedStore {
        let store = crate::store::open_at(&dir.join("store")).expect("opens");
        for (i, source) in ["a", "b"].into_iter().enumerate() {
            let entries: Vec<Entry> = (0..3)
                .map(|n| Entry {
                    identity: format!("{source}-{n}"),
                    title: format!("{source} {n}"),
                    link: Some(format!("https://{source}.example/{n}")),
                    published: Some(at(-3600 * (n + 1))),
                    ..Entry::default()
                })
                .collect();
            let mut state = SourceState {
                next_fetch: Some(at(600 * (i as i64 + 1))),
                ..SourceState::default()
            };
            store
                .commit_fetch(source, &mut state, &entries, at(-60))
                .expect("commits");
        }
        store
    }

    /// What the daemon shares, over `store` and the test config.
    pub(crate) fn shared(store: SharedStore) -> Shared {
        Shared {
            config: SharedConfig::new(config()),
            store,
            publisher: Arc::new(Publisher::default()),
            metrics: Arc::new(Metrics::new()),
            health: Arc::new(Health::default()),
        }
    }

    /// Each feed document's bytes, ETag and Last-Modified.
    fn documents(
        shared: &Shared,
        feed: &str,
    ) -> Vec<(bytes::Bytes, String, std::time::SystemTime)> {
        let rendered = shared.publisher.get(feed).expect("published");
        [Format::Atom, Format::Rss, Format::Json]
            .into_iter()
            .map(|format| {
                let doc = rendered.document(format);
                (doc.body.clone(), doc.etag.clone(), doc.last_modified)
            })
            .collect()
    }

    #[test]
    fn replicas_render_the_same_documents_at_the_store_time_whatever_their_clocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let changed = HashMap::from([
            ("a".to_string(), at(-100) + TimeDelta::milliseconds(250)),
            ("b".to_string(), at(-40) + TimeDelta::milliseconds(900)),
        ]);
        let store: SharedStore = Arc::new(Replicated {
            inner: store(dir.path()),
            changed,
            outage: None,
        });
        let (first, second) = (shared(store.clone()), shared(store));
        render_all(&first, at(0)).expect("renders");
        // The other replica renders three hours later, twice (a restart, the periodic page).
        render_all(&second, at(3 * 3600)).expect("renders");
        render_all(&second, at(3 * 3600 + 60)).expect("renders");
        for feed in ["all", "only_a", "only_c"] {
            assert_eq!(documents(&first, feed), documents(&second, feed), "{feed}");
        }
        // Each feed is last modified at the latest change of its sources, in whole seconds.
        let modified = |feed: &str| documents(&first, feed)[0].2;
        assert_eq!(modified("all"), at(-40).into());
        assert_eq!(modified("only_a"), at(-100).into());
        assert_eq!(modified("only_c"), DateTime::<Utc>::UNIX_EPOCH.into());
        // The HTML views and the home page keep the wall clock.
        let view = first.publisher.get("all").expect("published");
        assert_eq!(view.html().last_modified, at(0).into());
        let home = second.publisher.home().expect("home");
        assert_eq!(home.last_modified, at(3 * 3600).into());
    }

    #[test]
    fn one_process_renders_at_the_wall_clock_and_keeps_the_last_modified_of_the_same_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shared = shared(store(dir.path()));
        render_all(&shared, at(0)).expect("renders");
        let first = documents(&shared, "all");
        assert_eq!(first[0].2, at(0).into());
        render_all(&shared, at(600)).expect("renders");
        assert_eq!(documents(&shared, "all"), first);
    }

    #[test]
    fn feeds_keep_their_sources_earliest_planned_fetch_and_the_page_refreshes_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shared = shared(store(dir.path()));
        render_all(&shared, at(0)).expect("renders");
        let max_age = |feed: &str| {
            shared
                .publisher
                .get(feed)
                .expect("published")
                .max_age(at(0))
        };
        assert_eq!(max_age("all"), 610, "a's fetch in 10 minutes");
        assert_eq!(max_age("only_a"), 610);
        assert_eq!(max_age("only_c"), 300, "c plans no fetch");
        // A 304 moves a's next fetch and disables nothing: no render, but the page's.
        let mut state = shared.store.source_state("a").expect("reads").expect("a");
        state.next_fetch = Some(at(3000));
        shared.store.save_state("a", &state).expect("saves");
        let config = shared.config.get();
        let sources = source_infos(&config, &shared.store).expect("reads");
        render_home(&shared, &config, &sources, None, at(60)).expect("renders");
        assert_eq!(max_age("all"), 1210, "b's fetch in 20 minutes");
        assert_eq!(max_age("only_a"), 3010);
        // A disabled source is not fetched, whatever its state plans.
        let mut state = shared.store.source_state("b").expect("reads").expect("b");
        state.disabled = true;
        shared.store.save_state("b", &state).expect("saves");
        let sources = source_infos(&config, &shared.store).expect("reads");
        assert_eq!(sources.next_fetch(&config.feeds[0]), Some(at(3000)));
    }
}
