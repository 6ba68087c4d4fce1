//! The rustls server configuration of the syslog TLS listener, built from
//! `SYSLOG_TLS_CERT_PEM`, `SYSLOG_TLS_KEY_PEM` and the optional
//! `SYSLOG_TLS_CA_PEM`. Each value is PEM text or a path to a PEM file.
//!
//! When a CA is given, clients MUST present a certificate it signed
//! (`WebPkiClientVerifier`); without one, any client may connect. Errors name
//! the variable at fault and never echo key material.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::Config;
use crate::input::InputError;

/// TLS material of the syslog listener that cannot be used. Messages name
/// the variable at fault and never quote key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsMaterialError {
    #[error("SYSLOG_TLS needs SYSLOG_TLS_CERT_PEM and SYSLOG_TLS_KEY_PEM")]
    Missing,
    /// Neither PEM text nor a file that can be read; `shown` is the path when
    /// it may be shown, else the value's length.
    #[error("{var}: neither PEM text nor a readable file ({shown}: {source})")]
    Unreadable {
        var: &'static str,
        shown: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{var}: bad PEM certificate: {source}")]
    BadCertificate {
        var: &'static str,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{var}: no CERTIFICATE block found")]
    NoCertificate { var: &'static str },
    #[error("SYSLOG_TLS_KEY_PEM: no usable private key: {0}")]
    BadKey(#[source] rustls_pki_types::pem::Error),
    #[error("SYSLOG_TLS_CA_PEM: unusable CA certificate: {0}")]
    BadCa(#[source] rustls::Error),
    #[error("SYSLOG_TLS_CA_PEM: {0}")]
    Verifier(#[source] rustls::server::VerifierBuilderError),
    /// The protocol versions, or the certificate chain with its key.
    #[error("{what}: {source}")]
    Config {
        what: &'static str,
        #[source]
        source: rustls::Error,
    },
}

fn setup(source: TlsMaterialError) -> InputError {
    InputError::Tls {
        input: "syslog_tls",
        source,
    }
}

/// PEM text as given, or the contents of the file it names. The error quotes
/// the value only when it could be a path (one short line): a private key
/// pasted without its PEM armour must not reach a log.
fn pem_bytes(var: &'static str, value: &str) -> Result<Vec<u8>, InputError> {
    if value.contains("-----BEGIN") {
        return Ok(value.as_bytes().to_vec());
    }
    let path = value.trim();
    std::fs::read(path).map_err(|source| {
        let shown = if path.len() <= 256 && !path.contains(['\n', '\r']) && path.starts_with(['/', '.']) {
            path.to_string()
        } else {
            format!("a value of {} bytes that is not a readable file path", value.len())
        };
        setup(TlsMaterialError::Unreadable { var, shown, source })
    })
}

fn certs(var: &'static str, value: &str) -> Result<Vec<CertificateDer<'static>>, InputError> {
    let pem = pem_bytes(var, value)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| setup(TlsMaterialError::BadCertificate { var, source }))?;
    if certs.is_empty() {
        return Err(setup(TlsMaterialError::NoCertificate { var }));
    }
    Ok(certs)
}

/// Builds the acceptor, or says which variable is missing or wrong.
pub fn acceptor(config: &Config) -> Result<TlsAcceptor, InputError> {
    let (Some(cert), Some(key)) = (&config.syslog_tls_cert_pem, &config.syslog_tls_key_pem) else {
        return Err(setup(TlsMaterialError::Missing));
    };
    let chain = certs("SYSLOG_TLS_CERT_PEM", cert)?;
    let key_pem = pem_bytes("SYSLOG_TLS_KEY_PEM", key.expose())?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| setup(TlsMaterialError::BadKey(e)))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|source| {
            setup(TlsMaterialError::Config {
                what: "TLS setup",
                source,
            })
        })?;
    let builder = match &config.syslog_tls_ca_pem {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs("SYSLOG_TLS_CA_PEM", ca)? {
                roots.add(c).map_err(|e| setup(TlsMaterialError::BadCa(e)))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| setup(TlsMaterialError::Verifier(e)))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let server = builder.with_single_cert(chain, key).map_err(|source| {
        setup(TlsMaterialError::Config {
            what: "SYSLOG_TLS_CERT_PEM/SYSLOG_TLS_KEY_PEM",
            source,
        })
    })?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}
