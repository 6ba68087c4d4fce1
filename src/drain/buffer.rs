//! Per-drain disk buffers: where a drain's records go when its memory queue
//! is full, so a drain that is down neither holds back its neighbours (the
//! tailer moves on: a record written here counts as delivered for its
//! checkpoint) nor loses what push inputs send it, within a byte budget.
//!
//! Each drain has a directory under `DRAIN_BUFFER_PATH` named by a hash of its
//! key (the key holds the URL and may hold credentials: it is written only
//! into the directory's `drain.key`, mode 0600, the directory 0700). Records
//! are appended to segment files (`segment`), each record a frame with its
//! length and checksum (`codec`); `store` keeps which segments exist, how far
//! each was replayed and which wait for their delivery to be confirmed. A
//! segment is deleted once every record in it was confirmed by the drain, so
//! after a crash only records of unconfirmed segments are sent again.
//!
//! Order per source is kept: once anything is on disk, new records go to disk
//! behind it until replay has caught up ([`Buffer::push`]); the driver's
//! `spill` task writes, replays and deletes. Blocking file I/O never runs on
//! the async runtime. Segments are fsynced when they are sealed, once a
//! second while written to, and at shutdown: `kill -9` loses nothing the
//! kernel had; a power cut may lose the last second.
//!
//! This module never talks to a receiver and never decides what is delivered.

pub mod codec;
pub mod segment;
pub mod store;

use std::collections::HashSet;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::sync::Notify;

use crate::drain::queue::{PushError, Queue};
use crate::record::SharedRecord;
use crate::telemetry::{self, Counter, Gauge};

/// Records accepted for disk and not yet written, at most (producers then
/// wait, or drop).
pub const STAGE_RECORDS: usize = 8192;
/// Bytes accepted for disk and not yet written, at most.
pub const STAGE_BYTES: usize = 8 << 20;
/// The file of a buffer's directory that names its drain.
pub const KEY_FILE: &str = "drain.key";

/// Where and how much drains may buffer on disk (shared by every drain).
#[derive(Clone, Debug)]
pub struct BufferConfig {
    /// `DRAIN_BUFFER_PATH`: one directory per drain below it.
    pub root: PathBuf,
    /// `DRAIN_BUFFER_MAX_BYTES`: record bytes one drain may hold on disk.
    pub max_bytes: u64,
    /// The node's budget (`DRAIN_BUFFER_TOTAL_BYTES`), shared by every drain.
    pub node: Arc<NodeBudget>,
    /// A segment is sealed (and a new one begun) past this size.
    pub segment_bytes: u64,
}

impl BufferConfig {
    pub fn new(root: PathBuf, max_bytes: u64, total_bytes: u64) -> Self {
        BufferConfig {
            root,
            max_bytes,
            node: Arc::new(NodeBudget::new(total_bytes)),
            segment_bytes: (max_bytes / 16).clamp(64 << 10, 16 << 20),
        }
    }

    /// The directory of the drain with `key`: a hash, never the URL itself.
    pub fn dir(&self, key: &str) -> PathBuf {
        let d = Sha256::digest(key.as_bytes());
        let hex: String = d[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.root.join(hex)
    }
}

/// The bytes every drain of the node holds on disk, against one bound.
#[derive(Debug)]
pub struct NodeBudget {
    max: u64,
    used: AtomicU64,
}

impl NodeBudget {
    pub fn new(max: u64) -> Self {
        NodeBudget {
            max,
            used: AtomicU64::new(0),
        }
    }

    /// Takes `n` bytes if they fit.
    fn reserve(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (u + n <= self.max).then_some(u + n)
            })
            .is_ok()
    }

    /// Takes `n` bytes that are on disk already (found at start), fitting or not.
    fn force(&self, n: u64) {
        self.used.fetch_add(n, Ordering::AcqRel);
    }

    fn release(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| Some(u.saturating_sub(n)));
    }

    /// Bytes held now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

/// Why a buffer could not be opened (the drain then runs on memory alone).
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot prepare buffer directory {dir}: {source}")]
    Dir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("buffer directory {0} is in use by another drain of this process")]
    InUse(PathBuf),
}

/// Per-drain buffer metrics, looked up once.
pub struct BufferStats {
    pub bytes: Gauge,
    pub records: Gauge,
    pub spilled: Counter,
    pub replayed: Counter,
    pub dropped: Counter,
    pub torn: Counter,
}

impl BufferStats {
    fn new(id: &str) -> Self {
        let l = [("drain", id)];
        BufferStats {
            bytes: telemetry::gauge("logtrain_drain_buffer_bytes", &l),
            records: telemetry::gauge("logtrain_drain_buffer_records", &l),
            spilled: telemetry::counter("logtrain_drain_buffer_spilled_total", &l),
            replayed: telemetry::counter("logtrain_drain_buffer_replayed_total", &l),
            dropped: telemetry::counter("logtrain_drain_buffer_dropped_total", &l),
            torn: telemetry::counter("logtrain_drain_buffer_torn_total", &l),
        }
    }
}

/// What the producers and the spill task share.
pub struct State {
    /// Records accepted for disk that replay has not queued yet (staged,
    /// on disk or read back and waiting for room). While not zero, new
    /// records go behind them.
    pub behind: u64,
    /// Until the segments found at start are counted, everything goes to disk.
    pub recovering: bool,
    /// Accepted, not written yet (the spill task takes them).
    pub staged: Vec<SharedRecord>,
    pub staged_bytes: usize,
    /// Record bytes staged or on disk, against `max_bytes`.
    pub used: u64,
    /// The drain was closed: nothing more is staged (set under this lock, so
    /// the spill task's last look at `staged` misses nothing).
    pub closed: bool,
    /// While a failing drain's records in memory are gathered to go in front
    /// of what is staged, the spill task writes nothing ([`Buffer::hold`]).
    pub holding: bool,
}

/// What became of a record offered to a buffered drain.
pub enum Offer {
    /// Into the memory queue (nothing was on disk and it had room).
    Queued,
    /// Accepted for disk.
    Staged,
    /// Too much is waiting to be written: wait for room, or drop.
    Full(SharedRecord),
    /// Nothing is on disk and the memory queue is full (only when asked not
    /// to spill yet).
    QueueFull(SharedRecord),
    /// Beyond the drain's or the node's disk budget.
    OverBudget(SharedRecord),
    /// The drain was closed.
    Closed(SharedRecord),
}

/// One drain's disk buffer, shared by its handle and its spill task.
pub struct Buffer {
    pub dir: PathBuf,
    pub cfg: BufferConfig,
    pub state: Mutex<State>,
    /// Wakes the spill task: records staged, or the drain closed.
    pub wake: Notify,
    /// Wakes producers waiting for staging room.
    pub room: Notify,
    pub stats: BufferStats,
    /// Set at shutdown: what is on disk and not confirmed stays there for the
    /// next start.
    pub keep: AtomicBool,
    /// Whether the current over-budget episode was logged.
    pub over_logged: AtomicBool,
    /// The drain's receiver is failing ([`Buffer::set_down`]).
    down: AtomicBool,
}

/// Buffer directories open in this process: one drain per directory.
fn open_dirs() -> &'static Mutex<HashSet<PathBuf>> {
    static OPEN: std::sync::OnceLock<Mutex<HashSet<PathBuf>>> = std::sync::OnceLock::new();
    OPEN.get_or_init(Default::default)
}

impl Buffer {
    /// Opens (creating if needed) the buffer of the drain with `key` and
    /// metric label `id`. What its segments hold is counted by the spill task;
    /// until then every record goes to disk.
    pub fn open(cfg: &BufferConfig, key: &str, id: &str) -> Result<Arc<Buffer>, OpenError> {
        let dir = cfg.dir(key);
        let prepare = |dir: &Path| -> io::Result<()> {
            std::fs::create_dir_all(&cfg.root)?;
            let mut b = std::fs::DirBuilder::new();
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
            match b.create(dir) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
            write_key(dir, key)
        };
        if !open_dirs().lock().insert(dir.clone()) {
            return Err(OpenError::InUse(dir));
        }
        if let Err(source) = prepare(&dir) {
            open_dirs().lock().remove(&dir);
            return Err(OpenError::Dir { dir, source });
        }
        // Only segments an earlier run left need counting before records may
        // go to memory (a new buffer has none).
        let recovering = segment::list(&dir).is_ok_and(|s| !s.is_empty());
        Ok(Arc::new(Buffer {
            dir,
            cfg: cfg.clone(),
            state: Mutex::new(State {
                behind: 0,
                recovering,
                staged: Vec::new(),
                staged_bytes: 0,
                used: 0,
                closed: false,
                holding: false,
            }),
            wake: Notify::new(),
            room: Notify::new(),
            stats: BufferStats::new(id),
            keep: AtomicBool::new(false),
            over_logged: AtomicBool::new(false),
            down: AtomicBool::new(false),
        }))
    }

    /// Queues `rec` in memory if nothing is on disk and the queue has room,
    /// else accepts it for disk if the budget allows. `closed`: the drain no
    /// longer takes records. With `spill` false a full queue is reported
    /// ([`Offer::QueueFull`]) instead of spilling, for a producer that would
    /// rather wait a moment.
    pub fn push(&self, queue: &Queue, closed: bool, spill: bool, mut rec: SharedRecord) -> Offer {
        let mut st = self.state.lock();
        if closed || st.closed {
            return Offer::Closed(rec);
        }
        if !st.recovering && st.behind == 0 && !self.down.load(Ordering::Acquire) {
            match queue.try_push(rec) {
                Ok(()) => return Offer::Queued,
                Err(PushError::Full(r)) if !spill => return Offer::QueueFull(r),
                Err(PushError::Full(r)) => rec = r,
                Err(PushError::Closed(r)) => return Offer::Closed(r),
            }
        }
        if st.staged.len() >= STAGE_RECORDS || st.staged_bytes >= STAGE_BYTES {
            return Offer::Full(rec);
        }
        let size = codec::frame_len(&rec) as u64;
        if st.used + size > self.cfg.max_bytes || !self.cfg.node.reserve(size) {
            return Offer::OverBudget(rec);
        }
        st.used += size;
        st.behind += 1;
        st.staged_bytes += size as usize;
        st.staged.push(rec);
        let first = st.staged.len() == 1;
        drop(st);
        self.stats.spilled.inc();
        self.over_logged.store(false, Ordering::Release);
        if first {
            self.wake.notify_one();
        }
        Offer::Staged
    }

    /// Queues in memory the longest prefix of `recs` the queue takes now,
    /// under one lock, if nothing is on disk (else none); returns how many.
    pub fn push_prefix(&self, queue: &Queue, recs: &[SharedRecord]) -> usize {
        let st = self.state.lock();
        if st.closed || st.recovering || st.behind > 0 || self.down.load(Ordering::Acquire) {
            return 0;
        }
        queue.push_some(recs).unwrap_or(0)
    }

    /// Whether records offered now would be taken without waiting.
    /// Conservative (half the staging bounds), so an input that checks once
    /// and then offers a whole read rarely races into a drop.
    pub fn has_room(&self) -> bool {
        let st = self.state.lock();
        st.staged.len() < STAGE_RECORDS / 2 && st.staged_bytes < STAGE_BYTES / 2
    }

    /// Whether records go to the memory queue now (nothing on disk ahead of
    /// them, the receiver not failing).
    pub fn in_memory(&self) -> bool {
        let st = self.state.lock();
        !st.recovering && st.behind == 0 && !self.down.load(Ordering::Acquire)
    }

    /// Waits until staging has room (the spill task took what was staged).
    pub async fn wait_room(&self) {
        let mut wait = std::pin::pin!(self.room.notified());
        wait.as_mut().enable();
        if self.has_room() {
            return;
        }
        wait.await;
    }

    /// Waits until some budget is given back (a segment deleted).
    pub async fn wait_release(&self) {
        self.room.notified().await;
    }

    /// If records in memory could go to disk now without passing anything
    /// already there (nothing written is unreplayed, nothing found at start
    /// is still being counted, the drain is open), holds the spill task
    /// ([`Buffer::hold`]) so that stays true, and says so.
    pub fn hold_if_clear(&self) -> bool {
        let mut st = self.state.lock();
        let on_disk = st.behind.saturating_sub(st.staged.len() as u64);
        let clear = !st.closed && !st.recovering && on_disk == 0;
        st.holding |= clear;
        clear
    }

    /// While the drain's receiver fails, records go to disk even when the
    /// memory queue has room: none joins the records it retries in memory.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::Release);
    }

    /// Stops the spill task writing staged records (`true`) while a failing
    /// drain's records in memory are gathered, or lets it go on (`false`).
    pub fn hold(&self, on: bool) {
        self.state.lock().holding = on;
        if !on {
            self.wake.notify_one();
        }
    }

    /// Moves `older` (a failing drain's records in memory, oldest first) and
    /// then everything in `queue` to disk, in front of what producers staged
    /// since [`Buffer::hold`], under one lock so no producer slips between;
    /// the budget is taken whether it fits or not (they are few: at most what
    /// the drain's connections and queue hold). Ends the hold. Refused, with
    /// `older` handed back and the queue untouched, if something was written
    /// to disk meanwhile or the drain was closed: order would not hold.
    pub fn take_in_front(&self, queue: &Queue, mut older: Vec<SharedRecord>) -> Result<usize, Vec<SharedRecord>> {
        let mut st = self.state.lock();
        st.holding = false;
        let on_disk = st.behind.saturating_sub(st.staged.len() as u64);
        if st.closed || st.recovering || on_disk > 0 {
            drop(st);
            self.wake.notify_one();
            return Err(older);
        }
        older.extend(queue.take_all());
        let bytes: u64 = older.iter().map(|r| codec::frame_len(r) as u64).sum();
        let n = older.len();
        self.cfg.node.force(bytes);
        st.used += bytes;
        st.behind += n as u64;
        st.staged_bytes += bytes as usize;
        older.append(&mut st.staged);
        st.staged = older;
        drop(st);
        self.stats.spilled.add(n as u64);
        self.wake.notify_one();
        Ok(n)
    }

    /// Takes no more records (the drain was closed).
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.wake.notify_one();
    }

    /// Gives back `bytes` of budget (records written nowhere, or segments deleted).
    pub fn release(&self, bytes: u64) {
        let mut st = self.state.lock();
        st.used = st.used.saturating_sub(bytes);
        drop(st);
        self.cfg.node.release(bytes);
        // Producers waiting on the budget may go on.
        self.room.notify_waiters();
    }

    /// Counts `bytes` found on disk at start against both budgets.
    pub fn recovered(&self, records: u64, bytes: u64) {
        let mut st = self.state.lock();
        st.behind += records;
        st.used += bytes;
        st.recovering = false;
        drop(st);
        self.cfg.node.force(bytes);
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        open_dirs().lock().remove(&self.dir);
    }
}

/// Writes the drain's key into `dir` (owner-only), unless it is there already.
fn write_key(dir: &Path, key: &str) -> io::Result<()> {
    let p = dir.join(KEY_FILE);
    if std::fs::read(&p).is_ok_and(|k| k == key.as_bytes()) {
        return Ok(());
    }
    let tmp = dir.join(format!("{KEY_FILE}.tmp"));
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).write(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let mut f = opts.open(&tmp)?;
    f.write_all(key.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, &p)
}

/// Removes a buffer directory whose drain cannot be started; returns how
/// many whole records it held.
pub fn discard(dir: &Path) -> u64 {
    let records = segment::list(dir)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|seq| segment::scan(&segment::path(dir, seq)).ok())
        .map(|s| s.records)
        .sum();
    let _ = std::fs::remove_dir_all(dir);
    records
}

/// The buffer directories below `root` with the drain key each names, for
/// replaying drains no route names yet at start.
pub fn found(root: &Path) -> Vec<(PathBuf, String)> {
    let Ok(rd) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter_map(|e| {
            let key = std::fs::read_to_string(e.path().join(KEY_FILE)).ok()?;
            Some((e.path(), key))
        })
        .collect()
}
