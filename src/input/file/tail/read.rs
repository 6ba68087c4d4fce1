//! One positional read of a file into the read buffer, on the blocking pool.
//! Nothing here knows about lines, records or where a file starts.

use std::sync::Arc;

use bytes::BytesMut;

/// The most one read takes.
const READ_CHUNK: usize = 64 << 10;

/// How much [`read_at`] asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ReadSize {
    /// What the file holds past the offset (its length looked at first).
    Available,
    /// A whole chunk without looking at the length: the last read filled one,
    /// so there is a backlog.
    Chunk,
}

impl ReadSize {
    /// What to ask for after a read of `n` bytes.
    pub(super) fn after(n: usize) -> Self {
        if n == READ_CHUNK {
            ReadSize::Chunk
        } else {
            ReadSize::Available
        }
    }
}

/// Reads what the file holds past `offset`, up to [`READ_CHUNK`] bytes,
/// appended to `buf`, on the blocking pool (a regular file read may wait for
/// the disk). The buffer grows only by what there is to read (rounded up to
/// 4 KiB): records keep slices of it until delivered, so a small append must
/// not pin a whole chunk, and nothing is zero-filled that is not read into.
pub(super) async fn read_at(
    file: &Arc<std::fs::File>,
    offset: u64,
    mut buf: BytesMut,
    size: ReadSize,
) -> (std::io::Result<usize>, BytesMut) {
    use std::os::unix::fs::FileExt;
    let file = file.clone();
    let job = tokio::task::spawn_blocking(move || {
        let avail = match size {
            ReadSize::Chunk => READ_CHUNK as u64,
            ReadSize::Available => match file.metadata() {
                Ok(m) => m.len().saturating_sub(offset),
                Err(e) => return (Err(e), buf),
            },
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
