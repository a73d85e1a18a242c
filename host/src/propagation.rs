//! Trace context across NATS: W3C `traceparent`/`tracestate` read from a
//! request's headers, and written into the outbox with the events a
//! request commits, so that a consumer continues the request's trace.
//!
//! A request's place in its trace is a [`RequestTrace`], passed explicitly
//! to the ledger row and the events' headers. When spans are exported it
//! is the request span's own context; when they are not, no span machinery
//! runs at all: the trace id is the caller's (or a new one) and the span id
//! a new random one, exactly what a span would have had.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::global;
use opentelemetry::propagation::{Extractor, Injector};
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState};
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};

static SPANS_EXPORTED: AtomicBool = AtomicBool::new(false);

/// Says, once at start, whether spans are exported (an OTLP endpoint is
/// configured, and the OpenTelemetry layer installed).
pub fn set_spans_exported(exported: bool) {
    SPANS_EXPORTED.store(exported, Ordering::Relaxed);
}

/// Whether spans are exported: if not, the request path builds none of
/// the spans' OpenTelemetry attributes.
pub fn spans_exported() -> bool {
    SPANS_EXPORTED.load(Ordering::Relaxed)
}

/// A request's trace id and its own span id, with the caller's trace
/// flags and state.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestTrace {
    context: SpanContext,
}

impl RequestTrace {
    /// Continues the trace of the caller's W3C headers, if any, with a new
    /// span id; otherwise starts a new trace.
    pub fn from_headers(headers: Option<&async_nats::HeaderMap>) -> RequestTrace {
        let ids = RandomIdGenerator::default();
        let parent = headers
            .filter(|h| has_traceparent(h))
            .map(|h| global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(h))))
            .map(|context| context.span().span_context().clone())
            .filter(SpanContext::is_valid);
        let (trace_id, flags, state) = match parent {
            Some(parent) => (
                parent.trace_id(),
                parent.trace_flags(),
                parent.trace_state().clone(),
            ),
            None => (
                ids.new_trace_id(),
                TraceFlags::SAMPLED,
                TraceState::default(),
            ),
        };
        RequestTrace {
            context: SpanContext::new(trace_id, ids.new_span_id(), flags, false, state),
        }
    }

    /// The trace of a span the OpenTelemetry layer records; `None` when it
    /// records none (no layer installed).
    pub fn of_span(span: &tracing::Span) -> Option<RequestTrace> {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let context = span.context().span().span_context().clone();
        context.is_valid().then_some(RequestTrace { context })
    }

    /// The trace id, 32 hex digits.
    pub fn trace_id(&self) -> String {
        self.context.trace_id().to_string()
    }

    /// This request's span id, 16 hex digits.
    pub fn span_id(&self) -> String {
        self.context.span_id().to_string()
    }

    /// `traceparent` (and `tracestate`) naming this request as the parent,
    /// for the events it commits.
    pub fn headers(&self) -> Vec<(String, String)> {
        let context = opentelemetry::Context::new().with_remote_span_context(self.context.clone());
        let mut injector = PairInjector::default();
        global::get_text_map_propagator(|p| p.inject_context(&context, &mut injector));
        // An empty `tracestate` says nothing; some readers refuse it.
        injector.0.retain(|(_, value)| !value.is_empty());
        injector.0
    }

    #[cfg(test)]
    fn ids(&self) -> (opentelemetry::trace::TraceId, opentelemetry::trace::SpanId) {
        (self.context.trace_id(), self.context.span_id())
    }
}

/// Whether a `traceparent` header is there under another case (HTTP
/// gateways may change it).
fn has_traceparent(headers: &async_nats::HeaderMap) -> bool {
    headers
        .iter()
        .any(|(name, _)| AsRef::<str>::as_ref(name).eq_ignore_ascii_case("traceparent"))
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::{SpanId, TraceId};
    use opentelemetry_sdk::propagation::TraceContextPropagator;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const CALLER: &str = "00f067aa0ba902b7";

    fn propagator() {
        global::set_text_map_propagator(TraceContextPropagator::new());
    }

    #[test]
    fn a_callers_trace_is_continued_with_a_span_of_its_own() {
        propagator();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("traceparent", format!("00-{TRACE}-{CALLER}-01").as_str());
        let trace = RequestTrace::from_headers(Some(&headers));
        assert_eq!(trace.trace_id(), TRACE);
        assert_ne!(trace.span_id(), CALLER);
        assert_eq!(trace.span_id().len(), 16);
        let written = trace.headers();
        assert_eq!(
            written,
            vec![(
                "traceparent".to_string(),
                format!("00-{TRACE}-{}-01", trace.span_id())
            )]
        );
    }

    #[test]
    fn without_a_valid_traceparent_a_new_trace_starts() {
        propagator();
        let mut broken = async_nats::HeaderMap::new();
        broken.insert("traceparent", "00-not-a-trace-01");
        for headers in [None, Some(&broken)] {
            let trace = RequestTrace::from_headers(headers);
            let (trace_id, span_id) = trace.ids();
            assert_ne!(trace_id, TraceId::INVALID);
            assert_ne!(span_id, SpanId::INVALID);
            assert_ne!(trace.trace_id(), TRACE);
        }
        assert_ne!(
            RequestTrace::from_headers(None).trace_id(),
            RequestTrace::from_headers(None).trace_id(),
            "every new trace is a trace of its own"
        );
    }

    #[test]
    fn a_header_name_in_another_case_is_read() {
        propagator();
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("TraceParent", format!("00-{TRACE}-{CALLER}-01").as_str());
        assert_eq!(RequestTrace::from_headers(Some(&headers)).trace_id(), TRACE);
    }
}
