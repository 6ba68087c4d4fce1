//! The logtrain binary under process-level faults: `kill -9` mid-stream and a
//! restart (nothing lost, duplicates exactly the lines past the saved
//! checkpoint), SIGTERM (exit 0 in time, drains flushed, a restart repeats
//! nothing), SIGTERM with a drain that never reads (exit within
//! `SHUTDOWN_TIMEOUT`, the drain named with its held count), and overload at
//! ten times what a drain takes (peak memory under a bound derived from the
//! queue settings, drops counted and told, throughput back afterwards).
//!
//! Phases last `LOGTRAIN_SOAK_SECS` (default 1.5 s; `tests/soak` runs 60).

use crate::support;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use logtrain::drain::DrainSpec;
use support::faults::{Binary, Node, Receiver, message, phase};
use support::http_recorder::BlackHole;
use support::wait_until;
use tokio::io::AsyncWriteExt;

/// Fixed-width lines, so a byte offset names a line: line `i` starts at `i * LINE_LEN`.
fn line(i: usize) -> String {
    format!("2026-11-22T10:00:00.123456789Z stdout F line {i:08}\n")
}
const LINE_LEN: usize = 54;

fn tail_yaml(drains: &[String]) -> String {
    let list: Vec<String> = drains.iter().map(|d| format!("\"{d}\"")).collect();
    format!(
        "routes:\n  - hostname: web.default\n    drains: [{}]\n",
        list.join(", ")
    )
}

fn tail_env(node: &Node) -> Vec<(String, String)> {
    vec![
        ("KUBERNETES".into(), "true".into()),
        ("KUBERNETES_LOG_PATH".into(), node.containers().display().to_string()),
        (
            "CHECKPOINT_PATH".into(),
            node.path("state/checkpoints.json").display().to_string(),
        ),
        ("DRAIN_QUEUE_RECORDS".into(), "1000".into()),
    ]
}

fn env_refs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// The port the binary's syslog TCP listener bound (it was asked for port 0).
fn syslog_tcp_port(bin: &Binary) -> u16 {
    bin.listener_port("syslog_tcp")
}

/// Line numbers of the frames received (in arrival order).
fn numbers(rx: &Receiver) -> Vec<usize> {
    rx.frames()
        .iter()
        .map(|f| message(f).strip_prefix("line ").unwrap().parse().unwrap())
        .collect()
}

/// Writes `per_round` lines every 10 ms until `stop`; returns how many.
fn writer(log: std::path::PathBuf, stop: Arc<AtomicBool>, per_round: usize) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        let mut n = 0;
        let mut next = Instant::now();
        while !stop.load(Ordering::Acquire) {
            let mut burst = String::new();
            for _ in 0..per_round {
                burst.push_str(&line(n));
                n += 1;
            }
            f.write_all(burst.as_bytes()).unwrap();
            next += Duration::from_millis(10);
            if let Some(d) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
        }
        n
    })
}

fn saved_offset(node: &Node) -> u64 {
    let text = std::fs::read_to_string(node.path("state/checkpoints.json")).unwrap_or_default();
    if text.is_empty() {
        return 0;
    }
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["files"][0]["offset"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_then_restart_loses_nothing_and_repeats_only_past_the_checkpoint() {
    assert_eq!(line(0).len(), LINE_LEN);
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    let rx = Receiver::start(true).await;
    let yaml = tail_yaml(&[rx.url()]);
    let env = tail_env(&node);
    let mut bin = Binary::start(&node.path("run1"), &yaml, &env_refs(&env));
    let stop = Arc::new(AtomicBool::new(false));
    // 2 000 lines a second.
    let w = writer(log.clone(), stop.clone(), 20);
    let p = phase(1.5);
    tokio::time::sleep(p).await;
    assert!(rx.count() > 0, "lines flowed before the kill");
    bin.kill9();
    // What the killed process had saved, and what it had delivered past it.
    let offset = saved_offset(&node) as usize;
    assert_eq!(offset % LINE_LEN, 0, "checkpoints fall on line boundaries");
    let resume_line = offset / LINE_LEN;
    let before = numbers(&rx);
    let past_checkpoint = before.iter().filter(|&&i| i >= resume_line).count();
    tokio::time::sleep(p / 2).await;
    let bin2 = Binary::start(&node.path("run2"), &yaml, &env_refs(&env));
    tokio::time::sleep(p).await;
    stop.store(true, Ordering::Release);
    let total = tokio::task::spawn_blocking(move || w.join().unwrap()).await.unwrap();
    wait_until("every line after the restart", Duration::from_secs(30), || {
        numbers(&rx).iter().filter(|&&i| i == total - 1).count() == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = numbers(&rx);
    let mut seen = vec![0usize; total];
    for &i in &got {
        seen[i] += 1;
    }
    let lost: Vec<usize> = (0..total).filter(|&i| seen[i] == 0).take(10).collect();
    assert!(lost.is_empty(), "lines lost across kill -9: {lost:?}");
    let duplicates = got.len() - total;
    // The restart re-reads from the saved checkpoint: exactly the lines the killed
    // process had delivered past it come twice, and no more than what one
    // checkpoint interval (1 s) plus a full queue (1 000) can hold.
    assert_eq!(
        duplicates, past_checkpoint,
        "duplicates are the lines past the checkpoint"
    );
    let bound = 1000 + 2 * 2000;
    assert!(duplicates <= bound, "{duplicates} duplicates > {bound}");
    assert!((0..total).all(|i| seen[i] <= 2));
    if support::faults::soaking() {
        println!("SOAK kill -9: {total} lines, none lost, {duplicates} repeated after the restart (bound {bound})");
    }
    drop(bin2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_flushes_exits_0_and_a_restart_repeats_nothing() {
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    let rx = Receiver::start(true).await;
    let yaml = tail_yaml(&[rx.url()]);
    let mut env = tail_env(&node);
    env.push(("SHUTDOWN_TIMEOUT".into(), "5".into()));
    let mut bin = Binary::start(&node.path("run1"), &yaml, &env_refs(&env));
    let stop = Arc::new(AtomicBool::new(false));
    let w = writer(log.clone(), stop.clone(), 20);
    tokio::time::sleep(phase(1.5)).await;
    bin.signal("TERM");
    let (code, took) = bin.wait_exit(Duration::from_secs(6));
    assert_eq!(code, Some(0), "{}", bin.log());
    assert!(took < Duration::from_secs(5), "exit took {took:?}");
    assert!(bin.log().contains("Every drain flushed."), "{}", bin.log());
    let first_run = rx.count();
    stop.store(true, Ordering::Release);
    let total = tokio::task::spawn_blocking(move || w.join().unwrap()).await.unwrap();
    let bin2 = Binary::start(&node.path("run2"), &yaml, &env_refs(&env));
    wait_until("the rest after the restart", Duration::from_secs(30), || {
        rx.count() >= total
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        numbers(&rx),
        (0..total).collect::<Vec<_>>(),
        "first run delivered {first_run}"
    );
    drop(bin2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_hanging_drain_exits_within_the_deadline_and_names_it() {
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    let hole = BlackHole::start().await;
    let hanging = format!("syslog+tcp://127.0.0.1:{}", hole.port);
    let hanging_id = DrainSpec::parse(&hanging).unwrap().id;
    let yaml = tail_yaml(std::slice::from_ref(&hanging));
    let mut env = tail_env(&node);
    env.push(("SHUTDOWN_TIMEOUT".into(), "2".into()));
    // 16 MB: more than the kernel buffers of a peer that never reads.
    let body = "h".repeat(1000);
    let mut text = String::new();
    for i in 0..16_000 {
        text.push_str(&format!("2026-11-22T10:00:00.1Z stdout F {i} {body}\n"));
    }
    std::fs::write(&log, text).unwrap();
    let mut bin = Binary::start(&node.path("run"), &yaml, &env_refs(&env));
    let held = || {
        let page = bin.metrics();
        let m = |name: &str| support::faults::metric_in(&page, &format!("{name}{{drain=\"{hanging_id}\"}}"));
        m("logtrain_drain_queued_total").saturating_sub(m("logtrain_drain_sent_total"))
    };
    wait_until("the hanging drain to hold records", Duration::from_secs(30), || {
        held() >= 1000
    })
    .await;
    bin.signal("TERM");
    let (code, took) = bin.wait_exit(Duration::from_secs(4));
    assert_eq!(code, Some(0));
    assert!(took <= Duration::from_millis(2_800), "exit took {took:?}");
    let named = bin
        .log()
        .lines()
        .filter(|l| l.contains("Drain not flushed before the deadline."))
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["fields"]["drain"] == hanging_id.as_str())
        .unwrap_or_else(|| panic!("the hanging drain is not named:\n{}", bin.log()));
    assert!(named["fields"]["records"].as_u64().unwrap() > 0, "{named}");
}

fn frame(i: usize, body: &str) -> Vec<u8> {
    let msg = format!("<14>1 2026-11-22T10:00:00Z load.default app - - - line {i:08} {body}");
    format!("{} {msg}", msg.len()).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_stays_in_memory_bounds_counts_its_drops_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(true).await;
    let url = rx.url();
    let yaml = format!("routes:\n  - hostname: load.default\n    drains: [\"{url}\"]\n");
    let queue_records = 2_000usize;
    let queue_bytes = 1usize << 20;
    let env = [
        ("SYSLOG_TCP", "true"),
        ("SYSLOG_TCP_PORT", "0"),
        ("DRAIN_QUEUE_RECORDS", "2000"),
        // Memory bounds of the memory queue alone (no disk buffer).
        ("DRAIN_BUFFER", "memory"),
        ("DRAIN_QUEUE_BYTES", "1048576"),
        ("DEBUG", "false"),
    ];
    let bin = Binary::start(dir.path(), &yaml, &env);
    let input = syslog_tcp_port(&bin);
    let baseline = bin.status_kib("VmRSS");
    let body = "o".repeat(100);
    // The drain takes 4 KiB per 20 ms (~1 400 records/s); we send 14 000/s.
    rx.set_pause(Some(Duration::from_millis(20)));
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", input)).await.unwrap();
    let overload = phase(1.5) * 2;
    let begun = tokio::time::Instant::now();
    let mut next = begun;
    let mut sent = 0;
    while begun.elapsed() < overload {
        let mut buf = Vec::new();
        for _ in 0..140 {
            buf.extend_from_slice(&frame(sent, &body));
            sent += 1;
        }
        s.write_all(&buf).await.unwrap();
        next += Duration::from_millis(10);
        tokio::time::sleep_until(next).await;
    }
    let peak = bin.status_kib("VmHWM");
    // Bound: what the queue may hold (records in memory are at most ~1 KiB each
    // here, well over their 200 encoded bytes), one batch in flight and its
    // encoded copy, the input's buffers, and 16 MiB for allocator slack.
    let bound_kib = baseline + (queue_records as u64 + 1000) * 2 + 2 * (queue_bytes as u64 >> 10) + 16 * 1024;
    assert!(
        peak < bound_kib,
        "peak RSS {peak} KiB over {bound_kib} KiB (baseline {baseline} KiB)"
    );

    // Recovery: the receiver speeds up; a fresh burst goes through whole.
    rx.set_pause(None);
    let id = DrainSpec::parse(&url).unwrap().id;
    let drops = || bin.metric(&format!("logtrain_drain_dropped_total{{drain=\"{id}\"}}"));
    let records = || bin.metric("logtrain_input_records_total{input=\"syslog_tcp\"}");
    wait_until("the input to read the overload", Duration::from_secs(30), || {
        records() == sent as u64
    })
    .await;
    wait_until("the queue to drain", Duration::from_secs(30), || {
        bin.metric(&format!("logtrain_drain_queue_records{{drain=\"{id}\"}}")) == 0
            && rx.frames().iter().any(|f| message(f).starts_with("Error L10"))
    })
    .await;
    let after_overload = rx.count();
    let recovery_start = sent;
    let mut buf = Vec::new();
    for _ in 0..1000 {
        buf.extend_from_slice(&frame(sent, &body));
        sent += 1;
    }
    s.write_all(&buf).await.unwrap();
    wait_until(
        "a burst after the overload to go through whole",
        Duration::from_secs(10),
        || rx.count() >= after_overload + 1000,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let frames = rx.frames();
    let (told, lines): (Vec<&String>, Vec<&String>) = frames.iter().partition(|f| message(f).starts_with("Error L10"));
    let dropped = drops() as usize;
    assert!(dropped > 0, "ten times the drain's rate must overflow");
    assert_eq!(dropped, sent - lines.len(), "sent {sent}, received {}", lines.len());
    let told_sum: usize = told
        .iter()
        .map(|f| {
            let m = message(f).strip_prefix("Error L10 (output buffer overflow): ").unwrap();
            m.split(' ').next().unwrap().parse::<usize>().unwrap()
        })
        .sum();
    assert_eq!(told_sum, dropped);
    let recovered = lines
        .iter()
        .filter(|f| {
            let n: usize = message(f)["line ".len().."line ".len() + 8].parse().unwrap();
            n >= recovery_start
        })
        .count();
    assert_eq!(recovered, 1000, "after the overload nothing is dropped");
    if support::faults::soaking() {
        println!(
            "SOAK overload: {sent} sent over {overload:?} at 10x the drain's rate, {} received, {dropped} dropped and told; peak RSS {peak} KiB (baseline {baseline} KiB, bound {bound_kib} KiB)",
            lines.len()
        );
    }
    drop(s);
}

/// SIGHUP reopens `file://` drains: after logrotate renames the file, new lines
/// go to a new file of the same name, the old one keeps what it had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reopens_file_drains_for_logrotate() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.log");
    let yaml = format!(
        "routes:\n  - hostname: web.default\n    drains: [\"file://{}\"]\n",
        out.display()
    );
    let bin = Binary::start(dir.path(), &yaml, &[("SYSLOG_TCP", "true"), ("SYSLOG_TCP_PORT", "0")]);
    let port = syslog_tcp_port(&bin);
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let lines = |p: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| l.rsplit(' ').next().unwrap().to_string())
            .collect()
    };
    for i in 0..3 {
        let frame = format!("<14>1 2026-11-22T10:00:00Z web.default app - - - before-{i}\n");
        conn.write_all(frame.as_bytes()).await.unwrap();
    }
    wait_until("lines before", Duration::from_secs(10), || lines(&out).len() == 3).await;
    let rotated = dir.path().join("out.log.1");
    std::fs::rename(&out, &rotated).unwrap();
    bin.signal("HUP");
    wait_until("the reopen", Duration::from_secs(10), || {
        bin.log().contains("Reopening file drains")
    })
    .await;
    for i in 0..3 {
        let frame = format!("<14>1 2026-11-22T10:00:01Z web.default app - - - after-{i}\n");
        conn.write_all(frame.as_bytes()).await.unwrap();
    }
    wait_until("lines after", Duration::from_secs(10), || lines(&out).len() == 3).await;
    assert_eq!(lines(&rotated), ["before-0", "before-1", "before-2"]);
    assert_eq!(lines(&out), ["after-0", "after-1", "after-2"]);
}
