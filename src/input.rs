//! Inputs: everything that produces records. Each input turns what it receives
//! into records and hands them to a [`crate::route::Router`]; [`start`] launches
//! the ones the configuration enables.

pub mod envoy;

use crate::app::App;

/// An input that could not start (port in use, bad TLS material).
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{input}: cannot listen on {addr}: {source}")]
    Bind {
        input: &'static str,
        addr: String,
        source: std::io::Error,
    },
    #[error("{input}: {reason}")]
    Setup { input: &'static str, reason: String },
}

/// Starts every input the configuration enables.
pub async fn start(app: &App) -> Result<(), InputError> {
    if app.config.envoy {
        envoy::start(app, envoy::address(&app.config)?).await?;
    }
    Ok(())
}
