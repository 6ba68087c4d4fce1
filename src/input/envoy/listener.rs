//! Accepted connections for the Envoy input, capped: a connection beyond the
//! cap is closed at once and counted, never queued. Each accepted connection
//! holds a semaphore permit and is counted in the connections gauge until it
//! drops. A connection that sends nothing for the idle timeout (one that never
//! starts HTTP/2, or a peer gone silent through the keep-alive pings) fails its
//! next read, so a silent peer cannot hold a slot forever. Never reads or
//! writes anything itself.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::transport::server::{Connected, TcpConnectInfo};
use tracing::{debug, warn};

use crate::telemetry::{self, Counter, Gauge};

/// A connection that holds one of the listener's permits.
pub struct Capped {
    io: TcpStream,
    open: Gauge,
    _permit: OwnedSemaphorePermit,
    idle: Duration,
    /// When the connection counts as idle; pushed back by every byte read.
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Drop for Capped {
    fn drop(&mut self) {
        self.open.add(-1);
    }
}

/// The stream of accepted connections tonic serves; ends when dropped (shutdown).
pub fn incoming(
    listener: TcpListener,
    max: usize,
    idle: Duration,
    input: &'static str,
) -> impl Stream<Item = io::Result<Capped>> {
    let state = Accepting {
        listener,
        idle,
        permits: Arc::new(Semaphore::new(max.max(1))),
        open: telemetry::gauge("logtrain_input_connections", &[("input", input)]),
        refused: telemetry::counter("logtrain_input_connections_refused_total", &[("input", input)]),
        max,
    };
    futures_util::stream::unfold(state, |s| async move {
        let c = s.next().await;
        Some((Ok(c), s))
    })
}

struct Accepting {
    listener: TcpListener,
    idle: Duration,
    permits: Arc<Semaphore>,
    open: Gauge,
    refused: Counter,
    max: usize,
}

impl Accepting {
    async fn next(&self) -> Capped {
        loop {
            let (io, peer) = match self.listener.accept().await {
                Ok(c) => c,
                Err(error) => {
                    // Out of descriptors and the like: back off instead of spinning.
                    warn!(%error, "Envoy input cannot accept a connection.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Ok(permit) = self.permits.clone().try_acquire_owned() else {
                self.refused.inc();
                debug!(%peer, max = self.max, "Envoy input at its connection cap; connection closed.");
                continue;
            };
            let _ = io.set_nodelay(true);
            self.open.add(1);
            return Capped {
                io,
                open: self.open.clone(),
                _permit: permit,
                idle: self.idle,
                deadline: Box::pin(tokio::time::sleep(self.idle)),
            };
        }
    }
}

impl Connected for Capped {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.io.connect_info()
    }
}

impl AsyncRead for Capped {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                let next = tokio::time::Instant::now() + self.idle;
                self.deadline.as_mut().reset(next);
                Poll::Ready(Ok(()))
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    debug!(idle = ?self.idle, "Envoy input connection idle; closing it.");
                    Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle")))
                }
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }
}

impl AsyncWrite for Capped {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
