//! The embedded store: the Redis semantics in one process, for local runs,
//! demos and single-replica installs. Spend is lost when the process exits.
//!
//! Memory stays bounded and every operation costs the same however many calls
//! came before: reservations expire through a time-ordered queue (only what is
//! due is looked at), settled charge ids are kept for [`crate::SETTLED_TTL`] and
//! at most [`SETTLED_MAX`] of them, and the ledger keeps the newest
//! `ledger_max_len` records.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use crate::{Counters, LedgerEntry, ReserveOutcome, ReserveRequest, SettleOutcome, Settlement};
use tally_config::ledger::LedgerRecord;
use tally_config::money::Nanos;

/// The most settled charge ids remembered (about 100 bytes each). A settlement
/// against this store cannot fail, so it is never spooled and never replayed:
/// the ids only catch the same exchange settling twice, which happens within
/// its own lifetime, far inside this many later calls.
pub const SETTLED_MAX: usize = 100_000;

/// One live reservation.
struct Hold {
    expiry_ms: i64,
    amount: Nanos,
    keys: Vec<String>,
}

#[derive(Default)]
struct State {
    counters: HashMap<String, Counters>,
    /// Team counter key → nano-USD spent per catalog model (Redis: the `m/<model>` fields).
    model_spend: HashMap<String, HashMap<String, Nanos>>,
    reservations: HashMap<String, Hold>,
    /// (expiry ms, charge id) of every live reservation, soonest first: expiry looks only
    /// at what is due, and a settled or refreshed hold leaves no stale entry behind.
    expiries: BTreeSet<(i64, String)>,
    settled: HashSet<String>,
    /// The settled ids in the order they were settled, with the time each may be forgotten.
    settled_order: VecDeque<(i64, String)>,
    /// Records with their sequence number (1, 2, …; never reused, so a cursor stays valid).
    ledger: VecDeque<(u64, LedgerRecord)>,
    last_seq: u64,
}

#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl State {
    fn release(&mut self, charge_id: &str) {
        if let Some(hold) = self.reservations.remove(charge_id) {
            self.expiries.remove(&(hold.expiry_ms, charge_id.to_string()));
            for k in hold.keys {
                let c = self.counters.entry(k).or_default();
                c.reserved = c.reserved.saturating_sub(hold.amount);
            }
        }
    }

    /// Releases the reservations due by `now_ms` and forgets the settled ids past their
    /// time: work in proportion to what expired, not to what is held.
    fn purge_expired(&mut self, now_ms: i64) {
        while self.expiries.first().is_some_and(|(expiry, _)| *expiry <= now_ms) {
            if let Some((_, id)) = self.expiries.pop_first() {
                self.release(&id);
            }
        }
        while self.settled_order.front().is_some_and(|(until, _)| *until <= now_ms) {
            self.forget_oldest_settled();
        }
    }

    fn used(&self, key: &str) -> Nanos {
        self.counters
            .get(key)
            .map_or(Nanos::ZERO, |c| c.spent.saturating_add(c.reserved))
    }

    /// Remembers a settled id until `until_ms` (and while it is among the newest [`SETTLED_MAX`]).
    fn remember_settled(&mut self, charge_id: &str, until_ms: i64) {
        if self.settled.insert(charge_id.to_string()) {
            self.settled_order.push_back((until_ms, charge_id.to_string()));
        }
        while self.settled_order.len() > SETTLED_MAX {
            self.forget_oldest_settled();
        }
    }

    fn forget_oldest_settled(&mut self) {
        if let Some((_, id)) = self.settled_order.pop_front() {
            self.settled.remove(&id);
        }
    }
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave counters half-written
        // (each update is a single field), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn reserve(&self, r: &ReserveRequest) -> ReserveOutcome {
        let mut s = self.lock();
        s.purge_expired(r.now_ms);
        if s.reservations.contains_key(&r.charge_id) || s.settled.contains(&r.charge_id) {
            return ReserveOutcome::Duplicate;
        }
        let mut over = Vec::new();
        for b in &r.budgets {
            let Some(limit) = b.limit else { continue };
            let used = s.used(&b.key);
            if used.saturating_add(r.amount) > limit {
                if b.enforce || r.tentative {
                    if let Some(first) = r.budgets.first().filter(|_| !r.tentative) {
                        s.counters.entry(first.key.clone()).or_default().blocked += 1;
                    }
                    return ReserveOutcome::Refused {
                        label: b.label.clone(),
                        limit,
                        remaining: limit.saturating_sub(used),
                    };
                }
                over.push(b.label.clone());
            }
        }
        let keys: Vec<String> = r.budgets.iter().map(|b| b.key.clone()).collect();
        for k in &keys {
            let c = s.counters.entry(k.clone()).or_default();
            c.reserved = c.reserved.saturating_add(r.amount);
        }
        let expiry_ms = r.now_ms + r.ttl.as_millis() as i64;
        s.expiries.insert((expiry_ms, r.charge_id.clone()));
        let hold = Hold {
            expiry_ms,
            amount: r.amount,
            keys,
        };
        s.reservations.insert(r.charge_id.clone(), hold);
        let team_used = r.budgets.first().map_or(Nanos::ZERO, |b| s.used(&b.key));
        ReserveOutcome::Reserved { team_used, over }
    }

    /// Extends the live reservation `charge_id` to expire no sooner than `expiry_ms`.
    /// `false` if it is not held (settled, expired, never made): nothing is created.
    pub fn refresh(&self, charge_id: &str, now_ms: i64, expiry_ms: i64) -> bool {
        let mut s = self.lock();
        s.purge_expired(now_ms);
        let Some(hold) = s.reservations.get_mut(charge_id) else {
            return false;
        };
        let old = hold.expiry_ms;
        if expiry_ms > old {
            hold.expiry_ms = expiry_ms;
            s.expiries.remove(&(old, charge_id.to_string()));
            s.expiries.insert((expiry_ms, charge_id.to_string()));
        }
        true
    }

    pub fn settle(&self, st: &Settlement, ledger_max_len: u64) -> SettleOutcome {
        self.settle_at(st, ledger_max_len, now_ms())
    }

    fn settle_at(&self, st: &Settlement, ledger_max_len: u64, now_ms: i64) -> SettleOutcome {
        let mut s = self.lock();
        s.purge_expired(now_ms);
        if s.settled.contains(&st.charge_id) {
            return SettleOutcome::AlreadySettled;
        }
        s.release(&st.charge_id);
        for k in &st.counters {
            let c = s.counters.entry(k.clone()).or_default();
            c.spent = c.spent.saturating_add(st.cost);
            if st.count_request {
                c.requests += 1;
            }
        }
        if let Some(team) = st.counters.first() {
            if st.is_denial() {
                s.counters.entry(team.clone()).or_default().denied += 1;
            }
            if st.model_spend_field().is_some() {
                let spent = s.model_spend.entry(team.clone()).or_default();
                let m = spent.entry(st.record.model.clone()).or_default();
                *m = m.saturating_add(st.cost);
            }
        }
        let used: Vec<Nanos> = st.counters.iter().map(|k| s.used(k)).collect();
        let team_used = used.first().copied().unwrap_or(Nanos::ZERO);
        let mut record = st.record.clone();
        record.team_budget_remaining_nanos = st.team_limit.map(|l| l.saturating_sub(team_used).0);
        s.last_seq += 1;
        let seq = s.last_seq;
        s.ledger.push_back((seq, record));
        while s.ledger.len() as u64 > ledger_max_len.max(1) {
            s.ledger.pop_front();
        }
        s.remember_settled(&st.charge_id, now_ms + crate::SETTLED_TTL.as_millis() as i64);
        SettleOutcome::Settled { used }
    }

    pub fn ledger(&self, limit: usize) -> Vec<LedgerRecord> {
        let s = self.lock();
        let skip = s.ledger.len().saturating_sub(limit);
        s.ledger.iter().skip(skip).map(|(_, r)| r.clone()).collect()
    }

    /// Up to `limit` of `team`'s records after sequence number `after`, oldest first.
    pub fn ledger_page(&self, team: &str, after: u64, limit: usize) -> Vec<LedgerEntry> {
        let s = self.lock();
        let start = s.ledger.partition_point(|(seq, _)| *seq <= after);
        s.ledger
            .range(start..)
            .filter(|(_, r)| r.team == team)
            .take(limit)
            .map(|(seq, r)| LedgerEntry {
                id: seq.to_string(),
                json: serde_json::to_string(r).expect("a ledger record serializes"),
            })
            .collect()
    }

    pub fn counters(&self, key: &str) -> Counters {
        self.lock().counters.get(key).copied().unwrap_or_default()
    }

    /// Nano-USD spent per catalog model on the team counter `key`.
    pub fn model_spend(&self, key: &str) -> Vec<(String, Nanos)> {
        let s = self.lock();
        let spent = s.model_spend.get(key).into_iter().flatten();
        spent.map(|(m, n)| (m.clone(), *n)).collect()
    }

    /// How many reservations and settled ids are held (the soak benchmark watches them).
    pub fn sizes(&self) -> (usize, usize) {
        let s = self.lock();
        (s.reservations.len(), s.settled.len())
    }
}

#[cfg(test)]
mod tests;
