//! Wiring of a running logtrain: the drain registry, the route writer, the
//! datasources and the inputs, and their orderly shutdown. `main.rs` and the
//! integration tests both start logtrain through [`App`].

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::datasource::pods::PodDirectory;
use crate::datasource::postgres::PostgresSource;
use crate::datasource::statics::StaticRoutes;
use crate::datasource::{Datasource, OriginKind, RouteSender};
use crate::drain::{DrainContext, Registry, ShutdownReport};
use crate::record::InputKind;
use crate::route::writer::RouteWriter;
use crate::route::{Router, Routes};
use crate::shutdown::Shutdown;

/// Capacity of the channel from datasources to the route writer.
const ROUTE_EVENTS: usize = 1024;

/// A running logtrain.
pub struct App {
    pub config: Config,
    pub routes: Routes,
    pub registry: Arc<Registry>,
    /// What the Kubernetes datasource knows about this node's pods (empty without it).
    pub pods: PodDirectory,
    ready: watch::Receiver<bool>,
    route_tx: Option<RouteSender>,
    datasources: Shutdown,
    inputs: Shutdown,
    reopen: watch::Sender<u64>,
    writer: Option<tokio::task::JoinHandle<()>>,
}

impl App {
    /// Starts the registry, the route writer and the configured datasources.
    /// Inputs are started by the caller with [`App::inputs`] and [`App::router`].
    pub fn start(config: Config) -> App {
        // `check::problems` refuses a bad proxy URL before we get here.
        crate::drain::proxy::install(config.proxies().unwrap_or_default());
        let (reopen, reopen_rx) = watch::channel(0u64);
        let registry = Arc::new(Registry::new(DrainContext::from_config(&config, reopen_rx)));
        let routes = Routes::new();
        let pods = PodDirectory::new();
        let mut datasources: Vec<Box<dyn Datasource>> = vec![Box::new(StaticRoutes::new(config.routes.clone()))];
        if config.postgres {
            // `Config::problems` refuses a missing or malformed URL before we get here.
            match config.database_url.as_ref().map(|u| PostgresSource::new(u.expose())) {
                Some(Ok(pg)) => datasources.push(Box::new(pg)),
                Some(Err(e)) => error!(error = %e, "Postgres datasource not started."),
                None => error!("POSTGRES is on but DATABASE_URL is not set."),
            }
        }
        if config.kubernetes_datasource {
            let settings = crate::datasource::kubernetes::Settings::from_config(&config);
            match crate::datasource::kubernetes::KubernetesSource::infer(settings, pods.clone()) {
                Ok(k) => datasources.push(Box::new(k)),
                Err(e) => error!(error = %e, "Kubernetes datasource not started."),
            }
        }
        let origins: Vec<OriginKind> = datasources.iter().map(|d| d.origin()).collect();
        let egress = std::sync::Arc::new(crate::egress::Egress::new(config.drain_deny_networks.clone()));
        // Before any route: what earlier runs buffered is replayed whether or not a route names it.
        registry.recover(&egress);
        let writer = RouteWriter::new(registry.clone(), routes.clone(), origins)
            .with_egress(crate::egress::Egress::new(config.drain_deny_networks.clone()));
        let ready = writer.ready();
        let (tx, rx) = mpsc::channel(ROUTE_EVENTS);
        let writer = tokio::spawn(writer.run(rx));
        let ds_shutdown = Shutdown::new();
        for ds in datasources {
            ds_shutdown.spawn(ds.run(tx.clone(), ds_shutdown.token()));
        }
        App {
            config,
            routes,
            registry,
            pods,
            ready,
            route_tx: Some(tx),
            datasources: ds_shutdown,
            inputs: Shutdown::new(),
            reopen,
            writer: Some(writer),
        }
    }

    /// A router for an input of `kind`.
    pub fn router(&self, kind: InputKind) -> Router {
        Router::new(self.routes.clone(), kind)
    }

    /// Where inputs spawn their tasks and learn that they must stop.
    pub fn inputs(&self) -> &Shutdown {
        &self.inputs
    }

    /// A sender for an extra datasource (tests, embedding).
    pub fn route_sender(&self) -> RouteSender {
        self.route_tx.clone().expect("route sender lives until shutdown")
    }

    /// Resolves true once every datasource finished its first full listing.
    pub async fn wait_ready(&self) -> bool {
        let mut r = self.ready.clone();
        r.wait_for(|v| *v).await.is_ok()
    }

    /// The readiness signal itself, for tasks that outlive a borrow of the app
    /// (the `/readyz` endpoint).
    pub fn readiness(&self) -> watch::Receiver<bool> {
        self.ready.clone()
    }

    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Asks file drains to reopen their files (SIGHUP).
    pub fn reopen_files(&self) {
        self.reopen.send_modify(|g| *g += 1);
        info!("Reopening file drains.");
    }

    /// Stops inputs, then datasources, then flushes every drain within the
    /// configured deadline. Returns what could not be flushed.
    pub async fn shutdown(mut self) -> ShutdownReport {
        let deadline = self.config.shutdown_deadline();
        let started = tokio::time::Instant::now();
        if !self.inputs.stop_and_wait(deadline / 2).await {
            warn!("Some inputs did not stop in time.");
        }
        let _ = self.datasources.stop_and_wait(Duration::from_secs(2)).await;
        drop(self.route_tx.take());
        if let Some(w) = self.writer.take() {
            w.abort();
        }
        let left = deadline.saturating_sub(started.elapsed());
        let report = self.registry.shutdown(left).await;
        if report.unflushed.is_empty() {
            info!("Every drain flushed.");
        }
        report
    }
}
