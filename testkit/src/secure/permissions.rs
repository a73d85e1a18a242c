//! NATS permissions: the subjects a user may publish and subscribe to, as
//! `deploy/synadia/permissions.json` documents them for the service and the
//! operator, and as a configuration block or JWT claims.

use anyhow::{Context, Result, anyhow, bail};
use serde_json::{Value, json};

use crate::workspace_root;

/// Subjects a NATS user may publish and subscribe to; empty lists allow
/// everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    pub subscribe: Vec<String>,
    pub publish: Vec<String>,
}

impl Permissions {
    /// The permissions `deploy/synadia/permissions.json` gives the
    /// service's NATS user (the table under "NATS permissions" in
    /// `docs/operations.md` is rendered from it), without the health
    /// check's grant, which is needed only when the metrics port is off.
    pub fn documented_for_the_service() -> Result<Self> {
        let grants = documented_grants("service")?
            .into_iter()
            .filter(|grant| !grant.only_when_metrics_port_is_off);
        Self::from_grants(grants)
    }

    /// The permissions the same file gives the operator's user that runs
    /// `beaker rules …`.
    pub fn documented_for_the_operator() -> Result<Self> {
        Self::from_grants(documented_grants("operator")?)
    }

    fn from_grants(grants: impl IntoIterator<Item = Grant>) -> Result<Self> {
        let mut permissions = Self::default();
        for grant in grants {
            let list = match grant.kind.as_str() {
                "subscribe" => &mut permissions.subscribe,
                "publish" => &mut permissions.publish,
                other => bail!("{PERMISSIONS_FILE}: a grant of kind {other:?}"),
            };
            list.extend(grant.subjects);
        }
        if permissions.subscribe.is_empty() || permissions.publish.is_empty() {
            bail!("{PERMISSIONS_FILE} lists no subjects: {permissions:?}");
        }
        Ok(permissions)
    }

    /// The same without one subject.
    pub fn without(mut self, subject: &str) -> Self {
        self.subscribe.retain(|s| s != subject);
        self.publish.retain(|s| s != subject);
        self
    }

    /// As a user's `permissions` block in a nats-server configuration.
    pub(super) fn config_block(&self) -> String {
        let list = |subjects: &[String]| {
            subjects
                .iter()
                .map(|s| format!("{s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "permissions: {{ subscribe: {{ allow: [{}] }}, publish: {{ allow: [{}] }} }}",
            list(&self.subscribe),
            list(&self.publish)
        )
    }

    /// As the `pub` and `sub` claims of a user JWT.
    pub(super) fn claims(&self) -> Value {
        let allow = |subjects: &[String]| match subjects {
            [] => json!({}),
            _ => json!({ "allow": subjects }),
        };
        json!({ "pub": allow(&self.publish), "sub": allow(&self.subscribe) })
    }

    pub(super) fn is_everything(&self) -> bool {
        self.subscribe.is_empty() && self.publish.is_empty()
    }
}

/// Where the documented NATS permissions live, from the repository root.
pub const PERMISSIONS_FILE: &str = "deploy/synadia/permissions.json";

/// One grant of [`PERMISSIONS_FILE`]: publish or subscribe, the subjects,
/// and what they are for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub kind: String,
    pub subjects: Vec<String>,
    pub purpose: String,
    /// Needed only when the metrics port is off (an empty
    /// `BEAKER_METRICS_ADDR`): the image's health check then pings the
    /// service over NATS.
    pub only_when_metrics_port_is_off: bool,
}

/// The grants [`PERMISSIONS_FILE`] documents for one user: `service` or
/// `operator`.
pub fn documented_grants(user: &str) -> Result<Vec<Grant>> {
    let path = workspace_root().join(PERMISSIONS_FILE);
    let text = std::fs::read_to_string(&path).context(PERMISSIONS_FILE)?;
    let file: Value = serde_json::from_str(&text).context(PERMISSIONS_FILE)?;
    let Some(list) = file[user]["grants"].as_array() else {
        bail!("{PERMISSIONS_FILE} has no grants for the {user} user");
    };
    list.iter().map(|grant| read_grant(user, grant)).collect()
}

/// One grant of the file, with every field it must have.
fn read_grant(user: &str, grant: &Value) -> Result<Grant> {
    let text = |key: &str| match grant[key].as_str() {
        Some(value) => Ok(value.to_string()),
        None => Err(anyhow!(
            "{PERMISSIONS_FILE}: a {user} grant without {key:?}"
        )),
    };
    let mut subjects = Vec::new();
    for subject in grant["subjects"].as_array().into_iter().flatten() {
        match subject.as_str() {
            Some(subject) => subjects.push(subject.to_string()),
            None => bail!("{PERMISSIONS_FILE}: a {user} subject that is not text: {subject}"),
        }
    }
    if subjects.is_empty() {
        bail!("{PERMISSIONS_FILE}: a {user} grant without subjects");
    }
    let conditional = grant["only_when_metrics_port_is_off"].as_bool() == Some(true);
    Ok(Grant {
        kind: text("kind")?,
        subjects,
        purpose: text("for")?,
        only_when_metrics_port_is_off: conditional,
    })
}

/// The grants as the Markdown table `docs/operations.md` shows, one line
/// per grant, each line ending in a newline.
pub fn grants_table(grants: &[Grant]) -> String {
    let mut table = String::from("| | subject | for |\n| --- | --- | --- |\n");
    for grant in grants {
        let subjects = grant
            .subjects
            .iter()
            .map(|subject| format!("`{subject}`"))
            .collect::<Vec<_>>()
            .join(", ");
        table.push_str(&format!(
            "| {} | {subjects} | {} |\n",
            grant.kind, grant.purpose
        ));
    }
    table
}
