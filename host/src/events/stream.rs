//! The JetStream stream that keeps the events.
//!
//! The host creates the stream when it is missing and otherwise leaves it
//! as it is: a stream that exists with other settings (another instance's
//! configuration, or an operator's edit) is reported, never silently
//! changed or recreated, since either could lose events or undo a
//! deliberate choice. On a cluster that is still forming the creation can
//! time out; the caller retries ([`keep_ensuring`]) while the service
//! serves, the events waiting in the outbox.

use std::time::Duration;

use async_nats::jetstream::Context;
use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::{CreateStreamErrorKind, GetStreamErrorKind};
use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
use tokio::sync::watch;

use crate::shutdown::stopped;

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
    #[error("cannot create or read the JetStream stream {name}: {reason}")]
    Stream { name: String, reason: String },
}

/// What [`ensure_stream`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    Created,
    /// It was there; each difference from these settings is described.
    Exists {
        differences: Vec<String>,
    },
}

impl StreamSettings {
    /// The stream's configuration, with only settings nats-server 2.9 knows.
    fn config(&self) -> Config {
        Config {
            name: self.name.clone(),
            description: Some("Beaker events (low stock), published from the outbox".into()),
            subjects: self.subjects.clone(),
            retention: RetentionPolicy::Limits,
            discard: DiscardPolicy::Old,
            storage: self.storage,
            max_age: self.max_age,
            max_bytes: self.max_bytes,
            duplicate_window: self.duplicate_window,
            num_replicas: self.replicas,
            ..Default::default()
        }
    }
}

/// Creates the stream if it is missing; if it exists, reads how its
/// settings differ from these. Bounded by the context's timeout.
pub async fn ensure_stream(
    js: &Context,
    settings: &StreamSettings,
) -> Result<Ensured, EventsError> {
    let failed = |reason: String| EventsError::Stream {
        name: settings.name.clone(),
        reason,
    };
    if let Some(differences) = existing(js, settings).await.map_err(&failed)? {
        return Ok(Ensured::Exists { differences });
    }
    match js.create_stream(settings.config()).await {
        Ok(_) => Ok(Ensured::Created),
        // Another instance created it first: read what it made.
        Err(e) if created_meanwhile(&e) => match existing(js, settings).await.map_err(&failed)? {
            Some(differences) => Ok(Ensured::Exists { differences }),
            None => Err(failed("created by another instance, then not found".into())),
        },
        Err(e) => Err(failed(e.to_string())),
    }
}

/// The differences of the existing stream from `settings`, or `None` when
/// there is no such stream.
async fn existing(js: &Context, settings: &StreamSettings) -> Result<Option<Vec<String>>, String> {
    match js.get_stream(&settings.name).await {
        Ok(mut stream) => {
            let info = stream.info().await.map_err(|e| e.to_string())?;
            Ok(Some(differences(&info.config, settings)))
        }
        Err(e) => match e.kind() {
            GetStreamErrorKind::JetStream(error)
                if error.error_code() == ErrorCode::STREAM_NOT_FOUND =>
            {
                Ok(None)
            }
            _ => Err(e.to_string()),
        },
    }
}

fn created_meanwhile(error: &async_nats::jetstream::context::CreateStreamError) -> bool {
    matches!(error.kind(), CreateStreamErrorKind::JetStream(e)
        if e.error_code() == ErrorCode::STREAM_NAME_EXIST)
}

/// How an existing stream's configuration differs from `settings`, one
/// sentence each.
pub fn differences(actual: &Config, settings: &StreamSettings) -> Vec<String> {
    let wanted = settings.config();
    let mut found = Vec::new();
    let mut differ = |what: &str, has: String, asked: String| {
        if has != asked {
            found.push(format!("{what} is {has} where this host asks for {asked}"));
        }
    };
    let mut subjects = actual.subjects.clone();
    subjects.sort();
    let mut asked = wanted.subjects.clone();
    asked.sort();
    differ("subjects", format!("{subjects:?}"), format!("{asked:?}"));
    differ(
        "storage",
        format!("{:?}", actual.storage),
        format!("{:?}", wanted.storage),
    );
    differ(
        "replicas",
        actual.num_replicas.max(1).to_string(),
        wanted.num_replicas.to_string(),
    );
    differ(
        "max age",
        humantime::format_duration(actual.max_age).to_string(),
        humantime::format_duration(wanted.max_age).to_string(),
    );
    differ(
        "max bytes",
        actual.max_bytes.to_string(),
        wanted.max_bytes.to_string(),
    );
    differ(
        "duplicate window",
        humantime::format_duration(actual.duplicate_window).to_string(),
        humantime::format_duration(wanted.duplicate_window).to_string(),
    );
    differ(
        "retention",
        format!("{:?}", actual.retention),
        format!("{:?}", wanted.retention),
    );
    differ(
        "discard policy",
        format!("{:?}", actual.discard),
        format!("{:?}", wanted.discard),
    );
    found
}

/// Logs what [`ensure_stream`] found.
pub fn report(settings: &StreamSettings, ensured: &Ensured) {
    match ensured {
        Ensured::Created => tracing::info!(
            stream = %settings.name,
            subjects = %settings.subjects.join(", "),
            replicas = settings.replicas,
            "events stream created"
        ),
        Ensured::Exists { differences } if differences.is_empty() => {
            tracing::info!(stream = %settings.name, "events stream ready")
        }
        Ensured::Exists { differences } => tracing::warn!(
            stream = %settings.name,
            differences = %differences.join("; "),
            "the events stream exists with other settings; it is left as it is (edit it, or \
             delete it to have it created with these settings)"
        ),
    }
}

/// Tries until the stream exists (or `stop`), with back-off: on a cluster
/// that is still forming, or several instances starting at once, creating
/// it can time out. Says what it waits for, once, then how it ended.
pub async fn keep_ensuring(
    js: Context,
    settings: StreamSettings,
    mut stop: watch::Receiver<bool>,
) -> bool {
    let mut pause = Duration::from_millis(200);
    let mut warned = false;
    loop {
        match ensure_stream(&js, &settings).await {
            Ok(ensured) => {
                report(&settings, &ensured);
                return true;
            }
            Err(e) if !warned => {
                tracing::warn!(
                    error = %e,
                    "waiting for JetStream to set up the events stream; serving meanwhile \
                     (events wait in the outbox)"
                );
                warned = true;
            }
            Err(e) => tracing::debug!(error = %e, "the events stream is not set up yet"),
        }
        tokio::select! {
            () = stopped(&mut stop) => return false,
            () = tokio::time::sleep(pause) => {}
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> StreamSettings {
        StreamSettings {
            name: "BEAKER_EVENTS".into(),
            subjects: vec!["events.>".into()],
            storage: StorageType::File,
            max_age: Duration::from_secs(7 * 86_400),
            max_bytes: -1,
            duplicate_window: Duration::from_secs(7_200),
            replicas: 3,
        }
    }

    #[test]
    fn a_stream_as_asked_has_no_differences_and_each_other_setting_is_named() {
        let wanted = settings();
        assert_eq!(differences(&wanted.config(), &wanted), Vec::<String>::new());
        let mut actual = wanted.config();
        actual.num_replicas = 1;
        actual.max_age = Duration::from_secs(3_600);
        let found = differences(&actual, &wanted);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0], "replicas is 1 where this host asks for 3");
        assert!(found[1].starts_with("max age is 1h"), "{found:?}");
    }
}
