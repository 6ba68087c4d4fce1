//! Metrics and the events that both log and count.
//!
//! Metrics live in one process-wide registry, rendered at `/metrics` in the
//! Prometheus text format, or in OpenMetrics when the scraper asks for it.
//! Every metric name is declared once in [`CATALOG`] with its help text (and a
//! histogram's bounds). Handles ([`Counter`], [`Gauge`], [`Histogram`]) are
//! looked up once per component and then cost one atomic add on the hot path.
//! Label values are bounded: drain ids (never URLs with credentials), input
//! kinds, origins. A component whose series must vanish with it holds a
//! [`Lease`]. The `process_*` series and the build info are read at render
//! time (`process`).
//!
//! The registry is this file rather than the `prometheus-client` crate: what
//! logtrain needs of one is a handle that is an atomic (both are) and the
//! removal of every series carrying a label value across families when a drain
//! retires, which that crate's families do not offer without an index of our
//! own beside them; the exposition writer is the rest, some sixty lines.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::RwLock;

mod histogram;
mod process;

pub use histogram::Histogram;

/// Kind of a metric in the Prometheus exposition format.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Kind {
    Counter,
    Gauge,
    /// With its buckets' upper bounds.
    Histogram(&'static [f64]),
}

impl Kind {
    /// As the `# TYPE` line writes it.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram(_) => "histogram",
        }
    }
}

/// Every metric logtrain exports: name, kind, help.
pub const CATALOG: &[(&str, Kind, &str)] = &[
    (
        "logtrain_input_records_total",
        Kind::Counter,
        "Records accepted by an input.",
    ),
    (
        "logtrain_input_bytes_total",
        Kind::Counter,
        "Message bytes accepted by an input.",
    ),
    (
        "logtrain_input_parse_errors_total",
        Kind::Counter,
        "Frames or lines an input could not parse (forwarded raw or refused, see logs).",
    ),
    (
        "logtrain_input_truncated_total",
        Kind::Counter,
        "Frames an input truncated to its maximum size.",
    ),
    (
        "logtrain_input_dropped_total",
        Kind::Counter,
        "Records a push input offered that a full drain queue dropped (one per drain that dropped it).",
    ),
    (
        "logtrain_tail_dropped_total",
        Kind::Counter,
        "Lines a live-tail client read too slowly to take (dropped from its stream, never from a drain).",
    ),
    (
        "logtrain_input_rejected_total",
        Kind::Counter,
        "Records an input refused back to its sender (full queue, bad request).",
    ),
    (
        "logtrain_input_connections",
        Kind::Gauge,
        "Open connections per listener.",
    ),
    (
        "logtrain_input_connections_refused_total",
        Kind::Counter,
        "Connections refused because a listener was at its cap.",
    ),
    (
        "logtrain_input_connections_evicted_total",
        Kind::Counter,
        "Idle connections an HTTP or gRPC listener at its cap closed to admit a new one (longest idle first).",
    ),
    (
        "logtrain_input_memory_bytes",
        Kind::Gauge,
        "Bytes push inputs hold before their records are queued (frames, bodies, gRPC messages), out of INPUT_MEMORY_BYTES.",
    ),
    (
        "logtrain_input_memory_exhausted_total",
        Kind::Counter,
        "Times an input found INPUT_MEMORY_BYTES spent (TCP paused reading, HTTP answered 503, gRPC RESOURCE_EXHAUSTED, UDP dropped).",
    ),
    ("logtrain_tail_files", Kind::Gauge, "Container log files being tailed."),
    (
        "logtrain_tail_lag_bytes",
        Kind::Gauge,
        "Bytes written to the tailed container logs and not yet delivered, over every file (sampled every 5 s).",
    ),
    (
        "logtrain_tail_lag_seconds",
        Kind::Gauge,
        "The longest any tailed file has held bytes that are still not delivered (0 while every file keeps up; sampled every 5 s).",
    ),
    (
        "logtrain_tail_split_records_total",
        Kind::Counter,
        "Records split because they exceeded TAIL_MAX_RECORD_BYTES.",
    ),
    (
        "logtrain_tail_truncations_total",
        Kind::Counter,
        "Container logs found truncated in place (read again from the start).",
    ),
    (
        "logtrain_tail_errors_total",
        Kind::Counter,
        "Errors opening, listing or reading container logs.",
    ),
    (
        "logtrain_checkpoint_errors_total",
        Kind::Counter,
        "Failed attempts to save tail checkpoints (routing goes on).",
    ),
    (
        "logtrain_checkpoint_corrupt_total",
        Kind::Counter,
        "Checkpoint files found unusable at start, kept aside as <name>.corrupt-<UTC time> (tailing starts without them).",
    ),
    (
        "logtrain_input_handshake_errors_total",
        Kind::Counter,
        "TLS handshakes an input failed (missing or untrusted client certificate, protocol error, timeout).",
    ),
    (
        "logtrain_envoy_incomplete_entries_total",
        Kind::Counter,
        "Envoy access-log entries with missing fields, forwarded with defaults.",
    ),
    (
        "logtrain_envoy_unnamed_entries_total",
        Kind::Counter,
        "Envoy access-log entries whose upstream cluster names no Kubernetes service (inbound, passthrough): not forwarded.",
    ),
    (
        "logtrain_unrouted_records_total",
        Kind::Counter,
        "Records whose hostname had no route (counted, not forwarded).",
    ),
    (
        "logtrain_routes",
        Kind::Gauge,
        "Distinct (hostname, drain) routes in the current table.",
    ),
    (
        "logtrain_route_updates_total",
        Kind::Counter,
        "Routing table snapshots published.",
    ),
    (
        "logtrain_route_errors_total",
        Kind::Counter,
        "Routes refused (bad drain URL, drain not allowed to the origin, hostname out of scope, drains over a cap: ANNOTATION_MAX_DRAINS or DRAIN_MAX), per origin.",
    ),
    (
        "logtrain_postgres_notifications_total",
        Kind::Counter,
        "Drain table notifications received.",
    ),
    (
        "logtrain_postgres_resyncs_total",
        Kind::Counter,
        "Full reloads of the drain table (start, reconnect, unreadable notification).",
    ),
    (
        "logtrain_postgres_errors_total",
        Kind::Counter,
        "Drain table sessions that ended in an error (the last routes keep serving).",
    ),
    (
        "logtrain_postgres_unprotected_sessions_total",
        Kind::Counter,
        "Drain table sessions opened without TLS (tls=\"none\") or without checking the server's certificate (tls=\"unverified\").",
    ),
    (
        "logtrain_kubernetes_watch_errors_total",
        Kind::Counter,
        "Kubernetes list or watch requests that failed, per resource (retried with backoff).",
    ),
    (
        "logtrain_kubernetes_relists_total",
        Kind::Counter,
        "Full relists of a Kubernetes resource after its first sync (410 Gone, watch restarts).",
    ),
    (
        "logtrain_kubernetes_events_total",
        Kind::Counter,
        "Kubernetes Events created on objects whose annotation logtrain refused (a drain URL, a hostname, too many drains).",
    ),
    (
        "logtrain_kubernetes_events_existing_total",
        Kind::Counter,
        "Kubernetes Events another logtrain (another node) had already created (409 Conflict): told once per cluster, not an error.",
    ),
    (
        "logtrain_kubernetes_event_errors_total",
        Kind::Counter,
        "Kubernetes Events that could not be created (other than for lack of RBAC, which stops them).",
    ),
    ("logtrain_drains", Kind::Gauge, "Drains currently running."),
    (
        "logtrain_drain_queued_total",
        Kind::Counter,
        "Records accepted into a drain's queue.",
    ),
    ("logtrain_drain_sent_total", Kind::Counter, "Records a drain delivered."),
    (
        "logtrain_drain_sent_bytes_total",
        Kind::Counter,
        "Encoded bytes a drain delivered.",
    ),
    (
        "logtrain_drain_dropped_total",
        Kind::Counter,
        "Records dropped because a drain's queue was full, or because a closed drain could not deliver them within SHUTDOWN_TIMEOUT.",
    ),
    (
        "logtrain_drain_rejected_total",
        Kind::Counter,
        "Records a drain refused for good: its receiver refused them, or its host resolves only to addresses DRAIN_DENY_NETWORKS forbids.",
    ),
    (
        "logtrain_drain_truncated_total",
        Kind::Counter,
        "Records a drain truncated to fit its transport.",
    ),
    (
        "logtrain_drain_errors_total",
        Kind::Counter,
        "Connection, write and response errors per drain.",
    ),
    (
        "logtrain_drain_retries_total",
        Kind::Counter,
        "Batches a drain retried.",
    ),
    (
        "logtrain_drain_denied_total",
        Kind::Counter,
        "Times a drain named in an annotation found every address of its host in DRAIN_DENY_NETWORKS (nothing connected; checked again every minute while records come).",
    ),
    (
        "logtrain_drain_filtered_total",
        Kind::Counter,
        "Records a drain's own filters (severity=, match=, exclude=, stream= in its URL) left out.",
    ),
    (
        "logtrain_drain_rate_limited_total",
        Kind::Counter,
        "Records over a drain's rate= (its URL), dropped before its queue.",
    ),
    (
        "logtrain_drain_queue_records",
        Kind::Gauge,
        "Records waiting in a drain's queue.",
    ),
    (
        "logtrain_drain_queue_bytes",
        Kind::Gauge,
        "Bytes waiting in a drain's queue.",
    ),
    (
        "logtrain_drain_buffer_bytes",
        Kind::Gauge,
        "Record bytes a drain holds in its disk buffer (DRAIN_BUFFER=disk), out of DRAIN_BUFFER_MAX_BYTES.",
    ),
    (
        "logtrain_drain_buffer_records",
        Kind::Gauge,
        "Records a drain holds in its disk buffer that were not replayed into its queue yet.",
    ),
    (
        "logtrain_drain_buffer_spilled_total",
        Kind::Counter,
        "Records a drain's full queue sent to its disk buffer (or behind what the buffer held).",
    ),
    (
        "logtrain_drain_buffer_replayed_total",
        Kind::Counter,
        "Records replayed from a drain's disk buffer into its queue (again after a restart, for segments not confirmed).",
    ),
    (
        "logtrain_drain_buffer_dropped_total",
        Kind::Counter,
        "Records a drain dropped because its disk buffer was at its budget or could not be written (disk full); also in logtrain_drain_dropped_total.",
    ),
    (
        "logtrain_drain_buffer_orphans_dropped_total",
        Kind::Counter,
        "Records of disk buffers found at start whose drain URL is no longer valid, dropped.",
    ),
    (
        "logtrain_drain_buffer_torn_total",
        Kind::Counter,
        "Torn or unreadable records cut from a drain's disk buffer (a write a crash interrupted); never replayed.",
    ),
    (
        "logtrain_drain_connections",
        Kind::Gauge,
        "Open connections of a drain's pool.",
    ),
    (
        "logtrain_drain_send_seconds",
        Kind::Histogram(histogram::SECONDS),
        "Time a drain took to write one batch and have the receiver's answer (the write alone where the transport answers nothing).",
    ),
    (
        "logtrain_drain_batch_records",
        Kind::Histogram(histogram::RECORDS),
        "Records in each batch a drain wrote.",
    ),
    (
        "logtrain_delivery_lag_seconds",
        Kind::Histogram(histogram::SECONDS),
        "Container log lines: from the line's own time to its drain's confirmation, observed once per confirmed batch for its oldest line.",
    ),
];

fn kind_of(name: &str) -> Option<(Kind, &'static str)> {
    CATALOG.iter().find(|(n, _, _)| *n == name).map(|(_, k, h)| (*k, *h))
}

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Registry {
    counters: RwLock<BTreeMap<(&'static str, Labels), Arc<AtomicU64>>>,
    gauges: RwLock<BTreeMap<(&'static str, Labels), Arc<AtomicI64>>>,
    histograms: RwLock<BTreeMap<(&'static str, Labels), Arc<histogram::Inner>>>,
    /// Holders of each [`Lease`] (label, value).
    leases: parking_lot::Mutex<HashMap<(&'static str, String), usize>>,
}

fn registry() -> &'static Registry {
    static R: OnceLock<Registry> = OnceLock::new();
    R.get_or_init(Registry::default)
}

fn labels(l: &[(&'static str, &str)]) -> Labels {
    l.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

/// A monotonically increasing count.
#[derive(Clone, Debug)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Clone, Debug)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn add(&self, v: i64) {
        self.0.fetch_add(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The counter `name{labels}`; `name` must be in [`CATALOG`].
pub fn counter(name: &'static str, l: &[(&'static str, &str)]) -> Counter {
    debug_assert_eq!(kind_of(name).map(|k| k.0), Some(Kind::Counter), "{name}");
    let key = (name, labels(l));
    if let Some(c) = registry().counters.read().get(&key) {
        return Counter(c.clone());
    }
    Counter(registry().counters.write().entry(key).or_default().clone())
}

/// The gauge `name{labels}`; `name` must be in [`CATALOG`].
pub fn gauge(name: &'static str, l: &[(&'static str, &str)]) -> Gauge {
    debug_assert_eq!(kind_of(name).map(|k| k.0), Some(Kind::Gauge), "{name}");
    let key = (name, labels(l));
    if let Some(g) = registry().gauges.read().get(&key) {
        return Gauge(g.clone());
    }
    Gauge(registry().gauges.write().entry(key).or_default().clone())
}

/// The histogram `name{labels}`; `name` must be in [`CATALOG`] as one.
pub fn histogram(name: &'static str, l: &[(&'static str, &str)]) -> Histogram {
    let Some((Kind::Histogram(bounds), _)) = kind_of(name) else {
        panic!("{name} is not a histogram of the catalog");
    };
    let key = (name, labels(l));
    if let Some(h) = registry().histograms.read().get(&key) {
        return Histogram(h.clone());
    }
    let mut all = registry().histograms.write();
    Histogram(
        all.entry(key)
            .or_insert_with(|| Arc::new(histogram::Inner::new(bounds)))
            .clone(),
    )
}

/// Removes every series, counter, gauge or histogram, carrying `label=value` (a closed
/// drain's, say). Handles still held keep working but are no longer rendered;
/// the next [`counter`] or [`gauge`] call for such a series registers it anew.
pub fn forget(label: &str, value: &str) {
    let r = registry();
    let carries = |l: &Labels| l.iter().any(|(k, v)| *k == label && v == value);
    r.counters.write().retain(|(_, l), _| !carries(l));
    r.gauges.write().retain(|(_, l), _| !carries(l));
    r.histograms.write().retain(|(_, l), _| !carries(l));
}

/// Keeps the series labelled `label=value` while it lives: when the last
/// lease on a (label, value) is dropped, every series carrying it is
/// [`forget`]ten. A component whose series must vanish with it (a drain) takes
/// one before looking its handles up and drops it when it has finished, so a
/// successor of the same name, started before or after, always has its series
/// rendered.
#[derive(Debug)]
pub struct Lease {
    label: &'static str,
    value: String,
}

/// A [`Lease`] on the series labelled `label=value`.
pub fn lease(label: &'static str, value: &str) -> Lease {
    *registry().leases.lock().entry((label, value.to_string())).or_default() += 1;
    Lease {
        label,
        value: value.to_string(),
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut leases = registry().leases.lock();
        let key = (self.label, std::mem::take(&mut self.value));
        let Some(n) = leases.get_mut(&key) else { return };
        *n -= 1;
        if *n == 0 {
            leases.remove(&key);
            // Under the lease lock, so a new lease cannot slip in between.
            forget(key.0, &key.1);
        }
    }
}

fn escape(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// The content type of [`render`]'s text: OpenMetrics 1.0 when `accept` (a
/// request's Accept header) asks for it, else the Prometheus text format 0.0.4.
pub fn content_type(accept: &str) -> (&'static str, bool) {
    if accept.contains("application/openmetrics-text") {
        ("application/openmetrics-text; version=1.0.0; charset=utf-8", true)
    } else {
        ("text/plain; version=0.0.4; charset=utf-8", false)
    }
}

/// `{k="v",…}` with `extra` last (a histogram's `le`); empty without labels.
fn fmt_labels(l: &Labels, extra: Option<(&str, &str)>) -> String {
    let all: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).chain(extra).collect();
    if all.is_empty() {
        return String::new();
    }
    let mut s = String::from("{");
    for (i, (k, v)) in all.into_iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push_str("=\"");
        escape(v, &mut s);
        s.push('"');
    }
    s.push('}');
    s
}

/// The whole registry, the process series and the build info, in the
/// Prometheus text format (version 0.0.4).
pub fn render() -> String {
    render_as(false)
}

/// [`render`], or OpenMetrics 1.0 with `openmetrics` (a counter's family is
/// named without `_total`; `# EOF` ends it).
pub fn render_as(openmetrics: bool) -> String {
    let mut out = String::with_capacity(8192);
    let counters = registry().counters.read();
    let gauges = registry().gauges.read();
    let histograms = registry().histograms.read();
    for (name, kind, help) in CATALOG {
        let family = match kind {
            Kind::Counter if openmetrics => name.trim_end_matches("_total"),
            _ => name,
        };
        let _ = writeln!(out, "# HELP {family} {help}");
        let _ = writeln!(out, "# TYPE {family} {}", kind.name());
        let from = (*name, Vec::new());
        for ((_, l), v) in counters.range(from.clone()..).take_while(|((n, _), _)| n == name) {
            let _ = writeln!(out, "{name}{} {}", fmt_labels(l, None), v.load(Ordering::Relaxed));
        }
        for ((_, l), v) in gauges.range(from.clone()..).take_while(|((n, _), _)| n == name) {
            let _ = writeln!(out, "{name}{} {}", fmt_labels(l, None), v.load(Ordering::Relaxed));
        }
        for ((_, l), h) in histograms.range(from..).take_while(|((n, _), _)| n == name) {
            let (buckets, sum, count) = histogram::snapshot(h);
            for (le, n) in buckets {
                let _ = writeln!(out, "{name}_bucket{} {n}", fmt_labels(l, Some(("le", &le))));
            }
            let _ = writeln!(out, "{name}_sum{} {sum}", fmt_labels(l, None));
            let _ = writeln!(out, "{name}_count{} {count}", fmt_labels(l, None));
        }
    }
    process::render(&mut out, openmetrics);
    if openmetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// Logs a problem the first time it is seen for `key` and stays quiet after that,
/// so a flood of identical errors costs one log line (the counter still counts all).
#[derive(Default)]
pub struct OnceLog {
    seen: parking_lot::Mutex<std::collections::HashSet<String>>,
}

impl OnceLog {
    /// Returns true the first time `key` is passed (log then), false afterwards.
    pub fn first(&self, key: &str) -> bool {
        let mut seen = self.seen.lock();
        if seen.len() > 10_000 {
            seen.clear();
        }
        seen.insert(key.to_string())
    }

    /// Forgets `key`, so its next occurrence is logged again.
    pub fn forget(&self, key: &str) {
        self.seen.lock().remove(key);
    }
}

#[cfg(test)]
mod tests;
