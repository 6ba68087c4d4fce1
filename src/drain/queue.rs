//! A drain's bounded queue: bounded in records and in bytes, many producers,
//! one consumer that takes whole batches under a single lock.
//!
//! Producers choose their policy per call: [`Queue::try_push`] fails at once when
//! full (push inputs drop and count), [`Queue::push`] and [`Queue::push_batch`]
//! wait for room (the file tailer applies backpressure; it hands over a whole
//! read's records under one lock per stretch that fits). The queue never grows
//! past its bounds.

use std::collections::VecDeque;
use std::pin::pin;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::record::SharedRecord;

/// The queue is full (the record is handed back) or closed.
#[derive(Debug)]
pub enum PushError {
    Full(SharedRecord),
    Closed(SharedRecord),
}

struct State {
    items: VecDeque<(SharedRecord, usize)>,
    bytes: usize,
    closed: bool,
}

/// Bounded multi-producer, single-consumer record queue.
pub struct Queue {
    state: Mutex<State>,
    not_empty: Notify,
    not_full: Notify,
    max_records: usize,
    max_bytes: usize,
}

impl Queue {
    pub fn new(max_records: usize, max_bytes: usize) -> Self {
        Queue {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(max_records.min(1024)),
                bytes: 0,
                closed: false,
            }),
            not_empty: Notify::new(),
            not_full: Notify::new(),
            max_records: max_records.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    fn fits(&self, st: &State, size: usize) -> bool {
        // An empty queue takes any one record, so a record larger than the byte
        // bound still moves (it is the drain's job to truncate or refuse it).
        st.items.is_empty() || (st.items.len() < self.max_records && st.bytes + size <= self.max_bytes)
    }

    /// Adds a record if there is room now.
    pub fn try_push(&self, rec: SharedRecord) -> Result<(), PushError> {
        let size = rec.size_hint();
        let mut st = self.state.lock();
        if st.closed {
            return Err(PushError::Closed(rec));
        }
        if !self.fits(&st, size) {
            return Err(PushError::Full(rec));
        }
        st.items.push_back((rec, size));
        st.bytes += size;
        let was_empty = st.items.len() == 1;
        drop(st);
        if was_empty {
            self.not_empty.notify_one();
        }
        Ok(())
    }

    /// Adds a record, waiting for room.
    pub async fn push(&self, mut rec: SharedRecord) -> Result<(), PushError> {
        loop {
            // Try before registering for a wake-up: registering takes the
            // notifier's lock, which an uncontended push should not pay.
            match self.try_push(rec) {
                Err(PushError::Full(r)) => rec = r,
                other => return other,
            }
            let mut wait = pin!(self.not_full.notified());
            wait.as_mut().enable();
            match self.try_push(rec) {
                Err(PushError::Full(r)) => rec = r,
                other => return other,
            }
            wait.await;
        }
    }

    /// Adds records in order, waiting for room whenever the queue is full.
    /// Returns how many were queued: all of them, unless the queue was closed
    /// first (the rest were not queued).
    pub async fn push_batch(&self, recs: &[SharedRecord]) -> usize {
        let mut done = 0;
        loop {
            match self.push_some(&recs[done..]) {
                Some(n) => done += n,
                None => return done,
            }
            if done == recs.len() {
                return done;
            }
            let mut wait = pin!(self.not_full.notified());
            wait.as_mut().enable();
            match self.push_some(&recs[done..]) {
                Some(n) => done += n,
                None => return done,
            }
            if done == recs.len() {
                return done;
            }
            wait.await;
        }
    }

    /// Waits until fewer than `records` are queued (or the queue is closed).
    pub async fn wait_below(&self, records: usize) {
        loop {
            let mut wait = pin!(self.not_full.notified());
            wait.as_mut().enable();
            {
                let st = self.state.lock();
                if st.closed || st.items.len() < records {
                    return;
                }
            }
            wait.await;
        }
    }

    /// Queues the longest prefix of `recs` that fits now, under one lock.
    /// `None` when the queue is closed.
    pub fn push_some(&self, recs: &[SharedRecord]) -> Option<usize> {
        let mut st = self.state.lock();
        if st.closed {
            return None;
        }
        let was_empty = st.items.is_empty();
        let mut n = 0;
        for rec in recs {
            let size = rec.size_hint();
            if !self.fits(&st, size) {
                break;
            }
            st.items.push_back((rec.clone(), size));
            st.bytes += size;
            n += 1;
        }
        drop(st);
        if was_empty && n > 0 {
            self.not_empty.notify_one();
        }
        Some(n)
    }

    /// Waits until at least one record is queued, then moves up to `max_records`
    /// records / `max_bytes` bytes (at least one) into `out`. Returns false when the
    /// queue is closed and empty.
    pub async fn pop_batch(&self, max_records: usize, max_bytes: usize, out: &mut Vec<SharedRecord>) -> bool {
        loop {
            let mut wait = pin!(self.not_empty.notified());
            wait.as_mut().enable();
            if let Some(more) = self.try_pop_batch(max_records, max_bytes, out) {
                return more;
            }
            wait.await;
        }
    }

    /// Non-blocking [`Queue::pop_batch`]: `None` when empty and open.
    pub fn try_pop_batch(&self, max_records: usize, max_bytes: usize, out: &mut Vec<SharedRecord>) -> Option<bool> {
        let mut st = self.state.lock();
        if st.items.is_empty() {
            return if st.closed { Some(false) } else { None };
        }
        let mut bytes = 0;
        let mut n = 0;
        while let Some((_, size)) = st.items.front() {
            if n > 0 && (n >= max_records || bytes + size > max_bytes) {
                break;
            }
            let (rec, size) = st.items.pop_front().expect("front exists");
            bytes += size;
            n += 1;
            out.push(rec);
        }
        st.bytes -= bytes;
        drop(st);
        self.not_full.notify_waiters();
        Some(true)
    }

    /// Stops accepting records; queued ones can still be popped.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.not_empty.notify_waiters();
        self.not_empty.notify_one();
        self.not_full.notify_waiters();
    }

    /// Removes every queued record (giving up at the shutdown deadline, or
    /// moving them to a disk buffer).
    pub fn take_all(&self) -> Vec<SharedRecord> {
        let mut st = self.state.lock();
        st.bytes = 0;
        let all = st.items.drain(..).map(|(r, _)| r).collect();
        drop(st);
        self.not_full.notify_waiters();
        all
    }

    pub fn len(&self) -> usize {
        self.state.lock().items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> usize {
        self.state.lock().bytes
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{InputKind, Record};
    use std::sync::Arc;
    use std::time::Duration;

    fn rec(n: usize) -> SharedRecord {
        Arc::new(Record::new(InputKind::Internal, "h", "x".repeat(n)))
    }

    #[tokio::test]
    async fn bounded_by_records_and_bytes() {
        let q = Queue::new(3, 10_000);
        for _ in 0..3 {
            q.try_push(rec(1)).unwrap();
        }
        assert!(matches!(q.try_push(rec(1)), Err(PushError::Full(_))));
        let q = Queue::new(100, 300);
        q.try_push(rec(100)).unwrap();
        assert!(matches!(q.try_push(rec(200)), Err(PushError::Full(_))));
        // An oversized record is still accepted by an empty queue.
        let q = Queue::new(100, 10);
        q.try_push(rec(1000)).unwrap();
        assert!(matches!(q.try_push(rec(1)), Err(PushError::Full(_))));
    }

    #[tokio::test]
    async fn batches_in_order_and_close_drains() {
        let q = Queue::new(100, 1 << 20);
        for i in 0..10 {
            q.try_push(rec(i)).unwrap();
        }
        let mut out = Vec::new();
        assert!(q.pop_batch(4, usize::MAX, &mut out).await);
        assert_eq!(
            out.iter().map(|r| r.message.len()).collect::<Vec<_>>(),
            vec![0, 1, 2, 3]
        );
        q.close();
        assert!(matches!(q.try_push(rec(1)), Err(PushError::Closed(_))));
        out.clear();
        assert!(q.pop_batch(100, usize::MAX, &mut out).await);
        assert_eq!(out.len(), 6);
        assert!(!q.pop_batch(100, usize::MAX, &mut out).await);
    }

    #[tokio::test]
    async fn push_batch_keeps_order_waits_for_room_and_stops_at_close() {
        let q = Arc::new(Queue::new(4, 1 << 20));
        let recs: Vec<SharedRecord> = (0..10).map(rec).collect();
        let q2 = q.clone();
        let pusher = tokio::spawn(async move { q2.push_batch(&recs).await });
        let mut got = Vec::new();
        while got.len() < 10 {
            let mut out = Vec::new();
            assert!(q.pop_batch(3, usize::MAX, &mut out).await);
            assert!(q.len() <= 4);
            got.extend(out.iter().map(|r| r.message.len()));
        }
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert_eq!(pusher.await.unwrap(), 10);

        let recs: Vec<SharedRecord> = (0..6).map(rec).collect();
        let q2 = q.clone();
        let pusher = tokio::spawn(async move { q2.push_batch(&recs).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(q.len(), 4);
        q.close();
        assert_eq!(pusher.await.unwrap(), 4);
    }

    #[tokio::test]
    async fn push_waits_for_room() {
        let q = Arc::new(Queue::new(1, 1 << 20));
        q.try_push(rec(1)).unwrap();
        let q2 = q.clone();
        let pusher = tokio::spawn(async move { q2.push(rec(2)).await.is_ok() });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!pusher.is_finished());
        let mut out = Vec::new();
        q.pop_batch(10, usize::MAX, &mut out).await;
        assert!(pusher.await.unwrap());
        assert_eq!(q.len(), 1);
    }
}
