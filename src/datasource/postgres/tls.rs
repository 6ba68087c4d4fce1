//! `DATABASE_URL`'s TLS settings read as libpq reads them, and the connector
//! that carries them out and says afterwards whether the session was encrypted.
//!
//! `sslmode`: `disable` never encrypts; `allow` tries a plain session and
//! encrypts only when the server refuses it; `prefer` (the default) encrypts
//! when the server offers TLS; `require` always encrypts; `verify-ca` also
//! checks the certificate chain; `verify-full` also checks the host name.
//! With `sslrootcert=FILE`, `prefer` and `require` check the chain as
//! `verify-ca` does (libpq's rule when a root certificate exists), and
//! `verify-ca`/`verify-full` trust only that file; without it they trust the
//! system's and Mozilla's roots (`sslrootcert=system` says so explicitly and,
//! as in libpq, needs `verify-full`). Unlike libpq, a `sslrootcert` that
//! cannot be read is an error in every mode, never a silent downgrade.
//!
//! Nothing here connects on its own or logs: the datasource does.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio_postgres::Socket;
use tokio_postgres::config::SslMode as Negotiate;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PgError;
use crate::tls::Verify;

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub const VALID: &'static str = "disable, allow, prefer, require, verify-ca or verify-full";

    pub fn parse(s: &str) -> Option<SslMode> {
        Some(match s {
            "disable" => SslMode::Disable,
            "allow" => SslMode::Allow,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Allow => "allow",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// How tokio-postgres is asked to connect, in order: `allow` tries plain
    /// first and TLS when the server refuses.
    pub fn attempts(self) -> &'static [Negotiate] {
        match self {
            SslMode::Disable => &[Negotiate::Disable],
            SslMode::Allow => &[Negotiate::Disable, Negotiate::Require],
            SslMode::Prefer => &[Negotiate::Prefer],
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => &[Negotiate::Require],
        }
    }
}

/// How well a session is protected, weakest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protection {
    /// Not encrypted.
    Plain,
    /// Encrypted, but the certificate was not checked: anyone in the path may
    /// be the other end.
    Unverified,
    /// Encrypted; the certificate chains to a trusted root (any name).
    ChainVerified,
    /// Encrypted; chain and host name checked.
    Verified,
}

/// The TLS side of a connection.
#[derive(Clone)]
pub struct PgTls {
    mode: SslMode,
    connector: MakeRustlsConnect,
    /// What an encrypted session of this configuration is worth.
    encrypted: Protection,
}

impl PgTls {
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// A connector for one connection attempt, and the flag it raises once a
    /// TLS handshake succeeded.
    pub fn connector(&self) -> (Connector, Arc<AtomicBool>) {
        let encrypted = Arc::new(AtomicBool::new(false));
        let c = Connector {
            inner: self.connector.clone(),
            encrypted: encrypted.clone(),
        };
        (c, encrypted)
    }

    /// The protection of a session that did (or did not) run a handshake.
    pub fn protection(&self, encrypted: bool) -> Protection {
        if encrypted { self.encrypted } else { Protection::Plain }
    }
}

/// Splits libpq-only parameters off the URL and builds the config and connector.
pub fn parse(url: &str) -> Result<(tokio_postgres::Config, PgTls), PgError> {
    let bad = |what: String| PgError::Url(what);
    let mut u = url::Url::parse(url).map_err(|e| bad(e.to_string()))?;
    if !matches!(u.scheme(), "postgres" | "postgresql") {
        return Err(bad(format!(
            "scheme {} (expected postgres:// or postgresql://)",
            u.scheme()
        )));
    }
    let mut mode: Option<SslMode> = None;
    let mut rootcert: Option<String> = None;
    let mut kept: Vec<(String, String)> = Vec::new();
    for (k, v) in u.query_pairs() {
        match k.as_ref() {
            "sslmode" => {
                mode =
                    Some(SslMode::parse(&v).ok_or_else(|| bad(format!("sslmode={v} (expected {})", SslMode::VALID)))?)
            }
            "sslrootcert" => rootcert = Some(v.into_owned()),
            _ => kept.push((k.into_owned(), v.into_owned())),
        }
    }
    let system = rootcert.as_deref() == Some("system");
    // libpq: `sslrootcert=system` makes `verify-full` the default and refuses weaker modes.
    let mode = mode.unwrap_or(if system { SslMode::VerifyFull } else { SslMode::Prefer });
    if system && mode != SslMode::VerifyFull {
        return Err(bad(format!(
            "weak sslmode={} may not be used with sslrootcert=system (use verify-full)",
            mode.as_str()
        )));
    }
    // The chosen mode, as tokio-postgres sees it (attempts may override it).
    kept.push(("sslmode".into(), negotiate_name(mode.attempts()[0]).into()));
    u.query_pairs_mut().clear().extend_pairs(kept.iter());
    let config: tokio_postgres::Config = u
        .as_str()
        .parse()
        .map_err(|e: tokio_postgres::Error| bad(e.to_string()))?;

    let file = match rootcert.as_deref() {
        Some(path) if !system && mode != SslMode::Disable => {
            Some(crate::tls::roots_from_file(Path::new(path)).map_err(PgError::RootCert)?)
        }
        _ => None,
    };
    let (verify, encrypted) = match (mode, file) {
        (SslMode::VerifyFull, roots) => (
            Verify::Full(roots.unwrap_or_else(crate::tls::public_roots)),
            Protection::Verified,
        ),
        (SslMode::VerifyCa, roots) => (
            Verify::ChainOnly(roots.unwrap_or_else(crate::tls::public_roots)),
            Protection::ChainVerified,
        ),
        (_, Some(roots)) => (Verify::ChainOnly(roots), Protection::ChainVerified),
        (_, None) => (Verify::Nothing, Protection::Unverified),
    };
    let client = crate::tls::client_config(verify).map_err(PgError::RootCert)?;
    Ok((
        config,
        PgTls {
            mode,
            connector: MakeRustlsConnect::new(client),
            encrypted,
        },
    ))
}

fn negotiate_name(n: Negotiate) -> &'static str {
    match n {
        Negotiate::Disable => "disable",
        Negotiate::Prefer => "prefer",
        _ => "require",
    }
}

/// [`MakeRustlsConnect`] that raises a flag when a handshake succeeded:
/// tokio-postgres does not say whether `prefer` ended up encrypted.
#[derive(Clone)]
pub struct Connector {
    inner: MakeRustlsConnect,
    encrypted: Arc<AtomicBool>,
}

impl MakeTlsConnect<Socket> for Connector {
    type Stream = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Stream;
    type TlsConnect = Noted<<MakeRustlsConnect as MakeTlsConnect<Socket>>::TlsConnect>;
    type Error = <MakeRustlsConnect as MakeTlsConnect<Socket>>::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        Ok(Noted {
            inner: MakeTlsConnect::<Socket>::make_tls_connect(&mut self.inner, domain)?,
            encrypted: self.encrypted.clone(),
        })
    }
}

/// One handshake of a [`Connector`].
pub struct Noted<T> {
    inner: T,
    encrypted: Arc<AtomicBool>,
}

impl<S, T> TlsConnect<S> for Noted<T>
where
    T: TlsConnect<S>,
    T::Future: Send + 'static,
{
    type Stream = T::Stream;
    type Error = T::Error;
    type Future = Pin<Box<dyn Future<Output = Result<T::Stream, T::Error>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let encrypted = self.encrypted;
        let handshake = self.inner.connect(stream);
        Box::pin(async move {
            let s = handshake.await?;
            encrypted.store(true, Ordering::Release);
            Ok(s)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem_file(dir: &Path) -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let ca = rcgen::CertificateParams::new(vec!["ca".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let p = dir.join("root.pem");
        std::fs::write(&p, ca.pem()).unwrap();
        p.display().to_string()
    }

    #[test]
    fn sslmodes_map_to_libpq_meanings() {
        let dir = tempfile::tempdir().unwrap();
        let root = pem_file(dir.path());
        use Protection::*;
        for (url, mode, encrypted) in [
            ("postgres://u:p@h:5432/db", SslMode::Prefer, Unverified),
            ("postgres://u@h/db?sslmode=disable", SslMode::Disable, Unverified),
            ("postgres://u@h/db?sslmode=allow", SslMode::Allow, Unverified),
            ("postgres://u:p@h/db?sslmode=require", SslMode::Require, Unverified),
            (
                &format!("postgres://u@h/db?sslmode=require&sslrootcert={root}"),
                SslMode::Require,
                ChainVerified,
            ),
            (
                &format!("postgres://u@h/db?sslrootcert={root}"),
                SslMode::Prefer,
                ChainVerified,
            ),
            ("postgres://u@h/db?sslmode=verify-ca", SslMode::VerifyCa, ChainVerified),
            (
                &format!("postgres://u@h/db?sslmode=verify-ca&sslrootcert={root}"),
                SslMode::VerifyCa,
                ChainVerified,
            ),
            ("postgres://u@h/db?sslmode=verify-full", SslMode::VerifyFull, Verified),
            ("postgres://u@h/db?sslrootcert=system", SslMode::VerifyFull, Verified),
            // `disable` never reads the file.
            (
                "postgres://u@h/db?sslmode=disable&sslrootcert=/nonexistent.pem",
                SslMode::Disable,
                Unverified,
            ),
        ] {
            let (_, tls) = parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(tls.mode(), mode, "{url}");
            assert_eq!(tls.protection(true), encrypted, "{url}");
            assert_eq!(tls.protection(false), Plain, "{url}");
        }
        for url in [
            "postgresql://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent.pem",
            "postgresql://u@h/db?sslmode=require&sslrootcert=/nonexistent.pem",
            "postgres://u@h/db?sslmode=sometimes",
            "postgres://u@h/db?sslmode=require&sslrootcert=system",
            "postgres://u@h/db?sslmode=verify-ca&sslrootcert=system",
            "mysql://u@h/db",
        ] {
            assert!(parse(url).is_err(), "{url}");
        }
        let (c, _) = parse("postgres://u:secret@h:6543/db?sslmode=verify-full&application_name=x").unwrap();
        assert_eq!(c.get_ports(), &[6543]);
        assert_eq!(c.get_dbname(), Some("db"));
        assert_eq!(c.get_application_name(), Some("x"));
        assert_eq!(c.get_ssl_mode(), Negotiate::Require);
        assert_eq!(parse("postgres://u@h/db").unwrap().0.get_ssl_mode(), Negotiate::Prefer);
        assert_eq!(
            parse("postgres://u@h/db?sslmode=allow").unwrap().0.get_ssl_mode(),
            Negotiate::Disable
        );
        for url in [
            "postgres://u:secret@h/db?sslmode=bogus",
            "postgres://u:secret@h/db?sslmode=require&sslrootcert=/nonexistent.pem",
        ] {
            let e = parse(url).err().unwrap().to_string();
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn allow_tries_plain_first_then_tls() {
        assert_eq!(SslMode::Allow.attempts(), &[Negotiate::Disable, Negotiate::Require]);
        for m in ["disable", "prefer", "require", "verify-ca", "verify-full"] {
            assert_eq!(SslMode::parse(m).unwrap().attempts().len(), 1, "{m}");
            assert_eq!(SslMode::parse(m).unwrap().as_str(), m);
        }
    }
}
