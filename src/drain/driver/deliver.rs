//! Delivering one batch on a worker's connection: connecting when needed,
//! retrying with backoff, sending a batch refused as too large in halves,
//! rejecting what the receiver refuses for good or what a denied host would
//! get, and giving up when a closed drain does. Also the overflow notice a
//! drain is sent once it accepts data again.
//!
//! It never holds a batch once written (the worker does) and never logs an
//! episode itself (`events` does).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::{sleep, timeout};
use tracing::{debug, info, warn};

use super::evacuate::may_give_back;
use super::events::{allowed_again, denied, fail, recovered, reject};
use super::{Drain, DriverConfig, Sink, SinkError};
use crate::backoff::Backoff;
use crate::record::{InputKind, Record, Severity, SharedRecord};

/// Sends `batch` until every record is delivered or given up, retrying with
/// backoff; returns the records delivered, in order. A batch the receiver
/// refuses as too large (HTTP 413) is sent again as two halves, each halved
/// again as needed, down to single records: only a record too large on its
/// own is refused for good.
pub(super) async fn deliver<S: Sink>(
    drain: &Drain,
    sink: &S,
    cfg: &DriverConfig,
    conn: &mut Option<S::Conn>,
    backoff: &mut Backoff,
    batch: Vec<SharedRecord>,
    mut back: Option<&mut Vec<SharedRecord>>,
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
                        let gave = failed(drain, &e.to_string(), back.as_deref_mut(), &mut pending, &mut parts);
                        if gave {
                            return delivered;
                        }
                        pause(drain, backoff.next_delay()).await;
                        continue;
                    }
                    Err(_) => {
                        let gave = failed(
                            drain,
                            &format!("connect timed out after {:?}", cfg.connect_timeout),
                            back.as_deref_mut(),
                            &mut pending,
                            &mut parts,
                        );
                        if gave {
                            return delivered;
                        }
                        pause(drain, backoff.next_delay()).await;
                        continue;
                    }
                }
            }
            let c = conn.as_mut().expect("connected above");
            let began = std::time::Instant::now();
            let Some(result) = unless_stopped(drain, timeout(cfg.send_timeout, sink.send(c, &pending))).await else {
                continue;
            };
            match result {
                Ok(Ok(d)) => {
                    drain.stats.send_seconds.observe(began.elapsed().as_secs_f64());
                    drain.stats.batch_records.observe(pending.len() as f64);
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
                Ok(Err(e @ SinkError::TooLarge { .. })) if pending.len() > 1 => {
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
                    let gave = failed(drain, &e.to_string(), back.as_deref_mut(), &mut pending, &mut parts);
                    if !e.keeps_connection() {
                        drop_conn(drain, sink, conn).await;
                    }
                    drain.stats.retries.inc();
                    if gave {
                        return delivered;
                    }
                    pause(drain, e.retry_after().unwrap_or_else(|| backoff.next_delay())).await;
                }
                Err(_) => {
                    let gave = failed(
                        drain,
                        &format!("send timed out after {:?}", cfg.send_timeout),
                        back.as_deref_mut(),
                        &mut pending,
                        &mut parts,
                    );
                    drop_conn(drain, sink, conn).await;
                    drain.stats.retries.inc();
                    if gave {
                        return delivered;
                    }
                    pause(drain, backoff.next_delay()).await;
                }
            }
        }
    }
    delivered
}

/// A failed attempt: gives what is left of the batch back into `out` if it
/// may ([`give_back`]), then tells the failure (in that order: see
/// `evacuate::may_give_back`). Says whether it gave back.
fn failed(
    drain: &Drain,
    error: &str,
    out: Option<&mut Vec<SharedRecord>>,
    pending: &mut Vec<SharedRecord>,
    parts: &mut Vec<Vec<SharedRecord>>,
) -> bool {
    let gave = give_back(drain, out, pending, parts);
    fail(drain, error);
    gave
}

/// If the worker gives back (`out`) and the drain may evacuate (see
/// `evacuate`), moves what is left of the batch, in order, into `out` and
/// says so.
fn give_back(
    drain: &Drain,
    out: Option<&mut Vec<SharedRecord>>,
    pending: &mut Vec<SharedRecord>,
    parts: &mut Vec<Vec<SharedRecord>>,
) -> bool {
    let Some(out) = out else {
        return false;
    };
    if !may_give_back(drain, pending.iter().chain(parts.iter().flatten())) {
        return false;
    }
    out.append(pending);
    while let Some(mut p) = parts.pop() {
        out.append(&mut p);
    }
    true
}

pub(super) async fn drop_conn<S: Sink>(drain: &Drain, _sink: &S, conn: &mut Option<S::Conn>) {
    if conn.take().is_some() {
        drain.stats.connections.add(-1);
    }
}

/// Runs `f` unless the drain gives up first (`None` then).
pub(super) async fn unless_stopped<F: Future>(drain: &Drain, f: F) -> Option<F::Output> {
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

/// After an overflow episode, tells the drain itself how many records it missed
/// (like logplex's L10), once it accepts data again.
pub(super) async fn send_drop_summary<S: Sink>(
    drain: &Drain,
    sink: &S,
    cfg: &DriverConfig,
    conn: &mut Option<S::Conn>,
) {
    send_rate_notice(drain, sink, cfg, conn).await;
    let Some(ep) = drain.dropped.lock().take() else {
        return;
    };
    let text = format!(
        "Error L10 (output buffer overflow): {} messages dropped since {}.",
        ep.count,
        ep.since.to_rfc3339()
    );
    if send_notice(drain, sink, cfg, conn, b"L10", text).await {
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

/// Sends the drain one warning of logtrain's own (APP-NAME `logtrain`,
/// MSGID `msgid`) on the open connection; whether it went through.
async fn send_notice<S: Sink>(
    drain: &Drain,
    sink: &S,
    cfg: &DriverConfig,
    conn: &mut Option<S::Conn>,
    msgid: &'static [u8],
    text: String,
) -> bool {
    let mut rec = Record::new(InputKind::Internal, Bytes::from_static(b"logtrain"), Bytes::from(text));
    rec.app_name = Bytes::from_static(b"logtrain");
    rec.msgid = Bytes::from_static(msgid);
    rec.severity = Severity::WARNING;
    let c = conn.as_mut().expect("caller checked");
    matches!(
        unless_stopped(drain, timeout(cfg.send_timeout, sink.send(c, &[Arc::new(rec)]))).await,
        Some(Ok(Ok(_)))
    )
}

/// After an episode of records over the drain's `rate=` (ended by a second
/// without one), tells the drain itself how many it did not get, once. A
/// notice that cannot be sent is put back and tried after the next batch.
async fn send_rate_notice<S: Sink>(drain: &Drain, sink: &S, cfg: &DriverConfig, conn: &mut Option<S::Conn>) {
    let Some((ep, rate)) = drain.gate.as_ref().and_then(|g| Some((g.ended_episode()?, g.rate()?))) else {
        return;
    };
    let text = format!(
        "Rate limit (rate={rate}): {} messages dropped since {}.",
        ep.count,
        ep.since.to_rfc3339()
    );
    if send_notice(drain, sink, cfg, conn, b"RATE", text).await {
        info!(drain = %drain.id, dropped = ep.count, since = %ep.since.to_rfc3339(), rate, "Drain's rate limit dropped records; told the drain.");
    } else if let Some(g) = &drain.gate {
        g.restore_episode(ep);
    }
}
