//! Beaker's host: everything with a side effect (NATS, Postgres, the
//! rules sandbox) lives here; the business rules live in a WebAssembly
//! component behind `wit/inventory.wit`.

pub mod app;
pub mod bounds;
pub mod cli;
pub mod config;
pub mod events;
pub mod gateway;
pub mod health;
pub mod metrics;
pub mod micro;
pub mod nats;
pub mod rules;
pub mod schema;
pub mod service;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod wire;
