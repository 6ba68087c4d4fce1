//! Syslog drains against a real rsyslog: TCP (both framings), UDP (`syslog://`
//! and `syslog+udp://` with `max_size=`), TLS, and the
//! faults that matter — receiver down at start, killed mid-stream, hanging
//! beside a healthy drain, wrong CA, queue overflow with the L10 summary.

use crate::support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use logtrain::app::App;
use logtrain::config::{Config, StaticRoute};
use logtrain::drain::driver::{Sink, SinkError};
use logtrain::drain::syslog::SyslogStreamSink;
use logtrain::drain::tls::TlsConnector;
use logtrain::drain::{Drain, DrainContext, DrainSpec};
use logtrain::record::{Facility, InputKind, Record, Severity};
use logtrain::time::Timestamp;
use serde_json::Value;
use support::drains::{ctx_with, metric, start};
use support::http_recorder::BlackHole;
use support::rsyslog::Rsyslog;
use support::{free_port, wait_until};
use tokio_util::task::TaskTracker;

/// What rsyslog wrote to `out` for one hostname, in order.
fn entries_of(out: &std::path::Path, host: &str) -> Vec<Value> {
    entries(out).into_iter().filter(|e| e["hostname"] == host).collect()
}

fn conf(out: &Path, inputs: &str) -> String {
    support::rsyslog::receiver_conf(out, inputs)
}

fn start_tcp_rsyslog(dir: &Path, port: u16) -> Rsyslog {
    support::rsyslog::tcp_receiver(dir, port)
}

use support::rsyslog::{entries, msgs};

/// A record with every RFC 5424 field set.
fn full_record(host: &str, i: usize) -> Record {
    let mut r = Record::new(InputKind::Internal, host.to_string(), format!("line {i} ü"));
    r.facility = Facility::LOCAL0;
    r.severity = Severity::new((i % 8) as u8);
    r.timestamp = Some(Timestamp(1_795_000_000_000_000_000 + i as i64 * 1_000));
    r.app_name = Bytes::from_static(b"web-1");
    r.procid = Bytes::from(format!("{}", 100 + i));
    r.msgid = Bytes::from(format!("ID{}", i % 3));
    r.structured_data = Bytes::from(format!("[ex@32473 i=\"{i}\" q=\"a\\\"b\"]"));
    r
}

/// Asserts an rsyslog entry carries every field of `full_record(host, i)`.
fn assert_full(e: &Value, host: &str, i: usize) {
    let want = full_record(host, i);
    assert_eq!(e["pri"], (16 * 8 + i % 8).to_string(), "{e}");
    let ts = Timestamp::parse_rfc3339(e["timereported"].as_str().unwrap().as_bytes()).unwrap();
    assert_eq!(Some(ts), want.timestamp, "{e}");
    assert_eq!(e["hostname"], host, "{e}");
    assert_eq!(e["appname"], "web-1", "{e}");
    assert_eq!(e["procid"], (100 + i).to_string(), "{e}");
    assert_eq!(e["msgid"], format!("ID{}", i % 3), "{e}");
    assert_eq!(e["sd"], format!("[ex@32473 i=\"{i}\" q=\"a\\\"b\"]"), "{e}");
    assert_eq!(e["msg"], format!("line {i} ü"), "{e}");
}

fn offer(d: &Drain, r: Record) -> bool {
    d.offer(&Arc::new(r))
}

const LIMIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_both_framings_deliver_every_field_through_the_app() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _rs = start_tcp_rsyslog(dir.path(), port);
    let out = dir.path().join("out.json");
    let app = App::start(Config {
        routes: vec![
            StaticRoute {
                hostname: "octet.default".into(),
                drains: vec![format!("syslog+tcp://127.0.0.1:{port}")],
            },
            StaticRoute {
                hostname: "newline.default".into(),
                drains: vec![format!("syslog+tcp://127.0.0.1:{port}?framing=newline")],
            },
        ],
        ..crate::support::config()
    });
    assert!(app.wait_ready().await);
    let router = app.router(InputKind::Internal);
    for i in 0..300 {
        for host in ["octet.default", "newline.default"] {
            assert_eq!(router.offer(&app.routes.load(), full_record(host, i)).queued, 1);
        }
    }
    // A line break inside a message: octet counting carries it as is, newline
    // framing escapes it so the frame stays one line.
    for host in ["octet.default", "newline.default"] {
        let r = Record::new(InputKind::Internal, host, "first\nsecond");
        router.offer(&app.routes.load(), r);
    }
    wait_until("602 messages in rsyslog", LIMIT, || entries(&out).len() >= 602).await;
    let report = app.shutdown().await;
    assert!(report.unflushed.is_empty(), "{report:?}");

    let all = entries(&out);
    assert_eq!(all.len(), 602);
    for host in ["octet.default", "newline.default"] {
        let mine: Vec<&Value> = all.iter().filter(|e| e["hostname"] == host).collect();
        assert_eq!(mine.len(), 301, "{host}");
        for (i, e) in mine.iter().take(300).enumerate() {
            assert_full(e, host, i);
        }
        let last = mine[300];
        assert_eq!(last["pri"], "14");
        assert_eq!(last["appname"], "-");
        assert_eq!(last["procid"], "-");
        assert_eq!(last["msgid"], "-");
        assert_eq!(last["sd"], "-");
        let want = if host == "octet.default" {
            "first\nsecond"
        } else {
            "first\\nsecond"
        };
        assert_eq!(last["msg"], want, "{host}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_sends_one_datagram_per_record_and_counts_truncations() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = dir.path().join("out.json");
    let inputs =
        format!("module(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"out\")");
    let _rs = Rsyslog::start(dir.path(), &conf(&out, &inputs), &[]);
    let tracker = TaskTracker::new();
    let url = format!("syslog://127.0.0.1:{port}");
    let d = start(&url, &DrainContext::standalone(), &tracker);

    // UDP has no handshake: probe until rsyslog is listening.
    let mut probes = 0;
    while entries(&out).is_empty() {
        assert!(probes < 200, "rsyslog never received a UDP probe");
        offer(&d, Record::new(InputKind::Internal, "probe", "probe"));
        probes += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_until("probes to settle", LIMIT, || d.held() == 0).await;

    for i in 0..50 {
        assert!(offer(&d, full_record("udp.default", i)));
    }
    // Three records far over the 2048-byte default: each is cut to 2048 bytes.
    let big = "x".repeat(5000);
    for _ in 0..3 {
        let mut r = Record::new(InputKind::Internal, "udp.default", big.clone());
        r.timestamp = Some(Timestamp(0));
        assert!(offer(&d, r));
    }
    let mine = || entries_of(&out, "udp.default");
    wait_until("53 datagrams", LIMIT, || mine().len() >= 53).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = mine();
    assert_eq!(got.len(), 53);
    for (i, e) in got.iter().take(50).enumerate() {
        assert_full(e, "udp.default", i);
    }
    let header = "<14>1 1970-01-01T00:00:00.000000Z udp.default - - - - ";
    for e in &got[50..] {
        assert_eq!(e["msg"].as_str().unwrap().len(), 2048 - header.len(), "{e}");
    }
    assert_eq!(
        metric("logtrain_drain_truncated_total", &DrainSpec::parse(&url).unwrap().id),
        3
    );
    assert_eq!(d.sent_total(), probes + 53);
    d.close();
    tracker.close();
    tracker.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_udp_delivers_every_field_and_truncates_to_max_size() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = dir.path().join("out.json");
    let inputs =
        format!("module(load=\"imudp\")\ninput(type=\"imudp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"out\")");
    let _rs = Rsyslog::start(dir.path(), &conf(&out, &inputs), &[]);
    let tracker = TaskTracker::new();
    let url = format!("syslog+udp://127.0.0.1:{port}?max_size=1024");
    let id = DrainSpec::parse(&url).unwrap().id;
    assert!(id.starts_with(&format!("syslog+udp://127.0.0.1:{port}#")), "{id}");
    assert!(!id.contains("max_size"), "{id}");
    let d = start(&url, &DrainContext::standalone(), &tracker);

    // UDP has no handshake: probe until rsyslog is listening.
    let mut probes = 0;
    while entries(&out).is_empty() {
        assert!(probes < 200, "rsyslog never received a UDP probe");
        offer(&d, Record::new(InputKind::Internal, "probe", "probe"));
        probes += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_until("probes to settle", LIMIT, || d.held() == 0).await;

    for i in 0..40 {
        assert!(offer(&d, full_record("udp-plus.default", i)));
    }
    // 1500 bytes fit the 2048 default but not max_size=1024: cut to 1024 bytes.
    let mut big = Record::new(InputKind::Internal, "udp-plus.default", "y".repeat(1500));
    big.timestamp = Some(Timestamp(0));
    assert!(offer(&d, big));
    let mine = || entries_of(&out, "udp-plus.default");
    wait_until("41 datagrams", LIMIT, || mine().len() >= 41).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = mine();
    assert_eq!(got.len(), 41);
    for (i, e) in got.iter().take(40).enumerate() {
        assert_full(e, "udp-plus.default", i);
    }
    let header = "<14>1 1970-01-01T00:00:00.000000Z udp-plus.default - - - - ";
    let last = &got[40];
    assert_eq!(last["pri"], "14", "{last}");
    assert_eq!(last["msg"], "y".repeat(1024 - header.len()), "{last}");
    assert_eq!(metric("logtrain_drain_truncated_total", &id), 1);
    assert_eq!(d.sent_total(), probes + 41);
    d.close();
    tracker.close();
    tracker.wait().await;
}

/// base64 of PEM text, percent-encoded for a query string.
fn ca_param(pem: &str) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
    percent_encoding::utf8_percent_encode(&b64, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn tls_conf(dir: &Path, pki: &support::tls::Pki, port: u16) -> String {
    let inputs = format!(
        r#"global(defaultNetstreamDriverCAFile="{}" defaultNetstreamDriverCertFile="{}" defaultNetstreamDriverKeyFile="{}")
module(load="imtcp" streamDriver.name="gtls" streamDriver.mode="1" streamDriver.authMode="anon")
input(type="imtcp" port="{port}" ruleset="out")"#,
        pki.ca_path.display(),
        pki.server_cert.display(),
        pki.server_key.display()
    );
    conf(&dir.join("out.json"), &inputs)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_delivers_with_the_right_ca_and_reports_a_wrong_one_as_a_certificate_error() {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::tls::make_pki(&dir.path().join("pki"));
    let other = support::tls::make_pki(&dir.path().join("other"));
    let port = free_port();
    let _rs = Rsyslog::start(dir.path(), &tls_conf(dir.path(), &pki, port), &[port]);
    let out = dir.path().join("out.json");

    let right = format!("syslog+tls://localhost:{port}?ca={}", ca_param(&pki.ca_pem));
    let wrong = format!("syslog+tls://127.0.0.1:{port}?ca={}", ca_param(&other.ca_pem));
    // Distinct hosts give each drain its own id (and metric series).
    let insecure = format!("syslog+tls://127.0.0.2:{port}?insecure=true&framing=newline");

    // The error kind, straight from the sink.
    let sink_for = |url: &str| {
        let spec = DrainSpec::parse(url).unwrap();
        SyslogStreamSink::new(&spec, Some(TlsConnector::new(&spec, &[]).unwrap()))
    };
    match sink_for(&wrong).connect().await {
        // Both test CAs carry the same name, so the chain is found and its signature fails.
        Err(e @ SinkError::Certificate(_)) => {
            let m = e.to_string();
            assert!(m.contains("BadSignature") || m.contains("UnknownIssuer"), "{m}");
        }
        Err(e) => panic!("wrong CA must be a certificate error, got {e:?}"),
        Ok(_) => panic!("wrong CA must not connect"),
    }
    // Not trusting the test CA at all is a certificate error as well.
    let no_ca = format!("syslog+tls://localhost:{port}");
    assert!(matches!(
        sink_for(&no_ca).connect().await,
        Err(SinkError::Certificate(_))
    ));
    // Nothing listening is a connect error, not a certificate one.
    let down = format!("syslog+tls://127.0.0.1:{}?ca={}", free_port(), ca_param(&pki.ca_pem));
    assert!(matches!(
        sink_for(&down).connect().await,
        Err(SinkError::Connect { .. })
    ));
    assert!(sink_for(&right).connect().await.is_ok());

    // Through the driver: the right CA and the insecure opt-in deliver, the wrong CA delivers nothing.
    let tracker = TaskTracker::new();
    let ctx = ctx_with(|_| {});
    let (dr, dw, di) = (
        start(&right, &ctx, &tracker),
        start(&wrong, &ctx, &tracker),
        start(&insecure, &ctx, &tracker),
    );
    for i in 0..100 {
        assert!(offer(&dr, full_record("tls.right", i)));
        assert!(offer(&dw, full_record("tls.wrong", i)));
        assert!(offer(&di, full_record("tls.insecure", i)));
    }
    wait_until("200 TLS messages", LIMIT, || entries(&out).len() >= 200).await;
    let wrong_id = DrainSpec::parse(&wrong).unwrap().id;
    wait_until("errors counted on the wrong-CA drain", LIMIT, || {
        metric("logtrain_drain_errors_total", &wrong_id) >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = entries(&out);
    assert_eq!(all.len(), 200);
    for host in ["tls.right", "tls.insecure"] {
        let mine: Vec<&Value> = all.iter().filter(|e| e["hostname"] == host).collect();
        assert_eq!(mine.len(), 100);
        for (i, e) in mine.iter().enumerate() {
            assert_full(e, host, i);
        }
    }
    assert_eq!(dw.sent_total(), 0);
    assert_eq!(dw.held(), 100);
    dw.abandon();
    for d in [&dr, &dw, &di] {
        d.close();
    }
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(2), tracker.wait()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_at_start_gets_everything_once_it_is_up() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("syslog+tcp://127.0.0.1:{port}");
    let tracker = TaskTracker::new();
    let d = start(&url, &ctx_with(|_| {}), &tracker);
    for i in 0..500 {
        assert!(offer(&d, full_record("late.default", i)));
    }
    wait_until("connect errors", LIMIT, || {
        metric("logtrain_drain_errors_total", &DrainSpec::parse(&url).unwrap().id) >= 2
    })
    .await;
    assert_eq!(d.sent_total(), 0);
    let _rs = start_tcp_rsyslog(dir.path(), port);
    let out = dir.path().join("out.json");
    wait_until("500 messages", LIMIT, || entries(&out).len() >= 500).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let all = entries(&out);
    assert_eq!(all.len(), 500);
    for (i, e) in all.iter().enumerate() {
        assert_full(e, "late.default", i);
    }
    assert_eq!(d.sent_total(), 500);
    d.close();
    tracker.close();
    tracker.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_killed_mid_stream_and_restarted_gets_what_follows() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let out = dir.path().join("out.json");
    let mut rs = start_tcp_rsyslog(dir.path(), port);
    let url = format!("syslog+tcp://127.0.0.1:{port}");
    let tracker = TaskTracker::new();
    let d = start(&url, &ctx_with(|_| {}), &tracker);
    for i in 0..100 {
        assert!(offer(
            &d,
            Record::new(InputKind::Internal, "kill.default", format!("before {i}"))
        ));
    }
    wait_until("100 before the kill", LIMIT, || entries(&out).len() >= 100).await;

    // SIGKILL: rsyslog had written everything it read, and its exit closed the
    // connection (the kernel sent FIN) before the next records are offered.
    rs.kill();
    std::fs::remove_file(dir.path().join("rsyslog.pid")).ok();
    for i in 0..50 {
        assert!(offer(
            &d,
            Record::new(InputKind::Internal, "kill.default", format!("outage {i}"))
        ));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    wait_until("reconnect attempts", LIMIT, || {
        metric("logtrain_drain_errors_total", &DrainSpec::parse(&url).unwrap().id) >= 1
    })
    .await;
    let mut rs2 = start_tcp_rsyslog(dir.path(), port);
    for i in 0..100 {
        assert!(offer(
            &d,
            Record::new(InputKind::Internal, "kill.default", format!("after {i}"))
        ));
    }
    wait_until("every record after the restart", LIMIT, || {
        msgs(&out).iter().filter(|m| m.starts_with("after ")).count() >= 100
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let got = msgs(&out);
    let before: Vec<&String> = got.iter().filter(|m| m.starts_with("before ")).collect();
    let outage: Vec<&String> = got.iter().filter(|m| m.starts_with("outage ")).collect();
    let after: Vec<&String> = got.iter().filter(|m| m.starts_with("after ")).collect();
    // rsyslog had read the last "before" batch, but was killed before the driver
    // confirmed it: syslog over TCP cannot tell, so that batch is sent again
    // after the restart. Repeats are bounded by that batch; nothing is missing.
    let distinct_before: std::collections::BTreeSet<&String> = before.iter().copied().collect();
    assert_eq!(distinct_before.len(), 100);
    assert!(
        before.len() <= 200,
        "{} before records: more than one batch repeated",
        before.len()
    );
    let want_after: Vec<String> = (0..100).map(|i| format!("after {i}")).collect();
    assert_eq!(
        after,
        want_after.iter().collect::<Vec<_>>(),
        "after the restart: every record, once, in order"
    );
    // A batch written into a connection whose peer is gone is held until the
    // driver sees the connection alive after it, and sent again otherwise, so a
    // kill costs repeats, never a loss.
    let want_outage: Vec<String> = (0..50).map(|i| format!("outage {i}")).collect();
    assert_eq!(
        outage,
        want_outage.iter().collect::<Vec<_>>(),
        "records offered while the receiver was down"
    );
    assert_eq!(got.len(), 150 + before.len(), "no repeats but of the held batch");
    assert_eq!(d.sent_total(), 250);
    d.close();
    tracker.close();
    tracker.wait().await;
    rs2.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_does_not_hold_back_a_healthy_drain_on_the_same_route() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _rs = start_tcp_rsyslog(dir.path(), port);
    let out = dir.path().join("out.json");
    let hole = BlackHole::start().await;
    let healthy = format!("syslog+tcp://127.0.0.1:{port}");
    let hanging = format!("syslog+tcp://127.0.0.1:{}", hole.port);
    let app = App::start(Config {
        routes: vec![StaticRoute {
            hostname: "both.default".into(),
            drains: vec![hanging.clone(), healthy.clone()],
        }],
        shutdown_timeout: 2,
        // The memory queue's accounting (sent, held or dropped); with a disk
        // buffer the hanging drain's records would wait on disk instead.
        drain_buffer: logtrain::config::BufferMode::Memory,
        ..crate::support::config()
    });
    assert!(app.wait_ready().await);
    let router = app.router(InputKind::Internal);
    let body = "y".repeat(1000);
    // 12 MB in total: more than the kernel buffers the hanging peer can absorb.
    let rounds = 24;
    let per_round = 500;
    for round in 0..rounds {
        for i in 0..per_round {
            let n = round * per_round + i;
            router.offer(
                &app.routes.load(),
                Record::new(InputKind::Internal, "both.default", format!("{n} {body}")),
            );
        }
        let want = (round + 1) * per_round;
        wait_until("the healthy drain to keep up", Duration::from_secs(10), || {
            entries(&out).len() >= want
        })
        .await;
    }
    let total = rounds * per_round;
    let got = msgs(&out);
    assert_eq!(got.len(), total);
    for (n, m) in got.iter().enumerate() {
        assert!(m.starts_with(&format!("{n} ")), "record {n} out of order: {}", &m[..20]);
    }
    assert!(hole.accepted() >= 1);
    let drains = app.registry.drains();
    let hanging_id = DrainSpec::parse(&hanging).unwrap().id;
    let h = drains.iter().find(|d| d.id() == hanging_id).unwrap();
    // Every record offered to the hanging drain is accounted for: written into
    // the (full) socket, still held, or dropped and counted.
    wait_until("the hanging drain's accounting to settle", LIMIT, || {
        h.sent_total() as usize + h.held() + h.dropped_total() as usize == total
    })
    .await;
    assert!(
        h.dropped_total() > 0 || h.held() > 0,
        "the hanging drain cannot have delivered all"
    );
    assert!((h.sent_total() as usize) < total);
    let report = app.shutdown().await;
    assert_eq!(report.unflushed.len(), 1, "{report:?}");
    assert_eq!(report.unflushed[0].0, hanging_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_overflow_is_counted_exactly_and_reported_to_the_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("syslog+tcp://127.0.0.1:{port}");
    let tracker = TaskTracker::new();
    let d = start(
        &url,
        &ctx_with(|c| {
            c.queue_records = 50;
            c.batch_records = 10;
        }),
        &tracker,
    );
    let mut accepted = Vec::new();
    let mut refused = 0u64;
    for i in 0..300 {
        if offer(
            &d,
            Record::new(InputKind::Internal, "flood.default", format!("flood {i}")),
        ) {
            accepted.push(format!("flood {i}"));
        } else {
            refused += 1;
        }
    }
    assert!(refused >= 200, "a 50-record queue must overflow: refused {refused}");
    assert_eq!(d.dropped_total(), refused);
    assert_eq!(
        metric("logtrain_drain_dropped_total", &DrainSpec::parse(&url).unwrap().id),
        refused
    );

    let _rs = start_tcp_rsyslog(dir.path(), port);
    let out = dir.path().join("out.json");
    let want = accepted.len() + 1;
    wait_until("accepted records and the L10 summary", LIMIT, || {
        entries(&out).len() >= want
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let all = entries(&out);
    assert_eq!(all.len(), want);
    let (summary, records): (Vec<&Value>, Vec<&Value>) = all.iter().partition(|e| e["msgid"] == "L10");
    let got: Vec<&str> = records.iter().map(|e| e["msg"].as_str().unwrap()).collect();
    assert_eq!(got, accepted.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(summary.len(), 1);
    let s = summary[0];
    assert_eq!(s["hostname"], "logtrain");
    assert_eq!(s["appname"], "logtrain");
    assert_eq!(s["pri"], "12", "user.warning");
    let msg = s["msg"].as_str().unwrap();
    let prefix = format!("Error L10 (output buffer overflow): {refused} messages dropped since ");
    assert!(msg.starts_with(&prefix), "{msg}");
    let since = msg[prefix.len()..].trim_end_matches('.');
    assert!(Timestamp::parse_rfc3339(since.as_bytes()).is_some(), "{msg}");
    assert_eq!(d.dropped_total(), refused);
    d.close();
    tracker.close();
    tracker.wait().await;
}
