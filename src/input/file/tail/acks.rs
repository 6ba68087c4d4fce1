//! Acknowledgements into a file's position: chunks handed on are folded into
//! the position (which the checkpoint writer saves) only once every drain has
//! delivered them, in order. Nothing here reads the file or sends records.

use std::sync::atomic::Ordering;

use super::Tailer;
use super::open::Open;
use super::reading::Reading;
use crate::input::file::checkpoint::Entry;

/// Acknowledged chunks not yet folded into the checkpoint, at most.
/// (Each stands for records still queued or held by a drain, which bound them;
/// a drain may confirm a batch only some time after writing it.)
const MAX_PENDING_ACKS: usize = 4096;

/// How long [`Reading::settle`] waits for acknowledgements.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Settle {
    /// Folds in the chunks already acknowledged, waiting only while more than
    /// [`MAX_PENDING_ACKS`] are outstanding.
    Ready,
    /// Waits for every outstanding chunk (bounded by shutdown's deadline, which
    /// aborts us).
    All,
}

impl Reading<'_> {
    /// Folds acknowledged chunks into the checkpoint, waiting as `settle` says.
    pub(super) async fn settle(&mut self, settle: Settle) {
        let mut moved = false;
        loop {
            let must_wait = settle == Settle::All || self.pending.len() > MAX_PENDING_ACKS;
            let Some((end, rx)) = self.pending.front_mut() else {
                break;
            };
            let end = *end;
            if rx.try_status().is_none() {
                if !must_wait {
                    break;
                }
                let (_, rx) = self.pending.pop_front().expect("front exists");
                rx.wait().await;
            } else {
                self.pending.pop_front();
            }
            self.open.acked = self.open.acked.max(end);
            moved = true;
        }
        if moved {
            self.tailer.record_position(&self.open);
        }
    }

    /// Leaves the acknowledgements still due to a background task, which moves
    /// the file's remembered position on as they come in (only while it is
    /// remembered: not yet forgotten as too old).
    pub(super) fn settle_in_background(self) {
        if self.pending.is_empty() {
            return;
        }
        let (shared, id, pending) = (self.tailer.shared.clone(), self.open.id, self.pending);
        tokio::spawn(async move {
            for (end, rx) in pending {
                rx.wait().await;
                if let Some(e) = shared.positions.lock().get_mut(&id) {
                    e.offset = e.offset.max(end);
                }
                shared.dirty.store(true, Ordering::Release);
            }
        });
    }
}

impl Tailer {
    /// Makes `open`'s acknowledged offset the position the checkpoint writer saves.
    pub(super) fn record_position(&self, open: &Open) {
        let e = Entry {
            path: self.path.clone(),
            id: open.id,
            head: open.head,
            head_len: open.head_len,
            offset: open.acked,
        };
        self.shared.positions.lock().insert(open.id, e);
        self.shared.dirty.store(true, Ordering::Release);
    }
}
