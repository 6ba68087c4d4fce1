//! The one capped accept loop of every TCP listener of the push inputs: syslog
//! over TCP and TLS, the HTTP server, and the Envoy gRPC input (handed to tonic's
//! `serve_with_incoming` as a stream). It owns the connection cap, the gauge of
//! open connections (`logtrain_input_connections{input}`) and the idle timeout;
//! it never reads or writes a byte of its own.
//!
//! **At the cap** a listener does one of two things ([`AtCap`]):
//! - `Refuse` (syslog): the newcomer is closed at once. A syslog stream has no
//!   requests, so a sender between two messages cannot be told from a silent
//!   peer, and closing one in the middle of a frame would lose what it sent.
//! - `EvictIdlest` (HTTP, gRPC): the newcomer takes the place of the connection
//!   that has been idle longest — no request in flight, no byte read for the
//!   longest time — and that one is closed. Silent connections are shed
//!   oldest-first, so a flood of them never keeps the kubelet's probes out, and
//!   a connection with a request in flight is never evicted. Only when every
//!   connection has one is the newcomer refused.
//!
//! Refusing and evicting are one event each, logged once per listener and
//! counted (`logtrain_input_connections_refused_total{input}`,
//! `logtrain_input_connections_evicted_total{input}`).
//!
//! **Idle**: a connection whose reader has waited `INPUT_IDLE_TIMEOUT` for a byte,
//! with no request in flight, fails that read (`TimedOut`) and whoever serves it
//! closes it. Only the time spent waiting in a read counts — never the time the
//! server spends elsewhere (pushing back on a full drain, waiting for memory,
//! running a request) — and a finished request counts as activity. So an h2c
//! client that sent its preface and SETTINGS and went quiet is exactly as idle
//! as a silent HTTP/1 socket.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tracing::{debug, warn};

use super::InputError;
use crate::shutdown::Shutdown;
use crate::telemetry::{self, Counter, Gauge};

/// What a listener at its cap does with a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtCap {
    /// Close the newcomer.
    Refuse,
    /// Close the connection idle longest (nothing in flight) to make room; refuse
    /// the newcomer only when there is none.
    EvictIdlest,
}

/// How one listener treats its connections.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The metric label and log field (`http`, `syslog_tcp`, …).
    pub input: &'static str,
    pub max_connections: usize,
    /// `INPUT_IDLE_TIMEOUT`.
    pub idle: Duration,
    pub at_cap: AtCap,
}

/// A bound listener; [`Listener::run`] or [`Listener::incoming`] serve it.
pub struct Listener {
    tcp: TcpListener,
    local: SocketAddr,
    idle: Duration,
    slots: Arc<Slots>,
}

impl Listener {
    pub async fn bind(addr: SocketAddr, settings: Settings) -> Result<Listener, InputError> {
        let bind_err = |source| InputError::Bind {
            input: settings.input,
            addr: addr.to_string(),
            source,
        };
        let tcp = TcpListener::bind(addr).await.map_err(bind_err)?;
        let local = tcp.local_addr().map_err(bind_err)?;
        Ok(Listener {
            tcp,
            local,
            idle: settings.idle,
            slots: Arc::new(Slots::new(&settings)),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The next connection admitted (refusing or evicting at the cap as set).
    pub async fn accept(&self) -> Conn {
        loop {
            let (io, peer) = match self.tcp.accept().await {
                Ok(c) => c,
                Err(error) => {
                    // Out of descriptors and the like: back off rather than spin.
                    warn!(input = self.slots.input, %error, "Cannot accept a connection.");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let Some((slot, link)) = self.slots.admit(&peer) else {
                continue;
            };
            let _ = io.set_nodelay(true);
            return Conn {
                io,
                peer,
                link,
                idle: self.idle,
                deadline: Box::pin(tokio::time::sleep(self.idle)),
                waiting: false,
                _slot: slot,
            };
        }
    }

    /// Accepts until `shutdown`, spawning `serve` for each connection on it.
    pub async fn run<F, Fut>(self, shutdown: Shutdown, serve: F)
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        loop {
            tokio::select! {
                _ = shutdown.stopped() => break,
                conn = self.accept() => {
                    shutdown.spawn(serve(conn));
                }
            }
        }
        debug!(input = self.slots.input, "Listener stopped accepting.");
    }

    /// The admitted connections as a stream, for tonic's `serve_with_incoming`;
    /// it never ends by itself (tonic stops polling it on shutdown).
    pub fn incoming(self) -> impl Stream<Item = io::Result<Conn>> {
        futures_util::stream::unfold(self, |l| async move {
            let c = l.accept().await;
            Some((Ok(c), l))
        })
    }
}

/// The open connections of one listener.
struct Slots {
    input: &'static str,
    max: usize,
    at_cap: AtCap,
    epoch: Instant,
    open: Mutex<Open>,
    gauge: Gauge,
    refused: Counter,
    evicted: Counter,
    refused_logged: AtomicBool,
    evicted_logged: AtomicBool,
}

#[derive(Default)]
struct Open {
    next: u64,
    links: HashMap<u64, Arc<Link>>,
}

impl Slots {
    fn new(s: &Settings) -> Self {
        let l = [("input", s.input)];
        Slots {
            input: s.input,
            max: s.max_connections.max(1),
            at_cap: s.at_cap,
            epoch: Instant::now(),
            open: Mutex::default(),
            gauge: telemetry::gauge("logtrain_input_connections", &l),
            refused: telemetry::counter("logtrain_input_connections_refused_total", &l),
            evicted: telemetry::counter("logtrain_input_connections_evicted_total", &l),
            refused_logged: AtomicBool::new(false),
            evicted_logged: AtomicBool::new(false),
        }
    }

    /// A slot for a new connection from `peer`, or `None` (refused and counted).
    fn admit(self: &Arc<Self>, peer: &SocketAddr) -> Option<(Slot, Arc<Link>)> {
        let mut open = self.open.lock();
        let mut evicted = None;
        if open.links.len() >= self.max {
            let victim = match self.at_cap {
                AtCap::Refuse => None,
                AtCap::EvictIdlest => open
                    .links
                    .iter()
                    .filter(|(_, l)| l.in_flight.load(Ordering::Acquire) == 0)
                    // Ties (same microsecond) go to the older connection.
                    .min_by_key(|(id, l)| (l.last.load(Ordering::Relaxed), **id))
                    .map(|(id, _)| *id),
            };
            let Some(link) = victim.and_then(|id| open.links.remove(&id)) else {
                drop(open);
                self.refused(peer);
                return None;
            };
            self.gauge.add(-1);
            link.evict();
            evicted = Some(self.epoch.elapsed().saturating_sub(link.last_at()));
        }
        let id = open.next;
        open.next += 1;
        let link = Arc::new(Link::new(self.epoch));
        open.links.insert(id, link.clone());
        self.gauge.add(1);
        drop(open);
        if let Some(idle) = evicted {
            self.evicted(peer, idle);
        }
        let slot = Slot {
            id,
            slots: self.clone(),
        };
        Some((slot, link))
    }

    fn release(&self, id: u64) {
        if self.open.lock().links.remove(&id).is_some() {
            self.gauge.add(-1);
        }
    }

    fn refused(&self, peer: &SocketAddr) {
        self.refused.inc();
        if !self.refused_logged.swap(true, Ordering::Relaxed) {
            warn!(input = self.input, %peer, cap = self.max,
                "Connection refused: the listener is at its connection cap (logged once, counted).");
        } else {
            debug!(input = self.input, %peer, "Connection refused at the cap.");
        }
    }

    fn evicted(&self, peer: &SocketAddr, idle: Duration) {
        self.evicted.inc();
        if !self.evicted_logged.swap(true, Ordering::Relaxed) {
            warn!(input = self.input, %peer, cap = self.max, idle_secs = idle.as_secs_f64(),
                "At the connection cap: closed the longest-idle connection to admit a new one (logged once, counted).");
        } else {
            debug!(input = self.input, %peer, idle_secs = idle.as_secs_f64(), "Evicted an idle connection.");
        }
    }
}

/// Holds a connection's place in [`Slots`] until dropped.
struct Slot {
    id: u64,
    slots: Arc<Slots>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.release(self.id);
    }
}

/// What the listener and whoever serves a connection share about it: when it
/// last read a byte or finished a request, how many requests are in flight,
/// and whether it was evicted.
pub struct Link {
    epoch: Instant,
    /// Microseconds after `epoch`.
    last: AtomicU64,
    in_flight: AtomicUsize,
    evicted: AtomicBool,
    waker: AtomicWaker,
}

impl Link {
    fn new(epoch: Instant) -> Self {
        let l = Link {
            epoch,
            last: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            evicted: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        };
        l.touch();
        l
    }

    fn touch(&self) {
        let us = self.epoch.elapsed().as_micros() as u64;
        self.last.store(us, Ordering::Relaxed);
    }

    fn last_at(&self) -> Duration {
        Duration::from_micros(self.last.load(Ordering::Relaxed))
    }

    fn evict(&self) {
        self.evicted.store(true, Ordering::Release);
        self.waker.wake();
    }

    fn is_evicted(&self) -> bool {
        self.evicted.load(Ordering::Acquire)
    }

    /// Marks a request in flight until the guard drops: the connection is then
    /// neither idle nor evictable, and its end counts as activity.
    pub fn request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight(self.clone())
    }

    /// When the connection would next turn idle, or `None` when it is idle now.
    fn busy_until(&self, idle: Duration) -> Option<Instant> {
        let now = Instant::now();
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Some(now + idle);
        }
        let until = self.epoch + self.last_at() + idle;
        (until > now).then_some(until)
    }
}

/// A request in flight on a connection (see [`Link::request`]).
pub struct InFlight(Arc<Link>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An admitted connection: the socket, its place under the cap, and its idle clock.
pub struct Conn {
    io: TcpStream,
    peer: SocketAddr,
    link: Arc<Link>,
    idle: Duration,
    /// When the current wait for a byte turns idle.
    deadline: Pin<Box<Sleep>>,
    /// A read is waiting for bytes (the idle clock runs).
    waiting: bool,
    _slot: Slot,
}

impl Conn {
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    pub fn link(&self) -> Arc<Link> {
        self.link.clone()
    }
}

/// The connect info tonic hands each request of a connection: its peer and its
/// [`Link`], so a gRPC call can mark itself in flight.
#[derive(Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    pub link: Arc<Link>,
}

impl tonic::transport::server::Connected for Conn {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        Peer {
            addr: self.peer,
            link: self.link.clone(),
        }
    }
}

fn evicted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "evicted to make room at the connection cap",
    )
}

impl AsyncRead for Conn {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.link.is_evicted() {
            return Poll::Ready(Err(evicted()));
        }
        if !this.waiting {
            this.waiting = true;
            let at = Instant::now() + this.idle;
            this.deadline.as_mut().reset(at);
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Pending => {}
            ready => {
                this.waiting = false;
                if buf.filled().len() > before {
                    this.link.touch();
                }
                return ready;
            }
        }
        this.link.waker.register(cx.waker());
        if this.link.is_evicted() {
            return Poll::Ready(Err(evicted()));
        }
        while this.deadline.as_mut().poll(cx).is_ready() {
            match this.link.busy_until(this.idle) {
                Some(later) => this.deadline.as_mut().reset(later),
                None => {
                    debug!(peer = %this.peer, idle = ?this.idle, "Connection idle; closing it.");
                    return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, "connection idle")));
                }
            }
        }
        Poll::Pending
    }
}

impl AsyncWrite for Conn {
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

#[cfg(test)]
mod tests;
