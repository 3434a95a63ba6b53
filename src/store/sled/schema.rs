//! The schema version and the migrations between versions.

use std::collections::HashMap;

use super::{codec::*, SledStore, SCHEMA_VERSION};
use crate::model::StoredEntry;
use crate::store::matching::*;
use crate::store::StoreError;

impl SledStore {
    pub(super) fn check_schema(&self) -> Result<(), StoreError> {
        let found = self
            .db()?
            .get(b"m:schema")
            .map_err(|e| self.db_error(e))?
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u32>().ok());
        match found {
            Some(found) if found > SCHEMA_VERSION => Err(StoreError::NewerSchema {
                path: self.path.clone(),
                found,
                understood: SCHEMA_VERSION,
            }),
            Some(found) if found < SCHEMA_VERSION => self.migrate(found),
            Some(_) => Ok(()),
            None => {
                self.db()?
                    .insert(b"m:schema", SCHEMA_VERSION.to_string().as_bytes())
                    .map_err(|e| self.write_error(e))?;
                Ok(())
            }
        }
    }

    /// Schemas 1 and 2 to 3: every entry value gets its match record, each source's index
    /// becomes one `n:` value, and the per-entry index keys (`i:`, `f:`, `c:`, `b:`, `h:`)
    /// go. Entries and source states are kept. The schema version is written last and every
    /// step reads both value formats, so an interrupted migration simply runs again.
    pub(super) fn migrate(&self, from: u32) -> Result<(), StoreError> {
        tracing::info!(store = %self.path.display(), from, to = SCHEMA_VERSION, "updating the store's layout");
        if from >= 3 {
            return self
                .db()?
                .insert(b"m:schema", SCHEMA_VERSION.to_string().as_bytes())
                .map(|_| ())
                .map_err(|e| self.db_error(e));
        }
        let mut batch = sled::Batch::default();
        let mut pending = 0;
        let apply = |batch: &mut sled::Batch, pending: &mut usize, force: bool| {
            if *pending >= 1000 || (force && *pending > 0) {
                *pending = 0;
                self.db()?
                    .apply_batch(std::mem::take(batch))
                    .map_err(|e| self.db_error(e))
            } else {
                Ok(())
            }
        };
        let mut indexes: HashMap<String, Vec<Indexed>> = HashMap::new();
        for item in self.db()?.scan_prefix(b"e:") {
            let (k, v) = item.map_err(|e| self.db_error(e))?;
            let Some((source, _)) = split_entry_key(&k) else {
                continue;
            };
            let Some(stored) = split_entry(&v).and_then(|(_, json)| decode(json, "entry")) else {
                continue;
            };
            let stored: StoredEntry = stored;
            indexes
                .entry(source)
                .or_default()
                .push(Indexed::of(&stored));
            batch.insert(
                k,
                encode_entry(&stored, &Prepared::of(&stored.entry).record),
            );
            pending += 1;
            apply(&mut batch, &mut pending, false)?;
        }
        for prefix in [b"i:", b"f:", b"c:", b"b:", b"h:"] {
            for item in self.db()?.scan_prefix(prefix) {
                let (k, _) = item.map_err(|e| self.db_error(e))?;
                batch.remove(k);
                pending += 1;
                apply(&mut batch, &mut pending, false)?;
            }
        }
        for (source, mut index) in indexes {
            index.sort_unstable();
            batch.insert(index_key(&source), encode_index(&index));
            pending += 1;
            apply(&mut batch, &mut pending, false)?;
        }
        apply(&mut batch, &mut pending, true)?;
        self.db()?
            .insert(b"m:schema", SCHEMA_VERSION.to_string().as_bytes())
            .map_err(|e| self.db_error(e))?;
        Ok(())
    }
}
