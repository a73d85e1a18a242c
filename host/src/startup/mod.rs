//! Starting and stopping: `beaker serve` wires NATS, Postgres, the rules,
//! the endpoints, the relay and the operations endpoint together, serves
//! until a signal, then stops them in order under one deadline
//! ([`start`], [`stop`]); `beaker gateway` does the same for the HTTP
//! gateway alone ([`gateway`]). The settings arrive checked, from `config`.

mod gateway;
mod housekeeping;
mod start;
mod stop;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::service::AdmissionSettings;

use crate::contract::schema::SchemaError;
use crate::events::{EventsError, RelaySettings, StreamSettings};
use crate::gateway::{GatewayConfig, GatewayError};
use crate::inventory::GroupCommitSettings;
use crate::nats::{NatsError, NatsSettings, Refusals};
use crate::observe::health::ListenError;
use crate::observe::telemetry::Telemetry;
use crate::rules::{EngineOptions, LoadError, SandboxLimits};
use crate::store::{DbConfig, StoreError};

pub use gateway::{GatewayRunError, run_gateway};

/// The service's name in the NATS micro protocol.
pub const SERVICE_NAME: &str = env!("CARGO_PKG_NAME");
/// The service's version in the NATS micro protocol.
pub const SERVICE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything `beaker serve` runs with.
#[derive(Debug, Clone)]
pub struct ServeSettings {
    pub nats: NatsSettings,
    pub db: DbConfig,
    /// Create the database if needed and migrate it at start.
    pub migrate: bool,
    pub rules: RulesSettings,
    pub service: ServiceSettings,
    /// Where `/metrics`, `/healthz` and `/readyz` listen; `None`: nowhere.
    pub metrics_addr: Option<String>,
    pub events: EventsSettings,
    /// The HTTP gateway inside the service, when asked for.
    pub gateway: Option<GatewayConfig>,
    /// How long the whole stop may take.
    pub shutdown_timeout: Duration,
}

/// Where the rules come from, and their sandbox.
#[derive(Debug, Clone)]
pub struct RulesSettings {
    /// The rules file, loaded at start.
    pub path: PathBuf,
    /// How often the file is checked for changes; `None`: never.
    pub watch: Option<Duration>,
    /// The Object Store bucket deploys arrive through; `None`: none.
    pub bucket: Option<String>,
    /// Replicas of the bucket, when the host creates it.
    pub bucket_replicas: usize,
    /// How often the bucket is read for a new deploy.
    pub bucket_poll: Duration,
    pub sandbox: SandboxLimits,
    pub engine: EngineOptions,
}

/// How the endpoints take requests.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub queue_group: String,
    pub max_in_flight: u32,
    /// The limit of requests in flight, and the bounded wait beyond it.
    pub admission: AdmissionSettings,
    pub max_request_bytes: usize,
    /// How long a reply stays stored under its idempotency key.
    pub idempotency_ttl: Duration,
    /// Group commit, or `None` for one transaction per request.
    pub group_commit: Option<GroupCommitSettings>,
}

/// The events stream, the relay and housekeeping.
#[derive(Debug, Clone)]
pub struct EventsSettings {
    pub stream: StreamSettings,
    /// The relay, or `None` when this instance runs none.
    pub relay: Option<RelaySettings>,
    /// A relay without progress this long, while connected, is stalled.
    pub stall_after: Duration,
    pub idempotency_ttl: Duration,
    pub housekeeping: HousekeepingSettings,
}

/// Deleting what has served its time.
#[derive(Debug, Clone, Copy)]
pub struct HousekeepingSettings {
    pub interval: Duration,
    /// How long published outbox rows are kept.
    pub outbox_retention: Duration,
}

/// Everything `beaker gateway` runs with.
#[derive(Debug, Clone)]
pub struct GatewaySettings {
    pub nats: NatsSettings,
    pub gateway: GatewayConfig,
    pub shutdown_timeout: Duration,
}

/// Why the service could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Nats(#[from] NatsError),
    #[error("cannot subscribe on NATS: {0}")]
    Subscribe(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot load the rules: {0}")]
    Rules(#[from] LoadError),
    #[error(transparent)]
    Schema(#[from] SchemaError),
    #[error(transparent)]
    Events(#[from] EventsError),
    #[error(transparent)]
    Gateway(#[from] GatewayError),
    #[error(transparent)]
    Listen(#[from] ListenError),
    #[error("cannot listen for signals: {0}")]
    Signals(std::io::Error),
    #[error(
        "the stop took longer than its deadline of {limit:?} (--shutdown-timeout): \
         {requests} request(s) in flight were abandoned"
    )]
    ShutdownDeadline { limit: Duration, requests: usize },
    /// A step failed after the server had refused an operation: the
    /// refusal is the likely cause, and the step's own error (often a
    /// time-out) would hide it.
    #[error("{}; then: {cause}", NatsError::Forbidden(.refused.clone()))]
    Refused {
        refused: Vec<String>,
        cause: Box<ServeError>,
    },
}

/// Runs the service until SIGINT or SIGTERM, then stops it.
pub async fn serve(settings: ServeSettings, telemetry: Arc<Telemetry>) -> Result<(), ServeError> {
    let refusals = Arc::new(Refusals::default());
    let run = async {
        let running = start::start(settings, telemetry.clone(), refusals.clone()).await?;
        crate::shutdown::wait_for_signal()
            .await
            .map_err(ServeError::Signals)?;
        running.stop().await
    };
    let result = match run.await {
        Err(e @ ServeError::Nats(NatsError::Forbidden(_))) => Err(e),
        Err(cause) if !refusals.all().is_empty() => Err(ServeError::Refused {
            refused: refusals.all(),
            cause: Box::new(cause),
        }),
        other => other,
    };
    // Whatever happened, export what is buffered (a clean stop has done it).
    telemetry.flush(Duration::from_secs(2)).await;
    result
}
