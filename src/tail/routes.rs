//! The routing table as JSON for `GET /routes`: each hostname with its drains
//! by id (the metric label, never a URL: URLs carry credentials) and each
//! drain's state (connected, failing since when, queue depth, counts). Read-only: it looks at a snapshot and the drain metrics.

use serde_json::{Value, json};

use crate::route::RouteTable;
use crate::telemetry;

/// `{"routes": [{"hostname", "origins", "drains": [id…]}…], "drains": {id: state}}`,
/// hostnames sorted.
pub fn json(table: &RouteTable) -> String {
    let mut hosts: Vec<_> = table.hostnames().collect();
    hosts.sort();
    let mut drains = serde_json::Map::new();
    let routes: Vec<Value> = hosts
        .into_iter()
        .map(|h| {
            let ids: Vec<&str> = table.drains_for(h).iter().map(|d| d.id()).collect();
            for d in table.drains_for(h) {
                drains.entry(d.id().to_string()).or_insert_with(|| {
                    let l = [("drain", d.id())];
                    let connections = telemetry::gauge("logtrain_drain_connections", &l).get();
                    json!({
                        "connected": connections > 0,
                        "connections": connections,
                        "queued": d.held(),
                        "sent": d.sent_total(),
                        "dropped": d.dropped_total(),
                        "errors": telemetry::counter("logtrain_drain_errors_total", &l).get(),
                        "failing_since": d.failing_since().map(|t| t.to_rfc3339()),
                    })
                });
            }
            json!({
                "hostname": String::from_utf8_lossy(h),
                "origins": table.origins_of(h).iter().map(|o| o.as_str()).collect::<Vec<_>>(),
                "drains": ids,
            })
        })
        .collect();
    json!({ "routes": routes, "drains": drains }).to_string()
}
