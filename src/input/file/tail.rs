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
//!
//! This module is the task's loop only (it never reads a file or moves a
//! position itself); each file it reads is a `Reading` (`reading`), and the
//! rest has one module per job:
//! - `open`: opening a file and deciding where reading starts;
//! - `rotation`: the rotated siblings to catch up on, and the files done;
//! - `follow`: reading a file on to its end, and waiting for more;
//! - `read`: one positional read into the buffer;
//! - `lines`: a read's bytes into lines and records;
//! - `deliver`: records onto their drains;
//! - `acks`: acknowledgements into the file's position;
//! - `truncate`: a file truncated in place, read again.

mod acks;
mod deliver;
mod follow;
mod lines;
mod open;
mod read;
mod reading;
mod rotation;
mod truncate;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use self::acks::Settle;
use self::follow::{Followed, Until};
use self::reading::Reading;
use self::rotation::CaughtUp;
use super::checkpoint::FileId;
use super::name::LogName;
use super::{Shared, StartAt};
use crate::record::PodRef;

/// How far a file's modification time may lag the clock (the kernel stamps
/// files from a clock that advances once a tick).
const MTIME_SLACK: Duration = Duration::from_millis(50);

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

impl Tailer {
    /// Reads the path's files (rotated ones before the live one) until the
    /// path is gone or shutdown.
    pub async fn run(self) {
        let pod = Arc::new(PodRef {
            namespace: self.name.namespace.clone(),
            pod: self.name.pod.clone(),
            container: self.name.container.clone(),
            node: self.shared.node.clone(),
            ..PodRef::default()
        });
        let mut start = self.start;
        // Files of this path that a checkpoint names. None at all: the path is
        // new, and files rotated away before we open it were never read by anyone.
        let saved = self.saved_ids();
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
            let Some((open, first_line)) = self.open_live(start).await else {
                return;
            };
            // A first line the backlog limit cut into is skipped to its end.
            let mut live = Reading::new(&self, &pod, open, first_line);
            // Held open now, the live file cannot slip away. Files rotated away
            // before this open come first: on the first open those of an earlier
            // run (or since discovery), later those rotated since the last open
            // (we may have fallen behind by several rotations).
            self.mark_done(live.open.id);
            if std::mem::take(&mut first) {
                // Looked at only now: a file rotated just before this open
                // is among them.
                since = self.missed_since(&saved, start);
            }
            if let Some(since) = since
                && self.catch_up(since, opened_at, &pod).await == CaughtUp::Stopped
            {
                live.settle(Settle::All).await;
                return;
            }
            // File times come from a coarse clock that lags a little.
            since = Some(opened_at - MTIME_SLACK);
            let followed = live.follow(Until::Moved).await;
            if self.shared.shutdown.is_stopped() {
                // Leave unfinished lines for the next run: the checkpoint stays before them.
                live.settle(Settle::All).await;
                return;
            }
            live.finish().await;
            if followed != Followed::Rotated {
                return;
            }
            start = StartAt::Beginning;
        }
    }
}
