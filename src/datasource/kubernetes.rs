//! The Kubernetes datasource: routes from `logtrain.akkeris.io/*` annotations
//! on workloads (Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs,
//! CronJobs) and on this node's pods, and the [`PodDirectory`] of this node.
//!
//! It watches metadata only (`watch.rs`), resolves owner chains from its own
//! caches (`owners.rs`; a pod's ReplicaSet or Job is read by GET, once, only
//! when nothing else tells its owner: `fetched.rs`), names things as logtrain does
//! (`annotations.rs`) and recomputes its whole view (`view.rs`) after each
//! burst of changes (debounced). The first full listing is sent only once every
//! cache is synced (readiness), and again after any relist; in between, only
//! objects that changed are sent. It never exits on an API error: watches back
//! off and relist, and the last routes keep serving meanwhile.
//!
//! Annotations are a tenant's word, not the operator's: a hostname out of
//! `ROUTE_HOSTNAME_SCOPE` (`scope.rs`) and drains over `ANNOTATION_MAX_DRAINS`
//! are refused when the view is computed, and every refusal (those of the route
//! writer's drain policy too) is told once as an Event (`refusals.rs`, `events.rs`).

pub mod annotations;
pub mod events;
pub mod fetched;
pub mod owners;
pub mod refusals;
pub mod scope;
pub mod slim;
pub mod view;
pub mod watch;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use kube::Client;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::pods::PodDirectory;
use super::{Datasource, OriginKind, RouteEvent, RouteObject, RouteSender, RouteUpdate};
use crate::backoff::Backoff;
use crate::config::{Config, HostnameScope};
use crate::egress::Egress;
use crate::telemetry;
use annotations::Naming;
use owners::Stores;
use refusals::{Told, Verdicts};
use view::{Objects, Pods};
use watch::Change;

/// How long a burst of changes is gathered before the view is recomputed.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Why the datasource cannot start.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("no Kubernetes client configuration: no kubeconfig ({kubeconfig}) and not in a cluster ({in_cluster})")]
    NoConfig { kubeconfig: String, in_cluster: String },
    #[error("Kubernetes client: {0}")]
    Client(#[from] kube::Error),
}

/// What the datasource watches, how it names things, and what annotations may declare.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Only pods of this node are watched (`NODE_NAME`); every pod without it.
    pub node_name: Option<String>,
    pub naming: Naming,
    /// Namespaces ignored entirely (`EXCLUDE_NAMESPACES`).
    pub exclude_namespaces: Vec<String>,
    /// Only workloads and pods with an `akkeris.io/app-name` label (`ONLY_AKKERIS`).
    pub only_akkeris: bool,
    /// Which hostnames a hostname annotation may claim (`ROUTE_HOSTNAME_SCOPE`).
    pub hostname_scope: HostnameScope,
    /// Drains one object may name at most (`ANNOTATION_MAX_DRAINS`).
    pub max_drains: usize,
    /// Where drains named in annotations may connect (`DRAIN_DENY_NETWORKS`),
    /// the route writer's policy, to tell refused drains on their object.
    pub egress: Arc<Egress>,
}

impl Default for Settings {
    /// The settings of the default configuration.
    fn default() -> Self {
        Settings::from_config(&Config::default())
    }
}

impl Settings {
    pub fn from_config(c: &Config) -> Settings {
        Settings {
            node_name: c.node_name.clone(),
            naming: Naming { akkeris: c.akkeris },
            exclude_namespaces: c.exclude_namespaces.clone(),
            only_akkeris: c.only_akkeris,
            hostname_scope: c.route_hostname_scope,
            max_drains: c.annotation_max_drains,
            egress: Arc::new(Egress::new(c.drain_deny_networks.clone())),
        }
    }
}

enum ClientSource {
    Ready(Client),
    /// A kubeconfig was found; it is loaded (which may run an auth plugin) in `run`.
    Kubeconfig,
}

/// The datasource. Build it with [`KubernetesSource::new`] (a client) or
/// [`KubernetesSource::infer`] (in-cluster service account, else `KUBECONFIG`).
pub struct KubernetesSource {
    client: ClientSource,
    settings: Settings,
    pods: PodDirectory,
    debounce: Duration,
}

impl KubernetesSource {
    pub fn new(client: Client, settings: Settings, pods: PodDirectory) -> Self {
        KubernetesSource {
            client: ClientSource::Ready(client),
            settings,
            pods,
            debounce: DEBOUNCE,
        }
    }

    /// kube's usual inference: a kubeconfig (`KUBECONFIG`, `~/.kube/config`),
    /// else the in-cluster service account. Fails when neither exists.
    pub fn infer(settings: Settings, pods: PodDirectory) -> Result<Self, KubeError> {
        let client = match kube::config::Kubeconfig::read() {
            Ok(_) => ClientSource::Kubeconfig,
            Err(kc) => match kube::Config::incluster() {
                Ok(config) => ClientSource::Ready(Client::try_from(config)?),
                Err(ic) => {
                    return Err(KubeError::NoConfig {
                        kubeconfig: kc.to_string(),
                        in_cluster: ic.to_string(),
                    });
                }
            },
        };
        Ok(KubernetesSource {
            client,
            settings,
            pods,
            debounce: DEBOUNCE,
        })
    }

    async fn client(&self, stop: &CancellationToken) -> Option<Client> {
        if let ClientSource::Ready(c) = &self.client {
            return Some(c.clone());
        }
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut logged = false;
        loop {
            let made = kube::Config::infer()
                .await
                .map_err(|e| e.to_string())
                .and_then(|c| Client::try_from(c).map_err(|e| e.to_string()));
            match made {
                Ok(c) => return Some(c),
                Err(e) if !logged => {
                    error!(error = %e, "Cannot load the Kubernetes client configuration; retrying.");
                    logged = true;
                }
                Err(_) => {}
            }
            tokio::select! {
                _ = stop.cancelled() => return None,
                _ = tokio::time::sleep(backoff.next_delay()) => {}
            }
        }
    }

    async fn follow(self, tx: RouteSender, stop: CancellationToken) {
        let Some(client) = self.client(&stop).await else {
            return;
        };
        let node = self.settings.node_name.as_deref();
        match node {
            Some(n) => info!(
                node = n,
                "Kubernetes datasource watching this node's pods and the cluster's workloads."
            ),
            None => warn!("NODE_NAME is not set: the Kubernetes datasource watches the pods of every node."),
        }
        let (stores, mut reports) = watch::start(&client, node);
        let mut p = Publisher {
            events: events::Reporter::new(client.clone(), node.map(String::from)),
            client: client.clone(),
            told: Told::default(),
            verdicts: Verdicts::default(),
            stores,
            settings: self.settings.clone(),
            directory: self.pods.clone(),
            tx,
            sent: Objects::new(),
            pods: Pods::new(),
            full: true,
        };
        let mut listed: HashSet<&'static str> = HashSet::new();
        let mut failing: HashSet<&'static str> = HashSet::new();
        let mut due: Option<Instant> = None;
        loop {
            let wait = async {
                match due {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            let mut dirty = false;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = wait => {
                    if !p.publish().await {
                        return;
                    }
                    // The owners read by GET are read again when due.
                    due = p.stores.fetched.next_expiry();
                }
                report = reports.next() => {
                    let Some((resource, report)) = report else { return };
                    match report {
                        Ok(Change::Init) => {
                            if listed.contains(resource) {
                                telemetry::counter("logtrain_kubernetes_relists_total", &[("resource", resource)]).inc();
                                info!(resource, "Relisting from the Kubernetes API.");
                            }
                        }
                        Ok(Change::Listing) => {}
                        Ok(Change::Listed) => {
                            if !listed.insert(resource) {
                                p.full = true;
                            }
                            if failing.remove(resource) {
                                info!(resource, "Kubernetes watch recovered.");
                            }
                            dirty = true;
                        }
                        Ok(Change::Changed) => {
                            if failing.remove(resource) {
                                info!(resource, "Kubernetes watch recovered.");
                            }
                            dirty = true;
                        }
                        Err(e) => {
                            telemetry::counter("logtrain_kubernetes_watch_errors_total", &[("resource", resource)]).inc();
                            if failing.insert(resource) {
                                warn!(resource, error = %e, "Kubernetes watch failed; keeping the last routes and retrying.");
                            } else {
                                debug!(resource, error = %e, "Kubernetes watch still failing.");
                            }
                        }
                    }
                }
            }
            if dirty && listed.len() == watch::RESOURCES.len() {
                // A burst is gathered for `debounce`; a later refresh comes sooner.
                let soon = Instant::now() + self.debounce;
                if due.is_none_or(|d| d > soon) {
                    due = Some(soon);
                }
            }
        }
    }
}

/// Sends what changed since the last publication.
struct Publisher {
    /// What was refused of annotations, as Kubernetes Events.
    events: events::Reporter,
    /// Reads the owners the watches do not hold (`fetched.rs`).
    client: Client,
    /// Refusals already told.
    told: Told,
    /// Drain URLs that do not parse or that annotations may not name.
    verdicts: Verdicts,
    stores: Stores,
    settings: Settings,
    directory: PodDirectory,
    tx: RouteSender,
    sent: Objects,
    pods: Pods,
    /// The next publication is a full listing (first sync, after a relist).
    full: bool,
}

impl Publisher {
    async fn send(&self, event: RouteEvent) -> bool {
        self.tx
            .send(RouteUpdate {
                origin: OriginKind::Kubernetes,
                event,
            })
            .await
            .is_ok()
    }

    /// Recomputes the view and sends it; false when the route writer is gone.
    async fn publish(&mut self) -> bool {
        let wanted = self.stores.wanted();
        let gets = self.stores.fetched.update(&self.client, wanted).await;
        if gets > 0 {
            debug!(gets, "Read pods' owners from the Kubernetes API.");
        }
        let mut view = view::compute(&self.stores, &self.settings);
        let mut refused = std::mem::take(&mut view.refusals);
        refused.extend(self.verdicts.review(&view.objects, &self.settings.egress));
        for r in self.told.news(&refused) {
            r.log_and_count();
            self.events.tell(r, &self.stores);
        }
        if view.pods != self.pods {
            self.directory.replace(view.pods.clone());
            self.pods = view.pods;
        }
        if self.full {
            if !self.send(RouteEvent::Init).await {
                return false;
            }
            for (id, routes) in &view.objects {
                let obj = RouteObject {
                    id: id.clone(),
                    routes: routes.clone(),
                };
                if !self.send(RouteEvent::InitApply(obj)).await {
                    return false;
                }
            }
            if !self.send(RouteEvent::InitDone).await {
                return false;
            }
            info!(
                objects = view.objects.len(),
                pods = self.pods.len(),
                "Kubernetes routes listed."
            );
            self.full = false;
        } else {
            for (id, routes) in &view.objects {
                if self.sent.get(id) != Some(routes) {
                    debug!(object = %id, "Kubernetes routes changed.");
                    let obj = RouteObject {
                        id: id.clone(),
                        routes: routes.clone(),
                    };
                    if !self.send(RouteEvent::Apply(obj)).await {
                        return false;
                    }
                }
            }
            let gone: Vec<String> = self
                .sent
                .keys()
                .filter(|id| !view.objects.contains_key(*id))
                .cloned()
                .collect();
            for id in gone {
                debug!(object = %id, "Kubernetes routes removed.");
                if !self.send(RouteEvent::Delete(id)).await {
                    return false;
                }
            }
        }
        self.sent = view.objects;
        true
    }
}

impl Datasource for KubernetesSource {
    fn origin(&self) -> OriginKind {
        OriginKind::Kubernetes
    }

    fn run(self: Box<Self>, tx: RouteSender, stop: CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(self.follow(tx, stop))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_carry_the_security_model_of_the_config() {
        let d = Settings::default();
        assert_eq!(d.hostname_scope, HostnameScope::Namespace);
        assert_eq!(d.max_drains, 16);
        assert_eq!(*d.egress, Egress::default());
        let c = Config {
            route_hostname_scope: HostnameScope::Any,
            annotation_max_drains: 3,
            drain_deny_networks: Vec::new(),
            akkeris: true,
            ..Config::default()
        };
        let s = Settings::from_config(&c);
        assert_eq!(s.hostname_scope, HostnameScope::Any);
        assert_eq!(s.max_drains, 3);
        assert_eq!(*s.egress, Egress::open());
        assert!(s.naming.akkeris);
    }
}
