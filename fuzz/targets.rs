//! The bodies of the fuzz targets, shared by the libFuzzer crate
//! (`fuzz/fuzz_targets/*.rs`, run by `fuzz/run`) and by the stable-Rust
//! randomized driver `tests/it/fuzz_parsers.rs`. Each takes arbitrary bytes, feeds
//! them to one parser of logtrain, and checks what must hold for any input: no
//! panic, and every output within the parser's stated bounds.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use logtrain::input::syslog::framing::{Decoded, Decoder};
use logtrain::record::InputKind;

/// Limits small enough that fuzzing reaches them.
const MAX_LINE: usize = 512;
const MAX_FRAME: usize = 2048;

/// A target: checks one input.
pub type Target = fn(&[u8]);

/// Every target, by name (the names of `fuzz/fuzz_targets/*.rs`).
pub const ALL: &[(&str, Target)] = &[
    ("syslog_framing", syslog_framing),
    ("syslog_parse", syslog_parse),
    ("container_line", container_line),
    ("logplex_body", logplex_body),
    ("events_json", events_json),
    ("drain_url", drain_url),
    ("annotations", annotations),
    ("pg_notify", pg_notify),
    ("envoy_message", envoy_message),
];

/// Octet-counted and newline-delimited framing, fed in pieces whose sizes the
/// first byte chooses: frames never exceed their limits.
pub fn syslog_framing(data: &[u8]) {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut dec = Decoder::new(MAX_LINE, MAX_FRAME);
    let mut buf = BytesMut::new();
    let check = |d: Decoded| match d {
        Decoded::Frame(f) => assert!(f.len() <= MAX_FRAME.max(MAX_LINE), "frame of {} bytes", f.len()),
        Decoded::Truncated(f) => assert!(f.len() <= MAX_LINE, "truncated to {} bytes", f.len()),
        Decoded::Skipped { declared } => assert!(declared > MAX_FRAME as u64),
    };
    for piece in rest.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(d)) => check(d),
                Ok(None) => break,
                Err(_) => return,
            }
        }
        // What is buffered waiting for more never exceeds a frame plus a count.
        assert!(
            buf.len() <= MAX_FRAME.max(MAX_LINE) + 64,
            "{} bytes buffered",
            buf.len()
        );
    }
    if let Ok(Some(d)) = dec.decode_eof(&mut buf) {
        check(d)
    }
}

/// RFC 5424 and RFC 3164 parsing of one frame; where the fast path answers,
/// the general parser gives the same record.
pub fn syslog_parse(data: &[u8]) {
    let frame = Bytes::copy_from_slice(data);
    if let Some(fast) = logtrain::input::syslog::fast::parse(data, InputKind::SyslogTcp) {
        let general = logtrain::input::syslog::parse::parse_general(&frame, InputKind::SyslogTcp)
            .expect("the general parser accepts what the fast path accepts");
        assert_eq!(fast.fields(), general.fields(), "{:?}", String::from_utf8_lossy(data));
    }
    if let Ok(r) = logtrain::input::syslog::parse::parse(&frame, InputKind::SyslogTcp) {
        assert!(r.severity.get() <= 7 && r.facility.get() <= 23);
        // Whatever was parsed encodes again.
        let mut out = Vec::new();
        logtrain::encode::rfc5424::encode(&r, logtrain::time::Timestamp(0), &mut out);
    }
}

/// CRI and docker-json lines, reassembled with a small record limit: records
/// stay within it and no two claim the same position (first line, piece).
pub fn container_line(data: &[u8]) {
    use logtrain::input::file::format::{Reassembler, parse};
    let max = 256;
    let mut re = Reassembler::new(max);
    let mut out = Vec::new();
    let src = bytes::Bytes::copy_from_slice(data);
    for line in src.split(|&c| c == b'\n') {
        if let Some(l) = parse(line) {
            let start = line.as_ptr() as u64 - src.as_ptr() as u64;
            re.push(l, start, &src, &mut out);
        }
        assert!(re.pending_bytes() <= max, "{} bytes pending", re.pending_bytes());
    }
    re.flush(&mut out);
    for a in &out {
        assert!(a.msg.len() <= max, "record of {} bytes", a.msg.len());
    }
    let mut positions: Vec<(u64, u32)> = out.iter().map(|a| (a.start, a.piece)).collect();
    positions.sort_unstable();
    positions.dedup();
    assert_eq!(positions.len(), out.len(), "two records at one position");
}

/// A `POST /syslog` body (logplex octet framing or lines).
pub fn logplex_body(data: &[u8]) {
    if let Ok(records) = logtrain::input::http::syslog_body(Bytes::copy_from_slice(data), MAX_LINE, MAX_FRAME) {
        assert!(records.len() <= data.len());
    }
}

/// A `POST /events` body.
pub fn events_json(data: &[u8]) {
    if let Ok(records) = logtrain::input::http::events::parse(data) {
        for r in records {
            assert!(!r.hostname.is_empty(), "events need a hostname");
        }
    }
}

/// Drain URLs: parsed or refused, and the id never carries the password.
pub fn drain_url(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let masked = logtrain::drain::url::mask_credentials(text);
    if let Ok(spec) = logtrain::drain::DrainSpec::parse(text) {
        let _ = format!("{spec:?} {spec} {masked}");
        if let Ok(u) = url::Url::parse(text)
            && let Some(pw) = u.password()
            && pw.len() >= 8
            && !u.host_str().unwrap_or("").contains(pw)
            && !u.path().contains(pw)
            && !u.query().unwrap_or("").contains(pw)
        {
            assert!(!spec.id.contains(pw), "id {} reveals the password", spec.id);
        }
    }
}

/// The drains, hostname and tag annotations and Akkeris naming.
pub fn annotations(data: &[u8]) {
    use logtrain::datasource::kubernetes::annotations::{Naming, parse_drains};
    let text = String::from_utf8_lossy(data);
    let drains = parse_drains(&text);
    for d in &drains {
        assert!(!d.is_empty() && d.trim() == d);
    }
    let mut mid = text.len() / 2;
    while !text.is_char_boundary(mid) {
        mid -= 1;
    }
    let (a, b) = text.split_at(mid);
    for akkeris in [false, true] {
        let n = Naming { akkeris };
        let _ = n.join(a, b);
        let _ = n.pod_tag(a, Some(b));
        let _ = n.pod_tag(b, None);
    }
}

/// Postgres NOTIFY payloads on each drains channel.
pub fn pg_notify(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for channel in ["drains.insert", "drains.update", "drains.delete", "other"] {
        let _ = logtrain::datasource::postgres::events_for(channel, &text);
    }
}

/// Envoy access-log messages as protobuf, walked and converted entry by entry
/// as the input does.
pub fn envoy_message(data: &[u8]) {
    use logtrain::input::envoy::entry::{Naming, http, tcp};
    use logtrain::input::envoy::wire::{self, HttpAccessLogEntry, Identifier, Part, TcpAccessLogEntry};
    use prost::Message;
    let now = logtrain::time::Timestamp(0);
    let naming = Naming { akkeris: false };
    let _ = wire::walk(data, |part| {
        match part {
            Part::Identifier(b) => {
                let _ = Identifier::decode(b);
            }
            Part::Http(b) => {
                if let Ok(e) = HttpAccessLogEntry::decode(b) {
                    let _ = http(naming, &e, now);
                }
            }
            Part::Tcp(b) => {
                if let Ok(e) = TcpAccessLogEntry::decode(b) {
                    let _ = tcp(naming, &e, now);
                }
            }
        }
        std::ops::ControlFlow::Continue(())
    });
}
