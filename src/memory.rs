//! Giving freed memory back to the system.
//!
//! glibc's allocator keeps what a burst freed (rebuilding the matching index, a render of ten
//! thousand sources, retention) for reuse, so the RSS of a daemon that idles between bursts
//! stays at its peak. After each burst we ask it to return what it can.

/// Returns the allocator's free memory to the system (glibc only; elsewhere nothing).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim has no preconditions; it only releases memory malloc holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}
