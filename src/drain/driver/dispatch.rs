//! The dispatcher of one drain: pops batches from its queue and hands each
//! record to the worker its source hashes to (rendezvous hashing, so a source
//! sticks to one connection and keeps its order), grows the pool while the
//! receiver is slow and shrinks it when workers idle. A worker added to the
//! pool waits behind a [`Gate`] until the sources moved to it have left their
//! previous worker.
//!
//! It never sends, retries or confirms anything: workers do.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};
use tokio_util::task::TaskTracker;

use super::evacuate::{Returned, evacuate};
use super::worker::{self, Progress};
use super::{Drain, DriverConfig, Sink};
use crate::record::SharedRecord;

pub(super) struct Worker {
    pub(super) slot: u64,
    tx: mpsc::Sender<Vec<SharedRecord>>,
    last_used: Instant,
    /// Batches handed to this worker so far.
    sent: u64,
    /// Batches this worker has written (or given up).
    done: Arc<AtomicU64>,
    /// When it began its current batch (microseconds since the dispatcher's
    /// epoch, at least 1), 0 while it waits for one.
    busy_since: Arc<AtomicU64>,
    /// How long its last batch took, in microseconds.
    last_took: Arc<AtomicU64>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Worker {
    pub(super) fn idle(&self) -> bool {
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
pub(super) struct Gate {
    /// (slot, batches sent) of every older worker at the moment of growth.
    barrier: Vec<(u64, u64)>,
    pub(super) held: Vec<SharedRecord>,
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
pub(super) async fn dispatch<S: Sink>(drain: Arc<Drain>, sink: Arc<S>, cfg: DriverConfig, tracker: TaskTracker) {
    let mut workers: Vec<Worker> = Vec::new();
    let mut gate: Option<Gate> = None;
    let mut next_slot = 0u64;
    let epoch = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1).min(cfg.idle_timeout));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut parts: Vec<Vec<SharedRecord>> = Vec::new();
    // Records workers give back for the disk buffer (a drain that has one):
    // at most what they were handed, so bounded by the pool.
    let (give_back, mut returned) = mpsc::unbounded_channel::<Returned>();
    let give_back = drain.buffer.is_some().then_some(give_back);
    let new_worker = |next: &mut u64| {
        *next += 1;
        start_worker(&drain, &sink, &cfg, &tracker, *next - 1, epoch, give_back.clone())
    };
    loop {
        if let (Some(buf), Ok(first)) = (&drain.buffer, returned.try_recv()) {
            evacuate(&drain, buf, first, &mut returned, &mut workers, &mut gate).await;
            continue;
        }
        let mut batch = Vec::with_capacity(cfg.batch_records.min(1024));
        let more = tokio::select! {
            more = drain.queue.pop_batch(cfg.batch_records, cfg.batch_bytes, &mut batch) => more,
            Some(first) = returned.recv(), if give_back.is_some() => {
                if let Some(buf) = &drain.buffer {
                    evacuate(&drain, buf, first, &mut returned, &mut workers, &mut gate).await;
                }
                continue;
            }
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
            workers.push(new_worker(&mut next_slot));
        } else if gate.is_none()
            && workers.len() < cfg.max_connections
            && drain.queue.len() > cfg.grow_above
            && (cfg.grow_after.is_zero() || {
                let now_us = epoch.elapsed().as_micros() as u64;
                workers.iter().all(|w| w.slow(now_us, cfg.grow_after))
            })
        {
            let barrier = workers.iter().map(|w| (w.slot, w.sent)).collect();
            workers.push(new_worker(&mut next_slot));
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

pub(super) async fn send_to(w: &mut Worker, batch: Vec<SharedRecord>) {
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
    let kh = crate::hash::fnv1a(key);
    let mut best = (0u64, 0usize);
    for (i, w) in workers.iter().enumerate() {
        let score = mix(kh ^ w.slot.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        if i == 0 || score > best.0 {
            best = (score, i);
        }
    }
    best.1
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
    tracker: &TaskTracker,
    slot: u64,
    epoch: Instant,
    give_back: Option<mpsc::UnboundedSender<Returned>>,
) -> Worker {
    let (tx, rx) = mpsc::channel(2);
    let done = Arc::new(AtomicU64::new(0));
    let busy_since = Arc::new(AtomicU64::new(0));
    let last_took = Arc::new(AtomicU64::new(0));
    let progress = Progress {
        done: done.clone(),
        busy_since: busy_since.clone(),
        last_took: last_took.clone(),
        epoch,
        slot,
        give_back,
    };
    let task = tracker.spawn(worker::work(drain.clone(), sink.clone(), cfg.clone(), rx, progress));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rendezvous_moves_few_keys_when_a_worker_is_added() {
        let mk = |n: u64| -> Vec<Worker> {
            (0..n)
                .map(|slot| Worker {
                    slot,
                    tx: mpsc::channel(1).0,
                    last_used: Instant::now(),
                    sent: 0,
                    done: Default::default(),
                    busy_since: Default::default(),
                    last_took: Default::default(),
                    task: None,
                })
                .collect()
        };
        let four = mk(4);
        let five = mk(5);
        let mut moved = 0;
        let mut per = [0usize; 5];
        for i in 0..10_000 {
            let k = format!("app-{i}.ns");
            let a = four[pick(&four, k.as_bytes())].slot;
            let b = five[pick(&five, k.as_bytes())].slot;
            per[b as usize] += 1;
            if a != b {
                assert_eq!(b, 4, "a key moved between old workers");
                moved += 1;
            }
        }
        assert!((1500..2500).contains(&moved), "moved {moved}");
        assert!(per.iter().all(|&n| n > 1500), "{per:?}");
    }
}
