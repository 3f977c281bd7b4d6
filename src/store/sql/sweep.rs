//! The background sweep of expired rows.

use std::time::Duration;

use super::SqlStore;

/// The background task started by [`SqlStore::spawn_sweeper`]. Dropping it
/// (or calling [`stop`](Self::stop)) stops the sweeps; keep it for as long as
/// the application runs.
#[derive(Debug)]
#[must_use = "the sweeper stops when this handle is dropped"]
pub struct Sweeper {
    task: tokio::task::JoinHandle<()>,
}

impl Sweeper {
    pub(super) fn spawn(store: SqlStore, every: Duration) -> Self {
        let every = every.max(Duration::from_millis(1));
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match store.delete_expired().await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::debug!(deleted, "swept expired sessions"),
                    // The next tick tries again; requests are unaffected.
                    Err(error) => tracing::warn!(%error, "sweeping expired sessions failed"),
                }
            }
        });
        Self { task }
    }

    /// Stops the sweeps (as dropping the handle does). A sweep under way is
    /// abandoned at its next await; its statement, if sent, still completes
    /// on the server.
    pub fn stop(self) {}

    /// `true` while the task runs (it stops only when told to, or when the
    /// runtime shuts down).
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.task.abort();
    }
}
