//! Giving freed memory back to the system, and the allocator's figures.
//!
//! feedmill allocates through jemalloc (set in `main.rs`, with its options). A refresh is a burst of small, short-lived
//! allocations on every core (parsing, sanitizing, fingerprints, sled's nodes): glibc's
//! allocator spent about a fifth of a cold refresh in `malloc` and `free`, where jemalloc's
//! per-thread caches spend much less (a cold refresh of a thousand feeds is 10–15 % faster).
//! Between bursts the daemon idles, and an idle daemon should hold only what it uses: glibc
//! kept a burst's freed memory in one arena per thread, and the RSS at a million entries
//! varied from run to run by tens of MiB. See `docs/benchmarks.md` for both measurements.

use std::os::raw::c_char;

/// Returns the allocator's free memory to the system now, after a burst (a render of ten
/// thousand sources, retention, rebuilding the matching index), rather than a second later.
pub(crate) fn trim() {
    // "arena.<MALLCTL_ARENAS_ALL>.purge": every arena. It takes and returns nothing, so
    // jemalloc wants null pointers, which tikv-jemalloc-ctl's typed calls never pass.
    const PURGE_ALL: &[u8] = b"arena.4096.purge\0";
    // SAFETY: the name is NUL-terminated and the purge control reads and writes nothing.
    let _ = unsafe {
        tikv_jemalloc_sys::mallctl(
            PURGE_ALL.as_ptr().cast::<c_char>(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            0,
        )
    };
}

/// What the allocator holds, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Usage {
    /// Handed out to the program and not freed.
    pub(crate) allocated: u64,
    /// In physically resident pages (what the allocator adds to the RSS).
    pub(crate) resident: u64,
}

/// The allocator's current usage, or `None` if its statistics cannot be read.
pub(crate) fn usage() -> Option<Usage> {
    // Statistics are a snapshot taken when the epoch advances.
    tikv_jemalloc_ctl::epoch::advance().ok()?;
    Some(Usage {
        allocated: tikv_jemalloc_ctl::stats::allocated::read().ok()? as u64,
        resident: tikv_jemalloc_ctl::stats::resident::read().ok()? as u64,
    })
}
