//! Integration tests: the real `feedmill` binary against real local HTTP servers.

mod cli;
mod daemon;
mod hostile;
mod properties;
mod support;
