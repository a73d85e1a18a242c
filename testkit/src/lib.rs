//! The test kit: what the end-to-end tests and the benchmarks both need to
//! run the real thing — a `nats-server` of their own on a free port, a
//! fresh Postgres database, the real `beaker` binary as a process, and the
//! clients that talk to them (NATS, HTTP, discovery, `/metrics`).
//!
//! Readiness is signalled, never slept for: nats-server says "Server is
//! ready", beaker logs a `ready` line, and the kit waits for each.
//!
//! - [`paths`]: the workspace, the binaries, each test's output folder;
//! - [`nats_server`], [`database`], [`beaker`]: the three processes;
//! - [`env`]: the three together, as most tests use them;
//! - [`client`], [`http`], [`discovery`], [`metrics`], [`stream`]: what
//!   callers see;
//! - [`contract`]: the schemas, compiled independently of the host;
//! - [`faults`], [`campaign`], [`proxy`]: fault injection, repeated with
//!   seeds;
//! - [`secure`]: NATS servers with accounts, keys, tokens and TLS;
//! - [`otlp`]: an OTLP receiver that keeps what it is sent.

pub mod beaker;
pub mod campaign;
pub mod client;
pub mod cluster;
pub mod contract;
pub mod database;
pub mod discovery;
pub mod env;
pub mod faults;
pub mod http;
pub mod metrics;
pub mod nats_server;
pub mod otlp;
pub mod paths;
mod process;
pub mod proxy;
pub mod secure;
pub mod stream;

pub use beaker::{Beaker, BeakerConfig, CliRun, GATEWAY_TOKEN, beaker_cli, beaker_cli_run};
pub use client::{Answer, answer_from, call, call_with_headers, server_roundtrip, wait_until};
pub use cluster::NatsCluster;
pub use contract::Contract;
pub use database::{TestDb, admin_url, wait_outbox_drained};
pub use discovery::{
    requests_served, rules_of, rules_reports, service_infos, service_stats, wait_for_rules,
};
pub use env::TestEnv;
pub use http::{EventStream, Http, HttpReply, SseEvent};
pub use metrics::{metric_sum, parse_prometheus, scrape_metrics};
pub use nats_server::NatsServer;
pub use paths::{
    beaker_bin, default_rules, free_port, output_dir, replace_file, sha256_file, wasm,
    workspace_root,
};
pub use stream::{EVENTS_STREAM, StreamEvent, stream_events};
