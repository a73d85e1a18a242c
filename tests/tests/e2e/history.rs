//! `stock.history`: a product's ledger through NATS, newest first, paged,
//! as a client (or the console through the gateway) reads it; and
//! `beaker ledger` reading it when it has no database URL.

use std::process::Command;

use anyhow::Result;
use beaker_testkit::{Contract, NatsServer, TestEnv, beaker_bin};
use serde_json::{Value, json};

fn ask(sku: &str, extra: Value) -> Vec<u8> {
    let mut request = json!({ "product-sku": sku });
    if let (Some(request), Some(extra)) = (request.as_object_mut(), extra.as_object()) {
        request.extend(extra.clone());
    }
    request.to_string().into_bytes()
}

/// (operation, quantity, level-after) of each movement in a page.
fn moves(page: &Value) -> Vec<(String, i64, i64)> {
    page["movements"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            (
                m["operation"].as_str().unwrap_or_default().to_string(),
                m["quantity"].as_i64().unwrap_or(-1),
                m["level-after"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

fn step(op: &str, quantity: i64, after: i64) -> (String, i64, i64) {
    (op.to_string(), quantity, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_through_a_products_movements_newest_first() -> Result<()> {
    let env = TestEnv::start_with_gateway("history_pages").await?;
    let contract = Contract::load()?;
    for (add, quantity) in [(true, 10), (false, 3), (true, 5), (false, 4), (true, 1)] {
        let answer = if add {
            env.add("hist-1", quantity).await?
        } else {
            env.remove("hist-1", quantity).await?
        };
        assert!(answer.ok(), "{answer:?}");
    }
    // Another product's movements stay out of this one's history.
    assert!(env.add("hist-2", 2).await?.ok());

    let all = env.call("stock.history", ask("hist-1", json!({}))).await?;
    assert!(all.ok(), "{all:?}");
    contract.assert_valid("stock-history.response.json", &all.body);
    assert_eq!(
        moves(&all.body),
        vec![
            step("add", 1, 9),
            step("remove", 4, 8),
            step("add", 5, 12),
            step("remove", 3, 7),
            step("add", 10, 10),
        ]
    );
    assert_eq!(all.body["product-sku"], "hist-1");
    assert!(all.body.get("next-before").is_none(), "one page holds all");
    let newest = &all.body["movements"][0];
    assert_eq!(newest["rules"]["name"], "beaker-default-rules");
    assert!(uuid::Uuid::parse_str(newest["request-id"].as_str().unwrap_or("")).is_ok());
    assert!(chrono::DateTime::parse_from_rfc3339(newest["at"].as_str().unwrap_or("")).is_ok());

    // Two at a time: three pages, then none left.
    let mut pages = Vec::new();
    let mut before = Value::Null;
    loop {
        let extra = match before {
            Value::Null => json!({ "limit": 2 }),
            ref b => json!({ "limit": 2, "before": b }),
        };
        let page = env.call("stock.history", ask("hist-1", extra)).await?;
        assert!(page.ok(), "{page:?}");
        contract.assert_valid("stock-history.response.json", &page.body);
        pages.push(moves(&page.body));
        before = page.body.get("next-before").cloned().unwrap_or(Value::Null);
        if before.is_null() {
            break;
        }
        assert!(pages.len() < 10, "paging does not end");
    }
    assert_eq!(
        pages,
        vec![
            vec![step("add", 1, 9), step("remove", 4, 8)],
            vec![step("add", 5, 12), step("remove", 3, 7)],
            vec![step("add", 10, 10)],
        ]
    );

    // Through the gateway, as the console asks.
    let http = env
        .http()?
        .request("stock.history", ask("hist-1", json!({"limit": 1})))
        .await?;
    assert_eq!(http.status, 200);
    assert_eq!(moves(&http.json()), vec![step("add", 1, 9)]);

    // A product never stocked has no movements, like its level is 0.
    let none = env
        .call("stock.history", ask("never-stocked", json!({})))
        .await?;
    assert!(none.ok(), "{none:?}");
    assert_eq!(none.body["movements"], json!([]));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_history_request_is_refused_with_what_is_wrong() -> Result<()> {
    let env = TestEnv::start("history_bad_input").await?;
    assert!(env.add("hist-bad", 4).await?.ok());
    for (body, says) in [
        (r#"{"product-sku":"hist-bad","limit":0}"#, "limit"),
        (r#"{"product-sku":"hist-bad","limit":101}"#, "limit"),
        (r#"{"product-sku":"hist-bad","before":0}"#, "before"),
        (r#"{"product-sku":"hist-bad","limit":"5"}"#, "limit"),
        (r#"{"product-sku":"hist-bad","quantity":1}"#, "quantity"),
        (r#"{"product-sku":"no spaces"}"#, "product-sku"),
        (r#"{"limit":5}"#, "product-sku"),
        ("[1,2]", "object"),
        ("not json", "not valid JSON"),
        ("", "empty"),
    ] {
        let answer = env.call("stock.history", body.as_bytes().to_vec()).await?;
        assert_eq!(answer.code, Some(400), "{body}: {answer:?}");
        assert_eq!(answer.body["ok"], false, "{body}");
        let error = answer.body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(says),
            "{body}: {error:?} should mention {says:?}"
        );
        assert!(
            answer.error.is_some(),
            "{body}: no Nats-Service-Error header"
        );
    }
    // JSON Schema counts 1.0 as an integer, so the service does too.
    let whole = env
        .call(
            "stock.history",
            &br#"{"product-sku":"hist-bad","limit":1.0}"#[..],
        )
        .await?;
    assert!(whole.ok(), "{whole:?}");
    assert_eq!(moves(&whole.body), vec![step("add", 4, 4)]);
    // Nothing changed.
    assert_eq!(env.db.level("hist-bad").await?, Some(4));
    assert_eq!(env.db.count("stock_movements").await?, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_reads_the_service_when_it_has_no_database_url() -> Result<()> {
    let env = TestEnv::start("history_ledger_over_nats").await?;
    // More movements than one page of stock.history holds.
    for _ in 0..120 {
        assert!(env.add("led-nats", 1).await?.ok());
    }
    assert!(env.remove("led-nats", 7).await?.ok());
    let output = Command::new(beaker_bin())
        .args(["ledger", "led-nats", "--json"])
        .env_remove("DATABASE_URL")
        .env("NATS_URL", env.nats.url())
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let rows: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    assert_eq!(rows.len(), 121);
    assert_eq!(rows[0]["level_before"], 0);
    assert_eq!(rows[0]["level_after"], 1);
    assert_eq!(rows[119]["level_after"], 120);
    assert_eq!(rows[120]["operation"], "remove");
    assert_eq!(rows[120]["level_before"], 120);
    assert_eq!(rows[120]["level_after"], 113);

    let table = Command::new(beaker_bin())
        .args(["ledger", "led-nats"])
        .env_remove("DATABASE_URL")
        .env("NATS_URL", env.nats.url())
        .output()?;
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("led-nats: level 113; the changes sum to 113"),
        "{text}"
    );

    // NATS without the service: a clear message and exit status 3.
    let empty = NatsServer::start("history_ledger_no_service")?;
    let alone = Command::new(beaker_bin())
        .args(["ledger", "led-nats"])
        .env_remove("DATABASE_URL")
        .env("NATS_URL", empty.url())
        .output()?;
    let stderr = String::from_utf8_lossy(&alone.stderr);
    assert_eq!(alone.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains("no service is listening on stock.history"),
        "{stderr}"
    );
    Ok(())
}
