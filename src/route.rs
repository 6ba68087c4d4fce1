//! The routing table: an immutable snapshot mapping a record's source key (its
//! hostname, as in logtrain) to the drains it goes to, swapped atomically by the
//! single [`writer`]. Readers on the hot path load the current snapshot without
//! taking a lock and resolve each record in one hash lookup.

pub mod policy;
pub mod writer;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bytes::Bytes;

use crate::datasource::OriginKind;
use crate::drain::Drain;
use crate::record::{InputKind, Record, SharedRecord};
use crate::tail::Tails;
use crate::telemetry::{self, Counter};

/// One immutable version of the routes.
#[derive(Default, Debug)]
pub struct RouteTable {
    by_host: HashMap<Bytes, Arc<[Arc<Drain>]>>,
    /// Which origins declare each hostname's routes (read by `GET /routes`).
    origins: HashMap<Bytes, Vec<OriginKind>>,
    routes: usize,
}

impl RouteTable {
    pub fn new(by_host: HashMap<Bytes, Arc<[Arc<Drain>]>>) -> Self {
        let routes = by_host.values().map(|d| d.len()).sum();
        RouteTable {
            by_host,
            origins: HashMap::new(),
            routes,
        }
    }

    /// The table, knowing which origins declare each hostname's routes.
    pub fn declared_by(mut self, origins: HashMap<Bytes, Vec<OriginKind>>) -> Self {
        self.origins = origins;
        self
    }

    /// The origins that declare `hostname`'s routes (empty when not known).
    pub fn origins_of(&self, hostname: &[u8]) -> &[OriginKind] {
        self.origins.get(hostname).map(|o| &o[..]).unwrap_or(&[])
    }

    /// The drains for a hostname (empty when unrouted).
    pub fn drains_for(&self, hostname: &[u8]) -> &[Arc<Drain>] {
        self.by_host.get(hostname).map(|d| &d[..]).unwrap_or(&[])
    }

    /// The shared drain list for a hostname, for callers that cache it (a tailed
    /// file keeps it until the table changes).
    pub fn drains_arc(&self, hostname: &[u8]) -> Option<Arc<[Arc<Drain>]>> {
        self.by_host.get(hostname).cloned()
    }

    /// Number of (hostname, drain) routes.
    pub fn len(&self) -> usize {
        self.routes
    }

    pub fn is_empty(&self) -> bool {
        self.routes == 0
    }

    /// Every hostname with at least one route.
    pub fn hostnames(&self) -> impl Iterator<Item = &Bytes> {
        self.by_host.keys()
    }
}

/// The shared, always-current table, and the live tails every input copies
/// its routed records to. Clone freely.
#[derive(Clone, Default)]
pub struct Routes(Arc<ArcSwap<RouteTable>>, Tails);

impl Routes {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current snapshot (lock-free; hold it for a batch, not forever).
    pub fn load(&self) -> arc_swap::Guard<Arc<RouteTable>> {
        self.0.load()
    }

    /// The current snapshot as an owned `Arc`.
    pub fn snapshot(&self) -> Arc<RouteTable> {
        self.0.load_full()
    }

    /// The live-tail subscribers (see [`crate::tail`]).
    pub fn live(&self) -> &Tails {
        &self.1
    }

    pub(crate) fn store(&self, t: RouteTable) {
        self.0.store(Arc::new(t));
    }
}

/// What happened to a record offered to its drains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Offered {
    /// Drains that took it: queued it, or left it out by their own filters
    /// or rate (`severity=`, `rate=`, … in the drain URL; counted by the drain).
    pub queued: usize,
    /// Drains whose queue was full (counted by the drain and, for
    /// [`Router::offer_to`], in `logtrain_input_dropped_total{input}`).
    pub dropped: usize,
    /// No route at all (counted as unrouted).
    pub unrouted: bool,
}

/// The hot-path entry for push inputs: resolves a record's drains and offers it
/// to each without waiting; full queues drop and count (per drain in
/// `logtrain_drain_dropped_total`, per input in `logtrain_input_dropped_total`).
pub struct Router {
    routes: Routes,
    unrouted: Counter,
    dropped: Counter,
}

impl Router {
    pub fn new(routes: Routes, input: InputKind) -> Self {
        let l = [("input", input.as_str())];
        Router {
            routes,
            unrouted: telemetry::counter("logtrain_unrouted_records_total", &l),
            dropped: telemetry::counter("logtrain_input_dropped_total", &l),
        }
    }

    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Offers one record to its drains.
    pub fn offer(&self, table: &RouteTable, rec: Record) -> Offered {
        self.offer_to(table, rec).1
    }

    /// [`Router::offer`], also naming the drains the record went to. Each drain
    /// whose queue had no room drops it and counts one in
    /// `logtrain_input_dropped_total{input}` (so the input's drops add up to the
    /// drains' `logtrain_drain_dropped_total` for what it offered).
    pub fn offer_to<'t>(&self, table: &'t RouteTable, rec: Record) -> (&'t [Arc<Drain>], Offered) {
        self.routes.live().offer(&rec);
        let drains = table.drains_for(&rec.hostname);
        if drains.is_empty() {
            self.unrouted.inc();
            let o = Offered {
                unrouted: true,
                ..Offered::default()
            };
            return (drains, o);
        }
        let rec: SharedRecord = Arc::new(rec);
        let mut o = Offered::default();
        for d in drains {
            if d.offer(&rec) {
                o.queued += 1;
            } else {
                o.dropped += 1;
            }
        }
        if o.dropped > 0 {
            self.dropped.add(o.dropped as u64);
        }
        (drains, o)
    }

    /// Sends one record to its drains, waiting while their queues are full.
    pub async fn send(&self, rec: Record) -> Offered {
        self.routes.live().offer(&rec);
        let drains = self.routes.load().drains_arc(&rec.hostname);
        let Some(drains) = drains else {
            self.unrouted.inc();
            return Offered {
                unrouted: true,
                ..Offered::default()
            };
        };
        let rec: SharedRecord = Arc::new(rec);
        let mut o = Offered::default();
        for d in drains.iter() {
            if d.send(rec.clone()).await {
                o.queued += 1;
            } else {
                o.dropped += 1;
            }
        }
        o
    }

    /// Whether every drain of `hostname` has room now (inputs that answer their
    /// sender check this before accepting, rather than accept and drop).
    pub fn has_room(&self, table: &RouteTable, hostname: &[u8]) -> bool {
        table.drains_for(hostname).iter().all(|d| d.has_room())
    }
}

#[cfg(test)]
mod tests;
