//! The integration tests: one binary, one module per area, the harnesses they
//! share in `support/`. Linking the whole dependency graph once instead of once
//! per file is what keeps `cargo test --no-run` short.
//!
//! `tests/run` runs them under `cargo nextest run`: one process per test, so the
//! process-wide metrics registry, the tracing subscriber of
//! `support::captured_logs` and the ports a test binds are its own. Under plain
//! `cargo test` all modules share one process; tests that compare counters or the
//! `/metrics` page hold `support::inputs::serial()` so they still run one at a time.

mod support;

mod core;
mod deploy;
mod disk_buffer;
mod drain_lifecycle;
mod drain_params;
mod drains_elasticsearch;
mod drains_http;
mod drains_proxy;
mod drains_syslog;
mod egress;
mod faults_checkpoint;
mod faults_neighbours;
mod faults_outage;
mod faults_process;
mod faults_rotation;
mod faults_slowloris;
mod fuzz_parsers;
mod input_memory;
mod inputs_envoy;
mod inputs_http;
mod inputs_syslog;
mod kubernetes_datasource;
mod kubernetes_e2e;
mod kubernetes_owners;
mod live_tail;
mod live_top;
mod metrics_page;
mod postgres;
mod prop_tailer;
mod properties;
mod readme;
mod security;
mod support_smoke;
mod tailer;
