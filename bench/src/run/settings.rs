//! What a run is told: the servers, the binaries and rules, the loads and
//! durations, and the service configurations to compare.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::BenchError;
use crate::mix::Products;

/// One service configuration: a name and extra `beaker serve` arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    pub name: String,
    pub args: Vec<String>,
}

impl Variant {
    /// Parses `name:args;name:args`, e.g. `default:;no-batch:--group-commit=false`.
    pub fn parse_list(text: &str) -> Result<Vec<Variant>, BenchError> {
        let bad = |message: String| BenchError::Setting {
            setting: "BENCH_SERVICE_VARIANTS",
            message,
        };
        let mut variants: Vec<Variant> = Vec::new();
        for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, args) = entry.split_once(':').unwrap_or((entry, ""));
            let name = name.trim();
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(bad(format!(
                    "{entry:?}: a name of letters, digits, - _ . must come before the colon"
                )));
            }
            if variants.iter().any(|v| v.name == name) {
                return Err(bad(format!("{name} is named twice")));
            }
            variants.push(Variant {
                name: name.to_string(),
                args: args.split_whitespace().map(str::to_string).collect(),
            });
        }
        if variants.is_empty() {
            return Err(bad("no configuration given".into()));
        }
        Ok(variants)
    }
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub nats_url: String,
    pub database_url: String,
    pub beaker: PathBuf,
    pub rules: PathBuf,
    pub swap_rules: PathBuf,
    pub concurrency: Vec<usize>,
    pub warmup: Duration,
    pub measure: Duration,
    pub products: Products,
    pub event_products: usize,
    pub event_concurrency: Vec<usize>,
    pub variants: Vec<Variant>,
    pub log_dir: PathBuf,
    /// What the host under test was built from, for the report.
    pub revision: Option<String>,
    /// Requests in flight of the scaling measurement (one host, then three,
    /// on a NATS cluster); `None`: not measured.
    pub scaling: Option<usize>,
    /// Changes released at once after the load phases; `None`: no burst.
    pub burst: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_service_variants() {
        let parsed =
            Variant::parse_list("default:;no-batch:--group-commit=false --db-max-connections 8")
                .expect("valid");
        assert_eq!(
            parsed,
            vec![
                Variant {
                    name: "default".into(),
                    args: vec![]
                },
                Variant {
                    name: "no-batch".into(),
                    args: vec![
                        "--group-commit=false".into(),
                        "--db-max-connections".into(),
                        "8".into()
                    ]
                },
            ]
        );
        assert_eq!(Variant::parse_list("default").expect("valid").len(), 1);
        for bad in ["", ";", ":--x", "a:;a:", "with space:"] {
            assert!(Variant::parse_list(bad).is_err(), "{bad:?} must be refused");
        }
    }
}
