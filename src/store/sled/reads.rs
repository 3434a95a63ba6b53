//! Reads: an entry, a source's index, newest first across sources.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, Utc};

use super::{codec::*, SledStore};
use crate::model::{EntryKey, StoredEntry};
use crate::store::{StoreError, Visit};

impl SledStore {
    /// The index of `source`, newest first.
    pub(super) fn index(&self, source: &str) -> Result<Vec<Indexed>, StoreError> {
        Ok(self
            .db()?
            .get(index_key(source))
            .map_err(|e| self.db_error(e))?
            .map(|v| decode_index(&v))
            .unwrap_or_default())
    }

    /// The stored entry `key` of `source`.
    pub(crate) fn entry(
        &self,
        source: &str,
        key: &EntryKey,
    ) -> Result<Option<StoredEntry>, StoreError> {
        Ok(self
            .db()?
            .get(entry_key(source, key))
            .map_err(|e| self.db_error(e))?
            .and_then(|v| decode(split_entry(&v)?.1, "entry")))
    }

    /// Shows the entries of `sources` to `visit`, newest first, until it says stop. A k-way
    /// merge of the sources' indexes (one value each), so it decodes only the entries it
    /// shows, whatever the size of the store. Ties are broken by source name, then key.
    ///
    /// `newest` gives each source's [`SourceState::newest`] where known: a source's index is
    /// read only once the merge reaches its newest time, so a feed of the newest 50 of ten
    /// thousand sources reads a few dozen indexes, not ten thousand.
    pub(crate) fn visit_newest(
        &self,
        sources: &[String],
        newest: impl Fn(&str) -> Option<DateTime<Utc>>,
        mut visit: impl FnMut(StoredEntry) -> Visit,
    ) -> Result<(), StoreError> {
        let mut names: Vec<&str> = sources.iter().map(String::as_str).collect();
        names.sort_unstable();
        names.dedup();
        // Unknown first (read at once), then newest first, as inverted times.
        let mut unopened: Vec<(Option<[u8; 8]>, usize)> = names
            .iter()
            .enumerate()
            .map(|(i, name)| (newest(name).map(inverted_millis), i))
            .collect();
        unopened.sort_unstable();
        let mut unopened = unopened.into_iter().peekable();
        let mut indexes: Vec<(Vec<Indexed>, usize)> =
            names.iter().map(|_| (Vec::new(), 0)).collect();
        // Min-heap on (inverted time, source position, key): the smallest is the newest.
        let mut heap: BinaryHeap<Reverse<([u8; 8], usize, EntryKey)>> = BinaryHeap::new();
        loop {
            // Read every source that may hold something as new as the heap's newest.
            while let Some(&(bound, i)) = unopened.peek() {
                let may_lead = match (bound, heap.peek()) {
                    (Some(bound), Some(Reverse((top, _, _)))) => bound <= *top,
                    _ => true,
                };
                if !may_lead {
                    break;
                }
                unopened.next();
                let index = self.index(names[i])?;
                if let Some(head) = index.first() {
                    heap.push(Reverse((head.sort, i, head.key)));
                }
                indexes[i] = (index, 0);
            }
            let Some(Reverse((_, i, key))) = heap.pop() else {
                break;
            };
            let (index, position) = &mut indexes[i];
            *position += 1;
            let next = index.get(*position).map(|n| Reverse((n.sort, i, n.key)));
            let Some(stored) = self.entry(names[i], &key)? else {
                heap.extend(next);
                continue;
            };
            match visit(stored) {
                Visit::Stop => break,
                Visit::DropSource => continue,
                Visit::Next => heap.extend(next),
            }
        }
        Ok(())
    }
}
