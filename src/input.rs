//! Inputs: everything that produces records. Each input turns what it receives
//! into records and hands them to a [`crate::route::Router`]; [`start`] launches
//! the ones the configuration enables (the HTTP server always runs: it serves
//! health, readiness and metrics).
//!
//! The push inputs share two things: the capped accept loop of every TCP
//! listener ([`listener`]) and one memory [`budget`] (`INPUT_MEMORY_BYTES`) for
//! what they hold before their records are queued.

pub mod budget;
pub mod envoy;
pub mod file;
pub mod http;
pub mod listener;
pub mod stats;
pub mod syslog;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::app::App;
use crate::record::InputKind;

/// An input that could not start (port in use, bad TLS material, a setting
/// it cannot work with). Each names the input and the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{input}: cannot listen on {addr}: {source}")]
    Bind {
        input: &'static str,
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{input}: LISTEN_ADDRESS={value:?} is not an IP address (use 0.0.0.0, ::, or an interface address)")]
    ListenAddress {
        input: &'static str,
        value: String,
        #[source]
        source: std::net::AddrParseError,
    },
    /// `INPUT_MEMORY_BYTES` is smaller than one frame and two reads.
    #[error(
        "{input}: INPUT_MEMORY_BYTES={budget} cannot hold one frame: use at least SYSLOG_MAX_FRAME ({max_frame}) plus two reads, {smallest} bytes"
    )]
    BudgetTooSmall {
        input: &'static str,
        budget: usize,
        max_frame: usize,
        smallest: usize,
    },
    #[error("{input}: KUBERNETES_LOG_PATH {} is not a readable folder", path.display())]
    LogPath {
        input: &'static str,
        path: std::path::PathBuf,
    },
    #[error("{input}: {source}")]
    Tls {
        input: &'static str,
        #[source]
        source: syslog::tls::TlsMaterialError,
    },
}

/// Where the started listeners are bound (port 0 in the configuration picks a
/// free port; tests read it here).
#[derive(Clone, Debug)]
pub struct Listening {
    pub http: SocketAddr,
    pub syslog_tcp: Option<SocketAddr>,
    pub syslog_udp: Option<SocketAddr>,
    pub syslog_tls: Option<SocketAddr>,
    pub envoy: Option<SocketAddr>,
}

/// Starts every input the configuration enables; `/readyz` turns ready once all are bound.
pub async fn start(app: &App) -> Result<Listening, InputError> {
    let c = &app.config;
    let bound = Arc::new(AtomicBool::new(false));
    let budget = budget::Budget::new(c.input_memory_bytes);
    let tls = match c.syslog_tls {
        true => Some(syslog::tls::acceptor(c)?),
        false => None,
    };
    let listening = Listening {
        http: http::start(app, bound.clone(), &budget).await?,
        syslog_tcp: match c.syslog_tcp {
            true => Some(syslog::tcp::start(app, InputKind::SyslogTcp, c.syslog_tcp_port, None, &budget).await?),
            false => None,
        },
        syslog_udp: match c.syslog_udp {
            true => Some(syslog::udp::start(app, c.syslog_udp_port, &budget).await?),
            false => None,
        },
        syslog_tls: match tls {
            Some(tls) => {
                let port = c.syslog_tls_port;
                Some(syslog::tcp::start(app, InputKind::SyslogTls, port, Some(tls), &budget).await?)
            }
            None => None,
        },
        envoy: match c.envoy {
            true => Some(envoy::start(app, envoy::address(c)?, &budget).await?),
            false => None,
        },
    };
    if c.kubernetes {
        file::start(app, file::TailConfig::from_app(app)).await?;
    }
    bound.store(true, Ordering::Release);
    Ok(listening)
}
