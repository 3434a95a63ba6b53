//! [`Store`] for [`PgStore`]: the engine's methods, and the answers a database gives to
//! what only files need (flush, corruption, recovery).

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::PgStore;
use crate::model::{CommitSummary, Entry, EntryKey, EntryRef, SourceState, StoredEntry, StoryKind};
use crate::store::{
    Claim, ClaimRequest, EngineFigures, Exported, Recoveries, Store, StoreError, Visit,
};

impl Store for PgStore {
    fn source_state(&self, source: &str) -> Result<Option<SourceState>, StoreError> {
        PgStore::source_state(self, source)
    }

    fn save_state(&self, source: &str, state: &SourceState) -> Result<(), StoreError> {
        PgStore::save_state(self, source, state)
    }

    fn commit_fetch(
        &self,
        source: &str,
        state: &mut SourceState,
        entries: &[Entry],
        now: DateTime<Utc>,
    ) -> Result<CommitSummary, StoreError> {
        PgStore::commit_fetch(self, source, state, entries, now)
    }

    fn entry(&self, source: &str, key: &EntryKey) -> Result<Option<StoredEntry>, StoreError> {
        PgStore::entry(self, source, key)
    }

    fn story_of(&self, stored: &StoredEntry, kind: StoryKind) -> EntryRef {
        crate::store::matcher::story_of(&self.inner.joins, stored, kind)
    }

    fn visit_newest(
        &self,
        sources: &[String],
        _newest: &dyn Fn(&str) -> Option<DateTime<Utc>>,
        visit: &mut dyn FnMut(StoredEntry) -> Visit,
    ) -> Result<(), StoreError> {
        PgStore::visit_newest(self, sources, visit)
    }

    fn prune(
        &self,
        cutoff: Option<DateTime<Utc>>,
        keep: Option<usize>,
    ) -> Result<HashMap<String, usize>, StoreError> {
        PgStore::prune(self, cutoff, keep)
    }

    // A commit is durable when it returns.
    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn close(&self) -> Result<(), StoreError> {
        let released = PgStore::release(self, None);
        let pool = self.inner.pool.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.inner.handle.spawn(async move {
            pool.close().await;
            let _ = tx.send(());
        });
        let _ = rx.recv_timeout(std::time::Duration::from_secs(5));
        // An unreachable database keeps the leases until they run out: nothing is lost.
        match released {
            Err(StoreError::Unreachable { .. }) => Ok(()),
            other => other,
        }
    }

    fn corruption(&self) -> Option<String> {
        None
    }

    fn rebuild(&self, _reason: &str) -> Result<(), StoreError> {
        Ok(())
    }

    fn write_failure(&self) -> Option<String> {
        None
    }

    fn recover(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn recoveries(&self) -> tokio::sync::watch::Receiver<Recoveries> {
        self.inner.recoveries.subscribe()
    }

    fn claim(&self, source: &str, request: &ClaimRequest) -> Result<Claim, StoreError> {
        PgStore::claim(self, source, request)
    }

    fn release(&self, source: &str) -> Result<(), StoreError> {
        PgStore::release(self, Some(source))
    }

    fn is_remote(&self) -> bool {
        true
    }

    fn outage(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.inner.outage.subscribe()
    }

    fn watch_changes(&self, changed: tokio::sync::mpsc::UnboundedSender<String>) {
        self.inner
            .subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(changed);
    }

    fn changed_at(&self, source: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        PgStore::changed_at(self, source)
    }

    fn figures(&self) -> EngineFigures {
        let pool = &self.inner.pool;
        EngineFigures {
            pool_size: u64::from(pool.size()),
            pool_idle: pool.num_idle() as u64,
            pool_max: u64::from(pool.options().get_max_connections()),
            leases_held: self
                .inner
                .leases
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .len() as u64,
        }
    }

    fn export(
        &self,
        visit: &mut dyn FnMut(Exported) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        PgStore::export(self, visit)
    }

    fn import(&self, item: Exported) -> Result<(), StoreError> {
        PgStore::import(self, item)
    }
}
