//! Drains that no route names any more go away entirely: a retired drain whose
//! receiver is down gives up within `SHUTDOWN_TIMEOUT` (what it held dropped,
//! counted, logged once, its acknowledgements rejected), and once a drain has
//! finished, every metric series with its `drain` label leaves `/metrics`, so
//! a thousand drains coming and going leave the page as it was.
//!
//! In process, with a `RouteWriter` fed the operator's routes. The tests read the
//! process-wide metrics registry: they hold `support::inputs::serial()`, and the
//! one that compares the whole page runs in a process of its own.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use logtrain::ack::{self, BatchStatus};
use logtrain::config::{BufferMode, Config};
use logtrain::datasource::{OriginKind, RouteEvent, RouteObject, RouteSpec, RouteUpdate};
use logtrain::drain::{Drain, DrainContext, DrainSpec, Registry};
use logtrain::record::{InputKind, Record};
use logtrain::route::Routes;
use logtrain::route::writer::RouteWriter;
use logtrain::telemetry::render;
use tokio::time::Instant;

fn writer(ctx: DrainContext) -> (RouteWriter, Routes, Arc<Registry>) {
    let registry = Arc::new(Registry::new(ctx));
    let routes = Routes::new();
    (RouteWriter::new(registry.clone(), routes.clone(), []), routes, registry)
}

fn static_routes(w: &mut RouteWriter, id: &str, routes: Vec<(String, String)>) {
    let routes = routes
        .into_iter()
        .map(|(hostname, drain)| RouteSpec {
            hostname,
            drain,
            tag: None,
        })
        .collect();
    w.apply(RouteUpdate {
        origin: OriginKind::Static,
        event: RouteEvent::Apply(RouteObject { id: id.into(), routes }),
    });
    w.publish();
}

fn unroute(w: &mut RouteWriter, id: &str) {
    w.apply(RouteUpdate {
        origin: OriginKind::Static,
        event: RouteEvent::Delete(id.into()),
    });
    w.publish();
}

async fn wait_finished(drains: &[Arc<Drain>]) {
    support::wait_until("the retired drains to finish", Duration::from_secs(20), || {
        drains.iter().all(|d| d.is_finished())
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_retired_drain_whose_receiver_is_down_gives_up_within_shutdown_timeout_and_its_series_vanish() {
    let _one = support::inputs::serial().await;
    support::captured_logs();
    let config = Config {
        shutdown_timeout: 3,
        // What a retired drain's disk buffer does is `disk_buffer`'s to test.
        drain_buffer: BufferMode::Memory,
        ..crate::support::config()
    };
    let (_reopen, rx) = tokio::sync::watch::channel(0);
    let (mut w, routes, registry) = writer(DrainContext::from_config(&config, rx));
    let down = support::Reserved::new();
    let url = format!("syslog+tcp://127.0.0.1:{}", down.port());
    let id = DrainSpec::parse(&url).unwrap().id;
    static_routes(&mut w, "down", vec![("down.static".into(), url.clone())]);
    let drain = routes.load().drains_for(b"down.static")[0].clone();

    // The tailer hands it a batch; nothing listens, so it holds it, retrying.
    let (a, acked) = ack::batch();
    for i in 0..100 {
        let mut r = Record::new(InputKind::Internal, "down.static", format!("line {i}"));
        r.ack = Some(a.clone());
        assert!(drain.send(Arc::new(r)).await);
    }
    drop(a);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let label = format!("drain=\"{id}\"");
    assert!(render().contains(&label));
    assert_eq!(drain.sent_total(), 0);

    let retired = Instant::now();
    unroute(&mut w, "down");
    assert!(registry.drains().is_empty());
    wait_finished(std::slice::from_ref(&drain)).await;
    let took = retired.elapsed();
    assert!(
        took >= Duration::from_secs(3) && took < Duration::from_millis(3500),
        "gave up {took:?} after it was retired"
    );
    assert_eq!(acked.wait().await, BatchStatus::Rejected, "the checkpoint may move on");
    assert_eq!((drain.given_up(), drain.dropped_total()), (100, 100));
    assert!(!render().contains(&label), "series of a finished drain left behind");
    let logs = String::from_utf8_lossy(&support::captured_logs().lock().unwrap()).into_owned();
    let said = logs
        .lines()
        .filter(|l| l.contains("Closed drain could not deliver") && l.contains(&id))
        .count();
    assert_eq!(said, 1, "{logs}");
}

#[tokio::test]
async fn metrics_return_to_their_size_after_a_thousand_drains_come_and_go() {
    // Compares the whole page: no other test may add or drop series meanwhile.
    if !support::alone(
        module_path!(),
        "metrics_return_to_their_size_after_a_thousand_drains_come_and_go",
    ) {
        return;
    }
    let (mut w, routes, registry) = writer(DrainContext::standalone());
    // One drain stays throughout; one round first creates what any round leaves (route counters).
    static_routes(
        &mut w,
        "keep",
        vec![("keep.static".into(), "syslog+tcp://keep.invalid:514".into())],
    );
    let url = |i: usize| format!("syslog+tcp://churn-{i}.invalid:514");
    let mut round = async |from: usize, to: usize| {
        let many = (from..to).map(|i| (format!("churn-{i}.static"), url(i))).collect();
        static_routes(&mut w, "many", many);
        let drains = registry.drains();
        assert_eq!(drains.len(), to - from + 1);
        let page = render();
        assert!(page.contains(&format!("drain=\"{}\"", DrainSpec::parse(&url(to - 1)).unwrap().id)));
        unroute(&mut w, "many");
        assert_eq!(registry.drains().len(), 1);
        let gone: Vec<Arc<Drain>> = drains.into_iter().filter(|d| !d.id().contains("keep")).collect();
        wait_finished(&gone).await;
        page
    };
    round(0, 1).await;
    let before = render();
    let mut busiest = 0;
    for r in 0..10 {
        busiest = busiest.max(round(1 + r * 100, 1 + (r + 1) * 100).await.lines().count());
    }
    let after = render();
    let lines = |p: &str| p.lines().count();
    assert!(
        busiest >= lines(&before) + 100 * 10,
        "the drains' series were never there"
    );
    assert_eq!(lines(&after), lines(&before), "series left behind");
    assert!(
        after.len().abs_diff(before.len()) <= 16,
        "/metrics grew from {} to {} bytes",
        before.len(),
        after.len()
    );

    // A drain of an id seen before, routed again, has fresh series that count.
    static_routes(&mut w, "again", vec![("again.static".into(), url(7))]);
    let again = routes.load().drains_for(b"again.static")[0].clone();
    assert!(again.offer(&Arc::new(Record::new(InputKind::Internal, "again.static", "x"))));
    let queued = format!("logtrain_drain_queued_total{{drain=\"{}\"}} 1", again.id());
    assert!(render().contains(&queued), "{}", render());
}
