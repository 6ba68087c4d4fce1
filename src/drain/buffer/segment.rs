//! Segment files of one drain's buffer: append-only files named by their
//! sequence number (`0000000000000042.seg`), each a magic header followed by
//! frames (see `codec`). Appending, reading a stretch back, and the scan at
//! start that counts what a segment holds and cuts a torn last write.
//!
//! Blocking file I/O only: callers run it off the async runtime
//! (`spawn_blocking`). Nothing here decides when to write, read or delete.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

use super::codec::{self, Frame, HEADER};
use crate::record::Record;

/// The first bytes of every segment file (format version in the last byte).
pub const MAGIC: &[u8; 8] = b"LTBUFSG\x01";

/// The file name of segment `seq`.
pub fn name(seq: u64) -> String {
    format!("{seq:016}.seg")
}

/// The path of segment `seq` in `dir`.
pub fn path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(name(seq))
}

/// The sequence numbers of the segments in `dir`, oldest first.
pub fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut seqs = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let n = e?.file_name();
        if let Some(seq) = n
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse().ok())
        {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    Ok(seqs)
}

/// A segment open for appending.
pub struct Appender {
    pub seq: u64,
    file: File,
    /// Bytes known written whole (magic included).
    pub len: u64,
}

impl Appender {
    /// Creates segment `seq` in `dir` (owner-only).
    pub fn create(dir: &Path, seq: u64) -> io::Result<Appender> {
        let mut opts = OpenOptions::new();
        opts.create_new(true).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts.open(path(dir, seq))?;
        file.write_all(MAGIC)?;
        Ok(Appender {
            seq,
            file,
            len: MAGIC.len() as u64,
        })
    }

    /// Appends encoded frames. On an error the file is cut back to what was
    /// whole before (so a failed write leaves no torn frame behind when it
    /// can), and `len` stays what it was.
    pub fn append(&mut self, frames: &[u8]) -> io::Result<()> {
        match self.file.write_all(frames) {
            Ok(()) => {
                self.len += frames.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                let _ = self.file.seek(SeekFrom::Start(self.len));
                Err(e)
            }
        }
    }

    /// Forces what was written to the disk.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

/// What a segment found at start holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scan {
    /// Whole records.
    pub records: u64,
    /// Bytes of the file that are whole (magic and whole frames).
    pub len: u64,
    /// Whether a torn or corrupt tail was cut off (the file was truncated to `len`).
    pub torn: bool,
}

/// Counts the whole records of segment `path` and cuts anything after the
/// last one (a write torn by a crash, or bytes that are not a frame). A file
/// without the magic holds nothing readable: it is cut to nothing.
pub fn scan(path: &Path) -> io::Result<Scan> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let mut s = Scan::default();
    if data.len() >= MAGIC.len() && &data[..MAGIC.len()] == MAGIC {
        let mut at = MAGIC.len();
        while let Frame::Whole(n) = codec::check(&data[at..]) {
            at += n;
            s.records += 1;
        }
        s.len = at as u64;
    }
    s.torn = (s.len as usize) < data.len();
    if s.torn {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(s.len)?;
        f.sync_data()?;
    }
    Ok(s)
}

/// Records read back from a segment.
pub struct Stretch {
    pub records: Vec<Record>,
    /// Offset just past the last record read.
    pub end: u64,
    /// A frame at `end` (before `limit`) could not be read: the rest of the
    /// segment is not replayed.
    pub corrupt: bool,
}

/// Reads whole records of segment `path` from `from` up to `limit` (bytes
/// known written), at most `max_records` and about `max_bytes` (at least one).
pub fn read(path: &Path, from: u64, limit: u64, max_records: usize, max_bytes: usize) -> io::Result<Stretch> {
    let mut f = File::open(path)?;
    f.seek(SeekFrom::Start(from))?;
    let avail = limit.saturating_sub(from) as usize;
    let mut buf = BytesMut::zeroed(avail.min(max_bytes.max(HEADER)));
    f.read_exact(&mut buf)?;
    let mut out = Stretch {
        records: Vec::new(),
        end: from,
        corrupt: false,
    };
    let mut data: Bytes = buf.freeze();
    let mut at = 0usize;
    while out.records.len() < max_records.max(1) && at < data.len() {
        match codec::check(&data[at..]) {
            Frame::Whole(n) => {
                match codec::decode(data.slice(at + HEADER..at + n)) {
                    Ok(r) => out.records.push(r),
                    Err(_) => {
                        out.corrupt = true;
                        break;
                    }
                }
                at += n;
            }
            Frame::Incomplete if out.records.is_empty() && data.len() < avail => {
                // One record larger than `max_bytes`: read it whole.
                let need = u32::from_le_bytes(data[..4].try_into().expect("header read")) as usize + HEADER;
                if need > avail || need <= data.len() {
                    out.corrupt = true;
                    break;
                }
                let mut more = BytesMut::zeroed(need);
                f.seek(SeekFrom::Start(from))?;
                f.read_exact(&mut more)?;
                data = more.freeze();
            }
            Frame::Incomplete => {
                // Cut short by `max_bytes`, or (reaching `limit`) never whole.
                out.corrupt = data.len() >= avail;
                break;
            }
            Frame::Corrupt => {
                out.corrupt = true;
                break;
            }
        }
    }
    out.end = from + at as u64;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::InputKind;

    fn rec(i: usize) -> Record {
        Record::new(InputKind::Internal, "web.default", format!("line {i:05}"))
    }

    fn write(dir: &Path, n: usize) -> (Appender, Vec<u64>) {
        let mut a = Appender::create(dir, 1).unwrap();
        let mut ends = Vec::new();
        for i in 0..n {
            let mut b = Vec::new();
            codec::encode(&rec(i), &mut b);
            a.append(&b).unwrap();
            ends.push(a.len);
        }
        (a, ends)
    }

    fn messages(s: &Stretch) -> Vec<String> {
        s.records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.message).into_owned())
            .collect()
    }

    #[test]
    fn records_come_back_in_order_in_stretches() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = write(dir.path(), 100);
        let p = path(dir.path(), 1);
        let mut from = MAGIC.len() as u64;
        let mut got = Vec::new();
        while from < a.len {
            let s = read(&p, from, a.len, 7, 1 << 20).unwrap();
            assert!(!s.corrupt && s.records.len() <= 7);
            got.extend(messages(&s));
            from = s.end;
        }
        assert_eq!(got, (0..100).map(|i| format!("line {i:05}")).collect::<Vec<_>>());
        // A byte limit smaller than one record still moves one record.
        let s = read(&p, MAGIC.len() as u64, a.len, 100, 3).unwrap();
        assert_eq!(messages(&s), vec!["line 00000"]);
        assert_eq!(list(dir.path()).unwrap(), vec![1]);
    }

    #[test]
    fn a_torn_tail_is_cut_and_the_whole_records_before_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (_a, ends) = write(dir.path(), 10);
        let p = path(dir.path(), 1);
        // Truncate in the middle of the last record, as a crash mid-write would.
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(ends[9] - 5).unwrap();
        let s = scan(&p).unwrap();
        assert_eq!(
            s,
            Scan {
                records: 9,
                len: ends[8],
                torn: true
            }
        );
        assert_eq!(std::fs::metadata(&p).unwrap().len(), ends[8]);
        // Scanning again finds nothing more to cut.
        assert_eq!(
            scan(&p).unwrap(),
            Scan {
                records: 9,
                len: ends[8],
                torn: false
            }
        );
    }

    #[test]
    fn a_checksum_mismatch_ends_the_segment_there() {
        let dir = tempfile::tempdir().unwrap();
        let (_a, ends) = write(dir.path(), 10);
        let p = path(dir.path(), 1);
        let mut data = std::fs::read(&p).unwrap();
        // Flip a byte of record 5's payload.
        data[ends[4] as usize + HEADER + 2] ^= 0x40;
        std::fs::write(&p, &data).unwrap();
        let s = read(&p, MAGIC.len() as u64, data.len() as u64, 100, 1 << 20).unwrap();
        assert_eq!(s.records.len(), 5);
        assert!(s.corrupt);
        assert_eq!(
            scan(&p).unwrap(),
            Scan {
                records: 5,
                len: ends[4],
                torn: true
            }
        );
        // A file that is not a segment holds nothing.
        std::fs::write(&p, b"garbage").unwrap();
        assert_eq!(
            scan(&p).unwrap(),
            Scan {
                records: 0,
                len: 0,
                torn: true
            }
        );
    }
}
