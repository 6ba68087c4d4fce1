//! The driver's episodes, each logged and counted in one place: a drain
//! failing and recovering, its host denied and allowed again, and records
//! marked as not delivered. A failure is counted every time and logged once
//! per episode, so a receiver that is down fills neither the logs nor memory.
//!
//! Nothing here waits, sends or retries.

use std::sync::atomic::Ordering;

use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::{Drain, DriverConfig, SinkError};
use crate::record::SharedRecord;
use crate::time::Timestamp;

/// Marks records as not delivered (their acknowledgements rejected).
pub(super) fn reject(records: &[SharedRecord]) {
    for r in records {
        if let Some(a) = &r.ack {
            a.reject();
        }
    }
}

/// Every address of a tenant's drain is denied: its records are rejected
/// without connecting until the host is looked up again, after
/// `cfg.denied_recheck`. Counted at each look-up, logged once per episode.
pub(super) fn denied(drain: &Drain, cfg: &DriverConfig, e: &SinkError, pending: &[SharedRecord]) {
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
pub(super) fn allowed_again(drain: &Drain) {
    if drain.denied_until.lock().take().is_some() {
        info!(drain = %drain.id, "Drain's host now resolves to an address it may reach; delivering again.");
    }
}

/// Counts an error; logs it once per failure episode.
pub(super) fn fail(drain: &Drain, error: &str) {
    drain.stats.errors.inc();
    if let Some(b) = &drain.buffer {
        b.set_down(true);
    }
    if !drain.failing.swap(true, Ordering::AcqRel) {
        *drain.failing_since.lock() = Some(Timestamp::now());
        warn!(drain = %drain.id, %error, "Drain is failing; retrying with backoff.");
    } else {
        debug!(drain = %drain.id, %error, "Drain still failing.");
    }
}

pub(super) fn recovered(drain: &Drain) {
    if drain.failing.swap(false, Ordering::AcqRel) {
        if let Some(b) = &drain.buffer {
            b.set_down(false);
        }
        *drain.failing_since.lock() = None;
        info!(drain = %drain.id, "Drain recovered.");
    }
}
