//! Syslog stream framing (RFC 6587), decoded from a `BytesMut` read buffer.
//!
//! Each frame is examined on its own, so one connection may mix both framings:
//! a frame that starts with digits followed by a space is octet-counted
//! (`LEN SP MSG`); anything else is one line ending in LF (a CR before the LF is
//! dropped). Empty lines and stray CR/LF/NUL bytes between frames are skipped.
//!
//! [`Decoder::decode`] returns `Ok(None)` while a frame is incomplete (read more),
//! keeps that apart from invalid input, and never lets the buffer grow past the
//! limits:
//! - a line longer than `max_line` is **truncated** to `max_line` bytes and
//!   delivered as [`Decoded::Truncated`]; the rest of that line is discarded as
//!   it arrives, and the next line is decoded normally;
//! - an octet count above `max_frame` is never allocated: the frame is
//!   **skipped** (its bytes discarded as they arrive, [`Decoded::Skipped`]) and
//!   the stream resynchronises after it — unless the count is above
//!   [`MAX_SKIP`] (or has more digits than any sane count), which can only be
//!   garbage or an attack: then [`FramingError::Unsyncable`] tells the caller to
//!   close the connection.
//!
//! This module never parses syslog and never logs; the caller counts and logs.

use bytes::{Buf, Bytes, BytesMut};

/// Octet counts above this are not skipped but end the connection.
pub const MAX_SKIP: u64 = 256 << 20;

/// Digits an octet count may have (as many as `u64::MAX`; longer runs are lines or garbage).
const MAX_DIGITS: usize = 20;

/// One decoded unit.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// A whole frame (without its length prefix or line ending).
    Frame(Bytes),
    /// The first `max_line` bytes of a longer line; the rest is being discarded.
    Truncated(Bytes),
    /// An octet-counted frame of `declared` bytes, larger than `max_frame`, is being skipped.
    Skipped { declared: u64 },
}

/// Input that cannot be framed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FramingError {
    #[error("octet count {declared} is larger than {max} bytes: cannot resynchronise, closing")]
    Unsyncable { declared: u64, max: u64 },
    #[error("stream ended inside an octet count")]
    TruncatedCount,
    #[error("stream ended inside an octet-counted frame ({got} of {declared} bytes)")]
    TruncatedAtEof { declared: u64, got: usize },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a frame.
    Start,
    /// Discarding the rest of an over-long line up to its LF.
    DiscardLine,
    /// Discarding this many bytes of an oversized octet-counted frame.
    Skip(u64),
}

/// The framing state of one stream.
#[derive(Debug)]
pub struct Decoder {
    max_line: usize,
    max_frame: usize,
    state: State,
}

/// What the bytes at the start of a frame announce.
enum Head {
    /// Need more bytes to tell.
    Incomplete,
    /// Octet counting: `declared` bytes follow a prefix of `prefix` bytes.
    Counted { declared: u64, prefix: usize },
    /// A line.
    Line,
}

impl Decoder {
    /// `max_line` bounds newline-delimited frames, `max_frame` octet-counted ones.
    pub fn new(max_line: usize, max_frame: usize) -> Self {
        Decoder {
            max_line: max_line.max(1),
            max_frame: max_frame.max(1),
            state: State::Start,
        }
    }

    /// Decodes the next unit from `buf`, consuming what it used. `Ok(None)`: incomplete.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, FramingError> {
        loop {
            match self.state {
                State::DiscardLine => match memchr(b'\n', buf) {
                    Some(i) => {
                        buf.advance(i + 1);
                        self.state = State::Start;
                    }
                    None => {
                        buf.clear();
                        return Ok(None);
                    }
                },
                State::Skip(left) => {
                    let n = (buf.len() as u64).min(left);
                    buf.advance(n as usize);
                    if n < left {
                        self.state = State::Skip(left - n);
                        return Ok(None);
                    }
                    self.state = State::Start;
                }
                State::Start => {
                    let skip = buf.iter().take_while(|&&c| matches!(c, b'\n' | b'\r' | 0)).count();
                    buf.advance(skip);
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    return match check(buf) {
                        Head::Incomplete => Ok(None),
                        Head::Counted { declared, prefix } => self.counted(buf, declared, prefix),
                        Head::Line => Ok(self.line(buf)),
                    };
                }
            }
        }
    }

    fn counted(&mut self, buf: &mut BytesMut, declared: u64, prefix: usize) -> Result<Option<Decoded>, FramingError> {
        if declared > self.max_frame as u64 {
            if declared > MAX_SKIP {
                return Err(FramingError::Unsyncable {
                    declared,
                    max: self.max_frame as u64,
                });
            }
            buf.advance(prefix);
            self.state = State::Skip(declared);
            return Ok(Some(Decoded::Skipped { declared }));
        }
        let len = declared as usize;
        if buf.len() < prefix + len {
            buf.reserve(prefix + len - buf.len());
            return Ok(None);
        }
        buf.advance(prefix);
        Ok(Some(Decoded::Frame(buf.split_to(len).freeze())))
    }

    fn line(&mut self, buf: &mut BytesMut) -> Option<Decoded> {
        let window = buf.len().min(self.max_line + 1);
        match memchr(b'\n', &buf[..window]) {
            Some(i) => {
                let mut line = buf.split_to(i + 1);
                line.truncate(i);
                if line.last() == Some(&b'\r') {
                    line.truncate(i - 1);
                }
                Some(Decoded::Frame(line.freeze()))
            }
            None if buf.len() > self.max_line => {
                let head = buf.split_to(self.max_line).freeze();
                self.state = State::DiscardLine;
                Some(Decoded::Truncated(head))
            }
            None => None,
        }
    }

    /// Bytes still to arrive of the frame at the head of `buf` (what `decode`
    /// left there), when an octet count announced them: the reader can reserve
    /// the whole rest of the frame at once. 0 for a line, a frame being
    /// skipped, or a count not complete yet.
    pub fn pending(&self, buf: &[u8]) -> usize {
        if self.state != State::Start {
            return 0;
        }
        match check(buf) {
            Head::Counted { declared, prefix } if declared <= self.max_frame as u64 => {
                (prefix + declared as usize).saturating_sub(buf.len())
            }
            _ => 0,
        }
    }

    /// Called once the stream ended, after `decode` returned `Ok(None)`: a last
    /// line without LF is a frame; a partial octet-counted frame is an error.
    pub fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, FramingError> {
        let state = std::mem::replace(&mut self.state, State::Start);
        if state != State::Start || buf.is_empty() {
            buf.clear();
            return Ok(None);
        }
        let rest = buf.split().freeze();
        match check(&rest) {
            Head::Counted { declared, prefix } => Err(FramingError::TruncatedAtEof {
                declared,
                got: rest.len() - prefix,
            }),
            Head::Incomplete => Err(FramingError::TruncatedCount),
            _ => {
                let mut line = rest;
                if line.last() == Some(&b'\r') {
                    line.truncate(line.len() - 1);
                }
                Ok(Some(Decoded::Frame(line)))
            }
        }
    }
}

/// Looks at the start of a frame without consuming anything.
fn check(buf: &[u8]) -> Head {
    let digits = buf.iter().take(32).take_while(|c| c.is_ascii_digit()).count();
    if digits == 0 {
        return Head::Line;
    }
    match buf.get(digits) {
        None if digits <= MAX_DIGITS => Head::Incomplete,
        Some(b' ') if digits <= MAX_DIGITS => Head::Counted {
            declared: buf[..digits]
                .iter()
                .fold(0u64, |n, c| n.saturating_mul(10).saturating_add((c - b'0') as u64)),
            prefix: digits + 1,
        },
        // Longer digit runs: an absurd count (refused) or just a line of digits.
        Some(b' ') if digits < 32 => Head::Counted {
            declared: u64::MAX,
            prefix: digits + 1,
        },
        _ => Head::Line,
    }
}

fn memchr(needle: u8, hay: &[u8]) -> Option<usize> {
    hay.iter().position(|&c| c == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_is_the_rest_of_an_announced_frame() {
        let mut d = Decoder::new(16, 100);
        let mut buf = BytesMut::from(&b"10 abc"[..]);
        assert_eq!(d.decode(&mut buf).unwrap(), None);
        assert_eq!(d.pending(&buf), 7);
        assert_eq!(d.pending(b"200 abc"), 0, "over max_frame: skipped, never buffered");
        assert_eq!(d.pending(b"12"), 0);
        assert_eq!(d.pending(b"<14>1 a line"), 0);
    }

    fn all(d: &mut Decoder, buf: &mut BytesMut) -> Vec<Decoded> {
        let mut out = Vec::new();
        while let Some(f) = d.decode(buf).unwrap() {
            out.push(f);
        }
        out
    }

    fn frame(s: &[u8]) -> Decoded {
        Decoded::Frame(Bytes::copy_from_slice(s))
    }

    #[test]
    fn mixes_octet_counting_and_lines_on_one_stream() {
        let mut d = Decoder::new(64, 128);
        let mut b = BytesMut::from(&b"5 hello\nline one\r\n\n3 a\nb12:no count\n"[..]);
        assert_eq!(
            all(&mut d, &mut b),
            vec![
                frame(b"hello"),
                frame(b"line one"),
                frame(b"a\nb"),
                frame(b"12:no count")
            ]
        );
        assert!(b.is_empty());
    }

    #[test]
    fn incomplete_is_not_invalid() {
        let mut d = Decoder::new(64, 128);
        let mut b = BytesMut::from(&b"1"[..]);
        assert_eq!(d.decode(&mut b), Ok(None));
        b.extend_from_slice(b"0 01234");
        assert_eq!(d.decode(&mut b), Ok(None));
        b.extend_from_slice(b"56789partial line");
        assert_eq!(d.decode(&mut b), Ok(Some(frame(b"0123456789"))));
        assert_eq!(d.decode(&mut b), Ok(None));
        assert_eq!(d.decode_eof(&mut b), Ok(Some(frame(b"partial line"))));
    }

    #[test]
    fn long_lines_are_truncated_and_the_rest_discarded() {
        let mut d = Decoder::new(8, 128);
        let mut b = BytesMut::from(&b"0123456789abcdef"[..]);
        assert_eq!(
            d.decode(&mut b),
            Ok(Some(Decoded::Truncated(Bytes::from_static(b"01234567"))))
        );
        assert_eq!(d.decode(&mut b), Ok(None));
        assert!(b.is_empty());
        b.extend_from_slice(b"more of it\nnext\n");
        assert_eq!(all(&mut d, &mut b), vec![frame(b"next")]);
        // Exactly max_line fits.
        b.extend_from_slice(b"01234567\n");
        assert_eq!(all(&mut d, &mut b), vec![frame(b"01234567")]);
    }

    #[test]
    fn oversized_counts_are_skipped_without_allocating() {
        let mut d = Decoder::new(8, 16);
        let mut b = BytesMut::from(&b"20 0123456789"[..]);
        assert_eq!(d.decode(&mut b), Ok(Some(Decoded::Skipped { declared: 20 })));
        assert_eq!(d.decode(&mut b), Ok(None));
        assert!(b.capacity() < 64);
        b.extend_from_slice(b"0123456789");
        b.extend_from_slice(b"2 ok");
        assert_eq!(all(&mut d, &mut b), vec![frame(b"ok")]);
    }

    #[test]
    fn absurd_counts_end_the_stream() {
        let mut d = Decoder::new(8, 16);
        let mut b = BytesMut::from(&b"1099511627776 <13>1 x"[..]);
        assert_eq!(
            d.decode(&mut b),
            Err(FramingError::Unsyncable {
                declared: 1 << 40,
                max: 16
            })
        );
        let mut b = BytesMut::from(&b"99999999999999999999999 x"[..]);
        assert!(matches!(d.decode(&mut b), Err(FramingError::Unsyncable { .. })));
        // A long run of digits that is not followed by a space is a line.
        let mut b = BytesMut::from(&b"99999999999999999999999\n"[..]);
        assert_eq!(
            d.decode(&mut b),
            Ok(Some(Decoded::Truncated(Bytes::from_static(b"99999999"))))
        );
    }

    #[test]
    fn eof_inside_a_counted_frame_is_an_error() {
        let mut d = Decoder::new(64, 128);
        let mut b = BytesMut::from(&b"100 <13>1 short"[..]);
        assert_eq!(d.decode(&mut b), Ok(None));
        assert_eq!(
            d.decode_eof(&mut b),
            Err(FramingError::TruncatedAtEof { declared: 100, got: 11 })
        );
        let mut b = BytesMut::from(&b"42"[..]);
        assert_eq!(d.decode(&mut b), Ok(None));
        assert!(d.decode_eof(&mut b).is_err());
    }
}
