//! One request followed from the caller's span through the host, the rules,
//! the database and the event; metrics that count exactly; readiness that
//! follows the database; logs with trace ids and without secrets.
//!
//! One module per signal; the trace context the callers send lives here.

mod dashboard;
mod logs;
mod metrics;
mod otlp;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

const CALLER_SPAN: &str = "00f067aa0ba902b7";
