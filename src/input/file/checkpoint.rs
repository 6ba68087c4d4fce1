//! Tail positions that survive restarts. A file is identified by device, inode
//! and a checksum of its first bytes (against inode reuse), never by path, so
//! rotation is safe. Offsets advance only when every drain acknowledged the
//! records before them. The file is written to a temp file, fsynced and renamed;
//! its format is versioned. A checkpoint file that cannot be read as one is
//! never overwritten: it is kept aside for an operator to look at.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::telemetry;
use crate::time::Timestamp;

/// Bytes of a file's head covered by its checksum.
pub const HEAD_BYTES: usize = 256;
const VERSION: u32 = 1;

/// Identity of a file's contents on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// One file's checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// Where the file was last seen (informational; identity is `id` + `head`).
    pub path: PathBuf,
    #[serde(flatten)]
    pub id: FileId,
    /// FNV-1a of the first `head_len` bytes.
    pub head: u64,
    pub head_len: usize,
    /// Bytes delivered: reading resumes here.
    pub offset: u64,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u32,
    files: Vec<Entry>,
}

/// A checkpoint file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("checkpoint file {path} is not a logtrain checkpoint ({reason}); starting without it")]
    Format { path: PathBuf, reason: String },
}

/// Checksum of a file head.
pub fn head_checksum(bytes: &[u8]) -> u64 {
    crate::hash::fnv1a(bytes)
}

/// Reads checkpoints; a missing file is an empty set.
pub fn load(path: &Path) -> Result<HashMap<FileId, Entry>, CheckpointError> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(source) => {
            return Err(CheckpointError::Io {
                path: path.into(),
                source,
            });
        }
    };
    let d: OnDisk = serde_json::from_slice(&text).map_err(|e| CheckpointError::Format {
        path: path.into(),
        reason: e.to_string(),
    })?;
    if d.version != VERSION {
        return Err(CheckpointError::Format {
            path: path.into(),
            reason: format!("version {} (expected {VERSION})", d.version),
        });
    }
    Ok(d.files.into_iter().map(|e| (e.id, e)).collect())
}

/// The event of a checkpoint file found unusable at start (`error`, a
/// [`CheckpointError::Format`]): the file is kept aside (see [`set_aside`]),
/// said once and counted in `logtrain_checkpoint_corrupt_total`. Tailing then
/// starts without checkpoints.
pub fn unusable(path: &Path, error: &CheckpointError) {
    telemetry::counter("logtrain_checkpoint_corrupt_total", &[]).inc();
    match set_aside(path, Timestamp::now()) {
        Ok(kept) => {
            warn!(%error, kept = %kept.display(), "Checkpoint file unusable; kept aside, starting without checkpoints.")
        }
        Err(e) => {
            warn!(%error, rename_error = %e, "Checkpoint file unusable and could not be kept aside; starting without checkpoints.")
        }
    }
}

/// Renames the file at `path` to `<name>.corrupt-<UTC time>` beside it
/// (`checkpoints.json.corrupt-20261122T100000Z`, with `-2`, `-3`, … when that
/// name is taken); returns the new path.
pub fn set_aside(path: &Path, now: Timestamp) -> std::io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| std::io::Error::other("the checkpoint path names no file"))?
        .to_string_lossy();
    // 2026-11-22T10:00:00.123456Z → 20261122T100000Z
    let time: String = now.to_rfc3339()[..19]
        .chars()
        .filter(|c| *c != '-' && *c != ':')
        .collect();
    let base = format!("{name}.corrupt-{time}Z");
    let mut kept = path.with_file_name(&base);
    let mut n = 1;
    while std::fs::symlink_metadata(&kept).is_ok() {
        n += 1;
        kept = path.with_file_name(format!("{base}-{n}"));
    }
    std::fs::rename(path, &kept)?;
    Ok(kept)
}

/// Writes checkpoints atomically: temp file, fsync, rename, fsync of the folder.
pub fn save(path: &Path, entries: impl IntoIterator<Item = Entry>) -> Result<(), CheckpointError> {
    let io = |source| CheckpointError::Io {
        path: path.into(),
        source,
    };
    let mut files: Vec<Entry> = entries.into_iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let body = serde_json::to_vec_pretty(&OnDisk {
        version: VERSION,
        files,
    })
    .expect("serializable");
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(&body).map_err(io)?;
    f.sync_all().map_err(io)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_versioning() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/checkpoints.json");
        assert!(load(&p).unwrap().is_empty());
        let e = Entry {
            path: "/x.log".into(),
            id: FileId { dev: 1, ino: 2 },
            head: 3,
            head_len: 4,
            offset: 5,
        };
        save(&p, vec![e.clone()]).unwrap();
        let back = load(&p).unwrap();
        assert_eq!(back.get(&FileId { dev: 1, ino: 2 }), Some(&e));
        std::fs::write(&p, br#"{"version":99,"files":[]}"#).unwrap();
        assert!(load(&p).unwrap_err().to_string().contains("version 99"));
        std::fs::write(&p, b"garbage").unwrap();
        assert!(matches!(load(&p), Err(CheckpointError::Format { .. })));
        assert!(!dir.path().join("sub/checkpoints.json.tmp").exists());
    }

    #[test]
    fn an_unusable_file_is_kept_aside_under_a_dated_name_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("checkpoints.json");
        let now = Timestamp::parse_rfc3339(b"2026-11-22T10:00:00.5Z").unwrap();
        std::fs::write(&p, b"garbage 1").unwrap();
        let first = set_aside(&p, now).unwrap();
        assert_eq!(first, dir.path().join("checkpoints.json.corrupt-20261122T100000Z"));
        assert!(!p.exists());
        // Again within the same second: another name, the first copy untouched.
        std::fs::write(&p, b"garbage 2").unwrap();
        let second = set_aside(&p, now).unwrap();
        assert_eq!(second, dir.path().join("checkpoints.json.corrupt-20261122T100000Z-2"));
        assert_eq!(std::fs::read(&first).unwrap(), b"garbage 1");
        assert_eq!(std::fs::read(&second).unwrap(), b"garbage 2");
        assert!(set_aside(&p, now).is_err(), "nothing left to keep");
    }
}
