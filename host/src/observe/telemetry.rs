//! Logs, traces and metrics.
//!
//! - **Logs**: `RUST_LOG`-style filtering, human lines on a terminal and
//!   JSON lines elsewhere (or as chosen with `--log-format`), on stderr.
//!   Lines logged inside a request carry its `trace_id` and `span_id`.
//! - **Traces**: when an OTLP endpoint is configured with the standard
//!   `OTEL_*` variables, `tracing` spans become OpenTelemetry spans and are
//!   exported. Trace context flows from callers through the host to event
//!   consumers (W3C `traceparent`), and ledger rows and logs carry trace
//!   ids, whether or not spans are exported (see `propagation`).
//! - **Metrics**: one OpenTelemetry meter provider with two readers: a
//!   Prometheus registry served at `/metrics`, and, when an OTLP endpoint
//!   is configured, a periodic OTLP exporter.
//!
//! Configuration is the standard OpenTelemetry environment only:
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (and the per-signal `…_TRACES_ENDPOINT`,
//! `…_METRICS_ENDPOINT`), `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf`,
//! the default, `http/json` or `grpc`), `OTEL_EXPORTER_OTLP_HEADERS`,
//! `OTEL_SERVICE_NAME` (default `beaker`), `OTEL_RESOURCE_ATTRIBUTES`,
//! `OTEL_SDK_DISABLED`, `OTEL_BSP_*`, `OTEL_METRIC_EXPORT_INTERVAL`.

use std::io::IsTerminal;

use opentelemetry::global;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable on a terminal, JSON otherwise.
    #[default]
    Auto,
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot set up the OTLP {signal} exporter: {reason}")]
    Exporter {
        signal: &'static str,
        reason: String,
    },
    #[error("cannot set up the Prometheus registry: {0}")]
    Prometheus(String),
}

/// What stays alive while the process runs, and is flushed at the end.
pub struct Telemetry {
    tracer_provider: SdkTracerProvider,
    meter_provider: SdkMeterProvider,
    registry: prometheus::Registry,
    /// Whether anything is sent to an OTLP endpoint.
    pub exporting: bool,
    flushed: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry")
            .field("exporting", &self.exporting)
            .finish_non_exhaustive()
    }
}

fn wants_json(format: LogFormat) -> bool {
    match format {
        LogFormat::Json => true,
        LogFormat::Text => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    }
}

fn log_layer<S>(format: LogFormat, default_filter: &str) -> Box<dyn Layer<S> + Send + Sync>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a> + Send + Sync,
{
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    // The NATS client's debug lines print server URLs with their user info
    // (tokens, passwords): never below info, whatever RUST_LOG asks. Only
    // where something is verbose: the directive also turns its info lines
    // on, which a quiet default (the client commands') must not.
    let verbose = filter
        .max_level_hint()
        .is_none_or(|level| level > LevelFilter::INFO);
    let filter = match "async_nats::connector=info".parse() {
        Ok(cap) if verbose => filter.add_directive(cap),
        _ => filter,
    };
    let builder = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    if wants_json(format) {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(true)
            .with_filter(filter)
            .boxed()
    } else {
        builder.with_target(false).with_filter(filter).boxed()
    }
}

/// Logging only, for the client commands.
pub fn init_logging(format: LogFormat, default_filter: &str) {
    let _ = tracing_subscriber::registry()
        .with(log_layer(format, default_filter))
        .try_init();
}

/// The OTLP protocol for a signal, from the standard variables; the
/// specification's default is `http/protobuf`.
fn protocol(signal: &str) -> Protocol {
    let value = std::env::var(format!("OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"))
        .or_else(|_| std::env::var("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_default();
    match value.trim() {
        "grpc" => Protocol::Grpc,
        "http/json" => Protocol::HttpJson,
        _ => Protocol::HttpBinary,
    }
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.trim().is_empty())
}

/// Whether a signal has somewhere to go.
fn exporting(signal: &str) -> bool {
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.trim() == "true");
    !disabled
        && (env_set("OTEL_EXPORTER_OTLP_ENDPOINT")
            || env_set(&format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")))
}

fn resource() -> Resource {
    let builder = Resource::builder();
    // OTEL_SERVICE_NAME wins; the detectors read it and OTEL_RESOURCE_ATTRIBUTES.
    let builder = if env_set("OTEL_SERVICE_NAME") {
        builder
    } else {
        builder.with_service_name(env!("CARGO_PKG_NAME"))
    };
    builder
        .with_attribute(opentelemetry::KeyValue::new(
            "service.version",
            env!("CARGO_PKG_VERSION"),
        ))
        .build()
}

/// Sets up logs, traces and metrics for `beaker serve`. Must run inside
/// the Tokio runtime (the gRPC exporter needs it).
pub fn init_service(format: LogFormat, default_filter: &str) -> Result<Telemetry, TelemetryError> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let resource = resource();

    let mut traces = SdkTracerProvider::builder().with_resource(resource.clone());
    let export_traces = exporting("TRACES");
    if export_traces {
        let exporter = match protocol("TRACES") {
            Protocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build(),
            http => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(http)
                .build(),
        }
        .map_err(|e| TelemetryError::Exporter {
            signal: "traces",
            reason: e.to_string(),
        })?;
        traces = traces.with_batch_exporter(exporter);
    }
    let tracer_provider = traces.build();
    global::set_tracer_provider(tracer_provider.clone());

    let registry = prometheus::Registry::new();
    let prometheus = opentelemetry_prometheus::exporter()
        .with_registry(registry.clone())
        .build()
        .map_err(|e| TelemetryError::Prometheus(e.to_string()))?;
    let mut metrics = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_reader(prometheus);
    let export_metrics = exporting("METRICS");
    if export_metrics {
        let exporter = match protocol("METRICS") {
            Protocol::Grpc => opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .build(),
            http => opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_protocol(http)
                .build(),
        }
        .map_err(|e| TelemetryError::Exporter {
            signal: "metrics",
            reason: e.to_string(),
        })?;
        metrics = metrics.with_reader(PeriodicReader::builder(exporter).build());
    }
    let meter_provider = metrics.build();
    global::set_meter_provider(meter_provider.clone());

    // Spans become OpenTelemetry spans only when they are exported: that
    // layer builds a span, with its attributes, for every tracing span it
    // sees, which is a large share of a request's cost. Without it, a
    // request's trace ids are still continued and recorded (see
    // `propagation::RequestTrace`), and the inner spans (validation, the
    // transaction, its statements, the rules call, the reply) are debug
    // spans that nothing builds unless RUST_LOG asks for them.
    crate::propagation::set_spans_exported(export_traces);
    let otel = export_traces.then(|| {
        tracing_opentelemetry::layer()
            .with_tracer(tracer_provider.tracer("beaker"))
            .with_error_records_to_exceptions(true)
            // Parents are the tracing spans' own; attaching each span's
            // context to the thread on every poll would cost for nothing.
            .with_context_activation(false)
            .with_filter(EnvFilter::new(EXPORTED))
    });
    let _ = tracing_subscriber::registry()
        .with(log_layer(format, default_filter))
        .with(otel)
        .try_init();

    Ok(Telemetry {
        tracer_provider,
        meter_provider,
        registry,
        exporting: export_traces || export_metrics,
        flushed: std::sync::atomic::AtomicBool::new(false),
    })
}

/// What becomes an OpenTelemetry span or span event, whatever RUST_LOG
/// says about logs: the host's own spans and events down to debug (the
/// request's inner steps are debug spans), nothing from the libraries
/// below (nor the OpenTelemetry SDK's own diagnostics).
///
/// An `EnvFilter` of static directives, like the log layer's. Filter
/// functions here (`filter_fn`, and `DynFilterFn` with a callsite filter)
/// were tried beside the log layer's `EnvFilter` and left spans unseen at
/// random: their close never reached this layer, so they were never
/// exported, and log lines lost the request's ids. The OTLP tests catch
/// that.
const EXPORTED: &str =
    "info,beaker=debug,async_nats=off,sqlx=off,wasmtime=off,cranelift=off,opentelemetry=off";

impl Telemetry {
    /// The Prometheus text exposition of every metric.
    pub fn render_prometheus(&self) -> Result<String, TelemetryError> {
        use prometheus::Encoder;
        let mut buffer = Vec::new();
        prometheus::TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            .map_err(|e| TelemetryError::Prometheus(e.to_string()))?;
        String::from_utf8(buffer).map_err(|e| TelemetryError::Prometheus(e.to_string()))
    }

    /// Exports what is buffered and stops the exporters, in a thread of
    /// its own (the exporters block) and for at most `within`: an OTLP
    /// endpoint that does not answer must not hold up the stop.
    pub async fn flush(self: &std::sync::Arc<Self>, within: std::time::Duration) {
        let telemetry = self.clone();
        let flushing = tokio::task::spawn_blocking(move || telemetry.shutdown());
        if tokio::time::timeout(within, flushing).await.is_err() {
            tracing::warn!(
                within_ms = within.as_millis() as u64,
                "telemetry not flushed in time; what was buffered is dropped"
            );
        }
    }

    /// Exports what is buffered and stops the exporters, once.
    pub fn shutdown(&self) {
        if self.flushed.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        if let Err(e) = self.tracer_provider.force_flush() {
            tracing::warn!(error = %e, "cannot flush traces");
        }
        let _ = self.tracer_provider.shutdown();
        if let Err(e) = self.meter_provider.force_flush() {
            tracing::warn!(error = %e, "cannot flush metrics");
        }
        let _ = self.meter_provider.shutdown();
    }
}
