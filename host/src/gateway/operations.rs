//! The routes an operator's view needs beside the messaging ones: the
//! running instances, and the rules bucket's deployments, which only
//! operator tokens may change.
//!
//! | route | answer | who |
//! | --- | --- | --- |
//! | `GET /v1/instances` | every instance's `$SRV.STATS` reply, sorted by id | any token |
//! | `GET /v1/rules` | what the rules bucket names, and whether the caller may change it | any token |
//! | `POST /v1/rules/promote` | the shadow rules become active | operator token |
//! | `POST /v1/rules/rollback` | the previous deployment becomes active | operator token |
//!
//! Instances answer discovery without a queue group, so one request
//! reaches them all; a request/reply through `/v1/nats/subjects` returns
//! only the first answer, so this route gathers every answer within the
//! discovery window instead. `$SRV.STATS` alone is enough: it carries the
//! instance's metadata (its rules) as well as its counters. It uses the
//! client half of [`crate::service::micro`], the one place that speaks
//! the micro protocol.
//!
//! The rules routes read and change the bucket through
//! [`crate::rules::bucket`], exactly as `beaker rules status | promote |
//! rollback` do; they return once the bucket is written, and the
//! instances follow it within their poll interval (watch
//! `/v1/instances`).

use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::AppState;
use super::failure::Failure;
use super::middleware::Caller;
use crate::rules::bucket::{Bucket, BucketError, ChangeError, Deployments};
use crate::service::micro::{Verb, ask_all};

fn json_response(value: &impl Serialize) -> Result<Response, Failure> {
    let body = serde_json::to_vec(value).map_err(|e| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the answer: {e}"),
        )
    })?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response())
}

/// Refuses at once when the gateway has no NATS connection: a discovery
/// request would otherwise wait in the client's buffer and the caller
/// would read "no instances" where the truth is "no NATS".
fn connected(gw: &AppState) -> Result<(), Failure> {
    let state = gw.client.connection_state();
    match state {
        async_nats::connection::State::Connected => Ok(()),
        other => Err(Failure::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the gateway is not connected to NATS ({other})"),
        )),
    }
}

/// `GET /v1/instances`: every running instance's `$SRV.STATS` reply, as
/// it sent it (NATS micro `io.nats.micro.v1.stats_response`), sorted by
/// instance id; an empty array when none answered.
pub(super) async fn instances(State(gw): State<AppState>) -> Result<Response, Failure> {
    connected(&gw)?;
    let mut answers = ask_all(
        &gw.client,
        Verb::Stats,
        &gw.config.service,
        gw.config.discovery_window,
        None,
    )
    .await
    .map_err(|e| {
        Failure::new(
            StatusCode::BAD_GATEWAY,
            format!("cannot ask the instances on NATS: {e}"),
        )
    })?;
    answers.sort_by(|a, b| id_of(a).cmp(id_of(b)));
    json_response(&answers)
}

fn id_of(answer: &Value) -> &str {
    answer.get("id").and_then(Value::as_str).unwrap_or_default()
}

/// The answer of `GET /v1/rules`.
#[derive(Serialize)]
struct RulesView<'a> {
    bucket: &'a str,
    #[serde(flatten)]
    deployments: Deployments,
    /// Whether this caller may promote and roll back.
    operator: bool,
}

/// The configured bucket, or `None` when it was never created (nothing
/// was deployed through it yet).
async fn find_bucket(gw: &AppState) -> Result<(String, Option<Bucket>), Failure> {
    connected(gw)?;
    let Some(name) = gw.config.rules_bucket.clone() else {
        return Err(Failure::new(
            StatusCode::NOT_FOUND,
            "this gateway has no rules bucket configured (BEAKER_RULES_BUCKET)",
        ));
    };
    let js = async_nats::jetstream::ContextBuilder::new()
        .timeout(gw.config.default_timeout)
        .build(gw.client.clone());
    let bucket = Bucket::find(&js, &name).await.map_err(bucket_failure)?;
    Ok((name, bucket))
}

fn bucket_failure(error: BucketError) -> Failure {
    Failure::new(StatusCode::BAD_GATEWAY, error.to_string())
}

/// `GET /v1/rules`: the active deployment with its history (newest
/// first) and the shadow, each `null` when there is none.
pub(super) async fn rules(
    State(gw): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, Failure> {
    let (name, bucket) = find_bucket(&gw).await?;
    let deployments = match bucket {
        Some(bucket) => bucket.deployments().await.map_err(bucket_failure)?,
        None => Deployments::default(),
    };
    json_response(&RulesView {
        bucket: &name,
        deployments,
        operator: caller == Caller::Operator,
    })
}

/// Who the deployments record for a change made through the gateway.
const GATEWAY_OPERATOR: &str = "gateway (operator token)";

/// Only operator tokens change the rules; everyone else is told why.
fn operator_only(caller: Caller) -> Result<(), Failure> {
    match caller {
        Caller::Operator => Ok(()),
        Caller::Client => Err(Failure::new(
            StatusCode::FORBIDDEN,
            "promoting and rolling back the rules needs an operator token \
             (BEAKER_GATEWAY_OPERATOR_TOKENS); this token is not one",
        )),
        Caller::Anonymous => Err(Failure::new(
            StatusCode::FORBIDDEN,
            "promoting and rolling back the rules needs an operator token; this \
             gateway serves callers without a token and so has none",
        )),
    }
}

fn change_failure(error: ChangeError) -> Failure {
    match error {
        ChangeError::Bucket(e) => bucket_failure(e),
        refused => Failure::new(StatusCode::CONFLICT, refused.to_string()),
    }
}

/// `POST /v1/rules/promote`: the shadow becomes the active rules.
/// Answers `{"active": …}`, what is active now.
pub(super) async fn promote(
    State(gw): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, Failure> {
    operator_only(caller)?;
    let (_, bucket) = find_bucket(&gw).await?;
    let bucket = bucket.ok_or_else(|| change_failure(ChangeError::NoShadow))?;
    let active = bucket
        .promote_shadow(Some(GATEWAY_OPERATOR.into()))
        .await
        .map_err(change_failure)?;
    tracing::info!(
        rules = %active.name,
        version = %active.version,
        digest = %active.digest,
        "rules promoted through the gateway"
    );
    json_response(&serde_json::json!({ "active": active }))
}

/// `POST /v1/rules/rollback`: the previous deployment becomes active
/// again. Answers `{"from": …, "to": …}`.
pub(super) async fn rollback(
    State(gw): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Response, Failure> {
    operator_only(caller)?;
    let (_, bucket) = find_bucket(&gw).await?;
    let bucket = bucket.ok_or_else(|| change_failure(ChangeError::NothingDeployed))?;
    let rolled_back = bucket
        .roll_back(None, Some(GATEWAY_OPERATOR.into()))
        .await
        .map_err(change_failure)?;
    tracing::info!(
        from = %rolled_back.from.describe(),
        to = %rolled_back.to.describe(),
        "rules rolled back through the gateway"
    );
    json_response(&rolled_back)
}
