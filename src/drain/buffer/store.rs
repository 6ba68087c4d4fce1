//! The segments of one drain's buffer as its spill task sees them: which
//! exist, how much each holds, how far each was replayed, how many replayed
//! stretches still wait for the drain to confirm them, and the one segment
//! being appended to.
//!
//! Owned by one task, never shared, so no lock. Its file operations block:
//! the owner moves it into `spawn_blocking` to call them.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};

use super::segment::{self, Appender, MAGIC, Stretch};

/// One segment file.
#[derive(Debug)]
pub struct Seg {
    pub seq: u64,
    /// Bytes whole (magic included).
    pub len: u64,
    /// Where replay has read to.
    pub read_at: u64,
    /// Replayed stretches not yet confirmed (or refused) by the drain.
    pub outstanding: usize,
    /// A replayed record of it was not delivered while the drain was
    /// stopping: it stays for the next start.
    pub keep: bool,
}

impl Seg {
    fn drained(&self) -> bool {
        self.read_at >= self.len && self.outstanding == 0
    }

    /// Record bytes it holds (what the budget counts).
    pub fn bytes(&self) -> u64 {
        self.len.saturating_sub(MAGIC.len() as u64)
    }
}

/// What the segments found at start held.
#[derive(Debug, Default)]
pub struct Recovered {
    pub records: u64,
    pub bytes: u64,
    /// Segments whose torn tail was cut.
    pub torn: u64,
}

/// The segments of one buffer, oldest first.
pub struct Store {
    dir: PathBuf,
    segs: VecDeque<Seg>,
    /// Appending to the newest segment, if open.
    writer: Option<Appender>,
    next_seq: u64,
    segment_bytes: u64,
    /// Written since the last fsync.
    pub dirty: bool,
}

impl Store {
    /// Opens the segments in `dir`: counts their records and cuts torn tails.
    /// New records go to a new segment, never after a segment found here.
    pub fn open(dir: &Path, segment_bytes: u64) -> io::Result<(Store, Recovered)> {
        let mut rec = Recovered::default();
        let mut segs = VecDeque::new();
        let mut next_seq = 1;
        for seq in segment::list(dir)? {
            next_seq = seq + 1;
            let p = segment::path(dir, seq);
            let s = segment::scan(&p)?;
            rec.torn += u64::from(s.torn);
            if s.records == 0 {
                std::fs::remove_file(&p)?;
                continue;
            }
            rec.records += s.records;
            rec.bytes += s.len - MAGIC.len() as u64;
            segs.push_back(Seg {
                seq,
                len: s.len,
                read_at: MAGIC.len() as u64,
                outstanding: 0,
                keep: false,
            });
        }
        let store = Store {
            dir: dir.to_path_buf(),
            segs,
            writer: None,
            next_seq,
            segment_bytes,
            dirty: false,
        };
        Ok((store, rec))
    }

    /// Appends encoded frames, beginning a new segment when the current one
    /// is full (sealing it with an fsync).
    pub fn append(&mut self, frames: &[u8]) -> io::Result<()> {
        if self.writer.as_ref().is_some_and(|w| w.len >= self.segment_bytes) {
            self.seal()?;
        }
        if self.writer.is_none() {
            let w = Appender::create(&self.dir, self.next_seq)?;
            self.next_seq += 1;
            self.segs.push_back(Seg {
                seq: w.seq,
                len: w.len,
                read_at: w.len,
                outstanding: 0,
                keep: false,
            });
            self.writer = Some(w);
        }
        let w = self.writer.as_mut().expect("opened above");
        w.append(frames)?;
        self.dirty = true;
        let len = w.len;
        self.segs.back_mut().expect("the writer's segment").len = len;
        Ok(())
    }

    /// Stops appending to the current segment (after an fsync).
    pub fn seal(&mut self) -> io::Result<()> {
        if let Some(w) = self.writer.take() {
            w.sync()?;
        }
        self.dirty = false;
        Ok(())
    }

    /// Forces what was written to the disk.
    pub fn sync(&mut self) -> io::Result<()> {
        if let Some(w) = &self.writer
            && self.dirty
        {
            w.sync()?;
        }
        self.dirty = false;
        Ok(())
    }

    /// Whether some written record was not replayed yet.
    pub fn unread(&self) -> bool {
        self.segs.iter().any(|s| s.read_at < s.len)
    }

    /// Reads the next stretch to replay: (segment, records).
    pub fn read(&mut self, max_records: usize, max_bytes: usize) -> io::Result<Option<(u64, Stretch)>> {
        let Some(s) = self.segs.iter_mut().find(|s| s.read_at < s.len) else {
            return Ok(None);
        };
        let st = segment::read(
            &segment::path(&self.dir, s.seq),
            s.read_at,
            s.len,
            max_records,
            max_bytes,
        )?;
        // A stretch that cannot be read ends the segment's replay there.
        s.read_at = if st.corrupt { s.len } else { st.end };
        if !st.records.is_empty() {
            s.outstanding += 1;
        }
        Ok(Some((s.seq, st)))
    }

    /// A replayed stretch of segment `seq` was confirmed (`keep`: not
    /// delivered while stopping, so the segment stays).
    pub fn settled(&mut self, seq: u64, keep: bool) {
        if let Some(s) = self.segs.iter_mut().find(|s| s.seq == seq) {
            s.outstanding = s.outstanding.saturating_sub(1);
            s.keep |= keep;
        }
    }

    /// Deletes the segments whose every record was replayed and confirmed
    /// (the one being appended to as well, sealing it); returns the record
    /// bytes freed.
    pub fn remove_drained(&mut self) -> io::Result<u64> {
        let writing = self.writer.as_ref().map(|w| w.seq);
        let mut freed = 0;
        let mut i = 0;
        while i < self.segs.len() {
            let s = &self.segs[i];
            if !s.drained() || s.keep || (Some(s.seq) == writing && s.bytes() == 0) {
                i += 1;
                continue;
            }
            if Some(s.seq) == writing {
                self.writer = None;
                self.dirty = false;
            }
            std::fs::remove_file(segment::path(&self.dir, s.seq))?;
            freed += s.bytes();
            self.segs.remove(i);
        }
        Ok(freed)
    }

    /// Record bytes on disk.
    pub fn bytes(&self) -> u64 {
        self.segs.iter().map(Seg::bytes).sum()
    }

    /// Deletes every segment and the directory (a retired drain that gave
    /// up, or finished); returns the record bytes freed.
    pub fn remove_all(&mut self) -> io::Result<u64> {
        self.writer = None;
        let freed = self.bytes();
        self.segs.clear();
        std::fs::remove_dir_all(&self.dir)?;
        Ok(freed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drain::buffer::codec;
    use crate::record::{InputKind, Record};

    fn frames(from: usize, n: usize) -> Vec<u8> {
        let mut b = Vec::new();
        for i in from..from + n {
            codec::encode(&Record::new(InputKind::Internal, "h", format!("m{i}")), &mut b);
        }
        b
    }

    #[test]
    fn segments_roll_replay_in_order_and_go_once_confirmed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, rec) = Store::open(dir.path(), 200).unwrap();
        assert_eq!(rec.records, 0);
        for i in 0..10 {
            s.append(&frames(i * 5, 5)).unwrap();
        }
        assert!(segment::list(dir.path()).unwrap().len() > 1, "it rolled");
        let mut got = Vec::new();
        let mut stretches = Vec::new();
        while let Some((seq, st)) = s.read(3, 1 << 20).unwrap() {
            got.extend(
                st.records
                    .iter()
                    .map(|r| String::from_utf8_lossy(&r.message).into_owned()),
            );
            stretches.push(seq);
        }
        assert_eq!(got, (0..50).map(|i| format!("m{i}")).collect::<Vec<_>>());
        assert_eq!(s.remove_drained().unwrap(), 0, "nothing confirmed yet");
        let total = s.bytes();
        for seq in stretches {
            s.settled(seq, false);
        }
        assert_eq!(s.remove_drained().unwrap(), total);
        assert!(segment::list(dir.path()).unwrap().is_empty());
        // Appending goes on in a new segment.
        s.append(&frames(50, 1)).unwrap();
        assert_eq!(segment::list(dir.path()).unwrap().len(), 1);
    }

    #[test]
    fn what_was_not_confirmed_is_found_again_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Store::open(dir.path(), 1 << 20).unwrap();
        s.append(&frames(0, 20)).unwrap();
        let (seq, st) = s.read(20, 1 << 20).unwrap().unwrap();
        assert_eq!(st.records.len(), 20);
        s.settled(seq, true);
        assert_eq!(s.remove_drained().unwrap(), 0, "kept for the next start");
        s.seal().unwrap();
        drop(s);
        let (mut s, rec) = Store::open(dir.path(), 1 << 20).unwrap();
        assert_eq!((rec.records, rec.torn), (20, 0));
        s.append(&frames(20, 1)).unwrap();
        assert_eq!(
            segment::list(dir.path()).unwrap(),
            vec![1, 2],
            "new records go to a new segment"
        );
    }
}
