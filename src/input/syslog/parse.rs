//! One syslog frame (RFC 5424, or RFC 3164 as a fallback) into a [`Record`]:
//! the common well-formed RFC 5424 frames by the fast path (`fast`), every
//! other frame with `syslog_loose`, as follows.
//!
//! `syslog_loose` parses `&str`, but a message may hold any bytes. So the parser
//! reads a lossy UTF-8 copy of the frame only for the header, then maps the
//! position where the message starts back to the original bytes
//! ([`original_offset`]) and copies the message from the frame itself: invalid
//! UTF-8 in the message survives byte for byte. (It is copied, not sliced, so a
//! queued record never pins a connection's whole read buffer.) Header fields are ASCII by the RFCs; should one hold invalid UTF-8 it
//! keeps U+FFFD (the encoder later writes non-ASCII header bytes as `_`).
//!
//! Structured data is re-serialised as RFC 5424 SD text: values are unescaped
//! as RFC 5424 §6.3.3 says and escaped again (`"`, `\` and `]`), so a value
//! carrying an unescaped `]` is still well formed on the way out.
//!
//! Logplex frames, which lack the STRUCTURED-DATA field, are parsed as if it
//! were nil (`-`).
//!
//! A frame that does not parse, or parses without a hostname, cannot be routed
//! (logtrain routes by hostname): it is refused as [`ParseError`], and the
//! caller counts it as a parse error and as unrouted. Nothing is forwarded raw.

use bytes::Bytes;
use syslog_loose::{ProcId, Variant};

use crate::record::{Facility, InputKind, Record, Severity};
use crate::time::Timestamp;

/// A frame that is not usable syslog.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("not an RFC 5424 or RFC 3164 message")]
    NotSyslog,
    #[error("message has no hostname to route by")]
    NoHostname,
}

/// Parses one frame into a record from `input`: by the fast path when the
/// frame is in its subset (`fast`), else as below.
pub fn parse(frame: &Bytes, input: InputKind) -> Result<Record, ParseError> {
    match super::fast::parse(frame, input) {
        Some(rec) => Ok(rec),
        None => parse_general(frame, input),
    }
}

/// Parses one frame with `syslog_loose` (any RFC 5424 or RFC 3164 frame).
pub fn parse_general(frame: &Bytes, input: InputKind) -> Result<Record, ParseError> {
    let lossy = String::from_utf8_lossy(frame);
    let first = parse_str(&lossy);
    let patched = match first {
        Ok(_) => None,
        Err(_) => Some(insert_nil_sd(&lossy).ok_or(ParseError::NotSyslog)?),
    };
    let (msg, text, inserted) = match (first, &patched) {
        (Ok(m), _) => (m, &*lossy, None),
        (Err(_), Some((p, at))) => (parse_str(p).map_err(|_| ParseError::NotSyslog)?, p.as_str(), Some(*at)),
        (Err(_), None) => return Err(ParseError::NotSyslog),
    };
    let hostname = match msg.hostname {
        Some(h) if !h.is_empty() && h != "-" => h,
        _ => return Err(ParseError::NoHostname),
    };
    // Where the message begins in the lossy copy. An empty message (which is
    // what a message of only white space becomes) may not point into it at all.
    let base = text.as_ptr() as usize;
    let at = (msg.msg.as_ptr() as usize).wrapping_sub(base);
    let mut at = if at <= text.len() && !msg.msg.is_empty() {
        at
    } else {
        text.len()
    };
    if let Some(i) = inserted
        && at >= i + NIL_SD.len()
    {
        at -= NIL_SD.len();
    }
    let start = original_offset(frame, at);
    let mut end = frame.len();
    while end > start && matches!(frame[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    let mut rec = Record::new(
        input,
        Bytes::copy_from_slice(hostname.as_bytes()),
        Bytes::copy_from_slice(&frame[start..end]),
    );
    if let Some(f) = msg.facility {
        rec.facility = Facility::new(f as u8);
    }
    if let Some(s) = msg.severity {
        rec.severity = Severity::new(s as u8);
    }
    rec.timestamp = msg.timestamp.and_then(|t| t.timestamp_nanos_opt()).map(Timestamp);
    rec.app_name = field(msg.appname);
    rec.procid = match msg.procid {
        // A numeric PROCID as it was written (`0042` stays `0042`).
        Some(ProcId::PID(p)) => Bytes::copy_from_slice(procid_text(text, &msg, p).unwrap_or(&p.to_string()).as_bytes()),
        Some(ProcId::Name(n)) => field(Some(n)),
        None => Bytes::new(),
    };
    rec.msgid = field(msg.msgid);
    if !msg.structured_data.is_empty() {
        let mut sd = Vec::with_capacity(64);
        for el in &msg.structured_data {
            sd.push(b'[');
            sd.extend_from_slice(el.id.as_bytes());
            for (name, value) in &el.params {
                sd.push(b' ');
                sd.extend_from_slice(name.as_bytes());
                sd.extend_from_slice(b"=\"");
                escape_sd_value(&unescape_sd_value(value), &mut sd);
                sd.push(b'"');
            }
            sd.push(b']');
        }
        rec.structured_data = Bytes::from(sd);
    }
    Ok(rec)
}

/// The PROCID token that `syslog_loose` read as the number `p`, as written:
/// the second field after the hostname (RFC 5424) or the text in the tag's
/// brackets (RFC 3164), when it is that number.
fn procid_text<'a>(text: &'a str, msg: &syslog_loose::Message<&str>, p: i32) -> Option<&'a str> {
    let host = msg.hostname?;
    let at = (host.as_ptr() as usize).checked_sub(text.as_ptr() as usize)? + host.len();
    let rest = text.get(at..)?;
    let token = match msg.protocol {
        syslog_loose::Protocol::RFC5424(_) => rest.split(' ').nth(2)?,
        syslog_loose::Protocol::RFC3164 => {
            let open = rest.find('[')?;
            let close = rest[open..].find(']')?;
            &rest[open + 1..open + close]
        }
    };
    (token.parse::<i32>() == Ok(p)).then_some(token)
}

fn parse_str(text: &str) -> Result<syslog_loose::Message<&str>, String> {
    syslog_loose::parse_message_with_year_exact(text, guess_year, Variant::Either)
}

const NIL_SD: &str = "- ";

/// Logplex (Heroku's HTTPS drains) writes RFC 5424 headers without the
/// STRUCTURED-DATA field. Returns the text with a nil SD inserted after MSGID,
/// and where it was inserted, when the text starts like RFC 5424.
fn insert_nil_sd(text: &str) -> Option<(String, usize)> {
    let rest = text.strip_prefix('<')?;
    let close = rest.find('>')?;
    if !rest[close + 1..].starts_with("1 ") {
        return None;
    }
    // <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID: six fields, each ending in a space.
    let mut at = 0;
    for _ in 0..6 {
        at += text[at..].find(' ')? + 1;
    }
    let mut out = String::with_capacity(text.len() + NIL_SD.len());
    out.push_str(&text[..at]);
    out.push_str(NIL_SD);
    out.push_str(&text[at..]);
    Some((out, at))
}

fn field(v: Option<&str>) -> Bytes {
    match v {
        Some(s) if s != "-" => Bytes::copy_from_slice(s.as_bytes()),
        _ => Bytes::new(),
    }
}

/// RFC 3164 timestamps have no year: this year, or last year when the date
/// would otherwise lie more than a day in the future (December logs read in January).
fn guess_year((month, day, ..): syslog_loose::IncompleteDate) -> i32 {
    let (y, m, d) = Timestamp::now().ymd();
    if month > m || (month == m && day > d + 1) {
        y as i32 - 1
    } else {
        y as i32
    }
}

/// Maps a byte offset in `String::from_utf8_lossy(orig)` back to `orig`: every
/// invalid sequence became one U+FFFD (3 bytes) there.
pub fn original_offset(orig: &[u8], lossy_at: usize) -> usize {
    let mut lossy = 0;
    let mut o = 0;
    for chunk in orig.utf8_chunks() {
        let valid = chunk.valid().len();
        if lossy_at <= lossy + valid {
            return o + (lossy_at - lossy);
        }
        lossy += valid;
        o += valid;
        let bad = chunk.invalid().len();
        if bad > 0 {
            if lossy_at < lossy + 3 {
                return o;
            }
            lossy += 3;
            o += bad;
        }
    }
    o.min(orig.len())
}

/// Removes RFC 5424 escapes (`\"`, `\\`, `\]`); other backslashes stay literal.
fn unescape_sd_value(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&n) = chars.peek()
            && matches!(n, '"' | '\\' | ']')
        {
            out.push(n);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

/// Escapes `"`, `\` and `]` as RFC 5424 §6.3.3 requires.
pub fn escape_sd_value(v: &str, out: &mut Vec<u8>) {
    for &b in v.as_bytes() {
        if matches!(b, b'"' | b'\\' | b']') {
            out.push(b'\\');
        }
        out.push(b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[u8]) -> Record {
        parse(&Bytes::copy_from_slice(s), InputKind::SyslogTcp).unwrap()
    }

    #[test]
    fn rfc5424_keeps_every_field() {
        let r = p(br#"<165>1 2003-10-11T22:14:15.003Z web.default app 42 ID47 [ex@1 a="x\"y" b="c\\d\]e"][two k="v"] hello  world "#);
        assert_eq!((r.facility.get(), r.severity.get()), (20, 5));
        assert_eq!(r.timestamp.unwrap().to_rfc3339(), "2003-10-11T22:14:15.003000Z");
        assert_eq!(&r.hostname[..], b"web.default");
        assert_eq!(&r.app_name[..], b"app");
        assert_eq!(&r.procid[..], b"42");
        assert_eq!(&r.msgid[..], b"ID47");
        assert_eq!(&r.structured_data[..], br#"[ex@1 a="x\"y" b="c\\d\]e"][two k="v"]"#);
        assert_eq!(&r.message[..], b"hello  world ");
    }

    #[test]
    fn nil_fields_are_empty() {
        let r = p(b"<14>1 2024-01-01T00:00:00+01:00 h - - - - msg\r\n");
        assert!(r.app_name.is_empty() && r.procid.is_empty() && r.msgid.is_empty());
        assert!(r.structured_data.is_empty());
        assert_eq!(&r.message[..], b"msg");
        assert_eq!(r.timestamp.unwrap().to_rfc3339(), "2023-12-31T23:00:00.000000Z");
    }

    #[test]
    fn logplex_frames_without_structured_data() {
        let r = p(b"<190>1 2013-03-21T22:52:26.181512+00:00 web.default app web.1 - Hello [not sd] world");
        assert_eq!(
            (&r.hostname[..], &r.app_name[..], &r.procid[..]),
            (&b"web.default"[..], &b"app"[..], &b"web.1"[..])
        );
        assert!(r.msgid.is_empty() && r.structured_data.is_empty());
        assert_eq!(&r.message[..], b"Hello [not sd] world");
    }

    #[test]
    fn invalid_utf8_survives_in_the_message() {
        let r = p(b"<14>1 2024-01-01T00:00:00Z h\xff a - - - caf\xc3\xa9 \xff\xfe\x80 end");
        assert_eq!(&r.message[..], b"caf\xc3\xa9 \xff\xfe\x80 end");
        assert_eq!(&r.app_name[..], b"a");
        assert_eq!(&r.hostname[..], "h\u{fffd}".as_bytes());
    }

    #[test]
    fn rfc3164() {
        let r = p(b"<13>Nov 22 10:00:01 myhost tag[123]: hello there");
        assert_eq!(&r.hostname[..], b"myhost");
        assert_eq!(&r.app_name[..], b"tag");
        assert_eq!(&r.procid[..], b"123");
        assert_eq!(&r.message[..], b"hello there");
        assert_eq!((r.facility.get(), r.severity.get()), (1, 5));
    }

    #[test]
    fn garbage_is_refused() {
        for g in [&b"\x00\x01garbage"[..], b"", b"hello world"] {
            let e = parse(&Bytes::copy_from_slice(g), InputKind::SyslogTcp).unwrap_err();
            assert!(matches!(e, ParseError::NotSyslog | ParseError::NoHostname), "{g:?}");
        }
    }

    #[test]
    fn maps_lossy_offsets_back() {
        let orig = b"ab\xffcd\xfe\xfdef";
        let lossy = String::from_utf8_lossy(orig);
        for (i, _) in lossy.char_indices() {
            let o = original_offset(orig, i);
            let tail = String::from_utf8_lossy(&orig[o..]);
            assert_eq!(&lossy[i..], tail, "{i}");
        }
        assert_eq!(original_offset(orig, lossy.len()), orig.len());
    }
}
