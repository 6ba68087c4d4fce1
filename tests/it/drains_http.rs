//! HTTP drains against a real HTTP/1.1 server written in the test: logplex
//! framing and headers, NDJSON with gzip and the 415 fallback, retries on 5xx
//! and 429 (`Retry-After`), no retry on 400, batches halved on 413, a hanging
//! receiver, TLS trust, logplex over HTTPS.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use logtrain::ack::{self, BatchStatus};
use logtrain::drain::driver::{Sink, SinkError};
use logtrain::drain::http::{JsonHttpSink, SyslogHttpSink};
use logtrain::drain::tls::TlsConnector;
use logtrain::drain::{Drain, DrainSpec};
use logtrain::record::{Facility, InputKind, Record, Severity};
use logtrain::time::Timestamp;
use serde_json::Value;
use support::drains::{ctx_with, metric, start};
use support::http_recorder::{Recorded, Recorder, Reply};
use support::wait_until;
use tokio_util::task::TaskTracker;

const LIMIT: Duration = Duration::from_secs(15);

fn id_of(url: &str) -> String {
    DrainSpec::parse(url).unwrap().id
}

fn record(host: &str, i: usize) -> Record {
    let mut r = Record::new(InputKind::Internal, host.to_string(), format!("line {i} ü"));
    r.facility = Facility::LOCAL0;
    r.severity = Severity::new((i % 8) as u8);
    r.timestamp = Some(Timestamp(1_795_000_000_000_000_000 + i as i64 * 1_000));
    r.app_name = Bytes::from_static(b"web-1");
    r.procid = Bytes::from(format!("{}", 100 + i));
    r.msgid = Bytes::from(format!("ID{}", i % 3));
    r.structured_data = Bytes::from(format!("[ex@32473 i=\"{i}\" q=\"a\\\"b\"]"));
    r
}

fn offer(d: &Drain, r: Record) {
    assert!(d.offer(&Arc::new(r)));
}

/// Splits an octet-counted body into its frames, checking every length.
fn octet_frames(body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let sp = rest.iter().position(|&c| c == b' ').expect("frame length");
        let len: usize = std::str::from_utf8(&rest[..sp]).unwrap().parse().unwrap();
        let frame = &rest[sp + 1..sp + 1 + len];
        out.push(String::from_utf8(frame.to_vec()).unwrap());
        rest = &rest[sp + 1 + len..];
    }
    out
}

/// The fields of an RFC 5424 message: pri, version, timestamp, host, app, procid, msgid, sd, msg.
fn fields(m: &str) -> Vec<String> {
    let parts: Vec<&str> = m.splitn(7, ' ').collect();
    let (pri, ver) = parts[0][1..].split_once('>').unwrap();
    let rest = parts[6];
    let (sd, msg) = if let Some(r) = rest.strip_prefix("- ") {
        ("-".to_string(), r.to_string())
    } else if rest == "-" {
        ("-".to_string(), String::new())
    } else {
        // Find the end of the SD elements: a `]` outside a quoted value.
        let b = rest.as_bytes();
        let (mut i, mut quoted) = (0, false);
        loop {
            match b[i] {
                b'\\' if quoted => i += 1,
                b'"' => quoted = !quoted,
                b']' if !quoted && b.get(i + 1) != Some(&b'[') => break,
                _ => {}
            }
            i += 1;
        }
        (rest[..=i].to_string(), rest.get(i + 2..).unwrap_or("").to_string())
    };
    vec![
        pri.into(),
        ver.into(),
        parts[1].into(),
        parts[2].into(),
        parts[3].into(),
        parts[4].into(),
        parts[5].into(),
        sd,
        msg,
    ]
}

fn assert_rfc5424(m: &str, host: &str, i: usize) {
    let want_ts = record(host, i).timestamp.unwrap().to_rfc3339();
    let want = vec![
        (128 + i % 8).to_string(),
        "1".into(),
        want_ts,
        host.into(),
        "web-1".into(),
        (100 + i).to_string(),
        format!("ID{}", i % 3),
        format!("[ex@32473 i=\"{i}\" q=\"a\\\"b\"]"),
        format!("line {i} ü"),
    ];
    assert_eq!(fields(m), want, "{m}");
}

fn assert_json(v: &Value, host: &str, i: usize) {
    let want = record(host, i);
    assert_eq!(v["@timestamp"], want.timestamp.unwrap().to_rfc3339(), "{v}");
    assert_eq!(v["hostname"], host);
    assert_eq!(v["tag"], "web-1");
    assert_eq!(v["message"], format!("line {i} ü"));
    assert_eq!(v["severity"], i % 8);
    assert_eq!(v["facility"], 16);
    assert_eq!(v["procid"], (100 + i).to_string());
    assert_eq!(v["msgid"], format!("ID{}", i % 3));
    assert_eq!(v["structured_data"], format!("[ex@32473 i=\"{i}\" q=\"a\\\"b\"]"));
}

fn ndjson(r: &Recorded) -> Vec<Value> {
    assert!(r.body.ends_with(b"\n"));
    r.body
        .split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

async fn stop(ds: &[&Arc<Drain>], tracker: TaskTracker) {
    for d in ds {
        d.close();
    }
    tracker.close();
    tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .expect("drains flush");
}

/// Sends records `0..first` for `host` through a drain at `url`, waits for the
/// recorder to take them as one request, then `first..total` as a second one.
async fn two_batches(url: &str, rec: &Recorder, host: &str, first: usize, total: usize) -> Arc<Drain> {
    let tracker = TaskTracker::new();
    let d = start(url, &ctx_with(|_| {}), &tracker);
    for i in 0..first {
        offer(&d, record(host, i));
    }
    wait_until("the first batch", LIMIT, || rec.accepted().len() == 1).await;
    for i in first..total {
        offer(&d, record(host, i));
    }
    wait_until("the second batch", LIMIT, || rec.accepted().len() == 2).await;
    stop(&[&d], tracker).await;
    d
}

#[tokio::test]
async fn logplex_batches_carry_frames_and_headers_on_one_keep_alive_connection() {
    let rec = Recorder::start().await;
    let url = format!("syslog+http://user:pa%40ss@127.0.0.1:{}/logs", rec.port);
    let d = two_batches(&url, &rec, "web.default", 250, 300).await;

    let reqs = rec.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(rec.connections(), 1, "batches reuse one keep-alive connection");
    let mut frames = Vec::new();
    let mut ids = Vec::new();
    for (r, count) in reqs.iter().zip([250, 50]) {
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/logs");
        assert_eq!(r.header("content-type"), Some("application/logplex-1"));
        assert_eq!(r.header("logplex-msg-count"), Some(count.to_string().as_str()));
        assert_eq!(r.header("logplex-drain-token"), Some(id_of(&url).as_str()));
        let auth = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("user:pa@ss")
        );
        assert_eq!(r.header("authorization"), Some(auth.as_str()));
        assert!(r.header("user-agent").unwrap().starts_with("logtrain/"));
        assert_eq!(r.header("content-length"), Some(r.body.len().to_string().as_str()));
        let id = r.header("logplex-frame-id").unwrap().to_string();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
        ids.push(id);
        let f = octet_frames(&r.body);
        assert_eq!(f.len(), count);
        frames.extend(f);
    }
    assert_ne!(ids[0], ids[1]);
    assert_eq!(frames.len(), 300);
    for (i, m) in frames.iter().enumerate() {
        assert_rfc5424(m, "web.default", i);
    }
    assert_eq!(d.sent_total(), 300);
}

#[tokio::test]
async fn newline_framing_posts_application_syslog_lines() {
    let rec = Recorder::start().await;
    let url = format!("syslog+http://127.0.0.1:{}/?framing=newline", rec.port);
    let tracker = TaskTracker::new();
    let d = start(&url, &ctx_with(|_| {}), &tracker);
    for i in 0..20 {
        offer(&d, record("nl.default", i));
    }
    offer(&d, Record::new(InputKind::Internal, "nl.default", "a\nb"));
    wait_until("one batch", LIMIT, || rec.accepted().len() == 1).await;
    stop(&[&d], tracker).await;
    let r = &rec.requests()[0];
    assert_eq!(r.path, "/");
    assert_eq!(r.header("content-type"), Some("application/syslog"));
    assert!(r.header("logplex-msg-count").is_none());
    assert!(r.header("authorization").is_none());
    let text = String::from_utf8(r.body.clone()).unwrap();
    assert!(text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 21);
    for (i, l) in lines.iter().take(20).enumerate() {
        assert_rfc5424(l, "nl.default", i);
    }
    assert!(lines[20].ends_with(" nl.default - - - - a\\nb"), "{}", lines[20]);
}

#[tokio::test]
async fn json_is_ndjson_gzipped_until_the_receiver_answers_415() {
    let rec = Recorder::start().await;
    let url = format!("http://svc:tok3n@127.0.0.1:{}/ingest?auth=bearer&source=k8s", rec.port);
    let tracker = TaskTracker::new();
    let d = start(&url, &ctx_with(|_| {}), &tracker);
    for i in 0..20 {
        offer(&d, record("json.default", i));
    }
    // Bytes that are not UTF-8 travel losslessly in message_base64.
    offer(
        &d,
        Record::new(InputKind::Internal, "json.default", &b"raw \xff\xfe end"[..]),
    );
    wait_until("the gzipped batch", LIMIT, || rec.accepted().len() == 1).await;

    rec.refuse_gzip();
    for i in 20..30 {
        offer(&d, record("json.default", i));
    }
    wait_until("the batch sent again uncompressed", LIMIT, || rec.accepted().len() == 2).await;
    for i in 30..35 {
        offer(&d, record("json.default", i));
    }
    wait_until("a third batch", LIMIT, || rec.accepted().len() == 3).await;
    stop(&[&d], tracker).await;

    let reqs = rec.requests();
    let statuses: Vec<u16> = reqs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 415, 200, 200], "one 415, then uncompressed for good");
    let encodings: Vec<Option<&str>> = reqs.iter().map(|r| r.header("content-encoding")).collect();
    assert_eq!(encodings, [Some("gzip"), Some("gzip"), None, None]);
    for r in &reqs {
        assert_eq!(r.path, "/ingest?source=k8s");
        assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
        assert_eq!(r.header("authorization"), Some("Bearer tok3n"));
    }
    assert_eq!(reqs[1].body, reqs[2].body, "the refused batch is sent again as is");
    let docs: Vec<Value> = rec.accepted().iter().flat_map(ndjson).collect();
    assert_eq!(docs.len(), 36, "every record once");
    let (odd, rest): (Vec<&Value>, Vec<&Value>) = docs.iter().partition(|v| v.get("message_base64").is_some());
    assert_eq!(odd.len(), 1);
    assert_eq!(odd[0]["message"], "raw \u{FFFD}\u{FFFD} end");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(odd[0]["message_base64"].as_str().unwrap())
        .unwrap();
    assert_eq!(raw, b"raw \xff\xfe end");
    for (i, v) in rest.iter().enumerate() {
        assert_json(v, "json.default", i);
    }
    assert_eq!(d.sent_total(), 36);
    assert_eq!(metric("logtrain_drain_rejected_total", &id_of(&url)), 0);
}

#[tokio::test]
async fn server_errors_are_retried_with_the_same_frame_id_and_no_duplicates() {
    let rec = Recorder::start().await;
    rec.script([Reply::Status(500), Reply::Status(502), Reply::Status(503)]);
    let url = format!("syslog+http://127.0.0.1:{}/retry", rec.port);
    let tracker = TaskTracker::new();
    let d = start(&url, &ctx_with(|_| {}), &tracker);
    for i in 0..40 {
        offer(&d, record("retry.default", i));
    }
    wait_until("delivery after three failures", LIMIT, || rec.accepted().len() == 1).await;
    // A finished drain's series are gone: read them before stopping it.
    let id = id_of(&url);
    let (retries, rejected) = (
        metric("logtrain_drain_retries_total", &id),
        metric("logtrain_drain_rejected_total", &id),
    );
    stop(&[&d], tracker).await;

    let reqs = rec.requests();
    assert_eq!(reqs.iter().map(|r| r.status).collect::<Vec<_>>(), [500, 502, 503, 200]);
    let frame = reqs[0].header("logplex-frame-id").unwrap();
    for r in &reqs {
        assert_eq!(
            r.header("logplex-frame-id"),
            Some(frame),
            "a retried batch keeps its frame id"
        );
        assert_eq!(r.body, reqs[0].body);
    }
    assert_eq!(rec.connections(), 1, "5xx answers keep the connection");
    let frames = octet_frames(&reqs[3].body);
    assert_eq!(frames.len(), 40);
    for (i, m) in frames.iter().enumerate() {
        assert_rfc5424(m, "retry.default", i);
    }
    assert_eq!(d.sent_total(), 40);
    assert_eq!(retries, 3);
    assert_eq!(rejected, 0);
}

#[tokio::test]
async fn retry_after_of_a_429_is_honoured() {
    let rec = Recorder::start().await;
    rec.script([Reply::TooMany { retry_after: 1 }]);
    let url = format!("http://127.0.0.1:{}/slow-down", rec.port);
    let tracker = TaskTracker::new();
    let d = start(&url, &ctx_with(|_| {}), &tracker);
    for i in 0..5 {
        offer(&d, record("ra.default", i));
    }
    wait_until("delivery after the 429", LIMIT, || rec.accepted().len() == 1).await;
    stop(&[&d], tracker).await;
    let reqs = rec.requests();
    assert_eq!(reqs.iter().map(|r| r.status).collect::<Vec<_>>(), [429, 200]);
    let waited = reqs[1].at.duration_since(reqs[0].at);
    // The backoff alone would wait at most 400 ms here.
    assert!(waited >= Duration::from_millis(950), "retried after {waited:?}");
    assert_eq!(ndjson(&reqs[1]).len(), 5);
    assert_eq!(d.sent_total(), 5);
}

#[tokio::test]
async fn a_400_is_not_retried_and_is_counted_as_rejected() {
    let rec = Recorder::start().await;
    rec.script([Reply::Status(400)]);
    let url = format!("http://127.0.0.1:{}/strict", rec.port);
    let id = id_of(&url);
    let tracker = TaskTracker::new();
    let d = start(&url, &ctx_with(|_| {}), &tracker);
    for i in 0..7 {
        offer(&d, record("strict.default", i));
    }
    wait_until("the refusal to be counted", LIMIT, || {
        metric("logtrain_drain_rejected_total", &id) == 7
    })
    .await;
    for i in 7..10 {
        offer(&d, record("strict.default", i));
    }
    wait_until("the next batch", LIMIT, || rec.accepted().len() == 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A finished drain's series are gone: read them before stopping it.
    let (rejected, retries) = (
        metric("logtrain_drain_rejected_total", &id),
        metric("logtrain_drain_retries_total", &id),
    );
    stop(&[&d], tracker).await;
    let reqs = rec.requests();
    assert_eq!(
        reqs.iter().map(|r| r.status).collect::<Vec<_>>(),
        [400, 200],
        "no retry of the 400"
    );
    assert_eq!(ndjson(&reqs[0]).len(), 7);
    let later = ndjson(&reqs[1]);
    assert_eq!(later.len(), 3);
    assert_eq!(later[0]["message"], "line 7 ü");
    assert_eq!(d.sent_total(), 3);
    assert_eq!(rejected, 7);
    assert_eq!(retries, 0);
}

#[tokio::test]
async fn a_413_halves_the_batch_until_it_fits_and_only_a_record_too_large_alone_is_refused() {
    let logs = support::captured_logs();
    let rec = Recorder::start().await;
    // About 15 of these records fit in a body; record 17 does not fit alone.
    rec.refuse_larger_than(2000);
    let url = format!("syslog+http://127.0.0.1:{}/small", rec.port);
    let id = id_of(&url);
    let tracker = TaskTracker::new();
    let d = start(&url, &ctx_with(|_| {}), &tracker);
    let (fits, fits_rx) = ack::batch();
    let (huge, huge_rx) = ack::batch();
    for i in 0..41 {
        let mut r = record("small.default", i);
        if i == 17 {
            r.message = Bytes::from("x".repeat(3000));
            r.ack = Some(huge.clone());
        } else {
            r.ack = Some(fits.clone());
        }
        offer(&d, r);
    }
    drop((fits, huge));
    let outcome =
        |rx: ack::AckReceiver| async move { tokio::time::timeout(LIMIT, rx.wait()).await.expect("the batch settles") };
    assert_eq!(
        outcome(huge_rx).await,
        BatchStatus::Rejected,
        "the tailer moves on past it"
    );
    assert_eq!(outcome(fits_rx).await, BatchStatus::Delivered);
    // A finished drain's series are gone: read them before stopping it.
    let rejected = metric("logtrain_drain_rejected_total", &id);
    stop(&[&d], tracker).await;

    // Every other record arrived once, in order, in bodies that fit.
    let frames: Vec<String> = rec.accepted().iter().flat_map(|r| octet_frames(&r.body)).collect();
    let want: Vec<usize> = (0..41).filter(|&i| i != 17).collect();
    assert_eq!(frames.len(), want.len());
    for (m, &i) in frames.iter().zip(&want) {
        assert_rfc5424(m, "small.default", i);
    }
    let reqs = rec.requests();
    assert!(reqs.iter().all(|r| (r.status == 200) == (r.body.len() <= 2000)));
    assert!(
        reqs.len() > 2,
        "halved: {:?}",
        reqs.iter().map(|r| r.body.len()).collect::<Vec<_>>()
    );
    let alone: Vec<&Recorded> = reqs
        .iter()
        .filter(|r| r.status == 413 && r.header("logplex-msg-count") == Some("1"))
        .collect();
    assert_eq!(alone.len(), 1, "the oversized record was tried alone, once");
    assert!(octet_frames(&alone[0].body)[0].ends_with(&"x".repeat(3000)));
    assert_eq!(d.sent_total(), 40);
    assert_eq!(rejected, 1);
    let said = String::from_utf8_lossy(&logs.lock().unwrap())
        .lines()
        .filter(|l| l.contains("Drain refuses batches") && l.contains(&id))
        .count();
    assert_eq!(said, 1, "the refusal is logged once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_receiver_times_out_while_a_healthy_drain_keeps_delivering() {
    let hanging = Recorder::start().await;
    hanging.script([Reply::Hang]);
    let healthy = Recorder::start().await;
    let tracker = TaskTracker::new();
    let ctx = ctx_with(|c| c.send_timeout = Duration::from_secs(2));
    let dh = start(&format!("http://127.0.0.1:{}/hang", hanging.port), &ctx, &tracker);
    let dok = start(&format!("http://127.0.0.1:{}/ok", healthy.port), &ctx, &tracker);
    for round in 0..5 {
        for i in 0..10 {
            let r = Arc::new(record("hang.default", round * 10 + i));
            assert!(dh.offer(&r));
            assert!(dok.offer(&r));
        }
        wait_until("the healthy drain", LIMIT, || {
            healthy.accepted().iter().map(|r| ndjson(r).len()).sum::<usize>() == (round + 1) * 10
        })
        .await;
    }
    // Every healthy batch went through while the first hanging request was
    // still unanswered.
    assert_eq!(hanging.accepted().len(), 0);
    assert_eq!(hanging.requests().len(), 1);
    wait_until("the hanging drain to give up and resend", LIMIT, || {
        hanging.accepted().iter().map(|r| ndjson(r).len()).sum::<usize>() == 50
    })
    .await;
    stop(&[&dh, &dok], tracker).await;
    assert_eq!(hanging.connections(), 2, "the timed-out connection was replaced");
    let first = &hanging.requests()[0];
    assert_eq!(first.status, 0);
    let healthy_docs: Vec<Value> = healthy.accepted().iter().flat_map(ndjson).collect();
    assert_eq!(healthy_docs.len(), 50);
    for (i, v) in healthy_docs.iter().enumerate() {
        assert_json(v, "hang.default", i);
    }
    // The hung batch is sent again: its records reach the receiver twice at
    // the HTTP level (the first copy was never answered), once accepted.
    let accepted: Vec<Value> = hanging.accepted().iter().flat_map(ndjson).collect();
    for (i, v) in accepted.iter().enumerate() {
        assert_json(v, "hang.default", i);
    }
}

#[tokio::test]
async fn a_receiver_down_at_start_gets_everything_once_it_is_up() {
    let port = support::Reserved::new();
    let url = format!("syslog+http://127.0.0.1:{}/late", port.port());
    let tracker = TaskTracker::new();
    let d = start(&url, &ctx_with(|_| {}), &tracker);
    for i in 0..30 {
        offer(&d, record("late.default", i));
    }
    wait_until("connect errors", LIMIT, || {
        metric("logtrain_drain_errors_total", &id_of(&url)) >= 2
    })
    .await;
    let rec = Recorder::start_on(port).await;
    wait_until("delivery", LIMIT, || rec.accepted().len() == 1).await;
    stop(&[&d], tracker).await;
    let frames = octet_frames(&rec.requests()[0].body);
    assert_eq!(frames.len(), 30);
    for (i, m) in frames.iter().enumerate() {
        assert_rfc5424(m, "late.default", i);
    }
    assert_eq!(rec.requests().len(), 1);
}

fn ca_param(pem: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
    percent_encoding::utf8_percent_encode(&b64, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_trusts_the_given_ca_only() {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::tls::make_pki(&dir.path().join("pki"));
    let other = support::tls::make_pki(&dir.path().join("other"));
    let rec = Recorder::start_tls(&pki.server_cert_pem, &pki.server_key_pem).await;
    let right = format!("https://localhost:{}/secure?ca={}", rec.port, ca_param(&pki.ca_pem));
    let wrong = format!(
        "syslog+https://127.0.0.1:{}/secure?ca={}",
        rec.port,
        ca_param(&other.ca_pem)
    );

    let spec = DrainSpec::parse(&wrong).unwrap();
    let sink = SyslogHttpSink::new(&spec, Some(TlsConnector::new(&spec, &[b"http/1.1"]).unwrap())).unwrap();
    assert!(matches!(sink.connect().await, Err(SinkError::Certificate(_))));
    let spec = DrainSpec::parse(&right).unwrap();
    let sink = JsonHttpSink::new(&spec, Some(TlsConnector::new(&spec, &[b"http/1.1"]).unwrap())).unwrap();
    if let Err(e) = sink.connect().await {
        panic!("the right CA must connect: {e}");
    }

    let tracker = TaskTracker::new();
    let ctx = ctx_with(|_| {});
    let dr = start(&right, &ctx, &tracker);
    let dw = start(&wrong, &ctx, &tracker);
    for i in 0..10 {
        offer(&dr, record("tls.right", i));
        offer(&dw, record("tls.wrong", i));
    }
    let docs = || rec.accepted().iter().flat_map(ndjson).collect::<Vec<Value>>();
    wait_until("delivery over https", LIMIT, || docs().len() == 10).await;
    wait_until("errors on the wrong CA", LIMIT, || {
        metric("logtrain_drain_errors_total", &id_of(&wrong)) >= 2
    })
    .await;
    let docs = docs();
    assert_eq!(docs.len(), 10);
    for (i, v) in docs.iter().enumerate() {
        assert_json(v, "tls.right", i);
    }
    assert_eq!(
        rec.requests().len(),
        rec.accepted().len(),
        "nothing from the drain with the wrong CA"
    );
    assert_eq!(dw.sent_total(), 0);
    dw.abandon();
    dr.close();
    dw.close();
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await;
}

#[tokio::test]
async fn syslog_https_delivers_logplex_batches_over_tls_with_the_given_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::tls::make_pki(&dir.path().join("pki"));
    let rec = Recorder::start_tls(&pki.server_cert_pem, &pki.server_key_pem).await;
    let url = format!(
        "syslog+https://key-id:s3cret@localhost:{}/drain?auth=apikey&ca={}",
        rec.port,
        ca_param(&pki.ca_pem)
    );
    let d = two_batches(&url, &rec, "https.default", 100, 120).await;

    let reqs = rec.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(rec.connections(), 1, "both batches on one TLS keep-alive connection");
    let key = base64::engine::general_purpose::STANDARD.encode("key-id:s3cret");
    let auth = format!("ApiKey {key}");
    let mut frames = Vec::new();
    let mut ids = Vec::new();
    for (r, count) in reqs.iter().zip([100, 20]) {
        assert_eq!(r.status, 200);
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, "/drain");
        assert_eq!(r.header("host"), Some(format!("localhost:{}", rec.port).as_str()));
        assert_eq!(r.header("content-type"), Some("application/logplex-1"));
        assert_eq!(r.header("logplex-msg-count"), Some(count.to_string().as_str()));
        assert_eq!(r.header("logplex-drain-token"), Some(id_of(&url).as_str()));
        assert_eq!(r.header("authorization"), Some(auth.as_str()));
        assert_eq!(r.header("content-length"), Some(r.body.len().to_string().as_str()));
        let id = r.header("logplex-frame-id").unwrap().to_string();
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|c| c.is_ascii_hexdigit()));
        ids.push(id);
        let f = octet_frames(&r.body);
        assert_eq!(f.len(), count);
        frames.extend(f);
    }
    assert_ne!(ids[0], ids[1]);
    assert_eq!(frames.len(), 120);
    for (i, m) in frames.iter().enumerate() {
        assert_rfc5424(m, "https.default", i);
    }
    assert_eq!(d.sent_total(), 120);
    let id = id_of(&url);
    assert!(
        id.starts_with(&format!("syslog+https://localhost:{}#", rec.port)),
        "{id}"
    );
    assert!(!id.contains("/drain"), "{id}");
}

#[tokio::test]
async fn body_go_posts_each_record_alone_with_the_go_logtrains_fields_and_retries_from_a_failure() {
    let rec = Recorder::start().await;
    // The third request fails once: it and the records after it go again, no duplicates.
    rec.script([Reply::Status(200), Reply::Status(200), Reply::Status(503)]);
    let url = format!("http://127.0.0.1:{}/go?body=go&token=abc", rec.port);
    let tracker = TaskTracker::new();
    let d = start(&url, &ctx_with(|_| {}), &tracker);
    for i in 0..5 {
        offer(&d, record("go.default", i));
    }
    wait_until("five records accepted", LIMIT, || rec.accepted().len() == 5).await;
    stop(&[&d], tracker).await;

    let reqs = rec.requests();
    assert_eq!(
        reqs.iter().map(|r| r.status).collect::<Vec<_>>(),
        [200, 200, 503, 200, 200, 200]
    );
    for (i, r) in rec.accepted().iter().enumerate() {
        assert_eq!(r.path, "/go?token=abc", "body= is logtrain's; other keys pass through");
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.header("content-encoding"), None);
        let v: Value = serde_json::from_slice(&r.body).unwrap();
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys.len(), 6, "{v}");
        assert_eq!(v["Hostname"], "go.default");
        assert_eq!(v["Tag"], "web-1");
        assert_eq!(v["Severity"], (i % 8) as u64);
        assert_eq!(v["Facility"], 16);
        assert_eq!(v["Message"], format!("line {i} ü"));
        let t = Timestamp(1_795_000_000_000_000_000 + i as i64 * 1_000).to_rfc3339();
        let want = t
            .trim_end_matches('Z')
            .trim_end_matches('0')
            .trim_end_matches('.')
            .to_string()
            + "Z";
        assert_eq!(v["Time"], want.as_str());
    }
    assert!(DrainSpec::parse(&format!("http://127.0.0.1:{}/?body=xml", rec.port)).is_err());
    assert!(DrainSpec::parse(&format!("es+http://127.0.0.1:{}/?body=go", rec.port)).is_err());
}
