//! feedmill: a daemon that aggregates news feeds and republishes them.
//!
//! # Layout
//!
//! The modules follow the data, one stage each (ARCHITECTURE.md has the boundaries):
//!
//! - `model`: the nouns every stage passes on (entries, keys, stored entries, source state
//!   and its transitions, stories, refresh failures). No I/O; imports nothing.
//! - `config`: the TOML file, validated (errors at file:line:col); `config::schedule` (cron,
//!   jitter), `config::opml` (OPML in and out).
//! - `scheduler`: one task per source, started, restarted and stopped as the config says;
//!   `clock` (where "now" is read), `health` (its heartbeat).
//! - `refresh`: one fetch -> parse -> store of one source, and its one store write.
//! - `fetch`: bounded HTTP(S)/`file://` requests to public addresses, conditional GET.
//! - `parse`: feed bytes into sanitized entries (`parse::xml`, `parse::json`, with
//!   `parse::encoding`, `parse::dates`, `parse::discover`); `sanitize`: the HTML rules;
//!   `dedup`: canonical links and near-duplicate fingerprints.
//! - `store`: the store interface (`store::Store`) and its engines (`store::sled`).
//! - `select`: what an output feed shows; `render`: the renderer task; `publish`: Atom,
//!   RSS, JSON Feed (one file each) and the HTML page (`publish::page`).
//! - `serve`: the read-only HTTP interface; `status` and `metrics`: what it reports.
//! - `shared`: what the daemon's tasks and the server share; `daemon`: wires the stages;
//!   `shutdown`: stops them; `memory`: returns freed memory.
//! - `cli`: the `feedmill` command line. The binary (`main.rs`) holds the allocator.
#![deny(missing_docs)]

// The unit tests measure what parsing allocates through jemalloc's statistics
// (`memory::usage`): they run on the allocator the binary runs on.
#[cfg(test)]
#[global_allocator]
static TEST_ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

pub mod cli;
pub(crate) mod clock;
pub mod config;
pub(crate) mod daemon;
pub(crate) mod dedup;
pub(crate) mod fetch;
pub(crate) mod health;
pub(crate) mod memory;
pub(crate) mod metrics;
pub mod model;
pub mod parse;
pub mod publish;
pub(crate) mod refresh;
pub(crate) mod render;
pub mod sanitize;
pub(crate) mod scheduler;
pub mod select;
pub(crate) mod serve;
pub(crate) mod shared;
pub(crate) mod shutdown;
pub(crate) mod status;
pub mod store;
