//! Configuration: the TOML file of `../shared/interface.md`, parsed and validated.
//!
//! Parsing happens in two steps. serde reads the file into `Raw*` structs whose strings keep
//! their spans, so that every later check (a bad URL, an unknown source, a bad regex) can still
//! point at file:line:col. [`Config::load`] then turns them into the validated types the rest of
//! the daemon uses; nothing past this module ever sees an unchecked value.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;
use url::Url;

use crate::config::schedule::CronSchedule;

pub(crate) mod opml;
pub(crate) mod schedule;

/// sled's page cache when the config does not say: its own default (1 GiB) is far more than
/// a small VPS can spare. With one key per entry, 16 MiB writes as fast as 64 MiB (a cold
/// refresh of 20,000 entries differs within the noise) and keeps the daemon with ten
/// thousand sources and a million entries under 150 MB.
pub(crate) const DEFAULT_CACHE: u64 = 16 * 1024 * 1024;
/// How many of the most recent entries a new one is matched against when the config does not
/// say (`[store] match_window`): news outlets carry a story within hours or days of each
/// other, and at about 200 bytes an entry this keeps a daemon with ten thousand sources and a
/// million entries under 150 MB.
pub(crate) const DEFAULT_MATCH_WINDOW: usize = 50_000;

/// A configuration error, with the place in the file where it was found.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfigError {
    /// The file could not be read at all.
    // Not `#[source]`: the message already names the cause, and the CLI prints the chain.
    #[error("cannot read config file {path}: {error}; pass the right file with -c FILE or $FEEDMILL_CONFIG")]
    Read {
        /// The file that was asked for.
        path: PathBuf,
        /// Why reading failed.
        error: std::io::Error,
    },
    /// The file was read, but a value in it is wrong. The message is one line (it is logged
    /// as one event when a reload fails).
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
pub(crate) struct Location {
    /// The config file.
    pub(crate) path: PathBuf,
    /// 1-based line and column, when the error has a place in the file.
    pub(crate) line_col: Option<(usize, usize)>,
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
pub(crate) struct Config {
    /// The file this configuration was read from.
    pub(crate) path: PathBuf,
    /// `[server]`
    pub(crate) server: ServerConfig,
    /// `[store]`
    pub(crate) store: StoreConfig,
    /// `[fetch]`
    pub(crate) fetch: FetchConfig,
    /// `[[source]]`, in file order.
    pub(crate) sources: Vec<SourceConfig>,
    /// `[[feed]]`, in file order.
    pub(crate) feeds: Vec<FeedConfig>,
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
pub(crate) struct StoreConfig {
    /// The sled directory (relative paths are taken from the config file's directory).
    pub(crate) path: PathBuf,
    /// Items first seen longer ago than this are pruned; 0 keeps them.
    pub(crate) max_age_days: u32,
    /// The newest this many items are kept per source; 0 keeps all.
    pub(crate) max_items_per_source: u32,
    /// The store's page cache, in bytes.
    pub(crate) cache: u64,
    /// How many of the most recent entries a new one is matched against; 0: none.
    pub(crate) match_window: usize,
    /// Which engine holds the store.
    pub(crate) engine: Engine,
    /// How long a replica's claim on a fetch lasts if it dies (PostgreSQL).
    pub(crate) lease: Duration,
    /// This process's name among the replicas (`fetched_by`).
    pub(crate) replica: String,
    /// Database connections at most (PostgreSQL).
    pub(crate) pool: u32,
}

impl StoreConfig {
    /// Where the store is, in words: the sled directory, or the database's URL.
    pub(crate) fn location(&self) -> String {
        match &self.engine {
            Engine::Sled => self.path.display().to_string(),
            Engine::Postgres { url } => url.clone(),
        }
    }
}

/// `[store] engine`: where entries and source states live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Engine {
    /// An embedded sled database in `[store] path`, for one process.
    Sled,
    /// A PostgreSQL database shared by any number of replicas.
    Postgres {
        /// The libpq-style URL, without a password (that comes from `PGPASSWORD` or a
        /// `.pgpass` file).
        url: String,
    },
}

/// The default `[store] pool`: enough for the commits, claims and reads of 32 fetches in
/// flight, which mostly wait on the network, not on the database.
pub(crate) const DEFAULT_POOL: u32 = 10;
/// What `[store] pool` may be.
pub(crate) const POOL_RANGE: RangeInclusive<i64> = 2..=1000;

/// The default `[store] lease`.
pub(crate) const DEFAULT_LEASE: Duration = Duration::from_secs(60);
/// What `[store] lease` may be: long enough for a live replica to renew its claims (it does
/// every third of the lease, checking each second), short enough that a dead replica's
/// sources wait no longer than a day.
pub(crate) const LEASE_RANGE: RangeInclusive<Duration> =
    Duration::from_secs(3)..=Duration::from_secs(86_400);

/// The default replica name: the host name and the process id, which tell replicas on
/// one machine apart.
fn default_replica() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "feedmill".to_string());
    format!("{host}-{}", std::process::id())
}

/// `[fetch]`: how sources are fetched.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FetchConfig {
    /// The schedule of sources that do not name their own.
    pub(crate) schedule: CronSchedule,
    /// The bound on a whole request, body included.
    pub(crate) timeout: Duration,
    /// The bound on a body, counted after decompression.
    pub(crate) max_body: u64,
    /// Requests in flight in all.
    pub(crate) concurrency: usize,
    /// Requests in flight per host.
    pub(crate) per_host: usize,
    /// The `User-Agent` header sent with every request.
    pub(crate) user_agent: String,
    /// Whether requests may go to private, loopback and other non-public addresses.
    pub(crate) allow_private: bool,
}

/// One `[[source]]`: a feed we pull.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SourceConfig {
    /// Unique name, `[a-z0-9_-]+`; scopes the identity of the source's items.
    pub(crate) name: String,
    /// Where the feed is: http, https or file.
    pub(crate) url: Url,
    /// A title that overrides the feed's own.
    pub(crate) title: Option<String>,
    /// When to fetch it.
    pub(crate) schedule: CronSchedule,
    /// Tags that output feeds may select on.
    pub(crate) tags: Vec<String>,
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
    pub(crate) fn admits(&self, title: &str, text: &str) -> bool {
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

// The ranges of every number, duration and size (docs/configuration.md lists them). Each is
// what a demanding operator could want and well inside what the code that uses the value
// can take: tokio's semaphores panic above `usize::MAX >> 3` permits, chrono and `Instant`
// arithmetic panics on overflow, and a bigger render or body is memory the unit's
// `MemoryHigh=256M` does not have.

/// `[fetch] timeout`, `[server] header_timeout` and `write_timeout`: 1 second to 1 hour.
/// Under a second no real server answers in time, and every source would fail as if our
/// network were down.
pub(crate) const TIMEOUT_RANGE: RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(60 * 60);
/// `[fetch] max_body`: 1 KiB to 1 GiB.
pub(crate) const MAX_BODY_RANGE: RangeInclusive<u64> = 1024..=1024 * 1024 * 1024;
/// `[fetch] concurrency`: refreshes (fetch, parse, store) under way at once.
pub(crate) const CONCURRENCY_RANGE: RangeInclusive<i64> = 1..=1024;
/// `[fetch] per_host`: requests in flight to one host.
pub(crate) const PER_HOST_RANGE: RangeInclusive<i64> = 1..=64;
/// `[fetch] user_agent`: its length in bytes.
pub(crate) const USER_AGENT_MAX: usize = 512;
/// `[server] max_connections` and `max_connections_per_ip`.
pub(crate) const CONNECTIONS_RANGE: RangeInclusive<i64> = 1..=65_536;
/// `[store] max_age_days`: up to a hundred years; 0 keeps everything.
pub(crate) const MAX_AGE_DAYS_RANGE: RangeInclusive<i64> = 0..=36_525;
/// `[store] max_items_per_source`; 0 keeps all.
pub(crate) const MAX_ITEMS_RANGE: RangeInclusive<i64> = 0..=1_000_000;
/// `[store] match_window`: about 200 bytes of memory each; 0 turns matching off.
pub(crate) const MATCH_WINDOW_RANGE: RangeInclusive<i64> = 0..=1_000_000;
/// `[store] cache`: sled's page cache, 1 MiB to 1 GiB.
pub(crate) const CACHE_RANGE: RangeInclusive<u64> = 1024 * 1024..=1024 * 1024 * 1024;
/// `[[feed]] limit` and `max_per_source`: entries in one document. A document is held
/// rendered in three formats, each also gzipped, plus its HTML page.
pub(crate) const FEED_LIMIT_RANGE: RangeInclusive<i64> = 1..=1000;
/// Titles (`[server]`, `[[source]]`, `[[feed]]`): their length in bytes.
pub(crate) const TITLE_MAX: usize = 1024;
/// Source and feed names: their length in bytes.
pub(crate) const NAME_MAX: usize = 64;
/// A schedule must fire within this long (a year and a day: a yearly schedule is fine, one
/// that next fires in 2099 is a schedule that never fires).
pub(crate) const SCHEDULE_HORIZON: chrono::TimeDelta = chrono::TimeDelta::days(366);
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
    max_connections: Option<Spanned<i64>>,
    max_connections_per_ip: Option<Spanned<i64>>,
    title: Option<Spanned<String>>,
    lang: Option<Spanned<String>>,
    hub: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStore {
    path: Option<Spanned<String>>,
    max_age_days: Option<Spanned<i64>>,
    max_items_per_source: Option<Spanned<i64>>,
    cache: Option<Spanned<String>>,
    match_window: Option<Spanned<i64>>,
    engine: Option<Spanned<String>>,
    url: Option<Spanned<String>>,
    lease: Option<Spanned<String>>,
    replica: Option<Spanned<String>>,
    pool: Option<Spanned<i64>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFetch {
    schedule: Option<Spanned<String>>,
    timeout: Option<Spanned<String>>,
    max_body: Option<Spanned<String>>,
    concurrency: Option<Spanned<i64>>,
    per_host: Option<Spanned<i64>>,
    user_agent: Option<Spanned<String>>,
    allow_private: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: Spanned<String>,
    url: Spanned<String>,
    title: Option<Spanned<String>>,
    schedule: Option<Spanned<String>>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFeed {
    name: Spanned<String>,
    title: Option<Spanned<String>>,
    sources: Option<Vec<Spanned<String>>>,
    tags: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    include: Vec<Spanned<String>>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    limit: Option<Spanned<i64>>,
    max_per_source: Option<Spanned<i64>>,
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
            message: one_line(&message.into()),
        }
    }

    fn whole_file(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            location: Location {
                path: self.path.to_path_buf(),
                line_col: None,
            },
            message: one_line(&message.into()),
        }
    }

    fn name(&self, name: &Spanned<String>, what: &str) -> Result<String, ConfigError> {
        let value = name.get_ref();
        let valid = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !valid {
            return Err(self.at(
                name.span(),
                format!("{what} name {value:?} is not valid: use only a-z, 0-9, '_' and '-'"),
            ));
        }
        if value.len() > NAME_MAX {
            return Err(self.at(
                name.span(),
                format!(
                    "{what} name {value:?} is {} characters long: use at most {NAME_MAX}",
                    value.len()
                ),
            ));
        }
        Ok(value.clone())
    }

    fn schedule(&self, expr: &Spanned<String>) -> Result<CronSchedule, ConfigError> {
        let bad = |why: String| {
            self.at(
                expr.span(),
                format!(
                    "bad schedule {:?}: {why}; write a cron expression such as \"*/30 * * * *\" (5 fields) or \"0 */10 * * * *\" (seconds first)",
                    expr.get_ref()
                ),
            )
        };
        let schedule = CronSchedule::parse(expr.get_ref()).map_err(bad)?;
        let now = chrono::Utc::now();
        let horizon = now.checked_add_signed(SCHEDULE_HORIZON);
        match (schedule.next_after(now), horizon) {
            (Some(next), Some(horizon)) if next <= horizon => Ok(schedule),
            (Some(next), _) => Err(bad(format!(
                "it does not fire before {} (next on {}), so its sources would never be fetched",
                horizon.map_or_else(
                    || "the end of time".to_string(),
                    |h| h.format("%Y-%m-%d").to_string()
                ),
                next.format("%Y-%m-%d")
            ))),
            (None, _) => Err(bad("it never fires again".to_string())),
        }
    }

    /// A title: one line of text, no control characters (XML 1.0 cannot carry most of
    /// them, so a feed naming it would be invalid), at most [`TITLE_MAX`] bytes.
    fn title(
        &self,
        value: Option<&Spanned<String>>,
        key: &str,
    ) -> Result<Option<String>, ConfigError> {
        let Some(value) = value else { return Ok(None) };
        let text = value.get_ref();
        let wrong = if let Some(c) = text.chars().find(|c| c.is_control()) {
            format!("contains the control character {c:?}")
        } else if text.len() > TITLE_MAX {
            format!("is {} bytes long (at most {TITLE_MAX})", text.len())
        } else {
            return Ok(Some(text.clone()));
        };
        Err(self.at(
            value.span(),
            format!("{key} {wrong}: write one line of plain text"),
        ))
    }

    /// "`what` is out of range: use `low` to `high`", at `span`: one wording for integers,
    /// sizes and durations.
    fn out_of_range(
        &self,
        span: Range<usize>,
        what: String,
        low: impl fmt::Display,
        high: impl fmt::Display,
    ) -> ConfigError {
        self.at(span, format!("{what} is out of range: use {low} to {high}"))
    }

    /// An integer in `range`, or `default` when the key is absent. `key` names it in errors
    /// as `[section] key`.
    fn integer(
        &self,
        value: &Option<Spanned<i64>>,
        key: &str,
        range: RangeInclusive<i64>,
        default: i64,
    ) -> Result<i64, ConfigError> {
        match value {
            None => Ok(default),
            Some(v) if range.contains(v.get_ref()) => Ok(*v.get_ref()),
            Some(v) => Err(self.out_of_range(
                v.span(),
                format!("{key} = {}", v.get_ref()),
                range.start(),
                range.end(),
            )),
        }
    }

    /// A human size in `range`.
    fn size(
        &self,
        value: &Spanned<String>,
        key: &str,
        range: RangeInclusive<u64>,
    ) -> Result<u64, ConfigError> {
        let text = value.get_ref();
        let out_of_range = || {
            self.out_of_range(
                value.span(),
                format!("{key} {text:?}"),
                size_text(*range.start()),
                size_text(*range.end()),
            )
        };
        let bytes = text.trim().parse::<bytesize::ByteSize>().map_err(|err| {
            // bytesize says "couldn't parse ... into a known SI unit" for a number too big
            // for a u64, too: a long run of digits is a size that is out of range.
            if text.trim().bytes().take_while(u8::is_ascii_digit).count() > 15 {
                return out_of_range();
            }
            self.at(
                value.span(),
                format!(
                    "{key} {text:?} is not a size ({}); write e.g. \"8MiB\" or \"500KB\"",
                    one_line(&err.to_string())
                ),
            )
        })?;
        let bytes = bytes.as_u64();
        if !range.contains(&bytes) {
            return Err(out_of_range());
        }
        Ok(bytes)
    }

    /// A human duration in `range`.
    fn duration(
        &self,
        value: &Spanned<String>,
        key: &str,
        range: RangeInclusive<Duration>,
    ) -> Result<Duration, ConfigError> {
        let text = value.get_ref();
        let out_of_range = || {
            self.out_of_range(
                value.span(),
                format!("{key} {text:?}"),
                humantime::format_duration(*range.start()),
                humantime::format_duration(*range.end()),
            )
        };
        let duration = humantime::parse_duration(text).map_err(|err| match err {
            humantime::DurationError::NumberOverflow => out_of_range(),
            err => self.at(
                value.span(),
                format!("{key} {text:?} is not a duration ({err}); write e.g. \"30s\" or \"2m\""),
            ),
        })?;
        if !range.contains(&duration) {
            return Err(out_of_range());
        }
        Ok(duration)
    }

    fn regexes(&self, patterns: &[Spanned<String>]) -> Result<Vec<Regex>, ConfigError> {
        patterns
            .iter()
            .map(|p| {
                Regex::new(p.get_ref()).map_err(|err| {
                    // The regex crate draws a caret under the pattern over several lines;
                    // its last line says what is wrong.
                    let text = err.to_string();
                    let why = text
                        .lines()
                        .rev()
                        .map(str::trim)
                        .find(|l| !l.is_empty())
                        .unwrap_or_default();
                    let why = why.strip_prefix("error: ").unwrap_or(why);
                    self.at(
                        p.span(),
                        format!("bad regular expression {:?}: {why}", p.get_ref()),
                    )
                })
            })
            .collect()
    }
}

/// A size as the ranges in docs/configuration.md write it: "1 KiB", "1 GiB".
fn size_text(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    UNITS
        .iter()
        .find(|(unit, _)| bytes >= *unit && bytes.is_multiple_of(*unit))
        .map_or_else(
            || format!("{bytes} B"),
            |(unit, name)| format!("{} {name}", bytes / unit),
        )
}

/// `text` on one line: a log event is one line, and toml's messages (and ours) may have
/// several ("invalid array\nexpected `]`").
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The key whose value starts at byte `offset` (`key = value` on one line), with its table:
/// `[fetch] concurrency`. `None` when the offset is not in a value of a simple key.
fn key_of_value_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let (key, _) = text[line_start..offset].split_once('=')?;
    let key = key.trim();
    let bare = |k: &str| {
        !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    };
    if !bare(key) {
        return None;
    }
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .and_then(|l| l.split('#').next())
        .map(str::trim);
    Some(match table {
        Some(table) => format!("{table} {key}"),
        None => key.to_string(),
    })
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
    pub(crate) fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Config::parse(path, &text)
    }

    /// Validates `text` as if it were the content of the file at `path`. Relative store paths
    /// and relative source URLs are taken from the directory of `path`.
    pub(crate) fn parse(path: &Path, text: &str) -> Result<Config, ConfigError> {
        let check = Checker { path, text };
        let raw: RawConfig = toml::from_str(text).map_err(|err| {
            let message = one_line(err.message()).replace("expected i64", "expected an integer");
            match err.span() {
                Some(span) => {
                    // toml names the value, not its key ("number too large to fit in target
                    // type"): say which key it is.
                    let message = match key_of_value_at(text, span.start) {
                        Some(key) => format!("{key}: {message}"),
                        None => message,
                    };
                    check.at(span, message)
                }
                None => check.whole_file(message),
            }
        })?;
        let config_dir = absolute_dir_of(path);

        let server = check_server(&check, raw.server)?;
        let store = check_store(&check, &config_dir, raw.store)?;
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
                title: check.title(raw_source.title.as_ref(), "[[source]] title")?,
                schedule,
                tags: raw_source.tags,
            });
        }

        if raw.feed.is_empty() {
            return Err(check.whole_file(
                "no [[feed]] is configured: add at least one, e.g. a [[feed]] table with name = \"all\" and title = \"All news\"",
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
            let limit = check.integer(
                &raw_feed.limit,
                "[[feed]] limit",
                FEED_LIMIT_RANGE,
                DEFAULT_FEED_LIMIT as i64,
            )? as usize;
            // A flooding source may take half the document, never all of it.
            let default_cap = if selected.len() > 1 {
                limit.div_ceil(2)
            } else {
                limit
            };
            let max_per_source = check.integer(
                &raw_feed.max_per_source,
                "[[feed]] max_per_source",
                FEED_LIMIT_RANGE,
                default_cap as i64,
            )? as usize;
            feeds.push(FeedConfig {
                title: check
                    .title(raw_feed.title.as_ref(), "[[feed]] title")?
                    .unwrap_or_else(|| name.clone()),
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
    pub(crate) fn source(&self, name: &str) -> Option<&SourceConfig> {
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

fn check_store(
    check: &Checker,
    config_dir: &Path,
    raw: RawStore,
) -> Result<StoreConfig, ConfigError> {
    let path = match &raw.path {
        Some(path) if path.get_ref().trim().is_empty() || path.get_ref().contains('\0') => {
            return Err(check.at(
                path.span(),
                "[store] path must name a directory, e.g. \"/var/lib/feedmill\"",
            ))
        }
        Some(path) => join_clean(config_dir, path.get_ref()),
        None => join_clean(config_dir, DEFAULT_STORE_PATH),
    };
    Ok(StoreConfig {
        path,
        max_age_days: check.integer(
            &raw.max_age_days,
            "[store] max_age_days",
            MAX_AGE_DAYS_RANGE,
            365,
        )? as u32,
        max_items_per_source: check.integer(
            &raw.max_items_per_source,
            "[store] max_items_per_source",
            MAX_ITEMS_RANGE,
            1000,
        )? as u32,
        cache: match &raw.cache {
            Some(size) => check.size(size, "[store] cache", CACHE_RANGE)?,
            None => DEFAULT_CACHE,
        },
        match_window: check.integer(
            &raw.match_window,
            "[store] match_window",
            MATCH_WINDOW_RANGE,
            DEFAULT_MATCH_WINDOW as i64,
        )? as usize,
        engine: check_engine(check, &raw)?,
        pool: check.integer(&raw.pool, "[store] pool", POOL_RANGE, DEFAULT_POOL as i64)? as u32,
        lease: match &raw.lease {
            Some(lease) => check.duration(lease, "[store] lease", LEASE_RANGE)?,
            None => DEFAULT_LEASE,
        },
        replica: match &raw.replica {
            Some(name) => {
                let text = name.get_ref().trim();
                if text.is_empty() || text.len() > 200 || text.chars().any(char::is_control) {
                    return Err(check.at(
                        name.span(),
                        "[store] replica must be a short name without control characters, e.g. \"web-1\"",
                    ));
                }
                text.to_string()
            }
            None => default_replica(),
        },
    })
}

/// `[store] engine` and `url`: a PostgreSQL URL must be one libpq reads, and never carries
/// the password (config files are read by more people than secrets should be).
fn check_engine(check: &Checker, raw: &RawStore) -> Result<Engine, ConfigError> {
    let engine = raw.engine.as_ref();
    match engine.map(|e| e.get_ref().as_str()) {
        None | Some("sled") => {
            if let Some(url) = &raw.url {
                return Err(check.at(
                    url.span(),
                    "[store] url is for engine = \"postgres\"; the sled engine keeps the store in [store] path (remove url, or set engine = \"postgres\")",
                ));
            }
            Ok(Engine::Sled)
        }
        Some("postgres") => {
            let Some(url) = &raw.url else {
                let span = engine.map(Spanned::span).unwrap_or_default();
                return Err(check.at(
                    span,
                    "engine = \"postgres\" needs [store] url, e.g. url = \"postgres://feedmill@db.internal/feedmill\"",
                ));
            };
            let text = url.get_ref();
            let parsed = Url::parse(text).ok().filter(|u| {
                matches!(u.scheme(), "postgres" | "postgresql")
            });
            let Some(parsed) = parsed else {
                return Err(check.at(
                    url.span(),
                    format!("[store] url {text:?} is not a postgres:// URL; write e.g. \"postgres://feedmill@db.internal/feedmill\""),
                ));
            };
            let password_in_query = parsed.query_pairs().any(|(k, _)| k == "password");
            if parsed.password().is_some() || password_in_query {
                return Err(check.at(
                    url.span(),
                    "[store] url must not carry the password: remove it, and give it in PGPASSWORD or a .pgpass file",
                ));
            }
            Ok(Engine::Postgres { url: text.clone() })
        }
        Some(other) => Err(check.at(
            engine.map(Spanned::span).unwrap_or_default(),
            format!("[store] engine {other:?} is not one feedmill has: write \"sled\" (the default) or \"postgres\""),
        )),
    }
}

fn check_server(check: &Checker, raw: RawServer) -> Result<ServerConfig, ConfigError> {
    let listen = match &raw.listen {
        Some(listen) => {
            let addr = listen.get_ref().parse::<SocketAddr>().map_err(|_| {
                check.at(
                    listen.span(),
                    format!(
                        "listen address {:?} is not IP:PORT, e.g. \"127.0.0.1:8080\"",
                        listen.get_ref()
                    ),
                )
            })?;
            if addr.port() == 0 {
                return Err(check.at(
                    listen.span(),
                    format!(
                        "listen address {:?} has port 0 (a port the system picks, which no reader can know): name a port, e.g. \"127.0.0.1:8080\"",
                        listen.get_ref()
                    ),
                ));
            }
            if addr.ip().is_multicast() {
                return Err(check.at(
                    listen.span(),
                    format!("listen address {:?} is a multicast address: use this host's address, e.g. \"127.0.0.1:8080\" or \"0.0.0.0:8080\"", listen.get_ref()),
                ));
            }
            addr
        }
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
            let wrong = if !matches!(url.scheme(), "http" | "https") {
                Some("must be an http or https URL")
            } else if url.host_str().is_none_or(str::is_empty) {
                Some("has no host")
            } else if url.query().is_some() || url.fragment().is_some() {
                Some("must not have a query (?) or fragment (#): self links are made by appending to it")
            } else if !url.username().is_empty() || url.password().is_some() {
                Some("must not carry a user name or password: every reader would see them")
            } else {
                None
            };
            if let Some(wrong) = wrong {
                return Err(check.at(
                    base.span(),
                    format!(
                        "base_url {:?} {wrong}; write the public URL readers use, e.g. \"https://news.example.org/\"",
                        base.get_ref()
                    ),
                ));
            }
            url
        }
        None if listen.ip().is_unspecified() => {
            let span = raw.listen.as_ref().map(Spanned::span).unwrap_or_default();
            return Err(check.at(
                span,
                format!(
                    "listen {listen} is every interface, which makes no URL for the feeds' self links: set [server] base_url to the public URL readers use"
                ),
            ));
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
        Some(t) => check.duration(t, "[server] header_timeout", TIMEOUT_RANGE)?,
        None => Duration::from_secs(10),
    };
    let write_timeout = match &raw.write_timeout {
        Some(t) => check.duration(t, "[server] write_timeout", TIMEOUT_RANGE)?,
        None => Duration::from_secs(30),
    };
    let max_connections = check.integer(
        &raw.max_connections,
        "[server] max_connections",
        CONNECTIONS_RANGE,
        DEFAULT_MAX_CONNECTIONS as i64,
    )? as usize;
    let max_connections_per_ip = check.integer(
        &raw.max_connections_per_ip,
        "[server] max_connections_per_ip",
        CONNECTIONS_RANGE,
        DEFAULT_MAX_CONNECTIONS_PER_IP as i64,
    )? as usize;
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
        title: check
            .title(raw.title.as_ref(), "[server] title")?
            .unwrap_or_else(|| "feedmill".to_string()),
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
        Some(t) => check.duration(t, "[fetch] timeout", TIMEOUT_RANGE)?,
        None => Duration::from_secs(30),
    };
    let max_body = match &raw.max_body {
        Some(size) => check.size(size, "[fetch] max_body", MAX_BODY_RANGE)?,
        None => 8 * 1024 * 1024,
    };
    let user_agent = match &raw.user_agent {
        Some(agent) => check_user_agent(check, agent)?,
        None => DEFAULT_USER_AGENT.to_string(),
    };
    Ok(FetchConfig {
        schedule,
        timeout,
        max_body,
        concurrency: check.integer(
            &raw.concurrency,
            "[fetch] concurrency",
            CONCURRENCY_RANGE,
            32,
        )? as usize,
        per_host: check.integer(&raw.per_host, "[fetch] per_host", PER_HOST_RANGE, 2)? as usize,
        user_agent,
        allow_private: raw.allow_private.unwrap_or(false),
    })
}

/// The `User-Agent` must be one valid header value: a CR or LF would end the header (and
/// could start another), and reqwest refuses the client outright on any control character.
fn check_user_agent(check: &Checker, agent: &Spanned<String>) -> Result<String, ConfigError> {
    let text = agent.get_ref();
    let wrong = if text.trim().is_empty() {
        Some("is empty".to_string())
    } else if let Some(c) = text.chars().find(|c| c.is_control()) {
        Some(format!("contains the control character {c:?}"))
    } else if text.len() > USER_AGENT_MAX {
        Some(format!(
            "is {} bytes long (at most {USER_AGENT_MAX})",
            text.len()
        ))
    } else if reqwest::header::HeaderValue::from_str(text).is_err() {
        Some("is not a valid header value".to_string())
    } else {
        None
    };
    match wrong {
        None => Ok(text.clone()),
        Some(wrong) => Err(check.at(
            agent.span(),
            format!(
                "[fetch] user_agent {text:?} {wrong}: write one line of text, e.g. \"{DEFAULT_USER_AGENT}\""
            ),
        )),
    }
}

/// Parses a source URL. It must name its scheme: http, https or file. A relative `file:`
/// reference (`file:feeds/a.xml`) is taken from the config file's directory, so a config and
/// its local feeds can move together. Text with no scheme at all (`feeds/a.xml`,
/// `https//example.org/feed`, `ftp//nope`) is an error: it would silently become a path.
fn check_source_url(
    check: &Checker,
    raw: &Spanned<String>,
    config_url: Option<&Url>,
) -> Result<Url, ConfigError> {
    let text = raw.get_ref();
    let Some(scheme) = scheme_of(text) else {
        return Err(check.at(
            raw.span(),
            format!(
                "url {text:?} has no scheme: write an http:// or https:// URL, or file:PATH for a file (a relative PATH is taken from this file's directory)"
            ),
        ));
    };
    let base = if scheme.eq_ignore_ascii_case("file") {
        config_url
    } else {
        None
    };
    let url = Url::options()
        .base_url(base)
        .parse(text)
        .map_err(|err| check.at(raw.span(), format!("url {text:?} is not a URL: {err}")))?;
    match url.scheme() {
        "http" | "https" if url.host_str().is_some_and(|h| !h.is_empty()) => Ok(url),
        "file" => Ok(url),
        _ => Err(check.at(
            raw.span(),
            format!("url {text:?} is not supported: use an http://, https:// or file: URL"),
        )),
    }
}

/// The scheme `text` starts with (`scheme:` as RFC 3986 spells it), if any.
fn scheme_of(text: &str) -> Option<&str> {
    let (scheme, _) = text.trim_start().split_once(':')?;
    let mut bytes = scheme.bytes();
    let first = bytes.next()?;
    (first.is_ascii_alphabetic()
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
    .then_some(scheme)
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
pub(crate) struct SharedConfig(Arc<RwLock<Arc<Config>>>);

impl SharedConfig {
    /// Shares `config`.
    pub(crate) fn new(config: Config) -> SharedConfig {
        SharedConfig(Arc::new(RwLock::new(Arc::new(config))))
    }

    /// The config in force now.
    pub(crate) fn get(&self) -> Arc<Config> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Puts `config` in force.
    pub(crate) fn replace(&self, config: Arc<Config>) {
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
            err.contains(":2:11: [fetch] timeout \"soon\" is not a duration"),
            "{err}"
        );
        let err = error(&format!("[fetch]\nmax_body = \"huge\"\n{MINIMAL}"));
        assert!(
            err.contains(":2:12: [fetch] max_body \"huge\" is not a size"),
            "{err}"
        );
        let err = error(&format!("[server]\nlisten = \"localhost\"\n{MINIMAL}"));
        assert!(err.contains(":2:10: listen address"), "{err}");
        let err = error(&format!("[fetch]\nconcurrency = 0\n{MINIMAL}"));
        assert!(
            err.contains(":2:15: [fetch] concurrency = 0 is out of range: use 1 to 1024"),
            "{err}"
        );
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
        assert_eq!(config.store.cache, DEFAULT_CACHE);
        assert_eq!(config.store.match_window, DEFAULT_MATCH_WINDOW);
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
            "[store]\npath = \"../state\"\n[[source]]\nname = \"a\"\nurl = \"file:feeds/a.xml\"\n[[source]]\nname = \"b\"\nurl = \"file:../b.xml\"\n[[source]]\nname = \"c\"\nurl = \"file:///srv/c.xml\"\n[[feed]]\nname = \"all\"\n",
        )
        .expect("valid");
        assert_eq!(config.store.path, PathBuf::from("/etc/state"));
        assert_eq!(
            config.sources[0].url.as_str(),
            "file:///etc/feedmill/feeds/a.xml"
        );
        assert_eq!(config.sources[1].url.as_str(), "file:///etc/b.xml");
        assert_eq!(config.sources[2].url.as_str(), "file:///srv/c.xml");
    }

    #[test]
    fn a_url_with_no_scheme_is_an_error_not_a_path() {
        for url in [
            "ftp//nope",
            "https//example.org/feed",
            "feeds/b.xml",
            "/srv/a.xml",
        ] {
            let err = error(&MINIMAL.replace("https://a.example/feed.xml", url));
            assert!(err.contains(":4:7: url"), "{url}: {err}");
            assert!(err.contains("has no scheme"), "{url}: {err}");
        }
        let err = error(&MINIMAL.replace("https://a.example/feed.xml", "localhost:8080/feed"));
        assert!(err.contains("not supported"), "{err}");
    }

    /// `[section]` text, a key and a value that is out of its range, the column of the
    /// value in `key = value`, and what the message must say.
    const OUT_OF_RANGE: &[(&str, &str, &str)] = &[
        ("fetch", "concurrency", "4611686018427387904"),
        ("fetch", "concurrency", "1025"),
        ("fetch", "per_host", "4611686018427387904"),
        ("fetch", "per_host", "65"),
        ("fetch", "timeout", "\"1ns\""),
        ("fetch", "timeout", "\"999ms\""),
        ("fetch", "timeout", "\"2h\""),
        ("fetch", "max_body", "\"18446744073709551615B\""),
        ("fetch", "max_body", "\"184467440737095516150B\""),
        ("fetch", "max_body", "\"2GiB\""),
        ("fetch", "max_body", "\"1B\""),
        ("server", "header_timeout", "\"584542046090years\""),
        ("server", "header_timeout", "\"0s\""),
        ("server", "write_timeout", "\"584542046090years\""),
        ("server", "max_connections", "0"),
        ("server", "max_connections", "4611686018427387904"),
        ("server", "max_connections_per_ip", "65537"),
        ("store", "max_age_days", "4294967295"),
        ("store", "max_age_days", "-1"),
        ("store", "max_items_per_source", "4294967296"),
        ("store", "match_window", "1000001"),
        ("store", "cache", "\"18446744073709551615B\""),
        ("store", "cache", "\"1KiB\""),
    ];

    #[test]
    fn every_number_duration_and_size_has_a_range() {
        for (section, key, value) in OUT_OF_RANGE {
            let err = error(&format!("[{section}]\n{key} = {value}\n{MINIMAL}"));
            let col = key.len() + 4;
            assert!(
                err.contains(&format!(":2:{col}: [{section}] {key} ")),
                "{key} = {value}: {err}"
            );
            assert!(err.contains("out of range: use "), "{key} = {value}: {err}");
        }
        for (key, value) in [
            ("limit", "200000"),
            ("max_per_source", "0"),
            ("limit", "-5"),
        ] {
            let err = error(&format!("{MINIMAL}{key} = {value}\n"));
            assert!(
                err.contains(&format!(
                    ":8:{}: [[feed]] {key} = {value} is out of range: use 1 to 1000",
                    key.len() + 4
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn the_ends_of_every_range_are_valid() {
        let config = parse(&format!(
            "[server]\nheader_timeout = \"1h\"\nwrite_timeout = \"1s\"\nmax_connections = 65536\nmax_connections_per_ip = 1\n\
             [store]\nmax_age_days = 36525\nmax_items_per_source = 1000000\nmatch_window = 0\ncache = \"1GiB\"\n\
             [fetch]\nconcurrency = 1024\nper_host = 64\ntimeout = \"1s\"\nmax_body = \"1GiB\"\n\
             {MINIMAL}limit = 1000\nmax_per_source = 1\n"
        ))
        .expect("valid");
        assert_eq!(config.fetch.concurrency, 1024);
        assert_eq!(config.fetch.max_body, 1 << 30);
        assert_eq!(config.store.max_age_days, 36_525);
        assert_eq!(config.feeds[0].limit, 1000);
    }

    #[test]
    fn integers_toml_cannot_hold_name_their_key() {
        let err = error(&format!(
            "[fetch]\nconcurrency = 18446744073709551615\n{MINIMAL}"
        ));
        assert!(err.contains(":2:15: [fetch] concurrency: "), "{err}");
        let err = error(&format!("[store]\nmax_age_days = \"forever\"\n{MINIMAL}"));
        assert!(err.contains(":2:16: [store] max_age_days: "), "{err}");
        assert!(err.contains("expected an integer"), "{err}");
    }

    #[test]
    fn the_user_agent_is_one_header_value() {
        for agent in [
            "bot\\r\\nX-Injected: 1",
            "bot\\n",
            "bot\\u0000",
            "  ",
            "a\\tb",
        ] {
            let err = error(&format!("[fetch]\nuser_agent = \"{agent}\"\n{MINIMAL}"));
            assert!(err.contains(":2:14: [fetch] user_agent "), "{agent}: {err}");
        }
        let config = parse(&format!(
            "[fetch]\nuser_agent = \"Bücherbot/1.0 (+mailto:a@b.example)\"\n{MINIMAL}"
        ))
        .expect("valid");
        assert!(config.fetch.user_agent.starts_with("Bücherbot"));
    }

    #[test]
    fn titles_are_one_line_of_text() {
        let err = error(&format!("[server]\ntitle = \"a\\u0001b\"\n{MINIMAL}"));
        assert!(err.contains(":2:9: [server] title contains"), "{err}");
        let err = error(&format!("{MINIMAL}title = \"two\\nlines\"\n"));
        assert!(err.contains(":8:9: [[feed]] title contains"), "{err}");
    }

    #[test]
    fn schedules_that_never_fire_are_errors() {
        for expr in ["0 0 30 2 *", "0 0 0 1 1 * 2001", "0 0 0 1 1 * 2099"] {
            let err = error(&format!("[fetch]\nschedule = \"{expr}\"\n{MINIMAL}"));
            assert!(err.contains(":2:12: bad schedule"), "{expr}: {err}");
        }
        parse(&format!("[fetch]\nschedule = \"0 0 1 1 *\"\n{MINIMAL}")).expect("yearly is valid");
    }

    #[test]
    fn listen_and_base_url_oddities_are_errors() {
        let cases = [
            ("listen = \"127.0.0.1:0\"", ":2:10:", "port 0"),
            (
                "listen = \"0.0.0.0:8080\"",
                ":2:10:",
                "set [server] base_url",
            ),
            ("listen = \"[::]:8080\"", ":2:10:", "set [server] base_url"),
            ("listen = \"224.0.0.1:8080\"", ":2:10:", "multicast"),
            ("base_url = \"https://x.example/?a=b\"", ":2:12:", "query"),
            (
                "base_url = \"https://x.example/#top\"",
                ":2:12:",
                "fragment",
            ),
            (
                "base_url = \"https://me:secret@x.example/\"",
                ":2:12:",
                "password",
            ),
            ("base_url = \"ftp://x.example/\"", ":2:12:", "http or https"),
        ];
        for (line, place, what) in cases {
            let err = error(&format!("[server]\n{line}\n{MINIMAL}"));
            assert!(err.contains(place) && err.contains(what), "{line}: {err}");
        }
        let config = parse(&format!(
            "[server]\nlisten = \"0.0.0.0:8080\"\nbase_url = \"https://news.example/planet\"\n{MINIMAL}"
        ))
        .expect("valid");
        assert_eq!(
            config.server.base_url.as_str(),
            "https://news.example/planet/"
        );
    }

    #[test]
    fn names_are_bounded() {
        let long = "a".repeat(NAME_MAX + 1);
        let err = error(&MINIMAL.replace("name = \"a\"", &format!("name = \"{long}\"")));
        assert!(err.contains(":3:8: source name"), "{err}");
        assert!(err.contains("at most 64"), "{err}");
    }

    #[test]
    fn every_error_is_one_line() {
        let texts = [
            "[server]\nlisten = \n".to_string(),
            "[fetch]\nconcurrency = [1,\n".to_string(),
            "x = \"unterminated\n".to_string(),
            "[[source]]\nname = \"a\"\nurl = \"https://a.example/\"\n".to_string(),
            format!("[fetch]\nmax_body = \"huge\"\n{MINIMAL}"),
            format!("[fetch]\ntimeout = \"soon\"\n{MINIMAL}"),
            format!("{MINIMAL}include = [\"(unclosed\"]\n"),
        ];
        for text in texts {
            let err = error(&text);
            assert!(
                !err.contains('\n') && !err.contains('\r'),
                "{text:?} gave {err:?}"
            );
        }
        let err = Config::load(Path::new("/nonexistent/feedmill.toml"))
            .expect_err("no such file")
            .to_string();
        assert!(!err.contains('\n'), "{err:?}");
        assert!(err.contains("-c FILE"), "{err}");
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
