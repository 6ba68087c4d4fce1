//! The [`Drain`] handle: what the routing table points at and inputs queue
//! records into (offer, send, wait for room), how a drain is closed, given up
//! on or abandoned, and its counters.
//!
//! It never talks to a receiver: the dispatcher and its workers do, reading
//! the queue and state kept here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::DriverConfig;
use super::events::reject;
use crate::drain::buffer::{Buffer, Offer};
use crate::drain::process::{Gate, Verdict};
use crate::drain::queue::{PushError, Queue};
use crate::encode::kubernetes;
use crate::encode::rfc5424::valid_sd;
use crate::record::{PodRef, Record, SharedRecord};
use crate::telemetry::{self, Counter, Gauge, Histogram};
use crate::time::Timestamp;

/// Per-drain metrics, looked up once.
pub(super) struct Stats {
    pub(super) queued: Counter,
    pub(super) sent: Counter,
    pub(super) sent_bytes: Counter,
    pub(super) dropped: Counter,
    pub(super) rejected: Counter,
    pub(super) truncated: Counter,
    pub(super) errors: Counter,
    pub(super) retries: Counter,
    pub(super) denied: Counter,
    pub(super) filtered: Counter,
    pub(super) rate_limited: Counter,
    pub(super) queue_records: Gauge,
    pub(super) queue_bytes: Gauge,
    pub(super) connections: Gauge,
    pub(super) send_seconds: Histogram,
    pub(super) batch_records: Histogram,
    pub(super) lag: Histogram,
}

impl Stats {
    fn new(id: &str) -> Self {
        let l = [("drain", id)];
        Stats {
            queued: telemetry::counter("logtrain_drain_queued_total", &l),
            sent: telemetry::counter("logtrain_drain_sent_total", &l),
            sent_bytes: telemetry::counter("logtrain_drain_sent_bytes_total", &l),
            dropped: telemetry::counter("logtrain_drain_dropped_total", &l),
            rejected: telemetry::counter("logtrain_drain_rejected_total", &l),
            truncated: telemetry::counter("logtrain_drain_truncated_total", &l),
            errors: telemetry::counter("logtrain_drain_errors_total", &l),
            retries: telemetry::counter("logtrain_drain_retries_total", &l),
            denied: telemetry::counter("logtrain_drain_denied_total", &l),
            filtered: telemetry::counter("logtrain_drain_filtered_total", &l),
            rate_limited: telemetry::counter("logtrain_drain_rate_limited_total", &l),
            queue_records: telemetry::gauge("logtrain_drain_queue_records", &l),
            queue_bytes: telemetry::gauge("logtrain_drain_queue_bytes", &l),
            connections: telemetry::gauge("logtrain_drain_connections", &l),
            send_seconds: telemetry::histogram("logtrain_drain_send_seconds", &l),
            batch_records: telemetry::histogram("logtrain_drain_batch_records", &l),
            lag: telemetry::histogram("logtrain_delivery_lag_seconds", &[]),
        }
    }
}

/// How long a producer that may wait (the tailer) waits for room in a full
/// queue before its records go to the disk buffer.
pub const SPILL_AFTER: Duration = Duration::from_millis(100);

/// An overflow episode: how many records were dropped since when.
#[derive(Clone, Copy, Debug)]
pub(super) struct Dropped {
    pub(super) count: u64,
    pub(super) since: Timestamp,
}

/// A running drain: what the routing table points at. Cheap to share.
pub struct Drain {
    pub(super) id: Arc<str>,
    pub(super) queue: Queue,
    pub(super) stats: Stats,
    pub(super) dropped: Mutex<Option<Dropped>>,
    pub(super) failing: AtomicBool,
    /// When the current failure episode began (set and cleared with `failing`).
    pub(super) failing_since: Mutex<Option<Timestamp>>,
    /// Records get this APP-NAME here (a tagged route); see [`Drain::relabel`].
    pub(super) app_name: Option<Bytes>,
    /// The drain's filters and rate (`severity=`, `rate=`, …); `None` takes
    /// every record.
    pub(super) gate: Option<Gate>,
    /// `sd=kubernetes`: records of a pod get its metadata as an SD element
    /// here, with these labels; see [`Drain::relabel`].
    pub(super) sd_labels: Option<Vec<String>>,
    /// Refusing batches for good (4xx): logged once until a batch is accepted.
    pub(super) refusing: AtomicBool,
    pub(super) in_flight: AtomicUsize,
    pub(super) finished: AtomicBool,
    pub(super) queue_max_records: usize,
    /// Cancelled by [`Drain::close`].
    pub(super) closed: CancellationToken,
    /// Cancelled when a closed drain gives up: workers stop waiting on the
    /// receiver and reject what they hold.
    pub(super) stop: CancellationToken,
    /// While every address of a tenant's drain is denied: when to look again.
    pub(super) denied_until: Mutex<Option<Instant>>,
    /// Records it held when it gave up (0: it did not).
    pub(super) given_up: AtomicUsize,
    /// Its disk buffer (`DRAIN_BUFFER=disk`): where records go while the
    /// queue is full, and behind which new ones wait until it is replayed.
    pub(super) buffer: Option<Arc<Buffer>>,
    /// Records go from memory to the disk buffer (see `evacuate`); not again before.
    pub(super) evacuating: AtomicBool,
    pub(super) evacuate_not_before: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drain").field("id", &self.id).finish()
    }
}

impl Drain {
    /// A drain with an empty queue, not driven yet (see [`super::spawn`]).
    pub(super) fn new(id: &str, cfg: &DriverConfig, buffer: Option<Arc<Buffer>>) -> Self {
        let stats = Stats::new(id);
        let p = cfg.processing.as_deref();
        Drain {
            id: Arc::from(id),
            queue: Queue::new(cfg.queue_records, cfg.queue_bytes),
            gate: p.and_then(|p| Gate::new(p, stats.filtered.clone(), stats.rate_limited.clone())),
            sd_labels: p.filter(|p| p.sd_kubernetes).map(|p| p.labels.clone()),
            stats,
            dropped: Mutex::new(None),
            failing: AtomicBool::new(false),
            failing_since: Mutex::new(None),
            app_name: cfg.app_name.clone(),
            refusing: AtomicBool::new(false),
            in_flight: AtomicUsize::new(0),
            finished: AtomicBool::new(false),
            queue_max_records: cfg.queue_records,
            closed: CancellationToken::new(),
            stop: CancellationToken::new(),
            denied_until: Mutex::new(None),
            given_up: AtomicUsize::new(0),
            buffer,
            evacuating: AtomicBool::new(false),
            evacuate_not_before: Mutex::new(None),
        }
    }

    /// The drain's credential-free id (also its metric label).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Queues a record if there is room; otherwise drops it, counts the drop
    /// and marks its acknowledgement rejected. Returns false when it was
    /// dropped (a record the drain's filters or rate leave out is done for
    /// this drain: true, counted apart, never queued).
    pub fn offer(&self, rec: &SharedRecord) -> bool {
        if !self.admits(rec) {
            return true;
        }
        match &self.buffer {
            None => self.count_push(self.queue.try_push(self.relabel(rec, &mut None))),
            Some(b) => match b.push(
                &self.queue,
                self.closed.is_cancelled(),
                true,
                self.relabel(rec, &mut None),
            ) {
                Offer::Queued | Offer::Staged => {
                    self.stats.queued.inc();
                    true
                }
                Offer::Full(r) | Offer::QueueFull(r) | Offer::Closed(r) => {
                    self.note_drop(&r);
                    false
                }
                Offer::OverBudget(r) => {
                    self.over_budget(b, &r);
                    false
                }
            },
        }
    }

    /// Whether the drain's gate (if any) takes `rec`.
    fn admits(&self, rec: &SharedRecord) -> bool {
        self.gate.as_ref().is_none_or(|g| g.admit(rec) == Verdict::Take)
    }

    /// For a producer that may wait (the tailer): queues `rec`, waiting up
    /// to [`SPILL_AFTER`] for room in a full queue before it spills to disk
    /// (a drain that is merely slower than the tailer then keeps up from
    /// memory, and a dead one spills after that moment), and waits while the
    /// disk budget is spent (logged once per episode; nothing is dropped). Once closed, the record is dropped and counted.
    async fn buffered(&self, b: &Buffer, mut rec: SharedRecord) -> bool {
        let spill_at = Instant::now() + SPILL_AFTER;
        loop {
            let spill = Instant::now() >= spill_at;
            match b.push(&self.queue, self.closed.is_cancelled(), spill, rec) {
                Offer::Queued | Offer::Staged => {
                    self.stats.queued.inc();
                    return true;
                }
                Offer::QueueFull(r) => {
                    rec = r;
                    let _ = tokio::time::timeout_at(spill_at, self.queue.wait_below(self.queue_max_records)).await;
                }
                Offer::Full(r) => {
                    rec = r;
                    b.wait_room().await;
                }
                Offer::Closed(r) => {
                    self.note_drop(&r);
                    return false;
                }
                Offer::OverBudget(r) => {
                    rec = r;
                    if !b.over_logged.swap(true, Ordering::AcqRel) {
                        warn!(drain = %self.id, "Drain's disk buffer is at its budget (DRAIN_BUFFER_MAX_BYTES or DRAIN_BUFFER_TOTAL_BYTES); the tailer waits for it, as without a disk buffer.");
                    }
                    // Segments deleted wake us; another drain's release of the
                    // node's budget does not, hence the timeout.
                    let _ = timeout(Duration::from_millis(100), b.wait_release()).await;
                }
            }
        }
    }

    /// A record beyond the disk budget: dropped like an overflow (told to the
    /// drain as one), counted, logged once per episode.
    fn over_budget(&self, b: &Buffer, rec: &SharedRecord) {
        b.stats.dropped.inc();
        if !b.over_logged.swap(true, Ordering::AcqRel) {
            warn!(drain = %self.id, "Drain's disk buffer is at its budget (DRAIN_BUFFER_MAX_BYTES or DRAIN_BUFFER_TOTAL_BYTES); dropping records until it drains (counted in logtrain_drain_buffer_dropped_total).");
        }
        self.note_drop(rec);
    }

    /// Whether a record could be queued now without dropping (for inputs that
    /// answer their sender, e.g. HTTP 503 before accepting).
    pub fn has_room(&self) -> bool {
        match &self.buffer {
            Some(b) => !self.closed.is_cancelled() && b.has_room(),
            None => !self.queue.is_closed() && self.queue.len() < self.queue_capacity(),
        }
    }

    /// Whether a stream input need not wait: [`Drain::has_room`], except that
    /// a buffered drain still delivering from memory counts only its queue
    /// (see [`Drain::wait_for_room`]).
    pub fn keeps_up(&self) -> bool {
        match &self.buffer {
            Some(b) if b.in_memory() => !self.closed.is_cancelled() && self.queue.len() < self.queue_capacity(),
            _ => self.has_room(),
        }
    }

    /// Waits, at most `patience`, until [`Drain::has_room`] holds, so a stream
    /// input can stop reading its socket instead of dropping. A drain that is
    /// already dropping (its receiver gone or far too slow) is not waited for.
    /// Returns whether it has room.
    pub async fn wait_for_room(&self, patience: Duration) -> bool {
        if let Some(b) = &self.buffer {
            // A receiver merely slower than the stream is waited for a moment,
            // as the tailer waits, so the stream slows instead of every record
            // going through the disk.
            if b.in_memory() && self.queue.len() >= self.queue_capacity() && self.dropped.lock().is_none() {
                let _ = timeout(patience.min(SPILL_AFTER), self.queue.wait_below(self.queue_capacity())).await;
            }
        }
        if self.has_room() || self.dropped.lock().is_some() {
            return self.has_room();
        }
        if let Some(b) = &self.buffer {
            let _ = timeout(patience, b.wait_room()).await;
            return self.has_room();
        }
        let _ = timeout(patience, self.queue.wait_below(self.queue_capacity())).await;
        self.has_room()
    }

    fn queue_capacity(&self) -> usize {
        // Conservative: half the record bound, so a check-then-offer rarely races into a drop.
        self.queue_max_records / 2
    }

    /// Queues a record, waiting while the queue is full (backpressure).
    /// Fails only when the drain has been closed; the record is then rejected.
    pub async fn send(&self, rec: SharedRecord) -> bool {
        if !self.admits(&rec) {
            return true;
        }
        if let Some(b) = &self.buffer {
            return self.buffered(b, self.relabel(&rec, &mut None)).await;
        }
        self.count_push(self.queue.push(self.relabel(&rec, &mut None)).await)
    }

    /// Counts a record queued, or drops it (see [`Drain::offer`]). Returns
    /// whether it was queued.
    fn count_push(&self, pushed: Result<(), PushError>) -> bool {
        match pushed {
            Ok(()) => {
                self.stats.queued.inc();
                true
            }
            Err(PushError::Full(r)) | Err(PushError::Closed(r)) => {
                self.note_drop(&r);
                false
            }
        }
    }

    /// Queues records in order, waiting while the queue is full (backpressure),
    /// under one lock per stretch that fits. Records the drain can no longer take
    /// (it was closed) are rejected and counted as [`Drain::send`] does; those
    /// its gate leaves out are not queued (and not held: their
    /// acknowledgements do not wait on this drain). Returns how many were queued.
    pub async fn send_batch(&self, recs: &[SharedRecord]) -> usize {
        let admitted: Vec<SharedRecord>;
        let recs = match &self.gate {
            None => recs,
            Some(g) => {
                admitted = g.admit_all(recs);
                &admitted
            }
        };
        let relabelled: Vec<SharedRecord>;
        let recs = match (&self.app_name, &self.sd_labels) {
            (None, None) => recs,
            _ => {
                // A batch is mostly one file's: one SD element for its pod.
                let mut sd = None;
                relabelled = recs.iter().map(|r| self.relabel(r, &mut sd)).collect();
                &relabelled
            }
        };
        if let Some(b) = &self.buffer {
            // What the queue takes at once, under one lock; the rest one by one
            // (to disk, in order, once the queue is full).
            let mut queued = if self.closed.is_cancelled() {
                0
            } else {
                b.push_prefix(&self.queue, recs)
            };
            self.stats.queued.add(queued as u64);
            for r in &recs[queued..] {
                queued += usize::from(self.buffered(b, r.clone()).await);
            }
            return queued;
        }
        let queued = self.queue.push_batch(recs).await;
        self.stats.queued.add(queued as u64);
        for r in &recs[queued..] {
            self.note_drop(r);
        }
        queued
    }

    /// The record as this drain sends it: shared as is, or a copy with the
    /// route's APP-NAME (a tagged route) and, for `sd=kubernetes`, the pod's
    /// metadata added to its structured data. A copy carries the same
    /// acknowledgement, so delivery is still told to the record's input.
    /// `last` keeps the SD element last made, for the next record of the
    /// same pod.
    fn relabel(&self, rec: &SharedRecord, last: &mut Option<(Arc<PodRef>, Bytes)>) -> SharedRecord {
        let rename = self.app_name.as_ref().filter(|n| rec.app_name != **n);
        let sd = self.sd_labels.as_ref().zip(rec.origin.pod.as_ref());
        if rename.is_none() && sd.is_none() {
            return rec.clone();
        }
        let mut r = Record::clone(rec);
        if let Some(name) = rename {
            r.app_name = name.clone();
        }
        if let Some((labels, pod)) = sd {
            let element = match last {
                Some((p, e)) if Arc::ptr_eq(p, pod) => e.clone(),
                _ => {
                    let mut e = Vec::with_capacity(128);
                    kubernetes::sd_element(pod, labels, &mut e);
                    let e = Bytes::from(e);
                    *last = Some((pod.clone(), e.clone()));
                    e
                }
            };
            r.structured_data = if valid_sd(&r.structured_data) {
                let mut data = Vec::with_capacity(r.structured_data.len() + element.len());
                data.extend_from_slice(&r.structured_data);
                data.extend_from_slice(&element);
                Bytes::from(data)
            } else {
                element
            };
        }
        Arc::new(r)
    }

    pub(super) fn note_drop(&self, rec: &SharedRecord) {
        if let Some(ack) = &rec.ack {
            ack.reject();
        }
        self.stats.dropped.inc();
        let mut d = self.dropped.lock();
        match d.as_mut() {
            Some(ep) => ep.count += 1,
            None => {
                *d = Some(Dropped {
                    count: 1,
                    since: Timestamp::now(),
                });
                warn!(drain = %self.id, "Drain queue is full; dropping records until it drains.");
            }
        }
    }

    /// Records queued or being delivered.
    pub fn held(&self) -> usize {
        self.queue.len() + self.in_flight.load(Ordering::Acquire)
    }

    /// Stops accepting records; what is queued is still delivered, within
    /// [`DriverConfig::give_up_after`].
    pub fn close(&self) {
        match &self.buffer {
            // The spill task closes the queue once nothing is left to replay.
            Some(b) => {
                b.close();
                self.closed.cancel();
            }
            None => {
                self.queue.close();
                self.closed.cancel();
            }
        }
    }

    /// Closes the drain at shutdown: it replays its disk buffer while the
    /// deadline allows; what was not confirmed stays there for the next start
    /// (a drain retired by the routes removes its buffer instead).
    pub fn close_for_shutdown(&self) {
        if let Some(b) = &self.buffer {
            b.keep.store(true, Ordering::Release);
        }
        self.close();
    }

    /// Whether records that do not fit its queue go to disk.
    pub fn buffered_on_disk(&self) -> bool {
        self.buffer.is_some()
    }

    /// Resolves `after` the drain was closed.
    pub(super) async fn closed_for(&self, after: Duration) {
        self.closed.cancelled().await;
        sleep(after).await;
    }

    /// A closed drain could not deliver what it holds within `after`: drops
    /// it all (acknowledgements rejected, so inputs move on; counted as
    /// dropped) and stops the workers waiting on the receiver.
    pub(super) fn give_up(&self, after: Duration) {
        self.stop.cancel();
        let queued = self.queue.take_all();
        let held = queued.len() + self.in_flight.load(Ordering::Acquire);
        self.given_up.store(held, Ordering::Release);
        warn!(drain = %self.id, records = held, after = ?after, "Closed drain could not deliver what it holds in time (SHUTDOWN_TIMEOUT); dropping it.");
        self.stats.dropped.add(queued.len() as u64);
        reject(&queued);
    }

    /// Records the drain held when, closed, it gave up on its receiver (0
    /// if it did not give up).
    pub fn given_up(&self) -> usize {
        self.given_up.load(Ordering::Acquire)
    }

    /// Whether the drain's host was found denied and is not to be looked at again yet.
    pub(super) fn denied_now(&self) -> bool {
        matches!(*self.denied_until.lock(), Some(until) if Instant::now() < until)
    }

    /// Whether the driver and all its connections have finished (queue closed and
    /// every record delivered or given up).
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Records dropped by overflow so far.
    pub fn dropped_total(&self) -> u64 {
        self.stats.dropped.get()
    }

    /// When the drain began failing (connect, write or response errors, retried
    /// with backoff), while it still is; `None` while it delivers.
    pub fn failing_since(&self) -> Option<Timestamp> {
        *self.failing_since.lock()
    }

    /// Records delivered so far.
    pub fn sent_total(&self) -> u64 {
        self.stats.sent.get()
    }

    /// Gives up every queued record (shutdown deadline passed); returns how many.
    pub fn abandon(&self) -> usize {
        let left = self.queue.take_all();
        reject(&left);
        left.len() + self.in_flight.load(Ordering::Acquire)
    }
}
