//! TLS material made at test time: a CA, a server certificate for localhost and
//! 127.0.0.1, and a client certificate, written as PEM files. Nothing trusted is
//! ever committed.

use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};

/// PEM files of one test PKI.
pub struct Pki {
    pub ca_pem: String,
    pub ca_path: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub server_cert_pem: String,
    pub server_key_pem: String,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

/// Makes a CA and leaf certificates under `dir`.
pub fn make_pki(dir: &Path) -> Pki {
    std::fs::create_dir_all(dir).unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "logtrain test CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);

    let leaf = |cn: &str, names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        let cert = p.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let (server_cert_pem, server_key_pem) = leaf("localhost", vec!["localhost".into(), "127.0.0.1".into()]);
    let (client_cert_pem, client_key_pem) = leaf("logtrain-test-client", vec!["client.local".into()]);
    let w = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    Pki {
        ca_path: w("ca.pem", &ca_cert.pem()),
        ca_pem: ca_cert.pem(),
        server_cert: w("server.pem", &server_cert_pem),
        server_key: w("server.key", &server_key_pem),
        client_cert: w("client.pem", &client_cert_pem),
        client_key: w("client.key", &client_key_pem),
        server_cert_pem,
        server_key_pem,
    }
}

/// A TLS acceptor for a test server with this certificate chain and key (PEM).
pub fn acceptor(cert_pem: &str, key_pem: &str) -> tokio_rustls::TlsAcceptor {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
    tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config))
}

/// A byte stream of either kind, plain or TLS: what [`accept_each`] hands a server.
pub trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static> Io for T {}

/// Accepts every connection on `listener` and serves each in a task of its own,
/// after a TLS handshake when `tls` is given (a client refusing the certificate
/// ends there). Runs until its task is aborted; the connections' tasks end with it.
pub async fn accept_each<F, Fut>(listener: tokio::net::TcpListener, tls: Option<tokio_rustls::TlsAcceptor>, serve: F)
where
    F: Fn(Box<dyn Io>) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let (tls, serve) = (tls.clone(), serve.clone());
        conns.spawn(async move {
            match tls {
                Some(acceptor) => {
                    if let Ok(s) = acceptor.accept(stream).await {
                        serve(Box::new(s)).await
                    }
                }
                None => serve(Box::new(stream)).await,
            }
        });
    }
}
