//! Trace context across NATS: W3C `traceparent`/`tracestate` read from a
//! request's headers, and written into the outbox with the events a
//! request commits, so that a consumer continues the request's trace. A
//! tracer provider is always installed (see `observe::telemetry`), so
//! this works whether or not spans are exported.

use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector};

/// Reads W3C trace context from NATS headers.
pub struct HeaderExtractor<'a>(pub &'a async_nats::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    /// Header names compare without case: HTTP gateways may change it.
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| AsRef::<str>::as_ref(*name).eq_ignore_ascii_case(key))
            .and_then(|(_, values)| values.first())
            .map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_ref()).collect()
    }
}

/// Writes W3C trace context as (name, value) pairs, e.g. into the outbox.
#[derive(Debug, Default)]
pub struct PairInjector(pub Vec<(String, String)>);

impl Injector for PairInjector {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_string(), value));
    }
}

/// The trace context of the current span as `traceparent`/`tracestate`
/// pairs.
pub fn current_trace_headers() -> Vec<(String, String)> {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let context = tracing::Span::current().context();
    let mut injector = PairInjector::default();
    global::get_text_map_propagator(|p| p.inject_context(&context, &mut injector));
    injector.0
}

/// Trace context from (name, value) pairs.
pub fn context_from_pairs(pairs: &[(String, String)]) -> opentelemetry::Context {
    struct Pairs<'a>(&'a [(String, String)]);
    impl Extractor for Pairs<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v.as_str())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.iter().map(|(k, _)| k.as_str()).collect()
        }
    }
    global::get_text_map_propagator(|p| p.extract(&Pairs(pairs)))
}
