//! What each drain URL scheme means: the [`DrainKind`] it builds from its
//! parameters, its default port and the query parameters it accepts. One row
//! of [`TABLE`] per scheme; a new drain adds a variant in `kind`, a row here
//! and its arm in `drain::start`. Pure functions only: nothing here connects.

use url::Url;

use super::kind::{Auth, DrainKind, EsOptions, HttpOptions, TlsOptions};
use super::params::{Params, Problem};
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

/// What a network scheme's constructor gets besides the parameters.
pub(super) struct Remote<'a> {
    /// The URL as parsed (with credentials).
    pub url: &'a Url,
    pub port: u16,
    pub auth: Auth,
}

/// A local drain's kind and name, from its URL as parsed and as written.
type BuildLocal = fn(&Url, &str) -> Result<(DrainKind, String), Problem>;

/// How a scheme builds its kind.
pub(super) enum Build {
    /// A local drain: no host, named by its URL (`file://`, `stdout://`).
    Local(BuildLocal),
    /// A network drain: host and port, credentials only if `http`.
    Remote {
        default_port: u16,
        /// Speaks HTTP: takes credentials and a path.
        http: bool,
        build: fn(&mut Params, Remote<'_>) -> Result<DrainKind, Problem>,
    },
}

/// One scheme: its names, the parameters it accepts, how it builds its kind.
pub(super) struct Scheme {
    pub names: &'static [&'static str],
    /// logtrain's own parameters (in the order errors list them).
    pub params: &'static [&'static str],
    /// Unknown parameters other than TLS ones go to the target (`http(s)://`).
    pub passes_through: bool,
    pub build: Build,
}

const fn remote(
    names: &'static [&'static str],
    default_port: u16,
    http: bool,
    params: &'static [&'static str],
    build: fn(&mut Params, Remote<'_>) -> Result<DrainKind, Problem>,
) -> Scheme {
    Scheme {
        names,
        params,
        passes_through: false,
        build: Build::Remote {
            default_port,
            http,
            build,
        },
    }
}

/// Every scheme logtrain accepts.
pub(super) const TABLE: &[Scheme] = &[
    remote(&["syslog", "syslog+udp"], 514, false, &["max_size"], |p, _| {
        Ok(DrainKind::SyslogUdp {
            max_datagram: p.max_datagram.take().unwrap_or(super::DEFAULT_MAX_DATAGRAM),
        })
    }),
    remote(&["syslog+tcp"], 514, false, &["framing"], |p, _| {
        Ok(syslog_stream(p, None))
    }),
    remote(&["syslog+tls"], 6514, false, &["framing", "ca", "insecure"], |p, _| {
        let tls = p.tls();
        Ok(syslog_stream(p, Some(tls)))
    }),
    remote(&["syslog+http"], 80, true, &["framing", "auth"], |p, r| {
        syslog_http(p, r, None)
    }),
    remote(
        &["syslog+https"],
        443,
        true,
        &["framing", "auth", "ca", "insecure"],
        |p, r| {
            let tls = p.tls();
            syslog_http(p, r, Some(tls))
        },
    ),
    Scheme {
        passes_through: true,
        ..remote(&["http"], 80, true, &["auth", "body"], |p, r| {
            Ok(DrainKind::Http(http(p, r, None, "")?))
        })
    },
    Scheme {
        passes_through: true,
        ..remote(&["https"], 443, true, &["auth", "body", "ca", "insecure"], |p, r| {
            let tls = p.tls();
            Ok(DrainKind::Http(http(p, r, Some(tls), "")?))
        })
    },
    remote(
        &["es", "elasticsearch", "es+https", "elasticsearch+https"],
        443,
        true,
        &["auth", "index", "ca", "insecure", "batch_bytes", "linger_ms"],
        |p, r| {
            let tls = p.tls();
            elasticsearch(p, r, Some(tls))
        },
    ),
    remote(
        &["es+http", "elasticsearch+http"],
        80,
        true,
        &["auth", "index", "batch_bytes", "linger_ms"],
        |p, r| elasticsearch(p, r, None),
    ),
    Scheme {
        names: &["file"],
        params: &[],
        passes_through: false,
        build: Build::Local(file),
    },
    Scheme {
        names: &["stdout"],
        params: &[],
        passes_through: false,
        build: Build::Local(stdout),
    },
];

/// The row of `scheme` (lower case).
pub(super) fn lookup(scheme: &str) -> Option<&'static Scheme> {
    TABLE.iter().find(|s| s.names.contains(&scheme))
}

fn syslog_stream(p: &mut Params, tls: Option<TlsOptions>) -> DrainKind {
    DrainKind::SyslogStream {
        tls,
        framing: p.framing.take().unwrap_or(Framing::OctetCounting),
    }
}

fn syslog_http(p: &mut Params, r: Remote<'_>, tls: Option<TlsOptions>) -> Result<DrainKind, Problem> {
    let framing = p.framing.take().unwrap_or(Framing::OctetCounting);
    Ok(DrainKind::SyslogHttp {
        http: http(p, r, tls, "")?,
        framing,
    })
}

fn elasticsearch(p: &mut Params, r: Remote<'_>, tls: Option<TlsOptions>) -> Result<DrainKind, Problem> {
    Ok(DrainKind::Elasticsearch(EsOptions {
        index: p.index.take(),
        batch_bytes: p.batch_bytes.take(),
        linger: p.linger.take(),
        http: http(p, r, tls, "/_bulk")?,
    }))
}

/// The options of an HTTP-speaking drain; the target's path gets `suffix`
/// unless it ends with it already.
fn http(p: &mut Params, r: Remote<'_>, tls: Option<TlsOptions>, suffix: &str) -> Result<HttpOptions, Problem> {
    let http_scheme = if tls.is_some() { "https" } else { "http" };
    let mut target = Url::parse(&r.url.as_str().replacen(r.url.scheme(), http_scheme, 1))
        .map_err(|e| Problem::new(format!("{e}"), "a valid URL"))?;
    let _ = target.set_username("");
    let _ = target.set_password(None);
    let _ = target.set_port(Some(r.port));
    if p.passthrough.is_empty() {
        target.set_query(None);
    } else {
        target.query_pairs_mut().clear().extend_pairs(p.passthrough.iter());
    }
    if !suffix.is_empty() && !target.path().ends_with(suffix) {
        let path = format!("{}{suffix}", target.path().trim_end_matches('/'));
        target.set_path(&path);
    }
    Ok(HttpOptions {
        tls,
        auth: r.auth,
        target,
        go_body: std::mem::take(&mut p.go_body),
    })
}

fn file(url: &Url, raw: &str) -> Result<(DrainKind, String), Problem> {
    if let Some(host) = url.host_str().filter(|h| !h.is_empty() && *h != "localhost") {
        return Err(Problem::new(
            format!("file drains are local, but host \"{host}\" was given"),
            "use file:///absolute/path",
        ));
    }
    let path = url
        .to_file_path()
        .map_err(|_| Problem::new("path is not an absolute file path", "use file:///absolute/path"))?;
    if path.as_os_str().len() <= 1 || raw.ends_with('/') {
        return Err(Problem::new(
            "path names a directory, not a file",
            "use file:///absolute/path/to/file.log",
        ));
    }
    Ok((DrainKind::File { path }, format!("file://{}", url.path())))
}

fn stdout(url: &Url, _raw: &str) -> Result<(DrainKind, String), Problem> {
    if url.host_str().is_some_and(|h| !h.is_empty()) || !matches!(url.path(), "" | "/") {
        return Err(Problem::new("stdout takes no host or path", "use stdout://"));
    }
    Ok((DrainKind::Stdout, "stdout://".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_every_scheme_of_the_list_once() {
        let names: Vec<&str> = TABLE.iter().flat_map(|s| s.names.iter().copied()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len(), "a scheme in two rows");
        let mut list = SCHEMES.to_vec();
        list.sort_unstable();
        assert_eq!(sorted, list);
    }
}
