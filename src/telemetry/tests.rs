//! Tests of the metrics registry: rendering, leases, series removal.

use super::*;

#[test]
fn renders_counters_and_gauges_with_escaped_labels() {
    let c = counter("logtrain_drain_sent_total", &[("drain", "t\"est\\1")]);
    c.add(3);
    let g = gauge("logtrain_drain_queue_records", &[("drain", "test-render")]);
    g.set(-2);
    let text = render();
    assert!(text.contains("# TYPE logtrain_drain_sent_total counter"));
    assert!(
        text.contains(r#"logtrain_drain_sent_total{drain="t\"est\\1"} 3"#),
        "{text}"
    );
    assert!(text.contains(r#"logtrain_drain_queue_records{drain="test-render"} -2"#));
    forget("drain", "test-render");
    assert!(!render().contains("test-render"));
}

#[test]
fn series_vanish_with_their_last_lease_and_come_back_for_a_successor() {
    let line = "logtrain_drain_sent_total{drain=\"test-lease\"}";
    let first = lease("drain", "test-lease");
    let second = lease("drain", "test-lease");
    let old = counter("logtrain_drain_sent_total", &[("drain", "test-lease")]);
    gauge("logtrain_drain_connections", &[("drain", "test-lease")]).set(1);
    old.add(5);
    drop(first);
    assert!(render().contains(&format!("{line} 5")), "one lease still holds them");
    drop(second);
    assert!(!render().contains("test-lease"), "{}", render());
    // A handle kept by the old owner counts on, unseen.
    old.inc();
    assert!(!render().contains("test-lease"));
    // A successor of the same name gets fresh, rendered series.
    let _next = lease("drain", "test-lease");
    counter("logtrain_drain_sent_total", &[("drain", "test-lease")]).inc();
    assert!(render().contains(&format!("{line} 1")), "{}", render());
}

#[test]
fn once_log_says_once() {
    let o = OnceLog::default();
    assert!(o.first("a"));
    assert!(!o.first("a"));
    o.forget("a");
    assert!(o.first("a"));
}
