//! Live tail against real processes: two logtrain binaries stand for two
//! nodes (a syslog TCP input each, a plain socket as the sender, a counting
//! syslog receiver as the route's drain), and `logtrain tail` / `logtrain
//! routes` run as the client binary. A stalled tail client costs the route
//! nothing and its stream tells of the drop; sessions are capped; the token is
//! enforced; the Go logtail `POST /tails` flow works; `/routes` shows drain ids,
//! never URLs; without `--endpoint` the client finds the pods through a
//! Kubernetes API (pod list and pod proxy) and streams through it.

use crate::support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use support::faults::{Binary, Node, Receiver, append, cri, metric_in};
use support::kube_api::KubeApi;
use support::wait_until;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HOST: &str = "web.default";

fn yaml(drains: &[String]) -> String {
    let list: Vec<String> = drains.iter().map(|d| format!("\"{d}\"")).collect();
    format!("routes:\n  - hostname: {HOST}\n    drains: [{}]\n", list.join(", "))
}

pub(crate) fn logtrain(dir: &std::path::Path, drains: &[String], env: &[(&str, &str)]) -> Binary {
    let mut all = vec![
        ("SYSLOG_TCP", "true"),
        ("SYSLOG_TCP_PORT", "0"),
        ("DRAIN_QUEUE_RECORDS", "200000"),
        ("DRAIN_QUEUE_BYTES", "268435456"),
        // These tests stand in for the operator; the default (token) is tested apart.
        ("TAIL_ACCESS", "open"),
    ];
    all.extend_from_slice(env);
    Binary::start(dir, &yaml(drains), &all)
}

pub(crate) fn syslog_tcp_port(bin: &Binary) -> u16 {
    bin.listener_port("syslog_tcp")
}

/// Sends `lines` for `HOST` to a syslog TCP input, newline-framed RFC 5424.
pub(crate) async fn send(port: u16, lines: impl IntoIterator<Item = String>) {
    send_as(port, HOST, lines).await
}

async fn send_as(port: u16, host: &str, lines: impl IntoIterator<Item = String>) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let mut buf = Vec::new();
    for l in lines {
        buf.extend_from_slice(format!("<14>1 2026-12-02T10:00:00Z {host} web - - - {l}\n").as_bytes());
        if buf.len() > 64 << 10 {
            s.write_all(&buf).await.unwrap();
            buf.clear();
        }
    }
    s.write_all(&buf).await.unwrap();
    s.shutdown().await.unwrap();
}

/// Sends a request and reads its status line and headers; the stream is left
/// open on the body.
async fn request(port: u16, head: &str, body: &str) -> (u16, String, TcpStream) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(
        format!(
            "{head}\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut got = Vec::new();
    let mut b = [0u8; 1];
    while !got.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut b).await.unwrap(), 1, "connection closed in the headers");
        got.push(b[0]);
    }
    let text = String::from_utf8(got).unwrap();
    let status = text[9..12].parse().unwrap();
    (status, text, s)
}

/// Reads from `s` until `want` holds for what was read, or `limit` passes.
async fn read_until(s: &mut TcpStream, limit: Duration, want: impl Fn(&str) -> bool) -> String {
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    let end = tokio::time::Instant::now() + limit;
    while !want(&String::from_utf8_lossy(&got)) {
        match tokio::time::timeout_at(end, s.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&chunk[..n]),
            _ => panic!("stream ended or timed out; read:\n{}", String::from_utf8_lossy(&got)),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// `logtrain tail`/`routes` as a child, its stdout collected line by line.
struct Client {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Client {
    fn start(args: &[String]) -> Client {
        Client::start_with(args, &[])
    }

    fn start_with(args: &[String], env: &[(&str, &str)]) -> Client {
        let mut child = Command::new(env!("CARGO_BIN_EXE_logtrain"))
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let out = child.stdout.take().unwrap();
        let l = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                l.lock().push(line);
            }
        });
        Client { child, lines }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn opened_tails(bin: &Binary) -> usize {
    bin.log().matches("Live tail opened.").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logtrain_tail_prints_every_line_of_both_nodes_while_they_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(false).await;
    let a = logtrain(&dir.path().join("a"), &[rx.url()], &[]);
    let b = logtrain(&dir.path().join("b"), &[rx.url()], &[]);
    let args: Vec<String> = ["tail", HOST, "--node-prefix", "--endpoint"]
        .iter()
        .map(|s| s.to_string())
        .chain([format!("http://127.0.0.1:{}", a.http)])
        .chain(["--endpoint".to_string(), format!("http://127.0.0.1:{}", b.http)])
        .collect();
    let client = Client::start(&args);
    wait_until("both streams open", Duration::from_secs(10), || {
        opened_tails(&a) == 1 && opened_tails(&b) == 1
    })
    .await;
    for round in 0..2 {
        send(syslog_tcp_port(&a), (0..50).map(|i| format!("r{round}-a-{i:03}"))).await;
        send(syslog_tcp_port(&b), (0..50).map(|i| format!("r{round}-b-{i:03}"))).await;
        let want = |l: &[String]| {
            (0..50).all(|i| {
                [("a", a.http), ("b", b.http)].iter().all(|(n, port)| {
                    let m = format!("r{round}-{n}-{i:03}");
                    l.iter()
                        .any(|x| x.ends_with(&m) && x.starts_with(&format!("[http://127.0.0.1:{port}] <14>1 ")))
                })
            })
        };
        wait_until(&format!("round {round} printed"), Duration::from_secs(10), || {
            want(&client.lines.lock())
        })
        .await;
    }
    // Both nodes routed every line to the drain too.
    wait_until("the drain got all 200", Duration::from_secs(10), || rx.count() == 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tail_client_costs_the_route_nothing_and_its_stream_tells_of_the_drop() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(false).await;
    let bin = logtrain(dir.path(), &[rx.url()], &[]);
    // A client with a tiny receive window that reads the headers, then stops.
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    sock.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], bin.http)).into())
        .unwrap();
    sock.set_nonblocking(true).unwrap();
    let mut s = TcpStream::from_std(sock.into()).unwrap();
    s.write_all(format!("GET /tail?hostname={HOST} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let head = read_until(&mut s, Duration::from_secs(5), |t| t.contains("\r\n\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // 10 MB of lines: far more than the socket buffers and the stream's buffer hold.
    let n = 40_000;
    let pad = "x".repeat(200);
    send(syslog_tcp_port(&bin), (0..n).map(|i| format!("stall-{i:06} {pad}"))).await;
    wait_until("the drain got every line", Duration::from_secs(60), || rx.count() == n).await;
    let dropped = metric_in(&bin.metrics(), "logtrain_tail_dropped_total");
    assert!(dropped > 0, "nothing was dropped from the stalled stream");
    assert_eq!(
        metric_in(&bin.metrics(), "logtrain_input_dropped_total{input=\"syslog_tcp\"}"),
        0
    );
    // Reading again, the client sees what it was sent and the notice of what was not:
    // every line is either in the stream or counted in a notice (hyper may take a
    // frame between two bursts, so the drops can be told in more than one notice).
    let seen = |t: &str| t.matches("stall-").count() as u64;
    let text = read_until(&mut s, Duration::from_secs(30), |t| {
        notices(t) == dropped && seen(t) + dropped == n as u64
    })
    .await;
    assert!(
        text.contains("stall-000000"),
        "the first lines were buffered, not dropped"
    );
    assert_eq!(metric_in(&bin.metrics(), "logtrain_tail_dropped_total"), dropped);
}

/// The lines the drop notices in `text` say were lost, summed.
fn notices(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| {
            l.split("logtrain: ")
                .nth(1)?
                .split(" lines dropped here")
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_33rd_stream_is_refused_with_503_and_a_closed_one_frees_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(false).await;
    let bin = logtrain(dir.path(), &[rx.url()], &[]);
    let get = format!("GET /tail?hostname={HOST} HTTP/1.1");
    let mut open = Vec::new();
    for _ in 0..32 {
        let (status, _, s) = request(bin.http, &get, "").await;
        assert_eq!(status, 200);
        open.push(s);
    }
    let (status, head, _) = request(bin.http, &get, "").await;
    assert_eq!(status, 503, "{head}");
    drop(open.pop());
    wait_until("a slot is free", Duration::from_secs(5), || {
        let rt = tokio::runtime::Handle::current();
        let port = bin.http;
        let get = get.clone();
        std::thread::spawn(move || rt.block_on(request(port, &get, "")).0)
            .join()
            .unwrap()
            == 200
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_without_a_token_nobody_may_tail_or_read_the_routes() {
    // A stream shows any hostname's lines: whoever reaches the port is not
    // trusted with that unless the operator says so.
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(false).await;
    let bin = logtrain(dir.path(), &[rx.url()], &[("TAIL_ACCESS", "token")]);
    for path in [format!("/tail?hostname={HOST}"), "/routes".into(), "/tails".into()] {
        let method = if path == "/tails" { "POST" } else { "GET" };
        let head = format!("{method} {path} HTTP/1.1\r\nAuthorization: Bearer anything");
        assert_eq!(request(bin.http, &head, "{}").await.0, 403, "{method} {path}");
    }
    assert_eq!(support::faults::http_get(bin.http, "/healthz"), "ok\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_required_for_streams_and_routes_when_set() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(false).await;
    let bin = logtrain(
        dir.path(),
        &[rx.url()],
        &[("HTTP_TOKEN", "t0ken"), ("TAIL_ACCESS", "token")],
    );
    for path in [format!("/tail?hostname={HOST}"), "/routes".into(), "/tails".into()] {
        let method = if path == "/tails" { "POST" } else { "GET" };
        let (status, _, _) = request(bin.http, &format!("{method} {path} HTTP/1.1"), "").await;
        assert_eq!(status, 401, "{method} {path}");
        let head = format!("{method} {path} HTTP/1.1\r\nAuthorization: Bearer wrong");
        assert_eq!(request(bin.http, &head, "").await.0, 401, "{method} {path}");
    }
    let head = format!("GET /tail?hostname={HOST} HTTP/1.1\r\nAuthorization: Bearer t0ken");
    assert_eq!(request(bin.http, &head, "").await.0, 200);
    // The client binary passes it.
    let out = Command::new(env!("CARGO_BIN_EXE_logtrain"))
        .args([
            "routes",
            "--endpoint",
            &format!("http://127.0.0.1:{}", bin.http),
            "--token",
            "t0ken",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_tails_answers_a_url_whose_get_streams_the_hostname() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(false).await;
    let bin = logtrain(dir.path(), &[rx.url()], &[]);
    let body = format!("{{\"hostname\": \"{HOST}\"}}");
    let (status, head, mut s) = request(
        bin.http,
        "POST /tails HTTP/1.1\r\nContent-Type: application/json",
        &body,
    )
    .await;
    assert_eq!(status, 201, "{head}");
    let json = read_until(&mut s, Duration::from_secs(5), |t| t.contains('}')).await;
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    let url = v["url"].as_str().unwrap();
    let path = url.strip_prefix(&format!("http://127.0.0.1:{}", bin.http)).unwrap();
    assert_eq!(path, format!("/tails/{}", v["id"].as_str().unwrap()));
    let (status, _, mut stream) = request(bin.http, &format!("GET {path} HTTP/1.1"), "").await;
    assert_eq!(status, 200);
    send(syslog_tcp_port(&bin), ["via-post-tails".to_string()]).await;
    read_until(&mut stream, Duration::from_secs(10), |t| t.contains("via-post-tails")).await;
    // A tail URL opens once; an unknown one is 404.
    assert_eq!(request(bin.http, &format!("GET {path} HTTP/1.1"), "").await.0, 404);
    assert_eq!(request(bin.http, "GET /tails/nope HTTP/1.1", "").await.0, 404);
    assert_eq!(request(bin.http, "POST /tails HTTP/1.1", "{}").await.0, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_post_tails_body_that_trickles_is_answered_408_within_the_idle_timeout() {
    // A request in flight keeps its connection from being evicted, so a body
    // sent a byte at a time must not hold it for longer than INPUT_IDLE_TIMEOUT.
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(false).await;
    let bin = logtrain(dir.path(), &[rx.url()], &[("INPUT_IDLE_TIMEOUT", "1")]);
    let mut c = TcpStream::connect(("127.0.0.1", bin.http)).await.unwrap();
    c.write_all(b"POST /tails HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 512];
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout(Duration::from_secs(5), c.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&chunk[..n]),
            other => panic!("no answer to a trickled body: {other:?}"),
        }
    }
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_shows_each_hostname_with_drain_ids_origins_and_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(false).await;
    let secret = "http://user:s3cret@127.0.0.1:9/logs".to_string();
    let bin = logtrain(dir.path(), &[rx.url(), secret.clone()], &[]);
    let body = support::faults::http_get(bin.http, "/routes");
    assert!(!body.contains("s3cret"), "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["routes"][0]["hostname"], HOST);
    assert_eq!(v["routes"][0]["origins"], serde_json::json!(["static"]));
    let ids = v["routes"][0]["drains"].as_array().unwrap();
    assert_eq!(ids.len(), 2, "{body}");
    for id in ids {
        assert!(v["drains"][id.as_str().unwrap()]["queued"].is_u64(), "{body}");
    }
    // A line makes the drain whose receiver is down fail: it says since when;
    // the healthy one says it is not failing.
    let (down, up) = (
        logtrain::drain::DrainSpec::parse(&secret).unwrap().id,
        logtrain::drain::DrainSpec::parse(&rx.url()).unwrap().id,
    );
    send(syslog_tcp_port(&bin), ["makes a drain fail".to_string()]).await;
    support::wait_until("the down drain failing", Duration::from_secs(10), || {
        let v: serde_json::Value = serde_json::from_str(&support::faults::http_get(bin.http, "/routes")).unwrap();
        v["drains"][&down]["failing_since"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
            && v["drains"][&up]["failing_since"].is_null()
            && v["drains"][&up]["sent"].as_u64() == Some(1)
    })
    .await;
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_logtrain"))
        .args(["routes", HOST, "--endpoint", &format!("http://127.0.0.1:{}", bin.http)])
        .args(["--endpoint", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "one node answered");
    assert!(table.starts_with("HOSTNAME"), "{table}");
    assert_eq!(table.lines().filter(|l| l.starts_with(HOST)).count(), 2, "{table}");
    assert!(!table.contains("s3cret"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("http://127.0.0.1:1: cannot connect"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_shows_container_log_lines_and_hostnames_without_a_route() {
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    let rx = Receiver::start(false).await;
    let containers = node.containers().display().to_string();
    let checkpoints = node.path("state/checkpoints.json").display().to_string();
    let env = [
        ("KUBERNETES", "true"),
        ("KUBERNETES_LOG_PATH", containers.as_str()),
        ("CHECKPOINT_PATH", checkpoints.as_str()),
    ];
    let bin = logtrain(&node.path("run"), &[rx.url()], &env);
    let get = |h: &str| format!("GET /tail?hostname={h}&match=%5Efrom- HTTP/1.1");
    let (status, _, mut web) = request(bin.http, &get(HOST), "").await;
    assert_eq!(status, 200);
    let (status, _, mut nobody) = request(bin.http, &get("nobody.default"), "").await;
    assert_eq!(status, 200);
    append(&log, &cri("from-the-container-log"));
    append(&log, &cri("filtered out by match"));
    read_until(&mut web, Duration::from_secs(10), |t| {
        t.contains("from-the-container-log")
    })
    .await;
    send_as(syslog_tcp_port(&bin), "nobody.default", ["from-nowhere".to_string()]).await;
    read_until(&mut nobody, Duration::from_secs(10), |t| t.contains("from-nowhere")).await;
    send(syslog_tcp_port(&bin), ["from-syslog".to_string()]).await;
    let text = read_until(&mut web, Duration::from_secs(10), |t| t.contains("from-syslog")).await;
    assert!(!text.contains("filtered out"), "{text}");
}

/// The test API server with logtrain's pods in namespace `logtrain` (two
/// running, reached through the pod network at `pods`' ports, and one still
/// pending), and a kubeconfig for it in `dir`.
async fn api_server(dir: &std::path::Path, pods: &[(&str, u16)]) -> (KubeApi, std::path::PathBuf) {
    let api = KubeApi::start().await;
    let pod = |name: &str, phase: &str| {
        serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "logtrain", "labels": {"app.kubernetes.io/name": "logtrain"}},
            "status": {"phase": phase, "podIP": "10.0.0.1"},
        })
    };
    for (name, port) in pods {
        api.apply(pod(name, "Running"));
        api.route_pod(name, 9000, ([127, 0, 0, 1], *port).into());
    }
    api.apply(pod("logtrain-starting", "Pending"));
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: t, cluster: {{server: \"{}\"}}}}]\n\
             users: [{{name: u, user: {{}}}}]\ncontexts: [{{name: c, context: {{cluster: t, user: u, namespace: logtrain}}}}]\n\
             current-context: c\n",
            api.url()
        ),
    )
    .unwrap();
    (api, kubeconfig)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_endpoint_every_logtrain_pod_is_found_and_reached_through_the_pod_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(false).await;
    let a = logtrain(&dir.path().join("a"), &[rx.url()], &[]);
    let b = logtrain(&dir.path().join("b"), &[rx.url()], &[]);
    let (api, kubeconfig) = api_server(dir.path(), &[("logtrain-a", a.http), ("logtrain-b", b.http)]).await;
    let env = [("KUBECONFIG", kubeconfig.to_str().unwrap())];
    let args: Vec<String> = ["tail", HOST, "--node-prefix"].iter().map(|s| s.to_string()).collect();
    let client = Client::start_with(&args, &env);
    wait_until("both streams open", Duration::from_secs(10), || {
        opened_tails(&a) == 1 && opened_tails(&b) == 1
    })
    .await;
    send(syslog_tcp_port(&a), ["via-proxy-a".to_string()]).await;
    send(syslog_tcp_port(&b), ["via-proxy-b".to_string()]).await;
    wait_until("both lines printed", Duration::from_secs(10), || {
        let l = client.lines.lock();
        ["a", "b"].iter().all(|n| {
            l.iter()
                .any(|x| x.starts_with(&format!("[pod/logtrain-{n}] <14>1 ")) && x.ends_with(&format!("via-proxy-{n}")))
        })
    })
    .await;
    assert!(
        api.requests()
            .iter()
            .any(|u| u
                .starts_with("GET /api/v1/namespaces/logtrain/pods/logtrain-a:9000/proxy/tail?hostname=web.default")),
        "{:?}",
        api.requests()
    );
    assert!(
        api.requests()
            .iter()
            .any(|u| u.contains("/pods?") && u.contains("labelSelector=app.kubernetes.io%2Fname%3Dlogtrain")),
        "{:?}",
        api.requests()
    );
    let out = Command::new(env!("CARGO_BIN_EXE_logtrain"))
        .args(["routes"])
        .env_clear()
        .envs(env)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for n in ["a", "b"] {
        assert!(
            table
                .lines()
                .any(|l| l.starts_with(HOST) && l.contains(&format!("pod/logtrain-{n}"))),
            "{table}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_stream_ends_at_sigterm_and_never_holds_back_the_exit() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(false).await;
    let mut bin = logtrain(dir.path(), &[rx.url()], &[]);
    let (status, _, mut s) = request(bin.http, &format!("GET /tail?hostname={HOST} HTTP/1.1"), "").await;
    assert_eq!(status, 200);
    bin.signal("TERM");
    let (code, took) = bin.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{}", bin.log());
    assert!(took < Duration::from_secs(5), "exit took {took:?}");
    // The stream was ended, not cut: the chunked body's last chunk arrived.
    read_until(&mut s, Duration::from_secs(5), |t| t.ends_with("0\r\n\r\n")).await;
}
