//! What the caches mean for logtrain: the route objects (one per annotated
//! top-level workload, one per pod with its own drains or hostname) and the pod
//! directory entries of this node. Recomputed from the caches as a whole, so a
//! change anywhere in an owner chain is always reflected. Hostname annotations
//! out of scope and drains over the cap are left out here, and listed as
//! refusals for the publisher to tell.

use std::cell::OnceCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::Settings;
use super::annotations::{self, AKKERIS_DYNO, HOSTNAME, TAG, annotation, label};
use super::owners::{MetaStore, Stores, Top, WorkloadKind};
use super::refusals::{Reason, Refusal};
use super::scope::Scope;
use crate::datasource::RouteSpec;
use crate::datasource::pods::{PodKey, PodMeta, fallback_hostname};
use crate::drain::DrainSpec;
use crate::record::Workload;

/// Route objects by id.
pub type Objects = BTreeMap<String, Vec<RouteSpec>>;
/// Pod directory entries.
pub type Pods = HashMap<PodKey, Arc<PodMeta>>;

/// Everything the datasource publishes.
#[derive(Default, Debug, PartialEq)]
pub struct View {
    pub objects: Objects,
    pub pods: Pods,
    /// Hostname claims out of scope and drains over the cap, by object.
    pub refusals: Vec<Refusal>,
}

/// Refused drains named in a cap refusal's message, at most.
const NAMED_REFUSED: usize = 5;

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

/// One computation: the caches, the settings, and what was refused so far.
struct Compute<'a> {
    stores: &'a Stores,
    settings: &'a Settings,
    /// Namespaces of the caches, gathered only if an Akkeris claim needs them.
    namespaces: OnceCell<HashSet<String>>,
    refusals: Vec<Refusal>,
    /// (object, reason) already refused in this computation (an owner is
    /// looked at once per pod).
    refused: HashSet<(String, Reason)>,
}

fn object_id(kind: &str, meta: &ObjectMeta) -> String {
    format!(
        "{kind} {}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

impl Compute<'_> {
    fn refuse(&mut self, r: Refusal) {
        if self.refused.insert((r.object.clone(), r.reason)) {
            self.refusals.push(r);
        }
    }

    /// The hostname of `meta`'s records: its hostname annotation when the
    /// scope allows it, else `default` (and the claim is refused).
    fn hostname(&mut self, id: &str, meta: &ObjectMeta, default: String) -> String {
        let Some(claimed) = annotation(meta, HOSTNAME) else {
            return default;
        };
        let ns = meta.namespace.as_deref().unwrap_or_default();
        let scope = Scope {
            scope: self.settings.hostname_scope,
            naming: &self.settings.naming,
        };
        let (stores, namespaces) = (self.stores, &self.namespaces);
        match scope.check(claimed, ns, &default, || namespaces.get_or_init(|| stores.namespaces())) {
            Ok(()) => claimed.to_string(),
            Err(e) => {
                self.refuse(Refusal {
                    object: id.to_string(),
                    reason: Reason::HostnameRefused,
                    subject: claimed.to_string(),
                    message: e.to_string(),
                    routes: 1,
                });
                default
            }
        }
    }

    /// The first `ANNOTATION_MAX_DRAINS` of an object's drains; the rest are refused.
    fn cap(&mut self, id: &str, mut drains: Vec<String>, inherited: bool) -> Vec<String> {
        let max = self.settings.max_drains;
        if drains.len() <= max {
            return drains;
        }
        let named = drains.len();
        let over = drains.split_off(max);
        let mut ids: Vec<String> = over
            .iter()
            .take(NAMED_REFUSED)
            .map(|u| DrainSpec::parse(u).map_or_else(|_| "an invalid URL".to_string(), |s| s.id))
            .collect();
        if over.len() > NAMED_REFUSED {
            ids.push(format!("and {} more", over.len() - NAMED_REFUSED));
        }
        let whose = if inherited { " (its own and its owner's)" } else { "" };
        self.refuse(Refusal {
            object: id.to_string(),
            reason: Reason::TooManyDrains,
            subject: over.join("\n"),
            message: format!(
                "{named} drains named{whose}, ANNOTATION_MAX_DRAINS allows {max}: the first {max} are used, these {} refused: {}",
                over.len(),
                ids.join(", ")
            ),
            routes: over.len() as u64,
        });
        drains
    }

    fn workloads<K>(&mut self, store: &MetaStore<K>, kind: WorkloadKind, out: &mut Objects)
    where
        K: kube::Resource<DynamicType = ()> + Clone,
    {
        for o in store.state() {
            self.workload(kind, &o.metadata, out);
        }
    }

    /// The routes `m` declares, when it is a top-level workload.
    fn workload(&mut self, kind: WorkloadKind, m: &ObjectMeta, out: &mut Objects) {
        let settings = self.settings;
        if !settings.admits(m) || Stores::is_owned(m) || (settings.only_akkeris && !annotations::is_akkeris(m)) {
            return;
        }
        let id = object_id(kind.as_str(), m);
        // Checked with or without drains: the pods of a workload take its hostname.
        let hostname = self.hostname(&id, m, settings.naming.default_hostname(m));
        let drains = annotations::drains(m);
        if drains.is_empty() {
            return;
        }
        let drains = self.cap(&id, drains, false);
        out.insert(id, routes(&hostname, &drains));
    }
}

/// Computes the whole view from the caches.
pub fn compute(stores: &Stores, settings: &Settings) -> View {
    let mut view = View::default();
    let mut c = Compute {
        stores,
        settings,
        namespaces: OnceCell::new(),
        refusals: Vec::new(),
        refused: HashSet::new(),
    };
    c.workloads(&stores.deployments, WorkloadKind::Deployment, &mut view.objects);
    c.workloads(&stores.statefulsets, WorkloadKind::StatefulSet, &mut view.objects);
    c.workloads(&stores.daemonsets, WorkloadKind::DaemonSet, &mut view.objects);
    c.workloads(&stores.cronjobs, WorkloadKind::CronJob, &mut view.objects);
    // ReplicaSets and Jobs read for this node's pods (the others are not known here).
    for (kind, m) in stores.fetched.all() {
        c.workload(kind, m, &mut view.objects);
    }
    for o in stores.pods.state() {
        let pod = &o.metadata;
        if !settings.admits(pod) {
            continue;
        }
        let ns = pod.namespace.as_deref().unwrap_or_default();
        let name = pod.name.as_deref().unwrap_or_default();
        let top = stores.top_of(pod);
        let owner = match &top {
            Top::Workload(kind, m) => Some((*kind, &**m)),
            _ => None,
        };
        if settings.only_akkeris
            && !annotations::is_akkeris(pod)
            && !owner.is_some_and(|(_, m)| annotations::is_akkeris(m))
        {
            continue;
        }
        let naming = &settings.naming;
        let owner_hostname = match owner {
            Some((kind, m)) => c.hostname(&object_id(kind.as_str(), m), m, naming.default_hostname(m)),
            None if matches!(top, Top::Pod) => naming.default_hostname(pod),
            None => fallback_hostname(ns, name, naming.akkeris),
        };
        let pod_id = format!("Pod {ns}/{name}");
        let hostname = c.hostname(&pod_id, pod, owner_hostname.clone());
        let tag = annotation(pod, TAG)
            .or_else(|| owner.and_then(|(_, m)| annotation(m, TAG)))
            .map(str::to_string)
            .unwrap_or_else(|| {
                let dyno = owner
                    .and_then(|(_, m)| label(m, AKKERIS_DYNO))
                    .or_else(|| label(pod, AKKERIS_DYNO));
                naming.pod_tag(name, dyno)
            });
        // A pod's own drains add to its owner's; a pod whose hostname differs
        // from its owner's still reaches the owner's drains. Together they are
        // the pod's routes, capped as one object's.
        let own = annotations::drains(pod);
        let inherited = match owner {
            Some((kind, m)) if hostname != owner_hostname || !own.is_empty() => {
                let drains = annotations::drains(m);
                c.cap(&object_id(kind.as_str(), m), drains, false)
            }
            _ => Vec::new(),
        };
        if !own.is_empty() || !inherited.is_empty() {
            let with_owner = !inherited.is_empty();
            let mut all = inherited;
            // `all` holds at most the cap here: a scan per drain stays cheap.
            let from_owner = all.len();
            for d in own {
                if !all[..from_owner].contains(&d) {
                    all.push(d);
                }
            }
            let all = c.cap(&pod_id, all, with_owner);
            view.objects.insert(pod_id, routes(&hostname, &all));
        }
        let workload = owner.map(|(kind, m)| Workload {
            kind: kind.as_str().to_string(),
            name: m.name.clone().unwrap_or_default(),
        });
        let labels = Arc::new(pod.labels.clone().unwrap_or_default());
        view.pods.insert(
            PodKey::new(ns, name),
            Arc::new(PodMeta {
                hostname,
                tag,
                workload,
                labels,
            }),
        );
    }
    view.refusals = c.refusals;
    view
}

#[cfg(test)]
mod tests {
    use kube::runtime::reflector;
    use kube::runtime::watcher::Event;

    use super::*;
    use crate::config::HostnameScope;
    use crate::datasource::kubernetes::fetched::Fetched;
    use crate::datasource::kubernetes::slim::Slim;

    fn meta(ns: &str, name: &str, ann: &[(&str, &str)], owner: Option<(&str, &str)>) -> ObjectMeta {
        ObjectMeta {
            annotations: Some(ann.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..crate::datasource::kubernetes::owners::tests::object(ns, name, owner)
        }
    }

    fn store<K>(objects: &[ObjectMeta]) -> MetaStore<K>
    where
        K: kube::Resource<DynamicType = ()> + Clone,
    {
        let (reader, mut writer) = reflector::store();
        for m in objects {
            writer.apply_watcher_event(&Event::Apply(Slim::<K>::new(m.clone())));
        }
        reader
    }

    fn stores(deployments: &[ObjectMeta], replicasets: &[ObjectMeta], pods: &[ObjectMeta]) -> Stores {
        let mut fetched = Fetched::default();
        for m in replicasets {
            fetched.insert(WorkloadKind::ReplicaSet, m.clone());
        }
        Stores {
            pods: store(pods),
            deployments: store(deployments),
            statefulsets: store(&[]),
            daemonsets: store(&[]),
            cronjobs: store(&[]),
            fetched,
        }
    }

    fn hostnames(v: &View, id: &str) -> Vec<String> {
        v.objects[id].iter().map(|r| r.hostname.clone()).collect()
    }

    fn drains(v: &View, id: &str) -> Vec<String> {
        v.objects[id].iter().map(|r| r.drain.clone()).collect()
    }

    const D: &str = annotations::DRAINS;

    #[test]
    fn a_claim_out_of_scope_leaves_the_workload_and_its_pods_their_default_hostname() {
        let s = stores(
            &[
                meta("evil", "x", &[(D, "syslog://a"), (HOSTNAME, "web.default")], None),
                meta("evil", "y", &[(HOSTNAME, "web.default")], None),
            ],
            &[meta("evil", "y-1", &[], Some(("Deployment", "y")))],
            &[
                meta("evil", "y-1-a", &[], Some(("ReplicaSet", "y-1"))),
                meta("evil", "bare", &[(HOSTNAME, "web.default")], None),
                // Owned by a kind logtrain does not follow: the name-derived fallback.
                meta("evil", "etcd-node-a", &[(HOSTNAME, "web.default")], Some(("Node", "n"))),
            ],
        );
        let v = compute(&s, &Settings::default());
        assert_eq!(hostnames(&v, "Deployment evil/x"), ["x.evil"]);
        let pod = |name: &str| v.pods[&PodKey::new("evil", name)].hostname.clone();
        assert_eq!(pod("y-1-a"), "y.evil");
        assert_eq!(pod("bare"), "bare.evil");
        assert_eq!(pod("etcd-node-a"), "etcd.evil");
        let mut refused: Vec<(&str, Reason)> = v.refusals.iter().map(|r| (r.object.as_str(), r.reason)).collect();
        refused.sort();
        assert_eq!(
            refused,
            [
                ("Deployment evil/x", Reason::HostnameRefused),
                ("Deployment evil/y", Reason::HostnameRefused),
                ("Pod evil/bare", Reason::HostnameRefused),
                ("Pod evil/etcd-node-a", Reason::HostnameRefused),
            ],
            "a workload looked at again through its pod is refused once"
        );
        let any = Settings {
            hostname_scope: HostnameScope::Any,
            ..Settings::default()
        };
        let v = compute(&s, &any);
        assert_eq!(hostnames(&v, "Deployment evil/x"), ["web.default"]);
        assert_eq!(v.pods[&PodKey::new("evil", "y-1-a")].hostname, "web.default");
        assert!(v.refusals.is_empty());
    }

    #[test]
    fn an_object_routes_at_most_the_cap_counting_a_pods_own_and_inherited_drains_together() {
        let s = stores(
            &[
                meta(
                    "ns",
                    "many",
                    &[(D, "syslog://a;syslog://b;syslog://c;http://[::1")],
                    None,
                ),
                meta("ns", "two", &[(D, "syslog://a;syslog://a;syslog://b")], None),
            ],
            &[meta("ns", "two-1", &[], Some(("Deployment", "two")))],
            &[
                // Its own drain repeats one of its owner's: two in all, within the cap.
                meta(
                    "ns",
                    "two-1-a",
                    &[(D, "syslog://b"), (HOSTNAME, "a.ns")],
                    Some(("ReplicaSet", "two-1")),
                ),
                meta(
                    "ns",
                    "two-1-b",
                    &[(D, "syslog://c"), (HOSTNAME, "b.ns")],
                    Some(("ReplicaSet", "two-1")),
                ),
            ],
        );
        let capped = Settings {
            max_drains: 2,
            ..Settings::default()
        };
        let v = compute(&s, &capped);
        assert_eq!(drains(&v, "Deployment ns/many"), ["syslog://a", "syslog://b"]);
        assert_eq!(drains(&v, "Deployment ns/two"), ["syslog://a", "syslog://b"]);
        assert_eq!(drains(&v, "Pod ns/two-1-a"), ["syslog://a", "syslog://b"]);
        assert_eq!(drains(&v, "Pod ns/two-1-b"), ["syslog://a", "syslog://b"]);
        let refused: Vec<&Refusal> = v.refusals.iter().collect();
        assert_eq!(refused.len(), 2, "{refused:#?}");
        let many = refused.iter().find(|r| r.object == "Deployment ns/many").unwrap();
        assert_eq!((many.reason, many.routes), (Reason::TooManyDrains, 2));
        assert!(many.message.contains("4 drains named"), "{}", many.message);
        assert!(many.message.contains("syslog://c") && many.message.contains("an invalid URL"));
        let pod = refused.iter().find(|r| r.object == "Pod ns/two-1-b").unwrap();
        assert_eq!(pod.routes, 1);
        assert!(pod.message.contains("its owner's"), "{}", pod.message);
    }
}
