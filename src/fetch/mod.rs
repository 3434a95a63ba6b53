//! Fetching: one HTTP(S) or `file://` request per source, bounded in time, size and concurrency.
//!
//! Every read is bounded: the whole request (body included) by `timeout`, the body by
//! `max_body` counted after decompression (so a gzip bomb stops at the limit instead of
//! inflating), and the number of requests in flight by the refresh slots
//! ([`Fetcher::refresh_slot`], which every fetch is made under) and a per-host semaphore.
//! Content-Length is never trusted.
//!
//! Every request goes only to a public address ([`is_public`]), checked on every hop: the
//! source's URL, each redirect and each discovered feed link. Literal IP hosts are checked
//! here before the hop is sent; names are checked by the resolver the HTTP client connects
//! with ([`PublicOnly`]), so the address checked is the address connected to. The host and
//! port of the source's own configured URL are exempt when written as an address (an
//! operator who lists `http://10.0.0.5/feed` means it) or as a name local by construction
//! (`localhost`, a single label, [`LOCAL_DOMAINS`], a name in /etc/hosts), which still never
//! leads to a link-local (cloud metadata) address ([`NoMetadata`]). Any other configured
//! name must resolve to a public address like every other hop: its DNS is its owner's, who
//! could point it inside. `[fetch] allow_private` lifts the rule. A URL longer than [`MAX_URL_LEN`] is never sent, and a `file://` URL is
//! read only as the source's own configured URL.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap, HeaderValue};
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;
use url::Url;

use crate::config::FetchConfig;
use crate::model::{human_size, HopKind, RefreshFailure, Validators};

mod address;
use address::*;

/// Which hop of a fetch a URL is; a refused hop's error names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hop {
    /// The URL a source is fetched from: its configured URL, or where a 301/308 chain
    /// moved it.
    Start,
    /// A feed link of an HTML page (autodiscovery).
    FeedLink,
    /// The `Location` of a redirect.
    Redirect,
}

/// A successful fetch.
#[derive(Debug)]
pub(crate) enum FetchOutcome {
    /// The source has not changed since the validators were issued (HTTP 304).
    NotModified {
        /// How long the server says the document stays fresh.
        fresh_for: Option<Duration>,
    },
    /// A new body.
    Body(Box<FetchedBody>),
}

/// A body and what came with it.
#[derive(Debug)]
pub(crate) struct FetchedBody {
    /// The HTTP status (200 for files).
    pub(crate) status: u16,
    /// The body, decompressed.
    pub(crate) bytes: Bytes,
    /// The `Content-Type` header, if any (it may name the charset).
    pub(crate) content_type: Option<String>,
    /// The URL the body came from, after redirects.
    pub(crate) final_url: Url,
    /// Set when every redirect on the way was permanent (301/308): where the source now lives.
    pub(crate) moved_to: Option<Url>,
    /// The validators to send next time.
    pub(crate) validators: Validators,
    /// How long the server says the document stays fresh (`Cache-Control: max-age`, `Expires`).
    pub(crate) fresh_for: Option<Duration>,
}

/// Why a fetch failed. Its message, meant for the operator's eyes in `status.json`, is
/// that of its [`RefreshFailure`] (one wording for both).
#[derive(Debug)]
pub(crate) enum FetchError {
    /// The whole request took longer than `timeout`.
    Timeout(Duration),
    /// The body was longer than `max_body` once decompressed.
    TooLarge(u64),
    /// The server answered with an error status.
    Status {
        /// The status code.
        status: u16,
        /// Its canonical reason phrase.
        reason: Option<&'static str>,
        /// The server's `Retry-After`, for 429 and 503.
        retry_after: Option<Duration>,
    },
    /// Redirects went round in a circle or on for too long.
    RedirectLoop(String),
    /// A hop to a non-public address: never sent. The text names the host and port the hop
    /// asked for, and is the same whether anything listens there or not; for a name, the
    /// same whether it resolves to private addresses or to none at all, and it never says
    /// which addresses (`status.json` is public: it must not map the internal network's names).
    Refused {
        /// Which hop.
        hop: Hop,
        /// `host:port` as the hop's URL wrote it.
        target: String,
        /// Whether the host is a name (refused by the resolver) rather than an address.
        name: bool,
    },
    /// A hop whose URL is longer than [`MAX_URL_LEN`]: never sent, stored or quoted.
    UrlTooLong {
        /// Which hop.
        hop: Hop,
        /// The URL's length in bytes.
        len: usize,
    },
    /// The source's own configured host is a name that resolved only to link-local (cloud
    /// metadata) addresses: never sent.
    Metadata {
        /// Which hop.
        hop: Hop,
        /// `host:port` as the hop's URL wrote it.
        target: String,
    },
    /// The source's own configured host is a name that is not local by construction
    /// ([`LOCAL_DOMAINS`], a single label, a name in /etc/hosts) and has no public address:
    /// never sent. Whoever owns such a name decides where it points; the operator vouched
    /// for the name, not for an internal address its owner picks.
    OwnNamePrivate {
        /// Which hop.
        hop: Hop,
        /// `host:port` as the hop's URL wrote it.
        target: String,
    },
    /// A `file://` URL that is not the source's own configured one: never read.
    LocalFile {
        /// Which hop.
        hop: Hop,
        /// The URL.
        url: String,
    },
    /// Connecting, TLS, redirects or reading the body failed.
    Transport(String),
    /// A `file://` source could not be read.
    File {
        /// The local path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

impl FetchError {
    /// The HTTP status behind the error, if the server answered at all.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            FetchError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    #[cfg(test)]
    /// How long the server asked us to wait (429/503 `Retry-After`).
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            FetchError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the server never answered (connect, TLS, DNS, timeout): the failures that a
    /// network outage on our side causes too.
    pub(crate) fn no_answer(&self) -> bool {
        matches!(self, FetchError::Timeout(_) | FetchError::Transport(_))
    }
}

impl From<Hop> for HopKind {
    fn from(hop: Hop) -> HopKind {
        match hop {
            Hop::Start => HopKind::Start,
            Hop::FeedLink => HopKind::FeedLink,
            Hop::Redirect => HopKind::Redirect,
        }
    }
}

impl FetchError {
    /// The error as a refresh's failure: the same facts, and the message users read.
    pub(crate) fn failure(&self) -> RefreshFailure {
        match self {
            FetchError::Timeout(after) => RefreshFailure::TimedOut { after: *after },
            FetchError::TooLarge(limit) => RefreshFailure::TooLarge { limit: *limit },
            FetchError::Status {
                status,
                reason,
                retry_after,
            } => RefreshFailure::Status {
                status: *status,
                reason: *reason,
                retry_after: *retry_after,
            },
            FetchError::RedirectLoop(detail) => RefreshFailure::RedirectLoop {
                detail: detail.clone(),
            },
            FetchError::Refused { hop, target, name } => RefreshFailure::Refused {
                hop: (*hop).into(),
                target: target.clone(),
                name: *name,
            },
            FetchError::UrlTooLong { hop, len } => RefreshFailure::UrlTooLong {
                hop: (*hop).into(),
                len: *len,
                limit: MAX_URL_LEN,
            },
            FetchError::Metadata { target, .. } => RefreshFailure::Metadata {
                target: target.clone(),
            },
            FetchError::OwnNamePrivate { target, .. } => RefreshFailure::OwnNamePrivate {
                target: target.clone(),
                local_names: local_names(),
            },
            FetchError::LocalFile { hop, url } => RefreshFailure::LocalFile {
                hop: (*hop).into(),
                url: url.clone(),
            },
            FetchError::Transport(message) => RefreshFailure::Transport {
                message: message.clone(),
            },
            FetchError::File { path, source } => RefreshFailure::File {
                path: path.clone(),
                message: source.to_string(),
            },
        }
    }
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.failure().fmt(f)
    }
}

impl std::error::Error for FetchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FetchError::File { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The facts of a fetch error, for a refresh's outcome and metrics. A 410 stays a status
/// here: only the source's own URL answering it disables the source, which the refresh
/// decides.
impl From<FetchError> for RefreshFailure {
    fn from(err: FetchError) -> RefreshFailure {
        err.failure()
    }
}

/// The fetcher shared by all sources.
pub(crate) struct Fetcher {
    /// Connects anywhere: for hops to the source's own configured host and port, and for
    /// everything under `allow_private`.
    open: reqwest::Client,
    /// Connects only to public addresses (its resolver drops the others); `None` under
    /// `allow_private`.
    guarded: Option<reqwest::Client>,
    /// For hops to the source's own configured host and port when that host is a name local
    /// by construction ([`local_by_construction`]): connects wherever the name resolves but
    /// to a link-local (cloud metadata) address ([`is_metadata`]); no feed is served by a
    /// metadata service, and a local name's records (mDNS, a router's DNS) are not always
    /// the operator's either. Any other configured name goes through `guarded`. `None`
    /// under `allow_private`.
    own_name: Option<reqwest::Client>,
    /// The names the hosts file lists, read once when the fetcher is built: local by
    /// construction, as `localhost` is.
    hosts: HashSet<String>,
    timeout: Duration,
    max_body: u64,
    /// Refreshes under way (fetch, parse, store), at most `concurrency`, and so the requests
    /// in flight too: a fetched body and
    /// its parsed entries are held until stored, so this bounds the memory of a start with
    /// thousands of sources due at once (without it, 800 MiB for ten thousand).
    refreshing: Semaphore,
    /// Parses and commits at once: [`CPU_SLOTS_PER_CORE`] per core.
    cpu_work: Semaphore,
    /// First refreshes (nothing stored yet) under way: [`COLD_SLOTS_PER_CORE`] per core, at
    /// most `concurrency`. Taken before a refresh slot, so warm refreshes are never queued
    /// behind them.
    cold: Semaphore,
    per_host_limit: usize,
    per_host: Mutex<HashMap<String, Arc<Semaphore>>>,
    /// When any server last answered anything (ms since the epoch; 0: never).
    last_answer_ms: AtomicI64,
}

/// How recently some server must have answered for a silent one to count as failing,
/// rather than our own network being down.
const NETWORK_WINDOW: Duration = Duration::from_secs(15 * 60);

/// The most redirects followed before a fetch fails (reqwest's default, and Miniflux's).
const MAX_REDIRECTS: usize = 10;
/// The longest URL a hop may have, in bytes. A publisher's feed link or `Location` may be
/// megabytes long; such a URL must not be sent, become a source's stored URL (shown in
/// `status.json`, OPML and every output feed) or be quoted in an error. Servers refuse
/// request lines this long anyway (nginx and Apache stop at 8 KiB).
pub(crate) const MAX_URL_LEN: usize = 8 * 1024;
/// How many hosts the per-host limits may remember before idle ones are forgotten.
const PER_HOST_PRUNE_AT: usize = 1024;
/// Connecting alone should never take most of the request's time.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses and commits at once per core. Not one: a commit also waits (for sled's log, for
/// the allocator), and with one per core a cold refresh left the cores idle a quarter of
/// the time; three took 25 % off its time, four no more. Each holds its entries in memory,
/// so the number stays small.
const CPU_SLOTS_PER_CORE: usize = 3;

/// First refreshes of sources at once per core. Such a refresh stores its whole document
/// as new entries, and while thousands are new at once (a reload adding ten thousand
/// sources) the store's garbage grows with the writers under way: ten thousand new sources
/// of 100 items peaked at 249–273 MiB with 32 refreshes at once and 205 MiB with 8 (see
/// docs/benchmarks.md, "Memory under the unit's `MemoryHigh=256M`").
const COLD_SLOTS_PER_CORE: usize = 4;

fn cores() -> usize {
    std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
}

impl Fetcher {
    /// Builds the HTTP client with the configured limits, and reads the names /etc/hosts
    /// lists (local by construction: a source configured by one of them may be private).
    pub(crate) fn new(config: &FetchConfig) -> Result<Fetcher, FetchError> {
        Fetcher::build(config, Path::new(HOSTS_FILE), Lookup::System)
    }

    /// [`Fetcher::new`] with the hosts file at `hosts_file` and names resolved by `lookup`.
    fn build(
        config: &FetchConfig,
        hosts_file: &Path,
        lookup: Lookup,
    ) -> Result<Fetcher, FetchError> {
        let builder = || {
            reqwest::Client::builder()
                .user_agent(config.user_agent.clone())
                .timeout(config.timeout)
                .connect_timeout(CONNECT_TIMEOUT.min(config.timeout))
                // Redirects are followed by hand, to learn whether a chain was permanent, to
                // refuse anything but http(s) targets and to check each hop's address.
                .redirect(reqwest::redirect::Policy::none())
                // A proxy (from HTTP_PROXY and the like) would connect to an address we
                // never checked.
                .no_proxy()
                .gzip(true)
                .deflate(true)
                .brotli(true)
        };
        let build = |builder: reqwest::ClientBuilder| {
            builder
                .build()
                .map_err(|err| FetchError::Transport(format!("cannot build HTTP client: {err}")))
        };
        let (guarded, own_name) = if config.allow_private {
            (None, None)
        } else {
            (
                Some(build(
                    builder().dns_resolver(Arc::new(PublicOnly(lookup.clone()))),
                )?),
                Some(build(builder().dns_resolver(Arc::new(NoMetadata(lookup))))?),
            )
        };
        Ok(Fetcher {
            open: build(builder())?,
            guarded,
            own_name,
            // Only a name that is exempt reads it; under allow_private every hop is.
            hosts: if config.allow_private {
                HashSet::new()
            } else {
                read_hosts_file(hosts_file)
            },
            timeout: config.timeout,
            max_body: config.max_body,
            refreshing: Semaphore::new(config.concurrency),
            cpu_work: Semaphore::new(CPU_SLOTS_PER_CORE * cores()),
            cold: Semaphore::new((COLD_SLOTS_PER_CORE * cores()).min(config.concurrency)),
            per_host_limit: config.per_host,
            per_host: Mutex::new(HashMap::new()),
            last_answer_ms: AtomicI64::new(0),
        })
    }

    /// Fetches `url` (the `hop` of a refresh of the source configured at `source_url`),
    /// sending `validators` (their `etag` and `last_modified`) for a conditional GET. Every
    /// hop must go to a public address, but for those to `source_url`'s own host and port
    /// when written as an address or as a name local by construction.
    /// Call it under a [`Fetcher::refresh_slot`]: that is what bounds the requests in flight.
    pub(crate) async fn fetch(
        &self,
        url: &Url,
        hop: Hop,
        source_url: &Url,
        validators: &Validators,
    ) -> Result<FetchOutcome, FetchError> {
        if url.as_str().len() > MAX_URL_LEN {
            return Err(FetchError::UrlTooLong {
                hop,
                len: url.as_str().len(),
            });
        }
        if url.scheme() == "file" {
            // The operator named this file; nothing a server sent may name another. Redirects
            // and discovery refuse `file:` too, but reading local files is this module's
            // door, so it is checked here, whatever hop the URL came from.
            if hop != Hop::Start || url != source_url {
                return Err(FetchError::LocalFile {
                    hop,
                    url: url.to_string(),
                });
            }
            return self.fetch_file(url, validators).await;
        }
        let host_slots = self.host_semaphore(url.host_str().unwrap_or_default());
        // Semaphores are never closed, so acquiring cannot fail; a closed one would only
        // mean no limit, which is the safer failure for a fetch in progress.
        let _host = host_slots.acquire().await.ok();
        let fetching = self.fetch_http(url, hop, source_url, validators);
        match tokio::time::timeout(self.timeout, fetching).await {
            Ok(result) => result,
            Err(_) => Err(FetchError::Timeout(self.timeout)),
        }
    }

    /// A slot for one refresh of a source, from its fetch to its commit. Semaphores are never
    /// closed, so this always gets one (after waiting its turn).
    pub(crate) async fn refresh_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.refreshing.acquire().await.ok()
    }

    /// A slot for a source's first refresh (nothing of it stored yet), taken before its
    /// [`Fetcher::refresh_slot`]; see [`COLD_SLOTS_PER_CORE`].
    pub(crate) async fn cold_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.cold.acquire().await.ok()
    }

    /// A slot for CPU-bound work (parsing, storing); see [`Fetcher::refresh_slot`].
    pub(crate) async fn cpu_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.cpu_work.acquire().await.ok()
    }

    /// Whether any server answered (with any status) within the last fifteen minutes.
    pub(crate) fn network_answered_recently(&self) -> bool {
        let last = self.last_answer_ms.load(Ordering::Relaxed);
        last > 0 && now_ms().saturating_sub(last) < NETWORK_WINDOW.as_millis() as i64
    }

    fn host_semaphore(&self, host: &str) -> Arc<Semaphore> {
        let mut hosts = self.per_host.lock().unwrap_or_else(|p| p.into_inner());
        // A page may link to a new host on every fetch: forget the hosts nobody is fetching
        // from, so the map holds about as many hosts as there are sources.
        let host = host.to_ascii_lowercase();
        if hosts.len() >= PER_HOST_PRUNE_AT && !hosts.contains_key(&host) {
            hosts.retain(|_, slots| Arc::strong_count(slots) > 1);
        }
        hosts
            .entry(host)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_host_limit)))
            .clone()
    }

    /// The client a hop may go through, or why it may not go at all: all hops under
    /// `allow_private`, and hops to the source's own host and port written as an address, go
    /// anywhere; hops to its own host and port written as a name local by construction go
    /// anywhere that name resolves but to a link-local (cloud metadata) address; any other
    /// literal IP (which no resolver ever sees) must be public; any other name, the source's
    /// own included, goes through the client whose resolver keeps only public addresses.
    fn client_for(
        &self,
        url: &Url,
        hop: Hop,
        source_url: &Url,
    ) -> Result<&reqwest::Client, FetchError> {
        let Some(guarded) = &self.guarded else {
            return Ok(&self.open);
        };
        if same_host_and_port(url, source_url) {
            return Ok(match (url.host(), &self.own_name) {
                (Some(url::Host::Domain(name)), Some(own_name))
                    if local_by_construction(name, &self.hosts) =>
                {
                    own_name
                }
                (Some(url::Host::Domain(_)), _) => guarded,
                _ => &self.open,
            });
        }
        let literal = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            // The url crate already reads every IPv4 spelling (`2130706433`, `0x7f.1`) as an
            // address; this only guards against a name the connector would read as one.
            Some(url::Host::Domain(name)) => name.parse::<IpAddr>().ok(),
            None => None,
        };
        match literal {
            Some(ip) if !is_public(ip) => Err(FetchError::Refused {
                hop,
                target: host_and_port(url),
                name: false,
            }),
            _ => Ok(guarded),
        }
    }

    async fn fetch_http(
        &self,
        url: &Url,
        first_hop: Hop,
        source_url: &Url,
        validators: &Validators,
    ) -> Result<FetchOutcome, FetchError> {
        let mut current = url.clone();
        let mut visited = vec![current.clone()];
        let mut all_permanent = true;
        let mut hop = first_hop;
        let response = loop {
            let client = self.client_for(&current, hop, source_url)?;
            let own = same_host_and_port(&current, source_url);
            let response = self.send(client, &current, hop, own, validators).await?;
            let status = response.status();
            if !status.is_redirection() || status == reqwest::StatusCode::NOT_MODIFIED {
                break response;
            }
            let next = response
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|location| current.join(location).ok())
                .ok_or_else(|| {
                    FetchError::Transport(format!("HTTP {status} without a usable Location header"))
                })?;
            if next.as_str().len() > MAX_URL_LEN {
                return Err(FetchError::UrlTooLong {
                    hop: Hop::Redirect,
                    len: next.as_str().len(),
                });
            }
            if !matches!(next.scheme(), "http" | "https") {
                return Err(FetchError::Transport(format!(
                    "redirect to {next} refused: only http and https are followed"
                )));
            }
            if visited.contains(&next) {
                return Err(FetchError::RedirectLoop(format!(
                    "{next} redirects back to itself"
                )));
            }
            if visited.len() > MAX_REDIRECTS {
                return Err(FetchError::RedirectLoop(format!(
                    "more than {MAX_REDIRECTS} redirects, last to {next}"
                )));
            }
            all_permanent &= matches!(status.as_u16(), 301 | 308);
            visited.push(next.clone());
            current = next;
            hop = Hop::Redirect;
        };
        let moved_to = (all_permanent && visited.len() > 1).then(|| current.clone());
        let status = response.status();
        let headers = response.headers().clone();
        let fresh_for = freshness(&headers);
        if status == reqwest::StatusCode::NOT_MODIFIED {
            return Ok(FetchOutcome::NotModified { fresh_for });
        }
        if !status.is_success() {
            let retry_after = matches!(status.as_u16(), 429 | 503)
                .then(|| header_string(&headers, header::RETRY_AFTER))
                .flatten()
                .and_then(|v| parse_retry_after(&v, SystemTime::now()));
            return Err(FetchError::Status {
                status: status.as_u16(),
                reason: status.canonical_reason(),
                retry_after,
            });
        }
        let mut body = BytesMut::new();
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|err| self.transport(err))?;
            if body.len() as u64 + chunk.len() as u64 > self.max_body {
                return Err(FetchError::TooLarge(self.max_body));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(FetchOutcome::Body(Box::new(FetchedBody {
            status: status.as_u16(),
            bytes: body.freeze(),
            content_type: header_string(&headers, header::CONTENT_TYPE),
            final_url: current,
            moved_to,
            validators: Validators {
                etag: header_string(&headers, header::ETAG),
                last_modified: header_string(&headers, header::LAST_MODIFIED),
                feed_link: None,
            },
            fresh_for,
        })))
    }

    /// Sends one hop; `own` when it goes to the source's own configured host and port.
    async fn send(
        &self,
        client: &reqwest::Client,
        url: &Url,
        hop: Hop,
        own: bool,
        validators: &Validators,
    ) -> Result<reqwest::Response, FetchError> {
        let mut request = client.get(url.clone()).header(
            header::ACCEPT,
            "application/atom+xml, application/rss+xml, application/feed+json, application/json;q=0.9, application/xml;q=0.9, text/xml;q=0.9, text/html;q=0.5, */*;q=0.1",
        );
        if let Some(etag) = &validators.etag {
            request = request.header(header::IF_NONE_MATCH, etag);
        }
        if let Some(last_modified) = &validators.last_modified {
            request = request.header(header::IF_MODIFIED_SINCE, last_modified);
        }
        let response = request.send().await.map_err(|err| {
            match find_cause::<NotPublic>(&err) {
                Some(refused) if refused.guard == Guard::NoMetadata => match refused.lookup {
                    // The source's own name did not resolve: as any failing lookup.
                    Some(_) => self.transport(err),
                    None => {
                        tracing::info!(host = %host_and_port(url), resolved = %refused, "hop refused");
                        FetchError::Metadata {
                            hop,
                            target: host_and_port(url),
                        }
                    }
                },
                // The source's own configured name, not local by construction, resolved
                // only to non-public addresses: its owner's choice, not the operator's.
                Some(refused) if own => match refused.lookup {
                    // It did not resolve: as any failing lookup (our DNS may be down).
                    Some(_) => self.transport(err),
                    None => {
                        tracing::info!(host = %host_and_port(url), resolved = %refused, "hop refused");
                        FetchError::OwnNamePrivate {
                            hop,
                            target: host_and_port(url),
                        }
                    }
                },
                // A stored URL whose name does not resolve may be our own DNS failing: a
                // transport error, which does not send the source back to its configured URL
                // and is excused while no server answers. On every other hop the publisher
                // chose the name, and whether it exists inside is not theirs to learn.
                Some(refused) if hop != Hop::Start || refused.lookup.is_none() => {
                    // The addresses are for the operator's log only.
                    tracing::info!(host = %host_and_port(url), resolved = %refused, "hop refused");
                    FetchError::Refused {
                        hop,
                        target: host_and_port(url),
                        name: true,
                    }
                }
                _ => self.transport(err),
            }
        })?;
        self.last_answer_ms.store(now_ms(), Ordering::Relaxed);
        Ok(response)
    }

    /// Local files answer like a server that sends `Last-Modified` from the file's mtime.
    async fn fetch_file(
        &self,
        url: &Url,
        validators: &Validators,
    ) -> Result<FetchOutcome, FetchError> {
        let path = url
            .to_file_path()
            .map_err(|()| FetchError::Transport(format!("{url} is not a local file path")))?;
        let file_error = |source| FetchError::File {
            path: path.display().to_string(),
            source,
        };
        let file = tokio::fs::File::open(&path).await.map_err(file_error)?;
        let modified = file
            .metadata()
            .await
            .and_then(|m| m.modified())
            .ok()
            .map(httpdate::fmt_http_date);
        if modified.is_some() && modified == validators.last_modified {
            return Ok(FetchOutcome::NotModified { fresh_for: None });
        }
        let mut bytes = Vec::new();
        file.take(self.max_body + 1)
            .read_to_end(&mut bytes)
            .await
            .map_err(file_error)?;
        if bytes.len() as u64 > self.max_body {
            return Err(FetchError::TooLarge(self.max_body));
        }
        Ok(FetchOutcome::Body(Box::new(FetchedBody {
            status: 200,
            bytes: Bytes::from(bytes),
            content_type: None,
            final_url: url.clone(),
            moved_to: None,
            validators: Validators {
                etag: None,
                last_modified: modified,
                feed_link: None,
            },
            fresh_for: None,
        })))
    }

    fn transport(&self, err: reqwest::Error) -> FetchError {
        if err.is_timeout() {
            return FetchError::Timeout(self.timeout);
        }
        // reqwest's Display names only the outermost layer; the causes say what happened.
        let mut message = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        FetchError::Transport(message)
    }
}

fn header_string(headers: &HeaderMap, name: header::HeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::to_string)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// `Retry-After` as a delay from `now`: delta-seconds or an HTTP-date.
pub(crate) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or_default())
}

/// How long a response says it stays fresh: `Cache-Control: max-age`, else `Expires`.
fn freshness(headers: &HeaderMap) -> Option<Duration> {
    let max_age = headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|directive| {
            let (name, value) = directive.split_once('=')?;
            (name.trim().eq_ignore_ascii_case("max-age"))
                .then(|| value.trim().trim_matches('"').parse::<u64>().ok())
                .flatten()
        });
    if let Some(seconds) = max_age {
        return Some(Duration::from_secs(seconds));
    }
    let expires = httpdate::parse_http_date(&header_string(headers, header::EXPIRES)?).ok()?;
    Some(
        expires
            .duration_since(SystemTime::now())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every non-public IPv4 block, written out apart from the code's table: the test of
    /// each edge below holds the code to it.
    const REFUSED_V4: &[&str] = &[
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    ];

    fn block(cidr: &str) -> (u32, u32) {
        let (net, len) = cidr.split_once('/').expect("cidr");
        let net = u32::from(net.parse::<Ipv4Addr>().expect("address"));
        let len: u32 = len.parse().expect("length");
        let last = net | (u32::MAX >> len);
        (net, last)
    }

    fn v4(bits: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(bits))
    }

    #[test]
    fn each_non_public_ipv4_block_is_refused_to_its_edges_and_not_beyond() {
        let blocks: Vec<(u32, u32)> = REFUSED_V4.iter().map(|c| block(c)).collect();
        let listed = |bits: u32| {
            blocks
                .iter()
                .any(|&(first, last)| first <= bits && bits <= last)
        };
        for (cidr, &(first, last)) in REFUSED_V4.iter().zip(&blocks) {
            let middle = first + (last - first) / 2;
            for inside in [first, middle, last] {
                assert!(!is_public(v4(inside)), "{} in {cidr} passed", v4(inside));
            }
            // Just outside: public, unless a neighbouring block is refused too.
            for outside in [first.checked_sub(1), last.checked_add(1)]
                .into_iter()
                .flatten()
            {
                assert_eq!(
                    is_public(v4(outside)),
                    !listed(outside),
                    "{} next to {cidr}",
                    v4(outside)
                );
            }
        }
    }

    #[test]
    fn named_ipv4_addresses() {
        for refused in [
            "127.0.0.1",
            "0.0.0.0",
            "169.254.169.254",
            "255.255.255.255",
            "10.0.0.5",
            "172.31.255.255",
            "192.168.1.1",
            "100.100.100.200",
            "239.255.255.250",
            "192.0.0.170",
            "198.19.1.1",
        ] {
            assert!(!is_public(refused.parse().expect("ip")), "{refused}");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.215.14",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.0.3.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
        ] {
            assert!(is_public(public.parse().expect("ip")), "{public}");
        }
    }

    #[test]
    fn ipv6_is_public_only_in_global_unicast_outside_its_special_blocks() {
        let cases: &[(&str, bool)] = &[
            ("::", false),
            ("::1", false),
            // link-local fe80::/10, both edges and beyond
            ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("fe80::", false),
            ("fe80::1", false),
            ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            // site-local fec0::/10
            ("fec0::", false),
            ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            // unique-local fc00::/7
            ("fc00::", false),
            ("fd12:3456::1", false),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            // multicast ff00::/8
            ("ff00::", false),
            ("ff02::1", false),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            // discard 100::/64
            ("100::", false),
            ("100::ffff:ffff:ffff:ffff", false),
            ("100:0:0:1::", false),
            // local-use NAT64 64:ff9b:1::/48, SRv6 5f00::/16
            ("64:ff9b:1::1", false),
            ("5f00::1", false),
            // global unicast 2000::/3: its edges
            ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("2000::", true),
            ("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("4000::", false),
            // IETF protocol assignments 2001::/23 (Teredo 2001::/32 among them)
            ("2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2001::", false),
            ("2001:0:4136:e378:8000:63bf:3fff:fdd2", false),
            ("2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("2001:200::", true),
            // documentation 2001:db8::/32 and 3fff::/20
            ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2001:db8::", false),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("2001:db9::", true),
            ("3ffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("3fff::", false),
            ("3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("3fff:1000::", true),
            // public
            ("2606:4700:4700::1111", true),
            ("2001:4860:4860::8888", true),
            ("2a00:1450:4001::200e", true),
        ];
        for &(ip, public) in cases {
            assert_eq!(is_public(ip.parse().expect("ip")), public, "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_that_carry_ipv4_are_judged_by_it() {
        let cases: &[(&str, bool)] = &[
            // IPv4-mapped ::ffff:0:0/96
            ("::ffff:127.0.0.1", false),
            ("::ffff:10.1.2.3", false),
            ("::ffff:169.254.169.254", false),
            ("::ffff:0.0.0.0", false),
            ("::ffff:8.8.8.8", true),
            // IPv4-compatible ::/96
            ("::127.0.0.1", false),
            ("::192.168.0.1", false),
            ("::8.8.8.8", true),
            // NAT64 64:ff9b::/96
            ("64:ff9b::7f00:1", false),
            ("64:ff9b::a9fe:a9fe", false),
            ("64:ff9b::808:808", true),
            // 6to4 2002::/16: the IPv4 address is in bits 16 to 48
            ("2002:7f00:1::", false),
            ("2002:a9fe:a9fe::1", false),
            ("2002:c0a8:101:1::1", false),
            ("2002:808:808::1", true),
            // not one of those forms: its own rules
            ("::1:0:0:1", false),
            ("::fffe:808:808", false),
            ("64:ff9a::808:808", false),
        ];
        for &(ip, public) in cases {
            assert_eq!(is_public(ip.parse().expect("ip")), public, "{ip}");
        }
    }

    fn fetch_config(allow_private: bool) -> FetchConfig {
        let text = format!(
            "[fetch]\nallow_private = {allow_private}\n\n[[feed]]\nname = \"all\"\ntitle = \"All\"\n"
        );
        let config = crate::config::Config::parse(std::path::Path::new("/x/feedmill.toml"), &text)
            .expect("config");
        assert_eq!(config.fetch.allow_private, allow_private);
        config.fetch
    }

    /// A fetcher with no hosts file (the machine's /etc/hosts is not the tests' to rely on)
    /// and the system's resolver.
    fn fetcher(allow_private: bool) -> Fetcher {
        Fetcher::build(
            &fetch_config(allow_private),
            Path::new("/nonexistent/feedmill-test/hosts"),
            Lookup::System,
        )
        .expect("fetcher")
    }

    fn url(text: &str) -> Url {
        Url::parse(text).expect("url")
    }

    #[test]
    fn literal_hosts_are_checked_in_every_spelling() {
        let fetcher = fetcher(false);
        let source = url("http://feeds.example/feed");
        for (location, target) in [
            ("http://127.0.0.1:9999/secret", "127.0.0.1:9999"),
            ("http://[::1]:9999/", "[::1]:9999"),
            ("http://2130706433:9999/", "127.0.0.1:9999"),
            ("http://0x7f.1/", "127.0.0.1:80"),
            ("http://0.0.0.0:9999/", "0.0.0.0:9999"),
            (
                "https://169.254.169.254/latest/meta-data/",
                "169.254.169.254:443",
            ),
            ("http://[::ffff:127.0.0.1]:9999/", "[::ffff:7f00:1]:9999"),
            ("http://[64:ff9b::a9fe:a9fe]/", "[64:ff9b::a9fe:a9fe]:80"),
        ] {
            match fetcher.client_for(&url(location), Hop::Redirect, &source) {
                Err(err @ FetchError::Refused { .. }) => assert!(
                    err.to_string()
                        .starts_with(&format!("redirect to a private address {target} refused")),
                    "{location}: {err}"
                ),
                other => panic!("{location}: {:?}", other.map(|_| ())),
            }
        }
        for public in [
            "http://8.8.8.8/feed",
            "http://feeds.example:8080/",
            "http://localhost/",
        ] {
            assert!(
                fetcher
                    .client_for(&url(public), Hop::Redirect, &source)
                    .is_ok(),
                "{public} (names are checked by the resolver)"
            );
        }
    }

    #[test]
    fn the_configured_host_and_port_are_exempt_and_allow_private_lifts_the_rule() {
        let fetcher = fetcher(false);
        let source = url("http://10.0.0.5/feed");
        for same in [
            "http://10.0.0.5/other",
            "http://10.0.0.5:80/x",
            "https://10.0.0.5:80/",
        ] {
            assert!(
                fetcher
                    .client_for(&url(same), Hop::Redirect, &source)
                    .is_ok(),
                "{same}"
            );
        }
        for other in [
            "http://10.0.0.5:8080/",
            "https://10.0.0.5/",
            "http://10.0.0.6/",
        ] {
            assert!(
                fetcher
                    .client_for(&url(other), Hop::Redirect, &source)
                    .is_err(),
                "{other}"
            );
        }
        let open = self::fetcher(true);
        assert!(open
            .client_for(&url("http://127.0.0.1:9999/"), Hop::Redirect, &source)
            .is_ok());
    }

    #[test]
    fn each_hop_is_named_when_refused() {
        let refused = |hop| {
            FetchError::Refused {
                hop,
                target: "127.0.0.1:9999".into(),
                name: false,
            }
            .to_string()
        };
        assert!(refused(Hop::Redirect)
            .starts_with("redirect to a private address 127.0.0.1:9999 refused"));
        assert!(refused(Hop::FeedLink)
            .starts_with("feed link of the HTML page to a private address 127.0.0.1:9999 refused"));
        assert!(refused(Hop::Start)
            .starts_with("stored URL at a private address 127.0.0.1:9999 refused"));
        assert!(refused(Hop::Redirect).contains("allow_private = true"));
        let name = FetchError::Refused {
            hop: Hop::Redirect,
            target: "db.internal:80".into(),
            name: true,
        };
        assert!(
            name.to_string().starts_with(
                "redirect to db.internal:80 refused: the name has no public address ("
            ),
            "{name}"
        );
        let err = FetchError::Refused {
            hop: Hop::Redirect,
            target: String::new(),
            name: false,
        };
        assert!(!err.no_answer(), "a refusal counts toward backoff");
    }

    #[test]
    fn of_a_name_that_resolves_to_public_and_private_addresses_only_the_public_are_kept() {
        let addr = |text: &str| text.parse::<SocketAddr>().expect("socket address");
        let mixed = vec![
            addr("127.0.0.1:0"),
            addr("93.184.215.14:0"),
            addr("[::1]:0"),
            addr("169.254.169.254:0"),
            addr("[2606:4700:4700::1111]:0"),
            addr("[::ffff:10.0.0.1]:0"),
        ];
        assert_eq!(
            keep("both.example", Ok(mixed), Guard::PublicOnly).expect("public ones"),
            [addr("93.184.215.14:0"), addr("[2606:4700:4700::1111]:0")]
        );
        let private = vec![addr("10.0.0.1:0"), addr("[fd00::1]:0"), addr("10.0.0.1:0")];
        let refused = keep("inside.example", Ok(private), Guard::PublicOnly).expect_err("refused");
        assert_eq!(refused.addresses.len(), 2, "{refused}");
        assert!(refused.lookup.is_none());
        let none = keep("empty.example", Ok(vec![]), Guard::PublicOnly).expect_err("refused");
        assert!(none
            .to_string()
            .contains("empty.example resolves to no address"));
        assert!(none.lookup.is_some(), "no address is a lookup failure");
    }

    #[test]
    fn link_local_and_cloud_metadata_addresses_are_told() {
        for metadata in [
            "169.254.169.254",
            "169.254.0.0",
            "169.254.255.255",
            "100.100.100.200",
            "192.0.0.192",
            "fe80::1",
            "febf:ffff::1",
            "fd00:ec2::254",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(is_metadata(metadata.parse().expect("ip")), "{metadata}");
        }
        for other in [
            "127.0.0.1",
            "10.0.0.5",
            "100.100.100.100",
            "169.253.255.255",
            "169.255.0.0",
            "192.0.0.191",
            "::1",
            "fd00:ec2::253",
            "fec0::1",
            "8.8.8.8",
        ] {
            assert!(!is_metadata(other.parse().expect("ip")), "{other}");
        }
    }

    /// The source's own configured name may resolve to private addresses (an intranet name,
    /// `localhost`), but its publisher controls its DNS: never to the metadata service.
    #[test]
    fn the_sources_own_name_never_leads_to_cloud_metadata() {
        let addr = |text: &str| text.parse::<SocketAddr>().expect("socket address");
        let resolved = vec![
            addr("169.254.169.254:0"),
            addr("10.0.0.5:0"),
            addr("[fe80::1]:0"),
            addr("127.0.0.1:0"),
            addr("[::ffff:169.254.169.254]:0"),
        ];
        assert_eq!(
            keep("blog.example", Ok(resolved), Guard::NoMetadata).expect("kept"),
            [addr("10.0.0.5:0"), addr("127.0.0.1:0")]
        );
        let rebound = vec![addr("169.254.169.254:0"), addr("[fd00:ec2::254]:0")];
        let refused = keep("blog.example", Ok(rebound), Guard::NoMetadata).expect_err("refused");
        assert_eq!(refused.guard, Guard::NoMetadata);
        assert!(refused.lookup.is_none(), "{refused}");
        let err = FetchError::Metadata {
            hop: Hop::Start,
            target: "blog.example:80".into(),
        };
        assert!(
            err.to_string().starts_with(
                "the source's own host blog.example:80 refused: its name resolves only to link-local addresses (cloud metadata)"
            ),
            "{err}"
        );
        assert!(!err.no_answer(), "a refusal counts toward backoff");

        let fetcher = fetcher(false);
        let own_name = fetcher.own_name.as_ref().expect("own-name client");
        let by_name = url("http://blog.internal/feed");
        for hop in ["http://blog.internal/other", "http://BLOG.internal:80/x"] {
            let client = fetcher
                .client_for(&url(hop), Hop::Redirect, &by_name)
                .expect("exempt");
            assert!(std::ptr::eq(client, own_name), "{hop}");
        }
        let by_address = url("http://169.254.169.254/latest/meta-data/");
        let client = fetcher
            .client_for(&by_address, Hop::Start, &by_address)
            .expect("an address the operator wrote");
        assert!(std::ptr::eq(client, &fetcher.open));
        let open = self::fetcher(true);
        let client = open
            .client_for(&url("http://blog.internal/x"), Hop::Start, &by_name)
            .expect("allow_private");
        assert!(std::ptr::eq(client, &open.open));
    }

    #[test]
    fn the_exemption_is_the_host_as_written_not_what_it_resolves_to() {
        let fetcher = fetcher(false);
        let by_name = url("http://localhost:8080/feed");
        let by_address = url("http://127.0.0.1:8080/feed");
        // Same port, the same machine, another spelling: not the configured host.
        assert!(matches!(
            fetcher.client_for(&by_address, Hop::Redirect, &by_name),
            Err(FetchError::Refused { name: false, .. })
        ));
        let guarded = fetcher.guarded.as_ref().expect("guarded client");
        for (hop, source) in [
            ("http://localhost:8080/x", &by_address),
            ("http://localhost.:8080/x", &by_name),
            ("http://LOCALHOST:8080/x", &by_address),
        ] {
            // A name goes through the client whose resolver refuses loopback.
            let client = fetcher
                .client_for(&url(hop), Hop::Redirect, source)
                .expect("to the resolver");
            assert!(std::ptr::eq(client, guarded), "{hop} from {source}");
        }
        // The configured name itself, on its port, is exempt; in any case, and over https.
        let own_name = fetcher.own_name.as_ref().expect("own-name client");
        for same in ["http://LocalHost:8080/other", "https://localhost:8080/"] {
            let client = fetcher
                .client_for(&url(same), Hop::Redirect, &by_name)
                .expect("exempt");
            assert!(std::ptr::eq(client, own_name), "{same}");
        }
        let client = fetcher
            .client_for(&url("http://127.0.0.1:8080/x"), Hop::Redirect, &by_address)
            .expect("exempt");
        assert!(std::ptr::eq(client, &fetcher.open));
    }

    #[tokio::test]
    async fn the_resolver_keeps_only_public_addresses() {
        use reqwest::dns::Resolve;
        let name = |n: &str| n.parse::<reqwest::dns::Name>().expect("name");
        let err = match PublicOnly::default().resolve(name("localhost")).await {
            Err(err) => err,
            Ok(addrs) => panic!("localhost resolved to {:?}", addrs.collect::<Vec<_>>()),
        };
        let refused = err.downcast_ref::<NotPublic>().expect("a NotPublic error");
        assert!(
            refused.addresses.contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)),
            "{refused}"
        );
    }

    /// What a publisher learns from a refused name: the name they chose, nothing more. Not
    /// whether it exists on the internal network, nor the addresses it maps to there.
    #[tokio::test]
    async fn a_refused_name_tells_neither_its_addresses_nor_whether_it_exists() {
        let fetcher = fetcher(false);
        let source = url("http://feeds.example/feed");
        let mut seen = Vec::new();
        // localhost resolves to loopback; .invalid never resolves (RFC 6761).
        for host in ["localhost", "nothing.invalid"] {
            for hop in [Hop::FeedLink, Hop::Redirect] {
                let err = fetcher
                    .fetch(
                        &url(&format!("http://{host}:9/secret")),
                        hop,
                        &source,
                        &Validators::default(),
                    )
                    .await
                    .expect_err("refused");
                let text = err.to_string();
                assert!(
                    matches!(err, FetchError::Refused { hop: h, name: true, .. } if h == hop),
                    "{text}"
                );
                assert!(
                    !text.contains("127.0.0.1") && !text.contains("::1"),
                    "{host}: {text}"
                );
                seen.push(text.replace(host, "HOST"));
            }
        }
        assert_eq!(
            seen[0],
            "feed link of the HTML page to HOST:9 refused: the name has no public address (only the source's own configured host and port may be private; [fetch] allow_private = true lifts the rule)"
        );
        assert_eq!(
            seen[..2],
            seen[2..],
            "a name that exists inside looks like one that does not"
        );
        // A stored URL (where a 301/308 chain once led) whose name does not resolve may be our
        // own DNS failing: that is no refusal, and does not reset the source.
        let err = fetcher
            .fetch(
                &url("http://nothing.invalid:9/feed"),
                Hop::Start,
                &source,
                &Validators::default(),
            )
            .await
            .expect_err("fails");
        assert!(
            matches!(err, FetchError::Transport(_)) && err.no_answer(),
            "{err}"
        );
        let err = fetcher
            .fetch(
                &url("http://localhost:9/feed"),
                Hop::Start,
                &source,
                &Validators::default(),
            )
            .await
            .expect_err("refused");
        assert!(
            matches!(
                err,
                FetchError::Refused {
                    hop: Hop::Start,
                    name: true,
                    ..
                }
            ),
            "{err}"
        );
    }

    /// Only the operator names a local file: a `file://` URL any other hop reaches (a feed
    /// link, a redirect, a stored URL that is not the configured one) is never read, whatever
    /// the module that found it let through.
    #[tokio::test]
    async fn a_local_file_is_read_only_as_the_sources_own_configured_url() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("secret.rss");
        std::fs::write(
            &path,
            "<rss><channel><title>LOCAL-SECRET</title></channel></rss>",
        )
        .expect("write");
        let file = Url::from_file_path(&path).expect("file url");
        let fetcher = fetcher(false);
        let http = url("http://feeds.example/feed");
        for (hop, source) in [
            (Hop::FeedLink, &http),
            (Hop::Redirect, &http),
            (Hop::Start, &http),
            (Hop::FeedLink, &file),
        ] {
            let err = fetcher
                .fetch(&file, hop, source, &Validators::default())
                .await
                .expect_err("a file read for another hop");
            assert!(!err.no_answer(), "a refusal is no outage");
            assert_eq!(
                err.to_string(),
                format!(
                    "{} {file} refused: only a source's own configured file:// URL is read",
                    match hop {
                        Hop::Start => "stored URL at",
                        Hop::FeedLink => "feed link of the HTML page to",
                        Hop::Redirect => "redirect to",
                    }
                ),
                "{hop:?} of {source}"
            );
        }
        let read = fetcher
            .fetch(&file, Hop::Start, &file, &Validators::default())
            .await
            .expect("the configured file");
        assert!(matches!(read, FetchOutcome::Body(body) if body.bytes.starts_with(b"<rss>")));
    }

    /// A name is local by construction when no stranger can own it: each kind, and the names
    /// that look like it but are anyone's.
    #[test]
    fn names_local_by_construction_and_names_anyone_may_own() {
        let hosts: HashSet<String> = ["intranet-feeds.example.org".to_string()].into();
        let local = [
            // localhost and *.localhost (RFC 6761)
            "localhost",
            "LOCALHOST",
            "localhost.",
            "feeds.localhost",
            "a.b.localhost",
            // a single label: compose and Kubernetes short names, the machine's search domains
            "feedserver",
            "feedserver.",
            "FeedServer",
            // listed in the hosts file, in any case, with or without the trailing dot
            "intranet-feeds.example.org",
            "Intranet-Feeds.example.org.",
        ];
        let anyones = [
            "news.example.com",
            // a split-horizon intranet name under a public domain: its DNS is a public zone's
            "feeds.corp.example.com",
            "localhost.example.com",
            "notlocalhost.net",
            "localhost.com",
            "feedserver.com",
            "feedserver.example",
            // the hosts file lists exact names, not their subdomains or parents
            "sub.intranet-feeds.example.org",
            "example.org",
            "",
            ".",
        ];
        for name in local {
            assert!(local_by_construction(name, &hosts), "{name:?} is local");
        }
        for name in anyones {
            assert!(!local_by_construction(name, &hosts), "{name:?} is anyone's");
        }
        for domain in LOCAL_DOMAINS {
            for name in [
                domain.to_string(),
                format!("feeds.{domain}"),
                format!("a.b.{domain}."),
                format!("FEEDS.{}", domain.to_ascii_uppercase()),
            ] {
                assert!(local_by_construction(&name, &hosts), "{name:?} is local");
            }
            for name in [
                format!("feeds.my{domain}"),
                format!("feeds.{domain}.example.com"),
                format!("{domain}.example.com"),
                format!("feeds.{domain}x"),
            ] {
                assert!(
                    !local_by_construction(&name, &hosts),
                    "{name:?} is anyone's"
                );
            }
        }
        assert!(
            !local_by_construction("intranet-feeds.example.org", &HashSet::new()),
            "only the hosts file makes such a name local"
        );
    }

    #[test]
    fn the_hosts_file_lists_its_names_but_blocklist_entries_and_what_is_past_its_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hosts");
        let mut text = b"# The operator's hosts\n\
            127.0.0.1\tlocalhost Feeds.Lan.Example.org.  # a comment: notme.example\n\
            \n\
            10.0.0.7 intranet-feeds.example.org  mirror.example.net\n\
            fe80::1%eth0 zoned.example.net\n\
            ::1 ip6-localhost\n\
            0.0.0.0 ads.example.com tracker.example.com\n\
            :: blocked6.example.com\n\
            not-an-address named.example.com\n\
            #10.0.0.8 commented.example.com\n\
            192.168.1.9 latin1-\xe9.example.com\n"
            .to_vec();
        std::fs::write(&path, &text).expect("write");
        let names = read_hosts_file(&path);
        let mut listed: Vec<&str> = names.iter().map(String::as_str).collect();
        listed.sort_unstable();
        assert_eq!(
            listed,
            [
                "feeds.lan.example.org",
                "intranet-feeds.example.org",
                "ip6-localhost",
                "latin1-\u{fffd}.example.com",
                "localhost",
                "mirror.example.net",
                "zoned.example.net",
            ]
        );

        // Only the first MAX_HOSTS_FILE bytes, whole lines only: a name cut at the bound and
        // the names past it are checked like any other.
        text.resize(MAX_HOSTS_FILE - 20, b'#');
        text.extend_from_slice(
            b"\n10.0.0.9 straddling-the-bound.example.com\n10.0.0.10 past.example.com\n",
        );
        std::fs::write(&path, &text).expect("write");
        let names = read_hosts_file(&path);
        assert!(names.contains("intranet-feeds.example.org"));
        assert!(
            !names.iter().any(|n| n.starts_with("straddling")),
            "{names:?}"
        );
        assert!(!names.contains("past.example.com"));

        assert!(read_hosts_file(&dir.path().join("missing")).is_empty());
        // A directory cannot be read as a file: nothing is listed, nothing fails.
        assert!(read_hosts_file(dir.path()).is_empty());
    }

    /// Which client a hop to the source's own configured host and port goes through: a name
    /// local by construction through the one that only refuses metadata addresses, any other
    /// name through the one that refuses every non-public address, an address through the
    /// open one.
    #[test]
    fn only_a_configured_name_local_by_construction_is_exempt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, "10.0.0.7 intranet-feeds.example.org\n").expect("write");
        let fetcher =
            Fetcher::build(&fetch_config(false), &hosts, Lookup::System).expect("fetcher");
        let guarded = fetcher.guarded.as_ref().expect("guarded client");
        let own_name = fetcher.own_name.as_ref().expect("own-name client");
        let route = |source: &str, hop: &str| {
            let client = fetcher
                .client_for(&url(hop), Hop::Redirect, &url(source))
                .expect("a client");
            if std::ptr::eq(client, own_name) {
                "own name"
            } else if std::ptr::eq(client, guarded) {
                "public only"
            } else {
                assert!(std::ptr::eq(client, &fetcher.open));
                "open"
            }
        };
        for (source, expected) in [
            ("http://localhost:8080/feed", "own name"),
            ("http://feedserver:8080/feed", "own name"),
            ("http://feeds.internal/feed", "own name"),
            ("http://nas.home.arpa/feed", "own name"),
            ("http://printer.local/feed", "own name"),
            ("http://intranet-feeds.example.org/feed", "own name"),
            ("http://news.example.com/feed", "public only"),
            ("http://feeds.corp.example.com/feed", "public only"),
            ("http://10.0.0.5/feed", "open"),
            ("http://[fd00::5]/feed", "open"),
        ] {
            assert_eq!(route(source, source), expected, "{source}");
            // A redirect within the same host and port goes the same way.
            let mut other = url(source);
            other.set_path("/elsewhere");
            assert_eq!(route(source, other.as_str()), expected, "{other}");
        }
        let open = self::fetcher(true);
        let client = open
            .client_for(
                &url("http://news.example.com/feed"),
                Hop::Start,
                &url("http://news.example.com/feed"),
            )
            .expect("allow_private");
        assert!(std::ptr::eq(client, &open.open));
    }

    #[test]
    fn a_refused_own_name_says_both_remedies() {
        let err = FetchError::OwnNamePrivate {
            hop: Hop::Start,
            target: "feeds.corp.example.com:80".into(),
        };
        assert_eq!(
            err.to_string(),
            "the source's own host feeds.corp.example.com:80 refused: the name has no public address, and only a name local by construction (localhost, .local, .home.arpa, .internal, .intranet, .private, .corp, .home, .lan, a single label or a name in /etc/hosts) may lead to a private one; write the address itself in the source's url (http://10.0.0.5/feed), or set [fetch] allow_private = true"
        );
        assert!(!err.no_answer(), "a refusal counts toward backoff");
    }

    /// A loopback HTTP server that answers every path with a feed, and counts the requests.
    async fn loopback_feed() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = hits.clone();
        let app = axum::Router::new().fallback(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            async {
                (
                    [(header::CONTENT_TYPE, "application/rss+xml")],
                    "<rss version=\"2.0\"><channel><title>INTERNAL</title></channel></rss>",
                )
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (port, hits)
    }

    /// The residual hole: a source configured by a public-looking name whose owner points it
    /// at loopback. No such name resolves offline (and /etc/hosts would make a name local),
    /// so the names here resolve through a table; everything else is the real fetch.
    #[tokio::test]
    async fn a_configured_public_name_that_resolves_inside_is_refused_and_a_local_one_fetched() {
        let (port, hits) = loopback_feed().await;
        let loopback = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        let table: HashMap<String, Vec<IpAddr>> = [
            "news.example.com",
            "feeds.corp.example.com",
            "localhost",
            "feedserver",
            "feeds.internal",
            "intranet-feeds.example.org",
        ]
        .into_iter()
        .map(|name| (name.to_string(), loopback.clone()))
        .chain([(
            "metadata.internal".to_string(),
            vec!["169.254.169.254".parse().expect("ip")],
        )])
        .collect();
        let lookup = Lookup::Table(Arc::new(table));
        let dir = tempfile::tempdir().expect("tempdir");
        let hosts = dir.path().join("hosts");
        std::fs::write(&hosts, "127.0.0.1 intranet-feeds.example.org\n").expect("write");
        let fetcher = Fetcher::build(&fetch_config(false), &hosts, lookup).expect("fetcher");
        let fetch = |target: String, hop: Hop, source: String| {
            let fetcher = &fetcher;
            async move {
                fetcher
                    .fetch(&url(&target), hop, &url(&source), &Validators::default())
                    .await
            }
        };

        for name in ["news.example.com", "feeds.corp.example.com"] {
            let source = format!("http://{name}:{port}/feed");
            for (hop, target) in [
                (Hop::Start, source.clone()),
                (Hop::Redirect, format!("http://{name}:{port}/other")),
                (Hop::FeedLink, format!("http://{name}:{port}/feed.rss")),
            ] {
                let err = fetch(target.clone(), hop, source.clone())
                    .await
                    .expect_err("refused");
                assert!(
                    matches!(&err, FetchError::OwnNamePrivate { hop: h, target: t }
                        if *h == hop && *t == format!("{name}:{port}")),
                    "{target}: {err:?}"
                );
                let text = err.to_string();
                assert!(
                    text.contains("write the address itself in the source's url")
                        && text.contains("[fetch] allow_private = true")
                        && !text.contains("127.0.0.1"),
                    "{text}"
                );
            }
        }
        assert_eq!(
            hits.load(Ordering::SeqCst),
            0,
            "the loopback server was asked"
        );

        // A configured name that does not resolve at all is a failing lookup, as before: our
        // own DNS may be down.
        let source = format!("http://gone.example.com:{port}/feed");
        let err = fetch(source.clone(), Hop::Start, source)
            .await
            .expect_err("fails");
        assert!(
            matches!(err, FetchError::Transport(_)) && err.no_answer(),
            "{err}"
        );

        // Names local by construction are still fetched, redirects within them too.
        let mut asked = 0;
        for name in [
            "localhost",
            "feedserver",
            "feeds.internal",
            "intranet-feeds.example.org",
        ] {
            let source = format!("http://{name}:{port}/feed");
            for target in [source.clone(), format!("http://{name}:{port}/other")] {
                let fetched = fetch(target.clone(), Hop::Start, source.clone())
                    .await
                    .unwrap_or_else(|err| panic!("{target}: {err}"));
                assert!(
                    matches!(fetched, FetchOutcome::Body(body) if body.bytes.starts_with(b"<rss")),
                    "{target}"
                );
                asked += 1;
                assert_eq!(hits.load(Ordering::SeqCst), asked, "{target}");
            }
        }
        // ... but never to a metadata address.
        let source = format!("http://metadata.internal:{port}/latest/meta-data/");
        let err = fetch(source.clone(), Hop::Start, source)
            .await
            .expect_err("refused");
        assert!(matches!(err, FetchError::Metadata { .. }), "{err}");
        assert_eq!(hits.load(Ordering::SeqCst), asked);
    }

    #[test]
    fn the_per_host_limits_forget_idle_hosts() {
        let fetcher = fetcher(false);
        let busy = fetcher.host_semaphore("busy.example");
        for i in 0..10 * PER_HOST_PRUNE_AT {
            drop(fetcher.host_semaphore(&format!("link{i}.example")));
        }
        let hosts = fetcher.per_host.lock().expect("lock");
        assert!(hosts.len() <= PER_HOST_PRUNE_AT, "{} hosts", hosts.len());
        assert!(
            hosts
                .get("busy.example")
                .is_some_and(|kept| Arc::ptr_eq(kept, &busy)),
            "a host being fetched from keeps its limit"
        );
    }

    #[test]
    fn sizes_read_as_written() {
        assert_eq!(
            FetchError::TooLarge(8 * 1024 * 1024).to_string(),
            "body larger than 8 MiB"
        );
        assert_eq!(human_size(512 * 1024), "512 KiB");
        assert_eq!(human_size(1000), "1000 B");
    }

    #[test]
    fn retry_after_takes_seconds_and_dates() {
        let now = httpdate::parse_http_date("Sat, 28 Nov 2026 10:00:00 GMT").expect("date");
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 10:05:00 GMT", now),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            parse_retry_after("Sat, 28 Nov 2026 09:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn freshness_reads_max_age_then_expires() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=3600"),
        );
        assert_eq!(freshness(&headers), Some(Duration::from_secs(3600)));
        let mut headers = HeaderMap::new();
        headers.insert(
            header::EXPIRES,
            HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
        );
        assert_eq!(freshness(&headers), Some(Duration::ZERO));
        assert_eq!(freshness(&HeaderMap::new()), None);
    }
}
