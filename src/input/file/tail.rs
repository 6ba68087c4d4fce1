//! One tailed container log: reads it from its checkpoint to the end and keeps
//! following it, across rotation by rename (the old file is finished to its end
//! before the new one is opened) and truncation in place. Each chunk of records
//! carries one acknowledgement; the file's checkpoint advances only when every
//! drain has delivered the records before it. Sending waits while a drain's
//! queue is full, so a slow drain slows this file instead of growing memory.
//!
//! Per read, not per line: each read's records are handed to each drain as one
//! batch, and their messages are slices of the read buffer (shared, not copied).
//! Reads are positional (`pread` on the blocking pool) straight into our own
//! buffer, which an idle file gives back, so many quiet files cost little.
//! A file whose folder is watched sleeps until inotify wakes it.
//!
//! Rotated files are never skipped: after every open of the live file (held
//! open from then on), rotated siblings last written between the previous open
//! and this one are read first, oldest name first. Finished files stay in the
//! checkpoints at their end, so a restart reads neither twice nor short.

use std::collections::VecDeque;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::checkpoint::{Entry, FileId, HEAD_BYTES, head_checksum};
use super::format::{self, Assembled, Reassembler};
use super::name::LogName;
use super::{Shared, StartAt};
use crate::ack::{self, AckReceiver};
use crate::datasource::pods::{PodKey, fallback_hostname};
use crate::record::{Facility, InputKind, Origin, PodRef, Position, Record, SharedRecord, Stream};

const READ_CHUNK: usize = 64 << 10;
/// Acknowledged chunks not yet folded into the checkpoint, at most.
/// (Each stands for records still queued or held by a drain, which bound them;
/// a drain may confirm a batch only some time after writing it.)
const MAX_PENDING_ACKS: usize = 4096;
/// Finished files of one path whose positions are kept (the kubelet keeps five
/// rotated files by default).
const KEEP_DONE: usize = 64;
/// Opens of a live file whose name a rotation left empty, 50 ms apart.
const LIVE_OPEN_TRIES: usize = 5;
/// How often a watched file at its end is looked at without being woken.
const WATCHED_POLL: Duration = Duration::from_secs(5);
/// How far a file's modification time may lag the clock (the kernel stamps
/// files from a clock that advances once a tick).
const MTIME_SLACK: Duration = Duration::from_millis(50);

/// An open file and where we are in it.
struct Open {
    file: Arc<std::fs::File>,
    id: FileId,
    head: u64,
    head_len: usize,
    /// Offset of the next byte to read.
    read_at: u64,
    /// Offset just past the last line handed on (start of `carry`).
    line_at: u64,
    /// Offset up to which everything is acknowledged.
    acked: u64,
    /// Offset up to which every line has become complete records (no partial
    /// record still waiting for its end).
    clean: u64,
}

/// Follows one path until it disappears or shutdown.
pub struct Tailer {
    pub path: PathBuf,
    pub name: LogName,
    pub start: StartAt,
    pub wake: Arc<Notify>,
    pub shared: Arc<Shared>,
    /// Files this tailer has finished or is following (so rotated copies are
    /// not read twice).
    pub done: parking_lot::Mutex<Vec<FileId>>,
    /// When discovery found the path.
    pub found_at: std::time::SystemTime,
    /// Whether the file's folder is watched (changes wake the task).
    pub watched: bool,
}

struct LineState {
    carry: Vec<u8>,
    /// Skipping the rest of an over-long line.
    discarding: bool,
    reasm: Reassembler,
    pending: VecDeque<(u64, AckReceiver)>,
}

impl Tailer {
    pub async fn run(self) {
        let pod = Arc::new(PodRef {
            namespace: self.name.namespace.clone(),
            pod: self.name.pod.clone(),
            container: self.name.container.clone(),
        });
        let mut start = self.start;
        let mut st = LineState {
            carry: Vec::new(),
            discarding: false,
            reasm: Reassembler::new(self.shared.max_record),
            pending: VecDeque::new(),
        };
        // Files of this path that a checkpoint names. None at all: the path is
        // new, and files rotated away before we open it were never read by anyone.
        let saved = self.saved_ids();
        let known = !saved.is_empty();
        if start == StartAt::End && self.rotated_away(&saved).is_some() {
            // Rotated while we were down: the live file is new since then.
            start = StartAt::Beginning;
        }
        let mut first = true;
        let mut since = None;
        loop {
            // Taken before the open: files rotated away before it were last
            // written before it.
            let opened_at = std::time::SystemTime::now();
            let Some((mut open, mid_line)) = self.open_live(start).await else {
                return;
            };
            // Held open now, the live file cannot slip away. Files rotated away
            // before this open come first: on the first open those of an earlier
            // run (or since discovery), later those rotated since the last open
            // (we may have fallen behind by several rotations).
            self.mark_done(open.id);
            if std::mem::take(&mut first) {
                // Looked at only now: a file rotated just before this open
                // is among them.
                since = self.missed_since(self.rotated_away(&saved), start, known);
            }
            if let Some(since) = since
                && self.catch_up(since, opened_at, &mut st, &pod).await
            {
                self.settle(&mut open, &mut st, true).await;
                return;
            }
            // File times come from a coarse clock that lags a little.
            since = Some(opened_at - MTIME_SLACK);
            // Started in the middle of a line (backlog limit): skip to the next one.
            st.discarding = mid_line;
            let gone = self.follow(&mut open, &mut st, &pod, false).await;
            if self.shared.shutdown.is_stopped() {
                // Leave unfinished lines for the next run: the checkpoint stays before them.
                self.settle(&mut open, &mut st, true).await;
                return;
            }
            self.finish(open, &mut st, &pod).await;
            if gone {
                return;
            }
            start = StartAt::Beginning;
        }
    }

    /// Reads every rotated sibling last modified between `since` and `until` (the
    /// live file's open: later ones are newer than it) that is not done yet,
    /// oldest name first, resuming from its checkpoint when it has one.
    /// Returns true when shutdown stopped it.
    async fn catch_up(
        &self,
        since: std::time::SystemTime,
        until: std::time::SystemTime,
        st: &mut LineState,
        pod: &Arc<PodRef>,
    ) -> bool {
        // One pass: everything rotated before `until` is already there, and a
        // second look could find files forgotten meanwhile (see `mark_done`).
        for (path, id) in self.rotated_between(since, until) {
            let Some((mut open, _)) = self.open(&path, StartAt::Beginning).await else {
                self.mark_done(id);
                continue;
            };
            self.follow(&mut open, st, pod, true).await;
            if self.shared.shutdown.is_stopped() {
                self.settle(&mut open, st, true).await;
                return true;
            }
            self.finish(open, st, pod).await;
        }
        false
    }

    /// Since when rotated siblings may hold lines nobody read: the oldest file a
    /// checkpoint of this path names that now sits under a rotated name (`away`),
    /// and, for a path new to us whose files are read from their beginning,
    /// anything rotated since discovery (with a second of slack for coarse file
    /// times).
    fn missed_since(
        &self,
        away: Option<std::time::SystemTime>,
        start: StartAt,
        known: bool,
    ) -> Option<std::time::SystemTime> {
        let since_found = (!known && start == StartAt::Beginning).then(|| self.found_at - Duration::from_secs(1));
        match (away, since_found) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Files of this path named by a checkpoint of an earlier run or a position
    /// an earlier task of this path left.
    fn saved_ids(&self) -> Vec<FileId> {
        let of_path = |e: &Entry| (e.path == self.path).then_some(e.id);
        let mut saved: Vec<FileId> = self.shared.checkpoints.lock().values().filter_map(of_path).collect();
        saved.extend(self.shared.positions.lock().values().filter_map(of_path));
        saved
    }

    /// When one of the `saved` files now sits next to the live one under a
    /// rotated name, the time that file was last modified (reading starts
    /// there); `None` when there is none.
    fn rotated_away(&self, saved: &[FileId]) -> Option<std::time::SystemTime> {
        if saved.is_empty() {
            return None;
        }
        let target = self.target()?;
        let dir = target.parent()?;
        let prefix = format!("{}.", target.file_name()?.to_str()?);
        std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(&prefix)))
            .filter_map(|e| e.metadata().ok())
            .filter(|m| {
                saved.contains(&FileId {
                    dev: m.dev(),
                    ino: m.ino(),
                })
            })
            .filter_map(|m| m.modified().ok())
            .min()
    }

    /// Hands on whatever is unfinished in a file we are done with and remembers
    /// it as done; its position reaches its end as its last acknowledgements
    /// come in, in the background.
    async fn finish(&self, mut open: Open, st: &mut LineState, pod: &Arc<PodRef>) {
        let mut out = Vec::new();
        st.reasm.flush(&mut out);
        if !st.carry.is_empty() && !st.discarding {
            let line = std::mem::take(&mut st.carry);
            self.shared.stats.parse_errors.inc();
            out.push(Assembled {
                time: None,
                stream: Stream::Stdout,
                msg: Bytes::from(line),
                split: false,
                start: open.line_at,
                piece: 0,
            });
        }
        st.carry.clear();
        st.discarding = false;
        let end = open.read_at;
        self.send(&mut open, st, pod, out, end).await;
        self.settle(&mut open, st, false).await;
        // A finished file stays in the checkpoints, at its end once everything
        // in it is acknowledged, so a restart knows it was read; the oldest are
        // forgotten. The next file need not wait for those acknowledgements
        // (a drain may confirm a batch only some time after writing it).
        self.record_position(&open);
        self.mark_done(open.id);
        let pending = std::mem::take(&mut st.pending);
        if pending.is_empty() {
            return;
        }
        let (shared, id) = (self.shared.clone(), open.id);
        tokio::spawn(async move {
            for (end, rx) in pending {
                rx.wait().await;
                // Only while it is remembered (not yet forgotten as too old).
                if let Some(e) = shared.positions.lock().get_mut(&id) {
                    e.offset = e.offset.max(end);
                }
                shared.dirty.store(true, std::sync::atomic::Ordering::Release);
            }
        });
    }

    /// Remembers a file as read (or being followed); forgets the position of the
    /// oldest once more than [`KEEP_DONE`] are remembered.
    fn mark_done(&self, id: FileId) {
        let mut done = self.done.lock();
        if done.contains(&id) {
            return;
        }
        done.push(id);
        if done.len() > KEEP_DONE {
            let old = done.remove(0);
            self.shared.positions.lock().remove(&old);
            self.shared.dirty.store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// Rotated siblings of the live file (`0.log.*`, not compressed) last
    /// modified between `since` and `until` and not read yet, oldest name first.
    fn rotated_between(&self, since: std::time::SystemTime, until: std::time::SystemTime) -> Vec<(PathBuf, FileId)> {
        let Some(target) = self.target() else {
            return Vec::new();
        };
        let (Some(dir), Some(base)) = (target.parent(), target.file_name().and_then(|n| n.to_str())) else {
            return Vec::new();
        };
        let prefix = format!("{base}.");
        let done = self.done.lock().clone();
        let mut found: Vec<(PathBuf, FileId)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                if !name.starts_with(&prefix) || name.ends_with(".gz") || name.ends_with(".tmp") {
                    return None;
                }
                let m = e.metadata().ok()?;
                let id = FileId {
                    dev: m.dev(),
                    ino: m.ino(),
                };
                let modified = m.modified().ok()?;
                (!done.contains(&id) && modified >= since && modified <= until).then(|| (e.path(), id))
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    /// Where the path's file lives (a container log is a link into its pod's
    /// folder, and on docker nodes a link again into docker's), found through
    /// the links and the folder, not the file: between a rotation's rename and
    /// the new file's creation the name is empty for a moment, and the rotated
    /// siblings must still be found then.
    fn target(&self) -> Option<PathBuf> {
        resolve_target(&self.path)
    }

    /// Opens the live file; a name left empty for a moment by a rotation
    /// (renamed, not yet created again) is tried again a few times before the
    /// task gives up (discovery starts a new one if the file comes back).
    async fn open_live(&self, start: StartAt) -> Option<(Open, bool)> {
        for _ in 0..LIVE_OPEN_TRIES {
            if let Some(open) = self.open(&self.path, start).await {
                return Some(open);
            }
            if std::fs::symlink_metadata(&self.path).is_err() || self.shared.shutdown.is_stopped() {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// Opens the path and decides where to start reading.
    async fn open(&self, path: &Path, start: StartAt) -> Option<(Open, bool)> {
        let mut file = match tokio::fs::File::open(path).await {
            Ok(f) => f,
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    warn!(path = %self.path.display(), error = %e, "Cannot open container log.");
                    self.shared.stats.errors.inc();
                }
                return None;
            }
        };
        let meta = file.metadata().await.ok()?;
        let id = FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        let mut head_buf = vec![0u8; HEAD_BYTES.min(meta.len() as usize)];
        let n = file.read(&mut head_buf).await.unwrap_or(0);
        head_buf.truncate(n);
        // Saved by an earlier run, or finished by an earlier task of this path.
        let saved = self.shared.checkpoints.lock().remove(&id);
        let saved = saved.or_else(|| self.shared.positions.lock().get(&id).cloned());
        // Resuming keeps the saved fingerprint, so the file keeps its identity
        // (record positions, checkpoints) across restarts.
        let (mut offset, head, head_len, resumed) = match saved {
            Some(e)
                if e.head_len <= n && head_checksum(&head_buf[..e.head_len]) == e.head && e.offset <= meta.len() =>
            {
                info!(path = %self.path.display(), offset = e.offset, "Resuming container log from its checkpoint.");
                (e.offset, e.head, e.head_len, true)
            }
            _ => {
                let stale = start == StartAt::Beginning
                    && self.shared.max_backlog_age.is_some_and(|age| {
                        meta.modified()
                            .ok()
                            .and_then(|m| m.elapsed().ok())
                            .is_some_and(|idle| idle > age)
                    });
                if stale && meta.len() > 0 {
                    info!(path = %path.display(), bytes = meta.len(), "Container log last written before TAIL_MAX_BACKLOG_AGE; starting at its end.");
                }
                let offset = if start == StartAt::Beginning && !stale {
                    0
                } else {
                    meta.len()
                };
                (offset, head_checksum(&head_buf), n, false)
            }
        };
        // The backlog limit is for files nobody has read yet; a checkpointed
        // file is read on from where it was, however far it grew meanwhile.
        let backlog = self.shared.max_backlog;
        let mut mid_line = false;
        if !resumed && backlog > 0 && meta.len() - offset > backlog {
            let skip_to = meta.len() - backlog;
            warn!(path = %self.path.display(), skipped_bytes = skip_to - offset, "Container log backlog over the limit; starting later.");
            offset = skip_to;
            mid_line = true;
        }
        let open = Open {
            file: Arc::new(file.into_std().await),
            id,
            head,
            head_len,
            read_at: offset,
            line_at: offset,
            acked: offset,
            clean: offset,
        };
        self.record_position(&open);
        debug!(path = %self.path.display(), offset, "Tailing container log.");
        Some((open, mid_line))
    }

    /// Reads until the path stops naming this file (returns false: rotated) or
    /// the path is gone / shutdown (returns true). With `once`, stops at the end
    /// (a rotated file that no longer grows).
    async fn follow(&self, open: &mut Open, st: &mut LineState, pod: &Arc<PodRef>, once: bool) -> bool {
        let mut buf = BytesMut::new();
        // The last read filled a whole chunk: there is more, no need to look.
        let mut more = false;
        let mut last_data = Instant::now();
        let mut eof_checks_after_rotation = 0u8;
        loop {
            let permit = self.shared.reads.acquire().await;
            let (read, back) = read_at(&open.file, open.read_at, buf, more).await;
            drop(permit);
            buf = back;
            let n = match read {
                Ok(n) => n,
                Err(e) => {
                    warn!(path = %self.path.display(), error = %e, "Read error on container log.");
                    self.shared.stats.errors.inc();
                    return true;
                }
            };
            more = n == READ_CHUNK;
            if n > 0 {
                last_data = Instant::now();
                let chunk = buf.split().freeze();
                if open.read_at == 0 {
                    // The file's first bytes (new, or truncated in place): the
                    // fingerprint a restart checks the checkpoint against.
                    open.head_len = n.min(HEAD_BYTES);
                    open.head = head_checksum(&chunk[..open.head_len]);
                }
                let records = self.split(open, st, &chunk);
                let end = open.clean;
                self.send(open, st, pod, records, end).await;
                self.settle(open, st, false).await;
                continue;
            }
            // At the end: give the read buffer back while the file is quiet.
            buf = BytesMut::new();
            self.settle(open, st, false).await;
            if self.shared.shutdown.is_stopped() || once {
                return true;
            }
            // At the end: has the path moved on to a new file, or was this one truncated?
            match tokio::fs::metadata(&self.path).await {
                Ok(m) if m.dev() == open.id.dev && m.ino() == open.id.ino => {
                    // Shorter than where we are. (Truncated and written past
                    // our offset again shows in the first bytes: that is
                    // looked at after the wake below, before reading on.)
                    if m.len() < open.read_at {
                        self.read_again(open, st, m.len()).await;
                        continue;
                    }
                }
                Ok(_) | Err(_) => {
                    // Rotated or removed: the writer may still append for a moment
                    // before it reopens, so look at the end twice more.
                    eof_checks_after_rotation += 1;
                    if eof_checks_after_rotation >= 3 {
                        // Gone only when the name itself is (its pod was removed);
                        // a rotation may leave the link dangling for a moment.
                        return std::fs::symlink_metadata(&self.path).is_err();
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
            // Under a watch, every write, rename and truncation wakes us: the
            // poll is only a safety net. Unwatched, poll often while busy.
            let idle = last_data.elapsed();
            let poll = if self.watched {
                WATCHED_POLL
            } else if idle > Duration::from_secs(10) {
                Duration::from_secs(1)
            } else {
                Duration::from_millis(250)
            };
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = self.shared.shutdown.stopped() => {}
            }
            // Woken by a write that may follow a truncation: look before
            // reading on from the old offset into new contents.
            if let Some(now) = truncated_in_place(open).await {
                self.read_again(open, st, now).await;
            }
        }
    }

    /// A file truncated in place (copytruncate): read it again from its start.
    async fn read_again(&self, open: &mut Open, st: &mut LineState, now: u64) {
        warn!(path = %self.path.display(), was = open.read_at, now, "Container log truncated; reading it again from the start.");
        self.shared.stats.truncations.inc();
        // Acknowledgements still due are for offsets of the old
        // contents: take them in before counting from zero again.
        self.settle(open, st, true).await;
        open.read_at = 0;
        open.line_at = 0;
        open.acked = 0;
        open.clean = 0;
        st.carry.clear();
        st.discarding = false;
        self.record_position(open);
    }

    /// Splits a chunk into lines and whole records (whose messages share `chunk`).
    fn split(&self, open: &mut Open, st: &mut LineState, chunk: &Bytes) -> Vec<Assembled> {
        let mut out = Vec::new();
        let max_line = self.shared.max_record + 4096;
        let mut rest = &chunk[..];
        open.read_at += chunk.len() as u64;
        while !rest.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    let piece = &rest[..i];
                    rest = &rest[i + 1..];
                    let consumed = st.carry.len() + piece.len() + 1;
                    if st.discarding {
                        st.discarding = false;
                        st.carry.clear();
                        open.line_at += consumed as u64;
                        if st.reasm.idle() {
                            open.clean = open.line_at;
                        }
                        continue;
                    }
                    // The line starts where the last one ended.
                    let start = open.line_at;
                    if st.carry.is_empty() {
                        self.line(st, piece, start, chunk, &mut out);
                    } else {
                        st.carry.extend_from_slice(piece);
                        let line = Bytes::from(std::mem::take(&mut st.carry));
                        self.line(st, &line, start, &line, &mut out);
                    }
                    open.line_at += consumed as u64;
                    // Not while a record waits for more lines: a restart must
                    // read it again from its first line.
                    if st.reasm.idle() {
                        open.clean = open.line_at;
                    }
                }
                None => {
                    if st.discarding {
                        open.line_at += rest.len() as u64;
                    } else {
                        st.carry.extend_from_slice(rest);
                        if st.carry.len() > max_line {
                            // A line without end: hand on what fits, drop the rest of it.
                            let mut msg = std::mem::take(&mut st.carry);
                            let start = open.line_at;
                            open.line_at += msg.len() as u64;
                            msg.truncate(self.shared.max_record);
                            self.shared.stats.truncated.inc();
                            out.push(Assembled {
                                time: None,
                                stream: Stream::Stdout,
                                msg: Bytes::from(msg),
                                split: true,
                                start,
                                piece: 0,
                            });
                            st.discarding = true;
                        }
                    }
                    rest = &[];
                }
            }
        }
        out
    }

    /// One line (`bytes`, a slice of `src`, starting at file offset `start`)
    /// into records.
    fn line(&self, st: &mut LineState, bytes: &[u8], start: u64, src: &Bytes, out: &mut Vec<Assembled>) {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if bytes.is_empty() {
            return;
        }
        match format::parse(bytes) {
            Some(l) => st.reasm.push(l, start, src, out),
            None => {
                self.shared.stats.parse_errors.inc();
                let msg = src.slice_ref(&bytes[..bytes.len().min(self.shared.max_record)]);
                out.push(Assembled {
                    time: None,
                    stream: Stream::Stdout,
                    msg,
                    split: false,
                    start,
                    piece: 0,
                });
            }
        }
    }

    /// Builds records and queues them on their drains (waiting for room).
    async fn send(&self, open: &mut Open, st: &mut LineState, pod: &Arc<PodRef>, records: Vec<Assembled>, end: u64) {
        if records.is_empty() {
            if st.reasm.idle() && end > open.acked && st.pending.is_empty() {
                open.acked = end;
                self.record_position(open);
            }
            return;
        }
        let (hostname, tag) = self.labels();
        let drains = self.shared.routes.load().drains_arc(&hostname);
        let (ack, rx) = ack::batch();
        let n = records.len() as u64;
        let mut bytes = 0u64;
        let mut batch: Vec<SharedRecord> = Vec::with_capacity(records.len());
        for a in records {
            if a.split {
                self.shared.stats.split.inc();
            }
            bytes += a.msg.len() as u64;
            let mut r = Record::new(InputKind::File, hostname.clone(), a.msg);
            r.facility = Facility::USER;
            r.severity = match a.stream {
                Stream::Stdout => self.shared.stdout_severity,
                Stream::Stderr => self.shared.stderr_severity,
            };
            r.timestamp = a.time;
            r.app_name = tag.clone();
            r.origin = Origin {
                input: InputKind::File,
                pod: Some(pod.clone()),
                stream: Some(a.stream),
                position: Some(Position {
                    file: file_key(open),
                    offset: a.start,
                    piece: a.piece,
                }),
            };
            r.ack = Some(ack.clone());
            batch.push(Arc::new(r));
        }
        drop(ack);
        match &drains {
            Some(ds) => {
                for d in ds.iter() {
                    d.send_batch(&batch).await;
                }
            }
            None => self.shared.stats.unrouted.add(n),
        }
        drop(batch);
        self.shared.stats.records.add(n);
        self.shared.stats.bytes.add(bytes);
        st.pending.push_back((end, rx));
    }

    /// Folds acknowledged chunks into the checkpoint; with `all`, waits for every
    /// outstanding one (bounded by shutdown's deadline, which aborts us).
    async fn settle(&self, open: &mut Open, st: &mut LineState, all: bool) {
        let mut moved = false;
        loop {
            let must_wait = all || st.pending.len() > MAX_PENDING_ACKS;
            let Some((end, rx)) = st.pending.front_mut() else { break };
            let end = *end;
            if rx.try_status().is_none() {
                if !must_wait {
                    break;
                }
                let (_, rx) = st.pending.pop_front().expect("front exists");
                rx.wait().await;
            } else {
                st.pending.pop_front();
            }
            open.acked = open.acked.max(end);
            moved = true;
        }
        if moved {
            self.record_position(open);
        }
    }

    fn record_position(&self, open: &Open) {
        let e = Entry {
            path: self.path.clone(),
            id: open.id,
            head: open.head,
            head_len: open.head_len,
            offset: open.acked,
        };
        self.shared.positions.lock().insert(open.id, e);
        self.shared.dirty.store(true, std::sync::atomic::Ordering::Release);
    }

    /// The hostname and tag of this container's records.
    fn labels(&self) -> (Bytes, Bytes) {
        let key = PodKey::new(self.name.namespace.clone(), self.name.pod.clone());
        match self.shared.pods.get(&key) {
            Some(m) => (Bytes::from(m.hostname.clone()), Bytes::from(m.tag.clone())),
            None => (
                Bytes::from(fallback_hostname(
                    &self.name.namespace,
                    &self.name.pod,
                    self.shared.akkeris,
                )),
                Bytes::from(self.name.pod.clone()),
            ),
        }
    }
}

/// Reads what the file holds past `offset`, up to [`READ_CHUNK`] bytes,
/// appended to `buf`, on the blocking pool (a regular file read may wait for
/// the disk). The buffer grows only by what there is to read (rounded up to
/// 4 KiB): records keep slices of it until delivered, so a small append must
/// not pin a whole chunk, and nothing is zero-filled that is not read into.
/// With `more` (the last read filled a chunk: a backlog), a whole chunk is read
/// without looking at the length first.
async fn read_at(
    file: &Arc<std::fs::File>,
    offset: u64,
    mut buf: BytesMut,
    more: bool,
) -> (std::io::Result<usize>, BytesMut) {
    use std::os::unix::fs::FileExt;
    let file = file.clone();
    let job = tokio::task::spawn_blocking(move || {
        let avail = if more {
            READ_CHUNK as u64
        } else {
            match file.metadata() {
                Ok(m) => m.len().saturating_sub(offset),
                Err(e) => return (Err(e), buf),
            }
        };
        if avail == 0 {
            return (Ok(0), buf);
        }
        let want = (avail as usize).next_multiple_of(4096).min(READ_CHUNK);
        let start = buf.len();
        // Reuses the allocation's free end when there is room.
        buf.reserve(want);
        buf.resize(start + want, 0);
        let read = file.read_at(&mut buf[start..], offset);
        buf.truncate(start + read.as_ref().map_or(0, |n| *n));
        (read, buf)
    });
    match job.await {
        Ok(done) => done,
        Err(e) => (Err(std::io::Error::other(e)), BytesMut::new()),
    }
}

/// The open file's length when it was truncated in place since we read
/// (shorter than our offset, or other first bytes): one `fstat` and at most
/// one 256-byte read, in one job on the blocking pool.
async fn truncated_in_place(open: &Open) -> Option<u64> {
    let (file, read_at, check_head) = (open.file.clone(), open.read_at, has_head(open));
    let (len, want) = (open.head_len, open.head);
    tokio::task::spawn_blocking(move || {
        let now = file.metadata().ok()?.len();
        (now < read_at || (check_head && head_differs(&file, len, want))).then_some(now)
    })
    .await
    .ok()
    .flatten()
}

fn has_head(open: &Open) -> bool {
    open.head_len > 0 && open.read_at >= open.head_len as u64
}

fn head_differs(file: &std::fs::File, len: usize, want: u64) -> bool {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    match file.read_exact_at(&mut buf, 0) {
        Ok(()) => head_checksum(&buf) != want,
        // Shorter than the head now: the length check sees it.
        Err(_) => false,
    }
}

fn file_key(open: &Open) -> u64 {
    open.id.dev.rotate_left(32) ^ open.id.ino ^ open.head
}

/// [`Tailer::target`] of a path: follows its links, then resolves the folder
/// (which a rotation leaves in place) rather than the file.
fn resolve_target(path: &Path) -> Option<PathBuf> {
    let mut at = path.to_path_buf();
    for _ in 0..8 {
        match std::fs::read_link(&at) {
            Ok(next) if next.is_absolute() => at = next,
            Ok(next) => at = at.parent()?.join(next),
            Err(_) => break,
        }
    }
    let dir = std::fs::canonicalize(at.parent()?).ok()?;
    Some(dir.join(at.file_name()?))
}

#[cfg(test)]
mod tests {
    use super::resolve_target;

    #[test]
    fn a_link_is_resolved_while_a_rotation_leaves_its_file_missing() {
        let root = tempfile::tempdir().unwrap();
        let root_path = std::fs::canonicalize(root.path()).unwrap();
        let pod = root_path.join("pods/ns_web-1_uid/c");
        let docker = root_path.join("docker/abc");
        std::fs::create_dir_all(&pod).unwrap();
        std::fs::create_dir_all(&docker).unwrap();
        std::fs::create_dir_all(root_path.join("containers")).unwrap();
        // containers/x.log -> ../pods/.../0.log -> docker/abc/abc-json.log (a chain, one relative).
        std::os::unix::fs::symlink(docker.join("abc-json.log"), pod.join("0.log")).unwrap();
        let link = root_path.join("containers/web-1_ns_c-abc.log");
        std::os::unix::fs::symlink("../pods/ns_web-1_uid/c/0.log", &link).unwrap();
        std::fs::write(docker.join("abc-json.log"), b"x\n").unwrap();
        let want = docker.join("abc-json.log");
        assert_eq!(resolve_target(&link), Some(want.clone()));
        // Renamed away, not yet created again: canonicalize fails, the folder does not.
        std::fs::rename(&want, docker.join("abc-json.log.1")).unwrap();
        assert!(std::fs::canonicalize(&link).is_err());
        assert_eq!(resolve_target(&link), Some(want));
        // A plain file resolves to itself.
        let plain = root_path.join("containers/plain.log");
        std::fs::write(&plain, b"").unwrap();
        assert_eq!(resolve_target(&plain), Some(plain));
    }
}
