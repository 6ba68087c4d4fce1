//! Framings that carry RFC 5424 messages over streams and into files:
//! octet counting (RFC 6587 §3.4.1, RFC 5425: `LEN SP MSG`) and newline
//! delimiting (one message per line, embedded line breaks escaped).

use super::rfc5424;
use crate::record::Record;
use crate::time::Timestamp;

/// How messages are delimited on a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Framing {
    /// `LEN SP MSG`: any byte may appear in the message.
    #[default]
    OctetCounting,
    /// `MSG LF`: line breaks inside the message are written as `\n` / `\r`.
    Newline,
}

impl Framing {
    /// Appends one framed record to `out`.
    pub fn encode(self, rec: &Record, now: Timestamp, out: &mut Vec<u8>) {
        match self {
            Framing::OctetCounting => octet_counted(rec, now, out),
            Framing::Newline => newline_delimited(rec, now, out),
        }
    }
}

/// Appends `LEN SP <rfc5424>`.
pub fn octet_counted(rec: &Record, now: Timestamp, out: &mut Vec<u8>) {
    // Encode after a reserved prefix, then write the length in front of it.
    let start = out.len();
    out.extend_from_slice(&[b' '; 11]);
    rfc5424::encode(rec, now, out);
    let len = out.len() - start - 11;
    let mut digits = [0u8; 10];
    let mut n = len;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let prefix_len = digits.len() - i + 1;
    let shift = 11 - prefix_len;
    out.copy_within(start + 11.., start + prefix_len);
    out.truncate(out.len() - shift);
    out[start..start + prefix_len - 1].copy_from_slice(&digits[i..]);
    out[start + prefix_len - 1] = b' ';
}

/// Appends `<rfc5424> LF` with CR and LF inside the message escaped as `\r`, `\n`.
pub fn newline_delimited(rec: &Record, now: Timestamp, out: &mut Vec<u8>) {
    let start = out.len();
    rfc5424::encode(rec, now, out);
    escape_line_breaks(out, start);
    out.push(b'\n');
}

/// Replaces CR/LF in `buf[from..]` with two-character escapes, in place.
pub fn escape_line_breaks(buf: &mut Vec<u8>, from: usize) {
    if !buf[from..].iter().any(|&c| c == b'\n' || c == b'\r') {
        return;
    }
    let tail = buf.split_off(from);
    for c in tail {
        match c {
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            c => buf.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::InputKind;

    #[test]
    fn octet_counted_prefix_matches_length() {
        for n in [0usize, 1, 9, 10, 99, 100, 5000, 70_000] {
            let r = Record::new(InputKind::Internal, "h", "x".repeat(n));
            let mut out = b"prev".to_vec();
            octet_counted(&r, Timestamp(0), &mut out);
            let body = &out[4..];
            let sp = body.iter().position(|&c| c == b' ').unwrap();
            let len: usize = std::str::from_utf8(&body[..sp]).unwrap().parse().unwrap();
            assert_eq!(len, body.len() - sp - 1);
            assert!(body[sp + 1..].starts_with(b"<14>1 "));
        }
    }

    #[test]
    fn newline_framing_escapes_breaks() {
        let r = Record::new(InputKind::Internal, "h", "a\nb\r\nc");
        let mut out = Vec::new();
        newline_delimited(&r, Timestamp(0), &mut out);
        assert!(out.ends_with(b" a\\nb\\r\\nc\n"));
        assert_eq!(out.iter().filter(|&&c| c == b'\n').count(), 1);
    }
}
