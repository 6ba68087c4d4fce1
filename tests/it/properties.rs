//! Property tests: our RFC 5424 encoder read back by our syslog input parser
//! gives the same fields; octet framing carries any byte string through any
//! chunking; and the route writer, fed random event sequences from several
//! origins, always publishes exactly the union a model of per-origin object
//! sets predicts, without restarting drains that stay routed.

use std::collections::{BTreeMap, BTreeSet};

use bytes::{Bytes, BytesMut};
use logtrain::datasource::{OriginKind, RouteEvent, RouteObject, RouteSpec, RouteUpdate};
use logtrain::drain::{DrainContext, Registry};
use logtrain::encode::framing::octet_counted;
use logtrain::input::syslog::framing::{Decoded, Decoder};
use logtrain::input::syslog::parse::parse;
use logtrain::record::{Facility, InputKind, Record, Severity};
use logtrain::route::Routes;
use logtrain::route::writer::RouteWriter;
use logtrain::time::Timestamp;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

/// A header field as RFC 5424 allows it: PRINTUSASCII, 1..=max characters.
fn header(max: usize) -> impl Strategy<Value = String> {
    // `:` is left out: syslog_loose refuses some header fields made of it (a
    // known limitation of the parser we build on, e.g. a hostname `:`).
    proptest::collection::vec((33u8..=126).prop_filter("no colon", |c| *c != b':'), 1..=max)
        .prop_map(|v| String::from_utf8(v).unwrap())
        .prop_filter("`-` is the nil value", |s| s != "-")
}

/// A well-formed SD-ELEMENT list, or none.
fn structured_data() -> impl Strategy<Value = String> {
    let name = "[a-zA-Z0-9_.@-]{1,12}";
    let value = proptest::collection::vec(prop_oneof![Just('"'), Just('\\'), Just(']'), any::<char>()], 0..12)
        .prop_map(|cs| {
            let mut s = String::new();
            for c in cs {
                if matches!(c, '"' | '\\' | ']') {
                    s.push('\\');
                }
                s.push(c);
            }
            s
        });
    let element = (name, proptest::collection::vec((name, value), 0..3)).prop_map(|(id, params)| {
        let mut s = format!("[{id}");
        for (k, v) in params {
            s.push_str(&format!(" {k}=\"{v}\""));
        }
        s.push(']');
        s
    });
    prop_oneof![
        Just(String::new()),
        proptest::collection::vec(element, 1..3).prop_map(|v| v.concat())
    ]
}

/// A message as an application writes it: any UTF-8 text that does not begin or
/// end with whitespace (the parser trims line endings; syslog parsers drop the
/// space between SD and MSG), possibly with inner newlines.
fn message() -> impl Strategy<Value = String> {
    "[^\\s]([^\r]{0,200}[^\\s])?|"
}

fn record() -> impl Strategy<Value = Record> {
    (
        0u8..24,
        0u8..8,
        0i64..4_102_444_800_000_000, // microseconds up to 2100
        header(255),
        prop::option::of(header(48)),
        prop::option::of(header(128)),
        prop::option::of(header(32)),
        structured_data(),
        message(),
    )
        .prop_map(|(fac, sev, micros, host, app, procid, msgid, sd, msg)| {
            let mut r = Record::new(InputKind::Internal, host, msg);
            r.facility = Facility::new(fac);
            r.severity = Severity::new(sev);
            r.timestamp = Some(Timestamp(micros * 1000));
            r.app_name = app.map(Bytes::from).unwrap_or_default();
            r.procid = procid.map(Bytes::from).unwrap_or_default();
            r.msgid = msgid.map(Bytes::from).unwrap_or_default();
            r.structured_data = Bytes::from(sd);
            r
        })
}

/// Every frame of `wire`, fed to the decoder in pieces of the given sizes.
fn decode_all(wire: &[u8], pieces: &[usize], max: usize) -> Vec<Bytes> {
    let mut dec = Decoder::new(max, max);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = wire;
    let mut sizes = pieces.iter().cycle();
    while !rest.is_empty() {
        let n = (*sizes.next().unwrap()).clamp(1, rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(d) = dec.decode(&mut buf).unwrap() {
            match d {
                Decoded::Frame(f) => out.push(f),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    if let Some(Decoded::Frame(f)) = dec.decode_eof(&mut buf).unwrap() {
        out.push(f);
    }
    out
}

/// `cases` cases, failures kept beside this file in
/// `properties.proptest-regressions` and replayed first. Named explicitly: proptest's
/// default puts them in `tests/proptest-regressions/` once the folder holds a `main.rs`.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("proptest-regressions"))),
        ..ProptestConfig::with_cases(cases)
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn rfc5424_encode_then_parse_gives_the_same_fields(r in record(), pieces in proptest::collection::vec(1usize..64, 1..8)) {
        let mut wire = Vec::new();
        octet_counted(&r, Timestamp(0), &mut wire);
        let frames = decode_all(&wire, &pieces, 1 << 20);
        prop_assert_eq!(frames.len(), 1);
        let back = parse(&frames[0], InputKind::SyslogTcp).unwrap();
        prop_assert_eq!(back.facility.get(), r.facility.get());
        prop_assert_eq!(back.severity.get(), r.severity.get());
        prop_assert_eq!(back.timestamp, r.timestamp);
        prop_assert_eq!(&back.hostname, &r.hostname);
        prop_assert_eq!(&back.app_name, &r.app_name);
        prop_assert_eq!(&back.procid, &r.procid);
        prop_assert_eq!(&back.msgid, &r.msgid);
        prop_assert_eq!(&back.structured_data, &r.structured_data);
        prop_assert_eq!(
            String::from_utf8_lossy(&back.message),
            String::from_utf8_lossy(&r.message)
        );
    }

    #[test]
    fn octet_framing_carries_any_bytes_through_any_chunking(
        payloads in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 1..10),
        pieces in proptest::collection::vec(1usize..100, 1..8),
    ) {
        let mut wire = Vec::new();
        for p in &payloads {
            wire.extend_from_slice(format!("{} ", p.len()).as_bytes());
            wire.extend_from_slice(p);
        }
        let frames = decode_all(&wire, &pieces, 4096);
        let frames: Vec<Vec<u8>> = frames.iter().map(|f| f.to_vec()).collect();
        prop_assert_eq!(frames, payloads);
    }
}

const ORIGINS: [OriginKind; 3] = [OriginKind::Static, OriginKind::Kubernetes, OriginKind::Postgres];
const HOSTS: [&str; 3] = ["a.ns", "b.ns", "c.ns"];

#[derive(Clone, Debug)]
enum Step {
    Apply(usize, usize, Vec<(usize, usize)>),
    Delete(usize, usize),
    Relist(usize, Vec<(usize, Vec<(usize, usize)>)>),
}

fn routes_of() -> impl Strategy<Value = Vec<(usize, usize)>> {
    // Drain 3 is a bad URL: skipped, never routed.
    proptest::collection::vec((0usize..3, 0usize..4), 0..4)
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0usize..3, 0usize..4, routes_of()).prop_map(|(o, id, r)| Step::Apply(o, id, r)),
        2 => (0usize..3, 0usize..4).prop_map(|(o, id)| Step::Delete(o, id)),
        1 => (0usize..3, proptest::collection::vec((0usize..4, routes_of()), 0..4)).prop_map(|(o, objs)| Step::Relist(o, objs)),
    ]
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn the_route_table_is_the_union_of_every_origins_objects(steps in proptest::collection::vec(step(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let drain_urls: Vec<String> = (0..3)
            .map(|d| format!("file://{}", dir.path().join(format!("d{d}.log")).display()))
            .chain(std::iter::once("gopher://bad".to_string()))
            .collect();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let registry = std::sync::Arc::new(Registry::new(DrainContext::standalone()));
            let routes = Routes::new();
            let mut w = RouteWriter::new(registry.clone(), routes.clone(), []);
            // The model: per origin, per object id, the routes it declares.
            let mut model: BTreeMap<usize, BTreeMap<usize, Vec<(usize, usize)>>> = BTreeMap::new();
            let object = |id: usize, r: &[(usize, usize)]| RouteObject {
                id: format!("obj{id}"),
                routes: r.iter().map(|&(h, d)| RouteSpec { hostname: HOSTS[h].into(), drain: drain_urls[d].clone(), tag: None }).collect(),
            };
            for s in &steps {
                let before = routes.snapshot();
                match s {
                    Step::Apply(o, id, r) => {
                        w.apply(RouteUpdate { origin: ORIGINS[*o], event: RouteEvent::Apply(object(*id, r)) });
                        model.entry(*o).or_default().insert(*id, r.clone());
                    }
                    Step::Delete(o, id) => {
                        w.apply(RouteUpdate { origin: ORIGINS[*o], event: RouteEvent::Delete(format!("obj{id}")) });
                        model.entry(*o).or_default().remove(id);
                    }
                    Step::Relist(o, objs) => {
                        w.apply(RouteUpdate { origin: ORIGINS[*o], event: RouteEvent::Init });
                        for (id, r) in objs {
                            w.apply(RouteUpdate { origin: ORIGINS[*o], event: RouteEvent::InitApply(object(*id, r)) });
                        }
                        // Mid-listing the published table is still the old one.
                        w.publish();
                        let mid = routes.snapshot();
                        for h in HOSTS {
                            let ids = |t: &logtrain::route::RouteTable| {
                                t.drains_for(h.as_bytes()).iter().map(|d| d.id().to_string()).collect::<BTreeSet<_>>()
                            };
                            prop_assert_eq!(ids(&mid), ids(&before));
                        }
                        w.apply(RouteUpdate { origin: ORIGINS[*o], event: RouteEvent::InitDone });
                        let listed: BTreeMap<usize, Vec<(usize, usize)>> = objs.iter().cloned().collect();
                        model.insert(*o, listed);
                    }
                }
                w.publish();
                let table = routes.snapshot();
                let mut want_total = 0;
                let mut live: BTreeSet<String> = BTreeSet::new();
                for (hi, h) in HOSTS.iter().enumerate() {
                    // The drains here are files, which annotations may not name:
                    // the Kubernetes origin's routes are all refused.
                    let want: BTreeSet<String> = model
                        .iter()
                        .filter(|(o, _)| ORIGINS[**o] != OriginKind::Kubernetes)
                        .flat_map(|(_, objs)| objs.values())
                        .flatten()
                        .filter(|&&(rh, d)| rh == hi && d < 3)
                        .map(|&(_, d)| drain_urls[d].clone())
                        .collect();
                    let got: BTreeSet<String> = table.drains_for(h.as_bytes()).iter().map(|d| d.id().to_string()).collect();
                    prop_assert_eq!(&got, &want, "host {} after {:?}", h, s);
                    prop_assert_eq!(table.drains_for(h.as_bytes()).len(), want.len(), "no drain twice");
                    want_total += want.len();
                    live.extend(want);
                    // A drain routed before and after was not restarted.
                    for d in table.drains_for(h.as_bytes()) {
                        if let Some(old) = before.drains_for(h.as_bytes()).iter().find(|o| o.id() == d.id()) {
                            prop_assert!(std::sync::Arc::ptr_eq(old, d), "drain {} restarted", d.id());
                        }
                    }
                }
                prop_assert_eq!(table.len(), want_total);
                // Exactly the routed drains are running.
                let running: BTreeSet<String> = registry.drains().iter().map(|d| d.id().to_string()).collect();
                prop_assert_eq!(running, live);
            }
            registry.shutdown(std::time::Duration::from_secs(5)).await;
            Ok(())
        })?;
    }
}
