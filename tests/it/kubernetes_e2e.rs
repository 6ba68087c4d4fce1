//! logtrain's main job end to end, through the real binary: an annotated
//! Deployment in a protocol-faithful API server, its pods' CRI and docker-json
//! log files on this "node", and a real rsyslog as the drain. Every line arrives
//! complete and in order; changing the annotation moves the route live; SIGTERM
//! flushes and exits cleanly.
//!
//! And the attacks a tenant can make with an annotation, made as a tenant would:
//! claiming another namespace's hostname, naming a file on the node, naming more
//! drains than allowed; refused and told once per cluster, not once per node.
//! Receivers are rsyslog on loopback, so these logtrains run with
//! `DRAIN_DENY_NETWORKS=` (the deny list is tested in `src/egress.rs` and
//! `tests/kubernetes_datasource.rs`).

use crate::support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use logtrain::drain::DrainSpec;
use serde_json::{Value, json};
use support::kube_api::KubeApi;
use support::rsyslog::{JSON_TEMPLATE, Rsyslog, entries, msgs, tcp_receiver};
use support::{free_port, wait_until};

const NODE: &str = "node-a";
const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const DRAINS: &str = "logtrain.akkeris.io/drains";
const HOSTNAME: &str = "logtrain.akkeris.io/hostname";
/// What tenants may open to loopback receivers.
const OPEN: (&str, &str) = ("DRAIN_DENY_NETWORKS", "");
const ROUTE_ERRORS: &str = "logtrain_route_errors_total{origin=\"kubernetes\"}";

/// A drain's id, as metric labels and Events name it.
/// A drain's id as refusals (logs, Events) name it: the URL's own.
fn url_id(url: &str) -> String {
    logtrain::drain::DrainSpec::parse(url).unwrap().id
}

fn id(url: &str) -> String {
    // An annotation's drain is its own copy, named apart from the operator's.
    DrainSpec::parse(url)
        .unwrap()
        .restricted(std::sync::Arc::new(logtrain::egress::Egress::open()))
        .id
}

fn object(kind: &str, name: &str, annotations: Value) -> Value {
    object_in("default", kind, name, annotations)
}

fn object_in(ns: &str, kind: &str, name: &str, annotations: Value) -> Value {
    json!({"kind": kind, "metadata": {"name": name, "namespace": ns, "annotations": annotations, "labels": {"app": name}}, "spec": {}})
}

fn owned_by(mut obj: Value, kind: &str, name: &str) -> Value {
    obj["metadata"]["ownerReferences"] = json!([{
        "apiVersion": "apps/v1", "kind": kind, "name": name,
        "uid": "00000000-0000-4000-8000-000000000001", "controller": true
    }]);
    obj
}

/// A pod of the `web` Deployment on this node, with its log file and link.
fn pod(api: &KubeApi, root: &Path, name: &str) -> PathBuf {
    pod_of(api, root, "default", "web-5d8f7c9b6", name)
}

/// A pod of ReplicaSet `rs` in `ns` on this node, with its log file and link.
fn pod_of(api: &KubeApi, root: &Path, ns: &str, rs: &str, name: &str) -> PathBuf {
    let mut p = owned_by(object_in(ns, "Pod", name, json!({})), "ReplicaSet", rs);
    p["spec"] = json!({"nodeName": NODE, "containers": [{"name": "app", "image": "busybox"}]});
    api.apply(p);
    let dir = root.join("pods").join(format!("{ns}_{name}_uid")).join("app");
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("0.log");
    std::fs::File::create(&log).unwrap();
    std::os::unix::fs::symlink(&log, root.join("containers").join(format!("{name}_{ns}_app-{ID}.log"))).unwrap();
    log
}

/// Deployment `name` in `ns` with `annotations`, its ReplicaSet, and one pod
/// on this node; returns the pod's log file.
fn deployment_with_pod(api: &KubeApi, root: &Path, ns: &str, name: &str, annotations: Value) -> PathBuf {
    let rs = format!("{name}-5d8f7c9b6");
    api.apply(object_in(ns, "Deployment", name, annotations));
    api.apply(owned_by(
        object_in(ns, "ReplicaSet", &rs, json!({})),
        "Deployment",
        name,
    ));
    pod_of(api, root, ns, &rs, &format!("{rs}-aaaaa"))
}

/// Appends `n` CRI lines `<what> <i>` to a container log.
fn write_lines(log: &Path, what: &str, n: usize) {
    let mut f = std::fs::OpenOptions::new().append(true).open(log).unwrap();
    for i in 0..n {
        writeln!(f, "2026-11-22T10:00:00.000000001Z stdout F {what} {i}").unwrap();
    }
}

fn numbered(what: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{what} {i}")).collect()
}

/// The logtrain binary as a DaemonSet pod runs it: tailing `root/containers`,
/// the Kubernetes datasource on the test API server (through a kubeconfig),
/// this node's name, its HTTP server on `http_port`.
fn start_logtrain(api: &KubeApi, root: &Path, http_port: u16, env: &[(&str, &str)], stderr: Stdio) -> Child {
    let kubeconfig = root.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: t, cluster: {{server: \"{}\"}}}}]\nusers: [{{name: u, user: {{}}}}]\ncontexts: [{{name: c, context: {{cluster: t, user: u}}}}]\ncurrent-context: c\n",
            api.url()
        ),
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_logtrain"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KUBERNETES", "true")
        .env("KUBERNETES_DATASOURCE", "true")
        .env("KUBECONFIG", &kubeconfig)
        .env("NODE_NAME", NODE)
        .env("KUBERNETES_LOG_PATH", root.join("containers"))
        .env("CHECKPOINT_PATH", root.join("state/checkpoints.json"))
        .env("DRAIN_BUFFER_PATH", root.join("buffers"))
        .env("HTTP_PORT", http_port.to_string())
        .env("LISTEN_ADDRESS", "127.0.0.1")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

struct Logtrain(Child);

async fn wait_ready(http_port: u16) {
    wait_until("/readyz", Duration::from_secs(20), || {
        http_get(http_port, "/readyz").is_some_and(|(c, _)| c == 200)
    })
    .await;
}

/// A counter or gauge of `/metrics` (`name{labels}`), 0 when absent.
fn metric(http_port: u16, name_and_labels: &str) -> u64 {
    http_get(http_port, "/metrics")
        .map(|(_, m)| {
            m.lines()
                .find_map(|l| l.strip_prefix(name_and_labels).and_then(|v| v.trim().parse().ok()))
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

impl Drop for Logtrain {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::Read;
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.get(9..12)?.parse().ok()?;
    Some((code, out))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotated_deployment_logs_reach_rsyslog_and_follow_annotation_changes() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    std::fs::create_dir_all(root.join("containers")).unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let _rs_a = tcp_receiver(&root.join("rsyslog-a"), port_a);
    let _rs_b = tcp_receiver(&root.join("rsyslog-b"), port_b);
    let (out_a, out_b) = (root.join("rsyslog-a/out.json"), root.join("rsyslog-b/out.json"));

    let api = KubeApi::start().await;
    let drain_a = format!("syslog+tcp://127.0.0.1:{port_a}");
    api.apply(object("Deployment", "web", json!({ DRAINS: drain_a })));
    api.apply(owned_by(
        object("ReplicaSet", "web-5d8f7c9b6", json!({ DRAINS: drain_a })),
        "Deployment",
        "web",
    ));
    let cri_log = pod(&api, root, "web-5d8f7c9b6-aaaaa");
    let docker_log = pod(&api, root, "web-5d8f7c9b6-bbbbb");
    let http_port = free_port();
    let child = start_logtrain(
        &api,
        root,
        http_port,
        &[("SHUTDOWN_TIMEOUT", "5"), OPEN],
        Stdio::piped(),
    );
    let mut lt = Logtrain(child);
    wait_ready(http_port).await;

    // CRI lines (with a partial pair) and docker lines (with a 16 KiB-style split).
    let n = 2000;
    let writer = {
        let (cri_log, docker_log) = (cri_log.clone(), docker_log.clone());
        std::thread::spawn(move || {
            let mut c = std::fs::OpenOptions::new().append(true).open(&cri_log).unwrap();
            let mut d = std::fs::OpenOptions::new().append(true).open(&docker_log).unwrap();
            for i in 0..n {
                if i % 100 == 0 {
                    writeln!(c, "2026-11-22T10:00:00.000000001Z stdout P cri {i} first half,").unwrap();
                    writeln!(c, "2026-11-22T10:00:00.000000002Z stdout F  second half").unwrap();
                    writeln!(
                        d,
                        r#"{{"log":"docker {i} split ","stream":"stderr","time":"2026-11-22T10:00:00.1Z"}}"#
                    )
                    .unwrap();
                    writeln!(
                        d,
                        r#"{{"log":"end\n","stream":"stderr","time":"2026-11-22T10:00:00.1Z"}}"#
                    )
                    .unwrap();
                } else {
                    writeln!(c, "2026-11-22T10:00:00.000000001Z stdout F cri {i}").unwrap();
                    writeln!(
                        d,
                        r#"{{"log":"docker {i}\n","stream":"stdout","time":"2026-11-22T10:00:00.1Z"}}"#
                    )
                    .unwrap();
                }
            }
        })
    };
    tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    wait_until("every line at rsyslog A", Duration::from_secs(30), || {
        entries(&out_a).len() >= 2 * n
    })
    .await;
    let got = entries(&out_a);
    assert_eq!(got.len(), 2 * n);
    let of = |pod: &str| -> Vec<Value> { got.iter().filter(|e| e["appname"] == pod).cloned().collect() };
    let cri = of("web-5d8f7c9b6-aaaaa");
    let docker = of("web-5d8f7c9b6-bbbbb");
    let expect_cri: Vec<String> = (0..n)
        .map(|i| {
            if i % 100 == 0 {
                format!("cri {i} first half, second half")
            } else {
                format!("cri {i}")
            }
        })
        .collect();
    let expect_docker: Vec<String> = (0..n)
        .map(|i| {
            if i % 100 == 0 {
                format!("docker {i} split end")
            } else {
                format!("docker {i}")
            }
        })
        .collect();
    assert_eq!(
        cri.iter()
            .map(|e| e["msg"].as_str().unwrap().to_string())
            .collect::<Vec<_>>(),
        expect_cri
    );
    assert_eq!(
        docker
            .iter()
            .map(|e| e["msg"].as_str().unwrap().to_string())
            .collect::<Vec<_>>(),
        expect_docker
    );
    assert!(got.iter().all(|e| e["hostname"] == "web.default"), "{:?}", got[0]);
    assert_eq!(cri[0]["pri"], "14");
    assert_eq!(docker[0]["pri"], "11", "stderr lines are errors");

    // Move the route: the annotation now names rsyslog B.
    let drain_b = format!("syslog+tcp://127.0.0.1:{port_b}");
    api.modify("Deployment", "default", "web", |o| {
        o["metadata"]["annotations"][DRAINS] = json!(drain_b)
    });
    let label_b = format!("drain=\"{}\"", id(&drain_b));
    wait_until("route moved", Duration::from_secs(5), || {
        http_get(http_port, "/metrics").is_some_and(|(_, m)| m.contains(&label_b))
    })
    .await;
    // Give the old drain a moment to go; then new lines go to B only.
    tokio::time::sleep(Duration::from_millis(200)).await;
    {
        let mut c = std::fs::OpenOptions::new().append(true).open(&cri_log).unwrap();
        for i in 0..100 {
            writeln!(c, "2026-11-22T10:00:01Z stdout F moved {i}").unwrap();
        }
    }
    wait_until("lines at rsyslog B", Duration::from_secs(10), || {
        entries(&out_b).len() >= 100
    })
    .await;
    let moved: Vec<String> = entries(&out_b)
        .iter()
        .map(|e| e["msg"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(moved, (0..100).map(|i| format!("moved {i}")).collect::<Vec<_>>());
    assert_eq!(entries(&out_a).len(), 2 * n, "nothing more reached the old drain");

    // SIGTERM: flush, save checkpoints, exit 0.
    Command::new("kill")
        .arg("-TERM")
        .arg(lt.0.id().to_string())
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || {
        let s = lt.0.wait().unwrap();
        let mut err = String::new();
        use std::io::Read;
        lt.0.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        (s, err)
    })
    .await
    .unwrap();
    assert!(status.0.success(), "exit: {:?}\n{}", status.0, status.1);
    assert!(status.1.contains("Every drain flushed"), "{}", status.1);
    let cp = std::fs::read_to_string(root.join("state/checkpoints.json")).unwrap();
    assert_eq!(cp.matches("\"offset\"").count(), 2, "{cp}");
}

/// A restart while the API server is failing: the backlog is read only once
/// the routes are loaded (read before, it would find no route, be counted as
/// unrouted and checkpointed past), and a route moved while lines are written
/// hands every line to exactly one of the two drains, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_waits_for_the_first_sync_and_a_moved_route_loses_and_repeats_nothing() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    std::fs::create_dir_all(root.join("containers")).unwrap();
    let (port_a, port_b) = (free_port(), free_port());
    let _rs_a = tcp_receiver(&root.join("rsyslog-a"), port_a);
    let _rs_b = tcp_receiver(&root.join("rsyslog-b"), port_b);
    let (out_a, out_b) = (root.join("rsyslog-a/out.json"), root.join("rsyslog-b/out.json"));
    let drain_a = format!("syslog+tcp://127.0.0.1:{port_a}");
    let drain_b = format!("syslog+tcp://127.0.0.1:{port_b}");
    let api = KubeApi::start().await;
    api.apply(object("Deployment", "web", json!({ DRAINS: drain_a })));
    api.apply(owned_by(
        object("ReplicaSet", "web-5d8f7c9b6", json!({})),
        "Deployment",
        "web",
    ));
    let log = pod(&api, root, "web-5d8f7c9b6-ccccc");
    {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        for i in 0..500 {
            writeln!(f, "2026-11-22T10:00:00.000000001Z stdout F backlog {i}").unwrap();
        }
    }
    api.set_failing(true);
    let http_port = free_port();
    let child = start_logtrain(&api, root, http_port, &[("SHUTDOWN_TIMEOUT", "5"), OPEN], Stdio::null());
    let _lt = Logtrain(child);
    wait_until("/healthz", Duration::from_secs(20), || {
        http_get(http_port, "/healthz").is_some_and(|(c, _)| c == 200)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(http_get(http_port, "/readyz").map(|(c, _)| c), Some(503));
    let unrouted = |port| {
        http_get(port, "/metrics")
            .map(|(_, m)| {
                m.lines()
                    .any(|l| l.starts_with("logtrain_unrouted_records_total{input=\"file\"} ") && !l.ends_with(" 0"))
            })
            .unwrap_or(false)
    };
    assert!(!unrouted(http_port), "lines were read before the routes were loaded");
    api.set_failing(false);
    wait_until("the backlog at drain A", Duration::from_secs(30), || {
        msgs(&out_a).len() >= 500
    })
    .await;
    assert_eq!(
        msgs(&out_a),
        (0..500).map(|i| format!("backlog {i}")).collect::<Vec<_>>()
    );

    // Move the route while lines are being written.
    let n = 3000;
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            for i in 0..n {
                writeln!(f, "2026-11-22T10:00:01.000000001Z stdout F live {i}").unwrap();
                if i % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(400)).await;
    api.modify("Deployment", "default", "web", |o| {
        o["metadata"]["annotations"][DRAINS] = json!(drain_b)
    });
    tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    wait_until("every live line at one drain", Duration::from_secs(30), || {
        msgs(&out_a).len() - 500 + msgs(&out_b).len() >= n
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let a = msgs(&out_a);
    let b = msgs(&out_b);
    assert!(!b.is_empty(), "the route never moved");
    let mut live: Vec<String> = a[500..].to_vec();
    live.extend(b.iter().cloned());
    assert_eq!(
        live,
        (0..n).map(|i| format!("live {i}")).collect::<Vec<_>>(),
        "A had {} live lines, B {}",
        a.len() - 500,
        b.len()
    );
    assert!(!unrouted(http_port));
}

/// Peak RSS of the logtrain process itself (`VmHWM` of /proc/PID/status), KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The binary's peak RSS while it syncs 10,000 Deployments (each with a 2 KB
/// `last-applied-configuration`, as kubectl leaves; every tenth annotated)
/// stays under the figure the README gives. Measured (debug build, as tests
/// run it): 20 MiB at rest, 50 MiB peak with the 10,000; the bound leaves a
/// quarter for allocator and machine noise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_workloads_keep_the_process_small() {
    const LIMIT_KIB: u64 = 64 << 10;
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    std::fs::create_dir_all(root.join("containers")).unwrap();
    let api = KubeApi::start().await;
    let filler = "x".repeat(2000);
    // Never resolves: only the routing table is looked at.
    let drain = "syslog+tcp://logs.invalid:514";
    for i in 0..10_000 {
        let mut ann = json!({ "kubectl.kubernetes.io/last-applied-configuration": filler });
        if i % 10 == 0 {
            ann[DRAINS] = json!(drain);
        }
        let mut o = object("Deployment", &format!("app-{i}"), ann);
        o["metadata"]["namespace"] = json!(format!("ns-{}", i % 50));
        api.apply(o);
    }
    let http_port = free_port();
    let child = start_logtrain(&api, root, http_port, &[], Stdio::null());
    let lt = Logtrain(child);
    let pid = lt.0.id();
    let started = std::time::Instant::now();
    wait_until("1,000 routes", Duration::from_secs(60), || {
        http_get(http_port, "/metrics").is_some_and(|(_, m)| m.lines().any(|l| l == "logtrain_routes 1000"))
    })
    .await;
    let took = started.elapsed();
    // A few watch rounds after the listing, then the peak.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let peak = peak_rss_kib(pid);
    println!("10,000 workloads: routes in {took:?}; logtrain peak RSS {} KiB", peak);
    assert!(peak > 0, "no VmHWM for pid {pid}");
    assert!(
        peak < LIMIT_KIB,
        "peak RSS {peak} KiB with 10,000 workloads, over {LIMIT_KIB} KiB"
    );
    drop(lt);
}

/// A victim (`web` in `default`, its drain V) and a tenant (`x` in `evil`,
/// its drain A) whose Deployment claims `hostname: web.default`; one pod each
/// on this node. Writes the victim's lines, then the tenant's, and returns
/// what V and A received once every line arrived somewhere it may.
struct Hijack {
    api: KubeApi,
    http_port: u16,
    at_victim: Vec<Value>,
    at_attacker: Vec<Value>,
    _lt: Logtrain,
    _rsyslog: (Rsyslog, Rsyslog),
    _root: tempfile::TempDir,
}

const VICTIM_LINES: usize = 200;
const TENANT_LINES: usize = 50;

async fn hijack(env: &[(&str, &str)], expect_at_victim: usize, expect_at_attacker: usize) -> Hijack {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("containers")).unwrap();
    let (port_v, port_a) = (free_port(), free_port());
    let rs_v = tcp_receiver(&root.join("victim"), port_v);
    let rs_a = tcp_receiver(&root.join("attacker"), port_a);
    let (out_v, out_a) = (root.join("victim/out.json"), root.join("attacker/out.json"));
    let api = KubeApi::start().await;
    let victim = format!("syslog+tcp://127.0.0.1:{port_v}");
    let attacker = format!("syslog+tcp://127.0.0.1:{port_a}");
    let web_log = deployment_with_pod(&api, root, "default", "web", json!({ DRAINS: victim }));
    let x_log = deployment_with_pod(
        &api,
        root,
        "evil",
        "x",
        json!({ DRAINS: attacker, HOSTNAME: "web.default" }),
    );
    let http_port = free_port();
    let mut env = env.to_vec();
    env.push(OPEN);
    let lt = Logtrain(start_logtrain(&api, root, http_port, &env, Stdio::null()));
    wait_ready(http_port).await;
    write_lines(&web_log, "victim", VICTIM_LINES);
    wait_until("the victim's lines", Duration::from_secs(10), || {
        msgs(&out_v).len() >= VICTIM_LINES
    })
    .await;
    write_lines(&x_log, "tenant", TENANT_LINES);
    wait_until("every line", Duration::from_secs(10), || {
        entries(&out_v).len() >= expect_at_victim && entries(&out_a).len() >= expect_at_attacker
    })
    .await;
    // Anything late would be here by now.
    tokio::time::sleep(Duration::from_millis(300)).await;
    Hijack {
        at_victim: entries(&out_v),
        at_attacker: entries(&out_a),
        api,
        http_port,
        _lt: lt,
        _rsyslog: (rs_v, rs_a),
        _root: dir,
    }
}

fn msgs_of(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["msg"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_claiming_another_namespaces_hostname_gets_neither_its_lines_nor_its_drain() {
    let h = hijack(&[], VICTIM_LINES, TENANT_LINES).await;
    // The victim's lines reach its own drain, and only its own lines do.
    assert_eq!(msgs_of(&h.at_victim), numbered("victim", VICTIM_LINES));
    assert!(h.at_victim.iter().all(|e| e["hostname"] == "web.default"));
    // The tenant keeps its default hostname, and its drain gets its lines only.
    assert_eq!(msgs_of(&h.at_attacker), numbered("tenant", TENANT_LINES));
    assert!(
        h.at_attacker.iter().all(|e| e["hostname"] == "x.evil"),
        "{:?}",
        h.at_attacker[0]
    );
    // Told on the tenant's Deployment, and counted.
    wait_until("the Event", Duration::from_secs(5), || {
        !h.api.objects("events", "evil").is_empty()
    })
    .await;
    let events = h.api.objects("events", "evil");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["reason"], "HostnameRefused");
    assert_eq!(events[0]["type"], "Warning");
    assert_eq!(events[0]["involvedObject"]["kind"], "Deployment");
    assert_eq!(events[0]["involvedObject"]["name"], "x");
    let msg = events[0]["message"].as_str().unwrap();
    assert!(
        msg.contains("web.default") && msg.contains("ROUTE_HOSTNAME_SCOPE"),
        "{msg}"
    );
    assert!(h.api.objects("events", "default").is_empty());
    assert_eq!(metric(h.http_port, ROUTE_ERRORS), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_scope_any_restores_the_go_behaviour() {
    let both = VICTIM_LINES + TENANT_LINES;
    let h = hijack(&[("ROUTE_HOSTNAME_SCOPE", "any")], both, both).await;
    // Whoever claims a hostname shares its lines and its drains.
    let mut expected = numbered("victim", VICTIM_LINES);
    expected.extend(numbered("tenant", TENANT_LINES));
    assert_eq!(msgs_of(&h.at_attacker), expected);
    assert_eq!(msgs_of(&h.at_victim), expected);
    assert!(h.at_attacker.iter().all(|e| e["hostname"] == "web.default"));
    assert!(h.api.objects("events", "evil").is_empty());
    assert_eq!(metric(h.http_port, ROUTE_ERRORS), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_drain_in_an_annotation_is_refused_and_no_file_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("containers")).unwrap();
    // Where the tenant would have logtrain write: a directory that exists.
    let target_dir = root.join("state");
    std::fs::create_dir_all(&target_dir).unwrap();
    let target = target_dir.join("checkpoints.json.tmp");
    let file_drain = format!("file://{}", target.display());
    let port = free_port();
    let _rs = tcp_receiver(&root.join("rsyslog"), port);
    let out = root.join("rsyslog/out.json");
    let network = format!("syslog+tcp://127.0.0.1:{port}");
    let api = KubeApi::start().await;
    let log = deployment_with_pod(
        &api,
        root,
        "default",
        "web",
        json!({ DRAINS: format!("{file_drain};{network}") }),
    );
    let http_port = free_port();
    // Checkpoints elsewhere: nothing of logtrain's own is in `state/`.
    let _lt = Logtrain(start_logtrain(
        &api,
        root,
        http_port,
        &[
            OPEN,
            ("CHECKPOINT_PATH", root.join("cp/checkpoints.json").to_str().unwrap()),
        ],
        Stdio::null(),
    ));
    wait_ready(http_port).await;
    write_lines(&log, "line", 100);
    // The annotation's network drain gets every line: they were routed.
    wait_until("the lines at the network drain", Duration::from_secs(10), || {
        msgs(&out).len() >= 100
    })
    .await;
    assert_eq!(msgs(&out), numbered("line", 100));
    wait_until("the Event", Duration::from_secs(5), || {
        !api.objects("events", "default").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!target.exists(), "{} was created", target.display());
    assert_eq!(std::fs::read_dir(&target_dir).unwrap().count(), 0);
    let events = api.objects("events", "default");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["reason"], "DrainNotAllowed");
    assert_eq!(events[0]["involvedObject"]["name"], "web");
    let msg = events[0]["message"].as_str().unwrap();
    assert!(
        msg.contains(&url_id(&file_drain)) && msg.contains("annotation"),
        "{msg}"
    );
    assert_eq!(metric(http_port, ROUTE_ERRORS), 1);
    let metrics = http_get(http_port, "/metrics").unwrap().1;
    assert!(
        !metrics.contains(&format!("drain=\"{}\"", id(&file_drain))),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_seeing_the_same_bad_annotation_create_one_event_between_them() {
    let dir = tempfile::tempdir().unwrap();
    let api = KubeApi::start().await;
    api.apply(object_in(
        "evil",
        "Deployment",
        "x",
        json!({ DRAINS: "gopher://x", HOSTNAME: "web.default" }),
    ));
    let mut nodes = Vec::new();
    for node in ["node-a", "node-b"] {
        let root = dir.path().join(node);
        std::fs::create_dir_all(root.join("containers")).unwrap();
        let port = free_port();
        let lt = Logtrain(start_logtrain(&api, &root, port, &[("NODE_NAME", node)], Stdio::null()));
        nodes.push((lt, port));
    }
    for (_, port) in &nodes {
        wait_ready(*port).await;
    }
    // Each node tries both Events; of each pair, the second create gets 409.
    wait_until("four creates", Duration::from_secs(10), || {
        api.requests()
            .iter()
            .filter(|r| r.starts_with("POST /api/v1/namespaces/evil/events"))
            .count()
            == 4
    })
    .await;
    wait_until("the node's answers counted", Duration::from_secs(5), || {
        let sum = |name: &str| nodes.iter().map(|(_, p)| metric(*p, name)).sum::<u64>();
        sum("logtrain_kubernetes_events_total") + sum("logtrain_kubernetes_events_existing_total") == 4
    })
    .await;
    let events = api.objects("events", "evil");
    let mut reasons: Vec<&str> = events.iter().map(|e| e["reason"].as_str().unwrap()).collect();
    reasons.sort();
    assert_eq!(reasons, ["BadDrainURL", "HostnameRefused"], "{events:#?}");
    assert_eq!(api.conflicts(), 2);
    let sum = |name: &str| nodes.iter().map(|(_, p)| metric(*p, name)).sum::<u64>();
    assert_eq!(sum("logtrain_kubernetes_events_total"), 2);
    assert_eq!(sum("logtrain_kubernetes_events_existing_total"), 2);
    assert_eq!(sum("logtrain_kubernetes_event_errors_total"), 0);
}

/// One rsyslog receiving on each of `ports`, writing what each port received
/// to `dir/out-<i>.json`.
fn receivers(dir: &Path, ports: &[u16]) -> Rsyslog {
    let mut body =
        format!("global(parser.escapeControlCharactersOnReceive=\"off\")\n{JSON_TEMPLATE}\nmodule(load=\"imtcp\")\n");
    for (i, p) in ports.iter().enumerate() {
        body.push_str(&format!(
            "ruleset(name=\"r{i}\") {{\n  action(type=\"omfile\" file=\"{}\" template=\"fields\" flushOnTXEnd=\"on\" asyncWriting=\"off\")\n}}\ninput(type=\"imtcp\" port=\"{p}\" ruleset=\"r{i}\")\n",
            dir.join(format!("out-{i}.json")).display()
        ));
    }
    Rsyslog::start(dir, &body, ports)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_over_the_cap_are_refused_and_told() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("containers")).unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let _rs = receivers(&root.join("rsyslog"), &ports);
    let out = |i: usize| root.join(format!("rsyslog/out-{i}.json"));
    let drains: Vec<String> = ports.iter().map(|p| format!("syslog+tcp://127.0.0.1:{p}")).collect();
    let api = KubeApi::start().await;
    let log = deployment_with_pod(&api, root, "default", "web", json!({ DRAINS: drains.join(";") }));
    let http_port = free_port();
    let _lt = Logtrain(start_logtrain(
        &api,
        root,
        http_port,
        &[OPEN, ("ANNOTATION_MAX_DRAINS", "2")],
        Stdio::null(),
    ));
    wait_ready(http_port).await;
    write_lines(&log, "line", 50);
    wait_until("the first two drains", Duration::from_secs(10), || {
        msgs(&out(0)).len() >= 50 && msgs(&out(1)).len() >= 50
    })
    .await;
    wait_until("the Event", Duration::from_secs(5), || {
        !api.objects("events", "default").is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(msgs(&out(0)), numbered("line", 50));
    assert_eq!(msgs(&out(1)), numbered("line", 50));
    assert!(msgs(&out(2)).is_empty(), "the third drain got lines");
    let events = api.objects("events", "default");
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0]["reason"], "TooManyDrains");
    assert_eq!(events[0]["involvedObject"]["name"], "web");
    let msg = events[0]["message"].as_str().unwrap();
    assert!(
        msg.contains(&url_id(&drains[2])) && msg.contains("ANNOTATION_MAX_DRAINS"),
        "{msg}"
    );
    assert_eq!(metric(http_port, ROUTE_ERRORS), 1);
    let metrics = http_get(http_port, "/metrics").unwrap().1;
    assert!(!metrics.contains(&format!("drain=\"{}\"", id(&drains[2]))), "{metrics}");
}
