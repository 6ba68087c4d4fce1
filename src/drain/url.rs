//! Drain URLs: the one parser for every scheme logtrain accepts, with their
//! query parameters, into a typed [`DrainSpec`]. [`DrainSpec::parse`] only
//! drives: each scheme's kind, default port and parameters are one row of
//! `scheme::TABLE`, each parameter is parsed in `params`, the processing
//! parameters every scheme takes (`severity=`, `rate=`, …) in `processing`,
//! and what an error or an id may show of a URL is decided in `mask`.
//!
//! A drain is named by its [`DrainSpec::id`]: `scheme://host:port#digest`,
//! where the digest is the first 8 hex digits of SHA-256 of the whole URL, so
//! URLs differing only in credentials, path or query get different ids without
//! any of those parts being shown (processing parameters add
//! ` params=<their names>`, never their values) (a path may hold a token:
//! `/receiver/v1/http/<token>`). Errors name a URL the same way, by
//! [`mask_credentials`], even a URL that does not parse, and quote a
//! parameter's value only when it is short and plain. The original URL (with
//! credentials) is kept inside the spec for connecting, but `Display`/`Debug`
//! of anything here never shows user info, path, query or fragment.

mod kind;
mod mask;
mod params;
mod processing;
mod scheme;

use std::fmt;

use url::Url;

pub use kind::{Auth, DrainKind, EsOptions, HttpOptions, TlsOptions};
pub use mask::{UNPARSEABLE, mask_credentials};
pub use scheme::{SCHEMES, VALID_SCHEMES};

use mask::{digest, host_is_ambiguous};
use params::{Params, Problem, decode_component, quoted_name};
use scheme::{Build, Remote};

use crate::drain::process::Processing;

/// A parsed drain URL. The options of its kind of drain are in its [`DrainKind`].
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
    /// The APP-NAME every record gets at this drain (a tagged route: see
    /// [`DrainSpec::tagged`]); `None` keeps each record's own.
    pub app_name: Option<String>,
    /// A drain named by a tenant (an annotation): the networks it may not reach,
    /// checked on every address it connects to. `None` for the operator's drains.
    pub egress: Option<std::sync::Arc<crate::egress::Egress>>,
    /// What the URL's processing parameters asked for (`severity=`, `rate=`,
    /// …); `None` when it gave none.
    pub processing: Option<std::sync::Arc<Processing>>,
}

impl fmt::Debug for DrainSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DrainSpec")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("processing", &self.processing)
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
        if !local || self.egress.is_some() || self.processing.is_some() {
            id.push('#');
            id.push_str(&digest(&self.key));
        }
        if let Some(p) = &self.processing {
            id.push_str(&p.id_suffix());
        }
        if let Some(tag) = &self.app_name {
            id.push_str(" tag=");
            id.push_str(tag);
        }
        self.id = id;
    }

    /// Takes the processing parameters given, once checked against the kind.
    fn process(&mut self, p: Processing) -> Result<(), Problem> {
        if !p.given.is_empty() {
            processing::check(&p, &self.kind)?;
            self.processing = Some(std::sync::Arc::new(p));
        }
        Ok(())
    }

    /// Parses one drain URL.
    pub fn parse(raw: &str) -> Result<DrainSpec, DrainUrlError> {
        let raw = raw.trim();
        let err = |p: Problem| DrainUrlError {
            url: mask_credentials(raw),
            problem: p.problem,
            valid: p.valid,
        };
        // A file path is a path: no host, no password to mistake.
        let local_file = raw.get(..7).is_some_and(|s| s.eq_ignore_ascii_case("file://"));
        if !local_file && host_is_ambiguous(raw) {
            return Err(err(Problem::new(
                "an '@' after the host: the host cannot be told apart from a password",
                "percent-encode '/', '?', '#' and '@' in a password (%2F, %3F, %23, %40) and '@' in a path or query (%40)",
            )));
        }
        let mut url = Url::parse(raw).map_err(|e| {
            err(Problem::new(
                format!("not a URL ({e})"),
                format!("expected scheme://host:port, one of {VALID_SCHEMES}"),
            ))
        })?;
        // Host names are case-insensitive; non-special schemes keep the case as written.
        if let Some(h) = url.host_str().filter(|h| h.bytes().any(|c| c.is_ascii_uppercase())) {
            let lower = h.to_ascii_lowercase();
            let _ = url.set_host(Some(&lower));
        }
        let scheme = url.scheme().to_ascii_lowercase();
        let Some(row) = scheme::lookup(&scheme) else {
            return Err(err(Problem::new(
                format!("unknown scheme \"{scheme}\""),
                format!("valid schemes: {VALID_SCHEMES}"),
            )));
        };

        // Query parameters: logtrain's own are checked; HTTP drains pass others through.
        let mut params = Params::default();
        let mut processing = Processing::default();
        for (k, v) in url.query_pairs() {
            if processing::is_processing(&k) {
                processing::set(&mut processing, &k, &v).map_err(err)?;
            } else if row.params.contains(&k.as_ref()) {
                params.set(&k, &v).map_err(err)?;
            } else if row.passes_through && !TLS_PARAMS.contains(&k.as_ref()) {
                params.passthrough.push((k.into_owned(), v.into_owned()));
            } else {
                let valid = if row.params.is_empty() {
                    format!("{scheme}:// takes no query parameters")
                } else {
                    format!("{scheme}:// accepts {}", row.params.join(", "))
                };
                return Err(err(Problem::new(
                    format!("unknown parameter {}", quoted_name(&k)),
                    valid,
                )));
            }
        }

        let mut spec = DrainSpec {
            kind: DrainKind::Stdout,
            id: String::new(),
            key: url.as_str().to_string(),
            host: String::new(),
            port: 0,
            app_name: None,
            egress: None,
            processing: None,
        };
        let (default_port, http, build) = match row.build {
            Build::Local(build) => {
                (spec.kind, spec.id) = build(&url, raw).map_err(err)?;
                spec.process(processing).map_err(err)?;
                spec.identify();
                return Ok(spec);
            }
            Build::Remote {
                default_port,
                http,
                build,
            } => (default_port, http, build),
        };

        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| err(Problem::new("no host", format!("use {scheme}://host:port"))))?;
        spec.host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        spec.port = url.port().unwrap_or(default_port);
        if spec.port == 0 {
            return Err(err(Problem::new("port 0", "use a port from 1 to 65535")));
        }
        if !http && !matches!(url.path(), "" | "/") {
            return Err(err(Problem::new(
                "unexpected path",
                format!("use {scheme}://host:port"),
            )));
        }

        // Credentials: only HTTP-speaking drains use them.
        let password = url.password().map(decode_component);
        let user = decode_component(url.username());
        if !http && (password.is_some() || !user.is_empty()) {
            return Err(err(Problem::new(
                "credentials are not used by this scheme",
                format!("use {scheme}://host:port"),
            )));
        }
        let auth = params.auth(user, password).map_err(err)?;
        let remote = Remote {
            url: &url,
            port: spec.port,
            auth,
        };
        spec.kind = build(&mut params, remote).map_err(err)?;
        spec.process(processing).map_err(err)?;

        let host_port = if spec.host.contains(':') {
            format!("[{}]:{}", spec.host, spec.port)
        } else {
            format!("{}:{}", spec.host, spec.port)
        };
        spec.id = format!("{scheme}://{host_port}");
        spec.identify();
        Ok(spec)
    }
}

#[cfg(test)]
mod tests;
