//! logtrain: a log router for Kubernetes nodes.
//!
//! Data flows one way: datasources fold routes into the [`route::RouteTable`];
//! inputs turn bytes into [`record::Record`]s, look up their drains in the current
//! table snapshot and hand them to [`drain`] queues, whose driver delivers them.
//! This crate root only lists the modules; wiring lives in `main.rs` and [`app`].
//! Unsafe code is forbidden in every target by `[lints]` in `Cargo.toml`.

pub mod ack;
pub mod app;
pub mod backoff;
pub mod check;
pub mod config;
pub mod datasource;
pub mod drain;
pub mod egress;
pub mod encode;
pub mod hash;
pub mod input;
pub mod record;
pub mod route;
pub mod secret;
pub mod shutdown;
pub mod tail;
pub mod telemetry;
pub mod time;
pub mod tls;

/// The error type of the binary's top level; modules define their own `thiserror` enums.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
