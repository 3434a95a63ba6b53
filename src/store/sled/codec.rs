//! Key and value encoding: prefixes, the per-source index, entry records.

use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;

use crate::dedup::Fingerprint;
use crate::model::{EntryKey, EntryRef, StoredEntry, StoryKind};
use crate::store::matching::*;
use crate::store::stories::{kind_of_tag, kind_tag};

/// The first byte of an entry value that carries a [`MatchRecord`] (a JSON-only value, as
/// schema 1 wrote them, starts with `{`) without the first entries of its stories, as
/// schemas 3 and 4 wrote them.
pub(super) const RECORD_FORMAT: u8 = 1;
/// The first byte of an entry value whose [`MatchRecord`] also names the first entries of
/// its stories (schema 5), so that the stories' sources are rebuilt at open without reading
/// entries' JSON.
pub(super) const RECORD_WITH_STORIES: u8 = 2;

pub(super) fn entry_key(source: &str, key: &EntryKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(3 + source.len() + 16);
    k.extend_from_slice(b"e:");
    k.extend_from_slice(source.as_bytes());
    k.push(0);
    k.extend_from_slice(&key.0);
    k
}

/// Splits the `{source}\0{key}` tail of an entry key.
pub(super) fn split_entry_key(k: &[u8]) -> Option<(String, EntryKey)> {
    let tail = k.strip_prefix(b"e:")?;
    if tail.len() < 18 {
        return None;
    }
    let (source, key) = tail.split_at(tail.len() - 16);
    let source = source.strip_suffix(&[0])?;
    Some((
        String::from_utf8(source.to_vec()).ok()?,
        EntryKey(key.try_into().ok()?),
    ))
}

pub(super) fn join_key(kind: StoryKind, joined: &EntryKey) -> Vec<u8> {
    let mut k = Vec::with_capacity(19);
    k.extend_from_slice(b"j:");
    k.push(kind_tag(kind));
    k.extend_from_slice(&joined.0);
    k
}

pub(super) fn split_join_key(k: &[u8]) -> Option<(StoryKind, EntryKey)> {
    let tail = k.strip_prefix(b"j:")?;
    let kind = kind_of_tag(*tail.first()?)?;
    Some((kind, EntryKey(tail.get(1..)?.try_into().ok()?)))
}

pub(super) fn index_key(source: &str) -> Vec<u8> {
    [b"n:".as_slice(), source.as_bytes()].concat()
}

pub(super) fn state_key(source: &str) -> Vec<u8> {
    [b"s:".as_slice(), source.as_bytes()].concat()
}

/// Newest first: the order-inverted, sign-corrected milliseconds of `time`.
pub(super) fn inverted_millis(time: DateTime<Utc>) -> [u8; 8] {
    (!((time.timestamp_millis() as u64) ^ (1 << 63))).to_be_bytes()
}

/// One entry in its source's index: ordered newest first (inverted sort time, then key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Indexed {
    pub(super) sort: [u8; 8],
    pub(super) key: EntryKey,
    pub(super) seen_ms: i64,
}

impl Indexed {
    const LEN: usize = 32;

    pub(super) fn of(stored: &StoredEntry) -> Indexed {
        Indexed {
            sort: inverted_millis(stored.sort_time),
            key: stored.key(),
            seen_ms: stored.first_seen.timestamp_millis(),
        }
    }
}

pub(super) fn encode_index(index: &[Indexed]) -> Vec<u8> {
    let mut out = Vec::with_capacity(index.len() * Indexed::LEN);
    for item in index {
        out.extend_from_slice(&item.sort);
        out.extend_from_slice(&item.key.0);
        out.extend_from_slice(&item.seen_ms.to_be_bytes());
    }
    out
}

pub(super) fn decode_index(bytes: &[u8]) -> Vec<Indexed> {
    bytes
        .chunks_exact(Indexed::LEN)
        .filter_map(|chunk| {
            Some(Indexed {
                sort: chunk.get(..8)?.try_into().ok()?,
                key: EntryKey(chunk.get(8..24)?.try_into().ok()?),
                seen_ms: i64::from_be_bytes(chunk.get(24..32)?.try_into().ok()?),
            })
        })
        .collect()
}

/// Writes `r` as a length-prefixed source, key and first-seen milliseconds; false (and
/// nothing written) for a source name too long for the prefix.
pub(super) fn encode_ref(out: &mut Vec<u8>, r: &EntryRef) -> bool {
    let Ok(len) = u16::try_from(r.source.len()) else {
        return false;
    };
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(r.source.as_bytes());
    out.extend_from_slice(&r.key.0);
    out.extend_from_slice(&r.first_seen.timestamp_millis().to_be_bytes());
    true
}

/// Reads what [`encode_ref`] wrote from the front of `rest`.
pub(super) fn decode_ref(rest: &mut &[u8]) -> Option<EntryRef> {
    let len = u16::from_be_bytes(rest.get(..2)?.try_into().ok()?) as usize;
    let source = std::str::from_utf8(rest.get(2..2 + len)?).ok()?.to_string();
    let key = EntryKey(rest.get(2 + len..18 + len)?.try_into().ok()?);
    let ms = i64::from_be_bytes(rest.get(18 + len..26 + len)?.try_into().ok()?);
    *rest = rest.get(26 + len..)?;
    Some(EntryRef {
        source,
        key,
        first_seen: from_millis(ms),
    })
}

/// An entry value: format byte, flags, link hash, fingerprint, the first entries of its
/// stories by link and by text (those it names; flags say which), then the entry's JSON.
pub(super) fn encode_entry(stored: &StoredEntry, record: &MatchRecord) -> Vec<u8> {
    // Room for the record and a typical entry's JSON: one allocation.
    let mut out = Vec::with_capacity(
        330 + stored.entry.html().map_or(0, str::len) + stored.entry.title.len() + 512,
    );
    let firsts = firsts_of(stored);
    let mut named = Vec::new();
    let mut flags = u8::from(record.link.is_some()) | (u8::from(record.fingerprint.is_some()) << 1);
    let recorded = firsts.iter().enumerate().all(|(i, first)| match first {
        Some(first) => {
            flags |= 4 << i;
            encode_ref(&mut named, first)
        }
        None => true,
    });
    let format = if recorded {
        RECORD_WITH_STORIES
    } else {
        flags &= 3;
        RECORD_FORMAT
    };
    out.extend_from_slice(&[format, flags]);
    if let Some(link) = record.link {
        out.extend_from_slice(&link.to_be_bytes());
    }
    if let Some(fingerprint) = &record.fingerprint {
        out.extend_from_slice(&fingerprint.to_bytes());
    }
    if recorded {
        out.extend_from_slice(&named);
    }
    // Writing to a Vec cannot fail, nor can serializing these types.
    let _ = serde_json::to_writer(&mut out, stored);
    out
}

/// The record and the JSON of an entry value (of any format).
pub(super) fn split_entry(bytes: &[u8]) -> Option<(MatchRecord, &[u8])> {
    match bytes.first()? {
        b'{' => Some((MatchRecord::default(), bytes)),
        &format @ (RECORD_FORMAT | RECORD_WITH_STORIES) => {
            let flags = *bytes.get(1)?;
            let mut rest = bytes.get(2..)?;
            let mut record = MatchRecord::default();
            if flags & 1 != 0 {
                record.link = Some(u64::from_be_bytes(rest.get(..8)?.try_into().ok()?));
                rest = rest.get(8..)?;
            }
            if flags & 2 != 0 {
                const PRINT: usize = crate::dedup::SIGNATURE_LEN * 4;
                record.fingerprint = Some(Fingerprint::from_bytes(rest.get(..PRINT)?)?);
                rest = rest.get(PRINT..)?;
            }
            if format == RECORD_WITH_STORIES {
                let mut firsts = [None, None];
                for (i, first) in firsts.iter_mut().enumerate() {
                    if flags & (4 << i) != 0 {
                        *first = Some(decode_ref(&mut rest)?);
                    }
                }
                record.firsts = Some(firsts);
            }
            Some((record, rest))
        }
        _ => None,
    }
}

/// Decodes a stored value; an undecodable one is logged and skipped, never fatal.
pub(super) fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8], what: &str) -> Option<T> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Some(value),
        Err(err) => {
            tracing::warn!("skipping an unreadable {what} in the store: {err}");
            None
        }
    }
}

/// A UTC time from milliseconds, for tests and callers that store them.
pub(super) fn from_millis(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
