//! What every exchange shares: the live policy, the store and its spool,
//! metrics and settings — and the one path a settlement takes to the store.

use arc_swap::ArcSwap;
use tally_config::money::Nanos;
use tally_store::spool::Spool;
use tally_store::{SettleOutcome, Settlement, Store, StoreError};

use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::trace::Traces;

use super::behind::WriteBehind;
use super::lease::Leases;
use super::observe;
use super::options::Options;

/// State shared by every exchange.
pub struct Shared {
    pub policy: ArcSwap<Policy>,
    pub store: Store,
    pub spool: Option<Spool>,
    pub metrics: Metrics,
    pub opts: Options,
    /// The call spans (off unless OTLP is configured): set before the state is shared.
    pub traces: Traces,
    /// One task per Envoy stream; shutdown waits for them, so an exchange
    /// cut short as the process stops is still settled.
    pub exchanges: tokio_util::task::TaskTracker,
    /// This replica's budget leases (`--budget-leases on`): set before the state is shared.
    pub leases: Option<Leases>,
    /// The write-behind settlement queue (`--settle-behind-ms` > 0): set before the state is shared.
    pub write_behind: Option<WriteBehind>,
}

impl Shared {
    /// Shared state starting from `policy`, with fresh metrics and no exchanges yet.
    pub fn new(policy: Policy, store: Store, spool: Option<Spool>, opts: Options) -> Shared {
        Shared {
            policy: ArcSwap::from_pointee(policy),
            store,
            spool,
            metrics: Metrics::new(),
            opts,
            traces: Traces::off(),
            exchanges: tokio_util::task::TaskTracker::new(),
            leases: None,
            write_behind: None,
        }
    }

    /// Settles, or spools the settlement if the store is unreachable.
    /// Returns each counter's used amount after it (the settlement's counters' order), when
    /// the store answered.
    pub(super) async fn settle_or_spool(&self, s: &Settlement) -> Option<Vec<Nanos>> {
        let settled = self.store.settle(s, self.opts.ledger_max_len).await;
        self.settled_or_spool(s, settled)
    }

    /// [`Shared::settle_or_spool`] for a call admitted against `holder`'s leases. A spooled
    /// one replays as a plain settlement: its cost then stays held in the lease until the
    /// lease is returned or expires — more held than used, never less.
    pub(super) async fn settle_leased_or_spool(&self, s: &Settlement, holder: &str) -> Option<Vec<Nanos>> {
        let settled = self.store.settle_leased(s, self.opts.ledger_max_len, holder).await;
        self.settled_or_spool(s, settled)
    }

    /// The store's answer to settling `s`: each counter's used after it, or nothing (the
    /// settlement was spooled, or had been applied before).
    pub(super) fn settled_or_spool(
        &self,
        s: &Settlement,
        settled: Result<SettleOutcome, StoreError>,
    ) -> Option<Vec<Nanos>> {
        match settled {
            Ok(SettleOutcome::Settled { used }) => return Some(used),
            Ok(SettleOutcome::AlreadySettled) => return None,
            Err(StoreError::Timeout { .. }) => {
                tracing::warn!(request_id = %s.record.request_id, "settle timed out; spooling")
            }
            Err(e) => tracing::warn!(request_id = %s.record.request_id, error = %e, "settle failed; spooling"),
        }
        observe::store_error(&self.metrics, "settle");
        let Some(spool) = &self.spool else {
            tracing::error!(request_id = %s.record.request_id, charge = %s.cost, "CHARGE NOT RECORDED: store down and no spool configured");
            return None;
        };
        match spool.push(s) {
            Ok(()) => self.metrics.spool_depth.set(spool.depth() as i64),
            Err(e) => {
                self.metrics.spool_refused.inc();
                tracing::error!(request_id = %s.record.request_id, charge = %s.cost, error = %e, "CHARGE NOT RECORDED: store down and spool refused it");
                return None;
            }
        };
        None
    }

    /// One replay pass of the spool into the store; returns how many settlements it
    /// settled, or the outage that stopped it (the rest stays queued for the next pass).
    pub async fn replay_spool(&self) -> Result<u64, StoreError> {
        let Some(spool) = &self.spool else { return Ok(0) };
        if spool.depth() == 0 {
            return Ok(0);
        }
        let pass = spool
            .replay(|s| async move { self.store.settle(&s, self.opts.ledger_max_len).await.map(|_| ()) })
            .await;
        self.metrics.spool_depth.set(spool.depth() as i64);
        let pass = pass?;
        self.metrics.spool_replayed.inc_by(pass.settled);
        self.metrics.spool_quarantined.inc_by(pass.quarantined);
        if pass.settled + pass.quarantined > 0 {
            tracing::info!(
                replayed = pass.settled,
                quarantined = pass.quarantined,
                left = spool.depth(),
                "replayed spooled settlements"
            );
        }
        match pass.deferred {
            Some(e) => Err(e),
            None => Ok(pass.settled),
        }
    }
}
