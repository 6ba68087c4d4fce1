//! Driver tests with an in-process sink that records what it is given and can
//! be told to fail, refuse or stall.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex as PMutex;
use tokio::time::{Instant, sleep};
use tokio_util::task::TaskTracker;

use super::*;
use crate::ack::{self, BatchStatus};
use crate::record::{InputKind, Record, SharedRecord};

#[derive(Default)]
struct Recorder {
    got: PMutex<Vec<(u64, Bytes, Bytes)>>,
    fail_connects: AtomicU32,
    fail_sends: AtomicU32,
    refuse: AtomicBool,
    stall: AtomicBool,
    /// Milliseconds every send takes (a slow receiver).
    delay_ms: AtomicU32,
    conns: AtomicU32,
    /// Behaves like syslog over TCP: nothing acknowledges a write.
    unacknowledged: AtomicBool,
    /// The next health check finds the connection gone (once).
    dies: AtomicBool,
    /// Connections tried (successful or not).
    attempts: AtomicU32,
    /// Every address of the host is denied (a tenant's drain).
    deny: AtomicBool,
}

struct TestSink(Arc<Recorder>);

impl Sink for TestSink {
    type Conn = u64;
    async fn connect(&self) -> Result<u64, SinkError> {
        let r = &self.0;
        r.attempts.fetch_add(1, Ordering::SeqCst);
        if r.deny.load(Ordering::SeqCst) {
            let denied = crate::egress::Egress::default()
                .check("127.0.0.1".parse().unwrap())
                .unwrap_err();
            return Err(SinkError::Denied {
                host: "localhost".into(),
                denied,
            });
        }
        if r.fail_connects.load(Ordering::SeqCst) > 0 {
            r.fail_connects.fetch_sub(1, Ordering::SeqCst);
            return Err(SinkError::connect(
                "127.0.0.1:1",
                std::io::ErrorKind::ConnectionRefused.into(),
            ));
        }
        Ok(r.conns.fetch_add(1, Ordering::SeqCst) as u64)
    }
    async fn send(&self, conn: &mut u64, batch: &[SharedRecord]) -> Result<Delivery, SinkError> {
        let r = &self.0;
        while r.stall.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let delay = r.delay_ms.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay.into())).await;
        }
        if r.refuse.load(Ordering::SeqCst) {
            return Err(SinkError::Refused {
                status: 400,
                body: "bad".into(),
            });
        }
        if r.fail_sends.load(Ordering::SeqCst) > 0 {
            r.fail_sends.fetch_sub(1, Ordering::SeqCst);
            return Err(SinkError::Io(std::io::Error::other("reset")));
        }
        let mut g = r.got.lock();
        for rec in batch {
            g.push((*conn, rec.hostname.clone(), rec.message.clone()));
        }
        Ok(Delivery::default())
    }
    fn unacknowledged(&self) -> bool {
        self.0.unacknowledged.load(Ordering::SeqCst)
    }
    async fn healthy(&self, _conn: &mut u64) -> bool {
        !self.0.dies.swap(false, Ordering::SeqCst)
    }
}

fn cfg() -> DriverConfig {
    DriverConfig {
        backoff_min: Duration::from_millis(1),
        backoff_max: Duration::from_millis(5),
        ..DriverConfig::default()
    }
}

fn rec(host: &str, msg: String) -> SharedRecord {
    Arc::new(Record::new(InputKind::Internal, host.to_string(), msg))
}

async fn wait_for(mut f: impl FnMut() -> bool) {
    for _ in 0..2000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition not reached");
}

#[tokio::test]
async fn delivers_in_order_per_source_with_a_growing_pool() {
    let r = Arc::new(Recorder::default());
    r.stall.store(true, Ordering::SeqCst);
    let t = TaskTracker::new();
    let c = DriverConfig {
        grow_above: 10,
        grow_after: Duration::ZERO,
        max_connections: 4,
        queue_records: 100_000,
        batch_records: 50,
        ..cfg()
    };
    let d = spawn("test-order", TestSink(r.clone()), c, &t);
    for i in 0..4000 {
        let host = format!("h{}", i % 13);
        assert!(d.offer(&rec(&host, format!("{i}"))));
        if i % 500 == 0 {
            tokio::task::yield_now().await;
        }
    }
    r.stall.store(false, Ordering::SeqCst);
    wait_for(|| r.got.lock().len() == 4000).await;
    let got = r.got.lock();
    let mut last: HashMap<Bytes, i64> = HashMap::new();
    for (_, h, m) in got.iter() {
        let n: i64 = std::str::from_utf8(m).unwrap().parse().unwrap();
        let prev = last.insert(h.clone(), n).unwrap_or(-1);
        assert!(n > prev, "out of order for {h:?}: {prev} then {n}");
    }
    assert!(r.conns.load(Ordering::SeqCst) > 1, "pool never grew");
    assert_eq!(d.sent_total(), 4000);
}

#[tokio::test]
async fn pool_grows_for_a_slow_receiver_not_for_a_deep_queue_alone() {
    let deep = |grow_after| DriverConfig {
        grow_above: 10,
        grow_after,
        max_connections: 4,
        queue_records: 100_000,
        batch_records: 50,
        ..cfg()
    };
    let offer_all = |d: &Drain, n: usize| {
        for i in 0..n {
            assert!(d.offer(&rec(&format!("h{}", i % 13), format!("{i}"))));
        }
    };
    // A receiver that takes everything at once: the queue is deep, but one
    // connection keeps up, so no other is opened.
    let fast = Arc::new(Recorder::default());
    let t = TaskTracker::new();
    let d = spawn(
        "test-fast",
        TestSink(fast.clone()),
        deep(Duration::from_millis(500)),
        &t,
    );
    offer_all(&d, 20_000);
    wait_for(|| fast.got.lock().len() == 20_000).await;
    assert_eq!(fast.conns.load(Ordering::SeqCst), 1, "pool grew for a fast receiver");

    // A receiver that takes 30 ms per batch: the pool grows.
    let slow = Arc::new(Recorder::default());
    slow.delay_ms.store(30, Ordering::SeqCst);
    let d = spawn("test-slow", TestSink(slow.clone()), deep(Duration::from_millis(10)), &t);
    offer_all(&d, 1_000);
    wait_for(|| slow.got.lock().len() == 1_000).await;
    assert!(
        slow.conns.load(Ordering::SeqCst) > 1,
        "pool never grew for a slow receiver"
    );
    assert_eq!(d.sent_total(), 1_000);
}

#[tokio::test]
async fn the_pool_shrinks_to_one_connection_when_idle() {
    let slow = Arc::new(Recorder::default());
    slow.delay_ms.store(30, Ordering::SeqCst);
    let t = TaskTracker::new();
    let c = DriverConfig {
        grow_above: 10,
        grow_after: Duration::from_millis(10),
        max_connections: 4,
        queue_records: 100_000,
        batch_records: 50,
        idle_timeout: Duration::from_millis(200),
        ..cfg()
    };
    let d = spawn("test-shrink", TestSink(slow.clone()), c, &t);
    for i in 0..1_000 {
        assert!(d.offer(&rec(&format!("h{}", i % 13), format!("{i}"))));
    }
    let open = || crate::telemetry::gauge("logtrain_drain_connections", &[("drain", "test-shrink")]).get();
    wait_for(|| open() > 1).await;
    wait_for(|| slow.got.lock().len() == 1_000).await;
    // Idle now: every connection but the last is closed, one at a time.
    wait_for(|| open() == 1).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(open(), 1, "the last connection stays open");
    // And it still delivers.
    assert!(d.offer(&rec("h0", "after".into())));
    wait_for(|| slow.got.lock().len() == 1_001).await;
}

#[tokio::test]
async fn overflow_drops_are_counted_exactly_and_told_to_the_drain() {
    let r = Arc::new(Recorder::default());
    r.stall.store(true, Ordering::SeqCst);
    let t = TaskTracker::new();
    let c = DriverConfig {
        queue_records: 100,
        max_connections: 1,
        batch_records: 10,
        ..cfg()
    };
    let d = spawn("test-overflow", TestSink(r.clone()), c, &t);
    let mut accepted = 0u64;
    let mut dropped = 0u64;
    let mut acks = Vec::new();
    for i in 0..1000 {
        let (a, rx) = ack::batch();
        let mut rr = Record::new(InputKind::Internal, "h", format!("{i}"));
        rr.ack = Some(a);
        let rr = Arc::new(rr);
        let queued = d.offer(&rr);
        if queued {
            accepted += 1;
        } else {
            dropped += 1;
        }
        acks.push((queued, rx));
        drop(rr);
        if i % 100 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    assert!(dropped > 0);
    assert_eq!(d.dropped_total(), dropped);
    r.stall.store(false, Ordering::SeqCst);
    wait_for(|| r.got.lock().len() as u64 == accepted + 1).await;
    let got = r.got.lock().clone();
    let summary = got
        .iter()
        .find(|(_, h, _)| h.as_ref() == b"logtrain")
        .expect("summary line");
    let text = String::from_utf8_lossy(&summary.2).to_string();
    assert!(text.contains(&format!("{dropped} messages dropped since")), "{text}");
    for (queued, rx) in acks {
        let want = if queued {
            BatchStatus::Delivered
        } else {
            BatchStatus::Rejected
        };
        assert_eq!(rx.wait().await, want);
    }
}

#[tokio::test]
async fn retries_through_connect_and_write_failures_without_loss() {
    let r = Arc::new(Recorder::default());
    r.fail_connects.store(3, Ordering::SeqCst);
    r.fail_sends.store(2, Ordering::SeqCst);
    let t = TaskTracker::new();
    let d = spawn("test-retry", TestSink(r.clone()), cfg(), &t);
    for i in 0..50 {
        assert!(d.offer(&rec("h", format!("{i}"))));
    }
    wait_for(|| r.got.lock().len() == 50).await;
    let msgs: Vec<String> = r
        .got
        .lock()
        .iter()
        .map(|x| String::from_utf8_lossy(&x.2).to_string())
        .collect();
    assert_eq!(msgs, (0..50).map(|i| i.to_string()).collect::<Vec<_>>());
    assert!(telemetry::counter("logtrain_drain_errors_total", &[("drain", "test-retry")]).get() >= 5);
}

#[tokio::test]
async fn refused_batches_are_rejected_not_retried() {
    let r = Arc::new(Recorder::default());
    r.refuse.store(true, Ordering::SeqCst);
    let t = TaskTracker::new();
    let d = spawn("test-refuse", TestSink(r.clone()), cfg(), &t);
    let (a, rx) = ack::batch();
    let mut x = Record::new(InputKind::Internal, "h", "m");
    x.ack = Some(a);
    assert!(d.offer(&Arc::new(x)));
    assert_eq!(rx.wait().await, BatchStatus::Rejected);
    assert!(r.got.lock().is_empty());
}

#[tokio::test]
async fn shutdown_flushes_or_reports_what_is_left() {
    let r = Arc::new(Recorder::default());
    let t = TaskTracker::new();
    let d = spawn("test-flush", TestSink(r.clone()), cfg(), &t);
    for i in 0..100 {
        d.offer(&rec("h", format!("{i}")));
    }
    d.close();
    t.close();
    tokio::time::timeout(Duration::from_secs(5), t.wait()).await.unwrap();
    assert_eq!(r.got.lock().len(), 100);
    assert!(d.is_finished());

    let r = Arc::new(Recorder::default());
    r.stall.store(true, Ordering::SeqCst);
    let t = TaskTracker::new();
    let d = spawn("test-stuck", TestSink(r.clone()), cfg(), &t);
    for i in 0..100 {
        d.offer(&rec("h", format!("{i}")));
    }
    d.close();
    t.close();
    assert!(
        tokio::time::timeout(Duration::from_millis(100), t.wait())
            .await
            .is_err()
    );
    assert_eq!(d.abandon(), 100);
}

#[tokio::test]
async fn an_unacknowledged_write_is_confirmed_only_on_a_live_connection_and_sent_again_otherwise() {
    let r = Arc::new(Recorder::default());
    r.unacknowledged.store(true, Ordering::SeqCst);
    let t = TaskTracker::new();
    let d = spawn("test-unacked", TestSink(r.clone()), cfg(), &t);
    // The receiver goes away after the write, before the hold ends.
    r.dies.store(true, Ordering::SeqCst);
    let (a, rx) = ack::batch();
    let mut x = Record::new(InputKind::Internal, "h", "m");
    x.ack = Some(a);
    assert!(d.offer(&Arc::new(x)));
    // Acknowledged only once written again on a new connection that stayed up.
    assert_eq!(rx.wait().await, BatchStatus::Delivered);
    let got = r.got.lock().clone();
    assert_eq!(got.len(), 2, "sent again once");
    assert_ne!(got[0].0, got[1].0, "on a new connection");
    assert_eq!(d.held(), 0);
}

/// A record of its own acknowledged batch.
fn acked(msg: &str) -> (SharedRecord, ack::AckReceiver) {
    let (a, rx) = ack::batch();
    let mut x = Record::new(InputKind::Internal, "h", msg.to_string());
    x.ack = Some(a);
    (Arc::new(x), rx)
}

#[tokio::test(start_paused = true)]
async fn a_closed_drain_whose_receiver_is_down_or_hanging_gives_up_in_time_and_its_series_vanish() {
    for (id, hanging) in [("test-give-up-down", false), ("test-give-up-hanging", true)] {
        let r = Arc::new(Recorder::default());
        if hanging {
            r.stall.store(true, Ordering::SeqCst);
        } else {
            r.fail_connects.store(u32::MAX, Ordering::SeqCst);
        }
        let t = TaskTracker::new();
        let c = DriverConfig {
            give_up_after: Duration::from_secs(2),
            batch_records: 10,
            ..cfg()
        };
        let d = spawn(id, TestSink(r.clone()), c, &t);
        let mut acks = Vec::new();
        for i in 0..50 {
            let (x, rx) = acked(&format!("{i}"));
            assert!(d.offer(&x));
            acks.push(rx);
        }
        sleep(Duration::from_millis(500)).await;
        let label = format!("drain=\"{id}\"");
        assert!(telemetry::render().contains(&label));
        let closed = Instant::now();
        d.close();
        wait_for(|| d.is_finished()).await;
        let took = closed.elapsed();
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_millis(2100),
            "{id}: finished {took:?} after closing"
        );
        for rx in acks {
            assert_eq!(rx.wait().await, BatchStatus::Rejected, "{id}");
        }
        assert_eq!(d.dropped_total(), 50, "{id}");
        assert_eq!(d.held(), 0, "{id}");
        assert!(r.got.lock().is_empty());
        assert!(!telemetry::render().contains(&label), "{id}: series left behind");
    }
}

#[tokio::test(start_paused = true)]
async fn a_denied_host_is_not_retried_its_records_are_rejected_and_it_is_looked_up_again_later() {
    let r = Arc::new(Recorder::default());
    r.deny.store(true, Ordering::SeqCst);
    let t = TaskTracker::new();
    let d = spawn("test-denied", TestSink(r.clone()), cfg(), &t);
    let attempts = || r.attempts.load(Ordering::SeqCst);
    let denied = || telemetry::counter("logtrain_drain_denied_total", &[("drain", "test-denied")]).get();
    let rejected = || telemetry::counter("logtrain_drain_rejected_total", &[("drain", "test-denied")]).get();
    for i in 0..20 {
        let (x, rx) = acked(&format!("{i}"));
        assert!(d.offer(&x));
        drop(x);
        assert_eq!(rx.wait().await, BatchStatus::Rejected);
    }
    assert_eq!(attempts(), 1, "looked up once, not retried");
    assert_eq!((denied(), rejected()), (1, 20));
    // A minute later the host is looked up again: still denied.
    sleep(Duration::from_secs(61)).await;
    let (x, rx) = acked("later");
    assert!(d.offer(&x));
    drop(x);
    assert_eq!(rx.wait().await, BatchStatus::Rejected);
    assert_eq!((attempts(), denied(), rejected()), (2, 2, 21));
    // Its name now resolves to an allowed address: delivered.
    r.deny.store(false, Ordering::SeqCst);
    sleep(Duration::from_secs(61)).await;
    let (x, rx) = acked("allowed");
    assert!(d.offer(&x));
    drop(x);
    assert_eq!(rx.wait().await, BatchStatus::Delivered);
    assert_eq!(r.got.lock().len(), 1);
    assert_eq!(
        telemetry::counter("logtrain_drain_errors_total", &[("drain", "test-denied")]).get(),
        0
    );
}
