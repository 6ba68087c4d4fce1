//! The generic drain driver: every drain is a [`Sink`] (encoder + transport)
//! run by this driver, which owns the bounded queue, batching, the connection
//! pool, timeouts, jittered exponential backoff and loss accounting.
//!
//! Shape: producers push into the drain's [`Queue`]; one dispatcher task pops
//! batches and splits them across connection workers by rendezvous hashing of
//! each record's source key, so a source sticks to one connection and keeps its
//! order. The pool grows while the queue is deep *and* the receiver is what is
//! slow (every worker spent at least `grow_after` on its last or current batch):
//! when encoding is the bottleneck, more connections would only hold more
//! records in memory. It shrinks when workers idle.
//! A worker retries a failed batch with backoff while new records wait in the
//! queue; when the queue is full, producers either wait (the tailer) or drop and
//! count (push inputs), and the drain is later told how many were dropped.
//! A tenant's drain whose host resolves only to denied addresses
//! ([`SinkError::Denied`]) rejects its records without connecting, and checks
//! its host again now and then. A closed drain flushes what it holds, but gives
//! up on it (rejected, counted as dropped) once `give_up_after` has passed, so
//! a dead receiver never holds a retired drain, or an input's checkpoint, for
//! ever; when it has finished, its metric series are removed.
//! Nothing here knows about a particular protocol.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::queue::{PushError, Queue};
use crate::backoff::Backoff;
use crate::record::{InputKind, Record, Severity, SharedRecord};
use crate::telemetry::{self, Counter, Gauge};
use crate::time::Timestamp;

/// Why a batch did not go through.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Could not open a connection (refused, unreachable, DNS, TLS handshake I/O).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The peer's certificate was refused (wrong CA, expired, wrong name).
    #[error("certificate refused: {0}")]
    Certificate(String),
    /// The connection broke while writing or reading.
    #[error("connection lost: {0}")]
    Io(#[from] std::io::Error),
    /// The receiver answered with a status worth retrying (429, 5xx).
    #[error("receiver answered {status}{}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    Unavailable { status: u16, retry_after: Option<Duration> },
    /// The receiver refused the batch for good (4xx other than 429, malformed):
    /// retrying cannot help.
    #[error("receiver refused the batch: {0}")]
    Refused(String),
    /// The receiver refused the batch as too large (HTTP 413): the same batch
    /// would be refused again, but its halves may pass (the driver tries them).
    #[error("receiver refused the batch as too large: {0}")]
    TooLarge(String),
    /// Every address the host of a tenant's drain resolves to is in
    /// `DRAIN_DENY_NETWORKS`: nothing was connected, and retrying soon cannot help.
    #[error("every address of {host} is denied: {denied}")]
    Denied {
        host: String,
        #[source]
        denied: crate::egress::Denied,
    },
}

impl SinkError {
    /// Whether sending the same batch again may succeed.
    pub fn retryable(&self) -> bool {
        !matches!(
            self,
            SinkError::Refused(_) | SinkError::TooLarge(_) | SinkError::Denied { .. }
        )
    }

    /// Whether the connection can be reused after this error.
    pub fn keeps_connection(&self) -> bool {
        matches!(
            self,
            SinkError::Unavailable { .. } | SinkError::Refused(_) | SinkError::TooLarge(_)
        )
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            SinkError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// What happened to a batch that was (at least partly) accepted.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Encoded bytes written.
    pub bytes: u64,
    /// Indexes (into the batch) of records to send again (e.g. per-item 429).
    pub retry: Vec<usize>,
    /// Indexes of records refused for good (e.g. mapping errors).
    pub rejected: Vec<usize>,
    /// Records that had to be truncated to fit.
    pub truncated: u64,
    /// How long the receiver asked us to wait before retrying.
    pub retry_after: Option<Duration>,
}

/// A transport plus encoder. The driver calls `connect` once per pooled
/// connection and `send` with batches; sinks never queue or retry on their own.
pub trait Sink: Send + Sync + 'static {
    type Conn: Send + 'static;

    /// Opens one connection.
    fn connect(&self) -> impl Future<Output = Result<Self::Conn, SinkError>> + Send;

    /// Encodes and delivers a batch on `conn`.
    fn send(
        &self,
        conn: &mut Self::Conn,
        batch: &[SharedRecord],
    ) -> impl Future<Output = Result<Delivery, SinkError>> + Send;

    /// Flushes and closes a connection that is being retired.
    fn close(&self, conn: Self::Conn) -> impl Future<Output = ()> + Send {
        async move { drop(conn) }
    }

    /// Adjusts driver settings to the transport (batch size, linger, pool size).
    fn tune(&self, _cfg: &mut DriverConfig) {}

    /// Whether the receiver never acknowledges what it got (syslog over TCP or
    /// TLS): a write that succeeded may still be lost if the receiver goes away
    /// before reading it. The driver then holds each written batch until
    /// [`Sink::healthy`] shows the connection alive after it, and sends it again
    /// on a new connection if not, so such a loss becomes at worst a duplicate.
    fn unacknowledged(&self) -> bool {
        false
    }

    /// Whether `conn` is still alive (the receiver has not closed or reset it).
    fn healthy(&self, _conn: &mut Self::Conn) -> impl Future<Output = bool> + Send {
        async { true }
    }
}

/// How long a batch written on an unacknowledged transport is held, at most,
/// before the connection is checked and the batch released as delivered.
pub const CONFIRM_AFTER: Duration = Duration::from_millis(200);

/// Driver settings; defaults in one place, overridable from configuration.
#[derive(Clone, Debug)]
pub struct DriverConfig {
    /// Records a drain's queue holds at most.
    pub queue_records: usize,
    /// Bytes a drain's queue holds at most.
    pub queue_bytes: usize,
    /// Connections per drain at most (logtrain used 40).
    pub max_connections: usize,
    /// Records per batch at most.
    pub batch_records: usize,
    /// Bytes per batch at most (before encoding).
    pub batch_bytes: usize,
    /// How long to wait for a batch to fill before sending it anyway.
    pub linger: Duration,
    pub connect_timeout: Duration,
    /// Deadline for one `send` (write plus any response).
    pub send_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// A connection unused this long is closed (the last one stays).
    pub idle_timeout: Duration,
    /// Queue depth (records) above which another connection is opened.
    pub grow_above: usize,
    /// ... but only once every connection spent at least this long on its last
    /// or current batch (zero: on queue depth alone).
    pub grow_after: Duration,
    /// Every record gets this APP-NAME at this drain (a tagged route).
    pub app_name: Option<Bytes>,
    /// A closed drain still holding records this long after it was closed
    /// gives up on them (its receiver is down): `SHUTDOWN_TIMEOUT`.
    pub give_up_after: Duration,
    /// How long a tenant's drain whose every address was denied rejects its
    /// records before it resolves its host again.
    pub denied_recheck: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            queue_records: 10_000,
            queue_bytes: 8 << 20,
            max_connections: 40,
            batch_records: 1_000,
            batch_bytes: 1 << 20,
            linger: Duration::ZERO,
            connect_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            grow_above: 2_000,
            grow_after: Duration::from_millis(10),
            app_name: None,
            give_up_after: Duration::from_secs(25),
            denied_recheck: Duration::from_secs(60),
        }
    }
}

/// Per-drain metrics, looked up once.
struct Stats {
    queued: Counter,
    sent: Counter,
    sent_bytes: Counter,
    dropped: Counter,
    rejected: Counter,
    truncated: Counter,
    errors: Counter,
    retries: Counter,
    denied: Counter,
    queue_records: Gauge,
    queue_bytes: Gauge,
    connections: Gauge,
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
            queue_records: telemetry::gauge("logtrain_drain_queue_records", &l),
            queue_bytes: telemetry::gauge("logtrain_drain_queue_bytes", &l),
            connections: telemetry::gauge("logtrain_drain_connections", &l),
        }
    }
}

/// An overflow episode: how many records were dropped since when.
#[derive(Clone, Copy, Debug)]
struct Dropped {
    count: u64,
    since: Timestamp,
}

/// A running drain: what the routing table points at. Cheap to share.
pub struct Drain {
    id: Arc<str>,
    queue: Queue,
    stats: Stats,
    dropped: Mutex<Option<Dropped>>,
    failing: AtomicBool,
    /// Records get this APP-NAME here (a tagged route); see [`Drain::relabel`].
    app_name: Option<Bytes>,
    /// Refusing batches for good (4xx): logged once until a batch is accepted.
    refusing: AtomicBool,
    in_flight: AtomicUsize,
    finished: AtomicBool,
    queue_max_records: usize,
    /// Cancelled by [`Drain::close`].
    closed: CancellationToken,
    /// Cancelled when a closed drain gives up: workers stop waiting on the
    /// receiver and reject what they hold.
    stop: CancellationToken,
    /// While every address of a tenant's drain is denied: when to look again.
    denied_until: Mutex<Option<Instant>>,
    /// Records it held when it gave up (0: it did not).
    given_up: AtomicUsize,
}

impl std::fmt::Debug for Drain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drain").field("id", &self.id).finish()
    }
}

impl Drain {
    /// The drain's credential-free id (also its metric label).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Queues a record if there is room; otherwise drops it, counts the drop
    /// and marks its acknowledgement rejected. Returns whether it was queued.
    pub fn offer(&self, rec: &SharedRecord) -> bool {
        match self.queue.try_push(self.relabel(rec)) {
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

    /// Whether a record could be queued now without dropping (for inputs that
    /// answer their sender, e.g. HTTP 503 before accepting).
    pub fn has_room(&self) -> bool {
        !self.queue.is_closed() && self.queue.len() < self.queue_capacity()
    }

    /// Waits, at most `patience`, until [`Drain::has_room`] holds, so a stream
    /// input can stop reading its socket instead of dropping. A drain that is
    /// already dropping (its receiver gone or far too slow) is not waited for.
    /// Returns whether it has room.
    pub async fn wait_for_room(&self, patience: Duration) -> bool {
        if self.has_room() || self.dropped.lock().is_some() {
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
        match self.queue.push(self.relabel(&rec)).await {
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
    /// (it was closed) are rejected and counted as [`Drain::send`] does. Returns
    /// how many were queued.
    pub async fn send_batch(&self, recs: &[SharedRecord]) -> usize {
        let relabelled: Vec<SharedRecord>;
        let recs = match &self.app_name {
            None => recs,
            Some(_) => {
                relabelled = recs.iter().map(|r| self.relabel(r)).collect();
                &relabelled
            }
        };
        let queued = self.queue.push_batch(recs).await;
        self.stats.queued.add(queued as u64);
        for r in &recs[queued..] {
            self.note_drop(r);
        }
        queued
    }

    /// The record as this drain sends it: shared as is, or, for a tagged
    /// route, a copy with the route's APP-NAME (the copy carries the same
    /// acknowledgement, so delivery is still told to the record's input).
    fn relabel(&self, rec: &SharedRecord) -> SharedRecord {
        match &self.app_name {
            Some(name) if rec.app_name != *name => {
                let mut r = Record::clone(rec);
                r.app_name = name.clone();
                Arc::new(r)
            }
            _ => rec.clone(),
        }
    }

    fn note_drop(&self, rec: &SharedRecord) {
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
        self.queue.close();
        self.closed.cancel();
    }

    /// Resolves `after` the drain was closed.
    async fn closed_for(&self, after: Duration) {
        self.closed.cancelled().await;
        sleep(after).await;
    }

    /// A closed drain could not deliver what it holds within `after`: drops
    /// it all (acknowledgements rejected, so inputs move on; counted as
    /// dropped) and stops the workers waiting on the receiver.
    fn give_up(&self, after: Duration) {
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
    fn denied_now(&self) -> bool {
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

    /// Records delivered so far.
    pub fn sent_total(&self) -> u64 {
        self.stats.sent.get()
    }

    /// Gives up every queued record (shutdown deadline passed); returns how many.
    pub fn abandon(&self) -> usize {
        let left = self.queue.take_all();
        for r in &left {
            if let Some(a) = &r.ack {
                a.reject();
            }
        }
        left.len() + self.in_flight.load(Ordering::Acquire)
    }
}

/// Starts the driver for `sink` and returns the drain handle. The driver runs
/// until the drain is closed and its queue is flushed.
pub fn spawn<S: Sink>(id: &str, sink: S, mut cfg: DriverConfig, tracker: &tokio_util::task::TaskTracker) -> Arc<Drain> {
    sink.tune(&mut cfg);
    cfg.max_connections = cfg.max_connections.max(1);
    // Taken before the series are looked up; dropped once the drain has finished.
    let lease = telemetry::lease("drain", id);
    let drain = Arc::new(Drain {
        id: Arc::from(id),
        queue: Queue::new(cfg.queue_records, cfg.queue_bytes),
        stats: Stats::new(id),
        dropped: Mutex::new(None),
        failing: AtomicBool::new(false),
        app_name: cfg.app_name.clone(),
        refusing: AtomicBool::new(false),
        in_flight: AtomicUsize::new(0),
        finished: AtomicBool::new(false),
        queue_max_records: cfg.queue_records,
        closed: CancellationToken::new(),
        stop: CancellationToken::new(),
        denied_until: Mutex::new(None),
        given_up: AtomicUsize::new(0),
    });
    let d = drain.clone();
    let sink = Arc::new(sink);
    let t = tracker.clone();
    let give_up_after = cfg.give_up_after;
    tracker.spawn(async move {
        let run = dispatch(d.clone(), sink, cfg, t);
        tokio::pin!(run);
        tokio::select! {
            () = &mut run => {}
            () = d.closed_for(give_up_after) => {
                d.give_up(give_up_after);
                run.await;
            }
        }
        d.stats.queue_records.set(0);
        d.stats.queue_bytes.set(0);
        // Its series go with it; a successor of the same id has its own.
        drop(lease);
        d.finished.store(true, Ordering::Release);
        debug!(drain = %d.id, "Drain stopped.");
    });
    drain
}

struct Worker {
    slot: u64,
    tx: mpsc::Sender<Vec<SharedRecord>>,
    last_used: Instant,
    /// Batches handed to this worker so far.
    sent: u64,
    /// Batches this worker has written (or given up).
    done: Arc<std::sync::atomic::AtomicU64>,
    /// When it began its current batch (microseconds since the dispatcher's
    /// epoch, at least 1), 0 while it waits for one.
    busy_since: Arc<std::sync::atomic::AtomicU64>,
    /// How long its last batch took, in microseconds.
    last_took: Arc<std::sync::atomic::AtomicU64>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Worker {
    fn idle(&self) -> bool {
        self.done.load(Ordering::Acquire) == self.sent
    }

    /// Whether its last batch, or the one in flight, took at least `at_least`.
    fn slow(&self, now_us: u64, at_least: Duration) -> bool {
        let at_least = at_least.as_micros() as u64;
        let since = self.busy_since.load(Ordering::Acquire);
        self.last_took.load(Ordering::Acquire) >= at_least || (since != 0 && now_us.saturating_sub(since) >= at_least)
    }
}

/// A worker just added to the pool. Sources that now hash to it may still have
/// records in flight on their previous worker, so what it is given is held back
/// until every older worker has finished the batches it had when the pool grew.
struct Gate {
    /// (slot, batches sent) of every older worker at the moment of growth.
    barrier: Vec<(u64, u64)>,
    held: Vec<SharedRecord>,
}

impl Gate {
    fn open(&self, workers: &[Worker]) -> bool {
        self.barrier.iter().all(|(slot, target)| {
            workers
                .iter()
                .find(|w| w.slot == *slot)
                .is_none_or(|w| w.done.load(Ordering::Acquire) >= *target)
        })
    }
}

/// Pops batches and hands each record to the worker its source hashes to.
async fn dispatch<S: Sink>(drain: Arc<Drain>, sink: Arc<S>, cfg: DriverConfig, tracker: tokio_util::task::TaskTracker) {
    let mut workers: Vec<Worker> = Vec::new();
    let mut gate: Option<Gate> = None;
    let mut next_slot = 0u64;
    let epoch = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(cfg.idle_timeout));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut parts: Vec<Vec<SharedRecord>> = Vec::new();
    loop {
        let mut batch = Vec::with_capacity(cfg.batch_records.min(1024));
        let more = tokio::select! {
            more = drain.queue.pop_batch(cfg.batch_records, cfg.batch_bytes, &mut batch) => more,
            _ = tick.tick() => {
                if gate.is_none() {
                    retire_idle(&mut workers, &cfg);
                }
                release_gate(&mut gate, &mut workers, false).await;
                drain.stats.queue_records.set(drain.queue.len() as i64);
                drain.stats.queue_bytes.set(drain.queue.bytes() as i64);
                continue;
            }
        };
        if !more {
            break;
        }
        if !cfg.linger.is_zero() && batch.len() < cfg.batch_records {
            let until = Instant::now() + cfg.linger;
            let mut bytes: usize = batch.iter().map(|r| r.size_hint()).sum();
            while batch.len() < cfg.batch_records && bytes < cfg.batch_bytes {
                let before = batch.len();
                let room_r = cfg.batch_records - batch.len();
                let room_b = cfg.batch_bytes - bytes;
                match timeout(
                    until.saturating_duration_since(Instant::now()),
                    drain.queue.pop_batch(room_r, room_b, &mut batch),
                )
                .await
                {
                    Ok(true) => bytes += batch[before..].iter().map(|r| r.size_hint()).sum::<usize>(),
                    _ => break,
                }
            }
        }
        drain.in_flight.fetch_add(batch.len(), Ordering::AcqRel);
        drain.stats.queue_records.set(drain.queue.len() as i64);

        // Grow the pool while the backlog is deep (one new worker at a time).
        if workers.is_empty() {
            workers.push(start_worker(&drain, &sink, &cfg, &tracker, next_slot, epoch));
            next_slot += 1;
        } else if gate.is_none()
            && workers.len() < cfg.max_connections
            && drain.queue.len() > cfg.grow_above
            && (cfg.grow_after.is_zero() || {
                let now_us = epoch.elapsed().as_micros() as u64;
                workers.iter().all(|w| w.slow(now_us, cfg.grow_after))
            })
        {
            let barrier = workers.iter().map(|w| (w.slot, w.sent)).collect();
            workers.push(start_worker(&drain, &sink, &cfg, &tracker, next_slot, epoch));
            next_slot += 1;
            gate = Some(Gate {
                barrier,
                held: Vec::new(),
            });
        }
        if workers.len() == 1 {
            send_to(&mut workers[0], batch).await;
            continue;
        }
        parts.resize_with(workers.len(), Vec::new);
        let mut last: Option<(Bytes, usize)> = None;
        for rec in batch {
            let w = match &last {
                Some((k, w)) if k.as_ref() == rec.order_key() => *w,
                _ => {
                    let w = pick(&workers, rec.order_key());
                    last = Some((rec.hostname.clone(), w));
                    w
                }
            };
            parts[w].push(rec);
        }
        let newest = workers.len() - 1;
        for (i, part) in parts.iter_mut().enumerate() {
            if part.is_empty() {
                continue;
            }
            match gate.as_mut() {
                Some(g) if i == newest => g.held.append(part),
                _ => send_to(&mut workers[i], std::mem::take(part)).await,
            }
        }
        let must_wait = gate.as_ref().is_some_and(|g| g.held.len() >= cfg.batch_records * 4);
        release_gate(&mut gate, &mut workers, must_wait).await;
    }
    // Closed and empty: hand over anything held, then let workers finish.
    release_gate(&mut gate, &mut workers, true).await;
    let tasks: Vec<_> = workers.iter_mut().filter_map(|w| w.task.take()).collect();
    workers.clear();
    for t in tasks {
        let _ = t.await;
    }
}

/// Sends the records held for a new worker once its gate opens; with `wait`,
/// waits for that (the dispatcher pauses rather than hold without bound).
async fn release_gate(gate: &mut Option<Gate>, workers: &mut [Worker], wait: bool) {
    let Some(g) = gate.as_ref() else {
        return;
    };
    while !g.open(workers) {
        if !wait {
            return;
        }
        sleep(Duration::from_millis(1)).await;
    }
    let g = gate.take().expect("checked above");
    if let Some(w) = workers.last_mut()
        && !g.held.is_empty()
    {
        send_to(w, g.held).await;
    }
}

async fn send_to(w: &mut Worker, batch: Vec<SharedRecord>) {
    w.last_used = Instant::now();
    w.sent += 1;
    // A worker only exits after its sender is dropped, so this cannot fail.
    let _ = w.tx.send(batch).await;
}

fn retire_idle(workers: &mut Vec<Worker>, cfg: &DriverConfig) {
    let now = Instant::now();
    while workers.len() > 1 {
        match workers
            .iter()
            .position(|w| now.duration_since(w.last_used) > cfg.idle_timeout && w.idle())
        {
            Some(i) => {
                workers.remove(i);
            }
            None => break,
        }
    }
}

/// Rendezvous (highest random weight) hashing: adding or removing a worker only
/// moves the sources that hash to it.
fn pick(workers: &[Worker], key: &[u8]) -> usize {
    let kh = fnv1a(key);
    let mut best = (0u64, 0usize);
    for (i, w) in workers.iter().enumerate() {
        let score = mix(kh ^ w.slot.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        if i == 0 || score > best.0 {
            best = (score, i);
        }
    }
    best.1
}

fn fnv1a(b: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &c in b {
        h ^= c as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

fn start_worker<S: Sink>(
    drain: &Arc<Drain>,
    sink: &Arc<S>,
    cfg: &DriverConfig,
    tracker: &tokio_util::task::TaskTracker,
    slot: u64,
    epoch: Instant,
) -> Worker {
    let (tx, rx) = mpsc::channel(2);
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let busy_since = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let last_took = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let progress = Progress {
        done: done.clone(),
        busy_since: busy_since.clone(),
        last_took: last_took.clone(),
        epoch,
    };
    let task = tracker.spawn(work(drain.clone(), sink.clone(), cfg.clone(), rx, progress));
    Worker {
        slot,
        tx,
        last_used: Instant::now(),
        sent: 0,
        done,
        busy_since,
        last_took,
        task: Some(task),
    }
}

/// What a worker tells the dispatcher about its progress.
struct Progress {
    done: Arc<std::sync::atomic::AtomicU64>,
    busy_since: Arc<std::sync::atomic::AtomicU64>,
    last_took: Arc<std::sync::atomic::AtomicU64>,
    epoch: Instant,
}

/// One pooled connection: delivers batches in order, reconnecting as needed.
async fn work<S: Sink>(
    drain: Arc<Drain>,
    sink: Arc<S>,
    cfg: DriverConfig,
    mut rx: mpsc::Receiver<Vec<SharedRecord>>,
    progress: Progress,
) {
    let mut conn: Option<S::Conn> = None;
    let mut backoff = Backoff::new(cfg.backoff_min, cfg.backoff_max);
    let mut held = Held::default();
    let ctx = Settle {
        drain: &drain,
        sink: &*sink,
        cfg: &cfg,
    };
    loop {
        let next = match held.oldest() {
            None => rx.recv().await,
            Some(since) => tokio::select! {
                b = rx.recv() => b,
                _ = tokio::time::sleep_until(since + CONFIRM_AFTER) => {
                    ctx.settle(&mut conn, &mut backoff, &mut held, false).await;
                    continue;
                }
            },
        };
        let Some(batch) = next else { break };
        // Before writing more: if the connection died, what it holds goes again
        // first; what it has held long enough is confirmed.
        ctx.settle(&mut conn, &mut backoff, &mut held, false).await;
        let n = batch.len();
        let began = (progress.epoch.elapsed().as_micros() as u64).max(1);
        progress.busy_since.store(began, Ordering::Release);
        let sent = deliver(&drain, &*sink, &cfg, &mut conn, &mut backoff, batch).await;
        progress.busy_since.store(0, Ordering::Release);
        let took = (progress.epoch.elapsed().as_micros() as u64).saturating_sub(began);
        progress.last_took.store(took, Ordering::Release);
        drain.in_flight.fetch_sub(n - sent.len(), Ordering::AcqRel);
        // Written (or given up): the dispatcher may now hand this batch's sources
        // to another connection; confirming it is this worker's own business.
        progress.done.fetch_add(1, Ordering::AcqRel);
        held.push(sent);
        if !sink.unacknowledged() {
            release(&drain, &mut held, usize::MAX);
        }
        if conn.is_some() {
            send_drop_summary(&drain, &*sink, &cfg, &mut conn).await;
        }
    }
    // Closing: what is still held is confirmed once it has been held long enough
    // (or sent again, a few times at most, if the receiver went away).
    for _ in 0..3 {
        let Some(newest) = held.newest() else { break };
        tokio::time::sleep_until(newest + CONFIRM_AFTER).await;
        ctx.settle(&mut conn, &mut backoff, &mut held, true).await;
    }
    if let Some(c) = conn.take() {
        // A drain that gave up does not wait on its receiver to close either.
        let _ = unless_stopped(&drain, sink.close(c)).await;
        drain.stats.connections.add(-1);
    }
}

/// Batches written but not yet known to be delivered, oldest first. On an
/// unacknowledged transport a batch is confirmed only once it has been held for
/// [`CONFIRM_AFTER`] with the connection still alive: a receiver that goes away
/// leaves what it never read in its socket, and the kernel resets the
/// connection instead of closing it, which the check then sees.
#[derive(Default)]
struct Held {
    /// Records of each written batch and when it was written.
    batches: VecDeque<(Vec<SharedRecord>, Instant)>,
    records: usize,
}

impl Held {
    fn push(&mut self, records: Vec<SharedRecord>) {
        self.records += records.len();
        self.batches.push_back((records, Instant::now()));
    }

    fn oldest(&self) -> Option<Instant> {
        self.batches.front().map(|b| b.1)
    }

    fn newest(&self) -> Option<Instant> {
        self.batches.back().map(|b| b.1)
    }

    /// Every held record, in order.
    fn take_all(&mut self) -> Vec<SharedRecord> {
        let mut all = Vec::with_capacity(self.records);
        for (mut r, _) in self.batches.drain(..) {
            all.append(&mut r);
        }
        self.records = 0;
        all
    }
}

/// Releases up to `max` of the oldest held batches as delivered: their
/// acknowledgements complete when the records are dropped.
fn release(drain: &Drain, held: &mut Held, max: usize) {
    for _ in 0..max {
        let Some((records, _)) = held.batches.pop_front() else {
            break;
        };
        let n = records.len();
        held.records -= n;
        drain.stats.sent.add(n as u64);
        drain.in_flight.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Records held at most before the oldest are confirmed early (at high rates
/// the hold then covers less than [`CONFIRM_AFTER`]; memory stays bounded).
fn held_cap(cfg: &DriverConfig) -> usize {
    cfg.batch_records.saturating_mul(8).max(1)
}

/// What confirming held batches needs of its worker.
struct Settle<'a, S> {
    drain: &'a Drain,
    sink: &'a S,
    cfg: &'a DriverConfig,
}

impl<S: Sink> Settle<'_, S> {
    /// With the connection alive, confirms the batches held long enough (all of
    /// them with `all`, and the oldest while over the cap); with it gone, sends
    /// every held record again on a new connection and holds them again.
    async fn settle(&self, conn: &mut Option<S::Conn>, backoff: &mut Backoff, held: &mut Held, all: bool) {
        let (drain, sink, cfg) = (self.drain, self.sink, self.cfg);
        if held.batches.is_empty() {
            return;
        }
        if held.records == 0 {
            // Nothing to confirm (every record was given up).
            release(drain, held, usize::MAX);
            return;
        }
        let alive = match conn.as_mut() {
            Some(c) => sink.healthy(c).await,
            None => false,
        };
        if alive {
            let now = Instant::now();
            let cap = held_cap(cfg);
            while let Some(since) = held.oldest() {
                if all || now >= since + CONFIRM_AFTER || held.records > cap {
                    release(drain, held, 1);
                } else {
                    break;
                }
            }
            return;
        }
        drop_conn(drain, sink, conn).await;
        let records = held.take_all();
        let n = records.len();
        debug!(drain = %drain.id, records = n, "The receiver went away after records were written; sending them again.");
        drain.stats.retries.inc();
        let sent = deliver(drain, sink, cfg, conn, backoff, records).await;
        drain.in_flight.fetch_sub(n - sent.len(), Ordering::AcqRel);
        held.push(sent);
    }
}

/// Sends `batch` until every record is delivered or given up, retrying with
/// backoff; returns the records delivered, in order. A batch the receiver
/// refuses as too large (HTTP 413) is sent again as two halves, each halved
/// again as needed, down to single records: only a record too large on its
/// own is refused for good.
async fn deliver<S: Sink>(
    drain: &Drain,
    sink: &S,
    cfg: &DriverConfig,
    conn: &mut Option<S::Conn>,
    backoff: &mut Backoff,
    batch: Vec<SharedRecord>,
) -> Vec<SharedRecord> {
    // Records delivered by earlier attempts of a partly accepted batch.
    let mut delivered: Vec<SharedRecord> = Vec::new();
    // Parts of the batch still to send, the next one last.
    let mut parts = vec![batch];
    while let Some(mut pending) = parts.pop() {
        loop {
            if drain.stop.is_cancelled() {
                // A closed drain gave up on its receiver: what is left goes.
                for p in std::iter::once(&pending).chain(parts.iter()) {
                    drain.stats.dropped.add(p.len() as u64);
                    reject(p);
                }
                return delivered;
            }
            if conn.is_none() {
                if drain.denied_now() {
                    for p in std::iter::once(&pending).chain(parts.iter()) {
                        drain.stats.rejected.add(p.len() as u64);
                        reject(p);
                    }
                    return delivered;
                }
                let Some(connected) = unless_stopped(drain, timeout(cfg.connect_timeout, sink.connect())).await else {
                    continue;
                };
                match connected {
                    Ok(Ok(c)) => {
                        *conn = Some(c);
                        drain.stats.connections.add(1);
                        allowed_again(drain);
                    }
                    Ok(Err(e @ SinkError::Denied { .. })) => {
                        denied(drain, cfg, &e, &pending);
                        for p in &parts {
                            drain.stats.rejected.add(p.len() as u64);
                            reject(p);
                        }
                        return delivered;
                    }
                    Ok(Err(e)) => {
                        fail(drain, &e.to_string());
                        pause(drain, backoff.next_delay()).await;
                        continue;
                    }
                    Err(_) => {
                        fail(drain, &format!("connect timed out after {:?}", cfg.connect_timeout));
                        pause(drain, backoff.next_delay()).await;
                        continue;
                    }
                }
            }
            let c = conn.as_mut().expect("connected above");
            let Some(result) = unless_stopped(drain, timeout(cfg.send_timeout, sink.send(c, &pending))).await else {
                continue;
            };
            match result {
                Ok(Ok(d)) => {
                    recovered(drain);
                    if d.rejected.len() < pending.len() {
                        drain.refusing.store(false, Ordering::Release);
                    }
                    backoff.reset();
                    drain.stats.sent_bytes.add(d.bytes);
                    drain.stats.truncated.add(d.truncated);
                    for &i in &d.rejected {
                        if let Some(a) = pending.get(i).and_then(|r| r.ack.as_ref()) {
                            a.reject();
                        }
                    }
                    drain.stats.rejected.add(d.rejected.len() as u64);
                    if d.retry.is_empty() && d.rejected.is_empty() {
                        if delivered.is_empty() {
                            delivered = pending;
                        } else {
                            delivered.extend(pending);
                        }
                        break;
                    }
                    let mut retry = Vec::with_capacity(d.retry.len());
                    for (i, r) in pending.into_iter().enumerate() {
                        if d.retry.contains(&i) {
                            retry.push(r);
                        } else if !d.rejected.contains(&i) {
                            delivered.push(r);
                        }
                    }
                    if retry.is_empty() {
                        break;
                    }
                    drain.stats.retries.inc();
                    pending = retry;
                    pause(drain, d.retry_after.unwrap_or_else(|| backoff.next_delay())).await;
                }
                Ok(Err(e @ SinkError::Denied { .. })) => {
                    // A client that reconnects on its own (HTTP) found its host denied.
                    drop_conn(drain, sink, conn).await;
                    denied(drain, cfg, &e, &pending);
                    for p in &parts {
                        drain.stats.rejected.add(p.len() as u64);
                        reject(p);
                    }
                    return delivered;
                }
                Ok(Err(e @ SinkError::TooLarge(_))) if pending.len() > 1 => {
                    // Each half goes on its own, the first half first.
                    drain.stats.errors.inc();
                    drain.stats.retries.inc();
                    debug!(drain = %drain.id, error = %e, records = pending.len(), "Batch too large for the receiver; sending it in halves.");
                    let second = pending.split_off(pending.len() / 2);
                    parts.push(second);
                    parts.push(pending);
                    break;
                }
                Ok(Err(e)) => {
                    drain.stats.errors.inc();
                    if !e.retryable() {
                        if !drain.refusing.swap(true, Ordering::AcqRel) {
                            warn!(drain = %drain.id, error = %e, records = pending.len(), "Drain refuses batches; they are not retried (logged once until one is accepted, counted in logtrain_drain_rejected_total).");
                        } else {
                            debug!(drain = %drain.id, error = %e, records = pending.len(), "Drain refused a batch.");
                        }
                        drain.stats.rejected.add(pending.len() as u64);
                        reject(&pending);
                        break;
                    }
                    fail(drain, &e.to_string());
                    if !e.keeps_connection() {
                        drop_conn(drain, sink, conn).await;
                    }
                    drain.stats.retries.inc();
                    pause(drain, e.retry_after().unwrap_or_else(|| backoff.next_delay())).await;
                }
                Err(_) => {
                    fail(drain, &format!("send timed out after {:?}", cfg.send_timeout));
                    drop_conn(drain, sink, conn).await;
                    drain.stats.retries.inc();
                    pause(drain, backoff.next_delay()).await;
                }
            }
        }
    }
    delivered
}

async fn drop_conn<S: Sink>(drain: &Drain, _sink: &S, conn: &mut Option<S::Conn>) {
    if conn.take().is_some() {
        drain.stats.connections.add(-1);
    }
}

/// Marks records as not delivered (their acknowledgements rejected).
fn reject(records: &[SharedRecord]) {
    for r in records {
        if let Some(a) = &r.ack {
            a.reject();
        }
    }
}

/// Runs `f` unless the drain gives up first (`None` then).
async fn unless_stopped<F: Future>(drain: &Drain, f: F) -> Option<F::Output> {
    tokio::select! {
        biased;
        () = drain.stop.cancelled() => None,
        out = f => Some(out),
    }
}

/// Waits `d`, or less if the drain gives up meanwhile.
async fn pause(drain: &Drain, d: Duration) {
    let _ = unless_stopped(drain, sleep(d)).await;
}

/// Every address of a tenant's drain is denied: its records are rejected
/// without connecting until the host is looked up again, after
/// `cfg.denied_recheck`. Counted at each look-up, logged once per episode.
fn denied(drain: &Drain, cfg: &DriverConfig, e: &SinkError, pending: &[SharedRecord]) {
    drain.stats.denied.inc();
    let again = Instant::now() + cfg.denied_recheck;
    if drain.denied_until.lock().replace(again).is_none() {
        warn!(drain = %drain.id, error = %e, recheck = ?cfg.denied_recheck, "Drain refused: its host resolves only to addresses DRAIN_DENY_NETWORKS forbids; its records are rejected and its host looked up again now and then (counted in logtrain_drain_denied_total).");
    } else {
        debug!(drain = %drain.id, error = %e, "Drain still refused.");
    }
    drain.stats.rejected.add(pending.len() as u64);
    reject(pending);
}

/// A drain that was denied connected: its host resolves to an allowed address now.
fn allowed_again(drain: &Drain) {
    if drain.denied_until.lock().take().is_some() {
        info!(drain = %drain.id, "Drain's host now resolves to an address it may reach; delivering again.");
    }
}

/// Counts an error; logs it once per failure episode.
fn fail(drain: &Drain, error: &str) {
    drain.stats.errors.inc();
    if !drain.failing.swap(true, Ordering::AcqRel) {
        warn!(drain = %drain.id, %error, "Drain is failing; retrying with backoff.");
    } else {
        debug!(drain = %drain.id, %error, "Drain still failing.");
    }
}

fn recovered(drain: &Drain) {
    if drain.failing.swap(false, Ordering::AcqRel) {
        info!(drain = %drain.id, "Drain recovered.");
    }
}

/// After an overflow episode, tells the drain itself how many records it missed
/// (like logplex's L10), once it accepts data again.
async fn send_drop_summary<S: Sink>(drain: &Drain, sink: &S, cfg: &DriverConfig, conn: &mut Option<S::Conn>) {
    let Some(ep) = drain.dropped.lock().take() else {
        return;
    };
    let text = format!(
        "Error L10 (output buffer overflow): {} messages dropped since {}.",
        ep.count,
        ep.since.to_rfc3339()
    );
    let mut rec = Record::new(InputKind::Internal, Bytes::from_static(b"logtrain"), Bytes::from(text));
    rec.app_name = Bytes::from_static(b"logtrain");
    rec.msgid = Bytes::from_static(b"L10");
    rec.severity = Severity::WARNING;
    let c = conn.as_mut().expect("caller checked");
    let ok = matches!(
        unless_stopped(drain, timeout(cfg.send_timeout, sink.send(c, &[Arc::new(rec)]))).await,
        Some(Ok(Ok(_)))
    );
    if ok {
        info!(drain = %drain.id, dropped = ep.count, since = %ep.since.to_rfc3339(), "Drain caught up after dropping records; told the drain.");
    } else {
        // Put the episode back (merging with any newer drops) and try after the next batch.
        let mut d = drain.dropped.lock();
        match d.as_mut() {
            Some(newer) => {
                newer.count += ep.count;
                newer.since = ep.since;
            }
            None => *d = Some(ep),
        }
    }
}

#[cfg(test)]
mod tests;
