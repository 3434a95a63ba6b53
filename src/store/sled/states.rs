//! Source states: read through a cache, written through.

use std::collections::HashMap;
use std::sync::MutexGuard;

use super::{codec::*, SledStore};
use crate::model::SourceState;
use crate::store::StoreError;

/// The source states a [`SledStore`] keeps in memory.
#[derive(Default)]
pub(super) struct States {
    /// As stored (`None`: none stored). Written through: a state is cached only after its
    /// write went to sled.
    pub(super) saved: HashMap<String, Option<SourceState>>,
    /// States whose write failed (a full disk): read in place of the stored ones, so that
    /// the failure, its backoff and its next fetch are seen (`/status.json`, the scheduler)
    /// while the store cannot record them. Dropped when the source's state is next written.
    pub(super) unsaved: HashMap<String, SourceState>,
}

impl SledStore {
    /// The saved state of `source`, if it was ever fetched.
    pub fn source_state(&self, source: &str) -> Result<Option<SourceState>, StoreError> {
        {
            let states = self.cached_states();
            if let Some(unsaved) = states.unsaved.get(source) {
                return Ok(Some(unsaved.clone()));
            }
            if let Some(known) = states.saved.get(source) {
                return Ok(known.clone());
            }
        }
        let value = self
            .db()?
            .get(state_key(source))
            .map_err(|e| self.db_error(e))?;
        let state: Option<SourceState> = value.and_then(|v| decode(&v, "source state"));
        self.cached_states()
            .saved
            .entry(source.to_string())
            .or_insert_with(|| state.clone());
        Ok(state)
    }

    pub(super) fn cached_states(&self) -> MutexGuard<'_, States> {
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a state that is now in sled.
    pub(super) fn cache_state(&self, source: &str, state: &SourceState) {
        let mut states = self.cached_states();
        states.unsaved.remove(source);
        states.saved.insert(source.to_string(), Some(state.clone()));
    }

    /// Saves the state of `source` alone (a failure, a 304). When the write fails, the
    /// state is still what [`SledStore::source_state`] answers from now on, until a write of
    /// this source's state works (see `States::unsaved`).
    pub fn save_state(&self, source: &str, state: &SourceState) -> Result<(), StoreError> {
        let value = serde_json::to_vec(state).unwrap_or_default();
        let _writing = self.writes.read().unwrap_or_else(|p| p.into_inner());
        let written = self.db().and_then(|db| {
            db.insert(state_key(source), value)
                .map_err(|e| self.write_error(e))
        });
        match written {
            Ok(_) => {
                self.cache_state(source, state);
                Ok(())
            }
            Err(err) => {
                self.cached_states()
                    .unsaved
                    .insert(source.to_string(), state.clone());
                Err(err)
            }
        }
    }

    /// The state of every source that was ever fetched, by name.
    pub(crate) fn source_states(&self) -> Result<Vec<(String, SourceState)>, StoreError> {
        self.db()?
            .scan_prefix(b"s:")
            .map(|item| {
                let (k, v) = item.map_err(|e| self.db_error(e))?;
                let name = String::from_utf8_lossy(&k[2..]).into_owned();
                Ok(decode(&v, "source state").map(|state| (name, state)))
            })
            .filter_map(Result::transpose)
            .collect()
    }
}
