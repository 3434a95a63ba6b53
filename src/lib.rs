//! feedmill: a daemon that aggregates news feeds and republishes them.
//!
//! # Layout
//!
//! The modules follow the data, one stage each:
//!
//! - [`config`]: the TOML file, parsed and validated (errors name file:line:col).
//! - [`schedule`]: cron expressions (5-field and seconds-first) and per-source jitter.
//! - [`fetch`]: bounded HTTP(S)/`file://` requests with conditional GET.
//! - [`parse`]: feed bytes into sanitized [`parse::Entry`] values with stable identities,
//!   helped by [`encoding`] (charsets), [`dates`] (sloppy dates), [`sanitize`] (HTML) and
//!   [`discover`] (feed links of HTML pages).
//! - [`store`]: sled: entries, per-source state, the newest-first index.
//! - [`dedup`]: canonical links and near-duplicate fingerprints (MinHash + LSH).
//! - [`refresh`]: one fetch -> parse -> store of one source.
//! - [`select`]: what an output feed shows: filters, one entry per story, per-source caps.
//! - [`publish`]: Atom / RSS / JSON Feed documents, rendered once per change.
//! - [`page`]: the HTML page and feed views (askama templates in `src/templates/`).
//! - [`serve`]: the read-only HTTP interface.
//! - [`status`]: per-source reports for `/status.json` and `feedmill sources`.
//! - [`scheduler`]: one task per source, started, restarted and stopped as the config says.
//! - [`metrics`]: Prometheus metrics; [`opml`]: subscription lists in and out.
//! - [`daemon`]: wires the stages together; [`shutdown`] stops them.
//! - [`cli`]: the `feedmill` command line.
#![deny(missing_docs)]

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
