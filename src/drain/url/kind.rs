//! The kinds of drain and the options of each: what [`DrainSpec::parse`]
//! produces and what `drain::start` and each drain read. A kind that is TLS
//! carries [`TlsOptions`]; one that speaks HTTP carries [`HttpOptions`].
//! `Debug` here never shows a credential or a target's path or query.
//!
//! [`DrainSpec::parse`]: super::DrainSpec::parse

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::encode::framing::Framing;
use base64::Engine;

/// TLS settings of a TLS-capable drain (`ca=`, `insecure=`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// Extra trusted roots (`ca=`, base64 of PEM), as DER certificates.
    pub ca: Vec<Vec<u8>>,
    /// `insecure=true`: skip certificate verification (explicit opt-in only).
    pub insecure: bool,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca", &self.ca.len())
            .field("insecure", &self.insecure)
            .finish()
    }
}

/// Options of every HTTP-speaking drain.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpOptions {
    /// `Some` for `https`.
    pub tls: Option<TlsOptions>,
    pub auth: Auth,
    /// The request target (scheme http/https, no credentials, logtrain's own
    /// parameters removed). Its path may hold a token: never log it.
    pub target: Url,
    /// `body=go` (`http(s)://` only): one POST per record with the Go
    /// logtrain's JSON body instead of batches of NDJSON.
    pub go_body: bool,
}

impl fmt::Debug for HttpOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpOptions")
            .field("tls", &self.tls)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// Options of an Elasticsearch drain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EsOptions {
    pub http: HttpOptions,
    /// `index=`, may contain `%Y`, `%m`, `%d`.
    pub index: Option<String>,
    /// Record bytes per `_bulk` request at most (`batch_bytes=`,
    /// [`BATCH_BYTES_RANGE`](super::BATCH_BYTES_RANGE)); `None` leaves the drain's default.
    pub batch_bytes: Option<usize>,
    /// How long a batch waits to fill (`linger_ms=`); `None` leaves the drain's default.
    pub linger: Option<Duration>,
}

/// What a drain delivers to, with the options of that kind of drain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DrainKind {
    /// RFC 5424 in UDP datagrams (`syslog://`, `syslog+udp://`); largest
    /// datagram from `max_size=` (default 2048).
    SyslogUdp { max_datagram: usize },
    /// RFC 5424 over TCP (`syslog+tcp://`) or TLS (`syslog+tls://`, `tls` is `Some`).
    SyslogStream { tls: Option<TlsOptions>, framing: Framing },
    /// Batches of RFC 5424 POSTed over HTTP (`syslog+http(s)://`).
    SyslogHttp { http: HttpOptions, framing: Framing },
    /// JSON records POSTed over HTTP (`http(s)://`).
    Http(HttpOptions),
    /// Elasticsearch `_bulk` (`es://` and friends; plain `es://` means HTTPS as in logtrain).
    Elasticsearch(EsOptions),
    /// Appends one RFC 5424 line per record to a local file.
    File { path: PathBuf },
    /// One RFC 5424 line per record on standard output.
    Stdout,
}

impl DrainKind {
    /// A short name for metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            DrainKind::SyslogUdp { .. } => "syslog_udp",
            DrainKind::SyslogStream { tls: None, .. } => "syslog_tcp",
            DrainKind::SyslogStream { tls: Some(_), .. } => "syslog_tls",
            DrainKind::SyslogHttp { .. } => "syslog_http",
            DrainKind::Http(_) => "http",
            DrainKind::Elasticsearch(_) => "elasticsearch",
            DrainKind::File { .. } => "file",
            DrainKind::Stdout => "stdout",
        }
    }

    /// Whether the transport is TLS.
    pub fn tls(&self) -> bool {
        self.tls_options().is_some()
    }

    /// The TLS settings when the transport is TLS.
    pub fn tls_options(&self) -> Option<&TlsOptions> {
        match self {
            DrainKind::SyslogStream { tls, .. } => tls.as_ref(),
            _ => self.http().and_then(|h| h.tls.as_ref()),
        }
    }

    /// The HTTP options of an HTTP-speaking drain.
    pub fn http(&self) -> Option<&HttpOptions> {
        match self {
            DrainKind::SyslogHttp { http, .. } | DrainKind::Http(http) => Some(http),
            DrainKind::Elasticsearch(es) => Some(&es.http),
            _ => None,
        }
    }
}

/// How an HTTP-speaking drain authenticates (`auth=`; credentials from the URL's user info).
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    /// `Authorization: Basic base64(user:password)` (the default when a password is given).
    Basic {
        user: String,
        password: String,
    },
    /// `Authorization: Bearer <password>`.
    Bearer {
        token: String,
    },
    /// `Authorization: ApiKey base64(user:password)` (Elasticsearch API keys).
    ApiKey {
        id: String,
        key: String,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Auth::None => "None",
            Auth::Basic { .. } => "Basic(***)",
            Auth::Bearer { .. } => "Bearer(***)",
            Auth::ApiKey { .. } => "ApiKey(***)",
        })
    }
}

impl Auth {
    /// The `Authorization` header value, if any.
    pub fn header(&self) -> Option<String> {
        let b64 = base64::engine::general_purpose::STANDARD;
        match self {
            Auth::None => None,
            Auth::Basic { user, password } => Some(format!("Basic {}", b64.encode(format!("{user}:{password}")))),
            Auth::Bearer { token } => Some(format!("Bearer {token}")),
            Auth::ApiKey { id, key } => Some(format!("ApiKey {}", b64.encode(format!("{id}:{key}")))),
        }
    }
}
