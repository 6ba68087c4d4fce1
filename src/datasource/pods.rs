//! The pod directory: what the Kubernetes datasource knows about the pods of
//! this node — the hostname (routing key) and tag their records carry — shared
//! with the container log tailer. Readers never lock; the datasource swaps in a
//! whole new map, and the tailer notices through [`PodDirectory::changed`].

use std::collections::{BTreeMap, HashMap};

use crate::record::Workload;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;

/// Identifies a pod.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PodKey {
    pub namespace: String,
    pub pod: String,
}

impl PodKey {
    pub fn new(namespace: impl Into<String>, pod: impl Into<String>) -> Self {
        PodKey {
            namespace: namespace.into(),
            pod: pod.into(),
        }
    }
}

/// How a pod's records are labelled.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodMeta {
    /// The routing key: the `logtrain.akkeris.io/hostname` annotation, else
    /// `name.namespace` of the top owner (`name-namespace` with `AKKERIS`).
    pub hostname: String,
    /// The app name: the `logtrain.akkeris.io/tag` annotation, else the pod name
    /// (`<dyno>.<podid>` with `AKKERIS`).
    pub tag: String,
    /// The pod's top owner (kind and name), if it has one.
    pub workload: Option<Workload>,
    /// The pod's labels (shared with every record of the pod that carries them).
    pub labels: Arc<BTreeMap<String, String>>,
}

/// The shared, always-current directory. Clone freely.
#[derive(Clone)]
pub struct PodDirectory {
    pods: Arc<ArcSwap<HashMap<PodKey, Arc<PodMeta>>>>,
    generation: watch::Sender<u64>,
}

impl Default for PodDirectory {
    fn default() -> Self {
        PodDirectory {
            pods: Arc::default(),
            generation: watch::channel(0).0,
        }
    }
}

impl PodDirectory {
    pub fn new() -> Self {
        Self::default()
    }

    /// What is known about a pod.
    pub fn get(&self, key: &PodKey) -> Option<Arc<PodMeta>> {
        self.pods.load().get(key).cloned()
    }

    /// Replaces the whole directory (one writer: the Kubernetes datasource).
    pub fn replace(&self, pods: HashMap<PodKey, Arc<PodMeta>>) {
        self.pods.store(Arc::new(pods));
        self.generation.send_modify(|g| *g += 1);
    }

    /// Number of pods known.
    pub fn len(&self) -> usize {
        self.pods.load().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Changes whenever the directory is replaced.
    pub fn changed(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }
}

/// logtrain's fallback hostname for a pod it knows nothing about: the pod name
/// without its last two `-` segments (ReplicaSet hash and pod id), `.`, the
/// namespace: `web-7d9f8c6b5-x2x4z` in `default` → `web.default`. Names with
/// fewer segments are used whole.
pub fn fallback_hostname(namespace: &str, pod: &str, akkeris: bool) -> String {
    let parts: Vec<&str> = pod.split('-').collect();
    let app = if parts.len() > 2 {
        parts[..parts.len() - 2].join("-")
    } else {
        pod.to_string()
    };
    if akkeris {
        format!("{app}-{namespace}")
    } else {
        format!("{app}.{namespace}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallback_names_as_logtrain() {
        assert_eq!(
            fallback_hostname("default", "web-7d9f8c6b5-x2x4z", false),
            "web.default"
        );
        assert_eq!(fallback_hostname("prod", "my-api-7d9f8c6b5-x2x4z", true), "my-api-prod");
        assert_eq!(fallback_hostname("ns", "solo", false), "solo.ns");
        assert_eq!(fallback_hostname("ns", "db-0", false), "db-0.ns");
    }

    #[tokio::test]
    async fn replace_is_seen_and_signalled() {
        let d = PodDirectory::new();
        let mut ch = d.changed();
        let k = PodKey::new("default", "web-1");
        assert!(d.get(&k).is_none());
        let mut m = HashMap::new();
        m.insert(
            k.clone(),
            Arc::new(PodMeta {
                hostname: "web.default".into(),
                tag: "web-1".into(),
                ..PodMeta::default()
            }),
        );
        d.replace(m);
        assert!(ch.has_changed().unwrap());
        ch.mark_unchanged();
        assert_eq!(d.get(&k).unwrap().hostname, "web.default");
    }
}
