//! `beaker rules new`: start a rules project anywhere, from the binary
//! alone; and `beaker rules wit`: the WIT this binary speaks.
//!
//! Everything a project needs is embedded ([`super::scaffold`]), so a rule
//! author needs neither the repository nor a network to start, and the
//! project speaks exactly the WIT of the `beaker` that made it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::fail;
use super::scaffold::{self, Lang, WIT};

/// Exit status: a file could not be written.
const NOT_WRITTEN: u8 = 1;
/// Exit status: the folder exists and is not an empty directory.
const NOT_EMPTY: u8 = 3;

/// The longest name accepted: it is shown in `beaker rules status` and
/// written into every ledger row.
const MAX_NAME: usize = 64;

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The rules' name, reported by `describe()` and written into every
    /// ledger row: lowercase letters, digits and single dashes, starting
    /// with a letter (also the package's name).
    #[arg(value_parser = parse_name)]
    name: String,
    /// The folder to create (default: ./NAME). It must not exist, or be
    /// empty.
    dir: Option<PathBuf>,
    /// The language of the rules.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
}

#[derive(Debug, Args)]
pub struct WitArgs {
    /// Write DIR/inventory.wit (creating DIR) instead of printing it.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Checks a rules name: it names the package in every language (a cargo
/// package, an npm package) and the component, so it keeps to what all
/// of them and WIT's kebab-case accept.
pub(super) fn parse_name(name: &str) -> Result<String, String> {
    const RULE: &str = "lowercase letters, digits and single dashes, starting with a letter";
    let bad = |why: String| Err(format!("{why}: a rules name is {RULE}"));
    let Some(first) = name.chars().next() else {
        return bad("the name is empty".into());
    };
    if !first.is_ascii_lowercase() {
        return bad(format!("{name:?} does not start with a lowercase letter"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return bad(format!("{name:?} contains {c:?}"));
    }
    if name.ends_with('-') || name.contains("--") {
        return bad(format!("{name:?} has a dash that separates nothing"));
    }
    if name.len() > MAX_NAME {
        return bad(format!("{name:?} is longer than {MAX_NAME} characters"));
    }
    Ok(name.to_string())
}

pub(super) fn new(args: &NewArgs) -> ExitCode {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(&args.name));
    if let Err(why) = usable(&dir) {
        return fail(
            NOT_EMPTY,
            format!("{} {why}: choose another folder", dir.display()),
        );
    }
    let files = match scaffold::files(&args.name, args.lang) {
        Ok(files) => files,
        Err(e) => return fail(NOT_WRITTEN, e),
    };
    for file in &files {
        if let Err(e) = write(&dir, file) {
            return fail(
                NOT_WRITTEN,
                format!(
                    "cannot write {}: {e} ({} is incomplete: remove it and run again)",
                    dir.join(&file.path).display(),
                    dir.display()
                ),
            );
        }
    }
    print_summary(args, &dir, &files);
    ExitCode::SUCCESS
}

/// Why `dir` cannot take a new project, if it cannot: only a folder that
/// does not exist or is empty can, so nothing of the author's is ever
/// overwritten.
fn usable(dir: &Path) -> Result<(), String> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => match entries.next() {
            None => Ok(()),
            Some(_) => Err("exists and is not empty".into()),
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) if dir.exists() => Err("exists and is not an empty directory".into()),
        Err(e) => Err(format!("cannot be read: {e}")),
    }
}

/// Writes one file, never over an existing one.
fn write(dir: &Path, file: &scaffold::File) -> std::io::Result<()> {
    let path = dir.join(&file.path);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if file.executable { 0o755 } else { 0o644 });
    }
    options.open(&path)?.write_all(file.text.as_bytes())
}

fn print_summary(args: &NewArgs, dir: &Path, files: &[scaffold::File]) {
    let name = &args.name;
    let memory = args.lang.memory_flag();
    println!(
        "Created {name} {}, {} rules, in {}:",
        scaffold::VERSION,
        args.lang,
        dir.display()
    );
    let mut paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
    paths.sort_unstable();
    for path in paths {
        println!("  {path}");
    }
    println!("\nNext (README.md has the details):");
    println!("  cd {}", shell_word(dir));
    println!("  ./build.sh");
    println!("  beaker rules check target/{name}.wasm --cases {name}.cases{memory}");
    println!("  beaker rules deploy target/{name}.wasm --shadow{memory}");
    if !memory.is_empty() {
        println!("  (and every instance running them needs BEAKER_RULES_MEMORY_MIB=16)");
    }
    println!("  beaker rules status");
    println!("  beaker rules promote");
}

/// `path` as one shell word, quoted only when it must be.
fn shell_word(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:,@".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

/// Prints the WIT, or writes it to `out/inventory.wit`.
pub(super) fn wit(args: &WitArgs) -> ExitCode {
    let Some(out) = &args.out else {
        let mut stdout = std::io::stdout().lock();
        return match stdout
            .write_all(WIT.as_bytes())
            .and_then(|()| stdout.flush())
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => fail(NOT_WRITTEN, format!("cannot print the WIT: {e}")),
        };
    };
    let path = out.join("inventory.wit");
    match std::fs::create_dir_all(out).and_then(|()| std::fs::write(&path, WIT)) {
        Ok(()) => {
            eprintln!("beaker rules: wrote {}", path.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(NOT_WRITTEN, format!("cannot write {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_kebab_case_starting_with_a_letter() {
        for good in ["my-rules", "r", "shelf2", "a-1-b", &"a".repeat(MAX_NAME)] {
            assert_eq!(parse_name(good).as_deref(), Ok(good));
        }
        for (bad, why) in [
            ("", "empty"),
            ("My-rules", "does not start with a lowercase letter"),
            ("2rules", "does not start with a lowercase letter"),
            ("-rules", "does not start with a lowercase letter"),
            ("my_rules", "contains '_'"),
            ("my rules", "contains ' '"),
            ("my.rules", "contains '.'"),
            ("règles", "contains 'è'"),
            ("../x", "does not start"),
            ("rules-", "a dash that separates nothing"),
            ("my--rules", "a dash that separates nothing"),
            (&"a".repeat(MAX_NAME + 1), "longer than 64"),
        ] {
            let refusal = parse_name(bad).err().unwrap_or_default();
            assert!(refusal.contains(why), "{bad:?}: {refusal}");
            assert!(refusal.contains("lowercase letters, digits"), "{refusal}");
        }
    }

    #[test]
    fn only_an_absent_or_empty_folder_is_usable() -> std::io::Result<()> {
        let base = std::env::temp_dir().join(format!("beaker-rules-new-{}", std::process::id()));
        std::fs::create_dir_all(&base)?;
        assert!(usable(&base.join("absent")).is_ok());
        assert!(usable(&base).is_ok());
        std::fs::write(base.join("file"), b"")?;
        assert_eq!(usable(&base), Err("exists and is not empty".into()));
        assert_eq!(
            usable(&base.join("file")),
            Err("exists and is not an empty directory".into())
        );
        std::fs::remove_dir_all(&base)
    }

    #[test]
    fn a_folder_is_quoted_for_the_shell_only_when_it_must_be() {
        assert_eq!(shell_word(Path::new("./my-rules")), "./my-rules");
        assert_eq!(shell_word(Path::new("/tmp/a b")), "'/tmp/a b'");
        assert_eq!(shell_word(Path::new("it's")), r"'it'\''s'");
    }
}
