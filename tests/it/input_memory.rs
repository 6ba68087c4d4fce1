//! The input memory budget (`INPUT_MEMORY_BYTES`) under attack and under load:
//! four 4 MiB gRPC messages of two million empty access-log entries each, sent
//! at once to the real binary, stay under 100 MB of peak RSS; with a small
//! budget, a TCP sender of large frames is slowed but loses nothing, an HTTP
//! POST is answered 503 with `Retry-After` (its body, or the records it expands
//! into, do not fit), and UDP datagrams are dropped and counted — each only
//! while the budget is spent.

use crate::support;

use std::net::SocketAddr;
use std::time::Duration;

use logtrain::config::Config;
use logtrain::input::envoy::proto::envoy::data::accesslog::v3::HttpAccessLogEntry;
use logtrain::input::envoy::proto::envoy::service::accesslog::v3::StreamAccessLogsMessage;
use logtrain::input::envoy::proto::envoy::service::accesslog::v3::stream_access_logs_message::LogEntries;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint};
use support::envoy::{ALS_PATH, frame, grpc_call};
use support::faults::{Binary, http_get};
use support::inputs::{Counts, counter, serial, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The gRPC message size limit of the Envoy input.
const MAX_MESSAGE: usize = 4 << 20;

/// A `StreamAccessLogsMessage` of `n` default HTTP entries, encoded with prost
/// one entry at a time (2 bytes each on the wire), without building `n` structs.
fn empty_entries(n: usize) -> Vec<u8> {
    let mut entry = Vec::new();
    prost::encoding::message::encode(1, &HttpAccessLogEntry::default(), &mut entry);
    let mut batch = Vec::with_capacity(n * entry.len());
    for _ in 0..n {
        batch.extend_from_slice(&entry);
    }
    let mut msg = Vec::with_capacity(batch.len() + 8);
    encode_key(2, WireType::LengthDelimited, &mut msg);
    encode_varint(batch.len() as u64, &mut msg);
    msg.extend_from_slice(&batch);
    msg
}

#[test]
fn the_attack_message_is_what_prost_makes_of_default_entries() {
    let small = empty_entries(3);
    let want = StreamAccessLogsMessage {
        identifier: None,
        log_entries: Some(LogEntries::HttpLogs(
            logtrain::input::envoy::proto::envoy::service::accesslog::v3::stream_access_logs_message::HttpAccessLogEntries {
                log_entry: vec![HttpAccessLogEntry::default(); 3],
            },
        )),
    };
    assert_eq!(small, want.encode_to_vec());
    assert_eq!(small.len(), 2 + 3 * 2);
}

/// Four 4 MiB messages holding two million empty entries each, sent at once
/// to the binary's Envoy port. Decoded whole, each was about 1.8 GB (the four
/// took the process to 7.2 GB); walked entry by entry, they cost their bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_messages_of_two_million_empty_entries_stay_under_100_mb() {
    let dir = tempfile::tempdir().unwrap();
    let envoy_port = support::free_port();
    let bin = Binary::start(
        dir.path(),
        "routes: []\n",
        &[("ENVOY", "true"), ("ENVOY_PORT", &envoy_port.to_string())],
    );
    let addr: SocketAddr = ([127, 0, 0, 1], envoy_port).into();
    let n = (MAX_MESSAGE - 8) / 2;
    let msg = empty_entries(n);
    assert!(
        msg.len() <= MAX_MESSAGE && n > 2_000_000,
        "{} bytes, {n} entries",
        msg.len()
    );
    let body = frame(&msg);
    drop(msg);
    let at_rest = bin.status_kib("VmHWM");

    let calls: Vec<_> = (0..4)
        .map(|_| tokio::spawn(grpc_call(addr, ALS_PATH, body.clone())))
        .collect();
    for c in calls {
        let reply = c.await.unwrap();
        assert_eq!(reply.grpc_status, Some(0), "{reply:?}");
    }
    let peak = bin.status_kib("VmHWM");
    eprintln!("peak RSS {peak} KiB ({at_rest} KiB before the attack)");
    assert!(peak < 100_000, "peak RSS {peak} KiB");
    assert_eq!(http_get(bin.http, "/healthz"), "ok\n");
    // Every entry was looked at (none names a service, so none is forwarded).
    assert_eq!(bin.metric("logtrain_envoy_unnamed_entries_total"), 4 * n as u64);
    assert_eq!(bin.metric("logtrain_input_memory_bytes"), 0, "all given back");
}

fn small_budget(extra: Config) -> Config {
    Config {
        syslog_tcp: true,
        syslog_max_line: 64 << 10,
        syslog_max_frame: 64 << 10,
        // The smallest budget that holds one frame and two reads.
        input_memory_bytes: 96 << 10,
        ..extra
    }
}

fn memory_held() -> i64 {
    logtrain::telemetry::gauge("logtrain_input_memory_bytes", &[]).get()
}

fn exhausted(input: &str) -> u64 {
    counter("logtrain_input_memory_exhausted_total", input)
}

/// An octet-counted frame of exactly `len` bytes with message `tag` padded by dots.
fn frame_of(len: usize, tag: &str) -> Vec<u8> {
    let mut f = format!("<14>1 - host.a app - - - {tag} ").into_bytes();
    assert!(f.len() < len);
    f.resize(len, b'.');
    let mut out = format!("{len} ").into_bytes();
    out.extend_from_slice(&f);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_sender_of_large_frames_is_slowed_but_loses_nothing() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let mut lt = start(dir.path(), small_budget(Config::default()), &["host.a"]).await;
    let addr = lt.at.syslog_tcp.unwrap();
    let (before, spent) = (Counts::of("syslog_tcp"), exhausted("syslog_tcp"));
    // Four senders at once, 40 frames of 30 KiB each: the budget holds about
    // three such frames, so they take turns. Each first sends the start of its
    // first frame and stops there: an announced frame is charged whole, so the
    // four hold more than the budget and one of them must wait (whatever the
    // machine's speed); then they all send the rest.
    let (senders, frames, len) = (4, 40, 30 << 10);
    let (go, ready) = tokio::sync::watch::channel(false);
    let tasks: Vec<_> = (0..senders)
        .map(|s| {
            let mut ready = ready.clone();
            tokio::spawn(async move {
                let mut c = TcpStream::connect(addr).await.unwrap();
                let first = frame_of(len, &format!("s{s}-0"));
                c.write_all(&first[..1024]).await.unwrap();
                ready.wait_for(|go| *go).await.unwrap();
                c.write_all(&first[1024..]).await.unwrap();
                for i in 1..frames {
                    c.write_all(&frame_of(len, &format!("s{s}-{i}"))).await.unwrap();
                }
                c.shutdown().await.unwrap();
            })
        })
        .collect();
    support::wait_until("a sender waiting for the budget", Duration::from_secs(10), || {
        exhausted("syslog_tcp") > spent
    })
    .await;
    go.send_replace(true);
    for t in tasks {
        t.await.unwrap();
    }
    let lines = lt.records(senders * frames).await;
    let mut tags: Vec<String> = lines
        .iter()
        .map(|l| {
            assert_eq!(l.msg.len(), len - "<14>1 - host.a app - - - ".len());
            l.msg_str().split(' ').next().unwrap().to_string()
        })
        .collect();
    tags.sort();
    tags.dedup();
    assert_eq!(tags.len(), senders * frames, "each frame once");
    let d = Counts::since("syslog_tcp", before);
    assert_eq!(
        (d.records, d.parse_errors, d.dropped),
        ((senders * frames) as u64, 0, 0)
    );
    assert!(exhausted("syslog_tcp") > spent, "the budget was spent: reading paused");
    support::wait_until("the budget given back", Duration::from_secs(5), || memory_held() == 0).await;
    lt.stop().await;
}

/// Holds about 60 KiB of the budget: a TCP connection in the middle of an
/// announced 60 KiB frame. Finish it with [`finish_frame`].
async fn hold_budget(addr: SocketAddr) -> TcpStream {
    let mut c = TcpStream::connect(addr).await.unwrap();
    let f = frame_of(60 << 10, "held");
    c.write_all(&f[..100]).await.unwrap();
    support::wait_until("the frame's memory held", Duration::from_secs(5), || {
        memory_held() >= 60 << 10
    })
    .await;
    c
}

async fn finish_frame(mut c: TcpStream) {
    c.write_all(&frame_of(60 << 10, "held")[100..]).await.unwrap();
    c.shutdown().await.unwrap();
}

/// A POST over a fresh connection; the whole answer.
async fn post(addr: SocketAddr, path: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_post_gets_503_with_retry_after_while_the_budget_is_spent() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let config = small_budget(Config {
        http_events: true,
        ..crate::support::config()
    });
    let mut lt = start(dir.path(), config, &["host.a"]).await;
    let (tcp, http) = (lt.at.syslog_tcp.unwrap(), lt.at.http);
    let spent = exhausted("http_events");
    let held = hold_budget(tcp).await;

    // A 40 KiB body does not fit in what is left.
    let mut big = br#"{"hostname":"host.a","message":"big"}"#.to_vec();
    big.resize(40 << 10, b' ');
    let answer = post(http, "/events", &big).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("retry-after: 1\r\n"), "{answer}");
    assert_eq!(exhausted("http_events") - spent, 1);

    // Once the frame is queued its bytes come back and the same POST goes through.
    finish_frame(held).await;
    support::wait_until("the frame's memory given back", Duration::from_secs(5), || {
        memory_held() < 32 << 10
    })
    .await;
    let answer = post(http, "/events", &big).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    // A small body that expands: 2,000 events of 22 bytes are 44 KB on the
    // wire and far more decoded; they are charged as they are decoded.
    let events = format!("[{}]", vec![r#"{"hostname":"host.a"}"#; 2000].join(","));
    assert!(events.len() < 48 << 10);
    let answer = post(http, "/events", events.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert_eq!(exhausted("http_events") - spent, 2);
    let lines = lt.records(2).await;
    assert!(lines[0].msg_str().starts_with("held ."));
    assert_eq!(lines[1].msg_str(), "big");
    support::wait_until("the budget given back", Duration::from_secs(5), || memory_held() == 0).await;
    lt.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_datagrams_are_dropped_and_counted_while_the_budget_is_spent() {
    let _serial = serial().await;
    let dir = tempfile::tempdir().unwrap();
    let config = small_budget(Config {
        syslog_udp: true,
        ..crate::support::config()
    });
    let mut lt = start(dir.path(), config, &["host.a"]).await;
    let (tcp, udp) = (lt.at.syslog_tcp.unwrap(), lt.at.syslog_udp.unwrap());
    let before = Counts::of("syslog_udp");
    let spent = exhausted("syslog_udp");
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let datagram = |len: usize, tag: &str| {
        let mut d = format!("<14>1 - host.a app - - - {tag} ").into_bytes();
        d.resize(len, b'.');
        d
    };
    let held = hold_budget(tcp).await;
    // About 36 KiB are left: 40 KB datagrams do not fit, small ones do.
    for i in 0..5 {
        sock.send_to(&datagram(40_000, &format!("big{i}")), udp).unwrap();
    }
    support::wait_until("5 datagrams dropped and counted", Duration::from_secs(5), || {
        exhausted("syslog_udp") - spent == 5
    })
    .await;
    sock.send_to(&datagram(100, "small"), udp).unwrap();
    assert_eq!(lt.records(1).await[0].msg_str().split(' ').next(), Some("small"));

    finish_frame(held).await;
    support::wait_until("the frame's memory given back", Duration::from_secs(5), || {
        memory_held() < 32 << 10
    })
    .await;
    sock.send_to(&datagram(40_000, "after"), udp).unwrap();
    let lines = lt.records(3).await;
    assert!(lines.iter().any(|l| l.msg_str().starts_with("after ")));
    let d = Counts::since("syslog_udp", before);
    assert_eq!(d.records, 2, "the dropped ones never became records");
    lt.stop().await;
}
