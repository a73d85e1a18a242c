//! The contract with callers: the wire format the Go service defined
//! (subjects, JSON shapes, the micro error headers), the JSON Schemas in
//! `schemas/` that every request, reply and event is checked against, and
//! the bounds they state. It depends on nothing else of the host.

pub mod bounds;
pub mod schema;
pub mod shape;
pub mod wire;
