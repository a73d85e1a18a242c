//! Documentation that is data: what the docs show must be what the tests
//! use, so a doc that goes stale fails a test.

use anyhow::{Context, Result};
use beaker_testkit::secure::{PERMISSIONS_FILE, documented_grants, grants_table};
use beaker_testkit::workspace_root;

/// The document that shows the NATS permissions, under "NATS permissions".
const OPERATIONS: &str = "docs/operations.md";
/// Where each rendered table ends.
const END: &str = "<!-- /permissions -->";

/// The text between `start` and the next [`END`] after it.
fn between<'a>(text: &'a str, start: &str) -> Option<&'a str> {
    let (_, rest) = text.split_once(start)?;
    let (block, _) = rest.split_once(END)?;
    Some(block)
}

#[test]
fn the_documented_nats_permissions_are_the_data_file() -> Result<()> {
    let path = workspace_root().join(OPERATIONS);
    let doc = std::fs::read_to_string(&path).context(OPERATIONS)?;
    for user in ["service", "operator"] {
        let start = format!("<!-- permissions:{user} -->");
        let expected = format!("\n\n{}\n", grants_table(&documented_grants(user)?));
        let found = between(&doc, &start)
            .with_context(|| format!("{OPERATIONS} has no {start} … {END} block"))?;
        assert!(
            found == expected,
            "the {user} permissions in {OPERATIONS} are not those of {PERMISSIONS_FILE}; \
             render them from the file, between the markers:\n\n{start}{expected}{END}\n"
        );
    }
    Ok(())
}
