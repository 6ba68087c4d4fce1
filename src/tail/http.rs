//! The live-tail endpoints of the HTTP server:
//!
//! | request | answer |
//! |---|---|
//! | `GET /tail?hostname=H[&severity=L][&match=RE]` | 200, chunked: H's records from now on, one RFC 5424 line each |
//! | `POST /tails` `{"hostname": H}` | 201 `{"id", "url"}` (the Go logtail API); the URL streams as above |
//! | `GET /tails/ID` | the stream of a tail created with POST, opened once within [`OPEN_WITHIN`] |
//! | `GET /routes` | the routing table as JSON ([`super::routes`]) |
//!
//! Errors: 400 naming the bad parameter; 401 without the bearer token when
//! `HTTP_TOKEN` is set; 404 for an unknown or expired tail; 503 when
//! `TAIL_MAX_SESSIONS` streams are open. A stream ends after [`STREAM_LASTS`].
//! Nothing here routes a record: it only opens subscriptions.

use std::collections::HashMap;
use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HOST, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use tracing::info;

use super::body::TailBody;
pub use super::pending::OPEN_WITHIN;
use super::pending::{Ask, Waiting};
use super::{Filter, Refused, Tails};
use crate::route::Routes;

/// A stream ends after this (the client may open another).
pub const STREAM_LASTS: Duration = Duration::from_secs(30 * 60);
/// Longest query string or POST body accepted.
const MAX_QUERY: usize = 4096;

pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The live-tail side of the HTTP server.
pub struct TailEndpoints {
    tails: Tails,
    routes: Routes,
    waiting: Waiting,
    /// How long a `POST /tails` body may take to arrive (`INPUT_IDLE_TIMEOUT`):
    /// a request in flight is never evicted, so a trickled body must end.
    body_within: Duration,
}

fn full(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()).boxed_unsync());
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, content_type.parse().expect("static header"));
    r
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    full(status, "text/plain; charset=utf-8", body)
}

/// 401 with the challenge, as the POST endpoints answer it.
/// The answer when live tails are off: `TAIL_ACCESS=token` and no `HTTP_TOKEN`.
pub fn closed() -> Response<Body> {
    text(
        StatusCode::FORBIDDEN,
        "live tail is off: set HTTP_TOKEN (and send it), or TAIL_ACCESS=open\n",
    )
}

pub fn unauthorized() -> Response<Body> {
    let mut r = text(StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n");
    r.headers_mut()
        .insert(WWW_AUTHENTICATE, "Bearer".parse().expect("static header"));
    r
}

impl TailEndpoints {
    pub fn new(routes: Routes, max_sessions: usize, body_within: Duration) -> Self {
        let tails = routes.live().clone();
        tails.set_max_sessions(max_sessions);
        TailEndpoints {
            tails,
            routes,
            waiting: Waiting::new(max_sessions.saturating_mul(4)),
            body_within,
        }
    }

    /// Whether this request is one of ours (checked before the token).
    pub fn serves(path: &str) -> bool {
        matches!(path, "/tail" | "/tails" | "/routes") || path.starts_with("/tails/")
    }

    /// Answers a request [`TailEndpoints::serves`]; `keep` is held while a stream runs.
    pub async fn handle(&self, req: Request<Incoming>, keep: Box<dyn Send + Sync>) -> Response<Body> {
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        if query.len() > MAX_QUERY {
            return text(StatusCode::URI_TOO_LONG, "query string too long\n");
        }
        let q: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let get = |k: &str| q.get(k).map(String::as_str);
        match (req.method().clone(), path.as_str()) {
            (Method::GET, "/tail") => match get("hostname").filter(|h| !h.is_empty()) {
                Some(h) => self.stream(h, get("severity"), get("match"), keep),
                None => text(StatusCode::BAD_REQUEST, "hostname is required: /tail?hostname=H\n"),
            },
            (Method::GET, "/routes") => full(
                StatusCode::OK,
                "application/json",
                super::routes::json(&self.routes.snapshot()),
            ),
            (Method::POST, "/tails") => {
                let host = req
                    .headers()
                    .get(HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string);
                self.create(req.into_body(), host).await
            }
            (Method::GET, p) if p.starts_with("/tails/") => {
                let id = &p["/tails/".len()..];
                match self.waiting.take(id) {
                    Some(p) => self.stream(
                        &p.hostname,
                        get("severity").or(p.severity.as_deref()),
                        get("match").or(p.pattern.as_deref()),
                        keep,
                    ),
                    None => text(StatusCode::NOT_FOUND, "no such tail (or it expired unopened)\n"),
                }
            }
            (_, "/tails") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"),
            _ => text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n"),
        }
    }

    fn stream(
        &self,
        hostname: &str,
        severity: Option<&str>,
        pattern: Option<&str>,
        keep: Box<dyn Send + Sync>,
    ) -> Response<Body> {
        let filter = match Filter::new(severity, pattern) {
            Ok(f) => f,
            Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        };
        match self.tails.subscribe(Bytes::from(hostname.to_string()), filter) {
            Ok(sub) => {
                info!(hostname, sessions = self.tails.sessions(), "Live tail opened.");
                let body = TailBody::new(sub, STREAM_LASTS, keep).boxed_unsync();
                let mut r = Response::new(body);
                r.headers_mut().insert(
                    CONTENT_TYPE,
                    "text/plain; charset=utf-8".parse().expect("static header"),
                );
                r
            }
            Err(e @ Refused::Full(_)) => {
                let mut r = text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n"));
                r.headers_mut().insert(RETRY_AFTER, "5".parse().expect("static header"));
                r
            }
        }
    }

    /// `POST /tails`: remembers a tail to open, answers where.
    async fn create(&self, body: Incoming, host: Option<String>) -> Response<Body> {
        let limited = http_body_util::Limited::new(body, MAX_QUERY);
        let bytes = match tokio::time::timeout(self.body_within, limited.collect()).await {
            Ok(Ok(b)) => b.to_bytes(),
            Err(_) => {
                return text(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("body not received within {}s\n", self.body_within.as_secs()),
                );
            }
            Ok(Err(_)) => {
                return text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body larger than {MAX_QUERY} bytes\n"),
                );
            }
        };
        let ask: Ask = match serde_json::from_slice(&bytes) {
            Ok(a) => a,
            Err(e) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    format!("expected {{\"hostname\": \"…\"}}: {e}\n"),
                );
            }
        };
        if ask.hostname.is_empty() {
            return text(StatusCode::BAD_REQUEST, "hostname is required\n");
        }
        if let Err(e) = Filter::new(ask.severity.as_deref(), ask.pattern.as_deref()) {
            return text(StatusCode::BAD_REQUEST, format!("{e}\n"));
        }
        let Some(id) = self.waiting.create(ask) else {
            let mut r = text(StatusCode::SERVICE_UNAVAILABLE, "too many tails waiting to be opened\n");
            r.headers_mut().insert(RETRY_AFTER, "5".parse().expect("static header"));
            return r;
        };
        let url = match host {
            Some(h) => format!("http://{h}/tails/{id}"),
            None => format!("/tails/{id}"),
        };
        full(
            StatusCode::CREATED,
            "application/json",
            serde_json::json!({ "id": id, "url": url }).to_string(),
        )
    }
}
