//! A minimal OTLP/HTTP receiver for tests: it accepts protobuf trace and
//! metric exports, keeps what arrived, and answers 200, as a collector
//! would.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;

#[derive(Default)]
struct Received {
    spans: Vec<Span>,
    metric_names: Vec<String>,
}

/// A running receiver; point `OTEL_EXPORTER_OTLP_ENDPOINT` at [`Self::url`].
pub struct OtlpReceiver {
    pub url: String,
    received: Arc<Mutex<Received>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for OtlpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn traces(State(received): State<Arc<Mutex<Received>>>, body: Bytes) -> &'static str {
    if let Ok(request) = ExportTraceServiceRequest::decode(body) {
        let mut received = received.lock().unwrap_or_else(PoisonError::into_inner);
        for resource in request.resource_spans {
            for scope in resource.scope_spans {
                received.spans.extend(scope.spans);
            }
        }
    }
    ""
}

async fn metrics(State(received): State<Arc<Mutex<Received>>>, body: Bytes) -> &'static str {
    if let Ok(request) = ExportMetricsServiceRequest::decode(body) {
        let mut received = received.lock().unwrap_or_else(PoisonError::into_inner);
        for resource in request.resource_metrics {
            for scope in resource.scope_metrics {
                received
                    .metric_names
                    .extend(scope.metrics.into_iter().map(|m| m.name));
            }
        }
    }
    ""
}

impl OtlpReceiver {
    pub async fn start() -> Result<Self> {
        let received = Arc::new(Mutex::new(Received::default()));
        let app = Router::new()
            .route("/v1/traces", post(traces))
            .route("/v1/metrics", post(metrics))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self {
            url,
            received,
            task,
        })
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .spans
            .clone()
    }

    /// Names of every metric received so far.
    pub fn metric_names(&self) -> Vec<String> {
        self.received
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .metric_names
            .clone()
    }

    /// Waits until `found` holds for the spans received, or fails.
    pub async fn wait_for_spans(
        &self,
        what: &str,
        found: impl Fn(&[Span]) -> bool,
    ) -> Result<Vec<Span>> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans();
            if found(&spans) {
                return Ok(spans);
            }
            if Instant::now() > deadline {
                let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
                bail!("timed out waiting for {what}; spans so far: {names:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A span attribute as text, if present.
pub fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    attributes
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| match &a.value {
            Some(AnyValue { value: Some(value) }) => Some(match value {
                any_value::Value::StringValue(s) => s.clone(),
                any_value::Value::IntValue(i) => i.to_string(),
                any_value::Value::BoolValue(b) => b.to_string(),
                any_value::Value::DoubleValue(d) => d.to_string(),
                other => format!("{other:?}"),
            }),
            _ => None,
        })
}

/// Lower-case hex of an id.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
