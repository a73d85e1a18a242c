//! Housekeeping: expired idempotency keys and old published outbox rows
//! deleted on a schedule. A task of its own, so that it runs whether or not
//! this instance relays events.

use std::time::Duration;

use tokio::sync::watch;

use super::HousekeepingSettings;
use crate::shutdown::stopped;
use crate::store::Store;

/// Deletes what has served its time, every interval, until `stop`. Each
/// round is bounded, so a database that hangs delays only the next one.
pub(super) async fn housekeeping(
    store: Store,
    settings: HousekeepingSettings,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let bound = settings.interval.max(Duration::from_secs(5));
    loop {
        tokio::select! {
            () = stopped(&mut stop) => return,
            _ = tick.tick() => {}
        }
        match tokio::time::timeout(bound, store.housekeeping(settings.outbox_retention)).await {
            Ok(Ok((keys, rows))) if keys + rows > 0 => tracing::debug!(
                expired_keys = keys,
                outbox_rows = rows,
                "housekeeping deleted old rows"
            ),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "housekeeping failed"),
            Err(_) => tracing::warn!("housekeeping took too long; trying again later"),
        }
    }
}
