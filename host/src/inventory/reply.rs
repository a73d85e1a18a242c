//! How each failure reads to the caller: the wire format's error replies,
//! with the error logged where it is ours.

use crate::contract::wire::{ErrorCode, Reply};
use crate::rules::{CallError, Rejection, Rules};
use crate::store::StoreError;

pub(super) fn key_reused(key: &str) -> Reply {
    Reply::error(
        ErrorCode::Conflict,
        format!("idempotency key {key} was already used for a different request"),
    )
}

pub(super) fn contended() -> Reply {
    Reply::error(
        ErrorCode::Unavailable,
        "the product is being changed by many requests at once; try again",
    )
}

pub fn internal() -> Reply {
    Reply::error(ErrorCode::Internal, "internal error; nothing was changed")
}

/// The reply to a request the rules refused.
pub fn rejected(rejection: Rejection) -> Reply {
    match rejection {
        Rejection::InvalidRequest(m) => Reply::error(ErrorCode::BadRequest, m),
        Rejection::UnknownProduct(m) => Reply::error(ErrorCode::NotFound, m),
        Rejection::RuleViolated(m) => Reply::error(ErrorCode::Conflict, m),
    }
}

pub(super) fn rules_failure(rules: &Rules, error: CallError) -> Reply {
    tracing::error!(
        violation = error.kind(),
        error = %error,
        rules = %rules.name,
        rules_version = %rules.version,
        "rules call failed"
    );
    match error {
        CallError::Exhausted(_) => Reply::error(
            ErrorCode::Unavailable,
            "the service is busy; try again shortly",
        ),
        _ => Reply::error(
            ErrorCode::Internal,
            "the inventory rules failed on this request; nothing was changed",
        ),
    }
}

pub(super) fn store_failure(error: StoreError) -> Reply {
    match error {
        StoreError::Unavailable(detail) => {
            tracing::error!(error = %detail, "database unavailable");
            Reply::error(
                ErrorCode::Unavailable,
                "the inventory database is unavailable; try again later",
            )
        }
        StoreError::CommitUnknown(detail) => {
            tracing::error!(error = %detail, "the database connection failed while committing");
            Reply::error(
                ErrorCode::Unavailable,
                "the inventory database failed while committing this change: it may or may \
                 not have been applied; retry with the same Nats-Msg-Id to find out",
            )
        }
        other => {
            tracing::error!(error = %other, "database failure");
            internal()
        }
    }
}
