//! `feedmill store copy` and `feedmill store migrate`: moving everything from one store to
//! another, whatever their engines, and creating or upgrading a store's schema alone.
//!
//! A copy is one [`Store::export`] of the old store fed to [`Store::import`] of the new one,
//! one source at a time (memory holds one source's entries), then the joins of stories.
//! Every entry keeps its key (so its output id), first-seen and sort time and its stories,
//! every state its validators and schedule: the documents rendered from the new store are
//! the bytes rendered from the old.

use std::path::{Path, PathBuf};

use crate::config::{Engine, StoreConfig};
use crate::store::{Exported, Store, StoreError};

/// What a copy moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CopyReport {
    /// Sources, each with its state.
    pub(crate) sources: u64,
    /// Entries of those sources.
    pub(crate) entries: u64,
    /// Joins of stories.
    pub(crate) joins: u64,
}

/// Why a copy did not happen, or stopped part way.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CopyError {
    /// Both configs name one store: a copy would read and replace the same sources.
    #[error("both configs name the same store ({0}): a store cannot be copied onto itself; point [store] of one of them elsewhere")]
    SameStore(String),
    /// The old store could not be opened or read.
    #[error("cannot read the old store: {0}")]
    Read(#[source] StoreError),
    /// The new store could not be opened or written. What was copied before stays; a
    /// copy run again replaces it.
    #[error("cannot write the new store: {0} (a copy run again replaces what this one wrote)")]
    Write(#[source] StoreError),
}

/// Copies every source (state and entries) and every join of stories from `from` into
/// `to`, replacing what `to` held of those sources.
pub(crate) fn copy(from: &dyn Store, to: &dyn Store) -> Result<CopyReport, CopyError> {
    let mut report = CopyReport::default();
    // The import's own error, kept apart: export hands back whatever the visitor returned,
    // and the user needs to know which store failed.
    let mut write_failed = None;
    let exported = from.export(&mut |item| {
        let counted = match &item {
            Exported::Source { entries, .. } => (1, entries.len() as u64, 0),
            Exported::Join { .. } => (0, 0, 1),
        };
        match to.import(item) {
            Ok(()) => {
                report.sources += counted.0;
                report.entries += counted.1;
                report.joins += counted.2;
                Ok(())
            }
            Err(err) => {
                let stop = StoreError::Task(err.to_string());
                write_failed = Some(err);
                Err(stop)
            }
        }
    });
    match (exported, write_failed) {
        (_, Some(err)) => Err(CopyError::Write(err)),
        (Err(err), None) => Err(CopyError::Read(err)),
        (Ok(()), None) => Ok(report),
    }
}

/// Opens the store of `from` and the store of `to`, copies the one into the other
/// ([`copy`]), and closes both (flushed). Refuses when both name one store. A store that a
/// running daemon holds fails to open at once ([`StoreError::Locked`]).
pub(crate) fn copy_between(from: &StoreConfig, to: &StoreConfig) -> Result<CopyReport, CopyError> {
    if same_store(from, to) {
        return Err(CopyError::SameStore(store_name(to)));
    }
    let source = super::open(from).map_err(CopyError::Read)?;
    let destination = match super::open(to) {
        Ok(store) => store,
        Err(err) => {
            let _ = source.close();
            return Err(CopyError::Write(err));
        }
    };
    tracing::info!(from = %store_name(from), to = %store_name(to), "copying the store");
    let copied = copy(source.as_ref(), destination.as_ref());
    // Closed whatever happened: what was written is kept, and the next command opens both
    // without replaying a log.
    let closed = destination.close().map_err(CopyError::Write);
    let _ = source.close();
    let report = copied?;
    closed?;
    Ok(report)
}

/// The store a config names, as the user wrote it: the sled directory, or the PostgreSQL URL.
pub(crate) fn store_name(config: &StoreConfig) -> String {
    match &config.engine {
        Engine::Sled => config.path.display().to_string(),
        Engine::Postgres { url } => url.clone(),
    }
}

/// Whether two configs name one store: the same directory (however spelled, through
/// symbolic links too) or the same database (host, port and database name, whoever logs in).
pub(crate) fn same_store(a: &StoreConfig, b: &StoreConfig) -> bool {
    match (&a.engine, &b.engine) {
        (Engine::Sled, Engine::Sled) => resolved(&a.path) == resolved(&b.path),
        (Engine::Postgres { url: a }, Engine::Postgres { url: b }) => {
            a == b || database_of(a).is_some_and(|db| Some(db) == database_of(b))
        }
        _ => false,
    }
}

/// `path` with symbolic links and `..` resolved: its longest existing ancestor as the system
/// resolves it, then the rest as written (a new store's directory does not exist yet).
fn resolved(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut rest = Vec::new();
    let mut at = path;
    loop {
        if let Ok(mut out) = std::fs::canonicalize(at) {
            for component in rest.into_iter().rev() {
                match component {
                    Component::ParentDir => {
                        out.pop();
                    }
                    Component::Normal(name) => out.push(name),
                    _ => {}
                }
            }
            return out;
        }
        match (at.parent(), at.components().next_back()) {
            (Some(parent), Some(last)) => {
                rest.push(last);
                at = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// The database a libpq-style URL connects to: host, port and database name, with libpq's
/// defaults (port 5432, the database named as the user) and its query parameters (`host`,
/// `port`, `dbname`), which take precedence.
fn database_of(url: &str) -> Option<(String, u16, String)> {
    let parsed = url::Url::parse(url).ok()?;
    let param = |name: &str| {
        parsed
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    let host = param("host")
        .or_else(|| parsed.host_str().map(str::to_string))
        .unwrap_or_else(|| "localhost".to_string())
        .to_ascii_lowercase();
    let port = param("port")
        .and_then(|p| p.parse().ok())
        .or(parsed.port())
        .unwrap_or(5432);
    let path = parsed.path().trim_start_matches('/');
    let database = param("dbname")
        .or_else(|| (!path.is_empty()).then(|| path.to_string()))
        .or_else(|| param("user"))
        .unwrap_or_else(|| parsed.username().to_string());
    Some((host, port, database))
}

/// Creates the store `config` names, or brings its schema up to date (opening does both),
/// and closes it; says what it found, in one line.
pub(crate) fn migrate(config: &StoreConfig) -> Result<String, StoreError> {
    let existed = match &config.engine {
        Engine::Sled => config.path.exists(),
        Engine::Postgres { .. } => true,
    };
    let store = super::open(config)?;
    store.close()?;
    let name = store_name(config);
    Ok(match &config.engine {
        Engine::Sled if existed => format!(
            "store {name} is at schema version {}",
            super::sled::SCHEMA_VERSION
        ),
        Engine::Sled => format!(
            "store {name} created at schema version {}",
            super::sled::SCHEMA_VERSION
        ),
        // Opening migrated it (and logged the steps it ran, if any).
        Engine::Postgres { .. } => format!(
            "database {name} is at schema version {}",
            super::postgres::schema::SCHEMA_VERSION
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sled_at(path: &Path) -> StoreConfig {
        let mut config = crate::config::Config::parse(
            Path::new("/nowhere/feedmill.toml"),
            "[[source]]\nname = \"a\"\nurl = \"https://a.example/feed\"\n[[feed]]\nname = \"all\"\n",
        )
        .expect("config")
        .store;
        config.path = path.to_path_buf();
        config
    }

    fn postgres(url: &str) -> StoreConfig {
        StoreConfig {
            engine: Engine::Postgres {
                url: url.to_string(),
            },
            ..sled_at(Path::new("/var/lib/feedmill"))
        }
    }

    #[test]
    fn one_store_however_spelled_is_the_same_store() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = dir.path().join("store");
        std::fs::create_dir(&store).expect("mkdir");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&store, &link).expect("symlink");
        let a = sled_at(&store);
        assert!(same_store(&a, &sled_at(&dir.path().join("x/../store"))));
        assert!(same_store(&a, &sled_at(&link)));
        assert!(!same_store(&a, &sled_at(&dir.path().join("other"))));
        // A new store's directory does not exist yet.
        assert!(same_store(
            &sled_at(&link.join("new")),
            &sled_at(&store.join("new"))
        ));
        let db = postgres("postgres://feedmill@DB.internal/feedmill");
        assert!(same_store(
            &db,
            &postgres("postgresql://other@db.internal:5432/feedmill")
        ));
        assert!(same_store(
            &postgres("postgres:///feedmill?host=/run/postgresql"),
            &postgres("postgresql:///feedmill?port=5432&host=/run/postgresql")
        ));
        assert!(!same_store(
            &db,
            &postgres("postgres://feedmill@db.internal/feedmill2")
        ));
        assert!(!same_store(
            &db,
            &postgres("postgres://feedmill@db.internal:5433/feedmill")
        ));
        assert!(!same_store(&db, &a));
    }

    #[test]
    fn a_copy_says_which_store_failed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let from = crate::store::open_at(&dir.path().join("a")).expect("opens");
        let mut state = crate::model::SourceState::default();
        from.commit_fetch(
            "s",
            &mut state,
            &[crate::model::Entry {
                identity: "x".into(),
                title: "X".into(),
                ..Default::default()
            }],
            chrono::Utc::now(),
        )
        .expect("commits");
        let to = crate::store::open_at(&dir.path().join("b")).expect("opens");
        assert_eq!(
            copy(from.as_ref(), to.as_ref()).expect("copies"),
            CopyReport {
                sources: 1,
                entries: 1,
                joins: 0
            }
        );
        // A closed destination refuses writes: the error says it was the new store.
        to.close().expect("closes");
        match copy(from.as_ref(), to.as_ref()) {
            Err(CopyError::Write(err)) => {
                let named = dir.path().join("b").display().to_string();
                assert!(err.to_string().contains(&named), "{err}");
            }
            other => panic!("expected a write error, got {other:?}"),
        }
    }
}
