//! The container log tailer (`KUBERNETES=true`): follows every
//! `<pod>_<namespace>_<container>-<id>.log` in `KUBERNETES_LOG_PATH`, one task per
//! file, and routes each line by its pod's hostname (from the Kubernetes
//! datasource's pod directory, else logtrain's fallback `name.namespace`).
//!
//! Discovery uses inotify (through `notify`) on the folder plus a periodic rescan
//! as a safety net; writes wake their file's task through watches on the folders
//! the links point into, with a slow poll as a fallback. Positions are saved by
//! one writer task (see [`checkpoint`]) after they are acknowledged.

pub mod checkpoint;
pub mod format;
pub mod lag;
pub mod name;
pub mod tail;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};
use tracing::{info, warn};

use self::checkpoint::{Entry, FileId};
use crate::app::App;
use crate::datasource::pods::PodDirectory;
use crate::input::InputError;
use crate::record::Severity;
use crate::route::Routes;
use crate::shutdown::Shutdown;
use crate::telemetry::{self, Counter, OnceLog};

/// Files read at the same moment, at most.
const CONCURRENT_READS: usize = 8;

/// Where to start a file that has no checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    Beginning,
    End,
}

/// Counters of the tailer.
pub struct Stats {
    pub records: Counter,
    pub bytes: Counter,
    pub parse_errors: Counter,
    pub truncated: Counter,
    pub split: Counter,
    pub unrouted: Counter,
    pub errors: Counter,
    pub truncations: Counter,
}

/// State every file task shares.
pub struct Shared {
    pub routes: Routes,
    pub pods: PodDirectory,
    pub akkeris: bool,
    /// This node's name (`NODE_NAME`), for the Kubernetes metadata of records.
    pub node: Option<Arc<str>>,
    pub max_record: usize,
    pub max_backlog: u64,
    /// Files without a checkpoint last written longer ago start at their end.
    pub max_backlog_age: Option<Duration>,
    pub stdout_severity: Severity,
    pub stderr_severity: Severity,
    /// Checkpoints loaded at start, taken by the file they belong to.
    pub checkpoints: Mutex<HashMap<FileId, Entry>>,
    /// Current acknowledged positions of open files.
    pub positions: Mutex<HashMap<FileId, Entry>>,
    pub dirty: AtomicBool,
    /// Reads in progress at once, at most: bounds the blocking threads and read
    /// buffers when many files have data together (a start with a backlog).
    pub reads: tokio::sync::Semaphore,
    pub shutdown: Shutdown,
    pub stats: Stats,
}

/// Settings of the tailer.
#[derive(Clone, Debug)]
pub struct TailConfig {
    pub dir: PathBuf,
    pub checkpoint_path: PathBuf,
    pub start_at: StartAt,
    pub max_record: usize,
    pub max_backlog: u64,
    /// Files without a checkpoint last written longer ago start at their end.
    pub max_backlog_age: Option<Duration>,
    pub exclude_namespaces: Vec<String>,
    pub rescan: Duration,
}

impl TailConfig {
    pub fn from_app(app: &App) -> Self {
        let c = &app.config;
        TailConfig {
            dir: c.kubernetes_log_path.clone(),
            checkpoint_path: c.checkpoint_path.clone(),
            start_at: if c.tail_start_at_end {
                StartAt::End
            } else {
                StartAt::Beginning
            },
            max_record: c.tail_max_record_bytes.max(1024),
            max_backlog: c.tail_max_backlog_bytes,
            max_backlog_age: (c.tail_max_backlog_age > 0).then(|| Duration::from_secs(c.tail_max_backlog_age)),
            exclude_namespaces: c.exclude_namespaces.clone(),
            rescan: Duration::from_secs(5),
        }
    }
}

/// Starts tailing; returns once the first scan is done.
pub async fn start(app: &App, cfg: TailConfig) -> Result<(), InputError> {
    if !cfg.dir.is_dir() {
        return Err(InputError::LogPath {
            input: "file",
            path: cfg.dir.clone(),
        });
    }
    let loaded = match checkpoint::load(&cfg.checkpoint_path) {
        Ok(c) => c,
        Err(e @ checkpoint::CheckpointError::Format { .. }) => {
            checkpoint::unusable(&cfg.checkpoint_path, &e);
            HashMap::new()
        }
        Err(e) => {
            warn!(error = %e, "Starting without checkpoints.");
            HashMap::new()
        }
    };
    let l = [("input", "file")];
    let shared = Arc::new(Shared {
        routes: app.routes.clone(),
        pods: app.pods.clone(),
        akkeris: app.config.akkeris,
        node: app.config.node_name.as_deref().map(Arc::from),
        max_record: cfg.max_record,
        max_backlog: cfg.max_backlog,
        stdout_severity: Severity::new(app.config.tail_stdout_severity),
        stderr_severity: Severity::new(app.config.tail_stderr_severity),
        max_backlog_age: cfg.max_backlog_age,
        checkpoints: Mutex::new(loaded),
        positions: Mutex::new(HashMap::new()),
        dirty: AtomicBool::new(false),
        reads: tokio::sync::Semaphore::new(CONCURRENT_READS),
        shutdown: app.inputs().clone(),
        stats: Stats {
            records: telemetry::counter("logtrain_input_records_total", &l),
            bytes: telemetry::counter("logtrain_input_bytes_total", &l),
            parse_errors: telemetry::counter("logtrain_input_parse_errors_total", &l),
            truncated: telemetry::counter("logtrain_input_truncated_total", &l),
            split: telemetry::counter("logtrain_tail_split_records_total", &[]),
            unrouted: telemetry::counter("logtrain_unrouted_records_total", &l),
            errors: telemetry::counter("logtrain_tail_errors_total", &[]),
            truncations: telemetry::counter("logtrain_tail_truncations_total", &[]),
        },
    });
    let mut tailer = Discovery::new(cfg.clone(), shared.clone());
    let shutdown = app.inputs().clone();
    if app.is_ready() {
        tailer.scan(true);
        shutdown.spawn(tailer.run());
    } else {
        // Lines read before the datasources' first full sync would find no
        // route, count as unrouted and be checkpointed past: reading waits.
        let mut ready = app.readiness();
        let stop = shutdown.clone();
        shutdown.spawn(async move {
            info!("Container log tailer waits for the routes to be loaded.");
            tokio::select! {
                r = ready.wait_for(|r| *r) => if r.is_err() { return },
                _ = stop.stopped() => return,
            }
            tailer.scan(true);
            tailer.run().await;
        });
    }
    let patience = app.config.shutdown_deadline() * 2 / 5;
    shutdown.spawn(lag::sample(shared.clone()));
    shutdown.spawn(checkpoints(cfg.checkpoint_path, shared, patience));
    Ok(())
}

/// Finds files, starts and forgets their tasks.
struct Discovery {
    cfg: TailConfig,
    shared: Arc<Shared>,
    files: HashMap<PathBuf, (Arc<Notify>, tokio::task::JoinHandle<()>)>,
    /// Wake-ups by the real path a link points to.
    wakes: Arc<Mutex<HashMap<PathBuf, Arc<Notify>>>>,
    /// Folders under watch (true) or that could not be watched (false).
    watched_dirs: HashMap<PathBuf, bool>,
    watcher: Option<notify::RecommendedWatcher>,
    events: mpsc::Receiver<()>,
    reported: OnceLog,
}

impl Discovery {
    fn new(cfg: TailConfig, shared: Arc<Shared>) -> Self {
        let (tx, events) = mpsc::channel(1);
        let wakes: Arc<Mutex<HashMap<PathBuf, Arc<Notify>>>> = Arc::default();
        let w = wakes.clone();
        let dir = cfg.dir.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(ev) = res else { return };
            if ev.need_rescan() {
                // The kernel dropped events: wake every file and look again.
                for n in w.lock().values() {
                    n.notify_one();
                }
                let _ = tx.try_send(());
                return;
            }
            // Writing to a file never adds or removes one: no rescan for it.
            let data = matches!(ev.kind, notify::EventKind::Modify(notify::event::ModifyKind::Data(_)));
            let mut rescan = false;
            for p in &ev.paths {
                // Wake the file's task (also for regular files right in the folder).
                if let Some(n) = w.lock().get(p) {
                    n.notify_one();
                }
                if p.parent() == Some(dir.as_path()) && !data {
                    rescan = true;
                }
            }
            if rescan {
                let _ = tx.try_send(());
            }
        });
        let mut watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                warn!(error = %e, "inotify unavailable; finding files by rescanning only.");
                None
            }
        };
        let mut watched_dirs = HashMap::new();
        if let Some(w) = watcher.as_mut() {
            let ok = match w.watch(&cfg.dir, RecursiveMode::NonRecursive) {
                Ok(()) => true,
                Err(e) => {
                    warn!(error = %e, dir = %cfg.dir.display(), "Cannot watch the log folder (inotify limits?); rescanning only.");
                    false
                }
            };
            watched_dirs.insert(cfg.dir.clone(), ok);
        }
        Discovery {
            cfg,
            shared,
            files: HashMap::new(),
            wakes,
            watched_dirs,
            watcher,
            events,
            reported: OnceLog::default(),
        }
    }

    async fn run(mut self) {
        let mut tick = tokio::time::interval(self.cfg.rescan);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = self.shared.shutdown.stopped() => break,
                _ = tick.tick() => self.scan(false),
                Some(()) = self.events.recv() => self.scan(false),
            }
        }
        // Wait for every file task to stop (they finish their acknowledgements).
        for (_, (_, h)) in self.files.drain() {
            let _ = h.await;
        }
    }

    /// Starts a task for every new file; forgets finished ones.
    fn scan(&mut self, initial: bool) {
        let shared = &self.shared;
        self.files.retain(|path, (_, h)| {
            if !h.is_finished() {
                return true;
            }
            // The path is gone for good (its pod was removed): forget its files.
            if std::fs::symlink_metadata(path).is_err() {
                shared.positions.lock().retain(|_, e| &e.path != path);
                shared.dirty.store(true, Ordering::Release);
            }
            false
        });
        let entries = match std::fs::read_dir(&self.cfg.dir) {
            Ok(e) => e,
            Err(e) => {
                if self.reported.first("read_dir") {
                    warn!(dir = %self.cfg.dir.display(), error = %e, "Cannot list the log folder.");
                }
                self.shared.stats.errors.inc();
                return;
            }
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if self.files.contains_key(&path) {
                continue;
            }
            let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(name) = name::parse(file_name) else { continue };
            if self.cfg.exclude_namespaces.iter().any(|n| n == &name.namespace) {
                continue;
            }
            let wake = Arc::new(Notify::new());
            let watched = self.watch_target(&path, &wake);
            let t = tail::Tailer {
                path: path.clone(),
                name,
                start: if initial { self.cfg.start_at } else { StartAt::Beginning },
                wake: wake.clone(),
                shared: self.shared.clone(),
                done: Default::default(),
                found_at: std::time::SystemTime::now(),
                watched,
            };
            let h = tokio::spawn(t.run());
            self.files.insert(path, (wake, h));
        }
        telemetry::gauge("logtrain_tail_files", &[]).set(self.files.len() as i64);
        if initial {
            info!(dir = %self.cfg.dir.display(), files = self.files.len(), "Tailing container logs.");
        }
    }

    /// Watches the folder a link points into, so writes wake the file's task.
    /// Returns whether that folder is watched (else the task polls often).
    fn watch_target(&mut self, link: &Path, wake: &Arc<Notify>) -> bool {
        let Ok(target) = std::fs::canonicalize(link) else {
            return false;
        };
        self.wakes.lock().insert(target.clone(), wake.clone());
        let Some(dir) = target.parent().map(Path::to_path_buf) else {
            return false;
        };
        if let Some(&ok) = self.watched_dirs.get(&dir) {
            return ok;
        }
        let ok = match self.watcher.as_mut() {
            Some(w) => match w.watch(&dir, RecursiveMode::NonRecursive) {
                Ok(()) => true,
                Err(e) => {
                    if self.reported.first("watch") {
                        warn!(dir = %dir.display(), error = %e, "Cannot watch a log folder (inotify limits?); polling it instead.");
                    }
                    false
                }
            },
            None => false,
        };
        self.watched_dirs.insert(dir, ok);
        ok
    }
}

/// Saves positions once a second when they changed, and once more at the end.
async fn checkpoints(path: PathBuf, shared: Arc<Shared>, patience: Duration) {
    let errors = telemetry::counter("logtrain_checkpoint_errors_total", &[]);
    let mut failing = false;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = shared.shutdown.stopped() => true,
        };
        if stopping {
            // Let the file tasks record their last acknowledged positions first
            // (they wait for their drains), within part of the shutdown deadline.
            let until = tokio::time::Instant::now() + patience;
            while Arc::strong_count(&shared) > 1 && tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        if shared.dirty.swap(false, Ordering::AcqRel) || stopping {
            let mut entries: Vec<Entry> = shared.positions.lock().values().cloned().collect();
            // Loaded checkpoints no task has taken yet (its file is about to be
            // opened, or was rotated away before it was) are kept while their
            // path is there.
            let unclaimed: Vec<Entry> = {
                let taken: HashSet<FileId> = entries.iter().map(|e| e.id).collect();
                let cps = shared.checkpoints.lock();
                cps.values().filter(|e| !taken.contains(&e.id)).cloned().collect()
            };
            let p = path.clone();
            let save = move || {
                entries.extend(
                    unclaimed
                        .into_iter()
                        .filter(|e| std::fs::symlink_metadata(&e.path).is_ok()),
                );
                checkpoint::save(&p, entries)
            };
            match tokio::task::spawn_blocking(save).await {
                Ok(Ok(())) => {
                    if failing {
                        info!(path = %path.display(), "Checkpoints are being saved again.");
                        failing = false;
                    }
                }
                Ok(Err(e)) => {
                    errors.inc();
                    shared.dirty.store(true, Ordering::Release);
                    if !failing {
                        warn!(error = %e, "Cannot save checkpoints; still routing, will retry.");
                        failing = true;
                    }
                }
                Err(_) => {}
            }
        }
        if stopping {
            return;
        }
    }
}
