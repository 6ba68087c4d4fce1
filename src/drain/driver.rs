//! The generic drain driver: every drain is a [`Sink`] (encoder + transport)
//! run by this driver, which owns the bounded queue, batching, the connection
//! pool, timeouts, jittered exponential backoff and loss accounting.
//!
//! Shape: producers push into the drain's [`Queue`](super::queue::Queue); one
//! dispatcher task pops batches and splits them across connection workers by
//! rendezvous hashing of each record's source key, so a source sticks to one
//! connection and keeps its order. The pool grows while the queue is deep
//! *and* the receiver is what is slow (every worker spent at least
//! `grow_after` on its last or current batch): when encoding is the
//! bottleneck, more connections would only hold more records in memory. It
//! shrinks when workers idle.
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
//!
//! The pieces, one job each: `sink` (what a drain is to the driver),
//! `handle` (the [`Drain`] inputs queue into), `dispatch` (the dispatcher,
//! its pool and gate), `worker` (one connection, holding written batches until
//! confirmed), `deliver` (one batch, with retries) and `events` (what logs and
//! counts failures, denials and losses) and `spill` (the disk buffer's task:
//! writing what overflows the queue, replaying it, deleting what was
//! confirmed). This file holds the settings and [`spawn`].

mod deliver;
mod dispatch;
mod evacuate;
mod events;
mod handle;
mod sink;
mod spill;
mod worker;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use crate::drain::buffer::{Buffer, BufferConfig};
use crate::secret::Secret;
use crate::telemetry;

pub use handle::Drain;
pub use sink::{Delivery, Sink, SinkError};
pub use worker::CONFIRM_AFTER;

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
    /// What the drain URL's processing parameters asked for (filters, rate,
    /// `sd=kubernetes`); `None` for none.
    pub processing: Option<std::sync::Arc<crate::drain::process::Processing>>,
    /// A closed drain still holding records this long after it was closed
    /// gives up on them (its receiver is down): `SHUTDOWN_TIMEOUT`.
    pub give_up_after: Duration,
    /// How long a tenant's drain whose every address was denied rejects its
    /// records before it resolves its host again.
    pub denied_recheck: Duration,
    /// Where records that overflow the queue go on disk (`DRAIN_BUFFER=disk`);
    /// `None` keeps them in memory alone.
    pub buffer: Option<BufferConfig>,
    /// The drain's key (its normalised URL, credentials included), which
    /// names its buffer directory; set per drain.
    pub buffer_key: Option<Secret>,
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
            processing: None,
            give_up_after: Duration::from_secs(25),
            denied_recheck: Duration::from_secs(60),
            buffer: None,
            buffer_key: None,
        }
    }
}

/// Starts the driver for `sink` and returns the drain handle. The driver runs
/// until the drain is closed and its queue is flushed.
pub fn spawn<S: Sink>(id: &str, sink: S, mut cfg: DriverConfig, tracker: &TaskTracker) -> Arc<Drain> {
    sink.tune(&mut cfg);
    cfg.max_connections = cfg.max_connections.max(1);
    // Taken before the series are looked up; dropped once the drain has finished.
    let lease = telemetry::lease("drain", id);
    let buffer = match (&cfg.buffer, &cfg.buffer_key) {
        (Some(b), Some(key)) => Buffer::open(b, key.expose(), id)
            .inspect_err(|e| warn!(drain = %id, error = %e, "Drain buffers in memory only."))
            .ok(),
        _ => None,
    };
    let drain = Arc::new(Drain::new(id, &cfg, buffer.clone()));
    if let Some(b) = buffer {
        tracker.spawn(spill::run(drain.clone(), b));
    }
    let d = drain.clone();
    let sink = Arc::new(sink);
    let t = tracker.clone();
    let give_up_after = cfg.give_up_after;
    tracker.spawn(async move {
        let run = dispatch::dispatch(d.clone(), sink, cfg, t);
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

#[cfg(test)]
mod tests;
