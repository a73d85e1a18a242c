//! The rules this instance serves with, and how they change: loading a
//! candidate, swapping it in atomically, the shadow beside it, and what the
//! instance reports about all of that.
//!
//! Requests take an `Arc` of the active rules when they start, so a swap
//! never disturbs a request in flight: it finishes on the rules it began
//! with, and the next request uses the new ones. A candidate that fails to
//! compile, does not fit the world, or fails its smoke test is refused and
//! the active rules stay.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::{ArcSwap, ArcSwapOption};
use chrono::{DateTime, Utc};
use tokio::sync::Semaphore;

use super::health::BucketHealth;
use super::report::{RefusalReport, RulesReport, ShadowReport};
use super::{Decision, Digest, LoadError, Rejection, Request, Rules, RulesEngine};

/// How many loaded components are kept compiled, so that swapping back
/// (a rollback, a promote) costs no compilation.
const CACHE_SIZE: usize = 8;
/// Shadow decisions computed at once; beyond this they are skipped rather
/// than queued, so the shadow can never slow the service down.
const MAX_SHADOW_IN_FLIGHT: usize = 64;

/// A refused candidate, as reported by `beaker rules status`.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub digest: Digest,
    pub origin: String,
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// Counts of the shadow's comparisons with the active rules.
#[derive(Debug, Default)]
pub struct ShadowStats {
    pub agreements: AtomicU64,
    pub divergences: AtomicU64,
    /// The shadow trapped, ran out of time or memory, or answered nonsense.
    pub failures: AtomicU64,
    /// Skipped because too many comparisons were already running.
    pub skipped: AtomicU64,
}

/// Counters for metrics and status.
#[derive(Debug, Default)]
pub struct SwapStats {
    pub swaps: AtomicU64,
    pub refusals: AtomicU64,
}

/// The instance's rules: active, shadow, cache and history of refusals.
pub struct RulesState {
    engine: RulesEngine,
    active: ArcSwap<Rules>,
    /// Where the active rules came from, and since when they are active.
    active_origin: Mutex<(String, DateTime<Utc>)>,
    /// The rules file's rules as last loaded, and their origin: what the
    /// bucket's "serve the rules files" deployment returns to.
    file: Mutex<(Arc<Rules>, String)>,
    shadow: ArcSwapOption<Rules>,
    shadow_stats: ArcSwap<ShadowStats>,
    shadow_permits: Arc<Semaphore>,
    last_refusal: Mutex<Option<Refusal>>,
    cache: Mutex<Vec<Arc<Rules>>>,
    /// One load at a time: two sources changing at once are applied in turn.
    loading: tokio::sync::Mutex<()>,
    pub stats: SwapStats,
    /// How following the rules bucket goes.
    pub bucket: BucketHealth,
}

impl std::fmt::Debug for RulesState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RulesState")
            .field("active", &self.active.load().digest)
            .finish_non_exhaustive()
    }
}

/// The outcome of one decision, compared between active and shadow.
pub type Outcome = Result<Decision, Rejection>;

impl RulesState {
    /// `initial` are the rules the instance starts with, from its rules
    /// file (`origin` says which).
    pub fn new(engine: RulesEngine, initial: Rules, origin: &str) -> Self {
        let initial = Arc::new(initial);
        Self {
            engine,
            active: ArcSwap::new(initial.clone()),
            active_origin: Mutex::new((origin.to_string(), Utc::now())),
            file: Mutex::new((initial.clone(), origin.to_string())),
            shadow: ArcSwapOption::empty(),
            shadow_stats: ArcSwap::from_pointee(ShadowStats::default()),
            shadow_permits: Arc::new(Semaphore::new(MAX_SHADOW_IN_FLIGHT)),
            last_refusal: Mutex::new(None),
            cache: Mutex::new(vec![initial]),
            loading: tokio::sync::Mutex::new(()),
            stats: SwapStats::default(),
            bucket: BucketHealth::default(),
        }
    }

    pub fn engine(&self) -> &RulesEngine {
        &self.engine
    }

    /// The rules new requests use.
    pub fn active(&self) -> Arc<Rules> {
        self.active.load_full()
    }

    /// The shadow rules, if any.
    pub fn shadow(&self) -> Option<Arc<Rules>> {
        self.shadow.load_full()
    }

    /// Compiles (or finds in the cache), checks and smoke-tests a
    /// candidate. Does not change what serves.
    pub async fn prepare(&self, bytes: &[u8]) -> Result<Arc<Rules>, LoadError> {
        let digest = Digest::of(bytes);
        if let Some(cached) = self.cached(&digest) {
            return Ok(cached);
        }
        let rules = Arc::new(self.engine.load(bytes).await?);
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.retain(|r| r.digest != rules.digest);
        cache.insert(0, rules.clone());
        cache.truncate(CACHE_SIZE);
        Ok(rules)
    }

    fn cached(&self, digest: &Digest) -> Option<Arc<Rules>> {
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.iter().find(|r| r.digest == *digest).cloned()
    }

    /// Makes a candidate the active rules if it passes every check;
    /// otherwise records and reports the refusal and keeps the active
    /// rules. `origin` says where it came from, for logs and status.
    pub async fn activate(&self, bytes: &[u8], origin: &str) -> Result<Arc<Rules>, LoadError> {
        let _one_at_a_time = self.loading.lock().await;
        match self.prepare(bytes).await {
            Ok(rules) => {
                self.swap_in(rules.clone(), origin);
                Ok(rules)
            }
            Err(e) => {
                self.refuse(bytes, origin, &e);
                Err(e)
            }
        }
    }

    /// The rules file changed: its new content becomes active (the last
    /// change wins, as for a deploy) and is what "serve the rules files"
    /// returns to from now on.
    pub async fn activate_file(&self, bytes: &[u8], origin: &str) -> Result<Arc<Rules>, LoadError> {
        let rules = self.activate(bytes, origin).await?;
        *self.file.lock().unwrap_or_else(PoisonError::into_inner) =
            (rules.clone(), origin.to_string());
        Ok(rules)
    }

    /// The rules file's rules become active again (the bucket says so).
    /// They are kept compiled, so this is a swap and nothing more.
    pub async fn serve_file(&self) -> Arc<Rules> {
        let _one_at_a_time = self.loading.lock().await;
        let (rules, origin) = self
            .file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        self.swap_in(rules.clone(), &origin);
        rules
    }

    fn swap_in(&self, rules: Arc<Rules>, origin: &str) {
        let previous = self.active.swap(rules.clone());
        let mut active_origin = self
            .active_origin
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if previous.digest != rules.digest {
            self.stats.swaps.fetch_add(1, Ordering::Relaxed);
            tracing::info!(
                origin,
                rules = %rules.name,
                rules_version = %rules.version,
                digest = %rules.digest.short(),
                previous = %previous.digest.short(),
                "rules swapped"
            );
            active_origin.1 = Utc::now();
        }
        active_origin.0 = origin.to_string();
    }

    /// Loads a candidate as the shadow: it decides beside the active rules
    /// on live traffic, but nothing it decides is applied.
    pub async fn set_shadow(&self, bytes: &[u8], origin: &str) -> Result<Arc<Rules>, LoadError> {
        let _one_at_a_time = self.loading.lock().await;
        match self.prepare(bytes).await {
            Ok(rules) => {
                let same = self
                    .shadow
                    .load()
                    .as_ref()
                    .is_some_and(|s| s.digest == rules.digest);
                if !same {
                    self.shadow_stats.store(Arc::new(ShadowStats::default()));
                    self.shadow.store(Some(rules.clone()));
                    tracing::info!(
                        origin,
                        rules = %rules.name,
                        rules_version = %rules.version,
                        digest = %rules.digest.short(),
                        "shadow rules loaded: deciding beside the active rules, applying nothing"
                    );
                }
                Ok(rules)
            }
            Err(e) => {
                self.refuse(bytes, origin, &e);
                Err(e)
            }
        }
    }

    /// Stops the shadow.
    pub fn clear_shadow(&self) {
        if let Some(old) = self.shadow.swap(None) {
            tracing::info!(digest = %old.digest.short(), "shadow rules stopped");
        }
    }

    fn refuse(&self, bytes: &[u8], origin: &str, error: &LoadError) {
        let digest = Digest::of(bytes);
        self.stats.refusals.fetch_add(1, Ordering::Relaxed);
        tracing::error!(
            origin,
            digest = %digest.short(),
            error = %error,
            "rules candidate refused; the active rules stay"
        );
        *self
            .last_refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Refusal {
            digest,
            origin: origin.to_string(),
            reason: error.to_string(),
            at: Utc::now(),
        });
    }

    pub fn last_refusal(&self) -> Option<Refusal> {
        self.last_refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Runs the shadow on the request the active rules just decided, off
    /// the request's path, and counts whether the two agree.
    pub fn compare_in_shadow(
        self: &Arc<Self>,
        request: Request,
        current: Option<u32>,
        active: Outcome,
    ) {
        let Some(shadow) = self.shadow() else {
            return;
        };
        let stats = self.shadow_stats.load_full();
        let Ok(permit) = self.shadow_permits.clone().try_acquire_owned() else {
            stats.skipped.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let state = self.clone();
        tokio::spawn(async move {
            let result = state.engine.decide(&shadow, &request, current).await;
            drop(permit);
            match result {
                Ok(outcome) if same_outcome(&outcome, &active) => {
                    stats.agreements.fetch_add(1, Ordering::Relaxed);
                }
                Ok(outcome) => {
                    stats.divergences.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        sku = %request.sku,
                        operation = %super::describe_operation(request.operation),
                        current = %current.map_or_else(|| "none".to_string(), |level| level.to_string()),
                        active = %describe_outcome(&active),
                        shadow = %describe_outcome(&outcome),
                        shadow_digest = %shadow.digest.short(),
                        "shadow rules diverge"
                    );
                }
                Err(e) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, shadow_digest = %shadow.digest.short(), "shadow rules failed");
                }
            }
        });
    }

    /// The shadow's counters since it was loaded.
    pub fn shadow_stats(&self) -> Arc<ShadowStats> {
        self.shadow_stats.load_full()
    }

    /// What `$SRV.INFO` reports about the rules.
    pub fn report(&self) -> RulesReport {
        let active = self.active();
        let shadow = self.shadow().map(|shadow| {
            let stats = self.shadow_stats();
            ShadowReport {
                name: shadow.name.clone(),
                version: shadow.version.clone(),
                digest: shadow.digest.clone(),
                agreements: stats.agreements.load(Ordering::Relaxed),
                divergences: stats.divergences.load(Ordering::Relaxed),
                failures: stats.failures.load(Ordering::Relaxed),
                skipped: stats.skipped.load(Ordering::Relaxed),
            }
        });
        let (origin, since) = self
            .active_origin
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        RulesReport {
            name: active.name.clone(),
            version: active.version.clone(),
            digest: active.digest.clone(),
            since: since.to_rfc3339(),
            origin,
            shadow,
            refused: self.last_refusal().map(|refusal| RefusalReport {
                digest: refusal.digest,
                reason: refusal.reason,
                at: refusal.at.to_rfc3339(),
            }),
            bucket: self.bucket.report(),
        }
    }
}

/// Two outcomes agree when they decide the same level and events, or
/// refuse for the same kind of reason (messages may be worded apart).
pub fn same_outcome(a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) => x.level == y.level && event_keys(&x.events) == event_keys(&y.events),
        (Err(x), Err(y)) => std::mem::discriminant(x) == std::mem::discriminant(y),
        _ => false,
    }
}

/// An outcome in a few words, for divergence logs and `rules check`.
pub fn describe_outcome(outcome: &Outcome) -> String {
    match outcome {
        Ok(decision) => {
            let mut text = format!("ok level {}", decision.level);
            for event in &decision.events {
                match event {
                    super::Event::LowStock(low) => {
                        text.push_str(&format!(" +low-stock:{}", low.level))
                    }
                }
            }
            text
        }
        Err(Rejection::InvalidRequest(m)) => format!("invalid-request ({m})"),
        Err(Rejection::UnknownProduct(m)) => format!("unknown-product ({m})"),
        Err(Rejection::RuleViolated(m)) => format!("rule-violated ({m})"),
    }
}

fn event_keys(events: &[super::Event]) -> Vec<(&str, u32)> {
    events
        .iter()
        .map(|e| match e {
            super::Event::LowStock(low) => (low.sku.as_str(), low.level),
        })
        .collect()
}
