//! HTML from feeds, made safe to republish: an allow-list sanitizer (ammonia) and a
//! plain-text reduction for titles.
//!
//! Allowed: ammonia's default set of harmless formatting tags and attributes. Removed: script,
//! style, iframe, object, embed, form elements, every event handler and `style` attribute.
//! URLs: every URL attribute is resolved against the entry's base first and checked after:
//! only absolute http(s) URLs survive, plus `data:` raster images in `<img src>` (see
//! [`republishable_url`]), so the output holds no relative link and no other scheme, whatever
//! the base or the spelling (`JaVaScRiPt:`, `java\tscript:`, `&#106;avascript:`). ammonia
//! alone checks a URL's scheme as written, before it resolves it: a `javascript:` base (from a
//! hostile `xml:base`) turned a relative `href` into a `javascript:` link.
//!
//! Titles and names are plain text that opens no tag in a reader ([`plain_text`]). Before any
//! HTML reaches html5ever (here, for item HTML and titles; for story matching through
//! [`html_to_plain`], for excerpts through [`sanitized_to_text`]), [`bound`] bounds what would make its tree builder superlinear:
//! nesting, attributes, reopened formatting, content moved out of tables. The writers check
//! what the store holds again as they write it ([`republishable_html`], [`defang`],
//! [`republishable_link`]).

use std::borrow::Cow;
use std::collections::HashSet;

use url::Url;

mod bound;

#[cfg(test)]
pub(crate) use bound::MAX_DEPTH;

/// The longest HTML field (summary or content) we keep, in bytes; longer text is cut before
/// sanitizing (ammonia repairs the cut markup).
pub(crate) const MAX_HTML_BYTES: usize = 1024 * 1024;
/// The longest title we keep, in characters.
pub(crate) const MAX_TITLE_CHARS: usize = 1000;

/// `text` cut to at most `max` bytes at a character boundary.
fn truncate_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Whether XML 1.0 allows `c` in a document: feeds carry control characters that would make
/// our own output invalid (and unreadable for strict readers).
fn xml_allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// `text` without the characters XML 1.0 forbids.
pub(crate) fn xml_safe(text: String) -> String {
    if text.chars().all(xml_allowed) {
        text
    } else {
        text.chars().filter(|c| xml_allowed(*c)).collect()
    }
}

/// The allow-list sanitizer for item HTML, resolving relative URLs against `base`: only an
/// http(s) base resolves anything; with another (a `file:` source) relative URLs are dropped.
fn builder(base: &Url) -> ammonia::Builder<'static> {
    let base = is_http(base).then(|| base.clone());
    let mut builder = ammonia::Builder::default();
    builder
        // ammonia's own check, on the URL as written; ours below runs after resolution.
        .url_schemes(HashSet::from(["http", "https", "data"]))
        .link_rel(Some("noopener noreferrer nofollow"))
        // The attribute filter below makes every URL it keeps absolute; anything still
        // relative after it is dropped.
        .url_relative(ammonia::UrlRelative::Custom(Box::new(drop_relative)))
        .attribute_filter(move |element, attribute, value| {
            if is_url_attribute(attribute) {
                republishable_url(element, attribute, value, base.as_ref())
            } else {
                Some(value.into())
            }
        });
    builder
}

fn drop_relative(_: &str) -> Option<Cow<'_, str>> {
    None
}

fn is_http(url: &Url) -> bool {
    matches!(url.scheme(), "http" | "https")
}

/// Attributes whose value is a URL (or a list of them) in some version of HTML; ammonia lets
/// few of them through (`href`, `src`, `cite`), every one is checked all the same.
fn is_url_attribute(attribute: &str) -> bool {
    matches!(
        attribute,
        "href"
            | "src"
            | "cite"
            | "action"
            | "formaction"
            | "poster"
            | "background"
            | "longdesc"
            | "usemap"
            | "codebase"
            | "classid"
            | "data"
            | "manifest"
            | "icon"
            | "profile"
            | "dynsrc"
            | "lowsrc"
            | "xlink:href"
            | "srcset"
            | "imagesrcset"
            | "ping"
            | "archive"
    )
}

/// `value`, a URL in `attribute` of `element`, as it may be republished: resolved against
/// `base` when relative, then kept only if it is absolute http(s), or a `data:` raster image
/// (PNG, GIF, JPEG, WebP, AVIF, ...; not SVG, which can carry script) in `<img src>`. A URL
/// written plainly (`https://...`) is kept as written; any other spelling is replaced by its
/// parsed form, which is what every reader sees whatever its parser. URL lists (`srcset`,
/// `ping`) are dropped.
pub(crate) fn republishable_url<'a>(
    element: &str,
    attribute: &str,
    value: &'a str,
    base: Option<&Url>,
) -> Option<Cow<'a, str>> {
    if matches!(attribute, "srcset" | "imagesrcset" | "ping" | "archive") {
        return None;
    }
    // Written plainly, the scheme is http(s) whatever follows (the writers check every link
    // of every document they render: most are so).
    if value.starts_with("https://") || value.starts_with("http://") {
        return Some(value.into());
    }
    let url = match Url::parse(value) {
        Ok(url) => url,
        Err(url::ParseError::RelativeUrlWithoutBase) => base?.join(value).ok()?,
        Err(_) => return None,
    };
    let plain = |prefix: &str| value.starts_with(prefix);
    match url.scheme() {
        "http" | "https" if plain("http://") || plain("https://") => Some(value.into()),
        "http" | "https" => Some(String::from(url).into()),
        "data" if element == "img" && attribute == "src" && is_data_image(&url) => {
            if plain("data:image/") {
                Some(value.into())
            } else {
                Some(String::from(url).into())
            }
        }
        _ => None,
    }
}

/// Whether a `data:` URL holds a raster image: its media type is `image/...`, not SVG.
fn is_data_image(url: &Url) -> bool {
    let media_type = url
        .path()
        .split([',', ';'])
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    media_type.starts_with("image/") && !media_type.starts_with("image/svg")
}

/// An absolute link (an entry's, a site's, a source's) as it may be republished: absolute
/// http(s), else nothing.
pub(crate) fn republishable_link(link: &str) -> Option<Cow<'_, str>> {
    republishable_url("a", "href", link, None)
}

/// Item HTML from the store as it may be republished: HTML that [`sanitize_html`] wrote
/// holds only URLs that [`republishable_url`] keeps; anything else (an entry stored by an
/// older version, before URLs were checked after resolution) is sanitized again, its
/// relative URLs dropped. Reads the serialized HTML without a parser (html5ever writes every
/// attribute double-quoted), so the writers can check every document they render.
pub(crate) fn republishable_html(html: &str) -> Cow<'_, str> {
    if urls_are_republishable(html) {
        Cow::Borrowed(html)
    } else {
        static NO_BASE: std::sync::OnceLock<Url> = std::sync::OnceLock::new();
        let no_base = NO_BASE.get_or_init(|| Url::parse("about:blank").expect("a URL"));
        Cow::Owned(clean_with_ammonia(html, no_base))
    }
}

/// Whether every URL attribute of serialized HTML is one [`republishable_url`] keeps as it
/// is; `false` for HTML that does not read as html5ever writes it.
fn urls_are_republishable(html: &str) -> bool {
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        rest = &rest[open + 1..];
        let name_len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || *b == b'-')
            .count();
        if name_len == 0 {
            // An end tag, or a `<` html5ever would have escaped.
            if !rest.starts_with('/') {
                return false;
            }
            continue;
        }
        let element = &rest[..name_len];
        rest = &rest[name_len..];
        loop {
            rest = rest.trim_start_matches(' ');
            if let Some(after) = rest.strip_prefix('>') {
                rest = after;
                break;
            }
            let Some(eq) = rest.find("=\"") else {
                return false;
            };
            let attribute = &rest[..eq];
            let Some(close) = rest[eq + 2..].find('"') else {
                return false;
            };
            let value = &rest[eq + 2..eq + 2 + close];
            rest = &rest[eq + 3 + close..];
            if attribute.contains([' ', '<', '>', '/']) {
                return false;
            }
            if is_url_attribute(attribute) {
                let value = if value.contains('&') {
                    html_escape::decode_html_entities(value)
                } else {
                    Cow::Borrowed(value)
                };
                let kept = republishable_url(element, attribute, &value, None);
                if !matches!(kept, Some(Cow::Borrowed(_))) {
                    return false;
                }
            }
        }
    }
    true
}

thread_local! {
    /// The last sanitizer built on this thread and its base: the entries of one feed share a
    /// base, and building one costs more than cleaning a paragraph.
    static LAST: std::cell::RefCell<Option<(Url, ammonia::Builder<'static>)>> =
        const { std::cell::RefCell::new(None) };
}

/// Sanitizes item HTML and resolves its URLs against `base`.
pub fn sanitize_html(html: &str, base: &Url) -> String {
    if html.len() <= MAX_HTML_BYTES && already_clean(html) {
        return html.to_string();
    }
    clean_with_ammonia(html, base)
}

/// [`sanitize_html`] through ammonia, whatever the HTML.
fn clean_with_ammonia(html: &str, base: &Url) -> String {
    let html = bound::bound(truncate_bytes(html, MAX_HTML_BYTES));
    let html = html.as_ref();
    let clean = LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.as_ref().is_none_or(|(b, _)| b != base) {
            *last = Some((base.clone(), builder(base)));
        }
        last.as_ref()
            .map(|(_, builder)| builder.clean(html).to_string())
    });
    xml_safe(clean.unwrap_or_else(|| builder(base).clean(html).to_string()))
}

/// The tags [`already_clean`] knows: paragraphs at the top level, and formatting that
/// nests inside them or at the top level. All are in ammonia's default allow-list and carry
/// no attribute, so no URL.
const PARAGRAPH: &str = "p";
const FORMATTING: [&str; 4] = ["b", "i", "em", "strong"];

/// Whether ammonia would give `html` back exactly as it is, decided without parsing it: a
/// paragraph of text is the most common summary in news feeds, and html5ever's parse and
/// serialization was most of parsing a feed. Only the plainest HTML qualifies: text free of
/// `<`, `>`, `&` (but for `&amp;`, `&lt;`, `&gt;`), carriage returns, no-break spaces and
/// what XML forbids, which html5ever would rewrite; attribute-free `<p>`, `<br>`, `<b>`,
/// `<i>`, `<em>`, `<strong>` in lower case, paragraphs never nested nor left open,
/// formatting closed in order inside its paragraph and never nested in itself. Anything
/// else goes to ammonia; a property test holds the two to the same output.
fn already_clean(html: &str) -> bool {
    let mut in_paragraph = false;
    // Open formatting elements, innermost last. Each tag opens at most once, so the stack
    // never holds more than there are formatting tags.
    let mut open: [&str; FORMATTING.len()] = [""; FORMATTING.len()];
    let mut depth = 0;
    let mut rest = html;
    while let Some(special) = rest.find(['<', '>', '&', '\r', '\u{a0}', '\u{feff}']) {
        if !rest[..special].chars().all(xml_allowed) {
            return false;
        }
        rest = &rest[special..];
        if let Some(tail) = ["&amp;", "&lt;", "&gt;"]
            .iter()
            .find_map(|entity| rest.strip_prefix(entity))
        {
            rest = tail;
            continue;
        }
        let Some(tag_end) = rest.starts_with('<').then(|| rest.find('>')).flatten() else {
            return false;
        };
        let tag = &rest[1..tag_end];
        rest = &rest[tag_end + 1..];
        let (closing, name) = match tag.strip_prefix('/') {
            Some(name) => (true, name),
            None => (false, tag),
        };
        match (closing, name) {
            (false, "br") => {}
            (false, PARAGRAPH) if !in_paragraph && depth == 0 => in_paragraph = true,
            (true, PARAGRAPH) if in_paragraph && depth == 0 => in_paragraph = false,
            (false, name) if FORMATTING.contains(&name) => {
                if open[..depth].contains(&name) {
                    return false;
                }
                open[depth] = name;
                depth += 1;
            }
            (true, name) if depth > 0 && open[depth - 1] == name => depth -= 1,
            _ => return false,
        }
    }
    rest.chars().all(xml_allowed) && !in_paragraph && depth == 0
}

/// Escapes plain text for use as HTML.
pub(crate) fn text_to_html(text: &str) -> String {
    xml_safe(html_escape::encode_text(truncate_bytes(text, MAX_HTML_BYTES)).into_owned())
}

/// HTML reduced to plain text: tags removed, entities decoded, white space folded, cut to
/// [`MAX_TITLE_CHARS`].
pub(crate) fn html_to_text(html: &str) -> String {
    fold_text(&html_to_plain(html))
}

/// HTML reduced to plain text, uncut (as far as [`MAX_HTML_BYTES`]), for comparing texts:
/// the text of neighbouring elements runs together (`<p>a</p><p>b</p>` is "ab"). Story
/// matching's fingerprints are made of this text and must never change for a text; what a
/// person reads goes through [`sanitized_to_text`].
pub(crate) fn html_to_plain(html: &str) -> String {
    static NO_TAGS: std::sync::OnceLock<ammonia::Builder<'static>> = std::sync::OnceLock::new();
    let without_tags = NO_TAGS
        .get_or_init(ammonia::Builder::empty)
        .clean(&bound::bound(truncate_bytes(html, MAX_HTML_BYTES)))
        .to_string();
    html_escape::decode_html_entities(&without_tags).into_owned()
}

/// Elements whose text a reader sees apart from the text around them: blocks, list items,
/// table rows and cells, and line breaks. Reduced to plain text, each leaves a space.
const SEPARATE: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "br",
    "caption",
    "dd",
    "details",
    "div",
    "dl",
    "dt",
    "figcaption",
    "figure",
    "footer",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "li",
    "main",
    "nav",
    "ol",
    "p",
    "pre",
    "section",
    "summary",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "ul",
];

/// [`html_to_plain`] as a person reads it: a space where a paragraph, a line break or another
/// element of [`SEPARATE`] was, so that "daily work.</p><p>Organizers" reads "daily work.
/// Organizers". Through ammonia keeping only those elements (bare), then [`scan_text`].
fn html_to_spaced_plain(html: &str) -> String {
    static SEPARATE_ONLY: std::sync::OnceLock<ammonia::Builder<'static>> =
        std::sync::OnceLock::new();
    let separated = SEPARATE_ONLY
        .get_or_init(|| {
            let mut builder = ammonia::Builder::empty();
            builder.tags(SEPARATE.iter().copied().collect());
            builder
        })
        .clean(&bound::bound(truncate_bytes(html, MAX_HTML_BYTES)))
        .to_string();
    scan_text(&separated, true)
}

/// Markup whose parse would move or drop text (a table's stray text, the newline after
/// `<pre>`): HTML holding one goes through the parser, not [`scan_text`].
fn needs_the_parser(html: &str) -> bool {
    ["<table", "<pre", "<textarea", "<listing"]
        .iter()
        .any(|tag| html.contains(tag))
}

/// [`html_to_plain`] of HTML that [`sanitize_html`] or [`text_to_html`] wrote, without an
/// HTML parser: that HTML is serialized by html5ever, so every `<` opens a tag and every
/// attribute value is double-quoted; text comes out in document order. Markup whose parse
/// would move or drop text (a table's stray text, the newline after `<pre>`) goes through
/// the parser. Story matching reduces every new entry's text, and the parser was most of it.
pub(crate) fn sanitized_to_plain(html: &str) -> String {
    let html = truncate_bytes(html, MAX_HTML_BYTES);
    if needs_the_parser(html) {
        return html_to_plain(html);
    }
    scan_text(html, false)
}

/// Sanitized HTML (as [`sanitized_to_plain`] takes it) as the plain text a person reads: a
/// space where a paragraph, a line break, a list item, a heading, a table row or cell, a
/// quotation or another block was, so that no two sentences of neighbouring blocks run
/// together. For excerpts; white space is not folded.
pub fn sanitized_to_text(html: &str) -> String {
    let html = truncate_bytes(html, MAX_HTML_BYTES);
    if needs_the_parser(html) {
        return html_to_spaced_plain(html);
    }
    scan_text(html, true)
}

/// The text of serialized HTML: tags dropped (with a space for each of [`SEPARATE`] when
/// `spaced`), entities decoded.
fn scan_text(html: &str, spaced: bool) -> String {
    let mut text = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        text.push_str(&rest[..open]);
        let mut quoted = false;
        let close = rest[open..].bytes().position(|b| {
            quoted ^= b == b'"';
            b == b'>' && !quoted
        });
        if spaced {
            let tag = rest[open + 1..].trim_start_matches('/');
            let name_len = tag
                .bytes()
                .position(|b| !b.is_ascii_alphanumeric())
                .unwrap_or(tag.len());
            let name = &tag[..name_len];
            if SEPARATE.iter().any(|s| s.eq_ignore_ascii_case(name)) {
                text.push(' ');
            }
        }
        rest = close.map_or("", |close| &rest[open + close + 1..]);
    }
    text.push_str(rest);
    html_escape::decode_html_entities(&text).into_owned()
}

/// A title or a name (an entry's, a feed's, an author's; a category) as plain text that no
/// reader can take for markup. `html` says the feed marks it as HTML (Atom `type="html"`);
/// text it does not mark that still looks like HTML (a closing tag or a character reference,
/// as feedparser decides) is read as HTML too: tags removed (script and style with their
/// content), entities decoded, so `Caf&eacute;` and `<b>Bold</b>` read "Café" and "Bold".
/// White space is folded and the text cut to [`MAX_TITLE_CHARS`]. What is left that a reader
/// rendering the text as HTML would still take for a tag (`Vec<T>`, a literal `<script>`),
/// as it is or after decoding one more round of entities, gets an invisible U+2060 WORD
/// JOINER after its `<`: the text reads the same, and no tag opens. A `<` that opens nothing
/// ("a < b", "<3") is left alone; the writers escape it.
pub fn plain_text(text: &str, html: bool) -> String {
    let text = truncate_bytes(text, MAX_HTML_BYTES);
    let folded = if html || looks_like_html(text) {
        html_to_text(text)
    } else {
        fold_text(text)
    };
    defang(folded)
}

/// Whether plain text looks like HTML: it has a closing tag, or a character reference that
/// decodes (feedparser's test, without its list of "acceptable" tags: a script is HTML too).
fn looks_like_html(text: &str) -> bool {
    if !text.contains(['<', '&']) {
        return false;
    }
    let bytes = text.as_bytes();
    bytes.windows(2).enumerate().any(|(at, pair)| match pair {
        [b'<', b'/'] => bytes.get(at + 2).is_some_and(u8::is_ascii_alphabetic),
        [b'&', next] if next.is_ascii_alphanumeric() || *next == b'#' => {
            let rest = &text[at..];
            let end = rest.as_bytes()[1..]
                .iter()
                .take(40)
                .position(|b| !(b.is_ascii_alphanumeric() || *b == b'#'))
                .map(|n| n + 1);
            end.is_some_and(|end| {
                rest.as_bytes().get(end) == Some(&b';')
                    && html_escape::decode_html_entities(&rest[..=end]) != rest[..=end]
            })
        }
        _ => false,
    })
}

/// U+2060 WORD JOINER: invisible, and no markup parser takes `<` followed by it for a tag.
const JOINER: char = '\u{2060}';

/// `text` with a U+2060 WORD JOINER after every `<` (or reference to one) that opens markup, read
/// as it is or after one more round of entity decoding (see [`plain_text`]).
pub(crate) fn defang(text: String) -> String {
    match defang_str(&text) {
        Cow::Borrowed(_) => text,
        Cow::Owned(defanged) => defanged,
    }
}

/// [`defang`], borrowing what needs nothing.
pub(crate) fn defang_str(text: &str) -> Cow<'_, str> {
    if !text.contains(['<', '&']) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut kept = 0;
    let mut at = 0;
    while let Some(found) = text[at..].find(['<', '&']) {
        let start = at + found;
        let (is_lt, len) = match text.as_bytes()[start] {
            b'<' => (true, 1),
            _ => reference_at(&text[start..]).map_or((false, 1), |(c, len)| (c == '<', len)),
        };
        at = start + len;
        if is_lt && opens_markup(&text[at..]) {
            out.push_str(&text[kept..at]);
            out.push(JOINER);
            kept = at;
        }
    }
    if kept == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[kept..]);
    Cow::Owned(out)
}

/// Whether a `<` followed by `rest` opens markup (a tag, an end tag, a comment or a
/// declaration), with `rest` read as it is or its first character reference decoded.
fn opens_markup(rest: &str) -> bool {
    let next = match rest.as_bytes().first() {
        Some(b'&') => reference_at(rest).map(|(c, _)| c),
        _ => rest.chars().next(),
    };
    next.is_some_and(|c| c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?'))
}

/// The character that the character reference at the start of `text` (which starts with
/// `&`) stands for in HTML text, and its length; only the references that can make markup
/// are known: numeric ones, `&lt` and `&LT` (with or without `;`), `&sol;`, `&excl;`,
/// `&quest;` (no named reference stands for an ASCII letter).
fn reference_at(text: &str) -> Option<(char, usize)> {
    let bytes = text.as_bytes();
    if bytes.get(1) == Some(&b'#') {
        let hex = matches!(bytes.get(2), Some(b'x' | b'X'));
        let digits_at = if hex { 3 } else { 2 };
        let digits = bytes[digits_at.min(bytes.len())..]
            .iter()
            .take_while(|b| {
                if hex {
                    b.is_ascii_hexdigit()
                } else {
                    b.is_ascii_digit()
                }
            })
            .count();
        if digits == 0 {
            return None;
        }
        let number = text[digits_at..digits_at + digits]
            .bytes()
            .fold(0u32, |n, b| {
                let digit = (b as char).to_digit(16).unwrap_or(0);
                n.saturating_mul(if hex { 16 } else { 10 })
                    .saturating_add(digit)
            });
        let mut len = digits_at + digits;
        if bytes.get(len) == Some(&b';') {
            len += 1;
        }
        return Some((char::from_u32(number).unwrap_or('\u{fffd}'), len));
    }
    for (name, c) in [
        ("lt;", '<'),
        ("LT;", '<'),
        ("lt", '<'),
        ("LT", '<'),
        ("sol;", '/'),
        ("excl;", '!'),
        ("quest;", '?'),
    ] {
        if text[1..].starts_with(name) {
            return Some((c, 1 + name.len()));
        }
    }
    None
}

/// White space folded and the text cut to [`MAX_TITLE_CHARS`].
pub(crate) fn fold_text(text: &str) -> String {
    let folded = xml_safe(text.split_whitespace().collect::<Vec<_>>().join(" "));
    match folded.char_indices().nth(MAX_TITLE_CHARS) {
        Some((end, _)) => format!("{}…", &folded[..end]),
        None => folded,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn base() -> Url {
        Url::parse("https://news.example/a/b.html").expect("valid")
    }

    #[test]
    fn the_plainest_html_skips_the_parser_and_the_rest_does_not() {
        let clean = [
            "",
            "Plain text, with &amp; &lt;tags&gt; as text.",
            "<p>One paragraph.</p>",
            "<p>北京时间<strong>11月27日</strong>。</p>\n<p>Second, <b>bold <i>and italic</i></b>.<br>Line</p>",
            "Before<p></p>after<br><em>x</em>",
        ];
        for html in clean {
            assert!(already_clean(html), "{html}");
            assert_eq!(clean_with_ammonia(html, &base()), html);
        }
        let not_clean = [
            "<p>unclosed",
            "<p><p>nested</p></p>",
            "<b>open</p>",
            "<p><b>misnested</p></b>",
            "<b><b>twice</b></b>",
            "<P>upper</P>",
            "<p class=\"x\">attribute</p>",
            "<a href=\"/x\">link</a>",
            "<br/>",
            "AT&T",
            "&quot;quoted&quot;",
            "a > b",
            "no\u{a0}break",
            "cr\r\nlf",
            "nul\u{0}",
            "<b><i><em><strong><b>deep</b></strong></em></i></b>",
        ];
        for html in not_clean {
            assert!(!already_clean(html), "{html}");
        }
    }

    /// Text as html5ever serializes it, and formatting nested at most three deep.
    fn clean_inline() -> impl Strategy<Value = String> {
        let text = prop::collection::vec(
            prop::sample::select(vec![
                "word",
                " ",
                "\n",
                "\t",
                "&amp;",
                "&lt;",
                "&gt;",
                "中文",
                "é",
                "\u{1f600}",
                "\"",
                "'",
                "=",
                "/",
                "\u{200b}",
            ]),
            0..4,
        )
        .prop_map(|pieces| pieces.concat());
        let leaf = prop_oneof![4 => text, 1 => Just("<br>".to_string())];
        leaf.prop_recursive(3, 12, 3, |inner| {
            (
                prop::sample::select(vec!["b", "i", "em", "strong"]),
                prop::collection::vec(inner, 0..3),
            )
                .prop_map(|(tag, children)| format!("<{tag}>{}</{tag}>", children.concat()))
        })
    }

    /// HTML that mostly passes [`already_clean`], with a few pieces that may spoil it.
    fn nearly_clean_html() -> impl Strategy<Value = String> {
        let block = prop_oneof![
            prop::collection::vec(clean_inline(), 0..3)
                .prop_map(|i| format!("<p>{}</p>", i.concat())),
            clean_inline(),
        ];
        let spoiler = prop::sample::select(vec![
            "<p>",
            "</p>",
            "<br>",
            "<b>",
            "</b>",
            "<i>",
            "</em>",
            "<strong>",
            "<P>",
            "<br/>",
            "</br>",
            "<p class=\"x\">",
            "<a href=\"x\">",
            "</a>",
            "<div>",
            "<li>",
            "<table>",
            "<script>",
            "<u>",
            "<hr>",
            "<",
            ">",
            "&",
            "&quot;",
            "&nbsp;",
            "&#65;",
            "&amp",
            "\u{a0}",
            "\r",
            "\r\n",
            "\u{0}",
            "\u{1}",
            "\u{c}",
            "\u{fffe}",
            "\u{fdd0}",
            "\u{feff}",
        ]);
        (
            prop::collection::vec(block, 0..4),
            prop::collection::vec((any::<usize>(), spoiler), 0..2),
        )
            .prop_map(|(blocks, spoilers)| {
                let mut html = blocks.concat();
                for (at, spoiler) in spoilers {
                    let mut at = at % (html.len() + 1);
                    while !html.is_char_boundary(at) {
                        at -= 1;
                    }
                    html.insert_str(at, spoiler);
                }
                html
            })
    }

    #[test]
    fn whenever_html_is_already_clean_ammonia_gives_it_back() {
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(3000));
        let clean = std::cell::Cell::new(0);
        let result = runner.run(&nearly_clean_html(), |html| {
            if already_clean(&html) {
                clean.set(clean.get() + 1);
                prop_assert_eq!(clean_with_ammonia(&html, &base()), html);
            }
            Ok(())
        });
        if let Err(failure) = result {
            panic!("{failure}");
        }
        // Most cases must take the fast path, or the property says little.
        let clean = clean.get();
        assert!(clean > 1000, "only {clean} of 3000 cases were clean");
    }

    #[test]
    fn sanitized_html_reduces_to_the_same_text_without_the_parser() {
        let samples = [
            "<p>Plain <b>bold</b> and <a href=\"x?a=1&amp;b=2\" title=\"a > b\">link</a>.</p>",
            "<div>a<br>b<img src=\"i.png\" alt=\"<not a tag>\">c&nbsp;d &amp; e &lt;p&gt; \u{a0}f</div>",
            "<p>unclosed <i>italic <b>both</p> after</i> tail",
            "<ul><li>one<li>two</ul><p>para<p>graph</p><h1>Head</h1>",
            "<table><tr><td>cell</td></tr>stray</table><pre>\n\ncode\n</pre>",
            "<script>alert(1)</script><style>p{}</style>kept<!-- comment -->text",
            "<form action=x>in form<input value=\"v\"></form><select><option>o</select>",
            "<p title='single \"quoted\" > value'>q</p><q cite=\"https://x\">cite</q>",
            "北京时间<strong>11月27日</strong>，国务院召开常务会议。&#x4e2d;&#20013;",
            "AT&T &copy; 2026 &notanentity; &#0; &#xD800; < 3 > 2",
            "<p>cut in the middle of a <a href=\"https://x.example/",
            "",
        ];
        for sample in samples {
            let clean = sanitize_html(sample, &base());
            assert_eq!(
                sanitized_to_plain(&clean),
                html_to_plain(&clean),
                "{sample} sanitized to {clean}"
            );
            let escaped = text_to_html(sample);
            assert_eq!(sanitized_to_plain(&escaped), html_to_plain(&escaped));
            // The spaced reduction agrees with the parser's too, but for runs of spaces.
            let words = |text: String| text.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(
                words(sanitized_to_text(&clean)),
                words(html_to_spaced_plain(&clean)),
                "{sample} sanitized to {clean}"
            );
        }
        // Older html5ever left `>` unescaped in attribute values.
        assert_eq!(sanitized_to_plain(r#"<a title="a > b">x</a>y"#), "xy");
    }

    #[test]
    fn excerpt_text_keeps_a_space_where_a_block_or_a_break_was() {
        let words = |text: String| text.split_whitespace().collect::<Vec<_>>().join(" ");
        for (html, text) in [
            (
                "<p>in their daily work.</p><p>Organizers said</p>",
                "in their daily work. Organizers said",
            ),
            ("one<br>two<br/>three", "one two three"),
            ("<div>a</div><div>b</div>", "a b"),
            ("<ul><li>x</li><li>y</li></ul>end", "x y end"),
            ("<h2>Head</h2>Body", "Head Body"),
            ("<blockquote>q</blockquote>r", "q r"),
            (
                "<table><tr><td>c1</td><td>c2</td></tr><tr><td>d</td></tr></table>",
                "c1 c2 d",
            ),
            (
                "in<b>line</b> <i>stays</i> to<a href=\"https://x.example/\">gether</a>",
                "inline stays together",
            ),
            ("AT&amp;T &lt;p&gt;", "AT&T <p>"),
        ] {
            let clean = sanitize_html(html, &base());
            assert_eq!(words(sanitized_to_text(&clean)), text, "{html} as {clean}");
        }
        // The fingerprints' text is as it always was.
        assert_eq!(
            sanitized_to_plain("<p>daily work.</p><p>Organizers</p>"),
            "daily work.Organizers"
        );
    }

    #[test]
    fn removes_active_content() {
        let html = r#"<p onclick="steal()" style="color:red">ok</p><script>alert(1)</script>
            <a href="javascript:alert(1)">j</a><a href="JaVaScRiPt:alert(1)">k</a>
            <iframe src="https://evil.example/"></iframe><object data="x"></object><embed src="x">
            <style>p{}</style><form action="/x"><input name="q"></form><svg onload="x()"></svg>
            <img src="x.png" onerror="steal()"><a href="vbscript:x">v</a><a href="mailto:a@b">m</a>"#;
        let clean = sanitize_html(html, &base());
        for bad in [
            "onclick",
            "style",
            "script",
            "javascript",
            "iframe",
            "object",
            "embed",
            "form",
            "input",
            "onload",
            "onerror",
            "vbscript",
            "mailto",
        ] {
            assert!(
                !clean.to_ascii_lowercase().contains(bad),
                "{bad} survived: {clean}"
            );
        }
        assert!(clean.contains("<p>ok</p>"), "{clean}");
        assert!(
            clean.contains(r#"<img src="https://news.example/a/x.png">"#),
            "{clean}"
        );
    }

    /// The URL attributes of sanitized HTML (html5ever writes them double-quoted), with
    /// their element, as a reader's HTML parser reads them.
    fn urls_in(html: &str) -> Vec<(String, String)> {
        let mut found = Vec::new();
        let mut rest = html;
        while let Some(open) = rest.find('<') {
            rest = &rest[open + 1..];
            let element: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            let end = rest.find('>').unwrap_or(rest.len());
            let tag = &rest[..end];
            for attribute in ["href", "src", "cite"] {
                if let Some(at) = tag.find(&format!(" {attribute}=\"")) {
                    let value = &tag[at + attribute.len() + 3..];
                    let value = &value[..value.find('"').unwrap_or(value.len())];
                    found.push((
                        element.clone(),
                        html_escape::decode_html_entities(value).into_owned(),
                    ));
                }
            }
        }
        found
    }

    /// Every URL is absolute http(s), or a raster `data:` image in an `<img>`.
    fn assert_republishable(html: &str, clean: &str) {
        for (element, url) in urls_in(clean) {
            let parsed = Url::parse(&url).unwrap_or_else(|e| panic!("{url} ({e}) from {html}"));
            let fine = matches!(parsed.scheme(), "http" | "https")
                || (element == "img" && url.starts_with("data:image/"));
            assert!(fine, "{element} {url} kept from {html}: {clean}");
        }
    }

    #[test]
    fn only_http_urls_survive_resolution_whatever_the_spelling() {
        let hostile = [
            "javascript:alert(1)",
            "JaVaScRiPt:alert(1)",
            " javascript:alert(1)",
            "\njavascript:alert(1)",
            "java\tscript:alert(1)",
            "java\nscript:alert(1)",
            "\u{1}javascript:alert(1)",
            "&#106;avascript:alert(1)",
            "&#x6A;avascript:alert(1)",
            "&#X6a;avascript&#58;alert(1)",
            "jav&#x09;ascript:alert(1)",
            "javascript&colon;alert(1)",
            "javascript&#0000058alert(1)",
            "vbscript:msgbox(1)",
            "VBScript:x",
            "livescript:x",
            "data:text/html,<script>alert(1)</script>",
            "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
            "file:///etc/passwd",
            "ftp://ftp.example/x",
            "mailto:a@b.example",
            "tel:+123",
            "custom-scheme:x",
            "x-javascript:x",
            "about:blank",
            "blob:https://x.example/1",
        ];
        for url in hostile {
            for (element, attribute) in [
                ("a", "href"),
                ("img", "src"),
                ("blockquote", "cite"),
                ("q", "cite"),
                ("del", "cite"),
                ("ins", "cite"),
            ] {
                let html = format!(r#"<{element} {attribute}="{url}">x</{element}>"#);
                let clean = sanitize_html(&html, &base());
                assert_republishable(&html, &clean);
                assert!(urls_in(&clean).is_empty(), "{url} kept: {clean}");
            }
        }
        // What resolves to http(s) stays, resolved.
        let kept = [
            ("clickme", "https://news.example/a/clickme"),
            ("//other.example/x", "https://other.example/x"),
            ("\\\\other.example\\x", "https://other.example/x"),
            (
                "%6Aavascript:alert(1)",
                "https://news.example/a/%6Aavascript:alert(1)",
            ),
            (
                "javascript%3Aalert(1)",
                "https://news.example/a/javascript%3Aalert(1)",
            ),
            (
                "./javascript:alert(1)",
                "https://news.example/a/javascript:alert(1)",
            ),
            ("HTTPS://Other.Example/p", "https://other.example/p"),
            ("https://other.example/p q", "https://other.example/p q"),
            ("  https://other.example/t", "https://other.example/t"),
        ];
        for (url, resolved) in kept {
            let clean = sanitize_html(
                &format!(r#"<a href="{url}">x</a><q cite="{url}">q</q>"#),
                &base(),
            );
            let urls: Vec<String> = urls_in(&clean).into_iter().map(|(_, u)| u).collect();
            assert_eq!(urls, [resolved, resolved], "{url}: {clean}");
        }
    }

    #[test]
    fn a_base_that_is_not_http_resolves_nothing() {
        for base in [
            "javascript://x/%0Aalert(1)//",
            "file:///srv/feeds/",
            "data:text/html,x/",
        ] {
            let base = Url::parse(base).expect("a URL");
            let html = r#"<a href="clickme">a</a><img src="i.png"><q cite="c">q</q><a href="https://ok.example/">ok</a>"#;
            let clean = sanitize_html(html, &base);
            assert_republishable(html, &clean);
            assert_eq!(
                urls_in(&clean),
                [("a".to_string(), "https://ok.example/".to_string())],
                "{clean}"
            );
        }
    }

    #[test]
    fn stored_html_with_other_urls_is_sanitized_again() {
        // What versions before URLs were checked after resolution stored.
        let stored = [
            r#"<p><a href="javascript://x/%0Aalert(1)//clickme" rel="noopener noreferrer nofollow">x</a></p>"#,
            r#"<a href="clickme">relative</a>"#,
            r#"<q cite="javascript:alert(1)">q</q>"#,
            r#"<img src="data:image/svg+xml,&lt;svg onload=alert(1)&gt;">"#,
            r#"<a href="JAVASCRIPT:x">upper</a>"#,
            r#"<a title="x" href="vbscript:x">v</a>"#,
        ];
        for html in stored {
            let again = republishable_html(html);
            assert!(matches!(again, Cow::Owned(_)), "{html}");
            assert_republishable(html, &again);
            assert!(urls_in(&again).is_empty(), "{html}: {again}");
        }
        let fine = [
            "",
            "plain &amp; text &lt;b&gt;",
            "<p>One <b>bold</b><br>two</p>",
            r#"<p><a href="https://x.example/?a=1&amp;b=2" rel="noopener noreferrer nofollow" title="a &quot;b&quot;">x</a><img src="data:image/png;base64,iVBORw0KGgo=" alt=""></p>"#,
            r#"<table><tbody><tr><td colspan="2">c</td></tr></tbody></table><q cite="http://c.example/">q</q>"#,
        ];
        for html in fine {
            assert!(
                matches!(republishable_html(html), Cow::Borrowed(_)),
                "{html}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// The writers' check never sanitizes again what the sanitizer wrote.
        #[test]
        fn sanitized_html_is_republishable_as_it_is(html in nearly_clean_html(), url in prop::sample::select(vec![
            "a", "/b", "//c.example/d", "https://e.example/f g", "HTTP://H.example", "javascript:x",
            "data:image/png;base64,AAAA", "data:text/html,x", " https://i.example/", "&#106;avascript:x",
        ])) {
            let html = format!(r#"{html}<a href="{url}">l</a><img src="{url}"><q cite="{url}">q</q>"#);
            let clean = sanitize_html(&html, &base());
            prop_assert!(matches!(republishable_html(&clean), Cow::Borrowed(_)), "{}", clean);
        }
    }

    #[test]
    fn data_urls_only_as_raster_images() {
        let html = r#"<img src="data:image/png;base64,iVBORw0KGgo="><a href="data:text/html,<script>x</script>">d</a><a href="data:image/png;base64,iVBORw0KGgo=">i</a>"#;
        let clean = sanitize_html(html, &base());
        assert!(
            clean.contains(r#"<img src="data:image/png;base64,iVBORw0KGgo=">"#),
            "{clean}"
        );
        assert!(!clean.contains("data:text"), "{clean}");
        assert_eq!(clean.matches("data:").count(), 1, "{clean}");
        for svg in [
            "data:image/svg+xml,<svg onload=alert(1)>",
            "data:image/svg+xml;base64,PHN2Zz4=",
            "DATA:IMAGE/SVG+XML,x",
        ] {
            let clean = sanitize_html(&format!(r#"<img src="{svg}">"#), &base());
            assert_eq!(clean, "<img>", "{svg}");
        }
        let clean = sanitize_html(r#"<img src=" DATA:image/gif;base64,R0lGOD==">"#, &base());
        assert_eq!(clean, r#"<img src="data:image/gif;base64,R0lGOD==">"#);
    }

    #[test]
    fn relative_links_become_absolute() {
        let clean = sanitize_html(r#"<a href="../c.html">c</a><img src="/i.png">"#, &base());
        assert!(
            clean.contains(r#"href="https://news.example/c.html""#),
            "{clean}"
        );
        assert!(
            clean.contains(r#"src="https://news.example/i.png""#),
            "{clean}"
        );
    }

    #[test]
    fn characters_xml_forbids_are_dropped() {
        assert_eq!(fold_text("a\u{1}b\u{1b}[31mc\u{fffe}"), "ab[31mc");
        assert_eq!(sanitize_html("<p>x\u{0}y</p>", &base()), "<p>xy</p>");
        assert_eq!(text_to_html("\u{8}<"), "&lt;");
    }

    /// Whether a reader that renders `text` as HTML would find a tag in it: a `<` followed
    /// by a letter, `/`, `!` or `?`.
    fn has_tag(text: &str) -> bool {
        text.as_bytes()
            .windows(2)
            .any(|w| w[0] == b'<' && (w[1].is_ascii_alphabetic() || b"/!?".contains(&w[1])))
    }

    /// `text` decoded as a reader decodes HTML text once more, references without `;`
    /// included.
    fn decode_once(text: &str) -> String {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('&') {
            out.push_str(&rest[..at]);
            rest = &rest[at..];
            match reference_at(rest) {
                Some((c, len)) => {
                    out.push(c);
                    rest = &rest[len..];
                }
                None => {
                    let decoded = html_escape::decode_html_entities(
                        &rest[..rest[1..].find('&').map_or(rest.len(), |n| n + 1)],
                    )
                    .into_owned();
                    let len = rest[1..].find('&').map_or(rest.len(), |n| n + 1);
                    out.push_str(&decoded);
                    rest = &rest[len..];
                }
            }
        }
        out + rest
    }

    fn assert_plain(input: &str, html: bool) -> String {
        let out = plain_text(input, html);
        assert!(!has_tag(&out), "{input:?} kept a tag: {out:?}");
        let decoded = decode_once(&out);
        assert!(
            !has_tag(&decoded),
            "{input:?} makes a tag once decoded: {out:?} -> {decoded:?}"
        );
        out
    }

    #[test]
    fn titles_and_names_carry_no_markup() {
        let cases: [(&str, bool, &str); 17] = [
            (
                "<script>alert(1)</script><img src=x onerror=alert(1)>",
                false,
                "",
            ),
            (
                "Hi <script>alert(1)</script><img src=x onerror=alert(1)>",
                true,
                "Hi",
            ),
            (
                "<img src=x onerror=alert(1)>",
                false,
                "<\u{2060}img src=x onerror=alert(1)>",
            ),
            ("Caf&eacute;", false, "Café"),
            ("Caf&eacute;", true, "Café"),
            ("<b>Bold</b> &amp; co", false, "Bold & co"),
            ("A <b> & \"quotes\"", false, "A <\u{2060}b> & \"quotes\""),
            ("a < b, a<3, 1 <= 2, <", false, "a < b, a<3, 1 <= 2, <"),
            (
                "Vec<T> and Box<dyn Error>",
                false,
                "Vec<\u{2060}T> and Box<\u{2060}dyn Error>",
            ),
            ("&lt;script&gt;x", true, "<\u{2060}script>x"),
            ("&amp;lt;script&amp;gt;", true, "&lt;\u{2060}script&gt;"),
            ("&amp;#60;b&amp;#62;", true, "&#60;\u{2060}b&#62;"),
            ("<&#115;cript>", false, "<\u{2060}script>"),
            ("x &lt;&#115;cript&gt;", true, "x <\u{2060}script>"),
            (
                "<!-- c --> <?pi?>",
                false,
                "<\u{2060}!-- c --> <\u{2060}?pi?>",
            ),
            ("<!-- c --></x", false, ""),
            ("  spread\n over\tlines  ", false, "spread over lines"),
        ];
        for (input, html, expected) in cases {
            assert_eq!(assert_plain(input, html), expected, "{input:?}");
        }
        // Defanging what is defanged changes nothing (the writers defang stored titles again).
        for (input, html, _) in cases {
            let once = plain_text(input, html);
            assert_eq!(defang(once.clone()), once, "{input:?}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn no_title_carries_a_tag_even_decoded_once_more(
            pieces in prop::collection::vec(prop::sample::select(vec![
                "<", ">", "/", "!", "?", "s", "script", " ", "&", ";", "#", "x", "3", "6", "0",
                "&lt;", "&lt", "&LT", "&#60;", "&#x3C;", "&#060", "&amp;", "&amp;lt;", "&sol;",
                "&excl;", "&quest;", "&#115;", "&#x73;", "&#47;", "&nbsp;", "&eacute;", "\u{2060}",
                "<b>", "</b>", "<![CDATA[", "]]>", "<!--", "-->", "é", "中",
            ]), 0..12),
            html in any::<bool>(),
        ) {
            let input = pieces.concat();
            let out = plain_text(&input, html);
            prop_assert!(!has_tag(&out), "{:?} kept a tag: {:?}", input, out);
            let decoded = decode_once(&out);
            prop_assert!(!has_tag(&decoded), "{:?} -> {:?} -> {:?}", input, out, decoded);
        }
    }

    #[test]
    fn titles_become_plain_bounded_text() {
        assert_eq!(
            html_to_text("<b>Bold</b> &amp;\n  co &lt;3"),
            "Bold & co <3"
        );
        let long = html_to_text(&"x".repeat(5 * 1024 * 1024));
        assert_eq!(long.chars().count(), MAX_TITLE_CHARS + 1);
        assert!(sanitize_html(&"<p>".repeat(10), &base()).len() < 100);
        assert!(sanitize_html(&"y".repeat(3 * MAX_HTML_BYTES), &base()).len() <= MAX_HTML_BYTES);
    }
}
