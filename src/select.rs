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
use crate::model::{EntryKey, StoredEntry, StoryKind};
use crate::store::{Store, StoreError, Visit};

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
pub(crate) const DOCUMENT_BUDGET: usize = 4 * 1024 * 1024;

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
pub(crate) type StoryKey = (String, EntryKey);

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
pub(crate) struct Selection<'f> {
    feed: &'f FeedConfig,
    /// Each story's key and the entries read of it, in the order the stories were placed.
    groups: Vec<(StoryKey, Vec<StoredEntry>)>,
    by_key: HashMap<StoryKey, usize>,
    per_source: HashMap<String, usize>,
    bytes: usize,
}

impl<'f> Selection<'f> {
    /// An empty selection for `feed`.
    pub(crate) fn new(feed: &'f FeedConfig) -> Selection<'f> {
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
    pub(crate) fn offer(
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
    pub(crate) fn finish<E>(
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
pub(crate) fn select(
    store: &dyn Store,
    feed: &FeedConfig,
    newest: &dyn Fn(&str) -> Option<DateTime<Utc>>,
) -> Result<Vec<Story>, StoreError> {
    let mut selection = Selection::new(feed);
    store.visit_newest(&feed.sources, newest, &mut |stored| {
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
    use crate::model::Entry;
    use crate::model::SourceState;
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

    fn store_with(
        source: &str,
        entries: usize,
        content: usize,
    ) -> (tempfile::TempDir, crate::store::SharedStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store: crate::store::SharedStore =
            crate::store::open_at(&dir.path().join("db")).expect("opens");
        add(&store, source, entries, content);
        (dir, store)
    }

    fn add(store: &crate::store::SharedStore, source: &str, entries: usize, content: usize) {
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
            select(&*store, &feed(250), &|_| None)
                .expect("selects")
                .len(),
            250
        );
        // 300 entries of 64 KiB are 19 MiB: the document holds what fits in the budget.
        let (_dir, store) = store_with("a", 300, 64 * 1024);
        let stories = select(&*store, &feed(1000), &|_| None).expect("selects");
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
            select(&*store, &feed(50), &|_| None)
                .expect("selects")
                .len(),
            1
        );
    }

    // The rules of choosing, as tables run through `Selection` alone. Each row is a store's
    // entries, a feed's settings and the document's stories, one line each:
    // `"b:1 (+c:1, a:1)"` is b's entry titled 1 shown, with c's and a's under it.

    /// An entry of a row: `"source:title"` (its identity is its title), published `age`
    /// minutes before `NOW`, first seen at `seen`, `"m"` or `"m:ss"` after a whole minute.
    /// Its stories' first entries, by link and by text, are itself unless a row says.
    #[derive(Clone)]
    struct E {
        name: &'static str,
        age: i64,
        seen: &'static str,
        link_root: Option<&'static str>,
        text_root: Option<&'static str>,
        text: Option<String>,
    }

    fn e(name: &'static str, age: i64, seen: &'static str) -> E {
        E {
            name,
            age,
            seen,
            link_root: None,
            text_root: None,
            text: None,
        }
    }

    impl E {
        /// Same link as `first`'s: one story by link, and so by text too.
        fn root(self, first: &'static str) -> E {
            E {
                link_root: Some(first),
                text_root: Some(first),
                ..self
            }
        }

        /// Nearly the same text as `first`'s, but another link: one story by text only.
        fn text_root(self, first: &'static str) -> E {
            E {
                text_root: Some(first),
                ..self
            }
        }

        /// Its HTML content.
        fn text(self, html: &str) -> E {
            E {
                text: Some(html.to_string()),
                ..self
            }
        }

        /// `len` bytes of content, for the budget.
        fn bytes(self, len: usize) -> E {
            E {
                text: Some("x".repeat(len)),
                ..self
            }
        }

        fn stored(&self) -> StoredEntry {
            let (source, title) = self.name.split_once(':').expect("source:title");
            let (minute, second) = self.seen.split_once(':').unwrap_or((self.seen, "0"));
            let seen = minute.parse::<i64>().expect("minute") * 60
                + second.parse::<i64>().expect("second");
            let published = now() - chrono::TimeDelta::minutes(self.age);
            StoredEntry {
                source: source.to_string(),
                entry: Entry {
                    identity: title.to_string(),
                    title: title.to_string(),
                    published: Some(published),
                    content: self.text.clone(),
                    ..Entry::default()
                },
                first_seen: now() + chrono::TimeDelta::seconds(seen),
                sort_time: published,
                same_link_as: None,
                same_text_as: None,
            }
        }
    }

    /// A whole minute, so that first-seen minutes are whole minutes.
    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000, 0).single().expect("time")
    }

    fn key_of(name: &str) -> StoryKey {
        let (source, identity) = name.split_once(':').expect("source:title");
        (source.to_string(), EntryKey::new(source, identity))
    }

    /// A feed's settings, as `[[feed]]` has them.
    #[derive(Clone, Copy)]
    struct Settings {
        sources: &'static [&'static str],
        dedup: Dedup,
        include: &'static [&'static str],
        exclude: &'static [&'static str],
        limit: usize,
        max_per_source: usize,
    }

    /// The config's defaults, every source of the rows in the feed.
    const DEFAULTS: Settings = Settings {
        sources: &["a", "b", "c", "d"],
        dedup: Dedup::Content,
        include: &[],
        exclude: &[],
        limit: 50,
        max_per_source: 50,
    };

    impl Settings {
        fn config(&self) -> FeedConfig {
            let regexes = |patterns: &[&str]| {
                patterns
                    .iter()
                    .map(|p| regex::Regex::new(p).expect("regex"))
                    .collect()
            };
            FeedConfig {
                name: "all".to_string(),
                title: "All".to_string(),
                sources: self.sources.iter().map(|s| s.to_string()).collect(),
                include: regexes(self.include),
                exclude: regexes(self.exclude),
                limit: self.limit,
                max_per_source: self.max_per_source,
                dedup: self.dedup,
            }
        }
    }

    struct Row {
        name: &'static str,
        entries: Vec<E>,
        feed: Settings,
        want: &'static [&'static str],
    }

    fn line(story: &Story) -> String {
        let name = |s: &StoredEntry| format!("{}:{}", s.source, s.entry.title);
        let mut line = name(&story.entry);
        if !story.also.is_empty() {
            let also: Vec<String> = story.also.iter().map(name).collect();
            line.push_str(&format!(" (+{})", also.join(", ")));
        }
        line
    }

    /// The stories of `row`, its entries offered as [`Store::visit_newest`] shows a feed's
    /// sources: newest first, ties by source then key, a source left out once dropped, none
    /// after a stop. A missing root is looked for among all the row's entries.
    fn run(row: &Row) -> Vec<String> {
        let feed = row.feed.config();
        let spec = |stored: &StoredEntry| {
            let name = format!("{}:{}", stored.source, stored.entry.identity);
            row.entries
                .iter()
                .find(|e| e.name == name)
                .expect("an entry of the row")
        };
        let mut read: Vec<StoredEntry> = row
            .entries
            .iter()
            .map(E::stored)
            .filter(|s| feed.sources.contains(&s.source))
            .collect();
        read.sort_by(|x, y| {
            (y.sort_time, &x.source, x.key()).cmp(&(x.sort_time, &y.source, y.key()))
        });
        let mut selection = Selection::new(&feed);
        let mut dropped = std::collections::HashSet::new();
        for stored in read {
            if dropped.contains(&stored.source) {
                continue;
            }
            let source = stored.source.clone();
            let visit = selection.offer(stored, |stored, kind| {
                let root = match kind {
                    StoryKind::Link => spec(stored).link_root,
                    StoryKind::Text => spec(stored).text_root,
                };
                root.map_or_else(|| (stored.source.clone(), stored.key()), key_of)
            });
            match visit {
                Visit::Next => {}
                Visit::DropSource => {
                    dropped.insert(source);
                }
                Visit::Stop => break,
            }
        }
        let stories = selection
            .finish(|source, key| {
                let mut stored = row.entries.iter().map(E::stored);
                Ok::<_, std::convert::Infallible>(
                    stored.find(|s| s.source == source && s.key() == *key),
                )
            })
            .expect("infallible");
        stories.iter().map(line).collect()
    }

    /// Runs every row and fails naming each row whose stories are not the ones it wants.
    fn check(rows: &[Row]) {
        let failed: Vec<String> = rows
            .iter()
            .filter_map(|row| {
                let got = run(row);
                (got != row.want).then(|| {
                    format!(
                        "row {:?}:\n  want {:?}\n  got  {:?}",
                        row.name, row.want, got
                    )
                })
            })
            .collect();
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }

    #[test]
    fn stories_are_newest_first_ties_by_source_then_key() {
        // The premises of the tie rows: keys are hashes, and these two go against the names.
        assert!(key_of("a:1").1 < key_of("a:2").1);
        assert!(key_of("a:2").1 > key_of("b:2").1);
        check(&[
            Row {
                name: "newest first",
                entries: vec![e("a:1", 5, "0"), e("b:1", 1, "0"), e("c:1", 3, "0")],
                feed: DEFAULTS,
                want: &["b:1", "c:1", "a:1"],
            },
            Row {
                // The stories are placed in the order c:1, d:1, a:1 were read; what they show
                // is older and tied.
                name: "a tie by source, then by key, also for stories shown by an older root",
                entries: vec![
                    e("c:1", 1, "1").root("b:2"),
                    e("d:1", 1, "1").root("a:2"),
                    e("a:1", 2, "0"),
                    e("a:2", 2, "0"),
                    e("b:2", 2, "0"),
                ],
                feed: Settings {
                    dedup: Dedup::Link,
                    ..DEFAULTS
                },
                want: &["a:1", "a:2 (+d:1)", "b:2 (+c:1)"],
            },
        ]);
    }

    #[test]
    fn a_story_is_one_entry_its_first_seen_with_the_others_under_it() {
        let three = || {
            vec![
                e("a:1", 1, "7").root("b:1"),
                e("b:1", 2, "2"),
                e("c:1", 3, "5").root("b:1"),
            ]
        };
        check(&[
            Row {
                name: "link: first seen shown (not first published), the others first seen first",
                entries: three(),
                feed: Settings {
                    dedup: Dedup::Link,
                    ..DEFAULTS
                },
                want: &["b:1 (+c:1, a:1)"],
            },
            Row {
                name: "content: the same link is the same story",
                entries: three(),
                feed: DEFAULTS,
                want: &["b:1 (+c:1, a:1)"],
            },
            Row {
                name: "none: every entry on its own",
                entries: three(),
                feed: Settings {
                    dedup: Dedup::None,
                    ..DEFAULTS
                },
                want: &["a:1", "b:1", "c:1"],
            },
            Row {
                name: "content: nearly the same text is the same story",
                entries: vec![e("a:1", 1, "3").text_root("b:1"), e("b:1", 2, "1")],
                feed: DEFAULTS,
                want: &["b:1 (+a:1)"],
            },
            Row {
                name: "link: nearly the same text alone is not",
                entries: vec![e("a:1", 1, "3").text_root("b:1"), e("b:1", 2, "1")],
                feed: Settings {
                    dedup: Dedup::Link,
                    ..DEFAULTS
                },
                want: &["a:1", "b:1"],
            },
            Row {
                // a:1 arrived first, seconds before b:1, and is the story's first entry.
                name: "first seen in the same minute: the earlier published is shown",
                entries: vec![e("a:1", 1, "3:10"), e("b:1", 8, "3:50").root("a:1")],
                feed: DEFAULTS,
                want: &["b:1 (+a:1)"],
            },
            Row {
                name: "two entries of one source in one story are two stories",
                entries: vec![
                    e("a:1", 1, "1").root("b:1"),
                    e("a:2", 2, "2").root("b:1"),
                    e("b:1", 3, "0"),
                ],
                feed: DEFAULTS,
                want: &["a:2", "b:1 (+a:1)"],
            },
        ]);
    }

    #[test]
    fn a_document_holds_limit_stories_and_max_per_source_of_one_source() {
        check(&[
            Row {
                name: "limit: the newest",
                entries: vec![e("a:1", 1, "0"), e("b:1", 2, "0"), e("c:1", 3, "0")],
                feed: Settings {
                    limit: 2,
                    ..DEFAULTS
                },
                want: &["a:1", "b:1"],
            },
            Row {
                name: "limit counts stories, not their entries",
                entries: vec![
                    e("a:1", 1, "1").root("b:1"),
                    e("b:1", 2, "0"),
                    e("c:1", 3, "0"),
                    e("d:1", 4, "0"),
                ],
                feed: Settings {
                    limit: 2,
                    ..DEFAULTS
                },
                want: &["b:1 (+a:1)", "c:1"],
            },
            Row {
                name: "a source that floods fills max_per_source and does not bury the others",
                entries: vec![
                    e("a:1", 1, "0"),
                    e("a:2", 2, "0"),
                    e("a:3", 3, "0"),
                    e("a:4", 4, "0"),
                    e("a:5", 5, "0"),
                    e("b:1", 6, "0"),
                    e("c:1", 7, "0"),
                    e("d:1", 8, "0"),
                ],
                feed: Settings {
                    limit: 4,
                    max_per_source: 2,
                    ..DEFAULTS
                },
                want: &["a:1", "a:2", "b:1", "c:1"],
            },
            Row {
                name: "max_per_source counts the places a source fills, not the stories it is in",
                entries: vec![
                    e("b:1", 1, "0"),
                    e("a:1", 2, "2"),
                    e("a:2", 3, "1").root("b:1"),
                ],
                feed: Settings {
                    max_per_source: 1,
                    ..DEFAULTS
                },
                want: &["b:1 (+a:2)", "a:1"],
            },
        ]);
    }

    #[test]
    fn include_and_exclude_match_title_or_text_case_as_written() {
        let rust = || {
            vec![
                e("a:Rust news", 1, "0"),
                e("b:rust tips", 2, "0"),
                e("c:Go news", 3, "0").text("<p>Written in Rust</p>"),
                e("d:Go tips", 4, "0"),
            ]
        };
        check(&[
            Row {
                name: "include is case-sensitive, on title or text",
                entries: rust(),
                feed: Settings {
                    include: &["Rust"],
                    ..DEFAULTS
                },
                want: &["a:Rust news", "c:Go news"],
            },
            Row {
                name: "include with (?i) is not",
                entries: rust(),
                feed: Settings {
                    include: &["(?i)rust"],
                    ..DEFAULTS
                },
                want: &["a:Rust news", "b:rust tips", "c:Go news"],
            },
            Row {
                name: "exclude, on title or text, case-sensitive unless (?i)",
                entries: vec![
                    e("a:Sponsored deals", 1, "0"),
                    e("b:sponsored deals", 2, "0"),
                    e("c:News", 3, "0").text("<p>ADVERTISEMENT</p>"),
                    e("d:News", 4, "0"),
                ],
                feed: Settings {
                    exclude: &["Sponsored", "(?i)advert"],
                    ..DEFAULTS
                },
                want: &["b:sponsored deals", "d:News"],
            },
            Row {
                name: "exclude wins over include",
                entries: vec![
                    e("a:Rust deals", 1, "0").text("<p>sponsored</p>"),
                    e("b:Rust news", 2, "0"),
                    e("c:Go news", 3, "0"),
                ],
                feed: Settings {
                    include: &["(?i)rust"],
                    exclude: &["(?i)sponsored"],
                    ..DEFAULTS
                },
                want: &["b:Rust news"],
            },
            Row {
                name: "an excluded first entry is not shown, the story's other entries are",
                entries: vec![
                    e("a:Launch", 1, "5").root("b:Sponsored launch"),
                    e("b:Sponsored launch", 2, "1"),
                    e("c:Launch", 3, "3").root("b:Sponsored launch"),
                ],
                feed: Settings {
                    exclude: &["(?i)sponsored"],
                    ..DEFAULTS
                },
                want: &["c:Launch (+a:Launch)"],
            },
        ]);
    }

    #[test]
    fn a_first_entry_older_than_anything_read_is_fetched() {
        // The limit stops the reading at c:1, before b:1 is reached.
        let behind = || {
            vec![
                e("a:1", 1, "5").root("b:1"),
                e("c:1", 2, "0"),
                e("b:1", 9, "1"),
            ]
        };
        check(&[
            Row {
                name: "fetched and shown",
                entries: behind(),
                feed: Settings {
                    limit: 1,
                    ..DEFAULTS
                },
                want: &["b:1 (+a:1)"],
            },
            Row {
                name: "not from a source outside the feed",
                entries: behind(),
                feed: Settings {
                    sources: &["a", "c"],
                    limit: 1,
                    ..DEFAULTS
                },
                want: &["a:1"],
            },
            Row {
                name: "not when the filters do not admit it",
                entries: vec![
                    e("a:1", 1, "5").root("b:Sponsored"),
                    e("c:1", 2, "0"),
                    e("b:Sponsored", 9, "1"),
                ],
                feed: Settings {
                    exclude: &["Sponsored"],
                    limit: 1,
                    ..DEFAULTS
                },
                want: &["a:1"],
            },
            Row {
                name: "gone from the store: the first seen of the others is shown",
                entries: vec![e("a:1", 1, "4").root("d:9"), e("b:1", 2, "3").root("d:9")],
                feed: DEFAULTS,
                want: &["b:1 (+a:1)"],
            },
        ]);
    }

    #[test]
    fn the_budget_stops_a_document_but_after_its_first_story() {
        check(&[
            Row {
                name: "the first story is shown whatever its size",
                entries: vec![
                    e("a:1", 1, "0").bytes(DOCUMENT_BUDGET + 1),
                    e("b:1", 2, "0"),
                ],
                feed: DEFAULTS,
                want: &["a:1"],
            },
            Row {
                name: "stories stop at the first that does not fit",
                entries: vec![
                    e("a:1", 1, "0").bytes(DOCUMENT_BUDGET / 3),
                    e("b:1", 2, "0").bytes(DOCUMENT_BUDGET / 3),
                    e("c:1", 3, "0").bytes(DOCUMENT_BUDGET / 3),
                    e("d:1", 4, "0"),
                ],
                feed: DEFAULTS,
                want: &["a:1", "b:1"],
            },
            Row {
                name: "the entries under a story count too",
                entries: vec![
                    e("a:1", 1, "0").bytes(DOCUMENT_BUDGET / 2),
                    e("b:1", 2, "1").root("a:1").bytes(DOCUMENT_BUDGET / 2),
                    e("c:1", 3, "0"),
                ],
                feed: DEFAULTS,
                want: &["a:1 (+b:1)"],
            },
        ]);
    }
}
