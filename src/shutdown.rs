//! Graceful shutdown as a small type of its own (after mini-redis): every long-lived task holds
//! a [`Shutdown`] and stops at its next await point once it fires.

use tokio::sync::watch;

/// Fires the shutdown of every [`Shutdown`] made from it.
#[derive(Debug)]
pub(crate) struct ShutdownTrigger(watch::Sender<bool>);

/// A task's view of the shutdown signal; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Shutdown(watch::Receiver<bool>);

/// A linked trigger and listener.
pub(crate) fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger(tx), Shutdown(rx))
}

impl ShutdownTrigger {
    /// Tells every listener to stop.
    pub(crate) fn fire(&self) {
        self.0.send_replace(true);
    }
}

impl Shutdown {
    /// Waits until shutdown is requested (at once if it already was, or if the trigger is gone).
    pub(crate) async fn recv(&mut self) {
        // An error means the trigger was dropped, which also means "stop".
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}
