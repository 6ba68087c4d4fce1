//! Syslog over TCP and over TLS: one accept loop and one connection handler for
//! both (TLS only adds a handshake in front).
//!
//! - A semaphore caps open connections per listener; a connection over the cap
//!   is accepted and closed at once, counted in
//!   `logtrain_input_connections_refused_total` (and logged once).
//! - A connection that sends nothing for the idle timeout (a half-open peer, a
//!   stalled handshake) is closed.
//! - Each read is decoded into frames and routed against one table snapshot.
//! - On shutdown the listener stops accepting; each connection routes the
//!   complete frames it already read, then closes.
//!
//! Memory per connection is bounded by the frame limits plus one read chunk.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::framing::Decoder;
use super::{Intake, PUSHBACK_EVERY, Touched, listen_addr};
use crate::app::App;
use crate::input::InputError;
use crate::record::InputKind;
use crate::shutdown::Shutdown;

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 << 10;

/// Binds the listener for `kind` on `port` (TLS when `tls` is given) and spawns
/// its accept loop. Returns the bound address.
pub async fn start(app: &App, kind: InputKind, port: u16, tls: Option<TlsAcceptor>) -> Result<SocketAddr, InputError> {
    let input = kind.as_str();
    let addr = listen_addr(app, input, port)?;
    let bind_err = |source| InputError::Bind {
        input,
        addr: addr.to_string(),
        source,
    };
    let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
    let local = listener.local_addr().map_err(bind_err)?;
    let intake = Intake::new(app, kind);
    info!(
        input,
        addr = %local,
        max_connections = intake.limits.max_connections,
        "Syslog listener started."
    );
    let shutdown = app.inputs().clone();
    app.inputs().spawn(accept_loop(listener, intake, tls, shutdown));
    Ok(local)
}

async fn accept_loop(listener: TcpListener, intake: Arc<Intake>, tls: Option<TlsAcceptor>, shutdown: Shutdown) {
    let cap = intake.limits.max_connections;
    let slots = Arc::new(Semaphore::new(cap));
    loop {
        let (sock, peer) = tokio::select! {
            _ = shutdown.stopped() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    warn!(input = intake.stats.kind.as_str(), error = %e, "Cannot accept a connection.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            intake.stats.refused(&peer.to_string(), cap);
            drop(sock);
            continue;
        };
        let _ = sock.set_nodelay(true);
        let intake = intake.clone();
        let tls = tls.clone();
        let sd = shutdown.clone();
        shutdown.spawn(async move {
            let _permit = permit;
            let _open = intake.stats.open();
            connection(sock, peer.to_string(), tls, &intake, &sd).await;
        });
    }
    debug!(input = intake.stats.kind.as_str(), "Syslog listener stopped accepting.");
}

async fn connection(sock: TcpStream, peer: String, tls: Option<TlsAcceptor>, intake: &Intake, sd: &Shutdown) {
    let Some(acceptor) = tls else {
        return serve(sock, &peer, intake, sd).await;
    };
    match timeout(intake.limits.idle_timeout, acceptor.accept(sock)).await {
        Ok(Ok(stream)) => serve(stream, &peer, intake, sd).await,
        Ok(Err(e)) => intake.stats.handshake_failed(&peer, &e.to_string()),
        Err(_) => intake.stats.handshake_failed(&peer, "handshake timed out"),
    }
}

/// Reads frames from one connection until EOF, error, idle timeout or shutdown.
pub async fn serve<S: AsyncRead + Unpin>(mut s: S, peer: &str, intake: &Intake, sd: &Shutdown) {
    let input = intake.stats.kind.as_str();
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    let mut dec = Decoder::new(intake.limits.max_line, intake.limits.max_frame);
    let mut touched = Touched::default();
    loop {
        // Push back on the sender while the drains of the last read are full.
        if !touched.push_back(sd.stopped()).await {
            return;
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let read = tokio::select! {
            biased;
            _ = sd.stopped() => {
                debug!(input, %peer, "Closing connection for shutdown.");
                return;
            }
            r = timeout(intake.limits.idle_timeout, s.read_buf(&mut buf)) => r,
        };
        match read {
            Err(_) => {
                info!(input, %peer, idle = ?intake.limits.idle_timeout, "Closing idle connection.");
                return;
            }
            Ok(Ok(0)) => break,
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Ok(Err(e)) => {
                debug!(input, %peer, error = %e, "Connection read failed.");
                return;
            }
        }
        let table = intake.router.routes().snapshot();
        let mut since_check = 0;
        loop {
            match dec.decode(&mut buf) {
                Ok(Some(d)) => {
                    intake.decoded(&table, d, peer, &mut touched);
                    // One read may hold more than a queue takes: look again now and then.
                    since_check += 1;
                    if since_check == PUSHBACK_EVERY {
                        since_check = 0;
                        if !touched.push_back(sd.stopped()).await {
                            return;
                        }
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    intake.stats.framing_error(peer, &e.to_string());
                    return;
                }
            }
        }
    }
    match dec.decode_eof(&mut buf) {
        Ok(Some(d)) => intake.decoded(&intake.router.routes().load(), d, peer, &mut touched),
        Ok(None) => {}
        Err(e) => intake.stats.framing_error(peer, &e.to_string()),
    }
}
