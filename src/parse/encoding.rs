//! Character encodings: every body is turned into UTF-8 before it is parsed.
//!
//! Which encoding a body is in, in this order:
//! 1. A byte-order mark, or the pattern of the first four bytes that XML 1.0 Appendix F
//!    describes (`3C 00 3F 00` is UTF-16LE, `00 00 00 3C` UTF-32BE, ..., `4C 6F A7 94` EBCDIC),
//!    generalized as RFC 4627 does for JSON: any ASCII character in UTF-16 or UTF-32 leaves
//!    the same pattern of zero bytes. Such bytes cannot be in the charset a header or a
//!    declaration names when that one is ASCII-compatible, so they win over both.
//! 2. The HTTP `Content-Type` charset.
//! 3. The XML declaration's `encoding`.
//! 4. UTF-8, the default of XML and JSON.
//!
//! A label that names an encoding the bytes cannot be in (UTF-16 or UTF-32 on bytes without
//! their pattern: the declaration of a document that a server already transcoded) is passed
//! over. Labels are the WHATWG set that encoding_rs knows (GBK/GB2312/GB18030, Big5,
//! Shift_JIS, EUC-KR, Windows-1252, ISO-8859-x, ...), plus UTF-32 (decoded here: encoding_rs
//! has none) and EBCDIC code page 037 (which feedparser reads too).
//!
//! Servers and documents lie, so the bytes get the last word. Bytes that are valid,
//! non-ASCII UTF-8 are UTF-8 whatever legacy charset the label says. Bytes that are not valid
//! in the encoding chosen are read as feedparser (the reference) reads them, but without its
//! mojibake: a document said to be UTF-8 whose invalid bytes are the exception (`Café` in
//! UTF-8, then `don\x92t` pasted from Windows) keeps its UTF-8 and reads each stray byte as
//! Windows-1252 (feedparser reads all of it as Windows-1252: `CafÃ© don’t`); one that has no
//! UTF-8 in it is legacy text, and chardetng names its encoding (Windows-1252 for
//! `don\x92t`, as feedparser; GBK for Chinese, where feedparser's Windows-1252 is mojibake).
//!
//! Decoding (and dropping the declaration's now wrong `encoding`) is all this module does to
//! the document as a whole. The C1 control characters that mislabelled Windows-1252 leaves
//! (`don\u{92}t`) and UTF-8 decoded twice (`CafÃ©`) are repaired per text field, after
//! character references are resolved, by [`repair_text`], as feedparser does: repaired in
//! the whole document first, the C1 characters of twice-decoded UTF-8 (`’` is
//! `â\u{80}\u{99}`) would no longer undo.

use std::borrow::Cow;

use encoding_rs::{Encoding, REPLACEMENT, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252};

/// An encoding a body can be in: the WHATWG set of encoding_rs, and the few more that XML
/// allows and feeds use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charset {
    /// An encoding of the WHATWG set (encoding_rs).
    Whatwg(&'static Encoding),
    /// UTF-32, little-endian.
    Utf32Le,
    /// UTF-32, big-endian.
    Utf32Be,
    /// EBCDIC, IBM code page 037.
    Ebcdic037,
    /// UTF-8 with a few bytes that are not UTF-8, each read as Windows-1252.
    Utf8AndWindows1252,
}

impl Charset {
    /// The encoding's name, as in a log line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Charset::Whatwg(encoding) => encoding.name(),
            Charset::Utf32Le => "UTF-32LE",
            Charset::Utf32Be => "UTF-32BE",
            Charset::Ebcdic037 => "IBM037",
            Charset::Utf8AndWindows1252 => "UTF-8 (stray bytes as windows-1252)",
        }
    }

    /// Whether the body's first bytes say which this is: UTF-16 and UTF-32 leave zero bytes
    /// around every ASCII character, EBCDIC writes `<` as 0x4C.
    fn is_ascii_incompatible(self) -> bool {
        match self {
            Charset::Whatwg(encoding) => encoding == UTF_16LE || encoding == UTF_16BE,
            Charset::Utf32Le | Charset::Utf32Be | Charset::Ebcdic037 => true,
            Charset::Utf8AndWindows1252 => false,
        }
    }

    /// The same encoding family: a label `utf-16` (which WHATWG reads as UTF-16LE) agrees
    /// with big-endian bytes, the byte order being the bytes' to say.
    fn same_family(self, other: Charset) -> bool {
        let family = |charset| match charset {
            Charset::Whatwg(e) if e == UTF_16LE || e == UTF_16BE => 16,
            Charset::Utf32Le | Charset::Utf32Be => 32,
            _ => 0,
        };
        self == other || (family(self) != 0 && family(self) == family(other))
    }
}

/// Where the chosen encoding came from; says why a document was read the way it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// The HTTP `Content-Type` charset.
    Header,
    /// A byte-order mark.
    Bom,
    /// The XML declaration's `encoding`.
    Declaration,
    /// Nothing said: UTF-8.
    Default,
    /// The bytes themselves: the zero bytes of UTF-16 or UTF-32 (XML 1.0 Appendix F), or a
    /// label the bytes contradicted.
    Bytes,
}

/// A body in UTF-8, and how its encoding was decided.
pub(crate) struct Decoded<'a> {
    /// The body as UTF-8, with any BOM removed and the XML declaration's `encoding`
    /// dropped unless it names UTF-8 (it would now be wrong): no XML reader decodes it again.
    pub(crate) utf8: Cow<'a, [u8]>,
    /// The encoding the body was read in.
    pub(crate) encoding: Charset,
    /// Why.
    pub(crate) source: Source,
}

/// The `charset` parameter of a Content-Type header.
pub(crate) fn charset_of(content_type: &str) -> Option<&str> {
    content_type
        .split(';')
        .skip(1)
        .filter_map(|param| param.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, value)| value.trim().trim_matches(|c| c == '"' || c == '\''))
}

/// The encoding a charset label names; `None` for a label we do not know (and for the
/// WHATWG labels of the "replacement" encoding, ISO-2022-KR and the like, which would turn
/// the whole document into U+FFFD: better to read it as the next rule says).
pub(crate) fn charset_for_label(label: &str) -> Option<Charset> {
    let label = label.trim().to_ascii_lowercase();
    match label.as_str() {
        // The byte order of a plain `utf-32` is the BOM's or the pattern's to say.
        "utf-32" | "utf32" | "utf_32" | "u32" | "ucs-4" | "ucs4" | "iso-10646-ucs-4" | "csucs4"
        | "utf-32le" | "utf_32_le" | "utf32le" => Some(Charset::Utf32Le),
        "utf-32be" | "utf_32_be" | "utf32be" => Some(Charset::Utf32Be),
        "cp037" | "ibm037" | "ibm-037" | "ibm037-ebcdic" | "csibm037" | "ebcdic-cp-us"
        | "ebcdic-cp-ca" | "ebcdic-cp-wt" | "ebcdic-cp-nl" | "ebcdic-us-37+euro" => {
            Some(Charset::Ebcdic037)
        }
        _ => Encoding::for_label(label.as_bytes())
            .filter(|encoding| *encoding != REPLACEMENT)
            .map(Charset::Whatwg),
    }
}

/// The `encoding` label of an XML declaration at the start of `body` (in an ASCII-compatible
/// encoding).
fn declared_label(body: &[u8]) -> Option<&str> {
    let head = &body[..body.len().min(1024)];
    let head = std::str::from_utf8(head)
        .unwrap_or_else(|e| std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default());
    let (label, _) = declared_encoding_span(head)?;
    Some(label)
}

/// The label of the XML declaration's `encoding` at the start of `text`, and the byte range
/// of the attribute (from the white space before `encoding` to the closing quote).
fn declared_encoding_span(text: &str) -> Option<(&str, std::ops::Range<usize>)> {
    let start = text.len() - text.trim_start().len();
    let rest = text[start..].strip_prefix("<?xml")?;
    let declaration = &rest[..rest.find("?>")?];
    let at = declaration.find("encoding")?;
    let after = &declaration[at + "encoding".len()..];
    let value = after.trim_start().strip_prefix('=')?.trim_start();
    let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let label = &value[1..][..value[1..].find(quote)?];
    let offset = start + "<?xml".len();
    let space = declaration[..at].len() - declaration[..at].trim_end().len();
    let end = offset + (declaration.len() - value.len()) + 1 + label.len() + 1;
    Some((label.trim(), offset + at - space..end))
}

/// What the first bytes of a body say: a byte-order mark, or the zero bytes that UTF-16 and
/// UTF-32 leave around an ASCII character (XML 1.0 Appendix F; RFC 4627 §3 for JSON), or
/// `<?xm` in EBCDIC. The charset, the length of the BOM, and whether it was a BOM.
fn sniff(body: &[u8]) -> Option<(Charset, usize, bool)> {
    let utf16le = Charset::Whatwg(UTF_16LE);
    let utf16be = Charset::Whatwg(UTF_16BE);
    Some(match *body {
        [0x00, 0x00, 0xFE, 0xFF, ..] => (Charset::Utf32Be, 4, true),
        [0xFF, 0xFE, 0x00, 0x00, ..] => (Charset::Utf32Le, 4, true),
        [0xFE, 0xFF, ..] => (utf16be, 2, true),
        [0xFF, 0xFE, ..] => (utf16le, 2, true),
        [0xEF, 0xBB, 0xBF, ..] => (Charset::Whatwg(UTF_8), 3, true),
        [0x00, 0x00, 0x00, a, ..] if a != 0 => (Charset::Utf32Be, 0, false),
        [a, 0x00, 0x00, 0x00, ..] if a != 0 => (Charset::Utf32Le, 0, false),
        [0x00, a, 0x00, b, ..] if a != 0 && b != 0 => (utf16be, 0, false),
        [a, 0x00, b, 0x00, ..] if a != 0 && b != 0 => (utf16le, 0, false),
        [0x4C, 0x6F, 0xA7, 0x94, ..] => (Charset::Ebcdic037, 0, false),
        _ => return None,
    })
}

/// Whether a label may be believed for `body`: one that names UTF-16, UTF-32 or EBCDIC only
/// when [`sniff`] found that family (EBCDIC: when the body does not start as ASCII markup).
fn believable(charset: Charset, body: &[u8], sniffed: Option<Charset>) -> bool {
    match charset {
        Charset::Ebcdic037 => {
            let first = body.iter().find(|b| !b.is_ascii_whitespace());
            sniffed == Some(Charset::Ebcdic037) || !matches!(first, Some(b'<' | b'{'))
        }
        charset if charset.is_ascii_incompatible() => {
            sniffed.is_some_and(|sniffed| charset.same_family(sniffed))
        }
        _ => true,
    }
}

/// Decodes `body` to UTF-8; see the module doc for the rules.
pub(crate) fn decode<'a>(body: &'a [u8], content_type: Option<&str>) -> Decoded<'a> {
    let header = content_type
        .and_then(charset_of)
        .and_then(charset_for_label);
    let sniffed = sniff(body);
    let (charset, source, bom_len) = match sniffed {
        // UTF-16, UTF-32, EBCDIC: the bytes say so, whatever the labels (and their byte
        // order is the bytes' too).
        Some((charset, bom_len, bom)) if charset.is_ascii_incompatible() => {
            let source = if bom {
                Source::Bom
            } else if header.is_some_and(|h| h.same_family(charset)) {
                Source::Header
            } else {
                Source::Bytes
            };
            (charset, source, bom_len)
        }
        // A UTF-8 BOM wins over a header too (WHATWG; feedparser reads such a document as
        // the header says, then undoes the mojibake field by field).
        Some((charset, bom_len, _)) => (charset, Source::Bom, bom_len),
        None => {
            let declared = declared_label(body).and_then(charset_for_label);
            let labels = [(header, Source::Header), (declared, Source::Declaration)];
            let mut contradicted = false;
            let chosen = labels.into_iter().find_map(|(label, source)| {
                let label = label?;
                let ok = believable(label, body, None);
                contradicted |= !ok;
                ok.then_some((label, source))
            });
            match chosen {
                Some((charset, source)) => (charset, source, 0),
                None if contradicted => (Charset::Whatwg(UTF_8), Source::Bytes, 0),
                None => (Charset::Whatwg(UTF_8), Source::Default, 0),
            }
        }
    };
    let bytes = &body[bom_len..];
    let (text, encoding, source) = match charset {
        Charset::Whatwg(encoding) if encoding == UTF_16LE || encoding == UTF_16BE => {
            let (text, _) = encoding.decode_without_bom_handling(bytes);
            (owned(text.into_owned()), charset, source)
        }
        Charset::Whatwg(encoding) if encoding != UTF_8 => {
            if !bytes.is_ascii() && std::str::from_utf8(bytes).is_ok() {
                // Multi-byte UTF-8 sequences hardly ever occur by chance in legacy text.
                (Cow::Borrowed(bytes), Charset::Whatwg(UTF_8), Source::Bytes)
            } else {
                let (text, encoding, source) = decode_legacy(bytes, encoding, source);
                (owned(text), encoding, source)
            }
        }
        Charset::Whatwg(_) | Charset::Utf8AndWindows1252 => match std::str::from_utf8(bytes) {
            Ok(_) => (Cow::Borrowed(bytes), Charset::Whatwg(UTF_8), source),
            Err(_) => {
                let (text, encoding) = decode_invalid_utf8(bytes);
                (owned(text), encoding, Source::Bytes)
            }
        },
        Charset::Utf32Le | Charset::Utf32Be => (
            owned(decode_utf32(bytes, charset == Charset::Utf32Be)),
            charset,
            source,
        ),
        Charset::Ebcdic037 => (owned(decode_ebcdic_037(bytes)), charset, source),
    };
    Decoded {
        utf8: strip_declared_encoding(text),
        encoding,
        source,
    }
}

/// A decoded text as the bytes of a [`Decoded`].
fn owned(text: String) -> Cow<'static, [u8]> {
    Cow::Owned(text.into_bytes())
}

/// `bytes` in a legacy (ASCII-compatible, not UTF-8) `encoding`; when they are not valid
/// in it, in the encoding chardetng guesses, if that one reads them without error.
fn decode_legacy(
    bytes: &[u8],
    encoding: &'static Encoding,
    source: Source,
) -> (String, Charset, Source) {
    let (text, had_errors) = encoding.decode_without_bom_handling(bytes);
    if had_errors {
        let guess = guess_encoding(bytes);
        if guess != encoding {
            let (guessed, guess_errors) = guess.decode_without_bom_handling(bytes);
            if !guess_errors {
                return (guessed.into_owned(), Charset::Whatwg(guess), Source::Bytes);
            }
        }
    }
    (text.into_owned(), Charset::Whatwg(encoding), source)
}

/// chardetng's guess for a legacy document.
fn guess_encoding(bytes: &[u8]) -> &'static Encoding {
    let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    detector.feed(bytes, true);
    detector.guess(None, chardetng::Utf8Detection::Allow)
}

/// Bytes that were to be UTF-8 and are not. When there are valid multi-byte sequences, at
/// least as many as bytes that are not UTF-8 (legacy text hardly ever has any), the document is UTF-8 with a few stray bytes from elsewhere,
/// Windows-1252 most of the time (`don\x92t` pasted from Word): each of those is read as
/// Windows-1252 and the UTF-8 stays. Otherwise the document is legacy text with a wrong
/// label: chardetng names its encoding, and Windows-1252 (feedparser's fallback) reads it
/// when chardetng's guess does not.
fn decode_invalid_utf8(bytes: &[u8]) -> (String, Charset) {
    let (multibyte, invalid) = utf8_census(bytes);
    if multibyte > 0 && multibyte >= invalid {
        return (utf8_and_windows_1252(bytes), Charset::Utf8AndWindows1252);
    }
    let guess = guess_encoding(bytes);
    if guess != UTF_8 {
        let (text, had_errors) = guess.decode_without_bom_handling(bytes);
        if !had_errors {
            return (text.into_owned(), Charset::Whatwg(guess));
        }
    }
    let (text, _) = WINDOWS_1252.decode_without_bom_handling(bytes);
    (text.into_owned(), Charset::Whatwg(WINDOWS_1252))
}

/// How many valid multi-byte UTF-8 sequences `bytes` has, and how many bytes that are not
/// UTF-8.
fn utf8_census(mut bytes: &[u8]) -> (usize, usize) {
    let (mut multibyte, mut invalid) = (0, 0);
    loop {
        let (valid, bad) = match std::str::from_utf8(bytes) {
            Ok(_) => (bytes.len(), 0),
            Err(e) => (
                e.valid_up_to(),
                e.error_len().unwrap_or(bytes.len() - e.valid_up_to()),
            ),
        };
        multibyte += bytes[..valid].iter().filter(|b| **b >= 0xC0).count();
        invalid += bad;
        if bad == 0 {
            return (multibyte, invalid);
        }
        bytes = &bytes[valid + bad..];
    }
}

/// UTF-8, with every byte that is not part of a valid sequence read as Windows-1252.
fn utf8_and_windows_1252(mut bytes: &[u8]) -> String {
    let mut text = String::with_capacity(bytes.len() + 16);
    loop {
        match std::str::from_utf8(bytes) {
            Ok(valid) => {
                text.push_str(valid);
                return text;
            }
            Err(e) => {
                let (valid, rest) = bytes.split_at(e.valid_up_to());
                // From `from_utf8` itself: the prefix is valid.
                text.push_str(std::str::from_utf8(valid).unwrap_or_default());
                let bad = e.error_len().unwrap_or(rest.len());
                text.extend(rest[..bad].iter().map(|b| windows_1252(*b)));
                bytes = &rest[bad..];
            }
        }
    }
}

/// The Windows-1252 character of a byte (WHATWG: the five bytes it leaves undefined are the
/// C1 controls of the same value).
fn windows_1252(byte: u8) -> char {
    c1_to_windows_1252(char::from(byte))
}

/// UTF-32 in either byte order; a code point that is not a Unicode scalar value (a
/// surrogate, or above U+10FFFF) and a cut-off last unit become U+FFFD.
fn decode_utf32(bytes: &[u8], big_endian: bool) -> String {
    let mut text = String::with_capacity(bytes.len() / 4);
    let mut units = bytes.chunks_exact(4);
    for unit in &mut units {
        let unit = [unit[0], unit[1], unit[2], unit[3]];
        let value = if big_endian {
            u32::from_be_bytes(unit)
        } else {
            u32::from_le_bytes(unit)
        };
        text.push(char::from_u32(value).unwrap_or(char::REPLACEMENT_CHARACTER));
    }
    if !units.remainder().is_empty() {
        text.push(char::REPLACEMENT_CHARACTER);
    }
    text
}

/// IBM code page 037: each byte's Latin-1 code point (the code page is a permutation of
/// Latin-1, as Python's `cp037` codec has it).
const EBCDIC_037: [u8; 256] = [
    0x00, 0x01, 0x02, 0x03, 0x9C, 0x09, 0x86, 0x7F, 0x97, 0x8D, 0x8E, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F,
    0x10, 0x11, 0x12, 0x13, 0x9D, 0x85, 0x08, 0x87, 0x18, 0x19, 0x92, 0x8F, 0x1C, 0x1D, 0x1E, 0x1F,
    0x80, 0x81, 0x82, 0x83, 0x84, 0x0A, 0x17, 0x1B, 0x88, 0x89, 0x8A, 0x8B, 0x8C, 0x05, 0x06, 0x07,
    0x90, 0x91, 0x16, 0x93, 0x94, 0x95, 0x96, 0x04, 0x98, 0x99, 0x9A, 0x9B, 0x14, 0x15, 0x9E, 0x1A,
    0x20, 0xA0, 0xE2, 0xE4, 0xE0, 0xE1, 0xE3, 0xE5, 0xE7, 0xF1, 0xA2, 0x2E, 0x3C, 0x28, 0x2B, 0x7C,
    0x26, 0xE9, 0xEA, 0xEB, 0xE8, 0xED, 0xEE, 0xEF, 0xEC, 0xDF, 0x21, 0x24, 0x2A, 0x29, 0x3B, 0xAC,
    0x2D, 0x2F, 0xC2, 0xC4, 0xC0, 0xC1, 0xC3, 0xC5, 0xC7, 0xD1, 0xA6, 0x2C, 0x25, 0x5F, 0x3E, 0x3F,
    0xF8, 0xC9, 0xCA, 0xCB, 0xC8, 0xCD, 0xCE, 0xCF, 0xCC, 0x60, 0x3A, 0x23, 0x40, 0x27, 0x3D, 0x22,
    0xD8, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0xAB, 0xBB, 0xF0, 0xFD, 0xFE, 0xB1,
    0xB0, 0x6A, 0x6B, 0x6C, 0x6D, 0x6E, 0x6F, 0x70, 0x71, 0x72, 0xAA, 0xBA, 0xE6, 0xB8, 0xC6, 0xA4,
    0xB5, 0x7E, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7A, 0xA1, 0xBF, 0xD0, 0xDD, 0xDE, 0xAE,
    0x5E, 0xA3, 0xA5, 0xB7, 0xA9, 0xA7, 0xB6, 0xBC, 0xBD, 0xBE, 0x5B, 0x5D, 0xAF, 0xA8, 0xB4, 0xD7,
    0x7B, 0x41, 0x42, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0xAD, 0xF4, 0xF6, 0xF2, 0xF3, 0xF5,
    0x7D, 0x4A, 0x4B, 0x4C, 0x4D, 0x4E, 0x4F, 0x50, 0x51, 0x52, 0xB9, 0xFB, 0xFC, 0xF9, 0xFA, 0xFF,
    0x5C, 0xF7, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5A, 0xB2, 0xD4, 0xD6, 0xD2, 0xD3, 0xD5,
    0x30, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0xB3, 0xDB, 0xDC, 0xD9, 0xDA, 0x9F,
];

/// EBCDIC (code page 037). Its NEL (0x15, U+0085) is the line end of EBCDIC text: a line
/// feed, not a C1 control that [`repair_text`] would take for Windows-1252's ellipsis.
fn decode_ebcdic_037(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| match b {
            0x15 => '\n',
            b => char::from(EBCDIC_037[usize::from(*b)]),
        })
        .collect()
}

/// The characters of Windows-1252 at 0x80..=0x9F, where Latin-1 and Unicode have C1
/// controls; the five that Windows-1252 leaves undefined stay what they are.
const WINDOWS_1252_C1: [char; 32] = [
    '\u{20AC}', '\u{81}', '\u{201A}', '\u{192}', '\u{201E}', '\u{2026}', '\u{2020}', '\u{2021}',
    '\u{2C6}', '\u{2030}', '\u{160}', '\u{2039}', '\u{152}', '\u{8D}', '\u{17D}', '\u{8F}',
    '\u{90}', '\u{2018}', '\u{2019}', '\u{201C}', '\u{201D}', '\u{2022}', '\u{2013}', '\u{2014}',
    '\u{2DC}', '\u{2122}', '\u{161}', '\u{203A}', '\u{153}', '\u{9D}', '\u{17E}', '\u{178}',
];

/// The character a C1 control (U+0080..=U+009F) stands for when it comes from mislabelled
/// Windows-1252 (`U+0092` is `’`), as feedparser maps them; every other character, and the
/// five C1 controls Windows-1252 leaves undefined, as it is. For the text of character
/// references (`&#146;`) and decoded text alike.
pub(crate) fn c1_to_windows_1252(c: char) -> char {
    match u32::from(c) {
        code @ 0x80..=0x9F => WINDOWS_1252_C1[(code - 0x80) as usize],
        _ => c,
    }
}

/// Whether `text` has a C1 control that [`c1_to_windows_1252`] maps.
fn has_mapped_c1(text: &str) -> bool {
    text.chars().any(|c| c1_to_windows_1252(c) != c)
}

/// A text field (a title, a summary, HTML content, an author's name) after its character
/// references are resolved, repaired as feedparser repairs every field:
/// - UTF-8 decoded twice: text that is all Latin-1 (U+0000..=U+00FF) and whose Latin-1
///   bytes are valid UTF-8 with more than ASCII in it is that UTF-8 (`CafÃ©` is `Café`);
/// - then each C1 control is the Windows-1252 character it stands for (`don\u{92}t` is
///   `don’t`).
///
/// Plain ASCII (most fields) costs one scan and no copy.
pub(crate) fn repair_text(text: &str) -> Cow<'_, str> {
    if text.is_ascii() {
        return Cow::Borrowed(text);
    }
    let repaired = undo_double_utf8(text);
    if !has_mapped_c1(&repaired) {
        return repaired;
    }
    Cow::Owned(repaired.chars().map(c1_to_windows_1252).collect())
}

/// `text` as the UTF-8 its Latin-1 bytes are, when they are (see [`repair_text`]).
fn undo_double_utf8(text: &str) -> Cow<'_, str> {
    if text.chars().any(|c| u32::from(c) > 0xFF) {
        return Cow::Borrowed(text);
    }
    // Every char is at most U+00FF: `as u8` is its Latin-1 byte.
    let latin1: Vec<u8> = text.chars().map(|c| u32::from(c) as u8).collect();
    match String::from_utf8(latin1) {
        Ok(utf8) => Cow::Owned(utf8),
        Err(_) => Cow::Borrowed(text),
    }
}

/// Drops `encoding="..."` from the XML declaration of a UTF-8 body unless it names UTF-8,
/// so that no XML reader decodes the body a second time (quick-xml with its `encoding`
/// feature takes the declaration's word; feedparser writes `encoding='utf-8'` instead).
fn strip_declared_encoding(utf8: Cow<'_, [u8]>) -> Cow<'_, [u8]> {
    let head = &utf8[..utf8.len().min(1024)];
    let head = match std::str::from_utf8(head) {
        Ok(head) => head,
        Err(e) => std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default(),
    };
    let Some((label, span)) = declared_encoding_span(head) else {
        return utf8;
    };
    // Most feeds declare UTF-8, which is now true: no copy of the document.
    if Encoding::for_label(label.as_bytes()) == Some(UTF_8) {
        return utf8;
    }
    let mut cleaned = Vec::with_capacity(utf8.len());
    cleaned.extend_from_slice(&utf8[..span.start]);
    cleaned.extend_from_slice(&utf8[span.end..]);
    Cow::Owned(cleaned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str =
        "<rss version=\"2.0\"><channel><title>内蒙古日报：读书班</title></channel></rss>";

    /// The test string of every i18n suite, and of the report.
    const I18N: &str = "Iñtërnâtiônàlizætiøn";

    fn xml(encoding: &str) -> String {
        format!("<?xml version=\"1.0\" encoding=\"{encoding}\"?>{TEXT}")
    }

    fn rss(declaration: Option<&str>) -> String {
        let declaration = declaration
            .map(|label| format!("<?xml version=\"1.0\" encoding=\"{label}\"?>\n"))
            .unwrap_or_default();
        format!("{declaration}<rss version=\"2.0\"><channel><title>c</title><item><title>{I18N} €𝄞</title></item></channel></rss>")
    }

    fn decoded(body: &[u8], content_type: Option<&str>) -> (String, &'static str, Source) {
        let d = decode(body, content_type);
        (
            String::from_utf8(d.utf8.into_owned()).expect("utf-8"),
            d.encoding.name(),
            d.source,
        )
    }

    fn utf16(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
        let mut bytes = Vec::new();
        for unit in
            (bom.then_some('\u{feff}').into_iter().collect::<String>() + text).encode_utf16()
        {
            bytes.extend(if big_endian {
                unit.to_be_bytes()
            } else {
                unit.to_le_bytes()
            });
        }
        bytes
    }

    fn utf32(text: &str, big_endian: bool, bom: bool) -> Vec<u8> {
        let mut bytes = Vec::new();
        for c in bom.then_some('\u{feff}').into_iter().chain(text.chars()) {
            bytes.extend(if big_endian {
                u32::from(c).to_be_bytes()
            } else {
                u32::from(c).to_le_bytes()
            });
        }
        bytes
    }

    /// The title and declaration of a decoded document, as quick-xml reads them: the XML
    /// reader that follows must see neither a second encoding nor a garbled character.
    fn read_back(utf8: &[u8]) -> (Option<String>, Vec<String>) {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_reader(utf8);
        let (mut declared, mut texts) = (None, Vec::new());
        loop {
            match reader.read_event().expect("well-formed") {
                Event::Decl(decl) => {
                    declared = decl.encoding().map(|e| e.expect("attribute").into_owned());
                }
                Event::Text(text) => {
                    let text = text.xml_content(quick_xml::XmlVersion::Implicit1_0);
                    if !text.trim().is_empty() {
                        texts.push(text.into_owned());
                    }
                }
                Event::Eof => return (declared, texts),
                _ => {}
            }
        }
    }

    #[test]
    fn header_charset_comes_first() {
        let text = xml("utf-8");
        let (gbk, _, _) = encoding_rs::GBK.encode(&text);
        let (text, name, source) = decoded(&gbk, Some("text/xml; charset=\"GB2312\""));
        assert!(text.contains("内蒙古日报"), "{text}");
        assert_eq!((name, source), ("GBK", Source::Header));
        // The declaration said UTF-8, which is true now.
        assert!(
            text.starts_with("<?xml version=\"1.0\" encoding=\"utf-8\"?>"),
            "{text}"
        );
        let declared_gb2312 = xml("gb2312");
        let (gbk, _, _) = encoding_rs::GBK.encode(&declared_gb2312);
        let (text, _, _) = decoded(&gbk, Some("text/xml; charset=GBK"));
        assert!(
            text.starts_with("<?xml version=\"1.0\"?><rss"),
            "a declaration naming another encoding must go: {text}"
        );
    }

    #[test]
    fn declaration_is_used_without_header() {
        for label in ["GBK", "gb2312", "GB18030"] {
            let encoding = Encoding::for_label(label.as_bytes()).expect("label");
            let text = xml(label);
            let (bytes, _, _) = encoding.encode(&text);
            let (text, _, source) = decoded(&bytes, Some("application/xml"));
            assert!(text.contains("内蒙古日报"), "{label}: {text}");
            assert_eq!(source, Source::Declaration);
        }
        let (cp1252, _, _) = encoding_rs::WINDOWS_1252.encode(
            "<?xml version=\"1.0\" encoding=\"windows-1252\"?><rss><channel><title>Café “quoted” – €5</title></channel></rss>",
        );
        let (text, name, _) = decoded(&cp1252, None);
        assert!(text.contains("Café “quoted” – €5"), "{text}");
        assert_eq!(name, "windows-1252");
    }

    #[test]
    fn bom_beats_the_declaration() {
        let utf16 = utf16(&xml("ISO-8859-1"), false, true);
        let (text, name, source) = decoded(&utf16, None);
        assert!(text.starts_with("<?xml version=\"1.0\"?><rss"), "{text}");
        assert!(text.contains("内蒙古日报"));
        assert_eq!((name, source), ("UTF-16LE", Source::Bom));
    }

    #[test]
    fn valid_utf8_wins_over_a_wrong_legacy_label() {
        let body = xml("utf-8");
        let (text, name, source) = decoded(body.as_bytes(), Some("text/xml; charset=ISO-8859-1"));
        assert!(text.contains("内蒙古日报"));
        assert_eq!((name, source), ("UTF-8", Source::Bytes));
    }

    #[test]
    fn undecodable_bytes_are_guessed() {
        // Declared UTF-8, really GBK.
        let text = xml("utf-8").repeat(3);
        let (gbk, _, _) = encoding_rs::GBK.encode(&text);
        let (text, name, source) = decoded(&gbk, None);
        assert!(text.contains("内蒙古日报"), "{text}");
        assert_eq!(source, Source::Bytes);
        assert!(name == "GBK" || name == "gb18030", "{name}");
    }

    #[test]
    fn charset_parameter_is_found() {
        assert_eq!(charset_of("text/xml; charset=GBK"), Some("GBK"));
        assert_eq!(charset_of("text/xml;CHARSET='big5'"), Some("big5"));
        assert_eq!(charset_of("text/xml"), None);
    }

    #[test]
    fn utf16_is_read_in_both_byte_orders_with_and_without_a_bom() {
        let declarations = [
            None,
            Some("utf-16"),
            Some("UTF-16LE"),
            Some("utf-16be"),
            Some("ISO-8859-1"),
        ];
        let headers = [
            None,
            Some("application/xml"),
            Some("application/xml; charset=utf-16"),
            Some("application/rss+xml; charset=iso-8859-1"),
            Some("text/xml; charset=utf-8"),
        ];
        for big_endian in [false, true] {
            for bom in [true, false] {
                for declaration in declarations {
                    for header in headers {
                        let body = utf16(&rss(declaration), big_endian, bom);
                        let case = format!(
                            "big-endian {big_endian}, BOM {bom}, {declaration:?}, {header:?}"
                        );
                        let d = decode(&body, header);
                        assert_eq!(
                            d.encoding.name(),
                            if big_endian { "UTF-16BE" } else { "UTF-16LE" },
                            "{case}"
                        );
                        let (declared, texts) = read_back(&d.utf8);
                        assert_eq!(declared, None, "{case}");
                        assert_eq!(texts, ["c", &format!("{I18N} €𝄞")], "{case}");
                        assert!(
                            !String::from_utf8_lossy(&d.utf8).contains('\u{feff}'),
                            "{case}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_declared_utf16be_document_is_not_garbled() {
        // The report: today `IÃ넀琀쎫rnÃꈀ…`.
        let body = utf16(&rss(Some("utf-16be")), true, false);
        let d = decode(&body, Some("application/rss+xml"));
        let (_, texts) = read_back(&d.utf8);
        assert_eq!(texts[1], format!("{I18N} €𝄞"));
        assert_eq!(d.source, Source::Bytes);
    }

    #[test]
    fn utf32_is_read_in_both_byte_orders_with_and_without_a_bom() {
        for big_endian in [false, true] {
            for bom in [true, false] {
                for declaration in [None, Some("utf-32"), Some("UTF-32BE"), Some("ucs-4")] {
                    for header in [None, Some("application/xml; charset=windows-1252")] {
                        let body = utf32(&rss(declaration), big_endian, bom);
                        let case = format!(
                            "big-endian {big_endian}, BOM {bom}, {declaration:?}, {header:?}"
                        );
                        let d = decode(&body, header);
                        assert_eq!(
                            d.encoding,
                            if big_endian {
                                Charset::Utf32Be
                            } else {
                                Charset::Utf32Le
                            },
                            "{case}"
                        );
                        assert_eq!(d.source, if bom { Source::Bom } else { Source::Bytes });
                        let (declared, texts) = read_back(&d.utf8);
                        assert_eq!(declared, None, "{case}");
                        assert_eq!(texts, ["c", &format!("{I18N} €𝄞")], "{case}");
                    }
                }
            }
        }
    }

    #[test]
    fn utf32_code_points_that_are_not_characters_become_replacement_characters() {
        let mut body = utf32("<a>x", false, false);
        body.extend(0xD800u32.to_le_bytes()); // a surrogate
        body.extend(0x11_0000u32.to_le_bytes()); // beyond Unicode
        body.extend(u32::MAX.to_le_bytes());
        body.extend(utf32("y</a>", false, false));
        body.extend([0x41, 0x00]); // cut off
        let (text, _, _) = decoded(&body, None);
        assert_eq!(text, "<a>x\u{fffd}\u{fffd}\u{fffd}y</a>\u{fffd}");
    }

    #[test]
    fn json_in_utf16_and_utf32_is_detected_by_its_zero_bytes() {
        let json = "{\"version\": \"1.1\", \"items\": [{\"title\": \"Iñtër\"}]}";
        for body in [
            utf16(json, false, false),
            utf16(json, true, false),
            utf32(json, false, false),
            utf32(json, true, false),
            utf16(&format!("\n {json}"), true, false),
        ] {
            let (text, name, _) = decoded(&body, Some("application/feed+json"));
            assert_eq!(text.trim_start(), json, "{name}");
        }
    }

    #[test]
    fn a_utf16_label_on_bytes_that_are_not_utf16_is_passed_over() {
        // A server that transcoded the document and kept its declaration.
        let (text, name, source) = decoded(rss(Some("utf-16")).as_bytes(), None);
        assert!(text.contains(I18N), "{text}");
        assert!(!text.contains("utf-16"), "{text}");
        assert_eq!((name, source), ("UTF-8", Source::Bytes));
        // The header lies; the declaration is the next word.
        let gbk_xml = xml("gbk");
        let (gbk, _, _) = encoding_rs::GBK.encode(&gbk_xml);
        let (text, name, source) = decoded(&gbk, Some("application/xml; charset=utf-16"));
        assert!(text.contains("内蒙古日报"), "{text}");
        assert_eq!((name, source), ("GBK", Source::Declaration));
        let (text, name, _) = decoded(
            rss(Some("utf-32")).as_bytes(),
            Some("text/xml; charset=utf-32"),
        );
        assert!(text.contains(I18N), "{text}");
        assert_eq!(name, "UTF-8");
    }

    #[test]
    fn labels_of_the_replacement_encoding_are_ignored() {
        // WHATWG maps ISO-2022-KR to "replacement", which decodes to one U+FFFD.
        let (text, name, _) = decoded(
            rss(Some("iso-2022-kr")).as_bytes(),
            Some("application/xml; charset=hz-gb-2312"),
        );
        assert!(text.contains(I18N), "{text}");
        assert_eq!(name, "UTF-8");
    }

    #[test]
    fn ebcdic_is_read_as_feedparser_reads_it() {
        // The bytes of Python's `'<?xml version="1.0" encoding="cp037"?><a>Iñtër\n€</a>'
        // .encode('cp037', 'replace')`: EBCDIC has no euro sign.
        let ebcdic = [
            0x4C, 0x6F, 0xA7, 0x94, 0x93, 0x40, 0xA5, 0x85, 0x99, 0xA2, 0x89, 0x96, 0x95, 0x7E,
            0x7F, 0xF1, 0x4B, 0xF0, 0x7F, 0x40, 0x85, 0x95, 0x83, 0x96, 0x84, 0x89, 0x95, 0x87,
            0x7E, 0x7F, 0x83, 0x97, 0xF0, 0xF3, 0xF7, 0x7F, 0x6F, 0x6E, 0x4C, 0x81, 0x6E, 0xC9,
            0x49, 0xA3, 0x53, 0x99, 0x25, 0x6F, 0x4C, 0x61, 0x81, 0x6E,
        ];
        let (text, name, source) = decoded(&ebcdic, None);
        assert_eq!(text, "<?xml version=\"1.0\"?><a>Iñtër\n?</a>");
        assert_eq!((name, source), ("IBM037", Source::Bytes));
        // NEL is a line end.
        let (text, _, _) = decoded(
            &[0x4C, 0x81, 0x6E, 0x15, 0x4C, 0x61, 0x81, 0x6E],
            Some("text/xml; charset=ibm037"),
        );
        assert_eq!(text, "<a>\n</a>");
    }

    #[test]
    fn mislabelled_windows_1252_reads_as_windows_1252() {
        let doc = |declaration: &str, title: &[u8]| {
            let mut body = format!("<?xml version=\"1.0\" encoding=\"{declaration}\"?><rss version=\"2.0\"><channel><title>c</title><item><title>").into_bytes();
            body.extend_from_slice(title);
            body.extend_from_slice(b"</title></item></channel></rss>");
            body
        };
        let title = |body: &[u8], content_type| {
            let d = decode(body, content_type);
            let (_, texts) = read_back(&d.utf8);
            (texts[1].clone(), d.encoding.name())
        };
        // WHATWG reads ISO-8859-1 as Windows-1252 (feedparser reads Latin-1, then maps C1).
        assert_eq!(
            title(&doc("iso-8859-1", b"don\x92t"), None),
            ("don’t".into(), "windows-1252")
        );
        // Declared UTF-8, and no UTF-8 in it: all Windows-1252, as feedparser.
        assert_eq!(
            title(&doc("utf-8", b"don\x92t \x93quoted\x94 \x80 5"), None),
            ("don’t “quoted” € 5".into(), "windows-1252")
        );
        assert_eq!(
            title(
                &doc("utf-8", b"It\x92s caf\xe9 time"),
                Some("application/rss+xml; charset=utf-8")
            ),
            ("It’s café time".into(), "windows-1252")
        );
        // UTF-8 with a stray byte: the UTF-8 stays (feedparser: "CafÃ© don’t").
        assert_eq!(
            title(
                &doc(
                    "utf-8",
                    "Café — "
                        .as_bytes()
                        .iter()
                        .chain(b"don\x92t")
                        .copied()
                        .collect::<Vec<_>>()
                        .as_slice()
                ),
                None
            ),
            ("Café — don’t".into(), "UTF-8 (stray bytes as windows-1252)")
        );
        // The bytes Windows-1252 leaves undefined stay the C1 controls of their value.
        assert_eq!(
            title(
                &doc(
                    "utf-8",
                    "Café "
                        .as_bytes()
                        .iter()
                        .chain(b"\x81")
                        .copied()
                        .collect::<Vec<_>>()
                        .as_slice()
                ),
                None
            )
            .0,
            "Café \u{81}"
        );
    }

    #[test]
    fn c1_controls_are_the_windows_1252_characters_they_stand_for() {
        for byte in 0x80u8..=0x9F {
            let bytes = [byte];
            let (expected, _) = WINDOWS_1252.decode_without_bom_handling(&bytes);
            let expected = expected.chars().next().expect("one char");
            assert_eq!(c1_to_windows_1252(char::from(byte)), expected, "{byte:#x}");
        }
        for c in ['a', '\u{7f}', '\u{a0}', 'é', '’', '日'] {
            assert_eq!(c1_to_windows_1252(c), c);
        }
    }

    #[test]
    fn text_fields_are_repaired_as_feedparser_repairs_them() {
        // Each as feedparser 6.0.14 gives the field (`title` of an RSS item declared UTF-8).
        let cases = [
            ("don\u{92}t", "don’t"), // bytes C2 92: a C1 control in UTF-8
            ("CafÃ©", "Café"),       // UTF-8 decoded twice
            ("Ã\u{89}cole â\u{80}\u{99}s", "École ’s"), // ... with C1 in the second bytes
            ("Ã", "Ã"),              // Latin-1 that is no UTF-8
            ("naïve", "naïve"),
            ("日本 \u{92}", "日本 ’"),
            ("\u{81}\u{8d}", "\u{81}\u{8d}"),
            ("plain", "plain"),
        ];
        for (field, expected) in cases {
            assert_eq!(repair_text(field), expected, "{field:?}");
        }
        assert!(matches!(repair_text("plain ascii"), Cow::Borrowed(_)));
        assert!(matches!(repair_text("日本語"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_utf8_bom_wins_over_a_legacy_header() {
        let mut body = b"\xEF\xBB\xBF".to_vec();
        body.extend(rss(Some("utf-8")).as_bytes());
        let (text, name, source) = decoded(&body, Some("application/xml; charset=iso-8859-1"));
        assert!(text.starts_with("<?xml"), "{text}");
        assert!(text.contains(I18N));
        assert_eq!((name, source), ("UTF-8", Source::Bom));
    }

    #[test]
    fn feedparser_reads_these_documents_the_same() {
        // What feedparser 6.0.14 gave for each (the title of the one item), run by hand:
        // `feedparser.parse(body, response_headers={"content-type": content_type})`.
        let with_title = |declaration: Option<&str>, title: &[u8]| {
            let mut body = declaration
                .map(|label| format!("<?xml version=\"1.0\" encoding=\"{label}\"?>"))
                .unwrap_or_default()
                .into_bytes();
            body.extend(b"<rss version=\"2.0\"><channel><title>c</title><item><title>");
            body.extend(title);
            body.extend(b"</title></item></channel></rss>");
            body
        };
        let i18n = |decl| rss(decl).replace(" €𝄞", "");
        let cases: Vec<(Vec<u8>, Option<&str>, &str)> = vec![
            (
                utf16(&i18n(Some("utf-16")), false, false),
                Some("application/xml"),
                I18N,
            ),
            (
                utf16(&i18n(Some("utf-16")), true, false),
                Some("application/xml"),
                I18N,
            ),
            (
                utf16(&i18n(Some("utf-16be")), true, false),
                Some("application/xml"),
                I18N,
            ),
            (
                utf16(&i18n(Some("utf-16le")), false, false),
                Some("application/xml"),
                I18N,
            ),
            (
                utf16(&i18n(None), false, true),
                Some("application/xml"),
                I18N,
            ),
            (
                utf16(&i18n(Some("utf-16")), true, true),
                Some("application/xml"),
                I18N,
            ),
            (
                utf32(&i18n(Some("utf-32")), false, false),
                Some("application/xml"),
                I18N,
            ),
            (
                utf32(&i18n(Some("utf-32")), true, false),
                Some("application/xml"),
                I18N,
            ),
            (
                utf32(&i18n(Some("utf-32")), true, true),
                Some("application/xml"),
                I18N,
            ),
            (
                utf32(&i18n(None), false, true),
                Some("application/xml"),
                I18N,
            ),
            (
                [&b"\xEF\xBB\xBF"[..], i18n(Some("utf-8")).as_bytes()].concat(),
                Some("application/xml; charset=iso-8859-1"),
                I18N,
            ),
            (
                with_title(Some("iso-8859-1"), b"don\x92t"),
                Some("application/xml"),
                "don’t",
            ),
            (
                with_title(Some("utf-8"), b"don\x92t"),
                Some("application/xml"),
                "don’t",
            ),
            (
                with_title(Some("utf-8"), "don\u{92}t".as_bytes()),
                Some("application/xml"),
                "don’t",
            ),
            (
                with_title(Some("utf-8"), "CafÃ©".as_bytes()),
                Some("application/xml"),
                "Café",
            ),
            (i18n(Some("utf-8")).into_bytes(), Some("text/xml"), I18N),
            (
                encoding_rs::WINDOWS_1252
                    .encode(&i18n(Some("iso-8859-1")))
                    .0
                    .into_owned(),
                None,
                I18N,
            ),
        ];
        for (body, content_type, expected) in cases {
            let d = decode(&body, content_type);
            let (_, texts) = read_back(&d.utf8);
            assert_eq!(
                repair_text(&texts[1]),
                expected,
                "{}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}
