//! The single writer of the routing table. It folds every datasource's
//! [`RouteUpdate`]s into per-origin object sets, and after each burst of events
//! publishes one new [`RouteTable`] snapshot: the union of every object's routes.
//!
//! A route (hostname, drain) lives as long as any object of any origin declares
//! it. Drain URLs are validated here (once per URL, cached); a bad one is logged
//! once naming its origin and object, counted, and skipped — the object's other
//! routes still work. Drains no longer referenced are flushed and closed.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use super::policy::{self, Trust};
use super::{RouteTable, Routes};
use crate::datasource::{OriginKind, RouteEvent, RouteObject, RouteSpec, RouteUpdate};
use crate::drain::{Drain, DrainSpec, DrainUrlError, Registry};
use crate::egress::Egress;
use crate::telemetry::{self, OnceLog};

type Objects = HashMap<String, Vec<RouteSpec>>;

/// Folds route events into the published table.
pub struct RouteWriter {
    registry: Arc<Registry>,
    routes: Routes,
    objects: HashMap<OriginKind, Objects>,
    listing: HashMap<OriginKind, Objects>,
    parsed: HashMap<String, Result<DrainSpec, DrainUrlError>>,
    reported: OnceLog,
    expected: BTreeSet<OriginKind>,
    synced: BTreeSet<OriginKind>,
    ready: watch::Sender<bool>,
    /// Where tenants' drains may connect (`DRAIN_DENY_NETWORKS`).
    egress: Arc<Egress>,
}

impl RouteWriter {
    /// `expected` lists the origins that must finish their first listing before
    /// the table counts as ready.
    pub fn new(registry: Arc<Registry>, routes: Routes, expected: impl IntoIterator<Item = OriginKind>) -> Self {
        let expected: BTreeSet<_> = expected.into_iter().collect();
        let (ready, _) = watch::channel(expected.is_empty());
        RouteWriter {
            registry,
            routes,
            objects: HashMap::new(),
            listing: HashMap::new(),
            parsed: HashMap::new(),
            reported: OnceLog::default(),
            expected,
            synced: BTreeSet::new(),
            ready,
            egress: Arc::new(Egress::default()),
        }
    }

    /// Sets where drains named by tenants may connect (the default denies
    /// loopback, link-local and cloud metadata addresses).
    pub fn with_egress(mut self, egress: Egress) -> Self {
        self.egress = Arc::new(egress);
        self
    }

    /// Becomes true once every expected origin has completed a full listing.
    pub fn ready(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }

    /// Runs until every sender is gone, publishing after each burst of events.
    pub async fn run(mut self, mut rx: mpsc::Receiver<RouteUpdate>) {
        while let Some(u) = rx.recv().await {
            let mut changed = self.apply(u);
            while let Ok(u) = rx.try_recv() {
                changed |= self.apply(u);
            }
            if changed {
                self.publish();
            }
        }
    }

    /// Folds one event; returns whether the visible routes may have changed.
    pub fn apply(&mut self, u: RouteUpdate) -> bool {
        let origin = u.origin;
        match u.event {
            RouteEvent::Init => {
                self.listing.insert(origin, Objects::new());
                false
            }
            RouteEvent::InitApply(RouteObject { id, routes }) => {
                self.listing.entry(origin).or_default().insert(id, routes);
                false
            }
            RouteEvent::InitDone => {
                let listed = self.listing.remove(&origin).unwrap_or_default();
                self.objects.insert(origin, listed);
                // Ready is announced by `publish`, once the table holds this listing.
                self.synced.insert(origin);
                true
            }
            RouteEvent::Apply(RouteObject { id, routes }) => {
                let objs = self.objects.entry(origin).or_default();
                if objs.get(&id) == Some(&routes) {
                    return false;
                }
                objs.insert(id, routes);
                true
            }
            RouteEvent::Delete(id) => self.objects.get_mut(&origin).is_some_and(|o| o.remove(&id).is_some()),
        }
    }

    /// Builds and swaps in a new snapshot, then closes drains nobody routes to.
    pub fn publish(&mut self) {
        let mut by_host: HashMap<Bytes, Vec<Arc<Drain>>> = HashMap::new();
        let mut in_use: HashSet<String> = HashSet::new();
        let mut declared: HashMap<Bytes, Vec<OriginKind>> = HashMap::new();
        let mut seen_urls: HashSet<&str> = HashSet::new();
        let mut origins: Vec<_> = self.objects.keys().copied().collect();
        origins.sort();
        for origin in origins {
            let objs = &self.objects[&origin];
            for (obj, routes) in objs {
                for r in routes {
                    seen_urls.insert(r.drain.as_str());
                    let parsed = self
                        .parsed
                        .entry(r.drain.clone())
                        .or_insert_with(|| DrainSpec::parse(&r.drain));
                    let trust = Trust::of(origin);
                    let adapted;
                    let spec = match parsed {
                        Ok(s) => {
                            if let Err(refusal) = policy::admit(s, trust, &self.egress) {
                                if self.reported.first(&format!("{}\0{obj}\0{}", origin.as_str(), r.drain)) {
                                    telemetry::counter("logtrain_route_errors_total", &[("origin", origin.as_str())])
                                        .inc();
                                    warn!(origin = origin.as_str(), object = %obj, hostname = %r.hostname, drain = %s.id, error = %refusal, "Route refused: drain not allowed to this origin.");
                                }
                                continue;
                            }
                            let tag = r.tag.as_deref().filter(|t| !t.is_empty());
                            let tenant = trust == Trust::Tenant;
                            match (tag, tenant) {
                                (None, false) => s,
                                (tag, tenant) => {
                                    let mut a = tag.map_or_else(|| s.clone(), |t| s.tagged(t));
                                    if tenant {
                                        a = a.restricted(self.egress.clone());
                                    }
                                    adapted = a;
                                    &adapted
                                }
                            }
                        }
                        Err(e) => {
                            if self.reported.first(&format!("{}\0{obj}\0{}", origin.as_str(), r.drain)) {
                                telemetry::counter("logtrain_route_errors_total", &[("origin", origin.as_str())]).inc();
                                warn!(origin = origin.as_str(), object = %obj, hostname = %r.hostname, error = %e, "Route skipped: bad drain URL.");
                            }
                            continue;
                        }
                    };
                    let drain = match self.registry.get_or_start(spec) {
                        Ok(d) => d,
                        Err(e) => {
                            if self.reported.first(&format!("{}\0{obj}\0{}", origin.as_str(), r.drain)) {
                                telemetry::counter("logtrain_route_errors_total", &[("origin", origin.as_str())]).inc();
                                warn!(origin = origin.as_str(), object = %obj, hostname = %r.hostname, error = %e, "Route skipped: drain cannot start.");
                            }
                            continue;
                        }
                    };
                    in_use.insert(spec.key.clone());
                    let by = declared.entry(Bytes::from(r.hostname.clone())).or_default();
                    if !by.contains(&origin) {
                        by.push(origin);
                    }
                    let list = by_host.entry(Bytes::from(r.hostname.clone())).or_default();
                    if !list.iter().any(|d| Arc::ptr_eq(d, &drain)) {
                        list.push(drain);
                    }
                }
            }
        }
        // Forget parse results of URLs nobody names any more.
        let stale: Vec<String> = self
            .parsed
            .keys()
            .filter(|u| !seen_urls.contains(u.as_str()))
            .cloned()
            .collect();
        for u in stale {
            self.parsed.remove(&u);
        }
        let table =
            RouteTable::new(by_host.into_iter().map(|(h, d)| (h, Arc::from(d))).collect()).declared_by(declared);
        telemetry::gauge("logtrain_routes", &[]).set(table.len() as i64);
        telemetry::counter("logtrain_route_updates_total", &[]).inc();
        debug!(routes = table.len(), "Routing table published.");
        self.routes.store(table);
        self.registry.retain(|key| in_use.contains(key));
        if !*self.ready.borrow() && self.expected.is_subset(&self.synced) {
            self.ready.send_replace(true);
        }
    }
}
