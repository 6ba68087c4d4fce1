//! Syslog inputs: TCP, TLS and UDP listeners that read RFC 5424 (or RFC 3164)
//! messages, turn each into a [`Record`] and route it by hostname.
//!
//! - [`framing`] splits a stream into frames (octet counting and newline
//!   delimiting, detected per frame, with hard size limits);
//! - [`parse`] turns a frame into a record;
//! - [`tcp`] serves plain TCP and TLS connections with one handler behind the
//!   shared capped [`crate::input::listener`]; [`tls`] builds the rustls config;
//! - [`udp`] reads one message per datagram.
//!
//! Every listener takes what it buffers from the input memory
//! [`Budget`](crate::input::budget::Budget): TCP and TLS stop reading while it
//! is spent, UDP drops (and counts) the datagram.
//!
//! Records are offered to their drains without waiting: a full drain queue drops
//! and counts (the sender of a stream cannot be answered per message). Stream
//! listeners push back first: before reading more from a connection they wait
//! (a bounded time) for room in the drains its last read went to, so TCP flow
//! control slows the sender ([`Touched`]). A drain already dropping is not
//! waited for, so a dead drain never stalls a connection for long.
//! [`Intake`] is the part every listener shares.

pub mod fast;
pub mod framing;
pub mod parse;
pub mod tcp;
pub mod tls;
pub mod udp;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use bytes::Bytes;

use crate::app::App;
use crate::drain::Drain;
use crate::input::InputError;
use crate::input::budget::{Budget, Pressure};
use crate::input::listener::{AtCap, Settings};
use crate::input::stats::InputStats;
use crate::record::InputKind;
use crate::route::{RouteTable, Router};

use framing::Decoded;

/// Limits shared by the syslog listeners, from the configuration.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_line: usize,
    pub max_frame: usize,
    pub max_connections: usize,
    pub idle_timeout: std::time::Duration,
}

impl Limits {
    pub fn from_app(app: &App) -> Self {
        let c = &app.config;
        Limits {
            max_line: c.syslog_max_line.max(1),
            max_frame: c.syslog_max_frame.max(c.syslog_max_line).max(1),
            max_connections: c.input_max_connections.max(1),
            idle_timeout: std::time::Duration::from_secs(c.input_idle_timeout.max(1)),
        }
    }

    /// The settings of a capped listener for `input`.
    pub fn listener(&self, input: &'static str, at_cap: AtCap) -> Settings {
        Settings {
            input,
            max_connections: self.max_connections,
            idle: self.idle_timeout,
            at_cap,
        }
    }
}

/// What a listener needs to turn frames into routed records.
pub struct Intake {
    pub router: Router,
    pub stats: InputStats,
    pub limits: Limits,
    pub budget: Budget,
    pub pressure: Pressure,
}

impl Intake {
    pub fn new(app: &App, kind: InputKind, budget: &Budget) -> Arc<Self> {
        Arc::new(Intake {
            router: app.router(kind),
            stats: InputStats::new(kind),
            limits: Limits::from_app(app),
            budget: budget.clone(),
            pressure: Pressure::new(kind.as_str()),
        })
    }

    /// Handles one decoded unit from `peer` against the loaded `table`.
    pub fn decoded(&self, table: &RouteTable, d: Decoded, peer: &str, touched: &mut Touched) {
        match d {
            Decoded::Frame(f) => touched.note(self.frame(table, f, peer)),
            Decoded::Truncated(f) => {
                self.stats.truncated(peer, self.limits.max_line);
                touched.note(self.frame(table, f, peer));
            }
            Decoded::Skipped { declared } => self.stats.framing_error(
                peer,
                &format!(
                    "octet count {declared} is larger than the {} byte limit; frame skipped",
                    self.limits.max_frame
                ),
            ),
        }
    }

    /// Parses one frame and offers the record to its drains (returned).
    pub fn frame<'t>(&self, table: &'t RouteTable, frame: Bytes, peer: &str) -> &'t [Arc<Drain>] {
        match parse::parse(&frame, self.stats.kind) {
            Ok(rec) => {
                self.stats.records.inc();
                self.stats.bytes.add(frame.len() as u64);
                self.router.offer_to(table, rec).0
            }
            Err(e) => {
                self.stats.parse_error(peer, &e.to_string());
                &[]
            }
        }
    }
}

/// How long a stream listener waits for room in a drain before it reads on
/// (and what does not fit is dropped and counted).
pub const PUSHBACK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(1);

/// Records a stream listener hands on between looks at its drains' room.
pub const PUSHBACK_EVERY: usize = 64;

/// The drains one read of a connection went to, so the listener can wait for
/// room in them before reading more. Noting a record costs one comparison
/// while its drains are the previous record's. A drain that stayed full for
/// [`PUSHBACK_PATIENCE`] is not waited for again until it has room: the
/// connection reads on and that drain drops (and counts) what it cannot take.
#[derive(Default)]
pub struct Touched {
    last: usize,
    drains: Vec<Arc<Drain>>,
    stalled: Vec<Arc<Drain>>,
}

impl Touched {
    pub fn note(&mut self, drains: &[Arc<Drain>]) {
        let at = drains.as_ptr() as usize;
        if drains.is_empty() || at == self.last {
            return;
        }
        self.last = at;
        for d in drains {
            if !self.drains.iter().any(|t| Arc::ptr_eq(t, d)) {
                self.drains.push(d.clone());
            }
        }
    }

    fn stalled(&self, d: &Arc<Drain>) -> bool {
        self.stalled.iter().any(|s| Arc::ptr_eq(s, d))
    }

    /// Waits until every noted drain has room, giving up on one after
    /// [`PUSHBACK_PATIENCE`] (it is then stalled until it has room again), or
    /// until `stop` ends; then forgets them. Costs one look per drain when all
    /// have room. Returns false when `stop` ended first.
    pub async fn push_back(&mut self, stop: impl std::future::Future<Output = ()>) -> bool {
        self.stalled.retain(|d| !d.has_room());
        let mut stop = std::pin::pin!(stop);
        for d in std::mem::take(&mut self.drains) {
            if self.stalled(&d) || d.keeps_up() {
                continue;
            }
            tokio::select! {
                biased;
                _ = &mut stop => return false,
                room = d.wait_for_room(PUSHBACK_PATIENCE) => if !room {
                    self.stalled.push(d);
                },
            }
        }
        self.last = 0;
        true
    }
}

/// The address a listener binds: `LISTEN_ADDRESS` and a port.
pub fn listen_addr(app: &App, input: &'static str, port: u16) -> Result<SocketAddr, InputError> {
    let ip: IpAddr = app
        .config
        .listen_address
        .trim_matches(|c| c == '[' || c == ']')
        .parse()
        .map_err(|source| InputError::ListenAddress {
            input,
            value: app.config.listen_address.clone(),
            source,
        })?;
    Ok(SocketAddr::new(ip, port))
}
