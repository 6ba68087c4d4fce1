//! The one HTTP server of logtrain (HTTP/1.1 and h2c on `HTTP_PORT`): health,
//! readiness and metrics always, plus the HTTP inputs when enabled.
//!
//! | request | answer |
//! |---|---|
//! | `GET /healthz` | 200 `ok` |
//! | `GET /readyz` | 200 when the routes are loaded and every listener is bound, else 503 |
//! | `GET /metrics` | 200, Prometheus text format 0.0.4 |
//! | `POST HTTP_SYSLOG_PATH` | RFC 5424 frames, octet-counted (logplex) or newline-delimited |
//! | `POST HTTP_EVENTS_PATH` | JSON events, one object or an array ([`events`]) |
//! | `GET /tail`, `POST /tails`, `GET /tails/ID`, `GET /routes` | live tail ([`crate::tail::http`]) |
//!
//! POST answers: 200 once every record is queued; 400 naming the first bad
//! frame or event — and then **no** record of that body is accepted, so the
//! sender can fix and resend it whole; 401 without the bearer token when
//! `HTTP_TOKEN` is set; 405 for another method; 408 when the body does not
//! arrive within `INPUT_IDLE_TIMEOUT`; 413 over `HTTP_MAX_BODY`; 503
//! with `Retry-After` when a target drain has no room (checked before
//! accepting: nothing is accepted and then dropped) or when the input memory
//! budget cannot hold the body and its records (the body as it is read, each
//! record as it is decoded, given back once the records are queued). Answers
//! never reveal configuration.
//!
//! Connections come from the shared capped [`Listener`], which at the cap
//! evicts the longest-idle connection (never one with a request in flight):
//! the kubelet's probes get in however many silent connections hold the slots.

pub mod events;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, ALLOW, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::InputError;
use super::budget::{Budget, Lease, Pressure, Spent, record_cost};
use super::listener::{AtCap, Conn, Listener};
use super::stats::InputStats;
use super::syslog::framing::{Decoded, Decoder};
use super::syslog::{Limits, listen_addr, parse};
use crate::app::App;
use crate::config::TailAccess;
use crate::record::{InputKind, Record};
use crate::route::Router;
use crate::shutdown::Shutdown;
use crate::tail::http::TailEndpoints;
use crate::telemetry;

/// How long a POST may wait for drain queues that were checked to have room.
const QUEUE_WAIT: Duration = Duration::from_secs(5);

/// HTTP/2 flow-control windows (per stream and per connection): what a client
/// may send before a body is read, outside the memory budget.
const H2_WINDOW: u32 = 256 << 10;

/// Why a POST body yields no records.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// A bad frame or event; the message names it.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Spent(#[from] Spent),
}

/// Why a body could not be read whole.
#[derive(Debug, thiserror::Error)]
enum BodyError {
    #[error("body larger than the limit")]
    TooBig,
    #[error(transparent)]
    Spent(#[from] Spent),
    #[error("cannot read the body: {0}")]
    Read(hyper::Error),
}

type Resp = Response<Full<Bytes>>;

/// One POST endpoint.
struct Endpoint {
    path: String,
    router: Router,
    stats: InputStats,
    pressure: Pressure,
}

struct Server {
    syslog: Option<Endpoint>,
    events: Option<Endpoint>,
    token: Option<crate::secret::Secret>,
    max_body: usize,
    limits: Limits,
    budget: Budget,
    app_ready: watch::Receiver<bool>,
    bound: Arc<AtomicBool>,
    live: TailEndpoints,
    /// Who may use the live-tail endpoints (`TAIL_ACCESS`).
    tail_access: TailAccess,
}

/// Binds `HTTP_PORT` and spawns the server. `bound` turns true once every
/// listener is up (it gates `/readyz`); bodies are held from `budget`.
pub async fn start(app: &App, bound: Arc<AtomicBool>, budget: &Budget) -> Result<SocketAddr, InputError> {
    let c = &app.config;
    let addr = listen_addr(app, "http", c.http_port)?;
    let limits = Limits::from_app(app);
    let listener = Listener::bind(addr, limits.listener("http", AtCap::EvictIdlest)).await?;
    let local = listener.local_addr();
    let endpoint = |on: bool, path: &str, kind: InputKind| {
        on.then(|| Endpoint {
            path: path.to_string(),
            router: app.router(kind),
            stats: InputStats::new(kind),
            pressure: Pressure::new(kind.as_str()),
        })
    };
    let idle = limits.idle_timeout;
    let server = Arc::new(Server {
        syslog: endpoint(c.http_syslog, &c.http_syslog_path, InputKind::HttpSyslog),
        events: endpoint(c.http_events, &c.http_events_path, InputKind::HttpEvents),
        token: c.http_token.clone().filter(|t| !t.is_empty()),
        max_body: c.http_max_body.max(1),
        limits,
        budget: budget.clone(),
        app_ready: app.readiness(),
        bound,
        live: TailEndpoints::new(app.routes.clone(), c.tail_max_sessions, idle),
        tail_access: c.tail_access,
    });
    info!(
        addr = %local,
        syslog = c.http_syslog,
        events = c.http_events,
        "HTTP server started."
    );
    let sd = app.inputs().clone();
    let tails = app.routes.live().clone();
    let stopping = sd.clone();
    // Open streams end at shutdown, so the server's graceful stop does not wait for them.
    app.inputs().spawn(async move {
        stopping.stopped().await;
        tails.close_all();
    });
    app.inputs()
        .spawn(listener.run(sd.clone(), move |conn| serve(server.clone(), conn, sd.clone())));
    Ok(local)
}

/// Serves one connection (HTTP/1.1 or h2c) until it ends or shutdown; each
/// request marks the connection busy while it runs.
async fn serve(server: Arc<Server>, conn: Conn, sd: Shutdown) {
    let peer = conn.peer();
    let link = conn.link();
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(server.limits.idle_timeout);
    builder
        .http2()
        .initial_stream_window_size(H2_WINDOW)
        .initial_connection_window_size(H2_WINDOW);
    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
        let server = server.clone();
        let busy = link.request();
        async move {
            if TailEndpoints::serves(req.uri().path()) {
                match server.tail_access {
                    TailAccess::Open => {}
                    TailAccess::Token if server.token.is_none() => return Ok(crate::tail::http::closed()),
                    TailAccess::Token if !server.authorized(&req) => {
                        return Ok(crate::tail::http::unauthorized());
                    }
                    TailAccess::Token => {}
                }
                // A stream keeps the connection busy for as long as it runs.
                return Ok(server.live.handle(req, Box::new(busy)).await);
            }
            let _busy = busy;
            Ok::<_, Infallible>(server.handle(req).await.map(|b| b.boxed_unsync()))
        }
    });
    let conn = builder.serve_connection(TokioIo::new(conn), svc);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => if let Err(e) = r { debug!(%peer, error = %e, "HTTP connection ended."); },
        _ = sd.stopped() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Reads a body whole (at most `max` bytes), holding its buffer from `lease`
/// as it grows.
async fn read_body(mut body: Incoming, max: usize, lease: &mut Lease) -> Result<Bytes, BodyError> {
    let mut buf = BytesMut::with_capacity(lease.held().min(max));
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.map_err(BodyError::Read)?.into_data() else {
            continue;
        };
        let need = buf.len() + data.len();
        if need > max {
            return Err(BodyError::TooBig);
        }
        if need > buf.capacity() {
            let cap = need.max(buf.capacity() * 2).min(max);
            lease.try_resize(cap.max(lease.held()))?;
            buf.reserve(cap - buf.len());
        }
        buf.extend_from_slice(&data);
    }
    Ok(buf.freeze())
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        "text/plain; charset=utf-8".parse().expect("static header"),
    );
    r
}

fn with(mut r: Resp, name: hyper::header::HeaderName, value: &'static str) -> Resp {
    r.headers_mut().insert(name, value.parse().expect("static header"));
    r
}

/// Compares without an early exit, so timing does not reveal the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Server {
    /// Whether the request carries the bearer token (always, without `HTTP_TOKEN`).
    fn authorized(&self, req: &Request<Incoming>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = req.headers().get(AUTHORIZATION).map(|v| v.as_bytes()).unwrap_or(b"");
        let want = format!("Bearer {}", token.expose());
        same(given, want.as_bytes())
    }

    async fn handle(&self, req: Request<Incoming>) -> Resp {
        let path = req.uri().path();
        for (ep, events) in [(&self.syslog, false), (&self.events, true)] {
            if let Some(ep) = ep.as_ref().filter(|e| e.path == path) {
                return self.post(ep, events, req).await;
            }
        }
        let get = matches!(*req.method(), Method::GET | Method::HEAD);
        match path {
            "/healthz" | "/readyz" | "/metrics" if !get => with(
                text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
                ALLOW,
                "GET, HEAD",
            ),
            "/healthz" => text(StatusCode::OK, "ok\n"),
            "/readyz" if *self.app_ready.borrow() && self.bound.load(Ordering::Acquire) => {
                text(StatusCode::OK, "ready\n")
            }
            "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
            "/metrics" => {
                let accept = req.headers().get(ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
                let (content_type, openmetrics) = telemetry::content_type(accept);
                with(
                    text(StatusCode::OK, telemetry::render_as(openmetrics)),
                    CONTENT_TYPE,
                    content_type,
                )
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    async fn post(&self, ep: &Endpoint, events: bool, req: Request<Incoming>) -> Resp {
        if req.method() != Method::POST {
            return with(text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"), ALLOW, "POST");
        }
        if !self.authorized(&req) {
            return with(
                text(StatusCode::UNAUTHORIZED, "missing or wrong bearer token\n"),
                WWW_AUTHENTICATE,
                "Bearer",
            );
        }
        let too_big = || {
            text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body larger than {} bytes\n", self.max_body),
            )
        };
        let declared = req
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max_body as u64) {
            return too_big();
        }
        let mut lease = self.budget.lease();
        if let Some(n) = declared {
            if n > self.budget.limit() as u64 {
                return text(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    format!("body larger than the {} bytes of input memory\n", self.budget.limit()),
                );
            }
            if let Err(e) = lease.try_grow(n as usize) {
                return self.spent(ep, &e);
            }
        }
        // The whole body must arrive within the idle timeout: a sender that
        // trickles it cannot hold a connection (and its buffer) for ever.
        let read = read_body(req.into_body(), self.max_body, &mut lease);
        let body = match tokio::time::timeout(self.limits.idle_timeout, read).await {
            Ok(Ok(b)) => b,
            Ok(Err(BodyError::TooBig)) => return too_big(),
            Ok(Err(BodyError::Spent(e))) => return self.spent(ep, &e),
            Ok(Err(e)) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
            Err(_) => {
                debug!(input = ep.stats.kind.as_str(), "A POST body did not arrive in time.");
                return text(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("body not received within {}s\n", self.limits.idle_timeout.as_secs()),
                );
            }
        };
        let len = body.len();
        let body_held = lease.held();
        let mut keep = |r: &Record| lease.try_grow(record_cost(r));
        let parsed = if events {
            let parsed = events::parse_with(&body, &mut keep);
            drop(body);
            parsed
        } else {
            syslog_records(body, self.limits.max_line, self.limits.max_frame, &mut keep)
        };
        // The records are copies: the body is gone, its bytes go back.
        lease.shrink(lease.held().saturating_sub(body_held));
        match parsed {
            Ok(records) => self.deliver(ep, records, len).await,
            Err(Refused::Spent(e)) => self.spent(ep, &e),
            Err(Refused::Invalid(reason)) => {
                ep.stats.parse_errors.inc();
                debug!(input = ep.stats.kind.as_str(), %reason, "Refused a POST body.");
                text(
                    StatusCode::BAD_REQUEST,
                    format!("{reason}; no records of this body were accepted\n"),
                )
            }
        }
    }

    /// The memory budget cannot hold this body or its records: 503, retry later.
    fn spent(&self, ep: &Endpoint, e: &Spent) -> Resp {
        ep.pressure.spent(e, "answered 503");
        with(
            text(StatusCode::SERVICE_UNAVAILABLE, "input memory is spent; retry later\n"),
            RETRY_AFTER,
            "1",
        )
    }

    async fn deliver(&self, ep: &Endpoint, records: Vec<Record>, bytes: usize) -> Resp {
        let n = records.len();
        let busy = || {
            with(
                text(StatusCode::SERVICE_UNAVAILABLE, "drain queues are full; retry later\n"),
                RETRY_AFTER,
                "1",
            )
        };
        {
            let table = ep.router.routes().load();
            if records.iter().any(|r| !ep.router.has_room(&table, &r.hostname)) {
                ep.stats.rejected.add(n as u64);
                return busy();
            }
        }
        let deadline = tokio::time::Instant::now() + QUEUE_WAIT;
        for (i, rec) in records.into_iter().enumerate() {
            if tokio::time::timeout_at(deadline, ep.router.send(rec)).await.is_err() {
                ep.stats.records.add(i as u64);
                ep.stats.rejected.add((n - i) as u64);
                warn!(
                    input = ep.stats.kind.as_str(),
                    queued = i,
                    of = n,
                    "Drain queues filled during a POST."
                );
                return with(
                    text(
                        StatusCode::SERVICE_UNAVAILABLE,
                        format!("drain queues filled: the first {i} of {n} records were queued, retry the rest\n"),
                    ),
                    RETRY_AFTER,
                    "1",
                );
            }
        }
        ep.stats.records.add(n as u64);
        ep.stats.bytes.add(bytes as u64);
        text(StatusCode::OK, format!("accepted {n}\n"))
    }
}

/// Every record of a `POST HTTP_SYSLOG_PATH` body (octet-counted or
/// newline-delimited frames), or the first bad frame (0-based index).
pub fn syslog_body(body: Bytes, max_line: usize, max_frame: usize) -> Result<Vec<Record>, String> {
    syslog_records(body, max_line, max_frame, &mut |_| Ok(())).map_err(|e| e.to_string())
}

/// [`syslog_body`], handing each record to `keep` (which may refuse it: the
/// memory budget) before decoding the next.
pub fn syslog_records(
    body: Bytes,
    max_line: usize,
    max_frame: usize,
    keep: &mut dyn FnMut(&Record) -> Result<(), Spent>,
) -> Result<Vec<Record>, Refused> {
    let bad = |i: usize, e: &dyn std::fmt::Display| Refused::Invalid(format!("frame {i}: {e}"));
    let mut buf = BytesMut::from(body);
    let mut dec = Decoder::new(max_line, max_frame);
    let mut out = Vec::new();
    loop {
        let i = out.len();
        let frame = match dec.decode(&mut buf) {
            Ok(Some(Decoded::Frame(f))) => f,
            Ok(Some(Decoded::Truncated(_))) => {
                return Err(bad(i, &format!("line longer than {max_line} bytes")));
            }
            Ok(Some(Decoded::Skipped { declared })) => {
                return Err(bad(
                    i,
                    &format!("octet count {declared} is larger than {max_frame} bytes"),
                ));
            }
            Ok(None) => match dec.decode_eof(&mut buf) {
                Ok(Some(Decoded::Frame(f))) => f,
                Ok(_) => return Ok(out),
                Err(e) => return Err(bad(i, &e)),
            },
            Err(e) => return Err(bad(i, &e)),
        };
        let rec = parse::parse(&frame, InputKind::HttpSyslog).map_err(|e| bad(i, &e))?;
        keep(&rec)?;
        out.push(rec);
    }
}
