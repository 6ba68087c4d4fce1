//! Reading a file on: read by read to its end, then (for the live file) waiting
//! for a wake or the poll, and looking whether the path has moved on to a new
//! file, the file was truncated, or the path is gone. Nothing here opens a
//! file or decides what comes after this one.

use std::os::unix::fs::MetadataExt;
use std::time::Duration;

use bytes::BytesMut;
use tokio::time::Instant;
use tracing::warn;

use super::Tailer;

/// How long a read whose records wait for the drains keeps its read permit:
/// past a full queue's spill to disk (100 ms), short of starving other files.
const HOLD_PERMIT: Duration = Duration::from_millis(250);
use super::acks::Settle;
use super::read::{ReadSize, read_at};
use super::reading::Reading;
use super::truncate::truncated_in_place;
use crate::input::file::checkpoint::{HEAD_BYTES, head_checksum};

/// How often a watched file at its end is looked at without being woken.
const WATCHED_POLL: Duration = Duration::from_secs(5);

/// How far [`Reading::follow`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Until {
    /// To the end once: a rotated file, which no longer grows.
    End,
    /// Until the path stops naming this file: the live file.
    Moved,
}

/// Why [`Reading::follow`] stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Followed {
    /// Read to its end ([`Until::End`]).
    AtEnd,
    /// The path names another file now: the next one is to be opened.
    Rotated,
    /// The path itself is gone (its pod was removed).
    Removed,
    /// A read failed.
    Failed,
    /// Shutdown began.
    Stopped,
}

impl Reading<'_> {
    /// Reads until `until` says, and says why it stopped.
    pub(super) async fn follow(&mut self, until: Until) -> Followed {
        let tailer = self.tailer;
        let mut buf = BytesMut::new();
        // The last read filled a whole chunk: there is more, no need to look.
        let mut size = ReadSize::Available;
        let mut last_data = Instant::now();
        let mut eof_checks_after_rotation = 0u8;
        loop {
            let mut permit = Some(tailer.shared.reads.acquire().await);
            let (read, back) = read_at(&self.open.file, self.open.read_at, buf, size).await;
            buf = back;
            let n = match read {
                Ok(n) => n,
                Err(e) => {
                    warn!(path = %tailer.path.display(), error = %e, "Read error on container log.");
                    tailer.shared.stats.errors.inc();
                    return Followed::Failed;
                }
            };
            size = ReadSize::after(n);
            if n > 0 {
                last_data = Instant::now();
                let chunk = buf.split().freeze();
                if self.open.read_at == 0 {
                    // The file's first bytes (new, or truncated in place): the
                    // fingerprint a restart checks the checkpoint against.
                    self.open.head_len = n.min(HEAD_BYTES);
                    self.open.head = head_checksum(&chunk[..self.open.head_len]);
                }
                let records = self.split(&chunk);
                let end = self.open.clean;
                // The read's records are held until the drains take them: the
                // permit bounds how many reads wait so, unless this one waits
                // long (a drain that holds its files back), when others go on.
                {
                    let send = self.send(records, end);
                    tokio::pin!(send);
                    tokio::select! {
                        () = &mut send => {}
                        () = tokio::time::sleep(HOLD_PERMIT) => {
                            permit.take();
                            send.await;
                        }
                    }
                }
                drop(permit);
                self.settle(Settle::Ready).await;
                continue;
            }
            drop(permit);
            // At the end: give the read buffer back while the file is quiet.
            buf = BytesMut::new();
            self.settle(Settle::Ready).await;
            if tailer.shared.shutdown.is_stopped() {
                return Followed::Stopped;
            }
            if until == Until::End {
                return Followed::AtEnd;
            }
            // At the end: has the path moved on to a new file, or was this one truncated?
            match tokio::fs::metadata(&tailer.path).await {
                Ok(m) if m.dev() == self.open.id.dev && m.ino() == self.open.id.ino => {
                    // Shorter than where we are. (Truncated and written past
                    // our offset again shows in the first bytes: that is
                    // looked at after the wake below, before reading on.)
                    if m.len() < self.open.read_at {
                        self.read_again(m.len()).await;
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
                        return match std::fs::symlink_metadata(&tailer.path) {
                            Ok(_) => Followed::Rotated,
                            Err(_) => Followed::Removed,
                        };
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            }
            tailer.wait(last_data.elapsed()).await;
            // Woken by a write that may follow a truncation: look before
            // reading on from the old offset into new contents.
            if let Some(now) = truncated_in_place(&self.open).await {
                self.read_again(now).await;
            }
        }
    }
}

impl Tailer {
    /// Waits for more to read at the end of the live file, idle for `idle`.
    /// Under a watch, every write, rename and truncation wakes us: the poll is
    /// only a safety net. Unwatched, poll often while busy.
    async fn wait(&self, idle: Duration) {
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
    }
}
