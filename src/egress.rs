//! Where drains declared by tenants may connect: the networks of
//! `DRAIN_DENY_NETWORKS` are off limits to drains named in annotations
//! (loopback, link-local, the cloud metadata addresses by default). The check
//! is made on every address a name resolves to, at connect time, so DNS cannot
//! get around it; an IP literal is refused as early as the URL is read.
//!
//! Pure address arithmetic: nothing here resolves or connects.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// `DRAIN_DENY_NETWORKS` when unset: loopback (`127.0.0.0/8`, `::1`), "this
/// host" (`0.0.0.0/8`, `::`, which Linux connects to loopback), link-local
/// (`169.254.0.0/16`, `fe80::/10`, where the metadata services of AWS, GCP and
/// Azure answer at 169.254.169.254), AWS's IPv6 metadata address and
/// Alibaba Cloud's metadata address.
pub const DEFAULT_DENY: &str =
    "127.0.0.0/8,::1/128,0.0.0.0/8,::/128,169.254.0.0/16,fe80::/10,fd00:ec2::254/128,100.100.100.200/32";

/// An IP network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// A CIDR that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{text:?} is not a network: expected ADDRESS/PREFIX such as 10.0.0.0/8 or fd00::/8 (a bare address means one host)"
)]
pub struct CidrError {
    pub text: String,
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let bad = || CidrError { text: s.to_string() };
        let t = s.trim();
        let (a, p) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?,
            None => max,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl<'de> serde::Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Cidr {
    /// Whether `ip` lies in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// Parses a comma-separated list of networks (empty: none).
pub fn parse_list(text: &str) -> Result<Vec<Cidr>, CidrError> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect()
}

/// An address a tenant's drain may not reach.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("address {addr} is in {network}, which DRAIN_DENY_NETWORKS keeps drains named in annotations from reaching")]
pub struct Denied {
    pub addr: IpAddr,
    pub network: Cidr,
}

/// The egress policy of drains declared by tenants.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Egress {
    deny: Vec<Cidr>,
}

impl Default for Egress {
    fn default() -> Self {
        Egress {
            deny: parse_list(DEFAULT_DENY).expect("default networks parse"),
        }
    }
}

impl Egress {
    pub fn new(deny: Vec<Cidr>) -> Self {
        Egress { deny }
    }

    /// A policy that allows every address.
    pub fn open() -> Self {
        Egress { deny: Vec::new() }
    }

    pub fn networks(&self) -> &[Cidr] {
        &self.deny
    }

    /// Whether a tenant's drain may connect to `ip`.
    pub fn check(&self, ip: IpAddr) -> Result<(), Denied> {
        match self.deny.iter().find(|n| n.contains(ip)) {
            Some(n) => Err(Denied {
                addr: canonical(ip),
                network: *n,
            }),
            None => Ok(()),
        }
    }

    /// Checks a host as written in a URL when it is an IP literal (names are
    /// checked once resolved, at connect time).
    pub fn check_literal(&self, host: &str) -> Result<(), Denied> {
        let h = host.trim_start_matches('[').trim_end_matches(']');
        match h.parse::<IpAddr>() {
            Ok(ip) => self.check(ip),
            Err(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_default_denies_loopback_link_local_and_metadata_in_every_spelling() {
        let e = Egress::default();
        for denied in [
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
            "::",
            "169.254.169.254",
            "::ffff:169.254.169.254",
            "fe80::1",
            "fd00:ec2::254",
            "100.100.100.200",
        ] {
            assert!(e.check(ip(denied)).is_err(), "{denied} allowed");
        }
        for allowed in ["10.0.0.1", "192.168.1.1", "8.8.8.8", "2001:db8::1", "100.100.100.201"] {
            assert!(e.check(ip(allowed)).is_ok(), "{allowed} denied");
        }
        assert!(e.check_literal("[::1]").is_err());
        assert!(e.check_literal("logs.example.com").is_ok());
    }

    #[test]
    fn networks_parse_with_and_without_prefix_and_bad_ones_are_named() {
        let l = parse_list(" 10.0.0.0/8 , 192.0.2.7,fd00::/8,").unwrap();
        assert_eq!(l.len(), 3);
        assert_eq!(l[1].to_string(), "192.0.2.7/32");
        assert!(l[0].contains(ip("10.255.0.1")) && !l[0].contains(ip("11.0.0.1")));
        assert!(l[2].contains(ip("fd12::1")) && !l[2].contains(ip("fe00::1")));
        assert!(parse_list("").unwrap().is_empty());
        for bad in ["10.0.0.0/33", "::/129", "example.com/8", "10.0.0/8"] {
            let e = parse_list(bad).unwrap_err();
            assert!(e.to_string().contains(bad), "{e}");
        }
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("::2")));
    }
}
