//! What a database failure means for the caller: try again later, decide
//! again, a defect — or, when the connection broke during COMMIT, that
//! nobody can know whether the change was applied.

/// Why a database operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached, is shutting down, timed out, or no
    /// connection is free: retrying later may succeed.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A concurrent transaction got in the way: another request created
    /// the same product at the same moment, or Postgres broke a deadlock
    /// or a serialization conflict. Nothing was written; the change should
    /// be decided again against the rows as they now are.
    #[error("a concurrent change got in the way")]
    Contended,
    /// Anything else: a defect, not a caller's mistake.
    #[error("database error: {0}")]
    Failed(String),
    /// The connection failed while committing: the change may or may not
    /// have been applied, and only a retry with the same idempotency key
    /// can tell.
    #[error("the outcome of a commit is unknown: {0}")]
    CommitUnknown(String),
    #[error("bad database URL: {0}")]
    Config(String),
    #[error("migration failed: {0}")]
    Migrate(String),
}

impl StoreError {
    pub(crate) fn from_sqlx(error: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &error {
            E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
                StoreError::Unavailable(error.to_string())
            }
            E::Database(db) => {
                let code = db.code().unwrap_or_default();
                // 40001 serialization failure, 40P01 deadlock: deciding
                // again succeeds. 57014 query_canceled (statement timeout),
                // 57P0x shutdown, 08xxx connection exceptions, 53xxx
                // insufficient resources, other 40xxx: try again later.
                if code == "40001" || code == "40P01" {
                    StoreError::Contended
                } else if code == "57014"
                    || code.starts_with("57P")
                    || code.starts_with("08")
                    || code.starts_with("53")
                    || code.starts_with("40")
                {
                    StoreError::Unavailable(db.message().to_string())
                } else {
                    StoreError::Failed(format!("{} ({code})", db.message()))
                }
            }
            _ => StoreError::Failed(error.to_string()),
        }
    }
}

/// A failed COMMIT: one the database refused was rolled back, but one
/// whose connection broke may have been applied.
pub(crate) fn commit_failure(error: sqlx::Error) -> StoreError {
    match StoreError::from_sqlx(error) {
        StoreError::Unavailable(detail) => StoreError::CommitUnknown(detail),
        other => other,
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        Self::from_sqlx(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_cut_off_is_unknown_and_a_refused_one_is_not() {
        let cut = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(matches!(
            commit_failure(sqlx::Error::Io(cut)),
            StoreError::CommitUnknown(_)
        ));
        assert!(matches!(
            commit_failure(sqlx::Error::PoolTimedOut),
            StoreError::CommitUnknown(_)
        ));
        assert!(matches!(
            commit_failure(sqlx::Error::Protocol("unexpected".into())),
            StoreError::Failed(_)
        ));
    }
}
