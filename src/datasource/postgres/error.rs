//! What can go wrong talking to Postgres, told without the password: the
//! server's own words when it sent an error, a refused certificate apart from
//! every other failure (so the warning can name the `sslmode` at stake).

use std::time::Duration;

use super::tls;

/// What went wrong talking to Postgres (never contains the password).
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("DATABASE_URL is not a valid Postgres URL: {0}")]
    Url(String),
    #[error("DATABASE_URL: sslrootcert: {0}")]
    RootCert(#[source] crate::tls::TlsError),
    #[error(
        "postgres: the server's certificate is refused under sslmode={mode} ({reason}); \
         sslrootcert=FILE names the CA that signed it"
    )]
    Certificate {
        mode: &'static str,
        reason: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("postgres: {}", detail(.0))]
    Db(#[from] tokio_postgres::Error),
    #[error("postgres did not answer within {0:?}")]
    Timeout(Duration),
    #[error("postgres connection closed")]
    Closed,
}

impl PgError {
    /// A failed connection: a refused certificate apart from everything else.
    pub(super) fn connecting(e: tokio_postgres::Error, mode: tls::SslMode) -> PgError {
        match refused_certificate(&e) {
            Some(reason) => PgError::Certificate {
                mode: mode.as_str(),
                reason,
                source: e,
            },
            None => PgError::Db(e),
        }
    }
}

/// The reason rustls refused the server's certificate, if that is why `e` happened.
fn refused_certificate(e: &tokio_postgres::Error) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        // tokio-rustls wraps the rustls error in an io::Error, whose `source` skips it.
        let tls = c
            .downcast_ref::<rustls::Error>()
            .or_else(|| c.downcast_ref::<std::io::Error>()?.get_ref()?.downcast_ref());
        if let Some(rustls::Error::InvalidCertificate(reason)) = tls {
            return Some(reason.to_string());
        }
        cause = c.source();
    }
    None
}

/// The server's own words when it sent an error (tokio-postgres alone says
/// only "db error"), else the error and its cause. Neither holds the password.
fn detail(e: &tokio_postgres::Error) -> String {
    match (e.as_db_error(), std::error::Error::source(e)) {
        (Some(db), _) => format!("{} {}: {}", db.severity(), db.code().code(), db.message()),
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    }
}
