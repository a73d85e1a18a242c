//! A burst: N changes released at once from one client, as a crowd of
//! callers arriving together would. What counts is whether they are served
//! (an instance queues what it cannot take yet, for a bounded time) or
//! refused with 503, and how long the last one takes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::error::BenchError;
use crate::load::CallResult;
use crate::mix::{Mix, Products};
use crate::nats;

/// How long the burst's replies are awaited: longer than any caller would.
const WAIT: Duration = Duration::from_secs(20);

/// What a burst got back.
#[derive(Debug, Clone, Default)]
pub struct BurstResults {
    pub requests: usize,
    pub ok: usize,
    /// Error replies by code (503: the instance was at its limit).
    pub refused: BTreeMap<u16, usize>,
    /// Requests without a reply after [`WAIT`].
    pub unanswered: usize,
    /// From the release to the last reply.
    pub drained: Duration,
    /// The CPU time the host used for the burst, per request.
    pub host_cpu_per_request: Option<Duration>,
}

/// Releases `requests` cold changes at once and waits for every reply.
pub async fn measure(
    client: &async_nats::Client,
    products: Products,
    requests: usize,
    host_pid: Option<u32>,
) -> Result<BurstResults, BenchError> {
    let nats = |e: &dyn std::fmt::Display| BenchError::Nats(e.to_string());
    let inbox = client.new_inbox();
    let mut replies = client
        .subscribe(format!("{inbox}.*"))
        .await
        .map_err(|e| nats(&e))?;
    client.flush().await.map_err(|e| nats(&e))?;
    let cpu_before = host_pid.and_then(crate::cpu::cpu_time);
    let released = Instant::now();
    for n in 0..requests {
        let pick = Mix::ChangeCold.pick(products, usize::MAX, n as u64);
        client
            .publish_with_reply(pick.subject(), format!("{inbox}.{n}"), pick.payload())
            .await
            .map_err(|e| nats(&e))?;
    }
    client.flush().await.map_err(|e| nats(&e))?;
    let mut results = BurstResults {
        requests,
        ..BurstResults::default()
    };
    let mut answered = 0;
    let deadline = released + WAIT;
    while answered < requests {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some(reply)) = tokio::time::timeout(left, replies.next()).await else {
            break;
        };
        answered += 1;
        match nats::classify(&reply) {
            CallResult::Ok => results.ok += 1,
            CallResult::Refused(code) => *results.refused.entry(code).or_default() += 1,
            _ => {}
        }
        results.drained = released.elapsed();
    }
    results.unanswered = requests - answered;
    let cpu_after = host_pid.and_then(crate::cpu::cpu_time);
    results.host_cpu_per_request = match (cpu_before, cpu_after) {
        (Some(before), Some(after)) if answered > 0 => u32::try_from(answered)
            .ok()
            .map(|n| after.saturating_sub(before) / n),
        _ => None,
    };
    Ok(results)
}
