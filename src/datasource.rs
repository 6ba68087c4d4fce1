//! Datasources feed the routing table. Each one yields [`RouteEvent`]s with
//! kube-runtime watcher semantics — `Init`, `InitApply`*, `InitDone` for a full
//! (re)list, then `Apply`/`Delete` — about *objects* (a workload, a table row, a
//! config entry), each declaring routes. The single route writer folds them, so a
//! relist never shows a half table and one origin never removes another's routes.

pub mod kubernetes;
pub mod pods;
pub mod postgres;
pub mod statics;

use std::future::Future;
use std::pin::Pin;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Which datasource declared a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum OriginKind {
    Static,
    Kubernetes,
    Postgres,
}

impl OriginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            OriginKind::Static => "static",
            OriginKind::Kubernetes => "kubernetes",
            OriginKind::Postgres => "postgres",
        }
    }
}

/// One route: records whose hostname is `hostname` go to the drain at `drain`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RouteSpec {
    pub hostname: String,
    /// The drain URL as written by the user (validated by the route writer).
    pub drain: String,
    /// The APP-NAME (logtrain's tag) the records of this route carry at this
    /// drain, replacing their own (a Postgres row's `tag`); `None` keeps theirs.
    pub tag: Option<String>,
}

impl RouteSpec {
    /// A route without a tag.
    pub fn new(hostname: impl Into<String>, drain: impl Into<String>) -> Self {
        RouteSpec {
            hostname: hostname.into(),
            drain: drain.into(),
            tag: None,
        }
    }
}

/// An object of a datasource and every route it declares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteObject {
    /// Names the object for humans and for deletes, e.g. `Deployment default/web`,
    /// `drain 7b0c…`, `routes[2]`.
    pub id: String,
    pub routes: Vec<RouteSpec>,
}

/// A change reported by a datasource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteEvent {
    /// A full listing starts; objects until `InitDone` replace the origin's set.
    Init,
    /// An object of the listing in progress.
    InitApply(RouteObject),
    /// The listing is complete: swap it in.
    InitDone,
    /// An object was added or changed.
    Apply(RouteObject),
    /// An object (by id) is gone.
    Delete(String),
}

/// An event with the origin that produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteUpdate {
    pub origin: OriginKind,
    pub event: RouteEvent,
}

/// Where datasources send their updates (bounded).
pub type RouteSender = mpsc::Sender<RouteUpdate>;

/// A source of routes. `run` keeps the table current until `stop` fires, and
/// never returns early on a transient error (it backs off and resyncs).
pub trait Datasource: Send + 'static {
    fn origin(&self) -> OriginKind;
    fn run(self: Box<Self>, tx: RouteSender, stop: CancellationToken) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}
