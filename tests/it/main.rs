//! Integration tests: the real `feedmill` binary against real local HTTP servers.

mod cli;
mod daemon;
mod dedup;
mod hostile;
mod page;
mod properties;
mod service;
mod support;
