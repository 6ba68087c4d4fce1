//! Turns one Envoy access-log entry (HTTP or TCP) into a record the way
//! logtrain does: the hostname comes from an Istio-style upstream cluster name
//! (`outbound|PORT|SUBSET|NAME.NAMESPACE.svc.cluster.local`), the time from the
//! entry's start time, and the message is logtrain's `key=value` line.
//!
//! Pure functions, no I/O and no counters: the caller counts what the returned
//! [`Converted`] says. A missing field never fails a conversion: it reads as its
//! protobuf default and marks the entry incomplete. Entries are the pruned
//! [`wire`](super::wire) types; the enums are named by the generated ones.

use std::fmt::Write as _;

use bytes::Bytes;
use prost_types::{Duration, Timestamp as PbTimestamp};

use super::proto::envoy::config::core::v3::RequestMethod;
use super::proto::envoy::data::accesslog::v3::{http_access_log_entry::HttpVersion, tls_properties::TlsVersion};
use super::wire::{
    AccessLogCommon, Address, ConnectionProperties, HttpAccessLogEntry, HttpRequestProperties, HttpResponseProperties,
    TcpAccessLogEntry, address, socket_address,
};
use crate::record::{InputKind, Record};
use crate::time::Timestamp;

/// How hostnames and the tag are spelled (`AKKERIS`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Naming {
    pub akkeris: bool,
}

impl Naming {
    /// `NAME.NAMESPACE` (`NAME-NAMESPACE` for Akkeris) from an upstream cluster
    /// name, or `None` when the cluster names no Kubernetes service.
    pub fn hostname(&self, cluster: &str) -> Option<String> {
        let fqdn = cluster.split('|').nth(3)?;
        let mut labels = fqdn.split('.');
        let name = labels.next().filter(|s| !s.is_empty())?;
        let namespace = labels.next().filter(|s| !s.is_empty())?;
        let sep = if self.akkeris { '-' } else { '.' };
        Some(format!("{name}{sep}{namespace}"))
    }

    /// The syslog APP-NAME of every Envoy record.
    pub fn tag(&self) -> &'static str {
        if self.akkeris { "akkeris/router" } else { "envoy" }
    }
}

/// The outcome of converting one entry.
#[derive(Debug)]
pub struct Converted {
    /// `None` when the entry names no service to route by (logtrain skips those too).
    pub record: Option<Record>,
    /// Some field a complete entry carries was missing and read as its default.
    pub incomplete: bool,
}

/// Converts an HTTP entry; `now` stands in for a missing start time.
pub fn http(naming: Naming, e: &HttpAccessLogEntry, now: Timestamp) -> Converted {
    let none_common = AccessLogCommon::default();
    let none_req = HttpRequestProperties::default();
    let none_resp = HttpResponseProperties::default();
    let incomplete = e.common_properties.is_none()
        || e.request.is_none()
        || e.response.is_none()
        || e.common_properties.as_ref().is_some_and(|c| c.start_time.is_none());
    let c = e.common_properties.as_ref().unwrap_or(&none_common);
    // Nothing is formatted for an entry that names no service.
    let Some(hostname) = naming.hostname(&c.upstream_cluster) else {
        return Converted {
            record: None,
            incomplete,
        };
    };
    let req = e.request.as_ref().unwrap_or(&none_req);
    let resp = e.response.as_ref().unwrap_or(&none_resp);

    let status = match resp.response_code {
        Some(code) => code,
        None if c
            .response_flags
            .as_ref()
            .is_some_and(|f| f.downstream_connection_termination) =>
        {
            499
        }
        None => 0,
    };
    let req_size = req.request_headers_bytes.saturating_add(req.request_body_bytes);
    let resp_size = resp.response_headers_bytes.saturating_add(resp.response_body_bytes);
    let method = RequestMethod::try_from(req.request_method)
        .map(|m| m.as_str_name().to_string())
        .unwrap_or_else(|_| req.request_method.to_string());
    let protocol = HttpVersion::try_from(e.protocol_version)
        .map(|v| v.as_str_name().to_ascii_lowercase())
        .unwrap_or_else(|_| e.protocol_version.to_string());

    let mut m = String::with_capacity(256);
    let _ = write!(
        m,
        "bytes={} request_size={req_size} response_size={resp_size} method={method} request_id={} fwd={} authority={} ",
        req_size.saturating_add(resp_size),
        req.request_id,
        req.forwarded_for,
        req.authority,
    );
    if let Some(tls) = &c.tls_properties {
        let _ = write!(m, "origin=https://{}{} ", tls.tls_sni_hostname, req.original_path);
    }
    let _ = write!(m, "protocol={protocol} ");
    write_tls(&mut m, c);
    let _ = write!(m, "status={status} ");
    write_durations(&mut m, c, c.time_to_last_downstream_tx_byte.as_ref());
    let _ = write!(m, " path={}", req.path);
    finish(naming, c, hostname, m, incomplete, now)
}

/// Converts a TCP entry; `now` stands in for a missing start time.
pub fn tcp(naming: Naming, e: &TcpAccessLogEntry, now: Timestamp) -> Converted {
    let none_common = AccessLogCommon::default();
    let none_conn = ConnectionProperties::default();
    let incomplete = e.common_properties.is_none()
        || e.connection_properties.is_none()
        || e.common_properties.as_ref().is_some_and(|c| c.start_time.is_none());
    let c = e.common_properties.as_ref().unwrap_or(&none_common);
    let Some(hostname) = naming.hostname(&c.upstream_cluster) else {
        return Converted {
            record: None,
            incomplete,
        };
    };
    let conn = e.connection_properties.as_ref().unwrap_or(&none_conn);

    let mut m = String::with_capacity(192);
    let _ = write!(
        m,
        "bytes={} received={} sent={} fwd={} upstream={} protocol=tcp ",
        conn.received_bytes.saturating_add(conn.sent_bytes),
        conn.received_bytes,
        conn.sent_bytes,
        host_of(c.downstream_remote_address.as_ref()),
        host_port_of(c.upstream_remote_address.as_ref()),
    );
    write_tls(&mut m, c);
    write_durations(
        &mut m,
        c,
        c.duration.as_ref().or(c.time_to_last_downstream_tx_byte.as_ref()),
    );
    finish(naming, c, hostname, m, incomplete, now)
}

fn finish(
    naming: Naming,
    c: &AccessLogCommon,
    hostname: String,
    message: String,
    incomplete: bool,
    now: Timestamp,
) -> Converted {
    let mut r = Record::new(InputKind::Envoy, hostname, message);
    r.app_name = Bytes::from_static(naming.tag().as_bytes());
    r.timestamp = Some(c.start_time.as_ref().map(timestamp).unwrap_or(now));
    Converted {
        record: Some(r),
        incomplete,
    }
}

fn write_tls(m: &mut String, c: &AccessLogCommon) {
    if let Some(tls) = &c.tls_properties {
        let v = TlsVersion::try_from(tls.tls_version)
            .map(|v| v.as_str_name().to_string())
            .unwrap_or_else(|_| tls.tls_version.to_string());
        let _ = write!(m, "tls={v} ");
    }
}

/// `connect=… service=… total=…` (no trailing space); a duration Envoy did not
/// measure (no upstream, say) reads as zero.
fn write_durations(m: &mut String, c: &AccessLogCommon, total: Option<&Duration>) {
    let _ = write!(
        m,
        "connect={:.2}ms service={:.2}ms total={:.2}ms",
        millis(c.time_to_last_upstream_tx_byte.as_ref()),
        millis(c.time_to_last_upstream_rx_byte.as_ref()),
        millis(total),
    );
}

fn millis(d: Option<&Duration>) -> f64 {
    d.map(|d| d.seconds as f64 * 1e3 + f64::from(d.nanos) / 1e6)
        .unwrap_or(0.0)
}

fn timestamp(t: &PbTimestamp) -> Timestamp {
    Timestamp(
        t.seconds
            .saturating_mul(1_000_000_000)
            .saturating_add(i64::from(t.nanos)),
    )
}

fn socket(a: Option<&Address>) -> Option<&super::wire::SocketAddress> {
    let address::Address::SocketAddress(s) = a?.address.as_ref()?;
    Some(s)
}

/// The IP of an address (empty when there is none).
fn host_of(a: Option<&Address>) -> &str {
    socket(a).map(|s| s.address.as_str()).unwrap_or("")
}

/// `IP:PORT` (`[IPv6]:PORT`) of an address (empty when there is none).
fn host_port_of(a: Option<&Address>) -> String {
    let Some(s) = socket(a) else {
        return String::new();
    };
    let port = match &s.port_specifier {
        Some(socket_address::PortSpecifier::PortValue(p)) => p.to_string(),
        Some(socket_address::PortSpecifier::NamedPort(n)) => n.clone(),
        None => return s.address.clone(),
    };
    if s.address.contains(':') {
        format!("[{}]:{port}", s.address)
    } else {
        format!("{}:{port}", s.address)
    }
}

#[cfg(test)]
mod tests;
