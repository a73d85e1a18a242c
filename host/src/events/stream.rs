//! The JetStream stream that keeps the events.

use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};

/// Settings of the events stream.
#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub name: String,
    pub subjects: Vec<String>,
    pub storage: StorageType,
    pub max_age: Duration,
    pub max_bytes: i64,
    pub duplicate_window: Duration,
    pub replicas: usize,
}

/// Why the stream could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("cannot create or update the JetStream stream {name}: {reason}")]
    Stream { name: String, reason: String },
}

/// Creates the stream, or updates it to these settings. Uses only stream
/// settings nats-server 2.9 knows. Bounded by the context's timeout.
pub async fn ensure_stream(js: &Context, settings: &StreamSettings) -> Result<(), EventsError> {
    let config = Config {
        name: settings.name.clone(),
        description: Some("Beaker events (low stock), published from the outbox".into()),
        subjects: settings.subjects.clone(),
        retention: RetentionPolicy::Limits,
        discard: DiscardPolicy::Old,
        storage: settings.storage,
        max_age: settings.max_age,
        max_bytes: settings.max_bytes,
        duplicate_window: settings.duplicate_window,
        num_replicas: settings.replicas,
        ..Default::default()
    };
    js.create_or_update_stream(config)
        .await
        .map(|_| ())
        .map_err(|e| EventsError::Stream {
            name: settings.name.clone(),
            reason: e.to_string(),
        })
}
