//! A live call's reservation kept alive: while the call runs, a small task owned by
//! the exchange moves the hold's expiry forward every third of the reservation TTL,
//! so a call longer than the TTL never frees headroom it is still using. Dropping
//! the [`Hold`] (the call settled, or the exchange went away) stops the task; the
//! TTL then only covers an ext_proc that died mid-call.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tally_store::{ReserveOutcome, ReserveRequest, StoreError};

use super::shared::Shared;

/// The shortest interval between refreshes, whatever the TTL.
const MIN_INTERVAL: Duration = Duration::from_millis(50);

/// The refresh task of one held reservation; dropping it stops the refreshes.
#[derive(Debug)]
pub struct Hold {
    task: tokio::task::AbortHandle,
}

impl Hold {
    /// Starts refreshing `r` if the store held it; `None` for any other answer.
    pub fn after(
        outcome: &Result<ReserveOutcome, StoreError>,
        shared: &Arc<Shared>,
        r: &ReserveRequest,
    ) -> Option<Hold> {
        matches!(outcome, Ok(ReserveOutcome::Reserved { .. })).then(|| Hold::start(shared.clone(), r))
    }

    fn start(shared: Arc<Shared>, r: &ReserveRequest) -> Hold {
        let (team, charge_id, ttl) = (r.team.clone(), r.charge_id.clone(), r.ttl);
        let every = refresh_interval(ttl);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            loop {
                tick.tick().await;
                let now = Timestamp::now().as_millisecond();
                let expiry = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
                match shared.store.refresh(&team, &charge_id, now, expiry).await {
                    Ok(true) => {}
                    // Settled or expired meanwhile: nothing left to keep alive.
                    Ok(false) => return,
                    // The next tick tries again; the hold lasts a whole TTL past the last success.
                    Err(e) => tracing::warn!(%charge_id, error = %e, "refreshing a live reservation failed"),
                }
            }
        });
        Hold {
            task: task.abort_handle(),
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A third of the TTL: two refreshes can fail in a row before the hold lapses.
pub fn refresh_interval(ttl: Duration) -> Duration {
    (ttl / 3).max(MIN_INTERVAL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refreshes_come_three_times_per_ttl_and_never_busy_loop() {
        assert_eq!(refresh_interval(Duration::from_secs(3660)), Duration::from_secs(1220));
        assert_eq!(refresh_interval(Duration::from_millis(600)), Duration::from_millis(200));
        assert_eq!(refresh_interval(Duration::ZERO), MIN_INTERVAL);
    }
}
