//! What story matching knows of an entry, whatever the engine: its match record (link
//! and fingerprint hashes, the first entries of its stories) and how a new entry is prepared
//! for matching.

use serde::Deserialize;
use xxhash_rust::xxh3::xxh3_64;

use crate::dedup::{canonical_link, fingerprint_text, Fingerprint};
use crate::model::{Entry, EntryRef, StoredEntry, StoryKind};
use crate::store::recent::{MatchKeys, RecentEntries};
use crate::store::stories::{Joins, Members};

/// What story matching needs of an entry, stored ahead of its JSON so that a candidate is
/// checked without decoding it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct MatchRecord {
    /// The hash of its canonical link.
    pub(crate) link: Option<u64>,
    /// Its text's fingerprint.
    pub(crate) fingerprint: Option<Fingerprint>,
    /// The first entries of its stories by link and by text, as stored
    /// ([`StoredEntry::same_link_as`], [`StoredEntry::same_text_as`]); `None` when the value
    /// does not say (format 1: read them from its JSON).
    pub(crate) firsts: Option<[Option<EntryRef>; 2]>,
}

/// The first entries an entry names, by kind.
pub(crate) fn firsts_of(stored: &StoredEntry) -> [Option<EntryRef>; 2] {
    [stored.same_link_as.clone(), stored.same_text_as.clone()]
}

/// What a new or changed entry of a response needs for matching, computed before the
/// commits lock is taken.
pub(crate) struct Prepared {
    pub(crate) record: MatchRecord,
    pub(crate) keys: MatchKeys,
    pub(crate) canonical_link: Option<String>,
}

impl Prepared {
    pub(crate) fn of(entry: &Entry) -> Prepared {
        let canonical_link = entry.link.as_deref().and_then(canonical_link);
        let record = MatchRecord {
            link: canonical_link
                .as_deref()
                .map(|canonical| xxh3_64(canonical.as_bytes())),
            fingerprint: Fingerprint::of(&fingerprint_text(entry)),
            // Named when the entry is stored (see `encode_entry`).
            firsts: None,
        };
        Prepared {
            keys: MatchKeys::of(&record),
            record,
            canonical_link,
        }
    }
}

/// The first entries an entry's JSON names (for values written before schema 5, whose match
/// record does not).
#[derive(Deserialize)]
pub(crate) struct NamedFirsts {
    #[serde(default)]
    pub(crate) same_link_as: Option<EntryRef>,
    #[serde(default)]
    pub(crate) same_text_as: Option<EntryRef>,
}

/// Counts the entry `me`, remembered by the matching index as `seq`, among the members of
/// the stories whose first entries it names (`firsts`, by kind), after joins.
pub(super) fn count_member(
    members: &mut Members,
    recent: &mut RecentEntries,
    joins: &Joins,
    me: &EntryRef,
    firsts: &[Option<EntryRef>; 2],
    seq: Option<u32>,
) {
    for kind in StoryKind::BOTH {
        let named = firsts[kind.index()].as_ref().unwrap_or(me);
        let first = joins.resolve(kind, named);
        if first.key == me.key {
            // The first entry of its story: the others count it.
            members.touch(kind, &first.key, seq);
            continue;
        }
        let entries = [
            (recent.intern(&me.source), me.key),
            (recent.intern(&named.source), named.key),
            (recent.intern(&first.source), first.key),
        ];
        members.add(
            kind,
            first.key,
            &entries,
            seq,
            me.first_seen.timestamp_millis(),
        );
    }
}
