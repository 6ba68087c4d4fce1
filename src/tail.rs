//! Live tail: who is watching which hostname right now, and the copy of each
//! routed record to them. Inputs call [`Tails::offer`] where they route a
//! record; when nobody tails it costs one relaxed atomic load. Each subscriber
//! has a small bounded buffer filled with `try_send`: what a slow client cannot
//! take is dropped and counted, never waited for. This module never blocks,
//! never awaits and never touches a drain.
//!
//! The HTTP endpoints that open subscriptions live in [`http`], the JSON view
//! of the routing table in [`routes`], the command-line clients in [`client`] and [`top`].

pub mod body;
pub mod client;
pub mod filter;
pub mod http;
pub mod pending;
pub mod routes;
pub mod top;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use arc_swap::ArcSwap;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tracing::debug;

pub use filter::Filter;

use crate::record::Record;
use crate::telemetry::{self, Counter};
use crate::time::Timestamp;

/// Lines a subscriber's buffer holds before its lines are dropped.
pub const BUFFER_LINES: usize = 1024;

/// Subscribers of one hostname.
type Subs = Arc<[Arc<Sub>]>;

/// One open stream as the hot path sees it.
struct Sub {
    id: u64,
    filter: Filter,
    tx: mpsc::Sender<Bytes>,
    /// Lines dropped since the stream last said so.
    dropped: Arc<AtomicU64>,
}

/// The registry of live subscribers, shared by every input (it lives in
/// [`crate::route::Routes`]). Clone freely.
#[derive(Clone)]
pub struct Tails(Arc<Inner>);

struct Inner {
    /// Open subscriptions; zero means `offer` returns at once.
    active: AtomicUsize,
    max: AtomicUsize,
    by_host: ArcSwap<HashMap<Bytes, Subs>>,
    /// Serialises subscribe/unsubscribe (readers never take it).
    edit: Mutex<()>,
    next_id: AtomicU64,
    dropped: Counter,
}

impl Default for Tails {
    fn default() -> Self {
        Tails(Arc::new(Inner {
            active: AtomicUsize::new(0),
            max: AtomicUsize::new(32),
            by_host: ArcSwap::default(),
            edit: Mutex::new(()),
            next_id: AtomicU64::new(1),
            dropped: telemetry::counter("logtrain_tail_dropped_total", &[]),
        }))
    }
}

/// Why a subscription was not opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refused {
    #[error("{0} live tails are open already; retry later")]
    Full(usize),
}

/// An open subscription: lines arrive on `rx`; dropping it unsubscribes.
pub struct Subscription {
    tails: Tails,
    hostname: Bytes,
    id: u64,
    pub rx: mpsc::Receiver<Bytes>,
    /// Lines dropped since the stream last said so (taken by the reader).
    pub dropped: Arc<AtomicU64>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.tails.remove(&self.hostname, self.id);
    }
}

impl Tails {
    /// Sets how many subscriptions may be open at once (`TAIL_MAX_SESSIONS`).
    pub fn set_max_sessions(&self, n: usize) {
        self.0.max.store(n, Ordering::Relaxed);
    }

    /// Open subscriptions.
    pub fn sessions(&self) -> usize {
        self.0.active.load(Ordering::Relaxed)
    }

    /// Opens a subscription to every record offered for `hostname` that passes `filter`.
    pub fn subscribe(&self, hostname: Bytes, filter: Filter) -> Result<Subscription, Refused> {
        let _edit = self.0.edit.lock();
        let max = self.0.max.load(Ordering::Relaxed);
        if self.0.active.load(Ordering::Relaxed) >= max {
            return Err(Refused::Full(max));
        }
        let (tx, rx) = mpsc::channel(BUFFER_LINES);
        let id = self.0.next_id.fetch_add(1, Ordering::Relaxed);
        let dropped = Arc::new(AtomicU64::new(0));
        let sub = Arc::new(Sub {
            id,
            filter,
            tx,
            dropped: dropped.clone(),
        });
        let mut map = HashMap::clone(&self.0.by_host.load());
        let mut list: Vec<Arc<Sub>> = map.get(&hostname).map(|s| s.to_vec()).unwrap_or_default();
        list.push(sub);
        map.insert(hostname.clone(), list.into());
        self.0.by_host.store(Arc::new(map));
        self.0.active.fetch_add(1, Ordering::Release);
        Ok(Subscription {
            tails: self.clone(),
            hostname,
            id,
            rx,
            dropped,
        })
    }

    fn remove(&self, hostname: &Bytes, id: u64) {
        let _edit = self.0.edit.lock();
        let mut map = HashMap::clone(&self.0.by_host.load());
        let Some(list) = map.get(hostname) else {
            return;
        };
        let rest: Vec<Arc<Sub>> = list.iter().filter(|s| s.id != id).cloned().collect();
        if rest.len() == list.len() {
            return;
        }
        if rest.is_empty() {
            map.remove(hostname);
        } else {
            map.insert(hostname.clone(), rest.into());
        }
        self.0.by_host.store(Arc::new(map));
        self.0.active.fetch_sub(1, Ordering::Release);
    }

    /// Ends every stream (shutdown): their senders go, their readers see the end.
    pub fn close_all(&self) {
        let _edit = self.0.edit.lock();
        self.0.by_host.store(Arc::default());
        self.0.active.store(0, Ordering::Release);
    }

    /// Copies `rec` to the subscribers of its hostname. One atomic load when
    /// nobody tails.
    #[inline]
    pub fn offer(&self, rec: &Record) {
        if self.0.active.load(Ordering::Relaxed) == 0 {
            return;
        }
        self.offer_slow(std::slice::from_ref(rec).iter());
    }

    /// [`Tails::offer`] for a batch of records of one hostname.
    #[inline]
    pub fn offer_all<'a, R: AsRef<Record> + 'a>(&self, recs: impl IntoIterator<Item = &'a R>) {
        if self.0.active.load(Ordering::Relaxed) == 0 {
            return;
        }
        self.offer_slow(recs.into_iter().map(|r| r.as_ref()));
    }

    #[cold]
    fn offer_slow<'a>(&self, recs: impl Iterator<Item = &'a Record>) {
        let map = self.0.by_host.load();
        let now = Timestamp::now();
        let mut buf = Vec::new();
        for rec in recs {
            let Some(subs) = map.get(&rec.hostname) else {
                continue;
            };
            let mut line: Option<Bytes> = None;
            for s in subs.iter().filter(|s| s.filter.accepts(rec)) {
                // A full buffer (a stalled client) costs a count, not an encoding.
                if s.tx.capacity() == 0 {
                    self.dropped(s);
                    continue;
                }
                let l = line.get_or_insert_with(|| {
                    buf.clear();
                    crate::encode::rfc5424::encode(rec, now, &mut buf);
                    buf.push(b'\n');
                    Bytes::copy_from_slice(&buf)
                });
                if s.tx.try_send(l.clone()).is_err() {
                    self.dropped(s);
                }
            }
        }
    }

    /// One line a subscriber could not take: counted, logged once per episode.
    fn dropped(&self, s: &Sub) {
        self.0.dropped.inc();
        if s.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            debug!(tail = s.id, "A live tail client is too slow; dropping its lines.");
        }
    }
}

#[cfg(test)]
mod tests;
