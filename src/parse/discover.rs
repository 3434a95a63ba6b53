//! Feed autodiscovery: the feed links of an HTML page
//! (`<link rel="alternate" type="application/rss+xml|atom+xml|feed+json" href>`).
//!
//! The page is tokenized with html5ever (the parser ammonia already uses), not matched with
//! regexes: attributes in any order and quoting, entities in `href`, comments and scripts
//! that merely contain the text `<link` are all handled as a browser would.

use std::cell::RefCell;

use html5ever::tendril::StrTendril;
use html5ever::tokenizer::states::RawKind;
use html5ever::tokenizer::{
    BufferQueue, TagKind, Token, TokenSink, TokenSinkResult, Tokenizer, TokenizerOpts,
};
use url::Url;

/// Feed types we can read, in order of preference.
const FEED_TYPES: &[&str] = &[
    "application/atom+xml",
    "application/rss+xml",
    "application/feed+json",
    "application/json",
];

/// Whether a body looks like an HTML page rather than a feed.
pub(crate) fn looks_like_html(body: &[u8], content_type: Option<&str>) -> bool {
    let mime_says_html = content_type.is_some_and(|ct| {
        let mime = ct.split(';').next().unwrap_or_default().trim();
        mime.eq_ignore_ascii_case("text/html") || mime.eq_ignore_ascii_case("application/xhtml+xml")
    });
    let head = String::from_utf8_lossy(&body[..body.len().min(512)]).to_ascii_lowercase();
    let head = head.trim_start_matches('\u{feff}').trim_start();
    let body_says_html = head.starts_with("<!doctype html") || head.starts_with("<html");
    let body_says_feed = head.starts_with("<?xml") && !head.contains("<html")
        || head.starts_with('{')
        || head.starts_with("<rss")
        || head.starts_with("<feed");
    body_says_html || (mime_says_html && !body_says_feed)
}

#[derive(Default)]
struct LinkCollector {
    links: RefCell<Vec<(usize, String)>>,
}

impl TokenSink for LinkCollector {
    type Handle = ();

    fn process_token(&self, token: Token, _line: u64) -> TokenSinkResult<()> {
        if let Token::TagToken(tag) = token {
            // The tree builder would switch the tokenizer into raw text inside these; without
            // it we must, or `<link>` written by a script would count.
            if tag.kind == TagKind::StartTag {
                match &*tag.name {
                    "script" => return TokenSinkResult::RawData(RawKind::ScriptData),
                    "style" | "xmp" | "iframe" | "noembed" | "noframes" => {
                        return TokenSinkResult::RawData(RawKind::Rawtext)
                    }
                    "title" | "textarea" => return TokenSinkResult::RawData(RawKind::Rcdata),
                    _ => {}
                }
            }
            if tag.kind == TagKind::StartTag && &*tag.name == "link" {
                let attr = |name: &str| {
                    tag.attrs
                        .iter()
                        .find(|a| &*a.name.local == name)
                        .map(|a| a.value.to_string())
                };
                let is_alternate = attr("rel").is_some_and(|rel| {
                    rel.split_ascii_whitespace()
                        .any(|r| r.eq_ignore_ascii_case("alternate"))
                });
                let rank = attr("type").and_then(|t| {
                    FEED_TYPES
                        .iter()
                        .position(|f| t.trim().eq_ignore_ascii_case(f))
                });
                if let (true, Some(rank), Some(href)) = (is_alternate, rank, attr("href")) {
                    self.links.borrow_mut().push((rank, href));
                }
            }
        }
        TokenSinkResult::Continue
    }
}

/// The most feed links taken of one page: each is compared with those taken before it.
const MAX_FEED_LINKS: usize = 16;

/// The feed links of an HTML page, absolute, best first (Atom, RSS, JSON Feed; then
/// document order), at most [`MAX_FEED_LINKS`]. Only http(s) links are returned.
pub(crate) fn feed_links(html: &str, page_url: &Url) -> Vec<Url> {
    let tokenizer = Tokenizer::new(LinkCollector::default(), TokenizerOpts::default());
    let input = BufferQueue::default();
    input.push_back(StrTendril::from_slice(html));
    let _ = tokenizer.feed(&input);
    tokenizer.end();
    let mut links = tokenizer.sink.links.take();
    links.sort_by_key(|(rank, _)| *rank);
    let mut urls: Vec<Url> = Vec::new();
    for (_, href) in links {
        if urls.len() == MAX_FEED_LINKS {
            break;
        }
        if let Ok(url) = page_url.join(href.trim()) {
            if matches!(url.scheme(), "http" | "https") && !urls.contains(&url) {
                urls.push(url);
            }
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Url {
        Url::parse("https://news.example/section/index.html").expect("valid")
    }

    #[test]
    fn finds_feed_links_in_any_spelling() {
        let html = r#"<!DOCTYPE html><html><head>
            <!-- <link rel="alternate" type="application/rss+xml" href="/commented.xml"> -->
            <link href='/rss.xml' TYPE="application/rss+xml" rel="alternate">
            <LINK rel="alternate stylesheet" type="text/css" href="/s.css">
            <link rel="Alternate" type="application/atom+xml" href="atom.xml?a=1&amp;b=2">
            <link rel="alternate" type="application/rss+xml" href="javascript:alert(1)">
            <script>document.write('<link rel="alternate" type="application/rss+xml" href="/js.xml">')</script>
            </head><body></body></html>"#;
        let links: Vec<String> = feed_links(html, &page())
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(
            links,
            [
                "https://news.example/section/atom.xml?a=1&b=2",
                "https://news.example/rss.xml"
            ]
        );
    }

    #[test]
    fn a_page_without_feed_links_has_none() {
        assert!(feed_links("<html><head><title>x</title></head></html>", &page()).is_empty());
        assert!(feed_links("<<<>>> not even html", &page()).is_empty());
    }

    #[test]
    fn html_is_told_from_feeds() {
        assert!(looks_like_html(b"<!DOCTYPE html><html>", None));
        assert!(looks_like_html(
            b"  <html lang=en>",
            Some("application/octet-stream")
        ));
        assert!(looks_like_html(
            b"<p>hello",
            Some("text/html; charset=utf-8")
        ));
        assert!(!looks_like_html(
            b"<?xml version=\"1.0\"?><rss>",
            Some("text/html")
        ));
        assert!(!looks_like_html(b"<rss version=\"2.0\">", None));
        assert!(!looks_like_html(
            b"{\"version\":\"https://jsonfeed.org/version/1.1\"}",
            Some("text/html")
        ));
    }
}
