//! Configuration: the TOML file of `../shared/interface.md`, parsed and validated.
//!
//! Parsing happens in two steps. serde reads the file into `Raw*` structs whose strings keep
//! their spans, so that every later check (a bad URL, an unknown source, a bad regex) can still
//! point at file:line:col. [`Config::load`] then turns them into the validated types the rest of
//! the daemon uses; nothing past this module ever sees an unchecked value.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;
use url::Url;

use crate::schedule::CronSchedule;

/// A configuration error, with the place in the file where it was found.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read at all.
    #[error("cannot read config file {path}: {source}\n  hint: pass the right file with -c FILE or $FEEDMILL_CONFIG")]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The file was read, but a value in it is wrong.
    #[error("{location}: {message}")]
    Invalid {
        /// `file:line:col` of the offending value (or just the file).
        location: Location,
        /// What is wrong and what to do about it.
        message: String,
    },
}

/// Where in the config file an error lies.
#[derive(Debug, Clone)]
pub struct Location {
    /// The config file.
    pub path: PathBuf,
    /// 1-based line and column, when the error has a place in the file.
    pub line_col: Option<(usize, usize)>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line_col {
            Some((line, col)) => write!(f, "{}:{}:{}", self.path.display(), line, col),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

/// The whole, validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file this configuration was read from.
    pub path: PathBuf,
    /// `[server]`
    pub server: ServerConfig,
    /// `[store]`
    pub store: StoreConfig,
    /// `[fetch]`
    pub fetch: FetchConfig,
    /// `[[source]]`, in file order.
    pub sources: Vec<SourceConfig>,
    /// `[[feed]]`, in file order.
    pub feeds: Vec<FeedConfig>,
}

/// `[server]`: where the HTTP server listens and how it names itself.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The socket address to bind.
    pub listen: SocketAddr,
    /// The public URL of the server; self links in the feeds are made from it. Ends with `/`.
    pub base_url: Url,
    /// How long a client may take to send a request's headers, or stay idle between
    /// requests, before its connection is closed.
    pub header_timeout: Duration,
    /// How long a client may take to read a response before its connection is closed.
    pub write_timeout: Duration,
    /// Open connections at most, from all clients.
    pub max_connections: usize,
    /// Open connections at most from one client address.
    pub max_connections_per_ip: usize,
    /// The site's name on the HTML page.
    pub title: String,
    /// The language of the HTML page (`lang` attribute).
    pub lang: String,
    /// A WebSub hub the feeds name with `rel="hub"`, if any.
    pub hub: Option<Url>,
}

/// `[store]`: the sled directory and retention.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The sled directory (relative paths are taken from the config file's directory).
    pub path: PathBuf,
    /// Items first seen longer ago than this are pruned; 0 keeps them.
    pub max_age_days: u32,
    /// The newest this many items are kept per source; 0 keeps all.
    pub max_items_per_source: u32,
    /// The store's page cache, in bytes.
    pub cache: u64,
    /// How many of the most recent entries a new one is matched against; 0: none.
    pub match_window: usize,
}

/// `[fetch]`: how sources are fetched.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchConfig {
    /// The schedule of sources that do not name their own.
    pub schedule: CronSchedule,
    /// The bound on a whole request, body included.
    pub timeout: Duration,
    /// The bound on a body, counted after decompression.
    pub max_body: u64,
    /// Requests in flight in all.
    pub concurrency: usize,
    /// Requests in flight per host.
    pub per_host: usize,
    /// The `User-Agent` header sent with every request.
    pub user_agent: String,
    /// Whether requests may go to private, loopback and other non-public addresses.
    pub allow_private: bool,
}

/// One `[[source]]`: a feed we pull.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConfig {
    /// Unique name, `[a-z0-9_-]+`; scopes the identity of the source's items.
    pub name: String,
    /// Where the feed is: http, https or file.
    pub url: Url,
    /// A title that overrides the feed's own.
    pub title: Option<String>,
    /// When to fetch it.
    pub schedule: CronSchedule,
    /// Tags that output feeds may select on.
    pub tags: Vec<String>,
}

/// How an output feed merges the same story from several sources.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Dedup {
    /// Keep every entry.
    None,
    /// Merge entries whose canonical links are the same.
    Link,
    /// Also merge entries whose text is nearly the same.
    #[default]
    Content,
}

/// One `[[feed]]`: an output document.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// Unique name, `[a-z0-9_-]+`; the document is served at `/feeds/{name}.{atom,rss,json}`.
    pub name: String,
    /// The document's title.
    pub title: String,
    /// The sources this feed draws from, resolved from `sources` and `tags` (file order).
    pub sources: Vec<String>,
    /// Keep only entries whose title + text match one of these (none: keep all).
    pub include: Vec<Regex>,
    /// Drop entries whose title + text match one of these.
    pub exclude: Vec<Regex>,
    /// How many entries the document holds.
    pub limit: usize,
    /// How many of those one source may fill.
    pub max_per_source: usize,
    /// How duplicates across sources are merged.
    pub dedup: Dedup,
}

impl FeedConfig {
    /// Whether an entry with this title and text passes the feed's include/exclude filters.
    pub fn admits(&self, title: &str, text: &str) -> bool {
        let matches = |re: &Regex| re.is_match(title) || re.is_match(text);
        (self.include.is_empty() || self.include.iter().any(matches))
            && !self.exclude.iter().any(matches)
    }
}

const DEFAULT_LISTEN: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(
    std::net::Ipv4Addr::LOCALHOST,
    8080,
));
const DEFAULT_STORE_PATH: &str = "/var/lib/feedmill";
const DEFAULT_SCHEDULE: &str = "*/30 * * * *";
const DEFAULT_USER_AGENT: &str = concat!(
    "feedmill/",
    env!("CARGO_PKG_VERSION"),
    " (+https://example.org/feedmill)"
);
const DEFAULT_FEED_LIMIT: usize = 50;
/// Open HTTP connections at most, from all clients.
const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Open HTTP connections at most from one client address: a reader needs one or two, a
/// proxy in front of us a few dozen.
const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 64;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    store: RawStore,
    #[serde(default)]
    fetch: RawFetch,
    #[serde(default)]
    source: Vec<RawSource>,
    #[serde(default)]
    feed: Vec<RawFeed>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: Option<Spanned<String>>,
    base_url: Option<Spanned<String>>,
    header_timeout: Option<Spanned<String>>,
    write_timeout: Option<Spanned<String>>,
    max_connections: Option<Spanned<usize>>,
    max_connections_per_ip: Option<Spanned<usize>>,
    title: Option<String>,
    lang: Option<Spanned<String>>,
    hub: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<String>,
    max_age_days: Option<u32>,
    max_items_per_source: Option<u32>,
    cache: Option<Spanned<String>>,
    match_window: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFetch {
    schedule: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    max_body: Option<Spanned<String>>,
    concurrency: Option<Spanned<usize>>,
    per_host: Option<Spanned<usize>>,
    user_agent: Option<String>,
    allow_private: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: Spanned<String>,
    url: Spanned<String>,
    title: Option<String>,
    schedule: Option<Spanned<String>>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    name: Spanned<String>,
    title: Option<String>,
    sources: Option<Vec<Spanned<String>>>,
    tags: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    include: Vec<Spanned<String>>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    limit: Option<Spanned<usize>>,
    max_per_source: Option<Spanned<usize>>,
    #[serde(default)]
    dedup: Dedup,
}

/// Turns spans into `file:line:col` errors while validating one file.
struct Checker<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Checker<'_> {
    fn at(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            location: Location {
                path: self.path.to_path_buf(),
                line_col: Some(line_col(self.text, span.start)),
            },
            message: message.into(),
        }
    }

    fn whole_file(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            location: Location {
                path: self.path.to_path_buf(),
                line_col: None,
            },
            message: message.into(),
        }
    }

    fn name(&self, name: &Spanned<String>, what: &str) -> Result<String, ConfigError> {
        let value = name.get_ref();
        let valid = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if valid {
            Ok(value.clone())
        } else {
            Err(self.at(
                name.span(),
                format!("{what} name {value:?} is not valid: use only a-z, 0-9, '_' and '-'"),
            ))
        }
    }

    fn schedule(&self, expr: &Spanned<String>) -> Result<CronSchedule, ConfigError> {
        CronSchedule::parse(expr.get_ref()).map_err(|err| {
            self.at(
                expr.span(),
                format!(
                    "bad schedule {:?}: {err}; write a cron expression such as \"*/30 * * * *\" (5 fields) or \"0 */10 * * * *\" (seconds first)",
                    expr.get_ref()
                ),
            )
        })
    }

    /// A human size larger than zero.
    fn size(&self, value: &Spanned<String>, key: &str) -> Result<u64, ConfigError> {
        let bytes = value
            .get_ref()
            .parse::<bytesize::ByteSize>()
            .map_err(|err| {
                self.at(
                    value.span(),
                    format!(
                        "{key} {:?} is not a size ({err}); write e.g. \"8MiB\" or \"500KB\"",
                        value.get_ref()
                    ),
                )
            })?
            .as_u64();
        if bytes == 0 {
            return Err(self.at(value.span(), format!("{key} must be larger than zero")));
        }
        Ok(bytes)
    }

    /// A human duration longer than zero.
    fn duration(&self, value: &Spanned<String>, key: &str) -> Result<Duration, ConfigError> {
        let duration = humantime::parse_duration(value.get_ref()).map_err(|err| {
            self.at(
                value.span(),
                format!(
                    "{key} {:?} is not a duration ({err}); write e.g. \"30s\" or \"2m\"",
                    value.get_ref()
                ),
            )
        })?;
        if duration.is_zero() {
            return Err(self.at(value.span(), format!("{key} must be longer than zero")));
        }
        Ok(duration)
    }

    fn regexes(&self, patterns: &[Spanned<String>]) -> Result<Vec<Regex>, ConfigError> {
        patterns
            .iter()
            .map(|p| {
                Regex::new(p.get_ref()).map_err(|err| {
                    self.at(
                        p.span(),
                        format!("bad regular expression {:?}: {err}", p.get_ref()),
                    )
                })
            })
            .collect()
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

impl Config {
    /// Reads and validates the config file at `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Config::parse(path, &text)
    }

    /// Validates `text` as if it were the content of the file at `path`. Relative store paths
    /// and relative source URLs are taken from the directory of `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let check = Checker { path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|err| {
            let message = err.message().to_string();
            match err.span() {
                Some(span) => check.at(span, message),
                None => check.whole_file(message),
            }
        })?;
        let config_dir = absolute_dir_of(path);

        let server = check_server(&check, raw.server)?;
        let store = StoreConfig {
            path: join_clean(
                &config_dir,
                raw.store.path.as_deref().unwrap_or(DEFAULT_STORE_PATH),
            ),
            max_age_days: raw.store.max_age_days.unwrap_or(365),
            max_items_per_source: raw.store.max_items_per_source.unwrap_or(1000),
            cache: match &raw.store.cache {
                Some(size) => check.size(size, "cache")?,
                None => crate::store::DEFAULT_CACHE,
            },
            match_window: raw
                .store
                .match_window
                .map_or(crate::store::DEFAULT_MATCH_WINDOW, |n| n as usize),
        };
        let fetch = check_fetch(&check, raw.fetch)?;

        let config_url = Url::from_file_path(config_dir.join("feedmill.toml")).ok();
        let mut sources = Vec::with_capacity(raw.source.len());
        let mut source_names = HashSet::new();
        for raw_source in raw.source {
            let name = check.name(&raw_source.name, "source")?;
            if !source_names.insert(name.clone()) {
                return Err(check.at(
                    raw_source.name.span(),
                    format!(
                        "source name {name:?} is used twice: give each [[source]] its own name"
                    ),
                ));
            }
            let url = check_source_url(&check, &raw_source.url, config_url.as_ref())?;
            let schedule = match &raw_source.schedule {
                Some(expr) => check.schedule(expr)?,
                None => fetch.schedule.clone(),
            };
            sources.push(SourceConfig {
                name,
                url,
                title: raw_source.title,
                schedule,
                tags: raw_source.tags,
            });
        }

        if raw.feed.is_empty() {
            return Err(check.whole_file(
                "no [[feed]] is configured: add at least one, e.g.\n\n[[feed]]\nname = \"all\"\ntitle = \"All news\"",
            ));
        }
        let mut feeds = Vec::with_capacity(raw.feed.len());
        let mut feed_names = HashSet::new();
        for raw_feed in raw.feed {
            let name = check.name(&raw_feed.name, "feed")?;
            if !feed_names.insert(name.clone()) {
                return Err(check.at(
                    raw_feed.name.span(),
                    format!("feed name {name:?} is used twice: give each [[feed]] its own name"),
                ));
            }
            let selected = select_sources(&check, &raw_feed, &sources)?;
            let limit = match &raw_feed.limit {
                Some(limit) if *limit.get_ref() == 0 => {
                    return Err(check.at(limit.span(), "limit must be at least 1"))
                }
                Some(limit) => *limit.get_ref(),
                None => DEFAULT_FEED_LIMIT,
            };
            let max_per_source = match &raw_feed.max_per_source {
                Some(cap) if *cap.get_ref() == 0 => {
                    return Err(check.at(cap.span(), "max_per_source must be at least 1"))
                }
                Some(cap) => *cap.get_ref(),
                // A flooding source may take half the document, never all of it.
                None if selected.len() > 1 => limit.div_ceil(2),
                None => limit,
            };
            feeds.push(FeedConfig {
                title: raw_feed.title.clone().unwrap_or_else(|| name.clone()),
                name,
                sources: selected,
                max_per_source,
                include: check.regexes(&raw_feed.include)?,
                exclude: check.regexes(&raw_feed.exclude)?,
                limit,
                dedup: raw_feed.dedup,
            });
        }

        Ok(Config {
            path: path.to_path_buf(),
            server,
            store,
            fetch,
            sources,
            feeds,
        })
    }

    /// The source with this name.
    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }
}

/// The absolute directory of a file path, without touching the file system beyond `current_dir`.
fn absolute_dir_of(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or_else(|| Path::new(""));
    if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(dir)
    }
}

/// `base` joined with `relative`, with `.` and `..` resolved lexically, so that paths in
/// logs and errors read as the user would write them.
fn join_clean(base: &Path, relative: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for component in base.join(relative).components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn check_server(check: &Checker, raw: RawServer) -> Result<ServerConfig, ConfigError> {
    let listen = match &raw.listen {
        Some(listen) => listen.get_ref().parse::<SocketAddr>().map_err(|_| {
            check.at(
                listen.span(),
                format!(
                    "listen address {:?} is not IP:PORT, e.g. \"127.0.0.1:8080\"",
                    listen.get_ref()
                ),
            )
        })?,
        None => DEFAULT_LISTEN,
    };
    let mut base_url = match &raw.base_url {
        Some(base) => {
            let url = Url::parse(base.get_ref()).map_err(|err| {
                check.at(
                    base.span(),
                    format!("base_url {:?} is not a URL: {err}", base.get_ref()),
                )
            })?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(check.at(base.span(), "base_url must be an http or https URL"));
            }
            url
        }
        None => Url::parse(&format!("http://{listen}/")).map_err(|err| {
            check.whole_file(format!("cannot make base_url from listen {listen}: {err}"))
        })?,
    };
    if !base_url.path().ends_with('/') {
        let path = format!("{}/", base_url.path());
        base_url.set_path(&path);
    }
    let header_timeout = match &raw.header_timeout {
        Some(t) => check.duration(t, "header_timeout")?,
        None => Duration::from_secs(10),
    };
    let write_timeout = match &raw.write_timeout {
        Some(t) => check.duration(t, "write_timeout")?,
        None => Duration::from_secs(30),
    };
    let max_connections = match &raw.max_connections {
        Some(n) if *n.get_ref() == 0 => {
            return Err(check.at(n.span(), "max_connections must be at least 1"))
        }
        Some(n) => *n.get_ref(),
        None => DEFAULT_MAX_CONNECTIONS,
    };
    let max_connections_per_ip = match &raw.max_connections_per_ip {
        Some(n) if *n.get_ref() == 0 => {
            return Err(check.at(n.span(), "max_connections_per_ip must be at least 1"))
        }
        Some(n) => *n.get_ref(),
        None => DEFAULT_MAX_CONNECTIONS_PER_IP,
    };
    let lang = match &raw.lang {
        Some(lang) => {
            let valid = !lang.get_ref().is_empty()
                && lang
                    .get_ref()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !valid {
                return Err(check.at(
                    lang.span(),
                    format!(
                        "lang {:?} is not a language tag such as \"en\" or \"zh-Hans\"",
                        lang.get_ref()
                    ),
                ));
            }
            lang.get_ref().clone()
        }
        None => "en".to_string(),
    };
    let hub = match &raw.hub {
        Some(hub) => Some(
            Url::parse(hub.get_ref())
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https"))
                .ok_or_else(|| {
                    check.at(
                        hub.span(),
                        format!("hub {:?} is not an http(s) URL", hub.get_ref()),
                    )
                })?,
        ),
        None => None,
    };
    Ok(ServerConfig {
        listen,
        base_url,
        header_timeout,
        write_timeout,
        max_connections,
        max_connections_per_ip,
        title: raw.title.unwrap_or_else(|| "feedmill".to_string()),
        lang,
        hub,
    })
}

fn check_fetch(check: &Checker, raw: RawFetch) -> Result<FetchConfig, ConfigError> {
    let schedule = match &raw.schedule {
        Some(expr) => check.schedule(expr)?,
        None => CronSchedule::parse(DEFAULT_SCHEDULE).map_err(|e| check.whole_file(e))?,
    };
    let timeout = match &raw.timeout {
        Some(t) => check.duration(t, "timeout")?,
        None => Duration::from_secs(30),
    };
    let max_body = match &raw.max_body {
        Some(size) => check.size(size, "max_body")?,
        None => 8 * 1024 * 1024,
    };
    let positive = |value: &Option<Spanned<usize>>, default: usize, key: &str| match value {
        Some(v) if *v.get_ref() == 0 => {
            Err(check.at(v.span(), format!("{key} must be at least 1")))
        }
        Some(v) => Ok(*v.get_ref()),
        None => Ok(default),
    };
    Ok(FetchConfig {
        schedule,
        timeout,
        max_body,
        concurrency: positive(&raw.concurrency, 32, "concurrency")?,
        per_host: positive(&raw.per_host, 2, "per_host")?,
        user_agent: raw
            .user_agent
            .unwrap_or_else(|| DEFAULT_USER_AGENT.to_string()),
        allow_private: raw.allow_private.unwrap_or(false),
    })
}

/// Parses a source URL; a relative reference (`feeds/a.xml`, `file:feeds/a.xml`) is taken
/// from the config file's directory, so a config and its local feeds can move together.
fn check_source_url(
    check: &Checker,
    raw: &Spanned<String>,
    config_url: Option<&Url>,
) -> Result<Url, ConfigError> {
    let text = raw.get_ref();
    let url = Url::options()
        .base_url(config_url)
        .parse(text)
        .map_err(|err| check.at(raw.span(), format!("url {text:?} is not a URL: {err}")))?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some() => Ok(url),
        "file" => Ok(url),
        _ => Err(check.at(
            raw.span(),
            format!("url {text:?} is not supported: use an http://, https:// or file:// URL"),
        )),
    }
}

/// Resolves a feed's `sources` and `tags` into source names; neither means every source.
fn select_sources(
    check: &Checker,
    raw: &RawFeed,
    sources: &[SourceConfig],
) -> Result<Vec<String>, ConfigError> {
    let mut wanted: HashSet<&str> = HashSet::new();
    for name in raw.sources.iter().flatten() {
        if !sources.iter().any(|s| &s.name == name.get_ref()) {
            return Err(check.at(
                name.span(),
                format!(
                    "feed {:?} names source {:?}, which no [[source]] defines: add it or fix the name",
                    raw.name.get_ref(),
                    name.get_ref()
                ),
            ));
        }
        wanted.insert(name.get_ref());
    }
    let tags: Vec<&str> = raw
        .tags
        .iter()
        .flatten()
        .map(|t| t.get_ref().as_str())
        .collect();
    let everything = raw.sources.is_none() && raw.tags.is_none();
    Ok(sources
        .iter()
        .filter(|s| {
            everything
                || wanted.contains(s.name.as_str())
                || s.tags.iter().any(|t| tags.contains(&t.as_str()))
        })
        .map(|s| s.name.clone())
        .collect())
}

/// The configuration in force, shared by the tasks of the daemon and replaced whole on
/// reload: a reader always sees one consistent config.
#[derive(Debug, Clone)]
pub struct SharedConfig(Arc<RwLock<Arc<Config>>>);

impl SharedConfig {
    /// Shares `config`.
    pub fn new(config: Config) -> SharedConfig {
        SharedConfig(Arc::new(RwLock::new(Arc::new(config))))
    }

    /// The config in force now.
    pub fn get(&self) -> Arc<Config> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `config` in force.
    pub fn replace(&self, config: Arc<Config>) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = config;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[source]]
name = "a"
url = "https://a.example/feed.xml"

[[feed]]
name = "all"
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(Path::new("/etc/feedmill/feedmill.toml"), text)
    }

    fn error(text: &str) -> String {
        match parse(text) {
            Ok(_) => panic!("config was accepted:\n{text}"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn defaults_fill_a_minimal_config() {
        let config = parse(MINIMAL).expect("minimal config is valid");
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(config.server.base_url.as_str(), "http://127.0.0.1:8080/");
        assert_eq!(config.store.path, PathBuf::from("/var/lib/feedmill"));
        assert_eq!(config.fetch.timeout, Duration::from_secs(30));
        assert_eq!(config.fetch.max_body, 8 * 1024 * 1024);
        assert_eq!(config.fetch.concurrency, 32);
        assert_eq!(config.fetch.per_host, 2);
        assert_eq!(config.feeds[0].sources, vec!["a"]);
        assert_eq!(config.feeds[0].limit, 50);
        assert_eq!(
            config.feeds[0].max_per_source, 50,
            "one source may fill its own feed"
        );
        assert_eq!(config.feeds[0].dedup, Dedup::Content);
    }

    #[test]
    fn shipped_configs_are_valid() {
        for file in ["config/feedmill.toml", "config/demo.toml"] {
            let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
            if let Err(err) = Config::load(&path) {
                panic!("{file} is invalid: {err}");
            }
        }
    }

    #[test]
    fn unknown_key_names_line_and_column() {
        let err = error(&format!("{MINIMAL}colour = \"red\"\n"));
        assert!(err.starts_with("/etc/feedmill/feedmill.toml:8:1:"), "{err}");
        assert!(err.contains("unknown field `colour`"), "{err}");
    }

    #[test]
    fn toml_syntax_error_names_line_and_column() {
        let err = error("[server]\nlisten = \n");
        assert!(err.starts_with("/etc/feedmill/feedmill.toml:2:"), "{err}");
    }

    #[test]
    fn duplicate_source_name_is_an_error() {
        let text = MINIMAL.replace(
            "[[feed]]",
            "[[source]]\nname = \"a\"\nurl = \"https://b.example/\"\n\n[[feed]]",
        );
        let err = error(&text);
        assert!(err.contains(":7:8:"), "{err}");
        assert!(err.contains("\"a\" is used twice"), "{err}");
    }

    #[test]
    fn duplicate_feed_name_is_an_error() {
        let err = error(&format!("{MINIMAL}\n[[feed]]\nname = \"all\"\n"));
        assert!(err.contains("feed name \"all\" is used twice"), "{err}");
    }

    #[test]
    fn bad_names_are_errors() {
        let err = error(&MINIMAL.replace("name = \"a\"", "name = \"Big News\""));
        assert!(
            err.contains(":3:8: source name \"Big News\" is not valid"),
            "{err}"
        );
    }

    #[test]
    fn bad_urls_are_errors() {
        let err = error(&MINIMAL.replace("https://a.example/feed.xml", "ftp://a.example/x"));
        assert!(err.contains(":4:7:"), "{err}");
        assert!(err.contains("not supported"), "{err}");
        let err = error(&MINIMAL.replace("https://a.example/feed.xml", "http://"));
        assert!(err.contains("is not a URL"), "{err}");
    }

    #[test]
    fn bad_cron_is_an_error() {
        let err = error(&MINIMAL.replace(
            "url = \"https://a.example/feed.xml\"",
            "url = \"https://a.example/feed.xml\"\nschedule = \"every five minutes\"",
        ));
        assert!(err.contains(":5:12: bad schedule"), "{err}");
    }

    #[test]
    fn bad_regex_is_an_error() {
        let err = error(&format!("{MINIMAL}include = [\"(unclosed\"]\n"));
        assert!(err.contains(":8:12: bad regular expression"), "{err}");
    }

    #[test]
    fn unknown_source_in_feed_is_an_error() {
        let err = error(&format!("{MINIMAL}sources = [\"a\", \"nope\"]\n"));
        assert!(err.contains(":8:17:"), "{err}");
        assert!(err.contains("names source \"nope\""), "{err}");
    }

    #[test]
    fn bad_duration_size_and_listen_are_errors() {
        let err = error(&format!("[fetch]\ntimeout = \"soon\"\n{MINIMAL}"));
        assert!(
            err.contains(":2:11: timeout \"soon\" is not a duration"),
            "{err}"
        );
        let err = error(&format!("[fetch]\nmax_body = \"huge\"\n{MINIMAL}"));
        assert!(
            err.contains(":2:12: max_body \"huge\" is not a size"),
            "{err}"
        );
        let err = error(&format!("[server]\nlisten = \"localhost\"\n{MINIMAL}"));
        assert!(err.contains(":2:10: listen address"), "{err}");
        let err = error(&format!("[fetch]\nconcurrency = 0\n{MINIMAL}"));
        assert!(err.contains("concurrency must be at least 1"), "{err}");
    }

    #[test]
    fn missing_feed_is_an_error() {
        let err = error("[[source]]\nname = \"a\"\nurl = \"https://a.example/\"\n");
        assert!(err.contains("no [[feed]] is configured"), "{err}");
    }

    #[test]
    fn sizes_and_durations_are_human() {
        let config = parse(&format!(
            "[fetch]\ntimeout = \"1m 30s\"\nmax_body = \"512KiB\"\n{MINIMAL}"
        ))
        .expect("valid");
        assert_eq!(config.fetch.timeout, Duration::from_secs(90));
        assert_eq!(config.fetch.max_body, 512 * 1024);
    }

    #[test]
    fn the_store_section_has_defaults_and_takes_its_keys() {
        let config = parse(MINIMAL).expect("valid");
        assert_eq!(config.store.cache, crate::store::DEFAULT_CACHE);
        assert_eq!(
            config.store.match_window,
            crate::store::DEFAULT_MATCH_WINDOW
        );
        let config = parse(&format!(
            "[store]\ncache = \"64MiB\"\nmatch_window = 200000\n{MINIMAL}"
        ))
        .expect("valid");
        assert_eq!(config.store.cache, 64 * 1024 * 1024);
        assert_eq!(config.store.match_window, 200_000);
    }

    #[test]
    fn relative_urls_and_store_paths_follow_the_config_file() {
        let config = parse(
            "[store]\npath = \"../state\"\n[[source]]\nname = \"a\"\nurl = \"file:feeds/a.xml\"\n[[source]]\nname = \"b\"\nurl = \"feeds/b.xml\"\n[[feed]]\nname = \"all\"\n",
        )
        .expect("valid");
        assert_eq!(config.store.path, PathBuf::from("/etc/state"));
        assert_eq!(
            config.sources[0].url.as_str(),
            "file:///etc/feedmill/feeds/a.xml"
        );
        assert_eq!(
            config.sources[1].url.as_str(),
            "file:///etc/feedmill/feeds/b.xml"
        );
    }

    #[test]
    fn feeds_select_by_source_and_tag() {
        let config = parse(
            r#"
[[source]]
name = "a"
url = "https://a.example/"
tags = ["news"]
[[source]]
name = "b"
url = "https://b.example/"
[[source]]
name = "c"
url = "https://c.example/"
tags = ["sport"]
[[feed]]
name = "some"
sources = ["b"]
tags = ["news"]
[[feed]]
name = "none-selected"
tags = ["weather"]
"#,
        )
        .expect("valid");
        assert_eq!(config.feeds[0].sources, vec!["a", "b"]);
        assert!(config.feeds[1].sources.is_empty());
    }

    #[test]
    fn include_and_exclude_filter_title_and_text() {
        let config = parse(&format!(
            "{MINIMAL}include = [\"(?i)reading class\"]\nexclude = [\"(?i)sponsored\"]\n"
        ))
        .expect("valid");
        let feed = &config.feeds[0];
        assert!(feed.admits("Themed Reading Classes", ""));
        assert!(feed.admits("News", "a reading class was held"));
        assert!(!feed.admits("Weather", "rain"));
        assert!(!feed.admits("Reading class (sponsored)", ""));
    }
}
