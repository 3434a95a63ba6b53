//! The human face: the HTML page at `/` and the HTML view of each output feed at
//! `/feeds/{name}`, from compiled askama templates (`src/templates/`).
//!
//! Everything that came from a feed is escaped by the templates; excerpts are plain text
//! (markup removed) so no feed HTML reaches the page at all. The page needs no JavaScript and
//! carries one inline stylesheet, allowed by its hash in a strict Content-Security-Policy.

use std::sync::OnceLock;

use askama::Template;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use url::Url;

use crate::config::{Config, FeedConfig};
use crate::publish::{feed_url, Format, SourceInfo};
use crate::sanitize;
use crate::select::Story;
use crate::status::SourceReport;

/// The page's only stylesheet: small, readable, responsive, dark when the reader is.
pub(crate) const CSS: &str = r#"
:root{--bg:#fdfdfb;--fg:#1d1d1b;--muted:#55554f;--link:#0b4f9c;--line:#d8d8d0;--bad:#9b1c1c;--off:#6b6b63;font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Noto Sans CJK SC","PingFang SC",sans-serif;line-height:1.5}
@media (prefers-color-scheme:dark){:root{--bg:#151513;--fg:#ecece6;--muted:#b4b4aa;--link:#8cc2ff;--line:#3a3a35;--bad:#ff9b9b;--off:#a5a59b}}
*{box-sizing:border-box}
body{margin:0 auto;max-width:46rem;padding:0 1rem;background:var(--bg);color:var(--fg)}
a{color:var(--link)}
a:focus-visible,input:focus-visible{outline:3px solid var(--link);outline-offset:2px}
header.site,footer.site{padding:.75rem 0;color:var(--muted);font-size:.9rem}
header.site{border-bottom:1px solid var(--line)}
footer.site{border-top:1px solid var(--line);margin-top:2rem}
.brand a{font-weight:700;text-decoration:none}
h1{font-size:1.6rem;margin:1rem 0}
h2{font-size:1.25rem;margin:2rem 0 .5rem;border-bottom:1px solid var(--line)}
h3{font-size:1.05rem;margin:0;overflow-wrap:anywhere}
ul.feeds,ol.river{list-style:none;padding:0;margin:0}
ul.feeds li{padding:.5rem 0}
.formats{margin:.2rem 0}
label{display:block;font-size:.85rem;color:var(--muted)}
input[type=text]{display:block;width:100%;font:inherit;font-size:.85rem;padding:.3rem;margin-top:.2rem;color:var(--fg);background:transparent;border:1px solid var(--line);border-radius:4px}
ol.river li{padding:.75rem 0;border-bottom:1px solid var(--line)}
.meta,.also,.media{margin:.2rem 0;color:var(--muted);font-size:.9rem}
.media{overflow-wrap:anywhere}
.excerpt{margin:.3rem 0;overflow-wrap:anywhere}
table.sources{width:100%;border-collapse:collapse;font-size:.9rem}
table.sources th,table.sources td{text-align:left;padding:.35rem .3rem;border-bottom:1px solid var(--line);vertical-align:top;overflow-wrap:break-word}
table.sources thead th{white-space:nowrap}
table.sources td:last-child{text-align:right}
tr.failing .state{color:var(--bad);font-weight:600}
tr.disabled .state,tr.pending .state{color:var(--off)}
"#;

/// The Content-Security-Policy of HTML pages: nothing but the inline stylesheet (by hash)
/// and links; no script at all.
pub(crate) fn content_security_policy() -> &'static str {
    static POLICY: OnceLock<String> = OnceLock::new();
    POLICY.get_or_init(|| {
        use base64::Engine;
        let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(CSS.as_bytes()));
        format!(
            "default-src 'none'; style-src 'sha256-{hash}'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        )
    })
}

/// One output feed, as the page links to it.
pub(crate) struct FeedLinks {
    title: String,
    html_url: String,
    atom_url: String,
    rss_url: String,
    json_url: String,
}

impl FeedLinks {
    fn of(feed: &FeedConfig, base_url: &Url) -> FeedLinks {
        FeedLinks {
            title: feed.title.clone(),
            html_url: format!("{base_url}feeds/{}", feed.name),
            atom_url: feed_url(base_url, &feed.name, Format::Atom),
            rss_url: feed_url(base_url, &feed.name, Format::Rss),
            json_url: feed_url(base_url, &feed.name, Format::Json),
        }
    }
}

/// Another source that carried a story.
pub(crate) struct Carrier {
    source: String,
    link: Option<String>,
}

/// A media file of an entry, as the page links to it.
pub(crate) struct MediaLink {
    url: String,
    /// The file's name, and its type when known.
    label: String,
}

/// Media files linked from one entry at most: a photo feed can attach dozens.
const LISTED_MEDIA: usize = 8;

/// An entry's media files, as links: only absolute http(s) URLs, named by their file.
fn media_links(entry: &crate::model::Entry) -> Vec<MediaLink> {
    entry
        .enclosures
        .iter()
        .filter_map(|enclosure| {
            let url = http_link(&enclosure.url)?;
            let name = Url::parse(&url)
                .ok()
                .and_then(|u| Some(u.path_segments()?.rfind(|s| !s.is_empty())?.to_string()))
                .filter(|name| !name.trim().is_empty())
                .unwrap_or_else(|| "media".to_string());
            let label = match &enclosure.mime_type {
                Some(kind) => format!("{name} ({kind})"),
                None => name,
            };
            Some(MediaLink { url, label })
        })
        .take(LISTED_MEDIA)
        .collect()
}

/// One entry of a river.
pub(crate) struct EntryView {
    title: String,
    link: Option<String>,
    source_title: String,
    source_link: Option<String>,
    when_iso: String,
    when_exact: String,
    when_relative: String,
    excerpt: String,
    media: Vec<MediaLink>,
    also: Vec<Carrier>,
}

/// One source in the sources table.
pub(crate) struct SourceView {
    title: String,
    site_link: Option<String>,
    state: &'static str,
    reason: Option<String>,
    items: u64,
}

#[derive(Template)]
#[template(path = "home.html", config = "src/templates/askama.toml")]
struct Home<'a> {
    lang: &'a str,
    site_title: &'a str,
    base_url: &'a str,
    version: &'static str,
    css: &'static str,
    hub: Option<&'a str>,
    feeds: Vec<FeedLinks>,
    river_title: Option<&'a str>,
    entries: Vec<EntryView>,
    sources: Vec<SourceView>,
    /// Sources not listed (see [`LISTED_SOURCES`]).
    unlisted: usize,
}

#[derive(Template)]
#[template(path = "feed.html", config = "src/templates/askama.toml")]
struct FeedPage<'a> {
    lang: &'a str,
    site_title: &'a str,
    page_title: &'a str,
    base_url: &'a str,
    version: &'static str,
    css: &'static str,
    hub: Option<&'a str>,
    feeds: Vec<FeedLinks>,
    entries: Vec<EntryView>,
}

/// "5 minutes ago", "3 hours ago", "2 days ago", "in the future".
pub(crate) fn relative_time(time: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - time).num_seconds();
    let plural = |n: i64, unit: &str| format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" });
    match seconds {
        s if s < 0 => "just now".to_string(),
        s if s < 60 => "just now".to_string(),
        s if s < 3600 => plural(s / 60, "minute"),
        s if s < 86_400 => plural(s / 3600, "hour"),
        s if s < 30 * 86_400 => plural(s / 86_400, "day"),
        _ => time.format("%-d %B %Y").to_string(),
    }
}

/// A link the page may carry: absolute http(s) only, whatever the store holds (an entry
/// stored by an older version).
fn http_link(link: &str) -> Option<String> {
    sanitize::republishable_link(link).map(std::borrow::Cow::into_owned)
}

/// The first `max` characters of a text, cut at a word, with an ellipsis when cut.
fn excerpt(text: &str, max: usize) -> String {
    let folded = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if folded.chars().count() <= max {
        return folded;
    }
    let cut: String = folded.chars().take(max).collect();
    let at_word = cut
        .rfind(' ')
        .filter(|i| *i > max / 2)
        .map_or(cut.as_str(), |i| &cut[..i]);
    format!(
        "{}…",
        at_word.trim_end_matches(|c: char| c.is_ascii_punctuation())
    )
}

fn entry_views(
    stories: &[Story],
    sources: &std::collections::HashMap<String, SourceInfo>,
    now: DateTime<Utc>,
) -> Vec<EntryView> {
    let title_of = |source: &str| {
        sources
            .get(source)
            .map_or_else(|| source.to_string(), |s| s.title.clone())
    };
    stories
        .iter()
        .map(|story| {
            let entry = &story.entry.entry;
            let when = story.entry.sort_time;
            EntryView {
                title: if entry.title.is_empty() {
                    "(untitled)".to_string()
                } else {
                    entry.title.clone()
                },
                link: entry.link.as_deref().and_then(http_link),
                source_title: title_of(&story.entry.source),
                source_link: sources
                    .get(&story.entry.source)
                    .and_then(|s| s.site_link.as_deref().and_then(http_link)),
                when_iso: when.to_rfc3339(),
                when_exact: when.format("%Y-%m-%d %H:%M UTC").to_string(),
                when_relative: relative_time(when, now),
                excerpt: excerpt(
                    &sanitize::sanitized_to_text(entry.html().unwrap_or_default()),
                    280,
                ),
                media: media_links(entry),
                also: story
                    .also
                    .iter()
                    .map(|other| Carrier {
                        source: title_of(&other.source),
                        link: other.entry.link.as_deref().and_then(http_link),
                    })
                    .collect(),
            }
        })
        .collect()
}

/// Sources listed on the home page at most. A planet of ten thousand sources made a 3 MB
/// page, most of a render: beyond this, the page lists the sources that need attention
/// first, and says how many more `/status.json` and the OPML have.
const LISTED_SOURCES: usize = 200;

/// The home page's sources, in config order, at most [`LISTED_SOURCES`] (those not "ok"
/// first), and how many are left out.
fn source_views(
    reports: &[SourceReport],
    sources: &std::collections::HashMap<String, SourceInfo>,
) -> (Vec<SourceView>, usize) {
    let views: Vec<SourceView> = reports
        .iter()
        .map(|report| {
            let info = sources.get(&report.name);
            let (state, reason) = if report.disabled {
                ("disabled", report.last_error.clone())
            } else if report.last_error.is_some() {
                ("failing", report.last_error.clone())
            } else if report.last_fetch.is_none() {
                ("pending", None)
            } else {
                ("ok", None)
            };
            SourceView {
                title: info.map_or_else(|| report.name.clone(), |i| i.title.clone()),
                site_link: info.and_then(|i| i.site_link.as_deref().and_then(http_link)),
                state,
                reason,
                items: report.items,
            }
        })
        .collect();
    if views.len() <= LISTED_SOURCES {
        return (views, 0);
    }
    let total = views.len();
    let (mut listed, fine): (Vec<_>, Vec<_>) = views.into_iter().partition(|v| v.state != "ok");
    listed.truncate(LISTED_SOURCES);
    let room = LISTED_SOURCES - listed.len();
    listed.extend(fine.into_iter().take(room));
    let unlisted = total - listed.len();
    (listed, unlisted)
}

/// The home page: every feed to subscribe to, the newest stories of the first feed, the
/// sources and their state.
pub(crate) fn render_home(
    config: &Config,
    river: &[Story],
    reports: &[SourceReport],
    sources: &std::collections::HashMap<String, SourceInfo>,
    now: DateTime<Utc>,
) -> String {
    let base_url = config.server.base_url.as_str();
    let (sources_listed, unlisted) = source_views(reports, sources);
    let page = Home {
        lang: &config.server.lang,
        site_title: &config.server.title,
        base_url,
        version: env!("CARGO_PKG_VERSION"),
        css: CSS,
        hub: config.server.hub.as_ref().map(Url::as_str),
        feeds: config
            .feeds
            .iter()
            .map(|f| FeedLinks::of(f, &config.server.base_url))
            .collect(),
        river_title: config.feeds.first().map(|f| f.title.as_str()),
        entries: entry_views(river, sources, now),
        sources: sources_listed,
        unlisted,
    };
    page.render()
        .unwrap_or_else(|err| format!("template error: {err}"))
}

/// The HTML view of one output feed.
pub(crate) fn render_feed_page(
    config: &Config,
    feed: &FeedConfig,
    stories: &[Story],
    sources: &std::collections::HashMap<String, SourceInfo>,
    now: DateTime<Utc>,
) -> String {
    let page = FeedPage {
        lang: &config.server.lang,
        site_title: &config.server.title,
        page_title: &feed.title,
        base_url: config.server.base_url.as_str(),
        version: env!("CARGO_PKG_VERSION"),
        css: CSS,
        hub: config.server.hub.as_ref().map(Url::as_str),
        feeds: vec![FeedLinks::of(feed, &config.server.base_url)],
        entries: entry_views(stories, sources, now),
    };
    page.render()
        .unwrap_or_else(|err| format!("template error: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_times_read_naturally() {
        let now = Utc::now();
        assert_eq!(relative_time(now, now), "just now");
        assert_eq!(
            relative_time(now - chrono::Duration::minutes(1), now),
            "1 minute ago"
        );
        assert_eq!(
            relative_time(now - chrono::Duration::hours(5), now),
            "5 hours ago"
        );
        assert_eq!(
            relative_time(now - chrono::Duration::days(2), now),
            "2 days ago"
        );
        assert_eq!(
            relative_time(now + chrono::Duration::days(2), now),
            "just now"
        );
    }

    #[test]
    fn a_large_planet_lists_its_troubled_sources_first_and_counts_the_rest() {
        let report = |n: usize, failing: bool| SourceReport {
            name: format!("s{n}"),
            url: format!("https://s{n}.example/feed"),
            last_fetch: Some(Utc::now()),
            last_status: Some(if failing { 500 } else { 200 }),
            last_error: failing.then(|| "HTTP 500".to_string()),
            consecutive_failures: u32::from(failing),
            next_fetch: None,
            items: 3,
            disabled: false,
            fetched_by: None,
        };
        let reports: Vec<SourceReport> = (0..1000).map(|n| report(n, n % 400 == 399)).collect();
        let (listed, unlisted) = source_views(&reports, &Default::default());
        assert_eq!(
            (listed.len(), unlisted),
            (LISTED_SOURCES, 1000 - LISTED_SOURCES)
        );
        let titles: Vec<&str> = listed.iter().map(|v| v.title.as_str()).collect();
        assert_eq!(titles[..3], ["s399", "s799", "s0"]);
        assert_eq!(listed.iter().filter(|v| v.state == "failing").count(), 2);

        let few: Vec<SourceReport> = (0..5).map(|n| report(n, n == 3)).collect();
        let (listed, unlisted) = source_views(&few, &Default::default());
        let titles: Vec<&str> = listed.iter().map(|v| v.title.as_str()).collect();
        assert_eq!((titles, unlisted), (vec!["s0", "s1", "s2", "s3", "s4"], 0));
    }

    #[test]
    fn excerpts_cut_at_a_word() {
        assert_eq!(excerpt("short  text", 280), "short text");
        let long = "word ".repeat(100);
        let cut = excerpt(&long, 50);
        assert!(cut.ends_with("word…") && cut.chars().count() <= 51, "{cut}");
    }

    #[test]
    fn media_links_are_http_only_named_by_their_file() {
        let enclosure = |url: &str, mime_type: Option<&str>| crate::model::Enclosure {
            url: url.into(),
            mime_type: mime_type.map(str::to_string),
            length: None,
        };
        let entry = crate::model::Entry {
            enclosures: vec![
                enclosure("https://cdn.example/show/ep1.mp3", Some("audio/mpeg")),
                enclosure("javascript:alert(1)", None),
                enclosure("https://cdn.example/", None),
            ],
            ..crate::model::Entry::default()
        };
        let links: Vec<(String, String)> = media_links(&entry)
            .into_iter()
            .map(|m| (m.url, m.label))
            .collect();
        assert_eq!(
            links,
            [
                (
                    "https://cdn.example/show/ep1.mp3".to_string(),
                    "ep1.mp3 (audio/mpeg)".to_string()
                ),
                ("https://cdn.example/".to_string(), "media".to_string()),
            ]
        );
    }

    #[test]
    fn the_policy_allows_only_our_stylesheet() {
        let policy = content_security_policy();
        assert!(
            policy.starts_with("default-src 'none'; style-src 'sha256-"),
            "{policy}"
        );
        assert!(
            !policy.contains("script-src") && !policy.contains("unsafe"),
            "{policy}"
        );
    }
}
