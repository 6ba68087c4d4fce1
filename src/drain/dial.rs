//! Where a network drain connects. An [`Endpoint`] resolves the drain's host
//! itself and, for a drain named by a tenant, checks every address against the
//! egress policy ([`Egress`]): only allowed addresses are kept, and the
//! connection is opened to the checked [`SocketAddr`], never by name again, so
//! DNS cannot answer differently between the check and the connect (DNS
//! rebinding). A host whose every address is denied is
//! [`SinkError::Denied`], which the driver does not retry.
//!
//! An operator's drain (no egress policy) connects to every address its host
//! resolves to, in order, as before. This module never logs or retries.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::driver::SinkError;
use super::proxy::Proxy;
use super::url::DrainSpec;
use crate::egress::Egress;

/// A drain's host and port, and the egress policy of a tenant's drain.
#[derive(Clone, Debug)]
pub struct Endpoint {
    host: String,
    port: u16,
    egress: Option<Arc<Egress>>,
}

impl Endpoint {
    /// The endpoint of `spec` (with its egress policy, if a tenant named it).
    pub fn of(spec: &DrainSpec) -> Self {
        Endpoint {
            host: spec.host.clone(),
            port: spec.port,
            egress: spec.egress.clone(),
        }
    }

    fn unreachable(&self, e: io::Error) -> SinkError {
        SinkError::connect(format!("{}:{}", self.host, self.port), e)
    }

    /// The addresses this drain may connect to, in resolver order (never
    /// empty): all of them for an operator's drain; for a tenant's, those the
    /// egress policy allows, or [`SinkError::Denied`] when it allows none.
    pub async fn resolve(&self) -> Result<Vec<SocketAddr>, SinkError> {
        let found: Vec<SocketAddr> = tokio::net::lookup_host((self.host.as_str(), self.port))
            .await
            .map_err(|e| self.unreachable(e))?
            .collect();
        if found.is_empty() {
            return Err(self.unreachable(io::Error::new(io::ErrorKind::NotFound, "no address")));
        }
        let Some(egress) = &self.egress else {
            return Ok(found);
        };
        let mut denied = None;
        let mut allowed = Vec::with_capacity(found.len());
        for a in found {
            match egress.check(a.ip()) {
                Ok(()) => allowed.push(a),
                Err(d) => denied = denied.or(Some(d)),
            }
        }
        match denied {
            Some(denied) if allowed.is_empty() => Err(SinkError::Denied {
                host: self.host.clone(),
                denied,
            }),
            _ => Ok(allowed),
        }
    }

    /// Opens a TCP connection to the first address of [`Endpoint::resolve`]
    /// that answers, with Nagle off (batches are written whole).
    pub async fn connect_tcp(&self) -> Result<TcpStream, SinkError> {
        let mut last = None;
        for addr in self.resolve().await? {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(self.unreachable(last.unwrap_or_else(|| io::Error::other("no address to connect to"))))
    }

    /// A tunnel to this endpoint through `proxy`: by name for an operator's
    /// drain (the proxy resolves it), by the first allowed address for a
    /// tenant's (checked here, so the proxy cannot reach a denied one).
    pub async fn connect_via(&self, proxy: &Proxy) -> Result<TcpStream, SinkError> {
        let target = match &self.egress {
            None if self.host.contains(':') => format!("[{}]:{}", self.host, self.port),
            None => format!("{}:{}", self.host, self.port),
            Some(_) => self.resolve().await?[0].to_string(),
        };
        proxy.tunnel(&target).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str, egress: Option<Egress>) -> Endpoint {
        let spec = DrainSpec::parse(url).unwrap();
        match egress {
            Some(e) => Endpoint::of(&spec.restricted(Arc::new(e))),
            None => Endpoint::of(&spec),
        }
    }

    #[tokio::test]
    async fn a_tenant_host_resolving_only_to_denied_addresses_is_denied_by_name() {
        // `localhost` is a name, so the URL check lets it through; its address is not.
        let e = endpoint("syslog+tcp://localhost:514", Some(Egress::default()));
        match e.resolve().await {
            Err(SinkError::Denied { host, denied }) => {
                assert_eq!(host, "localhost");
                assert!(denied.addr.is_loopback(), "{denied}");
            }
            other => panic!("expected a denial, got {other:?}"),
        }
        assert!(!e.resolve().await.unwrap_err().retryable());
    }

    #[tokio::test]
    async fn numeric_spellings_the_resolver_accepts_are_checked_as_the_address_they_are() {
        // inet_aton reads `127.2` as 127.0.0.2: not an IP literal to the URL
        // check, but the resolver's answer is checked.
        let deny = Egress::new(crate::egress::parse_list("127.0.0.2/32").unwrap());
        let e = endpoint("syslog+tcp://127.2:514", Some(deny.clone()));
        assert!(matches!(e.resolve().await, Err(SinkError::Denied { .. })));
        let ok = endpoint("syslog+tcp://localhost:514", Some(deny));
        assert_eq!(ok.resolve().await.unwrap()[0].ip().to_string(), "127.0.0.1");
    }

    #[tokio::test]
    async fn an_operators_drain_resolves_without_any_check() {
        let e = endpoint("syslog+tcp://localhost:514", None);
        assert!(e.resolve().await.unwrap().iter().all(|a| a.port() == 514));
    }
}
