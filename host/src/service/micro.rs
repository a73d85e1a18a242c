//! The NATS micro protocol (v1): discovery with `$SRV.PING|INFO|STATS`, and
//! per-endpoint statistics.
//!
//! We speak it ourselves rather than through a client library's service
//! API for three reasons: failed requests must carry a JSON body *and* the
//! `Nats-Service-Error` headers (libraries send an empty body), the
//! metadata must change when the rules are swapped, and every reply is
//! ours to shape. The wire shapes follow the NATS micro specification, as
//! the Go `micro` package sends them.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::{Client, Subscriber};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::contract::wire::Endpoint;
use crate::rules::report::{ReportError, RulesReport};

/// The prefix of every discovery subject.
const API_PREFIX: &str = "$SRV";

/// What the service says about itself.
#[derive(Debug, Clone)]
pub struct Identity {
    pub name: String,
    pub id: String,
    pub version: String,
    pub description: String,
    pub queue_group: String,
}

#[derive(Debug, Default, Clone)]
struct EndpointStats {
    requests: u64,
    errors: u64,
    processing: Duration,
    last_error: String,
}

/// Supplies the current metadata whenever discovery asks (it changes when
/// the rules are swapped).
pub type MetadataSource = Box<dyn Fn() -> BTreeMap<String, String> + Send + Sync>;

/// Shared, mutable state: statistics and metadata.
pub struct Registry {
    identity: Identity,
    started: DateTime<Utc>,
    stats: Mutex<BTreeMap<&'static str, EndpointStats>>,
    metadata: MetadataSource,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Registry {
    pub fn new(identity: Identity, metadata: MetadataSource) -> Arc<Self> {
        let stats = Endpoint::ALL
            .iter()
            .map(|e| (e.name(), EndpointStats::default()))
            .collect();
        Arc::new(Self {
            identity,
            started: Utc::now(),
            stats: Mutex::new(stats),
            metadata,
        })
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Records one answered request.
    pub fn record(&self, endpoint: Endpoint, elapsed: Duration, error: Option<(u16, &str)>) {
        let mut stats = self.stats.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = stats.entry(endpoint.name()).or_default();
        entry.requests += 1;
        entry.processing += elapsed;
        if let Some((code, message)) = error {
            entry.errors += 1;
            entry.last_error = format!("{code}:{message}");
        }
    }

    fn metadata(&self) -> BTreeMap<String, String> {
        (self.metadata)()
    }

    fn ping(&self) -> PingResponse<'_> {
        PingResponse {
            kind: "io.nats.micro.v1.ping_response",
            name: &self.identity.name,
            id: &self.identity.id,
            version: &self.identity.version,
            metadata: self.metadata(),
        }
    }

    fn info(&self) -> InfoResponse<'_> {
        InfoResponse {
            kind: "io.nats.micro.v1.info_response",
            name: &self.identity.name,
            id: &self.identity.id,
            version: &self.identity.version,
            description: &self.identity.description,
            metadata: self.metadata(),
            endpoints: Endpoint::ALL
                .iter()
                .map(|e| EndpointInfo {
                    name: e.name(),
                    subject: e.subject(),
                    queue_group: &self.identity.queue_group,
                    metadata: BTreeMap::new(),
                })
                .collect(),
        }
    }

    fn stats(&self) -> StatsResponse<'_> {
        let stats = self
            .stats
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        StatsResponse {
            kind: "io.nats.micro.v1.stats_response",
            name: &self.identity.name,
            id: &self.identity.id,
            version: &self.identity.version,
            metadata: self.metadata(),
            started: self.started.to_rfc3339_opts(SecondsFormat::Nanos, true),
            endpoints: Endpoint::ALL
                .iter()
                .map(|e| {
                    let s = stats.get(e.name()).cloned().unwrap_or_default();
                    let average = if s.requests == 0 {
                        0
                    } else {
                        s.processing.as_nanos() / u128::from(s.requests)
                    };
                    EndpointStatsResponse {
                        name: e.name(),
                        subject: e.subject(),
                        queue_group: &self.identity.queue_group,
                        num_requests: s.requests,
                        num_errors: s.errors,
                        last_error: s.last_error,
                        processing_time: s.processing.as_nanos(),
                        average_processing_time: average,
                    }
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct PingResponse<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    id: &'a str,
    version: &'a str,
    metadata: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct EndpointInfo<'a> {
    name: &'static str,
    subject: &'static str,
    queue_group: &'a str,
    metadata: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct InfoResponse<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    id: &'a str,
    version: &'a str,
    description: &'a str,
    metadata: BTreeMap<String, String>,
    endpoints: Vec<EndpointInfo<'a>>,
}

#[derive(Serialize)]
struct EndpointStatsResponse<'a> {
    name: &'static str,
    subject: &'static str,
    queue_group: &'a str,
    num_requests: u64,
    num_errors: u64,
    last_error: String,
    processing_time: u128,
    average_processing_time: u128,
}

#[derive(Serialize)]
struct StatsResponse<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    name: &'a str,
    id: &'a str,
    version: &'a str,
    metadata: BTreeMap<String, String>,
    started: String,
    endpoints: Vec<EndpointStatsResponse<'a>>,
}

#[derive(Debug, Clone, Copy)]
pub enum Verb {
    Ping,
    Info,
    Stats,
}

impl Verb {
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Ping => "PING",
            Verb::Info => "INFO",
            Verb::Stats => "STATS",
        }
    }
}

/// Subscribes to every discovery subject: `$SRV.VERB`, `$SRV.VERB.name`
/// and `$SRV.VERB.name.id`. Every instance answers (no queue group).
pub async fn subscribe(
    client: &Client,
    registry: &Registry,
) -> Result<Vec<(Verb, Subscriber)>, async_nats::SubscribeError> {
    let mut subscriptions = Vec::new();
    for verb in [Verb::Ping, Verb::Info, Verb::Stats] {
        let identity = registry.identity();
        for subject in [
            format!("{API_PREFIX}.{}", verb.as_str()),
            format!("{API_PREFIX}.{}.{}", verb.as_str(), identity.name),
            format!(
                "{API_PREFIX}.{}.{}.{}",
                verb.as_str(),
                identity.name,
                identity.id
            ),
        ] {
            subscriptions.push((verb, client.subscribe(subject).await?));
        }
    }
    Ok(subscriptions)
}

/// Answers discovery requests until `stop` turns true.
pub async fn serve(
    client: Client,
    registry: Arc<Registry>,
    subscriptions: Vec<(Verb, Subscriber)>,
    mut stop: watch::Receiver<bool>,
) {
    let mut merged = futures::stream::select_all(
        subscriptions
            .into_iter()
            .map(|(verb, sub)| sub.map(move |m| (verb, m)).boxed()),
    );
    loop {
        tokio::select! {
            () = crate::shutdown::stopped(&mut stop) => break,
            next = merged.next() => {
                let Some((verb, message)) = next else { break };
                let Some(reply) = message.reply else { continue };
                let body = match verb {
                    Verb::Ping => serde_json::to_vec(&registry.ping()),
                    Verb::Info => serde_json::to_vec(&registry.info()),
                    Verb::Stats => serde_json::to_vec(&registry.stats()),
                };
                match body {
                    Ok(body) => {
                        if let Err(e) = client.publish(reply, body.into()).await {
                            tracing::warn!(error = %e, "cannot answer a discovery request");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "cannot encode a discovery reply"),
                }
            }
        }
    }
}

/// A fresh instance id, as NATS micro expects (alphanumeric, unique).
pub fn new_instance_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// An instance's `$SRV.INFO` reply, as a client reads it.
#[derive(Debug, Clone, Deserialize)]
pub struct InstanceInfo {
    pub id: String,
    pub name: String,
    pub version: String,
    #[serde(default)]
    pub metadata: serde_json::Value,
}

impl InstanceInfo {
    /// What the instance reports about its rules.
    pub fn rules(&self) -> Result<RulesReport, ReportError> {
        RulesReport::from_metadata(&self.metadata)
    }
}

/// Asks every instance of `service` (`$SRV.VERB.service`) and returns the
/// replies that arrive within `window`, as they came — or as soon as
/// `expected` have, when the caller knows how many instances run.
/// Instances answer without a queue group, so one request reaches them
/// all; how many there are is unknown, so the window bounds the wait.
pub async fn ask_all(
    client: &Client,
    verb: Verb,
    service: &str,
    window: Duration,
    expected: Option<usize>,
) -> Result<Vec<serde_json::Value>, async_nats::Error> {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await?;
    let subject = format!("{API_PREFIX}.{}.{service}", verb.as_str());
    client
        .publish_with_reply(subject, inbox, bytes::Bytes::new())
        .await?;
    let deadline = tokio::time::Instant::now() + window;
    let mut answers = Vec::new();
    while expected.is_none_or(|n| answers.len() < n)
        && let Ok(Some(message)) = tokio::time::timeout_at(deadline, replies.next()).await
    {
        match serde_json::from_slice(&message.payload) {
            Ok(answer) => answers.push(answer),
            Err(e) => tracing::debug!(error = %e, "a discovery reply that is not JSON"),
        }
    }
    Ok(answers)
}

/// Every running instance's `$SRV.INFO`, keyed by instance id.
pub async fn discover(
    client: &Client,
    service: &str,
    window: Duration,
) -> Result<BTreeMap<String, InstanceInfo>, async_nats::Error> {
    Ok(ask_all(client, Verb::Info, service, window, None)
        .await?
        .into_iter()
        .filter_map(|answer| serde_json::from_value::<InstanceInfo>(answer).ok())
        .map(|info| (info.id.clone(), info))
        .collect())
}
