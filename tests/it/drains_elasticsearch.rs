//! The Elasticsearch drain against a `_bulk` server that follows the documented
//! contract: documents, dated indexes and deterministic ids; a retried batch
//! that does not duplicate (409 counts as delivered); per-item 429 retried;
//! mapping errors rejected once and counted; whole-request 429, and 413 (a
//! request over `http.max_content_length`) sent again in halves; every HTTPS
//! scheme over TLS with `ca=`; `batch_bytes=` and `linger_ms=`.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use logtrain::drain::{self, Drain, DrainContext, DrainSpec};
use logtrain::record::{Facility, InputKind, Position, Record, Severity};
use logtrain::time::Timestamp;
use support::es_bulk::{EsBulk, Whole};
use support::wait_until;
use tokio_util::task::TaskTracker;

const LIMIT: Duration = Duration::from_secs(15);

fn ctx() -> DrainContext {
    let mut ctx = DrainContext::standalone();
    ctx.driver.backoff_max = Duration::from_millis(400);
    ctx
}

fn start(url: &str, tracker: &TaskTracker) -> Arc<Drain> {
    drain::start(&DrainSpec::parse(url).unwrap(), &ctx(), tracker).unwrap()
}

fn metric(name: &str, url: &str) -> u64 {
    let id = DrainSpec::parse(url).unwrap().id;
    let prefix = format!("{name}{{drain=\"{id}\"}} ");
    logtrain::telemetry::render()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|v| v.parse().unwrap()))
        .unwrap_or(0)
}

/// 2026-03-09T12:00:00Z plus `i` seconds.
fn record(host: &str, i: usize, message: &str) -> Record {
    let mut r = Record::new(InputKind::Internal, host.to_string(), message.to_string());
    r.facility = Facility::LOCAL0;
    r.severity = Severity::new((i % 8) as u8);
    r.timestamp = Timestamp::parse_rfc3339(b"2026-03-09T12:00:00Z").map(|t| Timestamp(t.0 + i as i64 * 1_000_000_000));
    r.app_name = Bytes::from_static(b"web-1");
    r
}

fn offer(d: &Drain, r: Record) {
    assert!(d.offer(&Arc::new(r)));
}

async fn stop(d: &Arc<Drain>, tracker: TaskTracker) {
    d.close();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .expect("drain flushes");
}

#[tokio::test]
async fn documents_go_to_dated_indexes_with_deterministic_ids() {
    let es = EsBulk::start().await;
    let url = format!(
        "es+http://key-id:s3cret@127.0.0.1:{}/cluster?auth=apikey&index=logs-%25Y.%25m.%25d",
        es.port
    );
    let tracker = TaskTracker::new();
    let d = start(&url, &tracker);
    for i in 0..20 {
        let mut r = record("Web.Default", i, &format!("line {i} \"quoted\"\n\tü"));
        if i % 2 == 0 {
            r.procid = Bytes::from(format!("{i}"));
            r.msgid = Bytes::from_static(b"REQ");
        }
        offer(&d, r);
    }
    // A tailed record: its id comes from its file position.
    let mut tailed = record("web.default", 99, "from a file");
    tailed.origin.position = Some(Position {
        file: 0xfeed,
        offset: 4096,
        piece: 1,
    });
    offer(&d, tailed);
    // The day changes at midnight UTC: the record goes to the next index.
    let mut late = record("web.default", 0, "next day");
    late.timestamp = Timestamp::parse_rfc3339(b"2026-03-10T00:00:00Z");
    offer(&d, late);
    wait_until("22 documents", LIMIT, || es.docs().len() == 22).await;
    stop(&d, tracker).await;

    let reqs = es.requests();
    assert_eq!(reqs.len(), 1, "one bulk request: the batch lingers for more records");
    let req = &reqs[0];
    assert_eq!(req.path, "/cluster/_bulk");
    assert_eq!(req.content_type, "application/x-ndjson");
    let key = base64::engine::general_purpose::STANDARD.encode("key-id:s3cret");
    assert_eq!(req.authorization.as_deref(), Some(format!("ApiKey {key}").as_str()));
    assert!(req.actions.iter().all(|(op, _, _)| op == "create"));
    assert_eq!(req.item_statuses, vec![201; 22]);

    let docs = es.docs();
    let day1: Vec<_> = docs.iter().filter(|((idx, _), _)| idx == "logs-2026.03.09").collect();
    assert_eq!(day1.len(), 21);
    let day2: Vec<_> = docs.iter().filter(|((idx, _), _)| idx == "logs-2026.03.10").collect();
    assert_eq!(day2.len(), 1);
    assert_eq!(day2[0].1["message"], "next day");
    let tailed_doc = &docs[&(
        "logs-2026.03.09".to_string(),
        "000000000000feed0000000100000001".to_string(),
    )];
    assert_eq!(tailed_doc["message"], "from a file");
    for i in 0..20 {
        let (_, doc) = day1
            .iter()
            .find(|(_, v)| v["message"] == format!("line {i} \"quoted\"\n\tü"))
            .unwrap_or_else(|| panic!("document {i}"));
        let want_ts = record("x", i, "").timestamp.unwrap().to_rfc3339();
        assert_eq!(doc["@timestamp"], want_ts);
        assert_eq!(doc["hostname"], "Web.Default");
        assert_eq!(doc["tag"], "web-1");
        assert_eq!(doc["severity"], i % 8);
        assert_eq!(doc["facility"], 16);
        if i % 2 == 0 {
            assert_eq!(doc["procid"], i.to_string());
            assert_eq!(doc["msgid"], "REQ");
        } else {
            assert!(doc.get("procid").is_none() && doc.get("msgid").is_none(), "{doc}");
        }
    }
    // Ids are 128-bit hex and all distinct.
    assert!(
        docs.keys()
            .all(|(_, id)| id.len() == 32 && id.bytes().all(|c| c.is_ascii_hexdigit()))
    );
    assert_eq!(d.sent_total(), 22);
}

#[tokio::test]
async fn the_default_index_is_the_lowercased_hostname() {
    let es = EsBulk::start().await;
    let url = format!("elasticsearch+http://127.0.0.1:{}", es.port);
    let tracker = TaskTracker::new();
    let d = start(&url, &tracker);
    offer(&d, record("Api.Prod", 1, "a"));
    offer(&d, record("web.default", 2, "b"));
    wait_until("2 documents", LIMIT, || es.docs().len() == 2).await;
    stop(&d, tracker).await;
    let indexes: Vec<String> = es.docs().keys().map(|(i, _)| i.clone()).collect();
    assert_eq!(indexes, ["api.prod", "web.default"]);
    assert_eq!(es.requests()[0].path, "/_bulk");
    assert_eq!(es.requests()[0].authorization, None);
}

#[tokio::test]
async fn a_batch_sent_again_after_a_lost_answer_does_not_duplicate() {
    let es = EsBulk::start().await;
    // The server stores the batch, then answers 500 as if the answer was lost.
    es.script([Whole::StoreThenFail]);
    let url = format!("es+http://127.0.0.1:{}?index=dedup", es.port);
    let tracker = TaskTracker::new();
    let d = start(&url, &tracker);
    for i in 0..50 {
        offer(&d, record("dedup.default", i, &format!("m{i}")));
    }
    wait_until("the retried batch to be acknowledged", LIMIT, || d.sent_total() == 50).await;
    // A finished drain's series are gone: read them before stopping it.
    let (rejected, retries) = (
        metric("logtrain_drain_rejected_total", &url),
        metric("logtrain_drain_retries_total", &url),
    );
    stop(&d, tracker).await;
    let reqs = es.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].status, 500);
    assert_eq!(reqs[0].actions, reqs[1].actions, "the same ids both times");
    assert_eq!(reqs[1].item_statuses, vec![409; 50], "every document already existed");
    let docs = es.docs();
    assert_eq!(docs.len(), 50, "no duplicates");
    let mut msgs: Vec<String> = docs
        .values()
        .map(|v| v["message"].as_str().unwrap().to_string())
        .collect();
    msgs.sort_by_key(|m| m[1..].parse::<usize>().unwrap());
    assert_eq!(msgs, (0..50).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert_eq!(rejected, 0);
    assert_eq!(retries, 1);
}

#[tokio::test]
async fn items_throttled_with_429_are_sent_again_alone() {
    let es = EsBulk::start().await;
    es.throttle_items("busy", 2);
    let url = format!("es+http://127.0.0.1:{}?index=throttle", es.port);
    let tracker = TaskTracker::new();
    let d = start(&url, &tracker);
    for i in 0..10 {
        let m = if i % 4 == 1 {
            format!("busy {i}")
        } else {
            format!("calm {i}")
        };
        offer(&d, record("t.default", i, &m));
    }
    wait_until("10 documents", LIMIT, || es.docs().len() == 10).await;
    stop(&d, tracker).await;
    let reqs = es.requests();
    assert_eq!(reqs.len(), 2);
    // Records 1 and 5 were throttled (the marker's budget is two), 9 was not.
    let statuses = &reqs[0].item_statuses;
    assert_eq!(statuses.iter().filter(|&&s| s == 429).count(), 2);
    assert_eq!((statuses[1], statuses[5], statuses[9]), (429, 429, 201));
    assert_eq!(reqs[1].actions.len(), 2, "only the throttled items are sent again");
    assert_eq!(reqs[1].actions[0], reqs[0].actions[1]);
    assert_eq!(reqs[1].actions[1], reqs[0].actions[5]);
    assert_eq!(reqs[1].item_statuses, [201, 201]);
    assert_eq!(d.sent_total(), 10);
    assert_eq!(metric("logtrain_drain_rejected_total", &url), 0);
}

#[tokio::test]
async fn mapping_errors_are_rejected_for_good_and_counted() {
    let es = EsBulk::start().await;
    es.reject_items("not-a-number");
    let url = format!("es+http://127.0.0.1:{}?index=strict", es.port);
    let tracker = TaskTracker::new();
    let d = start(&url, &tracker);
    for i in 0..10 {
        let m = if i % 3 == 0 {
            format!("not-a-number {i}")
        } else {
            format!("ok {i}")
        };
        offer(&d, record("s.default", i, &m));
    }
    wait_until("the first batch", LIMIT, || es.requests().len() == 1).await;
    // A second batch with the same problem: counted again (logged only once).
    offer(&d, record("s.default", 10, "not-a-number again"));
    offer(&d, record("s.default", 11, "ok again"));
    wait_until("the second batch", LIMIT, || es.requests().len() == 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // A finished drain's series are gone: read them before stopping it.
    let rejected = metric("logtrain_drain_rejected_total", &url);
    stop(&d, tracker).await;
    let reqs = es.requests();
    assert_eq!(reqs.len(), 2, "rejected documents are not retried");
    assert_eq!(reqs[0].item_statuses.iter().filter(|&&s| s == 400).count(), 4);
    assert_eq!(reqs[1].item_statuses, [400, 201]);
    assert_eq!(es.docs().len(), 7);
    assert!(
        es.docs()
            .values()
            .all(|v| v["message"].as_str().unwrap().starts_with("ok"))
    );
    assert_eq!(rejected, 5);
    assert_eq!(d.sent_total(), 7);
}

#[tokio::test]
async fn a_whole_request_429_waits_for_retry_after_and_a_413_is_sent_again_in_halves() {
    let es = EsBulk::start().await;
    es.script([Whole::Status {
        status: 429,
        retry_after: Some(1),
    }]);
    let url = format!("es+http://127.0.0.1:{}?index=busy", es.port);
    let tracker = TaskTracker::new();
    let d = start(&url, &tracker);
    for i in 0..5 {
        offer(&d, record("b.default", i, &format!("b{i}")));
    }
    wait_until("5 documents", LIMIT, || es.docs().len() == 5).await;
    let reqs = es.requests();
    assert_eq!(reqs.iter().map(|r| r.status).collect::<Vec<_>>(), [429, 200]);
    let waited = reqs[1].at.duration_since(reqs[0].at);
    // The backoff alone would wait at most 400 ms here.
    assert!(waited >= Duration::from_millis(950), "Retry-After honoured: {waited:?}");

    es.script([Whole::Status {
        status: 413,
        retry_after: None,
    }]);
    for i in 5..8 {
        offer(&d, record("b.default", i, &format!("b{i}")));
    }
    wait_until("8 documents", LIMIT, || es.docs().len() == 8).await;
    stop(&d, tracker).await;
    let reqs = es.requests();
    assert_eq!(
        reqs.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 200, 413, 200, 200]
    );
    let sizes: Vec<usize> = reqs.iter().map(|r| r.actions.len()).collect();
    assert_eq!(sizes[2..], [0, 1, 2], "the 413'd batch of 3, then its halves");
    assert_eq!(d.sent_total(), 8);
    assert_eq!(metric("logtrain_drain_rejected_total", &url), 0);
}

#[tokio::test]
async fn a_request_over_max_content_length_is_halved_and_a_document_too_large_alone_is_refused() {
    let es = EsBulk::start().await;
    es.max_content_length(4000);
    let url = format!("es+http://127.0.0.1:{}?index=limited&linger_ms=200", es.port);
    let tracker = TaskTracker::new();
    let d = start(&url, &tracker);
    for i in 0..40 {
        let m = if i == 23 {
            format!("{i:03} {}", "x".repeat(5000))
        } else {
            format!("{i:03} fits")
        };
        offer(&d, record("l.default", i, &m));
    }
    wait_until("the oversized document to be refused", LIMIT, || {
        metric("logtrain_drain_rejected_total", &url) == 1
    })
    .await;
    wait_until("39 documents", LIMIT, || es.docs().len() == 39).await;
    // A finished drain's series are gone: read them before stopping it.
    let rejected = metric("logtrain_drain_rejected_total", &url);
    stop(&d, tracker).await;
    let reqs = es.requests();
    assert!(
        reqs.len() > 2,
        "halved: {:?}",
        reqs.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(reqs.iter().all(|r| r.status == 200 || r.status == 413));
    // Every stored document once (no 409), in order across the requests.
    let stored: Vec<&(String, String, String)> = reqs
        .iter()
        .filter(|r| r.status == 200)
        .flat_map(|r| &r.actions)
        .collect();
    assert!(reqs.iter().flat_map(|r| &r.item_statuses).all(|&s| s == 201));
    let docs = es.docs();
    let order: Vec<String> = stored
        .iter()
        .map(|(_, index, id)| docs[&(index.clone(), id.clone())]["message"].as_str().unwrap()[..3].to_string())
        .collect();
    let want: Vec<String> = (0..40).filter(|&i| i != 23).map(|i| format!("{i:03}")).collect();
    assert_eq!(order, want);
    assert_eq!(d.sent_total(), 39);
    assert_eq!(rejected, 1);
}

/// base64 of PEM text, percent-encoded for a query string.
fn ca_param(pem: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(pem);
    percent_encoding::utf8_percent_encode(&b64, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_https_scheme_delivers_over_tls_with_the_given_ca() {
    let dir = tempfile::tempdir().unwrap();
    let pki = support::tls::make_pki(&dir.path().join("pki"));
    let es = EsBulk::start_tls(&pki.server_cert_pem, &pki.server_key_pem).await;
    let ca = ca_param(&pki.ca_pem);
    // `es://` and `elasticsearch://` mean HTTPS (port 443 by default), as in logtrain.
    let schemes = ["es", "es+https", "elasticsearch", "elasticsearch+https"];
    let tracker = TaskTracker::new();
    let mut drains = Vec::new();
    for s in schemes {
        let index = s.replace('+', "-");
        let url = format!("{s}://elastic:chan%40geme@localhost:{}/?index={index}&ca={ca}", es.port);
        assert!(DrainSpec::parse(&url).unwrap().kind.tls(), "{url}");
        let d = start(&url, &tracker);
        for i in 0..10 {
            offer(&d, record(&format!("{index}.default"), i, &format!("{s} {i}")));
        }
        drains.push(d);
    }
    wait_until("40 documents over TLS", LIMIT, || es.docs().len() == 40).await;
    for d in &drains {
        d.close();
    }
    tracker.close();
    tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .expect("drains flush");

    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("elastic:chan@geme")
    );
    let reqs = es.requests();
    assert_eq!(reqs.len(), 4, "one bulk request per drain");
    let mut indexes = Vec::new();
    for r in &reqs {
        assert_eq!(r.path, "/_bulk");
        assert_eq!(r.content_type, "application/x-ndjson");
        assert_eq!(r.authorization.as_deref(), Some(auth.as_str()));
        assert_eq!(r.status, 200);
        assert_eq!(r.item_statuses, vec![201; 10]);
        let index = &r.actions[0].1;
        assert!(r.actions.iter().all(|(op, i, _)| op == "create" && i == index));
        indexes.push(index.clone());
    }
    indexes.sort();
    assert_eq!(indexes, ["elasticsearch", "elasticsearch-https", "es", "es-https"]);

    let docs = es.docs();
    for s in schemes {
        let index = s.replace('+', "-");
        let mine: Vec<_> = docs.iter().filter(|((i, _), _)| *i == index).collect();
        assert_eq!(mine.len(), 10, "{s}");
        for i in 0..10 {
            let (_, doc) = mine
                .iter()
                .find(|(_, v)| v["message"] == format!("{s} {i}"))
                .unwrap_or_else(|| panic!("{s}: document {i}"));
            let want_ts = record("x", i, "").timestamp.unwrap().to_rfc3339();
            assert_eq!(doc["@timestamp"], want_ts);
            assert_eq!(doc["hostname"], format!("{index}.default"));
            assert_eq!(doc["tag"], "web-1");
            assert_eq!(doc["severity"], i % 8);
            assert_eq!(doc["facility"], 16);
        }
    }
    for d in &drains {
        assert_eq!(d.sent_total(), 10);
    }
}

/// A record of exactly `size` bytes as the driver counts them
/// ([`Record::size_hint`]), its message starting with `i` as three digits.
fn sized(i: usize, size: usize) -> Record {
    let mut r = record("split.default", i, "");
    let fixed = r.size_hint() + 4;
    r.message = Bytes::from(format!("{i:03} {}", "x".repeat(size - fixed)));
    assert_eq!(r.size_hint(), size);
    r
}

#[tokio::test]
async fn batch_bytes_splits_a_batch_into_several_bulk_requests() {
    let small = EsBulk::start().await;
    let default = EsBulk::start().await;
    let url = format!(
        "es+http://127.0.0.1:{}?index=split&batch_bytes=1024&linger_ms=200",
        small.port
    );
    let default_url = format!("es+http://127.0.0.1:{}?index=split", default.port);
    let tracker = TaskTracker::new();
    let d = start(&url, &tracker);
    let dd = start(&default_url, &tracker);
    // 20 records of 256 bytes (four fill 1024), one larger than a whole batch
    // (it goes alone), then two that do not fill one (sent when linger_ms ends).
    let sizes: Vec<usize> = [vec![256; 20], vec![2100], vec![256; 2]].concat();
    for (i, &size) in sizes.iter().enumerate() {
        offer(&d, sized(i, size));
        offer(&dd, sized(i, size));
    }
    wait_until("23 documents", LIMIT, || {
        small.docs().len() == 23 && default.docs().len() == 23
    })
    .await;
    d.close();
    dd.close();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .expect("drains flush");

    let reqs = small.requests();
    let per_request: Vec<usize> = reqs.iter().map(|r| r.actions.len()).collect();
    assert_eq!(per_request, [4, 4, 4, 4, 4, 1, 2]);
    assert!(
        reqs.iter()
            .all(|r| r.status == 200 && r.item_statuses.iter().all(|&s| s == 201))
    );
    // Every record once, in order, across the requests.
    let docs = small.docs();
    let order: Vec<String> = reqs
        .iter()
        .flat_map(|r| &r.actions)
        .map(|(_, index, id)| docs[&(index.clone(), id.clone())]["message"].as_str().unwrap()[..3].to_string())
        .collect();
    assert_eq!(order, (0..23).map(|i| format!("{i:03}")).collect::<Vec<_>>());
    for (i, &size) in sizes.iter().enumerate() {
        let want = sized(i, size);
        let want = std::str::from_utf8(&want.message).unwrap();
        assert!(docs.values().any(|v| v["message"] == want), "record {i}");
    }
    assert_eq!(d.sent_total(), 23);
    // The same records under the default 5 MiB go in one request.
    let default_sizes: Vec<usize> = default.requests().iter().map(|r| r.actions.len()).collect();
    assert_eq!(default_sizes, [23]);
    assert_eq!(default.docs().len(), 23);
}

#[tokio::test]
async fn linger_ms_sets_how_long_a_batch_waits_to_fill() {
    let eager = EsBulk::start().await;
    let patient = EsBulk::start().await;
    let tracker = TaskTracker::new();
    let de = start(
        &format!("es+http://127.0.0.1:{}?index=eager&linger_ms=0", eager.port),
        &tracker,
    );
    let dp = start(
        &format!("es+http://127.0.0.1:{}?index=patient&linger_ms=4000", patient.port),
        &tracker,
    );
    offer(&de, record("l.default", 0, "first"));
    offer(&dp, record("l.default", 0, "first"));
    // Longer than the default linger of 1 s.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    offer(&de, record("l.default", 1, "second"));
    offer(&dp, record("l.default", 1, "second"));
    wait_until("2 documents each", LIMIT, || {
        eager.docs().len() == 2 && patient.docs().len() == 2
    })
    .await;
    de.close();
    dp.close();
    tracker.close();
    tokio::time::timeout(Duration::from_secs(5), tracker.wait())
        .await
        .expect("drains flush");
    let counts = |es: &EsBulk| es.requests().iter().map(|r| r.actions.len()).collect::<Vec<_>>();
    assert_eq!(counts(&eager), [1, 1], "linger_ms=0 sends what is queued at once");
    assert_eq!(counts(&patient), [2], "linger_ms=4000 waited for the second record");
    let at = |es: &EsBulk| es.requests()[0].at;
    let waited = at(&patient).duration_since(at(&eager));
    assert!(
        waited >= Duration::from_millis(3500),
        "the patient batch went after {waited:?}"
    );
}
