//! One request on the wire: its span (continuing the caller's trace), the
//! inventory's reply, the reply checked against its schema and sent with
//! the NATS micro error headers, the request counted.

use tokio::time::Instant;

use async_nats::{HeaderMap, HeaderValue, Message};
use bytes::Bytes;
use serde_json::Value;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use super::Service;
use crate::contract::wire::{
    ERROR_CODE_HEADER, ERROR_HEADER, Endpoint, ErrorCode, IDEMPOTENCY_HEADER, Reply,
};
use crate::inventory::internal_error;

impl Service {
    pub(super) async fn answer(&self, endpoint: Endpoint, message: Message, received: Instant) {
        let request_id = Uuid::now_v7();
        let rules = self.inventory.rules().active();
        let span = tracing::info_span!(
            "request",
            otel.name = endpoint.subject(),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            messaging.system = "nats",
            messaging.operation.name = "process",
            messaging.destination.name = endpoint.subject(),
            beaker.request_id = %request_id,
            beaker.sku = tracing::field::Empty,
            beaker.outcome = tracing::field::Empty,
            error.type = tracing::field::Empty,
            beaker.error.code = tracing::field::Empty,
            rules.name = %rules.name,
            rules.version = %rules.version,
            rules.digest = %rules.digest,
            trace_id = tracing::field::Empty,
            span_id = tracing::field::Empty,
        );
        // Continue the caller's trace (W3C traceparent in the NATS headers).
        if let Some(headers) = &message.headers {
            let parent = opentelemetry::global::get_text_map_propagator(|p| {
                p.extract(&crate::propagation::HeaderExtractor(headers))
            });
            let _ = span.set_parent(parent);
        }
        {
            use opentelemetry::trace::TraceContextExt;
            let context = span.context();
            let span_context = context.span().span_context().clone();
            if span_context.is_valid() {
                span.record("trace_id", span_context.trace_id().to_string());
                span.record("span_id", span_context.span_id().to_string());
            }
        }
        let reply = async {
            let key = message
                .headers
                .as_ref()
                .and_then(|h| h.get(IDEMPOTENCY_HEADER))
                .map(|v| v.as_str().to_string());
            let reply = self
                .inventory
                .handle(
                    endpoint,
                    &message.payload,
                    key.as_deref(),
                    request_id,
                    &rules,
                )
                .await;
            let current = tracing::Span::current();
            match &reply {
                Reply::Ok { level, .. } => {
                    current.record("beaker.outcome", "ok");
                    tracing::debug!(level, "answered");
                }
                Reply::Err { code, message } => {
                    current.record("beaker.outcome", code.outcome());
                    current.record("error.type", code.outcome());
                    current.record("beaker.error.code", code.code());
                    if code.is_callers() {
                        tracing::info!(code = code.code(), error = %message, "refused");
                    } else {
                        current.record("otel.status_code", "ERROR");
                        tracing::error!(code = code.code(), error = %message, "failed");
                    }
                }
                Reply::Replay { error, .. } => {
                    current.record("beaker.outcome", "replay");
                    if let Some((code, _)) = error {
                        current.record("beaker.error.code", code);
                    }
                    tracing::info!("retry with a known idempotency key: stored reply sent again")
                }
            }
            self.send(endpoint, &message, &reply, received)
                .instrument(tracing::info_span!("respond"))
                .await;
            reply
        }
        .instrument(span)
        .await;
        let outcome = match &reply {
            Reply::Ok { .. } => "ok",
            Reply::Err { code, .. } => code.outcome(),
            Reply::Replay { .. } => "replay",
        };
        self.metrics.record_request(
            endpoint.name(),
            endpoint.subject(),
            outcome,
            received.elapsed(),
        );
    }

    /// Decodes, validates and executes one request. Never panics on input.
    /// `key` is the request's idempotency key (its `Nats-Msg-Id` header).
    pub(super) async fn send(
        &self,
        endpoint: Endpoint,
        message: &Message,
        reply: &Reply,
        received: Instant,
    ) {
        let checked = self.checked(endpoint, reply);
        let reply = checked.as_ref().unwrap_or(reply);
        let body = Bytes::from(reply.body_text());
        let error = reply.failure();
        self.registry.record(endpoint, received.elapsed(), error);
        let Some(reply_to) = message.reply.clone() else {
            tracing::debug!("request without a reply subject; nothing to answer");
            return;
        };
        let result = match error {
            None => self.client.publish(reply_to, body).await,
            Some((code, message)) => {
                let mut headers = HeaderMap::new();
                let status = ErrorCode::from_code(code).map_or("Error", ErrorCode::status);
                headers.insert(ERROR_HEADER, header_text(message, status));
                headers.insert(ERROR_CODE_HEADER, code.to_string().as_str());
                self.client
                    .publish_with_headers(reply_to, headers, body)
                    .await
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot send a reply");
        }
    }

    /// `None` when the reply matches its schema; otherwise the 500 to send
    /// instead. Stored replies were checked when first sent.
    fn checked(&self, endpoint: Endpoint, reply: &Reply) -> Option<Reply> {
        if matches!(reply, Reply::Replay { .. }) {
            return None;
        }
        let value: Value = serde_json::from_str(&reply.body_text()).ok()?;
        match self.inventory.schemas().check_response(endpoint, &value) {
            Ok(()) => None,
            Err(e) => {
                tracing::error!(error = %e, "reply does not match its schema; sending 500");
                Some(internal_error())
            }
        }
    }
}

/// A header value: the message if it is a valid header value, else the
/// status text. Header values cannot carry line breaks.
fn header_text(message: &str, fallback: &str) -> HeaderValue {
    let clean: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    clean
        .parse::<HeaderValue>()
        .unwrap_or_else(|_| HeaderValue::from(fallback))
}
