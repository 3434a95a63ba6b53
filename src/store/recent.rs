//! Story matching's memory of recent entries: which entry last carried each LSH band value
//! and each canonical link.
//!
//! This index lives in memory, not in the store: kept in sled it was 22 keys per entry, most
//! of a new entry's write cost and of the store's size, and 22 prefix scans per new entry.
//! News outlets carry a story within hours or days of each other, so a new entry is matched
//! against the most recent entries: `[store] match_window` of them
//! ([`super::DEFAULT_MATCH_WINDOW`] unless the config says).
//!
//! Memory is bounded without remembering each entry's band keys: the window is cut into
//! [`GENERATIONS`] equal parts. The part being filled is a hash map; when it is full its
//! keys are merged into one sorted array of all older keys (8 bytes a key), and the oldest
//! part is forgotten. A lookup is then one hash probe and, if a presence filter of the
//! sealed keys lets it through, one short scan of the array, found through a directory of
//! the keys' top 16 bits, whatever the window's size. A band
//! value remembers only the latest entry of each part that carried it: any member of a
//! story leads to the story's first entry, which the member's record names.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use super::matching::MatchRecord;
use crate::model::EntryKey;

/// The window's parts: the one being filled and the sealed ones.
const GENERATIONS: usize = 8;
/// The sorted array's directory is indexed by this many top bits of a key.
const DIRECTORY_BITS: u32 = 16;
/// Bits of the sealed keys' presence filter per sealed key (a power of two), and its
/// largest size: about one lookup in sixteen of a key that is not there touches the array.
const FILTER_BITS_PER_KEY: usize = 16;
const FILTER_MAX_BITS: usize = 1 << 24;

/// An entry the index remembers: enough to read its story record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Remembered {
    source: u32,
    /// The entry's key.
    pub(crate) key: EntryKey,
    /// When it was first seen, in milliseconds.
    pub(crate) first_seen_ms: i64,
}

/// The keys an entry is found by: one per LSH band of its fingerprint and one for its
/// canonical link. Computed before the commits lock is taken.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MatchKeys {
    /// The link's key, if the entry has a canonical link.
    pub(crate) link: Option<u32>,
    /// The bands' keys, in band order; empty without a fingerprint.
    pub(crate) bands: Vec<u32>,
}

impl MatchKeys {
    /// The keys of an entry with `record`.
    pub(crate) fn of(record: &MatchRecord) -> MatchKeys {
        MatchKeys {
            link: record.link.map(|link| band_key(LINK_BAND, link)),
            bands: record
                .fingerprint
                .iter()
                .flat_map(|f| f.bands())
                .map(|(band, hash)| band_key(band, hash))
                .collect(),
        }
    }

    fn all(&self) -> impl Iterator<Item = u32> + '_ {
        self.bands.iter().copied().chain(self.link)
    }
}

/// The band number in the top five bits and 27 bits of the band's hash: a collision only
/// costs one record read whose fingerprint then fails to match.
fn band_key(band: u8, hash: u64) -> u32 {
    (u32::from(band) << 27) | (hash as u32 & ((1 << 27) - 1))
}

/// The filter bit of `key` among `bits` (a power of two, at most 2^32): the top bits of a
/// multiplicative hash, which depend on all of the key's bits (a band key's own top bits
/// are its band number).
fn filter_bit(key: u32, bits: usize) -> usize {
    (key.wrapping_mul(0x9e37_79b9) >> (32 - bits.trailing_zeros())) as usize
}

/// Canonical links share the keys with the bands, as band 31 (there are 21).
const LINK_BAND: u8 = 31;

/// The recent entries' LSH bands; see the module documentation.
pub(crate) struct RecentEntries {
    /// Oldest first; `entries[i]` has the sequence number `first_seq + i` (wrapping).
    entries: VecDeque<Remembered>,
    first_seq: u32,
    /// How many of the newest entries are in `current` rather than `sealed`.
    current_len: usize,
    /// Key to the sequence number of the latest entry of the part being filled with it.
    current: FxHashMap<u32, u32>,
    /// (key, sequence number) of the sealed parts, by key; newer first among equal keys.
    sealed: Vec<(u32, u32)>,
    /// `sealed[directory[p]..directory[p + 1]]` holds the keys whose top bits are `p`.
    directory: Vec<u32>,
    /// A bit per hashed key: unset means the key is not in `sealed`. Most keys looked up
    /// are not (a new story), and the array is megabytes: each probe of it was a cache miss.
    filter: Vec<u64>,
    per_generation: usize,
    window: usize,
    /// Source names, interned: an entry costs four bytes for its source.
    sources: Vec<String>,
    source_ids: FxHashMap<String, u32>,
    /// How many times a part was sealed (and the oldest forgotten).
    seals: u64,
}

impl RecentEntries {
    /// An empty index remembering the most recent `window` entries: at least seven eighths
    /// of them, at most all (about 200 bytes of memory per entry). 0 remembers nothing.
    pub(crate) fn new(window: usize) -> RecentEntries {
        RecentEntries {
            entries: VecDeque::new(),
            first_seq: 0,
            current_len: 0,
            current: FxHashMap::default(),
            sealed: Vec::new(),
            directory: Vec::new(),
            filter: Vec::new(),
            per_generation: (window / GENERATIONS).max(1),
            window,
            sources: Vec::new(),
            source_ids: FxHashMap::default(),
            seals: 0,
        }
    }

    /// The number `source` is known by here (and by the stories' sources).
    pub(crate) fn intern(&mut self, source: &str) -> u32 {
        match self.source_ids.get(source) {
            Some(id) => *id,
            None => {
                let id = self.sources.len() as u32;
                self.sources.push(source.to_string());
                self.source_ids.insert(source.to_string(), id);
                id
            }
        }
    }

    /// Remembers an entry of `source` found by `keys` (call oldest first: a later entry
    /// wins its keys). Returns its sequence number (see [`RecentEntries::remembers`]), or
    /// `None` when it is not remembered: it has no keys, or matching is off.
    pub(crate) fn insert(
        &mut self,
        source: &str,
        key: EntryKey,
        first_seen_ms: i64,
        keys: &MatchKeys,
    ) -> Option<u32> {
        if self.window == 0 || (keys.link.is_none() && keys.bands.is_empty()) {
            return None;
        }
        if self.current_len >= self.per_generation {
            self.seal();
        }
        let source = self.intern(source);
        let seq = self.first_seq.wrapping_add(self.entries.len() as u32);
        self.entries.push_back(Remembered {
            source,
            key,
            first_seen_ms,
        });
        self.current_len += 1;
        for band_key in keys.all() {
            self.current.insert(band_key, seq);
        }
        Some(seq)
    }

    /// The source interned as `id`.
    pub(crate) fn name(&self, id: u32) -> Option<&str> {
        self.sources.get(id as usize).map(String::as_str)
    }

    /// Whether the entry remembered as `seq` still is.
    pub(crate) fn remembers(&self, seq: u32) -> bool {
        (seq.wrapping_sub(self.first_seq) as usize) < self.entries.len()
    }

    /// How many times the oldest part was sealed: what is remembered changes only then.
    pub(crate) fn seals(&self) -> u64 {
        self.seals
    }

    /// Seals the part being filled: forgets the oldest part beyond the window and merges
    /// the current keys into the sorted array, in place, from the back.
    fn seal(&mut self) {
        let keep = (GENERATIONS - 1) * self.per_generation;
        let forget = self.entries.len().saturating_sub(keep);
        self.entries.drain(..forget);
        self.first_seq = self.first_seq.wrapping_add(forget as u32);
        let (first, len) = (self.first_seq, self.entries.len() as u32);
        self.sealed
            .retain(|&(_, seq)| seq.wrapping_sub(first) < len);
        self.seals += 1;

        let mut fresh: Vec<(u32, u32)> = self.current.drain().collect();
        fresh.sort_unstable();
        let mut old = self.sealed.len();
        let mut new = fresh.len();
        self.sealed.resize(old + new, (0, 0));
        let mut at = self.sealed.len();
        while new > 0 {
            at -= 1;
            // On equal keys the older one goes last: newer first among equals.
            if old > 0 && self.sealed[old - 1].0 >= fresh[new - 1].0 {
                self.sealed[at] = self.sealed[old - 1];
                old -= 1;
            } else {
                self.sealed[at] = fresh[new - 1];
                new -= 1;
            }
        }
        self.current_len = 0;

        let buckets = 1usize << DIRECTORY_BITS;
        self.directory.clear();
        self.directory.reserve_exact(buckets + 1);
        let mut position = 0;
        for bucket in 0..=buckets {
            while position < self.sealed.len()
                && ((self.sealed[position].0 >> (32 - DIRECTORY_BITS)) as usize) < bucket
            {
                position += 1;
            }
            self.directory.push(position as u32);
        }

        let bits = (self.sealed.len() * FILTER_BITS_PER_KEY)
            .next_power_of_two()
            .clamp(64, FILTER_MAX_BITS);
        self.filter.clear();
        self.filter.resize(bits / 64, 0);
        for &(key, _) in &self.sealed {
            let bit = filter_bit(key, bits);
            self.filter[bit / 64] |= 1 << (bit % 64);
        }
    }

    /// Whether `key` may be in the sealed array (false: it is not).
    fn maybe_sealed(&self, key: u32) -> bool {
        let bits = self.filter.len() * 64;
        if bits == 0 {
            return false;
        }
        let bit = filter_bit(key, bits);
        self.filter[bit / 64] & (1 << (bit % 64)) != 0
    }

    /// The remembered entries (one per part at most) found by `key`, newest first: a
    /// band key or a link key of [`MatchKeys`].
    pub(crate) fn carriers(&self, key: u32) -> impl Iterator<Item = Remembered> + '_ {
        let bucket = (key >> (32 - DIRECTORY_BITS)) as usize;
        let range = match (self.directory.get(bucket), self.directory.get(bucket + 1)) {
            (Some(&start), Some(&end)) if self.maybe_sealed(key) => start as usize..end as usize,
            _ => 0..0,
        };
        let in_bucket = self.sealed.get(range).unwrap_or_default();
        let from = in_bucket.partition_point(|&(k, _)| k < key);
        let sealed = in_bucket[from..]
            .iter()
            .take_while(move |&&(k, _)| k == key)
            .map(|&(_, seq)| seq);
        self.current
            .get(&key)
            .copied()
            .into_iter()
            .chain(sealed)
            .filter_map(|seq| {
                let position = seq.wrapping_sub(self.first_seq) as usize;
                self.entries.get(position).copied()
            })
    }

    /// The source name of a remembered entry.
    pub(crate) fn source(&self, remembered: &Remembered) -> &str {
        self.sources
            .get(remembered.source as usize)
            .map_or("", String::as_str)
    }

    /// How many entries are remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
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
            firsts: None,
        }
    }

    fn keys(seed: u32) -> MatchKeys {
        MatchKeys::of(&print(seed))
    }

    fn keys_of(recent: &RecentEntries, key: u32) -> Vec<(String, EntryKey)> {
        recent
            .carriers(key)
            .map(|r| (recent.source(&r).to_string(), r.key))
            .collect()
    }

    #[test]
    fn finds_the_latest_carrier_of_a_band_and_forgets_beyond_the_window() {
        // Parts of two entries.
        let mut recent = RecentEntries::new(2 * GENERATIONS);
        let (a, b) = (EntryKey([1; 16]), EntryKey([2; 16]));
        recent.insert("x", a, 1, &keys(1));
        let band = keys(1).bands[0];
        let link = keys(1).link.expect("a link key");
        assert_eq!(keys_of(&recent, link), vec![("x".to_string(), a)]);
        assert_eq!(keys_of(&recent, band), vec![("x".to_string(), a)]);
        // A later entry with the same band value wins it.
        recent.insert("y", b, 2, &keys(1));
        assert_eq!(keys_of(&recent, band), vec![("y".to_string(), b)]);
        // Still found once its part is sealed, newest first among the parts.
        for n in 10..12 {
            recent.insert("z", EntryKey([n as u8; 16]), n, &keys(n as u32));
        }
        recent.insert("w", EntryKey([3; 16]), 12, &keys(1));
        assert_eq!(
            keys_of(&recent, band),
            vec![("w".to_string(), EntryKey([3; 16])), ("y".to_string(), b)]
        );
        // A window's worth of newer entries later, the first ones are forgotten.
        for n in 13..(13 + 2 * GENERATIONS as i64) {
            recent.insert("z", EntryKey([n as u8; 16]), n, &keys(n as u32));
        }
        assert_eq!(recent.carriers(band).count(), 0);
        assert_eq!(recent.carriers(link).count(), 0);
        assert!(recent.len() <= 2 * GENERATIONS);
        assert!(recent.len() >= 2 * (GENERATIONS - 1));

        // A window of 0 remembers nothing: matching is off.
        let mut off = RecentEntries::new(0);
        off.insert("x", a, 1, &keys(1));
        assert_eq!(off.carriers(band).count(), 0);
        assert_eq!(off.len(), 0);
    }

    #[test]
    fn every_remembered_key_is_found_across_many_parts() {
        let window = 8 * 50;
        let mut recent = RecentEntries::new(window);
        let total = 3 * window as u32;
        for n in 0..total {
            recent.insert("s", EntryKey([0; 16]), i64::from(n), &keys(n));
        }
        let remembered = recent.len() as u32;
        assert!(remembered >= (window - window / 8) as u32 && remembered <= window as u32);
        for n in 0..total {
            let wanted = n >= total - remembered;
            for key in keys(n).all() {
                let found: Vec<i64> = recent.carriers(key).map(|r| r.first_seen_ms).collect();
                assert_eq!(
                    found.contains(&i64::from(n)),
                    wanted,
                    "entry {n} key {key:#x}"
                );
            }
        }
    }
}
