//! Envoy access-log input (`ENVOY`, `ENVOY_PORT`): a gRPC server for Envoy's v3
//! `AccessLogService/StreamAccessLogs`. Every HTTP and TCP entry whose upstream
//! cluster names a Kubernetes service becomes one record, routed by hostname
//! like every other input (see [`entry`] for the record layout).
//!
//! The service is lossy by Envoy's design: records are offered to drains without
//! waiting, and full queues drop and count. A bad entry never ends a stream; a
//! message that is not valid protobuf ends only its own stream, with an error.
//! On shutdown the listener stops accepting and every stream ends after the
//! message it is handling.

pub mod entry;
mod listener;
pub mod proto;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use self::entry::{Converted, Naming};
use self::proto::envoy::service::accesslog::v3::access_log_service_server::{AccessLogService, AccessLogServiceServer};
use self::proto::envoy::service::accesslog::v3::stream_access_logs_message::LogEntries;
use self::proto::envoy::service::accesslog::v3::{StreamAccessLogsMessage, StreamAccessLogsResponse};
use crate::app::App;
use crate::config::Config;
use crate::input::InputError;
use crate::record::InputKind;
use crate::route::{RouteTable, Router};
use crate::shutdown::Shutdown;
use crate::telemetry::{self, Counter, OnceLog};
use crate::time::Timestamp;

const INPUT: &str = "envoy";
/// Connections served at once; more are closed and counted.
const MAX_CONNECTIONS: usize = 256;
/// Concurrent streams per connection (Envoy opens one per worker and log name).
const MAX_STREAMS_PER_CONNECTION: u32 = 64;
/// Largest message accepted; Envoy flushes far smaller batches (16 KiB by default).
const MAX_MESSAGE_BYTES: usize = 4 << 20;
/// HTTP/2 pings on idle connections, so dead peers are noticed (at most this
/// far apart, and at least twice per `INPUT_IDLE_TIMEOUT`, so a live Envoy's
/// answers keep its connection from counting as idle).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The address `ENVOY_PORT` and `LISTEN_ADDRESS` name.
pub fn address(config: &Config) -> Result<SocketAddr, InputError> {
    let ip: IpAddr = config.listen_address.trim().parse().map_err(|_| InputError::Setup {
        input: INPUT,
        reason: format!("LISTEN_ADDRESS={:?} is not an IP address", config.listen_address),
    })?;
    Ok(SocketAddr::new(ip, config.envoy_port))
}

/// Starts the access-log service on `addr`; returns the bound address.
pub async fn start(app: &App, addr: SocketAddr) -> Result<SocketAddr, InputError> {
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| InputError::Bind {
            input: INPUT,
            addr: addr.to_string(),
            source,
        })?;
    let local = tcp.local_addr().map_err(|source| InputError::Bind {
        input: INPUT,
        addr: addr.to_string(),
        source,
    })?;
    let stop = app.inputs().clone();
    let service = Als {
        router: app.router(InputKind::Envoy),
        naming: Naming {
            akkeris: app.config.akkeris,
        },
        stop: stop.clone(),
        events: Events::new(),
    };
    let idle = Duration::from_secs(app.config.input_idle_timeout.max(1));
    let keepalive = KEEPALIVE_INTERVAL.min(idle / 2);
    let server = tonic::transport::Server::builder()
        .concurrency_limit_per_connection(MAX_STREAMS_PER_CONNECTION as usize)
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .http2_keepalive_interval(Some(keepalive))
        .http2_keepalive_timeout(Some(KEEPALIVE_TIMEOUT.min(keepalive)))
        .add_service(AccessLogServiceServer::new(service).max_decoding_message_size(MAX_MESSAGE_BYTES))
        .serve_with_incoming_shutdown(listener::incoming(tcp, MAX_CONNECTIONS, idle, INPUT), async move {
            stop.stopped().await
        });
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
            once: OnceLog::default(),
        }
    }

    fn malformed(&self, peer: Option<SocketAddr>, status: &Status) {
        self.parse_errors.inc();
        warn!(peer = ?peer, error = %status.message(), "Envoy sent a message that is not an access-log message; stream ended.");
    }

    fn incomplete(&self, log_name: &str) {
        self.incomplete.inc();
        if self.once.first(log_name) {
            warn!(%log_name, "Envoy sent an access-log entry with missing fields; defaults used (logged once per log name).");
        }
    }

    fn unnamed(&self) {
        self.unnamed.inc();
    }
}

struct Als {
    router: Router,
    naming: Naming,
    stop: Shutdown,
    events: Events,
}

#[tonic::async_trait]
impl AccessLogService for Als {
    async fn stream_access_logs(
        &self,
        request: Request<Streaming<StreamAccessLogsMessage>>,
    ) -> Result<Response<StreamAccessLogsResponse>, Status> {
        let peer = request.remote_addr();
        let mut stream = request.into_inner();
        let mut log_name = String::new();
        loop {
            let next = tokio::select! {
                biased;
                _ = self.stop.stopped() => break,
                m = stream.message() => m,
            };
            match next {
                Ok(Some(msg)) => self.handle(msg, &mut log_name),
                Ok(None) => break,
                Err(status) if is_malformed(&status) => {
                    self.events.malformed(peer, &status);
                    return Err(status);
                }
                Err(status) => {
                    debug!(peer = ?peer, %log_name, error = %status, "Envoy access-log stream broke.");
                    return Err(status);
                }
            }
        }
        debug!(peer = ?peer, %log_name, "Envoy access-log stream ended.");
        Ok(Response::new(StreamAccessLogsResponse {}))
    }
}

impl Als {
    fn handle(&self, msg: StreamAccessLogsMessage, log_name: &mut String) {
        if let Some(id) = msg.identifier {
            let node = id.node.map(|n| n.id).unwrap_or_default();
            debug!(log_name = %id.log_name, %node, "Envoy access-log stream started.");
            *log_name = id.log_name;
        }
        let table = self.router.routes().load();
        let now = Timestamp::now();
        match msg.log_entries {
            Some(LogEntries::HttpLogs(h)) => {
                for e in &h.log_entry {
                    self.offer(&table, entry::http(self.naming, e, now), log_name);
                }
            }
            Some(LogEntries::TcpLogs(t)) => {
                for e in &t.log_entry {
                    self.offer(&table, entry::tcp(self.naming, e, now), log_name);
                }
            }
            None => debug!(%log_name, "Envoy sent a message without entries."),
        }
    }

    fn offer(&self, table: &RouteTable, c: Converted, log_name: &str) {
        if c.incomplete {
            self.events.incomplete(log_name);
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

/// Whether a stream error is the peer's bad bytes (a protobuf that does not
/// decode, a bad frame) rather than a broken connection: tonic reports the
/// former without an underlying transport error.
fn is_malformed(status: &Status) -> bool {
    std::error::Error::source(status).is_none()
}
