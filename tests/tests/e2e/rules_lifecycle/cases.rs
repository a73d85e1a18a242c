//! What a cases table can assert (a rejection's kind and message, exact or
//! by pattern; the events), how `rules check` prints it (a table that cuts
//! nothing, or JSON), and its exit statuses: a case failed, a bad cases
//! file and a refused component each have their own.

use std::path::Path;

use anyhow::{Context, Result};
use beaker_testkit::{beaker_cli, beaker_cli_run};
use serde_json::Value;

use super::default_rules;

/// `beaker rules check RULES --cases (a file holding TABLE) EXTRA…`.
fn check(rules: &Path, table: &str, extra: &[&str]) -> Result<(Option<i32>, String, String)> {
    let dir = tempfile::tempdir()?;
    let cases = dir.path().join("table.cases");
    std::fs::write(&cases, table)?;
    let mut args = vec![
        "rules",
        "check",
        rules.to_str().unwrap_or_default(),
        "--cases",
        cases.to_str().unwrap_or_default(),
    ];
    args.extend_from_slice(extra);
    Ok(beaker_cli_run("nats://127.0.0.1:1", &args)?.into_parts())
}

const MESSAGE: &str = "cannot remove 11 units of widget-7: only 10 in stock";

#[test]
fn a_case_asserts_the_rejection_message_and_the_events() -> Result<()> {
    let passing = format!(
        "remove 11 10 rule-violated \"{MESSAGE}\" sku=widget-7\n\
         remove 11 10 rule-violated /only \\d+ in stock$/\n\
         remove 1 10 ok 9 low-stock:9\n\
         remove 1 10 ok 9 low-stock\n\
         remove 1 20 ok 19 -\n"
    );
    let (code, out, err) = check(&default_rules(), &passing, &[])?;
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("5 passed, 0 failed"), "{out}");

    // A wrong message fails, and the table shows the whole of what came
    // back, however long.
    let wrong = "remove 11 10 rule-violated \"only ten left\" sku=widget-7\n\
                 remove 11 10 rule-violated /^only/\n\
                 remove 1 10 ok 9 low-stock:8\n\
                 remove 1 10 ok 9\n\
                 remove 11 10 unknown-product\n";
    let (code, out, _) = check(&default_rules(), wrong, &[])?;
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("0 passed, 5 failed"), "{out}");
    assert!(
        out.contains(&format!("rule-violated ({MESSAGE})")),
        "unclipped: {out}"
    );
    Ok(())
}

#[test]
fn json_results_say_per_case_what_was_expected_and_what_came() -> Result<()> {
    let table = format!(
        "add 5 none ok 5\n\
         remove 11 10 rule-violated \"{MESSAGE}\" sku=widget-7\n\
         remove 1 none ok 0\n"
    );
    let (code, out, _) = check(&default_rules(), &table, &["--format", "json"])?;
    assert_eq!(code, Some(1));
    let document: Value = serde_json::from_str(&out).context("one JSON document")?;
    assert_eq!(document["rules"]["name"], "beaker-default-rules");
    assert_eq!(
        (document["passed"].as_u64(), document["failed"].as_u64()),
        (Some(2), Some(1))
    );
    let cases = document["cases"].as_array().context("cases")?;
    assert_eq!(cases.len(), 3);
    assert_eq!(cases[1]["sku"], "widget-7");
    assert_eq!(cases[1]["got"], format!("rule-violated ({MESSAGE})"));
    assert_eq!(cases[2]["line"], 3);
    assert_eq!(cases[2]["passed"], false);
    assert_eq!(cases[2]["expected"], "ok level 0");
    assert!(
        cases[2]["got"]
            .as_str()
            .is_some_and(|g| g.starts_with("unknown-product (product case-3 is not known")),
        "{}",
        cases[2]
    );
    Ok(())
}

#[test]
fn a_bad_cases_file_and_a_bad_component_have_their_own_exit_status() -> Result<()> {
    // Words after the expectation are an error naming the line, not
    // silently accepted (here: a message without quotes).
    let (code, out, err) = check(
        &default_rules(),
        "add 1 none ok 1\nremove 11 10 rule-violated only 10 in stock\n",
        &[],
    )?;
    assert_eq!(code, Some(5), "{out}\n{err}");
    assert!(err.contains("line 2:"), "{err}");
    assert!(err.contains("\"exact text\" or /a pattern/"), "{err}");
    assert!(out.is_empty(), "no case ran: {out}");

    let (code, _, err) = check(&default_rules(), "remove 1 10 rule-violated /(/\n", &[])?;
    assert_eq!(code, Some(5));
    assert!(err.contains("is not valid"), "{err}");

    let missing = beaker_cli(
        "nats://127.0.0.1:1",
        &[
            "rules",
            "check",
            default_rules().to_str().unwrap_or_default(),
            "--cases",
            "/nonexistent/table.cases",
        ],
    )?;
    assert_eq!(missing.status.code(), Some(5));

    // A file that is not a component: refused, 2, whatever the cases.
    let dir = tempfile::tempdir()?;
    let not_wasm = dir.path().join("rules.wasm");
    std::fs::write(&not_wasm, b"not a component")?;
    let (code, _, err) = check(&not_wasm, "add 1 none ok 1\n", &[])?;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("refused"), "{err}");
    Ok(())
}
