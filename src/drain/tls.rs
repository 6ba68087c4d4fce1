//! Transport for network drains: TCP connections (opened by [`Endpoint`], which
//! applies a tenant's egress policy), and TLS on top of them with a rustls
//! client configuration built from a [`DrainSpec`].
//!
//! Trusted roots are [`crate::tls::public_roots`] (the system's, read once per
//! process, and Mozilla's bundled ones), plus any `ca=` certificates of the
//! drain URL. The server name (SNI and the name the certificate must carry)
//! is the URL's host; an IP host is checked against the certificate's IP
//! addresses. `insecure=true` is an explicit opt-in that accepts any
//! certificate ([`crate::tls::Verify::Nothing`]: signatures of the
//! handshake are still checked).
//!
//! A handshake that fails because the certificate was refused is reported as
//! [`SinkError::Certificate`], apart from [`SinkError::Connect`], so a wrong CA
//! reads differently in logs than a receiver that is down. This module never
//! logs or retries: the driver does.

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, InvalidDnsNameError, ServerName};
use rustls::{ClientConfig, RootCertStore};
use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::dial::Endpoint;
use super::driver::SinkError;
use super::url::{DrainSpec, TlsOptions};
use crate::tls::Verify;

/// TLS settings that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("ca= certificate {index} cannot be used as a trust root: {source}")]
    BadCa {
        index: usize,
        #[source]
        source: rustls::Error,
    },
    #[error("host \"{host}\" is not a valid TLS server name")]
    BadName {
        host: String,
        #[source]
        source: InvalidDnsNameError,
    },
    #[error(transparent)]
    Build(#[from] crate::tls::TlsError),
}

/// Builds the client configuration for a drain from the TLS options of its
/// kind (the defaults for a kind without TLS). `alpn` lists the application
/// protocols to offer (empty for syslog).
pub fn client_config(spec: &DrainSpec, alpn: &[&[u8]]) -> Result<Arc<ClientConfig>, TlsError> {
    let default = TlsOptions::default();
    let options = spec.kind.tls_options().unwrap_or(&default);
    let verify = if options.insecure {
        Verify::Nothing
    } else {
        Verify::Full(roots(options)?)
    };
    let mut config = crate::tls::client_config(verify)?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The public roots (the system's and Mozilla's), plus the drain's `ca=`
/// certificates if it has any.
fn roots(options: &TlsOptions) -> Result<Arc<RootCertStore>, TlsError> {
    let public = crate::tls::public_roots();
    if options.ca.is_empty() {
        return Ok(public);
    }
    let mut roots = RootCertStore::clone(&public);
    for (index, der) in options.ca.iter().enumerate() {
        roots
            .add(CertificateDer::from(der.clone()))
            .map_err(|source| TlsError::BadCa { index, source })?;
    }
    Ok(Arc::new(roots))
}

/// Opens TLS sessions to one drain's host.
#[derive(Clone)]
pub struct TlsConnector {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl TlsConnector {
    /// A connector for `spec`'s host, offering `alpn`.
    pub fn new(spec: &DrainSpec, alpn: &[&[u8]]) -> Result<Self, TlsError> {
        let config = client_config(spec, alpn)?;
        let name = ServerName::try_from(spec.host.clone()).map_err(|source| TlsError::BadName {
            host: spec.host.clone(),
            source,
        })?;
        Ok(TlsConnector {
            connector: tokio_rustls::TlsConnector::from(config),
            name,
        })
    }

    /// Runs the handshake over `tcp`.
    pub async fn handshake(&self, tcp: TcpStream) -> Result<TlsStream<TcpStream>, SinkError> {
        self.connector
            .connect(self.name.clone(), tcp)
            .await
            .map_err(handshake_error)
    }
}

/// Maps a handshake failure: a refused certificate apart from everything else.
pub fn handshake_error(e: io::Error) -> SinkError {
    let tls = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match tls {
        Some(refused @ rustls::Error::InvalidCertificate(_)) => SinkError::Certificate(refused.clone()),
        _ => SinkError::connect("TLS handshake failed", e),
    }
}

/// Opens a connection to `endpoint` (its addresses checked against a tenant's
/// egress policy, see [`Endpoint`]), with TLS when a connector is given; the
/// TLS server name stays the URL's host.
pub async fn connect(endpoint: &Endpoint, tls: Option<&TlsConnector>) -> Result<Stream, SinkError> {
    over(endpoint.connect_tcp().await?, tls).await
}

/// [`connect`] over a TCP stream already opened (a proxy's tunnel).
pub async fn over(tcp: TcpStream, tls: Option<&TlsConnector>) -> Result<Stream, SinkError> {
    Ok(match tls {
        Some(t) => Stream::Tls(Box::new(t.handshake(tcp).await?)),
        None => Stream::Plain(tcp),
    })
}

/// A plain or TLS byte stream.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Stream {
    /// The TCP connection underneath.
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref().0,
        }
    }

    /// Whether the peer has closed or reset the connection, checked without
    /// waiting on the receiver. Receivers that never talk back (syslog) make
    /// this the only way to notice a dead peer before writing a batch into the
    /// void. It asks the kernel (a non-blocking `MSG_PEEK`), not the reactor's
    /// cached readiness, so a FIN that just arrived is seen.
    pub async fn peer_closed(&mut self) -> bool {
        let mut scratch = [0u8; 4096];
        for _ in 0..8 {
            let mut peek = [MaybeUninit::<u8>::uninit(); 1];
            match SockRef::from(self.tcp()).peek(&mut peek) {
                Ok(0) => return true,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return true,
                Ok(_) => {
                    // Bytes are waiting: TLS records (session tickets, a
                    // close_notify) or stray bytes from the receiver. Read them
                    // through the stream; a TLS record without application data
                    // yields nothing and the wait ends at the timeout.
                    match tokio::time::timeout(Duration::from_millis(20), self.read(&mut scratch)).await {
                        Ok(Ok(0)) | Ok(Err(_)) => return true,
                        Ok(Ok(_)) | Err(_) => continue,
                    }
                }
            }
        }
        false
    }
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drain::DrainKind;

    #[test]
    fn builds_for_every_tls_scheme_and_rejects_bad_names() {
        for url in [
            "syslog+tls://logs.example.com",
            "syslog+tls://127.0.0.1:6514?insecure=true",
            "https://[::1]:8443/x",
            "es://u:p@es.example.com",
        ] {
            let spec = DrainSpec::parse(url).unwrap();
            TlsConnector::new(&spec, &[b"http/1.1"]).unwrap();
        }
        let mut spec = DrainSpec::parse("syslog+tls://logs.example.com").unwrap();
        spec.host = "bad host name!".into();
        assert!(matches!(TlsConnector::new(&spec, &[]), Err(TlsError::BadName { .. })));
    }

    #[test]
    fn a_ca_that_is_not_a_certificate_is_refused() {
        let mut spec = DrainSpec::parse("syslog+tls://logs.example.com").unwrap();
        spec.kind = DrainKind::SyslogStream {
            tls: Some(TlsOptions {
                ca: vec![b"not der".to_vec()],
                insecure: false,
            }),
            framing: crate::encode::framing::Framing::OctetCounting,
        };
        let err = client_config(&spec, &[]).err().unwrap().to_string();
        assert!(err.contains("ca= certificate 0"), "{err}");
    }
}
