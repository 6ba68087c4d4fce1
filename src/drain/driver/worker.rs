//! One pooled connection of a drain: delivers the batches the dispatcher hands
//! it, in order, reconnecting as needed, and on a transport that never
//! acknowledges (syslog over TCP or TLS) holds each written batch until the
//! connection is seen alive after it, sending it again if not.
//!
//! It never decides which records it gets (the dispatcher does) nor how one
//! batch is retried (`deliver` does).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use super::deliver::{deliver, drop_conn, send_drop_summary, unless_stopped};
use super::evacuate::{Returned, giving_back};
use super::{Drain, DriverConfig, Sink};
use crate::backoff::Backoff;
use crate::record::{InputKind, SharedRecord};
use crate::time::Timestamp;

/// How long a batch written on an unacknowledged transport is held, at most,
/// before the connection is checked and the batch released as delivered.
pub const CONFIRM_AFTER: Duration = Duration::from_millis(200);

/// What a worker tells the dispatcher about its progress.
pub(super) struct Progress {
    pub(super) done: Arc<AtomicU64>,
    pub(super) busy_since: Arc<AtomicU64>,
    pub(super) last_took: Arc<AtomicU64>,
    pub(super) epoch: Instant,
    /// Its slot in the pool, named when it gives records back.
    pub(super) slot: u64,
    /// Where it gives back records for the disk buffer (`evacuate`).
    pub(super) give_back: Option<mpsc::UnboundedSender<Returned>>,
}

/// One pooled connection: delivers batches in order, reconnecting as needed.
pub(super) async fn work<S: Sink>(
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
                    let mut back = Vec::new();
                    ctx.settle(&mut conn, &mut backoff, &mut held, false, progress.give_back.as_ref().map(|_| &mut back)).await;
                    give(&drain, &progress, back);
                    continue;
                }
            },
        };
        let Some(batch) = next else { break };
        // Before writing more: if the connection died, what it holds goes again
        // first; what it has held long enough is confirmed.
        let mut back = Vec::new();
        let may = progress.give_back.is_some();
        ctx.settle(&mut conn, &mut backoff, &mut held, false, may.then_some(&mut back))
            .await;
        let n = batch.len();
        let began = (progress.epoch.elapsed().as_micros() as u64).max(1);
        progress.busy_since.store(began, Ordering::Release);
        let sent = if may && (!back.is_empty() || giving_back(&drain, &batch)) {
            // Older records went back: these follow them, untried.
            back.extend(batch);
            Vec::new()
        } else {
            deliver(
                &drain,
                &*sink,
                &cfg,
                &mut conn,
                &mut backoff,
                batch,
                may.then_some(&mut back),
            )
            .await
        };
        progress.busy_since.store(0, Ordering::Release);
        let took = (progress.epoch.elapsed().as_micros() as u64).saturating_sub(began);
        progress.last_took.store(took, Ordering::Release);
        drain.in_flight.fetch_sub(n - sent.len(), Ordering::AcqRel);
        give(&drain, &progress, back);
        // Written, given up or given back: the dispatcher may now hand this
        // batch's sources to another connection; confirming it is this
        // worker's own business.
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
        ctx.settle(&mut conn, &mut backoff, &mut held, true, None).await;
    }
    if let Some(c) = conn.take() {
        // A drain that gave up does not wait on its receiver to close either.
        let _ = unless_stopped(&drain, sink.close(c)).await;
        drain.stats.connections.add(-1);
    }
}

/// Hands records given back to the dispatcher for the disk buffer (telling
/// the other workers to give back what they get until it is done).
fn give(drain: &Drain, progress: &Progress, back: Vec<SharedRecord>) {
    if back.is_empty() {
        return;
    }
    drain.evacuating.store(true, Ordering::Release);
    if let Some(tx) = &progress.give_back {
        // The dispatcher outlives its workers: this cannot fail.
        let _ = tx.send((progress.slot, back));
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
        observe_lag(drain, &records);
        drain.in_flight.fetch_sub(n, Ordering::AcqRel);
    }
}

/// How old the oldest container line of a confirmed batch is, by its own time.
fn observe_lag(drain: &Drain, records: &[SharedRecord]) {
    let oldest = records
        .iter()
        .filter(|r| r.origin.input == InputKind::File)
        .filter_map(|r| r.timestamp)
        .min();
    if let Some(t) = oldest {
        let ns = Timestamp::now().0.saturating_sub(t.0).max(0);
        drain.stats.lag.observe(ns as f64 / 1e9);
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
    /// every held record again on a new connection and holds them again (or,
    /// failing, gives them back into `back` if it may; see `evacuate`).
    async fn settle(
        &self,
        conn: &mut Option<S::Conn>,
        backoff: &mut Backoff,
        held: &mut Held,
        all: bool,
        back: Option<&mut Vec<SharedRecord>>,
    ) {
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
        let sent = deliver(drain, sink, cfg, conn, backoff, records, back).await;
        drain.in_flight.fetch_sub(n - sent.len(), Ordering::AcqRel);
        held.push(sent);
    }
}
