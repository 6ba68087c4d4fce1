//! The logtrain binary: flags and environment, logging, signals, and wiring.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use logtrain::app::App;
use logtrain::config::{Config, LogFormat, ProcessEnv};
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

#[derive(Parser)]
#[command(
    name = "logtrain",
    version,
    about = "Routes every container's logs to the drains its workload names.",
    after_help = "Settings come from environment variables: `logtrain --help` lists them.",
    after_long_help = Config::help()
)]
struct Cli {
    /// YAML configuration file (environment variables override it).
    #[arg(long, global = true, env = "LOGTRAIN_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration and every drain URL, list every problem.
    Check,
    /// Print a hostname's records live, as every named logtrain routes them.
    Tail(logtrain::tail::client::TailArgs),
    /// Print the routing tables of every named logtrain as one table.
    Routes(logtrain::tail::client::RoutesArgs),
    /// A live dashboard of every named logtrain's drains and inputs.
    Top(logtrain::tail::top::TopArgs),
}

/// How long the listeners wait for the datasources' first routes at most.
const ROUTES_FIRST: std::time::Duration = std::time::Duration::from_secs(5);

/// Threads of tokio's blocking pool at most.
const BLOCKING_THREADS: usize = 16;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let client = |f: std::pin::Pin<Box<dyn std::future::Future<Output = ExitCode>>>| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
        rt.expect("tokio runtime").block_on(f)
    };
    match cli.command {
        Some(Command::Tail(args)) => return client(Box::pin(logtrain::tail::client::tail(args))),
        Some(Command::Routes(args)) => return client(Box::pin(logtrain::tail::client::routes(args))),
        Some(Command::Top(args)) => return client(Box::pin(logtrain::tail::top::top(args))),
        _ => {}
    }
    if let Some(Command::Check) = cli.command {
        let (errors, problems) = logtrain::check::check(cli.config.as_deref(), &ProcessEnv);
        for w in Config::warnings(&ProcessEnv) {
            eprintln!("warning: {w}");
        }
        for p in errors.iter().chain(&problems) {
            eprintln!("error: {p}");
        }
        return match (errors.is_empty(), problems.is_empty()) {
            (true, true) => {
                println!("configuration OK");
                ExitCode::SUCCESS
            }
            (true, false) => ExitCode::from(1),
            (false, _) => ExitCode::from(2),
        };
    }
    let config = match Config::load(cli.config.as_deref(), &ProcessEnv) {
        Ok(c) => c,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return ExitCode::from(2);
        }
    };
    init_tracing(&config);
    for w in Config::warnings(&ProcessEnv) {
        warn!(warning = %w, "Go-only variable ignored.");
    }
    let problems = logtrain::check::problems(&config);
    if !problems.is_empty() {
        for p in &problems {
            error!(problem = %p, "Configuration problem.");
        }
        return ExitCode::from(2);
    }
    // Blocking work (file reads, opens, metadata, checkpoint writes) is short
    // and bounded by its callers; a small pool keeps threads, their stacks and
    // their allocator arenas from growing with the number of files.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
        .expect("tokio runtime");
    match rt.block_on(run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!(error = %format!("{e:#}"), "logtrain stopped.");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let app = App::start(config);
    // Routes before listeners: a push input listening before the datasources
    // installed their routes would take lines that go nowhere. Bounded, so a
    // datasource that cannot sync (an API server away) does not keep the
    // probes and the other inputs down.
    let _ = tokio::time::timeout(ROUTES_FIRST, app.wait_ready()).await;
    let listening = logtrain::input::start(&app).await?;
    info!(version = env!("CARGO_PKG_VERSION"), http = %listening.http, "logtrain started.");
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => app.reopen_files(),
        }
    }
    info!("Shutting down: stopping inputs, flushing drains.");
    let report = app.shutdown().await;
    if !report.unflushed.is_empty() {
        for (drain, held) in &report.unflushed {
            error!(drain = %drain, records = held, "Drain not flushed before the deadline.");
        }
    }
    Ok(())
}

fn init_tracing(config: &Config) {
    use tracing_subscriber::EnvFilter;
    let default = if config.debug { "debug" } else { "info" };
    let filter = EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}
