//! Why a refresh failed, as data: the facts of the failure (a status, a limit, an address, a
//! line and column), its kind for metrics, and, as its `Display`, the message a user reads in
//! `feedmill fetch`, `/status.json` and the logs.
//!
//! Nothing here names a fetch, parse or store type: those stages turn their own errors into
//! a [`RefreshFailure`] (`From` impls beside their error types, and `refresh.rs` for the
//! store), so a refresh's outcome, a source's state and the metrics all read one type.

use std::time::Duration;

/// Which hop of a fetch a refused URL was: a refused hop's message names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HopKind {
    /// The URL a source is fetched from: its configured URL, or where a 301/308 chain moved
    /// it.
    Start,
    /// A feed link of an HTML page (autodiscovery).
    FeedLink,
    /// The `Location` of a redirect.
    Redirect,
}

impl HopKind {
    /// How a refusal names the hop: "redirect to a private address ...".
    fn refused(self) -> &'static str {
        match self {
            HopKind::Start => "stored URL at",
            HopKind::FeedLink => "feed link of the HTML page to",
            HopKind::Redirect => "redirect to",
        }
    }
}

/// Why a refresh of a source failed. Its `Display` is the message users see; the state
/// records it as `last_error` (see [`crate::model::SourceState::failed`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RefreshFailure {
    /// The source answered 410 Gone: it is disabled until its config changes.
    #[error("410 Gone: disabled")]
    Gone,
    /// The server answered with an error status (but 410).
    #[error("HTTP {status}{}{}", reason.map(|r| format!(" {r}")).unwrap_or_default(),
        retry_after.map(|d| format!(" (retry after {})", humantime::format_duration(d))).unwrap_or_default())]
    Status {
        /// The status code.
        status: u16,
        /// Its canonical reason phrase.
        reason: Option<&'static str>,
        /// The server's `Retry-After`, for 429 and 503.
        retry_after: Option<Duration>,
    },
    /// The whole request took longer than the timeout.
    #[error("timed out after {}", humantime::format_duration(*after))]
    TimedOut {
        /// The timeout.
        after: Duration,
    },
    /// The body was longer than the limit once decompressed.
    #[error("body larger than {}", human_size(*limit))]
    TooLarge {
        /// The limit in bytes (`[fetch] max_body`).
        limit: u64,
    },
    /// Redirects went round in a circle or on for too long.
    #[error("redirect loop: {detail}")]
    RedirectLoop {
        /// Which: the URL seen twice, or how many redirects.
        detail: String,
    },
    /// A hop to a non-public address: never sent. `target` is the `host:port` the hop asked
    /// for; for a name, the message never says which addresses it resolved to.
    #[error("{} {} refused{} (only the source's own configured host and port may be private; [fetch] allow_private = true lifts the rule)",
        hop.refused(),
        if *name { target.clone() } else { format!("a private address {target}") },
        if *name { ": the name has no public address" } else { "" })]
    Refused {
        /// Which hop.
        hop: HopKind,
        /// `host:port` as the hop's URL wrote it.
        target: String,
        /// Whether the host is a name (refused by the resolver) rather than an address.
        name: bool,
    },
    /// The source's own configured host is a name that resolves only to link-local (cloud
    /// metadata) addresses: never sent.
    #[error("the source's own host {target} refused: its name resolves only to link-local addresses (cloud metadata), where a name never leads; write the address itself in the source's url if it is meant")]
    Metadata {
        /// `host:port` as the source's URL wrote it.
        target: String,
    },
    /// The source's own configured host is a name, not local by construction, with no
    /// public address: never sent.
    #[error("the source's own host {target} refused: the name has no public address, and only a name local by construction ({local_names}) may lead to a private one; write the address itself in the source's url (http://10.0.0.5/feed), or set [fetch] allow_private = true")]
    OwnNamePrivate {
        /// `host:port` as the source's URL wrote it.
        target: String,
        /// Which names are local by construction, in words.
        local_names: String,
    },
    /// A hop whose URL is longer than the limit: never sent, stored or quoted.
    #[error("{} a URL of {len} bytes refused: longer than {} KiB", hop.refused(), limit / 1024)]
    UrlTooLong {
        /// Which hop.
        hop: HopKind,
        /// The URL's length in bytes.
        len: usize,
        /// The longest URL sent, in bytes.
        limit: usize,
    },
    /// A `file://` URL that is not the source's own configured one: never read.
    #[error("{} {url} refused: only a source's own configured file:// URL is read", hop.refused())]
    LocalFile {
        /// Which hop.
        hop: HopKind,
        /// The URL.
        url: String,
    },
    /// Connecting, TLS, redirects or reading the body failed.
    #[error("{message}")]
    Transport {
        /// What failed, in the HTTP client's words.
        message: String,
    },
    /// A `file://` source could not be read.
    #[error("cannot read {path}: {message}")]
    File {
        /// The local path.
        path: String,
        /// Why, in the system's words.
        message: String,
    },
    /// The body was empty.
    #[error("empty body: the source sent no content")]
    Empty,
    /// An HTML page came back, linking to `link` (its best feed link), if to any.
    #[error("not a feed: HTML page {}", link.as_ref().map_or_else(|| "without a feed link".to_string(), |l| format!("linking to {l}")))]
    HtmlPage {
        /// The page's best feed link.
        link: Option<String>,
    },
    /// The XML is malformed or cut off.
    #[error("XML error at line {line}, column {column}: {message}")]
    Xml {
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The document is not RSS, Atom or JSON Feed.
    #[error("not a feed: {message}")]
    NotAFeed {
        /// Why, and what it is instead.
        message: String,
    },
    /// The source is an HTML page whose feed link could not be fetched.
    #[error("not a feed: HTML page linking to {link}, which failed: {failure}")]
    FeedLinkFailed {
        /// The feed link.
        link: String,
        /// Why its fetch failed.
        failure: Box<RefreshFailure>,
    },
    /// The source is an HTML page whose feed link answered something that is not a feed.
    #[error("HTML page linking to {link}, which is {failure}")]
    FeedLinkUnreadable {
        /// The feed link.
        link: String,
        /// Why its document could not be read.
        failure: Box<RefreshFailure>,
    },
    /// The source is an HTML page whose feed link is another HTML page: one feed link is
    /// followed, and the second page's links (a publisher's, of any length) are not quoted.
    #[error("HTML page linking to {link}, which is another HTML page, not a feed (one feed link is followed, no further)")]
    FeedLinkToPage {
        /// The feed link.
        link: String,
    },
    /// The source is an HTML page whose feed link answered 304 to a request without
    /// validators.
    #[error("not a feed: HTML page linking to {link}, which answered 304 to a plain GET")]
    FeedLinkNotModified {
        /// The feed link.
        link: String,
    },
    /// The URL a 301/308 chain once led to is refused now: the next fetch starts again from
    /// the configured URL, which the operator vouches for.
    #[error("{failure}; the next fetch starts again from the configured URL {configured}")]
    Restarted {
        /// Why the stored URL was refused.
        failure: Box<RefreshFailure>,
        /// The source's configured URL.
        configured: String,
    },
    /// No server answered, and no server has answered anyone lately: our own network may be
    /// down, so this does not count toward backoff.
    #[error("{failure} (no server has answered lately: our own network may be down; not counted toward backoff)")]
    NetworkDown {
        /// What happened.
        failure: Box<RefreshFailure>,
    },
    /// The store could not keep the fetch (a full disk, a read-only or failing one).
    #[error("{STORE_WRITE_FAILED}: {reason}")]
    StoreWrite {
        /// Why, without the store's path.
        reason: String,
    },
    /// The store could not be read for the source.
    #[error("{STORE_READ_FAILED}: {reason}")]
    StoreRead {
        /// Why, without the store's path.
        reason: String,
    },
}

/// What a source's `last_error` starts with when the store could not keep its fetch.
pub(crate) const STORE_WRITE_FAILED: &str = "store write failed";
/// What a source's `last_error` starts with when the store could not be read for it.
pub(crate) const STORE_READ_FAILED: &str = "store read failed";

/// What a gone source's `last_error` says: more than the outcome's "410 Gone: disabled",
/// because it stays there until someone acts.
pub(crate) const GONE_LAST_ERROR: &str =
    "410 Gone: disabled (the source is gone; change its config to try again)";

impl RefreshFailure {
    /// What kind of failure this is, for metrics: a failure wrapped with its context (a feed
    /// link's, a restart's, a network outage's) is of the kind of what happened.
    pub(crate) fn kind(&self) -> FailureKind {
        use RefreshFailure as F;
        match self {
            F::Gone => FailureKind::Gone,
            F::Status { .. } => FailureKind::HttpStatus,
            F::TimedOut { .. } => FailureKind::TimedOut,
            F::TooLarge { .. } => FailureKind::TooLarge,
            F::RedirectLoop { .. } => FailureKind::RedirectLoop,
            F::Refused { .. } | F::Metadata { .. } | F::OwnNamePrivate { .. } => {
                FailureKind::RefusedAddress
            }
            F::UrlTooLong { .. } | F::LocalFile { .. } => FailureKind::RefusedUrl,
            F::Transport { .. } => FailureKind::Transport,
            F::File { .. } => FailureKind::FileUnreadable,
            F::Empty => FailureKind::Empty,
            F::HtmlPage { .. }
            | F::NotAFeed { .. }
            | F::FeedLinkToPage { .. }
            | F::FeedLinkNotModified { .. } => FailureKind::NotAFeed,
            F::Xml { .. } => FailureKind::Xml,
            F::FeedLinkFailed { failure, .. }
            | F::FeedLinkUnreadable { failure, .. }
            | F::Restarted { failure, .. }
            | F::NetworkDown { failure } => failure.kind(),
            F::StoreWrite { .. } => FailureKind::StoreWrite,
            F::StoreRead { .. } => FailureKind::StoreRead,
        }
    }

    #[cfg(test)]
    /// The HTTP status behind the failure, when the server answered with one.
    pub(crate) fn status(&self) -> Option<u16> {
        match self {
            RefreshFailure::Gone => Some(410),
            RefreshFailure::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// How long the server asked us to wait (429/503 `Retry-After`).
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            RefreshFailure::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the failure counts toward backoff: all but those of our own network.
    pub(crate) fn counted(&self) -> bool {
        !matches!(self, RefreshFailure::NetworkDown { .. })
    }

    /// Whether the store, not the source, failed.
    pub(crate) fn in_store(&self) -> bool {
        matches!(
            self,
            RefreshFailure::StoreWrite { .. } | RefreshFailure::StoreRead { .. }
        )
    }
}

/// The kinds of [`RefreshFailure`] that metrics count (`feedmill_refresh_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum FailureKind {
    /// 410 Gone: the source is disabled.
    Gone,
    /// An error status but 410.
    HttpStatus,
    /// The request took longer than the timeout.
    TimedOut,
    /// The body was longer than `max_body`.
    TooLarge,
    /// Redirects in a circle or too many of them.
    RedirectLoop,
    /// A hop to an address (or a name) that may not be fetched.
    RefusedAddress,
    /// A hop whose URL may not be fetched (too long, a `file://` not configured).
    RefusedUrl,
    /// Connecting, TLS or reading failed.
    Transport,
    /// A `file://` source could not be read.
    FileUnreadable,
    /// The body was empty.
    Empty,
    /// The document is not a feed (an HTML page, something else).
    NotAFeed,
    /// The XML is malformed or cut off.
    Xml,
    /// The store could not keep the fetch.
    StoreWrite,
    /// The store could not be read.
    StoreRead,
}

impl FailureKind {
    /// Every kind, in the order metrics list them.
    pub(crate) const ALL: [FailureKind; 14] = [
        FailureKind::Gone,
        FailureKind::HttpStatus,
        FailureKind::TimedOut,
        FailureKind::TooLarge,
        FailureKind::RedirectLoop,
        FailureKind::RefusedAddress,
        FailureKind::RefusedUrl,
        FailureKind::Transport,
        FailureKind::FileUnreadable,
        FailureKind::Empty,
        FailureKind::NotAFeed,
        FailureKind::Xml,
        FailureKind::StoreWrite,
        FailureKind::StoreRead,
    ];

    /// The kind's label value in metrics.
    pub(crate) fn label(self) -> &'static str {
        match self {
            FailureKind::Gone => "gone",
            FailureKind::HttpStatus => "http_status",
            FailureKind::TimedOut => "timed_out",
            FailureKind::TooLarge => "too_large",
            FailureKind::RedirectLoop => "redirect_loop",
            FailureKind::RefusedAddress => "refused_address",
            FailureKind::RefusedUrl => "refused_url",
            FailureKind::Transport => "transport",
            FailureKind::FileUnreadable => "file_unreadable",
            FailureKind::Empty => "empty",
            FailureKind::NotAFeed => "not_a_feed",
            FailureKind::Xml => "xml",
            FailureKind::StoreWrite => "store_write",
            FailureKind::StoreRead => "store_read",
        }
    }
}

/// A size as the config writes it: whole MiB or KiB when it is one, else bytesize's IEC
/// form (what failures and fetch errors say of limits).
pub(crate) fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    match bytes {
        b if b >= MIB && b % MIB == 0 => format!("{} MiB", b / MIB),
        b if b >= KIB && b % KIB == 0 => format!("{} KiB", b / KIB),
        b => bytesize::ByteSize::b(b).display().iec().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind's message, as the code before this type printed it (the strings of
    /// `FetchError`, `ParseError` and refresh.rs's `format!`s, written out by hand).
    #[test]
    fn each_failure_says_what_it_said_before() {
        let bare = || {
            Box::new(RefreshFailure::Transport {
                message: "error sending request".into(),
            })
        };
        let local = "localhost, .localhost, .local, a single label or a name in /etc/hosts";
        let cases: Vec<(RefreshFailure, &str)> = vec![
            (RefreshFailure::Gone, "410 Gone: disabled"),
            (
                RefreshFailure::Status {
                    status: 500,
                    reason: Some("Internal Server Error"),
                    retry_after: None,
                },
                "HTTP 500 Internal Server Error",
            ),
            (
                RefreshFailure::Status {
                    status: 429,
                    reason: Some("Too Many Requests"),
                    retry_after: Some(Duration::from_secs(120)),
                },
                "HTTP 429 Too Many Requests (retry after 2m)",
            ),
            (
                RefreshFailure::Status {
                    status: 599,
                    reason: None,
                    retry_after: None,
                },
                "HTTP 599",
            ),
            (
                RefreshFailure::TimedOut {
                    after: Duration::from_secs(2),
                },
                "timed out after 2s",
            ),
            (
                RefreshFailure::TooLarge {
                    limit: 16 * 1024 * 1024,
                },
                "body larger than 16 MiB",
            ),
            (RefreshFailure::TooLarge { limit: 1536 }, "body larger than 1.5 KiB"),
            (RefreshFailure::TooLarge { limit: 3000 }, "body larger than 2.9 KiB"),
            (
                RefreshFailure::RedirectLoop {
                    detail: "more than 10 redirects".into(),
                },
                "redirect loop: more than 10 redirects",
            ),
            (
                RefreshFailure::Refused {
                    hop: HopKind::Redirect,
                    target: "127.0.0.1:9999".into(),
                    name: false,
                },
                "redirect to a private address 127.0.0.1:9999 refused (only the source's own configured host and port may be private; [fetch] allow_private = true lifts the rule)",
            ),
            (
                RefreshFailure::Refused {
                    hop: HopKind::FeedLink,
                    target: "intranet.example:80".into(),
                    name: true,
                },
                "feed link of the HTML page to intranet.example:80 refused: the name has no public address (only the source's own configured host and port may be private; [fetch] allow_private = true lifts the rule)",
            ),
            (
                RefreshFailure::Metadata {
                    target: "meta.local:80".into(),
                },
                "the source's own host meta.local:80 refused: its name resolves only to link-local addresses (cloud metadata), where a name never leads; write the address itself in the source's url if it is meant",
            ),
            (
                RefreshFailure::OwnNamePrivate {
                    target: "feeds.example:80".into(),
                    local_names: local.into(),
                },
                "the source's own host feeds.example:80 refused: the name has no public address, and only a name local by construction (localhost, .localhost, .local, a single label or a name in /etc/hosts) may lead to a private one; write the address itself in the source's url (http://10.0.0.5/feed), or set [fetch] allow_private = true",
            ),
            (
                RefreshFailure::UrlTooLong {
                    hop: HopKind::Start,
                    len: 9000,
                    limit: 8192,
                },
                "stored URL at a URL of 9000 bytes refused: longer than 8 KiB",
            ),
            (
                RefreshFailure::LocalFile {
                    hop: HopKind::Redirect,
                    url: "file:///etc/passwd".into(),
                },
                "redirect to file:///etc/passwd refused: only a source's own configured file:// URL is read",
            ),
            (*bare(), "error sending request"),
            (
                RefreshFailure::File {
                    path: "/srv/feed.xml".into(),
                    message: "No such file or directory (os error 2)".into(),
                },
                "cannot read /srv/feed.xml: No such file or directory (os error 2)",
            ),
            (RefreshFailure::Empty, "empty body: the source sent no content"),
            (
                RefreshFailure::HtmlPage { link: None },
                "not a feed: HTML page without a feed link",
            ),
            (
                RefreshFailure::HtmlPage {
                    link: Some("https://a.example/feed".into()),
                },
                "not a feed: HTML page linking to https://a.example/feed",
            ),
            (
                RefreshFailure::Xml {
                    line: 3,
                    column: 7,
                    message: "unexpected end of document".into(),
                },
                "XML error at line 3, column 7: unexpected end of document",
            ),
            (
                RefreshFailure::NotAFeed {
                    message: "the root element is <html>".into(),
                },
                "not a feed: the root element is <html>",
            ),
            (
                RefreshFailure::FeedLinkFailed {
                    link: "https://a.example/feed".into(),
                    failure: bare(),
                },
                "not a feed: HTML page linking to https://a.example/feed, which failed: error sending request",
            ),
            (
                RefreshFailure::FeedLinkUnreadable {
                    link: "https://a.example/feed".into(),
                    failure: Box::new(RefreshFailure::Empty),
                },
                "HTML page linking to https://a.example/feed, which is empty body: the source sent no content",
            ),
            (
                RefreshFailure::FeedLinkToPage {
                    link: "https://a.example/feed".into(),
                },
                "HTML page linking to https://a.example/feed, which is another HTML page, not a feed (one feed link is followed, no further)",
            ),
            (
                RefreshFailure::FeedLinkNotModified {
                    link: "https://a.example/feed".into(),
                },
                "not a feed: HTML page linking to https://a.example/feed, which answered 304 to a plain GET",
            ),
            (
                RefreshFailure::Restarted {
                    failure: Box::new(RefreshFailure::Refused {
                        hop: HopKind::Start,
                        target: "127.0.0.1:8080".into(),
                        name: false,
                    }),
                    configured: "https://a.example/rss".into(),
                },
                "stored URL at a private address 127.0.0.1:8080 refused (only the source's own configured host and port may be private; [fetch] allow_private = true lifts the rule); the next fetch starts again from the configured URL https://a.example/rss",
            ),
            (
                RefreshFailure::NetworkDown { failure: bare() },
                "error sending request (no server has answered lately: our own network may be down; not counted toward backoff)",
            ),
            (
                RefreshFailure::StoreWrite {
                    reason: "No space left on device (os error 28)".into(),
                },
                "store write failed: No space left on device (os error 28)",
            ),
            (
                RefreshFailure::StoreRead {
                    reason: "the store is corrupt (bad page)".into(),
                },
                "store read failed: the store is corrupt (bad page)",
            ),
        ];
        let mut kinds = std::collections::HashSet::new();
        for (failure, message) in &cases {
            assert_eq!(failure.to_string(), *message, "{failure:?}");
            kinds.insert(failure.kind());
        }
        assert_eq!(kinds.len(), FailureKind::ALL.len(), "a kind without a case");
    }

    #[test]
    fn wrapped_failures_are_of_the_kind_of_what_happened() {
        let timeout = RefreshFailure::TimedOut {
            after: Duration::from_secs(30),
        };
        for wrapped in [
            RefreshFailure::NetworkDown {
                failure: Box::new(timeout.clone()),
            },
            RefreshFailure::FeedLinkFailed {
                link: "https://a.example/feed".into(),
                failure: Box::new(timeout.clone()),
            },
        ] {
            assert_eq!(wrapped.kind(), FailureKind::TimedOut, "{wrapped:?}");
        }
        assert!(!RefreshFailure::NetworkDown {
            failure: Box::new(timeout.clone())
        }
        .counted());
        assert!(timeout.counted());
        let labels: std::collections::HashSet<_> =
            FailureKind::ALL.iter().map(|k| k.label()).collect();
        assert_eq!(labels.len(), FailureKind::ALL.len(), "labels are unique");
    }
}
