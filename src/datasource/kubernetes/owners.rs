//! The watch caches (one reflector store per watched resource, and the owners
//! read by GET in `fetched.rs`) and owner-chain resolution from them:
//! Pod → ReplicaSet → Deployment, Pod → Job → CronJob, Pod → StatefulSet /
//! DaemonSet. A pod of a Deployment is resolved without its ReplicaSet: the
//! ReplicaSet a Deployment makes is named `<deployment>-<pod-template-hash>`
//! and its pods carry that hash as a label. Lookups only read the caches;
//! nothing here ever asks the API server.

use std::collections::HashSet;
use std::fmt;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::runtime::reflector::{ObjectRef, Store};

use super::fetched::{Fetched, Key};
use super::slim::Slim;

/// The workload kinds logtrain follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    CronJob,
}

impl WorkloadKind {
    pub const ALL: [WorkloadKind; 6] = [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::ReplicaSet,
        WorkloadKind::Job,
        WorkloadKind::CronJob,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::ReplicaSet => "ReplicaSet",
            WorkloadKind::Job => "Job",
            WorkloadKind::CronJob => "CronJob",
        }
    }

    /// The kind an owner reference names (case-insensitive, plural accepted).
    pub fn from_kind(kind: &str) -> Option<WorkloadKind> {
        let k = kind.to_ascii_lowercase();
        let k = k.strip_suffix('s').unwrap_or(&k);
        WorkloadKind::ALL
            .into_iter()
            .find(|w| w.as_str().eq_ignore_ascii_case(k))
    }
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Metadata-only cache of one resource.
pub type MetaStore<K> = Store<Slim<K>>;

/// Every cache the datasource keeps.
#[derive(Clone)]
pub struct Stores {
    pub pods: MetaStore<Pod>,
    pub deployments: MetaStore<Deployment>,
    pub statefulsets: MetaStore<StatefulSet>,
    pub daemonsets: MetaStore<DaemonSet>,
    pub cronjobs: MetaStore<CronJob>,
    /// ReplicaSets and Jobs that pods of this node name, read by GET.
    pub fetched: Fetched,
}

/// The label a Deployment's pods carry: the hash its ReplicaSet's name ends with.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";

/// Where a pod's direct owner is looked up.
#[derive(Debug, PartialEq)]
enum Direct<'a> {
    /// No owner.
    None,
    /// A kind logtrain does not follow.
    Other,
    /// The Deployment of a ReplicaSet named after it (`<deployment>-<hash>`).
    Deployment(&'a str),
    /// A kind of the caches (a watched one, or one read by GET).
    Cached(WorkloadKind, &'a str),
}

fn lookup<K>(store: &MetaStore<K>, ns: &str, name: &str) -> Option<ObjectMeta>
where
    K: kube::Resource<DynamicType = ()> + Clone,
{
    store.get(&ObjectRef::new(name).within(ns)).map(|o| o.metadata.clone())
}

/// Where a pod's chain of owners ends.
#[derive(Clone, Debug, PartialEq)]
pub enum Top {
    /// The pod has no owner: it names itself.
    Pod,
    /// The top workload found in the caches.
    Workload(WorkloadKind, Box<ObjectMeta>),
    /// An owner the caches do not hold (another kind, or not seen yet).
    Unknown,
}

/// The reference that owns an object: its controller, else its first owner.
pub fn owner_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    let refs = meta.owner_references.as_deref()?;
    refs.iter()
        .find(|r| r.controller == Some(true))
        .or_else(|| refs.first())
}

impl Stores {
    /// A workload's cached metadata.
    pub fn get(&self, kind: WorkloadKind, ns: &str, name: &str) -> Option<ObjectMeta> {
        match kind {
            WorkloadKind::Deployment => lookup(&self.deployments, ns, name),
            WorkloadKind::StatefulSet => lookup(&self.statefulsets, ns, name),
            WorkloadKind::DaemonSet => lookup(&self.daemonsets, ns, name),
            WorkloadKind::ReplicaSet | WorkloadKind::Job => self.fetched.get(kind, ns, name).cloned(),
            WorkloadKind::CronJob => lookup(&self.cronjobs, ns, name),
        }
    }

    /// A pod's direct owner: a ReplicaSet named `<deployment>-<hash>` after
    /// the pod's `pod-template-hash` label and a cached Deployment stands for
    /// that Deployment.
    fn direct<'a>(&self, pod: &'a ObjectMeta) -> Direct<'a> {
        let Some(first) = owner_of(pod) else {
            return Direct::None;
        };
        let Some(kind) = WorkloadKind::from_kind(&first.kind) else {
            return Direct::Other;
        };
        if kind == WorkloadKind::ReplicaSet {
            let ns = pod.namespace.as_deref().unwrap_or_default();
            let hash = pod.labels.as_ref().and_then(|l| l.get(POD_TEMPLATE_HASH));
            let deployment = hash.and_then(|h| first.name.strip_suffix(h.as_str())?.strip_suffix('-'));
            if let Some(d) = deployment.filter(|d| !d.is_empty())
                && self.deployments.get(&ObjectRef::new(d).within(ns)).is_some()
            {
                return Direct::Deployment(d);
            }
        }
        Direct::Cached(kind, &first.name)
    }

    /// The owners to read by GET for this node's pods: the ReplicaSets not
    /// named after a cached Deployment, and the Jobs.
    pub fn wanted(&self) -> HashSet<Key> {
        let mut out = HashSet::new();
        for o in self.pods.state() {
            let pod = &o.metadata;
            if let Direct::Cached(kind @ (WorkloadKind::ReplicaSet | WorkloadKind::Job), name) = self.direct(pod) {
                let ns = pod.namespace.clone().unwrap_or_default();
                out.insert((kind, ns, name.to_string()));
            }
        }
        out
    }

    /// Follows a pod's owners up to the top workload. A ReplicaSet without a
    /// Deployment, or a Job without a CronJob, is itself the top.
    pub fn top_of(&self, pod: &ObjectMeta) -> Top {
        let ns = pod.namespace.as_deref().unwrap_or_default();
        let (mut kind, name) = match self.direct(pod) {
            Direct::None => return Top::Pod,
            Direct::Other => return Top::Unknown,
            Direct::Deployment(d) => (WorkloadKind::Deployment, d),
            Direct::Cached(kind, name) => (kind, name),
        };
        let Some(mut meta) = self.get(kind, ns, name) else {
            return Top::Unknown;
        };
        // ReplicaSet → Deployment and Job → CronJob: at most a few hops.
        for _ in 0..4 {
            let Some(up) = owner_of(&meta).and_then(|r| WorkloadKind::from_kind(&r.kind).map(|k| (k, r.name.clone())))
            else {
                break;
            };
            match self.get(up.0, ns, &up.1) {
                Some(m) => {
                    kind = up.0;
                    meta = m;
                }
                None => break,
            }
        }
        Top::Workload(kind, Box::new(meta))
    }

    /// Every namespace some cached object (workload or pod) lives in.
    pub fn namespaces(&self) -> HashSet<String> {
        fn add<K>(store: &MetaStore<K>, out: &mut HashSet<String>)
        where
            K: kube::Resource<DynamicType = ()> + Clone,
        {
            for o in store.state() {
                if let Some(ns) = &o.metadata.namespace
                    && !out.contains(ns)
                {
                    out.insert(ns.clone());
                }
            }
        }
        let mut out = HashSet::new();
        add(&self.pods, &mut out);
        add(&self.deployments, &mut out);
        add(&self.statefulsets, &mut out);
        add(&self.daemonsets, &mut out);
        add(&self.cronjobs, &mut out);
        for (_, m) in self.fetched.all() {
            if let Some(ns) = &m.namespace
                && !out.contains(ns)
            {
                out.insert(ns.clone());
            }
        }
        out
    }

    /// Whether a workload is owned by another workload logtrain follows (then
    /// its owner, not it, declares the routes).
    pub fn is_owned(meta: &ObjectMeta) -> bool {
        meta.owner_references
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|r| WorkloadKind::from_kind(&r.kind).is_some())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    #[test]
    fn kinds_from_owner_references() {
        assert_eq!(WorkloadKind::from_kind("ReplicaSet"), Some(WorkloadKind::ReplicaSet));
        assert_eq!(WorkloadKind::from_kind("replicasets"), Some(WorkloadKind::ReplicaSet));
        assert_eq!(WorkloadKind::from_kind("CronJob"), Some(WorkloadKind::CronJob));
        assert_eq!(WorkloadKind::from_kind("Node"), None);
        assert_eq!(WorkloadKind::from_kind("Rollout"), None);
    }

    fn meta(ns: &str, name: &str, labels: &[(&str, &str)], owner: Option<(&str, &str)>) -> ObjectMeta {
        ObjectMeta {
            labels: Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
            ..object(ns, name, owner)
        }
    }

    /// An object's metadata: its name and, if given, its controller (kind, name).
    pub(in crate::datasource::kubernetes) fn object(ns: &str, name: &str, owner: Option<(&str, &str)>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            owner_references: owner.map(|(kind, name)| {
                vec![OwnerReference {
                    kind: kind.into(),
                    name: name.into(),
                    controller: Some(true),
                    ..OwnerReference::default()
                }]
            }),
            ..ObjectMeta::default()
        }
    }

    fn store<K: kube::Resource<DynamicType = ()> + Clone>(objects: &[ObjectMeta]) -> MetaStore<K> {
        let (reader, mut writer) = kube::runtime::reflector::store();
        for m in objects {
            writer.apply_watcher_event(&kube::runtime::watcher::Event::Apply(Slim::<K>::new(m.clone())));
        }
        reader
    }

    #[test]
    fn a_replicaset_named_after_a_cached_deployment_and_the_pods_hash_is_not_fetched() {
        let stores = Stores {
            pods: store(&[]),
            deployments: store(&[meta("ns", "web", &[], None), meta("ns", "web-api", &[], None)]),
            statefulsets: store(&[]),
            daemonsets: store(&[]),
            cronjobs: store(&[]),
            fetched: Fetched::default(),
        };
        let hash = [(POD_TEMPLATE_HASH, "5d8f7c9b6")];
        let rs = |name| Some(("ReplicaSet", name));
        let pod = meta("ns", "web-api-5d8f7c9b6-x", &hash, rs("web-api-5d8f7c9b6"));
        assert_eq!(stores.direct(&pod), Direct::Deployment("web-api"));
        match stores.top_of(&pod) {
            Top::Workload(WorkloadKind::Deployment, m) => assert_eq!(m.name.as_deref(), Some("web-api")),
            other => panic!("{other:?}"),
        }
        // Not named `<deployment>-<hash>`, no hash label, no such Deployment, another namespace.
        for pod in [
            meta("ns", "p", &hash, rs("web-legacy")),
            meta("ns", "p", &[], rs("web-5d8f7c9b6")),
            meta("ns", "p", &hash, rs("gone-5d8f7c9b6")),
            meta("other", "p", &hash, rs("web-5d8f7c9b6")),
            meta("ns", "p", &hash, rs("-5d8f7c9b6")),
        ] {
            let name = &pod.owner_references.as_ref().unwrap()[0].name;
            assert_eq!(
                stores.direct(&pod),
                Direct::Cached(WorkloadKind::ReplicaSet, name),
                "{pod:?}"
            );
            assert_eq!(stores.top_of(&pod), Top::Unknown, "not fetched yet");
        }
        let job = meta("ns", "j", &[("job-name", "nightly-1")], Some(("Job", "nightly-1")));
        assert_eq!(stores.direct(&job), Direct::Cached(WorkloadKind::Job, "nightly-1"));
        assert_eq!(stores.direct(&meta("ns", "p", &[], Some(("Node", "n")))), Direct::Other);
        assert_eq!(stores.direct(&meta("ns", "p", &[], None)), Direct::None);
    }

    #[test]
    fn fetched_owners_lead_up_the_chain() {
        let mut fetched = Fetched::default();
        fetched.insert(
            WorkloadKind::Job,
            meta("ns", "nightly-1", &[], Some(("CronJob", "nightly"))),
        );
        fetched.insert(WorkloadKind::ReplicaSet, meta("ns", "solo", &[], None));
        let stores = Stores {
            pods: store(&[
                meta("ns", "a", &[], Some(("Job", "nightly-1"))),
                meta("ns", "b", &[], Some(("ReplicaSet", "solo"))),
            ]),
            deployments: store(&[]),
            statefulsets: store(&[]),
            daemonsets: store(&[]),
            cronjobs: store(&[meta("ns", "nightly", &[], None)]),
            fetched,
        };
        let top = |p: &str| match stores.top_of(&meta(
            "ns",
            p,
            &[],
            if p == "a" {
                Some(("Job", "nightly-1"))
            } else {
                Some(("ReplicaSet", "solo"))
            },
        )) {
            Top::Workload(kind, m) => (kind, m.name.unwrap_or_default()),
            other => panic!("{other:?}"),
        };
        assert_eq!(top("a"), (WorkloadKind::CronJob, "nightly".to_string()));
        assert_eq!(top("b"), (WorkloadKind::ReplicaSet, "solo".to_string()));
        let mut wanted: Vec<Key> = stores.wanted().into_iter().collect();
        wanted.sort();
        assert_eq!(
            wanted,
            [
                (WorkloadKind::ReplicaSet, "ns".to_string(), "solo".to_string()),
                (WorkloadKind::Job, "ns".to_string(), "nightly-1".to_string()),
            ]
        );
    }

    #[test]
    fn controller_owner_wins() {
        let r = |kind: &str, name: &str, c: Option<bool>| OwnerReference {
            kind: kind.into(),
            name: name.into(),
            controller: c,
            ..OwnerReference::default()
        };
        let m = ObjectMeta {
            owner_references: Some(vec![r("ConfigMap", "x", None), r("ReplicaSet", "web-1", Some(true))]),
            ..ObjectMeta::default()
        };
        assert_eq!(owner_of(&m).unwrap().name, "web-1");
        assert!(Stores::is_owned(&m));
        assert!(owner_of(&ObjectMeta::default()).is_none());
    }
}
