use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use super::*;

/// A listener whose connections are read until they fail; each connection
/// reports its number (in order of acceptance) and how its reads ended.
struct Harness {
    addr: SocketAddr,
    ended: mpsc::UnboundedReceiver<(usize, io::ErrorKind)>,
    links: mpsc::UnboundedReceiver<Arc<Link>>,
    input: &'static str,
    stop: Shutdown,
}

async fn harness(input: &'static str, max: usize, idle: Duration, at_cap: AtCap) -> Harness {
    let settings = Settings {
        input,
        max_connections: max,
        idle,
        at_cap,
    };
    let listener = Listener::bind("127.0.0.1:0".parse().unwrap(), settings).await.unwrap();
    let addr = listener.local_addr();
    let (ended_tx, ended) = mpsc::unbounded_channel();
    let (links_tx, links) = mpsc::unbounded_channel();
    let stop = Shutdown::new();
    let n = Arc::new(AtomicUsize::new(0));
    tokio::spawn(listener.run(stop.clone(), move |mut conn: Conn| {
        let i = n.fetch_add(1, Ordering::Relaxed);
        let (ended_tx, links_tx) = (ended_tx.clone(), links_tx.clone());
        let _ = links_tx.send(conn.link());
        async move {
            let mut buf = [0u8; 64];
            let kind = loop {
                match conn.read(&mut buf).await {
                    Ok(0) => break io::ErrorKind::UnexpectedEof,
                    Ok(_) => {}
                    Err(e) => break e.kind(),
                }
            };
            let _ = ended_tx.send((i, kind));
        }
    }));
    Harness {
        addr,
        ended,
        links,
        input,
        stop,
    }
}

impl Harness {
    async fn connect(&mut self) -> (TcpStream, Arc<Link>) {
        let s = TcpStream::connect(self.addr).await.unwrap();
        let link = tokio::time::timeout(Duration::from_secs(5), self.links.recv())
            .await
            .expect("admitted")
            .unwrap();
        (s, link)
    }

    async fn next_end(&mut self) -> (usize, io::ErrorKind) {
        tokio::time::timeout(Duration::from_secs(5), self.ended.recv())
            .await
            .expect("a connection ended")
            .unwrap()
    }

    fn counter(&self, name: &'static str) -> u64 {
        telemetry::counter(name, &[("input", self.input)]).get()
    }

    fn open(&self) -> i64 {
        telemetry::gauge("logtrain_input_connections", &[("input", self.input)]).get()
    }
}

/// True when the peer closed `s` within `limit`.
async fn closed(s: &mut TcpStream, limit: Duration) -> bool {
    let mut b = [0u8; 16];
    matches!(
        tokio::time::timeout(limit, s.read(&mut b)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test]
async fn a_listener_that_refuses_closes_the_newcomer_and_keeps_the_others() {
    let mut h = harness("test_refuse", 2, Duration::from_secs(30), AtCap::Refuse).await;
    let (mut a, _) = h.connect().await;
    let (mut b, _) = h.connect().await;
    let mut c = TcpStream::connect(h.addr).await.unwrap();
    assert!(closed(&mut c, Duration::from_secs(5)).await);
    assert_eq!(h.counter("logtrain_input_connections_refused_total"), 1);
    assert_eq!(h.open(), 2);
    assert!(!closed(&mut a, Duration::from_millis(100)).await);
    assert!(!closed(&mut b, Duration::from_millis(10)).await);
    h.stop.stop_and_wait(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn at_the_cap_the_longest_idle_connection_makes_room() {
    let mut h = harness("test_evict", 2, Duration::from_secs(30), AtCap::EvictIdlest).await;
    let (mut a, _) = h.connect().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (mut b, _) = h.connect().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    // `a` is older, but it just sent a byte: `b` has been idle longest.
    a.write_all(b"x").await.unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (mut c, _) = h.connect().await;
    assert_eq!(h.next_end().await, (1, io::ErrorKind::ConnectionAborted));
    assert!(closed(&mut b, Duration::from_secs(5)).await);
    assert!(!closed(&mut a, Duration::from_millis(50)).await);
    assert!(!closed(&mut c, Duration::from_millis(10)).await);
    assert_eq!(h.counter("logtrain_input_connections_evicted_total"), 1);
    assert_eq!(h.counter("logtrain_input_connections_refused_total"), 0);
    assert_eq!(h.open(), 2);
    h.stop.stop_and_wait(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_connection_with_a_request_in_flight_is_never_evicted() {
    let mut h = harness("test_in_flight", 2, Duration::from_secs(30), AtCap::EvictIdlest).await;
    let (mut a, a_link) = h.connect().await;
    let busy_a = a_link.request();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (mut b, b_link) = h.connect().await;
    // `a` is idlest, but busy: `b` goes.
    let (_c, c_link) = h.connect().await;
    assert_eq!(h.next_end().await.0, 1);
    assert!(closed(&mut b, Duration::from_secs(5)).await);
    drop(b_link);
    // With every connection busy, a newcomer is refused.
    let _busy_c = c_link.request();
    let mut d = TcpStream::connect(h.addr).await.unwrap();
    assert!(closed(&mut d, Duration::from_secs(5)).await);
    assert_eq!(h.counter("logtrain_input_connections_refused_total"), 1);
    assert!(!closed(&mut a, Duration::from_millis(50)).await);
    drop(busy_a);
    h.stop.stop_and_wait(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn a_silent_connection_times_out_but_not_while_a_request_is_in_flight() {
    let idle = Duration::from_millis(300);
    let mut h = harness("test_idle", 4, idle, AtCap::Refuse).await;
    let (mut quiet, _) = h.connect().await;
    let (mut busy, link) = h.connect().await;
    let guard = link.request();
    let t = std::time::Instant::now();
    assert_eq!(h.next_end().await, (0, io::ErrorKind::TimedOut));
    assert!(t.elapsed() >= idle - Duration::from_millis(50), "{:?}", t.elapsed());
    assert!(closed(&mut quiet, Duration::from_secs(5)).await);
    // Bytes keep a connection alive; a request in flight too, however long.
    tokio::time::sleep(idle * 2).await;
    assert!(!closed(&mut busy, Duration::from_millis(10)).await);
    drop(guard);
    let t = std::time::Instant::now();
    assert_eq!(h.next_end().await, (1, io::ErrorKind::TimedOut));
    assert!(
        t.elapsed() >= idle - Duration::from_millis(50),
        "the request's end counts as activity"
    );
    assert_eq!(h.open(), 0);
    h.stop.stop_and_wait(Duration::from_secs(1)).await;
}
