//! Forward proxies for HTTP drains (`http(s)://`, `es+http(s)://`,
//! `syslog+http(s)://`), as every HTTP client of the ecosystem reads them:
//! `HTTPS_PROXY` for TLS targets, `HTTP_PROXY` for plain ones, `NO_PROXY` for
//! the hosts reached directly. A drain whose target a proxy serves opens a
//! tunnel with `CONNECT host:port` (HTTP/1.1, `Proxy-Authorization: Basic`
//! from the proxy URL's user info) and speaks to its target through it, TLS
//! end to end; plain-HTTP targets are tunnelled the same way.
//!
//! A tenant's drain (egress policy) is resolved and checked by logtrain as
//! always, and the tunnel is asked for the checked address, never the name,
//! so the proxy cannot be used to reach what the policy forbids. The proxy
//! itself is the operator's and is not checked. Credentials in a proxy URL
//! never reach a log: errors name the proxy's host and port only.

use std::io;
use std::net::IpAddr;
use std::sync::OnceLock;

use base64::Engine as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::driver::SinkError;
use crate::egress::Cidr;

/// Largest CONNECT answer head read (status line and headers).
const MAX_HEAD: usize = 8 << 10;

/// One proxy: where it listens and the Basic credentials of its URL.
#[derive(Clone, PartialEq, Eq)]
pub struct Proxy {
    host: String,
    port: u16,
    basic: Option<String>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Proxy({}:{})", self.host, self.port)
    }
}

/// Why a proxy URL cannot be used (its credentials are never quoted).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{var}: {problem} (expected http://[user:password@]host:port)")]
pub struct ProxyError {
    pub var: &'static str,
    pub problem: &'static str,
}

impl Proxy {
    /// Parses `http://[user:password@]host[:port]` (`https://` proxies, which
    /// would need TLS to the proxy itself, are refused).
    pub fn parse(var: &'static str, url: &str) -> Result<Proxy, ProxyError> {
        let err = |problem| ProxyError { var, problem };
        let with_scheme = if url.contains("://") {
            url.to_string()
        } else {
            format!("http://{url}")
        };
        let u = url::Url::parse(&with_scheme).map_err(|_| err("not a URL"))?;
        if u.scheme() != "http" {
            return Err(err("only http:// proxies are supported"));
        }
        let host = u
            .host_str()
            .ok_or(err("no host"))?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let basic = (!u.username().is_empty()).then(|| {
            let user = percent_encoding::percent_decode_str(u.username()).decode_utf8_lossy();
            let pass = percent_encoding::percent_decode_str(u.password().unwrap_or("")).decode_utf8_lossy();
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        });
        Ok(Proxy {
            host,
            port: u.port().unwrap_or(80),
            basic,
        })
    }

    /// A TCP stream to `target` (`host:port`, an address for a tenant's
    /// drain) through this proxy, ready for the target's own protocol.
    pub async fn tunnel(&self, target: &str) -> Result<TcpStream, SinkError> {
        let at = || format!("proxy {}:{}", self.host, self.port);
        let mut s = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| SinkError::connect(at(), e))?;
        let _ = s.set_nodelay(true);
        let mut req = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(b) = &self.basic {
            req.push_str(&format!("Proxy-Authorization: Basic {b}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| SinkError::connect(at(), e))?;
        // Read the answer's head byte by byte: nothing of the tunnel may be
        // read past it (the target speaks first in some protocols).
        let mut head = Vec::with_capacity(256);
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() >= MAX_HEAD {
                return Err(SinkError::connect(
                    at(),
                    io::Error::other("CONNECT answer head too long"),
                ));
            }
            let mut b = [0u8; 1];
            match s.read(&mut b).await {
                Ok(0) => return Err(SinkError::connect(at(), io::Error::other("closed during CONNECT"))),
                Ok(_) => head.push(b[0]),
                Err(e) => return Err(SinkError::connect(at(), e)),
            }
        }
        let status = head
            .split(|&b| b == b' ')
            .nth(1)
            .and_then(|c| std::str::from_utf8(c).ok());
        match status {
            Some(c) if c.starts_with('2') => Ok(s),
            Some(c) => Err(SinkError::connect(
                at(),
                io::Error::other(format!("CONNECT {target} answered {c}")),
            )),
            None => Err(SinkError::connect(
                at(),
                io::Error::other("not an HTTP answer to CONNECT"),
            )),
        }
    }
}

/// One `NO_PROXY` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Direct {
    Everything,
    /// This domain and its subdomains (`example.com`, `.example.com`).
    Domain(String),
    Network(Cidr),
}

/// The proxies of this process and the hosts reached without one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proxies {
    http: Option<Proxy>,
    https: Option<Proxy>,
    direct: Vec<Direct>,
}

impl Proxies {
    /// From the values of `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY`.
    pub fn new(http: Option<&str>, https: Option<&str>, no_proxy: Option<&str>) -> Result<Proxies, ProxyError> {
        let parse = |var, v: Option<&str>| {
            v.filter(|v| !v.trim().is_empty())
                .map(|v| Proxy::parse(var, v.trim()))
                .transpose()
        };
        let direct = no_proxy
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(|e| {
                if e == "*" {
                    return Direct::Everything;
                }
                if let Ok(c) = crate::egress::parse_list(e)
                    && let [c] = c.as_slice()
                {
                    return Direct::Network(*c);
                }
                // A port after a name is ignored, as curl does.
                let name = e
                    .rsplit_once(':')
                    .filter(|(_, p)| p.parse::<u16>().is_ok())
                    .map_or(e, |(n, _)| n);
                Direct::Domain(
                    name.trim_start_matches("*.")
                        .trim_start_matches('.')
                        .to_ascii_lowercase(),
                )
            })
            .collect();
        Ok(Proxies {
            http: parse("HTTP_PROXY", http)?,
            https: parse("HTTPS_PROXY", https)?,
            direct,
        })
    }

    /// The proxy for a target on `host` (TLS or not), unless `NO_PROXY` names it.
    pub fn for_target(&self, tls: bool, host: &str) -> Option<&Proxy> {
        let proxy = if tls { self.https.as_ref() } else { self.http.as_ref() }?;
        let host = host.trim_start_matches('[').trim_end_matches(']').to_ascii_lowercase();
        let ip: Option<IpAddr> = host.parse().ok();
        let direct = self.direct.iter().any(|d| match d {
            Direct::Everything => true,
            Direct::Network(c) => ip.is_some_and(|ip| c.contains(ip)),
            Direct::Domain(d) => host == *d || host.ends_with(&format!(".{d}")),
        });
        (!direct).then_some(proxy)
    }
}

static PROXIES: OnceLock<Proxies> = OnceLock::new();

/// Sets this process's proxies (once, at start; later calls are ignored).
pub fn install(p: Proxies) {
    let _ = PROXIES.set(p);
}

/// The proxy for a target on `host`, if one is installed and applies.
pub fn for_target(tls: bool, host: &str) -> Option<Proxy> {
    PROXIES.get()?.for_target(tls, host).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_proxy_names_domains_networks_or_everything() {
        let p = Proxies::new(
            Some("proxy:3128"),
            Some("http://u:p%40ss@proxy.corp:8080"),
            Some("internal.example, .svc.cluster.local,10.0.0.0/8, ::1, logs.example.com:443"),
        )
        .unwrap();
        assert_eq!(p.for_target(true, "api.datadoghq.com").map(|x| x.port), Some(8080));
        assert_eq!(p.for_target(false, "api.datadoghq.com").map(|x| x.port), Some(3128));
        for direct in [
            "internal.example",
            "a.internal.example",
            "es.logs.svc.cluster.local",
            "10.1.2.3",
            "[::1]",
            "logs.example.com",
        ] {
            assert!(p.for_target(true, direct).is_none(), "{direct}");
        }
        assert!(p.for_target(true, "notinternal.example").is_some());
        assert!(p.for_target(true, "11.0.0.1").is_some());
        let all = Proxies::new(None, Some("proxy:1"), Some("*")).unwrap();
        assert!(all.for_target(true, "anything").is_none());
    }

    #[test]
    fn proxy_credentials_become_basic_auth_and_never_show() {
        let p = Proxy::parse("HTTPS_PROXY", "http://user:p%40ss@proxy:8080").unwrap();
        assert_eq!(p.basic.as_deref(), Some("dXNlcjpwQHNz"));
        assert_eq!(format!("{p:?}"), "Proxy(proxy:8080)");
        let e = Proxy::parse("HTTPS_PROXY", "https://user:s3cret@proxy:8443").unwrap_err();
        assert!(!e.to_string().contains("s3cret"), "{e}");
        assert!(Proxy::parse("HTTP_PROXY", "http://").is_err());
    }
}
