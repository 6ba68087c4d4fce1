//! How far the tailer is behind the container logs, sampled every few
//! seconds from the delivered positions of the open files and the files'
//! sizes: `logtrain_tail_lag_bytes` (written, not yet delivered, over every
//! file) and `logtrain_tail_lag_seconds` (the longest any file has held
//! bytes that are still not delivered: what was unread at a sample and is
//! still unread at the next keeps its age, so a file that keeps up shows 0
//! however busy it is). A file rotated away is no longer at its path and is
//! left out until its task finishes it. Reads metadata only, never a file.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::Shared;
use super::checkpoint::FileId;
use crate::telemetry;

/// How often the lag is sampled.
pub const EVERY: Duration = Duration::from_secs(5);

/// Bytes a file had unread when first seen behind, and since when.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Behind {
    since: Instant,
    target: u64,
}

/// The per-file state between samples.
#[derive(Default)]
pub struct Lag {
    behind: HashMap<FileId, Behind>,
}

impl Lag {
    /// Folds one sample in (each file's delivered offset and size, `None`
    /// when it is no longer at its path); returns (bytes, seconds).
    fn update(&mut self, now: Instant, files: &[(FileId, u64, Option<u64>)]) -> (u64, u64) {
        let mut bytes = 0;
        let mut still = HashMap::with_capacity(files.len());
        for &(id, offset, size) in files {
            let Some(size) = size.filter(|s| *s > offset) else {
                continue;
            };
            bytes += size - offset;
            let b = match self.behind.get(&id) {
                // What was unread last time is still unread: the episode goes on.
                Some(b) if offset < b.target => *b,
                _ => Behind {
                    since: now,
                    target: size,
                },
            };
            still.insert(id, b);
        }
        self.behind = still;
        let oldest = self
            .behind
            .values()
            .map(|b| now.duration_since(b.since))
            .max()
            .unwrap_or_default();
        (bytes, oldest.as_secs())
    }
}

/// Samples until shutdown.
pub async fn sample(shared: Arc<Shared>) {
    let (bytes_g, secs_g) = (
        telemetry::gauge("logtrain_tail_lag_bytes", &[]),
        telemetry::gauge("logtrain_tail_lag_seconds", &[]),
    );
    let mut lag = Lag::default();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shared.shutdown.stopped() => return,
        }
        let entries: Vec<_> = shared
            .positions
            .lock()
            .values()
            .map(|e| (e.id, e.offset, e.path.clone()))
            .collect();
        let files = tokio::task::spawn_blocking(move || {
            entries
                .into_iter()
                .map(|(id, offset, path)| {
                    let size = std::fs::metadata(&path)
                        .ok()
                        .filter(|m| m.dev() == id.dev && m.ino() == id.ino)
                        .map(|m| m.len());
                    (id, offset, size)
                })
                .collect::<Vec<_>>()
        })
        .await
        .unwrap_or_default();
        let (bytes, secs) = lag.update(Instant::now(), &files);
        bytes_g.set(bytes as i64);
        secs_g.set(secs as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_keeps_up_shows_no_age_and_a_stalled_one_ages() {
        let t0 = Instant::now();
        let (busy, stalled) = (FileId { dev: 1, ino: 1 }, FileId { dev: 1, ino: 2 });
        let mut lag = Lag::default();
        assert_eq!(
            lag.update(t0, &[(busy, 90, Some(100)), (stalled, 0, Some(50))]),
            (60, 0)
        );
        // The busy file delivered past what was unread; the stalled one did not.
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(
            lag.update(t1, &[(busy, 180, Some(200)), (stalled, 10, Some(80))]),
            (90, 5)
        );
        let t2 = t1 + Duration::from_secs(5);
        assert_eq!(
            lag.update(t2, &[(busy, 200, Some(200)), (stalled, 60, Some(90))]),
            (30, 0)
        );
        // A file gone from its path counts for nothing.
        assert_eq!(lag.update(t2, &[(stalled, 60, None)]), (0, 0));
    }
}
