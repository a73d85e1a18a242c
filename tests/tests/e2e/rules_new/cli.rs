//! What `beaker rules new` writes and refuses, and `beaker rules wit`.

use anyhow::Result;
use beaker_testkit::{beaker_bin, workspace_root};

use super::rules_new;

#[test]
fn rules_new_writes_a_project_into_a_fresh_or_empty_folder() -> Result<()> {
    let temp = tempfile::tempdir()?;
    // DIR defaults to ./NAME.
    let made = rules_new(temp.path(), &["shelf-rules"])?;
    assert_eq!(made.status.code(), Some(0), "{made:?}");
    let project = temp.path().join("shelf-rules");
    for file in [
        "Cargo.toml",
        "rust-toolchain.toml",
        "src/lib.rs",
        "src/rules.rs",
        "build.sh",
        "wit/inventory.wit",
        "shelf-rules.cases",
        "README.md",
        ".gitignore",
    ] {
        assert!(project.join(file).is_file(), "{file}");
    }
    let wit = std::fs::read(workspace_root().join("wit/inventory.wit"))?;
    assert_eq!(std::fs::read(project.join("wit/inventory.wit"))?, wit);
    let cases =
        std::fs::read_to_string(workspace_root().join("examples/cases/default-rules.cases"))?;
    let ours = std::fs::read_to_string(project.join("shelf-rules.cases"))?;
    let columns = cases.find("# op ").unwrap_or_default();
    assert!(ours.ends_with(&cases[columns..]), "{ours}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(project.join("build.sh"))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111, "build.sh is executable: {mode:o}");
    }
    let stdout = String::from_utf8_lossy(&made.stdout);
    assert!(stdout.contains("  src/rules.rs\n"), "{stdout}");
    assert!(
        stdout.contains("beaker rules check target/shelf-rules.wasm --cases shelf-rules.cases\n"),
        "{stdout}"
    );

    // An existing empty folder is fine; JavaScript lists its own files.
    let empty = temp.path().join("empty");
    std::fs::create_dir(&empty)?;
    let js = rules_new(temp.path(), &["js-rules", "--lang", "js", "empty"])?;
    assert_eq!(js.status.code(), Some(0), "{js:?}");
    assert!(empty.join("package-lock.json").is_file());
    assert!(String::from_utf8_lossy(&js.stdout).contains("--rules-memory-mib 16"));
    Ok(())
}

#[test]
fn rules_new_refuses_a_folder_that_is_not_empty() -> Result<()> {
    let temp = tempfile::tempdir()?;
    let dir = temp.path().join("mine");
    std::fs::create_dir(&dir)?;
    std::fs::write(dir.join("notes.txt"), b"keep me")?;
    let refused = rules_new(temp.path(), &["my-rules", "mine"])?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("mine exists and is not empty"), "{stderr}");
    // Nothing was written, nothing was lost.
    assert_eq!(std::fs::read_dir(&dir)?.count(), 1);
    assert_eq!(std::fs::read(dir.join("notes.txt"))?, b"keep me");

    // A file is no folder either.
    let refused = rules_new(temp.path(), &["my-rules", "mine/notes.txt"])?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("is not an empty directory"), "{stderr}");
    Ok(())
}

#[test]
fn rules_new_refuses_a_bad_name_and_an_unknown_language() -> Result<()> {
    let temp = tempfile::tempdir()?;
    for (name, why) in [
        ("My_Rules", "does not start with a lowercase letter"),
        ("my_rules", "contains '_'"),
        ("9lives", "does not start with a lowercase letter"),
        ("rules-", "a dash that separates nothing"),
    ] {
        let refused = rules_new(temp.path(), &[name])?;
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(2), "{name}: {stderr}");
        assert!(stderr.contains(why), "{name}: {stderr}");
        assert!(
            stderr.contains("lowercase letters, digits and single dashes, starting with a letter"),
            "{stderr}"
        );
    }
    let refused = rules_new(temp.path(), &["my-rules", "--lang", "cobol"])?;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid value 'cobol'"), "{stderr}");
    assert!(stderr.contains("rust, js, python"), "{stderr}");
    // Nothing was created.
    assert_eq!(std::fs::read_dir(temp.path())?.count(), 0);
    Ok(())
}

#[test]
fn rules_wit_prints_and_writes_the_wit_byte_for_byte() -> Result<()> {
    let wit = std::fs::read(workspace_root().join("wit/inventory.wit"))?;
    let printed = std::process::Command::new(beaker_bin())
        .args(["rules", "wit"])
        .output()?;
    assert_eq!(printed.status.code(), Some(0), "{printed:?}");
    assert!(printed.stdout == wit, "stdout is wit/inventory.wit");

    let temp = tempfile::tempdir()?;
    let out = temp.path().join("new/wit");
    let written = std::process::Command::new(beaker_bin())
        .args(["rules", "wit", "--out"])
        .arg(&out)
        .output()?;
    assert_eq!(written.status.code(), Some(0), "{written:?}");
    assert!(written.stdout.is_empty());
    assert_eq!(std::fs::read(out.join("inventory.wit"))?, wit);
    // Again over the file it wrote: a refresh.
    let again = std::process::Command::new(beaker_bin())
        .args(["rules", "wit", "--out"])
        .arg(&out)
        .output()?;
    assert_eq!(again.status.code(), Some(0), "{again:?}");
    Ok(())
}
