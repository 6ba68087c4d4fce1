//! What logtrain reads of Envoy's access-log messages, decoded straight from the
//! wire one entry at a time.
//!
//! [`walk`] steps through a `StreamAccessLogsMessage` with `prost::encoding`
//! and hands over the still-encoded identifier and each entry, never building
//! the batch: a message of two million empty entries costs its own bytes, not
//! two million structs. The messages below are Envoy's own (same names, same
//! field numbers — the tests check them against the generated types) pruned to
//! the fields [`super::entry`] reads. prost skips every other field without
//! allocating, so an entry decodes into at most its own bytes plus a fixed
//! struct: the maps, structs and repeated messages an entry may carry
//! (headers, metadata, filter state, certificate names) are never built.
//!
//! Pure functions, no I/O, no counters.

use std::ops::ControlFlow;

use prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};
use prost_types::{Duration, Timestamp};

/// A message that is not a well-formed `StreamAccessLogsMessage`.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("failed to decode Protobuf message: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("failed to decode Protobuf message: field {tag} claims {len} bytes, {left} are left")]
    Truncated { tag: u32, len: u64, left: usize },
}

/// One still-encoded part of a `StreamAccessLogsMessage`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part<'a> {
    /// The stream's `Identifier` (first message only).
    Identifier(&'a [u8]),
    /// One `HTTPAccessLogEntry`.
    Http(&'a [u8]),
    /// One `TCPAccessLogEntry`.
    Tcp(&'a [u8]),
}

impl Part<'_> {
    /// Its encoded length.
    pub fn len(&self) -> usize {
        match self {
            Part::Identifier(b) | Part::Http(b) | Part::Tcp(b) => b.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Takes the bytes of a length-delimited field off the front of `buf`.
fn delimited<'a>(buf: &mut &'a [u8], tag: u32) -> Result<&'a [u8], WireError> {
    let len = decode_varint(buf)?;
    let left = buf.len();
    if len > left as u64 {
        return Err(WireError::Truncated { tag, len, left });
    }
    let (field, rest) = buf.split_at(len as usize);
    *buf = rest;
    Ok(field)
}

/// Hands every part of the encoded `StreamAccessLogsMessage` in `msg` to
/// `each`, in wire order, until it breaks. Fields it does not know are skipped.
pub fn walk(msg: &[u8], mut each: impl FnMut(Part<'_>) -> ControlFlow<()>) -> Result<(), WireError> {
    let mut buf = msg;
    while !buf.is_empty() {
        let (tag, wire_type) = decode_key(&mut buf)?;
        match (tag, wire_type) {
            (1, WireType::LengthDelimited) => {
                if each(Part::Identifier(delimited(&mut buf, tag)?)).is_break() {
                    return Ok(());
                }
            }
            // `http_logs` / `tcp_logs`: `repeated … log_entry = 1`.
            (2 | 3, WireType::LengthDelimited) => {
                let mut batch = delimited(&mut buf, tag)?;
                while !batch.is_empty() {
                    let (inner, inner_type) = decode_key(&mut batch)?;
                    if (inner, inner_type) != (1, WireType::LengthDelimited) {
                        skip_field(inner_type, inner, &mut batch, DecodeContext::default())?;
                        continue;
                    }
                    let entry = delimited(&mut batch, inner)?;
                    let part = if tag == 2 { Part::Http(entry) } else { Part::Tcp(entry) };
                    if each(part).is_break() {
                        return Ok(());
                    }
                }
            }
            _ => skip_field(wire_type, tag, &mut buf, DecodeContext::default())?,
        }
    }
    Ok(())
}

/// `StreamAccessLogsMessage.Identifier`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Identifier {
    #[prost(message, optional, tag = "1")]
    pub node: Option<Node>,
    #[prost(string, tag = "2")]
    pub log_name: String,
}

/// `config.core.v3.Node`: its id only.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Node {
    #[prost(string, tag = "1")]
    pub id: String,
}

/// `data.accesslog.v3.HTTPAccessLogEntry`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HttpAccessLogEntry {
    #[prost(message, optional, tag = "1")]
    pub common_properties: Option<AccessLogCommon>,
    /// `HTTPVersion`.
    #[prost(int32, tag = "2")]
    pub protocol_version: i32,
    #[prost(message, optional, tag = "3")]
    pub request: Option<HttpRequestProperties>,
    #[prost(message, optional, tag = "4")]
    pub response: Option<HttpResponseProperties>,
}

/// `data.accesslog.v3.TCPAccessLogEntry`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TcpAccessLogEntry {
    #[prost(message, optional, tag = "1")]
    pub common_properties: Option<AccessLogCommon>,
    #[prost(message, optional, tag = "2")]
    pub connection_properties: Option<ConnectionProperties>,
}

#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct ConnectionProperties {
    #[prost(uint64, tag = "1")]
    pub received_bytes: u64,
    #[prost(uint64, tag = "2")]
    pub sent_bytes: u64,
}

/// `data.accesslog.v3.AccessLogCommon`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AccessLogCommon {
    #[prost(message, optional, tag = "2")]
    pub downstream_remote_address: Option<Address>,
    #[prost(message, optional, tag = "4")]
    pub tls_properties: Option<TlsProperties>,
    #[prost(message, optional, tag = "5")]
    pub start_time: Option<Timestamp>,
    #[prost(message, optional, tag = "8")]
    pub time_to_last_upstream_tx_byte: Option<Duration>,
    #[prost(message, optional, tag = "10")]
    pub time_to_last_upstream_rx_byte: Option<Duration>,
    #[prost(message, optional, tag = "12")]
    pub time_to_last_downstream_tx_byte: Option<Duration>,
    #[prost(message, optional, tag = "13")]
    pub upstream_remote_address: Option<Address>,
    #[prost(string, tag = "15")]
    pub upstream_cluster: String,
    #[prost(message, optional, tag = "16")]
    pub response_flags: Option<ResponseFlags>,
    #[prost(message, optional, tag = "23")]
    pub duration: Option<Duration>,
}

/// `data.accesslog.v3.ResponseFlags`: the one flag the message shows.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct ResponseFlags {
    #[prost(bool, tag = "15")]
    pub downstream_connection_termination: bool,
}

/// `data.accesslog.v3.TLSProperties`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TlsProperties {
    /// `TLSVersion`.
    #[prost(int32, tag = "1")]
    pub tls_version: i32,
    #[prost(string, tag = "3")]
    pub tls_sni_hostname: String,
}

/// `data.accesslog.v3.HTTPRequestProperties`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HttpRequestProperties {
    /// `config.core.v3.RequestMethod`.
    #[prost(int32, tag = "1")]
    pub request_method: i32,
    #[prost(string, tag = "3")]
    pub authority: String,
    #[prost(string, tag = "5")]
    pub path: String,
    #[prost(string, tag = "8")]
    pub forwarded_for: String,
    #[prost(string, tag = "9")]
    pub request_id: String,
    #[prost(string, tag = "10")]
    pub original_path: String,
    #[prost(uint64, tag = "11")]
    pub request_headers_bytes: u64,
    #[prost(uint64, tag = "12")]
    pub request_body_bytes: u64,
}

/// `data.accesslog.v3.HTTPResponseProperties`.
#[derive(Clone, Copy, PartialEq, Eq, prost::Message)]
pub struct HttpResponseProperties {
    #[prost(message, optional, tag = "1")]
    pub response_code: Option<u32>,
    #[prost(uint64, tag = "2")]
    pub response_headers_bytes: u64,
    #[prost(uint64, tag = "3")]
    pub response_body_bytes: u64,
}

/// `config.core.v3.Address`: socket addresses only (pipes and internal
/// addresses read as none).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Address {
    #[prost(oneof = "address::Address", tags = "1")]
    pub address: Option<address::Address>,
}

pub mod address {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Address {
        #[prost(message, tag = "1")]
        SocketAddress(super::SocketAddress),
    }
}

/// `config.core.v3.SocketAddress`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SocketAddress {
    #[prost(string, tag = "2")]
    pub address: String,
    #[prost(oneof = "socket_address::PortSpecifier", tags = "3, 4")]
    pub port_specifier: Option<socket_address::PortSpecifier>,
}

pub mod socket_address {
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum PortSpecifier {
        #[prost(uint32, tag = "3")]
        PortValue(u32),
        #[prost(string, tag = "4")]
        NamedPort(String),
    }
}

#[cfg(test)]
mod tests;
