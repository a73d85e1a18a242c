//! `beaker rules check`: offline (no NATS, no database), a component
//! compiled, linked, smoke-tested and run against a table of cases.

use std::path::Path;
use std::process::ExitCode;

use clap::ValueEnum;

use super::table::print_table;
use super::{BAD_CASES, FAILED, fail, load_locally};
use crate::config::SandboxArgs;
use crate::rules::cases;

/// How `rules check` prints its results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per case, columns as wide as their content.
    Table,
    /// One JSON document: the component, every case and the counts.
    Json,
}

pub(super) async fn check(
    file: &Path,
    cases_file: Option<&Path>,
    format: Format,
    sandbox: &SandboxArgs,
) -> ExitCode {
    // A bad cases file is told before the component is compiled: it is
    // the quicker mistake to find, and its exit status is its own.
    let cases = match cases_file.map(read_cases).transpose() {
        Ok(cases) => cases,
        Err(code) => return code,
    };
    let (engine, rules, _, took) = match load_locally(file, sandbox).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let summary = format!(
        "{} {}  sha256 {}  compiled, linked and smoke-tested in {} ms",
        rules.name,
        rules.version,
        rules.digest,
        took.as_millis()
    );
    let results = match &cases {
        Some(cases) => cases::run(&engine, &rules, cases).await,
        None => Vec::new(),
    };
    let failed = results.iter().filter(|r| !r.passed).count();
    match format {
        Format::Json => {
            let document = serde_json::json!({
                "rules": {
                    "name": rules.name,
                    "version": rules.version,
                    "digest": rules.digest,
                    "load_ms": took.as_millis() as u64,
                },
                "cases": results,
                "passed": results.len() - failed,
                "failed": failed,
            });
            println!("{document:#}");
        }
        Format::Table => {
            println!("{summary}");
            if cases.is_some() {
                print_results(&results);
                println!("{} passed, {failed} failed", results.len() - failed);
            }
        }
    }
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    }
}

fn read_cases(path: &Path) -> Result<Vec<cases::Case>, ExitCode> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(BAD_CASES, format!("cannot read {}: {e}", path.display())))?;
    cases::parse(&text).map_err(|e| fail(BAD_CASES, format!("{}: {e}", path.display())))
}

fn print_results(results: &[cases::CaseResult]) {
    let header = ["LINE", "CASE", "EXPECTED", "GOT", "RESULT"].map(String::from);
    let rows: Vec<[String; 5]> = results
        .iter()
        .map(|r| {
            [
                r.line.to_string(),
                r.case.clone(),
                r.expected.clone(),
                r.got.clone(),
                if r.passed { "pass" } else { "FAIL" }.to_string(),
            ]
        })
        .collect();
    print_table(&header, &rows);
}
