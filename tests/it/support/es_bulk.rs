//! An Elasticsearch `_bulk` endpoint following the documented contract, for
//! drain tests (no real Elasticsearch can be installed here).
//!
//! - `POST …/_bulk` with `Content-Type: application/x-ndjson` (or
//!   `application/json`); other content types get 406, a body not ending in a
//!   newline gets 400, as Elasticsearch does.
//! - NDJSON action/source pairs; `create` and `index` actions with `_index`
//!   (required here) and `_id`. A `create` whose `_id` already exists in that
//!   index is item status 409 `version_conflict_engine_exception`.
//! - The answer is `{"took","errors","items":[{"create":{"_index","_id","status",…}}]}`
//!   with `"errors": true` when any item failed.
//! - Scriptable: whole-request answers (429 with `Retry-After`, 413, 500 —
//!   and "store, then answer 500" to simulate a lost response), per-item 429
//!   for documents whose message contains a marker (a given number of times),
//!   and 400 `mapper_parsing_exception` for documents whose message contains a
//!   marker.
//! - `http.max_content_length`: a request body longer than the set limit is
//!   answered 413 `content_too_long_exception`, storing nothing.
//!
//! Stored documents are kept by (index, id), so tests can assert there is no
//! duplicate. [`EsBulk::start_tls`] serves the same over HTTPS (rustls), as an
//! Elasticsearch with security enabled does.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A scripted whole-request answer.
#[derive(Clone, Debug)]
pub enum Whole {
    /// Answer this status with an Elasticsearch error body, storing nothing.
    Status { status: u16, retry_after: Option<u64> },
    /// Process the request (store its documents), then answer 500 as if the
    /// response had been lost.
    StoreThenFail,
}

/// One `_bulk` request as seen.
#[derive(Clone, Debug)]
pub struct BulkRequest {
    pub path: String,
    pub content_type: String,
    pub authorization: Option<String>,
    /// (action, index, id) per item.
    pub actions: Vec<(String, String, String)>,
    /// Whole-request status answered.
    pub status: u16,
    /// Item statuses answered (empty when the whole request failed).
    pub item_statuses: Vec<u16>,
    pub at: std::time::Instant,
}

#[derive(Default)]
struct State {
    docs: Mutex<BTreeMap<(String, String), Value>>,
    whole: Mutex<VecDeque<Whole>>,
    throttle: Mutex<HashMap<String, usize>>,
    reject: Mutex<Vec<String>>,
    requests: Mutex<Vec<BulkRequest>>,
    max_content_length: Mutex<Option<usize>>,
}

/// A running `_bulk` server; stops when dropped.
pub struct EsBulk {
    pub port: u16,
    state: Arc<State>,
    task: JoinHandle<()>,
}

impl EsBulk {
    /// Starts over plain HTTP on a free port.
    pub async fn start() -> EsBulk {
        Self::launch(None).await
    }

    /// Starts over HTTPS with this certificate chain and key (PEM).
    pub async fn start_tls(cert_pem: &str, key_pem: &str) -> EsBulk {
        Self::launch(Some(super::tls::acceptor(cert_pem, key_pem))).await
    }

    async fn launch(tls: Option<tokio_rustls::TlsAcceptor>) -> EsBulk {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State::default());
        let st = state.clone();
        let task = tokio::spawn(super::tls::accept_each(listener, tls, move |io| serve(st.clone(), io)));
        EsBulk { port, state, task }
    }

    /// Answers the next requests as scripted, in order.
    pub fn script(&self, answers: impl IntoIterator<Item = Whole>) {
        self.state.whole.lock().extend(answers);
    }

    /// Items whose message contains `marker` get 429 the first `times` times.
    pub fn throttle_items(&self, marker: &str, times: usize) {
        self.state.throttle.lock().insert(marker.to_string(), times);
    }

    /// Items whose message contains `marker` always fail with 400 `mapper_parsing_exception`.
    pub fn reject_items(&self, marker: &str) {
        self.state.reject.lock().push(marker.to_string());
    }

    /// Answers 413 to request bodies longer than `bytes` (Elasticsearch's
    /// `http.max_content_length`).
    pub fn max_content_length(&self, bytes: usize) {
        *self.state.max_content_length.lock() = Some(bytes);
    }

    /// Stored documents by (index, id).
    pub fn docs(&self) -> BTreeMap<(String, String), Value> {
        self.state.docs.lock().clone()
    }

    pub fn requests(&self) -> Vec<BulkRequest> {
        self.state.requests.lock().clone()
    }
}

/// Serves HTTP/1.1 on one accepted connection.
async fn serve<I>(st: Arc<State>, io: I)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| handle(st.clone(), req));
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(io), svc)
        .await;
}

impl Drop for EsBulk {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn json_response(status: u16, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap();
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r
}

fn es_error(status: u16, kind: &str, reason: &str) -> Value {
    json!({
        "error": {"root_cause": [{"type": kind, "reason": reason}], "type": kind, "reason": reason},
        "status": status
    })
}

async fn handle(st: Arc<State>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let header = |n: &str| parts.headers.get(n).and_then(|v| v.to_str().ok()).map(String::from);
    let content_type = header("content-type").unwrap_or_default();
    let mut seen = BulkRequest {
        path: parts.uri.to_string(),
        content_type: content_type.clone(),
        authorization: header("authorization"),
        actions: Vec::new(),
        status: 0,
        item_statuses: Vec::new(),
        at: std::time::Instant::now(),
    };
    let record = |seen: BulkRequest| st.requests.lock().push(seen);

    if parts.method != hyper::Method::POST || !parts.uri.path().ends_with("/_bulk") {
        seen.status = 405;
        record(seen);
        return Ok(json_response(
            405,
            es_error(405, "illegal_argument_exception", "only POST _bulk"),
        ));
    }
    if let Some(max) = *st.max_content_length.lock()
        && body.len() > max
    {
        seen.status = 413;
        record(seen);
        let reason = format!(
            "entity content is too long [{}] for the configured buffer limit [{max}]",
            body.len()
        );
        return Ok(json_response(413, es_error(413, "content_too_long_exception", &reason)));
    }
    let mime = content_type.split(';').next().unwrap_or("").trim().to_string();
    if mime != "application/x-ndjson" && mime != "application/json" {
        seen.status = 406;
        record(seen);
        let reason = format!("Content-Type header [{content_type}] is not supported");
        return Ok(json_response(406, json!({"error": reason, "status": 406})));
    }
    if !body.ends_with(b"\n") {
        seen.status = 400;
        record(seen);
        return Ok(json_response(
            400,
            es_error(
                400,
                "illegal_argument_exception",
                "The bulk request must be terminated by a newline [\\n]",
            ),
        ));
    }
    let scripted = st.whole.lock().pop_front();
    let mut fail_after = false;
    match scripted {
        Some(Whole::Status { status, retry_after }) => {
            seen.status = status;
            record(seen);
            let mut r = json_response(status, es_error(status, "es_rejected_execution_exception", "scripted"));
            if let Some(s) = retry_after {
                r.headers_mut().insert("retry-after", s.to_string().parse().unwrap());
            }
            return Ok(r);
        }
        Some(Whole::StoreThenFail) => fail_after = true,
        None => {}
    }

    let lines: Vec<&[u8]> = body.split(|&c| c == b'\n').filter(|l| !l.is_empty()).collect();
    if lines.len() % 2 != 0 {
        seen.status = 400;
        record(seen);
        return Ok(json_response(
            400,
            es_error(400, "illegal_argument_exception", "action line without a source line"),
        ));
    }
    let mut items = Vec::new();
    let mut errors = false;
    for pair in lines.chunks(2) {
        let action: Value = match serde_json::from_slice(pair[0]) {
            Ok(v) => v,
            Err(e) => {
                seen.status = 400;
                record(seen);
                return Ok(json_response(
                    400,
                    es_error(400, "x_content_parse_exception", &e.to_string()),
                ));
            }
        };
        let Some((op, meta)) = action.as_object().and_then(|o| o.iter().next()) else {
            seen.status = 400;
            record(seen);
            return Ok(json_response(
                400,
                es_error(400, "illegal_argument_exception", "malformed action"),
            ));
        };
        let index = meta["_index"].as_str().unwrap_or("").to_string();
        let id = meta["_id"].as_str().unwrap_or("").to_string();
        seen.actions.push((op.clone(), index.clone(), id.clone()));
        let doc: Result<Value, _> = serde_json::from_slice(pair[1]);
        let message = doc
            .as_ref()
            .ok()
            .and_then(|d| d["message"].as_str())
            .unwrap_or("")
            .to_string();
        let (status, error) = if index.is_empty() || (op != "create" && op != "index") || id.is_empty() {
            (
                400,
                Some((
                    "action_request_validation_exception",
                    "index and id are required".to_string(),
                )),
            )
        } else if let Err(e) = &doc {
            (
                400,
                Some(("document_parsing_exception", format!("failed to parse: {e}"))),
            )
        } else if st.reject.lock().iter().any(|m| message.contains(m.as_str())) {
            (
                400,
                Some((
                    "mapper_parsing_exception",
                    format!("failed to parse field [message] of type [long] in document with id '{id}'"),
                )),
            )
        } else if let Some(left) = st
            .throttle
            .lock()
            .iter_mut()
            .find(|(m, n)| **n > 0 && message.contains(m.as_str()))
            .map(|(_, n)| n)
        {
            *left -= 1;
            (
                429,
                Some((
                    "es_rejected_execution_exception",
                    "rejected execution of coordinating operation".to_string(),
                )),
            )
        } else {
            let mut docs = st.docs.lock();
            let key = (index.clone(), id.clone());
            if op == "create" && docs.contains_key(&key) {
                (
                    409,
                    Some((
                        "version_conflict_engine_exception",
                        format!("[{id}]: version conflict, document already exists (current version [1])"),
                    )),
                )
            } else {
                let created = !docs.contains_key(&key);
                docs.insert(key, doc.unwrap());
                (if created { 201 } else { 200 }, None)
            }
        };
        seen.item_statuses.push(status);
        let mut item = json!({"_index": index, "_id": id, "status": status});
        match error {
            Some((kind, reason)) => {
                errors = true;
                item["error"] = json!({"type": kind, "reason": reason, "index": index});
            }
            None => {
                item["result"] = json!(if status == 201 { "created" } else { "updated" });
                item["_version"] = json!(1);
            }
        }
        let mut wrapped = serde_json::Map::new();
        wrapped.insert(op.clone(), item);
        items.push(Value::Object(wrapped));
    }
    if fail_after {
        seen.status = 500;
        seen.item_statuses.clear();
        record(seen);
        return Ok(json_response(
            500,
            es_error(500, "internal_server_error", "response lost"),
        ));
    }
    seen.status = 200;
    record(seen);
    Ok(json_response(200, json!({"took": 1, "errors": errors, "items": items})))
}
