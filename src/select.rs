//! Choosing what an output feed shows: its sources, its filters, one entry per story, and
//! no more than its share per source.
//!
//! Entries are read newest first from the store's index. With `dedup = "link"` or
//! `"content"` the entries of one story (as the store matched them on arrival) become one
//! [`Story`]: the first-seen entry is kept and names the others. A story never holds two
//! entries of one source. A source may fill at most `max_per_source` places, so that a
//! source that floods (a CMS re-import) cannot bury the others.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::config::{Dedup, FeedConfig};
use crate::store::{EntryKey, Store, StoreError, StoredEntry, Visit};

/// One entry of an output feed, and the entries of other sources that carried the same story.
#[derive(Debug, Clone)]
pub struct Story {
    /// The entry shown: the first seen of the story.
    pub entry: StoredEntry,
    /// The other sources' entries of the story, first seen first.
    pub also: Vec<StoredEntry>,
}

type StoryKey = (String, EntryKey);

fn story_key(stored: &StoredEntry, dedup: Dedup) -> StoryKey {
    let root = match dedup {
        Dedup::None => None,
        Dedup::Link => stored.same_link_as.as_ref(),
        Dedup::Content => stored.same_text_as.as_ref(),
    };
    match root {
        Some(root) => (root.source.clone(), root.key),
        None => (stored.source.clone(), stored.key()),
    }
}

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

/// The stories of `feed`, newest first, at most `feed.limit`. `newest` tells each source's
/// newest sort time where known (see [`Store::visit_newest`]).
pub fn select(
    store: &Store,
    feed: &FeedConfig,
    newest: &dyn Fn(&str) -> Option<DateTime<Utc>>,
) -> Result<Vec<Story>, StoreError> {
    let cap = feed.max_per_source;
    let mut groups: Vec<(StoryKey, Vec<StoredEntry>)> = Vec::new();
    let mut by_key: HashMap<StoryKey, usize> = HashMap::new();
    let mut per_source: HashMap<String, usize> = HashMap::new();
    store.visit_newest(&feed.sources, newest, |stored| {
        if !admits(feed, &stored) {
            return Visit::Next;
        }
        let mut key = story_key(&stored, feed.dedup);
        if let Some(&group) = by_key.get(&key) {
            let members = &mut groups[group].1;
            if members.iter().all(|m| m.source != stored.source) {
                members.push(stored);
                return Visit::Next;
            }
            // A second entry of one source is a story of its own.
            key = (stored.source.clone(), stored.key());
        }
        if groups.len() >= feed.limit {
            return Visit::Stop;
        }
        let placed = per_source.entry(stored.source.clone()).or_insert(0);
        if *placed >= cap {
            return Visit::DropSource;
        }
        *placed += 1;
        by_key.insert(key.clone(), groups.len());
        groups.push((key, vec![stored]));
        Visit::Next
    })?;

    let mut stories = Vec::with_capacity(groups.len());
    for ((root_source, root_key), mut members) in groups {
        // The story's first entry may be older than anything read: fetch it.
        let has_root = members.iter().any(|m| m.source == root_source);
        if !has_root && feed.sources.contains(&root_source) {
            if let Some(root) = store.entry(&root_source, &root_key)? {
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
