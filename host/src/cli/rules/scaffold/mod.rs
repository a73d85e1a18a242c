//! The files of a new rules project (`beaker rules new`).
//!
//! A project starts from the repository's own default rules, WIT and table
//! of cases, embedded into the binary when it is built and rewritten only
//! where they must change (the name, the version, the WIT's path): so a new
//! project is exactly what the host speaks and what the examples build, and
//! cannot drift from them. Each rewrite names the text it replaces; if the
//! source no longer holds it, the rewrite fails rather than writing a
//! project that still says `beaker-default-rules`, and the unit tests of
//! each language catch that before a release.

mod js;
mod python;
mod rust;

use std::fmt;

/// The WIT the host speaks: the world a rules component implements.
pub(super) const WIT: &str = include_str!("../../../../../wit/inventory.wit");

/// The default rules' table of decision cases.
const CASES: &str = include_str!("../../../../../examples/cases/default-rules.cases");
/// The table's first lines, which name the repository's paths: a project
/// gets lines of its own instead, as many, because a case's default SKU is
/// `case-N`, N its line number, and messages the cases expect name it.
const CASES_RUN_WITH: &str = "# Decision cases for the default rules (guest/), run with
#   beaker rules check target/wasm32-wasip2/release/beaker_rules.wasm \\
#     --cases examples/cases/default-rules.cases
";
const CASES_HEADER: &str = include_str!("templates/common/cases-header.tmpl");
const GITIGNORE: &str = include_str!("templates/common/gitignore.tmpl");
const DEPLOY: &str = include_str!("templates/common/deploy.md.tmpl");

/// The version a new project's `describe()` reports.
pub const VERSION: &str = "0.1.0";

/// The language of a new project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust, with wit-bindgen (Beaker's default rules).
    Rust,
    /// JavaScript, with componentize-js.
    #[value(alias = "javascript")]
    Js,
    /// Python, with componentize-py.
    #[value(alias = "py")]
    Python,
}

impl Lang {
    /// What `beaker rules check` and `deploy` need added for a component of
    /// this language: JavaScript and Python engines need more than the
    /// host's default memory cap of 8 MiB (examples/README.md).
    pub fn memory_flag(self) -> &'static str {
        match self {
            Lang::Rust => "",
            Lang::Js | Lang::Python => " --rules-memory-mib 16",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Lang::Rust => "Rust",
            Lang::Js => "JavaScript",
            Lang::Python => "Python",
        })
    }
}

/// One file of a new project.
#[derive(Debug)]
pub struct File {
    /// Relative to the project's folder, `/`-separated.
    pub path: String,
    pub text: String,
    /// A build script, to be run as `./build.sh`.
    pub executable: bool,
}

impl File {
    fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            text: text.into(),
            executable: false,
        }
    }

    fn script(path: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            executable: true,
            ..Self::new(path, text)
        }
    }
}

/// An embedded source no longer holds the text a rewrite replaces: the
/// repository changed and the scaffold was not changed with it.
#[derive(Debug, thiserror::Error)]
#[error(
    "the embedded {file} no longer contains {anchor:?}: this build of beaker cannot scaffold it"
)]
pub struct TemplateError {
    file: &'static str,
    anchor: String,
}

/// Every file of a project named `name` (already checked by
/// [`super::new::parse_name`]) in `lang`.
pub fn files(name: &str, lang: Lang) -> Result<Vec<File>, TemplateError> {
    let project = Project { name, lang };
    let mut files = match lang {
        Lang::Rust => rust::files(&project)?,
        Lang::Js => js::files(&project)?,
        Lang::Python => python::files(&project)?,
    };
    files.push(File::new("wit/inventory.wit", WIT));
    files.push(File::new(project.cases_file(), project.cases()?));
    files.push(File::new(".gitignore", GITIGNORE));
    Ok(files)
}

/// What every language's files are rendered with.
struct Project<'a> {
    name: &'a str,
    lang: Lang,
}

impl Project<'_> {
    fn cases_file(&self) -> String {
        format!("{}.cases", self.name)
    }

    /// The default table of cases, its first lines naming this project.
    fn cases(&self) -> Result<String, TemplateError> {
        replace_once(
            "examples/cases/default-rules.cases",
            CASES,
            CASES_RUN_WITH,
            &self.render(CASES_HEADER, &[]),
        )
    }

    /// The README's section on checking and deploying, the same for every
    /// language but for the memory flag and where the version is set.
    fn deploy_section(&self, version_at: &str) -> String {
        self.render(DEPLOY, &[("version_at", version_at)])
    }

    /// `template` with `{{name}}`, `{{memory}}`, `{{cases}}` and `extra`'s
    /// keys replaced.
    fn render(&self, template: &str, extra: &[(&str, &str)]) -> String {
        let cases = count_cases(CASES).to_string();
        let common = [
            ("name", self.name),
            ("memory", self.lang.memory_flag()),
            ("cases", cases.as_str()),
        ];
        common
            .iter()
            .chain(extra)
            .fold(template.to_string(), |text, (key, value)| {
                text.replace(&format!("{{{{{key}}}}}"), value)
            })
    }
}

/// The lines of a cases table that are cases: neither blank nor comments.
fn count_cases(table: &str) -> usize {
    table
        .lines()
        .filter(|line| !line.split('#').next().unwrap_or_default().trim().is_empty())
        .count()
}

/// `source` (the embedded `file`) with `from`, which must occur exactly
/// once, replaced by `to`.
fn replace_once(
    file: &'static str,
    source: &str,
    from: &str,
    to: &str,
) -> Result<String, TemplateError> {
    if source.matches(from).count() != 1 {
        return Err(anchor_missing(file, from));
    }
    Ok(source.replacen(from, to, 1))
}

/// `source` with each rewrite of [`replace_once`] applied in turn.
fn rewrite(
    file: &'static str,
    source: &str,
    rewrites: &[(&str, &str)],
) -> Result<String, TemplateError> {
    rewrites
        .iter()
        .try_fold(source.to_string(), |text, (from, to)| {
            replace_once(file, &text, from, to)
        })
}

/// The comma-separated names between `open` and the next `close` in
/// `source` (a `use` or `import` list), trimmed.
fn names_in(
    file: &'static str,
    source: &str,
    open: &str,
    close: char,
) -> Result<Vec<String>, TemplateError> {
    let start = source
        .find(open)
        .ok_or_else(|| anchor_missing(file, open))?
        + open.len();
    let len = source[start..]
        .find(close)
        .ok_or_else(|| anchor_missing(file, &close.to_string()))?;
    Ok(source[start..start + len]
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect())
}

fn anchor_missing(file: &'static str, anchor: &str) -> TemplateError {
    TemplateError {
        file,
        anchor: anchor.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "shelf-rules";

    fn project(lang: Lang) -> Vec<File> {
        files(NAME, lang).unwrap_or_else(|e| panic!("{lang}: {e}"))
    }

    #[test]
    fn every_language_gets_the_wit_the_cases_a_readme_and_a_build_script() {
        for lang in [Lang::Rust, Lang::Js, Lang::Python] {
            let files = project(lang);
            let find = |path: &str| {
                files
                    .iter()
                    .find(|f| f.path == path)
                    .unwrap_or_else(|| panic!("{lang}: no {path}"))
            };
            assert_eq!(find("wit/inventory.wit").text, WIT);
            assert!(find("build.sh").executable);
            assert!(find(".gitignore").text.contains("node_modules/"));
            let readme = &find("README.md").text;
            for command in [
                format!("beaker rules check target/{NAME}.wasm --cases {NAME}.cases"),
                format!("beaker rules deploy target/{NAME}.wasm --shadow"),
                "beaker rules status".to_string(),
                "beaker rules promote".to_string(),
                "beaker rules rollback".to_string(),
            ] {
                assert!(readme.contains(&command), "{lang}: {command}");
            }
            assert_eq!(
                readme.contains("--rules-memory-mib 16"),
                lang != Lang::Rust,
                "{lang}"
            );
            for file in &files {
                assert!(!file.text.contains("{{"), "{lang}: {} {{{{", file.path);
                // The WIT is vendored as it is: it names them as an example.
                assert!(
                    file.path == "wit/inventory.wit" || !file.text.contains("beaker-default-rules"),
                    "{lang}: {} still names the default rules",
                    file.path
                );
            }
        }
    }

    /// The project's table is the default one line for line: only the
    /// first lines, which say how to run it, are the project's own.
    #[test]
    fn the_cases_are_the_default_rules_table_line_for_line() {
        assert_eq!(CASES.matches(CASES_RUN_WITH).count(), 1);
        assert!(CASES.starts_with(CASES_RUN_WITH));
        let files = project(Lang::Js);
        let cases = files
            .iter()
            .find(|f| f.path == format!("{NAME}.cases"))
            .map(|f| f.text.as_str())
            .unwrap_or_default();
        assert_eq!(cases.lines().count(), CASES.lines().count());
        let header = CASES_RUN_WITH.lines().count();
        assert!(
            cases.lines().skip(header).eq(CASES.lines().skip(header)),
            "{cases}"
        );
        assert!(count_cases(CASES) >= 12);
        assert!(cases.starts_with(&format!("# Decision cases for {NAME},")));
        assert!(cases.contains(&format!(
            "beaker rules check target/{NAME}.wasm \\\n#     --cases {NAME}.cases --rules-memory-mib 16\n"
        )));
        assert!(!cases.contains("examples/cases/default-rules"), "{cases}");
    }

    #[test]
    fn a_rewrite_refuses_a_source_without_its_anchor() {
        assert!(replace_once("f", "a b", "b", "c").is_ok_and(|s| s == "a c"));
        assert!(replace_once("f", "a b", "x", "c").is_err());
        assert!(replace_once("f", "b b", "b", "c").is_err());
    }
}
