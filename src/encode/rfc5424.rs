//! RFC 5424 encoding of a [`Record`]:
//! `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG`.
//!
//! Header fields are clamped as the RFC requires (PRINTUSASCII, maximum lengths,
//! `-` when empty); the message is written as raw bytes. What this module never
//! does is decide framing: newlines in the message are the framer's business.

use crate::record::Record;
use crate::time::Timestamp;

/// RFC 5424 §6: HOSTNAME is at most 255 characters.
pub const MAX_HOSTNAME: usize = 255;
/// RFC 5424 §6: APP-NAME is at most 48 characters.
pub const MAX_APP_NAME: usize = 48;
/// RFC 5424 §6: PROCID is at most 128 characters.
pub const MAX_PROCID: usize = 128;
/// RFC 5424 §6: MSGID is at most 32 characters.
pub const MAX_MSGID: usize = 32;

/// Appends the RFC 5424 form of `rec` to `out` (no trailing newline). `now` is
/// used when the record has no timestamp.
pub fn encode(rec: &Record, now: Timestamp, out: &mut Vec<u8>) {
    out.push(b'<');
    let pri = rec.facility.get() as u32 * 8 + rec.severity.get() as u32;
    super::push_decimal(out, pri as u64);
    out.extend_from_slice(b">1 ");
    rec.timestamp.unwrap_or(now).write_rfc3339(out);
    out.push(b' ');
    header_field(out, &rec.hostname, MAX_HOSTNAME);
    out.push(b' ');
    header_field(out, &rec.app_name, MAX_APP_NAME);
    out.push(b' ');
    header_field(out, &rec.procid, MAX_PROCID);
    out.push(b' ');
    header_field(out, &rec.msgid, MAX_MSGID);
    out.push(b' ');
    structured_data(out, &rec.structured_data);
    if !rec.message.is_empty() {
        out.push(b' ');
        out.extend_from_slice(&rec.message);
    }
}

/// Writes a header field: printable US-ASCII only (others become `_`), clamped
/// to `max` bytes, `-` when empty.
fn header_field(out: &mut Vec<u8>, v: &[u8], max: usize) {
    if v.is_empty() {
        out.push(b'-');
        return;
    }
    let v = &v[..v.len().min(max)];
    if v.iter().all(|&c| (33..=126).contains(&c)) {
        out.extend_from_slice(v);
    } else {
        out.extend(v.iter().map(|&c| if (33..=126).contains(&c) { c } else { b'_' }));
    }
}

/// Writes structured data when it is well formed (`[` … `]`), else `-`.
fn structured_data(out: &mut Vec<u8>, sd: &[u8]) {
    if valid_sd(sd) {
        out.extend_from_slice(sd);
    } else {
        out.push(b'-');
    }
}

/// A cheap structural check of SD-ELEMENTs: `[` SD-ID *(SP PARAM="VALUE") `]`, repeated,
/// with `\"`, `\\` and `\]` escapes inside values.
pub fn valid_sd(sd: &[u8]) -> bool {
    if sd.is_empty() {
        return false;
    }
    let mut i = 0;
    while i < sd.len() {
        if sd[i] != b'[' {
            return false;
        }
        i += 1;
        let name_start = i;
        while i < sd.len() && is_sd_name(sd[i]) {
            i += 1;
        }
        if i == name_start {
            return false;
        }
        loop {
            match sd.get(i) {
                Some(b']') => {
                    i += 1;
                    break;
                }
                Some(b' ') => {
                    i += 1;
                    let p = i;
                    while i < sd.len() && is_sd_name(sd[i]) {
                        i += 1;
                    }
                    if i == p || sd.get(i) != Some(&b'=') || sd.get(i + 1) != Some(&b'"') {
                        return false;
                    }
                    i += 2;
                    loop {
                        match sd.get(i) {
                            None => return false,
                            Some(b'\\') => i += 2,
                            Some(b'"') => {
                                i += 1;
                                break;
                            }
                            Some(_) => i += 1,
                        }
                    }
                }
                _ => return false,
            }
        }
    }
    true
}

fn is_sd_name(c: u8) -> bool {
    (33..=126).contains(&c) && !matches!(c, b'=' | b' ' | b']' | b'"')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Facility, InputKind, Severity};
    use bytes::Bytes;

    fn enc(r: &Record) -> Vec<u8> {
        let mut v = Vec::new();
        encode(r, Timestamp(0), &mut v);
        v
    }

    #[test]
    fn full_record() {
        let mut r = Record::new(InputKind::Internal, "web.default", "hello world");
        r.facility = Facility::LOCAL0;
        r.severity = Severity::ERROR;
        r.app_name = Bytes::from_static(b"web-1");
        r.procid = Bytes::from_static(b"42");
        r.msgid = Bytes::from_static(b"ID7");
        r.structured_data = Bytes::from_static(br#"[ex@1 a="1" b="q\"x"]"#);
        r.timestamp = Timestamp::parse_rfc3339(b"2026-11-22T10:11:12.5Z");
        assert_eq!(
            enc(&r),
            br#"<131>1 2026-11-22T10:11:12.500000Z web.default web-1 42 ID7 [ex@1 a="1" b="q\"x"] hello world"#
        );
    }

    #[test]
    fn empty_fields_are_dashes() {
        let r = Record::new(InputKind::Internal, "", "");
        assert_eq!(enc(&r), b"<14>1 1970-01-01T00:00:00.000000Z - - - - -");
    }

    #[test]
    fn overlong_and_non_ascii_header_fields_are_clamped() {
        let mut r = Record::new(InputKind::Internal, "h".repeat(300), "m");
        r.app_name = Bytes::from("appé with space".to_string().repeat(5));
        r.msgid = Bytes::from("x".repeat(40));
        let out = String::from_utf8(enc(&r)).unwrap();
        let parts: Vec<&str> = out.splitn(8, ' ').collect();
        assert_eq!(parts[2].len(), MAX_HOSTNAME);
        assert_eq!(parts[3].len(), MAX_APP_NAME);
        assert!(parts[3].starts_with("app__"), "{}", parts[3]);
        assert!(parts[3].bytes().all(|c| (33..=126).contains(&c)));
        assert_eq!(parts[5].len(), MAX_MSGID);
    }

    #[test]
    fn invalid_utf8_and_newlines_in_message_survive() {
        let msg: &[u8] = b"bad \xff\xfe bytes\nsecond line";
        let r = Record::new(InputKind::Internal, "h", Bytes::copy_from_slice(msg));
        let out = enc(&r);
        assert!(out.ends_with(msg));
    }

    #[test]
    fn malformed_structured_data_becomes_dash() {
        for bad in [&b"["[..], b"[]", b"[a b]", b"[a b=\"x]", b"x[a]", b"[a][", b"[a b=c]"] {
            assert!(!valid_sd(bad), "{:?}", String::from_utf8_lossy(bad));
        }
        for good in [&b"[a]"[..], b"[a][b c=\"\"]", br#"[a b="\]"]"#] {
            assert!(valid_sd(good), "{:?}", String::from_utf8_lossy(good));
        }
        let mut r = Record::new(InputKind::Internal, "h", "m");
        r.structured_data = Bytes::from_static(b"[broken");
        assert_eq!(enc(&r), b"<14>1 1970-01-01T00:00:00.000000Z h - - - - m");
    }
}
