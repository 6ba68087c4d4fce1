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

#[test]
fn histograms_render_cumulative_buckets_and_vanish_with_their_lease() {
    let lease = lease("drain", "test-histogram");
    let h = histogram("logtrain_drain_send_seconds", &[("drain", "test-histogram")]);
    h.observe(0.003);
    h.observe(0.2);
    h.observe(100.0);
    let text = render();
    let line = |suffix: &str| format!("logtrain_drain_send_seconds{suffix}");
    assert!(text.contains("# TYPE logtrain_drain_send_seconds histogram"));
    assert!(
        text.contains(&line("_bucket{drain=\"test-histogram\",le=\"0.001\"} 0")),
        "{text}"
    );
    assert!(
        text.contains(&line("_bucket{drain=\"test-histogram\",le=\"0.005\"} 1")),
        "{text}"
    );
    assert!(
        text.contains(&line("_bucket{drain=\"test-histogram\",le=\"0.25\"} 2")),
        "{text}"
    );
    assert!(
        text.contains(&line("_bucket{drain=\"test-histogram\",le=\"60\"} 2")),
        "{text}"
    );
    assert!(
        text.contains(&line("_bucket{drain=\"test-histogram\",le=\"+Inf\"} 3")),
        "{text}"
    );
    assert!(text.contains(&line("_count{drain=\"test-histogram\"} 3")), "{text}");
    assert!(text.contains(&line("_sum{drain=\"test-histogram\"} 100.203")), "{text}");
    drop(lease);
    assert!(!render().contains("test-histogram"));
}

#[test]
fn openmetrics_names_counter_families_without_total_and_ends_with_eof() {
    for (name, kind, _) in CATALOG {
        assert_eq!(*kind == Kind::Counter, name.ends_with("_total"), "{name}");
    }
    counter("logtrain_drain_sent_total", &[("drain", "test-om")]).inc();
    let (ct, om) = content_type("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5");
    assert!(om && ct.starts_with("application/openmetrics-text; version=1.0.0"));
    let text = render_as(true);
    assert!(text.contains("# TYPE logtrain_drain_sent counter\n"), "{text}");
    assert!(text.contains("logtrain_drain_sent_total{drain=\"test-om\"} 1\n"));
    assert!(text.ends_with("# EOF\n"));
    let (ct, om) = content_type("text/plain");
    assert!(!om && ct.starts_with("text/plain; version=0.0.4"));
    assert!(!render().contains("# EOF"));
}
