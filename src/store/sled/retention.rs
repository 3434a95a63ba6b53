//! Retention: entries older than the limit, beyond the per-source cap, and their joins.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{codec::*, SledStore};
use crate::store::stories::Join;
use crate::store::StoreError;

impl SledStore {
    /// Removes what retention says: entries first seen before `cutoff` (if any), and beyond
    /// the newest `keep` of each source (if set), and with the age cutoff the joins of
    /// stories it removed whole. Works in small batches so that commits are never held up
    /// for long. Returns the entries removed per source.
    pub(crate) fn prune(
        &self,
        cutoff: Option<DateTime<Utc>>,
        keep: Option<usize>,
    ) -> Result<HashMap<String, usize>, StoreError> {
        const BATCH: usize = 500;
        let cutoff_ms = cutoff.map(|c| c.timestamp_millis());
        let mut removed = HashMap::new();
        for (source, _) in self.source_states()? {
            loop {
                let _alone = self.writes.write().unwrap_or_else(|p| p.into_inner());
                // The first BATCH entries retention removes, in index order; the rest stay
                // in order, so the index needs no sorting.
                let (mut left, mut removing) = (Vec::new(), Vec::new());
                let mut more = false;
                for (position, item) in self.index(&source)?.into_iter().enumerate() {
                    let doomed = cutoff_ms.is_some_and(|c| item.seen_ms < c)
                        || keep.is_some_and(|k| position >= k);
                    if doomed && removing.len() < BATCH {
                        removing.push(item);
                    } else {
                        more |= doomed;
                        left.push(item);
                    }
                }
                if removing.is_empty() {
                    break;
                }
                let this_time = removing.len();
                let mut batch = sled::Batch::default();
                for item in &removing {
                    batch.remove(entry_key(&source, &item.key));
                }
                batch.insert(index_key(&source), encode_index(&left));
                let state = self.source_state(&source)?.map(|mut state| {
                    state.items = state.items.saturating_sub(this_time as u64);
                    batch.insert(
                        state_key(&source),
                        serde_json::to_vec(&state).unwrap_or_default(),
                    );
                    state
                });
                self.db()?
                    .apply_batch(batch)
                    .map_err(|e| self.write_error(e))?;
                if let Some(state) = state {
                    self.cache_state(&source, &state);
                }
                *removed.entry(source.clone()).or_insert(0) += this_time;
                if !more {
                    break;
                }
            }
        }
        if let Some(cutoff_ms) = cutoff_ms {
            self.prune_joins(cutoff_ms)?;
        }
        Ok(removed)
    }

    /// Forgets the joins of stories whose entries were all first seen before `cutoff_ms`:
    /// retention has removed them, and no later entry names such a story (it names the
    /// story it was joined into).
    pub(super) fn prune_joins(&self, cutoff_ms: i64) -> Result<(), StoreError> {
        let _alone = self.writes.write().unwrap_or_else(|p| p.into_inner());
        let mut batch = sled::Batch::default();
        let mut gone = Vec::new();
        for item in self.db()?.scan_prefix(b"j:") {
            let (k, v) = item.map_err(|e| self.db_error(e))?;
            let joined = split_join_key(&k);
            let stale = decode::<Join>(&v, "story join").is_none_or(|j| j.until_ms < cutoff_ms);
            if stale {
                batch.remove(k);
                gone.extend(joined);
            }
        }
        if !gone.is_empty() {
            self.db()?
                .apply_batch(batch)
                .map_err(|e| self.write_error(e))?;
            let mut joins = self.joins.write().unwrap_or_else(|p| p.into_inner());
            for (kind, joined) in &gone {
                joins.remove(*kind, joined);
            }
        }
        Ok(())
    }
}
