//! Processing parameters in a workload's drains annotation, served by the
//! Kubernetes test API server: the HTTP drain's documents carry the
//! `kubernetes` object (pod, container, node, workload and the labels asked
//! for), the syslog drain's lines the `sd=kubernetes` element as rsyslog
//! parses it, each drain filtered by its own parameters; a pattern that does
//! not compile is refused with a Warning Event saying why.

use std::sync::Arc;
use std::time::Duration;

use logtrain::config::Config;
use logtrain::datasource::Datasource;
use logtrain::datasource::kubernetes::{KubernetesSource, Settings};
use logtrain::drain::DrainSpec;
use logtrain::egress::Egress;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::{NODE, Node, append, cri};
use crate::support::http_recorder::Recorder;
use crate::support::kube_api::KubeApi;
use crate::support::rsyslog::{entries, tcp_receiver};
use crate::support::{free_port, wait_until};

const DRAINS: &str = "logtrain.akkeris.io/drains";
const POD: &str = "web-5d8f7c9b6-aaaaa";

fn object(kind: &str, name: &str, annotations: Value, labels: Value) -> Value {
    json!({"kind": kind, "metadata": {"name": name, "namespace": "default", "annotations": annotations, "labels": labels}, "spec": {}})
}

fn owned_by(mut obj: Value, kind: &str, name: &str) -> Value {
    obj["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": kind, "name": name,
        "uid": "00000000-0000-4000-8000-000000000001", "controller": true
    }]);
    obj
}

/// A tenant's drain as the routes name it (its own copy of the URL's drain).
fn tenant_id(url: &str) -> String {
    DrainSpec::parse(url).unwrap().restricted(Arc::new(Egress::open())).id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_annotations_drains_get_the_pods_metadata_and_their_own_filters() {
    let node = Node::new();
    let rs_port = free_port();
    let _rsyslog = tcp_receiver(&node.root.path().join("rsyslog"), rs_port);
    let rsyslog_out = node.root.path().join("rsyslog/out.json");
    let http = Recorder::start().await;
    let api = KubeApi::start().await;

    let to_http = format!("http://127.0.0.1:{}/logs?severity=err&labels=app,team", http.port);
    let to_syslog = format!("syslog+tcp://127.0.0.1:{rs_port}?sd=kubernetes&labels=team&match=boom");
    api.apply(object(
        "Deployment",
        "web",
        json!({ DRAINS: format!("{to_http}, {to_syslog}") }),
        json!({}),
    ));
    api.apply(owned_by(
        object("ReplicaSet", "web-5d8f7c9b6", json!({}), json!({})),
        "Deployment",
        "web",
    ));
    let mut pod = owned_by(
        object(
            "Pod",
            POD,
            json!({}),
            json!({"app": "web", "team": "pay]ments\"", "other": "x"}),
        ),
        "ReplicaSet",
        "web-5d8f7c9b6",
    );
    pod["spec"] = json!({"nodeName": NODE, "containers": [{"name": "app", "image": "busybox"}]});
    api.apply(pod);
    api.apply(object(
        "Deployment",
        "bad",
        json!({ DRAINS: "syslog+tcp://127.0.0.1:9?match=(x" }),
        json!({}),
    ));
    // The other parameters, on a workload without pods (no records to send).
    let quiet = "http://127.0.0.1:9/in?exclude=x&stream=stdout&rate=10&parse=json";
    api.apply(object("Deployment", "quiet", json!({ DRAINS: quiet }), json!({})));
    let log = node.pod("default", POD, "app");

    let config = Config {
        routes: Vec::new(),
        drain_deny_networks: Vec::new(),
        ..node.config(&[])
    };
    let app = logtrain::app::App::start(config);
    let settings = Settings {
        node_name: Some(NODE.into()),
        egress: Arc::new(Egress::open()),
        ..Settings::default()
    };
    let source = KubernetesSource::new(api.client(), settings, app.pods.clone());
    let stop = CancellationToken::new();
    tokio::spawn(Box::new(source).run(app.route_sender(), stop.clone()));
    app.wait_ready().await;
    logtrain::input::start(&app).await.unwrap();
    let mut want = vec![tenant_id(&to_http), tenant_id(&to_syslog)];
    want.sort();
    let routed = || {
        let mut d: Vec<String> = app
            .routes
            .load()
            .drains_for(b"web.default")
            .iter()
            .map(|d| d.id().to_string())
            .collect();
        d.sort();
        d
    };
    wait_until("the annotation's drains", Duration::from_secs(10), || routed() == want).await;
    wait_until("the quiet workload's drain", Duration::from_secs(10), || {
        app.routes
            .load()
            .drains_for(b"quiet.default")
            .iter()
            .map(|d| d.id().to_string())
            .collect::<Vec<_>>()
            == [tenant_id(quiet)]
    })
    .await;
    assert!(
        tenant_id(quiet).ends_with(" params=exclude,stream,rate,parse"),
        "{}",
        tenant_id(quiet)
    );

    append(&log, &cri("stdout", "info line"));
    append(&log, &cri("stderr", "boom 1"));
    append(&log, &cri("stderr", "fine"));

    // The HTTP drain: stderr only (severity=err), with the kubernetes object.
    let docs = || -> Vec<Value> {
        http.accepted()
            .iter()
            .flat_map(|r| {
                r.body
                    .split(|&c| c == b'\n')
                    .filter(|l| !l.is_empty())
                    .map(|l| serde_json::from_slice::<Value>(l).unwrap())
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    wait_until("2 documents", Duration::from_secs(10), || docs().len() >= 2).await;
    let docs = docs();
    let msgs: Vec<&str> = docs.iter().map(|d| d["message"].as_str().unwrap()).collect();
    assert_eq!(msgs, ["boom 1", "fine"]);
    let k = &docs[0]["kubernetes"];
    assert_eq!(k["namespace"], "default", "{k}");
    assert_eq!(k["pod"], POD);
    assert_eq!(k["container"], "app");
    assert_eq!(k["node"], NODE);
    assert_eq!(k["workload"], json!({"kind": "Deployment", "name": "web"}));
    assert_eq!(
        k["labels"],
        json!({"app": "web", "team": "pay]ments\""}),
        "the labels asked for only"
    );

    // The syslog drain: messages with "boom", the SD element as rsyslog parses it.
    wait_until("rsyslog's line", Duration::from_secs(10), || {
        !entries(&rsyslog_out).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lines = entries(&rsyslog_out);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(lines[0]["msg"], "boom 1");
    assert_eq!(
        lines[0]["sd"],
        format!(
            r#"[kubernetes@32473 namespace="default" pod="{POD}" container="app" node="{NODE}" workload_kind="Deployment" workload="web" label.team="pay\]ments\""]"#
        )
    );

    // The bad pattern: refused, with an Event on the Deployment saying why.
    wait_until("an Event", Duration::from_secs(10), || {
        !api.objects("events", "default").is_empty()
    })
    .await;
    let events = api.objects("events", "default");
    let ev = events
        .iter()
        .find(|e| e["involvedObject"]["name"] == "bad")
        .unwrap_or_else(|| panic!("{events:#?}"));
    assert_eq!(ev["reason"], "BadDrainURL");
    let msg = ev["message"].as_str().unwrap();
    assert!(
        msg.contains("parameter match= is not a usable regular expression"),
        "{msg}"
    );
    stop.cancel();
    app.shutdown().await;
}
