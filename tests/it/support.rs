//! Test support: a real HTTP server that serves feed files (and records what clients sent),
//! and the real `feedmill` binary run as a child process.

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// One document the feed server serves.
#[derive(Clone)]
pub struct Served {
    pub body: Vec<u8>,
    pub content_type: String,
    pub etag: String,
    pub last_modified: String,
}

/// What a client asked for and what it got.
#[derive(Clone, Debug)]
pub struct Logged {
    pub path: String,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    pub status: u16,
}

/// How the server answers one path, on purpose well or badly.
#[derive(Clone)]
pub enum Behavior {
    /// A document with validators; 304 to a matching `If-None-Match`.
    Static(Served),
    /// Any status, with extra headers and a body.
    Status {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
    },
    /// A redirect to `location` (absolute or relative).
    Redirect { status: u16, location: String },
    /// A valid start, then one byte per `every`, forever.
    Trickle { every: Duration },
    /// A body that never ends.
    Endless,
    /// A body sent as it is with `Content-Encoding: gzip`.
    Gzipped { body: Vec<u8>, content_type: String },
}

#[derive(Default)]
struct Inner {
    files: HashMap<String, Behavior>,
    log: Vec<Logged>,
    version: u64,
    gate: Option<Arc<Gate>>,
}

/// Holds every request until the test lets it through, and counts the requests held at
/// once: how a test sees how many fetches a client has in flight.
pub struct Gate {
    open: tokio::sync::Semaphore,
    held: std::sync::atomic::AtomicUsize,
    most_held: std::sync::atomic::AtomicUsize,
    passed: std::sync::atomic::AtomicUsize,
}

impl Gate {
    async fn pass(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        let now = self.held.fetch_add(1, SeqCst) + 1;
        self.most_held.fetch_max(now, SeqCst);
        if let Ok(permit) = self.open.acquire().await {
            permit.forget();
        }
        self.held.fetch_sub(1, SeqCst);
        self.passed.fetch_add(1, SeqCst);
    }

    /// Requests waiting now.
    pub fn held(&self) -> usize {
        self.held.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The most requests that ever waited at once.
    pub fn most_held(&self) -> usize {
        self.most_held.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Requests let through so far.
    pub fn passed(&self) -> usize {
        self.passed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Lets one waiting (or the next) request through.
    pub fn let_one_through(&self) {
        self.open.add_permits(1);
    }
}

/// A local HTTP server that serves feed documents with ETag/Last-Modified and answers 304
/// to matching conditional requests, like nginx does for static files.
#[derive(Clone)]
pub struct FeedServer {
    inner: Arc<Mutex<Inner>>,
    pub addr: SocketAddr,
}

impl FeedServer {
    pub async fn start() -> FeedServer {
        FeedServer::start_on("127.0.0.1").await
    }

    /// A server on another loopback address (`127.0.0.2` plays a "public" host in the
    /// tests that check where requests may go).
    pub async fn start_on(ip: &str) -> FeedServer {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .expect("bind feed server");
        let addr = listener.local_addr().expect("local addr");
        let app = axum::Router::new()
            .route("/{*path}", axum::routing::get(serve_file))
            .with_state(inner.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FeedServer { inner, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path)
    }

    /// Serves `body` at `path` with a fresh ETag and Last-Modified.
    pub fn put(&self, path: &str, content_type: &str, body: impl Into<Vec<u8>>) {
        let mut inner = self.inner.lock().expect("lock");
        inner.version += 1;
        let version = inner.version;
        inner.files.insert(
            path.to_string(),
            Behavior::Static(Served {
                body: body.into(),
                content_type: content_type.to_string(),
                etag: format!("\"v{version}\""),
                last_modified: httpdate::fmt_http_date(
                    std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + version),
                ),
            }),
        );
    }

    /// Answers `path` the way `behavior` says.
    pub fn behave(&self, path: &str, behavior: Behavior) {
        self.inner
            .lock()
            .expect("lock")
            .files
            .insert(path.to_string(), behavior);
    }

    /// Holds every request from now on until the returned gate lets it through.
    pub fn gate(&self) -> Arc<Gate> {
        let gate = Arc::new(Gate {
            open: tokio::sync::Semaphore::new(0),
            held: Default::default(),
            most_held: Default::default(),
            passed: Default::default(),
        });
        self.inner.lock().expect("lock").gate = Some(gate.clone());
        gate
    }

    /// How many requests `path` has had.
    pub fn hits(&self, path: &str) -> usize {
        self.log().iter().filter(|l| l.path == path).count()
    }

    pub fn served(&self, path: &str) -> Served {
        match &self.inner.lock().expect("lock").files[path] {
            Behavior::Static(served) => served.clone(),
            _ => panic!("{path} is not a static document"),
        }
    }

    pub fn log(&self) -> Vec<Logged> {
        self.inner.lock().expect("lock").log.clone()
    }
}

async fn serve_file(
    State(inner): State<Arc<Mutex<Inner>>>,
    UrlPath(path): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    let gate = inner.lock().expect("lock").gate.clone();
    if let Some(gate) = gate {
        gate.pass().await;
    }
    let mut inner = inner.lock().expect("lock");
    let header_text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
            .map(str::to_string)
    };
    let if_none_match = header_text(header::IF_NONE_MATCH);
    let if_modified_since = header_text(header::IF_MODIFIED_SINCE);
    let response = match inner.files.get(&path) {
        None => (StatusCode::NOT_FOUND, "no such feed").into_response(),
        Some(Behavior::Static(file)) if if_none_match.as_deref() == Some(file.etag.as_str()) => {
            Response::builder()
                .status(StatusCode::NOT_MODIFIED)
                .header(header::ETAG, &file.etag)
                .body(Body::empty())
                .expect("response")
        }
        Some(Behavior::Static(file)) => Response::builder()
            .header(header::CONTENT_TYPE, &file.content_type)
            .header(header::ETAG, &file.etag)
            .header(header::LAST_MODIFIED, &file.last_modified)
            .body(Body::from(file.body.clone()))
            .expect("response"),
        Some(Behavior::Status {
            status,
            headers,
            body,
        }) => {
            let mut response = Response::builder().status(*status);
            for (name, value) in headers {
                response = response.header(*name, value);
            }
            response.body(Body::from(body.clone())).expect("response")
        }
        Some(Behavior::Redirect { status, location }) => Response::builder()
            .status(*status)
            .header(header::LOCATION, location)
            .body(Body::empty())
            .expect("response"),
        Some(Behavior::Trickle { every }) => {
            let every = *every;
            let start = futures_util::stream::once(async {
                Ok::<_, std::io::Error>(bytes::Bytes::from_static(
                    b"<rss version=\"2.0\"><channel><title>",
                ))
            });
            let drip = futures_util::stream::unfold((), move |()| async move {
                tokio::time::sleep(every).await;
                Some((Ok(bytes::Bytes::from_static(b"x")), ()))
            });
            Response::builder()
                .header(header::CONTENT_TYPE, "application/rss+xml")
                .body(Body::from_stream(futures_util::StreamExt::chain(
                    start, drip,
                )))
                .expect("response")
        }
        Some(Behavior::Endless) => {
            let chunk = bytes::Bytes::from("<item><title>again</title></item>".repeat(2000));
            let endless =
                futures_util::stream::repeat_with(move || Ok::<_, std::io::Error>(chunk.clone()));
            Response::builder()
                .header(header::CONTENT_TYPE, "application/rss+xml")
                .body(Body::from_stream(endless))
                .expect("response")
        }
        Some(Behavior::Gzipped { body, content_type }) => Response::builder()
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CONTENT_ENCODING, "gzip")
            .body(Body::from(body.clone()))
            .expect("response"),
    };
    inner.log.push(Logged {
        path,
        if_none_match,
        if_modified_since,
        status: response.status().as_u16(),
    });
    response
}

/// The `[store]` table of the tests that do not choose an engine: a sled store in the
/// config's directory.
const SLED_STORE: &str = "[store]\npath = \"store\"\n";

fn write_config(path: &Path, port: u16, store: &str, body: &str) {
    std::fs::write(
        path,
        format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\nbase_url = \"http://127.0.0.1:{port}/\"\n\n{store}\n{body}"
        ),
    )
    .expect("write config");
}

/// A free loopback port. Another process could take it before the daemon binds it, which
/// only fails the test loudly; it does not make it flaky in practice on a test machine.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The `feedmill` binary under test: this build's, or the one `$FEEDMILL_TEST_BIN` names
/// (how a new test is run against an older build, to see it fail there).
pub fn feedmill() -> Command {
    let binary = std::env::var_os("FEEDMILL_TEST_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_feedmill")),
        PathBuf::from,
    );
    let mut command = Command::new(binary);
    command
        .env_remove("FEEDMILL_CONFIG")
        .env("RUST_LOG", "info");
    command
}

/// A daemon run as a child process on its own port and store.
pub struct Daemon {
    child: Option<Child>,
    pub port: u16,
    pub config: PathBuf,
    stderr_log: PathBuf,
    env: Vec<(String, String)>,
    /// The `[store]` table [`Daemon::rewrite_config`] writes again.
    store: String,
}

/// What [`Daemon::kill9`] leaves for [`Daemon::start_again`]: the config, port, environment
/// and store of a daemon that is gone.
pub struct Killed {
    config: PathBuf,
    port: u16,
    env: Vec<(String, String)>,
    store: String,
}

impl Daemon {
    /// Writes `config_body` (everything but `[server]` and `[store]`) and starts the daemon.
    pub fn start(dir: &Path, config_body: &str) -> Daemon {
        Daemon::start_env(dir, config_body, &[])
    }

    /// [`Daemon::start`] with extra environment variables.
    pub fn start_env(dir: &Path, config_body: &str, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_env_on(dir, SLED_STORE, config_body, env)
    }

    /// [`Daemon::start`] on the store that `store` (a `[store]` table, as
    /// [`TestStore::section`] writes it) names.
    pub fn start_on(dir: &Path, store: &str, config_body: &str) -> Daemon {
        Daemon::start_env_on(dir, store, config_body, &[])
    }

    /// [`Daemon::start_on`] with extra environment variables.
    pub fn start_env_on(
        dir: &Path,
        store: &str,
        config_body: &str,
        env: &[(&str, &str)],
    ) -> Daemon {
        let port = free_port();
        let config = dir.join("feedmill.toml");
        write_config(&config, port, store, config_body);
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut daemon = Daemon::start_with(config, port, env);
        daemon.store = store.to_string();
        daemon
    }

    /// Replaces the config body (the `[server]` and `[store]` stay).
    pub fn rewrite_config(&self, config_body: &str) {
        write_config(&self.config, self.port, &self.store, config_body);
    }

    /// Starts the daemon again on the same config and store.
    pub fn restart(mut self) -> Daemon {
        let status = self.stop();
        assert!(status.success(), "daemon exited with {status}");
        let mut daemon = Daemon::start_with(self.config.clone(), self.port, self.env.clone());
        daemon.store = std::mem::take(&mut self.store);
        daemon
    }

    /// Sends a signal.
    pub fn signal(&self, signal: i32) {
        let pid = self.child.as_ref().expect("daemon running").id();
        // SAFETY: kill(2) on our own child's pid has no memory effects.
        unsafe { libc::kill(pid as i32, signal) };
    }

    /// SIGKILL, and wait for it to be gone.
    pub fn kill9(mut self) -> Killed {
        let mut child = self.child.take().expect("daemon running");
        let _ = child.kill();
        let _ = child.wait();
        Killed {
            config: self.config.clone(),
            port: self.port,
            env: std::mem::take(&mut self.env),
            store: std::mem::take(&mut self.store),
        }
    }

    /// Starts a daemon on what [`Daemon::kill9`] left.
    pub fn start_again(killed: Killed) -> Daemon {
        let mut daemon = Daemon::start_with(killed.config, killed.port, killed.env);
        daemon.store = killed.store;
        daemon
    }

    /// Whether the process has exited, and how.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    fn start_with(config: PathBuf, port: u16, env: Vec<(String, String)>) -> Daemon {
        static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let run = RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let stderr_log = config.with_extension(format!("run{run}.log"));
        let stderr = std::fs::File::create(&stderr_log).expect("log file");
        let child = feedmill()
            .arg("run")
            .arg("-c")
            .arg(&config)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn feedmill");
        let daemon = Daemon {
            child: Some(child),
            port,
            config,
            stderr_log,
            env,
            store: SLED_STORE.to_string(),
        };
        daemon.wait_for("the daemon to answer /healthz", || {
            blocking_get(&daemon.url("/healthz")).map(|(status, _)| status == 200)
        });
        daemon
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    /// The daemon's resident memory, from /proc, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let pid = self.child.as_ref().expect("daemon running").id();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS")
    }

    /// One source's report from `/status.json`.
    pub fn source(&self, name: &str) -> serde_json::Value {
        self.status()
            .into_iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no source {name} in status.json"))
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    /// Polls `check` until it holds; fails the test with the daemon's log after 30 s.
    pub fn wait_for(&self, what: &str, mut check: impl FnMut() -> Option<bool>) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if check() == Some(true) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let status = blocking_get(&self.url("/status.json"))
            .map(|(_, body)| String::from_utf8_lossy(&body).into_owned())
            .unwrap_or_default();
        panic!(
            "timed out waiting for {what}\n--- status.json ---\n{status}\n--- daemon log ---\n{}",
            self.stderr()
        );
    }

    /// `/status.json`, parsed.
    pub fn status(&self) -> Vec<serde_json::Value> {
        self.try_status().expect("status.json answers with JSON")
    }

    /// `/status.json`, parsed; `None` when it does not answer (for polls: a loaded machine
    /// may be slow to answer once).
    pub fn try_status(&self) -> Option<Vec<serde_json::Value>> {
        let (_, body) = blocking_get(&self.url("/status.json"))?;
        serde_json::from_slice(&body).ok()
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        let mut child = self.child.take().expect("daemon running");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not exit within 10 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A GET from a plain thread (tests call it outside async code). `None` when the server does
/// not answer (yet).
pub fn blocking_get(url: &str) -> Option<(u16, Vec<u8>)> {
    blocking_get_with(url, &[]).map(|(status, _, body)| (status, body))
}

/// A GET with request headers; returns status, response headers and body.
pub fn blocking_get_with(
    url: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, HashMap<String, String>, Vec<u8>)> {
    blocking_request(reqwest::Method::GET, url, headers)
}

/// Any request with headers; returns status, response headers and body.
pub fn blocking_request(
    method: reqwest::Method,
    url: &str,
    headers: &[(&str, &str)],
) -> Option<(u16, HashMap<String, String>, Vec<u8>)> {
    let url = url.to_string();
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        runtime.block_on(async {
            // Decompression off: tests see the bytes and headers a server really sent.
            let client = reqwest::Client::builder()
                .no_gzip()
                .no_brotli()
                .no_deflate()
                .timeout(Duration::from_secs(10))
                .build()
                .ok()?;
            let mut request = client.request(method, &url);
            for (k, v) in &headers {
                request = request.header(k, v);
            }
            let response = request.send().await.ok()?;
            let status = response.status().as_u16();
            let headers = response
                .headers()
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
                .collect();
            let body = response.bytes().await.ok()?.to_vec();
            Some((status, headers, body))
        })
    })
    .join()
    .ok()
    .flatten()
}

// ---- Added for tests/it/connections.rs (issue 14, item 4): a daemon with extra [server]
// keys (timeouts and connection caps), which `Daemon::start`'s fixed [server] table cannot
// take. ----

impl Daemon {
    /// [`Daemon::start`] with `server_lines` added to the `[server]` table.
    pub fn start_with_server(dir: &Path, server_lines: &str, config_body: &str) -> Daemon {
        let port = free_port();
        let config = dir.join("feedmill.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:{port}\"\nbase_url = \"http://127.0.0.1:{port}/\"\n{server_lines}\n\n[store]\npath = \"store\"\n\n{config_body}"
            ),
        )
        .expect("write config");
        Daemon::start_with(config, port, Vec::new())
    }
}

// --- Added for tests/it/output_safety.rs (issue 14, items 2, 3, 8) ---

impl Daemon {
    /// The CPU time (user and system) the daemon has used so far, from /proc.
    pub fn cpu_time(&self) -> Duration {
        let pid = self.child.as_ref().expect("daemon running").id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // The fields after the command (which may hold spaces) in parentheses.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|at| fields.get(*at)?.parse::<u64>().ok())
            .sum();
        // SAFETY: sysconf has no memory effects.
        let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_millis(ticks * 1000 / per_second)
    }
}

// --- Added for tests/it/golden.rs (issue 16): a daemon on a config written by the test,
// whole (its own [server] and [store] tables). ---

impl Daemon {
    /// Starts the daemon on the config file at `config`, which listens on `port`.
    pub fn start_at(config: PathBuf, port: u16) -> Daemon {
        Daemon::start_with(config, port, Vec::new())
    }
}

// ---- Added for the end-to-end tests split into named cases (issue 16): one run of a daemon
// against the servers it fetches, watched once and shared by the cases of a module. ----

/// A fixture built by the first test that asks for it and shared by the tests of a module:
/// how cases that each check one behaviour of one expensive setup do not each pay for it.
/// A build that panics fails every test that asks, with the build's message, at once,
/// instead of each test building it again and waiting out the same timeouts. Keep in it
/// what a run showed, not the run: a `static` is never dropped, so a daemon kept in one
/// would go on running, and its directory stay behind, after the tests.
pub struct Shared<T>(std::sync::OnceLock<Result<T, String>>);

impl<T> Shared<T> {
    /// An empty cell, for a `static`.
    pub const fn new() -> Shared<T> {
        Shared(std::sync::OnceLock::new())
    }

    /// The fixture, which `build` makes the first time.
    pub fn get(&self, build: impl FnOnce() -> T) -> &T {
        let built = self.0.get_or_init(|| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(build)).map_err(|panic| {
                panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic without a message".into())
            })
        });
        match built {
            Ok(fixture) => fixture,
            Err(message) => panic!("the shared fixture failed to build: {message}"),
        }
    }
}

impl<T> Default for Shared<T> {
    fn default() -> Shared<T> {
        Shared::new()
    }
}

/// What a GET answered, as [`blocking_get`] gives it: status and body, `None` when nothing
/// answered. A shared fixture keeps it for the one case that judges it.
pub type Answer = Option<(u16, Vec<u8>)>;

/// Polls `check` every 50 ms until it holds or `within` has passed, and says whether it
/// held: for a shared fixture's wait whose failure is one case's to report (that case then
/// finds what it looks for missing), not every case's, as a panic in [`Daemon::wait_for`]
/// would make it.
pub fn poll(within: Duration, mut check: impl FnMut() -> Option<bool>) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() == Some(true) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- Added for issue 17 (the PostgreSQL engine): the store engine a test runs on, and a
// fresh store of it per test. ----

/// The server the PostgreSQL cases make their databases on, as a URL
/// (`postgres://USER@HOST:PORT/DB`) of a role that may `CREATE DATABASE`. `bash .ci/run`
/// starts a private cluster and sets it.
pub const DATABASE_URL_VAR: &str = "FEEDMILL_TEST_DATABASE_URL";

/// Set to `1`, a PostgreSQL case with no server fails instead of skipping (`.ci/run` sets
/// it: there, a skip would hide that half of the suite did not run).
const REQUIRE_VAR: &str = "FEEDMILL_REQUIRE_POSTGRES";

/// Set, the test databases are kept after the tests, for a look at what a failing case left.
const KEEP_VAR: &str = "FEEDMILL_KEEP_TEST_DATABASES";

/// A store engine a test can run on. [`on_each_engine!`] runs a test on each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// The default: an embedded store in the config's directory.
    Sled,
    /// A database of its own on the server `FEEDMILL_TEST_DATABASE_URL` names.
    Postgres,
}

impl Engine {
    /// Runs the case `case` (its path, for the skip line) on this engine, when the engine
    /// can run here. Without a PostgreSQL server a PostgreSQL case says loudly that it is
    /// skipped and passes, or fails under `FEEDMILL_REQUIRE_POSTGRES=1`.
    pub fn run(self, case: &str, body: impl FnOnce(Engine)) {
        if self == Engine::Postgres && std::env::var_os(DATABASE_URL_VAR).is_none() {
            assert!(
                std::env::var(REQUIRE_VAR).as_deref() != Ok("1"),
                "{case}::postgres: {REQUIRE_VAR}=1, but {DATABASE_URL_VAR} is not set: set it to a server's URL, or run `bash .ci/run`, which starts one"
            );
            // Straight to stderr: libtest captures `eprintln!` of a passing test, and a skip
            // must not pass unseen.
            let _ = writeln!(
                std::io::stderr(),
                "\n*** {case}::postgres skipped: set {DATABASE_URL_VAR} (bash .ci/run does) ***"
            );
            return;
        }
        body(self);
    }

    /// A fresh store that no other test sees: for sled, the `store` directory beside each
    /// config (so, one per test directory, as before); for PostgreSQL, a new database, dropped
    /// with the [`TestStore`].
    pub fn store(self) -> TestStore {
        TestStore {
            database: match self {
                Engine::Sled => None,
                Engine::Postgres => Some(TestDatabase::create()),
            },
        }
    }
}

/// Turns each test function `NAME(engine: Engine)` named in it into a module `NAME` of two
/// tests, `NAME::sled` and `NAME::postgres`, which run the function on each engine (see
/// [`Engine::run`] for when the PostgreSQL one skips). `cargo test --test it -- NAME` runs
/// both; `-- ::postgres` every PostgreSQL case.
macro_rules! on_each_engine {
    ($($case:ident),+ $(,)?) => {
        $(
            mod $case {
                #[test]
                fn sled() {
                    $crate::support::Engine::Sled.run(module_path!(), super::$case);
                }

                #[test]
                fn postgres() {
                    $crate::support::Engine::Postgres.run(module_path!(), super::$case);
                }
            }
        )+
    };
}
pub(crate) use on_each_engine;

/// One test's store. Every config written with its [`TestStore::section`] opens the same
/// store: for PostgreSQL, daemons in different directories share the database (how the
/// replica tests run several on one); for sled, each directory has its own `store`. Keep it
/// alive while its daemons run.
pub struct TestStore {
    /// The test's database, on PostgreSQL.
    database: Option<TestDatabase>,
}

impl TestStore {
    /// The `[store]` table of a config on this store (more `[store]` keys may follow it).
    pub fn section(&self) -> String {
        self.section_with("")
    }

    /// [`TestStore::section`] with `postgres_lines` (`[store]` keys, one a line) added on
    /// PostgreSQL and not on sled: for keys only that engine reads, such as `lease`.
    pub fn section_with(&self, postgres_lines: &str) -> String {
        match &self.database {
            None => SLED_STORE.to_string(),
            Some(database) => format!(
                "[store]\nengine = \"postgres\"\nurl = \"{}\"\n{postgres_lines}",
                database.url
            ),
        }
    }

    /// The database's URL, on PostgreSQL (as the config has it: no password).
    pub fn url(&self) -> Option<&str> {
        self.database.as_ref().map(|d| d.url.as_str())
    }
}

/// A database made for one test on the server `FEEDMILL_TEST_DATABASE_URL` names, dropped
/// with it. Dropped after a case that passed, it fails the case if feedmill made no table in
/// it: the case ran, but not on PostgreSQL.
struct TestDatabase {
    /// The server's URL as given, to connect to a database other than this one.
    server: String,
    name: String,
    /// This database's URL, without a password (feedmill refuses one in its config).
    url: String,
}

impl TestDatabase {
    fn create() -> TestDatabase {
        static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let server = std::env::var(DATABASE_URL_VAR)
            .unwrap_or_else(|_| panic!("{DATABASE_URL_VAR} is not set"));
        let mut url = url::Url::parse(&server)
            .unwrap_or_else(|err| panic!("{DATABASE_URL_VAR} {server:?} is not a URL: {err}"));
        assert!(
            url.password().is_none(),
            "{DATABASE_URL_VAR} carries a password, which feedmill refuses in its config: give it in PGPASSWORD or ~/.pgpass"
        );
        // Unique among the processes running now (the pid) and those before (the time).
        let micros = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_micros() % 1_000_000_000_000);
        let made = MADE.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let name = format!("feedmill_t_{}_{made}_{micros}", std::process::id());
        url.set_path(&format!("/{name}"));
        let sql = format!("CREATE DATABASE \"{name}\"");
        let created = on_server({
            let server = server.clone();
            move || execute(server, sql)
        });
        if let Err(err) = created {
            panic!("cannot create the test database {name} on {server}: {err}");
        }
        TestDatabase {
            server,
            name,
            url: url.to_string(),
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // After a failure, its own message is the one to read.
        let tables = (!std::thread::panicking()).then(|| {
            let url = self.url.clone();
            on_server(move || tables(url))
        });
        if std::env::var_os(KEEP_VAR).is_some() {
            let _ = writeln!(std::io::stderr(), "kept the test database {}", self.url);
        } else {
            // FORCE: a daemon a test left running (it is killed as the test ends) must not
            // keep the database from going.
            let server = self.server.clone();
            let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
            let dropped = on_server(move || execute(server, sql));
            if let Err(err) = dropped {
                let _ = writeln!(
                    std::io::stderr(),
                    "cannot drop the test database {}: {err}",
                    self.name
                );
            }
        }
        match tables {
            None | Some(Ok(1..)) => {}
            Some(Ok(_)) => panic!(
                "the case passed, but feedmill made no table in its database {}: it did not run on PostgreSQL",
                self.url
            ),
            Some(Err(err)) => panic!("cannot read the test database {}: {err}", self.url),
        }
    }
}

/// Runs the future `work` makes to its end on a runtime of its own, on a thread of its own:
/// callers may be plain test threads or inside another runtime. The future is made on that
/// thread, so it need not be `Send` (sqlx's are not quite, for the compiler).
fn on_server<T, F>(work: impl FnOnce() -> F + Send + 'static) -> T
where
    T: Send + 'static,
    F: std::future::Future<Output = T>,
{
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(work())
    })
    .join()
    .expect("the database thread")
}

/// Runs `sql` (one statement outside a transaction, as `CREATE DATABASE` needs) on `url`.
async fn execute(url: String, sql: String) -> Result<(), sqlx::Error> {
    use sqlx::Connection as _;
    let mut connection = sqlx::PgConnection::connect(&url).await?;
    sqlx::raw_sql(&sql).execute(&mut connection).await?;
    connection.close().await
}

/// How many tables the database at `url` holds outside PostgreSQL's own schemas.
async fn tables(url: String) -> Result<i64, sqlx::Error> {
    use sqlx::Connection as _;
    let mut connection = sqlx::PgConnection::connect(&url).await?;
    let count = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    .fetch_one(&mut connection)
    .await?;
    connection.close().await?;
    Ok(count)
}
