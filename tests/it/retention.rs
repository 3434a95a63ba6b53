//! Retention end to end, on each store engine: entries beyond `max_items_per_source` go,
//! the newest stay, the source's `items` says so, and the feeds stop showing what went.

use crate::support::{blocking_get, on_each_engine, Daemon, Engine, FeedServer};

/// An RSS document of items `0..count`, item `i` dated `i` hours after a fixed time (so the
/// highest numbers are the newest).
fn rss(count: usize) -> String {
    let items: String = (0..count)
        .map(|i| {
            let date = chrono::DateTime::from_timestamp(1_790_000_000 + i as i64 * 3600, 0)
                .expect("a time")
                .to_rfc2822();
            format!("<item><guid>kept-{i}</guid><title>Item number {i}</title><link>http://wire.example/{i}</link><pubDate>{date}</pubDate></item>")
        })
        .collect();
    format!("<rss version=\"2.0\"><channel><title>Wire</title><link>http://wire.example/</link><description>d</description>{items}</channel></rss>")
}

fn the_newest_per_source_are_kept_and_the_rest_go(engine: Engine) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let server = runtime.block_on(FeedServer::start());
    server.put("wire.rss", "application/rss+xml", rss(5));
    let dir = tempfile::tempdir().expect("tempdir");
    let store = engine.store();
    let section = format!(
        "{}max_items_per_source = 2\nmax_age_days = 0\n",
        store.section()
    );
    let body = format!(
        "[fetch]\nschedule = \"0 0 1 1 *\"\n[[source]]\nname = \"wire\"\nurl = \"{}\"\n[[feed]]\nname = \"all\"\n",
        server.url("wire.rss")
    );
    let daemon = Daemon::start_on(dir.path(), &section, &body);
    // Retention runs at start (before this fetch) and then hourly: all five are kept until
    // the next start.
    daemon.wait_for("the first fetch", || {
        Some(daemon.try_status()?.first()?["items"] == 5)
    });
    let daemon = daemon.restart();
    daemon.wait_for("retention at start", || {
        Some(daemon.try_status()?.first()?["items"] == 2)
    });
    daemon.wait_for("the feed without what went", || {
        let (_, body) = blocking_get(&daemon.url("/feeds/all.atom"))?;
        let feed = String::from_utf8_lossy(&body).into_owned();
        let shown: Vec<bool> = (0..5)
            .map(|i| feed.contains(&format!("Item number {i}<")))
            .collect();
        Some(shown == [false, false, false, true, true])
    });
}

on_each_engine!(the_newest_per_source_are_kept_and_the_rest_go);
