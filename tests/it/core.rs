//! End-to-end tests of the core: records routed through the live table into a
//! real `file://` drain, drains closed when routes go, and `logtrain check`.

use std::process::Command;
use std::time::Duration;

use logtrain::app::App;
use logtrain::config::{Config, StaticRoute};
use logtrain::datasource::{OriginKind, RouteEvent, RouteObject, RouteSpec, RouteUpdate};
use logtrain::record::{InputKind, Record};

fn file_url(dir: &tempfile::TempDir, name: &str) -> String {
    format!("file://{}", dir.path().join(name).display())
}

#[tokio::test]
async fn records_reach_file_drains_through_the_table_and_shutdown_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let web = file_url(&dir, "web.log");
    let both = file_url(&dir, "both.log");
    let config = Config {
        routes: vec![
            StaticRoute {
                hostname: "web.default".into(),
                drains: vec![web.clone(), both.clone()],
            },
            StaticRoute {
                hostname: "api.default".into(),
                drains: vec![both.clone()],
            },
        ],
        ..crate::support::config()
    };
    let app = App::start(config);
    assert!(
        tokio::time::timeout(Duration::from_secs(5), app.wait_ready())
            .await
            .unwrap()
    );
    let router = app.router(InputKind::Internal);
    let table = app.routes.load();
    for i in 0..1000 {
        let mut r = Record::new(InputKind::Internal, "web.default", format!("web line {i}"));
        r.app_name = bytes::Bytes::from_static(b"web-1");
        assert_eq!(router.offer(&table, r).queued, 2);
        let r = Record::new(InputKind::Internal, "api.default", format!("api line {i}\nsecond"));
        assert_eq!(router.offer(&table, r).queued, 1);
    }
    let o = router.offer(&table, Record::new(InputKind::Internal, "nobody", "x"));
    assert!(o.unrouted);
    // Invalid UTF-8 survives into the file untouched.
    router.offer(
        &table,
        Record::new(InputKind::Internal, "web.default", &b"bytes \xff\xfe end"[..]),
    );
    drop(table);
    let report = app.shutdown().await;
    assert!(report.unflushed.is_empty(), "{report:?}");

    let web_text = std::fs::read(dir.path().join("web.log")).unwrap();
    let lines: Vec<&[u8]> = web_text.split(|&c| c == b'\n').filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 1001);
    for (i, l) in lines.iter().take(1000).enumerate() {
        let s = std::str::from_utf8(l).unwrap();
        assert!(s.starts_with("<14>1 "), "{s}");
        assert!(s.contains(" web.default web-1 - - - "), "{s}");
        assert!(s.ends_with(&format!(" web line {i}")), "{s}");
    }
    assert!(lines[1000].ends_with(b"bytes \xff\xfe end"));
    let both_text = String::from_utf8_lossy(&std::fs::read(dir.path().join("both.log")).unwrap()).to_string();
    assert_eq!(both_text.lines().count(), 2001);
    assert!(both_text.contains(" api.default - - - - api line 7\\nsecond\n"));
}

#[tokio::test]
async fn a_route_removed_live_stops_delivery_and_closes_its_drain() {
    let dir = tempfile::tempdir().unwrap();
    let url = file_url(&dir, "live.log");
    let app = App::start(crate::support::config());
    let tx = app.route_sender();
    let obj = RouteObject {
        id: "row-1".into(),
        routes: vec![RouteSpec {
            hostname: "app.ns".into(),
            drain: url.clone(),
            tag: None,
        }],
    };
    tx.send(RouteUpdate {
        origin: OriginKind::Postgres,
        event: RouteEvent::Apply(obj),
    })
    .await
    .unwrap();
    let router = app.router(InputKind::Internal);
    wait(|| !app.routes.load().is_empty()).await;
    assert_eq!(
        router
            .offer(&app.routes.load(), Record::new(InputKind::Internal, "app.ns", "one"))
            .queued,
        1
    );
    let drain = app.registry.drains().pop().unwrap();
    tx.send(RouteUpdate {
        origin: OriginKind::Postgres,
        event: RouteEvent::Delete("row-1".into()),
    })
    .await
    .unwrap();
    wait(|| app.routes.load().is_empty()).await;
    assert!(
        router
            .offer(&app.routes.load(), Record::new(InputKind::Internal, "app.ns", "two"))
            .unrouted
    );
    wait(|| drain.is_finished()).await;
    let text = std::fs::read_to_string(dir.path().join("live.log")).unwrap();
    assert_eq!(text.lines().count(), 1);
    assert!(text.ends_with(" one\n"));
    app.shutdown().await;
}

#[tokio::test]
async fn an_unopenable_file_drain_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    let good = file_url(&dir, "good.log");
    let config = Config {
        routes: vec![StaticRoute {
            hostname: "h".into(),
            drains: vec!["file:///nonexistent-folder-logtrain/x.log".into(), good],
        }],
        shutdown_timeout: 1,
        ..crate::support::config()
    };
    let app = App::start(config);
    app.wait_ready().await;
    let router = app.router(InputKind::Internal);
    for i in 0..10 {
        router.offer(
            &app.routes.load(),
            Record::new(InputKind::Internal, "h", format!("m{i}")),
        );
    }
    wait(|| {
        std::fs::read_to_string(dir.path().join("good.log"))
            .map(|t| t.lines().count() == 10)
            .unwrap_or(false)
    })
    .await;
    let metrics = logtrain::telemetry::render();
    assert!(
        metrics.contains("logtrain_drain_errors_total{drain=\"file:///nonexistent-folder-logtrain/x.log\"}"),
        "{metrics}"
    );
    let report = app.shutdown().await;
    assert_eq!(
        report.unflushed,
        vec![("file:///nonexistent-folder-logtrain/x.log".to_string(), 10)]
    );
}

async fn wait(mut f: impl FnMut() -> bool) {
    for _ in 0..1000 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("condition not reached in 5 s");
}

#[test]
fn check_lists_every_problem_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.yaml");
    std::fs::write(
        &cfg,
        "routes:\n  - hostname: web.default\n    drains: [\"syslog+tcp://u:s3cret@h:1\", \"ftp://x\"]\n  - hostname: web.default\n    drains: [\"stdout://\", \"stdout://\"]\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_logtrain"))
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("credentials are not used"), "{err}");
    assert!(err.contains("unknown scheme \"ftp\""), "{err}");
    assert!(err.contains("duplicate route to stdout://"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");

    std::fs::write(&cfg, "http_port: 1\nbogus_key: 2\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_logtrain"))
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus_key"));

    std::fs::write(&cfg, "routes:\n  - hostname: a\n    drains: [\"stdout://\"]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_logtrain"))
        .args(["check", "--config"])
        .arg(&cfg)
        .env("HTTP_PORT", "notaport")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP_PORT"));
    let out = Command::new(env!("CARGO_BIN_EXE_logtrain"))
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}
