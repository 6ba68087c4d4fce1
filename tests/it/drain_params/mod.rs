//! Per-drain processing declared in the drain URL, end to end: each
//! parameter arriving through each datasource (the static routes here,
//! a Postgres row in `postgres`, an annotation in `kubernetes`), applied to
//! container logs tailed from real files and to records of push inputs.
//! What a filter or a rate leaves out never holds the tailer's checkpoint
//! back; `parse=json` and the `kubernetes` object are checked against the
//! `_bulk` test server and an HTTP receiver, `sd=kubernetes` against rsyslog.

use crate::support;

mod kubernetes;
mod postgres;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use logtrain::app::App;
use logtrain::config::{Config, StaticRoute};
use logtrain::drain::DrainSpec;
use support::es_bulk::EsBulk;
use support::{read_lines, wait_until};

const POD: &str = "web-7d9f8c6b5-x2x4z";
const NODE: &str = "node-a";

/// A node's log folders (`support::faults::Node`), with the configuration
/// and checkpoints of a logtrain tailing them in-process.
pub(super) struct Node(support::faults::Node);

impl std::ops::Deref for Node {
    type Target = support::faults::Node;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Node {
    pub fn new() -> Node {
        Node(support::faults::Node::new())
    }

    pub fn out(&self, name: &str) -> PathBuf {
        self.path("out").join(name)
    }

    pub fn checkpoints(&self) -> PathBuf {
        self.path("state/checkpoints.json")
    }

    /// Tailing this node's logs, routing `web.default` to `drains`.
    pub fn config(&self, drains: &[String]) -> Config {
        Config {
            kubernetes: true,
            http_port: 0,
            listen_address: "127.0.0.1".into(),
            kubernetes_log_path: self.containers(),
            checkpoint_path: self.checkpoints(),
            node_name: Some(NODE.into()),
            shutdown_timeout: 5,
            routes: vec![StaticRoute {
                hostname: "web.default".into(),
                drains: drains.to_vec(),
            }],
            // Disk buffers in a temporary folder of their own.
            ..crate::support::config()
        }
    }

    /// The checkpointed offset of the (only) file.
    pub fn checkpointed(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.checkpoints()).ok()?;
        serde_json::from_str::<serde_json::Value>(&text).ok()?["files"][0]["offset"].as_u64()
    }
}

pub(super) fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

pub(super) fn cri(stream: &str, msg: &str) -> String {
    format!("2026-11-22T10:00:00.123456789Z {stream} F {msg}\n")
}

pub(super) async fn start(config: Config) -> App {
    assert!(
        logtrain::check::problems(&config).is_empty(),
        "{:?}",
        logtrain::check::problems(&config)
    );
    let app = App::start(config);
    app.wait_ready().await;
    logtrain::input::start(&app).await.unwrap();
    app
}

/// The message part of RFC 5424 lines (after the header and SD).
pub(super) fn messages(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l.splitn(8, ' ').nth(7).unwrap_or("").to_string())
        .collect()
}

pub(super) fn id(url: &str) -> String {
    DrainSpec::parse(url).unwrap().id
}

fn file_url(node: &Node, name: &str, query: &str) -> String {
    format!("file://{}{query}", node.out(name).display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_drain_of_a_static_route_gets_only_what_its_parameters_ask_for() {
    let node = Node::new();
    let log = node.pod("default", POD, "web");
    let all = file_url(&node, "all.log", "");
    let errors = file_url(&node, "err.log", "?severity=err");
    let gets = file_url(&node, "get.log", "?match=%5EGET%20&exclude=healthz");
    let stderr = file_url(&node, "stderr.log", "?stream=stderr");
    let sd = file_url(&node, "sd.log", "?sd=kubernetes&labels=app");
    let app = start(node.config(&[all.clone(), errors.clone(), gets.clone(), stderr.clone(), sd.clone()])).await;
    for (stream, msg) in [
        ("stdout", "GET /users"),
        ("stdout", "GET /healthz"),
        ("stderr", "boom"),
        ("stdout", "POST /x"),
        ("stderr", "GET /from-stderr"),
    ] {
        append(&log, &cri(stream, msg));
    }
    wait_until("every line at the plain drain", Duration::from_secs(10), || {
        read_lines(&node.out("all.log")).len() == 5
    })
    .await;
    let size = std::fs::metadata(&log).unwrap().len();
    wait_until("the checkpoint at the end of the file", Duration::from_secs(10), || {
        node.checkpointed() == Some(size)
    })
    .await;
    let got = |f: &str| messages(&read_lines(&node.out(f)));
    // TAIL_STDERR_SEVERITY is err, TAIL_STDOUT_SEVERITY info.
    assert_eq!(got("err.log"), ["boom", "GET /from-stderr"]);
    assert_eq!(got("get.log"), ["GET /users", "GET /from-stderr"]);
    assert_eq!(got("stderr.log"), ["boom", "GET /from-stderr"]);
    // Without the Kubernetes datasource: what the log file's name and NODE_NAME say.
    let element = format!(r#" [kubernetes@32473 namespace="default" pod="{POD}" container="web" node="{NODE}"] "#);
    let sd_lines = read_lines(&node.out("sd.log"));
    assert_eq!(sd_lines.len(), 5);
    assert!(sd_lines.iter().all(|l| l.contains(&element)), "{sd_lines:#?}");
    assert!(
        read_lines(&node.out("all.log"))
            .iter()
            .all(|l| !l.contains("kubernetes@")),
        "a syslog line is unchanged without sd="
    );
    let metric = support::drains::metric;
    for url in [&errors, &gets, &stderr] {
        assert_eq!(metric("logtrain_drain_filtered_total", &id(url)), 3, "{}", id(url));
        assert_eq!(metric("logtrain_drain_queued_total", &id(url)), 2, "{}", id(url));
    }
    assert_eq!(metric("logtrain_drain_filtered_total", &id(&all)), 0);
    assert_eq!(id(&all), all, "a local drain without parameters keeps its name");
    assert!(id(&gets).ends_with(" params=match,exclude"), "{}", id(&gets));
    app.shutdown().await;
}

#[tokio::test]
async fn logtrain_check_refuses_a_static_route_with_a_bad_pattern_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("routes.yaml");
    let check = |yaml: &str| {
        std::fs::write(&cfg, yaml).unwrap();
        Command::new(env!("CARGO_BIN_EXE_logtrain"))
            .args(["check", "--config"])
            .arg(&cfg)
            .output()
            .unwrap()
    };
    let out = check(
        "routes:\n  - hostname: web.default\n    drains: [\"syslog+tcp://h:514?match=(unclosed\", \"https://h/x?sd=kubernetes\", \"syslog://h?rate=0\"]\n",
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("parameter match= is not a usable regular expression (syntax error: unclosed group)"),
        "{err}"
    );
    assert!(err.contains("sd=kubernetes is for syslog drains"), "{err}");
    assert!(err.contains("rate= takes records per second from 1"), "{err}");
    let out = check(
        "routes:\n  - hostname: web.default\n    drains: [\"syslog+tcp://h:514?severity=warning&match=%5EGET&stream=stderr&rate=100&sd=kubernetes&labels=app\", \"https://h/x?parse=json&labels=app,team\"]\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `parse=json` against the `_bulk` test server: a JSON app log becomes
/// fields of its document, a plain line does not; both carry the
/// `kubernetes` object with the right pod, container and node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parse_json_makes_a_json_app_log_fields_of_its_document_and_leaves_a_plain_line() {
    let es = EsBulk::start().await;
    let node = Node::new();
    let log = node.pod("default", POD, "api");
    let url = format!("es+http://127.0.0.1:{}/?index=app&linger_ms=50&parse=json", es.port);
    let app = start(node.config(&[url])).await;
    let json_line = r#"{"level":"warn","user":{"id":7},"msg":"slow","message":"theirs","hostname":"spoof"}"#;
    append(&log, &cri("stdout", json_line));
    append(&log, &cri("stdout", "a plain line"));
    wait_until("2 documents", Duration::from_secs(10), || es.docs().len() == 2).await;
    app.shutdown().await;
    let docs: Vec<serde_json::Value> = es.docs().into_values().collect();
    let doc = |m: &str| {
        docs.iter()
            .find(|d| d["message"] == m)
            .unwrap_or_else(|| panic!("{m}: {docs:#?}"))
    };
    let parsed = doc(json_line);
    assert_eq!(parsed["level"], "warn");
    assert_eq!(parsed["user"]["id"], 7);
    assert_eq!(parsed["msg"], "slow");
    assert_eq!(parsed["hostname"], "web.default", "a reserved field keeps its meaning");
    let plain = doc("a plain line");
    assert!(plain.get("level").is_none() && plain.get("msg").is_none(), "{plain}");
    for d in [parsed, plain] {
        let k = &d["kubernetes"];
        assert_eq!(k["namespace"], "default", "{d}");
        assert_eq!(k["pod"], POD);
        assert_eq!(k["container"], "api");
        assert_eq!(k["node"], NODE);
    }
}

/// `rate=50` under ten times that (500 records a second for two seconds):
/// the drain gets its burst and then its rate, the rest is counted and told
/// to the drain once, and the tailer's checkpoint reaches the end of the file
/// all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_holds_a_drain_at_its_rate_under_a_tenfold_burst_and_the_checkpoint_advances() {
    let node = Node::new();
    let log = node.pod("default", POD, "web");
    let all = file_url(&node, "all.log", "");
    let limited = file_url(&node, "limited.log", "?rate=50");
    let app = start(node.config(&[all, limited.clone()])).await;
    let started = Instant::now();
    let mut written = 0;
    for _ in 0..10 {
        let chunk: String = (0..100)
            .map(|i| cri("stdout", &format!("line {}", written + i)))
            .collect();
        append(&log, &chunk);
        written += 100;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_until("every line at the plain drain", Duration::from_secs(10), || {
        read_lines(&node.out("all.log")).len() == written
    })
    .await;
    let elapsed = started.elapsed().as_secs_f64();
    let size = std::fs::metadata(&log).unwrap().len();
    wait_until("the checkpoint at the end of the file", Duration::from_secs(10), || {
        node.checkpointed() == Some(size)
    })
    .await;
    let delivered = read_lines(&node.out("limited.log")).len();
    let most = 50 + (50.0 * elapsed).ceil() as usize;
    eprintln!("rate=50 under 500/s for {elapsed:.2} s: {delivered} delivered (at most {most})");
    assert!(
        (100..=most).contains(&delivered),
        "{delivered} delivered in {elapsed:.2} s"
    );
    let metric = support::drains::metric;
    let limited_id = id(&limited);
    let refused = metric("logtrain_drain_rate_limited_total", &limited_id);
    assert_eq!(
        refused as usize + delivered,
        written,
        "each record delivered or counted"
    );

    // A quiet second ends the episode; the next record brings the notice.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    append(&log, &cri("stdout", "after the burst"));
    let notice = format!("Rate limit (rate=50): {refused} messages dropped since");
    wait_until("the notice", Duration::from_secs(10), || {
        read_lines(&node.out("limited.log")).iter().any(|l| l.contains(&notice))
    })
    .await;
    let lines = read_lines(&node.out("limited.log"));
    assert_eq!(
        lines.iter().filter(|l| l.contains("Rate limit")).count(),
        1,
        "told once"
    );
    assert!(lines.iter().any(|l| l.ends_with("after the burst")));
    app.shutdown().await;
}
