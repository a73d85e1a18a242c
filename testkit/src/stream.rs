//! The events as they sit in a JetStream stream.

use anyhow::Result;
use serde_json::Value;

/// One event as it sits in the JetStream stream.
#[derive(Debug, Clone)]
pub struct StreamEvent {
    pub sequence: u64,
    pub subject: String,
    pub msg_id: Option<String>,
    pub headers: async_nats::HeaderMap,
    pub payload: Value,
}

/// The default stream's name.
pub const EVENTS_STREAM: &str = "BEAKER_EVENTS";

/// Every message in a stream, in order.
pub async fn stream_events(client: &async_nats::Client, stream: &str) -> Result<Vec<StreamEvent>> {
    let js = async_nats::jetstream::new(client.clone());
    let mut handle = js.get_stream(stream).await?;
    let state = handle.info().await?.state.clone();
    let mut events = Vec::new();
    if state.messages == 0 {
        return Ok(events);
    }
    for sequence in state.first_sequence..=state.last_sequence {
        let message = handle.get_raw_message(sequence).await?;
        let msg_id = message.headers.get("Nats-Msg-Id").map(|v| v.to_string());
        events.push(StreamEvent {
            sequence,
            subject: message.subject.to_string(),
            msg_id,
            headers: message.headers.clone(),
            payload: serde_json::from_slice(&message.payload).unwrap_or(Value::Null),
        });
    }
    Ok(events)
}
