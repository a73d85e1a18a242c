//! `beaker serve`: wires configuration, NATS, Postgres and the rules
//! together, serves until a signal, then shuts down gracefully.

use std::time::Duration;

use tokio::sync::watch;

use std::sync::Arc;

use async_nats::jetstream;
use async_nats::jetstream::stream::StorageType;
use tokio::sync::Notify;

use crate::config::{EventsArgs, ServeArgs, StreamStorage};
use crate::events::relay::RelayParts;
use crate::events::{self, EventsError, Liveness, Relay, RelaySettings, StreamSettings};
use crate::gateway::{Gateway, GatewayError};
use crate::health::{self, Health};
use crate::metrics::Metrics;
use crate::micro::{self, Identity, Registry};
use crate::nats::{self, Link, NatsError, Observers, Refusals, redact_nats_urls};
use crate::rules::state::RulesState;
use crate::rules::{self, LoadError, RulesEngine};
use crate::schema::{SchemaError, Schemas};
use crate::service::{Parts, Service, ServiceLimits};
use crate::shutdown::{Deadline, stopped, wait_for_signal};
use crate::store::{Store, StoreError, redact_url};
use crate::telemetry::Telemetry;

/// The service's name in the NATS micro protocol.
pub const SERVICE_NAME: &str = env!("CARGO_PKG_NAME");
/// The service's version in the NATS micro protocol.
pub const SERVICE_VERSION: &str = env!("CARGO_PKG_VERSION");

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
    Listen(#[from] health::ListenError),
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

/// Runs the service until SIGINT or SIGTERM.
pub async fn serve(args: ServeArgs, telemetry: Arc<Telemetry>) -> Result<(), ServeError> {
    let refusals = Arc::new(Refusals::default());
    let result = match run(args, telemetry.clone(), refusals.clone()).await {
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

async fn run(
    args: ServeArgs,
    telemetry: Arc<Telemetry>,
    refusals: Arc<Refusals>,
) -> Result<(), ServeError> {
    // A gateway misconfiguration fails the start before anything else.
    let gateway_config = match args.gateway_enabled {
        true => Some(args.gateway.config()?),
        false => None,
    };
    let schemas = Schemas::compile()?;
    let metrics = Metrics::new();

    let db = args.db.config();
    tracing::info!(database = %redact_url(&db.url), "using database");
    if !args.service.skip_migrations && Store::ensure_database(&db.url).await? {
        tracing::info!("created the database");
    }
    let store = Store::connect_lazy(&db)?;
    if !args.service.skip_migrations {
        store.migrate().await?;
        tracing::info!("database migrations applied");
    }

    let sandbox = args.rules.sandbox(args.service.max_in_flight);
    let engine = RulesEngine::with_options(sandbox, args.rules.sandbox.engine_options())?;
    let rules = engine.load_file(&args.rules.path).await?;
    tracing::info!(
        path = %args.rules.path.display(),
        rules = %rules.name,
        rules_version = %rules.version,
        digest = %rules.short_digest(),
        "rules loaded"
    );
    let origin = format!("file:{}", args.rules.path.display());
    let file_digest = rules.digest.clone();
    let rules = Arc::new(RulesState::new(engine, rules, &origin));

    let (link_tx, link) = watch::channel(Link::default());
    let client = nats::connect(
        &args.nats,
        SERVICE_NAME,
        Observers {
            metrics: Some(metrics.clone()),
            refusals: Some(refusals.clone()),
            link: Some(Arc::new(link_tx)),
        },
    )
    .await?;
    let js = jetstream::new(client.clone());
    let stream = stream_settings(&args.events);
    events::ensure_stream(&js, &stream).await?;
    tracing::info!(stream = %stream.name, subjects = ?stream.subjects, "events stream ready");
    let relay_wake = Arc::new(Notify::new());
    // Deployed rules win over the file: a new instance serves what the
    // others serve from its first request.
    if !args.rules.bucket.is_empty()
        && let Err(e) = rules::bucket::sync_once(&js, &args.rules.bucket, &rules).await
    {
        tracing::warn!(error = %e, "cannot read the rules bucket; serving the rules file");
    }
    let identity = Identity {
        name: SERVICE_NAME.to_string(),
        id: micro::new_instance_id(),
        version: SERVICE_VERSION.to_string(),
        description: "Inventory: add, remove and get product stock".to_string(),
        queue_group: args.service.queue_group.clone(),
    };
    let registry = Registry::new(identity.clone(), {
        let rules = rules.clone();
        Box::new(move || rules.metadata())
    });
    let service = Service::new(Parts {
        schemas,
        store: store.clone(),
        rules: rules.clone(),
        client: client.clone(),
        registry: registry.clone(),
        limits: ServiceLimits {
            max_request_bytes: args.service.max_request_bytes,
            max_in_flight: args.service.max_in_flight,
            idempotency_ttl: args.events.idempotency_ttl,
        },
        relay_wake: relay_wake.clone(),
        metrics: metrics.clone(),
        group_commit: args.service.group_commit.settings(),
    });
    metrics.observe(rules.clone(), store.clone());

    let subscriptions = Service::subscribe(&client, &identity.queue_group)
        .await
        .map_err(|e| ServeError::Subscribe(e.to_string()))?;
    let discovery = micro::subscribe(&client, &registry)
        .await
        .map_err(|e| ServeError::Subscribe(e.to_string()))?;
    // Make sure the server has taken our subscriptions before we say we
    // are ready: one it refused would leave the service deaf.
    nats::confirm(
        &client,
        &refusals,
        Duration::from_millis(args.nats.connect_timeout_ms.max(1000)),
    )
    .await?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let liveness = Liveness::new(
        args.events.relay,
        args.events.stall_after.max(Duration::from_secs(1)),
    );
    let health_task = if args.service.metrics_addr.is_empty() {
        None
    } else {
        let health = Health {
            telemetry: telemetry.clone(),
            client: client.clone(),
            store: store.clone(),
            rules: rules.clone(),
            liveness: liveness.clone(),
        };
        Some(health::serve(&args.service.metrics_addr, health, stop_rx.clone()).await?)
    };
    let discovery_task = tokio::spawn(micro::serve(
        client.clone(),
        registry.clone(),
        discovery,
        stop_rx.clone(),
    ));
    // The relay stops only after the last request was answered, so that it
    // can publish the last events.
    let (relay_stop_tx, relay_stop_rx) = watch::channel(false);
    let sampler = tokio::spawn(events::liveness::sample(
        store.clone(),
        liveness.clone(),
        metrics.clone(),
        link.clone(),
        relay_stop_rx.clone(),
    ));
    let relay = args.events.relay.then(|| {
        let relay = Relay::new(
            RelayParts {
                store: store.clone(),
                client: client.clone(),
                stream: stream.clone(),
                wake: relay_wake.clone(),
                metrics: metrics.clone(),
                liveness: liveness.clone(),
            },
            relay_settings(&args.events),
        );
        tokio::spawn(relay.run(relay_stop_rx.clone(), link.clone()))
    });
    let housekeeping = tokio::spawn(housekeeping(
        store.clone(),
        args.events.retention,
        args.events
            .housekeeping_interval
            .max(Duration::from_millis(10)),
        relay_stop_rx,
    ));
    let mut rules_tasks = Vec::new();
    if args.rules.watch {
        rules_tasks.push(tokio::spawn(rules::watch::follow_file(
            args.rules.path.clone(),
            args.rules.watch_interval.max(Duration::from_millis(10)),
            file_digest,
            rules.clone(),
            stop_rx.clone(),
        )));
    }
    if !args.rules.bucket.is_empty() {
        rules_tasks.push(tokio::spawn(rules::bucket::follow(
            js.clone(),
            args.rules.bucket.clone(),
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
    // stops first on shutdown, so its requests in flight are still answered.
    let shutdown_timeout = args.service.shutdown.timeout();
    let (gateway_stop, gateway_stop_rx) = watch::channel(false);
    let gateway_task = match gateway_config {
        Some(config) => {
            let gateway = Gateway::bind(config).await?;
            Some(tokio::spawn(gateway.serve(
                client.clone(),
                gateway_stop_rx,
                shutdown_timeout,
            )))
        }
        None => None,
    };

    tracing::info!(
        nats = %redact_nats_urls(args.nats.servers()),
        service = SERVICE_NAME,
        version = SERVICE_VERSION,
        instance = %identity.id,
        queue_group = %identity.queue_group,
        "ready"
    );

    wait_for_signal().await.map_err(ServeError::Signals)?;
    tracing::info!(
        deadline_ms = shutdown_timeout.as_millis() as u64,
        "shutting down: no new requests; answering those in flight"
    );
    // Every step below runs under one deadline; what it cuts off is
    // reported, and the exit status says the stop was not clean.
    let mut deadline = Deadline::after(shutdown_timeout);
    let _ = gateway_stop.send(true);
    if let Some(task) = gateway_task {
        match deadline.step("gateway", task).await {
            Some(Ok(Ok(()))) | None => {}
            Some(Ok(Err(e))) => tracing::error!(error = %e, "gateway failed"),
            Some(Err(e)) => tracing::error!(error = %e, "gateway task failed"),
        }
    }
    let _ = stop_tx.send(true);
    if let Some(Err(e)) = deadline.step("subscriptions", serving).await {
        tracing::error!(error = %e, "serving task failed");
    }
    if deadline
        .step("requests in flight", service.finished())
        .await
        .is_some()
    {
        tracing::info!("every request in flight was answered");
    }
    let abandoned_requests = service.in_flight();
    if let Some(Err(e)) = deadline.step("discovery", discovery_task).await {
        tracing::error!(error = %e, "discovery task failed");
    }
    for task in rules_tasks {
        let _ = deadline.step("rules watchers", task).await;
    }
    if let Some(task) = health_task {
        let _ = deadline.step("metrics endpoint", task).await;
    }
    let _ = relay_stop_tx.send(true);
    if let Some(relay) = relay
        && let Some(Err(e)) = deadline.step("outbox relay", relay).await
    {
        tracing::error!(error = %e, "outbox relay failed");
    }
    let _ = deadline.step("outbox sampler", sampler).await;
    let _ = deadline.step("housekeeping", housekeeping).await;
    // Draining needs the server: with NATS away there is nothing to drain.
    if client.connection_state() == async_nats::connection::State::Connected
        && let Some(Err(e)) = deadline.step("NATS drain", client.drain()).await
    {
        tracing::warn!(error = %e, "cannot drain the NATS connection");
    }
    let pending_events = match deadline.missed().is_empty() {
        true => None,
        false => Some(tokio::time::timeout(Duration::from_secs(1), store.outbox_backlog()).await),
    };
    let _ = deadline.step("database pool", store.close()).await;
    telemetry
        .flush(deadline.remaining().max(Duration::from_millis(200)))
        .await;
    if deadline.missed().is_empty() {
        tracing::info!("stopped");
        return Ok(());
    }
    let pending = match pending_events {
        Some(Ok(Ok((count, _)))) => count.to_string(),
        _ => "unknown (the database did not answer)".to_string(),
    };
    tracing::error!(
        deadline_ms = shutdown_timeout.as_millis() as u64,
        cut_off = ?deadline.missed(),
        requests_in_flight = abandoned_requests,
        outbox_pending = %pending,
        "stopped at the shutdown deadline: abandoned {abandoned_requests} request(s) in flight \
         (their transactions roll back: nothing half-done is kept) and left {pending} event(s) \
         in the outbox (safe in Postgres: the next instance publishes them)"
    );
    Err(ServeError::ShutdownDeadline {
        limit: shutdown_timeout,
        requests: abandoned_requests,
    })
}

/// Deletes expired idempotency keys and old published outbox rows, every
/// `interval`, until `stop`: a task of its own, so that it runs whether or
/// not this instance relays events.
async fn housekeeping(
    store: Store,
    retention: Duration,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stopped(&mut stop) => return,
            _ = tick.tick() => {}
        }
        let bound = interval.max(Duration::from_secs(5));
        match tokio::time::timeout(bound, store.housekeeping(retention)).await {
            Ok(Ok((keys, rows))) if keys + rows > 0 => tracing::debug!(
                expired_keys = keys,
                outbox_rows = rows,
                "housekeeping deleted old rows"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "housekeeping failed"),
            Err(_) => tracing::warn!("housekeeping took too long; trying again later"),
        }
    }
}

fn stream_settings(args: &EventsArgs) -> StreamSettings {
    StreamSettings {
        name: args.stream.clone(),
        subjects: args.subjects.clone(),
        storage: match args.storage {
            StreamStorage::File => StorageType::File,
            StreamStorage::Memory => StorageType::Memory,
        },
        max_age: args.max_age,
        max_bytes: args.max_bytes,
        // JetStream refuses a window longer than the stream's maximum age.
        duplicate_window: args.duplicate_window.min(args.max_age),
        replicas: args.replicas.max(1),
    }
}

fn relay_settings(args: &EventsArgs) -> RelaySettings {
    RelaySettings {
        poll_interval: args.poll_interval.max(Duration::from_millis(10)),
        batch_size: i64::from(args.batch_size.max(1)),
        round_timeout: args.round_timeout.max(Duration::from_millis(100)),
        max_backoff: Duration::from_secs(30),
        final_attempt: Duration::from_secs(5),
    }
}
