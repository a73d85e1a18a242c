//! Events: the JetStream stream that keeps them, and the relay that moves
//! committed outbox rows into it.
//!
//! An event is published if and only if its change committed: it is
//! written to the `outbox` table in the change's transaction, and only the
//! relay publishes it, with `Nats-Msg-Id` set to the row's `msg_id`. The
//! relay waits for JetStream's ack before marking the row published, so a
//! crash or an outage at any point leaves the row pending, to be published
//! again later; JetStream discards the second copy of a `Nats-Msg-Id` seen
//! within the stream's duplicate window. Consumers therefore see each event
//! exactly once.
//!
//! - [`stream`]: creating or updating the stream;
//! - [`relay`]: the relay's rounds, each bounded in time, abandoned (its
//!   claim released) when the NATS connection drops or comes back;
//! - [`liveness`]: what the relay is doing, sampled for the metrics, the
//!   readiness check and a warning when it stops making progress.

pub mod liveness;
pub mod relay;
pub mod stream;

pub use liveness::{Liveness, RelayState};
pub use relay::{Relay, RelaySettings};
pub use stream::{EventsError, StreamSettings, ensure_stream, keep_ensuring};
