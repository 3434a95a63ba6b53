//! The `feedmill` binary: everything lives in the library; see `feedmill::cli`.

fn main() -> std::process::ExitCode {
    feedmill::cli::main()
}

// The allocator is the binary's choice (the library's tests and benches run on the system's):
// see `feedmill::memory` for why jemalloc, and for what is done with it.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read before `main` (the symbol is the one its prefixed build looks up):
/// - `narenas:2`: two arenas instead of four per CPU, so fewer half-empty arenas (the
///   threads that allocate most are the two busy cores' workers);
/// - `background_thread:true`: freed pages are returned even while the daemon idles (without
///   it, jemalloc's decay only advances when the program allocates);
/// - `dirty_decay_ms:1000`: a burst's freed pages are kept a second for the next burst to
///   reuse, then returned;
/// - `muzzy_decay_ms:0`: returned pages are unmapped at once rather than lazily freed, which
///   the kernel would go on counting in the RSS until it needs the memory.
#[used]
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: &[u8; 70] =
    b"narenas:2,background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0\0";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_options_are_one_nul_terminated_string() {
        let text = MALLOC_CONF.split(|b| *b == 0).next().unwrap_or_default();
        assert!(text.starts_with(b"narenas:2,"));
        assert_eq!(MALLOC_CONF[text.len()], 0);
    }

    #[test]
    fn jemalloc_is_the_allocator_and_took_the_options() {
        let held = vec![7u8; 8 << 20];
        tikv_jemalloc_ctl::epoch::advance().expect("epoch");
        let allocated = tikv_jemalloc_ctl::stats::allocated::read().expect("jemalloc statistics");
        assert!(allocated >= held.len(), "{allocated}");
        drop(held);
        // SAFETY: reads a bool option by its name.
        let background =
            unsafe { tikv_jemalloc_ctl::raw::read::<bool>(b"opt.background_thread\0") };
        assert_eq!(background.ok(), Some(true), "the options were not read");
    }
}
