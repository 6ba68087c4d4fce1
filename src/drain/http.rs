//! HTTP drains: batches POSTed over HTTP/1.1 keep-alive connections (hyper 1
//! client connections over TCP or TLS), one pooled driver connection being one
//! HTTP connection.
//!
//! | scheme | body | parameters (defaults) |
//! |---|---|---|
//! | `syslog+http://host[:80]/path`, `syslog+https://host[:443]/path` | logplex frames | `framing=octet` or `framing=newline`, `auth=basic\|bearer\|apikey` with `user:password@`, `ca=`, `insecure=false` (https) |
//! | `http://host[:80]/path`, `https://host[:443]/path` | NDJSON | `auth=basic\|bearer\|apikey` with `user:password@`, `ca=`, `insecure=false` (https); other query parameters are passed through |
//!
//! **Logplex** (`syslog+http(s)`, default): `Content-Type: application/logplex-1`,
//! the body is the batch's RFC 5424 messages each octet-counted (`LEN SP MSG`),
//! with `Logplex-Msg-Count` (records in the body), `Logplex-Frame-Id` (32 hex
//! digits, new for each batch and the same when that batch is sent again) and
//! `Logplex-Drain-Token` (the drain's id). With `framing=newline` the body is
//! newline-delimited RFC 5424 as `application/syslog`, as the Go logtrain sent.
//!
//! **JSON** (`http(s)`): `Content-Type: application/x-ndjson`, one JSON object
//! per line in the format of [`crate::encode::json`]. Bodies are sent
//! `Content-Encoding: gzip`; a receiver answering 415 gets the same body
//! uncompressed at once, and this drain keeps sending uncompressed from then on.
//!
//! Answers: 2xx delivered; 429, 408 and 5xx are retried by the driver after
//! `Retry-After` (seconds, at most 5 minutes) or its backoff; 413 (payload too
//! large) makes the driver send the batch again in halves, down to single
//! records (a record refused alone is rejected); other statuses are refused for
//! good and the batch is counted as rejected. Every request
//! carries `User-Agent: logtrain/VERSION` and, when configured,
//! `Authorization` from the URL's credentials.

use std::collections::VecDeque;
use std::io::{self, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue, InvalidHeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use super::dial::Endpoint;
use super::driver::{Delivery, Sink, SinkError};
use super::tls::{self, TlsConnector};
use super::url::{DrainKind, DrainSpec, HttpOptions};
use crate::encode::framing::{self, Framing};
use crate::encode::{go_json, json};
use crate::record::{Record, SharedRecord};
use crate::time::Timestamp;

/// Longest `Retry-After` honoured; longer requests are clamped.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Response bodies larger than this are an error (bodies are only read for
/// their status and, for Elasticsearch, per-item results).
const MAX_RESPONSE: usize = 64 << 20;

const USER_AGENT: &str = concat!("logtrain/", env!("CARGO_PKG_VERSION"));

/// An HTTP client for one drain's target: where to connect and what to send.
pub struct HttpClient {
    endpoint: Endpoint,
    /// The forward proxy this target is reached through, if any.
    proxy: Option<super::proxy::Proxy>,
    tls: Option<TlsConnector>,
    authority: HeaderValue,
    path: String,
    auth: Option<HeaderValue>,
}

/// A drain URL that cannot be turned into HTTP requests. The header errors
/// never quote the value (it may hold credentials).
#[derive(Debug, thiserror::Error)]
pub enum HttpSetupError {
    /// The spec is not of an HTTP-speaking kind of drain.
    #[error("no HTTP target")]
    NoTarget,
    #[error("credentials are not valid in a header: {0}")]
    Credentials(#[source] InvalidHeaderValue),
    #[error("host and port are not valid in a Host header: {0}")]
    Authority(#[source] InvalidHeaderValue),
    #[error("the drain id is not valid in a Logplex-Drain-Token header: {0}")]
    Token(#[source] InvalidHeaderValue),
}

/// An HTTP exchange that broke off: the cause of the [`SinkError::Io`] it becomes.
#[derive(Debug, thiserror::Error)]
enum Broken {
    #[error("HTTP request failed: {0}")]
    Request(#[source] hyper::Error),
    #[error("reading the HTTP response failed: {0}")]
    Response(#[source] crate::BoxError),
}

impl HttpClient {
    /// A client for the target of `spec`'s [`HttpOptions`], with TLS when the
    /// target is `https`.
    pub fn new(spec: &DrainSpec, tls: Option<TlsConnector>) -> Result<Self, HttpSetupError> {
        let HttpOptions { target, auth, .. } = spec.kind.http().ok_or(HttpSetupError::NoTarget)?;
        let host_port = if spec.host.contains(':') {
            format!("[{}]:{}", spec.host, spec.port)
        } else {
            format!("{}:{}", spec.host, spec.port)
        };
        let mut path = target.path().to_string();
        if path.is_empty() {
            path.push('/');
        }
        if let Some(q) = target.query() {
            path.push('?');
            path.push_str(q);
        }
        let auth = match auth.header() {
            Some(h) => Some(HeaderValue::try_from(h).map_err(HttpSetupError::Credentials)?),
            None => None,
        };
        Ok(HttpClient {
            endpoint: Endpoint::of(spec),
            proxy: super::proxy::for_target(tls.is_some(), &spec.host),
            tls,
            authority: HeaderValue::try_from(host_port).map_err(HttpSetupError::Authority)?,
            path,
            auth,
        })
    }

    /// Opens one HTTP/1.1 connection.
    pub async fn connect(&self) -> Result<HttpConn, SinkError> {
        let stream = match &self.proxy {
            Some(p) => tls::over(self.endpoint.connect_via(p).await?, self.tls.as_ref()).await?,
            None => tls::connect(&self.endpoint, self.tls.as_ref()).await?,
        };
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| SinkError::connect("HTTP handshake", io::Error::other(e)))?;
        let task = tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(error = %e, "HTTP drain connection ended.");
            }
        });
        Ok(HttpConn {
            sender: Some(sender),
            task: Some(task),
            buf: Vec::with_capacity(64 << 10),
        })
    }

    /// POSTs `body` with `headers` and reads the whole answer. A connection
    /// the server closed while idle is replaced first (no request was lost).
    pub async fn post(
        &self,
        conn: &mut HttpConn,
        headers: &[(HeaderName, HeaderValue)],
        body: Bytes,
    ) -> Result<Response, SinkError> {
        let usable = match conn.sender.as_mut() {
            Some(s) if !s.is_closed() => s.ready().await.is_ok(),
            _ => false,
        };
        if !usable {
            let mut fresh = self.connect().await?;
            conn.sender = fresh.sender.take();
            if let Some(old) = std::mem::replace(&mut conn.task, fresh.task.take()) {
                old.abort();
            }
        }
        let sender = conn.sender.as_mut().expect("connected above");
        let mut req = Request::post(&self.path)
            .header(header::HOST, self.authority.clone())
            .header(header::USER_AGENT, USER_AGENT)
            .header(header::CONTENT_LENGTH, body.len());
        if let Some(a) = &self.auth {
            req = req.header(header::AUTHORIZATION, a.clone());
        }
        for (k, v) in headers {
            req = req.header(k, v);
        }
        let req = req.body(Full::new(body)).map_err(|e| SinkError::Request(e.into()))?;
        let resp = sender.send_request(req).await.map_err(|e| {
            conn.sender = None;
            SinkError::Io(io::Error::other(Broken::Request(e)))
        })?;
        let (parts, body) = resp.into_parts();
        let body = match Limited::new(body, MAX_RESPONSE).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                conn.sender = None;
                return Err(SinkError::Io(io::Error::other(Broken::Response(e))));
            }
        };
        Ok(Response {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }
}

/// One HTTP/1.1 keep-alive connection.
pub struct HttpConn {
    sender: Option<SendRequest<Full<Bytes>>>,
    task: Option<JoinHandle<()>>,
    /// Encode buffer reused across batches.
    pub buf: Vec<u8>,
}

impl Drop for HttpConn {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// A complete HTTP answer.
#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Response {
    /// Maps the status: 2xx is `Ok`, 429/408/5xx retryable, 413 too large
    /// (sent again in halves), others refused.
    pub fn check(&self) -> Result<(), SinkError> {
        let s = self.status.as_u16();
        if self.status.is_success() {
            return Ok(());
        }
        if s == 429 || s == 408 || self.status.is_server_error() {
            return Err(SinkError::Unavailable {
                status: s,
                retry_after: self.retry_after(),
            });
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            return Err(SinkError::TooLarge {
                bytes: None,
                records: None,
                limit: None,
                body: self.snippet(),
            });
        }
        Err(SinkError::Refused {
            status: s,
            body: self.snippet(),
        })
    }

    /// `Retry-After` in seconds (HTTP dates are ignored: the backoff applies).
    pub fn retry_after(&self) -> Option<Duration> {
        let v = self.headers.get(header::RETRY_AFTER)?.to_str().ok()?;
        let secs: u64 = v.trim().parse().ok()?;
        Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
    }

    /// The start of the body, for error messages.
    pub fn snippet(&self) -> String {
        let b = &self.body[..self.body.len().min(300)];
        String::from_utf8_lossy(b).trim().replace(['\n', '\r'], " ")
    }
}

/// Remembers the frame id of recent batches so a batch sent again carries the
/// same `Logplex-Frame-Id`. A batch is recognised by its first record: the weak
/// reference keeps that allocation reserved, so an equal pointer is the same
/// record, never a new one at a recycled address.
#[derive(Default)]
struct FrameIds {
    recent: Mutex<VecDeque<(Weak<Record>, usize, HeaderValue)>>,
}

impl FrameIds {
    const KEEP: usize = 128;

    fn for_batch(&self, batch: &[SharedRecord]) -> HeaderValue {
        let Some(first) = batch.first() else {
            return HeaderValue::from_static("0");
        };
        let mut recent = self.recent.lock();
        if let Some((_, _, id)) = recent
            .iter()
            .find(|(w, n, _)| *n == batch.len() && std::ptr::eq(w.as_ptr(), Arc::as_ptr(first)))
        {
            return id.clone();
        }
        let id = HeaderValue::try_from(format!("{:032x}", rand::random::<u128>())).expect("hex is a valid header");
        if recent.len() >= Self::KEEP {
            recent.pop_front();
        }
        recent.push_back((Arc::downgrade(first), batch.len(), id.clone()));
        id
    }
}

/// `syslog+http(s)://`: logplex frames (or newline-delimited syslog).
pub struct SyslogHttpSink {
    client: HttpClient,
    framing: Framing,
    token: HeaderValue,
    frames: FrameIds,
}

impl SyslogHttpSink {
    pub fn new(spec: &DrainSpec, tls: Option<TlsConnector>) -> Result<Self, HttpSetupError> {
        Ok(SyslogHttpSink {
            client: HttpClient::new(spec, tls)?,
            framing: match &spec.kind {
                DrainKind::SyslogHttp { framing, .. } => *framing,
                _ => Framing::OctetCounting,
            },
            token: HeaderValue::try_from(spec.id.as_str()).map_err(HttpSetupError::Token)?,
            frames: FrameIds::default(),
        })
    }
}

impl Sink for SyslogHttpSink {
    type Conn = HttpConn;

    async fn connect(&self) -> Result<HttpConn, SinkError> {
        self.client.connect().await
    }

    async fn send(&self, conn: &mut HttpConn, batch: &[SharedRecord]) -> Result<Delivery, SinkError> {
        let mut buf = std::mem::take(&mut conn.buf);
        buf.clear();
        let now = Timestamp::now();
        let headers: Vec<(HeaderName, HeaderValue)> = match self.framing {
            Framing::OctetCounting => {
                for r in batch {
                    framing::octet_counted(r, now, &mut buf);
                }
                vec![
                    (header::CONTENT_TYPE, HeaderValue::from_static("application/logplex-1")),
                    (
                        HeaderName::from_static("logplex-msg-count"),
                        HeaderValue::from(batch.len()),
                    ),
                    (
                        HeaderName::from_static("logplex-frame-id"),
                        self.frames.for_batch(batch),
                    ),
                    (HeaderName::from_static("logplex-drain-token"), self.token.clone()),
                ]
            }
            Framing::Newline => {
                for r in batch {
                    framing::newline_delimited(r, now, &mut buf);
                }
                vec![(header::CONTENT_TYPE, HeaderValue::from_static("application/syslog"))]
            }
        };
        let len = buf.len() as u64;
        let body = Bytes::from(buf);
        let resp = self.client.post(conn, &headers, body).await?;
        conn.buf = Vec::with_capacity(len as usize);
        resp.check()?;
        Ok(Delivery {
            bytes: len,
            ..Delivery::default()
        })
    }
}

/// `http(s)://`: NDJSON, gzip unless the receiver refuses it.
pub struct JsonHttpSink {
    /// The drain's id, for logs (the request path may hold a token).
    id: String,
    client: HttpClient,
    gzip: AtomicBool,
    /// `parse=json`, `labels=`.
    json: json::JsonOptions,
    /// `body=go`: one POST per record with the Go logtrain's body.
    go_body: bool,
}

impl JsonHttpSink {
    pub fn new(spec: &DrainSpec, tls: Option<TlsConnector>) -> Result<Self, HttpSetupError> {
        Ok(JsonHttpSink {
            id: spec.id.clone(),
            client: HttpClient::new(spec, tls)?,
            gzip: AtomicBool::new(true),
            json: json::JsonOptions::of(spec),
            go_body: spec.kind.http().is_some_and(|h| h.go_body),
        })
    }
}

impl JsonHttpSink {
    /// `body=go`: each record in a request of its own, in order. A record
    /// refused for good is rejected and the rest go on; any other failure
    /// sends the records from it on again (or fails the batch when it is the
    /// first).
    async fn send_one_by_one(&self, conn: &mut HttpConn, batch: &[SharedRecord]) -> Result<Delivery, SinkError> {
        let now = Timestamp::now();
        let headers = [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))];
        let mut d = Delivery::default();
        for (i, r) in batch.iter().enumerate() {
            conn.buf.clear();
            go_json::encode(r, now, &mut conn.buf);
            let len = conn.buf.len() as u64;
            let answer = match self
                .client
                .post(conn, &headers, Bytes::copy_from_slice(&conn.buf))
                .await
            {
                Ok(resp) => resp.check(),
                Err(e) => Err(e),
            };
            match answer {
                Ok(()) => d.bytes += len,
                Err(e) if !e.retryable() => d.rejected.push(i),
                Err(e) if i == 0 => return Err(e),
                Err(e) => {
                    if let SinkError::Unavailable { retry_after, .. } = &e {
                        d.retry_after = *retry_after;
                    }
                    d.retry = (i..batch.len()).collect();
                    break;
                }
            }
        }
        Ok(d)
    }
}

/// Gzips `plain` (fast level: logs compress well even so).
fn gzip(plain: &[u8]) -> io::Result<Vec<u8>> {
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(plain.len() / 4 + 64), flate2::Compression::fast());
    enc.write_all(plain)?;
    enc.finish()
}

impl Sink for JsonHttpSink {
    type Conn = HttpConn;

    async fn connect(&self) -> Result<HttpConn, SinkError> {
        self.client.connect().await
    }

    async fn send(&self, conn: &mut HttpConn, batch: &[SharedRecord]) -> Result<Delivery, SinkError> {
        if self.go_body {
            return self.send_one_by_one(conn, batch).await;
        }
        conn.buf.clear();
        let now = Timestamp::now();
        for r in batch {
            json::encode(r, now, &self.json, &mut conn.buf);
            conn.buf.push(b'\n');
        }
        let ndjson = HeaderValue::from_static("application/x-ndjson");
        loop {
            let compress = self.gzip.load(Ordering::Relaxed);
            let (body, headers) = if compress {
                (
                    Bytes::from(gzip(&conn.buf)?),
                    vec![
                        (header::CONTENT_TYPE, ndjson.clone()),
                        (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
                    ],
                )
            } else {
                (
                    Bytes::copy_from_slice(&conn.buf),
                    vec![(header::CONTENT_TYPE, ndjson.clone())],
                )
            };
            let len = body.len() as u64;
            let resp = self.client.post(conn, &headers, body).await?;
            if compress && resp.status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
                if self.gzip.swap(false, Ordering::Relaxed) {
                    info!(drain = %self.id, "HTTP drain receiver refuses gzip; sending uncompressed from now on.");
                }
                continue;
            }
            resp.check()?;
            return Ok(Delivery {
                bytes: len,
                ..Delivery::default()
            });
        }
    }
}

#[cfg(test)]
mod tests;
