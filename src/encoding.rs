//! Character encodings: every body is turned into UTF-8 before it is parsed.
//!
//! The charset is taken from the HTTP header, else the byte-order mark, else the XML
//! declaration, else UTF-8 (the default of XML and JSON). Labels are the WHATWG set that
//! encoding_rs knows (GBK/GB2312/GB18030, Big5, Shift_JIS, EUC-KR, Windows-1252, ISO-8859-x,
//! ...). Servers and documents lie, so the bytes get the last word: bytes that are valid,
//! non-ASCII UTF-8 are UTF-8 whatever the label says, and bytes that do not decode in the
//! labelled encoding are handed to chardetng for a guess.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8};

/// Where the chosen encoding came from; says why a document was read the way it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The HTTP `Content-Type` charset.
    Header,
    /// A byte-order mark.
    Bom,
    /// The XML declaration's `encoding`.
    Declaration,
    /// Nothing said: UTF-8.
    Default,
    /// The label was contradicted by the bytes; this is what they look like.
    Bytes,
}

/// A body in UTF-8, and how its encoding was decided.
pub struct Decoded<'a> {
    /// The body as UTF-8, with any BOM removed and the XML declaration's `encoding`
    /// dropped unless it names UTF-8 (it would now be wrong).
    pub utf8: Cow<'a, [u8]>,
    /// The encoding the body was read in.
    pub encoding: &'static Encoding,
    /// Why.
    pub source: Source,
}

/// The `charset` parameter of a Content-Type header.
pub fn charset_of(content_type: &str) -> Option<&str> {
    content_type
        .split(';')
        .skip(1)
        .filter_map(|param| param.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, value)| value.trim().trim_matches(|c| c == '"' || c == '\''))
}

/// The `encoding` of an XML declaration at the start of `body`.
fn declared_encoding(body: &[u8]) -> Option<&'static Encoding> {
    let head = &body[..body.len().min(1024)];
    let head = std::str::from_utf8(head)
        .unwrap_or_else(|e| std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default());
    let declaration = head.trim_start().strip_prefix("<?xml")?;
    let declaration = &declaration[..declaration.find("?>")?];
    let after = &declaration[declaration.find("encoding")? + "encoding".len()..];
    let after = after.trim_start().strip_prefix('=')?.trim_start();
    let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let label = &after[1..][..after[1..].find(quote)?];
    Encoding::for_label(label.trim().as_bytes())
}

/// Decodes `body` to UTF-8; see the module doc for the rules.
pub fn decode<'a>(body: &'a [u8], content_type: Option<&str>) -> Decoded<'a> {
    let from_header = content_type
        .and_then(charset_of)
        .and_then(|label| Encoding::for_label(label.as_bytes()));
    let bom = Encoding::for_bom(body);
    let (encoding, source) = if let Some(encoding) = from_header {
        (encoding, Source::Header)
    } else if let Some((encoding, _)) = bom {
        (encoding, Source::Bom)
    } else if let Some(encoding) = declared_encoding(body) {
        (encoding, Source::Declaration)
    } else {
        (UTF_8, Source::Default)
    };
    // UTF-16 labels on a body without a UTF-16 BOM are almost always wrong: the declaration
    // of a document that a server already transcoded.
    let (encoding, source) = if encoding.output_encoding() != encoding
        && !matches!(bom, Some((e, _)) if e == encoding)
    {
        (UTF_8, Source::Bytes)
    } else {
        (encoding, source)
    };

    let without_bom = match bom {
        Some((bom_encoding, len)) if bom_encoding == encoding => &body[len..],
        _ => body,
    };
    let valid_utf8 = std::str::from_utf8(without_bom).is_ok();
    if encoding == UTF_8 && valid_utf8 {
        return Decoded {
            utf8: strip_declared_encoding(Cow::Borrowed(without_bom)),
            encoding,
            source,
        };
    }
    if valid_utf8 && !without_bom.is_ascii() && encoding.is_ascii_compatible() {
        // Multi-byte UTF-8 sequences hardly ever occur by chance in legacy text.
        return Decoded {
            utf8: strip_declared_encoding(Cow::Borrowed(without_bom)),
            encoding: UTF_8,
            source: Source::Bytes,
        };
    }
    let (text, had_errors) = encoding.decode_without_bom_handling(without_bom);
    if had_errors {
        let mut detector = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
        detector.feed(without_bom, true);
        let guess = detector.guess(None, chardetng::Utf8Detection::Allow);
        let (guessed, guess_errors) = guess.decode_without_bom_handling(without_bom);
        if guess != encoding && !guess_errors {
            return Decoded {
                utf8: strip_declared_encoding(Cow::Owned(guessed.into_owned().into_bytes())),
                encoding: guess,
                source: Source::Bytes,
            };
        }
    }
    Decoded {
        utf8: strip_declared_encoding(Cow::Owned(text.into_owned().into_bytes())),
        encoding,
        source,
    }
}

/// Drops `encoding="..."` from the XML declaration of a UTF-8 body, so the XML reader does
/// not decode it a second time.
fn strip_declared_encoding(utf8: Cow<'_, [u8]>) -> Cow<'_, [u8]> {
    // Most feeds declare UTF-8, which is now true: no copy of the document.
    if declared_encoding(&utf8) == Some(UTF_8) {
        return utf8;
    }
    let Ok(text) = std::str::from_utf8(&utf8) else {
        return utf8;
    };
    let start = text.len() - text.trim_start().len();
    let Some(rest) = text[start..].strip_prefix("<?xml") else {
        return utf8;
    };
    let Some(end) = rest.find("?>") else {
        return utf8;
    };
    let declaration = &rest[..end];
    let Some(attr) = declaration.find("encoding") else {
        return utf8;
    };
    let after = &declaration[attr..];
    let Some(value_end) = after
        .char_indices()
        .filter(|(_, c)| *c == '"' || *c == '\'')
        .nth(1)
        .map(|(i, _)| i + 1)
    else {
        return utf8;
    };
    let cleaned = format!(
        "<?xml{}{}?>{}",
        &declaration[..attr],
        &after[value_end..],
        &rest[end + 2..]
    );
    Cow::Owned(cleaned.into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str =
        "<rss version=\"2.0\"><channel><title>内蒙古日报：读书班</title></channel></rss>";

    fn xml(encoding: &str) -> String {
        format!("<?xml version=\"1.0\" encoding=\"{encoding}\"?>{TEXT}")
    }

    fn decoded(body: &[u8], content_type: Option<&str>) -> (String, &'static str, Source) {
        let d = decode(body, content_type);
        (
            String::from_utf8(d.utf8.into_owned()).expect("utf-8"),
            d.encoding.name(),
            d.source,
        )
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
            !text.contains("encoding="),
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
        let mut utf16 = vec![0xFF, 0xFE];
        for unit in xml("ISO-8859-1").encode_utf16() {
            utf16.extend_from_slice(&unit.to_le_bytes());
        }
        let (text, name, source) = decoded(&utf16, None);
        assert!(text.starts_with("<?xml version=\"1.0\" ?>"), "{text}");
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
}
