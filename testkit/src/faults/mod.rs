//! Fault injection: a Postgres cluster of the test's own that it can stop
//! and start, a load driver that records every request and what came of
//! it, and the books check that holds the service to what its callers were
//! told.
//!
//! Every request carries a W3C `traceparent` with a trace id of its own.
//! The host writes that trace id into the ledger row of every change it
//! applies, so a request whose answer was lost in a fault can be settled
//! afterwards: it was applied exactly when the ledger holds its trace id.

mod books;
mod load;
mod postgres;

pub use books::{Books, LOW_STOCK_BELOW};
pub use load::{
    ANSWER_TIMEOUT, Load, Op, Outcome, Planned, Record, Status, Tally, attempt, connect, plan,
    retry_keyed, stock_up, wait_until_serving,
};
pub use postgres::{LocalPostgres, StopMode};
