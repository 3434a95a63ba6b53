//! Faults: sled's errors in words, opening, setting a corrupt store aside, and catching sled's panics.

use std::path::{Path, PathBuf};

use chrono::Utc;

use crate::store::StoreError;

/// A sled error in words. sled hands the I/O error that stopped its background writer to
/// every later call as a copy whose text is the original's `Debug` form
/// (`Os { code: 28, kind: StorageFull, message: "No space left on device" }`): that is
/// turned back into the system's words.
pub(crate) fn describe(err: &sled::Error) -> String {
    match err {
        sled::Error::Io(io) => describe_io(io),
        sled::Error::Corruption { at, .. } => match at {
            Some(at) => format!("corrupted data at {at:?} in its db file"),
            None => "corrupted data".to_string(),
        },
        other => other.to_string(),
    }
}

pub(super) fn describe_io(io: &std::io::Error) -> String {
    if io.raw_os_error().is_some() {
        return io.to_string();
    }
    let text = io.to_string();
    let code = text
        .strip_prefix("Os { code: ")
        .and_then(|rest| rest.split(',').next())
        .and_then(|code| code.trim().parse::<i32>().ok());
    match code {
        Some(code) => std::io::Error::from_raw_os_error(code).to_string(),
        None => text,
    }
}

/// Opens sled at `path`, a panic included: see [`SledStore::open`] for what is corruption.
pub(super) fn open_sled(path: &Path, cache: u64) -> Result<sled::Db, StoreError> {
    let config = sled::Config::new()
        .path(path)
        .cache_capacity(cache)
        .flush_every_ms(Some(500));
    match guarded(path, || Ok(config.open())) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(sled::Error::Io(err))) if err.to_string().contains("could not acquire lock") => {
            Err(StoreError::Locked(path.to_path_buf()))
        }
        // The disk or the system refuses us: moving the store aside would not help, and
        // would lose a good store.
        Ok(Err(sled::Error::Io(err))) if refused(&err) => Err(StoreError::Refused {
            path: path.to_path_buf(),
            reason: describe_io(&err),
        }),
        Ok(Err(err)) => Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: describe(&err),
        }),
        Err(panicked) => Err(panicked),
    }
}

/// A read error of a store being opened is corruption, unless the system refused us.
pub(super) fn corrupt_unless_refused(err: StoreError) -> StoreError {
    match err {
        StoreError::Db { path, reason } => StoreError::Corrupt { reason, path },
        other => other,
    }
}

/// Whether an I/O error comes from the system rather than from what is in the store.
pub(super) fn refused(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        err.kind(),
        PermissionDenied
            | StorageFull
            | QuotaExceeded
            | ReadOnlyFilesystem
            | NotADirectory
            | OutOfMemory
            | ResourceBusy
    ) || matches!(err.raw_os_error(), Some(24 | 23)) // EMFILE, ENFILE: too many open files
}

thread_local! {
    /// Set while this thread runs [`guarded`] work: its panics are caught, not reported.
    pub(super) static GUARDED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// The last panic caught on this thread: message and where.
    static CAUGHT: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Runs `work`; a panic becomes [`StoreError::Corrupt`] with its message, and is not
/// printed as a panic report (the error is logged on one line by whoever handles it).
/// Panics of other threads are reported as before.
pub(super) fn guarded<T>(
    path: &Path,
    work: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(|g| g.get()) > 0 {
                let message = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_string());
                let place = info
                    .location()
                    .map(|l| format!(" at {}:{}", l.file(), l.line()))
                    .unwrap_or_default();
                CAUGHT.with(|c| *c.borrow_mut() = Some(format!("{message}{place}")));
            } else {
                previous(info);
            }
        }));
    });
    GUARDED.with(|g| g.set(g.get() + 1));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
    GUARDED.with(|g| g.set(g.get() - 1));
    result.unwrap_or_else(|_| {
        let caught = CAUGHT.with(|c| c.borrow_mut().take());
        Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "sled panicked reading it: {}",
                caught.unwrap_or_else(|| "a panic".to_string())
            ),
        })
    })
}

/// Moves the corrupt store at `path` aside, to `PATH.corrupt-TIME` beside it, and says so
/// in one log line. A directory that cannot be renamed (a mount point, or systemd's
/// `StateDirectory=` whose parent we may not write) keeps its place and has its files
/// moved into `PATH/corrupt-TIME/` instead. Returns where the store went.
pub(super) fn set_aside(path: &Path, reason: &str) -> Result<PathBuf, StoreError> {
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".to_string());
    let unused = |candidate: &dyn Fn(usize) -> PathBuf| {
        (0..)
            .map(candidate)
            .find(|p| std::fs::symlink_metadata(p).is_err())
            .unwrap_or_else(|| candidate(0))
    };
    let numbered = |base: String| {
        move |n: usize| {
            if n == 0 {
                base.clone()
            } else {
                format!("{base}-{n}")
            }
        }
    };
    let beside = numbered(format!("{name}.corrupt-{stamp}"));
    let aside = unused(&|n| path.with_file_name(beside(n)));
    let failed = |source| StoreError::SetAside {
        path: path.to_path_buf(),
        reason: reason.to_string(),
        source,
    };
    let aside = match std::fs::rename(path, &aside) {
        Ok(()) => aside,
        Err(_) => {
            let inside = numbered(format!("corrupt-{stamp}"));
            let aside = unused(&|n| path.join(inside(n)));
            move_contents(path, &aside).map_err(failed)?;
            aside
        }
    };
    tracing::error!(
        store = %path.display(),
        moved_to = %aside.display(),
        "the store is corrupt ({reason}); moved it to {} and starting with an empty store (every source is fetched again; delete the old one once you no longer need it)",
        aside.display()
    );
    Ok(aside)
}

/// Moves the files of the store directory `from` into the new directory `to` inside it,
/// leaving earlier `corrupt-*` directories where they are.
pub(super) fn move_contents(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let name = entry.file_name();
        if entry.path() == to || name.to_string_lossy().starts_with("corrupt-") {
            continue;
        }
        std::fs::rename(entry.path(), to.join(&name))?;
    }
    Ok(())
}

/// Whether the file system of the store directory takes a write now: 64 KiB written,
/// synced and removed again.
pub(super) fn probe_filesystem(path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let probe = path.join(".feedmill-write-probe");
    let written = std::fs::File::create(&probe).and_then(|mut file| {
        file.write_all(&[0; 64 * 1024])?;
        file.sync_all()
    });
    let _ = std::fs::remove_file(&probe);
    written
}

/// A sled error as a [`StoreError`] of the store at `path`: the system refusing us, or a
/// failed read.
pub(super) fn read_error(path: &Path, err: &sled::Error) -> StoreError {
    match err {
        sled::Error::Io(io) if refused(io) => StoreError::Refused {
            path: path.to_path_buf(),
            reason: describe_io(io),
        },
        other => StoreError::Db {
            path: path.to_path_buf(),
            reason: describe(other),
        },
    }
}
