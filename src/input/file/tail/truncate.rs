//! A file truncated in place (copytruncate): seeing it (shorter than our
//! offset, or other first bytes), and starting it again from its start once
//! what was handed on from the old contents is acknowledged. Nothing here
//! reads records.

use tracing::warn;

use super::acks::Settle;
use super::open::Open;
use super::reading::Reading;
use crate::input::file::checkpoint::head_checksum;

impl Reading<'_> {
    /// A file truncated in place (copytruncate), now `now` bytes long: read it
    /// again from its start.
    pub(super) async fn read_again(&mut self, now: u64) {
        let tailer = self.tailer;
        warn!(path = %tailer.path.display(), was = self.open.read_at, now, "Container log truncated; reading it again from the start.");
        tailer.shared.stats.truncations.inc();
        // Acknowledgements still due are for offsets of the old
        // contents: take them in before counting from zero again.
        self.settle(Settle::All).await;
        let open = &mut self.open;
        open.read_at = 0;
        open.line_at = 0;
        open.acked = 0;
        open.clean = 0;
        self.lines.carry.clear();
        self.lines.discarding = false;
        tailer.record_position(&self.open);
    }
}

/// The open file's length when it was truncated in place since we read
/// (shorter than our offset, or other first bytes): one `fstat` and at most
/// one 256-byte read, in one job on the blocking pool.
pub(super) async fn truncated_in_place(open: &Open) -> Option<u64> {
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

/// Whether the file's first bytes, as fingerprinted, are all read (only then
/// can they be compared).
fn has_head(open: &Open) -> bool {
    open.head_len > 0 && open.read_at >= open.head_len as u64
}

/// Whether the file's first `len` bytes no longer have the checksum `want`.
fn head_differs(file: &std::fs::File, len: usize, want: u64) -> bool {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; len];
    match file.read_exact_at(&mut buf, 0) {
        Ok(()) => head_checksum(&buf) != want,
        // Shorter than the head now: the length check sees it.
        Err(_) => false,
    }
}
