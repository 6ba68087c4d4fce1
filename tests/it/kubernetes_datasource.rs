//! The Kubernetes datasource against a test API server speaking the real
//! protocol (`support::kube_api`), checked first against the real `kubectl`:
//! routes and the pod directory from annotated workloads, live annotation
//! changes, naming rules, filters, bad drain URLs, 410 relists, server errors,
//! readiness, and a 10,000-workload sync; and what a tenant may not declare
//! (another namespace's hostname, local drains, denied addresses, too many
//! drains), told once per cluster as Events.

use crate::support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use logtrain::app::App;
use logtrain::config::{Config, HostnameScope};
use logtrain::datasource::Datasource;
use logtrain::datasource::kubernetes::annotations::Naming;
use logtrain::datasource::kubernetes::{KubernetesSource, Settings};
use logtrain::datasource::pods::PodKey;
use logtrain::drain::DrainSpec;
use logtrain::egress::Egress;
use logtrain::record::{InputKind, Record};
use serde_json::{Value, json};
use support::kube_api::KubeApi;
use support::rsyslog::{Rsyslog, entries, tcp_receiver};
use support::{free_port, wait_until};
use tokio_util::sync::CancellationToken;

pub(crate) const NODE: &str = "node-a";

/// A network drain that is never reached (`.invalid` never resolves): for
/// tests that look at the routing table only.
pub(crate) fn unreached(name: &str) -> String {
    format!("syslog+tcp://{name}.invalid:514")
}

/// A drain's id as metrics and the routing table name it.
pub(crate) fn id(url: &str) -> String {
    // An annotation's drain is its own copy, named apart from the operator's.
    DrainSpec::parse(url)
        .unwrap()
        .restricted(std::sync::Arc::new(logtrain::egress::Egress::open()))
        .id
}

/// A drain's id as refusals (logs, Events) name it: the URL's own, before any
/// copy of the drain is made for the annotation.
fn url_id(url: &str) -> String {
    DrainSpec::parse(url).unwrap().id
}

/// A real syslog receiver on loopback: its drain URL and the file of what it
/// received (loopback drains need [`Harness::start_open`]).
struct Receiver {
    url: String,
    out: std::path::PathBuf,
    _rsyslog: Rsyslog,
}

fn receiver(dir: &tempfile::TempDir, name: &str) -> Receiver {
    let port = free_port();
    let home = dir.path().join(name);
    Receiver {
        url: format!("syslog+tcp://127.0.0.1:{port}"),
        out: home.join("out.json"),
        _rsyslog: tcp_receiver(&home, port),
    }
}

pub(crate) fn map(kv: &[(&str, &str)]) -> Value {
    Value::Object(kv.iter().map(|(k, v)| (k.to_string(), json!(v))).collect())
}

pub(crate) fn workload(kind: &str, ns: &str, name: &str, ann: &[(&str, &str)], labels: &[(&str, &str)]) -> Value {
    json!({
        "kind": kind,
        "metadata": {
            "name": name, "namespace": ns, "annotations": map(ann), "labels": map(labels)
        },
        "spec": {"replicas": 1}
    })
}

pub(crate) fn owned(mut obj: Value, owner_kind: &str, owner: &str) -> Value {
    let api = if matches!(owner_kind, "Job" | "CronJob") {
        "batch/v1"
    } else {
        "apps/v1"
    };
    obj["metadata"]["ownerReferences"] = json!([{
        "apiVersion": api, "kind": owner_kind, "name": owner,
        "uid": "00000000-0000-4000-8000-ffffffffffff", "controller": true, "blockOwnerDeletion": true
    }]);
    obj
}

pub(crate) fn pod(ns: &str, name: &str, node: &str, ann: &[(&str, &str)], labels: &[(&str, &str)]) -> Value {
    json!({
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "annotations": map(ann), "labels": map(labels)},
        "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}]}
    })
}

/// Deployment → ReplicaSet → Pod on `node`, as the Deployment controller
/// makes them: the ReplicaSet named after the pod template's hash, which
/// both carry as their `pod-template-hash` label.
fn deploy_with_pod(api: &KubeApi, ns: &str, name: &str, ann: &[(&str, &str)], node: &str) -> String {
    let labels = [("app", name), ("pod-template-hash", "5d8f7c9b6")];
    api.apply(workload("Deployment", ns, name, ann, &[("app", name)]));
    let rs = format!("{name}-5d8f7c9b6");
    api.apply(owned(workload("ReplicaSet", ns, &rs, ann, &labels), "Deployment", name));
    let p = format!("{rs}-x2x4z");
    api.apply(owned(pod(ns, &p, node, &[], &labels), "ReplicaSet", &rs));
    p
}

pub(crate) const DRAINS: &str = "logtrain.akkeris.io/drains";
pub(crate) const HOSTNAME: &str = "logtrain.akkeris.io/hostname";
const TAG: &str = "logtrain.akkeris.io/tag";

pub(crate) fn settings() -> Settings {
    Settings {
        node_name: Some(NODE.into()),
        ..Settings::default()
    }
}

pub(crate) struct Harness {
    pub(crate) app: App,
    stop: CancellationToken,
}

impl Harness {
    /// logtrain with the default policy: annotations name network drains, never
    /// loopback, link-local or metadata addresses.
    pub(crate) fn start(api: &KubeApi, settings: Settings) -> Harness {
        Self::start_with(api, settings, crate::support::config())
    }

    /// logtrain whose annotations may name drains anywhere
    /// (`DRAIN_DENY_NETWORKS=`): for receivers on loopback.
    pub(crate) fn start_open(api: &KubeApi, settings: Settings) -> Harness {
        let config = Config {
            drain_deny_networks: Vec::new(),
            ..crate::support::config()
        };
        let settings = Settings {
            egress: Arc::new(Egress::open()),
            ..settings
        };
        Self::start_with(api, settings, config)
    }

    pub(crate) fn start_with(api: &KubeApi, settings: Settings, config: Config) -> Harness {
        let app = App::start(config);
        let source = KubernetesSource::new(api.client(), settings, app.pods.clone());
        let stop = CancellationToken::new();
        tokio::spawn(Box::new(source).run(app.route_sender(), stop.clone()));
        Harness { app, stop }
    }

    /// The drain ids routed for `hostname`, sorted.
    pub(crate) fn drains(&self, hostname: &str) -> Vec<String> {
        let mut d: Vec<String> = self
            .app
            .routes
            .load()
            .drains_for(hostname.as_bytes())
            .iter()
            .map(|d| d.id().to_string())
            .collect();
        d.sort();
        d
    }

    /// Waits until `hostname` routes to the drains of exactly the URLs `want`.
    pub(crate) async fn wait_drains(&self, hostname: &str, want: &[&str], limit: Duration) {
        let mut want: Vec<String> = want.iter().map(|u| id(u)).collect();
        want.sort();
        let what = format!("{hostname} → {want:?}");
        wait_until(&what, limit, || self.drains(hostname) == want).await;
    }

    pub(crate) fn pod(&self, ns: &str, name: &str) -> Option<(String, String)> {
        self.app
            .pods
            .get(&PodKey::new(ns, name))
            .map(|m| (m.hostname.clone(), m.tag.clone()))
    }

    pub(crate) async fn stop(self) {
        self.stop.cancel();
        self.app.shutdown().await;
    }
}

pub(crate) const SYNC: Duration = Duration::from_secs(10);
pub(crate) const LIVE: Duration = Duration::from_secs(1);

// Metrics are process-wide: tests that refuse something of an annotation (and
// so count route errors or create Events) hold `support::inputs::serial()`.

/// Log lines of this test binary (see [`support::captured_logs`]).
fn captured() -> Arc<Mutex<Vec<u8>>> {
    support::captured_logs()
}

fn metric(name_and_labels: &str) -> u64 {
    logtrain::telemetry::render()
        .lines()
        .find_map(|l| l.strip_prefix(name_and_labels).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_and_watches_the_test_server() {
    let api = KubeApi::start().await;
    api.apply(workload("Deployment", "default", "web", &[(DRAINS, "stdout://")], &[]));
    api.apply(workload("Deployment", "prod", "api", &[], &[]));
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = home.path().join("config");
    std::fs::write(&kubeconfig, "").unwrap();
    let kubectl = |args: &[&str]| {
        let mut c = Command::new("/usr/bin/kubectl");
        c.arg(format!("--server={}", api.url()))
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!("--cache-dir={}", home.path().join("cache").display()))
            .args(args)
            .env("HOME", home.path());
        c
    };
    let out = tokio::task::spawn_blocking({
        let mut c = kubectl(&["get", "deployments", "-A", "-o", "json"]);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["web", "api"]);
    assert_eq!(list["items"][0]["metadata"]["annotations"][DRAINS], "stdout://");

    // Selectors, as kubectl sends them.
    api.apply(pod("default", "p1", NODE, &[], &[("app", "web")]));
    api.apply(pod("default", "p2", "node-b", &[], &[("app", "api")]));
    let out = tokio::task::spawn_blocking({
        let mut c = kubectl(&[
            "get",
            "pods",
            "-A",
            "-o",
            "json",
            "--field-selector",
            "spec.nodeName=node-b",
        ]);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["metadata"]["name"], "p2");
    let out = tokio::task::spawn_blocking({
        let mut c = kubectl(&["get", "pods", "-n", "default", "-o", "json", "-l", "app in (web)"]);
        move || c.output().unwrap()
    })
    .await
    .unwrap();
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(list["items"][0]["metadata"]["name"], "p1", "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // A watch: the current objects, then a change made while it streams.
    let mut child = kubectl(&["get", "deployments", "-A", "-w", "--output-watch-events", "-o", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<Value>();
    std::thread::spawn(move || {
        let mut stdout = stdout;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = match stdout.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            let mut de = serde_json::Deserializer::from_slice(&buf).into_iter::<Value>();
            let mut used = 0;
            while let Some(Ok(v)) = de.next() {
                used = de.byte_offset();
                if tx.send(v).is_err() {
                    return;
                }
            }
            buf.drain(..used);
        }
    });
    let next = || {
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a watch event from kubectl")
    };
    let first = tokio::task::block_in_place(next);
    let second = tokio::task::block_in_place(next);
    assert_eq!(first["type"], "ADDED");
    assert_eq!(second["type"], "ADDED");
    wait_until("kubectl's watch", Duration::from_secs(10), || api.open_watches() > 0).await;
    api.modify("Deployment", "prod", "api", |o| {
        o["metadata"]["annotations"] = json!({DRAINS: "syslog+tcp://h:1"});
    });
    let third = tokio::task::block_in_place(next);
    assert_eq!(third["type"], "MODIFIED", "{third}");
    assert_eq!(third["object"]["metadata"]["name"], "api");
    assert_eq!(third["object"]["metadata"]["annotations"][DRAINS], "syslog+tcp://h:1");
    api.delete("Deployment", "default", "web");
    let fourth = tokio::task::block_in_place(next);
    assert_eq!(fourth["type"], "DELETED");
    assert_eq!(fourth["object"]["metadata"]["name"], "web");
    let _ = child.kill();
    let _ = child.wait();
    let reqs = api.requests();
    assert!(
        reqs.iter()
            .any(|r| r.starts_with("GET /apis/apps/v1/deployments?") && r.contains("watch=")),
        "{reqs:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotated_deployment_routes_its_pods_and_follows_annotation_changes() {
    let api = KubeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let rsyslog = receiver(&dir, "a");
    let a = rsyslog.url.clone();
    let b = unreached("b");
    let pod_name = deploy_with_pod(&api, "default", "web", &[(DRAINS, &a)], NODE);
    deploy_with_pod(&api, "default", "other", &[(DRAINS, &a)], "node-b");
    api.apply(workload("StatefulSet", "default", "plain", &[], &[]));
    let h = Harness::start_open(&api, settings());
    h.wait_drains("web.default", &[&a], SYNC).await;
    // Workloads route cluster-wide; only this node's pods are in the directory.
    assert_eq!(h.drains("other.default"), vec![id(&a)]);
    wait_until("pod directory", SYNC, || h.app.pods.len() == 1).await;
    assert_eq!(
        h.pod("default", &pod_name),
        Some(("web.default".into(), pod_name.clone()))
    );
    assert_eq!(h.pod("default", "other-5d8f7c9b6-x2x4z"), None);
    assert_eq!(h.app.routes.load().len(), 2);

    // Records with that hostname land in the drain.
    let router = h.app.router(InputKind::File);
    for i in 0..5 {
        let mut r = Record::new(InputKind::File, "web.default", format!("line {i}"));
        r.app_name = bytes::Bytes::from(pod_name.clone());
        assert_eq!(router.offer(&h.app.routes.load(), r).queued, 1);
    }
    wait_until("5 lines at the receiver", SYNC, || entries(&rsyslog.out).len() == 5).await;
    let lines = entries(&rsyslog.out);
    assert_eq!(lines[4]["hostname"], "web.default", "{}", lines[4]);
    assert_eq!(lines[4]["appname"], pod_name.as_str(), "{}", lines[4]);
    assert_eq!(lines[4]["msg"], "line 4", "{}", lines[4]);

    // Metadata-only requests, pods of this node only, managed fields gone.
    let reqs = api.requests();
    assert!(
        reqs.iter().any(|r| r.starts_with("GET /api/v1/pods?")
            && r.contains("fieldSelector=spec.nodeName%3Dnode-a")
            && r.ends_with("accept=application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")),
        "{reqs:#?}"
    );
    assert!(
        reqs.iter().any(|r| r.starts_with("GET /apis/apps/v1/deployments?")
            && r.contains("watch=true")
            && r.ends_with("accept=application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")),
        "{reqs:#?}"
    );
    for p in [
        "/apis/apps/v1/statefulsets?",
        "/apis/apps/v1/daemonsets?",
        "/apis/batch/v1/cronjobs?",
    ] {
        assert!(reqs.iter().any(|r| r.contains(p)), "{p} never listed: {reqs:#?}");
    }
    // The cluster's ReplicaSets and Jobs are neither listed nor watched.
    for p in ["/apis/apps/v1/replicasets?", "/apis/batch/v1/jobs?"] {
        assert!(!reqs.iter().any(|r| r.contains(p)), "{p} listed: {reqs:#?}");
    }
    assert!(
        !reqs.iter().any(|r| r.contains("/namespaces/")),
        "a GET per object: {reqs:#?}"
    );

    // Annotation changed: the route moves within a second, no restart.
    api.modify("Deployment", "default", "web", |o| {
        o["metadata"]["annotations"][DRAINS] = json!(format!("{b} ; {b},"));
    });
    h.wait_drains("web.default", &[&b], LIVE).await;
    // Both drains (with , and ; separators).
    api.modify("Deployment", "default", "web", |o| {
        o["metadata"]["annotations"][DRAINS] = json!(format!("{a},{b}"));
    });
    h.wait_drains("web.default", &[&a, &b], LIVE).await;
    // Annotation removed: route and (once unused) drain gone.
    api.modify("Deployment", "default", "web", |o| {
        o["metadata"]["annotations"] = json!({});
    });
    h.wait_drains("web.default", &[], LIVE).await;
    api.delete("Deployment", "default", "other");
    h.wait_drains("other.default", &[], LIVE).await;
    wait_until("drains closed", SYNC, || h.app.registry.drains().is_empty()).await;
    assert!(h.app.routes.load().is_empty());
    // A new pod of this node appears in the directory; a deleted one leaves.
    api.apply(pod("default", "bare", NODE, &[], &[]));
    wait_until("bare pod", LIVE, || h.pod("default", "bare").is_some()).await;
    assert_eq!(h.pod("default", "bare"), Some(("bare.default".into(), "bare".into())));
    api.delete("Pod", "default", &pod_name);
    wait_until("pod gone", LIVE, || h.pod("default", &pod_name).is_none()).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_tag_and_pod_level_drains() {
    let api = KubeApi::start().await;
    let (a, b, c, d) = (unreached("a"), unreached("b"), unreached("c"), unreached("d"));
    let ann = [(DRAINS, a.as_str()), (HOSTNAME, "api-custom.default"), (TAG, "api-tag")];
    api.apply(workload("Deployment", "default", "api", &ann, &[]));
    api.apply(owned(
        workload("ReplicaSet", "default", "api-7f9", &ann, &[]),
        "Deployment",
        "api",
    ));
    // Inherits hostname and tag.
    api.apply(owned(
        pod("default", "api-7f9-aaaaa", NODE, &[], &[]),
        "ReplicaSet",
        "api-7f9",
    ));
    // Adds a drain to its (shared) hostname.
    api.apply(owned(
        pod("default", "api-7f9-bbbbb", NODE, &[(DRAINS, &b)], &[]),
        "ReplicaSet",
        "api-7f9",
    ));
    // Its own hostname and tag: gets the owner's drains plus its own.
    let own = [(DRAINS, c.as_str()), (HOSTNAME, "special.default"), (TAG, "mine")];
    api.apply(owned(
        pod("default", "api-7f9-ccccc", NODE, &own, &[]),
        "ReplicaSet",
        "api-7f9",
    ));
    // A bare pod with drains; a CronJob → Job → Pod chain.
    api.apply(pod("default", "solo", NODE, &[(DRAINS, &d)], &[]));
    api.apply(workload("CronJob", "batch", "nightly", &[(DRAINS, &d)], &[]));
    api.apply(owned(
        workload("Job", "batch", "nightly-29000000", &[], &[]),
        "CronJob",
        "nightly",
    ));
    api.apply(owned(
        pod("batch", "nightly-29000000-q7x2p", NODE, &[], &[]),
        "Job",
        "nightly-29000000",
    ));
    // A pod whose owner kind logtrain does not follow: logtrain's name-derived fallback.
    let mut mirror = pod("kube-system", "etcd-node-a", NODE, &[], &[]);
    mirror["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "v1", "kind": "Node", "name": NODE, "uid": "x", "controller": true}]);
    api.apply(mirror);

    let h = Harness::start(&api, settings());
    h.wait_drains("api-custom.default", &[&a, &b], SYNC).await;
    h.wait_drains("special.default", &[&a, &c], SYNC).await;
    h.wait_drains("solo.default", &[&d], SYNC).await;
    h.wait_drains("nightly.batch", &[&d], SYNC).await;
    wait_until("pods", SYNC, || h.app.pods.len() == 6).await;
    assert_eq!(
        h.pod("default", "api-7f9-aaaaa"),
        Some(("api-custom.default".into(), "api-tag".into()))
    );
    assert_eq!(
        h.pod("default", "api-7f9-bbbbb"),
        Some(("api-custom.default".into(), "api-tag".into()))
    );
    assert_eq!(
        h.pod("default", "api-7f9-ccccc"),
        Some(("special.default".into(), "mine".into()))
    );
    assert_eq!(h.pod("default", "solo"), Some(("solo.default".into(), "solo".into())));
    assert_eq!(
        h.pod("batch", "nightly-29000000-q7x2p"),
        Some(("nightly.batch".into(), "nightly-29000000-q7x2p".into()))
    );
    assert_eq!(
        h.pod("kube-system", "etcd-node-a"),
        Some(("etcd.kube-system".into(), "etcd-node-a".into()))
    );
    // The owned ReplicaSet and Job declare nothing of their own.
    assert_eq!(h.app.routes.load().len(), 6);

    // Pod annotation removed: its extra drain goes, the owner's stays.
    api.modify("Pod", "default", "api-7f9-bbbbb", |o| {
        o["metadata"]["annotations"] = json!({})
    });
    h.wait_drains("api-custom.default", &[&a], LIVE).await;
    // Owner's hostname annotation changed: pods follow.
    api.modify("Deployment", "default", "api", |o| {
        o["metadata"]["annotations"][HOSTNAME] = json!("api-renamed.default");
    });
    h.wait_drains("api-renamed.default", &[&a], LIVE).await;
    wait_until("pods renamed", LIVE, || {
        h.pod("default", "api-7f9-aaaaa") == Some(("api-renamed.default".into(), "api-tag".into()))
    })
    .await;
    assert_eq!(h.drains("api-custom.default"), Vec::<String>::new());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_namespaces_akkeris_naming_and_only_akkeris() {
    let api = KubeApi::start().await;
    let a = unreached("a");
    let akk = [("akkeris.io/app-name", "shop"), ("akkeris.io/dyno-type", "worker")];
    api.apply(workload("Deployment", "prod", "shop--worker", &[(DRAINS, &a)], &akk));
    api.apply(owned(
        workload("ReplicaSet", "prod", "shop--worker-7d9f8c6b5", &[], &akk),
        "Deployment",
        "shop--worker",
    ));
    api.apply(owned(
        pod("prod", "shop--worker-7d9f8c6b5-x2x4z", NODE, &[], &akk),
        "ReplicaSet",
        "shop--worker-7d9f8c6b5",
    ));
    api.apply(workload("Deployment", "prod", "plain", &[(DRAINS, &a)], &[]));
    api.apply(owned(
        workload("ReplicaSet", "prod", "plain--api-7d9f8c6b5", &[], &[]),
        "Deployment",
        "plain",
    ));
    api.apply(owned(
        pod("prod", "plain--api-7d9f8c6b5-abcde", NODE, &[], &[]),
        "ReplicaSet",
        "plain--api-7d9f8c6b5",
    ));
    deploy_with_pod(&api, "kube-system", "dns", &[(DRAINS, &a)], NODE);

    let akkeris = Settings {
        node_name: Some(NODE.into()),
        naming: Naming { akkeris: true },
        exclude_namespaces: vec!["kube-system".into()],
        only_akkeris: false,
        ..Settings::default()
    };
    let h = Harness::start(&api, akkeris.clone());
    h.wait_drains("shop-prod", &[&a], SYNC).await;
    h.wait_drains("plain-prod", &[&a], SYNC).await;
    wait_until("pods", SYNC, || h.app.pods.len() == 2).await;
    assert_eq!(
        h.pod("prod", "shop--worker-7d9f8c6b5-x2x4z"),
        Some(("shop-prod".into(), "worker.7d9f8c6b5-x2x4z".into()))
    );
    assert_eq!(
        h.pod("prod", "plain--api-7d9f8c6b5-abcde"),
        Some(("plain-prod".into(), "api.7d9f8c6b5-abcde".into()))
    );
    assert_eq!(h.drains("dns-kube-system"), Vec::<String>::new());
    assert_eq!(h.pod("kube-system", "dns-5d8f7c9b6-x2x4z"), None);
    assert_eq!(h.app.routes.load().len(), 2);
    h.stop().await;

    let h = Harness::start(
        &api,
        Settings {
            only_akkeris: true,
            ..akkeris
        },
    );
    h.wait_drains("shop-prod", &[&a], SYNC).await;
    wait_until("pods", SYNC, || h.app.pods.len() == 1).await;
    assert_eq!(h.drains("plain-prod"), Vec::<String>::new());
    assert!(h.pod("prod", "plain--api-7d9f8c6b5-abcde").is_none());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_drain_url_is_reported_once_and_the_others_work() {
    let _serial = support::inputs::serial().await;
    let logs = captured();
    let api = KubeApi::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (ra, rb) = (receiver(&dir, "a"), receiver(&dir, "b"));
    let (a, b) = (ra.url.clone(), rb.url.clone());
    let before = metric("logtrain_route_errors_total{origin=\"kubernetes\"}");
    let bad = "ftp://deploy:s3cret@logs.example.com/x";
    let error = DrainSpec::parse(bad).unwrap_err();
    let value = format!("{a}; {bad} ;{b}");
    let p = deploy_with_pod(&api, "shop", "bad", &[(DRAINS, &value)], NODE);
    let h = Harness::start_open(&api, settings());
    h.wait_drains("bad.shop", &[&a, &b], SYNC).await;
    let router = h.app.router(InputKind::File);
    assert_eq!(
        router
            .offer(
                &h.app.routes.load(),
                Record::new(InputKind::File, "bad.shop", "still routed")
            )
            .queued,
        2
    );
    for r in [&ra, &rb] {
        wait_until(&r.url, SYNC, || entries(&r.out).len() == 1).await;
    }
    assert_eq!(metric("logtrain_route_errors_total{origin=\"kubernetes\"}"), before + 1);
    // An unrelated change republishes the table: still reported only once.
    api.modify("Pod", "shop", &p, |o| o["metadata"]["labels"]["x"] = json!("y"));
    api.apply(workload("Deployment", "shop", "other", &[(DRAINS, &a)], &[]));
    h.wait_drains("other.shop", &[&a], LIVE).await;
    assert_eq!(metric("logtrain_route_errors_total{origin=\"kubernetes\"}"), before + 1);
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    let line = text
        .lines()
        .find(|l| l.contains("Route skipped: bad drain URL") && l.contains("Deployment shop/bad"))
        .unwrap_or_else(|| panic!("no report naming the workload in:\n{text}"));
    assert!(line.contains("\"ftp://logs.example.com\": unknown scheme"), "{line}");
    assert!(line.contains(&error.url), "{line}");
    assert!(!line.contains("deploy:"), "{line}");
    assert!(!text.contains("s3cret"), "{text}");
    // And a Warning Event on the Deployment, once, for `kubectl describe`.
    wait_until("an Event", SYNC, || !api.objects("events", "shop").is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let events = api.objects("events", "shop");
    assert_eq!(events.len(), 1, "{events:#?}");
    let ev = &events[0];
    assert_eq!(ev["reason"], "BadDrainURL");
    assert_eq!(ev["type"], "Warning");
    assert_eq!(ev["involvedObject"]["kind"], "Deployment");
    assert_eq!(ev["involvedObject"]["name"], "bad");
    assert_eq!(ev["involvedObject"]["apiVersion"], "apps/v1");
    assert!(
        ev["involvedObject"]["uid"].as_str().is_some_and(|u| !u.is_empty()),
        "{ev}"
    );
    let msg = ev["message"].as_str().unwrap();
    assert!(msg.contains("\"ftp://logs.example.com\": unknown scheme"), "{msg}");
    assert_eq!(msg, error.to_string());
    assert!(!msg.contains("deploy:"), "{msg}");
    assert!(!ev.to_string().contains("s3cret"), "{ev}");
    // Named after what it says, the same on every node.
    let name = ev["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("bad.logtrain."), "{name}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_rbac_for_events_bad_urls_are_only_logged() {
    let _serial = support::inputs::serial().await;
    let api = KubeApi::start().await;
    api.forbid_creates(true);
    let a = unreached("a");
    let value = format!("{a};gopher://x");
    deploy_with_pod(&api, "shop", "one", &[(DRAINS, &value)], NODE);
    let h = Harness::start(&api, settings());
    h.wait_drains("one.shop", &[&a], SYNC).await;
    let posts = || api.requests().iter().filter(|r| r.starts_with("POST ")).count();
    wait_until("one refused create", SYNC, || posts() == 1).await;
    // A second bad URL elsewhere: no further attempt once refused.
    api.apply(workload("Deployment", "shop", "two", &[(DRAINS, "gopher://y")], &[]));
    api.apply(workload("Deployment", "shop", "three", &[(DRAINS, &a)], &[]));
    h.wait_drains("three.shop", &[&a], LIVE).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(posts(), 1, "{:?}", api.requests());
    assert!(api.objects("events", "shop").is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_410_after_compaction_relists_and_picks_up_what_changed_meanwhile() {
    let api = KubeApi::start().await;
    let (a, b, c) = (unreached("a"), unreached("b"), unreached("c"));
    deploy_with_pod(&api, "default", "web", &[(DRAINS, &a)], NODE);
    deploy_with_pod(&api, "default", "gone", &[(DRAINS, &a)], NODE);
    let h = Harness::start(&api, settings());
    h.wait_drains("web.default", &[&a], SYNC).await;
    h.wait_drains("gone.default", &[&a], SYNC).await;
    wait_until("every watch open", SYNC, || api.open_watches() == 5).await;
    let relists = metric("logtrain_kubernetes_relists_total{resource=\"deployments\"}");
    let lists_before = api
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /apis/apps/v1/deployments?") && !r.contains("watch="))
        .count();

    // Changes the watches never see, then history compacted and watches dropped.
    api.pause_watches(true);
    api.modify("Deployment", "default", "web", |o| {
        o["metadata"]["annotations"][DRAINS] = json!(b)
    });
    api.delete("Deployment", "default", "gone");
    api.delete("Pod", "default", "gone-5d8f7c9b6-x2x4z");
    deploy_with_pod(&api, "default", "late", &[(DRAINS, &c)], NODE);
    api.compact();
    api.drop_watches();
    api.pause_watches(false);

    h.wait_drains("web.default", &[&b], SYNC).await;
    h.wait_drains("late.default", &[&c], SYNC).await;
    h.wait_drains("gone.default", &[], SYNC).await;
    wait_until("pods", SYNC, || {
        h.pod("default", "late-5d8f7c9b6-x2x4z").is_some() && h.pod("default", "gone-5d8f7c9b6-x2x4z").is_none()
    })
    .await;
    assert!(metric("logtrain_kubernetes_relists_total{resource=\"deployments\"}") > relists);
    let lists_after = api
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /apis/apps/v1/deployments?") && !r.contains("watch="))
        .count();
    assert_eq!(lists_after, lists_before + 1);
    assert_eq!(h.app.routes.load().len(), 2);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_server_fails_the_last_table_serves_then_converges() {
    let api = KubeApi::start().await;
    let (a, b) = (unreached("a"), unreached("b"));
    deploy_with_pod(&api, "default", "web", &[(DRAINS, &a)], NODE);
    let h = Harness::start(&api, settings());
    h.wait_drains("web.default", &[&a], SYNC).await;
    let errors = metric("logtrain_kubernetes_watch_errors_total{resource=\"deployments\"}");
    api.set_failing(true);
    api.drop_watches();
    api.modify("Deployment", "default", "web", |o| {
        o["metadata"]["annotations"][DRAINS] = json!(b)
    });
    wait_until("watch errors", SYNC, || {
        metric("logtrain_kubernetes_watch_errors_total{resource=\"deployments\"}") > errors
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(h.drains("web.default"), vec![id(&a)]);
    assert_eq!(h.pod("default", "web-5d8f7c9b6-x2x4z").unwrap().0, "web.default");
    api.set_failing(false);
    h.wait_drains("web.default", &[&b], Duration::from_secs(40)).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_only_after_the_first_full_sync() {
    use logtrain::datasource::OriginKind;
    use logtrain::drain::{DrainContext, Registry};
    use logtrain::route::Routes;
    use logtrain::route::writer::RouteWriter;

    let api = KubeApi::start().await;
    let a = unreached("a");
    deploy_with_pod(&api, "default", "web", &[(DRAINS, &a)], NODE);
    api.set_failing(true);
    let routes = Routes::new();
    let writer = RouteWriter::new(
        Arc::new(Registry::new(DrainContext::standalone())),
        routes.clone(),
        [OriginKind::Kubernetes],
    );
    let mut ready = writer.ready();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(writer.run(rx));
    let pods = logtrain::datasource::pods::PodDirectory::new();
    let stop = CancellationToken::new();
    tokio::spawn(Box::new(KubernetesSource::new(api.client(), settings(), pods.clone())).run(tx, stop.clone()));
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!*ready.borrow());
    assert!(routes.load().is_empty());
    api.set_failing(false);
    tokio::time::timeout(Duration::from_secs(30), ready.wait_for(|r| *r))
        .await
        .unwrap()
        .unwrap();
    // Ready means the whole listing was sent: the directory is filled before
    // the listing, and the writer publishes the table right after its burst.
    assert_eq!(pods.len(), 1);
    wait_until("table", Duration::from_secs(1), || {
        routes.load().drains_for(b"web.default").len() == 1
    })
    .await;
    stop.cancel();
}

const ROUTE_ERRORS: &str = "logtrain_route_errors_total{origin=\"kubernetes\"}";

/// The Events of a namespace with `reason`.
fn events(api: &KubeApi, ns: &str, reason: &str) -> Vec<Value> {
    api.objects("events", ns)
        .into_iter()
        .filter(|e| e["reason"] == reason)
        .collect()
}

/// The Event on `kind`/`name`.
fn event_on<'a>(events: &'a [Value], kind: &str, name: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["involvedObject"]["kind"] == kind && e["involvedObject"]["name"] == name)
        .unwrap_or_else(|| panic!("no Event on {kind} {name} in {events:#?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostname_of_another_namespace_is_refused_and_the_object_keeps_its_own() {
    let _serial = support::inputs::serial().await;
    let logs = captured();
    let api = KubeApi::start().await;
    let (victim, attacker) = (unreached("victim"), unreached("attacker"));
    let claim = [(HOSTNAME, "web.default")];
    let web_pod = deploy_with_pod(&api, "default", "web", &[(DRAINS, &victim)], NODE);
    let x_pod = deploy_with_pod(
        &api,
        "evil",
        "x",
        &[(DRAINS, &attacker), (HOSTNAME, "web.default")],
        NODE,
    );
    // Without drains: its pods' lines would go into the victim's drains.
    let y_pod = deploy_with_pod(&api, "evil", "y", &claim, NODE);
    // A pod claiming it for itself.
    api.apply(pod(
        "evil",
        "solo",
        NODE,
        &[(DRAINS, &attacker), (HOSTNAME, "web.default")],
        &[],
    ));
    let before = metric(ROUTE_ERRORS);
    let h = Harness::start(&api, settings());
    h.wait_drains("x.evil", &[&attacker], SYNC).await;
    h.wait_drains("solo.evil", &[&attacker], SYNC).await;
    wait_until("pods", SYNC, || h.app.pods.len() == 4).await;
    assert_eq!(h.drains("web.default"), vec![id(&victim)]);
    assert_eq!(h.pod("default", &web_pod).unwrap().0, "web.default");
    assert_eq!(h.pod("evil", &x_pod).unwrap().0, "x.evil");
    assert_eq!(h.pod("evil", &y_pod).unwrap().0, "y.evil");
    assert_eq!(h.pod("evil", "solo").unwrap().0, "solo.evil");

    // Told on each object that claims it, once.
    wait_until("three Events", SYNC, || {
        events(&api, "evil", "HostnameRefused").len() == 3
    })
    .await;
    let told = events(&api, "evil", "HostnameRefused");
    for (kind, name, own) in [
        ("Deployment", "x", "x.evil"),
        ("Deployment", "y", "y.evil"),
        ("Pod", "solo", "solo.evil"),
    ] {
        let ev = event_on(&told, kind, name);
        assert_eq!(ev["type"], "Warning");
        let msg = ev["message"].as_str().unwrap();
        for part in ["\"web.default\"", "<name>.evil", "ROUTE_HOSTNAME_SCOPE", own] {
            assert!(msg.contains(part), "{part} not in {msg}");
        }
    }
    assert_eq!(metric(ROUTE_ERRORS), before + 3);
    // An unrelated change republishes: nothing said twice.
    api.apply(workload("Deployment", "evil", "z", &[(DRAINS, &attacker)], &[]));
    h.wait_drains("z.evil", &[&attacker], LIVE).await;
    assert_eq!(metric(ROUTE_ERRORS), before + 3);
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).to_string();
    let said = |object: &str| {
        text.lines()
            .filter(|l| l.contains("Hostname annotation refused") && l.contains(object))
            .count()
    };
    assert_eq!(said("Deployment evil/x"), 1, "{text}");
    assert_eq!(said("Pod evil/solo"), 1, "{text}");

    // A hostname of its own namespace is the tenant's to take.
    api.modify("Deployment", "evil", "x", |o| {
        o["metadata"]["annotations"][HOSTNAME] = json!("web.evil")
    });
    h.wait_drains("web.evil", &[&attacker], LIVE).await;
    wait_until("pod renamed", LIVE, || {
        h.pod("evil", &x_pod).is_some_and(|p| p.0 == "web.evil")
    })
    .await;
    assert_eq!(h.drains("web.default"), vec![id(&victim)]);
    assert_eq!(events(&api, "evil", "HostnameRefused").len(), 3);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_hostname_scope_any_an_annotation_claims_any_hostname() {
    let api = KubeApi::start().await;
    let (victim, attacker) = (unreached("victim"), unreached("attacker"));
    deploy_with_pod(&api, "default", "web", &[(DRAINS, &victim)], NODE);
    let x_pod = deploy_with_pod(
        &api,
        "evil",
        "x",
        &[(DRAINS, &attacker), (HOSTNAME, "web.default")],
        NODE,
    );
    let any = Settings {
        hostname_scope: HostnameScope::Any,
        ..settings()
    };
    let h = Harness::start(&api, any);
    h.wait_drains("web.default", &[&victim, &attacker], SYNC).await;
    wait_until("pods", SYNC, || h.app.pods.len() == 2).await;
    assert_eq!(h.pod("evil", &x_pod).unwrap().0, "web.default");
    assert_eq!(h.drains("x.evil"), Vec::<String>::new());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(api.objects("events", "evil").is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_akkeris_claim_that_also_reads_as_another_namespace_is_refused() {
    let _serial = support::inputs::serial().await;
    let api = KubeApi::start().await;
    let a = unreached("a");
    // `x-prod` is known from its workload; `a-x-prod` is `a` of `x-prod`.
    api.apply(workload("Deployment", "x-prod", "a", &[], &[]));
    api.apply(workload(
        "Deployment",
        "prod",
        "shop",
        &[(DRAINS, &a), (HOSTNAME, "a-x-prod")],
        &[],
    ));
    api.apply(workload(
        "Deployment",
        "prod",
        "cart",
        &[(DRAINS, &a), (HOSTNAME, "cart-v2-prod")],
        &[],
    ));
    let akkeris = Settings {
        naming: Naming { akkeris: true },
        ..settings()
    };
    let h = Harness::start(&api, akkeris);
    h.wait_drains("shop-prod", &[&a], SYNC).await;
    h.wait_drains("cart-v2-prod", &[&a], SYNC).await;
    assert_eq!(h.drains("a-x-prod"), Vec::<String>::new());
    wait_until("an Event", SYNC, || !events(&api, "prod", "HostnameRefused").is_empty()).await;
    let told = events(&api, "prod", "HostnameRefused");
    assert_eq!(told.len(), 1, "{told:#?}");
    let msg = event_on(&told, "Deployment", "shop")["message"].as_str().unwrap();
    assert!(msg.contains("x-prod") && msg.contains("<name>.prod"), "{msg}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_over_the_cap_are_refused_counted_and_told() {
    let _serial = support::inputs::serial().await;
    let api = KubeApi::start().await;
    let u: Vec<String> = (1..=5).map(|i| unreached(&format!("d{i}"))).collect();
    let four = format!("{};{};{};{}", u[0], u[1], u[2], u[3]);
    api.apply(workload("Deployment", "default", "many", &[(DRAINS, &four)], &[]));
    // Duplicates count once.
    let dups = format!("{0};{0}, {1}", u[0], u[1]);
    api.apply(workload("Deployment", "default", "dups", &[(DRAINS, &dups)], &[]));
    // A pod with its own hostname gets its owner's drains and its own: three.
    let two = format!("{};{}", u[0], u[1]);
    api.apply(workload("Deployment", "default", "api", &[(DRAINS, &two)], &[]));
    api.apply(owned(
        workload("ReplicaSet", "default", "api-7f9", &[], &[]),
        "Deployment",
        "api",
    ));
    api.apply(owned(
        pod(
            "default",
            "api-7f9-ccccc",
            NODE,
            &[(DRAINS, &u[4]), (HOSTNAME, "special.default")],
            &[],
        ),
        "ReplicaSet",
        "api-7f9",
    ));
    let before = metric(ROUTE_ERRORS);
    let capped = Settings {
        max_drains: 2,
        ..settings()
    };
    let h = Harness::start(&api, capped);
    h.wait_drains("many.default", &[&u[0], &u[1]], SYNC).await;
    h.wait_drains("dups.default", &[&u[0], &u[1]], SYNC).await;
    h.wait_drains("special.default", &[&u[0], &u[1]], SYNC).await;
    wait_until("two Events", SYNC, || {
        events(&api, "default", "TooManyDrains").len() == 2
    })
    .await;
    let told = events(&api, "default", "TooManyDrains");
    let msg = event_on(&told, "Deployment", "many")["message"].as_str().unwrap();
    assert!(msg.contains("ANNOTATION_MAX_DRAINS allows 2"), "{msg}");
    assert!(msg.contains(&url_id(&u[2])) && msg.contains(&url_id(&u[3])), "{msg}");
    assert!(!msg.contains(&url_id(&u[0])), "{msg}");
    let msg = event_on(&told, "Pod", "api-7f9-ccccc")["message"].as_str().unwrap();
    assert!(msg.contains(&url_id(&u[4])) && msg.contains("owner"), "{msg}");
    // One per refused route: two of `many`, one of the pod.
    assert_eq!(metric(ROUTE_ERRORS), before + 3);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_an_annotation_may_not_use_are_told_on_the_object_without_secrets() {
    let _serial = support::inputs::serial().await;
    let api = KubeApi::start().await;
    let ok = unreached("ok");
    let refused = [
        "file:///var/lib/logtrain/checkpoints.json",
        "stdout://",
        "syslog+tcp://127.0.0.1:514",
        "https://user:s3cret@169.254.169.254/latest?token=s3cret",
    ];
    let value = format!("{ok};{}", refused.join(";"));
    deploy_with_pod(&api, "shop", "local", &[(DRAINS, &value)], NODE);
    let before = metric(ROUTE_ERRORS);
    let h = Harness::start(&api, settings());
    h.wait_drains("local.shop", &[&ok], SYNC).await;
    wait_until("four Events", SYNC, || {
        events(&api, "shop", "DrainNotAllowed").len() == 4
    })
    .await;
    let told = events(&api, "shop", "DrainNotAllowed");
    for url in refused {
        let ev = told
            .iter()
            .find(|e| e["message"].as_str().unwrap().contains(&url_id(url)))
            .unwrap_or_else(|| panic!("no Event naming {} in {told:#?}", url_id(url)));
        assert_eq!(ev["involvedObject"]["kind"], "Deployment");
        assert_eq!(ev["involvedObject"]["name"], "local");
        let msg = ev["message"].as_str().unwrap();
        let why = if url.contains("127.0.0.1") || url.contains("169.254") {
            "DRAIN_DENY_NETWORKS"
        } else {
            "annotation"
        };
        assert!(msg.contains(why), "{msg}");
    }
    let all = serde_json::to_string(&told).unwrap();
    assert!(!all.contains("s3cret") && !all.contains("token="), "{all}");
    // The route writer refused (and counted) the same four.
    assert_eq!(metric(ROUTE_ERRORS), before + 4);
    assert!(events(&api, "shop", "BadDrainURL").is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_logtrains_seeing_the_same_refusal_tell_it_once_between_them() {
    let _serial = support::inputs::serial().await;
    let api = KubeApi::start().await;
    let value = format!("{};gopher://x", unreached("a"));
    api.apply(workload(
        "Deployment",
        "evil",
        "x",
        &[(DRAINS, &value), (HOSTNAME, "web.default")],
        &[],
    ));
    let created = metric("logtrain_kubernetes_events_total");
    let existing = metric("logtrain_kubernetes_events_existing_total");
    let failed = metric("logtrain_kubernetes_event_errors_total");
    let one = Harness::start(&api, settings());
    wait_until("two Events", SYNC, || api.objects("events", "evil").len() == 2).await;
    let node_b = Settings {
        node_name: Some("node-b".into()),
        ..settings()
    };
    let two = Harness::start(&api, node_b);
    wait_until("the second logtrain's creates", SYNC, || api.conflicts() == 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let told = api.objects("events", "evil");
    let mut reasons: Vec<&str> = told.iter().map(|e| e["reason"].as_str().unwrap()).collect();
    reasons.sort();
    assert_eq!(reasons, ["BadDrainURL", "HostnameRefused"], "{told:#?}");
    let posts = api
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST /api/v1/namespaces/evil/events"))
        .count();
    assert_eq!(posts, 4);
    assert_eq!(metric("logtrain_kubernetes_events_total"), created + 2);
    assert_eq!(metric("logtrain_kubernetes_events_existing_total"), existing + 2);
    assert_eq!(metric("logtrain_kubernetes_event_errors_total"), failed);
    one.stop().await;
    two.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_comma_splits_an_annotation_only_before_a_scheme() {
    let api = KubeApi::start().await;
    let with_comma = "https://user:pa,ss@collector.invalid/ingest";
    let (b, c) = (unreached("b"), "es+https://c.invalid");
    let value = format!("{with_comma}, {b};{c}");
    api.apply(workload("Deployment", "default", "web", &[(DRAINS, &value)], &[]));
    let h = Harness::start(&api, settings());
    h.wait_drains("web.default", &[with_comma, &b, c], SYNC).await;
    h.stop().await;
}

fn vm_hwm_kib() -> u64 {
    status_kib("VmHWM:")
}

fn status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_workloads_sync() {
    let api = KubeApi::start().await;
    let a = unreached("a");
    let filler = "x".repeat(2000);
    for i in 0..10_000 {
        let ns = format!("ns-{}", i % 50);
        let name = format!("app-{i}");
        // Annotated every tenth; every one carries a big last-applied annotation, as kubectl leaves.
        let mut ann = vec![("kubectl.kubernetes.io/last-applied-configuration", filler.as_str())];
        if i % 10 == 0 {
            ann.push((DRAINS, a.as_str()));
        }
        api.apply(workload("Deployment", &ns, &name, &ann, &[("app", &name)]));
    }
    for i in 0..100 {
        let ns = format!("ns-{}", i % 50);
        let rs = format!("app-{i}-5d8f7c9b6");
        api.apply(owned(
            workload("ReplicaSet", &ns, &rs, &[], &[]),
            "Deployment",
            &format!("app-{i}"),
        ));
        api.apply(owned(
            pod(&ns, &format!("{rs}-x2x4z"), NODE, &[], &[]),
            "ReplicaSet",
            &rs,
        ));
    }
    api.compact();
    let before = vm_hwm_kib();
    let started = Instant::now();
    let h = Harness::start(&api, settings());
    wait_until("1,000 routes", Duration::from_secs(50), || {
        h.app.routes.load().len() == 1000
    })
    .await;
    wait_until("100 pods", Duration::from_secs(10), || h.app.pods.len() == 100).await;
    let took = started.elapsed();
    let pages = api
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /apis/apps/v1/deployments?") && !r.contains("watch="))
        .count();
    assert_eq!(pages, 20, "500 per page");
    assert_eq!(h.pod("ns-7", "app-7-5d8f7c9b6-x2x4z").unwrap().0, "app-7.ns-7");
    println!(
        "10,000 workloads synced in {took:?}; VmHWM {} MiB before the datasource started, {} MiB after, VmRSS {} MiB (test server and its objects included)",
        before / 1024,
        vm_hwm_kib() / 1024,
        status_kib("VmRSS:") / 1024
    );
    h.stop().await;
}
