//! Syslog over TCP and over TLS: one connection handler for both (TLS only adds
//! a handshake in front), behind the shared capped [`Listener`], which refuses
//! connections over the cap (it says why syslog refuses rather than evicts) and
//! fails the reads of a connection silent for the idle timeout.
//!
//! - Each read is decoded into frames and routed against one table snapshot.
//! - Memory: before each read a connection holds, from the input memory budget,
//!   what it has buffered plus one read — and once an octet count announced a
//!   frame, the whole rest of that frame, read no further than its end. When
//!   the budget is spent the connection stops reading (TCP flow control slows
//!   the sender; nothing is dropped) and waits its turn, holding what it has:
//!   at most one read of a counted frame, since the rest is asked for at once.
//!   So as long as the budget holds one read per connection plus the largest
//!   frame (checked at start: a warning), someone can always go on. Lines have
//!   no announced length: a connection in the middle of a long line waits
//!   holding it. A connection waits at most the idle timeout and is then closed
//!   like an idle one, which ends any stalemate.
//! - On shutdown the listener stops accepting; each connection routes the
//!   complete frames it already read, then closes.

use std::net::SocketAddr;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::framing::Decoder;
use super::{Intake, PUSHBACK_EVERY, Touched, listen_addr};
use crate::app::App;
use crate::input::InputError;
use crate::input::budget::{Budget, Lease};
use crate::input::listener::{AtCap, Conn, Listener};
use crate::record::InputKind;
use crate::shutdown::Shutdown;

/// Bytes asked of the socket per read (and held from the budget for it).
pub const READ_CHUNK: usize = 16 << 10;

/// Binds the listener for `kind` on `port` (TLS when `tls` is given) and spawns
/// its accept loop. Returns the bound address. Fails when `budget` could not
/// hold even one frame.
pub async fn start(
    app: &App,
    kind: InputKind,
    port: u16,
    tls: Option<TlsAcceptor>,
    budget: &Budget,
) -> Result<SocketAddr, InputError> {
    let input = kind.as_str();
    let addr = listen_addr(app, input, port)?;
    let intake = Intake::new(app, kind, budget);
    let smallest = intake.limits.max_frame + 2 * READ_CHUNK;
    if budget.limit() < smallest {
        return Err(InputError::BudgetTooSmall {
            input,
            budget: budget.limit(),
            max_frame: intake.limits.max_frame,
            smallest,
        });
    }
    let comfortable = intake.limits.max_connections * READ_CHUNK + smallest;
    if budget.limit() < comfortable {
        warn!(
            input,
            input_memory_bytes = budget.limit(),
            comfortable,
            "INPUT_MEMORY_BYTES holds fewer than one read per connection plus the largest frame: \
             connections waiting for memory may stall until the idle timeout closes them."
        );
    }
    let listener = Listener::bind(addr, intake.limits.listener(input, AtCap::Refuse)).await?;
    let local = listener.local_addr();
    info!(
        input,
        addr = %local,
        max_connections = intake.limits.max_connections,
        "Syslog listener started."
    );
    let sd = app.inputs().clone();
    app.inputs().spawn(listener.run(sd.clone(), move |conn| {
        let (intake, tls, sd) = (intake.clone(), tls.clone(), sd.clone());
        async move { connection(conn, tls, &intake, &sd).await }
    }));
    Ok(local)
}

async fn connection(conn: Conn, tls: Option<TlsAcceptor>, intake: &Intake, sd: &Shutdown) {
    let peer = conn.peer().to_string();
    let Some(acceptor) = tls else {
        return serve(conn, &peer, intake, sd).await;
    };
    match timeout(intake.limits.idle_timeout, acceptor.accept(conn)).await {
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
    let mut lease = intake.budget.lease();
    loop {
        // Push back on the sender while the drains of the last read are full.
        if !touched.push_back(sd.stopped()).await {
            return;
        }
        // And while the input memory is spent. A counted frame in progress is
        // held whole and read no further than its end: the connection then
        // never waits in the middle of it, nor holds part of the next.
        let read_at_most = match dec.pending(&buf) {
            0 => READ_CHUNK,
            rest => rest,
        };
        if !hold(&mut lease, buf.len() + read_at_most, buf.len(), peer, intake, sd).await {
            return;
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        let mut room = (&mut buf).limit(read_at_most);
        let read = tokio::select! {
            biased;
            _ = sd.stopped() => {
                debug!(input, %peer, "Closing connection for shutdown.");
                return;
            }
            r = s.read_buf(&mut room) => r,
        };
        match read {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                info!(input, %peer, idle = ?intake.limits.idle_timeout, "Closing idle connection.");
                return;
            }
            Err(e) => {
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

/// Makes `lease` hold `want` bytes, waiting (at most the idle timeout, holding
/// only the `buffered` bytes meanwhile) while the budget is spent. False when
/// the connection must close.
async fn hold(lease: &mut Lease, want: usize, buffered: usize, peer: &str, intake: &Intake, sd: &Shutdown) -> bool {
    let Err(spent) = lease.try_resize(want) else {
        return true;
    };
    lease.shrink(buffered);
    intake.pressure.spent(&spent, "reading paused");
    let input = intake.stats.kind.as_str();
    let patience = intake.limits.idle_timeout;
    tokio::select! {
        biased;
        _ = sd.stopped() => false,
        r = timeout(patience, lease.resize(want)) => match r {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                warn!(input, %peer, error = %e, "A connection needs more memory than the whole budget; closed.");
                false
            }
            Err(_) => {
                info!(input, %peer, waited = ?patience, "Closing a connection that waited the idle timeout for input memory.");
                false
            }
        },
    }
}
