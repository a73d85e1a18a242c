//! Beaker's host: everything with a side effect (NATS, Postgres, the
//! rules sandbox) lives here; the business rules live in a WebAssembly
//! component behind `wit/inventory.wit`.
//!
//! # Layout
//!
//! Modules stand in layers, listed from the top; a module imports only
//! from the layers below its own, never from one above, so each layer can
//! be read, tested and changed without those above it.
//!
//! | layer | module | its job |
//! | --- | --- | --- |
//! | command line | [`cli`] | the `beaker` commands: parse, run one, print its errors |
//! | | [`config`] | environment and flags (the only clap besides `cli`), checked once into each module's settings |
//! | start and stop | [`startup`] | `beaker serve` and `beaker gateway`: wire the parts, say `ready`, stop them in order under one deadline |
//! | watching | [`observe`] | logs, traces and metrics set up; `/metrics`, `/healthz`, `/readyz` |
//! | edges | [`service`] | the `stock.*` endpoints on NATS: subscriptions, requests in flight, replies; micro discovery |
//! | | [`gateway`] | HTTP to NATS and back, shaped like the Synadia Cloud gateway; the console and its operator routes (discovery through [`service`]'s client half, the rules bucket); the OpenAPI and AsyncAPI documents |
//! | | [`events`] | the JetStream stream, the outbox relay, its liveness |
//! | core | [`inventory`] | decode, validate, decide, store, answer — without NATS, so tests drive it directly |
//! | | [`metrics`] | the instruments every part above records into |
//! | parts | [`rules`] | the WebAssembly rules: engine, sandbox, swaps, shadow, the bucket |
//! | | [`store`] | Postgres: levels, ledger, outbox, idempotency keys |
//! | contract | [`contract`] | the wire format, the JSON Schemas of `schemas/`, the bounds |
//! | base | [`nats`] | connecting to NATS, and the connection's state |
//! | | [`propagation`] | W3C trace context in NATS headers and the outbox |
//! | | [`shutdown`] | the stop signal, the flag tasks watch, the deadline |

pub mod cli;
pub mod config;

pub mod startup;

pub mod observe;

pub mod events;
pub mod gateway;
pub mod service;

pub mod inventory;
pub mod metrics;

pub mod rules;
pub mod store;

pub mod contract;

pub mod nats;
pub mod propagation;
pub mod shutdown;
