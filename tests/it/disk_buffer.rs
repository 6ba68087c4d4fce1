//! Per-drain disk buffers (`DRAIN_BUFFER=disk`) with the logtrain binary and
//! real TCP receivers: a drain that is down never holds back its neighbour
//! and gets every line, in order, once it is back; syslog TCP and UDP inputs
//! lose nothing to a dead drain; `kill -9` with records on disk, then a
//! restart, delivers everything; a buffer no route names any more is replayed
//! at start and removed; a torn segment is cut and counted; beyond the budget
//! drops are counted exactly and told with the L10 line.
//!
//! The outage lasts `LOGTRAIN_SOAK_SECS` (default 60 s; `tests/soak` runs
//! 600, the ten-minute variant).

use crate::support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use logtrain::drain::DrainSpec;
use parking_lot::Mutex;
use support::disk::{deleted_open, segments};
use support::faults::{Binary, Node, Receiver, phase};
use support::late::Late;
use support::{Reserved, wait_until};
use tokio::io::AsyncWriteExt;

/// Fixed-width CRI lines: line `i` says `line {i:08}`.
fn line(i: usize) -> String {
    padded(i, 0)
}

/// Line `i` with `pad` more bytes after its number.
fn padded(i: usize, pad: usize) -> String {
    format!("2026-11-22T10:00:00.123456789Z stdout F line {i:08} {:x<pad$}\n", "")
}

/// The furthest offset the tailer's checkpoints hold (one file tailed).
fn checkpointed(node: &Node) -> Option<u64> {
    let text = std::fs::read(node.path("state/checkpoints.json")).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    v["files"].as_array()?.iter().filter_map(|f| f["offset"].as_u64()).max()
}

fn yaml(host: &str, drains: &[String]) -> String {
    let list: Vec<String> = drains.iter().map(|d| format!("\"{d}\"")).collect();
    format!("routes:\n  - hostname: {host}\n    drains: [{}]\n", list.join(", "))
}

fn env_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn tail_env(node: &Node) -> Vec<(String, String)> {
    vec![
        ("KUBERNETES".into(), "true".into()),
        ("KUBERNETES_LOG_PATH".into(), node.containers().display().to_string()),
        (
            "CHECKPOINT_PATH".into(),
            node.path("state/checkpoints.json").display().to_string(),
        ),
        ("DRAIN_BUFFER_PATH".into(), node.path("buffers").display().to_string()),
        ("DRAIN_QUEUE_RECORDS".into(), "1000".into()),
    ]
}

/// Writes 20 lines every 10 ms (2,000 lines/s) until `stop`; returns how many.
/// While `rotate` is set it renames the file to `0.log.1` and goes on in a new
/// `0.log`, as the kubelet rotates, then clears it.
fn writer(
    log: PathBuf,
    stop: Arc<AtomicBool>,
    rotate: Arc<AtomicBool>,
    written: Arc<Mutex<usize>>,
) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        let mut n = 0;
        let mut next = Instant::now();
        while !stop.load(Ordering::Acquire) {
            if rotate.swap(false, Ordering::AcqRel) {
                std::fs::rename(&log, log.with_extension("log.1")).unwrap();
                f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&log)
                    .unwrap();
            }
            let burst: String = (n..n + 20).map(line).collect();
            f.write_all(burst.as_bytes()).unwrap();
            n += 20;
            *written.lock() = n;
            next += Duration::from_millis(10);
            if let Some(d) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
        n
    })
}

fn sample(id: &str, name: &str) -> String {
    format!("{name}{{drain=\"{id}\"}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_drain_never_holds_back_its_neighbour_and_gets_every_line_in_order_when_back() {
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    let healthy = Receiver::start(true).await;
    let dead_port = Reserved::new();
    let dead_url = format!("syslog+tcp://127.0.0.1:{}", dead_port.port());
    let dead_id = DrainSpec::parse(&dead_url).unwrap().id;
    let env = tail_env(&node);
    let bin = Binary::start(
        &node.path("run"),
        &yaml("web.default", &[healthy.url(), dead_url]),
        &env_refs(&env),
    );
    let (stop, rotate, written) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
        Arc::new(Mutex::new(0)),
    );
    let w = writer(log.clone(), stop.clone(), rotate.clone(), written.clone());

    // The outage: the healthy drain keeps within 20 % of what is written
    // (alone it takes everything), sampled every 250 ms after the first second.
    let outage = phase(60.0);
    let began = Instant::now();
    let mut rotated = false;
    while began.elapsed() < outage {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let (wrote, got) = (*written.lock(), healthy.count());
        if began.elapsed() > Duration::from_secs(1) {
            assert!(
                got * 10 >= wrote * 8,
                "the healthy drain fell behind: {got} of {wrote} lines after {:?}",
                began.elapsed()
            );
        }
        if !rotated && began.elapsed() > outage / 3 {
            rotate.store(true, Ordering::Release);
            rotated = true;
        }
    }
    assert!(
        bin.metric(&sample(&dead_id, "logtrain_drain_buffer_spilled_total")) > 0,
        "the dead drain spilled"
    );
    if support::faults::soaking() {
        println!(
            "SOAK disk_buffer outage {outage:?}: {} lines written, the healthy drain had {}, spilled {}",
            *written.lock(),
            healthy.count(),
            bin.metric(&sample(&dead_id, "logtrain_drain_buffer_spilled_total"))
        );
    }
    // The rotated file, fully read and (for the dead drain) written to disk,
    // is let go even though that drain is still down: delete it as logrotate
    // would and the process no longer holds it.
    let rotated_path = log.with_extension("log.1");
    std::fs::remove_file(&rotated_path).unwrap();
    let pid = bin.pid();
    wait_until(
        "the rotated file let go while the drain is down",
        Duration::from_secs(10),
        || deleted_open(pid).is_empty(),
    )
    .await;

    // Back: every line arrives, in order, once.
    let late = Late::default();
    late.up(dead_port);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Release);
    let n = w.join().unwrap();
    wait_until("the dead drain caught up", Duration::from_secs(60), || {
        late.numbers().len() >= n
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = late.numbers();
    let first_gap = got.iter().enumerate().find(|(i, v)| *i != **v).map(|(i, _)| i);
    assert!(
        got.len() == n && first_gap.is_none(),
        "{} of {n} lines, first out of place at {first_gap:?}",
        got.len()
    );
    wait_until("the healthy drain has them all", Duration::from_secs(20), || {
        healthy.count() >= n
    })
    .await;
    wait_until("the buffer emptied", Duration::from_secs(20), || {
        bin.metric(&sample(&dead_id, "logtrain_drain_buffer_bytes")) == 0
    })
    .await;
    assert!(bin.metric(&sample(&dead_id, "logtrain_drain_buffer_replayed_total")) > 0);
}

/// The port the binary's syslog TCP listener bound (it was asked for port 0).
fn syslog_tcp_port(bin: &Binary) -> u16 {
    bin.listener_port("syslog_tcp")
}

fn push_frame(i: usize) -> Vec<u8> {
    let msg = format!("<14>1 2026-11-22T10:00:00Z push.default app - - - push {i}");
    format!("{} {msg}", msg.len()).into_bytes()
}

async fn push_all(port: u16, n: usize) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let buf: Vec<u8> = (0..n).flat_map(push_frame).collect();
    s.write_all(&buf).await.unwrap();
    s.shutdown().await.unwrap();
}

fn push_env(dir: &Path, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = vec![
        ("SYSLOG_TCP".into(), "true".into()),
        ("SYSLOG_TCP_PORT".into(), "0".into()),
        ("DRAIN_QUEUE_RECORDS".into(), "200".into()),
        ("DRAIN_BUFFER_PATH".into(), dir.join("buffers").display().to_string()),
    ];
    v.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_syslog_tcp_input_loses_nothing_while_its_drain_is_dead() {
    let dir = tempfile::tempdir().unwrap();
    let dead_port = Reserved::new();
    let url = format!("syslog+tcp://127.0.0.1:{}", dead_port.port());
    let id = DrainSpec::parse(&url).unwrap().id;
    let env = push_env(dir.path(), &[]);
    let bin = Binary::start(&dir.path().join("run"), &yaml("push.default", &[url]), &env_refs(&env));
    let n = 20_000;
    // A hundred times the queue, as fast as the connection takes them.
    push_all(syslog_tcp_port(&bin), n).await;
    wait_until("all taken", Duration::from_secs(20), || {
        bin.metric(&sample(&id, "logtrain_drain_queued_total")) == n as u64
    })
    .await;
    let late = Late::default();
    late.up(dead_port);
    wait_until("all delivered", Duration::from_secs(30), || late.numbers().len() >= n).await;
    assert_eq!(
        late.numbers(),
        (0..n).collect::<Vec<_>>(),
        "every record, in order, once"
    );
    assert_eq!(bin.metric(&sample(&id, "logtrain_drain_dropped_total")), 0);
}

/// Tails `n` lines to a dead drain until they are on disk, kills logtrain
/// with `kill -9`, lets `damage` touch the segments, then restarts it with the
/// drain back; returns the receiver, the binary and `n`.
async fn buffered_kill_restart(node: &Node, n: usize, damage: impl FnOnce(&Path)) -> (Late, Binary, String) {
    buffered_kill_restart_with(node, n, 0, damage, None).await
}

/// [`buffered_kill_restart`] with lines `pad` bytes longer, the restart
/// routing as `conf2` says (`None`: as before). The kill comes once the
/// tailer's checkpoint holds the end of the file (saved once a second).
async fn buffered_kill_restart_with(
    node: &Node,
    n: usize,
    pad: usize,
    damage: impl FnOnce(&Path),
    conf2: Option<String>,
) -> (Late, Binary, String) {
    let log = node.pod("default", "web-1-a", "web");
    let dead_port = Reserved::new();
    let url = format!("syslog+tcp://127.0.0.1:{}", dead_port.port());
    let id = DrainSpec::parse(&url).unwrap().id;
    let env = tail_env(node);
    let conf = yaml("web.default", std::slice::from_ref(&url));
    let mut bin = Binary::start(&node.path("run1"), &conf, &env_refs(&env));
    let text: String = (0..n).map(|i| padded(i, pad)).collect();
    support::faults::append(&log, &text);
    let end = text.len() as u64;
    wait_until("the lines spilled and checkpointed", Duration::from_secs(120), || {
        bin.metric(&sample(&id, "logtrain_drain_buffer_spilled_total")) >= n as u64 && checkpointed(node) == Some(end)
    })
    .await;
    // The spill task fsyncs once a second; `kill -9` loses nothing the kernel had.
    bin.kill9();
    damage(&node.path("buffers"));
    let late = Late::default();
    late.up(dead_port);
    let bin = Binary::start(&node.path("run2"), &conf2.unwrap_or(conf), &env_refs(&env));
    (late, bin, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_with_100_mib_on_disk_then_a_restart_delivers_every_line_once() {
    let node = Node::new();
    // About 1 KiB a line: 100 MiB of records on disk at the kill.
    let (n, pad) = (105_000, 960);
    let (late, bin, id) = buffered_kill_restart_with(
        &node,
        n,
        pad,
        |root| {
            let bytes: u64 = segments(root).iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
            assert!(bytes >= 100 << 20, "only {bytes} bytes were on disk");
        },
        None,
    )
    .await;
    wait_until("every line delivered", Duration::from_secs(120), || {
        let mut got = late.numbers();
        got.sort_unstable();
        got.dedup();
        got.len() == n
    })
    .await;
    // The tailer resumed at the end of the file and the buffer holds each line
    // once: nothing was sent twice (the drain was down, so no batch was
    // written and unconfirmed at the kill), and in order.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = late.numbers();
    assert_eq!(got.len(), n, "{} duplicates", got.len().saturating_sub(n));
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
    assert!(bin.metric(&sample(&id, "logtrain_drain_buffer_replayed_total")) >= n as u64);
    assert_eq!(bin.metric(&sample(&id, "logtrain_drain_buffer_torn_total")), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_segment_is_cut_counted_and_never_replayed_as_garbage() {
    let node = Node::new();
    let n = 20_000;
    let (late, bin, id) = buffered_kill_restart(&node, n, |root| {
        let segs = segments(root);
        let last = segs.last().expect("a segment");
        let len = std::fs::metadata(last).unwrap().len();
        // Mid-record: cut the last record (80-odd bytes) in two.
        std::fs::OpenOptions::new()
            .write(true)
            .open(last)
            .unwrap()
            .set_len(len - 20)
            .unwrap();
    })
    .await;
    wait_until("the torn record counted", Duration::from_secs(20), || {
        bin.metric(&sample(&id, "logtrain_drain_buffer_torn_total")) == 1
    })
    .await;
    assert!(bin.log().contains("Cut a torn last write"), "{}", bin.log());
    // Everything but the cut record arrives, and nothing that is not a line.
    wait_until("the rest delivered", Duration::from_secs(60), || {
        let mut got = late.numbers();
        got.sort_unstable();
        got.dedup();
        got.len() >= n - 1
    })
    .await;
    assert!(
        late.messages().iter().all(|m| m.starts_with("line ")),
        "garbage replayed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_budget_drops_are_counted_exactly_and_told_with_l10() {
    let dir = tempfile::tempdir().unwrap();
    let dead_port = Reserved::new();
    let url = format!("syslog+tcp://127.0.0.1:{}", dead_port.port());
    let id = DrainSpec::parse(&url).unwrap().id;
    // Room on disk for about 1,000 of these records (about 100 bytes each).
    let env = push_env(dir.path(), &[("DRAIN_BUFFER_MAX_BYTES", "100000")]);
    let bin = Binary::start(&dir.path().join("run"), &yaml("push.default", &[url]), &env_refs(&env));
    let n = 10_000;
    push_all(syslog_tcp_port(&bin), n).await;
    wait_until("every record taken or dropped", Duration::from_secs(20), || {
        bin.metric(&sample(&id, "logtrain_drain_queued_total"))
            + bin.metric(&sample(&id, "logtrain_drain_dropped_total"))
            == n as u64
    })
    .await;
    let dropped = bin.metric(&sample(&id, "logtrain_drain_dropped_total")) as usize;
    assert!(dropped > n / 2, "dropped {dropped}");
    assert_eq!(
        bin.metric(&sample(&id, "logtrain_drain_buffer_dropped_total")) as usize,
        dropped
    );
    assert!(bin.log().contains("disk buffer is at its budget"), "{}", bin.log());
    let late = Late::default();
    late.up(dead_port);
    let told = format!("Error L10 (output buffer overflow): {dropped} messages dropped since");
    wait_until("the drops told", Duration::from_secs(30), || {
        late.messages().iter().any(|m| m.starts_with(&told))
    })
    .await;
    wait_until("what was taken delivered", Duration::from_secs(30), || {
        late.numbers().len() == n - dropped
    })
    .await;
    let got = late.numbers();
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffer_no_route_names_any_more_is_replayed_at_start_then_removed() {
    let node = Node::new();
    let n = 20_000;
    let other = Receiver::start(true).await;
    // After the restart the workload is routed elsewhere only.
    let conf2 = yaml("web.default", &[other.url()]);
    let (late, bin, id) = buffered_kill_restart_with(&node, n, 0, |_| {}, Some(conf2)).await;
    wait_until("the orphaned buffer replayed", Duration::from_secs(60), || {
        let mut got = late.numbers();
        got.sort_unstable();
        got.dedup();
        // Every line was on disk at the kill: all arrive at the old drain.
        got.len() == n
    })
    .await;
    assert!(
        bin.log().contains("Replaying the disk buffers an earlier run left."),
        "{}",
        bin.log()
    );
    wait_until("its buffer removed", Duration::from_secs(30), || {
        segments(&node.path("buffers")).is_empty()
    })
    .await;
    assert!(
        !bin.log().contains("could not deliver its disk buffer"),
        "{}",
        bin.log()
    );
    // The tailer resumed at the end: the new route gets nothing read twice.
    assert_eq!(other.count(), 0);
    let _ = id;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_udp_record_the_socket_handed_over_reaches_a_drain_that_was_dead() {
    let dir = tempfile::tempdir().unwrap();
    let dead_port = Reserved::new();
    let url = format!("syslog+tcp://127.0.0.1:{}", dead_port.port());
    let id = DrainSpec::parse(&url).unwrap().id;
    let env = push_env(dir.path(), &[("SYSLOG_UDP", "true"), ("SYSLOG_UDP_PORT", "0")]);
    let bin = Binary::start(&dir.path().join("run"), &yaml("push.default", &[url]), &env_refs(&env));
    let port = bin.listener_port("syslog_udp");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let n = 5_000;
    for i in 0..n {
        let msg = format!("<14>1 2026-11-22T10:00:00Z push.default app - - - push {i}");
        sock.send_to(msg.as_bytes(), ("127.0.0.1", port)).unwrap();
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let records = || bin.metric("logtrain_input_records_total{input=\"syslog_udp\"}");
    let mut last = u64::MAX;
    while records() != last {
        last = records();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(last as usize > n / 2, "the socket handed over only {last} of {n}");
    let late = Late::default();
    late.up(dead_port);
    // The drain reconnects with backoff (up to 30 s) after its outage.
    wait_until("every record handed over delivered", Duration::from_secs(60), || {
        late.numbers().len() as u64 == last
    })
    .await;
    let got = late.numbers();
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
    assert_eq!(bin.metric(&sample(&id, "logtrain_drain_dropped_total")), 0);
    assert!(bin.metric(&sample(&id, "logtrain_drain_buffer_spilled_total")) > 0);
}
