//! Starting a drain directly (without an `App`) and reading its metrics, for
//! the drain tests.

use std::sync::Arc;
use std::time::Duration;

use logtrain::drain::{self, Drain, DrainContext, DrainSpec, DriverConfig};
use tokio_util::task::TaskTracker;

/// A standalone context with a short backoff ceiling, adjusted by `f`.
pub fn ctx_with(f: impl FnOnce(&mut DriverConfig)) -> DrainContext {
    let mut ctx = DrainContext::standalone();
    ctx.driver.backoff_max = Duration::from_millis(400);
    f(&mut ctx.driver);
    ctx
}

/// Starts the drain for `url`.
pub fn start(url: &str, ctx: &DrainContext, tracker: &TaskTracker) -> Arc<Drain> {
    drain::start(&DrainSpec::parse(url).unwrap(), ctx, tracker).unwrap()
}

/// The value of `name{drain="…"}` in `/metrics` (0 when absent).
pub fn metric(name: &str, drain: &str) -> u64 {
    let prefix = format!("{name}{{drain=\"{drain}\"}} ");
    logtrain::telemetry::render()
        .lines()
        .find_map(|l| l.strip_prefix(&prefix).map(|v| v.parse().unwrap()))
        .unwrap_or(0)
}
