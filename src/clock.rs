//! The time the scheduler goes by: the system's wall clock in the daemon, or a wall clock
//! that follows tokio's clock, so that under `tokio::time::pause()` the scheduler's "now" and
//! its sleeps move together and tests can run hours of schedule in a moment.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// Where the scheduler reads "now".
#[derive(Debug, Clone, Copy, Default)]
pub(crate) enum Clock {
    /// The system's wall clock, read afresh each time. The daemon's: a wall clock stepped
    /// (NTP) or a machine resumed from suspend is seen at once, which a clock counted from
    /// a monotonic instant would never see.
    #[default]
    System,
    /// `base_utc` plus the time tokio's clock has moved since `base_instant`: stands still
    /// while tokio's clock is paused and jumps when it is advanced.
    #[cfg(test)]
    Tokio {
        /// The wall-clock time at `base_instant`.
        base_utc: DateTime<Utc>,
        /// The tokio instant the clock counts from.
        base_instant: tokio::time::Instant,
    },
}

impl Clock {
    #[cfg(test)]
    /// A clock that follows tokio's from now on, starting at the wall clock's time.
    pub(crate) fn tokio() -> Clock {
        Clock::Tokio {
            base_utc: Utc::now(),
            base_instant: tokio::time::Instant::now(),
        }
    }

    /// The time now.
    pub(crate) fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            #[cfg(test)]
            Clock::Tokio {
                base_utc,
                base_instant,
            } => {
                let elapsed = tokio::time::Instant::now() - *base_instant;
                // Saturates after some 292 million years of virtual time.
                *base_utc + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
            }
        }
    }

    /// How long from now until `time`; zero when it has passed.
    pub(crate) fn until(&self, time: DateTime<Utc>) -> Duration {
        (time - self.now()).to_std().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_tokio_clock_moves_with_tokio_time_only() {
        let clock = Clock::tokio();
        let start = clock.now();
        // Paused, real time passing does not move it. (A sleep: what is checked is that
        // nothing happens meanwhile.)
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.now(), start);
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert_eq!(clock.now(), start + chrono::Duration::hours(1));
        assert_eq!(
            clock.until(start + chrono::Duration::minutes(61)),
            Duration::from_secs(60)
        );
        assert_eq!(clock.until(start), Duration::ZERO, "a past time is due now");
    }

    #[tokio::test(start_paused = true)]
    async fn the_system_clock_ignores_tokio_time() {
        let before = Utc::now();
        tokio::time::advance(Duration::from_secs(3600)).await;
        let now = Clock::System.now();
        assert!(now >= before && now < before + chrono::Duration::minutes(1));
    }
}
