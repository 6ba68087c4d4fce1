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

fn setup(reason: String) -> InputError {
    InputError::Setup {
        input: "syslog_tls",
        reason,
    }
}

/// PEM text as given, or the contents of the file it names. The error quotes
/// the value only when it could be a path (one short line): a private key
/// pasted without its PEM armour must not reach a log.
fn pem_bytes(var: &str, value: &str) -> Result<Vec<u8>, InputError> {
    if value.contains("-----BEGIN") {
        return Ok(value.as_bytes().to_vec());
    }
    let path = value.trim();
    std::fs::read(path).map_err(|e| {
        let shown = if path.len() <= 256 && !path.contains(['\n', '\r']) && path.starts_with(['/', '.']) {
            format!("{path}: {e}")
        } else {
            format!("a value of {} bytes that is not a readable file path", value.len())
        };
        setup(format!("{var}: neither PEM text nor a readable file ({shown})"))
    })
}

fn certs(var: &str, value: &str) -> Result<Vec<CertificateDer<'static>>, InputError> {
    let pem = pem_bytes(var, value)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| setup(format!("{var}: bad PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(setup(format!("{var}: no CERTIFICATE block found")));
    }
    Ok(certs)
}

/// Builds the acceptor, or says which variable is missing or wrong.
pub fn acceptor(config: &Config) -> Result<TlsAcceptor, InputError> {
    let (Some(cert), Some(key)) = (&config.syslog_tls_cert_pem, &config.syslog_tls_key_pem) else {
        return Err(setup(
            "SYSLOG_TLS needs SYSLOG_TLS_CERT_PEM and SYSLOG_TLS_KEY_PEM".into(),
        ));
    };
    let chain = certs("SYSLOG_TLS_CERT_PEM", cert)?;
    let key_pem = pem_bytes("SYSLOG_TLS_KEY_PEM", key.expose())?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| setup(format!("SYSLOG_TLS_KEY_PEM: no usable private key: {e}")))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| setup(format!("TLS setup: {e}")))?;
    let builder = match &config.syslog_tls_ca_pem {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certs("SYSLOG_TLS_CA_PEM", ca)? {
                roots
                    .add(c)
                    .map_err(|e| setup(format!("SYSLOG_TLS_CA_PEM: unusable CA certificate: {e}")))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| setup(format!("SYSLOG_TLS_CA_PEM: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let server = builder
        .with_single_cert(chain, key)
        .map_err(|e| setup(format!("SYSLOG_TLS_CERT_PEM/SYSLOG_TLS_KEY_PEM: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}
