//! ReplicaSets and Jobs, read one at a time: the direct owner of a pod of this
//! node, fetched by a metadata-only GET when the watch caches cannot stand in
//! for it, and cached. The cluster's ReplicaSets and Jobs are never listed or
//! watched: a Deployment's pod names its ReplicaSet `<deployment>-<hash>` and
//! carries the hash as its `pod-template-hash` label, which is enough
//! (`owners.rs`); every other ReplicaSet, and every Job, is asked for here.
//!
//! An entry lives while a pod of this node names it, and is read again
//! [`REFRESH`] after it was (a GET that failed: [`RETRY`] after), so a change to
//! a standalone ReplicaSet's or Job's own annotations is seen within that time.
//! It never lists, and never asks for an object no pod of this node names.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Api, Client};
use tokio::time::Instant;
use tracing::debug;

use super::annotations::trim;
use super::owners::WorkloadKind;

/// How long a fetched owner is used before it is read again.
pub const REFRESH: Duration = Duration::from_secs(300);
/// How long after a failed GET it is tried again.
pub const RETRY: Duration = Duration::from_secs(5);
/// GETs in flight at once.
const CONCURRENCY: usize = 4;

/// `(kind, namespace, name)` of a fetched owner.
pub type Key = (WorkloadKind, String, String);

#[derive(Clone, Debug)]
struct Entry {
    /// `None`: the API server answered 404 (or nothing was read yet).
    meta: Option<ObjectMeta>,
    expires: Instant,
}

/// The cache of owners read by GET.
#[derive(Clone, Debug, Default)]
pub struct Fetched {
    entries: HashMap<Key, Entry>,
}

impl Fetched {
    /// A cached owner's metadata.
    pub fn get(&self, kind: WorkloadKind, ns: &str, name: &str) -> Option<&ObjectMeta> {
        self.entries
            .get(&(kind, ns.to_string(), name.to_string()))
            .and_then(|e| e.meta.as_ref())
    }

    /// Every cached owner that exists.
    pub fn all(&self) -> impl Iterator<Item = (WorkloadKind, &ObjectMeta)> {
        self.entries
            .iter()
            .filter_map(|((kind, _, _), e)| e.meta.as_ref().map(|m| (*kind, m)))
    }

    /// Sets an entry (tests build caches with it).
    pub fn insert(&mut self, kind: WorkloadKind, meta: ObjectMeta) {
        let key = (
            kind,
            meta.namespace.clone().unwrap_or_default(),
            meta.name.clone().unwrap_or_default(),
        );
        let expires = Instant::now() + REFRESH;
        self.entries.insert(
            key,
            Entry {
                meta: Some(meta),
                expires,
            },
        );
    }

    /// When the first entry is due to be read again.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.entries.values().map(|e| e.expires).min()
    }

    /// Keeps the entries of `wanted` only, and reads those missing or due.
    /// Returns the number of GETs made.
    pub async fn update(&mut self, client: &Client, wanted: HashSet<Key>) -> usize {
        self.entries.retain(|k, _| wanted.contains(k));
        let now = Instant::now();
        let due: Vec<Key> = wanted
            .into_iter()
            .filter(|k| self.entries.get(k).is_none_or(|e| e.expires <= now))
            .collect();
        let n = due.len();
        let answers: Vec<(Key, Result<Option<ObjectMeta>, kube::Error>)> = futures_util::stream::iter(due)
            .map(|key| async move {
                let got = read(client, &key).await;
                (key, got)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let now = Instant::now();
        for (key, got) in answers {
            match got {
                Ok(meta) => {
                    let meta = meta.map(|mut m| {
                        trim(&mut m);
                        m
                    });
                    self.entries.insert(
                        key,
                        Entry {
                            meta,
                            expires: now + REFRESH,
                        },
                    );
                }
                Err(e) => {
                    debug!(kind = %key.0, namespace = %key.1, name = %key.2, error = %e, "Cannot read a pod's owner; retrying.");
                    let entry = self.entries.entry(key).or_insert(Entry {
                        meta: None,
                        expires: now,
                    });
                    entry.expires = now + RETRY;
                }
            }
        }
        n
    }
}

/// One metadata-only GET; `Ok(None)` for 404.
async fn read(client: &Client, (kind, ns, name): &Key) -> Result<Option<ObjectMeta>, kube::Error> {
    let got = match kind {
        WorkloadKind::ReplicaSet => Api::<ReplicaSet>::namespaced(client.clone(), ns)
            .get_metadata_opt(name)
            .await?
            .map(|o| o.metadata),
        WorkloadKind::Job => Api::<Job>::namespaced(client.clone(), ns)
            .get_metadata_opt(name)
            .await?
            .map(|o| o.metadata),
        _ => None,
    };
    Ok(got)
}
