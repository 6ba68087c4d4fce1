//! Kubernetes Events for what a user got wrong in an annotation: a drain URL
//! that cannot be used becomes a `Warning` Event (`BadDrainURL`) on the object
//! that carries it, so `kubectl describe` shows it where the mistake is. Each
//! (object, URL) is reported once while it stays wrong. Events are a courtesy:
//! when RBAC forbids creating them, that is logged once and they stop; they
//! never hold up routing (each is created in a task of its own).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::PostParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client};
use tracing::{debug, info};

use super::owners::{Stores, WorkloadKind};
use super::view::Objects;
use crate::drain::url::DrainSpec;
use crate::telemetry;

/// The Event's reason, as `kubectl describe` shows it.
pub const REASON: &str = "BadDrainURL";

/// Reports bad drain URLs of route objects as Events.
pub struct Reporter {
    client: Client,
    node: Option<String>,
    /// (object id, URL) pairs already reported and still present.
    reported: HashSet<(String, String)>,
    /// Parse outcome of every URL named now (`Some(reason)`: bad), so a
    /// republish does not parse every route again.
    verdicts: HashMap<String, Option<String>>,
    /// Creating Events was refused (RBAC): stop trying.
    forbidden: Arc<AtomicBool>,
}

impl Reporter {
    pub fn new(client: Client, node: Option<String>) -> Self {
        Reporter {
            client,
            node,
            reported: HashSet::new(),
            verdicts: HashMap::new(),
            forbidden: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Looks at every route of `objects` and reports each bad URL not yet
    /// reported; forgets pairs that are gone (fixed, then broken again: told again).
    pub fn review(&mut self, objects: &Objects, stores: &Stores) {
        let mut present = HashSet::new();
        let mut verdicts = HashMap::with_capacity(self.verdicts.len());
        for (id, routes) in objects {
            for r in routes {
                let verdict = match self.verdicts.remove(&r.drain) {
                    Some(v) => v,
                    None => DrainSpec::parse(&r.drain).err().map(|e| e.to_string()),
                };
                if let Some(reason) = &verdict {
                    let key = (id.clone(), r.drain.clone());
                    if !self.reported.contains(&key)
                        && !self.forbidden.load(Ordering::Acquire)
                        && let Some(target) = involved(id, stores)
                    {
                        self.create(target, reason.clone());
                    }
                    present.insert(key);
                }
                verdicts.insert(r.drain.clone(), verdict);
            }
        }
        self.reported = present;
        self.verdicts = verdicts;
    }

    fn create(&self, target: ObjectReference, message: String) {
        let ns = target.namespace.clone().unwrap_or_default();
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let event = Event {
            metadata: ObjectMeta {
                generate_name: Some(format!("{}.", target.name.as_deref().unwrap_or("logtrain"))),
                namespace: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            involved_object: target,
            reason: Some(REASON.into()),
            message: Some(message),
            type_: Some("Warning".into()),
            source: Some(EventSource {
                component: Some("logtrain".into()),
                host: self.node.clone(),
            }),
            reporting_component: Some("logtrain".into()),
            reporting_instance: self.node.clone(),
            first_timestamp: Some(now.clone()),
            last_timestamp: Some(now),
            count: Some(1),
            ..Event::default()
        };
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let forbidden = self.forbidden.clone();
        tokio::spawn(async move {
            match api.create(&PostParams::default(), &event).await {
                Ok(_) => telemetry::counter("logtrain_kubernetes_events_total", &[]).inc(),
                Err(kube::Error::Api(s)) if s.code == 403 => {
                    if !forbidden.swap(true, Ordering::AcqRel) {
                        info!(reason = %s.message, "Not allowed to create Kubernetes Events; bad drain URLs are only logged and counted.");
                    }
                }
                Err(e) => {
                    telemetry::counter("logtrain_kubernetes_event_errors_total", &[]).inc();
                    debug!(error = %e, "Kubernetes Event not created.");
                }
            }
        });
    }
}

/// The object a route object id (`Deployment default/web`, `Pod ns/name`)
/// names, with its uid from the caches (so `kubectl describe` finds the Event).
fn involved(id: &str, stores: &Stores) -> Option<ObjectReference> {
    let (kind, rest) = id.split_once(' ')?;
    let (ns, name) = rest.split_once('/')?;
    let (api_version, uid) = if kind == "Pod" {
        let uid = stores
            .pods
            .get(&ObjectRef::new(name).within(ns))
            .and_then(|o| o.metadata.uid.clone());
        ("v1", uid)
    } else {
        let w = WorkloadKind::from_kind(kind)?;
        let group = match w {
            WorkloadKind::Job | WorkloadKind::CronJob => "batch/v1",
            _ => "apps/v1",
        };
        (group, stores.get(w, ns, name).and_then(|m| m.uid))
    };
    Some(ObjectReference {
        api_version: Some(api_version.into()),
        kind: Some(kind.into()),
        namespace: Some(ns.into()),
        name: Some(name.into()),
        uid,
        ..ObjectReference::default()
    })
}
