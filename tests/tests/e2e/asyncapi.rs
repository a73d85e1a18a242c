//! The AsyncAPI 3.0 document of the NATS side: accepted by the official
//! AsyncAPI parser (run with Node from `tests/asyncapi/`, which `make test`
//! installs: scripts/asyncapi-deps.sh), built from the very schemas of
//! `schemas/`, true to what a running host does, served by the gateway,
//! and checked in as `docs/asyncapi.json` without going stale.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use async_nats::jetstream::stream::{DiscardPolicy, RetentionPolicy, StorageType};
use beaker_testkit::{EVENTS_STREAM, TestEnv, workspace_root};
use serde_json::Value;

fn checked_in() -> Result<String> {
    let path = workspace_root().join("docs/asyncapi.json");
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

fn document() -> Result<Value> {
    Ok(serde_json::from_str(&checked_in()?)?)
}

#[test]
fn the_checked_in_copy_is_what_the_code_generates() -> Result<()> {
    let generated = beaker::gateway::asyncapi::document_bytes();
    assert!(
        checked_in()?.as_bytes() == &generated[..],
        "docs/asyncapi.json is stale: run `make asyncapi` and commit the result"
    );
    Ok(())
}

#[test]
fn the_official_asyncapi_parser_finds_no_error() -> Result<()> {
    let dir = workspace_root().join("tests/asyncapi");
    if !dir.join("node_modules/@asyncapi/parser").exists() {
        bail!(
            "the AsyncAPI check needs Node.js and tests/asyncapi/node_modules: \
             run scripts/asyncapi-deps.sh (make test does)"
        );
    }
    let run = Command::new("node")
        .arg("validate.mjs")
        .arg(workspace_root().join("docs/asyncapi.json"))
        .current_dir(&dir)
        .output()
        .context("cannot run node")?;
    let diagnostics = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "the AsyncAPI parser refuses docs/asyncapi.json:\n{diagnostics}"
    );
    // Warnings fail too: each names something a reader of the document
    // would trip over.
    let summary: Value = serde_json::from_slice(&run.stdout)
        .with_context(|| format!("validate.mjs printed no summary; stderr:\n{diagnostics}"))?;
    assert_eq!(summary["errors"], 0, "{diagnostics}");
    assert_eq!(summary["warnings"], 0, "{diagnostics}");
    assert_eq!(summary["version"], "3.0.0");

    // What the parser understood: every subject, each request with its
    // reply, in the service's queue group, and the events it sends.
    let channels = summary["channels"].as_array().context("channels")?;
    for subject in ["stock.add", "stock.remove", "stock.get", "events.low_stock"] {
        assert!(
            channels.iter().any(|c| c == subject),
            "{subject}: {summary}"
        );
    }
    let operations = summary["operations"].as_array().context("operations")?;
    for name in ["add", "remove", "get"] {
        let id = format!("stock{}{}", name[..1].to_uppercase(), &name[1..]);
        let operation = operations
            .iter()
            .find(|o| o["id"] == id.as_str())
            .with_context(|| format!("no operation {id}: {summary}"))?;
        assert_eq!(operation["action"], "receive");
        assert_eq!(operation["queue"], "q");
        assert_eq!(
            operation["reply"],
            serde_json::json!([format!("stock-{name}.reply")])
        );
    }
    assert!(
        operations
            .iter()
            .any(|o| o["id"] == "publishLowStock" && o["action"] == "send"),
        "{summary}"
    );
    Ok(())
}

/// The payloads are the components the OpenAPI document makes of
/// `schemas/`, so the two documents never disagree about a payload.
#[test]
fn the_payloads_are_the_schemas_of_schemas_dir() -> Result<()> {
    let doc = document()?;
    let openapi = beaker::gateway::openapi::document();
    let mut files = 0;
    for entry in std::fs::read_dir(workspace_root().join("schemas"))? {
        let path = entry?.path();
        let name = path
            .file_stem()
            .and_then(|n| n.to_str())
            .context("file name")?;
        assert_eq!(
            doc["components"]["schemas"][name], openapi["components"]["schemas"][name],
            "component {name}"
        );
        assert!(doc["components"]["schemas"][name].is_object(), "{name}");
        files += 1;
    }
    assert!(files >= 10, "only {files} schema files");

    let messages = &doc["components"]["messages"];
    for name in ["add", "remove", "get"] {
        let request = &messages[format!("stock-{name}.request")];
        assert_eq!(
            request["payload"]["$ref"],
            format!("#/components/schemas/stock-{name}.request")
        );
        let reply = &messages[format!("stock-{name}.reply")];
        assert_eq!(
            reply["payload"]["$ref"],
            format!("#/components/schemas/stock-{name}.response")
        );
        // The error reply: the body's shape and the micro error headers,
        // a bad request's at least.
        let failures: Vec<&Value> = reply["examples"]
            .as_array()
            .context("examples")?
            .iter()
            .filter(|e| e["payload"]["ok"] == false)
            .collect();
        assert!(
            failures
                .iter()
                .any(|f| f["headers"]["Nats-Service-Error-Code"] == "400"),
            "stock.{name} shows no bad request"
        );
        for failure in failures {
            assert_eq!(
                failure["headers"]["Nats-Service-Error"],
                failure["payload"]["error"]
            );
        }
    }
    assert_eq!(
        messages["low-stock.event"]["payload"]["$ref"],
        "#/components/schemas/low-stock.event"
    );
    Ok(())
}

/// Whether `value` matches the schema `reference` points at, within the
/// document's components.
fn check(doc: &Value, reference: &Value, value: &Value) -> Result<Vec<String>> {
    let root = serde_json::json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": reference.as_str().context("not a reference")?,
        "components": { "schemas": doc["components"]["schemas"] }
    });
    let validator = jsonschema::validator_for(&root).map_err(|e| anyhow!("{e}"))?;
    Ok(validator
        .iter_errors(value)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect())
}

/// The examples are what a reader copies: each matches its message's
/// payload and headers (the parser leaves examples unchecked in 3.0).
#[test]
fn every_example_matches_its_message() -> Result<()> {
    let doc = document()?;
    let messages = doc["components"]["messages"]
        .as_object()
        .context("no messages")?;
    let mut checked = 0;
    for (key, message) in messages {
        let examples = message["examples"]
            .as_array()
            .with_context(|| format!("{key} has no examples"))?;
        for example in examples {
            let errors = check(&doc, &message["payload"]["$ref"], &example["payload"])?;
            assert!(errors.is_empty(), "{key} {}: {errors:?}", example["name"]);
            if let Some(headers) = example.get("headers") {
                let errors = check(&doc, &message["headers"]["$ref"], headers)?;
                assert!(
                    errors.is_empty(),
                    "{key} {} headers: {errors:?}",
                    example["name"]
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} examples");
    Ok(())
}

fn header_names(doc: &Value, schema: &str) -> Result<Vec<String>> {
    Ok(doc["components"]["schemas"][schema]["properties"]
        .as_object()
        .with_context(|| format!("{schema} has no properties"))?
        .keys()
        .cloned()
        .collect())
}

/// The stream and the headers as documented are what a host creates and
/// sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_and_headers_are_those_of_a_running_host() -> Result<()> {
    let doc = document()?;
    let env = TestEnv::start("asyncapi_truth").await?;

    let documented = &doc["channels"]["lowStock"]["x-jetstream"];
    let js = async_nats::jetstream::new(env.client.clone());
    let config = js
        .get_stream(EVENTS_STREAM)
        .await?
        .info()
        .await?
        .config
        .clone();
    assert_eq!(documented["stream"], config.name.as_str());
    assert_eq!(documented["subjects"], serde_json::json!(config.subjects));
    assert_eq!(config.retention, RetentionPolicy::Limits);
    assert_eq!(documented["retention"], "limits");
    assert_eq!(config.discard, DiscardPolicy::Old);
    assert_eq!(documented["discard"], "old");
    assert_eq!(config.storage, StorageType::File);
    assert_eq!(documented["storage"], "file");
    assert_eq!(config.max_age, Duration::from_secs(7 * 24 * 3600));
    assert_eq!(documented["maxAge"], "7d");
    assert_eq!(config.duplicate_window, Duration::from_secs(2 * 3600));
    assert_eq!(documented["duplicateWindow"], "2h");
    assert_eq!(documented["replicas"], config.num_replicas);

    // An event's headers: the required ones there, none undocumented.
    assert!(env.add("async-doc", 12).await?.ok());
    assert!(env.remove("async-doc", 5).await?.ok());
    let events = env.published_events().await?;
    let event = events.first().context("no low-stock event")?;
    assert_eq!(doc["channels"]["lowStock"]["address"], event.subject);
    let allowed = header_names(&doc, "event-headers")?;
    for (name, _) in event.headers.iter() {
        let name: &str = name.as_ref();
        assert!(allowed.iter().any(|a| a == name), "undocumented {name}");
    }
    for required in doc["components"]["schemas"]["event-headers"]["required"]
        .as_array()
        .context("event-headers.required")?
    {
        let required = required.as_str().context("header name")?;
        assert!(event.headers.get(required).is_some(), "{required} missing");
    }

    // A failed reply's headers: all documented.
    let reply = env
        .client
        .request("stock.get", bytes::Bytes::from_static(b"{}"))
        .await?;
    let headers = reply.headers.context("a failure carries headers")?;
    let allowed = header_names(&doc, "reply-headers")?;
    for (name, _) in headers.iter() {
        let name: &str = name.as_ref();
        assert!(allowed.iter().any(|a| a == name), "undocumented {name}");
    }
    assert_eq!(
        headers.get("Nats-Service-Error-Code").map(|v| v.as_str()),
        Some("400")
    );
    Ok(())
}

/// Served like `/openapi.json`: without a token, byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_the_same_document_without_a_token() -> Result<()> {
    let env = TestEnv::start_with_gateway("asyncapi_served").await?;
    let served = env.http()?.get_path("/asyncapi.json").await?;
    assert_eq!(served.status, 200);
    assert_eq!(
        served.header("content-type").as_deref(),
        Some("application/json")
    );
    assert!(
        served.body == checked_in()?.as_bytes(),
        "served document differs"
    );
    Ok(())
}
