//! The joins of stories as sled keeps them, and the stored entries story matching reads
//! (matching itself is [`crate::store::matcher`]'s).

use super::{codec::*, SledStore};
use crate::model::{EntryKey, EntryRef, StoredEntry, StoryKind};
use crate::store::matcher::{self, Candidates};
use crate::store::matching::MatchRecord;
use crate::store::stories::{Join, Joins};
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
    /// every join (see [`matcher::story_of`]).
    pub(crate) fn story_of(&self, stored: &StoredEntry, kind: StoryKind) -> EntryRef {
        matcher::story_of(&self.joins, stored, kind)
    }
}

impl Candidates for SledStore {
    /// The entry from sled (gone when retention removed it), decoded only if its match
    /// record passes `check`.
    fn candidate(
        &self,
        source: &str,
        key: &EntryKey,
        check: &dyn Fn(&MatchRecord) -> bool,
    ) -> Result<Option<StoredEntry>, StoreError> {
        let value = self
            .db()?
            .get(entry_key(source, key))
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
