//! The Grafana dashboard and the Prometheus alert rules checked against the
//! metrics the host really exports, with the small PromQL and YAML readers
//! that pull the metric names out of them.

use std::time::Duration;

use anyhow::Result;
use beaker_testkit::{
    TestEnv, beaker_cli, scrape_metrics, sha256_file, wait_for_rules, wasm, workspace_root,
};

/// The metric names a PromQL expression selects: identifiers that are not
/// functions (followed by `(`), not label names of `by (…)` / `without (…)`,
/// and not inside label matchers or ranges.
fn selected_metrics(expr: &str) -> Vec<String> {
    // Drop what is between braces or brackets: label matchers and ranges.
    let mut plain = String::new();
    let mut depth = 0;
    for c in expr.chars() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let chars: Vec<char> = plain.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_ascii_digit() {
            // A number, exponent included (1e-9).
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric()
                    || chars[i] == '.'
                    || ((chars[i] == '-' || chars[i] == '+') && chars[i - 1] == 'e'))
            {
                i += 1;
            }
            continue;
        }
        if !(c.is_ascii_alphabetic() || c == '_' || c == ':') {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len()
            && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
        {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let mut next = i;
        while next < chars.len() && chars[next] == ' ' {
            next += 1;
        }
        let rest: String = chars[next..].iter().collect();
        // An aggregation such as `sum by (le) (…)` is a function too.
        let opens = rest.starts_with('(') || rest.starts_with("by") || rest.starts_with("without");
        if opens && (word == "by" || word == "without") {
            // Skip the label list.
            while i < chars.len() && chars[i] != ')' {
                i += 1;
            }
        } else if !opens && !matches!(word.as_str(), "and" | "or" | "unless") {
            names.push(word);
        }
    }
    names
}

/// The `expr:` of every alert rule, from the rules file's YAML: one
/// expression per rule, on its line or folded (`>-`) over the lines that
/// follow it.
fn alert_exprs(text: &str) -> Vec<String> {
    let mut exprs = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some((indent, rest)) = line.split_once("expr:") else {
            continue;
        };
        if !indent.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let rest = rest.trim();
        if rest != ">-" && rest != ">" && rest != "|" {
            exprs.push(rest.to_string());
            continue;
        }
        let mut folded = Vec::new();
        while let Some(next) = lines.peek() {
            let depth = next.len() - next.trim_start().len();
            if next.trim().is_empty() || depth <= indent.len() {
                break;
            }
            folded.push(next.trim().to_string());
            lines.next();
        }
        exprs.push(folded.join(" "));
    }
    exprs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_and_the_alerts_query_only_metrics_the_host_exports() -> Result<()> {
    assert_eq!(
        alert_exprs(
            "  - alert: A\n    expr: a > 1\n  - alert: B\n    expr: >-\n      b\n      unless c\n    for: 1m\n"
        ),
        vec!["a > 1", "b unless c"]
    );
    assert_eq!(
        selected_metrics(
            r#"histogram_quantile(0.5, sum by (le, x) (rate(a_bucket{o!="b"}[1m]))) / clamp_min(max(c), 1e-9)"#
        ),
        vec!["a_bucket", "c"]
    );
    let env = TestEnv::start("dashboard_metrics").await?;
    env.add("dash", 20).await?;
    env.remove("dash", 15).await?; // a low-stock event
    env.call("stock.get", "not json").await?;
    // A shadow, so that its comparisons are exported too.
    let shadow = wasm("beaker_rules_threshold");
    let deployed = beaker_cli(
        &env.nats.url(),
        &["rules", "deploy", "--shadow", &shadow.display().to_string()],
    )?;
    assert_eq!(
        deployed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&deployed.stderr)
    );
    let digest = sha256_file(&shadow)?;
    wait_for_rules(&env.client, 1, "the shadow", |r| {
        r.shadow.as_ref().is_some_and(|s| s.digest == *digest)
    })
    .await?;
    env.add("dash", 1).await?;
    env.db.wait_outbox_drained(Duration::from_secs(30)).await?;

    let exported: std::collections::HashSet<String> = scrape_metrics(&env.beaker)
        .await?
        .keys()
        .map(|series| series.split('{').next().unwrap_or_default().to_string())
        .collect();
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        workspace_root().join("deploy/grafana/dashboards/beaker.json"),
    )?)?;
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(
        exprs.len() >= 10,
        "the dashboard has its queries: {exprs:?}"
    );
    let alerts = alert_exprs(&std::fs::read_to_string(
        workspace_root().join("deploy/prometheus/alerts.yml"),
    )?);
    assert!(alerts.len() >= 5, "the alert rules: {alerts:?}");
    exprs.extend(alerts);
    let mut missing = Vec::new();
    for expr in &exprs {
        for metric in selected_metrics(expr) {
            // `up` is Prometheus's own: whether the scrape worked.
            if metric != "up" && !exported.contains(&metric) {
                missing.push(format!("{metric} (in {expr})"));
            }
        }
    }
    assert!(missing.is_empty(), "not exported: {missing:#?}");
    Ok(())
}

fn collect_exprs(value: &serde_json::Value, into: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                match value.as_str() {
                    Some(expr) if key == "expr" => into.push(expr.to_string()),
                    _ => collect_exprs(value, into),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, into)),
        _ => {}
    }
}
