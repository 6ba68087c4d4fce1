//! Container log line formats, as kubelet's runtimes write them:
//! **CRI** (`<RFC3339Nano> <stdout|stderr> <P|F>[:tags] <msg>`) and docker's
//! **json-file** (`{"log":"…\n","stream":"stdout","time":"…"}`), plus the
//! reassembly of partial lines (CRI `P`, docker lines without a trailing `\n`)
//! into whole records, bounded by a maximum record size.
//!
//! Pure functions over byte slices: no I/O, no allocation for CRI lines. A
//! whole CRI line becomes a record whose message is a slice of the caller's
//! read buffer (no copy); only joined partial lines are copied. Each record
//! says where its first line starts in the file and which piece of a split
//! record it is, so the same bytes always make records of the same positions.

use std::borrow::Cow;

use bytes::Bytes;
use serde::Deserialize;

use crate::record::Stream;
use crate::time::Timestamp;

/// One physical line of a container log, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line<'a> {
    pub time: Option<Timestamp>,
    pub stream: Stream,
    /// More of the same record follows on a later line.
    pub partial: bool,
    pub msg: Cow<'a, [u8]>,
}

/// Parses a CRI line (without its trailing newline).
pub fn parse_cri(line: &[u8]) -> Option<Line<'_>> {
    let sp1 = line.iter().position(|&c| c == b' ')?;
    let time = Timestamp::parse_rfc3339(&line[..sp1])?;
    let rest = &line[sp1 + 1..];
    let (stream, rest) = if let Some(r) = rest.strip_prefix(b"stdout ") {
        (Stream::Stdout, r)
    } else if let Some(r) = rest.strip_prefix(b"stderr ") {
        (Stream::Stderr, r)
    } else {
        return None;
    };
    let tag_end = rest.iter().position(|&c| c == b' ').unwrap_or(rest.len());
    let tags = &rest[..tag_end];
    let partial = match tags.split(|&c| c == b':').next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    let msg = if tag_end < rest.len() {
        &rest[tag_end + 1..]
    } else {
        &[][..]
    };
    Some(Line {
        time: Some(time),
        stream,
        partial,
        msg: Cow::Borrowed(msg),
    })
}

#[derive(Deserialize)]
struct DockerLine<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(default)]
    stream: Option<Cow<'a, str>>,
    #[serde(default)]
    time: Option<Cow<'a, str>>,
}

/// Parses a docker json-file line.
pub fn parse_docker(line: &[u8]) -> Option<Line<'static>> {
    let d: DockerLine = serde_json::from_slice(line).ok()?;
    let stream = match d.stream.as_deref() {
        Some("stderr") => Stream::Stderr,
        _ => Stream::Stdout,
    };
    let mut msg = d.log.into_owned().into_bytes();
    let partial = !msg.ends_with(b"\n");
    if !partial {
        msg.pop();
        if msg.ends_with(b"\r") {
            msg.pop();
        }
    }
    let time = d.time.and_then(|t| Timestamp::parse_rfc3339(t.as_bytes()));
    Some(Line {
        time,
        stream,
        partial,
        msg: Cow::Owned(msg),
    })
}

/// Parses either format; `None` when the line is neither (the caller forwards it
/// raw and counts it).
pub fn parse(line: &[u8]) -> Option<Line<'_>> {
    match line.first() {
        Some(b'{') => parse_docker(line),
        Some(c) if c.is_ascii_digit() => parse_cri(line),
        _ => None,
    }
}

/// A whole record reassembled from one or more lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assembled {
    pub time: Option<Timestamp>,
    pub stream: Stream,
    pub msg: Bytes,
    /// The record hit the maximum size and was cut here; the rest follows as
    /// another record.
    pub split: bool,
    /// File offset of the record's first line.
    pub start: u64,
    /// 0, or the number of pieces cut off this record before this one.
    pub piece: u32,
}

/// A record still waiting for its last line.
#[derive(Debug)]
struct Pending {
    time: Option<Timestamp>,
    stream: Stream,
    msg: Vec<u8>,
    split: bool,
    start: u64,
    piece: u32,
}

impl Pending {
    fn new(time: Option<Timestamp>, stream: Stream, start: u64) -> Self {
        Pending {
            time,
            stream,
            msg: Vec::new(),
            split: false,
            start,
            piece: 0,
        }
    }

    fn into_assembled(self) -> Assembled {
        Assembled {
            time: self.time,
            stream: self.stream,
            msg: Bytes::from(self.msg),
            split: self.split,
            start: self.start,
            piece: self.piece,
        }
    }
}

/// Joins partial lines per stream (stdout and stderr interleave independently).
pub struct Reassembler {
    max: usize,
    pending: [Option<Pending>; 2],
}

impl Reassembler {
    /// `max` is the largest record in bytes; longer ones are split.
    pub fn new(max: usize) -> Self {
        Reassembler {
            max: max.max(1),
            pending: [None, None],
        }
    }

    /// Feeds one parsed line, which starts at file offset `start`; returns the
    /// records it completes (zero, one, or several when the size limit splits a
    /// record). A whole line's borrowed message must lie inside `src`, the
    /// buffer it was parsed from: the record shares that buffer instead of
    /// copying the message.
    pub fn push(&mut self, line: Line<'_>, start: u64, src: &Bytes, out: &mut Vec<Assembled>) {
        let slot = match line.stream {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        };
        if !line.partial && self.pending[slot].is_none() && line.msg.len() <= self.max {
            let msg = match line.msg {
                Cow::Borrowed(m) => src.slice_ref(m),
                Cow::Owned(m) => Bytes::from(m),
            };
            out.push(Assembled {
                time: line.time,
                stream: line.stream,
                msg,
                split: false,
                start,
                piece: 0,
            });
            return;
        }
        let p = self.pending[slot].get_or_insert_with(|| Pending::new(line.time, line.stream, start));
        let mut rest: &[u8] = &line.msg;
        while p.msg.len() + rest.len() > self.max {
            let take = self.max - p.msg.len();
            p.msg.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            // The rest is the next piece of the same record.
            let mut next = Pending::new(line.time, line.stream, p.start);
            next.piece = p.piece.saturating_add(1);
            let mut full = std::mem::replace(p, next);
            full.split = true;
            out.push(full.into_assembled());
        }
        p.msg.extend_from_slice(rest);
        if !line.partial {
            let done = self.pending[slot].take().expect("pending exists");
            if !(done.msg.is_empty() && out.last().is_some_and(|l| l.split && l.stream == line.stream)) {
                out.push(done.into_assembled());
            }
        }
    }

    /// Bytes held in unfinished records.
    pub fn pending_bytes(&self) -> usize {
        self.pending.iter().flatten().map(|p| p.msg.len()).sum()
    }

    /// Whether no record is waiting for more lines (not even an empty one
    /// whose earlier pieces were cut off at the size limit).
    pub fn idle(&self) -> bool {
        self.pending.iter().all(Option::is_none)
    }

    /// Gives up unfinished records (end of a rotated file): returns them as is.
    pub fn flush(&mut self, out: &mut Vec<Assembled>) {
        for p in self.pending.iter_mut() {
            if let Some(a) = p.take() {
                out.push(a.into_assembled());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_lines() {
        let l = parse(b"2016-10-06T00:17:09.669794202Z stdout F hello world").unwrap();
        assert_eq!(l.stream, Stream::Stdout);
        assert!(!l.partial);
        assert_eq!(&*l.msg, b"hello world");
        assert_eq!(l.time.unwrap().0 % 1_000_000_000, 669_794_202);
        let l = parse(b"2016-10-06T00:17:09Z stderr P:extra part").unwrap();
        assert!(l.partial && l.stream == Stream::Stderr);
        assert_eq!(&*l.msg, b"part");
        assert_eq!(&*parse(b"2016-10-06T00:17:09.1+02:00 stdout F").unwrap().msg, b"");
        assert_eq!(
            &*parse(b"2016-10-06T00:17:09.1Z stdout F  two spaces").unwrap().msg,
            b" two spaces"
        );
        assert_eq!(
            &*parse(b"2016-10-06T00:17:09.1Z stdout F bad \xff utf8").unwrap().msg,
            b"bad \xff utf8"
        );
        for bad in [
            &b"2016-10-06 stdout F x"[..],
            b"2016-10-06T00:17:09Z stdin F x",
            b"2016-10-06T00:17:09Z stdout X x",
            b"9",
        ] {
            assert!(parse(bad).is_none(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn docker_lines() {
        let l = parse(br#"{"log":"hello \"q\"\n","stream":"stderr","time":"2019-01-01T00:00:00.123456789Z"}"#).unwrap();
        assert_eq!(&*l.msg, b"hello \"q\"");
        assert!(!l.partial && l.stream == Stream::Stderr);
        assert!(l.time.is_some());
        let l = parse(br#"{"log":"no newline","stream":"stdout","time":"2019-01-01T00:00:00Z"}"#).unwrap();
        assert!(l.partial);
        assert!(parse(br#"{"stream":"stdout"}"#).is_none());
        assert!(parse(b"{not json").is_none());
        assert!(parse(b"plain text").is_none());
    }

    fn line(stream: Stream, partial: bool, msg: &str) -> Line<'static> {
        Line {
            time: None,
            stream,
            partial,
            msg: Cow::Owned(msg.as_bytes().to_vec()),
        }
    }

    #[test]
    fn partials_join_per_stream_and_split_at_the_limit() {
        let mut r = Reassembler::new(10);
        let mut out = Vec::new();
        r.push(line(Stream::Stdout, true, "abc"), 0, &Bytes::new(), &mut out);
        r.push(line(Stream::Stderr, false, "err"), 10, &Bytes::new(), &mut out);
        r.push(line(Stream::Stdout, true, "def"), 20, &Bytes::new(), &mut out);
        r.push(line(Stream::Stdout, false, "g"), 30, &Bytes::new(), &mut out);
        let msgs: Vec<_> = out
            .iter()
            .map(|a| String::from_utf8_lossy(&a.msg).to_string())
            .collect();
        assert_eq!(msgs, vec!["err", "abcdefg"]);

        out.clear();
        r.push(
            line(Stream::Stdout, true, "0123456789ABCDEF"),
            40,
            &Bytes::new(),
            &mut out,
        );
        r.push(line(Stream::Stdout, false, "GHIJ"), 60, &Bytes::new(), &mut out);
        let msgs: Vec<_> = out
            .iter()
            .map(|a| (String::from_utf8_lossy(&a.msg).to_string(), a.split))
            .collect();
        assert_eq!(msgs, vec![("0123456789".into(), true), ("ABCDEFGHIJ".into(), false)]);
        assert_eq!(r.pending_bytes(), 0);
        assert!(r.idle());

        out.clear();
        r.push(
            line(Stream::Stdout, false, "x".repeat(25).as_str()),
            70,
            &Bytes::new(),
            &mut out,
        );
        assert_eq!(out.iter().map(|a| a.msg.len()).collect::<Vec<_>>(), vec![10, 10, 5]);
        r.push(line(Stream::Stdout, true, "tail"), 100, &Bytes::new(), &mut out);
        out.clear();
        r.flush(&mut out);
        assert_eq!(&out[0].msg[..], b"tail");
    }

    #[test]
    fn records_know_where_their_first_line_starts_and_which_piece_they_are() {
        let mut r = Reassembler::new(10);
        let mut out = Vec::new();
        let at = |out: &[Assembled]| out.iter().map(|a| (a.start, a.piece)).collect::<Vec<_>>();
        // stdout starts a record at 0; whole stderr lines in between are
        // records of their own lines; the stdout record ends at 30.
        r.push(line(Stream::Stdout, true, "abc"), 0, &Bytes::new(), &mut out);
        r.push(line(Stream::Stderr, false, "e1"), 10, &Bytes::new(), &mut out);
        r.push(line(Stream::Stderr, false, "e2"), 20, &Bytes::new(), &mut out);
        assert!(!r.idle());
        r.push(line(Stream::Stdout, false, "def"), 30, &Bytes::new(), &mut out);
        assert_eq!(at(&out), [(10, 0), (20, 0), (0, 0)]);
        assert!(r.idle());

        // 25 bytes over partial lines from 40: three pieces of the record at 40.
        out.clear();
        r.push(
            line(Stream::Stdout, true, "0123456789ABCD"),
            40,
            &Bytes::new(),
            &mut out,
        );
        r.push(line(Stream::Stderr, false, "e3"), 60, &Bytes::new(), &mut out);
        r.push(line(Stream::Stdout, true, "EFGHIJK"), 70, &Bytes::new(), &mut out);
        r.push(line(Stream::Stdout, false, "LMNO"), 80, &Bytes::new(), &mut out);
        assert_eq!(at(&out), [(40, 0), (60, 0), (40, 1), (40, 2)]);
        assert!(out.iter().filter(|a| a.start == 40).all(|a| a.split == (a.piece < 2)));
        assert_eq!(&out[3].msg[..], b"KLMNO");

        // An empty partial line holds no bytes, yet a record waits for its end.
        out.clear();
        r.push(line(Stream::Stdout, true, ""), 85, &Bytes::new(), &mut out);
        assert_eq!(r.pending_bytes(), 0);
        assert!(!r.idle());
        r.push(line(Stream::Stdout, false, "z"), 88, &Bytes::new(), &mut out);
        assert_eq!(at(&out), [(85, 0)]);

        // A whole line longer than the limit: its pieces, numbered.
        out.clear();
        r.push(
            line(Stream::Stderr, false, &"y".repeat(21)),
            90,
            &Bytes::new(),
            &mut out,
        );
        assert_eq!(at(&out), [(90, 0), (90, 1), (90, 2)]);
    }
}
