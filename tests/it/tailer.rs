//! The container log tailer against real files written and rotated the way
//! kubelet does: CRI and docker lines, partial lines, rotation by rename and by
//! truncation, restarts from the checkpoint (clean and `kill -9`), hostnames from
//! the pod directory, and hostile lines. Into Elasticsearch (the `_bulk` test
//! server): records split at the size limit and interleaved partial lines are
//! each stored once, and a restart reading lines again sends the same ids.

use crate::support;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use logtrain::app::App;
use logtrain::config::{Config, StaticRoute};
use logtrain::datasource::pods::{PodKey, PodMeta};
use serde_json::Value;
use support::es_bulk::{BulkRequest, EsBulk};
use support::{read_lines, wait_until};

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A node's log folders: `containers/` holds links into `pods/`.
struct Node {
    root: tempfile::TempDir,
}

impl Node {
    fn new() -> Node {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("containers")).unwrap();
        std::fs::create_dir_all(root.path().join("out")).unwrap();
        Node { root }
    }
    fn containers(&self) -> PathBuf {
        self.root.path().join("containers")
    }
    fn out(&self, name: &str) -> PathBuf {
        self.root.path().join("out").join(name)
    }
    /// Creates the pod's log folder and the link; returns the real `0.log` path.
    fn pod(&self, ns: &str, pod: &str, container: &str) -> PathBuf {
        let dir = self
            .root
            .path()
            .join("pods")
            .join(format!("{ns}_{pod}_uid"))
            .join(container);
        std::fs::create_dir_all(&dir).unwrap();
        let log = dir.join("0.log");
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        std::os::unix::fs::symlink(&log, self.containers().join(format!("{pod}_{ns}_{container}-{ID}.log"))).unwrap();
        log
    }
    fn config(&self, routes: &[(&str, &str)]) -> Config {
        Config {
            kubernetes: true,
            http_port: 0,
            listen_address: "127.0.0.1".into(),
            kubernetes_log_path: self.containers(),
            checkpoint_path: self.root.path().join("state/checkpoints.json"),
            shutdown_timeout: 5,
            routes: routes
                .iter()
                .map(|(h, f)| StaticRoute {
                    hostname: h.to_string(),
                    drains: vec![format!("file://{}", self.out(f).display())],
                })
                .collect(),
            ..crate::support::config()
        }
    }
}

impl Node {
    /// A configuration routing `host` to the drain at `url` only.
    fn config_to(&self, host: &str, url: &str) -> Config {
        Config {
            routes: vec![StaticRoute {
                hostname: host.to_string(),
                drains: vec![url.to_string()],
            }],
            ..self.config(&[])
        }
    }
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn cri(stream: &str, tag: &str, msg: &str) -> String {
    format!("2026-11-22T10:00:00.123456789Z {stream} {tag} {msg}\n")
}

/// `msg` as containerd writes a long line: `P` lines of at most 16 KiB, the
/// last one `F` when `ends` (else the line is still being written).
fn cri_partials(stream: &str, msg: &str, ends: bool) -> String {
    let parts: Vec<&str> = msg
        .as_bytes()
        .chunks(16 << 10)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        let tag = if ends && i + 1 == parts.len() { "F" } else { "P" };
        out.push_str(&cri(stream, tag, part));
    }
    out
}

/// `len` bytes of numbered words, so any piece of it shows where it belongs.
fn pattern(len: usize) -> String {
    let mut s = String::with_capacity(len + 8);
    let mut i = 0;
    while s.len() < len {
        s.push_str(&format!("{i:07} "));
        i += 1;
    }
    s.truncate(len);
    s
}

/// The documents an Elasticsearch server was asked to store in `reqs`, in
/// order: (index, id, item status) of each action.
fn bulk_items(reqs: &[BulkRequest]) -> Vec<(String, String, u16)> {
    reqs.iter()
        .filter(|r| r.status == 200)
        .flat_map(|r| r.actions.iter().zip(&r.item_statuses))
        .map(|((_, index, id), &status)| (index.clone(), id.clone(), status))
        .collect()
}

/// The message of every stored document, in the order `reqs` first sent them.
fn stored_messages(es: &EsBulk, reqs: &[BulkRequest]) -> Vec<String> {
    let docs = es.docs();
    bulk_items(reqs)
        .iter()
        .filter(|(_, _, status)| *status == 201)
        .map(|(index, id, _)| {
            docs[&(index.clone(), id.clone())]["message"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

/// The message part of file-drain lines (after the RFC 5424 header).
fn messages(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(|l| l.splitn(8, ' ').nth(7).unwrap_or("").to_string())
        .collect()
}

async fn start(config: Config) -> App {
    let app = App::start(config);
    app.wait_ready().await;
    logtrain::input::start(&app).await.unwrap();
    app
}

#[tokio::test]
async fn cri_and_docker_lines_reach_their_routes_whole_and_in_order() {
    let node = Node::new();
    let web = node.pod("default", "web-7d9f8c6b5-x2x4z", "web");
    let api = node.pod("prod", "api-5c4b9d7f8-q8w2e", "api");
    append(&web, &cri("stdout", "F", "first"));
    append(&web, &cri("stdout", "P", "part one, "));
    append(&web, &cri("stderr", "F", "an error"));
    append(&web, &cri("stdout", "F", "part two"));
    append(
        &api,
        "{\"log\":\"docker line\\n\",\"stream\":\"stdout\",\"time\":\"2026-11-22T10:00:00.5Z\"}\n",
    );
    append(
        &api,
        "{\"log\":\"split \",\"stream\":\"stderr\",\"time\":\"2026-11-22T10:00:00.5Z\"}\n",
    );
    append(
        &api,
        "{\"log\":\"docker partial\\n\",\"stream\":\"stderr\",\"time\":\"2026-11-22T10:00:00.5Z\"}\n",
    );
    append(&api, "not a container log line at all\n");
    let app = start(node.config(&[("web.default", "web.log"), ("api.prod", "api.log")])).await;
    wait_until("web lines", Duration::from_secs(10), || {
        read_lines(&node.out("web.log")).len() == 3
    })
    .await;
    wait_until("api lines", Duration::from_secs(10), || {
        read_lines(&node.out("api.log")).len() == 3
    })
    .await;
    // Lines written after start follow.
    for i in 0..100 {
        append(&web, &cri("stdout", "F", &format!("later {i}")));
    }
    wait_until("later lines", Duration::from_secs(10), || {
        read_lines(&node.out("web.log")).len() == 103
    })
    .await;
    let w = read_lines(&node.out("web.log"));
    assert_eq!(&messages(&w)[..3], &["first", "an error", "part one, part two"]);
    assert!(
        w[0].starts_with("<14>1 2026-11-22T10:00:00.123456Z web.default web-7d9f8c6b5-x2x4z "),
        "{}",
        w[0]
    );
    assert!(w[1].starts_with("<11>1 "), "stderr is error severity: {}", w[1]);
    assert_eq!(
        messages(&w)[3..],
        (0..100).map(|i| format!("later {i}")).collect::<Vec<_>>()
    );
    let a = read_lines(&node.out("api.log"));
    assert_eq!(
        messages(&a),
        vec!["docker line", "split docker partial", "not a container log line at all"]
    );
    assert!(a[0].contains(" api.prod api-5c4b9d7f8-q8w2e "));
    let report = app.shutdown().await;
    assert!(report.unflushed.is_empty());
    // Positions were saved on shutdown.
    let cp = std::fs::read_to_string(node.root.path().join("state/checkpoints.json")).unwrap();
    assert!(cp.contains("\"version\": 1"), "{cp}");
}

#[tokio::test]
async fn the_pod_directory_names_records_and_changes_are_followed() {
    let node = Node::new();
    let log = node.pod("default", "web-7d9f8c6b5-x2x4z", "web");
    let app = start(node.config(&[("custom.host", "custom.log"), ("web.default", "web.log")])).await;
    append(&log, &cri("stdout", "F", "before"));
    wait_until("fallback naming", Duration::from_secs(10), || {
        read_lines(&node.out("web.log")).len() == 1
    })
    .await;
    let mut m = HashMap::new();
    m.insert(
        PodKey::new("default", "web-7d9f8c6b5-x2x4z"),
        Arc::new(PodMeta {
            hostname: "custom.host".into(),
            tag: "web.x2x4z".into(),
            ..PodMeta::default()
        }),
    );
    app.pods.replace(m);
    append(&log, &cri("stdout", "F", "after"));
    wait_until("annotated naming", Duration::from_secs(10), || {
        read_lines(&node.out("custom.log")).len() == 1
    })
    .await;
    assert!(read_lines(&node.out("custom.log"))[0].contains(" custom.host web.x2x4z - - - after"));
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_by_rename_under_load_loses_nothing() {
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    let app = start(node.config(&[("web.default", "web.log")])).await;
    let total = 20_000;
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            for i in 0..total {
                writeln!(f, "2026-11-22T10:00:00.000000001Z stdout F line {i}").unwrap();
                if i % 500 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                if i % 2000 == 1999 {
                    // kubelet: rename the live file away, start a new one.
                    std::fs::rename(&log, log.with_extension(format!("log.20261122-{i:06}"))).unwrap();
                    f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&log)
                        .unwrap();
                }
            }
        })
    };
    tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    let enough = || read_lines(&node.out("web.log")).len() >= total;
    for _ in 0..300 {
        if enough() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let n = read_lines(&node.out("web.log")).len();
    let got = messages(&read_lines(&node.out("web.log")));
    let missing: Vec<usize> = (0..total)
        .filter(|i| !got.contains(&format!("line {i}")))
        .take(5)
        .collect();
    assert_eq!(n, total, "first missing: {missing:?}");
    let got = messages(&read_lines(&node.out("web.log")));
    assert_eq!(got, (0..total).map(|i| format!("line {i}")).collect::<Vec<_>>());
    app.shutdown().await;
}

#[tokio::test]
async fn truncation_in_place_is_detected_and_new_lines_follow() {
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    let app = start(node.config(&[("web.default", "web.log")])).await;
    for i in 0..500 {
        append(&log, &cri("stdout", "F", &format!("old {i}")));
    }
    wait_until("old lines", Duration::from_secs(10), || {
        read_lines(&node.out("web.log")).len() == 500
    })
    .await;
    // copytruncate: the file is emptied in place and written again.
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&log)
        .unwrap();
    for i in 0..10 {
        append(&log, &cri("stdout", "F", &format!("new {i}")));
    }
    wait_until("new lines", Duration::from_secs(10), || {
        read_lines(&node.out("web.log")).len() == 510
    })
    .await;
    let got = messages(&read_lines(&node.out("web.log")));
    assert_eq!(got[500..], (0..10).map(|i| format!("new {i}")).collect::<Vec<_>>());
    app.shutdown().await;
}

#[tokio::test]
async fn truncation_refilled_past_the_old_end_before_a_look_is_detected() {
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    let app = start(node.config(&[("web.default", "web.log")])).await;
    for round in 0..5 {
        let before = read_lines(&node.out("web.log")).len();
        append(&log, &cri("stdout", "F", &format!("old {round}")));
        wait_until("old line", Duration::from_secs(10), || {
            read_lines(&node.out("web.log")).len() == before + 1
        })
        .await;
        // Emptied and at once written well past where the tailer stands, in one
        // write: by the time it looks, the file is longer than before.
        let n = 200 * (round + 1);
        let mut text = String::new();
        for i in 0..n {
            text.push_str(&cri("stdout", "F", &format!("new {round} {i}")));
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(&log)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
        drop(f);
        wait_until("new lines", Duration::from_secs(10), || {
            read_lines(&node.out("web.log")).len() >= before + 1 + n
        })
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let got = messages(&read_lines(&node.out("web.log")));
        let mut want = vec![format!("old {round}")];
        want.extend((0..n).map(|i| format!("new {round} {i}")));
        assert_eq!(got[before..], want[..], "round {round}");
    }
    app.shutdown().await;
}

#[tokio::test]
async fn a_restart_resumes_from_the_checkpoint_without_loss_or_duplicates() {
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    for i in 0..1000 {
        append(&log, &cri("stdout", "F", &format!("line {i}")));
    }
    let app = start(node.config(&[("web.default", "web.log")])).await;
    wait_until("first run", Duration::from_secs(10), || {
        read_lines(&node.out("web.log")).len() == 1000
    })
    .await;
    app.shutdown().await;
    // Written while logtrain is down.
    for i in 1000..1500 {
        append(&log, &cri("stdout", "F", &format!("line {i}")));
    }
    let app = start(node.config(&[("web.default", "web.log")])).await;
    wait_until("second run", Duration::from_secs(10), || {
        read_lines(&node.out("web.log")).len() >= 1500
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = messages(&read_lines(&node.out("web.log")));
    assert_eq!(got, (0..1500).map(|i| format!("line {i}")).collect::<Vec<_>>());
    app.shutdown().await;
}

#[tokio::test]
async fn hostile_lines_are_bounded_and_counted() {
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    let mut cfg = node.config(&[("web.default", "web.log")]);
    cfg.tail_max_record_bytes = 4096;
    let app = start(cfg).await;
    // Partial lines that never end within the limit, a 3 MiB line without a
    // newline, invalid UTF-8, then a normal line.
    for _ in 0..5 {
        append(&log, &cri("stdout", "P", &"p".repeat(1000)));
    }
    append(&log, &cri("stdout", "F", "end"));
    append(&log, &"x".repeat(3 << 20));
    append(&log, "\n");
    {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(b"2026-11-22T10:00:00Z stdout F bad \xff\xfe bytes\n")
            .unwrap();
    }
    append(&log, &cri("stdout", "F", "still working"));
    wait_until("all records", Duration::from_secs(10), || {
        read_lines(&node.out("web.log"))
            .last()
            .is_some_and(|l| l.ends_with("still working"))
    })
    .await;
    let raw = std::fs::read(node.out("web.log")).unwrap();
    let lines: Vec<&[u8]> = raw.split(|&c| c == b'\n').filter(|l| !l.is_empty()).collect();
    // 5001 bytes of partials → split at 4096; the endless line → one truncated record.
    let bodies: Vec<usize> = lines
        .iter()
        .map(|l| l.splitn(8, |&c| c == b' ').nth(7).map_or(0, |m| m.len()))
        .collect();
    assert_eq!(bodies[0], 4096);
    assert_eq!(bodies[1], 5003 - 4096);
    assert_eq!(bodies[2], 4096);
    assert!(lines[3].ends_with(b"bad \xff\xfe bytes"));
    assert_eq!(lines.len(), 5);
    let m = logtrain::telemetry::render();
    assert!(m.contains("logtrain_tail_split_records_total"), "{m}");
    app.shutdown().await;
}

/// The backlog limits apply to files nobody has read: a file without a
/// checkpoint starts at most `TAIL_MAX_BACKLOG_BYTES` back (at the next whole
/// line) and not at all when last written before `TAIL_MAX_BACKLOG_AGE`; a file
/// with a checkpoint is read on from it however far it grew meanwhile.
#[tokio::test]
async fn backlog_limits_spare_checkpointed_files() {
    let node = Node::new();
    let kept = node.pod("default", "kept-1-a", "app");
    let config = || Config {
        tail_max_backlog_bytes: 4096,
        tail_max_backlog_age: 3600,
        ..node.config(&[
            ("big.default", "big.log"),
            ("old.default", "old.log"),
            ("kept.default", "kept.log"),
        ])
    };
    // `kept` is read once, so it has a checkpoint.
    append(&kept, &cri("stdout", "F", "kept 0"));
    let app = start(config()).await;
    wait_until("first run", Duration::from_secs(10), || {
        read_lines(&node.out("kept.log")).len() == 1
    })
    .await;
    app.shutdown().await;
    // While logtrain is down: `kept` grows far past the byte limit, `big` is
    // new and as large, `old` is new but was last written two hours ago.
    let big = node.pod("default", "big-1-a", "app");
    let old = node.pod("default", "old-1-a", "app");
    let line = |tag: &str, i: usize| cri("stdout", "F", &format!("{tag} {i:04} {}", "x".repeat(100)));
    let mut text = String::new();
    for i in 1..200 {
        text.push_str(&line("kept", i));
    }
    append(&kept, &text);
    let mut text = String::new();
    for i in 0..200 {
        text.push_str(&line("big", i));
    }
    append(&big, &text);
    append(&old, &cri("stdout", "F", "old 0"));
    let f = std::fs::File::options().append(true).open(&old).unwrap();
    f.set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    drop(f);

    let app = start(config()).await;
    wait_until("the checkpointed file read on", Duration::from_secs(10), || {
        read_lines(&node.out("kept.log")).len() >= 200
    })
    .await;
    wait_until("the new file's last lines", Duration::from_secs(10), || {
        messages(&read_lines(&node.out("big.log")))
            .last()
            .is_some_and(|m| m.starts_with("big 0199"))
    })
    .await;
    append(&old, &cri("stdout", "F", "old 1"));
    wait_until("the old file's new line", Duration::from_secs(10), || {
        !read_lines(&node.out("old.log")).is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Every line past the checkpoint, none cut by the byte limit.
    let kept_msgs = messages(&read_lines(&node.out("kept.log")));
    assert_eq!(kept_msgs.len(), 200);
    assert!(
        kept_msgs[1..]
            .iter()
            .zip(1..)
            .all(|(m, i)| m.starts_with(&format!("kept {i:04}")))
    );
    // The new file: only the last 4096 bytes, starting at a whole line.
    let big_msgs = messages(&read_lines(&node.out("big.log")));
    let line_len = line("big", 0).len();
    assert_eq!(big_msgs.len(), 4096 / line_len, "first: {:?}", big_msgs.first());
    let first: usize = big_msgs[0][4..8].parse().unwrap();
    assert_eq!(first, 200 - big_msgs.len());
    // The stale file: its old line skipped, the new one sent.
    assert_eq!(messages(&read_lines(&node.out("old.log"))), ["old 1"]);
    app.shutdown().await;
}

/// A 600 KiB line (containerd's 16 KiB `P` lines, then `F`) with the default
/// `TAIL_MAX_RECORD_BYTES` of 256 KiB becomes three records: each is its own
/// document (three ids), none taken for another (no 409).
#[tokio::test]
async fn a_line_split_at_the_record_limit_is_stored_in_elasticsearch_piece_by_piece() {
    let es = EsBulk::start().await;
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    let url = format!("es+http://127.0.0.1:{}/?index=tail&linger_ms=100", es.port);
    let config = node.config_to("web.default", &url);
    assert_eq!(config.tail_max_record_bytes, 256 << 10, "the default limit");
    let app = start(config).await;
    let long = pattern(600 << 10);
    append(&log, &cri("stdout", "F", "before"));
    append(&log, &cri_partials("stdout", &long, true));
    append(&log, &cri("stdout", "F", "after"));
    wait_until("5 documents", Duration::from_secs(15), || es.docs().len() == 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.shutdown().await;

    let reqs = es.requests();
    let items = bulk_items(&reqs);
    assert_eq!(items.len(), 5, "each record sent once");
    assert!(items.iter().all(|(_, _, s)| *s == 201), "no 409: {items:?}");
    let msgs = stored_messages(&es, &reqs);
    assert_eq!(msgs.first().map(String::as_str), Some("before"));
    assert_eq!(msgs.last().map(String::as_str), Some("after"));
    let pieces = &msgs[1..4];
    let sizes: Vec<usize> = pieces.iter().map(String::len).collect();
    assert_eq!(sizes, [256 << 10, 256 << 10, (600 - 512) << 10]);
    assert_eq!(pieces.concat(), long);
}

/// stdout's line waits for its end while stderr's lines are whole: every
/// record of both streams is stored exactly once, whether the tailer reads
/// between the writes or finds many of them in one read.
#[tokio::test]
async fn interleaved_partial_lines_of_stdout_and_stderr_are_each_stored_once() {
    let es = EsBulk::start().await;
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    let url = format!("es+http://127.0.0.1:{}/?index=tail&linger_ms=0", es.port);
    let app = start(node.config_to("web.default", &url)).await;
    let limit = Duration::from_secs(15);
    // One at a time: the stderr line is read (and stored) while stdout's waits.
    let mut want = Vec::new();
    for i in 0..20 {
        append(&log, &cri("stdout", "P", &format!("out {i} begins, ")));
        append(&log, &cri("stderr", "F", &format!("err {i}")));
        want.push(format!("err {i}"));
        wait_until("the stderr record", limit, || es.docs().len() == want.len()).await;
        append(&log, &cri("stdout", "F", &format!("ends {i}")));
        want.push(format!("out {i} begins, ends {i}"));
        wait_until("the stdout record", limit, || es.docs().len() == want.len()).await;
    }
    // Then many at once, over several reads.
    let mut text = String::new();
    for i in 20..2020 {
        text.push_str(&cri("stdout", "P", &format!("out {i} begins, ")));
        text.push_str(&cri("stderr", "F", &format!("err {i}")));
        text.push_str(&cri("stdout", "F", &format!("ends {i}")));
        want.push(format!("err {i}"));
        want.push(format!("out {i} begins, ends {i}"));
    }
    append(&log, &text);
    wait_until("every record", limit, || es.docs().len() == want.len()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.shutdown().await;

    let reqs = es.requests();
    let items = bulk_items(&reqs);
    assert_eq!(items.len(), want.len(), "each record sent once");
    assert!(items.iter().all(|(_, _, s)| *s == 201), "no 409");
    let mut got: Vec<String> = es
        .docs()
        .values()
        .map(|d| d["message"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

/// Lines read again after a restart get the ids they had: pieces of a long
/// line sent before the restart (the checkpoint stays before the line until
/// its end is read) and, after a checkpoint lost with `kill -9`, the whole
/// file. Elasticsearch answers 409 to each, and stores nothing twice.
#[tokio::test]
async fn a_restart_sends_lines_read_again_with_their_ids_so_nothing_is_stored_twice() {
    let es = EsBulk::start().await;
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    let url = format!("es+http://127.0.0.1:{}/?index=tail&linger_ms=100", es.port);
    let limit = Duration::from_secs(15);
    let long = pattern(600 << 10);
    let (begun, rest) = long.split_at(520 << 10);
    for i in 0..10 {
        append(&log, &cri("stdout", "F", &format!("line {i}")));
    }
    // Still being written: two pieces are complete, the third is not.
    append(&log, &cri_partials("stdout", begun, false));
    let app = start(node.config_to("web.default", &url)).await;
    wait_until("10 lines and 2 pieces", limit, || es.docs().len() == 12).await;
    app.shutdown().await;
    let first_run = es.requests().len();
    let ids_before: Vec<(String, String)> = es.docs().into_keys().collect();

    append(&log, &cri_partials("stdout", rest, true));
    append(&log, &cri("stdout", "F", "after"));
    let app = start(node.config_to("web.default", &url)).await;
    wait_until("the third piece and the last line", limit, || es.docs().len() == 14).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.shutdown().await;
    let reqs = es.requests();
    let second = bulk_items(&reqs[first_run..]);
    let again: Vec<(String, String)> = second
        .iter()
        .filter(|(_, _, s)| *s == 409)
        .map(|(index, id, _)| (index.clone(), id.clone()))
        .collect();
    assert_eq!(again.len(), 2, "the two pieces sent again: {second:?}");
    assert!(again.iter().all(|k| ids_before.contains(k)), "with their ids");
    assert_eq!(second.iter().filter(|(_, _, s)| *s == 201).count(), 2);
    let docs = es.docs();
    let msgs = stored_messages(&es, &reqs);
    assert_eq!(msgs.len(), 14);
    assert_eq!(msgs[10..13].concat(), long);
    assert_eq!(msgs[13], "after");

    // As if killed before any checkpoint was saved: the whole file again.
    let path = node.root.path().join("state/checkpoints.json");
    let mut cp: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for f in cp["files"].as_array_mut().unwrap() {
        f["offset"] = Value::from(0);
    }
    std::fs::write(&path, cp.to_string()).unwrap();
    let second_run = reqs.len();
    let app = start(node.config_to("web.default", &url)).await;
    wait_until("the file sent again", limit, || {
        bulk_items(&es.requests()[second_run..]).len() == 14
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.shutdown().await;
    let third = bulk_items(&es.requests()[second_run..]);
    assert_eq!(third.len(), 14);
    assert!(
        third.iter().all(|(_, _, s)| *s == 409),
        "every id already stored: {third:?}"
    );
    assert_eq!(es.docs(), docs, "nothing stored twice");
}
