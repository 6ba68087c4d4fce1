//! Harnesses shared by the integration tests: real peers started per test
//! (rsyslog), TLS material made at test time, and small waiting helpers.
//! Each test file includes this with `mod support;` and uses what it needs.
#![allow(dead_code)]

pub mod drains;
pub mod envoy;
pub mod es_bulk;
pub mod faults;
pub mod http_recorder;
pub mod inputs;
pub mod kube_api;
pub mod postgres;
pub mod rsyslog;
pub mod tls;

use std::net::TcpListener;
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Polls `f` every 10 ms until it is true or `limit` passes; panics naming `what`.
pub async fn wait_until(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        if start.elapsed() > limit {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Lines of a file (empty when it does not exist yet).
pub fn read_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).lines().map(String::from).collect())
        .unwrap_or_default()
}
