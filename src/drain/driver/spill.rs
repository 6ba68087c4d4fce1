//! The spill task of a drain with a disk buffer: writes what producers staged
//! to its segments, replays segments into the memory queue when it has room
//! (oldest first, so order per source holds), deletes a segment once the
//! drain confirmed every record of it. A closed drain goes on replaying until
//! its buffer is delivered or the drain gives up; then, at shutdown, what was
//! not confirmed stays on disk for the next start, while a drain no route
//! names any more removes its directory (dropping, counted, what is left).
//!
//! Every file operation runs in `spawn_blocking`, with the segment store moved
//! in and back: the store has this one owner. It never talks to a receiver.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use tokio::task::spawn_blocking;
use tracing::{error, info, warn};

use super::Drain;
use super::events::reject;
use crate::ack::{self, BatchStatus};
use crate::drain::buffer::store::{Recovered, Store};
use crate::drain::buffer::{Buffer, codec};
use crate::drain::queue::PushError;
use crate::record::{Record, SharedRecord};

/// Records and bytes read back from disk at a time.
const READ_RECORDS: usize = 1000;
const READ_BYTES: usize = 1 << 20;

type Confirmation = Pin<Box<dyn Future<Output = (u64, BatchStatus)> + Send>>;

/// The task's own state beside the store.
struct Spill {
    drain: Arc<Drain>,
    buf: Arc<Buffer>,
    /// Read back, waiting for room in the queue (each carries its stretch's ack).
    pending: VecDeque<SharedRecord>,
    /// One per replayed stretch: resolves when the drain is done with it.
    acks: FuturesUnordered<Confirmation>,
    /// Whether the current write-failure episode was logged.
    failing: bool,
}

/// Runs the buffer of `drain` until the drain is closed and done with it.
pub(super) async fn run(drain: Arc<Drain>, buf: Arc<Buffer>) {
    let dir = buf.dir.clone();
    let seg_bytes = buf.cfg.segment_bytes;
    let mut store = match spawn_blocking(move || Store::open(&dir, seg_bytes)).await {
        Ok(Ok((store, found))) => {
            recovered(&drain, &buf, &found);
            Some(store)
        }
        Ok(Err(e)) => {
            error!(drain = %drain.id, dir = %buf.dir.display(), error = %e, "Cannot read the drain's disk buffer; what it holds stays there and records that do not fit the memory queue are dropped.");
            buf.recovered(0, 0);
            None
        }
        Err(_) => return,
    };
    let mut s = Spill {
        drain,
        buf,
        pending: VecDeque::new(),
        acks: FuturesUnordered::new(),
        failing: false,
    };
    let cap = s.drain.queue_max_records.max(2);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut closed_queue = false;
    loop {
        store = s.write_staged(store).await;
        // `keep` is set before the drain is closed: read after `closing`, it
        // is never missed by a shutdown.
        let closing = s.drain.closed.is_cancelled();
        let keep = s.buf.keep.load(Ordering::Acquire);
        store = s.replay(store, cap).await;
        if let Some(st) = store.as_mut() {
            // Every stretch the drain is done with, not one per turn: under a
            // steady load stretches are confirmed as fast as they are read.
            while let Some(Some((seq, status))) = s.acks.next().now_or_never() {
                st.settled(
                    seq,
                    status == BatchStatus::Rejected && s.buf.keep.load(Ordering::Acquire),
                );
            }
            // Deleting a file is quick; the store is this task's alone.
            match st.remove_drained() {
                Ok(freed) if freed > 0 => s.buf.release(freed),
                Ok(_) => {}
                Err(e) => warn!(drain = %s.drain.id, error = %e, "Cannot delete a delivered buffer segment."),
            }
        }
        s.gauges();
        let unread = store.as_ref().is_some_and(Store::unread);
        let empty = s.pending.is_empty() && s.buf.state.lock().staged.is_empty() && !unread;
        if closing && empty && !closed_queue {
            // Nothing more will be queued: the dispatcher may finish.
            s.drain.queue.close();
            closed_queue = true;
        }
        let done = (empty && s.acks.is_empty()) || s.drain.stop.is_cancelled();
        if closing && keep && done {
            // Shutdown: what was not confirmed stays on disk for the next start
            // (it is sent again then). Closed under the staging lock: what was
            // staged last is written now.
            store = s.write_staged(store).await;
            reject(&Vec::from(std::mem::take(&mut s.pending)));
            s.drain.queue.close();
            if let Some(mut st) = store.take() {
                let _ = spawn_blocking(move || st.seal()).await;
            }
            return;
        }
        if closing && !keep && done {
            s.retire(store).await;
            return;
        }
        let mark = s.drain.queue.len().min(cap / 2);
        let replaying = !s.pending.is_empty() || unread;
        tokio::select! {
            () = s.buf.wake.notified() => {}
            Some((seq, status)) = s.acks.next(), if !s.acks.is_empty() => {
                let keep = status == BatchStatus::Rejected && s.buf.keep.load(Ordering::Acquire);
                if let Some(st) = store.as_mut() {
                    st.settled(seq, keep);
                }
            }
            () = s.drain.queue.wait_below(mark.max(1)), if replaying && !closed_queue => {}
            _ = tick.tick() => {
                if let Some(mut st) = store.take() {
                    store = spawn_blocking(move || {
                        let _ = st.sync();
                        st
                    })
                    .await
                    .ok();
                }
            }
            () = s.drain.closed.cancelled(), if !closing => {}
            () = s.drain.stop.cancelled(), if closing && !s.drain.stop.is_cancelled() => {}
        }
    }
}

/// Counts and tells what the segments found at start held.
fn recovered(drain: &Drain, buf: &Buffer, found: &Recovered) {
    if found.torn > 0 {
        buf.stats.torn.add(found.torn);
        warn!(drain = %drain.id, segments = found.torn, "Cut a torn last write off the drain's disk buffer (a crash interrupted it); it is not replayed.");
    }
    if found.records > 0 {
        info!(drain = %drain.id, records = found.records, bytes = found.bytes, "Replaying the drain's disk buffer from an earlier run.");
    }
    buf.recovered(found.records, found.bytes);
}

impl Spill {
    /// Writes what producers staged; their acknowledgements are released once
    /// it is written. What cannot be written is dropped, counted and told.
    async fn write_staged(&mut self, store: Option<Store>) -> Option<Store> {
        let staged = {
            let mut st = self.buf.state.lock();
            if st.holding {
                return store;
            }
            st.staged_bytes = 0;
            std::mem::take(&mut st.staged)
        };
        if staged.is_empty() {
            return store;
        }
        self.buf.room.notify_waiters();
        let Some(mut store) = store else {
            self.lost(staged, "the buffer could not be read at start");
            return None;
        };
        let done = spawn_blocking(move || {
            let mut frames = Vec::with_capacity(staged.iter().map(|r| codec::frame_len(r)).sum());
            for r in &staged {
                codec::encode(r, &mut frames);
            }
            match store.append(&frames) {
                // Written: dropping the records releases their acknowledgements.
                Ok(()) => (store, Ok(())),
                Err(e) => (store, Err((e, staged))),
            }
        })
        .await;
        match done {
            Ok((store, Ok(()))) => {
                if std::mem::take(&mut self.failing) {
                    info!(drain = %self.drain.id, "The drain's disk buffer takes records again.");
                }
                Some(store)
            }
            Ok((store, Err((e, staged)))) => {
                self.lost(staged, &e.to_string());
                Some(store)
            }
            Err(_) => None,
        }
    }

    /// Records accepted for disk that could not be written: dropped (their
    /// acknowledgements rejected), counted and told to the drain like an overflow.
    fn lost(&mut self, staged: Vec<SharedRecord>, error: &str) {
        let bytes: u64 = staged.iter().map(|r| codec::frame_len(r) as u64).sum();
        if !std::mem::replace(&mut self.failing, true) {
            warn!(drain = %self.drain.id, %error, records = staged.len(), "Cannot write the drain's disk buffer; dropping what does not fit the memory queue (counted in logtrain_drain_buffer_dropped_total).");
        }
        self.buf.stats.dropped.add(staged.len() as u64);
        {
            let mut st = self.buf.state.lock();
            st.behind = st.behind.saturating_sub(staged.len() as u64);
        }
        self.buf.release(bytes);
        for r in &staged {
            self.drain.note_drop(r);
        }
    }

    /// Moves records read back into the queue while it has room, reading more
    /// from disk as needed.
    async fn replay(&mut self, mut store: Option<Store>, cap: usize) -> Option<Store> {
        loop {
            let unread = store.as_ref().is_some_and(Store::unread);
            self.feed(unread);
            if !self.pending.is_empty() || !unread || self.drain.queue.len() >= cap / 2 {
                return store;
            }
            let mut st = store.take().expect("unread implies a store");
            let (st, read) = spawn_blocking(move || {
                let r = st.read(READ_RECORDS, READ_BYTES);
                (st, r)
            })
            .await
            .ok()?;
            store = Some(st);
            match read {
                Ok(Some((seq, stretch))) => {
                    if stretch.corrupt {
                        self.buf.stats.torn.inc();
                        warn!(drain = %self.drain.id, segment = seq, "A buffer segment holds a record that cannot be read; the rest of that segment is skipped.");
                    }
                    self.queue_stretch(seq, stretch.records);
                }
                Ok(None) => return store,
                Err(e) => {
                    error!(drain = %self.drain.id, error = %e, "Cannot read the drain's disk buffer.");
                    return store;
                }
            }
        }
    }

    /// Gives a stretch read back its own acknowledgement and queues it for replay.
    fn queue_stretch(&mut self, seq: u64, records: Vec<Record>) {
        if records.is_empty() {
            return;
        }
        let (ack, rx) = ack::replay();
        self.buf.stats.replayed.add(records.len() as u64);
        for mut r in records {
            r.ack = Some(ack.clone());
            self.pending.push_back(Arc::new(r));
        }
        self.acks.push(Box::pin(async move { (seq, rx.wait().await) }));
    }

    /// Queues what was read back while the queue has room, under the lock
    /// producers decide by: once nothing is left behind, they queue directly.
    fn feed(&mut self, unread: bool) {
        let mut st = self.buf.state.lock();
        while let Some(r) = self.pending.pop_front() {
            match self.drain.queue.try_push(r) {
                Ok(()) => st.behind = st.behind.saturating_sub(1),
                Err(PushError::Full(r)) | Err(PushError::Closed(r)) => {
                    self.pending.push_front(r);
                    break;
                }
            }
        }
        if self.pending.is_empty() && st.staged.is_empty() && !unread {
            st.behind = 0;
        }
    }

    fn gauges(&self) {
        let st = self.buf.state.lock();
        self.buf.stats.bytes.set(st.used as i64);
        self.buf.stats.records.set(st.behind as i64);
    }

    /// A drain no route names any more is done (or gave up): what is left on
    /// disk is dropped, counted, and the directory removed.
    async fn retire(&mut self, store: Option<Store>) {
        let left = {
            let mut st = self.buf.state.lock();
            std::mem::take(&mut st.behind)
        };
        if left > 0 {
            warn!(drain = %self.drain.id, records = left, "Closed drain could not deliver its disk buffer in time (SHUTDOWN_TIMEOUT); dropping it.");
            self.drain.stats.dropped.add(left);
            self.buf.stats.dropped.add(left);
        }
        reject(&Vec::from(std::mem::take(&mut self.pending)));
        self.drain.queue.close();
        if let Some(mut st) = store {
            if let Ok(Ok(freed)) = spawn_blocking(move || st.remove_all()).await {
                self.buf.release(freed);
            }
        }
        self.gauges();
    }
}

#[cfg(test)]
mod tests;
