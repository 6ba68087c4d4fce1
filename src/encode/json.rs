//! JSON encoding of a [`Record`], shared by the `http(s)://` and Elasticsearch
//! drains: one flat object per record, written straight into a caller's buffer.
//!
//! ```json
//! {"@timestamp":"2026-11-22T10:11:12.500000Z","hostname":"web.default","tag":"web-1",
//!  "message":"hello","severity":6,"facility":1,"procid":"42","msgid":"ID7",
//!  "structured_data":"[ex@1 a=\"1\"]"}
//! ```
//!
//! `@timestamp`, `hostname`, `tag` (the APP-NAME), `message`, `severity` and
//! `facility` are always present (the fields of the Go logtrain's documents);
//! `procid`, `msgid` and `structured_data` only when not empty.
//!
//! Text is escaped as RFC 8259 requires (`"`, `\` and control characters).
//! Bytes that are not UTF-8 cannot appear in a JSON string: they are written as
//! U+FFFD, and when the *message* had any, the exact original bytes are added
//! as `"message_base64"` (standard base64), so nothing is lost. Header fields
//! that are not UTF-8 are written lossily (they are ASCII in practice).
//!
//! A record tailed from a container log also gets a `kubernetes` object
//! (namespace, pod, container, node, workload, and the labels the drain's
//! `labels=` names; see [`super::kubernetes`]). With `parse=json`, a message
//! that is a JSON object also becomes fields of the document: each of its
//! fields whose name is not one of the document's own ([`RESERVED`]) is
//! added; a field whose name is (a clash) is not lifted and stays, with the
//! rest, in `message`, which is always the message as read. Any other
//! message is left as it is.
//!
//! What this module never does is allocate per field: it appends to `out`
//! (only `parse=json` parses the message, into a map, when it looks like an
//! object).

use base64::Engine;

use crate::drain::DrainSpec;
use crate::record::Record;
use crate::time::Timestamp;

/// The document's own fields: a field of a parsed message by one of these
/// names is not lifted.
pub const RESERVED: &[&str] = &[
    "@timestamp",
    "hostname",
    "tag",
    "message",
    "severity",
    "facility",
    "procid",
    "msgid",
    "structured_data",
    "message_base64",
    "kubernetes",
];

/// How a drain shapes its documents (`parse=json`, `labels=`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JsonOptions {
    /// Lift the fields of a message that is a JSON object.
    pub parse_json: bool,
    /// Pod labels to add to the `kubernetes` object.
    pub labels: Vec<String>,
}

impl JsonOptions {
    /// The options a drain URL's parameters give.
    pub fn of(spec: &DrainSpec) -> JsonOptions {
        spec.processing
            .as_deref()
            .map(|p| JsonOptions {
                parse_json: p.parse_json,
                labels: p.labels.clone(),
            })
            .unwrap_or_default()
    }
}

/// Appends the JSON object for `rec` (no trailing newline). `now` stands in for
/// a missing timestamp.
pub fn encode(rec: &Record, now: Timestamp, opts: &JsonOptions, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"@timestamp\":\"");
    rec.timestamp.unwrap_or(now).write_rfc3339(out);
    out.extend_from_slice(b"\",\"hostname\":");
    string(&rec.hostname, out);
    out.extend_from_slice(b",\"tag\":");
    string(&rec.app_name, out);
    out.extend_from_slice(b",\"message\":");
    let lossless = string(&rec.message, out);
    out.extend_from_slice(b",\"severity\":");
    super::push_decimal(out, rec.severity.get() as u64);
    out.extend_from_slice(b",\"facility\":");
    super::push_decimal(out, rec.facility.get() as u64);
    for (name, v) in [
        (&b",\"procid\":"[..], &rec.procid),
        (b",\"msgid\":", &rec.msgid),
        (b",\"structured_data\":", &rec.structured_data),
    ] {
        if !v.is_empty() {
            out.extend_from_slice(name);
            string(v, out);
        }
    }
    if !lossless {
        out.extend_from_slice(b",\"message_base64\":\"");
        let start = out.len();
        let len = base64::encoded_len(rec.message.len(), true).unwrap_or(0);
        out.resize(start + len, 0);
        let n = base64::engine::general_purpose::STANDARD
            .encode_slice(&rec.message, &mut out[start..])
            .unwrap_or(0);
        out.truncate(start + n);
        out.push(b'"');
    }
    if let Some(pod) = &rec.origin.pod {
        super::kubernetes::json_object(pod, &opts.labels, out);
    }
    if opts.parse_json {
        lift_fields(&rec.message, out);
    }
    out.push(b'}');
}

/// Appends `,"name":value` for each field of `message`, when it is a JSON
/// object, whose name is not [`RESERVED`].
fn lift_fields(message: &[u8], out: &mut Vec<u8>) {
    if message.trim_ascii_start().first() != Some(&b'{') {
        return;
    }
    let Ok(fields) = serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(message) else {
        return;
    };
    for (k, v) in &fields {
        if RESERVED.contains(&k.as_str()) {
            continue;
        }
        out.push(b',');
        string(k.as_bytes(), out);
        out.push(b':');
        // Writing a parsed value into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, v);
    }
}

/// Appends `v` as a quoted, escaped JSON string. Returns false when `v` was not
/// valid UTF-8 (its invalid sequences were written as U+FFFD).
pub fn string(v: &[u8], out: &mut Vec<u8>) -> bool {
    out.push(b'"');
    let mut lossless = true;
    for chunk in v.utf8_chunks() {
        escape_str(chunk.valid(), out);
        if !chunk.invalid().is_empty() {
            lossless = false;
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
    out.push(b'"');
    lossless
}

/// Escapes valid UTF-8 text into `out` (no quotes).
pub fn escape_str(s: &str, out: &mut Vec<u8>) {
    let b = s.as_bytes();
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                out.extend_from_slice(&b[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(c >> 4) as usize], HEX[(c & 15) as usize]]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Facility, InputKind, Severity};
    use bytes::Bytes;

    fn enc(r: &Record) -> serde_json::Value {
        enc_with(r, &JsonOptions::default())
    }

    fn enc_with(r: &Record, opts: &JsonOptions) -> serde_json::Value {
        let mut out = Vec::new();
        encode(r, Timestamp(0), opts, &mut out);
        serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)))
    }

    #[test]
    fn every_field_round_trips() {
        let mut r = Record::new(InputKind::Internal, "web.default", "say \"hi\"\\\n\t\u{1}\u{7f} é 🚂");
        r.app_name = Bytes::from_static(b"web-1");
        r.procid = Bytes::from_static(b"42");
        r.msgid = Bytes::from_static(b"ID7");
        r.structured_data = Bytes::from_static(br#"[ex@1 a="q\"x"]"#);
        r.severity = Severity::ERROR;
        r.facility = Facility::LOCAL0;
        r.timestamp = Timestamp::parse_rfc3339(b"2026-11-22T10:11:12.5Z");
        let v = enc(&r);
        assert_eq!(v["@timestamp"], "2026-11-22T10:11:12.500000Z");
        assert_eq!(v["hostname"], "web.default");
        assert_eq!(v["tag"], "web-1");
        assert_eq!(v["message"], "say \"hi\"\\\n\t\u{1}\u{7f} é 🚂");
        assert_eq!(v["severity"], 3);
        assert_eq!(v["facility"], 16);
        assert_eq!(v["procid"], "42");
        assert_eq!(v["msgid"], "ID7");
        assert_eq!(v["structured_data"], r#"[ex@1 a="q\"x"]"#);
        assert!(v.get("message_base64").is_none());
    }

    #[test]
    fn empty_optional_fields_are_left_out() {
        let v = enc(&Record::new(InputKind::Internal, "", ""));
        let o = v.as_object().unwrap();
        let mut keys: Vec<&str> = o.keys().map(|k| k.as_str()).collect();
        keys.sort();
        assert_eq!(
            keys,
            ["@timestamp", "facility", "hostname", "message", "severity", "tag"]
        );
        assert_eq!(v["@timestamp"], "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn every_control_character_is_escaped() {
        let all: String = (0u8..0x20).map(|c| c as char).collect();
        let mut out = Vec::new();
        string(all.as_bytes(), &mut out);
        assert!(out.iter().all(|&c| c >= 0x20), "{}", String::from_utf8_lossy(&out));
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, all);
    }

    #[test]
    fn invalid_utf8_message_is_kept_exactly_in_base64() {
        let raw: &[u8] = b"bad \xff\xfe bytes \xe2\x82";
        let r = Record::new(InputKind::Internal, "h", Bytes::copy_from_slice(raw));
        let v = enc(&r);
        assert_eq!(v["message"], "bad \u{FFFD}\u{FFFD} bytes \u{FFFD}");
        let b = base64::engine::general_purpose::STANDARD
            .decode(v["message_base64"].as_str().unwrap())
            .unwrap();
        assert_eq!(b, raw);
    }

    #[test]
    fn parse_json_lifts_an_object_s_fields_but_never_the_document_s_own() {
        let opts = JsonOptions {
            parse_json: true,
            labels: Vec::new(),
        };
        let line = r#"{"level":"warn","user":{"id":7},"message":"theirs","severity":"x","n":1.5}"#;
        let v = enc_with(&Record::new(InputKind::Internal, "h", line), &opts);
        assert_eq!(v["level"], "warn");
        assert_eq!(v["user"]["id"], 7);
        assert_eq!(v["n"], 1.5);
        assert_eq!(v["message"], line, "the message stays as read, clashes with it");
        assert_eq!(v["severity"], 6, "a reserved field keeps its meaning");
        for plain in ["plain text", "[1,2]", "{not json", "\"{}\""] {
            let v = enc_with(&Record::new(InputKind::Internal, "h", plain), &opts);
            assert_eq!(v.as_object().unwrap().len(), 6, "{plain}: {v}");
            assert_eq!(v["message"], plain);
        }
        let v = enc(&Record::new(InputKind::Internal, "h", line));
        assert!(v.get("level").is_none(), "only with parse=json");
    }

    #[test]
    fn a_tailed_record_carries_its_kubernetes_object() {
        let mut r = Record::new(InputKind::File, "h", "m");
        r.origin.pod = Some(std::sync::Arc::new(crate::record::PodRef {
            namespace: "ns".into(),
            pod: "p-1".into(),
            container: "c".into(),
            ..Default::default()
        }));
        let v = enc(&r);
        assert_eq!(v["kubernetes"]["pod"], "p-1");
        assert_eq!(v["kubernetes"]["container"], "c");
        assert!(v["kubernetes"].get("labels").is_none());
    }
}
