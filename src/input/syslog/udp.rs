//! Syslog over UDP: one message per datagram (RFC 5426), trailing CR/LF dropped.
//!
//! The socket asks the kernel for an 8 MiB receive buffer (via `socket2`) so
//! bursts are absorbed while records are routed; Linux caps the request at
//! `net.core.rmem_max`, and the size granted is logged. A datagram longer than
//! the line limit is truncated to it and counted. Each datagram's record is
//! taken from the input memory budget until it is offered; while the budget is
//! spent datagrams are dropped and counted (UDP has no way to slow a sender).
//! The socket is drained a batch at a time per wake-up (one look at the routes
//! and at shutdown per batch, the sender's name kept while it stays the same).
//! On shutdown the loop stops after the batch it is handling.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tracing::{info, warn};

use super::{Intake, listen_addr};
use crate::app::App;
use crate::input::InputError;
use crate::input::budget::Budget;
use crate::record::InputKind;
use crate::shutdown::Shutdown;

/// Receive buffer asked of the kernel.
const RECV_BUFFER: usize = 8 << 20;
/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;
/// Datagrams taken per wake-up before looking at shutdown again.
const BATCH: usize = 256;

fn bind(addr: SocketAddr) -> std::io::Result<(UdpSocket, usize)> {
    let s = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = s.set_recv_buffer_size(RECV_BUFFER);
    let granted = s.recv_buffer_size().unwrap_or(0);
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    Ok((UdpSocket::from_std(s.into())?, granted))
}

/// Binds the UDP listener and spawns its loop. Returns the bound address.
pub async fn start(app: &App, port: u16, budget: &Budget) -> Result<SocketAddr, InputError> {
    let input = InputKind::SyslogUdp.as_str();
    let addr = listen_addr(app, input, port)?;
    let bind_err = |source| InputError::Bind {
        input,
        addr: addr.to_string(),
        source,
    };
    let (sock, granted) = bind(addr).map_err(bind_err)?;
    let local = sock.local_addr().map_err(bind_err)?;
    info!(input, addr = %local, recv_buffer = granted, "Syslog listener started.");
    let intake = Intake::new(app, InputKind::SyslogUdp, budget);
    let shutdown = app.inputs().clone();
    app.inputs().spawn(run(sock, intake, shutdown));
    Ok(local)
}

async fn run(sock: UdpSocket, intake: Arc<Intake>, shutdown: Shutdown) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let max = intake.limits.max_line;
    // The last sender and its name: a burst comes from few senders.
    let mut last: Option<(SocketAddr, String)> = None;
    loop {
        tokio::select! {
            _ = shutdown.stopped() => break,
            r = sock.readable() => if let Err(e) = r {
                warn!(input = "syslog_udp", error = %e, "UDP receive failed.");
                continue;
            },
        }
        // What the socket holds, up to a batch, under one look at the routes.
        let table = intake.router.routes().load();
        for _ in 0..BATCH {
            let (n, peer) = match sock.try_recv_from(&mut buf) {
                Ok(x) => x,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    warn!(input = "syslog_udp", error = %e, "UDP receive failed.");
                    break;
                }
            };
            let mut end = n;
            while end > 0 && matches!(buf[end - 1], b'\n' | b'\r' | 0) {
                end -= 1;
            }
            if end == 0 {
                continue;
            }
            if last.as_ref().is_none_or(|(a, _)| *a != peer) {
                last = Some((peer, peer.to_string()));
            }
            let peer = last.as_ref().map_or("", |(_, s)| s.as_str());
            if end > max {
                intake.stats.truncated(peer, max);
                end = max;
            }
            let mut lease = intake.budget.lease();
            if let Err(spent) = lease.try_grow(end + std::mem::size_of::<crate::record::Record>()) {
                intake.pressure.spent(&spent, "datagram dropped");
                continue;
            }
            let _ = intake.frame(&table, Bytes::copy_from_slice(&buf[..end]), peer);
        }
    }
}
