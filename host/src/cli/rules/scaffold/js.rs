//! A JavaScript project: the default rules of `examples/rules-js`, with
//! its unit tests and the tools pinned by its package-lock.json.

use super::{File, Project, TemplateError, VERSION, rewrite};

const RULES: &str = include_str!("../../../../../examples/rules-js/src/rules.js");
const TEST: &str = include_str!("../../../../../examples/rules-js/test/rules.test.js");
const PACKAGE: &str = include_str!("../../../../../examples/rules-js/package.json");
const LOCK: &str = include_str!("../../../../../examples/rules-js/package-lock.json");
const BUILD: &str = include_str!("templates/js/build.sh.tmpl");
const README: &str = include_str!("templates/js/README.md.tmpl");

/// What the rewrites replace: the example's name and version, in the
/// source, its test, the package and the lockfile's two copies of the
/// package's own entry (at two indentations; the dependencies' versions
/// are left alone).
const NAME_CONST: &str = "export const NAME = 'beaker-default-rules-js';";
const VERSION_CONST: &str = "export const VERSION = '1.0.0';";
const DESCRIBED: &str = "{ name: 'beaker-default-rules-js', version: '1.0.0' }";
const PACKAGE_ID: &str = "\"name\": \"beaker-rules-js\",\n  \"version\": \"1.0.0\",";
const LOCK_ROOT_ID: &str = "\"name\": \"beaker-rules-js\",\n      \"version\": \"1.0.0\",";

pub(super) fn files(project: &Project<'_>) -> Result<Vec<File>, TemplateError> {
    let name = project.name;
    let package_id = format!("\"name\": \"{name}\",\n  \"version\": \"{VERSION}\",");
    let lock_root_id = format!("\"name\": \"{name}\",\n      \"version\": \"{VERSION}\",");
    let rules = rewrite(
        "examples/rules-js/src/rules.js",
        RULES,
        &[
            (NAME_CONST, &format!("export const NAME = '{name}';")),
            (
                VERSION_CONST,
                &format!("export const VERSION = '{VERSION}';"),
            ),
        ],
    )?;
    let test = rewrite(
        "examples/rules-js/test/rules.test.js",
        TEST,
        &[(
            DESCRIBED,
            &format!("{{ name: '{name}', version: '{VERSION}' }}"),
        )],
    )?;
    let package = rewrite(
        "examples/rules-js/package.json",
        PACKAGE,
        &[(PACKAGE_ID, &package_id)],
    )?;
    let lock = rewrite(
        "examples/rules-js/package-lock.json",
        LOCK,
        &[(PACKAGE_ID, &package_id), (LOCK_ROOT_ID, &lock_root_id)],
    )?;
    let deploy = project.deploy_section("`VERSION` in `src/rules.js`");
    Ok(vec![
        File::new("src/rules.js", rules),
        File::new("test/rules.test.js", test),
        File::new("package.json", package),
        File::new("package-lock.json", lock),
        File::script("build.sh", project.render(BUILD, &[])),
        File::new(
            "README.md",
            project.render(README, &[("deploy", deploy.trim_end())]),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::rules::scaffold::{Lang, files as all_files};

    /// The strings the rewrites replace are still in examples/rules-js.
    #[test]
    fn the_example_still_holds_what_is_rewritten() {
        for (file, source, anchor) in [
            ("src/rules.js", RULES, NAME_CONST),
            ("src/rules.js", RULES, VERSION_CONST),
            ("test/rules.test.js", TEST, DESCRIBED),
            ("package.json", PACKAGE, PACKAGE_ID),
            ("package-lock.json", LOCK, PACKAGE_ID),
            ("package-lock.json", LOCK, LOCK_ROOT_ID),
        ] {
            assert_eq!(source.matches(anchor).count(), 1, "{file}: {anchor}");
        }
    }

    #[test]
    fn the_project_is_renamed_and_keeps_the_pins() {
        let files = all_files("shelf-rules", Lang::Js).unwrap_or_else(|e| panic!("{e}"));
        let text = |path: &str| {
            files
                .iter()
                .find(|f| f.path == path)
                .map(|f| f.text.clone())
                .unwrap_or_else(|| panic!("no {path}"))
        };
        assert!(text("src/rules.js").contains("export const NAME = 'shelf-rules';"));
        assert!(text("src/rules.js").contains("export const VERSION = '0.1.0';"));
        assert!(text("test/rules.test.js").contains("{ name: 'shelf-rules', version: '0.1.0' }"));
        for path in ["package.json", "package-lock.json"] {
            let json: serde_json::Value =
                serde_json::from_str(&text(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(json["name"], "shelf-rules", "{path}");
            assert_eq!(json["version"], "0.1.0", "{path}");
        }
        let lock: serde_json::Value =
            serde_json::from_str(&text("package-lock.json")).unwrap_or_default();
        assert_eq!(lock["packages"][""]["name"], "shelf-rules");
        // Only the package's own entries changed: the pins are the example's.
        let original: serde_json::Value = serde_json::from_str(LOCK).unwrap_or_default();
        assert_eq!(
            lock["packages"][""]["devDependencies"],
            original["packages"][""]["devDependencies"]
        );
        assert_eq!(
            text("package-lock.json").len(),
            LOCK.len() - 2 * ("beaker-rules-js".len() - "shelf-rules".len())
        );
        let build = text("build.sh");
        assert!(build.contains("out=$here/target/shelf-rules.wasm"));
        assert!(build.contains("wit=$here/wit"));
    }
}
