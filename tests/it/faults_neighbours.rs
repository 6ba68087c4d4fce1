//! Bad neighbours: a drain that accepts and never reads, one that answers 500
//! forever, and a TLS drain whose certificate is not trusted, all on the same
//! route as a healthy drain. The healthy drain must deliver as much over the
//! same window with them as without them (within 20%, a ratio measured in one
//! run), while the bad ones are seen failing.
//!
//! Each window lasts `LOGTRAIN_SOAK_SECS` (default 1.5 s; `tests/soak` runs 60).

use crate::support;

use std::time::Duration;

use logtrain::app::App;
use logtrain::config::{Config, StaticRoute};
use logtrain::drain::DrainSpec;
use logtrain::record::{InputKind, Record};
use support::faults::{Receiver, phase};
use support::http_recorder::{BlackHole, Recorder, Reply};
use support::wait_until;

/// Offers 20 records to `host` every 10 ms for `window`; returns how many the
/// healthy receiver got meanwhile (counted after the last one had time to land).
async fn window(app: &App, host: &str, healthy: &Receiver, window: Duration) -> (usize, usize) {
    let router = app.router(InputKind::Internal);
    let body = "z".repeat(200);
    let start = healthy.count();
    let begun = tokio::time::Instant::now();
    let mut next = begun;
    let mut offered = 0;
    while begun.elapsed() < window {
        for _ in 0..20 {
            router.offer(
                &app.routes.load(),
                Record::new(InputKind::Internal, host.to_string(), format!("{offered} {body}")),
            );
            offered += 1;
        }
        next += Duration::from_millis(10);
        tokio::time::sleep_until(next).await;
    }
    let got = healthy.count() - start;
    (got, offered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_neighbours_do_not_slow_a_healthy_drain() {
    let dir = tempfile::tempdir().unwrap();
    let healthy = Receiver::start(false).await;
    let hole = BlackHole::start().await;
    let failing = Recorder::start().await;
    failing.script(std::iter::repeat_n(Reply::Status(500), 1_000_000));
    let pki = support::tls::make_pki(&dir.path().join("pki"));
    let untrusted = Recorder::start_tls(&pki.server_cert_pem, &pki.server_key_pem).await;
    let hole_url = format!("syslog+tcp://127.0.0.1:{}", hole.port);
    let failing_url = format!("http://127.0.0.1:{}/logs", failing.port);
    let tls_url = format!("syslog+tls://127.0.0.1:{}", untrusted.port);
    let app = App::start(Config {
        shutdown_timeout: 2,
        routes: vec![
            StaticRoute {
                hostname: "alone.default".into(),
                drains: vec![healthy.url()],
            },
            StaticRoute {
                hostname: "crowd.default".into(),
                drains: vec![hole_url.clone(), failing_url.clone(), tls_url.clone(), healthy.url()],
            },
        ],
        ..crate::support::config()
    });
    assert!(app.wait_ready().await);
    let p = phase(1.5);
    let (alone, offered_alone) = window(&app, "alone.default", &healthy, p).await;
    let (crowd, offered_crowd) = window(&app, "crowd.default", &healthy, p).await;
    let ratio = crowd as f64 / alone as f64;
    assert!(alone > 0 && offered_alone > 0 && offered_crowd > 0);
    assert!(
        (0.8..=1.2).contains(&ratio),
        "healthy drain delivered {alone} alone and {crowd} among bad neighbours (ratio {ratio:.2})"
    );

    // The neighbours really were bad.
    let drains = app.registry.drains();
    let id = |url: &str| DrainSpec::parse(url).unwrap().id;
    let by = |url: &str| drains.iter().find(|d| d.id() == id(url)).unwrap().clone();
    let metric = |name: &'static str, url: &str| logtrain::telemetry::counter(name, &[("drain", &id(url))]).get();
    wait_until("the 500s to be seen", Duration::from_secs(10), || {
        failing.requests().iter().any(|r| r.status == 500)
    })
    .await;
    assert_eq!(by(&failing_url).sent_total(), 0);
    assert!(metric("logtrain_drain_errors_total", &failing_url) > 0);
    assert_eq!(by(&tls_url).sent_total(), 0);
    assert!(metric("logtrain_drain_errors_total", &tls_url) > 0);
    assert!(hole.accepted() >= 1);
    let h = by(&hole_url);
    // Every record offered to the black hole is accounted for: written into its
    // (never read) socket buffers, still held, or dropped and counted.
    wait_until("the black hole's accounting", Duration::from_secs(10), || {
        h.sent_total() as usize + h.held() + h.dropped_total() as usize == offered_crowd
    })
    .await;
    if support::faults::soaking() {
        println!(
            "SOAK neighbours: healthy drain {alone} records alone, {crowd} among bad neighbours over {p:?} each (ratio {ratio:.3})"
        );
    }
    let report = app.shutdown().await;
    let stuck: Vec<&str> = report.unflushed.iter().map(|(d, _)| d.as_str()).collect();
    assert!(!stuck.contains(&healthy.url().as_str()), "{report:?}");
}
