//! The politeness rules hold across replicas (issue 17, item 2): two `feedmill run` on one
//! PostgreSQL database, sources due every second. The first replica alone meets a source
//! that answers 503 with `Retry-After`, one that answers 500 (backoff) and one that answers
//! 410; the second, started then, knows of them only from the database. Neither asks any of
//! the three again while a healthy source beside them is fetched every second: the hold a
//! replica learned is in the shared state, and the other keeps it. Needs
//! `FEEDMILL_TEST_DATABASE_URL` (see `Engine::run`).

use crate::replica_outputs::rss;
use crate::support::{Behavior, Daemon, Engine, FeedServer};

fn status(status: u16, headers: Vec<(&'static str, String)>) -> Behavior {
    Behavior::Status {
        status,
        headers,
        body: b"no".to_vec(),
    }
}

/// The claims a replica made, whatever their outcome (its `/metrics`).
fn claims_of(daemon: &Daemon) -> u64 {
    let (_, body) = crate::support::blocking_get(&daemon.url("/metrics")).expect("metrics");
    String::from_utf8_lossy(&body)
        .lines()
        .filter(|l| l.starts_with("feedmill_lease_claims_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[test]
fn retry_after_backoff_and_gone_hold_across_replicas() {
    Engine::Postgres.run(module_path!(), |engine| {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let server = runtime.block_on(FeedServer::start());
        server.put("ok.rss", "application/rss+xml", rss("ok"));
        server.behave(
            "retry.rss",
            status(503, vec![("retry-after", "3600".to_string())]),
        );
        server.behave("broken.rss", status(500, Vec::new()));
        server.behave("gone.rss", status(410, Vec::new()));
        let body: String = ["ok", "retry", "broken", "gone"]
            .iter()
            .map(|name| {
                format!(
                    "[[source]]\nname = \"{name}\"\nurl = \"{}\"\nschedule = \"* * * * * *\"\n",
                    server.url(&format!("{name}.rss"))
                )
            })
            .collect::<String>()
            + "[[feed]]\nname = \"all\"\n";
        let store = engine.store();
        let dirs = [
            tempfile::tempdir().expect("tempdir"),
            tempfile::tempdir().expect("tempdir"),
        ];
        let start = |i: usize, name: &str| {
            let section = store.section_with(&format!("replica = \"{name}\"\n"));
            Daemon::start_on(dirs[i].path(), &section, &body)
        };
        // Replica a alone first: it learns each hold from the server.
        let a = start(0, "a");
        a.wait_for("each source asked once by a", || {
            Some(["ok.rss", "retry.rss", "broken.rss", "gone.rss"]
                .iter()
                .all(|path| server.hits(path) >= 1))
        });
        // Then b, which knows of the holds only from the database.
        let b = start(1, "b");
        let ok_before = server.hits("ok.rss");
        b.wait_for("ok.rss fetched six times more", || {
            Some(server.hits("ok.rss") >= ok_before + 6)
        });
        for (path, rule) in [
            ("retry.rss", "Retry-After: 3600"),
            ("broken.rss", "the backoff after a 500 (a minute at least)"),
            ("gone.rss", "410 Gone (disabled until its config changes)"),
        ] {
            assert_eq!(
                server.hits(path),
                1,
                "{path} was asked again over six seconds of a schedule of every second by two replicas: {rule} did not hold across them"
            );
        }
        // b was taking part: it claimed due fetches (of ok, the one source due).
        let claims = claims_of(&b);
        assert!(claims > 0, "replica b made no claim: {claims}");
        drop(a);
    });
}
