//! Where requests may go: no request to a private address, on any hop (issue 14, item 1).
//!
//! An "internal" server on 127.0.0.1 holds a feed with a marker no output may ever show; a
//! "public" source on 127.0.0.2 (its own configured host and port, so fetched) tries every
//! way to make feedmill fetch it: redirects of each kind, an HTML page's feed link, and the
//! spellings of a loopback address (IPv6, decimal, a name, 0.0.0.0).

use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::support::{
    blocking_get, feedmill, free_port, Answer, Behavior, Daemon, FeedServer, Logged, Shared,
};

const MARKER: &str = "INTERNAL-ONLY-7f3a9c";
const RSS: &str = "application/rss+xml";

fn rss(title: &str, guid: &str) -> String {
    format!("<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>{title}</title><link>http://site.example/</link><description>d</description><item><guid>{guid}</guid><title>{title} story</title><link>http://site.example/{guid}</link></item></channel></rss>")
}

fn page_linking_to(href: &str) -> String {
    format!("<!DOCTYPE html><html><head><title>Home</title><link rel=\"alternate\" type=\"application/rss+xml\" href=\"{href}\"></head><body>Home</body></html>")
}

/// The internal service: a feed whose every text carries the marker.
fn internal_server(runtime: &tokio::runtime::Runtime) -> FeedServer {
    let internal = runtime.block_on(FeedServer::start());
    internal.put("secret.rss", RSS, rss(MARKER, "secret"));
    internal
}

/// A TCP port that answers every connection with bytes that are not HTTP, and counts them.
fn garbage_listener() -> (u16, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            count.fetch_add(1, Ordering::SeqCst);
            let _ = stream.write_all(b"\x00\xff SSH-2.0-OpenSSH_9.2\r\n\x1b[31mnot http\r\n");
        }
    });
    (port, accepted)
}

fn redirect(server: &FeedServer, path: &str, status: u16, location: String) {
    server.behave(path, Behavior::Redirect { status, location });
}

/// `last_error` with the port number of `port` replaced: what tells an open port from a
/// closed one, if anything does.
fn without_port(text: &str, port: u16) -> String {
    text.replace(&format!(":{port}"), ":PORT")
}

/// One run of a daemon whose public sources try every hop to the internal server at once,
/// watched once and shared by the cases below. The daemon is stopped once watched.
struct Hops {
    /// The public server's address.
    public: std::net::SocketAddr,
    /// The internal server's port, a closed one, and a listener that speaks no HTTP.
    iport: u16,
    closed: u16,
    garbage: u16,
    /// `status.json` once every source had been fetched and the public feed showed, and
    /// when that was.
    settled: Vec<serde_json::Value>,
    settled_at: chrono::DateTime<chrono::Utc>,
    /// Each page and output of the daemon, by path, as it answered then.
    pages: Vec<(&'static str, Answer)>,
    /// What the internal server was asked, and how often the non-HTTP port was connected
    /// to, when the daemon was stopped.
    internal_log: Vec<Logged>,
    garbage_hits: usize,
}

static HOPS: Shared<Hops> = Shared::new();

/// The one run, made the first time a case asks for it.
fn hops() -> &'static Hops {
    HOPS.get(|| {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let internal = internal_server(&runtime);
        let iport = internal.addr.port();
        let public = runtime.block_on(FeedServer::start_on("127.0.0.2"));
        let closed = free_port();
        let (garbage, garbage_hits) = garbage_listener();
        serve_hops(
            &public,
            &internal.url("secret.rss"),
            [iport, closed, garbage],
        );
        let mut config = String::from("[fetch]\nschedule = \"* * * * * *\"\n\n");
        for name in REFUSED.iter().chain(&["good"]) {
            config.push_str(&format!(
                "[[source]]\nname = \"{name}\"\nurl = \"{}\"\n\n",
                source_url(public.addr, name)
            ));
        }
        config.push_str("[[feed]]\nname = \"all\"\ndedup = \"none\"\n");
        let dir = tempfile::tempdir().expect("tempdir");
        let daemon = Daemon::start(dir.path(), &config);
        daemon.wait_for("every source fetched once", || {
            let reports = daemon.try_status()?;
            Some(reports.iter().all(|r| !r["last_fetch"].is_null()))
        });
        daemon.wait_for("the public feed in the output", || {
            let (_, body) = blocking_get(&daemon.url("/feeds/all.atom"))?;
            Some(String::from_utf8_lossy(&body).contains("Public story"))
        });
        let (settled, settled_at) = (daemon.status(), chrono::Utc::now());
        let pages = [
            "/feeds/all.atom",
            "/feeds/all.rss",
            "/feeds/all.json",
            "/",
            "/status.json",
            "/sources.opml",
        ]
        .into_iter()
        .map(|path| (path, blocking_get(&daemon.url(path))))
        .collect();
        Hops {
            public: public.addr,
            iport,
            closed,
            garbage,
            settled,
            settled_at,
            pages,
            internal_log: internal.log(),
            garbage_hits: garbage_hits.load(Ordering::SeqCst),
        }
    })
}

/// Serves on `public` each way to the internal feed at `secret`: redirects of each kind, a
/// page's feed link, a feed link that redirects, and the spellings of a loopback address,
/// at the internal server's port, a closed one and a non-HTTP one (`ports`, in that order);
/// and one good feed.
fn serve_hops(public: &FeedServer, secret: &str, [iport, closed, garbage]: [u16; 3]) {
    for status in [301, 302, 307, 308] {
        redirect(public, &format!("r{status}"), status, secret.to_string());
    }
    public.put("page.html", "text/html", page_linking_to(secret));
    // A feed link that looks public and redirects inside: each hop is checked.
    public.put(
        "bounce.html",
        "text/html",
        page_linking_to(&public.url("bounce")),
    );
    redirect(public, "bounce", 307, secret.to_string());
    for (name, host) in [
        ("ipv6", format!("[::1]:{iport}")),
        ("decimal", format!("2130706433:{iport}")),
        ("localhost", format!("localhost:{iport}")),
        ("zero", format!("0.0.0.0:{iport}")),
        ("closed", format!("127.0.0.1:{closed}")),
        ("garbage", format!("127.0.0.1:{garbage}")),
    ] {
        redirect(public, name, 302, format!("http://{host}/secret.rss"));
    }
    public.put("good.rss", RSS, rss("Public", "good"));
}

/// The sources [`hops`] serves that must be refused, each by its name.
const REFUSED: &[&str] = &[
    "r301",
    "r302",
    "r307",
    "r308",
    "page",
    "bounce",
    "ipv6",
    "decimal",
    "localhost",
    "zero",
    "closed",
    "garbage",
];

/// Where the source `name` of [`hops`] is configured, on the public server at `public`.
fn source_url(public: std::net::SocketAddr, name: &str) -> String {
    let path = match name {
        "page" => "page.html",
        "bounce" => "bounce.html",
        "good" => "good.rss",
        other => other,
    };
    format!("http://{public}/{path}")
}

impl Hops {
    /// A source's report in `status.json` once every source had been fetched.
    fn report(&self, name: &str) -> &serde_json::Value {
        self.settled
            .iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no source {name} in status.json"))
    }

    /// `name` was refused with an error that starts with `expected`, stayed at its URL, got
    /// nothing, and backs off.
    fn refused(&self, name: &str, expected: &str) {
        let report = self.report(name);
        assert_eq!(
            report["url"],
            source_url(self.public, name),
            "{name}: the stored URL moved: {report}"
        );
        let error = report["last_error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with(expected),
            "{name}: expected {expected:?}, got {report}"
        );
        assert!(
            !error.contains("network may be down"),
            "{name}: a refusal is no outage: {error}"
        );
        assert_eq!(report["items"], 0, "{name}: {report}");
        // A refusal counts toward backoff: the every-second schedule waits a minute.
        let next = chrono::DateTime::parse_from_rfc3339(
            report["next_fetch"].as_str().expect("next_fetch"),
        )
        .expect("date");
        assert!(
            next > self.settled_at + chrono::Duration::seconds(50),
            "{name}: not backed off: {report}"
        );
    }
}

/// The error of a redirect to the internal address `target`:`port`.
fn private(target: &str, port: u16) -> String {
    format!("redirect to a private address {target}:{port} refused")
}

#[test]
fn each_kind_of_redirect_to_an_internal_address_is_refused() {
    let hops = hops();
    for status in [301, 302, 307, 308] {
        hops.refused(&format!("r{status}"), &private("127.0.0.1", hops.iport));
    }
}

#[test]
fn a_feed_link_to_an_internal_address_is_refused() {
    let hops = hops();
    hops.refused(
        "page",
        &format!(
            "feed link of the HTML page to a private address 127.0.0.1:{} refused",
            hops.iport
        ),
    );
}

/// A feed link that looks public and redirects inside: each hop is checked.
#[test]
fn a_feed_link_that_redirects_inside_is_refused_at_the_redirect() {
    let hops = hops();
    hops.refused(
        "bounce",
        &format!(
            "not a feed: HTML page linking to http://{}/bounce, which failed: {}",
            hops.public,
            private("127.0.0.1", hops.iport)
        ),
    );
}

#[test]
fn a_redirect_to_ipv6_loopback_is_refused() {
    let hops = hops();
    hops.refused("ipv6", &private("[::1]", hops.iport));
}

#[test]
fn a_redirect_to_loopback_as_a_decimal_number_is_refused() {
    let hops = hops();
    hops.refused("decimal", &private("127.0.0.1", hops.iport));
}

#[test]
fn a_redirect_to_0_0_0_0_is_refused() {
    let hops = hops();
    hops.refused("zero", &private("0.0.0.0", hops.iport));
}

#[test]
fn a_redirect_to_a_local_name_is_refused_without_saying_where_it_points() {
    let hops = hops();
    hops.refused(
        "localhost",
        &format!(
            "redirect to localhost:{} refused: the name has no public address",
            hops.iport
        ),
    );
    assert!(
        hops.report("localhost")["last_error"]
            .as_str()
            .is_some_and(|e| !e.contains("127.0.0.1") && !e.contains("::1")),
        "a refused name never says where it points inside"
    );
}

#[test]
fn a_redirect_to_a_closed_or_a_non_http_port_is_refused_without_connecting() {
    let hops = hops();
    hops.refused("closed", &private("127.0.0.1", hops.closed));
    hops.refused("garbage", &private("127.0.0.1", hops.garbage));
    assert_eq!(hops.garbage_hits, 0, "the non-HTTP port was connected to");
}

/// No port scanner: an open HTTP port, a closed one and a non-HTTP listener look the same.
#[test]
fn an_open_a_closed_and_a_non_http_port_look_the_same() {
    let hops = hops();
    let seen = |name: &str, port: u16| {
        let report = hops.report(name);
        (
            without_port(report["last_error"].as_str().unwrap_or_default(), port),
            report["last_status"].clone(),
        )
    };
    let open = seen("r302", hops.iport);
    assert_eq!(open, seen("closed", hops.closed));
    assert_eq!(open, seen("garbage", hops.garbage));
}

#[test]
fn the_internal_server_is_never_asked() {
    let hops = hops();
    assert!(
        hops.internal_log.is_empty(),
        "the internal server was asked: {:?}",
        hops.internal_log
    );
}

#[test]
fn no_page_or_output_shows_the_internal_feed() {
    for (path, answer) in &hops().pages {
        let (status, body) = answer.as_ref().expect("answers");
        assert_eq!(*status, 200, "{path}");
        let text = String::from_utf8_lossy(body);
        assert!(!text.contains(MARKER), "{path} shows the internal feed");
        assert!(
            !text.contains("secret.rss"),
            "{path} shows the internal URL"
        );
    }
}

/// A config for `feedmill fetch` in `dir`.
fn write_config(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("feedmill.toml");
    std::fs::write(
        &path,
        format!("[store]\npath = \"store\"\n\n{body}\n[[feed]]\nname = \"all\"\n"),
    )
    .expect("write config");
    path
}

/// Runs `feedmill fetch`; returns its stdout and stderr.
fn fetch(config: &Path) -> (String, String) {
    let out = feedmill()
        .args(["fetch", "-c"])
        .arg(config)
        .output()
        .expect("runs");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `feedmill sources --json`: every source's report.
fn reports(config: &Path) -> Vec<serde_json::Value> {
    let out = feedmill()
        .args(["sources", "--json", "-c"])
        .arg(config)
        .output()
        .expect("runs");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|err| {
        panic!(
            "sources --json: {err}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `feedmill sources --json`: the report of source `name`.
fn report(config: &Path, name: &str) -> serde_json::Value {
    find_report(&reports(config), name)
}

/// The report of source `name` among `reports`.
fn find_report(reports: &[serde_json::Value], name: &str) -> serde_json::Value {
    reports
        .iter()
        .find(|r| r["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no source {name}"))
}

/// A server the operator lists by a private address (all of its port is theirs): a 302 to a
/// page whose feed link leads to the feed, and a 301/308 chain to a moved feed. Returns the
/// server (on `runtime`), and a config of the sources `temp` and `moved` in `dir`.
fn own_host_sources(runtime: &tokio::runtime::Runtime, dir: &Path) -> (FeedServer, PathBuf) {
    let own = runtime.block_on(FeedServer::start());
    redirect(&own, "temp", 302, "/home.html".into());
    own.put("home.html", "text/html", page_linking_to("/feed.rss"));
    own.put("feed.rss", RSS, rss("Discovered", "d1"));
    redirect(&own, "old", 301, "/mid".into());
    redirect(&own, "mid", 308, own.url("new.rss"));
    own.put("new.rss", RSS, rss("Moved", "m1"));
    let config = write_config(
        dir,
        &format!(
            "[[source]]\nname = \"temp\"\nurl = \"{}\"\n\n[[source]]\nname = \"moved\"\nurl = \"{}\"\n",
            own.url("temp"),
            own.url("old")
        ),
    );
    (own, config)
}

#[test]
fn redirects_and_discovery_within_the_sources_own_host_and_port_are_followed() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (own, config) = own_host_sources(&runtime, dir.path());
    let (stdout, stderr) = fetch(&config);
    assert!(
        stdout.contains("temp") && !stdout.contains("FAILED"),
        "{stdout}\n{stderr}"
    );
    // A 302 and a feed link do not move the source: it is still asked at its own URL.
    let temp = report(&config, "temp");
    assert_eq!(temp["url"], own.url("temp"), "{temp}");
    assert_eq!(temp["items"], 1, "{temp}");
    assert!(
        !stderr.contains(&format!("to={}", own.url("feed.rss")))
            && stderr.matches("moved permanently").count() == 1,
        "only the 301/308 chain is a move:\n{stderr}"
    );
    // A 301/308 chain within the same host and port moves it.
    let moved = report(&config, "moved");
    assert_eq!(moved["url"], own.url("new.rss"), "{moved}");
}

/// The second time: the page is asked again, with its own validators, and the feed with the
/// feed's; never the feed's ETag to the page. The moved source is asked at its new URL.
#[test]
fn a_page_and_its_feed_are_each_asked_again_with_their_own_validators() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let (own, config) = own_host_sources(&runtime, dir.path());
    let (stdout, stderr) = fetch(&config);
    assert!(!stdout.contains("FAILED"), "{stdout}\n{stderr}");
    let (stdout, stderr) = fetch(&config);
    assert!(!stdout.contains("FAILED"), "{stdout}\n{stderr}");
    assert!(!stderr.contains("moved permanently"), "{stderr}");
    let page_etag = own.served("home.html").etag;
    let feed_etag = own.served("feed.rss").etag;
    let log = own.log();
    let asked = |path: &str| -> Vec<Option<String>> {
        log.iter()
            .filter(|l| l.path == path)
            .map(|l| l.if_none_match.clone())
            .collect()
    };
    assert_eq!(asked("home.html"), [None, Some(page_etag.clone())]);
    assert_eq!(asked("temp"), [None, Some(page_etag)]);
    assert_eq!(asked("feed.rss"), [None, Some(feed_etag)]);
    let temp = report(&config, "temp");
    assert_eq!(temp["url"], own.url("temp"), "{temp}");
    assert_eq!(temp["last_error"], serde_json::Value::Null, "{temp}");
    assert_eq!(
        own.hits("old"),
        1,
        "the moved source was asked at its old URL"
    );
}

#[test]
fn allow_private_lets_every_hop_through_but_a_feed_link_still_never_moves_the_source() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let internal = internal_server(&runtime);
    let public = runtime.block_on(FeedServer::start_on("127.0.0.2"));
    redirect(&public, "r302", 302, internal.url("secret.rss"));
    public.put(
        "page.html",
        "text/html",
        page_linking_to(&internal.url("secret.rss")),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "[fetch]\nallow_private = true\n\n[[source]]\nname = \"r302\"\nurl = \"{}\"\n\n[[source]]\nname = \"page\"\nurl = \"{}\"\n",
            public.url("r302"),
            public.url("page.html")
        ),
    );
    let (stdout, stderr) = fetch(&config);
    assert!(!stdout.contains("FAILED"), "{stdout}\n{stderr}");
    assert_eq!(internal.hits("secret.rss"), 2);
    for (name, url) in [
        ("r302", public.url("r302")),
        ("page", public.url("page.html")),
    ] {
        let report = report(&config, name);
        assert_eq!(report["items"], 1, "{report}");
        assert_eq!(report["url"], url, "{report}");
    }
}

#[test]
fn a_stored_url_no_longer_allowed_is_refused_and_the_source_starts_again_from_its_own() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let internal = internal_server(&runtime);
    let iport = internal.addr.port();
    let public = runtime.block_on(FeedServer::start_on("127.0.0.2"));
    redirect(&public, "moving", 301, internal.url("secret.rss"));
    let dir = tempfile::tempdir().expect("tempdir");
    let sources = format!(
        "[[source]]\nname = \"moving\"\nurl = \"{}\"\n",
        public.url("moving")
    );
    // Allowed once: the permanent redirect moves the source to the internal address.
    let config = write_config(
        dir.path(),
        &format!("[fetch]\nallow_private = true\n\n{sources}"),
    );
    let (stdout, stderr) = fetch(&config);
    assert!(!stdout.contains("FAILED"), "{stdout}\n{stderr}");
    assert_eq!(report(&config, "moving")["url"], internal.url("secret.rss"));
    let hits = internal.log().len();

    // Then the rule is back: the stored URL is not fetched, and says so.
    let config = write_config(dir.path(), &sources);
    let (stdout, _) = fetch(&config);
    assert_eq!(
        internal.log().len(),
        hits,
        "the stored internal URL was fetched"
    );
    let moving = report(&config, "moving");
    let error = moving["last_error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with(&format!(
            "stored URL at a private address 127.0.0.1:{iport} refused"
        )) && error.contains(&format!(
            "the next fetch starts again from the configured URL {}",
            public.url("moving")
        )),
        "{moving}"
    );
    assert!(
        stdout.contains("FAILED  stored URL at a private address"),
        "{stdout}"
    );
    assert_eq!(moving["url"], public.url("moving"), "{moving}");
    // And from there the redirect is refused like any other.
    let (stdout, _) = fetch(&config);
    assert!(
        stdout.contains(&format!(
            "FAILED  redirect to a private address 127.0.0.1:{iport} refused"
        )),
        "{stdout}"
    );
    assert_eq!(internal.log().len(), hits, "the internal server was asked");
}

/// What `feedmill sources` tells of the refused source `{kind}-{name}`, which was sent to
/// `host`: its error, with the host and the name written `HOST` and `NAME`, and its status.
/// It got nothing, and says nowhere where the name points inside (`output`: what the fetch
/// printed, for the failure message).
fn refusal_seen(
    config: &Path,
    kind: &str,
    (name, host): (&str, &str),
    output: &str,
) -> (String, serde_json::Value) {
    let report = report(config, &format!("{kind}-{name}"));
    let error = report["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        !error.contains("127.0.0.1") && !error.contains("::1"),
        "{kind}-{name} says where {host} points: {report}\n{output}"
    );
    assert_eq!(report["items"], 0, "{report}");
    (
        error.replace(host, "HOST").replace(name, "NAME"),
        report["last_status"].clone(),
    )
}

/// A publisher who sends feedmill to a name learns nothing of the internal network from
/// `status.json`: not the addresses a name maps to inside, nor whether it exists at all (a
/// name that resolves to loopback and one that resolves to nothing leave the same error).
#[test]
fn a_refused_name_tells_neither_where_it_points_inside_nor_whether_it_exists() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let internal = internal_server(&runtime);
    let iport = internal.addr.port();
    let public = runtime.block_on(FeedServer::start_on("127.0.0.2"));
    // localhost resolves to loopback here; .invalid never resolves anywhere (RFC 6761).
    let hosts = [("inside", "localhost"), ("nowhere", "nothing.invalid")];
    let mut sources = String::new();
    for (name, host) in hosts {
        let target = format!("http://{host}:{iport}/secret.rss");
        redirect(&public, name, 302, target.clone());
        let page = format!("{name}.html");
        public.put(&page, "text/html", page_linking_to(&target));
        sources.push_str(&format!(
            "[[source]]\nname = \"r-{name}\"\nurl = \"{}\"\n\n[[source]]\nname = \"p-{name}\"\nurl = \"{}\"\n\n",
            public.url(name),
            public.url(&page)
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &sources);
    let (stdout, stderr) = fetch(&config);
    assert!(internal.log().is_empty(), "the internal server was asked");

    let output = format!("{stdout}\n{stderr}");
    let seen = |kind: &str, host: (&str, &str)| refusal_seen(&config, kind, host, &output);
    let redirect = seen("r", hosts[0]);
    assert!(
        redirect.0.starts_with(&format!(
            "redirect to HOST:{iport} refused: the name has no public address"
        )),
        "{redirect:?}"
    );
    assert_eq!(
        redirect,
        seen("r", hosts[1]),
        "an internal name is told from a missing one"
    );
    let link = seen("p", hosts[0]);
    assert!(
        link.0.starts_with(&format!(
            "feed link of the HTML page to HOST:{iport} refused: the name has no public address"
        )),
        "{link:?}"
    );
    assert_eq!(
        link,
        seen("p", hosts[1]),
        "an internal name is told from a missing one"
    );
}

/// Each `Location` that spells the internal server on port `p` (or a scheme never
/// followed), with what the error it leaves starts with.
fn spellings_of_loopback(p: u16) -> Vec<(String, String)> {
    let refused = |target: &str| format!("redirect to a private address {target}:{p} refused");
    let name =
        |host: &str| format!("redirect to {host}:{p} refused: the name has no public address");
    let v4 = refused("127.0.0.1");
    let mapped = refused("[::ffff:7f00:1]");
    let unusable = "HTTP 302 Found without a usable Location header".to_string();
    vec![
        (format!("http://127.1:{p}/secret.rss"), v4.clone()),
        (format!("http://0x7f000001:{p}/secret.rss"), v4.clone()),
        (format!("http://0177.0.0.1:{p}/secret.rss"), v4.clone()),
        (format!("http://127.000.000.001:{p}/secret.rss"), v4.clone()),
        (format!("http://127.0.0.1.:{p}/secret.rss"), v4.clone()),
        (format!("http://127.0.0.1%2e:{p}/secret.rss"), v4.clone()),
        (format!("http://%31%32%37.0.0.1:{p}/secret.rss"), v4.clone()),
        (format!("http://user:pw@127.0.0.1:{p}/secret.rss"), v4.clone()),
        (format!("//127.0.0.1:{p}/secret.rss"), v4.clone()),
        (format!("\\\\127.0.0.1:{p}\\secret.rss"), v4.clone()),
        (format!("http:\\\\127.0.0.1:{p}/secret.rss"), v4.clone()),
        (format!("HTTP://127.0.0.1:{p}/secret.rss"), v4.clone()),
        (format!(" \thttp://127.0.0.1:{p}/secret.rss\t "), v4.clone()),
        (format!("http://127.0.0.1\t:{p}/secret.rss"), v4.clone()),
        (format!("http://[::ffff:127.0.0.1]:{p}/secret.rss"), mapped.clone()),
        (format!("http://[::ffff:7f00:1]:{p}/secret.rss"), mapped.clone()),
        (format!("http://[0:0:0:0:0:ffff:127.0.0.1]:{p}/secret.rss"), mapped),
        (format!("http://[::127.0.0.1]:{p}/secret.rss"), refused("[::7f00:1]")),
        (format!("http://[::]:{p}/secret.rss"), refused("[::]")),
        (format!("http://0:{p}/secret.rss"), refused("0.0.0.0")),
        (format!("http://LOCALHOST:{p}/secret.rss"), name("localhost")),
        (format!("http://localhost.:{p}/secret.rss"), name("localhost.")),
        // Zone ids are no valid URL; non-ASCII is no valid header value to read.
        (format!("http://[fe80::1%25lo]:{p}/secret.rss"), unusable.clone()),
        (format!("http://１２７.０.０.１:{p}/secret.rss"), unusable.clone()),
        (format!("http://ⓛⓞⓒⓐⓛⓗⓞⓢⓣ:{p}/secret.rss"), unusable),
        (
            "file:///etc/passwd".into(),
            "redirect to file:///etc/passwd refused: only http and https are followed".into(),
        ),
        (
            format!("ftp://127.0.0.1:{p}/secret.rss"),
            format!("redirect to ftp://127.0.0.1:{p}/secret.rss refused: only http and https are followed"),
        ),
        (
            format!("gopher://127.0.0.1:{p}/_GET%20/secret.rss"),
            format!("redirect to gopher://127.0.0.1:{p}/_GET%20/secret.rss refused: only http and https are followed"),
        ),
    ]
}

/// Every way a `Location` can spell loopback (the url crate's readings of IPv4, mapped and
/// embedded IPv6, trailing dots, percent-encoding, IDNA, backslashes, protocol-relative,
/// userinfo, whitespace, case) and every scheme but http(s): none reaches the internal
/// server, and each is refused (or not followed at all) before anything is sent.
#[test]
fn no_spelling_of_an_internal_location_is_followed() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let internal = internal_server(&runtime);
    let p = internal.addr.port();
    let public = runtime.block_on(FeedServer::start_on("127.0.0.2"));
    let cases = spellings_of_loopback(p);
    let mut sources = String::new();
    for (i, (location, _)) in cases.iter().enumerate() {
        redirect(&public, &format!("s{i}"), 302, location.clone());
        sources.push_str(&format!(
            "[[source]]\nname = \"s{i}\"\nurl = \"{}\"\n\n",
            public.url(&format!("s{i}"))
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(dir.path(), &sources);
    let (stdout, stderr) = fetch(&config);
    assert!(
        internal.log().is_empty(),
        "the internal server was asked: {:?}\n{stdout}\n{stderr}",
        internal.log()
    );
    // One `feedmill sources` for all of them: it opens the store each time.
    let reports = reports(&config);
    for (i, (location, expected)) in cases.iter().enumerate() {
        let report = find_report(&reports, &format!("s{i}"));
        let error = report["last_error"].as_str().unwrap_or_default();
        assert!(
            error.starts_with(expected.as_str()),
            "{location:?}: expected {expected:?}, got {report}"
        );
        assert_eq!(report["url"], public.url(&format!("s{i}")), "{report}");
    }
}

/// A publisher's URL is as long as they like: a feed link of megabytes in a page, a
/// `Location` of hundreds of kilobytes. None is sent, stored as the source's URL or copied
/// into `status.json`: each hop's URL is bounded, and what an error quotes of it too.
#[test]
fn a_huge_url_is_neither_sent_nor_stored_nor_shown() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let public = runtime.block_on(FeedServer::start_on("127.0.0.2"));
    let long = |prefix: String, len: usize| format!("{prefix}{}", "a".repeat(len));
    // A 2 MB feed link, to the source's own host and port.
    public.put(
        "page.html",
        "text/html",
        page_linking_to(&long(public.url("feed.rss?"), 2 << 20)),
    );
    // A 300 KB Location (hyper reads up to 400 KB of headers), to a scheme never followed;
    // and a 60 KB one (short enough for an HTTP request) to the source's own host and port,
    // permanently, where a feed answers whatever the query.
    redirect(
        &public,
        "ftp",
        302,
        long("ftp://x.example/".into(), 300 << 10),
    );
    redirect(
        &public,
        "moved",
        301,
        long(public.url("feed.rss?"), 60 << 10),
    );
    public.put("feed.rss", RSS, rss("Feed", "f1"));
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sources = String::new();
    for (name, path) in [("page", "page.html"), ("ftp", "ftp"), ("moved", "moved")] {
        sources.push_str(&format!(
            "[[source]]\nname = \"{name}\"\nurl = \"{}\"\n\n",
            public.url(path)
        ));
    }
    let config = write_config(dir.path(), &sources);
    let (stdout, stderr) = fetch(&config);
    assert!(
        stdout.len() + stderr.len() < 64 << 10,
        "{} bytes of output",
        stdout.len() + stderr.len()
    );
    assert_eq!(public.hits("feed.rss"), 0, "a huge URL was sent");
    for name in ["page", "ftp", "moved"] {
        let report = report(&config, name);
        let text = report.to_string();
        assert!(
            text.len() < 16 << 10,
            "{name}: {} bytes of status: {}",
            text.len(),
            &text[..300]
        );
        assert!(
            report["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("URL of") && e.contains("bytes refused")),
            "{name}: {}",
            &text[..text.len().min(600)]
        );
    }
    assert_eq!(report(&config, "moved")["url"], public.url("moved"));
}

/// A proxy from the environment would connect to an address no check has seen: feedmill
/// never uses one. The "proxy" here is the internal server; no request may reach it.
#[test]
fn proxy_variables_in_the_environment_are_never_used() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let internal = internal_server(&runtime);
    let public = runtime.block_on(FeedServer::start_on("127.0.0.2"));
    public.put("good.rss", RSS, rss("Public", "good"));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "[[source]]\nname = \"good\"\nurl = \"{}\"\n",
            public.url("good.rss")
        ),
    );
    let proxy = internal.url("");
    let mut command = feedmill();
    for variable in [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        command.env(variable, &proxy);
    }
    let out = command
        .env_remove("NO_PROXY")
        .env_remove("no_proxy")
        .args(["fetch", "-c"])
        .arg(&config)
        .output()
        .expect("runs");
    assert!(
        internal.log().is_empty(),
        "a request went through the proxy: {:?}\n{}",
        internal.log(),
        String::from_utf8_lossy(&out.stderr)
    );
    let good = report(&config, "good");
    assert_eq!(good["items"], 1, "{good}");
}

/// A source that moves step by step (each step a 301 the next fetch follows) never widens
/// what it may reach: every hop is held to the configured host and port, not to where the
/// source last moved, so the step onto the internal address is refused and never stored.
#[test]
fn a_source_moved_step_by_step_never_steps_onto_an_internal_address() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let internal = internal_server(&runtime);
    let iport = internal.addr.port();
    let public = runtime.block_on(FeedServer::start_on("127.0.0.2"));
    redirect(&public, "start", 301, public.url("step1"));
    public.put("step1", RSS, rss("Step one", "s1"));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "[[source]]\nname = \"mover\"\nurl = \"{}\"\n",
            public.url("start")
        ),
    );
    fetch(&config);
    assert_eq!(report(&config, "mover")["url"], public.url("step1"));

    // The next step leads inside: refused, by the configured URL's rule.
    redirect(&public, "step1", 308, internal.url("secret.rss"));
    let (stdout, _) = fetch(&config);
    assert!(
        stdout.contains(&format!(
            "FAILED  redirect to a private address 127.0.0.1:{iport} refused"
        )),
        "{stdout}"
    );
    let mover = report(&config, "mover");
    assert_eq!(mover["url"], public.url("step1"), "{mover}");
    assert!(internal.log().is_empty(), "the internal server was asked");
}

/// A stored URL longer than the bound (left by a build that did not bound URLs) is never
/// sent: the source goes back to its configured URL, as when a stored URL is refused.
#[test]
fn a_huge_stored_url_sends_the_source_back_to_its_configured_url() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let public = runtime.block_on(FeedServer::start_on("127.0.0.2"));
    public.put("feed.rss", RSS, rss("Feed", "f1"));
    let dir = tempfile::tempdir().expect("tempdir");
    let config = write_config(
        dir.path(),
        &format!(
            "[[source]]\nname = \"long\"\nurl = \"{}\"\n",
            public.url("feed.rss")
        ),
    );
    fetch(&config);
    let huge = format!("{}?{}", public.url("feed.rss"), "a".repeat(60 << 10));
    {
        let store =
            feedmill::store::sled::SledStore::open(&dir.path().join("store")).expect("store");
        let mut state = store.source_state("long").expect("read").expect("a state");
        state.url = huge.clone();
        state.validators = Default::default();
        store.save_state("long", &state).expect("save");
        store.flush_blocking().expect("flush");
    }
    assert_eq!(report(&config, "long")["url"], huge.as_str());
    let hits = public.hits("feed.rss");
    let (stdout, _) = fetch(&config);
    assert_eq!(public.hits("feed.rss"), hits, "the huge URL was sent");
    let long = report(&config, "long");
    let error = long["last_error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("stored URL at a URL of ")
            && error.contains(&format!(
                "; the next fetch starts again from the configured URL {}",
                public.url("feed.rss")
            )),
        "{stdout}\n{error}"
    );
    assert_eq!(long["url"], public.url("feed.rss"), "{error}");
    // And from there it is fetched again.
    let (stdout, _) = fetch(&config);
    assert!(!stdout.contains("FAILED"), "{stdout}");
}

/// A source configured by a name local by construction (`localhost`, RFC 6761) is the
/// operator's, like an address: it is fetched, with its redirects and feed links within the
/// same host and port. (A public-looking configured name that resolves inside is refused; no
/// such name resolves offline without editing /etc/hosts, so the unit tests of src/fetch.rs
/// cover that through the resolver.) A redirect from the local name to another port is still
/// refused.
#[test]
fn a_source_configured_by_a_local_name_is_still_fetched() {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let internal = internal_server(&runtime);
    let iport = internal.addr.port();
    let own = runtime.block_on(FeedServer::start());
    let local = |path: &str| format!("http://localhost:{}/{path}", own.addr.port());
    own.put("feed.rss", RSS, rss("Local", "l1"));
    redirect(&own, "temp", 302, "/home.html".into());
    own.put("home.html", "text/html", page_linking_to("/feed.rss"));
    redirect(
        &own,
        "away",
        302,
        format!("http://localhost:{iport}/secret.rss"),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut sources = String::new();
    for (name, path) in [("plain", "feed.rss"), ("temp", "temp"), ("away", "away")] {
        sources.push_str(&format!(
            "[[source]]\nname = \"{name}\"\nurl = \"{}\"\n\n",
            local(path)
        ));
    }
    let config = write_config(dir.path(), &sources);
    let (stdout, stderr) = fetch(&config);
    for name in ["plain", "temp"] {
        let report = report(&config, name);
        assert_eq!(report["items"], 1, "{report}\n{stdout}\n{stderr}");
        assert_eq!(report["last_error"], serde_json::Value::Null, "{report}");
    }
    assert_eq!(own.hits("feed.rss"), 2, "{:?}", own.log());
    let away = report(&config, "away");
    assert!(
        away["last_error"]
            .as_str()
            .is_some_and(|e| e.starts_with(&format!(
                "redirect to localhost:{iport} refused: the name has no public address"
            ))),
        "{away}"
    );
    assert!(internal.log().is_empty(), "the internal server was asked");
}
