//! `beaker rules check`: offline (no NATS, no database), a component
//! compiled, linked, smoke-tested and run against a table of cases.

use std::path::Path;
use std::process::ExitCode;

use super::{FAILED, fail, load_locally};
use crate::config::SandboxArgs;
use crate::rules::cases;

pub(super) async fn check(
    file: &Path,
    cases_file: Option<&Path>,
    sandbox: &SandboxArgs,
) -> ExitCode {
    let (engine, rules, _, took) = match load_locally(file, sandbox).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    println!(
        "{} {}  sha256 {}  compiled, linked and smoke-tested in {} ms",
        rules.name,
        rules.version,
        rules.digest,
        took.as_millis()
    );
    let Some(cases_file) = cases_file else {
        return ExitCode::SUCCESS;
    };
    let text = match std::fs::read_to_string(cases_file) {
        Ok(text) => text,
        Err(e) => return fail(FAILED, format!("cannot read {}: {e}", cases_file.display())),
    };
    let cases = match cases::parse(&text) {
        Ok(cases) => cases,
        Err(e) => return fail(FAILED, format!("{}: {e}", cases_file.display())),
    };
    let results = cases::run(&engine, &rules, &cases).await;
    println!(
        "{:>5}  {:<28}  {:<24}  {:<40}  RESULT",
        "LINE", "CASE", "EXPECTED", "GOT"
    );
    let mut failed = 0;
    for result in &results {
        let case = &result.case;
        let what = format!(
            "{} with {}",
            crate::rules::describe_operation(case.operation),
            case.current.map_or("none".to_string(), |l| l.to_string())
        );
        let got = crate::contract::schema::shorten(&result.got);
        let got: String = got.chars().take(40).collect();
        println!(
            "{:>5}  {:<28}  {:<24}  {:<40}  {}",
            case.line,
            what,
            cases::describe_expected(&case.expected),
            got,
            if result.passed { "pass" } else { "FAIL" }
        );
        if !result.passed {
            failed += 1;
        }
    }
    println!("{} passed, {failed} failed", results.len() - failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(FAILED)
    }
}
