//! The fast path for the frames nearly every sender writes: RFC 5424 with
//! version 1, a nil or RFC 3339 timestamp, plain ASCII header fields and nil
//! structured data. Read straight from the bytes in one pass, with no UTF-8
//! copy and no date library; the frame is copied once and every field is a
//! slice of that copy (one allocation per record, and no record pins a
//! connection's read buffer).
//!
//! It answers `None` for anything else (structured data, RFC 3164, a colon in
//! a header field, a date it does not check, a PRI above 191, ...), and the
//! general parser (`parse`, with `syslog_loose`) takes the frame. Wherever it
//! answers, the record equals the general parser's: a property test holds the
//! two side by side.

use bytes::Bytes;

use crate::record::{Facility, InputKind, Record, Severity};
use crate::time::Timestamp;

/// The record of a well-formed RFC 5424 frame with nil structured data, or
/// `None` for the general parser.
pub fn parse(frame: &[u8], input: InputKind) -> Option<Record> {
    let rest = frame.strip_prefix(b"<")?;
    let close = rest.iter().take(4).position(|&b| b == b'>')?;
    let pri = digits(&rest[..close])?;
    if pri > 191 {
        return None;
    }
    let rest = rest[close + 1..].strip_prefix(b"1 ")?;
    let header_start = frame.len() - rest.len();
    // TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD, each followed by a space
    // (SD by the end, or spaces or tabs then the message).
    let mut fields = [(0usize, 0usize); 6];
    let mut at = header_start;
    for (i, f) in fields.iter_mut().enumerate() {
        let len = frame[at..].iter().position(|&b| b == b' ').unwrap_or(frame.len() - at);
        *f = (at, at + len);
        at += len;
        if i < 5 {
            // Exactly one space between header fields.
            at += 1;
            if at > frame.len() || frame.get(at) == Some(&b' ') {
                return None;
            }
        }
    }
    let text = |(a, b): (usize, usize)| &frame[a..b];
    let [ts, host, app, procid, msgid, sd] = fields;
    // Structured data: nil only, then the end, a space or a tab (the space
    // search above stops at a space, so look for a tab too).
    let sd_bytes = text(sd);
    if sd_bytes.first() != Some(&b'-') {
        return None;
    }
    let after_sd = sd.0 + 1;
    if !(after_sd == frame.len() || matches!(frame[after_sd], b' ' | b'\t')) {
        return None;
    }
    for f in [host, app, procid, msgid] {
        if !text(f).iter().all(|&b| (33..=126).contains(&b) && b != b':') || f.0 == f.1 {
            return None;
        }
    }
    if text(host) == b"-" {
        return None;
    }
    let timestamp = match text(ts) {
        b"-" => None,
        t => Some(rfc3339(t)?),
    };
    // The message: past any spaces and tabs, without trailing line ends.
    let mut start = after_sd;
    while start < frame.len() && matches!(frame[start], b' ' | b'\t') {
        start += 1;
    }
    let mut end = frame.len();
    while end > start && matches!(frame[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    // The general parser makes a message of only white space (by Unicode's
    // measure) empty: leave any message that starts with anything but a
    // printable ASCII character to it.
    if start < end && !(33..=126).contains(&frame[start]) {
        return None;
    }
    // One copy of the frame; every field is a slice of it.
    let own = Bytes::copy_from_slice(&frame[..end.max(sd.1)]);
    let slice = |(a, b): (usize, usize)| {
        if &frame[a..b] == b"-" {
            Bytes::new()
        } else {
            own.slice(a..b)
        }
    };
    let mut rec = Record::new(input, own.slice(host.0..host.1), own.slice(start..end));
    rec.facility = Facility::new((pri / 8) as u8);
    rec.severity = Severity::new((pri % 8) as u8);
    rec.timestamp = timestamp;
    rec.app_name = slice(app);
    rec.procid = slice(procid);
    rec.msgid = slice(msgid);
    Some(rec)
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 3 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |v, &d| v * 10 + (d - b'0') as u32))
}

/// `YYYY-MM-DDTHH:MM:SS[.1-9 digits](Z|±HH:MM)` with every part in range;
/// anything else (leap seconds, lower-case separators) is left to the
/// general parser.
fn rfc3339(t: &[u8]) -> Option<Timestamp> {
    if t.len() < 20 || t[10] != b'T' {
        return None;
    }
    let n = |a: usize, b: usize| -> Option<u32> {
        let s = &t[a..b];
        s.iter()
            .all(u8::is_ascii_digit)
            .then(|| s.iter().fold(0, |v, &d| v * 10 + (d - b'0') as u32))
    };
    let (y, mo, d) = (n(0, 4)?, n(5, 7)?, n(8, 10)?);
    let (h, mi, s) = (n(11, 13)?, n(14, 16)?, n(17, 19)?);
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let days = [31, if leap { 29 } else { 28 }, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    if !(1..=12).contains(&mo) || d == 0 || d > days[mo as usize - 1] || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let mut i = 19;
    if t[i] == b'.' {
        let frac = t[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if frac == 0 || frac > 9 {
            return None;
        }
        i += 1 + frac;
    }
    match &t[i..] {
        b"Z" => {}
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            let digits = [*h1, *h2, *m1, *m2];
            if !digits.iter().all(u8::is_ascii_digit)
                || (h1 - b'0') * 10 + (h2 - b'0') > 23
                || (m1 - b'0') * 10 + (m2 - b'0') > 59
            {
                return None;
            }
        }
        _ => return None,
    }
    Timestamp::parse_rfc3339(t)
}

#[cfg(test)]
mod tests;
