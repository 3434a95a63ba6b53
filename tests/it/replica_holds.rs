//! The politeness rules hold across replicas (issue 17, item 2): two `feedmill run` on one
//! PostgreSQL database, sources due every second. A source that answered 503 with
//! `Retry-After`, one that answered 500 (backoff) and one that answered 410 are each asked
//! once, by one of the two, while a healthy source beside them is fetched every second: the
//! hold a replica learned is in the shared state, and the other keeps it. Needs
//! `FEEDMILL_TEST_DATABASE_URL` (see `Engine::run`).

use crate::support::{Behavior, Daemon, Engine, FeedServer};

fn rss(name: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>{name}</title>\
         <link>https://{name}.example/</link><description>d</description>\
         <item><title>{name} news</title><link>https://{name}.example/1</link>\
         <guid>{name}-1</guid></item></channel></rss>"
    )
}

fn status(status: u16, headers: Vec<(&'static str, String)>) -> Behavior {
    Behavior::Status {
        status,
        headers,
        body: b"no".to_vec(),
    }
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
        let replicas: Vec<Daemon> = dirs
            .iter()
            .zip(["a", "b"])
            .map(|(dir, name)| {
                let section = store.section_with(&format!("replica = \"{name}\"\n"));
                Daemon::start_on(dir.path(), &section, &body)
            })
            .collect();

        // The healthy source, due every second, fetched again and again (by either).
        replicas[0].wait_for("ok.rss fetched six times", || {
            Some(server.hits("ok.rss") >= 6)
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
        // Both replicas fetch the healthy source, by turns: the holds are not one replica's
        // alone.
        let mut fetched_by = std::collections::HashSet::new();
        replicas[0].wait_for("ok.rss fetched by both replicas", || {
            let by = replicas[0].try_status()?.into_iter().find(|r| r["name"] == "ok")?;
            fetched_by.insert(by["fetched_by"].as_str()?.to_string());
            Some(fetched_by.len() == 2)
        });
        for path in ["retry.rss", "broken.rss", "gone.rss"] {
            assert_eq!(server.hits(path), 1, "{path} asked again");
        }
    });
}
