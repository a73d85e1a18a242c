//! A request's record: the request and every attempt at it, and the status
//! they settle to.

use super::{Outcome, Planned};

/// A request and every attempt at it.
#[derive(Debug, Clone)]
pub struct Record {
    pub planned: Planned,
    /// Sent during the seeding that precedes the load.
    pub seed: bool,
    /// First sent after the fault was over ([`Load::release`](super::Load::release)).
    pub after_recovery: bool,
    pub attempts: Vec<Outcome>,
}

/// A record's settled status, across its attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Acknowledged,
    /// A definitive error reply (4xx, 500).
    Refused(u16),
    /// Only 503s, or 503s and lost answers.
    Unavailable,
    /// Never delivered.
    NoResponders,
    /// Never answered: settled through the ledger.
    Lost,
}

impl Record {
    pub fn status(&self) -> Status {
        if self
            .attempts
            .iter()
            .any(|a| matches!(a, Outcome::Ok { .. }))
        {
            return Status::Acknowledged;
        }
        if let Some(code) = self.attempts.iter().find_map(|a| match a {
            Outcome::Refused { code, .. } if *code != 503 => Some(*code),
            _ => None,
        }) {
            return Status::Refused(code);
        }
        if self
            .attempts
            .iter()
            .any(|a| matches!(a, Outcome::Lost { .. }))
        {
            return Status::Lost;
        }
        if self
            .attempts
            .iter()
            .any(|a| matches!(a, Outcome::Refused { .. }))
        {
            return Status::Unavailable;
        }
        Status::NoResponders
    }
}
