//! Static routes from the configuration file, published once as a full listing.

use std::future::Future;
use std::pin::Pin;

use tokio_util::sync::CancellationToken;

use super::{Datasource, OriginKind, RouteEvent, RouteObject, RouteSender, RouteSpec, RouteUpdate};
use crate::config::StaticRoute;

/// Publishes the configured routes and then waits for shutdown.
pub struct StaticRoutes {
    routes: Vec<StaticRoute>,
}

impl StaticRoutes {
    pub fn new(routes: Vec<StaticRoute>) -> Self {
        StaticRoutes { routes }
    }

    /// The listing this datasource publishes.
    pub fn events(&self) -> Vec<RouteEvent> {
        let mut ev = vec![RouteEvent::Init];
        for (i, r) in self.routes.iter().enumerate() {
            ev.push(RouteEvent::InitApply(RouteObject {
                id: format!("routes[{i}] ({})", r.hostname),
                routes: r
                    .drains
                    .iter()
                    .map(|d| RouteSpec {
                        hostname: r.hostname.clone(),
                        drain: d.clone(),
                        tag: None,
                    })
                    .collect(),
            }));
        }
        ev.push(RouteEvent::InitDone);
        ev
    }
}

impl Datasource for StaticRoutes {
    fn origin(&self) -> OriginKind {
        OriginKind::Static
    }

    fn run(self: Box<Self>, tx: RouteSender, stop: CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            for event in self.events() {
                if tx
                    .send(RouteUpdate {
                        origin: OriginKind::Static,
                        event,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            stop.cancelled().await;
        })
    }
}
