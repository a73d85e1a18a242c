//! The operator routes: every running instance from one call, the rules
//! bucket's deployments, and promote/rollback — refused (403, nothing
//! changed) for an ordinary token, done for an operator token.

use anyhow::Result;
use beaker_testkit::{
    BeakerConfig, GATEWAY_TOKEN, Http, HttpReply, TestEnv, beaker_cli, sha256_file, wait_for_rules,
    wasm,
};
use reqwest::Method;
use serde_json::Value;

/// The operator token these tests give the gateway.
pub const OPERATOR_TOKEN: &str = "test-operator-token-9Kd4v";

/// `beaker serve --gateway` with an operator token beside the ordinary one.
pub fn with_operator(config: BeakerConfig) -> BeakerConfig {
    config
        .with_gateway()
        .env("BEAKER_GATEWAY_OPERATOR_TOKENS", OPERATOR_TOKEN)
}

/// Deploys `rules` through the bucket with the CLI (`--shadow` when
/// `shadow`), waiting for every instance.
pub fn deploy(env: &TestEnv, rules: &str, shadow: bool) -> Result<()> {
    let path = wasm(rules);
    let path = path.to_string_lossy().to_string();
    let mut args = vec!["rules", "deploy"];
    if shadow {
        args.push("--shadow");
    }
    args.push(&path);
    let output = beaker_cli(&env.nats.url(), &args)?;
    anyhow::ensure!(
        output.status.success(),
        "deploy {rules}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

async fn post(http: &Http, path: &str) -> Result<HttpReply> {
    let url = format!("{}{path}", http.base);
    http.send(http.authorized(Method::POST, &url)).await
}

async fn get(http: &Http, path: &str) -> Result<HttpReply> {
    let url = format!("{}{path}", http.base);
    http.send(http.authorized(Method::GET, &url)).await
}

fn active_name(rules: &Value) -> &str {
    rules["active"]["name"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_are_listed_and_only_operators_change_the_rules() -> Result<()> {
    let env = TestEnv::start_with("gateway_operator", with_operator).await?;
    let _second = env.start_another(|c| c)?;
    let base = env.beaker.gateway_url()?;
    let client = Http::new(&base, GATEWAY_TOKEN);
    let operator = Http::new(&base, OPERATOR_TOKEN);

    // Both instances, each with its rules and counters, from one call.
    wait_for_rules(&env.client, 2, "both instances", |_| true).await?;
    let listed = get(&client, "/v1/instances").await?;
    assert_eq!(listed.status, 200, "{:?}", listed.gateway_error());
    let instances = listed.json();
    let instances = instances.as_array().cloned().unwrap_or_default();
    assert_eq!(instances.len(), 2, "{instances:?}");
    for instance in &instances {
        assert_eq!(instance["type"], "io.nats.micro.v1.stats_response");
        assert_eq!(instance["metadata"]["rules_name"], "beaker-default-rules");
        assert!(
            instance["endpoints"]
                .as_array()
                .is_some_and(|e| !e.is_empty())
        );
    }
    assert_eq!(
        get(&Http::new(&base, "wrong"), "/v1/instances")
            .await?
            .status,
        401
    );

    // Nothing deployed yet: an empty view, and nothing to roll back.
    let empty = get(&client, "/v1/rules").await?.json();
    assert_eq!(empty["active"], Value::Null);
    assert_eq!(empty["operator"], false);
    let nothing = post(&operator, "/v1/rules/rollback").await?;
    assert_eq!(nothing.status, 409);

    deploy(&env, "beaker_rules", false)?;
    deploy(&env, "beaker_rules_threshold", true)?;
    let view = get(&client, "/v1/rules").await?.json();
    assert_eq!(active_name(&view), "beaker-default-rules");
    assert_eq!(view["shadow"]["name"], "beaker-threshold-rules");
    assert_eq!(get(&operator, "/v1/rules").await?.json()["operator"], true);

    // An ordinary token is refused, with a reason, and nothing changes.
    for action in ["promote", "rollback"] {
        let refused = post(&client, &format!("/v1/rules/{action}")).await?;
        assert_eq!(refused.status, 403, "{action}");
        let reason = refused.gateway_error().unwrap_or_default();
        assert!(reason.contains("needs an operator token"), "{reason}");
        assert_eq!(refused.json()["message"], Value::String(reason));
    }
    assert_eq!(get(&client, "/v1/rules").await?.json(), view);

    // The operator promotes: every instance follows.
    let threshold = sha256_file(&wasm("beaker_rules_threshold"))?;
    let promoted = post(&operator, "/v1/rules/promote").await?;
    assert_eq!(promoted.status, 200, "{:?}", promoted.gateway_error());
    assert_eq!(promoted.json()["active"]["name"], "beaker-threshold-rules");
    wait_for_rules(&env.client, 2, "the promote", |r| {
        r.digest == *threshold && r.shadow.is_none()
    })
    .await?;
    let again = post(&operator, "/v1/rules/promote").await?;
    assert_eq!(again.status, 409, "no shadow left to promote");
    assert!(
        again
            .gateway_error()
            .is_some_and(|e| e.contains("no shadow rules"))
    );

    // And rolls back: the default rules again, everywhere.
    let default = sha256_file(&wasm("beaker_rules"))?;
    let rolled_back = post(&operator, "/v1/rules/rollback").await?;
    assert_eq!(rolled_back.status, 200, "{:?}", rolled_back.gateway_error());
    assert_eq!(rolled_back.json()["to"]["name"], "beaker-default-rules");
    wait_for_rules(&env.client, 2, "the rollback", |r| r.digest == *default).await?;
    let after = get(&client, "/v1/rules").await?.json();
    assert_eq!(active_name(&after), "beaker-default-rules");
    assert_eq!(after["shadow"], Value::Null);
    Ok(())
}
