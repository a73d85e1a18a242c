//! `beaker rules deploy | rollback | promote | drop-shadow`: writes what
//! the bucket's `active` and `shadow` name, then waits until every running
//! instance reports the result (or refuses it), showing progress.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use async_nats::Client;

use super::progress::Progress;
use super::{FAILED, RemoteArgs, TIMED_OUT, UNREACHABLE, connect, fail, load_locally, operator};
use crate::config::SandboxArgs;
use crate::rules::Digest;
use crate::rules::bucket::{ACTIVE, ChangeError, Pointer, RolledBack, SHADOW, Target};
use crate::service::micro::{InstanceInfo, discover};
use crate::startup::SERVICE_NAME;

/// What an instance says about a digest it was asked to take.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Report {
    Waiting,
    Done,
    Refused(String),
}

/// What the instances are asked to take.
#[derive(Debug, Clone, Copy)]
enum Wanted<'a> {
    Active(&'a Digest),
    Shadow(&'a Digest),
    /// Each its own rules file.
    File,
}

impl Wanted<'_> {
    fn of(target: &Target) -> Wanted<'_> {
        match target {
            Target::Component(pointer) => Wanted::Active(&pointer.digest),
            Target::File(_) => Wanted::File,
        }
    }

    fn describe(self) -> String {
        match self {
            Wanted::Active(digest) => format!("make {} active", digest.short()),
            Wanted::Shadow(digest) => format!("make {} the shadow", digest.short()),
            Wanted::File => "serve their rules file".into(),
        }
    }
}

/// Where an instance stands with what it was asked to take.
fn report(info: &InstanceInfo, wanted: Wanted<'_>) -> Report {
    let Ok(rules) = info.rules() else {
        return Report::Waiting;
    };
    let (taken, digest) = match wanted {
        Wanted::Shadow(digest) => (
            rules.shadow.as_ref().map(|s| &s.digest) == Some(digest),
            digest,
        ),
        Wanted::Active(digest) => (rules.digest == *digest, digest),
        // An instance that serves its file says so in its origin; the
        // digest may differ from one instance's file to another's.
        Wanted::File => {
            return if rules.origin.starts_with("file:") {
                Report::Done
            } else {
                Report::Waiting
            };
        }
    };
    if taken {
        return Report::Done;
    }
    match rules.refused {
        Some(refusal) if refusal.digest == *digest => Report::Refused(refusal.reason),
        _ => Report::Waiting,
    }
}

/// Waits until every instance found has taken `digest` (or refused it),
/// showing progress (see [`Progress`]); prints each instance's result.
async fn wait_for(client: &Client, remote: &RemoteArgs, wanted: Wanted<'_>) -> ExitCode {
    let what = wanted.describe();
    let deadline = Instant::now() + remote.wait;
    let mut progress = Progress::on_stderr("looking for the running instances");
    loop {
        let instances = discover(client, SERVICE_NAME, remote.discovery_window)
            .await
            .unwrap_or_default();
        if instances.is_empty() {
            progress.finish();
            return fail(
                UNREACHABLE,
                format!(
                    "no running instance answered on $SRV.INFO.{SERVICE_NAME}: the rules are in the bucket \
                     and will be loaded by instances when they start, but nothing confirms them yet"
                ),
            );
        }
        let reports: BTreeMap<&String, Report> = instances
            .iter()
            .map(|(id, info)| (id, report(info, wanted)))
            .collect();
        let done = reports.values().filter(|r| **r == Report::Done).count();
        let refused = reports
            .values()
            .filter(|r| matches!(r, Report::Refused(_)))
            .count();
        let waiting = reports.len() - done - refused;
        progress.set(format!(
            "waiting for {} instance(s) to {what}: {done} done, {refused} refused",
            reports.len()
        ));
        if waiting == 0 || Instant::now() > deadline {
            progress.finish();
            for (id, result) in &reports {
                let text = match result {
                    Report::Done => format!("done: {what}"),
                    Report::Refused(reason) => format!("REFUSED: {reason}"),
                    Report::Waiting => "did not report in time".to_string(),
                };
                println!("{id}  {text}");
            }
            return if refused > 0 {
                ExitCode::from(FAILED)
            } else if waiting > 0 {
                ExitCode::from(TIMED_OUT)
            } else {
                ExitCode::SUCCESS
            };
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub(super) async fn deploy(
    file: &Path,
    shadow: bool,
    sandbox: &SandboxArgs,
    remote: &RemoteArgs,
) -> ExitCode {
    let (_engine, rules, bytes, took) = match load_locally(file, sandbox).await {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    eprintln!(
        "checked {} {} (sha256 {}) in {} ms",
        rules.name,
        rules.version,
        rules.digest.short(),
        took.as_millis()
    );
    let (client, store) = match connect(remote).await {
        Ok(connected) => connected,
        Err(code) => return code,
    };
    if let Err(e) = store.store_component(&bytes).await {
        return fail(UNREACHABLE, e);
    }
    let pointer = Pointer {
        digest: rules.digest.clone(),
        name: rules.name.clone(),
        version: rules.version.clone(),
        deployed_at: chrono::Utc::now(),
        deployed_by: Some(operator()),
    };
    match store.deploy(pointer, shadow).await {
        Ok(None) => {}
        Ok(Some(unreadable)) => eprintln!(
            "beaker rules: replaced an active deployment that could not be read ({unreadable}); \
             the history it held is lost"
        ),
        Err(e) => return fail(UNREACHABLE, e),
    }
    eprintln!(
        "deployed to bucket {} as {}",
        remote.bucket,
        if shadow { SHADOW } else { ACTIVE }
    );
    let wanted = if shadow {
        Wanted::Shadow(&rules.digest)
    } else {
        Wanted::Active(&rules.digest)
    };
    wait_for(&client, remote, wanted).await
}

pub(super) async fn rollback(remote: &RemoteArgs, to: Option<&str>) -> ExitCode {
    let (client, store) = match connect(remote).await {
        Ok(connected) => connected,
        Err(code) => return code,
    };
    match store.roll_back(to, Some(operator())).await {
        Ok(RolledBack { from, to }) => {
            eprintln!("rolled back from {} to {}", from.describe(), to.describe());
            wait_for(&client, remote, Wanted::of(&to)).await
        }
        Err(e) => change_failed(e),
    }
}

pub(super) async fn promote(remote: &RemoteArgs) -> ExitCode {
    let (client, store) = match connect(remote).await {
        Ok(connected) => connected,
        Err(code) => return code,
    };
    match store.promote_shadow(Some(operator())).await {
        Ok(active) => {
            eprintln!("promoted the shadow rules {}", active.digest.short());
            wait_for(&client, remote, Wanted::Active(&active.digest)).await
        }
        Err(e) => change_failed(e),
    }
}

/// A refused change fails (1); an unreachable bucket is unreachable (3).
fn change_failed(error: ChangeError) -> ExitCode {
    let code = if error.is_refusal() {
        FAILED
    } else {
        UNREACHABLE
    };
    fail(code, error)
}

pub(super) async fn drop_shadow(remote: &RemoteArgs) -> ExitCode {
    let (_client, store) = match connect(remote).await {
        Ok(connected) => connected,
        Err(code) => return code,
    };
    match store.delete(SHADOW).await {
        Ok(()) => {
            eprintln!("the shadow rules are dropped");
            ExitCode::SUCCESS
        }
        Err(e) => fail(UNREACHABLE, e),
    }
}
