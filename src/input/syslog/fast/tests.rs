//! The fast path against the general parser: wherever it answers, the same
//! record; and it does answer for what senders write every day.

use bytes::Bytes;
use proptest::prelude::*;

use super::parse;
use crate::input::syslog::parse::parse_general;
use crate::record::InputKind;

#[test]
fn the_everyday_frames_take_the_fast_path() {
    for f in [
        &b"<14>1 2026-12-02T10:00:00Z web.default web - - - hello"[..],
        b"<165>1 2003-10-11T22:14:15.003Z web.default app 42 ID47 - hello  world \r\n",
        b"<13>1 2024-02-29T23:59:59.123456789+05:30 h a 0042 m - caf\xc3\xa9 \xff end",
        b"<0>1 - h - - - -",
        b"<191>1 2024-01-01T00:00:00-01:00 h a p m -\tmsg",
    ] {
        let fast = parse(f, InputKind::SyslogTcp).unwrap_or_else(|| panic!("{:?}", String::from_utf8_lossy(f)));
        let general = parse_general(&Bytes::copy_from_slice(f), InputKind::SyslogTcp).unwrap();
        assert_eq!(fast.fields(), general.fields(), "{:?}", String::from_utf8_lossy(f));
    }
}

#[test]
fn what_it_does_not_check_goes_to_the_general_parser() {
    for f in [
        &b"<14>1 2026-12-02T10:00:00Z web.default web - - [a b=\"c\"] sd"[..],
        b"<13>Nov 22 10:00:01 myhost tag[123]: hello",
        b"<192>1 - h a p m - pri too big",
        b"<14>2 - h a p m - version 2",
        b"<14>1 2024-02-30T00:00:00Z h a p m - no such day",
        b"<14>1 2016-12-31T23:59:60Z h a p m - leap second",
        b"<14>1 - ::1 a p m - colon",
        b"<14>1 - h a p m",
        b"<14>1 - - a p m - no host",
        b"<190>1 2013-03-21T22:52:26.181512+00:00 web.default app web.1 - Hello logplex",
    ] {
        assert!(
            parse(f, InputKind::SyslogTcp).is_none(),
            "{:?}",
            String::from_utf8_lossy(f)
        );
    }
}

fn token() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("-".to_string()),
        "[a-z0-9.:+-]{1,12}",
        "0{0,2}[0-9]{1,10}",
        "[+][0-9]{1,4}",
        "[!-~]{1,8}",
    ]
}

fn timestamp() -> impl Strategy<Value = String> {
    let date = (1990u32..2040, 1u32..=12, 1u32..=31, 0u32..=24, 0u32..=60, 0u32..=61);
    let frac = prop_oneof![Just(String::new()), "[.][0-9]{0,11}"];
    let zone = prop_oneof![
        Just("Z".to_string()),
        Just("z".to_string()),
        "[+-](0[0-9]|1[0-9]|2[0-5]):[0-6][0-9]"
    ];
    prop_oneof![
        1 => Just("-".to_string()),
        8 => (date, frac, zone).prop_map(|((y, mo, d, h, mi, s), f, z)| format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{f}{z}")),
    ]
}

fn frame() -> impl Strategy<Value = Vec<u8>> {
    let head = (0u32..200, prop_oneof![4 => Just("1"), 1 => Just("2")], timestamp());
    let names = (token(), token(), token(), token());
    let sd = prop_oneof![6 => Just("-"), 1 => Just("[x@1 k=\"v\"]"), 1 => Just("-x"), 1 => Just("")];
    let sep = prop_oneof![8 => Just(" "), 1 => Just("  "), 1 => Just("\t"), 1 => Just("")];
    let msg = proptest::collection::vec(any::<u8>(), 0..40);
    let end = prop_oneof![Just(""), Just("\n"), Just("\r\n")];
    (head, names, sd, sep, msg, end).prop_map(|((pri, v, ts), (h, a, p, m), sd, sep, msg, end)| {
        let mut f = format!("<{pri}>{v} {ts} {h} {a} {p} {m} {sd}{sep}").into_bytes();
        f.extend_from_slice(&msg);
        f.extend_from_slice(end.as_bytes());
        f
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]
    #[test]
    fn where_the_fast_path_answers_the_general_parser_gives_the_same_record(f in frame()) {
        if let Some(fast) = parse(&f, InputKind::SyslogTcp) {
            let general = parse_general(&Bytes::copy_from_slice(&f), InputKind::SyslogTcp);
            prop_assert!(general.is_ok(), "general refused {:?}", String::from_utf8_lossy(&f));
            prop_assert_eq!(fast.fields(), general.unwrap().fields(), "{:?}", String::from_utf8_lossy(&f));
        }
    }
}
