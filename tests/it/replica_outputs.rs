//! What a reader and an operator see of the outputs that replicas must agree on (issue 17),
//! on the default engine: feed documents say how long they may be cached (until their
//! sources' next fetch), `/status.json` and `feedmill sources` name the replica that
//! fetched, and `/metrics` has the store engine's and the claims' families (zeros on sled).

use chrono::{DateTime, Utc};

use crate::support::{blocking_get, blocking_get_with, feedmill, Daemon};

/// A one-item RSS document of outlet `name` (also for tests/it/replica_holds.rs).
pub(crate) fn rss(name: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>{name}</title>\
         <link>https://{name}.example/</link><description>d</description>\
         <item><title>{name} news</title><link>https://{name}.example/1</link>\
         <guid>{name}-1</guid></item></channel></rss>"
    )
}

/// Sources `hourly` and `daily` on their own schedules; feed `all` of both, `daily_only`.
const CONFIG: &str =
    "[[source]]\nname = \"hourly\"\nurl = \"file:hourly.rss\"\nschedule = \"0 * * * *\"\n\
     [[source]]\nname = \"daily\"\nurl = \"file:daily.rss\"\nschedule = \"0 0 * * *\"\n\
     [[feed]]\nname = \"all\"\n\
     [[feed]]\nname = \"daily_only\"\nsources = [\"daily\"]\n";

/// The `max-age` of a `Cache-Control` value.
fn max_age(cache_control: &str) -> i64 {
    cache_control
        .split(',')
        .find_map(|part| part.trim().strip_prefix("max-age=")?.parse().ok())
        .unwrap_or_else(|| panic!("no max-age in {cache_control:?}"))
}

/// `GET path`: its `Cache-Control` and body, and when it was answered.
fn get(daemon: &Daemon, path: &str) -> (String, String, DateTime<Utc>) {
    let (status, headers, body) = blocking_get_with(&daemon.url(path), &[]).expect("answers");
    assert_eq!(status, 200, "{path}");
    let cache_control = headers.get("cache-control").cloned().unwrap_or_default();
    (
        cache_control,
        String::from_utf8_lossy(&body).into_owned(),
        Utc::now(),
    )
}

fn next_fetch(daemon: &Daemon, source: &str) -> DateTime<Utc> {
    let report = daemon.source(source);
    report["next_fetch"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| panic!("no next_fetch in {report}"))
}

#[test]
fn feeds_are_cacheable_until_their_sources_next_fetch_and_status_names_the_fetcher() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["hourly", "daily"] {
        std::fs::write(dir.path().join(format!("{name}.rss")), rss(name)).expect("write");
    }
    let mut daemon = Daemon::start(dir.path(), CONFIG);
    daemon.wait_for("both sources in the feed", || {
        let (_, body) = blocking_get(&daemon.url("/feeds/all.atom"))?;
        let body = String::from_utf8_lossy(&body);
        Some(body.contains("hourly news") && body.contains("daily news"))
    });
    let (hourly, daily) = (next_fetch(&daemon, "hourly"), next_fetch(&daemon, "daily"));
    let expected =
        |next: DateTime<Utc>, at: DateTime<Utc>| ((next - at).num_seconds() + 10).clamp(5, 86_400);
    for (path, next) in [
        ("/feeds/all.atom", hourly.min(daily)),
        ("/feeds/all.rss", hourly.min(daily)),
        ("/feeds/all.json", hourly.min(daily)),
        ("/feeds/all", hourly.min(daily)),
        ("/feeds/daily_only.atom", daily),
        ("/feeds/daily_only", daily),
    ] {
        let (cache_control, _, at) = get(&daemon, path);
        assert!(
            cache_control.starts_with("public, "),
            "{path}: {cache_control}"
        );
        let (got, want) = (max_age(&cache_control), expected(next, at));
        // The answer is computed at the request, a moment before `at`.
        assert!(
            (want..=want + 3).contains(&got),
            "{path}: max-age {got}, the next fetch {next} says {want}"
        );
    }
    // A 304 asks the same of caches.
    let (_, headers, _) = blocking_get_with(&daemon.url("/feeds/all.atom"), &[]).expect("answers");
    let etag = headers.get("etag").expect("an etag").clone();
    let (status, revalidated, _) =
        blocking_get_with(&daemon.url("/feeds/all.atom"), &[("if-none-match", &etag)])
            .expect("answers");
    assert_eq!(status, 304);
    let cache_control = revalidated.get("cache-control").expect("cache-control");
    assert!(max_age(cache_control) > 60, "{cache_control}");
    // The other routes keep theirs.
    assert_eq!(get(&daemon, "/").0, "public, max-age=60");
    assert_eq!(get(&daemon, "/sources.opml").0, "public, max-age=300");
    assert_eq!(get(&daemon, "/status.json").0, "no-cache");

    // Every report names the replica that fetched it, or null.
    for report in daemon.status() {
        let fetched_by = report.get("fetched_by").unwrap_or_else(|| {
            panic!("no fetched_by in {report}");
        });
        assert!(
            fetched_by.is_null() || fetched_by.as_str().is_some_and(|s| !s.is_empty()),
            "{report}"
        );
    }

    // The store engine's and the claims' families, at zero on sled's single process.
    let (_, metrics, _) = get(&daemon, "/metrics");
    for line in [
        "# TYPE feedmill_store_pool_connections gauge",
        "feedmill_store_pool_connections 0",
        "feedmill_store_pool_idle_connections 0",
        "feedmill_store_pool_max_connections 0",
        "feedmill_leases_held 0",
        "# TYPE feedmill_lease_claims counter",
        "feedmill_lease_claims_total{outcome=\"fetched_elsewhere\"} 0",
        "feedmill_lease_claims_total{outcome=\"busy\"} 0",
        "feedmill_lease_claims_total{outcome=\"taken_over\"} 0",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    // One process alone wins every claim it makes, if it makes any.
    assert!(
        metrics.contains("feedmill_lease_claims_total{outcome=\"won\"} "),
        "{metrics}"
    );

    // `feedmill sources` says the same, as JSON and in its table.
    assert!(daemon.stop().success());
    let out = feedmill()
        .args(["sources", "--json", "-c"])
        .arg(&daemon.config)
        .output()
        .expect("runs");
    assert!(out.status.success(), "{out:?}");
    let reports: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(reports.len(), 2);
    assert!(
        reports.iter().all(|r| r.get("fetched_by").is_some()),
        "{reports:?}"
    );
    let out = feedmill()
        .args(["sources", "-c"])
        .arg(&daemon.config)
        .output()
        .expect("runs");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table
            .lines()
            .next()
            .is_some_and(|head| head.contains("FETCHED BY")),
        "{table}"
    );
}
