//! What the caches mean for logtrain: the route objects (one per annotated
//! top-level workload, one per pod with its own drains or hostname) and the pod
//! directory entries of this node. Recomputed from the caches as a whole, so a
//! change anywhere in an owner chain is always reflected.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::Settings;
use super::annotations::{self, AKKERIS_DYNO, HOSTNAME, TAG, annotation, label};
use super::owners::{MetaStore, Stores, Top, WorkloadKind};
use crate::datasource::RouteSpec;
use crate::datasource::pods::{PodKey, PodMeta, fallback_hostname};

/// Route objects by id.
pub type Objects = BTreeMap<String, Vec<RouteSpec>>;
/// Pod directory entries.
pub type Pods = HashMap<PodKey, Arc<PodMeta>>;

/// Everything the datasource publishes.
#[derive(Default, Debug, PartialEq)]
pub struct View {
    pub objects: Objects,
    pub pods: Pods,
}

fn routes(hostname: &str, drains: &[String]) -> Vec<RouteSpec> {
    drains
        .iter()
        .map(|d| RouteSpec {
            hostname: hostname.to_string(),
            drain: d.clone(),
            tag: None,
        })
        .collect()
}

impl Settings {
    fn admits(&self, meta: &ObjectMeta) -> bool {
        let ns = meta.namespace.as_deref().unwrap_or_default();
        !self.exclude_namespaces.iter().any(|x| x == ns)
    }
}

fn workloads<K>(store: &MetaStore<K>, kind: WorkloadKind, settings: &Settings, out: &mut Objects)
where
    K: kube::Resource<DynamicType = ()> + Clone,
{
    for o in store.state() {
        let m = &o.metadata;
        if !settings.admits(m) || Stores::is_owned(m) || (settings.only_akkeris && !annotations::is_akkeris(m)) {
            continue;
        }
        let drains = annotations::drains(m);
        if drains.is_empty() {
            continue;
        }
        let id = format!(
            "{kind} {}/{}",
            m.namespace.as_deref().unwrap_or_default(),
            m.name.as_deref().unwrap_or_default()
        );
        out.insert(id, routes(&settings.naming.workload_hostname(m), &drains));
    }
}

/// Computes the whole view from the caches.
pub fn compute(stores: &Stores, settings: &Settings) -> View {
    let mut view = View::default();
    workloads(
        &stores.deployments,
        WorkloadKind::Deployment,
        settings,
        &mut view.objects,
    );
    workloads(
        &stores.statefulsets,
        WorkloadKind::StatefulSet,
        settings,
        &mut view.objects,
    );
    workloads(&stores.daemonsets, WorkloadKind::DaemonSet, settings, &mut view.objects);
    workloads(
        &stores.replicasets,
        WorkloadKind::ReplicaSet,
        settings,
        &mut view.objects,
    );
    workloads(&stores.jobs, WorkloadKind::Job, settings, &mut view.objects);
    workloads(&stores.cronjobs, WorkloadKind::CronJob, settings, &mut view.objects);
    for o in stores.pods.state() {
        let pod = &o.metadata;
        if !settings.admits(pod) {
            continue;
        }
        let ns = pod.namespace.as_deref().unwrap_or_default();
        let name = pod.name.as_deref().unwrap_or_default();
        let top = stores.top_of(pod);
        let owner = match &top {
            Top::Workload(_, m) => Some(&**m),
            _ => None,
        };
        if settings.only_akkeris && !annotations::is_akkeris(pod) && !owner.is_some_and(annotations::is_akkeris) {
            continue;
        }
        let naming = &settings.naming;
        let owner_hostname = match &top {
            Top::Pod => naming.workload_hostname(pod),
            Top::Workload(_, m) => naming.workload_hostname(m),
            Top::Unknown => fallback_hostname(ns, name, naming.akkeris),
        };
        let hostname = annotation(pod, HOSTNAME).map_or_else(|| owner_hostname.clone(), str::to_string);
        let tag = annotation(pod, TAG)
            .or_else(|| owner.and_then(|m| annotation(m, TAG)))
            .map(str::to_string)
            .unwrap_or_else(|| {
                let dyno = owner
                    .and_then(|m| label(m, AKKERIS_DYNO))
                    .or_else(|| label(pod, AKKERIS_DYNO));
                naming.pod_tag(name, dyno)
            });
        // A pod's own drains add to its owner's; a pod whose hostname differs
        // from its owner's still reaches the owner's drains.
        let own = annotations::drains(pod);
        let inherited = match owner {
            Some(m) if hostname != owner_hostname || !own.is_empty() => annotations::drains(m),
            _ => Vec::new(),
        };
        if !own.is_empty() || !inherited.is_empty() {
            let mut all = inherited;
            for d in own {
                if !all.contains(&d) {
                    all.push(d);
                }
            }
            view.objects.insert(format!("Pod {ns}/{name}"), routes(&hostname, &all));
        }
        view.pods
            .insert(PodKey::new(ns, name), Arc::new(PodMeta { hostname, tag }));
    }
    view
}
