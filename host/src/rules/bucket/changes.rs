//! The changes an operator makes to what the bucket names — deploy,
//! promote the shadow, roll back to an earlier deployment — and the reading of
//! both pointers, in one place, so that `beaker rules` and the gateway's
//! operator routes read and change the bucket the same way.

use serde::Serialize;

use super::{ACTIVE, Bucket, BucketError, Deployment, Pointer, SHADOW, Target};

/// What the bucket names: the active deployment (with its history) and
/// the shadow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Deployments {
    /// `None` when nothing was deployed through the bucket: instances
    /// serve their rules file.
    pub active: Option<Deployment>,
    pub shadow: Option<Pointer>,
}

/// Why a promote or a rollback did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("there are no shadow rules to promote")]
    NoShadow,
    #[error(
        "nothing was deployed through the bucket: the instances already serve their rules files"
    )]
    NothingDeployed,
    #[error("the instances already serve their rules files, and nothing was deployed before that")]
    NoEarlier,
    #[error(
        "no earlier deployment is named {wanted:?}: name one by version, name@version, \
         the first six or more digits of its sha256, or `file` (see `beaker rules history`)"
    )]
    NotInHistory { wanted: String },
    #[error(transparent)]
    Bucket(#[from] BucketError),
}

impl ChangeError {
    /// Whether the bucket's state refused the change (as opposed to the
    /// bucket being out of reach): asking again will not help.
    pub fn is_refusal(&self) -> bool {
        !matches!(self, ChangeError::Bucket(_))
    }
}

/// What a rollback changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolledBack {
    pub from: Target,
    pub to: Target,
}

impl Bucket {
    /// Both pointers, as they are now.
    pub async fn deployments(&self) -> Result<Deployments, BucketError> {
        Ok(Deployments {
            active: self.read_json::<Deployment>(ACTIVE).await?,
            shadow: self.read_json::<Pointer>(SHADOW).await?,
        })
    }

    /// Makes `next` the active rules (or the shadow), on top of what was
    /// active. `next` must already be in the bucket ([`Bucket::store_component`]).
    ///
    /// An `active` that cannot be read (written by another client, or
    /// damaged) does not stop a deploy: it is replaced, and the history it
    /// held is lost; the error that says why is returned for the operator.
    pub async fn deploy(
        &self,
        next: Pointer,
        shadow: bool,
    ) -> Result<Option<BucketError>, BucketError> {
        if shadow {
            return self.write_json(SHADOW, &next).await.map(|()| None);
        }
        let (previous, unreadable) = match self.read_json::<Deployment>(ACTIVE).await {
            Ok(previous) => (previous, None),
            Err(e @ (BucketError::Invalid { .. } | BucketError::Damaged { .. })) => (None, Some(e)),
            Err(e) => return Err(e),
        };
        self.write_json(
            ACTIVE,
            &Deployment::succeed(previous, Target::Component(next)),
        )
        .await?;
        Ok(unreadable)
    }

    /// The shadow becomes the active rules (the active ones go on top of
    /// the history) and the shadow is cleared. Returns what is active now.
    pub async fn promote_shadow(&self, by: Option<String>) -> Result<Pointer, ChangeError> {
        let shadow = self
            .read_json::<Pointer>(SHADOW)
            .await?
            .ok_or(ChangeError::NoShadow)?;
        let previous = self.read_json::<Deployment>(ACTIVE).await?;
        let next = Pointer {
            deployed_at: chrono::Utc::now(),
            deployed_by: by,
            ..shadow
        };
        self.write_json(
            ACTIVE,
            &Deployment::succeed(previous, Target::Component(next.clone())),
        )
        .await?;
        self.delete(SHADOW).await?;
        Ok(next)
    }

    /// An earlier deployment becomes active again: the one `to` names (see
    /// [`Target::is_named`]), or the previous one. It leaves the history,
    /// and so does the one rolled back from, so that a second rollback
    /// goes one further. `file` (the instances' rules files) can always
    /// be returned to.
    pub async fn roll_back(
        &self,
        to: Option<&str>,
        by: Option<String>,
    ) -> Result<RolledBack, ChangeError> {
        let current = self
            .read_json::<Deployment>(ACTIVE)
            .await?
            .ok_or(ChangeError::NothingDeployed)?;
        let found = to.map(|wanted| (wanted, current.find(wanted)));
        let on_files = matches!(current.current, Target::File(_));
        let mut history = current.history;
        let target = match found {
            Some((_, Some(index))) => history.remove(index),
            Some(("file", None)) if !on_files => Target::files(None),
            Some(("file", None)) => return Err(ChangeError::NoEarlier),
            Some((wanted, None)) => {
                return Err(ChangeError::NotInHistory {
                    wanted: wanted.to_string(),
                });
            }
            // A bucket written before the files were remembered has no
            // entry for them: they are still what came first.
            None if history.is_empty() && !on_files => Target::files(None),
            None if history.is_empty() => return Err(ChangeError::NoEarlier),
            None => history.remove(0),
        };
        let next = target.redeployed(by);
        self.write_json(
            ACTIVE,
            &Deployment {
                current: next.clone(),
                history,
            },
        )
        .await?;
        Ok(RolledBack {
            from: current.current,
            to: next,
        })
    }
}
