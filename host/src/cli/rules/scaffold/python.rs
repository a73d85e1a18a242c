//! A Python project: the default rules of `examples/rules-py`, with its
//! unit tests, its import check and the tool pinned by its
//! requirements.txt.

use super::{File, Project, TemplateError, VERSION, names_in, rewrite};

const APP: &str = include_str!("../../../../../examples/rules-py/src/app.py");
const TEST: &str = include_str!("../../../../../examples/rules-py/test/test_rules.py");
const REQUIREMENTS: &str = include_str!("../../../../../examples/rules-py/requirements.txt");
const IMPORTS: &str = include_str!("../../../../../examples/rules-py/imports.py");
const BUILD: &str = include_str!("templates/python/build.sh.tmpl");
const README: &str = include_str!("templates/python/README.md.tmpl");

/// What the rewrites replace: the example's name and version, in the
/// source and in its test.
const NAME_CONST: &str = "NAME = \"beaker-default-rules-py\"\n";
const VERSION_CONST: &str = "VERSION = \"1.0.0\"\n";
const DESCRIBED: &str = "RulesInfo(name=\"beaker-default-rules-py\", version=\"1.0.0\")";
/// Where `src/app.py` imports the binding types it uses, which the README
/// lists.
const TYPES_IMPORT: &str = "from wit_world.imports.types import (";

pub(super) fn files(project: &Project<'_>) -> Result<Vec<File>, TemplateError> {
    let name = project.name;
    let app = rewrite(
        "examples/rules-py/src/app.py",
        APP,
        &[
            (NAME_CONST, &format!("NAME = \"{name}\"\n")),
            (VERSION_CONST, &format!("VERSION = \"{VERSION}\"\n")),
        ],
    )?;
    let test = rewrite(
        "examples/rules-py/test/test_rules.py",
        TEST,
        &[(
            DESCRIBED,
            &format!("RulesInfo(name=\"{name}\", version=\"{VERSION}\")"),
        )],
    )?;
    let types = names_in("examples/rules-py/src/app.py", APP, TYPES_IMPORT, ')')?
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let deploy = project.deploy_section("`VERSION` in `src/app.py`");
    let readme = project.render(
        README,
        &[
            ("types", &types),
            ("requirements", REQUIREMENTS.trim()),
            ("deploy", deploy.trim_end()),
        ],
    );
    Ok(vec![
        File::new("src/app.py", app),
        File::new("test/test_rules.py", test),
        File::new("requirements.txt", REQUIREMENTS),
        File::new("imports.py", IMPORTS),
        File::script("build.sh", project.render(BUILD, &[])),
        File::new("README.md", readme),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::rules::scaffold::{Lang, files as all_files};

    /// The strings the rewrites replace are still in examples/rules-py.
    #[test]
    fn the_example_still_holds_what_is_rewritten() {
        for (file, source, anchor) in [
            ("src/app.py", APP, NAME_CONST),
            ("src/app.py", APP, VERSION_CONST),
            ("test/test_rules.py", TEST, DESCRIBED),
            ("src/app.py", APP, TYPES_IMPORT),
        ] {
            assert_eq!(source.matches(anchor).count(), 1, "{file}: {anchor}");
        }
        // The one pin the README quotes.
        assert!(REQUIREMENTS.trim().starts_with("componentize-py=="));
        assert!(!REQUIREMENTS.trim().contains('\n'));
    }

    #[test]
    fn the_project_is_renamed_and_keeps_the_pins() {
        let files = all_files("shelf-rules", Lang::Python).unwrap_or_else(|e| panic!("{e}"));
        let text = |path: &str| {
            files
                .iter()
                .find(|f| f.path == path)
                .map(|f| f.text.clone())
                .unwrap_or_else(|| panic!("no {path}"))
        };
        assert!(text("src/app.py").contains("\nNAME = \"shelf-rules\"\n"));
        assert!(text("src/app.py").contains("\nVERSION = \"0.1.0\"\n"));
        assert!(
            text("test/test_rules.py")
                .contains("RulesInfo(name=\"shelf-rules\", version=\"0.1.0\")")
        );
        assert_eq!(text("requirements.txt"), REQUIREMENTS);
        assert_eq!(text("imports.py"), IMPORTS);
        assert!(text("README.md").contains(REQUIREMENTS.trim()));
        assert!(text("README.md").contains("(`Decision`, `Event`, `Event_LowStock`, `Limits`, "));
        assert!(text("build.sh").contains("out=$here/target/shelf-rules.wasm"));
    }
}
