//! Stories: which entries tell one story, and the joins that made two stories one.
//!
//! An entry names the first entry of its story when it is first stored (by link and by text,
//! [`super::StoredEntry::same_link_as`] and [`super::StoredEntry::same_text_as`]), and that
//! never changes. A later entry that matches two stories (a portal that links to the
//! outlet's page but carries the wire's text) *joins* them: the story whose first entry was
//! seen later is recorded as joined into the other ([`Joins`]), under a `j:` key of the store,
//! so that every entry of both now counts as one story, whichever order the outlets were
//! fetched in. Readers follow the joins ([`Joins::resolve`]); nothing else is rewritten, so a
//! join costs one key whatever the size of the stories, and no commit ever writes another
//! source's entries.
//!
//! A story never holds two entries of one source: a new entry joins only the stories that
//! hold none of its source, and of the stories it matches, two that share a source are never
//! joined. It joins the earliest of them (by first entry) and, in that order, every other
//! that shares a source with none before it; the rest stay apart. The entries of each recent
//! story are remembered here (`Members`), for the stories of the entries that matching can
//! still find (the match window), rebuilt from their match records when the store opens.

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use crate::model::{EntryKey, EntryRef, StoryKind};

/// The byte after `j:` in the key of a join of this kind.
pub(super) fn kind_tag(kind: StoryKind) -> u8 {
    match kind {
        StoryKind::Link => b'l',
        StoryKind::Text => b't',
    }
}

/// The kind of a join key's tag.
pub(super) fn kind_of_tag(tag: u8) -> Option<StoryKind> {
    match tag {
        b'l' => Some(StoryKind::Link),
        b't' => Some(StoryKind::Text),
        _ => None,
    }
}

/// The order of stories by their first entries: first seen first, then by source and key,
/// so that every process picks the same first entry of a joined story.
pub(super) fn story_order(r: &EntryRef) -> (chrono::DateTime<chrono::Utc>, &str, EntryKey) {
    (r.first_seen, &r.source, r.key)
}

/// One join: the story whose first entry is the key it is stored under now counts as the
/// story of `into`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Join {
    /// The first entry of the story joined into.
    pub(crate) into: EntryRef,
    /// The newest first-seen time (ms) of an entry of the joined story when it was joined:
    /// no entry names the joined story's first entry any more once retention has removed
    /// every entry first seen before it (entries that join later name `into` itself).
    pub(crate) until_ms: i64,
}

/// The joins of both kinds, by the first entry of the story that was joined.
#[derive(Debug, Default)]
pub(crate) struct Joins {
    kinds: [FxHashMap<EntryKey, Join>; 2],
}

impl Joins {
    /// The first entry of the story that `first` began, after every join: `first` itself when
    /// its story was never joined into another.
    pub(crate) fn resolve(&self, kind: StoryKind, first: &EntryRef) -> EntryRef {
        let joins = &self.kinds[kind.index()];
        let mut at = first;
        // Each join goes to an earlier story, so a chain ends; the bound is for a damaged store.
        for _ in 0..=joins.len() {
            match joins.get(&at.key) {
                Some(join) => at = &join.into,
                None => break,
            }
        }
        at.clone()
    }

    /// Records that the story of `joined` now counts as the story of `join.into`.
    pub(super) fn insert(&mut self, kind: StoryKind, joined: EntryKey, join: Join) {
        self.kinds[kind.index()].insert(joined, join);
    }

    /// Forgets the join of `joined`.
    pub(super) fn remove(&mut self, kind: StoryKind, joined: &EntryKey) {
        self.kinds[kind.index()].remove(joined);
    }

    /// How many joins there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.kinds.iter().map(FxHashMap::len).sum()
    }
}

/// An entry of a story, as matching knows it: its source (interned by
/// [`super::recent::RecentEntries`]) and its key.
pub(super) type Member = (u32, EntryKey);

/// Whether `entries` hold an entry of a source that `held` (entries by source) holds another
/// entry of (two entries with the same key are one: an entry stored again after its commit
/// failed).
pub(super) fn share_a_source(entries: &[Member], held: &FxHashMap<u32, EntryKey>) -> bool {
    entries
        .iter()
        .any(|(source, key)| held.get(source).is_some_and(|k| k != key))
}

/// What matching knows of a recent story of more than one entry.
#[derive(Debug, Clone, Default)]
pub(super) struct Story {
    /// Its entries, each once.
    entries: Vec<Member>,
    /// The newest first-seen time (ms) of its entries.
    newest_ms: i64,
    /// The matching index's sequence number of its most recently remembered entry: the
    /// story is forgotten when that entry is.
    last_seq: u32,
}

impl Story {
    fn add(&mut self, entries: &[Member]) {
        for entry in entries {
            if !self.entries.contains(entry) {
                self.entries.push(*entry);
            }
        }
    }

    /// Keeps `seq` as the latest remembered, unless the one kept is later (numbers wrap).
    fn remembered(&mut self, seq: u32) {
        if seq.wrapping_sub(self.last_seq) < u32::MAX / 2 {
            self.last_seq = seq;
        }
    }
}

/// The entries of the recent stories, by the first entry of each (after joins). A story of
/// one entry is not kept: its entry is its first.
#[derive(Debug, Default)]
pub(super) struct Members {
    kinds: [FxHashMap<EntryKey, Story>; 2],
    /// The matching index's seals when the stories were last pruned.
    pruned_at: u64,
}

impl Members {
    /// The entries of the story that `first` begins (`first_source` is its source).
    pub(crate) fn of(
        &self,
        kind: StoryKind,
        first: &EntryKey,
        first_source: u32,
    ) -> std::borrow::Cow<'_, [Member]> {
        match self.kinds[kind.index()].get(first) {
            Some(story) => std::borrow::Cow::Borrowed(&story.entries),
            None => std::borrow::Cow::Owned(vec![(first_source, *first)]),
        }
    }

    /// Counts `entries` among the story that `first` begins: an entry of it, remembered by
    /// the matching index as `seq` and first seen at `seen_ms`, names them.
    pub(crate) fn add(
        &mut self,
        kind: StoryKind,
        first: EntryKey,
        entries: &[Member],
        seq: Option<u32>,
        seen_ms: i64,
    ) {
        let story = self.kinds[kind.index()].entry(first).or_default();
        story.add(entries);
        story.newest_ms = story.newest_ms.max(seen_ms);
        if let Some(seq) = seq {
            story.remembered(seq);
        }
    }

    /// Notes that the first entry of the story it begins, if that story is known, is
    /// remembered again as `seq` (it was updated): the story stays known while it is.
    pub(crate) fn touch(&mut self, kind: StoryKind, first: &EntryKey, seq: Option<u32>) {
        if let (Some(story), Some(seq)) = (self.kinds[kind.index()].get_mut(first), seq) {
            story.remembered(seq);
        }
    }

    /// The newest first-seen time of an entry of the story `first` begins, if more than one
    /// entry is known of it.
    pub(crate) fn newest_ms(&self, kind: StoryKind, first: &EntryKey) -> Option<i64> {
        self.kinds[kind.index()].get(first).map(|s| s.newest_ms)
    }

    /// Moves what is known of the story `joined` (its first entry's source interned as
    /// `joined_source`) into the story `into` (`into_source`).
    pub(crate) fn join(
        &mut self,
        kind: StoryKind,
        joined: &EntryKey,
        joined_source: u32,
        into: EntryKey,
        into_source: u32,
    ) {
        let table = &mut self.kinds[kind.index()];
        let moved = table.remove(joined).unwrap_or_else(|| Story {
            entries: vec![(joined_source, *joined)],
            ..Story::default()
        });
        let story = table.entry(into).or_insert_with(|| Story {
            entries: vec![(into_source, into)],
            ..Story::default()
        });
        story.add(&moved.entries);
        story.newest_ms = story.newest_ms.max(moved.newest_ms);
        story.remembered(moved.last_seq);
    }

    /// Forgets the stories none of whose entries the matching index remembers, once per
    /// seal of the index (`seals`): no new entry can find them any more.
    pub(crate) fn prune(&mut self, seals: u64, remembers: impl Fn(u32) -> bool) {
        if seals == self.pruned_at {
            return;
        }
        self.pruned_at = seals;
        for table in &mut self.kinds {
            table.retain(|_, story| remembers(story.last_seq));
        }
    }

    /// How many stories are kept, of both kinds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.kinds.iter().map(FxHashMap::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(key: u8, ms: i64) -> EntryRef {
        EntryRef {
            source: format!("s{key}"),
            key: EntryKey([key; 16]),
            first_seen: chrono::Utc.timestamp_millis_opt(ms).single().expect("time"),
        }
    }

    #[test]
    fn joins_resolve_along_chains_and_by_kind() {
        let mut joins = Joins::default();
        let (a, b, c) = (at(1, 1), at(2, 2), at(3, 3));
        joins.insert(
            StoryKind::Text,
            c.key,
            Join {
                into: b.clone(),
                until_ms: 3,
            },
        );
        joins.insert(
            StoryKind::Text,
            b.key,
            Join {
                into: a.clone(),
                until_ms: 3,
            },
        );
        assert_eq!(joins.resolve(StoryKind::Text, &c), a);
        assert_eq!(joins.resolve(StoryKind::Text, &a), a);
        assert_eq!(joins.resolve(StoryKind::Link, &c), c);
        // A damaged store's loop ends.
        joins.insert(
            StoryKind::Link,
            a.key,
            Join {
                into: b.clone(),
                until_ms: 0,
            },
        );
        joins.insert(
            StoryKind::Link,
            b.key,
            Join {
                into: a.clone(),
                until_ms: 0,
            },
        );
        let _ = joins.resolve(StoryKind::Link, &a);
        assert_eq!(joins.len(), 4);
    }

    #[test]
    fn members_join_and_are_forgotten_with_their_last_entry() {
        let mut members = Members::default();
        let key = |n: u8| EntryKey([n; 16]);
        let (a, b) = (key(1), key(2));
        assert_eq!(*members.of(StoryKind::Text, &a, 7), [(7, a)]);
        members.add(StoryKind::Text, a, &[(7, a), (8, key(8))], Some(10), 100);
        members.add(StoryKind::Text, b, &[(9, b)], Some(20), 50);
        members.join(StoryKind::Text, &b, 9, a, 7);
        assert_eq!(
            *members.of(StoryKind::Text, &a, 7),
            [(7, a), (8, key(8)), (9, b)]
        );
        assert_eq!(members.newest_ms(StoryKind::Text, &a), Some(100));
        assert_eq!(members.newest_ms(StoryKind::Text, &b), None);
        // A story of one entry joined into another of one entry: both entries.
        let (c, d) = (key(3), key(4));
        members.join(StoryKind::Link, &d, 4, c, 3);
        assert_eq!(*members.of(StoryKind::Link, &c, 3), [(3, c), (4, d)]);
        members.prune(1, |seq| seq >= 20);
        assert_eq!(members.len(), 1);
        members.prune(2, |seq| seq > 20);
        assert_eq!(members.len(), 0);
        // Sequence numbers wrap: the later one is kept.
        members.add(StoryKind::Text, a, &[(7, a)], Some(u32::MAX), 1);
        members.add(StoryKind::Text, a, &[(7, a)], Some(3), 1);
        members.add(StoryKind::Text, a, &[(7, a)], Some(u32::MAX - 1), 1);
        members.prune(3, |seq| seq == 3);
        assert_eq!(members.len(), 1);
    }

    #[test]
    fn two_entries_of_one_source_are_a_conflict_and_one_entry_twice_is_not() {
        let key = |n: u8| EntryKey([n; 16]);
        let held = |entries: &[Member]| entries.iter().copied().collect::<FxHashMap<_, _>>();
        assert!(share_a_source(
            &[(1, key(1))],
            &held(&[(2, key(2)), (1, key(3))])
        ));
        assert!(!share_a_source(&[(1, key(1))], &held(&[(2, key(2))])));
        assert!(!share_a_source(
            &[(1, key(1))],
            &held(&[(1, key(1)), (2, key(2))])
        ));
    }
}
