//! Leader election over a `coordination.k8s.io/v1` Lease, so that two operator replicas never
//! write the ConfigMap or status at the same time.
//!
//! The algorithm is client-go's: a candidate takes the Lease when nobody holds it or when its
//! record (holder, renew time) has not changed for `leaseDurationSeconds` *as observed on this
//! candidate's own monotonic clock* — so clock skew between nodes does not matter. Every write is
//! an optimistic-concurrency `replace` (the `resourceVersion` must match), so two candidates can
//! never both win. A leader that cannot renew for `renew_deadline` (shorter than the lease
//! duration) steps down before anyone else may take over; on shutdown it releases the Lease.
//!
//! [`next_spec`] is the pure decision; [`LeaderElector`] only does the API calls.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;

use super::failures::{Repeats, describe};

/// Timing and identity of one candidate.
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// Unique per replica (the pod name plus a random suffix).
    pub identity: String,
    /// How long a lease is valid without renewal (client-go default 15 s).
    pub lease_duration: Duration,
    /// A leader that has not renewed for this long steps down (default 10 s; < lease_duration).
    pub renew_deadline: Duration,
    /// How often to try to acquire or renew (default 2 s).
    pub retry_period: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>, identity: impl Into<String>) -> Self {
        LeaseConfig {
            namespace: namespace.into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// The spec to write so that `me` holds the lease, or `None` when someone else holds a live lease.
/// `expired` says whether the current record has been unchanged for longer than its duration.
pub fn next_spec(
    current: Option<&LeaseSpec>,
    me: &str,
    expired: bool,
    lease_seconds: i32,
    now: Timestamp,
) -> Option<LeaseSpec> {
    let holder = current
        .and_then(|s| s.holder_identity.as_deref())
        .filter(|h| !h.is_empty());
    let mine = holder == Some(me);
    if holder.is_some() && !mine && !expired {
        return None;
    }
    let transitions = current.and_then(|s| s.lease_transitions).unwrap_or(0);
    Some(LeaseSpec {
        holder_identity: Some(me.to_string()),
        lease_duration_seconds: Some(lease_seconds),
        acquire_time: if mine {
            current.and_then(|s| s.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        lease_transitions: Some(if mine || current.is_none() {
            transitions
        } else {
            transitions + 1
        }),
        ..Default::default()
    })
}

/// What identifies one write of the Lease: its holder and renew time.
type Record = (Option<String>, Option<MicroTime>);

/// Campaigns for and holds one Lease.
pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The (holder, renewTime) last seen and when this process first saw it.
    observed: Option<(Record, Instant)>,
    /// Set after the first successful round trip to the API server.
    reachable: Arc<AtomicBool>,
    /// The failure last logged: a missing namespace is reported once, not every retry.
    failures: Repeats,
}

impl LeaderElector {
    pub fn new(client: Client, config: LeaseConfig, reachable: Arc<AtomicBool>) -> Self {
        LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
            reachable,
            failures: Repeats::default(),
        }
    }

    /// One acquire-or-renew round: `Ok(true)` when this candidate holds the lease afterwards.
    pub async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let lease_seconds = self.config.lease_duration.as_secs().max(1) as i32;
        let now = Timestamp::now();
        let existing = self.api.get_opt(&self.config.name).await?;
        self.reachable.store(true, Ordering::Relaxed);
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    ..Default::default()
                },
                spec: next_spec(None, &self.config.identity, true, lease_seconds, now),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let record = (spec.holder_identity.clone(), spec.renew_time.clone());
        let first_seen = match &self.observed {
            Some((seen, at)) if *seen == record => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((record, at));
                at
            }
        };
        let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(lease_seconds).max(1) as u64);
        let expired = first_seen.elapsed() > duration;
        let Some(new_spec) = next_spec(Some(&spec), &self.config.identity, expired, lease_seconds, now) else {
            return Ok(false);
        };
        lease.spec = Some(new_spec);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Gives the lease up (holder cleared) so that another replica can take over at once.
    pub async fn release(&mut self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }

    /// Campaigns until `shutdown` resolves, publishing leadership on `leader`. Releases the lease
    /// on the way out if held.
    pub async fn run(mut self, leader: watch::Sender<bool>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut last_renew: Option<Instant> = None;
        loop {
            let round = self.try_acquire_or_renew().await;
            if round.is_ok() {
                self.failures.clear();
            }
            match round {
                Ok(true) => {
                    if !*leader.borrow() {
                        tracing::info!(lease = %self.config.name, identity = %self.config.identity, "became leader");
                    }
                    last_renew = Some(Instant::now());
                    leader.send_replace(true);
                }
                Ok(false) => {
                    if *leader.borrow() {
                        tracing::warn!(lease = %self.config.name, "lost the lease to another replica");
                    }
                    last_renew = None;
                    leader.send_replace(false);
                }
                Err(error) => {
                    let error = describe(&error);
                    if self.failures.is_new(&error) {
                        tracing::warn!(%error, lease = %self.config.name, namespace = %self.config.namespace,
                            "lease round trip failed; retrying (the same failure is not logged again)");
                    }
                    if last_renew.is_some_and(|t| t.elapsed() > self.config.renew_deadline) {
                        tracing::warn!(lease = %self.config.name, "could not renew before the deadline; stepping down");
                        last_renew = None;
                        leader.send_replace(false);
                    }
                }
            }
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep(self.config.retry_period) => {}
            }
        }
        if *leader.borrow() {
            leader.send_replace(false);
            match self.release().await {
                Ok(()) => tracing::info!(lease = %self.config.name, "released the lease"),
                Err(error) => {
                    tracing::warn!(%error, "could not release the lease; it expires by itself")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn held_by(holder: &str, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.into()),
            lease_duration_seconds: Some(15),
            acquire_time: Some(MicroTime(ts("2026-01-01T00:00:00Z"))),
            renew_time: Some(MicroTime(ts("2026-01-01T00:00:10Z"))),
            lease_transitions: Some(transitions),
            ..Default::default()
        }
    }

    #[test]
    fn a_live_lease_of_another_holder_is_left_alone() {
        assert_eq!(
            next_spec(Some(&held_by("b", 0)), "a", false, 15, ts("2026-01-01T00:00:11Z")),
            None
        );
    }

    #[test]
    fn an_expired_lease_is_taken_over_and_counts_a_transition() {
        let now = ts("2026-01-01T00:01:00Z");
        let spec = next_spec(Some(&held_by("b", 3)), "a", true, 15, now).unwrap();
        assert_eq!(spec.holder_identity.as_deref(), Some("a"));
        assert_eq!(spec.lease_transitions, Some(4));
        assert_eq!(spec.acquire_time, Some(MicroTime(now)));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
    }

    #[test]
    fn renewing_keeps_acquire_time_and_transitions() {
        let now = ts("2026-01-01T00:00:12Z");
        let spec = next_spec(Some(&held_by("a", 2)), "a", false, 15, now).unwrap();
        assert_eq!(spec.acquire_time, Some(MicroTime(ts("2026-01-01T00:00:00Z"))));
        assert_eq!(spec.lease_transitions, Some(2));
        assert_eq!(spec.renew_time, Some(MicroTime(now)));
    }

    #[test]
    fn a_released_or_new_lease_is_free() {
        let now = ts("2026-01-01T00:00:12Z");
        let released = LeaseSpec {
            holder_identity: None,
            ..held_by("x", 1)
        };
        assert_eq!(
            next_spec(Some(&released), "a", false, 15, now)
                .unwrap()
                .lease_transitions,
            Some(2)
        );
        assert_eq!(next_spec(None, "a", false, 15, now).unwrap().lease_transitions, Some(0));
    }
}
