//! Rendering: the stories each output feed selects, rendered to every format and the HTML
//! views, published for the server. A render reads the store and the config; the time it
//! renders at is passed in (`now`), so that the same store, config and time always make the
//! same bytes.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::config::{Config, FeedConfig};
use crate::publish::page;
use crate::publish::SourceInfo;
use crate::select::select;
use crate::shared::Shared;
use crate::shutdown::Shutdown;
use crate::status::{report, SourceReport};
use crate::store::{SharedStore, StoreError};

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
}

impl SourcesNow {
    /// The newest sort time of `source`, where known.
    pub(crate) fn newest(&self, source: &str) -> Option<DateTime<Utc>> {
        self.newest.get(source).copied()
    }
}

/// Reads [`SourcesNow`] from the store.
pub(crate) fn source_infos(config: &Config, store: &SharedStore) -> Result<SourcesNow, StoreError> {
    let mut infos = HashMap::with_capacity(config.sources.len());
    let mut reports = Vec::with_capacity(config.sources.len());
    let mut newest = HashMap::with_capacity(config.sources.len());
    for source in &config.sources {
        let state = store.source_state(&source.name)?.unwrap_or_default();
        reports.push(report(source, &state));
        if let Some(time) = state.newest {
            newest.insert(source.name.clone(), time);
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
    })
}

/// Renders the output feeds `which` selects, from the store, and publishes them; then the
/// home page.
fn render_feeds(
    shared: &Shared,
    config: &Config,
    which: impl Fn(&FeedConfig) -> bool,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let now_sources = source_infos(config, &shared.store)?;
    let sources = &now_sources.infos;
    let mut river = None;
    for (i, feed) in config.feeds.iter().enumerate().filter(|(_, f)| which(f)) {
        let stories = select(&*shared.store, feed, &|s| now_sources.newest(s))?;
        let html = page::render_feed_page(config, feed, &stories, sources, now);
        shared
            .publisher
            .publish(feed, &stories, sources, &config.server, html, now);
        shared.metrics.rendered();
        if i == 0 {
            river = Some(stories);
        }
    }
    let names: Vec<&str> = config.feeds.iter().map(|f| f.name.as_str()).collect();
    shared.publisher.retain(&names);
    render_home(shared, config, &now_sources, river, now)
}

/// Renders the home page: the river is the first output feed (`river`, when its stories
/// were just selected).
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
    Ok(())
}

/// Renders every output feed of the config in force, as of `now`.
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
    // The page shows source states and relative times, which change without new entries.
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
            let which = |feed: &FeedConfig| feed.sources.iter().any(|s| dirty.contains(s));
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
