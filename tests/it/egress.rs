//! Drains named by a tenant, as an attacker would write them: a host *name*
//! that resolves to a denied address (`localhost`, or `127.2`, which the
//! resolver reads as 127.0.0.2 but no URL check sees as an address) is never
//! connected, over TCP, UDP or HTTP; the refusal is logged once and counted,
//! and the records are rejected so a tailer's checkpoint moves on. The same
//! URL from the operator's static routes connects and delivers. And no origin
//! gets more than `DRAIN_MAX` drains started.
//!
//! In process: a `RouteWriter` fed `RouteUpdate`s, real sockets on the loopback.

use crate::support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use logtrain::ack::{self, BatchStatus};
use logtrain::datasource::{OriginKind, RouteEvent, RouteObject, RouteSpec, RouteUpdate};
use logtrain::drain::{Drain, DrainContext, DrainSpec, Registry};
use logtrain::egress::{Egress, parse_list};
use logtrain::record::{InputKind, Record};
use logtrain::route::Routes;
use logtrain::route::writer::RouteWriter;
use support::http_recorder::Recorder;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};

const LIMIT: Duration = Duration::from_secs(10);

/// A TCP receiver on `ip` that counts the connections it accepts and the bytes it reads.
struct Peer {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Peer {
    async fn tcp(ip: &str) -> Peer {
        let l = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = l.local_addr().unwrap();
        let (accepted, bytes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (a, b) = (accepted.clone(), bytes.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                a.fetch_add(1, Ordering::SeqCst);
                let b = b.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 << 10];
                    while let Ok(n @ 1..) = s.read(&mut buf).await {
                        b.fetch_add(n, Ordering::SeqCst);
                    }
                });
            }
        });
        Peer {
            addr,
            accepted,
            bytes,
            task,
        }
    }

    /// A UDP receiver on `ip`: `accepted` counts datagrams.
    async fn udp(ip: &str) -> Peer {
        let s = UdpSocket::bind((ip, 0)).await.unwrap();
        let addr = s.local_addr().unwrap();
        let (accepted, bytes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (a, b) = (accepted.clone(), bytes.clone());
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = s.recv(&mut buf).await {
                a.fetch_add(1, Ordering::SeqCst);
                b.fetch_add(n, Ordering::SeqCst);
            }
        });
        Peer {
            addr,
            accepted,
            bytes,
            task,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn bytes(&self) -> usize {
        self.bytes.load(Ordering::SeqCst)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn apply(w: &mut RouteWriter, origin: OriginKind, id: &str, hostname: &str, drains: &[String]) {
    let routes = drains
        .iter()
        .map(|d| RouteSpec {
            hostname: hostname.into(),
            drain: d.clone(),
            tag: None,
        })
        .collect();
    w.apply(RouteUpdate {
        origin,
        event: RouteEvent::Apply(RouteObject { id: id.into(), routes }),
    });
    w.publish();
}

fn writer(egress: Option<Egress>, ctx: DrainContext) -> (RouteWriter, Routes, Arc<Registry>) {
    let registry = Arc::new(Registry::new(ctx));
    let routes = Routes::new();
    let mut w = RouteWriter::new(registry.clone(), routes.clone(), []);
    if let Some(e) = egress {
        w = w.with_egress(e);
    }
    (w, routes, registry)
}

/// The drain of `hostname`'s routes whose id is `url`'s.
fn drain_of(routes: &Routes, hostname: &str, url: &str) -> Arc<Drain> {
    // An annotation's copy of a drain is named apart from the operator's.
    let (id, tenant) = (DrainSpec::parse(url).unwrap().id, tenant_id(url));
    routes
        .load()
        .drains_for(hostname.as_bytes())
        .iter()
        .find(|d| d.id() == id || d.id() == tenant)
        .unwrap_or_else(|| panic!("no drain {id} for {hostname}"))
        .clone()
}

/// Sends `n` records to `drain` as the tailer does (one acknowledged batch,
/// waiting for room) and returns how the batch ended.
async fn send_acked(drain: &Drain, n: usize) -> BatchStatus {
    let (a, rx) = ack::batch();
    for i in 0..n {
        let mut r = Record::new(InputKind::Internal, "tenant.app", format!("line {i}"));
        r.ack = Some(a.clone());
        drain.send(Arc::new(r)).await;
    }
    drop(a);
    tokio::time::timeout(LIMIT, rx.wait())
        .await
        .expect("the batch's acknowledgement is held back")
}

/// The value of `name{drain="<url's id>"}` in `/metrics` (0 when absent).
/// The id of the copy of `url`'s drain an annotation gets (named apart from the operator's).
fn tenant_id(url: &str) -> String {
    DrainSpec::parse(url).unwrap().restricted(Arc::new(Egress::open())).id
}

/// A counter of the annotation's copy of `url`'s drain.
fn metric(name: &str, url: &str) -> u64 {
    let prefix = format!("{name}{{drain=\"{}\"}} ", tenant_id(url));
    logtrain::telemetry::render()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|v| v.parse().unwrap()))
        .unwrap_or(0)
}

fn route_errors(origin: &str) -> u64 {
    logtrain::telemetry::counter("logtrain_route_errors_total", &[("origin", origin)]).get()
}

/// Captured log lines mentioning `needle` and `id`.
fn log_lines(needle: &str, id: &str) -> usize {
    let logs = support::captured_logs();
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    text.lines().filter(|l| l.contains(needle) && l.contains(id)).count()
}

const REFUSED: &str = "Drain refused: its host resolves only to addresses DRAIN_DENY_NETWORKS forbids";

#[tokio::test]
async fn an_annotation_drain_to_a_name_of_a_denied_address_is_never_connected_while_the_operators_is() {
    support::captured_logs();
    let tcp = Peer::tcp("127.0.0.1").await;
    let udp = Peer::udp("127.0.0.1").await;
    let http = Recorder::start().await;
    // `localhost` is a name: the URL check lets it through, its addresses are loopback.
    let urls = [
        format!("syslog+tcp://localhost:{}", tcp.addr.port()),
        format!("syslog+udp://localhost:{}", udp.addr.port()),
        format!("http://tenant:HttpPassw0rd@localhost:{}/logs", http.port),
    ];
    let (mut w, routes, _registry) = writer(None, DrainContext::standalone());
    apply(
        &mut w,
        OriginKind::Kubernetes,
        "Deployment tenant/app",
        "tenant.app",
        &urls,
    );
    for url in &urls {
        let d = drain_of(&routes, "tenant.app", url);
        assert_eq!(send_acked(&d, 50).await, BatchStatus::Rejected, "{url}");
        // More records within the minute: rejected without looking the host up again.
        assert_eq!(send_acked(&d, 50).await, BatchStatus::Rejected, "{url}");
        assert_eq!(d.sent_total(), 0);
        assert_eq!(metric("logtrain_drain_rejected_total", url), 100, "{url}");
        assert_eq!(metric("logtrain_drain_denied_total", url), 1, "{url}");
        let id = tenant_id(url);
        assert_eq!(log_lines(REFUSED, &id), 1, "{url}: logged once");
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(tcp.accepted(), 0, "a TCP connection was made");
    assert_eq!(udp.accepted(), 0, "a datagram was sent");
    assert_eq!(http.connections(), 0, "an HTTP connection was made");
    let logs = String::from_utf8_lossy(&support::captured_logs().lock().unwrap()).into_owned();
    assert!(!logs.contains("HttpPassw0rd"), "a URL was logged");
    assert!(logs.contains("127.0.0.1"), "the denied address is named");

    // The same URLs from the operator's static routes connect and deliver.
    apply(&mut w, OriginKind::Static, "static", "ops.static", &urls);
    for url in &urls {
        let d = drain_of(&routes, "ops.static", url);
        assert_eq!(send_acked(&d, 10).await, BatchStatus::Delivered, "{url}");
    }
    assert!(tcp.accepted() >= 1 && tcp.bytes() > 0);
    support::wait_until("the datagrams", LIMIT, || udp.accepted() == 10).await;
    assert!(http.connections() >= 1 && !http.accepted().is_empty());
}

#[tokio::test]
async fn with_127_0_0_2_denied_an_annotation_drain_there_is_never_connected_while_one_to_127_0_0_1_delivers() {
    support::captured_logs();
    let denied = Peer::tcp("127.0.0.2").await;
    let allowed = Peer::tcp("127.0.0.1").await;
    let egress = Egress::new(parse_list("127.0.0.2/32").unwrap());
    let (mut w, routes, registry) = writer(Some(egress), DrainContext::standalone());
    let port = denied.addr.port();
    // `127.2` and `0x7f000002` are 127.0.0.2 to the resolver; the literal is refused at once.
    let spelled = [
        format!("syslog+tcp://127.2:{port}"),
        format!("syslog+tcp://0x7f000002:{port}"),
    ];
    let literal = format!("syslog+tcp://127.0.0.2:{port}");
    let good = format!("syslog+tcp://127.0.0.1:{}", allowed.addr.port());
    let errors = route_errors("kubernetes");
    let mut all = spelled.to_vec();
    all.extend([literal, good.clone()]);
    apply(
        &mut w,
        OriginKind::Kubernetes,
        "Deployment tenant/app",
        "tenant.app",
        &all,
    );
    assert_eq!(
        route_errors("kubernetes"),
        errors + 1,
        "the literal is refused as a route"
    );
    assert_eq!(registry.drains().len(), 3);
    for url in &spelled {
        let d = drain_of(&routes, "tenant.app", url);
        assert_eq!(send_acked(&d, 20).await, BatchStatus::Rejected, "{url}");
        assert_eq!(metric("logtrain_drain_denied_total", url), 1, "{url}");
        let id = tenant_id(url);
        assert_eq!(log_lines(REFUSED, &id), 1, "{url}");
    }
    let d = drain_of(&routes, "tenant.app", &good);
    assert_eq!(send_acked(&d, 20).await, BatchStatus::Delivered);
    assert_eq!(d.sent_total(), 20);
    assert!(allowed.bytes() > 0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(denied.accepted(), 0, "a denied address was connected");
}

#[tokio::test]
async fn past_drain_max_a_route_to_one_more_drain_is_refused_and_counted() {
    support::captured_logs();
    let mut ctx = DrainContext::standalone();
    ctx.max_drains = 3;
    let (mut w, routes, registry) = writer(None, ctx);
    // Postgres is this test's origin alone, so its error count is ours.
    let errors = route_errors("postgres");
    let urls: Vec<String> = (0..4)
        .map(|i| format!("syslog+tcp://drain-max-{i}.invalid:514"))
        .collect();
    apply(&mut w, OriginKind::Postgres, "row 1", "many.app", &urls);
    assert_eq!(registry.drains().len(), 3);
    assert_eq!(routes.load().drains_for(b"many.app").len(), 3);
    assert_eq!(route_errors("postgres"), errors + 1);
    assert_eq!(log_lines("DRAIN_MAX", "drain-max-3.invalid"), 1);
    // Publishing again neither starts it nor says it again.
    w.publish();
    assert_eq!(registry.drains().len(), 3);
    assert_eq!(route_errors("postgres"), errors + 1);
}
