//! Reading a team's live counters from the Redis the ext_proc writes, with the ext_proc's client.
//! The connection is made on first use (the operator starts while Redis is down) and dropped on
//! an error, so the next pass reconnects; an outage reads as [`Reading::Unavailable`].

use tally_config::keys;
use tally_config::money::Nanos;
use tally_store::args::RedisTarget;
use tally_store::redis::RedisStore;

use super::status::{self, Counters, Enforced, Reading};

/// The status pass's Redis connection, if any.
#[derive(Default)]
pub(super) struct CounterReader {
    connection: Option<RedisStore>,
}

impl CounterReader {
    /// The current period's team counters of the budget `enforced` for an object, and those of
    /// `scopes` (its workflows and tenants, same order), in one round trip, then the team's spend
    /// per model, from `target` (`None`: no Redis configured). The scopes' counters and the
    /// models are empty unless the team's counters were read.
    pub async fn read(
        &mut self,
        target: Option<&RedisTarget>,
        enforced: &Enforced,
        scopes: &[keys::Scope],
        now: jiff::Timestamp,
    ) -> (Reading, Vec<Counters>, Vec<(String, Nanos)>) {
        let Some(target) = target else {
            return (Reading::NoStore, vec![], vec![]);
        };
        let Some((team, period_key)) = status::counter_scope(enforced, now) else {
            return (Reading::Counters(Counters::default()), vec![], vec![]);
        };
        let store = match &self.connection {
            Some(store) => store,
            None => match target.connect().await {
                Ok(store) => self.connection.insert(store),
                Err(error) => {
                    tracing::warn!(%error, "Redis unavailable; keeping the last known spend");
                    return (Reading::Unavailable, vec![], vec![]);
                }
            },
        };
        // Every key carries the team's hash tag: one slot, one pipeline, also on a Redis Cluster.
        let keys: Vec<String> = std::iter::once(&keys::Scope::Team)
            .chain(scopes)
            .map(|scope| keys::counter(team, &period_key, scope))
            .collect();
        let read = async {
            let all = store.counters_of_team(&keys).await?;
            let models = store.model_spend(&keys[0]).await?;
            Ok::<_, tally_store::StoreError>((all, models))
        };
        match read.await {
            Ok((mut all, models)) if !all.is_empty() => {
                let team = all.remove(0);
                (Reading::Counters(team), all, models)
            }
            Ok(_) => (Reading::Unavailable, vec![], vec![]),
            Err(error) => {
                tracing::warn!(%error, key = %keys[0], "reading counters failed");
                self.connection = None;
                (Reading::Unavailable, vec![], vec![])
            }
        }
    }
}
