//! Drains: the registry of running drains (one per distinct URL, shared by every
//! route that names it) and the factory that turns a [`DrainSpec`] into a running
//! [`Drain`]. A new drain kind is one file under `drain/`, its variant (with
//! its options) in `url/kind.rs`, its row in `url/scheme.rs` and one arm in
//! [`start`].
//!
//! Only the route writer calls into the registry, so it has a single writer;
//! inputs reach drains through the routing table, never through here. The
//! registry holds at most `DRAIN_MAX` drains, closed ones still flushing
//! included.

pub mod buffer;
pub mod dial;
pub mod driver;
pub mod elasticsearch;
pub mod file;
pub mod http;
pub mod process;
pub mod proxy;
pub mod queue;
pub mod stdout;
pub mod syslog;
pub mod tls;
pub mod url;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use driver::{Drain, DriverConfig};
pub use url::{DrainKind, DrainSpec, DrainUrlError};

use crate::config::Config;
use crate::telemetry;

/// A drain that could not be started.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error(transparent)]
    Url(#[from] DrainUrlError),
    #[error("drain {id}: {source}")]
    Setup {
        id: String,
        #[source]
        source: SetupError,
    },
    /// `DRAIN_MAX` drains are running (or still flushing) already.
    #[error("drain {id} not started: {max} drains are running already, the most DRAIN_MAX allows")]
    TooMany { id: String, max: usize },
}

/// Why a drain's transport could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error(transparent)]
    Http(#[from] http::HttpSetupError),
}

/// Shared context every drain may need.
#[derive(Clone)]
pub struct DrainContext {
    pub driver: DriverConfig,
    /// Bumped on SIGHUP: file drains reopen their files.
    pub reopen: watch::Receiver<u64>,
    /// Drains the registry runs at once at most (`DRAIN_MAX`).
    pub max_drains: usize,
}

impl DrainContext {
    /// The context `config` describes; `reopen` is bumped on SIGHUP.
    pub fn from_config(config: &Config, reopen: watch::Receiver<u64>) -> Self {
        let driver = DriverConfig {
            queue_records: config.drain_queue_records,
            queue_bytes: config.drain_queue_bytes,
            max_connections: config.drain_max_connections,
            give_up_after: config.shutdown_deadline(),
            buffer: (config.drain_buffer == crate::config::BufferMode::Disk).then(|| {
                buffer::BufferConfig::new(
                    config.drain_buffer_path.clone(),
                    config.drain_buffer_max_bytes,
                    config.drain_buffer_total_bytes,
                )
            }),
            ..DriverConfig::default()
        };
        DrainContext {
            driver,
            reopen,
            max_drains: config.drain_max,
        }
    }

    /// A context with default settings, no disk buffers and a reopen signal
    /// that never fires.
    pub fn standalone() -> Self {
        let (tx, reopen) = watch::channel(0);
        std::mem::forget(tx);
        let mut ctx = Self::from_config(&Config::default(), reopen);
        ctx.driver.buffer = None;
        ctx
    }
}

/// Starts the drain a spec describes.
pub fn start(spec: &DrainSpec, ctx: &DrainContext, tracker: &TaskTracker) -> Result<Arc<Drain>, DrainError> {
    let mut cfg = ctx.driver.clone();
    cfg.buffer_key = Some(crate::secret::Secret::new(spec.key.clone()));
    cfg.app_name = spec.app_name.as_deref().map(|t| bytes::Bytes::from(t.to_string()));
    cfg.processing = spec.processing.clone();
    let id = spec.id.as_str();
    Ok(match &spec.kind {
        DrainKind::File { path } => {
            driver::spawn(id, file::FileSink::new(path.clone(), ctx.reopen.clone()), cfg, tracker)
        }
        DrainKind::Stdout => driver::spawn(id, stdout::StdoutSink, cfg, tracker),
        DrainKind::SyslogUdp { .. } => driver::spawn(id, syslog::SyslogUdpSink::new(spec), cfg, tracker),
        DrainKind::SyslogStream { .. } => driver::spawn(
            id,
            syslog::SyslogStreamSink::new(spec, tls_for(spec, &[])?),
            cfg,
            tracker,
        ),
        DrainKind::SyslogHttp { .. } => {
            let sink = http::SyslogHttpSink::new(spec, tls_for(spec, &[b"http/1.1"])?).map_err(setup(spec))?;
            driver::spawn(id, sink, cfg, tracker)
        }
        DrainKind::Http(_) => {
            let sink = http::JsonHttpSink::new(spec, tls_for(spec, &[b"http/1.1"])?).map_err(setup(spec))?;
            driver::spawn(id, sink, cfg, tracker)
        }
        DrainKind::Elasticsearch(_) => {
            let sink =
                elasticsearch::ElasticsearchSink::new(spec, tls_for(spec, &[b"http/1.1"])?).map_err(setup(spec))?;
            driver::spawn(id, sink, cfg, tracker)
        }
    })
}

/// The spec whose key is `key` (a buffer's `drain.key`): its URL, a tenant's
/// copy (`#tenant`) and a tag (`#tag=`) undone in the order they were made.
fn spec_of_key(key: &str, egress: &Arc<crate::egress::Egress>) -> Option<DrainSpec> {
    let (rest, tag) = match key.rsplit_once("#tag=") {
        Some((rest, tag)) => (rest, Some(tag)),
        None => (key, None),
    };
    let (url, tenant) = match rest.strip_suffix("#tenant") {
        Some(url) => (url, true),
        None => (rest, false),
    };
    let mut spec = DrainSpec::parse(url).ok()?;
    if tenant {
        spec = spec.restricted(egress.clone());
    }
    if let Some(tag) = tag {
        spec = spec.tagged(tag);
    }
    (spec.key == key).then_some(spec)
}

/// The TLS connector of a drain whose scheme is TLS, else `None`.
fn tls_for(spec: &DrainSpec, alpn: &[&[u8]]) -> Result<Option<tls::TlsConnector>, DrainError> {
    if !spec.kind.tls() {
        return Ok(None);
    }
    tls::TlsConnector::new(spec, alpn).map(Some).map_err(setup(spec))
}

fn setup<E: Into<SetupError>>(spec: &DrainSpec) -> impl Fn(E) -> DrainError + '_ {
    move |e| DrainError::Setup {
        id: spec.id.clone(),
        source: e.into(),
    }
}

struct Running {
    drain: Arc<Drain>,
}

/// What shutdown left behind.
#[derive(Debug, Default)]
pub struct ShutdownReport {
    /// Drains that could not flush in time, with how many records they still held.
    pub unflushed: Vec<(String, usize)>,
}

/// Running drains by normalised URL.
pub struct Registry {
    ctx: DrainContext,
    tracker: TaskTracker,
    running: Mutex<HashMap<String, Running>>,
    retired: Mutex<Vec<Arc<Drain>>>,
    count: telemetry::Gauge,
}

impl Registry {
    pub fn new(ctx: DrainContext) -> Self {
        Registry {
            ctx,
            tracker: TaskTracker::new(),
            running: Mutex::new(HashMap::new()),
            retired: Mutex::new(Vec::new()),
            count: telemetry::gauge("logtrain_drains", &[]),
        }
    }

    /// The running drain for `spec`, starting it if needed, unless
    /// `DRAIN_MAX` drains are running or still flushing.
    pub fn get_or_start(&self, spec: &DrainSpec) -> Result<Arc<Drain>, DrainError> {
        let mut running = self.running.lock();
        if let Some(r) = running.get(&spec.key) {
            return Ok(r.drain.clone());
        }
        let flushing = {
            let mut retired = self.retired.lock();
            retired.retain(|d| !d.is_finished());
            retired.len()
        };
        if running.len() + flushing >= self.ctx.max_drains {
            return Err(DrainError::TooMany {
                id: spec.id.clone(),
                max: self.ctx.max_drains,
            });
        }
        let drain = start(spec, &self.ctx, &self.tracker)?;
        info!(drain = %spec.id, kind = spec.kind.as_str(), "Drain started.");
        running.insert(spec.key.clone(), Running { drain: drain.clone() });
        self.count.set(running.len() as i64);
        Ok(drain)
    }

    /// Closes every drain whose key `keep` rejects: it stops accepting records,
    /// flushes what it holds (or gives up on it after `SHUTDOWN_TIMEOUT`), its
    /// connections close, and its metric series are removed.
    pub fn retain(&self, keep: impl Fn(&str) -> bool) {
        let mut running = self.running.lock();
        let mut retired = self.retired.lock();
        retired.retain(|d| !d.is_finished());
        running.retain(|key, r| {
            if keep(key) {
                return true;
            }
            info!(drain = %r.drain.id(), "Drain no longer routed; flushing and closing it.");
            r.drain.close();
            retired.push(r.drain.clone());
            false
        });
        self.count.set(running.len() as i64);
    }

    /// Starts the drains whose disk buffers an earlier run left under
    /// `DRAIN_BUFFER_PATH`, so what they hold is replayed even if no route
    /// names them any more (the route writer then retires those: they replay
    /// within `SHUTDOWN_TIMEOUT`, drop what is left, counted, and remove their
    /// buffer). A buffer whose drain cannot be started again (its URL no
    /// longer valid) is dropped, its records counted. Returns how many drains
    /// were started.
    pub fn recover(&self, egress: &Arc<crate::egress::Egress>) -> usize {
        let Some(cfg) = self.ctx.driver.buffer.clone() else {
            return 0;
        };
        let mut started = 0;
        for (dir, key) in buffer::found(&cfg.root) {
            if self.running.lock().contains_key(&key) {
                continue;
            }
            match spec_of_key(&key, egress).map(|s| self.get_or_start(&s)) {
                Some(Ok(_)) => started += 1,
                Some(Err(e)) => {
                    warn!(error = %e, dir = %dir.display(), "Drain of a disk buffer found at start not started; its buffer stays.")
                }
                None => {
                    let records = buffer::discard(&dir);
                    telemetry::counter("logtrain_drain_buffer_orphans_dropped_total", &[]).add(records);
                    warn!(dir = %dir.display(), records, "Disk buffer of a drain whose URL is no longer valid; dropped.");
                }
            }
        }
        if started > 0 {
            info!(drains = started, "Replaying the disk buffers an earlier run left.");
        }
        started
    }

    /// Every drain currently running (not retired).
    pub fn drains(&self) -> Vec<Arc<Drain>> {
        self.running.lock().values().map(|r| r.drain.clone()).collect()
    }

    /// Closes every drain and waits up to `deadline` for them to flush. Drains
    /// still holding records then are abandoned and reported by name.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        let mut all: Vec<Arc<Drain>> = self.running.lock().drain().map(|(_, r)| r.drain).collect();
        all.extend(self.retired.lock().drain(..).filter(|d| !d.is_finished()));
        for d in &all {
            d.close_for_shutdown();
        }
        self.tracker.close();
        let mut report = ShutdownReport::default();
        let _ = tokio::time::timeout(deadline, self.tracker.wait()).await;
        for d in &all {
            if !d.is_finished() {
                let held = d.abandon();
                warn!(drain = %d.id(), records = held, "Drain could not flush before the shutdown deadline.");
                report.unflushed.push((d.id().to_string(), held));
            } else if d.given_up() > 0 {
                // It gave up on its own, its deadline being the same (and said so).
                report.unflushed.push((d.id().to_string(), d.given_up()));
            }
        }
        self.count.set(0);
        report
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn the_drain_defaults_are_the_drivers() {
        let (c, d) = (DrainContext::standalone().driver, DriverConfig::default());
        assert_eq!(
            (c.queue_records, c.queue_bytes, c.max_connections),
            (d.queue_records, d.queue_bytes, d.max_connections)
        );
    }
    use super::*;
    use crate::record::{InputKind, Record};

    /// A drain whose receiver is down (nothing listens on port 1).
    fn spec(i: usize) -> DrainSpec {
        DrainSpec::parse(&format!("syslog+tcp://127.0.0.{}:1", i + 1)).unwrap()
    }

    #[tokio::test]
    async fn no_more_than_drain_max_drains_run_or_flush_at_once() {
        let mut ctx = DrainContext::standalone();
        ctx.max_drains = 2;
        ctx.driver.give_up_after = Duration::from_millis(300);
        let r = Registry::new(ctx);
        let a = r.get_or_start(&spec(0)).unwrap();
        r.get_or_start(&spec(1)).unwrap();
        assert!(
            Arc::ptr_eq(&a, &r.get_or_start(&spec(0)).unwrap()),
            "the same drain is no new one"
        );
        let refused = r.get_or_start(&spec(2)).unwrap_err();
        assert!(matches!(refused, DrainError::TooMany { max: 2, .. }), "{refused}");
        assert!(refused.to_string().contains("DRAIN_MAX"), "{refused}");
        // Closed but still trying to flush: it still counts.
        assert!(a.offer(&Arc::new(Record::new(InputKind::Internal, "h", "m"))));
        r.retain(|k| k != spec(0).key);
        assert!(matches!(r.get_or_start(&spec(2)), Err(DrainError::TooMany { .. })));
        // Given up and finished: room for another.
        for _ in 0..200 {
            if a.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(a.is_finished() && a.given_up() == 1);
        r.get_or_start(&spec(2)).unwrap();
        assert_eq!(r.drains().len(), 2);
    }
}
