//! A host's `/metrics`, parsed: every series and its value.

use anyhow::{Context, Result};

use crate::beaker::Beaker;

/// Every sample of a Prometheus text exposition, by series
/// (`name{labels}`). Strict enough to catch a broken exposition: every line
/// is a comment or `name{labels} value`.
pub fn parse_prometheus(text: &str) -> Result<std::collections::HashMap<String, f64>> {
    let mut samples = std::collections::HashMap::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .with_context(|| format!("not a sample: {line:?}"))?;
        let value: f64 = value
            .parse()
            .with_context(|| format!("not a number in {line:?}"))?;
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        anyhow::ensure!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        if name_end < series.len() {
            anyhow::ensure!(series.ends_with('}'), "unclosed labels in {line:?}");
        }
        samples.insert(series.to_string(), value);
    }
    Ok(samples)
}

/// One scrape of a running beaker's `/metrics`.
pub async fn scrape_metrics(beaker: &Beaker) -> Result<std::collections::HashMap<String, f64>> {
    let url = beaker.metrics_url().context("metrics address in the log")?;
    let text = reqwest::get(format!("{url}/metrics")).await?.text().await?;
    parse_prometheus(&text)
}

/// The sum over the series of metric `name` that carry every given label
/// value (other labels, such as the OpenTelemetry scope, may vary).
pub fn metric_sum(
    samples: &std::collections::HashMap<String, f64>,
    name: &str,
    labels: &[(&str, &str)],
) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| {
            series.strip_prefix(name).is_some_and(|rest| {
                (rest.is_empty() || rest.starts_with('{'))
                    && labels
                        .iter()
                        .all(|(label, value)| rest.contains(&format!("{label}=\"{value}\"")))
            })
        })
        .map(|(_, value)| *value)
        .sum()
}
