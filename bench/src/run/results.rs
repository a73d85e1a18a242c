//! What a run measured: each service configuration's phases and figures,
//! the baselines and the scaling, as the report reads them.

use std::time::Duration;

use super::{Settings, Variant};
use crate::burst::BurstResults;
use crate::events::EventLatency;
use crate::load::Summary;
use crate::machine::Machine;
use crate::mix::Mix;
use crate::scaling::ScalingResults;
use crate::swap::SwapTiming;

/// One measured phase of the service.
#[derive(Debug, Clone)]
pub struct ServicePhase {
    pub mix: Mix,
    pub concurrency: usize,
    pub summary: Summary,
    /// Rules time over request time, from the host's histograms.
    pub rules_share: Option<f64>,
}

/// What one service configuration measured.
#[derive(Debug, Clone)]
pub struct VariantResults {
    pub variant: Variant,
    pub start_to_ready: Duration,
    pub phases: Vec<ServicePhase>,
    pub rules_share: Option<f64>,
    pub peak_rss: u64,
    pub events: Vec<EventLatency>,
    pub burst: Option<BurstResults>,
    /// Measured on the last configuration only.
    pub swap: Option<SwapResults>,
}

#[derive(Debug, Clone)]
pub struct SwapResults {
    pub timing: SwapTiming,
    /// Start to ready of the second instance.
    pub second_start_to_ready: Duration,
}

/// Everything a run measured.
#[derive(Debug, Clone)]
pub struct Results {
    pub machine: Machine,
    pub date: chrono::DateTime<chrono::Utc>,
    pub settings: Settings,
    pub sql: Vec<(Mix, usize, Summary)>,
    pub echo: Vec<(usize, Summary)>,
    pub variants: Vec<VariantResults>,
    pub scaling: Option<ScalingResults>,
}
