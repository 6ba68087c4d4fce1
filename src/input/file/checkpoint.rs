//! Tail positions that survive restarts. A file is identified by device, inode
//! and a checksum of its first bytes (against inode reuse), never by path, so
//! rotation is safe. Offsets advance only when every drain acknowledged the
//! records before them. The file is written to a temp file, fsynced and renamed;
//! its format is versioned.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &c in bytes {
        h ^= c as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
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
}
