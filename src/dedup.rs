//! Telling the same story apart from different ones: canonical links and near-duplicate text.
//!
//! **Canonical links** compare URLs the way a person would: scheme (`http`/`https`), host
//! case, default ports, fragments, tracking parameters, parameter order and a trailing slash
//! do not make two links different.
//!
//! **Near-duplicate text** uses MinHash over shingles of three tokens of the entry's
//! normalized text (markup removed; case, punctuation and typographic quotes folded; each
//! CJK character a token, since Chinese and Japanese do not separate words). Two texts are
//! the same story when the estimated Jaccard similarity of their shingle sets is at least
//! [`SIMILARITY_THRESHOLD`]. A repost with a header line and changed quotes scores about 0.9;
//! two different stories that share a footer or a "Source: ..." line score below 0.2. Texts
//! shorter than [`MIN_TOKENS`] tokens get no fingerprint and never merge: there is too little
//! to tell a story from boilerplate.
//!
//! Candidates are found in sub-linear time by locality-sensitive hashing: the 64 MinHash
//! values are cut into 21 bands of 3; entries that agree on a whole band are candidates
//! (for a true similarity of 0.6 the chance to be found is 99.4 %), then the full signatures
//! are compared.

use crate::model::Entry;
use crate::sanitize;
use url::Url;
use xxhash_rust::xxh3::xxh3_64;

/// MinHash values per fingerprint.
pub(crate) const SIGNATURE_LEN: usize = 64;
/// Rows per LSH band.
const BAND_ROWS: usize = 3;
/// LSH bands (the last values, beyond 21 × 3 = 63, are only used for comparing).
pub(crate) const BANDS: usize = SIGNATURE_LEN / BAND_ROWS;
/// Estimated Jaccard similarity from which two texts are the same story.
pub(crate) const SIMILARITY_THRESHOLD: f64 = 0.6;
/// Texts with fewer tokens than this are never merged by content.
pub(crate) const MIN_TOKENS: usize = 20;

/// Query parameters that only track the reader, dropped from canonical links.
const TRACKING_PARAMETERS: &[&str] = &[
    "fbclid",
    "gclid",
    "dclid",
    "gbraid",
    "wbraid",
    "msclkid",
    "yclid",
    "twclid",
    "igshid",
    "mc_cid",
    "mc_eid",
    "ref",
    "ref_src",
    "ref_url",
    "_ga",
    "_gl",
    "_hsenc",
    "_hsmi",
    "mkt_tok",
    "oly_anon_id",
    "oly_enc_id",
    "vero_id",
    "wickedid",
    "spm",
    "share_source",
    "from_source",
];

fn is_tracking(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.starts_with("utm_") || TRACKING_PARAMETERS.contains(&name.as_str())
}

/// The canonical form of a link, for comparing; `None` for what is not an http(s) URL.
/// The scheme is left out, so `http` and `https` links compare equal.
pub(crate) fn canonical_link(link: &str) -> Option<String> {
    let url = Url::parse(link.trim()).ok()?;
    if !matches!(url.scheme(), "http" | "https") {
        return None;
    }
    let host = url.host_str()?.trim_end_matches('.').to_ascii_lowercase();
    let port = match url.port() {
        Some(443) | Some(80) | None => String::new(),
        Some(port) => format!(":{port}"),
    };
    let path = url.path().trim_end_matches('/');
    let mut params: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(name, _)| !is_tracking(name))
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    params.sort();
    let query = if params.is_empty() {
        String::new()
    } else {
        let mut serializer = url::form_urlencoded::Serializer::new(String::from("?"));
        serializer.extend_pairs(&params);
        serializer.finish()
    };
    Some(format!("{host}{port}{path}{query}"))
}

fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{30FF}' | '\u{3400}'..='\u{4DBF}' | '\u{4E00}'..='\u{9FFF}'
        | '\u{AC00}'..='\u{D7AF}' | '\u{F900}'..='\u{FAFF}' | '\u{20000}'..='\u{2FFFF}')
}

/// The tokens of a plain text, hashed: lower-case words, and single CJK characters;
/// punctuation and quotes are separators. Hashes, not strings: a fingerprint needs nothing
/// else, and a string per token was a third of its cost.
pub(crate) fn token_hashes(text: &str) -> Vec<u64> {
    let mut out = Vec::new();
    let mut word = String::new();
    let end_word = |word: &mut String, out: &mut Vec<u64>| {
        if !word.is_empty() {
            out.push(xxh3_64(word.as_bytes()));
            word.clear();
        }
    };
    let token = |c: char, word: &mut String, out: &mut Vec<u64>| {
        if is_cjk(c) {
            end_word(word, out);
            let mut buf = [0u8; 4];
            out.push(xxh3_64(c.encode_utf8(&mut buf).as_bytes()));
        } else if c.is_alphanumeric() {
            word.push(c);
        } else if c != '\'' && c != '’' {
            // Apostrophes join ("don't"); everything else separates.
            end_word(word, out);
        }
    };
    let bytes = text.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        // A word of lower-case ASCII letters and digits ended by an ASCII separator, the
        // most common token, is hashed where it lies, without copying it.
        if word.is_empty() {
            let start = at;
            while bytes
                .get(at)
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            {
                at += 1;
            }
            if at > start {
                match bytes.get(at) {
                    Some(&b) if b.is_ascii_alphanumeric() || b == b'\'' || !b.is_ascii() => {
                        word.push_str(&text[start..at]);
                    }
                    _ => out.push(xxh3_64(&bytes[start..at])),
                }
                continue;
            }
        }
        let Some(c) = text[at..].chars().next() else {
            break;
        };
        at += c.len_utf8();
        // The same as below for ASCII, without Unicode's case tables: most text is ASCII.
        if c.is_ascii_alphanumeric() {
            word.push(c.to_ascii_lowercase());
        } else if c.is_ascii() && c != '\'' {
            end_word(&mut word, &mut out);
        } else {
            for lower in c.to_lowercase() {
                token(lower, &mut word, &mut out);
            }
        }
    }
    end_word(&mut word, &mut out);
    out
}

/// A MinHash signature of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fingerprint(pub(crate) [u32; SIGNATURE_LEN]);

/// Fixed multipliers and offsets of the hash family (splitmix64 from a fixed seed), so that
/// fingerprints stored by one run compare with those of the next. Multipliers and offsets
/// apart, so that the slots are computed a vector at a time.
struct Permutations {
    multipliers: [u64; SIGNATURE_LEN],
    offsets: [u64; SIGNATURE_LEN],
}

fn permutations() -> &'static Permutations {
    static TABLE: std::sync::OnceLock<Permutations> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut state: u64 = 0x5eed_f00d_feed_1234;
        let mut next = || {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let mut table = Permutations {
            multipliers: [0; SIGNATURE_LEN],
            offsets: [0; SIGNATURE_LEN],
        };
        for (multiplier, offset) in table.multipliers.iter_mut().zip(&mut table.offsets) {
            *multiplier = next() | 1;
            *offset = next();
        }
        table
    })
}

/// Lowers each slot of `signature` to the slot's hash of each shingle hash in `shingles`.
#[inline(always)]
fn fold_shingles(signature: &mut [u32; SIGNATURE_LEN], shingles: &[u64], table: &Permutations) {
    for &h in shingles {
        let slots = table.multipliers.iter().zip(&table.offsets);
        for (slot, (multiplier, offset)) in signature.iter_mut().zip(slots) {
            let value = (multiplier.wrapping_mul(h).wrapping_add(*offset) >> 32) as u32;
            *slot = (*slot).min(value);
        }
    }
}

/// [`fold_shingles`] compiled for AVX2: four slots at a time, most of a fingerprint's cost
/// otherwise (x86-64's baseline has no vector multiply of 64-bit numbers).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn fold_shingles_avx2(
    signature: &mut [u32; SIGNATURE_LEN],
    shingles: &[u64],
    table: &Permutations,
) {
    fold_shingles(signature, shingles, table);
}

/// [`fold_shingles`] compiled for AVX-512: eight slots at a time, with the 64-bit vector
/// multiply that AVX2 lacks (about half the time of the AVX2 fold).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512dq,avx512vl")]
fn fold_shingles_avx512(
    signature: &mut [u32; SIGNATURE_LEN],
    shingles: &[u64],
    table: &Permutations,
) {
    fold_shingles(signature, shingles, table);
}

/// Whether the CPU runs [`fold_shingles_avx512`].
#[cfg(target_arch = "x86_64")]
fn has_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512dq")
        && std::arch::is_x86_feature_detected!("avx512vl")
}

/// [`fold_shingles`] compiled for the best vector unit the CPU has; the same result on each.
fn fold_shingles_fastest(
    signature: &mut [u32; SIGNATURE_LEN],
    shingles: &[u64],
    table: &Permutations,
) {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx512() {
            // SAFETY: the CPU has these features, as checked just above.
            return unsafe { fold_shingles_avx512(signature, shingles, table) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, as checked just above.
            return unsafe { fold_shingles_avx2(signature, shingles, table) };
        }
    }
    fold_shingles(signature, shingles, table);
}

/// The hash of each run of three tokens.
fn shingle_hashes(tokens: &[u64]) -> Vec<u64> {
    tokens
        .windows(3)
        .map(|shingle| {
            let mut bytes = [0u8; 24];
            for (chunk, token) in bytes.chunks_exact_mut(8).zip(shingle) {
                chunk.copy_from_slice(&token.to_le_bytes());
            }
            xxh3_64(&bytes)
        })
        .collect()
}

impl Fingerprint {
    /// The fingerprint of a plain text; `None` when it is too short to tell.
    pub(crate) fn of(text: &str) -> Option<Fingerprint> {
        let tokens = token_hashes(text);
        if tokens.len() < MIN_TOKENS {
            return None;
        }
        let shingles = shingle_hashes(&tokens);
        let mut signature = [u32::MAX; SIGNATURE_LEN];
        fold_shingles_fastest(&mut signature, &shingles, permutations());
        Some(Fingerprint(signature))
    }

    /// The estimated Jaccard similarity of two texts.
    pub(crate) fn similarity(&self, other: &Fingerprint) -> f64 {
        let equal = self
            .0
            .iter()
            .zip(other.0.iter())
            .filter(|(a, b)| a == b)
            .count();
        equal as f64 / SIGNATURE_LEN as f64
    }

    /// Whether two texts are the same story.
    pub(crate) fn same_story(&self, other: &Fingerprint) -> bool {
        self.similarity(other) >= SIMILARITY_THRESHOLD
    }

    /// The LSH band hashes: (band number, hash of its rows).
    pub(crate) fn bands(&self) -> impl Iterator<Item = (u8, u64)> + '_ {
        self.0
            .chunks_exact(BAND_ROWS)
            .take(BANDS)
            .enumerate()
            .map(|(i, rows)| {
                let mut bytes = [0u8; BAND_ROWS * 4];
                for (chunk, row) in bytes.chunks_exact_mut(4).zip(rows) {
                    chunk.copy_from_slice(&row.to_le_bytes());
                }
                (i as u8, xxh3_64(&bytes))
            })
    }

    /// The fingerprint as bytes, for the store.
    pub(crate) fn to_bytes(&self) -> Vec<u8> {
        self.0.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// A fingerprint from [`Fingerprint::to_bytes`].
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<Fingerprint> {
        if bytes.len() != SIGNATURE_LEN * 4 {
            return None;
        }
        let mut signature = [0u32; SIGNATURE_LEN];
        for (slot, chunk) in signature.iter_mut().zip(bytes.chunks_exact(4)) {
            *slot = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        }
        Some(Fingerprint(signature))
    }
}

/// The plain text a fingerprint is made of: title and text, markup removed.
pub(crate) fn fingerprint_text(entry: &Entry) -> String {
    let mut text = entry.title.clone();
    text.push(' ');
    text.push_str(&sanitize::sanitized_to_plain(
        entry.html().unwrap_or_default(),
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tokens as the first version computed them, lower-casing every character through
    /// Unicode's tables: stored fingerprints depend on every token staying the same.
    fn reference_tokens(text: &str) -> Vec<u64> {
        let mut out = Vec::new();
        let mut word = String::new();
        for c in text.chars().flat_map(char::to_lowercase) {
            if is_cjk(c) || !(c.is_alphanumeric() || c == '\'' || c == '’') {
                if !word.is_empty() {
                    out.push(xxh3_64(word.as_bytes()));
                    word.clear();
                }
                if is_cjk(c) {
                    out.push(xxh3_64(c.encode_utf8(&mut [0u8; 4]).as_bytes()));
                }
            } else if c.is_alphanumeric() {
                word.push(c);
            }
        }
        if !word.is_empty() {
            out.push(xxh3_64(word.as_bytes()));
        }
        out
    }

    #[test]
    fn fingerprints_are_the_same_as_stored_ones_on_every_cpu() {
        // Computed by the first version; stored fingerprints are compared with new ones.
        let text = "Feed 0 story 0: reading classes across the region rzjgs mctg opvotbnea smcvbkv vubr wvvgk udivghwmh lfbs juppcyng fdd mvpjfsvh gcnt wnmtocldz zddvpgy ltrfetfbj dwwa biboe plimnm jhf 北京时间11月27日，国务院召开常务会议 Don't İstanbul";
        let print = Fingerprint::of(text).expect("long enough");
        assert_eq!(
            print.0[..8],
            [11468922, 232341202, 2657767, 77525760, 40218824, 22560502, 12905921, 36274503]
        );
        assert_eq!(xxh3_64(&print.to_bytes()), 0xe58a_9ab2_8bd9_b953);
        // The portable fold gives what the vector one gave.
        let mut portable = [u32::MAX; SIGNATURE_LEN];
        fold_shingles(
            &mut portable,
            &shingle_hashes(&token_hashes(text)),
            permutations(),
        );
        assert_eq!(portable, print.0);
        // And so does each vector fold this CPU can run.
        #[cfg(target_arch = "x86_64")]
        {
            let shingles = shingle_hashes(&token_hashes(text));
            let mut vector = [u32::MAX; SIGNATURE_LEN];
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2, as checked just above.
                unsafe { fold_shingles_avx2(&mut vector, &shingles, permutations()) };
                assert_eq!(vector, portable);
            }
            if has_avx512() {
                let mut vector = [u32::MAX; SIGNATURE_LEN];
                // SAFETY: the CPU has these features, as checked just above.
                unsafe { fold_shingles_avx512(&mut vector, &shingles, permutations()) };
                assert_eq!(vector, portable);
            }
        }
    }

    #[test]
    fn tokens_are_the_same_as_through_unicode_case_tables() {
        for text in [
            "Don't PANIC: the 42nd Answer, isn’t it?",
            "İstanbul ŞEHİR ΣΟΦΙΑ Straße ǅemal ＡＢＣ１２３",
            "北京时间11月27日，国务院召开常务会议。東京の天気は晴れ",
            "tab\tnew\nline\u{a0}nbsp\u{2009}thin — dash…ellipsis «quoted» \"q\"",
            "MiXeD123abc_def-ghi.jkl/mno?p=q&r=s#t \u{301}combining e\u{301}",
            "",
        ] {
            assert_eq!(token_hashes(text), reference_tokens(text), "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn tokens_of_any_text_are_the_same_as_through_unicode_case_tables(
            text in "[a-zA-Z0-9 '’.,\t\n_İŞΣßǅＡ１é\u{301}北京时间\u{a0}-]{0,40}"
        ) {
            proptest::prop_assert_eq!(token_hashes(&text), reference_tokens(&text));
        }
    }

    #[test]
    fn canonical_links_ignore_what_does_not_name_the_page() {
        let base = canonical_link("https://imdaily.example/2026/11/27/reading-classes.html");
        for variant in [
            "http://imdaily.example/2026/11/27/reading-classes.html",
            "HTTPS://IMDAILY.EXAMPLE:443/2026/11/27/reading-classes.html",
            "https://imdaily.example/2026/11/27/reading-classes.html#comments",
            "https://imdaily.example/2026/11/27/reading-classes.html?utm_source=portal&utm_medium=rss",
            "https://imdaily.example/2026/11/27/reading-classes.html?fbclid=abc&gclid=x&mc_cid=1&mc_eid=2&ref=home",
            "https://imdaily.example/2026/11/27/reading-classes.html/",
            "http://imdaily.example:80/2026/11/27/reading-classes.html",
        ] {
            assert_eq!(canonical_link(variant), base, "{variant}");
        }
        assert_eq!(
            canonical_link("https://x.example/a?b=2&a=1&utm_x=3"),
            canonical_link("https://x.example/a/?a=1&b=2")
        );
        assert_ne!(
            canonical_link("https://x.example/a?id=1"),
            canonical_link("https://x.example/a?id=2")
        );
        assert_ne!(
            canonical_link("https://x.example:8080/a"),
            canonical_link("https://x.example/a")
        );
        assert_eq!(canonical_link("mailto:a@b.example"), None);
        assert_eq!(canonical_link("not a url"), None);
    }

    const STORY: &str = "Departments across the Inner Mongolia Autonomous Region have organized themed education reading classes this month. Cadres studied the assigned texts in small groups, held discussions on how to apply them, and reported on the results in their daily work. Organizers said the classes would continue through the winter and that each department would publish a summary of what it had changed as a result. (Source: Inner Mongolia Daily News)";
    const REPOST: &str = "Reposted from Inner Mongolia Daily. Departments across the Inner Mongolia Autonomous Region have organized “themed education” reading classes this month. Cadres studied the assigned texts in small groups, held discussions on how to apply them, and reported on the results in their daily work. Organizers said the classes would continue through the winter, and that each department would publish a summary of what it had changed as a result. (Source: Inner Mongolia Daily News)";
    const OTHER: &str = "Two new bus lines connect the city centre of Hohhot with Baita International Airport from Monday, running every twenty minutes between six in the morning and midnight, the city transport bureau said. (Source: Inner Mongolia Daily News)";

    fn similarity(a: &str, b: &str) -> f64 {
        Fingerprint::of(a)
            .expect("long")
            .similarity(&Fingerprint::of(b).expect("long"))
    }

    #[test]
    fn a_repost_with_a_header_and_other_quotes_is_the_same_story() {
        let s = similarity(STORY, REPOST);
        assert!(s >= 0.8, "repost similarity {s}");
        assert!(Fingerprint::of(STORY)
            .expect("long")
            .same_story(&Fingerprint::of(REPOST).expect("long")));
    }

    #[test]
    fn different_stories_sharing_a_footer_are_not() {
        let s = similarity(STORY, OTHER);
        assert!(s < 0.2, "different stories scored {s}");
        let footer = " Copyright Inner Mongolia Daily. All rights reserved. Reproduction without permission is prohibited. Follow us for more regional news every day.";
        let s = similarity(&format!("{OTHER}{footer}"), &format!("Heavy snow closed several county roads across the Xilingol grasslands on Wednesday and herders moved livestock into shelters.{footer}"));
        assert!(
            s < SIMILARITY_THRESHOLD,
            "a shared footer merged two stories: {s}"
        );
    }

    #[test]
    fn the_threshold_is_tested_on_both_sides() {
        // Keep the first k words of the story and replace the rest: similarity falls with k.
        let words: Vec<&str> = STORY.split(' ').collect();
        let changed = |keep: usize| {
            let mut text: Vec<String> = words.iter().map(|w| w.to_string()).collect();
            for (i, w) in text.iter_mut().enumerate().skip(keep) {
                *w = format!("other{i}");
            }
            text.join(" ")
        };
        let n = words.len();
        assert!(similarity(STORY, &changed(n * 9 / 10)) >= SIMILARITY_THRESHOLD);
        assert!(similarity(STORY, &changed(n / 3)) < SIMILARITY_THRESHOLD);
    }

    #[test]
    fn chinese_text_is_fingerprinted_by_characters() {
        let story = "内蒙古自治区各部门近日组织开展主题教育读书班，党员干部分组学习指定篇目，围绕如何学以致用展开讨论，并在日常工作中汇报学习成果。";
        let repost = "转自内蒙古日报：内蒙古自治区各部门近日组织开展“主题教育”读书班，党员干部分组学习指定篇目，围绕如何学以致用展开讨论，并在日常工作中汇报学习成果。";
        let other = "呼和浩特市开通两条直达白塔国际机场的公交线路，每二十分钟一班，首班车早上六点发车，末班车午夜发车，市交通局表示将根据客流调整。";
        assert!(similarity(story, repost) >= SIMILARITY_THRESHOLD);
        assert!(similarity(story, other) < 0.2);
    }

    #[test]
    fn short_texts_get_no_fingerprint() {
        assert!(
            Fingerprint::of("Weather: sunny, 12 degrees. (Source: Inner Mongolia Daily)").is_none()
        );
    }

    #[test]
    fn fingerprints_round_trip_and_band() {
        let f = Fingerprint::of(STORY).expect("long");
        assert_eq!(Fingerprint::from_bytes(&f.to_bytes()), Some(f.clone()));
        assert_eq!(f.bands().count(), BANDS);
        let repost = Fingerprint::of(REPOST).expect("long");
        let shared = f
            .bands()
            .zip(repost.bands())
            .filter(|(a, b)| a == b)
            .count();
        assert!(shared > 0, "a repost must share a band to be found");
    }
}
