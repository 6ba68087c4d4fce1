//! Tests of the routing table: origin counting, relist semantics, bad URLs,
//! and lock-free snapshots.

use super::writer::RouteWriter;
use super::*;
use crate::datasource::{OriginKind, RouteEvent, RouteObject, RouteSpec, RouteUpdate};
use crate::drain::{DrainContext, Registry};

fn obj(id: &str, routes: &[(&str, &str)]) -> RouteObject {
    RouteObject {
        id: id.into(),
        routes: routes
            .iter()
            .map(|(h, d)| RouteSpec {
                hostname: h.to_string(),
                drain: d.to_string(),
                tag: None,
            })
            .collect(),
    }
}

fn up(origin: OriginKind, event: RouteEvent) -> RouteUpdate {
    RouteUpdate { origin, event }
}

fn drains(routes: &Routes, host: &str) -> Vec<String> {
    let mut v: Vec<String> = routes
        .load()
        .drains_for(host.as_bytes())
        .iter()
        .map(|d| d.id().to_string())
        .collect();
    v.sort();
    v
}

fn setup(expected: &[OriginKind]) -> (RouteWriter, Routes, Arc<Registry>) {
    let registry = Arc::new(Registry::new(DrainContext::standalone()));
    let routes = Routes::new();
    (
        RouteWriter::new(registry.clone(), routes.clone(), expected.iter().copied()),
        routes,
        registry,
    )
}

#[tokio::test]
async fn origins_are_counted_separately() {
    let (mut w, routes, registry) = setup(&[]);
    let a = "file:///tmp/logtrain-route-a.log";
    w.apply(up(
        OriginKind::Static,
        RouteEvent::Apply(obj("s1", &[("web.default", a)])),
    ));
    w.apply(up(
        OriginKind::Postgres,
        RouteEvent::Apply(obj("row1", &[("web.default", a)])),
    ));
    w.publish();
    assert_eq!(drains(&routes, "web.default"), vec![a]);
    assert_eq!(routes.load().len(), 1, "one route, declared twice");

    // Postgres removes its copy: the static one keeps the route and the drain.
    let before = routes.load().drains_for(b"web.default")[0].clone();
    assert!(w.apply(up(OriginKind::Postgres, RouteEvent::Delete("row1".into()))));
    w.publish();
    assert_eq!(drains(&routes, "web.default"), vec![a]);
    assert!(
        Arc::ptr_eq(&before, &routes.load().drains_for(b"web.default")[0]),
        "drain restarted"
    );
    assert!(!before.is_finished());

    // Two objects of the same origin: deleting one keeps the route.
    w.apply(up(OriginKind::Postgres, RouteEvent::Apply(obj("row x", &[("x.a", a)]))));
    w.apply(up(OriginKind::Postgres, RouteEvent::Apply(obj("row y", &[("x.a", a)]))));
    w.apply(up(OriginKind::Postgres, RouteEvent::Delete("row x".into())));
    w.publish();
    assert_eq!(drains(&routes, "x.a"), vec![a]);

    // Last reference gone: route removed and the drain closed.
    w.apply(up(OriginKind::Static, RouteEvent::Delete("s1".into())));
    w.apply(up(OriginKind::Postgres, RouteEvent::Delete("row y".into())));
    w.publish();
    assert!(drains(&routes, "web.default").is_empty());
    assert!(registry.drains().is_empty());
    for _ in 0..200 {
        if before.is_finished() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(before.is_finished(), "unreferenced drain still running");
}

#[tokio::test]
async fn relist_replaces_an_origin_atomically_and_sets_ready() {
    let (mut w, routes, _r) = setup(&[OriginKind::Postgres]);
    let ready = w.ready();
    assert!(!*ready.borrow());
    let a = "stdout://";
    w.apply(up(OriginKind::Postgres, RouteEvent::Init));
    w.apply(up(OriginKind::Postgres, RouteEvent::InitApply(obj("r1", &[("a", a)]))));
    w.apply(up(OriginKind::Postgres, RouteEvent::InitApply(obj("r2", &[("b", a)]))));
    w.publish();
    // Half a listing is never visible.
    assert!(routes.load().is_empty());
    w.apply(up(OriginKind::Postgres, RouteEvent::InitDone));
    w.publish();
    assert!(*ready.borrow());
    assert_eq!(routes.load().len(), 2);
    // A relist without r1 drops it; r2 stays.
    w.apply(up(OriginKind::Postgres, RouteEvent::Init));
    w.apply(up(OriginKind::Postgres, RouteEvent::InitApply(obj("r2", &[("b", a)]))));
    w.apply(up(OriginKind::Postgres, RouteEvent::InitDone));
    w.publish();
    assert!(drains(&routes, "a").is_empty());
    assert_eq!(drains(&routes, "b"), vec!["stdout://"]);
}

#[tokio::test]
async fn bad_urls_skip_only_themselves() {
    let (mut w, routes, _r) = setup(&[]);
    w.apply(up(
        OriginKind::Static,
        RouteEvent::Apply(obj(
            "routes[0]",
            &[
                ("web.default", "gopher://x"),
                ("web.default", "stdout://"),
                ("web.default", "syslog+tcp://u:pw@h:1"),
            ],
        )),
    ));
    w.publish();
    assert_eq!(drains(&routes, "web.default"), vec!["stdout://"]);
    let m = crate::telemetry::render();
    assert!(m.contains("logtrain_route_errors_total{origin=\"static\"}"));
    assert!(!m.contains("pw"));
}

#[tokio::test]
async fn annotations_get_network_drains_only_each_checked_against_the_egress_policy() {
    let (w, routes, registry) = setup(&[]);
    let mut w = w.with_egress(crate::egress::Egress::default());
    let named = "syslog+tcp://logs.example.invalid:514";
    w.apply(up(
        OriginKind::Kubernetes,
        RouteEvent::Apply(obj(
            "Deployment evil/x",
            &[
                ("x.evil", "file:///tmp/logtrain-tenant-file.log"),
                ("x.evil", "stdout://"),
                ("x.evil", "syslog+tcp://127.0.0.1:514"),
                ("x.evil", "https://169.254.169.254/latest"),
                ("x.evil", named),
            ],
        )),
    ));
    w.apply(up(
        OriginKind::Static,
        RouteEvent::Apply(obj("routes[0]", &[("x.ops", named)])),
    ));
    w.publish();
    let tenant = routes.load().drains_for(b"x.evil").to_vec();
    assert_eq!(tenant.len(), 1, "only the network drain to a name is admitted");
    let operator = routes.load().drains_for(b"x.ops").to_vec();
    assert_eq!(operator.len(), 1);
    assert!(
        !Arc::ptr_eq(&tenant[0], &operator[0]),
        "a tenant's drain is its own, checked at connect time; the operator's is not"
    );
    assert_eq!(registry.drains().len(), 2);
    assert!(!std::path::Path::new("/tmp/logtrain-tenant-file.log").exists());
    let m = crate::telemetry::render();
    assert!(m.contains("logtrain_route_errors_total{origin=\"kubernetes\"}"), "{m}");
}

#[tokio::test]
async fn readers_keep_their_snapshot_while_the_writer_swaps() {
    let (mut w, routes, _r) = setup(&[]);
    w.apply(up(
        OriginKind::Static,
        RouteEvent::Apply(obj("s", &[("a", "stdout://")])),
    ));
    w.publish();
    let old = routes.snapshot();
    w.apply(up(OriginKind::Static, RouteEvent::Delete("s".into())));
    w.publish();
    assert_eq!(old.drains_for(b"a").len(), 1, "an old snapshot is immutable");
    assert_eq!(routes.load().drains_for(b"a").len(), 0);

    // Concurrent readers never block or see a torn table while the writer churns.
    let r2 = routes.clone();
    let reader = std::thread::spawn(move || {
        let mut seen = 0usize;
        for _ in 0..200_000 {
            let t = r2.load();
            let n = t.drains_for(b"a").len();
            assert!(n <= 1);
            assert_eq!(n, t.len());
            seen += n;
        }
        seen
    });
    for i in 0..200 {
        if i % 2 == 0 {
            w.apply(up(
                OriginKind::Static,
                RouteEvent::Apply(obj("s", &[("a", "stdout://")])),
            ));
        } else {
            w.apply(up(OriginKind::Static, RouteEvent::Delete("s".into())));
        }
        w.publish();
    }
    reader.join().unwrap();
}

#[tokio::test]
async fn router_counts_unrouted_records() {
    let routes = Routes::new();
    let router = Router::new(routes.clone(), InputKind::SyslogUdp);
    let o = router.offer(&routes.load(), Record::new(InputKind::SyslogUdp, "nobody", "x"));
    assert!(o.unrouted);
    assert!(crate::telemetry::render().contains("logtrain_unrouted_records_total{input=\"syslog_udp\"} "));
}
