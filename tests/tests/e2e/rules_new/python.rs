//! A Python project, scaffolded outside the repository: its build script
//! installs the pinned componentize-py into .venv and builds it, its unit
//! tests pass under CPython, and the component passes its own cases.

use std::time::Instant;

use anyhow::Result;

use super::{check_passes, run_in, scaffold};

#[test]
fn rules_new_python_project_builds_and_passes_its_cases() -> Result<()> {
    let temp = tempfile::tempdir()?;
    let project = scaffold(temp.path(), "shelf-rules-py", "python")?;
    let started = Instant::now();
    let built = run_in(&project, "./build.sh", &[], &[])?;
    eprintln!(
        "built in {:.1} s\n{}",
        started.elapsed().as_secs_f64(),
        String::from_utf8_lossy(&built.stderr)
    );
    run_in(&project, "./build.sh", &["test"], &[])?;
    // CPython needs about 12.3 MiB, more than the default cap.
    check_passes(&project, "shelf-rules-py", &["--rules-memory-mib", "16"])
}
