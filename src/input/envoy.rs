//! Envoy access-log input (`ENVOY`, `ENVOY_PORT`): a gRPC server for Envoy's v3
//! `AccessLogService/StreamAccessLogs`. Every HTTP and TCP entry whose upstream
//! cluster names a Kubernetes service becomes one record, routed by hostname
//! like every other input (see [`entry`] for the record layout).
//!
//! Memory follows the wire. A stream reads its request body frame by frame,
//! assembles one gRPC message at a time ([`grpc`], 4 MiB at most) in a buffer
//! held from the input memory budget, then walks it entry by entry ([`wire`]),
//! converting and routing each entry before the next is decoded: a message of
//! two million empty entries costs its 4 MiB, never two million structs. While
//! the budget is spent a stream ends with `RESOURCE_EXHAUSTED` (Envoy opens a
//! new one).
//!
//! The service is lossy by Envoy's design: records are offered to drains without
//! waiting, and full queues drop and count. A bad entry never ends a stream; a
//! message that is not valid protobuf ends only its own stream, with an error.
//! Connections come from the shared capped listener, which at the cap evicts
//! the longest-idle connection: an Envoy's open stream is a request in flight,
//! so a live Envoy is never evicted to admit a silent peer. On shutdown the
//! listener stops accepting and every stream ends after the message it is
//! handling.

pub mod entry;
mod grpc;
pub mod proto;
pub mod wire;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use prost::Message;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;
use tracing::{debug, info, warn};

use self::entry::{Converted, Naming};
use self::grpc::{FrameError, Framer};
use self::wire::{Part, WireError};
use crate::app::App;
use crate::config::Config;
use crate::input::InputError;
use crate::input::budget::{Budget, Lease, Pressure};
use crate::input::listener::{AtCap, Listener, Peer, Settings};
use crate::record::InputKind;
use crate::route::{RouteTable, Router};
use crate::shutdown::Shutdown;
use crate::telemetry::{self, Counter, OnceLog};
use crate::time::Timestamp;

const INPUT: &str = "envoy";
/// The one method served.
const METHOD: &str = "/envoy.service.accesslog.v3.AccessLogService/StreamAccessLogs";
/// Connections served at once; at the cap the longest-idle one makes room.
const MAX_CONNECTIONS: usize = 256;
/// Concurrent streams per connection (Envoy opens one per worker and log name).
const MAX_STREAMS_PER_CONNECTION: u32 = 64;
/// HTTP/2 flow-control windows: what Envoy may send ahead of the stream
/// reading it (which it does at once), outside the memory budget.
const STREAM_WINDOW: u32 = 256 << 10;
const CONNECTION_WINDOW: u32 = 512 << 10;
/// What converting one entry holds besides twice its encoded bytes (the
/// decoded entry's strings, then the record's message built from them).
const ENTRY_OVERHEAD: usize = 2 << 10;
/// HTTP/2 pings on idle connections, so dead peers are noticed (at most this
/// far apart, and at least twice per `INPUT_IDLE_TIMEOUT`, so a live Envoy's
/// answers keep its connection from counting as idle).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The address `ENVOY_PORT` and `LISTEN_ADDRESS` name.
pub fn address(config: &Config) -> Result<SocketAddr, InputError> {
    let ip: IpAddr = config
        .listen_address
        .trim()
        .parse()
        .map_err(|source| InputError::ListenAddress {
            input: INPUT,
            value: config.listen_address.clone(),
            source,
        })?;
    Ok(SocketAddr::new(ip, config.envoy_port))
}

/// Starts the access-log service on `addr`, holding messages from `budget`;
/// returns the bound address.
pub async fn start(app: &App, addr: SocketAddr, budget: &Budget) -> Result<SocketAddr, InputError> {
    let idle = Duration::from_secs(app.config.input_idle_timeout.max(1));
    let settings = Settings {
        input: INPUT,
        max_connections: MAX_CONNECTIONS,
        idle,
        at_cap: AtCap::EvictIdlest,
    };
    let listener = Listener::bind(addr, settings).await?;
    let local = listener.local_addr();
    let stop = app.inputs().clone();
    let als = Als {
        router: app.router(InputKind::Envoy),
        naming: Naming {
            akkeris: app.config.akkeris,
        },
        stop: stop.clone(),
        events: Events::new(),
        budget: budget.clone(),
    };
    let keepalive = KEEPALIVE_INTERVAL.min(idle / 2);
    let server = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(MAX_STREAMS_PER_CONNECTION as usize)
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .http2_keepalive_interval(Some(keepalive))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT.min(keepalive)))
        .add_service(AccessLogService(Arc::new(als)))
        .serve_with_incoming_shutdown(listener.incoming(), async move { stop.stopped().await });
    app.inputs().spawn(async move {
        match server.await {
            Ok(()) => info!(%local, "Envoy access-log input stopped."),
            Err(error) => warn!(%local, %error, "Envoy access-log input failed."),
        }
    });
    info!(%local, "Envoy access-log input listening.");
    Ok(local)
}

/// The counters of this input, and the logs that go with them.
struct Events {
    records: Counter,
    bytes: Counter,
    parse_errors: Counter,
    incomplete: Counter,
    unnamed: Counter,
    pressure: Pressure,
    once: OnceLog,
}

impl Events {
    fn new() -> Self {
        let l = &[("input", INPUT)];
        Events {
            records: telemetry::counter("logtrain_input_records_total", l),
            bytes: telemetry::counter("logtrain_input_bytes_total", l),
            parse_errors: telemetry::counter("logtrain_input_parse_errors_total", l),
            incomplete: telemetry::counter("logtrain_envoy_incomplete_entries_total", &[]),
            unnamed: telemetry::counter("logtrain_envoy_unnamed_entries_total", &[]),
            pressure: Pressure::new(INPUT),
            once: OnceLog::default(),
        }
    }

    fn malformed(&self, peer: Option<SocketAddr>, status: &Status) {
        self.parse_errors.inc();
        warn!(peer = ?peer, error = %status.message(), "Envoy sent a message that is not an access-log message; stream ended.");
    }

    /// An entry with missing fields; `seen` says whether this stream already
    /// had one (then the log is not even looked up).
    fn incomplete(&self, log_name: &str, seen: &mut bool) {
        self.incomplete.inc();
        if !std::mem::replace(seen, true) && self.once.first(log_name) {
            warn!(%log_name, "Envoy sent an access-log entry with missing fields; defaults used (logged once per log name).");
        }
    }

    fn unnamed(&self) {
        self.unnamed.inc();
    }
}

/// The tonic service: `StreamAccessLogs`, served by hand (see [`grpc`]).
#[derive(Clone)]
struct AccessLogService(Arc<Als>);

impl NamedService for AccessLogService {
    const NAME: &'static str = "envoy.service.accesslog.v3.AccessLogService";
}

impl Service<Request<Body>> for AccessLogService {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Response<Body>, Infallible>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let als = self.0.clone();
        Box::pin(async move { Ok(als.call(req).await) })
    }
}

struct Als {
    router: Router,
    naming: Naming,
    stop: Shutdown,
    events: Events,
    budget: Budget,
}

/// What one stream knows about itself.
struct StreamState {
    peer: Option<SocketAddr>,
    /// From the stream's identifier.
    log_name: String,
    /// An incomplete entry was already counted on this stream.
    saw_incomplete: bool,
}

/// Why handling one message ended its stream.
#[derive(Debug, thiserror::Error)]
enum Stop {
    #[error(transparent)]
    Frame(#[from] FrameError),
    #[error(transparent)]
    Wire(#[from] WireError),
}

impl Als {
    async fn call(&self, req: Request<Body>) -> Response<Body> {
        if req.uri().path() != METHOD {
            return grpc::error(Status::unimplemented(format!(
                "{} is not served here",
                req.uri().path()
            )));
        }
        if let Some(enc) = req.headers().get("grpc-encoding").filter(|v| *v != "identity") {
            return grpc::error(Status::unimplemented(format!("compression {enc:?} is not supported")));
        }
        let peer = req.extensions().get::<Peer>().cloned();
        // The stream is a request in flight: its connection is never idle or evicted.
        let _busy = peer.as_ref().map(|p| p.link.request());
        match self.stream(req.into_body(), peer.map(|p| p.addr)).await {
            Ok(()) => grpc::ok(),
            Err(status) => grpc::error(status),
        }
    }

    /// Reads one stream to its end (or shutdown), handling each message as it completes.
    async fn stream(&self, mut body: Body, peer: Option<SocketAddr>) -> Result<(), Status> {
        let mut framer = Framer::default();
        let mut lease = self.budget.lease();
        let mut st = StreamState {
            peer,
            log_name: String::new(),
            saw_incomplete: false,
        };
        loop {
            let frame = tokio::select! {
                biased;
                _ = self.stop.stopped() => break,
                f = body.frame() => f,
            };
            let mut data = match frame {
                None => {
                    framer.finish().map_err(|e| self.failed(&st, e.into()))?;
                    break;
                }
                Some(Err(status)) => {
                    debug!(peer = ?peer, log_name = %st.log_name, error = %status, "Envoy access-log stream broke.");
                    return Err(status);
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue,
                },
            };
            loop {
                let msg = match framer.feed(&mut data, &mut lease) {
                    Ok(Some(msg)) => msg,
                    Ok(None) => break,
                    Err(e) => return Err(self.failed(&st, e.into())),
                };
                if let Err(e) = self.handle(&msg, &mut lease, &mut st) {
                    return Err(self.failed(&st, e));
                }
                drop(msg);
                lease.shrink(0);
            }
        }
        debug!(peer = ?peer, log_name = %st.log_name, "Envoy access-log stream ended.");
        Ok(())
    }

    /// Counts and logs why a stream ends; returns the status to answer.
    fn failed(&self, st: &StreamState, e: Stop) -> Status {
        let peer = st.peer;
        match e {
            Stop::Frame(FrameError::Spent(spent)) => {
                self.events.pressure.spent(&spent, "answered RESOURCE_EXHAUSTED");
                debug!(peer = ?peer, log_name = %st.log_name, "Envoy access-log stream ended: input memory spent.");
                FrameError::Spent(spent).status()
            }
            Stop::Frame(e) => {
                let status = e.status();
                self.events.malformed(peer, &status);
                status
            }
            Stop::Wire(e) => {
                let status = Status::internal(e.to_string());
                self.events.malformed(peer, &status);
                status
            }
        }
    }

    /// Walks one message, converting and routing each entry before decoding the
    /// next. `lease` holds the message; it also holds, at its high-water mark,
    /// what converting the largest entry so far takes.
    fn handle(&self, msg: &[u8], lease: &mut Lease, st: &mut StreamState) -> Result<(), Stop> {
        let table = self.router.routes().load();
        let now = Timestamp::now();
        let base = lease.held();
        let mut entries = 0usize;
        let mut failed = None;
        let walked = wire::walk(msg, |part| {
            let need = base + 2 * part.len() + ENTRY_OVERHEAD;
            if need > lease.held() {
                if let Err(e) = lease.try_resize(need) {
                    failed = Some(Stop::Frame(e.into()));
                    return ControlFlow::Break(());
                }
            }
            let done = match part {
                Part::Identifier(b) => wire::Identifier::decode(b).map(|id| {
                    let node = id.node.map(|n| n.id).unwrap_or_default();
                    debug!(log_name = %id.log_name, %node, "Envoy access-log stream started.");
                    st.log_name = id.log_name;
                    st.saw_incomplete = false;
                }),
                Part::Http(b) => wire::HttpAccessLogEntry::decode(b).map(|e| {
                    entries += 1;
                    self.offer(&table, entry::http(self.naming, &e, now), st);
                }),
                Part::Tcp(b) => wire::TcpAccessLogEntry::decode(b).map(|e| {
                    entries += 1;
                    self.offer(&table, entry::tcp(self.naming, &e, now), st);
                }),
            };
            match done {
                Ok(()) => ControlFlow::Continue(()),
                Err(e) => {
                    failed = Some(Stop::Wire(e.into()));
                    ControlFlow::Break(())
                }
            }
        });
        if let Some(stop) = failed {
            return Err(stop);
        }
        walked?;
        if entries == 0 {
            debug!(log_name = %st.log_name, "Envoy sent a message without entries.");
        }
        Ok(())
    }

    fn offer(&self, table: &RouteTable, c: Converted, st: &mut StreamState) {
        if c.incomplete {
            self.events.incomplete(&st.log_name, &mut st.saw_incomplete);
        }
        match c.record {
            Some(r) => {
                self.events.records.inc();
                self.events.bytes.add(r.message.len() as u64);
                self.router.offer(table, r);
            }
            None => self.events.unnamed(),
        }
    }
}
