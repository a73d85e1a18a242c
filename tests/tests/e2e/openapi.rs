//! The OpenAPI 3.1 document: a valid OpenAPI 3.1 document, built from the
//! very schemas in `schemas/`, served by the gateway, and checked in as
//! `docs/openapi.json` without going stale.

use anyhow::{Context, Result, anyhow};
use beaker_testkit::{TestEnv, workspace_root};
use serde_json::{Value, json};

fn checked_in() -> Result<String> {
    let path = workspace_root().join("docs/openapi.json");
    std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
}

fn document() -> Result<Value> {
    Ok(serde_json::from_str(&checked_in()?)?)
}

#[test]
fn the_checked_in_copy_is_what_the_code_generates() -> Result<()> {
    let generated = beaker::gateway::openapi::document_bytes();
    assert!(
        checked_in()?.as_bytes() == &generated[..],
        "docs/openapi.json is stale: run `make openapi` and commit the result"
    );
    Ok(())
}

#[test]
fn the_document_is_valid_openapi_3_1() -> Result<()> {
    let doc = document()?;
    assert_eq!(doc["openapi"], "3.1.0");
    let meta: Value = serde_json::from_str(&std::fs::read_to_string(
        workspace_root().join("tests/fixtures/openapi-3.1.schema.json"),
    )?)?;
    let validator = jsonschema::validator_for(&meta).map_err(|e| anyhow!("{e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(&doc)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");

    // The OpenAPI schema leaves Schema Objects to the dialect: check each
    // one against JSON Schema 2020-12 itself.
    let schemas = doc["components"]["schemas"]
        .as_object()
        .context("no component schemas")?;
    for (name, schema) in schemas {
        jsonschema::draft202012::meta::validate(schema)
            .map_err(|e| anyhow!("component {name} is not a valid 2020-12 schema: {e}"))?;
    }

    // Every operation has a unique id, and every reference resolves.
    let mut ids = Vec::new();
    for (path, item) in doc["paths"].as_object().context("no paths")? {
        for (method, operation) in item.as_object().context("path item")? {
            let id = operation["operationId"]
                .as_str()
                .with_context(|| format!("{method} {path} has no operationId"))?;
            ids.push(id.to_string());
        }
    }
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "duplicate operationId");
    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    for reference in refs {
        let pointer = reference
            .strip_prefix('#')
            .with_context(|| format!("{reference} is not local"))?;
        assert!(
            doc.pointer(pointer).is_some(),
            "{reference} does not resolve"
        );
    }
    Ok(())
}

fn collect_refs(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "$ref"
                    && let Some(target) = child.as_str()
                {
                    into.push(target.to_string());
                }
                collect_refs(child, into);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_refs(i, into)),
        _ => {}
    }
}

/// A file of `schemas/` as a component should be: `$schema` and `$id`
/// dropped, `"$ref": "x.json"` pointing at the component `x`. Written
/// out here independently of the generator.
fn as_component(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(k, _)| *k != "$schema" && *k != "$id")
                .map(|(k, v)| match (k.as_str(), v.as_str()) {
                    ("$ref", Some(file)) => (
                        k.clone(),
                        json!(format!(
                            "#/components/schemas/{}",
                            file.trim_end_matches(".json")
                        )),
                    ),
                    _ => (k.clone(), as_component(v)),
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(as_component).collect()),
        other => other.clone(),
    }
}

#[test]
fn every_file_in_schemas_is_a_component_and_the_operations_use_them() -> Result<()> {
    let doc = document()?;
    let components = &doc["components"]["schemas"];
    let mut files = 0;
    for entry in std::fs::read_dir(workspace_root().join("schemas"))? {
        let path = entry?.path();
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .context("file name")?
            .to_string();
        let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        let name = file.trim_end_matches(".json");
        assert_eq!(
            components[name],
            as_component(&schema),
            "component {name} differs from schemas/{file}"
        );
        files += 1;
    }
    assert!(files >= 10, "only {files} schema files");

    for operation in ["add", "remove", "get"] {
        let post = &doc["paths"][format!("/v1/nats/subjects/stock.{operation}")]["post"];
        assert_eq!(
            post["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            format!("#/components/schemas/stock-{operation}.request"),
            "{operation}"
        );
        let ok = &post["responses"]["200"]["content"]["application/json"]["schema"]["oneOf"];
        assert_eq!(
            ok[0]["$ref"],
            format!("#/components/schemas/stock-{operation}.response")
        );
        for code in ["400", "401", "403", "413", "503", "504"] {
            assert!(
                post["responses"][code].is_object(),
                "{operation} lacks {code}"
            );
        }
        assert_eq!(
            doc["components"]["responses"]["Unauthorized"]["headers"]["x-nats-api-gateway-error"]["$ref"],
            "#/components/headers/GatewayError"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    assert_eq!(doc["security"], json!([{"bearerAuth": []}]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_serves_the_same_document() -> Result<()> {
    let env = TestEnv::start_with_gateway("openapi_served").await?;
    let served = env.http()?.get_path("/openapi.json").await?;
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
