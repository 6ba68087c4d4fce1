//! Rotated siblings of the live file (`0.log.1`, …): which of them may hold
//! lines nobody read, reading those to their end, and the files of this path
//! already done (so none is read twice). Nothing here follows the live file.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use super::Tailer;
use super::acks::Settle;
use super::follow::Until;
use super::open::FirstLine;
use super::reading::Reading;
use crate::input::file::StartAt;
use crate::input::file::checkpoint::{Entry, FileId};
use crate::record::PodRef;

/// Finished files of one path whose positions are kept (the kubelet keeps five
/// rotated files by default).
const KEEP_DONE: usize = 64;

/// How [`Tailer::catch_up`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum CaughtUp {
    /// Every rotated sibling found is read to its end.
    All,
    /// Shutdown stopped it in the middle of one.
    Stopped,
}

impl Tailer {
    /// Reads every rotated sibling last modified between `since` and `until` (the
    /// live file's open: later ones are newer than it) that is not done yet,
    /// oldest name first, resuming from its checkpoint when it has one.
    pub(super) async fn catch_up(&self, since: SystemTime, until: SystemTime, pod: &Arc<PodRef>) -> CaughtUp {
        // One pass: everything rotated before `until` is already there, and a
        // second look could find files forgotten meanwhile (see `mark_done`).
        for (path, id) in self.rotated_between(since, until) {
            let Some((open, _)) = self.open(&path, StartAt::Beginning).await else {
                self.mark_done(id);
                continue;
            };
            // Its first line is taken whole, even where the backlog limit cut into it.
            let mut rotated = Reading::new(self, pod, open, FirstLine::Whole);
            rotated.follow(Until::End).await;
            if self.shared.shutdown.is_stopped() {
                rotated.settle(Settle::All).await;
                return CaughtUp::Stopped;
            }
            rotated.finish().await;
        }
        CaughtUp::All
    }

    /// Since when rotated siblings may hold lines nobody read: the oldest file a
    /// checkpoint of this path names (`saved`) that now sits under a rotated
    /// name, and, for a path new to us whose files are read from their
    /// beginning, anything rotated since discovery (with a second of slack for
    /// coarse file times).
    pub(super) fn missed_since(&self, saved: &[FileId], start: StartAt) -> Option<SystemTime> {
        let away = self.rotated_away(saved);
        let new_path = saved.is_empty();
        let since_found = (new_path && start == StartAt::Beginning).then(|| self.found_at - Duration::from_secs(1));
        match (away, since_found) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Files of this path named by a checkpoint of an earlier run or a position
    /// an earlier task of this path left.
    pub(super) fn saved_ids(&self) -> Vec<FileId> {
        let of_path = |e: &Entry| (e.path == self.path).then_some(e.id);
        let mut saved: Vec<FileId> = self.shared.checkpoints.lock().values().filter_map(of_path).collect();
        saved.extend(self.shared.positions.lock().values().filter_map(of_path));
        saved
    }

    /// When one of the `saved` files now sits next to the live one under a
    /// rotated name, the time that file was last modified (reading starts
    /// there); `None` when there is none.
    pub(super) fn rotated_away(&self, saved: &[FileId]) -> Option<SystemTime> {
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

    /// Remembers a file as read (or being followed); forgets the position of the
    /// oldest once more than [`KEEP_DONE`] are remembered.
    pub(super) fn mark_done(&self, id: FileId) {
        let mut done = self.done.lock();
        if done.contains(&id) {
            return;
        }
        done.push(id);
        if done.len() > KEEP_DONE {
            let old = done.remove(0);
            self.shared.positions.lock().remove(&old);
            self.shared.dirty.store(true, Ordering::Release);
        }
    }

    /// Rotated siblings of the live file (`0.log.*`, not compressed) last
    /// modified between `since` and `until` and not read yet, oldest name first.
    fn rotated_between(&self, since: SystemTime, until: SystemTime) -> Vec<(PathBuf, FileId)> {
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
