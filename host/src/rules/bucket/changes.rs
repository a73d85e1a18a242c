//! The changes an operator makes to what the bucket names — promote the
//! shadow, roll back to the previous deployment — and the reading of
//! both pointers, in one place, so that `beaker rules` and the gateway's
//! operator routes read and change the bucket the same way.

use serde::Serialize;

use super::{ACTIVE, Bucket, BucketError, Deployment, Pointer, SHADOW};

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
    #[error("nothing was deployed through the bucket: nothing to roll back")]
    NothingDeployed,
    #[error("only one deployment so far: nothing to roll back to")]
    NoEarlier,
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
    pub from: Pointer,
    pub to: Pointer,
}

impl Bucket {
    /// Both pointers, as they are now.
    pub async fn deployments(&self) -> Result<Deployments, BucketError> {
        Ok(Deployments {
            active: self.read_json::<Deployment>(ACTIVE).await?,
            shadow: self.read_json::<Pointer>(SHADOW).await?,
        })
    }

    /// The shadow becomes the active rules (the active ones go on top of
    /// the history) and the shadow is cleared. Returns what is active now.
    pub async fn promote_shadow(&self) -> Result<Pointer, ChangeError> {
        let shadow = self
            .read_json::<Pointer>(SHADOW)
            .await?
            .ok_or(ChangeError::NoShadow)?;
        let previous = self.read_json::<Deployment>(ACTIVE).await?;
        let next = Pointer {
            deployed_at: chrono::Utc::now(),
            ..shadow
        };
        self.write_json(ACTIVE, &Deployment::succeed(previous, next.clone()))
            .await?;
        self.delete(SHADOW).await?;
        Ok(next)
    }

    /// The previous deployment becomes active again; the one rolled back
    /// from leaves the history, so a second rollback goes one further.
    pub async fn roll_back(&self) -> Result<RolledBack, ChangeError> {
        let current = self
            .read_json::<Deployment>(ACTIVE)
            .await?
            .ok_or(ChangeError::NothingDeployed)?;
        let mut history = current.history.into_iter();
        let mut previous = history.next().ok_or(ChangeError::NoEarlier)?;
        previous.deployed_at = chrono::Utc::now();
        let rolled_back = Deployment {
            current: previous.clone(),
            history: history.collect(),
        };
        self.write_json(ACTIVE, &rolled_back).await?;
        Ok(RolledBack {
            from: current.current,
            to: previous,
        })
    }
}
