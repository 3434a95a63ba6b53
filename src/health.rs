//! The scheduler's heartbeat: what systemd's watchdog and `/healthz` read to know the
//! scheduler is alive. Written by the scheduler's supervisor, read by the daemon and the
//! server, so it lives apart from both.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use crate::clock::Clock;

/// A heartbeat older than this means the scheduler is hung.
const STALE: Duration = Duration::from_secs(10);

/// Whether the scheduler is alive, as its heartbeat says (on the system's clock unless
/// made [`Health::with_clock`]).
#[derive(Debug, Default)]
pub(crate) struct Health {
    clock: Clock,
    last_beat_ms: AtomicI64,
    stopped: AtomicBool,
}

impl Health {
    #[cfg(test)]
    /// A health that reads the time from `clock`: the scheduler's, so that its beats and
    /// their staleness are measured on the same clock.
    pub(crate) fn with_clock(clock: Clock) -> Health {
        Health {
            clock,
            ..Health::default()
        }
    }

    /// Records a beat now.
    pub(crate) fn beat(&self) {
        self.last_beat_ms
            .store(self.clock.now().timestamp_millis(), Ordering::SeqCst);
    }

    /// Marks the scheduler as stopped (shutdown).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
    }

    /// Whether the scheduler beat recently and was not stopped.
    pub(crate) fn alive(&self) -> bool {
        let last = self.last_beat_ms.load(Ordering::SeqCst);
        !self.stopped.load(Ordering::SeqCst)
            && last > 0
            && self.clock.now().timestamp_millis() - last < STALE.as_millis() as i64
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    #[test]
    fn health_needs_a_recent_beat_and_no_stop() {
        let health = Health::default();
        assert!(!health.alive(), "alive before the first beat");
        health.beat();
        assert!(health.alive());
        health
            .last_beat_ms
            .store(Utc::now().timestamp_millis() - 11_000, Ordering::SeqCst);
        assert!(!health.alive(), "a hung scheduler counts as alive");
        health.beat();
        health.stop();
        assert!(!health.alive());
    }

    #[tokio::test(start_paused = true)]
    async fn a_heartbeat_goes_stale_on_the_clock_it_was_given() {
        let health = Health::with_clock(Clock::tokio());
        health.beat();
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(health.alive(), "stale before ten seconds");
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(
            !health.alive(),
            "eleven seconds without a beat count as alive"
        );
    }
}
