//! Drain URLs: the one parser for every scheme logtrain accepts, with their
//! query parameters, into a typed [`DrainSpec`].
//!
//! A drain is named by its [`DrainSpec::id`]: `scheme://host:port#digest`,
//! where the digest is the first 8 hex digits of SHA-256 of the whole URL, so
//! URLs differing only in credentials, path or query get different ids without
//! any of those parts being shown (a path may hold a token:
//! `/receiver/v1/http/<token>`). Errors name a URL the same way, by
//! [`mask_credentials`], even a URL that does not parse, and quote a
//! parameter's value only when it is short and plain. The original URL (with
//! credentials) is kept inside the spec for connecting, but `Display`/`Debug`
//! of anything here never shows user info, path, query or fragment.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use url::Url;

use crate::encode::framing::Framing;

/// Every scheme the parser accepts (lower case, without `://`): the one list
/// that splitting an annotation, error messages and the parser agree on
/// (checked by a test).
pub const SCHEMES: &[&str] = &[
    "syslog",
    "syslog+udp",
    "syslog+tcp",
    "syslog+tls",
    "syslog+http",
    "syslog+https",
    "http",
    "https",
    "es",
    "es+http",
    "es+https",
    "elasticsearch",
    "elasticsearch+http",
    "elasticsearch+https",
    "file",
    "stdout",
];

/// The schemes logtrain accepts, as written in annotations and table rows.
pub const VALID_SCHEMES: &str = "syslog://, syslog+udp://, syslog+tcp://, syslog+tls://, \
syslog+http://, syslog+https://, http://, https://, es://, es+http://, es+https://, \
elasticsearch://, elasticsearch+http://, elasticsearch+https://, file:///absolute/path, stdout://";

/// What a drain delivers to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DrainKind {
    /// RFC 5424 in UDP datagrams (`syslog://`, `syslog+udp://`).
    SyslogUdp,
    /// RFC 5424 over TCP (`syslog+tcp://`).
    SyslogTcp,
    /// RFC 5424 over TLS (`syslog+tls://`).
    SyslogTls,
    /// Batches of RFC 5424 POSTed over HTTP (`syslog+http(s)://`).
    SyslogHttp { tls: bool },
    /// JSON records POSTed over HTTP (`http(s)://`).
    Http { tls: bool },
    /// Elasticsearch `_bulk` (`es://` and friends; plain `es://` means HTTPS as in logtrain).
    Elasticsearch { tls: bool },
    /// Appends one RFC 5424 line per record to a local file.
    File { path: PathBuf },
    /// One RFC 5424 line per record on standard output.
    Stdout,
}

impl DrainKind {
    /// A short name for metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            DrainKind::SyslogUdp => "syslog_udp",
            DrainKind::SyslogTcp => "syslog_tcp",
            DrainKind::SyslogTls => "syslog_tls",
            DrainKind::SyslogHttp { .. } => "syslog_http",
            DrainKind::Http { .. } => "http",
            DrainKind::Elasticsearch { .. } => "elasticsearch",
            DrainKind::File { .. } => "file",
            DrainKind::Stdout => "stdout",
        }
    }

    /// Whether the transport is TLS.
    pub fn tls(&self) -> bool {
        matches!(
            self,
            DrainKind::SyslogTls
                | DrainKind::SyslogHttp { tls: true }
                | DrainKind::Http { tls: true }
                | DrainKind::Elasticsearch { tls: true }
        )
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

/// A parsed drain URL.
#[derive(Clone, PartialEq, Eq)]
pub struct DrainSpec {
    pub kind: DrainKind,
    /// Stable identity for logs, metric labels and events, without user info,
    /// path or query: `https://logs.example.com:443#3fa2c1d9` (the digest is of
    /// [`DrainSpec::key`]), plus ` tag=<tag>` for a tagged route. Local drains
    /// are named by their path: `file:///var/log/x.log`, `stdout://`.
    pub id: String,
    /// The URL as normalised by parsing (contains credentials: never log it).
    pub key: String,
    pub host: String,
    pub port: u16,
    /// Extra trusted roots (`ca=`, base64 of PEM), as DER certificates.
    pub ca: Vec<Vec<u8>>,
    /// `insecure=true`: skip certificate verification (explicit opt-in only).
    pub insecure: bool,
    pub auth: Auth,
    /// Elasticsearch index (`index=`), may contain `%Y`, `%m`, `%d`.
    pub index: Option<String>,
    /// Stream framing for syslog over TCP/TLS/HTTP (`framing=octet|newline`).
    pub framing: Framing,
    /// UDP: largest datagram (`max_size=`, default 2048).
    pub max_datagram: usize,
    /// Elasticsearch: record bytes per `_bulk` request at most (`batch_bytes=`,
    /// [`BATCH_BYTES_RANGE`]); `None` leaves the drain's default.
    pub batch_bytes: Option<usize>,
    /// Elasticsearch: how long a batch waits to fill (`linger_ms=`,
    /// [`LINGER_MS_RANGE`]); `None` leaves the drain's default.
    pub linger: Option<Duration>,
    /// The APP-NAME every record gets at this drain (a tagged route: see
    /// [`DrainSpec::tagged`]); `None` keeps each record's own.
    pub app_name: Option<String>,
    /// HTTP-based drains: the request target (scheme http/https, no credentials,
    /// logtrain's own parameters removed).
    pub target: Option<Url>,
    /// A drain named by a tenant (an annotation): the networks it may not reach,
    /// checked on every address it connects to. `None` for the operator's drains.
    pub egress: Option<std::sync::Arc<crate::egress::Egress>>,
}

impl fmt::Debug for DrainSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainSpec")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("auth", &self.auth)
            .field("insecure", &self.insecure)
            .field("index", &self.index)
            .field("framing", &self.framing)
            .field("batch_bytes", &self.batch_bytes)
            .field("linger", &self.linger)
            .finish()
    }
}

impl fmt::Display for DrainSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.id)
    }
}

/// A drain URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid drain URL \"{url}\": {problem}; {valid}")]
pub struct DrainUrlError {
    /// What may be shown of the URL ([`mask_credentials`]): `scheme://host:port`
    /// at most.
    pub url: String,
    /// What is wrong, naming the offending part.
    pub problem: String,
    /// What would be valid.
    pub valid: String,
}

/// Default datagram limit for UDP syslog (RFC 5426 recommends senders stay within 2048).
pub const DEFAULT_MAX_DATAGRAM: usize = 2048;

/// `batch_bytes=`: from 1 KiB to 100 MiB (Elasticsearch's default `http.max_content_length`).
pub const BATCH_BYTES_RANGE: std::ops::RangeInclusive<usize> = 1024..=100 << 20;
/// `linger_ms=`: from 0 (send what is queued at once) to 60 s.
pub const LINGER_MS_RANGE: std::ops::RangeInclusive<u64> = 0..=60_000;

const TLS_PARAMS: &[&str] = &["ca", "insecure"];

impl DrainSpec {
    /// This drain for a route with a tag: its own drain (own queue and pool:
    /// what it sends differs), keyed and named apart from the untagged one.
    pub fn tagged(&self, tag: &str) -> DrainSpec {
        let mut t = self.clone();
        t.key = format!("{}#tag={tag}", self.key);
        t.app_name = Some(tag.to_string());
        t.identify();
        t
    }

    /// This drain as named by a tenant: its own drain (keyed apart from the
    /// operator's drain of the same URL), whose every connection is checked
    /// against `egress`.
    pub fn restricted(&self, egress: std::sync::Arc<crate::egress::Egress>) -> DrainSpec {
        let mut t = self.clone();
        t.key = format!("{}#tenant", self.key);
        t.egress = Some(egress);
        t.identify();
        t
    }

    /// Sets [`DrainSpec::id`] from the name already in it (`scheme://host:port`,
    /// or the local drain's URL), the key and the tag.
    fn identify(&mut self) {
        let mut id = self.id.split([' ', '#']).next().unwrap_or_default().to_string();
        // Local drains are the operator's and named by their path; a tenant's
        // copy (never allowed today) would still need a name of its own.
        let local = matches!(self.kind, DrainKind::File { .. } | DrainKind::Stdout);
        if !local || self.egress.is_some() {
            id.push('#');
            id.push_str(&digest(&self.key));
        }
        if let Some(tag) = &self.app_name {
            id.push_str(" tag=");
            id.push_str(tag);
        }
        self.id = id;
    }

    /// Parses one drain URL.
    pub fn parse(raw: &str) -> Result<DrainSpec, DrainUrlError> {
        let raw = raw.trim();
        let err = |problem: String, valid: &str| DrainUrlError {
            url: mask_credentials(raw),
            problem,
            valid: valid.to_string(),
        };
        // A file path is a path: no host, no password to mistake.
        let local_file = raw.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("file://"));
        if !local_file && host_is_ambiguous(raw) {
            return Err(err(
                "an '@' after the host: the host cannot be told apart from a password".into(),
                "percent-encode '/', '?', '#' and '@' in a password (%2F, %3F, %23, %40) and '@' in a path or query (%40)",
            ));
        }
        let mut url = Url::parse(raw).map_err(|e| {
            err(
                format!("not a URL ({e})"),
                &format!("expected scheme://host:port, one of {VALID_SCHEMES}"),
            )
        })?;
        // Host names are case-insensitive; non-special schemes keep the case as written.
        if let Some(h) = url.host_str().filter(|h| h.bytes().any(|c| c.is_ascii_uppercase())) {
            let lower = h.to_ascii_lowercase();
            let _ = url.set_host(Some(&lower));
        }
        let scheme = url.scheme().to_ascii_lowercase();
        let (kind, default_port, allowed): (DrainKind, Option<u16>, &[&str]) = match scheme.as_str() {
            "syslog" | "syslog+udp" => (DrainKind::SyslogUdp, Some(514), &["max_size"]),
            "syslog+tcp" => (DrainKind::SyslogTcp, Some(514), &["framing"]),
            "syslog+tls" => (DrainKind::SyslogTls, Some(6514), &["framing", "ca", "insecure"]),
            "syslog+http" => (DrainKind::SyslogHttp { tls: false }, Some(80), &["framing", "auth"]),
            "syslog+https" => (
                DrainKind::SyslogHttp { tls: true },
                Some(443),
                &["framing", "auth", "ca", "insecure"],
            ),
            "http" => (DrainKind::Http { tls: false }, Some(80), &["auth"]),
            "https" => (DrainKind::Http { tls: true }, Some(443), &["auth", "ca", "insecure"]),
            "es" | "elasticsearch" | "es+https" | "elasticsearch+https" => (
                DrainKind::Elasticsearch { tls: true },
                Some(443),
                &["auth", "index", "ca", "insecure", "batch_bytes", "linger_ms"],
            ),
            "es+http" | "elasticsearch+http" => (
                DrainKind::Elasticsearch { tls: false },
                Some(80),
                &["auth", "index", "batch_bytes", "linger_ms"],
            ),
            "file" => (DrainKind::File { path: PathBuf::new() }, None, &[]),
            "stdout" => (DrainKind::Stdout, None, &[]),
            other => {
                return Err(err(
                    format!("unknown scheme \"{other}\""),
                    &format!("valid schemes: {VALID_SCHEMES}"),
                ));
            }
        };

        // Query parameters: logtrain's own are checked; HTTP drains pass others through.
        let passes_through = matches!(kind, DrainKind::Http { .. });
        let mut spec = DrainSpec {
            kind,
            id: String::new(),
            key: url.as_str().to_string(),
            host: String::new(),
            port: 0,
            ca: Vec::new(),
            insecure: false,
            auth: Auth::None,
            index: None,
            framing: Framing::OctetCounting,
            max_datagram: DEFAULT_MAX_DATAGRAM,
            batch_bytes: None,
            linger: None,
            app_name: None,
            target: None,
            egress: None,
        };
        let mut auth_kind: Option<String> = None;
        let mut passthrough: Vec<(String, String)> = Vec::new();
        for (k, v) in url.query_pairs() {
            let known = allowed.contains(&k.as_ref());
            if !known {
                if passes_through && !TLS_PARAMS.contains(&k.as_ref()) {
                    passthrough.push((k.into_owned(), v.into_owned()));
                    continue;
                }
                let valid = if allowed.is_empty() {
                    format!("{scheme}:// takes no query parameters")
                } else {
                    format!("{scheme}:// accepts {}", allowed.join(", "))
                };
                return Err(err(format!("unknown parameter {}", quoted_name(&k)), &valid));
            }
            match k.as_ref() {
                "ca" => {
                    spec.ca = decode_ca(&v).map_err(|p| {
                        err(
                            format!("parameter ca: {p}"),
                            "ca= takes base64 of one or more PEM certificates",
                        )
                    })?;
                }
                "insecure" => {
                    spec.insecure = match v.to_ascii_lowercase().as_str() {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        other => {
                            return Err(err(
                                format!("parameter insecure={}", quoted(other)),
                                "insecure= takes true or false",
                            ));
                        }
                    }
                }
                "auth" => auth_kind = Some(v.to_ascii_lowercase()),
                "index" => {
                    if v.is_empty() {
                        return Err(err(
                            "parameter index is empty".into(),
                            "index= takes an index name, optionally with %Y %m %d",
                        ));
                    }
                    spec.index = Some(v.into_owned());
                }
                "framing" => {
                    spec.framing = match v.to_ascii_lowercase().as_str() {
                        "octet" | "octet-counting" | "octet_counting" => Framing::OctetCounting,
                        "newline" | "lf" => Framing::Newline,
                        other => {
                            return Err(err(
                                format!("parameter framing={}", quoted(other)),
                                "framing= takes octet or newline",
                            ));
                        }
                    }
                }
                "max_size" => {
                    spec.max_datagram = v
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (480..=65_507).contains(n))
                        .ok_or_else(|| {
                            err(
                                format!("parameter max_size={}", quoted(&v)),
                                "max_size= takes a datagram size from 480 to 65507 bytes",
                            )
                        })?;
                }
                "batch_bytes" => {
                    spec.batch_bytes = Some(
                        v.parse::<usize>()
                            .ok()
                            .filter(|n| BATCH_BYTES_RANGE.contains(n))
                            .ok_or_else(|| {
                                err(
                                    format!("parameter batch_bytes={}", quoted(&v)),
                                    &format!(
                                        "batch_bytes= takes a byte count from {} to {} (100 MiB)",
                                        BATCH_BYTES_RANGE.start(),
                                        BATCH_BYTES_RANGE.end()
                                    ),
                                )
                            })?,
                    );
                }
                "linger_ms" => {
                    let ms = v
                        .parse::<u64>()
                        .ok()
                        .filter(|n| LINGER_MS_RANGE.contains(n))
                        .ok_or_else(|| {
                            err(
                                format!("parameter linger_ms={}", quoted(&v)),
                                &format!(
                                    "linger_ms= takes milliseconds from {} to {}",
                                    LINGER_MS_RANGE.start(),
                                    LINGER_MS_RANGE.end()
                                ),
                            )
                        })?;
                    spec.linger = Some(Duration::from_millis(ms));
                }
                _ => unreachable!("allowed parameters are all handled"),
            }
        }

        match &mut spec.kind {
            DrainKind::File { path } => {
                if url.host_str().is_some_and(|h| !h.is_empty() && h != "localhost") {
                    return Err(err(
                        format!(
                            "file drains are local, but host \"{}\" was given",
                            url.host_str().unwrap_or_default()
                        ),
                        "use file:///absolute/path",
                    ));
                }
                let p = url
                    .to_file_path()
                    .map_err(|_| err("path is not an absolute file path".into(), "use file:///absolute/path"))?;
                if p.as_os_str().len() <= 1 || raw.ends_with('/') {
                    return Err(err(
                        "path names a directory, not a file".into(),
                        "use file:///absolute/path/to/file.log",
                    ));
                }
                *path = p;
                spec.id = format!("file://{}", url.path());
                spec.identify();
                return Ok(spec);
            }
            DrainKind::Stdout => {
                if url.host_str().is_some_and(|h| !h.is_empty()) || !matches!(url.path(), "" | "/") {
                    return Err(err("stdout takes no host or path".into(), "use stdout://"));
                }
                spec.id = "stdout://".into();
                spec.identify();
                return Ok(spec);
            }
            _ => {}
        }

        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| err("no host".into(), &format!("use {scheme}://host:port")))?;
        spec.host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        spec.port = url.port().or(default_port).unwrap_or(0);
        if spec.port == 0 {
            return Err(err("port 0".into(), "use a port from 1 to 65535"));
        }
        let is_syslog_stream = matches!(
            spec.kind,
            DrainKind::SyslogUdp | DrainKind::SyslogTcp | DrainKind::SyslogTls
        );
        if is_syslog_stream && !matches!(url.path(), "" | "/") {
            return Err(err("unexpected path".into(), &format!("use {scheme}://host:port")));
        }

        // Credentials: only HTTP-speaking drains use them.
        let password = url.password().map(decode_component);
        let user = decode_component(url.username());
        let is_http = matches!(
            spec.kind,
            DrainKind::SyslogHttp { .. } | DrainKind::Http { .. } | DrainKind::Elasticsearch { .. }
        );
        if !is_http && (password.is_some() || !user.is_empty()) {
            return Err(err(
                "credentials are not used by this scheme".into(),
                &format!("use {scheme}://host:port"),
            ));
        }
        spec.auth = match (auth_kind.as_deref(), password) {
            (None, None) => Auth::None,
            (Some(k), None) => {
                return Err(err(
                    format!("auth={} needs credentials in the URL", quoted(k)),
                    "give user:password@host (the password is the token for bearer)",
                ));
            }
            (None | Some("basic"), Some(p)) => Auth::Basic { user, password: p },
            (Some("bearer"), Some(p)) => Auth::Bearer { token: p },
            (Some("apikey"), Some(p)) => Auth::ApiKey { id: user, key: p },
            (Some(other), Some(_)) => {
                return Err(err(
                    format!("parameter auth={}", quoted(other)),
                    "auth= takes basic, bearer or apikey",
                ));
            }
        };

        let host_port = if spec.host.contains(':') {
            format!("[{}]:{}", spec.host, spec.port)
        } else {
            format!("{}:{}", spec.host, spec.port)
        };
        spec.id = format!("{scheme}://{host_port}");
        spec.identify();
        if is_http {
            let mut target = url.clone();
            let http_scheme = if spec.kind.tls() { "https" } else { "http" };
            target = Url::parse(&target.as_str().replacen(url.scheme(), http_scheme, 1))
                .map_err(|e| err(format!("{e}"), "a valid URL"))?;
            let _ = target.set_username("");
            let _ = target.set_password(None);
            let _ = target.set_port(Some(spec.port));
            if passthrough.is_empty() {
                target.set_query(None);
            } else {
                target.query_pairs_mut().clear().extend_pairs(passthrough.iter());
            }
            if matches!(spec.kind, DrainKind::Elasticsearch { .. }) && !target.path().ends_with("/_bulk") {
                let p = format!("{}/_bulk", target.path().trim_end_matches('/'));
                target.set_path(&p);
            }
            spec.target = Some(target);
        }
        Ok(spec)
    }
}

fn decode_component(s: &str) -> String {
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

/// Decodes `ca=`: base64 (standard or URL-safe, padding optional) of PEM text
/// holding at least one certificate.
fn decode_ca(v: &str) -> Result<Vec<Vec<u8>>, String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    use rustls_pki_types::pem::PemObject;
    // `+` in a query string may have been decoded as a space.
    let v = v.trim().replace(' ', "+");
    let pem = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|e| e.decode(v.as_bytes()).ok())
        .ok_or("not valid base64")?;
    let mut out = Vec::new();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("bad PEM ({e})"))?;
        out.push(cert.as_ref().to_vec());
    }
    if out.is_empty() {
        return Err("no PEM certificate inside".into());
    }
    Ok(out)
}

/// The first 8 hex digits of SHA-256 of `text`: tells URLs apart, reveals none.
fn digest(text: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(text.as_bytes())[..4]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A parameter's value as an error may quote it: a word (`maybe`, `json`) or
/// a number with at most a short unit (`5MiB`, `-1`, `0.5`). Anything else
/// may be a token written in the wrong place and is not shown.
fn quoted(v: &str) -> String {
    let word = v.bytes().all(|b| b.is_ascii_alphabetic() || matches!(b, b'-' | b'_'));
    let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let number = v.len() - digits.len() <= 3 && digits.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'-'));
    if v.len() <= 16 && (word || number) {
        format!("\"{v}\"")
    } else {
        "(value not shown)".into()
    }
}

/// A parameter's name as an error may quote it: lower-case words only.
fn quoted_name(k: &str) -> String {
    if k.len() <= 24 && !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || matches!(b, b'-' | b'_')) {
        format!("\"{k}\"")
    } else {
        "(name not shown)".into()
    }
}

/// What an error shows of a drain URL in which not even a scheme can be found.
pub const UNPARSEABLE: &str = "<unparseable>";

/// What may be shown of a drain URL, even one that does not parse:
/// `scheme://host[:port]` as written, never user info, path, query or
/// fragment. When the host cannot be told apart from a password (an `@`
/// after the first `/`, `?` or `#`) or is not a plain host name or address,
/// only `scheme://`; without a scheme, [`UNPARSEABLE`].
pub fn mask_credentials(raw: &str) -> String {
    let raw = raw.trim();
    let Some((scheme, rest)) = raw.split_once("://") else {
        return UNPARSEABLE.into();
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
    if !scheme_ok {
        return UNPARSEABLE.into();
    }
    let host = host_part(rest).filter(|h| is_host_port(h)).unwrap_or_default();
    format!("{}://{}", scheme.to_ascii_lowercase(), host.to_ascii_lowercase())
}

/// The `host[:port]` of what follows `scheme://`, when it is unambiguous.
fn host_part(rest: &str) -> Option<&str> {
    let end = rest.find(['/', '?', '#', '\\']).unwrap_or(rest.len());
    match rest.rfind('@') {
        None => Some(&rest[..end]),
        Some(at) if at < end => Some(&rest[at + 1..end]),
        // A password holding '/', '?' or '#', or an '@' in a path or query:
        // the text alone cannot tell, so nothing is shown.
        Some(_) => None,
    }
}

/// Whether an `@` follows the first `/`, `?` or `#` after `scheme://` (see
/// [`host_part`]): URL parsers then take part of a password for the host.
fn host_is_ambiguous(raw: &str) -> bool {
    raw.split_once("://").is_some_and(|(_, rest)| host_part(rest).is_none())
}

/// A plain host name, IPv4 address or bracketed IPv6 address, with an optional port.
fn is_host_port(s: &str) -> bool {
    let v6 = s.starts_with('[');
    let (host, port) = match s.strip_prefix('[') {
        Some(inner) => match inner.split_once(']') {
            Some((addr, "")) => (addr, None),
            Some((addr, after)) => match after.strip_prefix(':') {
                Some(p) => (addr, Some(p)),
                None => return false,
            },
            None => return false,
        },
        None => match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        },
    };
    let host_byte = |b: u8| {
        if v6 {
            b.is_ascii_hexdigit() || matches!(b, b':' | b'.')
        } else {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')
        }
    };
    let port_ok = port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    !host.is_empty() && host.bytes().all(host_byte) && port_ok
}

#[cfg(test)]
mod tests;
