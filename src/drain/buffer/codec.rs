//! The bytes of one buffered record: a frame of `length (u32 LE)`, `crc32 of
//! the payload (u32 LE)`, then the payload, a compact binary form of every
//! [`Record`] field a drain sends (the acknowledgement and serial are the
//! process's own and are not kept).
//!
//! Like a wire protocol's framing: [`check`] looks at a buffer and tells a
//! whole frame from an incomplete one (a torn write, or a read that stopped
//! short) and from a corrupt one (bad length or checksum); [`decode`] only
//! ever sees payloads whose checksum held. Pure functions only: nothing here
//! touches a file.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes};

use crate::record::{Facility, InputKind, PodRef, Position, Record, Severity, Stream, Workload};
use crate::time::Timestamp;

/// Bytes before each payload: its length and its checksum.
pub const HEADER: usize = 8;
/// The largest payload a frame may carry; a larger length is corruption.
pub const MAX_PAYLOAD: usize = 64 << 20;
/// The payload format this build writes and reads.
const VERSION: u8 = 1;

const HAS_TIMESTAMP: u8 = 1;
const HAS_POD: u8 = 2;
const HAS_STREAM: u8 = 4;
const STDERR: u8 = 8;
const HAS_POSITION: u8 = 16;

/// What the start of a buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole frame of this many bytes (header included) whose checksum holds.
    Whole(usize),
    /// Not enough bytes yet for the frame that starts here.
    Incomplete,
    /// Not a frame: an impossible length or a checksum that does not match.
    Corrupt,
}

/// A payload that passed its checksum but is not a record this build reads.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    #[error("buffered record of format version {0}, this build reads {VERSION}")]
    Version(u8),
    #[error("buffered record ends early")]
    Short,
}

/// The encoded size of `rec`, header included.
pub fn frame_len(rec: &Record) -> usize {
    let pod = rec.origin.pod.as_ref().map_or(0, |p| {
        let workload = p.workload.as_ref().map_or(0, |w| w.kind.len() + w.name.len());
        let labels: usize = p.labels.iter().map(|(k, v)| 8 + k.len() + v.len()).sum();
        28 + p.namespace.len()
            + p.pod.len()
            + p.container.len()
            + p.node.as_deref().map_or(0, str::len)
            + workload
            + labels
    });
    let position = if rec.origin.position.is_some() { 20 } else { 0 };
    HEADER
        + 5
        + 8
        + 24
        + rec.hostname.len()
        + rec.app_name.len()
        + rec.procid.len()
        + rec.msgid.len()
        + rec.structured_data.len()
        + rec.message.len()
        + pod
        + position
}

/// Appends `rec` as one frame to `out`.
pub fn encode(rec: &Record, out: &mut Vec<u8>) {
    let start = out.len();
    out.put_u32_le(0);
    out.put_u32_le(0);
    let o = &rec.origin;
    let mut flags = 0;
    if rec.timestamp.is_some() {
        flags |= HAS_TIMESTAMP;
    }
    if o.pod.is_some() {
        flags |= HAS_POD;
    }
    match o.stream {
        Some(Stream::Stdout) => flags |= HAS_STREAM,
        Some(Stream::Stderr) => flags |= HAS_STREAM | STDERR,
        None => {}
    }
    if o.position.is_some() {
        flags |= HAS_POSITION;
    }
    out.put_u8(VERSION);
    out.put_u8(flags);
    out.put_u8(rec.facility.get());
    out.put_u8(rec.severity.get());
    out.put_u8(input_code(o.input));
    out.put_i64_le(rec.timestamp.map_or(0, |t| t.0));
    for field in [
        &rec.hostname,
        &rec.app_name,
        &rec.procid,
        &rec.msgid,
        &rec.structured_data,
        &rec.message,
    ] {
        put_bytes(out, field);
    }
    if let Some(p) = &o.pod {
        for s in [&p.namespace, &p.pod, &p.container] {
            put_bytes(out, s.as_bytes());
        }
        // Kubernetes metadata: an empty node or workload kind means none.
        put_bytes(out, p.node.as_deref().unwrap_or("").as_bytes());
        let (kind, name) = p
            .workload
            .as_ref()
            .map_or(("", ""), |w| (w.kind.as_str(), w.name.as_str()));
        put_bytes(out, kind.as_bytes());
        put_bytes(out, name.as_bytes());
        out.put_u32_le(p.labels.len() as u32);
        for (k, v) in p.labels.iter() {
            put_bytes(out, k.as_bytes());
            put_bytes(out, v.as_bytes());
        }
    }
    if let Some(p) = o.position {
        out.put_u64_le(p.file);
        out.put_u64_le(p.offset);
        out.put_u32_le(p.piece);
    }
    let len = out.len() - start - HEADER;
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.put_u32_le(b.len() as u32);
    out.put_slice(b);
}

/// Looks at the frame at the start of `buf` without decoding it.
pub fn check(buf: &[u8]) -> Frame {
    if buf.len() < HEADER {
        return Frame::Incomplete;
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes")) as usize;
    if !(13..=MAX_PAYLOAD).contains(&len) {
        return Frame::Corrupt;
    }
    if buf.len() < HEADER + len {
        return Frame::Incomplete;
    }
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if crc32fast::hash(&buf[HEADER..HEADER + len]) != crc {
        return Frame::Corrupt;
    }
    Frame::Whole(HEADER + len)
}

/// The record of a whole frame's payload (`frame` without its header); text
/// fields share `frame`'s memory.
pub fn decode(mut p: Bytes) -> Result<Record, DecodeError> {
    if p.remaining() < 13 {
        return Err(DecodeError::Short);
    }
    let version = p.get_u8();
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let flags = p.get_u8();
    let facility = Facility::new(p.get_u8());
    let severity = Severity::new(p.get_u8());
    let input = input_kind(p.get_u8());
    let ts = p.get_i64_le();
    let mut f = || take(&mut p);
    let (hostname, app_name, procid, msgid, sd, message) = (f()?, f()?, f()?, f()?, f()?, f()?);
    let mut rec = Record::new(input, hostname, message);
    rec.facility = facility;
    rec.severity = severity;
    rec.timestamp = (flags & HAS_TIMESTAMP != 0).then_some(Timestamp(ts));
    rec.app_name = app_name;
    rec.procid = procid;
    rec.msgid = msgid;
    rec.structured_data = sd;
    if flags & HAS_POD != 0 {
        let text = |b: Bytes| String::from_utf8_lossy(&b).into_owned();
        let (namespace, pod, container) = (text(take(&mut p)?), text(take(&mut p)?), text(take(&mut p)?));
        let node = text(take(&mut p)?);
        let (kind, name) = (text(take(&mut p)?), text(take(&mut p)?));
        if p.remaining() < 4 {
            return Err(DecodeError::Short);
        }
        let n = p.get_u32_le() as usize;
        let mut labels = std::collections::BTreeMap::new();
        for _ in 0..n {
            let (k, v) = (text(take(&mut p)?), text(take(&mut p)?));
            labels.insert(k, v);
        }
        rec.origin.pod = Some(Arc::new(PodRef {
            namespace,
            pod,
            container,
            node: (!node.is_empty()).then(|| Arc::from(node.as_str())),
            workload: (!kind.is_empty()).then_some(Workload { kind, name }),
            labels: Arc::new(labels),
        }));
    }
    if flags & HAS_STREAM != 0 {
        rec.origin.stream = Some(if flags & STDERR != 0 {
            Stream::Stderr
        } else {
            Stream::Stdout
        });
    }
    if flags & HAS_POSITION != 0 {
        if p.remaining() < 20 {
            return Err(DecodeError::Short);
        }
        rec.origin.position = Some(Position {
            file: p.get_u64_le(),
            offset: p.get_u64_le(),
            piece: p.get_u32_le(),
        });
    }
    Ok(rec)
}

fn take(p: &mut Bytes) -> Result<Bytes, DecodeError> {
    if p.remaining() < 4 {
        return Err(DecodeError::Short);
    }
    let n = p.get_u32_le() as usize;
    if p.remaining() < n {
        return Err(DecodeError::Short);
    }
    Ok(p.split_to(n))
}

const INPUTS: [InputKind; 8] = [
    InputKind::File,
    InputKind::SyslogTcp,
    InputKind::SyslogUdp,
    InputKind::SyslogTls,
    InputKind::HttpSyslog,
    InputKind::HttpEvents,
    InputKind::Envoy,
    InputKind::Internal,
];

fn input_code(k: InputKind) -> u8 {
    INPUTS.iter().position(|i| *i == k).unwrap_or(7) as u8
}

fn input_kind(c: u8) -> InputKind {
    INPUTS.get(c as usize).copied().unwrap_or(InputKind::Internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> Record {
        let mut r = Record::new(InputKind::File, "web.default", Bytes::from_static(b"hello \xff world"));
        r.facility = Facility::LOCAL0;
        r.severity = Severity::ERROR;
        r.timestamp = Some(Timestamp(1_700_000_000_123_456_789));
        r.app_name = Bytes::from_static(b"web");
        r.procid = Bytes::from_static(b"web-1-a");
        r.msgid = Bytes::from_static(b"m1");
        r.structured_data = Bytes::from_static(b"[x a=\"b\"]");
        r.origin.pod = Some(Arc::new(PodRef {
            namespace: "default".into(),
            pod: "web-1-a".into(),
            container: "web".into(),
            node: Some(Arc::from("node-1")),
            workload: Some(Workload {
                kind: "Deployment".into(),
                name: "web".into(),
            }),
            labels: Arc::new([("app".to_string(), "web".to_string()), ("tier".into(), "front".into())].into()),
        }));
        r.origin.stream = Some(Stream::Stderr);
        r.origin.position = Some(Position {
            file: 7,
            offset: 1234,
            piece: 2,
        });
        r
    }

    fn round_trip(r: &Record) -> Record {
        let mut buf = Vec::new();
        encode(r, &mut buf);
        assert_eq!(buf.len(), frame_len(r), "frame_len is exact");
        assert_eq!(check(&buf), Frame::Whole(buf.len()));
        decode(Bytes::from(buf).slice(HEADER..)).unwrap()
    }

    #[test]
    fn every_field_survives_a_round_trip() {
        let r = full();
        let back = round_trip(&r);
        assert_eq!(
            (back.facility, back.severity, back.timestamp),
            (r.facility, r.severity, r.timestamp)
        );
        for (a, b) in [
            (&back.hostname, &r.hostname),
            (&back.app_name, &r.app_name),
            (&back.procid, &r.procid),
            (&back.msgid, &r.msgid),
            (&back.structured_data, &r.structured_data),
            (&back.message, &r.message),
        ] {
            assert_eq!(a, b);
        }
        assert_eq!(back.origin, r.origin);
        assert!(back.ack.is_none());
        let bare = Record::new(InputKind::SyslogUdp, "h", "");
        let back = round_trip(&bare);
        assert_eq!(back.origin, bare.origin);
        assert_eq!(back.timestamp, None);
    }

    #[test]
    fn a_short_buffer_is_incomplete_and_a_flipped_bit_is_corrupt() {
        let mut buf = Vec::new();
        encode(&full(), &mut buf);
        for cut in [0, 3, HEADER, buf.len() - 1] {
            assert_eq!(check(&buf[..cut]), Frame::Incomplete, "cut at {cut}");
        }
        let mut bad = buf.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(check(&bad), Frame::Corrupt);
        let mut bad = buf.clone();
        bad[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(check(&bad), Frame::Corrupt);
    }

    #[test]
    fn another_format_version_is_refused() {
        let mut buf = Vec::new();
        encode(&full(), &mut buf);
        buf[HEADER] = 9;
        assert_eq!(
            decode(Bytes::from(buf).slice(HEADER..)).unwrap_err(),
            DecodeError::Version(9)
        );
    }
}
