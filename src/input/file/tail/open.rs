//! Opening a container log and deciding where reading starts: at its
//! checkpoint when the file's first bytes still match it, else at its start or
//! its end (and never further back than the backlog limit allows). Nothing here
//! reads past the file's first bytes.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tracing::{debug, info, warn};

use super::super::StartAt;
use super::super::checkpoint::{FileId, HEAD_BYTES, head_checksum};
use super::Tailer;

/// Opens of a live file whose name a rotation left empty, 50 ms apart.
const LIVE_OPEN_TRIES: usize = 5;

/// An open file and where we are in it.
pub(super) struct Open {
    pub(super) file: Arc<std::fs::File>,
    pub(super) id: FileId,
    pub(super) head: u64,
    pub(super) head_len: usize,
    /// Offset of the next byte to read.
    pub(super) read_at: u64,
    /// Offset just past the last line handed on (start of `carry`).
    pub(super) line_at: u64,
    /// Offset up to which everything is acknowledged.
    pub(super) acked: u64,
    /// Offset up to which every line has become complete records (no partial
    /// record still waiting for its end).
    pub(super) clean: u64,
}

/// Where in a line reading starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum FirstLine {
    /// At a line's start (the file's start, its end, or a checkpoint).
    Whole,
    /// Inside a line: the backlog limit skipped the file's older bytes, and the
    /// rest of that line is not a line of its own.
    Cut,
}

impl Tailer {
    /// Opens the live file; a name left empty for a moment by a rotation
    /// (renamed, not yet created again) is tried again a few times before the
    /// task gives up (discovery starts a new one if the file comes back).
    pub(super) async fn open_live(&self, start: StartAt) -> Option<(Open, FirstLine)> {
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
    pub(super) async fn open(&self, path: &Path, start: StartAt) -> Option<(Open, FirstLine)> {
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
        let mut first_line = FirstLine::Whole;
        if !resumed && backlog > 0 && meta.len() - offset > backlog {
            let skip_to = meta.len() - backlog;
            warn!(path = %self.path.display(), skipped_bytes = skip_to - offset, "Container log backlog over the limit; starting later.");
            offset = skip_to;
            first_line = FirstLine::Cut;
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
        Some((open, first_line))
    }
}
