//! Per-source status: what `/status.json` and `feedmill sources` report, from config + store.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::SourceConfig;
use crate::model::SourceState;
use crate::store::{SharedStore, StoreError};

/// One source's state, as the operator sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(crate) struct SourceReport {
    /// The configured name.
    pub(crate) name: String,
    /// The URL fetched: the configured one, or where a permanent redirect moved it.
    pub(crate) url: String,
    /// When the last fetch ended.
    pub(crate) last_fetch: Option<DateTime<Utc>>,
    /// The HTTP status of the last fetch, if there was an answer.
    pub(crate) last_status: Option<u16>,
    /// Why the last fetch failed, in words.
    pub(crate) last_error: Option<String>,
    /// Failures in a row.
    pub(crate) consecutive_failures: u32,
    /// When the next fetch is planned.
    pub(crate) next_fetch: Option<DateTime<Utc>>,
    /// Entries stored for this source.
    pub(crate) items: u64,
    /// Whether the source is disabled (410 Gone) until its config changes.
    pub(crate) disabled: bool,
    /// The replica that made the last fetch (`[store] replica`); `null` when unknown (never
    /// fetched, or stored by a version before replicas). Always written, so that a reader
    /// of the JSON finds the field whichever engine runs.
    pub(crate) fetched_by: Option<String>,
}

/// The reports of `sources`, in config order; a source never fetched reports empty state.
pub(crate) fn source_reports(
    sources: &[SourceConfig],
    store: &SharedStore,
) -> Result<Vec<SourceReport>, StoreError> {
    sources
        .iter()
        .map(|source| {
            let state = store.source_state(&source.name)?.unwrap_or_default();
            Ok(report(source, &state))
        })
        .collect()
}

/// The report of one source in `state`.
pub(crate) fn report(source: &SourceConfig, state: &SourceState) -> SourceReport {
    SourceReport {
        name: source.name.clone(),
        url: state.url_or(&source.url),
        last_fetch: state.last_fetch,
        last_status: state.last_status,
        last_error: state.last_error.clone(),
        consecutive_failures: state.consecutive_failures,
        next_fetch: state.next_fetch,
        items: state.items,
        disabled: state.disabled,
        fetched_by: state.fetched_by.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_names_the_replica_that_fetched_or_null() {
        let source = SourceConfig {
            name: "s".into(),
            url: url::Url::parse("https://s.example/feed").expect("url"),
            title: None,
            schedule: crate::config::schedule::CronSchedule::parse("*/30 * * * *").expect("cron"),
            tags: vec![],
        };
        let json =
            |state: &SourceState| serde_json::to_value(report(&source, state)).expect("json");
        let unknown = json(&SourceState::default());
        assert_eq!(unknown.get("fetched_by"), Some(&serde_json::Value::Null));
        let state = SourceState {
            fetched_by: Some("web-1".into()),
            ..SourceState::default()
        };
        assert_eq!(json(&state)["fetched_by"], "web-1");
    }
}
