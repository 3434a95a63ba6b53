//! Integration tests: the real `feedmill` binary against real local HTTP servers.

mod cli;
mod cluster;
mod config_bounds;
mod connections;
mod copy;
mod daemon;
mod dedup;
mod golden;
mod hostile;
mod layering;
mod output_safety;
mod outputs;
mod page;
mod postgres_tls;
mod properties;
mod reference;
mod replica_holds;
mod replica_outputs;
mod replicas;
mod retention;
mod service;
mod ssrf;
mod store_faults;
mod support;
