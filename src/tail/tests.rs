use bytes::Bytes;

use super::*;
use crate::record::{InputKind, Record};

fn rec(host: &'static str, msg: &str) -> Record {
    Record::new(
        InputKind::SyslogTcp,
        Bytes::from_static(host.as_bytes()),
        Bytes::from(msg.to_string()),
    )
}

#[test]
fn a_subscriber_gets_its_hostnames_records_as_rfc5424_lines() {
    let tails = Tails::default();
    let mut sub = tails
        .subscribe(Bytes::from_static(b"web.default"), Filter::default())
        .unwrap();
    tails.offer(&rec("web.default", "hello"));
    tails.offer(&rec("db.default", "not mine"));
    let line = sub.rx.try_recv().unwrap();
    let line = std::str::from_utf8(&line).unwrap();
    assert!(line.starts_with("<14>1 "), "{line}");
    assert!(line.contains(" web.default "), "{line}");
    assert!(line.ends_with(" hello\n"), "{line}");
    assert!(sub.rx.try_recv().is_err());
}

#[test]
fn a_full_buffer_drops_and_counts_instead_of_waiting() {
    let tails = Tails::default();
    let sub = tails
        .subscribe(Bytes::from_static(b"web.default"), Filter::default())
        .unwrap();
    for i in 0..BUFFER_LINES + 10 {
        tails.offer(&rec("web.default", &format!("line {i}")));
    }
    assert_eq!(sub.dropped.load(Ordering::Relaxed), 10);
}

#[test]
fn sessions_are_capped_and_a_dropped_subscription_frees_its_slot() {
    let tails = Tails::default();
    tails.set_max_sessions(2);
    let a = tails.subscribe(Bytes::from_static(b"a"), Filter::default()).unwrap();
    let _b = tails.subscribe(Bytes::from_static(b"a"), Filter::default()).unwrap();
    assert_eq!(
        tails.subscribe(Bytes::from_static(b"b"), Filter::default()).err(),
        Some(Refused::Full(2))
    );
    drop(a);
    assert_eq!(tails.sessions(), 1);
    assert!(tails.subscribe(Bytes::from_static(b"b"), Filter::default()).is_ok());
}

#[test]
fn closing_every_tail_ends_the_streams_and_later_drops_do_not_undercount() {
    let tails = Tails::default();
    let mut sub = tails.subscribe(Bytes::from_static(b"a"), Filter::default()).unwrap();
    tails.close_all();
    assert!(matches!(
        sub.rx.try_recv(),
        Err(tokio::sync::mpsc::error::TryRecvError::Disconnected)
    ));
    drop(sub);
    assert_eq!(tails.sessions(), 0);
}
