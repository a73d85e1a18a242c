//! The operations endpoint (`BEAKER_METRICS_ADDR`, default
//! `127.0.0.1:9464`): Prometheus metrics and health checks.
//!
//! - `GET /metrics`: every metric in the Prometheus text format;
//! - `GET /healthz`: 200 while the process runs (liveness);
//! - `GET /readyz`: 200 when NATS is connected, the database answers and
//!   rules are loaded; 503 with the reasons otherwise (readiness). It also
//!   shows the outbox relay's state (up to date, behind, stalled).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::watch;

use crate::events::Liveness;
use crate::observe::telemetry::Telemetry;
use crate::rules::state::RulesState;
use crate::store::Store;

/// What the endpoint looks at.
#[derive(Clone)]
pub struct Health {
    pub telemetry: Arc<Telemetry>,
    pub client: async_nats::Client,
    pub store: Store,
    pub rules: Arc<RulesState>,
    pub liveness: Arc<Liveness>,
}

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for metrics and health: {source}")]
pub struct ListenError {
    pub addr: String,
    pub source: std::io::Error,
}

/// Binds the address (so a conflict fails start-up with a clear message)
/// and serves until `stop` turns true.
pub async fn serve(
    addr: &str,
    health: Health,
    mut stop: watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<()>, ListenError> {
    let socket: SocketAddr = addr.parse().map_err(|e| ListenError {
        addr: addr.to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
    })?;
    let listener = tokio::net::TcpListener::bind(socket)
        .await
        .map_err(|source| ListenError {
            addr: addr.to_string(),
            source,
        })?;
    let bound = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(addr = %bound, "metrics and health on http://{bound}/metrics, /healthz, /readyz");
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(health);
    Ok(tokio::spawn(async move {
        let shutdown = async move { crate::shutdown::stopped(&mut stop).await };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "the metrics endpoint failed");
        }
    }))
}

async fn metrics(State(health): State<Health>) -> Response {
    match health.telemetry.render_prometheus() {
        Ok(text) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn ready(State(health): State<Health>) -> Response {
    let nats = match health.client.connection_state() {
        async_nats::connection::State::Connected => Ok("connected".to_string()),
        other => Err(format!("not connected ({other})")),
    };
    let database = match health.store.ping(Duration::from_secs(2)).await {
        Ok(()) => Ok("reachable".to_string()),
        Err(e) => Err(format!("unreachable ({e})")),
    };
    let active = health.rules.active();
    let rules: Result<String, String> = Ok(format!("{} {}", active.name, active.version));
    let ready = nats.is_ok() && database.is_ok() && rules.is_ok();
    let show = |r: &Result<String, String>| match r {
        Ok(s) | Err(s) => s.clone(),
    };
    // The relay's state is shown, not judged: a stalled relay does not
    // stop the instance from answering requests (events wait safely in the
    // outbox), so it does not make the instance unready. The warning, the
    // metric and the alert rules are what call for attention.
    let body = json!({
        "status": if ready { "ready" } else { "not ready" },
        "checks": {
            "nats": show(&nats),
            "database": show(&database),
            "rules": show(&rules),
            "events": health.liveness.state().to_string(),
        }
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
