//! Bringing the service up, in the order a failure is cheapest to report:
//! the database, the rules, NATS and the events stream, the endpoints, and
//! only then the `ready` line. What runs afterwards is kept in
//! [`Running`], which [`Running::stop`](super::stop) ends.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use super::housekeeping::housekeeping;
use super::{SERVICE_NAME, SERVICE_VERSION, ServeError, ServeSettings};
use crate::contract::schema::Schemas;
use crate::events::relay::RelayParts;
use crate::events::{self, Liveness, Relay};
use crate::gateway::{Gateway, GatewayError};
use crate::inventory::{Inventory, InventoryLimits, Parts};
use crate::metrics::Metrics;
use crate::nats::{self, Link, Observers, Refusals, redact_nats_urls};
use crate::observe::health::{self, Health};
use crate::observe::telemetry::Telemetry;
use crate::rules::state::RulesState;
use crate::rules::{self, RulesEngine};
use crate::service::Service;
use crate::service::micro::{self, Identity, Registry};
use crate::store::{Store, redact_url};

/// How long the start waits for the rules bucket before it serves the
/// rules file (the bucket's watcher catches up afterwards).
const BUCKET_AT_START: Duration = Duration::from_secs(3);

/// A started service: what it needs to stop in order.
pub(super) struct Running {
    pub(super) shutdown_timeout: Duration,
    pub(super) telemetry: Arc<Telemetry>,
    pub(super) client: async_nats::Client,
    pub(super) store: Store,
    pub(super) service: Arc<Service>,
    /// Stops the gateway, which stops first.
    pub(super) gateway_stop: watch::Sender<bool>,
    pub(super) gateway: Option<JoinHandle<Result<(), GatewayError>>>,
    /// Stops the endpoints, discovery, the rules watchers and the
    /// operations endpoint.
    pub(super) stop: watch::Sender<bool>,
    pub(super) serving: JoinHandle<()>,
    pub(super) discovery: JoinHandle<()>,
    pub(super) rules_watchers: Vec<JoinHandle<()>>,
    /// Sets up the events stream when JetStream answers.
    pub(super) stream_setup: JoinHandle<bool>,
    pub(super) health: Option<JoinHandle<()>>,
    /// Stops the relay, the backlog sampler and housekeeping, which stop
    /// last, so that the relay can publish the last requests' events.
    pub(super) relay_stop: watch::Sender<bool>,
    pub(super) relay: Option<JoinHandle<()>>,
    pub(super) sampler: JoinHandle<()>,
    pub(super) housekeeping: JoinHandle<()>,
}

/// Starts everything, and says `ready` once the server has taken the
/// endpoints' subscriptions.
pub(super) async fn start(
    settings: ServeSettings,
    telemetry: Arc<Telemetry>,
    refusals: Arc<Refusals>,
) -> Result<Running, ServeError> {
    let schemas = Schemas::compile()?;
    let metrics = Metrics::new();

    let db = &settings.db;
    tracing::info!(database = %redact_url(&db.url), "using database");
    if settings.migrate && Store::ensure_database(&db.url).await? {
        tracing::info!("created the database");
    }
    let store = Store::connect_lazy(db)?;
    if settings.migrate {
        store.migrate().await?;
        tracing::info!("database migrations applied");
    }

    let sources = &settings.rules;
    let engine = RulesEngine::with_options(sources.sandbox, sources.engine.clone())?;
    let rules = engine.load_file(&sources.path).await?;
    tracing::info!(
        path = %sources.path.display(),
        rules = %rules.name,
        rules_version = %rules.version,
        digest = %rules.digest.short(),
        "rules loaded"
    );
    let origin = format!("file:{}", sources.path.display());
    let file_digest = rules.digest.clone();
    let rules = Arc::new(RulesState::new(engine, rules, &origin));

    // The instance's id names its NATS connection too, so that a server's
    // connection list tells which instance is which.
    let instance_id = micro::new_instance_id();
    let (link_tx, link) = watch::channel(Link::default());
    let client = nats::connect(
        &settings.nats,
        &format!("{SERVICE_NAME} {instance_id}"),
        Observers {
            refusals: Some(refusals.clone()),
            link: Some(Arc::new(link_tx)),
        },
    )
    .await?;
    let js = jetstream::new(client.clone());
    let stream = settings.events.stream.clone();
    // On a cluster still electing its leaders, or with several instances
    // starting at once, JetStream may not answer yet: the stream and the
    // bucket are then set up in the background while the service serves.
    let (stop, stop_rx) = watch::channel(false);
    let stream_setup = tokio::spawn(events::keep_ensuring(
        js.clone(),
        stream.clone(),
        stop_rx.clone(),
    ));
    // Deployed rules win over the file: a new instance serves what the
    // others serve from its first request, when the bucket answers in time.
    let mut follower = sources.bucket.as_ref().map(|bucket| {
        rules::bucket::Follower::new(js.clone(), bucket.clone(), sources.bucket_replicas, &rules)
    });
    if let Some(follower) = &mut follower {
        let synced = tokio::time::timeout(BUCKET_AT_START, follower.sync(&rules)).await;
        match synced {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot read the rules bucket yet; serving the rules file")
            }
            Err(_) => tracing::warn!(
                within_ms = BUCKET_AT_START.as_millis() as u64,
                "the rules bucket did not answer in time; serving the rules file until it does"
            ),
        }
    }

    let relay_wake = Arc::new(Notify::new());
    let inventory = Inventory::new(Parts {
        schemas,
        store: store.clone(),
        rules: rules.clone(),
        limits: InventoryLimits {
            max_request_bytes: settings.service.max_request_bytes,
            max_in_flight: settings.service.max_in_flight,
            idempotency_ttl: settings.service.idempotency_ttl,
        },
        relay_wake: relay_wake.clone(),
        metrics: metrics.clone(),
        group_commit: settings.service.group_commit,
    });
    let identity = Identity {
        name: SERVICE_NAME.to_string(),
        id: instance_id,
        version: SERVICE_VERSION.to_string(),
        description: "Inventory: add, remove and get product stock".to_string(),
        queue_group: settings.service.queue_group.clone(),
    };
    let registry = Registry::new(identity.clone(), {
        let rules = rules.clone();
        Box::new(move || rules.report().metadata())
    });
    let service = Service::new(
        inventory,
        client.clone(),
        registry.clone(),
        metrics.clone(),
        settings.service.admission,
    );
    metrics.observe(rules.clone(), store.clone(), link.clone());

    let subscriptions = Service::subscribe(&client, &identity.queue_group)
        .await
        .map_err(|e| ServeError::Subscribe(e.to_string()))?;
    let discovery = micro::subscribe(&client, &registry)
        .await
        .map_err(|e| ServeError::Subscribe(e.to_string()))?;
    // Make sure the server has taken our subscriptions before we say we
    // are ready: one it refused would leave the service deaf.
    let confirm_within = settings.nats.connect_timeout.max(Duration::from_secs(1));
    nats::confirm(&client, &refusals, confirm_within).await?;

    let liveness = Liveness::new(settings.events.relay.is_some(), settings.events.stall_after);
    let health = match &settings.metrics_addr {
        Some(addr) => {
            let health = Health {
                telemetry: telemetry.clone(),
                client: client.clone(),
                store: store.clone(),
                rules: rules.clone(),
                liveness: liveness.clone(),
            };
            Some(health::serve(addr, health, stop_rx.clone()).await?)
        }
        None => None,
    };
    let discovery = tokio::spawn(micro::serve(
        client.clone(),
        registry.clone(),
        discovery,
        stop_rx.clone(),
    ));
    let (relay_stop, relay_stop_rx) = watch::channel(false);
    let sampler = tokio::spawn(events::liveness::sample(
        store.clone(),
        liveness.clone(),
        metrics.clone(),
        link.clone(),
        relay_stop_rx.clone(),
    ));
    let relay = settings.events.relay.map(|relay_settings| {
        let relay = Relay::new(
            RelayParts {
                store: store.clone(),
                client: client.clone(),
                stream: stream.clone(),
                wake: relay_wake.clone(),
                metrics: metrics.clone(),
                liveness: liveness.clone(),
            },
            relay_settings,
        );
        tokio::spawn(relay.run(relay_stop_rx.clone(), link.clone()))
    });
    let housekeeping = tokio::spawn(housekeeping(
        store.clone(),
        settings.events.housekeeping,
        relay_stop_rx,
    ));
    let mut rules_watchers = Vec::new();
    if let Some(interval) = sources.watch {
        rules_watchers.push(tokio::spawn(rules::watch::follow_file(
            sources.path.clone(),
            interval,
            file_digest,
            rules.clone(),
            stop_rx.clone(),
        )));
    }
    if let Some(follower) = follower {
        rules_watchers.push(tokio::spawn(rules::bucket::follow(
            follower,
            sources.bucket_poll,
            rules.clone(),
            stop_rx.clone(),
        )));
    }
    let serving = {
        let service = service.clone();
        let stop = stop_rx.clone();
        let link = link.clone();
        tokio::spawn(async move { service.serve(subscriptions, stop, link).await })
    };

    // The gateway forwards to the service over NATS like any client; it
    // stops first, so that its requests in flight are still answered.
    let (gateway_stop, gateway_stop_rx) = watch::channel(false);
    let gateway = match settings.gateway {
        Some(config) => {
            let gateway = Gateway::bind(config).await?;
            Some(tokio::spawn(gateway.serve(
                client.clone(),
                gateway_stop_rx,
                settings.shutdown_timeout,
            )))
        }
        None => None,
    };

    tracing::info!(
        nats = %redact_nats_urls(&settings.nats.servers),
        service = SERVICE_NAME,
        version = SERVICE_VERSION,
        instance = %identity.id,
        queue_group = %identity.queue_group,
        "ready"
    );
    Ok(Running {
        shutdown_timeout: settings.shutdown_timeout,
        telemetry,
        client,
        store,
        service,
        gateway_stop,
        gateway,
        stop,
        serving,
        discovery,
        rules_watchers,
        stream_setup,
        health,
        relay_stop,
        relay,
        sampler,
        housekeeping,
    })
}
