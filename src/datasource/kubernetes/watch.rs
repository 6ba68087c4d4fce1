//! The watches: this node's pods (`spec.nodeName`) and the top-level workloads
//! of the whole cluster (Deployments, StatefulSets, DaemonSets, CronJobs), each
//! a metadata-only kube-runtime watcher with the default backoff, trimmed to
//! what logtrain reads, feeding a reflector store. A `410 Gone` makes the
//! watcher relist; the store keeps its last complete state until the new
//! listing is done. ReplicaSets and Jobs, the most numerous, are not watched
//! (`fetched.rs`).

use std::fmt::Debug;

use futures_util::StreamExt;
use futures_util::stream::{BoxStream, SelectAll};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::reflector::{self, reflector};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch_stream};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;

use super::annotations::{trim, trim_pod};
use super::fetched::Fetched;
use super::owners::{MetaStore, Stores};
use super::slim::Slim;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// What a watch reported, stripped of the object (the store has it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A (re)list started.
    Init,
    /// An object of the listing in progress.
    Listing,
    /// The listing is complete and in the store.
    Listed,
    /// An object was added, changed or deleted.
    Changed,
}

/// One report: the resource (plural, a bounded metric label) and what happened.
pub type Report = (&'static str, Result<Change, watcher::Error>);

/// Objects per list page.
pub const PAGE: u32 = 500;

/// Names of the watched resources, in the order they are started.
pub const RESOURCES: [&str; 5] = ["pods", "deployments", "statefulsets", "daemonsets", "cronjobs"];

fn follow<K>(
    client: &Client,
    config: watcher::Config,
    resource: &'static str,
    trim: fn(&mut ObjectMeta),
) -> (MetaStore<K>, BoxStream<'static, Report>)
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    // `Api<Slim<K>>` asks for metadata-only lists and watches, and decodes
    // only what logtrain reads of them.
    let api = Api::<Slim<K>>::all(client.clone());
    let stream = watch_stream(api, config)
        .default_backoff()
        .modify(move |o| trim(&mut o.metadata));
    let stream = reflector(writer, stream)
        .map(move |r| {
            let change = r.map(|e| match e {
                Event::Init => Change::Init,
                Event::InitApply(_) => Change::Listing,
                Event::InitDone => Change::Listed,
                Event::Apply(_) | Event::Delete(_) => Change::Changed,
            });
            (resource, change)
        })
        .boxed();
    (reader, stream)
}

/// Starts every watch. The returned stream must be polled for the stores to
/// fill; it never ends.
pub fn start(client: &Client, node: Option<&str>) -> (Stores, SelectAll<BoxStream<'static, Report>>) {
    // 500 objects a page (kube's default, written out): 100 saved 2 MB at the
    // peak of a 10,000-Deployment listing, for five times the requests.
    let all = watcher::Config::default().page_size(PAGE);
    let pod_config = match node {
        Some(n) => all.clone().fields(&format!("spec.nodeName={n}")),
        None => all.clone(),
    };
    let mut streams = Vec::with_capacity(RESOURCES.len());
    let (pods, s) = follow::<Pod>(client, pod_config, RESOURCES[0], trim_pod);
    streams.push(s);
    let (deployments, s) = follow::<Deployment>(client, all.clone(), RESOURCES[1], trim);
    streams.push(s);
    let (statefulsets, s) = follow::<StatefulSet>(client, all.clone(), RESOURCES[2], trim);
    streams.push(s);
    let (daemonsets, s) = follow::<DaemonSet>(client, all.clone(), RESOURCES[3], trim);
    streams.push(s);
    let (cronjobs, s) = follow::<CronJob>(client, all, RESOURCES[4], trim);
    streams.push(s);
    let stores = Stores {
        pods,
        deployments,
        statefulsets,
        daemonsets,
        cronjobs,
        fetched: Fetched::default(),
    };
    (stores, futures_util::stream::select_all(streams))
}
