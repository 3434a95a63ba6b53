//! What the daemon's tasks and the HTTP server share: one value, cloned into each.

use std::sync::Arc;

use crate::config::SharedConfig;
use crate::health::Health;
use crate::metrics::Metrics;
use crate::publish::Publisher;
use crate::store::SharedStore;

/// What the daemon's tasks and the server share; cheap to clone.
#[derive(Clone)]
pub(crate) struct Shared {
    /// The configuration in force.
    pub(crate) config: SharedConfig,
    /// The store.
    pub(crate) store: SharedStore,
    /// The rendered documents.
    pub(crate) publisher: Arc<Publisher>,
    /// The metrics.
    pub(crate) metrics: Arc<Metrics>,
    /// The scheduler's heartbeat.
    pub(crate) health: Arc<Health>,
}
