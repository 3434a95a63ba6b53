//! Story matching's memory of recent entries: which entry last carried each LSH band value
//! and each canonical link.
//!
//! This index lives in memory, not in the store: kept in sled it was 22 keys per entry, most
//! of a new entry's write cost and of the store's size, and 22 prefix scans per new entry.
//! News outlets carry a story within hours or days of each other, so a new entry is matched
//! against the most recent entries: `[store] match_window` of them
//! ([`super::DEFAULT_MATCH_WINDOW`] unless the config says).
//!
//! Memory is bounded without remembering each entry's band keys: [`GENERATIONS`] generations
//! of an equal part of the window; when the current one is full it is sealed (its hash map
//! becomes a sorted array, 8 bytes a band) and the oldest sealed one is dropped whole. A band
//! value remembers only the latest entry that carried it: any member of a story leads to the
//! story's first entry, which the member's record names.

use std::collections::{HashMap, VecDeque};

use super::{EntryKey, MatchRecord};

/// The window's generations: the current one and the sealed ones.
const GENERATIONS: usize = 8;

/// An entry the index remembers: enough to read its story record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Remembered {
    source: u32,
    /// The entry's key.
    pub key: EntryKey,
    /// When it was first seen, in milliseconds.
    pub first_seen_ms: i64,
}

/// The generation being filled.
#[derive(Default)]
struct Generation {
    /// Band key ([`band_key`]) to the position in `entries` of the latest entry with it.
    bands: HashMap<u32, u32>,
    entries: Vec<Remembered>,
}

/// A full generation: the same, with the map as a sorted array.
struct Sealed {
    bands: Vec<(u32, u32)>,
    entries: Vec<Remembered>,
}

impl Generation {
    fn carrier(&self, key: u32) -> Option<Remembered> {
        let position = *self.bands.get(&key)?;
        self.entries.get(position as usize).copied()
    }

    fn seal(self) -> Sealed {
        let mut bands: Vec<(u32, u32)> = self.bands.into_iter().collect();
        bands.sort_unstable();
        Sealed {
            bands,
            entries: self.entries,
        }
    }
}

impl Sealed {
    fn carrier(&self, key: u32) -> Option<Remembered> {
        let found = self.bands.binary_search_by_key(&key, |(k, _)| *k).ok()?;
        let (_, position) = self.bands.get(found)?;
        self.entries.get(*position as usize).copied()
    }
}

/// The recent entries' LSH bands; see the module documentation.
pub struct RecentEntries {
    current: Generation,
    /// Newest first.
    sealed: VecDeque<Sealed>,
    per_generation: usize,
    window: usize,
    /// Source names, interned: an entry costs four bytes for its source.
    sources: Vec<String>,
    source_ids: HashMap<String, u32>,
}

/// The band number in the top five bits and 27 bits of the band's hash: a collision only
/// costs one record read whose fingerprint then fails to match.
fn band_key(band: u8, hash: u64) -> u32 {
    (u32::from(band) << 27) | (hash as u32 & ((1 << 27) - 1))
}

/// Canonical links share the map with the bands, as band 31 (there are 21).
const LINK_BAND: u8 = 31;

impl RecentEntries {
    /// An empty index remembering the most recent `window` entries: at least seven eighths
    /// of them, at most all (about 200 bytes of memory per entry). 0 remembers nothing.
    pub fn new(window: usize) -> RecentEntries {
        RecentEntries {
            current: Generation::default(),
            sealed: VecDeque::new(),
            per_generation: (window / GENERATIONS).max(1),
            window,
            sources: Vec::new(),
            source_ids: HashMap::new(),
        }
    }

    /// Remembers an entry of `source` (call oldest first: a later entry wins its bands).
    pub fn insert(
        &mut self,
        source: &str,
        key: EntryKey,
        first_seen_ms: i64,
        record: &MatchRecord,
    ) {
        if self.window == 0 || (record.link.is_none() && record.fingerprint.is_none()) {
            return;
        }
        if self.current.entries.len() >= self.per_generation {
            let full = std::mem::take(&mut self.current);
            self.sealed.push_front(full.seal());
            self.sealed.truncate(GENERATIONS - 1);
        }
        let source = match self.source_ids.get(source) {
            Some(id) => *id,
            None => {
                let id = self.sources.len() as u32;
                self.sources.push(source.to_string());
                self.source_ids.insert(source.to_string(), id);
                id
            }
        };
        let position = self.current.entries.len() as u32;
        self.current.entries.push(Remembered {
            source,
            key,
            first_seen_ms,
        });
        let bands = record.fingerprint.iter().flat_map(|f| f.bands());
        for (band, hash) in bands.chain(record.link.map(|link| (LINK_BAND, link))) {
            self.current.bands.insert(band_key(band, hash), position);
        }
    }

    /// The remembered entries (one per generation at most) whose canonical link has the hash
    /// `link`, newest first.
    pub fn link_carriers(&self, link: u64) -> impl Iterator<Item = Remembered> + '_ {
        self.carriers(LINK_BAND, link)
    }

    /// The remembered entries (one per generation at most) that carried `hash` in `band`,
    /// newest first.
    pub fn carriers(&self, band: u8, hash: u64) -> impl Iterator<Item = Remembered> + '_ {
        let key = band_key(band, hash);
        self.current.carrier(key).into_iter().chain(
            self.sealed
                .iter()
                .filter_map(move |sealed| sealed.carrier(key)),
        )
    }

    /// The source name of a remembered entry.
    pub fn source(&self, remembered: &Remembered) -> &str {
        self.sources
            .get(remembered.source as usize)
            .map_or("", String::as_str)
    }

    /// How many entries are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.current.entries.len() + self.sealed.iter().map(|s| s.entries.len()).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dedup::Fingerprint;

    fn print(seed: u32) -> MatchRecord {
        MatchRecord {
            link: Some(u64::from(seed) * 31),
            fingerprint: Some(Fingerprint(std::array::from_fn(|i| {
                seed.wrapping_mul(7919) ^ i as u32
            }))),
        }
    }

    fn first_band(record: &MatchRecord) -> (u8, u64) {
        record
            .fingerprint
            .as_ref()
            .and_then(|f| f.bands().next())
            .expect("a band")
    }

    #[test]
    fn finds_the_latest_carrier_of_a_band_and_forgets_beyond_the_window() {
        // Generations of two entries.
        let mut recent = RecentEntries::new(2 * GENERATIONS);
        let (a, b) = (EntryKey([1; 16]), EntryKey([2; 16]));
        recent.insert("x", a, 1, &print(1));
        let (band, hash) = first_band(&print(1));
        assert_eq!(recent.link_carriers(31).next().map(|r| r.key), Some(a));
        let found: Vec<_> = recent.carriers(band, hash).collect();
        assert_eq!(found.len(), 1);
        assert_eq!((recent.source(&found[0]), found[0].key), ("x", a));
        // A later entry with the same band value wins it.
        recent.insert("y", b, 2, &print(1));
        let found: Vec<_> = recent.carriers(band, hash).collect();
        assert_eq!(found.len(), 1);
        assert_eq!((recent.source(&found[0]), found[0].key), ("y", b));
        // Still found once its generation is sealed.
        for n in 10..12 {
            recent.insert("z", EntryKey([n as u8; 16]), n, &print(n as u32));
        }
        assert_eq!(recent.carriers(band, hash).next().map(|r| r.key), Some(b));
        // A window's worth of newer entries later, the first two are forgotten.
        for n in 12..(10 + 2 * GENERATIONS as i64) {
            recent.insert("z", EntryKey([n as u8; 16]), n, &print(n as u32));
        }
        assert_eq!(recent.carriers(band, hash).count(), 0);
        assert_eq!(recent.link_carriers(31).count(), 0);
        assert_eq!(recent.len(), 2 * GENERATIONS);

        // A window of 0 remembers nothing: matching is off.
        let mut off = RecentEntries::new(0);
        off.insert("x", a, 1, &print(1));
        assert_eq!(off.carriers(band, hash).count(), 0);
        assert_eq!(off.len(), 0);
    }
}
