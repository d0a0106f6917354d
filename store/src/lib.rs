//! Where live spend lives: Redis in production, an in-process map for demos
//! and single-replica runs. Both give the same semantics:
//!
//! - **reserve**: atomically, against every budget of a plan or none, hold the
//!   worst-case amount; reservations expire, so a crashed request cannot hold
//!   budget forever;
//! - **settle**: release the reservation, add the real cost to every counter and
//!   append the ledger record — idempotent per charge id, so a replay from the
//!   spool never double-counts.

pub mod args;
pub mod lease;
pub mod memory;
pub mod redis;
pub mod spool;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use tally_config::ledger::LedgerRecord;
use tally_config::money::Nanos;

/// How long a settled charge id is remembered, to keep a replayed settlement from
/// counting twice.
///
/// Charge ids are unique per exchange, so only a replay from the spool can repeat
/// one, and only when its first try reached the store but the answer was lost (a
/// timeout) or the process stopped between a replay and its record of it. The
/// spool retries every 500 ms while the store answers, so a spooled settlement
/// waits as long as the store stays unreachable from that pod (or the pod stays
/// down): a settlement counts twice only if that lasts longer than this after a
/// lost answer. An hour covers restarts and failovers while keeping the markers
/// to about an hour of calls: the Redis store keeps a 16-byte digest per call in
/// per-team per-minute sets (keyed by the call's start, so a replay finds its
/// own) that expire this long after their last member; a marker lives this long
/// plus at most a minute plus the call's own duration.
pub const SETTLED_TTL: Duration = Duration::from_secs(3600);

/// One counter a call is charged to, and the limit it must stay within.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Redis key of the counter (`tally:{team}:c:<period>:<scope>`).
    pub key: String,
    /// Human name for messages: `team "search"`, `workflow "search/rag"`.
    pub label: String,
    pub limit: Option<Nanos>,
    /// `false` for `Warn` budgets: over-limit calls pass and are flagged.
    pub enforce: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReserveRequest {
    pub team: String,
    pub charge_id: String,
    pub amount: Nanos,
    pub budgets: Vec<Budget>,
    pub now_ms: i64,
    pub ttl: Duration,
    /// A first try from the request headers alone, with a looser bound: held
    /// only if it fits under every limit (`Warn` budgets included); otherwise
    /// nothing is held or counted as blocked, and the caller retries with the
    /// tighter bound the request body gives.
    pub tentative: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    /// Held against every budget. `team_used` = team spent + reserved after it;
    /// `over` lists `Warn` budgets it goes beyond.
    Reserved { team_used: Nanos, over: Vec<String> },
    /// An enforcing budget cannot cover it; nothing was held.
    Refused {
        label: String,
        limit: Nanos,
        remaining: Nanos,
    },
    /// This charge id is already reserved or settled.
    Duplicate,
}

/// A finished call to charge. Serializable: it is what the spool holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Settlement {
    pub team: String,
    pub charge_id: String,
    pub cost: Nanos,
    /// Counter keys to charge (the same the reservation was held on).
    pub counters: Vec<String>,
    /// Whether this call counts as a request (refused calls only bump `blocked`).
    pub count_request: bool,
    /// The team's limit, to record what remains of it in the ledger.
    #[serde(default)]
    pub team_limit: Option<Nanos>,
    pub record: LedgerRecord,
}

/// One settlement of a batch ([`Store::settle_batch`]): a call that held its own
/// reservation, or (`lease_holder`) one admitted against that replica's leases.
#[derive(Debug, Clone, Copy)]
pub struct Batched<'a> {
    pub settlement: &'a Settlement,
    pub lease_holder: Option<&'a str>,
}

impl<'a> Batched<'a> {
    pub fn new(settlement: &'a Settlement, lease_holder: Option<&'a str>) -> Self {
        Batched {
            settlement,
            lease_holder,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleOutcome {
    /// `used`: each of the settlement's counters' spent + reserved right after it, in
    /// [`Settlement::counters`] order (the team's first).
    Settled {
        used: Vec<Nanos>,
    },
    AlreadySettled,
}

impl Settlement {
    /// The team counter's field this call's cost is added to per model (`m/<model>`), if it
    /// cost anything and was priced by a catalog model.
    pub fn model_spend_field(&self) -> Option<String> {
        (self.cost > Nanos::ZERO && !self.record.model.is_empty())
            .then(|| tally_config::keys::field::model_spend(&self.record.model))
    }

    /// Whether this records a call refused by an allowlist or identity rule (counted as `denied`).
    pub fn is_denial(&self) -> bool {
        self.record.outcome == tally_config::ledger::Outcome::Denied
    }
}

/// Spent, reserved and request counts of one counter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub spent: Nanos,
    pub reserved: Nanos,
    pub requests: u64,
    /// Calls a budget refused.
    pub blocked: u64,
    /// Calls an allowlist or identity rule refused (team counter only).
    #[serde(default)]
    pub denied: u64,
}

/// One ledger record and where it sits in its team's ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// The Redis stream id (`1765000000000-0`) or the memory store's sequence number: the
    /// `after` cursor that continues a read past this record.
    pub id: String,
    /// The record as stored: one JSON object ([`LedgerRecord`]), passed on unparsed so a
    /// newer writer's fields reach the reader.
    pub json: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("unexpected reply from the store: {0}")]
    Protocol(String),
    #[error("spool: {0}")]
    Spool(String),
    /// A ledger cursor this store never hands out.
    #[error(
        "invalid ledger cursor {0:?}: expected a stream id such as 1765000000000-0 (Redis) or a sequence number (memory)"
    )]
    Cursor(String),
    /// The store did not answer within [`DEADLINE`]; callers treat it as an outage.
    #[error("{op} timed out after {} ms", DEADLINE.as_millis())]
    Timeout { op: &'static str },
}

/// The longest a reservation or settlement may take before it counts as an
/// outage (the fail mode applies, the settlement is spooled). Kept here, behind
/// the store, so every caller gets the same deadline and the same error.
///
/// Below Envoy's ext_proc `message_timeout` with room for two store calls in one
/// message (a reservation and the record of its refusal): the chart refuses a
/// `gateway.extProc.messageTimeout` of 2 × DEADLINE or less, so a fail-closed
/// decision always reaches Envoy before Envoy gives up on the ext_proc.
pub const DEADLINE: Duration = Duration::from_millis(200);

async fn within_deadline<T>(op: &'static str, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or(Err(StoreError::Timeout { op }))
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The configured store.
pub enum Store {
    Redis(redis::RedisStore),
    Memory(memory::MemoryStore),
}

impl Store {
    /// Holds `r.amount` against every budget or none, within [`DEADLINE`].
    pub async fn reserve(&self, r: &ReserveRequest) -> Result<ReserveOutcome> {
        match self {
            Store::Redis(s) => {
                let outcome = within_deadline("reserve", s.reserve(r)).await;
                // No answer (a timeout, a lost connection) does not mean nothing was held:
                // the script may have run, or still be queued. Void it rather than hold it for the TTL.
                if outcome.is_err() {
                    s.void_later(r);
                }
                outcome
            }
            Store::Memory(s) => Ok(s.reserve(r)),
        }
    }

    /// Extends the live reservation `charge_id` of `team` to expire no sooner than
    /// `expiry_ms`, within [`DEADLINE`]. `false`: it is no longer held (settled or
    /// expired); nothing is held anew.
    pub async fn refresh(&self, team: &str, charge_id: &str, now_ms: i64, expiry_ms: i64) -> Result<bool> {
        match self {
            Store::Redis(s) => within_deadline("refresh", s.refresh(team, charge_id, expiry_ms)).await,
            Store::Memory(s) => Ok(s.refresh(charge_id, now_ms, expiry_ms)),
        }
    }

    /// Charges a finished call once per charge id, within [`DEADLINE`].
    pub async fn settle(&self, s: &Settlement, ledger_max_len: u64) -> Result<SettleOutcome> {
        match self {
            Store::Redis(r) => within_deadline("settle", r.settle(s, ledger_max_len)).await,
            Store::Memory(m) => Ok(m.settle(s, ledger_max_len)),
        }
    }

    /// Grows, shrinks or keeps alive budget leases ([`lease`]), within [`DEADLINE`]. Leases
    /// live in Redis only: the memory store serves one process, which needs none.
    pub async fn lease(&self, r: &lease::LeaseRequest) -> Result<lease::LeaseOutcome> {
        match self {
            Store::Redis(s) => within_deadline("lease", s.lease(r)).await,
            Store::Memory(_) => Err(StoreError::Protocol("budget leases need the Redis store".into())),
        }
    }

    /// [`Store::settle`] for a call admitted against `holder`'s leases: its cost leaves them.
    pub async fn settle_leased(&self, s: &Settlement, ledger_max_len: u64, holder: &str) -> Result<SettleOutcome> {
        match self {
            Store::Redis(r) => within_deadline("settle", r.settle_leased(s, ledger_max_len, holder)).await,
            Store::Memory(m) => Ok(m.settle(s, ledger_max_len)),
        }
    }

    /// Settles every item of `batch` in one round trip, within [`DEADLINE`] for the whole
    /// batch: one result per item, in order, each as [`Store::settle`] (or
    /// [`Store::settle_leased`]) would give it — applied whole or not at all, once per charge id.
    pub async fn settle_batch(&self, batch: &[Batched<'_>], ledger_max_len: u64) -> Vec<Result<SettleOutcome>> {
        match self {
            Store::Redis(r) => match tokio::time::timeout(DEADLINE, r.settle_batch(batch, ledger_max_len)).await {
                Ok(replies) => replies,
                Err(_) => batch
                    .iter()
                    .map(|_| Err(StoreError::Timeout { op: "settle" }))
                    .collect(),
            },
            Store::Memory(m) => batch
                .iter()
                .map(|b| Ok(m.settle(b.settlement, ledger_max_len)))
                .collect(),
        }
    }

    /// Up to `limit` of `team`'s ledger records, oldest first, after the record whose id is
    /// `after` (from the start without it). Fewer than `limit` means none follow yet.
    pub async fn ledger_page(&self, team: &str, after: Option<&str>, limit: usize) -> Result<Vec<LedgerEntry>> {
        match self {
            Store::Redis(r) => r.ledger_page(team, after, limit).await,
            Store::Memory(m) => {
                let after = match after {
                    Some(a) => a.parse().map_err(|_| StoreError::Cursor(a.to_string()))?,
                    None => 0,
                };
                Ok(m.ledger_page(team, after, limit))
            }
        }
    }

    pub async fn counters(&self, key: &str) -> Result<Counters> {
        match self {
            Store::Redis(r) => r.counters(key).await,
            Store::Memory(m) => Ok(m.counters(key)),
        }
    }

    /// Nano-USD spent per catalog model this period, from the team counter `key`.
    pub async fn model_spend(&self, key: &str) -> Result<Vec<(String, Nanos)>> {
        match self {
            Store::Redis(r) => r.model_spend(key).await,
            Store::Memory(m) => Ok(m.model_spend(key)),
        }
    }

    /// The counters of `keys` in one round trip, in order. All keys must belong to one team
    /// (one Redis Cluster slot), as the keys of one [`ReserveRequest`] do.
    pub async fn counters_of_team(&self, keys: &[String]) -> Result<Vec<Counters>> {
        match self {
            Store::Redis(r) => r.counters_of_team(keys).await,
            Store::Memory(m) => Ok(keys.iter().map(|k| m.counters(k)).collect()),
        }
    }

    pub async fn ping(&self) -> Result<()> {
        match self {
            Store::Redis(r) => r.ping().await,
            Store::Memory(_) => Ok(()),
        }
    }
}
