//! The disk buffer under the driver, with an in-process sink that can be held
//! down: spilling, replay in order, acknowledgements on write, the budget,
//! and what a restart finds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio_util::task::TaskTracker;

use super::super::{Delivery, DriverConfig, Sink, SinkError, spawn};
use crate::ack::{self, BatchStatus};
use crate::drain::buffer::{BufferConfig, segment};
use crate::record::{InputKind, Record, SharedRecord};
use crate::secret::Secret;

#[derive(Default)]
struct Receiver {
    got: Mutex<Vec<Bytes>>,
    down: AtomicBool,
}

struct Held(Arc<Receiver>);

impl Sink for Held {
    type Conn = ();
    async fn connect(&self) -> Result<(), SinkError> {
        if self.0.down.load(Ordering::SeqCst) {
            return Err(SinkError::connect(
                "127.0.0.1:1",
                std::io::ErrorKind::ConnectionRefused.into(),
            ));
        }
        Ok(())
    }
    async fn send(&self, _: &mut (), batch: &[SharedRecord]) -> Result<Delivery, SinkError> {
        if self.0.down.load(Ordering::SeqCst) {
            return Err(SinkError::Io(std::io::Error::other("reset")));
        }
        self.0.got.lock().extend(batch.iter().map(|r| r.message.clone()));
        Ok(Delivery::default())
    }
}

fn cfg(root: &std::path::Path, max_bytes: u64) -> DriverConfig {
    DriverConfig {
        queue_records: 100,
        batch_records: 20,
        backoff_min: Duration::from_millis(1),
        backoff_max: Duration::from_millis(20),
        give_up_after: Duration::from_secs(5),
        buffer: Some(BufferConfig::new(root.to_path_buf(), max_bytes, 1 << 30)),
        buffer_key: Some(Secret::new("syslog+tcp://example:1")),
        ..DriverConfig::default()
    }
}

fn rec(i: usize) -> Record {
    Record::new(InputKind::Internal, "web.default", format!("line {i:06}"))
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("not reached: {what}");
}

fn lines(r: &Receiver) -> Vec<String> {
    r.got
        .lock()
        .iter()
        .filter(|m| m.starts_with(b"line "))
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect()
}

fn expected(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("line {i:06}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_drain_spills_releases_acks_on_write_and_replays_in_order() {
    let root = tempfile::tempdir().unwrap();
    let r = Arc::new(Receiver::default());
    r.down.store(true, Ordering::SeqCst);
    let t = TaskTracker::new();
    let d = spawn("spill-order", Held(r.clone()), cfg(root.path(), 1 << 30), &t);
    let (ack, rx) = ack::batch();
    let n = 5_000;
    for i in 0..n {
        let mut x = rec(i);
        x.ack = Some(ack.clone());
        assert!(d.send(Arc::new(x)).await, "record {i} taken");
        if i == 60 {
            // Its connection fails on the first batch (before the queue is
            // full and records spill on their own).
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    drop(ack);
    // The drain is down, yet what it could not queue was written to disk,
    // which counts as delivered for all but the few records in memory.
    let dir = BufferConfig::new(root.path().into(), 1, 1).dir("syslog+tcp://example:1");
    wait_for("segments written", || segment::list(&dir).is_ok_and(|s| !s.is_empty())).await;
    // The queue, plus the batches its connection, that connection's channel
    // and the dispatcher hold.
    let held = d.held();
    assert!(
        held <= 100 + 4 * 20,
        "memory holds at most a queue and a few batches: {held}"
    );
    // Even those the failing connection and the queue held went to disk:
    // every record is acknowledged while the drain is still down (a tailer's
    // checkpoint passes them all).
    let status = tokio::time::timeout(Duration::from_secs(5), rx.wait())
        .await
        .expect("acknowledged while the drain is down");
    assert_eq!(status, BatchStatus::Delivered);
    assert!(lines(&r).is_empty());
    r.down.store(false, Ordering::SeqCst);
    wait_for("everything delivered", || lines(&r).len() >= n).await;
    assert_eq!(lines(&r), expected(n), "every line, in order, once");
    wait_for("segments removed once confirmed", || {
        segment::list(&dir).is_ok_and(|s| s.is_empty())
    })
    .await;
    // Caught up: records go straight to memory again.
    assert!(d.offer(&Arc::new(rec(n))));
    wait_for("the next one", || lines(&r).len() == n + 1).await;
    assert_eq!(segment::list(&dir).unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyond_the_budget_records_are_dropped_counted_and_told() {
    let root = tempfile::tempdir().unwrap();
    let r = Arc::new(Receiver::default());
    r.down.store(true, Ordering::SeqCst);
    let t = TaskTracker::new();
    let budget = 100 * super::codec::frame_len(&rec(0)) as u64;
    let d = spawn("spill-budget", Held(r.clone()), cfg(root.path(), budget), &t);
    let n = 1_000;
    let taken = (0..n).filter(|&i| d.offer(&Arc::new(rec(i)))).count();
    // The disk (100) and memory (the queue, batches the dispatcher handed
    // on) take some; every other record is dropped and counted.
    assert!((100..=300).contains(&taken), "taken {taken}");
    assert_eq!(d.dropped_total() as usize, n - taken);
    let told = format!(
        "Error L10 (output buffer overflow): {} messages dropped since",
        n - taken
    );
    r.down.store(false, Ordering::SeqCst);
    wait_for("what was taken delivered", || lines(&r).len() == taken).await;
    assert_eq!(
        lines(&r),
        lines(&r)
            .iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>(),
        "in order"
    );
    wait_for("the drop told", || {
        r.got.lock().iter().any(|m| m.starts_with(told.as_bytes()))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_on_disk_at_shutdown_is_replayed_by_the_next_start() {
    let root = tempfile::tempdir().unwrap();
    let r = Arc::new(Receiver::default());
    r.down.store(true, Ordering::SeqCst);
    let t = TaskTracker::new();
    let d = spawn("spill-restart", Held(r.clone()), cfg(root.path(), 1 << 30), &t);
    let n = 3_000;
    for i in 0..n {
        assert!(d.send(Arc::new(rec(i))).await);
    }
    d.close_for_shutdown();
    t.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), t.wait()).await;
    d.abandon();
    // Its connection gives up after `give_up_after`; then every task is done.
    tokio::time::timeout(Duration::from_secs(10), t.wait()).await.unwrap();
    assert!(d.is_finished());
    drop(d);
    // The next start: the same drain, its receiver back.
    r.down.store(false, Ordering::SeqCst);
    let t = TaskTracker::new();
    let _d = spawn("spill-restart", Held(r.clone()), cfg(root.path(), 1 << 30), &t);
    // At most the queue and the batches in flight (100 + 4 × 20) were only
    // in memory (none, once its first failure moved them to disk).
    wait_for("the buffer replayed", || lines(&r).len() >= n - 180).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = lines(&r);
    // What sat in memory at shutdown is the input's to send again (the
    // tailer's checkpoint did not pass it); everything that reached the disk
    // arrives, in order.
    let first: usize = got[0][5..].parse().unwrap();
    assert!(first <= 180, "first replayed {first}");
    let want = expected(n)[first..].to_vec();
    let at = got.iter().zip(&want).position(|(a, b)| a != b);
    assert!(
        got == want,
        "{} lines, {} wanted, first difference at {at:?}: {:?}",
        got.len(),
        want.len(),
        at.map(|i| &got[i.saturating_sub(2)..(i + 3).min(got.len())])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tailer_waits_at_the_budget_instead_of_dropping() {
    let root = tempfile::tempdir().unwrap();
    let r = Arc::new(Receiver::default());
    r.down.store(true, Ordering::SeqCst);
    let t = TaskTracker::new();
    let budget = 50 * super::codec::frame_len(&rec(0)) as u64;
    let d = spawn("spill-wait", Held(r.clone()), cfg(root.path(), budget), &t);
    let n = 1_000;
    let d2 = d.clone();
    let sender = tokio::spawn(async move {
        let recs: Vec<SharedRecord> = (0..n).map(|i| Arc::new(rec(i))).collect();
        d2.send_batch(&recs).await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!sender.is_finished(), "the disk budget is spent: the sender waits");
    assert_eq!(d.dropped_total(), 0);
    r.down.store(false, Ordering::SeqCst);
    assert_eq!(sender.await.unwrap(), n);
    wait_for("everything delivered", || lines(&r).len() == n).await;
    assert_eq!(lines(&r), expected(n), "every line, in order, once");
    assert_eq!(d.dropped_total(), 0);
}
