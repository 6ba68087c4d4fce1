//! Per-record hot functions, measured with criterion (`cargo bench --bench hot`):
//! CRI parsing, RFC 5424 encoding with octet framing, the route lookup, and
//! syslog stream framing plus parsing. Inputs are realistic 200–250 byte lines.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use logtrain::drain::{self, DrainContext, DrainSpec};
use logtrain::encode::framing;
use logtrain::input::file::format;
use logtrain::input::syslog::{framing::Decoder, parse};
use logtrain::record::{InputKind, Record};
use logtrain::route::RouteTable;
use logtrain::time::Timestamp;

const CRI: &[u8] = b"2026-11-22T01:00:00.123456789Z stdout F seq=12345 lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud exercitation ullamco laboris";

const SYSLOG: &[u8] = b"<14>1 2026-11-22T01:00:00.123456Z web.default bench 1 - - seq=12345 lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore magna aliqua ut enim ad minim veniam quis nostrud exercitation ullamco";

fn record() -> Record {
    let line = format::parse_cri(CRI).expect("valid CRI");
    let mut r = Record::new(
        InputKind::File,
        Bytes::from_static(b"web.default"),
        line.msg.into_owned(),
    );
    r.app_name = Bytes::from_static(b"web-7d9f8c6b5-x2x4z");
    r.timestamp = line.time;
    r
}

fn cri(c: &mut Criterion) {
    let mut g = c.benchmark_group("cri");
    g.throughput(Throughput::Elements(1));
    g.bench_function("parse", |b| b.iter(|| format::parse(black_box(CRI))));
    g.bench_function("parse_and_reassemble", |b| {
        let mut r = format::Reassembler::new(256 << 10);
        let mut out = Vec::with_capacity(1);
        let src = Bytes::from_static(CRI);
        b.iter(|| {
            out.clear();
            r.push(format::parse(black_box(&src[..])).expect("valid"), 0, &src, &mut out);
            black_box(&out);
        })
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let rec = record();
    let now = Timestamp::now();
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(64 << 10);
    g.bench_function("rfc5424_octet_counted", |b| {
        b.iter(|| {
            buf.clear();
            framing::octet_counted(black_box(&rec), now, &mut buf);
            black_box(&buf);
        })
    });
    g.bench_function("rfc5424_newline", |b| {
        b.iter(|| {
            buf.clear();
            framing::newline_delimited(black_box(&rec), now, &mut buf);
            black_box(&buf);
        })
    });
    g.finish();
}

fn route(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    let tracker = tokio_util::task::TaskTracker::new();
    let ctx = DrainContext::standalone();
    let spec = DrainSpec::parse("syslog+tcp://127.0.0.1:9").expect("valid url");
    let d = drain::start(&spec, &ctx, &tracker).expect("drain");
    let mut by_host = HashMap::new();
    for i in 0..1000 {
        by_host.insert(Bytes::from(format!("app{i}.default")), Arc::from(vec![d.clone()]));
    }
    let table = RouteTable::new(by_host);
    let mut g = c.benchmark_group("route");
    g.throughput(Throughput::Elements(1));
    g.bench_function("drains_for_1000_hosts", |b| {
        b.iter(|| black_box(table.drains_for(black_box(b"app517.default"))).len())
    });
    g.finish();
}

fn syslog_input(c: &mut Criterion) {
    let mut stream = BytesMut::new();
    for _ in 0..1000 {
        stream.extend_from_slice(format!("{} ", SYSLOG.len()).as_bytes());
        stream.extend_from_slice(SYSLOG);
    }
    let stream = stream.freeze();
    let mut g = c.benchmark_group("syslog_input");
    g.throughput(Throughput::Elements(1000));
    g.bench_function("frame_1000", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&stream[..]);
            let mut dec = Decoder::new(64 << 10, 1 << 20);
            let mut n = 0;
            while let Ok(Some(_)) = dec.decode(&mut buf) {
                n += 1;
            }
            n
        })
    });
    g.bench_function("frame_and_parse_1000", |b| {
        b.iter(|| {
            let mut buf = BytesMut::from(&stream[..]);
            let mut dec = Decoder::new(64 << 10, 1 << 20);
            let mut n = 0;
            while let Ok(Some(logtrain::input::syslog::framing::Decoded::Frame(f))) = dec.decode(&mut buf) {
                n += parse::parse(&f, InputKind::SyslogTcp)
                    .map(|r| r.message.len())
                    .unwrap_or(0);
            }
            n
        })
    });
    g.finish();
}

criterion_group!(benches, cri, encode, route, syslog_input);
criterion_main!(benches);
