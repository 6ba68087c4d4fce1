//! Syslog drains: RFC 5424 over TCP, TLS and UDP.
//!
//! | scheme | transport | parameters (defaults) |
//! |---|---|---|
//! | `syslog+tcp://host[:514]` | TCP | `framing=octet` (RFC 6587 octet counting) or `framing=newline` |
//! | `syslog+tls://host[:6514]` | TLS (RFC 5425) | `framing=octet\|newline`, `ca=` (base64 PEM, extra roots), `insecure=false` |
//! | `syslog://host[:514]`, `syslog+udp://` | UDP (RFC 5426) | `max_size=2048` (bytes per datagram, 480–65507) |
//!
//! Streams: one batch is encoded into one buffer and written with one write,
//! and the connection is kept for the next batch. Before each write the sink
//! checks, without waiting, whether the receiver closed the connection (a
//! syslog receiver never talks back, so this is the only early sign of a
//! restart); a closed connection is an I/O error, and the driver reconnects
//! and sends the batch again. Because a syslog receiver never acknowledges, a
//! batch written just before the receiver went away would be lost unnoticed:
//! the driver holds each written batch until a later check (before the next
//! batch, or after [`super::driver::CONFIRM_AFTER`]) finds the connection
//! alive, and sends it again otherwise — a receiver restart costs at most
//! duplicates of that batch, never a silent loss.
//!
//! Both resolve through [`Endpoint`]: a drain named by a tenant connects (or,
//! for UDP, sends) only to addresses its egress policy allows.
//!
//! UDP: one record per datagram, encoded without framing; a datagram longer
//! than `max_size` is truncated (on a UTF-8 boundary when one is near) and
//! counted via [`Delivery::truncated`]. UDP gives no delivery signal: an ICMP
//! "port unreachable" from an earlier datagram is ignored, not retried.

use std::io;

use tokio::io::AsyncWriteExt;
use tokio::net::UdpSocket;
use tracing::debug;

use super::dial::Endpoint;
use super::driver::{Delivery, Sink, SinkError};
use super::tls::{self, Stream, TlsConnector};
use super::url::{DrainKind, DrainSpec};
use crate::encode::framing::Framing;
use crate::encode::rfc5424;
use crate::record::SharedRecord;
use crate::time::Timestamp;

/// `syslog+tcp://` and `syslog+tls://`.
pub struct SyslogStreamSink {
    endpoint: Endpoint,
    framing: Framing,
    tls: Option<TlsConnector>,
}

impl SyslogStreamSink {
    /// A sink for `spec`; `tls` carries the connector for `syslog+tls://`.
    pub fn new(spec: &DrainSpec, tls: Option<TlsConnector>) -> Self {
        SyslogStreamSink {
            endpoint: Endpoint::of(spec),
            framing: match &spec.kind {
                DrainKind::SyslogStream { framing, .. } => *framing,
                _ => Framing::OctetCounting,
            },
            tls,
        }
    }
}

/// One open stream and its reused encode buffer.
pub struct StreamConn {
    stream: Stream,
    buf: Vec<u8>,
}

impl Sink for SyslogStreamSink {
    type Conn = StreamConn;

    async fn connect(&self) -> Result<StreamConn, SinkError> {
        Ok(StreamConn {
            stream: tls::connect(&self.endpoint, self.tls.as_ref()).await?,
            buf: Vec::with_capacity(64 << 10),
        })
    }

    async fn send(&self, conn: &mut StreamConn, batch: &[SharedRecord]) -> Result<Delivery, SinkError> {
        if conn.stream.peer_closed().await {
            return Err(SinkError::Io(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "the receiver closed the connection",
            )));
        }
        conn.buf.clear();
        let now = Timestamp::now();
        for r in batch {
            self.framing.encode(r, now, &mut conn.buf);
        }
        conn.stream.write_all(&conn.buf).await?;
        conn.stream.flush().await?;
        Ok(Delivery {
            bytes: conn.buf.len() as u64,
            ..Delivery::default()
        })
    }

    async fn close(&self, mut conn: StreamConn) {
        let _ = conn.stream.shutdown().await;
    }

    fn unacknowledged(&self) -> bool {
        true
    }

    async fn healthy(&self, conn: &mut StreamConn) -> bool {
        !conn.stream.peer_closed().await
    }
}

/// `syslog://` and `syslog+udp://`.
pub struct SyslogUdpSink {
    endpoint: Endpoint,
    max_datagram: usize,
}

impl SyslogUdpSink {
    pub fn new(spec: &DrainSpec) -> Self {
        SyslogUdpSink {
            endpoint: Endpoint::of(spec),
            max_datagram: match spec.kind {
                DrainKind::SyslogUdp { max_datagram } => max_datagram,
                _ => super::url::DEFAULT_MAX_DATAGRAM,
            },
        }
    }
}

/// A connected UDP socket and its reused buffer.
pub struct UdpConn {
    socket: UdpSocket,
    buf: Vec<u8>,
}

impl Sink for SyslogUdpSink {
    type Conn = UdpConn;

    async fn connect(&self) -> Result<UdpConn, SinkError> {
        // The socket is connected to the checked address, never to the name.
        let Some(addr) = self.endpoint.resolve().await?.first().copied() else {
            let none = io::Error::new(io::ErrorKind::AddrNotAvailable, "no address to send to");
            return Err(SinkError::connect("resolving the host", none));
        };
        let err = |e: io::Error| SinkError::connect(addr.to_string(), e);
        let bind = if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" };
        let socket = UdpSocket::bind(bind).await.map_err(err)?;
        socket.connect(addr).await.map_err(err)?;
        Ok(UdpConn {
            socket,
            buf: Vec::with_capacity(self.max_datagram + 64),
        })
    }

    async fn send(&self, conn: &mut UdpConn, batch: &[SharedRecord]) -> Result<Delivery, SinkError> {
        let mut d = Delivery::default();
        let now = Timestamp::now();
        for (i, r) in batch.iter().enumerate() {
            conn.buf.clear();
            rfc5424::encode(r, now, &mut conn.buf);
            if conn.buf.len() > self.max_datagram {
                let cut = utf8_cut(&conn.buf, self.max_datagram);
                conn.buf.truncate(cut);
                d.truncated += 1;
            }
            match conn.socket.send(&conn.buf).await {
                Ok(n) => d.bytes += n as u64,
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                    debug!(error = %e, "Syslog UDP receiver reported unreachable; datagrams are not retried.");
                }
                Err(e) => {
                    if i == 0 {
                        return Err(SinkError::Io(e));
                    }
                    // What was sent stays sent; only the rest is retried.
                    d.retry = (i..batch.len()).collect();
                    return Ok(d);
                }
            }
        }
        Ok(d)
    }
}

/// The largest length `<= max` that does not split a UTF-8 sequence (looking
/// back at most 3 bytes; raw binary is cut at `max`).
fn utf8_cut(b: &[u8], max: usize) -> usize {
    let mut cut = max;
    for _ in 0..3 {
        if cut > 0 && cut < b.len() && (b[cut] & 0xC0) == 0x80 {
            cut -= 1;
        } else {
            break;
        }
    }
    if cut < b.len() && (b[cut] & 0xC0) == 0x80 {
        max
    } else {
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_cut_keeps_sequences_whole() {
        let s = "aé🚂".as_bytes(); // a(1) é(2) 🚂(4)
        assert_eq!(utf8_cut(s, 7), 7);
        assert_eq!(utf8_cut(s, 6), 3);
        assert_eq!(utf8_cut(s, 5), 3);
        assert_eq!(utf8_cut(s, 3), 3);
        assert_eq!(utf8_cut(s, 2), 1);
        let bin = [0x80u8; 10];
        assert_eq!(utf8_cut(&bin, 5), 5);
    }
}
