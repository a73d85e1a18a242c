//! End-to-end tests: the real `beaker` binary against its own nats-server
//! and its own Postgres database, one module per area. They build into one
//! test binary (linking one is much faster than linking sixteen); nextest
//! still runs every test in its own process.

mod api_fuzz;
mod asyncapi;
mod bad_input;
mod concurrency;
mod console;
mod consumers;
mod discovery;
mod docs;
mod events;
mod faults;
mod gateway;
mod group_commit;
mod history;
mod idempotency;
mod lifecycle;
mod limits;
mod observability;
mod openapi;
mod outbox;
mod properties;
mod rules_lifecycle;
mod rules_new;
mod sandbox;
mod secure_nats;
mod shutdown;
mod stock;
