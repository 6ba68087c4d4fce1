//! The body the Go logtrain POSTed to `http(s)://` drains, kept for receivers
//! built against it (`body=go` on the drain URL): one JSON object per record,
//! one request per record, with the field names of its syslog packet and Go's
//! encoding of them: `{"Severity":6,"Facility":1,"Hostname":"web.default",
//! "Tag":"web","Time":"2026-12-02T10:00:00.5Z","Message":"…"}`. `Time` is
//! RFC 3339 with nanoseconds, trailing zeros dropped (Go's `RFC3339Nano`);
//! `<`, `>`, `&`, U+2028 and U+2029 are escaped as Go's encoder escapes them;
//! invalid UTF-8 becomes U+FFFD.

use super::json;
use crate::record::Record;
use crate::time::Timestamp;

/// Appends the record's object to `out`; a record without a time gets `now`.
pub fn encode(r: &Record, now: Timestamp, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"Severity\":");
    out.extend_from_slice(r.severity.get().to_string().as_bytes());
    out.extend_from_slice(b",\"Facility\":");
    out.extend_from_slice(r.facility.get().to_string().as_bytes());
    out.extend_from_slice(b",\"Hostname\":");
    go_string(&r.hostname, out);
    out.extend_from_slice(b",\"Tag\":");
    go_string(&r.app_name, out);
    out.extend_from_slice(b",\"Time\":\"");
    rfc3339_nano(r.timestamp.unwrap_or(now), out);
    out.extend_from_slice(b"\",\"Message\":");
    go_string(&r.message, out);
    out.push(b'}');
}

/// A JSON string as Go's `encoding/json` writes it.
fn go_string(v: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    json::string(v, out);
    // Go escapes what could be read as HTML or end a JavaScript line.
    if !out[start..].iter().any(|b| matches!(b, b'<' | b'>' | b'&' | 0xe2)) {
        return;
    }
    let plain = String::from_utf8_lossy(&out[start..]).into_owned();
    out.truncate(start);
    for c in plain.chars() {
        match c {
            '<' => out.extend_from_slice(b"\\u003c"),
            '>' => out.extend_from_slice(b"\\u003e"),
            '&' => out.extend_from_slice(b"\\u0026"),
            '\u{2028}' => out.extend_from_slice(b"\\u2028"),
            '\u{2029}' => out.extend_from_slice(b"\\u2029"),
            c => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, the fraction without trailing zeros.
fn rfc3339_nano(t: Timestamp, out: &mut Vec<u8>) {
    let (y, mo, d) = t.ymd();
    let secs = t.0.div_euclid(1_000_000_000);
    let nanos = t.0.rem_euclid(1_000_000_000);
    let day = secs.rem_euclid(86_400);
    out.extend_from_slice(
        format!(
            "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
            day / 3600,
            day / 60 % 60,
            day % 60
        )
        .as_bytes(),
    );
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        out.push(b'.');
        out.extend_from_slice(frac.trim_end_matches('0').as_bytes());
    }
    out.push(b'Z');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Facility, InputKind, Severity};

    #[test]
    fn the_go_packet_with_gos_escapes_and_time() {
        let mut r = Record::new(InputKind::SyslogTcp, "web.default", &b"a <b> & \"c\"\n\xff"[..]);
        r.app_name = "web".into();
        r.severity = Severity::ERROR;
        r.facility = Facility::LOCAL0;
        r.timestamp = Timestamp::parse_rfc3339(b"2026-12-02T10:00:00.500Z");
        let mut out = Vec::new();
        encode(&r, Timestamp(0), &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"Severity":3,"Facility":16,"Hostname":"web.default","Tag":"web","Time":"2026-12-02T10:00:00.5Z","Message":"a \u003cb\u003e \u0026 \"c\"\n�"}"#
        );
        let mut out = Vec::new();
        r.timestamp = None;
        encode(&r, Timestamp(1_000_000_000), &mut out);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains(r#""Time":"1970-01-01T00:00:01Z""#)
        );
    }
}
