//! Choosing what an output feed shows: its sources, its filters, one entry per story, and
//! no more than its share per source.
//!
//! Entries are read newest first from the store's index. With `dedup = "link"` or
//! `"content"` the entries of one story (as the store matched and joined them on arrival,
//! [`Store::story_of`]) become one [`Story`]: the first-seen entry is kept and names the
//! others. A story never holds two entries of one source: the store never puts two in one
//! story, and should one still meet another here (a story older than the match window), the
//! second is shown as a story of its own. A source may fill at most `max_per_source` places,
//! so that a source that floods (a CMS re-import) cannot bury the others. A document holds at most
//! [`DOCUMENT_BUDGET`] of entry text, whatever `limit` says, so that what a render holds is
//! bounded in bytes and not only in entries.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::config::{Dedup, FeedConfig};
use crate::store::{EntryKey, Store, StoreError, StoredEntry, StoryKind, Visit};

/// One entry of an output feed, and the entries of other sources that carried the same story.
#[derive(Debug, Clone)]
pub struct Story {
    /// The entry shown: the first seen of the story.
    pub entry: StoredEntry,
    /// The other sources' entries of the story, first seen first.
    pub also: Vec<StoredEntry>,
}

/// The most entry text one document is made of: titles, links, summaries, contents,
/// authors and categories, counted as stored. Each document is held rendered three times
/// (Atom, RSS, JSON Feed), each also gzipped, beside its HTML page, and a render builds
/// them all at once: 4 MiB of text is about 15 MiB held per output feed. A thousand
/// entries of 4 KiB fit; a feed of full-text articles stops short of its `limit`.
pub const DOCUMENT_BUDGET: usize = 4 * 1024 * 1024;

/// What `stored` adds to a document, in bytes of text (plus a little for its markup).
fn weight(stored: &StoredEntry) -> usize {
    let entry = &stored.entry;
    let optional = |text: &Option<String>| text.as_ref().map_or(0, String::len);
    let list = |items: &[String]| items.iter().map(String::len).sum::<usize>();
    256 + stored.source.len()
        + entry.identity.len()
        + entry.title.len()
        + optional(&entry.link)
        + optional(&entry.summary)
        + optional(&entry.content)
        + list(&entry.authors)
        + list(&entry.categories)
}

/// The story an entry is shown in, as its first entry's source and key (after joins).
pub type StoryKey = (String, EntryKey);

/// The order in which a story's entries count as seen: by first-seen minute, then the
/// earlier published. Sources fetched in one round (a start, a burst) are seen at the same
/// moment for all that matters, and then the outlet that published first is the one kept,
/// not whichever response happened to arrive first.
fn seen_order(stored: &StoredEntry) -> (i64, chrono::DateTime<chrono::Utc>, &str, EntryKey) {
    (
        stored.first_seen.timestamp() / 60,
        stored.sort_time,
        &stored.source,
        stored.key(),
    )
}

fn admits(feed: &FeedConfig, stored: &StoredEntry) -> bool {
    feed.admits(&stored.entry.title, stored.entry.html().unwrap_or_default())
}

/// The choosing of one output feed's stories, apart from where the entries come from:
/// [`Selection::offer`] it the feed's entries newest first (ties by source, then key, as
/// [`Store::visit_newest`] shows them) for as long as it answers [`Visit::Next`], then
/// [`Selection::finish`] it. [`select`] drives it from the store; tests drive it from a table.
pub struct Selection<'f> {
    feed: &'f FeedConfig,
    /// Each story's key and the entries read of it, in the order the stories were placed.
    groups: Vec<(StoryKey, Vec<StoredEntry>)>,
    by_key: HashMap<StoryKey, usize>,
    per_source: HashMap<String, usize>,
    bytes: usize,
}

impl<'f> Selection<'f> {
    /// An empty selection for `feed`.
    pub fn new(feed: &'f FeedConfig) -> Selection<'f> {
        Selection {
            feed,
            groups: Vec::new(),
            by_key: HashMap::new(),
            per_source: HashMap::new(),
            bytes: 0,
        }
    }

    /// Takes the next entry, older than (or as old as) every entry offered before, and says
    /// what to offer next. `story_of` tells the first entry of the story `stored` is part of
    /// by link or by text ([`Store::story_of`]); it is asked only for an entry the filters
    /// admit, and never with `dedup = "none"`.
    pub fn offer(
        &mut self,
        stored: StoredEntry,
        story_of: impl FnOnce(&StoredEntry, StoryKind) -> StoryKey,
    ) -> Visit {
        let feed = self.feed;
        if !admits(feed, &stored) {
            return Visit::Next;
        }
        let mut key = match feed.dedup {
            Dedup::None => (stored.source.clone(), stored.key()),
            Dedup::Link => story_of(&stored, StoryKind::Link),
            Dedup::Content => story_of(&stored, StoryKind::Text),
        };
        if let Some(&group) = self.by_key.get(&key) {
            let members = &mut self.groups[group].1;
            if members.iter().all(|m| m.source != stored.source) {
                self.bytes = self.bytes.saturating_add(weight(&stored));
                members.push(stored);
                return Visit::Next;
            }
            // A second entry of one source is a story of its own.
            key = (stored.source.clone(), stored.key());
        }
        if self.groups.len() >= feed.limit {
            return Visit::Stop;
        }
        let placed = self.per_source.entry(stored.source.clone()).or_insert(0);
        if *placed >= feed.max_per_source {
            return Visit::DropSource;
        }
        let added = weight(&stored);
        if !self.groups.is_empty() && self.bytes.saturating_add(added) > DOCUMENT_BUDGET {
            return Visit::Stop;
        }
        *placed += 1;
        self.bytes = self.bytes.saturating_add(added);
        self.by_key.insert(key.clone(), self.groups.len());
        self.groups.push((key, vec![stored]));
        Visit::Next
    }

    /// The stories chosen, newest first. `root` fetches a story's first entry by source and
    /// key ([`Store::entry`]) when it was not among the entries offered; it is asked only
    /// for a source of the feed, and what it finds still has to pass the filters.
    pub fn finish<E>(
        self,
        mut root: impl FnMut(&str, &EntryKey) -> Result<Option<StoredEntry>, E>,
    ) -> Result<Vec<Story>, E> {
        let feed = self.feed;
        let mut stories = Vec::with_capacity(self.groups.len());
        for ((root_source, root_key), mut members) in self.groups {
            // The story's first entry may be older than anything read: fetch it.
            let has_root = members.iter().any(|m| m.source == root_source);
            if !has_root && feed.sources.contains(&root_source) {
                if let Some(root) = root(&root_source, &root_key)? {
                    if admits(feed, &root) {
                        members.push(root);
                    }
                }
            }
            members.sort_by(|a, b| seen_order(a).cmp(&seen_order(b)));
            let mut members = members.into_iter();
            if let Some(entry) = members.next() {
                stories.push(Story {
                    entry,
                    also: members.collect(),
                });
            }
        }
        stories.sort_by(|a, b| {
            (b.entry.sort_time, &a.entry.source, a.entry.key()).cmp(&(
                a.entry.sort_time,
                &b.entry.source,
                b.entry.key(),
            ))
        });
        Ok(stories)
    }
}

/// The stories of `feed`, newest first, at most `feed.limit` and (but for the first) at most
/// [`DOCUMENT_BUDGET`] of text. `newest` tells each source's
/// newest sort time where known (see [`Store::visit_newest`]).
pub fn select(
    store: &Store,
    feed: &FeedConfig,
    newest: &dyn Fn(&str) -> Option<DateTime<Utc>>,
) -> Result<Vec<Story>, StoreError> {
    let mut selection = Selection::new(feed);
    store.visit_newest(&feed.sources, newest, |stored| {
        selection.offer(stored, |stored, kind| {
            let first = store.story_of(stored, kind);
            (first.source, first.key)
        })
    })?;
    selection.finish(|source, key| store.entry(source, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::Entry;
    use crate::store::SourceState;
    use chrono::TimeZone;

    fn feed(limit: usize) -> FeedConfig {
        FeedConfig {
            name: "all".to_string(),
            title: "All".to_string(),
            sources: vec!["a".to_string(), "b".to_string()],
            include: vec![],
            exclude: vec![],
            limit,
            max_per_source: limit,
            dedup: Dedup::None,
        }
    }

    fn store_with(source: &str, entries: usize, content: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(&dir.path().join("db")).expect("opens");
        add(&store, source, entries, content);
        (dir, store)
    }

    fn add(store: &Store, source: &str, entries: usize, content: usize) {
        let now = Utc.timestamp_opt(1_800_000_000, 0).single().expect("time");
        let entries: Vec<Entry> = (0..entries)
            .map(|i| Entry {
                identity: format!("{source}-{i}"),
                title: format!("{source} {i}"),
                link: None,
                published: Some(now - chrono::TimeDelta::minutes(i as i64)),
                updated: None,
                authors: vec![],
                summary: None,
                content: Some(format!("<p>{}</p>", "x".repeat(content))),
                categories: vec![],
                ..Entry::default()
            })
            .collect();
        store
            .commit_fetch(source, &mut SourceState::default(), &entries, now)
            .expect("commits");
    }

    #[test]
    fn a_document_stops_at_its_limit_or_its_budget_whichever_comes_first() {
        let (_dir, store) = store_with("a", 300, 100);
        assert_eq!(
            select(&store, &feed(250), &|_| None)
                .expect("selects")
                .len(),
            250
        );
        // 300 entries of 64 KiB are 19 MiB: the document holds what fits in the budget.
        let (_dir, store) = store_with("a", 300, 64 * 1024);
        let stories = select(&store, &feed(1000), &|_| None).expect("selects");
        let held: usize = stories.iter().map(|s| weight(&s.entry)).sum();
        assert!(stories.len() < 300, "{} stories", stories.len());
        assert!(held <= DOCUMENT_BUDGET, "{held} bytes");
        assert!(
            held + weight(&stories[0].entry) > DOCUMENT_BUDGET,
            "stopped early at {held}"
        );
        assert_eq!(stories[0].entry.entry.title, "a 0", "newest first");
        // One entry larger than the budget is still shown.
        let (_dir, store) = store_with("a", 2, DOCUMENT_BUDGET + 1);
        assert_eq!(
            select(&store, &feed(50), &|_| None).expect("selects").len(),
            1
        );
    }
}
