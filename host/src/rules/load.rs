//! Loading a candidate: compiled (or found in the cache), linked against
//! the world, asked to describe itself and smoke-tested on a few ordinary
//! decisions before it may serve.

use wasmtime::component::Component;

use super::bindings::RulesPre;
use super::call::{CallError, classify};
use super::digest::Digest;
use super::engine::{LoadError, Rules, RulesEngine};
use super::sandbox::Sandbox;
use super::{Operation, Request, RulesInfo, describe_operation};
use crate::contract::schema::shorten;

/// The longest rules name or version we accept.
const MAX_NAME_LEN: usize = 64;

impl RulesEngine {
    pub async fn load_file(&self, path: &std::path::Path) -> Result<Rules, LoadError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| LoadError::Read {
                path: path.display().to_string(),
                source,
            })?;
        self.load(&bytes).await
    }

    /// Compiles a component, checks it against the world and smoke-tests
    /// it. Compilation runs on a blocking thread: it can take seconds.
    pub async fn load(&self, bytes: &[u8]) -> Result<Rules, LoadError> {
        // Binary components start with the wasm magic; the text format (WAT,
        // handy for tests) starts with a parenthesis.
        let text = std::str::from_utf8(bytes)
            .map(str::trim_start)
            .unwrap_or("");
        if !bytes.starts_with(b"\0asm") && !text.starts_with('(') {
            return Err(LoadError::Invalid(
                "the file is neither a WebAssembly binary (no \\0asm header) nor WebAssembly text"
                    .into(),
            ));
        }
        let digest = Digest::of(bytes);
        let engine = self.engine.clone();
        let owned = bytes.to_vec();
        let component = tokio::task::spawn_blocking(move || Component::new(&engine, owned))
            .await
            .map_err(|e| LoadError::Engine(e.to_string()))?
            .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::Incompatible(format!("{e:#}")))?;
        let pre =
            RulesPre::new(instance_pre).map_err(|e| LoadError::Incompatible(format!("{e:#}")))?;

        let info = self
            .describe(&pre)
            .await
            .map_err(|e| LoadError::SmokeTest(format!("describe failed: {e}")))?;
        check_name("name", &info.name)?;
        check_name("version", &info.version)?;
        let rules = Rules {
            pre,
            name: info.name,
            version: info.version,
            digest,
            loaded_at: chrono::Utc::now(),
        };
        self.smoke_test(&rules).await?;
        Ok(rules)
    }

    async fn describe(&self, pre: &RulesPre<Sandbox>) -> Result<RulesInfo, CallError> {
        let mut store = self.store();
        let instance = pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| classify(&store, e, self.limits))?;
        instance
            .call_describe(&mut store)
            .await
            .map_err(|e| classify(&store, e, self.limits))
    }

    /// A candidate must answer a few ordinary decisions without trapping
    /// and without an invalid decision before it may serve.
    async fn smoke_test(&self, rules: &Rules) -> Result<(), LoadError> {
        let cases = [
            (Operation::Get, None),
            (Operation::Get, Some(5)),
            (Operation::Add(1), None),
            (Operation::Add(3), Some(7)),
            (Operation::Remove(1), None),
            (Operation::Remove(2), Some(5)),
            (Operation::Remove(9), Some(5)),
        ];
        for (operation, current) in cases {
            let request = Request {
                sku: "smoke-test".into(),
                operation,
            };
            if let Err(e) = self.decide(rules, &request, current).await {
                return Err(LoadError::SmokeTest(format!(
                    "{} with stock {}: {e}",
                    describe_operation(operation),
                    current.map_or("none".to_string(), |l| l.to_string())
                )));
            }
        }
        Ok(())
    }
}

fn check_name(what: &str, value: &str) -> Result<(), LoadError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_NAME_LEN
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(LoadError::SmokeTest(format!(
            "describe returned the {what} {:?}: use 1 to {MAX_NAME_LEN} characters of A-Z a-z 0-9 . _ + -",
            shorten(value)
        )))
    }
}
