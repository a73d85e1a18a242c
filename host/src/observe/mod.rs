//! Watching the service: logs, traces and metrics set up once per process
//! ([`telemetry`]), and the operations endpoint with `/metrics`,
//! `/healthz` and `/readyz` ([`health`]).

pub mod health;
pub mod telemetry;
