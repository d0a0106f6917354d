//! Reading a team's live counters from the Redis the ext_proc writes, with the ext_proc's client.
//! The connection is made on first use (the operator starts while Redis is down) and dropped on
//! an error, so the next pass reconnects; an outage reads as [`Reading::Unavailable`].

use tally_config::keys;
use tally_store::args::RedisTarget;
use tally_store::redis::RedisStore;

use super::status::{self, Counters, Enforced, Reading};

/// The status pass's Redis connection, if any.
#[derive(Default)]
pub(super) struct CounterReader {
    connection: Option<RedisStore>,
}

impl CounterReader {
    /// The current period's team counters of the budget `enforced` for an object, from `target`
    /// (`None`: no Redis configured).
    pub async fn read(&mut self, target: Option<&RedisTarget>, enforced: &Enforced, now: jiff::Timestamp) -> Reading {
        let Some(target) = target else {
            return Reading::NoStore;
        };
        let Some((team, period_key)) = status::counter_scope(enforced, now) else {
            return Reading::Counters(Counters::default());
        };
        let store = match &self.connection {
            Some(store) => store,
            None => match target.connect().await {
                Ok(store) => self.connection.insert(store),
                Err(error) => {
                    tracing::warn!(%error, "Redis unavailable; keeping the last known spend");
                    return Reading::Unavailable;
                }
            },
        };
        let key = keys::counter(team, &period_key, &keys::Scope::Team);
        match store.counters(&key).await {
            Ok(counters) => Reading::Counters(counters),
            Err(error) => {
                tracing::warn!(%error, %key, "reading counters failed");
                self.connection = None;
                Reading::Unavailable
            }
        }
    }
}
