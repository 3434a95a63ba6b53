//! Story matching as every engine does it: what the commits of one process share (the
//! recent entries' index, the stories' members, the entries matched but not yet written, the
//! joins not yet written), how one commit's changed entries are matched, and an entry's story.
//!
//! An engine supplies the lookups ([`Candidates`]), its joins (the `RwLock<Joins>` that
//! [`story_of`] reads) and the writes; it holds its [`Matcher`] under one lock, which a commit
//! takes only to match (see [`Matcher::match_commit`]), so that each commit sees every commit
//! before it, written or not. The protocol:
//!
//! 1. At open, [`Matcher::new`], then [`Matcher::remember`] for the newest `match_window`
//!    stored entries, oldest first. Later, the same for the entries another process
//!    committed, in the order they were committed.
//! 2. A commit computes [`Prepared`] for its changed entries (outside the lock), takes the
//!    lock, calls [`Matcher::match_commit`], and writes what it answers ([`Matched`]): its
//!    joins first, then its entries.
//! 3. When the commit ends, written or not, [`Matcher::forget_pending`] with the keys it
//!    matched; when its write failed, [`Matcher::keep_unwritten`] with its joins, which the
//!    next commit then writes.
//!
//! A join heard from another process goes straight into the engine's [`Joins`]
//! (`Joins::insert`).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;

use crate::dedup::canonical_link;
use crate::model::{sort_time, CommitSummary, Entry, EntryKey, EntryRef, StoredEntry, StoryKind};
use crate::store::matching::{count_member, firsts_of, MatchRecord, Prepared};
use crate::store::recent::{MatchKeys, RecentEntries, Remembered};
use crate::store::stories::{share_a_source, story_order, Join, Joins, Members};
use crate::store::StoreError;

/// What matching reads of the engine: the stored entries the index points to.
pub(crate) trait Candidates {
    /// The stored entry `key` of `source`, if it is still stored and its match record passes
    /// `check`: decode the entry only then (most candidates fail the check).
    fn candidate(
        &self,
        source: &str,
        key: &EntryKey,
        check: &dyn Fn(&MatchRecord) -> bool,
    ) -> Result<Option<StoredEntry>, StoreError>;
}

/// An entry as a commit writes it: the entry and its match record. The record's `firsts` is
/// `None`: the first entries of its stories are `stored.same_link_as` and `same_text_as`.
pub(crate) struct Written {
    /// The entry to store.
    pub(crate) stored: StoredEntry,
    /// Its match record, to store with it.
    pub(crate) record: MatchRecord,
    /// Not stored before.
    pub(crate) new: bool,
}

/// One entry of a response that is new or changed.
pub(crate) struct Change<'a> {
    /// Its position in the response (undated new entries keep the document's order).
    pub(crate) position: usize,
    /// The entry as fetched.
    pub(crate) entry: &'a Entry,
    /// Its key.
    pub(crate) key: EntryKey,
    /// The entry as stored, if it is (then it keeps its first-seen time and stories).
    pub(crate) old: Option<StoredEntry>,
    /// What matching needs of it, computed before the lock is taken.
    pub(crate) prepared: Prepared,
}

impl<'a> Change<'a> {
    /// The change of `entry` (at `position`, with `key`, stored as `old` if it is), with
    /// what matching needs of it: the costly part, for before the lock is taken.
    pub(crate) fn new(
        position: usize,
        entry: &'a Entry,
        key: EntryKey,
        old: Option<StoredEntry>,
    ) -> Change<'a> {
        Change {
            position,
            entry,
            key,
            old,
            prepared: Prepared::of(entry),
        }
    }
}

/// What matching one commit answers: what the engine writes, and the commit's summary.
pub(crate) struct Matched {
    /// The entries to write, in the response's order.
    pub(crate) written: Vec<(EntryKey, Arc<Written>)>,
    /// The joins to write before the entries (that name the stories they made): this
    /// commit's, and those of commits before it whose write failed.
    pub(crate) joins: Vec<(StoryKind, EntryKey, Join)>,
    /// New, updated, and the other sources whose stories were joined.
    pub(crate) summary: CommitSummary,
}

/// What one process's commits share for matching; see the module documentation.
pub(crate) struct Matcher {
    /// The recent entries' matching index.
    recent: RecentEntries,
    /// The entries of the recent stories.
    members: Members,
    /// Entries a commit has matched but not yet written: a commit beside it finds them here.
    pending: FxHashMap<EntryKey, Arc<Written>>,
    /// Joins matched by a commit whose write failed: handed on to the next commit.
    unwritten: Vec<(StoryKind, EntryKey, Join)>,
}

impl Matcher {
    /// Matching against the most recent `match_window` entries (0 turns matching off),
    /// remembering none yet.
    pub(crate) fn new(match_window: usize) -> Matcher {
        Matcher {
            recent: RecentEntries::new(match_window),
            members: Members::default(),
            pending: FxHashMap::default(),
            unwritten: Vec::new(),
        }
    }

    /// Forgets every stored entry it remembers (to be remembered again, as after
    /// [`Matcher::new`], with a window of `match_window`): the store was reopened, or
    /// writes it was told of were lost. Keeps the entries pending and the joins unwritten.
    pub(crate) fn reset(&mut self, match_window: usize) {
        self.recent = RecentEntries::new(match_window);
        self.members = Members::default();
    }

    /// Remembers the stored entry `me` with its match record (a later entry wins the
    /// index's keys: call oldest first by first-seen time at open, and in commit order for
    /// entries another process committed). `record.firsts` names the first entries of its
    /// stories; `None` counts as naming none. `joins` are the engine's, read-locked by the
    /// caller (once for a batch). Forgotten stories are pruned by the next commit's matching.
    pub(crate) fn remember(&mut self, joins: &Joins, me: &EntryRef, record: &MatchRecord) {
        let seen = me.first_seen.timestamp_millis();
        let seq = self
            .recent
            .insert(&me.source, me.key, seen, &MatchKeys::of(record));
        if seq.is_none() {
            // Never a candidate: nothing to know of its stories.
            return;
        }
        let none = [None, None];
        let firsts = record.firsts.as_ref().unwrap_or(&none);
        count_member(&mut self.members, &mut self.recent, joins, me, firsts, seq);
    }

    /// Matches one commit of `source`: its new and changed entries, one at a time, each
    /// against the stories of every commit before it, written or pending, and remembers them
    /// (pending until [`Matcher::forget_pending`]). A new entry is first seen at `now` (less
    /// its position, in milliseconds); a changed one keeps its first-seen time and stories.
    /// `joins` gains the joins the entries make. On an error (of `candidates`), nothing of
    /// this commit is pending, and its joins, made in `joins` already, are kept unwritten.
    pub(crate) fn match_commit(
        &mut self,
        source: &str,
        changed: Vec<Change<'_>>,
        now: DateTime<Utc>,
        joins: &RwLock<Joins>,
        candidates: &dyn Candidates,
    ) -> Result<Matched, StoreError> {
        let mut matched = Matched {
            written: Vec::with_capacity(changed.len()),
            // The joins of a commit whose write failed go with this one.
            joins: std::mem::take(&mut self.unwritten),
            summary: CommitSummary::default(),
        };
        for change in changed {
            if let Err(err) = self.match_one(source, change, now, joins, candidates, &mut matched) {
                for (key, _) in &matched.written {
                    self.pending.remove(key);
                }
                self.unwritten.append(&mut matched.joins);
                return Err(err);
            }
        }
        let joined = &mut matched.summary.joined;
        joined.retain(|other| other != source);
        joined.sort_unstable();
        joined.dedup();
        Ok(matched)
    }

    /// Forgets the pending entries `keys` once their commit has ended, written or not (an
    /// entry whose write failed is fetched again in full).
    pub(crate) fn forget_pending<'k>(&mut self, keys: impl IntoIterator<Item = &'k EntryKey>) {
        for key in keys {
            self.pending.remove(key);
        }
    }

    /// Keeps the joins of a commit whose write failed (they are made in memory already):
    /// the next [`Matcher::match_commit`] hands them on to be written.
    pub(crate) fn keep_unwritten(&mut self, mut joins: Vec<(StoryKind, EntryKey, Join)>) {
        self.unwritten.append(&mut joins);
    }

    /// How many entries are pending.
    #[cfg(test)]
    pub(crate) fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// How many joins are kept unwritten.
    #[cfg(test)]
    pub(crate) fn unwritten_len(&self) -> usize {
        self.unwritten.len()
    }

    /// Matches one entry of a commit, remembers it, and adds it to `matched`.
    fn match_one(
        &mut self,
        source: &str,
        change: Change<'_>,
        now: DateTime<Utc>,
        joins: &RwLock<Joins>,
        candidates: &dyn Candidates,
        matched: &mut Matched,
    ) -> Result<(), StoreError> {
        let Change {
            position,
            entry,
            key,
            old,
            prepared,
        } = change;
        let new = old.is_none();
        let stored = match old {
            Some(old) => {
                matched.summary.updated += 1;
                StoredEntry {
                    entry: entry.clone(),
                    sort_time: sort_time(entry, old.first_seen, now),
                    ..old
                }
            }
            None => {
                // Undated entries of one response keep their document order (newest first).
                let first_seen = now - chrono::Duration::milliseconds(position as i64);
                matched.summary.new += 1;
                let [same_link_as, same_text_as] = self.join_stories(
                    source,
                    key,
                    &prepared,
                    joins,
                    candidates,
                    &mut matched.joins,
                    &mut matched.summary.joined,
                )?;
                StoredEntry {
                    source: source.to_string(),
                    entry: entry.clone(),
                    first_seen,
                    sort_time: sort_time(entry, first_seen, now),
                    same_link_as,
                    same_text_as,
                }
            }
        };
        let seq = self.recent.insert(
            source,
            key,
            stored.first_seen.timestamp_millis(),
            &prepared.keys,
        );
        count_member(
            &mut self.members,
            &mut self.recent,
            &joins.read().unwrap_or_else(|p| p.into_inner()),
            &stored.to_ref(),
            &firsts_of(&stored),
            seq,
        );
        let recent = &self.recent;
        self.members
            .prune(recent.seals(), |seq| recent.remembers(seq));
        let written = Arc::new(Written {
            stored,
            record: prepared.record,
            new,
        });
        self.pending.insert(key, written.clone());
        matched.written.push((key, written));
        Ok(())
    }

    /// The stories the new entry `key` of `source` is part of, by link and by text: of the
    /// stories it matches (see [`Matcher::find_stories`]), those that hold no other entry of
    /// its source, and of those, the earliest and each that shares no source with the ones
    /// before it (a story never holds two entries of one source). When that is more than
    /// one, the later ones are joined into the earliest, here, in `joins` and in `joined`
    /// (to be written), and the sources of the stories joined are added to `touched`.
    #[allow(clippy::too_many_arguments)]
    fn join_stories(
        &mut self,
        source: &str,
        key: EntryKey,
        prepared: &Prepared,
        joins: &RwLock<Joins>,
        candidates: &dyn Candidates,
        joined: &mut Vec<(StoryKind, EntryKey, Join)>,
        touched: &mut Vec<String>,
    ) -> Result<[Option<EntryRef>; 2], StoreError> {
        let found = {
            let joins = joins.read().unwrap_or_else(|p| p.into_inner());
            self.find_stories(source, prepared, &joins, candidates)?
        };
        let Matcher {
            recent, members, ..
        } = self;
        let me = (recent.intern(source), key);
        let mut firsts = [None, None];
        for kind in StoryKind::BOTH {
            // The entries of the stories chosen so far, by source.
            let mut held: FxHashMap<u32, EntryKey> = FxHashMap::from_iter([me]);
            let mut chosen: Vec<EntryRef> = Vec::new();
            for story in &found[kind.index()] {
                let first_source = recent.intern(&story.source);
                let entries = members.of(kind, &story.key, first_source);
                if share_a_source(&entries, &held) {
                    continue;
                }
                for &(source, key) in entries.iter() {
                    held.entry(source).or_insert(key);
                }
                chosen.push(story.clone());
            }
            if chosen.len() > 1 {
                touched.extend(
                    held.keys()
                        .filter_map(|&id| recent.name(id))
                        .map(String::from),
                );
            }
            let mut chosen = chosen.into_iter();
            let Some(first) = chosen.next() else {
                continue;
            };
            for other in chosen {
                let until_ms = members
                    .newest_ms(kind, &other.key)
                    .unwrap_or_default()
                    .max(other.first_seen.timestamp_millis());
                members.join(
                    kind,
                    &other.key,
                    recent.intern(&other.source),
                    first.key,
                    recent.intern(&first.source),
                );
                let join = Join {
                    into: first.clone(),
                    until_ms,
                };
                joins.write().unwrap_or_else(|p| p.into_inner()).insert(
                    kind,
                    other.key,
                    join.clone(),
                );
                joined.push((kind, other.key, join));
            }
            firsts[kind.index()] = Some(first);
        }
        Ok(firsts)
    }

    /// The stories a new entry of `source` matches, by link and by text, each named by its
    /// first entry after joins, earliest first (see [`story_order`]): the stories of the
    /// other sources' recent entries with the same canonical link (by link, and by text) and
    /// with nearly the same text (by text). Only recent entries are candidates (see
    /// [`crate::store::recent`]); each is checked against its match record, and decoded only
    /// when it matches. Every band is looked at, not only until one story is found: the
    /// entry may be the one that tells two stories are one.
    fn find_stories(
        &self,
        source: &str,
        prepared: &Prepared,
        joins: &Joins,
        candidates: &dyn Candidates,
    ) -> Result<[Vec<EntryRef>; 2], StoreError> {
        let recent = &self.recent;
        let mut found: [Vec<EntryRef>; 2] = [Vec::new(), Vec::new()];
        let mut note = |kind: StoryKind, named: Option<&EntryRef>, carrier: &StoredEntry| {
            let first = match named {
                Some(named) => joins.resolve(kind, named),
                None => joins.resolve(kind, &carrier.to_ref()),
            };
            let stories = &mut found[kind.index()];
            if !stories.iter().any(|s| s.key == first.key) {
                stories.push(first);
            }
        };
        let mut seen = HashSet::new();
        if let (Some(link), Some(canonical)) = (prepared.keys.link, &prepared.canonical_link) {
            for carrier in recent.carriers(link) {
                // The story of an entry of this source holds this source: never joined.
                if recent.source(&carrier) == source {
                    continue;
                }
                let same_hash = |theirs: &MatchRecord| theirs.link == prepared.record.link;
                let Some(found) = self.candidate(candidates, &carrier, &same_hash)? else {
                    continue;
                };
                // The same link, not only the same hash.
                if found
                    .entry
                    .link
                    .as_deref()
                    .and_then(canonical_link)
                    .as_ref()
                    != Some(canonical)
                {
                    continue;
                }
                seen.insert(carrier);
                note(StoryKind::Link, found.same_link_as.as_ref(), &found);
                note(StoryKind::Text, found.same_text_as.as_ref(), &found);
            }
        }
        if let Some(fingerprint) = &prepared.record.fingerprint {
            let same_story = |theirs: &MatchRecord| {
                theirs
                    .fingerprint
                    .as_ref()
                    .is_some_and(|theirs| theirs.same_story(fingerprint))
            };
            for &band in &prepared.keys.bands {
                for carrier in recent.carriers(band) {
                    if !seen.insert(carrier) || recent.source(&carrier) == source {
                        continue;
                    }
                    if let Some(found) = self.candidate(candidates, &carrier, &same_story)? {
                        note(StoryKind::Text, found.same_text_as.as_ref(), &found);
                    }
                }
            }
        }
        for stories in &mut found {
            stories.sort_by(|a, b| story_order(a).cmp(&story_order(b)));
        }
        Ok(found)
    }

    /// The stored entries (source and key) that matching `prepared`, a new entry of
    /// `source`, would ask the engine for now: the other sources' recent carriers of its
    /// link and of its text's bands, but those of commits still being written (held here).
    /// An engine whose lookups are round trips reads them in one go first.
    pub(crate) fn lookups(
        &self,
        source: &str,
        prepared: &Prepared,
        into: &mut Vec<(String, EntryKey)>,
    ) {
        let recent = &self.recent;
        let link = prepared
            .keys
            .link
            .filter(|_| prepared.canonical_link.is_some());
        let bands = prepared
            .record
            .fingerprint
            .as_ref()
            .map_or(&[][..], |_| &prepared.keys.bands[..]);
        for key in link.iter().chain(bands) {
            for carrier in recent.carriers(*key) {
                let theirs = recent.source(&carrier);
                if theirs != source && !self.pending.contains_key(&carrier.key) {
                    into.push((theirs.to_string(), carrier.key));
                }
            }
        }
    }

    /// A remembered entry, if its match record passes `check`: from a commit still being
    /// written, else from the engine (gone when retention removed it).
    fn candidate(
        &self,
        candidates: &dyn Candidates,
        carrier: &Remembered,
        check: &dyn Fn(&MatchRecord) -> bool,
    ) -> Result<Option<StoredEntry>, StoreError> {
        if let Some(written) = self.pending.get(&carrier.key) {
            return Ok(check(&written.record).then(|| written.stored.clone()));
        }
        candidates.candidate(self.recent.source(carrier), &carrier.key, check)
    }
}

/// The first entry of the story that `stored` is part of, by link or by text, after every
/// join in `joins`: entries of one story answer the same, whichever order they came in.
/// Itself when it is the first (or only) entry of its story.
pub(crate) fn story_of(joins: &RwLock<Joins>, stored: &StoredEntry, kind: StoryKind) -> EntryRef {
    let named = match kind {
        StoryKind::Link => stored.same_link_as.as_ref(),
        StoryKind::Text => stored.same_text_as.as_ref(),
    };
    let first = named.cloned().unwrap_or_else(|| stored.to_ref());
    joins
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .resolve(kind, &first)
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use chrono::TimeZone;

    use super::*;

    /// An engine that keeps its entries in memory, and can be made to fail its lookups.
    #[derive(Default)]
    struct Memory {
        entries: RefCell<FxHashMap<EntryKey, (StoredEntry, MatchRecord)>>,
        failing: Cell<bool>,
    }

    impl Candidates for Memory {
        fn candidate(
            &self,
            source: &str,
            key: &EntryKey,
            check: &dyn Fn(&MatchRecord) -> bool,
        ) -> Result<Option<StoredEntry>, StoreError> {
            if self.failing.get() {
                return Err(StoreError::Task("the database went away".into()));
            }
            let entries = self.entries.borrow();
            Ok(entries
                .get(key)
                .filter(|(stored, record)| stored.source == source && check(record))
                .map(|(stored, _)| stored.clone()))
        }
    }

    fn at(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(ms).single().expect("a time")
    }

    /// An entry of `link` whose text tells `story`.
    fn told(link: &str, story: &str) -> Entry {
        let words: String = (0..40).map(|w| format!("{story}word{w} ")).collect();
        Entry {
            identity: link.to_string(),
            title: story.to_string(),
            link: Some(link.to_string()),
            summary: Some(format!("<p>{words}</p>")),
            ..Entry::default()
        }
    }

    /// Matches and writes `entries` as one new response of `source` at `ms`, as an engine
    /// does.
    fn commit(
        matcher: &mut Matcher,
        memory: &Memory,
        joins: &RwLock<Joins>,
        source: &str,
        entries: &[&Entry],
        ms: i64,
    ) -> Result<Matched, StoreError> {
        let changed = entries
            .iter()
            .enumerate()
            .map(|(position, &entry)| {
                Change::new(
                    position,
                    entry,
                    EntryKey::new(source, &entry.identity),
                    None,
                )
            })
            .collect();
        let matched = matcher.match_commit(source, changed, at(ms), joins, memory)?;
        for (key, written) in &matched.written {
            let record = MatchRecord {
                firsts: Some(firsts_of(&written.stored)),
                ..written.record.clone()
            };
            memory
                .entries
                .borrow_mut()
                .insert(*key, (written.stored.clone(), record));
        }
        matcher.forget_pending(matched.written.iter().map(|(key, _)| key));
        Ok(matched)
    }

    fn stored(memory: &Memory, source: &str, entry: &Entry) -> StoredEntry {
        memory.entries.borrow()[&EntryKey::new(source, &entry.identity)]
            .0
            .clone()
    }

    #[test]
    fn an_entry_that_matches_two_stories_joins_them_into_the_earlier() {
        let (memory, joins) = (Memory::default(), RwLock::new(Joins::default()));
        let mut matcher = Matcher::new(1_000);
        let outlet = told("https://imdaily.example/fire", "fire");
        let wire = told("https://wire.example/991", "wire");
        // The outlet's link, the wire's text.
        let portal = told("https://imdaily.example/fire?utm_source=portal", "wire");
        commit(&mut matcher, &memory, &joins, "outlet", &[&outlet], 1_000).expect("matches");
        commit(&mut matcher, &memory, &joins, "wire", &[&wire], 2_000).expect("matches");
        let matched =
            commit(&mut matcher, &memory, &joins, "portal", &[&portal], 3_000).expect("matches");
        assert_eq!(matched.summary.new, 1);
        assert_eq!(matched.summary.joined, ["outlet", "wire"]);
        assert_eq!(matched.joins.len(), 1);
        let first = stored(&memory, "outlet", &outlet).to_ref();
        for (source, entry) in [("outlet", &outlet), ("wire", &wire), ("portal", &portal)] {
            let stored = stored(&memory, source, entry);
            assert_eq!(
                story_of(&joins, &stored, StoryKind::Text),
                first,
                "{source}"
            );
        }
        assert_eq!(
            story_of(&joins, &stored(&memory, "wire", &wire), StoryKind::Link).source,
            "wire"
        );
        // A story never holds two entries of one source.
        let again = told("https://wire.example/992", "wire");
        commit(&mut matcher, &memory, &joins, "wire", &[&again], 4_000).expect("matches");
        let again = stored(&memory, "wire", &again);
        assert_eq!(story_of(&joins, &again, StoryKind::Text), again.to_ref());
    }

    #[test]
    fn entries_remembered_at_open_or_from_another_process_are_candidates() {
        let (memory, joins) = (Memory::default(), RwLock::new(Joins::default()));
        let outlet = told("https://imdaily.example/fire", "fire");
        let wire = told("https://wire.example/991", "wire");
        // Stored before this process started, and by another process since.
        let mut elsewhere = Matcher::new(1_000);
        commit(&mut elsewhere, &memory, &joins, "outlet", &[&outlet], 1_000).expect("matches");
        commit(&mut elsewhere, &memory, &joins, "wire", &[&wire], 2_000).expect("matches");
        let mut matcher = Matcher::new(1_000);
        for (source, entry) in [("outlet", &outlet), ("wire", &wire)] {
            let (stored, record) =
                memory.entries.borrow()[&EntryKey::new(source, &entry.identity)].clone();
            let joins = joins.read().expect("lock");
            matcher.remember(&joins, &stored.to_ref(), &record);
        }
        let repost = told("https://dept.example/1201", "fire");
        let portal = told("https://wire.example/991?utm_source=portal", "other");
        commit(&mut matcher, &memory, &joins, "repost", &[&repost], 3_000).expect("matches");
        commit(&mut matcher, &memory, &joins, "portal", &[&portal], 4_000).expect("matches");
        let repost = stored(&memory, "repost", &repost);
        assert_eq!(
            repost.same_text_as.map(|r| r.source).as_deref(),
            Some("outlet")
        );
        assert_eq!(repost.same_link_as, None);
        let portal = stored(&memory, "portal", &portal);
        assert_eq!(
            portal.same_link_as.map(|r| r.source).as_deref(),
            Some("wire")
        );
        // Forgotten, it is no candidate.
        matcher.reset(1_000);
        let late = told("https://late.example/1", "fire");
        commit(&mut matcher, &memory, &joins, "late", &[&late], 5_000).expect("matches");
        assert_eq!(stored(&memory, "late", &late).same_text_as, None);
    }

    #[test]
    fn a_commit_whose_lookup_fails_leaves_nothing_pending_and_keeps_its_joins() {
        let (memory, joins) = (Memory::default(), RwLock::new(Joins::default()));
        let mut matcher = Matcher::new(1_000);
        let outlet = told("https://imdaily.example/fire", "fire");
        commit(&mut matcher, &memory, &joins, "outlet", &[&outlet], 1_000).expect("matches");
        let join = Join {
            into: stored(&memory, "outlet", &outlet).to_ref(),
            until_ms: 1_000,
        };
        // A join whose commit's write failed.
        matcher.keep_unwritten(vec![(StoryKind::Text, EntryKey([9; 16]), join)]);
        memory.failing.set(true);
        let own = told("https://own.example/1", "own");
        let changed = [&own, &outlet];
        assert!(commit(&mut matcher, &memory, &joins, "repost", &changed, 2_000).is_err());
        assert_eq!(matcher.pending_len(), 0);
        assert_eq!(matcher.unwritten_len(), 1);
        // The next commit writes it.
        memory.failing.set(false);
        let matched =
            commit(&mut matcher, &memory, &joins, "repost", &changed, 3_000).expect("matches");
        assert_eq!(matched.joins.len(), 1);
        assert_eq!(matcher.unwritten_len(), 0);
        assert_eq!(matched.summary.new, 2);
    }
}
