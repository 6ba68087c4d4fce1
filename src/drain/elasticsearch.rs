//! The Elasticsearch drain: records indexed with the `_bulk` API.
//!
//! | scheme | parameters (defaults) |
//! |---|---|
//! | `es://`, `elasticsearch://`, `es+https://`, `elasticsearch+https://` (HTTPS, port 443) | `index=` (default: the record's hostname, lowercased), `auth=basic\|bearer\|apikey` with `user:password@`, `ca=`, `insecure=false`, `batch_bytes=5242880`, `linger_ms=1000` |
//! | `es+http://`, `elasticsearch+http://` (HTTP, port 80) | `index=`, `auth=`, `batch_bytes=`, `linger_ms=` |
//!
//! The request goes to the URL's path with `/_bulk` appended (unless it already
//! ends so). Batches are cut by size and time: up to 1000 records or
//! `batch_bytes=` of records (default [`BATCH_BYTES`], 5 MiB, counted before
//! encoding; a single larger record goes alone), waiting at most `linger_ms=`
//! (default [`LINGER`], 1 s) for a batch to fill. The body is NDJSON
//! (`application/x-ndjson`), one `create` action and one document per record:
//!
//! ```text
//! {"create":{"_index":"web.default","_id":"9f2c…"}}
//! {"@timestamp":"…","hostname":"web.default","tag":"web-1","message":"…","severity":6,"facility":1}
//! ```
//!
//! Documents are [`crate::encode::json`] objects (`procid`, `msgid`,
//! `structured_data` when present). `index=` may contain `%Y`, `%m`, `%d`
//! (UTC date of the record) and `%%`; index names are lowercased and
//! characters Elasticsearch forbids become `_`.
//!
//! Every `_id` (32 hex digits) is unique to its record and the same each time
//! that record is sent, so a batch sent again never duplicates a document and
//! no record is ever taken for another:
//!
//! - a record read from a file: `<file><offset><piece>`, 16 + 11 + 5 digits:
//!   the file's identity (device, inode, checksum of its first bytes), the
//!   offset where the record's first line starts, and which piece of a record
//!   split at `TAIL_MAX_RECORD_BYTES` it is. The same bytes read again after
//!   a restart (from the checkpoint) get the same id. Beyond 16 TiB or 2^20
//!   pieces the three are hashed (128-bit FNV-1a) instead.
//! - any other record (push inputs): `<sink salt><record serial>`, a random
//!   number drawn when the drain starts and the record's serial in this
//!   process. A retry carries the same record, so the same id; two records
//!   equal in every field still get two documents. Such records do not outlive
//!   the process, so nothing needs their id to survive a restart.
//!
//! Answers: per item, 200/201 is delivered and 409 (the document exists: an
//! earlier attempt got through) counts as delivered; 429 and 5xx items are sent
//! again; other failures (mapping and parse errors) are rejected, counted, and
//! logged once per error type. A whole-request 429/5xx is retried after
//! `Retry-After` or the backoff; a 413 (larger than `http.max_content_length`)
//! makes the driver send the batch again in halves, down to single documents;
//! other 4xx refuse the batch.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use hyper::header::{self, HeaderValue};
use serde::Deserialize;
use tracing::warn;

use super::driver::{Delivery, DriverConfig, Sink, SinkError};
use super::http::{HttpClient, HttpConn, HttpSetupError};
use super::tls::TlsConnector;
use super::url::{DrainKind, DrainSpec};
use crate::encode::json;
use crate::record::{Record, SharedRecord};
use crate::telemetry::OnceLog;
use crate::time::Timestamp;

/// Batching for `_bulk`: wait up to this long for a batch to fill (default of `linger_ms=`).
pub const LINGER: Duration = Duration::from_secs(1);
/// Batching for `_bulk`: at most this many bytes of records per request (default of `batch_bytes=`).
pub const BATCH_BYTES: usize = 5 << 20;

/// Bits of a file record's id for the offset of its first line (16 TiB) …
const OFFSET_BITS: u32 = 44;
/// … and for its piece number: together the lower half of the id.
const PIECE_BITS: u32 = 64 - OFFSET_BITS;

pub struct ElasticsearchSink {
    id: String,
    client: HttpClient,
    index: Option<String>,
    rejections: OnceLog,
    /// The first half of the ids of records without a file position.
    salt: u64,
    linger: Duration,
    batch_bytes: usize,
    /// `parse=json`, `labels=`.
    json: json::JsonOptions,
}

impl ElasticsearchSink {
    pub fn new(spec: &DrainSpec, tls: Option<TlsConnector>) -> Result<Self, HttpSetupError> {
        let DrainKind::Elasticsearch(es) = &spec.kind else {
            return Err(HttpSetupError::NoTarget);
        };
        Ok(ElasticsearchSink {
            id: spec.id.clone(),
            client: HttpClient::new(spec, tls)?,
            index: es.index.clone(),
            rejections: OnceLog::default(),
            salt: rand::random(),
            linger: es.linger.unwrap_or(LINGER),
            batch_bytes: es.batch_bytes.unwrap_or(BATCH_BYTES),
            json: json::JsonOptions::of(spec),
        })
    }

    /// Appends the JSON-escaped index name for a record dated `ts`.
    fn write_index(&self, rec: &Record, ts: Timestamp, scratch: &mut String, out: &mut Vec<u8>) {
        scratch.clear();
        match &self.index {
            Some(t) => expand_index(t, ts, scratch),
            None => scratch.push_str(&String::from_utf8_lossy(&rec.hostname)),
        }
        let name = sanitize_index(scratch);
        json::escape_str(&name, out);
    }

    /// The document id of a record (32 hex digits; see the module doc).
    fn write_doc_id(&self, rec: &Record, out: &mut Vec<u8>) {
        let v = match rec.origin.position {
            Some(p) if p.offset < 1 << OFFSET_BITS && p.piece < 1 << PIECE_BITS => {
                ((p.file as u128) << 64) | ((p.offset as u128) << PIECE_BITS) | p.piece as u128
            }
            Some(p) => {
                let mut h = Fnv128::new();
                h.field(&p.file.to_le_bytes());
                h.field(&p.offset.to_le_bytes());
                h.field(&p.piece.to_le_bytes());
                h.0
            }
            None => ((self.salt as u128) << 64) | rec.serial() as u128,
        };
        let mut s = String::with_capacity(32);
        let _ = write!(s, "{v:032x}");
        out.extend_from_slice(s.as_bytes());
    }

    fn reject(&self, status: u16, error: Option<&BulkError>) {
        let (kind, reason) = error
            .map(|e| (e.kind.as_str(), e.reason.as_deref().unwrap_or("")))
            .unwrap_or(("unknown", ""));
        if self.rejections.first(&format!("{status} {kind}")) {
            warn!(drain = %self.id, status, error = kind, reason, "Elasticsearch rejected documents; they will not be retried (logged once per error type).");
        }
    }
}

/// Expands `%Y`, `%m`, `%d` and `%%` with the UTC date of `ts`.
fn expand_index(template: &str, ts: Timestamp, out: &mut String) {
    let (y, m, d) = ts.ymd();
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Y') => {
                let _ = write!(out, "{y:04}");
            }
            Some('m') => {
                let _ = write!(out, "{m:02}");
            }
            Some('d') => {
                let _ = write!(out, "{d:02}");
            }
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
}

/// Lowercases and replaces what Elasticsearch forbids in index names
/// (`\ / * ? " < > | , # :` and whitespace; no leading `-`, `_`, `+`).
fn sanitize_index(name: &str) -> Cow<'_, str> {
    let bad =
        |c: char| c.is_whitespace() || matches!(c, '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ':');
    let ok = !name.is_empty()
        && !name.starts_with(['-', '_', '+'])
        && name != "."
        && name != ".."
        && !name.chars().any(|c| c.is_uppercase() || bad(c));
    if ok {
        return Cow::Borrowed(name);
    }
    let mut s: String = name
        .chars()
        .flat_map(|c| c.to_lowercase())
        .map(|c| if bad(c) { '_' } else { c })
        .collect();
    while s.starts_with(['-', '_', '+']) {
        s.remove(0);
    }
    if s.is_empty() || s == "." || s == ".." {
        s = "logtrain".into();
    }
    Cow::Owned(s)
}

/// FNV-1a over length-prefixed fields, 128 bits.
struct Fnv128(u128);

impl Fnv128 {
    fn new() -> Self {
        Fnv128(0x6c62_272e_07bb_0142_62b8_2175_6295_c58d)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &c in b {
            self.0 ^= c as u128;
            self.0 = self.0.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
        }
    }
    fn field(&mut self, b: &[u8]) {
        self.bytes(&(b.len() as u64).to_le_bytes());
        self.bytes(b);
    }
}

#[derive(Deserialize)]
struct BulkResponse {
    #[serde(default)]
    errors: bool,
    #[serde(default)]
    items: Vec<HashMap<String, BulkItem>>,
}

#[derive(Deserialize)]
struct BulkItem {
    status: u16,
    #[serde(default)]
    error: Option<BulkError>,
}

#[derive(Deserialize)]
struct BulkError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    reason: Option<String>,
}

impl Sink for ElasticsearchSink {
    type Conn = HttpConn;

    async fn connect(&self) -> Result<HttpConn, SinkError> {
        self.client.connect().await
    }

    async fn send(&self, conn: &mut HttpConn, batch: &[SharedRecord]) -> Result<Delivery, SinkError> {
        let mut buf = std::mem::take(&mut conn.buf);
        buf.clear();
        let now = Timestamp::now();
        let mut scratch = String::new();
        for r in batch {
            buf.extend_from_slice(b"{\"create\":{\"_index\":\"");
            self.write_index(r, r.timestamp.unwrap_or(now), &mut scratch, &mut buf);
            buf.extend_from_slice(b"\",\"_id\":\"");
            self.write_doc_id(r, &mut buf);
            buf.extend_from_slice(b"\"}}\n");
            json::encode(r, now, &self.json, &mut buf);
            buf.push(b'\n');
        }
        let len = buf.len();
        let headers = [(header::CONTENT_TYPE, HeaderValue::from_static("application/x-ndjson"))];
        let resp = self.client.post(conn, &headers, bytes::Bytes::from(buf)).await?;
        conn.buf = Vec::with_capacity(len);
        if resp.status.as_u16() == 413 {
            // The driver sends the halves; a single document refused is rejected.
            return Err(SinkError::TooLarge {
                bytes: Some(len),
                records: Some(batch.len()),
                limit: Some("Elasticsearch's http.max_content_length"),
                body: resp.snippet(),
            });
        }
        resp.check()?;
        let parsed: BulkResponse = serde_json::from_slice(&resp.body).map_err(|e| {
            SinkError::Io(std::io::Error::other(format!(
                "unreadable _bulk response ({e}): {}",
                resp.snippet()
            )))
        })?;
        let mut d = Delivery {
            bytes: len as u64,
            ..Delivery::default()
        };
        if !parsed.errors {
            return Ok(d);
        }
        if parsed.items.len() != batch.len() {
            return Err(SinkError::Io(std::io::Error::other(format!(
                "_bulk answered {} items for {} documents",
                parsed.items.len(),
                batch.len()
            ))));
        }
        for (i, item) in parsed.items.iter().enumerate() {
            let Some(item) = item.values().next() else {
                d.retry.push(i);
                continue;
            };
            match item.status {
                // 409 on `create`: a document with this id exists. Ids are
                // unique per record (see the module doc), so it is this very
                // record, stored by an earlier attempt whose answer was lost.
                200..=299 | 409 => {}
                429 | 500..=599 => d.retry.push(i),
                s => {
                    self.reject(s, item.error.as_ref());
                    d.rejected.push(i);
                }
            }
        }
        Ok(d)
    }

    fn tune(&self, cfg: &mut DriverConfig) {
        cfg.linger = self.linger;
        cfg.batch_bytes = self.batch_bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{InputKind, Position};

    #[test]
    fn index_templates_use_the_record_date() {
        let ts = Timestamp::parse_rfc3339(b"2026-03-09T23:59:59Z").unwrap();
        let mut s = String::new();
        expand_index("logs-%Y.%m.%d-%%-%q", ts, &mut s);
        assert_eq!(s, "logs-2026.03.09-%-%q");
    }

    #[test]
    fn index_names_are_made_valid() {
        assert_eq!(sanitize_index("web.default"), "web.default");
        assert_eq!(sanitize_index("Web.Default"), "web.default");
        assert_eq!(sanitize_index("_a b/c:d"), "a_b_c_d");
        assert_eq!(sanitize_index(""), "logtrain");
        assert_eq!(sanitize_index("__"), "logtrain");
    }

    #[test]
    fn batching_comes_from_the_url_or_the_defaults() {
        let tuned = |url: &str| {
            let sink = ElasticsearchSink::new(&DrainSpec::parse(url).unwrap(), None).unwrap();
            let mut cfg = DriverConfig::default();
            sink.tune(&mut cfg);
            (cfg.batch_bytes, cfg.linger)
        };
        assert_eq!(tuned("es+http://127.0.0.1:9200"), (BATCH_BYTES, LINGER));
        assert_eq!(
            tuned("es+http://127.0.0.1:9200?batch_bytes=65536&linger_ms=250"),
            (65536, Duration::from_millis(250))
        );
        assert_eq!(
            tuned("es+http://127.0.0.1:9200?linger_ms=0"),
            (BATCH_BYTES, Duration::ZERO)
        );
    }

    #[test]
    fn ids_are_unique_per_record_and_piece_and_stable_for_each() {
        let spec = DrainSpec::parse("es+http://127.0.0.1:9200").unwrap();
        let sink = ElasticsearchSink::new(&spec, None).unwrap();
        let id = |r: &Record| {
            let mut v = Vec::new();
            sink.write_doc_id(r, &mut v);
            String::from_utf8(v).unwrap()
        };
        let at = |offset: u64, piece: u32| {
            let mut r = Record::new(InputKind::File, "h", "m");
            r.origin.position = Some(Position {
                file: 0xabc,
                offset,
                piece,
            });
            r
        };
        // File records: file, offset of the first line, piece; whatever the content.
        assert_eq!(id(&at(0x10, 0)), "0000000000000abc0000000001000000");
        assert_eq!(id(&at(0x10, 2)), "0000000000000abc0000000001000002");
        assert_eq!(id(&at(0x10, 2)), id(&at(0x10, 2)), "the same bytes read again");
        let ids: std::collections::HashSet<String> = [(0x10, 0), (0x10, 1), (0x11, 0), (0x11, 1), (0, 0)]
            .iter()
            .map(|&(o, p)| id(&at(o, p)))
            .collect();
        assert_eq!(ids.len(), 5);
        // Out of the layout's range: hashed, still distinct and stable.
        let far = id(&at(1 << 50, 0));
        assert_eq!(far, id(&at(1 << 50, 0)));
        assert_ne!(far, id(&at(1 << 50, 1)));
        assert_ne!(id(&at(1, 1 << 20)), id(&at(1, 0)));

        // Other records: the same record (a retry, or a copy for a tagged
        // route) keeps its id; an equal but distinct record gets another.
        let mut a = Record::new(InputKind::Internal, "h", "m");
        a.timestamp = Some(Timestamp(5));
        let first = id(&a);
        assert_eq!(first.len(), 32);
        assert_eq!(id(&a.clone()), first);
        let mut twin = Record::new(InputKind::Internal, "h", "m");
        twin.timestamp = Some(Timestamp(5));
        assert_ne!(id(&twin), first);
        // Another drain (or another run) draws another salt.
        let other = ElasticsearchSink::new(&spec, None).unwrap();
        let mut v = Vec::new();
        other.write_doc_id(&a, &mut v);
        assert_ne!(String::from_utf8(v).unwrap(), first);
    }
}
