//! Cancellation and task tracking for graceful shutdown: inputs stop first,
//! then drains flush within a deadline, and whatever could not be flushed is
//! reported by name.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Handed to every input and datasource: a stop signal plus the tracker their
/// tasks are spawned on, so shutdown can wait for them.
#[derive(Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
    tracker: TaskTracker,
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Resolves when shutdown begins.
    pub async fn stopped(&self) {
        self.token.cancelled().await
    }

    pub fn is_stopped(&self) -> bool {
        self.token.is_cancelled()
    }

    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Spawns a task that shutdown waits for.
    pub fn spawn<F>(&self, fut: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(fut)
    }

    /// Signals every task to stop and waits up to `deadline` for them.
    /// Returns false when some were still running at the deadline.
    pub async fn stop_and_wait(&self, deadline: Duration) -> bool {
        self.token.cancel();
        self.tracker.close();
        tokio::time::timeout(deadline, self.tracker.wait()).await.is_ok()
    }
}
