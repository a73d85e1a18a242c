//! The events stream, the outbox relay and housekeeping.

use std::time::Duration;

use async_nats::jetstream::stream::StorageType;
use clap::{Args, ValueEnum};

use super::{ConfigError, at_least};
use crate::events::{RelaySettings, StreamSettings};
use crate::startup::{EventsSettings, HousekeepingSettings};

/// Storage of the events stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StreamStorage {
    File,
    Memory,
}

/// The events stream and the outbox relay.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Events")]
pub struct EventsArgs {
    /// Name of the JetStream stream that keeps events (created or updated at start).
    #[arg(
        long = "events-stream",
        env = "BEAKER_EVENTS_STREAM",
        default_value = "BEAKER_EVENTS"
    )]
    pub stream: String,
    /// Subjects the stream captures, comma-separated.
    #[arg(
        long = "events-subjects",
        env = "BEAKER_EVENTS_SUBJECTS",
        default_value = "events.>",
        value_delimiter = ','
    )]
    pub subjects: Vec<String>,
    /// Stream storage.
    #[arg(long = "events-storage", env = "BEAKER_EVENTS_STORAGE", value_enum, default_value_t = StreamStorage::File)]
    pub storage: StreamStorage,
    /// How long the stream keeps an event (e.g. 7d, 12h).
    #[arg(long = "events-max-age", env = "BEAKER_EVENTS_MAX_AGE", default_value = "7d", value_parser = humantime::parse_duration)]
    pub max_age: Duration,
    /// Largest size of the stream in bytes; -1 for no limit (oldest events go first).
    #[arg(long = "events-max-bytes", env = "BEAKER_EVENTS_MAX_BYTES", default_value_t = -1, allow_negative_numbers = true)]
    pub max_bytes: i64,
    /// Window in which JetStream drops a second copy of an event (same
    /// Nats-Msg-Id); at most the stream's maximum age, which it is cut to.
    #[arg(long = "events-duplicate-window", env = "BEAKER_EVENTS_DUPLICATE_WINDOW", default_value = "2h", value_parser = humantime::parse_duration)]
    pub duplicate_window: Duration,
    /// Stream replicas (1 on a single server; 3 on a cluster).
    #[arg(
        long = "events-replicas",
        env = "BEAKER_EVENTS_REPLICAS",
        default_value_t = 1,
        value_parser = clap::value_parser!(u8).range(1..=5)
    )]
    pub replicas: u8,
    /// Run the outbox relay in this instance (turn off to run relays elsewhere).
    #[arg(long = "outbox-relay", env = "BEAKER_OUTBOX_RELAY", default_value_t = true, action = clap::ArgAction::Set)]
    pub relay: bool,
    /// How often the relay looks for events it was not woken for (at least 10ms).
    #[arg(long = "outbox-poll-interval", env = "BEAKER_OUTBOX_POLL_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub poll_interval: Duration,
    /// The longest one relay round (claim, publish, acknowledgements,
    /// marking) may take; past it the round is abandoned, its events
    /// released, and it is retried.
    #[arg(long = "outbox-round-timeout", env = "BEAKER_OUTBOX_ROUND_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub round_timeout: Duration,
    /// How long the relay waits for JetStream to acknowledge a publish
    /// (capped at the round timeout). An ack lost with a stream leader that
    /// died never comes: past this the events are published again (the
    /// stream drops duplicates by Nats-Msg-Id), to the new leader.
    #[arg(long = "outbox-ack-timeout", env = "BEAKER_OUTBOX_ACK_TIMEOUT", default_value = "2s", value_parser = humantime::parse_duration)]
    pub ack_timeout: Duration,
    /// A relay connected to NATS that has published nothing for this long
    /// while events wait is reported as stalled (a warning, the metric
    /// beaker_outbox_relay_stalled, /readyz).
    #[arg(long = "outbox-stall-after", env = "BEAKER_OUTBOX_STALL_AFTER", default_value = "30s", value_parser = humantime::parse_duration)]
    pub stall_after: Duration,
    /// Events the relay claims and publishes per round.
    #[arg(
        long = "outbox-batch-size",
        env = "BEAKER_OUTBOX_BATCH_SIZE",
        default_value_t = 256,
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub batch_size: u32,
    /// How long published events stay in the outbox table.
    #[arg(long = "outbox-retention", env = "BEAKER_OUTBOX_RETENTION", default_value = "24h", value_parser = humantime::parse_duration)]
    pub retention: Duration,
    /// How long a reply stays stored under its idempotency key (Nats-Msg-Id).
    #[arg(long = "idempotency-ttl", env = "BEAKER_IDEMPOTENCY_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub idempotency_ttl: Duration,
    /// How often expired idempotency keys and old outbox rows are deleted (at least 10ms).
    #[arg(long = "housekeeping-interval", env = "BEAKER_HOUSEKEEPING_INTERVAL", default_value = "1m", value_parser = humantime::parse_duration)]
    pub housekeeping_interval: Duration,
}

impl TryFrom<&EventsArgs> for EventsSettings {
    type Error = ConfigError;

    fn try_from(args: &EventsArgs) -> Result<Self, ConfigError> {
        let stream = StreamSettings {
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
            replicas: usize::from(args.replicas),
        };
        let round_timeout = at_least(
            "BEAKER_OUTBOX_ROUND_TIMEOUT",
            args.round_timeout,
            Duration::from_millis(100),
        )?;
        let relay = RelaySettings {
            poll_interval: at_least(
                "BEAKER_OUTBOX_POLL_INTERVAL",
                args.poll_interval,
                Duration::from_millis(10),
            )?,
            batch_size: i64::from(args.batch_size),
            round_timeout,
            // Capped, not refused: lowering the round timeout alone must
            // not make the default ack bound an error.
            ack_timeout: at_least(
                "BEAKER_OUTBOX_ACK_TIMEOUT",
                args.ack_timeout,
                Duration::from_millis(10),
            )?
            .min(round_timeout),
            max_backoff: Duration::from_secs(30),
            final_attempt: Duration::from_secs(5),
        };
        Ok(EventsSettings {
            stream,
            relay: args.relay.then_some(relay),
            stall_after: at_least(
                "BEAKER_OUTBOX_STALL_AFTER",
                args.stall_after,
                Duration::from_secs(1),
            )?,
            idempotency_ttl: args.idempotency_ttl,
            housekeeping: HousekeepingSettings {
                interval: at_least(
                    "BEAKER_HOUSEKEEPING_INTERVAL",
                    args.housekeeping_interval,
                    Duration::from_millis(10),
                )?,
                outbox_retention: args.retention,
            },
        })
    }
}
