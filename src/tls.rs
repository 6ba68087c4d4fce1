//! The rustls client pieces every TLS client of logtrain shares: the crypto
//! provider, the trust roots (the system's, read once per process, plus
//! Mozilla's bundled ones), PEM certificate files, and the verifiers rustls
//! does not ship: chain-only (libpq's `verify-ca`) and accept-any (encryption
//! without verification, for `sslmode=require` and `insecure=true`).
//!
//! It never decides which trust a connection gets — the caller does, from a
//! drain URL or `DATABASE_URL` — and it never logs or quotes the contents of a
//! file it reads (a path given as a root certificate may hold anything).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tracing::debug;

/// TLS client settings that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read certificate file {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The PEM parser's own error is left out: it may quote a line of the file.
    #[error("certificate file {} is not valid PEM", .path.display())]
    Pem { path: PathBuf },
    #[error("certificate file {} holds no certificate", .path.display())]
    Empty { path: PathBuf },
    #[error("certificate {index} of {} cannot be a trust root: {source}", .path.display())]
    Root {
        path: PathBuf,
        index: usize,
        #[source]
        source: rustls::Error,
    },
    #[error("cannot build TLS settings: {0}")]
    Build(#[source] rustls::Error),
}

/// The process's crypto provider (ring).
pub fn provider() -> Arc<CryptoProvider> {
    static P: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    P.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The system's trust roots, read once per process.
pub fn system_roots() -> &'static [CertificateDer<'static>] {
    static R: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    R.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            debug!(error = %e, "Could not read some system trust roots.");
        }
        found.certs
    })
}

/// The system's roots plus Mozilla's bundled ones (`webpki-roots`), built once.
pub fn public_roots() -> Arc<RootCertStore> {
    static R: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    R.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        // Unparseable system roots are skipped, as every TLS client does.
        let _ = roots.add_parsable_certificates(system_roots().iter().cloned());
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        Arc::new(roots)
    })
    .clone()
}

/// Every certificate of a PEM file (at least one).
pub fn load_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    use rustls_pki_types::pem::{self, PemObject};
    let text = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, pem::Error>>()
        .map_err(|_| TlsError::Pem {
            path: path.to_path_buf(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// A root store holding exactly the certificates of a PEM file.
pub fn roots_from_file(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for (index, cert) in load_pem_certificates(path)?.into_iter().enumerate() {
        roots.add(cert).map_err(|source| TlsError::Root {
            path: path.to_path_buf(),
            index,
            source,
        })?;
    }
    Ok(Arc::new(roots))
}

/// What a client checks of the server's certificate.
#[derive(Clone, Debug)]
pub enum Verify {
    /// The chain up to one of these roots, and the server's name.
    Full(Arc<RootCertStore>),
    /// The chain up to one of these roots, not the name (libpq's `verify-ca`).
    ChainOnly(Arc<RootCertStore>),
    /// Nothing: the session is encrypted, but anyone with a certificate may be
    /// at the other end. Handshake signatures are still checked.
    Nothing,
}

/// A client configuration (no client certificate, no ALPN) checking `verify`.
pub fn client_config(verify: Verify) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Build)?;
    Ok(match verify {
        Verify::Full(roots) => builder.with_root_certificates(roots).with_no_client_auth(),
        Verify::ChainOnly(roots) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NameBlind {
                roots: Some(roots),
                provider,
            }))
            .with_no_client_auth(),
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NameBlind { roots: None, provider }))
            .with_no_client_auth(),
    })
}

/// The certificate check of [`Verify::ChainOnly`] and [`Verify::Nothing`]:
/// the chain up to `roots` whatever name the certificate carries, or (without
/// roots) nothing. Handshake signatures are verified either way, so the
/// session keys belong to whoever holds the certificate's key.
#[derive(Debug)]
struct NameBlind {
    roots: Option<Arc<RootCertStore>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NameBlind {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn a_pem_file_of_certificates_becomes_a_root_store_of_exactly_those() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let a = rcgen::CertificateParams::new(vec!["a".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let b = rcgen::CertificateParams::new(vec!["b".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let both = write(dir.path(), "both.pem", &format!("{}{}", a.pem(), b.pem()));
        assert_eq!(roots_from_file(&both).unwrap().len(), 2);
    }

    #[test]
    fn a_file_that_is_not_a_certificate_is_refused_without_quoting_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(matches!(roots_from_file(&missing), Err(TlsError::Read { .. })));
        let text = write(dir.path(), "text.pem", "hunter2\n");
        let e = roots_from_file(&text).unwrap_err();
        assert!(matches!(e, TlsError::Empty { .. }), "{e}");
        let broken = write(dir.path(), "broken.pem", "-----BEGIN CERTIFICATE-----\nhunter2\n");
        let e = roots_from_file(&broken).unwrap_err();
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert!(e.to_string().contains("broken.pem"), "{e}");
    }

    #[test]
    fn public_roots_are_loaded_once_and_not_empty() {
        assert!(Arc::ptr_eq(&public_roots(), &public_roots()));
        assert!(!public_roots().is_empty());
        for v in [
            Verify::Full(public_roots()),
            Verify::ChainOnly(public_roots()),
            Verify::Nothing,
        ] {
            client_config(v).unwrap();
        }
    }
}
