//! A drain that goes away under steady load and comes back: a private rsyslog
//! is stopped for a while and restarted on the same port.
//!
//! - From the tailer nothing may be lost: it pauses while the drain's queue is
//!   full and its checkpoint only advances on delivery. Syslog over TCP has no
//!   acknowledgements, so the batch written while rsyslog went down is sent
//!   again once the driver sees the connection gone: the only duplicates allowed
//!   are those of one batch, and the order holds.
//! - From a push input (syslog over TCP) only what does not fit the drain's
//!   queue is lost, and it is counted exactly: `dropped_total` equals sent minus
//!   received, and the drain is told with an L10 line. (The input first stops
//!   reading for up to a second, pushing back on the sender; a drain that is
//!   slow but alive loses nothing that way, the last test here.)
//!
//! Each phase lasts `LOGTRAIN_SOAK_SECS` (default 1.5 s; `tests/soak` runs 60).

use crate::support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use logtrain::app::App;
use logtrain::config::{BufferMode, Config, StaticRoute};
use logtrain::drain::DrainSpec;
use serde_json::Value;
use support::faults::{Node, Receiver, cri, phase};
use support::rsyslog::{JSON_TEMPLATE, Rsyslog};
use support::{free_port, wait_until};
use tokio::io::AsyncWriteExt;

/// rsyslog writing every message received on TCP `port` as a JSON line to `DIR/out.json`.
fn rsyslog(dir: &Path, port: u16) -> Rsyslog {
    let conf = format!(
        r#"global(parser.escapeControlCharactersOnReceive="off")
{JSON_TEMPLATE}
ruleset(name="out") {{
  action(type="omfile" file="{}" template="fields" flushOnTXEnd="on" asyncWriting="off")
}}
module(load="imtcp")
input(type="imtcp" port="{port}" ruleset="out")
"#,
        dir.join("out.json").display()
    );
    Rsyslog::start(dir, &conf, &[port])
}

fn entries(path: &Path) -> Vec<Value> {
    let text = std::fs::read(path).unwrap_or_default();
    let complete = text.iter().rposition(|&c| c == b'\n').map_or(0, |p| p + 1);
    text[..complete]
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

fn msgs(path: &Path) -> Vec<String> {
    entries(path)
        .iter()
        .map(|e| e["msg"].as_str().unwrap().to_string())
        .collect()
}

/// Runs `rounds` of `per_round` items through `write`, one round every 10 ms,
/// until `stop` (returns how many were written).
fn steady(stop: Arc<AtomicBool>, per_round: usize, mut write: impl FnMut(usize)) -> usize {
    let mut n = 0;
    let mut next = Instant::now();
    while !stop.load(Ordering::Acquire) {
        for _ in 0..per_round {
            write(n);
            n += 1;
        }
        next += Duration::from_millis(10);
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tailer_pauses_through_a_drain_outage_and_loses_nothing() {
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    let port = free_port();
    let rs_dir = node.path("rsyslog");
    let mut rs = rsyslog(&rs_dir, port);
    let app = App::start(Config {
        kubernetes: true,
        http_port: 0,
        listen_address: "127.0.0.1".into(),
        kubernetes_log_path: node.containers(),
        checkpoint_path: node.path("state/checkpoints.json"),
        shutdown_timeout: 5,
        // The memory queue alone (DRAIN_BUFFER=memory): the tailer waits.
        drain_buffer: BufferMode::Memory,
        drain_queue_records: 500,
        routes: vec![StaticRoute {
            hostname: "web.default".into(),
            drains: vec![format!("syslog+tcp://127.0.0.1:{port}")],
        }],
        ..crate::support::config()
    });
    assert!(app.wait_ready().await);
    logtrain::input::start(&app).await.unwrap();

    // 2 000 lines a second, written through the whole outage.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, log) = (stop.clone(), log.clone());
        std::thread::spawn(move || {
            let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
            steady(stop, 20, |i| {
                use std::io::Write;
                f.write_all(cri(&format!("line {i}")).as_bytes()).unwrap()
            })
        })
    };
    let p = phase(1.5);
    tokio::time::sleep(p).await;
    let before_outage = msgs(&rs_dir.join("out.json")).len();
    rs.stop();
    tokio::time::sleep(p).await;
    let rs = rsyslog(&rs_dir, port);
    tokio::time::sleep(p).await;
    stop.store(true, Ordering::Release);
    let total = tokio::task::spawn_blocking(move || writer.join().unwrap())
        .await
        .unwrap();
    let out = rs_dir.join("out.json");
    // The backlog of the outage drains at the drain's pace; the comparison
    // below names what is missing if it never arrives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30) + p * 3;
    while entries(&out).len() < total && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = msgs(&out);
    assert!(before_outage > 0, "lines flowed before the outage");
    // Nothing is lost. A batch written while rsyslog was going down is sent again
    // (syslog over TCP cannot tell whether it was read): at most one batch of
    // repeats, and the first arrival of every line is in order.
    let nums: Vec<usize> = got.iter().map(|m| m["line ".len()..].parse().unwrap()).collect();
    let (firsts, repeats) = first_arrivals(&nums, total);
    assert!(firsts.windows(2).all(|w| w[0] < w[1]), "in order");
    let lost: Vec<usize> = (0..total).filter(|i| firsts.binary_search(i).is_err()).collect();
    assert!(
        lost.is_empty(),
        "{} lines at rsyslog, {total} written; lost {:?}",
        got.len(),
        &lost[..lost.len().min(20)]
    );
    assert!(repeats <= 1000, "{repeats} repeated lines: more than one batch");
    let drains = app.registry.drains();
    assert_eq!(drains[0].dropped_total(), 0, "the tailer never drops");
    if support::faults::soaking() {
        println!(
            "SOAK tailer outage: {total} lines written over {:?}, none lost, {repeats} repeated, in order",
            p * 3
        );
    }
    let report = app.shutdown().await;
    assert!(report.unflushed.is_empty(), "{report:?}");
    drop(rs);
}

fn input_records() -> u64 {
    logtrain::telemetry::counter("logtrain_input_records_total", &[("input", "syslog_tcp")]).get()
}

/// An octet-counted RFC 5424 frame for `push.default`.
fn frame(i: usize) -> Vec<u8> {
    let msg = format!("<14>1 2026-11-22T10:00:00Z push.default app - - - push {i}");
    format!("{} {msg}", msg.len()).into_bytes()
}

/// logtrain with a syslog TCP input whose `push.default` records go to `drain`
/// through a queue of `queue` records; the input's address.
async fn push_input(drain: &str, queue: usize) -> (App, std::net::SocketAddr) {
    let app = App::start(Config {
        syslog_tcp: true,
        syslog_tcp_port: 0,
        http_port: 0,
        listen_address: "127.0.0.1".into(),
        shutdown_timeout: 5,
        // The memory queue alone (DRAIN_BUFFER=memory): what it cannot take is
        // dropped or pushed back; `disk_buffer` tests the disk.
        drain_buffer: BufferMode::Memory,
        drain_queue_records: queue,
        routes: vec![StaticRoute {
            hostname: "push.default".into(),
            drains: vec![drain.to_string()],
        }],
        ..crate::support::config()
    });
    assert!(app.wait_ready().await);
    let at = logtrain::input::start(&app).await.unwrap();
    (app, at.syslog_tcp.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_input_loses_only_what_overflows_the_queue_and_counts_it_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let rs_dir = dir.path().join("rsyslog");
    let mut rs = rsyslog(&rs_dir, port);
    let url = format!("syslog+tcp://127.0.0.1:{port}");
    let queue = 300;
    let (app, input) = push_input(&url, queue).await;

    let rec0 = input_records();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicUsize::new(0));
    let client = {
        let (stop, sent) = (stop.clone(), sent.clone());
        tokio::spawn(async move {
            let mut s = tokio::net::TcpStream::connect(input).await.unwrap();
            let mut next = tokio::time::Instant::now();
            let mut i = 0;
            while !stop.load(Ordering::Acquire) {
                let mut buf = Vec::new();
                for _ in 0..20 {
                    buf.extend_from_slice(&frame(i));
                    i += 1;
                }
                s.write_all(&buf).await.unwrap();
                sent.store(i, Ordering::Release);
                next += Duration::from_millis(10);
                tokio::time::sleep_until(next).await;
            }
            s.shutdown().await.unwrap();
            i
        })
    };
    let p = phase(1.5);
    tokio::time::sleep(p).await;
    rs.stop();
    let at_stop = sent.load(Ordering::Acquire);
    tokio::time::sleep(p).await;
    let during = sent.load(Ordering::Acquire) - at_stop;
    assert!(
        during > queue * 2,
        "the outage must outlast the queue: {during} sent during it"
    );
    let rs = rsyslog(&rs_dir, port);
    tokio::time::sleep(p).await;
    stop.store(true, Ordering::Release);
    let total = client.await.unwrap();
    wait_until("the input to read every frame", Duration::from_secs(10), || {
        input_records() - rec0 == total as u64
    })
    .await;
    let id = DrainSpec::parse(&url).unwrap().id;
    let drain = app.registry.drains().into_iter().find(|d| d.id() == id).unwrap();
    let out = rs_dir.join("out.json");
    // Settled: every record offered is delivered or dropped, and the L10 line
    // telling the drop has arrived.
    let settled = || drain.held() == 0 && entries(&out).iter().any(|e| e["msgid"] == "L10");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !settled() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        settled(),
        "the drain did not settle and tell its drops: {} held, {} dropped, {} entries at rsyslog",
        drain.held(),
        drain.dropped_total(),
        entries(&out).len()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = entries(&out);
    let (l10, records): (Vec<&Value>, Vec<&Value>) = all.iter().partition(|e| e["msgid"] == "L10");
    let received = records.len();
    let dropped = drain.dropped_total() as usize;
    assert!(dropped > 0, "an outage longer than the queue drops");
    // Everything that did not arrive was dropped at the full queue and counted;
    // a batch written while the receiver was going down was sent again, so it may
    // repeat (at most one batch), never go missing.
    let nums: Vec<usize> = records
        .iter()
        .map(|e| e["msg"].as_str().unwrap()["push ".len()..].parse().unwrap())
        .collect();
    let (firsts, repeats) = first_arrivals(&nums, total);
    assert!(firsts.windows(2).all(|w| w[0] < w[1]), "in order");
    let unknown = total - firsts.len() - dropped.min(total - firsts.len());
    assert_eq!(
        dropped + firsts.len(),
        total,
        "sent {total}, received {} distinct, dropped {dropped}",
        firsts.len()
    );
    assert!(repeats <= 1000, "{repeats} repeated lines: more than one batch");
    // The L10 lines add up to the drops.
    let told: usize = l10
        .iter()
        .map(|e| {
            let m = e["msg"].as_str().unwrap();
            let rest = m.strip_prefix("Error L10 (output buffer overflow): ").unwrap();
            rest.split(' ').next().unwrap().parse::<usize>().unwrap()
        })
        .sum();
    assert_eq!(told, dropped, "{l10:?}");
    if support::faults::soaking() {
        println!(
            "SOAK push outage: {total} sent, {received} received, {dropped} dropped and told in {} L10 line(s), {unknown} lost unknowingly at the stop, queue {queue}",
            l10.len()
        );
    }
    let report = app.shutdown().await;
    assert!(report.unflushed.is_empty(), "{report:?}");
    drop(rs);
}

/// The distinct values of `nums` in order of first arrival, and how many
/// arrivals were repeats.
fn first_arrivals(nums: &[usize], total: usize) -> (Vec<usize>, usize) {
    let mut seen = vec![false; total];
    let mut firsts = Vec::with_capacity(nums.len());
    for &n in nums {
        if !std::mem::replace(&mut seen[n], true) {
            firsts.push(n);
        }
    }
    let repeats = nums.len() - firsts.len();
    (firsts, repeats)
}

/// A slow but live drain behind the syslog TCP input: the input stops reading
/// its connection while the drain's queue is full, so TCP flow control slows
/// the sender and nothing is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tcp_input_pushes_back_on_its_sender_while_a_live_drain_is_slow() {
    let rx = Receiver::start(false).await;
    // At most one 4 KiB read every 2 ms: some 20,000 of these frames a second.
    rx.set_pause(Some(Duration::from_millis(2)));
    let queue = 200;
    let (app, input) = push_input(&rx.url(), queue).await;
    let total = 20_000;
    // As fast as the connection takes them: a hundred times the queue.
    let mut s = tokio::net::TcpStream::connect(input).await.unwrap();
    let mut buf = Vec::new();
    for i in 0..total {
        buf.extend_from_slice(&frame(i));
    }
    s.write_all(&buf).await.unwrap();
    s.shutdown().await.unwrap();
    let id = DrainSpec::parse(&rx.url()).unwrap().id;
    let drain = app.registry.drains().into_iter().find(|d| d.id() == id).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while rx.count() < total && drain.dropped_total() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(drain.dropped_total(), 0, "a slow drain pushes back instead of dropping");
    assert_eq!(rx.count(), total);
    app.shutdown().await;
}
