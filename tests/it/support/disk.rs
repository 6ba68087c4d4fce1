//! What a test looks at on a node's disk: the segment files of drain
//! buffers, and deleted files a process still holds open.

use std::path::{Path, PathBuf};

/// The segment files under `root`.
pub fn segments(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().filter_map(Result::ok))
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// Files the process holds open that were deleted.
pub fn deleted_open(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .map(|p| p.display().to_string())
                .filter(|p| p.ends_with("(deleted)") && p.contains("0.log"))
                .collect()
        })
        .unwrap_or_default()
}
