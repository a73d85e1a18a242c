//! The schemas of `schemas/`, compiled here independently of the host's
//! own copy, to check what callers receive.

use anyhow::{Result, anyhow};
use serde_json::Value;

use crate::paths::workspace_root;

/// Validators compiled straight from the files in `schemas/`, independent
/// of the host's own copy, to check what callers receive.
pub struct Contract {
    validators: std::collections::HashMap<String, jsonschema::Validator>,
}

impl Contract {
    pub fn load() -> Result<Self> {
        let dir = workspace_root().join("schemas");
        let mut documents = Vec::new();
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| anyhow!("odd file name"))?
                .to_string();
            let value: Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
            documents.push((name, value));
        }
        let registry = jsonschema::Registry::new()
            .extend(documents.iter().map(|(_, v)| {
                (
                    v["$id"].as_str().unwrap_or_default().to_string(),
                    jsonschema::Resource::from_contents(v.clone()),
                )
            }))?
            .prepare()?;
        let mut validators = std::collections::HashMap::new();
        for (name, value) in &documents {
            let validator = jsonschema::options()
                .with_registry(&registry)
                .build(value)
                .map_err(|e| anyhow!("{name}: {e}"))?;
            validators.insert(name.clone(), validator);
        }
        Ok(Self { validators })
    }

    /// Panics with the reason when `value` does not match schema `name`.
    pub fn assert_valid(&self, name: &str, value: &Value) {
        let validator = self
            .validators
            .get(name)
            .unwrap_or_else(|| panic!("no schema {name}"));
        if let Some(error) = validator.iter_errors(value).next() {
            panic!("{value} does not match {name}: {error}");
        }
    }
}
