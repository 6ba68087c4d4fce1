//! `kube-api`: the test suite's Kubernetes API stand-in (it pages lists with
//! `limit`/`continue` as the real server does) serving a synthetic cluster, for
//! the `kube_scale` scenario of `bench/run`: `--deployments` Deployments with
//! `--replicasets` ReplicaSets each (named `<deployment>-<pod-template-hash>`,
//! owned by it) and a `--last-applied` byte `last-applied-configuration`
//! annotation on every Deployment, `--jobs` standalone Jobs, and `--pods` pods
//! on node `--node` (nine in ten of a Deployment, the rest of a Job). One
//! Deployment in ten names a drain. It writes a kubeconfig to `--kubeconfig`
//! once the cluster is in place, and on SIGTERM prints what it served as one
//! JSON line: list pages, watches and single-object GETs, by resource.

#[allow(dead_code, unused_imports)]
#[path = "../../tests/it/support/kube_api.rs"]
mod kube_api;
#[allow(dead_code, unused_imports)]
#[path = "../../tests/it/support/kube_proxy.rs"]
mod kube_proxy;

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::Args;

fn meta(ns: &str, name: &str) -> Value {
    json!({"name": name, "namespace": ns})
}

fn owner(kind: &str, api: &str, name: &str) -> Value {
    json!([{"apiVersion": api, "kind": kind, "name": name, "uid": format!("uid-{name}"), "controller": true, "blockOwnerDeletion": true}])
}

/// The synthetic cluster, added to `api`.
fn populate(api: &kube_api::KubeApi, a: &Args) -> Result<(), String> {
    let deployments = a.num("deployments", 10_000)?;
    let per = a.num("replicasets", 3)?;
    let jobs = a.num("jobs", 2_000)?;
    let pods = a.num("pods", 50)?;
    let applied = "x".repeat(a.num("last-applied", 2048)? as usize);
    let node = a.str("node", "bench-node");
    let drain = a.str("drain", "syslog+tcp://127.0.0.1:9");
    let ns = |i: u64| format!("team-{:03}", i % 100);
    for d in 0..deployments {
        let name = format!("app-{d:05}");
        let mut m = meta(&ns(d), &name);
        let mut ann = json!({"kubectl.kubernetes.io/last-applied-configuration": applied, "deployment.kubernetes.io/revision": per.to_string()});
        if d % 10 == 0 {
            ann["logtrain.akkeris.io/drains"] = json!(drain);
        }
        m["annotations"] = ann;
        m["labels"] = json!({"app": name});
        api.apply(json!({"kind": "Deployment", "metadata": m}));
        for r in 0..per {
            let hash = format!("{:010x}", d * 16 + r);
            let mut m = meta(&ns(d), &format!("{name}-{hash}"));
            m["labels"] = json!({"app": name, "pod-template-hash": hash});
            m["annotations"] = json!({"deployment.kubernetes.io/revision": (r + 1).to_string()});
            m["ownerReferences"] = owner("Deployment", "apps/v1", &name);
            api.apply(json!({"kind": "ReplicaSet", "metadata": m}));
        }
    }
    for j in 0..jobs {
        let mut m = meta(&ns(j), &format!("batch-{j:05}"));
        m["labels"] = json!({"job-name": format!("batch-{j:05}")});
        api.apply(json!({"kind": "Job", "metadata": m}));
    }
    for p in 0..pods {
        let (mut m, labels) = if p % 10 == 9 && jobs > 0 {
            let job = format!("batch-{:05}", p % jobs);
            let mut m = meta(&ns(p % jobs), &format!("{job}-p{p:03}"));
            m["ownerReferences"] = owner("Job", "batch/v1", &job);
            (m, json!({"job-name": job, "batch.kubernetes.io/job-name": job}))
        } else {
            let d = p % deployments.max(1);
            let hash = format!("{:010x}", d * 16 + per.saturating_sub(1));
            let rs = format!("app-{d:05}-{hash}");
            let mut m = meta(&ns(d), &format!("{rs}-p{p:03}"));
            m["ownerReferences"] = owner("ReplicaSet", "apps/v1", &rs);
            (m, json!({"app": format!("app-{d:05}"), "pod-template-hash": hash}))
        };
        m["labels"] = labels;
        api.apply(json!({"kind": "Pod", "metadata": m, "spec": {"nodeName": node}, "status": {"phase": "Running"}}));
    }
    // The history is not needed: lists and watches start from now.
    api.compact();
    Ok(())
}

/// `(list pages, watches, single-object GETs)` by resource, from the request log.
fn count(requests: &[String]) -> Value {
    let mut by: BTreeMap<String, [u64; 3]> = BTreeMap::new();
    for r in requests {
        let Some(rest) = r.strip_prefix("GET /") else { continue };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let segs: Vec<&str> = path.split('/').collect();
        let tail = match segs.as_slice() {
            ["api", _, t @ ..] | ["apis", _, _, t @ ..] => t,
            _ => continue,
        };
        let (plural, named) = match tail {
            ["namespaces", _, p] | [p] => (*p, false),
            ["namespaces", _, p, _] => (*p, true),
            _ => continue,
        };
        let slot = if named {
            2
        } else if query.split('&').any(|kv| kv == "watch=true" || kv == "watch=1") {
            1
        } else {
            0
        };
        by.entry(plural.to_string()).or_default()[slot] += 1;
    }
    let total = |i: usize| by.values().map(|c| c[i]).sum::<u64>();
    let each: serde_json::Map<String, Value> = by
        .iter()
        .map(|(k, c)| (k.clone(), json!({"pages": c[0], "watches": c[1], "gets": c[2]})))
        .collect();
    json!({"pages": total(0), "watches": total(1), "gets": total(2), "by_resource": each})
}

pub fn run(a: &Args) -> Result<(), String> {
    let kubeconfig = a.str("kubeconfig", "");
    if kubeconfig.is_empty() {
        return Err("--kubeconfig FILE is required".into());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|e| e.to_string())?;
        let api = kube_api::KubeApi::start().await;
        populate(&api, a)?;
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: b, cluster: {{server: \"{}\"}}}}]\nusers: [{{name: u, user: {{}}}}]\ncontexts: [{{name: c, context: {{cluster: b, user: u}}}}]\ncurrent-context: c\n",
            api.url()
        );
        let tmp = format!("{kubeconfig}.tmp");
        std::fs::write(&tmp, config).map_err(|e| format!("{tmp}: {e}"))?;
        std::fs::rename(&tmp, &kubeconfig).map_err(|e| format!("{kubeconfig}: {e}"))?;
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        println!("{}", count(&api.requests()));
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_kind() {
        let r = |s: &str| s.to_string();
        let c = count(&[
            r("GET /apis/apps/v1/deployments?limit=500 accept=x"),
            r("GET /apis/apps/v1/deployments?limit=500&continue=1:a/b accept=x"),
            r("GET /apis/apps/v1/deployments?watch=true&resourceVersion=3 accept=x"),
            r("GET /apis/apps/v1/namespaces/a/replicasets/web-1? accept=x"),
            r("POST /api/v1/namespaces/a/events?"),
            r("GET /version? accept="),
        ]);
        assert_eq!(
            (c["pages"].as_u64(), c["watches"].as_u64(), c["gets"].as_u64()),
            (Some(2), Some(1), Some(1))
        );
        assert_eq!(c["by_resource"]["replicasets"]["gets"], 1);
    }
}
