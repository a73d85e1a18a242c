//! One request on the wire: its span (continuing the caller's trace), the
//! inventory's reply, the reply checked against its schema and sent with
//! the NATS micro error headers, the request counted.

use tokio::time::Instant;

use async_nats::{HeaderMap, HeaderValue, Message};
use bytes::Bytes;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use super::Service;
use crate::contract::wire::{
    ERROR_CODE_HEADER, ERROR_HEADER, Endpoint, ErrorCode, IDEMPOTENCY_HEADER, Reply,
};
use crate::inventory::internal_error;
use crate::propagation::RequestTrace;
use crate::rules::Rules;

impl Service {
    pub(super) async fn answer(&self, endpoint: Endpoint, message: Message, received: Instant) {
        let request_id = Uuid::now_v7();
        let rules = self.inventory.rules().active();
        let (span, trace) = request_span(endpoint, request_id, &message, &rules);
        let exported = crate::propagation::spans_exported();
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
                    trace,
                    &rules,
                )
                .await;
            let current = tracing::Span::current();
            match &reply {
                Reply::History(page) => {
                    if exported {
                        current.set_attribute("beaker.outcome", "ok");
                    }
                    tracing::debug!(sku = page.sku, movements = page.movements.len(), "answered");
                }
                Reply::Ok { sku, level } => {
                    if exported {
                        current.set_attribute("beaker.outcome", "ok");
                    }
                    tracing::debug!(sku, level, "answered");
                }
                Reply::Err {
                    code,
                    message: error,
                } => {
                    if exported {
                        current.set_attribute("beaker.outcome", code.outcome());
                        current.set_attribute("error.type", code.outcome());
                        current.set_attribute("beaker.error.code", i64::from(code.code()));
                    }
                    // Read again here, off the common path, rather than
                    // recorded on the span for every request.
                    let sku = sku_of(&message.payload);
                    if code.is_callers() {
                        tracing::info!(code = code.code(), sku, error = %error, "refused");
                    } else {
                        if exported {
                            current.set_status(opentelemetry::trace::Status::error(code.outcome()));
                        }
                        tracing::error!(code = code.code(), sku, error = %error, "failed");
                    }
                }
                Reply::Replay { error, .. } => {
                    if exported {
                        current.set_attribute("beaker.outcome", "replay");
                        if let Some((code, _)) = error {
                            current.set_attribute("beaker.error.code", i64::from(*code));
                        }
                    }
                    tracing::info!("retry with a known idempotency key: stored reply sent again")
                }
            }
            self.send(endpoint, &message, &reply, received)
                .instrument(tracing::debug_span!("respond"))
                .await;
            reply
        }
        .instrument(span)
        .await;
        let outcome = match &reply {
            Reply::Ok { .. } | Reply::History(_) => "ok",
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
        let checked = Self::checked(reply);
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
    /// instead. Checked on the typed reply ([`crate::contract::shape`]),
    /// which the tests hold to the JSON Schema's exact answers.
    fn checked(reply: &Reply) -> Option<Reply> {
        match crate::contract::shape::check_reply(reply) {
            Ok(()) => None,
            Err(e) => {
                tracing::error!(error = %e, "reply does not match its schema; sending 500");
                Some(internal_error())
            }
        }
    }
}

/// The request's span and its place in its trace.
///
/// Log lines inside the request carry the span's fields, so the span has
/// only what every line should say (the request id and the trace and span
/// ids), all given when it is created: the JSON log layer formats a span's
/// fields again on every later `record`. The attributes a trace backend
/// wants (the caller's parent, messaging attributes, the rules, the SKU,
/// the outcome) go to the OpenTelemetry span alone, and only when spans
/// are exported.
fn request_span(
    endpoint: Endpoint,
    request_id: Uuid,
    message: &Message,
    rules: &Rules,
) -> (tracing::Span, RequestTrace) {
    if !crate::propagation::spans_exported() {
        let trace = RequestTrace::from_headers(message.headers.as_ref());
        let span = tracing::info_span!(
            "request",
            otel.name = endpoint.subject(),
            beaker.request_id = %request_id,
            trace_id = %trace.trace_id(),
            span_id = %trace.span_id(),
        );
        return (span, trace);
    }
    let span = tracing::info_span!(
        "request",
        otel.name = endpoint.subject(),
        otel.kind = "server",
        beaker.request_id = %request_id,
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
    let trace = RequestTrace::of_span(&span)
        .unwrap_or_else(|| RequestTrace::from_headers(message.headers.as_ref()));
    span.record("trace_id", trace.trace_id());
    span.record("span_id", trace.span_id());
    for (key, value) in [
        ("messaging.system", "nats".to_string()),
        ("messaging.operation.name", "process".to_string()),
        ("messaging.destination.name", endpoint.subject().to_string()),
        ("rules.name", rules.name.clone()),
        ("rules.version", rules.version.clone()),
        ("rules.digest", rules.digest.to_string()),
    ] {
        span.set_attribute(key, value);
    }
    (span, trace)
}

/// The SKU a request names, if it names one, for the log line of a
/// refusal or a failure.
fn sku_of(payload: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Named {
        #[serde(rename = "product-sku")]
        sku: String,
    }
    serde_json::from_slice::<Named>(payload).ok().map(|n| n.sku)
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
