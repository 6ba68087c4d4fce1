//! What the Kubernetes datasource asks the API server for a pod's owners:
//! a Deployment's pod is resolved from its `pod-template-hash` label without
//! any ReplicaSet being listed, watched or read; a ReplicaSet that does not
//! fit the naming rule, and a Job, are read by one GET each and cached; a
//! standalone ReplicaSet's or Job's own annotations still route; and lists
//! longer than a page are followed with `continue`, as the real server pages.

use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

use crate::kubernetes_datasource::{
    DRAINS, HOSTNAME, Harness, LIVE, NODE, SYNC, owned, pod, settings, unreached, workload,
};
use crate::support::kube_api::KubeApi;
use crate::support::wait_until;

const TAG: &str = "logtrain.akkeris.io/tag";

/// Requests whose path contains `part`.
fn asked(api: &KubeApi, part: &str) -> Vec<String> {
    api.requests().into_iter().filter(|r| r.contains(part)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployments_pod_routes_by_the_deployment_without_any_replicaset_request() {
    let api = KubeApi::start().await;
    let a = unreached("a");
    api.apply(workload(
        "Deployment",
        "default",
        "web",
        &[(DRAINS, &a), (TAG, "web-tag")],
        &[],
    ));
    api.apply(owned(
        workload(
            "ReplicaSet",
            "default",
            "web-5d8f7c9b6",
            &[],
            &[("pod-template-hash", "5d8f7c9b6")],
        ),
        "Deployment",
        "web",
    ));
    api.apply(owned(
        pod(
            "default",
            "web-5d8f7c9b6-x2x4z",
            NODE,
            &[],
            &[("pod-template-hash", "5d8f7c9b6")],
        ),
        "ReplicaSet",
        "web-5d8f7c9b6",
    ));
    let h = Harness::start(&api, settings());
    h.wait_drains("web.default", &[&a], SYNC).await;
    wait_until("the pod resolved", SYNC, || {
        h.pod("default", "web-5d8f7c9b6-x2x4z") == Some(("web.default".into(), "web-tag".into()))
    })
    .await;
    // A change of the Deployment reaches its pod, still without a ReplicaSet.
    api.modify("Deployment", "default", "web", |o| {
        o["metadata"]["annotations"][HOSTNAME] = json!("web-renamed.default");
    });
    wait_until("the pod renamed", LIVE, || {
        h.pod("default", "web-5d8f7c9b6-x2x4z").map(|p| p.0) == Some("web-renamed.default".into())
    })
    .await;
    assert_eq!(asked(&api, "replicasets"), Vec::<String>::new());
    assert_eq!(asked(&api, "/jobs"), Vec::<String>::new());
    assert!(!asked(&api, "/apis/apps/v1/deployments?").is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replicaset_that_does_not_fit_the_naming_rule_is_read_once_by_get() {
    let api = KubeApi::start().await;
    let b = unreached("b");
    api.apply(workload(
        "Deployment",
        "default",
        "api",
        &[(DRAINS, &b), (TAG, "api-tag")],
        &[],
    ));
    // Named otherwise than `<deployment>-<pod-template-hash>`.
    api.apply(owned(
        workload("ReplicaSet", "default", "api-legacy", &[], &[]),
        "Deployment",
        "api",
    ));
    let labels = [("pod-template-hash", "7f9c")];
    for p in ["api-legacy-aaaaa", "api-legacy-bbbbb"] {
        api.apply(owned(pod("default", p, NODE, &[], &labels), "ReplicaSet", "api-legacy"));
    }
    let h = Harness::start(&api, settings());
    wait_until("both pods resolved to the Deployment", SYNC, || {
        ["api-legacy-aaaaa", "api-legacy-bbbbb"]
            .iter()
            .all(|p| h.pod("default", p) == Some(("api.default".into(), "api-tag".into())))
    })
    .await;
    // Another publication: the cached ReplicaSet is not read again.
    api.modify("Pod", "default", "api-legacy-aaaaa", |o| {
        o["metadata"]["annotations"] = json!({TAG: "own"});
    });
    wait_until("the pod's own tag", LIVE, || {
        h.pod("default", "api-legacy-aaaaa").map(|p| p.1) == Some("own".into())
    })
    .await;
    let gets = asked(&api, "replicasets");
    assert_eq!(gets.len(), 1, "{gets:#?}");
    assert!(
        gets[0].starts_with("GET /apis/apps/v1/namespaces/default/replicasets/api-legacy?")
            && gets[0].ends_with("as=PartialObjectMetadata;g=meta.k8s.io;v=v1"),
        "{gets:#?}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standalone_replicaset_or_job_with_annotations_still_routes() {
    let api = KubeApi::start().await;
    let (c, d) = (unreached("c"), unreached("d"));
    api.apply(workload("ReplicaSet", "default", "solo-rs", &[(DRAINS, &c)], &[]));
    api.apply(owned(
        pod("default", "solo-rs-q7x2p", NODE, &[], &[("pod-template-hash", "q7x2p")]),
        "ReplicaSet",
        "solo-rs",
    ));
    api.apply(workload(
        "Job",
        "batch",
        "migrate",
        &[(DRAINS, &d), (TAG, "migrate-tag")],
        &[],
    ));
    api.apply(owned(
        pod("batch", "migrate-k2l9m", NODE, &[], &[("job-name", "migrate")]),
        "Job",
        "migrate",
    ));
    let h = Harness::start(&api, settings());
    h.wait_drains("solo-rs.default", &[&c], SYNC).await;
    h.wait_drains("migrate.batch", &[&d], SYNC).await;
    assert_eq!(
        h.pod("batch", "migrate-k2l9m"),
        Some(("migrate.batch".into(), "migrate-tag".into()))
    );
    assert_eq!(asked(&api, "replicasets").len(), 1);
    assert_eq!(asked(&api, "/jobs").len(), 1);
    // Its routes last while a pod of this node names it.
    api.delete("Pod", "default", "solo-rs-q7x2p");
    h.wait_drains("solo-rs.default", &[], LIVE).await;
    h.wait_drains("migrate.batch", &[&d], LIVE).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_server_pages_as_the_real_one_and_the_datasource_follows() {
    let api = KubeApi::start().await;
    let a = unreached("a");
    for i in 0..1_200 {
        api.apply(workload(
            "Deployment",
            "ns",
            &format!("app-{i:04}"),
            &[(DRAINS, &a)],
            &[],
        ));
    }
    // The server: `limit`, `continue`, `remainingItemCount`, 410 for an expired continue.
    let deployments: Api<Deployment> = Api::all(api.client());
    let first = deployments
        .list_metadata(&ListParams::default().limit(500))
        .await
        .unwrap();
    assert_eq!(first.items.len(), 500);
    assert_eq!(first.metadata.remaining_item_count, Some(700));
    let token = first.metadata.continue_.clone().unwrap();
    let second = deployments
        .list_metadata(&ListParams::default().limit(500).continue_token(&token))
        .await
        .unwrap();
    assert_eq!(second.items[0].metadata.name.as_deref(), Some("app-0500"));
    assert_eq!(second.metadata.remaining_item_count, Some(200));
    api.apply(workload("Deployment", "ns", "late", &[], &[]));
    api.compact();
    let expired = deployments
        .list_metadata(&ListParams::default().limit(500).continue_token(&token))
        .await;
    assert!(
        matches!(&expired, Err(kube::Error::Api(s)) if s.code == 410 && s.reason == "Expired"),
        "{expired:?}"
    );
    let before = asked(&api, "/apis/apps/v1/deployments?").len();
    // The datasource: every page, 500 at a time.
    let h = Harness::start(&api, settings());
    wait_until("1,200 routes", SYNC, || h.app.routes.load().len() == 1_200).await;
    let pages: Vec<String> = asked(&api, "/apis/apps/v1/deployments?")
        .into_iter()
        .skip(before)
        .filter(|r| !r.contains("watch="))
        .collect();
    assert_eq!(pages.len(), 3, "{pages:#?}");
    assert!(pages.iter().all(|p| p.contains("limit=500")), "{pages:#?}");
    assert_eq!(
        pages.iter().filter(|p| p.contains("continue=")).count(),
        2,
        "{pages:#?}"
    );
    h.stop().await;
}
