//! Story matching against the recent entries' index, and the joins of stories.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;

use super::{codec::*, commit::*, SledStore};
use crate::dedup::canonical_link;
use crate::model::{sort_time, CommitSummary, Entry, EntryKey, EntryRef, StoredEntry, StoryKind};
use crate::store::matching::*;
use crate::store::recent::RecentEntries;
use crate::store::stories::{share_a_source, story_order, Join, Joins, Members};
use crate::store::StoreError;

impl SledStore {
    /// Reads every join of two stories into memory (a few keys: one per entry that joined
    /// two stories), replacing what was there.
    pub(super) fn load_joins(&self) -> Result<(), StoreError> {
        let mut joins = Joins::default();
        for item in self.db()?.scan_prefix(b"j:") {
            let (k, v) = item.map_err(|e| self.db_error(e))?;
            let Some((kind, joined)) = split_join_key(&k) else {
                continue;
            };
            if let Some(join) = decode::<Join>(&v, "story join") {
                joins.insert(kind, joined, join);
            }
        }
        *self.joins.write().unwrap_or_else(|p| p.into_inner()) = joins;
        Ok(())
    }

    /// The first entry of the story that `stored` is part of, by link or by text, after
    /// every join: entries of one story answer the same, whichever order they came in.
    /// Itself when it is the first (or only) entry of its story.
    pub(crate) fn story_of(&self, stored: &StoredEntry, kind: StoryKind) -> EntryRef {
        let named = match kind {
            StoryKind::Link => stored.same_link_as.as_ref(),
            StoryKind::Text => stored.same_text_as.as_ref(),
        };
        let first = named.cloned().unwrap_or_else(|| stored.to_ref());
        self.joins
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .resolve(kind, &first)
    }

    /// Matches a commit's changed entries under the commits lock, one at a time, and
    /// remembers them for the commits after it; `joined` collects the joins of stories that
    /// new entries made.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn match_entries(
        &self,
        commits: &mut Commits,
        source: &str,
        changed: Vec<(usize, &Entry, EntryKey, Option<StoredEntry>, Prepared)>,
        now: DateTime<Utc>,
        turn: &mut CommitTurn<'_>,
        summary: &mut CommitSummary,
        written: &mut Vec<(EntryKey, Arc<Written>)>,
        joined: &mut Vec<(StoryKind, EntryKey, Join)>,
    ) -> Result<(), StoreError> {
        let Commits {
            recent,
            pending,
            members,
            ..
        } = commits;
        let recent = recent.get_or_insert_with(|| RecentEntries::new(self.match_window));
        for (position, entry, key, old, prepared) in changed {
            let new = old.is_none();
            let stored = match old {
                Some(old) => {
                    summary.updated += 1;
                    StoredEntry {
                        entry: entry.clone(),
                        sort_time: sort_time(entry, old.first_seen, now),
                        ..old
                    }
                }
                None => {
                    // Undated entries of one response keep their document order (newest
                    // first).
                    let first_seen = now - chrono::Duration::milliseconds(position as i64);
                    summary.new += 1;
                    let [same_link_as, same_text_as] = self.join_stories(
                        source,
                        key,
                        &prepared,
                        recent,
                        pending,
                        members,
                        joined,
                        &mut summary.joined,
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
            let seq = recent.insert(
                source,
                key,
                stored.first_seen.timestamp_millis(),
                &prepared.keys,
            );
            {
                let joins = self.joins.read().unwrap_or_else(|p| p.into_inner());
                count_member(
                    members,
                    recent,
                    &joins,
                    &stored.to_ref(),
                    &firsts_of(&stored),
                    seq,
                );
            }
            members.prune(recent.seals(), |seq| recent.remembers(seq));
            let written_entry = Arc::new(Written {
                stored,
                record: prepared.record,
                new,
            });
            pending.insert(key, written_entry.clone());
            turn.written.push(key);
            written.push((key, written_entry));
        }
        Ok(())
    }

    /// The stories the new entry `key` of `source` is part of, by link and by text: of the
    /// stories it matches (see [`SledStore::find_stories`]), those that hold no other entry of
    /// its source, and of those, the earliest and each that shares no source with the ones
    /// before it (a story never holds two entries of one source). When that is more than
    /// one, the later ones are joined into the earliest, here and in `joined` (to be
    /// written), and the sources of the stories joined are added to `touched`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn join_stories(
        &self,
        source: &str,
        key: EntryKey,
        prepared: &Prepared,
        recent: &mut RecentEntries,
        pending: &FxHashMap<EntryKey, Arc<Written>>,
        members: &mut Members,
        joined: &mut Vec<(StoryKind, EntryKey, Join)>,
        touched: &mut Vec<String>,
    ) -> Result<[Option<EntryRef>; 2], StoreError> {
        let found = {
            let joins = self.joins.read().unwrap_or_else(|p| p.into_inner());
            self.find_stories(source, prepared, recent, pending, &joins)?
        };
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
                self.joins
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(kind, other.key, join.clone());
                joined.push((kind, other.key, join));
            }
            firsts[kind.index()] = Some(first);
        }
        Ok(firsts)
    }

    /// The stories a new entry of `source` matches, by link and by text, each named by its
    /// first entry after joins, earliest first (see [`stories::story_order`]): the stories
    /// of the other sources' recent entries with the same canonical link (by link, and by
    /// text) and with nearly the same text (by text). Only recent entries are candidates
    /// (see [`recent`]); each is checked against its match record, and decoded only when it
    /// matches. Every band is looked at, not only until one story is found: the entry may
    /// be the one that tells two stories are one.
    pub(super) fn find_stories(
        &self,
        source: &str,
        prepared: &Prepared,
        recent: &RecentEntries,
        pending: &FxHashMap<EntryKey, Arc<Written>>,
        joins: &Joins,
    ) -> Result<[Vec<EntryRef>; 2], StoreError> {
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
                let Some(found) = self.candidate(pending, recent, &carrier, same_hash)? else {
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
                    if let Some(found) = self.candidate(pending, recent, &carrier, same_story)? {
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

    /// A remembered entry, if its match record passes `check`: from a commit still being
    /// written, else from sled (gone when retention removed it). Decoded only if it passes.
    pub(super) fn candidate(
        &self,
        pending: &FxHashMap<EntryKey, Arc<Written>>,
        recent: &RecentEntries,
        carrier: &crate::store::recent::Remembered,
        check: impl FnOnce(&MatchRecord) -> bool,
    ) -> Result<Option<StoredEntry>, StoreError> {
        if let Some(written) = pending.get(&carrier.key) {
            return Ok(check(&written.record).then(|| written.stored.clone()));
        }
        let value = self
            .db()?
            .get(entry_key(recent.source(carrier), &carrier.key))
            .map_err(|e| self.db_error(e))?;
        let Some((record, json)) = value.as_deref().and_then(split_entry) else {
            return Ok(None);
        };
        Ok(if check(&record) {
            decode(json, "entry")
        } else {
            None
        })
    }
}
