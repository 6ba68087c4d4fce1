//! Moving a failing drain's records out of memory into its disk buffer.
//!
//! A drain whose receiver is down holds its oldest records in memory: the
//! batches its connections retry and those queued behind them. They keep the
//! tailer's checkpoint where they are, so after a crash every line after them
//! would be read and sent again. So when a connection first fails and nothing
//! is on disk, it gives its batch back ([`may_give_back`]); the other
//! connections give back what they get, untried, until the dispatcher has
//! every record its connections held. The dispatcher then puts them, its own
//! held records and the whole queue in front of what producers staged
//! meanwhile (the spill task writes nothing in between), in order, and the
//! drain goes on from disk. Once written they count as delivered for the
//! checkpoint; after `kill -9` only what a connection had sent and not yet
//! seen confirmed is sent twice.
//!
//! If order cannot be kept (something reached the disk meanwhile, a record
//! read back from disk is among them, a connection did not answer in time)
//! the records go back to their connections as before, in order, and no
//! evacuation is tried for a while.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep};
use tracing::debug;

use super::Drain;
use super::dispatch::{Gate, Worker, send_to};
use crate::drain::buffer::Buffer;
use crate::record::SharedRecord;

/// Records a worker (its slot) gave back.
pub(super) type Returned = (u64, Vec<SharedRecord>);

/// How long the dispatcher waits for every connection to give back or finish.
const WAIT: Duration = Duration::from_secs(1);
/// After an evacuation that could not keep order, none is tried for this long.
const COOL_DOWN: Duration = Duration::from_secs(5);

/// Whether a record came in from an input (not read back from the disk buffer).
fn fresh(r: &SharedRecord) -> bool {
    r.ack.as_ref().is_none_or(|a| !a.replayed())
}

/// Whether a connection that just failed to send `recs` may give them back
/// for the disk buffer instead of retrying them: the drain has one, nothing
/// written to it is unreplayed, no evacuation failed lately, and every record
/// came in from an input. If so the spill task holds what is staged until the
/// dispatcher has put these in front. Asked before the failure is told, so
/// that what producers stage once they see it waits behind them.
pub(super) fn may_give_back<'a>(drain: &Drain, mut recs: impl Iterator<Item = &'a SharedRecord>) -> bool {
    let Some(b) = &drain.buffer else {
        return false;
    };
    if drain.evacuate_not_before.lock().is_some_and(|t| Instant::now() < t) {
        return false;
    }
    recs.all(fresh) && b.hold_if_clear()
}

/// Whether a connection should give back `batch` untried: an evacuation is
/// under way and every record came in from an input.
pub(super) fn giving_back(drain: &Drain, batch: &[SharedRecord]) -> bool {
    drain.evacuating.load(Ordering::Acquire) && batch.iter().all(fresh)
}

/// Gathers what every connection gives back after `first`, then moves it,
/// the gate's held records and the queue to the disk buffer in front of what
/// is staged; or, if order would not hold, hands the records back to their
/// connections. Returns how many went to disk.
pub(super) async fn evacuate(
    drain: &Drain,
    buf: &Buffer,
    first: Returned,
    returned: &mut mpsc::UnboundedReceiver<Returned>,
    workers: &mut [Worker],
    gate: &mut Option<Gate>,
) -> usize {
    drain.evacuating.store(true, Ordering::Release);
    buf.hold(true);
    let mut back = vec![first];
    let deadline = Instant::now() + WAIT;
    let settled = loop {
        while let Ok(r) = returned.try_recv() {
            back.push(r);
        }
        // A worker counts a batch done after giving it back, so once all are
        // done everything given back is in the channel.
        if workers.iter().all(Worker::idle) {
            while let Ok(r) = returned.try_recv() {
                back.push(r);
            }
            break true;
        }
        if Instant::now() >= deadline {
            break false;
        }
        tokio::select! {
            Some(r) = returned.recv() => back.push(r),
            () = sleep(Duration::from_millis(2)) => {}
        }
    };
    drain.evacuating.store(false, Ordering::Release);
    let from_gate = gate.as_mut().map(|g| std::mem::take(&mut g.held)).unwrap_or_default();
    let older: Vec<SharedRecord> = back
        .iter()
        .flat_map(|(_, b)| b.iter().cloned())
        .chain(from_gate.iter().cloned())
        .collect();
    if settled && older.iter().all(fresh) {
        if let Ok(n) = buf.take_in_front(&drain.queue, older) {
            drain.in_flight.fetch_sub(from_gate.len(), Ordering::AcqRel);
            debug!(drain = %drain.id, records = n, "Drain is failing: its records in memory went to its disk buffer.");
            return n;
        }
    } else {
        buf.hold(false);
    }
    // Order would not hold: everything goes back where it was, in order.
    *drain.evacuate_not_before.lock() = Some(Instant::now() + COOL_DOWN);
    if let Some(g) = gate.as_mut() {
        g.held = from_gate;
    }
    for (slot, batch) in back {
        drain.in_flight.fetch_add(batch.len(), Ordering::AcqRel);
        let i = workers.iter().position(|w| w.slot == slot).unwrap_or(0);
        send_to(&mut workers[i], batch).await;
    }
    0
}
