//! The load of a fault scenario: requests planned from a seed, sent by
//! concurrent clients each on a NATS connection of its own, every attempt
//! recorded; the part after the fault held until it is over; keyed
//! requests retried as a client that lost track would.
//!
//! One module per job: planning and sending one request, recording what
//! came of it, driving the concurrent load, and the single-client steps
//! around it (seeding, retrying, probing, connecting).

mod client;
mod driver;
mod record;
mod request;

pub use client::{connect, retry_keyed, stock_up, wait_until_serving};
pub use driver::{ANSWER_TIMEOUT, Load, Tally};
pub use record::{Record, Status};
pub use request::{Op, Outcome, Planned, attempt, plan};
