//! What the daemon's tasks and the HTTP server share: one value, cloned into each.

use std::sync::Arc;

use crate::config::SharedConfig;
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::health::Health;
use crate::store::SharedStore;

/// What the daemon's tasks and the server share; cheap to clone.
#[derive(Clone)]
pub struct Shared {
    /// The configuration in force.
    pub config: SharedConfig,
    /// The store.
    pub store: SharedStore,
    /// The rendered documents.
    pub publisher: Arc<Publisher>,
    /// The metrics.
    pub metrics: Arc<Metrics>,
    /// The scheduler's heartbeat.
    pub health: Arc<Health>,
}
