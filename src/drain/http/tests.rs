//! Tests of the HTTP drains' request building and answer handling.

use super::*;
use crate::record::InputKind;

fn resp(status: u16, retry_after: Option<&str>) -> Response {
    let mut headers = HeaderMap::new();
    if let Some(v) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from_str(v).unwrap());
    }
    Response {
        status: StatusCode::from_u16(status).unwrap(),
        headers,
        body: Bytes::from_static(b"nope\n"),
    }
}

#[test]
fn statuses_map_to_retry_or_refusal() {
    assert!(resp(200, None).check().is_ok());
    assert!(resp(204, None).check().is_ok());
    match resp(429, Some("7")).check() {
        Err(SinkError::Unavailable {
            status: 429,
            retry_after,
        }) => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)))
        }
        other => panic!("{other:?}"),
    }
    match resp(503, Some("99999")).check() {
        Err(SinkError::Unavailable { retry_after, .. }) => assert_eq!(retry_after, Some(MAX_RETRY_AFTER)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        resp(500, Some("Wed, 21 Oct 2015 07:28:00 GMT")).check(),
        Err(SinkError::Unavailable { retry_after: None, .. })
    ));
    for s in [400, 401, 403, 404, 301] {
        match resp(s, None).check() {
            Err(e @ SinkError::Refused { .. }) => {
                let m = e.to_string();
                assert!(m.contains(&format!("HTTP {s}")) && m.contains("nope"), "{m}");
            }
            other => panic!("{s}: {other:?}"),
        }
    }
    match resp(413, None).check() {
        Err(e @ SinkError::TooLarge { .. }) => {
            let m = e.to_string();
            assert!(m.contains("413") && m.contains("nope"), "{m}");
        }
        other => panic!("413: {other:?}"),
    }
}

#[test]
fn frame_ids_are_stable_per_batch_and_new_per_batch() {
    let ids = FrameIds::default();
    let a: Vec<SharedRecord> = (0..3)
        .map(|i| Arc::new(Record::new(InputKind::Internal, "h", format!("{i}"))))
        .collect();
    let b: Vec<SharedRecord> = vec![Arc::new(Record::new(InputKind::Internal, "h", "0"))];
    let first = ids.for_batch(&a);
    assert_eq!(first.len(), 32);
    assert_eq!(ids.for_batch(&a), first);
    assert_ne!(ids.for_batch(&b), first);
    assert_ne!(ids.for_batch(&a[..2]), first);
}
