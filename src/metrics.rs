//! Metrics in the Prometheus text format (`GET /metrics`), with the prometheus-client crate.
//!
//! Counters and the latency histogram are updated where things happen (refresh, render,
//! HTTP, the scheduler's claims); per-source gauges (entries, failing sources) and the store
//! engine's figures (its connection pool, the leases held) are read at scrape time, so they
//! are never stale.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::model::FailureKind;
use crate::status::SourceReport;

/// How a fetch ended.
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub(crate) enum Outcome {
    /// New content parsed and stored.
    stored,
    /// 304, nothing to do.
    not_modified,
    /// Fetch or parse failed.
    failed,
    /// Skipped: disabled after 410 Gone.
    disabled,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: Outcome,
}

/// How a replica's claim on a due fetch ended (`feedmill_lease_claims_total`).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
pub(crate) enum ClaimOutcome {
    /// This process won the claim and fetches.
    Won,
    /// Another replica had fetched the source already.
    FetchedElsewhere,
    /// Another replica was fetching it, or its host had `per_host` fetches in flight.
    Busy,
    /// This process won a claim whose lease another replica had let run out (it died).
    TakenOver,
}

impl ClaimOutcome {
    /// Every outcome, in the order `/metrics` lists them.
    pub(crate) const ALL: [ClaimOutcome; 4] = [
        ClaimOutcome::Won,
        ClaimOutcome::FetchedElsewhere,
        ClaimOutcome::Busy,
        ClaimOutcome::TakenOver,
    ];

    /// The `outcome` label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            ClaimOutcome::Won => "won",
            ClaimOutcome::FetchedElsewhere => "fetched_elsewhere",
            ClaimOutcome::Busy => "busy",
            ClaimOutcome::TakenOver => "taken_over",
        }
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClaimLabel {
    outcome: &'static str,
}

/// The store engine's figures at a scrape, as the server reads them from the store (this
/// module does not import the store). An embedded engine has no pool and no leases: zeros.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct StoreFigures {
    /// Connections open in the pool.
    pub(crate) pool_size: u64,
    /// Of those, idle.
    pub(crate) pool_idle: u64,
    /// The pool's limit.
    pub(crate) pool_max: u64,
    /// Leases this process holds now.
    pub(crate) leases_held: u64,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabel {
    source: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabel {
    route: &'static str,
    status: u16,
}

/// Every metric of the daemon.
pub(crate) struct Metrics {
    registry: Registry,
    fetches: Family<OutcomeLabel, Counter>,
    /// Failed refreshes by the kind of their failure: they add up to the `failed` fetches.
    refresh_failures: Family<KindLabel, Counter>,
    fetch_seconds: Histogram,
    fetched_bytes: Counter,
    entries_new: Counter,
    entries_by_source: Family<SourceLabel, Gauge>,
    entries_total: Gauge,
    sources: Gauge,
    sources_failing: Gauge,
    sources_disabled: Gauge,
    renders: Counter,
    requests: Family<RequestLabel, Counter>,
    /// The counters of feed documents answered 200 and 304, the hot path: counted without
    /// the family's lock and label hashing.
    feed_ok: Counter,
    feed_not_modified: Counter,
    memory_allocated: Gauge,
    memory_resident: Gauge,
    connections_open: Gauge,
    connections_refused: Family<ReasonLabel, Counter>,
    connections_timed_out: Family<ReasonLabel, Counter>,
    lease_claims: Family<ClaimLabel, Counter>,
    store_pool_connections: Gauge,
    store_pool_idle_connections: Gauge,
    store_pool_max_connections: Gauge,
    leases_held: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero.
    pub(crate) fn new() -> Metrics {
        let mut registry = Registry::with_prefix("feedmill");
        let metrics = Metrics {
            fetches: Family::default(),
            refresh_failures: Family::default(),
            // 10 ms to about 80 s.
            fetch_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 14)),
            fetched_bytes: Counter::default(),
            entries_new: Counter::default(),
            entries_by_source: Family::default(),
            entries_total: Gauge::default(),
            sources: Gauge::default(),
            sources_failing: Gauge::default(),
            sources_disabled: Gauge::default(),
            renders: Counter::default(),
            requests: Family::default(),
            feed_ok: Counter::default(),
            feed_not_modified: Counter::default(),
            memory_allocated: Gauge::default(),
            memory_resident: Gauge::default(),
            connections_open: Gauge::default(),
            connections_refused: Family::default(),
            connections_timed_out: Family::default(),
            lease_claims: Family::default(),
            store_pool_connections: Gauge::default(),
            store_pool_idle_connections: Gauge::default(),
            store_pool_max_connections: Gauge::default(),
            leases_held: Gauge::default(),
            registry: Registry::default(),
        };
        let requests = metrics.requests.clone();
        let hot = |status| {
            requests
                .get_or_create(&RequestLabel {
                    route: "/feeds/{file}",
                    status,
                })
                .clone()
        };
        let metrics = Metrics {
            feed_ok: hot(200),
            feed_not_modified: hot(304),
            ..metrics
        };
        registry.register("fetches", "Fetches by outcome", metrics.fetches.clone());
        registry.register(
            "refresh_failures",
            "Failed refreshes by the kind of failure",
            metrics.refresh_failures.clone(),
        );
        registry.register(
            "fetch_duration_seconds",
            "Time from request to parsed and stored",
            metrics.fetch_seconds.clone(),
        );
        registry.register(
            "fetched_bytes",
            "Body bytes fetched, after decompression",
            metrics.fetched_bytes.clone(),
        );
        registry.register(
            "entries_new",
            "Entries stored for the first time",
            metrics.entries_new.clone(),
        );
        registry.register(
            "source_entries",
            "Entries stored per source",
            metrics.entries_by_source.clone(),
        );
        registry.register(
            "entries",
            "Entries stored in all",
            metrics.entries_total.clone(),
        );
        registry.register("sources", "Configured sources", metrics.sources.clone());
        registry.register(
            "sources_failing",
            "Sources whose last fetch failed",
            metrics.sources_failing.clone(),
        );
        registry.register(
            "sources_disabled",
            "Sources disabled after 410 Gone",
            metrics.sources_disabled.clone(),
        );
        registry.register("renders", "Output feed renders", metrics.renders.clone());
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            metrics.requests.clone(),
        );
        registry.register(
            "memory_allocated_bytes",
            "Memory the daemon has allocated and not freed",
            metrics.memory_allocated.clone(),
        );
        registry.register(
            "memory_resident_bytes",
            "Memory the allocator holds in resident pages (most of the RSS)",
            metrics.memory_resident.clone(),
        );
        registry.register(
            "http_connections",
            "HTTP connections open",
            metrics.connections_open.clone(),
        );
        registry.register(
            "http_connections_refused",
            "HTTP connections closed at once by a cap (per_address, total)",
            metrics.connections_refused.clone(),
        );
        registry.register(
            "http_connections_timed_out",
            "HTTP connections closed by a timeout (header_timeout, write_timeout)",
            metrics.connections_timed_out.clone(),
        );
        registry.register(
            "lease_claims",
            "Claims on due fetches by outcome (won, fetched_elsewhere, busy, taken_over)",
            metrics.lease_claims.clone(),
        );
        registry.register(
            "store_pool_connections",
            "Store connections open in the pool",
            metrics.store_pool_connections.clone(),
        );
        registry.register(
            "store_pool_idle_connections",
            "Store connections open in the pool and idle",
            metrics.store_pool_idle_connections.clone(),
        );
        registry.register(
            "store_pool_max_connections",
            "The store connection pool's limit",
            metrics.store_pool_max_connections.clone(),
        );
        registry.register(
            "leases_held",
            "Leases on fetches this process holds",
            metrics.leases_held.clone(),
        );
        // Every reason shows from the start, at 0: a rate can be alerted on.
        for reason in ["per_address", "total"] {
            let _ = metrics
                .connections_refused
                .get_or_create(&ReasonLabel { reason });
        }
        for reason in ["header_timeout", "write_timeout"] {
            let _ = metrics
                .connections_timed_out
                .get_or_create(&ReasonLabel { reason });
        }
        for kind in FailureKind::ALL {
            let _ = metrics
                .refresh_failures
                .get_or_create(&KindLabel { kind: kind.label() });
        }
        for outcome in ClaimOutcome::ALL {
            let _ = metrics.lease_claims.get_or_create(&ClaimLabel {
                outcome: outcome.label(),
            });
        }
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Counts an HTTP connection opened (`true`) or closed (`false`).
    pub(crate) fn connection(&self, opened: bool) {
        if opened {
            self.connections_open.inc();
        } else {
            self.connections_open.dec();
        }
    }

    /// Counts an HTTP connection refused by a cap: `reason` is `per_address` or `total`.
    pub(crate) fn connection_refused(&self, reason: &'static str) {
        self.connections_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Counts an HTTP connection closed by a timeout: `reason` is `header_timeout` or
    /// `write_timeout`.
    pub(crate) fn connection_timed_out(&self, reason: &'static str) {
        self.connections_timed_out
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Counts a fetch that took `seconds` and fetched `bytes`.
    pub(crate) fn fetched(&self, outcome: Outcome, seconds: f64, bytes: u64, new_entries: u64) {
        self.fetches.get_or_create(&OutcomeLabel { outcome }).inc();
        if outcome != Outcome::disabled {
            self.fetch_seconds.observe(seconds);
        }
        self.fetched_bytes.inc_by(bytes);
        self.entries_new.inc_by(new_entries);
    }

    /// Counts a refresh that failed with a failure of `kind` (besides its fetch, which
    /// [`Metrics::fetched`] counts as `failed`).
    pub(crate) fn refresh_failed(&self, kind: FailureKind) {
        self.refresh_failures
            .get_or_create(&KindLabel { kind: kind.label() })
            .inc();
    }

    /// Counts a claim on a due fetch that ended in `outcome`.
    // The scheduler calls it once its claims land; until then only the tests do.
    pub(crate) fn lease_claimed(&self, outcome: ClaimOutcome) {
        self.lease_claims
            .get_or_create(&ClaimLabel {
                outcome: outcome.label(),
            })
            .inc();
    }

    /// Counts one render of an output feed (three documents).
    pub(crate) fn rendered(&self) {
        self.renders.inc();
    }

    /// Counts an HTTP request.
    pub(crate) fn request(&self, route: &'static str, status: u16) {
        match (route, status) {
            ("/feeds/{file}", 200) => self.feed_ok.inc(),
            ("/feeds/{file}", 304) => self.feed_not_modified.inc(),
            _ => self
                .requests
                .get_or_create(&RequestLabel { route, status })
                .inc(),
        };
    }

    /// Sets the store engine's gauges, read at a scrape before [`Metrics::encode`].
    pub(crate) fn store_figures(&self, store: StoreFigures) {
        let gauge = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        self.store_pool_connections.set(gauge(store.pool_size));
        self.store_pool_idle_connections.set(gauge(store.pool_idle));
        self.store_pool_max_connections.set(gauge(store.pool_max));
        self.leases_held.set(gauge(store.leases_held));
    }

    /// The text exposition, with the per-source gauges set from `reports`.
    pub(crate) fn encode(&self, reports: &[SourceReport]) -> String {
        self.entries_by_source.clear();
        for report in reports {
            self.entries_by_source
                .get_or_create(&SourceLabel {
                    source: report.name.clone(),
                })
                .set(report.items as i64);
        }
        self.entries_total
            .set(reports.iter().map(|r| r.items as i64).sum());
        self.sources.set(reports.len() as i64);
        self.sources_failing
            .set(reports.iter().filter(|r| r.last_error.is_some()).count() as i64);
        self.sources_disabled
            .set(reports.iter().filter(|r| r.disabled).count() as i64);
        if let Some(usage) = crate::memory::usage() {
            self.memory_allocated.set(usage.allocated as i64);
            self.memory_resident.set(usage.resident as i64);
        }
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_has_every_metric() {
        let metrics = Metrics::new();
        metrics.fetched(Outcome::stored, 0.2, 1234, 3);
        metrics.fetched(Outcome::failed, 30.0, 0, 0);
        metrics.rendered();
        metrics.request("/feeds/{file}", 200);
        let report = SourceReport {
            name: "imdaily".into(),
            url: "https://imdaily.example/rss".into(),
            last_fetch: None,
            last_status: Some(200),
            last_error: None,
            consecutive_failures: 0,
            next_fetch: None,
            items: 7,
            disabled: false,
            fetched_by: None,
        };
        let text = metrics.encode(&[report]);
        for line in [
            "feedmill_fetches_total{outcome=\"stored\"} 1",
            "feedmill_fetches_total{outcome=\"failed\"} 1",
            "feedmill_fetch_duration_seconds_count 2",
            "feedmill_fetched_bytes_total 1234",
            "feedmill_entries_new_total 3",
            "feedmill_source_entries{source=\"imdaily\"} 7",
            "feedmill_entries 7",
            "feedmill_sources_failing 0",
            "feedmill_renders_total 1",
            "feedmill_http_requests_total{route=\"/feeds/{file}\",status=\"200\"} 1",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        let gauge = |name: &str| -> i64 {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
                .unwrap_or_else(|| panic!("no {name} in\n{text}"))
        };
        let (allocated, resident) = (
            gauge("feedmill_memory_allocated_bytes"),
            gauge("feedmill_memory_resident_bytes"),
        );
        assert!(0 < allocated && allocated <= resident, "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn failures_are_counted_by_kind_every_kind_from_zero() {
        let metrics = Metrics::new();
        let count = |text: &str, kind: FailureKind| -> u64 {
            let line = format!(
                "feedmill_refresh_failures_total{{kind=\"{}\"}} ",
                kind.label()
            );
            text.lines()
                .find_map(|l| l.strip_prefix(&line)?.parse().ok())
                .unwrap_or_else(|| panic!("no {line:?} in\n{text}"))
        };
        let text = metrics.encode(&[]);
        for kind in FailureKind::ALL {
            assert_eq!(count(&text, kind), 0, "{kind:?}");
        }
        metrics.refresh_failed(FailureKind::TimedOut);
        metrics.refresh_failed(FailureKind::TimedOut);
        metrics.refresh_failed(FailureKind::Gone);
        let text = metrics.encode(&[]);
        for kind in FailureKind::ALL {
            let expected = match kind {
                FailureKind::TimedOut => 2,
                FailureKind::Gone => 1,
                _ => 0,
            };
            assert_eq!(count(&text, kind), expected, "{kind:?}");
        }
    }

    #[test]
    fn claims_are_counted_by_outcome_every_outcome_from_zero_beside_the_engine_figures() {
        let metrics = Metrics::new();
        let text = metrics.encode(&[]);
        for line in [
            "feedmill_lease_claims_total{outcome=\"won\"} 0",
            "feedmill_lease_claims_total{outcome=\"fetched_elsewhere\"} 0",
            "feedmill_lease_claims_total{outcome=\"busy\"} 0",
            "feedmill_lease_claims_total{outcome=\"taken_over\"} 0",
            // An engine without a pool (sled) shows zeros.
            "feedmill_store_pool_connections 0",
            "feedmill_store_pool_idle_connections 0",
            "feedmill_store_pool_max_connections 0",
            "feedmill_leases_held 0",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
        metrics.lease_claimed(ClaimOutcome::Won);
        metrics.lease_claimed(ClaimOutcome::Won);
        metrics.lease_claimed(ClaimOutcome::TakenOver);
        metrics.lease_claimed(ClaimOutcome::Busy);
        metrics.store_figures(StoreFigures {
            pool_size: 4,
            pool_idle: 3,
            pool_max: 10,
            leases_held: 2,
        });
        let text = metrics.encode(&[]);
        for line in [
            "feedmill_lease_claims_total{outcome=\"won\"} 2",
            "feedmill_lease_claims_total{outcome=\"fetched_elsewhere\"} 0",
            "feedmill_lease_claims_total{outcome=\"busy\"} 1",
            "feedmill_lease_claims_total{outcome=\"taken_over\"} 1",
            "# TYPE feedmill_store_pool_connections gauge",
            "feedmill_store_pool_connections 4",
            "feedmill_store_pool_idle_connections 3",
            "feedmill_store_pool_max_connections 10",
            "feedmill_leases_held 2",
        ] {
            assert!(text.contains(line), "missing {line:?} in\n{text}");
        }
    }
}
