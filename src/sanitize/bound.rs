//! Hostile markup made to cost what its size costs, before html5ever parses it.
//!
//! html5ever's tree builder is superlinear in what a document keeps open: every start tag of
//! a block checks its scope by walking the stack of open elements (100,000 nested `<div>`
//! took 18 s of CPU), every text reopens the formatting elements that a block closed (2,000
//! of `<p><b title=N>t</p>` took 26 s and came out as 38 MB), and its tokenizer compares each
//! attribute with all the earlier ones of its tag. [`bound`] reads the markup once, as the
//! HTML tokenizer does, and follows the elements the tree builder holds open, by its rules
//! (scopes, implied ends, tables). So that it can follow them exactly, it writes the document
//! so that the tree builder never reopens nor moves a formatting element: one that a block
//! would close by implication (`<p><b>bold</p>`) is closed by an explicit end tag first, as
//! an object is; an end tag of a formatting element with a block open in it (`<b><div></b>`)
//! is dropped, as a link opened inside a block inside a link is. It then:
//!
//! - drops a start tag (keeping its text) that would hold more than [`MAX_DEPTH`] elements
//!   open;
//! - keeps [`MAX_ATTRIBUTES`] attributes of a tag, and drops repeated ones (html5ever ignores
//!   them anyway);
//! - drops what the sanitizer would remove anyway and what switches the parser into a mode
//!   this pass does not follow: comments, doctypes and processing instructions; `script`,
//!   `style` and `template` with their content; the tags of `svg`, `math`, `select`, `form`,
//!   `colgroup`, `html`, `head`, `body` and frames (their content stays); and the tags of the
//!   raw-text elements (`textarea`, `title`, `xmp`, `iframe`, `noembed`, `noframes`,
//!   `noscript`, `plaintext`), whose content becomes escaped text, as html5ever reads it;
//! - escapes a `<` that opens nothing (`a < b`);
//! - drops text and elements directly in a table (outside its cells) past the first
//!   [`MAX_FOSTERED`]: the tree builder moves each before the table, which costs it a walk of
//!   the table's siblings; and such text past [`MAX_FOSTERED_COST`] (see below);
//! - writes an empty comment into a long text now and then, and leaves out an attribute of a
//!   long value: html5ever's serializer, after each `&` and each character of
//!   U+0080..U+00BF (`©`, `«`, a no-break space) it writes, looks for the next `<` or `>`
//!   of its text node, to the node's end when there is none, so a text of a million `&` cost
//!   it a million scans of a megabyte. Once [`SPLIT_SPECIALS`] such characters and
//!   [`SPLIT_LEN`] bytes have come since the text node began, a comment (which the sanitizer
//!   drops) begins another one at the next place that cuts no reference in two; an
//!   attribute value of more than [`MAX_ATTRIBUTE_COST`] for its length times those
//!   characters is left out. The text moved out of a table joins one text node, which no
//!   comment splits: a run of it that would take all of it past [`MAX_FOSTERED_COST`] (its
//!   bytes times those characters) is dropped instead.
//!
//! What it leaves is exactly what html5ever then tokenizes: a well-formed document comes
//! back as it is, and the sanitizer's output for it does not change; in others, formatting
//! may end where the markup says rather than run on into the next block.

use std::borrow::Cow;

/// The most elements one document may hold open at once: what a walk of the open elements
/// costs the tree builder (a browser caps its tree at 512; feeds rarely nest 30 deep).
pub(crate) const MAX_DEPTH: usize = 128;
/// The most attributes one tag keeps.
pub(crate) const MAX_ATTRIBUTES: usize = 32;
/// The most text runs and elements one document may have directly in a table (outside its
/// cells): the tree builder moves each before the table, and finding the table among its
/// parent's children walks them all.
pub(crate) const MAX_FOSTERED: usize = 256;
/// The most that the text directly in the tables of one document may cost html5ever's
/// serializer: its bytes times the characters it scans on from (see the module doc).
pub(crate) const MAX_FOSTERED_COST: usize = 1 << 24;
/// A text node gets a comment once it has this many bytes ...
pub(crate) const SPLIT_LEN: usize = 256;
/// ... and this many characters that html5ever's serializer scans on from (see the module
/// doc).
pub(crate) const SPLIT_SPECIALS: usize = 32;
/// The most an attribute value may cost html5ever's serializer: its length times the
/// characters it scans on from.
pub(crate) const MAX_ATTRIBUTE_COST: usize = 1 << 18;

/// What begins a new text node for html5ever and is gone once sanitized.
const SEPARATOR: &str = "<!---->";

/// Whether text ending in `before` and text beginning with `after` could read as one
/// reference (or one CR LF line break) with nothing between them; `<` may begin a tag that
/// goes too.
fn may_join(before: Option<u8>, after: Option<u8>) -> bool {
    let (Some(before), Some(after)) = (before, after) else {
        return false;
    };
    let reference = (before.is_ascii_alphanumeric() || matches!(before, b'#' | b'&'))
        && (after.is_ascii_alphanumeric() || matches!(after, b'#' | b';' | b'<'));
    reference || (before == b'\r' && matches!(after, b'\n' | b'<'))
}

/// How many characters of `text` (HTML source) html5ever's serializer will scan on from:
/// each `&` (but for `&lt;` and `&gt;`, which become the `<` and `>` it looks for) and each
/// lead byte of U+0080..U+00BF.
fn specials(text: &[u8]) -> usize {
    (0..text.len()).filter(|at| is_special(text, *at)).count()
}

/// Whether `text[at]` is one of the [`specials`].
fn is_special(text: &[u8], at: usize) -> bool {
    match text[at] {
        b'&' => !text.get(at + 1..at + 3).is_some_and(|name| {
            name.eq_ignore_ascii_case(b"lt") || name.eq_ignore_ascii_case(b"gt")
        }),
        byte => byte == 0xC2,
    }
}

/// Whether a text node may end just before `text[at]` (`at > 0`) without changing the
/// text: at a character boundary, not between a CR and its LF, and not in a reference
/// (just before a `&`, or after a character that no reference continues with).
fn may_split_at(text: &[u8], at: usize) -> bool {
    let (before, here) = (text[at - 1], text[at]);
    let boundary = !(0x80..0xC0).contains(&here);
    boundary
        && before != b'\r'
        && (here == b'&' || !(before.is_ascii_alphanumeric() || matches!(before, b'#' | b'&')))
}

/// `html` bounded (see the module doc); borrowed when nothing had to change.
pub(crate) fn bound(html: &str) -> Cow<'_, str> {
    Bounder {
        src: html,
        out: None,
        kept: 0,
        open: Vec::new(),
        counts: vec![0; KNOWN.len()],
        in_template: 0,
        pre_end: None,
        fostered: 0,
        fostered_len: 0,
        fostered_specials: 0,
        node_len: 0,
        node_specials: 0,
    }
    .run()
}

/// The tag names with a role in the tree builder's rules (or in ours), sorted.
const KNOWN: [&str; 109] = [
    "a",
    "address",
    "applet",
    "area",
    "article",
    "aside",
    "b",
    "base",
    "basefont",
    "bgsound",
    "big",
    "blockquote",
    "body",
    "br",
    "button",
    "caption",
    "center",
    "code",
    "col",
    "colgroup",
    "dd",
    "details",
    "dialog",
    "dir",
    "div",
    "dl",
    "dt",
    "em",
    "embed",
    "fieldset",
    "figcaption",
    "figure",
    "font",
    "footer",
    "form",
    "frame",
    "frameset",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "head",
    "header",
    "hgroup",
    "hr",
    "html",
    "i",
    "iframe",
    "image",
    "img",
    "input",
    "isindex",
    "keygen",
    "li",
    "link",
    "listing",
    "main",
    "marquee",
    "math",
    "menu",
    "meta",
    "nav",
    "nobr",
    "noembed",
    "noframes",
    "noscript",
    "object",
    "ol",
    "optgroup",
    "option",
    "p",
    "param",
    "plaintext",
    "pre",
    "rb",
    "rp",
    "rt",
    "rtc",
    "ruby",
    "s",
    "script",
    "search",
    "section",
    "select",
    "small",
    "source",
    "strike",
    "strong",
    "style",
    "summary",
    "svg",
    "table",
    "tbody",
    "td",
    "template",
    "textarea",
    "tfoot",
    "th",
    "thead",
    "title",
    "tr",
    "track",
    "tt",
    "u",
    "ul",
    "wbr",
    "xmp",
];

/// The name of an element, as the tree builder compares them.
#[derive(Debug, Clone, Copy)]
enum Name {
    /// One of [`KNOWN`], by its index.
    Known(u8),
    /// Any other, by its place in the document (compared without ASCII case).
    Other(usize, usize),
}

impl Name {
    /// A name of [`KNOWN`] (the names this module uses all are).
    fn of(known: &str) -> Name {
        KNOWN
            .binary_search(&known)
            .map_or(Name::Other(0, 0), |at| Name::Known(at as u8))
    }

    fn known(self) -> Option<&'static str> {
        match self {
            Name::Known(at) => Some(KNOWN[usize::from(at)]),
            Name::Other(..) => None,
        }
    }

    fn is(self, set: &[&str]) -> bool {
        self.known().is_some_and(|name| set.contains(&name))
    }

    /// What the element is to the tree builder (see [`SPECIAL_F`] and the rest).
    fn flags(self) -> u32 {
        static FLAGS: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
        match self {
            Name::Known(at) => {
                FLAGS.get_or_init(|| KNOWN.iter().map(|k| flags_of(k)).collect())[usize::from(at)]
            }
            Name::Other(..) => 0,
        }
    }

    fn has(self, flags: u32) -> bool {
        self.flags() & flags != 0
    }
}

/// The tree builder's "special" elements (html5ever's `special_tag`).
const SPECIAL: [&str; 82] = [
    "address",
    "applet",
    "area",
    "article",
    "aside",
    "base",
    "basefont",
    "bgsound",
    "blockquote",
    "body",
    "br",
    "button",
    "caption",
    "center",
    "col",
    "colgroup",
    "dd",
    "details",
    "dir",
    "div",
    "dl",
    "dt",
    "embed",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "form",
    "frame",
    "frameset",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "head",
    "header",
    "hgroup",
    "hr",
    "html",
    "iframe",
    "img",
    "input",
    "isindex",
    "li",
    "link",
    "listing",
    "main",
    "marquee",
    "menu",
    "meta",
    "nav",
    "noembed",
    "noframes",
    "noscript",
    "object",
    "ol",
    "p",
    "param",
    "plaintext",
    "pre",
    "script",
    "section",
    "select",
    "source",
    "style",
    "summary",
    "table",
    "tbody",
    "td",
    "template",
    "textarea",
    "tfoot",
    "th",
    "thead",
    "title",
    "tr",
    "track",
    "ul",
    "wbr",
    "xmp",
];
/// Where a search "in scope" stops.
const DEFAULT_SCOPE: [&str; 10] = [
    "applet", "caption", "html", "table", "td", "th", "marquee", "object", "select", "template",
];
/// Start tags that close an open `<p>` in button scope.
const CLOSES_P: [&str; 36] = [
    "address",
    "article",
    "aside",
    "blockquote",
    "center",
    "details",
    "dialog",
    "dir",
    "div",
    "dl",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "header",
    "hgroup",
    "main",
    "nav",
    "ol",
    "p",
    "search",
    "section",
    "summary",
    "ul",
    "menu",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "pre",
    "listing",
    "hr",
    "table",
    "li",
];
/// End tags that close the element of their name when it is in scope.
const CLOSED_IN_SCOPE: [&str; 30] = [
    "address",
    "article",
    "aside",
    "blockquote",
    "button",
    "center",
    "details",
    "dialog",
    "dir",
    "div",
    "dl",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "header",
    "hgroup",
    "listing",
    "main",
    "menu",
    "nav",
    "ol",
    "pre",
    "search",
    "section",
    "summary",
    "ul",
    "applet",
    "marquee",
    "object",
];
const HEADINGS: [&str; 6] = ["h1", "h2", "h3", "h4", "h5", "h6"];
const FORMATTING: [&str; 14] = [
    "a", "b", "big", "code", "em", "font", "i", "nobr", "s", "small", "strike", "strong", "tt", "u",
];
const VOID: [&str; 18] = [
    "area", "base", "basefont", "bgsound", "br", "col", "embed", "hr", "image", "img", "input",
    "keygen", "link", "meta", "param", "source", "track", "wbr",
];
/// What the tree builder's "generate implied end tags" closes.
const IMPLIED_END: [&str; 10] = [
    "dd", "dt", "li", "option", "optgroup", "p", "rb", "rp", "rt", "rtc",
];
const TABLE_PARTS: [&str; 8] = [
    "table", "caption", "tbody", "thead", "tfoot", "tr", "td", "th",
];
/// Tags dropped, their content kept.
const DROPPED: [&str; 10] = [
    "html", "head", "body", "frameset", "frame", "svg", "math", "select", "form", "colgroup",
];
/// Raw-text elements whose content is text with no references.
const RAW_TEXT: [&str; 5] = ["xmp", "iframe", "noembed", "noframes", "noscript"];
/// Raw-text elements whose content is text with references.
const ESCAPABLE_RAW_TEXT: [&str; 2] = ["textarea", "title"];

fn is_space(byte: u8) -> bool {
    matches!(byte, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

/// Where a piece of the document is: start and end.
type Span = (usize, usize);

/// An attribute: its name, and its value with its quote (0 for none).
type Attribute = (Span, Option<(usize, usize, u8)>);

/// One tag as the tokenizer reads it.
struct Tag {
    name: Span,
    /// At most [`MAX_ATTRIBUTES`], first of each name.
    attributes: Vec<Attribute>,
    /// Attributes were left out (repeated, past the cap, or too costly).
    left_out: bool,
    /// The names of the attributes left out for the cost of their value.
    costly: Vec<Span>,
    self_closing: bool,
    /// Just after its `>`.
    end: usize,
}

/// Reads the tag whose name starts at `at` (after `<` or `</`) as the HTML tokenizer does;
/// `None` when the document ends inside it (the tokenizer then drops it).
fn read_tag(bytes: &[u8], mut at: usize) -> Option<Tag> {
    let name_start = at;
    while at < bytes.len() && !is_space(bytes[at]) && !matches!(bytes[at], b'/' | b'>') {
        at += 1;
    }
    let mut tag = Tag {
        name: (name_start, at),
        attributes: Vec::new(),
        left_out: false,
        costly: Vec::new(),
        self_closing: false,
        end: 0,
    };
    loop {
        while at < bytes.len() && is_space(bytes[at]) {
            at += 1;
        }
        match *bytes.get(at)? {
            b'>' => {
                tag.end = at + 1;
                return Some(tag);
            }
            b'/' => {
                if *bytes.get(at + 1)? == b'>' {
                    tag.self_closing = true;
                    tag.end = at + 2;
                    return Some(tag);
                }
                at += 1;
            }
            _ => {
                // The first character of a name may be `=`.
                let start = at;
                at += 1;
                while at < bytes.len()
                    && !is_space(bytes[at])
                    && !matches!(bytes[at], b'/' | b'>' | b'=')
                {
                    at += 1;
                }
                let name = (start, at);
                while at < bytes.len() && is_space(bytes[at]) {
                    at += 1;
                }
                let mut value = None;
                if bytes.get(at) == Some(&b'=') {
                    at += 1;
                    while at < bytes.len() && is_space(bytes[at]) {
                        at += 1;
                    }
                    match *bytes.get(at)? {
                        quote @ (b'"' | b'\'') => {
                            let close =
                                at + 1 + bytes[at + 1..].iter().position(|b| *b == quote)?;
                            value = Some((at + 1, close, quote));
                            at = close + 1;
                        }
                        // A missing value: the `>` ends the tag.
                        b'>' => value = Some((at, at, b'"')),
                        _ => {
                            let start = at;
                            while at < bytes.len() && !is_space(bytes[at]) && bytes[at] != b'>' {
                                at += 1;
                            }
                            if at == bytes.len() {
                                return None;
                            }
                            value = Some((start, at, 0));
                        }
                    }
                }
                let name_bytes = &bytes[name.0..name.1];
                let repeated = tag
                    .attributes
                    .iter()
                    .map(|(name, _)| name)
                    .chain(&tag.costly)
                    .any(|(s, e)| bytes[*s..*e].eq_ignore_ascii_case(name_bytes));
                let costly = value.is_some_and(|(start, end, _)| {
                    let value = &bytes[start..end];
                    value.len().saturating_mul(specials(value)) > MAX_ATTRIBUTE_COST
                });
                if repeated || tag.attributes.len() == MAX_ATTRIBUTES {
                    tag.left_out = true;
                } else if costly {
                    // Left out, and its name still taken: a later one of the name is not
                    // the attribute (html5ever keeps the first).
                    tag.left_out = true;
                    tag.costly.push(name);
                } else {
                    tag.attributes.push((name, value));
                }
            }
        }
    }
}

/// Where `needle` next occurs in `bytes` from `from`.
fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let first = needle[0];
    let mut at = from;
    while let Some(found) = bytes.get(at..)?.iter().position(|b| *b == first) {
        let start = at + found;
        if bytes[start..].starts_with(needle) {
            return Some(start);
        }
        at = start + 1;
    }
    None
}

/// What an element is to the tree builder's rules (bits of [`Name::flags`]).
const SPECIAL_F: u32 = 1;
/// Where a search "in scope" stops.
const SCOPE_F: u32 = 1 << 1;
const BUTTON_F: u32 = 1 << 2;
/// `ol`, `ul`: where a search for a list item stops too.
const LIST_F: u32 = 1 << 3;
const TABLE_PART_F: u32 = 1 << 4;
const MARKER_F: u32 = 1 << 5;
/// Elements whose closing the tree builder handles in ways this pass does not follow when
/// they close by implication (formatting elements are reopened or moved about, objects leave
/// markers behind): they are closed by an explicit end tag first.
const EXPLICIT_F: u32 = 1 << 6;
const HEADING_F: u32 = 1 << 7;
const IMPLIED_F: u32 = 1 << 8;
const TABLE_F: u32 = 1 << 9;
const CAPTION_F: u32 = 1 << 10;
const SECTION_F: u32 = 1 << 11;
const TR_F: u32 = 1 << 12;
const CELL_F: u32 = 1 << 13;
/// Where a search for a list item to close stops: special, but not `address`, `div`, `p`.
const ITEM_STOP_F: u32 = 1 << 14;
const CLOSES_P_F: u32 = 1 << 15;
const VOID_F: u32 = 1 << 16;
const FORMATTING_F: u32 = 1 << 17;
const CLOSED_IN_SCOPE_F: u32 = 1 << 18;
/// Tags dropped (their content kept) or turned into text.
const DROPPED_F: u32 = 1 << 19;

fn flags_of(known: &str) -> u32 {
    let sets: [(u32, &[&str]); 22] = [
        (SPECIAL_F, &SPECIAL),
        (SCOPE_F, &DEFAULT_SCOPE),
        (BUTTON_F, &["button"]),
        (LIST_F, &["ol", "ul"]),
        (TABLE_PART_F, &TABLE_PARTS),
        (MARKER_F, &MARKERS),
        (EXPLICIT_F, &FORMATTING),
        (EXPLICIT_F, &["applet", "marquee", "object"]),
        (HEADING_F, &HEADINGS),
        (IMPLIED_F, &IMPLIED_END),
        (TABLE_F, &["table"]),
        (CAPTION_F, &["caption"]),
        (SECTION_F, &["tbody", "thead", "tfoot"]),
        (TR_F, &["tr"]),
        (CELL_F, &["td", "th"]),
        (CLOSES_P_F, &CLOSES_P),
        (VOID_F, &VOID),
        (FORMATTING_F, &FORMATTING),
        (CLOSED_IN_SCOPE_F, &CLOSED_IN_SCOPE),
        (DROPPED_F, &DROPPED),
        (DROPPED_F, &RAW_TEXT),
        (DROPPED_F, &ESCAPABLE_RAW_TEXT),
    ];
    let mut flags = sets
        .iter()
        .filter(|(_, names)| names.contains(&known))
        .fold(0, |flags, (flag, _)| flags | flag);
    if SPECIAL.contains(&known) && !matches!(known, "address" | "div" | "p") {
        flags |= ITEM_STOP_F;
    }
    if matches!(known, "script" | "style" | "template" | "plaintext") {
        flags |= DROPPED_F;
    }
    flags
}

/// An element the tree builder holds open.
#[derive(Debug, Clone, Copy)]
struct Open {
    name: Name,
    flags: u32,
}

impl Open {
    fn new(name: Name) -> Open {
        Open {
            name,
            flags: name.flags(),
        }
    }

    fn has(&self, flags: u32) -> bool {
        self.flags & flags != 0
    }
}

struct Bounder<'a> {
    src: &'a str,
    /// The bounded document so far, once it differs from `src`.
    out: Option<String>,
    /// `src[..kept]` is accounted for in `out`.
    kept: usize,
    /// The elements the tree builder holds open: those of the document this pass writes.
    open: Vec<Open>,
    /// How many of each of [`KNOWN`] are open (a search for one that is not stops at once).
    counts: Vec<u32>,
    /// How deep inside dropped `<template>`s.
    in_template: usize,
    /// Where the last `<pre>` or `<listing>` start tag kept ends.
    pre_end: Option<usize>,
    /// Text runs and elements moved out of a table so far.
    fostered: usize,
    /// The text moved out of a table so far: its bytes, and its [`specials`].
    fostered_len: usize,
    fostered_specials: usize,
    /// The text written since the last element began or ended, or the last
    /// [`SEPARATOR`]: its bytes, and its [`specials`].
    node_len: usize,
    node_specials: usize,
}

/// What puts a marker in the list of active formatting elements.
const MARKERS: [&str; 6] = ["td", "th", "caption", "applet", "marquee", "object"];

impl<'a> Bounder<'a> {
    fn run(mut self) -> Cow<'a, str> {
        let len = self.src.len();
        let mut at = 0;
        while let Some(found) = self.src[at..].find('<') {
            let lt = at + found;
            self.text(at, lt);
            at = self.markup(lt);
        }
        self.text(at, len);
        match self.out {
            None => Cow::Borrowed(self.src),
            Some(mut out) => {
                out.push_str(&self.src[self.kept..]);
                Cow::Owned(out)
            }
        }
    }

    /// The text `src[start..end]`: dropped inside a template, or when it would be the
    /// [`MAX_FOSTERED`]th thing moved out of a table.
    fn text(&mut self, start: usize, end: usize) {
        if start == end {
            return;
        }
        let text = &self.src.as_bytes()[start..end];
        let space = text.iter().all(|b| is_space(*b));
        let dropped = if self.would_join(start, end) {
            SEPARATOR
        } else {
            ""
        };
        if self.in_template > 0 || (!space && !self.foster()) {
            self.edit(start, end, dropped);
        } else if self.in_table() {
            if !space && !self.fostered_within(text) {
                self.edit(start, end, dropped);
            }
        } else {
            let src = self.src;
            let at_start = self.pre_end != Some(start);
            for at in self.separations(&src.as_bytes()[start..end], at_start) {
                self.edit(start + at, start + at, SEPARATOR);
            }
        }
    }

    /// Whether `text`, moved out of a table, keeps all such text within
    /// [`MAX_FOSTERED_COST`] (and counts it if so).
    fn fostered_within(&mut self, text: &[u8]) -> bool {
        let len = self.fostered_len + text.len();
        let specials = self.fostered_specials + specials(text);
        let within = len.saturating_mul(specials) <= MAX_FOSTERED_COST;
        if within {
            (self.fostered_len, self.fostered_specials) = (len, specials);
        }
        within
    }

    /// Whether the tree builder is directly in a table (where text is moved out of it).
    fn in_table(&self) -> bool {
        self.open
            .last()
            .is_some_and(|open| open.has(TABLE_F | SECTION_F | TR_F))
    }

    /// Where in `text`, written next, a [`SEPARATOR`] goes (see the module doc);
    /// `at_start` says whether one may go before its first byte.
    fn separations(&mut self, text: &[u8], at_start: bool) -> Vec<usize> {
        let mut at = Vec::new();
        let found = specials(text);
        if self.node_len + text.len() < SPLIT_LEN || self.node_specials + found < SPLIT_SPECIALS {
            // The usual text: short, or plain enough.
            self.node_len += text.len();
            self.node_specials += found;
            return at;
        }
        for i in 0..text.len() {
            let due = self.node_len >= SPLIT_LEN && self.node_specials >= SPLIT_SPECIALS;
            if due
                && (if i == 0 {
                    at_start
                } else {
                    may_split_at(text, i)
                })
            {
                at.push(i);
                self.new_node();
            }
            self.node_len += 1;
            self.node_specials += usize::from(is_special(text, i));
        }
        at
    }

    /// A new text node begins: an element began or ended.
    fn new_node(&mut self) {
        self.node_len = 0;
        self.node_specials = 0;
    }

    /// Whether what comes next may be moved out of the table it is directly in (counting it),
    /// or must be dropped; `true` when it is not directly in a table.
    fn foster(&mut self) -> bool {
        let in_table = self
            .open
            .last()
            .is_some_and(|open| open.has(TABLE_F | SECTION_F | TR_F));
        if !in_table {
            return true;
        }
        self.fostered += 1;
        self.fostered <= MAX_FOSTERED
    }

    /// Replaces `src[start..end]` with `with` (inserts it where `start == end`).
    fn edit(&mut self, start: usize, end: usize, with: &str) {
        if start == end && with.is_empty() {
            return;
        }
        let out = self
            .out
            .get_or_insert_with(|| String::with_capacity(self.src.len() + 64));
        out.push_str(&self.src[self.kept..start]);
        out.push_str(with);
        self.kept = end;
    }

    /// Drops `src[start..end]`, a token or more. Just after `<pre>` or `<listing>`, and
    /// directly in a table, an empty comment stays in its place: the tree builder skips a
    /// line break only if it comes next, token after token, and moves white space out of a
    /// table with the text that follows it unless a token comes between.
    fn drop(&mut self, start: usize, end: usize) {
        let in_table = self
            .open
            .last()
            .is_some_and(|open| open.has(TABLE_F | SECTION_F | TR_F));
        let with = if self.pre_end == Some(start) || in_table || self.would_join(start, end) {
            "<!---->"
        } else {
            ""
        };
        self.edit(start, end, with);
    }

    /// The last byte written so far, with `src[..at]` written.
    fn written_before(&self, at: usize) -> Option<u8> {
        if at > self.kept {
            self.src.as_bytes().get(at - 1).copied()
        } else {
            self.out
                .as_ref()
                .and_then(|out| out.as_bytes().last().copied())
        }
    }

    /// Whether dropping `src[start..end]` would join the text around it into a reference
    /// that was not one (`&#x4` and `1;`, `&` and `amp;`).
    fn would_join(&self, start: usize, end: usize) -> bool {
        may_join(
            self.written_before(start),
            self.src.as_bytes().get(end).copied(),
        )
    }

    fn name(&self, (start, end): (usize, usize)) -> Name {
        let bytes = &self.src.as_bytes()[start..end];
        let mut lower = [0u8; 10];
        if bytes.len() <= lower.len() {
            for (l, b) in lower.iter_mut().zip(bytes) {
                *l = b.to_ascii_lowercase();
            }
            if let Ok(name) = std::str::from_utf8(&lower[..bytes.len()]) {
                if let Ok(known) = KNOWN.binary_search(&name) {
                    return Name::Known(known as u8);
                }
            }
        }
        Name::Other(start, end)
    }

    fn same(&self, a: Name, b: Name) -> bool {
        match (a, b) {
            (Name::Known(a), Name::Known(b)) => a == b,
            (Name::Other(s1, e1), Name::Other(s2, e2)) => {
                self.src.as_bytes()[s1..e1].eq_ignore_ascii_case(&self.src.as_bytes()[s2..e2])
            }
            _ => false,
        }
    }

    /// The markup at `lt` (a `<`); returns where it ends.
    fn markup(&mut self, lt: usize) -> usize {
        let bytes = self.src.as_bytes();
        let len = bytes.len();
        let until_gt = |from: usize| find(bytes, from, b">").map_or(len, |gt| gt + 1);
        match bytes.get(lt + 1) {
            Some(b'!') => {
                let end = if bytes[lt + 2..].starts_with(b"--") {
                    let from = lt + 4;
                    if bytes[from..].starts_with(b">") {
                        from + 1
                    } else if bytes[from..].starts_with(b"->") {
                        from + 2
                    } else {
                        let dashes = find(bytes, from, b"-->").map(|at| (at, at + 3));
                        let bang = find(bytes, from, b"--!>").map(|at| (at, at + 4));
                        match (dashes, bang) {
                            (Some(d), Some(b)) => d.min(b).1,
                            (Some((_, end)), None) | (None, Some((_, end))) => end,
                            (None, None) => len,
                        }
                    }
                } else {
                    until_gt(lt + 2)
                };
                self.drop(lt, end);
                end
            }
            Some(b'?') => {
                let end = until_gt(lt + 2);
                self.drop(lt, end);
                end
            }
            Some(b'/') => match bytes.get(lt + 2) {
                Some(c) if c.is_ascii_alphabetic() => self.end_tag(lt),
                Some(b'>') => {
                    self.drop(lt, lt + 3);
                    lt + 3
                }
                None => {
                    let text = if self.in_template > 0 || !self.foster() {
                        ""
                    } else {
                        "&lt;/"
                    };
                    self.edit(lt, len, text);
                    len
                }
                Some(_) => {
                    let end = until_gt(lt + 2);
                    self.drop(lt, end);
                    end
                }
            },
            Some(c) if c.is_ascii_alphabetic() => self.start_tag(lt),
            _ => {
                let text = if self.in_template > 0 || !self.foster() {
                    ""
                } else {
                    "&lt;"
                };
                self.edit(lt, lt + 1, text);
                lt + 1
            }
        }
    }

    fn start_tag(&mut self, lt: usize) -> usize {
        let bytes = self.src.as_bytes();
        let Some(tag) = read_tag(bytes, lt + 1) else {
            self.drop(lt, bytes.len());
            return bytes.len();
        };
        let name = self.name(tag.name);
        if self.in_template > 0 {
            if name.is(&["template"]) {
                self.in_template += 1;
            }
            self.drop(lt, tag.end);
            return tag.end;
        }
        if !name.has(DROPPED_F) {
            return self.element(lt, tag, name);
        }
        match name.known() {
            Some("script" | "style") => {
                let (_, end) = self.raw_end(tag.end, name);
                self.drop(lt, end);
                end
            }
            Some("template") => {
                self.in_template = 1;
                self.drop(lt, tag.end);
                tag.end
            }
            Some(raw)
                if RAW_TEXT.contains(&raw)
                    || ESCAPABLE_RAW_TEXT.contains(&raw)
                    || raw == "plaintext" =>
            {
                let (content_end, end) = if raw == "plaintext" {
                    (bytes.len(), bytes.len())
                } else {
                    self.raw_end(tag.end, name)
                };
                let mut content = &self.src[tag.end..content_end];
                if raw == "textarea" {
                    // The tree builder skips a line break just after `<textarea>`.
                    content = content
                        .strip_prefix("\r\n")
                        .or_else(|| content.strip_prefix(['\n', '\r']))
                        .unwrap_or(content);
                }
                let mut text = if content.bytes().all(is_space) || self.foster() {
                    if ESCAPABLE_RAW_TEXT.contains(&raw) {
                        content.replace('<', "&lt;")
                    } else {
                        content.replace('&', "&amp;").replace('<', "&lt;")
                    }
                } else {
                    String::new()
                };
                if self.in_table() {
                    if !self.fostered_within(text.as_bytes()) {
                        text.clear();
                    }
                } else {
                    let separations = self.separations(text.as_bytes(), true);
                    if !separations.is_empty() {
                        let mut separated = String::with_capacity(text.len() + 64);
                        let mut kept = 0;
                        for at in separations {
                            separated.push_str(&text[kept..at]);
                            separated.push_str(SEPARATOR);
                            kept = at;
                        }
                        separated.push_str(&text[kept..]);
                        text = separated;
                    }
                }
                // The text must not begin a `<pre>` (whose first line break would go) nor
                // join the text around it into a reference.
                let bytes = self.src.as_bytes();
                if self.pre_end == Some(lt)
                    || may_join(self.written_before(lt), text.bytes().next())
                {
                    text.insert_str(0, SEPARATOR);
                }
                if may_join(
                    text.bytes().last().or(self.written_before(lt)),
                    bytes.get(end).copied(),
                ) {
                    text.push_str(SEPARATOR);
                }
                self.edit(lt, end, &text);
                end
            }
            Some(dropped) if DROPPED.contains(&dropped) => {
                self.drop(lt, tag.end);
                tag.end
            }
            _ => self.element(lt, tag, name),
        }
    }

    /// Where the raw text after a start tag of `name` ends (`</name` followed by a space,
    /// `/` or `>`), and where its end tag does.
    fn raw_end(&self, from: usize, name: Name) -> (usize, usize) {
        let bytes = self.src.as_bytes();
        let name = name.known().unwrap_or_default().as_bytes();
        let mut at = from;
        while let Some(found) = find(bytes, at, b"</") {
            let after = found + 2 + name.len();
            let matches = bytes
                .get(found + 2..after)
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
                && bytes
                    .get(after)
                    .is_none_or(|b| is_space(*b) || matches!(b, b'/' | b'>'));
            if matches {
                let end = read_tag(bytes, found + 2).map_or(bytes.len(), |tag| tag.end);
                return (found, end);
            }
            at = found + 2;
        }
        (bytes.len(), bytes.len())
    }

    /// Writes, before `at`, end tags that close the open elements past the first `keep`,
    /// the current one first: each closes exactly the current element, as the tree builder
    /// reads it.
    fn close_explicitly(&mut self, at: usize, keep: usize) {
        let mut closing = String::new();
        while self.open.len() > keep {
            let Some(open) = self.pop() else {
                break;
            };
            closing.push_str("</");
            closing.push_str(match open.name {
                Name::Known(_) => open.name.known().unwrap_or_default(),
                Name::Other(start, end) => &self.src[start..end],
            });
            closing.push('>');
        }
        self.edit(at, at, &closing);
    }

    /// Closes the open elements past the first `keep`, as the tree builder will on the
    /// token at `at`; first explicitly (see [`EXPLICIT_F`]) if any of them needs it.
    fn close_to(&mut self, at: usize, keep: usize) {
        if self.open[keep.min(self.open.len())..]
            .iter()
            .any(|open| open.has(EXPLICIT_F))
        {
            self.close_explicitly(at, keep);
        }
        self.truncate(keep);
    }

    fn push(&mut self, name: Name) {
        if let Name::Known(at) = name {
            self.counts[usize::from(at)] += 1;
        }
        self.open.push(Open::new(name));
    }

    fn pop(&mut self) -> Option<Open> {
        let open = self.open.pop()?;
        if let Name::Known(at) = open.name {
            self.counts[usize::from(at)] -= 1;
        }
        Some(open)
    }

    fn truncate(&mut self, keep: usize) {
        while self.open.len() > keep {
            self.pop();
        }
    }

    /// Whether any element named in `names` is open.
    fn any_open(&self, names: &[&str]) -> bool {
        names.iter().any(|name| {
            KNOWN
                .binary_search(name)
                .map_or(true, |at| self.counts[at] > 0)
        })
    }

    /// Whether an element the tree builder treats as special is open past the first `from`.
    fn special_past(&self, from: usize) -> bool {
        self.open[from..].iter().any(|open| open.has(SPECIAL_F))
    }

    /// The nearest open `name` that is not behind a marker (as the active formatting
    /// elements would hold it).
    fn active(&self, name: &str) -> Option<usize> {
        self.nearest(self.open.len(), &[name], MARKER_F)
    }

    /// A start tag the tree builder makes an element of (or ignores).
    fn element(&mut self, lt: usize, tag: Tag, name: Name) -> usize {
        if !name.has(TABLE_PART_F) && !name.is(&["col"]) && !self.foster() {
            self.drop(lt, tag.end);
            return tag.end;
        }
        // A link in a link, a nobr in a nobr: the tree builder closes the outer one, moving
        // elements about if blocks are open in it. Closed here first, or the inner one is
        // dropped when blocks are in the way.
        let outer = match name.known() {
            Some("a") => self.active("a"),
            Some("nobr") => self.nearest(self.open.len(), &["nobr"], SCOPE_F),
            _ => None,
        };
        if let Some(outer) = outer {
            if self.special_past(outer + 1) {
                self.drop(lt, tag.end);
                return tag.end;
            }
            self.close_explicitly(lt, outer);
        }
        match self.plan_start(name) {
            // The tree builder ignores it (a cell outside any table): nothing opens.
            None => {}
            Some((keep, pushes)) if keep + pushes.iter().flatten().count() <= MAX_DEPTH => {
                self.close_to(lt, keep);
                for push in pushes.into_iter().flatten() {
                    self.push(push);
                }
                self.new_node();
            }
            Some(_) => {
                self.drop(lt, tag.end);
                return tag.end;
            }
        }
        if tag.left_out {
            let rewritten = self.rewrite(&tag);
            self.edit(lt, tag.end, &rewritten);
        }
        if name.is(&["pre", "listing"]) {
            self.pre_end = Some(tag.end);
        }
        tag.end
    }

    /// A start tag written again with the attributes kept.
    fn rewrite(&self, tag: &Tag) -> String {
        let src = self.src;
        let mut out = format!("<{}", &src[tag.name.0..tag.name.1]);
        for ((name_start, name_end), value) in &tag.attributes {
            out.push(' ');
            out.push_str(&src[*name_start..*name_end]);
            if let Some((start, end, quote)) = value {
                let value = &src[*start..*end];
                out.push_str("=\"");
                if *quote == b'"' {
                    out.push_str(value);
                } else {
                    out.push_str(&value.replace('"', "&quot;"));
                }
                out.push('"');
            }
        }
        if tag.self_closing {
            out.push('/');
        }
        out.push('>');
        out
    }

    /// What the tree builder does with a start tag of `name`: how many of the open elements
    /// it keeps, and the elements it opens (implied ones first); `None` if it ignores it
    /// (a part of a table while no table is open).
    fn plan_start(&self, name: Name) -> Option<(usize, [Option<Name>; 3])> {
        let mut keep = self.open.len();
        let one = |name| [Some(name), None, None];
        match name.known() {
            Some(part @ ("caption" | "col" | "tbody" | "thead" | "tfoot" | "tr" | "td" | "th")) => {
                return self.plan_table_part(part, name)
            }
            Some("table") => {
                // In a table, its body or a row, a table closes the open one.
                while let Some((_, "table" | "tbody" | "thead" | "tfoot" | "tr")) =
                    self.nearest_table_part(keep)
                {
                    keep = self.nearest(keep, &["table"], 0).unwrap_or(0);
                }
                return Some((self.close_p(keep), one(name)));
            }
            Some("li") => {
                keep = self.close_item(keep, &["li"]);
                keep = self.close_p(keep);
            }
            Some("dd" | "dt") => {
                keep = self.close_item(keep, &["dd", "dt"]);
                keep = self.close_p(keep);
            }
            Some(_) if name.has(HEADING_F) => {
                keep = self.close_p(keep);
                if keep > 0 && self.open[keep - 1].has(HEADING_F) {
                    keep -= 1;
                }
            }
            Some(_) if name.has(CLOSES_P_F) => keep = self.close_p(keep),
            Some("button") => {
                if let Some(button) = self.nearest(keep, &["button"], SCOPE_F) {
                    keep = button;
                }
            }
            Some("option" | "optgroup") if keep > 0 && self.open[keep - 1].name.is(&["option"]) => {
                keep -= 1;
            }
            Some(ruby @ ("rb" | "rtc" | "rp" | "rt"))
                if self.nearest(keep, &["ruby"], SCOPE_F).is_some() =>
            {
                let rtc_too = matches!(ruby, "rb" | "rtc");
                while keep > 0
                    && self.open[keep - 1].has(IMPLIED_F)
                    && (rtc_too || !self.open[keep - 1].name.is(&["rtc"]))
                {
                    keep -= 1;
                }
            }
            _ => {}
        }
        if name.has(VOID_F) {
            Some((keep, [None; 3]))
        } else {
            Some((keep, one(name)))
        }
    }

    /// [`Bounder::plan_start`] for the parts of a table, by the mode the nearest open part
    /// puts the tree builder in.
    fn plan_table_part(&self, part: &str, name: Name) -> Option<(usize, [Option<Name>; 3])> {
        let tbody = Name::of("tbody");
        let tr = Name::of("tr");
        let mut keep = self.open.len();
        loop {
            // No table open: the tree builder ignores the tag.
            let (at, nearest) = self.nearest_table_part(keep)?;
            let done = |pushes| Some((at + 1, pushes));
            match (nearest, part) {
                // A cell or a caption closes first.
                ("td" | "th" | "caption", _) => keep = at,
                ("tr", "td" | "th") => return done([Some(name), None, None]),
                ("tr", _) => keep = at,
                ("tbody" | "thead" | "tfoot", "tr") => return done([Some(name), None, None]),
                ("tbody" | "thead" | "tfoot", "td" | "th") => {
                    return done([Some(tr), Some(name), None])
                }
                ("tbody" | "thead" | "tfoot", _) => keep = at,
                (_, "col") => return done([None; 3]),
                (_, "tr") => return done([Some(tbody), Some(name), None]),
                (_, "td" | "th") => return done([Some(tbody), Some(tr), Some(name)]),
                _ => return done([Some(name), None, None]),
            }
        }
    }

    fn end_tag(&mut self, lt: usize) -> usize {
        let bytes = self.src.as_bytes();
        let Some(tag) = read_tag(bytes, lt + 2) else {
            self.drop(lt, bytes.len());
            return bytes.len();
        };
        let name = self.name(tag.name);
        if self.in_template > 0 {
            if name.is(&["template"]) {
                self.in_template -= 1;
            }
            self.drop(lt, tag.end);
            return tag.end;
        }
        if name.has(DROPPED_F) {
            self.drop(lt, tag.end);
            return tag.end;
        }
        if name.is(&["p", "br"]) && !self.foster() {
            // Both may make an element, moved out of the table.
            self.drop(lt, tag.end);
            return tag.end;
        }
        let target = match name.known() {
            // The adoption agency: closes the formatting element if only other formatting
            // (or plain) elements are open in it; with a block open in it, it moves elements
            // about, so the end tag is dropped (the formatting goes on to the block's end).
            Some(formatting) if name.has(FORMATTING_F) => match self.active(formatting) {
                Some(at) if self.special_past(at + 1) => {
                    self.drop(lt, tag.end);
                    return tag.end;
                }
                Some(at) => Some(at),
                None => self.plan_end(name),
            },
            _ => self.plan_end(name),
        };
        if let Some(target) = target {
            self.close_to(lt, target + 1);
            self.truncate(target);
            self.new_node();
        }
        if !tag.attributes.is_empty() || tag.left_out || tag.self_closing {
            // The tree builder ignores them; the tokenizer would still compare them all.
            let rewritten = format!("</{}>", &self.src[tag.name.0..tag.name.1]);
            self.edit(lt, tag.end, &rewritten);
        }
        tag.end
    }

    /// The open element an end tag of `name` closes (with all the elements after it), if any.
    fn plan_end(&self, name: Name) -> Option<usize> {
        let keep = self.open.len();
        match name.known() {
            Some("p") => Some(self.close_p(keep)).filter(|p| *p < keep),
            Some("li") => self.nearest(keep, &["li"], SCOPE_F | LIST_F),
            Some(item @ ("dd" | "dt")) => self.nearest(keep, &[item], SCOPE_F),
            Some(_) if name.has(HEADING_F) => self.nearest(keep, &HEADINGS, SCOPE_F),
            Some(closed) if name.has(CLOSED_IN_SCOPE_F) => self.nearest(keep, &[closed], SCOPE_F),
            Some("table") => self.nearest(keep, &["table"], 0),
            Some("caption") => self.nearest(keep, &["caption"], TABLE_F),
            Some(section @ ("tbody" | "thead" | "tfoot")) => {
                self.nearest(keep, &[section], TABLE_F | CAPTION_F)
            }
            Some("tr") => self.nearest(keep, &["tr"], TABLE_F | CAPTION_F | SECTION_F),
            Some(cell @ ("td" | "th")) => self.nearest(
                keep,
                &[cell],
                TABLE_F | CAPTION_F | SECTION_F | TR_F | CELL_F,
            ),
            Some("br" | "body" | "html") => None,
            // Any other end tag: the nearest open element of its name, unless a special
            // element comes first.
            _ => {
                for at in (0..keep).rev() {
                    let open = self.open[at];
                    if self.same(open.name, name) {
                        return Some(at);
                    }
                    if open.has(SPECIAL_F) {
                        return None;
                    }
                }
                None
            }
        }
    }

    /// The index of the nearest of the first `keep` open elements named in `targets`, unless
    /// one with any of the `stops` flags comes first.
    fn nearest(&self, keep: usize, targets: &[&str], stops: u32) -> Option<usize> {
        if !self.any_open(targets) {
            return None;
        }
        for at in (0..keep).rev() {
            let open = self.open[at];
            if open.name.is(targets) {
                return Some(at);
            }
            if open.has(stops) {
                return None;
            }
        }
        None
    }

    /// The nearest open part of a table, and which it is.
    fn nearest_table_part(&self, keep: usize) -> Option<(usize, &'static str)> {
        if !self.any_open(&TABLE_PARTS) {
            return None;
        }
        (0..keep).rev().find_map(|at| {
            let open = self.open[at];
            open.has(TABLE_PART_F)
                .then(|| open.name.known().map(|part| (at, part)))
                .flatten()
        })
    }

    /// What is left open once an open `<p>` in button scope closes.
    fn close_p(&self, keep: usize) -> usize {
        self.nearest(keep, &["p"], SCOPE_F | BUTTON_F)
            .unwrap_or(keep)
    }

    /// What is left open once a list item (`li`, or `dd`/`dt`) closes for a new one.
    fn close_item(&self, keep: usize, items: &[&str]) -> usize {
        for at in (0..keep).rev() {
            let open = self.open[at];
            if open.name.is(items) {
                return at;
            }
            if open.has(ITEM_STOP_F) {
                break;
            }
        }
        keep
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The sanitizer's allow-list, and one that keeps every element of the tests (to see
    /// the tree html5ever built).
    fn clean(html: &str) -> String {
        ammonia::Builder::default().clean(html).to_string()
    }

    const ELEMENTS: [&str; 52] = [
        "div",
        "span",
        "p",
        "b",
        "i",
        "em",
        "strong",
        "a",
        "u",
        "s",
        "font",
        "nobr",
        "code",
        "table",
        "tbody",
        "tr",
        "td",
        "th",
        "caption",
        "col",
        "li",
        "ul",
        "ol",
        "dd",
        "dt",
        "dl",
        "h1",
        "h2",
        "button",
        "option",
        "ruby",
        "rt",
        "rb",
        "blockquote",
        "section",
        "x-custom",
        "object",
        "marquee",
        "pre",
        "img",
        "dialog",
        "search",
        "applet",
        "isindex",
        "listing",
        "address",
        "h3",
        "rtc",
        "rp",
        "optgroup",
        "thead",
        "tfoot",
    ];

    fn tree(html: &str) -> String {
        ammonia::Builder::default()
            .add_tags(ELEMENTS)
            .add_generic_attributes(["title", "x"])
            .clean(html)
            .to_string()
    }

    /// The deepest nesting of elements in serialized HTML (html5ever writes every end tag).
    fn depth(serialized: &str) -> usize {
        let (mut depth, mut deepest) = (0usize, 0);
        let mut rest = serialized;
        while let Some(at) = rest.find('<') {
            rest = &rest[at + 1..];
            let closing = rest.starts_with('/');
            let name: String = rest
                .trim_start_matches('/')
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect();
            if closing {
                depth = depth.saturating_sub(1);
            } else if !VOID.contains(&name.as_str()) {
                depth += 1;
                deepest = deepest.max(depth);
            }
        }
        deepest
    }

    #[test]
    fn plain_markup_comes_back_as_it_is() {
        let plain = [
            "",
            "Just text, with &amp; &eacute; &#x4e2d; and &nbsp;.",
            "<p>One <b>bold</b> and <a href=\"https://x.example/?a=1&amp;b=2\" title='it&apos;s'>a link</a>.</p>",
            "<p>Unclosed paragraphs<p>are common<p>in old feeds",
            "<ul><li>one<li>two<li>three</ul><ol><li><p>deep</ol>",
            "<dl><dt>term<dd>definition<dt>term<dd>definition</dl>",
            "<table><tr><td>a<td>b<tr><td>c<td>d</table><table><thead><tr><th>h</thead><tbody><tr><td>x</tbody></table>",
            "<table><caption>c</caption><col span=2><tr><td><table><tr><td>nested</table></td></tr></table>",
            "<h1>Title<h2>Sub</h2></h1><blockquote cite=x><p>q</blockquote>",
            "<img src=i.png alt=\"a > b\"><br/><hr><input type=hidden>",
            "<ruby>漢<rt>kan</rt>字<rp>(</rp><rt>ji</rt><rp>)</rp></ruby>",
            "<button>one<button>two</button>",
            "<option>a<option>b",
            "<p x='a\"b' y=c\"d z>attributes</p>",
        ];
        for html in plain {
            assert!(matches!(bound(html), Cow::Borrowed(_)), "{html}");
        }
        let deep_but_fine = format!(
            "{}x{}",
            "<div>".repeat(MAX_DEPTH),
            "</div>".repeat(MAX_DEPTH)
        );
        assert!(matches!(bound(&deep_but_fine), Cow::Borrowed(_)));
        let many_paragraphs = "<p>unclosed ".repeat(10 * MAX_DEPTH);
        assert!(matches!(bound(&many_paragraphs), Cow::Borrowed(_)));
        let many_cells = "<tr><td>a<td>b".repeat(10 * MAX_DEPTH);
        let table = format!("<table>{many_cells}</table>");
        assert!(matches!(bound(&table), Cow::Borrowed(_)));
        // The tree builder ignores the parts of a table outside one; so does the count.
        let stray = "<td><div>x</div>".repeat(10 * MAX_DEPTH);
        assert!(matches!(bound(&stray), Cow::Borrowed(_)));
    }

    #[test]
    fn what_it_changes_sanitizes_the_same() {
        let changed = [
            "a < b, <3 and <",
            "<!-- a comment --><p>text<!-- <div><div> -->",
            "<!--><p>abrupt</p><!---><p>too</p><!-- x --!><p>bang</p>",
            "<!DOCTYPE html><?xml version='1.0'?><![CDATA[x]]><p>after",
            "</><p>empty end tag</p></ bogus>",
            "<script>alert('<p>')</script><style>p{}</style><p>kept</p>",
            "<SCRIPT>x</ScRiPt >y</script>",
            "<iframe src=x><p>fallback</iframe>after",
            "<noscript><img src=x></noscript><xmp><b>x</b> &amp;</xmp>",
            "<textarea>\nline &amp; <b></textarea><title>t &lt; <i></title>",
            "<template><p>hidden</p><template>x</template>still</template>shown",
            "<form><input name=q></form><select><option>a<option>b</select>",
            "<html><body><p>in body</body></html>",
            "<p title=\"a\" title=\"b\">repeated</p>",
            "<b></b a=1><p>end tag attributes</p>",
            "<plaintext><b>all text</plaintext>",
            "<p>cut in a tag <a href='x",
            "<p>cut in a comment <!-- x",
            "<pre><!-- c -->\nkept line break</pre><pre><script></script>\nthis one too</pre>",
        ];
        for html in changed {
            let bounded = bound(html);
            assert_eq!(clean(&bounded), clean(html), "{html}\nbounded: {bounded}");
        }
        // Formatting that the tree builder would reopen or move ends where the markup says;
        // the text stays.
        let formatting = [
            "<div><span><b>misnested</div></span></b> after",
            "<a href=x><div>block in link</div></a><b><p>reparented</b></p>",
            "<p><b>bold</p>and on",
            "<b><i></b></i>text",
            "<a href=1>one<a href=2>two",
            "<a href=1><div><a href=2>two</a></div></a>",
            "<table><b>fostered<td>cell</td></table>",
            "<td><object><b>in an object</td>",
        ];
        for html in changed.iter().chain(&formatting) {
            let empty = ammonia::Builder::empty();
            assert_eq!(
                empty.clean(&bound(html)).to_string(),
                empty.clean(html).to_string(),
                "{html}"
            );
        }
        assert_eq!(
            clean(&bound("<p><b>bold</p>and on")),
            "<p><b>bold</b></p>and on"
        );
    }

    /// Formatting elements: the tree builder reopens and moves them, which bounding stops.
    fn formatting(piece: &str) -> bool {
        FORMATTING
            .iter()
            .any(|f| piece.starts_with(&format!("<{f}")) || piece.starts_with(&format!("</{f}")))
            && !piece.starts_with("<br")
            && !piece.starts_with("</br")
    }

    /// Tag soup from pieces that the tokenizer and the tree builder treat in many ways.
    fn soup_of(with_formatting: bool) -> impl Strategy<Value = String> {
        let elements: Vec<&str> = ELEMENTS
            .iter()
            .copied()
            .filter(|e| with_formatting || !FORMATTING.contains(e))
            .collect();
        let others: Vec<&str> = [
            "<b title=1>",
            "<b title=2>",
            "<i x=\"a>b\">",
            "<a href='y'>",
            "<p/>",
            "<DIV>",
            "</Div >",
            "<td rowspan=2 rowspan=3>",
            "<img src=\"i.png\">",
            "<br>",
            "</br>",
            "</p>",
            "<hr>",
            "<col>",
            "<input>",
            "<!--c-->",
            "<!-->",
            "<!--->",
            "<!-- a --!>",
            "<!x>",
            "<?p?>",
            "</>",
            "</ x>",
            "<",
            "< b",
            "<3",
            "&amp;",
            "&lt;b&gt;",
            "&",
            "&notin;",
            "&#x3c;",
            "text",
            " ",
            "\n",
            "é",
            "\"",
            "'",
            "=",
            ">",
            "<pre>",
            "<listing>",
            "<script>s<b></script>",
            "<style>p{}</style>",
            "<!DOCTYPE html>",
        ]
        .into_iter()
        .filter(|piece| with_formatting || !formatting(piece))
        .collect();
        let piece = prop_oneof![
            4 => prop::sample::select(elements.clone()).prop_map(|e| format!("<{e}>")),
            3 => prop::sample::select(elements).prop_map(|e| format!("</{e}>")),
            1 => prop::sample::select(others).prop_map(str::to_string),
        ];
        prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
    }

    fn soup() -> impl Strategy<Value = String> {
        soup_of(true)
    }

    /// [`soup`] with what bounding drops or turns into text.
    fn any_soup() -> impl Strategy<Value = String> {
        let dropped = prop::sample::select(vec![
            "<textarea>t",
            "</textarea>",
            "<title>",
            "<iframe>",
            "<noscript>",
            "<xmp>",
            "<svg>",
            "</svg>",
            "<math>",
            "<mi>",
            "<select>",
            "</select>",
            "<template>",
            "</template>",
            "<form>",
            "</form>",
            "<colgroup>",
            "</colgroup>",
            "<frameset>",
            "<body>",
            "<html>",
            "<caption>",
            "</caption>",
            "<image>",
            "<big>",
            "</big>",
            "<![CDATA[x]]>",
            "<script>",
            "</script>",
            "<style>",
            "<plaintext>",
        ])
        .prop_map(str::to_string);
        prop::collection::vec(prop_oneof![6 => soup(), 1 => dropped], 0..6)
            .prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]

        /// Bounding changes nothing the sanitizer keeps of a soup without formatting
        /// elements, as long as it stays within the bounds: whatever this pass misread
        /// would show. (Raw-text elements are left out: their text, once plain, is reopened
        /// in the formatting elements a block closed, which their element was not.)
        #[test]
        fn bounded_soup_sanitizes_the_same(html in soup_of(false)) {
            let bounded = bound(&html);
            prop_assert_eq!(tree(&bounded), tree(&html), "bounded: {}", bounded);
        }

        /// With formatting elements, the text is the same, but for where white space
        /// lands: inside a table, html5ever keeps white space in place and moves other text
        /// out before the table (`<table><b><thead><input> <col><` reads " &lt;"), and a
        /// formatting element this pass closed changes which of the two a space is.
        #[test]
        fn bounded_soup_keeps_its_text(html in soup()) {
            let bounded = bound(&html);
            let empty = ammonia::Builder::empty();
            let text = |html: &str| -> String {
                empty.clean(html).to_string().chars().filter(|c| !c.is_whitespace()).collect()
            };
            prop_assert_eq!(text(&bounded), text(&html), "bounded: {}", bounded);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// Whatever the soup, once bounded, html5ever nests no deeper than the bound and
        /// writes no more than a constant times what it read.
        #[test]
        fn bounded_soup_stays_within_the_bounds(
            unit in prop::collection::vec(any_soup(), 1..4),
            times in 20usize..200,
        ) {
            let html = unit.concat().repeat(times);
            let built = tree(&bound(&html));
            // (A `</p>` with no `<p>` open makes an empty one, one deeper.)
            prop_assert!(depth(&built) <= MAX_DEPTH + 1, "{} deep", depth(&built));
            prop_assert!(
                built.len() <= 8 * html.len() + 1000,
                "{} bytes from {}",
                built.len(),
                html.len()
            );
        }
    }

    /// Hostile patterns, each repeated past every bound.
    fn hostile(times: usize) -> Vec<(&'static str, String)> {
        let each = |f: &dyn Fn(usize) -> String| (0..times).map(f).collect::<String>();
        vec![
            ("nested divs", "<div>".repeat(times)),
            ("nested spans", "<span>".repeat(times)),
            ("nested custom", "<x-custom>".repeat(times)),
            (
                "nested blockquotes in lists",
                "<ul><li><blockquote>".repeat(times),
            ),
            ("nested tables", "<table><tr><td>".repeat(times)),
            ("nested captions", "<table><caption>".repeat(times)),
            ("nested objects", "<object>".repeat(times)),
            (
                "formatting reopened",
                each(&|i| format!("<p><b title={i}>t</p>")),
            ),
            (
                "formatting reopened by a",
                each(&|i| format!("<p><a href={i}><i x={i}>t</p>")),
            ),
            (
                "identical formatting",
                "<p><b><i><u><s><em>t</p>".repeat(times),
            ),
            ("misnested formatting", "<b><i></b></i>".repeat(times)),
            ("adoption agency", "<b><span><div></b>".repeat(times)),
            (
                "adoption agency ended",
                "<a><span><div></a></div>x".repeat(times),
            ),
            ("ignored end tags", "<span><div></span>".repeat(times)),
            (
                "cells closing spans",
                "<table><span><td></td>".repeat(times),
            ),
            ("text out of tables", "<table>x</table>".repeat(times)),
            (
                "elements out of tables",
                "<table><tr><span>x</span><img></tr></table>".repeat(times),
            ),
            ("stray cells", "<td><div>".repeat(times)),
            ("ruby", "<ruby><li><rb><x-custom>".repeat(times)),
            ("nested buttons", "<div><button><span>".repeat(times)),
            (
                "formatting reopened under buttons",
                "<ol><button><div><b><b>".repeat(times),
            ),
            (
                "formatting reopened under options",
                "<option><p><b><i></p>t".repeat(times),
            ),
            (
                "formatting left open by links",
                "<a><b><i></a>t".repeat(times),
            ),
            ("headings", "<h1><span><h2><span>".repeat(times)),
            ("paragraphs in spans", "<span><p>".repeat(times)),
            ("list items in spans", "<span><li>".repeat(times)),
            (
                "attributes",
                format!("<p {}>x</p>", each(&|i| format!("a{i}=1 "))),
            ),
            (
                "repeated attributes",
                format!("<p {}>x</p>", "a=1 ".repeat(times)),
            ),
            (
                "end tag attributes",
                format!("<p></p {}>", each(&|i| format!("a{i}=1 "))),
            ),
            ("a text of references", "&amp;".repeat(10 * times)),
            ("a text of ampersands", "&".repeat(50 * times)),
            ("a text of signs", "©".repeat(25 * times)),
            (
                "references in an attribute",
                format!("<abbr title=\"{}\">x</abbr>", "&amp;".repeat(10 * times)),
            ),
            (
                "references out of a table",
                format!("<table>{}</table>", "&amp;".repeat(10 * times)),
            ),
        ]
    }

    #[test]
    fn hostile_markup_stays_within_the_bounds() {
        for (what, html) in hostile(2000) {
            let bounded = bound(&html);
            let built = tree(&bounded);
            assert!(
                depth(&built) <= MAX_DEPTH + 1,
                "{what}: {} deep",
                depth(&built)
            );
            assert!(
                built.len() <= 8 * html.len() + 1000,
                "{what}: {} bytes from {}",
                built.len(),
                html.len()
            );
        }
    }

    #[test]
    fn long_texts_of_references_are_split_and_read_the_same() {
        let n = 2000;
        let texts = [
            format!("<p>{}</p>", "&".repeat(n)),
            format!("<p>{}</p>", "&amp;".repeat(n)),
            format!("<p>{}</p>", "©".repeat(n)),
            "a&b".repeat(n),
            // References cut nowhere: long numeric ones, legacy ones without `;`, CR LF.
            format!(
                "<p>{}</p>",
                "&#00000000000000000000000000000000000065;&".repeat(n / 8)
            ),
            format!("<p>{}</p>", "&notin&not;&noti&".repeat(n / 8)),
            format!("<p>{}</p>", "&\r\n&\r&\n".repeat(n / 4)),
            format!("<p>{}</p>", "&amp©&#x41&copy ".repeat(n / 8)),
            // Text nodes made of many runs: ignored end tags, dropped tags.
            format!("<div>{}</div>", "&</x>".repeat(n)),
            format!("<div>{}</div>", "&amp;<form>".repeat(n)),
            // Raw text made text, and a `<pre>` whose first line break goes.
            format!("<textarea>{}</textarea>after", "&".repeat(n)),
            format!("<xmp>{}</xmp>", "&<&".repeat(n)),
            format!(
                "<pre>\n{}</pre><pre><xmp>\nx{}</xmp></pre>",
                "&".repeat(n),
                "&".repeat(n)
            ),
            format!("<plaintext>{}", "&amp;".repeat(n)),
        ];
        // Where two serializations first differ, and around it (they are long).
        let same = |a: &str, b: &str, html: &str| {
            let at = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
            let near = |s: &str| {
                let start = at.saturating_sub(40);
                s.get(start..(at + 40).min(s.len()))
                    .unwrap_or("?")
                    .to_string()
            };
            assert!(
                a == b,
                "{:.80}: differ at {at}: {:?} / {:?}",
                html,
                near(a),
                near(b)
            );
        };
        for html in texts {
            let bounded = bound(&html);
            assert!(
                bounded.matches(SEPARATOR).count() >= 2,
                "{:.100}: not split",
                html
            );
            same(&tree(&bounded), &tree(&html), &html);
            let empty = ammonia::Builder::empty();
            same(
                &empty.clean(&bounded).to_string(),
                &empty.clean(&html).to_string(),
                &html,
            );
        }
        // Text directly in a table is moved out of it in one text node: bounded instead.
        let fostered = format!("<table>{}</table>", "&x".repeat(n).repeat(10));
        let kept = tree(&bound(&fostered));
        assert!(kept.len() < 3 * 20 * n, "{} bytes", kept.len());
        // Unless it is plain enough (a table around an article, without cells).
        let article = format!("<table>{}&amp;</table>", "word ".repeat(10 * n));
        assert!(matches!(bound(&article), Cow::Borrowed(_)));
        // Each run counts: the first ones stay.
        let runs = format!("<table>{}</table>", "<tr>&x&x".repeat(20 * n));
        let kept = tree(&bound(&runs)).matches("&amp;x").count();
        assert!(kept > 0 && kept <= 2 * MAX_FOSTERED, "{kept} runs kept");
        // Everyday text is left as it is: a few references per paragraph, however long.
        let everyday = [
            format!("<p>{} &amp; more</p>", "word ".repeat(n)),
            "<p>Tom &amp; Jerry &copy; 2026, 5&nbsp;km</p>".repeat(n),
            format!("<p>{}</p>", "&lt;code&gt; ".repeat(n)),
        ];
        for html in everyday {
            assert!(matches!(bound(&html), Cow::Borrowed(_)), "{:.100}", html);
        }
    }

    #[test]
    fn costly_attribute_values_are_left_out() {
        let costly = "&amp;".repeat(1000);
        let html = format!(
            "<abbr title=\"{costly}\" title=\"second\" lang=\"fr\">x</abbr><abbr title=\"a &amp; b\">y</abbr>"
        );
        assert_eq!(
            clean(&bound(&html)),
            "<abbr lang=\"fr\">x</abbr><abbr title=\"a &amp; b\">y</abbr>"
        );
        // A long value without them costs its length: kept.
        let long = format!(
            "<img src=\"data:image/png;base64,{}\">",
            "A".repeat(100_000)
        );
        assert!(matches!(bound(&long), Cow::Borrowed(_)));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Text split for the serializer reads the same, wherever the splits fall (within
        /// the bounds: elements closed, and no text directly in a table).
        #[test]
        fn split_text_sanitizes_the_same(
            pieces in prop::collection::vec(prop::sample::select(vec![
                "&", "&amp;", "&lt;", "&gt;", "©", "\u{a0}", "a", "Z9", " ", "\r\n", "\r", "\n",
                "&#65;", "&#x41", "&#0000000066;", "&notin", "&not;", "&copy", ";", "#",
                "<b>x</b>", "</x>", "<p>y</p>", "<br>", "<pre>\nz</pre>", "\r<pre>\r\nz</pre>",
                "<textarea>t&amp;</textarea>", "<xmp>&amp;</xmp>", "<div title=\"&amp;&amp;\">w</div>",
                "<form>", "</form>", "<template>t</template>",
            ]), 1..60),
            times in 1usize..40,
        ) {
            let html = pieces.concat().repeat(times);
            let bounded = bound(&html);
            let empty = ammonia::Builder::empty();
            prop_assert_eq!(
                empty.clean(&bounded).to_string(),
                empty.clean(&html).to_string(),
                "bounded: {}",
                bounded
            );
        }
    }

    /// Times each hostile pattern at about 1 MB against a flat document of the same size:
    /// `cargo test --release --lib bound::tests::costs -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn costs() {
        let base = url::Url::parse("https://x.example/").expect("url");
        let time = |html: &str| {
            let started = std::time::Instant::now();
            let clean = crate::sanitize::sanitize_html(html, &base);
            (started.elapsed(), clean.len())
        };
        let size: usize = std::env::var("BOUND_COST_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1_100_000);
        let flat = "<div>x</div>".repeat(size / 11);
        let (flat_time, _) = time(&flat);
        eprintln!("flat, {} bytes: {flat_time:?}", flat.len());
        let table = format!("<table>{}</table>", "<tr><td>x</td></tr>".repeat(size / 19));
        let (table_time, _) = time(&table);
        eprintln!(
            "flat table, {} bytes: {table_time:?}, {:.2} x flat",
            table.len(),
            table_time.as_secs_f64() / flat_time.as_secs_f64() * flat.len() as f64
                / table.len() as f64
        );
        for (what, html) in hostile(20_000) {
            let html = html.repeat((size / html.len()).max(1));
            let (elapsed, out) = time(&html);
            eprintln!(
                "{what}, {} bytes (out {out}): {elapsed:?}, {:.2} x flat",
                html.len(),
                elapsed.as_secs_f64() / flat_time.as_secs_f64() * flat.len() as f64
                    / html.len() as f64
            );
        }
    }
}
