//! Connection settings for the drain table: `DATABASE_URL` parsing with libpq's
//! `sslmode` meanings, and the rustls connector that carries them out.
//!
//! `disable`: plain. `prefer` (default) and `require`: TLS without certificate
//! checks, as libpq does without a root certificate. `verify-ca` / `verify-full`:
//! TLS verified against the system roots plus `sslrootcert=FILE`.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::PgError;

/// The TLS side of a connection.
#[derive(Clone)]
pub struct PgTls(MakeRustlsConnect);

impl PgTls {
    pub fn connector(&self) -> MakeRustlsConnect {
        self.0.clone()
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
    let mut verify = false;
    let mut rootcert: Option<String> = None;
    let mut kept: Vec<(String, String)> = Vec::new();
    for (k, v) in u.query_pairs() {
        match k.as_ref() {
            "sslmode" => match v.as_ref() {
                "disable" | "allow" => kept.push(("sslmode".into(), "disable".into())),
                "prefer" => kept.push(("sslmode".into(), "prefer".into())),
                "require" => kept.push(("sslmode".into(), "require".into())),
                "verify-ca" | "verify-full" => {
                    verify = true;
                    kept.push(("sslmode".into(), "require".into()));
                }
                other => {
                    return Err(bad(format!(
                        "sslmode={other} (expected disable, prefer, require, verify-ca or verify-full)"
                    )));
                }
            },
            "sslrootcert" => rootcert = Some(v.into_owned()),
            _ => kept.push((k.into_owned(), v.into_owned())),
        }
    }
    if kept.is_empty() {
        u.set_query(None);
    } else {
        u.query_pairs_mut().clear().extend_pairs(kept.iter());
    }
    let config: tokio_postgres::Config = u
        .as_str()
        .parse()
        .map_err(|e: tokio_postgres::Error| bad(e.to_string()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?;
    let client = if verify {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        for c in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(c);
        }
        if let Some(path) = rootcert {
            use rustls_pki_types::pem::PemObject;
            let certs = CertificateDer::pem_file_iter(&path).map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
            for c in certs {
                roots
                    .add(c.map_err(|e| bad(format!("sslrootcert {path}: {e}")))?)
                    .map_err(|e| bad(format!("sslrootcert {path}: {e}")))?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
            .with_no_client_auth()
    };
    Ok((config, PgTls(MakeRustlsConnect::new(client))))
}

/// Encrypts without checking the certificate (libpq's `require` without a root cert).
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmodes_map_to_libpq_meanings() {
        for (url, ok) in [
            ("postgres://u:p@h:5432/db", true),
            ("postgres://u:p@h/db?sslmode=require", true),
            (
                "postgresql://u@h/db?sslmode=verify-full&sslrootcert=/nonexistent.pem",
                false,
            ),
            ("postgres://u@h/db?sslmode=verify-ca", true),
            ("postgres://u@h/db?sslmode=sometimes", false),
            ("mysql://u@h/db", false),
        ] {
            assert_eq!(parse(url).is_ok(), ok, "{url}");
        }
        let (c, _) = parse("postgres://u:secret@h:6543/db?sslmode=verify-full&application_name=x").unwrap();
        assert_eq!(c.get_ports(), &[6543]);
        assert_eq!(c.get_dbname(), Some("db"));
        assert_eq!(c.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
        let e = parse("postgres://u:secret@h/db?sslmode=bogus")
            .err()
            .unwrap()
            .to_string();
        assert!(!e.contains("secret"), "{e}");
    }
}
