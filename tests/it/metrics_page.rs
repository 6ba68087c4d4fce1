//! `/metrics` of the real binary as a scraper reads it: a tailed container's
//! lines delivered to a syslog drain show in the drain's send-latency and
//! batch-size histograms and in the delivery-lag histogram, beside the
//! `process_*` series and the build info; a scraper that asks for
//! OpenMetrics gets it, with its content type and `# EOF`.

use std::io::{Read, Write};
use std::time::Duration;

use crate::support;
use support::faults::{Binary, Node, Receiver, append, metric_in};
use support::wait_until;

/// GET /metrics with an Accept header: (the response head, the body).
fn scrape(port: u16, accept: &str) -> (String, String) {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET /metrics HTTP/1.0\r\nHost: x\r\nAccept: {accept}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (head.to_lowercase(), body.to_string())
}

/// logtrain tailing `node`'s container logs, `web.default` routed to `drain`.
fn tailing(node: &Node, drain: &str) -> Binary {
    tailing_with(node, drain, "disk")
}

/// [`tailing`] with `DRAIN_BUFFER` set to `buffer`.
fn tailing_with(node: &Node, drain: &str, buffer: &str) -> Binary {
    let containers = node.containers().display().to_string();
    let checkpoints = node.path("state/checkpoints.json").display().to_string();
    let yaml = format!("routes:\n  - hostname: web.default\n    drains: [\"{drain}\"]\n");
    let env = [
        ("KUBERNETES", "true"),
        ("KUBERNETES_LOG_PATH", containers.as_str()),
        ("CHECKPOINT_PATH", checkpoints.as_str()),
        ("DRAIN_BUFFER", buffer),
    ];
    Binary::start(&node.path("run"), &yaml, &env)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_container_lines_show_in_the_histograms_beside_the_process_series() {
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    let rx = Receiver::start(false).await;
    let bin = tailing(&node, &rx.url());
    let now = logtrain::time::Timestamp::now().to_rfc3339();
    let lines: String = (0..50).map(|i| format!("{now} stdout F line-{i}\n")).collect();
    append(&log, &lines);
    wait_until("the drain got the 50 lines", Duration::from_secs(20), || {
        rx.count() == 50
    })
    .await;
    // Confirmation comes after the hold of an unacknowledged transport.
    wait_until("the batches are confirmed", Duration::from_secs(20), || {
        metric_in(&bin.metrics(), "logtrain_delivery_lag_seconds_count") >= 1
    })
    .await;

    let (head, page) = scrape(bin.http, "text/plain");
    assert!(head.contains("content-type: text/plain; version=0.0.4"), "{head}");
    let drain = page
        .lines()
        .find_map(|l| l.strip_prefix("logtrain_drain_sent_total{drain=\""))
        .and_then(|l| l.split('"').next())
        .expect("a drain series")
        .to_string();
    let series = |name: &str, extra: &str| format!("{name}{{drain=\"{drain}\"{extra}}}");
    assert_eq!(
        metric_in(&page, &series("logtrain_drain_batch_records_sum", "")),
        50,
        "{page}"
    );
    let sends = metric_in(&page, &series("logtrain_drain_send_seconds_count", ""));
    assert!(sends >= 1, "{page}");
    assert_eq!(
        metric_in(&page, &series("logtrain_drain_send_seconds_bucket", ",le=\"+Inf\"")),
        sends
    );
    // Lines stamped just now reach the drain well within 10 s of their own time.
    let lag = metric_in(&page, "logtrain_delivery_lag_seconds_count");
    assert_eq!(
        metric_in(&page, "logtrain_delivery_lag_seconds_bucket{le=\"10\"}"),
        lag,
        "{page}"
    );
    for name in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    ] {
        assert!(page.lines().any(|l| l.starts_with(&format!("{name} "))), "no {name}");
    }
    assert!(page.contains(&format!(
        "logtrain_build_info{{version=\"{}\"",
        env!("CARGO_PKG_VERSION")
    )));
    let rss = metric_in(&page, "process_resident_memory_bytes");
    assert!(
        rss / 1024 <= bin.status_kib("VmHWM") + 1024,
        "RSS {rss} B is the process's own"
    );

    let (head, om) = scrape(bin.http, "application/openmetrics-text;version=1.0.0,text/plain;q=0.5");
    assert!(
        head.contains("content-type: application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(om.contains("# TYPE logtrain_drain_sent counter\n"));
    assert!(om.ends_with("# EOF\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_log_whose_drain_is_down_shows_its_lag_in_bytes_and_age() {
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    // A drain where nothing listens: nothing is delivered. Without a disk
    // buffer the tailer waits for it.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let bin = tailing_with(&node, &format!("syslog+tcp://127.0.0.1:{port}"), "memory");
    let now = logtrain::time::Timestamp::now().to_rfc3339();
    let lines: String = (0..100).map(|i| format!("{now} stdout F lagging-{i}\n")).collect();
    append(&log, &lines);
    let size = std::fs::metadata(&log).unwrap().len();
    wait_until(
        "the lag is the whole file and at least 5 s old",
        Duration::from_secs(30),
        || {
            let page = bin.metrics();
            metric_in(&page, "logtrain_tail_lag_bytes") == size && metric_in(&page, "logtrain_tail_lag_seconds") >= 5
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_disk_buffer_a_drain_that_is_down_leaves_no_lag() {
    let node = Node::new();
    let log = node.pod("default", "web-1-a", "web");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let bin = tailing(&node, &format!("syslog+tcp://127.0.0.1:{port}"));
    let now = logtrain::time::Timestamp::now().to_rfc3339();
    let lines: String = (0..100).map(|i| format!("{now} stdout F buffered-{i}\n")).collect();
    append(&log, &lines);
    // Its records went to disk, which counts as delivered: the tailer is at the end.
    let url = format!("syslog+tcp://127.0.0.1:{port}");
    let spilled = format!(
        "logtrain_drain_buffer_spilled_total{{drain=\"{}\"}}",
        logtrain::drain::DrainSpec::parse(&url).unwrap().id
    );
    wait_until("the lines on disk", Duration::from_secs(20), || {
        bin.metric(&spilled) == 100
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let page = bin.metrics();
    assert_eq!(metric_in(&page, "logtrain_tail_lag_bytes"), 0, "{page}");
}
