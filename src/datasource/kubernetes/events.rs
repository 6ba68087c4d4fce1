//! Kubernetes Events for what logtrain refused of an annotation (`refusals.rs`):
//! a `Warning` Event on the object that carries it, so `kubectl describe`
//! shows the mistake where it is.
//!
//! Every node's logtrain sees the same workloads, so an Event is told once per
//! cluster, not once per node: its name is derived from what it says (object
//! kind, namespace, name and uid, reason, refused value), and the creates of
//! the other nodes answer 409 Conflict, which means "already told" (counted
//! apart, never an error). A refusal that goes and comes back while its Event
//! still exists (the API server keeps Events an hour by default) is therefore
//! not told again. Events are a courtesy: when RBAC forbids creating them,
//! that is logged once and they stop; they never hold up routing: one task
//! creates them in turn from a bounded queue, and an Event that finds the queue
//! full is dropped and counted (the refusal itself was logged and counted).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::PostParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Client};
use tokio::sync::mpsc;
use tracing::{debug, info};

use super::owners::{Stores, WorkloadKind};
use super::refusals::{Refusal, digest};
use crate::telemetry;

/// Longest Event name (a DNS subdomain).
const NAME_MAX: usize = 253;
/// Longest message sent (the API server's own Events stay within 1 KiB).
const MESSAGE_MAX: usize = 1024;
/// Events waiting to be created, at most.
const QUEUE: usize = 256;

/// Tells refusals as Events.
pub struct Reporter {
    client: Client,
    node: Option<String>,
    /// To the task that creates them; it ends when the reporter is dropped.
    queue: mpsc::Sender<(Api<Event>, Event)>,
    /// Creating Events was refused (RBAC): stop trying.
    forbidden: Arc<AtomicBool>,
}

impl Reporter {
    /// Starts the task that creates Events (needs a Tokio runtime).
    pub fn new(client: Client, node: Option<String>) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        let forbidden = Arc::new(AtomicBool::new(false));
        tokio::spawn(create_all(rx, forbidden.clone()));
        Reporter {
            client,
            node,
            queue,
            forbidden,
        }
    }

    /// Queues the Event of a refusal, unless Events are forbidden or the
    /// object is not in the caches.
    pub fn tell(&self, refusal: &Refusal, stores: &Stores) {
        if self.forbidden.load(Ordering::Acquire) {
            return;
        }
        let Some(target) = involved(&refusal.object, stores) else {
            return;
        };
        let ns = target.namespace.clone().unwrap_or_default();
        let now = Time(k8s_openapi::jiff::Timestamp::now());
        let reason = refusal.reason.as_str();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(event_name(&target, reason, &refusal.subject)),
                namespace: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            involved_object: target,
            reason: Some(reason.into()),
            message: Some(bounded(&refusal.message, MESSAGE_MAX)),
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
        if self.queue.try_send((api, event)).is_err() {
            telemetry::counter("logtrain_kubernetes_event_errors_total", &[]).inc();
            debug!(object = %refusal.object, "Kubernetes Event dropped: too many waiting.");
        }
    }
}

/// Creates the queued Events one after the other.
async fn create_all(mut rx: mpsc::Receiver<(Api<Event>, Event)>, forbidden: Arc<AtomicBool>) {
    while let Some((api, event)) = rx.recv().await {
        if forbidden.load(Ordering::Acquire) {
            continue;
        }
        match api.create(&PostParams::default(), &event).await {
            Ok(_) => telemetry::counter("logtrain_kubernetes_events_total", &[]).inc(),
            Err(kube::Error::Api(s)) if s.code == 409 => {
                telemetry::counter("logtrain_kubernetes_events_existing_total", &[]).inc();
                debug!(
                    event = event.metadata.name.as_deref().unwrap_or_default(),
                    "Kubernetes Event already told by another logtrain."
                );
            }
            Err(kube::Error::Api(s)) if s.code == 403 => {
                if !forbidden.swap(true, Ordering::AcqRel) {
                    info!(reason = %s.message, "Not allowed to create Kubernetes Events; refused annotations are only logged and counted.");
                }
            }
            Err(e) => {
                telemetry::counter("logtrain_kubernetes_event_errors_total", &[]).inc();
                debug!(error = %e, "Kubernetes Event not created.");
            }
        }
    }
}

/// The Event's name: `<object name>.logtrain.<digest>`, the digest (FNV-1a,
/// 64 bits: the same on every node and every build) of the object's kind,
/// namespace, name and uid, the reason and the refused value. The object name
/// is shortened to keep the whole a valid name.
pub fn event_name(target: &ObjectReference, reason: &str, subject: &str) -> String {
    let parts = [
        target.kind.as_deref().unwrap_or_default(),
        target.namespace.as_deref().unwrap_or_default(),
        target.name.as_deref().unwrap_or_default(),
        target.uid.as_deref().unwrap_or_default(),
        reason,
        subject,
    ];
    let digest = digest(&parts);
    let suffix = format!(".logtrain.{digest:016x}");
    let name = target.name.as_deref().unwrap_or("logtrain");
    let mut head = bounded(name, NAME_MAX - suffix.len());
    // A subdomain's labels end with an alphanumeric character.
    while head.ends_with(['.', '-']) {
        head.pop();
    }
    if head.is_empty() {
        head.push_str("object");
    }
    head + &suffix
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn bounded(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn target(name: &str, uid: &str) -> ObjectReference {
        ObjectReference {
            kind: Some("Deployment".into()),
            namespace: Some("evil".into()),
            name: Some(name.into()),
            uid: Some(uid.into()),
            ..ObjectReference::default()
        }
    }

    #[test]
    fn event_names_are_the_same_everywhere_and_differ_by_what_they_say() {
        let t = target("x", "u1");
        let a = event_name(&t, "HostnameRefused", "web.default");
        assert_eq!(a, event_name(&t, "HostnameRefused", "web.default"));
        assert!(
            a.starts_with("x.logtrain.") && a.len() == "x.logtrain.".len() + 16,
            "{a}"
        );
        assert_ne!(a, event_name(&t, "HostnameRefused", "api.default"));
        assert_ne!(a, event_name(&t, "TooManyDrains", "web.default"));
        assert_ne!(a, event_name(&target("x", "u2"), "HostnameRefused", "web.default"));
        // Pinned: a rolling upgrade must not change the names (FNV-1a is fixed).
        assert_eq!(digest(&[""]), 0xaf63_bd4c_8601_b7df);
    }

    #[test]
    fn a_long_object_name_still_makes_a_valid_event_name() {
        let long = format!("{}-{}", "a".repeat(226), "b".repeat(40));
        let n = event_name(&target(&long, "u"), "BadDrainURL", "gopher://x");
        assert!(n.len() <= NAME_MAX, "{}", n.len());
        assert!(!n.contains("-.") && !n.contains(".."), "{n}");
        let dotted = format!("{}.b", "a".repeat(226));
        let n = event_name(&target(&dotted, "u"), "BadDrainURL", "gopher://x");
        assert!(n.len() <= NAME_MAX && !n.contains(".."), "{n}");
        assert_eq!(bounded("héllo", 2), "h");
    }
}
