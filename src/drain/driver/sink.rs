//! What a drain is to the driver: the [`Sink`] trait (encoder + transport),
//! the ways a batch can fail ([`SinkError`], which says whether retrying can
//! help) and what an accepted batch reports ([`Delivery`]).
//!
//! Nothing here runs, queues or retries: the driver does, for every sink alike.

use std::future::Future;
use std::time::Duration;

use super::DriverConfig;
use crate::record::SharedRecord;

/// Why a batch did not go through.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// Could not open a connection (refused, unreachable, DNS, TLS handshake I/O).
    #[error("cannot connect: {context}: {source}")]
    Connect {
        /// What could not be reached or done: an address or a step (the TLS
        /// handshake); never a URL, a credential or a path.
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The peer's certificate was refused (wrong CA, expired, wrong name).
    #[error("certificate refused: {}", certificate_problem(.0))]
    Certificate(#[source] rustls::Error),
    /// The connection broke while writing or reading.
    #[error("connection lost: {0}")]
    Io(#[from] std::io::Error),
    /// The receiver answered with a status worth retrying (429, 5xx).
    #[error("receiver answered {status}{}", retry_after.map(|d| format!(" (retry after {}s)", d.as_secs())).unwrap_or_default())]
    Unavailable { status: u16, retry_after: Option<Duration> },
    /// The receiver refused the batch for good (4xx other than 429, malformed):
    /// retrying cannot help.
    #[error("receiver refused the batch: HTTP {status}: {body}")]
    Refused {
        status: u16,
        /// The start of the response body, on one line.
        body: String,
    },
    /// The sink could not build the request for the batch (its own failure,
    /// not the receiver's): sending it again cannot help.
    #[error("cannot build the request: {0}")]
    Request(#[source] crate::BoxError),
    /// The receiver refused the batch as too large (HTTP 413): the same batch
    /// would be refused again, but its halves may pass (the driver tries them).
    #[error("receiver refused the batch as too large: HTTP 413{}: {body}", request_size(*.bytes, *.records, *.limit))]
    TooLarge {
        /// The size of the refused request, when the sink knows it.
        bytes: Option<usize>,
        /// Records in the refused request, when the sink knows it.
        records: Option<usize>,
        /// The receiver's setting the request exceeded, when known
        /// (`Elasticsearch's http.max_content_length`).
        limit: Option<&'static str>,
        /// The start of the response body, on one line.
        body: String,
    },
    /// Every address the host of a tenant's drain resolves to is in
    /// `DRAIN_DENY_NETWORKS`: nothing was connected, and retrying soon cannot help.
    #[error("every address of {host} is denied: {denied}")]
    Denied {
        host: String,
        #[source]
        denied: crate::egress::Denied,
    },
}

/// ` (a request of N bytes, M records, larger than <limit>)` for
/// [`SinkError::TooLarge`], with what the sink knows.
fn request_size(bytes: Option<usize>, records: Option<usize>, limit: Option<&str>) -> String {
    let parts: Vec<String> = [
        bytes.map(|b| format!("a request of {b} bytes")),
        records.map(|r| format!("{r} records")),
        limit.map(|l| format!("larger than {l}")),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

impl SinkError {
    /// A connection to `context` (an address or a step, never a URL or a
    /// path) could not be opened.
    pub fn connect(context: impl Into<String>, source: std::io::Error) -> Self {
        SinkError::Connect {
            context: context.into(),
            source,
        }
    }

    /// Whether sending the same batch again may succeed.
    pub fn retryable(&self) -> bool {
        !matches!(
            self,
            SinkError::Refused { .. } | SinkError::Request(_) | SinkError::TooLarge { .. } | SinkError::Denied { .. }
        )
    }

    /// Whether the connection can be reused after this error.
    pub fn keeps_connection(&self) -> bool {
        matches!(
            self,
            SinkError::Unavailable { .. }
                | SinkError::Refused { .. }
                | SinkError::Request(_)
                | SinkError::TooLarge { .. }
        )
    }

    pub(super) fn retry_after(&self) -> Option<Duration> {
        match self {
            SinkError::Unavailable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// What was wrong with a refused certificate (rustls's words without its
/// "invalid peer certificate" preamble).
fn certificate_problem(e: &rustls::Error) -> String {
    match e {
        rustls::Error::InvalidCertificate(c) => c.to_string(),
        other => other.to_string(),
    }
}

/// What happened to a batch that was (at least partly) accepted.
#[derive(Debug, Default)]
pub struct Delivery {
    /// Encoded bytes written.
    pub bytes: u64,
    /// Indexes (into the batch) of records to send again (e.g. per-item 429).
    pub retry: Vec<usize>,
    /// Indexes of records refused for good (e.g. mapping errors).
    pub rejected: Vec<usize>,
    /// Records that had to be truncated to fit.
    pub truncated: u64,
    /// How long the receiver asked us to wait before retrying.
    pub retry_after: Option<Duration>,
}

/// A transport plus encoder. The driver calls `connect` once per pooled
/// connection and `send` with batches; sinks never queue or retry on their own.
pub trait Sink: Send + Sync + 'static {
    type Conn: Send + 'static;

    /// Opens one connection.
    fn connect(&self) -> impl Future<Output = Result<Self::Conn, SinkError>> + Send;

    /// Encodes and delivers a batch on `conn`.
    fn send(
        &self,
        conn: &mut Self::Conn,
        batch: &[SharedRecord],
    ) -> impl Future<Output = Result<Delivery, SinkError>> + Send;

    /// Flushes and closes a connection that is being retired.
    fn close(&self, conn: Self::Conn) -> impl Future<Output = ()> + Send {
        async move { drop(conn) }
    }

    /// Adjusts driver settings to the transport (batch size, linger, pool size).
    fn tune(&self, _cfg: &mut DriverConfig) {}

    /// Whether the receiver never acknowledges what it got (syslog over TCP or
    /// TLS): a write that succeeded may still be lost if the receiver goes away
    /// before reading it. The driver then holds each written batch until
    /// [`Sink::healthy`] shows the connection alive after it, and sends it again
    /// on a new connection if not, so such a loss becomes at worst a duplicate.
    fn unacknowledged(&self) -> bool {
        false
    }

    /// Whether `conn` is still alive (the receiver has not closed or reset it).
    fn healthy(&self, _conn: &mut Self::Conn) -> impl Future<Output = bool> + Send {
        async { true }
    }
}
