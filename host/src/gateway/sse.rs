//! Subscribing over HTTP, as server-sent events: one `msg` event per NATS
//! message (its data the JSON envelope), keep-alive comments, and a
//! `closed` event when the gateway stops.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::AppState;
use super::failure::Failure;
use super::handlers::checked_subject;
use super::headers::Envelope;
use super::middleware::query_param;
use crate::shutdown::stopped;

/// `GET /v1/nats/subjects/{subject}`: subscribe, as server-sent events.
/// Each message is a `msg` event whose data is the JSON envelope; when the
/// gateway stops, a `closed` event ends the stream. The NATS subscription
/// is in place before the response starts.
pub(super) async fn subscribe(
    State(gw): State<AppState>,
    path: Result<Path<String>, axum::extract::rejection::PathRejection>,
    RawQuery(query): RawQuery,
) -> Result<Response, Failure> {
    let subject = checked_subject(path, true, &gw.config.allow_subscribe, "subscribing to")?;
    let queue = query_param(query.as_deref(), "queue").filter(|q| !q.is_empty());
    if let Some(queue) = &queue
        && queue.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            "the queue group contains whitespace or a control character",
        ));
    }
    let heartbeat = match query_param(query.as_deref(), "idleHeartbeat") {
        None => gw.config.heartbeat,
        Some(raw) => match raw.trim().parse::<u64>() {
            Ok(ms) if (100..=3_600_000).contains(&ms) => Duration::from_millis(ms),
            _ => {
                return Err(Failure::new(
                    StatusCode::BAD_REQUEST,
                    format!("idleHeartbeat must be milliseconds from 100 to 3600000, not {raw:?}"),
                ));
            }
        },
    };
    let subscribed = match queue {
        Some(queue) => gw.client.queue_subscribe(subject.clone(), queue).await,
        None => gw.client.subscribe(subject.clone()).await,
    };
    let subscriber = subscribed.map_err(|e| {
        Failure::new(
            StatusCode::BAD_GATEWAY,
            format!("cannot subscribe on NATS: {e}"),
        )
    })?;
    // The subscription is on the wire before the caller hears "open". (The
    // client offers no round trip to wait for the server to have read it:
    // a message the caller causes in the same instant can still come first.)
    if let Err(e) = gw.client.flush().await {
        return Err(Failure::new(
            StatusCode::BAD_GATEWAY,
            format!("cannot subscribe on NATS: {e}"),
        ));
    }
    tracing::debug!(subject, "event stream opened");
    let stop = gw.stop.clone();
    let events = futures::stream::unfold(Some((subscriber, stop)), |state| async move {
        let (mut subscriber, mut stop) = state?;
        tokio::select! {
            () = stopped(&mut stop) => Some((closed_event("the gateway is stopping"), None)),
            next = subscriber.next() => match next {
                Some(message) => Some((message_event(&message), Some((subscriber, stop)))),
                None => Some((closed_event("the subscription ended"), None)),
            },
        }
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
        .into_response())
}

fn message_event(message: &async_nats::Message) -> Result<Event, Infallible> {
    let envelope = Envelope::from_message(message);
    let data = serde_json::to_string(&envelope).unwrap_or_else(|_| "{}".to_string());
    Ok(Event::default().event("msg").data(data))
}

fn closed_event(reason: &str) -> Result<Event, Infallible> {
    Ok(Event::default().event("closed").data(reason))
}
