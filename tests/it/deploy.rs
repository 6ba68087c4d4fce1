//! Deployment artifacts: the Helm chart rendered by Helm's own template engine, the
//! kubectl-apply manifests generated from it, their validity against the Kubernetes
//! JSON schemas and kubectl's decoder, the least-privilege promises, the order
//! `kubectl apply` creates the plain manifests in, every variable of `config::SETTINGS`
//! being set or settable through a documented value, the resources against the
//! measured figures, the optional NetworkPolicy admitting only the peers it names,
//! the Grafana dashboard against the metric catalog, and the Dockerfile.
//!
//! Tools, installed by `tests/run`: `.venv/deploy` (or `$LOGTRAIN_TEST_DEPLOY_VENV`)
//! holding helm-python-sdk (Helm's Go SDK behind a C ABI: the same engine as
//! `helm template`) and kubernetes-validate (the Kubernetes JSON schemas, offline),
//! and `kubectl`. A missing tool fails the test with the command that installs it.
//!
//! What cannot be checked here: kubectl's server-side validation and
//! `kubectl create --dry-run=client`, which both need an API server for discovery;
//! the decoder checks use kubectl's `--local` modes instead. The ServiceMonitor,
//! PodMonitor and PrometheusRule are CRDs with no schema in the offline set; their
//! fields are asserted directly, and every metric an alert names is in the catalog.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// Every opt-in turned on, so the optional template branches are validated too.
const EVERYTHING_ON: &str = r#"{
  "serviceMonitor": {"enabled": true, "labels": {"release": "prometheus"},
    "relabelings": [{"action": "labeldrop", "regex": "pod_template_hash"}]},
  "prometheusRule": {"enabled": true, "labels": {"release": "prometheus"}, "alertLabels": {"team": "platform"}},
  "grafanaDashboard": {"enabled": true, "annotations": {"grafana_folder": "Logging"}},
  "config": {"routes": [{"hostname": "web.default", "drains": ["syslog+tls://logs.example.com:6514"]}]},
  "image": {"digest": "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
  "envFrom": [{"secretRef": {"name": "logtrain-env"}}],
  "extraVolumes": [{"name": "drain-ca", "configMap": {"name": "drain-ca"}}],
  "extraVolumeMounts": [{"name": "drain-ca", "mountPath": "/etc/drain-ca", "readOnly": true}],
  "podLabels": {"team": "platform"},
  "rbac": {"tailers": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "sre"}]},
  "logs": {"readAsRoot": true},
  "inotify": {"raiseLimits": true},
  "inputs": {"syslogTls": {"enabled": true, "secretName": "logtrain-tls", "clientCA": true, "serverName": "logs.example.com"}},
  "datasources": {"postgres": {"enabled": true, "databaseUrlSecret": {"name": "logtrain-db"}}},
  "priorityClassName": "system-node-critical",
  "excludeNamespaces": ["kube-system", "istio-system"],
  "extraEnv": [{"name": "RUST_BACKTRACE", "value": "1"}],
  "updateStrategy": {"maxUnavailable": "10%"},
  "networkPolicy": {
    "enabled": true,
    "http": {"nodeCIDRs": ["10.0.0.0/16", "fd00:10::/64"]},
    "egress": {"restrict": true, "rules": [
      {"to": [{"ipBlock": {"cidr": "10.0.0.10/32"}}], "ports": [{"port": 6443, "protocol": "TCP"}]},
      {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}], "ports": [{"port": 6514, "protocol": "TCP"}, {"port": 443}]}
    ]}
  }
}"#;

/// The PodMonitor instead of the ServiceMonitor (the chart refuses both at once).
const POD_MONITOR_ON: &str = r#"{
  "serviceMonitor": {"enabled": false},
  "podMonitor": {"enabled": true, "interval": "15s", "labels": {"release": "prometheus"},
    "relabelings": [{"action": "labeldrop", "regex": "pod_template_hash"}],
    "metricRelabelings": [{"action": "drop", "sourceLabels": ["__name__"], "regex": "logtrain_tail_.*"}]}
}"#;

/// Templates of prometheus-operator CRDs, which the offline schemas do not know.
const CRD_TEMPLATES: [&str; 3] = ["podmonitor.yaml", "prometheusrule.yaml", "servicemonitor.yaml"];
const CRD_KINDS: [&str; 3] = ["PodMonitor", "PrometheusRule", "ServiceMonitor"];

const INSTALL_HINT: &str = "run `bash tests/run` once (its deploy block installs .venv/deploy with \
     helm-python-sdk and kubernetes-validate), or: python3 -m venv .venv/deploy && \
     .venv/deploy/bin/pip install helm-python-sdk==0.2.2 kubernetes-validate==1.37.0";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os("LOGTRAIN_TEST_DEPLOY_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".venv/deploy"));
    let p = venv.join("bin").join(name);
    assert!(
        p.exists(),
        "{} is missing, so the chart cannot be rendered by Helm's engine nor checked against the \
         Kubernetes schemas: {INSTALL_HINT}",
        p.display()
    );
    p
}

fn kubectl() -> Command {
    let ok = Command::new("kubectl").arg("version").arg("--client").output();
    assert!(
        matches!(&ok, Ok(o) if o.status.success()),
        "kubectl is missing, so no manifest can be decoded by kubectl: install it \
         (tests/run installs Debian's kubernetes-client when no kubectl is on PATH)"
    );
    let mut c = Command::new("kubectl");
    // An empty configuration: nothing here may reach for a cluster.
    c.env("KUBECONFIG", empty_kubeconfig());
    c
}

/// Written once per test process, before any kubectl reads it.
fn empty_kubeconfig() -> &'static Path {
    static PATH: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let p = std::env::temp_dir().join(format!("logtrain-deploy-kubeconfig-{}", std::process::id()));
        std::fs::write(
            &p,
            "apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n",
        )
        .unwrap();
        p
    })
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Renders the chart into `out` with Helm's engine; Err holds Helm's message.
fn render(out: &Path, plain: bool, set_json: &[&str], notes: bool) -> Result<(), String> {
    let mut cmd = Command::new(venv_bin("python"));
    cmd.arg(root().join("deployments/render.py")).arg("--out").arg(out);
    if plain {
        cmd.arg("--plain");
    }
    if notes {
        cmd.arg("--notes");
    }
    for s in set_json {
        cmd.arg("--set-json").arg(s);
    }
    let o = run(&mut cmd);
    if o.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", text(&o.stdout), text(&o.stderr)))
    }
}

fn rendered(set_json: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    render(dir.path(), false, set_json, false).unwrap_or_else(|e| panic!("render {set_json:?}: {e}"));
    dir
}

/// The YAML files of a folder, by file name.
fn yaml_files(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            out.insert(name, std::fs::read_to_string(&p).unwrap());
        }
    }
    out
}

/// Every object of a folder's YAML files, by `Kind/name`.
/// The documents of a YAML stream (empty ones skipped later), as JSON values.
fn yaml_docs(body: &str) -> Result<Vec<Value>, serde_saphyr::Error> {
    serde_saphyr::from_multiple::<Value>(body)
}

fn yaml_from_slice<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T, serde_saphyr::Error> {
    serde_saphyr::from_slice(b)
}

fn objects(dir: &Path) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (name, body) in yaml_files(dir) {
        for v in yaml_docs(&body).unwrap_or_else(|e| panic!("{name}: not YAML: {e}")) {
            if v.is_null() {
                continue;
            }
            let key = format!("{}/{}", s(&v["kind"]), s(&v["metadata"]["name"]));
            assert!(out.insert(key.clone(), v).is_none(), "{key} defined twice");
        }
    }
    out
}

/// The DaemonSet's file in deployments/kubernetes/ (last: kubectl applies in name order).
const PLAIN_DAEMONSET: &str = "05-daemonset.yaml";

fn plain_dir() -> PathBuf {
    root().join("deployments/kubernetes")
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn seq(v: &Value) -> &[Value] {
    v.as_array().map(|s| s.as_slice()).unwrap_or(&[])
}

fn strings(v: &Value) -> BTreeSet<&str> {
    seq(v).iter().map(s).collect()
}

fn get<'a>(objs: &'a BTreeMap<String, Value>, key: &str) -> &'a Value {
    objs.get(key)
        .unwrap_or_else(|| panic!("{key} missing; have {:?}", objs.keys().collect::<Vec<_>>()))
}

fn container<'a>(pod: &'a Value, list: &str, name: &str) -> &'a Value {
    seq(&pod[list])
        .iter()
        .find(|c| s(&c["name"]) == name)
        .unwrap_or_else(|| panic!("no {list} entry named {name}"))
}

fn env<'a>(c: &'a Value, name: &str) -> &'a Value {
    seq(&c["env"])
        .iter()
        .find(|e| s(&e["name"]) == name)
        .unwrap_or_else(|| panic!("no env var {name}"))
}

#[test]
fn committed_manifests_are_the_charts_default_render() {
    let dir = tempfile::tempdir().unwrap();
    render(dir.path(), true, &[], false).unwrap();
    let fresh = yaml_files(dir.path());
    let committed = yaml_files(&plain_dir());
    assert_eq!(
        fresh.keys().collect::<Vec<_>>(),
        committed.keys().collect::<Vec<_>>(),
        "deployments/kubernetes/ does not hold one file per rendered template: run deployments/render.sh"
    );
    for (name, body) in &fresh {
        assert!(
            body.starts_with("# Generated by deployments/render.sh from charts/logtrain/templates/"),
            "{name} lacks the generated-file header"
        );
        assert!(
            *body == committed[name],
            "deployments/kubernetes/{name} differs from the chart's default render: run deployments/render.sh \
             (never edit the plain manifests by hand)"
        );
    }
    assert_eq!(
        fresh.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "00-namespace.yaml",
            "01-serviceaccount.yaml",
            "02-clusterrole.yaml",
            "03-clusterrolebinding.yaml",
            "04-service.yaml",
            "05-daemonset.yaml"
        ],
        "kubectl applies a folder's files in name order: the numeric prefixes are that order"
    );
}

#[test]
fn bad_values_are_refused_with_the_reason() {
    let cases: &[(&str, &str)] = &[
        (r#"{"resources": "lots"}"#, "at '/resources': got string, want object"),
        (
            r#"{"inputs": {"syslogTcp": {"port": 70000}}}"#,
            "/inputs/syslogTcp/port",
        ),
        (r#"{"imageTag": "1.0"}"#, "additional properties 'imageTag' not allowed"),
        (r#"{"logFormat": "xml"}"#, "/logFormat"),
        (
            r#"{"service": {"internalTrafficPolicy": "Everywhere"}}"#,
            "/service/internalTrafficPolicy",
        ),
        (
            r#"{"shutdownTimeout": 40}"#,
            "shutdownTimeout (40 s) must be below terminationGracePeriodSeconds (35 s)",
        ),
        (
            r#"{"inputs": {"syslogTls": {"enabled": true}}}"#,
            "inputs.syslogTls.enabled needs inputs.syslogTls.secretName",
        ),
        (
            r#"{"datasources": {"postgres": {"enabled": true}}}"#,
            "datasources.postgres.enabled needs datasources.postgres.databaseUrlSecret.name",
        ),
        (
            r#"{"serviceMonitor": {"enabled": true}, "service": {"enabled": false}}"#,
            "serviceMonitor.enabled needs service.enabled",
        ),
        // The HTTP token comes from a Secret, never from a plain value.
        (
            r#"{"http": {"token": "s3cret"}}"#,
            "additional properties 'token' not allowed",
        ),
        (
            r#"{"extraEnv": [{"name": "HTTP_TOKEN", "value": "s3cret"}]}"#,
            "extraEnv: HTTP_TOKEN must come from a Secret, never a plain value: set http.tokenSecret.name",
        ),
        (
            r#"{"extraEnv": [{"name": "DATABASE_URL", "value": "postgres://u:p@db/x"}]}"#,
            "set datasources.postgres.databaseUrlSecret.name",
        ),
        (
            r#"{"inputs": {"kubernetes": {"startAt": "middle"}}}"#,
            "/inputs/kubernetes/startAt",
        ),
        (r#"{"inputs": {"syslog": {"maxFrame": 0}}}"#, "/inputs/syslog/maxFrame"),
        (r#"{"inputs": {"maxConnections": "many"}}"#, "/inputs/maxConnections"),
        (r#"{"http": {"maxBody": -1}}"#, "/http/maxBody"),
        (r#"{"inputs": {"memoryBytes": 0}}"#, "/inputs/memoryBytes"),
        (r#"{"drain": {"max": 0}}"#, "/drain/max"),
        (
            r#"{"security": {"hostnameScope": "cluster"}}"#,
            "/security/hostnameScope",
        ),
        (
            r#"{"security": {"annotationMaxDrains": "many"}}"#,
            "/security/annotationMaxDrains",
        ),
        (
            r#"{"security": {"denyNetworks": "10.0.0.0/8"}}"#,
            "/security/denyNetworks",
        ),
        (
            r#"{"security": {"denyNetworks": ["10.0.0.0/33"]}}"#,
            "/security/denyNetworks/0",
        ),
        (
            r#"{"security": {"denyNetworks": ["metadata.internal/32"]}}"#,
            "/security/denyNetworks/0",
        ),
        // A peer that names nothing, or mixes an ipBlock with selectors, is refused
        // here rather than by the API server at install time.
        (
            r#"{"networkPolicy": {"inputs": {"from": [{}]}}}"#,
            "/networkPolicy/inputs/from/0",
        ),
        (
            r#"{"networkPolicy": {"http": {"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}}}"#,
            "/networkPolicy/http/from/0",
        ),
        // ipBlock.cidr needs a prefix.
        (
            r#"{"networkPolicy": {"http": {"nodeCIDRs": ["10.0.0.1"]}}}"#,
            "/networkPolicy/http/nodeCIDRs/0",
        ),
        // An empty egress rule would allow everything the restriction is for.
        (
            r#"{"networkPolicy": {"egress": {"rules": [{}]}}}"#,
            "/networkPolicy/egress/rules/0",
        ),
        (
            r#"{"networkPolicy": {"enabled": true, "egress": {"restrict": true}}}"#,
            "networkPolicy.egress.restrict needs networkPolicy.egress.rules",
        ),
    ];
    for (values, reason) in cases {
        let dir = tempfile::tempdir().unwrap();
        let err = render(dir.path(), false, &[values], false).expect_err(values);
        assert!(err.contains(reason), "{values}: expected {reason:?} in {err:?}");
        assert!(
            yaml_files(dir.path()).is_empty(),
            "{values}: wrote manifests despite the error"
        );
    }
}

/// Runs kubernetes-validate in strict mode (unknown fields are errors) over `files`.
fn schema_check(files: &[PathBuf], version: &str) -> Output {
    run(Command::new(venv_bin("kubernetes-validate"))
        .args(["--strict", "-k", version])
        .args(files))
}

#[test]
fn manifests_match_the_kubernetes_schemas() {
    let full = rendered(&[EVERYTHING_ON]);
    let pod_monitor = rendered(&[EVERYTHING_ON, POD_MONITOR_ON]);
    let mut files: Vec<PathBuf> = yaml_files(&plain_dir()).keys().map(|n| plain_dir().join(n)).collect();
    let mut skipped = BTreeSet::new();
    for dir in [full.path(), pod_monitor.path()] {
        for name in yaml_files(dir).keys() {
            if CRD_TEMPLATES.contains(&name.as_str()) {
                skipped.insert(name.clone());
            } else {
                files.push(dir.join(name));
            }
        }
    }
    assert_eq!(skipped, CRD_TEMPLATES.map(String::from).into());
    for new in ["configmap.yaml", "grafana-dashboard.yaml", "test-readyz.yaml"] {
        assert!(
            files.contains(&full.path().join(new)),
            "{new} not rendered by EVERYTHING_ON"
        );
    }
    println!(
        "not schema-checked: the ServiceMonitor, PodMonitor and PrometheusRule (prometheus-operator CRDs, no \
         offline schema); their fields are asserted in opt_in_variants_keep_their_promises and \
         monitoring_opt_ins_keep_their_promises"
    );
    // The oldest Kubernetes the chart supports (kubeVersion) and the newest schemas shipped.
    for version in ["1.26.0", "1.37.0"] {
        let o = schema_check(&files, version);
        let out = format!("{}{}", text(&o.stdout), text(&o.stderr));
        assert!(
            o.status.success(),
            "Kubernetes {version} schemas refuse a manifest:\n{out}"
        );
        for f in &files {
            assert!(
                out.contains(&format!("{} passed", f.display())),
                "{} was not validated against {version}:\n{out}",
                f.display()
            );
        }
        assert!(!out.contains("WARN") && !out.contains("ERROR"), "{out}");
    }

    // The check has teeth: a misspelt field and a wrongly typed one are refused.
    let bad = tempfile::tempdir().unwrap();
    let ds = std::fs::read_to_string(plain_dir().join(PLAIN_DAEMONSET)).unwrap();
    for (name, from, to) in [
        (
            "misspelt.yaml",
            "terminationGracePeriodSeconds: 35",
            "terminationGracePeriodSecond: 35",
        ),
        (
            "typed.yaml",
            "terminationGracePeriodSeconds: 35",
            "terminationGracePeriodSeconds: \"35s\"",
        ),
    ] {
        assert!(ds.contains(from));
        let p = bad.path().join(name);
        std::fs::write(&p, ds.replace(from, to)).unwrap();
        let o = schema_check(&[p], "1.26.0");
        let out = format!("{}{}", text(&o.stdout), text(&o.stderr));
        assert!(!o.status.success(), "{name} passed the schema check:\n{out}");
        assert!(out.contains("terminationGracePeriodSecond"), "{out}");
    }
}

/// Removes the annotation `kubectl annotate` added, and the map if it became empty.
fn strip_annotation(mut v: Value, key: &str) -> Value {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        let now_empty = match meta.get_mut("annotations").and_then(Value::as_object_mut) {
            Some(a) => {
                a.remove(key);
                a.is_empty()
            }
            None => false,
        };
        if now_empty {
            meta.remove("annotations");
        }
    }
    v
}

#[test]
fn kubectl_decodes_every_manifest_as_written() {
    const MARK: &str = "logtrain.akkeris.io/decode-check";
    let full = rendered(&[EVERYTHING_ON]);
    let pod_monitor = rendered(&[EVERYTHING_ON, POD_MONITOR_ON]);
    let mut files: Vec<PathBuf> = yaml_files(&plain_dir()).keys().map(|n| plain_dir().join(n)).collect();
    files.extend(yaml_files(full.path()).keys().map(|n| full.path().join(n)));
    files.push(pod_monitor.path().join("podmonitor.yaml"));
    for f in &files {
        // kubectl reads YAML 1.1 (sigs.k8s.io/yaml): what it decodes must be what the file
        // says to a YAML 1.2 reader too (no `on`, `yes`, `0440` surprises).
        let o = run(kubectl()
            .args(["annotate", "--local", "-o", "yaml", "-f"])
            .arg(f)
            .arg(format!("{MARK}=yes")));
        assert!(
            o.status.success(),
            "kubectl cannot read {}: {}",
            f.display(),
            text(&o.stderr)
        );
        let seen: Value = yaml_from_slice(&o.stdout).unwrap();
        let body = std::fs::read_to_string(f).unwrap();
        let mine: Value = serde_saphyr::from_str(&body).unwrap();
        assert_eq!(
            strip_annotation(seen, MARK),
            mine,
            "kubectl reads {} differently",
            f.display()
        );

        // Typed decoding into kubectl's Go structs (not for CRDs, which it does not know).
        let kind = s(&mine["kind"]).to_string();
        if CRD_KINDS.contains(&kind.as_str()) {
            continue;
        }
        let o = run(kubectl()
            .args(["set", "env", "--local", "-o", "yaml", "-f"])
            .arg(f)
            .arg("LOGTRAIN_DECODE_CHECK=1"));
        let err = text(&o.stderr);
        assert!(!err.contains("unable to decode"), "{}: {err}", f.display());
        if kind == "DaemonSet" || kind == "Pod" {
            assert!(o.status.success(), "{}: {err}", f.display());
            let typed: Value = yaml_from_slice(&o.stdout).unwrap();
            let spec = if kind == "Pod" {
                &typed["spec"]
            } else {
                &typed["spec"]["template"]["spec"]
            };
            let c = &seq(&spec["containers"])[0];
            assert_eq!(s(&env(c, "LOGTRAIN_DECODE_CHECK")["value"]), "1");
        } else {
            assert!(
                err.contains("is not a pod or does not have a pod template"),
                "{}: expected kubectl to decode the {kind} and find no pod template, got: {err}",
                f.display()
            );
        }
    }

    // The typed check has teeth: a wrongly typed field is refused.
    let bad = tempfile::tempdir().unwrap();
    let p = bad.path().join("daemonset.yaml");
    let ds = std::fs::read_to_string(plain_dir().join(PLAIN_DAEMONSET)).unwrap();
    std::fs::write(
        &p,
        ds.replace(
            "terminationGracePeriodSeconds: 35",
            "terminationGracePeriodSeconds: \"35s\"",
        ),
    )
    .unwrap();
    let o = run(kubectl()
        .args(["set", "env", "--local", "-o", "yaml", "-f"])
        .arg(&p)
        .arg("X=1"));
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("terminationGracePeriodSeconds"),
        "{}",
        text(&o.stderr)
    );
}

#[test]
fn default_deployment_is_least_privilege() {
    let objs = objects(&plain_dir());

    // RBAC: read-only on exactly the routed kinds, plus creating Events.
    let role = get(&objs, "ClusterRole/logtrain");
    let mut granted: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for rule in seq(&role["rules"]) {
        assert!(rule["resourceNames"].is_null() && rule["nonResourceURLs"].is_null());
        for g in seq(&rule["apiGroups"]) {
            for r in seq(&rule["resources"]) {
                let verbs = granted.entry((s(g).into(), s(r).into())).or_default();
                verbs.extend(strings(&rule["verbs"]).into_iter().map(String::from));
            }
        }
    }
    let read: BTreeSet<String> = ["get", "list", "watch"].map(String::from).into();
    let mut want: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
    for (g, r) in [
        ("", "pods"),
        ("apps", "deployments"),
        ("apps", "statefulsets"),
        ("apps", "daemonsets"),
        ("apps", "replicasets"),
        ("batch", "jobs"),
        ("batch", "cronjobs"),
    ] {
        want.insert((g.into(), r.into()), read.clone());
    }
    want.insert(("".into(), "events".into()), ["create"].map(String::from).into());
    assert_eq!(granted, want);
    for ((_, r), verbs) in &granted {
        assert!(
            !verbs.contains("*") && (r == "events" || verbs.is_subset(&read)),
            "{r}: {verbs:?}"
        );
    }
    let binding = get(&objs, "ClusterRoleBinding/logtrain");
    assert_eq!(s(&binding["roleRef"]["name"]), "logtrain");
    assert_eq!(s(&binding["subjects"][0]["name"]), "logtrain");
    assert_eq!(s(&binding["subjects"][0]["namespace"]), "logtrain");
    assert_eq!(
        s(&get(&objs, "ServiceAccount/logtrain")["metadata"]["namespace"]),
        "logtrain"
    );
    assert!(objs.contains_key("Namespace/logtrain"));

    // The DaemonSet.
    let ds = get(&objs, "DaemonSet/logtrain");
    assert_eq!(s(&ds["metadata"]["namespace"]), "logtrain");
    assert_eq!(s(&ds["spec"]["updateStrategy"]["type"]), "RollingUpdate");
    assert_eq!(
        ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
        Value::from(1)
    );
    let tpl = &ds["spec"]["template"];
    assert_eq!(
        tpl["metadata"]["labels"], ds["spec"]["selector"]["matchLabels"],
        "the selector must match the pod labels"
    );
    let ann = &tpl["metadata"]["annotations"];
    assert_eq!(s(&ann["prometheus.io/scrape"]), "true");
    assert_eq!(s(&ann["prometheus.io/port"]), "9000");
    assert_eq!(s(&ann["prometheus.io/path"]), "/metrics");
    let pod = &tpl["spec"];
    assert_eq!(s(&pod["serviceAccountName"]), "logtrain");
    let grace = pod["terminationGracePeriodSeconds"].as_i64().unwrap();
    let c = container(pod, "containers", "logtrain");
    let shutdown: i64 = s(&env(c, "SHUTDOWN_TIMEOUT")["value"]).parse().unwrap();
    assert_eq!((shutdown, grace), (25, 35));
    assert!(grace > 25 && grace > shutdown);
    assert_eq!(
        seq(&pod["tolerations"]),
        [serde_saphyr::from_str::<Value>("operator: Exists").unwrap()]
    );
    assert!(pod["hostNetwork"].is_null() && pod["hostPID"].is_null() && pod["hostIPC"].is_null());

    let psc = &pod["securityContext"];
    assert_eq!(psc["runAsNonRoot"], Value::Bool(true));
    assert_eq!(psc["runAsUser"], Value::from(65532));
    assert_eq!(psc["runAsGroup"], Value::from(65532));
    assert_eq!(s(&psc["seccompProfile"]["type"]), "RuntimeDefault");

    // The main container: not privileged, nothing to escalate to, nothing to write
    // but its checkpoints.
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], Value::Bool(false));
    assert_eq!(sc["allowPrivilegeEscalation"], Value::Bool(false));
    assert_eq!(sc["readOnlyRootFilesystem"], Value::Bool(true));
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"].into());
    assert!(sc["capabilities"]["add"].is_null());
    assert!(
        sc["runAsUser"].is_null() && sc["runAsNonRoot"].is_null(),
        "the pod's identity applies"
    );
    assert_eq!(
        s(&env(c, "NODE_NAME")["valueFrom"]["fieldRef"]["fieldPath"]),
        "spec.nodeName"
    );
    assert_eq!(
        s(&env(c, "CHECKPOINT_PATH")["value"]),
        "/var/lib/logtrain/checkpoints.json"
    );
    for (probe, path) in [
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
        ("startupProbe", "/healthz"),
    ] {
        assert_eq!(s(&c[probe]["httpGet"]["path"]), path, "{probe}");
        assert_eq!(s(&c[probe]["httpGet"]["port"]), "http", "{probe}");
    }
    assert_eq!(s(&c["resources"]["requests"]["cpu"]), "50m");
    assert_eq!(s(&c["resources"]["requests"]["memory"]), "64Mi");
    assert_eq!(s(&c["resources"]["limits"]["cpu"]), "500m");
    assert_eq!(s(&c["resources"]["limits"]["memory"]), "256Mi");

    // Host paths: the logs read-only, only the checkpoint folder writable.
    let volumes: BTreeMap<&str, &Value> = seq(&pod["volumes"]).iter().map(|v| (s(&v["name"]), v)).collect();
    let mut host: BTreeMap<&str, (bool, &str)> = BTreeMap::new();
    for cont in seq(&pod["containers"]).iter().chain(seq(&pod["initContainers"])) {
        for m in seq(&cont["volumeMounts"]) {
            let v = volumes[s(&m["name"])];
            if v["hostPath"].is_null() {
                continue;
            }
            let path = s(&v["hostPath"]["path"]);
            assert_eq!(
                s(&m["mountPath"]),
                path,
                "host paths are mounted where they are on the node"
            );
            let ro = m["readOnly"] == Value::Bool(true);
            if s(&cont["name"]) == "logtrain" {
                host.insert(path, (ro, s(&v["hostPath"]["type"])));
            } else {
                assert_eq!(
                    path, "/var/lib/logtrain",
                    "init containers touch only the checkpoint folder"
                );
            }
        }
    }
    assert_eq!(
        host,
        [
            ("/var/log/pods", (true, "Directory")),
            ("/var/log/containers", (true, "Directory")),
            ("/var/lib/docker/containers", (true, "")),
            ("/var/lib/logtrain", (false, "DirectoryOrCreate")),
        ]
        .into()
    );

    // The one init container by default: root for a chown, with only CHOWN.
    let inits = seq(&pod["initContainers"]);
    assert_eq!(inits.len(), 1);
    let owner = container(pod, "initContainers", "checkpoint-owner");
    let osc = &owner["securityContext"];
    assert_eq!(osc["privileged"], Value::Bool(false));
    assert_eq!(osc["allowPrivilegeEscalation"], Value::Bool(false));
    assert_eq!(osc["readOnlyRootFilesystem"], Value::Bool(true));
    assert_eq!(strings(&osc["capabilities"]["drop"]), ["ALL"].into());
    assert_eq!(strings(&osc["capabilities"]["add"]), ["CHOWN"].into());
    assert!(s(&seq(&owner["command"])[2]).contains("chown 65532:65532 /var/lib/logtrain"));
    // The inotify init container is offered commented out, explained.
    let ds_text = std::fs::read_to_string(plain_dir().join(PLAIN_DAEMONSET)).unwrap();
    assert!(ds_text.contains("#   - name: raise-inotify-limits"));
    assert!(ds_text.contains("fs.inotify.max_user_watches=524288"));

    // The Service: the listeners of the client's own node, inside the cluster.
    let svc = get(&objs, "Service/logtrain");
    assert_eq!(s(&svc["spec"]["internalTrafficPolicy"]), "Local");
    assert_eq!(s(&svc["spec"]["type"]), "ClusterIP");
    assert_eq!(svc["spec"]["selector"], ds["spec"]["selector"]["matchLabels"]);
    let ports: BTreeSet<(String, i64, String)> = seq(&svc["spec"]["ports"])
        .iter()
        .map(|p| {
            (
                s(&p["name"]).into(),
                p["port"].as_i64().unwrap(),
                s(&p["protocol"]).into(),
            )
        })
        .collect();
    let want: BTreeSet<(String, i64, String)> = [
        ("http", 9000, "TCP"),
        ("envoy", 9001, "TCP"),
        ("syslog-tcp", 9002, "TCP"),
        ("syslog-udp", 9003, "UDP"),
    ]
    .map(|(n, p, t)| (n.to_string(), p, t.to_string()))
    .into();
    assert_eq!(ports, want);
    let container_ports: BTreeSet<(String, i64, String)> = seq(&c["ports"])
        .iter()
        .map(|p| {
            (
                s(&p["name"]).into(),
                p["containerPort"].as_i64().unwrap(),
                s(&p["protocol"]).into(),
            )
        })
        .collect();
    assert_eq!(container_ports, want, "every Service port has its container port");
}

#[test]
fn the_daemonsets_environment_is_a_valid_logtrain_configuration() {
    let objs = objects(&plain_dir());
    let pod = &get(&objs, "DaemonSet/logtrain")["spec"]["template"]["spec"];
    let c = container(pod, "containers", "logtrain");
    let read = config_env_vars();
    let mut vars: HashMap<String, String> = HashMap::new();
    for e in seq(&c["env"]) {
        let name = s(&e["name"]);
        assert!(
            read.contains_key(name),
            "{name} is set by the chart but is no variable of logtrain::config::SETTINGS"
        );
        let value = if name == "NODE_NAME" { "node-a" } else { s(&e["value"]) };
        assert!(vars.insert(name.into(), value.into()).is_none(), "{name} set twice");
    }
    let cfg = logtrain::config::Config::load(None, &vars).unwrap_or_else(|errs| {
        panic!(
            "logtrain refuses the chart's environment: {:?}",
            errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()
        )
    });
    assert!(
        logtrain::check::problems(&cfg).is_empty(),
        "{:?}",
        logtrain::check::problems(&cfg)
    );
    let d = logtrain::config::Config::default();
    // The chart's defaults are logtrain's own, except for what a DaemonSet turns on.
    assert_eq!(
        (
            cfg.http_port,
            cfg.envoy_port,
            cfg.syslog_tcp_port,
            cfg.syslog_udp_port,
            cfg.syslog_tls_port
        ),
        (
            d.http_port,
            d.envoy_port,
            d.syslog_tcp_port,
            d.syslog_udp_port,
            d.syslog_tls_port
        )
    );
    assert_eq!(cfg.checkpoint_path, d.checkpoint_path);
    assert_eq!(cfg.kubernetes_log_path, d.kubernetes_log_path);
    assert_eq!(cfg.shutdown_timeout, d.shutdown_timeout);
    assert_eq!(
        (
            cfg.drain_queue_records,
            cfg.drain_queue_bytes,
            cfg.drain_max_connections
        ),
        (d.drain_queue_records, d.drain_queue_bytes, d.drain_max_connections)
    );
    assert_eq!(
        (cfg.http_events_path.as_str(), cfg.http_syslog_path.as_str()),
        ("/events", "/syslog")
    );
    assert!(cfg.kubernetes && cfg.kubernetes_datasource && cfg.envoy && cfg.syslog_tcp && cfg.syslog_udp);
    assert!(cfg.http_events && cfg.http_syslog && !cfg.syslog_tls && !cfg.postgres);
    assert_eq!(cfg.node_name.as_deref(), Some("node-a"));
    assert_eq!(cfg.log_format, logtrain::config::LogFormat::Json);
    assert!(cfg.exclude_namespaces.is_empty());
    // The security model is logtrain's own: annotations claim only their namespace's
    // hostnames (said in the manifest, where an operator reads it), and tenants'
    // drains keep off the default networks within the default limits.
    assert_eq!(s(&env(c, "ROUTE_HOSTNAME_SCOPE")["value"]), "namespace");
    assert_eq!(cfg.route_hostname_scope, logtrain::config::HostnameScope::Namespace);
    assert_eq!(cfg.drain_deny_networks, d.drain_deny_networks);
    assert!(!cfg.drain_deny_networks.is_empty());
    assert_eq!(
        (cfg.annotation_max_drains, cfg.drain_max, cfg.input_memory_bytes),
        (d.annotation_max_drains, d.drain_max, d.input_memory_bytes)
    );
}

#[test]
fn opt_in_variants_keep_their_promises() {
    let full = rendered(&[EVERYTHING_ON]);
    let objs = objects(full.path());
    assert!(
        !objs.contains_key("Namespace/logtrain"),
        "Helm installs leave the namespace to --create-namespace"
    );
    let pod = &get(&objs, "DaemonSet/logtrain")["spec"]["template"]["spec"];
    assert_eq!(s(&pod["priorityClassName"]), "system-node-critical");

    // Tailers get the pod list and the pod proxy in logtrain's namespace, nothing more;
    // without rbac.tailers there is no Role at all.
    let role = get(&objs, "Role/logtrain-tailers");
    let rules: Vec<(BTreeSet<&str>, BTreeSet<&str>)> = seq(&role["rules"])
        .iter()
        .map(|r| (strings(&r["resources"]), strings(&r["verbs"])))
        .collect();
    assert_eq!(
        rules,
        [
            (["pods"].into(), ["get", "list"].into()),
            (["pods/proxy"].into(), ["get"].into())
        ]
    );
    let binding = get(&objs, "RoleBinding/logtrain-tailers");
    assert_eq!(s(&binding["roleRef"]["name"]), "logtrain-tailers");
    assert_eq!(s(&binding["subjects"][0]["name"]), "sre");
    assert!(
        !objects(&plain_dir())
            .keys()
            .any(|k| k.starts_with("Role/") || k.starts_with("RoleBinding/")),
        "the default install grants no one the pod proxy"
    );
    assert_eq!(
        get(&objs, "DaemonSet/logtrain")["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"],
        Value::from("10%")
    );

    // Reading logs as root keeps only DAC_READ_SEARCH and stays unprivileged.
    assert_eq!(pod["securityContext"]["runAsUser"], Value::from(0));
    assert_eq!(pod["securityContext"]["runAsNonRoot"], Value::Bool(false));
    let c = container(pod, "containers", "logtrain");
    let sc = &c["securityContext"];
    assert_eq!(sc["privileged"], Value::Bool(false));
    assert_eq!(sc["allowPrivilegeEscalation"], Value::Bool(false));
    assert_eq!(sc["readOnlyRootFilesystem"], Value::Bool(true));
    assert_eq!(strings(&sc["capabilities"]["drop"]), ["ALL"].into());
    assert_eq!(strings(&sc["capabilities"]["add"]), ["DAC_READ_SEARCH"].into());

    // The only privileged container is the opt-in sysctl one; no chown is needed as root.
    let privileged: Vec<&str> = seq(&pod["containers"])
        .iter()
        .chain(seq(&pod["initContainers"]))
        .filter(|c| c["securityContext"]["privileged"] == Value::Bool(true))
        .map(|c| s(&c["name"]))
        .collect();
    assert_eq!(privileged, ["raise-inotify-limits"]);
    assert_eq!(seq(&pod["initContainers"]).len(), 1);
    let sysctl = container(pod, "initContainers", "raise-inotify-limits");
    assert_eq!(
        strings(&sysctl["command"]),
        [
            "sysctl",
            "-w",
            "fs.inotify.max_user_instances=8192",
            "fs.inotify.max_user_watches=524288"
        ]
        .into()
    );

    // TLS from a Secret, mounted read-only; the database URL from a Secret, never inline.
    assert_eq!(s(&env(c, "SYSLOG_TLS")["value"]), "true");
    assert_eq!(s(&env(c, "SYSLOG_TLS_CERT_PEM")["value"]), "/etc/logtrain/tls/tls.crt");
    assert_eq!(s(&env(c, "SYSLOG_TLS_KEY_PEM")["value"]), "/etc/logtrain/tls/tls.key");
    assert_eq!(s(&env(c, "SYSLOG_TLS_CA_PEM")["value"]), "/etc/logtrain/tls/ca.crt");
    assert_eq!(s(&env(c, "SYSLOG_TLS_SERVER_NAME")["value"]), "logs.example.com");
    let tls_mount = seq(&c["volumeMounts"])
        .iter()
        .find(|m| s(&m["name"]) == "syslog-tls")
        .unwrap();
    assert_eq!(tls_mount["readOnly"], Value::Bool(true));
    let tls_vol = seq(&pod["volumes"])
        .iter()
        .find(|v| s(&v["name"]) == "syslog-tls")
        .unwrap();
    assert_eq!(s(&tls_vol["secret"]["secretName"]), "logtrain-tls");
    assert_eq!(tls_vol["secret"]["defaultMode"], Value::from(0o440));
    let db = &env(c, "DATABASE_URL");
    assert!(db["value"].is_null());
    assert_eq!(s(&db["valueFrom"]["secretKeyRef"]["name"]), "logtrain-db");
    assert_eq!(s(&db["valueFrom"]["secretKeyRef"]["key"]), "DATABASE_URL");
    assert_eq!(s(&env(c, "POSTGRES")["value"]), "true");
    assert_eq!(s(&env(c, "EXCLUDE_NAMESPACES")["value"]), "kube-system,istio-system");
    assert_eq!(s(&env(c, "RUST_BACKTRACE")["value"]), "1");

    let svc = get(&objs, "Service/logtrain");
    let names: BTreeSet<&str> = seq(&svc["spec"]["ports"]).iter().map(|p| s(&p["name"])).collect();
    assert_eq!(
        names,
        ["http", "envoy", "syslog-tcp", "syslog-udp", "syslog-tls"].into()
    );

    // The ServiceMonitor (no offline schema): selects the Service, scrapes its http port.
    let sm = get(&objs, "ServiceMonitor/logtrain");
    assert_eq!(s(&sm["apiVersion"]), "monitoring.coreos.com/v1");
    assert_eq!(s(&sm["metadata"]["labels"]["release"]), "prometheus");
    assert_eq!(sm["spec"]["selector"]["matchLabels"], svc["spec"]["selector"]);
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_object().unwrap() {
        assert_eq!(&svc["metadata"]["labels"][k.as_str()], v, "the Service carries {k:?}");
    }
    assert_eq!(
        strings(&sm["spec"]["namespaceSelector"]["matchNames"]),
        ["logtrain"].into()
    );
    let ep = &seq(&sm["spec"]["endpoints"])[0];
    assert_eq!(
        (s(&ep["port"]), s(&ep["path"]), s(&ep["interval"])),
        ("http", "/metrics", "30s")
    );
}

/// The alerts of the PrometheusRule: (alert, expr) in order.
fn alerts(rule: &Value) -> Vec<(String, String)> {
    seq(&rule["spec"]["groups"])
        .iter()
        .flat_map(|g| seq(&g["rules"]))
        .map(|r| (s(&r["alert"]).to_string(), s(&r["expr"]).to_string()))
        .collect()
}

/// The `logtrain_*` metrics of each alert's expression that `telemetry::CATALOG` lacks.
fn uncatalogued(alerts: &[(String, String)]) -> Vec<String> {
    let catalog: BTreeSet<&str> = logtrain::telemetry::CATALOG.iter().map(|(n, _, _)| *n).collect();
    alerts
        .iter()
        .flat_map(|(alert, expr)| {
            metric_names(expr)
                .into_iter()
                .filter(|n| !catalog.contains(n.as_str()))
                .map(move |n| format!("{alert}: {n}"))
        })
        .collect()
}

#[test]
fn every_alert_names_only_metrics_of_the_catalog() {
    let objs = objects(rendered(&[EVERYTHING_ON]).path());
    let rule = get(&objs, "PrometheusRule/logtrain");
    assert_eq!(s(&rule["apiVersion"]), "monitoring.coreos.com/v1");
    assert_eq!(s(&rule["metadata"]["labels"]["release"]), "prometheus");
    let alerts = alerts(rule);
    let names: Vec<&str> = alerts.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        names,
        [
            "LogtrainDrainDropping",
            "LogtrainInputDropping",
            "LogtrainDrainFailing",
            "LogtrainCheckpointErrors",
            "LogtrainPodsNotReady",
            "LogtrainMemoryNearLimit",
            "LogtrainTailLagging"
        ]
    );
    assert!(uncatalogued(&alerts).is_empty(), "{:?}", uncatalogued(&alerts));
    let used: BTreeSet<String> = alerts.iter().flat_map(|(_, e)| metric_names(e)).collect();
    for m in [
        "logtrain_drain_dropped_total",
        "logtrain_input_dropped_total",
        "logtrain_drain_errors_total",
        "logtrain_drain_sent_total",
        "logtrain_checkpoint_errors_total",
        "logtrain_tail_lag_seconds",
    ] {
        assert!(used.contains(m), "no alert on {m}");
    }
    // The failing drain: errors rising while nothing is sent.
    let failing = &alerts[2].1;
    assert!(
        failing.contains("logtrain_drain_errors_total") && failing.contains("unless"),
        "{failing}"
    );
    // Pods and memory, from kube-state-metrics and cAdvisor, scoped to this DaemonSet.
    assert!(alerts[4].1.contains(r#"daemonset="logtrain""#), "{}", alerts[4].1);
    let memory = &alerts[5].1;
    for part in [
        "container_memory_working_set_bytes",
        "kube_pod_container_resource_limits",
        "> 0.9",
    ] {
        assert!(memory.contains(part), "{memory}");
    }
    for r in seq(&rule["spec"]["groups"][0]["rules"]) {
        assert_eq!(s(&r["labels"]["severity"]), "warning", "{r:?}");
        assert_eq!(s(&r["labels"]["team"]), "platform", "{r:?}");
        assert!(
            !s(&r["for"]).is_empty() && !s(&r["annotations"]["summary"]).is_empty(),
            "{r:?}"
        );
        assert!(
            s(&r["annotations"]["summary"]).contains("{{"),
            "Prometheus templates survive Helm: {r:?}"
        );
    }
    // The check has teeth: a misspelt metric is named.
    let bad = [("X".to_string(), "rate(logtrain_drain_droped_total[5m]) > 0".to_string())];
    assert_eq!(uncatalogued(&bad), ["X: logtrain_drain_droped_total"]);
}

#[test]
fn monitoring_config_and_pod_opt_ins_keep_their_promises() {
    let full = rendered(&[EVERYTHING_ON]);
    let objs = objects(full.path());
    let ds = get(&objs, "DaemonSet/logtrain");
    let pod = &ds["spec"]["template"]["spec"];
    let c = container(pod, "containers", "logtrain");

    // The image by digest; the pod labels; envFrom; the extra volume and its mount.
    assert_eq!(
        s(&c["image"]),
        "logtrain@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    );
    assert_eq!(s(&ds["spec"]["template"]["metadata"]["labels"]["team"]), "platform");
    assert_eq!(s(&c["envFrom"][0]["secretRef"]["name"]), "logtrain-env");
    let volume = |name: &str| seq(&pod["volumes"]).iter().find(|v| s(&v["name"]) == name).cloned();
    let mount = |name: &str| seq(&c["volumeMounts"]).iter().find(|m| s(&m["name"]) == name).cloned();
    assert_eq!(s(&volume("drain-ca").unwrap()["configMap"]["name"]), "drain-ca");
    assert_eq!(s(&mount("drain-ca").unwrap()["mountPath"]), "/etc/drain-ca");

    // The configuration file: a ConfigMap logtrain reads as a configuration (static
    // routes included), mounted read-only, passed with --config, its checksum on the pod.
    let cm = get(&objs, "ConfigMap/logtrain-config");
    let file = s(&cm["data"]["config.yaml"]);
    let cfg = logtrain::config::Config::from_yaml(file).unwrap_or_else(|e| panic!("{e}: {file}"));
    assert_eq!(cfg.routes.len(), 1);
    assert!(
        logtrain::check::problems(&cfg).is_empty(),
        "{:?}",
        logtrain::check::problems(&cfg)
    );
    assert_eq!(s(&volume("config").unwrap()["configMap"]["name"]), "logtrain-config");
    let m = mount("config").unwrap();
    assert_eq!(m["readOnly"], Value::Bool(true));
    assert_eq!(
        strings(&c["args"]),
        ["--config", &format!("{}/config.yaml", s(&m["mountPath"]))].into()
    );
    let checksum = s(&ds["spec"]["template"]["metadata"]["annotations"]["checksum/config"]).to_string();
    assert_eq!(checksum.len(), 64);
    let other = objects(
        rendered(&[r#"{"config": {"routes": [{"hostname": "api.default", "drains": ["stdout://"]}]}}"#]).path(),
    );
    assert_ne!(
        s(&get(&other, "DaemonSet/logtrain")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]),
        checksum,
        "a new configuration rolls the pods"
    );
    // An existing ConfigMap instead: none rendered, that one mounted, its key read.
    let objs_existing =
        objects(rendered(&[r#"{"existingConfigMap": "mine", "existingConfigMapKey": "logtrain.yaml"}"#]).path());
    assert!(!objs_existing.keys().any(|k| k.starts_with("ConfigMap/")));
    let pod2 = &get(&objs_existing, "DaemonSet/logtrain")["spec"]["template"]["spec"];
    let c2 = container(pod2, "containers", "logtrain");
    assert_eq!(
        strings(&c2["args"]),
        ["--config", "/etc/logtrain/config/logtrain.yaml"].into()
    );
    assert!(
        seq(&pod2["volumes"])
            .iter()
            .any(|v| s(&v["configMap"]["name"]) == "mine")
    );
    // No configuration: no args, no volume (the plain manifests).
    let plain = objects(&plain_dir());
    let plain_c = container(
        &get(&plain, "DaemonSet/logtrain")["spec"]["template"]["spec"],
        "containers",
        "logtrain",
    );
    assert!(plain_c["args"].is_null() && plain_c["envFrom"].is_null());

    // The dashboard for the Grafana sidecar: its label, and the dashboard file as is.
    let dash = get(&objs, "ConfigMap/logtrain-dashboard");
    assert_eq!(s(&dash["metadata"]["labels"]["grafana_dashboard"]), "1");
    assert_eq!(s(&dash["metadata"]["annotations"]["grafana_folder"]), "Logging");
    let shipped: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deployments/grafana/logtrain-dashboard.json")).unwrap(),
    )
    .unwrap();
    let in_map: serde_json::Value = serde_json::from_str(s(&dash["data"]["logtrain.json"])).unwrap();
    assert_eq!(in_map, shipped);
    let relabelled = objects(
        rendered(&[
            r#"{"grafanaDashboard": {"enabled": true, "labels": {"dashboards": "logs"}, "namespace": "monitoring"}}"#,
        ])
        .path(),
    );
    let d2 = get(&relabelled, "ConfigMap/logtrain-dashboard");
    assert_eq!(s(&d2["metadata"]["namespace"]), "monitoring");
    assert_eq!(s(&d2["metadata"]["labels"]["dashboards"]), "logs");

    // `helm test`: a hook pod waiting for /readyz through the Service, least privilege.
    let t = get(&objs, "Pod/logtrain-test-readyz");
    assert_eq!(s(&t["metadata"]["annotations"]["helm.sh/hook"]), "test");
    let tc = &seq(&t["spec"]["containers"])[0];
    let script = seq(&tc["command"]).iter().map(s).collect::<Vec<_>>().join(" ");
    assert!(script.contains("http://logtrain.logtrain.svc:9000/readyz"), "{script}");
    assert_eq!(tc["securityContext"]["allowPrivilegeEscalation"], Value::Bool(false));
    assert_eq!(strings(&tc["securityContext"]["capabilities"]["drop"]), ["ALL"].into());
    assert_eq!(t["spec"]["securityContext"]["runAsNonRoot"], Value::Bool(true));
    assert!(
        !yaml_files(&plain_dir()).values().any(|b| b.contains("helm.sh/hook")),
        "kubectl apply would create the test pod"
    );

    // The PodMonitor, instead of the ServiceMonitor: this release's pods, their http port.
    let pm_objs = objects(rendered(&[EVERYTHING_ON, POD_MONITOR_ON]).path());
    assert!(!pm_objs.contains_key("ServiceMonitor/logtrain"));
    let pm = get(&pm_objs, "PodMonitor/logtrain");
    assert_eq!(s(&pm["apiVersion"]), "monitoring.coreos.com/v1");
    assert_eq!(s(&pm["metadata"]["labels"]["release"]), "prometheus");
    assert_eq!(
        pm["spec"]["selector"]["matchLabels"],
        ds["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(
        strings(&pm["spec"]["namespaceSelector"]["matchNames"]),
        ["logtrain"].into()
    );
    let ep = &seq(&pm["spec"]["podMetricsEndpoints"])[0];
    assert_eq!(
        (s(&ep["port"]), s(&ep["path"]), s(&ep["interval"])),
        ("http", "/metrics", "15s")
    );
    let relabel: Vec<&str> = seq(&ep["relabelings"]).iter().map(|r| s(&r["targetLabel"])).collect();
    assert_eq!(relabel, ["node", ""]);
    assert_eq!(s(&ep["relabelings"][1]["action"]), "labeldrop");
    assert_eq!(s(&ep["metricRelabelings"][0]["action"]), "drop");
    let sm = get(&objs, "ServiceMonitor/logtrain");
    assert_eq!(s(&sm["spec"]["endpoints"][0]["relabelings"][1]["action"]), "labeldrop");
    let both = tempfile::tempdir().unwrap();
    let e = render(
        both.path(),
        false,
        &[r#"{"serviceMonitor": {"enabled": true}, "podMonitor": {"enabled": true}}"#],
        false,
    )
    .unwrap_err();
    assert!(e.contains("choose one"), "{e}");

    // The container securityContext override replaces the chart's; OnDelete updates.
    let objs3 = objects(
        rendered(&[r#"{"securityContext": {"runAsUser": 1000, "readOnlyRootFilesystem": true, "allowPrivilegeEscalation": false},
                     "updateStrategy": {"type": "OnDelete"}}"#])
        .path(),
    );
    let ds3 = get(&objs3, "DaemonSet/logtrain");
    let c3 = container(&ds3["spec"]["template"]["spec"], "containers", "logtrain");
    assert_eq!(c3["securityContext"]["runAsUser"], Value::from(1000));
    assert!(c3["securityContext"]["capabilities"].is_null());
    assert_eq!(s(&ds3["spec"]["updateStrategy"]["type"]), "OnDelete");
    assert!(ds3["spec"]["updateStrategy"]["rollingUpdate"].is_null());
}

/// (port, protocol) of each entry of a NetworkPolicy rule's `ports`.
fn policy_ports(rule: &Value) -> BTreeSet<(i64, String)> {
    seq(&rule["ports"])
        .iter()
        .map(|p| (p["port"].as_i64().unwrap(), s(&p["protocol"]).to_string()))
        .collect()
}

#[test]
fn the_network_policy_admits_only_the_peers_it_names() {
    // An opt-in: the plain manifests hold none.
    assert!(!objects(&plain_dir()).keys().any(|k| k.starts_with("NetworkPolicy/")));

    // EVERYTHING_ON: node addresses for the HTTP port, egress restricted.
    let full = rendered(&[EVERYTHING_ON]);
    let objs = objects(full.path());
    let np = get(&objs, "NetworkPolicy/logtrain");
    let ds = get(&objs, "DaemonSet/logtrain");
    assert_eq!(s(&np["metadata"]["namespace"]), "logtrain");
    assert_eq!(
        np["spec"]["podSelector"]["matchLabels"],
        ds["spec"]["selector"]["matchLabels"]
    );
    assert_eq!(strings(&np["spec"]["policyTypes"]), ["Ingress", "Egress"].into());
    let ingress = seq(&np["spec"]["ingress"]);
    assert_eq!(ingress.len(), 2, "{ingress:?}");
    for rule in ingress {
        assert!(
            !seq(&rule["from"]).is_empty(),
            "a rule without peers admits every source: {rule:?}"
        );
    }
    // The HTTP port: the nodes' addresses and Prometheus' namespace.
    let tcp = |port: i64| (port, "TCP".to_string());
    assert_eq!(policy_ports(&ingress[0]), [tcp(9000)].into());
    let peers = seq(&ingress[0]["from"]);
    let cidrs: Vec<&str> = peers
        .iter()
        .map(|p| s(&p["ipBlock"]["cidr"]))
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(cidrs, ["10.0.0.0/16", "fd00:10::/64"]);
    assert!(
        peers
            .iter()
            .any(|p| s(&p["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]) == "monitoring"),
        "{peers:?}"
    );
    // The push listeners: exactly the container's other ports, from every pod.
    let c = container(&ds["spec"]["template"]["spec"], "containers", "logtrain");
    let listeners: BTreeSet<(i64, String)> = seq(&c["ports"])
        .iter()
        .filter(|p| s(&p["name"]) != "http")
        .map(|p| (p["containerPort"].as_i64().unwrap(), s(&p["protocol"]).to_string()))
        .collect();
    assert_eq!(listeners.len(), 4, "{listeners:?}");
    assert_eq!(policy_ports(&ingress[1]), listeners);
    assert_eq!(
        seq(&ingress[1]["from"]),
        [serde_saphyr::from_str::<Value>("namespaceSelector: {}").unwrap()]
    );
    // Egress: DNS, then the rules as given.
    let egress = seq(&np["spec"]["egress"]);
    assert_eq!(egress.len(), 3, "{egress:?}");
    assert_eq!(policy_ports(&egress[0]), [tcp(53), (53, "UDP".to_string())].into());
    assert_eq!(
        s(&egress[0]["to"][0]["podSelector"]["matchLabels"]["k8s-app"]),
        "kube-dns"
    );
    assert_eq!(s(&egress[1]["to"][0]["ipBlock"]["cidr"]), "10.0.0.10/32");
    assert_eq!(policy_ports(&egress[1]), [tcp(6443)].into());

    // Turned on alone: egress stays open (drains are wherever their URLs point), and
    // the HTTP port admits Prometheus (the kubelet is the pod's own node).
    let objs = objects(rendered(&[r#"{"networkPolicy": {"enabled": true}}"#]).path());
    let np = get(&objs, "NetworkPolicy/logtrain");
    assert_eq!(strings(&np["spec"]["policyTypes"]), ["Ingress"].into());
    assert!(np["spec"]["egress"].is_null());
    let ingress = seq(&np["spec"]["ingress"]);
    assert_eq!(ingress.len(), 2);
    // Prometheus' namespace, and the `helm test` pod of this release (by its labels).
    let http_peers = seq(&ingress[0]["from"]);
    assert_eq!(http_peers.len(), 2, "{http_peers:?}");
    let test_pod = get(&objs, "Pod/logtrain-test-readyz");
    assert_eq!(
        http_peers[1],
        serde_saphyr::from_str::<Value>(&format!(
            "podSelector: {{matchLabels: {}}}",
            serde_json::to_string(&test_pod["metadata"]["labels"]).unwrap()
        ))
        .unwrap()
    );
    assert!(
        http_peers[1]["namespaceSelector"].is_null(),
        "only pods of logtrain's namespace"
    );

    // With the push listeners off, no rule for them, whatever the peers.
    let off = r#"{"networkPolicy": {"enabled": true},
        "inputs": {"envoy": {"enabled": false}, "syslogTcp": {"enabled": false}, "syslogUdp": {"enabled": false}}}"#;
    let objs = objects(rendered(&[off]).path());
    let ingress = seq(&get(&objs, "NetworkPolicy/logtrain")["spec"]["ingress"]);
    assert_eq!(ingress.len(), 1);
    assert_eq!(policy_ports(&ingress[0]), [tcp(9000)].into());

    // No peers anywhere: no rule at all (an empty one would admit everyone), so
    // nothing may connect; the result is still a valid NetworkPolicy.
    let nobody = rendered(&[
        r#"{"networkPolicy": {"enabled": true, "http": {"from": []}, "inputs": {"from": []}}, "helmTest": {"enabled": false}}"#,
    ]);
    let objs = objects(nobody.path());
    assert_eq!(
        get(&objs, "NetworkPolicy/logtrain")["spec"]["ingress"],
        Value::Array(Vec::new())
    );
    let o = schema_check(&[nobody.path().join("networkpolicy.yaml")], "1.26.0");
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
}

#[test]
fn notes_tell_how_to_add_a_drain() {
    let dir = tempfile::tempdir().unwrap();
    render(dir.path(), false, &[], true).unwrap();
    let notes = std::fs::read_to_string(dir.path().join("NOTES.txt")).unwrap();
    assert!(
        notes.contains(
            "kubectl annotate deployment web logtrain.akkeris.io/drains='syslog+tls://logs.example.com:6514'"
        ),
        "{notes}"
    );
    assert!(notes.contains("logtrain_drain_dropped_total"), "{notes}");
    assert!(notes.contains("image.repository is still the placeholder"), "{notes}");
    let dir = tempfile::tempdir().unwrap();
    render(
        dir.path(),
        false,
        &[r#"{"image": {"repository": "registry.example.com/logtrain"}}"#],
        true,
    )
    .unwrap();
    let notes = std::fs::read_to_string(dir.path().join("NOTES.txt")).unwrap();
    assert!(!notes.contains("placeholder"), "{notes}");
}

/// Metric names (`logtrain_…`) in a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let b = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("logtrain_") {
        let start = i + at;
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        out.push(expr[start..end].to_string());
        i = end;
    }
    out
}

#[test]
fn dashboard_covers_the_metric_catalog() {
    let path = root().join("deployments/grafana/logtrain-dashboard.json");
    let dash: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let catalog: BTreeSet<&str> = logtrain::telemetry::CATALOG.iter().map(|(n, _, _)| *n).collect();
    let mut used = BTreeSet::new();
    let mut ids = BTreeSet::new();
    let panels = dash["panels"].as_array().unwrap();
    for p in panels {
        assert!(ids.insert(p["id"].as_i64().unwrap()), "duplicate panel id {}", p["id"]);
        let g = &p["gridPos"];
        assert!(
            g["x"].as_i64().unwrap() + g["w"].as_i64().unwrap() <= 24,
            "{} overflows the grid",
            p["title"]
        );
        if p["type"] == "row" {
            continue;
        }
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{}", p["title"]);
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{} has no query", p["title"]);
        for t in targets {
            let expr = t["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{expr}");
            for n in names {
                // A histogram is queried by its series: NAME_bucket, _sum, _count.
                let n = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| n.strip_suffix(s).filter(|base| catalog.contains(base)))
                    .map_or(n.clone(), str::to_string);
                assert!(
                    catalog.contains(n.as_str()),
                    "{}: {n} is not in telemetry::CATALOG",
                    p["title"]
                );
                used.insert(n);
            }
        }
    }
    let missing: Vec<&&str> = catalog.iter().filter(|n| !used.contains(**n)).collect();
    assert!(missing.is_empty(), "metrics with no panel: {missing:?}");
    let vars: Vec<&str> = dash["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["datasource", "instance", "drain"]);
}

#[test]
fn dockerfile_builds_locked_and_runs_as_nonroot() {
    let df = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let lines: Vec<&str> = df
        .lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .collect();
    let from: Vec<&str> = lines.iter().filter(|l| l.starts_with("FROM ")).copied().collect();
    assert_eq!(
        from,
        [
            "FROM rust:1-bookworm AS build",
            "FROM gcr.io/distroless/cc-debian12:nonroot"
        ]
    );
    assert!(lines.contains(&"RUN cargo build --release --locked"));
    assert!(lines.contains(&"COPY --from=build /src/target/release/logtrain /logtrain"));
    assert!(lines.contains(&"USER 65532:65532"));
    assert!(lines.contains(&"ENTRYPOINT [\"/logtrain\"]"));
    // The exposed ports are logtrain's defaults (src/config.rs).
    let d = logtrain::config::Config::default();
    let expose = format!(
        "EXPOSE {}/tcp {}/tcp {}/tcp {}/udp {}/tcp",
        d.http_port, d.envoy_port, d.syslog_tcp_port, d.syslog_udp_port, d.syslog_tls_port
    );
    assert!(lines.contains(&expose.as_str()), "want {expose:?}");
    // The build context keeps out what the build must not see or does not need.
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    for entry in [".git", ".venv", "target"] {
        assert!(ignore.lines().any(|l| l.trim() == entry), ".dockerignore lacks {entry}");
    }
    for needed in ["Cargo.lock", "src", "Cargo.toml"] {
        assert!(
            !ignore.lines().any(|l| l.trim() == needed),
            ".dockerignore drops {needed}"
        );
    }
}

/// Objects of YAML `files` (name, text), in the order given, as (kind, name, namespace).
fn objects_in_order<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (file, body) in files {
        for v in yaml_docs(body).unwrap_or_else(|e| panic!("{file}: not YAML: {e}")) {
            if v.is_null() {
                continue;
            }
            out.push((
                s(&v["kind"]).to_string(),
                s(&v["metadata"]["name"]).to_string(),
                s(&v["metadata"]["namespace"]).to_string(),
            ));
        }
    }
    out
}

/// The objects of a folder in the order kubectl visits them (`kubectl apply -f DIR/`
/// walks the folder the same way; `--local` needs no cluster).
fn kubectl_visit_order(dir: &Path) -> Vec<(String, String, String)> {
    let o = run(kubectl()
        .args(["annotate", "--local", "-f"])
        .arg(dir)
        .arg("logtrain.akkeris.io/order-check=yes")
        .args([
            "-o",
            r#"jsonpath={.kind}{"\t"}{.metadata.name}{"\t"}{.metadata.namespace}{"\n"}"#,
        ]));
    assert!(
        o.status.success(),
        "kubectl cannot read {}: {}",
        dir.display(),
        text(&o.stderr)
    );
    text(&o.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 3, "unexpected kubectl output line {l:?}");
            (f[0].to_string(), f[1].to_string(), f[2].to_string())
        })
        .collect()
}

/// What fails when `objs` are created one after the other in an empty cluster: a
/// namespaced object before its Namespace, or one that names no namespace (it would
/// land in whatever namespace the user's context has).
fn apply_order_problems(objs: &[(String, String, String)]) -> Vec<String> {
    const CLUSTER_SCOPED: [&str; 3] = ["Namespace", "ClusterRole", "ClusterRoleBinding"];
    let mut created = BTreeSet::new();
    let mut out = Vec::new();
    for (kind, name, ns) in objs {
        if CLUSTER_SCOPED.contains(&kind.as_str()) {
            if !ns.is_empty() {
                out.push(format!("{kind}/{name} is cluster-scoped but names namespace {ns}"));
            }
            if kind == "Namespace" {
                created.insert(name.as_str());
            }
        } else if ns.is_empty() {
            out.push(format!("{kind}/{name} names no namespace"));
        } else if !created.contains(ns.as_str()) {
            out.push(format!("{kind}/{name} comes before its Namespace {ns}"));
        }
    }
    out
}

#[test]
fn kubectl_apply_creates_the_namespace_before_what_lives_in_it() {
    let files = yaml_files(&plain_dir());
    // In sorted file order, which is how `kubectl apply -f deployments/kubernetes/` goes.
    let sorted = objects_in_order(files.iter().map(|(n, b)| (n.as_str(), b.as_str())));
    assert_eq!(apply_order_problems(&sorted), Vec::<String>::new());
    assert_eq!(
        sorted.iter().map(|(k, _, _)| k.as_str()).collect::<Vec<_>>(),
        [
            "Namespace",
            "ServiceAccount",
            "ClusterRole",
            "ClusterRoleBinding",
            "Service",
            "DaemonSet"
        ],
        "the Namespace first, the DaemonSet after the ServiceAccount and RBAC its pods use"
    );
    assert!(
        sorted.iter().filter(|(_, _, ns)| ns == "logtrain").count() >= 3,
        "{sorted:?}"
    );
    // kubectl itself visits them in that order.
    assert_eq!(kubectl_visit_order(&plain_dir()), sorted);

    // The check has teeth: the same files under their template names (the layout
    // before the numeric prefixes) put the DaemonSet before its Namespace.
    let old = tempfile::tempdir().unwrap();
    for (name, body) in &files {
        let (prefix, bare) = name.split_once('-').unwrap();
        assert!(
            prefix.len() == 2 && prefix.bytes().all(|b| b.is_ascii_digit()),
            "{name}"
        );
        std::fs::write(old.path().join(bare), body).unwrap();
    }
    let problems = apply_order_problems(&kubectl_visit_order(old.path()));
    assert!(
        problems.contains(&"DaemonSet/logtrain comes before its Namespace logtrain".to_string()),
        "{problems:?}"
    );
}

/// The environment variables logtrain reads (`config::SETTINGS`, older names
/// too), each with the Config field (YAML key) it sets.
fn config_env_vars() -> BTreeMap<String, String> {
    logtrain::config::SETTINGS
        .iter()
        .flat_map(|s| s.vars().map(|var| (var.to_string(), s.key.to_string())))
        .collect()
}

/// Every key of values.yaml by path, with the comment lines right above it.
fn values_comments() -> Vec<(Vec<String>, String)> {
    let yaml = std::fs::read_to_string(root().join("charts/logtrain/values.yaml")).unwrap();
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut comment = String::new();
    let mut out = Vec::new();
    for line in yaml.lines() {
        let body = line.trim_start();
        let indent = line.len() - body.len();
        if let Some(c) = body.strip_prefix('#') {
            comment.push_str(c);
            comment.push(' ');
            continue;
        }
        let key = body
            .split_once(':')
            .map(|(k, _)| k)
            .filter(|k| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
        let Some(key) = key else {
            // A blank line, a list item or a continuation: the comment was not a key's.
            comment.clear();
            continue;
        };
        while stack.last().is_some_and(|(i, _)| *i >= indent) {
            stack.pop();
        }
        stack.push((indent, key.to_string()));
        out.push((
            stack.iter().map(|(_, k)| k.clone()).collect(),
            std::mem::take(&mut comment),
        ));
    }
    out
}

/// Whether `comment` names the variable `var` as a whole word.
fn names_var(comment: &str, var: &str) -> bool {
    comment.match_indices(var).any(|(at, _)| {
        let word = |c: Option<char>| c.is_some_and(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        !word(comment[..at].chars().next_back()) && !word(comment[at + var.len()..].chars().next())
    })
}

/// The environment variables of the logtrain container of a rendered folder.
fn rendered_env(dir: &Path) -> BTreeMap<String, Value> {
    let objs = objects(dir);
    let c = container(
        &get(&objs, "DaemonSet/logtrain")["spec"]["template"]["spec"],
        "containers",
        "logtrain",
    );
    seq(&c["env"])
        .iter()
        .map(|e| (s(&e["name"]).to_string(), e.clone()))
        .collect()
}

/// How each variable logtrain reads can be set: "default render", "alias of X",
/// or the values.yaml paths whose comments name it. Err lists the forgotten ones.
fn env_coverage(
    vars: &BTreeMap<String, String>,
    default_env: &BTreeSet<String>,
    comments: &[(Vec<String>, String)],
) -> Result<BTreeMap<String, Vec<Vec<String>>>, Vec<String>> {
    let mut by_value = BTreeMap::new();
    let mut forgotten = Vec::new();
    for (var, field) in vars {
        if default_env.contains(var) {
            continue;
        }
        // Another name of the same setting (the Go logtrain's NODE for NODE_NAME).
        if vars
            .iter()
            .any(|(v, f)| f == field && v != var && default_env.contains(v))
        {
            continue;
        }
        let paths: Vec<Vec<String>> = comments
            .iter()
            .filter(|(_, c)| names_var(c, var))
            .map(|(p, _)| p.clone())
            .collect();
        if paths.is_empty() {
            forgotten.push(var.clone());
        } else {
            by_value.insert(var.clone(), paths);
        }
    }
    if forgotten.is_empty() {
        Ok(by_value)
    } else {
        Err(forgotten)
    }
}

/// A valid value for the values.yaml key at `path`, made from values.schema.json.
fn sample_value(schema: &serde_json::Value, path: &[String]) -> serde_json::Value {
    let node = path.iter().fold(schema, |n, k| &n["properties"][k.as_str()]);
    assert!(
        node.is_object(),
        "values.yaml key {} is not in values.schema.json",
        path.join(".")
    );
    // A value no type alone describes (a list of networks) carries its own example.
    if let Some(e) = node["examples"].as_array().and_then(|e| e.first()) {
        return e.clone();
    }
    if let Some(e) = node["enum"].as_array() {
        return e.iter().find(|v| *v != "").cloned().unwrap();
    }
    if let Some(first) = node["anyOf"].as_array().and_then(|a| a.first()) {
        return sample_value(first, &[]);
    }
    let types: Vec<&str> = match &node["type"] {
        serde_json::Value::String(t) => vec![t.as_str()],
        serde_json::Value::Array(a) => a.iter().filter_map(|t| t.as_str()).collect(),
        _ => Vec::new(),
    };
    if types.contains(&"integer") {
        return serde_json::json!(node["minimum"].as_i64().unwrap_or(0) + 7);
    }
    if types.contains(&"boolean") {
        return serde_json::json!(true);
    }
    if types.contains(&"string") {
        return serde_json::json!("sample");
    }
    if types.contains(&"object") && node["properties"]["name"].is_object() {
        // A Secret reference.
        return serde_json::json!({"name": "sample"});
    }
    panic!("no sample value for {}: {node}", path.join("."))
}

fn set_path(values: &mut serde_json::Value, path: &[String], v: serde_json::Value) {
    let mut at = values;
    for k in &path[..path.len() - 1] {
        at = at
            .as_object_mut()
            .unwrap()
            .entry(k.clone())
            .or_insert_with(|| serde_json::json!({}));
    }
    at.as_object_mut().unwrap().insert(path[path.len() - 1].clone(), v);
}

#[test]
fn every_variable_logtrain_reads_is_set_or_settable() {
    let vars = config_env_vars();
    for (var, field) in [
        ("HTTP_PORT", "http_port"),
        ("NODE", "node_name"),
        ("NODE_NAME", "node_name"),
        ("HTTP_TOKEN", "http_token"),
        ("TAIL_START_AT", "tail_start_at_end"),
        ("TAIL_STDERR_SEVERITY", "tail_stderr_severity"),
        ("LOG_FORMAT", "log_format"),
    ] {
        assert_eq!(vars.get(var).map(String::as_str), Some(field), "{var}: {vars:?}");
    }
    assert!(vars.len() >= 50, "only {} variables: {vars:?}", vars.len());

    let default_env: BTreeSet<String> = rendered_env(&plain_dir()).into_keys().collect();
    let comments = values_comments();
    let by_value = env_coverage(&vars, &default_env, &comments).unwrap_or_else(|forgotten| {
        panic!(
            "read by logtrain (config::SETTINGS) but neither set by the chart's default render nor named in a \
             charts/logtrain/values.yaml comment (add a value, its schema and its template line): {forgotten:?}"
        )
    });
    // What is not rendered by default: the Secrets, the TLS files and the limits.
    for var in [
        "DATABASE_URL",
        "HTTP_TOKEN",
        "SYSLOG_TLS_CERT_PEM",
        "TAIL_START_AT",
        "TAIL_MAX_BACKLOG_BYTES",
        "HTTP_MAX_BODY",
    ] {
        assert!(by_value.contains_key(var), "{var}: {by_value:?}");
    }

    // Each documented value really sets its variable: every one of them set (over
    // every opt-in, which some depend on), and each variable is in the render.
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("charts/logtrain/values.schema.json")).unwrap())
            .unwrap();
    let mut values: serde_json::Value = serde_json::from_str(EVERYTHING_ON).unwrap();
    for paths in by_value.values() {
        for p in paths {
            set_path(&mut values, p, sample_value(&schema, p));
        }
    }
    let values = values.to_string();
    let full = rendered(&[&values]);
    let env = rendered_env(full.path());
    for (var, paths) in &by_value {
        assert!(
            env.contains_key(var),
            "{var} is named by values.yaml ({}) but setting it renders no {var}: {values}",
            paths.iter().map(|p| p.join(".")).collect::<Vec<_>>().join(", ")
        );
    }

    // The check has teeth: a variable a new row would read that the chart forgot.
    let mut more = vars.clone();
    more.insert("TAIL_NEW_LIMIT".into(), "tail_new_limit".into());
    assert_eq!(
        env_coverage(&more, &default_env, &comments).unwrap_err(),
        ["TAIL_NEW_LIMIT"]
    );
}

/// The limits the chart renders only when set: (variable, values path, value set).
const LIMITS: [(&str, &str, &str); 14] = [
    ("TAIL_START_AT", "inputs.kubernetes.startAt", "end"),
    ("TAIL_MAX_RECORD_BYTES", "inputs.kubernetes.maxRecordBytes", "131072"),
    ("TAIL_MAX_BACKLOG_BYTES", "inputs.kubernetes.maxBacklogBytes", "0"),
    ("TAIL_MAX_BACKLOG_AGE", "inputs.kubernetes.maxBacklogAgeSeconds", "3600"),
    ("TAIL_STDOUT_SEVERITY", "inputs.kubernetes.stdoutSeverity", "5"),
    ("TAIL_STDERR_SEVERITY", "inputs.kubernetes.stderrSeverity", "warning"),
    ("SYSLOG_MAX_LINE", "inputs.syslog.maxLine", "16384"),
    ("SYSLOG_MAX_FRAME", "inputs.syslog.maxFrame", "262144"),
    ("INPUT_MAX_CONNECTIONS", "inputs.maxConnections", "256"),
    ("INPUT_IDLE_TIMEOUT", "inputs.idleTimeoutSeconds", "60"),
    ("INPUT_MEMORY_BYTES", "inputs.memoryBytes", "33554432"),
    ("HTTP_MAX_BODY", "http.maxBody", "1048576"),
    ("ANNOTATION_MAX_DRAINS", "security.annotationMaxDrains", "4"),
    ("DRAIN_MAX", "drain.max", "200"),
];

#[test]
fn limits_are_rendered_only_when_set_and_reach_logtrain() {
    let d = logtrain::config::Config::default();
    let defaults: BTreeMap<&str, String> = [
        (
            "TAIL_START_AT",
            if d.tail_start_at_end { "end" } else { "beginning" }.to_string(),
        ),
        ("TAIL_MAX_RECORD_BYTES", d.tail_max_record_bytes.to_string()),
        ("TAIL_MAX_BACKLOG_BYTES", d.tail_max_backlog_bytes.to_string()),
        ("TAIL_MAX_BACKLOG_AGE", d.tail_max_backlog_age.to_string()),
        ("TAIL_STDOUT_SEVERITY", d.tail_stdout_severity.to_string()),
        ("TAIL_STDERR_SEVERITY", d.tail_stderr_severity.to_string()),
        ("SYSLOG_MAX_LINE", d.syslog_max_line.to_string()),
        ("SYSLOG_MAX_FRAME", d.syslog_max_frame.to_string()),
        ("INPUT_MAX_CONNECTIONS", d.input_max_connections.to_string()),
        ("INPUT_IDLE_TIMEOUT", d.input_idle_timeout.to_string()),
        ("INPUT_MEMORY_BYTES", d.input_memory_bytes.to_string()),
        ("HTTP_MAX_BODY", d.http_max_body.to_string()),
        ("ANNOTATION_MAX_DRAINS", d.annotation_max_drains.to_string()),
        ("DRAIN_MAX", d.drain_max.to_string()),
    ]
    .into();

    // Unset in values.yaml, not rendered, and the comment gives logtrain's own default.
    let values: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(root().join("charts/logtrain/values.yaml")).unwrap()).unwrap();
    let comments = values_comments();
    let default_env = rendered_env(&plain_dir());
    for (var, path, _) in LIMITS {
        let keys: Vec<String> = path.split('.').map(String::from).collect();
        let v = keys.iter().fold(&values, |v, k| &v[k.as_str()]);
        assert!(
            v.is_null() || v.as_str() == Some(""),
            "{path} must default to unset, not {v:?}"
        );
        let (_, comment) = comments.iter().find(|(p, _)| *p == keys).unwrap();
        assert!(
            names_var(comment, var),
            "the comment of {path} does not name {var}: {comment}"
        );
        let want = format!("logtrain's default, {}", defaults[var]);
        assert!(
            comment.contains(&want),
            "the comment of {path} should say {want:?}: {comment}"
        );
        assert!(!default_env.contains_key(var), "{var} is rendered by default");
    }
    assert!(!default_env.contains_key("HTTP_TOKEN"));

    // Set, each is rendered with its value, and the token comes from its Secret.
    let mut set = serde_json::json!({"http": {"tokenSecret": {"name": "logtrain-http"}}});
    for (_, path, value) in LIMITS {
        let keys: Vec<String> = path.split('.').map(String::from).collect();
        let v = value
            .parse::<u64>()
            .map(serde_json::Value::from)
            .unwrap_or_else(|_| value.into());
        set_path(&mut set, &keys, v);
    }
    let dir = rendered(&[&set.to_string()]);
    let env = rendered_env(dir.path());
    for (var, _, value) in LIMITS {
        assert_eq!(s(&env[var]["value"]), value, "{var}");
    }
    let token = &env["HTTP_TOKEN"];
    assert!(token["value"].is_null(), "HTTP_TOKEN must never be a plain value");
    assert_eq!(s(&token["valueFrom"]["secretKeyRef"]["name"]), "logtrain-http");
    assert_eq!(s(&token["valueFrom"]["secretKeyRef"]["key"]), "HTTP_TOKEN");

    // logtrain reads them as set.
    let cfg = logtrain_config(&env);
    assert!(cfg.tail_start_at_end);
    assert_eq!(
        (
            cfg.tail_max_record_bytes,
            cfg.tail_max_backlog_bytes,
            cfg.tail_max_backlog_age,
            cfg.syslog_max_line,
            cfg.syslog_max_frame,
            cfg.input_max_connections,
            cfg.input_idle_timeout,
            cfg.http_max_body
        ),
        (131072, 0, 3600, 16384, 262144, 256, 60, 1048576)
    );
    assert_eq!(
        (cfg.input_memory_bytes, cfg.annotation_max_drains, cfg.drain_max),
        (33554432, 4, 200)
    );
    assert_eq!((cfg.tail_stdout_severity, cfg.tail_stderr_severity), (5, 4));
    assert_eq!(cfg.http_token.as_ref().map(|t| t.expose()), Some("from-the-secret"));
}

/// What logtrain reads from a rendered container environment (the downward API's
/// node name and a Secret's token stand in as placeholders).
fn logtrain_config(env: &BTreeMap<String, Value>) -> logtrain::config::Config {
    let vars: HashMap<String, String> = env
        .iter()
        .map(|(name, e)| {
            let value = match name.as_str() {
                "NODE_NAME" => "node-a",
                "HTTP_TOKEN" => "from-the-secret",
                _ => s(&e["value"]),
            };
            (name.clone(), value.to_string())
        })
        .collect();
    logtrain::config::Config::load(None, &vars)
        .unwrap_or_else(|errs| panic!("{:?}", errs.iter().map(|e| e.to_string()).collect::<Vec<_>>()))
}

#[test]
fn security_settings_reach_logtrain_as_written() {
    use logtrain::config::{Config, HostnameScope};
    use logtrain::egress::DEFAULT_DENY;

    // The hostname scope is rendered (the plain manifest says it); `any` is the Go
    // logtrain's behaviour, there for whoever needs it.
    let env = rendered_env(rendered(&[r#"{"security": {"hostnameScope": "any"}}"#]).path());
    assert_eq!(s(&env["ROUTE_HOSTNAME_SCOPE"]["value"]), "any");
    assert_eq!(logtrain_config(&env).route_hostname_scope, HostnameScope::Any);

    // The deny list, unset, is not rendered (logtrain's default applies), and its
    // comment lists that default, for an operator who extends it.
    assert!(!rendered_env(&plain_dir()).contains_key("DRAIN_DENY_NETWORKS"));
    let path: Vec<String> = ["security", "denyNetworks"].map(String::from).into();
    let comments = values_comments();
    let (_, comment) = comments.iter().find(|(p, _)| *p == path).unwrap();
    assert!(names_var(comment, "DRAIN_DENY_NETWORKS"), "{comment}");
    for net in DEFAULT_DENY.split(',') {
        assert!(
            comment.contains(&format!(" {net}")),
            "the comment of security.denyNetworks does not list {net}: {comment}"
        );
    }
    // Copied as it is, the default passes the schema and means the same to logtrain.
    let copied = serde_json::json!({"security": {"denyNetworks": DEFAULT_DENY.split(',').collect::<Vec<_>>()}});
    let env = rendered_env(rendered(&[&copied.to_string()]).path());
    assert_eq!(
        logtrain_config(&env).drain_deny_networks,
        Config::default().drain_deny_networks
    );

    // A list replaces the default, joined with commas.
    let env =
        rendered_env(rendered(&[r#"{"security": {"denyNetworks": ["10.0.0.0/8", "fd00::/8", "192.0.2.7"]}}"#]).path());
    assert_eq!(s(&env["DRAIN_DENY_NETWORKS"]["value"]), "10.0.0.0/8,fd00::/8,192.0.2.7");
    let nets: Vec<String> = logtrain_config(&env)
        .drain_deny_networks
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(nets, ["10.0.0.0/8", "fd00::/8", "192.0.2.7/32"]);

    // [] is rendered as an empty value, which allows every address (it is not unset).
    let env = rendered_env(rendered(&[r#"{"security": {"denyNetworks": []}}"#]).path());
    assert_eq!(env["DRAIN_DENY_NETWORKS"]["value"], Value::from(""));
    assert!(logtrain_config(&env).drain_deny_networks.is_empty());
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn the_events_grant_is_create_only_and_used() {
    // logtrain creates Events (bad drain URLs in annotations)...
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    assert!(
        files
            .iter()
            .any(|f| std::fs::read_to_string(f).unwrap().contains("Api<Event>")),
        "nothing in src/ creates Events any more: turn rbac.events off by default"
    );
    // ...so the grant is on by default, exactly `create` on core events.
    let values: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(root().join("charts/logtrain/values.yaml")).unwrap()).unwrap();
    assert_eq!(values["rbac"]["events"], Value::Bool(true));
    let grants_events = |objs: &BTreeMap<String, Value>| -> Option<BTreeSet<String>> {
        seq(&get(objs, "ClusterRole/logtrain")["rules"])
            .iter()
            .find(|r| strings(&r["resources"]).contains("events"))
            .map(|r| strings(&r["verbs"]).into_iter().map(String::from).collect())
    };
    let create: Option<BTreeSet<String>> = Some(["create"].map(String::from).into());
    assert_eq!(grants_events(&objects(&plain_dir())), create);
    assert_eq!(grants_events(&objects(rendered(&[]).path())), create);
    // Turned off, nothing is granted on events.
    let off = rendered(&[r#"{"rbac": {"events": false}}"#]);
    assert_eq!(grants_events(&objects(off.path())), None);
}

/// A Kubernetes quantity in bytes (`64Mi`, `1Gi`, `500M`, `1048576`).
fn bytes(q: &str) -> f64 {
    let (num, mult) = [
        ("Ki", 1024f64),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("M", 1e6),
        ("G", 1e9),
    ]
    .iter()
    .find_map(|(suffix, m)| q.strip_suffix(suffix).map(|n| (n, *m)))
    .unwrap_or((q, 1.0));
    num.parse::<f64>().unwrap_or_else(|_| panic!("not a quantity: {q:?}")) * mult
}

#[test]
fn resources_follow_the_measured_memory() {
    // bench/RESULTS.md: peak RSS at rest with 500 idle files.
    let results = std::fs::read_to_string(root().join("bench/RESULTS.md")).unwrap();
    let row = results
        .lines()
        .find(|l| l.starts_with("| at_rest (500 files) | logtrain |"))
        .expect("bench/RESULTS.md has no at_rest row for logtrain");
    // The cell is the peak, optionally followed by the idle RSS in brackets.
    let at_rest_mb: f64 = row
        .split('|')
        .nth(3)
        .and_then(|c| c.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(at_rest_mb > 10.0, "{row}");
    let at_rest = at_rest_mb * 1e6;
    // README, Kubernetes datasource: syncing 10,000 workloads raised the peak RSS by ~30 MiB
    // (tests/kubernetes_e2e.rs); the sizing rounds it up to 40 MiB.
    let workloads_10k = 40.0 * 1024f64.powi(2);
    // A busy drain's queue can fill up to DRAIN_QUEUE_BYTES.
    let queue = logtrain::config::Config::default().drain_queue_bytes as f64;
    // The push inputs together hold at most INPUT_MEMORY_BYTES before their records
    // are queued (the chart leaves it at logtrain's default).
    let inputs = logtrain::config::Config::default().input_memory_bytes as f64;

    let objs = objects(&plain_dir());
    let c = container(
        &get(&objs, "DaemonSet/logtrain")["spec"]["template"]["spec"],
        "containers",
        "logtrain",
    );
    let request = bytes(s(&c["resources"]["requests"]["memory"]));
    let limit = bytes(s(&c["resources"]["limits"]["memory"]));
    assert!(
        request >= at_rest + queue,
        "memory request {request} is below the measured at-rest RSS plus one busy drain ({})",
        at_rest + queue
    );
    let busy = at_rest + workloads_10k + 8.0 * queue + inputs;
    assert!(
        limit >= 1.25 * busy,
        "memory limit {limit} is below 10,000 workloads, 8 busy drains and the push inputs' whole budget \
         plus 25% ({})",
        1.25 * busy
    );
    assert!(
        limit <= 2.0 * busy,
        "memory limit {limit} is far above the sizing formula ({busy})"
    );

    // The README's Sizing section shows the same numbers.
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let sizing = readme
        .split("### Sizing")
        .nth(1)
        .and_then(|r| r.split("\n#").next())
        .expect("README has no Sizing section");
    for q in [
        s(&c["resources"]["requests"]["memory"]),
        s(&c["resources"]["limits"]["memory"]),
        s(&c["resources"]["requests"]["cpu"]),
        s(&c["resources"]["limits"]["cpu"]),
    ] {
        assert!(sizing.contains(q), "README's Sizing section does not mention {q}");
    }
    assert!(
        sizing.contains(&format!("{at_rest_mb} MB")),
        "Sizing should start from the {at_rest_mb} MB at rest"
    );
}
