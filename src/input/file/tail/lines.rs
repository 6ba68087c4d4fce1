//! A read's bytes into lines, and lines into records: parses each complete
//! line (CRI or docker-json), carries an unfinished one over to the next read,
//! and cuts a line without end at the record size limit. It moves the file's
//! line offsets along, but never reads, sends or acknowledges anything.

use bytes::Bytes;

use super::reading::Reading;
use crate::input::file::Shared;
use crate::input::file::format::{self, Assembled, Reassembler};
use crate::record::Stream;

/// Where the reading is between lines.
pub(super) struct LineState {
    /// The start of a line whose end has not been read yet.
    pub(super) carry: Vec<u8>,
    /// Skipping the rest of an over-long line.
    pub(super) discarding: bool,
    /// Records split over several lines (CRI partial lines), waiting for their end.
    pub(super) reasm: Reassembler,
}

impl LineState {
    /// `max_record` is the largest record in bytes.
    pub(super) fn new(max_record: usize) -> Self {
        LineState {
            carry: Vec::new(),
            discarding: false,
            reasm: Reassembler::new(max_record),
        }
    }

    /// One line (`bytes`, a slice of `src`, starting at file offset `start`)
    /// into records.
    fn line(&mut self, shared: &Shared, bytes: &[u8], start: u64, src: &Bytes, out: &mut Vec<Assembled>) {
        let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
        if bytes.is_empty() {
            return;
        }
        match format::parse(bytes) {
            Some(l) => self.reasm.push(l, start, src, out),
            None => {
                shared.stats.parse_errors.inc();
                let msg = src.slice_ref(&bytes[..bytes.len().min(shared.max_record)]);
                out.push(Assembled {
                    time: None,
                    stream: Stream::Stdout,
                    msg,
                    split: false,
                    start,
                    piece: 0,
                });
            }
        }
    }
}

impl Reading<'_> {
    /// Splits a chunk into lines and whole records (whose messages share `chunk`).
    pub(super) fn split(&mut self, chunk: &Bytes) -> Vec<Assembled> {
        let shared = &self.tailer.shared;
        let max_record = shared.max_record;
        let (open, st) = (&mut self.open, &mut self.lines);
        let mut out = Vec::new();
        let max_line = max_record + 4096;
        let mut rest = &chunk[..];
        open.read_at += chunk.len() as u64;
        while !rest.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(i) => {
                    let piece = &rest[..i];
                    rest = &rest[i + 1..];
                    let consumed = st.carry.len() + piece.len() + 1;
                    if st.discarding {
                        st.discarding = false;
                        st.carry.clear();
                        open.line_at += consumed as u64;
                        if st.reasm.idle() {
                            open.clean = open.line_at;
                        }
                        continue;
                    }
                    // The line starts where the last one ended.
                    let start = open.line_at;
                    if st.carry.is_empty() {
                        st.line(shared, piece, start, chunk, &mut out);
                    } else {
                        st.carry.extend_from_slice(piece);
                        let line = Bytes::from(std::mem::take(&mut st.carry));
                        st.line(shared, &line, start, &line, &mut out);
                    }
                    open.line_at += consumed as u64;
                    // Not while a record waits for more lines: a restart must
                    // read it again from its first line.
                    if st.reasm.idle() {
                        open.clean = open.line_at;
                    }
                }
                None => {
                    if st.discarding {
                        open.line_at += rest.len() as u64;
                    } else {
                        st.carry.extend_from_slice(rest);
                        if st.carry.len() > max_line {
                            // A line without end: hand on what fits, drop the rest of it.
                            let mut msg = std::mem::take(&mut st.carry);
                            let start = open.line_at;
                            open.line_at += msg.len() as u64;
                            msg.truncate(max_record);
                            shared.stats.truncated.inc();
                            out.push(Assembled {
                                time: None,
                                stream: Stream::Stdout,
                                msg: Bytes::from(msg),
                                split: true,
                                start,
                                piece: 0,
                            });
                            st.discarding = true;
                        }
                    }
                    rest = &[];
                }
            }
        }
        out
    }
}
