//! Acknowledgements: telling the producer of a batch of records when every drain
//! that received them has delivered them, or that one gave up.
//!
//! A producer (the file tailer) makes an [`AckBatch`], attaches a clone of its
//! [`Ack`] to each record, and awaits the [`AckReceiver`]. Drains drop records once
//! delivered and call [`Ack::reject`] before dropping one they could not deliver.
//! When the last clone is gone the receiver resolves, so a checkpoint advances
//! only on delivery. This module never blocks and never allocates per record.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use tokio::sync::oneshot;

/// How a batch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchStatus {
    /// Every drain delivered every record.
    Delivered,
    /// At least one record was dropped or permanently refused by a drain.
    Rejected,
}

struct Inner {
    rejected: AtomicBool,
    /// The batch was read back from a drain's disk buffer (it holds no
    /// input's checkpoint; the buffer keeps its records until confirmed).
    replayed: bool,
    tx: Mutex<Option<oneshot::Sender<BatchStatus>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let status = if self.rejected.load(Ordering::Acquire) {
            BatchStatus::Rejected
        } else {
            BatchStatus::Delivered
        };
        if let Some(tx) = self.tx.lock().take() {
            let _ = tx.send(status);
        }
    }
}

/// A handle carried by each record of a batch.
#[derive(Clone)]
pub struct Ack(Arc<Inner>);

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ack")
    }
}

impl Ack {
    /// Whether this batch was read back from a drain's disk buffer.
    pub fn replayed(&self) -> bool {
        self.0.replayed
    }

    /// Marks the batch as not fully delivered.
    pub fn reject(&self) {
        self.0.rejected.store(true, Ordering::Release);
    }
}

/// Resolves when every [`Ack`] of the batch has been dropped.
pub struct AckReceiver(oneshot::Receiver<BatchStatus>);

impl AckReceiver {
    /// Waits for the batch's outcome.
    pub async fn wait(self) -> BatchStatus {
        // The sender is only dropped unsent if `Inner` never dropped, which cannot
        // happen once we are polled after the last clone; treat it as rejected.
        self.0.await.unwrap_or(BatchStatus::Rejected)
    }

    /// Non-blocking check.
    pub fn try_status(&mut self) -> Option<BatchStatus> {
        self.0.try_recv().ok()
    }
}

/// Makes a new batch: attach clones of the `Ack` to records, then drop it.
pub fn batch() -> (Ack, AckReceiver) {
    new(false)
}

/// A batch read back from a drain's disk buffer ([`Ack::replayed`]).
pub fn replay() -> (Ack, AckReceiver) {
    new(true)
}

fn new(replayed: bool) -> (Ack, AckReceiver) {
    let (tx, rx) = oneshot::channel();
    let inner = Inner {
        rejected: AtomicBool::new(false),
        replayed,
        tx: Mutex::new(Some(tx)),
    };
    (Ack(Arc::new(inner)), AckReceiver(rx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn delivered_when_all_clones_drop() {
        let (ack, rx) = batch();
        let a = ack.clone();
        let b = ack.clone();
        drop(ack);
        drop(a);
        let mut rx = rx;
        assert_eq!(rx.try_status(), None);
        drop(b);
        assert_eq!(rx.wait().await, BatchStatus::Delivered);
    }

    #[tokio::test]
    async fn one_reject_rejects_the_batch() {
        let (ack, rx) = batch();
        let a = ack.clone();
        a.reject();
        drop(a);
        drop(ack);
        assert_eq!(rx.wait().await, BatchStatus::Rejected);
    }
}
